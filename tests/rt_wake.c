/*
 * Wake-up races: a foreign thread wakes a task exactly while it is being
 * polled or going idle, a million times, in lock step, so a single lost wake
 * hangs the test (and ctest's timeout fails it). Also: yield fairness under
 * the coop budget, many fibers suspended at once behind one gate, and a
 * notifier's count of a searcher it never woke hiding the sleepers.
 */
#include "blitzio.h"
#include "harness.h"
#include "poll_util.h"
#include "rt/runtime.h"
#include "rt_util.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

/* The stress build (tests/stress/rt_wake_1m.c) runs the full million. */
#ifndef PINGPONGS
# define PINGPONGS 100000
#endif

typedef struct pingpong {
    _Atomic uint64_t produced;  /* written by the foreign thread */
    _Atomic uint64_t seen;      /* written by the task's poll */
    _Atomic(blz_waker *) waker; /* the task's waker, stored once */
    blz_waker stored;
} pingpong;

typedef struct pp_future {
    blz_future base;
    pingpong *pp;
} pp_future;

static blz_poll
pp_poll(blz_future *self, blz_context *cx)
{
    pingpong *pp = ((pp_future *) self)->pp;
    if (!atomic_load(&pp->waker)) {
        pp->stored = blz_waker_clone(cx->waker);
        atomic_store(&pp->waker, &pp->stored);
    }
    uint64_t v = atomic_load(&pp->produced);
    atomic_store(&pp->seen, v);
    if (v == PINGPONGS) {
        blz_waker_drop(&pp->stored);
        self->result = 0;
        return BLZ_READY;
    }
    return BLZ_PENDING;
}

static const blz_future_vtable pp_vt = {pp_poll, NULL};

static void *
producer(void *arg)
{
    pingpong *pp = arg;
    while (!atomic_load(&pp->waker)) {
        sched_yield();
    }
    blz_waker *w = atomic_load(&pp->waker);
    for (uint64_t i = 1; i <= PINGPONGS; i++) {
        atomic_store(&pp->produced, i);
        blz_waker_wake_by_ref(w);
        /* Lock step: the next value only once the task has seen this one. A lost
         * wake leaves the task idle with seen < i forever. */
        unsigned spins = 0;
        while (atomic_load(&pp->seen) < i) {
            if (++spins > 64) {
                sched_yield();
            }
        }
        if (i == PINGPONGS) {
            break; /* the task may have completed and dropped the waker */
        }
    }
    return NULL;
}

BLZ_TEST(cross_thread_wake_races_poll)
{
    blz_runtime *rt = test_new_rt(2);
    pingpong pp = {0};
    pp_future f = {{&pp_vt, 0, 0}, &pp};
    blz_join *j;
    CHECK_OK(blz_runtime_spawn_future(rt, &f.base, sizeof f, &j));
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, producer, &pp), 0);
    CHECK_OK(blz_join_wait(j, NULL));
    pthread_join(th, NULL);
    CHECK_EQ(atomic_load(&pp.seen), PINGPONGS);
    blz_runtime_free(rt);
}

/* ---- a gate many fibers wait behind -------------------------------------- */

/* ThreadSanitizer keeps a shadow context per fiber and runs out long before
 * 20,000 of them; it checks the same code paths with fewer. */
#ifndef GATE_MAX
# if defined(__SANITIZE_THREAD__)
#  define GATE_MAX 2000
# elif defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#   define GATE_MAX 2000
#  endif
# endif
#endif
#ifndef GATE_MAX
# define GATE_MAX 20000
#endif

typedef struct gate {
    pthread_mutex_t lock;
    bool open;
    blz_waker wakers[GATE_MAX];
    size_t n;
} gate;

typedef struct gate_future {
    blz_future base;
    gate *g;
    size_t slot; /* index in g->wakers, or SIZE_MAX */
} gate_future;

static blz_poll
gate_poll(blz_future *self, blz_context *cx)
{
    gate_future *f = (gate_future *) self;
    pthread_mutex_lock(&f->g->lock);
    bool open = f->g->open;
    if (!open && f->slot == SIZE_MAX) {
        f->slot = f->g->n++;
        f->g->wakers[f->slot] = blz_waker_clone(cx->waker);
    }
    pthread_mutex_unlock(&f->g->lock);
    self->result = 0;
    return open ? BLZ_READY : BLZ_PENDING;
}

static const blz_future_vtable gate_vt = {gate_poll, NULL};

static gate the_gate = {PTHREAD_MUTEX_INITIALIZER, false, {{0}}, 0};
static atomic_int waiting;

static void *
wait_at_gate(void *arg)
{
    char scratch[512]; /* touch some stack: it must survive suspension */
    for (size_t i = 0; i < sizeof scratch; i++) {
        scratch[i] = (char) (i ^ (uintptr_t) arg);
    }
    gate_future f = {{&gate_vt, 0, 0}, &the_gate, SIZE_MAX};
    atomic_fetch_add(&waiting, 1);
    CHECK_OK(blz_await(&f.base));
    for (size_t i = 0; i < sizeof scratch; i++) {
        CHECK_EQ(scratch[i], (char) (i ^ (uintptr_t) arg));
    }
    return arg;
}

static void *
many_fibers(void *arg)
{
    size_t n = (size_t) arg;
    blz_join **j = malloc(n * sizeof *j);
    for (size_t i = 0; i < n; i++) {
        CHECK_OK(blz_spawn(wait_at_gate, (void *) i, &j[i]));
    }
    while ((size_t) atomic_load(&waiting) < n) {
        blz_yield();
    }
    /* Every fiber is now suspended (or about to be) with its stack alive. */
    pthread_mutex_lock(&the_gate.lock);
    the_gate.open = true;
    size_t nw = the_gate.n;
    pthread_mutex_unlock(&the_gate.lock);
    for (size_t i = 0; i < nw; i++) {
        blz_waker_wake(&the_gate.wakers[i]);
    }
    for (size_t i = 0; i < n; i++) {
        void *v;
        CHECK_OK(blz_join_wait(j[i], &v));
        CHECK_EQ((size_t) v, i);
    }
    free(j);
    return NULL;
}

BLZ_TEST(many_fibers_suspended_at_once)
{
    blz_runtime *rt = test_new_rt(2);
    CHECK_OK(blz_runtime_block_on(rt, many_fibers, (void *) GATE_MAX, NULL));
    blz_runtime_free(rt);
}

/* ---- fairness: a task that never waits still lets others run -------------- */

static atomic_int stop_spinning;

static void *
busy_awaiter(void *arg)
{
    (void) arg;
    /* Awaits futures that are always ready: without the coop budget this fiber would
     * never give up its worker. */
    while (!atomic_load(&stop_spinning)) {
        blz_yield_future y;
        blz_future ready;
        (void) y;
        blz_future_init(&ready, NULL);
        ready.vtable = NULL; /* a dropped future: ready at once with -ECANCELED */
        (void) blz_await(&ready);
    }
    return NULL;
}

static void *
fairness_body(void *arg)
{
    (void) arg;
    blz_join *spinners[4];
    for (int i = 0; i < 4; i++) {
        CHECK_OK(blz_spawn(busy_awaiter, NULL, &spinners[i]));
    }
    /* This fiber must still get to run and stop them. */
    for (int i = 0; i < 1000; i++) {
        blz_yield();
    }
    atomic_store(&stop_spinning, 1);
    for (int i = 0; i < 4; i++) {
        CHECK_OK(blz_join_wait(spinners[i], NULL));
    }
    return NULL;
}

BLZ_TEST(coop_budget_keeps_busy_tasks_fair)
{
    blz_runtime *rt = test_current_thread_rt(); /* one thread: only the budget can save us */
    CHECK_OK(blz_runtime_block_on(rt, fairness_body, NULL, NULL));
    blz_runtime_free(rt);
}

/* ---- where a task that yielded goes ------------------------------------- */

/* What ran, in order, on a current-thread runtime (one thread: no locking). */
static char run_order[16];
static size_t run_len;
static int parked_count;
static blz_notify gate_w, gate_a, gate_b;

static void
mark(char c)
{
    CHECK(run_len < sizeof run_order - 1);
    run_order[run_len++] = c;
}

static void *
wait_then_mark(void *arg)
{
    blz_notify *mine = arg;
    parked_count++;
    CHECK_OK(blz_notify_wait(mine));
    mark(mine == &gate_a ? 'A' : 'B');
    return NULL;
}

static void *
waker_w(void *arg)
{
    (void) arg;
    parked_count++;
    CHECK_OK(blz_notify_wait(&gate_w));
    mark('W');
    blz_notify_one(&gate_a); /* A to the LIFO slot... */
    blz_notify_one(&gate_b); /* ...then B, which pushes A to the local queue */
    return NULL;
}

static void *
yielder_y(void *arg)
{
    (void) arg;
    blz_notify_one(&gate_w); /* W to the LIFO slot */
    mark('Y');
    blz_yield();
    mark('y');
    return NULL;
}

static void *
defer_order_body(void *arg)
{
    (void) arg;
    blz_join *j[4];
    CHECK_OK(blz_spawn(wait_then_mark, &gate_a, &j[0]));
    CHECK_OK(blz_spawn(wait_then_mark, &gate_b, &j[1]));
    CHECK_OK(blz_spawn(waker_w, NULL, &j[2]));
    while (parked_count < 3) {
        blz_yield();
    }
    CHECK_OK(blz_spawn(yielder_y, NULL, &j[3]));
    for (int i = 0; i < 4; i++) {
        CHECK_OK(blz_join_wait(j[i], NULL));
    }
    return NULL;
}

/*
 * A task that yields waits until the worker's local queue is empty, so tasks
 * that were woken after it yielded still run first: Y yields, W (woken by Y)
 * wakes A and B, and A, pushed to the local queue behind nothing, runs before
 * Y resumes. Were Y at the back of the local queue, it would run before A.
 */
BLZ_TEST(yielded_task_waits_until_the_local_queue_is_empty)
{
    blz_runtime *rt = test_current_thread_rt(); /* one thread: the order is deterministic */
    blz_notify_init(&gate_w);
    blz_notify_init(&gate_a);
    blz_notify_init(&gate_b);
    CHECK_OK(blz_runtime_block_on(rt, defer_order_body, NULL, NULL));
    run_order[run_len] = '\0';
    CHECK_STR_EQ(run_order, "YWBAy");
    blz_runtime_free(rt);
}

/* Two fibers that hand a turn back and forth keep the worker busy forever
 * (each wakes the other before it waits); a yielded task must still resume. */
#define PINGPONG_TURNS 100000
static blz_notify ping_gate, pong_gate;
static int turns;
static int turns_when_yielded, turns_when_resumed;
static uint64_t polls_while_yielded;

static uint64_t
polls_so_far(void)
{
    blz_metrics m;
    blz_runtime_metrics(blz_runtime_current(), &m);
    return m.polls;
}

static void *
ping_pong(void *arg)
{
    bool ping = arg != NULL;
    blz_notify *mine = ping ? &ping_gate : &pong_gate;
    blz_notify *other = ping ? &pong_gate : &ping_gate;
    while (turns < PINGPONG_TURNS) {
        turns++;
        blz_notify_one(other);
        CHECK_OK(blz_notify_wait(mine));
    }
    blz_notify_one(other); /* let the other see the end too */
    return NULL;
}

static void *
yield_once(void *arg)
{
    (void) arg;
    turns_when_yielded = turns;
    uint64_t before = polls_so_far();
    blz_yield();
    polls_while_yielded = polls_so_far() - before;
    turns_when_resumed = turns;
    return NULL;
}

static void *
starve_body(void *arg)
{
    (void) arg;
    blz_join *j[3];
    CHECK_OK(blz_spawn(ping_pong, (void *) 1, &j[0]));
    CHECK_OK(blz_spawn(ping_pong, NULL, &j[1]));
    while (turns < 10) {
        blz_yield(); /* the pair is running */
    }
    CHECK_OK(blz_spawn(yield_once, NULL, &j[2]));
    for (int i = 0; i < 3; i++) {
        CHECK_OK(blz_join_wait(j[i], NULL));
    }
    return NULL;
}

/* The local queue never empties while the pair runs; the maintenance tick
 * (every 61 scheduler ticks) releases the yielded task all the same. */
BLZ_TEST(yielded_task_is_not_starved_by_a_busy_queue)
{
    blz_runtime *rt = test_current_thread_rt();
    blz_notify_init(&ping_gate);
    blz_notify_init(&pong_gate);
    CHECK_OK(blz_runtime_block_on(rt, starve_body, NULL, NULL));
    CHECK_LT(turns_when_resumed, PINGPONG_TURNS); /* resumed while the pair still ran */
    CHECK_GT(turns_when_resumed, turns_when_yielded);
    /* One poll per scheduler tick: back by the next maintenance tick. */
    CHECK_LE(polls_while_yielded, 62);
    blz_runtime_free(rt);
}

static void *
metrics_body(void *arg)
{
    (void) arg;
    for (int i = 0; i < 100; i++) {
        blz_yield();
    }
    return NULL;
}

BLZ_TEST(metrics_count_work)
{
    blz_runtime *rt = test_new_rt(2);
    CHECK_OK(blz_runtime_block_on(rt, metrics_body, NULL, NULL));
    blz_metrics m;
    blz_runtime_metrics(rt, &m);
    CHECK_EQ(m.workers, 2);
    CHECK_GE(m.tasks_spawned, 1);
    CHECK_EQ(m.tasks_alive, 0);
    CHECK_GE(m.polls, 101);       /* one poll per yield plus the first */
    CHECK_GE(m.inject_pushes, 1); /* block_on spawns from outside */
    CHECK(m.backend != NULL);
    blz_runtime_free(rt);
}

/* ---- a searcher count that woke nobody ------------------------------------------ */

/* Both workers asleep for good: no limit on either sleep (the timers'
 * watcher sleeps without one once it saw the other asleep). */
static bool
both_asleep_without_limit(blz_runtime *rt)
{
    for (unsigned i = 0; i < 2; i++) {
        uint32_t st = atomic_load(&rt->workers[i].park_state);
        if (st != BLZ_PARK_SLEEPING && st != BLZ_PARK_DRIVER) {
            return false;
        }
    }
    return atomic_load(&rt->idle_mask) == 3 && atomic_load(&rt->num_searching) == 0 &&
           (!rt->rescue_on || atomic_load(&rt->rescuer_blind) != 0);
}

static void *
set_flag(void *arg)
{
    atomic_store((atomic_bool *) arg, true);
    return NULL;
}

/*
 * A notifier counts a searcher before it claims a sleeping worker; if that
 * worker left the idle set first, it takes the count back. A thread that
 * queued a task meanwhile saw the count, trusted a search that never came,
 * and woke nobody: with every worker asleep the task waited forever (seen
 * under qemu-user, where a thread is often descheduled between the two
 * steps). The test stands in for that notifier between its steps: it holds
 * the count while a task is spawned from outside, then gives it back the
 * way notify_parked does; the task must run.
 */
BLZ_TEST(a_searcher_count_given_back_wakes_for_the_task_it_hid)
{
    for (int round = 0; round < 20; round++) {
        blz_runtime *rt = test_new_rt(2);
        CHECK(wait_state(rt, both_asleep_without_limit, 5000));
        atomic_fetch_add(&rt->num_searching, 1); /* a notifier's count, in flight */
        atomic_bool ran = false;
        blz_join *j;
        CHECK_OK(blz_runtime_spawn(rt, set_flag, &ran, &j));
        blz__unclaim_searcher(rt); /* it found nobody to claim */
        CHECK(yield_until(&ran, 5000));
        CHECK_OK(blz_join_wait(j, NULL));
        blz_runtime_free(rt);
    }
}
