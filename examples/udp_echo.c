/*
 * examples/udp_echo.c — a UDP echo server.
 *
 *   build/examples/udp_echo [address]         (default 127.0.0.1:8080)
 *
 * Sends every datagram back to where it came from, in batches (one
 * recvmmsg and one sendmmsg for up to 16 datagrams). Runs until SIGINT or
 * SIGTERM (a task waits on a shutdown coordinator, then closes the socket,
 * which ends the receive loop with -ECANCELED).
 */
#include "blitzio.h"
#include "blitzio/net.h"

#include <stdbool.h>
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
    /* The address is read before the stopper exists: once it runs, it
     * may close the socket at any moment. */
    blz_addr bound;
    bool bound_ok = blz_udp_local_addr(u, &bound) == 0;
    blz_join *stopper = NULL;
    (void) blz_shutdown_init(&stop);
    if (blz_shutdown_on_signals(&stop, NULL, 0) < 0 || blz_spawn(wait_for_stop, u, &stopper) < 0) {
        (void) blz_shutdown_deinit(&stop);
        blz_udp_close(u);
        return (void *) 1;
    }
    /* Announced only once the stop signals are ours: a SIGTERM sent as soon as
     * the address is printed must stop the server, not kill it. */
    char text[BLZ_ADDR_STRLEN];
    if (bound_ok && blz_addr_format(&bound, text, sizeof text) > 0) {
        printf("udp_echo: listening on %s (backend %s)\n", text,
               blz_runtime_backend(blz_runtime_current()));
        fflush(stdout);
    }
    /* Datagrams move in batches: one recvmmsg takes what is queued (up to
     * BATCH), one sendmmsg sends them back, each to its sender. */
    enum { BATCH = 16 };
    static char bufs[BATCH][65536];
    blz_addr from[BATCH];
    blz_udp_msg msgs[BATCH];
    unsigned long long datagrams = 0;
    bool closed = false;
    while (!closed) {
        for (int i = 0; i < BATCH; i++) {
            msgs[i] = (blz_udp_msg){.buf = bufs[i], .len = sizeof bufs[i], .addr = &from[i]};
        }
        ssize_t n = blz_udp_recv_many(u, msgs, BATCH);
        if (n == -ECANCELED) {
            break;
        }
        if (n < 0) {
            continue; /* e.g. an ICMP error from an earlier reply */
        }
        for (ssize_t i = 0; i < n; i++) {
            msgs[i].len = msgs[i].result; /* what came, back where it came from */
        }
        for (ssize_t done = 0; done < n;) {
            ssize_t sent = blz_udp_send_many(u, msgs + done, (size_t) (n - done));
            if (sent == -ECANCELED) {
                closed = true;
                break;
            }
            if (sent < 0) {
                done++; /* that reply failed alone: drop it, send the rest */
                continue;
            }
            datagrams += (unsigned long long) sent;
            done += sent;
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
