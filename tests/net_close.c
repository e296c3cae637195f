/*
 * A socket closed by its task is closed for the kernel at once, on every
 * backend and runtime shape: its port is free to bind again, and a TCP
 * peer sees the end of stream, before the closing worker next waits for
 * I/O. On io_uring the ring's poll (and receive) of the socket holds the
 * file until it is cancelled; on a one-worker runtime's ring the kernel
 * finishes that cancel only when the worker asks, so the close must ask.
 *
 * Each check runs with the closing task still on its worker, before it
 * waits for anything: a worker that parked first would have let the
 * cancel finish anyway and hidden the bug.
 */
#include "net_common.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define ROUNDS 50

/* A UDP socket's port can be bound again right after the close. */
static void *
udp_rebind_main(void *arg)
{
    (void) arg;
    for (int i = 0; i < ROUNDS; i++) {
        blz_udp_socket *u = NULL;
        CHECK_OK(blz_udp_bind("127.0.0.1:0", &u));
        blz_addr a;
        CHECK_OK(blz_udp_local_addr(u, &a));
        blz_udp_close(u);
        blz_udp_socket *again = NULL;
        CHECK_OK(blz_udp_bind_addr(&a, &again));
        blz_udp_close(again);
    }
    return NULL;
}

BLZ_TEST(a_closed_udp_socket_frees_its_port_at_once)
{
    net_run(1, udp_rebind_main, NULL);
    net_run(2, udp_rebind_main, NULL);
}

/* A listener's port can be listened on again right after the close. */
static void *
listener_rebind_main(void *arg)
{
    (void) arg;
    for (int i = 0; i < ROUNDS; i++) {
        blz_addr a;
        blz_tcp_listener *l = net_listen_any(&a);
        blz_tcp_listener_close(l);
        blz_tcp_listener *again = NULL;
        CHECK_OK(blz_tcp_listen_addr(&a, 0, &again));
        blz_tcp_listener_close(again);
    }
    return NULL;
}

BLZ_TEST(a_closed_listener_frees_its_port_at_once)
{
    net_run(1, listener_rebind_main, NULL);
    net_run(2, listener_rebind_main, NULL);
}

/* The peer of a closed stream reads its end, while the closing task keeps
 * its worker: the peer is a plain socket read with a timeout on this very
 * thread, so nothing runs the runtime's I/O until it returns. */
static void *
stream_eof_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    for (int i = 0; i < ROUNDS; i++) {
        blz_tcp_stream *s = NULL;
        int peer = net_plain_peer(l, &a, &s);
        CHECK_EQ(write(peer, "ping", 4), 4);
        char buf[8];
        CHECK_EQ(net_read_exact(s, buf, 4), 0); /* the stream's receive or poll has run */
        blz_tcp_close(s);
        CHECK_EQ(read(peer, buf, sizeof buf), 0); /* -1 (EAGAIN) after 5 s: no FIN came */
        close(peer);
    }
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(the_peer_of_a_closed_stream_reads_its_end_at_once)
{
    net_run(1, stream_eof_main, NULL);
    net_run(2, stream_eof_main, NULL);
}
