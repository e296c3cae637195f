/*
 * blitzio/io.h — what every I/O object shares: the I/O future that sockets
 * and pipes fill, scatter/gather vectors and shutdown modes; and
 * blz_async_fd, the readiness of a descriptor that other code reads and
 * writes.
 *
 * Every operation that may wait comes in three tiers (DESIGN.md §3):
 *   blz_tcp_try_read(s, ...)      never waits: -EAGAIN when it would;
 *   blz_tcp_read_fut(s, ..., &f)  fills a caller-owned blz_io_future;
 *   blz_tcp_read(s, ...)          blz_await()s that future.
 * A try call on a socket, pipe or blz_async_fd acts on the readiness the
 * runtime's I/O driver last saw, as Tokio's try_read does: once it answered
 * -EAGAIN (or a read drained the descriptor), later try calls answer -EAGAIN
 * without a system call until the driver has seen the descriptor ready again.
 * That happens when a worker polls the driver, not at the instant data
 * arrives, so a try call made right after the peer's write may still say
 * -EAGAIN. To wait for the data, use the future or await tier (or *_ready).
 * An I/O future holds a reference on its object from its first poll until it
 * finishes or is dropped (blz_future_drop), so the object's descriptor is not
 * closed under it. Its waiter node lives inside it: it must not move or be
 * freed while pending, and a pending future must be dropped, not forgotten.
 */
#ifndef BLZ_IO_H
#define BLZ_IO_H

#include "blitzio/common.h"
#include "blitzio/future.h"

#if defined(_MSC_VER)
# include <BaseTsd.h>
typedef SSIZE_T ssize_t;
#else
# include <sys/types.h> /* ssize_t */
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** One buffer of a scatter/gather list; layout-compatible with POSIX struct iovec. */
typedef struct blz_iovec {
    void *base; /**< start of the buffer */
    size_t len; /**< its length in bytes */
} blz_iovec;

/** The largest number of vectors a readv/writev call accepts. */
#define BLZ_IOV_MAX 1024

/** Which direction blz_*_shutdown() ends. */
typedef enum blz_shutdown_how {
    BLZ_SHUT_RD = 0,   /**< no more reads: later reads return 0 */
    BLZ_SHUT_WR = 1,   /**< no more writes: the peer reads end-of-file */
    BLZ_SHUT_RDWR = 2, /**< both */
} blz_shutdown_how;

/** A direction to wait for with blz_tcp_ready and the like: one per wait. */
typedef enum blz_interest {
    BLZ_READABLE = 1, /**< a read would find data, end-of-file or an error */
    BLZ_WRITABLE = 2, /**< a write would find room in the send buffer, or an error */
} blz_interest;

/**
 * The caller's own system call on a descriptor blitzio watches, for the
 * try_io calls (Tokio's try_io: blitzio/net.h's sockets, blz_async_fd_try_io
 * below): a recvmsg with ancillary data, a sendmsg passing descriptors, a
 * socket option, a library's own read. Returns its result (>= 0)
 * or -errno; -EAGAIN says the socket was not ready after all.
 */
typedef long (*blz_io_fn)(int fd, void *arg);

/**
 * The future behind every socket operation that may wait (an accept's,
 * blz_accept_future in blitzio/net.h, embeds one). Caller-owned; fill
 * it with one of the *_fut functions, then poll it (or spawn/await it). Its
 * `base.result` is the operation's result: a byte count, 0, or -errno. All
 * fields but `base` are private.
 */
typedef struct blz_io_future {
    blz_future base;    /**< the future; `base.result` holds the outcome */
    blz_waiter waiter_; /**< linked into the object's reader or writer list while waiting */
    void *obj_;         /**< the object operated on */
    void *buf_;         /**< data buffer, or iovec array */
    size_t len_;        /**< buffer length, or iovec count */
    size_t done_;       /**< bytes already moved (write_all / read_exact) */
    void *aux_;         /**< operation-specific: address in or out, object out */
    int op_;            /**< which operation */
    int flags_;         /**< private state bits */
} blz_io_future;

/* ======================================================================== */
/* Watching a descriptor that other code uses                                */
/* ======================================================================== */

/**
 * The readiness of a descriptor that some other code reads and writes, as
 * Tokio's AsyncFd and libuv's uv_poll: a library's socket (libcurl, libpq,
 * c-ares, a database driver), an eventfd, a timerfd, an inotify or netlink
 * socket, a terminal. A task waits with blz_async_fd_ready, then lets the
 * library do its I/O. Opaque; made by blz_async_fd_new, freed by
 * blz_async_fd_free.
 */
typedef struct blz_async_fd blz_async_fd;

/**
 * Starts watching `fd` with the current runtime. The runtime registers a
 * close-on-exec duplicate of `fd`, never `fd` itself, so `fd` stays the
 * caller's: close it whenever its library says, before or after
 * blz_async_fd_free, and no registration outlives the number. The open file
 * behind both (a socket's connection, say) lasts until both are closed.
 * Reads and writes on `fd` should not block (O_NONBLOCK, which the duplicate
 * shares), since readiness can change before they run. 0, -EINVAL (`out`
 * NULL), -EBADF, -EPERM (a regular file, a directory or a device the kernel
 * cannot poll, such as /dev/null: always ready; use blitzio/fs.h), -EMFILE,
 * -ENOMEM, -ESRCH (no runtime). Inside a runtime.
 */
BLZ_API int blz_async_fd_new(int fd, blz_async_fd **out);

/**
 * Stops watching: waits in other tasks end with -ECANCELED, and the
 * duplicate is closed once they let go. The caller's descriptor is not
 * touched. Any thread; NULL is ignored.
 */
BLZ_API void blz_async_fd_free(blz_async_fd *a);

/** The descriptor given to blz_async_fd_new (not the duplicate), or -EINVAL. */
BLZ_API int blz_async_fd_fd(const blz_async_fd *a);

/**
 * Waits until the descriptor is ready for `interest` (BLZ_READABLE or
 * BLZ_WRITABLE, one per call): returns when a poll(2) at that moment says so
 * (an error or a hang-up counts as ready). Level-triggered, as uv_poll: a
 * descriptor still holding unread data is ready again at once, one that the
 * library drained is waited for until the kernel reports it again. 0,
 * -ECANCELED (freed), -EINVAL (NULL, another interest). Any thread; suspends
 * a fiber.
 */
BLZ_API int blz_async_fd_ready(blz_async_fd *a, blz_interest interest);
/** Try tier of blz_async_fd_ready: 0 when ready now, -EAGAIN when not. */
BLZ_API int blz_async_fd_try_ready(blz_async_fd *a, blz_interest interest);
/** Future tier of blz_async_fd_ready; result 0 or -errno. */
BLZ_API void blz_async_fd_ready_fut(blz_async_fd *a, blz_interest interest, blz_io_future *f);

/**
 * Runs the caller's own system call (Tokio's AsyncFd::try_io): `fn(dup, arg)`
 * on the runtime's duplicate if the last report said ready for `interest`,
 * with EINTR retried. When it returns -EAGAIN that readiness is cleared, so
 * the next blz_async_fd_ready sleeps until the kernel reports the descriptor
 * again instead of asking poll(2) first.
 * Returns fn's result; -EAGAIN when not ready (fn not called); -ECANCELED
 * once freed; -EINVAL (NULL, another interest). The duplicate stays open
 * during the call; do not close it or keep it. Never waits.
 */
BLZ_API long blz_async_fd_try_io(blz_async_fd *a, blz_interest interest, blz_io_fn fn, void *arg);

/**
 * The future of the async_io calls (blz_async_fd_io below, blz_tcp_io and
 * the like in blitzio/net.h): caller-owned, filled by their *_fut function.
 * `base.result` is fn's result (at most INT_MAX) or -errno. All fields but
 * `base` are private.
 */
typedef struct blz_async_io_future {
    union {
        blz_future base;   /**< the future; `base.result` holds the outcome */
        blz_io_future io_; /* the wait itself; its `base` is `base` */
    };
    blz_io_fn fn_;
    void *arg_;
    long value_; /* fn's result, not clamped */
} blz_async_io_future;

/**
 * Runs the caller's own system call until it gets through (Tokio's
 * AsyncFd::async_io): `fn(dup, arg)` as blz_async_fd_try_io runs it (at
 * once unless a -EAGAIN since the kernel's last report said the direction
 * is dry), and after each -EAGAIN a wait for the kernel's next readiness
 * report for `interest`, then fn again. Returns fn's first other result (>= 0 or
 * -errno), -ECANCELED once freed, -EINVAL (NULL, another interest).
 * No poll(2) of its own: fn's -EAGAIN is the test, so fn must say -EAGAIN
 * only when the descriptor has nothing for it (a library that returns it
 * for a reason of its own, wanting to write first say, would wait for a
 * report that may never come). Any thread; suspends a fiber.
 */
BLZ_API long blz_async_fd_io(blz_async_fd *a, blz_interest interest, blz_io_fn fn, void *arg);
/** Future tier of blz_async_fd_io. */
BLZ_API void blz_async_fd_io_fut(blz_async_fd *a, blz_interest interest, blz_io_fn fn, void *arg,
                                 blz_async_io_future *f);

#ifdef __cplusplus
}
#endif
#endif /* BLZ_IO_H */
