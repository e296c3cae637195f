/*
 * The I/O driver. This first version carries only the wake-up path (an
 * eventfd in an epoll set) so that a parked worker sleeps in the kernel and is
 * woken at once; readiness and completion I/O join it with the networking work.
 *
 * Invariants: `epfd` and `wakefd` are owned by the driver and closed in free.
 * `park` runs on one thread at a time; `wake` may run on any thread at any time.
 */
#include "io/driver.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/alloc.h"

struct blz__io_driver {
    int epfd;                 /* the epoll set the parked worker waits in */
    int wakefd;               /* eventfd written by wake(), read by park() */
    _Atomic int wake_pending; /* 1 while a wake is written but not yet consumed: coalesces writes */
    _Atomic uint64_t events;  /* events dispatched, for metrics */
};

int
blz__io_driver_new(const char *backend, blz__io_driver **out)
{
    (void) backend;
    blz__io_driver *d = blz__calloc(1, sizeof *d);
    if (!d) {
        return -ENOMEM;
    }
    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (d->epfd < 0) {
        int err = -errno;
        blz__free(d);
        return err;
    }
    d->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (d->wakefd < 0) {
        int err = -errno;
        close(d->epfd);
        blz__free(d);
        return err;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->wakefd, &ev) < 0) {
        int err = -errno;
        close(d->wakefd);
        close(d->epfd);
        blz__free(d);
        return err;
    }
    *out = d;
    return 0;
}

void
blz__io_driver_free(blz__io_driver *d)
{
    if (!d) {
        return;
    }
    close(d->wakefd);
    close(d->epfd);
    blz__free(d);
}

int
blz__io_driver_park(blz__io_driver *d, int64_t timeout_ns)
{
    int timeout_ms;
    if (timeout_ns < 0) {
        timeout_ms = -1;
    } else {
        /* Round up so a timer is never reported early; the wheel re-checks exact ns. */
        int64_t ms = (timeout_ns + 999999) / 1000000;
        timeout_ms = ms > 0x7fffffff ? 0x7fffffff : (int) ms;
    }
    struct epoll_event evs[64];
    int n = epoll_wait(d->epfd, evs, 64, timeout_ms);
    if (n < 0) {
        return errno == EINTR ? 0 : -errno;
    }
    int handled = 0;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == NULL) {
            uint64_t v;
            ssize_t r = read(d->wakefd, &v, sizeof v);
            (void) r;
            /* Pairs with the exchange in wake(): later wakes write again. */
            atomic_store_explicit(&d->wake_pending, 0, memory_order_release);
        } else {
            handled++;
        }
    }
    atomic_fetch_add_explicit(&d->events, (uint64_t) handled, memory_order_relaxed);
    return handled;
}

void
blz__io_driver_wake(blz__io_driver *d)
{
    /* Only the first wake since the last park writes the eventfd. */
    if (atomic_exchange_explicit(&d->wake_pending, 1, memory_order_acq_rel) == 0) {
        uint64_t one = 1;
        ssize_t r = write(d->wakefd, &one, sizeof one);
        (void) r;
    }
}

const char *
blz__io_driver_name(const blz__io_driver *d)
{
    (void) d;
    return "epoll";
}

uint64_t
blz__io_driver_events(const blz__io_driver *d)
{
    return atomic_load_explicit(&d->events, memory_order_relaxed);
}
