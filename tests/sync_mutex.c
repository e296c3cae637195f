/*
 * Mutex: try/future/await tiers, FIFO hand-off, cancellation in every state,
 * error paths, mutual exclusion between plain threads, and -EDEADLK from a
 * stackless poll.
 */
#include "sync_util.h"

BLZ_TEST(mutex_try_lock_unlock)
{
    blz_mutex m = BLZ_MUTEX_INIT;
    CHECK(!blz_mutex_is_locked(&m));
    CHECK_OK(blz_mutex_try_lock(&m));
    CHECK(blz_mutex_is_locked(&m));
    CHECK_EQ(blz_mutex_try_lock(&m), -EAGAIN);
    blz_mutex_unlock(&m);
    CHECK(!blz_mutex_is_locked(&m));
    CHECK_OK(blz_mutex_try_lock(&m));
    blz_mutex_unlock(&m);

    blz_mutex d;
    blz_mutex_init(&d);
    CHECK_OK(blz_mutex_lock(&d)); /* await tier, uncontended, on a plain thread */
    CHECK(blz_mutex_is_locked(&d));
    blz_mutex_unlock(&d);
}

BLZ_TEST(mutex_null_arguments)
{
    CHECK_EQ(blz_mutex_try_lock(NULL), -EINVAL);
    CHECK_EQ(blz_mutex_lock(NULL), -EINVAL);
    CHECK(!blz_mutex_is_locked(NULL));
    blz_mutex_unlock(NULL);
    blz_mutex_init(NULL);
    blz_mutex m = BLZ_MUTEX_INIT;
    blz_mutex_lock_fut(&m, NULL);
    blz_mutex_lock_future f;
    test_waker tw;
    test_waker_init(&tw);
    blz_mutex_lock_fut(NULL, &f);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_READY);
    CHECK_EQ(f.base.result, -EINVAL);
}

BLZ_TEST(mutex_fifo_handoff)
{
    blz_mutex m = BLZ_MUTEX_INIT;
    CHECK_OK(blz_mutex_try_lock(&m));
    blz_mutex_lock_future f[3];
    test_waker tw[3];
    for (int i = 0; i < 3; i++) {
        test_waker_init(&tw[i]);
        blz_mutex_lock_fut(&m, &f[i]);
        CHECK_EQ(poll_with(&f[i].base, &tw[i]), BLZ_PENDING);
    }
    for (int i = 0; i < 3; i++) {
        blz_mutex_unlock(&m); /* hands it to f[i]: still locked, nobody barges */
        CHECK(blz_mutex_is_locked(&m));
        CHECK_EQ(blz_mutex_try_lock(&m), -EAGAIN);
        CHECK_EQ(test_wakes(&tw[i]), 1);
        for (int j = i + 1; j < 3; j++) {
            CHECK_EQ(test_wakes(&tw[j]), 0);
        }
        CHECK_EQ(poll_with(&f[i].base, &tw[i]), BLZ_READY);
        CHECK_EQ(f[i].base.result, 0);
        CHECK_NO_WAKER_REFS(&tw[i]);
    }
    blz_mutex_unlock(&m);
    CHECK(!blz_mutex_is_locked(&m));
    /* The sticky waiters flag is cleared by that unlock: the fast path is back. */
    CHECK_OK(blz_mutex_try_lock(&m));
    blz_mutex_unlock(&m);
}

BLZ_TEST(mutex_drop_queued_waiter)
{
    blz_mutex m = BLZ_MUTEX_INIT;
    CHECK_OK(blz_mutex_try_lock(&m));
    blz_mutex_lock_future a, b;
    test_waker ta, tb;
    test_waker_init(&ta);
    test_waker_init(&tb);
    blz_mutex_lock_fut(&m, &a);
    blz_mutex_lock_fut(&m, &b);
    CHECK_EQ(poll_with(&a.base, &ta), BLZ_PENDING);
    CHECK_EQ(poll_with(&b.base, &tb), BLZ_PENDING);
    blz_future_drop(&a.base);
    CHECK_NO_WAKER_REFS(&ta);
    blz_mutex_unlock(&m); /* goes to b, a is gone */
    CHECK_EQ(test_wakes(&ta), 0);
    CHECK_EQ(test_wakes(&tb), 1);
    CHECK_EQ(poll_with(&b.base, &tb), BLZ_READY);
    blz_mutex_unlock(&m);
    CHECK_OK(blz_mutex_try_lock(&m));
    blz_mutex_unlock(&m);
}

BLZ_TEST(mutex_drop_after_handoff_passes_it_on)
{
    blz_mutex m = BLZ_MUTEX_INIT;
    CHECK_OK(blz_mutex_try_lock(&m));
    blz_mutex_lock_future a, b;
    test_waker ta, tb;
    test_waker_init(&ta);
    test_waker_init(&tb);
    blz_mutex_lock_fut(&m, &a);
    blz_mutex_lock_fut(&m, &b);
    CHECK_EQ(poll_with(&a.base, &ta), BLZ_PENDING);
    CHECK_EQ(poll_with(&b.base, &tb), BLZ_PENDING);
    blz_mutex_unlock(&m); /* handed to a, which is then abandoned */
    CHECK_EQ(test_wakes(&ta), 1);
    blz_future_drop(&a.base);
    CHECK_EQ(test_wakes(&tb), 1);
    CHECK_EQ(poll_with(&b.base, &tb), BLZ_READY);
    CHECK(blz_mutex_is_locked(&m));
    blz_mutex_unlock(&m);
    CHECK(!blz_mutex_is_locked(&m));
    /* Last waiter handed off and dropped with nobody behind: unlocked for good. */
    CHECK_OK(blz_mutex_try_lock(&m));
    blz_mutex_lock_fut(&m, &a);
    CHECK_EQ(poll_with(&a.base, &ta), BLZ_PENDING);
    blz_mutex_unlock(&m);
    blz_future_drop(&a.base);
    CHECK(!blz_mutex_is_locked(&m));
    CHECK_OK(blz_mutex_try_lock(&m));
    blz_mutex_unlock(&m);
    CHECK_NO_WAKER_REFS(&ta);
    CHECK_NO_WAKER_REFS(&tb);
}

BLZ_TEST(mutex_waiter_finds_mutex_freed_while_queueing)
{
    /* Ready future on an unlocked mutex: the first poll takes it. */
    blz_mutex m = BLZ_MUTEX_INIT;
    blz_mutex_lock_future f;
    test_waker tw;
    test_waker_init(&tw);
    blz_mutex_lock_fut(&m, &f);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_READY);
    CHECK_EQ(f.base.result, 0);
    CHECK(blz_mutex_is_locked(&m));
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_READY); /* polling a ready future is harmless */
    blz_future_drop(&f.base);                     /* and so is dropping it */
    CHECK(blz_mutex_is_locked(&m));
    blz_mutex_unlock(&m);
    CHECK_NO_WAKER_REFS(&tw);
}

/* Plain threads: the await tier parks them on a futex. */
static blz_mutex thread_mutex = BLZ_MUTEX_INIT;
static long thread_counter; /* protected by thread_mutex; TSan checks that */

static void *
thread_body(void *arg)
{
    (void) arg;
    for (int i = 0; i < SYNC_SCALE(50000, 5000); i++) {
        CHECK_OK(blz_mutex_lock(&thread_mutex));
        thread_counter++;
        blz_mutex_unlock(&thread_mutex);
    }
    return NULL;
}

static void
mutual_exclusion_run(void)
{
    thread_counter = 0;
    run_threads(4, thread_body, NULL);
    CHECK_EQ(thread_counter, 4L * SYNC_SCALE(50000, 5000));
    CHECK(!blz_mutex_is_locked(&thread_mutex));
}

BLZ_TEST(mutex_threads_mutual_exclusion)
{
    mutual_exclusion_run();
}

/* A stackless future calling the await tier gets -EDEADLK, never blocks. */
typedef struct deadlk_future {
    blz_future base;
    blz_mutex *m;
} deadlk_future;

static blz_poll
deadlk_poll(blz_future *f, blz_context *cx)
{
    (void) cx;
    f->result = blz_mutex_lock(((deadlk_future *) f)->m);
    return BLZ_READY;
}

static const blz_future_vtable deadlk_vt = {deadlk_poll, NULL};

BLZ_TEST(mutex_await_in_stackless_poll_is_edeadlk)
{
    blz_runtime *rt = sync_new_rt(1);
    blz_mutex m = BLZ_MUTEX_INIT;
    deadlk_future f = {.m = &m};
    blz_future_init(&f.base, &deadlk_vt);
    blz_join *j = NULL;
    CHECK_OK(blz_runtime_spawn_future(rt, &f.base, sizeof f, &j));
    void *out = NULL;
    CHECK_OK(blz_join_wait(j, &out));
    CHECK_EQ((intptr_t) out, -EDEADLK);
    CHECK(!blz_mutex_is_locked(&m));
    blz_runtime_free(rt);
}
