/*
 * Spare workers (blz_runtime_config.spare_workers): when every worker is
 * stuck in one poll, a spare joins in, so other tasks, timers and I/O go
 * on; once a worker moves again the spare leaves. Each spinner waits for
 * what the spare must do with a generous bound; without the spare it spins
 * that bound out and the test fails.
 */
#include "harness.h"
#include "rt_util.h"

#include <stdatomic.h>
#include <time.h>

#define SPIN_LIMIT_MS 5000

static blz_runtime *
spare_runtime(unsigned workers, unsigned spares)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = workers;
    cfg.spare_workers = spares;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    return rt;
}

typedef struct stuck {
    atomic_bool spinning;
    atomic_bool released;
    atomic_bool saw_release;
} stuck;

/* Keeps its worker (no yield, no await) until released or the bound passes. */
static void *
spin_until_released(void *arg)
{
    stuck *s = arg;
    atomic_store(&s->spinning, true);
    int64_t start = wall_ms();
    while (!atomic_load(&s->released) && wall_ms() - start <= SPIN_LIMIT_MS) {
    }
    atomic_store(&s->saw_release, atomic_load(&s->released));
    return NULL;
}

static void *
release(void *arg)
{
    atomic_store(&((stuck *) arg)->released, true);
    return NULL;
}

static blz_worker_metrics
spare_metrics(blz_runtime *rt, unsigned index)
{
    blz_metrics m;
    blz_runtime_metrics(rt, &m);
    return m.worker[index];
}

/* One worker, stuck: a task spawned from outside can only run on the spare. */
BLZ_TEST(a_spare_runs_what_the_stuck_worker_cannot)
{
    blz_runtime *rt = spare_runtime(1, 1);
    CHECK(spare_metrics(rt, 1).dormant || !spare_metrics(rt, 1).spare_activations);
    for (int round = 0; round < 3; round++) {
        stuck s = {false, false, false};
        blz_join *spinner, *releaser;
        CHECK_OK(blz_runtime_spawn(rt, spin_until_released, &s, &spinner));
        WAIT_UNTIL(atomic_load(&s.spinning), usleep(1000));
        CHECK_OK(blz_runtime_spawn(rt, release, &s, &releaser));
        CHECK_OK(blz_join_wait(releaser, NULL));
        CHECK_OK(blz_join_wait(spinner, NULL));
        CHECK(atomic_load(&s.saw_release));
        /* The worker moves again: the spare leaves at its next park. */
        WAIT_UNTIL(spare_metrics(rt, 1).dormant, usleep(1000));
    }
    CHECK_GE(spare_metrics(rt, 1).spare_activations, 3);
    CHECK_EQ(spare_metrics(rt, 0).spare_activations, 0);
    blz_runtime_free(rt);
}

/* Timers fire while the only worker is stuck: the spare holds the driver. */
static void *
sleep_then_release(void *arg)
{
    CHECK_OK(blz_sleep(blz_ms(20)));
    atomic_store(&((stuck *) arg)->released, true);
    return NULL;
}

BLZ_TEST(timers_fire_while_every_worker_is_stuck)
{
    blz_runtime *rt = spare_runtime(2, 1);
    stuck a = {false, false, false}, b = {false, false, false};
    blz_join *ja, *jb, *jt;
    /* The sleeper registers its timer first, then both workers get stuck. */
    CHECK_OK(blz_runtime_spawn(rt, sleep_then_release, &a, &jt));
    CHECK_OK(blz_runtime_spawn(rt, spin_until_released, &a, &ja));
    CHECK_OK(blz_runtime_spawn(rt, spin_until_released, &b, &jb));
    CHECK_OK(blz_join_wait(jt, NULL));
    CHECK_OK(blz_join_wait(ja, NULL));
    CHECK(atomic_load(&a.saw_release));
    atomic_store(&b.released, true);
    CHECK_OK(blz_join_wait(jb, NULL));
    blz_runtime_free(rt);
}

/* With nothing stuck the spare stays out: a thousand tasks, none on it.
 * A worker the machine keeps off its CPU for 10 ms mid-poll does look stuck
 * (that is the rule; a loaded sanitizer run has done it), so a round may
 * fairly see the spare join: up to three rounds, and one must see it stay
 * out. A spare that joins while workers move does so in every round. */
static void *
nothing(void *arg)
{
    return arg;
}

static bool
spare_stayed_out(void)
{
    blz_runtime *rt = spare_runtime(1, 1);
    blz_join *js[1000];
    for (int i = 0; i < 1000; i++) {
        CHECK_OK(blz_runtime_spawn(rt, nothing, NULL, &js[i]));
    }
    CHECK_OK(blz_join_all(js, 1000, NULL));
    blz_worker_metrics spare = spare_metrics(rt, 1);
    blz_runtime_free(rt);
    if (spare.polls != 0 || spare.spare_activations != 0) {
        fprintf(stderr, "the spare joined in: %llu activations, %llu polls\n",
                (unsigned long long) spare.spare_activations, (unsigned long long) spare.polls);
        return false;
    }
    return true;
}

BLZ_TEST(a_spare_stays_out_while_workers_move)
{
    bool out = false;
    for (int round = 0; round < 3 && !out; round++) {
        out = spare_stayed_out();
    }
    CHECK(out);
}

/* A dormant spare is not busy: an idle runtime on a paused clock still
 * jumps to its next timer. */
static void *
sleep_an_hour(void *arg)
{
    (void) arg;
    CHECK_OK(blz_sleep(blz_secs(3600)));
    return (void *) 1;
}

BLZ_TEST(paused_clock_still_jumps_with_a_dormant_spare)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 1;
    cfg.spare_workers = 2;
    cfg.paused_clock = true;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    void *res = NULL;
    CHECK_OK(blz_runtime_block_on(rt, sleep_an_hour, NULL, &res));
    CHECK_PTR_EQ(res, (void *) 1);
    blz_runtime_free(rt);
}

BLZ_TEST(bad_spare_counts)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    blz_runtime *rt = NULL;
    cfg.workers = 2;
    cfg.spare_workers = BLZ_METRICS_MAX_WORKERS - 1;
    CHECK_EQ(blz_runtime_new(&cfg, &rt), -EINVAL);
    cfg.flavor = BLZ_CURRENT_THREAD;
    cfg.spare_workers = 1;
    CHECK_EQ(blz_runtime_new(&cfg, &rt), -EINVAL);
    CHECK(rt == NULL);
}
