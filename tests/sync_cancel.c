/*
 * CancelToken: the flag, child tokens (cancelled with their parent, not the
 * other way round), waiters at the root, drop, and a thread waiting.
 */
#include "sync_util.h"

BLZ_TEST(cancel_token_flag_and_children)
{
    blz_cancel_token root = BLZ_CANCEL_TOKEN_INIT, child, grandchild, sibling;
    CHECK_EQ(blz_cancel_token_child_init(NULL, &root), -EINVAL);
    CHECK_EQ(blz_cancel_token_child_init(&child, NULL), -EINVAL);
    CHECK_EQ(blz_cancel_token_child_init(&root, &root), -EINVAL);
    CHECK_OK(blz_cancel_token_child_init(&child, &root));
    CHECK_OK(blz_cancel_token_child_init(&grandchild, &child));
    CHECK_OK(blz_cancel_token_child_init(&sibling, &root));
    CHECK(!blz_cancel_token_is_cancelled(&grandchild));
    blz_cancel_token_cancel(&child);
    CHECK(blz_cancel_token_is_cancelled(&child));
    CHECK(blz_cancel_token_is_cancelled(&grandchild));
    CHECK(!blz_cancel_token_is_cancelled(&root));
    CHECK(!blz_cancel_token_is_cancelled(&sibling));
    blz_cancel_token_cancel(&root);
    blz_cancel_token_cancel(&root); /* idempotent */
    CHECK(blz_cancel_token_is_cancelled(&sibling));
    blz_cancel_token late;
    CHECK_OK(blz_cancel_token_child_init(&late, &root));
    CHECK(blz_cancel_token_is_cancelled(&late)); /* born cancelled */
    CHECK_OK(blz_cancel_token_wait(&late));
    CHECK(!blz_cancel_token_is_cancelled(NULL));
    blz_cancel_token_cancel(NULL);
    blz_cancel_token_init(NULL);
    CHECK_EQ(blz_cancel_token_wait(NULL), -EINVAL);
}

BLZ_TEST(cancel_token_waiters)
{
    blz_cancel_token root, a, b;
    blz_cancel_token_init(&root);
    CHECK_OK(blz_cancel_token_child_init(&a, &root));
    CHECK_OK(blz_cancel_token_child_init(&b, &root));
    blz_cancel_future fa, fb, fr, fd;
    test_waker ta, tb, tr, td;
    test_waker_init(&ta);
    test_waker_init(&tb);
    test_waker_init(&tr);
    test_waker_init(&td);
    blz_cancel_token_wait_fut(&a, &fa);
    blz_cancel_token_wait_fut(&b, &fb);
    blz_cancel_token_wait_fut(&root, &fr);
    blz_cancel_token_wait_fut(&b, &fd);
    CHECK_EQ(poll_with(&fa.base, &ta), BLZ_PENDING);
    CHECK_EQ(poll_with(&fb.base, &tb), BLZ_PENDING);
    CHECK_EQ(poll_with(&fr.base, &tr), BLZ_PENDING);
    CHECK_EQ(poll_with(&fd.base, &td), BLZ_PENDING);
    blz_future_drop(&fd.base);
    blz_cancel_token_cancel(&a);
    CHECK_EQ(test_wakes(&ta), 1);
    CHECK_EQ(test_wakes(&tb), 0);
    CHECK_EQ(test_wakes(&tr), 0);
    CHECK_EQ(poll_with(&fa.base, &ta), BLZ_READY);
    CHECK_EQ(poll_with(&fb.base, &tb), BLZ_PENDING);
    blz_cancel_token_cancel(&root);
    CHECK_EQ(test_wakes(&tb), 1);
    CHECK_EQ(test_wakes(&tr), 1);
    CHECK_EQ(test_wakes(&td), 0);
    CHECK_EQ(poll_with(&fb.base, &tb), BLZ_READY);
    CHECK_EQ(poll_with(&fr.base, &tr), BLZ_READY);
    CHECK_EQ(fr.base.result, 0);
    CHECK_NO_WAKER_REFS(&ta);
    CHECK_NO_WAKER_REFS(&tb);
    CHECK_NO_WAKER_REFS(&tr);
    CHECK_NO_WAKER_REFS(&td);
}

BLZ_TEST(cancel_token_many_waiters_batch)
{
    /* More waiters than one wake batch holds. */
    blz_cancel_token t = BLZ_CANCEL_TOKEN_INIT;
    enum { N = 100 };
    static blz_cancel_future f[N];
    static test_waker tw[N];
    for (int i = 0; i < N; i++) {
        test_waker_init(&tw[i]);
        blz_cancel_token_wait_fut(&t, &f[i]);
        CHECK_EQ(poll_with(&f[i].base, &tw[i]), BLZ_PENDING);
    }
    blz_cancel_token_cancel(&t);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(test_wakes(&tw[i]), 1);
        CHECK_EQ(poll_with(&f[i].base, &tw[i]), BLZ_READY);
        CHECK_NO_WAKER_REFS(&tw[i]);
    }
}

static blz_cancel_token thread_token = BLZ_CANCEL_TOKEN_INIT;
static blz_cancel_token thread_child;

static void *
waiter_body(void *arg)
{
    (void) arg;
    CHECK_OK(blz_cancel_token_wait(&thread_child));
    return NULL;
}

BLZ_TEST(cancel_token_thread_waits)
{
    CHECK_OK(blz_cancel_token_child_init(&thread_child, &thread_token));
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(pthread_create(&t[i], NULL, waiter_body, NULL), 0);
    }
    blz_cancel_token_cancel(&thread_token);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(pthread_join(t[i], NULL), 0);
    }
}
