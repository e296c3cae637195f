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

#endif
