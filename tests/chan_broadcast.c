/*
 * Broadcast: every receiver sees every message in order; lag reports how
 * many were missed (-EOVERFLOW) and resumes at the oldest kept; late
 * subscribe; unsubscribe while a receive is blocked; close; capacity 0 is
 * an error; and, across threads, no torn or reordered message while a fast
 * sender laps slow receivers.
 */
#include "chan_util.h"

/* blz-test: timeout=120 */

BLZ_TEST(broadcast_errors_and_capacity)
{
    blz_broadcast b;
    blz_broadcast_rx rx;
    CHECK_EQ(blz_broadcast_init(NULL, 8, 4), -EINVAL);
    CHECK_EQ(blz_broadcast_init(&b, 8, 0), -EINVAL); /* not a division by zero */
    CHECK_EQ(blz_broadcast_init(&b, 0, 4), -EINVAL);
    CHECK_EQ(blz_broadcast_init(&b, 8, SIZE_MAX / 2), -EINVAL);
    CHECK_OK(blz_broadcast_init(&b, sizeof(int), 3));
    CHECK_EQ(blz_broadcast_capacity(&b), 4);
    CHECK_EQ(blz_broadcast_subscribe(NULL, &rx), -EINVAL);
    CHECK_EQ(blz_broadcast_subscribe(&b, NULL), -EINVAL);
    int v = 1;
    CHECK_EQ(blz_broadcast_send(NULL, &v), -EINVAL);
    CHECK_EQ(blz_broadcast_send(&b, NULL), -EINVAL);
    CHECK_EQ(blz_broadcast_try_recv(NULL, &v), -EINVAL);
    CHECK_EQ(blz_broadcast_recv(NULL, &v), -EINVAL);
    CHECK_EQ(blz_broadcast_send(&b, &v), 0); /* no receivers: 0, not an error */
    CHECK_OK(blz_broadcast_subscribe(&b, &rx));
    CHECK_EQ(blz_broadcast_try_recv(&rx, NULL), -EINVAL);
    CHECK_EQ(blz_broadcast_try_recv(&rx, &v), -EAGAIN); /* the earlier message is not ours */
    blz_broadcast_unsubscribe(NULL);
    blz_broadcast_close(NULL);
    blz_broadcast_deinit(NULL);
    CHECK_EQ(blz_broadcast_rx_missed(NULL), 0);
    blz_broadcast_unsubscribe(&rx);
    blz_broadcast_deinit(&b);
}

BLZ_TEST(broadcast_everyone_sees_everything)
{
    blz_broadcast b;
    CHECK_OK(blz_broadcast_init(&b, sizeof(uint64_t), 64));
    blz_broadcast_rx rx[4];
    for (int i = 0; i < 4; i++) {
        CHECK_OK(blz_broadcast_subscribe(&b, &rx[i]));
    }
    CHECK_EQ(blz_broadcast_receivers(&b), 4);
    for (uint64_t m = 0; m < 50; m++) {
        CHECK_EQ(blz_broadcast_send(&b, &m), 4);
    }
    for (int i = 0; i < 4; i++) {
        for (uint64_t m = 0; m < 50; m++) {
            uint64_t v;
            CHECK_OK(blz_broadcast_try_recv(&rx[i], &v));
            CHECK_EQ(v, m);
        }
        uint64_t v;
        CHECK_EQ(blz_broadcast_try_recv(&rx[i], &v), -EAGAIN);
    }
    for (int i = 0; i < 4; i++) {
        blz_broadcast_unsubscribe(&rx[i]);
        blz_broadcast_unsubscribe(&rx[i]); /* idempotent */
    }
    CHECK_EQ(blz_broadcast_receivers(&b), 0);
    blz_broadcast_deinit(&b);
}

BLZ_TEST(broadcast_lag_reports_missed_and_resumes_at_oldest)
{
    blz_broadcast b;
    CHECK_OK(blz_broadcast_init(&b, sizeof(int), 4));
    blz_broadcast_rx slow, fast;
    CHECK_OK(blz_broadcast_subscribe(&b, &slow));
    CHECK_OK(blz_broadcast_subscribe(&b, &fast));
    for (int m = 0; m < 10; m++) {
        CHECK_EQ(blz_broadcast_send(&b, &m), 2);
        int v;
        CHECK_OK(blz_broadcast_try_recv(&fast, &v)); /* keeps up */
        CHECK_EQ(v, m);
    }
    int v;
    CHECK_EQ(blz_broadcast_try_recv(&slow, &v), -EOVERFLOW);
    CHECK_EQ(blz_broadcast_rx_missed(&slow), 6); /* 0..5 gone, 6..9 kept */
    for (int m = 6; m < 10; m++) {
        CHECK_OK(blz_broadcast_try_recv(&slow, &v));
        CHECK_EQ(v, m);
    }
    CHECK_EQ(blz_broadcast_try_recv(&slow, &v), -EAGAIN);
    /* The future tier reports lag the same way. */
    for (int m = 10; m < 20; m++) {
        CHECK_EQ(blz_broadcast_send(&b, &m), 2);
    }
    CHECK_EQ(blz_broadcast_recv(&slow, &v), -EOVERFLOW);
    CHECK_EQ(blz_broadcast_rx_missed(&slow), 6);
    CHECK_OK(blz_broadcast_recv(&slow, &v));
    CHECK_EQ(v, 16);
    blz_broadcast_unsubscribe(&slow);
    blz_broadcast_unsubscribe(&fast);
    blz_broadcast_deinit(&b);
}

BLZ_TEST(broadcast_late_subscriber)
{
    blz_broadcast b;
    CHECK_OK(blz_broadcast_init(&b, sizeof(int), 8));
    blz_broadcast_rx early, late;
    CHECK_OK(blz_broadcast_subscribe(&b, &early));
    for (int m = 0; m < 3; m++) {
        CHECK_EQ(blz_broadcast_send(&b, &m), 1);
    }
    CHECK_OK(blz_broadcast_subscribe(&b, &late));
    int m = 3;
    CHECK_EQ(blz_broadcast_send(&b, &m), 2);
    int v;
    CHECK_OK(blz_broadcast_try_recv(&late, &v));
    CHECK_EQ(v, 3); /* only what was sent after subscribing */
    CHECK_EQ(blz_broadcast_try_recv(&late, &v), -EAGAIN);
    for (int k = 0; k < 4; k++) {
        CHECK_OK(blz_broadcast_try_recv(&early, &v));
        CHECK_EQ(v, k);
    }
    blz_broadcast_unsubscribe(&early);
    blz_broadcast_unsubscribe(&late);
    blz_broadcast_deinit(&b);
}

BLZ_TEST(broadcast_wait_unsubscribe_close)
{
    blz_broadcast b;
    CHECK_OK(blz_broadcast_init(&b, sizeof(int), 4));
    blz_broadcast_rx r1, r2, r3;
    CHECK_OK(blz_broadcast_subscribe(&b, &r1));
    CHECK_OK(blz_broadcast_subscribe(&b, &r2));
    CHECK_OK(blz_broadcast_subscribe(&b, &r3));
    int o1 = -1, o2 = -1, o3 = -1;
    blz_broadcast_recv_future f1, f2, f3;
    test_waker t1, t2, t3;
    test_waker_init(&t1);
    test_waker_init(&t2);
    test_waker_init(&t3);
    blz_broadcast_recv_fut(&r1, &o1, &f1);
    blz_broadcast_recv_fut(&r2, &o2, &f2);
    blz_broadcast_recv_fut(&r3, &o3, &f3);
    CHECK_EQ(poll_with(&f1.base, &t1), BLZ_PENDING);
    CHECK_EQ(poll_with(&f2.base, &t2), BLZ_PENDING);
    CHECK_EQ(poll_with(&f3.base, &t3), BLZ_PENDING);
    /* Unsubscribe while blocked: only that receive completes, with -EPIPE. */
    blz_broadcast_unsubscribe(&r2);
    CHECK_EQ(test_wakes(&t1), 0);
    CHECK_EQ(test_wakes(&t2), 1);
    CHECK_EQ(poll_with(&f2.base, &t2), BLZ_READY);
    CHECK_EQ(f2.base.result, -EPIPE);
    CHECK_EQ(blz_broadcast_receivers(&b), 2);
    int m = 42;
    CHECK_EQ(blz_broadcast_send(&b, &m), 2);
    CHECK_EQ(test_wakes(&t1), 1);
    CHECK_EQ(test_wakes(&t3), 1);
    CHECK_EQ(poll_with(&f1.base, &t1), BLZ_READY);
    CHECK_EQ(f1.base.result, 0);
    CHECK_EQ(o1, 42);
    /* f3 was woken but is dropped: fine, nothing is owed to anyone. */
    blz_future_drop(&f3.base);
    CHECK_OK(blz_broadcast_try_recv(&r3, &o3));
    CHECK_EQ(o3, 42);
    /* Close: a pending receive wakes with -EPIPE; unread messages drain first. */
    blz_broadcast_recv_fut(&r1, &o1, &f1);
    CHECK_EQ(poll_with(&f1.base, &t1), BLZ_PENDING);
    m = 43;
    CHECK_EQ(blz_broadcast_send(&b, &m), 2);
    CHECK_EQ(poll_with(&f1.base, &t1), BLZ_READY);
    blz_broadcast_recv_fut(&r1, &o1, &f1);
    CHECK_EQ(poll_with(&f1.base, &t1), BLZ_PENDING);
    blz_broadcast_close(&b);
    blz_broadcast_close(&b);
    CHECK_EQ(poll_with(&f1.base, &t1), BLZ_READY);
    CHECK_EQ(f1.base.result, -EPIPE);
    CHECK_EQ(blz_broadcast_send(&b, &m), -EPIPE);
    blz_broadcast_rx r4;
    CHECK_EQ(blz_broadcast_subscribe(&b, &r4), -EPIPE);
    CHECK_OK(blz_broadcast_try_recv(&r3, &o3)); /* r3 had not read 43 yet */
    CHECK_EQ(o3, 43);
    CHECK_EQ(blz_broadcast_try_recv(&r3, &o3), -EPIPE);
    CHECK_EQ(blz_broadcast_try_recv(&r2, &o2), -EPIPE); /* unsubscribed */
    CHECK_NO_WAKER_REFS(&t1);
    CHECK_NO_WAKER_REFS(&t2);
    CHECK_NO_WAKER_REFS(&t3);
    blz_broadcast_unsubscribe(&r1);
    blz_broadcast_unsubscribe(&r3);
    blz_broadcast_deinit(&b);
}

BLZ_TEST(broadcast_allocates_once)
{
    blz_test_counting_allocator_install();
    long before = blz_test_alloc_count();
    blz_broadcast b;
    CHECK_OK(blz_broadcast_init(&b, sizeof(uint64_t), 16));
    blz_broadcast_rx rx;
    CHECK_OK(blz_broadcast_subscribe(&b, &rx));
    for (uint64_t i = 0; i < 1000; i++) {
        CHECK_OK(blz_broadcast_send(&b, &i) >= 0 ? 0 : -1);
        uint64_t v;
        CHECK_OK(blz_broadcast_try_recv(&rx, &v));
    }
    CHECK_EQ(blz_test_alloc_count() - before, 1);
    blz_broadcast_unsubscribe(&rx);
    blz_broadcast_deinit(&b);
    CHECK_EQ(blz_test_alloc_live(), 0);
}

/* ---- concurrency: a fast sender lapping receivers on other threads ------- */

typedef struct msg {
    uint64_t n;
    uint64_t check[5]; /* every word derived from n: a torn copy shows */
} msg;

static void
msg_fill(msg *m, uint64_t n)
{
    m->n = n;
    for (int i = 0; i < 5; i++) {
        m->check[i] = n * 0x9E3779B97F4A7C15ull + (uint64_t) i;
    }
}

static bool
msg_whole(const msg *m)
{
    for (int i = 0; i < 5; i++) {
        if (m->check[i] != m->n * 0x9E3779B97F4A7C15ull + (uint64_t) i) {
            return false;
        }
    }
    return true;
}

#define BC_MSGS CHAN_SCALE(200000, 20000)

static blz_broadcast bc;

typedef struct bc_recv_arg {
    blz_broadcast_rx rx;
    bool lossless; /* capacity holds everything: expect no lag */
    uint64_t got, missed;
} bc_recv_arg;

static void *
bc_receiver(void *arg)
{
    bc_recv_arg *a = arg;
    uint64_t expect = 0;
    for (;;) {
        msg m;
        int r = blz_broadcast_recv(&a->rx, &m);
        if (r == -EPIPE) {
            break;
        }
        if (r == -EOVERFLOW) {
            CHECK(!a->lossless);
            uint64_t k = blz_broadcast_rx_missed(&a->rx);
            CHECK_GT(k, 0);
            a->missed += k;
            expect += k;
            continue;
        }
        CHECK_OK(r);
        CHECK(msg_whole(&m));
        CHECK_EQ(m.n, expect); /* in order, nothing skipped silently */
        expect++;
        a->got++;
    }
    CHECK_EQ(a->got + a->missed, (uint64_t) BC_MSGS);
    return NULL;
}

static void
bc_run(size_t cap, bool lossless)
{
    CHECK_OK(blz_broadcast_init(&bc, sizeof(msg), cap));
    bc_recv_arg args[3];
    memset(args, 0, sizeof args);
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        CHECK_OK(blz_broadcast_subscribe(&bc, &args[i].rx));
        args[i].lossless = lossless;
        CHECK_EQ(pthread_create(&th[i], NULL, bc_receiver, &args[i]), 0);
    }
    for (uint64_t n = 0; n < BC_MSGS; n++) {
        msg m;
        msg_fill(&m, n);
        CHECK_EQ(blz_broadcast_send(&bc, &m), 3);
    }
    blz_broadcast_close(&bc);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(pthread_join(th[i], NULL), 0);
        blz_broadcast_unsubscribe(&args[i].rx);
    }
    blz_broadcast_deinit(&bc);
}

BLZ_TEST(broadcast_threads_lossless)
{
    bc_run((size_t) BC_MSGS, true);
}

BLZ_TEST(broadcast_threads_lapped_no_torn_reads)
{
    bc_run(8, false);
    bc_run(1, false);
}

/* ---- in a runtime: fiber and stackless receivers, unsubscribe while blocked --- */

typedef struct bc_task {
    blz_future base;
    blz_broadcast_rx *rx;
    msg m;
    uint64_t got;
    blz_broadcast_recv_future recv;
} bc_task;

static blz_poll
bc_task_poll(blz_future *self, blz_context *cx)
{
    bc_task *t = (bc_task *) self;
    BLZ_ASYNC_BEGIN(self);
    for (;;) {
        blz_broadcast_recv_fut(t->rx, &t->m, &t->recv);
        BLZ_AWAIT(self, cx, &t->recv.base);
        if (t->recv.base.result == -EPIPE) {
            break;
        }
        CHECK_OK(t->recv.base.result);
        CHECK(msg_whole(&t->m));
        CHECK_EQ(t->m.n, t->got);
        t->got++;
    }
    BLZ_ASYNC_RETURN(self, 0);
    BLZ_ASYNC_END(self);
}

static void
bc_task_drop(blz_future *self)
{
    blz_future_drop(&((bc_task *) self)->recv.base);
}

static const blz_future_vtable bc_task_vt = {bc_task_poll, bc_task_drop};

static void *
bc_fiber(void *arg)
{
    blz_broadcast_rx *rx = arg;
    uint64_t got = 0;
    for (;;) {
        msg m;
        int r = blz_broadcast_recv(rx, &m);
        if (r == -EPIPE) {
            return (void *) (uintptr_t) got;
        }
        CHECK_OK(r);
        CHECK_EQ(m.n, got);
        got++;
    }
}

static void *
bc_rt_main(void *arg)
{
    (void) arg;
    CHECK_OK(blz_broadcast_init(&bc, sizeof(msg), 1024));
    static blz_broadcast_rx rx[4];
    blz_join *j[4];
    for (int i = 0; i < 4; i++) {
        CHECK_OK(blz_broadcast_subscribe(&bc, &rx[i]));
        if (i % 2) {
            bc_task t;
            memset(&t, 0, sizeof t);
            blz_future_init(&t.base, &bc_task_vt);
            t.rx = &rx[i];
            CHECK_OK(blz_spawn_future(&t.base, sizeof t, &j[i]));
        } else {
            CHECK_OK(blz_spawn(bc_fiber, &rx[i], &j[i]));
        }
    }
    for (uint64_t n = 0; n < 1000; n++) {
        msg m;
        msg_fill(&m, n);
        CHECK_GE(blz_broadcast_send(&bc, &m), 3);
        if (n % 10 == 0) {
            blz_yield();
        }
        if (n == 500) {
            blz_broadcast_unsubscribe(&rx[0]); /* blocked or not: it ends with -EPIPE */
        }
    }
    blz_broadcast_close(&bc);
    void *res;
    CHECK_OK(blz_join_wait(j[0], &res));
    CHECK_LE((uintptr_t) res, 501);
    for (int i = 1; i < 4; i++) {
        CHECK_OK(blz_join_wait(j[i], &res));
        if (i % 2 == 0) {
            CHECK_EQ((uintptr_t) res, 1000);
        }
    }
    for (int i = 0; i < 4; i++) {
        blz_broadcast_unsubscribe(&rx[i]);
    }
    blz_broadcast_deinit(&bc);
    return NULL;
}

BLZ_TEST(broadcast_in_runtime)
{
    blz_runtime *rt = chan_new_rt(2);
    CHECK_OK(blz_runtime_block_on(rt, bc_rt_main, NULL, NULL));
    blz_runtime_free(rt);
}
