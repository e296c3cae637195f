/*
 * Unbounded MPSC channel: FIFO across segments, close semantics, the waiting
 * receiver (future by hand, fiber, stackless, thread), segment recycling
 * (steady traffic allocates nothing), allocation failure, and many senders
 * racing one receiver with every message received exactly once.
 */
#include "chan_util.h"

/* blz-test: timeout=120 */

BLZ_TEST(uchan_errors)
{
    blz_uchan ch;
    CHECK_EQ(blz_uchan_init(NULL, 8), -EINVAL);
    CHECK_EQ(blz_uchan_init(&ch, 0), -EINVAL);
    CHECK_EQ(blz_uchan_init(&ch, SIZE_MAX / 4), -EINVAL);
    blz_test_counting_allocator_install();
    blz_test_alloc_fail_after(0);
    CHECK_EQ(blz_uchan_init(&ch, 8), -ENOMEM);
    blz_test_alloc_fail_after(-1);
    CHECK_OK(blz_uchan_init(&ch, sizeof(int)));
    int v = 1;
    CHECK_EQ(blz_uchan_send(NULL, &v), -EINVAL);
    CHECK_EQ(blz_uchan_send(&ch, NULL), -EINVAL);
    CHECK_EQ(blz_uchan_try_recv(&ch, NULL), -EINVAL);
    CHECK_EQ(blz_uchan_recv(NULL, &v), -EINVAL);
    blz_uchan_recv_future f;
    test_waker tw;
    test_waker_init(&tw);
    blz_uchan_recv_fut(&ch, NULL, &f);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_READY);
    CHECK_EQ(f.base.result, -EINVAL);
    /* A send that needs a new segment and cannot get one sends nothing. */
    for (int i = 0; i < 32; i++) {
        CHECK_OK(blz_uchan_send(&ch, &i));
    }
    blz_test_alloc_fail_after(0);
    CHECK_EQ(blz_uchan_send(&ch, &v), -ENOMEM);
    blz_test_alloc_fail_after(-1);
    CHECK_EQ(blz_uchan_len(&ch), 32);
    for (int i = 0; i < 32; i++) {
        CHECK_OK(blz_uchan_try_recv(&ch, &v));
        CHECK_EQ(v, i);
    }
    CHECK_EQ(blz_uchan_try_recv(&ch, &v), -EAGAIN);
    blz_uchan_deinit(&ch);
    blz_uchan_deinit(NULL);
    blz_uchan_close(NULL);
    CHECK_EQ(blz_test_alloc_live(), 0);
}

BLZ_TEST(uchan_fifo_across_segments_and_close)
{
    blz_uchan ch;
    CHECK_OK(blz_uchan_init(&ch, sizeof(uint32_t)));
    for (uint32_t i = 0; i < 1000; i++) {
        CHECK_OK(blz_uchan_send(&ch, &i));
    }
    CHECK_EQ(blz_uchan_len(&ch), 1000);
    for (uint32_t i = 0; i < 500; i++) {
        uint32_t v;
        CHECK_OK(blz_uchan_try_recv(&ch, &v));
        CHECK_EQ(v, i);
    }
    blz_uchan_close(&ch);
    blz_uchan_close(&ch);
    uint32_t x = 7;
    CHECK_EQ(blz_uchan_send(&ch, &x), -EPIPE);
    for (uint32_t i = 500; i < 1000; i++) {
        uint32_t v;
        CHECK_OK(blz_uchan_recv(&ch, &v));
        CHECK_EQ(v, i);
    }
    uint32_t v;
    CHECK_EQ(blz_uchan_try_recv(&ch, &v), -EPIPE);
    CHECK_EQ(blz_uchan_recv(&ch, &v), -EPIPE);
    blz_uchan_deinit(&ch);
}

BLZ_TEST(uchan_recv_future_by_hand)
{
    blz_uchan ch;
    CHECK_OK(blz_uchan_init(&ch, sizeof(int)));
    int out = -1, v = 5;
    blz_uchan_recv_future f;
    test_waker tw;
    test_waker_init(&tw);
    blz_uchan_recv_fut(&ch, &out, &f);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_PENDING);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_PENDING);
    CHECK_OK(blz_uchan_send(&ch, &v));
    CHECK_EQ(test_wakes(&tw), 1);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_READY);
    CHECK_EQ(out, 5);
    CHECK_NO_WAKER_REFS(&tw);
    /* Dropped while waiting: consumes nothing. */
    blz_uchan_recv_fut(&ch, &out, &f);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_PENDING);
    blz_future_drop(&f.base);
    CHECK_NO_WAKER_REFS(&tw);
    v = 6;
    CHECK_OK(blz_uchan_send(&ch, &v));
    CHECK_EQ(out, 5);
    CHECK_OK(blz_uchan_try_recv(&ch, &out));
    CHECK_EQ(out, 6);
    /* Close wakes a waiting receiver. */
    blz_uchan_recv_fut(&ch, &out, &f);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_PENDING);
    int before = test_wakes(&tw);
    blz_uchan_close(&ch);
    CHECK_EQ(test_wakes(&tw), before + 1);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_READY);
    CHECK_EQ(f.base.result, -EPIPE);
    CHECK_NO_WAKER_REFS(&tw);
    blz_uchan_deinit(&ch);
}

BLZ_TEST(uchan_steady_traffic_allocates_nothing)
{
    blz_test_counting_allocator_install();
    blz_uchan ch;
    CHECK_OK(blz_uchan_init(&ch, sizeof(uint64_t)));
    /* Warm up: the second segment becomes the spare. */
    for (uint64_t i = 0; i < 100; i++) {
        CHECK_OK(blz_uchan_send(&ch, &i));
        uint64_t v;
        CHECK_OK(blz_uchan_try_recv(&ch, &v));
    }
    long before = blz_test_alloc_count();
    for (uint64_t i = 0; i < 100000; i++) {
        CHECK_OK(blz_uchan_send(&ch, &i));
        if (i % 3 == 0) {
            CHECK_OK(blz_uchan_send(&ch, &i));
        }
        uint64_t v;
        CHECK_OK(blz_uchan_try_recv(&ch, &v));
        if (i % 3 == 0) {
            CHECK_OK(blz_uchan_try_recv(&ch, &v));
        }
    }
    CHECK_EQ(blz_test_alloc_count() - before, 0);
    blz_uchan_deinit(&ch);
    CHECK_EQ(blz_test_alloc_live(), 0);
}

/* A channel whose init failed for memory is not a channel: its calls say
 * -EINVAL (as before init or after deinit) instead of following its missing
 * segments. */
BLZ_TEST(uchan_failed_init_is_unusable_not_a_crash)
{
    blz_test_counting_allocator_install();
    blz_uchan ch;
    memset(&ch, 0, sizeof ch);
    blz_test_alloc_fail_after(0);
    CHECK_EQ(blz_uchan_init(&ch, sizeof(int)), -ENOMEM);
    blz_test_alloc_fail_after(-1);
    int v = 1;
    CHECK_EQ(blz_uchan_send(&ch, &v), -EINVAL);
    CHECK_EQ(blz_uchan_try_recv(&ch, &v), -EINVAL);
    CHECK_EQ(blz_uchan_recv(&ch, &v), -EINVAL);
    blz_uchan_close(&ch);
    blz_uchan_deinit(&ch);
    CHECK_EQ(blz_test_alloc_live(), 0);
}

/* Deinit with items left across many segments (and a spare kept) frees them all. */
BLZ_TEST(uchan_deinit_frees_what_is_left)
{
    blz_test_counting_allocator_install();
    blz_uchan ch;
    unsigned char item[24];
    memset(item, 0x5A, sizeof item);
    CHECK_OK(blz_uchan_init(&ch, sizeof item));
    for (int i = 0; i < 1000; i++) {
        CHECK_OK(blz_uchan_send(&ch, item));
    }
    for (int i = 0; i < 500; i++) { /* the receiver passes segments: one becomes the spare */
        CHECK_OK(blz_uchan_try_recv(&ch, item));
    }
    CHECK_EQ(blz_uchan_len(&ch), 500);
    CHECK_GT(blz_test_alloc_live(), 2);
    blz_uchan_deinit(&ch);
    CHECK_EQ(blz_test_alloc_live(), 0);
}

/* ---- many senders, one receiver ------------------------------------------- */

#define US_SENDERS 4
#define US_PER     CHAN_SCALE(50000, 5000)

static blz_uchan uch;
static atomic_uchar *us_seen;

static void *
us_sender(void *arg)
{
    uint64_t src = (uint64_t) (uintptr_t) arg;
    for (uint64_t i = 0; i < US_PER; i++) {
        uint64_t v = src * US_PER + i;
        CHECK_OK(blz_uchan_send(&uch, &v));
        if (i % 1024 == 0) {
            blz_yield(); /* no-op on a plain thread */
        }
    }
    return NULL;
}

static void
us_receive_all(void)
{
    uint64_t last[US_SENDERS + 1];
    memset(last, 0xff, sizeof last);
    uint64_t n = 0;
    for (;;) {
        uint64_t v;
        int r = blz_uchan_recv(&uch, &v);
        if (r == -EPIPE) {
            break;
        }
        CHECK_OK(r);
        CHECK_LT(v, (uint64_t) (US_SENDERS + 1) * US_PER);
        CHECK_EQ(atomic_fetch_add(&us_seen[v], 1), 0);
        uint64_t src = v / US_PER;
        CHECK(last[src] == UINT64_MAX || last[src] < v); /* per-sender FIFO */
        last[src] = v;
        n++;
    }
    CHECK_EQ(n, (uint64_t) (US_SENDERS + 1) * US_PER);
}

static void *
us_receiver_fiber(void *arg)
{
    (void) arg;
    us_receive_all();
    return NULL;
}

static void *
us_main(void *arg)
{
    (void) arg;
    blz_join *s[US_SENDERS], *r;
    CHECK_OK(blz_spawn(us_receiver_fiber, NULL, &r));
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, us_sender, (void *) (uintptr_t) US_SENDERS), 0);
    for (int i = 0; i < US_SENDERS; i++) {
        CHECK_OK(blz_spawn(us_sender, (void *) (uintptr_t) i, &s[i]));
    }
    for (int i = 0; i < US_SENDERS; i++) {
        CHECK_OK(blz_join_wait(s[i], NULL));
    }
    CHECK_EQ(pthread_join(th, NULL), 0);
    blz_uchan_close(&uch);
    CHECK_OK(blz_join_wait(r, NULL));
    return NULL;
}

/* Runs every sender on its own thread, then closes. */
static void *
us_send_then_close(void *arg)
{
    (void) arg;
    pthread_t th[US_SENDERS + 1];
    for (int i = 0; i <= US_SENDERS; i++) {
        CHECK_EQ(pthread_create(&th[i], NULL, us_sender, (void *) (uintptr_t) i), 0);
    }
    for (int i = 0; i <= US_SENDERS; i++) {
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    }
    blz_uchan_close(&uch);
    return NULL;
}

BLZ_TEST(uchan_many_senders_one_receiver)
{
    us_seen = calloc((size_t) (US_SENDERS + 1) * US_PER, 1);
    blz_runtime *rt = chan_new_rt(3);
    CHECK_OK(blz_uchan_init(&uch, sizeof(uint64_t)));
    CHECK_OK(blz_runtime_block_on(rt, us_main, NULL, NULL));
    CHECK_EQ(blz_uchan_len(&uch), 0);
    blz_uchan_deinit(&uch);
    blz_runtime_free(rt);

    /* And with the receiver on a plain thread, parked between messages. */
    memset(us_seen, 0, (size_t) (US_SENDERS + 1) * US_PER);
    CHECK_OK(blz_uchan_init(&uch, sizeof(uint64_t)));
    pthread_t closer;
    CHECK_EQ(pthread_create(&closer, NULL, us_send_then_close, NULL), 0);
    us_receive_all();
    CHECK_EQ(pthread_join(closer, NULL), 0);
    blz_uchan_deinit(&uch);
    free(us_seen);
}

/* ---- a stackless receiver ------------------------------------------------- */

typedef struct urecv_task {
    blz_future base;
    uint64_t v, n, sum;
    blz_uchan_recv_future recv;
} urecv_task;

static blz_poll
urecv_task_poll(blz_future *self, blz_context *cx)
{
    urecv_task *t = (urecv_task *) self;
    BLZ_ASYNC_BEGIN(self);
    for (;;) {
        blz_uchan_recv_fut(&uch, &t->v, &t->recv);
        BLZ_AWAIT(self, cx, &t->recv.base);
        if (t->recv.base.result != 0) {
            break;
        }
        t->n++;
        t->sum += t->v;
    }
    BLZ_ASYNC_RETURN(self, (int) (t->n == 10000 && t->sum == 10000ull * 9999 / 2));
    BLZ_ASYNC_END(self);
}

static void
urecv_task_drop(blz_future *self)
{
    blz_future_drop(&((urecv_task *) self)->recv.base);
}

static const blz_future_vtable urecv_task_vt = {urecv_task_poll, urecv_task_drop};

static void *
ustack_main(void *arg)
{
    (void) arg;
    urecv_task t;
    memset(&t, 0, sizeof t);
    blz_future_init(&t.base, &urecv_task_vt);
    blz_join *j;
    CHECK_OK(blz_spawn_future(&t.base, sizeof t, &j));
    for (uint64_t i = 0; i < 10000; i++) {
        CHECK_OK(blz_uchan_send(&uch, &i));
        if (i % 100 == 0) {
            blz_yield();
        }
    }
    blz_uchan_close(&uch);
    void *res;
    CHECK_OK(blz_join_wait(j, &res));
    CHECK_EQ((intptr_t) res, 1);
    return NULL;
}

BLZ_TEST(uchan_stackless_receiver)
{
    blz_runtime *rt = chan_new_rt(2);
    CHECK_OK(blz_uchan_init(&uch, sizeof(uint64_t)));
    CHECK_OK(blz_runtime_block_on(rt, ustack_main, NULL, NULL));
    blz_uchan_deinit(&uch);
    blz_runtime_free(rt);
}
