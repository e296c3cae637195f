/*
 * Helpers for the tests that send process-directed signals (tests/signal_*.c,
 * tests/shutdown_*.c).
 *
 * ThreadSanitizer runs the handler of an asynchronous signal only when the
 * receiving thread next enters its runtime, and with fibers it queues the
 * signal on whichever fiber was running. A signal that lands on a worker
 * while a listener fiber runs is therefore handled only when that fiber runs
 * again, and a fiber suspended waiting for that very signal never does: the
 * test would hang under TSan and nowhere else. So under TSan these helpers
 * route the test's signals to a plain thread sleeping in poll() (a call TSan
 * treats as blocking, where it runs handlers at once): sig_route_begin()
 * blocks them on the calling thread, before any runtime exists so that every
 * worker inherits the block, and starts that thread; sig_route_end() stops it
 * and restores the mask. In other builds both do nothing, and signals land
 * wherever the kernel puts them, runtime workers included.
 */
#ifndef BLZ_TEST_SIGNAL_UTIL_H
#define BLZ_TEST_SIGNAL_UTIL_H

#include "harness.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
# define SIG_TSAN 1
#elif defined(__has_feature)
# if __has_feature(thread_sanitizer)
#  define SIG_TSAN 1
# endif
#endif
#ifndef SIG_TSAN
# define SIG_TSAN 0
#endif

typedef struct sig_route {
    sigset_t set; /* the signals routed */
    sigset_t old; /* the caller's mask before */
    int stop[2];  /* written to stop the catcher */
    pthread_t th; /* the catcher */
    bool active;  /* a catcher runs (TSan builds) */
} sig_route;

static void *
sig_route_catcher_(void *arg)
{
    sig_route *r = arg;
    CHECK_EQ(pthread_sigmask(SIG_UNBLOCK, &r->set, NULL), 0);
    struct pollfd pfd = {r->stop[0], POLLIN, 0};
    while (poll(&pfd, 1, -1) != 1) {
        /* EINTR: a routed signal was just handled here. */
    }
    return NULL;
}

/* Routes the signals of the 0-terminated list `signos` (see the header comment). */
static inline void
sig_route_begin(sig_route *r, const int *signos)
{
    r->active = false;
    if (!SIG_TSAN) {
        return;
    }
    sigemptyset(&r->set);
    for (; *signos; signos++) {
        sigaddset(&r->set, *signos);
    }
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, &r->set, &r->old), 0);
    CHECK_OK(pipe2(r->stop, O_CLOEXEC));
    CHECK_EQ(pthread_create(&r->th, NULL, sig_route_catcher_, r), 0);
    r->active = true;
}

static inline void
sig_route_end(sig_route *r)
{
    if (!r->active) {
        return;
    }
    char b = 1;
    CHECK_EQ(write(r->stop[1], &b, 1), 1);
    CHECK_EQ(pthread_join(r->th, NULL), 0);
    close(r->stop[0]);
    close(r->stop[1]);
    CHECK_EQ(pthread_sigmask(SIG_SETMASK, &r->old, NULL), 0);
    r->active = false;
}

#endif
