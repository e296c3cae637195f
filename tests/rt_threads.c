/*
 * The runtime's threads: each worker and blocking-pool thread runs the start
 * hook before any task or job and the stop hook after its last, on itself;
 * every thread that started has stopped when blz_runtime_free returns; the
 * threads carry names (blz-worker-N, blz-blocking).
 */
#ifndef _GNU_SOURCE
# define _GNU_SOURCE
#endif
#include "blitzio.h"
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

typedef struct hook_log {
    _Atomic int worker_starts, worker_stops;
    _Atomic int blocking_starts, blocking_stops;
    _Atomic unsigned worker_seen; /* bit i: worker i started */
    _Atomic int bad;              /* a hook ran with an info it should not have */
} hook_log;

/* What the start hook left on this thread: the task or job checks it. */
static _Thread_local int tl_kind = -1;
static _Thread_local unsigned tl_index;
static _Thread_local bool tl_stopped;

static void
on_start(const blz_thread_info *info, void *arg)
{
    hook_log *log = arg;
    if (tl_kind != -1) {
        atomic_fetch_add(&log->bad, 1); /* twice on one thread */
    }
    tl_kind = (int) info->kind;
    tl_index = info->index;
    if (info->kind == BLZ_THREAD_WORKER) {
        atomic_fetch_or(&log->worker_seen, 1u << info->index);
        atomic_fetch_add(&log->worker_starts, 1);
    } else {
        atomic_fetch_add(&log->blocking_starts, 1);
    }
}

static void
on_stop(const blz_thread_info *info, void *arg)
{
    hook_log *log = arg;
    if (tl_kind != (int) info->kind || tl_index != info->index || tl_stopped) {
        atomic_fetch_add(&log->bad, 1); /* not the thread its start ran on */
    }
    tl_stopped = true;
    atomic_fetch_add(info->kind == BLZ_THREAD_WORKER ? &log->worker_stops : &log->blocking_stops,
                     1);
}

static blz_runtime *
hooked_rt(blz_flavor flavor, unsigned workers, hook_log *log)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.flavor = flavor;
    cfg.workers = workers;
    cfg.on_thread_start = on_start;
    cfg.on_thread_stop = on_stop;
    cfg.thread_hook_arg = log;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    return rt;
}

/* Returns 1 when the calling thread is a worker that ran the start hook and
 * carries its name, 0 otherwise. */
static void *
on_worker(void *arg)
{
    (void) arg;
    char name[16] = "";
    char want[16];
    snprintf(want, sizeof want, "blz-worker-%u", tl_index);
    (void) pthread_getname_np(pthread_self(), name, sizeof name);
    return (void *) (intptr_t) (tl_kind == BLZ_THREAD_WORKER && strcmp(name, want) == 0);
}

static void *
on_blocking(void *arg)
{
    (void) arg;
    char name[16] = "";
    (void) pthread_getname_np(pthread_self(), name, sizeof name);
    return (void *) (intptr_t) (tl_kind == BLZ_THREAD_BLOCKING &&
                                strcmp(name, "blz-blocking") == 0);
}

#define WORKERS 3
#define TASKS   200

BLZ_TEST(hooks_run_on_every_thread_before_its_tasks_and_after)
{
    for (int round = 0; round < 10; round++) {
        hook_log log;
        memset(&log, 0, sizeof log);
        blz_runtime *rt = hooked_rt(BLZ_MULTI_THREAD, WORKERS, &log);
        blz_join *joins[TASKS];
        for (int i = 0; i < TASKS; i++) {
            if (i % 10 == 0) {
                CHECK_OK(blz_runtime_spawn_blocking(rt, on_blocking, NULL, &joins[i]));
            } else {
                CHECK_OK(blz_runtime_spawn(rt, on_worker, NULL, &joins[i]));
            }
        }
        for (int i = 0; i < TASKS; i++) {
            void *ok = NULL;
            CHECK_OK(blz_join_wait(joins[i], &ok));
            CHECK_EQ((intptr_t) ok, 1);
        }
        blz_runtime_free(rt);
        /* Every worker started and stopped; every blocking thread that
         * started (at least one ran the jobs) stopped before the free returned. */
        CHECK_EQ(atomic_load(&log.worker_starts), WORKERS);
        CHECK_EQ(atomic_load(&log.worker_stops), WORKERS);
        CHECK_EQ(atomic_load(&log.worker_seen), (1u << WORKERS) - 1);
        CHECK_GE(atomic_load(&log.blocking_starts), 1);
        CHECK_EQ(atomic_load(&log.blocking_stops), atomic_load(&log.blocking_starts));
        CHECK_EQ(atomic_load(&log.bad), 0);
    }
}

static void *
current_main(void *arg)
{
    (void) arg;
    void *ok = NULL;
    blz_join *j;
    CHECK_OK(blz_spawn_blocking(on_blocking, NULL, &j));
    CHECK_OK(blz_join_wait(j, &ok));
    CHECK_EQ((intptr_t) ok, 1);
    return (void *) (intptr_t) (tl_kind == -1); /* the caller's thread ran no hook */
}

BLZ_TEST(current_thread_runtime_hooks_only_its_blocking_threads)
{
    hook_log log;
    memset(&log, 0, sizeof log);
    blz_runtime *rt = hooked_rt(BLZ_CURRENT_THREAD, 1, &log);
    void *ok = NULL;
    CHECK_OK(blz_runtime_block_on(rt, current_main, NULL, &ok));
    CHECK_EQ((intptr_t) ok, 1);
    blz_runtime_free(rt);
    CHECK_EQ(atomic_load(&log.worker_starts), 0);
    CHECK_GE(atomic_load(&log.blocking_starts), 1);
    CHECK_EQ(atomic_load(&log.blocking_stops), atomic_load(&log.blocking_starts));
    CHECK_EQ(atomic_load(&log.bad), 0);
}
