/*
 * Internal: the lock and waiter FIFO every channel kind builds on.
 *
 * Lock. A three-state futex mutex (0 free, 1 held, 2 held with sleepers):
 * an uncontended lock is one CAS, an unlock one exchange. Critical sections
 * are a few pointer moves, so contenders spin briefly before sleeping.
 *
 * Waiter protocol (the fate of a waiter is decided under the lock):
 *
 *   IDLE --owner links it (under lock)--> LINKED
 *   LINKED --a waker unlinks it, moves its waker out, stores NOTIFIED
 *            (release; its very last touch of the waiter), unlocks, wakes--> NOTIFIED
 *   LINKED --its owner unlinks it (under lock)--> IDLE
 *   NOTIFIED --its owner sees it (acquire) and resets it--> IDLE
 *
 * So a waker never touches a waiter after the unlock, and an owner that reads
 * NOTIFIED without the lock knows every access of the waker happened before.
 * A waiter that was NOTIFIED and is then abandoned without retrying must pass
 * the notification on (the caller does that: wq_wake_one again), or a wake
 * meant for "some waiter" would be lost with it.
 */
#ifndef BLZ_CHAN_WAITQ_H
#define BLZ_CHAN_WAITQ_H

#include "blitzio/chan.h"
#include "core/atomic.h"
#include "core/container.h"
#include "core/list.h"

#include <stdbool.h>
#include <stddef.h>

enum { W_IDLE = 0, W_LINKED = 1, W_NOTIFIED = 2 };

/* Wakers collected under the lock and woken after it, in batches of this many. */
#define WQ_BATCH 16

typedef struct wq_batch {
    blz_waker w[WQ_BATCH];
    size_t n;
} wq_batch;

void blz__chan_lock_slow(_Atomic(uint32_t) *lock);
void blz__chan_unlock_wake(_Atomic(uint32_t) *lock);

static inline void
wq_lock(blz_chan_waitq *q)
{
    uint32_t expect = 0;
    BLZ_PERTURB_POINT();
    /* Acquire pairs with the release exchange in wq_unlock. */
    if (BLZ_LIKELY(blz__cas(&q->lock_, &expect, 1, ACQUIRE, RELAXED))) {
        return;
    }
    blz__chan_lock_slow(&q->lock_);
}

static inline void
wq_unlock(blz_chan_waitq *q)
{
    /* Release pairs with the acquire CAS of the next wq_lock. */
    if (BLZ_UNLIKELY(blz__exchange(&q->lock_, 0, RELEASE) == 2)) {
        blz__chan_unlock_wake(&q->lock_);
    }
    BLZ_PERTURB_POINT();
}

static inline blz__waitlist *
wq_list(blz_chan_waitq *q)
{
    return (blz__waitlist *) (void *) &q->head_;
}

static inline blz_chan_waiter *
wq_waiter_of(blz_waiter *node)
{
    return blz__container_of(node, blz_chan_waiter, node_);
}

static inline void
waiter_init(blz_chan_waiter *w)
{
    w->node_.next_ = NULL;
    w->node_.prev_ = NULL;
    w->node_.waker_ = BLZ_WAKER_NONE;
    w->node_.state_ = 0;
    atomic_init(&w->state_, W_IDLE);
    w->busy_ = 0;
    w->key_ = 0;
}

/* Under the lock: links `w` at the back with a clone of `waker`. */
static inline void
wq_push_locked(blz_chan_waitq *q, blz_chan_waiter *w, const blz_waker *waker)
{
    w->node_.waker_ = blz_waker_clone(waker);
    blz__waitlist_push_back(wq_list(q), &w->node_);
    q->len_++;
    blz__store(&w->state_, W_LINKED, RELAXED);
}

/*
 * Under the lock: unlinks `w` on behalf of a waker, moving its waker into
 * `out`, and publishes NOTIFIED as the last touch of `w`.
 */
static inline void
wq_notify_locked(blz_chan_waitq *q, blz_chan_waiter *w, blz_waker *out)
{
    blz__waitlist_remove(&w->node_);
    q->len_--;
    *out = w->node_.waker_;
    w->node_.waker_ = BLZ_WAKER_NONE;
    /* Release pairs with the owner's acquire load in waiter_settle / wq_cancel. */
    blz__store(&w->state_, W_NOTIFIED, RELEASE);
}

/* Under the lock: pops the oldest waiter into `out`. False when there is none. */
static inline bool
wq_pop_locked(blz_chan_waitq *q, blz_waker *out)
{
    blz_waiter *n = blz__waitlist_front(wq_list(q));
    if (!n) {
        return false;
    }
    wq_notify_locked(q, wq_waiter_of(n), out);
    return true;
}

/* Wakes (consuming) every waker of the batch. Call without the lock. */
static inline void
wq_batch_wake(wq_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        blz_waker_wake(&b->w[i]);
    }
    b->n = 0;
}

/*
 * Owner, at the start of a poll: turns NOTIFIED into IDLE. Returns true when
 * the waiter is (or may still be) LINKED.
 */
static inline bool
waiter_settle(blz_chan_waiter *w)
{
    uint32_t s = blz__load(&w->state_, ACQUIRE); /* pairs with wq_notify_locked */
    if (s == W_NOTIFIED) {
        blz__store(&w->state_, W_IDLE, RELAXED);
        return false;
    }
    return s == W_LINKED;
}

/*
 * Owner, with the lock held: refreshes the waker of a waiter that is still
 * linked. Returns false when it was notified meanwhile (it is IDLE again and
 * the caller must poll once more).
 */
static inline bool
wq_refresh_locked(blz_chan_waiter *w, const blz_waker *waker)
{
    if (blz__load(&w->state_, RELAXED) != W_LINKED) {
        blz__store(&w->state_, W_IDLE, RELAXED);
        return false;
    }
    blz_waker_set(&w->node_.waker_, waker);
    return true;
}

/*
 * Owner, with the lock held: takes `w` out of the queue whatever its state.
 * Its waker (if it still had one) goes to `drop_out`, to be dropped after the
 * unlock. Returns true when it had been NOTIFIED (and so may owe a wake).
 */
static inline bool
wq_cancel_locked(blz_chan_waitq *q, blz_chan_waiter *w, blz_waker *drop_out)
{
    uint32_t s = blz__load(&w->state_, RELAXED);
    *drop_out = BLZ_WAKER_NONE;
    if (s == W_LINKED) {
        blz__waitlist_remove(&w->node_);
        q->len_--;
        *drop_out = w->node_.waker_;
        w->node_.waker_ = BLZ_WAKER_NONE;
    }
    blz__store(&w->state_, W_IDLE, RELAXED);
    return s == W_NOTIFIED;
}

/*
 * Owner: takes `w` out of the queue whatever its state, and drops its waker.
 * For queues where a notification `w` received and never used owes nobody
 * a wake (broadcast-style wakes, or a single consumer).
 */
static inline void
wq_cancel(blz_chan_waitq *q, blz_chan_waiter *w)
{
    blz_waker drop;
    wq_lock(q);
    (void) wq_cancel_locked(q, w, &drop);
    wq_unlock(q);
    blz_waker_drop(&drop);
}

#endif
