/*
 * Sleeps, intervals, timeouts and deadlines.
 *
 * The first half polls the futures by hand on a paused blz__timers installed as
 * this thread's timers (blz__timers_set_thread_override), driving the virtual
 * clock with blz__timers_advance and blz__timers_fire. The second half runs
 * them in runtimes with a paused clock, where the runtime jumps the clock to
 * the next timer whenever every task is idle. No test asserts wall-clock
 * durations; the real-clock tests only check "never early", which holds for
 * any scheduling.
 */
#include "blitzio/rt.h"
#include "blitzio/task.h"
#include "blitzio/time.h"
#include "core/coop.h"
#include "harness.h"
#include "rt/runtime.h"
#include "time/timers.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MS BLZ_NS_PER_MS

/* Paused-clock runtime tests run with 1 worker, then with 2 (where the runtime must
 * notice that the last busy worker went idle before it can jump the clock). */
#define MAX_PAUSED_WORKERS 2

/* ---- a counting waker: tracks live references and wakes ---------------------- */

typedef struct cwaker {
    int refs;  /* references handed out by clone and not yet dropped or woken */
    int wakes; /* wake + wake_by_ref */
} cwaker;

static void
cw_wake(void *data)
{
    cwaker *c = data;
    c->wakes++;
    c->refs--;
}

static void
cw_wake_by_ref(void *data)
{
    ((cwaker *) data)->wakes++;
}

static void *
cw_clone(void *data)
{
    ((cwaker *) data)->refs++;
    return data;
}

static void
cw_drop(void *data)
{
    ((cwaker *) data)->refs--;
}

static const blz_waker_vtable cw_vtable = {cw_wake, cw_wake_by_ref, cw_clone, cw_drop};

static blz_poll
poll_with(blz_future *f, cwaker *c)
{
    blz_waker w = {&cw_vtable, c};
    blz_context cx = {&w};
    return blz_future_poll(f, &cx);
}

/* A paused timers installed as this thread's, at virtual time t0 (returned). */
static blz__timers g_t;

static blz_instant
setup_virtual(void)
{
    CHECK_OK(blz__timers_init(&g_t, true));
    blz__timers_set_thread_override(&g_t);
    return blz__timers_now(&g_t);
}

static void
teardown_virtual(void)
{
    CHECK_EQ(blz__timers_count(&g_t), 0);
    blz__timers_set_thread_override(NULL);
    blz__timers_fini(&g_t);
}

/* Advances the virtual clock by `d` and fires; returns the number fired. */
static size_t
advance_fire(blz_duration d)
{
    CHECK_OK(blz__timers_advance(&g_t, d));
    return blz__timers_fire(&g_t);
}

/* ---- sleep by hand ----------------------------------------------------------- */

BLZ_TEST(sleep_zero_and_past_are_ready_at_first_poll)
{
    blz_instant t0 = setup_virtual();
    cwaker c = {0};
    blz_sleep_future f;
    blz_sleep_fut(&f, 0);
    CHECK_EQ(f.deadline, t0);
    CHECK_EQ(poll_with(&f.base, &c), BLZ_READY);
    CHECK_EQ(f.base.result, 0);
    blz_sleep_fut(&f, -blz_secs(5));
    CHECK_EQ(poll_with(&f.base, &c), BLZ_READY);
    blz_sleep_until_fut(&f, t0 - 1);
    CHECK_EQ(poll_with(&f.base, &c), BLZ_READY);
    CHECK_EQ(c.refs, 0);
    CHECK_EQ(c.wakes, 0);
    teardown_virtual();
}

/*
 * blz_us/blz_ms/blz_secs of a count too large for int64 nanoseconds overflowed a
 * signed multiply (undefined; in practice it wrapped): blz_ms(INT64_MAX) came out
 * as -1 ms, so a sleep meant to last (practically) forever was ready at once. The
 * constructors saturate, and such a sleep stays pending.
 */
BLZ_TEST(duration_constructors_saturate_and_huge_sleeps_wait)
{
    volatile int64_t huge = INT64_MAX, neg = INT64_MIN / 1000 - 1, big_s = INT64_MAX / 1000;
    CHECK_EQ(blz_ms(huge), INT64_MAX);
    CHECK_EQ(blz_us(huge), INT64_MAX);
    CHECK_EQ(blz_secs(huge), INT64_MAX);
    CHECK_EQ(blz_secs(big_s), INT64_MAX);
    CHECK_EQ(blz_us(neg), INT64_MIN);
    CHECK_EQ(blz_ms(-huge), INT64_MIN);
    CHECK_EQ(blz_ms(1000), blz_secs(1)); /* in range: unchanged */
    CHECK_EQ(blz_us(-7), -7000);

    setup_virtual();
    cwaker c = {0};
    blz_sleep_future f;
    blz_sleep_fut(&f, blz_ms(huge));
    CHECK_EQ(poll_with(&f.base, &c), BLZ_PENDING);
    CHECK_EQ(advance_fire(blz_secs(3600)), 0);
    CHECK_EQ(poll_with(&f.base, &c), BLZ_PENDING);
    blz_future_drop(&f.base);
    CHECK_EQ(c.refs, 0);
    teardown_virtual();
}

BLZ_TEST(sleep_fires_at_deadline_never_before)
{
    blz_instant t0 = setup_virtual();
    cwaker c = {0};
    blz_sleep_future f;
    blz_sleep_fut(&f, blz_ms(10));
    CHECK_EQ(f.deadline, t0 + 10 * MS);
    CHECK_EQ(poll_with(&f.base, &c), BLZ_PENDING);
    CHECK_EQ(c.refs, 1);
    CHECK_EQ(blz__timers_count(&g_t), 1);
    CHECK_EQ(blz__timers_next(&g_t), t0 + 10 * MS);
    CHECK_EQ(advance_fire(10 * MS - 1), 0); /* one nanosecond short */
    CHECK_EQ(c.wakes, 0);
    CHECK_EQ(poll_with(&f.base, &c), BLZ_PENDING); /* spurious re-poll: same waker kept */
    CHECK_EQ(c.refs, 1);
    CHECK_EQ(advance_fire(1), 1);
    CHECK_EQ(c.wakes, 1);
    CHECK_EQ(c.refs, 0);
    CHECK_EQ(poll_with(&f.base, &c), BLZ_READY);
    CHECK_EQ(f.base.result, 0);
    CHECK_GE(blz__timers_now(&g_t), f.deadline);
    blz_future_drop(&f.base); /* harmless once ready */
    teardown_virtual();
}

BLZ_TEST(sleep_reset_moves_the_deadline_either_way)
{
    blz_instant t0 = setup_virtual();
    cwaker c = {0};
    blz_sleep_future f;
    /* Later, while pending: the old instant passes quietly, the waiter stays. */
    blz_sleep_fut(&f, blz_ms(10));
    CHECK_EQ(poll_with(&f.base, &c), BLZ_PENDING);
    blz_sleep_reset(&f, t0 + 30 * MS);
    CHECK_EQ(f.deadline, t0 + 30 * MS);
    CHECK_EQ(blz__timers_count(&g_t), 1);
    CHECK_EQ(advance_fire(10 * MS), 0);
    CHECK_EQ(c.wakes, 0);
    CHECK_EQ(c.refs, 1);
    CHECK_EQ(advance_fire(20 * MS - 1), 0);
    CHECK_EQ(advance_fire(1), 1);
    CHECK_EQ(c.wakes, 1);
    CHECK_EQ(poll_with(&f.base, &c), BLZ_READY);

    /* Earlier, while pending: from a second away to 5 ms. */
    blz_instant t1 = blz__timers_now(&g_t);
    blz_sleep_fut(&f, blz_secs(1));
    CHECK_EQ(poll_with(&f.base, &c), BLZ_PENDING);
    blz_sleep_reset(&f, t1 + 5 * MS);
    CHECK_EQ(blz__timers_next(&g_t), t1 + 5 * MS);
    CHECK_EQ(advance_fire(5 * MS - 1), 0);
    CHECK_EQ(advance_fire(1), 1);
    CHECK_EQ(poll_with(&f.base, &c), BLZ_READY);

    /* Completed, then reset: it waits again. */
    blz_sleep_reset(&f, t1 + 7 * MS);
    CHECK_EQ(poll_with(&f.base, &c), BLZ_PENDING);
    CHECK_EQ(advance_fire(2 * MS), 1);
    CHECK_EQ(poll_with(&f.base, &c), BLZ_READY);

    /* Not yet polled: it just takes the new deadline. */
    blz_instant t2 = blz__timers_now(&g_t);
    blz_sleep_fut(&f, blz_secs(1));
    blz_sleep_reset(&f, t2 - 1);
    CHECK_EQ(poll_with(&f.base, &c), BLZ_READY);
    blz_sleep_fut(&f, 0);
    blz_sleep_reset(&f, t2 + 3 * MS);
    CHECK_EQ(poll_with(&f.base, &c), BLZ_PENDING);
    CHECK_EQ(advance_fire(3 * MS), 1);
    CHECK_EQ(poll_with(&f.base, &c), BLZ_READY);

    blz_sleep_reset(NULL, t2); /* ignored */
    CHECK_EQ(c.refs, 0);
    teardown_virtual();
}

/*
 * A deadline after the start of the last tick the wheel can represent (the last
 * millisecond before UINT64_MAX) is linked as never due. A virtual clock advanced
 * to UINT64_MAX had passed such a deadline: a sleep first polled then was ready at
 * once, but the same sleep linked before never completed. Whether a sleep is done
 * must agree with the clock, whenever it was polled first.
 */
BLZ_TEST(sleep_at_the_end_of_time_agrees_with_the_clock)
{
    setup_virtual();
    cwaker c = {0};
    blz_sleep_future before, after;
    blz_sleep_until_fut(&before, UINT64_MAX - 1);
    CHECK_EQ(poll_with(&before.base, &c), BLZ_PENDING);
    for (int i = 0; i < 3; i++) {
        (void) advance_fire(INT64_MAX); /* saturating */
    }
    bool passed = blz__timers_now(&g_t) >= UINT64_MAX - 1;
    CHECK_EQ(poll_with(&before.base, &c) == BLZ_READY, passed);
    blz_sleep_until_fut(&after, UINT64_MAX - 1);
    CHECK_EQ(poll_with(&after.base, &c) == BLZ_READY, passed);
    blz_future_drop(&before.base);
    blz_future_drop(&after.base);
    CHECK_EQ(c.refs, 0);
    teardown_virtual();
}

BLZ_TEST(sleep_off_grid_deadline_rounds_up_to_the_tick)
{
    blz_instant t0 = setup_virtual();
    cwaker c = {0};
    CHECK_EQ(advance_fire(MS / 2), 0);
    blz_sleep_future f;
    blz_sleep_fut(&f, blz_ms(1)); /* deadline t0 + 1.5 ms: tick 2 */
    CHECK_EQ(poll_with(&f.base, &c), BLZ_PENDING);
    CHECK_EQ(advance_fire(MS), 0); /* at the deadline, mid-tick: not yet */
    CHECK_EQ(blz__timers_now(&g_t), f.deadline);
    CHECK_EQ(advance_fire(MS / 2 - 1), 0);
    CHECK_EQ(advance_fire(1), 1); /* t0 + 2 ms */
    CHECK_EQ(blz__timers_now(&g_t), t0 + 2 * MS);
    CHECK_EQ(poll_with(&f.base, &c), BLZ_READY);
    teardown_virtual();
}

BLZ_TEST(sleep_repoll_with_another_waker_replaces_it)
{
    setup_virtual();
    cwaker a = {0}, b = {0};
    blz_sleep_future f;
    blz_sleep_fut(&f, blz_ms(3));
    CHECK_EQ(poll_with(&f.base, &a), BLZ_PENDING);
    CHECK_EQ(poll_with(&f.base, &b), BLZ_PENDING);
    CHECK_EQ(a.refs, 0);
    CHECK_EQ(b.refs, 1);
    CHECK_EQ(advance_fire(3 * MS), 1);
    CHECK_EQ(a.wakes, 0);
    CHECK_EQ(b.wakes, 1);
    CHECK_EQ(poll_with(&f.base, &b), BLZ_READY);
    teardown_virtual();
}

BLZ_TEST(sleep_drop_unlinks_and_releases_waker)
{
    setup_virtual();
    cwaker c = {0};
    blz_sleep_future f;
    blz_sleep_fut(&f, blz_ms(3));
    CHECK_EQ(poll_with(&f.base, &c), BLZ_PENDING);
    blz_future_drop(&f.base);
    CHECK_EQ(blz__timers_count(&g_t), 0);
    CHECK_EQ(c.refs, 0);
    CHECK_EQ(advance_fire(blz_secs(1)), 0);
    CHECK_EQ(c.wakes, 0);
    blz_future_drop(&f.base); /* twice is harmless */
    teardown_virtual();
}

BLZ_TEST(sleep_drop_after_fire_before_poll)
{
    setup_virtual();
    cwaker c = {0};
    blz_sleep_future f;
    blz_sleep_fut(&f, blz_ms(1));
    CHECK_EQ(poll_with(&f.base, &c), BLZ_PENDING);
    CHECK_EQ(advance_fire(MS), 1);
    blz_future_drop(&f.base);
    CHECK_EQ(c.refs, 0);
    CHECK_EQ(c.wakes, 1);
    teardown_virtual();
}

BLZ_TEST(sleep_polled_in_other_timers_moves_there)
{
    static blz__timers other;
    blz_instant t0 = setup_virtual();
    CHECK_OK(blz__timers_init(&other, true));
    cwaker c = {0};
    blz_sleep_future f;
    blz_sleep_until_fut(&f, t0 + blz_secs(10));
    CHECK_EQ(poll_with(&f.base, &c), BLZ_PENDING);
    CHECK_EQ(blz__timers_count(&g_t), 1);
    blz__timers_set_thread_override(&other);
    CHECK_EQ(poll_with(&f.base, &c), BLZ_PENDING);
    CHECK_EQ(blz__timers_count(&g_t), 0);
    CHECK_EQ(blz__timers_count(&other), 1);
    CHECK_EQ(c.refs, 1);
    blz_future_drop(&f.base);
    CHECK_EQ(c.refs, 0);
    blz__timers_fini(&other);
    teardown_virtual();
}

BLZ_TEST(sleep_spends_coop_budget)
{
    setup_virtual();
    cwaker c = {0};
    blz_sleep_future f;
    blz_sleep_fut(&f, 0);
    int saved = blz__coop_budget;
    blz__coop_budget = 0;
    CHECK_EQ(poll_with(&f.base, &c), BLZ_PENDING); /* out of budget: wake and yield */
    CHECK_EQ(c.wakes, 1);
    CHECK_EQ(blz__timers_count(&g_t), 0);
    blz__coop_budget = 1;
    CHECK_EQ(poll_with(&f.base, &c), BLZ_READY);
    CHECK_EQ(blz__coop_budget, 0);
    blz__coop_budget = saved;
    teardown_virtual();
}

BLZ_TEST(sleep_cancelled_when_timers_torn_down)
{
    setup_virtual();
    cwaker c = {0};
    blz_sleep_future f;
    blz_sleep_fut(&f, blz_ms(50));
    CHECK_EQ(poll_with(&f.base, &c), BLZ_PENDING);
    blz__timers_set_thread_override(NULL);
    blz__timers_fini(&g_t);
    CHECK_EQ(c.wakes, 0); /* the waker is released, not woken */
    CHECK_EQ(c.refs, 0);
    CHECK_EQ(poll_with(&f.base, &c), BLZ_READY);
    CHECK_EQ(f.base.result, -ECANCELED);
}

BLZ_TEST(sleep_null_is_ignored)
{
    blz_sleep_fut(NULL, 1);
    blz_sleep_until_fut(NULL, 1);
}

/* ---- timeout by hand ------------------------------------------------------- */

/* A future that becomes ready with `value` on poll number `ready_at` (0: never). */
typedef struct probe_future {
    blz_future base;
    int polls;
    int ready_at;
    int value;
    int drops;
} probe_future;

static blz_poll
probe_poll(blz_future *self, blz_context *cx)
{
    probe_future *p = (probe_future *) self;
    (void) cx;
    if (++p->polls == p->ready_at) {
        self->result = p->value;
        return BLZ_READY;
    }
    return BLZ_PENDING;
}

static void
probe_drop(blz_future *self)
{
    ((probe_future *) self)->drops++;
}

static const blz_future_vtable probe_vtable = {probe_poll, probe_drop};

static void
probe_init(probe_future *p, int ready_at, int value)
{
    blz_future_init(&p->base, &probe_vtable);
    p->polls = 0;
    p->ready_at = ready_at;
    p->value = value;
    p->drops = 0;
}

BLZ_TEST(timeout_expires_and_drops_inner)
{
    setup_virtual();
    cwaker c = {0};
    probe_future inner;
    probe_init(&inner, 0, 0);
    blz_timeout_future tf;
    blz_timeout_fut(&inner.base, blz_ms(5), &tf);
    CHECK_EQ(poll_with(&tf.base, &c), BLZ_PENDING);
    CHECK_EQ(blz__timers_count(&g_t), 1);
    CHECK_EQ(advance_fire(5 * MS - 1), 0);
    CHECK_EQ(advance_fire(1), 1);
    CHECK_EQ(poll_with(&tf.base, &c), BLZ_READY);
    CHECK_EQ(tf.base.result, -ETIMEDOUT);
    CHECK_EQ(inner.drops, 1);
    CHECK_EQ(inner.polls, 2);
    blz_future_drop(&tf.base); /* after completion: must not drop inner again */
    CHECK_EQ(inner.drops, 1);
    CHECK_EQ(c.refs, 0);
    teardown_virtual();
}

BLZ_TEST(timeout_inner_first_wins_and_unlinks_timer)
{
    setup_virtual();
    cwaker c = {0};
    probe_future inner;
    probe_init(&inner, 2, 42);
    blz_timeout_future tf;
    blz_timeout_fut(&inner.base, blz_ms(5), &tf);
    CHECK_EQ(poll_with(&tf.base, &c), BLZ_PENDING);
    CHECK_EQ(poll_with(&tf.base, &c), BLZ_READY);
    CHECK_EQ(tf.base.result, 42);
    CHECK_EQ(inner.drops, 0);
    CHECK_EQ(blz__timers_count(&g_t), 0);
    CHECK_EQ(c.refs, 0);
    teardown_virtual();
}

BLZ_TEST(timeout_tie_goes_to_inner)
{
    setup_virtual();
    cwaker c = {0};
    probe_future inner;
    probe_init(&inner, 2, 7);
    blz_timeout_future tf;
    blz_timeout_fut(&inner.base, blz_ms(5), &tf);
    CHECK_EQ(poll_with(&tf.base, &c), BLZ_PENDING);
    CHECK_EQ(advance_fire(5 * MS), 1);
    CHECK_EQ(poll_with(&tf.base, &c), BLZ_READY);
    CHECK_EQ(tf.base.result, 7);
    CHECK_EQ(inner.drops, 0);
    teardown_virtual();
}

BLZ_TEST(timeout_drop_drops_inner_and_timer)
{
    setup_virtual();
    cwaker c = {0};
    probe_future inner;
    probe_init(&inner, 0, 0);
    blz_timeout_future tf;
    blz_timeout_until_fut(&inner.base, blz__timers_now(&g_t) + blz_secs(1), &tf);
    CHECK_EQ(poll_with(&tf.base, &c), BLZ_PENDING);
    blz_future_drop(&tf.base);
    CHECK_EQ(inner.drops, 1);
    CHECK_EQ(blz__timers_count(&g_t), 0);
    CHECK_EQ(c.refs, 0);
    teardown_virtual();
}

BLZ_TEST(timeout_null_inner_is_einval)
{
    setup_virtual();
    cwaker c = {0};
    blz_timeout_future tf;
    blz_timeout_fut(NULL, blz_ms(5), &tf);
    CHECK_EQ(poll_with(&tf.base, &c), BLZ_READY);
    CHECK_EQ(tf.base.result, -EINVAL);
    CHECK_EQ(blz_timeout(NULL, blz_ms(1)), -EINVAL);
    CHECK_EQ(blz_timeout_until(NULL, 0), -EINVAL);
    teardown_virtual();
}

BLZ_TEST(timeout_already_expired_still_polls_inner_first)
{
    setup_virtual();
    cwaker c = {0};
    probe_future inner;
    probe_init(&inner, 0, 0);
    blz_timeout_future tf;
    blz_timeout_fut(&inner.base, 0, &tf);
    CHECK_EQ(poll_with(&tf.base, &c), BLZ_READY);
    CHECK_EQ(tf.base.result, -ETIMEDOUT);
    CHECK_EQ(inner.polls, 1);
    CHECK_EQ(inner.drops, 1);
    teardown_virtual();
}

/* ---- interval by hand ------------------------------------------------------ */

/* Polls a fresh tick future once; returns its tick instant if ready, else 0. */
static blz_instant
try_tick(blz_interval *iv, cwaker *c)
{
    blz_interval_tick_future f;
    blz_interval_tick_fut(iv, &f);
    if (poll_with(&f.base, c) == BLZ_READY) {
        CHECK_EQ(f.base.result, 0);
        return f.tick;
    }
    blz_future_drop(&f.base);
    return 0;
}

/* Waits by hand for the next tick, advancing the clock to it; returns its instant. */
static blz_instant
next_tick_by_hand(blz_interval *iv, cwaker *c)
{
    blz_interval_tick_future f;
    blz_interval_tick_fut(iv, &f);
    while (poll_with(&f.base, c) == BLZ_PENDING) {
        CHECK_EQ(blz__timers_advance_to_next(&g_t), 1);
        CHECK_EQ(blz__timers_fire(&g_t), 1);
    }
    CHECK_EQ(f.base.result, 0);
    return f.tick;
}

BLZ_TEST(interval_first_tick_at_once_then_every_period)
{
    blz_instant t0 = setup_virtual();
    cwaker c = {0};
    blz_interval iv;
    CHECK_OK(blz_interval_init(&iv, blz_ms(10), BLZ_MISSED_BURST));
    CHECK_EQ(try_tick(&iv, &c), t0);
    for (int i = 1; i <= 5; i++) {
        CHECK_EQ(try_tick(&iv, &c), 0);
        CHECK_EQ(next_tick_by_hand(&iv, &c), t0 + (blz_instant) i * 10 * MS);
        CHECK_EQ(blz__timers_now(&g_t), t0 + (blz_instant) i * 10 * MS);
    }
    CHECK_EQ(c.refs, 0);
    teardown_virtual();
}

BLZ_TEST(interval_burst_catches_up_back_to_back)
{
    blz_instant t0 = setup_virtual();
    cwaker c = {0};
    blz_interval iv;
    CHECK_OK(blz_interval_init(&iv, blz_ms(10), BLZ_MISSED_BURST));
    CHECK_EQ(try_tick(&iv, &c), t0);
    CHECK_EQ(advance_fire(35 * MS), 0);
    CHECK_EQ(try_tick(&iv, &c), t0 + 10 * MS);
    CHECK_EQ(try_tick(&iv, &c), t0 + 20 * MS);
    CHECK_EQ(try_tick(&iv, &c), t0 + 30 * MS);
    CHECK_EQ(try_tick(&iv, &c), 0);
    CHECK_EQ(next_tick_by_hand(&iv, &c), t0 + 40 * MS);
    teardown_virtual();
}

BLZ_TEST(interval_delay_restarts_from_the_late_tick)
{
    blz_instant t0 = setup_virtual();
    cwaker c = {0};
    blz_interval iv;
    CHECK_OK(blz_interval_init(&iv, blz_ms(10), BLZ_MISSED_DELAY));
    CHECK_EQ(try_tick(&iv, &c), t0);
    CHECK_EQ(advance_fire(35 * MS), 0);
    CHECK_EQ(try_tick(&iv, &c), t0 + 10 * MS); /* late, completes at t0 + 35 */
    CHECK_EQ(try_tick(&iv, &c), 0);
    CHECK_EQ(next_tick_by_hand(&iv, &c), t0 + 45 * MS);
    CHECK_EQ(next_tick_by_hand(&iv, &c), t0 + 55 * MS);
    teardown_virtual();
}

BLZ_TEST(interval_skip_goes_to_next_multiple)
{
    blz_instant t0 = setup_virtual();
    cwaker c = {0};
    blz_interval iv;
    CHECK_OK(blz_interval_init(&iv, blz_ms(10), BLZ_MISSED_SKIP));
    CHECK_EQ(try_tick(&iv, &c), t0);
    CHECK_EQ(advance_fire(35 * MS), 0);
    CHECK_EQ(try_tick(&iv, &c), t0 + 10 * MS);
    CHECK_EQ(try_tick(&iv, &c), 0);
    CHECK_EQ(next_tick_by_hand(&iv, &c), t0 + 40 * MS);
    CHECK_EQ(next_tick_by_hand(&iv, &c), t0 + 50 * MS);
    /* Exactly on a multiple when late: the next multiple after it. */
    CHECK_EQ(advance_fire(30 * MS), 0); /* now t0 + 80, tick due at 60 */
    CHECK_EQ(try_tick(&iv, &c), t0 + 60 * MS);
    CHECK_EQ(next_tick_by_hand(&iv, &c), t0 + 90 * MS);
    teardown_virtual();
}

BLZ_TEST(interval_slightly_late_tick_keeps_schedule)
{
    blz_instant t0 = setup_virtual();
    cwaker c = {0};
    blz_interval iv;
    CHECK_OK(blz_interval_init(&iv, blz_ms(10), BLZ_MISSED_DELAY));
    CHECK_EQ(try_tick(&iv, &c), t0);
    CHECK_EQ(advance_fire(10 * MS + BLZ_INTERVAL_LATE_SLACK), 0); /* within the slack */
    CHECK_EQ(try_tick(&iv, &c), t0 + 10 * MS);
    CHECK_EQ(next_tick_by_hand(&iv, &c), t0 + 20 * MS);
    teardown_virtual();
}

BLZ_TEST(interval_tick_drop_keeps_schedule)
{
    blz_instant t0 = setup_virtual();
    cwaker c = {0};
    blz_interval iv;
    CHECK_OK(blz_interval_init(&iv, blz_ms(10), BLZ_MISSED_BURST));
    CHECK_EQ(try_tick(&iv, &c), t0);
    blz_interval_tick_future f;
    blz_interval_tick_fut(&iv, &f);
    CHECK_EQ(poll_with(&f.base, &c), BLZ_PENDING);
    CHECK_EQ(blz__timers_count(&g_t), 1);
    blz_future_drop(&f.base);
    CHECK_EQ(blz__timers_count(&g_t), 0);
    CHECK_EQ(c.refs, 0);
    CHECK_EQ(advance_fire(3 * MS), 0);
    CHECK_EQ(next_tick_by_hand(&iv, &c), t0 + 10 * MS);
    teardown_virtual();
}

BLZ_TEST(interval_reset_restarts_from_now)
{
    blz_instant t0 = setup_virtual();
    cwaker c = {0};
    blz_interval iv;
    CHECK_OK(blz_interval_init(&iv, blz_ms(10), BLZ_MISSED_BURST));
    CHECK_EQ(try_tick(&iv, &c), t0);
    /* Reset while a tick future is pending: it keeps waiting, for the new instant. */
    blz_interval_tick_future f;
    blz_interval_tick_fut(&iv, &f);
    CHECK_EQ(poll_with(&f.base, &c), BLZ_PENDING);
    CHECK_EQ(advance_fire(3 * MS), 0);
    blz_interval_reset(&iv);
    CHECK_EQ(advance_fire(7 * MS), 0); /* the old instant passes quietly */
    CHECK_EQ(c.wakes, 0);
    CHECK_EQ(advance_fire(6 * MS), 1);
    CHECK_EQ(c.wakes, 1);
    CHECK_EQ(poll_with(&f.base, &c), BLZ_READY);
    CHECK_EQ(f.tick, t0 + 13 * MS);
    CHECK_EQ(next_tick_by_hand(&iv, &c), t0 + 23 * MS);
    teardown_virtual();
}

BLZ_TEST(interval_at_starts_where_asked)
{
    blz_instant t0 = setup_virtual();
    cwaker c = {0};
    blz_interval iv;
    /* A period away: nothing at once. */
    CHECK_OK(blz_interval_init_at(&iv, t0 + 10 * MS, blz_ms(10), BLZ_MISSED_BURST));
    CHECK_EQ(blz_interval_period(&iv), blz_ms(10));
    CHECK_EQ(try_tick(&iv, &c), 0);
    CHECK_EQ(next_tick_by_hand(&iv, &c), t0 + 10 * MS);
    CHECK_EQ(next_tick_by_hand(&iv, &c), t0 + 20 * MS);
    /* Aligned to a boundary 3 ms off. */
    CHECK_OK(blz_interval_init_at(&iv, t0 + 23 * MS, blz_ms(10), BLZ_MISSED_SKIP));
    CHECK_EQ(next_tick_by_hand(&iv, &c), t0 + 23 * MS);
    CHECK_EQ(next_tick_by_hand(&iv, &c), t0 + 33 * MS);
    /* In the past: at once, then by the policy (skip: the next multiple). */
    blz_instant now = blz__timers_now(&g_t);
    CHECK_OK(blz_interval_init_at(&iv, now - 25 * MS, blz_ms(10), BLZ_MISSED_SKIP));
    CHECK_EQ(try_tick(&iv, &c), now - 25 * MS);
    CHECK_EQ(next_tick_by_hand(&iv, &c), now + 5 * MS);
    CHECK_EQ(blz_interval_init_at(NULL, now, blz_ms(10), BLZ_MISSED_SKIP), -EINVAL);
    CHECK_EQ(blz_interval_init_at(&iv, now, 0, BLZ_MISSED_SKIP), -EINVAL);
    CHECK_EQ(blz_interval_period(NULL), 0);
    teardown_virtual();
}

BLZ_TEST(interval_rejects_bad_arguments)
{
    blz_interval iv = {0};
    CHECK_EQ(blz_interval_init(NULL, blz_ms(1), BLZ_MISSED_BURST), -EINVAL);
    CHECK_EQ(blz_interval_init(&iv, 0, BLZ_MISSED_BURST), -EINVAL);
    CHECK_EQ(blz_interval_init(&iv, -1, BLZ_MISSED_BURST), -EINVAL);
    CHECK_EQ(blz_interval_init(&iv, 1, (blz_missed_tick) 7), -EINVAL);
    CHECK_EQ(blz_interval_tick(NULL), -EINVAL);
    CHECK_EQ(blz_interval_tick(&iv), -EINVAL); /* never initialised */
    cwaker c = {0};
    blz_interval_tick_future f;
    blz_interval_tick_fut(&iv, &f);
    CHECK_EQ(poll_with(&f.base, &c), BLZ_READY);
    CHECK_EQ(f.base.result, -EINVAL);
    blz_interval_reset(NULL);
}

/* ---- deadline and clock ---------------------------------------------------- */

BLZ_TEST(deadline_follows_the_virtual_clock)
{
    blz_instant t0 = setup_virtual();
    CHECK_EQ(blz_clock_now(), t0);
    blz_deadline dl = blz_deadline_after(blz_ms(5));
    CHECK_EQ(dl.at, t0 + 5 * MS);
    CHECK(!blz_deadline_expired(dl));
    CHECK_EQ(blz_deadline_remaining(dl), 5 * MS);
    CHECK_EQ(advance_fire(4 * MS), 0);
    CHECK_EQ(blz_deadline_remaining(dl), MS);
    CHECK_EQ(advance_fire(MS), 0);
    CHECK(blz_deadline_expired(dl));
    CHECK_EQ(blz_deadline_remaining(dl), 0);
    blz_deadline never = blz_deadline_never();
    CHECK(!blz_deadline_expired(never));
    CHECK_EQ(blz_deadline_remaining(never), INT64_MAX);
    CHECK_EQ(blz_deadline_after(INT64_MAX).at, t0 + 5 * MS + (blz_instant) INT64_MAX);
    teardown_virtual();
}

/*
 * blz_instant_since returns a blz_duration: a gap wider than INT64_MAX
 * nanoseconds (from a never-deadline's UINT64_MAX, say) saturates at
 * INT64_MAX. It was cast to int64 and came out negative: UINT64_MAX since 0
 * was -1 ns.
 */
BLZ_TEST(instant_since_saturates_instead_of_wrapping)
{
    volatile blz_instant zero = 0, now = blz_now();
    CHECK_EQ(blz_instant_since(UINT64_MAX, zero), INT64_MAX);
    CHECK_EQ(blz_instant_since(blz_deadline_never().at, now), INT64_MAX);
    CHECK_EQ(blz_instant_since((blz_instant) INT64_MAX + 1, zero), INT64_MAX);
    CHECK_EQ(blz_instant_since((blz_instant) INT64_MAX, zero), INT64_MAX); /* in range */
    CHECK_EQ(blz_instant_since(now + 5, now), 5);
    CHECK_EQ(blz_instant_since(now, now + 5), 0);
}

BLZ_TEST(clock_now_is_monotonic_outside_a_runtime)
{
    blz_instant a = blz_clock_now();
    blz_instant b = blz_now();
    blz_instant c = blz_clock_now();
    CHECK_LE(a, b);
    CHECK_LE(b, c);
}

/* ---- a foreign thread: blz_await parks it until the deadline -------------- */

static void *
foreign_sleeper(void *arg)
{
    (void) arg;
    blz_instant t0 = blz_now();
    CHECK_EQ(blz_sleep(blz_ms(2)), 0);
    CHECK_GE(blz_now(), t0 + 2 * MS); /* never early; no upper bound asserted */
    blz_instant until = blz_now() + MS;
    CHECK_EQ(blz_sleep_until(until), 0);
    CHECK_GE(blz_now(), until);
    /* The ticks are due at init, init + 1 ms, init + 2 ms: `start` must be
     * read before the init (read after it, a slow emulator once put it more
     * than the slack after the init, and the bound failed). */
    blz_instant start = blz_now();
    blz_interval iv;
    CHECK_OK(blz_interval_init(&iv, blz_ms(1), BLZ_MISSED_SKIP));
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(blz_interval_tick(&iv), 0);
    }
    CHECK_GE(blz_now(), start + 2 * MS);
    return NULL;
}

BLZ_TEST(sleep_on_a_foreign_thread_parks_it)
{
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, foreign_sleeper, NULL), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
}

/* ---- in a runtime with a paused clock -------------------------------------- */

static blz_runtime *
paused_runtime(unsigned workers)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = workers;
    cfg.paused_clock = true;
    blz_runtime *rt = NULL;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    return rt;
}

static void *
never_early_body(void *arg)
{
    (void) arg;
    const blz_duration ds[] = {1,
                               999 * BLZ_NS_PER_US,
                               MS,
                               3 * MS / 2,
                               64 * MS,
                               65 * MS,
                               4097 * MS,
                               5 * BLZ_NS_PER_S,
                               3 * 3600 * BLZ_NS_PER_S};
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
        blz_instant t0 = blz_clock_now();
        CHECK_EQ(blz_sleep(ds[i]), 0);
        blz_instant t1 = blz_clock_now();
        CHECK_GE(t1, t0 + (blz_instant) ds[i]);      /* never early */
        CHECK_LE(t1, t0 + (blz_instant) ds[i] + MS); /* the virtual clock jumps to its tick */
    }
    return (void *) 1;
}

BLZ_TEST(rt_sleep_never_early_on_paused_clock)
{
    for (unsigned w = 1; w <= MAX_PAUSED_WORKERS; w++) {
        blz_runtime *rt = paused_runtime(w);
        void *res = NULL;
        CHECK_OK(blz_runtime_block_on(rt, never_early_body, NULL, &res));
        CHECK_PTR_EQ(res, (void *) 1);
        blz_runtime_free(rt);
    }
}

/* ---- the clock jumps once a blocking job that held it back ends ------------ */

/* A blocking job counts as work: the clock does not jump while one runs
 * (all_idle in rt/worker.c). Once it ends, with every worker asleep and a
 * task sleeping on a timer, the clock must jump to that timer. The job here
 * is detached, so its end wakes no task: it waits until every worker sleeps,
 * one in the driver, then returns. */
typedef struct bj_case {
    blz_runtime *rt;
    atomic_bool saw_all_asleep;
    atomic_bool slept;
} bj_case;

static bool
bj_all_asleep(blz_runtime *rt)
{
    uint64_t full = atomic_load(&rt->active_mask);
    uint32_t held = atomic_load(&rt->driver_held);
    return (atomic_load(&rt->idle_mask) & full) == full && held != 0 &&
           atomic_load(&rt->workers[held - 1].park_state) == BLZ_PARK_DRIVER;
}

static void *
bj_job(void *arg)
{
    bj_case *c = arg;
    blz_instant start = blz_now();
    bool ok = false;
    while (!(ok = bj_all_asleep(c->rt)) && blz_now() - start < 5 * BLZ_NS_PER_S) {
        (void) sched_yield();
    }
    atomic_store(&c->saw_all_asleep, ok);
    return NULL;
}

static void *
bj_task(void *arg)
{
    bj_case *c = arg;
    CHECK_OK(blz_spawn_blocking(bj_job, c, NULL)); /* detached */
    CHECK_EQ(blz_sleep(blz_secs(1)), 0);
    atomic_store(&c->slept, true);
    return NULL;
}

BLZ_TEST(rt_clock_jumps_once_a_detached_blocking_job_ends)
{
    for (unsigned w = 1; w <= MAX_PAUSED_WORKERS; w++) {
        static bj_case c;
        memset(&c, 0, sizeof c);
        c.rt = paused_runtime(w);
        blz_join *j;
        CHECK_OK(blz_runtime_spawn(c.rt, bj_task, &c, &j));
        blz_instant start = blz_now();
        while (!atomic_load(&c.slept) && blz_now() - start < 5 * BLZ_NS_PER_S) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        CHECK(atomic_load(&c.saw_all_asleep));
        CHECK(atomic_load(&c.slept));
        if (!atomic_load(&c.slept)) {
            CHECK_OK(blz_runtime_advance(c.rt, blz_secs(1))); /* let it end */
        }
        CHECK_OK(blz_join_wait(j, NULL));
        blz_runtime_free(c.rt);
    }
}

#define NFIBERS 1000

typedef struct order_state {
    blz_instant base;
    unsigned delay_ms[NFIBERS]; /* a permutation of 1..NFIBERS */
    _Atomic unsigned next_slot;
    unsigned woke[NFIBERS]; /* fiber index in wake order */
    blz_instant woke_at[NFIBERS];
} order_state;

static order_state g_order;

static void *
order_fiber(void *arg)
{
    unsigned i = (unsigned) (uintptr_t) arg;
    blz_instant dl = g_order.base + (blz_instant) g_order.delay_ms[i] * MS;
    CHECK_EQ(blz_sleep_until(dl), 0);
    blz_instant now = blz_clock_now();
    unsigned slot = atomic_fetch_add(&g_order.next_slot, 1);
    g_order.woke[slot] = i;
    g_order.woke_at[slot] = now;
    return NULL;
}

static void *
order_body(void *arg)
{
    (void) arg;
    static blz_join *joins[NFIBERS];
    g_order.base = blz_clock_now();
    for (unsigned i = 0; i < NFIBERS; i++) {
        CHECK_OK(blz_spawn(order_fiber, (void *) (uintptr_t) i, &joins[i]));
    }
    CHECK_OK(blz_join_all(joins, NFIBERS, NULL));
    return NULL;
}

BLZ_TEST(rt_thousand_fibers_wake_in_deadline_order)
{
    for (unsigned i = 0; i < NFIBERS; i++) {
        g_order.delay_ms[i] = i + 1;
    }
    for (unsigned i = NFIBERS - 1; i > 0; i--) { /* Fisher-Yates with a fixed seed */
        unsigned j = (unsigned) ((i * 2654435761u + 12345u) % (i + 1));
        unsigned tmp = g_order.delay_ms[i];
        g_order.delay_ms[i] = g_order.delay_ms[j];
        g_order.delay_ms[j] = tmp;
    }
    for (unsigned w = 1; w <= MAX_PAUSED_WORKERS; w++) {
        atomic_store(&g_order.next_slot, 0);
        blz_runtime *rt = paused_runtime(w);
        CHECK_OK(blz_runtime_block_on(rt, order_body, NULL, NULL));
        blz_runtime_free(rt);
        CHECK_EQ(atomic_load(&g_order.next_slot), NFIBERS);
        for (unsigned k = 0; k < NFIBERS; k++) {
            unsigned i = g_order.woke[k];
            CHECK_EQ(g_order.delay_ms[i], k + 1); /* k-th to wake has the k-th deadline */
            CHECK_GE(g_order.woke_at[k], g_order.base + (blz_instant) (k + 1) * MS);
        }
    }
}

static void *
interval_body(void *arg)
{
    blz_missed_tick policy = (blz_missed_tick) (intptr_t) arg;
    blz_interval iv;
    CHECK_OK(blz_interval_init(&iv, blz_ms(10), policy));
    blz_instant t0 = blz_clock_now();
    CHECK_EQ(blz_interval_tick(&iv), 0);
    CHECK_EQ(blz_clock_now(), t0);
    CHECK_EQ(blz_interval_tick(&iv), 0);
    CHECK_EQ(blz_clock_now(), t0 + 10 * MS);
    CHECK_EQ(blz_sleep(blz_ms(25)), 0); /* now t0 + 35: the tick at 20 is late */
    CHECK_EQ(blz_clock_now(), t0 + 35 * MS);
    blz_instant expect[3];
    switch (policy) {
    case BLZ_MISSED_BURST: /* 20 and 30 at once, then 40 */
        expect[0] = t0 + 35 * MS, expect[1] = t0 + 35 * MS, expect[2] = t0 + 40 * MS;
        break;
    case BLZ_MISSED_DELAY: /* 20 at once, then 45, 55 */
        expect[0] = t0 + 35 * MS, expect[1] = t0 + 45 * MS, expect[2] = t0 + 55 * MS;
        break;
    default: /* skip: 20 at once, then 40, 50 */
        expect[0] = t0 + 35 * MS, expect[1] = t0 + 40 * MS, expect[2] = t0 + 50 * MS;
        break;
    }
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(blz_interval_tick(&iv), 0);
        CHECK_EQ(blz_clock_now(), expect[i]);
    }
    return NULL;
}

BLZ_TEST(rt_interval_policies_on_paused_clock)
{
    static const blz_missed_tick policies[] = {BLZ_MISSED_BURST, BLZ_MISSED_DELAY, BLZ_MISSED_SKIP};
    for (unsigned w = 1; w <= MAX_PAUSED_WORKERS; w++) {
        for (size_t i = 0; i < 3; i++) {
            blz_runtime *rt = paused_runtime(w);
            CHECK_OK(
                blz_runtime_block_on(rt, interval_body, (void *) (intptr_t) policies[i], NULL));
            blz_runtime_free(rt);
        }
    }
}

static void *
timeout_body(void *arg)
{
    (void) arg;
    /* Expires: the inner future is dropped. */
    probe_future inner;
    probe_init(&inner, 0, 0);
    blz_instant t0 = blz_clock_now();
    CHECK_EQ(blz_timeout(&inner.base, blz_ms(10)), -ETIMEDOUT);
    CHECK_EQ(inner.drops, 1);
    CHECK_EQ(blz_clock_now(), t0 + 10 * MS);
    /* The inner future finishes first: its result comes back, at its own time. */
    blz_sleep_future s;
    blz_sleep_fut(&s, blz_ms(5));
    t0 = blz_clock_now();
    CHECK_EQ(blz_timeout(&s.base, blz_ms(10)), 0);
    CHECK_EQ(blz_clock_now(), t0 + 5 * MS);
    /* Absolute deadline. */
    probe_init(&inner, 0, 0);
    t0 = blz_clock_now();
    CHECK_EQ(blz_timeout_until(&inner.base, t0 + 7 * MS), -ETIMEDOUT);
    CHECK_EQ(inner.drops, 1);
    CHECK_EQ(blz_clock_now(), t0 + 7 * MS);
    return NULL;
}

BLZ_TEST(rt_timeout_expires_and_drops_inner)
{
    for (unsigned w = 1; w <= MAX_PAUSED_WORKERS; w++) {
        blz_runtime *rt = paused_runtime(w);
        CHECK_OK(blz_runtime_block_on(rt, timeout_body, NULL, NULL));
        blz_runtime_free(rt);
    }
}

/* A stackless task: three sleeps in a row, written with the protothread macros. */
typedef struct three_sleeps {
    blz_future base;
    blz_sleep_future s;
    int i;
} three_sleeps;

static blz_poll
three_sleeps_poll(blz_future *self, blz_context *cx)
{
    three_sleeps *t = (three_sleeps *) self;
    BLZ_ASYNC_BEGIN(self);
    for (t->i = 0; t->i < 3; t->i++) {
        blz_sleep_fut(&t->s, blz_ms(4));
        BLZ_AWAIT(self, cx, &t->s.base);
    }
    BLZ_ASYNC_RETURN(self, 3);
    BLZ_ASYNC_END(self);
}

static void
three_sleeps_drop(blz_future *self)
{
    blz_future_drop(&((three_sleeps *) self)->s.base);
}

static const blz_future_vtable three_sleeps_vtable = {three_sleeps_poll, three_sleeps_drop};

static void *
stackless_body(void *arg)
{
    (void) arg;
    three_sleeps f;
    blz_future_init(&f.base, &three_sleeps_vtable);
    blz_join *j;
    blz_instant t0 = blz_clock_now();
    CHECK_OK(blz_spawn_future(&f.base, sizeof f, &j));
    void *res = NULL;
    CHECK_OK(blz_join_wait(j, &res));
    CHECK_EQ((intptr_t) res, 3);
    CHECK_EQ(blz_clock_now(), t0 + 12 * MS);
    return NULL;
}

BLZ_TEST(rt_stackless_task_sleeps)
{
    for (unsigned w = 1; w <= MAX_PAUSED_WORKERS; w++) {
        blz_runtime *rt = paused_runtime(w);
        CHECK_OK(blz_runtime_block_on(rt, stackless_body, NULL, NULL));
        blz_runtime_free(rt);
    }
}

static void *
advance_body(void *arg)
{
    blz_runtime *rt = arg;
    blz_instant t0 = blz_clock_now();
    CHECK_EQ(blz_runtime_advance(rt, blz_ms(250)), 0);
    CHECK_EQ(blz_clock_now(), t0 + 250 * MS);
    blz_sleep_future f;
    blz_sleep_until_fut(&f, t0 + 100 * MS); /* already passed on the virtual clock */
    CHECK_EQ(blz_await(&f.base), 0);
    CHECK_EQ(blz_clock_now(), t0 + 250 * MS);
    return NULL;
}

BLZ_TEST(rt_advance_moves_the_virtual_clock)
{
    blz_runtime *rt = paused_runtime(1);
    CHECK_OK(blz_runtime_block_on(rt, advance_body, rt, NULL));
    blz_runtime_free(rt);
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 1;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    CHECK_EQ(blz_runtime_advance(rt, blz_ms(1)), -EINVAL);
    blz_runtime_free(rt);
}

static void *
real_clock_body(void *arg)
{
    (void) arg;
    for (int i = 0; i < 5; i++) {
        blz_instant t0 = blz_now();
        CHECK_EQ(blz_sleep(blz_us(1500)), 0);
        CHECK_GE(blz_now(), t0 + 1500 * BLZ_NS_PER_US); /* never early */
    }
    return NULL;
}

BLZ_TEST(rt_sleep_real_clock_never_early)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 2;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    CHECK_OK(blz_runtime_block_on(rt, real_clock_body, NULL, NULL));
    blz_runtime_free(rt);
}

/* ---- a sleep that fired but was never polled outlives its runtime ------------ */

static blz_sleep_future g_orphan;

/* Registers g_orphan (10 ms) by hand, then sleeps past it: it fires, unobserved. */
static void *
orphan_body(void *arg)
{
    (void) arg;
    blz_sleep_fut(&g_orphan, blz_ms(10));
    blz_context cx = {blz_waker_noop()};
    CHECK_EQ(blz_future_poll(&g_orphan.base, &cx), BLZ_PENDING);
    CHECK_EQ(blz_sleep(blz_ms(20)), 0);
    return NULL;
}

/* time.h: a sleep completes with 0, or -ECANCELED if the runtime was freed while it
 * waited; polling, resetting or dropping it afterwards must not reach into the freed
 * runtime (ASan: heap-use-after-free in blz__timer_cancel / blz__timer_reset). */
BLZ_TEST(rt_fired_sleep_outlives_its_runtime)
{
    for (int how = 0; how < 3; how++) {
        blz_runtime *rt = paused_runtime(1);
        CHECK_OK(blz_runtime_block_on(rt, orphan_body, NULL, NULL));
        blz_runtime_free(rt);
        CHECK_PTR_EQ(g_orphan.entry_.timers_, NULL); /* holds nothing of the runtime */
        blz_context cx = {blz_waker_noop()};
        switch (how) {
        case 0:
            CHECK_EQ(blz_future_poll(&g_orphan.base, &cx), BLZ_READY);
            CHECK_EQ(g_orphan.base.result, 0); /* it had fired */
            break;
        case 1:
            blz_sleep_reset(&g_orphan, 0); /* a deadline long past: ready at once */
            CHECK_EQ(blz_future_poll(&g_orphan.base, &cx), BLZ_READY);
            CHECK_EQ(g_orphan.base.result, 0);
            break;
        default:
            break;
        }
        blz_future_drop(&g_orphan.base);
    }
}

/* ---- a manual clock: only blz_runtime_advance moves it ----------------------------- */

typedef struct manual_sleeper {
    atomic_bool asleep;
    atomic_bool done;
    blz_instant t0, t1;
} manual_sleeper;

static void *
sleep_one_second(void *arg)
{
    manual_sleeper *s = arg;
    s->t0 = blz_clock_now();
    atomic_store(&s->asleep, true); /* the sleep registers before this fiber yields */
    CHECK_EQ(blz_sleep(BLZ_NS_PER_S), 0);
    s->t1 = blz_clock_now();
    atomic_store(&s->done, true);
    return NULL;
}

static void *
read_clock(void *arg)
{
    *(blz_instant *) arg = blz_clock_now();
    return NULL;
}

/* The runtime's virtual clock, read by a task of it. */
static blz_instant
clock_of(blz_runtime *rt)
{
    blz_instant now = 0;
    CHECK_OK(blz_runtime_block_on(rt, read_clock, &now, NULL));
    return now;
}

/* Every worker parked: a paused clock would have jumped to the next timer. */
static bool
all_workers_parked(blz_runtime *rt)
{
    blz_metrics m;
    blz_runtime_metrics(rt, &m);
    uint64_t parks = 0;
    for (unsigned i = 0; i < m.workers; i++) {
        parks += m.worker[i].parks;
    }
    blz_duration busy_before = 0, busy_after = 0;
    for (unsigned i = 0; i < m.workers; i++) {
        busy_before += m.worker[i].busy_ns;
    }
    usleep(2000);
    blz_runtime_metrics(rt, &m);
    uint64_t parks_after = 0;
    for (unsigned i = 0; i < m.workers; i++) {
        parks_after += m.worker[i].parks;
        busy_after += m.worker[i].busy_ns;
    }
    /* Nobody's busy time grew and nobody parked again: all asleep throughout. */
    return parks > 0 && parks_after == parks && busy_after == busy_before;
}

BLZ_TEST(rt_manual_clock_moves_only_when_advanced)
{
    for (unsigned w = 1; w <= MAX_PAUSED_WORKERS; w++) {
        blz_runtime_config cfg;
        blz_runtime_config_default(&cfg);
        cfg.workers = w;
        cfg.manual_clock = true;
        blz_runtime *rt = NULL;
        CHECK_OK(blz_runtime_new(&cfg, &rt));
        static manual_sleeper s;
        memset(&s, 0, sizeof s);
        blz_join *j;
        CHECK_OK(blz_runtime_spawn(rt, sleep_one_second, &s, &j));
        WAIT_UNTIL(atomic_load(&s.asleep), usleep(1000));
        /* Idle with a timer pending: an auto-advancing clock jumps to it here. */
        WAIT_UNTIL(all_workers_parked(rt), (void) 0);
        CHECK(!atomic_load(&s.done));
        CHECK_EQ(clock_of(rt), s.t0);
        CHECK_OK(blz_runtime_advance(rt, BLZ_NS_PER_S - 1));
        WAIT_UNTIL(all_workers_parked(rt), (void) 0);
        CHECK(!atomic_load(&s.done)); /* one nanosecond short */
        CHECK_EQ(clock_of(rt), s.t0 + BLZ_NS_PER_S - 1);
        CHECK_OK(blz_runtime_advance(rt, 1));
        CHECK_OK(blz_join_wait(j, NULL));
        CHECK(atomic_load(&s.done));
        CHECK_EQ(s.t1, s.t0 + BLZ_NS_PER_S); /* woke at its deadline, not later */
        blz_runtime_free(rt);
    }
}

/* ---- blz_runtime_advance from outside while the clock also jumps by itself ---- */

/*
 * The gate: the waker a sleep is polled with, which holds up the wake that
 * blz_runtime_advance's fire delivers (on the calling thread, after the fire
 * released the timers' lock) until the runtime either jumped the clock or had
 * every worker parked, then passes it on to the task.
 */
typedef struct gate {
    blz_runtime *rt;
    blz_waker task;      /* the task's waker, to pass the wake on to */
    atomic_bool busy_go; /* lets the busy fiber finish */
    atomic_bool busy_running;
    blz_instant deadline; /* of the gated sleep */
    blz_instant at_wake;  /* the runtime's clock once the wake was held up */
    blz_sleep_future s;   /* gated */
    blz_sleep_future far; /* the next timer after it, where a wrong jump lands */
    int polls;
} gate;

static gate g_gate;

static void
gate_wake_by_ref(void *data)
{
    gate *g = data;
    /* Let the busy fiber finish: every worker may now go idle while the gated task
     * is woken but not yet queued. */
    atomic_store(&g->busy_go, true);
    blz__timers *t = blz__rt_timers(g->rt);
    WAIT_UNTIL(blz__timers_now(t) != g->deadline || all_workers_parked(g->rt), (void) 0);
    g->at_wake = blz__timers_now(t);
    blz_waker_wake_by_ref(&g->task);
}

static void
gate_nop(void *data)
{
    (void) data;
}

static void *
gate_clone(void *data)
{
    return data;
}

static const blz_waker_vtable gate_vtable = {gate_wake_by_ref, gate_wake_by_ref, gate_clone,
                                             gate_nop};

static void *
busy_until_go(void *arg)
{
    gate *g = arg;
    atomic_store(&g->busy_running, true);
    while (!atomic_load(&g->busy_go)) {
        /* keeps its worker busy: the clock may not jump */
    }
    return NULL;
}

/* A stackless task: registers the far sleep and the gated one, starts the busy
 * fiber (which its worker runs next, without going idle), and waits for the gate. */
static blz_poll
gated_sleep_poll(blz_future *self, blz_context *cx)
{
    gate *g = &g_gate;
    blz_waker_set(&g->task, cx->waker);
    blz_waker w = {&gate_vtable, g};
    blz_context gcx = {&w};
    if (g->polls++ == 0) {
        blz_context ncx = {blz_waker_noop()};
        blz_sleep_fut(&g->far, blz_secs(100000));
        CHECK_EQ(blz_future_poll(&g->far.base, &ncx), BLZ_PENDING);
        blz_sleep_until_fut(&g->s, g->deadline);
        CHECK_EQ(blz_future_poll(&g->s.base, &gcx), BLZ_PENDING);
        blz_join *busy;
        CHECK_OK(blz_spawn(busy_until_go, g, &busy));
        blz_join_detach(busy);
        return BLZ_PENDING;
    }
    if (blz_future_poll(&g->s.base, &gcx) == BLZ_PENDING) {
        return BLZ_PENDING;
    }
    blz_future_drop(&g->far.base);
    self->result = 0;
    return BLZ_READY;
}

static void
gated_sleep_drop(blz_future *self)
{
    (void) self;
    blz_future_drop(&g_gate.s.base);
    blz_future_drop(&g_gate.far.base);
}

static const blz_future_vtable gated_sleep_vtable = {gated_sleep_poll, gated_sleep_drop};

/*
 * blz_runtime_advance fires what became due on the calling thread and wakes it
 * after releasing the timers' lock. In between, the woken task is in no queue: a
 * driver that then finds every worker idle and nothing queued must not jump the
 * clock to the next timer (here 100000 s away) before that task has run.
 */
BLZ_TEST(rt_advance_from_outside_never_lets_the_clock_skip_a_woken_task)
{
    for (unsigned w = 1; w <= MAX_PAUSED_WORKERS; w++) {
        blz_runtime *rt = paused_runtime(w);
        gate *g = &g_gate;
        memset(g, 0, sizeof *g);
        g->rt = rt;
        blz__timers *t = blz__rt_timers(rt);
        blz_instant t0 = blz__timers_now(t);
        g->deadline = t0 + MS;
        blz_future f;
        blz_future_init(&f, &gated_sleep_vtable);
        blz_join *sleeper;
        CHECK_OK(blz_runtime_spawn_future(rt, &f, sizeof f, &sleeper));
        WAIT_UNTIL(atomic_load(&g->busy_running), usleep(100));
        CHECK_EQ(blz__timers_count(t), 2);
        CHECK_EQ(blz__timers_now(t), t0);      /* busy: no jump */
        CHECK_OK(blz_runtime_advance(rt, MS)); /* fires the gated sleep; the gate holds it */
        CHECK_OK(blz_join_wait(sleeper, NULL));
        blz_waker_drop(&g->task);
        blz_runtime_free(rt);
        CHECK_EQ(g->at_wake, g->deadline);
    }
}

/* ---- a manual clock: what is due fires without an advance ------------------------ */

/*
 * A sleep reset to an instant the clock has passed is due at once, and so fires
 * at the next fire, without an advance. With a ring per worker, the reset's
 * blz__rt_wake_driver reaches only a worker that watches the timers at that
 * moment: here none does (one worker runs the resetting task, the other a task
 * that spins until the reset is done), and the worker that takes the watch when
 * both go idle must fire what is due rather than sleep until woken, which on a
 * manual clock only the next blz_runtime_advance would do.
 */
typedef struct due_case {
    atomic_bool spinning;
    atomic_bool reset_done;
    atomic_bool slept;
    blz_sleep_future s;
    int polls;
} due_case;

static due_case g_due;

static void *
due_spin(void *arg)
{
    due_case *c = arg;
    atomic_store(&c->spinning, true);
    while (!atomic_load(&c->reset_done)) {
        /* one long poll: this worker neither parks nor watches the timers */
    }
    return NULL;
}

static blz_poll
due_poll(blz_future *self, blz_context *cx)
{
    due_case *c = &g_due;
    if (c->polls++ == 0) {
        blz_sleep_fut(&c->s, blz_secs(1));
        CHECK_EQ(blz_future_poll(&c->s.base, cx), BLZ_PENDING);
        blz_sleep_reset(&c->s, blz_clock_now()); /* due now: no advance needed */
        atomic_store(&c->reset_done, true);
        return BLZ_PENDING;
    }
    if (blz_future_poll(&c->s.base, cx) == BLZ_PENDING) {
        return BLZ_PENDING;
    }
    atomic_store(&c->slept, true);
    self->result = c->s.base.result;
    return BLZ_READY;
}

static void
due_drop(blz_future *self)
{
    (void) self;
    blz_future_drop(&g_due.s.base);
}

static const blz_future_vtable due_vtable = {due_poll, due_drop};

BLZ_TEST(rt_manual_clock_sleep_reset_to_the_past_fires_without_an_advance)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 2;
    cfg.manual_clock = true;
    cfg.ring_per_worker = true;
    cfg.backend = "io_uring";
    blz_runtime *rt = NULL;
    if (blz_runtime_new(&cfg, &rt) < 0 || blz__io_driver_rings(blz__rt_io(rt)) == 1) {
        if (rt) {
            blz_runtime_free(rt);
        }
        SKIP("no ring per worker (io_uring unavailable)");
    }
    for (int round = 0; round < 10; round++) {
        due_case *c = &g_due;
        memset(c, 0, sizeof *c);
        blz_join *spin, *sleeper;
        CHECK_OK(blz_runtime_spawn(rt, due_spin, c, &spin));
        WAIT_UNTIL(atomic_load(&c->spinning), usleep(100));
        blz_future f;
        blz_future_init(&f, &due_vtable);
        CHECK_OK(blz_runtime_spawn_future(rt, &f, sizeof f, &sleeper));
        CHECK_OK(blz_join_wait(spin, NULL));
        /* No advance: the reset sleep is due by the clock as it stands. */
        WAIT_UNTIL(atomic_load(&c->slept), usleep(1000));
        CHECK_OK(blz_join_wait(sleeper, NULL));
    }
    blz_runtime_free(rt);
}

/* ---- blz_runtime_advance from another thread while tasks sleep ------------------ */

#define ADV_TASKS  8
#define ADV_SLEEPS 500

static atomic_int adv_done;

/* Sleeps of 0 to 3 ms, each checked against the clock it woke to. */
static void *
adv_sleeper(void *arg)
{
    unsigned seed = (unsigned) (uintptr_t) arg;
    for (int i = 0; i < ADV_SLEEPS; i++) {
        seed = seed * 1103515245u + 12345u;
        blz_instant dl = blz_clock_now() + (seed >> 8) % (3 * MS);
        CHECK_EQ(blz_sleep_until(dl), 0);
        CHECK_GE(blz_clock_now(), dl); /* never early */
    }
    atomic_fetch_add(&adv_done, 1);
    return NULL;
}

/*
 * A manual clock moved only by this thread, in steps of up to a millisecond,
 * while fibers on both workers register and wake from sleeps: each wakes no
 * earlier than its deadline by the clock it wakes to, and all of them end. With
 * one ring for all and with a ring per worker.
 */
BLZ_TEST(rt_manual_clock_advanced_from_another_thread_while_tasks_sleep)
{
    for (int rpw = 0; rpw < 2; rpw++) {
        blz_runtime_config cfg;
        blz_runtime_config_default(&cfg);
        cfg.workers = 2;
        cfg.manual_clock = true;
        cfg.ring_per_worker = rpw;
        blz_runtime *rt = NULL;
        CHECK_OK(blz_runtime_new(&cfg, &rt));
        atomic_store(&adv_done, 0);
        blz_join *j[ADV_TASKS];
        for (int i = 0; i < ADV_TASKS; i++) {
            CHECK_OK(blz_runtime_spawn(rt, adv_sleeper, (void *) (uintptr_t) (i + 1), &j[i]));
        }
        unsigned seed = 99;
        while (atomic_load(&adv_done) < ADV_TASKS) {
            seed = seed * 1103515245u + 12345u;
            CHECK_OK(blz_runtime_advance(rt, 1 + (seed >> 8) % MS));
            sched_yield();
        }
        for (int i = 0; i < ADV_TASKS; i++) {
            CHECK_OK(blz_join_wait(j[i], NULL));
        }
        blz_runtime_free(rt);
    }
}

/* ---- a blocking job that waits on the paused clock ------------------------------- */

/*
 * A blocking job counts as work: the paused clock does not jump while one runs.
 * But a job parked in blz_await waits for the runtime like a task does: for a
 * timer of its own (a sleep on the runtime's clock) or for a task that sleeps.
 * Counted as busy, it held the clock still, and the clock held it: neither moved
 * again. Once woken it must see the time its wait ended at, not a later jump
 * (the far sleep below is where a wrong jump lands).
 */
typedef struct bwait_case {
    blz_join *sleeper; /* a task that sleeps 1 s */
    atomic_bool done;
} bwait_case;

static void *
bwait_sleep_1s(void *arg)
{
    (void) arg;
    CHECK_EQ(blz_sleep(blz_secs(1)), 0);
    return (void *) 2;
}

static void *
bwait_job(void *arg)
{
    bwait_case *c = arg;
    blz_instant t0 = blz_clock_now();
    CHECK_EQ(blz_sleep(blz_secs(1)), 0); /* a timer of its own */
    blz_instant t1 = blz_clock_now();
    CHECK_GE(t1, t0 + blz_secs(1));
    CHECK_LT(t1, t0 + blz_secs(2)); /* not jumped on towards the far sleep */
    void *res = NULL;
    CHECK_OK(blz_join_wait(c->sleeper, &res)); /* a task's timer */
    CHECK_PTR_EQ(res, (void *) 2);
    CHECK_LT(blz_clock_now(), t0 + blz_secs(3));
    return (void *) 1;
}

static void *
bwait_far(void *arg)
{
    (void) arg;
    (void) blz_sleep(blz_secs(100000)); /* aborted at the end */
    return NULL;
}

static void *
bwait_body(void *arg)
{
    bwait_case *c = arg;
    blz_join *far, *job;
    CHECK_OK(blz_spawn(bwait_far, NULL, &far));
    CHECK_OK(blz_spawn(bwait_sleep_1s, NULL, &c->sleeper));
    CHECK_OK(blz_spawn_blocking(bwait_job, c, &job));
    void *res = NULL;
    CHECK_OK(blz_join_wait(job, &res));
    CHECK_PTR_EQ(res, (void *) 1);
    blz_join_abort(far);
    (void) blz_join_wait(far, NULL);
    atomic_store(&c->done, true);
    return NULL;
}

BLZ_TEST(rt_blocking_job_waits_on_the_paused_clock)
{
    for (unsigned w = 1; w <= MAX_PAUSED_WORKERS; w++) {
        for (int round = 0; round < 20; round++) {
            blz_runtime *rt = paused_runtime(w);
            static bwait_case c;
            memset(&c, 0, sizeof c);
            blz_join *j;
            CHECK_OK(blz_runtime_spawn(rt, bwait_body, &c, &j));
            WAIT_UNTIL(atomic_load(&c.done), usleep(1000));
            CHECK_OK(blz_join_wait(j, NULL));
            blz_runtime_free(rt);
        }
    }
}
