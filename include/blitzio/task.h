/*
 * blitzio/task.h — spawning tasks, join handles, yield and the combinators
 * over join handles and futures.
 *
 * A join handle is owned by whoever spawned the task until it is consumed by
 * blz_join_wait, a join future that completed, or blz_join_detach. Passing
 * NULL as `out` to a spawn function detaches at once. Its owner uses it from
 * one thread at a time: a blz_join_abort on a handle that another thread is
 * consuming may touch it after it is gone (there is no separate abort handle
 * such as Tokio's AbortHandle; abort through something the task watches, a
 * blz_cancel_token, instead).
 */
#ifndef BLZ_TASK_H
#define BLZ_TASK_H

#include "blitzio/common.h"
#include "blitzio/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Spawns `fn(arg)` as a fiber on the current runtime. Inside a runtime only
 * (-ESRCH outside; use blz_runtime_spawn from a foreign thread).
 * Returns 0, -EINVAL (fn NULL), -ESHUTDOWN (the runtime is being freed),
 * -ENOMEM.
 */
BLZ_API int blz_spawn(blz_task_fn fn, void *arg, blz_join **out);

/**
 * Spawns a stackless task: copies the `size` bytes of the future `f` (whose
 * first member is a blz_future) into the task cell and polls it there. The
 * caller's copy is not used afterwards. The task's result (for join) is
 * `(void *)(intptr_t)` the future's `result`. Returns 0, -EINVAL (`f` NULL
 * or without a vtable, `size` below sizeof(blz_future)), -ESRCH (no
 * runtime), -ESHUTDOWN (the runtime is being freed), -ENOMEM.
 */
BLZ_API int blz_spawn_future(const blz_future *f, size_t size, blz_join **out);

/**
 * blz_spawn for an `arg` that owns resources: if the task is aborted before
 * its fiber starts (blz_join_abort, or its runtime being freed), or its fiber
 * gets no stack (the task then ends with -ENOMEM), `release(arg)` runs
 * instead of `fn(arg)`, so exactly one of the two runs once the call
 * returned 0 and `arg` is let go either way (C's stand-in for a closure's
 * destructor). A fiber aborted after it started sees -ECANCELED from its
 * waits and returns through `fn`. On failure neither runs. `release` may be
 * NULL (then this is blz_spawn).
 */
BLZ_API int blz_spawn_owned(blz_task_fn fn, void (*release)(void *arg), void *arg, blz_join **out);

/**
 * Runs `fn(arg)` on the blocking pool, never on a worker. Any runtime thread.
 * Without a blocking_queue_limit (the default) it never waits. With one, and
 * that many jobs already waiting for a thread, it waits for one of them to
 * start, spawns queued earlier going first: suspends a fiber, parks a foreign
 * thread, -EDEADLK inside a stackless poll (use blz_spawn_blocking_fut there)
 * and on the pool's own threads (jobs that all waited for room in their own
 * pool would never start another; use the try tier there).
 * @return 0 (the handle in `*out`, or detached when `out` is NULL);
 *         -ECANCELED (the calling task was aborted while waiting: nothing was
 *         spawned); -ESHUTDOWN (the runtime is being freed); -ENOMEM; -EAGAIN
 *         (no pool thread could be started); -EINVAL (NULL fn); -ESRCH (not
 *         on a runtime's thread).
 */
BLZ_API int blz_spawn_blocking(blz_task_fn fn, void *arg, blz_join **out);

/** blz_spawn_blocking that never waits: -EAGAIN, with nothing spawned, when
 * blocking_queue_limit jobs are waiting or earlier spawns wait for room. */
BLZ_API int blz_try_spawn_blocking(blz_task_fn fn, void *arg, blz_join **out);

/** The future of a spawn onto the blocking pool. Fields ending in `_` are private. */
typedef struct blz_spawn_blocking_future {
    blz_future base;
    blz_join *join; /**< once completed with 0: the job's handle, the caller's to join or detach */
    blz_runtime *rt_;
    blz_task_fn fn_;
    void *arg_;
    blz_waiter waiter_; /* in the pool's queue of spawns waiting for room */
} blz_spawn_blocking_future;

/**
 * Fills `f` to spawn `fn(arg)` on the blocking pool of the calling thread's
 * runtime once there is room (see blz_spawn_blocking). Completes with 0 and
 * the handle in `f->join`, or blz_spawn_blocking's errors (-ESRCH when the
 * thread has no runtime). Dropped before it completes, it has spawned
 * nothing. Allocates only the task, when it spawns. NULL `f` is ignored.
 */
BLZ_API void blz_spawn_blocking_fut(blz_task_fn fn, void *arg, blz_spawn_blocking_future *f);

/** The same, onto an explicit runtime; callable from any thread. A NULL `rt` is -EINVAL (the
 * future tier completes with it), not -ESRCH. */
BLZ_API int blz_runtime_spawn(blz_runtime *rt, blz_task_fn fn, void *arg, blz_join **out);
BLZ_API int blz_runtime_spawn_owned(blz_runtime *rt, blz_task_fn fn, void (*release)(void *arg),
                                    void *arg, blz_join **out);
BLZ_API int blz_runtime_spawn_future(blz_runtime *rt, const blz_future *f, size_t size,
                                     blz_join **out);
BLZ_API int blz_runtime_spawn_blocking(blz_runtime *rt, blz_task_fn fn, void *arg, blz_join **out);
BLZ_API int blz_runtime_try_spawn_blocking(blz_runtime *rt, blz_task_fn fn, void *arg,
                                           blz_join **out);
BLZ_API void blz_runtime_spawn_blocking_fut(blz_runtime *rt, blz_task_fn fn, void *arg,
                                            blz_spawn_blocking_future *f);

/**
 * Waits for the task and consumes the handle. Returns 0 and stores the
 * task's return value in `*result` (if non-NULL), or -ECANCELED when an
 * abort cut the task short (see blz_join_abort; `*result` NULL). Suspends a fiber; parks a foreign
 * thread; -EDEADLK from inside a stackless poll (use blz_join_wait_fut there). -EINVAL for NULL.
 * -ENOMEM when a foreign thread cannot allocate what it parks on: the handle is consumed (detached)
 * all the same, as by every result but -EDEADLK.
 */
BLZ_API int blz_join_wait(blz_join *j, void **result);

/**
 * Requests cancellation. A stackless task not yet finished has its future
 * dropped (waiters unlinked); a fiber sees -ECANCELED from its current and
 * every later blz_await until it returns, and its task then ends with
 * -ECANCELED. A fiber that returns without waiting again (the abort came
 * during its last stretch) ends with its value, as a task that had finished
 * first does: nothing it returns is dropped unseen. The handle stays owned
 * by the caller.
 */
BLZ_API void blz_join_abort(blz_join *j);

/** True once the task completed (or was cancelled). Never blocks. */
BLZ_API bool blz_join_is_finished(const blz_join *j);

/** Gives up the handle; the task runs on and is freed when it finishes. */
BLZ_API void blz_join_detach(blz_join *j);

/** A future that waits for a task. Consumes the handle once it completes. */
typedef struct blz_join_future {
    blz_future base;
    blz_join *join_;
    void *output; /**< the task's return value once ready with result 0 */
} blz_join_future;

/** Fills `f` to wait for `j`. Dropping `f` before completion detaches `j`. NULL `f` is ignored
 * (`j` stays the caller's). */
BLZ_API void blz_join_wait_fut(blz_join *j, blz_join_future *f);

/**
 * Yields the rest of this tick: in a fiber, lets other tasks run. The fiber
 * runs again once the tasks ready on its worker (including those woken
 * meanwhile) have had their turn, or after at most 61 scheduler ticks when
 * they never run out. No-op outside a fiber (a thread outside the runtime,
 * a blocking job, a stackless poll: use blz_yield_fut there).
 */
BLZ_API void blz_yield(void);

/** A future that is pending once (after waking itself), then ready. */
typedef struct blz_yield_future {
    blz_future base;
    bool yielded_;
} blz_yield_future;

/** Fills `f` to yield once (blz_yield's future tier). NULL `f` is ignored. */
BLZ_API void blz_yield_fut(blz_yield_future *f);

/* ---- combinators over join handles ----------------------------------- */

/*
 * The four below also return -EINVAL (`joins` NULL, `n` 0, or a NULL handle)
 * and -EDEADLK inside a stackless poll, consuming nothing then. When the
 * calling task is aborted while they wait (or a foreign thread cannot
 * allocate its parker, -ENOMEM), the handles not yet consumed are detached
 * (join_all), aborted and detached (try_join_all, race) or left to the
 * caller (select). Their results are written NULL before the wait, so that
 * on any return an entry holds the value of a task joined (race: of the
 * winner, even when -ECANCELED comes from the caller's own abort while the
 * losers are joined) or NULL, and values that own memory can be released.
 */

/**
 * Waits for all `n` tasks; consumes every handle. results[i] receives each
 * task's value (results may be NULL). Returns 0, or the first error seen
 * (e.g. -ECANCELED) after still waiting for the rest.
 */
BLZ_API int blz_join_all(blz_join **joins, size_t n, void **results);

/**
 * Like blz_join_all, but the first task that fails (aborted) aborts all the
 * others; returns its error once every task has finished.
 */
BLZ_API int blz_try_join_all(blz_join **joins, size_t n, void **results);

/**
 * Waits for the first task to finish; aborts and joins the others. Consumes
 * all handles. Returns the index of the winner and stores its value; if the
 * first to finish had been aborted, returns -ECANCELED (the value stored is
 * NULL). A loser that finished before its abort landed has its value
 * dropped; where values own memory, use blz_select and join the rest.
 */
BLZ_API int blz_race(blz_join **joins, size_t n, void **result);

/**
 * Waits for the first task to finish and returns its index; that handle is
 * consumed (its value stored: NULL if it had been aborted), the others stay
 * valid and keep running.
 */
BLZ_API int blz_select(blz_join **joins, size_t n, void **result);

/* ---- task sets ------------------------------------------------------------ */

/**
 * A set of tasks joined in the order they finish (Tokio's JoinSet): spawn
 * into it, take each result with blz_task_set_join_next as its task
 * completes, abort them all, and never lose one. O(1) per join: a finishing
 * task queues itself in the set; nothing is polled in a loop.
 *
 * One owner at a time spawns, joins and frees (the set is not a channel for
 * several joiners); the tasks themselves may finish on any thread.
 */
typedef struct blz_task_set blz_task_set;

/** An empty set. 0, -EINVAL (out NULL), -ENOMEM. */
BLZ_API int blz_task_set_new(blz_task_set **out);

/** Spawns fn(arg) as a fiber on the current runtime into `s`.
 * 0, -EINVAL, -ESRCH (no runtime), -ESHUTDOWN, -ENOMEM. */
BLZ_API int blz_task_set_spawn(blz_task_set *s, blz_task_fn fn, void *arg);

/** Spawns a copy of the stackless future `f` (`size` bytes) into `s`.
 * Returns as blz_spawn_future. */
BLZ_API int blz_task_set_spawn_future(blz_task_set *s, const blz_future *f, size_t size);

/** Adopts a join handle (a blocking job's, say): it belongs to `s` on
 * success; on error (-EINVAL, -ENOMEM) it stays the caller's. */
BLZ_API int blz_task_set_add(blz_task_set *s, blz_join *j);

/** Tasks in `s` not yet joined, finished or not. */
BLZ_API size_t blz_task_set_len(const blz_task_set *s);

/**
 * Joins a task of `s` that has finished, without waiting: its status (0, or
 * -ECANCELED when it was aborted) and its value in `*result` (may be NULL);
 * -EAGAIN when none has finished yet; -ECHILD when `s` holds no task;
 * -EINVAL when `s` is NULL.
 */
BLZ_API int blz_task_set_try_join_next(blz_task_set *s, void **result);

/** The join-next future: caller-owned; fields ending in `_` are private. */
typedef struct blz_task_set_join_future {
    blz_future base;
    blz_task_set *set_;
    void **result_;
} blz_task_set_join_future;

/** Fills `f` to join the next task of `s` to finish (result as try_join_next,
 * never -EAGAIN). Dropping it while pending joins nothing. */
BLZ_API void blz_task_set_join_next_fut(blz_task_set *s, void **result,
                                        blz_task_set_join_future *f);

/** Waits for the next task of `s` to finish and joins it (as the future).
 * Suspends a fiber; parks a foreign thread; -EDEADLK in a stackless poll.
 * In a fiber that was aborted it waits no more: -ECANCELED when no task has
 * finished yet, which a loop over it must stop on too. */
BLZ_API int blz_task_set_join_next(blz_task_set *s, void **result);

/** Requests cancellation of every task in `s`; they stay in it, to be joined
 * (with -ECANCELED unless they had finished). */
BLZ_API void blz_task_set_abort_all(blz_task_set *s);

/**
 * Aborts every task in `s` and waits until all have finished, discarding
 * their values: afterwards `s` is empty and none of its tasks runs any more.
 * It waits even in a fiber that was itself aborted (cleanup of an owner).
 * 0, -EINVAL, -EDEADLK in a stackless poll (nothing waited for), -ENOMEM on a
 * foreign thread that cannot allocate what it parks on (the tasks are
 * aborted and stay in `s`, to be joined or freed).
 */
BLZ_API int blz_task_set_shutdown(blz_task_set *s);

/**
 * Frees `s` without waiting: tasks still in it are aborted, and what is left
 * of the set goes away once the last of them has finished. NULL is a no-op.
 */
BLZ_API void blz_task_set_free(blz_task_set *s);

/* ---- combinators over futures ------------------------------------------ */

/*
 * The four below also return -EINVAL (`fs` NULL, `n` 0 or above
 * BLZ_COMBINE_MAX, or a NULL future) and -EDEADLK inside a stackless poll,
 * touching no future then. When the calling task is aborted while they wait
 * (-ECANCELED; or -ENOMEM, a foreign thread without its parker), the futures
 * not yet ready are dropped, except by select.
 */

/**
 * Polls all futures until every one is ready. Each keeps its own result.
 * Returns 0, or the first negative result by index order.
 */
BLZ_API int blz_join_all_futures(blz_future **fs, size_t n);

/** Like join_all_futures; the first negative result drops the rest and is returned. */
BLZ_API int blz_try_join_all_futures(blz_future **fs, size_t n);

/** First future ready wins (its index is returned); the others are dropped. */
BLZ_API int blz_race_futures(blz_future **fs, size_t n);

/** First future ready wins (its index is returned); the others are left pending, not dropped. */
BLZ_API int blz_select_futures(blz_future **fs, size_t n);

/** The future tiers of the four combinators: caller-owned, no allocation. */
typedef struct blz_combine_future {
    blz_future base;
    blz_future **fs_;
    size_t n_;
    uint64_t done_mask_lo_; /* futures [0, 64) already ready, for join_all */
    int kind_;
    int first_err_;
} blz_combine_future;

#define BLZ_COMBINE_MAX 64 /**< join_all_fut handles at most this many futures */

/* Each fills `f` and returns 0, or -EINVAL as its await tier (then `f`, if
 * not NULL, polls ready with -EINVAL). The result is as the await tier's. */

BLZ_API int blz_join_all_fut(blz_future **fs, size_t n, blz_combine_future *f);
BLZ_API int blz_try_join_all_fut(blz_future **fs, size_t n, blz_combine_future *f);
BLZ_API int blz_race_fut(blz_future **fs, size_t n, blz_combine_future *f);
BLZ_API int blz_select_fut(blz_future **fs, size_t n, blz_combine_future *f);

#ifdef __cplusplus
}
#endif
#endif /* BLZ_TASK_H */
