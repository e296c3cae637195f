/*
 * Runtime metrics: per-worker counters that add up to the totals, busy time
 * that counts a long poll and leaves out time asleep, the mean task run, the
 * blocking pool's queue, timers fired. Clock reads here only bound what the
 * runtime measured with the same clock; nothing waits for another thread by
 * time.
 */
#include "blitzio.h"
#include "harness.h"
#include "rt/runtime.h"
#include "rt_util.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#define MS BLZ_NS_PER_MS

static void
spin_for(blz_duration d)
{
    blz_instant end = blz_now() + d;
    while (blz_now() < end) {
    }
}

static void *
spin_task(void *arg)
{
    spin_for((blz_duration) (uintptr_t) arg);
    return NULL;
}

static uint64_t
busy_sum(const blz_metrics *m)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < m->workers; i++) {
        sum += m->worker[i].busy_ns;
    }
    return sum;
}

/* A figure of a metrics snapshot that becomes nonzero once some event has
 * happened (a batch ended, a run was counted). */
typedef uint64_t (*metric_fn)(const blz_metrics *m);

/* Snapshots rt's metrics into `m` until `figure` is nonzero, giving up after
 * 10 s (the caller's CHECK then fails); returns the figure. */
static uint64_t
metrics_until(blz_runtime *rt, blz_metrics *m, metric_fn figure)
{
    blz_instant give_up = blz_now() + 10 * BLZ_NS_PER_S;
    for (;;) {
        blz_runtime_metrics(rt, m);
        uint64_t v = figure(m);
        if (v != 0 || blz_now() >= give_up) {
            return v;
        }
        sched_yield();
    }
}

static uint64_t
longest_mean_poll(const blz_metrics *m)
{
    uint64_t longest = 0;
    for (unsigned i = 0; i < m->workers; i++) {
        if (m->worker[i].mean_poll_ns > longest) {
            longest = m->worker[i].mean_poll_ns;
        }
    }
    return longest;
}

/* Runs of 2 ms or more (bucket 12 and above). */
static uint64_t
long_runs(const blz_metrics *m)
{
    uint64_t n = 0;
    for (int i = 12; i < BLZ_POLL_BUCKETS; i++) {
        n += m->poll_time_histogram[i];
    }
    return n;
}

BLZ_TEST(per_worker_counters_add_up_to_the_totals)
{
    blz_runtime *rt = test_runtime(3, 0);
    blz_join *j[300];
    for (int i = 0; i < 300; i++) {
        CHECK_OK(blz_runtime_spawn(rt, spin_task, (void *) (uintptr_t) 0, &j[i]));
    }
    for (int i = 0; i < 300; i++) {
        CHECK_OK(blz_join_wait(j[i], NULL));
    }
    blz_metrics m;
    blz_runtime_metrics(rt, &m);
    CHECK_EQ(m.workers, 3u);
    uint64_t polls = 0, steals = 0, parks = 0, unparks = 0;
    for (unsigned i = 0; i < m.workers; i++) {
        polls += m.worker[i].polls;
        steals += m.worker[i].steals;
        parks += m.worker[i].parks;
        unparks += m.worker[i].unparks;
        CHECK_LE(m.worker[i].busy_ns, m.uptime_ns);
    }
    CHECK_EQ(polls, m.polls);
    CHECK_EQ(steals, m.steals);
    CHECK_EQ(parks, m.parks);
    CHECK_EQ(unparks, m.unparks);
    CHECK_GE(m.polls, 300);
    blz_runtime_free(rt);
}

/* A task that keeps its worker for 30 ms: that worker's busy time grows by at
 * least as much, and its mean task run reflects the long one. */
BLZ_TEST(a_long_poll_counts_as_busy_time)
{
    blz_runtime *rt = test_runtime(2, 0);
    blz_metrics before, after;
    blz_runtime_metrics(rt, &before);
    blz_join *j;
    CHECK_OK(blz_runtime_spawn(rt, spin_task, (void *) (uintptr_t) (30 * MS), &j));
    CHECK_OK(blz_join_wait(j, NULL));
    blz_runtime_metrics(rt, &after);
    CHECK_GE(busy_sum(&after) - busy_sum(&before), 30 * MS);
    for (unsigned i = 0; i < after.workers; i++) {
        CHECK_LE(after.worker[i].busy_ns, after.uptime_ns);
        CHECK_GE(after.worker[i].busy_ns, before.worker[i].busy_ns);
    }
    /* The batch holding the 30 ms run (at most 61 runs) ends at that
     * worker's next maintenance tick or park, which may come just after the
     * join: wait for it (any mean at all), then it weighs a quarter, at
     * least 30 ms / 61 / 4 ≈ 120 µs, a quarter less per batch since. */
    CHECK_GE(metrics_until(rt, &after, longest_mean_poll), 1000);
    blz_runtime_free(rt);
}

static void *
sleep_task(void *arg)
{
    return (void *) (intptr_t) blz_sleep((blz_duration) (uintptr_t) arg);
}

/* A current-thread runtime's worker is the caller's thread inside block_on,
 * so what it does is known exactly: asleep in a 100 ms timer is not busy,
 * and outside block_on nothing is counted at all. */
BLZ_TEST(time_asleep_and_outside_block_on_is_not_busy)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.flavor = BLZ_CURRENT_THREAD;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    bool idle_left_out = false;
    /* The bound below holds unless this thread lost the CPU for 50 ms between
     * the timer's start and the worker's park; a runtime that counts sleep as
     * busy fails every attempt. */
    for (int attempt = 0; attempt < 5 && !idle_left_out; attempt++) {
        blz_metrics m0, m1;
        blz_runtime_metrics(rt, &m0);
        blz_instant t0 = blz_now();
        void *rc = (void *) 1;
        CHECK_OK(blz_runtime_block_on(rt, sleep_task, (void *) (uintptr_t) (100 * MS), &rc));
        CHECK_EQ((intptr_t) rc, 0);
        blz_instant t1 = blz_now();
        blz_runtime_metrics(rt, &m1);
        uint64_t busy = m1.worker[0].busy_ns - m0.worker[0].busy_ns;
        CHECK_GE(m1.worker[0].parks, m0.worker[0].parks + 1);
        CHECK_LE(busy, t1 - t0);
        idle_left_out = busy + 50 * MS < t1 - t0;
    }
    CHECK(idle_left_out);

    /* Outside block_on: not a nanosecond. */
    blz_metrics a, b;
    blz_runtime_metrics(rt, &a);
    spin_for(5 * MS);
    blz_runtime_metrics(rt, &b);
    CHECK_EQ(b.worker[0].busy_ns, a.worker[0].busy_ns);
    CHECK_GE(b.uptime_ns, a.uptime_ns + 5 * MS);
    blz_runtime_free(rt);
}

/* Readers on other threads while the workers sleep and wake: busy time never
 * goes backwards and never exceeds the uptime of the same snapshot. */
typedef struct reader_ctx {
    blz_runtime *rt;
    _Atomic bool stop;
    _Atomic int bad;
    _Atomic long reads;
} reader_ctx;

static void *
reader_thread(void *arg)
{
    reader_ctx *c = arg;
    uint64_t last[BLZ_METRICS_MAX_WORKERS] = {0};
    blz_metrics m;
    while (!atomic_load(&c->stop)) {
        blz_runtime_metrics(c->rt, &m);
        for (unsigned i = 0; i < m.workers; i++) {
            if (m.worker[i].busy_ns < last[i] || m.worker[i].busy_ns > m.uptime_ns) {
                atomic_fetch_add(&c->bad, 1);
            }
            last[i] = m.worker[i].busy_ns;
        }
        atomic_fetch_add(&c->reads, 1);
    }
    return NULL;
}

static void *
nap_task(void *arg)
{
    (void) arg;
    for (int i = 0; i < 20; i++) {
        CHECK_OK(blz_sleep(200 * 1000)); /* 200 µs: the worker parks and wakes */
        blz_yield();
    }
    return NULL;
}

BLZ_TEST(busy_time_read_while_workers_park_and_wake)
{
    blz_runtime *rt = test_runtime(2, 0);
    reader_ctx c = {.rt = rt};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(pthread_create(&th[i], NULL, reader_thread, &c), 0);
    }
    /* Go on until the readers have overlapped the parking for a while. */
    for (int round = 0; round < 20 || atomic_load(&c.reads) < 2000; round++) {
        blz_join *j[4];
        for (int i = 0; i < 4; i++) {
            CHECK_OK(blz_runtime_spawn(rt, nap_task, NULL, &j[i]));
        }
        for (int i = 0; i < 4; i++) {
            CHECK_OK(blz_join_wait(j[i], NULL));
        }
        CHECK(round < 100000);
    }
    atomic_store(&c.stop, true);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    }
    CHECK_EQ(atomic_load(&c.bad), 0);
    blz_runtime_free(rt);
}

/* The blocking pool's queue: with one thread held by a job, the next jobs wait
 * in the queue, and the metric counts exactly them. */
static void *
nothing_job(void *arg)
{
    return arg;
}

BLZ_TEST(blocking_queue_depth_counts_jobs_not_yet_started)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 1;
    cfg.blocking_threads = 1;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    job_gate g;
    job_gate_init(&g);
    blz_join *first, *rest[3];
    CHECK_OK(blz_runtime_spawn_blocking(rt, gated_job, &g, &first));
    job_gate_wait_entered(&g);
    for (int i = 0; i < 3; i++) {
        CHECK_OK(blz_runtime_spawn_blocking(rt, nothing_job, NULL, &rest[i]));
    }
    blz_metrics m;
    blz_runtime_metrics(rt, &m);
    CHECK_EQ(m.blocking_threads, 1);
    CHECK_EQ(m.blocking_queue_depth, 3);
    job_gate_open(&g);
    CHECK_OK(blz_join_wait(first, NULL));
    for (int i = 0; i < 3; i++) {
        CHECK_OK(blz_join_wait(rest[i], NULL));
    }
    blz_runtime_metrics(rt, &m);
    CHECK_EQ(m.blocking_queue_depth, 0);
    blz_runtime_free(rt);
    job_gate_fini(&g);
}

static void *
sleeps_task(void *arg)
{
    for (int i = 0; i < (int) (uintptr_t) arg; i++) {
        CHECK_OK(blz_sleep(1000));
    }
    return NULL;
}

BLZ_TEST(timers_fired_counts_the_sleeps)
{
    blz_runtime *rt = test_runtime(2, 0);
    blz_metrics a, b;
    blz_runtime_metrics(rt, &a);
    blz_join *j;
    CHECK_OK(blz_runtime_spawn(rt, sleeps_task, (void *) (uintptr_t) 10, &j));
    CHECK_OK(blz_join_wait(j, NULL));
    blz_runtime_metrics(rt, &b);
    CHECK_GE(b.timers_fired, a.timers_fired + 10);
    blz_runtime_free(rt);
}

static uint64_t
hist_sum(const blz_metrics *m)
{
    uint64_t sum = 0;
    for (int i = 0; i < BLZ_POLL_BUCKETS; i++) {
        sum += m->poll_time_histogram[i];
    }
    return sum;
}

BLZ_TEST(poll_buckets_are_powers_of_two_of_microseconds)
{
    CHECK_EQ(blz__poll_bucket(0), 0);
    CHECK_EQ(blz__poll_bucket(999), 0);
    CHECK_EQ(blz__poll_bucket(1000), 1);
    CHECK_EQ(blz__poll_bucket(1999), 1);
    CHECK_EQ(blz__poll_bucket(2000), 2);
    CHECK_EQ(blz__poll_bucket(3999), 2);
    CHECK_EQ(blz__poll_bucket(4000), 3);
    CHECK_EQ(blz__poll_bucket(3 * MS), 12); /* [2048, 4096) µs */
    CHECK_EQ(blz__poll_bucket(262143 * 1000ull), BLZ_POLL_BUCKETS - 2);
    CHECK_EQ(blz__poll_bucket(262144 * 1000ull), BLZ_POLL_BUCKETS - 1);
    CHECK_EQ(blz__poll_bucket(UINT64_MAX), BLZ_POLL_BUCKETS - 1);
}

/* With the option, every task run is counted once, in the bucket of its
 * duration: a 3 ms spin in bucket 12 ([2048, 4096) µs) or above. Without it,
 * nothing is counted. */
BLZ_TEST(poll_time_histogram_counts_runs_by_duration)
{
    for (int on = 0; on <= 1; on++) {
        blz_runtime_config cfg;
        blz_runtime_config_default(&cfg);
        cfg.workers = 2;
        cfg.poll_time_histogram = on;
        blz_runtime *rt;
        CHECK_OK(blz_runtime_new(&cfg, &rt));
        blz_join *j[101];
        for (int i = 0; i < 100; i++) {
            CHECK_OK(blz_runtime_spawn(rt, spin_task, (void *) (uintptr_t) 0, &j[i]));
        }
        CHECK_OK(blz_runtime_spawn(rt, spin_task, (void *) (uintptr_t) (3 * MS), &j[100]));
        for (int i = 0; i <= 100; i++) {
            CHECK_OK(blz_join_wait(j[i], NULL));
        }
        blz_metrics m;
        blz_runtime_metrics(rt, &m);
        if (!on) {
            CHECK_EQ(hist_sum(&m), 0);
        } else {
            /* A run is counted once it returns, and a join can be seen
             * just before its task's run returns: wait for the last runs
             * to be counted (an event, bounded by a generous give-up). */
            CHECK_GE(metrics_until(rt, &m, long_runs), 1); /* no run is shorter than its spin */
            uint64_t sum = hist_sum(&m);
            CHECK_LE(sum, m.polls);
            CHECK_GE(sum + m.workers, m.polls); /* a run still returning */
            CHECK_GE(m.polls, 101);
        }
        blz_runtime_free(rt);
    }
}

/* The spawned task's wait, as the test saw it: queued after `before`,
 * still queued at `after`, started at `started`. */
static blz_instant spawn_before, spawn_after, spawned_started;

static void *
note_start(void *arg)
{
    (void) arg;
    spawned_started = blz_now();
    return NULL;
}

/* Spawns a task (it waits in this worker's LIFO slot), then spins 20 ms: on
 * one worker, the spawned task's wait to run is at least the spin. */
static void *
spawn_then_spin_20ms(void *arg)
{
    (void) arg;
    blz_join *j;
    spawn_before = blz_now();
    CHECK_OK(blz_spawn(note_start, NULL, &j));
    spawn_after = blz_now();
    spin_for(20 * MS);
    CHECK_OK(blz_join_wait(j, NULL));
    return NULL;
}

static uint64_t
delay_sum(const blz_metrics *m, int from_bucket, int to_bucket)
{
    uint64_t sum = 0;
    for (int i = from_bucket; i <= to_bucket; i++) {
        sum += m->sched_delay_histogram[i];
    }
    return sum;
}

/* With the option, every task run is counted once, in the bucket of the
 * time the task waited since it was queued: the task spawned behind a 20 ms
 * spin in the bucket of the wait the test measured around it (bucket 15,
 * [16384, 32768) µs, or above). Without it, nothing. */
BLZ_TEST(sched_delay_histogram_counts_the_wait_to_run)
{
    for (int on = 0; on <= 1; on++) {
        blz_runtime_config cfg;
        blz_runtime_config_default(&cfg);
        cfg.workers = 1;
        cfg.sched_delay_histogram = on;
        blz_runtime *rt;
        CHECK_OK(blz_runtime_new(&cfg, &rt));
        blz_join *j;
        CHECK_OK(blz_runtime_spawn(rt, spawn_then_spin_20ms, NULL, &j));
        CHECK_OK(blz_join_wait(j, NULL));
        blz_metrics m;
        blz_runtime_metrics(rt, &m);
        if (!on) {
            CHECK_EQ(delay_sum(&m, 0, BLZ_POLL_BUCKETS - 1), 0);
        } else {
            int lo = blz__poll_bucket(spawned_started - spawn_after);
            int hi = blz__poll_bucket(spawned_started - spawn_before + 1000);
            CHECK_GE(lo, 15);
            CHECK_GE(delay_sum(&m, lo, hi), 1);
            /* Counted as each run starts: every run (the spawner's two polls
             * and the spawned task's one) is in by the time the join returns. */
            CHECK_EQ(delay_sum(&m, 0, BLZ_POLL_BUCKETS - 1), m.polls);
            CHECK_GE(m.polls, 3);
        }
        blz_runtime_free(rt);
    }
}
