/*
 * UDP sockets: typed wrappers over the socket object of net/sock.c.
 *
 * Invariants: a blz_udp_socket is a blz__sock of kind DGRAM and family
 * IPv4 or IPv6, bound at creation. Datagrams are sent whole or not at all;
 * a receive buffer smaller than the datagram truncates it (the rest is lost,
 * as with recvfrom).
 */
#include "net/sock.h"
#include "os/unix/sys.h"

#define SK(x) ((x) ? &(x)->sk : NULL)

int
blz_udp_bind_addr(const blz_addr *addr, blz_udp_socket **out)
{
    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    blz_addr_family f = blz_addr_get_family(addr);
    if (f != BLZ_AF_INET && f != BLZ_AF_INET6) {
        return -EINVAL;
    }
    blz__sock *sk;
    int rc = blz__sock_bind(addr, BLZ__SOCK_DGRAM, -1, BLZ__SK_DGRAM, &sk);
    if (rc == 0) {
        *out = (blz_udp_socket *) sk;
    }
    return rc;
}

int
blz_udp_bind(const char *addr, blz_udp_socket **out)
{
    blz_addr a;
    int rc = blz_addr_parse(addr, &a);
    if (rc < 0) {
        if (out) {
            *out = NULL;
        }
        return rc;
    }
    return blz_udp_bind_addr(&a, out);
}

int
blz_udp_from_fd(int fd, blz_udp_socket **out)
{
    blz__sock *sk = NULL;
    int rc = blz__sock_adopt(fd, BLZ__SK_DGRAM, false, out ? &sk : NULL);
    if (out) {
        *out = (blz_udp_socket *) sk;
    }
    return rc;
}

int
blz_udp_connect(blz_udp_socket *u, const blz_addr *peer)
{
    if (!u || !peer) {
        return -EINVAL;
    }
    /* A datagram connect only records the peer: it never waits. */
    return blz__sys_connect(u->sk.src.fd, peer);
}

ssize_t
blz_udp_send_to(blz_udp_socket *u, const void *buf, size_t n, const blz_addr *to)
{
    if (!to) {
        return -EINVAL;
    }
    return blz__sock_await(SK(u), BLZ__OP_S_SEND_TO, (void *) buf, n, (void *) to);
}

ssize_t
blz_udp_try_send_to(blz_udp_socket *u, const void *buf, size_t n, const blz_addr *to)
{
    if (!to) {
        return -EINVAL;
    }
    return blz__sock_try(SK(u), BLZ__OP_S_SEND_TO, (void *) buf, n, (void *) to);
}

void
blz_udp_send_to_fut(blz_udp_socket *u, const void *buf, size_t n, const blz_addr *to,
                    blz_io_future *f)
{
    blz__sock_fut(to ? SK(u) : NULL, BLZ__OP_S_SEND_TO, (void *) buf, n, (void *) to, f);
}

ssize_t
blz_udp_recv_from(blz_udp_socket *u, void *buf, size_t n, blz_addr *from)
{
    return blz__sock_await(SK(u), BLZ__OP_S_RECV_FROM, buf, n, from);
}

ssize_t
blz_udp_try_recv_from(blz_udp_socket *u, void *buf, size_t n, blz_addr *from)
{
    return blz__sock_try(SK(u), BLZ__OP_S_RECV_FROM, buf, n, from);
}

void
blz_udp_recv_from_fut(blz_udp_socket *u, void *buf, size_t n, blz_addr *from, blz_io_future *f)
{
    blz__sock_fut(SK(u), BLZ__OP_S_RECV_FROM, buf, n, from, f);
}

ssize_t
blz_udp_peek_from(blz_udp_socket *u, void *buf, size_t n, blz_addr *from)
{
    return blz__sock_await(SK(u), BLZ__OP_S_PEEK_FROM, buf, n, from);
}

ssize_t
blz_udp_try_peek_from(blz_udp_socket *u, void *buf, size_t n, blz_addr *from)
{
    return blz__sock_try(SK(u), BLZ__OP_S_PEEK_FROM, buf, n, from);
}

void
blz_udp_peek_from_fut(blz_udp_socket *u, void *buf, size_t n, blz_addr *from, blz_io_future *f)
{
    blz__sock_fut(SK(u), BLZ__OP_S_PEEK_FROM, buf, n, from, f);
}

ssize_t
blz_udp_send(blz_udp_socket *u, const void *buf, size_t n)
{
    return blz__sock_await(SK(u), BLZ__OP_S_SEND_TO, (void *) buf, n, NULL);
}

ssize_t
blz_udp_try_send(blz_udp_socket *u, const void *buf, size_t n)
{
    return blz__sock_try(SK(u), BLZ__OP_S_SEND_TO, (void *) buf, n, NULL);
}

void
blz_udp_send_fut(blz_udp_socket *u, const void *buf, size_t n, blz_io_future *f)
{
    blz__sock_fut(SK(u), BLZ__OP_S_SEND_TO, (void *) buf, n, NULL, f);
}

ssize_t
blz_udp_recv(blz_udp_socket *u, void *buf, size_t n)
{
    return blz__sock_await(SK(u), BLZ__OP_S_RECV_FROM, buf, n, NULL);
}

int
blz_udp_ready(blz_udp_socket *u, blz_interest interest)
{
    return blz__sock_ready(SK(u), (int) interest);
}

int
blz_udp_try_ready(blz_udp_socket *u, blz_interest interest)
{
    return blz__sock_try_ready(SK(u), (int) interest);
}

long
blz_udp_try_io(blz_udp_socket *u, blz_interest interest, blz_io_fn fn, void *arg)
{
    return blz__sock_try_io(SK(u), (int) interest, fn, arg);
}

long
blz_udp_io(blz_udp_socket *u, blz_interest interest, blz_io_fn fn, void *arg)
{
    return blz__sock_io(SK(u), (int) interest, fn, arg);
}

void
blz_udp_io_fut(blz_udp_socket *u, blz_interest interest, blz_io_fn fn, void *arg,
               blz_async_io_future *f)
{
    blz__sock_io_fut(SK(u), (int) interest, fn, arg, f);
}

void
blz_udp_ready_fut(blz_udp_socket *u, blz_interest interest, blz_io_future *f)
{
    blz__sock_ready_fut(SK(u), (int) interest, f);
}

ssize_t
blz_udp_try_recv(blz_udp_socket *u, void *buf, size_t n)
{
    return blz__sock_try(SK(u), BLZ__OP_S_RECV_FROM, buf, n, NULL);
}

void
blz_udp_recv_fut(blz_udp_socket *u, void *buf, size_t n, blz_io_future *f)
{
    blz__sock_fut(SK(u), BLZ__OP_S_RECV_FROM, buf, n, NULL, f);
}

int
blz_udp_set_broadcast(blz_udp_socket *u, bool on)
{
    return blz__sock_setopt(SK(u), BLZ__SO_BROADCAST, on);
}

int
blz_udp_set_gro(blz_udp_socket *u, bool on)
{
    return blz__sock_setopt(SK(u), BLZ__UDP_GRO, on);
}

int
blz_udp_set_ttl(blz_udp_socket *u, int ttl)
{
    return blz__sock_set_ttl(SK(u), ttl);
}

int
blz_udp_ttl(blz_udp_socket *u, int *ttl)
{
    return blz__sock_ttl(SK(u), ttl);
}

int
blz_udp_set_multicast_ttl(blz_udp_socket *u, int ttl)
{
    if (ttl < 0 || ttl > 255) {
        return -EINVAL;
    }
    return blz__sock_setopt(SK(u), BLZ__IP_MULTICAST_TTL, ttl);
}

int
blz_udp_set_multicast_loop(blz_udp_socket *u, bool on)
{
    return blz__sock_setopt(SK(u), BLZ__IP_MULTICAST_LOOP, on);
}

int
blz_udp_join_multicast(blz_udp_socket *u, const blz_addr *group, unsigned ifindex)
{
    return u ? blz__sys_mcast(u->sk.src.fd, true, group, ifindex) : -EINVAL;
}

int
blz_udp_leave_multicast(blz_udp_socket *u, const blz_addr *group, unsigned ifindex)
{
    return u ? blz__sys_mcast(u->sk.src.fd, false, group, ifindex) : -EINVAL;
}

int
blz_udp_set_multicast_if(blz_udp_socket *u, unsigned ifindex)
{
    return u ? blz__sys_mcast_if(u->sk.src.fd, ifindex) : -EINVAL;
}

int
blz_udp_local_addr(const blz_udp_socket *u, blz_addr *out)
{
    return blz__sock_local_addr(SK(u), out);
}

int
blz_udp_peer_addr(const blz_udp_socket *u, blz_addr *out)
{
    return blz__sock_peer_addr(SK(u), out);
}

void
blz_udp_close(blz_udp_socket *u)
{
    blz__sock_close(SK(u));
}

ssize_t
blz_udp_recv_many(blz_udp_socket *u, blz_udp_msg *msgs, size_t n)
{
    return blz__sock_await(SK(u), BLZ__OP_S_RECV_MANY, msgs, n, NULL);
}

ssize_t
blz_udp_try_recv_many(blz_udp_socket *u, blz_udp_msg *msgs, size_t n)
{
    return blz__sock_try(SK(u), BLZ__OP_S_RECV_MANY, msgs, n, NULL);
}

void
blz_udp_recv_many_fut(blz_udp_socket *u, blz_udp_msg *msgs, size_t n, blz_io_future *f)
{
    blz__sock_fut(SK(u), BLZ__OP_S_RECV_MANY, msgs, n, NULL, f);
}

ssize_t
blz_udp_send_many(blz_udp_socket *u, blz_udp_msg *msgs, size_t n)
{
    return blz__sock_await(SK(u), BLZ__OP_S_SEND_MANY, msgs, n, NULL);
}

ssize_t
blz_udp_try_send_many(blz_udp_socket *u, blz_udp_msg *msgs, size_t n)
{
    return blz__sock_try(SK(u), BLZ__OP_S_SEND_MANY, msgs, n, NULL);
}

void
blz_udp_send_many_fut(blz_udp_socket *u, blz_udp_msg *msgs, size_t n, blz_io_future *f)
{
    blz__sock_fut(SK(u), BLZ__OP_S_SEND_MANY, msgs, n, NULL, f);
}

ssize_t
blz_udp_send_segments(blz_udp_socket *u, const blz_udp_segments *s)
{
    return blz__sock_await(SK(u), BLZ__OP_S_SEND_SEGMENTS, (void *) s, 1, NULL);
}

ssize_t
blz_udp_try_send_segments(blz_udp_socket *u, const blz_udp_segments *s)
{
    return blz__sock_try(SK(u), BLZ__OP_S_SEND_SEGMENTS, (void *) s, 1, NULL);
}

void
blz_udp_send_segments_fut(blz_udp_socket *u, const blz_udp_segments *s, blz_io_future *f)
{
    blz__sock_fut(SK(u), BLZ__OP_S_SEND_SEGMENTS, (void *) s, 1, NULL, f);
}
