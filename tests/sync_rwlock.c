/*
 * RwLock: readers share, a writer excludes, a queued writer is not starved by
 * later readers, readers behind a writer get in as a batch, cancellation of a
 * writer that had soaked up permits, and threads.
 */
#include "sync_util.h"

BLZ_TEST(rwlock_try_tier)
{
    blz_rwlock l = BLZ_RWLOCK_INIT;
    CHECK_OK(blz_rwlock_try_read(&l));
    CHECK_OK(blz_rwlock_try_read(&l));
    CHECK_EQ(blz_rwlock_try_write(&l), -EAGAIN);
    blz_rwlock_read_unlock(&l);
    blz_rwlock_read_unlock(&l);
    CHECK_OK(blz_rwlock_try_write(&l));
    CHECK_EQ(blz_rwlock_try_read(&l), -EAGAIN);
    CHECK_EQ(blz_rwlock_try_write(&l), -EAGAIN);
    blz_rwlock_write_unlock(&l);
    CHECK_OK(blz_rwlock_read(&l));
    blz_rwlock_read_unlock(&l);
    CHECK_OK(blz_rwlock_write(&l));
    blz_rwlock_write_unlock(&l);

    blz_rwlock d;
    blz_rwlock_init(&d);
    CHECK_OK(blz_rwlock_try_write(&d));
    blz_rwlock_write_unlock(&d);
}

BLZ_TEST(rwlock_null_arguments)
{
    CHECK_EQ(blz_rwlock_try_read(NULL), -EINVAL);
    CHECK_EQ(blz_rwlock_try_write(NULL), -EINVAL);
    CHECK_EQ(blz_rwlock_read(NULL), -EINVAL);
    CHECK_EQ(blz_rwlock_write(NULL), -EINVAL);
    blz_rwlock_read_unlock(NULL);
    blz_rwlock_write_unlock(NULL);
    blz_rwlock_init(NULL);
}

BLZ_TEST(rwlock_writer_not_starved_and_readers_batched)
{
    blz_rwlock l = BLZ_RWLOCK_INIT;
    CHECK_OK(blz_rwlock_try_read(&l));
    CHECK_OK(blz_rwlock_try_read(&l));
    blz_rwlock_lock_future w, r[3], w2;
    test_waker tw, tr[3], tw2;
    test_waker_init(&tw);
    test_waker_init(&tw2);
    blz_rwlock_write_fut(&l, &w);
    CHECK_EQ(poll_with(&w.base, &tw), BLZ_PENDING);
    /* A reader arriving after the writer queues, though readers hold the lock. */
    CHECK_EQ(blz_rwlock_try_read(&l), -EAGAIN);
    for (int i = 0; i < 3; i++) {
        test_waker_init(&tr[i]);
        blz_rwlock_read_fut(&l, &r[i]);
        CHECK_EQ(poll_with(&r[i].base, &tr[i]), BLZ_PENDING);
    }
    blz_rwlock_write_fut(&l, &w2);
    CHECK_EQ(poll_with(&w2.base, &tw2), BLZ_PENDING);
    blz_rwlock_read_unlock(&l);
    CHECK_EQ(test_wakes(&tw), 0);
    blz_rwlock_read_unlock(&l);
    CHECK_EQ(test_wakes(&tw), 1); /* the writer goes first */
    CHECK_EQ(poll_with(&w.base, &tw), BLZ_READY);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(poll_with(&r[i].base, &tr[i]), BLZ_PENDING);
    }
    blz_rwlock_write_unlock(&l);
    /* All three readers admitted at once; the second writer waits for them. */
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(test_wakes(&tr[i]), 1);
        CHECK_EQ(poll_with(&r[i].base, &tr[i]), BLZ_READY);
    }
    CHECK_EQ(test_wakes(&tw2), 0);
    for (int i = 0; i < 3; i++) {
        blz_rwlock_read_unlock(&l);
    }
    CHECK_EQ(test_wakes(&tw2), 1);
    CHECK_EQ(poll_with(&w2.base, &tw2), BLZ_READY);
    blz_rwlock_write_unlock(&l);
    CHECK_EQ(blz_semaphore_available(&l.sem_), BLZ_RWLOCK_MAX_READERS);
    CHECK_NO_WAKER_REFS(&tw);
    CHECK_NO_WAKER_REFS(&tw2);
    for (int i = 0; i < 3; i++) {
        CHECK_NO_WAKER_REFS(&tr[i]);
    }
}

BLZ_TEST(rwlock_dropped_writer_releases_readers)
{
    blz_rwlock l = BLZ_RWLOCK_INIT;
    CHECK_OK(blz_rwlock_try_read(&l));
    blz_rwlock_lock_future w, r;
    test_waker tw, tr;
    test_waker_init(&tw);
    test_waker_init(&tr);
    blz_rwlock_write_fut(&l, &w);
    CHECK_EQ(poll_with(&w.base, &tw), BLZ_PENDING); /* holds MAX-1 as a partial grant */
    blz_rwlock_read_fut(&l, &r);
    CHECK_EQ(poll_with(&r.base, &tr), BLZ_PENDING);
    blz_future_drop(&w.base); /* its partial grant goes to the reader */
    CHECK_EQ(test_wakes(&tr), 1);
    CHECK_EQ(poll_with(&r.base, &tr), BLZ_READY);
    blz_rwlock_read_unlock(&l);
    blz_rwlock_read_unlock(&l);
    CHECK_OK(blz_rwlock_try_write(&l));
    blz_rwlock_write_unlock(&l);
    CHECK_NO_WAKER_REFS(&tw);
    CHECK_NO_WAKER_REFS(&tr);
}

BLZ_TEST(rwlock_write_unlock_admits_queued_reader_then_try_read_succeeds)
{
    /* The writer's unlock is one store; the queued reader must still be woken,
     * and once it is in (with permits to spare) nobody is queued, so a
     * further try_read must not be refused. */
    blz_rwlock l = BLZ_RWLOCK_INIT;
    CHECK_OK(blz_rwlock_try_write(&l));
    blz_rwlock_lock_future r;
    test_waker tr;
    test_waker_init(&tr);
    blz_rwlock_read_fut(&l, &r);
    CHECK_EQ(poll_with(&r.base, &tr), BLZ_PENDING);
    CHECK_EQ(blz_rwlock_try_read(&l), -EAGAIN);
    blz_rwlock_write_unlock(&l);
    CHECK_EQ(test_wakes(&tr), 1);
    CHECK_EQ(poll_with(&r.base, &tr), BLZ_READY);
    CHECK_EQ(r.base.result, 0);
    CHECK_OK(blz_rwlock_try_read(&l));
    CHECK_EQ(blz_rwlock_try_write(&l), -EAGAIN);
    blz_rwlock_read_unlock(&l);
    blz_rwlock_read_unlock(&l);
    CHECK_OK(blz_rwlock_try_write(&l));
    blz_rwlock_write_unlock(&l);
    CHECK_NO_WAKER_REFS(&tr);
}

static blz_rwlock thread_lock = BLZ_RWLOCK_INIT;
static long shared_a, shared_b; /* written together under the write lock */
static atomic_int bad_reads;

static void *
thread_body(void *arg)
{
    int writer = (int) (intptr_t) arg;
    for (int i = 0; i < SYNC_SCALE(20000, 2000); i++) {
        if (writer && i % 4 == 0) {
            CHECK_OK(blz_rwlock_write(&thread_lock));
            shared_a++;
            shared_b++;
            blz_rwlock_write_unlock(&thread_lock);
        } else {
            CHECK_OK(blz_rwlock_read(&thread_lock));
            if (shared_a != shared_b) {
                atomic_fetch_add(&bad_reads, 1);
            }
            blz_rwlock_read_unlock(&thread_lock);
        }
    }
    return NULL;
}

static void *
writer_body(void *arg)
{
    (void) arg;
    return thread_body((void *) 1);
}

static void
rwlock_threads_run(void)
{
    shared_a = shared_b = 0;
    atomic_store(&bad_reads, 0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(pthread_create(&th[i], NULL, i < 2 ? writer_body : thread_body, NULL), 0);
    }
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    }
    CHECK_EQ(atomic_load(&bad_reads), 0);
    CHECK_EQ(shared_a, 2L * SYNC_SCALE(20000, 2000) / 4);
    CHECK_OK(blz_rwlock_try_write(&thread_lock));
    blz_rwlock_write_unlock(&thread_lock);
}

BLZ_TEST(rwlock_threads)
{
    rwlock_threads_run();
}

/* The try tier alone from four threads: each CAS of the fast paths expects
 * the semaphore's rest_ hint, which the threads keep proving wrong and
 * moving. Exclusion and the permit count must hold whatever it says. */
static blz_rwlock try_lock_ = BLZ_RWLOCK_INIT;
static atomic_int try_readers, try_writers, try_bad;

static void *
try_tier_body(void *arg)
{
    unsigned seed = (unsigned) (uintptr_t) arg;
    for (int i = 0; i < SYNC_SCALE(200000, 20000); i++) {
        seed = seed * 1103515245u + 12345u;
        if ((seed >> 16) % 4 == 0) {
            if (blz_rwlock_try_write(&try_lock_) == 0) {
                if (atomic_fetch_add(&try_writers, 1) != 0 || atomic_load(&try_readers) != 0) {
                    atomic_fetch_add(&try_bad, 1);
                }
                atomic_fetch_sub(&try_writers, 1);
                blz_rwlock_write_unlock(&try_lock_);
            }
        } else if (blz_rwlock_try_read(&try_lock_) == 0) {
            atomic_fetch_add(&try_readers, 1);
            if (atomic_load(&try_writers) != 0) {
                atomic_fetch_add(&try_bad, 1);
            }
            atomic_fetch_sub(&try_readers, 1);
            blz_rwlock_read_unlock(&try_lock_);
        }
    }
    return NULL;
}

BLZ_TEST(rwlock_try_tier_threads)
{
    pthread_t th[4];
    for (uintptr_t i = 0; i < 4; i++) {
        CHECK_EQ(pthread_create(&th[i], NULL, try_tier_body, (void *) (i + 1)), 0);
    }
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    }
    CHECK_EQ(atomic_load(&try_bad), 0);
    CHECK_EQ(blz_semaphore_available(&try_lock_.sem_), BLZ_RWLOCK_MAX_READERS);
    CHECK_OK(blz_rwlock_try_write(&try_lock_));
    blz_rwlock_write_unlock(&try_lock_);
}
