/*
 * Schedule perturbation (the BLZ_PERTURB build option). BLZ_PERTURB_POINT()
 * sits at the atomic steps of the sync primitives (and of anything else that
 * uses src/core/atomic.h); in a perturbation build each point calls
 * blz__perturb(), which now and then spins for a random short while or yields
 * the CPU, so tests explore interleavings that a quiet machine never produces.
 *
 * State: one xorshift64 generator per thread (thread-local, so no sharing and
 * no data race), seeded from the thread-local's address and the clock. The
 * rates are chosen to keep the test suite's run time within a small factor.
 * In a normal build this file compiles to nothing.
 */
/* syscall(), sched_yield(): not in strict C11 (the build defines it already today). */
#ifndef _GNU_SOURCE
# define _GNU_SOURCE
#endif
#include "core/atomic.h"

#if defined(BLZ_PERTURB) && BLZ_PERTURB

# include "blitzio/common.h"

# include <sched.h>
# include <stdint.h>

static _Thread_local uint64_t perturb_state;

static uint64_t
perturb_next(void)
{
    uint64_t x = perturb_state;
    if (x == 0) {
        x = (uint64_t) (uintptr_t) &perturb_state ^ (blz_now() * 0x9E3779B97F4A7C15ull);
        x |= 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    perturb_state = x;
    return x;
}

BLZ_API void
blz__perturb(void)
{
    uint64_t r = perturb_next();
    unsigned pick = (unsigned) (r & 63);
    if (pick == 0) {
        (void) sched_yield(); /* 1 in 64: give the core away */
    } else if (pick < 8) {
        unsigned spins = (unsigned) ((r >> 8) & 255); /* 7 in 64: a short random spin */
        for (unsigned i = 0; i < spins; i++) {
            blz__cpu_relax();
        }
    }
}

#else

/* ISO C forbids an empty translation unit. */
typedef int blz__perturb_disabled;

#endif
