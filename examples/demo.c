/*
 * examples/demo.c — `make demo`: a short tour of the runtime, end to end.
 *
 *   1. fan-out / fan-in: a fiber spawns 10,000 stackless tasks and 1,000 fibers
 *      that each sleep a little, then joins them all;
 *   2. a join tree: fibers that spawn two children each, 12 levels deep
 *      (8,191 fibers), summing their leaves on the way back up;
 *   3. a stackless state machine written with the BLZ_ASYNC macros;
 *   4. a blocking job on the blocking pool, awaited without blocking a worker.
 * It prints what it did, how long each part took, and the runtime's counters.
 */
#include <stdio.h>
#include <stdlib.h>

#include "blitzio.h"

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
demo(void *arg)
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

int
main(void)
{
    blz_runtime *rt;
    int rc = blz_runtime_new(NULL, &rt);
    if (rc < 0) {
        fprintf(stderr, "demo: runtime: %s\n", blz_strerror(rc));
        return 1;
    }
    printf("blitzio demo: %u workers, backend %s\n", blz_runtime_workers(rt),
           blz_runtime_backend(rt));
    blz_instant t0 = blz_now();
    void *ok = NULL;
    rc = blz_runtime_block_on(rt, demo, NULL, &ok);
    blz_metrics m;
    blz_runtime_metrics(rt, &m);
    printf("total %.1f ms; tasks spawned %llu, polls %llu, steals %llu, parks %llu\n",
           ms_since(t0), (unsigned long long) m.tasks_spawned, (unsigned long long) m.polls,
           (unsigned long long) m.steals, (unsigned long long) m.parks);
    blz_runtime_free(rt);
    if (rc < 0 || !ok) {
        fprintf(stderr, "demo: FAILED (%s)\n", rc < 0 ? blz_strerror(rc) : "wrong results");
        return 1;
    }
    printf("demo: OK\n");
    return 0;
}
