/*
 * Unix-domain sockets: streams, listeners and datagram sockets, as typed
 * wrappers over the socket object of net/sock.c. Paths starting with '@'
 * name the Linux abstract namespace.
 *
 * Invariants: every object here is a blz__sock of family BLZ_AF_UNIX; a
 * listener never removes its path (another process may own it by then).
 * Split halves are the socket's own (blz__sock_split), as for TCP.
 */
#include "core/future.h"
#include "net/sock.h"
#include "os/unix/sys.h"

#include <string.h>

#define SK(x) ((x) ? &(x)->sk : NULL)

static int
unix_addr(const char *path, blz_addr *a)
{
    if (!path) {
        return -EINVAL;
    }
    /* Accept both "unix:..." spellings and bare paths / "@names". Only the
     * whole prefix says which: a relative path may start with 'u' too. */
    if (strncmp(path, "unix:", 5) == 0) {
        int rc = blz_addr_parse(path, a);
        if (rc == 0 && blz_addr_get_family(a) != BLZ_AF_UNIX) {
            return -EINVAL;
        }
        return rc;
    }
    return blz_addr_from_unix(path, a);
}

/* ---- listener and streams ----------------------------------------------------- */

int
blz_unix_listen_addr(const blz_addr *addr, int backlog, blz_unix_listener **out)
{
    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    if (blz_addr_get_family(addr) != BLZ_AF_UNIX) {
        return -EINVAL;
    }
    blz__sock *sk;
    int rc =
        blz__sock_bind(addr, BLZ__SOCK_STREAM, backlog > 0 ? backlog : 0, BLZ__SK_LISTENER, &sk);
    if (rc == 0) {
        *out = (blz_unix_listener *) sk;
    }
    return rc;
}

int
blz_unix_listen(const char *path, blz_unix_listener **out)
{
    blz_addr a;
    int rc = unix_addr(path, &a);
    if (rc < 0) {
        if (out) {
            *out = NULL;
        }
        return rc;
    }
    return blz_unix_listen_addr(&a, 0, out);
}

int
blz_unix_listener_from_fd(int fd, blz_unix_listener **out)
{
    blz__sock *sk = NULL;
    int rc = blz__sock_adopt(fd, BLZ__SK_LISTENER, true, out ? &sk : NULL);
    if (out) {
        *out = (blz_unix_listener *) sk;
    }
    return rc;
}

int
blz_unix_stream_from_fd(int fd, blz_unix_stream **out)
{
    blz__sock *sk = NULL;
    int rc = blz__sock_adopt(fd, BLZ__SK_STREAM, true, out ? &sk : NULL);
    if (out) {
        *out = (blz_unix_stream *) sk;
    }
    return rc;
}

int
blz_unix_datagram_from_fd(int fd, blz_unix_datagram **out)
{
    blz__sock *sk = NULL;
    int rc = blz__sock_adopt(fd, BLZ__SK_DGRAM, true, out ? &sk : NULL);
    if (out) {
        *out = (blz_unix_datagram *) sk;
    }
    return rc;
}

int
blz_unix_listener_addr(const blz_unix_listener *l, blz_addr *out)
{
    return blz__sock_local_addr(SK(l), out);
}

int
blz_unix_accept(blz_unix_listener *l, blz_unix_stream **out, blz_addr *peer)
{
    return blz__sock_accept(SK(l), (blz__sock **) out, peer);
}

int
blz_unix_try_accept(blz_unix_listener *l, blz_unix_stream **out, blz_addr *peer)
{
    return (int) blz__sock_try(SK(l), BLZ__OP_S_ACCEPT, out, 0, peer);
}

void
blz_unix_accept_fut(blz_unix_listener *l, blz_unix_stream **out, blz_addr *peer,
                    blz_accept_future *f)
{
    blz__sock_accept_fut(SK(l), (blz__sock **) out, peer, f);
}

void
blz_unix_listener_close(blz_unix_listener *l)
{
    blz__sock_close(SK(l));
}

int
blz_unix_connect_addr_until(const blz_addr *addr, blz_instant deadline, blz_unix_stream **out)
{
    if (blz_addr_get_family(addr) != BLZ_AF_UNIX) {
        if (out) {
            *out = NULL;
        }
        return -EINVAL;
    }
    return blz__sock_connect(addr, deadline, (blz__sock **) out);
}

int
blz_unix_connect_addr(const blz_addr *addr, blz_unix_stream **out)
{
    return blz_unix_connect_addr_until(addr, UINT64_MAX, out);
}

int
blz_unix_connect_until(const char *path, blz_instant deadline, blz_unix_stream **out)
{
    blz_addr a;
    int rc = unix_addr(path, &a);
    if (rc < 0) {
        if (out) {
            *out = NULL;
        }
        return rc;
    }
    return blz_unix_connect_addr_until(&a, deadline, out);
}

int
blz_unix_connect(const char *path, blz_unix_stream **out)
{
    return blz_unix_connect_until(path, UINT64_MAX, out);
}

void
blz_unix_connect_fut(const blz_addr *addr, blz_unix_stream **out, blz_io_future *f)
{
    if (!f) {
        return;
    }
    blz__io_driver *d = blz__net_driver();
    if (blz_addr_get_family(addr) != BLZ_AF_UNIX || !out) {
        blz__io_future_ready(f, -EINVAL);
        return;
    }
    if (!d) {
        blz__io_future_ready(f, -ESRCH);
        return;
    }
    int fd = blz__sys_socket(BLZ_AF_UNIX, BLZ__SOCK_STREAM);
    if (fd < 0) {
        blz__io_future_ready(f, fd);
        return;
    }
    blz__sock_connect_fut(d, fd, BLZ_AF_UNIX, addr, true, (blz__sock **) out, f);
}

int
blz_unix_try_connect(const blz_addr *addr, blz_unix_stream **out)
{
    if (blz_addr_get_family(addr) != BLZ_AF_UNIX) {
        if (out) {
            *out = NULL;
        }
        return -EINVAL;
    }
    return blz__sock_try_connect(addr, (blz__sock **) out);
}

static int
make_pair(int type, int kind, blz__sock **a, blz__sock **b)
{
    if (!a || !b) {
        return -EINVAL;
    }
    *a = *b = NULL;
    blz__io_driver *d = blz__net_driver();
    if (!d) {
        return -ESRCH;
    }
    int fds[2];
    int rc = blz__sys_socketpair(BLZ_AF_UNIX, type, fds);
    if (rc < 0) {
        return rc;
    }
    rc = blz__sock_wrap(d, fds[0], kind, BLZ_AF_UNIX, BLZ__RD_READ | BLZ__RD_WRITE, a);
    if (rc < 0) {
        (void) blz__sys_close(fds[1]);
        return rc;
    }
    rc = blz__sock_wrap(d, fds[1], kind, BLZ_AF_UNIX, BLZ__RD_READ | BLZ__RD_WRITE, b);
    if (rc < 0) {
        blz__sock_close(*a);
        *a = NULL;
    }
    return rc;
}

int
blz_unix_pair(blz_unix_stream **a, blz_unix_stream **b)
{
    return make_pair(BLZ__SOCK_STREAM, BLZ__SK_STREAM, (blz__sock **) a, (blz__sock **) b);
}

ssize_t
blz_unix_read(blz_unix_stream *s, void *buf, size_t n)
{
    return blz__sock_await(SK(s), BLZ__OP_S_READ, buf, n, NULL);
}

int
blz_unix_ready(blz_unix_stream *s, blz_interest interest)
{
    return blz__sock_ready(SK(s), (int) interest);
}

int
blz_unix_try_ready(blz_unix_stream *s, blz_interest interest)
{
    return blz__sock_try_ready(SK(s), (int) interest);
}

long
blz_unix_try_io(blz_unix_stream *s, blz_interest interest, blz_io_fn fn, void *arg)
{
    return blz__sock_try_io(SK(s), (int) interest, fn, arg);
}

long
blz_unix_io(blz_unix_stream *s, blz_interest interest, blz_io_fn fn, void *arg)
{
    return blz__sock_io(SK(s), (int) interest, fn, arg);
}

void
blz_unix_io_fut(blz_unix_stream *s, blz_interest interest, blz_io_fn fn, void *arg,
                blz_async_io_future *f)
{
    blz__sock_io_fut(SK(s), (int) interest, fn, arg, f);
}

void
blz_unix_ready_fut(blz_unix_stream *s, blz_interest interest, blz_io_future *f)
{
    blz__sock_ready_fut(SK(s), (int) interest, f);
}

ssize_t
blz_unix_try_read(blz_unix_stream *s, void *buf, size_t n)
{
    return blz__sock_try(SK(s), BLZ__OP_S_READ, buf, n, NULL);
}

void
blz_unix_read_fut(blz_unix_stream *s, void *buf, size_t n, blz_io_future *f)
{
    blz__sock_fut(SK(s), BLZ__OP_S_READ, buf, n, NULL, f);
}

ssize_t
blz_unix_peek(blz_unix_stream *s, void *buf, size_t n)
{
    return blz__sock_await(SK(s), BLZ__OP_S_PEEK, buf, n, NULL);
}

ssize_t
blz_unix_try_peek(blz_unix_stream *s, void *buf, size_t n)
{
    return blz__sock_try(SK(s), BLZ__OP_S_PEEK, buf, n, NULL);
}

void
blz_unix_peek_fut(blz_unix_stream *s, void *buf, size_t n, blz_io_future *f)
{
    blz__sock_fut(SK(s), BLZ__OP_S_PEEK, buf, n, NULL, f);
}

ssize_t
blz_unix_write(blz_unix_stream *s, const void *buf, size_t n)
{
    return blz__sock_await(SK(s), BLZ__OP_S_WRITE, (void *) buf, n, NULL);
}

ssize_t
blz_unix_try_write(blz_unix_stream *s, const void *buf, size_t n)
{
    return blz__sock_try(SK(s), BLZ__OP_S_WRITE, (void *) buf, n, NULL);
}

void
blz_unix_write_fut(blz_unix_stream *s, const void *buf, size_t n, blz_io_future *f)
{
    blz__sock_fut(SK(s), BLZ__OP_S_WRITE, (void *) buf, n, NULL, f);
}

int
blz_unix_write_all(blz_unix_stream *s, const void *buf, size_t n)
{
    return (int) blz__sock_await(SK(s), BLZ__OP_S_WRITE_ALL, (void *) buf, n, NULL);
}

void
blz_unix_write_all_fut(blz_unix_stream *s, const void *buf, size_t n, blz_io_future *f)
{
    blz__sock_fut(SK(s), BLZ__OP_S_WRITE_ALL, (void *) buf, n, NULL, f);
}

ssize_t
blz_unix_readv(blz_unix_stream *s, const blz_iovec *iov, int iovcnt)
{
    return blz__sock_await(SK(s), BLZ__OP_S_READV, (void *) iov, blz__iov_count(iovcnt), NULL);
}

ssize_t
blz_unix_writev(blz_unix_stream *s, const blz_iovec *iov, int iovcnt)
{
    return blz__sock_await(SK(s), BLZ__OP_S_WRITEV, (void *) iov, blz__iov_count(iovcnt), NULL);
}

ssize_t
blz_unix_try_readv(blz_unix_stream *s, const blz_iovec *iov, int iovcnt)
{
    return blz__sock_try(SK(s), BLZ__OP_S_READV, (void *) iov, blz__iov_count(iovcnt), NULL);
}

void
blz_unix_readv_fut(blz_unix_stream *s, const blz_iovec *iov, int iovcnt, blz_io_future *f)
{
    blz__sock_fut(SK(s), BLZ__OP_S_READV, (void *) iov, blz__iov_count(iovcnt), NULL, f);
}

ssize_t
blz_unix_try_writev(blz_unix_stream *s, const blz_iovec *iov, int iovcnt)
{
    return blz__sock_try(SK(s), BLZ__OP_S_WRITEV, (void *) iov, blz__iov_count(iovcnt), NULL);
}

void
blz_unix_writev_fut(blz_unix_stream *s, const blz_iovec *iov, int iovcnt, blz_io_future *f)
{
    blz__sock_fut(SK(s), BLZ__OP_S_WRITEV, (void *) iov, blz__iov_count(iovcnt), NULL, f);
}

int
blz_unix_shutdown(blz_unix_stream *s, blz_shutdown_how how)
{
    return blz__sock_shutdown(SK(s), (int) how);
}

int
blz_unix_peer_cred(const blz_unix_stream *s, blz_ucred *out)
{
    if (!s || !out) {
        return -EINVAL;
    }
    return blz__sys_peercred(s->sk.src.fd, &out->pid, &out->uid, &out->gid);
}

int
blz_unix_local_addr(const blz_unix_stream *s, blz_addr *out)
{
    return blz__sock_local_addr(SK(s), out);
}

int
blz_unix_peer_addr(const blz_unix_stream *s, blz_addr *out)
{
    return blz__sock_peer_addr(SK(s), out);
}

void
blz_unix_close(blz_unix_stream *s)
{
    blz__sock_close(SK(s));
}

/* ---- split halves: the socket's own (net/sock.c), behind the Unix types ---------- */

int
blz_unix_split(blz_unix_stream *s, blz_unix_read_half **rd, blz_unix_write_half **wr)
{
    blz__sock_half *r, *w;
    int rc = rd && wr ? blz__sock_split(SK(s), &r, &w) : -EINVAL;
    if (rc == 0) {
        *rd = (blz_unix_read_half *) (void *) r;
        *wr = (blz_unix_write_half *) (void *) w;
    }
    return rc;
}

ssize_t
blz_unix_half_read(blz_unix_read_half *h, void *buf, size_t n)
{
    return blz__sock_await(BLZ__HALF_SK(h), BLZ__OP_S_READ, buf, n, NULL);
}

ssize_t
blz_unix_half_try_read(blz_unix_read_half *h, void *buf, size_t n)
{
    return blz__sock_try(BLZ__HALF_SK(h), BLZ__OP_S_READ, buf, n, NULL);
}

void
blz_unix_half_read_fut(blz_unix_read_half *h, void *buf, size_t n, blz_io_future *f)
{
    blz__sock_fut(BLZ__HALF_SK(h), BLZ__OP_S_READ, buf, n, NULL, f);
}

ssize_t
blz_unix_half_peek(blz_unix_read_half *h, void *buf, size_t n)
{
    return blz__sock_await(BLZ__HALF_SK(h), BLZ__OP_S_PEEK, buf, n, NULL);
}

ssize_t
blz_unix_half_try_peek(blz_unix_read_half *h, void *buf, size_t n)
{
    return blz__sock_try(BLZ__HALF_SK(h), BLZ__OP_S_PEEK, buf, n, NULL);
}

void
blz_unix_half_peek_fut(blz_unix_read_half *h, void *buf, size_t n, blz_io_future *f)
{
    blz__sock_fut(BLZ__HALF_SK(h), BLZ__OP_S_PEEK, buf, n, NULL, f);
}

ssize_t
blz_unix_half_write(blz_unix_write_half *h, const void *buf, size_t n)
{
    return blz__sock_await(BLZ__HALF_SK(h), BLZ__OP_S_WRITE, (void *) buf, n, NULL);
}

ssize_t
blz_unix_half_try_write(blz_unix_write_half *h, const void *buf, size_t n)
{
    return blz__sock_try(BLZ__HALF_SK(h), BLZ__OP_S_WRITE, (void *) buf, n, NULL);
}

void
blz_unix_half_write_fut(blz_unix_write_half *h, const void *buf, size_t n, blz_io_future *f)
{
    blz__sock_fut(BLZ__HALF_SK(h), BLZ__OP_S_WRITE, (void *) buf, n, NULL, f);
}

int
blz_unix_half_write_all(blz_unix_write_half *h, const void *buf, size_t n)
{
    return (int) blz__sock_await(BLZ__HALF_SK(h), BLZ__OP_S_WRITE_ALL, (void *) buf, n, NULL);
}

void
blz_unix_half_write_all_fut(blz_unix_write_half *h, const void *buf, size_t n, blz_io_future *f)
{
    blz__sock_fut(BLZ__HALF_SK(h), BLZ__OP_S_WRITE_ALL, (void *) buf, n, NULL, f);
}

ssize_t
blz_unix_half_readv(blz_unix_read_half *h, const blz_iovec *iov, int iovcnt)
{
    return blz__sock_await(BLZ__HALF_SK(h), BLZ__OP_S_READV, (void *) iov, blz__iov_count(iovcnt),
                           NULL);
}

ssize_t
blz_unix_half_try_readv(blz_unix_read_half *h, const blz_iovec *iov, int iovcnt)
{
    return blz__sock_try(BLZ__HALF_SK(h), BLZ__OP_S_READV, (void *) iov, blz__iov_count(iovcnt),
                         NULL);
}

void
blz_unix_half_readv_fut(blz_unix_read_half *h, const blz_iovec *iov, int iovcnt, blz_io_future *f)
{
    blz__sock_fut(BLZ__HALF_SK(h), BLZ__OP_S_READV, (void *) iov, blz__iov_count(iovcnt), NULL, f);
}

ssize_t
blz_unix_half_writev(blz_unix_write_half *h, const blz_iovec *iov, int iovcnt)
{
    return blz__sock_await(BLZ__HALF_SK(h), BLZ__OP_S_WRITEV, (void *) iov, blz__iov_count(iovcnt),
                           NULL);
}

ssize_t
blz_unix_half_try_writev(blz_unix_write_half *h, const blz_iovec *iov, int iovcnt)
{
    return blz__sock_try(BLZ__HALF_SK(h), BLZ__OP_S_WRITEV, (void *) iov, blz__iov_count(iovcnt),
                         NULL);
}

void
blz_unix_half_writev_fut(blz_unix_write_half *h, const blz_iovec *iov, int iovcnt, blz_io_future *f)
{
    blz__sock_fut(BLZ__HALF_SK(h), BLZ__OP_S_WRITEV, (void *) iov, blz__iov_count(iovcnt), NULL, f);
}

int
blz_unix_half_shutdown(blz_unix_write_half *h)
{
    return blz__sock_shutdown(BLZ__HALF_SK(h), BLZ_SHUT_WR);
}

blz_unix_stream *
blz_unix_read_half_stream(blz_unix_read_half *h)
{
    return (blz_unix_stream *) BLZ__HALF_SK(h);
}

blz_unix_stream *
blz_unix_write_half_stream(blz_unix_write_half *h)
{
    return (blz_unix_stream *) BLZ__HALF_SK(h);
}

void
blz_unix_read_half_close(blz_unix_read_half *h)
{
    blz__sock_half_close(BLZ__HALF(h));
}

void
blz_unix_write_half_close(blz_unix_write_half *h)
{
    blz__sock_half_close(BLZ__HALF(h));
}

/* ---- datagrams -------------------------------------------------------------------- */

int
blz_unix_datagram_bind(const char *path, blz_unix_datagram **out)
{
    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    blz_addr a;
    int rc = unix_addr(path, &a);
    if (rc < 0) {
        return rc;
    }
    blz__sock *sk;
    rc = blz__sock_bind(&a, BLZ__SOCK_DGRAM, -1, BLZ__SK_DGRAM, &sk);
    if (rc == 0) {
        *out = (blz_unix_datagram *) sk;
    }
    return rc;
}

int
blz_unix_datagram_unbound(blz_unix_datagram **out)
{
    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    blz__io_driver *d = blz__net_driver();
    if (!d) {
        return -ESRCH;
    }
    int fd = blz__sys_socket(BLZ_AF_UNIX, BLZ__SOCK_DGRAM);
    if (fd < 0) {
        return fd;
    }
    blz__sock *sk;
    int rc = blz__sock_wrap(d, fd, BLZ__SK_DGRAM, BLZ_AF_UNIX, BLZ__RD_READ | BLZ__RD_WRITE, &sk);
    if (rc == 0) {
        *out = (blz_unix_datagram *) sk;
    }
    return rc;
}

int
blz_unix_datagram_pair(blz_unix_datagram **a, blz_unix_datagram **b)
{
    return make_pair(BLZ__SOCK_DGRAM, BLZ__SK_DGRAM, (blz__sock **) a, (blz__sock **) b);
}

int
blz_unix_datagram_connect(blz_unix_datagram *d, const char *path)
{
    if (!d) {
        return -EINVAL;
    }
    blz_addr a;
    int rc = unix_addr(path, &a);
    if (rc < 0) {
        return rc;
    }
    return blz__sys_connect(d->sk.src.fd, &a);
}

ssize_t
blz_unix_datagram_send_to(blz_unix_datagram *d, const void *buf, size_t n, const blz_addr *to)
{
    if (!to) {
        return -EINVAL;
    }
    return blz__sock_await(SK(d), BLZ__OP_S_SEND_TO, (void *) buf, n, (void *) to);
}

ssize_t
blz_unix_datagram_try_send_to(blz_unix_datagram *d, const void *buf, size_t n, const blz_addr *to)
{
    if (!to) {
        return -EINVAL;
    }
    return blz__sock_try(SK(d), BLZ__OP_S_SEND_TO, (void *) buf, n, (void *) to);
}

void
blz_unix_datagram_send_to_fut(blz_unix_datagram *d, const void *buf, size_t n, const blz_addr *to,
                              blz_io_future *f)
{
    blz__sock_fut(to ? SK(d) : NULL, BLZ__OP_S_SEND_TO, (void *) buf, n, (void *) to, f);
}

ssize_t
blz_unix_datagram_recv_from(blz_unix_datagram *d, void *buf, size_t n, blz_addr *from)
{
    return blz__sock_await(SK(d), BLZ__OP_S_RECV_FROM, buf, n, from);
}

ssize_t
blz_unix_datagram_try_recv_from(blz_unix_datagram *d, void *buf, size_t n, blz_addr *from)
{
    return blz__sock_try(SK(d), BLZ__OP_S_RECV_FROM, buf, n, from);
}

void
blz_unix_datagram_recv_from_fut(blz_unix_datagram *d, void *buf, size_t n, blz_addr *from,
                                blz_io_future *f)
{
    blz__sock_fut(SK(d), BLZ__OP_S_RECV_FROM, buf, n, from, f);
}

ssize_t
blz_unix_datagram_peek_from(blz_unix_datagram *d, void *buf, size_t n, blz_addr *from)
{
    return blz__sock_await(SK(d), BLZ__OP_S_PEEK_FROM, buf, n, from);
}

ssize_t
blz_unix_datagram_try_peek_from(blz_unix_datagram *d, void *buf, size_t n, blz_addr *from)
{
    return blz__sock_try(SK(d), BLZ__OP_S_PEEK_FROM, buf, n, from);
}

void
blz_unix_datagram_peek_from_fut(blz_unix_datagram *d, void *buf, size_t n, blz_addr *from,
                                blz_io_future *f)
{
    blz__sock_fut(SK(d), BLZ__OP_S_PEEK_FROM, buf, n, from, f);
}

ssize_t
blz_unix_datagram_send(blz_unix_datagram *d, const void *buf, size_t n)
{
    return blz__sock_await(SK(d), BLZ__OP_S_SEND_TO, (void *) buf, n, NULL);
}

ssize_t
blz_unix_datagram_recv(blz_unix_datagram *d, void *buf, size_t n)
{
    return blz__sock_await(SK(d), BLZ__OP_S_RECV_FROM, buf, n, NULL);
}

ssize_t
blz_unix_datagram_try_send(blz_unix_datagram *d, const void *buf, size_t n)
{
    return blz__sock_try(SK(d), BLZ__OP_S_SEND_TO, (void *) buf, n, NULL);
}

void
blz_unix_datagram_send_fut(blz_unix_datagram *d, const void *buf, size_t n, blz_io_future *f)
{
    blz__sock_fut(SK(d), BLZ__OP_S_SEND_TO, (void *) buf, n, NULL, f);
}

ssize_t
blz_unix_datagram_try_recv(blz_unix_datagram *d, void *buf, size_t n)
{
    return blz__sock_try(SK(d), BLZ__OP_S_RECV_FROM, buf, n, NULL);
}

void
blz_unix_datagram_recv_fut(blz_unix_datagram *d, void *buf, size_t n, blz_io_future *f)
{
    blz__sock_fut(SK(d), BLZ__OP_S_RECV_FROM, buf, n, NULL, f);
}

int
blz_unix_datagram_set_pass_cred(blz_unix_datagram *d, bool on)
{
    return blz__sock_setopt(SK(d), BLZ__SO_PASSCRED, on ? 1 : 0);
}

ssize_t
blz_unix_datagram_recv_cred(blz_unix_datagram *d, void *buf, size_t n, blz_unix_sender *from)
{
    return blz__sock_await(from ? SK(d) : NULL, BLZ__OP_S_RECV_CRED, buf, n, from);
}

ssize_t
blz_unix_datagram_try_recv_cred(blz_unix_datagram *d, void *buf, size_t n, blz_unix_sender *from)
{
    return blz__sock_try(from ? SK(d) : NULL, BLZ__OP_S_RECV_CRED, buf, n, from);
}

void
blz_unix_datagram_recv_cred_fut(blz_unix_datagram *d, void *buf, size_t n, blz_unix_sender *from,
                                blz_io_future *f)
{
    blz__sock_fut(from ? SK(d) : NULL, BLZ__OP_S_RECV_CRED, buf, n, from, f);
}

int
blz_unix_datagram_peer_cred(const blz_unix_datagram *d, blz_ucred *out)
{
    if (!d || !out) {
        return -EINVAL;
    }
    int rc = blz__sys_peercred(d->sk.src.fd, &out->pid, &out->uid, &out->gid);
    if (rc == 0 && out->pid == 0) {
        return -ENOTCONN; /* the kernel's "no peer": only a pair records one */
    }
    return rc;
}

int
blz_unix_datagram_local_addr(const blz_unix_datagram *d, blz_addr *out)
{
    return blz__sock_local_addr(SK(d), out);
}

int
blz_unix_datagram_ready(blz_unix_datagram *d, blz_interest interest)
{
    return blz__sock_ready(SK(d), (int) interest);
}

int
blz_unix_datagram_try_ready(blz_unix_datagram *d, blz_interest interest)
{
    return blz__sock_try_ready(SK(d), (int) interest);
}

void
blz_unix_datagram_ready_fut(blz_unix_datagram *d, blz_interest interest, blz_io_future *f)
{
    blz__sock_ready_fut(SK(d), (int) interest, f);
}

long
blz_unix_datagram_try_io(blz_unix_datagram *d, blz_interest interest, blz_io_fn fn, void *arg)
{
    return blz__sock_try_io(SK(d), (int) interest, fn, arg);
}

long
blz_unix_datagram_io(blz_unix_datagram *d, blz_interest interest, blz_io_fn fn, void *arg)
{
    return blz__sock_io(SK(d), (int) interest, fn, arg);
}

void
blz_unix_datagram_io_fut(blz_unix_datagram *d, blz_interest interest, blz_io_fn fn, void *arg,
                         blz_async_io_future *f)
{
    blz__sock_io_fut(SK(d), (int) interest, fn, arg, f);
}

void
blz_unix_datagram_close(blz_unix_datagram *d)
{
    blz__sock_close(SK(d));
}
