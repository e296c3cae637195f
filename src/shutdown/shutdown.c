/*
 * The shutdown coordinator: trigger, wait, work guards, wait_for_pending.
 *
 * Invariants:
 * - state_ packs the guard count (above bit 1), ZEROING (bit 1) and
 *   TRIGGERED (bit 0) in one word, so "acquire unless triggered" is one CAS:
 *   after the fetch_or that sets TRIGGERED no acquire can succeed, and the
 *   count only falls.
 * - Whoever sees the coordinator triggered, or no guard pending, may free it
 *   at once (wait, wait_for_pending, deinit, return), while the call that
 *   published it is still running in another task. So the write that
 *   publishes each is its call's last touch of the coordinator:
 *   - The trigger cancels token_ (waking the wait futures) first and sets
 *     TRIGGERED last. What it publishes is TRIGGERED: is_triggered reads it,
 *     and a wait future whose token is cancelled completes only once it is
 *     set (until then, the trigger is on its way: it polls again at once).
 *   - The release of the last guard keeps that guard counted, with ZEROING,
 *     while its notify_all wakes the wait_for_pending futures, and then
 *     takes both away in one fetch_sub. A pending future that finds only
 *     that guard, ZEROING, polls again at once instead of waiting for a
 *     wake: it was already given.
 * - signo_ is written once, by the first trigger (a signal's number, or
 *   BY_CALL), before the trigger publishes, so whoever sees the trigger sees
 *   it, and a signal after a call cannot change what waiters were told.
 * - token_ (a CancelToken) carries the wait futures; drained_ (a Notify)
 *   carries the wait_for_pending futures. Every release that takes the count
 *   to 0 runs notify_all. A pending future fills its notify wait *before* it
 *   reads the count: notify_all covers a wait filled earlier even if it was
 *   not polled yet (sync.h), so a release between the read and the poll is
 *   never missed.
 * - signals_ belongs to on_signals / deinit (see signals.c); nothing else
 *   touches it.
 */
#include "blitzio/shutdown.h"

#include "core/atomic.h"

#include <limits.h>

#define TRIGGERED  ((uint64_t) 1)
#define ZEROING    ((uint64_t) 2) /* the last guard's release is waking the drainers */
#define GUARD_UNIT ((uint64_t) 4)

/* Only the last guard is left, and its release is waking the drainers. */
static inline bool
last_guard_leaving(uint64_t st)
{
    return st < 2 * GUARD_UNIT && (st & ZEROING);
}
/* signo_ once a call triggered first: not 0, so a signal later cannot claim
 * the cause; reported as 0. */
#define BY_CALL (-1)

/* Owned by signals.c: the trigger as its signal task performs it. */
void blz__shutdown_trigger_signal(blz_shutdown *sd, int signo);

int
blz_shutdown_init(blz_shutdown *sd)
{
    if (!sd) {
        return -EINVAL;
    }
    atomic_init(&sd->state_, 0);
    atomic_init(&sd->signo_, 0);
    blz_cancel_token_init(&sd->token_);
    blz_notify_init(&sd->drained_);
    sd->signals_ = NULL;
    return 0;
}

void
blz__shutdown_trigger_signal(blz_shutdown *sd, int signo)
{
    if (!sd) {
        return;
    }
    int none = 0;
    /* Relaxed: published by the release fetch_or below; the first cause wins. */
    (void) blz__cas(&sd->signo_, &none, signo > 0 ? signo : BY_CALL, RELAXED, RELAXED);
    /* The wait futures it wakes complete only once TRIGGERED is set. */
    blz_cancel_token_cancel(&sd->token_);
    /* Last touch (see the invariants). Release pairs with the acquire loads of
     * is_triggered, guard_acquire and the wait futures. */
    (void) blz__fetch_or(&sd->state_, TRIGGERED, ACQ_REL);
}

void
blz_shutdown_trigger(blz_shutdown *sd)
{
    blz__shutdown_trigger_signal(sd, 0);
}

bool
blz_shutdown_is_triggered(const blz_shutdown *sd)
{
    /* Acquire pairs with the trigger's fetch_or. */
    return sd && (blz__load(&sd->state_, ACQUIRE) & TRIGGERED) != 0;
}

int
blz_shutdown_signal(const blz_shutdown *sd)
{
    if (!blz_shutdown_is_triggered(sd)) {
        return 0;
    }
    int signo = blz__load(&sd->signo_, RELAXED);
    return signo > 0 ? signo : 0;
}

/* ---- wait ------------------------------------------------------------------ */

static blz_poll
wait_poll(blz_future *base, blz_context *cx)
{
    blz_shutdown_wait_future *f = (blz_shutdown_wait_future *) base;
    if (!f->sd_) {
        base->result = -EINVAL;
        return BLZ_READY;
    }
    if (blz_future_poll(&f->wait_.base, cx) == BLZ_PENDING) {
        return BLZ_PENDING;
    }
    int rc = f->wait_.base.result;
    if (rc == 0 && !blz_shutdown_is_triggered(f->sd_)) {
        /* The trigger cancelled the token and is about to publish. */
        blz_waker_wake_by_ref(cx->waker);
        return BLZ_PENDING;
    }
    base->result = rc < 0 ? rc : blz_shutdown_signal(f->sd_);
    return BLZ_READY;
}

static void
wait_drop(blz_future *base)
{
    blz_shutdown_wait_future *f = (blz_shutdown_wait_future *) base;
    blz_future_drop(&f->wait_.base);
}

static const blz_future_vtable wait_vtable = {wait_poll, wait_drop};

void
blz_shutdown_wait_fut(blz_shutdown *sd, blz_shutdown_wait_future *f)
{
    if (!f) {
        return;
    }
    blz_future_init(&f->base, &wait_vtable);
    f->sd_ = sd;
    blz_cancel_token_wait_fut(sd ? &sd->token_ : NULL, &f->wait_);
}

int
blz_shutdown_wait(blz_shutdown *sd)
{
    blz_shutdown_wait_future f;
    blz_shutdown_wait_fut(sd, &f);
    return blz_await(&f.base);
}

/* ---- guards ---------------------------------------------------------------- */

int
blz_shutdown_guard_acquire(blz_shutdown *sd)
{
    if (!sd) {
        return -EINVAL;
    }
    uint64_t cur = blz__load(&sd->state_, RELAXED);
    do {
        if (cur & TRIGGERED) {
            return -ESHUTDOWN;
        }
        /* Acquire pairs with the trigger's fetch_or: a failed CAS reloads. */
    } while (!blz__cas_weak(&sd->state_, &cur, cur + GUARD_UNIT, ACQUIRE, ACQUIRE));
    return 0;
}

void
blz_shutdown_guard_release(blz_shutdown *sd)
{
    if (!sd) {
        return;
    }
    uint64_t cur = blz__load(&sd->state_, RELAXED);
    uint64_t next;
    do {
        if (cur < GUARD_UNIT || last_guard_leaving(cur)) {
            return; /* more releases than acquisitions: ignore */
        }
        /* The last guard stays counted, ZEROING, until the drainers are woken. */
        next = cur < 2 * GUARD_UNIT ? cur | ZEROING : cur - GUARD_UNIT;
        /* Release pairs with the acquire load of a drainer that sees the new count. */
    } while (!blz__cas_weak(&sd->state_, &cur, next, ACQ_REL, RELAXED));
    if (next & ~cur & ZEROING) {
        blz_notify_all(&sd->drained_);
        /* Last touch (see the invariants): the count reads 0 from here on. */
        (void) blz__fetch_sub(&sd->state_, GUARD_UNIT | ZEROING, RELEASE);
    }
}

size_t
blz_shutdown_pending(const blz_shutdown *sd)
{
    /* Acquire pairs with the release of the guard_release that lowered it. */
    return sd ? (size_t) (blz__load(&sd->state_, ACQUIRE) / GUARD_UNIT) : 0;
}

/* ---- wait_for_pending ------------------------------------------------------ */

enum { PF_RUNNING = 0, PF_DONE = 1 };

static blz_poll
pending_finish(blz_shutdown_pending_future *f, int result)
{
    if (f->armed_) {
        blz_future_drop(&f->drain_.base);
        f->armed_ = 0;
    }
    blz_future_drop(&f->sleep_.base);
    f->base.pt_ = PF_DONE;
    f->base.result = result;
    return BLZ_READY;
}

static blz_poll
pending_poll(blz_future *base, blz_context *cx)
{
    blz_shutdown_pending_future *f = (blz_shutdown_pending_future *) base;
    blz_shutdown *sd = f->sd_;
    if (base->pt_ == PF_DONE) {
        return BLZ_READY;
    }
    if (!sd) {
        return pending_finish(f, -EINVAL);
    }
    for (;;) {
        if (!f->armed_) {
            /* Filled before the count is read: see the invariants. */
            blz_notify_wait_fut(&sd->drained_, &f->drain_);
            f->armed_ = 1;
        }
        /* Acquire pairs with the release of the guard_release that lowered it. */
        uint64_t st = blz__load(&sd->state_, ACQUIRE);
        if (st < GUARD_UNIT) {
            return pending_finish(f, 0);
        }
        bool zeroing = last_guard_leaving(st);
        if (!zeroing && blz_future_poll(&f->drain_.base, cx) == BLZ_READY) {
            f->armed_ = 0; /* the count fell to 0 at some point: look again */
            continue;
        }
        if (blz_future_poll(&f->sleep_.base, cx) == BLZ_READY) {
            size_t left = blz_shutdown_pending(sd);
            return pending_finish(f, left > (size_t) INT_MAX ? INT_MAX : (int) left);
        }
        if (zeroing) {
            /* The last release has woken the drainers and is about to publish 0. */
            blz_waker_wake_by_ref(cx->waker);
        }
        return BLZ_PENDING;
    }
}

static void
pending_drop(blz_future *base)
{
    blz_shutdown_pending_future *f = (blz_shutdown_pending_future *) base;
    if (base->pt_ != PF_DONE) {
        (void) pending_finish(f, -ECANCELED);
    }
}

static const blz_future_vtable pending_vtable = {pending_poll, pending_drop};

void
blz_shutdown_wait_for_pending_fut(blz_shutdown *sd, blz_instant deadline,
                                  blz_shutdown_pending_future *f)
{
    if (!f) {
        return;
    }
    blz_future_init(&f->base, &pending_vtable);
    f->sd_ = sd;
    f->armed_ = 0;
    blz_sleep_until_fut(&f->sleep_, deadline);
}

int
blz_shutdown_wait_for_pending(blz_shutdown *sd, blz_instant deadline)
{
    blz_shutdown_pending_future f;
    blz_shutdown_wait_for_pending_fut(sd, deadline, &f);
    return blz_await(&f.base);
}
