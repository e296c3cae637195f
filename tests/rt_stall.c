/*
 * The stall watchdog: a task that keeps its worker past the threshold is
 * reported once, with the worker's index and thread; parked workers, an idle
 * current-thread runtime between block_on calls, and a runtime without a
 * threshold report nothing.
 */
#ifndef _GNU_SOURCE
# define _GNU_SOURCE
#endif
#include "blitzio.h"
#include "harness.h"

#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Long enough that a loaded machine keeping a busy worker off its CPU (which
 * the watchdog rightly reports) is unlikely to look like one in these tests. */
#define THRESHOLD_MS 200

typedef struct stall_log {
    _Atomic int reports;     /* every report */
    _Atomic int hog_tid;     /* the thread the hog runs on, once it runs */
    _Atomic int hog_reports; /* reports of that thread */
    _Atomic unsigned worker; /* of the last report of the hog's thread */
    _Atomic int64_t stalled;
} stall_log;

static void
record(const blz_stall_info *info, void *arg)
{
    stall_log *log = arg;
    if (info->tid == atomic_load(&log->hog_tid)) {
        atomic_store(&log->worker, info->worker);
        atomic_store(&log->stalled, info->stalled);
        atomic_fetch_add(&log->hog_reports, 1); /* last: the fields are set when it moves */
    }
    atomic_fetch_add(&log->reports, 1);
}

static blz_runtime *
watched_rt(blz_flavor flavor, stall_log *log, int64_t threshold_ms)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.flavor = flavor;
    cfg.workers = 2;
    cfg.stall_threshold = blz_ms(threshold_ms);
    cfg.on_stall = record;
    cfg.on_stall_arg = log;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    return rt;
}

static int64_t
wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Keeps its worker without ever yielding: until the watchdog has reported
 * it (at most 20 s), then four thresholds more, to see it is reported once. */
static void *
hog_task(void *arg)
{
    stall_log *log = arg;
    atomic_store(&log->hog_tid, (int) syscall(SYS_gettid));
    int64_t start = wall_ms();
    while (atomic_load(&log->hog_reports) == 0 && wall_ms() - start < 20000) {
    }
    int64_t reported = wall_ms();
    while (wall_ms() - reported < 4 * THRESHOLD_MS) {
    }
    return NULL;
}

static void *
hog_main(void *arg)
{
    blz_join *j;
    CHECK_OK(blz_spawn(hog_task, arg, &j));
    CHECK_OK(blz_join_wait(j, NULL));
    return NULL;
}

BLZ_TEST(stall_reported_once_with_worker_and_thread)
{
    stall_log log = {0};
    atomic_store(&log.hog_tid, -1);
    blz_runtime *rt = watched_rt(BLZ_MULTI_THREAD, &log, THRESHOLD_MS);
    CHECK_OK(blz_runtime_block_on(rt, hog_main, &log, NULL));
    blz_runtime_free(rt);
    CHECK_EQ(atomic_load(&log.hog_reports), 1); /* its thread, once */
    CHECK_LT(atomic_load(&log.worker), 2u);
    CHECK_GE(atomic_load(&log.stalled), blz_ms(THRESHOLD_MS));
}

static void *
quick_task(void *arg)
{
    return arg;
}

BLZ_TEST(stall_reported_on_the_current_thread_flavour)
{
    stall_log log = {0};
    atomic_store(&log.hog_tid, -1);
    blz_runtime *rt = watched_rt(BLZ_CURRENT_THREAD, &log, THRESHOLD_MS);
    CHECK_OK(blz_runtime_block_on(rt, hog_task, &log, NULL));
    CHECK_EQ(atomic_load(&log.hog_tid), (int) syscall(SYS_gettid)); /* this thread ran it */
    CHECK_EQ(atomic_load(&log.hog_reports), 1);
    CHECK_EQ(atomic_load(&log.worker), 0u);
    /* Between block_on calls nobody runs the worker: that is not a stall.
     * (A short task first, so that the idle time follows a fresh poll.) */
    CHECK_OK(blz_runtime_block_on(rt, quick_task, NULL, NULL));
    struct timespec idle = {0, 3 * THRESHOLD_MS * 1000000L};
    nanosleep(&idle, NULL);
    blz_runtime_free(rt);
    CHECK_EQ(atomic_load(&log.hog_reports), 1); /* this thread: the hog only */
}

static void *
sleeper(void *arg)
{
    (void) arg;
    CHECK_OK(blz_sleep(blz_ms(3 * THRESHOLD_MS))); /* every worker parks meanwhile */
    for (int i = 0; i < 10000; i++) {
        blz_yield(); /* busy, but back at the scheduler every poll */
    }
    return NULL;
}

BLZ_TEST(no_stall_for_parked_or_yielding_workers)
{
    stall_log log = {0};
    blz_runtime *rt = watched_rt(BLZ_MULTI_THREAD, &log, THRESHOLD_MS);
    CHECK_OK(blz_runtime_block_on(rt, sleeper, NULL, NULL));
    blz_runtime_free(rt);
    CHECK_EQ(atomic_load(&log.reports), 0);
}

BLZ_TEST(no_watchdog_without_a_threshold)
{
    stall_log log = {0};
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 2;
    cfg.stall_threshold = 0;
    cfg.on_stall = record;
    cfg.on_stall_arg = &log;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    /* The hook never runs, so the hog is let go by hand. */
    blz_join *j;
    atomic_store(&log.hog_reports, -1); /* ends the hog's wait at once */
    CHECK_OK(blz_runtime_spawn(rt, hog_task, &log, &j));
    CHECK_OK(blz_join_wait(j, NULL));
    blz_runtime_free(rt);
    CHECK_EQ(atomic_load(&log.reports), 0); /* the hook never ran */
}
