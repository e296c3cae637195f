/*
 * Mutex: one CAS to lock, one CAS to unlock, FIFO hand-off under contention.
 *
 * state_ packs LOCKED (1) and WAITERS (2):
 *  - LOCKED is set by a CAS from a state without it (the try tier and the
 *    spin, from 0; a locker about to queue, under lock_, finding it free) and
 *    cleared only by its holder's CAS LOCKED -> 0, which fails while WAITERS
 *    is set. So LOCKED is always set while WAITERS is.
 *  - WAITERS is set iff the queue is not empty; it changes only under lock_
 *    (raised by the waiter that queues, cleared by whoever empties it).
 *  - queue_ and every linked waiter's state_ and waker_: under lock_.
 *
 * Freeing. The thread that takes a mutex may free it at once, while its
 * unlocker is still inside the unlock (POSIX allows it for
 * pthread_mutex_unlock). An unlock with nobody queued is one CAS, its only
 * touch. One that finds WAITERS keeps LOCKED and, under lock_, makes the
 * oldest waiter the owner (DONE): that waiter learns it only under lock_,
 * after the unlocker's spin_unlock, its last touch (the wake comes after,
 * through the waker moved out). If the queue emptied meanwhile (the waiters
 * were dropped), it lets go of lock_ and tries the CAS again, still holding
 * the mutex, so nobody may free it yet.
 *
 * No lost wake-up: a locker raises WAITERS under lock_ with a CAS on the
 * same word the unlock CASes, so either it finds the mutex free and takes
 * it (without queueing), or the unlock's CAS finds WAITERS and hands over.
 *
 * Fairness: the try tier and the spin CAS only from 0, so nobody barges past
 * a queued waiter, and hand-off gives the mutex to the oldest waiter without
 * releasing it in between.
 *
 * Waiter states: QUEUED -> DONE (made the owner; it owns the mutex even if it
 * never looks). A dropped DONE waiter unlocks, passing the mutex on.
 */
#include "blitzio/sync.h"
#include "sync/waitq.h"

enum {
    SPIN_ROUNDS = 6,     /* looks at a held, un-queued mutex before queueing */
    SPIN_PAUSE_MAX = 32, /* pauses between two looks, at most */
};

void
blz_mutex_init(blz_mutex *m)
{
    if (!m) {
        return;
    }
    atomic_init(&m->state_, 0);
    atomic_init(&m->lock_, 0);
    blz__waitlist_init(blz__queue(&m->queue_));
}

void
blz__mutex_unlock_slow(blz_mutex *m)
{
    for (;;) {
        blz_waker wake = BLZ_WAKER_NONE;
        blz__spin_lock(&m->lock_);
        blz__waitlist *q = blz__queue(&m->queue_);
        blz_waiter *w = blz__waitlist_front(q);
        if (w) {
            /* LOCKED stays: the mutex is w's now. It sees our critical section
             * through lock_ when it observes DONE. */
            blz__waitlist_remove(w);
            w->state_ = BLZ__W_DONE;
            if (blz__waitlist_empty(q)) {
                (void) blz__fetch_and(&m->state_, ~BLZ_MUTEX_WAITERS_, RELAXED);
            }
            wake = blz__waiter_take_waker(w);
        }
        blz__spin_unlock(&m->lock_);
        if (w) {
            blz_waker_wake(&wake);
            return;
        }
        BLZ_PERTURB_POINT();
        uint32_t expect = BLZ_MUTEX_LOCKED_;
        /* Nobody left: give it back as the fast path does (release pairs with
         * the next locker's acquire). Fails if a waiter queued meanwhile. */
        if (blz__cas(&m->state_, &expect, 0, RELEASE, RELAXED)) {
            return;
        }
    }
}

static bool
spin_lock(blz_mutex *m)
{
    unsigned pause = 1;
    for (unsigned round = 0; round < SPIN_ROUNDS; round++) {
        for (unsigned i = 0; i < pause; i++) {
            blz__cpu_relax();
        }
        if (pause < SPIN_PAUSE_MAX) {
            pause <<= 1;
        }
        uint32_t st = blz__load(&m->state_, RELAXED);
        if (st & BLZ_MUTEX_WAITERS_) {
            return false; /* a queue formed: join it, do not barge */
        }
        if (st == 0 && blz_mutex_try_lock(m) == 0) {
            return true;
        }
    }
    return false;
}

static blz_poll
lock_enqueue(blz_mutex_lock_future *f, blz_context *cx)
{
    blz_mutex *m = f->mutex_;
    blz_waiter *w = &f->waiter_;
    w->waker_ = blz_waker_clone(cx->waker); /* not linked yet: nobody else sees it */
    blz__spin_lock(&m->lock_);
    uint32_t cur = blz__load(&m->state_, RELAXED);
    for (;;) {
        BLZ_PERTURB_POINT();
        if (!(cur & BLZ_MUTEX_LOCKED_)) {
            /* Free, so nobody is queued: ours. Acquire pairs with the unlock's release. */
            if (blz__cas_weak(&m->state_, &cur, cur | BLZ_MUTEX_LOCKED_, ACQUIRE, RELAXED)) {
                blz__spin_unlock(&m->lock_);
                return blz__sync_finish(&f->base, w, 0);
            }
            continue;
        }
        /* Held: from now on its unlock's CAS fails and hands it over under lock_. */
        if ((cur & BLZ_MUTEX_WAITERS_) ||
            blz__cas_weak(&m->state_, &cur, cur | BLZ_MUTEX_WAITERS_, RELAXED, RELAXED)) {
            break;
        }
    }
    blz__waitlist_push_back(blz__queue(&m->queue_), w);
    w->state_ = BLZ__W_QUEUED;
    f->base.pt_ = BLZ__PHASE_LINKED;
    blz__spin_unlock(&m->lock_);
    return BLZ_PENDING;
}

static blz_poll
lock_poll(blz_future *base, blz_context *cx)
{
    blz_mutex_lock_future *f = (blz_mutex_lock_future *) base;
    blz_waiter *w = &f->waiter_;
    blz_mutex *m = f->mutex_;
    if (base->pt_ == BLZ__PHASE_FINISHED) {
        return BLZ_READY;
    }
    if (!m) {
        return blz__sync_ready(base, -EINVAL);
    }
    if (!blz__coop_proceed(cx)) {
        return BLZ_PENDING;
    }
    if (base->pt_ == BLZ__PHASE_FRESH) {
        if (blz_mutex_try_lock(m) == 0 || spin_lock(m)) {
            return blz__sync_ready(base, 0);
        }
        return lock_enqueue(f, cx);
    }
    if (blz__waiter_still_queued(&m->lock_, w, cx->waker)) {
        return BLZ_PENDING;
    }
    return blz__sync_finish(base, w, 0);
}

static void
lock_drop(blz_future *base)
{
    blz_mutex_lock_future *f = (blz_mutex_lock_future *) base;
    blz_waiter *w = &f->waiter_;
    if (base->pt_ != BLZ__PHASE_LINKED) {
        base->pt_ = BLZ__PHASE_FINISHED;
        return;
    }
    blz_mutex *m = f->mutex_;
    blz__spin_lock(&m->lock_);
    uintptr_t st = w->state_;
    if (st == BLZ__W_QUEUED) {
        blz__waitlist_remove(w);
        if (blz__waitlist_empty(blz__queue(&m->queue_))) {
            (void) blz__fetch_and(&m->state_, ~BLZ_MUTEX_WAITERS_, RELAXED);
        }
    }
    w->state_ = BLZ__W_IDLE;
    blz_waker mine = blz__waiter_take_waker(w);
    blz__spin_unlock(&m->lock_);
    blz_waker_drop(&mine);
    if (st == BLZ__W_DONE) {
        blz_mutex_unlock(m); /* handed to us, never observed: pass it on */
    }
    base->pt_ = BLZ__PHASE_FINISHED;
}

static const blz_future_vtable lock_vtable = {lock_poll, lock_drop};

void
blz_mutex_lock_fut(blz_mutex *m, blz_mutex_lock_future *f)
{
    if (!f) {
        return;
    }
    blz_future_init(&f->base, &lock_vtable);
    f->mutex_ = m;
}

int
blz_mutex_lock(blz_mutex *m)
{
    blz_mutex_lock_future f;
    blz_mutex_lock_fut(m, &f);
    return blz_await(&f.base);
}
