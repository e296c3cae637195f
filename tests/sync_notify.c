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

/*
 * More waiters than one wake batch, so notify_all drops its lock half-way
 * (after the count went up, before the last old waiters are unlinked). What
 * happens in that window: a new waiter queues (it came after notify_all, so
 * that does not wake it), then a notify_one arrives, or a waiter that held an
 * unobserved notify_one is dropped. That notification must reach the new
 * waiter (or be stored as the permit): the old waiters still queued are
 * notify_all's already.
 */
enum { MID_N = 40 };
static blz_notify mid_n;
static blz_notify_wait_future mid_f[MID_N], mid_late, mid_held;
static test_waker mid_tw[MID_N], mid_tl, mid_th;
static hook_waker mid_hook;

static void
mid_queue_late(void)
{
    blz_notify_wait_fut(&mid_n, &mid_late);
    CHECK_EQ(poll_with(&mid_late.base, &mid_tl), BLZ_PENDING);
}

static void
mid_notify_one(void *arg)
{
    (void) arg;
    mid_queue_late();
    blz_notify_one(&mid_n);
}

static void
mid_drop_held(void *arg)
{
    (void) arg;
    mid_queue_late();
    blz_future_drop(&mid_held.base); /* its notify_one goes on */
}

static void
mid_notify_all_window(void (*hook)(void *), bool held)
{
    blz_notify_init(&mid_n);
    test_waker_init(&mid_tl);
    test_waker_init(&mid_th);
    if (held) {
        /* The oldest waiter gets a notify_one it never looks at. */
        blz_notify_wait_fut(&mid_n, &mid_held);
        CHECK_EQ(poll_with(&mid_held.base, &mid_th), BLZ_PENDING);
    }
    hook_waker_init(&mid_hook, hook, NULL, NULL);
    for (int i = 0; i < MID_N; i++) {
        test_waker_init(&mid_tw[i]);
        blz_notify_wait_fut(&mid_n, &mid_f[i]);
        test_waker *t = i == 0 ? &mid_hook.tw : &mid_tw[i];
        CHECK_EQ(poll_with(&mid_f[i].base, t), BLZ_PENDING);
    }
    if (held) {
        blz_notify_one(&mid_n);
        CHECK_EQ(test_wakes(&mid_th), 1);
    }
    blz_notify_all(&mid_n);
    CHECK_EQ(test_wakes(&mid_hook.tw), 1);
    for (int i = 1; i < MID_N; i++) {
        CHECK_EQ(test_wakes(&mid_tw[i]), 1);
        CHECK_EQ(poll_with(&mid_f[i].base, &mid_tw[i]), BLZ_READY);
    }
    CHECK_EQ(poll_with(&mid_f[0].base, &mid_hook.tw), BLZ_READY);
    /* The notify_one went to the late waiter, or is stored for it. */
    int got = test_wakes(&mid_tl) == 1 || blz_notify_try_wait(&mid_n) == 0;
    CHECK(got);
    blz_future_drop(&mid_late.base);
    CHECK_NO_WAKER_REFS(&mid_hook.tw);
    CHECK_NO_WAKER_REFS(&mid_tl);
    CHECK_NO_WAKER_REFS(&mid_th);
    for (int i = 1; i < MID_N; i++) {
        CHECK_NO_WAKER_REFS(&mid_tw[i]);
    }
}

BLZ_TEST(notify_one_during_notify_all_reaches_later_waiter)
{
    mid_notify_all_window(mid_notify_one, false);
}

BLZ_TEST(notify_dropped_during_notify_all_passes_on_to_later_waiter)
{
    mid_notify_all_window(mid_drop_held, true);
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
