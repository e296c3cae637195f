/*
 * Broadcast: a ring of the last cap_ messages that every receiver reads at
 * its own pace.
 *
 * Messages are numbered 0, 1, 2, ...; message n lives in slot n & (cap_ - 1)
 * until message n + cap_ overwrites it. tail_ is the number of the next
 * message. Each slot is a sequence lock with a stamp:
 *   2n + 1   message n is being written
 *   2n + 2   message n is complete
 * Senders serialise on q_.lock_: store the odd stamp, release fence, write
 * the item words (relaxed atomics), store the even stamp (release), then
 * tail_ (release). A receiver expecting message n loads the stamp (acquire),
 * copies the words, acquire fence, and re-loads the stamp: equal to 2n + 2
 * both times means the copy is whole. A larger stamp means message n was
 * overwritten: the receiver lagged and resumes at the oldest kept message.
 * Receivers take no lock and write nothing shared, so any number can read.
 *
 * Waiting. A receiver links its waiter under q_.lock_ after checking, under
 * that lock, that its message has not been sent; its key_ is that message's
 * number (= tail_ then), so the queue is ordered by key. A sender, after
 * publishing message n under the lock, wakes the waiters with key_ <= n in
 * batches; waiters that link later wait for n + 1 and are left alone, so the
 * wake loop ends. Unsubscribe marks the receiver closed and wakes its waiters.
 */
#include "blitzio/chan.h"
#include "chan/waitq.h"
#include "chan/words.h"
#include "core/alloc.h"
#include "core/atomic.h"
#include "core/coop.h"
#include "core/future.h"
#include "rt/current.h"

#include <string.h>

#define SLOT_HDR 8

static inline blz__word *
slot_stamp(const blz_broadcast *b, uint64_t n)
{
    return (blz__word *) (void *) (b->buf_ + (size_t) (n & (b->cap_ - 1)) * b->stride_);
}

static inline blz__word *
slot_words(blz__word *stamp)
{
    return (blz__word *) (void *) ((unsigned char *) stamp + SLOT_HDR);
}

int
blz_broadcast_init(blz_broadcast *b, size_t elem_size, size_t capacity)
{
    if (!b || elem_size == 0 || capacity == 0) {
        return -EINVAL;
    }
    if (elem_size > (SIZE_MAX >> 4) || capacity > (SIZE_MAX >> 4)) {
        return -EINVAL;
    }
    size_t cap = 1;
    while (cap < capacity) {
        cap <<= 1;
    }
    size_t stride = SLOT_HDR + 8 * words_for(elem_size);
    if (cap > SIZE_MAX / stride) {
        return -EINVAL;
    }
    unsigned char *buf = blz__malloc(cap * stride);
    if (!buf) {
        return -ENOMEM;
    }
    memset(b, 0, sizeof *b);
    b->buf_ = buf;
    b->cap_ = cap;
    b->elem_size_ = elem_size;
    b->stride_ = stride;
    for (size_t i = 0; i < cap; i++) {
        blz__word *s = (blz__word *) (void *) (buf + i * stride);
        atomic_init(s, 0); /* no message yet */
        for (size_t k = 0; k < words_for(elem_size); k++) {
            atomic_init(&slot_words(s)[k], 0);
        }
    }
    atomic_init(&b->tail_, 0);
    atomic_init(&b->closed_, 0);
    atomic_init(&b->receivers_, 0);
    atomic_init(&b->q_.lock_, 0);
    blz__waitlist_init(wq_list(&b->q_));
    return 0;
}

void
blz_broadcast_deinit(blz_broadcast *b)
{
    if (!b || !b->buf_) {
        return;
    }
    BLZ_ASSERT(b->q_.len_ == 0);
    blz__free(b->buf_);
    b->buf_ = NULL;
}

size_t
blz_broadcast_capacity(const blz_broadcast *b)
{
    return b ? b->cap_ : 0;
}

size_t
blz_broadcast_receivers(const blz_broadcast *b)
{
    return b ? blz__load(&((blz_broadcast *) b)->receivers_, RELAXED) : 0;
}

int
blz_broadcast_subscribe(blz_broadcast *b, blz_broadcast_rx *rx)
{
    if (!b || !rx || !b->buf_) {
        return -EINVAL;
    }
    if (blz__load(&b->closed_, ACQUIRE)) {
        return -EPIPE;
    }
    rx->bc_ = b;
    rx->next_ = blz__load(&b->tail_, ACQUIRE);
    rx->missed_ = 0;
    atomic_init(&rx->closed_, 0);
    rx->pad_ = 0;
    blz__fetch_add(&b->receivers_, 1, RELAXED);
    return 0;
}

/*
 * Wakes, in batches, the waiters of `b` waiting for message `n` or earlier.
 * Without the lock. Locks again only while such a waiter is still linked: a
 * receiver woken may free `b` at once, so nothing touches it after the last
 * wake.
 */
static void
wake_upto(blz_broadcast *b, uint64_t n)
{
    wq_batch batch;
    batch.n = 0;
    for (;;) {
        wq_lock(&b->q_);
        blz_waiter *node;
        bool more = false;
        while ((node = blz__waitlist_front(wq_list(&b->q_))) != NULL &&
               wq_waiter_of(node)->key_ <= n) {
            if (batch.n == WQ_BATCH) {
                more = true;
                break;
            }
            wq_notify_locked(&b->q_, wq_waiter_of(node), &batch.w[batch.n++]);
        }
        wq_unlock(&b->q_);
        wq_batch_wake(&batch);
        if (!more) {
            return;
        }
    }
}

int
blz_broadcast_send(blz_broadcast *b, const void *item)
{
    if (BLZ_UNLIKELY(!b || !item || !b->buf_)) {
        return -EINVAL;
    }
    wq_lock(&b->q_);
    if (blz__load(&b->closed_, RELAXED)) {
        wq_unlock(&b->q_);
        return -EPIPE;
    }
    uint64_t n = blz__load(&b->tail_, RELAXED); /* only senders write it, under the lock */
    blz__word *s = slot_stamp(b, n);
    blz__store(s, 2 * n + 1, RELAXED);
    /* Orders the odd stamp before the item words, for readers' acquire fence. */
    atomic_thread_fence(RELEASE);
    words_store(slot_words(s), item, b->elem_size_);
    BLZ_PERTURB_POINT();
    /* Release pairs with the receivers' acquire stamp load. */
    blz__store(s, 2 * n + 2, RELEASE);
    blz__store(&b->tail_, n + 1, RELEASE);
    bool waiters = b->q_.len_ != 0;
    /* Read before the wakes, after which `b` may be gone. */
    size_t r = blz__load(&b->receivers_, RELAXED);
    wq_unlock(&b->q_);
    if (waiters) {
        wake_upto(b, n);
    }
    return r > INT32_MAX ? INT32_MAX : (int) r;
}

/* One attempt: 0, -EAGAIN, -EOVERFLOW or -EPIPE. Owner of rx only. */
static BLZ_NOINLINE int
bc_take_slow(blz_broadcast_rx *rx, void *out)
{
    if (blz__load(&rx->closed_, ACQUIRE)) {
        return -EPIPE;
    }
    blz_broadcast *b = rx->bc_;
    uint64_t n = rx->next_;
    blz__word *s = slot_stamp(b, n);
    uint64_t want = 2 * n + 2;
    bool after_close = false;
    for (;;) {
        /* Acquire pairs with the sender's release store of the even stamp. */
        uint64_t s1 = blz__load(s, ACQUIRE);
        if (s1 == want) {
            words_load(out, slot_words(s), b->elem_size_);
            atomic_thread_fence(ACQUIRE); /* pairs with the sender's release fence */
            if (blz__load(s, RELAXED) == want) {
                rx->next_ = n + 1;
                return 0;
            }
            break; /* overwritten while we copied: we lagged */
        }
        if (s1 > want) {
            break; /* overwritten: we lagged */
        }
        /* Message n is not complete. After a close (acquire) every send is done and
         * visible, so one more look decides between the message and -EPIPE. */
        if (after_close) {
            return -EPIPE;
        }
        if (!blz__load(&b->closed_, ACQUIRE)) {
            return -EAGAIN;
        }
        after_close = true;
    }
    uint64_t t = blz__load(&b->tail_, ACQUIRE);
    uint64_t oldest = t > b->cap_ ? t - b->cap_ : 0;
    if (oldest <= n) {
        oldest = n + 1; /* message n itself is gone */
    }
    rx->missed_ = oldest - n;
    rx->next_ = oldest;
    return -EOVERFLOW;
}

/*
 * bc_take_slow's common case, small enough to inline: message n is there and
 * stays whole while we copy it. Anything else (not sent yet, lagged, closed)
 * re-runs the whole attempt out of line; nothing was changed before that.
 * Not forced inline: GCC's -Wtsan rejects the fence in a forced-inline copy.
 */
static int
bc_take(blz_broadcast_rx *rx, void *out)
{
    if (BLZ_UNLIKELY(blz__load(&rx->closed_, ACQUIRE))) {
        return -EPIPE;
    }
    blz_broadcast *b = rx->bc_;
    uint64_t n = rx->next_;
    blz__word *s = slot_stamp(b, n);
    uint64_t want = 2 * n + 2;
    /* The same loads, fence and re-check as in bc_take_slow. */
    if (BLZ_LIKELY(blz__load(s, ACQUIRE) == want)) {
        words_load(out, slot_words(s), b->elem_size_);
        atomic_thread_fence(ACQUIRE);
        if (BLZ_LIKELY(blz__load(s, RELAXED) == want)) {
            rx->next_ = n + 1;
            return 0;
        }
    }
    return bc_take_slow(rx, out);
}

int
blz_broadcast_try_recv(blz_broadcast_rx *rx, void *out)
{
    if (BLZ_UNLIKELY(!rx || !out || !rx->bc_ || !rx->bc_->buf_)) {
        return -EINVAL;
    }
    return bc_take(rx, out);
}

uint64_t
blz_broadcast_rx_missed(const blz_broadcast_rx *rx)
{
    return rx ? rx->missed_ : 0;
}

static blz_poll
bc_poll(blz_future *base, blz_context *cx)
{
    blz_broadcast_recv_future *f = (blz_broadcast_recv_future *) base;
    if (!blz__coop_proceed(cx)) {
        return BLZ_PENDING;
    }
    blz_broadcast_rx *rx = f->rx_;
    blz_broadcast *b = rx->bc_;
    blz_chan_waiter *w = &f->waiter_;
    bool linked = waiter_settle(w);
    for (;;) {
        int r = bc_take(rx, f->out_);
        if (r != -EAGAIN) {
            if (linked) {
                wq_cancel(&b->q_, w);
            }
            base->result = r;
            return blz__future_finished(base);
        }
        wq_lock(&b->q_);
        /* Under the lock no send is half done: check once more before sleeping. */
        if (blz__load(&b->tail_, RELAXED) != rx->next_ || blz__load(&b->closed_, RELAXED) ||
            blz__load(&rx->closed_, RELAXED)) {
            wq_unlock(&b->q_);
            continue;
        }
        if (linked && !wq_refresh_locked(w, cx->waker)) {
            linked = false; /* woken meanwhile */
            wq_unlock(&b->q_);
            continue;
        }
        if (!linked) {
            w->key_ = rx->next_;
            wq_push_locked(&b->q_, w, cx->waker);
        }
        wq_unlock(&b->q_);
        return BLZ_PENDING;
    }
}

static void
bc_drop(blz_future *base)
{
    blz_broadcast_recv_future *f = (blz_broadcast_recv_future *) base;
    if (blz__load(&f->waiter_.state_, ACQUIRE) == W_IDLE) {
        return;
    }
    blz_broadcast *b = f->rx_->bc_;
    /* Every waiter for a message is woken, so a dropped notification owes nobody. */
    wq_cancel(&b->q_, &f->waiter_);
}

static const blz_future_vtable bc_vtable = {bc_poll, bc_drop};
void
blz_broadcast_recv_fut(blz_broadcast_rx *rx, void *out, blz_broadcast_recv_future *f)
{
    if (!f) {
        return;
    }
    bool ok = rx && out && rx->bc_ && rx->bc_->buf_;
    blz__future_init_checked(&f->base, &bc_vtable, ok);
    f->rx_ = rx;
    f->out_ = out;
    waiter_init(&f->waiter_);
}

int
blz_broadcast_recv(blz_broadcast_rx *rx, void *out)
{
    if (!rx || !out || !rx->bc_ || !rx->bc_->buf_) {
        return -EINVAL;
    }
    if (blz__await_fast_ok()) { /* see rt/current.h */
        int r = bc_take(rx, out);
        if (r != -EAGAIN) {
            return r;
        }
    }
    blz_broadcast_recv_future f;
    blz_broadcast_recv_fut(rx, out, &f);
    return blz_await(&f.base);
}

void
blz_broadcast_unsubscribe(blz_broadcast_rx *rx)
{
    if (!rx || !rx->bc_) {
        return;
    }
    if (blz__exchange(&rx->closed_, 1, ACQ_REL)) {
        return;
    }
    blz_broadcast *b = rx->bc_;
    blz__fetch_sub(&b->receivers_, 1, RELAXED);
    /* Wake the receives pending on rx: they will see it closed. */
    wq_batch batch;
    batch.n = 0;
    bool more;
    do {
        wq_lock(&b->q_);
        blz_waiter *node = blz__waitlist_front(wq_list(&b->q_));
        blz_waiter *end = &wq_list(&b->q_)->head;
        more = false;
        while (node && node != end) {
            blz_waiter *next = node->next_;
            blz_broadcast_recv_future *f =
                blz__container_of(wq_waiter_of(node), blz_broadcast_recv_future, waiter_);
            if (f->rx_ == rx) {
                if (batch.n == WQ_BATCH) {
                    more = true; /* one still linked: relocking after the wakes is safe */
                    break;
                }
                wq_notify_locked(&b->q_, wq_waiter_of(node), &batch.w[batch.n++]);
            }
            node = next;
        }
        wq_unlock(&b->q_);
        wq_batch_wake(&batch);
    } while (more);
}

void
blz_broadcast_close(blz_broadcast *b)
{
    if (!b || !b->buf_) {
        return;
    }
    wq_lock(&b->q_);
    bool was = blz__load(&b->closed_, RELAXED) != 0;
    /* Release pairs with bc_take's acquire load: every send is complete and visible. */
    blz__store(&b->closed_, 1, RELEASE);
    wq_unlock(&b->q_);
    if (!was) {
        wake_upto(b, UINT64_MAX);
    }
}
