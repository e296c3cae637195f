/*
 * bench/chan.c — the channel rows, with the seed's parameters and the same
 * shape as Tokio's side (bench/tokio/src/rows_chan.rs, rows_rt.rs):
 *
 *   chan_send       fill a fresh 100,000-slot channel with try_send (creation untimed)
 *   chan_recv       drain a channel holding 100,000 items with try_recv
 *   chan_roundtrip  capacity 1: try_send then try_recv, 100,000 times
 *   oneshot         per op: init a oneshot, send, try_recv
 *   broadcast       1 sender, 4 receivers, capacity >= ops: 100,000 sends, then each
 *                   receiver drains all of them; one op = one send + four receives
 *   watch           per op: send a new value, borrow it from a receiver
 *   mpmc            runtime with 4 workers: 4 producer + 4 consumer fibers, buffer
 *                   1,000, 10,000 messages through the await tier (spawns timed)
 *
 * Method (bench/bench.h): median of 10 timed runs after 5 warm-ups; bytes and
 * allocations per op from a counting allocator over the last timed run.
 * Output: `row=<name> ns_per_op=<x> bytes_per_op=<y> allocs_per_op=<z>`, or
 * with --json one object per line: {"row":"chan_send","ns_per_op":...}.
 *
 *     bench_chan [--json] [--runs N] [--warmups N] [row ...]
 */
#include "blitzio/chan.h"

#include "bench.h"

#define CHANNEL_OPS    100000
#define ASYNC_OPS      10000
#define MPMC_BUFFER    1000
#define MPMC_PRODUCERS 4
#define MPMC_CONSUMERS 4
#define BROADCAST_RX   4
#define MPMC_WORKERS   4

static volatile uint64_t sink_;

static void
sink(uint64_t v)
{
    sink_ += v;
}

static void
die(const char *what, int rc)
{
    fprintf(stderr, "bench_chan: %s failed: %s\n", what, blz_strerror(rc));
    exit(1);
}

#define MUST(what, expr) \
 do {                    \
  int rc_ = (expr);      \
  if (rc_ < 0) {         \
   die(what, rc_);       \
  }                      \
 } while (0)

/* ---- rows 9-14: single thread, try tier ----------------------------------- */

static void
row_chan_send(bench_run *r)
{
    blz_chan ch;
    MUST("init", blz_chan_init(&ch, sizeof(uint64_t), CHANNEL_OPS));
    r->ops = CHANNEL_OPS;
    bench_start(r);
    for (uint64_t i = 0; i < CHANNEL_OPS; i++) {
        MUST("try_send", blz_chan_try_send(&ch, &i));
    }
    bench_stop(r);
    blz_chan_deinit(&ch);
}

static void
row_chan_recv(bench_run *r)
{
    blz_chan ch;
    MUST("init", blz_chan_init(&ch, sizeof(uint64_t), CHANNEL_OPS));
    for (uint64_t i = 0; i < CHANNEL_OPS; i++) {
        MUST("try_send", blz_chan_try_send(&ch, &i));
    }
    r->ops = CHANNEL_OPS;
    uint64_t acc = 0;
    bench_start(r);
    for (uint64_t i = 0; i < CHANNEL_OPS; i++) {
        uint64_t v;
        MUST("try_recv", blz_chan_try_recv(&ch, &v));
        acc += v;
    }
    bench_stop(r);
    sink(acc);
    blz_chan_deinit(&ch);
}

static blz_chan rt_ch; /* the roundtrip row's channel, created once like Tokio's */

static void
row_chan_roundtrip(bench_run *r)
{
    r->ops = CHANNEL_OPS;
    uint64_t acc = 0;
    bench_start(r);
    for (uint64_t i = 0; i < CHANNEL_OPS; i++) {
        uint64_t v;
        MUST("try_send", blz_chan_try_send(&rt_ch, &i));
        MUST("try_recv", blz_chan_try_recv(&rt_ch, &v));
        acc += v;
    }
    bench_stop(r);
    sink(acc);
}

static void
row_oneshot(bench_run *r)
{
    r->ops = CHANNEL_OPS;
    uint64_t acc = 0;
    bench_start(r);
    for (uint64_t i = 0; i < CHANNEL_OPS; i++) {
        blz_oneshot o;
        uint64_t v;
        MUST("oneshot_init", blz_oneshot_init(&o, sizeof(uint64_t)));
        MUST("oneshot_send", blz_oneshot_send(&o, &i));
        MUST("oneshot_try_recv", blz_oneshot_try_recv(&o, &v));
        acc += v;
    }
    bench_stop(r);
    sink(acc);
}

static void
row_broadcast(bench_run *r)
{
    blz_broadcast b;
    blz_broadcast_rx rx[BROADCAST_RX];
    MUST("broadcast_init", blz_broadcast_init(&b, sizeof(uint64_t), CHANNEL_OPS));
    for (int k = 0; k < BROADCAST_RX; k++) {
        MUST("subscribe", blz_broadcast_subscribe(&b, &rx[k]));
    }
    r->ops = CHANNEL_OPS;
    uint64_t acc = 0;
    bench_start(r);
    for (uint64_t i = 0; i < CHANNEL_OPS; i++) {
        MUST("broadcast_send", blz_broadcast_send(&b, &i));
    }
    for (int k = 0; k < BROADCAST_RX; k++) {
        for (uint64_t i = 0; i < CHANNEL_OPS; i++) {
            uint64_t v;
            MUST("broadcast_try_recv", blz_broadcast_try_recv(&rx[k], &v));
            acc += v;
        }
    }
    bench_stop(r);
    sink(acc);
    for (int k = 0; k < BROADCAST_RX; k++) {
        blz_broadcast_unsubscribe(&rx[k]);
    }
    blz_broadcast_deinit(&b);
}

static blz_watch wt; /* the watch row's channel, created once like Tokio's */
static blz_watch_rx wrx;

static void
row_watch(bench_run *r)
{
    r->ops = CHANNEL_OPS;
    uint64_t acc = 0;
    bench_start(r);
    for (uint64_t i = 0; i < CHANNEL_OPS; i++) {
        uint64_t v;
        MUST("watch_send", blz_watch_send(&wt, &i));
        blz_watch_rx_borrow(&wrx, &v);
        acc += v;
    }
    bench_stop(r);
    sink(acc);
}

/* ---- row 15: MPMC on the runtime, await tier -------------------------------- */

static blz_runtime *rt;
static blz_chan mpmc_ch;

static void *
mpmc_producer(void *arg)
{
    uint64_t n = (uint64_t) (uintptr_t) arg;
    for (uint64_t i = 0; i < n; i++) {
        if (blz_chan_send(&mpmc_ch, &i) != 0) {
            abort();
        }
    }
    return (void *) (uintptr_t) n;
}

static void *
mpmc_consumer(void *arg)
{
    (void) arg;
    uint64_t got = 0, acc = 0, v;
    while (blz_chan_recv(&mpmc_ch, &v) == 0) {
        acc += v;
        got++;
    }
    sink(acc);
    return (void *) (uintptr_t) got;
}

static void *
mpmc_body(void *arg)
{
    bench_run *r = arg;
    MUST("init", blz_chan_init(&mpmc_ch, sizeof(uint64_t), MPMC_BUFFER));
    blz_join *prod[MPMC_PRODUCERS], *cons[MPMC_CONSUMERS];
    r->ops = ASYNC_OPS;
    bench_start(r);
    for (int c = 0; c < MPMC_CONSUMERS; c++) {
        MUST("spawn", blz_spawn(mpmc_consumer, NULL, &cons[c]));
    }
    for (int p = 0; p < MPMC_PRODUCERS; p++) {
        /* The first ASYNC_OPS % P producers take one extra, as Tokio's share(). */
        uint64_t n = ASYNC_OPS / MPMC_PRODUCERS + (p < ASYNC_OPS % MPMC_PRODUCERS);
        MUST("spawn", blz_spawn(mpmc_producer, (void *) (uintptr_t) n, &prod[p]));
    }
    uint64_t sent = 0, got = 0;
    for (int p = 0; p < MPMC_PRODUCERS; p++) {
        void *res;
        MUST("join", blz_join_wait(prod[p], &res));
        sent += (uintptr_t) res;
    }
    blz_chan_close(&mpmc_ch);
    for (int c = 0; c < MPMC_CONSUMERS; c++) {
        void *res;
        MUST("join", blz_join_wait(cons[c], &res));
        got += (uintptr_t) res;
    }
    bench_stop(r);
    if (sent != ASYNC_OPS || got != ASYNC_OPS) {
        fprintf(stderr, "bench_chan: mpmc sent %llu got %llu\n", (unsigned long long) sent,
                (unsigned long long) got);
        abort();
    }
    blz_chan_deinit(&mpmc_ch);
    return NULL;
}

static void
row_mpmc(bench_run *r)
{
    MUST("block_on", bench_block_on(r, rt, mpmc_body, r));
}

/* ---- driver --------------------------------------------------------------- */

int
main(int argc, char **argv)
{
    bench_init(argc, argv);
    MUST("init", blz_chan_init(&rt_ch, sizeof(uint64_t), 1));
    uint64_t zero = 0;
    MUST("watch_init", blz_watch_init(&wt, sizeof zero, &zero));
    MUST("watch_subscribe", blz_watch_subscribe(&wt, &wrx));

    bench_row("chan_send", row_chan_send, NULL);
    bench_row("chan_recv", row_chan_recv, NULL);
    bench_row("chan_roundtrip", row_chan_roundtrip, NULL);
    bench_row("oneshot", row_oneshot, NULL);
    bench_row("broadcast", row_broadcast, NULL);
    bench_row("watch", row_watch, NULL);
    if (bench_selected("mpmc")) {
        blz_runtime_config cfg;
        blz_runtime_config_default(&cfg);
        cfg.workers = MPMC_WORKERS;
        MUST("runtime_new", blz_runtime_new(&cfg, &rt));
    }
    bench_row("mpmc", row_mpmc, NULL); /* runs only when selected, so rt exists */
    if (rt) {
        blz_runtime_free(rt);
    }

    blz_watch_deinit(&wt);
    blz_chan_deinit(&rt_ch);
    return 0;
}
