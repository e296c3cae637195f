/* Internal: sleep futures as building blocks of intervals and timeouts. */
#ifndef BLZ_TIME_SLEEP_H
#define BLZ_TIME_SLEEP_H

#include "blitzio/time.h"

/* Fills `f` to complete at `deadline`; `known_now` is an instant known to have
 * passed (a clock reading), which lets the first poll complete without reading
 * the clock when the deadline is not after it. */
void blz__sleep_init(blz_sleep_future *f, blz_instant deadline, blz_instant known_now);

#endif
