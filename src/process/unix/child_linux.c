/*
 * Children: reaping, the wait future (all tiers), kill, and the reaper task
 * that waits for children freed without a wait.
 *
 * Invariants:
 * - `refs` counts the owner's handle (inherited by the reaper task after
 *   blz_child_free) and every wait future from blz_child_wait_fut to its
 *   completion or drop: taken while the caller's handle is sure to be
 *   alive, so the owner may free the child before the future's first
 *   poll. (The reaper's own wait takes none: the reaper holds the owner's.)
 *   The last release closes the pidfd source (the only reference to it)
 *   and frees the child, so a pidfd is never closed under a waitid or a
 *   pidfd_send_signal of a holder.
 * - A wait closes the stdin pipe the child still holds (so that a child
 *   reading to end-of-file ends), but moves it to `stdin_kept` instead of
 *   forgetting it: a pointer borrowed with blz_child_pipe must stay valid
 *   until blz_child_free, which lets go of it. A pipe taken before is the
 *   caller's and is not touched.
 * - Reaping is one waitid(WEXITED | WNOHANG) under `lock`; the first that
 *   finds the child gone stores `result`/`status` and sets `reaped`
 *   (release). Every other waiter, concurrent or later, reads the stored
 *   result (acquire). So exactly one waitid reaps, whoever calls it.
 * - A PID is not recycled until blitzio reaps it, and reaping holds `lock`:
 *   kill(pid) under `lock` after checking `reaped` is as safe as
 *   pidfd_send_signal (used when there is a pidfd).
 * - Wait future, pidfd mode: try to reap; if still running, poll the pidfd's
 *   read readiness (which links the waiter unless an event already came),
 *   then try again once readable. A readiness that did not come with an exit
 *   is cleared against its tick, so a later exit is never lost.
 * - Wait future, PID mode: try to reap; if still running, sleep with a
 *   back-off from 1 ms doubling to 50 ms, and try again.
 * - The reaper is a stackless task holding the owner's reference and a wait
 *   future. If the runtime aborts it (runtime freed), its drop tries one last
 *   reap and lets go; a child still running then is no longer watched.
 */
#include "blitzio/task.h"
#include "core/alloc.h"
#include "core/coop.h"
#include "core/future.h"
#include "process/process.h"
#include "rt/current.h"

#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_send_signal
# define SYS_pidfd_send_signal 424
#endif
#ifndef P_PIDFD
# define P_PIDFD 3
#endif

#define F_HELD     0x1 /* holds a child reference */
#define F_DONE     0x2 /* finished */
#define F_SLEEPING 0x4 /* PID mode: sleep_ is armed */

#define BACKOFF_MIN (1 * BLZ_NS_PER_MS)
#define BACKOFF_MAX (50 * BLZ_NS_PER_MS)

blz_child *
blz__child_alloc(void)
{
    blz_child *c = blz__calloc(1, sizeof *c);
    if (c) {
        atomic_init(&c->refs, 1u);
        atomic_init(&c->lock.locked, 0u);
        atomic_init(&c->reaped, 0u);
        c->pid = -1;
    }
    return c;
}

void
blz__child_unref(blz_child *c)
{
    /* Acq_rel pairs with itself: every holder's use happens before the free. */
    if (blz__fetch_sub(&c->refs, 1u, ACQ_REL) != 1) {
        return;
    }
    for (int i = 0; i < 3; i++) {
        blz_pipe_close(c->pipes[i]);
    }
    if (c->pidsrc) {
        blz__io_source_close(c->pidsrc);
    }
    blz__free(c);
}

/* Fills `st` from a waitid result; returns blz_exit_status_code. */
static int
decode(const siginfo_t *si, blz_exit_status *st)
{
    memset(st, 0, sizeof *st);
    if (si->si_code == CLD_EXITED) {
        st->code = si->si_status & 0xff;
        return st->code;
    }
    st->code = -1;
    st->signal = si->si_status;
    st->core_dumped = si->si_code == CLD_DUMPED;
    return 128 + st->signal;
}

int
blz__child_try_reap(blz_child *c)
{
    /* Acquire pairs with the release store below: result and status are final. */
    if (blz__load(&c->reaped, ACQUIRE)) {
        return 1;
    }
    blz__spin_lock(&c->lock);
    if (blz__load(&c->reaped, RELAXED)) {
        blz__spin_unlock(&c->lock);
        return 1;
    }
    siginfo_t si;
    int r;
    for (;;) {
        memset(&si, 0, sizeof si);
        if (c->pidsrc) {
            r = waitid((idtype_t) P_PIDFD, (id_t) c->pidsrc->fd, &si, WEXITED | WNOHANG);
            if (r < 0 && errno == EINVAL) {
                /* Linux 5.3 has pidfd_open but not P_PIDFD; the PID is as
                 * safe (see the invariants). */
                r = waitid(P_PID, (id_t) c->pid, &si, WEXITED | WNOHANG);
            }
        } else {
            r = waitid(P_PID, (id_t) c->pid, &si, WEXITED | WNOHANG);
        }
        if (r == 0 || errno != EINTR) {
            break;
        }
    }
    int ret;
    if (r < 0) {
        /* ECHILD: reaped by someone else (waitpid(-1), SIGCHLD ignored). */
        c->result = -errno;
        ret = 1;
    } else if (si.si_pid == 0) {
        ret = 0; /* still running */
    } else {
        c->result = decode(&si, &c->status);
        ret = 1;
    }
    if (ret == 1) {
        blz__store(&c->reaped, 1u, RELEASE); /* pairs with the acquire load above */
    }
    blz__spin_unlock(&c->lock);
    return ret;
}

/* The stored result, copying the status to `st` when there is one. */
static int
reaped_result(const blz_child *c, blz_exit_status *st)
{
    if (st && c->result >= 0) {
        *st = c->status;
    }
    return c->result;
}

/* ---- the wait future ---------------------------------------------------------- */

static void
wait_fail(blz_child_wait_future *f, int err)
{
    memset(f, 0, sizeof *f);
    blz__future_ready(&f->base, err);
}

/* Releases what f holds and records `r`. */
static blz_poll
wait_finish(blz_child_wait_future *f, blz_child *c, int r)
{
    if (c->pidsrc) {
        blz__io_waiter_cancel(c->pidsrc, &f->waiter_);
    }
    if (f->flags_ & F_SLEEPING) {
        blz_future_drop(&f->sleep_.base);
    }
    if (r >= 0 && f->out_) {
        *f->out_ = c->status;
    }
    if (f->flags_ & F_HELD) {
        blz__child_unref(c);
    }
    f->flags_ = F_DONE;
    f->child_ = NULL;
    f->base.result = r;
    return BLZ_READY;
}

static blz_poll
wait_poll(blz_future *base, blz_context *cx)
{
    blz_child_wait_future *f = (blz_child_wait_future *) base;
    blz_child *c = f->child_;
    if (!c) {
        return BLZ_READY; /* finished earlier: result kept */
    }
    if (!blz__coop_proceed(cx)) {
        return BLZ_PENDING; /* budget spent: the task was woken to run again later */
    }
    for (;;) {
        if (blz__child_try_reap(c)) {
            return wait_finish(f, c, reaped_result(c, NULL));
        }
        if (c->pidsrc) {
            uint64_t r = blz__io_source_poll(c->pidsrc, &f->waiter_, BLZ__DIR_READ, cx);
            if (r == 0) {
                return BLZ_PENDING;
            }
            if (blz__child_try_reap(c)) {
                return wait_finish(f, c, reaped_result(c, NULL));
            }
            /* Readable without an exit to reap: forget that readiness (unless a
             * newer event came) and wait again. */
            blz__io_source_clear(c->pidsrc, BLZ__DIR_READ, r);
            continue;
        }
        if (!(f->flags_ & F_SLEEPING)) {
            blz_sleep_fut(&f->sleep_, f->backoff_);
            f->flags_ |= F_SLEEPING;
            f->backoff_ = f->backoff_ * 2 > BACKOFF_MAX ? BACKOFF_MAX : f->backoff_ * 2;
        }
        if (blz_future_poll(&f->sleep_.base, cx) == BLZ_PENDING) {
            return BLZ_PENDING;
        }
        f->flags_ &= ~F_SLEEPING;
    }
}

static void
wait_drop(blz_future *base)
{
    blz_child_wait_future *f = (blz_child_wait_future *) base;
    blz_child *c = f->child_;
    if (!c) {
        return;
    }
    if (c->pidsrc) {
        blz__io_waiter_cancel(c->pidsrc, &f->waiter_);
    }
    if (f->flags_ & F_SLEEPING) {
        blz_future_drop(&f->sleep_.base);
    }
    if (f->flags_ & F_HELD) {
        blz__child_unref(c);
    }
    f->flags_ = F_DONE;
    f->child_ = NULL;
    f->base.result = -ECANCELED;
}

static const blz_future_vtable wait_vt = {wait_poll, wait_drop};

/* Fills f without touching stdin or taking a reference (the reaper's wait,
 * which its task's reference covers). */
static void
wait_init(blz_child *c, blz_exit_status *st, blz_child_wait_future *f)
{
    memset(f, 0, sizeof *f);
    blz_future_init(&f->base, &wait_vt);
    blz__io_waiter_init(&f->waiter_);
    f->child_ = c;
    f->out_ = st;
    f->backoff_ = BACKOFF_MIN;
    f->flags_ = 0;
}

void
blz__child_close_stdin(blz_child *c)
{
    blz__spin_lock(&c->lock);
    blz_pipe *p = c->pipes[BLZ_STDIN];
    c->pipes[BLZ_STDIN] = NULL;
    if (p) {
        /* Pointers borrowed with blz_child_pipe stay valid until the child
         * is freed: keep the memory, close the descriptor. */
        blz__pipe_keep(p);
        c->stdin_kept = p;
    }
    blz__spin_unlock(&c->lock);
    blz_pipe_close(p);
}

void
blz_child_wait_fut(blz_child *c, blz_exit_status *st, blz_child_wait_future *f)
{
    if (!f) {
        return;
    }
    if (!c) {
        wait_fail(f, -EINVAL);
        return;
    }
    blz__child_close_stdin(c);
    wait_init(c, st, f);
    blz__fetch_add(&c->refs, 1u, RELAXED); /* the caller's reference keeps c alive here */
    f->flags_ = F_HELD;
}

int
blz_child_wait(blz_child *c, blz_exit_status *st)
{
    /* Refused before the fill, which closes stdin: a refused wait does nothing. */
    if (c && blz__await_refused()) {
        return -EDEADLK;
    }
    blz_child_wait_future f;
    blz_child_wait_fut(c, st, &f);
    return blz_await(&f.base);
}

int
blz_child_wait_until(blz_child *c, blz_instant deadline, blz_exit_status *st)
{
    if (c && blz__await_refused()) {
        return -EDEADLK; /* before the fill, as blz_child_wait */
    }
    blz_child_wait_future f;
    blz_child_wait_fut(c, st, &f);
    return blz_timeout_until(&f.base, deadline);
}

int
blz_child_try_wait(blz_child *c, blz_exit_status *st)
{
    if (!c) {
        return -EINVAL;
    }
    int r = blz__child_try_reap(c);
    if (r == 0) {
        return -EAGAIN;
    }
    return reaped_result(c, st);
}

/* ---- the rest of the handle ---------------------------------------------------------- */

int
blz_child_pid(const blz_child *c)
{
    return c ? c->pid : -EINVAL;
}

blz_pipe *
blz_child_pipe(blz_child *c, blz_stdio_stream which)
{
    if (!c || (unsigned) which > 2u) {
        return NULL;
    }
    blz__spin_lock(&c->lock);
    blz_pipe *p = c->pipes[which];
    blz__spin_unlock(&c->lock);
    return p;
}

blz_pipe *
blz_child_take_pipe(blz_child *c, blz_stdio_stream which)
{
    if (!c || (unsigned) which > 2u) {
        return NULL;
    }
    blz__spin_lock(&c->lock);
    blz_pipe *p = c->pipes[which];
    c->pipes[which] = NULL;
    blz__spin_unlock(&c->lock);
    return p;
}

int
blz_child_kill(blz_child *c, int signo)
{
    if (!c || signo < 0 || signo >= NSIG) {
        return -EINVAL;
    }
    if (blz__load(&c->reaped, ACQUIRE)) {
        return -ESRCH;
    }
    if (c->pidsrc) {
        long r = syscall(SYS_pidfd_send_signal, c->pidsrc->fd, signo, NULL, 0u);
        if (r == 0 || errno != ENOSYS) {
            return r < 0 ? -errno : 0;
        }
        /* pidfd_open without pidfd_send_signal cannot happen (5.1 < 5.3);
         * fall through to the PID, which is safe under the lock. */
    }
    int rc;
    blz__spin_lock(&c->lock);
    if (blz__load(&c->reaped, RELAXED)) {
        rc = -ESRCH;
    } else {
        rc = kill((pid_t) c->pid, signo) < 0 ? -errno : 0;
    }
    blz__spin_unlock(&c->lock);
    return rc;
}

/* ---- freeing: the reaper task --------------------------------------------------------- */

typedef struct reaper_future {
    blz_future base;
    blz_child_wait_future wait; /* the wait on the child */
    blz_child *child;           /* the owner's reference, inherited; NULL once released */
} reaper_future;

static blz_poll
reaper_poll(blz_future *base, blz_context *cx)
{
    reaper_future *r = (reaper_future *) base;
    if (blz_future_poll(&r->wait.base, cx) == BLZ_PENDING) {
        return BLZ_PENDING;
    }
    blz__child_unref(r->child);
    r->child = NULL;
    r->base.result = 0;
    return BLZ_READY;
}

static void
reaper_drop(blz_future *base)
{
    reaper_future *r = (reaper_future *) base;
    blz_future_drop(&r->wait.base);
    if (r->child) {
        (void) blz__child_try_reap(r->child); /* a last chance before the runtime goes */
        blz__child_unref(r->child);
        r->child = NULL;
    }
}

static const blz_future_vtable reaper_vt = {reaper_poll, reaper_drop};

void
blz_child_free(blz_child *c)
{
    if (!c) {
        return;
    }
    blz_pipe *pipes[3];
    blz__spin_lock(&c->lock);
    for (int i = 0; i < 3; i++) {
        pipes[i] = c->pipes[i];
        c->pipes[i] = NULL;
    }
    blz_pipe *kept = c->stdin_kept;
    c->stdin_kept = NULL;
    blz__spin_unlock(&c->lock);
    for (int i = 0; i < 3; i++) {
        blz_pipe_close(pipes[i]);
    }
    blz__pipe_release(kept); /* no borrowed pointer is valid any more */
    if (blz__child_try_reap(c)) {
        blz__child_unref(c);
        return;
    }
    if (c->kill_on_drop) {
        (void) blz_child_kill(c, SIGKILL);
        if (blz__child_try_reap(c)) {
            blz__child_unref(c);
            return;
        }
    }
    reaper_future r;
    memset(&r, 0, sizeof r);
    blz_future_init(&r.base, &reaper_vt);
    wait_init(c, NULL, &r.wait);
    r.child = c;
    /* The task cell gets a copy of r (never polled yet: nothing links to it). */
    if (blz_runtime_spawn_future(c->rt, &r.base, sizeof r, NULL) < 0) {
        /* The runtime is shutting down or out of memory: nobody is left to
         * wait. Let go; the child is reaped if it has exited by now. */
        (void) blz__child_try_reap(c);
        blz__child_unref(c);
    }
}
