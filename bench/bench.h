/*
 * bench/bench.h — what every blitzio benchmark shares: the method (median of
 * `runs` timed runs after `warmups` untimed ones), a counting allocator
 * installed through blz_set_allocator (bytes and allocations per op, counted
 * over the last timed run only), and the output (an aligned line per row, or
 * one JSON object per row with --json, the shape bench/compare reads).
 *
 *     static void run_mutex(bench_run *r) { ... r->ops = N; bench_start(r); ...; bench_stop(r); }
 *     int main(int argc, char **argv) {
 *         bench_init(argc, argv);
 *         bench_row("mutex", run_mutex, NULL);
 *         return 0;
 *     }
 *
 * Command line: [--json] [--runs N] [--warmups N] [--list] [--each] [row-name ...]
 * (names filter rows; --list prints the row names and runs nothing, so the
 * comparison can interleave the two sides row by row; --each prints every
 * timed run's ns/op on stderr, with the row's note if it wrote one: the
 * multi-worker rows note what the scheduler did, which tells a bimodal row's
 * modes apart).
 */
#ifndef BLZ_BENCH_H
#define BLZ_BENCH_H

#include "blitzio.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct bench_run {
    uint64_t ops;  /* operations in one run, set by the row */
    double t0, t1; /* clock at bench_start / bench_stop */
    uint64_t bytes0, allocs0, bytes1, allocs1;
    void *arg;     /* the row's argument */
    double extra;  /* an optional row-defined figure (e.g. bytes per idle task) */
    char note[96]; /* an optional row-defined remark on this run, printed by --each */
} bench_run;

typedef void (*bench_fn)(bench_run *r);

/* blz_runtime_block_on(rt, fn, arg), noting in r->note what the scheduler did
 * meanwhile (polls, steals, parks, unparks), for --each. */
static inline int
bench_block_on(bench_run *r, blz_runtime *rt, blz_task_fn fn, void *arg)
{
    blz_metrics before, after;
    blz_runtime_metrics(rt, &before);
    int rc = blz_runtime_block_on(rt, fn, arg, NULL);
    blz_runtime_metrics(rt, &after);
    snprintf(r->note, sizeof r->note, "polls %llu steals %llu parks %llu unparks %llu",
             (unsigned long long) (after.polls - before.polls),
             (unsigned long long) (after.steals - before.steals),
             (unsigned long long) (after.parks - before.parks),
             (unsigned long long) (after.unparks - before.unparks));
    return rc;
}

static bool bench_json_, bench_list_, bench_each_;
static int bench_runs_ = 10, bench_warmups_ = 5;
static char **bench_filters_;
static int bench_nfilters_;
static _Atomic uint64_t bench_alloc_bytes_, bench_alloc_count_;

static void *
bench_malloc_(size_t n)
{
    size_t *p = malloc(n + 16);
    if (!p) {
        return NULL;
    }
    *p = n;
    atomic_fetch_add_explicit(&bench_alloc_bytes_, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&bench_alloc_count_, 1, memory_order_relaxed);
    return (char *) p + 16;
}

static void
bench_free_(void *q)
{
    if (q) {
        free((char *) q - 16);
    }
}

static void *
bench_realloc_(void *q, size_t n)
{
    if (!q) {
        return bench_malloc_(n);
    }
    size_t *p = realloc((char *) q - 16, n + 16);
    if (!p) {
        return NULL;
    }
    *p = n;
    atomic_fetch_add_explicit(&bench_alloc_bytes_, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&bench_alloc_count_, 1, memory_order_relaxed);
    return (char *) p + 16;
}

static double
bench_now_(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}

/* Starts the timed (and allocation-counted) part of a run. */
static inline void
bench_start(bench_run *r)
{
    r->bytes0 = atomic_load(&bench_alloc_bytes_);
    r->allocs0 = atomic_load(&bench_alloc_count_);
    r->t0 = bench_now_();
}

static inline void
bench_stop(bench_run *r)
{
    r->t1 = bench_now_();
    r->bytes1 = atomic_load(&bench_alloc_bytes_);
    r->allocs1 = atomic_load(&bench_alloc_count_);
}

static int
bench_cmp_(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

static void
bench_init(int argc, char **argv)
{
    blz_set_allocator(bench_malloc_, bench_realloc_, bench_free_);
    bench_filters_ = calloc((size_t) argc + 1, sizeof(char *));
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            bench_json_ = true;
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            bench_runs_ = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--warmups") == 0 && i + 1 < argc) {
            bench_warmups_ = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--list") == 0) {
            bench_list_ = true;
        } else if (strcmp(argv[i], "--each") == 0) {
            bench_each_ = true;
        } else {
            bench_filters_[bench_nfilters_++] = argv[i];
        }
    }
    if (bench_runs_ < 1) {
        bench_runs_ = 1;
    }
    if (bench_warmups_ < 0) {
        bench_warmups_ = 0;
    }
}

/* Whether the command line asks for row `name` (no names: every row). Also
 * for set-up that only some rows need. Listing selects nothing. */
static bool
bench_selected(const char *name)
{
    if (bench_list_) {
        return false;
    }
    if (!bench_nfilters_) {
        return true;
    }
    for (int i = 0; i < bench_nfilters_; i++) {
        if (strcmp(bench_filters_[i], name) == 0) {
            return true;
        }
    }
    return false;
}

/* Runs one row: warm-ups, timed runs, then prints the median ns/op. */
static void
bench_row(const char *name, bench_fn fn, void *arg)
{
    if (bench_list_) {
        printf("%s\n", name);
        return;
    }
    if (!bench_selected(name)) {
        return;
    }
    double *ns = calloc((size_t) bench_runs_, sizeof *ns);
    bench_run r = {0};
    for (int i = 0; i < bench_warmups_ + bench_runs_; i++) {
        memset(&r, 0, sizeof r);
        r.arg = arg;
        fn(&r);
        if (i >= bench_warmups_) {
            ns[i - bench_warmups_] = (r.t1 - r.t0) / (double) (r.ops ? r.ops : 1);
            if (bench_each_) {
                fprintf(stderr, "%s run %d: %.2f ns/op%s%s\n", name, i - bench_warmups_ + 1,
                        ns[i - bench_warmups_], r.note[0] ? "  " : "", r.note);
            }
        }
    }
    qsort(ns, (size_t) bench_runs_, sizeof *ns, bench_cmp_);
    double med =
        bench_runs_ % 2 ? ns[bench_runs_ / 2] : (ns[bench_runs_ / 2 - 1] + ns[bench_runs_ / 2]) / 2;
    double ops = (double) (r.ops ? r.ops : 1);
    double bpo = (double) (r.bytes1 - r.bytes0) / ops;
    double apo = (double) (r.allocs1 - r.allocs0) / ops;
    if (bench_json_) {
        printf("{\"row\":\"%s\",\"ns_per_op\":%.3f,\"bytes_per_op\":%.3f,\"allocs_per_op\":%.4f,"
               "\"ops\":%llu,\"runs\":%d,\"min\":%.3f,\"max\":%.3f",
               name, med, bpo, apo, (unsigned long long) r.ops, bench_runs_, ns[0],
               ns[bench_runs_ - 1]);
        if (r.extra != 0) {
            printf(",\"extra\":%.1f", r.extra);
        }
        printf("}\n");
    } else {
        printf("%-24s %10.2f ns/op %10.1f B/op %8.4f allocs/op", name, med, bpo, apo);
        if (r.extra != 0) {
            printf("   (%.1f)", r.extra);
        }
        printf("\n");
    }
    fflush(stdout);
    free(ns);
}

#endif
