/*
 * Semaphore: the counting core the RwLock is built on.
 *
 * Fields and who may write them:
 *  - state_ = free permits << 1 | CLOSED. Free permits change by CAS in the
 *    try tier and under the lock, by fetch_add in release() (no lock), and by
 *    the one store of blz__semaphore_release_all, whose caller holds every
 *    permit (free count 0: every other writer of state_ leaves it alone then).
 *    CLOSED is set once, under the lock.
 *  - waiters_ 0/1, written only under lock_. 1 means "the queue may be
 *    non-empty": the try tier refuses (nobody barges past a queued waiter)
 *    and releasers take the slow path. The try tier reads it beside its CAS
 *    on state_, not inside it, so a try that read 0 just before a waiter
 *    queued may still take permits a release returned meanwhile (the same
 *    count, so the CAS cannot tell): one barge per such race, as with the
 *    mutex, and nothing lost (the waiter is served by the next release). The waiter that queues
 * first raises it; whoever finds the queue empty under the lock clears it, except a hand-out that
 * served the last waiter and has nothing left over: it leaves it set, so a convoy that queues again
 * at once needs no new barrier (the next release's slow path clears it).
 *  - queue_, and every linked waiter's state_, assigned_ and waker_: under
 *    lock_.
 *
 * Waking. A releaser does  add or store state_; load waiters_.  A waiter does
 * waiters_ = 1; barrier; load state_.  Without a store-load barrier on both
 * sides each could miss the other and the waiter would sleep while permits
 * sit free. The waiter pays it for both with blz__sync_heavy_barrier()
 * (membarrier, see membarrier.c) when it raises waiters_ from 0, so a
 * release needs only a compiler barrier; this is what lets the rwlock's
 * writer unlock with one plain store, as the mutex does. After the barrier,
 * either the releaser sees waiters_ = 1 and runs the hand-out, or the waiter
 * sees the permits in state_ and runs it itself. The hand-out is idempotent
 * under the lock. Without membarrier both sides use seq_cst operations.
 *
 * Waiters. Each acquire future embeds its node. Permits are handed over by
 * raising assigned_; a waiter whose assigned_ reaches want_ is unlinked and
 * marked DONE under the lock, its waker moved into a wake batch, and woken
 * after the unlock. The head may be partly assigned: it keeps what it got,
 * and the walk stops there, which is what stops a big request from starving.
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
    atomic_init(&s->waiters_, 0);
    atomic_init(&s->lock_, 0);
    blz__waitlist_init(blz__queue(&s->queue_));
    return 0;
}

/*
 * Under s->lock_: hands `avail` (permits the caller brings: a release's, a
 * dropped waiter's) and every free permit to the waiters in FIFO order.
 * Completed waiters go into `wb`, except `self` (the calling waiter, or
 * NULL), which finds itself DONE; a full batch is woken with the lock
 * briefly dropped. With the queue empty, puts the surplus back in the free
 * count and clears waiters_ (see "Fields" for when it stays set).
 */
static void
hand_out_locked(blz_semaphore *s, size_t avail, blz_waiter *self, blz__wake_batch *wb)
{
    blz__waitlist *q = blz__queue(&s->queue_);
    bool served = false;
    blz_waiter *w;
    while ((w = blz__waitlist_front(q)) != NULL) {
        if (w != self && blz__wake_batch_make_room(wb, &s->lock_)) {
            continue; /* changed while unlocked: from the front */
        }
        /* Drain the free count (acquire pairs with the releasers' add or store). */
        size_t cur = blz__load(&s->state_, RELAXED);
        if ((cur >> BLZ_SEM_SHIFT_) != 0) {
            BLZ_PERTURB_POINT();
            if (!blz__cas_weak(&s->state_, &cur, cur & BLZ_SEM_CLOSED_, ACQUIRE, RELAXED)) {
                continue;
            }
            avail += cur >> BLZ_SEM_SHIFT_;
        }
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
        served = true;
        if (w != self) {
            blz__wake_batch_push(wb, w);
        }
    }
    if (served && avail == 0) {
        return; /* sticky waiters_: the next release's slow path clears it */
    }
    blz__store(&s->waiters_, 0, RELAXED); /* always safe with the queue empty */
    if (avail) {
        /* Release pairs with the acquire CAS of the try tier. */
        (void) blz__fetch_add(&s->state_, avail << BLZ_SEM_SHIFT_, RELEASE);
    }
}

void
blz__semaphore_release_slow(blz_semaphore *s)
{
    blz__wake_batch wb;
    blz__wake_batch_init(&wb);
    blz__spin_lock(&s->lock_);
    hand_out_locked(s, 0, NULL, &wb);
    blz__spin_unlock(&s->lock_);
    blz__wake_batch_flush(&wb);
}

size_t
blz_semaphore_forget(blz_semaphore *s, size_t n)
{
    if (!s) {
        return 0;
    }
    /* Only free permits, which live in the count. While waiters_ is set the
     * count holds only permits a release has added and is on its way to hand
     * to the queue (see "Waking"): they are not free, so, like the try tier,
     * take nothing then. Relaxed: no data is published. */
    size_t cur = blz__load(&s->state_, RELAXED);
    for (;;) {
        size_t free = cur >> BLZ_SEM_SHIFT_;
        size_t k = n < free ? n : free;
        if (k == 0 || blz__load(&s->waiters_, RELAXED)) {
            return 0;
        }
        if (blz__cas_weak(&s->state_, &cur, cur - (k << BLZ_SEM_SHIFT_), RELAXED, RELAXED)) {
            return k;
        }
    }
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
    /* Under the lock, so no enqueuer sees it unset and then queues. */
    (void) blz__fetch_or(&s->state_, BLZ_SEM_CLOSED_, RELEASE);
    blz__waitlist *q = blz__queue(&s->queue_);
    blz_waiter *w;
    while ((w = blz__waitlist_front(q)) != NULL) {
        if (blz__wake_batch_make_room(&wb, &s->lock_)) {
            continue; /* changed while unlocked: from the front */
        }
        blz__waitlist_remove(w);
        blz_semaphore_acquire_future *f = acq_of(w);
        size_t give_back = f->assigned_;
        f->assigned_ = 0;
        w->state_ = BLZ__W_CLOSED;
        if (give_back) {
            (void) blz__fetch_add(&s->state_, give_back << BLZ_SEM_SHIFT_, RELEASE);
        }
        blz__wake_batch_push(&wb, w);
    }
    blz__store(&s->waiters_, 0, RELAXED);
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
    if (cur & BLZ_SEM_CLOSED_) {
        blz__spin_unlock(&s->lock_);
        return blz__sync_finish(&f->base, w, -EPIPE);
    }
    f->assigned_ = 0;
    bool first = false;
    if (blz__waitlist_empty(blz__queue(&s->queue_))) {
        /* Nobody is queued (waiters_ may still be set, see "Fields"): what is free
         * is ours. Acquire pairs with the release of whoever returned it. */
        for (;;) {
            size_t avail = cur >> BLZ_SEM_SHIFT_;
            BLZ_PERTURB_POINT();
            if (avail >= f->want_) {
                if (blz__cas_weak(&s->state_, &cur, cur - (f->want_ << BLZ_SEM_SHIFT_), ACQUIRE,
                                  RELAXED)) {
                    blz__spin_unlock(&s->lock_);
                    return blz__sync_finish(&f->base, w, 0);
                }
            } else if (avail == 0) {
                break;
            } else if (blz__cas_weak(&s->state_, &cur, cur & BLZ_SEM_CLOSED_, ACQUIRE, RELAXED)) {
                f->assigned_ = avail; /* first in line: keep what is free as a partial grant */
                break;
            }
        }
        first = blz__load(&s->waiters_, RELAXED) == 0;
        if (first) {
            /* seq_cst: the fallback (fence mode) pairs it with the releaser's seq_cst load. */
            blz__store(&s->waiters_, 1, SEQ_CST);
        }
    }
    /* Else others queued first: go to the back. Free permits, if any, belong to
     * a releaser on its way to the lock, whose hand-out will reach us in turn. */
    blz__waitlist_push_back(blz__queue(&s->queue_), w);
    w->state_ = BLZ__W_QUEUED;
    f->base.pt_ = BLZ__PHASE_LINKED;
    blz__spin_unlock(&s->lock_);
    if (first) {
        /* Store-load barrier for us and every releaser (see "Waking"). */
        blz__sync_heavy_barrier();
    }
    BLZ_PERTURB_POINT();
    if ((blz__load(&s->state_, SEQ_CST) >> BLZ_SEM_SHIFT_) == 0) {
        return BLZ_PENDING;
    }
    /* A release may have missed waiters_: hand its permits out ourselves. */
    blz__wake_batch wb;
    blz__wake_batch_init(&wb);
    blz__spin_lock(&s->lock_);
    hand_out_locked(s, 0, w, &wb);
    uintptr_t st = w->state_;
    blz__spin_unlock(&s->lock_);
    blz__wake_batch_flush(&wb);
    if (st == BLZ__W_DONE) {
        f->assigned_ = 0;
        return blz__sync_finish(&f->base, w, 0);
    }
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
        /* Also clears waiters_ if we were the last one queued. */
        hand_out_locked(s, give, NULL, &wb);
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
