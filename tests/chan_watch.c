/*
 * Watch: latest value and version, change waits (skip to latest), close,
 * waiting by hand and in a runtime, no torn read under a two-thread hammer,
 * zero allocation per send/borrow, and watchers leaving: unsubscribe, the
 * count, and the wait for nobody watching (by hand, and raced by threads).
 */
#include "chan_util.h"

#include <sched.h>

/* blz-test: timeout=120 */

BLZ_TEST(watch_errors)
{
    blz_watch w;
    int v = 0;
    CHECK_EQ(blz_watch_init(NULL, 4, &v), -EINVAL);
    CHECK_EQ(blz_watch_init(&w, 0, &v), -EINVAL);
    CHECK_EQ(blz_watch_init(&w, 4, NULL), -EINVAL);
    blz_test_counting_allocator_install();
    blz_test_alloc_fail_after(0);
    CHECK_EQ(blz_watch_init(&w, 4, &v), -ENOMEM);
    blz_test_alloc_fail_after(-1);
    CHECK_OK(blz_watch_init(&w, sizeof v, &v));
    CHECK_EQ(blz_watch_send(NULL, &v), -EINVAL);
    CHECK_EQ(blz_watch_send(&w, NULL), -EINVAL);
    CHECK_EQ(blz_watch_get(NULL, &v), 0);
    CHECK_EQ(blz_watch_get(&w, NULL), 0);
    CHECK_EQ(blz_watch_subscribe(NULL, NULL), -EINVAL);
    CHECK_EQ(blz_watch_rx_borrow(NULL, &v), 0);
    CHECK_EQ(blz_watch_rx_has_changed(NULL), -EINVAL);
    CHECK_EQ(blz_watch_changed(NULL), -EINVAL);
    blz_watch_changed_future f;
    test_waker tw;
    test_waker_init(&tw);
    blz_watch_changed_fut(NULL, &f);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_READY);
    CHECK_EQ(f.base.result, -EINVAL);
    blz_watch_close(NULL);
    blz_watch_deinit(NULL);
    blz_watch_deinit(&w);
    CHECK_EQ(blz_test_alloc_live(), 0);
}

BLZ_TEST(watch_latest_value_and_versions)
{
    blz_watch w;
    uint64_t v = 10, out = 0;
    CHECK_OK(blz_watch_init(&w, sizeof v, &v));
    CHECK_EQ(blz_watch_get(&w, &out), 1);
    CHECK_EQ(out, 10);
    blz_watch_rx rx;
    CHECK_OK(blz_watch_subscribe(&w, &rx));
    CHECK_EQ(blz_watch_rx_has_changed(&rx), 0);
    for (uint64_t i = 11; i <= 13; i++) {
        CHECK_OK(blz_watch_send(&w, &i));
    }
    CHECK_EQ(blz_watch_rx_has_changed(&rx), 1);
    /* One change wait covers all three sends: skip to the latest. */
    CHECK_OK(blz_watch_changed(&rx));
    CHECK_EQ(blz_watch_rx_has_changed(&rx), 0);
    CHECK_EQ(blz_watch_rx_borrow(&rx, &out), 4);
    CHECK_EQ(out, 13);
    blz_watch_rx rx2;
    CHECK_OK(blz_watch_subscribe(&w, &rx2));
    v = 14;
    CHECK_OK(blz_watch_send(&w, &v));
    CHECK_EQ(blz_watch_rx_borrow_and_update(&rx2, &out), 5);
    CHECK_EQ(out, 14);
    CHECK_EQ(blz_watch_rx_has_changed(&rx2), 0);
    CHECK_EQ(blz_watch_rx_has_changed(&rx), 1);
    blz_watch_deinit(&w);
}

BLZ_TEST(watch_odd_sizes)
{
    unsigned char init[13], out[14];
    memset(init, 0xAB, sizeof init);
    blz_watch w;
    CHECK_OK(blz_watch_init(&w, sizeof init, init));
    out[13] = 0x55;
    CHECK_EQ(blz_watch_get(&w, out), 1);
    CHECK_EQ(memcmp(out, init, sizeof init), 0);
    CHECK_EQ(out[13], 0x55); /* exactly elem_size bytes written */
    memset(init, 0x11, sizeof init);
    CHECK_OK(blz_watch_send(&w, init));
    CHECK_EQ(blz_watch_get(&w, out), 2);
    CHECK_EQ(memcmp(out, init, sizeof init), 0);
    blz_watch_deinit(&w);
}

BLZ_TEST(watch_changed_by_hand_and_close)
{
    blz_watch w;
    int v = 0;
    CHECK_OK(blz_watch_init(&w, sizeof v, &v));
    blz_watch_rx a, b;
    CHECK_OK(blz_watch_subscribe(&w, &a));
    CHECK_OK(blz_watch_subscribe(&w, &b));
    blz_watch_changed_future fa, fb;
    test_waker ta, tb;
    test_waker_init(&ta);
    test_waker_init(&tb);
    blz_watch_changed_fut(&a, &fa);
    blz_watch_changed_fut(&b, &fb);
    CHECK_EQ(poll_with(&fa.base, &ta), BLZ_PENDING);
    CHECK_EQ(poll_with(&fa.base, &ta), BLZ_PENDING);
    CHECK_EQ(poll_with(&fb.base, &tb), BLZ_PENDING);
    v = 1;
    CHECK_OK(blz_watch_send(&w, &v)); /* wakes every watcher */
    CHECK_EQ(test_wakes(&ta), 1);
    CHECK_EQ(test_wakes(&tb), 1);
    CHECK_EQ(poll_with(&fa.base, &ta), BLZ_READY);
    CHECK_EQ(fa.base.result, 0);
    blz_future_drop(&fb.base); /* woken then dropped: a broadcast owes nobody */
    CHECK_NO_WAKER_REFS(&ta);
    CHECK_NO_WAKER_REFS(&tb);
    /* A send with no one waiting wakes nobody and costs no lock. */
    v = 2;
    CHECK_OK(blz_watch_send(&w, &v));
    /* Close: b has an unseen version, so its wait still succeeds once. */
    blz_watch_changed_fut(&a, &fa);
    CHECK_EQ(poll_with(&fa.base, &ta), BLZ_READY); /* version 3 unseen by a */
    blz_watch_changed_fut(&a, &fa);
    CHECK_EQ(poll_with(&fa.base, &ta), BLZ_PENDING);
    blz_watch_close(&w);
    blz_watch_close(&w);
    CHECK_EQ(poll_with(&fa.base, &ta), BLZ_READY);
    CHECK_EQ(fa.base.result, -EPIPE);
    CHECK_EQ(blz_watch_send(&w, &v), -EPIPE);
    CHECK_OK(blz_watch_changed(&b)); /* unseen version 3 */
    CHECK_EQ(blz_watch_changed(&b), -EPIPE);
    CHECK_EQ(blz_watch_rx_has_changed(&b), -EPIPE);
    int out;
    CHECK_EQ(blz_watch_get(&w, &out), 3); /* the value stays readable */
    CHECK_EQ(out, 2);
    CHECK_NO_WAKER_REFS(&ta);
    blz_watch_deinit(&w);
}

/* A watcher that subscribes after the close: the last value is readable, and
 * there is nothing to wait for (-EPIPE at once, no hang). */
BLZ_TEST(watch_subscribe_after_close)
{
    blz_watch w;
    int v = 1, out = 0;
    CHECK_OK(blz_watch_init(&w, sizeof v, &v));
    v = 2;
    CHECK_OK(blz_watch_send(&w, &v));
    blz_watch_close(&w);
    blz_watch_rx late;
    CHECK_OK(blz_watch_subscribe(&w, &late));
    CHECK_EQ(blz_watch_receivers(&w), 1);
    CHECK_EQ(blz_watch_rx_has_changed(&late), -EPIPE);
    CHECK_EQ(blz_watch_changed(&late), -EPIPE);
    blz_watch_changed_future f;
    test_waker tw;
    test_waker_init(&tw);
    blz_watch_changed_fut(&late, &f);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_READY);
    CHECK_EQ(f.base.result, -EPIPE);
    CHECK_NO_WAKER_REFS(&tw);
    CHECK_EQ(blz_watch_rx_borrow(&late, &out), 2);
    CHECK_EQ(out, 2);
    blz_watch_unsubscribe(&late);
    CHECK_OK(blz_watch_unwatched(&w));
    blz_watch_deinit(&w);
}

BLZ_TEST(watch_allocates_nothing_per_op)
{
    blz_test_counting_allocator_install();
    blz_watch w;
    uint64_t v = 0;
    CHECK_OK(blz_watch_init(&w, sizeof v, &v));
    long before = blz_test_alloc_count();
    for (uint64_t i = 0; i < 10000; i++) {
        CHECK_OK(blz_watch_send(&w, &i));
        CHECK_EQ(blz_watch_get(&w, &v), i + 2);
        CHECK_EQ(v, i);
    }
    CHECK_EQ(blz_test_alloc_count() - before, 0);
    blz_watch_deinit(&w);
    CHECK_EQ(blz_test_alloc_live(), 0);
}

/* ---- two-thread hammer: no torn read -------------------------------------- */

typedef struct wval {
    uint64_t a;
    uint64_t b[6]; /* all derived from a */
    uint32_t tail;
} wval;

static void
wval_fill(wval *x, uint64_t a)
{
    x->a = a;
    for (int i = 0; i < 6; i++) {
        x->b[i] = ~a ^ ((uint64_t) i << 56);
    }
    x->tail = (uint32_t) (a * 2654435761u);
}

static bool
wval_whole(const wval *x)
{
    for (int i = 0; i < 6; i++) {
        if (x->b[i] != (~x->a ^ ((uint64_t) i << 56))) {
            return false;
        }
    }
    return x->tail == (uint32_t) (x->a * 2654435761u);
}

#define HAMMER       CHAN_SCALE(500000, 30000)
#define HAMMER_READS 1000 /* reads that must overlap the writer */

static blz_watch hw;
static atomic_int hammer_done;
static atomic_long hammer_reads;  /* the reader's count so far */
static atomic_ullong hammer_last; /* the writer's last value */

/* Sends at least HAMMER values, and goes on until the reader has read
 * HAMMER_READS times meanwhile: a writer that finished before the reader got
 * going would test nothing. */
static void *
hammer_writer(void *arg)
{
    (void) arg;
    uint64_t i = 0;
    do {
        i++;
        wval x;
        wval_fill(&x, i);
        CHECK_OK(blz_watch_send(&hw, &x));
    } while (i < HAMMER ||
             atomic_load_explicit(&hammer_reads, memory_order_relaxed) < HAMMER_READS);
    atomic_store(&hammer_last, i);
    atomic_store(&hammer_done, 1);
    return NULL;
}

BLZ_TEST(watch_no_torn_reads_two_thread_hammer)
{
    wval x;
    wval_fill(&x, 0);
    CHECK_OK(blz_watch_init(&hw, sizeof x, &x));
    atomic_store(&hammer_done, 0);
    atomic_store(&hammer_reads, 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, hammer_writer, NULL), 0);
    uint64_t last_ver = 0, last_a = 0;
    long reads = 0;
    while (!atomic_load(&hammer_done)) {
        uint64_t ver = blz_watch_get(&hw, &x);
        CHECK(wval_whole(&x));
        CHECK_GE(ver, last_ver);
        CHECK_GE(x.a, last_a);
        CHECK_EQ(ver, x.a + 1); /* the version names exactly this value */
        last_ver = ver;
        last_a = x.a;
        atomic_store_explicit(&hammer_reads, ++reads, memory_order_relaxed);
    }
    CHECK_EQ(pthread_join(th, NULL), 0);
    uint64_t sent = atomic_load(&hammer_last);
    CHECK_GE(sent, (uint64_t) HAMMER);
    CHECK_EQ(blz_watch_get(&hw, &x), sent + 1);
    CHECK_EQ(x.a, sent);
    CHECK_GE(reads, HAMMER_READS);
    blz_watch_deinit(&hw);
}

/* Two writers and a reader: writers serialise, readers see whole values. */
static void *
hammer_writer2(void *arg)
{
    uint64_t base = (uint64_t) (uintptr_t) arg;
    for (uint64_t i = 1; i <= HAMMER / 4; i++) {
        wval x;
        wval_fill(&x, base + i);
        CHECK_OK(blz_watch_send(&hw, &x));
    }
    return NULL;
}

static void *
hammer_reader(void *arg)
{
    (void) arg;
    uint64_t last = 0;
    while (!atomic_load(&hammer_done)) {
        wval x;
        uint64_t ver = blz_watch_get(&hw, &x);
        CHECK(wval_whole(&x));
        CHECK_GE(ver, last);
        last = ver;
    }
    return NULL;
}

BLZ_TEST(watch_two_writers_one_reader)
{
    wval x;
    wval_fill(&x, 0);
    CHECK_OK(blz_watch_init(&hw, sizeof x, &x));
    atomic_store(&hammer_done, 0);
    pthread_t r, w1, w2;
    CHECK_EQ(pthread_create(&r, NULL, hammer_reader, NULL), 0);
    CHECK_EQ(pthread_create(&w1, NULL, hammer_writer2, (void *) (uintptr_t) 0), 0);
    CHECK_EQ(pthread_create(&w2, NULL, hammer_writer2, (void *) (uintptr_t) 1000000000), 0);
    CHECK_EQ(pthread_join(w1, NULL), 0);
    CHECK_EQ(pthread_join(w2, NULL), 0);
    atomic_store(&hammer_done, 1);
    CHECK_EQ(pthread_join(r, NULL), 0);
    CHECK_EQ(blz_watch_get(&hw, &x), (uint64_t) (HAMMER / 4) * 2 + 1);
    blz_watch_deinit(&hw);
}

/* ---- watchers in a runtime ------------------------------------------------ */

#define WR_SENDS CHAN_SCALE(20000, 2000)

static blz_watch rw;

static void *
watcher_fiber(void *arg)
{
    blz_watch_rx rx = *(blz_watch_rx *) arg; /* subscribed before any send */
    uint64_t last = 0, wakes = 0;
    for (;;) {
        int r = blz_watch_changed(&rx);
        if (r == -EPIPE) {
            break;
        }
        CHECK_OK(r);
        wval x;
        blz_watch_rx_borrow_and_update(&rx, &x);
        CHECK(wval_whole(&x));
        CHECK_GT(x.a, last);
        last = x.a;
        wakes++;
    }
    CHECK_EQ(last, (uint64_t) WR_SENDS); /* always ends on the latest value */
    return (void *) (uintptr_t) wakes;
}

typedef struct watch_task {
    blz_future base;
    blz_watch_rx rx;
    uint64_t last;
    blz_watch_changed_future ch;
} watch_task;

static blz_poll
watch_task_poll(blz_future *self, blz_context *cx)
{
    watch_task *t = (watch_task *) self;
    BLZ_ASYNC_BEGIN(self);
    for (;;) {
        blz_watch_changed_fut(&t->rx, &t->ch);
        BLZ_AWAIT(self, cx, &t->ch.base);
        if (t->ch.base.result == -EPIPE) {
            break;
        }
        {
            wval x;
            blz_watch_rx_borrow_and_update(&t->rx, &x);
            CHECK(wval_whole(&x));
            CHECK_GT(x.a, t->last);
            t->last = x.a;
        }
    }
    CHECK_EQ(t->last, (uint64_t) WR_SENDS);
    BLZ_ASYNC_RETURN(self, 0);
    BLZ_ASYNC_END(self);
}

static void
watch_task_drop(blz_future *self)
{
    blz_future_drop(&((watch_task *) self)->ch.base);
}

static const blz_future_vtable watch_task_vt = {watch_task_poll, watch_task_drop};

static void *
watch_rt_main(void *arg)
{
    (void) arg;
    blz_join *j[6];
    static blz_watch_rx rx[6];
    for (int i = 0; i < 6; i++) {
        CHECK_OK(blz_watch_subscribe(&rw, &rx[i]));
        if (i % 2) {
            watch_task t;
            memset(&t, 0, sizeof t);
            blz_future_init(&t.base, &watch_task_vt);
            t.rx = rx[i];
            CHECK_OK(blz_spawn_future(&t.base, sizeof t, &j[i]));
        } else {
            CHECK_OK(blz_spawn(watcher_fiber, &rx[i], &j[i]));
        }
    }
    for (uint64_t i = 1; i <= WR_SENDS; i++) {
        wval x;
        wval_fill(&x, i);
        CHECK_OK(blz_watch_send(&rw, &x));
        if (i % 64 == 0) {
            blz_yield();
        }
    }
    blz_watch_close(&rw);
    for (int i = 0; i < 6; i++) {
        CHECK_OK(blz_join_wait(j[i], NULL));
    }
    return NULL;
}

BLZ_TEST(watch_watchers_in_runtime_end_on_latest)
{
    wval x;
    wval_fill(&x, 0);
    CHECK_OK(blz_watch_init(&rw, sizeof x, &x));
    blz_runtime *rt = chan_new_rt(2);
    CHECK_OK(blz_runtime_block_on(rt, watch_rt_main, NULL, NULL));
    blz_runtime_free(rt);
    blz_watch_deinit(&rw);
}

/* ---- watchers leaving: unsubscribe, receivers, unwatched ---------------------- */

BLZ_TEST(watch_unwatched_by_hand)
{
    blz_watch w;
    int v = 0;
    CHECK_OK(blz_watch_init(&w, sizeof v, &v));
    CHECK_EQ(blz_watch_receivers(&w), 0);
    CHECK_OK(blz_watch_unwatched(&w)); /* nobody subscribed: at once */
    blz_watch_rx a, b;
    CHECK_OK(blz_watch_subscribe(&w, &a));
    CHECK_OK(blz_watch_subscribe(&w, &b));
    CHECK_EQ(blz_watch_receivers(&w), 2);

    blz_watch_unwatched_future f;
    test_waker t;
    test_waker_init(&t);
    blz_watch_unwatched_fut(&w, &f);
    CHECK_EQ(poll_with(&f.base, &t), BLZ_PENDING);
    CHECK_EQ(poll_with(&f.base, &t), BLZ_PENDING); /* a second poll stays linked once */
    blz_watch_unsubscribe(&a);
    CHECK_EQ(blz_watch_receivers(&w), 1);
    CHECK_EQ(test_wakes(&t), 0); /* one watcher is left */
    blz_watch_unsubscribe(&a);   /* a second time: nothing */
    CHECK_EQ(blz_watch_receivers(&w), 1);
    blz_watch_unsubscribe(&b);
    CHECK_EQ(blz_watch_receivers(&w), 0);
    CHECK_EQ(test_wakes(&t), 1);
    CHECK_EQ(poll_with(&f.base, &t), BLZ_READY);
    CHECK_EQ(f.base.result, 0);
    CHECK_NO_WAKER_REFS(&t);

    /* An unsubscribed watcher is unattached until it subscribes again. */
    CHECK_EQ(blz_watch_rx_has_changed(&a), -EINVAL);
    CHECK_EQ(blz_watch_rx_borrow(&a, &v), 0);
    CHECK_EQ(blz_watch_changed(&a), -EINVAL);
    CHECK_OK(blz_watch_subscribe(&w, &a));
    CHECK_EQ(blz_watch_receivers(&w), 1);
    CHECK_EQ(blz_watch_rx_has_changed(&a), 0);

    /* A wait dropped while linked leaves nothing behind. */
    blz_watch_unwatched_fut(&w, &f);
    CHECK_EQ(poll_with(&f.base, &t), BLZ_PENDING);
    blz_future_drop(&f.base);
    CHECK_NO_WAKER_REFS(&t);
    blz_watch_unsubscribe(&a);
    CHECK_EQ(test_wakes(&t), 1); /* unchanged: the dropped wait was not woken */

    CHECK_EQ(blz_watch_unwatched(NULL), -EINVAL);
    blz_watch_unwatched_fut(NULL, &f);
    CHECK_EQ(poll_with(&f.base, &t), BLZ_READY);
    CHECK_EQ(f.base.result, -EINVAL);
    blz_watch_unwatched_fut(&w, NULL);
    CHECK_EQ(blz_watch_receivers(NULL), 0);
    blz_watch_unsubscribe(NULL);
    blz_watch_deinit(&w);
}

#define LEAVERS      4
#define LEAVE_ROUNDS CHAN_SCALE(1000, 100)

typedef struct leave_run {
    blz_watch w;
    blz_watch_rx rx[LEAVERS];
    atomic_int left[LEAVERS]; /* set by each watcher just before it unsubscribes */
    atomic_int go;            /* the last watcher leaves as the wait starts */
    atomic_int waited;        /* the unwatched wait returned */
    int result;
    int saw_all_left;
} leave_run;

typedef struct leaver_arg {
    leave_run *r;
    int i;
} leaver_arg;

/* Spins until the producer says go (yielding now and then: 2 cores, 6 threads). */
static void
wait_go(leave_run *r)
{
    for (unsigned n = 1; !atomic_load(&r->go); n++) {
        if (n % 1024 == 0) {
            sched_yield();
        }
    }
}

/* Waits for a few changes (more for later watchers), then leaves; the last one
 * leaves the moment the unwatched wait starts, so the two race. */
static void *
leaver(void *arg)
{
    leaver_arg *a = arg;
    leave_run *r = a->r;
    for (int k = 0; k <= a->i * 3; k++) {
        CHECK_OK(blz_watch_changed(&r->rx[a->i]));
    }
    if (a->i == LEAVERS - 1) {
        wait_go(r);
    }
    atomic_store_explicit(&r->left[a->i], 1, memory_order_relaxed);
    blz_watch_unsubscribe(&r->rx[a->i]);
    return NULL;
}

static void *
unwatched_waiter(void *arg)
{
    leave_run *r = arg;
    wait_go(r);
    r->result = blz_watch_unwatched(&r->w);
    /* Whatever each watcher did before it left is visible once the wait ends. */
    int all = 1;
    for (int i = 0; i < LEAVERS; i++) {
        all &= atomic_load_explicit(&r->left[i], memory_order_relaxed);
    }
    r->saw_all_left = all;
    atomic_store(&r->waited, 1);
    return NULL;
}

BLZ_TEST(watch_unwatched_threads_leaving)
{
    static leave_run r;
    for (int round = 0; round < LEAVE_ROUNDS; round++) {
        memset(&r, 0, sizeof r);
        int v = 0;
        CHECK_OK(blz_watch_init(&r.w, sizeof v, &v));
        for (int i = 0; i < LEAVERS; i++) {
            CHECK_OK(blz_watch_subscribe(&r.w, &r.rx[i]));
        }
        pthread_t waiter, t[LEAVERS];
        leaver_arg la[LEAVERS];
        CHECK_OK(pthread_create(&waiter, NULL, unwatched_waiter, &r));
        for (int i = 0; i < LEAVERS; i++) {
            la[i] = (leaver_arg){&r, i};
            CHECK_OK(pthread_create(&t[i], NULL, leaver, &la[i]));
        }
        /* The producer: values until nobody watches (bounded, so a lost wake fails). */
        long sent = 0;
        while (!atomic_load(&r.waited)) {
            CHECK_LT(sent, 50000000L);
            v++;
            CHECK_OK(blz_watch_send(&r.w, &v));
            if (++sent % 16 == 0) {
                sched_yield();
            }
            /* All but the last have left, and it has seen its changes: race them. */
            if (blz_watch_receivers(&r.w) == 1 && sent > 64 * LEAVERS) {
                atomic_store(&r.go, 1);
            }
        }
        for (int i = 0; i < LEAVERS; i++) {
            CHECK_OK(pthread_join(t[i], NULL));
        }
        CHECK_OK(pthread_join(waiter, NULL));
        CHECK_EQ(r.result, 0);
        CHECK_EQ(r.saw_all_left, 1);
        CHECK_EQ(blz_watch_receivers(&r.w), 0);
        blz_watch_deinit(&r.w);
    }
}

/* ---- a send racing the close ---------------------------------------------------------- */

/* A large value, so a send's copy is a window for the close to land in. */
#define RACE_WORDS 4096

typedef struct send_close_race {
    blz_watch w;
    blz_watch_rx rx;
    atomic_int go;
    int send_rc;
    uint64_t seen; /* the last version the watcher borrowed */
    uint64_t value[RACE_WORDS];
    uint64_t out[RACE_WORDS];
} send_close_race;

static void
race_start(send_close_race *r)
{
    while (!atomic_load(&r->go)) {
    }
}

static void *
race_send(void *arg)
{
    send_close_race *r = arg;
    race_start(r);
    r->send_rc = blz_watch_send(&r->w, r->value);
    return NULL;
}

static void *
race_close(void *arg)
{
    send_close_race *r = arg;
    race_start(r);
    blz_watch_close(&r->w);
    return NULL;
}

static void *
race_watch(void *arg)
{
    send_close_race *r = arg;
    race_start(r);
    for (;;) {
        int rc = blz_watch_rx_has_changed(&r->rx);
        if (rc == 1) {
            r->seen = blz_watch_rx_borrow_and_update(&r->rx, r->out);
        } else if (rc == -EPIPE) {
            return NULL;
        } else {
            CHECK_EQ(rc, 0);
        }
    }
}

/* A send that returns 0 was made before the close: a watcher sees its
 * version before -EPIPE. One that returns -EPIPE changed nothing. Until
 * session 21 a send could pass its look at the close, store its version
 * after a watcher had already ended, and still return 0. */
BLZ_TEST(watch_send_racing_close_is_seen_or_refused)
{
    static send_close_race r;
    int sent = 0;
    /* Three threads a round: under an emulator, which keeps memory of every
     * thread that ever ran (gigabytes at 20,000 rounds), a few only. */
    int rounds = blz_test_emulator() ? 100 : CHAN_SCALE(20000, 1000);
    for (int round = 0; round < rounds; round++) {
        memset(r.value, 0, sizeof r.value);
        CHECK_OK(blz_watch_init(&r.w, sizeof r.value, r.value));
        CHECK_OK(blz_watch_subscribe(&r.w, &r.rx));
        r.seen = 1;
        r.value[0] = 2;
        atomic_store(&r.go, 0);
        pthread_t th[3];
        CHECK_EQ(pthread_create(&th[0], NULL, race_send, &r), 0);
        CHECK_EQ(pthread_create(&th[1], NULL, race_close, &r), 0);
        CHECK_EQ(pthread_create(&th[2], NULL, race_watch, &r), 0);
        atomic_store(&r.go, 1);
        for (int i = 0; i < 3; i++) {
            CHECK_EQ(pthread_join(th[i], NULL), 0);
        }
        if (r.send_rc == 0) {
            sent++;
            CHECK_EQ(r.seen, 2);
            CHECK_EQ(r.out[0], 2);
        } else {
            CHECK_EQ(r.send_rc, -EPIPE);
            CHECK_EQ(r.seen, 1);
            CHECK_EQ(blz_watch_get(&r.w, r.out), 1); /* nothing changed */
        }
        blz_watch_deinit(&r.w);
    }
    CHECK_GT(sent, 0); /* both outcomes happen; the sends that count are these */
}
