/*
 * Task hooks (blz_runtime_config.on_task_*): every task that is spawned is
 * terminated once, polls come in before/after pairs on one thread, a
 * finishing poll has its terminate inside the pair, and the meta names the
 * task's kind and function. Real tasks on four workers: fibers that yield
 * and spawn futures, blocking jobs, tasks aborted before they ran.
 */
#include "harness.h"
#include "rt_util.h"

#include <pthread.h>
#include <stdatomic.h>

#define SLOTS 8192 /* open addressing over live tasks; far more than live at once */

typedef struct record {
    const void *task; /* NULL: free slot; TOMB: a task that ended */
    blz_dump_kind kind;
    blz_task_fn fn;
    blz_poll (*future_fn)(blz_future *, blz_context *);
    bool in_poll;  /* between its before and after hooks */
    bool finished; /* terminated inside the current poll */
    pthread_t poller;
    unsigned polls;
} record;

typedef struct ledger {
    pthread_mutex_t lock;
    record slot[SLOTS];
    unsigned live, spawned, terminated, polls, terminated_in_poll, blocking_terminated;
    unsigned errors; /* inconsistencies seen inside hooks (checked after) */
    unsigned fiber_polls_max;
} ledger;

static ledger book;
#define TOMB ((const void *) 1)

static size_t
hash(const void *p)
{
    return (size_t) (((uintptr_t) p >> 4) * 0x9e3779b97f4a7c15ull >> 51); /* 13 bits */
}

/* The live record of task, or NULL. Lock held. */
static record *
find(const void *task)
{
    for (size_t i = hash(task), n = 0; n < SLOTS && book.slot[i].task; i = (i + 1) % SLOTS, n++) {
        if (book.slot[i].task == task) {
            return &book.slot[i];
        }
    }
    return NULL;
}

/* The task ended: its identity may be reused from now on. Lock held. */
static void
retire(record *r)
{
    r->task = TOMB;
    book.live--;
}

static void *yielding_fiber(void *arg);
static void *blocking_job(void *arg);

/* The meta names what was spawned: the workload's three functions. */
static bool
meta_names_the_entry(const blz_task_meta *m)
{
    switch (m->kind) {
    case BLZ_DUMP_FIBER:
        return m->fn == yielding_fiber && !m->future_fn;
    case BLZ_DUMP_BLOCKING:
        return m->fn == blocking_job && !m->future_fn;
    default:
        return !m->fn && m->future_fn == ready_poll;
    }
}

static void
on_spawn(const blz_task_meta *m, void *arg)
{
    pthread_mutex_lock(&book.lock);
    if (arg != &book || find(m->task) || !meta_names_the_entry(m)) {
        book.errors++; /* wrong argument or meta, or spawned twice while alive */
    } else {
        size_t i = hash(m->task);
        while (book.slot[i].task != NULL && book.slot[i].task != TOMB) {
            i = (i + 1) % SLOTS;
        }
        book.slot[i] = (record){m->task, m->kind, m->fn, m->future_fn, false, false, 0, 0};
        book.live++;
        book.spawned++;
    }
    pthread_mutex_unlock(&book.lock);
}

/* The task whose run, on this thread, just called on_task_terminate. */
static _Thread_local const void *tl_terminated;

/* Spins for `us` microseconds. */
static void
linger_us(int64_t us)
{
    int64_t end = wall_us() + us;
    while (wall_us() < end) {
    }
}

static void
on_terminate(const blz_task_meta *m, void *arg)
{
    (void) arg;
    tl_terminated = m->task;
    pthread_mutex_lock(&book.lock);
    record *r = find(m->task);
    /* The entry is gone by now: the meta names the kind only. A fiber or
     * future ends inside a poll, a blocking job outside any. */
    if (!r || m->fn || m->future_fn || r->kind != m->kind || r->finished ||
        r->in_poll != (r->kind != BLZ_DUMP_BLOCKING)) {
        book.errors++;
    } else {
        book.terminated++;
        if (r->kind == BLZ_DUMP_FIBER && r->polls > book.fiber_polls_max) {
            book.fiber_polls_max = r->polls;
        }
        if (r->in_poll) {
            book.terminated_in_poll++;
            r->finished = true; /* retired by its after hook */
        } else {
            book.blocking_terminated++;
            retire(r);
        }
    }
    pthread_mutex_unlock(&book.lock);
}

static void
on_before(const blz_task_meta *m, void *arg)
{
    (void) arg;
    pthread_mutex_lock(&book.lock);
    record *r = find(m->task);
    if (!r || r->in_poll || r->finished || r->kind != m->kind || r->fn != m->fn ||
        r->future_fn != m->future_fn || m->kind == BLZ_DUMP_BLOCKING) {
        book.errors++;
    } else {
        r->in_poll = true;
        r->poller = pthread_self();
        r->polls++;
        book.polls++;
    }
    pthread_mutex_unlock(&book.lock);
}

static void
on_after(const blz_task_meta *m, void *arg)
{
    (void) arg;
    if (m->task == tl_terminated) {
        /* The run finished its task: linger before looking, so that a
         * joiner on another thread has time to free it and spawn again. A
         * runtime that let the new task take this identity now would show
         * it to on_spawn while this record still stands. */
        tl_terminated = NULL;
        linger_us(20);
    }
    pthread_mutex_lock(&book.lock);
    record *r = find(m->task);
    if (!r || !r->in_poll || !pthread_equal(r->poller, pthread_self())) {
        book.errors++;
    } else {
        r->in_poll = false;
        if (r->finished) {
            retire(r);
        }
    }
    pthread_mutex_unlock(&book.lock);
}

/* ---- the workload ----------------------------------------------------------------- */

static void *
blocking_job(void *arg)
{
    return arg;
}

#define YIELDS 3

static atomic_uint futures_spawned; /* an aborted fiber may have run far enough to spawn some */

static void *
yielding_fiber(void *arg)
{
    (void) arg;
    for (int i = 0; i < YIELDS; i++) {
        blz_yield();
    }
    for (int i = 0; i < 2; i++) {
        ready_future f = READY_FUTURE(i);
        atomic_fetch_add(&futures_spawned, 1);
        blz_join *j;
        CHECK_OK(blz_spawn_future(&f.base, sizeof f, &j));
        int rc = blz_join_wait(j, NULL); /* -ECANCELED once this fiber is aborted */
        CHECK(rc == 0 || rc == -ECANCELED);
    }
    return NULL;
}

static blz_runtime *
hooked_runtime(unsigned workers)
{
    memset(&book, 0, sizeof book);
    atomic_store(&futures_spawned, 0);
    pthread_mutex_init(&book.lock, NULL);
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = workers;
    cfg.on_task_spawn = on_spawn;
    cfg.on_task_terminate = on_terminate;
    cfg.on_before_task_poll = on_before;
    cfg.on_after_task_poll = on_after;
    cfg.task_hook_arg = &book;
    cfg.poll_time_histogram = true;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    return rt;
}

/* One runtime's worth of the workload, checked. */
static void
hooked_round(void)
{
    enum { FIBERS = 200, JOBS = 20, ABORTED = 20 };
    blz_runtime *rt = hooked_runtime(4);
    blz_join *fibers[FIBERS], *jobs[JOBS];
    for (int i = 0; i < FIBERS; i++) {
        CHECK_OK(blz_runtime_spawn(rt, yielding_fiber, NULL, &fibers[i]));
    }
    for (int i = 0; i < JOBS; i++) {
        CHECK_OK(blz_runtime_spawn_blocking(rt, blocking_job, NULL, &jobs[i]));
    }
    for (int i = 0; i < ABORTED; i++) {
        blz_join *j;
        CHECK_OK(blz_runtime_spawn(rt, yielding_fiber, NULL, &j));
        blz_join_abort(j);
        int rc = blz_join_wait(j, NULL);
        CHECK(rc == 0 || rc == -ECANCELED);
    }
    CHECK_OK(blz_join_all(fibers, FIBERS, NULL));
    CHECK_OK(blz_join_all(jobs, JOBS, NULL));
    blz_metrics m;
    blz_runtime_metrics(rt, &m);
    uint64_t timed = 0;
    for (int b = 0; b < BLZ_POLL_BUCKETS; b++) {
        timed += m.poll_time_histogram[b];
    }
    blz_runtime_free(rt);

    pthread_mutex_lock(&book.lock);
    CHECK_EQ(book.errors, 0);
    CHECK_EQ(book.live, 0);
    CHECK_GE(atomic_load(&futures_spawned), 2 * FIBERS);
    CHECK_EQ(book.spawned, FIBERS + ABORTED + atomic_load(&futures_spawned) + JOBS);
    CHECK_EQ(book.terminated, book.spawned);
    CHECK_EQ(book.blocking_terminated, JOBS);
    CHECK_EQ(book.terminated_in_poll, book.spawned - JOBS);
    CHECK_GE(book.fiber_polls_max, YIELDS + 1);
    /* The poll-time histogram shares the hooks' path and still counts (a
     * joiner can read it before the last runs' counts land: no equality). */
    CHECK_GT(timed, book.polls / 2);
    pthread_mutex_unlock(&book.lock);
}

/* A task freed in its last run before the after hook was called let a new
 * spawn take its identity first (the after hook's linger widens that
 * window); several rounds make a return of that race show. */
BLZ_TEST(every_spawned_task_terminates_once_and_polls_come_in_pairs)
{
    for (int round = 0; round < 30; round++) {
        hooked_round();
    }
}

/* Tasks still queued when their runtime is freed are aborted and run to
 * their end like any other, hook included: a tracer that pairs every spawn
 * with its terminate sees every pair. Nothing drives this current-thread
 * runtime before its free, so every task is still queued then. */
static atomic_int queued_spawned, queued_terminated;

static void
count_spawn(const blz_task_meta *m, void *arg)
{
    (void) m;
    (void) arg;
    atomic_fetch_add(&queued_spawned, 1);
}

static void
count_terminate(const blz_task_meta *m, void *arg)
{
    (void) m;
    (void) arg;
    atomic_fetch_add(&queued_terminated, 1);
}

BLZ_TEST(tasks_queued_at_free_terminate_with_their_hook)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.flavor = BLZ_CURRENT_THREAD;
    cfg.on_task_spawn = count_spawn;
    cfg.on_task_terminate = count_terminate;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    for (int i = 0; i < 50; i++) {
        CHECK_OK(blz_runtime_spawn(rt, blocking_job, NULL, NULL));
        ready_future f = READY_FUTURE(i);
        CHECK_OK(blz_runtime_spawn_future(rt, &f.base, sizeof f, NULL));
    }
    CHECK_EQ(atomic_load(&queued_terminated), 0);
    blz_runtime_free(rt);
    CHECK_EQ(atomic_load(&queued_spawned), 100);
    CHECK_EQ(atomic_load(&queued_terminated), 100);
}
