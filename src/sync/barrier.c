/*
 * Barrier: `parties` arrivals complete a generation; the last to arrive leads.
 *
 * Everything (parties_ aside, which is fixed at init) is under lock_:
 * arrived_, generation_, the queue, and each linked waiter's state_, gen_ and
 * waker_. A waiter records the generation it arrived in (gen_). The leader
 * bumps generation_, resets arrived_ and unlinks, oldest first, every waiter
 * whose gen_ is stale; the queue is ordered by gen_, so it stops at the first
 * waiter of the new generation. If a wake batch fills, the leader drops the
 * lock to wake it; a later leader may meanwhile release the rest, which is
 * harmless (each waiter is unlinked once, under the lock).
 *
 * Cancellation: dropping a waiter that is still queued in the current
 * generation unlinks it and withdraws its arrival (arrived_ - 1). A waiter of a
 * completed generation (DONE, or still linked but stale) counted; dropping it
 * only unlinks it. There is nothing to pass on.
 */
#include "blitzio/sync.h"
#include "sync/waitq.h"

static inline blz_barrier_wait_future *
bwait_of(blz_waiter *w)
{
    return blz__container_of(w, blz_barrier_wait_future, waiter_);
}

int
blz_barrier_init(blz_barrier *b, uint32_t parties)
{
    if (!b || parties == 0) {
        return -EINVAL;
    }
    atomic_init(&b->lock_, 0);
    b->parties_ = parties;
    b->arrived_ = 0;
    b->generation_ = 0;
    blz__waitlist_init(blz__queue(&b->queue_));
    return 0;
}

/* Under lock_: completes the generation and releases its waiters. */
static void
lead_locked(blz_barrier *b, blz__wake_batch *wb)
{
    b->arrived_ = 0;
    b->generation_++;
    blz__waitlist *q = blz__queue(&b->queue_);
    for (;;) {
        blz_waiter *w = blz__waitlist_front(q);
        if (!w || bwait_of(w)->gen_ == b->generation_) {
            return;
        }
        if (blz__wake_batch_make_room(wb, &b->lock_)) {
            continue; /* changed while unlocked: from the front */
        }
        blz__waitlist_remove(w);
        w->state_ = BLZ__W_DONE;
        blz__wake_batch_push(wb, w);
    }
}

int
blz_barrier_try_wait(blz_barrier *b)
{
    if (!b || b->parties_ == 0) {
        return -EINVAL;
    }
    blz__wake_batch wb;
    blz__wake_batch_init(&wb);
    blz__spin_lock(&b->lock_);
    if (b->arrived_ + 1 < b->parties_) {
        blz__spin_unlock(&b->lock_);
        return -EAGAIN;
    }
    lead_locked(b, &wb);
    blz__spin_unlock(&b->lock_);
    blz__wake_batch_flush(&wb);
    return BLZ_BARRIER_LEADER;
}

static blz_poll
bwait_poll(blz_future *base, blz_context *cx)
{
    blz_barrier_wait_future *f = (blz_barrier_wait_future *) base;
    blz_waiter *w = &f->waiter_;
    blz_barrier *b = f->barrier_;
    if (base->pt_ == BLZ__PHASE_FINISHED) {
        return BLZ_READY;
    }
    if (!b || b->parties_ == 0) {
        return blz__sync_ready(base, -EINVAL);
    }
    if (!blz__coop_proceed(cx)) {
        return BLZ_PENDING;
    }
    if (base->pt_ == BLZ__PHASE_FRESH) {
        blz__wake_batch wb;
        blz__wake_batch_init(&wb);
        blz__spin_lock(&b->lock_);
        if (++b->arrived_ >= b->parties_) {
            lead_locked(b, &wb);
            blz__spin_unlock(&b->lock_);
            blz__wake_batch_flush(&wb);
            return blz__sync_ready(base, BLZ_BARRIER_LEADER);
        }
        f->gen_ = b->generation_;
        blz__waitlist_push_back(blz__queue(&b->queue_), w);
        w->state_ = BLZ__W_QUEUED;
        /* Cloned under the lock: once linked, a leader may move it out. */
        w->waker_ = blz_waker_clone(cx->waker);
        base->pt_ = BLZ__PHASE_LINKED;
        blz__spin_unlock(&b->lock_);
        return BLZ_PENDING;
    }
    if (blz__waiter_still_queued(&b->lock_, w, cx->waker)) {
        return BLZ_PENDING;
    }
    return blz__sync_finish(base, w, 0);
}

static void
bwait_drop(blz_future *base)
{
    blz_barrier_wait_future *f = (blz_barrier_wait_future *) base;
    blz_waiter *w = &f->waiter_;
    if (base->pt_ != BLZ__PHASE_LINKED) {
        base->pt_ = BLZ__PHASE_FINISHED;
        return;
    }
    blz_barrier *b = f->barrier_;
    blz__spin_lock(&b->lock_);
    if (w->state_ == BLZ__W_QUEUED) {
        blz__waitlist_remove(w);
        if (f->gen_ == b->generation_) {
            b->arrived_--; /* withdrawn before its generation completed */
        }
    }
    w->state_ = BLZ__W_IDLE;
    blz_waker mine = blz__waiter_take_waker(w);
    blz__spin_unlock(&b->lock_);
    blz_waker_drop(&mine);
    base->pt_ = BLZ__PHASE_FINISHED;
}

static const blz_future_vtable bwait_vtable = {bwait_poll, bwait_drop};

void
blz_barrier_wait_fut(blz_barrier *b, blz_barrier_wait_future *f)
{
    if (!f) {
        return;
    }
    blz_future_init(&f->base, &bwait_vtable);
    f->barrier_ = b;
    f->gen_ = 0;
}

int
blz_barrier_wait(blz_barrier *b)
{
    blz_barrier_wait_future f;
    blz_barrier_wait_fut(b, &f);
    return blz_await(&f.base);
}
