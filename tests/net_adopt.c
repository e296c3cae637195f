/*
 * Sockets made elsewhere, adopted (blz_*_from_fd): descriptors made with
 * plain system calls (blocking, inheritable, as systemd or a parent would
 * pass them) become a TCP listener and stream, a UDP socket, and Unix
 * listener, stream and datagram sockets that then carry traffic; they are
 * made non-blocking and close-on-exec, and closing the object closes them.
 * The wrong kind of socket, a descriptor that is no socket or none at all,
 * and a call outside a runtime are refused, and the descriptor stays the
 * caller's, untouched.
 */
#include "net_common.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* A blocking, inheritable IPv4 socket of `type` bound to 127.0.0.1:0 (and
 * listening, for streams when `listen_too`); its port in *port. */
static int
raw_bound(int type, bool listen_too, int *port)
{
    int fd = socket(AF_INET, type, 0);
    CHECK_OK(fd);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_OK(bind(fd, (struct sockaddr *) &a, sizeof a));
    if (listen_too) {
        CHECK_OK(listen(fd, 16));
    }
    socklen_t len = sizeof a;
    CHECK_OK(getsockname(fd, (struct sockaddr *) &a, &len));
    *port = ntohs(a.sin_port);
    return fd;
}

/* The descriptor is open, and as the runtime wants it (or as made). */
static void
check_flags(int fd, bool adopted)
{
    int fl = fcntl(fd, F_GETFL);
    int fdfl = fcntl(fd, F_GETFD);
    CHECK_OK(fl);
    CHECK_OK(fdfl);
    CHECK_EQ((fl & O_NONBLOCK) != 0, adopted);
    CHECK_EQ((fdfl & FD_CLOEXEC) != 0, adopted);
}

static blz_addr
loopback(int port)
{
    char text[32];
    snprintf(text, sizeof text, "127.0.0.1:%d", port);
    blz_addr a;
    CHECK_OK(blz_addr_parse(text, &a));
    return a;
}

static void *
tcp_main(void *arg)
{
    (void) arg;
    int port;
    int lfd = raw_bound(SOCK_STREAM, true, &port);
    blz_tcp_listener *l;
    CHECK_OK(blz_tcp_listener_from_fd(lfd, &l));
    check_flags(lfd, true);
    blz_addr bound;
    CHECK_OK(blz_tcp_listener_addr(l, &bound));
    CHECK_EQ(blz_addr_port(&bound), port);

    /* A client made with plain calls, adopted as a stream once connected. */
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_OK(cfd);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t) port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_OK(connect(cfd, (struct sockaddr *) &a, sizeof a));
    blz_tcp_stream *s, *c;
    CHECK_OK(blz_tcp_accept(l, &s, NULL));
    CHECK_EQ(blz_tcp_stream_from_fd(lfd, &c), -EINVAL); /* a listener is no stream */
    CHECK_OK(blz_tcp_stream_from_fd(cfd, &c));
    check_flags(cfd, true);
    CHECK_OK(blz_tcp_write_all(c, "adopted", 7));
    char buf[16];
    CHECK_OK(net_read_exact(s, buf, 7));
    CHECK(memcmp(buf, "adopted", 7) == 0);
    CHECK_OK(blz_tcp_write_all(s, "back", 4));
    CHECK_OK(net_read_exact(c, buf, 4));
    CHECK(memcmp(buf, "back", 4) == 0);
    blz_tcp_close(c);
    CHECK_EQ(blz_tcp_read(s, buf, sizeof buf), 0); /* closing the stream closed cfd */
    blz_tcp_close(s);

    /* Closing the listener closed lfd: nobody listens on the port any more.
     * On epoll at once. On io_uring the kernel holds the file until the
     * ring has removed its readiness poll, and an adopted listener is not
     * shut down meanwhile (others may hold the socket), so a connect may
     * still be taken, and then reset, for a moment: the refusal must come,
     * within a bounded number of tries. */
    blz_tcp_listener_close(l);
    blz_addr gone = loopback(port);
    bool uring = strcmp(blz_runtime_backend(blz_runtime_current()), "io_uring") == 0;
    int rc = blz_tcp_connect_addr(&gone, &c);
    for (int tries = 0; uring && rc != -ECONNREFUSED && tries < 5000; tries++) {
        if (rc == 0) {
            blz_tcp_close(c);
        }
        CHECK_OK(blz_sleep(blz_ms(1)));
        rc = blz_tcp_connect_addr(&gone, &c);
    }
    CHECK_EQ(rc, -ECONNREFUSED);
    return NULL;
}

BLZ_TEST(tcp_listener_and_stream_from_plain_descriptors)
{
    net_run(2, tcp_main, NULL);
    net_run(1, tcp_main, NULL); /* on io_uring, where accepted streams read by completion */
}

static void *
udp_main(void *arg)
{
    (void) arg;
    int port;
    int fd = raw_bound(SOCK_DGRAM, false, &port);
    blz_udp_socket *u, *peer;
    blz_tcp_listener *l;
    CHECK_EQ(blz_tcp_listener_from_fd(fd, &l), -EINVAL); /* a datagram socket is no listener */
    check_flags(fd, false);                              /* refused: untouched */
    CHECK_OK(blz_udp_from_fd(fd, &u));
    check_flags(fd, true);
    CHECK_OK(blz_udp_bind("127.0.0.1:0", &peer));
    blz_addr to = loopback(port), from;
    CHECK_EQ(blz_udp_send_to(peer, "dgram", 5, &to), 5);
    char buf[16];
    CHECK_EQ(blz_udp_recv_from(u, buf, sizeof buf, &from), 5);
    CHECK(memcmp(buf, "dgram", 5) == 0);
    CHECK_EQ(blz_udp_send_to(u, "ack", 3, &from), 3);
    CHECK_EQ(blz_udp_recv_from(peer, buf, sizeof buf, NULL), 3);
    blz_udp_close(u);
    blz_udp_close(peer);
    return NULL;
}

BLZ_TEST(udp_socket_from_a_plain_descriptor)
{
    net_run(2, udp_main, NULL);
}

static void *
unix_main(void *arg)
{
    (void) arg;
    /* Streams: a plain socketpair. */
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    blz_tcp_stream *t;
    CHECK_EQ(blz_tcp_stream_from_fd(sv[0], &t), -EINVAL); /* Unix is not TCP */
    check_flags(sv[0], false);
    blz_unix_stream *a, *b;
    CHECK_OK(blz_unix_stream_from_fd(sv[0], &a));
    CHECK_OK(blz_unix_stream_from_fd(sv[1], &b));
    CHECK_OK(blz_unix_write_all(a, "unix", 4));
    char buf[16];
    CHECK_EQ(blz_unix_read(b, buf, sizeof buf), 4);
    CHECK(memcmp(buf, "unix", 4) == 0);
    blz_unix_close(a);
    blz_unix_close(b);

    /* A listener on an abstract name, made by hand. */
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK_OK(lfd);
    struct sockaddr_un sa = {0};
    sa.sun_family = AF_UNIX;
    char name[64];
    snprintf(name, sizeof name, "blz-adopt-%d", (int) getpid());
    memcpy(sa.sun_path + 1, name, strlen(name)); /* sun_path[0] = 0: abstract */
    socklen_t salen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
    CHECK_OK(bind(lfd, (struct sockaddr *) &sa, salen));
    CHECK_OK(listen(lfd, 4));
    blz_unix_stream *s;
    CHECK_EQ(blz_unix_stream_from_fd(lfd, &s), -EINVAL); /* listening: no stream */
    blz_unix_listener *l;
    CHECK_OK(blz_unix_listener_from_fd(lfd, &l));
    char path[80];
    snprintf(path, sizeof path, "@%s", name);
    blz_unix_stream *c;
    CHECK_OK(blz_unix_connect(path, &c));
    CHECK_OK(blz_unix_accept(l, &s, NULL));
    CHECK_OK(blz_unix_write_all(c, "hi", 2));
    CHECK_EQ(blz_unix_read(s, buf, sizeof buf), 2);
    blz_unix_close(c);
    blz_unix_close(s);
    blz_unix_listener_close(l);

    /* Datagrams. */
    CHECK_OK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    blz_unix_datagram *da, *db;
    CHECK_EQ(blz_unix_stream_from_fd(sv[0], &a), -EINVAL);
    CHECK_OK(blz_unix_datagram_from_fd(sv[0], &da));
    CHECK_OK(blz_unix_datagram_from_fd(sv[1], &db));
    CHECK_EQ(blz_unix_datagram_send(da, "d", 1), 1);
    CHECK_EQ(blz_unix_datagram_recv(db, buf, sizeof buf), 1);
    blz_unix_datagram_close(da);
    blz_unix_datagram_close(db);
    return NULL;
}

BLZ_TEST(unix_sockets_from_plain_descriptors)
{
    net_run(2, unix_main, NULL);
}

static void *
refusals_main(void *arg)
{
    (void) arg;
    blz_tcp_listener *l = (blz_tcp_listener *) 1;
    CHECK_EQ(blz_tcp_listener_from_fd(-1, &l), -EBADF);
    CHECK(l == NULL);
    int p[2];
    CHECK_OK(pipe(p));
    CHECK_EQ(blz_tcp_listener_from_fd(p[0], &l), -ENOTSOCK);
    CHECK_EQ(blz_udp_from_fd(p[1], NULL), -EINVAL);
    check_flags(p[0], false);
    close(p[0]);
    close(p[1]);
    int port;
    int fd = raw_bound(SOCK_STREAM, true, &port);
    CHECK_EQ(blz_tcp_listener_from_fd(fd, NULL), -EINVAL);
    CHECK_EQ(blz_unix_listener_from_fd(fd, NULL), -EINVAL);
    CHECK_EQ(blz_unix_listener_from_fd(fd, (blz_unix_listener **) &l), -EINVAL);
    check_flags(fd, false);
    close(fd);
    return NULL;
}

BLZ_TEST(wrong_kinds_and_bad_descriptors_are_refused)
{
    net_run(1, refusals_main, NULL);
    /* Outside a runtime there is no driver to register with. */
    int port;
    int fd = raw_bound(SOCK_STREAM, true, &port);
    blz_tcp_listener *l;
    CHECK_EQ(blz_tcp_listener_from_fd(fd, &l), -ESRCH);
    check_flags(fd, false);
    close(fd);
}

/* A connect with plain calls to 127.0.0.1:port: 0 or -errno. */
static int
raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK_OK(fd);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t) port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *) &a, sizeof a) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* Closing an adopted listener lets go of this process's descriptor only.
 * Others may hold the same listening socket (systemd keeps its copy for the
 * next start, a pre-fork parent shares it with its children): it must go
 * on listening for them. The close's shutdown(SHUT_RD), meant to stop a
 * listener of our own at once, stopped the shared socket for everybody,
 * and connections to it were refused. */
static void *
shared_listener_main(void *arg)
{
    (void) arg;
    int port;
    int fd = raw_bound(SOCK_STREAM, true, &port);
    int other = dup(fd); /* another holder: systemd, a parent, a sibling */
    CHECK_OK(other);
    blz_tcp_listener *l;
    CHECK_OK(blz_tcp_listener_from_fd(fd, &l));
    CHECK_OK(raw_connect(port));
    blz_tcp_stream *s = NULL;
    CHECK_OK(blz_tcp_accept(l, &s, NULL));
    blz_tcp_close(s);
    blz_tcp_listener_close(l);
    /* The other holder still listens: the handshake completes into its
     * backlog, and it accepts. */
    CHECK_OK(raw_connect(port));
    int c = accept(other, NULL, NULL);
    CHECK_OK(c);
    close(c);
    close(other);
    return NULL;
}

BLZ_TEST(closing_an_adopted_listener_leaves_other_holders_listening)
{
    net_run(1, shared_listener_main, NULL);
}
