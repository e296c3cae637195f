/*
 * blitzio/io.h — what every I/O object shares: the I/O future that sockets
 * (and later files and pipes) fill, scatter/gather vectors and shutdown modes.
 *
 * Every operation that may wait comes in three tiers (DESIGN.md §3):
 *   blz_tcp_try_read(s, ...)      never waits: -EAGAIN when it would;
 *   blz_tcp_read_fut(s, ..., &f)  fills a caller-owned blz_io_future;
 *   blz_tcp_read(s, ...)          blz_await()s that future.
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
 * The caller's own system call on a socket's descriptor, for the try_io
 * calls of blitzio/net.h (Tokio's try_io): a recvmsg with ancillary data,
 * a sendmsg passing descriptors, a socket option. Returns its result (>= 0)
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

#ifdef __cplusplus
}
#endif
#endif /* BLZ_IO_H */
