/*
 * Runtime basics: block_on, spawn of every kind from every context, join,
 * abort, the current-thread flavour, several runtimes at once, teardown with
 * pending tasks, and the error paths of the public calls.
 */
#include "blitzio.h"
#include "harness.h"
#include "poll_util.h"
#include "rt_util.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* A future that never finishes; its drop counts. */
static atomic_int forever_drops;

static blz_poll
forever_poll(blz_future *f, blz_context *cx)
{
    (void) f;
    (void) cx;
    return BLZ_PENDING;
}

static void
forever_drop(blz_future *f)
{
    (void) f;
    atomic_fetch_add(&forever_drops, 1);
}

static const blz_future_vtable forever_vt = {forever_poll, forever_drop};

static void *
return_arg(void *arg)
{
    return arg;
}

BLZ_TEST(block_on_returns_value)
{
    blz_runtime *rt = test_new_rt(2);
    void *out = NULL;
    CHECK_OK(blz_runtime_block_on(rt, return_arg, (void *) 42, &out));
    CHECK_EQ((intptr_t) out, 42);
    blz_runtime_free(rt);
}

static void *
run_body(void *arg)
{
    atomic_int *flag = arg;
    atomic_store(flag, 1);
    return NULL;
}

BLZ_TEST(run_runs_once)
{
    atomic_int flag = 0;
    CHECK_OK(blz_run(run_body, &flag));
    CHECK_EQ(atomic_load(&flag), 1);
}

static void *
spawn_many_stackless(void *arg)
{
    size_t n = (size_t) arg;
    blz_join **joins = malloc(n * sizeof *joins);
    CHECK(joins != NULL);
    for (size_t i = 0; i < n; i++) {
        ready_future f = READY_FUTURE((int) (i & 0xffff));
        CHECK_OK(blz_spawn_future(&f.base, sizeof f, &joins[i]));
    }
    for (size_t i = 0; i < n; i++) {
        void *v = (void *) -1;
        CHECK_OK(blz_join_wait(joins[i], &v));
        CHECK_EQ((intptr_t) v, (intptr_t) (i & 0xffff));
    }
    free(joins);
    return NULL;
}

BLZ_TEST(stackless_spawn_and_join_100k)
{
    blz_runtime *rt = test_new_rt(2);
    CHECK_OK(blz_runtime_block_on(rt, spawn_many_stackless, (void *) 100000, NULL));
    blz_metrics m;
    blz_runtime_metrics(rt, &m);
    CHECK_GE(m.tasks_spawned, 100001);
    blz_runtime_free(rt);
}

static void *
child_fiber(void *arg)
{
    return (void *) ((intptr_t) arg * 2);
}

static void *
spawn_fibers(void *arg)
{
    (void) arg;
    blz_join *j[64];
    for (int i = 0; i < 64; i++) {
        CHECK_OK(blz_spawn(child_fiber, (void *) (intptr_t) i, &j[i]));
    }
    for (int i = 0; i < 64; i++) {
        void *v;
        CHECK_OK(blz_join_wait(j[i], &v));
        CHECK_EQ((intptr_t) v, 2 * i);
    }
    return NULL;
}

BLZ_TEST(fiber_spawns_fibers)
{
    blz_runtime *rt = test_new_rt(2);
    CHECK_OK(blz_runtime_block_on(rt, spawn_fibers, NULL, NULL));
    blz_runtime_free(rt);
}

/* A stackless task that spawns a fiber and waits for it with a join future. */
typedef struct spawner_future {
    blz_future base;
    blz_join_future join;
} spawner_future;

static blz_poll
spawner_poll(blz_future *self, blz_context *cx)
{
    spawner_future *s = (spawner_future *) self;
    BLZ_ASYNC_BEGIN(self);
    {
        blz_join *j;
        CHECK_OK(blz_spawn(child_fiber, (void *) 21, &j));
        blz_join_wait_fut(j, &s->join);
    }
    BLZ_AWAIT(self, cx, &s->join.base);
    CHECK_EQ(s->join.base.result, 0);
    BLZ_ASYNC_RETURN(self, (int) (intptr_t) s->join.output);
    BLZ_ASYNC_END(self);
}

static const blz_future_vtable spawner_vt = {spawner_poll, NULL};

static void *
spawn_from_stackless(void *arg)
{
    (void) arg;
    spawner_future f;
    blz_future_init(&f.base, &spawner_vt);
    blz_join *j;
    CHECK_OK(blz_spawn_future(&f.base, sizeof f, &j));
    void *v;
    CHECK_OK(blz_join_wait(j, &v));
    CHECK_EQ((intptr_t) v, 42);
    return NULL;
}

BLZ_TEST(stackless_spawns_fiber_and_awaits_join)
{
    blz_runtime *rt = test_new_rt(2);
    CHECK_OK(blz_runtime_block_on(rt, spawn_from_stackless, NULL, NULL));
    blz_runtime_free(rt);
}

static void *
foreign_spawner(void *arg)
{
    blz_runtime *rt = arg;
    for (int i = 0; i < 1000; i++) {
        blz_join *j;
        CHECK_OK(blz_runtime_spawn(rt, child_fiber, (void *) (intptr_t) i, &j));
        void *v;
        CHECK_OK(blz_join_wait(j, &v)); /* parks this foreign thread */
        CHECK_EQ((intptr_t) v, 2 * i);
        ready_future f = READY_FUTURE(i);
        CHECK_OK(blz_runtime_spawn_future(rt, &f.base, sizeof f, &j));
        CHECK_OK(blz_join_wait(j, &v));
        CHECK_EQ((intptr_t) v, i);
    }
    return NULL;
}

BLZ_TEST(spawn_from_foreign_threads)
{
    blz_runtime *rt = test_new_rt(2);
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(pthread_create(&th[i], NULL, foreign_spawner, rt), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
    }
    blz_runtime_free(rt);
}

typedef struct await_probe {
    atomic_int started; /* set just before the fiber awaits */
    atomic_int result;  /* what its await returned */
} await_probe;

static void *
await_forever(void *arg)
{
    await_probe *p = arg;
    blz_future f;
    blz_future_init(&f, &forever_vt);
    atomic_store(&p->started, 1);
    atomic_store(&p->result, blz_await(&f));
    return (void *) 7;
}

static void *
abort_blocked_fiber(void *arg)
{
    (void) arg;
    await_probe probe = {0, 1};
    blz_join *j;
    CHECK_OK(blz_spawn(await_forever, &probe, &j));
    while (!atomic_load(&probe.started)) {
        blz_yield();
    }
    blz_join_abort(j);
    void *v = (void *) 1;
    CHECK_EQ(blz_join_wait(j, &v), -ECANCELED);
    CHECK_PTR_EQ(v, NULL);
    CHECK_EQ(atomic_load(&probe.result), -ECANCELED); /* the fiber saw the cancellation */
    CHECK_EQ(atomic_load(&forever_drops), 1);         /* and its future was dropped */
    return NULL;
}

BLZ_TEST(abort_fiber_blocked_in_await)
{
    atomic_store(&forever_drops, 0);
    blz_runtime *rt = test_new_rt(2);
    CHECK_OK(blz_runtime_block_on(rt, abort_blocked_fiber, NULL, NULL));
    blz_runtime_free(rt);
}

/* A fiber aborted while it runs its last stretch, with no wait left to
 * see the abort in: what it returns (memory it hands over here) is the
 * task's value, not dropped. The test thread aborts it only once it runs,
 * then lets it finish. */
static atomic_int late_running, late_go;

static void *
late_abort_fiber(void *arg)
{
    (void) arg;
    atomic_store(&late_running, 1);
    for (long spins = 0; !atomic_load(&late_go) && spins < 4000000000L; spins++) {
    }
    int *v = malloc(sizeof *v);
    if (v) {
        *v = 42;
    }
    return v;
}

BLZ_TEST(abort_after_the_last_wait_keeps_the_value)
{
    blz_runtime *rt = test_new_rt(1);
    for (int round = 0; round < 20; round++) {
        atomic_store(&late_running, 0);
        atomic_store(&late_go, 0);
        blz_join *j;
        CHECK_OK(blz_runtime_spawn(rt, late_abort_fiber, NULL, &j));
        while (!atomic_load(&late_running)) {
            sched_yield();
        }
        blz_join_abort(j);
        atomic_store(&late_go, 1);
        void *v = NULL;
        CHECK_EQ(blz_join_wait(j, &v), 0);
        CHECK(v != NULL);
        if (v) {
            CHECK_EQ(*(int *) v, 42);
        }
        free(v);
    }
    blz_runtime_free(rt);
}

static void *
abort_stackless(void *arg)
{
    (void) arg;
    blz_future f;
    blz_future_init(&f, &forever_vt);
    blz_join *j;
    CHECK_OK(blz_spawn_future(&f, sizeof f, &j));
    for (int i = 0; i < 10; i++) {
        blz_yield();
    }
    CHECK(!blz_join_is_finished(j));
    blz_join_abort(j);
    CHECK_EQ(blz_join_wait(j, NULL), -ECANCELED);
    CHECK(atomic_load(&forever_drops) == 1);
    return NULL;
}

BLZ_TEST(abort_pending_stackless_drops_future)
{
    atomic_store(&forever_drops, 0);
    blz_runtime *rt = test_new_rt(2);
    CHECK_OK(blz_runtime_block_on(rt, abort_stackless, NULL, NULL));
    blz_runtime_free(rt);
}

static void *
leave_pending_work(void *arg)
{
    (void) arg;
    for (int i = 0; i < 100; i++) {
        blz_future f;
        blz_future_init(&f, &forever_vt);
        CHECK_OK(blz_spawn_future(&f, sizeof f, NULL));
        static await_probe probes[100];
        CHECK_OK(blz_spawn(await_forever, &probes[i], NULL));
    }
    return NULL;
}

BLZ_TEST(free_with_pending_tasks_leaks_nothing)
{
    blz_test_counting_allocator_install();
    atomic_store(&forever_drops, 0);
    blz_runtime *rt = test_new_rt(2);
    CHECK_OK(blz_runtime_block_on(rt, leave_pending_work, NULL, NULL));
    blz_runtime_free(rt);
    CHECK_EQ(blz_test_alloc_live(), 0);
}

BLZ_TEST(current_thread_flavor)
{
    blz_runtime *rt = test_current_thread_rt();
    CHECK_EQ(blz_runtime_workers(rt), 1);
    CHECK_OK(blz_runtime_block_on(rt, spawn_many_stackless, (void *) 10000, NULL));
    CHECK_OK(blz_runtime_block_on(rt, spawn_fibers, NULL, NULL));
    CHECK_OK(blz_runtime_block_on(rt, spawn_from_stackless, NULL, NULL));
    blz_runtime_free(rt);
}

static void *
two_runtimes_body(void *arg)
{
    blz_runtime *other = arg;
    /* Work on another runtime, awaited from this one's fiber. */
    blz_join *j;
    CHECK_OK(blz_runtime_spawn(other, child_fiber, (void *) 5, &j));
    void *v;
    CHECK_OK(blz_join_wait(j, &v));
    CHECK_EQ((intptr_t) v, 10);
    return spawn_fibers(NULL);
}

BLZ_TEST(two_runtimes_at_once)
{
    blz_runtime *a = test_new_rt(2);
    blz_runtime *b = test_new_rt(1);
    CHECK_OK(blz_runtime_block_on(a, two_runtimes_body, b, NULL));
    CHECK_OK(blz_runtime_block_on(b, two_runtimes_body, a, NULL));
    blz_runtime_free(a);
    blz_runtime_free(b);
}

/* blz_await from inside a stackless poll must refuse, not block the worker. */
typedef struct deadlock_future {
    blz_future base;
} deadlock_future;

static blz_poll
deadlock_poll(blz_future *self, blz_context *cx)
{
    (void) cx;
    blz_future inner;
    blz_future_init(&inner, &forever_vt);
    self->result = blz_await(&inner);
    return BLZ_READY;
}

static const blz_future_vtable deadlock_vt = {deadlock_poll, NULL};

static void *
await_in_stackless(void *arg)
{
    (void) arg;
    deadlock_future f;
    blz_future_init(&f.base, &deadlock_vt);
    blz_join *j;
    CHECK_OK(blz_spawn_future(&f.base, sizeof f, &j));
    void *v;
    CHECK_OK(blz_join_wait(j, &v));
    CHECK_EQ((intptr_t) v, -EDEADLK);
    return NULL;
}

BLZ_TEST(await_inside_stackless_poll_is_edeadlk)
{
    blz_runtime *rt = test_new_rt(2);
    CHECK_OK(blz_runtime_block_on(rt, await_in_stackless, NULL, NULL));
    blz_runtime_free(rt);
}

static void *
nested_block_on(void *arg)
{
    blz_runtime *rt = arg;
    CHECK_EQ(blz_runtime_block_on(rt, return_arg, NULL, NULL), -EDEADLK);
    return NULL;
}

/* More ready tasks than the local queue holds, on one worker: the ones that
 * overflowed to the inject queue are not overtaken by tasks that become
 * ready later (here: by yielding). Every task's first poll must come before
 * any task's second one; when later wakes went to the local queue ahead of
 * the overflow, the first 256 tasks cycled through theirs long before the
 * overflowed ones got a first poll (hundreds of ms of tail latency with a
 * thousand connections). */
enum { FAIR_TASKS = 1000 };
static _Atomic unsigned fair_seq;
static unsigned fair_first[FAIR_TASKS], fair_second[FAIR_TASKS];

static void *
fair_task(void *arg)
{
    unsigned i = (unsigned) (uintptr_t) arg;
    fair_first[i] = atomic_fetch_add(&fair_seq, 1);
    blz_yield();
    fair_second[i] = atomic_fetch_add(&fair_seq, 1);
    return NULL;
}

static void *
fair_root(void *arg)
{
    (void) arg;
    static blz_join *js[FAIR_TASKS];
    for (unsigned i = 0; i < FAIR_TASKS; i++) {
        CHECK_OK(blz_spawn(fair_task, (void *) (uintptr_t) i, &js[i]));
    }
    for (unsigned i = 0; i < FAIR_TASKS; i++) {
        CHECK_OK(blz_join_wait(js[i], NULL));
    }
    return NULL;
}

BLZ_TEST(overflowed_tasks_are_not_overtaken)
{
    blz_runtime *rt = test_new_rt(1);
    CHECK_OK(blz_runtime_block_on(rt, fair_root, NULL, NULL));
    blz_runtime_free(rt);
    unsigned last_first = 0, first_second = ~0u;
    for (unsigned i = 0; i < FAIR_TASKS; i++) {
        last_first = fair_first[i] > last_first ? fair_first[i] : last_first;
        first_second = fair_second[i] < first_second ? fair_second[i] : first_second;
    }
    CHECK_LT(last_first, first_second);
}

/* Tasks that overflow the local queue while their spawner keeps running
 * (a root that spawns thousands, then computes without yielding) must reach
 * the other worker during that poll, not only after it: the worker hands its
 * overflow to the inject queue in batches as it goes. The local queue holds
 * at most 256 of them, so the other worker can only get past SPILL_WANT by
 * running tasks that went through the inject queue. */
enum { SPILL_TASKS = 2000, SPILL_WANT = SPILL_TASKS - 300 };
static _Atomic unsigned spill_ran;

static void *
spill_task(void *arg)
{
    (void) arg;
    atomic_fetch_add(&spill_ran, 1);
    return NULL;
}

static void *
spill_root(void *arg)
{
    (void) arg;
    static blz_join *js[SPILL_TASKS];
    for (unsigned i = 0; i < SPILL_TASKS; i++) {
        CHECK_OK(blz_spawn(spill_task, NULL, &js[i]));
    }
    /* Busy on this worker, no yield; a generous deadline only guards a hang. */
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (atomic_load(&spill_ran) < SPILL_WANT) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        CHECK_LT(now.tv_sec - t0.tv_sec, 60);
    }
    for (unsigned i = 0; i < SPILL_TASKS; i++) {
        CHECK_OK(blz_join_wait(js[i], NULL));
    }
    return NULL;
}

BLZ_TEST(overflow_reaches_other_workers_during_a_long_poll)
{
    blz_runtime *rt = test_new_rt(2);
    CHECK_OK(blz_runtime_block_on(rt, spill_root, NULL, NULL));
    blz_runtime_free(rt);
    CHECK_EQ(atomic_load(&spill_ran), (unsigned) SPILL_TASKS);
}

/* A short queue is left to an owner that is draining it, but not to one
 * stuck in a long poll: tasks queued behind a root that spins until they
 * have run can only run on the other worker, by stealing. The last one
 * spawned sits in the LIFO slot, which is never stolen, so the root waits
 * for the others. Repeated, so each round's thief arrives at a different
 * moment: one that saw the queue draining (the root between rounds) and
 * went to sleep must come back for it (QUEUES_SHORT in rt/worker.c); without that, this hung in
 * every one of 30 runs on a machine kept busy by two CPU hogs. */
enum { SHORT_TASKS = 4, SHORT_ROUNDS = 500 };
static _Atomic unsigned short_ran;

static void *
short_task(void *arg)
{
    (void) arg;
    atomic_fetch_add(&short_ran, 1);
    return NULL;
}

static void *
short_root(void *arg)
{
    (void) arg;
    for (unsigned round = 0; round < SHORT_ROUNDS; round++) {
        atomic_store(&short_ran, 0);
        blz_join *js[SHORT_TASKS];
        for (unsigned i = 0; i < SHORT_TASKS; i++) {
            CHECK_OK(blz_spawn(short_task, NULL, &js[i]));
        }
        /* No yield: only a thief can run them. The deadline only guards a hang. */
        struct timespec t0, now;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (atomic_load(&short_ran) < SHORT_TASKS - 1) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            CHECK_LT(now.tv_sec - t0.tv_sec, 60);
        }
        for (unsigned i = 0; i < SHORT_TASKS; i++) {
            CHECK_OK(blz_join_wait(js[i], NULL));
        }
    }
    return NULL;
}

BLZ_TEST(short_queue_behind_a_long_poll_is_stolen)
{
    blz_runtime *rt = test_new_rt(2);
    CHECK_OK(blz_runtime_block_on(rt, short_root, NULL, NULL));
    blz_runtime_free(rt);
}

/* The default worker count follows the CPUs the process may use, so a
 * server started under `taskset -c 0` gets one worker, not one per core. */
BLZ_TEST(default_workers_follow_affinity)
{
    unsetenv("BLZ_WORKERS"); /* each test runs in its own process */
    cpu_set_t set;
    CHECK_EQ(sched_getaffinity(0, sizeof set, &set), 0);
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    CHECK_EQ(cfg.workers, (unsigned) CPU_COUNT(&set));
    int first = -1;
    for (int c = 0; c < CPU_SETSIZE && first < 0; c++) {
        if (CPU_ISSET(c, &set)) {
            first = c;
        }
    }
    CPU_ZERO(&set);
    CPU_SET(first, &set);
    CHECK_EQ(sched_setaffinity(0, sizeof set, &set), 0);
    blz_runtime_config_default(&cfg);
    CHECK_EQ(cfg.workers, 1u);
    setenv("BLZ_WORKERS", "3", 1);
    blz_runtime_config_default(&cfg);
    CHECK_EQ(cfg.workers, 3u);
}

BLZ_TEST(error_paths)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    blz_runtime *rt = NULL;
    CHECK_EQ(blz_runtime_new(&cfg, NULL), -EINVAL);
    cfg.workers = 0;
    CHECK_EQ(blz_runtime_new(&cfg, &rt), -EINVAL);
    cfg.workers = 1000;
    CHECK_EQ(blz_runtime_new(&cfg, &rt), -EINVAL);
    blz_runtime_config_default(&cfg);
    cfg.flavor = (blz_flavor) 7;
    CHECK_EQ(blz_runtime_new(&cfg, &rt), -EINVAL);
    CHECK_EQ(blz_spawn(child_fiber, NULL, NULL), -ESRCH); /* no current runtime */
    CHECK_EQ(blz_spawn_future(NULL, 0, NULL), -ESRCH);
    CHECK_EQ(blz_join_wait(NULL, NULL), -EINVAL);
    CHECK_EQ(blz_await(NULL), -EINVAL);
    CHECK(!blz_join_is_finished(NULL));
    blz_join_abort(NULL);
    blz_join_detach(NULL);
    blz_runtime_free(NULL);
    rt = test_new_rt(1);
    CHECK_EQ(blz_runtime_spawn(rt, NULL, NULL, NULL), -EINVAL);
    CHECK_EQ(blz_runtime_spawn_future(rt, NULL, 16, NULL), -EINVAL);
    ready_future f = READY_FUTURE(1);
    CHECK_EQ(blz_runtime_spawn_future(rt, &f.base, 4, NULL), -EINVAL);
    CHECK_EQ(blz_runtime_block_on(rt, NULL, NULL, NULL), -EINVAL);
    CHECK_OK(blz_runtime_block_on(rt, nested_block_on, rt, NULL));
    CHECK_EQ(blz_runtime_advance(rt, blz_ms(1)), -EINVAL); /* real clock */
    blz_runtime_free(rt);
    CHECK_STR_EQ(blz_errname(-EAGAIN), "EAGAIN");
    CHECK_STR_EQ(blz_errname(ECANCELED), "ECANCELED");
    CHECK_STR_EQ(blz_errname(-99999), "UNKNOWN");
    CHECK(strlen(blz_strerror(-EPIPE)) > 0);
}

/* common.h promises that blz_errname and blz_strerror name any code. The
 * public headers document codes (and the system calls behind them pass
 * through codes) beyond the handful the runtime itself makes up; each must
 * get its name and a message, not "UNKNOWN". */
BLZ_TEST(errname_names_the_codes_the_headers_document)
{
    static const struct {
        int code;
        const char *name;
    } documented[] = {
        {EXDEV, "EXDEV"},               /* fs.h: rename, hard link across file systems */
        {EFBIG, "EFBIG"},               /* fs.h, stream.h: a file or read too large */
        {ENOEXEC, "ENOEXEC"},           /* process.h: not an executable */
        {EDESTADDRREQ, "EDESTADDRREQ"}, /* net.h: send on an unconnected UDP socket */
        {ENODEV, "ENODEV"},             /* net.h: unknown interface index */
        {EROFS, "EROFS"},               /* open or write on a read-only file system */
        {EDQUOT, "EDQUOT"},             /* write past the disk quota */
        {EMLINK, "EMLINK"},             /* link, mkdir at the link limit */
        {ETXTBSY, "ETXTBSY"},           /* write to a running executable, spawn of an open one */
        {E2BIG, "E2BIG"},               /* spawn with arguments too long */
        {ENXIO, "ENXIO"},               /* open of a FIFO for writing with no reader */
        {ENOTTY, "ENOTTY"},             /* an ioctl the fd does not support */
        {EPROTO, "EPROTO"},             /* accept, connect: protocol error */
        {ENOPROTOOPT, "ENOPROTOOPT"},   /* a socket option the protocol lacks */
        {EHOSTDOWN, "EHOSTDOWN"},       /* connect, send: host is down */
    };
    for (size_t i = 0; i < sizeof documented / sizeof documented[0]; i++) {
        CHECK_STR_EQ(blz_errname(-documented[i].code), documented[i].name);
        CHECK_STR_EQ(blz_errname(documented[i].code), documented[i].name);
        CHECK(strcmp(blz_strerror(-documented[i].code), "unknown error") != 0);
    }
    /* The one negative int without a positive counterpart. */
    CHECK_STR_EQ(blz_errname(INT_MIN), "UNKNOWN");
    CHECK_STR_EQ(blz_strerror(INT_MIN), "unknown error");
}

/* ---- switching the allocator between runtimes ---- */

/* The second allocator: its blocks carry a tag, so that a block of the first
 * allocator handed to its free is recognised (and left alone) instead of
 * corrupting the heap. */
#define TAGGED_MAGIC  0x7a67u
#define TAGGED_PREFIX 16

static atomic_int tagged_foreign_frees;

static void *
tagged_malloc(size_t n)
{
    unsigned char *b = malloc(n + TAGGED_PREFIX);
    if (!b) {
        return NULL;
    }
    unsigned magic = TAGGED_MAGIC;
    memcpy(b, &magic, sizeof magic);
    return b + TAGGED_PREFIX;
}

static void
tagged_free(void *p)
{
    if (!p) {
        return;
    }
    unsigned char *b = (unsigned char *) p - TAGGED_PREFIX;
    unsigned magic;
    memcpy(&magic, b, sizeof magic);
    if (magic != TAGGED_MAGIC) {
        atomic_fetch_add(&tagged_foreign_frees, 1); /* not ours: leave it */
        return;
    }
    free(b);
}

static void *
tagged_realloc(void *p, size_t n)
{
    void *q = tagged_malloc(n);
    if (q && p) {
        memcpy(q, p, n); /* only for blocks at least n long, which blitzio never shrinks here */
        tagged_free(p);
    }
    return q;
}

static void *
return_seven(void *arg)
{
    (void) arg;
    return (void *) (intptr_t) 7;
}

typedef struct helper_thread {
    blz_runtime *rt;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool joined;   /* the helper waited for its task */
    bool may_exit; /* the test switched allocators */
} helper_thread;

/* A thread outside the runtime that waits for a task (so it has a parker and
 * may cache the task's cell), then lives on past the runtime. */
static void *
helper_main(void *arg)
{
    helper_thread *h = arg;
    for (int i = 0; i < 64; i++) {
        blz_join *j;
        CHECK_OK(blz_runtime_spawn(h->rt, return_seven, NULL, &j));
        void *r = NULL;
        CHECK_OK(blz_join_wait(j, &r));
        CHECK_EQ((intptr_t) r, 7);
    }
    pthread_mutex_lock(&h->lock);
    h->joined = true;
    pthread_cond_broadcast(&h->cond);
    while (!h->may_exit) {
        pthread_cond_wait(&h->cond, &h->lock);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL; /* its thread-local blocks are released as it exits */
}

/* common.h: install the allocator before creating a runtime. With none alive,
 * another thread may still hold blocks of the old allocator for itself (the
 * parker it waited on, its cache of task cells); each must go back to the
 * allocator that made it, never to the one installed since. */
BLZ_TEST(allocator_switched_between_runtimes_frees_each_block_with_its_own)
{
    blz_test_counting_allocator_install();
    helper_thread h = {.rt = test_new_rt(2)};
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.cond, NULL);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, helper_main, &h), 0);
    pthread_mutex_lock(&h.lock);
    while (!h.joined) {
        pthread_cond_wait(&h.cond, &h.lock);
    }
    pthread_mutex_unlock(&h.lock);
    blz_runtime_free(h.rt);

    blz_set_allocator(tagged_malloc, tagged_realloc, tagged_free);
    /* A runtime of the new allocator, used on this thread, then freed. */
    blz_runtime *rt = test_new_rt(1);
    void *r = NULL;
    CHECK_OK(blz_runtime_block_on(rt, return_seven, NULL, &r));
    blz_runtime_free(rt);
    pthread_mutex_lock(&h.lock);
    h.may_exit = true;
    pthread_cond_broadcast(&h.cond);
    pthread_mutex_unlock(&h.lock);
    CHECK_EQ(pthread_join(t, NULL), 0);
    blz_test_counting_allocator_install();

    CHECK_EQ(atomic_load(&tagged_foreign_frees), 0);
    CHECK_EQ(blz_test_alloc_live(), 0); /* the helper's blocks went back to the counter */
    pthread_cond_destroy(&h.cond);
    pthread_mutex_destroy(&h.lock);
}

/* A NULL future is ignored by the task module's fill functions, as by every
 * other module's: there is nothing to report an error into. */
BLZ_TEST(null_future_is_ignored)
{
    blz_join_wait_fut(NULL, NULL);
    blz_yield_fut(NULL);
    blz_runtime *rt = test_new_rt(1);
    blz_runtime_spawn_blocking_fut(rt, child_fiber, NULL, NULL);
    blz_runtime_free(rt);
}

static void *
blocking_job(void *arg)
{
    pthread_barrier_t *b = arg;
    pthread_barrier_wait(b); /* really blocks: every job needs its own thread */
    return (void *) 3;
}

static void *
blocking_growth(void *arg)
{
    pthread_barrier_t *b = arg;
    blz_join *j[8];
    for (int i = 0; i < 8; i++) {
        CHECK_OK(blz_spawn_blocking(blocking_job, b, &j[i]));
    }
    pthread_barrier_wait(b); /* the ninth party: only reached if 8 threads run at once */
    for (int i = 0; i < 8; i++) {
        void *v;
        CHECK_OK(blz_join_wait(j[i], &v));
        CHECK_EQ((intptr_t) v, 3);
    }
    return NULL;
}

BLZ_TEST(blocking_pool_grows_and_shrinks)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 2;
    cfg.blocking_idle = blz_ms(20);
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, 9);
    /* block_on's own fiber must not be the one that blocks: run the waiter on a foreign
     * thread's view (the barrier's ninth party is this test thread via a blocking job). */
    blz_join *j[8];
    for (int i = 0; i < 8; i++) {
        CHECK_OK(blz_runtime_spawn_blocking(rt, blocking_job, &b, &j[i]));
    }
    pthread_barrier_wait(&b);
    for (int i = 0; i < 8; i++) {
        void *v;
        CHECK_OK(blz_join_wait(j[i], &v));
        CHECK_EQ((intptr_t) v, 3);
    }
    blz_metrics m;
    blz_runtime_metrics(rt, &m);
    CHECK_GE(m.blocking_threads, 1);
    /* Idle threads leave after 20 ms; wait for it by watching, with a generous bound. */
    for (int i = 0; i < 5000; i++) {
        blz_runtime_metrics(rt, &m);
        if (m.blocking_threads == 0) {
            break;
        }
        usleep(1000);
    }
    CHECK_EQ(m.blocking_threads, 0);
    pthread_barrier_destroy(&b);
    (void) blocking_growth;
    blz_runtime_free(rt);
}

static _Atomic int job_running; /* the job has started */
static _Atomic int freeing;     /* set just before blz_runtime_free */
static _Atomic int freer_tid;   /* the thread that calls it */

static void *
short_blocking_job(void *arg)
{
    (void) arg;
    atomic_store(&job_running, 1);
    /* Still running when blz_runtime_free is called. */
    WAIT_UNTIL(atomic_load(&freeing), usleep(1000));
    /* Ends only once the free sleeps, which it does in its park: the job's
     * end must wake it there (a fixed 2 ms nap let a slow free find the job
     * done instead, and the test passed without parking). */
    WAIT_UNTIL(thread_state(atomic_load(&freer_tid)) == 'S', usleep(1000));
    return NULL;
}

static void *
leave_blocking_job(void *arg)
{
    (void) arg;
    CHECK_OK(blz_spawn_blocking(short_blocking_job, NULL, NULL));
    /* Running, not queued: a free drops a job that never started (most
     * rounds did, and the free then had nothing to wait for). */
    WAIT_UNTIL(atomic_load(&job_running), CHECK_OK(blz_sleep(blz_ms(1))));
    return NULL;
}

BLZ_TEST(current_thread_free_waits_for_running_blocking_job)
{
    for (int i = 0; i < 20; i++) {
        blz_runtime_config cfg;
        blz_runtime_config_default(&cfg);
        cfg.flavor = BLZ_CURRENT_THREAD;
        blz_runtime *rt;
        CHECK_OK(blz_runtime_new(&cfg, &rt));
        atomic_store(&job_running, 0);
        atomic_store(&freeing, 0);
        atomic_store(&freer_tid, thread_id());
        CHECK_OK(blz_runtime_block_on(rt, leave_blocking_job, NULL, NULL));
        atomic_store(&freeing, 1);
        blz_runtime_free(rt); /* hangs if the job's completion does not wake the driver */
    }
}

/* ---- blz_spawn_owned: exactly one of fn and release runs ---------------------------- */

typedef struct owned_arg {
    int ran;      /* fn ran */
    int released; /* release ran */
} owned_arg;

static void *
owned_fn(void *arg)
{
    ((owned_arg *) arg)->ran++;
    return arg;
}

static void
owned_release(void *arg)
{
    ((owned_arg *) arg)->released++;
}

static void *
nothing(void *arg)
{
    return arg;
}

BLZ_TEST(spawn_owned_releases_an_argument_whose_task_never_starts)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.flavor = BLZ_CURRENT_THREAD; /* nothing runs until block_on drives it */
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    owned_arg aborted = {0, 0}, normal = {0, 0}, never_driven = {0, 0};
    blz_join *ja, *jn;
    CHECK_OK(blz_runtime_spawn_owned(rt, owned_fn, owned_release, &aborted, &ja));
    CHECK_OK(blz_runtime_spawn_owned(rt, owned_fn, owned_release, &normal, &jn));
    blz_join_abort(ja);
    CHECK_OK(blz_runtime_block_on(rt, nothing, NULL, NULL)); /* runs both */
    void *res = NULL;
    CHECK_EQ(blz_join_wait(ja, &res), -ECANCELED);
    CHECK_OK(blz_join_wait(jn, &res));
    CHECK_PTR_EQ(res, &normal);
    CHECK_EQ(aborted.ran, 0);
    CHECK_EQ(aborted.released, 1);
    CHECK_EQ(normal.ran, 1);
    CHECK_EQ(normal.released, 0);
    /* Spawned, never driven: the runtime's free aborts it, and release runs. */
    CHECK_OK(blz_runtime_spawn_owned(rt, owned_fn, owned_release, &never_driven, NULL));
    blz_runtime_free(rt);
    CHECK_EQ(never_driven.ran, 0);
    CHECK_EQ(never_driven.released, 1);
    CHECK_EQ(blz_spawn_owned(owned_fn, owned_release, &normal, NULL), -ESRCH); /* no runtime */
    CHECK_EQ(normal.released, 0); /* nothing runs when the spawn fails */
}

/* A current-thread runtime runs one task at a time, on whichever thread
 * drives it: two threads in blz_runtime_block_on at once must not both
 * drive it (its one worker's queue has a single owner). Each task run
 * counts itself in `inside` while it spins a little, so a second driver
 * shows up as two runs at once. */
typedef struct one_driver {
    blz_runtime *rt;
    atomic_int inside;
    atomic_int overlaps;
} one_driver;

static void *
one_driver_fiber(void *arg)
{
    one_driver *d = arg;
    for (int i = 0; i < 200; i++) {
        if (atomic_fetch_add(&d->inside, 1) != 0) {
            atomic_fetch_add(&d->overlaps, 1);
        }
        for (volatile int spin = 0; spin < 200; spin++) {
        }
        atomic_fetch_sub(&d->inside, 1);
        blz_yield();
    }
    return (void *) 7;
}

static void *
one_driver_spawner(void *arg)
{
    one_driver *d = arg;
    blz_join *j[4];
    for (int i = 0; i < 4; i++) {
        CHECK_OK(blz_spawn(one_driver_fiber, d, &j[i]));
    }
    for (int i = 0; i < 4; i++) {
        void *v;
        CHECK_OK(blz_join_wait(j[i], &v));
        CHECK_EQ((intptr_t) v, 7);
    }
    return (void *) 7;
}

static void *
one_driver_thread(void *arg)
{
    one_driver *d = arg;
    for (int round = 0; round < 20; round++) {
        void *v = NULL;
        CHECK_OK(blz_runtime_block_on(d->rt, one_driver_spawner, d, &v));
        CHECK_EQ((intptr_t) v, 7);
    }
    return NULL;
}

BLZ_TEST(current_thread_block_on_from_two_threads_drives_one_at_a_time)
{
    one_driver d = {test_current_thread_rt(), 0, 0};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(pthread_create(&th[i], NULL, one_driver_thread, &d), 0);
    }
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    }
    CHECK_EQ(atomic_load(&d.overlaps), 0);
    blz_runtime_free(d.rt);
}

/* blz_runtime_free of a current-thread runtime from one thread while
 * another is inside its block_on: the block_on ends with its task aborted,
 * and the free, which drives the runtime to the end, waits for it to let go
 * first. */
typedef struct freed_under {
    blz_runtime *rt;
    atomic_int started;
    int rc;
} freed_under;

static void *
wait_forever_fiber(void *arg)
{
    freed_under *f = arg;
    atomic_store(&f->started, 1);
    blz_future never = {0};
    blz_future_init(&never, &forever_vt);
    return (void *) (intptr_t) blz_await(&never);
}

static void *
block_on_forever(void *arg)
{
    freed_under *f = arg;
    f->rc = blz_runtime_block_on(f->rt, wait_forever_fiber, f, NULL);
    return NULL;
}

BLZ_TEST(current_thread_free_while_another_thread_is_in_block_on)
{
    for (int round = 0; round < 50; round++) {
        freed_under f = {test_current_thread_rt(), 0, 1};
        pthread_t th;
        CHECK_EQ(pthread_create(&th, NULL, block_on_forever, &f), 0);
        WAIT_UNTIL(atomic_load(&f.started), nanosleep(&(struct timespec){0, 1000000}, NULL));
        blz_runtime_free(f.rt);
        CHECK_EQ(pthread_join(th, NULL), 0);
        CHECK_EQ(f.rc, -ECANCELED);
    }
}

/* A negative duration is no setting: stall_threshold as blocking_idle. */
BLZ_TEST(negative_durations_in_the_config_are_einval)
{
    blz_runtime_config cfg;
    blz_runtime *rt = NULL;
    blz_runtime_config_default(&cfg);
    cfg.stall_threshold = -1;
    CHECK_EQ(blz_runtime_new(&cfg, &rt), -EINVAL);
    blz_runtime_config_default(&cfg);
    cfg.blocking_idle = -1;
    CHECK_EQ(blz_runtime_new(&cfg, &rt), -EINVAL);
    CHECK_PTR_EQ(rt, NULL);
}

/* The address space this process has mapped, in bytes (0 if unknown). */
static size_t
mapped_bytes(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (fp) {
        if (fscanf(fp, "%lu", &pages) != 1) {
            pages = 0;
        }
        fclose(fp);
    }
    return (size_t) pages * (size_t) sysconf(_SC_PAGESIZE);
}

BLZ_TEST(spawn_owned_releases_an_argument_whose_fiber_gets_no_stack)
{
    if (UNDER_ASAN || UNDER_TSAN) {
        SKIP("sanitizers need an unlimited address space");
    }
    if (blz_test_emulator()) {
        SKIP("qemu-user maps the guest's memory itself: RLIMIT_AS does not bound it so");
    }
    /* Fiber stacks of 1 GiB and an address-space limit well below one more:
     * the task's first poll cannot map a stack, so fn never runs. Its
     * argument must still be let go, as the spawn_owned contract says. */
    blz_runtime *rt = test_runtime(1, (size_t) 1 << 30);
    size_t now = mapped_bytes();
    CHECK(now > 0);
    struct rlimit old, tight;
    CHECK_OK(getrlimit(RLIMIT_AS, &old));
    tight = old;
    tight.rlim_cur = (rlim_t) (now + ((size_t) 256 << 20));
    CHECK_OK(setrlimit(RLIMIT_AS, &tight));
    owned_arg a = {0, 0};
    blz_join *j;
    CHECK_OK(blz_runtime_spawn_owned(rt, owned_fn, owned_release, &a, &j));
    void *res = (void *) 1;
    int rc = blz_join_wait(j, &res);
    CHECK_OK(setrlimit(RLIMIT_AS, &old));
    CHECK_EQ(rc, -ENOMEM);
    CHECK_PTR_EQ(res, NULL);
    CHECK_EQ(a.ran, 0);
    CHECK_EQ(a.released, 1);
    blz_runtime_free(rt);
}

/* ---- a join that cannot wait still consumes its handles ------------------------------ */

typedef struct joins_without_memory {
    blz_join *one;    /* for blz_join_wait */
    blz_join *two[2]; /* for blz_join_all */
    int wait_rc, all_rc;
} joins_without_memory;

static void *
join_without_memory(void *arg)
{
    joins_without_memory *w = arg;
    /* A fresh thread: its first wait must allocate its parker, and fails. */
    blz_test_alloc_fail_after(0);
    w->wait_rc = blz_join_wait(w->one, NULL);
    blz_test_alloc_fail_after(0);
    w->all_rc = blz_join_all(w->two, 2, NULL);
    blz_test_alloc_fail_after(-1);
    return NULL;
}

BLZ_TEST(join_that_cannot_wait_still_consumes_its_handles)
{
    blz_test_counting_allocator_install();
    blz_runtime *rt = test_new_rt(1);
    joins_without_memory w;
    memset(&w, 0, sizeof w);
    CHECK_OK(blz_runtime_spawn(rt, return_arg, NULL, &w.one));
    CHECK_OK(blz_runtime_spawn(rt, return_arg, NULL, &w.two[0]));
    CHECK_OK(blz_runtime_spawn(rt, return_arg, NULL, &w.two[1]));
    struct timespec ms = {0, 1000000};
    /* Finished first, so that no worker allocates while the failure is armed. */
    WAIT_UNTIL(blz_join_is_finished(w.one) && blz_join_is_finished(w.two[0]) &&
                   blz_join_is_finished(w.two[1]),
               nanosleep(&ms, NULL));
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, join_without_memory, &w), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_EQ(w.wait_rc, -ENOMEM);
    CHECK_EQ(w.all_rc, -ENOMEM);
    /* The handles were consumed (the calls' contract: all but -EDEADLK
     * consume), so the runtime's free leaves nothing behind. */
    blz_runtime_free(rt);
    CHECK_EQ(blz_test_alloc_live(), 0);
}

/* ---- a wake from outside the runtime, racing its free ---------------------------------- */

/*
 * A thread that is not one of the runtime's (a producer feeding a channel,
 * a worker of another runtime finishing a task this one joins) wakes a task
 * while blz_runtime_free runs. Its wake queues the task, then unparks a
 * worker: the runtime must not be freed under it in between, since the
 * task it queued may be run, aborted and completed (the only thing free
 * waits for) before the waking thread returns.
 *
 * The waking thread is held right after the write that wakes the worker's
 * driver (the eventfd of the epoll backend: this file's write() below),
 * still inside the wake, until free has returned. Freed memory is made
 * inaccessible (guard_allocator_install), so any later touch of the runtime
 * faults. Free may instead wait for the wake to end: the hold ends after
 * 500 ms at the latest.
 */
static atomic_int write_hold_tid; /* the thread whose next 8-byte write is held; 0: none */
static atomic_bool write_held, wake_race_freed;

ssize_t
write(int fd, const void *buf, size_t n)
{
    long r = syscall(SYS_write, fd, buf, n);
    int tid = atomic_load(&write_hold_tid);
    if (tid != 0 && tid == thread_id() && n == sizeof(uint64_t)) {
        atomic_store(&write_hold_tid, 0);
        atomic_store(&write_held, true);
        int64_t start = wall_ms();
        while (!atomic_load(&wake_race_freed) && wall_ms() - start < 500) {
            (void) sched_yield();
        }
    }
    return (ssize_t) r;
}

/* Pending until woken once by a waker clone it leaves in `latch_waker`. */
static blz_waker latch_waker;
static atomic_bool latch_armed;

static blz_poll
latch_poll(blz_future *f, blz_context *cx)
{
    (void) f;
    if (!atomic_load(&latch_armed)) {
        latch_waker = blz_waker_clone(cx->waker);
        atomic_store(&latch_armed, true);
    }
    return BLZ_PENDING;
}

static const blz_future_vtable latch_vt = {latch_poll, NULL};

static void *
await_latch(void *arg)
{
    (void) arg;
    blz_future f;
    blz_future_init(&f, &latch_vt);
    return (void *) (intptr_t) blz_await(&f);
}

static void *
wake_held_in_its_write(void *arg)
{
    (void) arg;
    atomic_store(&write_hold_tid, thread_id());
    blz_waker_wake(&latch_waker);
    return NULL;
}

BLZ_TEST(wake_from_outside_racing_free_touches_no_freed_runtime)
{
    guard_allocator_install();
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 1;
    cfg.backend = "epoll"; /* its driver wake is the write() above */
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    if (strcmp(blz_runtime_backend(rt), "epoll") != 0) {
        blz_runtime_free(rt);
        SKIP("needs the epoll backend");
    }
    CHECK_OK(blz_runtime_spawn(rt, await_latch, NULL, NULL));
    CHECK(yield_until(&latch_armed, 5000));
    /* The worker must be asleep in its driver, for the wake to write. */
    blz_worker_dump wd;
    CHECK_EQ(blz_runtime_dump_workers(rt, &wd, 1), 1);
    int64_t start = wall_ms();
    while (thread_state(wd.tid) != 'S') {
        CHECK(wall_ms() - start < 5000);
        (void) sched_yield();
    }
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, wake_held_in_its_write, NULL), 0);
    CHECK(yield_until(&write_held, 5000));
    blz_runtime_free(rt);
    atomic_store(&wake_race_freed, true);
    CHECK_EQ(pthread_join(th, NULL), 0);
    blz_set_allocator(NULL, NULL, NULL);
}

/*
 * The same for the last task finishing on a thread outside the runtime: a
 * blocking job whose spawn could not start a pool thread (-EAGAIN) is
 * completed by its spawner, and a free that waits for it is woken by that
 * completion (owned_remove), which went on touching the runtime after the
 * count that let free go. The spawner is held in the on_task_spawn hook
 * until the free waits, then in the driver wake that its completion makes
 * (the eventfd write) until the free has returned. No pool thread can
 * start: the address space is capped below a thread's stack meanwhile.
 */
static int free_caller_tid;
static atomic_bool spawn_hooked;

static void
hold_spawn_until_free_waits(const blz_task_meta *m, void *arg)
{
    (void) m;
    (void) arg;
    atomic_store(&spawn_hooked, true);
    int64_t start = wall_ms();
    while (thread_state(free_caller_tid) != 'S' && wall_ms() - start < 5000) {
        (void) sched_yield();
    }
    atomic_store(&write_hold_tid, thread_id());
}

static void *
spawn_blocking_without_a_thread(void *arg)
{
    blz_runtime *rt = arg;
    return (void *) (intptr_t) blz_runtime_spawn_blocking(rt, return_arg, NULL, NULL);
}

BLZ_TEST(last_task_completed_outside_racing_free_touches_no_freed_runtime)
{
    if (UNDER_ASAN || UNDER_TSAN) {
        SKIP("sanitizers need an unlimited address space");
    }
    if (blz_test_emulator()) {
        SKIP("qemu-user maps the guest's memory itself: RLIMIT_AS does not bound it so");
    }
    guard_allocator_install();
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 1;
    cfg.backend = "epoll"; /* its driver wake is the write() above */
    cfg.on_task_spawn = hold_spawn_until_free_waits;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    if (strcmp(blz_runtime_backend(rt), "epoll") != 0) {
        blz_runtime_free(rt);
        SKIP("needs the epoll backend");
    }
    free_caller_tid = thread_id();
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, spawn_blocking_without_a_thread, rt), 0);
    CHECK(yield_until(&spawn_hooked, 5000));
    struct rlimit old, tight;
    CHECK_OK(getrlimit(RLIMIT_AS, &old));
    tight = old;
    tight.rlim_cur = (rlim_t) (mapped_bytes() + ((size_t) 2 << 20));
    CHECK_OK(setrlimit(RLIMIT_AS, &tight));
    blz_runtime_free(rt);
    atomic_store(&wake_race_freed, true);
    void *rc;
    CHECK_EQ(pthread_join(th, &rc), 0);
    CHECK_OK(setrlimit(RLIMIT_AS, &old));
    CHECK_EQ((int) (intptr_t) rc, -EAGAIN);
    CHECK(atomic_load(&write_held));
    blz_set_allocator(NULL, NULL, NULL);
}
