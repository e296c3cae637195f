/*
 * Internal: a runtime's timer state — the wheel, its lock, and the clock
 * (real, or virtual when the runtime was created with `paused_clock`).
 * The runtime embeds one blz__timers and drives it:
 *
 *   before parking     next = blz__timers_next(t): park no later than `next`
 *                      (a timeout of next - now; 0 when next <= now; forever
 *                      when next == UINT64_MAX);
 *   after every park   blz__timers_fire(t), and also from periodic maintenance
 *   (or maintenance)   so a busy runtime still fires timers;
 *   paused clock       quiet = blz__timers_quiet(t) before looking at the queues;
 *                      when every worker is idle, no task is queued and next !=
 *                      UINT64_MAX: blz__timers_advance_to_next_if_quiet(t, quiet),
 *                      then blz__timers_fire(t);
 *   blz__rt_wake_driver is called by sleep polls that register a deadline
 *   earlier than `next`: it must make a worker parked in the driver return
 *   (and must not be lost if that worker has read `next` but not parked yet).
 *
 * Ticks are 1 ms, counted from `origin` (the clock reading at init).
 */
#ifndef BLZ_TIME_TIMERS_H
#define BLZ_TIME_TIMERS_H

#include "blitzio/common.h"
#include "blitzio/future.h"
#include "blitzio/time.h"
#include "core/atomic.h"
#include "core/spinlock.h"
#include "rt/current.h"
#include "time/wheel.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BLZ__TIMERS_TICK_NS BLZ_NS_PER_MS

typedef struct blz__timers {
    /* Hot: read by every worker before it parks, written under `lock`. */
    BLZ_ALIGNED_CACHELINE blz__spinlock lock; /* over `wheel` and linked entries */
    bool paused;                              /* virtual clock; fixed at init */
    blz_instant origin;                       /* instant of tick 0; fixed at init */
    _Atomic uint64_t next;  /* lower bound on the earliest deadline, UINT64_MAX: none */
    _Atomic uint64_t count; /* entries linked (wheel.count, readable without the lock) */
    _Atomic uint64_t vnow;  /* the virtual clock (paused only); only moves forward */
    _Atomic uint64_t fired; /* entries fired so far, for metrics */
    /* Fire batches that unlinked due entries (counted under `lock`), and those of them
     * that have woken their wakers since: see blz__timers_quiet. */
    _Atomic uint64_t waking_begun;
    _Atomic uint64_t waking_done;
    blz_instant fire_now; /* latest clock reading any fire used; under `lock` */
    uint64_t max_tick;    /* last tick whose start is representable; fixed at init */
    blz__wheel wheel;     /* under `lock` */
} blz__timers;

/* Initialises `t` with its clock at the real now; `paused`: a virtual clock that only
 * blz__timers_advance*() moves. Returns 0 (no allocation, cannot fail today). */
int blz__timers_init(blz__timers *t, bool paused);

/*
 * Tears `t` down, after every task was dropped and every worker joined (no
 * thread may use `t` concurrently). Entries still linked — normally none, as
 * dropping a task's future unlinks its sleeps — are unlinked and marked
 * cancelled (their futures complete with -ECANCELED if polled again), and their
 * wakers are dropped, not woken: no task can run any more, and a wake would
 * reach into a scheduler being torn down. Safe to call after the I/O driver is
 * freed.
 */
void blz__timers_fini(blz__timers *t);

/* The clock of `t`: the virtual clock when paused, else blz_now(). Any thread. */
static inline blz_instant
blz__timers_now(blz__timers *t)
{
    if (t->paused) {
        /* Pairs with the release stores in blz__timers_advance*(). */
        return blz__load(&t->vnow, ACQUIRE);
    }
    return blz_now();
}

/*
 * The earliest instant at which an entry may be due, or UINT64_MAX when no linked
 * entry can ever be due (none linked, or only sleeps until UINT64_MAX). One atomic load. It is
 * never later than the true earliest deadline (rounded up to its tick), but may be earlier: after
 * the earliest entry is dropped, or when the earliest entry is more than 64 ticks away (the start
 * of its wheel slot); a fire at that instant cascades the wheel and makes it exact. When a pending
 * entry exists it is <= now. Any thread.
 */
blz_instant blz__timers_next(const blz__timers *t);

/*
 * Fires every entry due at now: advances the wheel under the lock, unlinks the
 * due entries and takes their wakers (in batches), and wakes them after
 * releasing the lock. Never touches an entry after unlinking it. Returns the
 * number fired. Any thread; cheap (one atomic load and a clock read) when
 * nothing is due.
 */
size_t blz__timers_fire(blz__timers *t);

/* Virtual clock only: moves it forward by `d` (<= 0: no-op), saturating at the
 * start of the last tick (a deadline after it never comes). Does not fire.
 * Returns 0, or -EINVAL when the clock is real. Any thread. */
int blz__timers_advance(blz__timers *t, blz_duration d);

/* Virtual clock only: jumps the clock to the exact instant the earliest entry
 * is due, if that is in the future. Does not fire (due entries are moved to the
 * pending list for the next fire). Returns 1 if the clock moved, 0 if not (nothing
 * linked, or something already due), -EINVAL when the clock is real. */
int blz__timers_advance_to_next(blz__timers *t);

/*
 * For a jump of the virtual clock while every task is idle: a token to read
 * BEFORE looking whether any task is queued. fire wakes the entries it unlinked
 * after releasing the lock, so their tasks are in no queue for a while; the
 * token is UINT64_MAX while some fire is in that window. Any thread.
 */
uint64_t blz__timers_quiet(const blz__timers *t);

/* blz__timers_advance_to_next, unless `quiet` is UINT64_MAX or a fire has
 * unlinked entries since it was read (their tasks may not be queued yet):
 * -EAGAIN then, the clock unmoved. */
int blz__timers_advance_to_next_if_quiet(blz__timers *t, uint64_t quiet);

/* Whether `t` runs on a virtual clock. */
bool blz__timers_paused(const blz__timers *t);

/* Number of linked entries. Any thread. */
static inline size_t
blz__timers_count(const blz__timers *t)
{
    return (size_t) blz__load(&t->count, RELAXED);
}

/* ---- entries (used by sleep.c, interval.c, timeout.c) ---------------------- */

/* Prepares an idle entry. `known_now`: an instant known to have passed, so that a
 * first poll can see a deadline <= it is ready without reading the clock. */
static inline void
blz__timer_entry_init(blz_timer_entry *e, blz_instant known_now)
{
    e->next_ = NULL;
    e->pprev_ = NULL;
    blz__store(&e->timers_, NULL, RELAXED);
    e->tick_ = 0;
    e->when_ = known_now;
    e->waker_ = BLZ_WAKER_NONE;
    e->state_ = BLZ__TE_IDLE;
}

/*
 * Polls the entry for `deadline` against the timers of the calling thread
 * (its runtime's, or the thread override below), or parks-until on a foreign
 * thread. Spends no coop budget. Returns 1 (deadline passed; the entry is
 * unlinked), 0 (pending; linked with a clone of `waker`) or -ECANCELED (the
 * timers it waited in were torn down). Owner of the entry only.
 */
int blz__timer_poll(blz_timer_entry *e, blz_instant deadline, const blz_waker *waker);

/* Unlinks the entry if linked and drops its waker; it becomes idle, keeping no
 * reference to any timers. Returns true when it was still linked (so no fire will
 * wake its waker), false when it was idle or had fired. Owner only. */
bool blz__timer_cancel(blz_timer_entry *e);

/* Moves a linked entry to `deadline`, keeping its waker (an idle or fired entry just
 * becomes idle). Wakes the driver if that makes it the earliest. Owner only. */
void blz__timer_reset(blz_timer_entry *e, blz_instant deadline);

extern _Thread_local blz__timers *blz__timers_tl_override; /* see below */

/* The timers a sleep polled on this thread would use, or NULL (foreign thread),
 * and the runtime they belong to (NULL for the override). Reads thread-locals:
 * call it afresh after any fiber switch. */
static inline blz__timers *
blz__timers_current(blz_runtime **rt_out)
{
    blz_runtime *rt = blz__rt_current();
    blz__timers *t = rt ? blz__rt_timers(rt) : blz__timers_tl_override;
    if (rt_out) {
        *rt_out = rt;
    }
    return t;
}

/*
 * Test seam: the timers that sleeps polled on this thread use while it runs no
 * runtime task (NULL: none, the foreign-thread behaviour). Lets tests drive
 * sleeps, intervals and timeouts by hand on a paused blz__timers.
 */
void blz__timers_set_thread_override(blz__timers *t);

#endif
