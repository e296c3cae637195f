/*
 * TCP: listeners, streams, split halves and the socket builder, as typed
 * wrappers over the socket object of net/sock.c.
 *
 * Invariants:
 * - A blz_tcp_stream/listener is a blz__sock of kind STREAM/LISTENER.
 * - After blz_tcp_split the stream has two owner handles, one per half; the
 *   write half's close shuts the write direction first, so the peer sees EOF
 *   while the read half may still read. The mechanism is the socket's
 *   (blz__sock_split), shared with Unix streams.
 * - A blz_tcp_socket (builder) is a plain descriptor until it is consumed by
 *   listen or connect, which register it with the current runtime's driver.
 */
#include "core/alloc.h"
#include "core/future.h"
#include "net/sock.h"
#include "os/unix/sys.h"

#include <stdbool.h>
#include <string.h>

#define SK(x) ((x) ? &(x)->sk : NULL)

struct blz_tcp_socket {
    int fd;       /* owned until consumed */
    int family;   /* BLZ_AF_INET or BLZ_AF_INET6 */
    bool nodelay; /* applied to the connected stream (default true) */
};

static int
ip_family(const blz_addr *a)
{
    blz_addr_family f = blz_addr_get_family(a);
    return f == BLZ_AF_INET || f == BLZ_AF_INET6 ? (int) f : -EINVAL;
}

/* ---- listener ---------------------------------------------------------------- */

int
blz_tcp_listen_addr(const blz_addr *addr, int backlog, blz_tcp_listener **out)
{
    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    if (ip_family(addr) < 0) {
        return -EINVAL;
    }
    blz__sock *sk;
    int rc =
        blz__sock_bind(addr, BLZ__SOCK_STREAM, backlog > 0 ? backlog : 0, BLZ__SK_LISTENER, &sk);
    if (rc == 0) {
        *out = (blz_tcp_listener *) sk;
    }
    return rc;
}

int
blz_tcp_listen(const char *addr, blz_tcp_listener **out)
{
    blz_addr a;
    int rc = blz_addr_parse(addr, &a);
    if (rc < 0) {
        if (out) {
            *out = NULL;
        }
        return rc;
    }
    return blz_tcp_listen_addr(&a, 0, out);
}

int
blz_tcp_listener_from_fd(int fd, blz_tcp_listener **out)
{
    blz__sock *sk = NULL;
    int rc = blz__sock_adopt(fd, BLZ__SK_LISTENER, false, out ? &sk : NULL);
    if (out) {
        *out = (blz_tcp_listener *) sk;
    }
    return rc;
}

int
blz_tcp_stream_from_fd(int fd, blz_tcp_stream **out)
{
    blz__sock *sk = NULL;
    int rc = blz__sock_adopt(fd, BLZ__SK_STREAM, false, out ? &sk : NULL);
    if (out) {
        *out = (blz_tcp_stream *) sk;
    }
    return rc;
}

int
blz_tcp_listener_addr(const blz_tcp_listener *l, blz_addr *out)
{
    return blz__sock_local_addr(SK(l), out);
}

int
blz_tcp_accept(blz_tcp_listener *l, blz_tcp_stream **out, blz_addr *peer)
{
    return blz__sock_accept(SK(l), (blz__sock **) out, peer);
}

int
blz_tcp_try_accept(blz_tcp_listener *l, blz_tcp_stream **out, blz_addr *peer)
{
    return (int) blz__sock_try(SK(l), BLZ__OP_S_ACCEPT, out, 0, peer);
}

void
blz_tcp_accept_fut(blz_tcp_listener *l, blz_tcp_stream **out, blz_addr *peer, blz_accept_future *f)
{
    blz__sock_accept_fut(SK(l), (blz__sock **) out, peer, f);
}

void
blz_tcp_listener_close(blz_tcp_listener *l)
{
    blz__sock_close(SK(l));
}

/* ---- connect ----------------------------------------------------------------- */

int
blz_tcp_connect_addr_until(const blz_addr *addr, blz_instant deadline, blz_tcp_stream **out)
{
    if (ip_family(addr) < 0) {
        if (out) {
            *out = NULL;
        }
        return -EINVAL;
    }
    return blz__sock_connect(addr, deadline, (blz__sock **) out);
}

int
blz_tcp_connect_addr(const blz_addr *addr, blz_tcp_stream **out)
{
    return blz_tcp_connect_addr_until(addr, UINT64_MAX, out);
}

int
blz_tcp_connect_until(const char *addr, blz_instant deadline, blz_tcp_stream **out)
{
    blz_addr a;
    int rc = blz_addr_parse(addr, &a);
    if (rc < 0) {
        if (out) {
            *out = NULL;
        }
        return rc;
    }
    return blz_tcp_connect_addr_until(&a, deadline, out);
}

int
blz_tcp_connect(const char *addr, blz_tcp_stream **out)
{
    return blz_tcp_connect_until(addr, UINT64_MAX, out);
}

void
blz_tcp_connect_fut(const blz_addr *addr, blz_tcp_stream **out, blz_io_future *f)
{
    if (!f) {
        return;
    }
    int fam = ip_family(addr);
    blz__io_driver *d = blz__net_driver();
    if (fam < 0 || !out) {
        blz__io_future_ready(f, -EINVAL);
        return;
    }
    if (!d) {
        blz__io_future_ready(f, -ESRCH);
        return;
    }
    int fd = blz__sys_socket(fam, BLZ__SOCK_STREAM);
    if (fd < 0) {
        blz__io_future_ready(f, fd);
        return;
    }
    blz__sock_connect_fut(d, fd, fam, addr, true, (blz__sock **) out, f);
}

int
blz_tcp_try_connect(const blz_addr *addr, blz_tcp_stream **out)
{
    if (ip_family(addr) < 0) {
        if (out) {
            *out = NULL;
        }
        return -EINVAL;
    }
    return blz__sock_try_connect(addr, (blz__sock **) out);
}

int
blz_tcp_try_finish_connect(blz_tcp_stream *s)
{
    return (int) blz__sock_try(SK(s), BLZ__OP_S_FINISH_CONNECT, NULL, 0, NULL);
}

void
blz_tcp_finish_connect_fut(blz_tcp_stream *s, blz_io_future *f)
{
    blz__sock_fut(SK(s), BLZ__OP_S_FINISH_CONNECT, NULL, 0, NULL, f);
}

int
blz_tcp_finish_connect(blz_tcp_stream *s)
{
    return (int) blz__sock_await(SK(s), BLZ__OP_S_FINISH_CONNECT, NULL, 0, NULL);
}

/* ---- stream I/O ----------------------------------------------------------------- */

ssize_t
blz_tcp_read(blz_tcp_stream *s, void *buf, size_t n)
{
    return blz__sock_await(SK(s), BLZ__OP_S_READ, buf, n, NULL);
}

int
blz_tcp_ready(blz_tcp_stream *s, blz_interest interest)
{
    return blz__sock_ready(SK(s), (int) interest);
}

int
blz_tcp_try_ready(blz_tcp_stream *s, blz_interest interest)
{
    return blz__sock_try_ready(SK(s), (int) interest);
}

long
blz_tcp_try_io(blz_tcp_stream *s, blz_interest interest, blz_io_fn fn, void *arg)
{
    return blz__sock_try_io(SK(s), (int) interest, fn, arg);
}

long
blz_tcp_io(blz_tcp_stream *s, blz_interest interest, blz_io_fn fn, void *arg)
{
    return blz__sock_io(SK(s), (int) interest, fn, arg);
}

void
blz_tcp_io_fut(blz_tcp_stream *s, blz_interest interest, blz_io_fn fn, void *arg,
               blz_async_io_future *f)
{
    blz__sock_io_fut(SK(s), (int) interest, fn, arg, f);
}

void
blz_tcp_ready_fut(blz_tcp_stream *s, blz_interest interest, blz_io_future *f)
{
    blz__sock_ready_fut(SK(s), (int) interest, f);
}

ssize_t
blz_tcp_try_read(blz_tcp_stream *s, void *buf, size_t n)
{
    return blz__sock_try(SK(s), BLZ__OP_S_READ, buf, n, NULL);
}

void
blz_tcp_read_fut(blz_tcp_stream *s, void *buf, size_t n, blz_io_future *f)
{
    blz__sock_fut(SK(s), BLZ__OP_S_READ, buf, n, NULL, f);
}

ssize_t
blz_tcp_peek(blz_tcp_stream *s, void *buf, size_t n)
{
    return blz__sock_await(SK(s), BLZ__OP_S_PEEK, buf, n, NULL);
}

ssize_t
blz_tcp_try_peek(blz_tcp_stream *s, void *buf, size_t n)
{
    return blz__sock_try(SK(s), BLZ__OP_S_PEEK, buf, n, NULL);
}

void
blz_tcp_peek_fut(blz_tcp_stream *s, void *buf, size_t n, blz_io_future *f)
{
    blz__sock_fut(SK(s), BLZ__OP_S_PEEK, buf, n, NULL, f);
}

ssize_t
blz_tcp_readv(blz_tcp_stream *s, const blz_iovec *iov, int iovcnt)
{
    return blz__sock_await(SK(s), BLZ__OP_S_READV, (void *) iov, blz__iov_count(iovcnt), NULL);
}

ssize_t
blz_tcp_try_readv(blz_tcp_stream *s, const blz_iovec *iov, int iovcnt)
{
    return blz__sock_try(SK(s), BLZ__OP_S_READV, (void *) iov, blz__iov_count(iovcnt), NULL);
}

void
blz_tcp_readv_fut(blz_tcp_stream *s, const blz_iovec *iov, int iovcnt, blz_io_future *f)
{
    blz__sock_fut(SK(s), BLZ__OP_S_READV, (void *) iov, blz__iov_count(iovcnt), NULL, f);
}

ssize_t
blz_tcp_write(blz_tcp_stream *s, const void *buf, size_t n)
{
    return blz__sock_await(SK(s), BLZ__OP_S_WRITE, (void *) buf, n, NULL);
}

ssize_t
blz_tcp_try_write(blz_tcp_stream *s, const void *buf, size_t n)
{
    return blz__sock_try(SK(s), BLZ__OP_S_WRITE, (void *) buf, n, NULL);
}

void
blz_tcp_write_fut(blz_tcp_stream *s, const void *buf, size_t n, blz_io_future *f)
{
    blz__sock_fut(SK(s), BLZ__OP_S_WRITE, (void *) buf, n, NULL, f);
}

ssize_t
blz_tcp_writev(blz_tcp_stream *s, const blz_iovec *iov, int iovcnt)
{
    return blz__sock_await(SK(s), BLZ__OP_S_WRITEV, (void *) iov, blz__iov_count(iovcnt), NULL);
}

ssize_t
blz_tcp_try_writev(blz_tcp_stream *s, const blz_iovec *iov, int iovcnt)
{
    return blz__sock_try(SK(s), BLZ__OP_S_WRITEV, (void *) iov, blz__iov_count(iovcnt), NULL);
}

void
blz_tcp_writev_fut(blz_tcp_stream *s, const blz_iovec *iov, int iovcnt, blz_io_future *f)
{
    blz__sock_fut(SK(s), BLZ__OP_S_WRITEV, (void *) iov, blz__iov_count(iovcnt), NULL, f);
}

int
blz_tcp_write_all(blz_tcp_stream *s, const void *buf, size_t n)
{
    return (int) blz__sock_await(SK(s), BLZ__OP_S_WRITE_ALL, (void *) buf, n, NULL);
}

void
blz_tcp_write_all_fut(blz_tcp_stream *s, const void *buf, size_t n, blz_io_future *f)
{
    blz__sock_fut(SK(s), BLZ__OP_S_WRITE_ALL, (void *) buf, n, NULL, f);
}

int
blz_tcp_shutdown(blz_tcp_stream *s, blz_shutdown_how how)
{
    return blz__sock_shutdown(SK(s), (int) how);
}

/* ---- options and addresses -------------------------------------------------------- */

int
blz_tcp_set_nodelay(blz_tcp_stream *s, bool on)
{
    return blz__sock_setopt(SK(s), BLZ__TCP_NODELAY, on);
}

int
blz_tcp_nodelay(blz_tcp_stream *s, bool *on)
{
    if (!s || !on) {
        return -EINVAL;
    }
    int v = 0;
    int rc = blz__sys_getopt(s->sk.src.fd, BLZ__TCP_NODELAY, &v);
    if (rc == 0) {
        *on = v != 0;
    }
    return rc;
}

/* `d` in whole seconds, rounded up, within 1..32767 (the kernel's keepalive
 * limit). Rounds without adding to `d`, which may be as large as INT64_MAX. */
static int
whole_secs(blz_duration d)
{
    int64_t s = d / BLZ_NS_PER_S + (d % BLZ_NS_PER_S > 0);
    return s < 1 ? 1 : s > 0x7fff ? 0x7fff : (int) s;
}

int
blz_tcp_set_keepalive(blz_tcp_stream *s, bool on, blz_duration idle)
{
    int rc = blz__sock_setopt(SK(s), BLZ__SO_KEEPALIVE, on);
    if (rc == 0 && on && idle > 0) {
        rc = blz__sock_setopt(SK(s), BLZ__TCP_KEEPIDLE, whole_secs(idle));
    }
    return rc;
}

int
blz_tcp_keepalive(blz_tcp_stream *s, bool *on, blz_duration *idle)
{
    if (!s || !on || !idle) {
        return -EINVAL;
    }
    int v = 0, secs = 0;
    int rc = blz__sys_getopt(s->sk.src.fd, BLZ__SO_KEEPALIVE, &v);
    if (rc == 0) {
        rc = blz__sys_getopt(s->sk.src.fd, BLZ__TCP_KEEPIDLE, &secs);
    }
    if (rc == 0) {
        *on = v != 0;
        *idle = blz_secs(secs);
    }
    return rc;
}

int
blz_tcp_set_keepalive_probes(blz_tcp_stream *s, blz_duration interval, int count)
{
    if (!s || interval <= 0 || count < 1 || count > 127) {
        return -EINVAL;
    }
    int rc = blz__sock_setopt(SK(s), BLZ__TCP_KEEPINTVL, whole_secs(interval));
    return rc == 0 ? blz__sock_setopt(SK(s), BLZ__TCP_KEEPCNT, count) : rc;
}

int
blz_tcp_keepalive_probes(blz_tcp_stream *s, blz_duration *interval, int *count)
{
    if (!s || !interval || !count) {
        return -EINVAL;
    }
    int secs = 0;
    int rc = blz__sys_getopt(s->sk.src.fd, BLZ__TCP_KEEPINTVL, &secs);
    if (rc == 0) {
        rc = blz__sys_getopt(s->sk.src.fd, BLZ__TCP_KEEPCNT, count);
    }
    if (rc == 0) {
        *interval = blz_secs(secs);
    }
    return rc;
}

int
blz_tcp_set_linger(blz_tcp_stream *s, bool on, blz_duration d)
{
    /* A negative time is refused rather than taken as 0: linger 0 makes the
     * close a reset that drops what is still unsent. */
    if (!s || (on && d < 0)) {
        return -EINVAL;
    }
    int secs = d <= 0 ? 0 : whole_secs(d);
    return blz__sys_set_linger(s->sk.src.fd, on, secs);
}

int
blz_tcp_linger(blz_tcp_stream *s, bool *on, blz_duration *d)
{
    if (!s || !on || !d) {
        return -EINVAL;
    }
    int secs = 0;
    int rc = blz__sys_get_linger(s->sk.src.fd, on, &secs);
    if (rc == 0) {
        *d = blz_secs(secs);
    }
    return rc;
}

int
blz_tcp_local_addr(const blz_tcp_stream *s, blz_addr *out)
{
    return blz__sock_local_addr(SK(s), out);
}

int
blz_tcp_set_ttl(blz_tcp_stream *s, int ttl)
{
    return blz__sock_set_ttl(SK(s), ttl);
}

int
blz_tcp_ttl(blz_tcp_stream *s, int *ttl)
{
    return blz__sock_ttl(SK(s), ttl);
}

int
blz_tcp_peer_addr(const blz_tcp_stream *s, blz_addr *out)
{
    return blz__sock_peer_addr(SK(s), out);
}

void
blz_tcp_close(blz_tcp_stream *s)
{
    blz__sock_close(SK(s));
}

/* ---- split halves: the socket's own (net/sock.c), behind the TCP types ------------- */

int
blz_tcp_split(blz_tcp_stream *s, blz_tcp_read_half **rd, blz_tcp_write_half **wr)
{
    blz__sock_half *r, *w;
    int rc = rd && wr ? blz__sock_split(SK(s), &r, &w) : -EINVAL;
    if (rc == 0) {
        *rd = (blz_tcp_read_half *) (void *) r;
        *wr = (blz_tcp_write_half *) (void *) w;
    }
    return rc;
}

ssize_t
blz_tcp_half_read(blz_tcp_read_half *h, void *buf, size_t n)
{
    return blz__sock_await(BLZ__HALF_SK(h), BLZ__OP_S_READ, buf, n, NULL);
}

ssize_t
blz_tcp_half_try_read(blz_tcp_read_half *h, void *buf, size_t n)
{
    return blz__sock_try(BLZ__HALF_SK(h), BLZ__OP_S_READ, buf, n, NULL);
}

void
blz_tcp_half_read_fut(blz_tcp_read_half *h, void *buf, size_t n, blz_io_future *f)
{
    blz__sock_fut(BLZ__HALF_SK(h), BLZ__OP_S_READ, buf, n, NULL, f);
}

ssize_t
blz_tcp_half_peek(blz_tcp_read_half *h, void *buf, size_t n)
{
    return blz__sock_await(BLZ__HALF_SK(h), BLZ__OP_S_PEEK, buf, n, NULL);
}

ssize_t
blz_tcp_half_try_peek(blz_tcp_read_half *h, void *buf, size_t n)
{
    return blz__sock_try(BLZ__HALF_SK(h), BLZ__OP_S_PEEK, buf, n, NULL);
}

void
blz_tcp_half_peek_fut(blz_tcp_read_half *h, void *buf, size_t n, blz_io_future *f)
{
    blz__sock_fut(BLZ__HALF_SK(h), BLZ__OP_S_PEEK, buf, n, NULL, f);
}

ssize_t
blz_tcp_half_write(blz_tcp_write_half *h, const void *buf, size_t n)
{
    return blz__sock_await(BLZ__HALF_SK(h), BLZ__OP_S_WRITE, (void *) buf, n, NULL);
}

ssize_t
blz_tcp_half_try_write(blz_tcp_write_half *h, const void *buf, size_t n)
{
    return blz__sock_try(BLZ__HALF_SK(h), BLZ__OP_S_WRITE, (void *) buf, n, NULL);
}

void
blz_tcp_half_write_fut(blz_tcp_write_half *h, const void *buf, size_t n, blz_io_future *f)
{
    blz__sock_fut(BLZ__HALF_SK(h), BLZ__OP_S_WRITE, (void *) buf, n, NULL, f);
}

int
blz_tcp_half_write_all(blz_tcp_write_half *h, const void *buf, size_t n)
{
    return (int) blz__sock_await(BLZ__HALF_SK(h), BLZ__OP_S_WRITE_ALL, (void *) buf, n, NULL);
}

void
blz_tcp_half_write_all_fut(blz_tcp_write_half *h, const void *buf, size_t n, blz_io_future *f)
{
    blz__sock_fut(BLZ__HALF_SK(h), BLZ__OP_S_WRITE_ALL, (void *) buf, n, NULL, f);
}

ssize_t
blz_tcp_half_readv(blz_tcp_read_half *h, const blz_iovec *iov, int iovcnt)
{
    return blz__sock_await(BLZ__HALF_SK(h), BLZ__OP_S_READV, (void *) iov, blz__iov_count(iovcnt),
                           NULL);
}

ssize_t
blz_tcp_half_try_readv(blz_tcp_read_half *h, const blz_iovec *iov, int iovcnt)
{
    return blz__sock_try(BLZ__HALF_SK(h), BLZ__OP_S_READV, (void *) iov, blz__iov_count(iovcnt),
                         NULL);
}

void
blz_tcp_half_readv_fut(blz_tcp_read_half *h, const blz_iovec *iov, int iovcnt, blz_io_future *f)
{
    blz__sock_fut(BLZ__HALF_SK(h), BLZ__OP_S_READV, (void *) iov, blz__iov_count(iovcnt), NULL, f);
}

ssize_t
blz_tcp_half_writev(blz_tcp_write_half *h, const blz_iovec *iov, int iovcnt)
{
    return blz__sock_await(BLZ__HALF_SK(h), BLZ__OP_S_WRITEV, (void *) iov, blz__iov_count(iovcnt),
                           NULL);
}

ssize_t
blz_tcp_half_try_writev(blz_tcp_write_half *h, const blz_iovec *iov, int iovcnt)
{
    return blz__sock_try(BLZ__HALF_SK(h), BLZ__OP_S_WRITEV, (void *) iov, blz__iov_count(iovcnt),
                         NULL);
}

void
blz_tcp_half_writev_fut(blz_tcp_write_half *h, const blz_iovec *iov, int iovcnt, blz_io_future *f)
{
    blz__sock_fut(BLZ__HALF_SK(h), BLZ__OP_S_WRITEV, (void *) iov, blz__iov_count(iovcnt), NULL, f);
}

int
blz_tcp_half_shutdown(blz_tcp_write_half *h)
{
    return blz__sock_shutdown(BLZ__HALF_SK(h), BLZ_SHUT_WR);
}

blz_tcp_stream *
blz_tcp_read_half_stream(blz_tcp_read_half *h)
{
    return (blz_tcp_stream *) BLZ__HALF_SK(h);
}

blz_tcp_stream *
blz_tcp_write_half_stream(blz_tcp_write_half *h)
{
    return (blz_tcp_stream *) BLZ__HALF_SK(h);
}

void
blz_tcp_read_half_close(blz_tcp_read_half *h)
{
    blz__sock_half_close(BLZ__HALF(h));
}

void
blz_tcp_write_half_close(blz_tcp_write_half *h)
{
    blz__sock_half_close(BLZ__HALF(h));
}

/* ---- socket builder ------------------------------------------------------------------ */

int
blz_tcp_socket_new(blz_addr_family family, blz_tcp_socket **out)
{
    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    if (family != BLZ_AF_INET && family != BLZ_AF_INET6) {
        return -EINVAL;
    }
    blz_tcp_socket *s = blz__calloc(1, sizeof *s);
    if (!s) {
        return -ENOMEM;
    }
    s->fd = blz__sys_socket(family, BLZ__SOCK_STREAM);
    if (s->fd < 0) {
        int err = s->fd;
        blz__free(s);
        return err;
    }
    s->family = family;
    s->nodelay = true; /* the default of every TCP stream */
    *out = s;
    return 0;
}

int
blz_tcp_socket_set_reuseaddr(blz_tcp_socket *s, bool on)
{
    return s ? blz__sys_setopt(s->fd, BLZ__SO_REUSEADDR, on) : -EINVAL;
}

int
blz_tcp_socket_set_reuseport(blz_tcp_socket *s, bool on)
{
    return s ? blz__sys_setopt(s->fd, BLZ__SO_REUSEPORT, on) : -EINVAL;
}

int
blz_tcp_socket_set_send_buffer_size(blz_tcp_socket *s, size_t size)
{
    if (!s || size == 0 || size > 0x7fffffff) {
        return -EINVAL;
    }
    return blz__sys_setopt(s->fd, BLZ__SO_SNDBUF, (int) size);
}

int
blz_tcp_socket_set_recv_buffer_size(blz_tcp_socket *s, size_t size)
{
    if (!s || size == 0 || size > 0x7fffffff) {
        return -EINVAL;
    }
    return blz__sys_setopt(s->fd, BLZ__SO_RCVBUF, (int) size);
}

int
blz_tcp_socket_set_nodelay(blz_tcp_socket *s, bool on)
{
    if (!s) {
        return -EINVAL;
    }
    int rc = blz__sys_setopt(s->fd, BLZ__TCP_NODELAY, on);
    if (rc == 0) {
        s->nodelay = on;
    }
    return rc;
}

int
blz_tcp_socket_bind(blz_tcp_socket *s, const blz_addr *addr)
{
    if (!s || (int) blz_addr_get_family(addr) != s->family) {
        return -EINVAL;
    }
    return blz__sys_bind(s->fd, addr);
}

int
blz_tcp_socket_local_addr(const blz_tcp_socket *s, blz_addr *out)
{
    return s && out ? blz__sys_sockname(s->fd, out) : -EINVAL;
}

int
blz_tcp_socket_listen(blz_tcp_socket *s, int backlog, blz_tcp_listener **out)
{
    if (!s || !out) {
        blz_tcp_socket_close(s);
        return -EINVAL;
    }
    *out = NULL;
    blz__io_driver *d = blz__net_driver();
    int fd = s->fd;
    int fam = s->family;
    blz__free(s);
    if (!d) {
        (void) blz__sys_close(fd);
        return -ESRCH;
    }
    int rc = blz__sys_listen(fd, backlog > 0 ? backlog : BLZ_LISTEN_BACKLOG);
    if (rc < 0) {
        (void) blz__sys_close(fd);
        return rc;
    }
    blz__sock *sk;
    rc = blz__sock_wrap(d, fd, BLZ__SK_LISTENER, fam, BLZ__RD_READ | BLZ__RD_WRITE, &sk);
    if (rc == 0) {
        *out = (blz_tcp_listener *) sk;
    }
    return rc;
}

void
blz_tcp_socket_connect_fut(blz_tcp_socket *s, const blz_addr *addr, blz_tcp_stream **out,
                           blz_io_future *f)
{
    if (!f) {
        blz_tcp_socket_close(s); /* consumed all the same: nothing else would free it */
        return;
    }
    if (!s || !out || (int) blz_addr_get_family(addr) != s->family) {
        blz_tcp_socket_close(s);
        blz__io_future_ready(f, -EINVAL);
        return;
    }
    *out = NULL;
    blz__io_driver *d = blz__net_driver();
    int fd = s->fd;
    int fam = s->family;
    bool nodelay = s->nodelay;
    blz__free(s);
    if (!d) {
        (void) blz__sys_close(fd);
        blz__io_future_ready(f, -ESRCH);
        return;
    }
    blz__sock_connect_fut(d, fd, fam, addr, nodelay, (blz__sock **) out, f);
}

int
blz_tcp_socket_connect(blz_tcp_socket *s, const blz_addr *addr, blz_tcp_stream **out)
{
    blz_io_future f;
    blz_tcp_socket_connect_fut(s, addr, out, &f);
    int r = blz_await(&f.base);
    if (r == -EDEADLK) {
        blz_future_drop(&f.base);
    }
    return r;
}

void
blz_tcp_socket_close(blz_tcp_socket *s)
{
    if (!s) {
        return;
    }
    (void) blz__sys_close(s->fd);
    blz__free(s);
}
