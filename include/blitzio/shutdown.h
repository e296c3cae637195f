/*
 * blitzio/shutdown.h — a graceful-shutdown coordinator.
 *
 * A blz_shutdown is a one-way switch plus a count of work in flight:
 *
 *   trigger   blz_shutdown_trigger() (a call), or a signal arranged with
 *             blz_shutdown_on_signals() (SIGINT, SIGTERM...). Idempotent.
 *   observe   blz_shutdown_is_triggered() (never waits) and the wait future
 *             (blz_shutdown_wait_fut / blz_shutdown_wait), e.g. raced against
 *             an accept so that a server stops accepting at once.
 *   guards    blz_shutdown_guard_acquire() before a unit of work (a
 *             connection, a request), blz_shutdown_guard_release() after it.
 *             Once triggered, acquire fails with -ESHUTDOWN, so the count
 *             only goes down from then on.
 *   drain     blz_shutdown_wait_for_pending(deadline): waits until every
 *             guard is released or the deadline passes, and says how many
 *             were still held.
 *
 * Typical server:
 *
 *   blz_shutdown sd;
 *   blz_shutdown_init(&sd);
 *   blz_shutdown_on_signals(&sd, NULL, 0);          // SIGINT and SIGTERM
 *   ... acceptor: race accept against blz_shutdown_wait_fut; per connection
 *       take a guard, serve, release it ...
 *   blz_shutdown_wait(&sd);                         // until a signal comes
 *   int left = blz_shutdown_wait_for_pending(&sd, blz_instant_add(blz_clock_now(),
 *                                                                 blz_secs(5)));
 *   blz_shutdown_deinit(&sd);
 *
 * Storage. Caller-owned, nothing allocated. A coordinator on which
 * blz_shutdown_on_signals() was never called needs no deinit; otherwise
 * blz_shutdown_deinit() must run before the struct goes away and before the
 * runtime that call ran in is freed (it stops and joins the task that listens
 * for the signals). Pending futures must be
 * completed or dropped before that, as for any primitive.
 *
 * Thread affinity: every function may be called from any thread (a fiber, a
 * stackless poll for the non-waiting and future tiers, a foreign thread),
 * except blz_shutdown_on_signals, which must run inside a runtime.
 */
#ifndef BLZ_SHUTDOWN_H
#define BLZ_SHUTDOWN_H

#include "blitzio/common.h"
#include "blitzio/future.h"
#include "blitzio/sync.h"
#include "blitzio/time.h"

#include <stdatomic.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The most signals one blz_shutdown_on_signals() call can arrange. */
#define BLZ_SHUTDOWN_MAX_SIGNALS 8

/** The coordinator. Fields ending in `_` are private. */
typedef struct blz_shutdown {
    _Atomic uint64_t state_; /* guards held << 2 | ZEROING (2) | TRIGGERED (1) */
    _Atomic int signo_;      /* the signal that triggered it, -1 a call, 0 not yet */
    blz_cancel_token token_; /* cancelled by the trigger: wait futures queue on it */
    blz_notify drained_;     /* notify_all each time the guard count falls to 0 */
    blz_join *signals_;      /* the task of blz_shutdown_on_signals, or NULL */
} blz_shutdown;

/**
 * Initialises `sd`: not triggered, no guard held, no signal arranged.
 * @return 0, or -EINVAL for NULL. Not thread-safe against other use of `sd`.
 */
BLZ_API int blz_shutdown_init(blz_shutdown *sd);

/**
 * Stops the signal task of blz_shutdown_on_signals(), if any, and waits for
 * it to end; the signals' previous dispositions are back afterwards. Does not
 * trigger. Needed (only) when on_signals was called, before `sd` goes away.
 * It waits even in a task that was aborted (the usual way to reach clean-up
 * code): once it returns, nothing of blitzio touches `sd` any more.
 * @return 0; -EINVAL for NULL; -EDEADLK inside a stackless poll (nothing
 *         done, the signals are still arranged: call it from a fiber or a
 *         thread).
 * Suspends the calling fiber (briefly); parks a thread outside any runtime.
 */
BLZ_API int blz_shutdown_deinit(blz_shutdown *sd);

/**
 * Triggers the shutdown: is_triggered becomes true, every wait future
 * completes, later guard acquisitions fail with -ESHUTDOWN. Idempotent;
 * NULL is ignored. Any thread; never waits.
 */
BLZ_API void blz_shutdown_trigger(blz_shutdown *sd);

/** True once triggered (by a call or a signal). False for NULL. Any thread; never waits. */
BLZ_API bool blz_shutdown_is_triggered(const blz_shutdown *sd);

/**
 * The signal that triggered the shutdown, or 0 (not triggered, triggered by
 * a call, or NULL). Any thread; never waits.
 */
BLZ_API int blz_shutdown_signal(const blz_shutdown *sd);

/**
 * Arranges for the first delivery of any of `signals` (n of them, at most
 * BLZ_SHUTDOWN_MAX_SIGNALS) to trigger `sd`. NULL / 0 means SIGINT and
 * SIGTERM. Listens at once (blitzio/signal.h), in a stackless task spawned on
 * the current runtime. That task ends when `sd` is triggered, by a signal or
 * by a call, and then stops listening, which restores each signal's previous
 * disposition: a second SIGINT during the drain acts as it would without
 * blitzio (by default it ends the process), the usual "press Ctrl-C twice to
 * force" behaviour. Call blz_shutdown_deinit() before `sd` goes away.
 * @return 0; -EINVAL (NULL `sd`, n too large, a signal refused by
 *         blz_signal_listen); -EBUSY (signals were already arranged on `sd`,
 *         or a stall watchdog holds one of them); -ESRCH (not inside a
 *         runtime); -ESHUTDOWN (the runtime is being freed); -ENOMEM,
 *         -EMFILE. On error nothing was arranged.
 * Inside a runtime; never suspends.
 */
BLZ_API int blz_shutdown_on_signals(blz_shutdown *sd, const int *signals, size_t n);

/* ---- waiting for the trigger ----------------------------------------------- */

/** The wait future. Fields ending in `_` are private. */
typedef struct blz_shutdown_wait_future {
    blz_future base;
    blz_shutdown *sd_;       /* the coordinator, or NULL (the poll reports -EINVAL) */
    blz_cancel_future wait_; /* waits on sd_->token_ */
} blz_shutdown_wait_future;

/**
 * Fills `f` to complete once `sd` is triggered, with the triggering signal
 * number (> 0), 0 when it was triggered by a call, or -EINVAL for a NULL `sd`.
 * Dropping it while pending unlinks it. NULL `f` is ignored. Never suspends.
 */
BLZ_API void blz_shutdown_wait_fut(blz_shutdown *sd, blz_shutdown_wait_future *f);

/**
 * Waits until `sd` is triggered.
 * @return the triggering signal (> 0) or 0 (a call); -EINVAL; -ECANCELED (the
 *         calling task was aborted); -EDEADLK inside a stackless poll.
 * Suspends the calling fiber; parks a thread outside any runtime.
 */
BLZ_API int blz_shutdown_wait(blz_shutdown *sd);

/* ---- work guards ---------------------------------------------------------- */

/**
 * Counts one more unit of work in flight, unless the shutdown was triggered.
 * Pair every success with one blz_shutdown_guard_release().
 * @return 0; -ESHUTDOWN once triggered (nothing counted); -EINVAL for NULL.
 * Any thread; never waits.
 */
BLZ_API int blz_shutdown_guard_acquire(blz_shutdown *sd);

/**
 * Ends a unit of work counted by blz_shutdown_guard_acquire(); the last one
 * wakes blz_shutdown_wait_for_pending. Releasing more than was acquired is a
 * bug (ignored when the count is already 0). NULL is ignored. Any thread;
 * never waits.
 */
BLZ_API void blz_shutdown_guard_release(blz_shutdown *sd);

/** The number of guards held right now (a snapshot); 0 for NULL. Any thread; never waits. */
BLZ_API size_t blz_shutdown_pending(const blz_shutdown *sd);

/** The wait_for_pending future. Fields ending in `_` are private. */
typedef struct blz_shutdown_pending_future {
    blz_future base;
    blz_shutdown *sd_;             /* the coordinator, or NULL (the poll reports -EINVAL) */
    blz_notify_wait_future drain_; /* a wake-up when the count falls to 0 */
    blz_sleep_future sleep_;       /* the deadline */
    int armed_;                    /* 1 while drain_ is filled and not finished */
} blz_shutdown_pending_future;

/**
 * Fills `f` to complete when no guard is held (result 0) or at `deadline`
 * (blz_clock_now() time) with the number of guards still held then (> 0,
 * saturating at INT_MAX); -EINVAL for a NULL `sd`. It does not trigger the
 * shutdown: called before the trigger, it may complete while new guards can
 * still be taken. Dropping it unlinks its timer and waiter. Never suspends.
 */
BLZ_API void blz_shutdown_wait_for_pending_fut(blz_shutdown *sd, blz_instant deadline,
                                               blz_shutdown_pending_future *f);

/**
 * Waits until every guard is released or `deadline` passes.
 * @return 0 (all released); the number still held at the deadline (> 0);
 *         -EINVAL; -ECANCELED (the calling task was aborted); -EDEADLK inside
 *         a stackless poll.
 * Suspends the calling fiber; parks a thread outside any runtime.
 */
BLZ_API int blz_shutdown_wait_for_pending(blz_shutdown *sd, blz_instant deadline);

#ifdef __cplusplus
}
#endif
#endif /* BLZ_SHUTDOWN_H */
