/*
 * Internal: a small test-and-test-and-set lock for critical sections of a
 * few dozen instructions (list links, counters). Lock is one CAS, unlock one
 * release store. A waiter spins with a CPU hint and yields the thread after a
 * while, so a preempted holder is not spun against for a whole time slice.
 */
#ifndef BLZ_CORE_SPINLOCK_H
#define BLZ_CORE_SPINLOCK_H

#include "core/atomic.h"

#include <sched.h>
#include <stdint.h>

typedef struct blz__spinlock {
    _Atomic uint32_t locked;
} blz__spinlock;

#define BLZ_SPINLOCK_INIT \
 {                        \
  0                       \
 }

static inline void
blz__spin_lock(blz__spinlock *l)
{
    for (unsigned spins = 0;; spins++) {
        uint32_t expect = 0;
        /* Acquire pairs with the release store in blz__spin_unlock. */
        if (blz__load(&l->locked, RELAXED) == 0 &&
            blz__cas_weak(&l->locked, &expect, 1, ACQUIRE, RELAXED)) {
            return;
        }
        if (spins < 64) {
            blz__cpu_relax();
        } else {
            sched_yield();
        }
    }
}

static inline bool
blz__spin_trylock(blz__spinlock *l)
{
    uint32_t expect = 0;
    return blz__cas(&l->locked, &expect, 1, ACQUIRE, RELAXED);
}

static inline void
blz__spin_unlock(blz__spinlock *l)
{
    blz__store(&l->locked, 0, RELEASE);
}

#endif
