/*
 * Readers and writers: the adapters of the net objects, single reads and
 * writes, the end of writing, and the loop futures (read-exact, write-all,
 * copy, copy both ways).
 *
 * Invariants:
 * - A blz_stream_future runs at most one inner future (io_) at a time;
 *   state_ says which (S_IDLE: none). Its drop drops that inner future, so a
 *   loop abandoned half-way leaves no waiter behind.
 * - io_ is zeroed at init, so dropping it before it ever ran is a no-op.
 * - Loops spend no coop budget of their own: their inner polls do.
 */
#include "blitzio/stream.h"

#include "blitzio/net.h"
#include "core/alloc.h"
#include "core/future.h"
#include "stream/stream_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* SOP_COPY_SHUT: a copy that shuts its writer down at the end (one direction
 * of a bidirectional copy). */
enum { SOP_READ_EXACT = 1, SOP_WRITE_ALL = 2, SOP_COPY = 3, SOP_COPY_SHUT = 4, SOP_READ_END = 5 };
enum { S_IDLE = 0, S_READ = 1, S_WRITE = 2, S_END = 3 };

/* ---- adapters ---------------------------------------------------------------------- */

static void
tcp_read_fut(void *self, void *buf, size_t n, blz_io_future *f)
{
    blz_tcp_read_fut(self, buf, n, f);
}

static void
tcp_write_fut(void *self, const void *buf, size_t n, blz_io_future *f)
{
    blz_tcp_write_fut(self, buf, n, f);
}

static void
half_read_fut(void *self, void *buf, size_t n, blz_io_future *f)
{
    blz_tcp_half_read_fut(self, buf, n, f);
}

static void
half_write_fut(void *self, const void *buf, size_t n, blz_io_future *f)
{
    blz_tcp_half_write_fut(self, buf, n, f);
}

static void
unix_read_fut(void *self, void *buf, size_t n, blz_io_future *f)
{
    blz_unix_read_fut(self, buf, n, f);
}

static void
unix_write_fut(void *self, const void *buf, size_t n, blz_io_future *f)
{
    blz_unix_write_fut(self, buf, n, f);
}

static void
unix_half_read_fut(void *self, void *buf, size_t n, blz_io_future *f)
{
    blz_unix_half_read_fut(self, buf, n, f);
}

static void
unix_half_write_fut(void *self, const void *buf, size_t n, blz_io_future *f)
{
    blz_unix_half_write_fut(self, buf, n, f);
}

/* Ending the write direction of a socket is one system call that never waits. */
static void
tcp_shutdown_fut(void *self, blz_io_future *f)
{
    blz__io_future_ready(f, blz_tcp_shutdown(self, BLZ_SHUT_WR));
}

static void
half_shutdown_fut(void *self, blz_io_future *f)
{
    blz__io_future_ready(f, blz_tcp_half_shutdown(self));
}

static void
unix_shutdown_fut(void *self, blz_io_future *f)
{
    blz__io_future_ready(f, blz_unix_shutdown(self, BLZ_SHUT_WR));
}

static void
unix_half_shutdown_fut(void *self, blz_io_future *f)
{
    blz__io_future_ready(f, blz_unix_half_shutdown(self));
}

static const blz_reader_vtable tcp_reader_vt = {tcp_read_fut};
static const blz_writer_vtable tcp_writer_vt = {tcp_write_fut, NULL, tcp_shutdown_fut};
static const blz_reader_vtable half_reader_vt = {half_read_fut};
static const blz_writer_vtable half_writer_vt = {half_write_fut, NULL, half_shutdown_fut};
static const blz_reader_vtable unix_reader_vt = {unix_read_fut};
static const blz_writer_vtable unix_writer_vt = {unix_write_fut, NULL, unix_shutdown_fut};
static const blz_reader_vtable unix_half_reader_vt = {unix_half_read_fut};
static const blz_writer_vtable unix_half_writer_vt = {unix_half_write_fut, NULL,
                                                      unix_half_shutdown_fut};

blz_reader
blz_tcp_reader(struct blz_tcp_stream *s)
{
    blz_reader r = {s ? &tcp_reader_vt : NULL, s};
    return r;
}

blz_writer
blz_tcp_writer(struct blz_tcp_stream *s)
{
    blz_writer w = {s ? &tcp_writer_vt : NULL, s};
    return w;
}

blz_reader
blz_tcp_read_half_reader(struct blz_tcp_read_half *h)
{
    blz_reader r = {h ? &half_reader_vt : NULL, h};
    return r;
}

blz_writer
blz_tcp_write_half_writer(struct blz_tcp_write_half *h)
{
    blz_writer w = {h ? &half_writer_vt : NULL, h};
    return w;
}

blz_reader
blz_unix_reader(struct blz_unix_stream *s)
{
    blz_reader r = {s ? &unix_reader_vt : NULL, s};
    return r;
}

blz_writer
blz_unix_writer(struct blz_unix_stream *s)
{
    blz_writer w = {s ? &unix_writer_vt : NULL, s};
    return w;
}

blz_reader
blz_unix_read_half_reader(struct blz_unix_read_half *h)
{
    blz_reader r = {h ? &unix_half_reader_vt : NULL, h};
    return r;
}

blz_writer
blz_unix_write_half_writer(struct blz_unix_write_half *h)
{
    blz_writer w = {h ? &unix_half_writer_vt : NULL, h};
    return w;
}

/* ---- single operations ---------------------------------------------------------------- */


void
blz_read_fut(blz_reader r, void *buf, size_t n, blz_io_future *f)
{
    if (!f) {
        return;
    }
    if (!r.vt || !r.vt->read_fut) {
        blz__io_future_ready(f, -EINVAL);
        return;
    }
    r.vt->read_fut(r.self, buf, n, f);
}

ssize_t
blz_read(blz_reader r, void *buf, size_t n)
{
    blz_io_future f;
    blz_read_fut(r, buf, n, &f);
    return blz_await(&f.base);
}

void
blz_write_fut(blz_writer w, const void *buf, size_t n, blz_io_future *f)
{
    if (!f) {
        return;
    }
    if (!w.vt || !w.vt->write_fut) {
        blz__io_future_ready(f, -EINVAL);
        return;
    }
    w.vt->write_fut(w.self, buf, n, f);
}

ssize_t
blz_write(blz_writer w, const void *buf, size_t n)
{
    blz_io_future f;
    blz_write_fut(w, buf, n, &f);
    return blz_await(&f.base);
}

void
blz_flush_fut(blz_writer w, blz_io_future *f)
{
    if (!f) {
        return;
    }
    if (!w.vt) {
        blz__io_future_ready(f, -EINVAL);
    } else if (w.vt->flush_fut) {
        w.vt->flush_fut(w.self, f);
    } else {
        blz__io_future_ready(f, 0);
    }
}

int
blz_flush(blz_writer w)
{
    blz_io_future f;
    blz_flush_fut(w, &f);
    return blz_await(&f.base);
}

void
blz_write_shutdown_fut(blz_writer w, blz_io_future *f)
{
    if (!f) {
        return;
    }
    if (w.vt && w.vt->shutdown_fut) {
        w.vt->shutdown_fut(w.self, f);
    } else {
        blz_flush_fut(w, f); /* nothing to end but what it buffers */
    }
}

int
blz_write_shutdown(blz_writer w)
{
    blz_io_future f;
    blz_write_shutdown_fut(w, &f);
    return blz_await(&f.base);
}

/* ---- loops ------------------------------------------------------------------------------- */

/* Stores a copy's total where the caller asked for it (NULL: nowhere). */
static void
put_total(uint64_t *out, uint64_t total)
{
    if (out) {
        *out = total;
    }
}

/* The reader ended: flush the writer, or shut it down (SOP_COPY_SHUT). */
static void
start_end(blz_stream_future *f)
{
    if (f->op_ == -SOP_COPY_SHUT) {
        blz_write_shutdown_fut(f->w_, &f->io_);
    } else {
        blz_flush_fut(f->w_, &f->io_);
    }
    f->state_ = S_END;
}

/* Copy: read into buf_, write it all out, repeat until the reader ends, then
 * flush (or shut down) the writer. op_ turns negative at the reader's end. */
static blz_poll
copy_poll(blz_stream_future *f, blz_context *cx)
{
    for (;;) {
        if (f->state_ == S_IDLE) {
            if (f->done_ < f->fill_) {
                blz_write_fut(f->w_, f->buf_ + f->done_, f->fill_ - f->done_, &f->io_);
                f->state_ = S_WRITE;
            } else if (f->op_ < 0) { /* the reader ended: end the writer, then done */
                start_end(f);
            } else {
                f->done_ = f->fill_ = 0;
                blz_read_fut(f->r_, f->buf_, f->len_, &f->io_);
                f->state_ = S_READ;
            }
        }
        if (blz_future_poll(&f->io_.base, cx) == BLZ_PENDING) {
            return BLZ_PENDING;
        }
        int state = f->state_;
        int res = f->io_.base.result;
        f->state_ = S_IDLE;
        if (state != S_END) {
            res = blz__stream_count(res, state == S_READ ? f->len_ : f->fill_ - f->done_);
        }
        if (res < 0) {
            f->base.result = res;
            break;
        }
        if (state == S_END) {
            f->base.result = 0;
            break;
        }
        if (state == S_READ) {
            if (res == 0) {
                f->op_ = -f->op_; /* end of input */
            }
            f->fill_ = (size_t) res;
        } else {
            if (res == 0) {
                f->base.result = -EIO; /* a writer that takes nothing would loop forever */
                break;
            }
            f->done_ += (size_t) res;
            f->total_ += (uint64_t) res;
        }
    }
    put_total(f->out_total_, f->total_);
    return BLZ_READY;
}

/* Read to end: reads into buf_ until the reader ends; once buf_ is full, one
 * more read of a byte into probe_ tells a stream of exactly len_ bytes (it
 * ends) from a longer one (-EFBIG). */
static blz_poll
read_end_poll(blz_stream_future *f, blz_context *cx)
{
    for (;;) {
        bool full = f->done_ == f->len_;
        if (f->state_ == S_IDLE) {
            blz_read_fut(f->r_, full ? &f->probe_ : f->buf_ + f->done_,
                         full ? 1 : f->len_ - f->done_, &f->io_);
            f->state_ = S_READ;
        }
        if (blz_future_poll(&f->io_.base, cx) == BLZ_PENDING) {
            return BLZ_PENDING;
        }
        f->state_ = S_IDLE;
        int res = f->io_.base.result;
        res = blz__stream_count(res, full ? 1 : f->len_ - f->done_);
        if (res <= 0 || full) {
            f->base.result = res <= 0 ? res : -EFBIG;
            break;
        }
        f->done_ += (size_t) res;
    }
    *f->out_len_ = f->done_;
    return BLZ_READY;
}

static blz_poll
stream_poll(blz_future *base, blz_context *cx)
{
    blz_stream_future *f = (blz_stream_future *) base;
    if (f->op_ == SOP_READ_END) {
        return read_end_poll(f, cx);
    }
    int op = f->op_ < 0 ? -f->op_ : f->op_; /* a copy's op_ turns negative at the end */
    if (op == SOP_COPY || op == SOP_COPY_SHUT) {
        return copy_poll(f, cx);
    }
    for (;;) {
        if (f->done_ >= f->len_) {
            f->base.result = 0;
            return BLZ_READY;
        }
        size_t want = f->len_ - f->done_;
        if (f->state_ == S_IDLE) {
            if (f->op_ == SOP_READ_EXACT) {
                blz_read_fut(f->r_, f->buf_ + f->done_, want, &f->io_);
                f->state_ = S_READ;
            } else {
                blz_write_fut(f->w_, f->buf_ + f->done_, want, &f->io_);
                f->state_ = S_WRITE;
            }
        }
        if (blz_future_poll(&f->io_.base, cx) == BLZ_PENDING) {
            return BLZ_PENDING;
        }
        int res = f->io_.base.result;
        f->state_ = S_IDLE;
        res = blz__stream_count(res, want);
        if (res < 0) {
            f->base.result = res;
            return BLZ_READY;
        }
        if (res == 0) {
            f->base.result = f->op_ == SOP_READ_EXACT ? -EPIPE : -EIO;
            return BLZ_READY;
        }
        f->done_ += (size_t) res;
    }
}

static void
stream_drop(blz_future *base)
{
    blz_stream_future *f = (blz_stream_future *) base;
    if (f->state_ != S_IDLE) {
        blz_future_drop(&f->io_.base);
        f->state_ = S_IDLE;
    }
}

static const blz_future_vtable stream_vt = {stream_poll, stream_drop};

static void
stream_init(blz_stream_future *f, int op, blz_reader r, blz_writer w, void *buf, size_t len)
{
    memset(f, 0, sizeof *f);
    blz_future_init(&f->base, &stream_vt);
    f->op_ = op;
    f->r_ = r;
    f->w_ = w;
    f->buf_ = buf;
    f->len_ = len;
}

static void
stream_fail(blz_stream_future *f, int err)
{
    memset(f, 0, sizeof *f);
    blz__future_ready(&f->base, err);
}

void
blz_read_exact_fut(blz_reader r, void *buf, size_t n, blz_stream_future *f)
{
    if (!f) {
        return;
    }
    if (!r.vt || (!buf && n)) {
        stream_fail(f, -EINVAL);
        return;
    }
    blz_writer none = {NULL, NULL};
    stream_init(f, SOP_READ_EXACT, r, none, buf, n);
}

int
blz_read_exact(blz_reader r, void *buf, size_t n)
{
    blz_stream_future f;
    blz_read_exact_fut(r, buf, n, &f);
    return blz_await(&f.base);
}

void
blz_read_to_end_fut(blz_reader r, void *buf, size_t cap, size_t *len, blz_stream_future *f)
{
    if (!f) {
        return;
    }
    if (len) {
        *len = 0; /* stored however it ends, a refusal included */
    }
    if (!r.vt || (!buf && cap) || !len) {
        stream_fail(f, -EINVAL);
        return;
    }
    blz_writer none = {NULL, NULL};
    stream_init(f, SOP_READ_END, r, none, buf, cap);
    f->out_len_ = len;
}

int
blz_read_to_end(blz_reader r, void *buf, size_t cap, size_t *len)
{
    blz_stream_future f;
    blz_read_to_end_fut(r, buf, cap, len, &f);
    return blz_await(&f.base);
}

void
blz_write_all_fut(blz_writer w, const void *buf, size_t n, blz_stream_future *f)
{
    if (!f) {
        return;
    }
    if (!w.vt || (!buf && n)) {
        stream_fail(f, -EINVAL);
        return;
    }
    blz_reader none = {NULL, NULL};
    stream_init(f, SOP_WRITE_ALL, none, w, (void *) buf, n);
}

int
blz_write_all(blz_writer w, const void *buf, size_t n)
{
    blz_stream_future f;
    blz_write_all_fut(w, buf, n, &f);
    return blz_await(&f.base);
}

/* clang 14's analyzer takes the va_list that va_start or va_copy filled here
 * for uninitialised (its valist checker): both are set before use. */
// NOLINTBEGIN(clang-analyzer-valist.Uninitialized)
int
blz_write_fmt(blz_writer w, const char *fmt, ...)
{
    if (!w.vt || !fmt) {
        return -EINVAL;
    }
    char small[256]; /* most lines fit: no allocation */
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap); /* for the second pass of a long text */
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    char *text = small;
    if (n >= 0 && (size_t) n >= sizeof small) {
        text = blz__malloc((size_t) n + 1);
        if (text) {
            (void) vsnprintf(text, (size_t) n + 1, fmt, again);
        }
    }
    va_end(again);
    if (n < 0 || !text) {
        return n < 0 ? -EINVAL : -ENOMEM;
    }
    int rc = blz_write_all(w, text, (size_t) n);
    if (text != small) {
        blz__free(text);
    }
    return rc < 0 ? rc : n;
}
// NOLINTEND(clang-analyzer-valist.Uninitialized)

void
blz_copy_fut(blz_reader r, blz_writer w, void *buf, size_t cap, uint64_t *copied,
             blz_stream_future *f)
{
    if (!f) {
        return;
    }
    put_total(copied, 0);
    if (!r.vt || !w.vt || !buf || cap == 0) {
        stream_fail(f, -EINVAL);
        return;
    }
    stream_init(f, SOP_COPY, r, w, buf, cap);
    f->out_total_ = copied;
}

int
blz_copy(blz_reader r, blz_writer w, uint64_t *copied)
{
    size_t cap = 16384;
    void *buf = blz__malloc(cap);
    if (!buf) {
        put_total(copied, 0); /* stored on every return: nothing was copied */
        return -ENOMEM;
    }
    blz_stream_future f;
    blz_copy_fut(r, w, buf, cap, NULL, &f);
    int rc = blz_await(&f.base);
    /* The count is stored here, once, however the wait ended: an aborted
     * task's await drops the future, and a dropped future stores nothing,
     * yet -ECANCELED too reports what was written. */
    put_total(copied, f.total_);
    blz__free(buf);
    return rc;
}

/* ---- copy both ways ------------------------------------------------------------------------ */

enum { BIDI_AB = 1, BIDI_BA = 2, BIDI_BA_FIRST = 4 };

/* Polls one direction unless it already finished. Returns its error once it
 * failed, else 0. */
static int
bidi_step(blz_copy_bidi_future *f, blz_stream_future *dir, unsigned bit, blz_context *cx)
{
    if (f->ended_ & bit) {
        return 0;
    }
    if (blz_future_poll(&dir->base, cx) == BLZ_PENDING) {
        return 0;
    }
    f->ended_ |= bit;
    return dir->base.result < 0 ? dir->base.result : 0;
}

/*
 * Both directions are polled on every wake (each registered the task's waker
 * with its own stream). Which goes first alternates: a direction whose
 * stream is always ready runs until the coop budget stops it, and the one
 * polled after it would then find the budget spent every time.
 */
static blz_poll
bidi_poll(blz_future *base, blz_context *cx)
{
    blz_copy_bidi_future *f = (blz_copy_bidi_future *) base;
    bool ba_first = f->ended_ & BIDI_BA_FIRST;
    f->ended_ ^= BIDI_BA_FIRST;
    int err = ba_first ? bidi_step(f, &f->ba_, BIDI_BA, cx) : bidi_step(f, &f->ab_, BIDI_AB, cx);
    if (!err) {
        err = ba_first ? bidi_step(f, &f->ab_, BIDI_AB, cx) : bidi_step(f, &f->ba_, BIDI_BA, cx);
    }
    if (!err && (f->ended_ & (BIDI_AB | BIDI_BA)) != (BIDI_AB | BIDI_BA)) {
        return BLZ_PENDING;
    }
    /* Done, or failed: the direction still running stops where it is. */
    blz_future_drop(&f->ab_.base);
    blz_future_drop(&f->ba_.base);
    f->ended_ |= BIDI_AB | BIDI_BA;
    put_total(f->out_ab_, f->ab_.total_);
    put_total(f->out_ba_, f->ba_.total_);
    f->base.result = err;
    return BLZ_READY;
}

static void
bidi_drop(blz_future *base)
{
    blz_copy_bidi_future *f = (blz_copy_bidi_future *) base;
    blz_future_drop(&f->ab_.base);
    blz_future_drop(&f->ba_.base);
}

static const blz_future_vtable bidi_vt = {bidi_poll, bidi_drop};

void
blz_copy_bidirectional_fut(blz_duplex a, blz_duplex b, void *buf, size_t cap, uint64_t *a_to_b,
                           uint64_t *b_to_a, blz_copy_bidi_future *f)
{
    if (!f) {
        return;
    }
    put_total(a_to_b, 0);
    put_total(b_to_a, 0);
    memset(f, 0, sizeof *f);
    if (!a.r.vt || !a.w.vt || !b.r.vt || !b.w.vt || !buf || cap < 2) {
        blz__future_ready(&f->base, -EINVAL);
        return;
    }
    blz_future_init(&f->base, &bidi_vt);
    size_t half = cap / 2;
    stream_init(&f->ab_, SOP_COPY_SHUT, a.r, b.w, buf, half);
    stream_init(&f->ba_, SOP_COPY_SHUT, b.r, a.w, (unsigned char *) buf + half, half);
    f->out_ab_ = a_to_b;
    f->out_ba_ = b_to_a;
}

int
blz_copy_bidirectional(blz_duplex a, blz_duplex b, uint64_t *a_to_b, uint64_t *b_to_a)
{
    size_t cap = 32768;
    void *buf = blz__malloc(cap);
    if (!buf) {
        put_total(a_to_b, 0);
        put_total(b_to_a, 0);
        return -ENOMEM;
    }
    blz_copy_bidi_future f;
    blz_copy_bidirectional_fut(a, b, buf, cap, NULL, NULL, &f);
    int rc = blz_await(&f.base);
    /* As in blz_copy: stored once, -ECANCELED too saying what went each way. */
    put_total(a_to_b, f.ab_.total_);
    put_total(b_to_a, f.ba_.total_);
    blz__free(buf);
    return rc;
}
