/*
 * The stall watchdog: reports a worker that has been inside one task's poll
 * for longer than cfg.stall_threshold. Such a task (a loop without a yield,
 * a blocking syscall, a long computation) holds up every task queued on that
 * worker, and from outside the runtime it only shows as latency.
 *
 * It costs the workers nothing new: every task run already counts in the
 * worker's `polls`, and a parked worker says so in `park_state`. The
 * watchdog thread wakes four times per threshold and, per worker, looks at
 * the two: a worker inside blz__worker_run, not asleep, whose count has not
 * moved since an instant at least the threshold ago, is stuck in one poll.
 * One report per stall; the count moving (or the worker parking) ends it.
 * A worker the OS has not scheduled for that long looks the same, and for
 * the tasks queued on it is the same.
 *
 * Real time (blz_now, CLOCK_MONOTONIC), also under a paused runtime clock: a
 * stall is about the CPU, not about timers.
 */
#ifndef _GNU_SOURCE
# define _GNU_SOURCE /* pthread_condattr_setclock, gettid via syscall */
#endif
#include "core/alloc.h"
#include "core/atomic.h"
#include "os/unix/sys.h"
#include "rt/runtime.h"

#include <stdio.h>

static void
report_stderr(const blz_stall_info *info, void *arg)
{
    (void) arg;
    fprintf(stderr,
            "blitzio: worker %u (thread %d) has run one task for %llu ms without yielding\n",
            info->worker, info->tid, (unsigned long long) (info->stalled / 1000000u));
}

/* What the watchdog remembers of one worker between two looks. */
typedef struct worker_watch {
    uint64_t polls;    /* the count at `since` */
    blz_instant since; /* when the count last moved, or the worker last slept */
    bool reported;     /* this stall was reported */
} worker_watch;

static void *
watchdog_main(void *arg)
{
    blz_runtime *rt = arg;
    blz__sys_set_thread_name("blz-watchdog");
    blz__watchdog *wd = &rt->watchdog;
    blz_duration threshold = rt->cfg.stall_threshold;
    blz_stall_fn hook = rt->cfg.on_stall ? rt->cfg.on_stall : report_stderr;
    blz_duration period = threshold / 4 > 1000000 ? threshold / 4 : 1000000;
    worker_watch *seen = blz__calloc(rt->nworkers, sizeof *seen);
    if (!seen) {
        return NULL; /* no memory: no reports, nothing else changes */
    }
    pthread_mutex_lock(&wd->lock);
    while (!wd->stop) {
        struct timespec ts = blz__monotonic_deadline(period);
        (void) pthread_cond_timedwait(&wd->cond, &wd->lock, &ts);
        if (wd->stop) {
            break;
        }
        blz_instant now = blz_now(); /* real time, as the threshold is */
        for (unsigned i = 0; i < rt->nworkers; i++) {
            blz__worker *w = &rt->workers[i];
            worker_watch *s = &seen[i];
            uint64_t polls = blz__load(&w->polls, RELAXED);
            uint32_t park = blz__load(&w->park_state, RELAXED);
            bool awake = blz__load(&w->active, RELAXED) &&
                         (park == BLZ_PARK_EMPTY || park == BLZ_PARK_NOTIFIED);
            if (!awake || polls != s->polls) {
                s->polls = polls;
                s->since = now;
                s->reported = false;
                continue;
            }
            blz_duration stalled = (blz_duration) (now - s->since);
            if (!s->reported && stalled >= threshold) {
                s->reported = true;
                blz_stall_info info = {i, blz__load(&w->tid, RELAXED), stalled};
                pthread_mutex_unlock(&wd->lock); /* the hook may take its time */
                hook(&info, rt->cfg.on_stall_arg);
                pthread_mutex_lock(&wd->lock);
            }
        }
    }
    pthread_mutex_unlock(&wd->lock);
    blz__free(seen);
    return NULL;
}

int
blz__watchdog_start(blz_runtime *rt)
{
    blz__watchdog *wd = &rt->watchdog;
    if (rt->cfg.stall_threshold == 0) {
        return 0;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&wd->lock, NULL);
    pthread_cond_init(&wd->cond, &ca);
    pthread_condattr_destroy(&ca);
    wd->stop = false;
    int rc = pthread_create(&wd->thread, NULL, watchdog_main, rt);
    if (rc != 0) {
        pthread_cond_destroy(&wd->cond);
        pthread_mutex_destroy(&wd->lock);
        return -rc;
    }
    wd->started = true;
    return 0;
}

void
blz__watchdog_stop(blz_runtime *rt)
{
    blz__watchdog *wd = &rt->watchdog;
    if (!wd->started) {
        return;
    }
    pthread_mutex_lock(&wd->lock);
    wd->stop = true;
    pthread_cond_signal(&wd->cond);
    pthread_mutex_unlock(&wd->lock);
    pthread_join(wd->thread, NULL);
    pthread_cond_destroy(&wd->cond);
    pthread_mutex_destroy(&wd->lock);
    wd->started = false;
}
