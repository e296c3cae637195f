/*
 * The stall watchdog: reports a worker that has been inside one task's poll
 * for longer than cfg.stall_threshold. Such a task (a loop without a yield,
 * a blocking syscall, a long computation) holds up every task queued on that
 * worker, and from outside the runtime it only shows as latency.
 *
 * It costs the workers nothing new: every task run already counts in the
 * worker's `polls`, and a parked worker says so in `park_state`. The
 * watchdog thread wakes four times per threshold and, per worker, looks at
 * them: a worker inside blz__worker_run, not asleep, whose count of polls
 * (and of parks) has not moved since an instant at least the threshold ago,
 * is stuck in one poll.
 * One report per stall; the count moving (or the worker parking) ends it.
 * A worker the OS has not scheduled for that long looks the same, and for
 * the tasks queued on it is the same.
 *
 * Real time (blz_now, CLOCK_MONOTONIC), also under a paused runtime clock: a
 * stall is about the CPU, not about timers.
 *
 * Backtraces: with cfg.stall_signal set, the watchdog queues that signal
 * once per stall for the stalled thread, carrying the worker's probe; the
 * handler, on that thread and on the alternate stack every worker sets up
 * (blz__worker_run), unwinds the interrupted code into the probe and
 * answers; the watchdog waits for the answer up to STALL_ANSWER_WAIT (a
 * thread that never takes the signal, or takes it late, is reported
 * without frames). Nothing of this touches a worker that is not stalled.
 */
#ifndef _GNU_SOURCE
# define _GNU_SOURCE /* pthread_condattr_setclock, gettid via syscall */
#endif
#include "core/alloc.h"
#include "core/atomic.h"
#include "os/unix/sys.h"
#include "rt/runtime.h"

#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define STALL_FRAMES      48
#define STALL_SKIP        2                          /* the handler and the signal trampoline */
#define STALL_ANSWER_WAIT ((blz_duration) 250000000) /* 250 ms */
#define STALL_PROBE_MAGIC 0x57415443484d414eull      /* checked before the probe is used */

/* What a stalled worker's signal handler fills in for the watchdog. */
struct blz__stall_probe {
    _Atomic uint64_t magic;    /* published (release) after the probe is zeroed */
    _Atomic uint32_t asked;    /* bumped by the watchdog before each signal */
    _Atomic uint32_t answered; /* set to `asked` by the handler once frames are in */
    _Atomic int nframes;
    void *frames[STALL_FRAMES];
};

/* Async-signal context: touches only the probe (and errno, restored). */
static void
stall_signal_handler(int sig, siginfo_t *si, void *uc)
{
    (void) sig;
    (void) uc;
    /* Ours only: queued by this process, carrying a probe. */
    if (si->si_code != SI_QUEUE || si->si_pid != getpid()) {
        return;
    }
    blz__stall_probe *p = si->si_value.sival_ptr;
    /* Acquire pairs with the release that published the probe: the handler's
     * thread may have started before the probe existed. */
    if (!p || blz__load(&p->magic, ACQUIRE) != STALL_PROBE_MAGIC) {
        return;
    }
    int saved = errno;
    uint32_t asked = blz__load(&p->asked, ACQUIRE);
    blz__store(&p->nframes, backtrace(p->frames, STALL_FRAMES), RELAXED);
    blz__store(&p->answered, asked, RELEASE); /* the frames before the answer */
    errno = saved;
}

static bool
is_stall_handler(const struct sigaction *sa)
{
    return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == stall_signal_handler;
}

/* Held around every look-then-install of a disposition by blitzio: the
 * watchdog's below and the signal module's, so that neither installs its
 * handler between the other's look and install. */
static pthread_mutex_t disposition_lock = PTHREAD_MUTEX_INITIALIZER;

void
blz__disposition_lock(void)
{
    (void) pthread_mutex_lock(&disposition_lock);
}

void
blz__disposition_unlock(void)
{
    (void) pthread_mutex_unlock(&disposition_lock);
}

/* The install, under disposition_lock. */
static bool
stall_handler_install_locked(int sig)
{
    struct sigaction old;
    if (sigaction(sig, NULL, &old) != 0) {
        return false;
    }
    if (is_stall_handler(&old)) {
        return true;
    }
    if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL) {
        return false;
    }
    /* backtrace() loads the unwinder on its first call, which a handler must
     * not be the one to do. */
    void *warm[1];
    (void) backtrace(warm, 1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = stall_signal_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    return sigaction(sig, &sa, NULL) == 0;
}

/* Installs the handler for `sig` unless the program has one of its own (or
 * ignores it), a blitzio listener's included. A handler left behind after
 * the runtime is gone answers nothing but our own probes, which only a
 * watchdog sends. */
static bool
stall_handler_install(int sig)
{
    blz__disposition_lock();
    bool ok = stall_handler_install_locked(sig);
    blz__disposition_unlock();
    return ok;
}

bool
blz__stall_handler_installed(int signo)
{
    struct sigaction cur;
    return sigaction(signo, NULL, &cur) == 0 && is_stall_handler(&cur);
}

unsigned
blz__worker_backtrace(blz_runtime *rt, unsigned i, void **frames, unsigned max)
{
    blz__stall_probe *p = rt->watchdog.probes ? &rt->watchdog.probes[i] : NULL;
    int tid = blz__load(&rt->workers[i].tid, RELAXED);
    if (!p || tid <= 0) {
        return 0;
    }
    unsigned got = 0;
    pthread_mutex_lock(&rt->watchdog.probe_lock);
    uint32_t ask = blz__load(&p->asked, RELAXED) + 1;
    blz__store(&p->asked, ask, RELEASE);
    if (blz__sys_signal_thread(tid, rt->cfg.stall_signal, p) == 0) {
        blz_instant until = blz_now() + STALL_ANSWER_WAIT;
        while (blz__load(&p->answered, ACQUIRE) != ask && blz_now() < until) {
            struct timespec nap = {0, 200000};
            nanosleep(&nap, NULL);
        }
        int n = blz__load(&p->nframes, RELAXED);
        if (blz__load(&p->answered, ACQUIRE) == ask && n > STALL_SKIP && n <= STALL_FRAMES) {
            for (int k = STALL_SKIP; k < n && got < max; k++) {
                frames[got++] = p->frames[k];
            }
        }
    }
    pthread_mutex_unlock(&rt->watchdog.probe_lock);
    return got;
}

static void
report_stderr(const blz_stall_info *info, void *arg)
{
    (void) arg;
    (void) fprintf(
        stderr, "blitzio: worker %u (thread %d) has run one task for %llu ms without yielding%s\n",
        info->worker, info->tid, (unsigned long long) (info->stalled / 1000000u),
        info->nframes ? ", at:" : "");
    if (info->nframes) {
        (void) fflush(stderr);
        backtrace_symbols_fd(info->frames, (int) info->nframes, STDERR_FILENO);
    }
}

/* What the watchdog remembers of one worker between two looks. */
typedef struct worker_watch {
    uint64_t polls;    /* the count at `since` */
    uint64_t parks;    /* the worker's parks then */
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
    void *frames[STALL_FRAMES];
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
            /* A park in between (one the looks missed: the driver holder
             * wakes now and then to rescue stranded tasks) ends it too. */
            uint64_t parks = blz__load(&w->parks, RELAXED);
            if (!blz__worker_awake(w) || polls != s->polls || parks != s->parks) {
                s->polls = polls;
                s->parks = parks;
                s->since = now;
                s->reported = false;
                continue;
            }
            blz_duration stalled = (blz_duration) (now - s->since);
            if (!s->reported && stalled >= threshold) {
                s->reported = true;
                blz_stall_info info = {i, blz__load(&w->tid, RELAXED), stalled, frames, 0};
                pthread_mutex_unlock(&wd->lock); /* the hook may take its time */
                info.nframes = blz__worker_backtrace(rt, i, frames, STALL_FRAMES);
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
    wd->probes = NULL;
    if (rt->cfg.stall_signal && stall_handler_install(rt->cfg.stall_signal)) {
        wd->probes = blz__calloc(rt->nworkers, sizeof *wd->probes);
        for (unsigned i = 0; wd->probes && i < rt->nworkers; i++) {
            blz__store(&wd->probes[i].magic, STALL_PROBE_MAGIC, RELEASE);
        }
        if (wd->probes) {
            pthread_mutex_init(&wd->probe_lock, NULL); /* lives as long as the probes */
        }
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
        blz__watchdog_free(rt);
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
    /* The probes outlive the watchdog until the workers are joined: a signal
     * queued for a stall may still be taken by its worker. */
}

void
blz__watchdog_free(blz_runtime *rt)
{
    if (rt->watchdog.probes) {
        pthread_mutex_destroy(&rt->watchdog.probe_lock);
        blz__free(rt->watchdog.probes);
        rt->watchdog.probes = NULL;
    }
}
