/*
 * The process-wide signal handler and its self-pipe.
 *
 * Invariants:
 * - The handler touches only async-signal-safe things: its slot's atomic
 *   counter, two process-wide atomics (`wfd`, `inflight`) and write(2). It
 *   saves and restores errno, never allocates and never locks, so it may
 *   interrupt any code on any thread, blitzio's own included.
 * - The handler bumps the counter before it writes the byte, both seq_cst,
 *   and the pipe orders the write before the read that returns the byte: a
 *   drainer that consumed a byte sees every count raised before it. A full
 *   pipe drops the byte harmlessly: the drainer reads counters, not bytes.
 * - Teardown against a late handler. A handler may still run a moment after
 *   the last disposition was restored (the signal was delivered just before).
 *   The handler raises `inflight` before it loads `wfd`; teardown stores -1 in
 *   `wfd` before it loads `inflight`, all seq_cst (the Dekker pattern): either
 *   teardown sees the handler in flight and waits for it, or the handler sees
 *   -1 and writes nothing. A byte never lands in a descriptor number that was
 *   closed and reused meanwhile.
 * - Everything but the handler runs under sig_mutex: the pipe is created
 *   by the first listener of any signal and closed after the last one left.
 *   The look at the stall watchdog's handler and the install are one step
 *   under blz__disposition_lock (rt/current.h), taken inside sig_mutex.
 * - No chaining: while blitzio's handler is installed, an earlier handler of
 *   the program is not called; it is put back by blz__sig_restore.
 */
#include "rt/current.h"
#include "signal/signal_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
# define BLZ_SIG_TSAN 1
#elif defined(__has_feature)
# if __has_feature(thread_sanitizer)
#  define BLZ_SIG_TSAN 1
# endif
#endif
#ifndef BLZ_SIG_TSAN
# define BLZ_SIG_TSAN 0
#endif

blz__sig_slot blz__sig_slots[BLZ_SIGNAL_MAX];

/* Serialises listen/unlisten: slot listeners and prev, the pipe, the watch table. */
static pthread_mutex_t sig_mutex = PTHREAD_MUTEX_INITIALIZER;

/* The write end of the self-pipe, or -1. Read by the handler (seq_cst). */
static _Atomic int wfd = -1;
/* The read end, or -1. Under sig_mutex (watchers use their own duplicates). */
static int rfd = -1;
/* Handlers between their first and last access of `wfd` (see the Dekker note). */
static _Atomic unsigned inflight;

void
blz__sig_lock(void)
{
    (void) pthread_mutex_lock(&sig_mutex);
}

void
blz__sig_unlock(void)
{
    (void) pthread_mutex_unlock(&sig_mutex);
}

/* The handler. Async-signal-safe: atomics and write(2) only. */
static void
on_signal(int signo)
{
    int saved = errno;
    /* Seq_cst: the Dekker pair with blz__sig_pipe_release (store wfd, load inflight). */
    blz__fetch_add(&inflight, 1u, SEQ_CST);
    if (signo > 0 && signo < BLZ_SIGNAL_MAX) {
        /* Seq_cst: ordered before the pipe byte; pairs with the drainer's
         * loads after its read (watch.c) and the receivers' loads. */
        blz__fetch_add(&blz__sig_slots[signo].count, 1u, SEQ_CST);
    }
    int fd = blz__load(&wfd, SEQ_CST);
    if (fd >= 0) {
        unsigned char b = (unsigned char) signo;
        ssize_t n = write(fd, &b, 1); /* EAGAIN (pipe full) is fine: see the invariants */
        (void) n;
    }
    /* Release: the teardown that sees 0 sees this handler's last use of fd. */
    blz__fetch_sub(&inflight, 1u, RELEASE);
    errno = saved;
}

int
blz__sig_pipe_acquire(void)
{
    if (rfd >= 0) {
        return 0;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
        return -errno;
    }
    rfd = fds[0];
    /* Seq_cst: the handler's load of wfd (any thread) may see it from now on. */
    blz__store(&wfd, fds[1], SEQ_CST);
    return 0;
}

void
blz__sig_pipe_release(void)
{
    if (rfd < 0) {
        return;
    }
    /* Seq_cst store then seq_cst load: the Dekker pair with on_signal. */
    int fd = blz__exchange(&wfd, -1, SEQ_CST);
    for (unsigned spins = 0; blz__load(&inflight, SEQ_CST) != 0; spins++) {
        if (spins < 64) {
            blz__cpu_relax();
        } else {
            sched_yield();
        }
    }
    (void) close(fd);
    (void) close(rfd);
    rfd = -1;
}

int
blz__sig_pipe_read_fd(void)
{
    return rfd;
}

int
blz__sig_install(int signo)
{
    blz__sig_slot *s = &blz__sig_slots[signo];
    blz__disposition_lock();
    if (blz__stall_handler_installed(signo)) {
        blz__disposition_unlock();
        return -EBUSY; /* a stall watchdog's: its probes would reach our listeners */
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    (void) sigemptyset(&sa.sa_mask);
    /* SA_RESTART: a system call the signal interrupts resumes (what the
     * program had without a handler). SA_ONSTACK: on a thread with an
     * alternate signal stack, spare a fiber's small stack the signal frame. */
    sa.sa_flags = SA_RESTART | SA_ONSTACK;
#if BLZ_SIG_TSAN
    /* ThreadSanitizer runs an asynchronous signal's handler only when the
     * thread next enters its runtime (an intercepted call or an atomic). A
     * worker asleep in a raw futex syscall would, with SA_RESTART, go back
     * to sleep without ever running the handler, and the delivery would sit
     * there until something else woke that worker. Without SA_RESTART the
     * futex returns EINTR, the worker's loop touches an atomic, and the
     * handler runs. Sanitizer builds only: callers there tolerate EINTR. */
    sa.sa_flags &= ~SA_RESTART;
#endif
    int rc = sigaction(signo, &sa, &s->prev) < 0 ? -errno : 0;
    blz__disposition_unlock();
    if (rc < 0) {
        return rc;
    }
    blz__store(&s->active, 1u, RELAXED);
    return 0;
}

void
blz__sig_restore(int signo)
{
    blz__sig_slot *s = &blz__sig_slots[signo];
    (void) sigaction(signo, &s->prev, NULL);
    blz__store(&s->active, 0u, RELAXED);
}
