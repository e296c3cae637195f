/*
 * Future helpers that do not depend on the scheduler: drop, the no-op waker,
 * and futures finished from the start.
 */
#include "core/future.h"

#include <stddef.h>
#include <string.h>

void
blz_future_drop(blz_future *f)
{
    if (!f) {
        return;
    }
    const blz_future_vtable *vt = f->vtable;
    /* Clearing the vtable first makes a second drop, or a poll after drop, harmless. */
    f->vtable = NULL;
    if (vt && vt->drop) {
        f->vtable = vt; /* the drop routine may need to see its own type */
        vt->drop(f);
        f->vtable = NULL;
    }
}

static void
noop_fn(void *data)
{
    (void) data;
}

static void *
noop_clone(void *data)
{
    return data;
}

static const blz_waker_vtable noop_vtable = {noop_fn, noop_fn, noop_clone, noop_fn};
static const blz_waker noop_waker = {&noop_vtable, NULL};

const blz_waker *
blz_waker_noop(void)
{
    return &noop_waker;
}

static blz_poll
ready_poll(blz_future *f, blz_context *cx)
{
    (void) f;
    (void) cx;
    return BLZ_READY;
}

const blz_future_vtable blz__ready_vtable = {ready_poll, NULL};

void
blz__io_future_ready(blz_io_future *f, int result)
{
    memset(f, 0, sizeof *f);
    blz__future_ready(&f->base, result);
}

void
blz__io_future_start(blz_io_future *f, const blz_future_vtable *vt, void *obj, int op, void *buf,
                     size_t len, void *aux)
{
    blz_future_init(&f->base, vt);
    blz__io_waiter_init(&f->waiter_);
    f->obj_ = obj;
    f->buf_ = buf;
    f->len_ = len;
    f->done_ = 0;
    f->aux_ = aux;
    f->op_ = op;
    f->flags_ = 0;
}
