/*
 * examples/graceful_shutdown.c — a TCP server that shuts down gracefully on
 * SIGTERM or SIGINT.
 *
 *   build/examples/graceful_shutdown [ADDR] [DRAIN_MS]
 *       ADDR      listen address, default 127.0.0.1:8080 (port 0: the kernel picks)
 *       DRAIN_MS  how long open connections get to finish, default 5000
 *
 * Protocol: one request per line, "<id> <work_ms> <payload>\n". The server
 * answers "ACK <id>\n" the moment it takes a request, spends work_ms on it (a
 * sleep standing in for real work, at most 10 s), then answers
 * "OK <id> <payload>\n". An ACK is a promise: that request's OK will follow.
 *
 * Shutdown, with the blz_shutdown coordinator (blitzio/shutdown.h):
 *  1. SIGTERM or SIGINT triggers it; the acceptor, which races every accept
 *     against the shutdown, stops and closes the listener.
 *  2. Each connection finishes the request it has taken (the one it ACKed),
 *     then closes instead of taking another; an idle connection closes at once.
 *     Every connection holds a work guard until it is closed.
 *  3. The main task waits for the guards with a deadline (DRAIN_MS), prints
 *     how many connections were still open then, and the process exits 0.
 * A second SIGINT/SIGTERM during the drain ends the process the default way.
 *
 * It prints "listening on <addr>" (flushed) once it accepts connections, and
 * a summary line when it is done; tests/shutdown_graceful.c drives it.
 */
#include "blitzio.h"
#include "blitzio/net.h"
#include "blitzio/shutdown.h"
#include "blitzio/task.h"
#include "blitzio/time.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_BYTES 4096
#define MAX_WORK_MS    10000

typedef struct server {
    const char *addr;      /* where to listen */
    blz_duration drain;    /* how long connections get after the trigger */
    blz_shutdown sd;       /* the coordinator */
    blz_tcp_listener *l;   /* the listener; closed by the acceptor */
    atomic_long accepted;  /* connections taken */
    atomic_long completed; /* requests answered with OK */
    atomic_long refused;   /* requests left untaken because of the shutdown */
} server;

typedef struct conn {
    server *srv;
    blz_tcp_stream *s;
} conn;

/*
 * Reads into buf, unless the shutdown comes first: then -ESHUTDOWN. Used only
 * between requests, when nothing of the next request has arrived yet.
 */
static ssize_t
read_unless_shutdown(server *srv, blz_tcp_stream *s, char *buf, size_t n)
{
    blz_io_future rd;
    blz_shutdown_wait_future stop;
    blz_tcp_read_fut(s, buf, n, &rd);
    blz_shutdown_wait_fut(&srv->sd, &stop);
    blz_future *fs[2] = {&rd.base, &stop.base};
    int won = blz_race_futures(fs, 2); /* the loser is dropped: no byte is lost */
    if (won < 0) {
        return won;
    }
    return won == 0 ? rd.base.result : -ESHUTDOWN;
}

/* Answers one request line (without its '\n'). Returns 0 or a write error. */
static int
serve_request(server *srv, blz_tcp_stream *s, char *line)
{
    char out[LINE_MAX_BYTES + 64];
    char *rest = NULL;
    long id = strtol(line, &rest, 10);
    long work = strtol(rest, &rest, 10);
    if (*rest == ' ') {
        rest++;
    }
    if (work < 0) {
        work = 0;
    } else if (work > MAX_WORK_MS) {
        work = MAX_WORK_MS;
    }
    int n = snprintf(out, sizeof out, "ACK %ld\n", id);
    int rc = blz_tcp_write_all(s, out, (size_t) n);
    if (rc < 0) {
        return rc;
    }
    /* The request is taken: the shutdown does not interrupt it. */
    (void) blz_sleep(blz_ms(work));
    n = snprintf(out, sizeof out, "OK %ld %s\n", id, rest);
    rc = blz_tcp_write_all(s, out, (size_t) n);
    if (rc == 0) {
        atomic_fetch_add(&srv->completed, 1);
    }
    return rc;
}

static void *
conn_main(void *arg)
{
    conn *c = arg;
    server *srv = c->srv;
    char buf[LINE_MAX_BYTES];
    size_t have = 0;
    for (;;) {
        char *nl = memchr(buf, '\n', have);
        if (nl) {
            if (blz_shutdown_is_triggered(&srv->sd)) {
                atomic_fetch_add(&srv->refused, 1); /* not taken: no ACK sent */
                break;
            }
            *nl = '\0';
            if (serve_request(srv, c->s, buf) < 0) {
                break;
            }
            size_t used = (size_t) (nl + 1 - buf);
            memmove(buf, nl + 1, have - used);
            have -= used;
            continue;
        }
        if (have == sizeof buf) {
            break; /* a line too long: drop the connection */
        }
        ssize_t n;
        if (have == 0) {
            n = read_unless_shutdown(srv, c->s, buf, sizeof buf);
        } else {
            n = blz_tcp_read(c->s, buf + have, sizeof buf - have);
        }
        if (n <= 0) {
            break; /* end of stream, error, or the shutdown between requests */
        }
        have += (size_t) n;
    }
    blz_tcp_close(c->s);
    blz_shutdown_guard_release(&srv->sd);
    free(c);
    return NULL;
}

/* What runs instead of conn_main when it is aborted before it starts. */
static void
conn_never_ran(void *arg)
{
    conn *c = arg;
    blz_tcp_close(c->s);
    blz_shutdown_guard_release(&c->srv->sd);
    free(c);
}

static void *
acceptor_main(void *arg)
{
    server *srv = arg;
    for (;;) {
        blz_tcp_stream *s = NULL;
        blz_accept_future acc;
        blz_shutdown_wait_future stop;
        blz_tcp_accept_fut(srv->l, &s, NULL, &acc);
        blz_shutdown_wait_fut(&srv->sd, &stop);
        blz_future *fs[2] = {&stop.base, &acc.base}; /* a tie goes to the shutdown */
        if (blz_race_futures(fs, 2) != 1) {
            break;
        }
        if (acc.base.result < 0) {
            /* The accept future rides out descriptor exhaustion itself; an error
             * here is the listener's: do not spin on it. */
            (void) blz_sleep(blz_ms(10));
            continue;
        }
        if (blz_shutdown_guard_acquire(&srv->sd) < 0) {
            blz_tcp_close(s);
            break;
        }
        conn *c = malloc(sizeof *c);
        if (!c) {
            blz_tcp_close(s);
            blz_shutdown_guard_release(&srv->sd);
            continue;
        }
        c->srv = srv;
        c->s = s;
        if (blz_spawn_owned(conn_main, conn_never_ran, c, NULL) < 0) {
            conn_never_ran(c);
            continue;
        }
        atomic_fetch_add(&srv->accepted, 1);
    }
    blz_tcp_listener_close(srv->l); /* from now on connection attempts are refused */
    srv->l = NULL;
    return NULL;
}

static void *
server_main(void *arg)
{
    server *srv = arg;
    int rc = blz_tcp_listen(srv->addr, &srv->l);
    if (rc < 0) {
        fprintf(stderr, "graceful_shutdown: cannot listen on %s: %s\n", srv->addr,
                blz_strerror(rc));
        return (void *) (intptr_t) 1;
    }
    rc = blz_shutdown_on_signals(&srv->sd, NULL, 0); /* SIGINT and SIGTERM */
    if (rc < 0) {
        fprintf(stderr, "graceful_shutdown: cannot listen for signals: %s\n", blz_strerror(rc));
        blz_tcp_listener_close(srv->l);
        return (void *) (intptr_t) 1;
    }
    blz_addr bound;
    char name[BLZ_ADDR_STRLEN];
    if (blz_tcp_listener_addr(srv->l, &bound) == 0 &&
        blz_addr_format(&bound, name, sizeof name) > 0) {
        printf("listening on %s\n", name);
    } else {
        printf("listening on %s\n", srv->addr);
    }
    fflush(stdout);

    blz_join *acceptor;
    rc = blz_spawn(acceptor_main, srv, &acceptor);
    if (rc < 0) {
        fprintf(stderr, "graceful_shutdown: cannot start the acceptor: %s\n", blz_strerror(rc));
        blz_tcp_listener_close(srv->l);
        (void) blz_shutdown_deinit(&srv->sd);
        return (void *) (intptr_t) 1;
    }

    int signo = blz_shutdown_wait(&srv->sd);
    (void) blz_join_wait(acceptor, NULL); /* it sees the shutdown too, and stops accepting */
    printf("signal %d: stopped accepting; draining %ld connection(s) for up to %lld ms\n", signo,
           (long) blz_shutdown_pending(&srv->sd), (long long) (srv->drain / BLZ_NS_PER_MS));
    fflush(stdout);

    int left =
        blz_shutdown_wait_for_pending(&srv->sd, blz_instant_add(blz_clock_now(), srv->drain));
    if (left < 0) {
        left = (int) blz_shutdown_pending(&srv->sd);
    }
    printf("done: %ld connection(s) accepted, %ld request(s) completed, %ld refused after "
           "shutdown, %d connection(s) still open at the deadline\n",
           atomic_load(&srv->accepted), atomic_load(&srv->completed), atomic_load(&srv->refused),
           left);
    fflush(stdout);
    (void) blz_shutdown_deinit(&srv->sd);
    /* Connections still open are aborted when blz_run frees the runtime. */
    return NULL;
}

int
main(int argc, char **argv)
{
    /* Static: it must outlive the runtime and every task in it, aborted ones included. */
    static server srv;
    srv.addr = argc > 1 ? argv[1] : "127.0.0.1:8080";
    long drain_ms = argc > 2 ? strtol(argv[2], NULL, 10) : 5000;
    srv.drain = blz_ms(drain_ms > 0 ? drain_ms : 0);
    blz_shutdown_init(&srv.sd);

    blz_runtime *rt;
    int rc = blz_runtime_new(NULL, &rt);
    if (rc < 0) {
        fprintf(stderr, "graceful_shutdown: cannot create the runtime: %s\n", blz_strerror(rc));
        return 1;
    }
    void *status = NULL;
    rc = blz_runtime_block_on(rt, server_main, &srv, &status);
    blz_runtime_free(rt);
    if (rc < 0) {
        fprintf(stderr, "graceful_shutdown: %s\n", blz_strerror(rc));
        return 1;
    }
    return (int) (intptr_t) status;
}
