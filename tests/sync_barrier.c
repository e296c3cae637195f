/*
 * Barrier: generations, exactly one leader each, try_wait, a dropped waiter
 * withdrawing its arrival, and threads running many generations.
 */
#include "sync_util.h"

BLZ_TEST(barrier_errors)
{
    blz_barrier b;
    CHECK_EQ(blz_barrier_init(NULL, 1), -EINVAL);
    CHECK_EQ(blz_barrier_init(&b, 0), -EINVAL);
    CHECK_EQ(blz_barrier_wait(NULL), -EINVAL);
    CHECK_EQ(blz_barrier_try_wait(NULL), -EINVAL);
    blz_barrier zero = {0};
    CHECK_EQ(blz_barrier_wait(&zero), -EINVAL);
    CHECK_EQ(blz_barrier_try_wait(&zero), -EINVAL);
    blz_barrier_wait_fut(&b, NULL);
}

BLZ_TEST(barrier_single_party_always_leads)
{
    blz_barrier b = BLZ_BARRIER_INIT(1);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(blz_barrier_wait(&b), BLZ_BARRIER_LEADER);
        CHECK_EQ(blz_barrier_try_wait(&b), BLZ_BARRIER_LEADER);
    }
}

BLZ_TEST(barrier_generations_and_leader)
{
    blz_barrier b;
    CHECK_OK(blz_barrier_init(&b, 3));
    for (int gen = 0; gen < 3; gen++) {
        blz_barrier_wait_future f[2];
        test_waker tw[2];
        for (int i = 0; i < 2; i++) {
            test_waker_init(&tw[i]);
            blz_barrier_wait_fut(&b, &f[i]);
            CHECK_EQ(poll_with(&f[i].base, &tw[i]), BLZ_PENDING);
        }
        CHECK_EQ(test_wakes(&tw[0]), 0);
        if (gen == 1) {
            CHECK_EQ(blz_barrier_try_wait(&b), BLZ_BARRIER_LEADER);
        } else {
            CHECK_EQ(blz_barrier_wait(&b), BLZ_BARRIER_LEADER);
        }
        for (int i = 0; i < 2; i++) {
            CHECK_EQ(test_wakes(&tw[i]), 1);
            CHECK_EQ(poll_with(&f[i].base, &tw[i]), BLZ_READY);
            CHECK_EQ(f[i].base.result, 0);
            CHECK_NO_WAKER_REFS(&tw[i]);
        }
    }
}

BLZ_TEST(barrier_try_wait_does_not_arrive)
{
    blz_barrier b = BLZ_BARRIER_INIT(2);
    CHECK_EQ(blz_barrier_try_wait(&b), -EAGAIN);
    CHECK_EQ(blz_barrier_try_wait(&b), -EAGAIN);
    blz_barrier_wait_future f;
    test_waker tw;
    test_waker_init(&tw);
    blz_barrier_wait_fut(&b, &f);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_PENDING);
    CHECK_EQ(blz_barrier_try_wait(&b), BLZ_BARRIER_LEADER);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_READY);
    CHECK_EQ(f.base.result, 0);
}

BLZ_TEST(barrier_dropped_waiter_does_not_count)
{
    blz_barrier b = BLZ_BARRIER_INIT(2);
    blz_barrier_wait_future a, c;
    test_waker ta, tc;
    test_waker_init(&ta);
    test_waker_init(&tc);
    blz_barrier_wait_fut(&b, &a);
    CHECK_EQ(poll_with(&a.base, &ta), BLZ_PENDING);
    blz_future_drop(&a.base); /* withdraws */
    CHECK_NO_WAKER_REFS(&ta);
    blz_barrier_wait_fut(&b, &c);
    CHECK_EQ(poll_with(&c.base, &tc), BLZ_PENDING); /* 1 of 2, not 2 of 2 */
    CHECK_EQ(blz_barrier_try_wait(&b), BLZ_BARRIER_LEADER);
    CHECK_EQ(poll_with(&c.base, &tc), BLZ_READY);
    /* Dropping a waiter whose generation completed changes nothing. */
    blz_barrier_wait_fut(&b, &a);
    CHECK_EQ(poll_with(&a.base, &ta), BLZ_PENDING);
    CHECK_EQ(blz_barrier_try_wait(&b), BLZ_BARRIER_LEADER);
    blz_future_drop(&a.base);
    CHECK_EQ(blz_barrier_try_wait(&b), -EAGAIN);
    CHECK_NO_WAKER_REFS(&ta);
    CHECK_NO_WAKER_REFS(&tc);
}

#define PARTIES 4
#define GENS    SYNC_SCALE(2000, 300)
static blz_barrier thread_barrier = BLZ_BARRIER_INIT(PARTIES);
static atomic_int leaders[GENS];
static atomic_int phase_count[GENS];

static void *
thread_body(void *arg)
{
    (void) arg;
    for (int g = 0; g < GENS; g++) {
        atomic_fetch_add(&phase_count[g], 1);
        int rc = blz_barrier_wait(&thread_barrier);
        CHECK_GE(rc, 0);
        /* Everyone of this generation arrived before anyone left. */
        CHECK_EQ(atomic_load(&phase_count[g]), PARTIES);
        if (rc == BLZ_BARRIER_LEADER) {
            atomic_fetch_add(&leaders[g], 1);
        }
    }
    return NULL;
}

BLZ_TEST(barrier_threads_generations)
{
    run_threads(PARTIES, thread_body, NULL);
    for (int g = 0; g < GENS; g++) {
        CHECK_EQ(atomic_load(&leaders[g]), 1);
    }
}
