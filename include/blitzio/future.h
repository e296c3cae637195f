/*
 * blitzio/future.h — the core protocol every waiting operation is built on:
 * futures, wakers, contexts, the protothread macros and blz_await.
 *
 * A future is a caller-owned struct whose first member is a blz_future. Its
 * poll either finishes (BLZ_READY, with its status in `result`) or arranges
 * for the context's waker to be woken and returns BLZ_PENDING. A future that
 * returned BLZ_READY has released everything it held. A future abandoned while
 * pending must be passed to blz_future_drop(), which unlinks whatever waiter
 * it registered; a linked future must not move or be freed until then.
 */
#ifndef BLZ_FUTURE_H
#define BLZ_FUTURE_H

#include "blitzio/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The outcome of one poll. */
typedef enum blz_poll {
    BLZ_PENDING = 0, /**< not finished; the waker will be woken when progress is possible */
    BLZ_READY = 1,   /**< finished; the future's `result` holds its status */
} blz_poll;

/*
 * A waker is a (vtable, data) pair, as in Rust's RawWaker. `wake` consumes the
 * waker's reference, `wake_by_ref` does not, `clone` returns the data pointer of
 * a new reference, `drop` releases one. All four may be called from any thread.
 */
typedef struct blz_waker_vtable {
    void (*wake)(void *data);
    void (*wake_by_ref)(void *data);
    void *(*clone)(void *data);
    void (*drop)(void *data);
} blz_waker_vtable;

typedef struct blz_waker {
    const blz_waker_vtable *vtable; /**< NULL for an empty waker */
    void *data;
} blz_waker;

/** What a poll is given: the waker of the task that polls. */
typedef struct blz_context {
    const blz_waker *waker;
} blz_context;

typedef struct blz_future_vtable {
    /** Advance the future. Must not block the thread. */
    blz_poll (*poll)(blz_future *f, blz_context *cx);
    /** Release what a pending future holds (unlink waiters, return resources). May be NULL. */
    void (*drop)(blz_future *f);
} blz_future_vtable;

struct blz_future {
    const blz_future_vtable *vtable; /**< NULL once dropped */
    int result;                      /**< status once ready: 0 / a count, or -errno */
    int pt_;                         /**< resume point for the BLZ_ASYNC macros */
};

/* ---- wakers ------------------------------------------------------------- */

/** An empty waker (no vtable). Waking it does nothing. */
#define BLZ_WAKER_NONE ((blz_waker){NULL, NULL})

/** Wakes and consumes `w`; `w` is empty afterwards. Any thread. */
static inline void
blz_waker_wake(blz_waker *w)
{
    const blz_waker_vtable *vt = w->vtable;
    w->vtable = NULL;
    if (vt) {
        vt->wake(w->data);
    }
}

/** Wakes without consuming `w`. Any thread. */
static inline void
blz_waker_wake_by_ref(const blz_waker *w)
{
    if (w->vtable) {
        w->vtable->wake_by_ref(w->data);
    }
}

/** Returns a new reference to the same wakeable thing. Any thread. */
static inline blz_waker
blz_waker_clone(const blz_waker *w)
{
    blz_waker c = {w->vtable, NULL};
    if (w->vtable) {
        c.data = w->vtable->clone(w->data);
    }
    return c;
}

/** Releases `w`'s reference; `w` is empty afterwards. Any thread. */
static inline void
blz_waker_drop(blz_waker *w)
{
    const blz_waker_vtable *vt = w->vtable;
    w->vtable = NULL;
    if (vt) {
        vt->drop(w->data);
    }
}

/** True when waking `a` and `b` wakes the same thing, so a stored clone can be kept. */
static inline bool
blz_waker_will_wake(const blz_waker *a, const blz_waker *b)
{
    return a->vtable == b->vtable && a->data == b->data;
}

/** Stores a clone of `src` in `slot` unless `slot` already wakes the same thing. */
static inline void
blz_waker_set(blz_waker *slot, const blz_waker *src)
{
    if (!blz_waker_will_wake(slot, src)) {
        blz_waker_drop(slot);
        *slot = blz_waker_clone(src);
    }
}

/* ---- futures ------------------------------------------------------------ */

/** Initialises the base of a future. */
static inline void
blz_future_init(blz_future *f, const blz_future_vtable *vt)
{
    f->vtable = vt;
    f->result = 0;
    f->pt_ = 0;
}

/** Polls `f` once. A dropped future reports ready with -ECANCELED. */
static inline blz_poll
blz_future_poll(blz_future *f, blz_context *cx)
{
    if (!f->vtable) {
        f->result = -ECANCELED;
        return BLZ_READY;
    }
    return f->vtable->poll(f, cx);
}

/**
 * Abandons `f`: unlinks its waiters and returns what it held (a lock or permit
 * already handed to it is passed on). Safe on a ready or already-dropped future.
 * Afterwards the future may be freed or reused. Any thread that owns `f`.
 */
BLZ_API void blz_future_drop(blz_future *f);

/**
 * Runs `f` to completion and returns its result.
 * - In a fiber task: suspends only this fiber until the future is ready.
 * - On a thread outside any runtime: parks the thread.
 * - Inside a stackless future's poll (a worker thread): returns -EDEADLK
 *   without polling, because it would block the worker.
 * If the calling task is aborted while waiting, `f` is dropped and -ECANCELED
 * returned; so is it, with -ENOMEM, on a thread that cannot allocate what it
 * parks on (its first wait). Enforces the coop budget: a fiber that awaits ready futures
 * repeatedly yields once its budget of polls is spent.
 */
BLZ_API int blz_await(blz_future *f);

/** A waker that does nothing, for polling futures by hand. */
BLZ_API const blz_waker *blz_waker_noop(void);

/*
 * Protothread-style macros that let a stackless poll read top to bottom. Locals
 * that live across an await must be fields of the future's own struct.
 *
 *   static blz_poll my_poll(blz_future *self, blz_context *cx) {
 *       struct my_fut *m = (struct my_fut *)self;
 *       BLZ_ASYNC_BEGIN(self);
 *       blz_sleep_fut(&m->sleep, blz_ms(10));
 *       BLZ_AWAIT(self, cx, &m->sleep.base);
 *       BLZ_ASYNC_RETURN(self, m->sleep.base.result);
 *       BLZ_ASYNC_END(self);
 *   }
 */
#if defined(__GNUC__)
# define BLZ_FALLTHROUGH __attribute__((fallthrough))
#else
# define BLZ_FALLTHROUGH ((void) 0)
#endif

#define BLZ_ASYNC_BEGIN(self) \
 switch ((self)->pt_) {       \
 case 0:

#define BLZ_AWAIT(self, cx, sub)                     \
 do {                                                \
  (self)->pt_ = __LINE__;                            \
  BLZ_FALLTHROUGH;                                   \
 case __LINE__:                                      \
  if (blz_future_poll((sub), (cx)) == BLZ_PENDING) { \
   return BLZ_PENDING;                               \
  }                                                  \
 } while (0)

#define BLZ_ASYNC_RETURN(self, value) \
 do {                                 \
  (self)->result = (value);           \
  (self)->pt_ = -1;                   \
  return BLZ_READY;                   \
 } while (0)

#define BLZ_ASYNC_END(self) \
 BLZ_FALLTHROUGH;           \
default:                    \
 break;                     \
 }                          \
 return BLZ_READY

/*
 * A waiter node that a primitive links into its wait queue. It lives inside a
 * future; the primitive owns `next_`, `prev_` and `state_` while it is linked.
 */
typedef struct blz_waiter {
    struct blz_waiter *next_;
    struct blz_waiter *prev_;
    blz_waker waker_;
    uintptr_t state_;
} blz_waiter;

#ifdef __cplusplus
}
#endif
#endif /* BLZ_FUTURE_H */
