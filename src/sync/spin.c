/*
 * The slow path of the sync primitives' queue spinlock (waitq.h).
 *
 * Invariants: the lock word is 0 (free) or 1 (held). Only the holder stores 0.
 * Holders never wait, wake, allocate or call user code, so a waiter spins only
 * while the holder runs a few instructions — unless the OS preempted it (more
 * worker threads than cores). Hence test-and-test-and-set with exponential
 * pause, then sched_yield() so a preempted holder can get the core back.
 */
/* syscall(), sched_yield(): not in strict C11 (the build defines it already today). */
#ifndef _GNU_SOURCE
# define _GNU_SOURCE
#endif
#include "sync/waitq.h"

#include <sched.h>

enum {
    SPIN_PAUSE_MAX = 64, /* pauses between two looks, at most */
    SPIN_ROUNDS = 12,    /* rounds of pausing before we start yielding */
};

void
blz__spin_lock_slow(_Atomic uint32_t *l)
{
    unsigned round = 0;
    unsigned pause = 1;
    for (;;) {
        /* Test first: a plain load keeps the line shared while the lock is held. */
        while (blz__load(l, RELAXED) != 0) {
            if (round < SPIN_ROUNDS) {
                for (unsigned i = 0; i < pause; i++) {
                    blz__cpu_relax();
                }
                if (pause < SPIN_PAUSE_MAX) {
                    pause <<= 1;
                }
                round++;
            } else {
                (void) sched_yield();
            }
        }
        BLZ_PERTURB_POINT();
        uint32_t expect = 0;
        /* Acquire pairs with the release store in blz__spin_unlock. */
        if (blz__cas_weak(l, &expect, 1, ACQUIRE, RELAXED)) {
            return;
        }
    }
}
