/*
 * Select: the first ready branch wins and delivers; losing branches are
 * dropped (waiters unlinked, nothing consumed, nothing sent); fairness with
 * BLZ_SELECT_FAIR; the timeout branch; mixed branch kinds (send, receive,
 * oneshot, watch); and, under concurrency, no message lost or delivered
 * twice through selecting consumers.
 */
#include "chan_util.h"

/* blz-test: timeout=120 */

BLZ_TEST(select_errors)
{
    CHECK_EQ(blz_chan_select(NULL, 2, UINT64_MAX, 0), -EINVAL);
    blz_future *none[1] = {NULL};
    CHECK_EQ(blz_chan_select(none, 1, UINT64_MAX, 0), -EINVAL);
    CHECK_EQ(blz_chan_select(none, 0, UINT64_MAX, 0), -EINVAL); /* nothing to wait for */
    blz_chan_select_fut(NULL, 0, 0, 0, NULL);                   /* ignored */
    blz_chan *chans[1] = {NULL};
    void *outs[1] = {NULL};
    CHECK_EQ(blz_chan_select_recv(chans, outs, 1, UINT64_MAX), -EINVAL);
    CHECK_EQ(blz_chan_select_recv(chans, outs, 0, UINT64_MAX), -EINVAL);
    CHECK_EQ(blz_chan_select_recv(chans, outs, BLZ_CHAN_SELECT_MAX + 1, UINT64_MAX), -EINVAL);
}

BLZ_TEST(select_ready_branch_wins_others_untouched)
{
    blz_chan a, b;
    CHECK_OK(blz_chan_init(&a, sizeof(int), 4));
    CHECK_OK(blz_chan_init(&b, sizeof(int), 4));
    int x = 1, y = 2;
    CHECK_OK(blz_chan_try_send(&b, &y));
    int oa = -1, ob = -1;
    blz_chan_recv_future fa, fb;
    blz_chan_recv_fut(&a, &oa, &fa);
    blz_chan_recv_fut(&b, &ob, &fb);
    blz_future *br[2] = {&fa.base, &fb.base};
    CHECK_EQ(blz_chan_select(br, 2, UINT64_MAX, 0), 1);
    CHECK_EQ(ob, 2);
    CHECK_EQ(fb.base.result, 0);
    CHECK_EQ(oa, -1);
    /* The loser was dropped: a send to a wakes nobody and stays in a. */
    CHECK_OK(blz_chan_try_send(&a, &x));
    CHECK_EQ(blz_chan_len(&a), 1);
    blz_chan_deinit(&a);
    blz_chan_deinit(&b);
}

/* Every branch ready at once, one per channel kind: only the winner takes its
 * value; each loser's is still in its channel, next in line. */
BLZ_TEST(select_all_ready_across_kinds_takes_one)
{
    blz_uchan u;
    blz_broadcast b;
    blz_broadcast_rx rx;
    blz_chan c;
    blz_oneshot o[100];
    CHECK_OK(blz_uchan_init(&u, sizeof(int)));
    CHECK_OK(blz_broadcast_init(&b, sizeof(int), 4));
    CHECK_OK(blz_broadcast_subscribe(&b, &rx));
    CHECK_OK(blz_chan_init(&c, sizeof(int), 4));
    int wins[4] = {0, 0, 0, 0};
    for (int round = 0; round < 100; round++) {
        CHECK_OK(blz_oneshot_init(&o[round], sizeof(int)));
        CHECK_OK(blz_uchan_send(&u, &round));
        CHECK_EQ(blz_broadcast_send(&b, &round), 1);
        CHECK_OK(blz_chan_try_send(&c, &round));
        CHECK_OK(blz_oneshot_send(&o[round], &round));
        int out[4] = {-1, -1, -1, -1};
        blz_uchan_recv_future fu;
        blz_broadcast_recv_future fb;
        blz_chan_recv_future fc;
        blz_oneshot_recv_future fo;
        blz_uchan_recv_fut(&u, &out[0], &fu);
        blz_broadcast_recv_fut(&rx, &out[1], &fb);
        blz_chan_recv_fut(&c, &out[2], &fc);
        blz_oneshot_recv_fut(&o[round], &out[3], &fo);
        blz_future *br[4] = {&fu.base, &fb.base, &fc.base, &fo.base};
        int w = blz_chan_select(br, 4, UINT64_MAX, BLZ_SELECT_FAIR);
        CHECK(w >= 0 && w < 4);
        wins[w]++;
        for (int i = 0; i < 4; i++) {
            CHECK_EQ(out[i], i == w ? round : -1); /* losers wrote nothing */
        }
        /* The losers' values are still there. */
        if (w != 0) {
            CHECK_OK(blz_uchan_try_recv(&u, &out[0]));
        }
        if (w != 1) {
            CHECK_OK(blz_broadcast_try_recv(&rx, &out[1]));
        }
        if (w != 2) {
            CHECK_OK(blz_chan_try_recv(&c, &out[2]));
        }
        if (w != 3) {
            CHECK_OK(blz_oneshot_try_recv(&o[round], &out[3]));
        }
        for (int i = 0; i < 4; i++) {
            CHECK_EQ(out[i], round);
        }
    }
    for (int i = 0; i < 4; i++) {
        CHECK_GT(wins[i], 0);
    }
    blz_broadcast_unsubscribe(&rx);
    blz_broadcast_deinit(&b);
    blz_uchan_deinit(&u);
    blz_chan_deinit(&c);
}

BLZ_TEST(select_pending_then_woken)
{
    blz_chan a, b;
    CHECK_OK(blz_chan_init(&a, sizeof(int), 4));
    CHECK_OK(blz_chan_init(&b, sizeof(int), 4));
    int oa = -1, ob = -1;
    blz_chan_recv_future fa, fb;
    blz_chan_recv_fut(&a, &oa, &fa);
    blz_chan_recv_fut(&b, &ob, &fb);
    blz_future *br[2] = {&fa.base, &fb.base};
    blz_chan_select_future s;
    blz_chan_select_fut(br, 2, UINT64_MAX, BLZ_SELECT_FAIR, &s);
    test_waker tw;
    test_waker_init(&tw);
    CHECK_EQ(poll_with(&s.base, &tw), BLZ_PENDING);
    CHECK_EQ(poll_with(&s.base, &tw), BLZ_PENDING);
    int v = 5;
    CHECK_OK(blz_chan_try_send(&a, &v));
    CHECK_EQ(test_wakes(&tw), 1);
    CHECK_EQ(poll_with(&s.base, &tw), BLZ_READY);
    CHECK_EQ(s.base.result, 0);
    CHECK_EQ(oa, 5);
    CHECK_NO_WAKER_REFS(&tw); /* b's waiter is gone with its waker */
    v = 6;
    CHECK_OK(blz_chan_try_send(&b, &v));
    CHECK_EQ(test_wakes(&tw), 1);
    CHECK_EQ(ob, -1);
    CHECK_EQ(blz_chan_len(&b), 1);
    /* Dropping a pending select drops every branch. */
    blz_chan_recv_fut(&a, &oa, &fa);
    blz_chan_recv_fut(&a, &ob, &fb);
    blz_chan_select_fut(br, 2, UINT64_MAX, 0, &s);
    CHECK_EQ(poll_with(&s.base, &tw), BLZ_PENDING);
    blz_future_drop(&s.base);
    CHECK_NO_WAKER_REFS(&tw);
    blz_chan_deinit(&a);
    blz_chan_deinit(&b);
}

BLZ_TEST(select_fairness)
{
    blz_chan a, b;
    CHECK_OK(blz_chan_init(&a, sizeof(int), 1024));
    CHECK_OK(blz_chan_init(&b, sizeof(int), 1024));
    int wins[2] = {0, 0}, v = 0;
    for (int i = 0; i < 1000; i++) {
        CHECK_OK(blz_chan_try_send(&a, &v));
        CHECK_OK(blz_chan_try_send(&b, &v));
    }
    /* Both always ready: without FAIR the first branch always wins ... */
    for (int i = 0; i < 100; i++) {
        int oa, ob;
        blz_chan_recv_future fa, fb;
        blz_chan_recv_fut(&a, &oa, &fa);
        blz_chan_recv_fut(&b, &ob, &fb);
        blz_future *br[2] = {&fa.base, &fb.base};
        CHECK_EQ(blz_chan_select(br, 2, UINT64_MAX, 0), 0);
    }
    /* ... with FAIR both get their turn, and only the winner consumed. */
    for (int i = 0; i < 800; i++) {
        int oa, ob;
        blz_chan_recv_future fa, fb;
        blz_chan_recv_fut(&a, &oa, &fa);
        blz_chan_recv_fut(&b, &ob, &fb);
        blz_future *br[2] = {&fa.base, &fb.base};
        int w = blz_chan_select(br, 2, UINT64_MAX, BLZ_SELECT_FAIR);
        CHECK(w == 0 || w == 1);
        wins[w]++;
    }
    CHECK_GT(wins[0], 250);
    CHECK_GT(wins[1], 250);
    CHECK_EQ(blz_chan_len(&a), (size_t) (1000 - 100 - wins[0]));
    CHECK_EQ(blz_chan_len(&b), (size_t) (1000 - wins[1]));
    blz_chan_deinit(&a);
    blz_chan_deinit(&b);
}

BLZ_TEST(select_timeout_consumes_nothing)
{
    blz_chan a;
    CHECK_OK(blz_chan_init(&a, sizeof(int), 1));
    int out = -1;
    blz_chan_recv_future fa;
    blz_chan_recv_fut(&a, &out, &fa);
    blz_future *br[1] = {&fa.base};
    /* On a plain thread: parks until the deadline. */
    CHECK_EQ(blz_chan_select(br, 1, blz_now() + (uint64_t) blz_ms(20), 0), -ETIMEDOUT);
    CHECK_EQ(out, -1);
    /* A deadline already passed with a ready branch: the branch still wins. */
    int v = 3;
    CHECK_OK(blz_chan_try_send(&a, &v));
    blz_chan_recv_fut(&a, &out, &fa);
    CHECK_EQ(blz_chan_select(br, 1, 0, 0), 0);
    CHECK_EQ(out, 3);
    /* Only a deadline: a plain sleep. */
    CHECK_EQ(blz_chan_select(br, 0, blz_now() + (uint64_t) blz_ms(1), 0), -ETIMEDOUT);
    /* select_recv with a deadline and nothing coming. */
    blz_chan *chans[1] = {&a};
    void *outs[1] = {&out};
    CHECK_EQ(blz_chan_select_recv(chans, outs, 1, blz_now() + (uint64_t) blz_ms(5)), -ETIMEDOUT);
    blz_chan_deinit(&a);
}

BLZ_TEST(select_mixed_branch_kinds)
{
    blz_chan full;
    CHECK_OK(blz_chan_init(&full, sizeof(int), 1));
    int one = 1, two = 2;
    CHECK_OK(blz_chan_try_send(&full, &one));
    blz_oneshot os;
    CHECK_OK(blz_oneshot_init(&os, sizeof(int)));
    blz_watch w;
    int zero = 0;
    CHECK_OK(blz_watch_init(&w, sizeof zero, &zero));
    blz_watch_rx wrx;
    CHECK_OK(blz_watch_subscribe(&w, &wrx));

    blz_chan_send_future sf;
    blz_oneshot_recv_future of;
    blz_watch_changed_future wf;
    int oout = -1;
    blz_chan_send_fut(&full, &two, &sf);
    blz_oneshot_recv_fut(&os, &oout, &of);
    blz_watch_changed_fut(&wrx, &wf);
    blz_future *br[3] = {&sf.base, &of.base, &wf.base};
    blz_chan_select_future s;
    blz_chan_select_fut(br, 3, UINT64_MAX, BLZ_SELECT_FAIR, &s);
    test_waker tw;
    test_waker_init(&tw);
    CHECK_EQ(poll_with(&s.base, &tw), BLZ_PENDING);
    int nine = 9;
    CHECK_OK(blz_oneshot_send(&os, &nine));
    CHECK_EQ(poll_with(&s.base, &tw), BLZ_READY);
    CHECK_EQ(s.base.result, 1);
    CHECK_EQ(oout, 9);
    CHECK_NO_WAKER_REFS(&tw);
    /* The send branch lost: its item was never sent. */
    int v;
    CHECK_OK(blz_chan_try_recv(&full, &v));
    CHECK_EQ(v, 1);
    CHECK_EQ(blz_chan_try_recv(&full, &v), -EAGAIN);
    CHECK_EQ(blz_watch_rx_has_changed(&wrx), 0);
    blz_watch_deinit(&w);
    blz_chan_deinit(&full);
}

BLZ_TEST(select_recv_skips_closed_channels)
{
    blz_chan a, b;
    CHECK_OK(blz_chan_init(&a, sizeof(int), 2));
    CHECK_OK(blz_chan_init(&b, sizeof(int), 2));
    int x = 10, y = 20, oa = 0, ob = 0;
    CHECK_OK(blz_chan_try_send(&a, &x));
    blz_chan_close(&a);
    CHECK_OK(blz_chan_try_send(&b, &y));
    blz_chan *chans[2] = {&a, &b};
    void *outs[2] = {&oa, &ob};
    int got_a = 0, got_b = 0;
    for (int i = 0; i < 2; i++) {
        int r = blz_chan_select_recv(chans, outs, 2, UINT64_MAX);
        if (r == 0) {
            got_a++;
            CHECK_EQ(oa, 10);
        } else {
            CHECK_EQ(r, 1);
            got_b++;
            CHECK_EQ(ob, 20);
        }
    }
    CHECK_EQ(got_a, 1);
    CHECK_EQ(got_b, 1);
    blz_chan_close(&b);
    CHECK_EQ(blz_chan_select_recv(chans, outs, 2, UINT64_MAX), -EPIPE);
    blz_chan_deinit(&a);
    blz_chan_deinit(&b);
}

/* ---- concurrency: selecting consumers never lose or double-deliver ---------- */

#define SC_CHANS 4
#define SC_PROD  4
#define SC_PER   CHAN_SCALE(20000, 3000)
#define SC_TOTAL ((uint64_t) SC_PROD * SC_PER)

static blz_chan sc[SC_CHANS];
static atomic_uchar *sc_seen;
static atomic_ullong sc_count, sc_sum, sc_timeouts;

static void *
sc_producer(void *arg)
{
    uint64_t p = (uint64_t) (uintptr_t) arg;
    for (uint64_t i = 0; i < SC_PER; i++) {
        uint64_t v = p * SC_PER + i;
        CHECK_OK(blz_chan_send(&sc[(p + i) % SC_CHANS], &v));
    }
    return NULL;
}

static void
sc_record(uint64_t v)
{
    CHECK_LT(v, SC_TOTAL);
    CHECK_EQ(atomic_fetch_add(&sc_seen[v], 1), 0);
    atomic_fetch_add(&sc_count, 1);
    atomic_fetch_add(&sc_sum, v);
}

static void *
sc_consumer(void *arg)
{
    bool timeouts = arg != NULL;
    uint64_t vals[SC_CHANS];
    blz_chan *chans[SC_CHANS];
    void *outs[SC_CHANS];
    for (int i = 0; i < SC_CHANS; i++) {
        chans[i] = &sc[i];
        outs[i] = &vals[i];
    }
    for (;;) {
        /* Sometimes a short deadline: timing out must consume nothing. */
        blz_instant dl = timeouts ? blz_clock_now() + (uint64_t) blz_us(200) : UINT64_MAX;
        int r = blz_chan_select_recv(chans, outs, SC_CHANS, dl);
        if (r == -EPIPE) {
            return NULL;
        }
        if (r == -ETIMEDOUT) {
            atomic_fetch_add(&sc_timeouts, 1);
            continue;
        }
        CHECK_GE(r, 0);
        sc_record(vals[r]);
    }
}

/* A stackless consumer using the select future directly. */
typedef struct sc_task {
    blz_future base;
    uint64_t vals[SC_CHANS];
    blz_chan_recv_future rf[SC_CHANS];
    blz_future *br[SC_CHANS];
    blz_chan_select_future sel;
    int open;
} sc_task;

static blz_poll
sc_task_poll(blz_future *self, blz_context *cx)
{
    sc_task *t = (sc_task *) self;
    BLZ_ASYNC_BEGIN(self);
    for (;;) {
        for (int i = 0; i < SC_CHANS; i++) {
            blz_chan_recv_fut(&sc[i], &t->vals[i], &t->rf[i]);
            t->br[i] = &t->rf[i].base;
        }
        blz_chan_select_fut(t->br, SC_CHANS, UINT64_MAX, BLZ_SELECT_FAIR, &t->sel);
        BLZ_AWAIT(self, cx, &t->sel.base);
        {
            int w = t->sel.base.result;
            CHECK_GE(w, 0);
            if (t->rf[w].base.result == -EPIPE) {
                break; /* one closed and drained: hand the rest to the others */
            }
            CHECK_OK(t->rf[w].base.result);
            sc_record(t->vals[w]);
        }
    }
    BLZ_ASYNC_RETURN(self, 0);
    BLZ_ASYNC_END(self);
}

static void
sc_task_drop(blz_future *self)
{
    blz_future_drop(&((sc_task *) self)->sel.base);
}

static const blz_future_vtable sc_task_vt = {sc_task_poll, sc_task_drop};

static void *
sc_main(void *arg)
{
    (void) arg;
    blz_join *p[SC_PROD], *c[4];
    CHECK_OK(blz_spawn(sc_consumer, NULL, &c[0]));
    CHECK_OK(blz_spawn(sc_consumer, (void *) 1, &c[1]));
    for (int i = 2; i < 4; i++) {
        sc_task *t = calloc(1, sizeof *t);
        blz_future_init(&t->base, &sc_task_vt);
        CHECK_OK(blz_spawn_future(&t->base, sizeof *t, &c[i]));
        free(t);
    }
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, sc_consumer, NULL), 0);
    for (int i = 0; i < SC_PROD; i++) {
        CHECK_OK(blz_spawn(sc_producer, (void *) (uintptr_t) i, &p[i]));
    }
    for (int i = 0; i < SC_PROD; i++) {
        CHECK_OK(blz_join_wait(p[i], NULL));
    }
    for (int i = 0; i < SC_CHANS; i++) {
        blz_chan_close(&sc[i]);
    }
    for (int i = 0; i < 4; i++) {
        CHECK_OK(blz_join_wait(c[i], NULL));
    }
    CHECK_EQ(pthread_join(th, NULL), 0);
    return NULL;
}

BLZ_TEST(select_concurrent_exactly_once)
{
    sc_seen = calloc(SC_TOTAL, 1);
    atomic_store(&sc_count, 0);
    atomic_store(&sc_sum, 0);
    for (int i = 0; i < SC_CHANS; i++) {
        CHECK_OK(blz_chan_init(&sc[i], sizeof(uint64_t), (size_t) 1 + (size_t) i));
    }
    blz_runtime *rt = chan_new_rt(3);
    CHECK_OK(blz_runtime_block_on(rt, sc_main, NULL, NULL));
    blz_runtime_free(rt);
    CHECK_EQ(atomic_load(&sc_count), SC_TOTAL);
    CHECK_EQ(atomic_load(&sc_sum), SC_TOTAL * (SC_TOTAL - 1) / 2);
    for (uint64_t v = 0; v < SC_TOTAL; v++) {
        CHECK_EQ(atomic_load(&sc_seen[v]), 1);
    }
    for (int i = 0; i < SC_CHANS; i++) {
        CHECK_EQ(blz_chan_len(&sc[i]), 0);
        blz_chan_deinit(&sc[i]);
    }
    free(sc_seen);
}

/* A select that is ready stays so: polled again it keeps its winner and
 * polls no branch. It polled them all again, and the winner, a receive that
 * had already delivered, took the next item over the one it delivered. */
BLZ_TEST(select_ready_stays_ready)
{
    blz_chan a, b;
    CHECK_OK(blz_chan_init(&a, sizeof(int), 4));
    CHECK_OK(blz_chan_init(&b, sizeof(int), 4));
    int x = 1, y = 2;
    CHECK_OK(blz_chan_try_send(&a, &x));
    CHECK_OK(blz_chan_try_send(&a, &y));
    int oa = -1, ob = -1;
    blz_chan_recv_future fa, fb;
    blz_chan_recv_fut(&a, &oa, &fa);
    blz_chan_recv_fut(&b, &ob, &fb);
    blz_future *br[2] = {&fa.base, &fb.base};
    blz_chan_select_future sel;
    blz_chan_select_fut(br, 2, UINT64_MAX, 0, &sel);
    blz_context cx = {blz_waker_noop()};
    CHECK_EQ(blz_future_poll(&sel.base, &cx), BLZ_READY);
    CHECK_EQ(sel.base.result, 0);
    CHECK_EQ(oa, 1);
    CHECK_EQ(blz_future_poll(&sel.base, &cx), BLZ_READY);
    CHECK_EQ(sel.base.result, 0);
    CHECK_EQ(oa, 1);               /* not overwritten by the next item */
    CHECK_EQ(blz_chan_len(&a), 1); /* which is still in the channel */
    blz_future_drop(&sel.base);
    CHECK_OK(blz_chan_try_recv(&a, &oa));
    CHECK_EQ(oa, 2);
    blz_chan_deinit(&a);
    blz_chan_deinit(&b);
}

/* A channel future that returned BLZ_READY and is polled again keeps its
 * result and takes nothing more, as every blitzio future: a receive must not
 * take the next item into the buffer that holds the one it delivered, nor a
 * send send its item twice. */
BLZ_TEST(channel_futures_stay_ready)
{
    test_waker tw;
    test_waker_init(&tw);
    int v;

    blz_chan ch;
    CHECK_OK(blz_chan_init(&ch, sizeof(int), 4));
    int one = 1, two = 2;
    CHECK_OK(blz_chan_try_send(&ch, &one));
    CHECK_OK(blz_chan_try_send(&ch, &two));
    blz_chan_recv_future rf;
    blz_chan_recv_fut(&ch, &v, &rf);
    CHECK_EQ(poll_with(&rf.base, &tw), BLZ_READY);
    CHECK_EQ(v, 1);
    CHECK_EQ(poll_with(&rf.base, &tw), BLZ_READY);
    CHECK_OK(rf.base.result);
    CHECK_EQ(v, 1);
    CHECK_EQ(blz_chan_len(&ch), 1);
    blz_future_drop(&rf.base);
    blz_chan_send_future sf;
    int three = 3;
    blz_chan_send_fut(&ch, &three, &sf);
    CHECK_EQ(poll_with(&sf.base, &tw), BLZ_READY);
    CHECK_EQ(poll_with(&sf.base, &tw), BLZ_READY);
    CHECK_OK(sf.base.result);
    CHECK_EQ(blz_chan_len(&ch), 2);
    blz_future_drop(&sf.base);
    blz_chan_deinit(&ch);

    blz_uchan u;
    CHECK_OK(blz_uchan_init(&u, sizeof(int)));
    CHECK_OK(blz_uchan_send(&u, &one));
    CHECK_OK(blz_uchan_send(&u, &two));
    blz_uchan_recv_future uf;
    blz_uchan_recv_fut(&u, &v, &uf);
    CHECK_EQ(poll_with(&uf.base, &tw), BLZ_READY);
    CHECK_EQ(poll_with(&uf.base, &tw), BLZ_READY);
    CHECK_EQ(v, 1);
    CHECK_EQ(blz_uchan_len(&u), 1);
    blz_future_drop(&uf.base);
    blz_uchan_deinit(&u);

    blz_broadcast b;
    CHECK_OK(blz_broadcast_init(&b, sizeof(int), 4));
    blz_broadcast_rx rx;
    CHECK_OK(blz_broadcast_subscribe(&b, &rx));
    CHECK_OK(blz_broadcast_send(&b, &one));
    CHECK_OK(blz_broadcast_send(&b, &two));
    blz_broadcast_recv_future bf;
    blz_broadcast_recv_fut(&rx, &v, &bf);
    CHECK_EQ(poll_with(&bf.base, &tw), BLZ_READY);
    CHECK_EQ(poll_with(&bf.base, &tw), BLZ_READY);
    CHECK_EQ(v, 1);
    blz_future_drop(&bf.base);
    CHECK_OK(blz_broadcast_try_recv(&rx, &v));
    CHECK_EQ(v, 2); /* still there: the second poll took nothing */
    blz_broadcast_unsubscribe(&rx);
    blz_broadcast_deinit(&b);

    blz_oneshot o;
    CHECK_OK(blz_oneshot_init(&o, sizeof(int)));
    CHECK_OK(blz_oneshot_send(&o, &one));
    blz_oneshot_recv_future of;
    blz_oneshot_recv_fut(&o, &v, &of);
    CHECK_EQ(poll_with(&of.base, &tw), BLZ_READY);
    CHECK_OK(of.base.result);
    v = 0;
    CHECK_EQ(poll_with(&of.base, &tw), BLZ_READY);
    CHECK_OK(of.base.result); /* the value it delivered, not "nothing left" */
    blz_future_drop(&of.base);
    CHECK_NO_WAKER_REFS(&tw);
}
