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
 *   bench_echo_load -a HOST:PORT -p PID ...  also measure that server's CPU time
 *   bench_echo_load --json ...               one JSON object per run instead of the table
 *
 * The server (the echo loop of DESIGN.md §1) and the clients run on two
 * separate runtimes in this process, each with its own I/O driver on the
 * backend under test. Each client connection is one fiber that keeps DEPTH
 * messages in flight, verifies every echoed byte against the pattern it sent,
 * and records each message's round trip in a log-linear histogram. Prints
 * messages/s, MiB/s each way, p50/p99/p999 latency and errors (which must be 0).
 *
 * The measured window: every connection is made first; then the window opens
 * (clock, this process's CPU time and, with -p, the server's utime+stime from
 * /proc/PID/stat are sampled), the clients start sending, and after SECS the
 * window closes with a second sample. Only messages whose echo arrived inside
 * the window count (messages in flight at the end are still verified), so
 * msgs/s and CPU per message exclude connection setup and teardown.
 *
 * --json prints, per run, one line (keys in this order; the *_cpu_* figures are
 * null without -p; exit status non-zero on any error):
 *   {"row":"echo","backend":..,"conns":..,"bytes":..,"depth":..,"secs":<window>,
 *    "msgs":..,"msgs_per_s":..,"mib_per_s":..,"p50_us":..,"p99_us":..,"p999_us":..,
 *    "errors":..,"connected":..,"client_cpu_s":..,"server_pid":..,"server_cpu_s":..,
 *    "server_us_per_msg":..}
 */
#include "blitzio.h"
#include "blitzio/net.h"

#include <getopt.h>
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
    int server_pid;       /* with external: sample its CPU time over the window; 0: no */
} config;

typedef struct run {
    const config *cfg;
    blz_addr addr;
    blz_cancel_token start; /* cancelled when the window opens: the clients start */
    _Atomic bool closed;    /* set when the window closes: the clients stop sending */
    blz_instant t0, t1;     /* the window, as drive() sampled it */
    double client_cpu[2];   /* this process's user+sys seconds at t0 and t1 */
    double server_cpu[2];   /* the server's (-p), or -1 when unknown */
    _Atomic unsigned long long msgs, errors, connected;
    _Atomic unsigned long long ready; /* clients that connected or failed to */
    _Atomic unsigned long long hist[NBUCKETS];
} run;

/* User+system CPU seconds of process `pid` (all its threads), or -1. */
static double
proc_cpu_secs(int pid)
{
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    /* Field 2 (comm) may hold spaces and parentheses; the fields resume after the last ')'.
     * utime and stime are fields 14 and 15, in clock ticks. */
    const char *p = strrchr(text, ')');
    unsigned long long ut, st;
    if (!p ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) {
        return -1;
    }
    long hz = sysconf(_SC_CLK_TCK);
    return (double) (ut + st) / (double) (hz > 0 ? hz : 100);
}

static double
self_cpu_secs(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0) {
        return -1;
    }
    return (double) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

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
    bool ok = hist && out && in && blz_tcp_connect_addr(&r->addr, &s) == 0;
    if (ok) {
        atomic_fetch_add(&r->connected, 1);
    }
    atomic_fetch_add(&r->ready, 1);
    if (!ok || blz_cancel_token_wait(&r->start) < 0) {
        errors++;
        goto out;
    }
    blz_tcp_set_nodelay(s, true);
    blz_instant sent_at[MAX_DEPTH];
    uint64_t next = 0, acked = 0;
    for (;;) {
        bool sending = !atomic_load_explicit(&r->closed, memory_order_relaxed);
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
        /* Echoes that arrive after the window closed are verified but not counted. */
        if (!atomic_load_explicit(&r->closed, memory_order_relaxed)) {
            hist[bucket_of(blz_now() - sent_at[acked % MAX_DEPTH])]++;
            done++;
        }
        acked++;
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
    int n = 0;
    for (; n < c->conns; n++) {
        if (blz_spawn(client, (void *) (uintptr_t) n, &joins[n]) < 0) {
            atomic_fetch_add(&r->errors, 1);
            break;
        }
    }
    /* Connection setup stays outside the window: wait until every client is ready. */
    while (atomic_load(&r->ready) < (unsigned long long) n) {
        blz_sleep(blz_ms(1));
    }
    r->server_cpu[0] = c->server_pid ? proc_cpu_secs(c->server_pid) : -1;
    r->client_cpu[0] = self_cpu_secs();
    r->t0 = blz_now();
    blz_cancel_token_cancel(&r->start);
    blz_sleep_until(blz_instant_add(r->t0, blz_secs(c->secs)));
    r->t1 = blz_now();
    r->server_cpu[1] = c->server_pid ? proc_cpu_secs(c->server_pid) : -1;
    r->client_cpu[1] = self_cpu_secs();
    atomic_store(&r->closed, true);
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

static bool json_out;

/* Prints one run: a table line, or with --json one JSON object. */
static void
report(const config *c, run *r, const char *be)
{
    double secs = (double) (r->t1 - r->t0) / 1e9;
    if (secs <= 0) {
        secs = 1e-9; /* the window never opened (a client could not be spawned) */
    }
    unsigned long long msgs = atomic_load(&r->msgs), errs = atomic_load(&r->errors);
    double rate = (double) msgs / secs;
    double mib = (double) msgs * c->size / (1024.0 * 1024.0) / secs;
    double p50 = (double) percentile(r, 0.5) / 1e3, p99 = (double) percentile(r, 0.99) / 1e3;
    double p999 = (double) percentile(r, 0.999) / 1e3;
    double client_cpu = r->client_cpu[1] - r->client_cpu[0];
    bool have_srv = r->server_cpu[0] >= 0 && r->server_cpu[1] >= 0;
    double server_cpu = have_srv ? r->server_cpu[1] - r->server_cpu[0] : 0;
    if (!json_out) {
        printf("| %-8s | %5d | %6d | %5d | %10.0f | %8.1f | %8.1f | %8.1f | %9.1f | %6llu |\n", be,
               c->conns, c->size, c->depth, rate, mib, p50, p99, p999, errs);
        if (have_srv) {
            printf("  server pid %d: %.2f s CPU in a %.2f s window, %.2f us/msg\n", c->server_pid,
                   server_cpu, secs, msgs ? server_cpu * 1e6 / (double) msgs : 0.0);
        }
        fflush(stdout);
        return;
    }
    printf("{\"row\":\"echo\",\"backend\":\"%s\",\"conns\":%d,\"bytes\":%d,\"depth\":%d,"
           "\"secs\":%.4f,\"msgs\":%llu,\"msgs_per_s\":%.1f,\"mib_per_s\":%.3f,"
           "\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"errors\":%llu,"
           "\"connected\":%llu,\"client_cpu_s\":%.4f,",
           be, c->conns, c->size, c->depth, secs, msgs, rate, mib, p50, p99, p999, errs,
           (unsigned long long) atomic_load(&r->connected), client_cpu);
    if (have_srv) {
        printf("\"server_pid\":%d,\"server_cpu_s\":%.4f,\"server_us_per_msg\":%.4f}\n",
               c->server_pid, server_cpu, msgs ? server_cpu * 1e6 / (double) msgs : 0.0);
    } else {
        printf("\"server_pid\":null,\"server_cpu_s\":null,\"server_us_per_msg\":null}\n");
    }
    fflush(stdout);
}

static int
run_one(const config *c)
{
    static run r;
    memset(&r, 0, sizeof r);
    r.cfg = c;
    blz_cancel_token_init(&r.start);
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
    blz_runtime_block_on(cli, drive, &r, NULL);
    if (srv) {
        blz_runtime_block_on(srv, server_stop, &sv, NULL);
    }
    blz_runtime_free(cli);
    blz_runtime_free(srv);
    report(c, &r, be);
    return atomic_load(&r.errors) != 0 ||
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
    config one = {0, 64, 1, 3, 0, NULL, NULL, 0};
    int custom = 0, opt;
    const char *backend = NULL, *external = NULL;
    static const struct option longopts[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
    while ((opt = getopt_long(argc, argv, "c:s:d:t:b:w:a:p:", longopts, NULL)) != -1) {
        switch (opt) {
        case 'j':
            json_out = true;
            break;
        case 'a':
            external = optarg;
            break;
        case 'p':
            one.server_pid = atoi(optarg);
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
                    "[-b epoll|io_uring] [-w workers] [-a host:port [-p server-pid]] [--json]\n",
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
    if (one.server_pid && (!external || proc_cpu_secs(one.server_pid) < 0)) {
        fprintf(stderr, "echo_load: -p needs -a and a running process (pid %d)\n", one.server_pid);
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
    config set[3] = {{100, 64, 1, one.secs, one.workers, NULL, external, one.server_pid},
                     {1000, 64, 1, one.secs, one.workers, NULL, external, one.server_pid},
                     {10, 16384, 1, one.secs, one.workers, NULL, external, one.server_pid}};
    int nset = 3;
    if (custom) {
        set[0] = one;
        nset = 1;
    }
    if (!json_out) {
        header();
    }
    int bad = 0;
    for (int b = 0; b < nb; b++) {
        for (int i = 0; i < nset; i++) {
            set[i].backend = backends[b];
            bad |= run_one(&set[i]);
        }
    }
    return bad;
}
