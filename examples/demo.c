/*
 * examples/demo.c — `make demo`: blitzio end to end.
 *
 * Phase 1, a short tour of the runtime:
 *   1. fan-out / fan-in: a fiber spawns 10,000 stackless tasks and 1,000 fibers
 *      that each sleep a little, then joins them all;
 *   2. a join tree: fibers that spawn two children each, 12 levels deep
 *      (8,191 fibers), summing their leaves on the way back up;
 *   3. a stackless state machine written with the BLZ_ASYNC macros;
 *   4. a blocking job on the blocking pool, awaited without blocking a worker.
 * Phase 2, I/O: the echo server of DESIGN.md §1 on 127.0.0.1 (a kernel-picked
 * port), driven in the same process by 256 client fibers for 3 seconds, each
 * sending 64-byte messages and checking every echoed byte. It prints the
 * connections, messages per second, p50/p99 round-trip latency and the I/O
 * backend, and exits 0 only if every byte came back right.
 *
 *   build/examples/demo [clients] [seconds]     (BLZ_BACKEND=epoll|io_uring to choose)
 */
#include "blitzio.h"
#include "blitzio/net.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- 1. fan-out / fan-in -------------------------------------------------- */

/* A stackless task: sleep `ms`, then report `id`. Its locals live in the struct. */
typedef struct nap_future {
    blz_future base;
    blz_sleep_future sleep;
    int id;
    int ms;
} nap_future;

static blz_poll
nap_poll(blz_future *self, blz_context *cx)
{
    nap_future *n = (nap_future *) self;
    BLZ_ASYNC_BEGIN(self);
    blz_sleep_fut(&n->sleep, blz_ms(n->ms));
    BLZ_AWAIT(self, cx, &n->sleep.base);
    BLZ_ASYNC_RETURN(self, n->id);
    BLZ_ASYNC_END(self);
}

static void
nap_drop(blz_future *self)
{
    blz_future_drop(&((nap_future *) self)->sleep.base);
}

static const blz_future_vtable nap_vtable = {nap_poll, nap_drop};

static void *
napping_fiber(void *arg)
{
    blz_sleep(blz_ms(1 + (intptr_t) arg % 10));
    return arg;
}

static long
fan_out_fan_in(void)
{
    enum { STACKLESS = 10000, FIBERS = 1000 };
    static blz_join *joins[STACKLESS + FIBERS];
    static void *results[STACKLESS + FIBERS];
    for (int i = 0; i < STACKLESS; i++) {
        nap_future f = {.id = i, .ms = 1 + i % 20};
        blz_future_init(&f.base, &nap_vtable);
        if (blz_spawn_future(&f.base, sizeof f, &joins[i]) < 0) {
            return -1;
        }
    }
    for (int i = 0; i < FIBERS; i++) {
        if (blz_spawn(napping_fiber, (void *) (intptr_t) i, &joins[STACKLESS + i]) < 0) {
            return -1;
        }
    }
    if (blz_join_all(joins, STACKLESS + FIBERS, results) < 0) {
        return -1;
    }
    long sum = 0;
    for (int i = 0; i < STACKLESS + FIBERS; i++) {
        sum += (intptr_t) results[i];
    }
    return sum;
}

/* ---- 2. a join tree ------------------------------------------------------------ */

static void *
tree(void *arg)
{
    intptr_t depth = (intptr_t) arg;
    if (depth == 0) {
        return (void *) 1;
    }
    blz_join *kids[2];
    void *vals[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        if (blz_spawn(tree, (void *) (depth - 1), &kids[i]) < 0) {
            return (void *) 0;
        }
    }
    blz_join_all(kids, 2, vals);
    return (void *) ((intptr_t) vals[0] + (intptr_t) vals[1]);
}

/* ---- 4. a blocking job -------------------------------------------------------- */

static void *
count_primes(void *arg)
{
    long limit = (long) (intptr_t) arg, count = 0;
    for (long n = 2; n < limit; n++) {
        long d = 2;
        while (d * d <= n && n % d) {
            d++;
        }
        count += d * d > n;
    }
    return (void *) (intptr_t) count;
}

static double
ms_since(blz_instant t0)
{
    return (double) blz_instant_since(blz_now(), t0) / 1e6;
}

static void *
tour(void *arg)
{
    (void) arg;
    blz_instant t0 = blz_now();
    long sum = fan_out_fan_in();
    printf("fan-out/fan-in : 10000 stackless + 1000 fibers slept and joined, sum of ids %ld "
           "(%.1f ms)\n",
           sum, ms_since(t0));

    t0 = blz_now();
    void *leaves = NULL;
    blz_join *root;
    if (blz_spawn(tree, (void *) 12, &root) == 0) {
        blz_join_wait(root, &leaves);
    }
    printf("join tree      : 8191 fibers, depth 12, %ld leaves counted (%.1f ms)\n",
           (long) (intptr_t) leaves, ms_since(t0));

    t0 = blz_now();
    nap_future one = {.id = 99, .ms = 5};
    blz_future_init(&one.base, &nap_vtable);
    int id = blz_await(&one.base);
    printf("state machine  : BLZ_ASYNC future slept 5 ms and returned %d (%.1f ms)\n", id,
           ms_since(t0));

    t0 = blz_now();
    blz_join *job;
    void *primes = NULL;
    if (blz_spawn_blocking(count_primes, (void *) 200000, &job) == 0) {
        blz_join_wait(job, &primes);
    }
    printf("blocking pool  : %ld primes below 200000 counted off the workers (%.1f ms)\n",
           (long) (intptr_t) primes, ms_since(t0));
    return (void *) (intptr_t) (sum == 10000L * 9999 / 2 + 1000L * 999 / 2 &&
                                (intptr_t) leaves == 4096 && id == 99);
}

/* ---- phase 2: echo under load -------------------------------------------------- */

#define MSG_BYTES 64
#define NBUCKETS  1024

/* Log-linear latency histogram: exact below 1 us in 16 ns steps, then 32
 * buckets per power of two (about 3% resolution) up to minutes. */
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

typedef struct load {
    blz_addr addr;        /* the server */
    blz_instant deadline; /* clients stop sending at this instant */
    _Atomic unsigned long long messages;
    _Atomic unsigned long long errors;
    _Atomic unsigned connections;
    _Atomic unsigned long long hist[NBUCKETS];
} load;

static load g_load;

/* The server side: DESIGN.md §1, word for word but for the stop condition. */
static void *
echo(void *arg)
{
    blz_tcp_stream *s = arg;
    char buf[4096];
    for (;;) {
        ssize_t n = blz_tcp_read(s, buf, sizeof buf);
        if (n <= 0) {
            break;
        }
        if (blz_tcp_write_all(s, buf, (size_t) n) < 0) {
            break;
        }
    }
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
            return NULL; /* the listener was closed: the demo is over */
        }
        if (rc == 0 && blz_spawn(echo, s, NULL) < 0) {
            blz_tcp_close(s);
        }
    }
}

static void *
client(void *arg)
{
    uint64_t id = (uint64_t) (uintptr_t) arg;
    unsigned long long *hist = calloc(NBUCKETS, sizeof *hist);
    blz_tcp_stream *s;
    if (!hist || blz_tcp_connect_addr(&g_load.addr, &s) < 0) {
        atomic_fetch_add(&g_load.errors, 1);
        free(hist);
        return NULL;
    }
    atomic_fetch_add(&g_load.connections, 1);
    blz_tcp_set_nodelay(s, true);
    unsigned char out[MSG_BYTES], in[MSG_BYTES];
    unsigned long long sent = 0, errors = 0;
    for (uint64_t seq = 0; blz_now() < g_load.deadline; seq++) {
        for (int i = 0; i < MSG_BYTES; i++) {
            out[i] = (unsigned char) (id * 131 + seq * 7 + (uint64_t) i);
        }
        blz_instant t0 = blz_now();
        if (blz_tcp_write_all(s, out, sizeof out) < 0) {
            errors++;
            break;
        }
        size_t got = 0;
        while (got < sizeof in) {
            ssize_t n = blz_tcp_read(s, in + got, sizeof in - got);
            if (n <= 0) {
                break;
            }
            got += (size_t) n;
        }
        if (got != sizeof in || memcmp(in, out, sizeof in) != 0) {
            errors++;
            break;
        }
        hist[bucket_of(blz_now() - t0)]++;
        sent++;
    }
    blz_tcp_close(s);
    for (unsigned b = 0; b < NBUCKETS; b++) {
        if (hist[b]) {
            atomic_fetch_add(&g_load.hist[b], hist[b]);
        }
    }
    free(hist);
    atomic_fetch_add(&g_load.messages, sent);
    atomic_fetch_add(&g_load.errors, errors);
    return NULL;
}

static uint64_t
percentile(double p, unsigned long long total)
{
    unsigned long long want = (unsigned long long) (p * (double) total), seen = 0;
    for (unsigned b = 0; b < NBUCKETS; b++) {
        seen += atomic_load(&g_load.hist[b]);
        if (seen > want) {
            return bucket_mid(b);
        }
    }
    return 0;
}

typedef struct echo_args {
    int clients;
    int seconds;
} echo_args;

static void *
echo_phase(void *arg)
{
    echo_args *a = arg;
    blz_tcp_listener *l;
    int rc = blz_tcp_listen("127.0.0.1:0", &l);
    if (rc < 0) {
        fprintf(stderr, "demo: listen: %s\n", blz_strerror(rc));
        return NULL;
    }
    blz_tcp_listener_addr(l, &g_load.addr);
    char where[BLZ_ADDR_STRLEN];
    blz_addr_format(&g_load.addr, where, sizeof where);
    printf("echo server    : listening on %s; %d clients x 64-byte messages for %d s...\n", where,
           a->clients, a->seconds);
    fflush(stdout);
    blz_join *server;
    if (blz_spawn(serve, l, &server) < 0) {
        blz_tcp_listener_close(l);
        return NULL;
    }
    blz_join **joins = calloc((size_t) a->clients, sizeof *joins);
    if (!joins) {
        blz_tcp_listener_close(l);
        blz_join_wait(server, NULL);
        return NULL;
    }
    blz_instant t0 = blz_now();
    g_load.deadline = blz_instant_add(t0, blz_secs(a->seconds));
    int spawned = 0;
    for (; spawned < a->clients; spawned++) {
        if (blz_spawn(client, (void *) (uintptr_t) spawned, &joins[spawned]) < 0) {
            atomic_fetch_add(&g_load.errors, 1);
            break;
        }
    }
    blz_join_all(joins, (size_t) spawned, NULL);
    double secs = (double) blz_instant_since(blz_now(), t0) / 1e9;
    free(joins);
    blz_tcp_listener_close(l);
    blz_join_wait(server, NULL);

    unsigned long long msgs = atomic_load(&g_load.messages);
    unsigned long long errs = atomic_load(&g_load.errors);
    printf("echo results   : %u connections, %llu messages verified in %.2f s = %.0f msg/s, "
           "%llu errors\n",
           atomic_load(&g_load.connections), msgs, secs, (double) msgs / secs, errs);
    printf("latency        : p50 %.1f us, p99 %.1f us (round trip, 64 B, backend %s)\n",
           (double) percentile(0.50, msgs) / 1e3, (double) percentile(0.99, msgs) / 1e3,
           blz_runtime_backend(blz_runtime_current()));
    return (void *) (intptr_t) (errs == 0 && msgs > 0 &&
                                (int) atomic_load(&g_load.connections) == a->clients);
}

int
main(int argc, char **argv)
{
    echo_args ea = {argc > 1 ? atoi(argv[1]) : 256, argc > 2 ? atoi(argv[2]) : 3};
    if (ea.clients < 1 || ea.clients > 20000 || ea.seconds < 1 || ea.seconds > 3600) {
        fprintf(stderr, "usage: demo [clients 1..20000] [seconds 1..3600]\n");
        return 2;
    }
    blz_runtime *rt;
    int rc = blz_runtime_new(NULL, &rt);
    if (rc < 0) {
        fprintf(stderr, "demo: runtime: %s\n", blz_strerror(rc));
        return 1;
    }
    printf("blitzio demo: %u workers, backend %s\n", blz_runtime_workers(rt),
           blz_runtime_backend(rt));
    blz_instant t0 = blz_now();
    void *tour_ok = NULL, *echo_ok = NULL;
    rc = blz_runtime_block_on(rt, tour, NULL, &tour_ok);
    if (rc == 0) {
        rc = blz_runtime_block_on(rt, echo_phase, &ea, &echo_ok);
    }
    blz_metrics m;
    blz_runtime_metrics(rt, &m);
    printf("total %.1f ms; tasks spawned %llu, polls %llu, steals %llu, parks %llu, "
           "I/O events %llu\n",
           ms_since(t0), (unsigned long long) m.tasks_spawned, (unsigned long long) m.polls,
           (unsigned long long) m.steals, (unsigned long long) m.parks,
           (unsigned long long) m.io_events);
    for (unsigned i = 0; i < m.workers && i < BLZ_METRICS_MAX_WORKERS; i++) {
        const blz_worker_metrics *w = &m.worker[i];
        printf("  worker %u: %llu tasks run, busy %.0f%% of %.1f ms, mean run %.1f us\n", i,
               (unsigned long long) w->polls,
               m.uptime_ns ? 100.0 * (double) w->busy_ns / (double) m.uptime_ns : 0.0,
               (double) m.uptime_ns / 1e6, (double) w->mean_poll_ns / 1e3);
    }
    blz_runtime_free(rt);
    if (rc < 0 || !tour_ok || !echo_ok) {
        fprintf(stderr, "demo: FAILED (%s)\n", rc < 0 ? blz_strerror(rc) : "wrong results");
        return 1;
    }
    printf("demo: OK\n");
    return 0;
}
