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

enum { PARK_EMPTY = 0, PARK_PARKED = 1, PARK_NOTIFIED = 2 };

typedef struct thread_parker {
    _Atomic uint32_t state; /* EMPTY / PARKED / NOTIFIED */
    _Atomic uint32_t refs;  /* the thread's own reference + one per waker clone */
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
        blz__free(p);
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
    /* Release pairs with the owner's acquire exchange: what the waker wrote is visible. */
    if (blz__exchange(&p->state, PARK_NOTIFIED, ACQ_REL) == PARK_PARKED) {
        blz__futex_wake(&p->state, 1);
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

static void
parker_park(thread_parker *p, blz_instant deadline)
{
    uint32_t expect = PARK_EMPTY;
    if (blz__cas(&p->state, &expect, PARK_PARKED, ACQ_REL, ACQUIRE)) {
        for (;;) {
            blz__futex_wait(&p->state, PARK_PARKED, deadline);
            if (blz__load(&p->state, ACQUIRE) != PARK_PARKED) {
                break;
            }
            if (deadline != UINT64_MAX && blz_now() >= deadline) {
                break;
            }
        }
    }
    /* Consume a notification (or give up the PARKED state after a timeout). */
    (void) blz__exchange(&p->state, PARK_EMPTY, ACQUIRE);
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
    for (;;) {
        tl_park_deadline = UINT64_MAX;
        if (blz_future_poll(f, &cx) == BLZ_READY) {
            return f->result;
        }
        parker_park(p, tl_park_deadline);
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
