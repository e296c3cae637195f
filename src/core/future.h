/*
 * Internal: futures finished from the start, for the `_fut` calls that know
 * their answer at once (bad arguments, nothing to do, an immediate result).
 */
#ifndef BLZ_CORE_FUTURE_H
#define BLZ_CORE_FUTURE_H

#include "blitzio/future.h"
#include "blitzio/io.h"

#include <stdbool.h>

/* Its poll returns BLZ_READY and leaves `result` as the creator set it. */
extern const blz_future_vtable blz__ready_vtable;

/* Makes f a future finished with `result`. */
static inline void
blz__future_ready(blz_future *f, int result)
{
    blz_future_init(f, &blz__ready_vtable);
    f->result = result;
}

/* For a poll that is returning BLZ_READY with f->result set: from now on f is
 * a finished future, whose later polls keep the result and touch nothing (a
 * channel receive polled again would take the next item into the buffer that
 * holds the one it delivered, a send would send twice), and whose drop has
 * nothing to do, so the poll must have let go of everything first. */
static inline blz_poll
blz__future_finished(blz_future *f)
{
    f->vtable = &blz__ready_vtable;
    return BLZ_READY;
}

/* blz_future_init(f, vt) when the arguments were `ok`; otherwise a future
 * finished with -EINVAL. */
static inline void
blz__future_init_checked(blz_future *f, const blz_future_vtable *vt, bool ok)
{
    if (ok) {
        blz_future_init(f, vt);
    } else {
        blz__future_ready(f, -EINVAL);
    }
}

/* Clears the whole I/O future and makes it finished with `result`. */
void blz__io_future_ready(blz_io_future *f, int result);

/* Clears a waiter that is not linked anywhere. */
static inline void
blz__io_waiter_init(blz_waiter *w)
{
    w->next_ = NULL;
    w->prev_ = NULL;
    w->waker_ = BLZ_WAKER_NONE;
    w->state_ = 0;
}

/* Fills an I/O future for its first poll: vtable `vt`, operation `op` on
 * `obj` over `buf`/`len` with `aux`, nothing done yet, no flags, waiter clear. */
void blz__io_future_start(blz_io_future *f, const blz_future_vtable *vt, void *obj, int op,
                          void *buf, size_t len, void *aux);

#endif
