/*
 * bench/sync.c — the sync primitive rows, with the parameters of Tokio's side
 * (bench/tokio/src/rows_sync.rs and rows_rt.rs):
 *
 *   mutex, rwlock_read, rwlock_write, semaphore   try tier + unlock, uncontended,
 *                                                 1,000,000 ops on this thread
 *   oncecell_get                                  get on a set cell
 *   oncecell_set                                  a fresh cell per op, set, get
 *   notify                                        a fresh Notify per op: notify_one
 *                                                 stores the permit, one poll of a
 *                                                 wait future consumes it
 *   barrier                                       a fresh Barrier(1) per op, awaited
 *                                                 in a fiber (Tokio: in block_on)
 *   contended_mutex      4 tasks                  10,000 ops split across the tasks,
 *   contended_rwlock     4 readers + 2 writers    on a runtime with 4 workers, timed
 *   contended_semaphore  8 tasks, 2 permits       from before the first spawn to after
 *                                                 the last join
 *   cas_floor                                     blitzio only: one successful
 *                                                 compare-and-swap per op, the floor the
 *                                                 uncontended rows are held against
 *
 *     bench_sync [--json] [--runs N] [--warmups N] [row ...]
 */
#include "blitzio/sync.h"

#include "bench.h"

#define SYNC_OPS  1000000
#define ASYNC_OPS 10000

/* Keeps the compiler from proving things about the primitive or the value. */
#define OPAQUE(p)                               \
 do {                                           \
  __asm__ __volatile__("" : "+r"(p)::"memory"); \
 } while (0)

static volatile uint64_t sink_;

static void
check(int rc)
{
    if (rc < 0) {
        fprintf(stderr, "bench_sync: unexpected %s\n", blz_errname(rc));
        abort();
    }
}

/* ---- uncontended try tier ------------------------------------------------ */

/* One successful locked compare-and-swap per op on a private word: the cost
 * of the one atomic read-modify-write every lock acquisition needs, and every
 * unlock that must not touch the lock after it lets go (docs/design.md "Last
 * touch"): a lock/unlock pair pays two. The expected value is carried in a
 * register, not loaded: on x86 a load of a word that a locked instruction
 * has just written waits for that write to land (about as long as the CAS),
 * which is why the sync fast paths CAS on a known or hinted value. Two CASes
 * per iteration, on constants, so no CAS waits for the last one's result. */
static void
row_cas_floor(bench_run *r)
{
    static _Atomic uint64_t word;
    _Atomic uint64_t *p = &word;
    r->ops = SYNC_OPS;
    bench_start(r);
    for (int i = 0; i < SYNC_OPS / 2; i++) {
        OPAQUE(p);
        uint64_t v = 0;
        if (!atomic_compare_exchange_strong_explicit(p, &v, 1, memory_order_acquire,
                                                     memory_order_relaxed)) {
            abort();
        }
        v = 1;
        if (!atomic_compare_exchange_strong_explicit(p, &v, 0, memory_order_release,
                                                     memory_order_relaxed)) {
            abort();
        }
    }
    bench_stop(r);
    sink_ = atomic_load(p);
}

static void
row_mutex(bench_run *r)
{
    static blz_mutex m = BLZ_MUTEX_INIT;
    blz_mutex *p = &m;
    r->ops = SYNC_OPS;
    bench_start(r);
    for (int i = 0; i < SYNC_OPS; i++) {
        OPAQUE(p);
        check(blz_mutex_try_lock(p));
        blz_mutex_unlock(p);
    }
    bench_stop(r);
}

static void
row_rwlock_read(bench_run *r)
{
    static blz_rwlock l = BLZ_RWLOCK_INIT;
    blz_rwlock *p = &l;
    r->ops = SYNC_OPS;
    bench_start(r);
    for (int i = 0; i < SYNC_OPS; i++) {
        OPAQUE(p);
        check(blz_rwlock_try_read(p));
        blz_rwlock_read_unlock(p);
    }
    bench_stop(r);
}

static void
row_rwlock_write(bench_run *r)
{
    static blz_rwlock l = BLZ_RWLOCK_INIT;
    static uint64_t value;
    blz_rwlock *p = &l;
    r->ops = SYNC_OPS;
    bench_start(r);
    for (int i = 0; i < SYNC_OPS; i++) {
        OPAQUE(p);
        check(blz_rwlock_try_write(p));
        value++;
        blz_rwlock_write_unlock(p);
    }
    bench_stop(r);
    sink_ = value;
}

static void
row_semaphore(bench_run *r)
{
    static blz_semaphore s = BLZ_SEMAPHORE_INIT(10);
    blz_semaphore *p = &s;
    r->ops = SYNC_OPS;
    bench_start(r);
    for (int i = 0; i < SYNC_OPS; i++) {
        OPAQUE(p);
        check(blz_semaphore_try_acquire(p, 1));
        blz_semaphore_release(p, 1);
    }
    bench_stop(r);
}

static void
row_oncecell_get(bench_run *r)
{
    static blz_oncecell c = BLZ_ONCECELL_INIT;
    (void) blz_oncecell_set(&c, (void *) 42);
    blz_oncecell *p = &c;
    uint64_t sum = 0;
    r->ops = SYNC_OPS;
    bench_start(r);
    for (int i = 0; i < SYNC_OPS; i++) {
        OPAQUE(p);
        void *v;
        check(blz_oncecell_get(p, &v));
        sum += (uintptr_t) v;
    }
    bench_stop(r);
    sink_ = sum;
}

static void
row_oncecell_set(bench_run *r)
{
    uint64_t sum = 0;
    r->ops = SYNC_OPS;
    bench_start(r);
    for (int i = 0; i < SYNC_OPS; i++) {
        blz_oncecell c = BLZ_ONCECELL_INIT;
        blz_oncecell *p = &c;
        OPAQUE(p);
        check(blz_oncecell_set(p, (void *) (uintptr_t) i));
        void *v;
        check(blz_oncecell_get(p, &v));
        sum += (uintptr_t) v;
    }
    bench_stop(r);
    sink_ = sum;
}

static void
row_notify(bench_run *r)
{
    blz_context cx = {blz_waker_noop()};
    r->ops = SYNC_OPS;
    bench_start(r);
    for (int i = 0; i < SYNC_OPS; i++) {
        blz_notify n = BLZ_NOTIFY_INIT;
        blz_notify *p = &n;
        OPAQUE(p);
        blz_notify_one(p);
        blz_notify_wait_future f;
        blz_notify_wait_fut(p, &f);
        if (blz_future_poll(&f.base, &cx) != BLZ_READY) {
            abort();
        }
    }
    bench_stop(r);
}

static blz_runtime *rt1; /* one worker, for the barrier row (Tokio: current-thread) */
static blz_runtime *rt4; /* four workers, for the contended rows */

static void *
barrier_body(void *arg)
{
    bench_run *r = arg;
    uint64_t leaders = 0;
    r->ops = SYNC_OPS;
    bench_start(r);
    for (int i = 0; i < SYNC_OPS; i++) {
        blz_barrier b = BLZ_BARRIER_INIT(1);
        blz_barrier *p = &b;
        OPAQUE(p);
        int rc = blz_barrier_wait(p);
        check(rc);
        leaders += (uint64_t) rc;
    }
    bench_stop(r);
    sink_ = leaders;
    return NULL;
}

static void
row_barrier(bench_run *r)
{
    check(blz_runtime_block_on(rt1, barrier_body, r, NULL));
}

/* ---- contended, on the runtime ------------------------------------------- */

static uint64_t
share(uint64_t total, uint64_t n, uint64_t i)
{
    return total / n + (i < total % n);
}

typedef struct contended {
    blz_mutex mutex;
    blz_rwlock rwlock;
    blz_semaphore sem;
    uint64_t counter;        /* under mutex / the write lock */
    _Atomic uint64_t inside; /* semaphore row: entries counted */
} contended;

static contended shared_;

typedef struct task_arg {
    uint64_t n; /* ops for this task */
    int writer; /* rwlock row: 1 for a writer */
} task_arg;

static void *
mutex_task(void *arg)
{
    task_arg *a = arg;
    for (uint64_t i = 0; i < a->n; i++) {
        check(blz_mutex_lock(&shared_.mutex));
        shared_.counter++;
        blz_mutex_unlock(&shared_.mutex);
    }
    return NULL;
}

static void *
rwlock_task(void *arg)
{
    task_arg *a = arg;
    for (uint64_t i = 0; i < a->n; i++) {
        if (a->writer) {
            check(blz_rwlock_write(&shared_.rwlock));
            shared_.counter++;
            blz_rwlock_write_unlock(&shared_.rwlock);
        } else {
            check(blz_rwlock_read(&shared_.rwlock));
            sink_ = shared_.counter;
            blz_rwlock_read_unlock(&shared_.rwlock);
        }
    }
    return NULL;
}

static void *
semaphore_task(void *arg)
{
    task_arg *a = arg;
    for (uint64_t i = 0; i < a->n; i++) {
        check(blz_semaphore_acquire(&shared_.sem, 1));
        atomic_fetch_add_explicit(&shared_.inside, 1, memory_order_relaxed);
        blz_semaphore_release(&shared_.sem, 1);
    }
    return NULL;
}

typedef struct contended_row {
    bench_run *r;
    blz_task_fn fn;
    int tasks;
    int writers; /* the last `writers` tasks are writers */
} contended_row;

static void *
contended_body(void *arg)
{
    contended_row *c = arg;
    blz_join *j[16];
    task_arg a[16];
    blz_mutex_init(&shared_.mutex);
    blz_rwlock_init(&shared_.rwlock);
    check(blz_semaphore_init(&shared_.sem, 2));
    shared_.counter = 0;
    atomic_store(&shared_.inside, 0);
    c->r->ops = ASYNC_OPS;
    bench_start(c->r);
    for (int t = 0; t < c->tasks; t++) {
        a[t].n = share(ASYNC_OPS, (uint64_t) c->tasks, (uint64_t) t);
        a[t].writer = t >= c->tasks - c->writers;
        check(blz_spawn(c->fn, &a[t], &j[t]));
    }
    for (int t = 0; t < c->tasks; t++) {
        check(blz_join_wait(j[t], NULL));
    }
    bench_stop(c->r);
    if (c->fn == mutex_task && shared_.counter != ASYNC_OPS) {
        abort();
    }
    if (c->fn == semaphore_task && atomic_load(&shared_.inside) != ASYNC_OPS) {
        abort();
    }
    return NULL;
}

static void
run_contended(bench_run *r, blz_task_fn fn, int tasks, int writers)
{
    contended_row c = {r, fn, tasks, writers};
    check(bench_block_on(r, rt4, contended_body, &c));
}

static void
row_contended_mutex(bench_run *r)
{
    run_contended(r, mutex_task, 4, 0);
}

static void
row_contended_rwlock(bench_run *r)
{
    run_contended(r, rwlock_task, 6, 2);
}

static void
row_contended_semaphore(bench_run *r)
{
    run_contended(r, semaphore_task, 8, 0);
}

int
main(int argc, char **argv)
{
    bench_init(argc, argv);
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 1;
    check(blz_runtime_new(&cfg, &rt1));
    cfg.workers = 4;
    check(blz_runtime_new(&cfg, &rt4));

    bench_row("mutex", row_mutex, NULL);
    bench_row("rwlock_read", row_rwlock_read, NULL);
    bench_row("rwlock_write", row_rwlock_write, NULL);
    bench_row("semaphore", row_semaphore, NULL);
    bench_row("oncecell_get", row_oncecell_get, NULL);
    bench_row("oncecell_set", row_oncecell_set, NULL);
    bench_row("notify", row_notify, NULL);
    bench_row("barrier", row_barrier, NULL);
    bench_row("contended_mutex", row_contended_mutex, NULL);
    bench_row("contended_rwlock", row_contended_rwlock, NULL);
    bench_row("contended_semaphore", row_contended_semaphore, NULL);
    bench_row("cas_floor", row_cas_floor, NULL);

    blz_runtime_free(rt4);
    blz_runtime_free(rt1);
    return 0;
}
