/*
 * Sleep futures. The timer entry inside the future is the wheel node, so a
 * sleep allocates nothing. Its deadline is set when the future is filled
 * (and moved by blz_sleep_reset, which re-links a linked entry in place);
 * the first poll links it into the current runtime's wheel (see timers.c for
 * the entry's state machine and locking), a drop unlinks it.
 *
 * The clock is read once, when the future is filled. That reading is kept in
 * the idle entry, so the first poll can tell an already-passed deadline
 * (sleep(0)) without a second read; a deadline that passes between fill and
 * poll is simply registered and fires at the next fire, as a wheel's timers do.
 */
#include "time/sleep.h"

#include "core/coop.h"
#include "time/timers.h"

static blz_poll
sleep_poll(blz_future *base, blz_context *cx)
{
    blz_sleep_future *f = (blz_sleep_future *) base;
    if (!blz__coop_proceed(cx)) {
        return BLZ_PENDING;
    }
    int rc = blz__timer_poll(&f->entry_, f->deadline, cx->waker);
    if (rc == 0) {
        return BLZ_PENDING;
    }
    base->result = rc < 0 ? rc : 0;
    return BLZ_READY;
}

static void
sleep_drop(blz_future *base)
{
    blz_sleep_future *f = (blz_sleep_future *) base;
    (void) blz__timer_cancel(&f->entry_);
}

static const blz_future_vtable sleep_vtable = {sleep_poll, sleep_drop};

void
blz__sleep_init(blz_sleep_future *f, blz_instant deadline, blz_instant known_now)
{
    blz_future_init(&f->base, &sleep_vtable);
    blz__timer_entry_init(&f->entry_, known_now);
    f->deadline = deadline;
}

void
blz_sleep_fut(blz_sleep_future *f, blz_duration d)
{
    if (!f) {
        return;
    }
    blz_instant now = blz_clock_now();
    blz__sleep_init(f, blz_instant_add(now, d), now);
}

void
blz_sleep_until_fut(blz_sleep_future *f, blz_instant t)
{
    if (!f) {
        return;
    }
    blz__sleep_init(f, t, blz_clock_now());
}

void
blz_sleep_reset(blz_sleep_future *f, blz_instant t)
{
    if (!f) {
        return;
    }
    f->deadline = t;
    blz__timer_reset(&f->entry_, t);
}

int
blz_sleep(blz_duration d)
{
    blz_sleep_future f;
    blz_sleep_fut(&f, d);
    return blz_await(&f.base);
}

int
blz_sleep_until(blz_instant t)
{
    blz_sleep_future f;
    blz_sleep_until_fut(&f, t);
    return blz_await(&f.base);
}
