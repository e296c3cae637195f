/*
 * Task dumps: every live task is listed with its kind and state; a waiting
 * fiber with its function and a backtrace that reaches its wait; a waiting
 * future with its poll function. Looking must not disturb: traced fibers and
 * futures go on as if nothing happened, wakes and aborts that arrive while a
 * dump holds a task are not lost (real threads, many iterations).
 */
#ifndef _GNU_SOURCE
# define _GNU_SOURCE
#endif
#include "blitzio.h"
#include "harness.h"
#include "rt_util.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define WAITERS  8
#define DUMP_CAP 64

/* ---- waiting fibers and futures ------------------------------------------------ */

typedef struct gate {
    blz_notify notify;
    _Atomic int arrived;          /* fibers that reached park_here */
    void *_Atomic site;           /* where park_here returns to in waiter_fn */
    _Atomic unsigned deep_filled; /* the deep waiter's stack filler, kept live */
} gate;

/* Not inlined: its return address is a fixed point of every waiter's stack. */
static __attribute__((noinline)) int
park_here(gate *g)
{
    atomic_store(&g->site, __builtin_return_address(0));
    atomic_fetch_add(&g->arrived, 1);
    int rc = blz_notify_wait(&g->notify);
    __asm__ __volatile__(""); /* no tail call: park_here stays on the stack */
    return rc;
}

typedef struct waiter_arg {
    gate *g;
    intptr_t id;
} waiter_arg;

static void *
waiter_fn(void *arg)
{
    waiter_arg *w = arg;
    int rc = park_here(w->g);
    return (void *) (rc < 0 ? (intptr_t) rc : w->id * 2);
}

/* Waits near the end of a 16 KiB stack: too deep for the dump to unwind. */
static void *
deep_waiter_fn(void *arg)
{
    waiter_arg *w = arg;
    volatile unsigned char fill[12 * 1024];
    for (size_t i = 0; i < sizeof fill; i += 512) {
        fill[i] = (unsigned char) i;
    }
    int rc = park_here(w->g);
    unsigned sum = 0;
    for (size_t i = 0; i < sizeof fill; i += 512) {
        sum += fill[i];
    }
    atomic_store(&w->g->deep_filled, sum);
    return (void *) (rc < 0 ? (intptr_t) rc : w->id * 2);
}

/* A stackless future that waits on the gate: its poll function names it. */
typedef struct gate_future {
    blz_future base;
    blz_notify_wait_future wait;
} gate_future;

static blz_poll
gate_poll(blz_future *self, blz_context *cx)
{
    gate_future *f = (gate_future *) self;
    if (blz_future_poll(&f->wait.base, cx) == BLZ_PENDING) {
        return BLZ_PENDING;
    }
    self->result = f->wait.base.result == 0 ? 7 : f->wait.base.result;
    return BLZ_READY;
}

static void
gate_drop(blz_future *self)
{
    blz_future_drop(&((gate_future *) self)->wait.base);
}

static const blz_future_vtable gate_vt = {gate_poll, gate_drop};

static bool
has_frame(const blz_task_dump *d, void *addr)
{
    for (unsigned i = 0; i < d->nframes; i++) {
        if (d->frames[i] == addr) {
            return true;
        }
    }
    return false;
}

typedef struct census {
    int fibers_waiting;  /* waiting fibers of `fn` */
    int with_site;       /* ... whose backtrace holds the gate's site */
    int without_frames;  /* ... with no frames */
    int futures_waiting; /* waiting futures of gate_poll */
    int running;
    int total;
} census;

static census
take_census(blz_runtime *rt, blz_task_fn fn, void *site)
{
    static blz_task_dump d[DUMP_CAP];
    size_t total = 0;
    int n = blz_runtime_dump(rt, d, DUMP_CAP, &total);
    CHECK(n >= 0);
    census c = {0};
    c.total = (int) total;
    for (int i = 0; i < n; i++) {
        CHECK(d[i].task != NULL);
        if (d[i].state == BLZ_DUMP_RUNNING) {
            c.running++;
        }
        if (d[i].state != BLZ_DUMP_WAITING) {
            CHECK_EQ(d[i].nframes, 0);
            CHECK(d[i].fiber_fn == NULL && d[i].future_fn == NULL);
            continue;
        }
        if (d[i].kind == BLZ_DUMP_FIBER && d[i].fiber_fn == fn) {
            c.fibers_waiting++;
            c.with_site += has_frame(&d[i], site);
            c.without_frames += d[i].nframes == 0;
        }
        if (d[i].kind == BLZ_DUMP_FUTURE && d[i].future_fn == gate_poll) {
            c.futures_waiting++;
        }
    }
    return c;
}

/* Dumps until `want` fibers of fn wait (they are all suspended), at most ~20 s. */
static census
census_when_waiting(blz_runtime *rt, gate *g, blz_task_fn fn, int want_fibers, int want_futures)
{
    census c = {0};
    while (atomic_load(&g->arrived) < want_fibers) { /* then the site is known */
        sched_yield();
    }
    for (int tries = 0; tries < 20000; tries++) {
        c = take_census(rt, fn, atomic_load(&g->site));
        if (c.fibers_waiting == want_fibers && c.futures_waiting == want_futures) {
            break;
        }
        usleep(1000);
    }
    return c;
}

/* A runtime's worth of fibers of one function waiting at one gate. */
typedef struct scene {
    blz_runtime *rt;
    gate g;
    int n;
    waiter_arg args[WAITERS];
    blz_join *joins[WAITERS];
} scene;

static void
scene_start(scene *s, blz_runtime *rt, blz_task_fn fn, int n)
{
    memset(s, 0, sizeof *s);
    s->rt = rt;
    s->n = n;
    blz_notify_init(&s->g.notify);
    for (int i = 0; i < n; i++) {
        s->args[i] = (waiter_arg){&s->g, i + 1};
        CHECK_OK(blz_runtime_spawn(rt, fn, &s->args[i], &s->joins[i]));
    }
}

/* Opens the gate; every fiber must finish with its own result. */
static void
scene_release(scene *s)
{
    blz_notify_all(&s->g.notify);
    for (int i = 0; i < s->n; i++) {
        void *res = NULL;
        CHECK_OK(blz_join_wait(s->joins[i], &res));
        CHECK_EQ((intptr_t) res, s->args[i].id * 2);
    }
}

BLZ_TEST(dump_shows_waiting_fibers_with_their_stacks_and_futures)
{
    blz_runtime *rt = test_runtime(2, 0);
    scene sc;
    scene_start(&sc, rt, waiter_fn, WAITERS);
    blz_join *fj[2];
    gate_future gf;
    for (int i = 0; i < 2; i++) {
        memset(&gf, 0, sizeof gf);
        blz_future_init(&gf.base, &gate_vt);
        blz_notify_wait_fut(&sc.g.notify, &gf.wait);
        CHECK_OK(blz_runtime_spawn_future(rt, &gf.base, sizeof gf, &fj[i]));
    }

    census c = census_when_waiting(rt, &sc.g, waiter_fn, WAITERS, 2);
    CHECK_EQ(c.fibers_waiting, WAITERS);
    CHECK_EQ(c.futures_waiting, 2);
    CHECK_EQ(c.with_site, WAITERS); /* every backtrace reaches park_here's caller */
    CHECK_EQ(c.total, WAITERS + 2);
    CHECK_EQ(c.running, 0);

    /* Traced tasks carry on as if never looked at. */
    scene_release(&sc);
    for (int i = 0; i < 2; i++) {
        void *res = NULL;
        CHECK_OK(blz_join_wait(fj[i], &res));
        CHECK_EQ((intptr_t) res, 7);
    }
    size_t total = 1;
    CHECK_EQ(blz_runtime_dump(rt, NULL, 0, &total), 0);
    CHECK_EQ(total, 0);
    blz_runtime_free(rt);
}

/* From a task of the runtime: itself running, the others waiting. */
typedef struct inside_arg {
    gate *g;
    census c;
} inside_arg;

static void *
inside_dumper(void *arg)
{
    inside_arg *a = arg;
    a->c = census_when_waiting(blz_runtime_current(), a->g, waiter_fn, WAITERS, 0);
    return NULL;
}

BLZ_TEST(dump_from_inside_a_task)
{
    blz_runtime *rt = test_runtime(2, 0);
    scene sc;
    scene_start(&sc, rt, waiter_fn, WAITERS);
    inside_arg a = {&sc.g, {0}};
    CHECK_OK(blz_runtime_block_on(rt, inside_dumper, &a, NULL));
    CHECK_EQ(a.c.fibers_waiting, WAITERS);
    CHECK_EQ(a.c.with_site, WAITERS);
    CHECK(a.c.running >= 1); /* the dumper itself */
    scene_release(&sc);
    blz_runtime_free(rt);
}

BLZ_TEST(dump_does_not_unwind_a_fiber_near_its_stack_end)
{
    blz_runtime *rt = test_runtime(1, 16 * 1024);
    scene sc;
    scene_start(&sc, rt, deep_waiter_fn, 1);
    census c = census_when_waiting(rt, &sc.g, deep_waiter_fn, 1, 0);
    CHECK_EQ(c.fibers_waiting, 1);
    CHECK_EQ(c.without_frames, 1);
    scene_release(&sc);
    unsigned want = 0;
    for (size_t i = 0; i < 12 * 1024; i += 512) {
        want += (unsigned char) i;
    }
    CHECK_EQ(atomic_load(&sc.g.deep_filled), want); /* its stack came back intact */
    blz_runtime_free(rt);
}

BLZ_TEST(dump_bad_arguments_and_a_small_buffer)
{
    blz_task_dump d[2];
    size_t total = 99;
    CHECK_EQ(blz_runtime_dump(NULL, d, 2, &total), -EINVAL);
    CHECK_EQ(total, 99);
    CHECK_EQ(blz_runtime_dump_fd(NULL, 1), -EINVAL);
    blz_runtime *rt = test_runtime(1, 0);
    CHECK_EQ(blz_runtime_dump(rt, NULL, 1, &total), -EINVAL);
    CHECK_EQ(blz_runtime_dump_fd(rt, -1), -EINVAL);
    scene sc;
    scene_start(&sc, rt, waiter_fn, WAITERS);
    census c = census_when_waiting(rt, &sc.g, waiter_fn, WAITERS, 0);
    CHECK_EQ(c.fibers_waiting, WAITERS);
    CHECK_EQ(blz_runtime_dump(rt, d, 2, &total), 2); /* two filled, all counted */
    CHECK_EQ(total, WAITERS);
    CHECK_EQ(blz_runtime_dump(rt, d, 2, NULL), 2);
    scene_release(&sc);
    blz_runtime_free(rt);
}

/* Counts the lines of `text` that contain `needle`. */
static int
count_lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t) (end - line) : strlen(line);
        const char *hit = strstr(line, needle);
        if (hit && hit < line + len) {
            n++;
        }
        line = end ? end + 1 : NULL;
    }
    return n;
}

BLZ_TEST(dump_fd_writes_a_line_per_task_and_the_frames)
{
    blz_runtime *rt = test_runtime(2, 0);
    scene sc;
    scene_start(&sc, rt, waiter_fn, WAITERS);
    census c = census_when_waiting(rt, &sc.g, waiter_fn, WAITERS, 0);
    CHECK_EQ(c.fibers_waiting, WAITERS);
    FILE *tmp = tmpfile();
    CHECK(tmp != NULL);
    CHECK_OK(blz_runtime_dump_fd(rt, fileno(tmp)));
    static char text[1 << 16];
    rewind(tmp);
    size_t len = fread(text, 1, sizeof text - 1, tmp);
    text[len] = '\0';
    fclose(tmp);
    char header[64];
    snprintf(header, sizeof header, "blitzio task dump: %d tasks\n", WAITERS);
    CHECK(strncmp(text, header, strlen(header)) == 0);
    CHECK_EQ(count_lines_with(text, " fiber waiting in "), WAITERS);
    CHECK(count_lines_with(text, "    #0 ") == WAITERS); /* each with its frames */
    scene_release(&sc);
    blz_runtime_free(rt);
}

/* ---- dumps racing with busy tasks ------------------------------------------------- */

#define PAIRS        2
#define ROUNDS       20000
#define WAITING_SEEN 100 /* waiting tasks the dumper must have held meanwhile */

typedef struct dumper {
    blz_runtime *rt;
    _Atomic bool stop;
    _Atomic long dumps;
    _Atomic long waiting_seen;
} dumper;

typedef struct pingpong {
    blz_notify to_a, to_b;
    dumper *d;
    _Atomic bool over;
    _Atomic long rounds_done;
} pingpong;

/* Plays at least ROUNDS rounds, and goes on until the dumper has held
 * waiting tasks WAITING_SEEN times: a dumper kept off the CPU throughout
 * would test nothing. */
static void *
ping_fn(void *arg)
{
    pingpong *p = arg;
    for (long i = 0;; i++) {
        if (i >= ROUNDS && atomic_load(&p->d->waiting_seen) >= WAITING_SEEN) {
            atomic_store(&p->over, true);
            blz_notify_one(&p->to_b);
            return NULL;
        }
        blz_notify_one(&p->to_b);
        CHECK_OK(blz_notify_wait(&p->to_a));
    }
}

static void *
pong_fn(void *arg)
{
    pingpong *p = arg;
    for (;;) {
        CHECK_OK(blz_notify_wait(&p->to_b));
        if (atomic_load(&p->over)) {
            return NULL;
        }
        atomic_fetch_add(&p->rounds_done, 1);
        blz_notify_one(&p->to_a);
    }
}

static void *
dumper_thread(void *arg)
{
    dumper *d = arg;
    static blz_task_dump buf[DUMP_CAP];
    while (!atomic_load(&d->stop)) {
        int n = blz_runtime_dump(d->rt, buf, DUMP_CAP, NULL);
        CHECK(n >= 0);
        long waiting = 0;
        for (int i = 0; i < n; i++) {
            waiting += buf[i].state == BLZ_DUMP_WAITING;
        }
        atomic_fetch_add(&d->waiting_seen, waiting);
        atomic_fetch_add(&d->dumps, 1);
    }
    return NULL;
}

BLZ_TEST(dumps_racing_with_wakes_lose_none)
{
    blz_runtime *rt = test_runtime(2, 0);
    static dumper d;
    memset(&d, 0, sizeof d);
    d.rt = rt;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, dumper_thread, &d) == 0);
    pingpong pp[PAIRS];
    blz_join *joins[2 * PAIRS];
    for (int i = 0; i < PAIRS; i++) {
        memset(&pp[i], 0, sizeof pp[i]);
        pp[i].d = &d;
        blz_notify_init(&pp[i].to_a);
        blz_notify_init(&pp[i].to_b);
        CHECK_OK(blz_runtime_spawn(rt, ping_fn, &pp[i], &joins[2 * i]));
        CHECK_OK(blz_runtime_spawn(rt, pong_fn, &pp[i], &joins[2 * i + 1]));
    }
    /* A lost wake would leave a pair waiting on each other: the join hangs
     * and the harness's timeout fails the test. */
    for (int i = 0; i < 2 * PAIRS; i++) {
        CHECK_OK(blz_join_wait(joins[i], NULL));
    }
    atomic_store(&d.stop, true);
    CHECK(pthread_join(th, NULL) == 0);
    for (int i = 0; i < PAIRS; i++) {
        CHECK_GE(atomic_load(&pp[i].rounds_done), ROUNDS);
    }
    CHECK_GE(atomic_load(&d.waiting_seen), WAITING_SEEN);
    blz_runtime_free(rt);
}

BLZ_TEST(aborts_while_dumping_are_not_lost)
{
    blz_runtime *rt = test_runtime(2, 0);
    for (int iter = 0; iter < 50; iter++) {
        static dumper d;
        memset(&d, 0, sizeof d);
        d.rt = rt;
        pthread_t th;
        CHECK(pthread_create(&th, NULL, dumper_thread, &d) == 0);
        scene sc;
        scene_start(&sc, rt, waiter_fn, WAITERS);
        while (atomic_load(&sc.g.arrived) < WAITERS) {
            sched_yield();
        }
        for (int i = 0; i < WAITERS; i++) {
            blz_join_abort(sc.joins[i]);
        }
        for (int i = 0; i < WAITERS; i++) {
            void *res = NULL;
            int rc = blz_join_wait(sc.joins[i], &res);
            CHECK(rc == -ECANCELED || (rc == 0 && (intptr_t) res == -ECANCELED));
        }
        atomic_store(&d.stop, true);
        CHECK(pthread_join(th, NULL) == 0);
        size_t total = 1;
        CHECK_EQ(blz_runtime_dump(rt, NULL, 0, &total), 0);
        CHECK_EQ(total, 0);
    }
    blz_runtime_free(rt);
}
