/*
 * Timeouts: a future polled against a sleep. The inner future is polled
 * first, so a tie goes to it. The sleep is polled without spending coop
 * budget (as Tokio does): an inner future that always exhausts the budget must
 * not keep its own timeout from firing.
 *
 * `inner_` is cleared once the inner future completed or was dropped, so a
 * drop of a completed timeout never touches a future the caller reused.
 */
#include "time/sleep.h"
#include "time/timers.h"

static blz_poll
timeout_poll(blz_future *base, blz_context *cx)
{
    blz_timeout_future *f = (blz_timeout_future *) base;
    blz_future *inner = f->inner_;
    if (!inner) {
        return BLZ_READY; /* completed, or NULL inner: result already set */
    }
    if (blz_future_poll(inner, cx) == BLZ_READY) {
        f->inner_ = NULL;
        (void) blz__timer_cancel(&f->sleep_.entry_);
        base->result = inner->result;
        return BLZ_READY;
    }
    int rc = blz__timer_poll(&f->sleep_.entry_, f->sleep_.deadline, cx->waker);
    if (rc == 0) {
        return BLZ_PENDING;
    }
    f->inner_ = NULL;
    blz_future_drop(inner);
    base->result = rc < 0 ? rc : -ETIMEDOUT;
    return BLZ_READY;
}

static void
timeout_drop(blz_future *base)
{
    blz_timeout_future *f = (blz_timeout_future *) base;
    blz_future *inner = f->inner_;
    f->inner_ = NULL;
    if (inner) {
        blz_future_drop(inner);
    }
    (void) blz__timer_cancel(&f->sleep_.entry_);
}

static const blz_future_vtable timeout_vtable = {timeout_poll, timeout_drop};

void
blz_timeout_until_fut(blz_future *inner, blz_instant t, blz_timeout_future *f)
{
    if (!f) {
        return;
    }
    blz_future_init(&f->base, &timeout_vtable);
    blz__sleep_init(&f->sleep_, t, blz_clock_now());
    f->inner_ = inner;
    if (!inner) {
        f->base.result = -EINVAL;
    }
}

void
blz_timeout_fut(blz_future *inner, blz_duration d, blz_timeout_future *f)
{
    if (!f) {
        return;
    }
    blz_instant now = blz_clock_now();
    blz_future_init(&f->base, &timeout_vtable);
    blz__sleep_init(&f->sleep_, blz_instant_add(now, d), now);
    f->inner_ = inner;
    if (!inner) {
        f->base.result = -EINVAL;
    }
}

int
blz_timeout(blz_future *inner, blz_duration d)
{
    if (!inner) {
        return -EINVAL;
    }
    blz_timeout_future f;
    blz_timeout_fut(inner, d, &f);
    return blz_await(&f.base);
}

int
blz_timeout_until(blz_future *inner, blz_instant t)
{
    if (!inner) {
        return -EINVAL;
    }
    blz_timeout_future f;
    blz_timeout_until_fut(inner, t, &f);
    return blz_await(&f.base);
}
