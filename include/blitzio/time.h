/*
 * blitzio/time.h — the clock, sleeps, intervals, timeouts and deadlines.
 *
 * Time is a blz_instant on the monotonic clock, in nanoseconds. Inside a
 * runtime created with `paused_clock`, "now" is the runtime's virtual clock:
 * it stands still until blz_runtime_advance() moves it or, when every task is
 * idle, the runtime jumps it to the next timer. Every function here that reads
 * "now" reads the clock of the runtime the calling thread runs a task of
 * (blz_clock_now()), and the real clock (blz_now()) on any other thread.
 *
 * Precision. Timers are kept in a wheel of 1 ms ticks. A deadline is rounded
 * UP to the next tick, so a timer never fires before its deadline and fires at
 * most about 1 ms after it (plus scheduling delay on a busy runtime).
 *
 * Storage. A sleep, interval or timeout is a caller-owned struct; its timer
 * entry is an intrusive node inside it, so waiting allocates nothing. Once
 * polled, such a struct is linked into the runtime's timer wheel and must not
 * move or be freed until it completes or is passed to blz_future_drop().
 */
#ifndef BLZ_TIME_H
#define BLZ_TIME_H

#include "blitzio/common.h"
#include "blitzio/future.h"

#ifdef __cplusplus
extern "C" {
#endif

struct blz__timers;

/* ---- clock -------------------------------------------------------------- */

/**
 * The current time as this thread's runtime sees it: the runtime's virtual
 * clock when it was created with `paused_clock`, the monotonic clock
 * otherwise, and blz_now() on a thread that runs no runtime task.
 * Any thread; never suspends.
 */
BLZ_API blz_instant blz_clock_now(void);

/* ---- timer entry ---------------------------------------------------------- */

/**
 * The intrusive node a sleep links into the timer wheel. Every field is
 * private. While linked, the wheel's lock protects the links, `waker_` and
 * `state_`; `timers_` is the owner's, but for the fire, which clears it as
 * its last write to an entry it fired (so a fired entry keeps no reference
 * to timers that may be freed before its owner polls it).
 */
typedef struct blz_timer_entry {
    struct blz_timer_entry *next_;   /* next entry in the same wheel slot or pending list */
    struct blz_timer_entry **pprev_; /* the pointer that points at this entry; NULL when unlinked */
    _Atomic(struct blz__timers *) timers_; /* the timers it is linked in, or NULL */
    uint64_t tick_;                        /* the deadline as a wheel tick, rounded up */
    blz_instant when_; /* linked: the exact deadline; idle: a known past instant */
    blz_waker waker_;  /* woken when the entry fires */
    uint32_t state_;   /* BLZ__TE_* kind, plus the wheel level and slot */
} blz_timer_entry;

/* ---- sleep ---------------------------------------------------------------- */

/** A future that completes (result 0) once its deadline has passed. */
typedef struct blz_sleep_future {
    blz_future base;
    blz_timer_entry entry_;
    blz_instant deadline; /**< when the sleep completes; read-only for the user */
} blz_sleep_future;

/**
 * Fills `f` with a sleep that completes `d` after now (blz_clock_now()).
 * `d` <= 0 gives a sleep that is ready at its first poll. Polling `f` links
 * it into the current runtime's timer wheel; on a thread outside any runtime
 * the awaiting thread parks until the deadline instead. Complete with result
 * 0, or -ECANCELED if the runtime was freed while it waited.
 * `f` must not be linked already (drop it first). Any thread; never suspends.
 */
BLZ_API void blz_sleep_fut(blz_sleep_future *f, blz_duration d);

/**
 * Fills `f` with a sleep that completes at instant `t` (on the clock of
 * blz_clock_now()); ready at its first poll when `t` is not in the future.
 * Otherwise as blz_sleep_fut(): caller-owned, linked by its first poll, result
 * 0 or -ECANCELED. `f` must not be linked already. Any thread; never suspends.
 */
BLZ_API void blz_sleep_until_fut(blz_sleep_future *f, blz_instant t);

/**
 * Moves the deadline of sleep `f` to `t` (Tokio's Sleep::reset): an idle
 * timeout pushed back on every message, a retry brought forward. A pending
 * sleep keeps its waiter and waits for the new instant (earlier or later);
 * a sleep that already completed waits again; one not yet polled just takes
 * the new deadline. No allocation, no clock read. Owner of `f` only; never suspends. NULL is
 * ignored.
 */
BLZ_API void blz_sleep_reset(blz_sleep_future *f, blz_instant t);

/**
 * Waits for `d` to pass. Suspends the calling fiber; parks a thread outside
 * any runtime. Returns 0, -ECANCELED when the task is aborted meanwhile, or
 * -EDEADLK inside a stackless poll (use blz_sleep_fut there).
 */
BLZ_API int blz_sleep(blz_duration d);

/**
 * Waits until instant `t` (returns at once when it has passed). Suspends the
 * calling fiber; parks a thread outside any runtime. Returns 0, -ECANCELED
 * when the task is aborted meanwhile, or -EDEADLK inside a stackless poll.
 */
BLZ_API int blz_sleep_until(blz_instant t);

/* ---- interval ------------------------------------------------------------- */

/** What an interval does after a tick was late by more than BLZ_INTERVAL_LATE_SLACK. */
typedef enum blz_missed_tick {
    BLZ_MISSED_BURST = 0, /**< keep the schedule: missed ticks complete back to back */
    BLZ_MISSED_DELAY = 1, /**< restart the schedule: next tick is one period after the late one */
    BLZ_MISSED_SKIP = 2,  /**< drop missed ticks: next tick is the next multiple of the period */
} blz_missed_tick;

/** A tick completing less than this after its scheduled instant counts as on time. */
#define BLZ_INTERVAL_LATE_SLACK (5 * BLZ_NS_PER_MS)

/**
 * A periodic timer. Caller-owned; needs no deinit once no tick future is
 * pending on it. Owner only: one tick future at a time, polled by one task.
 */
typedef struct blz_interval {
    blz_sleep_future sleep_; /* the wait for the next tick; its deadline is that tick */
    blz_duration period_;    /* > 0 once initialised */
    blz_missed_tick policy_; /* what to do after a late tick */
} blz_interval;

/** A future that completes at the interval's next tick. */
typedef struct blz_interval_tick_future {
    blz_future base;
    blz_interval *iv_;
    blz_instant tick; /**< once ready: the instant the tick was scheduled for */
} blz_interval_tick_future;

/**
 * Initialises `iv` to tick every `period`, the first tick completing at once
 * (as Tokio's interval). `policy` says what happens after a late tick.
 * Returns 0, or -EINVAL when `iv` is NULL, `period` <= 0 or `policy` is unknown.
 * Any thread; never suspends.
 */
BLZ_API int blz_interval_init(blz_interval *iv, blz_duration period, blz_missed_tick policy);

/**
 * blz_interval_init with the first tick at `start` (a blz_clock_now()
 * instant; Tokio's interval_at): a schedule aligned to a boundary, or one
 * whose first tick is a period away (start = now + period). A start in the
 * past completes the first tick at once and goes on from there by `policy`.
 * Returns as blz_interval_init.
 */
BLZ_API int blz_interval_init_at(blz_interval *iv, blz_instant start, blz_duration period,
                                 blz_missed_tick policy);

/** The interval's period (0 for NULL or an uninitialised interval). */
BLZ_API blz_duration blz_interval_period(const blz_interval *iv);

/**
 * Fills `f` with a future that completes (result 0, `f->tick` set) at the next
 * tick of `iv`, then schedules the tick after it. Dropping `f` before it
 * completes unlinks the interval's timer and leaves the schedule unchanged.
 * An uninitialised `iv` gives a future ready with -EINVAL. Owner only.
 */
BLZ_API void blz_interval_tick_fut(blz_interval *iv, blz_interval_tick_future *f);

/**
 * Waits for the next tick of `iv`. Suspends the calling fiber; parks a thread
 * outside any runtime. Returns 0, -EINVAL (NULL or uninitialised `iv`),
 * -ECANCELED (task aborted) or -EDEADLK inside a stackless poll.
 */
BLZ_API int blz_interval_tick(blz_interval *iv);

/**
 * Restarts the schedule: the next tick is one period from now. A tick future
 * pending on `iv` keeps waiting, for the new instant. Owner only; never suspends.
 */
BLZ_API void blz_interval_reset(blz_interval *iv);

/* ---- timeout -------------------------------------------------------------- */

/**
 * A future that runs `inner` against a deadline. It completes with inner's
 * result if inner finishes first (inner is polled first, so a tie goes to
 * inner), else with -ETIMEDOUT after dropping inner with blz_future_drop().
 */
typedef struct blz_timeout_future {
    blz_future base;
    blz_future *inner_;      /* the wrapped future; NULL once it completed or was dropped */
    blz_sleep_future sleep_; /* the deadline */
} blz_timeout_future;

/**
 * Fills `f` to run `inner` with a time limit of `d` from now. `inner` stays
 * owned by the caller but must stay valid until `f` completes or is dropped;
 * dropping `f` drops `inner` and the timer. A NULL `inner` gives a future
 * ready with -EINVAL. Any thread; never suspends.
 */
BLZ_API void blz_timeout_fut(blz_future *inner, blz_duration d, blz_timeout_future *f);

/**
 * Fills `f` to run `inner` until instant `t` at the latest. Ownership and
 * results as blz_timeout_fut(): inner's result, or -ETIMEDOUT with inner
 * dropped; -EINVAL for a NULL `inner`. Any thread; never suspends.
 */
BLZ_API void blz_timeout_until_fut(blz_future *inner, blz_instant t, blz_timeout_future *f);

/**
 * Awaits `inner` for at most `d`. Returns inner's result, or -ETIMEDOUT after
 * dropping `inner`. Suspends the calling fiber; parks a thread outside any
 * runtime. Also -EINVAL (NULL inner), -ECANCELED (task aborted: inner is
 * dropped) and -EDEADLK inside a stackless poll (inner is left untouched).
 */
BLZ_API int blz_timeout(blz_future *inner, blz_duration d);

/**
 * Awaits `inner` until instant `t` at the latest. Returns inner's result, or
 * -ETIMEDOUT after dropping `inner`; -EINVAL (NULL inner), -ECANCELED (task
 * aborted: inner is dropped), -EDEADLK inside a stackless poll (inner left
 * untouched). Suspends the calling fiber; parks a thread outside any runtime.
 */
BLZ_API int blz_timeout_until(blz_future *inner, blz_instant t);

/* ---- deadline ------------------------------------------------------------- */

/** An absolute point in time to give up at, to pass down through several calls. */
typedef struct blz_deadline {
    blz_instant at; /**< UINT64_MAX: never */
} blz_deadline;

/** The deadline `d` after now (blz_clock_now()), saturating; `d` <= 0 is now. Any thread. */
static inline blz_deadline
blz_deadline_after(blz_duration d)
{
    blz_deadline dl = {blz_instant_add(blz_clock_now(), d)};
    return dl;
}

/** A deadline that never expires. Any thread. */
static inline blz_deadline
blz_deadline_never(void)
{
    blz_deadline dl = {UINT64_MAX};
    return dl;
}

/** True once now (blz_clock_now()) has reached the deadline; never for a never-deadline. Any
 * thread; never suspends. */
static inline bool
blz_deadline_expired(blz_deadline dl)
{
    return dl.at != UINT64_MAX && blz_clock_now() >= dl.at;
}

/** The time left until the deadline: 0 once expired, INT64_MAX for a never-deadline. Any
 * thread. */
static inline blz_duration
blz_deadline_remaining(blz_deadline dl)
{
    if (dl.at == UINT64_MAX) {
        return INT64_MAX;
    }
    blz_instant now = blz_clock_now();
    if (dl.at <= now) {
        return 0;
    }
    uint64_t left = dl.at - now;
    return left > (uint64_t) INT64_MAX ? INT64_MAX : (blz_duration) left;
}

#ifdef __cplusplus
}
#endif
#endif /* BLZ_TIME_H */
