/*
 * As tests/sync_free_on_wake.c, for the channels that wake many receivers
 * at once: a receiver woken by a send may free the channel at once, so the
 * send must not touch it after its last wake. The channel lives alone on a
 * page that the last waker's hook maps away (PROT_NONE); its receivers live
 * elsewhere. Wakes go out in batches of 32 with the lock dropped between
 * them: exactly 32 and 64 receivers end the last batch full.
 *
 * Likewise a receiver that sees a channel closed and drained (-EPIPE) may
 * free it at once, while the task that closed it is still inside
 * blz_*_close: the usual end of a consumer loop. So close must not touch the
 * channel after the write from which a receive reports -EPIPE; those tests
 * take the page away right after that write (page_util.h, page_vanish_when).
 */
#include "chan_util.h"
#include "page_util.h"

#define MAX_WAITERS 64

static const int counts[] = {1, 31, 32, 33, 64};

BLZ_TEST(broadcast_send_leaves_the_channel_alone_after_its_last_wake)
{
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        int n = counts[c];
        page_obj p;
        blz_broadcast *b = page_new(&p);
        CHECK_OK(blz_broadcast_init(b, sizeof(int), 4));
        static blz_broadcast_rx rx[MAX_WAITERS];
        static blz_broadcast_recv_future f[MAX_WAITERS];
        static int got[MAX_WAITERS];
        static hook_waker h[MAX_WAITERS];
        hooks_init(h, n, &p);
        for (int i = 0; i < n; i++) {
            CHECK_OK(blz_broadcast_subscribe(b, &rx[i]));
            blz_broadcast_recv_fut(&rx[i], &got[i], &f[i]);
            CHECK_EQ(poll_with(&f[i].base, &h[i].tw), BLZ_PENDING);
        }
        int v = 7;
        CHECK_EQ(blz_broadcast_send(b, &v), n);
        page_back(&p);
        for (int i = 0; i < n; i++) {
            CHECK_EQ(poll_with(&f[i].base, &h[i].tw), BLZ_READY);
            CHECK_EQ(f[i].base.result, 0);
            CHECK_EQ(got[i], 7);
            CHECK_NO_WAKER_REFS(&h[i].tw);
            blz_broadcast_unsubscribe(&rx[i]);
        }
        blz_broadcast_deinit(b);
        page_free(&p);
    }
}

BLZ_TEST(watch_send_leaves_the_channel_alone_after_its_last_wake)
{
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        int n = counts[c];
        page_obj p;
        blz_watch *w = page_new(&p);
        int v = 1;
        CHECK_OK(blz_watch_init(w, sizeof v, &v));
        static blz_watch_rx rx[MAX_WAITERS];
        static blz_watch_changed_future f[MAX_WAITERS];
        static hook_waker h[MAX_WAITERS];
        hooks_init(h, n, &p);
        for (int i = 0; i < n; i++) {
            CHECK_OK(blz_watch_subscribe(w, &rx[i]));
            (void) blz_watch_rx_borrow_and_update(&rx[i], NULL);
            blz_watch_changed_fut(&rx[i], &f[i]);
            CHECK_EQ(poll_with(&f[i].base, &h[i].tw), BLZ_PENDING);
        }
        v = 2;
        CHECK_OK(blz_watch_send(w, &v));
        page_back(&p);
        for (int i = 0; i < n; i++) {
            CHECK_EQ(poll_with(&f[i].base, &h[i].tw), BLZ_READY);
            CHECK_EQ(f[i].base.result, 0);
            CHECK_NO_WAKER_REFS(&h[i].tw);
            blz_watch_unsubscribe(&rx[i]);
        }
        blz_watch_deinit(w);
        page_free(&p);
    }
}

static bool
chan_reads_closed(void *ch)
{
    int item;
    return blz_chan_try_recv(ch, &item) == -EPIPE;
}

/* Also with a receiver and a sender queued, which close must still wake. */
BLZ_TEST(chan_close_leaves_the_channel_alone_once_a_receive_reads_closed)
{
    for (int waiting = 0; waiting < 2; waiting++) {
        page_obj p;
        blz_chan *ch = page_new(&p);
        CHECK_OK(blz_chan_init(ch, sizeof(int), 1));
        test_waker rw, sw;
        test_waker_init(&rw);
        test_waker_init(&sw);
        int got = 0, one = 1;
        blz_chan_recv_future rf;
        if (waiting) {
            blz_chan_recv_fut(ch, &got, &rf);
            CHECK_EQ(poll_with(&rf.base, &rw), BLZ_PENDING);
        }
        page_vanish_when(&p, chan_reads_closed, ch);
        blz_chan_close(ch);
        CHECK(page_vanish_end(&p));
        CHECK(blz_chan_is_closed(ch));
        CHECK_EQ(blz_chan_try_send(ch, &one), -EPIPE);
        if (waiting) {
            CHECK_EQ(test_wakes(&rw), 1);
            CHECK_EQ(poll_with(&rf.base, &rw), BLZ_READY);
            CHECK_EQ(rf.base.result, -EPIPE);
        }
        CHECK_NO_WAKER_REFS(&rw);
        blz_chan_deinit(ch);
        page_free(&p);
    }
}

static bool
uchan_reads_closed(void *ch)
{
    int item;
    return blz_uchan_try_recv(ch, &item) == -EPIPE;
}

BLZ_TEST(uchan_close_leaves_the_channel_alone_once_a_receive_reads_closed)
{
    for (int waiting = 0; waiting < 2; waiting++) {
        page_obj p;
        blz_uchan *ch = page_new(&p);
        CHECK_OK(blz_uchan_init(ch, sizeof(int)));
        test_waker w;
        test_waker_init(&w);
        int got = 0, one = 1;
        blz_uchan_recv_future f;
        if (waiting) {
            blz_uchan_recv_fut(ch, &got, &f);
            CHECK_EQ(poll_with(&f.base, &w), BLZ_PENDING);
        }
        page_vanish_when(&p, uchan_reads_closed, ch);
        blz_uchan_close(ch);
        CHECK(page_vanish_end(&p));
        CHECK_EQ(blz_uchan_send(ch, &one), -EPIPE);
        if (waiting) {
            CHECK_EQ(test_wakes(&w), 1);
            CHECK_EQ(poll_with(&f.base, &w), BLZ_READY);
            CHECK_EQ(f.base.result, -EPIPE);
        }
        CHECK_NO_WAKER_REFS(&w);
        blz_uchan_deinit(ch);
        page_free(&p);
    }
}
