/*
 * Signals, one thread at a time: argument errors, the three receive tiers,
 * and the disposition each signal has before, during and after listening.
 *
 * Deliveries here use raise() (a thread-directed signal): the handler runs on
 * the raising thread before raise returns, so the count is up by then and a
 * try_recv right after must see it. tests/signal_deliver.c covers
 * process-directed kill() landing on other threads.
 */
#include "blitzio/rt.h"
#include "blitzio/signal.h"
#include "blitzio/sync.h"
#include "blitzio/task.h"
#include "harness.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

/* Runs fn as a fiber on a fresh 2-worker runtime and frees the runtime. */
static void
run_on_runtime(blz_task_fn fn, void *arg)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 2;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    CHECK_OK(blz_runtime_block_on(rt, fn, arg, NULL));
    blz_runtime_free(rt);
}

/* The handler currently installed for signo. */
static void (*current_handler(int signo))(int)
{
    struct sigaction sa;
    CHECK_OK(sigaction(signo, NULL, &sa));
    return sa.sa_handler;
}

/* ---- errors ------------------------------------------------------------------ */

static void *
errors_main(void *arg)
{
    (void) arg;
    blz_signal_listener l;
    CHECK_EQ(blz_signal_listen(NULL, SIGUSR1), -EINVAL);
    const int bad[] = {0,       -1,      BLZ_SIGNAL_MAX, 1000,   SIGKILL,
                       SIGSTOP, SIGSEGV, SIGBUS,         SIGFPE, SIGILL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&l, 0x5a, sizeof l); /* garbage in, "not listening" out */
        CHECK_EQ(blz_signal_listen(&l, bad[i]), -EINVAL);
        CHECK_EQ(blz_signal_listener_signo(&l), 0);
        CHECK_EQ(blz_signal_try_recv(&l), -EINVAL);
        CHECK_EQ(blz_signal_recv(&l), -EINVAL);
        blz_signal_unlisten(&l); /* ignored */
    }
    /* Receiving on NULL, unlistening NULL. */
    CHECK_EQ(blz_signal_try_recv(NULL), -EINVAL);
    CHECK_EQ(blz_signal_recv(NULL), -EINVAL);
    blz_signal_recv_future f;
    blz_signal_recv_fut(NULL, &f);
    CHECK_EQ(blz_await(&f.base), -EINVAL);
    blz_signal_recv_fut(NULL, NULL); /* ignored */
    blz_signal_unlisten(NULL);
    CHECK_EQ(blz_signal_listener_signo(NULL), 0);
    /* Nothing was installed by the failures. */
    CHECK(current_handler(SIGUSR1) == SIG_DFL);
    return NULL;
}

BLZ_TEST(listen_errors)
{
    run_on_runtime(errors_main, NULL);
}

BLZ_TEST(listen_outside_runtime_is_esrch)
{
    blz_signal_listener l;
    CHECK_EQ(blz_signal_listen(&l, SIGUSR1), -ESRCH);
    CHECK_EQ(blz_signal_listener_signo(&l), 0);
    CHECK(current_handler(SIGUSR1) == SIG_DFL);
}

/* ---- the three tiers ------------------------------------------------------- */

static void *
tiers_main(void *arg)
{
    (void) arg;
    blz_signal_listener l;
    CHECK_OK(blz_signal_listen(&l, SIGUSR1));
    CHECK_EQ(blz_signal_listener_signo(&l), SIGUSR1);

    /* try: nothing yet, then one delivery, then nothing again. */
    CHECK_EQ(blz_signal_try_recv(&l), -EAGAIN);
    CHECK_OK(raise(SIGUSR1));
    CHECK_EQ(blz_signal_try_recv(&l), 1);
    CHECK_EQ(blz_signal_try_recv(&l), -EAGAIN);

    /* Two deliveries before a receive are reported together. */
    CHECK_OK(raise(SIGUSR1));
    CHECK_OK(raise(SIGUSR1));
    CHECK_EQ(blz_signal_try_recv(&l), 2);

    /* await: already delivered, so it returns at once. */
    CHECK_OK(raise(SIGUSR1));
    CHECK_EQ(blz_signal_recv(&l), 1);

    /* future: pending by hand, then ready after a delivery. */
    blz_signal_recv_future f;
    blz_signal_recv_fut(&l, &f);
    blz_context cx = {blz_waker_noop()};
    CHECK_EQ(blz_future_poll(&f.base, &cx), BLZ_PENDING);
    CHECK_EQ(blz_future_poll(&f.base, &cx), BLZ_PENDING); /* re-poll while linked */
    CHECK_OK(raise(SIGUSR1));
    CHECK_EQ(blz_future_poll(&f.base, &cx), BLZ_READY);
    CHECK_EQ(f.base.result, 1);
    blz_future_drop(&f.base); /* harmless after ready */

    /* A dropped pending future receives nothing: the delivery stays queued. */
    blz_signal_recv_fut(&l, &f);
    CHECK_EQ(blz_future_poll(&f.base, &cx), BLZ_PENDING);
    blz_future_drop(&f.base);
    CHECK_OK(raise(SIGUSR1));
    CHECK_EQ(blz_signal_try_recv(&l), 1);

    blz_signal_unlisten(&l);
    CHECK_EQ(blz_signal_listener_signo(&l), 0);
    CHECK_EQ(blz_signal_try_recv(&l), -EINVAL);
    blz_signal_unlisten(&l); /* a second unlisten is ignored */
    return NULL;
}

BLZ_TEST(recv_tiers)
{
    run_on_runtime(tiers_main, NULL);
}

/* A listener only reports deliveries made after it started listening. */
static void *
late_listener_main(void *arg)
{
    (void) arg;
    blz_signal_listener a, b;
    CHECK_OK(blz_signal_listen(&a, SIGUSR2));
    CHECK_OK(raise(SIGUSR2));
    CHECK_OK(blz_signal_listen(&b, SIGUSR2));
    CHECK_EQ(blz_signal_try_recv(&b), -EAGAIN);
    CHECK_EQ(blz_signal_try_recv(&a), 1);
    CHECK_OK(raise(SIGUSR2));
    CHECK_EQ(blz_signal_try_recv(&a), 1);
    CHECK_EQ(blz_signal_try_recv(&b), 1);
    blz_signal_unlisten(&a);
    blz_signal_unlisten(&b);
    return NULL;
}

BLZ_TEST(listeners_see_only_later_deliveries)
{
    run_on_runtime(late_listener_main, NULL);
}

/* A fiber waits in blz_signal_recv; another task raises the signal. */
typedef struct waiter_arg {
    blz_signal_listener l;
    blz_notify ready; /* the waiter is about to wait */
} waiter_arg;

static void *
waiter_fiber(void *arg)
{
    waiter_arg *w = arg;
    blz_notify_one(&w->ready);
    return (void *) (intptr_t) blz_signal_recv(&w->l);
}

static void *
recv_wakes_main(void *arg)
{
    (void) arg;
    waiter_arg w;
    blz_notify_init(&w.ready);
    CHECK_OK(blz_signal_listen(&w.l, SIGUSR1));
    for (int round = 0; round < 20; round++) {
        blz_join *j;
        CHECK_OK(blz_spawn(waiter_fiber, &w, &j));
        CHECK_OK(blz_notify_wait(&w.ready));
        CHECK_OK(raise(SIGUSR1)); /* counted now; the watcher wakes the waiter */
        void *res;
        CHECK_OK(blz_join_wait(j, &res));
        CHECK_EQ((intptr_t) res, 1);
    }
    blz_signal_unlisten(&w.l);
    return NULL;
}

BLZ_TEST(recv_wakes_waiting_fiber)
{
    run_on_runtime(recv_wakes_main, NULL);
}

/* ---- dispositions ---------------------------------------------------------- */

static void *
restore_default_main(void *arg)
{
    (void) arg;
    CHECK(current_handler(SIGUSR1) == SIG_DFL);
    blz_signal_listener a, b;
    CHECK_OK(blz_signal_listen(&a, SIGUSR1));
    void (*ours)(int) = current_handler(SIGUSR1);
    CHECK(ours != SIG_DFL && ours != SIG_IGN);
    CHECK_OK(blz_signal_listen(&b, SIGUSR1));
    CHECK(current_handler(SIGUSR1) == ours);
    blz_signal_unlisten(&a);
    CHECK(current_handler(SIGUSR1) == ours); /* b still listens */
    CHECK_OK(raise(SIGUSR1));
    CHECK_EQ(blz_signal_try_recv(&b), 1);
    blz_signal_unlisten(&b);
    CHECK(current_handler(SIGUSR1) == SIG_DFL);
    /* And again: a fresh cycle installs and restores the same way. */
    CHECK_OK(blz_signal_listen(&a, SIGUSR1));
    CHECK(current_handler(SIGUSR1) == ours);
    blz_signal_unlisten(&a);
    CHECK(current_handler(SIGUSR1) == SIG_DFL);
    return NULL;
}

BLZ_TEST(unlisten_restores_default)
{
    run_on_runtime(restore_default_main, NULL);
}

static atomic_int own_handler_calls;

static void
own_handler(int signo)
{
    (void) signo;
    atomic_fetch_add(&own_handler_calls, 1);
}

static void *
restore_previous_main(void *arg)
{
    (void) arg;
    blz_signal_listener l;
    CHECK_OK(blz_signal_listen(&l, SIGUSR2));
    CHECK(current_handler(SIGUSR2) != own_handler);
    CHECK_OK(raise(SIGUSR2));
    CHECK_EQ(atomic_load(&own_handler_calls), 0); /* no chaining while listened */
    CHECK_EQ(blz_signal_try_recv(&l), 1);
    blz_signal_unlisten(&l);
    CHECK(current_handler(SIGUSR2) == own_handler);
    struct sigaction sa;
    CHECK_OK(sigaction(SIGUSR2, NULL, &sa));
    CHECK(sa.sa_flags & SA_NODEFER); /* the flags came back too */
    CHECK_OK(raise(SIGUSR2));
    CHECK_EQ(atomic_load(&own_handler_calls), 1);

    /* SIG_IGN comes back as SIG_IGN. */
    CHECK(signal(SIGHUP, SIG_IGN) != SIG_ERR);
    CHECK_OK(blz_signal_listen(&l, SIGHUP));
    CHECK_OK(raise(SIGHUP));
    CHECK_EQ(blz_signal_try_recv(&l), 1);
    blz_signal_unlisten(&l);
    CHECK(current_handler(SIGHUP) == SIG_IGN);
    CHECK_OK(raise(SIGHUP)); /* ignored: we are still here */
    return NULL;
}

BLZ_TEST(unlisten_restores_previous_handler)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = own_handler;
    sa.sa_flags = SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    CHECK_OK(sigaction(SIGUSR2, &sa, NULL));
    run_on_runtime(restore_previous_main, NULL);
}

/* Each signal has its own disposition and its own count. */
static void *
independent_main(void *arg)
{
    (void) arg;
    blz_signal_listener u1, u2;
    CHECK_OK(blz_signal_listen(&u1, SIGUSR1));
    CHECK_OK(blz_signal_listen(&u2, SIGUSR2));
    CHECK_OK(raise(SIGUSR2));
    CHECK_EQ(blz_signal_try_recv(&u1), -EAGAIN);
    CHECK_EQ(blz_signal_try_recv(&u2), 1);
    blz_signal_unlisten(&u2);
    CHECK(current_handler(SIGUSR2) == SIG_DFL);
    CHECK(current_handler(SIGUSR1) != SIG_DFL);
    CHECK_OK(raise(SIGUSR1));
    CHECK_EQ(blz_signal_try_recv(&u1), 1);
    blz_signal_unlisten(&u1);
    CHECK(current_handler(SIGUSR1) == SIG_DFL);
    return NULL;
}

BLZ_TEST(signals_are_independent)
{
    run_on_runtime(independent_main, NULL);
}

/* Realtime signals are listened to like the others (and are queued, not coalesced). */
static void *
realtime_main(void *arg)
{
    (void) arg;
    int signo = SIGRTMIN + 1;
    blz_signal_listener l;
    CHECK_OK(blz_signal_listen(&l, signo));
    CHECK_OK(raise(signo));
    CHECK_OK(raise(signo));
    CHECK_OK(raise(signo));
    CHECK_EQ(blz_signal_recv(&l), 3);
    blz_signal_unlisten(&l);
    CHECK(current_handler(signo) == SIG_DFL);
    return NULL;
}

BLZ_TEST(realtime_signal)
{
    run_on_runtime(realtime_main, NULL);
}
