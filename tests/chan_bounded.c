/*
 * Bounded channel: the try tier, futures polled by hand, close and drop
 * semantics (nothing lost, nothing duplicated), the typed wrapper, error
 * paths, zero allocation per operation, and the await tier on plain threads.
 */
#include "chan_util.h"

BLZ_TEST(chan_init_errors)
{
    blz_chan ch;
    CHECK_EQ(blz_chan_init(NULL, 8, 4), -EINVAL);
    CHECK_EQ(blz_chan_init(&ch, 0, 4), -EINVAL);
    CHECK_EQ(blz_chan_init(&ch, 8, 0), -EINVAL);
    CHECK_EQ(blz_chan_init(&ch, SIZE_MAX / 2, 4), -EINVAL);
    CHECK_EQ(blz_chan_init(&ch, 8, SIZE_MAX / 2), -EINVAL);
    CHECK_EQ(blz_chan_init(&ch, 1 << 20, SIZE_MAX >> 9), -EINVAL);
    blz_test_counting_allocator_install();
    blz_test_alloc_fail_after(0);
    CHECK_EQ(blz_chan_init(&ch, 8, 4), -ENOMEM);
    blz_test_alloc_fail_after(-1);
    CHECK_EQ(blz_test_alloc_live(), 0);
}

BLZ_TEST(chan_null_arguments)
{
    uint64_t v = 1;
    CHECK_EQ(blz_chan_try_send(NULL, &v), -EINVAL);
    CHECK_EQ(blz_chan_try_recv(NULL, &v), -EINVAL);
    CHECK_EQ(blz_chan_send(NULL, &v), -EINVAL);
    CHECK_EQ(blz_chan_recv(NULL, &v), -EINVAL);
    blz_chan ch;
    CHECK_OK(blz_chan_init(&ch, sizeof v, 2));
    CHECK_EQ(blz_chan_try_send(&ch, NULL), -EINVAL);
    CHECK_EQ(blz_chan_try_recv(&ch, NULL), -EINVAL);
    test_waker tw;
    test_waker_init(&tw);
    blz_chan_send_future sf;
    blz_chan_send_fut(&ch, NULL, &sf);
    CHECK_EQ(poll_with(&sf.base, &tw), BLZ_READY);
    CHECK_EQ(sf.base.result, -EINVAL);
    blz_chan_recv_future rf;
    blz_chan_recv_fut(NULL, &v, &rf);
    CHECK_EQ(poll_with(&rf.base, &tw), BLZ_READY);
    CHECK_EQ(rf.base.result, -EINVAL);
    blz_chan_send_fut(&ch, &v, NULL); /* ignored */
    blz_chan_close(NULL);
    blz_chan_deinit(NULL);
    CHECK(!blz_chan_is_closed(NULL));
    CHECK_EQ(blz_chan_len(NULL), 0);
    CHECK_EQ(blz_chan_capacity(NULL), 0);
    blz_chan_deinit(&ch);
    /* A deinitialised channel refuses politely. */
    CHECK_EQ(blz_chan_try_send(&ch, &v), -EINVAL);
    CHECK_EQ(blz_chan_try_recv(&ch, &v), -EINVAL);
    blz_chan_deinit(&ch);
}

BLZ_TEST(chan_fifo_full_empty)
{
    blz_chan ch;
    CHECK_OK(blz_chan_init(&ch, sizeof(uint64_t), 3));
    CHECK_EQ(blz_chan_capacity(&ch), 3);
    uint64_t v;
    CHECK_EQ(blz_chan_try_recv(&ch, &v), -EAGAIN);
    for (uint64_t i = 1; i <= 3; i++) {
        CHECK_OK(blz_chan_try_send(&ch, &i));
        CHECK_EQ(blz_chan_len(&ch), i);
    }
    uint64_t x = 99;
    CHECK_EQ(blz_chan_try_send(&ch, &x), -EAGAIN);
    for (uint64_t i = 1; i <= 3; i++) {
        CHECK_OK(blz_chan_try_recv(&ch, &v));
        CHECK_EQ(v, i);
    }
    CHECK_EQ(blz_chan_try_recv(&ch, &v), -EAGAIN);
    CHECK_EQ(blz_chan_len(&ch), 0);
    blz_chan_deinit(&ch);
}

BLZ_TEST(chan_wraps_many_laps_any_capacity)
{
    static const size_t caps[] = {1, 2, 3, 5, 7, 8, 9, 64, 100};
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        blz_chan ch;
        CHECK_OK(blz_chan_init(&ch, sizeof(uint32_t), caps[c]));
        uint32_t next_in = 0, next_out = 0, s = 7;
        for (int step = 0; step < 20000; step++) {
            if (test_rand(&s) & 1) {
                int r = blz_chan_try_send(&ch, &next_in);
                if (r == 0) {
                    next_in++;
                } else {
                    CHECK_EQ(r, -EAGAIN);
                    CHECK_EQ(next_in - next_out, caps[c]);
                }
            } else {
                uint32_t v;
                int r = blz_chan_try_recv(&ch, &v);
                if (r == 0) {
                    CHECK_EQ(v, next_out);
                    next_out++;
                } else {
                    CHECK_EQ(r, -EAGAIN);
                    CHECK_EQ(next_in, next_out);
                }
            }
            CHECK_EQ(blz_chan_len(&ch), next_in - next_out);
        }
        blz_chan_deinit(&ch);
    }
}

BLZ_TEST(chan_odd_item_sizes)
{
    struct big {
        unsigned char b[100];
    };
    blz_chan ch;
    CHECK_OK(blz_chan_init(&ch, sizeof(struct big), 4));
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 4; i++) {
            struct big x;
            memset(&x, round * 16 + i, sizeof x);
            CHECK_OK(blz_chan_try_send(&ch, &x));
        }
        for (int i = 0; i < 4; i++) {
            struct big x;
            CHECK_OK(blz_chan_try_recv(&ch, &x));
            for (size_t k = 0; k < sizeof x.b; k++) {
                CHECK_EQ(x.b[k], round * 16 + i);
            }
        }
    }
    blz_chan_deinit(&ch);

    CHECK_OK(blz_chan_init(&ch, 3, 2));
    unsigned char in[3] = {1, 2, 3}, out[4] = {0, 0, 0, 0xEE};
    CHECK_OK(blz_chan_try_send(&ch, in));
    CHECK_OK(blz_chan_try_recv(&ch, out));
    CHECK_EQ(out[0], 1);
    CHECK_EQ(out[2], 3);
    CHECK_EQ(out[3], 0xEE); /* exactly elem_size bytes are written */
    blz_chan_deinit(&ch);
}

BLZ_TEST(chan_close_keeps_items)
{
    blz_chan ch;
    CHECK_OK(blz_chan_init(&ch, sizeof(int), 4));
    for (int i = 0; i < 3; i++) {
        CHECK_OK(blz_chan_try_send(&ch, &i));
    }
    CHECK(!blz_chan_is_closed(&ch));
    blz_chan_close(&ch);
    blz_chan_close(&ch); /* idempotent */
    CHECK(blz_chan_is_closed(&ch));
    int x = 5;
    CHECK_EQ(blz_chan_try_send(&ch, &x), -EPIPE);
    CHECK_EQ(blz_chan_send(&ch, &x), -EPIPE);
    for (int i = 0; i < 3; i++) {
        int v;
        CHECK_OK(blz_chan_recv(&ch, &v));
        CHECK_EQ(v, i);
    }
    int v;
    CHECK_EQ(blz_chan_try_recv(&ch, &v), -EPIPE);
    CHECK_EQ(blz_chan_recv(&ch, &v), -EPIPE);
    blz_chan_deinit(&ch);
}

BLZ_TEST(chan_recv_future_woken_by_send)
{
    blz_chan ch;
    CHECK_OK(blz_chan_init(&ch, sizeof(int), 2));
    int out = 0;
    blz_chan_recv_future f;
    test_waker tw;
    test_waker_init(&tw);
    blz_chan_recv_fut(&ch, &out, &f);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_PENDING);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_PENDING); /* a spurious poll keeps it queued */
    CHECK_EQ(test_wakes(&tw), 0);
    int v = 42;
    CHECK_OK(blz_chan_try_send(&ch, &v));
    CHECK_EQ(test_wakes(&tw), 1);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_READY);
    CHECK_EQ(f.base.result, 0);
    CHECK_EQ(out, 42);
    CHECK_NO_WAKER_REFS(&tw);
    CHECK_EQ(blz_chan_len(&ch), 0);
    blz_chan_deinit(&ch);
}

/* Items of sizes other than 4, 8 and 16 bytes are copied out of line; the
 * waiter on the other side must still be woken, with the whole item. */
BLZ_TEST(chan_odd_item_sizes_wake_waiters)
{
    typedef struct {
        unsigned char b[24];
    } odd;
    blz_chan ch;
    CHECK_OK(blz_chan_init(&ch, sizeof(odd), 1));
    test_waker tw;
    test_waker_init(&tw);

    odd got = {{0}}, sent;
    memset(&sent, 0x5A, sizeof sent);
    blz_chan_recv_future rf;
    blz_chan_recv_fut(&ch, &got, &rf);
    CHECK_EQ(poll_with(&rf.base, &tw), BLZ_PENDING);
    CHECK_OK(blz_chan_try_send(&ch, &sent));
    CHECK_EQ(test_wakes(&tw), 1);
    CHECK_EQ(poll_with(&rf.base, &tw), BLZ_READY);
    CHECK_OK(rf.base.result);
    CHECK(memcmp(&got, &sent, sizeof got) == 0);

    odd first, second, out;
    memset(&first, 1, sizeof first);
    memset(&second, 2, sizeof second);
    CHECK_OK(blz_chan_try_send(&ch, &first));
    blz_chan_send_future sf;
    blz_chan_send_fut(&ch, &second, &sf);
    CHECK_EQ(poll_with(&sf.base, &tw), BLZ_PENDING);
    CHECK_OK(blz_chan_try_recv(&ch, &out));
    CHECK(memcmp(&out, &first, sizeof out) == 0);
    CHECK_EQ(test_wakes(&tw), 2);
    CHECK_EQ(poll_with(&sf.base, &tw), BLZ_READY);
    CHECK_OK(sf.base.result);
    CHECK_OK(blz_chan_try_recv(&ch, &out));
    CHECK(memcmp(&out, &second, sizeof out) == 0);
    CHECK_NO_WAKER_REFS(&tw);
    blz_chan_deinit(&ch);
}

BLZ_TEST(chan_woken_sender_really_sends)
{
    /* The seed's SendFuture reported success after a wake without sending. */
    blz_chan ch;
    CHECK_OK(blz_chan_init(&ch, sizeof(int), 1));
    int a = 1, b = 2;
    CHECK_OK(blz_chan_try_send(&ch, &a));
    blz_chan_send_future f;
    test_waker tw;
    test_waker_init(&tw);
    blz_chan_send_fut(&ch, &b, &f);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_PENDING);
    int v;
    CHECK_OK(blz_chan_try_recv(&ch, &v));
    CHECK_EQ(v, 1);
    CHECK_EQ(test_wakes(&tw), 1);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_READY);
    CHECK_EQ(f.base.result, 0);
    CHECK_OK(blz_chan_try_recv(&ch, &v));
    CHECK_EQ(v, 2); /* the woken sender's item is really in the channel */
    CHECK_EQ(blz_chan_try_recv(&ch, &v), -EAGAIN);
    CHECK_NO_WAKER_REFS(&tw);
    blz_chan_deinit(&ch);
}

BLZ_TEST(chan_woken_sender_that_loses_the_slot_waits_again)
{
    blz_chan ch;
    CHECK_OK(blz_chan_init(&ch, sizeof(int), 1));
    int a = 1, b = 2, c = 3, v;
    CHECK_OK(blz_chan_try_send(&ch, &a));
    blz_chan_send_future f;
    test_waker tw;
    test_waker_init(&tw);
    blz_chan_send_fut(&ch, &b, &f);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_PENDING);
    CHECK_OK(blz_chan_try_recv(&ch, &v)); /* wakes f ... */
    CHECK_OK(blz_chan_try_send(&ch, &c)); /* ... but a passer-by takes the slot */
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_PENDING);
    CHECK_OK(blz_chan_try_recv(&ch, &v));
    CHECK_EQ(v, 3);
    CHECK_EQ(test_wakes(&tw), 2);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_READY);
    CHECK_OK(blz_chan_try_recv(&ch, &v));
    CHECK_EQ(v, 2);
    CHECK_NO_WAKER_REFS(&tw);
    blz_chan_deinit(&ch);
}

BLZ_TEST(chan_drop_pending_send_sends_nothing)
{
    blz_chan ch;
    CHECK_OK(blz_chan_init(&ch, sizeof(int), 1));
    int a = 1, b = 2, v;
    CHECK_OK(blz_chan_try_send(&ch, &a));
    blz_chan_send_future f;
    test_waker tw;
    test_waker_init(&tw);
    blz_chan_send_fut(&ch, &b, &f);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_PENDING);
    blz_future_drop(&f.base);
    blz_future_drop(&f.base); /* twice is harmless */
    CHECK_NO_WAKER_REFS(&tw);
    CHECK_OK(blz_chan_try_recv(&ch, &v));
    CHECK_EQ(v, 1);
    CHECK_EQ(blz_chan_try_recv(&ch, &v), -EAGAIN);
    CHECK_EQ(test_wakes(&tw), 0);
    /* Polling a dropped future reports -ECANCELED. */
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_READY);
    CHECK_EQ(f.base.result, -ECANCELED);
    blz_chan_deinit(&ch);
}

BLZ_TEST(chan_drop_pending_recv_consumes_nothing)
{
    blz_chan ch;
    CHECK_OK(blz_chan_init(&ch, sizeof(int), 2));
    int out = -1, v = 7;
    blz_chan_recv_future f;
    test_waker tw;
    test_waker_init(&tw);
    blz_chan_recv_fut(&ch, &out, &f);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_PENDING);
    blz_future_drop(&f.base);
    CHECK_NO_WAKER_REFS(&tw);
    CHECK_OK(blz_chan_try_send(&ch, &v));
    CHECK_EQ(test_wakes(&tw), 0);
    CHECK_EQ(out, -1);
    int got;
    CHECK_OK(blz_chan_try_recv(&ch, &got));
    CHECK_EQ(got, 7);
    blz_chan_deinit(&ch);
}

BLZ_TEST(chan_drop_after_wake_passes_it_on)
{
    blz_chan ch;
    CHECK_OK(blz_chan_init(&ch, sizeof(int), 2));
    int oa = -1, ob = -1, v = 9;
    blz_chan_recv_future a, b;
    test_waker ta, tb;
    test_waker_init(&ta);
    test_waker_init(&tb);
    blz_chan_recv_fut(&ch, &oa, &a);
    blz_chan_recv_fut(&ch, &ob, &b);
    CHECK_EQ(poll_with(&a.base, &ta), BLZ_PENDING);
    CHECK_EQ(poll_with(&b.base, &tb), BLZ_PENDING);
    CHECK_OK(blz_chan_try_send(&ch, &v)); /* wakes a only */
    CHECK_EQ(test_wakes(&ta), 1);
    CHECK_EQ(test_wakes(&tb), 0);
    blz_future_drop(&a.base); /* a will never take it: b must hear about it */
    CHECK_EQ(test_wakes(&tb), 1);
    CHECK_EQ(poll_with(&b.base, &tb), BLZ_READY);
    CHECK_EQ(ob, 9);
    CHECK_EQ(oa, -1);
    CHECK_NO_WAKER_REFS(&ta);
    CHECK_NO_WAKER_REFS(&tb);

    /* The same for senders waiting on a full channel. */
    int x = 1, y = 2, z = 3, got;
    CHECK_OK(blz_chan_try_send(&ch, &x));
    CHECK_OK(blz_chan_try_send(&ch, &x));
    blz_chan_send_future sa, sb;
    blz_chan_send_fut(&ch, &y, &sa);
    blz_chan_send_fut(&ch, &z, &sb);
    CHECK_EQ(poll_with(&sa.base, &ta), BLZ_PENDING);
    CHECK_EQ(poll_with(&sb.base, &tb), BLZ_PENDING);
    CHECK_OK(blz_chan_try_recv(&ch, &got)); /* wakes sa */
    CHECK_EQ(test_wakes(&ta), 2);
    blz_future_drop(&sa.base);
    CHECK_EQ(test_wakes(&tb), 2);
    CHECK_EQ(poll_with(&sb.base, &tb), BLZ_READY);
    CHECK_OK(blz_chan_try_recv(&ch, &got));
    CHECK_EQ(got, 1);
    CHECK_OK(blz_chan_try_recv(&ch, &got));
    CHECK_EQ(got, 3);
    CHECK_EQ(blz_chan_try_recv(&ch, &got), -EAGAIN);
    CHECK_NO_WAKER_REFS(&ta);
    CHECK_NO_WAKER_REFS(&tb);
    blz_chan_deinit(&ch);
}

typedef struct took_while_woken {
    blz_chan *ch;
    blz_chan_recv_future *second; /* the receiver that links while the first is inside its poll */
    test_waker *second_waker;
} took_while_woken;

/* From inside the first receiver's link: an item arrives before its flag is up, so no wake. */
static void
twv_send_unannounced(void *arg)
{
    took_while_woken *c = arg;
    int a = 10;
    CHECK_OK(blz_chan_try_send(c->ch, &a));
}

/* From inside the first receiver's poll, after it took that item: a second
 * receiver queues behind it, then an item is sent, whose wake goes to the
 * oldest waiter, the first receiver, which is still linked. */
static void
twv_second_waits_then_send(void *arg)
{
    took_while_woken *c = arg;
    CHECK_EQ(poll_with(&c->second->base, c->second_waker), BLZ_PENDING);
    int b = 20;
    CHECK_OK(blz_chan_try_send(c->ch, &b));
}

/*
 * A receiver whose poll links, re-checks and takes an item, and is woken for
 * another item before it unlinks, must pass that wake on: it took only one of
 * the two, and the receiver queued behind it would otherwise sleep while an
 * item waits (the same holds for senders and free slots). The wake arriving
 * between the take and the unlink needs another thread in real life; the
 * hooks put it exactly there.
 */
BLZ_TEST(chan_waiter_that_takes_an_item_while_woken_passes_the_wake_on)
{
    blz_chan ch;
    CHECK_OK(blz_chan_init(&ch, sizeof(int), 1));
    int p = 1, q = 2, got = -1, o1 = -1, o2 = -1;

    /* A sender waits on the full channel, so the first receiver's take wakes
     * it: that wake is the hook that runs inside the first receiver's poll. */
    CHECK_OK(blz_chan_try_send(&ch, &p));
    blz_chan_send_future s1, s2;
    test_waker ts1;
    hook_waker hs2;
    test_waker_init(&ts1);
    hook_waker_init(&hs2, NULL, NULL, NULL);
    blz_chan_send_fut(&ch, &q, &s1);
    blz_chan_send_fut(&ch, &q, &s2);
    CHECK_EQ(poll_with(&s1.base, &ts1), BLZ_PENDING);
    CHECK_EQ(poll_with(&s2.base, &hs2.tw), BLZ_PENDING);
    CHECK_OK(blz_chan_try_recv(&ch, &got)); /* wakes s1; s2 stays queued */
    CHECK_EQ(got, 1);
    CHECK_EQ(test_wakes(&ts1), 1);

    blz_chan_recv_future r1, r2;
    hook_waker hr1;
    test_waker tr2;
    hook_waker_init(&hr1, NULL, NULL, NULL);
    test_waker_init(&tr2);
    blz_chan_recv_fut(&ch, &o1, &r1);
    blz_chan_recv_fut(&ch, &o2, &r2);
    took_while_woken ctx = {&ch, &r2, &tr2};
    hr1.on_clone = twv_send_unannounced;
    hr1.arg = &ctx;
    hs2.on_wake = twv_second_waits_then_send;
    hs2.arg = &ctx;

    CHECK_EQ(poll_with(&r1.base, &hr1.tw), BLZ_READY);
    CHECK_OK(r1.base.result);
    CHECK_EQ(o1, 10);
    CHECK_EQ(test_wakes(&hs2.tw), 1); /* the hook ran */
    CHECK_EQ(test_wakes(&hr1.tw), 1); /* the wake for 20 reached r1, too late */
    CHECK_EQ(blz_chan_len(&ch), 1);   /* 20 waits ... */
    CHECK_EQ(test_wakes(&tr2), 1);    /* ... and its only receiver must know */
    CHECK_EQ(poll_with(&r2.base, &tr2), BLZ_READY);
    CHECK_OK(r2.base.result);
    CHECK_EQ(o2, 20);

    blz_future_drop(&s1.base);
    blz_future_drop(&s2.base);
    blz_future_drop(&r2.base);
    CHECK_NO_WAKER_REFS(&ts1);
    CHECK_NO_WAKER_REFS(&hs2.tw);
    CHECK_NO_WAKER_REFS(&hr1.tw);
    CHECK_NO_WAKER_REFS(&tr2);
    blz_chan_deinit(&ch);
}

typedef struct freed_while_woken {
    blz_chan *ch;
    blz_chan_send_future *second; /* the sender that links while the first is inside its poll */
    test_waker *second_waker;
} freed_while_woken;

/* From inside the first sender's link: a slot is freed before its flag is up, so no wake. */
static void
fwv_free_unannounced(void *arg)
{
    freed_while_woken *c = arg;
    int v;
    CHECK_OK(blz_chan_try_recv(c->ch, &v));
    CHECK_EQ(v, 1);
}

/* From inside the first sender's poll, after it filled that slot: a second
 * sender queues behind it, then a slot is freed, whose wake goes to the first. */
static void
fwv_second_waits_then_free(void *arg)
{
    freed_while_woken *c = arg;
    CHECK_EQ(poll_with(&c->second->base, c->second_waker), BLZ_PENDING);
    int v;
    CHECK_OK(blz_chan_try_recv(c->ch, &v));
    CHECK_EQ(v, 2);
}

/* The same for senders: one that fills a slot nobody was woken for, and is
 * woken for another freed slot before it unlinks, passes that wake on. */
BLZ_TEST(chan_sender_that_fills_a_slot_while_woken_passes_the_wake_on)
{
    blz_chan ch;
    CHECK_OK(blz_chan_init(&ch, sizeof(int), 2));
    int one = 1, two = 2, three = 3, four = 4;

    /* Three receivers wait on the empty channel; two sends wake the first
     * two, so the third stays queued: the first sender's send wakes it, and
     * that wake is the hook that runs inside the first sender's poll. */
    int outs[3];
    blz_chan_recv_future r[3];
    test_waker tr;
    hook_waker hr3;
    test_waker_init(&tr);
    hook_waker_init(&hr3, NULL, NULL, NULL);
    for (int i = 0; i < 3; i++) {
        blz_chan_recv_fut(&ch, &outs[i], &r[i]);
        CHECK_EQ(poll_with(&r[i].base, i < 2 ? &tr : &hr3.tw), BLZ_PENDING);
    }
    CHECK_OK(blz_chan_try_send(&ch, &one));
    CHECK_OK(blz_chan_try_send(&ch, &two));
    CHECK_EQ(test_wakes(&tr), 2);
    CHECK_EQ(test_wakes(&hr3.tw), 0);

    blz_chan_send_future s1, s2;
    hook_waker hs1;
    test_waker ts2;
    hook_waker_init(&hs1, NULL, NULL, NULL);
    test_waker_init(&ts2);
    blz_chan_send_fut(&ch, &three, &s1);
    blz_chan_send_fut(&ch, &four, &s2);
    freed_while_woken ctx = {&ch, &s2, &ts2};
    hs1.on_clone = fwv_free_unannounced;
    hs1.arg = &ctx;
    hr3.on_wake = fwv_second_waits_then_free;
    hr3.arg = &ctx;

    CHECK_EQ(poll_with(&s1.base, &hs1.tw), BLZ_READY);
    CHECK_OK(s1.base.result);
    CHECK_EQ(test_wakes(&hr3.tw), 1); /* the hook ran */
    CHECK_EQ(test_wakes(&hs1.tw), 1); /* the wake for the freed slot reached s1, too late */
    CHECK_EQ(blz_chan_len(&ch), 1);   /* a slot is free ... */
    CHECK_EQ(test_wakes(&ts2), 1);    /* ... and its only sender must know */
    CHECK_EQ(poll_with(&s2.base, &ts2), BLZ_READY);
    CHECK_OK(s2.base.result);
    int v;
    CHECK_OK(blz_chan_try_recv(&ch, &v));
    CHECK_EQ(v, 3);
    CHECK_OK(blz_chan_try_recv(&ch, &v));
    CHECK_EQ(v, 4);

    for (int i = 0; i < 3; i++) {
        blz_future_drop(&r[i].base);
    }
    CHECK_NO_WAKER_REFS(&tr);
    CHECK_NO_WAKER_REFS(&hr3.tw);
    CHECK_NO_WAKER_REFS(&hs1.tw);
    CHECK_NO_WAKER_REFS(&ts2);
    blz_chan_deinit(&ch);
}

BLZ_TEST(chan_close_wakes_every_waiter)
{
    blz_chan full, empty;
    CHECK_OK(blz_chan_init(&full, sizeof(int), 1));
    CHECK_OK(blz_chan_init(&empty, sizeof(int), 1));
    int one = 1;
    CHECK_OK(blz_chan_try_send(&full, &one));
    enum { N = 40 }; /* more than one wake batch */
    static blz_chan_send_future sf[N];
    static blz_chan_recv_future rf[N];
    static int outs[N];
    test_waker tw;
    test_waker_init(&tw);
    for (int i = 0; i < N; i++) {
        blz_chan_send_fut(&full, &one, &sf[i]);
        blz_chan_recv_fut(&empty, &outs[i], &rf[i]);
        CHECK_EQ(poll_with(&sf[i].base, &tw), BLZ_PENDING);
        CHECK_EQ(poll_with(&rf[i].base, &tw), BLZ_PENDING);
    }
    blz_chan_close(&full);
    blz_chan_close(&empty);
    CHECK_EQ(test_wakes(&tw), 2 * N);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(poll_with(&sf[i].base, &tw), BLZ_READY);
        CHECK_EQ(sf[i].base.result, -EPIPE);
        CHECK_EQ(poll_with(&rf[i].base, &tw), BLZ_READY);
        CHECK_EQ(rf[i].base.result, -EPIPE);
    }
    CHECK_NO_WAKER_REFS(&tw);
    int v;
    CHECK_OK(blz_chan_try_recv(&full, &v)); /* sent before the close: still there */
    CHECK_EQ(v, 1);
    CHECK_EQ(blz_chan_try_recv(&full, &v), -EPIPE);
    blz_chan_deinit(&full);
    blz_chan_deinit(&empty);
}

typedef struct pair {
    int a;
    int b;
} pair;

BLZ_CHAN_DECLARE(pair_chan, pair)

BLZ_TEST(chan_futures_survive_a_copy_before_first_poll)
{
    /* blz_spawn_future copies a future before polling it: inline items must follow. */
    pair_chan ch;
    CHECK_OK(pair_chan_init(&ch, 1));
    pair_chan_send_future tmp, moved;
    pair_chan_send_fut(&ch, (pair){3, 4}, &tmp);
    memcpy(&moved, &tmp, sizeof moved);
    memset(&tmp, 0, sizeof tmp);
    test_waker tw;
    test_waker_init(&tw);
    CHECK_EQ(poll_with(&moved.base.base, &tw), BLZ_READY);
    CHECK_EQ(moved.base.base.result, 0);
    pair_chan_recv_future rtmp, rmoved;
    pair_chan_recv_fut(&ch, &rtmp);
    memcpy(&rmoved, &rtmp, sizeof rmoved);
    CHECK_EQ(poll_with(&rmoved.base.base, &tw), BLZ_READY);
    CHECK_EQ(rmoved.base.base.result, 0);
    CHECK_EQ(rmoved.value.a, 3);
    CHECK_EQ(rmoved.value.b, 4);
    CHECK_OK(pair_chan_try_send(&ch, (pair){5, 6}));
    CHECK_EQ(pair_chan_try_send(&ch, (pair){7, 8}), -EAGAIN);
    pair p;
    CHECK_OK(pair_chan_recv(&ch, &p));
    CHECK_EQ(p.a, 5);
    CHECK_OK(pair_chan_send(&ch, (pair){9, 10}));
    CHECK_EQ(pair_chan_len(&ch), 1);
    CHECK_OK(pair_chan_try_recv(&ch, &p));
    CHECK_EQ(p.b, 10);
    pair_chan_close(&ch);
    CHECK_EQ(pair_chan_recv(&ch, &p), -EPIPE);
    pair_chan_deinit(&ch);
    CHECK_NO_WAKER_REFS(&tw);
}

BLZ_TEST(chan_allocates_once)
{
    blz_test_counting_allocator_install();
    size_t before = (size_t) blz_test_alloc_count();
    blz_chan ch;
    CHECK_OK(blz_chan_init(&ch, sizeof(uint64_t), 64));
    CHECK_EQ((size_t) blz_test_alloc_count() - before, 1);
    test_waker tw;
    test_waker_init(&tw);
    for (uint64_t i = 0; i < 1000; i++) {
        uint64_t v;
        blz_chan_recv_future rf;
        blz_chan_recv_fut(&ch, &v, &rf);
        CHECK_EQ(poll_with(&rf.base, &tw), BLZ_PENDING);
        blz_chan_send_future sf;
        blz_chan_send_fut(&ch, &i, &sf);
        CHECK_EQ(poll_with(&sf.base, &tw), BLZ_READY);
        CHECK_EQ(poll_with(&rf.base, &tw), BLZ_READY);
        CHECK_EQ(v, i);
    }
    CHECK_EQ((size_t) blz_test_alloc_count() - before, 1);
    blz_chan_deinit(&ch);
    CHECK_EQ(blz_test_alloc_live(), 0);
}

/* ---- the await tier on plain threads ------------------------------------ */

#define TH_PER  CHAN_SCALE(100000, 5000)
#define TH_PROD 3
#define TH_CONS 3

static blz_chan th_ch;
static atomic_ullong th_sum, th_count;

static void *
th_producer(void *arg)
{
    uint64_t base = (uint64_t) (uintptr_t) arg;
    for (uint64_t i = 0; i < TH_PER; i++) {
        uint64_t v = base * 1000000 + i + 1;
        CHECK_OK(blz_chan_send(&th_ch, &v));
    }
    return NULL;
}

static void *
th_consumer(void *arg)
{
    (void) arg;
    for (;;) {
        uint64_t v;
        int r = blz_chan_recv(&th_ch, &v);
        if (r == -EPIPE) {
            return NULL;
        }
        CHECK_OK(r);
        atomic_fetch_add(&th_sum, v);
        atomic_fetch_add(&th_count, 1);
    }
}

BLZ_TEST(chan_threads_await_tier)
{
    static const size_t caps[] = {1, 2, 64};
    for (size_t c = 0; c < 3; c++) {
        CHECK_OK(blz_chan_init(&th_ch, sizeof(uint64_t), caps[c]));
        atomic_store(&th_sum, 0);
        atomic_store(&th_count, 0);
        pthread_t p[TH_PROD], q[TH_CONS];
        for (int i = 0; i < TH_CONS; i++) {
            CHECK_EQ(pthread_create(&q[i], NULL, th_consumer, NULL), 0);
        }
        for (int i = 0; i < TH_PROD; i++) {
            CHECK_EQ(pthread_create(&p[i], NULL, th_producer, (void *) (uintptr_t) i), 0);
        }
        for (int i = 0; i < TH_PROD; i++) {
            CHECK_EQ(pthread_join(p[i], NULL), 0);
        }
        blz_chan_close(&th_ch);
        for (int i = 0; i < TH_CONS; i++) {
            CHECK_EQ(pthread_join(q[i], NULL), 0);
        }
        uint64_t want = 0;
        for (uint64_t b = 0; b < TH_PROD; b++) {
            want += b * 1000000 * TH_PER + (uint64_t) TH_PER * (TH_PER + 1) / 2;
        }
        CHECK_EQ(atomic_load(&th_count), (uint64_t) TH_PROD * TH_PER);
        CHECK_EQ(atomic_load(&th_sum), want);
        blz_chan_deinit(&th_ch);
    }
}
