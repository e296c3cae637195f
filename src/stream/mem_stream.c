/*
 * Two connected in-memory byte streams (Tokio's io::duplex).
 *
 * Invariants:
 * - One allocation holds the shared state and both ends. Direction i carries
 *   what end i writes and end 1 - i reads: a ring of `cap` bytes (head, len),
 *   whether its writer has ended it (shut down or closed: the reader sees end
 *   of stream once len is 0) and whether its reader is gone (closed: writes
 *   fail with -EPIPE).
 * - Each direction has one waker slot for its reader and one for its writer:
 *   an end is read by one task at a time and written by one task at a time,
 *   as any stream is. A waiting future owns the slot it filled (IOF_WAITING)
 *   and empties it when it finishes or is dropped.
 * - Everything above is under one spinlock; critical sections are a copy of
 *   at most the ring's size and a few stores. Wakers taken out under the lock
 *   are woken after it.
 * - The block is freed when both ends are closed.
 */
#include "blitzio/stream.h"
#include "core/alloc.h"
#include "core/coop.h"
#include "core/future.h"
#include "core/spinlock.h"

#include <limits.h>
#include <string.h>

typedef struct mstream_dir {
    unsigned char *ring;
    size_t cap, head, len;
    bool write_ended; /* its writer shut down or closed */
    bool reader_gone; /* its reader closed */
    blz_waker reader, writer;
} mstream_dir;

typedef struct mstream_shared mstream_shared;

struct blz_mem_stream {
    mstream_shared *sh;
    int side; /* writes dir[side], reads dir[1 - side] */
    bool closed;
};

struct mstream_shared {
    blz__spinlock lock;
    int ends_open;
    mstream_dir dir[2];
    struct blz_mem_stream end[2];
};

enum { OP_READ = 1, OP_WRITE = 2 };
#define IOF_WAITING 0x1 /* the future's waker sits in its direction's slot */

int
blz_mem_stream_pair(size_t max_buf, blz_mem_stream **a, blz_mem_stream **b)
{
    if (!a || !b || max_buf == 0 || max_buf > (SIZE_MAX - sizeof(mstream_shared)) / 2) {
        return -EINVAL;
    }
    mstream_shared *sh = blz__malloc(sizeof *sh + 2 * max_buf);
    if (!sh) {
        return -ENOMEM;
    }
    memset(sh, 0, sizeof *sh);
    atomic_init(&sh->lock.locked, 0);
    sh->ends_open = 2;
    unsigned char *rings = (unsigned char *) (sh + 1);
    for (int i = 0; i < 2; i++) {
        sh->dir[i].ring = rings + (size_t) i * max_buf;
        sh->dir[i].cap = max_buf;
        sh->dir[i].reader = BLZ_WAKER_NONE;
        sh->dir[i].writer = BLZ_WAKER_NONE;
        sh->end[i].sh = sh;
        sh->end[i].side = i;
    }
    *a = &sh->end[0];
    *b = &sh->end[1];
    return 0;
}

static mstream_dir *
dir_written(blz_mem_stream *d)
{
    return &d->sh->dir[d->side];
}

static mstream_dir *
dir_read(blz_mem_stream *d)
{
    return &d->sh->dir[1 - d->side];
}

/* Moves a waker out of its slot (to be woken or dropped after the unlock). */
static blz_waker
take(blz_waker *slot)
{
    blz_waker w = *slot;
    *slot = BLZ_WAKER_NONE;
    return w;
}

void
blz_mem_stream_close(blz_mem_stream *d)
{
    if (!d || d->closed) {
        return;
    }
    mstream_shared *sh = d->sh;
    blz__spin_lock(&sh->lock);
    d->closed = true;
    mstream_dir *out = dir_written(d), *in = dir_read(d);
    out->write_ended = true; /* the peer reads what is left, then the end */
    in->reader_gone = true;  /* the peer's writes fail */
    blz_waker peer_reader = take(&out->reader), peer_writer = take(&in->writer);
    bool last = --sh->ends_open == 0;
    blz__spin_unlock(&sh->lock);
    blz_waker_wake(&peer_reader);
    blz_waker_wake(&peer_writer);
    if (last) {
        blz__free(sh);
    }
}

/* Under the lock: parks the future's waker in `slot` (its own, see the file comment). */
static void
wait_in(blz_waker *slot, blz_io_future *f, const blz_context *cx)
{
    if (f->flags_ & IOF_WAITING) {
        blz_waker_set(slot, cx->waker);
    } else {
        *slot = blz_waker_clone(cx->waker);
        f->flags_ |= IOF_WAITING;
    }
}

/* Finishes `f` with `r`; `slot` is the waker slot it may own (the lock is held). */
static blz_waker
finish(blz_io_future *f, blz_waker *slot, int r)
{
    blz_waker mine = BLZ_WAKER_NONE;
    if (f->flags_ & IOF_WAITING) {
        mine = take(slot);
    }
    f->flags_ = 0;
    f->obj_ = NULL;
    f->base.result = r;
    return mine;
}

/* Copies up to `n` bytes out of the ring (or into it when `in` is set). */
static size_t
ring_move(mstream_dir *dd, unsigned char *buf, size_t n, bool in)
{
    size_t room = in ? dd->cap - dd->len : dd->len;
    size_t k = n < room ? n : room;
    size_t at = in ? (dd->head + dd->len) % dd->cap : dd->head;
    for (size_t done = 0; done < k;) {
        size_t run = dd->cap - at < k - done ? dd->cap - at : k - done;
        if (in) {
            memcpy(dd->ring + at, buf + done, run);
        } else {
            memcpy(buf + done, dd->ring + at, run);
        }
        done += run;
        at = (at + run) % dd->cap;
    }
    if (in) {
        dd->len += k;
    } else {
        dd->head = (dd->head + k) % dd->cap;
        dd->len -= k;
    }
    return k;
}

static blz_poll
mstream_poll(blz_future *base, blz_context *cx)
{
    blz_io_future *f = (blz_io_future *) base;
    blz_mem_stream *d = f->obj_;
    if (!d) {
        return BLZ_READY; /* finished earlier: result kept */
    }
    if (!blz__coop_proceed(cx)) {
        return BLZ_PENDING; /* budget spent: an echo loop that never waits still yields */
    }
    bool reading = f->op_ == OP_READ;
    mstream_dir *dd = reading ? dir_read(d) : dir_written(d);
    blz_waker *mine = reading ? &dd->reader : &dd->writer;
    blz_waker *other = reading ? &dd->writer : &dd->reader;
    blz_waker wake = BLZ_WAKER_NONE, drop;
    blz__spin_lock(&d->sh->lock);
    size_t n = f->len_ < (size_t) INT_MAX ? f->len_ : (size_t) INT_MAX;
    int r;
    if (reading && dd->len > 0) {
        r = (int) ring_move(dd, f->buf_, n, false);
        wake = take(other); /* room for the writer */
    } else if (reading && dd->write_ended) {
        r = 0; /* end of stream */
    } else if (!reading && (dd->write_ended || dd->reader_gone)) {
        r = -EPIPE;
    } else if (!reading && dd->len < dd->cap) {
        r = (int) ring_move(dd, f->buf_, n, true);
        wake = take(other); /* bytes for the reader */
    } else {
        wait_in(mine, f, cx);
        blz__spin_unlock(&d->sh->lock);
        return BLZ_PENDING;
    }
    drop = finish(f, mine, r);
    blz__spin_unlock(&d->sh->lock);
    blz_waker_drop(&drop);
    blz_waker_wake(&wake);
    return BLZ_READY;
}

static void
mstream_drop(blz_future *base)
{
    blz_io_future *f = (blz_io_future *) base;
    blz_mem_stream *d = f->obj_;
    if (!d) {
        return;
    }
    mstream_dir *dd = f->op_ == OP_READ ? dir_read(d) : dir_written(d);
    blz__spin_lock(&d->sh->lock);
    blz_waker drop = finish(f, f->op_ == OP_READ ? &dd->reader : &dd->writer, -ECANCELED);
    blz__spin_unlock(&d->sh->lock);
    blz_waker_drop(&drop);
}

static const blz_future_vtable mstream_vt = {mstream_poll, mstream_drop};

static void
mstream_fut(blz_mem_stream *d, int op, void *buf, size_t n, blz_io_future *f)
{
    if (!d || d->closed || (!buf && n)) {
        blz__io_future_ready(f, -EINVAL);
        return;
    }
    if (n == 0) {
        blz__io_future_ready(f, 0); /* nothing to move: done at once */
        return;
    }
    blz__io_future_start(f, &mstream_vt, d, op, buf, n, NULL);
}

static void
mstream_read_fut(void *self, void *buf, size_t n, blz_io_future *f)
{
    mstream_fut(self, OP_READ, buf, n, f);
}

static void
mstream_write_fut(void *self, const void *buf, size_t n, blz_io_future *f)
{
    mstream_fut(self, OP_WRITE, (void *) buf, n, f);
}

/* The end of writing: the peer reads what is in flight, then end of stream. */
static void
mstream_shutdown_fut(void *self, blz_io_future *f)
{
    blz_mem_stream *d = self;
    if (!d || d->closed) {
        blz__io_future_ready(f, -EINVAL);
        return;
    }
    mstream_dir *out = dir_written(d);
    blz__spin_lock(&d->sh->lock);
    out->write_ended = true;
    blz_waker peer_reader = take(&out->reader);
    blz__spin_unlock(&d->sh->lock);
    blz_waker_wake(&peer_reader);
    blz__io_future_ready(f, 0);
}

static const blz_reader_vtable mstream_reader_vt = {mstream_read_fut};
static const blz_writer_vtable mstream_writer_vt = {mstream_write_fut, NULL, mstream_shutdown_fut};

blz_reader
blz_mem_stream_reader(blz_mem_stream *d)
{
    return (blz_reader){&mstream_reader_vt, d};
}

blz_writer
blz_mem_stream_writer(blz_mem_stream *d)
{
    return (blz_writer){&mstream_writer_vt, d};
}

blz_duplex
blz_mem_stream_duplex(blz_mem_stream *d)
{
    return (blz_duplex){blz_mem_stream_reader(d), blz_mem_stream_writer(d)};
}
