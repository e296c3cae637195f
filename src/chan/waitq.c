/*
 * The slow paths of the channel lock (src/chan/waitq.h).
 *
 * Invariants: the lock word is 0 (free), 1 (held, nobody sleeps) or 2 (held,
 * a thread may sleep on it). Only a thread that set it to 2 or found it 2
 * sleeps; the unlocker that swaps out a 2 wakes one sleeper, which takes the
 * lock as 2 again, since it cannot know whether others still sleep.
 */
#include "chan/waitq.h"

#include "rt/futex.h"

/* Spins before sleeping: critical sections are a handful of stores. */
#define LOCK_SPINS 64

void
blz__chan_lock_slow(_Atomic(uint32_t) *lock)
{
    for (int i = 0; i < LOCK_SPINS; i++) {
        blz__cpu_relax();
        uint32_t expect = 0;
        if (blz__load(lock, RELAXED) == 0 &&
            blz__cas(lock, &expect, 1, ACQUIRE, RELAXED)) { /* pairs with wq_unlock */
            return;
        }
    }
    /* Acquire pairs with the release exchange of wq_unlock. */
    while (blz__exchange(lock, 2, ACQUIRE) != 0) {
        blz__futex_wait(lock, 2, UINT64_MAX);
    }
}

void
blz__chan_unlock_wake(_Atomic(uint32_t) *lock)
{
    blz__futex_wake(lock, 1);
}
