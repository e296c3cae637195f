/*
 * Notify: the stored permit (one, never more), FIFO notify_one, notify_all
 * covering futures filled before it, a dropped notified waiter passing the
 * notification on, and a ping-pong between threads (no lost wake-up).
 */
#include "sync_util.h"

BLZ_TEST(notify_permit_does_not_accumulate)
{
    blz_notify n = BLZ_NOTIFY_INIT;
    CHECK_EQ(blz_notify_try_wait(&n), -EAGAIN);
    blz_notify_one(&n);
    blz_notify_one(&n);
    CHECK_OK(blz_notify_try_wait(&n));
    CHECK_EQ(blz_notify_try_wait(&n), -EAGAIN);
    blz_notify_one(&n);
    CHECK_OK(blz_notify_wait(&n)); /* consumes the permit at once */
    blz_notify_all(&n);            /* stores nothing */
    CHECK_EQ(blz_notify_try_wait(&n), -EAGAIN);
}

BLZ_TEST(notify_null_arguments)
{
    CHECK_EQ(blz_notify_try_wait(NULL), -EINVAL);
    CHECK_EQ(blz_notify_wait(NULL), -EINVAL);
    blz_notify_one(NULL);
    blz_notify_all(NULL);
    blz_notify_init(NULL);
    blz_notify_wait_fut(NULL, NULL);
}

BLZ_TEST(notify_one_fifo)
{
    blz_notify n;
    blz_notify_init(&n);
    blz_notify_wait_future f[3];
    test_waker tw[3];
    for (int i = 0; i < 3; i++) {
        test_waker_init(&tw[i]);
        blz_notify_wait_fut(&n, &f[i]);
        CHECK_EQ(poll_with(&f[i].base, &tw[i]), BLZ_PENDING);
    }
    for (int i = 0; i < 3; i++) {
        blz_notify_one(&n);
        CHECK_EQ(test_wakes(&tw[i]), 1);
        for (int j = i + 1; j < 3; j++) {
            CHECK_EQ(test_wakes(&tw[j]), 0);
        }
        CHECK_EQ(poll_with(&f[i].base, &tw[i]), BLZ_READY);
        CHECK_EQ(f[i].base.result, 0);
        CHECK_NO_WAKER_REFS(&tw[i]);
    }
    CHECK_EQ(blz_notify_try_wait(&n), -EAGAIN); /* all consumed by waiters */
}

BLZ_TEST(notify_all_wakes_present_waiters_only)
{
    blz_notify n = BLZ_NOTIFY_INIT;
    blz_notify_wait_future a, b, early, late;
    test_waker ta, tb, te, tl;
    test_waker_init(&ta);
    test_waker_init(&tb);
    test_waker_init(&te);
    test_waker_init(&tl);
    blz_notify_wait_fut(&n, &a);
    blz_notify_wait_fut(&n, &b);
    CHECK_EQ(poll_with(&a.base, &ta), BLZ_PENDING);
    CHECK_EQ(poll_with(&b.base, &tb), BLZ_PENDING);
    blz_notify_wait_fut(&n, &early); /* filled, never polled: still counts */
    blz_notify_all(&n);
    blz_notify_wait_fut(&n, &late);
    CHECK_EQ(test_wakes(&ta), 1);
    CHECK_EQ(test_wakes(&tb), 1);
    CHECK_EQ(poll_with(&a.base, &ta), BLZ_READY);
    CHECK_EQ(poll_with(&b.base, &tb), BLZ_READY);
    CHECK_EQ(poll_with(&early.base, &te), BLZ_READY);
    CHECK_EQ(poll_with(&late.base, &tl), BLZ_PENDING);
    CHECK_EQ(blz_notify_try_wait(&n), -EAGAIN);
    blz_notify_one(&n);
    CHECK_EQ(poll_with(&late.base, &tl), BLZ_READY);
    CHECK_NO_WAKER_REFS(&ta);
    CHECK_NO_WAKER_REFS(&tb);
    CHECK_NO_WAKER_REFS(&te);
    CHECK_NO_WAKER_REFS(&tl);
}

BLZ_TEST(notify_dropped_waiter_passes_notify_one_on)
{
    blz_notify n = BLZ_NOTIFY_INIT;
    blz_notify_wait_future a, b;
    test_waker ta, tb;
    test_waker_init(&ta);
    test_waker_init(&tb);
    blz_notify_wait_fut(&n, &a);
    blz_notify_wait_fut(&n, &b);
    CHECK_EQ(poll_with(&a.base, &ta), BLZ_PENDING);
    CHECK_EQ(poll_with(&b.base, &tb), BLZ_PENDING);
    blz_notify_one(&n); /* to a, which is abandoned */
    blz_future_drop(&a.base);
    CHECK_EQ(test_wakes(&tb), 1);
    CHECK_EQ(poll_with(&b.base, &tb), BLZ_READY);
    /* With nobody left, a passed-on notification becomes the permit. */
    blz_notify_wait_fut(&n, &a);
    CHECK_EQ(poll_with(&a.base, &ta), BLZ_PENDING);
    blz_notify_one(&n);
    blz_future_drop(&a.base);
    CHECK_OK(blz_notify_try_wait(&n));
    /* A queued waiter dropped before any notify takes nothing with it. */
    blz_notify_wait_fut(&n, &a);
    CHECK_EQ(poll_with(&a.base, &ta), BLZ_PENDING);
    blz_future_drop(&a.base);
    blz_notify_one(&n);
    CHECK_OK(blz_notify_try_wait(&n));
    CHECK_NO_WAKER_REFS(&ta);
    CHECK_NO_WAKER_REFS(&tb);
}

BLZ_TEST(notify_dropped_after_notify_all_passes_nothing)
{
    blz_notify n = BLZ_NOTIFY_INIT;
    blz_notify_wait_future a;
    test_waker ta;
    test_waker_init(&ta);
    blz_notify_wait_fut(&n, &a);
    CHECK_EQ(poll_with(&a.base, &ta), BLZ_PENDING);
    blz_notify_all(&n);
    blz_future_drop(&a.base);
    CHECK_EQ(blz_notify_try_wait(&n), -EAGAIN);
    CHECK_NO_WAKER_REFS(&ta);
}

/* Two threads hand a token back and forth: any lost wake-up hangs the test. */
static blz_notify ping = BLZ_NOTIFY_INIT, pong = BLZ_NOTIFY_INIT;
#define ROUNDS SYNC_SCALE(20000, 2000)

static void *
ponger(void *arg)
{
    (void) arg;
    for (int i = 0; i < ROUNDS; i++) {
        CHECK_OK(blz_notify_wait(&ping));
        blz_notify_one(&pong);
    }
    return NULL;
}

BLZ_TEST(notify_ping_pong_threads)
{
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, ponger, NULL), 0);
    for (int i = 0; i < ROUNDS; i++) {
        blz_notify_one(&ping);
        CHECK_OK(blz_notify_wait(&pong));
    }
    CHECK_EQ(pthread_join(t, NULL), 0);
}
