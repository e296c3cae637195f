/*
 * The asymmetric store-load barrier behind the semaphore's release (and so
 * the rwlock's unlocks).
 *
 * blz_semaphore_release adds to state_ and then reads waiters_ with no fence
 * between them (only a compiler barrier). A waiter that has just raised
 * waiters_ calls blz__sync_heavy_barrier() before it re-reads state_. The
 * barrier is membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED): it returns only
 * after every running thread of the process has executed a full memory
 * barrier, so for each releaser either its load of waiters_ comes after that
 * point (and sees the waiter) or its write of state_ came before it (and the
 * waiter's re-read sees the permits). The cheap side runs millions of times
 * per second, the dear side (about a microsecond) once per contention episode.
 * (The mutex used it too; its unlock is one CAS now, see mutex.c.)
 *
 * Registration happens once, at load time (a constructor), before any thread
 * of ours can be waiting; it survives fork. Where the kernel refuses it,
 * blz__sync_fence_mode stays 1: unlock then uses a seq_cst exchange and a
 * seq_cst load, the waiter seq_cst operations too (the symmetric Dekker
 * pattern, no fence instructions, which ThreadSanitizer does not support) —
 * correct everywhere, only slower to unlock.
 *
 * The system call itself is in src/os/unix/sys.c (the scheduler's stranded
 * task rescue uses it too).
 */
#include "blitzio/sync.h"
#include "os/unix/sys.h"
#include "sync/waitq.h"

/* 0: waiters pay with membarrier, unlock needs no fence; 1: both sides use seq_cst. */
BLZ_API _Atomic int blz__sync_fence_mode = 1;

__attribute__((constructor)) static void
membarrier_register(void)
{
    if (blz__sys_membarrier_register() == 0) {
        blz__store(&blz__sync_fence_mode, 0, RELAXED);
    }
}

void
blz__sync_heavy_barrier(void)
{
    if (blz__load(&blz__sync_fence_mode, RELAXED) != 0) {
        return; /* both sides use seq_cst operations instead */
    }
    if (BLZ_UNLIKELY(blz__sys_membarrier() != 0)) {
        /*
         * Cannot happen once registered (the registration survives fork; exec
         * starts a new image whose constructor registers again). Should it,
         * later unlocks switch to the seq_cst path; an unlock in flight right
         * now is still covered by the waiter's seq_cst re-read only if it too
         * sees the switch, so this is a last resort, not a guarantee.
         */
        blz__store(&blz__sync_fence_mode, 1, SEQ_CST);
    }
}
