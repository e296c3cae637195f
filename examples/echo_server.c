/*
 * examples/echo_server.c — the echo server of DESIGN.md §1.
 *
 *   build/examples/echo_server [--stackless] [address]   (default 127.0.0.1:8080)
 *
 * One task per connection, in one of the two kinds the scheduler runs:
 *   - a fiber (the default): straight-line code, no callbacks, a 16 KiB
 *     buffer per connection;
 *   - with --stackless, a stackless future: a small state machine in the task
 *     cell that waits for readiness (blz_tcp_ready_fut), then reads into a
 *     buffer of the worker thread and writes straight back from it, as a
 *     hand-written epoll loop does. Per connection it keeps no stack and no
 *     buffer, which counts when there are thousands of connections.
 * On start it prints "echo_server: listening on ADDR (backend NAME)" to stdout
 * (the first line; bench/compare/net.sh reads the address from it). Runs until
 * SIGINT or SIGTERM: a shutdown coordinator (blitzio/shutdown.h) listens for
 * them, and a task waiting on it closes the listener, which ends the accept
 * loop with -ECANCELED.
 */
#include "blitzio.h"
#include "blitzio/net.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 16 KiB reads match the other servers of bench/compare/net.sh. */
enum { BUF_SIZE = 16384 };

/* ---- a fiber per connection --------------------------------------------------- */

static void *
echo(void *arg)
{
    blz_tcp_stream *s = arg;
    /* Echo traffic is small request/response: no Nagle delay. The buffer lives on
     * the heap (as Tokio's does): on the fiber's stack it would put the frames of
     * every read four pages below echo's own, and a thousand connections would
     * touch twice the pages. */
    blz_tcp_set_nodelay(s, true);
    char *buf = malloc(BUF_SIZE);
    for (; buf;) {
        ssize_t n = blz_tcp_read(s, buf, BUF_SIZE); /* suspends this task only */
        if (n <= 0) {
            break;
        }
        if (blz_tcp_write_all(s, buf, (size_t) n) < 0) {
            break;
        }
    }
    free(buf);
    blz_tcp_close(s);
    return NULL;
}

/* ---- a stackless future per connection ------------------------------------ */

/* The worker thread's buffer. A poll runs on one thread from start to end, so
 * it may use it until it returns; nothing in it outlives the poll. */
static _Thread_local char scratch[BUF_SIZE];

typedef struct echo_conn {
    blz_future base;
    blz_tcp_stream *s;
    blz_io_future io; /* the readiness wait, or the write of `tail` */
    char *tail;       /* what a short write left unsent (heap), while `writing` */
    bool waiting;     /* io holds a readiness wait */
    bool writing;     /* io holds a write_all of tail */
} echo_conn;

static blz_poll
echo_conn_poll(blz_future *base, blz_context *cx)
{
    echo_conn *c = (echo_conn *) base;
    for (;;) {
        if (c->writing) {
            if (blz_future_poll(&c->io.base, cx) == BLZ_PENDING) {
                return BLZ_PENDING;
            }
            c->writing = false;
            free(c->tail);
            c->tail = NULL;
            if (c->io.base.result < 0) {
                break;
            }
        }
        if (!c->waiting) {
            blz_tcp_ready_fut(c->s, BLZ_READABLE, &c->io);
            c->waiting = true;
        }
        if (blz_future_poll(&c->io.base, cx) == BLZ_PENDING) {
            return BLZ_PENDING;
        }
        c->waiting = false;
        if (c->io.base.result < 0) {
            break;
        }
        ssize_t n = blz_tcp_try_read(c->s, scratch, BUF_SIZE);
        if (n == -EAGAIN) {
            continue; /* readiness is a hint; this read cleared it */
        }
        if (n <= 0) {
            break; /* end of stream, or an error */
        }
        ssize_t w = blz_tcp_try_write(c->s, scratch, (size_t) n);
        if (w == -EAGAIN) {
            w = 0;
        }
        if (w < 0) {
            break;
        }
        if (w < n) {
            /* The send buffer is full: keep the rest, and wait to write it. */
            c->tail = malloc((size_t) (n - w));
            if (!c->tail) {
                break;
            }
            memcpy(c->tail, scratch + w, (size_t) (n - w));
            blz_tcp_write_all_fut(c->s, c->tail, (size_t) (n - w), &c->io);
            c->writing = true;
        }
    }
    blz_tcp_close(c->s);
    base->result = 0;
    return BLZ_READY;
}

/* Dropped unfinished (the runtime is freed while the connection is open). */
static void
echo_conn_drop(blz_future *base)
{
    echo_conn *c = (echo_conn *) base;
    if (c->waiting || c->writing) {
        blz_future_drop(&c->io.base);
    }
    free(c->tail);
    blz_tcp_close(c->s);
}

static const blz_future_vtable echo_conn_vtable = {echo_conn_poll, echo_conn_drop};

/* The future is copied into its task cell; `io` is filled there, at the first poll. */
static int
spawn_echo_conn(blz_tcp_stream *s)
{
    blz_tcp_set_nodelay(s, true);
    echo_conn c;
    memset(&c, 0, sizeof c);
    blz_future_init(&c.base, &echo_conn_vtable);
    c.s = s;
    return blz_spawn_future(&c.base, sizeof c, NULL);
}

/* ---- serving ------------------------------------------------------------------- */

static bool stackless; /* --stackless */

static blz_shutdown stop; /* triggered by SIGINT or SIGTERM */

/* A task: waits for a stop signal, then closes the listener. */
static void *
wait_for_stop(void *arg)
{
    int sig = blz_shutdown_wait(&stop);
    fprintf(stderr, "echo_server: signal %d, stopping\n", sig);
    blz_tcp_listener_close(arg);
    return NULL;
}

static void *
serve(void *arg)
{
    const char *addr = arg;
    blz_tcp_listener *l;
    int rc = blz_tcp_listen(addr, &l);
    if (rc < 0) {
        fprintf(stderr, "echo_server: listen %s: %s\n", addr, blz_strerror(rc));
        return (void *) 1;
    }
    /* The address is read before the stopper exists: once it runs, it
     * may close the socket at any moment. */
    blz_addr bound;
    bool bound_ok = blz_tcp_listener_addr(l, &bound) == 0;
    blz_join *stopper = NULL;
    (void) blz_shutdown_init(&stop);
    if (blz_shutdown_on_signals(&stop, NULL, 0) < 0 || blz_spawn(wait_for_stop, l, &stopper) < 0) {
        (void) blz_shutdown_deinit(&stop);
        blz_tcp_listener_close(l);
        return (void *) 1;
    }
    /* Announced only once the stop signals are ours: a SIGTERM sent as soon as
     * the address is printed must stop the server, not kill it. */
    char text[BLZ_ADDR_STRLEN];
    if (bound_ok && blz_addr_format(&bound, text, sizeof text) > 0) {
        printf("echo_server: listening on %s (backend %s)\n", text,
               blz_runtime_backend(blz_runtime_current()));
        fflush(stdout);
    }
    for (;;) {
        blz_tcp_stream *s;
        rc = blz_tcp_accept(l, &s, NULL);
        if (rc == -ECANCELED) {
            break; /* closed by the stop signal */
        }
        if (rc < 0) {
            continue; /* a failed accept concerns one connection; keep serving */
        }
        if ((stackless ? spawn_echo_conn(s) : blz_spawn(echo, s, NULL)) < 0) {
            blz_tcp_close(s);
        }
    }
    blz_join_wait(stopper, NULL);
    (void) blz_shutdown_deinit(&stop);
    return NULL;
}

int
main(int argc, char **argv)
{
    int arg = 1;
    if (arg < argc && strcmp(argv[arg], "--stackless") == 0) {
        stackless = true;
        arg++;
    }
    const char *addr = arg < argc ? argv[arg] : "127.0.0.1:8080";
    blz_runtime *rt;
    int rc = blz_runtime_new(NULL, &rt);
    if (rc < 0) {
        fprintf(stderr, "echo_server: runtime: %s\n", blz_strerror(rc));
        return 1;
    }
    void *failed = NULL;
    rc = blz_runtime_block_on(rt, serve, (void *) addr, &failed);
    blz_runtime_free(rt); /* closes the connections still open */
    return rc < 0 || failed ? 1 : 0;
}
