/*
 * Signals delivered to the process (kill(getpid())) from a foreign thread
 * that blocks the signal itself, so the kernel must land it on another
 * thread: every listener, in any task, worker or runtime, sees it.
 *
 * No sleeping: the sender waits for the listeners to be listening (a
 * barrier), and each round waits for every listener's acknowledgement.
 */
#include "blitzio/rt.h"
#include "blitzio/signal.h"
#include "blitzio/sync.h"
#include "blitzio/task.h"
#include "harness.h"
#include "poll_util.h"
#include "rt_util.h"
#include "signal_util.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SANITIZED BLZ_TEST_SANITIZED

/* Blocks (how = SIG_BLOCK) or unblocks `signo` on the calling thread. */
static void
mask_signal(int how, int signo)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo);
    CHECK_EQ(pthread_sigmask(how, &set, NULL), 0);
}

/* ---- a foreign thread that sends `count` signals while blocking them itself -- */

typedef struct sender {
    int signo;
    int count;
} sender;

static void *
sender_main(void *arg)
{
    sender *s = arg;
    mask_signal(SIG_BLOCK, s->signo);
    for (int i = 0; i < s->count; i++) {
        CHECK_OK(kill(getpid(), s->signo));
    }
    return NULL;
}

static void
send_from_foreign_thread(int signo, int count)
{
    sender s = {signo, count};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, sender_main, &s), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
}

/* ---- several listeners on SIGUSR1, rounds acknowledged one by one ----------- */

#define MAX_LISTENERS 16

typedef struct fleet {
    int signo;
    int rounds;
    blz_barrier listening; /* listeners + the sender */
    atomic_int acks;       /* receives completed in the current round */
    blz_notify acked;      /* notified when acks reaches the listener count */
    int nlisteners;
    atomic_int got[MAX_LISTENERS];
    blz_semaphore go[MAX_LISTENERS]; /* the sender lets listener i receive again */
} fleet;

typedef struct member {
    fleet *f;
    int index;
} member;

static void *
member_fiber(void *arg)
{
    member *m = arg;
    fleet *f = m->f;
    blz_signal_listener l;
    CHECK_OK(blz_signal_listen(&l, f->signo));
    CHECK_GE(blz_barrier_wait(&f->listening), 0);
    for (int r = 0; r < f->rounds; r++) {
        int n = blz_signal_recv(&l);
        CHECK_GE(n, 1);
        atomic_fetch_add(&f->got[m->index], n);
        if (atomic_fetch_add(&f->acks, 1) + 1 == f->nlisteners) {
            blz_notify_one(&f->acked);
        }
        if (r + 1 < f->rounds) {
            CHECK_OK(blz_semaphore_acquire(&f->go[m->index], 1));
        }
    }
    blz_signal_unlisten(&l);
    return NULL;
}

/* Spawns n listeners on rt, then runs the rounds from this (foreign) thread. */
static void
run_fleet(blz_runtime **rts, int nrt, int n, int signo, int rounds)
{
    fleet f;
    memset(&f, 0, sizeof f);
    f.signo = signo;
    f.rounds = rounds;
    f.nlisteners = n;
    CHECK_OK(blz_barrier_init(&f.listening, (uint32_t) n + 1));
    blz_notify_init(&f.acked);
    member ms[MAX_LISTENERS];
    blz_join *js[MAX_LISTENERS];
    for (int i = 0; i < n; i++) {
        CHECK_OK(blz_semaphore_init(&f.go[i], 0));
        ms[i].f = &f;
        ms[i].index = i;
        CHECK_OK(blz_runtime_spawn(rts[i % nrt], member_fiber, &ms[i], &js[i]));
    }
    CHECK_GE(blz_barrier_wait(&f.listening), 0); /* parks this thread */
    for (int r = 0; r < rounds; r++) {
        atomic_store(&f.acks, 0);
        send_from_foreign_thread(signo, 1);
        while (atomic_load(&f.acks) < n) {
            blz_notify_wait_future w;
            blz_notify_wait_fut(&f.acked, &w);
            if (atomic_load(&f.acks) >= n) {
                blz_future_drop(&w.base);
                break;
            }
            CHECK_OK(blz_await(&w.base));
        }
        for (int i = 0; i < n; i++) {
            /* Each round was acknowledged before the next was sent: no coalescing. */
            CHECK_EQ(atomic_load(&f.got[i]), r + 1);
            if (r + 1 < rounds) {
                blz_semaphore_release(&f.go[i], 1);
            }
        }
    }
    for (int i = 0; i < n; i++) {
        CHECK_OK(blz_join_wait(js[i], NULL));
    }
}

BLZ_TEST(every_listener_sees_kill_from_foreign_thread)
{
    sig_route route;
    sig_route_begin(&route, (const int[]){SIGUSR1, 0});
    blz_runtime *rt = test_runtime(2, 0);
    /* The main thread blocks it too (after the workers were created, so they
     * do not inherit it): the signal must land on a runtime thread. */
    mask_signal(SIG_BLOCK, SIGUSR1);
    run_fleet(&rt, 1, 8, SIGUSR1, 3);
    blz_runtime_free(rt);
    mask_signal(SIG_UNBLOCK, SIGUSR1);
    struct sigaction sa;
    CHECK_OK(sigaction(SIGUSR1, NULL, &sa));
    CHECK(sa.sa_handler == SIG_DFL);
    sig_route_end(&route);
}

BLZ_TEST(listeners_on_two_runtimes)
{
    sig_route route;
    sig_route_begin(&route, (const int[]){SIGUSR2, 0});
    blz_runtime *rts[2] = {test_runtime(2, 0), test_runtime(1, 0)};
    run_fleet(rts, 2, 6, SIGUSR2, 3);
    blz_runtime_free(rts[0]);
    blz_runtime_free(rts[1]);
    sig_route_end(&route);
}

BLZ_TEST(many_rounds)
{
    sig_route route;
    sig_route_begin(&route, (const int[]){SIGUSR1, 0});
    blz_runtime *rt = test_runtime(2, 0);
    run_fleet(&rt, 1, 4, SIGUSR1, SANITIZED ? 50 : 300);
    blz_runtime_free(rt);
    sig_route_end(&route);
}

/* ---- coalescing ------------------------------------------------------------ */

typedef struct coalesce {
    blz_signal_listener l[2];
    blz_barrier listening; /* two listeners + the main thread */
    int got[2];
} coalesce;

typedef struct coalesce_member {
    coalesce *c;
    int i;
} coalesce_member;

static void *
coalesce_fiber(void *arg)
{
    coalesce_member *m = arg;
    coalesce *c = m->c;
    CHECK_OK(blz_signal_listen(&c->l[m->i], SIGUSR1));
    CHECK_GE(blz_barrier_wait(&c->listening), 0);
    c->got[m->i] = blz_signal_recv(&c->l[m->i]);
    blz_signal_unlisten(&c->l[m->i]);
    return NULL;
}

static void *
unblocker_main(void *arg)
{
    (void) arg;
    /* The pending signal is delivered to this thread as it unblocks it. */
    mask_signal(SIG_UNBLOCK, SIGUSR1);
    return NULL;
}

BLZ_TEST(pending_deliveries_coalesce)
{
    /* Blocked before the runtime exists, so every worker inherits the block:
     * three kills leave one pending SIGUSR1 in the process. */
    mask_signal(SIG_BLOCK, SIGUSR1);
    blz_runtime *rt = test_runtime(2, 0);
    coalesce c;
    memset(&c, 0, sizeof c);
    CHECK_OK(blz_barrier_init(&c.listening, 3));
    coalesce_member ms[2] = {{&c, 0}, {&c, 1}};
    blz_join *js[2];
    for (int i = 0; i < 2; i++) {
        CHECK_OK(blz_runtime_spawn(rt, coalesce_fiber, &ms[i], &js[i]));
    }
    CHECK_GE(blz_barrier_wait(&c.listening), 0);
    for (int i = 0; i < 3; i++) {
        CHECK_OK(kill(getpid(), SIGUSR1));
    }
    sigset_t pending;
    CHECK_OK(sigpending(&pending));
    CHECK(sigismember(&pending, SIGUSR1));
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, unblocker_main, NULL), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    for (int i = 0; i < 2; i++) {
        CHECK_OK(blz_join_wait(js[i], NULL));
        CHECK_EQ(c.got[i], 1); /* three kills, one delivery */
    }
    blz_runtime_free(rt);
    mask_signal(SIG_UNBLOCK, SIGUSR1);
}

/* ---- a listener received on a thread outside the runtime -------------------- */

static void *
listen_task(void *arg)
{
    return (void *) (intptr_t) blz_signal_listen(arg, SIGUSR2);
}

static void *
unlisten_task(void *arg)
{
    blz_signal_unlisten(arg);
    return NULL;
}

typedef struct kick {
    blz_notify *waiting;
    int signo;
} kick;

static void *
kicker_main(void *arg)
{
    kick *k = arg;
    mask_signal(SIG_BLOCK, k->signo);
    /* A notify_one before the wait leaves a permit: no wake-up is lost. */
    CHECK_OK(blz_notify_wait(k->waiting));
    CHECK_OK(kill(getpid(), k->signo));
    return NULL;
}

BLZ_TEST(recv_on_foreign_thread)
{
    sig_route route;
    sig_route_begin(&route, (const int[]){SIGUSR2, 0});
    blz_runtime *rt = test_runtime(2, 0);
    blz_signal_listener l;
    void *rc;
    CHECK_OK(blz_runtime_block_on(rt, listen_task, &l, &rc));
    CHECK_EQ((intptr_t) rc, 0);
    blz_notify waiting;
    blz_notify_init(&waiting);
    kick k = {&waiting, SIGUSR2};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, kicker_main, &k), 0);
    mask_signal(SIG_BLOCK, SIGUSR2); /* not on this thread either */
    blz_signal_recv_future f;
    blz_signal_recv_fut(&l, &f);
    blz_notify_one(&waiting);
    CHECK_EQ(blz_await(&f.base), 1); /* parks this thread until a worker's watcher wakes it */
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_OK(blz_runtime_block_on(rt, unlisten_task, &l, NULL));
    blz_runtime_free(rt);
    mask_signal(SIG_UNBLOCK, SIGUSR2);
    sig_route_end(&route);
}

/* ---- one runtime goes, the other keeps receiving -------------------------- */

BLZ_TEST(free_one_runtime_other_keeps_watching)
{
    sig_route route;
    sig_route_begin(&route, (const int[]){SIGUSR2, 0});
    blz_runtime *a = test_runtime(1, 0), *b = test_runtime(1, 0);
    blz_signal_listener la, lb;
    void *rc;
    CHECK_OK(blz_runtime_block_on(a, listen_task, &la, &rc));
    CHECK_EQ((intptr_t) rc, 0);
    CHECK_OK(blz_runtime_block_on(b, listen_task, &lb, &rc));
    CHECK_EQ((intptr_t) rc, 0);
    CHECK_OK(blz_runtime_block_on(a, unlisten_task, &la, NULL));
    blz_runtime_free(a);
    /* Only b's watcher is left; it must carry the delivery. */
    mask_signal(SIG_BLOCK, SIGUSR2);
    blz_signal_recv_future f;
    blz_signal_recv_fut(&lb, &f);
    send_from_foreign_thread(SIGUSR2, 1);
    CHECK_EQ(blz_await(&f.base), 1);
    CHECK_OK(blz_runtime_block_on(b, unlisten_task, &lb, NULL));
    blz_runtime_free(b);
    mask_signal(SIG_UNBLOCK, SIGUSR2);
    sig_route_end(&route);
}

/* A runtime freed while a listener of it still listens: the runtime survives
 * the misuse, and a later unlisten still restores the disposition. */
BLZ_TEST(runtime_freed_before_unlisten)
{
    blz_runtime *a = test_runtime(1, 0);
    blz_signal_listener l;
    void *rc;
    CHECK_OK(blz_runtime_block_on(a, listen_task, &l, &rc));
    CHECK_EQ((intptr_t) rc, 0);
    blz_runtime_free(a);
    CHECK_OK(raise(SIGUSR2));
    CHECK_EQ(blz_signal_try_recv(&l), 1); /* the count still works */
    blz_signal_unlisten(&l);
    struct sigaction sa;
    CHECK_OK(sigaction(SIGUSR2, NULL, &sa));
    CHECK(sa.sa_handler == SIG_DFL);
}

/* ---- SIGCHLD ---------------------------------------------------------------- */

static void *
sigchld_main(void *arg)
{
    (void) arg;
    blz_signal_listener l;
    CHECK_OK(blz_signal_listen(&l, SIGCHLD));
    for (int i = 0; i < 3; i++) {
        pid_t pid = fork();
        CHECK_GE(pid, 0);
        if (pid == 0) {
            _exit(7);
        }
        CHECK_GE(blz_signal_recv(&l), 1);
        int status = 0;
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);
    }
    blz_signal_unlisten(&l);
    return NULL;
}

BLZ_TEST(sigchld)
{
    sig_route route;
    sig_route_begin(&route, (const int[]){SIGCHLD, 0});
    blz_runtime *rt = test_runtime(2, 0);
    CHECK_OK(blz_runtime_block_on(rt, sigchld_main, NULL, NULL));
    blz_runtime_free(rt);
    struct sigaction sa;
    CHECK_OK(sigaction(SIGCHLD, NULL, &sa));
    CHECK(sa.sa_handler == SIG_DFL);
    sig_route_end(&route);
}
