/*
 * Intervals: a sleep re-armed after every tick. The interval owns the sleep;
 * a tick future only borrows the interval, so dropping a tick future unlinks
 * the timer but keeps the schedule.
 *
 * Missed ticks (after Tokio's MissedTickBehavior): a tick that completes more
 * than BLZ_INTERVAL_LATE_SLACK after its scheduled instant is late, and the
 * policy picks the next instant; an on-time tick schedules the next one a
 * period after itself, so the schedule does not drift.
 */
#include "time/sleep.h"
#include "time/timers.h"

/* The instant of the tick after `tick`, which completed at `now`. */
static blz_instant
next_tick(const blz_interval *iv, blz_instant tick, blz_instant now)
{
    blz_duration period = iv->period_;
    if (now <= blz_instant_add(tick, BLZ_INTERVAL_LATE_SLACK)) {
        return blz_instant_add(tick, period);
    }
    switch (iv->policy_) {
    case BLZ_MISSED_DELAY:
        return blz_instant_add(now, period);
    case BLZ_MISSED_SKIP: {
        /* The first instant tick + k * period strictly after now. */
        uint64_t behind = (now - tick) % (uint64_t) period;
        return blz_instant_add(now, period - (blz_duration) behind);
    }
    case BLZ_MISSED_BURST:
    default:
        return blz_instant_add(tick, period);
    }
}

static blz_poll
tick_poll(blz_future *base, blz_context *cx)
{
    blz_interval_tick_future *f = (blz_interval_tick_future *) base;
    blz_interval *iv = f->iv_;
    if (!iv) {
        return BLZ_READY; /* completed, or never valid: result already set */
    }
    if (blz_future_poll(&iv->sleep_.base, cx) == BLZ_PENDING) {
        return BLZ_PENDING;
    }
    f->iv_ = NULL;
    if (iv->sleep_.base.result < 0) {
        base->result = iv->sleep_.base.result; /* the runtime went away */
        return BLZ_READY;
    }
    blz_instant tick = iv->sleep_.deadline;
    blz_instant now = blz_clock_now();
    blz__sleep_init(&iv->sleep_, next_tick(iv, tick, now), now);
    f->tick = tick;
    base->result = 0;
    return BLZ_READY;
}

static void
tick_drop(blz_future *base)
{
    blz_interval_tick_future *f = (blz_interval_tick_future *) base;
    if (f->iv_) {
        (void) blz__timer_cancel(&f->iv_->sleep_.entry_);
        f->iv_ = NULL;
    }
}

static const blz_future_vtable tick_vtable = {tick_poll, tick_drop};

int
blz_interval_init_at(blz_interval *iv, blz_instant start, blz_duration period,
                     blz_missed_tick policy)
{
    if (!iv || period <= 0 ||
        (policy != BLZ_MISSED_BURST && policy != BLZ_MISSED_DELAY && policy != BLZ_MISSED_SKIP)) {
        return -EINVAL;
    }
    blz__sleep_init(&iv->sleep_, start, blz_clock_now());
    iv->period_ = period;
    iv->policy_ = policy;
    return 0;
}

int
blz_interval_init(blz_interval *iv, blz_duration period, blz_missed_tick policy)
{
    return blz_interval_init_at(iv, blz_clock_now(), period, policy); /* the first tick at once */
}

blz_duration
blz_interval_period(const blz_interval *iv)
{
    return iv && iv->period_ > 0 ? iv->period_ : 0;
}

void
blz_interval_tick_fut(blz_interval *iv, blz_interval_tick_future *f)
{
    if (!f) {
        return;
    }
    blz_future_init(&f->base, &tick_vtable);
    f->tick = 0;
    if (!iv || iv->period_ <= 0) {
        f->iv_ = NULL;
        f->base.result = -EINVAL;
        return;
    }
    f->iv_ = iv;
}

int
blz_interval_tick(blz_interval *iv)
{
    if (!iv || iv->period_ <= 0) {
        return -EINVAL;
    }
    blz_interval_tick_future f;
    blz_interval_tick_fut(iv, &f);
    return blz_await(&f.base);
}

void
blz_interval_reset(blz_interval *iv)
{
    if (!iv || iv->period_ <= 0) {
        return;
    }
    blz_sleep_reset(&iv->sleep_, blz_instant_add(blz_clock_now(), iv->period_));
}
