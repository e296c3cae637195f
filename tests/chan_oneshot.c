/*
 * Oneshot: send once (-EEXIST after), the sender closing without a value
 * (-EPIPE), the receiver going away (the sender learns it), waiting by hand,
 * in fibers, stackless tasks and threads, caller storage for big values,
 * zero allocation, and a cross-thread race between send and receive many
 * times over; the sender waiting for the receiver to close (by hand, raced
 * by a thread, in a fiber).
 */
#include "chan_util.h"

/* blz-test: timeout=120 */

BLZ_TEST(oneshot_errors)
{
    blz_oneshot o;
    CHECK_EQ(blz_oneshot_init(NULL, 8), -EINVAL);
    CHECK_EQ(blz_oneshot_init(&o, 0), -EINVAL);
    CHECK_EQ(blz_oneshot_init(&o, BLZ_ONESHOT_INLINE + 1), -EINVAL);
    CHECK_EQ(blz_oneshot_init_buf(&o, NULL, 8), -EINVAL);
    char buf[4];
    CHECK_EQ(blz_oneshot_init_buf(&o, buf, 0), -EINVAL);
    CHECK_EQ(blz_oneshot_send(NULL, buf), -EINVAL);
    CHECK_EQ(blz_oneshot_try_recv(NULL, buf), -EINVAL);
    CHECK_EQ(blz_oneshot_recv(NULL, buf), -EINVAL);
    CHECK_OK(blz_oneshot_init(&o, 4));
    CHECK_EQ(blz_oneshot_send(&o, NULL), -EINVAL);
    CHECK_EQ(blz_oneshot_try_recv(&o, NULL), -EINVAL);
    blz_oneshot_close_tx(NULL);
    blz_oneshot_close_rx(NULL);
    CHECK(!blz_oneshot_rx_closed(NULL));
    blz_oneshot_recv_future f;
    test_waker tw;
    test_waker_init(&tw);
    blz_oneshot_recv_fut(&o, NULL, &f);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_READY);
    CHECK_EQ(f.base.result, -EINVAL);
}

BLZ_TEST(oneshot_send_once)
{
    blz_oneshot o;
    CHECK_OK(blz_oneshot_init(&o, sizeof(uint64_t)));
    uint64_t v = 11, out = 0;
    CHECK_EQ(blz_oneshot_try_recv(&o, &out), -EAGAIN);
    CHECK_OK(blz_oneshot_send(&o, &v));
    v = 12;
    CHECK_EQ(blz_oneshot_send(&o, &v), -EEXIST);
    blz_oneshot_close_tx(&o); /* no-op after a send */
    CHECK_OK(blz_oneshot_try_recv(&o, &out));
    CHECK_EQ(out, 11);
    CHECK_EQ(blz_oneshot_try_recv(&o, &out), -EPIPE); /* taken */
    CHECK_EQ(blz_oneshot_recv(&o, &out), -EPIPE);
}

BLZ_TEST(oneshot_sender_closes)
{
    blz_oneshot o;
    CHECK_OK(blz_oneshot_init(&o, sizeof(int)));
    int out = -1;
    blz_oneshot_recv_future f;
    test_waker tw;
    test_waker_init(&tw);
    blz_oneshot_recv_fut(&o, &out, &f);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_PENDING);
    blz_oneshot_close_tx(&o);
    CHECK_EQ(test_wakes(&tw), 1);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_READY);
    CHECK_EQ(f.base.result, -EPIPE);
    CHECK_EQ(out, -1);
    int v = 3;
    CHECK_EQ(blz_oneshot_send(&o, &v), -EEXIST); /* the sender already gave up */
    CHECK_EQ(blz_oneshot_try_recv(&o, &out), -EPIPE);
    CHECK_NO_WAKER_REFS(&tw);
}

BLZ_TEST(oneshot_receiver_gone)
{
    blz_oneshot o;
    CHECK_OK(blz_oneshot_init(&o, sizeof(int)));
    int out, v = 1;
    blz_oneshot_recv_future f;
    test_waker tw;
    test_waker_init(&tw);
    blz_oneshot_recv_fut(&o, &out, &f);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_PENDING);
    blz_future_drop(&f.base); /* dropping the wait is not closing */
    CHECK_NO_WAKER_REFS(&tw);
    CHECK(!blz_oneshot_rx_closed(&o));
    blz_oneshot_close_rx(&o);
    CHECK(blz_oneshot_rx_closed(&o));
    CHECK_EQ(blz_oneshot_send(&o, &v), -EPIPE);
    CHECK_EQ(blz_oneshot_try_recv(&o, &out), -EPIPE);
}

/* The receiver closes after the send succeeded: the sender was told the value
 * is delivered, so the value stays and the receiver can still take it (to
 * release what it owns) instead of it being lost. */
BLZ_TEST(oneshot_close_rx_after_send_keeps_the_value)
{
    blz_oneshot o;
    CHECK_OK(blz_oneshot_init(&o, sizeof(int)));
    int out = -1, v = 7;
    blz_oneshot_recv_future f;
    test_waker tw;
    test_waker_init(&tw);
    blz_oneshot_recv_fut(&o, &out, &f);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_PENDING);
    CHECK_OK(blz_oneshot_send(&o, &v));
    blz_future_drop(&f.base); /* woken, then dropped before it took the value */
    blz_oneshot_close_rx(&o);
    CHECK(blz_oneshot_rx_closed(&o));
    CHECK_EQ(out, -1);
    CHECK_OK(blz_oneshot_try_recv(&o, &out));
    CHECK_EQ(out, 7);
    CHECK_EQ(blz_oneshot_try_recv(&o, &out), -EPIPE); /* taken */
    CHECK_NO_WAKER_REFS(&tw);
}

BLZ_TEST(oneshot_wait_by_hand_and_waker_refresh)
{
    blz_oneshot o;
    CHECK_OK(blz_oneshot_init(&o, sizeof(int)));
    int out = 0, v = 77;
    blz_oneshot_recv_future f;
    test_waker t1, t2;
    test_waker_init(&t1);
    test_waker_init(&t2);
    blz_oneshot_recv_fut(&o, &out, &f);
    CHECK_EQ(poll_with(&f.base, &t1), BLZ_PENDING);
    CHECK_EQ(poll_with(&f.base, &t2), BLZ_PENDING); /* moved to another task */
    CHECK_NO_WAKER_REFS(&t1);
    CHECK_OK(blz_oneshot_send(&o, &v));
    CHECK_EQ(test_wakes(&t1), 0);
    CHECK_EQ(test_wakes(&t2), 1);
    CHECK_EQ(poll_with(&f.base, &t2), BLZ_READY);
    CHECK_EQ(f.base.result, 0);
    CHECK_EQ(out, 77);
    CHECK_NO_WAKER_REFS(&t2);
}

BLZ_TEST(oneshot_big_value_in_caller_storage)
{
    struct big {
        char s[200];
    } store, in, out;
    blz_oneshot o;
    CHECK_OK(blz_oneshot_init_buf(&o, &store, sizeof store));
    memset(&in, 'x', sizeof in);
    CHECK_OK(blz_oneshot_send(&o, &in));
    CHECK_OK(blz_oneshot_recv(&o, &out));
    CHECK_EQ(memcmp(&in, &out, sizeof in), 0);
}

BLZ_TEST(oneshot_allocates_nothing)
{
    blz_test_counting_allocator_install();
    long before = blz_test_alloc_count();
    for (int i = 0; i < 1000; i++) {
        blz_oneshot o;
        CHECK_OK(blz_oneshot_init(&o, sizeof i));
        int out;
        blz_oneshot_recv_future f;
        test_waker tw;
        test_waker_init(&tw);
        blz_oneshot_recv_fut(&o, &out, &f);
        CHECK_EQ(poll_with(&f.base, &tw), BLZ_PENDING);
        CHECK_OK(blz_oneshot_send(&o, &i));
        CHECK_EQ(poll_with(&f.base, &tw), BLZ_READY);
        CHECK_EQ(out, i);
    }
    CHECK_EQ(blz_test_alloc_count() - before, 0);
}

/* ---- cross-thread race: a fresh oneshot per round ------------------------ */

#define OS_ROUNDS CHAN_SCALE(100000, 5000)

static blz_oneshot *os_slots;
static atomic_int os_ready; /* rounds the sender may run */

static void *
os_sender(void *arg)
{
    (void) arg;
    for (int i = 0; i < OS_ROUNDS; i++) {
        while (atomic_load(&os_ready) <= i) {
            /* wait until the receiver initialised round i */
        }
        uint64_t v = (uint64_t) i * 3 + 1;
        if (i % 7 == 3) {
            blz_oneshot_close_tx(&os_slots[0]);
        } else {
            int r = blz_oneshot_send(&os_slots[0], &v);
            CHECK(r == 0);
        }
    }
    return NULL;
}

BLZ_TEST(oneshot_cross_thread_race)
{
    os_slots = calloc(1, sizeof *os_slots);
    pthread_t th;
    atomic_store(&os_ready, 0);
    CHECK_EQ(pthread_create(&th, NULL, os_sender, NULL), 0);
    for (int i = 0; i < OS_ROUNDS; i++) {
        blz_oneshot *o = &os_slots[0]; /* reused as soon as the value is in hand */
        CHECK_OK(blz_oneshot_init(o, sizeof(uint64_t)));
        atomic_store(&os_ready, i + 1);
        uint64_t out = 0;
        int r = blz_oneshot_recv(o, &out); /* parks this thread when not sent yet */
        if (i % 7 == 3) {
            CHECK_EQ(r, -EPIPE);
        } else {
            CHECK_OK(r);
            CHECK_EQ(out, (uint64_t) i * 3 + 1);
        }
    }
    CHECK_EQ(pthread_join(th, NULL), 0);
    free(os_slots);
}

/* ---- in the runtime: fibers and stackless tasks ---------------------------- */

typedef struct os_task {
    blz_future base;
    blz_oneshot *in;
    blz_oneshot *out;
    uint64_t v;
    blz_oneshot_recv_future recv;
} os_task;

static blz_poll
os_task_poll(blz_future *self, blz_context *cx)
{
    os_task *t = (os_task *) self;
    BLZ_ASYNC_BEGIN(self);
    blz_oneshot_recv_fut(t->in, &t->v, &t->recv);
    BLZ_AWAIT(self, cx, &t->recv.base);
    if (t->recv.base.result == 0) {
        t->v++;
        CHECK_OK(blz_oneshot_send(t->out, &t->v));
    } else {
        blz_oneshot_close_tx(t->out);
    }
    BLZ_ASYNC_RETURN(self, 0);
    BLZ_ASYNC_END(self);
}

static void
os_task_drop(blz_future *self)
{
    blz_future_drop(&((os_task *) self)->recv.base);
}

static const blz_future_vtable os_task_vt = {os_task_poll, os_task_drop};

#define CHAIN 64

static blz_oneshot chain[CHAIN + 1];

static void *
os_fiber_link(void *arg)
{
    int i = (int) (intptr_t) arg;
    uint64_t v;
    int r = blz_oneshot_recv(&chain[i], &v);
    if (r == 0) {
        v++;
        CHECK_OK(blz_oneshot_send(&chain[i + 1], &v));
    } else {
        blz_oneshot_close_tx(&chain[i + 1]);
    }
    return NULL;
}

static void *
os_chain_main(void *arg)
{
    bool close_first = arg != NULL;
    for (int i = 0; i <= CHAIN; i++) {
        CHECK_OK(blz_oneshot_init(&chain[i], sizeof(uint64_t)));
    }
    blz_join *j[CHAIN];
    for (int i = 0; i < CHAIN; i++) {
        if (i % 2) {
            os_task t;
            memset(&t, 0, sizeof t);
            blz_future_init(&t.base, &os_task_vt);
            t.in = &chain[i];
            t.out = &chain[i + 1];
            CHECK_OK(blz_spawn_future(&t.base, sizeof t, &j[i]));
        } else {
            CHECK_OK(blz_spawn(os_fiber_link, (void *) (intptr_t) i, &j[i]));
        }
    }
    blz_yield();
    if (close_first) {
        blz_oneshot_close_tx(&chain[0]);
    } else {
        uint64_t v = 1000;
        CHECK_OK(blz_oneshot_send(&chain[0], &v));
    }
    uint64_t end = 0;
    int r = blz_oneshot_recv(&chain[CHAIN], &end);
    if (close_first) {
        CHECK_EQ(r, -EPIPE);
    } else {
        CHECK_OK(r);
        CHECK_EQ(end, 1000 + CHAIN);
    }
    for (int i = 0; i < CHAIN; i++) {
        CHECK_OK(blz_join_wait(j[i], NULL));
    }
    return NULL;
}

BLZ_TEST(oneshot_chain_in_runtime)
{
    blz_runtime *rt = chan_new_rt(2);
    CHECK_OK(blz_runtime_block_on(rt, os_chain_main, NULL, NULL));
    CHECK_OK(blz_runtime_block_on(rt, os_chain_main, (void *) 1, NULL));
    blz_runtime_free(rt);
}

static void *
os_abort_main(void *arg)
{
    (void) arg;
    for (int i = 0; i <= 1; i++) {
        CHECK_OK(blz_oneshot_init(&chain[i], sizeof(uint64_t)));
    }
    blz_join *j;
    CHECK_OK(blz_spawn(os_fiber_link, (void *) (intptr_t) 0, &j));
    for (int k = 0; k < 20; k++) {
        blz_yield();
    }
    blz_join_abort(j); /* aborted while waiting: its waker is withdrawn */
    CHECK_EQ(blz_join_wait(j, NULL), -ECANCELED);
    uint64_t v = 5;
    CHECK_OK(blz_oneshot_send(&chain[0], &v));             /* nobody wakes a dead task */
    CHECK_EQ(blz_oneshot_try_recv(&chain[1], &v), -EPIPE); /* the fiber closed its tx */
    return NULL;
}

BLZ_TEST(oneshot_abort_waiting_receiver)
{
    blz_runtime *rt = chan_new_rt(2);
    CHECK_OK(blz_runtime_block_on(rt, os_abort_main, NULL, NULL));
    blz_runtime_free(rt);
}

/* ---- the sender waiting for the receiver to close ------------------------------- */

BLZ_TEST(oneshot_closed_by_hand)
{
    blz_oneshot o;
    CHECK_OK(blz_oneshot_init(&o, sizeof(int)));
    blz_oneshot_closed_future f;
    test_waker t1, t2, r;
    test_waker_init(&t1);
    test_waker_init(&t2);
    test_waker_init(&r);
    blz_oneshot_closed_fut(&o, &f);
    CHECK_EQ(poll_with(&f.base, &t1), BLZ_PENDING);
    CHECK_EQ(poll_with(&f.base, &t2), BLZ_PENDING); /* moved to another task */
    CHECK_NO_WAKER_REFS(&t1);
    /* A waiting receiver and the waiting sender side by side. */
    int out = 0;
    blz_oneshot_recv_future rf;
    blz_oneshot_recv_fut(&o, &out, &rf);
    CHECK_EQ(poll_with(&rf.base, &r), BLZ_PENDING);
    blz_future_drop(&rf.base);
    CHECK_NO_WAKER_REFS(&r);
    blz_oneshot_close_rx(&o);
    CHECK_EQ(test_wakes(&t1), 0);
    CHECK_EQ(test_wakes(&t2), 1);
    CHECK_EQ(poll_with(&f.base, &t2), BLZ_READY);
    CHECK_EQ(f.base.result, 0);
    CHECK_NO_WAKER_REFS(&t2);
    CHECK_OK(blz_oneshot_closed(&o)); /* closed already: at once */
    int v = 1;
    CHECK_EQ(blz_oneshot_send(&o, &v), -EPIPE);

    /* Dropped while waiting, then a send: the value arrives, nothing is left. */
    CHECK_OK(blz_oneshot_init(&o, sizeof(int)));
    blz_oneshot_closed_fut(&o, &f);
    CHECK_EQ(poll_with(&f.base, &t1), BLZ_PENDING);
    blz_future_drop(&f.base);
    CHECK_NO_WAKER_REFS(&t1);
    CHECK_OK(blz_oneshot_send(&o, &v));
    CHECK_OK(blz_oneshot_try_recv(&o, &out));
    CHECK_EQ(out, 1);

    /* This side already sent, or closed: nothing to wait for. */
    CHECK_EQ(blz_oneshot_closed(&o), -EEXIST);
    CHECK_OK(blz_oneshot_init(&o, sizeof(int)));
    blz_oneshot_close_tx(&o);
    CHECK_EQ(blz_oneshot_closed(&o), -EEXIST);

    /* A send or close_tx with the wait still registered drops the sender's own waker. */
    CHECK_OK(blz_oneshot_init(&o, sizeof(int)));
    blz_oneshot_closed_fut(&o, &f);
    CHECK_EQ(poll_with(&f.base, &t1), BLZ_PENDING);
    CHECK_OK(blz_oneshot_send(&o, &v));
    CHECK_NO_WAKER_REFS(&t1);
    CHECK_EQ(poll_with(&f.base, &t1), BLZ_READY);
    CHECK_EQ(f.base.result, -EEXIST);

    CHECK_EQ(blz_oneshot_closed(NULL), -EINVAL);
    blz_oneshot_closed_fut(NULL, &f);
    CHECK_EQ(poll_with(&f.base, &t1), BLZ_READY);
    CHECK_EQ(f.base.result, -EINVAL);
    blz_oneshot_closed_fut(&o, NULL);
}

#define CLOSE_ROUNDS CHAN_SCALE(3000, 300)

typedef struct close_race {
    blz_oneshot o;
    atomic_int go;
    int note;      /* written by the receiver before it closes */
    int seen_note; /* what the sender read after its wait */
    int result;
} close_race;

static void *
closing_receiver(void *arg)
{
    close_race *c = arg;
    while (!atomic_load(&c->go)) {
    }
    c->note = 42;
    blz_oneshot_close_rx(&c->o);
    return NULL;
}

/* Each round the receiver closes as the sender starts its wait: the wake is never lost
 * (a lost one hangs, and the harness reports it), and what the receiver did before
 * closing is visible after the wait. */
BLZ_TEST(oneshot_closed_cross_thread_race)
{
    static close_race c;
    for (int round = 0; round < CLOSE_ROUNDS; round++) {
        memset(&c, 0, sizeof c);
        CHECK_OK(blz_oneshot_init(&c.o, sizeof(int)));
        pthread_t t;
        CHECK_OK(pthread_create(&t, NULL, closing_receiver, &c));
        atomic_store(&c.go, 1);
        c.result = blz_oneshot_closed(&c.o);
        c.seen_note = c.note;
        CHECK_OK(pthread_join(t, NULL));
        CHECK_EQ(c.result, 0);
        CHECK_EQ(c.seen_note, 42);
    }
}

static void *
worker_until_closed(void *arg)
{
    blz_oneshot *o = arg;
    return (void *) (intptr_t) blz_oneshot_closed(o); /* a fiber suspends here */
}

static void *
os_closed_main(void *arg)
{
    (void) arg;
    blz_oneshot o;
    CHECK_OK(blz_oneshot_init(&o, sizeof(int)));
    blz_join *j;
    CHECK_OK(blz_spawn(worker_until_closed, &o, &j));
    for (int k = 0; k < 10; k++) {
        blz_yield();
    }
    blz_oneshot_close_rx(&o);
    void *res = (void *) 1;
    CHECK_OK(blz_join_wait(j, &res));
    CHECK_EQ((intptr_t) res, 0);
    return NULL;
}

BLZ_TEST(oneshot_closed_in_runtime)
{
    blz_runtime *rt = chan_new_rt(2);
    CHECK_OK(blz_runtime_block_on(rt, os_closed_main, NULL, NULL));
    blz_runtime_free(rt);
}
