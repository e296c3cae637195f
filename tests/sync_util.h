/*
 * Helpers shared by the tests/sync_*.c files: a counting waker for polling
 * futures by hand, a runtime constructor, and a scale factor that shrinks the
 * concurrency tests under sanitizers.
 */
#ifndef BLZ_TEST_SYNC_UTIL_H
#define BLZ_TEST_SYNC_UTIL_H

#include "blitzio.h"
#include "blitzio/sync.h"
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>

/* Iteration scale: sanitizers slow everything by 5-20x. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
# define SYNC_SANITIZED 1
#elif defined(__has_feature)
# if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#  define SYNC_SANITIZED 1
# endif
#endif
#ifndef SYNC_SANITIZED
# define SYNC_SANITIZED 0
#endif
#if defined(SYNC_HEAVY)
/* tests/stress/sync_heavy.c: the plain sizes times SYNC_HEAVY. */
# define SYNC_SCALE(plain, sanitized) ((plain) *SYNC_HEAVY)
#else
# define SYNC_SCALE(plain, sanitized) (SYNC_SANITIZED ? (sanitized) : (plain))
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

static inline blz_runtime *
sync_new_rt(unsigned workers)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = workers;
    blz_runtime *rt = NULL;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    return rt;
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

#endif
