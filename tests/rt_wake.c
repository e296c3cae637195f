/*
 * Wake-up races: a foreign thread wakes a task exactly while it is being
 * polled or going idle, a million times, in lock step, so a single lost wake
 * hangs the test (and ctest's timeout fails it). Also: yield fairness under
 * the coop budget, and many fibers suspended at once behind one gate.
 */
#include "blitzio.h"
#include "harness.h"

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
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 2;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
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
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 2;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
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
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.flavor = BLZ_CURRENT_THREAD; /* one thread: only the budget can save us */
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    CHECK_OK(blz_runtime_block_on(rt, fairness_body, NULL, NULL));
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
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 2;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
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
