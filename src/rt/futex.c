/* Futex wrappers. EINTR, EAGAIN and timeouts are all "return and re-check". */
#include "rt/futex.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void
blz__futex_wait(_Atomic uint32_t *addr, uint32_t expected, blz_instant deadline)
{
    if (deadline == UINT64_MAX) {
        syscall(SYS_futex, (uint32_t *) addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
        return;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time. */
    struct timespec ts = {.tv_sec = (time_t) (deadline / 1000000000u),
                          .tv_nsec = (long) (deadline % 1000000000u)};
    syscall(SYS_futex, (uint32_t *) addr, FUTEX_WAIT_BITSET_PRIVATE, expected, &ts, NULL,
            FUTEX_BITSET_MATCH_ANY);
}

void
blz__futex_wake(_Atomic uint32_t *addr, int n)
{
    syscall(SYS_futex, (uint32_t *) addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}
