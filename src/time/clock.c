/*
 * The clocks: blz_now() reads CLOCK_MONOTONIC; blz_clock_now() reads the
 * clock of the calling thread's runtime, which is virtual when the runtime
 * was created with `paused_clock`.
 */
#include "blitzio/time.h"
#include "time/timers.h"

#include <time.h>

blz_instant
blz_now(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail with a valid pointer; it is answered by the vDSO. */
    (void) clock_gettime(CLOCK_MONOTONIC, &ts);
    return (blz_instant) ts.tv_sec * (blz_instant) BLZ_NS_PER_S + (blz_instant) ts.tv_nsec;
}

blz_instant
blz_clock_now(void)
{
    blz__timers *t = blz__timers_current(NULL);
    return t ? blz__timers_now(t) : blz_now();
}
