/*
 * Semaphore: the counting core the RwLock is built on.
 *
 * State. s->state_ = free permits << 2 | WAITERS | CLOSED.
 *  - WAITERS is set iff the queue is not empty. It changes only under
 *    s->lock_, so a lock holder can trust it; it makes the try tier refuse
 *    (nobody barges past a queued waiter).
 *  - Free permits change by CAS in the try tier, by fetch_add in release()
 *    (without the lock), and by the hand-out below (under the lock).
 *  - While WAITERS is set the free count is 0, except transiently: a release()
 *    that raced with the queue becoming non-empty added its permits and is on
 *    its way to the lock (it saw WAITERS in the fetch_add's old value, or the
 *    enqueuer's CAS did). The hand-out drains the count to 0 under the lock.
 *
 * Waiters. Each acquire future embeds its node; s->lock_ protects the queue,
 * every linked waiter's state_, assigned_ and waker_. Permits are handed over
 * by raising assigned_; a waiter whose assigned_ reaches want_ is unlinked and
 * marked DONE under the lock, its waker moved into a wake batch, and woken
 * after the unlock. The head may be partly assigned: it keeps what it got, and
 * the walk stops there, which is what stops a big request from starving.
 *
 * Conservation. Every permit is in exactly one place: the free count, some
 * waiter's assigned_, a completed future's owner, or a local `avail` of the
 * thread running the hand-out. A dropped waiter's assigned_ (or, if DONE and
 * unobserved, its whole want_) goes back through the hand-out, so it reaches
 * the next waiter or the free count; close() returns queued waiters' partial
 * assignments to the free count.
 */
#include "blitzio/sync.h"
#include "sync/waitq.h"

#define SEM_FLAGS (BLZ_SEM_CLOSED_ | BLZ_SEM_WAITERS_)

static inline blz_semaphore_acquire_future *
acq_of(blz_waiter *w)
{
    return blz__container_of(w, blz_semaphore_acquire_future, waiter_);
}

int
blz_semaphore_init(blz_semaphore *s, size_t permits)
{
    if (!s || permits > BLZ_SEMAPHORE_MAX_PERMITS) {
        return -EINVAL;
    }
    atomic_init(&s->state_, permits << BLZ_SEM_SHIFT_);
    atomic_init(&s->lock_, 0);
    blz__waitlist_init(blz__queue(&s->queue_));
    return 0;
}

/*
 * Under s->lock_: takes every free permit, adds `avail` (permits the caller
 * brings: a release, a dropped waiter's), and hands them to the waiters in
 * FIFO order. Completed waiters go into `wb`; a full batch is woken with the
 * lock briefly dropped. If the queue ends up empty, clears WAITERS and puts the
 * surplus back in the free count.
 */
static void
hand_out_locked(blz_semaphore *s, size_t avail, blz__wake_batch *wb)
{
    blz__waitlist *q = blz__queue(&s->queue_);
    size_t cur = blz__load(&s->state_, RELAXED);
    for (;;) {
        if (blz__waitlist_empty(q)) {
            /* Nobody to give to: surplus back to the pool, WAITERS off (pairs with
             * the acquire CAS of the try tier). */
            BLZ_PERTURB_POINT();
            if (blz__cas_weak(&s->state_, &cur,
                              (cur & ~BLZ_SEM_WAITERS_) + (avail << BLZ_SEM_SHIFT_), RELEASE,
                              RELAXED)) {
                return;
            }
            continue;
        }
        /* Drain the free count (acquire pairs with the releasers' fetch_add). */
        if ((cur >> BLZ_SEM_SHIFT_) != 0) {
            BLZ_PERTURB_POINT();
            if (!blz__cas_weak(&s->state_, &cur, cur & SEM_FLAGS, ACQUIRE, RELAXED)) {
                continue;
            }
            avail += cur >> BLZ_SEM_SHIFT_;
            cur &= SEM_FLAGS;
        }
        blz_waiter *w = blz__waitlist_front(q);
        blz_semaphore_acquire_future *f = acq_of(w);
        size_t need = f->want_ - f->assigned_;
        if (avail < need) {
            f->assigned_ += avail; /* the head keeps a partial grant and blocks the rest */
            return;
        }
        avail -= need;
        f->assigned_ = f->want_;
        blz__waitlist_remove(w);
        w->state_ = BLZ__W_DONE;
        if (blz__wake_batch_push(wb, w)) {
            blz__wake_batch_drain_if_full(wb, &s->lock_);
        }
        cur = blz__load(&s->state_, RELAXED);
    }
}

void
blz__semaphore_release_slow(blz_semaphore *s)
{
    blz__wake_batch wb;
    blz__wake_batch_init(&wb);
    blz__spin_lock(&s->lock_);
    hand_out_locked(s, 0, &wb);
    blz__spin_unlock(&s->lock_);
    blz__wake_batch_flush(&wb);
}

void
blz_semaphore_close(blz_semaphore *s)
{
    if (!s) {
        return;
    }
    blz__wake_batch wb;
    blz__wake_batch_init(&wb);
    blz__spin_lock(&s->lock_);
    /* Under the lock, so no enqueuer sees WAITERS clear and CLOSED unset. */
    (void) blz__fetch_or(&s->state_, BLZ_SEM_CLOSED_, RELEASE);
    blz__waitlist *q = blz__queue(&s->queue_);
    blz_waiter *w;
    while ((w = blz__waitlist_pop_front(q)) != NULL) {
        blz_semaphore_acquire_future *f = acq_of(w);
        size_t give_back = f->assigned_;
        f->assigned_ = 0;
        w->state_ = BLZ__W_CLOSED;
        if (give_back) {
            (void) blz__fetch_add(&s->state_, give_back << BLZ_SEM_SHIFT_, RELEASE);
        }
        if (blz__wake_batch_push(&wb, w)) {
            blz__wake_batch_drain_if_full(&wb, &s->lock_);
        }
    }
    (void) blz__fetch_and(&s->state_, ~BLZ_SEM_WAITERS_, RELEASE);
    blz__spin_unlock(&s->lock_);
    blz__wake_batch_flush(&wb);
}

/* First poll after the fast path failed: take what is free and queue, under the lock. */
static blz_poll
acquire_enqueue(blz_semaphore_acquire_future *f, blz_context *cx)
{
    blz_semaphore *s = f->sem_;
    blz_waiter *w = &f->waiter_;
    /* Not linked yet, so nobody else can see the waker: set it outside the lock. */
    w->waker_ = blz_waker_clone(cx->waker);
    blz__spin_lock(&s->lock_);
    size_t cur = blz__load(&s->state_, RELAXED);
    for (;;) {
        if (cur & BLZ_SEM_CLOSED_) {
            blz__spin_unlock(&s->lock_);
            return blz__sync_finish(&f->base, w, -EPIPE);
        }
        if (cur & BLZ_SEM_WAITERS_) {
            /* Others queued first: go to the back. Free permits, if any, belong to a
             * releaser on its way here, whose hand-out will reach us in turn. */
            f->assigned_ = 0;
            break;
        }
        size_t avail = cur >> BLZ_SEM_SHIFT_;
        BLZ_PERTURB_POINT();
        if (avail >= f->want_) {
            /* Acquire pairs with the release of whoever returned these permits. */
            if (blz__cas_weak(&s->state_, &cur, cur - (f->want_ << BLZ_SEM_SHIFT_), ACQUIRE,
                              RELAXED)) {
                blz__spin_unlock(&s->lock_);
                return blz__sync_finish(&f->base, w, 0);
            }
        } else if (blz__cas_weak(&s->state_, &cur, BLZ_SEM_WAITERS_, ACQUIRE, RELAXED)) {
            f->assigned_ = avail; /* first in line: keep what is free as a partial grant */
            break;
        }
    }
    blz__waitlist_push_back(blz__queue(&s->queue_), w);
    w->state_ = BLZ__W_QUEUED;
    f->base.pt_ = BLZ__PHASE_LINKED;
    blz__spin_unlock(&s->lock_);
    return BLZ_PENDING;
}

static blz_poll
acquire_poll(blz_future *base, blz_context *cx)
{
    blz_semaphore_acquire_future *f = (blz_semaphore_acquire_future *) base;
    blz_waiter *w = &f->waiter_;
    if (base->pt_ == BLZ__PHASE_FINISHED) {
        return BLZ_READY;
    }
    if (!f->sem_) {
        return blz__sync_ready(base, -EINVAL);
    }
    if (!blz__coop_proceed(cx)) {
        return BLZ_PENDING;
    }
    if (base->pt_ == BLZ__PHASE_FRESH) {
        int rc = blz_semaphore_try_acquire(f->sem_, f->want_);
        if (rc != -EAGAIN) {
            return blz__sync_ready(base, rc);
        }
        return acquire_enqueue(f, cx);
    }
    blz_semaphore *s = f->sem_;
    blz__spin_lock(&s->lock_);
    uintptr_t st = w->state_;
    if (st == BLZ__W_QUEUED) {
        blz_waker old = blz__waiter_swap_waker(w, cx->waker);
        blz__spin_unlock(&s->lock_);
        blz_waker_drop(&old);
        return BLZ_PENDING;
    }
    blz__spin_unlock(&s->lock_);
    /* DONE: the permits are ours. CLOSED: close() took back the partial grant. */
    f->assigned_ = 0;
    return blz__sync_finish(base, w, st == BLZ__W_DONE ? 0 : -EPIPE);
}

static void
acquire_drop(blz_future *base)
{
    blz_semaphore_acquire_future *f = (blz_semaphore_acquire_future *) base;
    blz_waiter *w = &f->waiter_;
    if (base->pt_ != BLZ__PHASE_LINKED) {
        base->pt_ = BLZ__PHASE_FINISHED;
        return; /* never linked, or already finished: holds nothing */
    }
    blz_semaphore *s = f->sem_;
    blz__wake_batch wb;
    blz__wake_batch_init(&wb);
    blz__spin_lock(&s->lock_);
    uintptr_t st = w->state_;
    size_t give = 0;
    if (st == BLZ__W_QUEUED) {
        blz__waitlist_remove(w);
        give = f->assigned_; /* a partial grant goes on to the next in line */
    } else if (st == BLZ__W_DONE) {
        give = f->want_; /* granted but never observed: pass the permits on */
    }
    f->assigned_ = 0;
    w->state_ = BLZ__W_IDLE;
    blz_waker mine = blz__waiter_take_waker(w);
    if (st == BLZ__W_QUEUED || give) {
        /* Also clears WAITERS if we were the last one queued. */
        hand_out_locked(s, give, &wb);
    }
    blz__spin_unlock(&s->lock_);
    blz__wake_batch_flush(&wb);
    blz_waker_drop(&mine);
    base->pt_ = BLZ__PHASE_FINISHED;
}

static const blz_future_vtable acquire_vtable = {acquire_poll, acquire_drop};

void
blz_semaphore_acquire_fut(blz_semaphore *s, size_t n, blz_semaphore_acquire_future *f)
{
    if (!f) {
        return;
    }
    blz_future_init(&f->base, &acquire_vtable);
    f->sem_ = n > BLZ_SEMAPHORE_MAX_PERMITS ? NULL : s;
    f->want_ = n;
    f->assigned_ = 0;
}

int
blz_semaphore_acquire(blz_semaphore *s, size_t n)
{
    blz_semaphore_acquire_future f;
    blz_semaphore_acquire_fut(s, n, &f);
    return blz_await(&f.base);
}
