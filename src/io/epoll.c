/*
 * The epoll backend: readiness only, edge-triggered, with an eventfd for
 * wake-ups (Redis ae_epoll.c and nginx's epoll module are the shape).
 *
 * Invariants:
 * - Every source is registered once, for read and write together, with
 *   EPOLLET; its epoll data is the source pointer. The wake eventfd is
 *   registered level-triggered with data NULL.
 * - epoll_ctl(DEL) is synchronous: once disarm returns, no later epoll_wait
 *   names the source, so be_hold is never set (the registry frees a retired
 *   source at the next park, after the batch that may still name it).
 * - `wake_pending` coalesces wakes: only the 0 -> 1 transition writes the
 *   eventfd; poll drains the eventfd and *then* swaps the flag back to 0, so
 *   the flag is never left set on an empty eventfd (see drain_wake).
 * - poll runs on one thread at a time; arm/disarm/wake on any thread.
 */
#include "core/alloc.h"
#include "core/atomic.h"
#include "io/backend.h"
#include "io/registry.h"

#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct blz__backend {
    int epfd;                      /* the epoll set; owned */
    int wakefd;                    /* eventfd written by wake(); owned */
    _Atomic uint32_t wake_pending; /* 1 while a wake is written and not yet drained */
    /* Bumped (release) before epoll_ctl(ADD), read (acquire) after epoll_wait:
     * a source initialised before it was armed is fully visible to the
     * dispatcher (the syscalls order real memory; this tells the memory model
     * and ThreadSanitizer, which cannot see through the kernel). */
    _Atomic uint64_t published;
    struct epoll_event evs[BLZ__POLL_MAX_EVENTS]; /* poll's buffer (poll is single-threaded) */
};

static int
ep_init(blz__backend **out, unsigned recv_buffers, bool single)
{
    (void) recv_buffers; /* readiness only: reads are recv(2) */
    (void) single;       /* any thread may enter epoll */
    blz__backend *b = blz__calloc(1, sizeof *b);
    if (!b) {
        return -ENOMEM;
    }
    atomic_init(&b->wake_pending, 0u);
    atomic_init(&b->published, 0u);
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (b->epfd < 0) {
        int err = -errno;
        blz__free(b);
        return err;
    }
    b->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (b->wakefd < 0) {
        int err = -errno;
        close(b->epfd);
        blz__free(b);
        return err;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->wakefd, &ev) < 0) {
        int err = -errno;
        close(b->wakefd);
        close(b->epfd);
        blz__free(b);
        return err;
    }
    *out = b;
    return 0;
}

static int
ep_arm(blz__backend *b, blz__io_source *src)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = src};
    blz__fetch_add(&b->published, 1u, RELEASE); /* pairs with the acquire in ep_poll */
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, src->fd, &ev) < 0) {
        return -errno;
    }
    return 0;
}

static void
ep_disarm(blz__backend *b, blz__io_source *src)
{
    struct epoll_event ev = {0}; /* non-NULL for kernels before 2.6.9 */
    (void) epoll_ctl(b->epfd, EPOLL_CTL_DEL, src->fd, &ev);
}

static int
ep_submit(blz__backend *b, blz__io_op *op)
{
    (void) b;
    (void) op;
    return -EOPNOTSUPP;
}

static int
ep_cancel(blz__backend *b, blz__io_op *op)
{
    (void) b;
    (void) op;
    return -EOPNOTSUPP;
}

static int
ep_supports(const blz__backend *b, int kind)
{
    (void) b;
    (void) kind;
    return 0; /* readiness only: files go to the blocking pool on this backend */
}

static void
drain_wake(blz__backend *b)
{
    /* Read first, then clear the flag. The other order loses wakes for good:
     * a wake landing between the clear and the read would have its count
     * consumed by this read, leaving the flag set on an empty eventfd, and
     * every later wake would then skip its write. In this order the flag is
     * set only while the eventfd is non-empty or this parker is returning
     * anyway; a wake that skipped its write in between is seen by the
     * exchange, which pairs (acq_rel) with the waker's exchange so the
     * parker's caller sees what the waker did. */
    uint64_t v;
    ssize_t r = read(b->wakefd, &v, sizeof v);
    (void) r; /* EAGAIN: nothing to consume; harmless */
    (void) blz__exchange(&b->wake_pending, 0u, ACQ_REL);
}

static int
ep_poll(blz__backend *b, int64_t timeout_ns)
{
    int timeout_ms;
    if (timeout_ns < 0) {
        timeout_ms = -1;
    } else {
        /* Round up so a timer is never reported early; the wheel re-checks exact ns. */
        int64_t ms = timeout_ns / 1000000 + (timeout_ns % 1000000 != 0);
        timeout_ms = ms > 0x7fffffff ? 0x7fffffff : (int) ms;
    }
    int n = epoll_wait(b->epfd, b->evs, BLZ__POLL_MAX_EVENTS, timeout_ms);
    if (n < 0) {
        return errno == EINTR ? 0 : -errno;
    }
    int handled = 0;
    (void) blz__load(&b->published, ACQUIRE); /* pairs with the release in ep_arm */
    for (int i = 0; i < n; i++) {
        blz__io_source *src = b->evs[i].data.ptr;
        if (src == NULL) {
            drain_wake(b);
            continue;
        }
        blz__io_source_ready(src, blz__rd_from_poll(b->evs[i].events));
        handled++;
    }
    return handled;
}

static void
ep_wake(blz__backend *b)
{
    /* Only the first wake since the last drain writes the eventfd. */
    if (blz__exchange(&b->wake_pending, 1u, ACQ_REL) == 0) {
        uint64_t one = 1;
        ssize_t r = write(b->wakefd, &one, sizeof one);
        (void) r; /* EAGAIN means the counter is full: a wake is pending anyway */
    }
}

static void
ep_fini(blz__backend *b)
{
    if (!b) {
        return;
    }
    close(b->wakefd);
    close(b->epfd);
    blz__free(b);
}

const blz__backend_ops blz__epoll_backend = {
    .version = BLZ__BACKEND_VERSION,
    .name = "epoll",
    .init = ep_init,
    .arm = ep_arm,
    .disarm = ep_disarm,
    .submit = ep_submit,
    .cancel = ep_cancel,
    .poll = ep_poll,
    .wake = ep_wake,
    .supports = ep_supports,
    .fini = ep_fini,
};
