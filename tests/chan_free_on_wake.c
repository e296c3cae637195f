/*
 * As tests/sync_free_on_wake.c, for the channels that wake many receivers
 * at once: a receiver woken by a send may free the channel at once, so the
 * send must not touch it after its last wake. The channel lives alone on a
 * page that the last waker's hook maps away (PROT_NONE); its receivers live
 * elsewhere. Wakes go out in batches of 32 with the lock dropped between
 * them: exactly 32 and 64 receivers end the last batch full.
 */
#include "poll_util.h"

#include <string.h>
#include <sys/mman.h>

#define MAX_WAITERS 64

typedef struct page_obj {
    void *page;
    atomic_int wakes_left; /* the hook that takes it to 0 takes the page away */
} page_obj;

#define PAGE 4096

static void *
page_new(page_obj *p)
{
    p->page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p->page != MAP_FAILED);
    return p->page;
}

static void
take_page_on_last_wake(void *arg)
{
    page_obj *p = arg;
    if (atomic_fetch_sub(&p->wakes_left, 1) == 1) {
        CHECK_EQ(mprotect(p->page, PAGE, PROT_NONE), 0);
    }
}

static void
hooks_init(hook_waker *h, int n, page_obj *p)
{
    atomic_init(&p->wakes_left, n);
    for (int i = 0; i < n; i++) {
        hook_waker_init(&h[i], take_page_on_last_wake, NULL, p);
    }
}

static void
page_back(page_obj *p)
{
    CHECK_EQ(atomic_load(&p->wakes_left), 0);
    CHECK_EQ(mprotect(p->page, PAGE, PROT_READ | PROT_WRITE), 0);
}

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
        CHECK_EQ(munmap(p.page, PAGE), 0);
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
        CHECK_EQ(munmap(p.page, PAGE), 0);
    }
}
