/*
 * bench/fiber_switch.c — what one fiber context switch costs.
 *
 * A round trip is blz__fiber_resume on the thread plus blz__fiber_suspend on
 * the fiber: two switches, each including the thread-local bookkeeping and
 * (in a sanitizer build) the annotations. A run is 1,000,000 round trips; the
 * figure is the median of 10 runs after 5 warm-ups, in ns per switch.
 *
 *     bench_fiber_switch [--json] [--runs N] [--warmups N] [--round-trips N]
 */
#if !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE)
# define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c11 */
#endif

#include "fiber/fiber.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct spin {
    bool stop;
};

static void
spin_entry(void *arg)
{
    struct spin *s = arg;
    while (!s->stop) {
        blz__fiber_suspend();
    }
}

static double
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

/* A count of at least `min` (warm-ups may be 0, as in bench/bench.h). */
static long
parse_count(const char *s, long min)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || v < min) {
        fprintf(stderr, "bench_fiber_switch: '%s' is not a count >= %ld\n", s, min);
        exit(2);
    }
    return v;
}

int
main(int argc, char **argv)
{
    bool json = false;
    long runs = 10, warmups = 5, trips = 1000000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = parse_count(argv[++i], 1);
        } else if (strcmp(argv[i], "--warmups") == 0 && i + 1 < argc) {
            warmups = parse_count(argv[++i], 0);
        } else if (strcmp(argv[i], "--round-trips") == 0 && i + 1 < argc) {
            trips = parse_count(argv[++i], 1);
        } else {
            fprintf(stderr, "usage: bench_fiber_switch [--json] [--runs N] [--warmups N] "
                            "[--round-trips N]\n");
            return 2;
        }
    }

    blz__stack_pool *pool;
    blz__fiber *f;
    struct spin s = {.stop = false};
    if (blz__stack_pool_new(0, &pool) < 0 || blz__fiber_new(pool, spin_entry, &s, &f) < 0) {
        fprintf(stderr, "bench_fiber_switch: cannot make a fiber\n");
        return 1;
    }

    double *ns = calloc((size_t) runs, sizeof *ns);
    if (!ns) {
        return 1;
    }
    for (long r = -warmups; r < runs; r++) {
        double t0 = now_ns();
        for (long i = 0; i < trips; i++) {
            (void) blz__fiber_resume(f);
        }
        double t1 = now_ns();
        if (r >= 0) {
            ns[r] = (t1 - t0) / ((double) trips * 2.0);
        }
    }
    s.stop = true;
    while (!blz__fiber_resume(f)) {
    }
    blz__fiber_free(f);
    blz__stack_pool_free(pool);

    qsort(ns, (size_t) runs, sizeof *ns, cmp_double);
    double median = runs % 2 ? ns[runs / 2] : (ns[runs / 2 - 1] + ns[runs / 2]) / 2.0;
    long ops = trips * 2;
    if (json) {
        printf("{\"row\":\"fiber_switch\",\"ns_per_op\":%.3f,\"ops\":%ld,\"runs\":%ld}\n", median,
               ops, runs);
    } else {
        printf("blitzio fiber switch; median of %ld runs after %ld warm-ups\n", runs, warmups);
        printf("%-22s %9s %12s\n", "row", "ops", "ns/op");
        printf("%-22s %9ld %12.2f\n", "fiber_switch", ops, median);
    }
    free(ns);
    return 0;
}
