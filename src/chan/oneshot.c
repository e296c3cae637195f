/*
 * Oneshot: one value from one sender to one receiver, no allocation.
 *
 * State word bits:
 *   VALUE      the value is in place (set once, by the sender)
 *   TX_CLOSED  the sender gave up without a value
 *   RX_CLOSED  the receiver gave up
 *   RX_WAKER   rx_waker_ holds the waiting receiver's waker
 *   TX_WAKER   tx_waker_ holds the waker of the sender waiting for RX_CLOSED
 *   LOCK       a bit lock: whoever holds it may change the word and the wakers
 *
 * Every change of the word happens under LOCK, and the unlock is a plain
 * release store of the new word, so a send costs one CAS and one store. The
 * sender copies the value in before taking the lock (the receiver reads the
 * storage only after it sees VALUE), then under the lock moves the waker out
 * and stores VALUE with release: the receiver's acquire load pairs with it.
 * That store is the sender's last touch of the struct, so the receiver may
 * reuse or free it as soon as it has the value. taken_ belongs to the receiver.
 * A send or close_tx also takes the sender's own TX_WAKER out (to drop it),
 * and close_rx takes it to wake the sender, both under the lock, so no waker
 * is left behind and close_rx touches nothing after its unlock.
 */
#include "blitzio/chan.h"
#include "chan/copy.h"
#include "core/atomic.h"
#include "core/coop.h"
#include "core/future.h"
#include "rt/current.h"

#include <string.h>

#define OS_VALUE     1u
#define OS_TX_CLOSED 2u
#define OS_RX_CLOSED 4u
#define OS_RX_WAKER  8u
#define OS_LOCK      16u
#define OS_TX_WAKER  32u

static inline void *
storage(blz_oneshot *o)
{
    return o->buf_ ? o->buf_ : (void *) o->inline_.bytes;
}

/* Takes the bit lock; returns the word as it was (without LOCK). */
static uint32_t
os_lock(blz_oneshot *o)
{
    uint32_t s = blz__load(&o->state_, RELAXED);
    for (;;) {
        if (s & OS_LOCK) {
            blz__cpu_relax();
            s = blz__load(&o->state_, RELAXED);
            continue;
        }
        BLZ_PERTURB_POINT();
        /* Acquire pairs with the release store of the previous os_unlock. */
        if (blz__cas_weak(&o->state_, &s, s | OS_LOCK, ACQUIRE, RELAXED)) {
            return s;
        }
    }
}

static inline void
os_unlock(blz_oneshot *o, uint32_t s)
{
    /* Release pairs with os_lock's acquire and with the receiver's acquire loads. */
    blz__store(&o->state_, s & ~OS_LOCK, RELEASE);
    BLZ_PERTURB_POINT();
}

static void
os_init(blz_oneshot *o, void *buf, size_t size)
{
    atomic_init(&o->state_, 0);
    o->taken_ = 0;
    o->size_ = size;
    o->buf_ = buf;
    o->rx_waker_ = BLZ_WAKER_NONE;
    o->tx_waker_ = BLZ_WAKER_NONE;
}

/* The waker slot of `bit` (RX_WAKER or TX_WAKER). */
static blz_waker *
os_slot(blz_oneshot *o, uint32_t bit)
{
    return bit == OS_RX_WAKER ? &o->rx_waker_ : &o->tx_waker_;
}

/* Under the lock: moves the waker of `bit` out, if set. */
static blz_waker
os_take_waker(blz_oneshot *o, uint32_t s, uint32_t bit)
{
    blz_waker w = BLZ_WAKER_NONE;
    if (s & bit) {
        blz_waker *slot = os_slot(o, bit);
        w = *slot;
        *slot = BLZ_WAKER_NONE;
    }
    return w;
}

int
blz_oneshot_init(blz_oneshot *o, size_t size)
{
    if (!o || size == 0 || size > BLZ_ONESHOT_INLINE) {
        return -EINVAL;
    }
    os_init(o, NULL, size);
    return 0;
}

int
blz_oneshot_init_buf(blz_oneshot *o, void *buf, size_t size)
{
    if (!o || !buf || size == 0) {
        return -EINVAL;
    }
    os_init(o, buf, size);
    return 0;
}

int
blz_oneshot_send(blz_oneshot *o, const void *value)
{
    if (BLZ_UNLIKELY(!o || !value || !o->size_)) {
        return -EINVAL;
    }
    uint32_t s = blz__load(&o->state_, ACQUIRE);
    if (s & (OS_VALUE | OS_TX_CLOSED)) {
        return -EEXIST;
    }
    if (s & OS_RX_CLOSED) {
        return -EPIPE;
    }
    /* The receiver reads the storage only after VALUE: no one else touches it now. */
    copy_item(storage(o), value, o->size_);
    s = os_lock(o);
    if (s & OS_RX_CLOSED) {
        os_unlock(o, s);
        return -EPIPE;
    }
    blz_waker w = os_take_waker(o, s, OS_RX_WAKER);
    blz_waker own = os_take_waker(o, s, OS_TX_WAKER);
    /* Publishes the value; last touch. */
    os_unlock(o, (s & ~(OS_RX_WAKER | OS_TX_WAKER)) | OS_VALUE);
    blz_waker_wake(&w);
    blz_waker_drop(&own);
    return 0;
}

void
blz_oneshot_close_tx(blz_oneshot *o)
{
    if (!o || !o->size_) {
        return;
    }
    uint32_t s = os_lock(o);
    if (s & (OS_VALUE | OS_TX_CLOSED)) {
        os_unlock(o, s);
        return;
    }
    blz_waker w = os_take_waker(o, s, OS_RX_WAKER);
    blz_waker own = os_take_waker(o, s, OS_TX_WAKER);
    os_unlock(o, (s & ~(OS_RX_WAKER | OS_TX_WAKER)) | OS_TX_CLOSED);
    blz_waker_wake(&w);
    blz_waker_drop(&own);
}

void
blz_oneshot_close_rx(blz_oneshot *o)
{
    if (!o || !o->size_) {
        return;
    }
    uint32_t s = os_lock(o);
    blz_waker w = os_take_waker(o, s, OS_RX_WAKER);
    blz_waker tx = os_take_waker(o, s, OS_TX_WAKER);
    os_unlock(o, (s & ~(OS_RX_WAKER | OS_TX_WAKER)) | OS_RX_CLOSED);
    blz_waker_drop(&w);
    blz_waker_wake(&tx); /* the sender waiting in blz_oneshot_closed */
}

bool
blz_oneshot_rx_closed(const blz_oneshot *o)
{
    return o && (blz__load(&((blz_oneshot *) o)->state_, ACQUIRE) & OS_RX_CLOSED) != 0;
}

static int
os_take(blz_oneshot *o, void *out)
{
    if (o->taken_) {
        return -EPIPE;
    }
    uint32_t s = blz__load(&o->state_, ACQUIRE); /* pairs with the sender's os_unlock */
    if (s & OS_VALUE) {
        copy_item(out, storage(o), o->size_);
        o->taken_ = 1;
        return 0;
    }
    return (s & (OS_TX_CLOSED | OS_RX_CLOSED)) ? -EPIPE : -EAGAIN;
}

int
blz_oneshot_try_recv(blz_oneshot *o, void *out)
{
    if (BLZ_UNLIKELY(!o || !out || !o->size_)) {
        return -EINVAL;
    }
    return os_take(o, out);
}

/* One side withdraws its waker (`bit`: RX_WAKER or TX_WAKER), if registered. */
static void
os_unregister(blz_oneshot *o, uint32_t bit)
{
    if (!(blz__load(&o->state_, RELAXED) & bit)) {
        return; /* only its own side sets it, so "clear" cannot be stale */
    }
    uint32_t s = os_lock(o);
    blz_waker w = os_take_waker(o, s, bit);
    os_unlock(o, s & ~bit);
    blz_waker_drop(&w);
}

/* Under the lock: registers cx's waker in the slot of `bit`; returns the new word. */
static uint32_t
os_register(blz_oneshot *o, uint32_t s, uint32_t bit, const blz_context *cx)
{
    blz_waker *slot = os_slot(o, bit);
    if (s & bit) {
        blz_waker_set(slot, cx->waker);
    } else {
        *slot = blz_waker_clone(cx->waker);
    }
    return s | bit;
}

static blz_poll
os_poll(blz_future *base, blz_context *cx)
{
    blz_oneshot_recv_future *f = (blz_oneshot_recv_future *) base;
    if (!blz__coop_proceed(cx)) {
        return BLZ_PENDING;
    }
    blz_oneshot *o = f->os_;
    for (;;) {
        int r = os_take(o, f->out_);
        if (r != -EAGAIN) {
            os_unregister(o, OS_RX_WAKER);
            base->result = r;
            return blz__future_finished(base);
        }
        uint32_t s = os_lock(o);
        if (s & (OS_VALUE | OS_TX_CLOSED | OS_RX_CLOSED)) {
            os_unlock(o, s);
            continue;
        }
        os_unlock(o, os_register(o, s, OS_RX_WAKER, cx));
        return BLZ_PENDING;
    }
}

static void
os_drop(blz_future *base)
{
    blz_oneshot_recv_future *f = (blz_oneshot_recv_future *) base;
    os_unregister(f->os_, OS_RX_WAKER);
}

static const blz_future_vtable os_vtable = {os_poll, os_drop};
void
blz_oneshot_recv_fut(blz_oneshot *o, void *out, blz_oneshot_recv_future *f)
{
    if (!f) {
        return;
    }
    bool ok = o && out && o->size_;
    blz__future_init_checked(&f->base, &os_vtable, ok);
    f->os_ = o;
    f->out_ = out;
}

int
blz_oneshot_recv(blz_oneshot *o, void *out)
{
    if (!o || !out || !o->size_) {
        return -EINVAL;
    }
    if (blz__await_fast_ok()) { /* see rt/current.h */
        int r = os_take(o, out);
        if (r != -EAGAIN) {
            return r;
        }
    }
    blz_oneshot_recv_future f;
    blz_oneshot_recv_fut(o, out, &f);
    return blz_await(&f.base);
}

/* ---- the sender waiting for the receiver to close -------------------------------- */

/* 0 when the receiver closed, -EEXIST when this side finished, -EAGAIN neither. */
static int
closed_state(uint32_t s)
{
    if (s & (OS_VALUE | OS_TX_CLOSED)) {
        return -EEXIST;
    }
    return (s & OS_RX_CLOSED) ? 0 : -EAGAIN;
}

static blz_poll
closed_poll(blz_future *base, blz_context *cx)
{
    blz_oneshot_closed_future *f = (blz_oneshot_closed_future *) base;
    if (!blz__coop_proceed(cx)) {
        return BLZ_PENDING;
    }
    blz_oneshot *o = f->os_;
    /* Acquire pairs with close_rx's unlock. */
    int r = closed_state(blz__load(&o->state_, ACQUIRE));
    if (r == -EAGAIN) {
        uint32_t s = os_lock(o);
        r = closed_state(s);
        if (r == -EAGAIN) {
            os_unlock(o, os_register(o, s, OS_TX_WAKER, cx));
            return BLZ_PENDING;
        }
        os_unlock(o, s);
    }
    os_unregister(o, OS_TX_WAKER);
    base->result = r;
    return BLZ_READY;
}

static void
closed_drop(blz_future *base)
{
    blz_oneshot_closed_future *f = (blz_oneshot_closed_future *) base;
    os_unregister(f->os_, OS_TX_WAKER);
}

static const blz_future_vtable closed_vtable = {closed_poll, closed_drop};

void
blz_oneshot_closed_fut(blz_oneshot *o, blz_oneshot_closed_future *f)
{
    if (!f) {
        return;
    }
    blz__future_init_checked(&f->base, &closed_vtable, o && o->size_);
    f->os_ = o;
}

int
blz_oneshot_closed(blz_oneshot *o)
{
    if (!o || !o->size_) {
        return -EINVAL;
    }
    blz_oneshot_closed_future f;
    blz_oneshot_closed_fut(o, &f);
    return blz_await(&f.base);
}
