/*
 * RwLock: a semaphore of BLZ_RWLOCK_MAX_READERS permits. A read takes one
 * permit, a write takes all of them.
 *
 * Everything is the semaphore's (see semaphore.c): its lock protects the
 * queue, its FIFO hand-out gives the guarantees the header promises.
 *  - A queued writer at the head is partly assigned the permits that leaving
 *    readers return, and readers arriving meanwhile see the waiter flag and queue
 *    behind it, so a stream of readers cannot starve a writer.
 *  - When the writer unlocks, the hand-out walks the queue giving one permit
 *    to each reader in turn, admitting all of them up to the next writer in
 *    one pass: readers behind a writer get in as a batch.
 *  - Either unlock is a release (of one permit, or of all): one CAS when
 *    nobody is queued, its last touch, so the next holder may free the lock
 *    at once; the hand-out under the semaphore's lock otherwise.
 * The semaphore is never closed, so -EPIPE cannot come out of these calls.
 */
#include "blitzio/sync.h"

void
blz_rwlock_init(blz_rwlock *l)
{
    if (l) {
        (void) blz_semaphore_init(&l->sem_, BLZ_RWLOCK_MAX_READERS);
    }
}

void
blz_rwlock_read_fut(blz_rwlock *l, blz_rwlock_lock_future *f)
{
    blz_semaphore_acquire_fut(l ? &l->sem_ : NULL, 1, f);
}

void
blz_rwlock_write_fut(blz_rwlock *l, blz_rwlock_lock_future *f)
{
    blz_semaphore_acquire_fut(l ? &l->sem_ : NULL, BLZ_RWLOCK_MAX_READERS, f);
}

int
blz_rwlock_read(blz_rwlock *l)
{
    blz_rwlock_lock_future f;
    blz_rwlock_read_fut(l, &f);
    return blz_await(&f.base);
}

int
blz_rwlock_write(blz_rwlock *l)
{
    blz_rwlock_lock_future f;
    blz_rwlock_write_fut(l, &f);
    return blz_await(&f.base);
}
