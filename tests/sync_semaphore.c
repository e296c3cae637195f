/*
 * Semaphore: every tier and error path, FIFO hand-off, partial grants,
 * cancellation (a dropped waiter passes its permits on), close, and the await
 * tier from plain threads.
 */
#include "sync_util.h"

#include <sched.h>

BLZ_TEST(semaphore_init_and_errors)
{
    blz_semaphore s;
    CHECK_EQ(blz_semaphore_init(NULL, 1), -EINVAL);
    CHECK_EQ(blz_semaphore_init(&s, BLZ_SEMAPHORE_MAX_PERMITS + 1), -EINVAL);
    CHECK_OK(blz_semaphore_init(&s, 3));
    CHECK_EQ(blz_semaphore_available(&s), 3);
    CHECK_EQ(blz_semaphore_available(NULL), 0);
    CHECK_EQ(blz_semaphore_try_acquire(NULL, 1), -EINVAL);
    CHECK_EQ(blz_semaphore_try_acquire(&s, BLZ_SEMAPHORE_MAX_PERMITS + 1), -EINVAL);
    CHECK_EQ(blz_semaphore_acquire(NULL, 1), -EINVAL);
    CHECK_EQ(blz_semaphore_acquire(&s, BLZ_SEMAPHORE_MAX_PERMITS + 1), -EINVAL);
    blz_semaphore_release(NULL, 1); /* ignored */
    blz_semaphore_close(NULL);      /* ignored */
    CHECK(!blz_semaphore_is_closed(NULL));
    blz_semaphore_acquire_fut(&s, 1, NULL); /* ignored */

    blz_semaphore_acquire_future f;
    test_waker tw;
    test_waker_init(&tw);
    blz_semaphore_acquire_fut(NULL, 1, &f);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_READY);
    CHECK_EQ(f.base.result, -EINVAL);
}

BLZ_TEST(semaphore_static_init_try_release)
{
    static blz_semaphore s = BLZ_SEMAPHORE_INIT(2);
    CHECK_OK(blz_semaphore_try_acquire(&s, 1));
    CHECK_OK(blz_semaphore_try_acquire(&s, 1));
    CHECK_EQ(blz_semaphore_try_acquire(&s, 1), -EAGAIN);
    CHECK_OK(blz_semaphore_try_acquire(&s, 0));
    blz_semaphore_release(&s, 2);
    CHECK_EQ(blz_semaphore_available(&s), 2);
    CHECK_EQ(blz_semaphore_try_acquire(&s, 3), -EAGAIN);
    CHECK_OK(blz_semaphore_try_acquire(&s, 2));
    blz_semaphore_release(&s, 0); /* no-op */
    blz_semaphore_release(&s, 5);
    CHECK_EQ(blz_semaphore_available(&s), 5);
}

BLZ_TEST(semaphore_await_ready_on_thread)
{
    blz_semaphore s = BLZ_SEMAPHORE_INIT(1);
    CHECK_OK(blz_semaphore_acquire(&s, 1));
    CHECK_EQ(blz_semaphore_available(&s), 0);
    blz_semaphore_release(&s, 1);
}

BLZ_TEST(semaphore_fifo_handoff)
{
    blz_semaphore s = BLZ_SEMAPHORE_INIT(0);
    blz_semaphore_acquire_future f[3];
    test_waker tw[3];
    for (int i = 0; i < 3; i++) {
        test_waker_init(&tw[i]);
        blz_semaphore_acquire_fut(&s, 1, &f[i]);
        CHECK_EQ(poll_with(&f[i].base, &tw[i]), BLZ_PENDING);
    }
    /* Nobody barges past the queue. */
    CHECK_EQ(blz_semaphore_try_acquire(&s, 0), 0);
    blz_semaphore_release(&s, 1);
    CHECK_EQ(test_wakes(&tw[0]), 1);
    CHECK_EQ(test_wakes(&tw[1]), 0);
    CHECK_EQ(blz_semaphore_available(&s), 0);
    CHECK_EQ(blz_semaphore_try_acquire(&s, 1), -EAGAIN);
    /* A re-poll of a waiter not yet served stays pending. */
    CHECK_EQ(poll_with(&f[1].base, &tw[1]), BLZ_PENDING);
    blz_semaphore_release(&s, 2);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(poll_with(&f[i].base, &tw[i]), BLZ_READY);
        CHECK_EQ(f[i].base.result, 0);
        CHECK_EQ(test_wakes(&tw[i]), 1);
        CHECK_NO_WAKER_REFS(&tw[i]);
    }
    CHECK_EQ(blz_semaphore_available(&s), 0);
    /* Queue empty again: the fast path works. */
    blz_semaphore_release(&s, 1);
    CHECK_OK(blz_semaphore_try_acquire(&s, 1));
}

BLZ_TEST(semaphore_large_request_blocks_later_small_ones)
{
    blz_semaphore s = BLZ_SEMAPHORE_INIT(2);
    blz_semaphore_acquire_future big, small;
    test_waker tb, ts;
    test_waker_init(&tb);
    test_waker_init(&ts);
    blz_semaphore_acquire_fut(&s, 5, &big);
    CHECK_EQ(poll_with(&big.base, &tb), BLZ_PENDING); /* takes the 2 as a partial grant */
    CHECK_EQ(blz_semaphore_available(&s), 0);
    blz_semaphore_acquire_fut(&s, 1, &small);
    CHECK_EQ(poll_with(&small.base, &ts), BLZ_PENDING);
    blz_semaphore_release(&s, 2); /* 4 of 5: still short, and the small one waits */
    CHECK_EQ(test_wakes(&tb), 0);
    CHECK_EQ(test_wakes(&ts), 0);
    blz_semaphore_release(&s, 2); /* 6: big gets 5, small gets 1 */
    CHECK_EQ(test_wakes(&tb), 1);
    CHECK_EQ(test_wakes(&ts), 1);
    CHECK_EQ(poll_with(&big.base, &tb), BLZ_READY);
    CHECK_EQ(poll_with(&small.base, &ts), BLZ_READY);
    CHECK_EQ(blz_semaphore_available(&s), 0);
    blz_semaphore_release(&s, 6);
    CHECK_EQ(blz_semaphore_available(&s), 6);
    CHECK_NO_WAKER_REFS(&tb);
    CHECK_NO_WAKER_REFS(&ts);
}

BLZ_TEST(semaphore_drop_queued_returns_partial_grant)
{
    blz_semaphore s = BLZ_SEMAPHORE_INIT(3);
    blz_semaphore_acquire_future big, next;
    test_waker tb, tn;
    test_waker_init(&tb);
    test_waker_init(&tn);
    blz_semaphore_acquire_fut(&s, 10, &big);
    CHECK_EQ(poll_with(&big.base, &tb), BLZ_PENDING);
    blz_semaphore_acquire_fut(&s, 2, &next);
    CHECK_EQ(poll_with(&next.base, &tn), BLZ_PENDING);
    blz_future_drop(&big.base); /* its 3 go on: next gets 2, 1 back to the pool */
    CHECK_EQ(test_wakes(&tn), 1);
    CHECK_EQ(poll_with(&next.base, &tn), BLZ_READY);
    CHECK_EQ(blz_semaphore_available(&s), 1);
    blz_semaphore_release(&s, 2);
    CHECK_EQ(blz_semaphore_available(&s), 3);
    CHECK_NO_WAKER_REFS(&tb);
    CHECK_NO_WAKER_REFS(&tn);
    /* Dropping twice, or dropping a finished future, is harmless. */
    blz_future_drop(&big.base);
    blz_future_drop(&next.base);
    CHECK_EQ(blz_semaphore_available(&s), 3);
}

BLZ_TEST(semaphore_drop_after_grant_passes_permits_on)
{
    blz_semaphore s = BLZ_SEMAPHORE_INIT(0);
    blz_semaphore_acquire_future a, b;
    test_waker ta, tb;
    test_waker_init(&ta);
    test_waker_init(&tb);
    blz_semaphore_acquire_fut(&s, 2, &a);
    blz_semaphore_acquire_fut(&s, 2, &b);
    CHECK_EQ(poll_with(&a.base, &ta), BLZ_PENDING);
    CHECK_EQ(poll_with(&b.base, &tb), BLZ_PENDING);
    blz_semaphore_release(&s, 2); /* granted to a, a never looks */
    CHECK_EQ(test_wakes(&ta), 1);
    blz_future_drop(&a.base); /* the 2 permits go to b */
    CHECK_EQ(test_wakes(&tb), 1);
    CHECK_EQ(poll_with(&b.base, &tb), BLZ_READY);
    CHECK_EQ(b.base.result, 0);
    blz_semaphore_release(&s, 2);
    CHECK_EQ(blz_semaphore_available(&s), 2);
    CHECK_NO_WAKER_REFS(&ta);
    CHECK_NO_WAKER_REFS(&tb);
}

BLZ_TEST(semaphore_drop_unpolled_future_is_noop)
{
    blz_semaphore s = BLZ_SEMAPHORE_INIT(1);
    blz_semaphore_acquire_future f;
    blz_semaphore_acquire_fut(&s, 1, &f);
    blz_future_drop(&f.base);
    CHECK_EQ(blz_semaphore_available(&s), 1);
    CHECK_EQ(blz_future_poll(&f.base, &(blz_context){blz_waker_noop()}), BLZ_READY);
    CHECK_EQ(f.base.result, -ECANCELED);
}

BLZ_TEST(semaphore_close)
{
    blz_semaphore s = BLZ_SEMAPHORE_INIT(1);
    blz_semaphore_acquire_future w1, w2;
    test_waker t1, t2;
    test_waker_init(&t1);
    test_waker_init(&t2);
    blz_semaphore_acquire_fut(&s, 3, &w1);
    CHECK_EQ(poll_with(&w1.base, &t1), BLZ_PENDING); /* partial grant of 1 */
    blz_semaphore_acquire_fut(&s, 1, &w2);
    CHECK_EQ(poll_with(&w2.base, &t2), BLZ_PENDING);
    CHECK(!blz_semaphore_is_closed(&s));
    blz_semaphore_close(&s);
    CHECK(blz_semaphore_is_closed(&s));
    CHECK_EQ(test_wakes(&t1), 1);
    CHECK_EQ(test_wakes(&t2), 1);
    CHECK_EQ(poll_with(&w1.base, &t1), BLZ_READY);
    CHECK_EQ(w1.base.result, -EPIPE);
    CHECK_EQ(poll_with(&w2.base, &t2), BLZ_READY);
    CHECK_EQ(w2.base.result, -EPIPE);
    CHECK_EQ(blz_semaphore_available(&s), 1); /* the partial grant came back */
    CHECK_EQ(blz_semaphore_try_acquire(&s, 1), -EPIPE);
    CHECK_EQ(blz_semaphore_acquire(&s, 1), -EPIPE);
    blz_semaphore_close(&s); /* idempotent */
    blz_semaphore_release(&s, 1);
    CHECK_EQ(blz_semaphore_available(&s), 2);
    CHECK_NO_WAKER_REFS(&t1);
    CHECK_NO_WAKER_REFS(&t2);
}

BLZ_TEST(semaphore_handoff_to_last_waiter_then_try_acquire)
{
    /* Handing the only permit to the last waiter leaves the queue empty with
     * nothing to spare; once that waiter releases, the permit must be free to
     * the try tier again (the waiter flag does not outlive its waiters). */
    blz_semaphore s = BLZ_SEMAPHORE_INIT(1);
    CHECK_OK(blz_semaphore_try_acquire(&s, 1));
    blz_semaphore_acquire_future f;
    test_waker tw;
    test_waker_init(&tw);
    blz_semaphore_acquire_fut(&s, 1, &f);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_PENDING);
    blz_semaphore_release(&s, 1);
    CHECK_EQ(test_wakes(&tw), 1);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_READY);
    CHECK_EQ(f.base.result, 0);
    CHECK_EQ(blz_semaphore_try_acquire(&s, 1), -EAGAIN);
    blz_semaphore_release(&s, 1);
    CHECK_EQ(blz_semaphore_available(&s), 1);
    CHECK_OK(blz_semaphore_try_acquire(&s, 1));
    blz_semaphore_release(&s, 1);
    CHECK_NO_WAKER_REFS(&tw);
}

BLZ_TEST(semaphore_waker_updated_on_repoll)
{
    blz_semaphore s = BLZ_SEMAPHORE_INIT(0);
    blz_semaphore_acquire_future f;
    test_waker a, b;
    test_waker_init(&a);
    test_waker_init(&b);
    blz_semaphore_acquire_fut(&s, 1, &f);
    CHECK_EQ(poll_with(&f.base, &a), BLZ_PENDING);
    CHECK_EQ(poll_with(&f.base, &b), BLZ_PENDING); /* now b must be woken, not a */
    CHECK_NO_WAKER_REFS(&a);
    blz_semaphore_release(&s, 1);
    CHECK_EQ(test_wakes(&a), 0);
    CHECK_EQ(test_wakes(&b), 1);
    CHECK_EQ(poll_with(&f.base, &b), BLZ_READY);
    CHECK_NO_WAKER_REFS(&b);
}

/* Threads contend on 2 permits; at most 2 are ever inside. */
static blz_semaphore thread_sem = BLZ_SEMAPHORE_INIT(2);
static atomic_int inside, max_inside;

static void *
thread_body(void *arg)
{
    (void) arg;
    for (int i = 0; i < SYNC_SCALE(20000, 2000); i++) {
        CHECK_OK(blz_semaphore_acquire(&thread_sem, 1));
        int now = atomic_fetch_add(&inside, 1) + 1;
        int m = atomic_load(&max_inside);
        while (now > m && !atomic_compare_exchange_weak(&max_inside, &m, now)) {
        }
        atomic_fetch_sub(&inside, 1);
        blz_semaphore_release(&thread_sem, 1);
    }
    return NULL;
}

static void
threads_bound_holders_run(void)
{
    atomic_store(&max_inside, 0);
    run_threads(4, thread_body, NULL);
    CHECK_LE(atomic_load(&max_inside), 2);
    CHECK_EQ(blz_semaphore_available(&thread_sem), 2);
}

BLZ_TEST(semaphore_threads_bound_holders)
{
    threads_bound_holders_run();
}

BLZ_TEST(semaphore_forget_takes_only_free_permits)
{
    blz_semaphore s;
    CHECK_OK(blz_semaphore_init(&s, 5));
    CHECK_EQ(blz_semaphore_forget(&s, 2), 2);
    CHECK_EQ(blz_semaphore_available(&s), 3);
    CHECK_OK(blz_semaphore_try_acquire(&s, 1)); /* held: not forgettable */
    CHECK_EQ(blz_semaphore_forget(&s, 10), 2);  /* only the free ones */
    CHECK_EQ(blz_semaphore_available(&s), 0);
    CHECK_EQ(blz_semaphore_try_acquire(&s, 1), -EAGAIN);
    blz_semaphore_release(&s, 1); /* the held one comes back */
    CHECK_EQ(blz_semaphore_available(&s), 1);
    CHECK_EQ(blz_semaphore_forget(&s, 0), 0);
    CHECK_EQ(blz_semaphore_forget(NULL, 1), 0);

    /* A permit handed to a queued acquire is not free: forget leaves it. */
    blz_semaphore_acquire_future f;
    test_waker w;
    test_waker_init(&w);
    CHECK_OK(blz_semaphore_try_acquire(&s, 1));
    blz_semaphore_acquire_fut(&s, 1, &f);
    CHECK_EQ(poll_with(&f.base, &w), BLZ_PENDING);
    blz_semaphore_release(&s, 1); /* straight to the waiter */
    CHECK_EQ(blz_semaphore_forget(&s, 1), 0);
    CHECK_EQ(poll_with(&f.base, &w), BLZ_READY);
    CHECK_OK(f.base.result);
    blz_semaphore_release(&s, 1);
    CHECK_EQ(blz_semaphore_available(&s), 1);
    CHECK_NO_WAKER_REFS(&w);
}

/*
 * A release that finds a waiter queued is on its way to the queue lock to
 * hand its permit over. forget() in that window must not take the permit: it
 * is the waiter's, not free (the try tier refuses then too). The release
 * keeps it out of the count until it has the lock, so neither ever sees it.
 * The re-polled waiter's waker is cloned under the queue lock; the hook holds
 * the lock there while another thread releases, and looks for a while.
 */
static blz_semaphore fw_sem;
static blz_semaphore_acquire_future fw_f;
static pthread_t fw_releaser;
static size_t fw_forgot;

static void *
fw_release(void *arg)
{
    (void) arg;
    blz_semaphore_release(&fw_sem, 1);
    return NULL;
}

static void
fw_in_lock(void *arg)
{
    (void) arg;
    CHECK_EQ(pthread_create(&fw_releaser, NULL, fw_release, NULL), 0);
    for (int i = 0; i < 1000; i++) {
        CHECK_EQ(blz_semaphore_available(&fw_sem), 0);
        fw_forgot += blz_semaphore_forget(&fw_sem, 1);
        (void) sched_yield();
    }
}

BLZ_TEST(semaphore_forget_leaves_a_release_in_flight_to_its_waiter)
{
    CHECK_OK(blz_semaphore_init(&fw_sem, 0));
    test_waker tw;
    hook_waker hw;
    test_waker_init(&tw);
    hook_waker_init(&hw, NULL, fw_in_lock, NULL);
    blz_semaphore_acquire_fut(&fw_sem, 1, &fw_f);
    CHECK_EQ(poll_with(&fw_f.base, &tw), BLZ_PENDING);
    CHECK_EQ(poll_with(&fw_f.base, &hw.tw), BLZ_PENDING); /* the hook runs in here */
    CHECK_EQ(pthread_join(fw_releaser, NULL), 0);
    CHECK_EQ(fw_forgot, 0);
    CHECK_EQ(test_wakes(&hw.tw), 1);
    CHECK_EQ(poll_with(&fw_f.base, &hw.tw), BLZ_READY);
    CHECK_OK(fw_f.base.result);
    blz_semaphore_release(&fw_sem, 1);
    CHECK_EQ(blz_semaphore_available(&fw_sem), 1);
    CHECK_NO_WAKER_REFS(&tw);
    CHECK_NO_WAKER_REFS(&hw.tw);
}

/* Threads take and give back permits while another forgets some: every
 * permit is either forgotten or back in the count at the end. */
static blz_semaphore forget_sem;
static atomic_size_t forgotten;
static atomic_int forget_stop;

static void *
forget_user(void *arg)
{
    (void) arg;
    for (int i = 0; i < SYNC_SCALE(20000, 2000); i++) {
        if (blz_semaphore_try_acquire(&forget_sem, 1) == 0) {
            blz_semaphore_release(&forget_sem, 1);
        }
    }
    return NULL;
}

static void *
forget_taker(void *arg)
{
    (void) arg;
    while (atomic_load(&forgotten) < 40 && !atomic_load(&forget_stop)) {
        atomic_fetch_add(&forgotten, blz_semaphore_forget(&forget_sem, 1));
    }
    return NULL;
}

static void *
forget_mixed(void *arg)
{
    return (intptr_t) arg == 0 ? forget_taker(NULL) : forget_user(NULL);
}

BLZ_TEST(semaphore_forget_races_with_acquire_and_release)
{
    for (int round = 0; round < SYNC_SCALE(60, 6); round++) {
        CHECK_OK(blz_semaphore_init(&forget_sem, 64));
        atomic_store(&forgotten, 0);
        atomic_store(&forget_stop, 0);
        pthread_t t[4];
        for (intptr_t i = 0; i < 4; i++) {
            CHECK_OK(pthread_create(&t[i], NULL, forget_mixed, (void *) i));
        }
        for (int i = 1; i < 4; i++) {
            CHECK_OK(pthread_join(t[i], NULL));
        }
        atomic_store(&forget_stop, 1);
        CHECK_OK(pthread_join(t[0], NULL));
        CHECK_EQ(blz_semaphore_available(&forget_sem) + atomic_load(&forgotten), 64);
    }
}

/* The fast paths' first CAS expects rest_, a hint that nothing keeps true.
 * Whatever rest_ says, the result must be the real state's: a guess that
 * would refuse, succeed, or see WAITERS or CLOSED wrongly decides nothing. */
BLZ_TEST(semaphore_stale_rest_hint_decides_nothing)
{
    const size_t hints[] = {0,
                            (size_t) 1 << BLZ_SEM_SHIFT_,
                            (size_t) 3 << BLZ_SEM_SHIFT_,
                            (size_t) 100 << BLZ_SEM_SHIFT_,
                            BLZ_SEM_WAITERS_,
                            BLZ_SEM_CLOSED_ | (size_t) 3 << BLZ_SEM_SHIFT_,
                            (size_t) 3 << BLZ_SEM_SHIFT_ | BLZ_SEM_WAITERS_,
                            SIZE_MAX};
    for (size_t h = 0; h < sizeof hints / sizeof hints[0]; h++) {
        blz_semaphore s;
        CHECK_OK(blz_semaphore_init(&s, 3));
        atomic_store(&s.rest_, hints[h]);
        CHECK_EQ(blz_semaphore_try_acquire(&s, 4), -EAGAIN);
        atomic_store(&s.rest_, hints[h]);
        CHECK_OK(blz_semaphore_try_acquire(&s, 2));
        CHECK_EQ(blz_semaphore_available(&s), 1);
        atomic_store(&s.rest_, hints[h]);
        CHECK_EQ(blz_semaphore_try_acquire(&s, 2), -EAGAIN);
        atomic_store(&s.rest_, hints[h]);
        blz_semaphore_release(&s, 2);
        CHECK_EQ(blz_semaphore_available(&s), 3);

        /* A queued waiter: the try tier refuses and a release hands over. */
        blz_semaphore_acquire_future f;
        test_waker tw;
        test_waker_init(&tw);
        blz_semaphore_acquire_fut(&s, 5, &f);
        CHECK_EQ(poll_with(&f.base, &tw), BLZ_PENDING);
        atomic_store(&s.rest_, hints[h]);
        CHECK_EQ(blz_semaphore_try_acquire(&s, 1), -EAGAIN);
        atomic_store(&s.rest_, hints[h]);
        blz_semaphore_release(&s, 2);
        CHECK_EQ(blz_semaphore_available(&s), 0);
        CHECK_EQ(poll_with(&f.base, &tw), BLZ_READY);
        CHECK_OK(f.base.result);

        /* Closed: -EPIPE, even for n == 0. */
        blz_semaphore_release(&s, 5);
        blz_semaphore_close(&s);
        atomic_store(&s.rest_, hints[h]);
        CHECK_EQ(blz_semaphore_try_acquire(&s, 1), -EPIPE);
        atomic_store(&s.rest_, hints[h]);
        CHECK_EQ(blz_semaphore_try_acquire(&s, 0), -EPIPE);
    }
}

/* The try tier alone from four threads taking 1 to 3 of 4 permits: the
 * fast paths' guesses (rest_) are wrong most of the time here. No more than
 * 4 permits out at once, and all 4 back at the end. */
static blz_semaphore try_sem = BLZ_SEMAPHORE_INIT(4);
static atomic_int try_out, try_over;

static void *
try_tier_body(void *arg)
{
    unsigned seed = (unsigned) (uintptr_t) arg;
    for (int i = 0; i < SYNC_SCALE(200000, 20000); i++) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % 3;
        if (blz_semaphore_try_acquire(&try_sem, n) == 0) {
            if (atomic_fetch_add(&try_out, (int) n) + (int) n > 4) {
                atomic_fetch_add(&try_over, 1);
            }
            atomic_fetch_sub(&try_out, (int) n);
            blz_semaphore_release(&try_sem, n);
        }
    }
    return NULL;
}

BLZ_TEST(semaphore_try_tier_threads)
{
    pthread_t th[4];
    for (uintptr_t i = 0; i < 4; i++) {
        CHECK_EQ(pthread_create(&th[i], NULL, try_tier_body, (void *) (i + 1)), 0);
    }
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    }
    CHECK_EQ(atomic_load(&try_over), 0);
    CHECK_EQ(blz_semaphore_available(&try_sem), 4);
}
