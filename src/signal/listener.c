/*
 * Signal listeners: listen, unlisten and the three receive tiers.
 *
 * Invariants:
 * - A listener is owned by one task at a time. Its `seen_` (the slot count
 *   it last reported) is read and written only by its owner: by try_recv and
 *   by the poll of its receive future, never by the dispatcher.
 * - A receive future links its waiter into the slot's list only under the
 *   slot lock, after re-reading the count there and finding it equal to the
 *   listener's `seen_`; it stores that value in the waiter's state_. So every
 *   linked waiter is due exactly when the count moved past its state_, which
 *   is what the dispatcher (watch.c) tests. Counts wrap; only (in)equality
 *   and differences are used.
 * - Receive future phases (base.pt_, owner only): FRESH (never linked),
 *   LINKED (may be linked: ask under the lock), DONE (ready or dropped).
 * - Listen and unlisten run under sig_mutex: the per-signal listener
 *   count decides when the handler is installed and restored, the total
 *   decides when the self-pipe exists, and the per-runtime count (watch.c)
 *   decides when a runtime's watcher runs.
 */
#include "core/coop.h"
#include "rt/current.h"
#include "signal/signal_int.h"

#include <limits.h>

enum { PH_FRESH = 0, PH_LINKED = 1, PH_DONE = 2 };

/* Listeners of all signals in the process (under sig_mutex). */
static unsigned total_listeners;

static bool
signal_allowed(int signo)
{
    if (signo <= 0 || signo >= BLZ_SIGNAL_MAX) {
        return false;
    }
    switch (signo) {
    case SIGKILL:
    case SIGSTOP:
    /* Synchronous faults: returning from the handler re-runs the faulting
     * instruction forever. */
    case SIGSEGV:
    case SIGBUS:
    case SIGFPE:
    case SIGILL:
        return false;
    default:
        return true;
    }
}

static bool
listening(const blz_signal_listener *l)
{
    return l && l->signo_ > 0 && l->signo_ < BLZ_SIGNAL_MAX;
}

/* Marks deliveries up to `cur` received; returns how many that was. */
static int
take(blz_signal_listener *l, unsigned cur)
{
    unsigned n = cur - l->seen_;
    l->seen_ = cur;
    return n > (unsigned) INT_MAX ? INT_MAX : (int) n;
}

int
blz_signal_listen(blz_signal_listener *l, int signo)
{
    if (!l) {
        return -EINVAL;
    }
    l->signo_ = 0;
    l->seen_ = 0;
    l->watch_ = 0;
    if (!signal_allowed(signo)) {
        return -EINVAL;
    }
    blz_runtime *rt = blz__rt_current();
    if (!rt) {
        return -ESRCH;
    }
    blz__sig_slot *s = &blz__sig_slots[signo];
    uint64_t id = 0;
    blz__sig_lock();
    int rc = blz__sig_pipe_acquire();
    if (rc < 0) {
        goto out;
    }
    if (s->listeners == 0) {
        rc = blz__sig_install(signo);
        if (rc < 0) {
            goto undo_pipe;
        }
    }
    rc = blz__sig_watch_acquire(rt, &id);
    if (rc < 0) {
        if (s->listeners == 0) {
            blz__sig_restore(signo);
        }
        goto undo_pipe;
    }
    s->listeners++;
    total_listeners++;
    l->signo_ = signo;
    l->watch_ = id;
    /* Acquire: deliveries counted so far are history for this listener. */
    l->seen_ = blz__load(&s->count, ACQUIRE);
    blz__sig_unlock();
    return 0;

undo_pipe:
    if (total_listeners == 0) {
        blz__sig_pipe_release();
    }
out:
    blz__sig_unlock();
    return rc;
}

void
blz_signal_unlisten(blz_signal_listener *l)
{
    if (!listening(l)) {
        return;
    }
    int signo = l->signo_;
    blz__sig_slot *s = &blz__sig_slots[signo];
    blz__sig_lock();
    if (s->listeners > 0) { /* defensive: a second copy's unlisten is undefined (signal.h) */
        blz__sig_watch_release(l->watch_);
        if (--s->listeners == 0) {
            blz__sig_restore(signo);
        }
        if (--total_listeners == 0) {
            blz__sig_pipe_release();
        }
    }
    blz__sig_unlock();
    l->signo_ = 0;
    l->watch_ = 0;
}

int
blz_signal_listener_signo(const blz_signal_listener *l)
{
    return listening(l) ? l->signo_ : 0;
}

int
blz_signal_try_recv(blz_signal_listener *l)
{
    if (!listening(l)) {
        return -EINVAL;
    }
    /* Acquire pairs with the handler's seq_cst increment. */
    unsigned cur = blz__load(&blz__sig_slots[l->signo_].count, ACQUIRE);
    if (cur == l->seen_) {
        return -EAGAIN;
    }
    return take(l, cur);
}

/* ---- the receive future ---------------------------------------------------- */

static blz_poll
recv_finish(blz_signal_recv_future *f, int result)
{
    blz_waker_drop(&f->waiter_.waker_);
    f->waiter_.state_ = 0;
    f->base.pt_ = PH_DONE;
    f->base.result = result;
    return BLZ_READY;
}

static blz_poll
recv_poll(blz_future *base, blz_context *cx)
{
    blz_signal_recv_future *f = (blz_signal_recv_future *) base;
    blz_signal_listener *l = f->listener_;
    if (base->pt_ == PH_DONE) {
        return BLZ_READY;
    }
    if (!listening(l)) {
        return recv_finish(f, -EINVAL);
    }
    if (!blz__coop_proceed(cx)) {
        return BLZ_PENDING;
    }
    blz__sig_slot *s = &blz__sig_slots[l->signo_];
    blz_waiter *w = &f->waiter_;
    if (base->pt_ == PH_FRESH) {
        /* Acquire pairs with the handler's seq_cst increment. */
        unsigned cur = blz__load(&s->count, ACQUIRE);
        if (cur != l->seen_) {
            return recv_finish(f, take(l, cur));
        }
    }
    blz_waker old = BLZ_WAKER_NONE;
    blz__spin_lock(&s->lock);
    unsigned cur = blz__load(&s->count, ACQUIRE);
    if (cur != l->seen_) {
        if (blz__waiter_linked(w)) {
            blz__waitlist_remove(w);
        }
        blz__spin_unlock(&s->lock);
        return recv_finish(f, take(l, cur));
    }
    if (!blz__waiter_linked(w)) {
        w->state_ = l->seen_;
        blz__waitlist_push_back(&s->waiters, w);
    }
    if (!blz_waker_will_wake(&w->waker_, cx->waker)) {
        old = w->waker_;
        w->waker_ = blz_waker_clone(cx->waker);
    }
    blz__spin_unlock(&s->lock);
    blz_waker_drop(&old);
    base->pt_ = PH_LINKED;
    return BLZ_PENDING;
}

static void
recv_drop(blz_future *base)
{
    blz_signal_recv_future *f = (blz_signal_recv_future *) base;
    blz_waiter *w = &f->waiter_;
    blz_waker old = BLZ_WAKER_NONE;
    if (base->pt_ == PH_LINKED && listening(f->listener_)) {
        blz__sig_slot *s = &blz__sig_slots[f->listener_->signo_];
        blz__spin_lock(&s->lock);
        if (blz__waiter_linked(w)) {
            blz__waitlist_remove(w);
        }
        old = w->waker_;
        w->waker_ = BLZ_WAKER_NONE;
        blz__spin_unlock(&s->lock);
    } else {
        old = w->waker_;
        w->waker_ = BLZ_WAKER_NONE;
    }
    blz_waker_drop(&old);
    w->state_ = 0;
    base->pt_ = PH_DONE;
}

static const blz_future_vtable recv_vtable = {recv_poll, recv_drop};

void
blz_signal_recv_fut(blz_signal_listener *l, blz_signal_recv_future *f)
{
    if (!f) {
        return;
    }
    blz_future_init(&f->base, &recv_vtable);
    f->listener_ = l;
    f->waiter_.next_ = NULL;
    f->waiter_.prev_ = NULL;
    f->waiter_.waker_ = BLZ_WAKER_NONE;
    f->waiter_.state_ = 0;
}

int
blz_signal_recv(blz_signal_listener *l)
{
    blz_signal_recv_future f;
    blz_signal_recv_fut(l, &f);
    return blz_await(&f.base);
}
