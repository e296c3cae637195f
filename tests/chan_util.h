/*
 * Helpers shared by the tests/chan_*.c files: a counting waker for polling
 * futures by hand, runtime and thread helpers, and a scale factor that
 * shrinks the concurrency tests under sanitizers.
 */
#ifndef BLZ_TEST_CHAN_UTIL_H
#define BLZ_TEST_CHAN_UTIL_H

#include "blitzio.h"
#include "blitzio/chan.h"
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
# define CHAN_SANITIZED 1
#elif defined(__has_feature)
# if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#  define CHAN_SANITIZED 1
# endif
#endif
#ifndef CHAN_SANITIZED
# define CHAN_SANITIZED 0
#endif
#define CHAN_SCALE(plain, sanitized) (CHAN_SANITIZED ? (sanitized) : (plain))

/* A waker that counts wakes and live references (clones not yet woken or dropped). */
typedef struct test_waker {
    atomic_int wakes;
    atomic_int refs;
    blz_waker waker;
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

static inline blz_poll
poll_with(blz_future *f, test_waker *t)
{
    blz_context cx = {&t->waker};
    return blz_future_poll(f, &cx);
}

#define CHECK_NO_WAKER_REFS(t) CHECK_EQ(atomic_load(&(t)->refs), 0)

static inline blz_runtime *
chan_new_rt(unsigned workers)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = workers;
    blz_runtime *rt = NULL;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    return rt;
}

/* Starts `n` OS threads running fn(arg_i) where arg_i = args + i * stride, and joins them. */
static inline void
run_threads_n(int n, void *(*fn)(void *), void *args, size_t stride)
{
    pthread_t th[64];
    CHECK_LE(n, 64);
    for (int i = 0; i < n; i++) {
        CHECK_EQ(pthread_create(&th[i], NULL, fn, (char *) args + (size_t) i * stride), 0);
    }
    for (int i = 0; i < n; i++) {
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    }
}

/* A small deterministic PRNG for tests. */
static inline uint32_t
test_rand(uint32_t *s)
{
    uint32_t x = *s ? *s : 0x12345678u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

#endif
