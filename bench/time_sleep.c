/*
 * bench/time_sleep.c — the timer rows.
 *
 *   sleep_register_cancel  create a 1 s sleep future, poll it once with a
 *                          no-op waker inside a runtime task (the first poll
 *                          links it into the runtime's timer wheel), drop it
 *                          (which unlinks it). Tokio's side is the row of the
 *                          same name in bench/tokio/src/rows_rt.rs.
 *
 * A sleep's poll spends one unit of the task's coop budget (128 polls), and
 * once the budget is spent it returns pending without registering. Tokio's
 * row runs under `unconstrained` for that reason; here the loop yields
 * between chunks of CHUNK ops (fewer than the budget) to get a fresh budget,
 * and only the chunks are timed.
 *
 *     bench_time_sleep [--json] [--runs N] [--warmups N] [row ...]
 */
#include "bench.h"

#define OPS   10000
#define CHUNK 100

static blz_runtime *rt;

static void *
register_cancel_body(void *arg)
{
    bench_run *r = arg;
    blz_context cx = {blz_waker_noop()};
    double timed = 0;
    r->ops = OPS;
    bench_start(r);
    for (int done = 0; done < OPS; done += CHUNK) {
        blz_yield(); /* a fresh coop budget, outside the timed part */
        double c0 = bench_now_();
        for (int i = 0; i < CHUNK; i++) {
            blz_sleep_future s;
            blz_sleep_fut(&s, blz_secs(1));
            if (blz_future_poll(&s.base, &cx) != BLZ_PENDING) {
                abort(); /* a 1 s sleep cannot be due yet */
            }
            blz_future_drop(&s.base);
        }
        timed += bench_now_() - c0;
    }
    bench_stop(r);
    r->t0 = 0;
    r->t1 = timed;
    return NULL;
}

/* Checks once that the poll really registers (a spent budget would skip it). */
static void *
check_registers_body(void *arg)
{
    (void) arg;
    blz_context cx = {blz_waker_noop()};
    blz_yield();
    blz_sleep_future s;
    blz_sleep_fut(&s, blz_secs(1));
    bool pending = blz_future_poll(&s.base, &cx) == BLZ_PENDING;
    bool linked = s.entry_.timers_ != NULL;
    blz_future_drop(&s.base);
    return (void *) (uintptr_t) (pending && linked);
}

static void
row_register_cancel(bench_run *r)
{
    if (blz_runtime_block_on(rt, register_cancel_body, r, NULL) < 0) {
        abort();
    }
}

int
main(int argc, char **argv)
{
    bench_init(argc, argv);
    if (blz_runtime_new(NULL, &rt) < 0) {
        fprintf(stderr, "bench_time_sleep: cannot create a runtime\n");
        return 1;
    }
    void *ok = NULL;
    if (blz_runtime_block_on(rt, check_registers_body, NULL, &ok) < 0 || !ok) {
        fprintf(stderr, "bench_time_sleep: the first poll of a sleep did not register it\n");
        return 1;
    }
    bench_row("sleep_register_cancel", row_register_cancel, NULL);
    blz_runtime_free(rt);
    return 0;
}
