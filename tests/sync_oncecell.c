/*
 * OnceCell: get/set and their errors, get_or_init running the initialiser
 * once, a failed initialiser letting the next caller retry, waiting with no
 * initialiser, and a start-line race between threads.
 */
#include "sync_util.h"

static atomic_int init_calls;

static int
init_42(void *arg, void **value)
{
    (void) arg;
    atomic_fetch_add(&init_calls, 1);
    *value = (void *) (intptr_t) 42;
    return 0;
}

static int
init_fail(void *arg, void **value)
{
    (void) value;
    atomic_fetch_add(&init_calls, 1);
    return (int) (intptr_t) arg;
}

BLZ_TEST(oncecell_get_set)
{
    blz_oncecell c = BLZ_ONCECELL_INIT;
    void *v = (void *) 1;
    CHECK_EQ(blz_oncecell_get(&c, &v), -EAGAIN);
    CHECK_PTR_EQ(v, (void *) 1);
    CHECK_OK(blz_oncecell_set(&c, (void *) 7));
    CHECK_OK(blz_oncecell_get(&c, &v));
    CHECK_PTR_EQ(v, (void *) 7);
    CHECK_OK(blz_oncecell_get(&c, NULL));
    CHECK_EQ(blz_oncecell_set(&c, (void *) 8), -EEXIST);
    CHECK_OK(blz_oncecell_get_or_init(&c, init_42, NULL, &v));
    CHECK_PTR_EQ(v, (void *) 7);
    CHECK_EQ(atomic_load(&init_calls), 0);
    blz_oncecell d;
    blz_oncecell_init(&d);
    CHECK_OK(blz_oncecell_set(&d, NULL)); /* NULL is a value like any other */
    CHECK_OK(blz_oncecell_get(&d, &v));
    CHECK_PTR_EQ(v, NULL);
}

BLZ_TEST(oncecell_null_arguments)
{
    CHECK_EQ(blz_oncecell_get(NULL, NULL), -EINVAL);
    CHECK_EQ(blz_oncecell_set(NULL, NULL), -EINVAL);
    CHECK_EQ(blz_oncecell_get_or_init(NULL, init_42, NULL, NULL), -EINVAL);
    blz_oncecell_init(NULL);
    blz_oncecell_get_or_init_fut(NULL, NULL, NULL, NULL);
}

BLZ_TEST(oncecell_get_or_init_once_and_retry_after_failure)
{
    blz_oncecell c = BLZ_ONCECELL_INIT;
    void *v = NULL;
    CHECK_EQ(blz_oncecell_get_or_init(&c, init_fail, (void *) (intptr_t) -EIO, &v), -EIO);
    CHECK_EQ(blz_oncecell_get(&c, NULL), -EAGAIN);
    CHECK_OK(blz_oncecell_get_or_init(&c, init_42, NULL, &v));
    CHECK_PTR_EQ(v, (void *) 42);
    CHECK_OK(blz_oncecell_get_or_init(&c, init_42, NULL, &v));
    CHECK_EQ(atomic_load(&init_calls), 2);
}

/* An initialiser that, while running, checks what others see. */
static blz_oncecell nested_cell = BLZ_ONCECELL_INIT;
static blz_oncecell_init_future nested_waiter;
static test_waker nested_tw;

static int
init_observing(void *arg, void **value)
{
    (void) arg;
    CHECK_EQ(blz_oncecell_set(&nested_cell, NULL), -EBUSY);
    blz_oncecell_get_or_init_fut(&nested_cell, init_42, NULL, &nested_waiter);
    CHECK_EQ(poll_with(&nested_waiter.base, &nested_tw), BLZ_PENDING);
    *value = (void *) 5;
    return 0;
}

BLZ_TEST(oncecell_waiters_wait_for_the_initialiser)
{
    test_waker_init(&nested_tw);
    void *v = NULL;
    CHECK_OK(blz_oncecell_get_or_init(&nested_cell, init_observing, NULL, &v));
    CHECK_PTR_EQ(v, (void *) 5);
    CHECK_EQ(test_wakes(&nested_tw), 1);
    CHECK_EQ(poll_with(&nested_waiter.base, &nested_tw), BLZ_READY);
    CHECK_PTR_EQ(nested_waiter.value, (void *) 5);
    CHECK_EQ(atomic_load(&init_calls), 0);
    CHECK_NO_WAKER_REFS(&nested_tw);
}

static blz_oncecell fail_cell = BLZ_ONCECELL_INIT;
static blz_oncecell_init_future fail_waiter;
static test_waker fail_tw;

static int
init_fail_with_waiter(void *arg, void **value)
{
    (void) arg;
    (void) value;
    blz_oncecell_get_or_init_fut(&fail_cell, init_42, NULL, &fail_waiter);
    CHECK_EQ(poll_with(&fail_waiter.base, &fail_tw), BLZ_PENDING);
    return -ENOMEM;
}

BLZ_TEST(oncecell_waiter_retries_after_failed_initialiser)
{
    test_waker_init(&fail_tw);
    CHECK_EQ(blz_oncecell_get_or_init(&fail_cell, init_fail_with_waiter, NULL, NULL), -ENOMEM);
    CHECK_EQ(test_wakes(&fail_tw), 1);
    /* Woken by the failure, the waiter becomes the next initialiser. */
    CHECK_EQ(poll_with(&fail_waiter.base, &fail_tw), BLZ_READY);
    CHECK_EQ(fail_waiter.base.result, 0);
    CHECK_PTR_EQ(fail_waiter.value, (void *) 42);
    CHECK_NO_WAKER_REFS(&fail_tw);
}

BLZ_TEST(oncecell_wait_without_initialiser_and_drop)
{
    blz_oncecell c = BLZ_ONCECELL_INIT;
    blz_oncecell_init_future a, b;
    test_waker ta, tb;
    test_waker_init(&ta);
    test_waker_init(&tb);
    blz_oncecell_get_or_init_fut(&c, NULL, NULL, &a);
    blz_oncecell_get_or_init_fut(&c, NULL, NULL, &b);
    CHECK_EQ(poll_with(&a.base, &ta), BLZ_PENDING);
    CHECK_EQ(poll_with(&b.base, &tb), BLZ_PENDING);
    blz_future_drop(&b.base);
    CHECK_OK(blz_oncecell_set(&c, (void *) 9));
    CHECK_EQ(test_wakes(&ta), 1);
    CHECK_EQ(test_wakes(&tb), 0);
    CHECK_EQ(poll_with(&a.base, &ta), BLZ_READY);
    CHECK_PTR_EQ(a.value, (void *) 9);
    CHECK_NO_WAKER_REFS(&ta);
    CHECK_NO_WAKER_REFS(&tb);
}

/* Start-line race: many threads released at once, exactly one initialises. */
static blz_oncecell race_cell = BLZ_ONCECELL_INIT;
static atomic_int race_go, race_ready;

static int
slow_init(void *arg, void **value)
{
    (void) arg;
    atomic_fetch_add(&init_calls, 1);
    for (volatile int i = 0; i < 10000; i++) {
    }
    *value = (void *) 77;
    return 0;
}

static void *
race_body(void *arg)
{
    (void) arg;
    atomic_fetch_add(&race_ready, 1);
    while (!atomic_load(&race_go)) {
    }
    void *v = NULL;
    CHECK_OK(blz_oncecell_get_or_init(&race_cell, slow_init, NULL, &v));
    CHECK_PTR_EQ(v, (void *) 77);
    return NULL;
}

BLZ_TEST(oncecell_start_line_race_threads)
{
    for (int round = 0; round < SYNC_SCALE(50, 10); round++) {
        blz_oncecell_init(&race_cell);
        atomic_store(&init_calls, 0);
        atomic_store(&race_go, 0);
        atomic_store(&race_ready, 0);
        pthread_t th[6];
        for (int i = 0; i < 6; i++) {
            CHECK_EQ(pthread_create(&th[i], NULL, race_body, NULL), 0);
        }
        while (atomic_load(&race_ready) < 6) {
        }
        atomic_store(&race_go, 1);
        for (int i = 0; i < 6; i++) {
            CHECK_EQ(pthread_join(th[i], NULL), 0);
        }
        CHECK_EQ(atomic_load(&init_calls), 1);
    }
}
