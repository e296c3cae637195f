/*
 * CancelToken: a one-way flag, with children and waiters.
 *
 * Tree. A child points to its parent (parent_, immutable after init); a
 * parent knows nothing of its children, so no token ever needs unlinking and
 * none needs a deinit. A token is cancelled when its own flag or any
 * ancestor's is set; is_cancelled walks up the chain.
 *
 * Waiters. The cancelled futures of a whole tree queue at its root, under the
 * root's lock_ (the only lock_ in a tree that is used). cancel(t) sets t's
 * flag first, then takes the root's lock and unlinks every waiter whose token
 * now reads as cancelled. A waiter checks is_cancelled under that same lock
 * before queueing, so it either sees the flag or is queued before the
 * canceller looks: no lost wake-up. Waiter state_ and waker_ are under the
 * root's lock_ while linked. Nothing is handed to a waiter, so a drop only
 * unlinks.
 *
 * After the flag. Whoever sees a token cancelled (is_cancelled, a first poll)
 * may free it at once, so cancel(t) touches t only in the fetch_or that sets
 * the flag. It finds the root before (parent_ is immutable), and a root is
 * looked at again only if waiters are queued there, which keep it alive: a
 * root's word also holds WAITERS, set and cleared under its lock_ as the
 * queue fills and empties, so the fetch_or itself tells. (A child's root is
 * not the child's to free: it must outlive the child.)
 */
#include "blitzio/sync.h"
#include "sync/waitq.h"

static inline blz_cancel_future *
cwait_of(blz_waiter *w)
{
    return blz__container_of(w, blz_cancel_future, waiter_);
}

static blz_cancel_token *
root_of(blz_cancel_token *t)
{
    while (t->parent_) {
        t = t->parent_;
    }
    return t;
}

void
blz_cancel_token_init(blz_cancel_token *t)
{
    if (!t) {
        return;
    }
    atomic_init(&t->cancelled_, 0);
    atomic_init(&t->lock_, 0);
    t->parent_ = NULL;
    blz__waitlist_init(blz__queue(&t->queue_));
}

int
blz_cancel_token_child_init(blz_cancel_token *child, blz_cancel_token *parent)
{
    if (!child || !parent || child == parent) {
        return -EINVAL;
    }
    blz_cancel_token_init(child);
    child->parent_ = parent;
    return 0;
}

void
blz_cancel_token_cancel(blz_cancel_token *t)
{
    if (!t) {
        return;
    }
    blz_cancel_token *root = root_of(t); /* before the flag: t may be freed after it */
    BLZ_PERTURB_POINT();
    /* Release pairs with the acquire loads of blz_cancel_token_is_cancelled. */
    uint32_t old = blz__fetch_or(&t->cancelled_, BLZ_CANCEL_CANCELLED_, ACQ_REL);
    if (old & BLZ_CANCEL_CANCELLED_) {
        return; /* whoever set it first does the waking */
    }
    if (t == root && !(old & BLZ_CANCEL_WAITERS_)) {
        return; /* nobody queued: no more touches of t */
    }
    blz__wake_batch wb;
    blz__wake_batch_init(&wb);
    blz__waitlist *q = blz__queue(&root->queue_);
    blz__spin_lock(&root->lock_);
    blz_waiter *head = &root->queue_;
    for (blz_waiter *w = blz__waitlist_front(q); w && w != head;) {
        blz_waiter *next = w->next_;
        if (blz_cancel_token_is_cancelled(cwait_of(w)->token_)) {
            if (blz__wake_batch_make_room(&wb, &root->lock_)) {
                w = blz__waitlist_front(q); /* changed while unlocked: from the front */
                continue;
            }
            blz__waitlist_remove(w);
            w->state_ = BLZ__W_DONE;
            blz__wake_batch_push(&wb, w);
        }
        w = next;
    }
    if (blz__waitlist_empty(q)) {
        (void) blz__fetch_and(&root->cancelled_, ~BLZ_CANCEL_WAITERS_, RELAXED);
    }
    blz__spin_unlock(&root->lock_);
    blz__wake_batch_flush(&wb);
}

static blz_poll
cwait_poll(blz_future *base, blz_context *cx)
{
    blz_cancel_future *f = (blz_cancel_future *) base;
    blz_waiter *w = &f->waiter_;
    blz_cancel_token *t = f->token_;
    if (base->pt_ == BLZ__PHASE_FINISHED) {
        return BLZ_READY;
    }
    if (!t) {
        return blz__sync_ready(base, -EINVAL);
    }
    if (!blz__coop_proceed(cx)) {
        return BLZ_PENDING;
    }
    blz_cancel_token *root = root_of(t);
    if (base->pt_ == BLZ__PHASE_FRESH) {
        if (blz_cancel_token_is_cancelled(t)) {
            return blz__sync_ready(base, 0);
        }
        w->waker_ = blz_waker_clone(cx->waker); /* not linked yet */
        blz__spin_lock(&root->lock_);
        if (blz_cancel_token_is_cancelled(t)) {
            blz__spin_unlock(&root->lock_);
            return blz__sync_finish(base, w, 0);
        }
        /* Acquire pairs with the root's cancel, which may have run since the
         * check above without seeing WAITERS: then nobody else wakes us. (The
         * WAITERS it leaves on a cancelled root is never looked at again.) */
        uint32_t old = blz__fetch_or(&root->cancelled_, BLZ_CANCEL_WAITERS_, ACQUIRE);
        if (old & BLZ_CANCEL_CANCELLED_) {
            blz__spin_unlock(&root->lock_);
            return blz__sync_finish(base, w, 0);
        }
        blz__waitlist_push_back(blz__queue(&root->queue_), w);
        w->state_ = BLZ__W_QUEUED;
        base->pt_ = BLZ__PHASE_LINKED;
        blz__spin_unlock(&root->lock_);
        return BLZ_PENDING;
    }
    if (blz__waiter_still_queued(&root->lock_, w, cx->waker)) {
        return BLZ_PENDING;
    }
    return blz__sync_finish(base, w, 0);
}

static void
cwait_drop(blz_future *base)
{
    blz_cancel_future *f = (blz_cancel_future *) base;
    blz_waiter *w = &f->waiter_;
    if (base->pt_ != BLZ__PHASE_LINKED) {
        base->pt_ = BLZ__PHASE_FINISHED;
        return;
    }
    blz_cancel_token *root = root_of(f->token_);
    blz__spin_lock(&root->lock_);
    if (w->state_ == BLZ__W_QUEUED) {
        blz__waitlist_remove(w);
        if (blz__waitlist_empty(blz__queue(&root->queue_))) {
            (void) blz__fetch_and(&root->cancelled_, ~BLZ_CANCEL_WAITERS_, RELAXED);
        }
    }
    w->state_ = BLZ__W_IDLE;
    blz_waker mine = blz__waiter_take_waker(w);
    blz__spin_unlock(&root->lock_);
    blz_waker_drop(&mine);
    base->pt_ = BLZ__PHASE_FINISHED;
}

static const blz_future_vtable cwait_vtable = {cwait_poll, cwait_drop};

void
blz_cancel_token_wait_fut(blz_cancel_token *t, blz_cancel_future *f)
{
    if (!f) {
        return;
    }
    blz_future_init(&f->base, &cwait_vtable);
    f->token_ = t;
}

int
blz_cancel_token_wait(blz_cancel_token *t)
{
    blz_cancel_future f;
    blz_cancel_token_wait_fut(t, &f);
    return blz_await(&f.base);
}
