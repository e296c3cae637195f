/*
 * blz_await: the bridge between the future tier and the await tier.
 *
 * On a fiber it hands over to the fiber task (rt/fiber_task.c). On a thread
 * outside any runtime it parks the thread on a futex between polls. Each such
 * thread owns one refcounted parker; wakers given to futures hold references,
 * so a waker kept by a primitive stays safe even after the thread exits.
 *
 * Parker states: EMPTY (0) -> PARKED (1) by the owner before sleeping;
 * any -> NOTIFIED (2) by a waker; the owner swaps NOTIFIED back to EMPTY.
 *
 * A blocking-pool thread of a runtime whose paused clock jumps by itself parks
 * in PARKED_IDLE (3) instead, and counts itself in the pool's `awaiting`: its
 * job waits for the runtime as a task would (for a timer, or a task that waits
 * for one), so the clock may jump (worker.c, all_idle); counted busy, the job
 * held the clock still and the clock held the job. The waker that ends such a
 * park takes it off the count BEFORE its wake returns, as a woken task is
 * queued before: a fire's wakes are then all counted before the fire's
 * waking_done (blz__timers_quiet), and the clock cannot jump past the job it
 * woke. It does so in WAKING (4), which the owner waits out (it may not leave,
 * and its job end, while a waker still uses the runtime).
 */
#include "blitzio/future.h"
#include "core/alloc.h"
#include "core/atomic.h"
#include "fiber/fiber.h"
#include "rt/current.h"
#include "rt/futex.h"
#include "rt/runtime.h"
#include "rt/task.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

enum { PARK_EMPTY = 0, PARK_PARKED = 1, PARK_NOTIFIED = 2, PARK_PARKED_IDLE = 3, PARK_WAKING = 4 };

typedef struct thread_parker {
    _Atomic uint32_t state; /* EMPTY / PARKED / NOTIFIED / PARKED_IDLE / WAKING */
    _Atomic uint32_t refs;  /* the thread's own reference + one per waker clone */
    /* PARKED_IDLE: the runtime whose pool counts the owner in `awaiting`. Written
     * by the owner before the CAS that publishes PARKED_IDLE. */
    _Atomic(blz_runtime *) idle_rt;
    /* The free of the allocator that made it: a parker lives as long as its
     * thread, across runtimes and any blz_set_allocator between them. */
    blz_free_fn free_fn;
} thread_parker;

static _Thread_local thread_parker *tl_parker;
static _Thread_local blz_instant tl_park_deadline = UINT64_MAX;
static pthread_key_t parker_key;
static pthread_once_t parker_key_once = PTHREAD_ONCE_INIT;

static void
parker_release(thread_parker *p)
{
    /* Pairs with itself: the last release sees every earlier use. */
    if (blz__fetch_sub(&p->refs, 1, ACQ_REL) == 1) {
        p->free_fn(p);
    }
}

static void
parker_key_destroy(void *p)
{
    parker_release(p);
}

static void
parker_key_create(void)
{
    (void) pthread_key_create(&parker_key, parker_key_destroy);
}

static thread_parker *
parker_get(void)
{
    if (tl_parker) {
        return tl_parker;
    }
    (void) pthread_once(&parker_key_once, parker_key_create);
    thread_parker *p = blz__malloc(sizeof *p);
    if (!p) {
        return NULL;
    }
    atomic_init(&p->state, PARK_EMPTY);
    atomic_init(&p->refs, 1);
    atomic_init(&p->idle_rt, NULL);
    p->free_fn = blz__free_fn();
    if (pthread_setspecific(parker_key, p) != 0) {
        blz__free(p);
        return NULL;
    }
    tl_parker = p;
    return p;
}

void blz__thread_cleanup(void);

/* Releases this thread's parker and task-cell cache before it exits. */
void
blz__thread_cleanup(void)
{
    if (tl_parker) {
        (void) pthread_setspecific(parker_key, NULL);
        parker_release(tl_parker);
        tl_parker = NULL;
    }
    blz__task_cache_flush();
}

static void
parker_unpark(thread_parker *p)
{
    uint32_t s = blz__load(&p->state, ACQUIRE);
    for (;;) {
        if (s == PARK_WAKING) {
            /* Another waker is taking the owner off the count: it notifies. Ours
             * must still land after its NOTIFIED, not before (which it overwrites
             * with nothing lost) nor be dropped: wait the few instructions out. */
            blz__cpu_relax();
            s = blz__load(&p->state, ACQUIRE);
            continue;
        }
        if (s == PARK_PARKED_IDLE) {
            if (blz__cas(&p->state, &s, PARK_WAKING, ACQ_REL, ACQUIRE)) {
                /* The owner waits for NOTIFIED: its job, and the runtime, stay. */
                blz_runtime *rt = blz__load(&p->idle_rt, RELAXED);
                blz__fetch_sub(&rt->blocking.awaiting, 1, SEQ_CST);
                /* Release pairs with the owner's acquire load: what the waker
                 * wrote is visible. */
                blz__store(&p->state, PARK_NOTIFIED, RELEASE);
                blz__futex_wake(&p->state, 1);
                return;
            }
            continue;
        }
        /* Release pairs with the owner's acquire exchange: what the waker wrote is visible. */
        if (blz__cas(&p->state, &s, PARK_NOTIFIED, ACQ_REL, ACQUIRE)) {
            if (s == PARK_PARKED) {
                blz__futex_wake(&p->state, 1);
            }
            return;
        }
    }
}

static void
pw_wake_by_ref(void *data)
{
    parker_unpark(data);
}

static void
pw_wake(void *data)
{
    parker_unpark(data);
    parker_release(data);
}

static void *
pw_clone(void *data)
{
    thread_parker *p = data;
    blz__fetch_add(&p->refs, 1, RELAXED);
    return p;
}

static void
pw_drop(void *data)
{
    parker_release(data);
}

static const blz_waker_vtable parker_waker_vtable = {pw_wake, pw_wake_by_ref, pw_clone, pw_drop};

/* Parks until notified or `deadline`; `idle_rt`: counted idle in its pool meanwhile
 * (see the top of the file), or NULL. */
static void
parker_park(thread_parker *p, blz_instant deadline, blz_runtime *idle_rt)
{
    uint32_t parked = idle_rt ? PARK_PARKED_IDLE : PARK_PARKED;
    blz__store(&p->idle_rt, idle_rt, RELAXED); /* published by the CAS below */
    uint32_t expect = PARK_EMPTY;
    if (blz__cas(&p->state, &expect, parked, ACQ_REL, ACQUIRE)) {
        if (idle_rt) {
            /* After the CAS: a waker may take us off first, and the count is low
             * (busy) for a moment, never high. Then the timers' watcher, asleep
             * while this job ran, must look whether everything is idle now (as
             * for a job's end: blocking_pool.c, spin_for_job). */
            blz__fetch_add(&idle_rt->blocking.awaiting, 1, SEQ_CST);
            blz__rt_wake_driver(idle_rt);
        }
        for (;;) {
            uint32_t s = blz__load(&p->state, ACQUIRE);
            if (s == PARK_NOTIFIED) {
                break;
            }
            if (s == PARK_WAKING) {
                blz__futex_wait(&p->state, PARK_WAKING, UINT64_MAX); /* NOTIFIED next */
                continue;
            }
            if (deadline != UINT64_MAX && blz_now() >= deadline) {
                /* Timed out: give up the park unless a waker got there first. */
                if (blz__cas(&p->state, &s, PARK_EMPTY, ACQ_REL, ACQUIRE)) {
                    if (idle_rt) {
                        blz__fetch_sub(&idle_rt->blocking.awaiting, 1, SEQ_CST);
                    }
                    break;
                }
                continue;
            }
            blz__futex_wait(&p->state, parked, deadline);
        }
    }
    /* Consume a notification. */
    (void) blz__exchange(&p->state, PARK_EMPTY, ACQUIRE);
}

/* The runtime whose pool should count this thread idle while it parks in an
 * await: a blocking-pool thread (a runtime thread that is no worker; thread_await
 * runs on no fiber and in no stackless poll) of a paused clock that jumps by
 * itself, the only one all_idle matters to. NULL otherwise. */
static blz_runtime *
park_idle_runtime(void)
{
    blz_runtime *rt = blz__rt_current();
    if (rt && blz__worker_current() == NULL && blz__timers_paused(&rt->timers) &&
        !rt->cfg.manual_clock) {
        return rt;
    }
    return NULL;
}

void
blz__thread_park_until(blz_instant deadline)
{
    if (deadline < tl_park_deadline) {
        tl_park_deadline = deadline;
    }
}

/* Out of line: inlined into blz_await, its frame (six saved registers) would sit
 * on every fiber's stack under each await, one more cache line per wait that a
 * wake must bring back; apart, the fiber path is a tail call. */
static BLZ_NOINLINE int
thread_await(blz_future *f)
{
    thread_parker *p = parker_get();
    if (!p) {
        /* No wait can start: the future goes as on an abort, so whatever it
         * owns (a join handle, a set's handles) is let go as its drop says. */
        blz_future_drop(f);
        return -ENOMEM;
    }
    blz_waker w = {&parker_waker_vtable, p};
    blz_context cx = {&w};
    blz_runtime *idle_rt = park_idle_runtime();
    for (;;) {
        tl_park_deadline = UINT64_MAX;
        if (blz_future_poll(f, &cx) == BLZ_READY) {
            return f->result;
        }
        parker_park(p, tl_park_deadline, idle_rt);
    }
}

int
blz_await(blz_future *f)
{
    if (!f) {
        return -EINVAL;
    }
    if (blz__fiber_current() != NULL) {
        return blz__fiber_task_await(f);
    }
    if (blz__in_stackless_poll()) {
        return -EDEADLK;
    }
    return thread_await(f);
}

bool
blz__await_refused(void)
{
    return blz__fiber_current() == NULL && blz__in_stackless_poll();
}

int
blz__await_shielded(blz_future *f)
{
    if (blz__await_refused()) {
        return -EDEADLK;
    }
    return blz__fiber_current() != NULL ? blz__fiber_task_await_shielded(f) : thread_await(f);
}
