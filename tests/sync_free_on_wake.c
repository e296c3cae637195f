/*
 * A waiter that an operation woke may free the primitive at once (as POSIX
 * lets a thread woken by pthread_cond_broadcast destroy the condition
 * variable): the operation must not touch the primitive after its last
 * wake. Each primitive here lives alone on a page; the hook of the last
 * waker to run takes the page away (PROT_NONE), so any later touch faults.
 *
 * The wakes go out in batches of 32 (BLZ__WAKE_BATCH) with the lock dropped
 * between batches; exactly 32 and 64 waiters make the last wake end a full
 * batch, the case where the lock was taken again after it.
 */
#include "poll_util.h"

#include <string.h>
#include <sys/mman.h>

#define MAX_WAITERS 64

typedef struct page_obj {
    void *page;
    size_t size;
    atomic_int wakes_left; /* the hook that takes it to 0 takes the page away */
} page_obj;

static void *
page_new(page_obj *p)
{
    p->size = 4096;
    p->page = mmap(NULL, p->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p->page != MAP_FAILED);
    return p->page;
}

static void
take_page_on_last_wake(void *arg)
{
    page_obj *p = arg;
    if (atomic_fetch_sub(&p->wakes_left, 1) == 1) {
        CHECK_EQ(mprotect(p->page, p->size, PROT_NONE), 0);
    }
}

/* Hook wakers for n waiters, all counting down on p. */
static void
hooks_init(hook_waker *h, int n, page_obj *p)
{
    atomic_init(&p->wakes_left, n);
    for (int i = 0; i < n; i++) {
        hook_waker_init(&h[i], take_page_on_last_wake, NULL, p);
    }
}

/* The page back, so the futures can finish, then gone. */
static void
page_back(page_obj *p)
{
    CHECK_EQ(atomic_load(&p->wakes_left), 0);
    CHECK_EQ(mprotect(p->page, p->size, PROT_READ | PROT_WRITE), 0);
}

static void
page_free(page_obj *p)
{
    CHECK_EQ(munmap(p->page, p->size), 0);
}

static const int counts[] = {1, 31, 32, 33, 64};

BLZ_TEST(cancel_leaves_the_token_alone_after_its_last_wake)
{
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        int n = counts[c];
        page_obj p;
        blz_cancel_token *t = page_new(&p);
        blz_cancel_token_init(t);
        static blz_cancel_future f[MAX_WAITERS];
        static hook_waker h[MAX_WAITERS];
        hooks_init(h, n, &p);
        for (int i = 0; i < n; i++) {
            blz_cancel_token_wait_fut(t, &f[i]);
            CHECK_EQ(poll_with(&f[i].base, &h[i].tw), BLZ_PENDING);
        }
        blz_cancel_token_cancel(t);
        page_back(&p);
        for (int i = 0; i < n; i++) {
            CHECK_EQ(poll_with(&f[i].base, &h[i].tw), BLZ_READY);
            CHECK_EQ(f[i].base.result, 0);
            CHECK_NO_WAKER_REFS(&h[i].tw);
        }
        page_free(&p);
    }
}

BLZ_TEST(notify_all_leaves_the_notify_alone_after_its_last_wake)
{
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        int n = counts[c];
        page_obj p;
        blz_notify *nt = page_new(&p);
        blz_notify_init(nt);
        static blz_notify_wait_future f[MAX_WAITERS];
        static hook_waker h[MAX_WAITERS];
        hooks_init(h, n, &p);
        for (int i = 0; i < n; i++) {
            blz_notify_wait_fut(nt, &f[i]);
            CHECK_EQ(poll_with(&f[i].base, &h[i].tw), BLZ_PENDING);
        }
        blz_notify_all(nt);
        page_back(&p);
        for (int i = 0; i < n; i++) {
            CHECK_EQ(poll_with(&f[i].base, &h[i].tw), BLZ_READY);
            CHECK_NO_WAKER_REFS(&h[i].tw);
        }
        page_free(&p);
    }
}

BLZ_TEST(barrier_leader_leaves_the_barrier_alone_after_its_last_wake)
{
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        int n = counts[c];
        page_obj p;
        blz_barrier *b = page_new(&p);
        CHECK_OK(blz_barrier_init(b, (uint32_t) n + 1));
        static blz_barrier_wait_future f[MAX_WAITERS];
        static hook_waker h[MAX_WAITERS];
        hooks_init(h, n, &p);
        for (int i = 0; i < n; i++) {
            blz_barrier_wait_fut(b, &f[i]);
            CHECK_EQ(poll_with(&f[i].base, &h[i].tw), BLZ_PENDING);
        }
        CHECK_EQ(blz_barrier_try_wait(b), BLZ_BARRIER_LEADER);
        page_back(&p);
        for (int i = 0; i < n; i++) {
            CHECK_EQ(poll_with(&f[i].base, &h[i].tw), BLZ_READY);
            CHECK_EQ(f[i].base.result, 0);
            CHECK_NO_WAKER_REFS(&h[i].tw);
        }
        page_free(&p);
    }
}

/* Both ways a semaphore wakes many: permits for all, and close. */
BLZ_TEST(semaphore_leaves_itself_alone_after_its_last_wake)
{
    for (int closing = 0; closing < 2; closing++) {
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
            int n = counts[c];
            page_obj p;
            blz_semaphore *s = page_new(&p);
            CHECK_OK(blz_semaphore_init(s, 0));
            static blz_semaphore_acquire_future f[MAX_WAITERS];
            static hook_waker h[MAX_WAITERS];
            hooks_init(h, n, &p);
            for (int i = 0; i < n; i++) {
                blz_semaphore_acquire_fut(s, 1, &f[i]);
                CHECK_EQ(poll_with(&f[i].base, &h[i].tw), BLZ_PENDING);
            }
            if (closing) {
                blz_semaphore_close(s);
            } else {
                blz_semaphore_release(s, (size_t) n);
            }
            page_back(&p);
            for (int i = 0; i < n; i++) {
                CHECK_EQ(poll_with(&f[i].base, &h[i].tw), BLZ_READY);
                CHECK_EQ(f[i].base.result, closing ? -EPIPE : 0);
                CHECK_NO_WAKER_REFS(&h[i].tw);
            }
            page_free(&p);
        }
    }
}
