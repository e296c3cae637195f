/*
 * The shutdown coordinator: trigger by call and by signal, the wait future,
 * work guards and wait_for_pending with a deadline (on virtual time, so the
 * deadline cases take no real time and never race the wall clock).
 */
#include "blitzio/rt.h"
#include "blitzio/shutdown.h"
#include "blitzio/signal.h"
#include "blitzio/sync.h"
#include "blitzio/task.h"
#include "blitzio/time.h"
#include "harness.h"
#include "rt_util.h"
#include "signal_util.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
run_on_runtime(blz_task_fn fn, void *arg, bool paused_clock)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 2;
    cfg.paused_clock = paused_clock;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    CHECK_OK(blz_runtime_block_on(rt, fn, arg, NULL));
    blz_runtime_free(rt);
}

static void (*current_handler(int signo))(int)
{
    struct sigaction sa;
    CHECK_OK(sigaction(signo, NULL, &sa));
    return sa.sa_handler;
}

/* ---- plain calls ---------------------------------------------------------------- */

BLZ_TEST(trigger_and_guards_without_runtime)
{
    blz_shutdown sd;
    CHECK_EQ(blz_shutdown_init(NULL), -EINVAL);
    CHECK_OK(blz_shutdown_init(&sd));
    CHECK(!blz_shutdown_is_triggered(&sd));
    CHECK_EQ(blz_shutdown_signal(&sd), 0);
    CHECK_EQ(blz_shutdown_pending(&sd), 0);

    CHECK_OK(blz_shutdown_guard_acquire(&sd));
    CHECK_OK(blz_shutdown_guard_acquire(&sd));
    CHECK_EQ(blz_shutdown_pending(&sd), 2);
    blz_shutdown_guard_release(&sd);
    CHECK_EQ(blz_shutdown_pending(&sd), 1);

    blz_shutdown_trigger(&sd);
    CHECK(blz_shutdown_is_triggered(&sd));
    CHECK_EQ(blz_shutdown_signal(&sd), 0);
    CHECK_EQ(blz_shutdown_guard_acquire(&sd), -ESHUTDOWN);
    CHECK_EQ(blz_shutdown_pending(&sd), 1);
    blz_shutdown_trigger(&sd); /* idempotent */
    blz_shutdown_guard_release(&sd);
    CHECK_EQ(blz_shutdown_pending(&sd), 0);
    blz_shutdown_guard_release(&sd); /* one too many: ignored */
    CHECK_EQ(blz_shutdown_pending(&sd), 0);

    /* Already triggered and drained: both waits return at once, even here. */
    CHECK_EQ(blz_shutdown_wait(&sd), 0);
    CHECK_EQ(blz_shutdown_wait_for_pending(&sd, 0), 0);
    CHECK_OK(blz_shutdown_deinit(&sd)); /* nothing arranged: no-op */

    /* NULL everywhere. */
    blz_shutdown_trigger(NULL);
    CHECK(!blz_shutdown_is_triggered(NULL));
    CHECK_EQ(blz_shutdown_signal(NULL), 0);
    CHECK_EQ(blz_shutdown_guard_acquire(NULL), -EINVAL);
    blz_shutdown_guard_release(NULL);
    CHECK_EQ(blz_shutdown_pending(NULL), 0);
    CHECK_EQ(blz_shutdown_wait(NULL), -EINVAL);
    CHECK_EQ(blz_shutdown_wait_for_pending(NULL, 0), -EINVAL);
    CHECK_EQ(blz_shutdown_deinit(NULL), -EINVAL);
    CHECK_EQ(blz_shutdown_on_signals(NULL, NULL, 0), -EINVAL);
    blz_shutdown_wait_fut(&sd, NULL);
    blz_shutdown_wait_for_pending_fut(&sd, 0, NULL);
}

BLZ_TEST(on_signals_outside_runtime_is_esrch)
{
    blz_shutdown sd;
    CHECK_OK(blz_shutdown_init(&sd));
    CHECK_EQ(blz_shutdown_on_signals(&sd, NULL, 0), -ESRCH);
    CHECK(current_handler(SIGINT) == SIG_DFL);
    CHECK(current_handler(SIGTERM) == SIG_DFL);
    CHECK_OK(blz_shutdown_deinit(&sd));
}

/* ---- the wait future ------------------------------------------------------------ */

typedef struct waiters {
    blz_shutdown sd;
    blz_barrier ready; /* waiters + the trigger */
} waiters;

static void *
wait_fiber(void *arg)
{
    waiters *w = arg;
    blz_shutdown_wait_future f;
    blz_shutdown_wait_fut(&w->sd, &f); /* filled before the barrier: cannot miss it */
    CHECK_GE(blz_barrier_wait(&w->ready), 0);
    return (void *) (intptr_t) blz_await(&f.base);
}

static void *
wait_main(void *arg)
{
    (void) arg;
    waiters w;
    CHECK_OK(blz_shutdown_init(&w.sd));
    enum { N = 8 };
    CHECK_OK(blz_barrier_init(&w.ready, N + 1));
    blz_join *js[N];
    for (int i = 0; i < N; i++) {
        CHECK_OK(blz_spawn(wait_fiber, &w, &js[i]));
    }
    CHECK_GE(blz_barrier_wait(&w.ready), 0);
    blz_shutdown_trigger(&w.sd);
    for (int i = 0; i < N; i++) {
        void *r;
        CHECK_OK(blz_join_wait(js[i], &r));
        CHECK_EQ((intptr_t) r, 0);
    }
    /* A wait future polled by hand, then dropped while pending. */
    blz_shutdown sd2;
    CHECK_OK(blz_shutdown_init(&sd2));
    blz_shutdown_wait_future f;
    blz_shutdown_wait_fut(&sd2, &f);
    blz_context cx = {blz_waker_noop()};
    CHECK_EQ(blz_future_poll(&f.base, &cx), BLZ_PENDING);
    blz_future_drop(&f.base);
    blz_shutdown_trigger(&sd2); /* nothing linked any more */
    blz_shutdown_wait_fut(&sd2, &f);
    CHECK_EQ(blz_future_poll(&f.base, &cx), BLZ_READY);
    CHECK_EQ(f.base.result, 0);
    return NULL;
}

BLZ_TEST(wait_wakes_every_waiter)
{
    run_on_runtime(wait_main, NULL, false);
}

/* ---- guards and wait_for_pending ------------------------------------------------- */

typedef struct worker_set {
    blz_shutdown sd;
    blz_semaphore finish; /* one permit lets one worker finish its work */
    atomic_int started;
    blz_notify all_started;
    int n;
} worker_set;

static void *
guarded_work(void *arg)
{
    worker_set *ws = arg;
    if (blz_shutdown_guard_acquire(&ws->sd) < 0) {
        return (void *) (intptr_t) -1;
    }
    if (atomic_fetch_add(&ws->started, 1) + 1 == ws->n) {
        blz_notify_one(&ws->all_started);
    }
    CHECK_OK(blz_semaphore_acquire(&ws->finish, 1));
    blz_shutdown_guard_release(&ws->sd);
    return NULL;
}

static void *
pending_main(void *arg)
{
    (void) arg;
    worker_set ws;
    memset(&ws, 0, sizeof ws);
    CHECK_OK(blz_shutdown_init(&ws.sd));
    CHECK_OK(blz_semaphore_init(&ws.finish, 0));
    blz_notify_init(&ws.all_started);
    ws.n = 5;
    blz_join *js[5];
    for (int i = 0; i < ws.n; i++) {
        CHECK_OK(blz_spawn(guarded_work, &ws, &js[i]));
    }
    CHECK_OK(blz_notify_wait(&ws.all_started));
    CHECK_EQ(blz_shutdown_pending(&ws.sd), 5);
    blz_shutdown_trigger(&ws.sd);
    CHECK_EQ(blz_shutdown_guard_acquire(&ws.sd), -ESHUTDOWN);

    /* Virtual time: the deadline passes as soon as every task is idle. */
    blz_instant t0 = blz_clock_now();
    CHECK_EQ(blz_shutdown_wait_for_pending(&ws.sd, blz_instant_add(t0, blz_secs(5))), 5);
    CHECK_GE(blz_clock_now(), blz_instant_add(t0, blz_secs(5)));

    /* Two finish; three remain at the next deadline. */
    blz_semaphore_release(&ws.finish, 2);
    CHECK_EQ(blz_shutdown_wait_for_pending(&ws.sd, blz_instant_add(blz_clock_now(), blz_secs(1))),
             3);

    /* The rest finish while we wait: it returns 0 before the deadline. */
    blz_instant t1 = blz_clock_now();
    blz_shutdown_pending_future pf;
    blz_shutdown_wait_for_pending_fut(&ws.sd, blz_instant_add(t1, blz_secs(60)), &pf);
    blz_context cx = {blz_waker_noop()};
    CHECK_EQ(blz_future_poll(&pf.base, &cx), BLZ_PENDING);
    blz_semaphore_release(&ws.finish, 3);
    CHECK_EQ(blz_await(&pf.base), 0);
    CHECK_LT(blz_clock_now(), blz_instant_add(t1, blz_secs(60)));
    for (int i = 0; i < ws.n; i++) {
        CHECK_OK(blz_join_wait(js[i], NULL));
    }
    CHECK_EQ(blz_shutdown_pending(&ws.sd), 0);

    /* A pending future dropped before completion unlinks its timer and waiter. */
    CHECK_OK(blz_shutdown_init(&ws.sd));
    CHECK_OK(blz_shutdown_guard_acquire(&ws.sd));
    blz_shutdown_wait_for_pending_fut(&ws.sd, blz_instant_add(blz_clock_now(), blz_secs(1)), &pf);
    CHECK_EQ(blz_future_poll(&pf.base, &cx), BLZ_PENDING);
    blz_future_drop(&pf.base);
    blz_shutdown_guard_release(&ws.sd);
    CHECK_EQ(blz_shutdown_wait_for_pending(&ws.sd, UINT64_MAX), 0);
    return NULL;
}

BLZ_TEST(wait_for_pending_with_deadline)
{
    run_on_runtime(pending_main, NULL, true);
}

/* Guards taken and released by many tasks while the trigger lands: once the
 * trigger is visible no acquire succeeds, and the drain always completes. */
typedef struct churn {
    blz_shutdown sd;
    atomic_int after_trigger; /* acquires that succeeded after seeing the trigger */
} churn;

static void *
churn_fiber(void *arg)
{
    churn *c = arg;
    for (;;) {
        bool seen = blz_shutdown_is_triggered(&c->sd);
        int rc = blz_shutdown_guard_acquire(&c->sd);
        if (rc == -ESHUTDOWN) {
            return NULL;
        }
        CHECK_OK(rc);
        if (seen) {
            atomic_fetch_add(&c->after_trigger, 1);
        }
        blz_yield();
        blz_shutdown_guard_release(&c->sd);
    }
}

static void *
churn_main(void *arg)
{
    (void) arg;
    churn c;
    CHECK_OK(blz_shutdown_init(&c.sd));
    atomic_init(&c.after_trigger, 0);
    enum { N = 16 };
    blz_join *js[N];
    for (int i = 0; i < N; i++) {
        CHECK_OK(blz_spawn(churn_fiber, &c, &js[i]));
    }
    for (int i = 0; i < 200; i++) {
        blz_yield();
    }
    blz_shutdown_trigger(&c.sd);
    CHECK_EQ(blz_shutdown_wait_for_pending(&c.sd, UINT64_MAX), 0);
    for (int i = 0; i < N; i++) {
        CHECK_OK(blz_join_wait(js[i], NULL));
    }
    CHECK_EQ(atomic_load(&c.after_trigger), 0);
    CHECK_EQ(blz_shutdown_pending(&c.sd), 0);
    return NULL;
}

BLZ_TEST(guards_race_the_trigger)
{
    run_on_runtime(churn_main, NULL, false);
}

/* ---- trigger by signal ------------------------------------------------------------ */

static void *
sigkill_sender(void *arg)
{
    int signo = *(int *) arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo);
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
    CHECK_OK(kill(getpid(), signo));
    return NULL;
}

static void *
on_signals_main(void *arg)
{
    (void) arg;
    blz_shutdown sd;
    CHECK_OK(blz_shutdown_init(&sd));
    int sigs[] = {SIGUSR1, SIGUSR2};
    CHECK_OK(blz_shutdown_on_signals(&sd, sigs, 2));
    CHECK(current_handler(SIGUSR1) != SIG_DFL);
    CHECK(current_handler(SIGUSR2) != SIG_DFL);
    CHECK_EQ(blz_shutdown_on_signals(&sd, sigs, 2), -EBUSY);
    CHECK(!blz_shutdown_is_triggered(&sd));

    /* kill() from a thread that blocks it: it lands on some other thread. */
    int signo = SIGUSR2;
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, sigkill_sender, &signo), 0);
    CHECK_EQ(blz_shutdown_wait(&sd), SIGUSR2);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK(blz_shutdown_is_triggered(&sd));
    CHECK_EQ(blz_shutdown_signal(&sd), SIGUSR2);
    CHECK_EQ(blz_shutdown_guard_acquire(&sd), -ESHUTDOWN);
    CHECK_OK(blz_shutdown_deinit(&sd));
    /* The task stopped listening: the defaults are back. */
    CHECK(current_handler(SIGUSR1) == SIG_DFL);
    CHECK(current_handler(SIGUSR2) == SIG_DFL);
    return NULL;
}

BLZ_TEST(trigger_by_signal)
{
    sig_route route;
    sig_route_begin(&route, (const int[]){SIGUSR1, SIGUSR2, 0});
    run_on_runtime(on_signals_main, NULL, false);
    sig_route_end(&route);
}

static void *
on_signals_call_main(void *arg)
{
    (void) arg;
    blz_shutdown sd;
    CHECK_OK(blz_shutdown_init(&sd));
    CHECK_OK(blz_shutdown_on_signals(&sd, NULL, 0)); /* SIGINT and SIGTERM */
    CHECK(current_handler(SIGINT) != SIG_DFL);
    CHECK(current_handler(SIGTERM) != SIG_DFL);
    blz_shutdown_trigger(&sd);
    CHECK_EQ(blz_shutdown_wait(&sd), 0);
    CHECK_EQ(blz_shutdown_signal(&sd), 0);
    CHECK_OK(blz_shutdown_deinit(&sd));
    CHECK(current_handler(SIGINT) == SIG_DFL);
    CHECK(current_handler(SIGTERM) == SIG_DFL);

    /* deinit without any trigger stops the task and restores as well. */
    CHECK_OK(blz_shutdown_init(&sd));
    int one = SIGHUP;
    CHECK_OK(blz_shutdown_on_signals(&sd, &one, 1));
    CHECK(current_handler(SIGHUP) != SIG_DFL);
    CHECK_OK(blz_shutdown_deinit(&sd));
    CHECK(current_handler(SIGHUP) == SIG_DFL);
    CHECK(!blz_shutdown_is_triggered(&sd));

    /* A refused signal arranges nothing, not even the valid ones before it. */
    CHECK_OK(blz_shutdown_init(&sd));
    int mixed[] = {SIGUSR1, SIGKILL};
    CHECK_EQ(blz_shutdown_on_signals(&sd, mixed, 2), -EINVAL);
    CHECK(current_handler(SIGUSR1) == SIG_DFL);
    int many[BLZ_SHUTDOWN_MAX_SIGNALS + 1] = {0};
    CHECK_EQ(blz_shutdown_on_signals(&sd, many, BLZ_SHUTDOWN_MAX_SIGNALS + 1), -EINVAL);
    CHECK_EQ(blz_shutdown_on_signals(&sd, NULL, 1), -EINVAL);
    CHECK_OK(blz_shutdown_deinit(&sd));
    return NULL;
}

BLZ_TEST(trigger_by_call_stops_listening)
{
    run_on_runtime(on_signals_call_main, NULL, false);
}

/* ---- deinit from clean-up code, and the cause that stays first ------------------- */

typedef struct aborted_ctx {
    blz_notify started; /* the fiber has arranged its signal */
    blz_notify never;   /* never notified: the fiber waits here until aborted */
    int deinit_rc;
    void (*after)(int); /* SIGUSR1's handler right after deinit returned */
} aborted_ctx;

static void *
deinit_after_abort(void *arg)
{
    aborted_ctx *c = arg;
    blz_shutdown *sd = malloc(sizeof *sd);
    CHECK(sd != NULL);
    CHECK_OK(blz_shutdown_init(sd));
    int one = SIGUSR1;
    CHECK_OK(blz_shutdown_on_signals(sd, &one, 1));
    blz_notify_one(&c->started);
    CHECK_EQ(blz_notify_wait(&c->never), -ECANCELED);
    c->deinit_rc = blz_shutdown_deinit(sd); /* the usual clean-up of an aborted server */
    c->after = current_handler(SIGUSR1);
    memset(sd, 0xa5, sizeof *sd); /* sd goes away: the signal task must be done with it */
    free(sd);
    return NULL;
}

/* A task aborted while it waits cleans up with deinit: deinit must still wait
 * for the signal task, or that task touches the freed coordinator (ASan) and
 * the handler is still installed when deinit returns. */
BLZ_TEST(deinit_waits_even_in_an_aborted_task)
{
    for (int round = 0; round < 50; round++) {
        blz_runtime *rt = test_runtime(1 + (unsigned) (round % 2), 0);
        aborted_ctx c;
        memset(&c, 0, sizeof c);
        blz_notify_init(&c.started);
        blz_notify_init(&c.never);
        blz_join *j;
        CHECK_OK(blz_runtime_spawn(rt, deinit_after_abort, &c, &j));
        CHECK_OK(blz_notify_wait(&c.started));
        blz_join_abort(j);
        (void) blz_join_wait(j, NULL);
        blz_runtime_free(rt);
        CHECK_EQ(c.deinit_rc, 0);
        CHECK(c.after == SIG_DFL);
    }
}

/* A stackless poll that calls deinit (which cannot wait there). */
typedef struct deinit_poll_future {
    blz_future base;
    blz_shutdown *sd;
} deinit_poll_future;

static blz_poll
deinit_poll(blz_future *base, blz_context *cx)
{
    (void) cx;
    deinit_poll_future *f = (deinit_poll_future *) base;
    base->result = blz_shutdown_deinit(f->sd);
    return BLZ_READY;
}

static const blz_future_vtable deinit_poll_vtable = {deinit_poll, NULL};

static void *
deinit_in_stackless_main(void *arg)
{
    (void) arg;
    blz_shutdown sd;
    CHECK_OK(blz_shutdown_init(&sd));
    int one = SIGUSR1;
    CHECK_OK(blz_shutdown_on_signals(&sd, &one, 1));
    deinit_poll_future f;
    blz_future_init(&f.base, &deinit_poll_vtable);
    f.sd = &sd;
    blz_join *j;
    CHECK_OK(blz_spawn_future(&f.base, sizeof f, &j));
    void *out = NULL;
    CHECK_OK(blz_join_wait(j, &out));
    CHECK_EQ((int) (intptr_t) out, -EDEADLK);
    /* Nothing was done: the signal still triggers the shutdown. Had the
     * task been aborted, the signal would be lost (the wait would never
     * end) or, once it stopped listening, end the process. */
    CHECK_OK(raise(SIGUSR1));
    CHECK_EQ(blz_shutdown_wait(&sd), SIGUSR1);
    CHECK_OK(blz_shutdown_deinit(&sd));
    CHECK(current_handler(SIGUSR1) == SIG_DFL);
    return NULL;
}

BLZ_TEST(deinit_in_a_stackless_poll_does_nothing)
{
    run_on_runtime(deinit_in_stackless_main, NULL, false);
}

static void *
call_then_signal_main(void *arg)
{
    (void) arg;
    blz_shutdown sd;
    CHECK_OK(blz_shutdown_init(&sd));
    int one = SIGUSR1;
    CHECK_OK(blz_shutdown_on_signals(&sd, &one, 1));
    blz_shutdown_trigger(&sd);
    CHECK_EQ(blz_shutdown_wait(&sd), 0); /* waiters are told: a call */
    /* The signal task has not seen the trigger yet (one worker, and this
     * fiber has not let it run): it still listens and counts this. */
    CHECK_OK(raise(SIGUSR1));
    while (current_handler(SIGUSR1) != SIG_DFL) {
        blz_yield(); /* the task runs, sees the delivery and the trigger, and stops */
    }
    CHECK_EQ(blz_shutdown_signal(&sd), 0); /* the first cause stays */
    CHECK_OK(blz_shutdown_deinit(&sd));
    return NULL;
}

BLZ_TEST(a_signal_after_the_call_does_not_change_the_cause)
{
    blz_runtime *rt = test_runtime(1, 0); /* one worker: the signal task waits for this fiber */
    CHECK_OK(blz_runtime_block_on(rt, call_then_signal_main, NULL, NULL));
    blz_runtime_free(rt);
}
