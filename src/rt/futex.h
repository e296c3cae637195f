/* Internal: futex wait/wake on a 32-bit atomic (Linux). */
#ifndef BLZ_RT_FUTEX_H
#define BLZ_RT_FUTEX_H

#include "blitzio/common.h"

#include <stdatomic.h>
#include <stdint.h>

/* Sleeps while *addr == expected, until woken or `deadline` (monotonic ns, UINT64_MAX = never). */
void blz__futex_wait(_Atomic uint32_t *addr, uint32_t expected, blz_instant deadline);

/* Wakes up to `n` threads sleeping on addr. */
void blz__futex_wake(_Atomic uint32_t *addr, int n);

#endif
