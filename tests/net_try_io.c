/*
 * The caller's own system calls on registered sockets (blz_*_try_io): a UDP
 * recvmsg that reads IP_PKTINFO, a descriptor passed over a Unix stream with
 * SCM_RIGHTS, sends and receives on TCP; an -EAGAIN from the caller's call
 * clears readiness (the next try_ready says -EAGAIN, the next wait sleeps
 * until the kernel reports), a socket that is not ready does not call it at
 * all, and reading a stream that reads by completion is refused. The await
 * and future tiers (blz_*_io) wait after each -EAGAIN: hand-polled futures
 * that do not call again without a report, a thread's datagrams in lock-step,
 * a descriptor passed to a waiting task, results past INT_MAX, a stream
 * closed under a waiting task; Unix datagrams' readiness and a descriptor
 * passed between their caller's calls.
 */
#include "net_common.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

typedef struct pktinfo_read {
    char data[64];
    long calls;
    struct in_addr dst; /* the address the datagram was sent to */
} pktinfo_read;

static long
recv_pktinfo(int fd, void *arg)
{
    pktinfo_read *p = arg;
    p->calls++;
    union {
        char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {p->data, sizeof p->data};
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl.buf;
    m.msg_controllen = sizeof ctl.buf;
    ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT);
    if (n < 0) {
        return -errno;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof pi);
            p->dst = pi.ipi_addr;
        }
    }
    return n;
}

static long
enable_pktinfo(int fd, void *arg)
{
    (void) arg;
    int on = 1;
    return setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on) < 0 ? -errno : 0;
}

static void *
udp_main(void *arg)
{
    (void) arg;
    blz_udp_socket *u, *peer;
    CHECK_OK(blz_udp_bind("127.0.0.1:0", &u));
    CHECK_OK(blz_udp_bind("127.0.0.1:0", &peer));
    blz_addr ua;
    CHECK_OK(blz_udp_local_addr(u, &ua));
    CHECK_OK(blz_udp_try_io(u, BLZ_WRITABLE, enable_pktinfo, NULL)); /* writable at once */

    pktinfo_read p = {0};
    for (int round = 0; round < 3; round++) {
        CHECK_EQ(blz_udp_send_to(peer, "hello", 5, &ua), 5);
        CHECK_OK(blz_udp_ready(u, BLZ_READABLE));
        memset(p.data, 0, sizeof p.data);
        CHECK_EQ(blz_udp_try_io(u, BLZ_READABLE, recv_pktinfo, &p), 5);
        CHECK(memcmp(p.data, "hello", 5) == 0);
        CHECK_EQ(ntohl(p.dst.s_addr), INADDR_LOOPBACK);
        /* Drained: the next call meets EAGAIN, which clears readiness, and
         * then the call is not even made. A report of the socket that races
         * a call (the driver on another worker, a completion the ring posts
         * late) may set readiness once more, since no event may be lost:
         * the next EAGAIN clears it. */
        long calls = p.calls;
        CHECK_EQ(blz_udp_try_io(u, BLZ_READABLE, recv_pktinfo, &p), -EAGAIN);
        CHECK_GT(p.calls, calls); /* it was called, and said EAGAIN */
        bool cleared = false;
        for (int tries = 0; tries < 100 && !cleared; tries++) {
            calls = p.calls;
            CHECK_EQ(blz_udp_try_io(u, BLZ_READABLE, recv_pktinfo, &p), -EAGAIN);
            cleared = p.calls == calls;
            if (!cleared) {
                blz_yield();
            }
        }
        CHECK(cleared);
    }
    CHECK_EQ(blz_udp_try_io(u, BLZ_READABLE, NULL, &p), -EINVAL);
    CHECK_EQ(blz_udp_try_io(u, (blz_interest) 3, recv_pktinfo, &p), -EINVAL);
    CHECK_EQ(blz_udp_try_io(NULL, BLZ_READABLE, recv_pktinfo, &p), -EINVAL);
    blz_udp_close(u);
    blz_udp_close(peer);
    return NULL;
}

BLZ_TEST(udp_recvmsg_with_pktinfo)
{
    net_run(2, udp_main, NULL);
}

/* ---- a descriptor over a Unix stream ------------------------------------------------------ */

/* One byte and room for one descriptor: the message both sides use. */
typedef struct fd_msg {
    int fd; /* to send, or received */
    char byte;
    struct iovec iov;
    _Alignas(struct cmsghdr) char ctl[CMSG_SPACE(sizeof(int))];
    struct msghdr h;
} fd_msg;

static struct msghdr *
fd_msghdr(fd_msg *m)
{
    memset(m->ctl, 0, sizeof m->ctl);
    memset(&m->h, 0, sizeof m->h);
    m->iov = (struct iovec){&m->byte, 1};
    m->h.msg_iov = &m->iov;
    m->h.msg_iovlen = 1;
    m->h.msg_control = m->ctl;
    m->h.msg_controllen = sizeof m->ctl;
    return &m->h;
}

static long
send_fd(int sock, void *arg)
{
    fd_msg *m = arg;
    struct msghdr *h = fd_msghdr(m);
    m->byte = 'F';
    struct cmsghdr *c = CMSG_FIRSTHDR(h);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &m->fd, sizeof(int));
    return sendmsg(sock, h, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 ? -errno : 1;
}

static long
recv_fd(int sock, void *arg)
{
    fd_msg *m = arg;
    struct msghdr *h = fd_msghdr(m);
    ssize_t n = recvmsg(sock, h, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
        return -errno;
    }
    struct cmsghdr *c = CMSG_FIRSTHDR(h);
    if (n != 1 || m->byte != 'F' || !c || c->cmsg_type != SCM_RIGHTS) {
        return -EPROTO;
    }
    memcpy(&m->fd, CMSG_DATA(c), sizeof(int));
    return n;
}

/* Checks that `got` (received) is a working copy of the pipe's write end p[1]
 * by sending `byte` through it, then closes it and the pipe. */
static void
check_passed_pipe_end(int got, int p[2], char byte)
{
    CHECK_GE(got, 0);
    CHECK(got != p[1]);
    CHECK_EQ(write(got, &byte, 1), 1);
    char c = 0;
    CHECK_EQ(read(p[0], &c, 1), 1);
    CHECK_EQ(c, byte);
    close(got);
    close(p[0]);
    close(p[1]);
}

static void *
unix_main(void *arg)
{
    (void) arg;
    blz_unix_stream *a, *b;
    CHECK_OK(blz_unix_pair(&a, &b));
    int p[2];
    CHECK_OK(pipe(p));
    fd_msg out = {.fd = p[1]}, in = {.fd = -1};
    CHECK_EQ(blz_unix_try_io(a, BLZ_WRITABLE, send_fd, &out), 1);
    CHECK_OK(blz_unix_ready(b, BLZ_READABLE));
    CHECK_EQ(blz_unix_try_io(b, BLZ_READABLE, recv_fd, &in), 1);
    check_passed_pipe_end(in.fd, p, 'x');
    blz_unix_close(a);
    blz_unix_close(b);
    return NULL;
}

BLZ_TEST(unix_stream_passes_a_descriptor)
{
    net_run(2, unix_main, NULL);
}

/* ---- TCP: sends and receives; refused where the kernel reads for us --------------------- */

static long
send_text(int fd, void *arg)
{
    const char *t = arg;
    ssize_t n = send(fd, t, strlen(t), MSG_DONTWAIT | MSG_NOSIGNAL);
    return n < 0 ? -errno : n;
}

typedef struct peek_buf {
    char data[16];
} peek_buf;

static long
recv_text(int fd, void *arg)
{
    peek_buf *b = arg;
    ssize_t n = recv(fd, b->data, sizeof b->data - 1, MSG_DONTWAIT);
    return n < 0 ? -errno : n;
}

static void *
tcp_main(void *arg)
{
    (void) arg;
    blz_addr addr;
    blz_tcp_listener *l = net_listen_any(&addr);
    blz_tcp_stream *s, *c;
    net_pair(l, &addr, &s, &c);
    CHECK_EQ(blz_tcp_try_io(c, BLZ_WRITABLE, send_text, "by hand"), 7);
    char got[8];
    CHECK_OK(net_read_exact(s, got, 7));
    CHECK(memcmp(got, "by hand", 7) == 0);
    CHECK_OK(blz_tcp_write_all(s, "reply", 5));
    peek_buf b = {{0}};
    if (net_rx_on(c)) {
        /* The kernel receives this stream's bytes into lent buffers. */
        CHECK_EQ(blz_tcp_try_io(c, BLZ_READABLE, recv_text, &b), -EOPNOTSUPP);
        CHECK_OK(net_read_exact(c, got, 5));
    } else {
        CHECK_OK(blz_tcp_ready(c, BLZ_READABLE));
        CHECK_EQ(blz_tcp_try_io(c, BLZ_READABLE, recv_text, &b), 5);
        CHECK(memcmp(b.data, "reply", 5) == 0);
        bool cleared = false; /* as for UDP: a racing report keeps readiness once */
        for (int tries = 0; tries < 100 && !cleared; tries++) {
            CHECK_EQ(blz_tcp_try_io(c, BLZ_READABLE, recv_text, &b), -EAGAIN);
            cleared = blz_tcp_try_ready(c, BLZ_READABLE) == -EAGAIN;
            if (!cleared) {
                blz_yield();
            }
        }
        CHECK(cleared);
    }
    blz_tcp_close(s);
    blz_tcp_close(c);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(tcp_sends_and_receives_by_hand)
{
    net_run(2, tcp_main, NULL); /* readiness everywhere */
    net_run(1, tcp_main, NULL); /* on io_uring: completion receive */
}

/* ---- the await and future tiers (blz_*_io): the call, waited for ---------------------- */

#define LOCKSTEP 500

typedef struct udp_pinger {
    blz_addr to;
    _Atomic int acked; /* datagrams the reader has taken */
} udp_pinger;

/* Sends one datagram per round from a plain socket, each after the reader took the
 * one before, so the reader finds nothing queued and waits nearly every time. */
static void *
udp_pinger_main(void *arg)
{
    udp_pinger *up = arg;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK_GE(fd, 0);
    size_t len = 0;
    const struct sockaddr *sa = blz_addr_sockaddr(&up->to, &len);
    for (int i = 0; i < LOCKSTEP; i++) {
        while (atomic_load(&up->acked) < i) {
            sched_yield();
        }
        CHECK_EQ(sendto(fd, "hello", 5, 0, sa, (socklen_t) len), 5);
    }
    close(fd);
    return NULL;
}

static void *
udp_io_main(void *arg)
{
    (void) arg;
    blz_udp_socket *u;
    CHECK_OK(blz_udp_bind("127.0.0.1:0", &u));
    udp_pinger up = {0};
    CHECK_OK(blz_udp_local_addr(u, &up.to));
    CHECK_OK(blz_udp_io(u, BLZ_WRITABLE, enable_pktinfo, NULL));

    /* Polled by hand: called, nothing queued, the future sleeps; its -EAGAIN
     * cleared the readable side, and polled again without a report it does
     * not call again. A report of the new registration may still be on its
     * way (the driver on the other worker), and the registry keeps such a
     * report, so poll until one poll makes no call with readiness cleared. */
    pktinfo_read p = {0};
    blz_context noop = {blz_waker_noop()};
    blz_async_io_future f;
    blz_udp_io_fut(u, BLZ_READABLE, recv_pktinfo, &p, &f);
    CHECK_EQ(blz_future_poll(&f.base, &noop), BLZ_PENDING);
    CHECK_GE(p.calls, 1);
    bool quiet = false;
    for (int i = 0; i < 100 && !quiet; i++) {
        long calls = p.calls;
        CHECK_EQ(blz_future_poll(&f.base, &noop), BLZ_PENDING);
        quiet = p.calls == calls && blz_udp_try_ready(u, BLZ_READABLE) == -EAGAIN;
        if (!quiet) {
            blz_yield();
        }
    }
    CHECK(quiet);
    blz_future_drop(&f.base);

    /* A thread's datagrams in lock-step: every one read, with its IP_PKTINFO. */
    pthread_t t;
    CHECK_OK(pthread_create(&t, NULL, udp_pinger_main, &up));
    for (int i = 0; i < LOCKSTEP; i++) {
        memset(p.data, 0, sizeof p.data);
        CHECK_EQ(blz_udp_io(u, BLZ_READABLE, recv_pktinfo, &p), 5);
        CHECK(memcmp(p.data, "hello", 5) == 0);
        CHECK_EQ(ntohl(p.dst.s_addr), INADDR_LOOPBACK);
        atomic_store(&up.acked, i + 1);
    }
    CHECK_OK(pthread_join(t, NULL));

    CHECK_EQ(blz_udp_io(u, BLZ_READABLE, NULL, &p), -EINVAL);
    CHECK_EQ(blz_udp_io(u, (blz_interest) 3, recv_pktinfo, &p), -EINVAL);
    CHECK_EQ(blz_udp_io(NULL, BLZ_READABLE, recv_pktinfo, &p), -EINVAL);
    blz_udp_io_fut(NULL, BLZ_READABLE, recv_pktinfo, &p, &f);
    CHECK_EQ(blz_await(&f.base), -EINVAL);
    blz_udp_close(u);
    return NULL;
}

BLZ_TEST(udp_io_waits_for_each_datagram)
{
    net_run(2, udp_io_main, NULL);
    net_run(1, udp_io_main, NULL);
}

typedef struct fd_sender {
    blz_unix_stream *a;
    fd_msg out;
    long result;
} fd_sender;

static void *
send_fd_task(void *arg)
{
    fd_sender *s = arg;
    s->result = blz_unix_io(s->a, BLZ_WRITABLE, send_fd, &s->out);
    return NULL;
}

static void *
unix_io_main(void *arg)
{
    (void) arg;
    blz_unix_stream *a, *b;
    CHECK_OK(blz_unix_pair(&a, &b));
    int p[2];
    CHECK_OK(pipe(p));
    /* The receiver waits first (its future polled by hand), then another task sends. */
    fd_msg in = {.fd = -1};
    blz_context noop = {blz_waker_noop()};
    blz_async_io_future f;
    blz_unix_io_fut(b, BLZ_READABLE, recv_fd, &in, &f);
    CHECK_EQ(blz_future_poll(&f.base, &noop), BLZ_PENDING);
    fd_sender s = {.a = a, .out = {.fd = p[1]}};
    blz_join *h;
    CHECK_OK(blz_spawn(send_fd_task, &s, &h));
    CHECK_EQ(blz_timeout(&f.base, blz_secs(10)), 1);
    CHECK_OK(blz_join_wait(h, NULL));
    CHECK_EQ(s.result, 1);
    check_passed_pipe_end(in.fd, p, 'y');
    blz_unix_close(a);
    blz_unix_close(b);
    return NULL;
}

BLZ_TEST(unix_io_passes_a_descriptor_to_a_waiting_task)
{
    net_run(2, unix_io_main, NULL);
}

/* Returns -EINTR once (retried), then a count past INT_MAX. */
static long
big_result(int fd, void *arg)
{
    (void) fd;
    int *calls = arg;
    return (*calls)++ == 0 ? -EINTR : 3000000000L;
}

typedef struct tcp_waiter {
    blz_tcp_stream *c;
    _Atomic int calls;
    peek_buf b;
    long result;
} tcp_waiter;

static long
recv_counted(int fd, void *arg)
{
    tcp_waiter *w = arg;
    atomic_fetch_add(&w->calls, 1);
    return recv_text(fd, &w->b);
}

static void *
tcp_read_task(void *arg)
{
    tcp_waiter *w = arg;
    w->result = blz_tcp_io(w->c, BLZ_READABLE, recv_counted, w);
    return NULL;
}

static void *
tcp_io_main(void *arg)
{
    (void) arg;
    blz_addr addr;
    blz_tcp_listener *l = net_listen_any(&addr);
    blz_tcp_stream *s, *c;
    net_pair(l, &addr, &s, &c);
    CHECK_EQ(blz_tcp_io(c, BLZ_WRITABLE, send_text, "waited"), 6);
    int calls = 0;
    CHECK_EQ(blz_tcp_io(c, BLZ_WRITABLE, big_result, &calls), 3000000000L);
    CHECK_EQ(calls, 2);
    calls = 0;
    blz_async_io_future f;
    blz_tcp_io_fut(c, BLZ_WRITABLE, big_result, &calls, &f);
    CHECK_EQ(blz_await(&f.base), INT_MAX);
    char got[8];
    CHECK_OK(net_read_exact(s, got, 6));
    CHECK(memcmp(got, "waited", 6) == 0);

    tcp_waiter w = {.c = c, .result = 1};
    if (net_rx_on(c)) {
        CHECK_EQ(blz_tcp_io(c, BLZ_READABLE, recv_counted, &w), -EOPNOTSUPP);
        CHECK_EQ(atomic_load(&w.calls), 0);
    } else {
        /* A reader task waits; the peer's write wakes it. */
        blz_join *h;
        CHECK_OK(blz_spawn(tcp_read_task, &w, &h));
        CHECK_OK(blz_tcp_write_all(s, "back", 4));
        CHECK_OK(blz_join_wait(h, NULL));
        CHECK_EQ(w.result, 4);
        CHECK(memcmp(w.b.data, "back", 4) == 0);
        /* Closed while a task waits in it: that wait ends with -ECANCELED.
         * Once the call ran, the task's future holds the stream. */
        atomic_store(&w.calls, 0);
        w.result = 1;
        CHECK_OK(blz_spawn(tcp_read_task, &w, &h));
        while (atomic_load(&w.calls) == 0) {
            blz_yield();
        }
        blz_tcp_close(c);
        c = NULL;
        CHECK_OK(blz_join_wait(h, NULL));
        CHECK_EQ(w.result, -ECANCELED);
    }
    blz_tcp_close(s);
    blz_tcp_close(c);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(tcp_io_waits_and_ends_on_close)
{
    net_run(2, tcp_io_main, NULL); /* readiness everywhere */
    net_run(1, tcp_io_main, NULL); /* on io_uring: completion receive */
}

/* ---- Unix datagrams: readiness, and a descriptor passed by the caller's calls ---------- */

typedef struct dgram_sender {
    blz_unix_datagram *a;
    fd_msg out;
    long result;
} dgram_sender;

static void *
dgram_send_fd_task(void *arg)
{
    dgram_sender *s = arg;
    s->result = blz_unix_datagram_io(s->a, BLZ_WRITABLE, send_fd, &s->out);
    return NULL;
}

typedef struct dgram_drain {
    blz_unix_datagram *b;
    int n;
} dgram_drain;

static void *
dgram_drain_task(void *arg)
{
    dgram_drain *d = arg;
    char c;
    for (int i = 0; i < d->n; i++) {
        CHECK_EQ(blz_unix_datagram_recv(d->b, &c, 1), 1);
    }
    return NULL;
}

static void *
unix_dgram_main(void *arg)
{
    (void) arg;
    blz_unix_datagram *a, *b;
    CHECK_OK(blz_unix_datagram_pair(&a, &b));
    int p[2];
    CHECK_OK(pipe(p));

    /* The receiver's call finds nothing: its -EAGAIN clears readiness and
     * the future sleeps (as for UDP, a late report of the registration is kept). */
    fd_msg in = {.fd = -1};
    blz_context noop = {blz_waker_noop()};
    blz_async_io_future f;
    blz_unix_datagram_io_fut(b, BLZ_READABLE, recv_fd, &in, &f);
    CHECK_EQ(blz_future_poll(&f.base, &noop), BLZ_PENDING);
    bool cleared = false;
    for (int i = 0; i < 100 && !cleared; i++) {
        CHECK_EQ(blz_future_poll(&f.base, &noop), BLZ_PENDING);
        cleared = blz_unix_datagram_try_ready(b, BLZ_READABLE) == -EAGAIN;
        if (!cleared) {
            blz_yield();
        }
    }
    CHECK(cleared);
    /* Another task sends the pipe's write end; the waiting call gets it. */
    dgram_sender s = {.a = a, .out = {.fd = p[1]}};
    blz_join *h;
    CHECK_OK(blz_spawn(dgram_send_fd_task, &s, &h));
    CHECK_EQ(blz_timeout(&f.base, blz_secs(10)), 1);
    CHECK_OK(blz_join_wait(h, NULL));
    CHECK_EQ(s.result, 1);
    check_passed_pipe_end(in.fd, p, 'd');

    /* Writable: fill the peer's queue, then wait until a task drains it. */
    int sent = 0;
    ssize_t r;
    while ((r = blz_unix_datagram_try_send(a, "x", 1)) == 1) {
        sent++;
    }
    CHECK_EQ(r, -EAGAIN);
    CHECK_GT(sent, 0);
    dgram_drain d = {.b = b, .n = sent};
    CHECK_OK(blz_spawn(dgram_drain_task, &d, &h));
    CHECK_OK(blz_unix_datagram_ready(a, BLZ_WRITABLE));
    CHECK_OK(blz_join_wait(h, NULL));
    blz_io_future rf;
    blz_unix_datagram_ready_fut(a, BLZ_WRITABLE, &rf);
    CHECK_OK(blz_await(&rf.base));

    CHECK_EQ(blz_unix_datagram_ready(a, (blz_interest) 0), -EINVAL);
    CHECK_EQ(blz_unix_datagram_try_ready(NULL, BLZ_READABLE), -EINVAL);
    CHECK_EQ(blz_unix_datagram_try_io(a, BLZ_READABLE, NULL, NULL), -EINVAL);
    CHECK_EQ(blz_unix_datagram_io(NULL, BLZ_READABLE, recv_fd, &in), -EINVAL);
    blz_unix_datagram_close(a);
    blz_unix_datagram_close(b);
    return NULL;
}

BLZ_TEST(unix_datagram_ready_and_io)
{
    net_run(2, unix_dgram_main, NULL);
    net_run(1, unix_dgram_main, NULL);
}
