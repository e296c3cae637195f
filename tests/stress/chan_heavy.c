/*
 * Heavy channel runs (label `stress`, kept out of the sanitizer builds): many
 * MPMC rounds with random capacities, random aborts of waiting fibers and
 * stackless tasks, and closes racing with everything; selecting consumers
 * across many channels; a broadcast sender lapping receivers for millions of
 * messages; a watch hammered by several writers and readers. Every message
 * that a send reported as sent is received exactly once.
 */
#include "../chan_util.h"

/* blz-test: timeout=600 */

#define SOURCES 16
#define PER_SRC 50000

static blz_chan ch;
static atomic_uchar *seen[SOURCES];
static atomic_ullong sent_ok[SOURCES];
static atomic_ullong recv_count, dupes;

static uint64_t
encode(unsigned src, uint64_t seq)
{
    return ((uint64_t) src << 40) | seq;
}

static void
reset(void)
{
    for (int s = 0; s < SOURCES; s++) {
        if (!seen[s]) {
            seen[s] = calloc(PER_SRC, 1);
        }
        memset(seen[s], 0, PER_SRC);
        atomic_store(&sent_ok[s], 0);
    }
    atomic_store(&recv_count, 0);
    atomic_store(&dupes, 0);
}

static void
got(uint64_t v)
{
    unsigned src = (unsigned) (v >> 40);
    uint64_t seq = v & ((1ull << 40) - 1);
    if (src >= SOURCES || seq >= PER_SRC || atomic_fetch_add(&seen[src][seq], 1) != 0) {
        atomic_fetch_add(&dupes, 1);
    }
    atomic_fetch_add(&recv_count, 1);
}

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
    CHECK_EQ(atomic_load(&recv_count), total);
}

static void *
producer(void *arg)
{
    unsigned src = (unsigned) (uintptr_t) arg;
    for (uint64_t i = 0; i < PER_SRC; i++) {
        uint64_t v = encode(src, i);
        if (blz_chan_send(&ch, &v) != 0) {
            break;
        }
        atomic_store(&sent_ok[src], i + 1);
    }
    return NULL;
}

static void *
consumer(void *arg)
{
    (void) arg;
    uint64_t v;
    while (blz_chan_recv(&ch, &v) == 0) {
        got(v);
    }
    return NULL;
}

typedef struct prod_task {
    blz_future base;
    unsigned src;
    uint64_t i, item;
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
            break;
        }
        atomic_store(&sent_ok[t->src], t->i + 1);
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
            break;
        }
        got(t->item);
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
spawn_kind(int kind, unsigned src)
{
    blz_join *j = NULL;
    switch (kind) {
    case 0:
        CHECK_OK(blz_spawn(producer, (void *) (uintptr_t) src, &j));
        break;
    case 1: {
        prod_task t;
        memset(&t, 0, sizeof t);
        blz_future_init(&t.base, &prod_vt);
        t.src = src;
        CHECK_OK(blz_spawn_future(&t.base, sizeof t, &j));
        break;
    }
    case 2:
        CHECK_OK(blz_spawn(consumer, NULL, &j));
        break;
    default: {
        cons_task t;
        memset(&t, 0, sizeof t);
        blz_future_init(&t.base, &cons_vt);
        CHECK_OK(blz_spawn_future(&t.base, sizeof t, &j));
        break;
    }
    }
    return j;
}

typedef struct round_state {
    uint32_t rng;
} round_state;

/* Per round: producers (fibers and stackless), consumers, some of each aborted at
 * random while they wait, sometimes a close racing with all of it. Producers and
 * victims are joined, then the channel closes and the consumers drain it. */
static void *
mpmc_chaos_main(void *arg)
{
    round_state *st = arg;
    for (int round = 0; round < 150; round++) {
        size_t cap = 1 + test_rand(&st->rng) % 64;
        if (round % 4 == 0) {
            cap = 1;
        }
        CHECK_OK(blz_chan_init(&ch, sizeof(uint64_t), cap));
        reset();
        enum { N = 12 };
        blz_join *j[N];
        int kind[N];
        bool victim[N];
        for (int i = 0; i < N; i++) {
            kind[i] = i < 2 ? 2 + i : (int) (test_rand(&st->rng) % 4);
            victim[i] = i >= 2 && test_rand(&st->rng) % 3 == 0;
            j[i] = spawn_kind(kind[i], (unsigned) i);
        }
        for (int k = 0; k < (int) (test_rand(&st->rng) % 300); k++) {
            blz_yield();
        }
        for (int i = 0; i < N; i++) {
            if (victim[i]) {
                blz_join_abort(j[i]);
            }
        }
        bool early_close = test_rand(&st->rng) % 3 == 0;
        if (early_close) {
            blz_chan_close(&ch);
        }
        for (int i = 0; i < N; i++) {
            if (victim[i] || kind[i] < 2) {
                int r = blz_join_wait(j[i], NULL);
                CHECK(r == 0 || r == -ECANCELED);
            }
        }
        blz_chan_close(&ch);
        for (int i = 0; i < N; i++) {
            if (!victim[i] && kind[i] >= 2) {
                CHECK_OK(blz_join_wait(j[i], NULL));
            }
        }
        verify();
        if (!early_close) {
            for (int i = 0; i < N; i++) {
                if (!victim[i] && kind[i] < 2) {
                    CHECK_EQ(atomic_load(&sent_ok[i]), PER_SRC);
                }
            }
        }
        blz_chan_deinit(&ch);
    }
    return NULL;
}

BLZ_TEST(stress_mpmc_chaos)
{
    blz_runtime *rt = chan_new_rt(4);
    round_state st = {12345};
    CHECK_OK(blz_runtime_block_on(rt, mpmc_chaos_main, &st, NULL));
    blz_runtime_free(rt);
}

/* ---- threads only: 8 producers, 8 consumers, capacity 1 and 3 --------------- */

BLZ_TEST(stress_threads_tiny_rings)
{
    static const size_t caps[] = {1, 3};
    for (int c = 0; c < 2; c++) {
        CHECK_OK(blz_chan_init(&ch, sizeof(uint64_t), caps[c]));
        reset();
        pthread_t p[8], q[8];
        for (int i = 0; i < 8; i++) {
            CHECK_EQ(pthread_create(&q[i], NULL, consumer, NULL), 0);
            CHECK_EQ(pthread_create(&p[i], NULL, producer, (void *) (uintptr_t) i), 0);
        }
        for (int i = 0; i < 8; i++) {
            CHECK_EQ(pthread_join(p[i], NULL), 0);
        }
        blz_chan_close(&ch);
        for (int i = 0; i < 8; i++) {
            CHECK_EQ(pthread_join(q[i], NULL), 0);
        }
        verify();
        CHECK_EQ(atomic_load(&recv_count), 8ull * PER_SRC);
        blz_chan_deinit(&ch);
    }
}

/* ---- broadcast: millions of messages past slow receivers ------------------- */

#define BC_MSGS 3000000

static blz_broadcast bc;

static void *
bc_reader(void *arg)
{
    blz_broadcast_rx *rx = arg;
    uint64_t expect = 0, n = 0, missed = 0;
    for (;;) {
        uint64_t m[3];
        int r = blz_broadcast_recv(rx, m);
        if (r == -EPIPE) {
            break;
        }
        if (r == -EOVERFLOW) {
            missed += blz_broadcast_rx_missed(rx);
            expect += blz_broadcast_rx_missed(rx);
            continue;
        }
        CHECK_OK(r);
        CHECK_EQ(m[0], expect);
        CHECK_EQ(m[1], ~expect);
        CHECK_EQ(m[2], expect * 7);
        expect++;
        n++;
    }
    CHECK_EQ(n + missed, (uint64_t) BC_MSGS);
    return NULL;
}

BLZ_TEST(stress_broadcast_lapping)
{
    CHECK_OK(blz_broadcast_init(&bc, 3 * sizeof(uint64_t), 16));
    blz_broadcast_rx rx[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        CHECK_OK(blz_broadcast_subscribe(&bc, &rx[i]));
        CHECK_EQ(pthread_create(&th[i], NULL, bc_reader, &rx[i]), 0);
    }
    for (uint64_t n = 0; n < BC_MSGS; n++) {
        uint64_t m[3] = {n, ~n, n * 7};
        CHECK_EQ(blz_broadcast_send(&bc, m), 4);
    }
    blz_broadcast_close(&bc);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(pthread_join(th[i], NULL), 0);
        blz_broadcast_unsubscribe(&rx[i]);
    }
    blz_broadcast_deinit(&bc);
}

/* ---- watch: 3 writers, 3 readers ---------------------------------------------- */

#define W_SENDS 2000000

static blz_watch w;
static atomic_int writers_left;

static void *
w_writer(void *arg)
{
    uint64_t base = (uint64_t) (uintptr_t) arg << 32;
    for (uint64_t i = 0; i < W_SENDS; i++) {
        uint64_t v[4] = {base + i, ~(base + i), (base + i) * 3, (base + i) ^ 0x5555};
        CHECK_OK(blz_watch_send(&w, v));
    }
    atomic_fetch_sub(&writers_left, 1);
    return NULL;
}

static void *
w_reader(void *arg)
{
    (void) arg;
    uint64_t last = 0;
    while (atomic_load(&writers_left) > 0) {
        uint64_t v[4];
        uint64_t ver = blz_watch_get(&w, v);
        CHECK_EQ(v[1], ~v[0]);
        CHECK_EQ(v[2], v[0] * 3);
        CHECK_EQ(v[3], v[0] ^ 0x5555);
        CHECK_GE(ver, last);
        last = ver;
    }
    return NULL;
}

BLZ_TEST(stress_watch_writers_and_readers)
{
    uint64_t init[4] = {0, ~0ull, 0, 0x5555};
    CHECK_OK(blz_watch_init(&w, sizeof init, init));
    atomic_store(&writers_left, 3);
    pthread_t th[6];
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(pthread_create(&th[i], NULL, w_writer, (void *) (uintptr_t) i), 0);
        CHECK_EQ(pthread_create(&th[3 + i], NULL, w_reader, NULL), 0);
    }
    for (int i = 0; i < 6; i++) {
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    }
    CHECK_EQ(blz_watch_get(&w, init), 3ull * W_SENDS + 1);
    blz_watch_deinit(&w);
}
