/*
 * The bounded channel on a running scheduler: 4 producers x 4 consumers
 * (fibers and stackless tasks, plus plain threads) over capacities 1, 2 and
 * 1000, so senders block on a full ring and receivers on an empty one.
 * Every message is received exactly once (a per-message seen flag, a count
 * and a checksum) and each producer's messages arrive in order at each
 * consumer. Then the same with extra tasks aborted (blz_join_abort) while
 * they wait: a send that reported success is received, nothing else is, and
 * nothing is received twice. Also close racing with blocked and running
 * senders, -EDEADLK from a stackless poll, and zero allocation per wait.
 *
 * Sizes shrink under sanitizers; tests/stress/chan_heavy.c runs big ones.
 */
#include "chan_util.h"

/* blz-test: timeout=120 */

#define PRODUCERS 4
#define CONSUMERS 4
#define VICTIMS   4 /* extra senders and receivers that get aborted */
#define SOURCES   (PRODUCERS + VICTIMS + 2)
#define PER_SRC   CHAN_SCALE(20000, 4000)

static blz_chan ch;
static atomic_uchar *seen[SOURCES];    /* seen[src][seq]: received how many times */
static atomic_ullong sent_ok[SOURCES]; /* sends that reported 0 (a prefix 0..k-1) */
static atomic_ullong recv_count, recv_sum, send_sum, dupes, disorder;

static uint64_t
encode(unsigned src, uint64_t seq)
{
    return ((uint64_t) src << 40) | seq;
}

static void
reset_tracking(void)
{
    for (int s = 0; s < SOURCES; s++) {
        if (!seen[s]) {
            seen[s] = calloc(PER_SRC, 1);
        } else {
            memset(seen[s], 0, PER_SRC);
        }
        atomic_store(&sent_ok[s], 0);
    }
    atomic_store(&recv_count, 0);
    atomic_store(&recv_sum, 0);
    atomic_store(&send_sum, 0);
    atomic_store(&dupes, 0);
    atomic_store(&disorder, 0);
}

/* One consumer's view, to check per-producer order. */
typedef struct order_check {
    uint64_t last[SOURCES];
    bool any[SOURCES];
} order_check;

static void
record_recv(order_check *oc, uint64_t v)
{
    unsigned src = (unsigned) (v >> 40);
    uint64_t seq = v & ((1ull << 40) - 1);
    if (src >= SOURCES || seq >= PER_SRC) {
        atomic_fetch_add(&dupes, 1000000);
        return;
    }
    if (atomic_fetch_add(&seen[src][seq], 1) != 0) {
        atomic_fetch_add(&dupes, 1);
    }
    if (oc->any[src] && seq <= oc->last[src]) {
        atomic_fetch_add(&disorder, 1);
    }
    oc->any[src] = true;
    oc->last[src] = seq;
    atomic_fetch_add(&recv_count, 1);
    atomic_fetch_add(&recv_sum, v);
}

static void
record_send(unsigned src, uint64_t seq)
{
    atomic_store(&sent_ok[src], seq + 1);
    atomic_fetch_add(&send_sum, encode(src, seq));
}

/* Every successful send received exactly once, nothing else received. */
static void
verify(void)
{
    uint64_t total = 0;
    for (int s = 0; s < SOURCES; s++) {
        uint64_t k = atomic_load(&sent_ok[s]);
        total += k;
        for (uint64_t i = 0; i < PER_SRC; i++) {
            CHECK_EQ(atomic_load(&seen[s][i]), i < k ? 1 : 0);
        }
    }
    CHECK_EQ(atomic_load(&dupes), 0);
    CHECK_EQ(atomic_load(&disorder), 0);
    CHECK_EQ(atomic_load(&recv_count), total);
    CHECK_EQ(atomic_load(&recv_sum), atomic_load(&send_sum));
}

/* ---- fibers -------------------------------------------------------------- */

static void *
fiber_producer(void *arg)
{
    unsigned src = (unsigned) (uintptr_t) arg;
    for (uint64_t i = 0; i < PER_SRC; i++) {
        uint64_t v = encode(src, i);
        int r = blz_chan_send(&ch, &v);
        if (r != 0) {
            CHECK(r == -ECANCELED || r == -EPIPE);
            break;
        }
        record_send(src, i);
    }
    return NULL;
}

static void *
fiber_consumer(void *arg)
{
    (void) arg;
    order_check oc;
    memset(&oc, 0, sizeof oc);
    for (;;) {
        uint64_t v;
        int r = blz_chan_recv(&ch, &v);
        if (r != 0) {
            CHECK(r == -ECANCELED || r == -EPIPE);
            return NULL;
        }
        record_recv(&oc, v);
    }
}

/* ---- stackless tasks ------------------------------------------------------ */

typedef struct prod_task {
    blz_future base;
    unsigned src;
    uint64_t i;
    uint64_t item;
    blz_chan_send_future send;
} prod_task;

static blz_poll
prod_poll(blz_future *self, blz_context *cx)
{
    prod_task *t = (prod_task *) self;
    BLZ_ASYNC_BEGIN(self);
    for (t->i = 0; t->i < PER_SRC; t->i++) {
        t->item = encode(t->src, t->i);
        blz_chan_send_fut(&ch, &t->item, &t->send);
        BLZ_AWAIT(self, cx, &t->send.base);
        if (t->send.base.result != 0) {
            CHECK_EQ(t->send.base.result, -EPIPE);
            break;
        }
        record_send(t->src, t->i);
    }
    BLZ_ASYNC_RETURN(self, 0);
    BLZ_ASYNC_END(self);
}

static void
prod_drop(blz_future *self)
{
    blz_future_drop(&((prod_task *) self)->send.base);
}

static const blz_future_vtable prod_vt = {prod_poll, prod_drop};

typedef struct cons_task {
    blz_future base;
    uint64_t item;
    blz_chan_recv_future recv;
    order_check oc;
} cons_task;

static blz_poll
cons_poll(blz_future *self, blz_context *cx)
{
    cons_task *t = (cons_task *) self;
    BLZ_ASYNC_BEGIN(self);
    for (;;) {
        blz_chan_recv_fut(&ch, &t->item, &t->recv);
        BLZ_AWAIT(self, cx, &t->recv.base);
        if (t->recv.base.result != 0) {
            CHECK_EQ(t->recv.base.result, -EPIPE);
            break;
        }
        record_recv(&t->oc, t->item);
    }
    BLZ_ASYNC_RETURN(self, 0);
    BLZ_ASYNC_END(self);
}

static void
cons_drop(blz_future *self)
{
    blz_future_drop(&((cons_task *) self)->recv.base);
}

static const blz_future_vtable cons_vt = {cons_poll, cons_drop};

static blz_join *
spawn_prod_task(unsigned src)
{
    prod_task t;
    memset(&t, 0, sizeof t);
    blz_future_init(&t.base, &prod_vt);
    t.src = src;
    blz_join *j = NULL;
    CHECK_OK(blz_spawn_future(&t.base, sizeof t, &j));
    return j;
}

static blz_join *
spawn_cons_task(void)
{
    cons_task t;
    memset(&t, 0, sizeof t);
    blz_future_init(&t.base, &cons_vt);
    blz_join *j = NULL;
    CHECK_OK(blz_spawn_future(&t.base, sizeof t, &j));
    return j;
}

/* ---- one round ------------------------------------------------------------ */

typedef struct round_cfg {
    size_t cap;
    bool victims; /* also spawn waiters and abort them mid-wait */
    bool threads; /* also one producer and one consumer on plain OS threads */
} round_cfg;

static void *
thread_consumer(void *arg)
{
    (void) arg;
    return fiber_consumer(NULL); /* the await tier parks this thread */
}

static void *
round_main(void *arg)
{
    round_cfg *cfg = arg;
    blz_join *prods[PRODUCERS], *cons[CONSUMERS], *vict[VICTIMS];
    pthread_t tp, tc;
    for (int c = 0; c < CONSUMERS; c++) {
        if (c % 2) {
            cons[c] = spawn_cons_task();
        } else {
            CHECK_OK(blz_spawn(fiber_consumer, NULL, &cons[c]));
        }
    }
    if (cfg->threads) {
        CHECK_EQ(pthread_create(&tc, NULL, thread_consumer, NULL), 0);
        CHECK_EQ(pthread_create(&tp, NULL, fiber_producer, (void *) (uintptr_t) (SOURCES - 1)), 0);
    }
    for (int p = 0; p < PRODUCERS; p++) {
        if (p % 2) {
            prods[p] = spawn_prod_task((unsigned) p);
        } else {
            CHECK_OK(blz_spawn(fiber_producer, (void *) (uintptr_t) p, &prods[p]));
        }
    }
    if (cfg->victims) {
        /* Half extra senders, half extra receivers, fibers and stackless mixed. */
        for (int v = 0; v < VICTIMS; v++) {
            unsigned src = (unsigned) (PRODUCERS + v);
            switch (v % 4) {
            case 0:
                CHECK_OK(blz_spawn(fiber_producer, (void *) (uintptr_t) src, &vict[v]));
                break;
            case 1:
                vict[v] = spawn_prod_task(src);
                break;
            case 2:
                CHECK_OK(blz_spawn(fiber_consumer, NULL, &vict[v]));
                break;
            default:
                vict[v] = spawn_cons_task();
                break;
            }
        }
        /* Let them get going and block, then abort them one by one. */
        for (int v = 0; v < VICTIMS; v++) {
            for (int k = 0; k < 50 + 30 * v; k++) {
                blz_yield();
            }
            blz_join_abort(vict[v]);
        }
        for (int v = 0; v < VICTIMS; v++) {
            int r = blz_join_wait(vict[v], NULL);
            CHECK(r == 0 || r == -ECANCELED);
        }
    }
    for (int p = 0; p < PRODUCERS; p++) {
        CHECK_OK(blz_join_wait(prods[p], NULL));
    }
    if (cfg->threads) {
        CHECK_EQ(pthread_join(tp, NULL), 0);
    }
    blz_chan_close(&ch);
    for (int c = 0; c < CONSUMERS; c++) {
        CHECK_OK(blz_join_wait(cons[c], NULL));
    }
    if (cfg->threads) {
        CHECK_EQ(pthread_join(tc, NULL), 0);
    }
    return NULL;
}

static void
run_round(blz_runtime *rt, round_cfg cfg)
{
    reset_tracking();
    CHECK_OK(blz_chan_init(&ch, sizeof(uint64_t), cfg.cap));
    CHECK_OK(blz_runtime_block_on(rt, round_main, &cfg, NULL));
    verify();
    for (int p = 0; p < PRODUCERS; p++) {
        CHECK_EQ(atomic_load(&sent_ok[p]), PER_SRC); /* regular producers sent everything */
    }
    CHECK_EQ(blz_chan_len(&ch), 0);
    blz_chan_deinit(&ch);
}

BLZ_TEST(mpmc_4x4_exactly_once)
{
    blz_runtime *rt = chan_new_rt(4);
    static const size_t caps[] = {1, 2, 1000};
    for (int c = 0; c < 3; c++) {
        run_round(rt, (round_cfg){caps[c], false, true});
    }
    blz_runtime_free(rt);
}

BLZ_TEST(mpmc_abort_waiters_no_loss_no_dup)
{
    blz_runtime *rt = chan_new_rt(4);
    static const size_t caps[] = {1, 2, 1000};
    for (int rep = 0; rep < CHAN_SCALE(3, 1); rep++) {
        for (int c = 0; c < 3; c++) {
            run_round(rt, (round_cfg){caps[c], true, false});
        }
    }
    blz_runtime_free(rt);
}

BLZ_TEST(mpmc_two_workers_with_threads)
{
    blz_runtime *rt = chan_new_rt(2);
    run_round(rt, (round_cfg){1, true, true});
    run_round(rt, (round_cfg){2, false, true});
    blz_runtime_free(rt);
}

/* ---- close racing with blocked and running senders ------------------------ */

#define CR_SENDERS 6
#define CR_ROUNDS  CHAN_SCALE(200, 20)

static void *
close_racer_main(void *arg)
{
    (void) arg;
    for (int round = 0; round < CR_ROUNDS; round++) {
        reset_tracking();
        CHECK_OK(blz_chan_init(&ch, sizeof(uint64_t), (size_t) 1 + (size_t) (round % 3)));
        blz_join *s[CR_SENDERS], *r[2];
        for (int i = 0; i < CR_SENDERS; i++) {
            if (i % 2) {
                s[i] = spawn_prod_task((unsigned) i);
            } else {
                CHECK_OK(blz_spawn(fiber_producer, (void *) (uintptr_t) i, &s[i]));
            }
        }
        CHECK_OK(blz_spawn(fiber_consumer, NULL, &r[0]));
        r[1] = spawn_cons_task();
        for (int k = 0; k < round % 17; k++) {
            blz_yield();
        }
        blz_chan_close(&ch); /* senders blocked, mid-send, or not started */
        for (int i = 0; i < CR_SENDERS; i++) {
            CHECK_OK(blz_join_wait(s[i], NULL));
        }
        CHECK_OK(blz_join_wait(r[0], NULL));
        CHECK_OK(blz_join_wait(r[1], NULL));
        verify(); /* every send that returned 0 was received, the rest were not */
        blz_chan_deinit(&ch);
    }
    return NULL;
}

BLZ_TEST(mpmc_close_races_sends)
{
    blz_runtime *rt = chan_new_rt(3);
    CHECK_OK(blz_runtime_block_on(rt, close_racer_main, NULL, NULL));
    blz_runtime_free(rt);
}

/* ---- close while everyone is blocked ------------------------------------- */

static void *
blocked_main(void *arg)
{
    (void) arg;
    reset_tracking();
    CHECK_OK(blz_chan_init(&ch, sizeof(uint64_t), 1));
    uint64_t v = encode(0, 0);
    CHECK_OK(blz_chan_send(&ch, &v));
    record_send(0, 0);
    blz_join *s[4];
    for (int i = 0; i < 4; i++) {
        CHECK_OK(blz_spawn(fiber_producer, (void *) (uintptr_t) (i + 1), &s[i]));
    }
    for (int k = 0; k < 200; k++) {
        blz_yield(); /* they fill nothing: the ring is full, all four block */
    }
    CHECK_EQ(blz_chan_len(&ch), 1);
    blz_chan_close(&ch);
    for (int i = 0; i < 4; i++) {
        CHECK_OK(blz_join_wait(s[i], NULL));
        CHECK_EQ(atomic_load(&sent_ok[i + 1]), 0);
    }
    blz_join *r[4];
    /* Receivers: the one item, then -EPIPE for all. */
    order_check oc;
    memset(&oc, 0, sizeof oc);
    CHECK_OK(blz_chan_recv(&ch, &v));
    record_recv(&oc, v);
    for (int i = 0; i < 4; i++) {
        r[i] = spawn_cons_task();
    }
    for (int i = 0; i < 4; i++) {
        CHECK_OK(blz_join_wait(r[i], NULL));
    }
    verify();
    blz_chan_deinit(&ch);

    /* Receivers blocked on an empty channel, then closed. */
    reset_tracking();
    CHECK_OK(blz_chan_init(&ch, sizeof(uint64_t), 4));
    for (int i = 0; i < 4; i++) {
        if (i % 2) {
            r[i] = spawn_cons_task();
        } else {
            CHECK_OK(blz_spawn(fiber_consumer, NULL, &r[i]));
        }
    }
    for (int k = 0; k < 200; k++) {
        blz_yield();
    }
    blz_chan_close(&ch);
    for (int i = 0; i < 4; i++) {
        CHECK_OK(blz_join_wait(r[i], NULL));
    }
    CHECK_EQ(atomic_load(&recv_count), 0);
    blz_chan_deinit(&ch);
    return NULL;
}

BLZ_TEST(mpmc_close_while_blocked)
{
    blz_runtime *rt = chan_new_rt(2);
    CHECK_OK(blz_runtime_block_on(rt, blocked_main, NULL, NULL));
    blz_runtime_free(rt);
}

/* ---- -EDEADLK from a stackless poll ----------------------------------------- */

typedef struct deadlk_task {
    blz_future base;
} deadlk_task;

static blz_poll
deadlk_poll(blz_future *self, blz_context *cx)
{
    (void) cx;
    uint64_t v = 0;
    self->result = blz_chan_recv(&ch, &v);
    return BLZ_READY;
}

static const blz_future_vtable deadlk_vt = {deadlk_poll, NULL};

static void *
deadlk_main(void *arg)
{
    (void) arg;
    CHECK_OK(blz_chan_init(&ch, sizeof(uint64_t), 1));
    deadlk_task t;
    blz_future_init(&t.base, &deadlk_vt);
    blz_join *j;
    CHECK_OK(blz_spawn_future(&t.base, sizeof t, &j));
    void *res;
    CHECK_OK(blz_join_wait(j, &res));
    CHECK_EQ((int) (intptr_t) res, -EDEADLK);
    blz_chan_deinit(&ch);
    return NULL;
}

BLZ_TEST(mpmc_await_in_stackless_poll_is_edeadlk)
{
    blz_runtime *rt = chan_new_rt(1);
    CHECK_OK(blz_runtime_block_on(rt, deadlk_main, NULL, NULL));
    blz_runtime_free(rt);
}

/* ---- zero allocation per wait ------------------------------------------------ */

static blz_chan ping, pong;
#define PP_ROUNDS CHAN_SCALE(20000, 2000)

static void *
pinger(void *arg)
{
    (void) arg;
    for (int i = 0; i < PP_ROUNDS; i++) {
        int v = i;
        CHECK_OK(blz_chan_send(&ping, &v));
        CHECK_OK(blz_chan_recv(&pong, &v));
        CHECK_EQ(v, i + 1);
    }
    return NULL;
}

static void *
ponger(void *arg)
{
    (void) arg;
    for (int i = 0; i < PP_ROUNDS; i++) {
        int v;
        CHECK_OK(blz_chan_recv(&ping, &v));
        v++;
        CHECK_OK(blz_chan_send(&pong, &v));
    }
    return NULL;
}

static void *
pingpong_main(void *arg)
{
    long *allocs = arg;
    blz_join *a, *b;
    CHECK_OK(blz_spawn(ponger, NULL, &b));
    CHECK_OK(blz_spawn(pinger, NULL, &a));
    blz_yield();
    long before = blz_test_alloc_count();
    CHECK_OK(blz_join_wait(a, NULL));
    CHECK_OK(blz_join_wait(b, NULL));
    *allocs = blz_test_alloc_count() - before;
    return NULL;
}

BLZ_TEST(mpmc_waiting_allocates_nothing)
{
    blz_test_counting_allocator_install();
    blz_runtime *rt = chan_new_rt(2);
    CHECK_OK(blz_chan_init(&ping, sizeof(int), 1));
    CHECK_OK(blz_chan_init(&pong, sizeof(int), 1));
    long allocs = -1;
    CHECK_OK(blz_runtime_block_on(rt, pingpong_main, &allocs, NULL));
    /* Thousands of blocking waits; only the joins' bookkeeping may allocate. */
    CHECK_LE(allocs, 4);
    blz_chan_deinit(&ping);
    blz_chan_deinit(&pong);
    blz_runtime_free(rt);
    CHECK_EQ(blz_test_alloc_live(), 0);
}
