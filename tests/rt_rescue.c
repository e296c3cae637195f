/*
 * Stranded tasks: a task woken into a worker's LIFO slot, or one that
 * yielded on that worker, must not wait for a task that then keeps the
 * worker (spins, blocks) while other workers are idle. Another worker takes
 * them after 10 ms (src/rt/rescue.h). Each test's spinner waits for the
 * stranded task with a generous bound; without the rescue it spins that
 * bound out and the check fails.
 */
#include "harness.h"
#include "os/unix/sys.h"
#include "rt/rescue.h"
#include "rt_util.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#define SPIN_LIMIT_MS 5000 /* how long a spinner waits before the test fails */

/* A runtime whose workers can rescue (skips where membarrier is missing). */
static blz_runtime *
rescue_runtime(unsigned workers)
{
    blz_runtime *rt = test_runtime(workers, 0);
    if (!blz__sys_membarrier_ready()) {
        blz_runtime_free(rt);
        SKIP("no membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED): no rescue");
    }
    return rt;
}

/* Spins (no yield, no syscall that parks) until *flag is set or the limit passes. */
static bool
spin_until(atomic_bool *flag)
{
    int64_t start = wall_ms();
    while (!atomic_load(flag)) {
        if (wall_ms() - start > SPIN_LIMIT_MS) {
            return false;
        }
    }
    return true;
}

static uint64_t
rescued(blz_runtime *rt)
{
    blz_metrics m;
    blz_runtime_metrics(rt, &m);
    return m.rescued;
}

/* ---- the LIFO slot -------------------------------------------------------------- */

typedef struct lifo_case {
    atomic_bool woken_ran;
    atomic_bool spinner_saw_it;
} lifo_case;

static void *
set_flag(void *arg)
{
    atomic_store((atomic_bool *) arg, true);
    return NULL;
}

/* Spawns a task (into this worker's LIFO slot), then spins until it ran. */
static void *
spawn_then_spin(void *arg)
{
    lifo_case *c = arg;
    blz_join *j;
    CHECK_OK(blz_spawn(set_flag, &c->woken_ran, &j));
    atomic_store(&c->spinner_saw_it, spin_until(&c->woken_ran));
    CHECK_OK(blz_join_wait(j, NULL));
    return NULL;
}

BLZ_TEST(task_in_the_lifo_slot_of_a_spinning_worker_runs_elsewhere)
{
    blz_runtime *rt = rescue_runtime(2);
    for (int round = 0; round < 10; round++) {
        lifo_case c = {false, false};
        blz_join *j;
        CHECK_OK(blz_runtime_spawn(rt, spawn_then_spin, &c, &j));
        CHECK_OK(blz_join_wait(j, NULL));
        CHECK(atomic_load(&c.spinner_saw_it));
    }
    CHECK_GE(rescued(rt), 10);
    blz_runtime_free(rt);
}

/* ---- yielded tasks ------------------------------------------------------------ */

typedef struct defer_case {
    atomic_bool yielder_done;
    atomic_bool spinner_saw_it;
} defer_case;

static void *
spin_for_yielder(void *arg)
{
    defer_case *c = arg;
    atomic_store(&c->spinner_saw_it, spin_until(&c->yielder_done));
    return NULL;
}

/* Spawns the spinner (into this worker's LIFO slot, so it runs here next),
 * then yields: it waits on this worker's private list behind the spinner. */
static void *
spawn_spinner_then_yield(void *arg)
{
    defer_case *c = arg;
    blz_join *j;
    CHECK_OK(blz_spawn(spin_for_yielder, c, &j));
    blz_yield();
    atomic_store(&c->yielder_done, true);
    CHECK_OK(blz_join_wait(j, NULL));
    return NULL;
}

BLZ_TEST(task_that_yielded_before_its_worker_got_stuck_runs_elsewhere)
{
    blz_runtime *rt = rescue_runtime(2);
    for (int round = 0; round < 10; round++) {
        defer_case c = {false, false};
        blz_join *j;
        CHECK_OK(blz_runtime_spawn(rt, spawn_spinner_then_yield, &c, &j));
        CHECK_OK(blz_join_wait(j, NULL));
        CHECK(atomic_load(&c.spinner_saw_it));
    }
    CHECK_GE(rescued(rt), 10);
    blz_runtime_free(rt);
}

/* ---- the same worker stuck again and again ----------------------------------------- */

/* One long poll that spawns a task into its LIFO slot and waits for it, 40
 * times: each one can only run through a rescue, and the next spawn meets
 * the rescue's flag (the owner's acknowledgement path). Every task must run
 * exactly once. */
#define AGAIN_TASKS 40

typedef struct again {
    atomic_uint runs[AGAIN_TASKS];
    atomic_bool all_ran;
} again;

typedef struct again_arg {
    again *a;
    unsigned i;
} again_arg;

static void *
count_run(void *arg)
{
    again_arg *x = arg;
    atomic_fetch_add(&x->a->runs[x->i], 1);
    return NULL;
}

static void *
strand_again_and_again(void *arg)
{
    again *a = arg;
    static again_arg args[AGAIN_TASKS];
    blz_join *js[AGAIN_TASKS];
    bool ok = true;
    unsigned spawned = 0;
    for (unsigned i = 0; i < AGAIN_TASKS && ok; i++) {
        args[i] = (again_arg){a, i};
        CHECK_OK(blz_spawn(count_run, &args[i], &js[i]));
        spawned = i + 1;
        int64_t start = wall_ms();
        while (atomic_load(&a->runs[i]) == 0 && (ok = wall_ms() - start <= SPIN_LIMIT_MS)) {
        }
        if (!ok) {
            /* Say which one and how far the rescues had got, for the log. */
            fprintf(stderr, "task %u of %u not run after %d ms; rescues so far: %llu\n", i,
                    AGAIN_TASKS, SPIN_LIMIT_MS,
                    (unsigned long long) rescued(blz_runtime_current()));
        }
    }
    atomic_store(&a->all_ran, ok);
    CHECK_OK(blz_join_all(js, spawned, NULL)); /* only the ones spawned */
    return NULL;
}

BLZ_TEST(a_worker_stuck_again_and_again_strands_nothing)
{
    blz_runtime *rt = rescue_runtime(3);
    static again a;
    blz_join *j;
    CHECK_OK(blz_runtime_spawn(rt, strand_again_and_again, &a, &j));
    CHECK_OK(blz_join_wait(j, NULL));
    CHECK(atomic_load(&a.all_ran));
    for (unsigned i = 0; i < AGAIN_TASKS; i++) {
        CHECK_EQ(atomic_load(&a.runs[i]), 1);
    }
    CHECK_GE(rescued(rt), AGAIN_TASKS);
    blz_runtime_free(rt);
}

/* ---- a worker that wakes while the rescuer sleeps without looking ----------------- */

/* The worker watching the timers is the one that rescues: it sleeps at
 * most BLZ_RESCUE_NS while another worker is awake, and without a limit
 * when every other one sleeps too. A worker that wakes later must make it
 * look again. Here worker 2 takes the watch while workers 0 and 1 are held
 * in their start hook, then sleeps without a limit once they sleep; the
 * task from outside wakes worker 0 (the lowest idle one), whose search
 * wakes worker 1, which finds nothing and sleeps again: only the watcher
 * can rescue the task that worker 0 then strands in its LIFO slot. */
typedef struct late_start {
    atomic_bool go;
} late_start;

static void
hold_first_two_workers(const blz_thread_info *info, void *arg)
{
    late_start *ls = arg;
    if (info->kind != BLZ_THREAD_WORKER || info->index > 1) {
        return;
    }
    (void) yield_until(&ls->go, SPIN_LIMIT_MS);
}

static bool
worker_2_watches(blz_runtime *rt)
{
    return atomic_load(&rt->driver_held) == 3;
}

/* Workers 0 and 1 asleep on their futexes (only an unpark wakes them, so
 * they cannot take the watch), worker 2 asleep in the driver, watching. */
static bool
all_three_asleep_worker_2_watching(blz_runtime *rt)
{
    return atomic_load(&rt->workers[0].park_state) == BLZ_PARK_SLEEPING &&
           atomic_load(&rt->workers[1].park_state) == BLZ_PARK_SLEEPING &&
           atomic_load(&rt->workers[2].park_state) == BLZ_PARK_DRIVER && worker_2_watches(rt);
}

/* Makes a runtime in that state: true, or false when worker 0 or 1 took the
 * watch meanwhile (worker 2 woke from its first sleep as they went to
 * sleep), in which case the runtime is freed. */
static bool
watched_by_worker_2(blz_runtime **out, late_start *ls)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 3;
    cfg.on_thread_start = hold_first_two_workers;
    cfg.thread_hook_arg = ls;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    if (!rt->rescue_on) {
        atomic_store(&ls->go, true);
        blz_runtime_free(rt);
        SKIP("no membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED): no rescue");
    }
    CHECK(wait_state(rt, worker_2_watches, SPIN_LIMIT_MS));
    atomic_store(&ls->go, true);
    if (!wait_state(rt, all_three_asleep_worker_2_watching, 1000)) {
        blz_runtime_free(rt);
        return false;
    }
    /* Worker 2 first slept with a limit (the other two were awake); once
     * that ends it sleeps again, now without one, and nothing else moves. */
    uint64_t parks = atomic_load(&rt->workers[2].parks);
    int64_t start = wall_ms();
    while (atomic_load(&rt->workers[2].parks) == parks && wall_ms() - start < 200) {
        (void) sched_yield();
    }
    CHECK(wait_state(rt, all_three_asleep_worker_2_watching, SPIN_LIMIT_MS));
    *out = rt;
    return true;
}

BLZ_TEST(a_worker_woken_while_every_other_slept_is_watched)
{
    int rounds = 0;
    for (int attempt = 0; attempt < 30 && rounds < 3; attempt++) {
        late_start ls = {false};
        blz_runtime *rt;
        if (!watched_by_worker_2(&rt, &ls)) {
            continue;
        }
        rounds++;
        lifo_case c = {false, false};
        blz_join *j;
        CHECK_OK(blz_runtime_spawn(rt, spawn_then_spin, &c, &j));
        CHECK_OK(blz_join_wait(j, NULL));
        CHECK(atomic_load(&c.spinner_saw_it));
        CHECK_GE(rescued(rt), 1);
        blz_runtime_free(rt);
    }
    CHECK_EQ(rounds, 3);
}

/* ---- a watcher woken by its own I/O leaves nobody watching -------------------------- */

/* One worker watches the timers and the driver, asleep in it; the other
 * sleeps on its futex (or in its own ring) without a limit, as every worker
 * does while another holds the watch. An event the driver delivers wakes the holder alone:
 * it hands the watch back and runs the woken task, which strands a task in
 * its LIFO slot and spins until it ran. The other must still come to look. */
typedef struct io_strand {
    int fd;
    atomic_bool waiting;
    lifo_case c;
} io_strand;

static void *
wait_readable_then_strand(void *arg)
{
    io_strand *s = arg;
    blz_async_fd *afd;
    CHECK_OK(blz_async_fd_new(s->fd, &afd));
    atomic_store(&s->waiting, true);
    CHECK_OK(blz_async_fd_ready(afd, BLZ_READABLE));
    (void) spawn_then_spin(&s->c);
    blz_async_fd_free(afd);
    return NULL;
}

BLZ_TEST(a_task_woken_by_the_watchers_own_io_is_still_watched)
{
    for (int round = 0; round < 3; round++) {
        blz_runtime *rt = rescue_runtime(2);
        int fds[2];
        CHECK_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
        io_strand s = {.fd = fds[0]};
        blz_join *j;
        CHECK_OK(blz_runtime_spawn(rt, wait_readable_then_strand, &s, &j));
        (void) yield_until(&s.waiting, SPIN_LIMIT_MS);
        /* Both asleep: one in the driver, the other on its futex (or ring). */
        int64_t start = wall_ms();
        bool asleep = false;
        while (!asleep && wall_ms() - start <= SPIN_LIMIT_MS) {
            uint32_t held = atomic_load(&rt->driver_held);
            asleep = atomic_load(&rt->idle_mask) == 3 && held != 0 &&
                     atomic_load(&rt->workers[held - 1].park_state) == BLZ_PARK_DRIVER &&
                     atomic_load(&rt->workers[2 - held].park_state) ==
                         (rt->io_rings > 1 ? BLZ_PARK_DRIVER : BLZ_PARK_SLEEPING);
            (void) sched_yield();
        }
        CHECK(asleep);
        CHECK_EQ(write(fds[1], "x", 1), 1);
        CHECK_OK(blz_join_wait(j, NULL));
        CHECK(atomic_load(&s.c.spinner_saw_it));
        CHECK_GE(rescued(rt), 1);
        close(fds[0]);
        close(fds[1]);
        blz_runtime_free(rt);
    }
}

/* ---- a worker that parks while an awake one holds the watch for maintenance ---------- */

/* Every BLZ_GLOBAL_INTERVAL (61) ticks an awake worker takes the timers'
 * watch, if free, to poll the driver without sleeping (maintenance). A
 * worker that parks meanwhile finds the watch held and sleeps on its futex
 * without a limit; the awake one then hands the watch back and goes on.
 * Should it then strand a task and keep the worker, nobody looks.
 *
 * Forced here: worker 1 is held in its start hook. A task on worker 0
 * yields until the next tick is a maintenance one, then waits for a pipe it
 * has just written to, through a waker of the test's own (hook_wake). That
 * maintenance dispatches the event: hook_wake runs on worker 0 while it
 * holds the watch, awake, releases worker 1, and waits until worker 1 (with
 * nothing to do) sleeps on its futex; then it wakes the task, which strands
 * a task in its LIFO slot and spins until it ran. */
#define GLOBAL_INTERVAL 61 /* BLZ_GLOBAL_INTERVAL in worker.c */

typedef struct maint_case {
    blz_runtime *rt;
    int fds[2];
    atomic_bool release;        /* worker 1 may leave its start hook */
    atomic_bool fired;          /* hook_wake ran */
    atomic_bool in_maintenance; /* ... on worker 0, awake, holding the watch */
    atomic_bool other_asleep;   /* ... and worker 1 then slept on its futex */
    blz_waker task;             /* the waiting task's own waker */
    lifo_case c;
} maint_case;

static void
hook_wake_by_ref(void *data)
{
    maint_case *m = data;
    if (atomic_exchange(&m->fired, true)) {
        return;
    }
    blz_runtime *rt = m->rt;
    atomic_store(&m->in_maintenance, blz__worker_current() == &rt->workers[0] &&
                                         atomic_load(&rt->driver_held) == 1 &&
                                         !(atomic_load(&rt->idle_mask) & 1));
    atomic_store(&m->release, true);
    int64_t start = wall_ms();
    bool asleep = false;
    while (!asleep && wall_ms() - start <= SPIN_LIMIT_MS) {
        asleep = (atomic_load(&rt->idle_mask) & 2) &&
                 atomic_load(&rt->workers[1].park_state) == BLZ_PARK_SLEEPING;
        (void) sched_yield();
    }
    atomic_store(&m->other_asleep, asleep);
    blz_waker_wake(&m->task);
}

static void *
hook_clone(void *data)
{
    return data;
}

static void
hook_drop(void *data)
{
    (void) data;
}

static const blz_waker_vtable hook_vt = {hook_wake_by_ref, hook_wake_by_ref, hook_clone, hook_drop};

/* Waits for m's pipe through hook_wake: arms the wait, then writes to it. */
typedef struct hooked_ready {
    blz_future base;
    maint_case *m;
    blz_io_future inner;
    bool armed;
} hooked_ready;

static blz_poll
hooked_ready_poll(blz_future *self, blz_context *cx)
{
    hooked_ready *f = (hooked_ready *) self;
    maint_case *m = f->m;
    if (!f->armed) {
        f->armed = true;
        blz_waker hw = {&hook_vt, m};
        blz_context hcx = {&hw};
        if (blz_future_poll(&f->inner.base, &hcx) == BLZ_READY) {
            self->result = -EALREADY; /* readable before the write */
            return BLZ_READY;
        }
        m->task = blz_waker_clone(cx->waker);
        CHECK_EQ(write(m->fds[1], "x", 1), 1);
        return BLZ_PENDING;
    }
    if (!atomic_load(&m->fired)) {
        return BLZ_PENDING;
    }
    self->result = 0;
    return BLZ_READY;
}

static void
hooked_ready_drop(blz_future *self)
{
    blz_future_drop(&((hooked_ready *) self)->inner.base);
}

static const blz_future_vtable hooked_ready_vt = {hooked_ready_poll, hooked_ready_drop};

static void *
strand_after_maintenance(void *arg)
{
    maint_case *m = arg;
    blz_async_fd *afd;
    CHECK_OK(blz_async_fd_new(m->fds[0], &afd));
    /* This pass is tick % 61 == 60: the next one starts with maintenance. */
    while (blz__worker_current()->tick % GLOBAL_INTERVAL != GLOBAL_INTERVAL - 1) {
        blz_yield();
    }
    hooked_ready f = {.m = m};
    blz_future_init(&f.base, &hooked_ready_vt);
    blz_async_fd_ready_fut(afd, BLZ_READABLE, &f.inner);
    CHECK_OK(blz_await(&f.base));
    blz_future_drop(&f.base);
    (void) spawn_then_spin(&m->c);
    blz_async_fd_free(afd);
    return NULL;
}

static void
hold_worker_1(const blz_thread_info *info, void *arg)
{
    maint_case *m = arg;
    if (info->kind != BLZ_THREAD_WORKER || info->index != 1) {
        return;
    }
    (void) yield_until(&m->release, SPIN_LIMIT_MS);
}

BLZ_TEST(a_worker_parked_during_anothers_maintenance_is_watched)
{
    for (int round = 0; round < 3; round++) {
        static maint_case m;
        memset(&m, 0, sizeof m);
        CHECK_EQ(pipe2(m.fds, O_NONBLOCK | O_CLOEXEC), 0);
        blz_runtime_config cfg;
        blz_runtime_config_default(&cfg);
        cfg.workers = 2;
        cfg.ring_per_worker =
            false; /* one driver: a parker that finds it held sleeps on its futex */
        cfg.on_thread_start = hold_worker_1;
        cfg.thread_hook_arg = &m;
        CHECK_OK(blz_runtime_new(&cfg, &m.rt));
        if (!m.rt->rescue_on) {
            atomic_store(&m.release, true);
            blz_runtime_free(m.rt);
            SKIP("no membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED): no rescue");
        }
        blz_join *j;
        CHECK_OK(blz_runtime_spawn(m.rt, strand_after_maintenance, &m, &j));
        CHECK_OK(blz_join_wait(j, NULL));
        CHECK(atomic_load(&m.fired));
        CHECK(atomic_load(&m.in_maintenance));
        CHECK(atomic_load(&m.other_asleep));
        CHECK(atomic_load(&m.c.spinner_saw_it));
        CHECK_GE(rescued(m.rt), 1);
        blz_runtime_free(m.rt);
        close(m.fds[0]);
        close(m.fds[1]);
    }
}

/* ---- a watcher that hands the watch back beside a stuck worker --------------------- */

/* Three workers, one driver. Worker B runs a task that spins (it waits for
 * the very task stranded below); the watcher, asleep in the driver, looks
 * every BLZ_RESCUE_NS since B is awake; the third worker sleeps on its
 * futex without a limit, as every worker does while another holds the
 * watch. An event the driver delivers wakes the watcher alone: it hands the
 * watch back and runs the woken task, which strands a task in its LIFO slot
 * and spins until it ran. Not every other worker sleeps (B is awake), yet
 * nobody holds the watch and B will not take it: the sleeper must still be
 * made to look. */
typedef struct beside_stuck {
    blz_runtime *rt;
    int fds[2];
    atomic_bool waiting;        /* the reader waits for the pipe */
    atomic_uint spinner;        /* B's index + 1 */
    atomic_bool spinner_saw_it; /* B saw the stranded task run */
    atomic_bool strander_done;  /* the task that stranded it stopped spinning */
    atomic_bool unwatched;      /* at the strand: not on B, nobody watching, the third asleep */
    lifo_case c;
} beside_stuck;

static beside_stuck *beside; /* for wait_state's predicate */

/* B: spins until the stranded task ran, or until the task that stranded it
 * gave up (so that its check, not this one, tells the story). */
static void *
spin_until_stranded_ran(void *arg)
{
    beside_stuck *b = arg;
    atomic_store(&b->spinner, blz__worker_current()->index + 1);
    while (!atomic_load(&b->c.woken_ran) && !atomic_load(&b->strander_done)) {
    }
    atomic_store(&b->spinner_saw_it, atomic_load(&b->c.woken_ran));
    return NULL;
}

/* The third worker: neither the one running this task (`me`) nor B. */
static unsigned
third_worker(unsigned me, unsigned spinner)
{
    return 3 - me - spinner;
}

static void *
wait_readable_then_strand_beside(void *arg)
{
    beside_stuck *b = arg;
    blz_async_fd *afd;
    CHECK_OK(blz_async_fd_new(b->fds[0], &afd));
    atomic_store(&b->waiting, true);
    CHECK_OK(blz_async_fd_ready(afd, BLZ_READABLE));
    blz_runtime *rt = b->rt;
    unsigned me = blz__worker_current()->index;
    unsigned spinner = atomic_load(&b->spinner);
    atomic_store(&b->unwatched,
                 spinner != 0 && me != spinner - 1 && atomic_load(&rt->driver_held) == 0 &&
                     atomic_load(&rt->workers[third_worker(me, spinner - 1)].park_state) ==
                         BLZ_PARK_SLEEPING);
    (void) spawn_then_spin(&b->c);
    atomic_store(&b->strander_done, true);
    blz_async_fd_free(afd);
    return NULL;
}

/* B spins; another worker watches, asleep in the driver; the third sleeps on
 * its futex. */
static bool
one_stuck_one_watching_one_asleep(blz_runtime *rt)
{
    unsigned spinner = atomic_load(&beside->spinner);
    uint32_t held = atomic_load(&rt->driver_held);
    if (spinner == 0 || held == 0 || held == spinner) {
        return false;
    }
    unsigned third = third_worker(held - 1, spinner - 1);
    uint64_t idle = atomic_load(&rt->idle_mask);
    return (idle >> (held - 1) & 1) && (idle >> third & 1) &&
           atomic_load(&rt->workers[held - 1].park_state) == BLZ_PARK_DRIVER &&
           atomic_load(&rt->workers[third].park_state) == BLZ_PARK_SLEEPING;
}

BLZ_TEST(a_task_stranded_unwatched_beside_a_stuck_worker_runs_elsewhere)
{
    for (int round = 0; round < 3; round++) {
        static beside_stuck b;
        memset(&b, 0, sizeof b);
        beside = &b;
        CHECK_EQ(pipe2(b.fds, O_NONBLOCK | O_CLOEXEC), 0);
        blz_runtime_config cfg;
        blz_runtime_config_default(&cfg);
        cfg.workers = 3;
        cfg.ring_per_worker = false; /* one driver: only the watcher polls it */
        CHECK_OK(blz_runtime_new(&cfg, &b.rt));
        if (!b.rt->rescue_on) {
            blz_runtime_free(b.rt);
            SKIP("no membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED): no rescue");
        }
        blz_join *reader, *spinner;
        CHECK_OK(blz_runtime_spawn(b.rt, wait_readable_then_strand_beside, &b, &reader));
        CHECK(yield_until(&b.waiting, SPIN_LIMIT_MS));
        CHECK_OK(blz_runtime_spawn(b.rt, spin_until_stranded_ran, &b, &spinner));
        CHECK(wait_state(b.rt, one_stuck_one_watching_one_asleep, SPIN_LIMIT_MS));
        CHECK_EQ(write(b.fds[1], "x", 1), 1);
        CHECK_OK(blz_join_wait(reader, NULL));
        CHECK_OK(blz_join_wait(spinner, NULL));
        CHECK(atomic_load(&b.unwatched));
        CHECK(atomic_load(&b.c.spinner_saw_it));
        CHECK(atomic_load(&b.spinner_saw_it));
        CHECK_GE(rescued(b.rt), 1);
        blz_runtime_free(b.rt);
        close(b.fds[0]);
        close(b.fds[1]);
    }
}

/* ---- the protocol alone, at a high rate ------------------------------------------- */

/* One thread plays a worker's owner, doing the four slot operations at
 * random on fresh tokens as fast as it can; another plays a rescuer that
 * finds it stuck every time (its bookkeeping reset before each take). Each
 * token must end up held by exactly one side, once: none lost, none twice.
 * With a membarrier per rescue interrupting the owner mid-operation, the
 * repair paths in rt/rescue.h run here thousands of times per round. */
#define PROTO_TOKENS 200000

typedef struct proto {
    blz__worker w;
    blz__task *tok;
    atomic_uchar *held;
    atomic_bool owner_done;
    uint64_t rescues;
} proto;

static void
hold(proto *p, blz__task *t)
{
    atomic_fetch_add(&p->held[t - p->tok], 1);
}

static void
hold_chain(proto *p, blz__task *t)
{
    while (t) {
        blz__task *next = t->queue_next;
        hold(p, t);
        t = next;
    }
}

static void *
proto_owner(void *arg)
{
    proto *p = arg;
    uint32_t rng = 0x2545f491u;
    size_t next = 0;
    while (next < PROTO_TOKENS) {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        blz__task *t;
        switch (rng % 4) {
        case 0:
            t = blz__lifo_put(&p->w, &p->tok[next++]);
            if (t) {
                hold(p, t);
            }
            break;
        case 1:
            t = blz__lifo_take(&p->w);
            if (t) {
                hold(p, t);
            }
            break;
        case 2:
            blz__defer_push(&p->w, &p->tok[next++]);
            break;
        default:
            hold_chain(p, blz__defer_take_all(&p->w));
            break;
        }
    }
    atomic_store(&p->owner_done, true);
    return NULL;
}

static void *
proto_rescuer(void *arg)
{
    proto *p = arg;
    while (!atomic_load(&p->owner_done)) {
        atomic_store(&p->w.stuck_polls, atomic_load(&p->w.polls));
        atomic_store(&p->w.stuck_since, 1); /* long ago */
        blz__task *lifo, *defer;
        if (blz__rescue_take(&p->w, &lifo, &defer)) {
            p->rescues++;
            if (lifo) {
                hold(p, lifo);
            }
            hold_chain(p, defer);
        }
    }
    return NULL;
}

BLZ_TEST(protocol_loses_and_doubles_nothing_under_a_rescue_storm)
{
    if (!blz__sys_membarrier_ready() && blz__sys_membarrier_register() != 0) {
        SKIP("no membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED): no rescue");
    }
    static proto p;
    p.tok = calloc(PROTO_TOKENS, sizeof *p.tok);
    p.held = calloc(PROTO_TOKENS, sizeof *p.held);
    CHECK(p.tok && p.held);
    uint64_t rescues = 0;
    for (int round = 0; round < 4; round++) {
        memset(&p.w, 0, sizeof p.w);
        memset(p.held, 0, PROTO_TOKENS * sizeof *p.held);
        atomic_store(&p.owner_done, false);
        p.rescues = 0;
        pthread_t owner, rescuer;
        CHECK_EQ(pthread_create(&rescuer, NULL, proto_rescuer, &p), 0);
        CHECK_EQ(pthread_create(&owner, NULL, proto_owner, &p), 0);
        CHECK_EQ(pthread_join(owner, NULL), 0);
        CHECK_EQ(pthread_join(rescuer, NULL), 0);
        /* Both threads are gone: what is left in the two places is the owner's. */
        blz__task *t = blz__lifo_take(&p.w);
        if (t) {
            hold(&p, t);
        }
        hold_chain(&p, blz__defer_take_all(&p.w));
        for (size_t i = 0; i < PROTO_TOKENS; i++) {
            CHECK_EQ(atomic_load(&p.held[i]), 1);
        }
        rescues += p.rescues;
    }
    CHECK_GT(rescues, 0);
    free(p.tok);
    free(p.held);
}

/* ---- what stays as it was ------------------------------------------------------- */

/* One worker: nobody to rescue to; a task that yields still runs after the
 * task it yielded to (no rescue, no change). */
static void *
yield_and_count(void *arg)
{
    atomic_uint *n = arg;
    blz_yield();
    atomic_fetch_add(n, 1);
    return NULL;
}

BLZ_TEST(one_worker_never_rescues)
{
    blz_runtime *rt = test_runtime(1, 0);
    atomic_uint n = 0;
    blz_join *js[8];
    for (int i = 0; i < 8; i++) {
        CHECK_OK(blz_runtime_spawn(rt, yield_and_count, &n, &js[i]));
    }
    CHECK_OK(blz_join_all(js, 8, NULL));
    CHECK_EQ(atomic_load(&n), 8);
    CHECK_EQ(rescued(rt), 0);
    blz_runtime_free(rt);
}
