/*
 * A storm over completion receive: rounds of 48 connections on a runtime
 * with a pool of 16 receive buffers (so streams keep running it dry and
 * reading their sockets themselves), on one worker (the single-issuer ring,
 * where completion receive runs) and on three (the shared ring, where
 * streams use readiness: the same storm over the other path). Each client sends messages of random
 * sizes up to 40 KB and checks the echo byte for byte; the server side
 * reads with random sizes through read, readv and peek-then-read. A sixth
 * of the servers close after a random number of bytes and a sixth of the
 * clients reset their connection partway: the other side must see only a
 * correct prefix, then an end or an error, never a hang. After each round
 * no buffer is held and no receive is armed.
 * blz-test: timeout=600
 */
#include "../net_common.h"

#include <stdatomic.h>

#define ROUNDS 16
#define CONNS  48
#define MSGS   12
#define MAXMSG 40000

typedef struct conn {
    blz_tcp_stream *srv, *cli;
    uint64_t seed;
    unsigned kind;             /* 0: full echo, 1: server quits early, 2: client resets */
    size_t quit_at;            /* kind 1 and 2: after this many bytes */
    uint32_t srv_rng, cli_rng; /* one each: the two sides run at once */
} conn;

static _Atomic unsigned full_echoes, early_ends;
static _Atomic uint64_t echoed; /* bytes the clients got back and checked */

/* Reads up to n bytes with a way picked at random. */
static ssize_t
random_read(conn *c, unsigned char *buf, size_t n)
{
    switch (test_rand(&c->srv_rng) % 3) {
    case 0:
        return blz_tcp_read(c->srv, buf, n);
    case 1: {
        size_t half = n / 2 ? n / 2 : 1;
        blz_iovec iov[2] = {{buf, half}, {buf + half, n - half}};
        return blz_tcp_readv(c->srv, iov, n > 1 ? 2 : 1);
    }
    default: {
        ssize_t p = blz_tcp_peek(c->srv, buf, n);
        if (p <= 0) {
            return p;
        }
        return blz_tcp_read(c->srv, buf, (size_t) p); /* what the peek saw is there */
    }
    }
}

static void *
server(void *arg)
{
    conn *c = arg;
    unsigned char *buf = malloc(MAXMSG);
    size_t off = 0;
    for (;;) {
        size_t want = 1 + test_rand(&c->srv_rng) % MAXMSG;
        ssize_t n = random_read(c, buf, want);
        if (n <= 0) {
            CHECK(n == 0 || n == -ECONNRESET);
            break;
        }
        CHECK(net_verify(c->seed, off, buf, (size_t) n));
        off += (size_t) n;
        ssize_t w = blz_tcp_write_all(c->srv, buf, (size_t) n);
        if (w < 0) {
            CHECK(c->kind == 2 && (w == -EPIPE || w == -ECONNRESET));
            break;
        }
        if (c->kind == 1 && off >= c->quit_at) {
            break;
        }
    }
    blz_tcp_close(c->srv);
    free(buf);
    return NULL;
}

static void *
client(void *arg)
{
    conn *c = arg;
    unsigned char *out = malloc(MAXMSG), *in = malloc(MAXMSG);
    size_t sent = 0, got = 0;
    bool ended = false;
    for (int m = 0; m < MSGS && !ended; m++) {
        size_t n = 1 + test_rand(&c->cli_rng) % MAXMSG;
        net_fill(c->seed, sent, out, n);
        if (c->kind == 2 && sent + n > c->quit_at) {
            CHECK_OK(blz_tcp_set_linger(c->cli, true, 0));
            ended = true; /* the close below resets the connection */
            break;
        }
        int rc = blz_tcp_write_all(c->cli, out, n);
        if (rc < 0) {
            CHECK(c->kind == 1 && (rc == -EPIPE || rc == -ECONNRESET));
            ended = true;
            break;
        }
        sent += n;
        while (got < sent) {
            ssize_t r = blz_tcp_read(c->cli, in, sent - got < MAXMSG ? sent - got : MAXMSG);
            if (r <= 0) {
                CHECK(c->kind == 1 && (r == 0 || r == -ECONNRESET));
                ended = true;
                break;
            }
            CHECK(net_verify(c->seed, got, in, (size_t) r));
            got += (size_t) r;
            atomic_fetch_add(&echoed, (uint64_t) r);
        }
    }
    if (!ended) {
        CHECK_OK(blz_tcp_shutdown(c->cli, BLZ_SHUT_WR));
        char x;
        CHECK_EQ(blz_tcp_read(c->cli, &x, 1), 0);
        atomic_fetch_add(&full_echoes, 1);
    } else {
        atomic_fetch_add(&early_ends, 1);
    }
    blz_tcp_close(c->cli);
    free(out);
    free(in);
    return NULL;
}

static void *
round_main(void *arg)
{
    unsigned round = *(unsigned *) arg;
    blz_addr addr;
    blz_tcp_listener *l = net_listen_any(&addr);
    static conn conns[CONNS];
    blz_join *js[2 * CONNS];
    for (unsigned i = 0; i < CONNS; i++) {
        conn *c = &conns[i];
        memset(c, 0, sizeof *c);
        net_pair(l, &addr, &c->srv, &c->cli);
        c->seed = round * 1000u + i;
        c->srv_rng = 0x9e3779b9u * (round * CONNS + i + 1);
        c->cli_rng = c->srv_rng ^ 0x5bd1e995u;
        c->kind = i % 6 == 1 ? 1 : i % 6 == 2 ? 2 : 0;
        c->quit_at = 1 + test_rand(&c->cli_rng) % (MSGS * MAXMSG / 2);
        CHECK_OK(blz_spawn(server, c, &js[2 * i]));
        CHECK_OK(blz_spawn(client, c, &js[2 * i + 1]));
    }
    CHECK_OK(blz_join_all(js, 2 * CONNS, NULL));
    blz_tcp_listener_close(l);
    net_wait_rx_idle(blz__rt_current());
    return NULL;
}

static void
storm(unsigned workers)
{
    for (unsigned round = 0; round < ROUNDS; round++) {
        blz_runtime_config cfg;
        blz_runtime_config_default(&cfg);
        cfg.workers = workers;
        cfg.recv_buffers = 16;
        blz_runtime *rt = backend_runtime_cfg(&cfg);
        CHECK_OK(blz_runtime_block_on(rt, round_main, &round, NULL));
        blz_runtime_free(rt);
    }
}

static void
report(const char *what)
{
    printf("%s: %u full echoes, %u ended early, %.1f MB echoed\n", what,
           atomic_exchange(&full_echoes, 0), atomic_exchange(&early_ends, 0),
           (double) atomic_exchange(&echoed, 0) / 1e6);
}

BLZ_TEST(rx_storm_shared_ring)
{
    storm(3);
    CHECK_GT(atomic_load(&full_echoes), 0u);
    CHECK_GT(atomic_load(&early_ends), 0u);
    report("three workers");
}

BLZ_TEST(rx_storm_single_issuer_ring)
{
    storm(1);
    CHECK_GT(atomic_load(&full_echoes), 0u);
    CHECK_GT(atomic_load(&early_ends), 0u);
    report("one worker");
}
