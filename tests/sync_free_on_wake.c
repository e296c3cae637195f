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
 *
 * The same holds for an observer that needs no wake at all: one that sees
 * the flag or the count an operation published (the try tier, a lock-free
 * check) may free the primitive at once, as the thread that takes a mutex
 * may destroy it while its unlocker is still inside pthread_mutex_unlock.
 * The tests after the wake ones take the page away right after the write
 * that publishes (page_util.h, page_vanish_when).
 */
#include "page_util.h"
#include "poll_util.h"
#include "sync/waitq.h" /* BLZ__W_DONE */

#define MAX_WAITERS 64

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

/* ---- observers that need no wake ---------------------------------------- */

static bool
token_cancelled(void *t)
{
    return blz_cancel_token_is_cancelled(t);
}

/* Nobody waits: the flag is all there is to see. */
BLZ_TEST(cancel_leaves_a_root_alone_once_it_reads_cancelled)
{
    page_obj p;
    blz_cancel_token *t = page_new(&p);
    blz_cancel_token_init(t);
    page_vanish_when(&p, token_cancelled, t);
    blz_cancel_token_cancel(t);
    CHECK(page_vanish_end(&p));
    CHECK(blz_cancel_token_is_cancelled(t));
    page_free(&p);
}

/* A child cancelled by itself: its owner may free it; the root lives on. */
BLZ_TEST(cancel_leaves_a_child_alone_once_it_reads_cancelled)
{
    blz_cancel_token root;
    blz_cancel_token_init(&root);
    test_waker w;
    test_waker_init(&w);
    blz_cancel_future rf; /* a waiter at the root, which stays */
    blz_cancel_token_wait_fut(&root, &rf);
    CHECK_EQ(poll_with(&rf.base, &w), BLZ_PENDING);
    page_obj p;
    blz_cancel_token *child = page_new(&p);
    CHECK_OK(blz_cancel_token_child_init(child, &root));
    page_vanish_when(&p, token_cancelled, child);
    blz_cancel_token_cancel(child);
    CHECK(page_vanish_end(&p));
    CHECK(blz_cancel_token_is_cancelled(child));
    CHECK(!blz_cancel_token_is_cancelled(&root));
    CHECK_EQ(test_wakes(&w), 0);
    blz_future_drop(&rf.base);
    CHECK_NO_WAKER_REFS(&w);
    page_free(&p);
}

static bool
cell_is_set(void *c)
{
    void *v;
    return blz_oncecell_get(c, &v) == 0;
}

/* A waiter came and went before the set: nobody is left to wake. */
BLZ_TEST(oncecell_set_leaves_the_cell_alone_once_it_reads_set)
{
    page_obj p;
    blz_oncecell *c = page_new(&p);
    blz_oncecell_init(c);
    test_waker w;
    test_waker_init(&w);
    blz_oncecell_init_future f;
    blz_oncecell_get_or_init_fut(c, NULL, NULL, &f);
    CHECK_EQ(poll_with(&f.base, &w), BLZ_PENDING);
    blz_future_drop(&f.base);
    CHECK_NO_WAKER_REFS(&w);
    page_vanish_when(&p, cell_is_set, c);
    CHECK_OK(blz_oncecell_set(c, &p));
    CHECK(page_vanish_end(&p));
    void *v = NULL;
    CHECK_OK(blz_oncecell_get(c, &v));
    CHECK_PTR_EQ(v, &p);
    page_free(&p);
}

static bool
mutex_unlocked(void *m)
{
    return !blz_mutex_is_locked(m);
}

/* The thread that takes a mutex may free it while its unlocker is still in
 * the unlock (pthread_mutex_unlock's rule). */
BLZ_TEST(mutex_unlock_leaves_the_mutex_alone_once_it_reads_unlocked)
{
    page_obj p;
    blz_mutex *m = page_new(&p);
    blz_mutex_init(m);
    CHECK_OK(blz_mutex_try_lock(m));
    page_vanish_when(&p, mutex_unlocked, m);
    blz_mutex_unlock(m);
    CHECK(page_vanish_end(&p));
    CHECK_OK(blz_mutex_try_lock(m));
    page_free(&p);
}

typedef struct mutex_and_waiter {
    blz_mutex *m;
    blz_mutex_lock_future *f;
} mutex_and_waiter;

/* The waiter owns the mutex and may look: it could free it now. */
static bool
waiter_may_see_it_owns(void *arg)
{
    mutex_and_waiter *mw = arg;
    return mw->f->waiter_.state_ == BLZ__W_DONE && atomic_load(&mw->m->lock_) == 0;
}

/* With a waiter queued, the unlock hands the mutex over: the waiter learns it
 * under the queue lock, so the unlock of that lock is the last touch. */
BLZ_TEST(mutex_hand_off_leaves_the_mutex_alone_once_the_waiter_may_see_it)
{
    page_obj p;
    blz_mutex *m = page_new(&p);
    blz_mutex_init(m);
    CHECK_OK(blz_mutex_try_lock(m));
    test_waker w;
    test_waker_init(&w);
    blz_mutex_lock_future f;
    blz_mutex_lock_fut(m, &f);
    CHECK_EQ(poll_with(&f.base, &w), BLZ_PENDING);
    mutex_and_waiter mw = {m, &f};
    page_vanish_when(&p, waiter_may_see_it_owns, &mw);
    blz_mutex_unlock(m);
    CHECK(page_vanish_end(&p));
    CHECK_EQ(test_wakes(&w), 1);
    CHECK_EQ(poll_with(&f.base, &w), BLZ_READY);
    CHECK(blz_mutex_is_locked(m));
    blz_mutex_unlock(m);
    CHECK_OK(blz_mutex_try_lock(m));
    CHECK_NO_WAKER_REFS(&w);
    page_free(&p);
}

static bool
sem_has_permits(void *s)
{
    return blz_semaphore_available(s) > 0;
}

/* A thread that takes the permit may free the semaphore at once (sem_post's
 * rule: the waiter may destroy it while the poster is still in sem_post). */
BLZ_TEST(semaphore_release_leaves_it_alone_once_the_permit_shows)
{
    page_obj p;
    blz_semaphore *s = page_new(&p);
    CHECK_OK(blz_semaphore_init(s, 0));
    page_vanish_when(&p, sem_has_permits, s);
    blz_semaphore_release(s, 1);
    CHECK(page_vanish_end(&p));
    CHECK_OK(blz_semaphore_try_acquire(s, 1));
    page_free(&p);
}

static bool
rwlock_free(void *l)
{
    return blz_semaphore_available(&((blz_rwlock *) l)->sem_) == BLZ_RWLOCK_MAX_READERS;
}

BLZ_TEST(rwlock_unlocks_leave_the_lock_alone_once_it_reads_free)
{
    for (int writing = 0; writing < 2; writing++) {
        page_obj p;
        blz_rwlock *l = page_new(&p);
        blz_rwlock_init(l);
        CHECK_OK(writing ? blz_rwlock_try_write(l) : blz_rwlock_try_read(l));
        page_vanish_when(&p, rwlock_free, l);
        if (writing) {
            blz_rwlock_write_unlock(l);
        } else {
            blz_rwlock_read_unlock(l);
        }
        CHECK(page_vanish_end(&p));
        CHECK_OK(blz_rwlock_try_write(l));
        page_free(&p);
    }
}

static bool
sem_closed(void *s)
{
    return blz_semaphore_is_closed(s);
}

/* A task that sees it closed (the try tier's -EPIPE) may free it at once. */
BLZ_TEST(semaphore_close_leaves_it_alone_once_it_reads_closed)
{
    page_obj p;
    blz_semaphore *s = page_new(&p);
    CHECK_OK(blz_semaphore_init(s, 1));
    page_vanish_when(&p, sem_closed, s);
    blz_semaphore_close(s);
    CHECK(page_vanish_end(&p));
    CHECK_EQ(blz_semaphore_try_acquire(s, 1), -EPIPE);
    page_free(&p);
}
