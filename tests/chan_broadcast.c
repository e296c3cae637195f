/*
 * Broadcast: every receiver sees every message in order; lag reports how
 * many were missed (-EOVERFLOW) and resumes at the oldest kept; late
 * subscribe; unsubscribe while a receive is blocked; close; capacity 0 is
 * an error; and, across threads, no torn or reordered message while a fast
 * sender laps slow receivers.
 */
#include "chan_util.h"

#include <sched.h>

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

/* Lag at its edges: exactly the capacity behind is no lag; one more is one
 * missed; far behind reports the count and resumes at the oldest kept, in
 * both tiers, and after a close too (drain, then -EPIPE). */
BLZ_TEST(broadcast_lag_boundaries)
{
    blz_broadcast b;
    CHECK_OK(blz_broadcast_init(&b, sizeof(int), 4));
    blz_broadcast_rx rx;
    CHECK_OK(blz_broadcast_subscribe(&b, &rx));
    int v;
    for (int m = 0; m < 4; m++) {
        CHECK_EQ(blz_broadcast_send(&b, &m), 1);
    }
    for (int m = 0; m < 4; m++) { /* exactly the capacity behind: all kept */
        CHECK_OK(blz_broadcast_try_recv(&rx, &v));
        CHECK_EQ(v, m);
    }
    CHECK_EQ(blz_broadcast_try_recv(&rx, &v), -EAGAIN);
    for (int m = 4; m < 9; m++) {
        CHECK_EQ(blz_broadcast_send(&b, &m), 1);
    }
    CHECK_EQ(blz_broadcast_try_recv(&rx, &v), -EOVERFLOW); /* one more: 4 is gone */
    CHECK_EQ(blz_broadcast_rx_missed(&rx), 1);
    for (int m = 5; m < 9; m++) {
        CHECK_OK(blz_broadcast_try_recv(&rx, &v));
        CHECK_EQ(v, m);
    }
    for (int m = 9; m < 109; m++) {
        CHECK_EQ(blz_broadcast_send(&b, &m), 1);
    }
    blz_broadcast_recv_future f;
    test_waker tw;
    test_waker_init(&tw);
    blz_broadcast_recv_fut(&rx, &v, &f);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_READY);
    CHECK_EQ(f.base.result, -EOVERFLOW);
    CHECK_EQ(blz_broadcast_rx_missed(&rx), 96); /* 9..104 gone, 105..108 kept */
    for (int m = 105; m < 109; m++) {
        CHECK_OK(blz_broadcast_try_recv(&rx, &v));
        CHECK_EQ(v, m);
    }
    for (int m = 109; m < 120; m++) {
        CHECK_EQ(blz_broadcast_send(&b, &m), 1);
    }
    blz_broadcast_close(&b);
    CHECK_EQ(blz_broadcast_try_recv(&rx, &v), -EOVERFLOW);
    CHECK_EQ(blz_broadcast_rx_missed(&rx), 7);
    for (int m = 116; m < 120; m++) {
        CHECK_OK(blz_broadcast_try_recv(&rx, &v));
        CHECK_EQ(v, m);
    }
    CHECK_EQ(blz_broadcast_try_recv(&rx, &v), -EPIPE);
    CHECK_NO_WAKER_REFS(&tw);
    blz_broadcast_unsubscribe(&rx);
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

/* ---- receivers coming and going while senders run -------------------------- */

#define CHURN_SENDERS CHAN_SCALE(2, 2)
#define CHURN_RECVS   3
#define CHURN_PER     CHAN_SCALE(100000, 10000)
#define CHURN_SUBS    CHAN_SCALE(300, 50) /* subscriptions each receiver must make */
#define CHURN_KILLS   CHAN_SCALE(20, 5)   /* and how many of them end from outside */

typedef struct churn_msg {
    uint64_t sender, seq, check;
} churn_msg;

/* A receiver's subscription; `armed` is the hand-over with the outside
 * unsubscriber: 1 subscribed, 2 being unsubscribed from outside, 3 done, 0 not
 * subscribed (only its owner resubscribes, once the outsider is done with it). */
typedef struct churn_rx {
    blz_broadcast_rx rx;
    atomic_int armed;
    atomic_ulong subs, kills;
    uint64_t got;
} churn_rx;

static churn_rx churn[CHURN_RECVS];
static atomic_int churn_stop;

static uint64_t
churn_check(uint64_t sender, uint64_t seq)
{
    return (sender * 1000003u) ^ (seq * 0x9E3779B97F4A7C15ull);
}

/* Every receiver came and went often enough, from inside and from outside. */
static bool
churn_enough(void)
{
    for (int i = 0; i < CHURN_RECVS; i++) {
        if (atomic_load(&churn[i].subs) < CHURN_SUBS ||
            atomic_load(&churn[i].kills) < CHURN_KILLS) {
            return false;
        }
    }
    return true;
}

/* Sends at least CHURN_PER messages, and goes on until the receivers churned enough. */
static void *
churn_sender(void *arg)
{
    uint64_t id = (uint64_t) (uintptr_t) arg;
    for (uint64_t s = 0; s < CHURN_PER || !churn_enough(); s++) {
        churn_msg m = {id, s, churn_check(id, s)};
        CHECK_GE(blz_broadcast_send(&bc, &m), 0);
    }
    return NULL;
}

/* Subscribes, reads a few messages (blocking and not), leaves; again until closed.
 * Within a subscription each sender's messages come whole and in order. */
static void *
churn_receiver(void *arg)
{
    churn_rx *c = arg;
    for (;;) {
        int r = blz_broadcast_subscribe(&bc, &c->rx);
        if (r == -EPIPE) {
            return NULL;
        }
        CHECK_OK(r);
        unsigned long subs = atomic_fetch_add(&c->subs, 1) + 1;
        atomic_store(&c->armed, 1);
        uint64_t last[CHURN_SENDERS];
        memset(last, 0xff, sizeof last);
        int reads = (int) (subs % 50) + 1;
        for (int k = 0; k < reads; k++) {
            churn_msg m;
            r = (k & 1) ? blz_broadcast_recv(&c->rx, &m) : blz_broadcast_try_recv(&c->rx, &m);
            if (r == -EAGAIN) {
                continue;
            }
            if (r == -EOVERFLOW) {
                CHECK_GT(blz_broadcast_rx_missed(&c->rx), 0);
                memset(last, 0xff, sizeof last);
                continue;
            }
            if (r == -EPIPE) {
                break; /* closed and drained, or unsubscribed from outside */
            }
            CHECK_OK(r);
            CHECK_LT(m.sender, (uint64_t) CHURN_SENDERS);
            CHECK_EQ(m.check, churn_check(m.sender, m.seq));
            CHECK(last[m.sender] == UINT64_MAX || m.seq > last[m.sender]);
            last[m.sender] = m.seq;
            c->got++;
        }
        int armed = 1;
        if (!atomic_compare_exchange_strong(&c->armed, &armed, 0)) {
            while (atomic_load(&c->armed) != 3) {
                sched_yield();
            }
            atomic_store(&c->armed, 0);
            atomic_fetch_add(&c->kills, 1);
        }
        blz_broadcast_unsubscribe(&c->rx); /* a second time after the outsider's: nothing */
    }
}

/* Unsubscribes receivers from outside, blocked or not. */
static void *
churn_unsubscriber(void *arg)
{
    (void) arg;
    for (unsigned i = 0; !atomic_load(&churn_stop); i++) {
        churn_rx *c = &churn[i % CHURN_RECVS];
        int armed = 1;
        if (atomic_compare_exchange_strong(&c->armed, &armed, 2)) {
            blz_broadcast_unsubscribe(&c->rx);
            atomic_store(&c->armed, 3);
        }
        sched_yield();
    }
    return NULL;
}

BLZ_TEST(broadcast_threads_subscribe_unsubscribe_churn)
{
    for (int round = 0; round < 3; round++) {
        CHECK_OK(blz_broadcast_init(&bc, sizeof(churn_msg), 16));
        memset(churn, 0, sizeof churn);
        atomic_store(&churn_stop, 0);
        pthread_t s[CHURN_SENDERS], r[CHURN_RECVS], u;
        for (int i = 0; i < CHURN_RECVS; i++) {
            CHECK_EQ(pthread_create(&r[i], NULL, churn_receiver, &churn[i]), 0);
        }
        CHECK_EQ(pthread_create(&u, NULL, churn_unsubscriber, NULL), 0);
        for (int i = 0; i < CHURN_SENDERS; i++) {
            CHECK_EQ(pthread_create(&s[i], NULL, churn_sender, (void *) (uintptr_t) i), 0);
        }
        for (int i = 0; i < CHURN_SENDERS; i++) {
            CHECK_EQ(pthread_join(s[i], NULL), 0);
        }
        blz_broadcast_close(&bc); /* a receiver blocked in recv wakes with -EPIPE */
        for (int i = 0; i < CHURN_RECVS; i++) {
            CHECK_EQ(pthread_join(r[i], NULL), 0);
            CHECK_GT(churn[i].subs, 0);
        }
        atomic_store(&churn_stop, 1);
        CHECK_EQ(pthread_join(u, NULL), 0);
        CHECK_EQ(blz_broadcast_receivers(&bc), 0);
        blz_broadcast_deinit(&bc);
    }
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
    BLZ_ASYNC_RETURN(self, (int) t->got); /* the join's value: checked as the fibers' count */
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
        CHECK_EQ((uintptr_t) res, 1000); /* fiber and stackless alike: every message */
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
