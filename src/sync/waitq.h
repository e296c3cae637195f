/*
 * Internal: the pieces every sync primitive's slow path shares.
 *
 *  - A small spinlock (test-and-test-and-set, exponential pause, then
 *    sched_yield). It guards a primitive's waiter queue and the fields of the
 *    waiters linked in it. Critical sections are a handful of pointer moves:
 *    nobody wakes, allocates or calls user code while holding one.
 *  - The queue itself: the primitive embeds a blz_waiter sentinel (`queue_`),
 *    viewed here as a blz__waitlist (core/list.h). A zeroed sentinel is an
 *    empty list, so static initialisers need not mention it.
 *  - A wake batch: wakers are *moved* out of waiters under the lock and woken
 *    only after the unlock, so a notifier never touches a waiter's memory once
 *    it has dropped the lock (the waiter's fate was decided under it). When a
 *    batch fills, the caller unlocks, wakes, relocks and carries on.
 *
 * Waiter states (blz_waiter.state_, written only under the primitive's lock):
 * IDLE (not linked) -> QUEUED (linked) -> DONE (unlinked by a notifier, which
 * handed it the resource) or CLOSED (unlinked by close); a drop unlinks a
 * QUEUED waiter and passes on what a DONE one received.
 *
 * Future phases (blz_future.pt_, owned by whoever owns the future; the sync
 * futures do not use the BLZ_ASYNC macros): FRESH -> LINKED -> FINISHED.
 */
#ifndef BLZ_SYNC_WAITQ_H
#define BLZ_SYNC_WAITQ_H

#include "blitzio/future.h"
#include "core/atomic.h"
#include "core/container.h"
#include "core/coop.h"
#include "core/list.h"

enum {
    BLZ__W_IDLE = 0,
    BLZ__W_QUEUED = 1,
    BLZ__W_DONE = 2,
    BLZ__W_CLOSED = 3,
    BLZ__W_DONE_ALL = 4, /* notify: woken by notify_all (nothing to pass on) */
};

enum {
    BLZ__PHASE_FRESH = 0,    /* not polled yet, or polled without being linked */
    BLZ__PHASE_LINKED = 1,   /* waiter linked, or unlinked by a notifier and not yet observed */
    BLZ__PHASE_FINISHED = 2, /* the poll returned BLZ_READY, or the future was dropped */
};

/* ---- spinlock ----------------------------------------------------------- */

void blz__spin_lock_slow(_Atomic uint32_t *l);

static inline void
blz__spin_lock(_Atomic uint32_t *l)
{
    BLZ_PERTURB_POINT();
    uint32_t expect = 0;
    /* Acquire pairs with the release store in blz__spin_unlock. */
    if (BLZ_LIKELY(blz__cas_weak(l, &expect, 1, ACQUIRE, RELAXED))) {
        return;
    }
    blz__spin_lock_slow(l);
}

static inline void
blz__spin_unlock(_Atomic uint32_t *l)
{
    BLZ_PERTURB_POINT();
    blz__store(l, 0, RELEASE);
}

/* ---- queue -------------------------------------------------------------- */

/* The sentinel `queue_` of a primitive, as a list (its only member is that node). */
static inline blz__waitlist *
blz__queue(blz_waiter *sentinel)
{
    return (blz__waitlist *) (void *) sentinel;
}

/* ---- wakers ------------------------------------------------------------- */

/*
 * Under the lock, for a linked waiter being re-polled: makes its waker wake
 * `src`. Returns the waker it replaced, to drop after unlocking.
 */
static inline blz_waker
blz__waiter_swap_waker(blz_waiter *w, const blz_waker *src)
{
    blz_waker old = BLZ_WAKER_NONE;
    if (!blz_waker_will_wake(&w->waker_, src)) {
        old = w->waker_;
        w->waker_ = blz_waker_clone(src);
    }
    return old;
}

/*
 * A linked waiter re-polled: takes `lock` (the one over its state_ and
 * waker_); if it is still queued, points its waker at `src` and returns true
 * (the poll stays pending); otherwise it was handed its outcome, and this
 * returns false for the caller to finish. Never holds the lock on return.
 */
static inline bool
blz__waiter_still_queued(_Atomic uint32_t *lock, blz_waiter *w, const blz_waker *src)
{
    blz__spin_lock(lock);
    if (w->state_ == BLZ__W_QUEUED) {
        blz_waker old = blz__waiter_swap_waker(w, src);
        blz__spin_unlock(lock);
        blz_waker_drop(&old);
        return true;
    }
    blz__spin_unlock(lock);
    return false;
}

/* Moves the waiter's waker out (the waiter keeps an empty one). */
static inline blz_waker
blz__waiter_take_waker(blz_waiter *w)
{
    blz_waker k = w->waker_;
    w->waker_ = BLZ_WAKER_NONE;
    return k;
}

#define BLZ__WAKE_BATCH 32

typedef struct blz__wake_batch {
    unsigned n;                   /* wakers held */
    blz_waker w[BLZ__WAKE_BATCH]; /* moved out of unlinked waiters */
} blz__wake_batch;

static inline void
blz__wake_batch_init(blz__wake_batch *b)
{
    b->n = 0;
}

/* Moves w's waker into the batch, which has room (blz__wake_batch_make_room). */
static inline void
blz__wake_batch_push(blz__wake_batch *b, blz_waiter *w)
{
    b->w[b->n++] = blz__waiter_take_waker(w);
}

/* Wakes everything in the batch. Call without holding any lock. */
static inline void
blz__wake_batch_flush(blz__wake_batch *b)
{
    for (unsigned i = 0; i < b->n; i++) {
        blz_waker_wake(&b->w[i]);
    }
    b->n = 0;
}

/*
 * Under `lock`, with one more waiter found to wake and still linked: if the
 * batch is full, unlocks, wakes what it holds, relocks and returns true (the
 * list may have changed meanwhile: find the next waiter again). Emptied only
 * when there is another waiter to take, never once the last one went in: a
 * waiter that has been woken may free the primitive at once (as a thread
 * woken by pthread_cond_broadcast may destroy the condition variable), so
 * after the last wake, which comes after the final unlock, nothing may touch
 * it. The waiter still linked keeps it alive across the relock.
 */
static inline bool
blz__wake_batch_make_room(blz__wake_batch *b, _Atomic uint32_t *lock)
{
    if (b->n < BLZ__WAKE_BATCH) {
        return false;
    }
    blz__spin_unlock(lock);
    blz__wake_batch_flush(b);
    blz__spin_lock(lock);
    return true;
}

/* ---- future helpers ----------------------------------------------------- */

/*
 * A sync future's fill writes only the base and its own fields: the waiter is
 * written when the future queues (waker cloned, then linked, state_ set), so
 * the common case, where the first poll finds the resource free, neither
 * writes nor reads it. (Those stores, just before the poll loads, cost the
 * notify row 30 % on this machine.) Until the future is LINKED its waiter's
 * contents mean nothing; drops look at the waiter only when LINKED.
 */

/* Marks `f` ready with `result`: a future whose waiter holds nothing (it never
 * queued, or its waker was already dropped). */
static inline blz_poll
blz__sync_ready(blz_future *f, int result)
{
    f->pt_ = BLZ__PHASE_FINISHED;
    f->result = result;
    return BLZ_READY;
}

/* Marks `f` ready with `result` once its waiter was prepared to queue (it
 * holds a waker): drops that waker. */
static inline blz_poll
blz__sync_finish(blz_future *f, blz_waiter *w, int result)
{
    blz_waker_drop(&w->waker_);
    w->state_ = BLZ__W_IDLE;
    return blz__sync_ready(f, result);
}

#endif
