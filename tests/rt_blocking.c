/*
 * The blocking pool's backpressure (blocking_queue_limit): the try tier
 * refuses at the limit, the await tier waits (fibers suspend, foreign threads
 * park, stackless polls get -EDEADLK), waiting spawns get room oldest first,
 * a spawn dropped or aborted while it waits spawns nothing and passes its
 * turn on, the runtime's free ends the waits (and frees nothing before
 * they have returned), and under many spawners on real threads no more than
 * `limit` jobs ever wait while every job runs once.
 */
#include "harness.h"
#include "rt_util.h"

#include <stdatomic.h>

/* Jobs that record the order they ran in. */
static atomic_int ran_count;
static atomic_int ran_order[64];

static void *
recording_job(void *arg)
{
    int slot = atomic_fetch_add(&ran_count, 1);
    atomic_store(&ran_order[slot], (int) (intptr_t) arg);
    return arg;
}

static blz_runtime *
limited_runtime(unsigned workers, unsigned threads, unsigned limit)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = workers;
    cfg.blocking_threads = threads;
    cfg.blocking_queue_limit = limit;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    return rt;
}

static blz_metrics
metrics(blz_runtime *rt)
{
    blz_metrics m;
    blz_runtime_metrics(rt, &m);
    return m;
}

static void
nap(void)
{
    struct timespec ts = {0, 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* A runtime whose one pool thread is held by a gated job, with `n` recording
 * jobs (tagged 100, 101, ...) queued behind it. */
enum { MAX_QUEUED = 40 };

typedef struct held_pool {
    blz_runtime *rt;
    job_gate g;
    blz_join *held, *queued[MAX_QUEUED];
    int n;
} held_pool;

static void
hold_pool(held_pool *hp, unsigned workers, unsigned limit, int n)
{
    atomic_store(&ran_count, 0);
    hp->rt = limited_runtime(workers, 1, limit);
    hp->n = n;
    job_gate_init(&hp->g);
    CHECK_OK(blz_runtime_try_spawn_blocking(hp->rt, gated_job, &hp->g, &hp->held));
    job_gate_wait_entered(&hp->g);
    for (int i = 0; i < n; i++) {
        CHECK_OK(blz_runtime_try_spawn_blocking(hp->rt, recording_job,
                                                (void *) (intptr_t) (100 + i), &hp->queued[i]));
    }
}

/* Opens the gate and joins the held job and the queued ones. */
static void
release_pool(held_pool *hp)
{
    job_gate_open(&hp->g);
    CHECK_OK(blz_join_wait(hp->held, NULL));
    for (int i = 0; i < hp->n; i++) {
        CHECK_OK(blz_join_wait(hp->queued[i], NULL));
    }
}

static void
free_pool(held_pool *hp)
{
    blz_runtime_free(hp->rt);
    job_gate_fini(&hp->g);
}

BLZ_TEST(try_refuses_at_the_limit_and_accepts_once_a_job_starts)
{
    held_pool hp;
    hold_pool(&hp, 1, 2, 2);
    blz_metrics before = metrics(hp.rt);
    CHECK_EQ(before.blocking_queue_depth, 2);
    blz_join *late;
    CHECK_EQ(blz_runtime_try_spawn_blocking(hp.rt, recording_job, NULL, &late), -EAGAIN);
    /* The refused job left nothing behind: not queued, not even a task. */
    blz_metrics after = metrics(hp.rt);
    CHECK_EQ(after.blocking_queue_depth, 2);
    CHECK_EQ(after.tasks_spawned, before.tasks_spawned);
    job_gate_open(&hp.g);
    int rc;
    WAIT_UNTIL((rc = blz_runtime_try_spawn_blocking(hp.rt, recording_job, (void *) 7, &late)) !=
                   -EAGAIN,
               nap());
    CHECK_OK(rc);
    void *v;
    CHECK_OK(blz_join_wait(late, &v));
    CHECK_PTR_EQ(v, (void *) 7);
    release_pool(&hp);
    free_pool(&hp);
}

BLZ_TEST(no_limit_never_refuses)
{
    held_pool hp;
    hold_pool(&hp, 1, 0, MAX_QUEUED);
    CHECK_EQ(metrics(hp.rt).blocking_queue_depth, MAX_QUEUED);
    release_pool(&hp);
    free_pool(&hp);
}

/* A fiber that spawns (waiting for room) and joins the job. */
typedef struct spawner {
    blz_runtime *rt;
    intptr_t tag;
    int rc;
    blz_join *join;
} spawner;

static void *
spawner_fiber(void *arg)
{
    spawner *s = arg;
    s->rc = blz_spawn_blocking(recording_job, (void *) s->tag, &s->join);
    return NULL;
}

BLZ_TEST(fibers_wait_for_room_and_get_it_oldest_first)
{
    held_pool hp;
    hold_pool(&hp, 2, 1, 1);
    spawner sp[4];
    blz_join *fibers[4];
    for (int i = 0; i < 4; i++) {
        sp[i] = (spawner){hp.rt, i + 1, 1, NULL};
        CHECK_OK(blz_runtime_spawn(hp.rt, spawner_fiber, &sp[i], &fibers[i]));
        /* One at a time, so the order they queued in is known. */
        WAIT_UNTIL(metrics(hp.rt).blocking_spawns_waiting == (uint64_t) i + 1, nap());
    }
    CHECK_EQ(sp[0].rc, 1); /* still waiting */
    release_pool(&hp);
    for (int i = 0; i < 4; i++) {
        CHECK_OK(blz_join_wait(fibers[i], NULL));
        CHECK_EQ(sp[i].rc, 0);
        void *v;
        CHECK_OK(blz_join_wait(sp[i].join, &v));
        CHECK_PTR_EQ(v, (void *) sp[i].tag);
    }
    /* One pool thread runs the jobs in queue order: the queued one, then the
     * waiting spawns in the order they started waiting. */
    CHECK_EQ(atomic_load(&ran_count), 5);
    CHECK_EQ(atomic_load(&ran_order[0]), 100);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(atomic_load(&ran_order[i + 1]), i + 1);
    }
    CHECK_EQ(metrics(hp.rt).blocking_spawns_waiting, 0);
    free_pool(&hp);
}

static blz_poll
poll_by_hand(blz_spawn_blocking_future *f)
{
    blz_context cx = {blz_waker_noop()};
    return blz_future_poll(&f->base, &cx);
}

BLZ_TEST(dropped_futures_spawn_nothing_and_pass_their_turn_on)
{
    held_pool hp;
    hold_pool(&hp, 1, 1, 1);
    blz_spawn_blocking_future f[4];
    for (int i = 0; i < 4; i++) {
        blz_runtime_spawn_blocking_fut(hp.rt, recording_job, (void *) (intptr_t) (i + 1), &f[i]);
        CHECK_EQ(poll_by_hand(&f[i]), BLZ_PENDING);
    }
    CHECK_EQ(metrics(hp.rt).blocking_spawns_waiting, 4);
    blz_future_drop(&f[0].base); /* dropped while queued */
    CHECK_EQ(metrics(hp.rt).blocking_spawns_waiting, 3);

    /* The held job ends and the queued one starts: one slot, granted to f[1]
     * (the oldest still waiting), which is then dropped before it polls: the
     * slot must go on to f[2]. */
    job_gate_open(&hp.g);
    WAIT_UNTIL(metrics(hp.rt).blocking_spawns_waiting == 2, nap());
    blz_future_drop(&f[1].base);
    WAIT_UNTIL(metrics(hp.rt).blocking_spawns_waiting == 1, nap());
    CHECK_EQ(poll_by_hand(&f[2]), BLZ_READY);
    CHECK_OK(f[2].base.result);
    CHECK_EQ(poll_by_hand(&f[2]), BLZ_READY); /* polled again: no second spawn */
    CHECK_OK(blz_join_wait(f[2].join, NULL));
    WAIT_UNTIL(poll_by_hand(&f[3]) == BLZ_READY, nap());
    CHECK_OK(f[3].base.result);
    CHECK_OK(blz_join_wait(f[3].join, NULL));
    release_pool(&hp);

    CHECK_EQ(atomic_load(&ran_count), 3); /* the queued job, f[2]'s and f[3]'s */
    CHECK_EQ(atomic_load(&ran_order[1]), 3);
    CHECK_EQ(atomic_load(&ran_order[2]), 4);
    /* No slot was lost on the way: the limit's one slot is free again. */
    blz_join *again;
    CHECK_OK(blz_runtime_try_spawn_blocking(hp.rt, recording_job, NULL, &again));
    CHECK_OK(blz_join_wait(again, NULL));
    free_pool(&hp);
}

BLZ_TEST(aborted_while_waiting_spawns_nothing)
{
    held_pool hp;
    hold_pool(&hp, 1, 1, 1);
    spawner sp = {hp.rt, 9, 1, NULL};
    blz_join *fiber;
    CHECK_OK(blz_runtime_spawn(hp.rt, spawner_fiber, &sp, &fiber));
    WAIT_UNTIL(metrics(hp.rt).blocking_spawns_waiting == 1, nap());
    blz_join_abort(fiber);
    CHECK_EQ(blz_join_wait(fiber, NULL), -ECANCELED);
    CHECK_EQ(sp.rc, -ECANCELED);
    CHECK_EQ(metrics(hp.rt).blocking_spawns_waiting, 0);
    release_pool(&hp);
    CHECK_EQ(atomic_load(&ran_count), 1); /* only the queued job */
    free_pool(&hp);
}

/* A stackless task that tries the await tier from its poll; its result is
 * the spawn's (the job, if spawned, detached). */
typedef struct deadlock_probe {
    blz_future base;
} deadlock_probe;

static blz_poll
deadlock_probe_poll(blz_future *base, blz_context *cx)
{
    (void) cx;
    base->result = blz_spawn_blocking(recording_job, NULL, NULL);
    return BLZ_READY;
}

static const blz_future_vtable deadlock_probe_vt = {deadlock_probe_poll, NULL};

BLZ_TEST(stackless_poll_gets_edeadlk_only_when_it_would_wait)
{
    held_pool hp;
    hold_pool(&hp, 1, 1, 0); /* the thread held, the one slot free */
    deadlock_probe probe;
    blz_future_init(&probe.base, &deadlock_probe_vt);
    blz_join *task;
    void *v;
    /* With room, the await tier spawns from a poll without waiting... */
    CHECK_OK(blz_runtime_spawn_future(hp.rt, &probe.base, sizeof probe, &task));
    CHECK_OK(blz_join_wait(task, &v));
    CHECK_EQ((int) (intptr_t) v, 0);
    CHECK_EQ(metrics(hp.rt).blocking_queue_depth, 1);
    /* ...and now, full, it would wait, which a poll must not. */
    CHECK_OK(blz_runtime_spawn_future(hp.rt, &probe.base, sizeof probe, &task));
    CHECK_OK(blz_join_wait(task, &v));
    CHECK_EQ((int) (intptr_t) v, -EDEADLK);
    CHECK_EQ(metrics(hp.rt).blocking_spawns_waiting, 0);
    release_pool(&hp);
    WAIT_UNTIL(atomic_load(&ran_count) == 1, nap()); /* the first probe's job, detached */
    free_pool(&hp);
}

/* A blocking job that, once let through its gate, spawns another through
 * the await tier and returns what that said. */
static void *
spawning_job(void *arg)
{
    (void) gated_job(arg);
    return (void *) (intptr_t) blz_spawn_blocking(recording_job, NULL, NULL);
}

BLZ_TEST(pool_thread_gets_edeadlk_instead_of_waiting_for_its_own_pool)
{
    atomic_store(&ran_count, 0);
    blz_runtime *rt = limited_runtime(1, 2, 1); /* two threads, one slot */
    job_gate held_gate, spawner_gate;
    job_gate_init(&held_gate);
    job_gate_init(&spawner_gate);
    blz_join *held, *spawning, *queued;
    CHECK_OK(blz_runtime_try_spawn_blocking(rt, gated_job, &held_gate, &held));
    job_gate_wait_entered(&held_gate);
    CHECK_OK(blz_runtime_try_spawn_blocking(rt, spawning_job, &spawner_gate, &spawning));
    job_gate_wait_entered(&spawner_gate);
    /* Both threads busy, and a job in the one slot: the spawner, a job of
     * this very pool, finds no room and must not wait for it. */
    CHECK_OK(blz_runtime_try_spawn_blocking(rt, recording_job, NULL, &queued));
    job_gate_open(&spawner_gate);
    void *v;
    CHECK_OK(blz_join_wait(spawning, &v));
    CHECK_EQ((int) (intptr_t) v, -EDEADLK);
    job_gate_open(&held_gate);
    CHECK_OK(blz_join_wait(held, NULL));
    CHECK_OK(blz_join_wait(queued, NULL));
    /* With room, a job spawns from its pool thread as from anywhere. */
    CHECK_OK(blz_runtime_try_spawn_blocking(rt, spawning_job, &spawner_gate, &spawning));
    CHECK_OK(blz_join_wait(spawning, &v));
    CHECK_EQ((int) (intptr_t) v, 0);
    WAIT_UNTIL(atomic_load(&ran_count) == 2, nap()); /* the queued job and that spawn's */
    blz_runtime_free(rt);
    job_gate_fini(&held_gate);
    job_gate_fini(&spawner_gate);
}

/* A thread outside the runtime that spawns through the await tier. */
typedef struct foreign {
    blz_runtime *rt;
    int rc;
    blz_join *join;
    job_gate *open_after; /* opened once the spawn returned, or NULL */
} foreign;

static void *
foreign_spawner(void *arg)
{
    foreign *f = arg;
    f->rc = blz_runtime_spawn_blocking(f->rt, recording_job, (void *) 5, &f->join);
    if (f->open_after) {
        job_gate_open(f->open_after);
    }
    return NULL;
}

BLZ_TEST(foreign_thread_parks_until_room)
{
    held_pool hp;
    hold_pool(&hp, 1, 1, 1);
    foreign f = {hp.rt, 1, NULL, NULL};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, foreign_spawner, &f), 0);
    WAIT_UNTIL(metrics(hp.rt).blocking_spawns_waiting == 1, nap());
    release_pool(&hp);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_OK(f.rc);
    void *v;
    CHECK_OK(blz_join_wait(f.join, &v));
    CHECK_PTR_EQ(v, (void *) 5);
    free_pool(&hp);
}

BLZ_TEST(runtime_free_ends_a_waiting_spawn)
{
    held_pool hp;
    hold_pool(&hp, 1, 1, 1);
    blz_join_detach(hp.held);
    blz_join_detach(hp.queued[0]);
    /* The spawner opens the gate once its wait has ended, which lets the free
     * (waiting for the held job) finish: a free that did not end the wait
     * would hang here. */
    foreign f = {hp.rt, 1, NULL, &hp.g};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, foreign_spawner, &f), 0);
    WAIT_UNTIL(metrics(hp.rt).blocking_spawns_waiting == 1, nap());
    blz_runtime_free(hp.rt);
    CHECK_EQ(pthread_join(th, NULL), 0);
    job_gate_fini(&hp.g);
    CHECK_EQ(f.rc, -ESHUTDOWN);
    CHECK_EQ(atomic_load(&ran_count), 0); /* the queued job was aborted, the spawn refused */
}

BLZ_TEST(bad_input)
{
    blz_runtime *rt = limited_runtime(1, 1, 1);
    blz_join *j = NULL;
    CHECK_EQ(blz_runtime_try_spawn_blocking(rt, NULL, NULL, &j), -EINVAL);
    CHECK_EQ(blz_runtime_spawn_blocking(rt, NULL, NULL, &j), -EINVAL);
    CHECK_EQ(blz_runtime_try_spawn_blocking(NULL, recording_job, NULL, &j), -EINVAL);
    CHECK_EQ(blz_runtime_spawn_blocking(NULL, recording_job, NULL, &j), -EINVAL);
    CHECK_EQ(blz_try_spawn_blocking(recording_job, NULL, &j), -ESRCH); /* not a runtime thread */
    blz_spawn_blocking_future f;
    blz_runtime_spawn_blocking_fut(rt, NULL, NULL, &f);
    CHECK_EQ(poll_by_hand(&f), BLZ_READY);
    CHECK_EQ(f.base.result, -EINVAL);
    blz_spawn_blocking_fut(recording_job, NULL, &f);
    CHECK_EQ(poll_by_hand(&f), BLZ_READY);
    CHECK_EQ(f.base.result, -ESRCH);
    blz_future_drop(&f.base);
    /* An explicit runtime that is NULL is bad input, as for the other tiers;
     * -ESRCH is for "this thread has no runtime". */
    blz_runtime_spawn_blocking_fut(NULL, recording_job, NULL, &f);
    CHECK_EQ(poll_by_hand(&f), BLZ_READY);
    CHECK_EQ(f.base.result, -EINVAL);
    blz_future_drop(&f.base);
    blz_spawn_blocking_fut(recording_job, NULL, NULL); /* ignored */
    CHECK_PTR_EQ(j, NULL);
    blz_runtime_free(rt);
}

/* Many spawners on real threads: every job runs once, and no job ever sees
 * more than `limit` jobs waiting. */
enum { STORM_FIBERS = 8, STORM_JOBS = 150, STORM_LIMIT = 3 };

typedef struct storm {
    blz_runtime *rt;
    atomic_int runs[STORM_FIBERS * STORM_JOBS];
    atomic_llong most_waiting;
} storm;

typedef struct storm_job {
    storm *s;
    int index;
} storm_job;

static storm_job storm_jobs[STORM_FIBERS * STORM_JOBS];

static void *
storm_job_run(void *arg)
{
    storm_job *j = arg;
    atomic_fetch_add(&j->s->runs[j->index], 1);
    long long depth = (long long) metrics(j->s->rt).blocking_queue_depth;
    long long seen = atomic_load(&j->s->most_waiting);
    while (depth > seen && !atomic_compare_exchange_weak(&j->s->most_waiting, &seen, depth)) {
    }
    return NULL;
}

static void *
storm_fiber(void *arg)
{
    storm_job *first = arg;
    blz_join *joins[STORM_JOBS];
    for (int i = 0; i < STORM_JOBS; i++) {
        /* Every third spawn tries first and falls back to waiting. */
        int rc = i % 3 == 0 ? blz_try_spawn_blocking(storm_job_run, &first[i], &joins[i]) : -EAGAIN;
        if (rc == -EAGAIN) {
            rc = blz_spawn_blocking(storm_job_run, &first[i], &joins[i]);
        }
        CHECK_OK(rc);
    }
    for (int i = 0; i < STORM_JOBS; i++) {
        CHECK_OK(blz_join_wait(joins[i], NULL));
    }
    return NULL;
}

BLZ_TEST(many_spawners_every_job_runs_once_within_the_limit)
{
    blz_test_counting_allocator_install();
    for (int round = 0; round < 5; round++) {
        static storm s;
        s.rt = limited_runtime(4, 2, STORM_LIMIT);
        atomic_store(&s.most_waiting, 0);
        for (int i = 0; i < STORM_FIBERS * STORM_JOBS; i++) {
            atomic_store(&s.runs[i], 0);
            storm_jobs[i] = (storm_job){&s, i};
        }
        blz_join *fibers[STORM_FIBERS];
        for (int f = 0; f < STORM_FIBERS; f++) {
            CHECK_OK(blz_runtime_spawn(s.rt, storm_fiber, &storm_jobs[f * STORM_JOBS], &fibers[f]));
        }
        for (int f = 0; f < STORM_FIBERS; f++) {
            CHECK_OK(blz_join_wait(fibers[f], NULL));
        }
        for (int i = 0; i < STORM_FIBERS * STORM_JOBS; i++) {
            CHECK_EQ(atomic_load(&s.runs[i]), 1);
        }
        CHECK_LE(atomic_load(&s.most_waiting), STORM_LIMIT);
        blz_metrics m = metrics(s.rt);
        CHECK_EQ(m.blocking_spawns_waiting, 0);
        CHECK_EQ(m.blocking_queue_depth, 0);
        blz_runtime_free(s.rt);
    }
}

/* A pool thread that gave up after idling runs its stop hook and is gone:
 * a job queued meanwhile must start a thread of its own, even when the one
 * leaving was the last the limit allowed. The stop hook holds the leaving
 * thread in that window until the job is queued, so the window is never
 * missed. */
static job_gate leaving_gate;
static atomic_int leaving_stops;

static void
hold_leaving_thread(const blz_thread_info *info, void *arg)
{
    (void) arg;
    if (info->kind == BLZ_THREAD_BLOCKING && atomic_fetch_add(&leaving_stops, 1) == 0) {
        gated_job(&leaving_gate);
    }
}

BLZ_TEST(job_queued_while_the_last_idle_thread_leaves_runs)
{
    atomic_store(&ran_count, 0);
    atomic_store(&leaving_stops, 0);
    job_gate_init(&leaving_gate);
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 1;
    cfg.blocking_threads = 1;
    cfg.blocking_idle = blz_ms(1);
    cfg.on_thread_stop = hold_leaving_thread;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    blz_join *j;
    CHECK_OK(blz_runtime_try_spawn_blocking(rt, recording_job, (void *) 1, &j));
    CHECK_OK(blz_join_wait(j, NULL));
    job_gate_wait_entered(&leaving_gate); /* the thread idled out and is leaving */
    CHECK_OK(blz_runtime_try_spawn_blocking(rt, recording_job, (void *) 2, &j));
    job_gate_open(&leaving_gate);
    WAIT_UNTIL(atomic_load(&ran_count) == 2, nap());
    CHECK_OK(blz_join_wait(j, NULL));
    blz_runtime_free(rt);
    job_gate_fini(&leaving_gate);
    CHECK_EQ(atomic_load(&leaving_stops), 2); /* both threads ran the hook before free returned */
}

/*
 * The free ends a wait for room (-ESHUTDOWN), and must not free the runtime
 * before that spawn has returned: its waiter polls the pool once more when
 * woken. Here the waiting spawn is a fiber of another, one-worker runtime,
 * kept from running after its wake by a task that spins on that worker
 * until the free has returned (500 ms at most); freed memory faults
 * (guard_allocator_install).
 */
static atomic_bool spinner_running, pool_freed;
static int waiting_spawn_rc = 1;

static void *
spawn_into_full_pool(void *arg)
{
    waiting_spawn_rc = blz_runtime_spawn_blocking(arg, recording_job, NULL, NULL);
    return NULL;
}

static void *
spin_until_pool_freed(void *arg)
{
    (void) arg;
    atomic_store(&spinner_running, true);
    int64_t start = wall_ms();
    while (!atomic_load(&pool_freed) && wall_ms() - start < 500) {
    }
    return NULL;
}

static void *
free_pool_runtime(void *arg)
{
    blz_runtime_free(arg);
    atomic_store(&pool_freed, true);
    return NULL;
}

BLZ_TEST(runtime_free_waits_for_a_waiting_spawn_to_return)
{
    guard_allocator_install();
    held_pool hp;
    hold_pool(&hp, 1, 1, 1);
    blz_join_detach(hp.held);
    blz_join_detach(hp.queued[0]);
    blz_runtime *other = test_runtime(1, 64 * 1024);
    blz_join *waiting, *spinner;
    CHECK_OK(blz_runtime_spawn(other, spawn_into_full_pool, hp.rt, &waiting));
    WAIT_UNTIL(metrics(hp.rt).blocking_spawns_waiting == 1, nap());
    CHECK_OK(blz_runtime_spawn(other, spin_until_pool_freed, NULL, &spinner));
    CHECK(yield_until(&spinner_running, 5000));
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, free_pool_runtime, hp.rt), 0);
    /* The free has ended the wait (the fiber is woken, and cannot run yet)
     * and waits for the held job. */
    WAIT_UNTIL(metrics(hp.rt).blocking_spawns_waiting == 0, nap());
    job_gate_open(&hp.g);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_OK(blz_join_wait(spinner, NULL));
    CHECK_OK(blz_join_wait(waiting, NULL));
    CHECK_EQ(waiting_spawn_rc, -ESHUTDOWN);
    blz_runtime_free(other);
    job_gate_fini(&hp.g);
    blz_set_allocator(NULL, NULL, NULL);
}
