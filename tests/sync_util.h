/*
 * Helpers shared by the tests/sync_*.c files: a runtime constructor, thread
 * helpers and a scale factor that shrinks the concurrency tests under
 * sanitizers; the counting waker for polling futures by hand comes from
 * poll_util.h.
 */
#ifndef BLZ_TEST_SYNC_UTIL_H
#define BLZ_TEST_SYNC_UTIL_H

#include "blitzio.h"
#include "blitzio/sync.h"
#include "harness.h"
#include "poll_util.h"

#include <pthread.h>
#include <stdatomic.h>

/* Iteration scale: sanitizers slow everything by 5-20x. */
#define SYNC_SANITIZED BLZ_TEST_SANITIZED
#if defined(SYNC_HEAVY)
/* tests/stress/sync_heavy.c: the plain sizes times SYNC_HEAVY. */
# define SYNC_SCALE(plain, sanitized) ((plain) *SYNC_HEAVY)
#else
# define SYNC_SCALE(plain, sanitized) (SYNC_SANITIZED ? (sanitized) : (plain))
#endif

static inline blz_runtime *
sync_new_rt(unsigned workers)
{
    return test_new_rt(workers);
}

/* Starts `n` OS threads running fn(arg) and joins them. */
static inline void
run_threads(int n, void *(*fn)(void *), void *arg)
{
    pthread_t th[64];
    CHECK_LE(n, 64);
    for (int i = 0; i < n; i++) {
        CHECK_EQ(pthread_create(&th[i], NULL, fn, arg), 0);
    }
    for (int i = 0; i < n; i++) {
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    }
}

/*
 * A waker that runs a hook once, when it is first woken (on_wake) or cloned
 * (on_clone), then counts like a test_waker. A primitive wakes after dropping
 * its queue lock and clones a re-polled waiter's new waker while holding it,
 * so the hooks run code at an exact point in the middle of an operation.
 */
typedef struct hook_waker {
    test_waker tw; /* counts wakes and references */
    void (*on_wake)(void *arg);
    void (*on_clone)(void *arg);
    void *arg;
} hook_waker;

static inline void
hw_run_(void (**hook)(void *), void *arg)
{
    void (*h)(void *) = *hook;
    *hook = NULL;
    if (h) {
        h(arg);
    }
}

static void
hw_wake(void *d)
{
    hook_waker *h = d;
    hw_run_(&h->on_wake, h->arg);
    tw_wake(&h->tw);
}

static void
hw_wake_by_ref(void *d)
{
    hook_waker *h = d;
    hw_run_(&h->on_wake, h->arg);
    tw_wake_by_ref(&h->tw);
}

static void *
hw_clone(void *d)
{
    hook_waker *h = d;
    hw_run_(&h->on_clone, h->arg);
    tw_clone(&h->tw);
    return d;
}

static void
hw_drop(void *d)
{
    tw_drop(&((hook_waker *) d)->tw);
}

static const blz_waker_vtable hook_waker_vt = {hw_wake, hw_wake_by_ref, hw_clone, hw_drop};

static inline void
hook_waker_init(hook_waker *h, void (*on_wake)(void *), void (*on_clone)(void *), void *arg)
{
    test_waker_init(&h->tw);
    h->tw.waker.vtable = &hook_waker_vt;
    h->tw.waker.data = h;
    h->on_wake = on_wake;
    h->on_clone = on_clone;
    h->arg = arg;
}

/*
 * Runs `fn` with the sync primitives in fence mode: seq_cst operations on both
 * sides of the unlock-versus-queue race, as where the kernel lacks membarrier,
 * instead of the waiter's membarrier and the unlocker's plain store. Only
 * between tests: no sync operation may be in flight when the mode changes.
 */
static inline void
with_fence_mode(void (*fn)(void))
{
    int saved = atomic_load(&blz__sync_fence_mode);
    atomic_store(&blz__sync_fence_mode, 1);
    fn();
    atomic_store(&blz__sync_fence_mode, saved);
}

#endif
