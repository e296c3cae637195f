/*
 * tests/net_common.h — helpers shared by the net_* and io_* tests: a runtime
 * on the backend ctest asked for (skip with the reason when it is not
 * available), loopback listeners and a byte pattern that can be verified
 * anywhere in a stream.
 */
#ifndef BLZ_TEST_NET_COMMON_H
#define BLZ_TEST_NET_COMMON_H

#include "blitzio.h"
#include "blitzio/net.h"
#include "blitzio/time.h"
#include "harness.h"
#include "io/driver.h"
#include "net/sock.h"
#include "rt/current.h"
#include "rt_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

/* Runs fn(arg) as a fiber on a fresh runtime and frees it; returns fn's value. */
static inline void *
net_run(unsigned workers, blz_task_fn fn, void *arg)
{
    return backend_run(workers, fn, arg);
}

/* The driver of the runtime the calling task runs on. */
static inline blz__io_driver *
net_driver(void)
{
    return blz__rt_io(blz__rt_current());
}

/* Whether stream `s` reads through completion receive (io_uring's lent
 * buffers) rather than recv(2). */
static inline bool
net_rx_on(const blz_tcp_stream *s)
{
    return s->sk.src.rx_on != 0;
}

/* Completion receive on rt (tests/net_rx.c): buffers filled by the kernel
 * and still held, and receives armed; 0 and 0 without it. */
static inline void
net_rx_counts(blz_runtime *rt, unsigned *out, unsigned *armed)
{
    unsigned budget, touched;
    blz__io_driver_rx_counts(blz__rt_io(rt), out, armed, &budget, &touched);
}

/* The bytes one arming of a stream's receive may take on rt (0: no limit,
 * or no completion receive). */
static inline unsigned
net_rx_budget(blz_runtime *rt)
{
    unsigned out, armed, budget, touched;
    blz__io_driver_rx_counts(blz__rt_io(rt), &out, &armed, &budget, &touched);
    return budget;
}

/* Completion receive's buffers on rt whose memory was ever written. */
static inline unsigned
net_rx_touched(blz_runtime *rt)
{
    unsigned out, armed, budget, touched;
    blz__io_driver_rx_counts(blz__rt_io(rt), &out, &armed, &budget, &touched);
    return touched;
}

/* Waits (bounded) until no buffer is held and no receive armed: the closes'
 * cancellations have run. From outside the runtime or from a task. */
static inline void
net_wait_rx_idle(blz_runtime *rt)
{
    unsigned out = 0, armed = 0;
    for (int i = 0; i < 5000; i++) {
        net_rx_counts(rt, &out, &armed);
        if (out == 0 && armed == 0) {
            return;
        }
        if (blz__rt_current()) {
            (void) blz_sleep(blz_ms(1));
        } else {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    CHECK_EQ(out, 0u);
    CHECK_EQ(armed, 0u);
}

/* A listener on 127.0.0.1 with a kernel-picked port; its address in *addr. */
static inline blz_tcp_listener *
net_listen_any(blz_addr *addr)
{
    blz_tcp_listener *l = NULL;
    CHECK_OK(blz_tcp_listen("127.0.0.1:0", &l));
    CHECK_OK(blz_tcp_listener_addr(l, addr));
    CHECK_GT(blz_addr_port(addr), 0);
    return l;
}

/* A connected pair through `l` (listening on `addr`): *client connected, *server accepted. */
static inline void
net_pair(blz_tcp_listener *l, const blz_addr *addr, blz_tcp_stream **server,
         blz_tcp_stream **client)
{
    CHECK_OK(blz_tcp_connect_addr(addr, client));
    CHECK_OK(blz_tcp_accept(l, server, NULL));
}

/* A plain blocking socket connected to `l` (listening on `addr`), its
 * reads given up after 5 s (-1, EAGAIN), and the stream `l` accepted for it
 * in *server: a peer that runs none of the runtime's I/O. */
static inline int
net_plain_peer(blz_tcp_listener *l, const blz_addr *addr, blz_tcp_stream **server)
{
    size_t salen = 0;
    const struct sockaddr *sa = blz_addr_sockaddr(addr, &salen);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct timeval tv = {5, 0};
    CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    CHECK_OK(connect(fd, sa, (socklen_t) salen));
    CHECK_OK(blz_tcp_accept(l, server, NULL));
    return fd;
}

/* Byte `i` of the test pattern of stream `seed`: any offset can be checked. */
static inline unsigned char
net_pattern(uint64_t seed, uint64_t i)
{
    uint64_t x = (i >> 3) * 0x9E3779B97F4A7C15ull + seed;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 32;
    return (unsigned char) (x >> ((i & 7) * 8));
}

static inline void
net_fill(uint64_t seed, uint64_t off, unsigned char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        buf[i] = net_pattern(seed, off + i);
    }
}

static inline int
net_verify(uint64_t seed, uint64_t off, const unsigned char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (buf[i] != net_pattern(seed, off + i)) {
            return 0;
        }
    }
    return 1;
}

/* Reads exactly n bytes from a TCP stream; returns 0, or -errno / -EPIPE at early EOF. */
static inline int
net_read_exact(blz_tcp_stream *s, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = blz_tcp_read(s, (char *) buf + got, n - got);
        if (r < 0) {
            return (int) r;
        }
        if (r == 0) {
            return -EPIPE;
        }
        got += (size_t) r;
    }
    return 0;
}

#endif
