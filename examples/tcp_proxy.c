/*
 * examples/tcp_proxy.c — a TCP proxy.
 *
 *   build/examples/tcp_proxy LISTEN_ADDR UPSTREAM_ADDR
 *   (for instance: tcp_proxy 127.0.0.1:8081 127.0.0.1:8080)
 *
 * For every client accepted on LISTEN_ADDR a fiber connects to UPSTREAM_ADDR
 * and copies both ways (blz_copy_bidirectional) until both sides have ended:
 * when one side stops sending, the proxy passes the end on to the other and
 * keeps copying the way that is still open. A client whose upstream cannot
 * be reached is closed. On start it prints "tcp_proxy: listening on ADDR
 * (backend NAME)" (the first line; tests read the address from it). Runs until SIGINT or
 * SIGTERM, which close the listener; connections still open are closed when
 * the runtime is freed.
 */
#include "blitzio.h"
#include "blitzio/net.h"
#include "blitzio/stream.h"

#include <inttypes.h>
#include <stdio.h>

static const char *upstream_addr;
static blz_shutdown stop; /* triggered by SIGINT or SIGTERM */

/* One proxied connection, in its own fiber. */
static void *
proxy(void *arg)
{
    blz_tcp_stream *client = arg;
    blz_tcp_stream *upstream;
    int rc = blz_tcp_connect(upstream_addr, &upstream);
    if (rc < 0) {
        fprintf(stderr, "tcp_proxy: connect %s: %s\n", upstream_addr, blz_strerror(rc));
        blz_tcp_close(client);
        return NULL;
    }
    uint64_t up = 0, down = 0;
    blz_duplex c = {blz_tcp_reader(client), blz_tcp_writer(client)};
    blz_duplex u = {blz_tcp_reader(upstream), blz_tcp_writer(upstream)};
    rc = blz_copy_bidirectional(c, u, &up, &down);
    if (rc < 0) {
        fprintf(stderr,
                "tcp_proxy: connection ended after %" PRIu64 " bytes up, %" PRIu64 " down: %s\n",
                up, down, blz_strerror(rc));
    }
    blz_tcp_close(upstream);
    blz_tcp_close(client);
    return NULL;
}

/* A task: waits for a stop signal, then closes the listener. */
static void *
wait_for_stop(void *arg)
{
    int sig = blz_shutdown_wait(&stop);
    fprintf(stderr, "tcp_proxy: signal %d, stopping\n", sig);
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
        fprintf(stderr, "tcp_proxy: listen %s: %s\n", addr, blz_strerror(rc));
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
        printf("tcp_proxy: listening on %s (backend %s)\n", text,
               blz_runtime_backend(blz_runtime_current()));
        fflush(stdout);
        fprintf(stderr, "tcp_proxy: upstream %s\n", upstream_addr);
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
        if (blz_spawn(proxy, s, NULL) < 0) {
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
    if (argc != 3) {
        fprintf(stderr, "usage: tcp_proxy LISTEN_ADDR UPSTREAM_ADDR\n");
        return 2;
    }
    upstream_addr = argv[2];
    blz_runtime *rt;
    int rc = blz_runtime_new(NULL, &rt);
    if (rc < 0) {
        fprintf(stderr, "tcp_proxy: runtime: %s\n", blz_strerror(rc));
        return 1;
    }
    void *failed = NULL;
    rc = blz_runtime_block_on(rt, serve, argv[1], &failed);
    blz_runtime_free(rt); /* closes the connections still open */
    return rc < 0 || failed ? 1 : 0;
}
