/*
 * The unbounded MPSC channel: a singly linked list of fixed-size segments.
 *
 * Ownership. Senders serialise on q_.lock_ and alone touch tail_seg_ and
 * tail_idx_; the single receiver alone touches head_seg_ and head_idx_. A
 * segment's `published` counts the slots written so far: senders store it
 * with release after copying an item in (under the lock, so it only grows by
 * one at a time), the receiver loads it with acquire before copying out.
 *
 * Growth. When tail_seg_ is full, the sender takes the spare segment (or
 * allocates one), writes the item into its slot 0, and only then links it
 * with a release store of the old segment's `next`; after that store it never
 * touches the old segment again. The receiver, having read every slot of a
 * segment and seen its `next` (acquire), moves on and recycles the old one as
 * the spare (exchange with release, paired with the sender's acquire), or
 * frees it when a spare is already kept. So a segment is reused only after
 * both sides are done with it, and steady ping-pong allocates nothing.
 *
 * Waiting. The receiver checks for items and links its waiter under q_.lock_,
 * the lock senders publish under, so a send either is visible to that check
 * or finds the waiter and wakes it after unlocking. Close sets closed_ to
 * CLOSING under the same lock after the last possible send (sends fail from
 * then on), wakes the receiver, and sets CLOSED as its last touch: a receiver
 * that loads CLOSED (acquire) sees every item and may report -EPIPE once
 * drained, and may then free the channel at once, so close must be done with
 * it. A receiver that finds it CLOSING and empty polls again soon.
 */
#include "blitzio/chan.h"
#include "chan/copy.h"
#include "chan/waitq.h"
#include "core/alloc.h"
#include "core/atomic.h"
#include "core/coop.h"
#include "core/future.h"
#include "rt/current.h"

#include <string.h>

#define SEG_SLOTS 32

enum { UCHAN_OPEN = 0, UCHAN_CLOSING = 1, UCHAN_CLOSED = 2 }; /* closed_ */

struct blz_uchan_seg {
    _Atomic(blz_uchan_seg *) next; /* the following segment; set once, by a sender */
    _Atomic(size_t) published;     /* slots written; grows under the sender lock */
    unsigned char items[];         /* SEG_SLOTS items of elem_size_ bytes */
};

static blz_uchan_seg *
seg_new(blz_uchan *ch)
{
    /* Acquire pairs with the receiver's release when it recycled the segment. */
    blz_uchan_seg *s = blz__exchange(&ch->spare_, NULL, ACQUIRE);
    if (!s) {
        s = blz__malloc(sizeof *s + SEG_SLOTS * ch->elem_size_);
        if (!s) {
            return NULL;
        }
    }
    atomic_init(&s->next, NULL);
    atomic_init(&s->published, 0);
    return s;
}

static void
seg_recycle(blz_uchan *ch, blz_uchan_seg *s)
{
    blz_uchan_seg *expect = NULL;
    /* Release: our reads of the segment happen before a sender reuses it. */
    if (!blz__cas(&ch->spare_, &expect, s, RELEASE, RELAXED)) {
        blz__free(s);
    }
}

int
blz_uchan_init(blz_uchan *ch, size_t elem_size)
{
    if (!ch || elem_size == 0 || elem_size > (SIZE_MAX / 2) / SEG_SLOTS) {
        return -EINVAL;
    }
    memset(ch, 0, sizeof *ch);
    ch->elem_size_ = elem_size;
    atomic_init(&ch->spare_, NULL);
    blz_uchan_seg *s = seg_new(ch);
    if (!s) {
        /* elem_size_ 0 marks "not a channel" for every call (see blz_uchan): without
         * it a send would write into the segment this failure left NULL. */
        ch->elem_size_ = 0;
        return -ENOMEM;
    }
    atomic_init(&ch->q_.lock_, 0);
    blz__waitlist_init(wq_list(&ch->q_));
    ch->tail_seg_ = ch->head_seg_ = s;
    ch->tail_idx_ = ch->head_idx_ = 0;
    atomic_init(&ch->sent_, 0);
    atomic_init(&ch->received_, 0);
    atomic_init(&ch->closed_, 0);
    return 0;
}

void
blz_uchan_deinit(blz_uchan *ch)
{
    if (!ch || !ch->elem_size_) {
        return;
    }
    BLZ_ASSERT(ch->q_.len_ == 0);
    blz_uchan_seg *s = ch->head_seg_;
    while (s) {
        blz_uchan_seg *next = blz__load(&s->next, RELAXED);
        blz__free(s);
        s = next;
    }
    blz__free(blz__exchange(&ch->spare_, NULL, ACQUIRE));
    ch->head_seg_ = ch->tail_seg_ = NULL;
    ch->elem_size_ = 0;
}

int
blz_uchan_send(blz_uchan *ch, const void *item)
{
    if (BLZ_UNLIKELY(!ch || !item || !ch->elem_size_)) {
        return -EINVAL;
    }
    blz_waker w = BLZ_WAKER_NONE;
    wq_lock(&ch->q_);
    if (blz__load(&ch->closed_, RELAXED)) {
        wq_unlock(&ch->q_);
        return -EPIPE;
    }
    blz_uchan_seg *s = ch->tail_seg_;
    size_t idx = ch->tail_idx_;
    if (BLZ_LIKELY(idx < SEG_SLOTS)) {
        copy_item(s->items + idx * ch->elem_size_, item, ch->elem_size_);
        /* Release pairs with the receiver's acquire load of `published`. */
        blz__store(&s->published, idx + 1, RELEASE);
        ch->tail_idx_ = idx + 1;
    } else {
        blz_uchan_seg *n = seg_new(ch);
        if (!n) {
            wq_unlock(&ch->q_);
            return -ENOMEM;
        }
        copy_item(n->items, item, ch->elem_size_);
        blz__store(&n->published, 1, RELAXED); /* published by the release below */
        /* Release pairs with the receiver's acquire load of `next`; last touch of `s`. */
        blz__store(&s->next, n, RELEASE);
        ch->tail_seg_ = n;
        ch->tail_idx_ = 1;
    }
    blz__store(&ch->sent_, blz__load(&ch->sent_, RELAXED) + 1, RELAXED);
    BLZ_PERTURB_POINT();
    bool wake = ch->q_.len_ != 0 && wq_pop_locked(&ch->q_, &w);
    wq_unlock(&ch->q_);
    if (wake) {
        blz_waker_wake(&w);
    }
    return 0;
}

/* Receiver: takes one item if there is one. */
static bool
take(blz_uchan *ch, void *out)
{
    blz_uchan_seg *s = ch->head_seg_;
    size_t idx = ch->head_idx_;
    if (idx == SEG_SLOTS) {
        blz_uchan_seg *n = blz__load(&s->next, ACQUIRE); /* pairs with the sender's release */
        if (!n) {
            return false;
        }
        ch->head_seg_ = n;
        ch->head_idx_ = idx = 0;
        seg_recycle(ch, s);
        s = n;
    }
    if (idx >= blz__load(&s->published, ACQUIRE)) { /* pairs with the sender's release */
        return false;
    }
    copy_item(out, s->items + idx * ch->elem_size_, ch->elem_size_);
    ch->head_idx_ = idx + 1;
    blz__store(&ch->received_, blz__load(&ch->received_, RELAXED) + 1, RELAXED);
    return true;
}

/* 0, -EAGAIN or -EPIPE. */
static int
try_take(blz_uchan *ch, void *out)
{
    if (take(ch, out)) {
        return 0;
    }
    /* Acquire pairs with close's last store: every send before it is visible. */
    if (blz__load(&ch->closed_, ACQUIRE) == UCHAN_CLOSED) {
        return take(ch, out) ? 0 : -EPIPE;
    }
    return -EAGAIN;
}

int
blz_uchan_try_recv(blz_uchan *ch, void *out)
{
    if (BLZ_UNLIKELY(!ch || !out || !ch->elem_size_)) {
        return -EINVAL;
    }
    return try_take(ch, out);
}

/* Under the lock: true when a receive would not find the channel empty. */
static bool
ready_locked(blz_uchan *ch)
{
    if (blz__load(&ch->closed_, RELAXED)) {
        return true;
    }
    blz_uchan_seg *s = ch->head_seg_;
    if (ch->head_idx_ == SEG_SLOTS) {
        return blz__load(&s->next, RELAXED) != NULL;
    }
    return ch->head_idx_ < blz__load(&s->published, RELAXED);
}

static blz_poll
urecv_poll(blz_future *base, blz_context *cx)
{
    blz_uchan_recv_future *f = (blz_uchan_recv_future *) base;
    if (!blz__coop_proceed(cx)) {
        return BLZ_PENDING;
    }
    blz_uchan *ch = f->chan_;
    blz_chan_waiter *w = &f->waiter_;
    bool linked = waiter_settle(w);
    for (;;) {
        int r = try_take(ch, f->out_);
        if (r != -EAGAIN) {
            if (linked) {
                wq_cancel(&ch->q_, w);
            }
            base->result = r;
            return blz__future_finished(base);
        }
        if (blz__load(&ch->closed_, RELAXED) == UCHAN_CLOSING) {
            /* Close has woken us or will not: it is a few steps from CLOSED. */
            blz_waker_wake_by_ref(cx->waker);
            return BLZ_PENDING;
        }
        wq_lock(&ch->q_);
        if (ready_locked(ch)) {
            wq_unlock(&ch->q_);
            continue;
        }
        if (linked && !wq_refresh_locked(w, cx->waker)) {
            linked = false; /* woken meanwhile: try again */
            wq_unlock(&ch->q_);
            continue;
        }
        if (!linked) {
            wq_push_locked(&ch->q_, w, cx->waker);
        }
        wq_unlock(&ch->q_);
        return BLZ_PENDING;
    }
}

static void
urecv_drop(blz_future *base)
{
    blz_uchan_recv_future *f = (blz_uchan_recv_future *) base;
    if (blz__load(&f->waiter_.state_, ACQUIRE) == W_IDLE) {
        return;
    }
    /* One receiver: a dropped notification owes nobody. */
    wq_cancel(&f->chan_->q_, &f->waiter_);
}

static const blz_future_vtable urecv_vtable = {urecv_poll, urecv_drop};
void
blz_uchan_recv_fut(blz_uchan *ch, void *out, blz_uchan_recv_future *f)
{
    if (!f) {
        return;
    }
    bool ok = ch && out && ch->elem_size_;
    blz__future_init_checked(&f->base, &urecv_vtable, ok);
    f->chan_ = ch;
    f->out_ = out;
    waiter_init(&f->waiter_);
}

int
blz_uchan_recv(blz_uchan *ch, void *out)
{
    if (!ch || !out || !ch->elem_size_) {
        return -EINVAL;
    }
    if (blz__await_fast_ok()) { /* see rt/current.h */
        int r = try_take(ch, out);
        if (r != -EAGAIN) {
            return r;
        }
    }
    blz_uchan_recv_future f;
    blz_uchan_recv_fut(ch, out, &f);
    return blz_await(&f.base);
}

void
blz_uchan_close(blz_uchan *ch)
{
    if (!ch || !ch->elem_size_) {
        return;
    }
    wq_batch b;
    b.n = 0;
    wq_lock(&ch->q_);
    if (blz__load(&ch->closed_, RELAXED) != UCHAN_OPEN) {
        wq_unlock(&ch->q_);
        return; /* another close did it, or is doing it */
    }
    blz__store(&ch->closed_, UCHAN_CLOSING, RELAXED); /* sends fail from here */
    bool more;
    do {
        while (b.n < WQ_BATCH && wq_pop_locked(&ch->q_, &b.w[b.n])) {
            b.n++;
        }
        more = ch->q_.len_ != 0;
        wq_unlock(&ch->q_);
        wq_batch_wake(&b);
        if (more) {
            wq_lock(&ch->q_);
        }
    } while (more);
    /* The last touch (see "Waiting"). Release pairs with try_take's acquire
     * load, after our lock that followed every send. */
    blz__store(&ch->closed_, UCHAN_CLOSED, RELEASE);
}

size_t
blz_uchan_len(const blz_uchan *ch)
{
    if (!ch) {
        return 0;
    }
    blz_uchan *m = (blz_uchan *) ch;
    size_t r = blz__load(&m->received_, ACQUIRE);
    size_t s = blz__load(&m->sent_, ACQUIRE);
    return s > r ? s - r : 0;
}
