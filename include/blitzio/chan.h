/*
 * blitzio/chan.h — channels: bounded MPMC, unbounded MPSC, oneshot, broadcast,
 * watch, and select over several waits.
 *
 * Every waiting operation comes in the three tiers of DESIGN.md §3:
 *
 *   blz_chan_try_send(ch, &item)          never waits: 0, -EAGAIN (full), -EPIPE (closed)
 *   blz_chan_send_fut(ch, &item, &f)      fills a caller-owned future; the waiter lives in it
 *   blz_chan_send(ch, &item)              blz_await() on that future
 *
 * The await tier suspends a fiber, parks a thread outside any runtime, and
 * returns -EDEADLK inside a stackless poll (use the future tier there).
 * A future filled with a NULL channel, a zeroed or deinitialised one, or a
 * NULL item or destination completes with -EINVAL at its first poll (the
 * other tiers return it at once).
 *
 * Nothing is ever lost or duplicated. An item is copied into a channel only
 * when the send really happens (a send future dropped while it waits leaves
 * nothing behind), and a receive consumes an item only in the poll that makes
 * its future ready. A woken waiter always retries the operation.
 *
 * Lifetime. A channel is caller storage. It must not move once used, and it
 * must outlive every future filled on it; blz_*_deinit() requires that no
 * future is pending on it (complete or drop them first). A pending future
 * must not move or be freed until it completes or is passed to
 * blz_future_drop(). Futures may be copied before their first poll (as
 * blz_spawn_future does).
 *
 * Thread affinity. Unless a function says otherwise, any thread may call it,
 * inside or outside a runtime, concurrently with any other call on the same
 * channel. A future is polled by one task at a time (its owner).
 */
#ifndef BLZ_CHAN_H
#define BLZ_CHAN_H

#include "blitzio/common.h"
#include "blitzio/future.h"
#include "blitzio/time.h"

#include <stdatomic.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BLZ_CHAN_CACHELINE 64

#if defined(__GNUC__)
# define BLZ_CHAN_UNUSED __attribute__((unused))
#else
# define BLZ_CHAN_UNUSED
#endif

/* ---- private building blocks ------------------------------------------ */

/*
 * A lock and a FIFO of waiters, shared by every channel kind. Every field is
 * private. `lock_` is a futex word (0 free, 1 held, 2 held with sleepers);
 * `len_` and the list behind `head_` are guarded by it.
 */
typedef struct blz_chan_waitq {
    _Atomic(uint32_t) lock_; /* 0 free, 1 held, 2 held and someone sleeps on it */
    uint32_t len_;           /* waiters linked; under lock_ */
    blz_waiter head_;        /* sentinel of the FIFO (zeroed = empty); under lock_ */
} blz_chan_waitq;

/*
 * The waiter node inside a channel future. Private. While linked, the queue
 * lock guards `node_`; `state_` moves IDLE -> LINKED (owner, under the lock)
 * -> NOTIFIED (waker, under the lock, its last touch) -> IDLE (owner).
 */
typedef struct blz_chan_waiter {
    blz_waiter node_;         /* link and the owner's waker */
    _Atomic(uint32_t) state_; /* idle / linked / notified */
    uint32_t busy_;           /* channel: polls in a row that found a busy slot; owner only */
    uint64_t key_;            /* broadcast: the message number it waits for */
} blz_chan_waiter;

/* ==== bounded channel (MPMC) ============================================== */

/**
 * A bounded multi-producer multi-consumer channel of fixed-size items: a
 * lock-free ring with a sequence stamp per slot, one allocation at init.
 * Senders wait while it is full (backpressure), receivers while it is empty.
 * Every field is private.
 */
typedef struct blz_chan {
    _Atomic(size_t) tail_; /* next send position << 2 | CLOSED | RECV_WAITING */
    char pad0_[BLZ_CHAN_CACHELINE - sizeof(size_t)];
    _Atomic(size_t) head_; /* next receive position << 2 | SEND_WAITING */
    char pad1_[BLZ_CHAN_CACHELINE - sizeof(size_t)];
    unsigned char *buf_; /* cap_ slots of stride_ bytes: stamp, then the item */
    size_t cap_;         /* capacity, >= 1 */
    size_t lap_;         /* power of two >= max(cap_, 2): positions per lap of the ring */
    size_t elem_size_;   /* bytes per item */
    size_t stride_;      /* bytes per slot */
    char pad2_[BLZ_CHAN_CACHELINE - sizeof(void *) - 4 * sizeof(size_t)];
    blz_chan_waitq recvq_; /* receivers waiting for an item */
    char pad3_[BLZ_CHAN_CACHELINE - sizeof(blz_chan_waitq)];
    blz_chan_waitq sendq_; /* senders waiting for room */
} blz_chan;

/** A pending send: fill with blz_chan_send_fut(). */
typedef struct blz_chan_send_future {
    blz_future base;         /**< result: 0 sent, -EPIPE closed, -ECANCELED dropped */
    blz_chan *chan_;         /* the channel */
    const void *item_;       /* the item, or NULL when it is inline at item_off_ */
    size_t item_off_;        /* offset of an inline item from the future's start */
    blz_chan_waiter waiter_; /* linked in chan_->sendq_ while waiting */
} blz_chan_send_future;

/** A pending receive: fill with blz_chan_recv_fut(). */
typedef struct blz_chan_recv_future {
    blz_future base;         /**< result: 0 received, -EPIPE closed and drained */
    blz_chan *chan_;         /* the channel */
    void *out_;              /* where the item goes, or NULL when inline at out_off_ */
    size_t out_off_;         /* offset of an inline destination from the future's start */
    blz_chan_waiter waiter_; /* linked in chan_->recvq_ while waiting */
} blz_chan_recv_future;

/**
 * Initialises `ch` for items of `elem_size` bytes and room for `capacity`
 * of them, allocating the ring (one allocation). Returns 0, -EINVAL (NULL,
 * a zero size or capacity, or a ring too large to address), -ENOMEM.
 * Any thread; never suspends. Pair with blz_chan_deinit().
 */
BLZ_API int blz_chan_init(blz_chan *ch, size_t elem_size, size_t capacity);

/**
 * Frees the ring. Items still inside are discarded. No future may be
 * pending on `ch` and no other call may run concurrently. NULL is ignored.
 */
BLZ_API void blz_chan_deinit(blz_chan *ch);

/**
 * Copies `*item` into the channel if there is room. Returns 0, -EAGAIN
 * (full), -EPIPE (closed), -EINVAL (NULL). Never suspends. May wake one
 * waiting receiver.
 */
BLZ_API int blz_chan_try_send(blz_chan *ch, const void *item);

/**
 * Moves the oldest item into `*out`. Returns 0, -EAGAIN (empty), -EPIPE
 * (closed and drained), -EINVAL (NULL). Never suspends. May wake one
 * waiting sender.
 */
BLZ_API int blz_chan_try_recv(blz_chan *ch, void *out);

/**
 * Fills `f` with a send of `*item` that waits for room. `*item` is read when
 * the send happens, so it must stay valid until `f` completes or is dropped.
 * The future completes with 0 (sent) or -EPIPE (closed; nothing was sent).
 * Dropping it while it waits sends nothing. Any thread; never suspends.
 */
BLZ_API void blz_chan_send_fut(blz_chan *ch, const void *item, blz_chan_send_future *f);

/**
 * Like blz_chan_send_fut(), for wrappers that keep the item inside their own
 * future struct (which begins with `f`): the item is at `item_offset` bytes
 * from `f`, so the future may be copied before its first poll.
 */
BLZ_API void blz_chan_send_fut_inline(blz_chan *ch, size_t item_offset, blz_chan_send_future *f);

/**
 * Fills `f` with a receive into `*out` that waits for an item. Completes with
 * 0 (`*out` written) or -EPIPE (closed and drained). An item is consumed only
 * by the poll that completes `f`; dropping `f` consumes nothing.
 */
BLZ_API void blz_chan_recv_fut(blz_chan *ch, void *out, blz_chan_recv_future *f);

/** Like blz_chan_recv_fut(), with the destination at `out_offset` bytes from `f`. */
BLZ_API void blz_chan_recv_fut_inline(blz_chan *ch, size_t out_offset, blz_chan_recv_future *f);

/**
 * Sends `*item`, waiting while the channel is full. Returns 0, -EPIPE
 * (closed: not sent), -EINVAL (NULL), -ECANCELED (the task was aborted: not
 * sent), -EDEADLK (inside a stackless poll). Suspends the calling fiber or
 * parks a foreign thread.
 */
BLZ_API int blz_chan_send(blz_chan *ch, const void *item);

/**
 * Receives into `*out`, waiting while the channel is empty. Returns 0,
 * -EPIPE (closed and drained), -EINVAL, -ECANCELED (aborted: nothing
 * consumed), -EDEADLK. Suspends the calling fiber or parks a foreign thread.
 */
BLZ_API int blz_chan_recv(blz_chan *ch, void *out);

/**
 * Closes the channel: later sends fail with -EPIPE, every waiting sender and
 * receiver is woken, items already sent stay receivable. Idempotent.
 * Never suspends.
 */
BLZ_API void blz_chan_close(blz_chan *ch);

/** True once blz_chan_close() has closed the channel (from its last step on). */
BLZ_API bool blz_chan_is_closed(const blz_chan *ch);

/** Items in the channel now (a snapshot; exact when nothing runs concurrently). */
BLZ_API size_t blz_chan_len(const blz_chan *ch);

/** The capacity given at init. */
BLZ_API size_t blz_chan_capacity(const blz_chan *ch);

/**
 * BLZ_CHAN_DECLARE(name, T) declares a typed wrapper around blz_chan, so the
 * compiler checks item types:
 *
 *     BLZ_CHAN_DECLARE(u64_chan, uint64_t)
 *     u64_chan c;  u64_chan_init(&c, 16);
 *     u64_chan_send(&c, 42);  uint64_t v;  u64_chan_recv(&c, &v);
 *
 * It defines `name` (a struct holding `raw`, the blz_chan), name_init,
 * name_deinit, name_close, name_len, name_try_send(ch, T), name_send(ch, T),
 * name_try_recv(ch, T *), name_recv(ch, T *), and the futures
 * name_send_future (which keeps the item inside) / name_send_fut(ch, T, f)
 * and name_recv_future (its `value` member receives the item) /
 * name_recv_fut(ch, f). Their return codes are those of blz_chan_*.
 */
/* `name` is pasted and `T` is used as a type, so neither can be parenthesised. */
/* NOLINTBEGIN(bugprone-macro-parentheses) */
#define BLZ_CHAN_DECLARE(name, T)                                                            \
 typedef struct name {                                                                       \
  blz_chan raw;                                                                              \
 } name;                                                                                     \
 typedef struct name##_send_future {                                                         \
  blz_chan_send_future base;                                                                 \
  T item;                                                                                    \
 } name##_send_future;                                                                       \
 typedef struct name##_recv_future {                                                         \
  blz_chan_recv_future base;                                                                 \
  T value;                                                                                   \
 } name##_recv_future;                                                                       \
 BLZ_CHAN_UNUSED static inline int name##_init(name *ch, size_t capacity)                    \
 {                                                                                           \
  return blz_chan_init(&ch->raw, sizeof(T), capacity);                                       \
 }                                                                                           \
 BLZ_CHAN_UNUSED static inline void name##_deinit(name *ch)                                  \
 {                                                                                           \
  blz_chan_deinit(&ch->raw);                                                                 \
 }                                                                                           \
 BLZ_CHAN_UNUSED static inline void name##_close(name *ch)                                   \
 {                                                                                           \
  blz_chan_close(&ch->raw);                                                                  \
 }                                                                                           \
 BLZ_CHAN_UNUSED static inline size_t name##_len(const name *ch)                             \
 {                                                                                           \
  return blz_chan_len(&ch->raw);                                                             \
 }                                                                                           \
 BLZ_CHAN_UNUSED static inline int name##_try_send(name *ch, T item)                         \
 {                                                                                           \
  return blz_chan_try_send(&ch->raw, &item);                                                 \
 }                                                                                           \
 BLZ_CHAN_UNUSED static inline int name##_send(name *ch, T item)                             \
 {                                                                                           \
  return blz_chan_send(&ch->raw, &item);                                                     \
 }                                                                                           \
 BLZ_CHAN_UNUSED static inline int name##_try_recv(name *ch, T *out)                         \
 {                                                                                           \
  return blz_chan_try_recv(&ch->raw, out);                                                   \
 }                                                                                           \
 BLZ_CHAN_UNUSED static inline int name##_recv(name *ch, T *out)                             \
 {                                                                                           \
  return blz_chan_recv(&ch->raw, out);                                                       \
 }                                                                                           \
 BLZ_CHAN_UNUSED static inline void name##_send_fut(name *ch, T item, name##_send_future *f) \
 {                                                                                           \
  f->item = item;                                                                            \
  blz_chan_send_fut_inline(&ch->raw, offsetof(name##_send_future, item), &f->base);          \
 }                                                                                           \
 BLZ_CHAN_UNUSED static inline void name##_recv_fut(name *ch, name##_recv_future *f)         \
 {                                                                                           \
  blz_chan_recv_fut_inline(&ch->raw, offsetof(name##_recv_future, value), &f->base);         \
 }
/* NOLINTEND(bugprone-macro-parentheses) */

/* ==== unbounded channel (MPSC) ============================================ */

typedef struct blz_uchan_seg blz_uchan_seg; /* private: a segment of slots */

/**
 * An unbounded multi-producer single-consumer channel: linked segments of
 * slots, so a send never waits (it allocates a segment now and then; one
 * spare is recycled). Receives must not overlap: one receiver at a time.
 * Every field is private.
 */
typedef struct blz_uchan {
    blz_chan_waitq q_;         /* lock_ serialises senders; the list holds the receiver */
    blz_uchan_seg *tail_seg_;  /* segment senders write into; under q_.lock_ */
    size_t tail_idx_;          /* next free slot in tail_seg_; under q_.lock_ */
    _Atomic(size_t) sent_;     /* items sent; written under q_.lock_ */
    _Atomic(uint32_t) closed_; /* 0 open, 1 closing (under q_.lock_), 2 closed */
    uint32_t pad_;
    char pad0_[BLZ_CHAN_CACHELINE];
    blz_uchan_seg *head_seg_;        /* segment the receiver reads; receiver only */
    size_t head_idx_;                /* next slot to read in head_seg_; receiver only */
    _Atomic(size_t) received_;       /* items received; receiver writes */
    _Atomic(blz_uchan_seg *) spare_; /* one drained segment kept for reuse */
    size_t elem_size_;               /* bytes per item; 0 before init and after deinit */
} blz_uchan;

/** A pending receive on a blz_uchan; fill with blz_uchan_recv_fut(). */
typedef struct blz_uchan_recv_future {
    blz_future base;         /**< result: 0 received, -EPIPE closed and drained */
    blz_uchan *chan_;        /* the channel */
    void *out_;              /* destination */
    blz_chan_waiter waiter_; /* linked in chan_->q_ while waiting */
} blz_uchan_recv_future;

/**
 * Initialises `ch` for items of `elem_size` bytes, allocating the first
 * segment. Returns 0, -EINVAL (NULL, zero or huge size), -ENOMEM.
 */
BLZ_API int blz_uchan_init(blz_uchan *ch, size_t elem_size);

/** Frees every segment; items left are discarded. Nothing may be pending. NULL is ignored. */
BLZ_API void blz_uchan_deinit(blz_uchan *ch);

/**
 * Appends `*item`. Never waits. Returns 0, -EPIPE (closed), -ENOMEM (a new
 * segment could not be allocated; nothing was sent), -EINVAL. May wake the
 * receiver.
 */
BLZ_API int blz_uchan_send(blz_uchan *ch, const void *item);

/**
 * Takes the oldest item. Returns 0, -EAGAIN (empty), -EPIPE (closed and
 * drained), -EINVAL. Receiver only; never suspends.
 */
BLZ_API int blz_uchan_try_recv(blz_uchan *ch, void *out);

/** Fills `f` with a receive into `*out`; completes with 0 or -EPIPE. Receiver only. */
BLZ_API void blz_uchan_recv_fut(blz_uchan *ch, void *out, blz_uchan_recv_future *f);

/**
 * Receives into `*out`, waiting while empty. Returns 0, -EPIPE, -EINVAL,
 * -ECANCELED (aborted), -EDEADLK (stackless poll). Suspends. Receiver only.
 */
BLZ_API int blz_uchan_recv(blz_uchan *ch, void *out);

/** Closes: later sends fail with -EPIPE, the receiver drains what is left. Idempotent. */
BLZ_API void blz_uchan_close(blz_uchan *ch);

/** Items in the channel now (a snapshot). */
BLZ_API size_t blz_uchan_len(const blz_uchan *ch);

/* ==== oneshot ============================================================= */

/** Bytes of a value a blz_oneshot holds inline; larger ones use blz_oneshot_init_buf(). */
#define BLZ_ONESHOT_INLINE 32

/**
 * A single value handed from one sender to one receiver. Embeddable and
 * allocation-free: the value is stored inline (up to BLZ_ONESHOT_INLINE
 * bytes) or in caller storage. Every field is private.
 *
 * Sides. The sender calls blz_oneshot_send() once, or blz_oneshot_close_tx()
 * to give up without a value; the receiver uses try_recv / recv / recv_fut,
 * or blz_oneshot_close_rx() to say it no longer wants the value (the sender
 * then gets -EPIPE). Each side is one task at a time; the two sides may run
 * on different threads. The struct must outlive both sides' calls.
 */
typedef struct blz_oneshot {
    _Atomic(uint32_t) state_; /* VALUE, TX_CLOSED, RX_CLOSED, RX_WAKER, LOCK bits */
    uint32_t taken_;          /* the receiver took the value; receiver only */
    size_t size_;             /* value size in bytes */
    void *buf_;               /* caller storage, or NULL for inline_ */
    blz_waker rx_waker_;      /* the waiting receiver; under the LOCK bit */
    blz_waker tx_waker_;      /* the sender waiting for the receiver to close; under LOCK */
    union {
        unsigned char bytes[BLZ_ONESHOT_INLINE];
        max_align_t align;
    } inline_; /* the value when it fits */
} blz_oneshot;

/** A pending receive on a blz_oneshot; fill with blz_oneshot_recv_fut(). */
typedef struct blz_oneshot_recv_future {
    blz_future base;  /**< result: 0 received, -EPIPE sender closed (or value already taken) */
    blz_oneshot *os_; /* the oneshot */
    void *out_;       /* destination */
} blz_oneshot_recv_future;

/** A pending wait for the receiver to close; fill with blz_oneshot_closed_fut(). */
typedef struct blz_oneshot_closed_future {
    blz_future base;  /**< result: 0 the receiver closed, -EEXIST the sender already finished */
    blz_oneshot *os_; /* the oneshot */
} blz_oneshot_closed_future;

/**
 * Initialises `o` for a value of `size` bytes stored inline. Returns 0, or
 * -EINVAL (NULL, size 0 or > BLZ_ONESHOT_INLINE). Never allocates.
 */
BLZ_API int blz_oneshot_init(blz_oneshot *o, size_t size);

/**
 * Initialises `o` for a value of `size` bytes kept in `buf`, which must
 * outlive `o`. Returns 0 or -EINVAL (NULL or size 0). Never allocates.
 */
BLZ_API int blz_oneshot_init_buf(blz_oneshot *o, void *buf, size_t size);

/**
 * Sends the value. Returns 0, -EEXIST (already sent or sender closed),
 * -EPIPE (the receiver closed: the value is not delivered), -EINVAL.
 * Sender side; never suspends; wakes the receiver.
 */
BLZ_API int blz_oneshot_send(blz_oneshot *o, const void *value);

/** The sender gives up without a value: the receiver sees -EPIPE. No-op after a send. */
BLZ_API void blz_oneshot_close_tx(blz_oneshot *o);

/**
 * The receiver gives up: a later send fails with -EPIPE. A value sent before
 * (the sender saw 0) is not dropped: blz_oneshot_try_recv still takes it, so
 * whatever it owns can be released. Receiver side; never suspends.
 */
BLZ_API void blz_oneshot_close_rx(blz_oneshot *o);

/** True once the receiver closed: lets the sender skip producing the value. */
BLZ_API bool blz_oneshot_rx_closed(const blz_oneshot *o);

/**
 * Sender side: waits until the receiver closes (Tokio's Sender::closed), so
 * work whose result nobody wants can stop: select it against the work.
 * Returns 0 (closed: a send would fail with -EPIPE), -EEXIST (this side
 * already sent or closed), -EINVAL, -ECANCELED, -EDEADLK. Suspends. The try
 * tier is blz_oneshot_rx_closed. Finish or drop the wait before sending:
 * once the value is taken the receiver may free the oneshot.
 */
BLZ_API int blz_oneshot_closed(blz_oneshot *o);

/** Future tier of blz_oneshot_closed. Sender side. */
BLZ_API void blz_oneshot_closed_fut(blz_oneshot *o, blz_oneshot_closed_future *f);

/**
 * Takes the value. Returns 0, -EAGAIN (not sent yet), -EPIPE (the sender
 * closed without a value, or the value was already taken), -EINVAL.
 * Receiver side; never suspends.
 */
BLZ_API int blz_oneshot_try_recv(blz_oneshot *o, void *out);

/** Fills `f` with a receive into `*out`. Receiver side; never suspends. */
BLZ_API void blz_oneshot_recv_fut(blz_oneshot *o, void *out, blz_oneshot_recv_future *f);

/**
 * Waits for the value. Returns 0, -EPIPE, -EINVAL, -ECANCELED (aborted),
 * -EDEADLK (stackless poll). Suspends. Receiver side.
 */
BLZ_API int blz_oneshot_recv(blz_oneshot *o, void *out);

/* ==== broadcast =========================================================== */

/**
 * A bounded ring where every receiver sees every message, in order. Sends
 * never wait: the oldest message is overwritten, and a receiver that fell
 * more than the capacity behind is told how many it missed (-EOVERFLOW) and
 * resumes at the oldest message still kept. Every field is private.
 */
typedef struct blz_broadcast {
    blz_chan_waitq q_;         /* lock_ serialises senders; the list holds waiting receivers */
    _Atomic(uint64_t) tail_;   /* messages sent so far = number of the next message */
    _Atomic(uint32_t) closed_; /* 0 open, 1 closing (under q_.lock_), 2 closed */
    uint32_t pad_;
    _Atomic(size_t) receivers_; /* subscribed receivers */
    unsigned char *buf_;        /* cap_ slots of stride_ bytes: stamp, then item words */
    size_t cap_;                /* ring size: capacity rounded up to a power of two */
    size_t elem_size_;          /* bytes per item */
    size_t stride_;             /* bytes per slot */
} blz_broadcast;

/**
 * One subscription to a broadcast. Owned by one task at a time (except
 * blz_broadcast_unsubscribe, callable from anywhere). Every field is private
 * but readable through blz_broadcast_rx_missed().
 */
typedef struct blz_broadcast_rx {
    blz_broadcast *bc_;        /* the channel */
    uint64_t next_;            /* number of the next message to read; owner only */
    uint64_t missed_;          /* messages skipped by the last -EOVERFLOW; owner only */
    _Atomic(uint32_t) closed_; /* unsubscribed */
    uint32_t pad_;
} blz_broadcast_rx;

/** A pending broadcast receive; fill with blz_broadcast_recv_fut(). */
typedef struct blz_broadcast_recv_future {
    blz_future base;         /**< result: 0, -EOVERFLOW (lagged), -EPIPE (closed or unsubscribed) */
    blz_broadcast_rx *rx_;   /* the subscription */
    void *out_;              /* destination */
    blz_chan_waiter waiter_; /* linked in rx_->bc_->q_ while waiting */
} blz_broadcast_recv_future;

/**
 * Initialises `b` for items of `elem_size` bytes keeping the last `capacity`
 * messages (rounded up to a power of two; blz_broadcast_capacity() tells).
 * One allocation. Returns 0, -EINVAL (NULL, zero size or capacity, too
 * large), -ENOMEM.
 */
BLZ_API int blz_broadcast_init(blz_broadcast *b, size_t elem_size, size_t capacity);

/** Frees the ring. No receive may be pending. NULL is ignored. */
BLZ_API void blz_broadcast_deinit(blz_broadcast *b);

/** Messages kept: the capacity rounded up to a power of two. */
BLZ_API size_t blz_broadcast_capacity(const blz_broadcast *b);

/**
 * Subscribes `rx`: it will receive every message sent after this call.
 * Returns 0, -EPIPE (closed), -EINVAL. Never suspends.
 */
BLZ_API int blz_broadcast_subscribe(blz_broadcast *b, blz_broadcast_rx *rx);

/**
 * Ends the subscription. A receive pending on `rx` completes with -EPIPE;
 * later receives return -EPIPE. Any thread; idempotent; never suspends.
 */
BLZ_API void blz_broadcast_unsubscribe(blz_broadcast_rx *rx);

/**
 * Sends `*item` to every subscriber. Never waits (the oldest message is
 * overwritten). Returns the number of subscribers (0 or more), or -EPIPE
 * (closed), -EINVAL. Wakes the receivers waiting for it.
 */
BLZ_API int blz_broadcast_send(blz_broadcast *b, const void *item);

/**
 * Reads the next message into `*out`. Returns 0, -EAGAIN (nothing new),
 * -EOVERFLOW (lagged: blz_broadcast_rx_missed() messages were lost; the next
 * call returns the oldest one kept, or lags again if senders overwrote that
 * one meanwhile), -EPIPE (closed and drained, or unsubscribed), -EINVAL.
 * `*out` holds a message only when it returns 0. Owner; never suspends.
 */
BLZ_API int blz_broadcast_try_recv(blz_broadcast_rx *rx, void *out);

/** How many messages the last -EOVERFLOW skipped. */
BLZ_API uint64_t blz_broadcast_rx_missed(const blz_broadcast_rx *rx);

/** Fills `f` with a receive on `rx` into `*out`. Owner; never suspends. */
BLZ_API void blz_broadcast_recv_fut(blz_broadcast_rx *rx, void *out, blz_broadcast_recv_future *f);

/**
 * Waits for the next message. Returns 0, -EOVERFLOW (see try_recv), -EPIPE,
 * -EINVAL, -ECANCELED (aborted), -EDEADLK (stackless poll). Suspends. Owner.
 */
BLZ_API int blz_broadcast_recv(blz_broadcast_rx *rx, void *out);

/** Closes: sends fail, receivers drain what they have not read, then see -EPIPE. */
BLZ_API void blz_broadcast_close(blz_broadcast *b);

/** Subscribed receivers now. */
BLZ_API size_t blz_broadcast_receivers(const blz_broadcast *b);

/* ==== watch =============================================================== */

/**
 * A single latest value with a version number. blz_watch_send() replaces it
 * and wakes every watcher; readers copy it out through a sequence lock, so a
 * read never tears under concurrent sends and never blocks a sender.
 * One allocation at init (the value's storage). Every field is private.
 */
typedef struct blz_watch {
    _Atomic(uint64_t) ver_;       /* version << 2 | WAITERS | WRITING */
    _Atomic(uint32_t) closed_;    /* set once */
    _Atomic(uint32_t) receivers_; /* subscribed watchers */
    _Atomic(uint64_t) *data_;     /* the value, in words_ 8-byte words */
    size_t elem_size_;            /* bytes of the value */
    size_t words_;                /* (elem_size_ + 7) / 8 */
    blz_chan_waitq q_;            /* watchers waiting for a change */
    blz_chan_waitq gone_q_;       /* waits for the last watcher to unsubscribe */
} blz_watch;

/** A watcher of a blz_watch: remembers the last version it saw. Owner only. */
typedef struct blz_watch_rx {
    blz_watch *w_;  /* the watch */
    uint64_t seen_; /* last version seen */
} blz_watch_rx;

/** A pending wait for a change; fill with blz_watch_changed_fut(). */
typedef struct blz_watch_changed_future {
    blz_future base;         /**< result: 0 changed (now marked seen), -EPIPE closed */
    blz_watch_rx *rx_;       /* the watcher */
    blz_chan_waiter waiter_; /* linked in rx_->w_->q_ while waiting */
} blz_watch_changed_future;

/** A pending wait for the last watcher to leave; fill with blz_watch_unwatched_fut(). */
typedef struct blz_watch_unwatched_future {
    blz_future base;         /**< result: 0 (no watcher subscribed) or -errno */
    blz_watch *w_;           /* the watch */
    blz_chan_waiter waiter_; /* linked in w_->gone_q_ while waiting */
} blz_watch_unwatched_future;

/**
 * Initialises `w` with `*initial` (version 1). Returns 0, -EINVAL (NULL or
 * zero size), -ENOMEM.
 */
BLZ_API int blz_watch_init(blz_watch *w, size_t elem_size, const void *initial);

/** Frees the value's storage. No wait may be pending. NULL is ignored. */
BLZ_API void blz_watch_deinit(blz_watch *w);

/**
 * Replaces the value with `*value` and wakes every watcher. Returns 0,
 * -EPIPE (closed), -EINVAL. Against a close on another thread: a send that
 * returns 0 is seen by every watcher before its -EPIPE, one that returns
 * -EPIPE changed nothing. Never suspends (senders serialise briefly).
 */
BLZ_API int blz_watch_send(blz_watch *w, const void *value);

/**
 * Copies the current value into `*out` and returns its version (>= 1), or
 * 0 for NULL arguments. Never tears, never suspends.
 */
BLZ_API uint64_t blz_watch_get(const blz_watch *w, void *out);

/** Closes: sends fail with -EPIPE; watchers see -EPIPE once they saw the last value. */
BLZ_API void blz_watch_close(blz_watch *w);

/** Subscribes `rx`; the current version counts as seen. Returns 0 or -EINVAL. */
BLZ_API int blz_watch_subscribe(blz_watch *w, blz_watch_rx *rx);

/**
 * Unsubscribes `rx` (Tokio's dropping a Receiver): the watch counts one
 * watcher fewer, and the last one to leave ends the blz_watch_unwatched
 * waits. `rx` is then unattached: its calls return -EINVAL (0 for the
 * borrows) until it subscribes again. No wait of `rx` may be pending. A
 * second call, or NULL, does nothing.
 */
BLZ_API void blz_watch_unsubscribe(blz_watch_rx *rx);

/** Watchers subscribed now (Tokio's receiver_count); 0 for NULL. */
BLZ_API size_t blz_watch_receivers(const blz_watch *w);

/**
 * Waits until no watcher is subscribed (Tokio's Sender::closed): a producer
 * can stop making values nobody will read. Returns 0 at once when none is.
 * -EINVAL, -ECANCELED, -EDEADLK. Suspends. The try tier is
 * blz_watch_receivers() == 0.
 */
BLZ_API int blz_watch_unwatched(blz_watch *w);

/** Future tier of blz_watch_unwatched. */
BLZ_API void blz_watch_unwatched_fut(blz_watch *w, blz_watch_unwatched_future *f);

/**
 * Copies the current value into `*out` without marking it seen; returns its
 * version (0 for NULL arguments). Owner; never suspends.
 */
BLZ_API uint64_t blz_watch_rx_borrow(blz_watch_rx *rx, void *out);

/** Like blz_watch_rx_borrow(), and marks the copied version seen. */
BLZ_API uint64_t blz_watch_rx_borrow_and_update(blz_watch_rx *rx, void *out);

/** 1 when a version newer than the seen one exists, 0 when not, -EPIPE closed with none. */
BLZ_API int blz_watch_rx_has_changed(const blz_watch_rx *rx);

/**
 * Fills `f` with a wait for a version newer than the seen one; on completion
 * that version is marked seen (read it with blz_watch_rx_borrow).
 */
BLZ_API void blz_watch_changed_fut(blz_watch_rx *rx, blz_watch_changed_future *f);

/**
 * Waits for a newer version, then marks it seen. Returns 0, -EPIPE (closed,
 * nothing unseen), -EINVAL, -ECANCELED, -EDEADLK. Suspends. Owner.
 */
BLZ_API int blz_watch_changed(blz_watch_rx *rx);

/* ==== select ============================================================== */

/** Select flags. */
#define BLZ_SELECT_FAIR 1u /**< start polling at a random branch, so none starves */

/** Branches one blz_chan_select_recv() handles. */
#define BLZ_CHAN_SELECT_MAX 16

/**
 * Waits for the first of several futures (channel receives, sends, or any
 * other future) and an optional deadline. The first branch found ready wins:
 * its future keeps its result (and, for a receive, its value); every other
 * branch is dropped, which unlinks its waiter and consumes nothing.
 */
typedef struct blz_chan_select_future {
    blz_future base;         /**< result: index of the winning branch, or -ETIMEDOUT */
    blz_future **branches_;  /* the branch futures, owned by the caller */
    size_t n_;               /* number of branches */
    blz_instant deadline_;   /* UINT64_MAX: no timeout branch */
    blz_sleep_future sleep_; /* the timeout branch */
    uint32_t rng_;           /* xorshift state for BLZ_SELECT_FAIR */
    uint32_t flags_;         /* BLZ_SELECT_* */
} blz_chan_select_future;

/**
 * Fills `f` to select over `branches[0..n)` (filled futures, not yet
 * completed) until `deadline` (UINT64_MAX: none). The branches must outlive
 * `f`. Completes with the winner's index, or -ETIMEDOUT (every branch
 * dropped), or -EINVAL (NULL, n = 0 without a deadline). Dropping `f` drops
 * every branch. Any thread; never suspends.
 */
BLZ_API void blz_chan_select_fut(blz_future **branches, size_t n, blz_instant deadline,
                                 unsigned flags, blz_chan_select_future *f);

/**
 * Awaits blz_chan_select_fut(). Returns the winner's index, -ETIMEDOUT,
 * -EINVAL, -ECANCELED (aborted: every branch dropped), -EDEADLK. Suspends.
 */
BLZ_API int blz_chan_select(blz_future **branches, size_t n, blz_instant deadline, unsigned flags);

/**
 * Receives from whichever of `chans[0..n)` has an item first, into
 * `outs[i]`, fairly (random start). A closed and drained channel drops out;
 * when every one has, returns -EPIPE. Returns the index of the channel that
 * delivered, -EPIPE, -ETIMEDOUT (deadline passed, nothing consumed), -EINVAL
 * (NULL, n = 0 or n > BLZ_CHAN_SELECT_MAX), -ECANCELED, -EDEADLK. Suspends.
 */
BLZ_API int blz_chan_select_recv(blz_chan **chans, void **outs, size_t n, blz_instant deadline);

#ifdef __cplusplus
}
#endif
#endif /* BLZ_CHAN_H */
