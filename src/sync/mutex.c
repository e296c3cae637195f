/*
 * Mutex: one CAS to lock, one release store (plus a plain load) to unlock,
 * FIFO hand-off under contention.
 *
 * Fields and who may write them:
 *  - locked_  0/1. Set by a CAS 0 -> 1 (try tier, spin, or hand_off on behalf
 *    of a waiter); cleared by the holder's release store in blz_mutex_unlock.
 *  - waiters_ 0/1, written only under lock_. 1 means "the queue may be
 *    non-empty, unlockers take the slow path". It is raised by the first
 *    waiter to queue and cleared only by someone who sees the queue empty
 *    under lock_. It is deliberately sticky: a hand-off that empties the queue
 *    leaves it set, so a locker that queues right after (the usual convoy)
 *    needs no barrier; the new holder's unlock clears it.
 *  - queue_ and every linked waiter's state_ and waker_: under lock_.
 *
 * Fairness: the try tier and the spin refuse while waiters_ is set, and
 * hand_off takes the mutex for the oldest waiter *before* waking it
 * (locked_ never drops to 0 in between, except for the instant between an
 * unlocker's store and its slow path, when waiters_ keeps newcomers out).
 *
 * The unlock race. An unlocker does  store(locked_ = 0); load(waiters_).
 * A waiter does  waiters_ = 1; barrier; load(locked_).  Without a store-load
 * barrier on both sides each could miss the other and the waiter would sleep
 * forever. The waiter pays it for both with blz__sync_heavy_barrier()
 * (membarrier, see membarrier.c) the first time it raises waiters_, so the
 * unlocker needs only a compiler barrier. After the barrier, either the
 * unlocker saw waiters_ = 1 and runs hand_off, or the waiter sees locked_ = 0
 * and runs hand_off itself, or the mutex was taken again by someone whose
 * locking CAS came after the barrier, and whose unlock will see waiters_.
 * hand_off is idempotent: under lock_, it either finds the queue empty
 * (clears waiters_), takes the mutex for the head, or finds it held and
 * leaves it to the holder's unlock.
 *
 * Waiter states: QUEUED -> DONE (hand_off made it the owner; it owns the mutex
 * even if it never looks). A dropped DONE waiter unlocks, passing the mutex on.
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
    atomic_init(&m->locked_, 0);
    atomic_init(&m->waiters_, 0);
    atomic_init(&m->lock_, 0);
    blz__waitlist_init(blz__queue(&m->queue_));
}

/*
 * Gives the mutex to the oldest waiter if it is free. `self` is the calling
 * waiter (or NULL): if it is the one served, its own waker is not woken.
 */
static void
hand_off(blz_mutex *m, blz_waiter *self)
{
    blz_waker wake = BLZ_WAKER_NONE;
    blz__spin_lock(&m->lock_);
    blz_waiter *w = blz__waitlist_front(blz__queue(&m->queue_));
    if (!w) {
        blz__store(&m->waiters_, 0, RELAXED);
    } else {
        BLZ_PERTURB_POINT();
        uint32_t expect = 0;
        /* Acquire pairs with the previous holder's release store: the new owner
         * sees its critical section (through lock_ when it observes DONE). */
        if (blz__cas(&m->locked_, &expect, 1, ACQUIRE, RELAXED)) {
            blz__waitlist_remove(w);
            w->state_ = BLZ__W_DONE;
            if (w != self) {
                wake = blz__waiter_take_waker(w);
            }
        }
    }
    blz__spin_unlock(&m->lock_);
    blz_waker_wake(&wake);
}

void
blz__mutex_unlock_slow(blz_mutex *m)
{
    hand_off(m, NULL);
}

/* Bounded spin while the mutex is held and nobody queues. True if we got it. */
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
        if (blz__load(&m->waiters_, RELAXED)) {
            return false; /* a queue formed: join it, do not barge */
        }
        if (blz__load(&m->locked_, RELAXED) == 0 && blz_mutex_try_lock(m) == 0) {
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
    blz__waitlist_push_back(blz__queue(&m->queue_), w);
    w->state_ = BLZ__W_QUEUED;
    f->base.pt_ = BLZ__PHASE_LINKED;
    bool first = blz__load(&m->waiters_, RELAXED) == 0;
    if (first) {
        /* seq_cst: the fallback (fence mode) pairs it with the unlocker's seq_cst load. */
        blz__store(&m->waiters_, 1, SEQ_CST);
    }
    blz__spin_unlock(&m->lock_);
    if (first) {
        /* Store-load barrier for us and every unlocker (see "The unlock race"). */
        blz__sync_heavy_barrier();
    }
    BLZ_PERTURB_POINT();
    if (blz__load(&m->locked_, SEQ_CST) == 0) {
        hand_off(m, w); /* the holder may have left without seeing us */
    }
    blz__spin_lock(&m->lock_);
    uintptr_t st = w->state_;
    blz__spin_unlock(&m->lock_);
    if (st == BLZ__W_DONE) {
        return blz__sync_finish(&f->base, w, 0);
    }
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
            blz__store(&m->waiters_, 0, RELAXED); /* always safe with the queue empty */
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
