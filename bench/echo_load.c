/*
 * bench/echo_load.c — echo throughput and latency on loopback, with a load
 * generator of our own.
 *
 *   bench_echo_load                          the standard set: 100 x 64 B, 1000 x 64 B,
 *                                            10 x 16 KiB, depth 1, 3 s each, both backends
 *   bench_echo_load -c CONNS -s BYTES -d DEPTH -t SECS [-b epoll|io_uring] [-w WORKERS]
 *   bench_echo_load -a HOST:PORT ...         drive an external echo server instead (e.g.
 *                                            build/examples/echo_server, or Tokio's
 *                                            bench/tokio tokio_echo) with the same clients
 *
 * The server (the echo loop of DESIGN.md §1) and the clients run on two
 * separate runtimes in this process, each with its own I/O driver on the
 * backend under test. Each client connection is one fiber that keeps DEPTH
 * messages in flight, verifies every echoed byte against the pattern it sent,
 * and records each message's round trip in a log-linear histogram. Prints
 * messages/s, MiB/s each way, p50/p99/p999 latency and errors (which must be 0).
 */
#include "blitzio.h"
#include "blitzio/net.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define NBUCKETS  1024
#define MAX_DEPTH 64

typedef struct config {
    int conns, size, depth, secs;
    unsigned workers;
    const char *backend;
    const char *external; /* drive this server instead of an in-process one */
} config;

typedef struct run {
    const config *cfg;
    blz_addr addr;
    blz_instant deadline;
    _Atomic unsigned long long msgs, errors, connected;
    _Atomic unsigned long long hist[NBUCKETS];
} run;

static unsigned
bucket_of(uint64_t ns)
{
    if (ns < 1024) {
        return (unsigned) (ns / 16);
    }
    unsigned msb = 63u - (unsigned) __builtin_clzll(ns);
    unsigned b = 64 + (msb - 10) * 32 + (unsigned) ((ns >> (msb - 5)) & 31);
    return b < NBUCKETS ? b : NBUCKETS - 1;
}

static uint64_t
bucket_mid(unsigned b)
{
    if (b < 64) {
        return (uint64_t) b * 16 + 8;
    }
    unsigned msb = (b - 64) / 32 + 10;
    uint64_t lo = ((uint64_t) 32 + (b - 64) % 32) << (msb - 5);
    return lo + ((uint64_t) 1 << (msb - 5)) / 2;
}

static uint64_t
percentile(run *r, double p)
{
    unsigned long long total = atomic_load(&r->msgs), seen = 0;
    unsigned long long want = (unsigned long long) (p * (double) total);
    for (unsigned b = 0; b < NBUCKETS; b++) {
        seen += atomic_load(&r->hist[b]);
        if (seen > want) {
            return bucket_mid(b);
        }
    }
    return 0;
}

/* Byte i of message `seq` on connection `id`. */
static inline unsigned char
pat(uint64_t id, uint64_t seq, size_t i)
{
    return (unsigned char) (id * 0x9E37u + seq * 131u + i * 7u + (i >> 8));
}

/* ---- server ------------------------------------------------------------------------ */

static void *
echo(void *arg)
{
    blz_tcp_stream *s = arg;
    static _Thread_local char unused;
    (void) unused;
    char *buf = malloc(65536);
    for (;;) {
        ssize_t n = buf ? blz_tcp_read(s, buf, 65536) : -1;
        if (n <= 0 || blz_tcp_write_all(s, buf, (size_t) n) < 0) {
            break;
        }
    }
    free(buf);
    blz_tcp_close(s);
    return NULL;
}

static void *
serve(void *arg)
{
    blz_tcp_listener *l = arg;
    for (;;) {
        blz_tcp_stream *s;
        int rc = blz_tcp_accept(l, &s, NULL);
        if (rc == -ECANCELED) {
            return NULL;
        }
        if (rc == 0) {
            blz_tcp_set_nodelay(s, true);
            if (blz_spawn(echo, s, NULL) < 0) {
                blz_tcp_close(s);
            }
        }
    }
}

typedef struct server {
    run *r;
    blz_tcp_listener *l;
    blz_join *acceptor;
} server;

static void *
server_start(void *arg)
{
    server *sv = arg;
    if (blz_tcp_listen_addr(&sv->r->addr, 4096, &sv->l) < 0 ||
        blz_tcp_listener_addr(sv->l, &sv->r->addr) < 0) {
        return (void *) 1;
    }
    return blz_spawn(serve, sv->l, &sv->acceptor) < 0 ? (void *) 1 : NULL;
}

static void *
server_stop(void *arg)
{
    server *sv = arg;
    blz_tcp_listener_close(sv->l);
    blz_join_wait(sv->acceptor, NULL);
    return NULL;
}

/* ---- clients ------------------------------------------------------------------------ */

static run *g_run;

static void *
client(void *arg)
{
    run *r = g_run;
    const config *c = r->cfg;
    uint64_t id = (uint64_t) (uintptr_t) arg;
    unsigned long long *hist = calloc(NBUCKETS, sizeof *hist);
    unsigned char *out = malloc((size_t) c->size), *in = malloc((size_t) c->size);
    blz_tcp_stream *s = NULL;
    unsigned long long done = 0, errors = 0;
    if (!hist || !out || !in || blz_tcp_connect_addr(&r->addr, &s) < 0) {
        errors++;
        goto out;
    }
    atomic_fetch_add(&r->connected, 1);
    blz_tcp_set_nodelay(s, true);
    blz_instant sent_at[MAX_DEPTH];
    uint64_t next = 0, acked = 0;
    for (;;) {
        bool sending = blz_now() < r->deadline;
        if (sending && next - acked < (uint64_t) c->depth) {
            for (size_t i = 0; i < (size_t) c->size; i++) {
                out[i] = pat(id, next, i);
            }
            sent_at[next % MAX_DEPTH] = blz_now();
            if (blz_tcp_write_all(s, out, (size_t) c->size) < 0) {
                errors++;
                break;
            }
            next++;
            continue;
        }
        if (acked == next) {
            break; /* past the deadline and nothing in flight */
        }
        size_t got = 0;
        while (got < (size_t) c->size) {
            ssize_t n = blz_tcp_read(s, in + got, (size_t) c->size - got);
            if (n <= 0) {
                break;
            }
            got += (size_t) n;
        }
        int bad = got != (size_t) c->size;
        for (size_t i = 0; !bad && i < got; i++) {
            bad = in[i] != pat(id, acked, i);
        }
        if (bad) {
            errors++;
            break;
        }
        hist[bucket_of(blz_now() - sent_at[acked % MAX_DEPTH])]++;
        acked++;
        done++;
    }
out:
    if (s) {
        blz_tcp_close(s);
    }
    if (hist) {
        for (unsigned b = 0; b < NBUCKETS; b++) {
            if (hist[b]) {
                atomic_fetch_add(&r->hist[b], hist[b]);
            }
        }
    }
    free(hist);
    free(out);
    free(in);
    atomic_fetch_add(&r->msgs, done);
    atomic_fetch_add(&r->errors, errors);
    return NULL;
}

static void *
drive(void *arg)
{
    run *r = arg;
    const config *c = r->cfg;
    blz_join **joins = calloc((size_t) c->conns, sizeof *joins);
    if (!joins) {
        return (void *) 1;
    }
    r->deadline = blz_instant_add(blz_now(), blz_secs(c->secs));
    int n = 0;
    for (; n < c->conns; n++) {
        if (blz_spawn(client, (void *) (uintptr_t) n, &joins[n]) < 0) {
            atomic_fetch_add(&r->errors, 1);
            break;
        }
    }
    blz_join_all(joins, (size_t) n, NULL);
    free(joins);
    return NULL;
}

static blz_runtime *
make_rt(const config *c)
{
    blz_runtime_config rc;
    blz_runtime_config_default(&rc);
    rc.backend = c->backend;
    if (c->workers) {
        rc.workers = c->workers;
    }
    blz_runtime *rt = NULL;
    return blz_runtime_new(&rc, &rt) == 0 ? rt : NULL;
}

static int
run_one(const config *c)
{
    static run r;
    memset(&r, 0, sizeof r);
    r.cfg = c;
    g_run = &r;
    if (blz_addr_parse(c->external ? c->external : "127.0.0.1:0", &r.addr) < 0) {
        fprintf(stderr, "echo_load: bad address %s\n", c->external);
        return 1;
    }
    blz_runtime *srv = c->external ? NULL : make_rt(c), *cli = make_rt(c);
    if ((!srv && !c->external) || !cli) {
        fprintf(stderr, "echo_load: cannot create runtimes\n");
        blz_runtime_free(srv);
        blz_runtime_free(cli);
        return 1;
    }
    const char *be = blz_runtime_backend(cli);
    server sv = {&r, NULL, NULL};
    void *failed = NULL;
    if (srv && (blz_runtime_block_on(srv, server_start, &sv, &failed) < 0 || failed)) {
        fprintf(stderr, "echo_load: server failed to start\n");
        blz_runtime_free(srv);
        blz_runtime_free(cli);
        return 1;
    }
    blz_instant t0 = blz_now();
    blz_runtime_block_on(cli, drive, &r, NULL);
    double secs = (double) (blz_now() - t0) / 1e9;
    if (srv) {
        blz_runtime_block_on(srv, server_stop, &sv, NULL);
    }
    blz_runtime_free(cli);
    blz_runtime_free(srv);
    unsigned long long msgs = atomic_load(&r.msgs), errs = atomic_load(&r.errors);
    double mib = (double) msgs * c->size / (1024.0 * 1024.0) / secs;
    printf("| %-8s | %5d | %6d | %5d | %10.0f | %8.1f | %8.1f | %8.1f | %9.1f | %6llu |\n", be,
           c->conns, c->size, c->depth, (double) msgs / secs, mib, percentile(&r, 0.5) / 1e3,
           percentile(&r, 0.99) / 1e3, percentile(&r, 0.999) / 1e3, errs);
    fflush(stdout);
    return errs != 0 ||
           (unsigned long long) atomic_load(&r.connected) != (unsigned long long) c->conns;
}

static void
header(void)
{
    printf("| backend  | conns |  bytes | depth |      msg/s |    MiB/s |  p50 us |  p99 us |  "
           "p999 us | errors |\n");
    printf("|----------|-------|--------|-------|------------|----------|----------|----------|----"
           "-------|--------|\n");
}

int
main(int argc, char **argv)
{
    config one = {0, 64, 1, 3, 0, NULL, NULL};
    int custom = 0, opt;
    const char *backend = NULL, *external = NULL;
    while ((opt = getopt(argc, argv, "c:s:d:t:b:w:a:")) != -1) {
        switch (opt) {
        case 'a':
            external = optarg;
            break;
        case 'c':
            one.conns = atoi(optarg);
            custom = 1;
            break;
        case 's':
            one.size = atoi(optarg);
            custom = 1;
            break;
        case 'd':
            one.depth = atoi(optarg);
            custom = 1;
            break;
        case 't':
            one.secs = atoi(optarg);
            break;
        case 'b':
            backend = optarg;
            break;
        case 'w':
            one.workers = (unsigned) atoi(optarg);
            break;
        default:
            fprintf(stderr,
                    "usage: %s [-c conns] [-s bytes] [-d depth] [-t secs] "
                    "[-b epoll|io_uring] [-w workers]\n",
                    argv[0]);
            return 2;
        }
    }
    if (custom && one.conns <= 0) {
        one.conns = 100;
    }
    if (one.size < 1 || one.size > (1 << 20) || one.depth < 1 || one.depth > MAX_DEPTH ||
        one.secs < 1 || (long) one.size * one.depth > (1L << 20)) {
        fprintf(stderr, "echo_load: size 1..1 MiB, depth 1..%d, size*depth <= 1 MiB\n", MAX_DEPTH);
        return 2;
    }
    /* 2 descriptors per connection, plus slack. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    const char *backends[2] = {"epoll", "io_uring"};
    int nb = 2;
    if (backend) {
        backends[0] = backend;
        nb = 1;
    }
    one.external = external;
    config set[3] = {{100, 64, 1, one.secs, one.workers, NULL, external},
                     {1000, 64, 1, one.secs, one.workers, NULL, external},
                     {10, 16384, 1, one.secs, one.workers, NULL, external}};
    int nset = 3;
    if (custom) {
        set[0] = one;
        nset = 1;
    }
    header();
    int bad = 0;
    for (int b = 0; b < nb; b++) {
        for (int i = 0; i < nset; i++) {
            set[i].backend = backends[b];
            bad |= run_one(&set[i]);
        }
    }
    return bad;
}
