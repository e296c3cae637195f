/*
 * The limited reader (blz_take): each read asks the inner reader for at most
 * what is left and counts down what it returned.
 *
 * Invariant: at most one inner read is in flight, in t->in_, owned by the
 * one blz_io_future whose flags_ say so; dropping that future drops it.
 */
#include "blitzio/stream.h"
#include "core/future.h"

#include <string.h>

#define F_INNER 0x1 /* t->in_ holds this future's inner read */

static blz_poll
take_poll(blz_future *base, blz_context *cx)
{
    blz_io_future *f = (blz_io_future *) base;
    blz_take *t = f->obj_;
    if (!(f->flags_ & F_INNER)) {
        blz_read_fut(t->inner_, f->buf_, f->len_, &t->in_);
        f->flags_ = F_INNER;
    }
    if (blz_future_poll(&t->in_.base, cx) == BLZ_PENDING) {
        return BLZ_PENDING;
    }
    f->flags_ = 0;
    int res = t->in_.base.result;
    if (res > 0) {
        /* A reader that returns more than asked would break the count. */
        t->left_ -= (uint64_t) res <= t->left_ ? (uint64_t) res : t->left_;
    }
    f->base.result = res;
    return BLZ_READY;
}

static void
take_drop(blz_future *base)
{
    blz_io_future *f = (blz_io_future *) base;
    if (f->flags_ & F_INNER) {
        blz_take *t = f->obj_;
        blz_future_drop(&t->in_.base);
        f->flags_ = 0;
    }
}

static const blz_future_vtable take_vt = {take_poll, take_drop};

static void
take_read_fut(void *self, void *buf, size_t n, blz_io_future *f)
{
    blz_take *t = self;
    if (!buf && n) {
        blz__io_future_ready(f, -EINVAL);
        return;
    }
    if (t->left_ == 0 || n == 0) {
        blz__io_future_ready(f, 0); /* the limit is the end */
        return;
    }
    memset(f, 0, sizeof *f);
    blz_future_init(&f->base, &take_vt);
    f->obj_ = t;
    f->buf_ = buf;
    f->len_ = n < t->left_ ? n : (size_t) t->left_;
}

static const blz_reader_vtable take_reader_vt = {take_read_fut};

blz_reader
blz_take_init(blz_take *t, blz_reader inner, uint64_t limit)
{
    blz_reader r = {NULL, t};
    if (!t || !inner.vt) {
        return r;
    }
    memset(t, 0, sizeof *t);
    t->inner_ = inner;
    t->left_ = limit;
    r.vt = &take_reader_vt;
    return r;
}

uint64_t
blz_take_left(const blz_take *t)
{
    return t ? t->left_ : 0;
}
