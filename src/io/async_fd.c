/*
 * blz_async_fd: readiness of a descriptor that other code reads and writes
 * (Tokio's AsyncFd, libuv's uv_poll).
 *
 * Invariants:
 * - A blz_async_fd is a registry source (its first member) over a duplicate
 *   of the caller's descriptor, plus that descriptor's number. The source
 *   owns the duplicate and closes it on its last release, so the caller may
 *   close its own descriptor at any time without the registration ever
 *   naming a number that was reused.
 * - The registry is edge-triggered, and the caller's reads and writes do not
 *   go through it: nothing would clear a direction that the caller drained.
 *   So a readiness wait is an attempt like any operation's, and its attempt
 *   is a poll(2) that does not wait: ready now, or -EAGAIN, which clears the
 *   direction against the tick it was tried with and waits for the next
 *   event (blz__io_source_wait). That makes the wait level-triggered, as
 *   uv_poll's is, at one poll(2) per wait.
 * - try_io is the socket's (blz__io_source_try_io): the caller's call on the
 *   duplicate, readiness cleared when it says -EAGAIN.
 * - blz_async_fd_io's wait is a socket operation's: its attempt is the
 *   caller's call itself, whose -EAGAIN is authoritative (the descriptor has
 *   nothing for it now), so no poll(2) is needed and the edge-triggered
 *   registry is right as it is.
 * - A ready future is a pipe's in shape: blz__io_future_wait takes the
 *   source reference at its first poll and spends coop budget on every
 *   poll, blz__io_future_end lets go.
 */
#include "core/future.h"
#include "io/driver.h"
#include "io/registry.h"
#include "os/unix/sys.h"
#include "rt/current.h"

struct blz_async_fd {
    blz__io_source src; /* first: the registry allocates the whole object */
    int user_fd;        /* the caller's descriptor (src.fd is the duplicate) */
};

int
blz_async_fd_new(int fd, blz_async_fd **out)
{
    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    if (fd < 0) {
        return -EBADF;
    }
    blz_runtime *rt = blz__rt_current();
    if (!rt) {
        return -ESRCH;
    }
    int dup = blz__sys_dup_pollable(fd);
    if (dup < 0) {
        return dup;
    }
    /* Assume both directions ready: the first wait's poll(2) tells. */
    blz__io_source *src;
    int rc = blz__io_source_open(blz__rt_io(rt), dup, sizeof(blz_async_fd),
                                 BLZ__RD_READ | BLZ__RD_WRITE, &src);
    if (rc < 0) {
        (void) blz__sys_close(dup);
        return rc;
    }
    blz_async_fd *a = (blz_async_fd *) (void *) src;
    a->user_fd = fd;
    *out = a;
    return 0;
}

void
blz_async_fd_free(blz_async_fd *a)
{
    if (a) {
        blz__io_source_close(&a->src);
    }
}

int
blz_async_fd_fd(const blz_async_fd *a)
{
    return a ? a->user_fd : -EINVAL;
}

static int
interest_dir(int interest)
{
    switch (interest) {
    case BLZ_READABLE:
        return BLZ__DIR_READ;
    case BLZ_WRITABLE:
        return BLZ__DIR_WRITE;
    default:
        return -EINVAL;
    }
}

long
blz_async_fd_try_io(blz_async_fd *a, blz_interest interest, blz_io_fn fn, void *arg)
{
    int dir = interest_dir((int) interest);
    if (!a || !fn || dir < 0) {
        return -EINVAL;
    }
    return blz__io_source_try_io(&a->src, dir, fn, arg);
}

/* ---- the readiness wait ---------------------------------------------------------- */

/* One attempt (a blz__io_attempt_fn): is the descriptor ready right now? */
static long
ready_attempt(void *arg)
{
    blz_io_future *f = arg;
    blz_async_fd *a = f->obj_;
    return blz__sys_ready_now(a->src.fd, (blz_interest) f->op_);
}

/* One poll of a wait whose attempt is `attempt(f)`; *r gets its result when done. */
static blz_poll
wait_poll(blz_io_future *f, blz_context *cx, blz__io_attempt_fn attempt, long *r)
{
    blz_async_fd *a = f->obj_;
    if (!a) {
        return BLZ_READY; /* finished earlier: result kept */
    }
    if (!blz__io_future_wait(&a->src, f, interest_dir(f->op_), cx, attempt, 0, r)) {
        return BLZ_PENDING;
    }
    blz__io_future_end(&a->src, f, *r);
    return BLZ_READY;
}

static blz_poll
ready_poll(blz_future *base, blz_context *cx)
{
    long r;
    return wait_poll((blz_io_future *) base, cx, ready_attempt, &r);
}

static const blz_future_vtable ready_vt = {ready_poll, blz__io_future_drop_headed};

/* Fills `f` for a wait of `vt` on `a`; false (f ready with -EINVAL) on bad arguments. */
static bool
wait_init(blz_async_fd *a, blz_interest interest, bool ok, const blz_future_vtable *vt,
          blz_io_future *f)
{
    if (!ok || !a || interest_dir((int) interest) < 0) {
        blz__io_future_ready(f, -EINVAL);
        return false;
    }
    blz__io_future_start(f, vt, a, (int) interest, NULL, 0, NULL);
    return true;
}

void
blz_async_fd_ready_fut(blz_async_fd *a, blz_interest interest, blz_io_future *f)
{
    if (f) {
        (void) wait_init(a, interest, true, &ready_vt, f);
    }
}

int
blz_async_fd_ready(blz_async_fd *a, blz_interest interest)
{
    blz_io_future f;
    blz_async_fd_ready_fut(a, interest, &f);
    return blz_await(&f.base);
}

int
blz_async_fd_try_ready(blz_async_fd *a, blz_interest interest)
{
    int dir = interest_dir((int) interest);
    if (!a || dir < 0) {
        return -EINVAL;
    }
    blz_io_future f = {.obj_ = a, .op_ = (int) interest};
    blz__io_source_ref(&a->src);
    long r = blz__io_source_try(&a->src, dir, ready_attempt, &f, 0);
    blz__io_source_unref(&a->src);
    return (int) r;
}

/* ---- the caller's call, waited for ---------------------------------------------------- */

/* One attempt: the caller's call on the duplicate. Its -EAGAIN clears readiness. */
static long
io_attempt(void *arg)
{
    blz_async_io_future *f = arg; /* io_ is its first member */
    blz_async_fd *a = f->io_.obj_;
    return blz__async_io_call(f, a->src.fd);
}

static blz_poll
io_poll(blz_future *base, blz_context *cx)
{
    blz_async_io_future *f = (blz_async_io_future *) (void *) base;
    if (!f->io_.obj_) {
        return BLZ_READY; /* finished earlier: result kept */
    }
    long r;
    blz_poll p = wait_poll(&f->io_, cx, io_attempt, &r);
    if (p == BLZ_READY) {
        f->value_ = r;
    }
    return p;
}

static const blz_future_vtable io_vt = {io_poll, blz__io_future_drop_headed};

void
blz_async_fd_io_fut(blz_async_fd *a, blz_interest interest, blz_io_fn fn, void *arg,
                    blz_async_io_future *f)
{
    if (!f) {
        return;
    }
    blz__async_io_prepare(f, fn, arg);
    (void) wait_init(a, interest, fn != NULL, &io_vt, &f->io_);
}

long
blz_async_fd_io(blz_async_fd *a, blz_interest interest, blz_io_fn fn, void *arg)
{
    blz_async_io_future f;
    blz_async_fd_io_fut(a, interest, fn, arg, &f);
    return blz__async_io_await(&f);
}
