/*
 * A runtime's timer state: the wheel behind a lock, the clock, and the entry
 * operations sleeps are built on (register, re-poll, cancel, reset, fire).
 *
 * Ownership and protection:
 *   - `lock` (core/spinlock.h: critical sections are a few list operations, and
 *     an uncontended pthread mutex made register+cancel about 50% dearer, 33
 *     against 21 ns here) protects the wheel and, for every linked entry, its
 *     links, `tick_`, `when_`, `waker_` and `state_`;
 *   - `timers_` of an entry belongs to the entry's owner (the task polling the
 *     future), but for one write: fire clears it (release), as its last write
 *     to an entry it fired. So an owner that reads NULL (acquire) owns the
 *     entry entirely, even a FIRED one, and one that reads a timers takes its
 *     lock and finds the entry linked or FIRED there; and a fired entry keeps
 *     no reference to timers that may be freed before its owner looks at it
 *     (blz__timers_fini reaches linked entries only);
 *   - an idle entry (not linked) belongs to its owner entirely.
 *
 * Entry states (kind in state_, see wheel.h):
 *   IDLE --poll, deadline ahead--> WHEEL or PENDING   (owner, under lock)
 *   WHEEL --fire cascade-------->  PENDING            (fire, under lock)
 *   WHEEL/PENDING --fire-------->  FIRED              (fire: waker copied out, timers_
 *                                                      cleared, under lock)
 *   WHEEL/PENDING --drop/cancel->  IDLE               (owner, under lock)
 *   FIRED --poll/drop/reset----->  IDLE               (owner)
 *   any linked --fini----------->  CANCELLED          (fini, exclusive)
 * After fire releases the lock it never touches the entry again: it wakes the
 * copied wakers only, so the owner may free the entry as soon as it sees FIRED.
 *
 * `next` is a lower bound on the earliest due instant, written under the lock
 * (min on insert; recomputed by fire and advance_to_next) and read without it.
 * Cancelling the earliest entry leaves it stale-early on purpose: recomputing
 * would cost a slot scan per cancel, and the price of staleness is one early
 * wake-up that recomputes it.
 */
#include "time/timers.h"

#include "core/container.h"
#include "rt/current.h"

#define TICK BLZ__TIMERS_TICK_NS

/* Wakers collected per lock hold by fire; the rest wait for the next round. */
#define FIRE_BATCH 32

_Thread_local blz__timers *blz__timers_tl_override;

/* ---- lock ------------------------------------------------------------------ */

static inline void
lock(blz__timers *t)
{
    blz__spin_lock(&t->lock);
}

static inline void
unlock(blz__timers *t)
{
    blz__spin_unlock(&t->lock);
}

/* ---- ticks ----------------------------------------------------------------- */

/* The tick `at` falls in (rounded down): the last tick that has fully begun by `at`. */
static inline uint64_t
tick_floor(const blz__timers *t, blz_instant at)
{
    return at <= t->origin ? 0 : (at - t->origin) / TICK;
}

/* The first tick at or after `deadline` (rounded up): when the wheel may fire it.
 * BLZ__WHEEL_NEVER when that tick would begin past the largest instant. */
static inline uint64_t
tick_ceil(const blz__timers *t, blz_instant deadline)
{
    if (deadline <= t->origin) {
        return 0;
    }
    uint64_t d = deadline - t->origin;
    uint64_t tick = d / TICK + (d % TICK != 0);
    return tick > t->max_tick ? BLZ__WHEEL_NEVER : tick;
}

/* The instant tick `tick` begins, saturating. */
static inline blz_instant
tick_instant(const blz__timers *t, uint64_t tick)
{
    if (tick > (UINT64_MAX - t->origin) / TICK) {
        return UINT64_MAX;
    }
    return t->origin + tick * TICK;
}

/* ---- lifecycle and clock -------------------------------------------------- */

int
blz__timers_init(blz__timers *t, bool paused)
{
    blz_instant now = blz_now();
    atomic_init(&t->lock.locked, 0);
    t->paused = paused;
    t->origin = now;
    atomic_init(&t->next, UINT64_MAX);
    atomic_init(&t->count, 0);
    atomic_init(&t->vnow, now);
    atomic_init(&t->fired, 0);
    atomic_init(&t->waking_begun, 0);
    atomic_init(&t->waking_done, 0);
    t->fire_now = now;
    t->max_tick = (UINT64_MAX - now) / TICK;
    blz__wheel_init(&t->wheel, 0);
    return 0;
}

static void
cancel_entry(blz_timer_entry *e)
{
    blz_waker w = e->waker_;
    e->waker_ = BLZ_WAKER_NONE;
    e->state_ = BLZ__TE_CANCELLED;
    /* The owner's field, but no owner runs concurrently with fini. */
    blz__store(&e->timers_, NULL, RELAXED);
    /* Dropped, not woken: no task of the runtime can run any more, and a wake would
     * reach into a scheduler (and driver) that is being torn down. */
    blz_waker_drop(&w);
}

/* Cancels every entry of a detached list. */
static void
cancel_list(blz_timer_entry *e)
{
    while (e) {
        blz_timer_entry *next = e->next_;
        e->next_ = NULL;
        e->pprev_ = NULL;
        cancel_entry(e);
        e = next;
    }
}

void
blz__timers_fini(blz__timers *t)
{
    blz__wheel *w = &t->wheel;
    cancel_list(w->pending);
    cancel_list(w->never);
    for (unsigned l = 0; l < BLZ__WHEEL_LEVELS; l++) {
        for (unsigned s = 0; s < BLZ__WHEEL_SLOTS; s++) {
            cancel_list(w->slots[l][s]);
        }
    }
    blz__wheel_init(w, w->elapsed);
    blz__store(&t->count, 0, RELAXED);
    blz__store(&t->next, UINT64_MAX, RELAXED);
}

bool
blz__timers_paused(const blz__timers *t)
{
    return t->paused;
}

blz_instant
blz__timers_next(const blz__timers *t)
{
    /* Pairs with the release stores of `next` under the lock. */
    return blz__load(&t->next, ACQUIRE);
}

/* ---- under the lock -------------------------------------------------------- */

/* Publishes the wheel's count. */
static inline void
sync_count_locked(blz__timers *t)
{
    blz__store(&t->count, (uint64_t) t->wheel.count, RELAXED);
}

/* Recomputes `next` from scratch: the earliest pending deadline (pending entries are
 * due, so a scan costs no more than firing them), else the earliest slot's start. */
static void
recompute_next_locked(blz__timers *t)
{
    blz_instant next = UINT64_MAX;
    if (blz__wheel_has_pending(&t->wheel)) {
        for (blz_timer_entry *e = t->wheel.pending; e; e = e->next_) {
            if (e->when_ < next) {
                next = e->when_;
            }
        }
    } else {
        blz__wheel_expiry exp;
        if (blz__wheel_next_expiry(&t->wheel, &exp)) {
            next = tick_instant(t, exp.tick);
        }
    }
    /* Pairs with the acquire load in blz__timers_next(). */
    blz__store(&t->next, next, RELEASE);
}

/* Links the idle entry `e` for `deadline`. Returns true when it lowered `next`. */
static inline bool
insert_locked(blz__timers *t, blz_timer_entry *e, blz_instant deadline)
{
    e->when_ = deadline;
    e->tick_ = tick_ceil(t, deadline);
    bool pending = blz__wheel_insert(&t->wheel, e);
    sync_count_locked(t);
    blz_instant at = pending ? deadline : tick_instant(t, e->tick_); /* NEVER: UINT64_MAX */
    if (at < blz__load(&t->next, RELAXED)) {
        /* Pairs with the acquire load in blz__timers_next(). */
        blz__store(&t->next, at, RELEASE);
        return true;
    }
    return false;
}

/* ---- fire and virtual time -------------------------------------------------- */

/* Under the lock: moves the wheel's time to `reading` (or to a later one
 * another fire used), unlinks up to FIRE_BATCH due entries and copies their
 * wakers into `batch`. Returns how many; *more: the batch is full, and more
 * may be due. */
static size_t
take_due_locked(blz__timers *t, blz_instant reading, blz_waker *batch, bool *more)
{
    size_t n = 0;
    blz_timer_entry *early = NULL; /* never-early guard: entries found not yet due */
    /* Another fire may have used a later reading than ours (and moved entries due
     * by it to pending): that instant has passed too, so use the later one. */
    if (reading > t->fire_now) {
        t->fire_now = reading;
    }
    blz_instant now = t->fire_now;
    blz__wheel_advance(&t->wheel, tick_floor(t, now));
    blz_timer_entry *e;
    while (n < FIRE_BATCH && (e = blz__wheel_pop_pending(&t->wheel)) != NULL) {
        if (BLZ_UNLIKELY(e->when_ > now)) {
            /* Cannot happen (pending entries have tick <= elapsed <= now), but a
             * timer must never fire early: keep it for a later fire. */
            BLZ_ASSERT(!"pending entry not due");
            e->next_ = early;
            early = e;
            continue;
        }
        batch[n++] = e->waker_; /* copied out: the entry is not touched after unlock */
        e->waker_ = BLZ_WAKER_NONE;
        e->state_ = BLZ__TE_FIRED;
        /* Last write: an owner that reads NULL (acquire) sees the above and owns the
         * entry; the timers may be freed before it looks. */
        blz__store(&e->timers_, NULL, RELEASE);
    }
    while (early) {
        e = early;
        early = e->next_;
        e->next_ = NULL;
        blz__wheel_push_pending(&t->wheel, e);
        t->wheel.count++;
    }
    *more = n == FIRE_BATCH;
    if (n) {
        /* Written under the lock only; read by blz__timers_quiet and, under the
         * lock, by blz__timers_advance_to_next_if_quiet. */
        blz__store(&t->waking_begun, blz__load(&t->waking_begun, RELAXED) + 1, RELAXED);
    }
    sync_count_locked(t);
    if (*more) {
        /* More are due: keep fire calls coming. Pairs with blz__timers_next(). */
        blz__store(&t->next, now, RELEASE);
    } else {
        recompute_next_locked(t);
    }
    return n;
}

size_t
blz__timers_fire(blz__timers *t)
{
    blz_instant next = blz__timers_next(t);
    if (next == UINT64_MAX) {
        return 0;
    }
    blz_instant reading = blz__timers_now(t); /* outside the lock: it is a slow call */
    if (next > reading) {
        return 0;
    }
    size_t total = 0;
    bool more = true;
    while (more) {
        blz_waker batch[FIRE_BATCH];
        lock(t);
        if (t->paused) {
            /* The virtual clock moves under this lock only: read it again here. A jump
             * since our first reading may have moved the wheel's time on, and an entry
             * due by the new clock may be in pending already. */
            reading = blz__load(&t->vnow, RELAXED);
        }
        size_t n = take_due_locked(t, reading, batch, &more);
        unlock(t);
        for (size_t i = 0; i < n; i++) {
            blz_waker_wake(&batch[i]);
        }
        if (n) {
            /* Release: what the wakes queued is seen by whoever reads this count. */
            blz__fetch_add(&t->waking_done, 1, RELEASE);
        }
        total += n;
    }
    if (total) {
        blz__fetch_add(&t->fired, total, RELAXED);
    }
    return total;
}

int
blz__timers_advance(blz__timers *t, blz_duration d)
{
    if (!t->paused) {
        return -EINVAL;
    }
    if (d <= 0) {
        return 0;
    }
    lock(t);
    blz_instant now = blz__load(&t->vnow, RELAXED);
    /* Saturating at the start of the last tick: a deadline after it is never due
     * (tick_ceil), so the clock must never pass it either. */
    blz_instant to = blz_instant_add(now, d);
    blz_instant last = tick_instant(t, t->max_tick);
    /* Pairs with the acquire load in blz__timers_now(). */
    blz__store(&t->vnow, to < last ? to : last, RELEASE);
    unlock(t);
    return 0;
}

uint64_t
blz__timers_quiet(const blz__timers *t)
{
    /* Done first: equal to a later begun, every batch begun by then had woken its
     * wakers, and the acquire makes what those wakes queued visible to the caller's
     * look at the queues. */
    uint64_t done = blz__load(&t->waking_done, ACQUIRE);
    uint64_t begun = blz__load(&t->waking_begun, ACQUIRE);
    return done == begun ? begun : UINT64_MAX;
}

static int advance_to_next_locked(blz__timers *t);

int
blz__timers_advance_to_next(blz__timers *t)
{
    if (!t->paused) {
        return -EINVAL;
    }
    lock(t);
    int moved = advance_to_next_locked(t);
    unlock(t);
    return moved;
}

int
blz__timers_advance_to_next_if_quiet(blz__timers *t, uint64_t quiet)
{
    if (!t->paused) {
        return -EINVAL;
    }
    if (quiet == UINT64_MAX) {
        return -EAGAIN;
    }
    lock(t);
    /* A batch begun since `quiet` was read took due entries whose tasks the caller
     * may not have seen queued: no jump past them. */
    int moved = blz__load(&t->waking_begun, RELAXED) == quiet ? advance_to_next_locked(t) : -EAGAIN;
    unlock(t);
    return moved;
}

static int
advance_to_next_locked(blz__timers *t)
{
    int moved = 0;
    blz_instant now = blz__load(&t->vnow, RELAXED);
    blz__wheel_expiry exp;
    /* Walk to the earliest slot; a higher-level slot start is only a lower bound, so
     * cascade it and look again until something is due. Nothing can be due in
     * between, so no fire is skipped by jumping. */
    while (!blz__wheel_has_pending(&t->wheel) && blz__wheel_next_expiry(&t->wheel, &exp)) {
        blz_instant at = tick_instant(t, exp.tick);
        if (at > now) {
            now = at;
            /* Pairs with the acquire load in blz__timers_now(). */
            blz__store(&t->vnow, now, RELEASE);
            moved = 1;
        }
        blz__wheel_advance(&t->wheel, tick_floor(t, now));
    }
    recompute_next_locked(t);
    return moved;
}

/* ---- entries ------------------------------------------------------------------ */

void
blz__timers_set_thread_override(blz__timers *t)
{
    blz__timers_tl_override = t;
}

/* Owner only, with e->timers_ read NULL: a FIRED entry is the owner's now. */
static inline void
fired_to_idle(blz_timer_entry *e)
{
    if (e->state_ == BLZ__TE_FIRED) {
        e->state_ = BLZ__TE_IDLE;
    }
}

bool
blz__timer_cancel(blz_timer_entry *e)
{
    blz__timers *t = blz__load(&e->timers_, ACQUIRE);
    if (!t) {
        fired_to_idle(e);
        return false;
    }
    blz_waker w = BLZ_WAKER_NONE;
    lock(t);
    uint32_t kind = BLZ__TE_KIND(e->state_);
    bool linked = kind == BLZ__TE_WHEEL || kind == BLZ__TE_PENDING || kind == BLZ__TE_NEVER;
    if (linked) {
        blz__wheel_remove(&t->wheel, e);
        sync_count_locked(t);
        w = e->waker_;
        e->waker_ = BLZ_WAKER_NONE;
        if (kind != BLZ__TE_PENDING) {
            e->when_ = 0; /* idle entries keep a known-past instant; the deadline may not be */
        }
    }
    e->state_ = BLZ__TE_IDLE;
    unlock(t);
    blz__store(&e->timers_, NULL, RELAXED);
    blz_waker_drop(&w); /* outside the lock: a drop may free a task */
    return linked;
}

int
blz__timer_poll(blz_timer_entry *e, blz_instant deadline, const blz_waker *waker)
{
    blz__timers *et = blz__load(&e->timers_, ACQUIRE);
    if (et == NULL) {
        if (BLZ_UNLIKELY(e->state_ == BLZ__TE_CANCELLED)) {
            return -ECANCELED;
        }
        fired_to_idle(e); /* its when_ is the deadline it fired for */
        /* An idle entry's when_ is an instant known to have passed. */
        if (deadline <= e->when_) {
            return 1;
        }
    }
    blz_runtime *rt;
    blz__timers *t = blz__timers_current(&rt);
    if (BLZ_UNLIKELY(et != t && et != NULL)) {
        /* Polled from another runtime (or thread) than before: start over here. */
        (void) blz__timer_cancel(e);
        if (deadline <= e->when_) {
            return 1; /* it had fired there */
        }
        et = NULL;
    }
    if (!t) {
        /* A thread outside any runtime: blz_await re-polls us at the deadline. */
        blz_instant now = blz_now();
        if (deadline <= now) {
            e->when_ = now;
            return 1;
        }
        blz__thread_park_until(deadline);
        return 0;
    }
    if (et == NULL && t->paused) {
        /* The virtual clock is cheap to read: catch a deadline it has reached. */
        blz_instant now = blz__load(&t->vnow, ACQUIRE);
        if (deadline <= now) {
            e->when_ = now;
            return 1;
        }
    }
    blz_waker clone = BLZ_WAKER_NONE;
    if (et == NULL) {
        clone = blz_waker_clone(waker); /* before the lock: keep the hold short */
    }
    lock(t);
    uint32_t kind = BLZ__TE_KIND(e->state_);
    if (kind == BLZ__TE_WHEEL || kind == BLZ__TE_PENDING || kind == BLZ__TE_NEVER) {
        /* Still waiting: make sure the latest waker is the one fire wakes. */
        blz_waker_set(&e->waker_, waker);
        unlock(t);
        return 0;
    }
    if (kind == BLZ__TE_FIRED) {
        e->state_ = BLZ__TE_IDLE; /* fired since we read timers_ (which fire cleared) */
        unlock(t);
        return 1;
    }
    BLZ_ASSERT(kind == BLZ__TE_IDLE);
    if (BLZ_UNLIKELY(!clone.vtable)) {
        clone = blz_waker_clone(waker); /* not expected: an idle entry has no timers */
    }
    e->waker_ = clone;
    blz__store(&e->timers_, t, RELAXED);
    bool earlier = insert_locked(t, e, deadline);
    unlock(t);
    if (earlier && rt) {
        /* A worker parked in the driver may be sleeping past our deadline. */
        blz__rt_wake_driver(rt);
    }
    return 0;
}

void
blz__timer_reset(blz_timer_entry *e, blz_instant deadline)
{
    blz__timers *t = blz__load(&e->timers_, ACQUIRE);
    if (!t) {
        fired_to_idle(e); /* idle (or fired): the next poll registers the new deadline */
        return;
    }
    bool earlier = false;
    lock(t);
    uint32_t kind = BLZ__TE_KIND(e->state_);
    if (kind == BLZ__TE_WHEEL || kind == BLZ__TE_PENDING || kind == BLZ__TE_NEVER) {
        blz__wheel_remove(&t->wheel, e);
        earlier = insert_locked(t, e, deadline); /* same waker, new place */
        unlock(t);
    } else {
        e->state_ = BLZ__TE_IDLE; /* fired: its waker was consumed, the poll re-registers */
        unlock(t);
    }
    if (earlier) {
        blz_runtime *rt;
        blz__timers *cur = blz__timers_current(&rt);
        if (rt && cur == t) {
            blz__rt_wake_driver(rt);
        }
    }
}
