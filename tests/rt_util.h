/*
 * Runtimes for tests: a multi-thread one with given workers and fiber
 * stacks, and one on the I/O backend ctest asked for ($BLZ_BACKEND) that
 * skips the test, saying why, when that backend cannot run here.
 */
#ifndef BLZ_TEST_RT_UTIL_H
#define BLZ_TEST_RT_UTIL_H

#include "blitzio.h"
#include "harness.h"
#include "io/driver.h"
#include "rt/current.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static inline blz_runtime *
test_runtime(unsigned workers, size_t fiber_stack)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = workers;
    cfg.fiber_stack_size = fiber_stack;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    return rt;
}

/* A runtime configured by `cfg` on $BLZ_BACKEND (skips when unavailable). */
static inline blz_runtime *
backend_runtime_cfg(const blz_runtime_config *cfg)
{
    blz_runtime *rt = NULL;
    CHECK_OK(blz_runtime_new(cfg, &rt));
    const char *want = getenv("BLZ_BACKEND");
    const char *got = blz_runtime_backend(rt);
    if (want && *want && strcmp(want, got) != 0) {
        const char *why = blz__io_driver_fallback_reason(blz__rt_io(rt));
        char msg[256];
        snprintf(msg, sizeof msg, "backend %s requested, %s in use: %s", want, got,
                 why ? why : "unknown reason");
        blz_runtime_free(rt);
        SKIP(msg);
    }
    return rt;
}

/* The same with `workers` workers (0: the default). */
static inline blz_runtime *
backend_runtime(unsigned workers)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    if (workers) {
        cfg.workers = workers;
    }
    return backend_runtime_cfg(&cfg);
}

/* Runs fn(arg) as a fiber on a fresh runtime of `workers` workers on the
 * backend ctest asked for, frees it, and returns fn's value. */
static inline void *
backend_run(unsigned workers, blz_task_fn fn, void *arg)
{
    blz_runtime *rt = backend_runtime(workers);
    void *result = NULL;
    CHECK_OK(blz_runtime_block_on(rt, fn, arg, &result));
    blz_runtime_free(rt);
    return result;
}

/* A gate for blocking jobs: gated_job holds its pool thread until the gate
 * opens; job_gate_wait_entered waits until one job is holding. */
typedef struct job_gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool open, entered;
} job_gate;

static inline void
job_gate_init(job_gate *g)
{
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    g->open = g->entered = false;
}

static inline void
job_gate_fini(job_gate *g)
{
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
}

static inline void *
gated_job(void *arg)
{
    job_gate *g = arg;
    pthread_mutex_lock(&g->lock);
    g->entered = true;
    pthread_cond_broadcast(&g->cond);
    while (!g->open) {
        pthread_cond_wait(&g->cond, &g->lock);
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

static inline void
job_gate_wait_entered(job_gate *g)
{
    pthread_mutex_lock(&g->lock);
    while (!g->entered) {
        pthread_cond_wait(&g->cond, &g->lock);
    }
    pthread_mutex_unlock(&g->lock);
}

static inline void
job_gate_open(job_gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->open = true;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

/* A stackless future that finishes on its first poll with `value`:
 * ready_future f = READY_FUTURE(7); blz_spawn_future(&f.base, sizeof f, &j). */
typedef struct ready_future {
    blz_future base;
    int value;
} ready_future;

static inline blz_poll
ready_poll(blz_future *f, blz_context *cx)
{
    (void) cx;
    f->result = ((ready_future *) f)->value;
    return BLZ_READY;
}

static inline const blz_future_vtable *
ready_vtable(void)
{
    static const blz_future_vtable vt = {ready_poll, NULL};
    return &vt;
}

#define READY_FUTURE(v) ((ready_future){{ready_vtable(), 0, 0}, (v)})

/* Wall-clock (CLOCK_MONOTONIC) time for the bounds of tests that spin:
 * not the runtime's clock, which a paused runtime stops. */
static inline int64_t
wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t
wall_ms(void)
{
    return wall_us() / 1000;
}

/* Gives the CPU away until *flag is set; false when limit_ms passed first
 * (a thread of the test, or a start hook, must not keep a worker's core). */
static inline bool
yield_until(atomic_bool *flag, int64_t limit_ms)
{
    int64_t start = wall_ms();
    while (!atomic_load(flag)) {
        if (wall_ms() - start > limit_ms) {
            return false;
        }
        (void) sched_yield();
    }
    return true;
}

/* Gives the CPU away until the runtime's state satisfies `ok`; false when
 * limit_ms passed first. */
static inline bool
wait_state(blz_runtime *rt, bool (*ok)(blz_runtime *), int64_t limit_ms)
{
    int64_t start = wall_ms();
    while (!ok(rt)) {
        if (wall_ms() - start > limit_ms) {
            return false;
        }
        (void) sched_yield();
    }
    return true;
}

/* The calling thread's id, for thread_state. */
static inline int
thread_id(void)
{
    return (int) syscall(SYS_gettid);
}

/* The state letter of a thread of this process ('R', 'S'...; 0 if unknown),
 * from /proc: a test that must act only once another thread sleeps (in a
 * park, a free) waits for 'S' instead of napping and hoping it got there. */
static inline char
thread_state(int tid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    return blz_test_stat_state(path);
}

/* An allocator under which blitzio's freed memory faults at the next touch:
 * each allocation on pages of its own, made inaccessible when freed and
 * never reused. For a test that must see a use after free (it leaks every
 * block; the test runs in its own process). */
#define GUARD_HDR 16

static inline void *
guard_malloc(size_t n)
{
    size_t len = n + GUARD_HDR;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }
    memcpy(p, &len, sizeof len);
    return p + GUARD_HDR;
}

static inline void
guard_free(void *ptr)
{
    if (ptr) {
        char *p = (char *) ptr - GUARD_HDR;
        size_t len;
        memcpy(&len, p, sizeof len);
        (void) mprotect(p, len, PROT_NONE);
    }
}

static inline void *
guard_realloc(void *ptr, size_t n)
{
    void *q = guard_malloc(n);
    if (q && ptr) {
        size_t len;
        memcpy(&len, (char *) ptr - GUARD_HDR, sizeof len);
        memcpy(q, ptr, len - GUARD_HDR < n ? len - GUARD_HDR : n);
        guard_free(ptr);
    }
    return q;
}

static inline void
guard_allocator_install(void)
{
    blz_set_allocator(guard_malloc, guard_realloc, guard_free);
}

#endif
