/*
 * blitzio/net.h — addresses, TCP, UDP, Unix-domain sockets and name resolution.
 *
 * Tiers. Every operation that may wait has three spellings (see blitzio/io.h):
 * blz_X_try_Y never waits (-EAGAIN when it would), blz_X_Y_fut fills a
 * caller-owned blz_io_future, blz_X_Y awaits it (suspends a fiber task; parks
 * a thread outside the runtime; -EDEADLK inside a stackless poll). A try
 * call answers from the readiness the I/O driver last saw (blitzio/io.h).
 *
 * Objects. Listeners, streams and sockets are opaque, allocated by the
 * runtime and registered with its I/O driver. Create them inside a runtime
 * (a task of it, or a blocking job; -ESRCH elsewhere); use them from any
 * thread. A handle is closed exactly once with its close function, which
 * never fails: operations waiting on it in other tasks end with -ECANCELED and
 * the descriptor is closed when the last of them let go. A call that starts
 * after the close returned is a use after free, as with free(3): its result
 * is undefined (no error code is promised). Handles still open
 * when their runtime is freed are closed and freed with it (afterwards the
 * pointers dangle).
 *
 * Guarantees. Every descriptor is O_CLOEXEC | O_NONBLOCK. Writes never raise
 * SIGPIPE: a write to a closed connection returns -EPIPE or -ECONNRESET.
 * Errors are -errno values: -ECONNREFUSED, -ECONNRESET, -EPIPE, -ETIMEDOUT,
 * -EADDRINUSE, -EINVAL for malformed input, -ECANCELED for an operation
 * dropped or ended by a close.
 *
 * Concurrency. One task may read while another writes the same stream (or
 * use blz_tcp_split / blz_unix_split for handles that say so); two
 * concurrent readers (or two writers) of one stream are allowed but
 * interleave unpredictably.
 */
#ifndef BLZ_NET_H
#define BLZ_NET_H

#include "blitzio/common.h"
#include "blitzio/future.h"
#include "blitzio/io.h"
#include "blitzio/task.h"
#include "blitzio/time.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================== */
/* Addresses                                                                  */
/* ======================================================================== */

/** Address families. */
typedef enum blz_addr_family {
    BLZ_AF_UNSPEC = 0, /**< empty address */
    BLZ_AF_INET = 1,   /**< IPv4 */
    BLZ_AF_INET6 = 2,  /**< IPv6 */
    BLZ_AF_UNIX = 3,   /**< Unix domain: a path, an abstract name or unnamed */
} blz_addr_family;

/**
 * A socket address: IPv4, IPv6 (with scope id) or Unix. A value type: copy it
 * freely. Zero-initialised it is the empty address (family BLZ_AF_UNSPEC).
 * The storage holds the OS socket address; use the accessors.
 */
typedef struct blz_addr {
    uint32_t len_; /**< bytes of `sa_` in use; 0 = empty */
    uint32_t pad_;
    union {
        uint64_t align_;
        unsigned char bytes_[128];
    } sa_; /**< the OS sockaddr */
} blz_addr;

/** Room for any formatted address with its NUL (an abstract name of 107 escaped bytes: 435). */
#define BLZ_ADDR_STRLEN 512

/**
 * Parses a socket address.
 *  - "1.2.3.4:80"            IPv4 (four decimal parts, no leading zeros), port 0..65535
 *  - "[::1]:80"              IPv6, brackets required with a port
 *  - "[fe80::1%eth0]:80"     IPv6 with a scope: an interface name or number
 *  - "unix:/run/x.sock", "/run/x.sock", "./rel.sock"   Unix path (below 108 bytes)
 *  - "unix:@name", "@name"   Linux abstract name
 * Returns 0, or -EINVAL for NULL or malformed input (never crashes, never
 * reads past the NUL), -ENAMETOOLONG for a Unix path that does not fit.
 * Any thread; never suspends; no allocation, no I/O (except an interface-name
 * scope, which asks the kernel for the index).
 */
BLZ_API int blz_addr_parse(const char *s, blz_addr *out);

/** Like blz_addr_parse on the first `n` bytes of `s` (no NUL needed; an embedded NUL is -EINVAL).
 */
BLZ_API int blz_addr_parse_n(const char *s, size_t n, blz_addr *out);

/**
 * An IP address without brackets ("10.0.0.1", "::1", "fe80::1%2") and a port.
 * Returns 0 or -EINVAL. Any thread.
 */
BLZ_API int blz_addr_from_ip(const char *ip, uint16_t port, blz_addr *out);

/**
 * A Unix address: a filesystem path, or an abstract name when `path` starts
 * with '@' (the '@' is not part of the name). Returns 0, -EINVAL (NULL or
 * empty), -ENAMETOOLONG. Any thread.
 */
BLZ_API int blz_addr_from_unix(const char *path, blz_addr *out);

/** An abstract Unix address from `len` raw bytes (may contain NULs). 0, -EINVAL, -ENAMETOOLONG. */
BLZ_API int blz_addr_from_abstract(const void *name, size_t len, blz_addr *out);

/**
 * Formats `a` as blz_addr_parse reads it back: "1.2.3.4:80", "[::1]:80",
 * "[fe80::1%2]:80" (numeric scope), "unix:/path", "unix:@name" (bytes outside
 * printable ASCII, and '\\', as \\xNN), "unix:" for an unnamed socket.
 * A peer's path that fills all 108 bytes of sun_path (Linux binds one; the
 * parser takes 107 at most) is reported and formatted whole, but its text
 * does not parse back.
 * Writes at most `cap` bytes including the NUL. Returns the length (without
 * the NUL), -ENOSPC when `cap` is too small, -EINVAL for NULL or an empty or
 * unknown address. Any thread.
 */
BLZ_API int blz_addr_format(const blz_addr *a, char *buf, size_t cap);

/** The family of `a` (BLZ_AF_UNSPEC for NULL or empty). */
BLZ_API blz_addr_family blz_addr_get_family(const blz_addr *a);

/** The port of an IP address, or -EINVAL. */
BLZ_API int blz_addr_port(const blz_addr *a);

/** Sets the port of an IP address. 0 or -EINVAL. */
BLZ_API int blz_addr_set_port(blz_addr *a, uint16_t port);

/** The IPv6 scope id (0 when none or not IPv6). */
BLZ_API uint32_t blz_addr_scope_id(const blz_addr *a);

/** True when both are the same family, address, port (and scope / path). */
BLZ_API bool blz_addr_equal(const blz_addr *a, const blz_addr *b);

/** The IP of `a` in network byte order into `out`: returns 4 (IPv4) or 16 (IPv6), or -EINVAL
 * for NULL or an address that is no IP. Any thread. */
BLZ_API int blz_addr_ip_bytes(const blz_addr *a, unsigned char out[16]);
/** An IPv4 (`len` 4) or IPv6 (`len` 16) address from its bytes in network order, with `port`.
 * 0 or -EINVAL. */
BLZ_API int blz_addr_from_ip_bytes(const void *ip, size_t len, uint16_t port, blz_addr *out);
/** A loopback IP: 127.0.0.0/8, ::1, or 127.x mapped into IPv6 (::ffff:127.0.0.1). False for
 * anything else, Unix addresses and NULL. */
BLZ_API bool blz_addr_is_loopback(const blz_addr *a);
/** The unspecified IP, 0.0.0.0 or :: (what a listener binds to for every interface). */
BLZ_API bool blz_addr_is_unspecified(const blz_addr *a);
/** A multicast IP: 224.0.0.0/4, ff00::/8, or a mapped IPv4 multicast address. */
BLZ_API bool blz_addr_is_multicast(const blz_addr *a);

/** The OS socket address inside `a` and its length (for interop), or NULL when empty. */
BLZ_API const void *blz_addr_sockaddr(const blz_addr *a, size_t *len);

/** Copies an OS socket address of `len` bytes into `out`. 0, or -EINVAL (unknown family, bad
 * length). */
BLZ_API int blz_addr_from_sockaddr(const void *sa, size_t len, blz_addr *out);

/* ======================================================================== */
/* TCP                                                                        */
/* ======================================================================== */

typedef struct blz_tcp_listener blz_tcp_listener;
typedef struct blz_tcp_stream blz_tcp_stream;
typedef struct blz_tcp_socket blz_tcp_socket;
typedef struct blz_tcp_read_half blz_tcp_read_half;
typedef struct blz_tcp_write_half blz_tcp_write_half;

/** The listen backlog used when none is given. */
#define BLZ_LISTEN_BACKLOG 1024

/**
 * The future of an accept (TCP or Unix), filled by blz_tcp_accept_fut or
 * blz_unix_accept_fut. Caller-owned; poll or await `base`, whose `result` is
 * 0 or -errno. Larger than a blz_io_future because it carries its own
 * back-off timer (see blz_tcp_accept). All fields but `base` are private.
 */
typedef struct blz_accept_future {
    union {
        blz_future base;   /**< the future; `base.result` holds the outcome */
        blz_io_future io_; /* the accept itself; its `base` is `base` */
    };
    blz_sleep_future backoff_; /* the pause after running out of descriptors */
} blz_accept_future;

/**
 * Binds and listens on `addr` ("127.0.0.1:8080", "[::]:0"; port 0 picks a free
 * port, see blz_tcp_listener_addr), with SO_REUSEADDR and backlog
 * BLZ_LISTEN_BACKLOG. Returns 0 and the listener in `*out`, -EINVAL (bad
 * address), -EADDRINUSE, -EACCES, -EMFILE, -ENOMEM, -ESRCH (no runtime).
 * Inside a runtime; never suspends.
 */
BLZ_API int blz_tcp_listen(const char *addr, blz_tcp_listener **out);

/** Like blz_tcp_listen with a parsed address and a backlog (<= 0: the default). */
BLZ_API int blz_tcp_listen_addr(const blz_addr *addr, int backlog, blz_tcp_listener **out);

/**
 * Adopts `fd`, a listening IPv4 or IPv6 TCP socket made elsewhere (passed by
 * systemd socket activation, inherited from a parent, set up with options
 * blitzio does not wrap), as a listener of the current runtime. The
 * descriptor is made non-blocking and close-on-exec. On success the
 * listener owns it (blz_tcp_listener_close closes it, and only it: a copy
 * that systemd or a parent still holds goes on listening; on io_uring a
 * socket nobody else holds may still take a connection, then reset it, for
 * the moment until the ring lets go of it); on error it stays the caller's. 0, -EINVAL (not a
 * listening TCP socket, or `out` NULL), -EBADF, -ENOTSOCK, -ESRCH (no runtime). Inside a runtime.
 *
 * The `*_from_fd` calls of the other socket types work the same way.
 */
BLZ_API int blz_tcp_listener_from_fd(int fd, blz_tcp_listener **out);
/** Adopts `fd`, a connected TCP socket, as a stream (as blz_tcp_listener_from_fd), with
 * TCP_NODELAY on like every blitzio stream. Its reads go through readiness and recv(2), also
 * where accepted streams read by completion. */
BLZ_API int blz_tcp_stream_from_fd(int fd, blz_tcp_stream **out);

/** The address the listener is bound to (with the port the kernel picked). 0 or -errno. Any thread.
 */
BLZ_API int blz_tcp_listener_addr(const blz_tcp_listener *l, blz_addr *out);

/**
 * Accepts one connection: 0 and the new stream in `*out` (its peer address in
 * `*peer` when not NULL). Errors of the listener (-EBADF...), -EINVAL (NULL
 * arguments) and -ECANCELED (listener closed meanwhile, or task aborted).
 * Descriptor exhaustion (EMFILE, ENFILE, ENOBUFS, ENOMEM) never ends an
 * accept that waits, nor spins: the future tier (and so the await tier, which
 * awaits it) leaves the connection in the backlog, sleeps 10 ms and tries
 * again, so a server keeps serving once descriptors are free. A listener
 * closed during such a pause ends the accept with -ECANCELED within 10 ms.
 * Errors that concern only the aborted connection (ECONNABORTED, EPROTO...)
 * are skipped by every tier. Any thread; suspends (parks a foreign thread).
 */
BLZ_API int blz_tcp_accept(blz_tcp_listener *l, blz_tcp_stream **out, blz_addr *peer);
/**
 * Try tier of blz_tcp_accept; never waits. -EAGAIN when no connection is
 * waiting; -EMFILE, -ENFILE, -ENOBUFS, -ENOMEM returned as they are (the
 * connection stays in the backlog: back off before trying again).
 */
BLZ_API int blz_tcp_try_accept(blz_tcp_listener *l, blz_tcp_stream **out, blz_addr *peer);
/** Future tier of blz_tcp_accept, with its back-off; `out` and `peer` must outlive the future. */
BLZ_API void blz_tcp_accept_fut(blz_tcp_listener *l, blz_tcp_stream **out, blz_addr *peer,
                                blz_accept_future *f);

/** Closes the listener; an accept waiting on it in another task ends with -ECANCELED. NULL is
 * ignored. */
BLZ_API void blz_tcp_listener_close(blz_tcp_listener *l);

/**
 * Connects to `addr` (an IP address with port; no name lookup: see
 * blz_tcp_connect_host). Returns 0 and the stream, -EINVAL, -ECONNREFUSED,
 * -ENETUNREACH, -ETIMEDOUT (the kernel gave up), -ESRCH (no runtime)...
 * Suspends the calling fiber; parks a foreign thread.
 */
BLZ_API int blz_tcp_connect(const char *addr, blz_tcp_stream **out);
/** blz_tcp_connect with a parsed address. */
BLZ_API int blz_tcp_connect_addr(const blz_addr *addr, blz_tcp_stream **out);
/** blz_tcp_connect that gives up with -ETIMEDOUT at `deadline` (blz_clock_now() time). */
BLZ_API int blz_tcp_connect_until(const char *addr, blz_instant deadline, blz_tcp_stream **out);
/** blz_tcp_connect_addr that gives up with -ETIMEDOUT at `deadline`. */
BLZ_API int blz_tcp_connect_addr_until(const blz_addr *addr, blz_instant deadline,
                                       blz_tcp_stream **out);
/**
 * Future tier of connect: starts the connection at once (inside a runtime)
 * and completes when it is established. Dropping the future before then
 * closes the half-made socket. `out` must outlive the future.
 */
BLZ_API void blz_tcp_connect_fut(const blz_addr *addr, blz_tcp_stream **out, blz_io_future *f);

/**
 * Try tier of connect: creates a socket and starts connecting it to `addr`
 * (an IP address with port), never waiting. A TCP connect cannot finish at
 * once, so besides -EAGAIN's "nothing happened" this tier has a second
 * outcome: -EINPROGRESS with the stream in `*out`, its connection under way.
 * Finish it with blz_tcp_try_finish_connect (or its future and await tiers);
 * until then reads and writes on it wait (try tiers: -EAGAIN), as for any
 * stream not yet ready. Returns 0 (connected at once; rare) or -EINPROGRESS,
 * both with the stream in `*out` for the caller to close; otherwise -EINVAL,
 * -ECONNREFUSED, -ENETUNREACH, -EMFILE, -ESRCH (no runtime)... with `*out`
 * NULL. Inside a runtime; never suspends.
 */
BLZ_API int blz_tcp_try_connect(const blz_addr *addr, blz_tcp_stream **out);
/**
 * Try tier of finishing a connect started by blz_tcp_try_connect: 0 once
 * connected (also for a stream connected long ago), -EAGAIN while in
 * progress, or the connect's error (-ECONNREFUSED, -ETIMEDOUT, -ENETUNREACH...;
 * the stream is then useless: close it), -ENOTCONN once that error was
 * reported before (by this call or a read or write). Any thread; never
 * suspends.
 */
BLZ_API int blz_tcp_try_finish_connect(blz_tcp_stream *s);
/** Future tier of blz_tcp_try_finish_connect: completes when the connect does. Dropping it does not
 * close the stream. */
BLZ_API void blz_tcp_finish_connect_fut(blz_tcp_stream *s, blz_io_future *f);
/** Await tier of blz_tcp_try_finish_connect: suspends until the connect is over. */
BLZ_API int blz_tcp_finish_connect(blz_tcp_stream *s);

/**
 * Reads up to `n` bytes. Returns the count (> 0), 0 at end of stream (or
 * n == 0), -ECONNRESET, -ECANCELED, -EINVAL (NULL). Any thread.
 */
BLZ_API ssize_t blz_tcp_read(blz_tcp_stream *s, void *buf, size_t n);
/** Try tier of blz_tcp_read: -EAGAIN when nothing is buffered. */
BLZ_API ssize_t blz_tcp_try_read(blz_tcp_stream *s, void *buf, size_t n);
/** Future tier of blz_tcp_read; `buf` must outlive the future. */
BLZ_API void blz_tcp_read_fut(blz_tcp_stream *s, void *buf, size_t n, blz_io_future *f);

/** Like blz_tcp_read, but leaves the data in the socket (MSG_PEEK). */
BLZ_API ssize_t blz_tcp_peek(blz_tcp_stream *s, void *buf, size_t n);
/** Try tier of blz_tcp_peek. */
BLZ_API ssize_t blz_tcp_try_peek(blz_tcp_stream *s, void *buf, size_t n);
/** Future tier of blz_tcp_peek. */
BLZ_API void blz_tcp_peek_fut(blz_tcp_stream *s, void *buf, size_t n, blz_io_future *f);

/** Scatter read into `iovcnt` (1..BLZ_IOV_MAX) buffers. As blz_tcp_read. */
BLZ_API ssize_t blz_tcp_readv(blz_tcp_stream *s, const blz_iovec *iov, int iovcnt);
/** Try tier of blz_tcp_readv. */
BLZ_API ssize_t blz_tcp_try_readv(blz_tcp_stream *s, const blz_iovec *iov, int iovcnt);
/** Future tier of blz_tcp_readv; `iov` and its buffers must outlive the future. */
BLZ_API void blz_tcp_readv_fut(blz_tcp_stream *s, const blz_iovec *iov, int iovcnt,
                               blz_io_future *f);

/**
 * Writes up to `n` bytes; returns how many were taken (> 0; 0 when n == 0),
 * or -EPIPE / -ECONNRESET (peer gone; never SIGPIPE), -ECANCELED, -EINVAL.
 * Any thread.
 */
BLZ_API ssize_t blz_tcp_write(blz_tcp_stream *s, const void *buf, size_t n);
/** Try tier of blz_tcp_write: -EAGAIN when the send buffer is full. */
BLZ_API ssize_t blz_tcp_try_write(blz_tcp_stream *s, const void *buf, size_t n);
/** Future tier of blz_tcp_write. */
BLZ_API void blz_tcp_write_fut(blz_tcp_stream *s, const void *buf, size_t n, blz_io_future *f);

/** Gather write of `iovcnt` (1..BLZ_IOV_MAX) buffers. As blz_tcp_write. */
BLZ_API ssize_t blz_tcp_writev(blz_tcp_stream *s, const blz_iovec *iov, int iovcnt);
/** Try tier of blz_tcp_writev. */
BLZ_API ssize_t blz_tcp_try_writev(blz_tcp_stream *s, const blz_iovec *iov, int iovcnt);
/** Future tier of blz_tcp_writev. */
BLZ_API void blz_tcp_writev_fut(blz_tcp_stream *s, const blz_iovec *iov, int iovcnt,
                                blz_io_future *f);

/**
 * Writes all `n` bytes, waiting as often as needed. Returns 0, or the first
 * error (-EPIPE, -ECONNRESET, -ECANCELED); after an error an unknown prefix
 * was sent. Any thread.
 */
BLZ_API int blz_tcp_write_all(blz_tcp_stream *s, const void *buf, size_t n);
/** Future tier of blz_tcp_write_all; result 0 or -errno. */
BLZ_API void blz_tcp_write_all_fut(blz_tcp_stream *s, const void *buf, size_t n, blz_io_future *f);

/**
 * Waits until `s` may be ready for `interest` (BLZ_READABLE or
 * BLZ_WRITABLE, one per call) without moving any data, as Tokio's
 * readable()/writable(). Returns 0, or -ECANCELED (closed), -EINVAL (NULL
 * `s`, any other interest). Readiness is a hint: a try-tier read or write
 * right after may still find nothing and return -EAGAIN, which clears it, so
 * the next wait sleeps until the kernel reports the socket ready again. With
 * the try tier this lets a task take a buffer only once there is data to
 * put in it, instead of keeping one per connection. End-of-file and errors
 * count as readable (the read then reports them). After blz_tcp_split, each
 * half waits through its stream (blz_tcp_read_half_stream) in its own
 * direction; the two may wait at once. Any thread.
 */
BLZ_API int blz_tcp_ready(blz_tcp_stream *s, blz_interest interest);
/** Try tier of blz_tcp_ready: 0 when `s` may be ready, -EAGAIN when it is not. */
BLZ_API int blz_tcp_try_ready(blz_tcp_stream *s, blz_interest interest);
/** Future tier of blz_tcp_ready; result 0 or -errno. */
BLZ_API void blz_tcp_ready_fut(blz_tcp_stream *s, blz_interest interest, blz_io_future *f);
/**
 * Runs the caller's own system call on the stream's descriptor (Tokio's
 * try_io), for what the API does not wrap: `fn(fd, arg)` runs if `s` may be
 * ready for `interest` (BLZ_READABLE or BLZ_WRITABLE), with EINTR retried;
 * when it returns -EAGAIN, that readiness is cleared, so the next
 * blz_tcp_ready waits for the kernel. Returns fn's result; -EAGAIN when not
 * ready (fn not called); -ECANCELED once closed; -EINVAL (NULL, another
 * interest); -EOPNOTSUPP for BLZ_READABLE on a stream that reads by
 * completion (a one-worker io_uring runtime's accepted and connected
 * streams: the kernel has taken the bytes from the socket). The descriptor
 * stays open during the call; do not close it or keep it. Never waits.
 */
BLZ_API long blz_tcp_try_io(blz_tcp_stream *s, blz_interest interest, blz_io_fn fn, void *arg);
/**
 * The await tier of blz_tcp_try_io (Tokio's async_io): `fn(fd, arg)` runs
 * as try_io runs it, and after each -EAGAIN the task waits for the kernel's
 * next report for `interest` and runs it again. Returns fn's first other
 * result, whole (>= 0 or -errno), or try_io's refusals; -ECANCELED when the
 * stream is closed meanwhile. fn must say -EAGAIN only when the socket has
 * nothing for it. Suspends a fiber; parks a foreign thread.
 */
BLZ_API long blz_tcp_io(blz_tcp_stream *s, blz_interest interest, blz_io_fn fn, void *arg);
/** Future tier of blz_tcp_io; `base.result` is fn's result (at most INT_MAX) or -errno. */
BLZ_API void blz_tcp_io_fut(blz_tcp_stream *s, blz_interest interest, blz_io_fn fn, void *arg,
                            blz_async_io_future *f);

/** Shuts down one or both directions (BLZ_SHUT_*). 0, -ENOTCONN, -EINVAL. Any thread. */
BLZ_API int blz_tcp_shutdown(blz_tcp_stream *s, blz_shutdown_how how);

/**
 * Sets TCP_NODELAY. Every TCP stream starts with it ON (small writes go out
 * at once; request/response traffic never waits on Nagle + delayed ACK);
 * false brings Nagle's batching back. 0 or -errno.
 */
BLZ_API int blz_tcp_set_nodelay(blz_tcp_stream *s, bool on);
/** Reads TCP_NODELAY. */
BLZ_API int blz_tcp_nodelay(blz_tcp_stream *s, bool *on);
/** SO_KEEPALIVE on/off; `idle` > 0 also sets the idle time before probes (whole seconds, at least
 * 1). */
BLZ_API int blz_tcp_set_keepalive(blz_tcp_stream *s, bool on, blz_duration idle);
/** Reads SO_KEEPALIVE and the idle time before probes (the kernel's, whole seconds). */
BLZ_API int blz_tcp_keepalive(blz_tcp_stream *s, bool *on, blz_duration *idle);
/** How keepalive probes go once the idle time passed: one every `interval` (whole seconds, at
 * least 1), and the connection is dropped after `count` (1..127) unanswered. 0, -EINVAL. */
BLZ_API int blz_tcp_set_keepalive_probes(blz_tcp_stream *s, blz_duration interval, int count);
/** Reads the probe interval and count (the kernel's defaults until set). */
BLZ_API int blz_tcp_keepalive_probes(blz_tcp_stream *s, blz_duration *interval, int *count);
/** SO_LINGER: on with `d` (whole seconds, rounded up; 0 = reset on close), or off. 0, -EINVAL
 * (NULL, or on with `d` < 0). */
BLZ_API int blz_tcp_set_linger(blz_tcp_stream *s, bool on, blz_duration d);
/** Reads SO_LINGER: whether it is on and its time (whole seconds). */
BLZ_API int blz_tcp_linger(blz_tcp_stream *s, bool *on, blz_duration *d);
/** Unicast TTL (IPv4) or hop limit (IPv6) of the stream's packets, 1..255 (Tokio's set_ttl).
 * 0, -EINVAL. */
BLZ_API int blz_tcp_set_ttl(blz_tcp_stream *s, int ttl);
/** Reads the TTL or hop limit into `*ttl`. 0, -EINVAL. */
BLZ_API int blz_tcp_ttl(blz_tcp_stream *s, int *ttl);
/** The local address of the stream. 0 or -errno. */
BLZ_API int blz_tcp_local_addr(const blz_tcp_stream *s, blz_addr *out);
/** The peer address of the stream. 0, -ENOTCONN. */
BLZ_API int blz_tcp_peer_addr(const blz_tcp_stream *s, blz_addr *out);

/**
 * Closes the stream (or the whole stream after blz_tcp_split: use the half
 * close functions instead). Operations waiting on it elsewhere end with
 * -ECANCELED. NULL is ignored. Any thread; never suspends.
 */
BLZ_API void blz_tcp_close(blz_tcp_stream *s);

/**
 * Splits `s` into a read half and a write half that two tasks may use at
 * once. `s` must not be used afterwards; each half is closed with its own
 * close function, and the connection when both are. 0, or -EINVAL (NULL
 * arguments, or `s` split before).
 */
BLZ_API int blz_tcp_split(blz_tcp_stream *s, blz_tcp_read_half **rd, blz_tcp_write_half **wr);
/** Reads from a read half; as blz_tcp_read. */
BLZ_API ssize_t blz_tcp_half_read(blz_tcp_read_half *h, void *buf, size_t n);
/** Future tier of blz_tcp_half_read. */
BLZ_API void blz_tcp_half_read_fut(blz_tcp_read_half *h, void *buf, size_t n, blz_io_future *f);
/** Writes to a write half; as blz_tcp_write. */
BLZ_API ssize_t blz_tcp_half_write(blz_tcp_write_half *h, const void *buf, size_t n);
/** Future tier of blz_tcp_half_write. */
BLZ_API void blz_tcp_half_write_fut(blz_tcp_write_half *h, const void *buf, size_t n,
                                    blz_io_future *f);
/** Writes everything to a write half; as blz_tcp_write_all. */
BLZ_API int blz_tcp_half_write_all(blz_tcp_write_half *h, const void *buf, size_t n);
/** Future tier of blz_tcp_half_write_all. */
BLZ_API void blz_tcp_half_write_all_fut(blz_tcp_write_half *h, const void *buf, size_t n,
                                        blz_io_future *f);
/** Shuts the write direction (the peer reads end-of-file). */
BLZ_API int blz_tcp_half_shutdown(blz_tcp_write_half *h);
/**
 * The stream both halves belong to, for address and option calls (not for I/O
 * or close), and for blz_tcp_ready in this half's direction (BLZ_READABLE).
 */
BLZ_API blz_tcp_stream *blz_tcp_read_half_stream(blz_tcp_read_half *h);
/** As blz_tcp_read_half_stream; blz_tcp_ready with BLZ_WRITABLE is this half's. */
BLZ_API blz_tcp_stream *blz_tcp_write_half_stream(blz_tcp_write_half *h);
/** Closes the read half (the connection closes once both halves are closed); a read waiting
 * on it in another task ends with -ECANCELED. */
BLZ_API void blz_tcp_read_half_close(blz_tcp_read_half *h);
/** Closes the write half: shuts the write direction (the peer reads end-of-file), and the
 * connection closes once both halves are closed; a write waiting on it in another task ends
 * with -ECANCELED. NULL is ignored. */
BLZ_API void blz_tcp_write_half_close(blz_tcp_write_half *h);
/** Try tier of blz_tcp_half_read: -EAGAIN when nothing is buffered. */
BLZ_API ssize_t blz_tcp_half_try_read(blz_tcp_read_half *h, void *buf, size_t n);
/** Peeks through a read half; as blz_tcp_peek. */
BLZ_API ssize_t blz_tcp_half_peek(blz_tcp_read_half *h, void *buf, size_t n);
/** Try tier of blz_tcp_half_peek. */
BLZ_API ssize_t blz_tcp_half_try_peek(blz_tcp_read_half *h, void *buf, size_t n);
/** Future tier of blz_tcp_half_peek. */
BLZ_API void blz_tcp_half_peek_fut(blz_tcp_read_half *h, void *buf, size_t n, blz_io_future *f);
/** Try tier of blz_tcp_half_write: -EAGAIN when the send buffer is full. */
BLZ_API ssize_t blz_tcp_half_try_write(blz_tcp_write_half *h, const void *buf, size_t n);
/** Scatter read through a read half; as blz_tcp_readv. */
BLZ_API ssize_t blz_tcp_half_readv(blz_tcp_read_half *h, const blz_iovec *iov, int iovcnt);
/** Try tier of blz_tcp_half_readv. */
BLZ_API ssize_t blz_tcp_half_try_readv(blz_tcp_read_half *h, const blz_iovec *iov, int iovcnt);
/** Future tier of blz_tcp_half_readv; `iov` and its buffers must outlive the future. */
BLZ_API void blz_tcp_half_readv_fut(blz_tcp_read_half *h, const blz_iovec *iov, int iovcnt,
                                    blz_io_future *f);
/** Gather write through a write half; as blz_tcp_writev. */
BLZ_API ssize_t blz_tcp_half_writev(blz_tcp_write_half *h, const blz_iovec *iov, int iovcnt);
/** Try tier of blz_tcp_half_writev. */
BLZ_API ssize_t blz_tcp_half_try_writev(blz_tcp_write_half *h, const blz_iovec *iov, int iovcnt);
/** Future tier of blz_tcp_half_writev; `iov` and its buffers must outlive the future. */
BLZ_API void blz_tcp_half_writev_fut(blz_tcp_write_half *h, const blz_iovec *iov, int iovcnt,
                                     blz_io_future *f);

/* ---- socket builder ---------------------------------------------------- */

/**
 * A TCP socket not yet listening or connected, for options that must be set
 * before bind. `family` is BLZ_AF_INET or BLZ_AF_INET6. 0, -EINVAL, -EMFILE.
 * Any thread; the socket joins a runtime at listen/connect.
 */
BLZ_API int blz_tcp_socket_new(blz_addr_family family, blz_tcp_socket **out);
/** SO_REUSEADDR. 0 or -errno. */
BLZ_API int blz_tcp_socket_set_reuseaddr(blz_tcp_socket *s, bool on);
/** SO_REUSEPORT. 0 or -errno. */
BLZ_API int blz_tcp_socket_set_reuseport(blz_tcp_socket *s, bool on);
/** SO_SNDBUF (the kernel may double or clamp it). 0 or -errno. */
BLZ_API int blz_tcp_socket_set_send_buffer_size(blz_tcp_socket *s, size_t size);
/** SO_RCVBUF (the kernel may double or clamp it). 0 or -errno. */
BLZ_API int blz_tcp_socket_set_recv_buffer_size(blz_tcp_socket *s, size_t size);
/** TCP_NODELAY for the connected stream (default on, as every TCP stream). 0 or -errno. */
BLZ_API int blz_tcp_socket_set_nodelay(blz_tcp_socket *s, bool on);
/** Binds to `addr`. 0, -EADDRINUSE, -EINVAL (wrong family)... */
BLZ_API int blz_tcp_socket_bind(blz_tcp_socket *s, const blz_addr *addr);
/** The address bound so far. */
BLZ_API int blz_tcp_socket_local_addr(const blz_tcp_socket *s, blz_addr *out);
/** Listens (backlog <= 0: the default). Consumes `s`, also on failure. Inside a runtime. */
BLZ_API int blz_tcp_socket_listen(blz_tcp_socket *s, int backlog, blz_tcp_listener **out);
/** Connects to `addr` (awaits). Consumes `s`, also on failure. Inside a runtime. */
BLZ_API int blz_tcp_socket_connect(blz_tcp_socket *s, const blz_addr *addr, blz_tcp_stream **out);
/**
 * Future tier of blz_tcp_socket_connect: starts connecting at once and
 * consumes `s` from this call on, also on failure and with `f` NULL (then
 * `s` is closed). `*out` is set only when the result is 0.
 */
BLZ_API void blz_tcp_socket_connect_fut(blz_tcp_socket *s, const blz_addr *addr,
                                        blz_tcp_stream **out, blz_io_future *f);
/** Frees a socket that was never consumed. NULL is ignored. */
BLZ_API void blz_tcp_socket_close(blz_tcp_socket *s);

/* ======================================================================== */
/* UDP                                                                        */
/* ======================================================================== */

typedef struct blz_udp_socket blz_udp_socket;

/** Binds a UDP socket to `addr` ("0.0.0.0:0", "[::1]:5353"). 0, -EINVAL, -EADDRINUSE, -ESRCH.
 * Inside a runtime. */
BLZ_API int blz_udp_bind(const char *addr, blz_udp_socket **out);
/** blz_udp_bind with a parsed address. */
BLZ_API int blz_udp_bind_addr(const blz_addr *addr, blz_udp_socket **out);
/** Adopts `fd`, an IPv4 or IPv6 UDP socket, as blz_tcp_listener_from_fd does a listener. */
BLZ_API int blz_udp_from_fd(int fd, blz_udp_socket **out);
/** Sets the default peer (send/recv then use it; datagrams from others are dropped). Never waits.
 */
BLZ_API int blz_udp_connect(blz_udp_socket *u, const blz_addr *peer);

/** Sends one datagram to `to`. Returns the bytes sent, -EMSGSIZE, -EINVAL... Any thread. */
BLZ_API ssize_t blz_udp_send_to(blz_udp_socket *u, const void *buf, size_t n, const blz_addr *to);
/** Try tier of blz_udp_send_to. */
BLZ_API ssize_t blz_udp_try_send_to(blz_udp_socket *u, const void *buf, size_t n,
                                    const blz_addr *to);
/** Future tier of blz_udp_send_to; `buf` and `to` must outlive it. */
BLZ_API void blz_udp_send_to_fut(blz_udp_socket *u, const void *buf, size_t n, const blz_addr *to,
                                 blz_io_future *f);
/** Receives one datagram (truncated to `n`); its sender in `*from` if not NULL. Returns its length.
 */
BLZ_API ssize_t blz_udp_recv_from(blz_udp_socket *u, void *buf, size_t n, blz_addr *from);
/** Try tier of blz_udp_recv_from. */
BLZ_API ssize_t blz_udp_try_recv_from(blz_udp_socket *u, void *buf, size_t n, blz_addr *from);
/** Future tier of blz_udp_recv_from. */
BLZ_API void blz_udp_recv_from_fut(blz_udp_socket *u, void *buf, size_t n, blz_addr *from,
                                   blz_io_future *f);
/**
 * Like blz_udp_recv_from, but leaves the datagram queued: the next receive
 * (or peek) gets it again. Returns its length (truncated to `n`).
 */
BLZ_API ssize_t blz_udp_peek_from(blz_udp_socket *u, void *buf, size_t n, blz_addr *from);
/** Try tier of blz_udp_peek_from: -EAGAIN when nothing is queued. */
BLZ_API ssize_t blz_udp_try_peek_from(blz_udp_socket *u, void *buf, size_t n, blz_addr *from);
/** Future tier of blz_udp_peek_from; `buf` and `from` must outlive it. */
BLZ_API void blz_udp_peek_from_fut(blz_udp_socket *u, void *buf, size_t n, blz_addr *from,
                                   blz_io_future *f);
/** Sends to the connected peer. -EDESTADDRREQ when not connected; -ECONNREFUSED after an ICMP
 * error. */
BLZ_API ssize_t blz_udp_send(blz_udp_socket *u, const void *buf, size_t n);
/** Try tier of blz_udp_send. */
BLZ_API ssize_t blz_udp_try_send(blz_udp_socket *u, const void *buf, size_t n);
/** Future tier of blz_udp_send. */
BLZ_API void blz_udp_send_fut(blz_udp_socket *u, const void *buf, size_t n, blz_io_future *f);
/** Receives from the connected peer. */
BLZ_API ssize_t blz_udp_recv(blz_udp_socket *u, void *buf, size_t n);
/** Try tier of blz_udp_recv. */
BLZ_API ssize_t blz_udp_try_recv(blz_udp_socket *u, void *buf, size_t n);
/** Future tier of blz_udp_recv. */
BLZ_API void blz_udp_recv_fut(blz_udp_socket *u, void *buf, size_t n, blz_io_future *f);

/** Datagrams a batch call moves at most, in one system call. */
#define BLZ_UDP_MANY_MAX 32

/** One datagram of a batch (blz_udp_recv_many, blz_udp_send_many). */
typedef struct blz_udp_msg {
    void *buf;      /**< receive: filled; send: the payload */
    size_t len;     /**< receive: room in `buf`; send: bytes to send */
    blz_addr *addr; /**< receive: the sender, if not NULL; send: the destination,
                         NULL on a connected socket */
    size_t result;  /**< out: the datagram's length received (at most `len`), or bytes sent */
    bool truncated; /**< out, receive: the datagram was longer than `len` (the rest is gone) */
    /** out, receive: the size of each datagram in `buf`. Equal to `result`,
     * except with GRO on (blz_udp_set_gro), when the kernel may coalesce
     * datagrams of one sender: `buf` then holds result / segment of them
     * back to back, the last one shorter if result is not a multiple. */
    size_t segment;
} blz_udp_msg;

/**
 * Receives up to min(n, BLZ_UDP_MANY_MAX) datagrams in one system call
 * (recvmmsg): waits until at least one is queued, then takes what is queued.
 * Fills each msgs[i] taken (result, truncated, addr). Returns how many were
 * received (at least 1), or -errno: -EINVAL for n == 0, NULL msgs, or a
 * message with NULL `buf` and nonzero `len`. A datagram is taken from the
 * socket only when returned: dropping the future loses nothing.
 */
BLZ_API ssize_t blz_udp_recv_many(blz_udp_socket *u, blz_udp_msg *msgs, size_t n);
/** Try tier of blz_udp_recv_many: -EAGAIN when nothing is queued. */
BLZ_API ssize_t blz_udp_try_recv_many(blz_udp_socket *u, blz_udp_msg *msgs, size_t n);
/** Future tier of blz_udp_recv_many; `msgs` and what it points to must outlive it. */
BLZ_API void blz_udp_recv_many_fut(blz_udp_socket *u, blz_udp_msg *msgs, size_t n,
                                   blz_io_future *f);
/**
 * Sends up to min(n, BLZ_UDP_MANY_MAX) datagrams in one system call
 * (sendmmsg), waiting while the socket cannot take the first. Returns how
 * many were sent (at least 1; each msgs[i].result set), or -errno for the
 * first (-EINVAL as blz_udp_recv_many, or for an empty `addr`;
 * -EDESTADDRREQ for a NULL `addr` on an unconnected socket; -EMSGSIZE).
 * Datagrams after the returned count were not sent: send them again.
 */
BLZ_API ssize_t blz_udp_send_many(blz_udp_socket *u, blz_udp_msg *msgs, size_t n);
/** Try tier of blz_udp_send_many. */
BLZ_API ssize_t blz_udp_try_send_many(blz_udp_socket *u, blz_udp_msg *msgs, size_t n);
/** Future tier of blz_udp_send_many; `msgs` and what it points to must outlive it. */
BLZ_API void blz_udp_send_many_fut(blz_udp_socket *u, blz_udp_msg *msgs, size_t n,
                                   blz_io_future *f);

/** One buffer sent as datagrams of `segment` bytes each (UDP generic
 * segmentation offload), for blz_udp_send_segments. */
typedef struct blz_udp_segments {
    const void *buf;      /**< the payload of every datagram, back to back */
    size_t len;           /**< total bytes */
    size_t segment;       /**< bytes per datagram (the last may be shorter), 1..65535 */
    const blz_addr *addr; /**< the destination, NULL on a connected socket */
} blz_udp_segments;

/**
 * Sends `s->len` bytes as consecutive datagrams of `s->segment` bytes (the
 * last may be shorter) in one system call: the kernel splits the buffer
 * (UDP_SEGMENT), so a sender of many equal datagrams pays one trip through
 * the stack. Returns the bytes sent (all of them), or -errno: -EINVAL for a
 * NULL `s`, a NULL `buf` with `len` > 0, a `segment` of 0 or above 65535,
 * an empty `addr`, or when the kernel refuses the split (more segments than
 * it takes, 64 on older kernels, or a segment larger than the path allows);
 * -EMSGSIZE when `len` exceeds what one call can carry (64 KiB less headers);
 * -EIO where the device cannot segment (checksum offload off).
 */
BLZ_API ssize_t blz_udp_send_segments(blz_udp_socket *u, const blz_udp_segments *s);
/**
 * Lets the kernel coalesce consecutive datagrams of one sender into one
 * receive (UDP GRO; off by default): blz_udp_recv_many then reports each
 * buffer's datagram size in `segment`. Other receives see the coalesced
 * bytes without that size, so use blz_udp_recv_many while it is on.
 * 0, -EINVAL, -EOPNOTSUPP where the kernel has no UDP GRO.
 */
BLZ_API int blz_udp_set_gro(blz_udp_socket *u, bool on);
/** Try tier of blz_udp_send_segments. */
BLZ_API ssize_t blz_udp_try_send_segments(blz_udp_socket *u, const blz_udp_segments *s);
/** Future tier of blz_udp_send_segments; `s` and what it points to must outlive it. */
BLZ_API void blz_udp_send_segments_fut(blz_udp_socket *u, const blz_udp_segments *s,
                                       blz_io_future *f);

/** As blz_tcp_ready: BLZ_READABLE when a datagram (or an error) is queued. */
BLZ_API int blz_udp_ready(blz_udp_socket *u, blz_interest interest);
/** As blz_tcp_try_ready. */
BLZ_API int blz_udp_try_ready(blz_udp_socket *u, blz_interest interest);
/** As blz_tcp_ready_fut. */
BLZ_API void blz_udp_ready_fut(blz_udp_socket *u, blz_interest interest, blz_io_future *f);
/** The caller's own system call on the socket (recvmsg with IP_PKTINFO, say), as
 * blz_tcp_try_io. */
BLZ_API long blz_udp_try_io(blz_udp_socket *u, blz_interest interest, blz_io_fn fn, void *arg);
/** The await tier of blz_udp_try_io, as blz_tcp_io. */
BLZ_API long blz_udp_io(blz_udp_socket *u, blz_interest interest, blz_io_fn fn, void *arg);
/** Future tier of blz_udp_io, as blz_tcp_io_fut. */
BLZ_API void blz_udp_io_fut(blz_udp_socket *u, blz_interest interest, blz_io_fn fn, void *arg,
                            blz_async_io_future *f);

/** SO_BROADCAST. */
BLZ_API int blz_udp_set_broadcast(blz_udp_socket *u, bool on);
/** Unicast TTL (IPv4) or hop limit (IPv6), 1..255. */
BLZ_API int blz_udp_set_ttl(blz_udp_socket *u, int ttl);
/** Reads the TTL or hop limit into `*ttl`. 0, -EINVAL. */
BLZ_API int blz_udp_ttl(blz_udp_socket *u, int *ttl);
/** Multicast TTL / hop limit, 0..255. */
BLZ_API int blz_udp_set_multicast_ttl(blz_udp_socket *u, int ttl);
/** Whether multicast sent here loops back to local receivers. */
BLZ_API int blz_udp_set_multicast_loop(blz_udp_socket *u, bool on);
/** Joins multicast `group` on interface index `ifindex` (0: the kernel's choice). */
BLZ_API int blz_udp_join_multicast(blz_udp_socket *u, const blz_addr *group, unsigned ifindex);
/** Leaves multicast `group`. */
BLZ_API int blz_udp_leave_multicast(blz_udp_socket *u, const blz_addr *group, unsigned ifindex);
/**
 * The interface (index, as from if_nametoindex) that multicast sent on `u`
 * leaves by; 0 gives the choice back to the routing table. 0, -EINVAL, or
 * the kernel's error for an unknown index (-EADDRNOTAVAIL, -ENODEV).
 */
BLZ_API int blz_udp_set_multicast_if(blz_udp_socket *u, unsigned ifindex);
/** The local address. */
BLZ_API int blz_udp_local_addr(const blz_udp_socket *u, blz_addr *out);
/** The connected peer, or -ENOTCONN. */
BLZ_API int blz_udp_peer_addr(const blz_udp_socket *u, blz_addr *out);
/** Closes the socket; waits on it end with -ECANCELED. NULL is ignored. */
BLZ_API void blz_udp_close(blz_udp_socket *u);

/* ======================================================================== */
/* Unix domain                                                                */
/* ======================================================================== */

typedef struct blz_unix_listener blz_unix_listener;
typedef struct blz_unix_stream blz_unix_stream;
typedef struct blz_unix_datagram blz_unix_datagram;
typedef struct blz_unix_read_half blz_unix_read_half;
typedef struct blz_unix_write_half blz_unix_write_half;

/** Credentials of the process at the other end of a Unix socket (SO_PEERCRED). */
typedef struct blz_ucred {
    int pid;      /**< process id */
    unsigned uid; /**< user id */
    unsigned gid; /**< group id */
} blz_ucred;

/**
 * Listens on Unix path `path` ("@name": abstract). The path must not exist
 * (-EADDRINUSE); closing the listener leaves the file behind. 0, -EINVAL,
 * -ENAMETOOLONG, -EADDRINUSE, -ESRCH. Inside a runtime.
 */
BLZ_API int blz_unix_listen(const char *path, blz_unix_listener **out);
/** blz_unix_listen with a parsed address and backlog (<= 0: the default). */
BLZ_API int blz_unix_listen_addr(const blz_addr *addr, int backlog, blz_unix_listener **out);
/** Adopts `fd`, a listening Unix stream socket (as blz_tcp_listener_from_fd). */
BLZ_API int blz_unix_listener_from_fd(int fd, blz_unix_listener **out);
/** Adopts `fd`, a connected Unix stream socket (as blz_tcp_listener_from_fd). */
BLZ_API int blz_unix_stream_from_fd(int fd, blz_unix_stream **out);
/** Adopts `fd`, a Unix datagram socket (as blz_tcp_listener_from_fd). */
BLZ_API int blz_unix_datagram_from_fd(int fd, blz_unix_datagram **out);
/** The listener's address. */
BLZ_API int blz_unix_listener_addr(const blz_unix_listener *l, blz_addr *out);
/** Accepts a connection; as blz_tcp_accept (including the EMFILE back-off of the await and future
 * tiers). */
BLZ_API int blz_unix_accept(blz_unix_listener *l, blz_unix_stream **out, blz_addr *peer);
/** Try tier of blz_unix_accept; as blz_tcp_try_accept (-EAGAIN; -EMFILE... returned as they are).
 */
BLZ_API int blz_unix_try_accept(blz_unix_listener *l, blz_unix_stream **out, blz_addr *peer);
/** Future tier of blz_unix_accept, with its back-off. */
BLZ_API void blz_unix_accept_fut(blz_unix_listener *l, blz_unix_stream **out, blz_addr *peer,
                                 blz_accept_future *f);
/** Closes the listener. NULL is ignored. */
BLZ_API void blz_unix_listener_close(blz_unix_listener *l);

/**
 * Connects to Unix path `path` ("@name": abstract). 0, -ENOENT, -ECONNREFUSED...
 * Awaits. When the listener's backlog is full it pauses (1 ms, doubling up to
 * 64 ms) and tries again until there is room, as accept does under EMFILE;
 * the future tier reports that case as -EAGAIN.
 */
BLZ_API int blz_unix_connect(const char *path, blz_unix_stream **out);
/** blz_unix_connect with a parsed address. */
BLZ_API int blz_unix_connect_addr(const blz_addr *addr, blz_unix_stream **out);
/** blz_unix_connect that gives up with -ETIMEDOUT at `deadline` (blz_clock_now()
 *  time): the bound on how long a full backlog keeps it trying. */
BLZ_API int blz_unix_connect_until(const char *path, blz_instant deadline, blz_unix_stream **out);
/** blz_unix_connect_addr that gives up with -ETIMEDOUT at `deadline`. */
BLZ_API int blz_unix_connect_addr_until(const blz_addr *addr, blz_instant deadline,
                                        blz_unix_stream **out);
/** Future tier of blz_unix_connect. */
BLZ_API void blz_unix_connect_fut(const blz_addr *addr, blz_unix_stream **out, blz_io_future *f);
/**
 * Try tier of blz_unix_connect_addr; never waits. A Unix connect is made at
 * once or not at all: 0 and the stream in `*out`; -EAGAIN (nothing left
 * behind) when the listener's backlog is full; -ENOENT, -ECONNREFUSED,
 * -EINVAL, -ESRCH (no runtime)... with `*out` NULL. Inside a runtime.
 */
BLZ_API int blz_unix_try_connect(const blz_addr *addr, blz_unix_stream **out);
/** A connected pair of Unix streams. Inside a runtime. */
BLZ_API int blz_unix_pair(blz_unix_stream **a, blz_unix_stream **b);

/** As blz_tcp_read. */
BLZ_API ssize_t blz_unix_read(blz_unix_stream *s, void *buf, size_t n);
/** As blz_tcp_try_read. */
BLZ_API ssize_t blz_unix_try_read(blz_unix_stream *s, void *buf, size_t n);
/** As blz_tcp_read_fut. */
BLZ_API void blz_unix_read_fut(blz_unix_stream *s, void *buf, size_t n, blz_io_future *f);
/** As blz_tcp_peek: reads without taking the data out of the socket. */
BLZ_API ssize_t blz_unix_peek(blz_unix_stream *s, void *buf, size_t n);
/** As blz_tcp_try_peek. */
BLZ_API ssize_t blz_unix_try_peek(blz_unix_stream *s, void *buf, size_t n);
/** As blz_tcp_peek_fut. */
BLZ_API void blz_unix_peek_fut(blz_unix_stream *s, void *buf, size_t n, blz_io_future *f);
/** As blz_tcp_write. */
BLZ_API ssize_t blz_unix_write(blz_unix_stream *s, const void *buf, size_t n);
/** As blz_tcp_try_write. */
BLZ_API ssize_t blz_unix_try_write(blz_unix_stream *s, const void *buf, size_t n);
/** As blz_tcp_write_fut. */
BLZ_API void blz_unix_write_fut(blz_unix_stream *s, const void *buf, size_t n, blz_io_future *f);
/** As blz_tcp_write_all. */
BLZ_API int blz_unix_write_all(blz_unix_stream *s, const void *buf, size_t n);
/** As blz_tcp_write_all_fut. */
BLZ_API void blz_unix_write_all_fut(blz_unix_stream *s, const void *buf, size_t n,
                                    blz_io_future *f);
/** As blz_tcp_ready. */
BLZ_API int blz_unix_ready(blz_unix_stream *s, blz_interest interest);
/** As blz_tcp_try_ready. */
BLZ_API int blz_unix_try_ready(blz_unix_stream *s, blz_interest interest);
/** As blz_tcp_ready_fut. */
BLZ_API void blz_unix_ready_fut(blz_unix_stream *s, blz_interest interest, blz_io_future *f);
/** The caller's own system call on the stream (a sendmsg passing descriptors, say), as
 * blz_tcp_try_io. */
BLZ_API long blz_unix_try_io(blz_unix_stream *s, blz_interest interest, blz_io_fn fn, void *arg);
/** The await tier of blz_unix_try_io, as blz_tcp_io. */
BLZ_API long blz_unix_io(blz_unix_stream *s, blz_interest interest, blz_io_fn fn, void *arg);
/** Future tier of blz_unix_io, as blz_tcp_io_fut. */
BLZ_API void blz_unix_io_fut(blz_unix_stream *s, blz_interest interest, blz_io_fn fn, void *arg,
                             blz_async_io_future *f);
/** As blz_tcp_readv. */
BLZ_API ssize_t blz_unix_readv(blz_unix_stream *s, const blz_iovec *iov, int iovcnt);
/** As blz_tcp_try_readv. */
BLZ_API ssize_t blz_unix_try_readv(blz_unix_stream *s, const blz_iovec *iov, int iovcnt);
/** As blz_tcp_readv_fut. */
BLZ_API void blz_unix_readv_fut(blz_unix_stream *s, const blz_iovec *iov, int iovcnt,
                                blz_io_future *f);
/** As blz_tcp_writev. */
BLZ_API ssize_t blz_unix_writev(blz_unix_stream *s, const blz_iovec *iov, int iovcnt);
/** As blz_tcp_try_writev. */
BLZ_API ssize_t blz_unix_try_writev(blz_unix_stream *s, const blz_iovec *iov, int iovcnt);
/** As blz_tcp_writev_fut. */
BLZ_API void blz_unix_writev_fut(blz_unix_stream *s, const blz_iovec *iov, int iovcnt,
                                 blz_io_future *f);
/** As blz_tcp_shutdown. */
BLZ_API int blz_unix_shutdown(blz_unix_stream *s, blz_shutdown_how how);
/** The peer's credentials. 0 or -errno. */
BLZ_API int blz_unix_peer_cred(const blz_unix_stream *s, blz_ucred *out);
/** The local address ("unix:" when unnamed). */
BLZ_API int blz_unix_local_addr(const blz_unix_stream *s, blz_addr *out);
/** The peer address ("unix:" when unnamed). */
BLZ_API int blz_unix_peer_addr(const blz_unix_stream *s, blz_addr *out);
/** Closes the stream (not after blz_unix_split: close the halves). NULL is ignored. */
BLZ_API void blz_unix_close(blz_unix_stream *s);

/**
 * Splits `s` into a read half and a write half that two tasks may use at
 * once, as blz_tcp_split (the same mechanism). `s` must not be used for I/O
 * or closed afterwards; each half is closed with its own close function, and
 * the connection when both are. 0, or -EINVAL (NULL, or `s` split before). Any thread.
 */
BLZ_API int blz_unix_split(blz_unix_stream *s, blz_unix_read_half **rd, blz_unix_write_half **wr);
/** Reads from a read half; as blz_unix_read. */
BLZ_API ssize_t blz_unix_half_read(blz_unix_read_half *h, void *buf, size_t n);
/** Try tier of blz_unix_half_read. */
BLZ_API ssize_t blz_unix_half_try_read(blz_unix_read_half *h, void *buf, size_t n);
/** Future tier of blz_unix_half_read. */
BLZ_API void blz_unix_half_read_fut(blz_unix_read_half *h, void *buf, size_t n, blz_io_future *f);
/** Peeks through a read half; as blz_unix_peek. */
BLZ_API ssize_t blz_unix_half_peek(blz_unix_read_half *h, void *buf, size_t n);
/** Try tier of blz_unix_half_peek. */
BLZ_API ssize_t blz_unix_half_try_peek(blz_unix_read_half *h, void *buf, size_t n);
/** Future tier of blz_unix_half_peek. */
BLZ_API void blz_unix_half_peek_fut(blz_unix_read_half *h, void *buf, size_t n, blz_io_future *f);
/** Writes to a write half; as blz_unix_write. */
BLZ_API ssize_t blz_unix_half_write(blz_unix_write_half *h, const void *buf, size_t n);
/** Try tier of blz_unix_half_write. */
BLZ_API ssize_t blz_unix_half_try_write(blz_unix_write_half *h, const void *buf, size_t n);
/** Future tier of blz_unix_half_write. */
BLZ_API void blz_unix_half_write_fut(blz_unix_write_half *h, const void *buf, size_t n,
                                     blz_io_future *f);
/** Writes everything to a write half; as blz_unix_write_all. */
BLZ_API int blz_unix_half_write_all(blz_unix_write_half *h, const void *buf, size_t n);
/** Future tier of blz_unix_half_write_all. */
BLZ_API void blz_unix_half_write_all_fut(blz_unix_write_half *h, const void *buf, size_t n,
                                         blz_io_future *f);
/** Scatter read through a read half; as blz_unix_readv. */
BLZ_API ssize_t blz_unix_half_readv(blz_unix_read_half *h, const blz_iovec *iov, int iovcnt);
/** Try tier of blz_unix_half_readv. */
BLZ_API ssize_t blz_unix_half_try_readv(blz_unix_read_half *h, const blz_iovec *iov, int iovcnt);
/** Future tier of blz_unix_half_readv; `iov` and its buffers must outlive the future. */
BLZ_API void blz_unix_half_readv_fut(blz_unix_read_half *h, const blz_iovec *iov, int iovcnt,
                                     blz_io_future *f);
/** Gather write through a write half; as blz_unix_writev. */
BLZ_API ssize_t blz_unix_half_writev(blz_unix_write_half *h, const blz_iovec *iov, int iovcnt);
/** Try tier of blz_unix_half_writev. */
BLZ_API ssize_t blz_unix_half_try_writev(blz_unix_write_half *h, const blz_iovec *iov, int iovcnt);
/** Future tier of blz_unix_half_writev; `iov` and its buffers must outlive the future. */
BLZ_API void blz_unix_half_writev_fut(blz_unix_write_half *h, const blz_iovec *iov, int iovcnt,
                                      blz_io_future *f);
/** Shuts the write direction (the peer reads end-of-file). 0 or -errno. */
BLZ_API int blz_unix_half_shutdown(blz_unix_write_half *h);
/**
 * The stream both halves belong to, for address and credential calls (not for
 * I/O or close), and for blz_unix_ready in this half's direction (BLZ_READABLE).
 */
BLZ_API blz_unix_stream *blz_unix_read_half_stream(blz_unix_read_half *h);
/** As blz_unix_read_half_stream; blz_unix_ready with BLZ_WRITABLE is this half's. */
BLZ_API blz_unix_stream *blz_unix_write_half_stream(blz_unix_write_half *h);
/** Closes the read half (the connection closes once both halves are closed); a read waiting
 * on it in another task ends with -ECANCELED. NULL is ignored. */
BLZ_API void blz_unix_read_half_close(blz_unix_read_half *h);
/** Closes the write half: shuts the write direction (the peer reads end-of-file), and the
 * connection closes once both halves are closed; a write waiting on it in another task ends
 * with -ECANCELED. NULL is ignored. */
BLZ_API void blz_unix_write_half_close(blz_unix_write_half *h);

/** A datagram socket bound to `path` ("@name": abstract). Inside a runtime. */
BLZ_API int blz_unix_datagram_bind(const char *path, blz_unix_datagram **out);
/** An unbound datagram socket (can send, and receive once connected to a peer that knows it). */
BLZ_API int blz_unix_datagram_unbound(blz_unix_datagram **out);
/** A connected pair of datagram sockets. */
BLZ_API int blz_unix_datagram_pair(blz_unix_datagram **a, blz_unix_datagram **b);
/** Sets the default peer. */
BLZ_API int blz_unix_datagram_connect(blz_unix_datagram *d, const char *path);
/**
 * Sends one datagram to `to`. Returns the bytes sent, or -errno (-EINVAL, -ECONNREFUSED: no
 * socket there...). A receiver whose queue is full gives the sender no event when it has room
 * again: the send then pauses (1 ms, doubling up to 64 ms) and tries again until it goes out,
 * as blz_unix_connect does at a full backlog (a close meanwhile ends it with -ECANCELED within
 * 64 ms); the future tier reports that case as -EAGAIN.
 */
BLZ_API ssize_t blz_unix_datagram_send_to(blz_unix_datagram *d, const void *buf, size_t n,
                                          const blz_addr *to);
/** Try tier of blz_unix_datagram_send_to. */
BLZ_API ssize_t blz_unix_datagram_try_send_to(blz_unix_datagram *d, const void *buf, size_t n,
                                              const blz_addr *to);
/** Future tier of blz_unix_datagram_send_to: -EAGAIN when the receiver's queue is full (try
 * again later: no event will come for it). */
BLZ_API void blz_unix_datagram_send_to_fut(blz_unix_datagram *d, const void *buf, size_t n,
                                           const blz_addr *to, blz_io_future *f);
/** Receives one datagram; its sender in `*from` if not NULL. */
BLZ_API ssize_t blz_unix_datagram_recv_from(blz_unix_datagram *d, void *buf, size_t n,
                                            blz_addr *from);
/** Try tier of blz_unix_datagram_recv_from. */
BLZ_API ssize_t blz_unix_datagram_try_recv_from(blz_unix_datagram *d, void *buf, size_t n,
                                                blz_addr *from);
/** Future tier of blz_unix_datagram_recv_from. */
BLZ_API void blz_unix_datagram_recv_from_fut(blz_unix_datagram *d, void *buf, size_t n,
                                             blz_addr *from, blz_io_future *f);
/**
 * Like blz_unix_datagram_recv_from, but leaves the datagram queued: the next
 * receive (or peek) gets it again. Returns its length (truncated to `n`).
 */
BLZ_API ssize_t blz_unix_datagram_peek_from(blz_unix_datagram *d, void *buf, size_t n,
                                            blz_addr *from);
/** Try tier of blz_unix_datagram_peek_from: -EAGAIN when nothing is queued. */
BLZ_API ssize_t blz_unix_datagram_try_peek_from(blz_unix_datagram *d, void *buf, size_t n,
                                                blz_addr *from);
/** Future tier of blz_unix_datagram_peek_from; `buf` and `from` must outlive it. */
BLZ_API void blz_unix_datagram_peek_from_fut(blz_unix_datagram *d, void *buf, size_t n,
                                             blz_addr *from, blz_io_future *f);
/** Sends to the connected peer. */
BLZ_API ssize_t blz_unix_datagram_send(blz_unix_datagram *d, const void *buf, size_t n);
/** Try tier of blz_unix_datagram_send: -EAGAIN when the peer's queue is full. */
BLZ_API ssize_t blz_unix_datagram_try_send(blz_unix_datagram *d, const void *buf, size_t n);
/** Future tier of blz_unix_datagram_send. */
BLZ_API void blz_unix_datagram_send_fut(blz_unix_datagram *d, const void *buf, size_t n,
                                        blz_io_future *f);
/** Receives from the connected peer. */
BLZ_API ssize_t blz_unix_datagram_recv(blz_unix_datagram *d, void *buf, size_t n);
/** Try tier of blz_unix_datagram_recv: -EAGAIN when nothing is queued. */
BLZ_API ssize_t blz_unix_datagram_try_recv(blz_unix_datagram *d, void *buf, size_t n);
/** Future tier of blz_unix_datagram_recv. */
BLZ_API void blz_unix_datagram_recv_fut(blz_unix_datagram *d, void *buf, size_t n,
                                        blz_io_future *f);
/**
 * Who sent a Unix datagram: its address (an unnamed sender: family
 * BLZ_AF_UNIX with an empty path) and its credentials. `cred.pid` is 0 (uid
 * and gid (unsigned) -1) when the kernel attached none: the receiver had not
 * turned pass_cred on when the datagram was sent.
 */
typedef struct blz_unix_sender {
    blz_addr addr;
    blz_ucred cred;
} blz_unix_sender;

/**
 * Turns on (or off) credentials on datagrams `d` receives (SO_PASSCRED). The
 * kernel records them when a datagram is sent, so turn it on before peers
 * send: datagrams already queued keep "none". While on, an unbound `d`
 * that sends gets an autobound abstract name. 0 or -errno (-EINVAL for NULL).
 */
BLZ_API int blz_unix_datagram_set_pass_cred(blz_unix_datagram *d, bool on);
/**
 * Receives one datagram with its sender's address and credentials (pid,
 * uid, gid, as the kernel saw them at send time; see blz_unix_sender).
 * Returns its length (truncated to `n`), -EINVAL for a NULL `from`, or
 * -errno. Descriptors passed with the datagram are discarded by the kernel.
 */
BLZ_API ssize_t blz_unix_datagram_recv_cred(blz_unix_datagram *d, void *buf, size_t n,
                                            blz_unix_sender *from);
/** Try tier of blz_unix_datagram_recv_cred: -EAGAIN when nothing is queued. */
BLZ_API ssize_t blz_unix_datagram_try_recv_cred(blz_unix_datagram *d, void *buf, size_t n,
                                                blz_unix_sender *from);
/** Future tier of blz_unix_datagram_recv_cred; `buf` and `from` must outlive it. */
BLZ_API void blz_unix_datagram_recv_cred_fut(blz_unix_datagram *d, void *buf, size_t n,
                                             blz_unix_sender *from, blz_io_future *f);
/**
 * The credentials of the process that made the pair `d` belongs to
 * (SO_PEERCRED). Only a socket from blz_unix_datagram_pair has them (a
 * connected datagram socket does not): -ENOTCONN otherwise, -EINVAL for NULL.
 */
BLZ_API int blz_unix_datagram_peer_cred(const blz_unix_datagram *d, blz_ucred *out);
/** As blz_tcp_ready: BLZ_READABLE when a datagram (or an error) is queued,
 * BLZ_WRITABLE when the socket could send (on a connected socket: the peer's
 * queue has room). */
BLZ_API int blz_unix_datagram_ready(blz_unix_datagram *d, blz_interest interest);
/** As blz_tcp_try_ready. */
BLZ_API int blz_unix_datagram_try_ready(blz_unix_datagram *d, blz_interest interest);
/** As blz_tcp_ready_fut. */
BLZ_API void blz_unix_datagram_ready_fut(blz_unix_datagram *d, blz_interest interest,
                                         blz_io_future *f);
/** The caller's own system call on the socket (a sendmsg passing descriptors,
 * a recvmsg that takes them), as blz_tcp_try_io. */
BLZ_API long blz_unix_datagram_try_io(blz_unix_datagram *d, blz_interest interest, blz_io_fn fn,
                                      void *arg);
/** The await tier of blz_unix_datagram_try_io, as blz_tcp_io. */
BLZ_API long blz_unix_datagram_io(blz_unix_datagram *d, blz_interest interest, blz_io_fn fn,
                                  void *arg);
/** Future tier of blz_unix_datagram_io, as blz_tcp_io_fut. */
BLZ_API void blz_unix_datagram_io_fut(blz_unix_datagram *d, blz_interest interest, blz_io_fn fn,
                                      void *arg, blz_async_io_future *f);
/** The local address. */
BLZ_API int blz_unix_datagram_local_addr(const blz_unix_datagram *d, blz_addr *out);
/** Closes the socket. NULL is ignored. */
BLZ_API void blz_unix_datagram_close(blz_unix_datagram *d);

/* ======================================================================== */
/* Names                                                                      */
/* ======================================================================== */

/** The future of a name resolution. Caller-owned; fields private. */
typedef struct blz_resolve_future {
    blz_future base;       /**< result: addresses found (>= 1) or -errno */
    blz_join_future join_; /* the blocking job doing the lookup */
    void *job_;            /* shared with the job; freed by whichever finishes last */
    blz_addr *out_;
    size_t max_;
} blz_resolve_future;

/**
 * Resolves `host` (a name or a literal address) with the system resolver
 * (getaddrinfo: /etc/hosts, DNS, nsswitch) on the runtime's blocking pool, so
 * no worker ever blocks (blz_dns_resolve asks the name servers itself,
 * without a thread). Stores up to `max` addresses with port `port` in
 * `out`, IPv4 and IPv6 in the resolver's order. Returns how many (>= 1),
 * -ENOENT (no such name), -EAGAIN (temporary failure), -EINVAL, -ENOMEM,
 * -ESRCH (no runtime). Suspends the calling fiber; parks a foreign thread.
 * There is no try tier: a lookup always waits.
 */
BLZ_API int blz_resolve(const char *host, uint16_t port, blz_addr *out, size_t max);

/**
 * Future tier of blz_resolve: starts the lookup at once (inside a runtime).
 * Dropping the future lets the lookup finish in the background and discards
 * its answer. `out` must outlive the future.
 */
BLZ_API void blz_resolve_fut(const char *host, uint16_t port, blz_addr *out, size_t max,
                             blz_resolve_future *f);

/**
 * Resolves `host` and connects to each address in turn until one accepts.
 * Returns 0 and the stream, or the error of the last attempt (or of the
 * resolution). Suspends.
 */
BLZ_API int blz_tcp_connect_host(const char *host, uint16_t port, blz_tcp_stream **out);

/** How many resolved addresses blz_tcp_connect_host tries at most. */
#define BLZ_CONNECT_HOST_MAX 16

/** The future of blz_tcp_connect_host_fut. All fields but `base` are private. */
typedef struct blz_connect_host_future {
    blz_future base; /**< result: 0 (the stream is in *out) or -errno */
    blz_resolve_future resolve_;
    blz_io_future connect_;
    blz_addr addrs_[BLZ_CONNECT_HOST_MAX];
    int count_; /* addresses resolved; -1 while resolving */
    int next_;  /* the address being tried */
    blz_tcp_stream **out_;
} blz_connect_host_future;

/**
 * Future tier of blz_tcp_connect_host: starts the lookup at once (inside a
 * runtime), then tries each address in turn. Dropping it mid-way closes the
 * half-made connection and lets the lookup finish in the background.
 */
BLZ_API void blz_tcp_connect_host_fut(const char *host, uint16_t port, blz_tcp_stream **out,
                                      blz_connect_host_future *f);

/* ======================================================================== */
/* Native DNS                                                               */
/* ======================================================================== */

/*
 * A resolver that asks the name servers itself, over UDP (TCP when an
 * answer is truncated), from a task on the runtime: no thread blocks, and a
 * dropped lookup stops at once. It reads /etc/hosts first and then asks the
 * servers of /etc/resolv.conf, with its search list, ndots, timeout, rotate and
 * attempts, as "hosts: files dns" in nsswitch.conf would; other nsswitch
 * sources (mdns, myhostname, LDAP ...) are blz_resolve's.
 */

/** Where the native resolver looks; zeroed fields take the system's. */
typedef struct blz_dns_options {
    const char *resolv_conf; /**< path; NULL: /etc/resolv.conf */
    const char *hosts;       /**< path; NULL: /etc/hosts; "": no hosts file */
    const blz_addr *servers; /**< name servers with ports, instead of resolv.conf's */
    size_t nservers;         /**< how many in `servers` (at most 3 are used); 0: resolv.conf's */
    unsigned timeout_ms;     /**< per try; 0: resolv.conf's (5 s by default) */
    unsigned attempts;       /**< rounds over the servers; 0: resolv.conf's (2 by default) */
} blz_dns_options;

/** The future of a native lookup: the same as blz_resolve's. */
typedef blz_resolve_future blz_dns_future;

/**
 * Resolves `host` (a name or a literal address) natively. Stores up to `max`
 * addresses with port `port` in `out`: IPv6 first when this host can reach
 * IPv6 (a route to the first one exists), else IPv4 first; a name the hosts
 * file has gets the file's addresses in its order. `opts` may be NULL (the
 * system's configuration); it is copied, with the paths it names, so it need
 * not outlive the call (or the future).
 * Returns how many (>= 1); -ENOENT (no such name, or no addresses);
 * -ETIMEDOUT (no server answered); -ECONNREFUSED (nothing listens where the
 * last server should be); -EAGAIN (servers answered with a failure);
 * -EINVAL (NULL or malformed name, NULL `out`, `max` 0); -ENOMEM; -ESRCH
 * (no runtime). Suspends the calling fiber; parks a foreign thread.
 */
BLZ_API int blz_dns_resolve(const char *host, uint16_t port, const blz_dns_options *opts,
                            blz_addr *out, size_t max);

/**
 * Future tier of blz_dns_resolve: starts the lookup at once (inside a
 * runtime). Dropping the future stops the lookup. `out` must outlive it.
 */
BLZ_API void blz_dns_resolve_fut(const char *host, uint16_t port, const blz_dns_options *opts,
                                 blz_addr *out, size_t max, blz_dns_future *f);

#ifdef __cplusplus
}
#endif
#endif /* BLZ_NET_H */
