/*
 * Helpers shared by the tests/chan_*.c files: runtime and thread helpers and
 * a scale factor that shrinks the concurrency tests under sanitizers; the
 * counting waker for polling futures by hand comes from poll_util.h.
 */
#ifndef BLZ_TEST_CHAN_UTIL_H
#define BLZ_TEST_CHAN_UTIL_H

#include "blitzio.h"
#include "blitzio/chan.h"
#include "harness.h"
#include "poll_util.h"

#include <pthread.h>
#include <stdatomic.h>

#define CHAN_SANITIZED               BLZ_TEST_SANITIZED
#define CHAN_SCALE(plain, sanitized) (CHAN_SANITIZED ? (sanitized) : (plain))

static inline blz_runtime *
chan_new_rt(unsigned workers)
{
    return test_new_rt(workers);
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

#endif
