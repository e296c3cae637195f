/*
 * bench/servers/hand_epoll_echo.c — the "how fast can readiness I/O be" reference
 * for the echo comparison (issue 7): a minimal single-threaded, edge-triggered
 * epoll echo server with no library between it and the kernel.
 *
 *   bench_server_hand_epoll [HOST:PORT]     (default 127.0.0.1:8080; port 0 picks one)
 *
 * On start it prints "hand_epoll_echo: listening on HOST:PORT" as its first line on
 * stdout (the convention of bench/compare/net.sh), then serves until SIGINT or
 * SIGTERM, which arrive through a signalfd in the same epoll set.
 *
 * Invariants:
 * - One thread owns everything; no locks.
 * - Every descriptor is registered edge-triggered, so each readable edge is drained
 *   to EAGAIN (the accept loop and the read loop), or the connection remembers that
 *   it stopped early (`pending` is non-empty) and resumes reading once it is empty.
 * - A connection has EPOLLOUT in its interest set exactly while `pending` holds
 *   bytes that a short write left behind; it reads nothing more until they are out,
 *   which is the server's backpressure.
 * - Each read of up to BUF_SIZE bytes is written straight back from one shared
 *   buffer; only a short write copies the unsent tail into the connection.
 */
#include "server_common.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE   (16 * 1024) /* the read size of every server in the comparison */
#define MAX_EVENTS 256

typedef struct conn {
    int fd;
    char *pending;      /* unsent tail of the last read, or NULL; BUF_SIZE bytes */
    size_t pending_off; /* first unsent byte in pending */
    size_t pending_len; /* end of the unsent bytes in pending */
    bool want_out;      /* EPOLLOUT is in the interest set */
} conn;

/* epoll_event.data.ptr of the two non-connection descriptors. */
static char listener_tag, signal_tag;

static char buf[BUF_SIZE];

static void
conn_close(conn *c)
{
    close(c->fd); /* also removes it from the epoll set */
    free(c->pending);
    free(c);
}

static int
set_interest(int ep, conn *c, bool out)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET | (out ? EPOLLOUT : 0u),
                             .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
        return -1;
    }
    c->want_out = out;
    return 0;
}

/* Writes out what a short write left behind. 1: all sent, 0: still pending, -1: error. */
static int
flush_pending(conn *c)
{
    while (c->pending_off < c->pending_len) {
        ssize_t n = write(c->fd, c->pending + c->pending_off, c->pending_len - c->pending_off);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == EAGAIN ? 0 : -1;
        }
        c->pending_off += (size_t) n;
    }
    c->pending_off = c->pending_len = 0;
    return 1;
}

/* Echoes everything readable until EAGAIN (0), a short write (0, bytes pending) or the
 * end of the connection (-1). */
static int
echo_until_blocked(conn *c)
{
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n == 0) {
            return -1;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == EAGAIN ? 0 : -1;
        }
        size_t sent = 0;
        while (sent < (size_t) n) {
            ssize_t w = write(c->fd, buf + sent, (size_t) n - sent);
            if (w < 0 && errno == EINTR) {
                continue;
            }
            if (w < 0 && errno != EAGAIN) {
                return -1;
            }
            if (w < 0) {
                break; /* the send buffer is full */
            }
            sent += (size_t) w;
        }
        if (sent < (size_t) n) {
            if (!c->pending && !(c->pending = malloc(BUF_SIZE))) {
                return -1;
            }
            memcpy(c->pending, buf + sent, (size_t) n - sent);
            c->pending_off = 0;
            c->pending_len = (size_t) n - sent;
            return 0;
        }
    }
}

static void
on_conn(int ep, conn *c, uint32_t events)
{
    if (events & EPOLLERR) {
        conn_close(c);
        return;
    }
    if (c->pending_len) {
        int rc = flush_pending(c);
        if (rc < 0) {
            conn_close(c);
            return;
        }
        if (rc == 0) {
            return; /* still blocked on the send buffer; EPOLLOUT stays armed */
        }
    }
    /* Nothing pending: read (the data that arrived while we waited may have fired its
     * edge already, so read even when this event is only EPOLLOUT). */
    if (echo_until_blocked(c) < 0) {
        conn_close(c);
        return;
    }
    bool out = c->pending_len != 0;
    if (out != c->want_out && set_interest(ep, c, out) < 0) {
        conn_close(c);
    }
}

static void
on_accept(int ep, int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno != EAGAIN) {
                /* EMFILE and friends: the connection stays queued; the next accept edge
                 * (another client) retries it. The driver raises RLIMIT_NOFILE. */
                perror("hand_epoll_echo: accept4");
            }
            return;
        }
        int one = 1;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *c = calloc(1, sizeof *c);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = c};
        if (!c || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        /* Data may have arrived before the registration; the ET edge then came and went. */
        on_conn(ep, c, EPOLLIN);
    }
}

int
main(int argc, char **argv)
{
    int sfd, lfd, ep;
    int rc = server_start(argc, argv, "hand_epoll_echo", SOCK_NONBLOCK, SFD_NONBLOCK, &lfd, &sfd);
    if (rc != 0) {
        return rc;
    }
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        fprintf(stderr, "hand_epoll_echo: epoll_create1: %s\n", strerror(errno));
        return 1;
    }
    struct epoll_event lev = {.events = EPOLLIN | EPOLLET, .data.ptr = &listener_tag};
    struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &signal_tag};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &sev) < 0) {
        fprintf(stderr, "hand_epoll_echo: epoll_ctl: %s\n", strerror(errno));
        return 1;
    }
    server_print_bound(lfd, "hand_epoll_echo");

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            fprintf(stderr, "hand_epoll_echo: epoll_wait: %s\n", strerror(errno));
            return 1;
        }
        for (int i = 0; i < n; i++) {
            void *p = events[i].data.ptr;
            if (p == &listener_tag) {
                on_accept(ep, lfd);
            } else if (p == &signal_tag) {
                struct signalfd_siginfo si;
                if (read(sfd, &si, sizeof si) == (ssize_t) sizeof si) {
                    fprintf(stderr, "hand_epoll_echo: signal %u, stopping\n", si.ssi_signo);
                    /* Open connections go with the process, as in the other servers. */
                    return 0;
                }
            } else {
                on_conn(ep, p, events[i].events);
            }
        }
    }
}
