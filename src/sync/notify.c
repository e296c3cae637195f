/*
 * Notify: wake one (or store one permit) / wake all.
 *
 * State. n->state_ = notify_all count << 2 | WAITERS (2) | PERMIT (1).
 *  - WAITERS is set iff the queue is not empty; it changes only under lock_.
 *  - PERMIT and WAITERS are set together only while a notify_all is on its
 *    way to unlink the last waiters it covers: notify_one stores a permit
 *    only when nobody else is queued (its CAS sees WAITERS clear, or it holds
 *    the lock and finds no waiter newer than the last notify_all), and a
 *    waiter queues only after finding no permit (under the lock, with a CAS
 *    on the same word).
 *  - The count goes up by one per notify_all. A wait future records it when
 *    filled; a future whose recorded count is stale when it polls (or queues,
 *    under the lock) completes at once: it was a waiter when notify_all ran.
 *    The queue is therefore ordered by recorded count, oldest first.
 *
 * Waiters. lock_ protects the queue and each linked waiter's state_ and
 * waker_. notify_one unlinks the oldest waiter and marks it DONE (it owes the
 * notification onward if dropped unobserved: the drop re-runs notify_one under
 * the lock); notify_all marks waiters DONE_ALL (nothing to pass on). Wakers are
 * moved out under the lock and woken after it.
 */
#include "blitzio/sync.h"
#include "sync/waitq.h"

#define GEN_SHIFT 2
#define GEN_UNIT  (1u << GEN_SHIFT)

static inline blz_notify_wait_future *
wait_of(blz_waiter *w)
{
    return blz__container_of(w, blz_notify_wait_future, waiter_);
}

void
blz_notify_init(blz_notify *n)
{
    if (!n) {
        return;
    }
    atomic_init(&n->state_, 0);
    atomic_init(&n->lock_, 0);
    blz__waitlist_init(blz__queue(&n->queue_));
}

/*
 * Under lock_: hands one notification to the oldest waiter, or stores the
 * permit. Waiters whose recorded count is stale belong to a notify_all that
 * has raised the count and is on its way to unlink them (it drops the lock
 * between wake batches): handing them this notification would fold it into
 * theirs, so they are skipped (the queue is ordered by count).
 */
static blz_waker
notify_one_locked(blz_notify *n)
{
    blz_waiter *head = &n->queue_;
    uint32_t gen = blz__load(&n->state_, RELAXED) >> GEN_SHIFT;
    blz_waiter *w = blz__waitlist_front(blz__queue(head));
    while (w && wait_of(w)->gen_ != gen) {
        w = w->next_ != head ? w->next_ : NULL;
    }
    BLZ_PERTURB_POINT();
    if (!w) {
        /* Release pairs with the acquire CAS of whoever consumes the permit. */
        (void) blz__fetch_or(&n->state_, BLZ_NOTIFY_PERMIT_, RELEASE);
        return BLZ_WAKER_NONE;
    }
    blz__waitlist *q = blz__queue(head);
    blz__waitlist_remove(w);
    w->state_ = BLZ__W_DONE;
    if (blz__waitlist_empty(q)) {
        (void) blz__fetch_and(&n->state_, ~BLZ_NOTIFY_WAITERS_, RELAXED);
    }
    return blz__waiter_take_waker(w);
}

void
blz__notify_one_slow(blz_notify *n)
{
    blz__spin_lock(&n->lock_);
    blz_waker k = notify_one_locked(n);
    blz__spin_unlock(&n->lock_);
    blz_waker_wake(&k);
}

void
blz_notify_all(blz_notify *n)
{
    if (!n) {
        return;
    }
    BLZ_PERTURB_POINT();
    /* Release pairs with the acquire load in wait_poll that sees the new count. */
    uint32_t old = blz__fetch_add(&n->state_, GEN_UNIT, ACQ_REL);
    if (!(old & BLZ_NOTIFY_WAITERS_)) {
        return;
    }
    blz__wake_batch wb;
    blz__wake_batch_init(&wb);
    blz__waitlist *q = blz__queue(&n->queue_);
    blz__spin_lock(&n->lock_);
    for (;;) {
        blz_waiter *w = blz__waitlist_front(q);
        uint32_t gen = blz__load(&n->state_, RELAXED) >> GEN_SHIFT;
        if (!w || wait_of(w)->gen_ == gen) {
            break; /* everyone queued before the newest notify_all is out */
        }
        if (blz__wake_batch_make_room(&wb, &n->lock_)) {
            continue; /* changed while unlocked: from the front */
        }
        blz__waitlist_remove(w);
        w->state_ = BLZ__W_DONE_ALL;
        blz__wake_batch_push(&wb, w);
    }
    if (blz__waitlist_empty(q)) {
        (void) blz__fetch_and(&n->state_, ~BLZ_NOTIFY_WAITERS_, RELAXED);
    }
    blz__spin_unlock(&n->lock_);
    blz__wake_batch_flush(&wb);
}

static BLZ_NOINLINE blz_poll
wait_enqueue(blz_notify_wait_future *f, blz_context *cx)
{
    blz_notify *n = f->notify_;
    blz_waiter *w = &f->waiter_;
    w->waker_ = blz_waker_clone(cx->waker); /* not linked yet: nobody else sees it */
    blz__spin_lock(&n->lock_);
    uint32_t cur = blz__load(&n->state_, ACQUIRE);
    for (;;) {
        if ((cur >> GEN_SHIFT) != f->gen_) {
            blz__spin_unlock(&n->lock_);
            return blz__sync_finish(&f->base, w, 0); /* a notify_all covered us */
        }
        BLZ_PERTURB_POINT();
        if (cur & BLZ_NOTIFY_PERMIT_) {
            /* Acquire pairs with the release that stored the permit. */
            if (blz__cas_weak(&n->state_, &cur, cur & ~BLZ_NOTIFY_PERMIT_, ACQUIRE, ACQUIRE)) {
                blz__spin_unlock(&n->lock_);
                return blz__sync_finish(&f->base, w, 0);
            }
            continue;
        }
        if ((cur & BLZ_NOTIFY_WAITERS_) ||
            blz__cas_weak(&n->state_, &cur, cur | BLZ_NOTIFY_WAITERS_, ACQUIRE, ACQUIRE)) {
            break;
        }
    }
    blz__waitlist_push_back(blz__queue(&n->queue_), w);
    w->state_ = BLZ__W_QUEUED;
    f->base.pt_ = BLZ__PHASE_LINKED;
    blz__spin_unlock(&n->lock_);
    return BLZ_PENDING;
}

/* A poll after the first: the future was queued (or woken since). */
static BLZ_NOINLINE blz_poll
wait_poll_linked(blz_notify_wait_future *f, blz_context *cx)
{
    blz_waiter *w = &f->waiter_;
    blz_notify *n = f->notify_;
    if (blz__waiter_still_queued(&n->lock_, w, cx->waker)) {
        return BLZ_PENDING;
    }
    return blz__sync_finish(&f->base, w, 0);
}

/* The first poll takes a permit or a newer notify_all count without a call
 * that keeps anything live: the queueing and later polls are out of line. */
static blz_poll
wait_poll(blz_future *base, blz_context *cx)
{
    blz_notify_wait_future *f = (blz_notify_wait_future *) base;
    blz_notify *n = f->notify_;
    if (base->pt_ == BLZ__PHASE_FINISHED) {
        return BLZ_READY;
    }
    if (!n) {
        return blz__sync_ready(base, -EINVAL);
    }
    if (!blz__coop_proceed(cx)) {
        return BLZ_PENDING;
    }
    if (base->pt_ != BLZ__PHASE_FRESH) {
        return wait_poll_linked(f, cx);
    }
    /* Acquire pairs with the release fetch_add in blz_notify_all. */
    uint32_t cur = blz__load(&n->state_, ACQUIRE);
    if ((cur >> GEN_SHIFT) != f->gen_ || blz_notify_try_wait(n) == 0) {
        return blz__sync_ready(base, 0);
    }
    return wait_enqueue(f, cx);
}

static void
wait_drop(blz_future *base)
{
    blz_notify_wait_future *f = (blz_notify_wait_future *) base;
    blz_waiter *w = &f->waiter_;
    if (base->pt_ != BLZ__PHASE_LINKED) {
        base->pt_ = BLZ__PHASE_FINISHED;
        return;
    }
    blz_notify *n = f->notify_;
    blz_waker pass = BLZ_WAKER_NONE;
    blz__spin_lock(&n->lock_);
    uintptr_t st = w->state_;
    if (st == BLZ__W_QUEUED) {
        blz__waitlist_remove(w);
        if (blz__waitlist_empty(blz__queue(&n->queue_))) {
            (void) blz__fetch_and(&n->state_, ~BLZ_NOTIFY_WAITERS_, RELAXED);
        }
    } else if (st == BLZ__W_DONE) {
        pass = notify_one_locked(n); /* a notify_one we never observed goes on */
    }
    w->state_ = BLZ__W_IDLE;
    blz_waker mine = blz__waiter_take_waker(w);
    blz__spin_unlock(&n->lock_);
    blz_waker_wake(&pass);
    blz_waker_drop(&mine);
    base->pt_ = BLZ__PHASE_FINISHED;
}

static const blz_future_vtable wait_vtable = {wait_poll, wait_drop};

void
blz_notify_wait_fut(blz_notify *n, blz_notify_wait_future *f)
{
    if (!f) {
        return;
    }
    blz_future_init(&f->base, &wait_vtable);
    f->notify_ = n;
    /* Acquire pairs with the release fetch_add in blz_notify_all. */
    f->gen_ = n ? blz__load(&n->state_, ACQUIRE) >> GEN_SHIFT : 0;
}

int
blz_notify_wait(blz_notify *n)
{
    blz_notify_wait_future f;
    blz_notify_wait_fut(n, &f);
    return blz_await(&f.base);
}
