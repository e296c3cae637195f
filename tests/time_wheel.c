/*
 * The timer wheel on its own (ticks, no clock) and blz__timers on a virtual
 * clock driven by hand: placement across levels, cascading, the pending list,
 * next-deadline queries, cancellation, and large randomised runs checking that
 * every entry fires exactly once, in deadline order, never early and never
 * later than the tick after its deadline; and threads registering, cancelling and
 * firing at once, counting that each fired entry is woken exactly once.
 */
#include "blitzio/time.h"
#include "harness.h"
#include "poll_util.h"
#include "time/timers.h"
#include "time/wheel.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A small deterministic generator (xorshift64*), so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t
rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

/* Uniform in [0, n). */
static uint64_t
rnd_below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

/* Spread over all levels: pick a level-sized magnitude first, then a value below it. */
static uint64_t
rnd_spread(unsigned max_bits)
{
    unsigned bits = 1 + (unsigned) rnd_below(max_bits);
    return 1 + rnd_below((uint64_t) 1 << bits);
}

static void
entry_at_tick(blz_timer_entry *e, uint64_t tick)
{
    memset(e, 0, sizeof *e);
    e->tick_ = tick;
}

/* ---- the wheel itself -------------------------------------------------------- */

BLZ_TEST(wheel_levels_and_next_expiry)
{
    static blz__wheel w;
    blz__wheel_init(&w, 0);
    blz__wheel_expiry exp;
    CHECK(!blz__wheel_next_expiry(&w, &exp));

    /* tick -> expected level, expected lower bound (slot start). */
    static const struct {
        uint64_t tick;
        unsigned level;
        uint64_t start;
    } cases[] = {
        {1, 0, 1},
        {63, 0, 63},
        {64, 1, 64},
        {100, 1, 64},
        {4095, 1, 4032},
        {4096, 2, 4096},
        {300000, 3, 262144},
        {(uint64_t) 1 << 30, 5, (uint64_t) 1 << 30},
        {BLZ__WHEEL_SPAN - 1, 5, BLZ__WHEEL_SPAN - ((uint64_t) 1 << 30)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        blz_timer_entry e;
        blz__wheel_init(&w, 0);
        entry_at_tick(&e, cases[i].tick);
        CHECK(!blz__wheel_insert(&w, &e));
        CHECK_EQ(BLZ__TE_KIND(e.state_), BLZ__TE_WHEEL);
        CHECK_EQ(BLZ__TE_LEVEL(e.state_), cases[i].level);
        CHECK(blz__wheel_next_expiry(&w, &exp));
        CHECK_EQ(exp.level, cases[i].level);
        CHECK_EQ(exp.tick, cases[i].start);
        blz__wheel_remove(&w, &e);
        CHECK_EQ(w.count, 0);
        CHECK(!blz__wheel_next_expiry(&w, &exp));
    }
}

BLZ_TEST(wheel_cascades_to_exact_tick)
{
    static blz__wheel w;
    blz__wheel_init(&w, 0);
    blz_timer_entry e;
    entry_at_tick(&e, 300007);
    blz__wheel_insert(&w, &e);
    /* Advancing to each lower bound in turn lands exactly on the tick: levels 3, 2, 1, 0. */
    blz__wheel_expiry exp;
    uint64_t bounds[8];
    unsigned n = 0;
    while (!blz__wheel_has_pending(&w)) {
        CHECK(blz__wheel_next_expiry(&w, &exp));
        CHECK_LE(exp.tick, 300007);
        CHECK_LT(n, 8);
        bounds[n++] = exp.tick;
        blz__wheel_advance(&w, exp.tick);
    }
    CHECK_EQ(bounds[n - 1], 300007);
    for (unsigned i = 1; i < n; i++) {
        CHECK_GT(bounds[i], bounds[i - 1]);
    }
    CHECK_PTR_EQ(blz__wheel_pop_pending(&w), &e);
    CHECK_EQ(w.count, 0);
}

BLZ_TEST(wheel_past_ticks_go_pending_in_order)
{
    static blz__wheel w;
    blz__wheel_init(&w, 1000);
    blz_timer_entry a, b, c;
    entry_at_tick(&a, 1000);
    entry_at_tick(&b, 3);
    entry_at_tick(&c, 0);
    CHECK(blz__wheel_insert(&w, &a));
    CHECK(blz__wheel_insert(&w, &b));
    CHECK(blz__wheel_insert(&w, &c));
    CHECK_EQ(BLZ__TE_KIND(b.state_), BLZ__TE_PENDING);
    /* Remove the middle one, then the last one (the tail pointer must follow). */
    blz__wheel_remove(&w, &b);
    blz__wheel_remove(&w, &c);
    blz_timer_entry d;
    entry_at_tick(&d, 999);
    CHECK(blz__wheel_insert(&w, &d));
    CHECK_PTR_EQ(blz__wheel_pop_pending(&w), &a);
    CHECK_PTR_EQ(blz__wheel_pop_pending(&w), &d);
    CHECK_PTR_EQ(blz__wheel_pop_pending(&w), NULL);
    CHECK_EQ(w.count, 0);
}

BLZ_TEST(wheel_beyond_span_is_parked_and_replaced)
{
    static blz__wheel w;
    blz__wheel_init(&w, 5);
    blz_timer_entry e;
    uint64_t far = 3 * BLZ__WHEEL_SPAN + 12345;
    entry_at_tick(&e, far);
    blz__wheel_insert(&w, &e);
    blz__wheel_expiry exp;
    unsigned steps = 0;
    while (!blz__wheel_has_pending(&w)) {
        CHECK(blz__wheel_next_expiry(&w, &exp));
        CHECK_LE(exp.tick, far);
        blz__wheel_advance(&w, exp.tick);
        CHECK_LT(++steps, 1000);
    }
    CHECK_EQ(w.elapsed, far);
    CHECK_PTR_EQ(blz__wheel_pop_pending(&w), &e);
}

BLZ_TEST(wheel_top_level_wraps)
{
    /* elapsed late in a span, tick early in the next span: the top level wraps. */
    static blz__wheel w;
    uint64_t elapsed = BLZ__WHEEL_SPAN - 10;
    blz__wheel_init(&w, elapsed);
    blz_timer_entry a, b;
    entry_at_tick(&a, BLZ__WHEEL_SPAN + 7);             /* 17 ticks ahead, next span */
    entry_at_tick(&b, elapsed + BLZ__WHEEL_SPAN - 100); /* far, same digit as elapsed */
    blz__wheel_insert(&w, &a);
    blz__wheel_insert(&w, &b);
    blz__wheel_expiry exp;
    CHECK(blz__wheel_next_expiry(&w, &exp));
    CHECK_GT(exp.tick, elapsed);
    CHECK_LE(exp.tick, BLZ__WHEEL_SPAN + 7);
    blz__wheel_advance(&w, BLZ__WHEEL_SPAN + 7);
    CHECK_PTR_EQ(blz__wheel_pop_pending(&w), &a);
    CHECK_PTR_EQ(blz__wheel_pop_pending(&w), NULL);
    while (!blz__wheel_has_pending(&w)) {
        CHECK(blz__wheel_next_expiry(&w, &exp));
        CHECK_LE(exp.tick, b.tick_);
        blz__wheel_advance(&w, exp.tick);
    }
    CHECK_EQ(w.elapsed, b.tick_);
    CHECK_PTR_EQ(blz__wheel_pop_pending(&w), &b);
}

BLZ_TEST(wheel_never_tick_is_linked_but_never_due)
{
    static blz__wheel w;
    blz__wheel_init(&w, 0);
    blz_timer_entry n1, n2, a;
    entry_at_tick(&n1, BLZ__WHEEL_NEVER);
    entry_at_tick(&n2, BLZ__WHEEL_NEVER);
    entry_at_tick(&a, 10);
    CHECK(!blz__wheel_insert(&w, &n1));
    CHECK(!blz__wheel_insert(&w, &n2));
    CHECK(!blz__wheel_insert(&w, &a));
    CHECK_EQ(BLZ__TE_KIND(n1.state_), BLZ__TE_NEVER);
    CHECK_EQ(w.count, 3);
    blz__wheel_expiry exp;
    CHECK(blz__wheel_next_expiry(&w, &exp));
    CHECK_EQ(exp.tick, 10);
    blz__wheel_advance(&w, UINT64_MAX - 1);
    CHECK_PTR_EQ(blz__wheel_pop_pending(&w), &a);
    CHECK_PTR_EQ(blz__wheel_pop_pending(&w), NULL);
    CHECK(!blz__wheel_next_expiry(&w, &exp));
    blz__wheel_remove(&w, &n2);
    blz__wheel_remove(&w, &n1);
    CHECK_EQ(w.count, 0);
    CHECK_PTR_EQ(w.never, NULL);
}

#define NRAND 100000

typedef struct wrec {
    blz_timer_entry e;
    uint64_t tick;
    bool cancelled;
    unsigned fired; /* times popped */
} wrec;

static int
by_tick(const void *a, const void *b)
{
    const wrec *const *x = a, *const *y = b;
    return ((*x)->tick > (*y)->tick) - ((*x)->tick < (*y)->tick);
}

/* Inserts NRAND entries `start` + up to 2^max_bits ticks ahead, cancels half, then
 * advances in random steps checking every pop. */
static void
wheel_random_run(uint64_t start, unsigned max_bits, bool check_levels)
{
    static blz__wheel w;
    wrec *recs = calloc(NRAND, sizeof *recs);
    wrec **sorted = calloc(NRAND, sizeof *sorted);
    CHECK(recs && sorted);
    blz__wheel_init(&w, start);
    size_t per_level[BLZ__WHEEL_LEVELS] = {0};
    for (size_t i = 0; i < NRAND; i++) {
        recs[i].tick = start + rnd_spread(max_bits);
        entry_at_tick(&recs[i].e, recs[i].tick);
        CHECK(!blz__wheel_insert(&w, &recs[i].e));
        per_level[BLZ__TE_LEVEL(recs[i].e.state_)]++;
        sorted[i] = &recs[i];
    }
    CHECK_EQ(w.count, NRAND);
    for (unsigned l = 0; check_levels && l * BLZ__WHEEL_SLOT_BITS < max_bits; l++) {
        CHECK_GT(per_level[l], 0); /* every level the spread reaches is exercised */
    }
    size_t live = NRAND;
    for (size_t i = 0; i < NRAND; i++) {
        if (rnd() & 1) {
            blz__wheel_remove(&w, &recs[i].e);
            recs[i].cancelled = true;
            live--;
        }
    }
    CHECK_EQ(w.count, live);
    qsort(sorted, NRAND, sizeof *sorted, by_tick);

    size_t cursor = 0; /* first entry of `sorted` that may still be unfired */
    uint64_t now = start, prev_now = start;
    size_t fired = 0;
    while (fired < live) {
        while (cursor < NRAND && (sorted[cursor]->cancelled || sorted[cursor]->fired)) {
            cursor++;
        }
        uint64_t min_tick = sorted[cursor]->tick;
        blz__wheel_expiry exp;
        CHECK(blz__wheel_next_expiry(&w, &exp));
        CHECK_LE(exp.tick, min_tick); /* a lower bound, never late */
        CHECK_GT(exp.tick, w.elapsed);
        if (exp.level == 0) {
            CHECK_EQ(exp.tick, min_tick); /* exact in level 0 */
        }
        /* Random steps: tiny, or up to the next expiry, or far beyond it. */
        switch (rnd() % 3) {
        case 0:
            now += 1 + rnd_below(3);
            break;
        case 1:
            now = exp.tick > now ? exp.tick : now + 1;
            break;
        default:
            now += rnd_spread(max_bits - 4);
            break;
        }
        blz__wheel_advance(&w, now);
        CHECK_EQ(w.elapsed, now);
        blz_timer_entry *e;
        uint64_t last = 0;
        while ((e = blz__wheel_pop_pending(&w)) != NULL) {
            wrec *r = (wrec *) e;
            CHECK(!r->cancelled);
            CHECK_EQ(r->fired, 0);
            r->fired++;
            fired++;
            CHECK_LE(r->tick, now);      /* never early */
            CHECK_GT(r->tick, prev_now); /* and not left behind by an earlier advance */
            CHECK_GE(r->tick, last);     /* in tick order within one advance */
            last = r->tick;
        }
        prev_now = now;
    }
    CHECK_EQ(w.count, 0);
    blz__wheel_expiry exp;
    CHECK(!blz__wheel_next_expiry(&w, &exp));
    for (size_t i = 0; i < NRAND; i++) {
        CHECK_EQ(recs[i].fired, recs[i].cancelled ? 0u : 1u);
    }
    free(sorted);
    free(recs);
}

BLZ_TEST(wheel_random_fire_exactly_once_in_order)
{
    /* Up to ~18 h of 1 ms ticks: levels 0-4. */
    wheel_random_run(rnd_below(1u << 20), 26, true);
}

BLZ_TEST(wheel_random_across_span_boundary_and_beyond)
{
    /* Starting just before a span boundary, up to 2^38 ticks: wraps and parked entries. */
    wheel_random_run(BLZ__WHEEL_SPAN - rnd_below(1u << 20), 38, false);
}

/* ---- blz__timers on a virtual clock ------------------------------------------ */

typedef struct trec {
    blz_timer_entry e;
    blz_instant deadline;
    bool cancelled;
    unsigned fired;
    unsigned call; /* fire call that woke it */
    blz_instant at;
} trec;

static blz__timers *g_timers;
static unsigned g_call;

static void
rec_wake(void *data)
{
    trec *r = data;
    r->fired++;
    r->call = g_call;
    r->at = blz__timers_now(g_timers);
}

static void *
rec_clone(void *data)
{
    return data;
}

static void
rec_drop(void *data)
{
    (void) data;
}

static const blz_waker_vtable rec_vtable = {rec_wake, rec_wake, rec_clone, rec_drop};

static int
by_deadline(const void *a, const void *b)
{
    const trec *const *x = a, *const *y = b;
    return ((*x)->deadline > (*y)->deadline) - ((*x)->deadline < (*y)->deadline);
}

/* The instant the wheel may fire `deadline` at: rounded up to a whole tick from origin. */
static blz_instant
due_at(const blz__timers *t, blz_instant deadline)
{
    uint64_t d = deadline - t->origin;
    uint64_t ticks = d / BLZ_NS_PER_MS + (d % BLZ_NS_PER_MS != 0);
    return t->origin + ticks * BLZ_NS_PER_MS;
}

BLZ_TEST(timers_random_virtual_clock)
{
    static blz__timers t;
    CHECK_OK(blz__timers_init(&t, true));
    g_timers = &t;
    blz__timers_set_thread_override(&t);
    trec *recs = calloc(NRAND, sizeof *recs);
    trec **sorted = calloc(NRAND, sizeof *sorted);
    CHECK(recs && sorted);
    blz_instant t0 = blz__timers_now(&t);
    for (size_t i = 0; i < NRAND; i++) {
        /* Nanosecond deadlines from 1 us to ~9 h, so most are off the tick grid. */
        recs[i].deadline = t0 + 1000 + rnd_spread(45);
        blz__timer_entry_init(&recs[i].e, t0);
        blz_waker w = {&rec_vtable, &recs[i]};
        CHECK_EQ(blz__timer_poll(&recs[i].e, recs[i].deadline, &w), 0);
        sorted[i] = &recs[i];
    }
    CHECK_EQ(blz__timers_count(&t), NRAND);
    size_t live = NRAND;
    for (size_t i = 0; i < NRAND; i++) {
        if (rnd() & 1) {
            blz__timer_cancel(&recs[i].e);
            recs[i].cancelled = true;
            live--;
        }
    }
    CHECK_EQ(blz__timers_count(&t), live);
    qsort(sorted, NRAND, sizeof *sorted, by_deadline);

    size_t cursor = 0, fired = 0;
    g_call = 0;
    while (fired < live) {
        while (cursor < NRAND && (sorted[cursor]->cancelled || sorted[cursor]->fired)) {
            cursor++;
        }
        blz_instant min_due = due_at(&t, sorted[cursor]->deadline);
        blz_instant now = blz__timers_now(&t);
        CHECK_LE(blz__timers_next(&t), min_due); /* never later than the truth */
        if (rnd() % 2) {
            /* Jump to the next deadline: exactly its tick. */
            int moved = blz__timers_advance_to_next(&t);
            CHECK_OK(moved);
            CHECK_EQ(blz__timers_now(&t), min_due > now ? min_due : now);
            CHECK_EQ(moved, min_due > now);
            CHECK_LE(blz__timers_next(&t), blz__timers_now(&t));
        } else {
            /* A random step: sub-millisecond, a few ticks, or a long way. */
            blz_duration step;
            switch (rnd() % 3) {
            case 0:
                step = (blz_duration) rnd_below(BLZ_NS_PER_MS);
                break;
            case 1:
                step = (blz_duration) rnd_below(5 * BLZ_NS_PER_MS);
                break;
            default:
                step = (blz_duration) rnd_spread(40);
                break;
            }
            CHECK_OK(blz__timers_advance(&t, step));
        }
        g_call++;
        now = blz__timers_now(&t);
        size_t n = blz__timers_fire(&t);
        fired += n;
        /* Everything due by now fired; the earliest survivor is not due yet. */
        while (cursor < NRAND && (sorted[cursor]->cancelled || sorted[cursor]->fired)) {
            cursor++;
        }
        if (cursor < NRAND) {
            CHECK_GT(due_at(&t, sorted[cursor]->deadline), now);
        }
    }
    CHECK_EQ(blz__timers_count(&t), 0);
    CHECK_EQ(blz__timers_fire(&t), 0);
    CHECK_EQ(blz__timers_next(&t), UINT64_MAX);

    /* Exactly once, never early, and in deadline order across fire calls. */
    unsigned last_call = 0;
    for (size_t i = 0; i < NRAND; i++) {
        trec *r = sorted[i];
        if (r->cancelled) {
            CHECK_EQ(r->fired, 0);
            continue;
        }
        CHECK_EQ(r->fired, 1);
        CHECK_GE(r->at, r->deadline);
        CHECK_GE(r->call, last_call);
        last_call = r->call;
        /* A fired entry is FIRED until its owner polls it: the poll completes it. */
        blz_waker w = {&rec_vtable, r};
        CHECK_EQ(blz__timer_poll(&r->e, r->deadline, &w), 1);
        CHECK_PTR_EQ(r->e.timers_, NULL);
    }
    CHECK_EQ(blz__load(&t.fired, RELAXED), live);
    blz__timers_set_thread_override(NULL);
    blz__timers_fini(&t);
    free(sorted);
    free(recs);
}

BLZ_TEST(timers_next_is_exact_then_stale_low_after_cancel)
{
    static blz__timers t;
    CHECK_OK(blz__timers_init(&t, true));
    g_timers = &t;
    blz__timers_set_thread_override(&t);
    blz_instant t0 = blz__timers_now(&t);
    CHECK_EQ(blz__timers_next(&t), UINT64_MAX);
    trec a = {0}, b = {0};
    blz_waker wa = {&rec_vtable, &a}, wb = {&rec_vtable, &b};
    blz__timer_entry_init(&a.e, t0);
    blz__timer_entry_init(&b.e, t0);
    /* 10.5 ms rounds up to tick 11; 20 ms is on the grid. */
    CHECK_EQ(blz__timer_poll(&a.e, t0 + 10500000, &wa), 0);
    CHECK_EQ(blz__timers_next(&t), t0 + 11 * BLZ_NS_PER_MS);
    CHECK_EQ(blz__timer_poll(&b.e, t0 + 20 * BLZ_NS_PER_MS, &wb), 0);
    CHECK_EQ(blz__timers_next(&t), t0 + 11 * BLZ_NS_PER_MS);
    /* Dropping the earliest leaves `next` early (a spurious wake-up, never a late one)... */
    blz__timer_cancel(&a.e);
    CHECK_EQ(blz__timers_next(&t), t0 + 11 * BLZ_NS_PER_MS);
    /* ...and the next fire or jump makes it exact again. */
    CHECK_OK(blz__timers_advance(&t, 11 * BLZ_NS_PER_MS));
    CHECK_EQ(blz__timers_fire(&t), 0);
    CHECK_EQ(blz__timers_next(&t), t0 + 20 * BLZ_NS_PER_MS);
    CHECK_EQ(blz__timers_advance_to_next(&t), 1);
    CHECK_EQ(blz__timers_now(&t), t0 + 20 * BLZ_NS_PER_MS);
    CHECK_EQ(b.fired, 0); /* advance does not fire */
    CHECK_EQ(blz__timers_fire(&t), 1);
    CHECK_EQ(b.fired, 1);
    CHECK_EQ(a.fired, 0);
    CHECK_EQ(blz__timers_next(&t), UINT64_MAX);
    CHECK_EQ(blz__timers_advance_to_next(&t), 0);
    blz__timers_set_thread_override(NULL);
    blz__timers_fini(&t);
}

BLZ_TEST(timers_far_deadline_jump_is_exact)
{
    static blz__timers t;
    CHECK_OK(blz__timers_init(&t, true));
    g_timers = &t;
    blz__timers_set_thread_override(&t);
    blz_instant t0 = blz__timers_now(&t);
    trec a = {0};
    blz_waker wa = {&rec_vtable, &a};
    blz__timer_entry_init(&a.e, t0);
    blz_instant dl = t0 + blz_secs(3 * 3600) + 123456789; /* level 4, off the grid */
    CHECK_EQ(blz__timer_poll(&a.e, dl, &wa), 0);
    CHECK_EQ(blz__timers_next(&t), due_at(&t, dl)); /* exact on insert */
    /* After a fire recomputes it from the wheel it is the slot start: a lower bound. */
    CHECK_OK(blz__timers_advance(&t, blz_ms(1)));
    blz__store(&t.next, t0, RELAXED); /* force the fire past its fast path */
    CHECK_EQ(blz__timers_fire(&t), 0);
    CHECK_LT(blz__timers_next(&t), dl);
    CHECK_EQ(blz__timers_advance_to_next(&t), 1);
    CHECK_EQ(blz__timers_now(&t), due_at(&t, dl));
    CHECK_EQ(blz__timers_fire(&t), 1);
    CHECK_EQ(a.fired, 1);
    CHECK_GE(a.at, dl);
    blz__timers_set_thread_override(NULL);
    blz__timers_fini(&t);
}

BLZ_TEST(timers_never_deadline_waits_forever)
{
    static blz__timers t;
    CHECK_OK(blz__timers_init(&t, true));
    g_timers = &t;
    blz__timers_set_thread_override(&t);
    blz_instant t0 = blz__timers_now(&t);
    trec never = {0}, soon = {0}, late = {0};
    blz_waker wn = {&rec_vtable, &never}, ws = {&rec_vtable, &soon}, wl = {&rec_vtable, &late};
    blz__timer_entry_init(&never.e, t0);
    blz__timer_entry_init(&soon.e, t0);
    blz__timer_entry_init(&late.e, t0);
    CHECK_EQ(blz__timer_poll(&never.e, UINT64_MAX, &wn), 0);
    CHECK_EQ(blz__timers_next(&t), UINT64_MAX); /* nothing can ever be due */
    CHECK_EQ(blz__timers_advance_to_next(&t), 0);
    CHECK_EQ(blz__timer_poll(&soon.e, t0 + 5 * BLZ_NS_PER_MS, &ws), 0);
    /* The last representable ticks still fire, at most one tick before UINT64_MAX. */
    blz_instant far = UINT64_MAX - 3 * BLZ_NS_PER_MS;
    CHECK_EQ(blz__timer_poll(&late.e, far, &wl), 0);
    CHECK_EQ(blz__timers_count(&t), 3);
    CHECK_EQ(blz__timers_advance_to_next(&t), 1);
    CHECK_EQ(blz__timers_now(&t), t0 + 5 * BLZ_NS_PER_MS);
    CHECK_EQ(blz__timers_fire(&t), 1);
    CHECK_EQ(soon.fired, 1);
    CHECK_EQ(blz__timers_advance_to_next(&t), 1);
    CHECK_GE(blz__timers_now(&t), far);
    CHECK_EQ(blz__timers_fire(&t), 1);
    CHECK_EQ(late.fired, 1);
    CHECK_EQ(blz__timers_advance_to_next(&t), 0);
    CHECK_EQ(blz__timers_fire(&t), 0);
    CHECK_EQ(never.fired, 0);
    CHECK_EQ(blz__timers_count(&t), 1);
    CHECK(blz__timer_cancel(&never.e));
    CHECK_EQ(blz__timers_count(&t), 0);
    blz__timers_set_thread_override(NULL);
    blz__timers_fini(&t);
}

BLZ_TEST(timers_real_clock_rejects_advance)
{
    static blz__timers t;
    CHECK_OK(blz__timers_init(&t, false));
    CHECK(!blz__timers_paused(&t));
    CHECK_EQ(blz__timers_advance(&t, blz_ms(1)), -EINVAL);
    CHECK_EQ(blz__timers_advance_to_next(&t), -EINVAL);
    blz_instant a = blz__timers_now(&t);
    blz_instant b = blz__timers_now(&t);
    CHECK_LE(a, b);
    CHECK_EQ(blz__timers_fire(&t), 0);
    blz__timers_fini(&t);
}

BLZ_TEST(timers_real_clock_past_deadline_fires_on_next_fire)
{
    /* A deadline that passes between filling and polling is linked (no clock read at
     * the poll) and fires at the next fire call. */
    static blz__timers t;
    CHECK_OK(blz__timers_init(&t, false));
    g_timers = &t;
    blz__timers_set_thread_override(&t);
    trec a = {0};
    blz_waker wa = {&rec_vtable, &a};
    blz_instant now = blz_now();
    blz__timer_entry_init(&a.e, now - 1000);
    CHECK_EQ(blz__timer_poll(&a.e, now, &wa), 0);
    CHECK_LE(blz__timers_next(&t), blz_now() + BLZ_NS_PER_MS);
    /* At most one tick later it is due: spin on the clock (no sleeping). */
    while (blz__timers_fire(&t) == 0) {
    }
    CHECK_EQ(a.fired, 1);
    CHECK_GE(a.at, now);
    CHECK_EQ(blz__timer_poll(&a.e, now, &wa), 1);
    blz__timers_set_thread_override(NULL);
    blz__timers_fini(&t);
}

static unsigned fini_wakes, fini_drops;

static void
fini_wake(void *data)
{
    (void) data;
    fini_wakes++;
}

static void
fini_drop(void *data)
{
    (void) data;
    fini_drops++;
}

static const blz_waker_vtable fini_vtable = {fini_wake, fini_wake, rec_clone, fini_drop};

BLZ_TEST(timers_fini_cancels_linked_entries)
{
    static blz__timers t;
    CHECK_OK(blz__timers_init(&t, true));
    blz__timers_set_thread_override(&t);
    blz_instant t0 = blz__timers_now(&t);
    blz_timer_entry e[3];
    blz_waker w = {&fini_vtable, NULL};
    for (int i = 0; i < 3; i++) {
        blz__timer_entry_init(&e[i], t0);
        CHECK_EQ(blz__timer_poll(&e[i], t0 + blz_ms(1 + i * 5000), &w), 0);
    }
    blz__timers_fini(&t);
    CHECK_EQ(fini_drops, 3); /* released, not woken */
    CHECK_EQ(fini_wakes, 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(blz__timer_poll(&e[i], t0 + blz_ms(1), &w), -ECANCELED);
        CHECK(!blz__timer_cancel(&e[i])); /* a drop afterwards is harmless */
    }
    blz__timers_set_thread_override(NULL);
}

/* ---- threads: register, cancel and fire racing ---------------------------------- */

#define RACE_THREADS 2
#define RACE_ITERS   10000

static blz__timers race_t;
static atomic_bool race_stop;

/* One per owner thread; the waker points here, never at the (short-lived) entry. */
typedef struct race_owner {
    _Atomic uint64_t wakes;
    uint64_t waited;       /* iterations that waited for the fire */
    uint64_t cancel_late;  /* cancels that found the entry already fired */
    uint64_t cancel_early; /* cancels that unlinked it first */
    unsigned seed;
} race_owner;

static race_owner owners[RACE_THREADS];

static void
race_wake(void *data)
{
    atomic_fetch_add(&((race_owner *) data)->wakes, 1);
}

static const blz_waker_vtable race_vtable = {race_wake, race_wake, rec_clone, rec_drop};

static unsigned
race_rand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

static void *
race_owner_main(void *arg)
{
    race_owner *o = arg;
    blz__timers_set_thread_override(&race_t);
    blz_waker w = {&race_vtable, o};
    for (int i = 0; i < RACE_ITERS; i++) {
        blz_timer_entry e; /* on the stack: reused at once, as a dropped future's is */
        blz_instant now = blz__timers_now(&race_t);
        blz__timer_entry_init(&e, now);
        blz_instant dl = now + 1 + race_rand(&o->seed) % (3 * BLZ_NS_PER_MS);
        int rc = blz__timer_poll(&e, dl, &w);
        CHECK_GE(rc, 0);
        if (rc == 1) {
            continue; /* the clock passed the deadline already */
        }
        if (race_rand(&o->seed) % 2) {
            if (blz__timer_cancel(&e)) {
                o->cancel_early++;
            } else {
                o->cancel_late++;
            }
        } else {
            while ((rc = blz__timer_poll(&e, dl, &w)) == 0) {
                sched_yield(); /* let the driver thread run on a small machine */
            }
            CHECK_EQ(rc, 1);
            CHECK_GE(blz__timers_now(&race_t), dl); /* never early */
            o->waited++;
        }
    }
    blz__timers_set_thread_override(NULL);
    return NULL;
}

static void *
race_driver_main(void *arg)
{
    (void) arg;
    while (!atomic_load(&race_stop)) {
        (void) blz__timers_advance(&race_t, 50 * BLZ_NS_PER_US);
        (void) blz__timers_fire(&race_t);
        if (blz__timers_count(&race_t) == 0) {
            (void) blz__timers_advance_to_next(&race_t);
        }
    }
    return NULL;
}

BLZ_TEST(timers_threads_register_cancel_fire_race)
{
    CHECK_OK(blz__timers_init(&race_t, true));
    pthread_t driver, th[RACE_THREADS];
    CHECK_EQ(pthread_create(&driver, NULL, race_driver_main, NULL), 0);
    for (int i = 0; i < RACE_THREADS; i++) {
        owners[i].seed = 1234u + (unsigned) i;
        CHECK_EQ(pthread_create(&th[i], NULL, race_owner_main, &owners[i]), 0);
    }
    for (int i = 0; i < RACE_THREADS; i++) {
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    }
    atomic_store(&race_stop, true);
    CHECK_EQ(pthread_join(driver, NULL), 0);
    CHECK_EQ(blz__timers_count(&race_t), 0);
    uint64_t late = 0;
    for (int i = 0; i < RACE_THREADS; i++) {
        /* Exactly one wake per entry that fired: every waited one, every late cancel. */
        CHECK_EQ(atomic_load(&owners[i].wakes), owners[i].waited + owners[i].cancel_late);
        CHECK_GT(owners[i].waited, 0);
        CHECK_GT(owners[i].cancel_early, 0);
        late += owners[i].cancel_late;
    }
    (void) late;
    blz__timers_fini(&race_t);
}

/* ---- threads: a fire's clock reading against a jump and a reset ------------------- */

#define STALE_WALL_MS 2000

static blz__timers stale_t;
static atomic_bool stale_stop;

static void *
stale_fire_main(void *arg)
{
    (void) arg;
    while (!atomic_load(&stale_stop)) {
        (void) blz__timers_fire(&stale_t);
    }
    return NULL;
}

static void *
stale_jump_main(void *arg)
{
    (void) arg;
    while (!atomic_load(&stale_stop)) {
        (void) blz__timers_advance_to_next(&stale_t);
    }
    return NULL;
}

static int64_t
stale_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A fire reads the clock before it takes the lock. A jump (advance_to_next) may
 * move the virtual clock and the wheel's time on meanwhile, and a reset may then
 * link an entry due by the new clock straight into pending: the fire, with its
 * older reading, found a pending entry not due yet (the "cannot happen" assertion
 * in blz__timers_fire; Debug builds abort). Every fire must see every pending
 * entry due.
 */
BLZ_TEST(timers_fire_reading_is_not_older_than_the_pending_list)
{
    CHECK_OK(blz__timers_init(&stale_t, true));
    blz__timers_set_thread_override(&stale_t);
    atomic_store(&stale_stop, false);
    pthread_t fire, jump;
    CHECK_EQ(pthread_create(&fire, NULL, stale_fire_main, NULL), 0);
    CHECK_EQ(pthread_create(&jump, NULL, stale_jump_main, NULL), 0);
    static race_owner owner; /* counts the wakes, from the fire thread */
    blz_waker w = {&race_vtable, &owner};
    int64_t end = stale_wall_ms() + STALE_WALL_MS;
    while (stale_wall_ms() < end) {
        blz_timer_entry far, e;
        blz_instant now = blz__timers_now(&stale_t);
        blz__timer_entry_init(&far, now);
        blz__timer_entry_init(&e, now);
        CHECK_GE(blz__timer_poll(&far, now + 50 * BLZ_NS_PER_MS, &w), 0); /* a jump target */
        CHECK_GE(blz__timer_poll(&e, now + 1000 * BLZ_NS_PER_S, &w), 0);
        for (int k = 0; k < 50; k++) {
            blz__timer_reset(&e, blz__timers_now(&stale_t)); /* due now: maybe pending */
        }
        (void) blz__timer_cancel(&e);
        (void) blz__timer_cancel(&far);
    }
    atomic_store(&stale_stop, true);
    CHECK_EQ(pthread_join(fire, NULL), 0);
    CHECK_EQ(pthread_join(jump, NULL), 0);
    blz__timers_set_thread_override(NULL);
    blz__timers_fini(&stale_t);
}

/* ---- threads: sleeps reset and dropped while another thread fires ----------------- */

#define RESET_THREADS 3
#define RESET_ITERS   20000

static blz__timers reset_t;
static atomic_bool reset_stop;

/* Each owner's waker counts its live references: none may be left or lost. */
typedef struct reset_owner {
    test_waker tw;
    uint64_t completed, dropped;
    unsigned seed;
} reset_owner;

static reset_owner reset_owners[RESET_THREADS];

static void *
reset_owner_main(void *arg)
{
    reset_owner *o = arg;
    blz__timers_set_thread_override(&reset_t);
    test_waker_init(&o->tw);
    blz_waker w = o->tw.waker;
    blz_context cx = {&w};
    for (int i = 0; i < RESET_ITERS; i++) {
        blz_sleep_future f; /* on the stack: reused at once, as a dropped future's is */
        blz_sleep_fut(&f, 1 + (blz_duration) (race_rand(&o->seed) % (2 * BLZ_NS_PER_MS)));
        if (blz_future_poll(&f.base, &cx) == BLZ_READY) {
            continue;
        }
        /* Earlier, later or into the past, once to three times, while the driver fires. */
        for (unsigned r = 1 + race_rand(&o->seed) % 3; r > 0; r--) {
            blz_instant now = blz__timers_now(&reset_t);
            blz_instant to = now + race_rand(&o->seed) % (3 * BLZ_NS_PER_MS);
            if (race_rand(&o->seed) % 4 == 0) {
                to = now - race_rand(&o->seed) % BLZ_NS_PER_MS; /* passed */
            }
            blz_sleep_reset(&f, to);
            CHECK_EQ(f.deadline, to);
        }
        if (race_rand(&o->seed) % 3 == 0) {
            blz_future_drop(&f.base); /* maybe racing its fire */
            o->dropped++;
            continue;
        }
        while (blz_future_poll(&f.base, &cx) == BLZ_PENDING) {
            sched_yield();
        }
        CHECK_EQ(f.base.result, 0);
        CHECK_GE(blz__timers_now(&reset_t), f.deadline); /* never early for the last reset */
        o->completed++;
    }
    blz__timers_set_thread_override(NULL);
    return NULL;
}

static void *
reset_driver_main(void *arg)
{
    (void) arg;
    while (!atomic_load(&reset_stop)) {
        (void) blz__timers_advance(&reset_t, 37 * BLZ_NS_PER_US);
        (void) blz__timers_fire(&reset_t);
    }
    return NULL;
}

BLZ_TEST(timers_threads_sleep_reset_and_drop_while_firing)
{
    CHECK_OK(blz__timers_init(&reset_t, true));
    pthread_t driver, th[RESET_THREADS];
    CHECK_EQ(pthread_create(&driver, NULL, reset_driver_main, NULL), 0);
    for (int i = 0; i < RESET_THREADS; i++) {
        reset_owners[i].seed = 77u + (unsigned) i;
        CHECK_EQ(pthread_create(&th[i], NULL, reset_owner_main, &reset_owners[i]), 0);
    }
    for (int i = 0; i < RESET_THREADS; i++) {
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    }
    atomic_store(&reset_stop, true);
    CHECK_EQ(pthread_join(driver, NULL), 0);
    CHECK_EQ(blz__timers_count(&reset_t), 0);
    for (int i = 0; i < RESET_THREADS; i++) {
        CHECK_NO_WAKER_REFS(&reset_owners[i].tw); /* every clone woken or dropped */
        CHECK_GT(reset_owners[i].completed, 0);
        CHECK_GT(reset_owners[i].dropped, 0);
    }
    blz__timers_fini(&reset_t);
}
