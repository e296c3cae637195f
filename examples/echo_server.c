/*
 * examples/echo_server.c — the echo server of DESIGN.md §1.
 *
 *   build/examples/echo_server [address]      (default 127.0.0.1:8080)
 *
 * One fiber task per connection, straight-line code, no callbacks. On start it
 * prints "echo_server: listening on ADDR (backend NAME)" to stdout (the first line;
 * bench/compare/net.sh reads the address from it). Runs until
 * SIGINT or SIGTERM: a shutdown coordinator (blitzio/shutdown.h) listens for
 * them, and a task waiting on it closes the listener, which ends the accept
 * loop with -ECANCELED.
 */
#include "blitzio.h"
#include "blitzio/net.h"

#include <stdio.h>
#include <stdlib.h>

static void *
echo(void *arg)
{
    blz_tcp_stream *s = arg;
    /* Echo traffic is small request/response: no Nagle delay. 16 KiB reads match the
     * other servers of bench/compare/net.sh. The buffer lives on the heap (as Tokio's
     * does): on the fiber's stack it would put the frames of every read four pages
     * below echo's own, and a thousand connections would touch twice the pages. */
    blz_tcp_set_nodelay(s, true);
    enum { BUF_SIZE = 16384 };
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

static blz_shutdown stop; /* triggered by SIGINT or SIGTERM */

/* Runs on the blocking pool: waits for a stop signal, then closes the listener. */
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
    blz_addr bound;
    char text[BLZ_ADDR_STRLEN];
    if (blz_tcp_listener_addr(l, &bound) == 0 && blz_addr_format(&bound, text, sizeof text) > 0) {
        printf("echo_server: listening on %s (backend %s)\n", text,
               blz_runtime_backend(blz_runtime_current()));
        fflush(stdout);
    }
    blz_join *stopper = NULL;
    (void) blz_shutdown_init(&stop);
    if (blz_shutdown_on_signals(&stop, NULL, 0) < 0 || blz_spawn(wait_for_stop, l, &stopper) < 0) {
        (void) blz_shutdown_deinit(&stop);
        blz_tcp_listener_close(l);
        return (void *) 1;
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
        if (blz_spawn(echo, s, NULL) < 0) {
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
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:8080";
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
