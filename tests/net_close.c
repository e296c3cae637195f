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
#include <poll.h>
#include <stdatomic.h>
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

/* Many closes at once from a thread that may not enter the ring (a
 * blocking-pool job) while the ring's owner is kept busy: two cancels per
 * stream (its poll and its receive), more than the ring's submission queue
 * holds. A cancel that finds no room waits for the owner's next poll
 * instead of being dropped, so every peer still reads its end; dropped, the
 * poll or receive would hold the socket's file for the life of the ring. */
#define MANY_CLOSES 300

typedef struct many_closes {
    blz_tcp_stream *streams[MANY_CLOSES];
    int peers[MANY_CLOSES];
    _Atomic bool closed;
    int ended; /* peers that read their end within the bound */
} many_closes;

static void *
close_every_stream(void *arg)
{
    many_closes *m = arg;
    for (int i = 0; i < MANY_CLOSES; i++) {
        blz_tcp_close(m->streams[i]);
    }
    atomic_store(&m->closed, true);
    return NULL;
}

/* Reads every peer to its end, waiting for at most 10 s in all. */
static void *
read_every_end(void *arg)
{
    many_closes *m = arg;
    bool done[MANY_CLOSES] = {false};
    struct pollfd pfd[MANY_CLOSES];
    int which[MANY_CLOSES];
    blz_instant until = blz_clock_now() + blz_secs(10);
    while (m->ended < MANY_CLOSES && blz_clock_now() < until) {
        nfds_t n = 0;
        for (int i = 0; i < MANY_CLOSES; i++) {
            if (!done[i]) {
                pfd[n] = (struct pollfd){.fd = m->peers[i], .events = POLLIN | POLLRDHUP};
                which[n++] = i;
            }
        }
        int ms = (int) ((until - blz_clock_now()) / 1000000) + 1;
        if (poll(pfd, n, ms) <= 0) {
            continue;
        }
        for (nfds_t k = 0; k < n; k++) {
            char c;
            if (pfd[k].revents && recv(pfd[k].fd, &c, 1, MSG_DONTWAIT) == 0) {
                done[which[k]] = true;
                m->ended++;
            }
        }
    }
    return NULL;
}

static void *
many_closes_main(void *arg)
{
    (void) arg;
    many_closes *m = calloc(1, sizeof *m);
    CHECK(m != NULL);
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    for (int i = 0; i < MANY_CLOSES; i++) {
        m->peers[i] = net_plain_peer(l, &a, &m->streams[i]);
        char c = 'x';
        CHECK_EQ(write(m->peers[i], &c, 1), 1);
        CHECK_EQ(net_read_exact(m->streams[i], &c, 1), 0); /* its receive or poll is live */
    }
    blz_tcp_listener_close(l);
    blz_join *job = NULL;
    CHECK_OK(blz_spawn_blocking(close_every_stream, m, &job));
    while (!atomic_load(&m->closed)) {
        /* Keep the worker: no yield, no system call, so its ring stays unpolled. */
    }
    CHECK_OK(blz_join_wait(job, NULL));
    /* Read the ends off the worker, so that it polls its ring meanwhile. */
    CHECK_OK(blz_spawn_blocking(read_every_end, m, &job));
    CHECK_OK(blz_join_wait(job, NULL));
    if (m->ended != MANY_CLOSES) {
        fprintf(stderr, "%d of %d peers read their end\n", m->ended, MANY_CLOSES);
    }
    CHECK_EQ(m->ended, MANY_CLOSES);
    for (int i = 0; i < MANY_CLOSES; i++) {
        close(m->peers[i]);
    }
    free(m);
    return NULL;
}

BLZ_TEST(closes_beyond_the_submission_queue_all_reach_their_peers)
{
    net_run(1, many_closes_main, NULL);
}

/* The same for opening: sockets bound on a pool thread while the owner is
 * kept busy need more arms than the submission queue holds. Each bind
 * succeeds (an arm that finds no room waits for the owner's next poll
 * instead of failing with -EBUSY), and each socket then receives through
 * its poll: a try first finds nothing (clearing its readiness), so the
 * receive after the datagram is sent waits for the poll's event, which an
 * arm never paid would never bring. */
#define MANY_OPENS 300

typedef struct many_opens {
    blz_udp_socket *sockets[MANY_OPENS];
    int failed; /* binds that failed, and the first error */
    int first_error;
    _Atomic bool opened;
} many_opens;

static void *
open_every_socket(void *arg)
{
    many_opens *m = arg;
    for (int i = 0; i < MANY_OPENS; i++) {
        int rc = blz_udp_bind("127.0.0.1:0", &m->sockets[i]);
        if (rc < 0) {
            m->sockets[i] = NULL;
            m->first_error = m->failed++ ? m->first_error : rc;
        }
    }
    atomic_store(&m->opened, true);
    return NULL;
}

static void *
many_opens_main(void *arg)
{
    (void) arg;
    many_opens *m = calloc(1, sizeof *m);
    CHECK(m != NULL);
    blz_join *job = NULL;
    CHECK_OK(blz_spawn_blocking(open_every_socket, m, &job));
    while (!atomic_load(&m->opened)) {
        /* Keep the worker: no yield, no system call, so its ring stays unpolled. */
    }
    CHECK_OK(blz_join_wait(job, NULL));
    if (m->failed) {
        fprintf(stderr, "%d of %d binds failed, the first with %s\n", m->failed, MANY_OPENS,
                blz_errname(m->first_error));
    }
    CHECK_EQ(m->failed, 0);
    int plain = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(plain >= 0);
    for (int i = 0; i < MANY_OPENS; i++) {
        blz_addr to;
        CHECK_OK(blz_udp_local_addr(m->sockets[i], &to));
        size_t salen = 0;
        const struct sockaddr *sa = blz_addr_sockaddr(&to, &salen);
        char c = 0;
        CHECK_EQ(blz_udp_try_recv_from(m->sockets[i], &c, 1, NULL), -EAGAIN);
        CHECK_EQ(sendto(plain, "d", 1, 0, sa, (socklen_t) salen), 1);
        blz_io_future rd;
        blz_udp_recv_from_fut(m->sockets[i], &c, 1, NULL, &rd);
        CHECK_EQ(blz_timeout(&rd.base, blz_secs(5)), 1);
        CHECK_EQ(c, 'd');
        blz_udp_close(m->sockets[i]);
    }
    close(plain);
    free(m);
    return NULL;
}

BLZ_TEST(opens_beyond_the_submission_queue_all_succeed)
{
    net_run(1, many_opens_main, NULL);
}
