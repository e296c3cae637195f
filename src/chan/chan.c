/*
 * The bounded MPMC channel: a Vyukov ring with a sequence stamp per slot.
 *
 * Positions. A position is lap * lap_ + index (index < cap_, lap_ a power of
 * two >= max(cap_, 2)), so advancing past the last index jumps to the next
 * lap and any capacity works without a division. tail_ holds the next send
 * position, head_ the next receive position, each shifted left by 2 to make
 * room for flags:
 *
 *   tail_: bit 0 RECV_WAITING (the receive queue is not empty), bit 1 CLOSED
 *   head_: bit 0 SEND_WAITING (the send queue is not empty), bit 1 CLOSE_DONE
 *
 * Slots. The stamp of slot i says what the slot is ready for:
 *   stamp == p       empty, ready for the send at position p
 *   stamp == p + 1   holds the item sent at p, ready for the receive at p
 * A sender claims p by CAS on tail_ (which fails if CLOSED or a flag changed),
 * copies the item in and stores p + 1 (release; the receiver's acquire load
 * of the stamp pairs with it). A receiver claims p by CAS on head_, copies the
 * item out and stores p + lap_ (release; pairs with the next sender's acquire).
 * Between claim and stamp store a slot is "busy": claimed, not yet released.
 *
 * Waking. The waiting flags live in the very words the other side CASes, so a
 * sender learns "receivers wait" from its own claim, with no extra fence. A
 * waiter links itself (under the queue lock), sets the flag with an RMW, then
 * re-runs the step: any claim ordered after its RMW sees the flag and wakes a
 * waiter after releasing its slot; any claim ordered before is visible to the
 * re-check, either as a released slot (take it) or as a busy one (poll again
 * soon: the waiter wakes itself, since that claimer will not). A flag is set
 * iff its queue is non-empty, both changed under that queue's lock.
 *
 * Each release that saw the flag wakes one waiter (the oldest). A woken
 * waiter always retries; if it fails it links again. A waiter that was woken
 * and is then dropped without retrying passes the wake to the next waiter,
 * so "one wake per freed slot / published item" is never lost with it; so
 * does a waiter that succeeds while still linked, since the wake it got may
 * be for another item than the one its re-check took.
 *
 * Close sets CLOSED in tail_ (so no claim can follow it), then wakes every
 * waiter of both queues, then sets CLOSE_DONE in head_, its last touch.
 * Receivers drain what was claimed before the close; -EPIPE comes only when
 * head_ has caught up with tail_, and, like is_closed, only once CLOSE_DONE
 * is set: a receiver that sees the channel closed may free it at once, while
 * the closer is still inside close. A step that finds CLOSED without
 * CLOSE_DONE is busy (the closer is a few instructions from done).
 *
 * Busy slots: a claimer holds a slot only while it copies one item, so both
 * tiers wait a busy slot out with a short spin. A poll that still finds it
 * busy wakes itself (the claimer may have missed our flag) and, every few
 * polls in a row, yields the thread: the claimer was preempted, and spinning
 * through the scheduler until the OS runs it again cost milliseconds.
 *
 * Tiers: the try tier runs one step (spinning briefly on a busy slot); the
 * future tier's poll holds all of the waiting logic; the await tier runs one
 * step directly when that is indistinguishable from awaiting (blz__await_fast_ok in rt/current.h),
 * else awaits the future.
 */
#include "blitzio/chan.h"

#include "chan/copy.h"
#include "chan/waitq.h"
#include "core/alloc.h"
#include "core/atomic.h"
#include "core/coop.h"
#include "core/future.h"
#include "os/unix/sys.h"
#include "rt/current.h"

#include <string.h>

#define F_WAIT       ((size_t) 1) /* tail_: receivers wait; head_: senders wait */
#define F_CLOSED     ((size_t) 2) /* tail_ only */
#define F_CLOSE_DONE ((size_t) 2) /* head_ only: close is done with the channel */
#define F_MASK       ((size_t) 3)
#define SHIFT        2

#define SLOT_HDR   8  /* the stamp, padded so items start 8-aligned */
#define BUSY_SPINS 32 /* how long to wait out a busy slot before -EAGAIN or a re-poll */
#define BUSY_POLLS 4  /* re-polls of a busy slot before yielding the thread */

/* Outcome of one attempt. */
enum { ST_OK = 0, ST_WAIT, ST_BUSY, ST_CLOSED };

typedef _Atomic(size_t) stamp_t;

static inline stamp_t *
slot_at(const blz_chan *ch, size_t pos)
{
    return (stamp_t *) (void *) (ch->buf_ + (pos & (ch->lap_ - 1)) * ch->stride_);
}

static inline unsigned char *
slot_item(stamp_t *s)
{
    return (unsigned char *) (void *) s + SLOT_HDR;
}

static inline size_t
next_pos(const blz_chan *ch, size_t p)
{
    size_t idx = p & (ch->lap_ - 1);
    return idx + 1 < ch->cap_ ? p + 1 : (p & ~(ch->lap_ - 1)) + ch->lap_;
}

/* Signed distance between positions (they only grow; wrap-around is ~2^61 laps away). */
static inline ptrdiff_t
pos_diff(size_t a, size_t b)
{
    return (ptrdiff_t) (a - b);
}

/* ---- waking -------------------------------------------------------------- */

/* Wakes the oldest waiter of `q`; clears `word`'s flag when the queue empties. */
static void
wake_one(blz_chan_waitq *q, _Atomic(size_t) *word)
{
    blz_waker w = BLZ_WAKER_NONE;
    wq_lock(q);
    bool got = wq_pop_locked(q, &w);
    if (q->len_ == 0) {
        /* Under the lock, so the flag cannot disagree with the queue for long. */
        blz__fetch_and(word, ~F_WAIT, RELAXED);
    }
    wq_unlock(q);
    if (got) {
        blz_waker_wake(&w);
    }
}

static void
wake_all(blz_chan_waitq *q, _Atomic(size_t) *word)
{
    wq_batch b;
    b.n = 0;
    for (;;) {
        wq_lock(q);
        while (b.n < WQ_BATCH && wq_pop_locked(q, &b.w[b.n])) {
            b.n++;
        }
        bool more = q->len_ != 0;
        if (!more) {
            blz__fetch_and(word, ~F_WAIT, RELAXED);
        }
        wq_unlock(q);
        wq_batch_wake(&b);
        if (!more) {
            return;
        }
    }
}

/* Links `w` into `q` and raises the flag in `word` (see the file comment). */
static void
link_waiter(blz_chan_waitq *q, _Atomic(size_t) *word, blz_chan_waiter *w, const blz_waker *waker)
{
    wq_lock(q);
    wq_push_locked(q, w, waker);
    /* An RMW: every claim ordered after it sees the flag (same location). */
    blz__fetch_or(word, F_WAIT, RELAXED);
    BLZ_PERTURB_POINT();
    wq_unlock(q);
}

/* Owner: removes `w` whatever its state; passes a notification on when `forward`. */
static void
unlink_waiter(blz_chan_waitq *q, _Atomic(size_t) *word, blz_chan_waiter *w, bool forward)
{
    blz_waker drop, next = BLZ_WAKER_NONE;
    wq_lock(q);
    bool notified = wq_cancel_locked(q, w, &drop);
    if (notified && forward) {
        (void) wq_pop_locked(q, &next);
    }
    if (q->len_ == 0) {
        blz__fetch_and(word, ~F_WAIT, RELAXED);
    }
    wq_unlock(q);
    blz_waker_drop(&drop);
    blz_waker_wake(&next);
}

/* ---- one attempt each way ------------------------------------------------ */

/* A step that found CLOSED: -EPIPE once close is done with the channel (see
 * the file comment), busy until then. */
static BLZ_ALWAYS_INLINE int
closed_step(blz_chan *ch)
{
    /* Acquire pairs with close's release: nothing of it is left to run. */
    return (blz__load(&ch->head_, ACQUIRE) & F_CLOSE_DONE) ? ST_CLOSED : ST_BUSY;
}

/*
 * After a claim: the item is copied, then the stamp published, then a waiter
 * woken. Items of 4, 8 or 16 bytes are copied inline; any other size goes to
 * an out-of-line twin that copies and then publishes. So nothing on the fast
 * path lives across a call, and the await tier's send and receive save no
 * registers (four pushes and pops each with the copy inline).
 */
static BLZ_ALWAYS_INLINE void
send_publish(blz_chan *ch, stamp_t *s, size_t p, size_t t)
{
    BLZ_PERTURB_POINT();
    /* Release pairs with the acquire stamp load in recv_step. */
    blz__store(s, p + 1, RELEASE);
    if (t & F_WAIT) {
        wake_one(&ch->recvq_, &ch->tail_);
    }
}

static BLZ_NOINLINE void
send_publish_any(blz_chan *ch, stamp_t *s, size_t p, size_t t, const void *item)
{
    memcpy(slot_item(s), item, ch->elem_size_);
    send_publish(ch, s, p, t);
}

static BLZ_ALWAYS_INLINE void
recv_release(blz_chan *ch, stamp_t *s, size_t p, size_t h)
{
    BLZ_PERTURB_POINT();
    /* Release pairs with the acquire stamp load of the next sender here. */
    blz__store(s, p + ch->lap_, RELEASE);
    if (h & F_WAIT) {
        wake_one(&ch->sendq_, &ch->head_);
    }
}

static BLZ_NOINLINE void
recv_release_any(blz_chan *ch, stamp_t *s, size_t p, size_t h, void *out)
{
    memcpy(out, slot_item(s), ch->elem_size_);
    recv_release(ch, s, p, h);
}

static BLZ_ALWAYS_INLINE int
send_step(blz_chan *ch, const void *item)
{
    size_t t = blz__load(&ch->tail_, RELAXED);
    for (;;) {
        if (t & F_CLOSED) {
            return closed_step(ch);
        }
        size_t p = t >> SHIFT;
        stamp_t *s = slot_at(ch, p);
        /* Acquire pairs with the release stamp store of the receiver that freed the slot. */
        size_t stamp = blz__load(s, ACQUIRE);
        if (stamp == p) {
            size_t nt = (next_pos(ch, p) << SHIFT) | (t & F_MASK);
            BLZ_PERTURB_POINT();
            /* Only arbitrates among senders; the stamps carry the data ordering. */
            if (blz__cas_weak(&ch->tail_, &t, nt, RELAXED, RELAXED)) {
                if (copy_small(slot_item(s), item, ch->elem_size_)) {
                    send_publish(ch, s, p, t);
                } else {
                    send_publish_any(ch, s, p, t, item);
                }
                return ST_OK;
            }
            continue;
        }
        if (pos_diff(stamp, p) < 0) {
            /* The slot still holds the item of position p - lap_: full, or being received. */
            size_t h = blz__load(&ch->head_, RELAXED) >> SHIFT;
            return pos_diff(h, p - ch->lap_) > 0 ? ST_BUSY : ST_WAIT;
        }
        t = blz__load(&ch->tail_, RELAXED); /* another sender got p first */
    }
}

static BLZ_ALWAYS_INLINE int
recv_step(blz_chan *ch, void *out)
{
    size_t h = blz__load(&ch->head_, RELAXED);
    for (;;) {
        size_t p = h >> SHIFT;
        stamp_t *s = slot_at(ch, p);
        /* Acquire pairs with the release stamp store in send_step. */
        size_t stamp = blz__load(s, ACQUIRE);
        if (stamp == p + 1) {
            size_t nh = (next_pos(ch, p) << SHIFT) | (h & F_MASK);
            BLZ_PERTURB_POINT();
            if (blz__cas_weak(&ch->head_, &h, nh, RELAXED, RELAXED)) {
                if (copy_small(out, slot_item(s), ch->elem_size_)) {
                    recv_release(ch, s, p, h);
                } else {
                    recv_release_any(ch, s, p, h, out);
                }
                return ST_OK;
            }
            continue;
        }
        if (pos_diff(stamp, p + 1) < 0) {
            /* Nothing published at p: empty, or a sender claimed p and is copying. */
            size_t t = blz__load(&ch->tail_, RELAXED);
            if ((t >> SHIFT) != p) {
                return ST_BUSY;
            }
            return (t & F_CLOSED) ? closed_step(ch) : ST_WAIT;
        }
        h = blz__load(&ch->head_, RELAXED); /* another receiver got p first */
    }
}

/* One step (a send of `item`, or a receive into `out`) with a busy slot
 * waited out by a short spin: its claimer copies one item between claim and
 * stamp, so it is usually done by then. ST_BUSY if it is not. */
static BLZ_ALWAYS_INLINE int
step_past_busy(blz_chan *ch, bool sending, const void *item, void *out)
{
    int st = sending ? send_step(ch, item) : recv_step(ch, out);
    for (int i = 0; BLZ_UNLIKELY(st == ST_BUSY) && i < BUSY_SPINS; i++) {
        blz__cpu_relax();
        st = sending ? send_step(ch, item) : recv_step(ch, out);
    }
    return st;
}

/* ---- try tier ------------------------------------------------------------ */

int
blz_chan_try_send(blz_chan *ch, const void *item)
{
    if (BLZ_UNLIKELY(!ch || !item || !ch->buf_)) {
        return -EINVAL;
    }
    int st = step_past_busy(ch, true, item, NULL);
    return st == ST_OK ? 0 : st == ST_CLOSED ? -EPIPE : -EAGAIN;
}

int
blz_chan_try_recv(blz_chan *ch, void *out)
{
    if (BLZ_UNLIKELY(!ch || !out || !ch->buf_)) {
        return -EINVAL;
    }
    int st = step_past_busy(ch, false, NULL, out);
    return st == ST_OK ? 0 : st == ST_CLOSED ? -EPIPE : -EAGAIN;
}

/* ---- future tier --------------------------------------------------------- */

static const void *
send_item(blz_chan_send_future *f)
{
    return f->item_ ? f->item_ : (const void *) ((const char *) f + f->item_off_);
}

static void *
recv_out(blz_chan_recv_future *f)
{
    return f->out_ ? f->out_ : (void *) ((char *) f + f->out_off_);
}

/*
 * A slot stayed busy through BUSY_SPINS looks, so its claimer, a thread on
 * another core, was most likely preempted between claim and stamp. Polling
 * again at once would spin through the scheduler (each poll a few dozen ns,
 * for as long as the OS keeps the claimer off a core: milliseconds). After
 * BUSY_POLLS such polls in a row, give the CPU away so the claimer can run.
 */
static void
busy_backoff(blz_chan_waiter *w)
{
    if (++w->busy_ >= BUSY_POLLS) {
        w->busy_ = 0;
        blz__sys_yield();
    }
}

/*
 * The shared shape of both polls: a send when `item` is set, else a receive
 * into `out`. `linked` says whether the waiter is (or may still be) queued; `fresh` whether it was
 * linked in this very poll, after which a failed step needs no waker refresh.
 */
static blz_poll
chan_poll(blz_future *base, blz_context *cx, blz_chan *ch, blz_chan_waiter *w, const void *item,
          void *out)
{
    bool sending = item != NULL;
    if (!blz__coop_proceed(cx)) {
        return BLZ_PENDING;
    }
    blz_chan_waitq *q = sending ? &ch->sendq_ : &ch->recvq_;
    _Atomic(size_t) *word = sending ? &ch->head_ : &ch->tail_;
    bool linked = waiter_settle(w);
    bool fresh = false;
    for (;;) {
        int st = step_past_busy(ch, sending, item, out);
        if (st == ST_OK || st == ST_CLOSED) {
            w->busy_ = 0;
            if (linked) {
                /* A wake that reached us during this poll may be for another
                 * item (or slot) than the one we took: one our re-check after
                 * linking found, which nobody was woken for. Keeping it would
                 * leave the next waiter asleep beside a ready item, so pass
                 * it on; when it was ours, the next waiter polls once for
                 * nothing. Only a poll that was linked pays this. */
                unlink_waiter(q, word, w, true);
            }
            base->result = st == ST_OK ? 0 : -EPIPE;
            return blz__future_finished(base);
        }
        if (!linked) {
            link_waiter(q, word, w, cx->waker);
            linked = fresh = true;
            continue; /* re-check now that the flag is up */
        }
        if (!fresh) {
            wq_lock(q);
            bool still = wq_refresh_locked(w, cx->waker);
            wq_unlock(q);
            if (!still) {
                linked = false; /* woken meanwhile: try again */
                continue;
            }
        }
        if (st == ST_BUSY) {
            /* The claimer of that slot may not have seen our flag: poll again soon. */
            busy_backoff(w);
            blz_waker_wake_by_ref(cx->waker);
        } else {
            w->busy_ = 0;
        }
        return BLZ_PENDING;
    }
}

static blz_poll
send_poll(blz_future *base, blz_context *cx)
{
    blz_chan_send_future *f = (blz_chan_send_future *) base;
    return chan_poll(base, cx, f->chan_, &f->waiter_, send_item(f), NULL);
}

static blz_poll
recv_poll(blz_future *base, blz_context *cx)
{
    blz_chan_recv_future *f = (blz_chan_recv_future *) base;
    return chan_poll(base, cx, f->chan_, &f->waiter_, NULL, recv_out(f));
}

static void
send_drop(blz_future *base)
{
    blz_chan_send_future *f = (blz_chan_send_future *) base;
    if (blz__load(&f->waiter_.state_, ACQUIRE) != W_IDLE) {
        unlink_waiter(&f->chan_->sendq_, &f->chan_->head_, &f->waiter_, true);
    }
}

static void
recv_drop(blz_future *base)
{
    blz_chan_recv_future *f = (blz_chan_recv_future *) base;
    if (blz__load(&f->waiter_.state_, ACQUIRE) != W_IDLE) {
        unlink_waiter(&f->chan_->recvq_, &f->chan_->tail_, &f->waiter_, true);
    }
}

static const blz_future_vtable send_vtable = {send_poll, send_drop};
static const blz_future_vtable recv_vtable = {recv_poll, recv_drop};
void
blz_chan_send_fut(blz_chan *ch, const void *item, blz_chan_send_future *f)
{
    if (!f) {
        return;
    }
    bool ok = ch && item && ch->buf_;
    blz__future_init_checked(&f->base, &send_vtable, ok);
    f->chan_ = ch;
    f->item_ = item;
    f->item_off_ = 0;
    waiter_init(&f->waiter_);
}

void
blz_chan_send_fut_inline(blz_chan *ch, size_t item_offset, blz_chan_send_future *f)
{
    if (!f) {
        return;
    }
    bool ok = ch && ch->buf_ && item_offset >= sizeof *f;
    blz__future_init_checked(&f->base, &send_vtable, ok);
    f->chan_ = ch;
    f->item_ = NULL;
    f->item_off_ = item_offset;
    waiter_init(&f->waiter_);
}

void
blz_chan_recv_fut(blz_chan *ch, void *out, blz_chan_recv_future *f)
{
    if (!f) {
        return;
    }
    bool ok = ch && out && ch->buf_;
    blz__future_init_checked(&f->base, &recv_vtable, ok);
    f->chan_ = ch;
    f->out_ = out;
    f->out_off_ = 0;
    waiter_init(&f->waiter_);
}

void
blz_chan_recv_fut_inline(blz_chan *ch, size_t out_offset, blz_chan_recv_future *f)
{
    if (!f) {
        return;
    }
    bool ok = ch && ch->buf_ && out_offset >= sizeof *f;
    blz__future_init_checked(&f->base, &recv_vtable, ok);
    f->chan_ = ch;
    f->out_ = NULL;
    f->out_off_ = out_offset;
    waiter_init(&f->waiter_);
}

/* ---- await tier ----------------------------------------------------------
 * The step runs once directly when that is indistinguishable from awaiting
 * (blz__await_fast_ok in rt/current.h); a step that would wait builds the future, whose poll holds
 * the whole waiting logic. The future lives in an out-of-line helper, so the
 * fast path needs no stack frame for it.
 */

static BLZ_NOINLINE int
send_await(blz_chan *ch, const void *item)
{
    blz_chan_send_future f;
    blz_chan_send_fut(ch, item, &f);
    return blz_await(&f.base);
}

static BLZ_NOINLINE int
recv_await(blz_chan *ch, void *out)
{
    blz_chan_recv_future f;
    blz_chan_recv_fut(ch, out, &f);
    return blz_await(&f.base);
}

int
blz_chan_send(blz_chan *ch, const void *item)
{
    if (!ch || !item || !ch->buf_) {
        return -EINVAL;
    }
    if (blz__await_fast_ok()) {
        int st = send_step(ch, item);
        if (BLZ_LIKELY(st == ST_OK || st == ST_CLOSED)) {
            return st == ST_OK ? 0 : -EPIPE;
        }
    }
    return send_await(ch, item);
}

int
blz_chan_recv(blz_chan *ch, void *out)
{
    if (!ch || !out || !ch->buf_) {
        return -EINVAL;
    }
    if (blz__await_fast_ok()) {
        int st = recv_step(ch, out);
        if (BLZ_LIKELY(st == ST_OK || st == ST_CLOSED)) {
            return st == ST_OK ? 0 : -EPIPE;
        }
    }
    return recv_await(ch, out);
}

/* ---- lifecycle and queries ----------------------------------------------- */

int
blz_chan_init(blz_chan *ch, size_t elem_size, size_t capacity)
{
    if (!ch || elem_size == 0 || capacity == 0) {
        return -EINVAL;
    }
    /* Positions carry 2 flag bits and must leave room for ~2^61 laps' worth of growth. */
    if (elem_size > (SIZE_MAX >> 4) || capacity > (SIZE_MAX >> 8)) {
        return -EINVAL;
    }
    size_t stride = SLOT_HDR + ((elem_size + 7) & ~(size_t) 7);
    if (capacity > SIZE_MAX / stride) {
        return -EINVAL;
    }
    size_t lap = 2;
    while (lap < capacity) {
        lap <<= 1;
    }
    unsigned char *buf = blz__malloc(capacity * stride);
    if (!buf) {
        return -ENOMEM;
    }
    memset(ch, 0, sizeof *ch);
    ch->buf_ = buf;
    ch->cap_ = capacity;
    ch->lap_ = lap;
    ch->elem_size_ = elem_size;
    ch->stride_ = stride;
    for (size_t i = 0; i < capacity; i++) {
        atomic_init((stamp_t *) (void *) (buf + i * stride), i); /* lap 0, ready for send at i */
    }
    atomic_init(&ch->tail_, 0);
    atomic_init(&ch->head_, 0);
    atomic_init(&ch->sendq_.lock_, 0);
    atomic_init(&ch->recvq_.lock_, 0);
    blz__waitlist_init(wq_list(&ch->sendq_));
    blz__waitlist_init(wq_list(&ch->recvq_));
    return 0;
}

void
blz_chan_deinit(blz_chan *ch)
{
    if (!ch || !ch->buf_) {
        return;
    }
    BLZ_ASSERT(ch->sendq_.len_ == 0 && ch->recvq_.len_ == 0);
    blz__free(ch->buf_);
    ch->buf_ = NULL;
}

void
blz_chan_close(blz_chan *ch)
{
    if (!ch || !ch->buf_) {
        return;
    }
    /* An RMW on tail_: every claim is ordered before it (and counted) or fails after it. */
    size_t old = blz__fetch_or(&ch->tail_, F_CLOSED, ACQ_REL);
    BLZ_PERTURB_POINT();
    if (old & F_CLOSED) {
        return;
    }
    wake_all(&ch->sendq_, &ch->head_);
    wake_all(&ch->recvq_, &ch->tail_);
    /* The last touch: from here a receive reports -EPIPE (once drained) and
     * whoever sees that may free the channel. Release pairs with closed_step. */
    (void) blz__fetch_or(&ch->head_, F_CLOSE_DONE, RELEASE);
}

bool
blz_chan_is_closed(const blz_chan *ch)
{
    /* CLOSE_DONE, not CLOSED: whoever sees it closed may free it (see the file comment). */
    return ch && (blz__load(&((blz_chan *) ch)->head_, ACQUIRE) & F_CLOSE_DONE) != 0;
}

/* Items sent (or received) before position p. */
static size_t
pos_count(const blz_chan *ch, size_t p)
{
    return (p / ch->lap_) * ch->cap_ + (p & (ch->lap_ - 1));
}

size_t
blz_chan_len(const blz_chan *ch)
{
    if (!ch || !ch->buf_) {
        return 0;
    }
    blz_chan *m = (blz_chan *) ch;
    size_t h = blz__load(&m->head_, ACQUIRE) >> SHIFT;
    size_t t = blz__load(&m->tail_, ACQUIRE) >> SHIFT;
    size_t received = pos_count(ch, h), sent = pos_count(ch, t);
    if (sent <= received) {
        return 0; /* the two loads are not one snapshot */
    }
    return sent - received > ch->cap_ ? ch->cap_ : sent - received;
}

size_t
blz_chan_capacity(const blz_chan *ch)
{
    return ch ? ch->cap_ : 0;
}
