/*
 * Helpers shared by the tests that poll futures by hand (tests/sync_*.c,
 * tests/chan_*.c through their own util headers): a waker that counts wakes
 * and references, one that also runs a hook at its first wake or clone,
 * runtime constructors, and BLZ_TEST_SANITIZED, which the
 * concurrency tests use to shrink their sizes under sanitizers.
 */
#ifndef BLZ_TEST_POLL_UTIL_H
#define BLZ_TEST_POLL_UTIL_H

#include "blitzio.h"
#include "harness.h"

#include <stdatomic.h>

/* Sanitizers slow everything by 5-20x. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
# define BLZ_TEST_SANITIZED 1
#elif defined(__has_feature)
# if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#  define BLZ_TEST_SANITIZED 1
# endif
#endif
#ifndef BLZ_TEST_SANITIZED
# define BLZ_TEST_SANITIZED 0
#endif

/*
 * A waker that counts wakes and references, so a test can see both that a
 * waiter was woken and that the primitive dropped every clone it made.
 */
typedef struct test_waker {
    atomic_int wakes; /* wake + wake_by_ref calls */
    atomic_int refs;  /* clones alive (clone +1, wake/drop -1) */
    blz_waker waker;  /* points at this struct */
} test_waker;

static void
tw_wake(void *d)
{
    test_waker *t = d;
    atomic_fetch_add(&t->wakes, 1);
    atomic_fetch_sub(&t->refs, 1);
}

static void
tw_wake_by_ref(void *d)
{
    atomic_fetch_add(&((test_waker *) d)->wakes, 1);
}

static void *
tw_clone(void *d)
{
    atomic_fetch_add(&((test_waker *) d)->refs, 1);
    return d;
}

static void
tw_drop(void *d)
{
    atomic_fetch_sub(&((test_waker *) d)->refs, 1);
}

static const blz_waker_vtable test_waker_vt = {tw_wake, tw_wake_by_ref, tw_clone, tw_drop};

static inline void
test_waker_init(test_waker *t)
{
    atomic_init(&t->wakes, 0);
    atomic_init(&t->refs, 0);
    t->waker.vtable = &test_waker_vt;
    t->waker.data = t;
}

static inline int
test_wakes(test_waker *t)
{
    return atomic_load(&t->wakes);
}

/* Polls `f` once with `t`'s waker. */
static inline blz_poll
poll_with(blz_future *f, test_waker *t)
{
    blz_context cx = {&t->waker};
    return blz_future_poll(f, &cx);
}

/* Every clone a primitive made of `t` has been woken or dropped. */
#define CHECK_NO_WAKER_REFS(t) CHECK_EQ(atomic_load(&(t)->refs), 0)

/* A runtime of `flavor` from the default config; `workers` 0 keeps its count. */
static inline blz_runtime *
test_rt_(blz_flavor flavor, unsigned workers)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.flavor = flavor;
    if (workers) {
        cfg.workers = workers;
    }
    blz_runtime *rt = NULL;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    return rt;
}

/* A multi-thread runtime with `workers` workers. */
static inline blz_runtime *
test_new_rt(unsigned workers)
{
    return test_rt_(BLZ_MULTI_THREAD, workers);
}

/* A current-thread runtime: everything runs on the calling thread, in order. */
static inline blz_runtime *
test_current_thread_rt(void)
{
    return test_rt_(BLZ_CURRENT_THREAD, 0);
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

#endif
