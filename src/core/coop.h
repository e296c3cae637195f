/*
 * Internal: the cooperative budget. A task gets BLZ_COOP_BUDGET polls of
 * resources per scheduling tick; every primitive's poll and every blz_await
 * spends one. Once it is spent, the resource reports pending after waking the
 * task, so a task that always finds its resources ready still yields and
 * cannot starve the others on its worker. Outside a task the budget is unlimited.
 */
#ifndef BLZ_CORE_COOP_H
#define BLZ_CORE_COOP_H

#include "blitzio/future.h"

#include <stdbool.h>

#define BLZ_COOP_BUDGET    128
#define BLZ_COOP_UNLIMITED (-1)

extern _Thread_local int blz__coop_budget;

/* Spends one unit (none when unlimited); false when the budget is spent.
 * Inline: only for code that does not suspend between this and its use of
 * the answer (a fiber may resume on another thread). */
static inline bool
blz__coop_spend(void)
{
    int b = blz__coop_budget;
    if (b == 0) {
        return false;
    }
    if (b > 0) {
        blz__coop_budget = b - 1;
    }
    return true;
}

/* Out-of-line form for code that runs on a fiber across switches. */
bool blz__coop_take(void);

/* Spends one unit. Returns false (after waking cx's task) when the budget is exhausted. */
static inline bool
blz__coop_proceed(blz_context *cx)
{
    int b = blz__coop_budget;
    if (b < 0) {
        return true;
    }
    if (b == 0) {
        blz_waker_wake_by_ref(cx->waker);
        return false;
    }
    blz__coop_budget = b - 1;
    return true;
}

#endif
