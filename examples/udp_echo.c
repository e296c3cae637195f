/*
 * examples/udp_echo.c — a UDP echo server.
 *
 *   build/examples/udp_echo [address]         (default 127.0.0.1:8080)
 *
 * Sends every datagram back to where it came from. Runs until SIGINT or
 * SIGTERM (a task waits on a shutdown coordinator, then closes the socket,
 * which ends the receive loop with -ECANCELED).
 */
#include "blitzio.h"
#include "blitzio/net.h"

#include <stdio.h>

static blz_shutdown stop; /* triggered by SIGINT or SIGTERM */

static void *
wait_for_stop(void *arg)
{
    int sig = blz_shutdown_wait(&stop);
    fprintf(stderr, "udp_echo: signal %d, stopping\n", sig);
    blz_udp_close(arg);
    return NULL;
}

static void *
serve(void *arg)
{
    const char *addr = arg;
    blz_udp_socket *u;
    int rc = blz_udp_bind(addr, &u);
    if (rc < 0) {
        fprintf(stderr, "udp_echo: bind %s: %s\n", addr, blz_strerror(rc));
        return (void *) 1;
    }
    blz_addr bound;
    char text[BLZ_ADDR_STRLEN];
    if (blz_udp_local_addr(u, &bound) == 0 && blz_addr_format(&bound, text, sizeof text) > 0) {
        printf("udp_echo: listening on %s (backend %s)\n", text,
               blz_runtime_backend(blz_runtime_current()));
        fflush(stdout);
    }
    blz_join *stopper = NULL;
    (void) blz_shutdown_init(&stop);
    if (blz_shutdown_on_signals(&stop, NULL, 0) < 0 || blz_spawn(wait_for_stop, u, &stopper) < 0) {
        (void) blz_shutdown_deinit(&stop);
        blz_udp_close(u);
        return (void *) 1;
    }
    static char buf[65536];
    unsigned long long datagrams = 0;
    for (;;) {
        blz_addr from;
        ssize_t n = blz_udp_recv_from(u, buf, sizeof buf, &from);
        if (n == -ECANCELED) {
            break;
        }
        if (n < 0) {
            continue; /* e.g. an ICMP error from an earlier reply */
        }
        if (blz_udp_send_to(u, buf, (size_t) n, &from) >= 0) {
            datagrams++;
        }
    }
    blz_join_wait(stopper, NULL);
    (void) blz_shutdown_deinit(&stop);
    printf("udp_echo: %llu datagrams echoed\n", datagrams);
    return NULL;
}

int
main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:8080";
    blz_runtime *rt;
    int rc = blz_runtime_new(NULL, &rt);
    if (rc < 0) {
        fprintf(stderr, "udp_echo: runtime: %s\n", blz_strerror(rc));
        return 1;
    }
    void *failed = NULL;
    rc = blz_runtime_block_on(rt, serve, (void *) addr, &failed);
    blz_runtime_free(rt);
    return rc < 0 || failed ? 1 : 0;
}
