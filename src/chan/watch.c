/*
 * Watch: the latest value plus a version, read through a sequence lock.
 *
 * ver_ = version << 2 | WAITERS (bit 1) | WRITING (bit 0). The version
 * starts at 1 and grows by one per send.
 *
 * Writers claim the word by CAS (WRITING clear -> set; acquire, so the
 * previous writer's words happen before ours), release fence, store the
 * value's words (relaxed atomics), then store the next version with both bits
 * clear (release). Writers are serialised by the WRITING bit.
 *
 * Readers load ver_ (acquire), skip while WRITING, copy the words, acquire
 * fence, re-load: the same version and no WRITING means the copy is whole
 * (WAITERS may change meanwhile; it is ignored). No reader writes anything
 * shared, and no reader waits for a lock other than a writer's copy.
 *
 * Change waits. A watcher links its waiter under q_.lock_ with key_ = the
 * version it has seen, then, if that is still the current version and no
 * write is in progress, sets WAITERS by CAS (release) on exactly that word.
 * Only a writer's claim can clear it, and that claim reads the flag (same
 * word, an RMW), so a writer either sees WAITERS and wakes every waiter whose
 * key_ is older than its new version, or came first and the watcher's CAS
 * fails and it sees the new version. A write in progress makes the watcher
 * poll again soon (it wakes itself). Close sets closed_ then wakes everyone.
 * A watcher that sees closed_ looks at the version once more before ending:
 * the version it loaded first may predate the last sends, and every value
 * sent before the close is delivered before -EPIPE.
 *
 * Send against close. A send looks at closed_ again after its claim, and
 * gives the word back unchanged (-EPIPE) if the close came; claim, look,
 * close's exchange and a watcher's looks are seq_cst (the Dekker pattern).
 * So a send that returns 0 claimed before the close, and a watcher that saw
 * closed_ then finds its WRITING, or its version: it waits while WRITING is
 * set (settled_version) before it compares. Until session 21 a send that
 * passed its one look could store its version after a watcher had ended
 * with -EPIPE, and still return 0: the value was lost.
 *
 * Watchers leaving: see blz_watch_unsubscribe below (a count and a second
 * queue, so a wait for "nobody watches" never sits among the change waits,
 * whose queue is kept in version order).
 */
#include "blitzio/chan.h"
#include "chan/waitq.h"
#include "chan/words.h"
#include "core/alloc.h"
#include "core/atomic.h"
#include "core/coop.h"
#include "core/future.h"

#include <string.h>

#define V_WRITING ((uint64_t) 1)
#define V_WAITERS ((uint64_t) 2)
#define V_SHIFT   2

int
blz_watch_init(blz_watch *w, size_t elem_size, const void *initial)
{
    if (!w || !initial || elem_size == 0 || elem_size > (SIZE_MAX >> 4)) {
        return -EINVAL;
    }
    size_t words = words_for(elem_size);
    blz__word *data = blz__malloc(words * sizeof *data);
    if (!data) {
        return -ENOMEM;
    }
    memset(w, 0, sizeof *w);
    for (size_t i = 0; i < words; i++) {
        atomic_init(&data[i], 0);
    }
    words_store(data, initial, elem_size);
    w->data_ = data;
    w->elem_size_ = elem_size;
    w->words_ = words;
    atomic_init(&w->ver_, (uint64_t) 1 << V_SHIFT);
    atomic_init(&w->closed_, 0);
    atomic_init(&w->receivers_, 0);
    atomic_init(&w->q_.lock_, 0);
    blz__waitlist_init(wq_list(&w->q_));
    atomic_init(&w->gone_q_.lock_, 0);
    blz__waitlist_init(wq_list(&w->gone_q_));
    return 0;
}

void
blz_watch_deinit(blz_watch *w)
{
    if (!w || !w->data_) {
        return;
    }
    BLZ_ASSERT(w->q_.len_ == 0 && w->gone_q_.len_ == 0);
    blz__free(w->data_);
    w->data_ = NULL;
}

/* Wakes, in batches, the waiters of `q` whose key (a change wait's seen
 * version) is older than `version`; UINT64_MAX wakes every one. Locks again
 * only while such a waiter is still linked: a watcher woken may free the
 * watch at once, so nothing touches it after the last wake. */
static void
wake_older(blz_chan_waitq *q, uint64_t version)
{
    wq_batch batch;
    batch.n = 0;
    for (;;) {
        wq_lock(q);
        blz_waiter *node;
        bool more = false;
        while ((node = blz__waitlist_front(wq_list(q))) != NULL &&
               wq_waiter_of(node)->key_ < version) {
            if (batch.n == WQ_BATCH) {
                more = true; /* one still linked: relocking after the wakes is safe */
                break;
            }
            wq_notify_locked(q, wq_waiter_of(node), &batch.w[batch.n++]);
        }
        wq_unlock(q);
        wq_batch_wake(&batch);
        if (!more) {
            return;
        }
    }
}

int
blz_watch_send(blz_watch *w, const void *value)
{
    if (BLZ_UNLIKELY(!w || !value || !w->data_)) {
        return -EINVAL;
    }
    if (blz__load(&w->closed_, ACQUIRE)) {
        return -EPIPE;
    }
    uint64_t v = blz__load(&w->ver_, RELAXED);
    for (;;) {
        if (v & V_WRITING) {
            blz__cpu_relax();
            v = blz__load(&w->ver_, RELAXED);
            continue;
        }
        BLZ_PERTURB_POINT();
        /* Acquire pairs with the previous writer's release store of ver_ (and
         * with a watcher's release CAS setting WAITERS). */
        if (blz__cas_weak(&w->ver_, &v, v | V_WRITING, SEQ_CST, RELAXED)) {
            break;
        }
    }
    /* Seq_cst after the claim: close's exchange comes before this look (we
     * give the word back), or after our claim (its watchers wait for us). */
    if (blz__load(&w->closed_, SEQ_CST)) {
        blz__store(&w->ver_, v, RELEASE); /* unchanged: no value, no version */
        return -EPIPE;
    }
    /* Orders the WRITING claim before the words, for readers' acquire fence. */
    atomic_thread_fence(RELEASE);
    words_store(w->data_, value, w->elem_size_);
    BLZ_PERTURB_POINT();
    uint64_t next = (v >> V_SHIFT) + 1;
    /* Release pairs with the readers' and watchers' acquire loads of ver_. */
    blz__store(&w->ver_, next << V_SHIFT, RELEASE);
    if (v & V_WAITERS) {
        wake_older(&w->q_, next);
    }
    return 0;
}

/* The current version once no send is in progress: what a watcher that saw
 * closed_ compares (see "Send against close"). A send in progress ends in a
 * few stores either way. */
static uint64_t
settled_version(blz_watch *w)
{
    for (;;) {
        uint64_t v = blz__load(&w->ver_, SEQ_CST);
        if (!(v & V_WRITING)) {
            return v >> V_SHIFT;
        }
        blz__cpu_relax();
    }
}

/* Copies the value out; returns its version. */
static uint64_t
read_value(blz_watch *w, void *out)
{
    for (;;) {
        uint64_t v1 = blz__load(&w->ver_, ACQUIRE); /* pairs with the writer's release */
        if (v1 & V_WRITING) {
            blz__cpu_relax();
            continue;
        }
        words_load(out, w->data_, w->elem_size_);
        atomic_thread_fence(ACQUIRE); /* pairs with the writer's release fence */
        uint64_t v2 = blz__load(&w->ver_, RELAXED);
        if (((v1 ^ v2) & ~V_WAITERS) == 0) {
            return v1 >> V_SHIFT;
        }
    }
}

uint64_t
blz_watch_get(const blz_watch *w, void *out)
{
    if (!w || !out || !w->data_) {
        return 0;
    }
    return read_value((blz_watch *) w, out);
}

void
blz_watch_close(blz_watch *w)
{
    if (!w || !w->data_) {
        return;
    }
    /* Seq_cst: the Dekker pair with a send's look after its claim (and
     * release for the watchers' loads after they link). */
    if (blz__exchange(&w->closed_, 1, SEQ_CST)) {
        return;
    }
    wake_older(&w->q_, UINT64_MAX);
}

int
blz_watch_subscribe(blz_watch *w, blz_watch_rx *rx)
{
    if (!w || !rx || !w->data_) {
        return -EINVAL;
    }
    rx->w_ = w;
    rx->seen_ = blz__load(&w->ver_, ACQUIRE) >> V_SHIFT;
    blz__fetch_add(&w->receivers_, 1, RELAXED);
    return 0;
}

/* ---- watchers leaving ------------------------------------------------------------
 * receivers_ counts subscriptions. A wait for it to reach 0 links in gone_q_
 * under its lock and then reads the count; the last unsubscribe decrements
 * first and then takes that lock to wake everyone linked. Either the
 * unsubscribe's lock comes after the link (it finds the waiter) or before it
 * (the lock hand-over orders its decrement before the waiter's read, which
 * sees 0).
 */

void
blz_watch_unsubscribe(blz_watch_rx *rx)
{
    if (!rx || !rx->w_) {
        return;
    }
    blz_watch *w = rx->w_;
    rx->w_ = NULL;
    /* Release: what the watcher did before leaving happens before the waits end. */
    if (blz__fetch_sub(&w->receivers_, 1, RELEASE) == 1) {
        wake_older(&w->gone_q_, UINT64_MAX); /* their keys are 0: every one */
    }
}

size_t
blz_watch_receivers(const blz_watch *w)
{
    return w ? blz__load(&w->receivers_, ACQUIRE) : 0;
}

static blz_poll
unwatched_poll(blz_future *base, blz_context *cx)
{
    blz_watch_unwatched_future *f = (blz_watch_unwatched_future *) base;
    if (!blz__coop_proceed(cx)) {
        return BLZ_PENDING;
    }
    blz_watch *w = f->w_;
    blz_chan_waiter *waiter = &f->waiter_;
    bool linked = waiter_settle(waiter);
    for (;;) {
        /* Acquire pairs with the last unsubscribe's release decrement. */
        if (blz__load(&w->receivers_, ACQUIRE) == 0) {
            if (linked) {
                wq_cancel(&w->gone_q_, waiter); /* a broadcast wake owes nobody */
            }
            base->result = 0;
            return BLZ_READY;
        }
        BLZ_PERTURB_POINT(); /* the last watcher may leave right here */
        wq_lock(&w->gone_q_);
        if (!linked) {
            wq_push_locked(&w->gone_q_, waiter, cx->waker);
            linked = true;
        } else if (!wq_refresh_locked(waiter, cx->waker)) {
            wq_unlock(&w->gone_q_);
            linked = false; /* woken meanwhile: look again */
            continue;
        }
        wq_unlock(&w->gone_q_);
        /* Linked: the count read after the lock decides (see above). */
        if (blz__load(&w->receivers_, ACQUIRE) != 0) {
            return BLZ_PENDING;
        }
    }
}

static void
unwatched_drop(blz_future *base)
{
    blz_watch_unwatched_future *f = (blz_watch_unwatched_future *) base;
    if (blz__load(&f->waiter_.state_, ACQUIRE) != W_IDLE) {
        wq_cancel(&f->w_->gone_q_, &f->waiter_);
    }
}

static const blz_future_vtable unwatched_vtable = {unwatched_poll, unwatched_drop};

void
blz_watch_unwatched_fut(blz_watch *w, blz_watch_unwatched_future *f)
{
    if (!f) {
        return;
    }
    blz__future_init_checked(&f->base, &unwatched_vtable, w && w->data_);
    f->w_ = w;
    waiter_init(&f->waiter_);
}

int
blz_watch_unwatched(blz_watch *w)
{
    if (!w || !w->data_) {
        return -EINVAL;
    }
    blz_watch_unwatched_future f;
    blz_watch_unwatched_fut(w, &f);
    return blz_await(&f.base);
}

uint64_t
blz_watch_rx_borrow(blz_watch_rx *rx, void *out)
{
    if (!rx || !out || !rx->w_ || !rx->w_->data_) {
        return 0;
    }
    return read_value(rx->w_, out);
}

uint64_t
blz_watch_rx_borrow_and_update(blz_watch_rx *rx, void *out)
{
    uint64_t v = blz_watch_rx_borrow(rx, out);
    if (v) {
        rx->seen_ = v;
    }
    return v;
}

int
blz_watch_rx_has_changed(const blz_watch_rx *rx)
{
    if (!rx || !rx->w_ || !rx->w_->data_) {
        return -EINVAL;
    }
    blz_watch *w = rx->w_;
    if ((blz__load(&w->ver_, ACQUIRE) >> V_SHIFT) > rx->seen_) {
        return 1;
    }
    if (!blz__load(&w->closed_, SEQ_CST)) {
        return 0;
    }
    /* Closed: sends made before the close are visible now; they come first. */
    return settled_version(w) > rx->seen_ ? 1 : -EPIPE;
}

static void
unlink_self(blz_watch *w, blz_chan_waiter *waiter)
{
    /* Watch wakes are broadcasts: a dropped notification owes nobody. */
    wq_cancel(&w->q_, waiter);
}

static blz_poll
// NOLINTNEXTLINE(readability-function-cognitive-complexity): one poll, one protocol
changed_poll(blz_future *base, blz_context *cx)
{
    blz_watch_changed_future *f = (blz_watch_changed_future *) base;
    if (!blz__coop_proceed(cx)) {
        return BLZ_PENDING;
    }
    blz_watch_rx *rx = f->rx_;
    blz_watch *w = rx->w_;
    blz_chan_waiter *waiter = &f->waiter_;
    bool linked = waiter_settle(waiter);
    bool fresh = false;
    for (;;) {
        uint64_t v = blz__load(&w->ver_, ACQUIRE); /* pairs with the writer's release */
        if ((v >> V_SHIFT) > rx->seen_) {
            if (linked) {
                unlink_self(w, waiter);
            }
            rx->seen_ = v >> V_SHIFT;
            base->result = 0;
            return blz__future_finished(base);
        }
        if (blz__load(&w->closed_, SEQ_CST)) {
            /* `v` may predate sends that came before the close (settled
             * now): the latest value is delivered before the end. */
            if (settled_version(w) > rx->seen_) {
                continue;
            }
            if (linked) {
                unlink_self(w, waiter);
            }
            base->result = -EPIPE;
            return blz__future_finished(base);
        }
        if (!linked) {
            wq_lock(&w->q_);
            waiter->key_ = rx->seen_;
            wq_push_locked(&w->q_, waiter, cx->waker);
            wq_unlock(&w->q_);
            linked = fresh = true;
            continue; /* re-check: the version, close, then raise WAITERS */
        }
        if (v & V_WRITING) {
            /* The writer may have claimed before our flag: look again soon. */
            blz_waker_wake_by_ref(cx->waker);
            if (fresh) {
                return BLZ_PENDING;
            }
        } else if (!(v & V_WAITERS)) {
            /* Release pairs with the next writer's acquire claim (orders our link first). */
            if (!blz__cas(&w->ver_, &v, v | V_WAITERS, RELEASE, RELAXED)) {
                continue;
            }
            BLZ_PERTURB_POINT();
        }
        if (!fresh) {
            wq_lock(&w->q_);
            bool still = wq_refresh_locked(waiter, cx->waker);
            wq_unlock(&w->q_);
            if (!still) {
                linked = false;
                continue;
            }
        }
        return BLZ_PENDING;
    }
}

static void
changed_drop(blz_future *base)
{
    blz_watch_changed_future *f = (blz_watch_changed_future *) base;
    if (blz__load(&f->waiter_.state_, ACQUIRE) != W_IDLE) {
        unlink_self(f->rx_->w_, &f->waiter_);
    }
}

static const blz_future_vtable changed_vtable = {changed_poll, changed_drop};
void
blz_watch_changed_fut(blz_watch_rx *rx, blz_watch_changed_future *f)
{
    if (!f) {
        return;
    }
    bool ok = rx && rx->w_ && rx->w_->data_;
    blz__future_init_checked(&f->base, &changed_vtable, ok);
    f->rx_ = rx;
    waiter_init(&f->waiter_);
}

int
blz_watch_changed(blz_watch_rx *rx)
{
    if (!rx || !rx->w_ || !rx->w_->data_) {
        return -EINVAL;
    }
    blz_watch_changed_future f;
    blz_watch_changed_fut(rx, &f);
    return blz_await(&f.base);
}
