/*
 * Buffered readers and writers.
 *
 * Invariants (reader): buf_[pos_, end_) is unread data, 0 <= pos_ <= end_ <=
 * cap_; eof_ once the inner reader returned 0; err_ (set only with the buffer
 * empty) is an error owed to the next operation. At most one inner read is in
 * flight, in fill_, owned by the one blz_io_future (op BR_*) that started it
 * (flag FILLING); dropping that future drops the inner read.
 * Invariants (writer): buf_[sent_, len_) waits to go out; sent_ > 0 only
 * while a flush is under way. At most one inner write is in flight, in out_.
 * Both are single-owner: one operation at a time.
 */
#include "blitzio/stream.h"
#include "core/alloc.h"
#include "core/future.h"
#include "stream/stream_int.h"

#include <string.h>

#define DEFAULT_CAP 8192

enum {
    BR_READ = 1,
    BR_FILL = 2,
    BR_UNTIL = 3,
    BR_LINE = 4,
    BW_WRITE = 5,
    BW_FLUSH = 6,
    BW_SHUTDOWN = 7
};
#define F_FILLING     0x1 /* an inner read (reader) or write (writer) is in flight */
#define F_DIRECT      0x2 /* it targets the caller's buffer, not ours */
#define F_INNER_FLUSH 0x4 /* the writer is flushing (or shutting down) its inner writer */
#define F_DELIM_SHIFT 8   /* read_until: the delimiter byte, in flags_ bits 8..15 */

static int
buf_setup(unsigned char **buf, size_t *cap, bool *owned, void *user, size_t ucap)
{
    if (user) {
        if (ucap == 0) {
            return -EINVAL;
        }
        *buf = user;
        *cap = ucap;
        *owned = false;
        return 0;
    }
    size_t c = ucap ? ucap : DEFAULT_CAP;
    *buf = blz__malloc(c);
    if (!*buf) {
        return -ENOMEM;
    }
    *cap = c;
    *owned = true;
    return 0;
}

/* ---- reader --------------------------------------------------------------------------- */

int
blz_buf_reader_init(blz_buf_reader *br, blz_reader inner, void *buf, size_t cap)
{
    if (!br) {
        return -EINVAL;
    }
    memset(br, 0, sizeof *br);
    if (!inner.vt || !inner.vt->read_fut) {
        return -EINVAL;
    }
    br->inner_ = inner;
    return buf_setup(&br->buf_, &br->cap_, &br->owned_, buf, cap);
}

void
blz_buf_reader_deinit(blz_buf_reader *br)
{
    if (br && br->owned_) {
        blz__free(br->buf_);
    }
    if (br) {
        memset(br, 0, sizeof *br);
    }
}

static size_t
take(blz_buf_reader *br, void *out, size_t n)
{
    size_t k = br->end_ - br->pos_;
    if (k > n) {
        k = n;
    }
    memcpy(out, br->buf_ + br->pos_, k);
    br->pos_ += k;
    return k;
}

/* Hands the error read_until kept (see until_poll) to this operation: true,
 * with it in *res, when there was one. Only with the buffer empty: it came
 * after the last buffered byte. */
static bool
owed_error(blz_buf_reader *br, int *res)
{
    if (br->err_ == 0 || br->pos_ < br->end_) {
        return false;
    }
    *res = br->err_;
    br->err_ = 0;
    return true;
}

/* The inner read of f into `to` (started unless one is in flight):
 * PENDING, or READY with its checked count in *res (0 at end of stream,
 * which sets eof_; or -errno) and F_FILLING clear. */
static blz_poll
inner_read(blz_buf_reader *br, blz_io_future *f, void *to, size_t len, blz_context *cx, int *res)
{
    if (!(f->flags_ & F_FILLING)) {
        br->inner_.vt->read_fut(br->inner_.self, to, len, &br->fill_);
        f->flags_ |= F_FILLING;
    }
    if (blz_future_poll(&br->fill_.base, cx) == BLZ_PENDING) {
        return BLZ_PENDING;
    }
    f->flags_ &= ~F_FILLING;
    *res = blz__stream_count(br->fill_.base.result, len);
    br->eof_ = *res == 0;
    return BLZ_READY;
}

static blz_poll
br_poll(blz_future *base, blz_context *cx)
{
    blz_io_future *f = (blz_io_future *) base;
    blz_buf_reader *br = f->obj_;
    if (!(f->flags_ & F_FILLING)) {
        if (br->pos_ < br->end_) {
            f->base.result =
                f->op_ == BR_FILL ? (int) (br->end_ - br->pos_) : (int) take(br, f->buf_, f->len_);
            return BLZ_READY;
        }
        if (owed_error(br, &f->base.result)) {
            return BLZ_READY;
        }
        if (br->eof_) {
            f->base.result = 0;
            return BLZ_READY;
        }
        if (f->op_ == BR_READ && f->len_ >= br->cap_) {
            f->flags_ |= F_DIRECT; /* a big read bypasses the buffer (nothing is buffered now) */
        }
    }
    int direct = f->flags_ & F_DIRECT;
    int res;
    if (inner_read(br, f, direct ? f->buf_ : br->buf_, direct ? f->len_ : br->cap_, cx, &res) ==
        BLZ_PENDING) {
        return BLZ_PENDING;
    }
    f->flags_ = 0;
    if (res <= 0 || direct) {
        f->base.result = res;
        return BLZ_READY;
    }
    br->pos_ = 0;
    br->end_ = (size_t) res;
    f->base.result = f->op_ == BR_FILL ? res : (int) take(br, f->buf_, f->len_);
    return BLZ_READY;
}

/* read_until and read_line: copies from the buffer into buf_ up to and
 * including the delimiter (F_DELIM_SHIFT), refilling as it runs dry; done_ counts
 * the bytes copied, len_ bounds them. */
static blz_poll
until_poll(blz_future *base, blz_context *cx)
{
    blz_io_future *f = (blz_io_future *) base;
    blz_buf_reader *br = f->obj_;
    unsigned char *out = f->buf_;
    unsigned char delim = (unsigned char) (f->flags_ >> F_DELIM_SHIFT);
    int res = 0;
    while (f->done_ < f->len_) {
        if (br->pos_ == br->end_) {
            if (!(f->flags_ & F_FILLING) && owed_error(br, &res)) {
                break; /* done_ is 0: the buffer was empty when this began */
            }
            if (br->eof_ && !(f->flags_ & F_FILLING)) {
                break; /* end of stream */
            }
            if (inner_read(br, f, br->buf_, br->cap_, cx, &res) == BLZ_PENDING) {
                return BLZ_PENDING;
            }
            if (res <= 0) {
                break;
            }
            br->pos_ = 0;
            br->end_ = (size_t) res;
        }
        const unsigned char *data = br->buf_ + br->pos_;
        size_t avail = br->end_ - br->pos_;
        if (avail > f->len_ - f->done_) {
            avail = f->len_ - f->done_;
        }
        const unsigned char *hit = memchr(data, delim, avail);
        size_t k = hit ? (size_t) (hit - data) + 1 : avail;
        memcpy(out + f->done_, data, k);
        br->pos_ += k;
        f->done_ += k;
        if (hit) {
            break;
        }
    }
    /* An error after some bytes: the bytes now, the error kept for the next
     * operation. The inner reader need not say it again: a socket's recv
     * after ECONNRESET reads 0, which would pass for an end of stream. */
    if (f->done_ && res < 0) {
        br->err_ = res;
    }
    f->base.result = f->done_ || res >= 0 ? (int) f->done_ : res;
    if (f->op_ == BR_LINE) {
        out[f->done_] = '\0';
    }
    return BLZ_READY;
}

static void
br_drop(blz_future *base)
{
    blz_io_future *f = (blz_io_future *) base;
    if (f->flags_ & F_FILLING) {
        blz_buf_reader *br = f->obj_;
        blz_future_drop(&br->fill_.base);
        f->flags_ = 0;
    }
}

static const blz_future_vtable br_vt = {br_poll, br_drop};
static const blz_future_vtable until_vt = {until_poll, br_drop};

static void
br_fut(blz_buf_reader *br, int op, void *buf, size_t n, blz_io_future *f)
{
    if (!br || !br->buf_ || (!buf && n && op == BR_READ)) {
        blz__io_future_ready(f, -EINVAL);
        return;
    }
    if (op == BR_READ && n == 0) {
        blz__io_future_ready(f, 0);
        return;
    }
    memset(f, 0, sizeof *f);
    blz_future_init(&f->base, &br_vt);
    f->obj_ = br;
    f->buf_ = buf;
    f->len_ = n > 0x7fffffff ? 0x7fffffff : n;
    f->op_ = op;
}

static void
br_read_fut(void *self, void *buf, size_t n, blz_io_future *f)
{
    br_fut(self, BR_READ, buf, n, f);
}

static const blz_reader_vtable br_reader_vt = {br_read_fut};

blz_reader
blz_buf_reader_as_reader(blz_buf_reader *br)
{
    blz_reader r = {br ? &br_reader_vt : NULL, br};
    return r;
}

void
blz_buf_reader_read_fut(blz_buf_reader *br, void *buf, size_t n, blz_io_future *f)
{
    if (f) {
        br_fut(br, BR_READ, buf, n, f);
    }
}

ssize_t
blz_buf_reader_read(blz_buf_reader *br, void *buf, size_t n)
{
    blz_io_future f;
    br_fut(br, BR_READ, buf, n, &f);
    return blz_await(&f.base);
}

void
blz_buf_reader_fill_fut(blz_buf_reader *br, blz_io_future *f)
{
    if (f) {
        br_fut(br, BR_FILL, NULL, 0, f);
    }
}

size_t
blz_buf_reader_buffer(const blz_buf_reader *br, const void **data)
{
    size_t n = br && br->buf_ ? br->end_ - br->pos_ : 0;
    if (data) {
        *data = n ? br->buf_ + br->pos_ : NULL;
    }
    return n;
}

ssize_t
blz_buf_reader_fill(blz_buf_reader *br, const void **data)
{
    if (!br || !data) {
        return -EINVAL;
    }
    blz_io_future f;
    br_fut(br, BR_FILL, NULL, 0, &f);
    int r = blz_await(&f.base);
    *data = r > 0 ? br->buf_ + br->pos_ : NULL;
    return r;
}

void
blz_buf_reader_consume(blz_buf_reader *br, size_t n)
{
    if (!br) {
        return;
    }
    size_t k = br->end_ - br->pos_;
    br->pos_ += n < k ? n : k;
}

static void
until_fut(blz_buf_reader *br, int op, int delim, void *out, size_t cap, blz_io_future *f)
{
    /* No room is -EINVAL: a 0 would read as the end of the stream. */
    if (!br || !br->buf_ || !out || cap < (op == BR_LINE ? 2u : 1u)) {
        blz__io_future_ready(f, -EINVAL);
        return;
    }
    memset(f, 0, sizeof *f);
    blz_future_init(&f->base, &until_vt);
    f->obj_ = br;
    f->buf_ = out;
    f->len_ = op == BR_LINE ? cap - 1 : cap; /* a line keeps room for its NUL */
    if (f->len_ > 0x7fffffff) {
        f->len_ = 0x7fffffff; /* the count is an int */
    }
    f->flags_ = (int) ((unsigned) (unsigned char) delim << F_DELIM_SHIFT);
    f->op_ = op;
}

void
blz_buf_reader_read_until_fut(blz_buf_reader *br, int delim, void *out, size_t cap,
                              blz_io_future *f)
{
    if (f) {
        until_fut(br, BR_UNTIL, delim, out, cap, f);
    }
}

ssize_t
blz_buf_reader_read_until(blz_buf_reader *br, int delim, void *out, size_t cap)
{
    blz_io_future f;
    until_fut(br, BR_UNTIL, delim, out, cap, &f);
    return blz_await(&f.base);
}

void
blz_buf_reader_read_line_fut(blz_buf_reader *br, char *line, size_t cap, blz_io_future *f)
{
    if (f) {
        until_fut(br, BR_LINE, '\n', line, cap, f);
    }
}

ssize_t
blz_buf_reader_read_line(blz_buf_reader *br, char *line, size_t cap)
{
    blz_io_future f;
    until_fut(br, BR_LINE, '\n', line, cap, &f);
    return blz_await(&f.base);
}

int
blz_buf_reader_read_exact(blz_buf_reader *br, void *buf, size_t n)
{
    return blz_read_exact(blz_buf_reader_as_reader(br), buf, n);
}

/* ---- writer ------------------------------------------------------------------------------- */

int
blz_buf_writer_init(blz_buf_writer *bw, blz_writer inner, void *buf, size_t cap)
{
    if (!bw) {
        return -EINVAL;
    }
    memset(bw, 0, sizeof *bw);
    if (!inner.vt || !inner.vt->write_fut) {
        return -EINVAL;
    }
    bw->inner_ = inner;
    return buf_setup(&bw->buf_, &bw->cap_, &bw->owned_, buf, cap);
}

void
blz_buf_writer_deinit(blz_buf_writer *bw)
{
    if (bw && bw->owned_) {
        blz__free(bw->buf_);
    }
    if (bw) {
        memset(bw, 0, sizeof *bw);
    }
}

size_t
blz_buf_writer_buffered(const blz_buf_writer *bw)
{
    return bw ? bw->len_ - bw->sent_ : 0;
}

/* Drives the write-out of buf_[sent_, len_). READY with 0 when empty, or an error. */
static blz_poll
drain(blz_io_future *f, blz_buf_writer *bw, blz_context *cx, int *err)
{
    while (bw->sent_ < bw->len_) {
        if (!(f->flags_ & F_FILLING)) {
            bw->inner_.vt->write_fut(bw->inner_.self, bw->buf_ + bw->sent_, bw->len_ - bw->sent_,
                                     &bw->out_);
            f->flags_ |= F_FILLING;
        }
        if (blz_future_poll(&bw->out_.base, cx) == BLZ_PENDING) {
            return BLZ_PENDING;
        }
        f->flags_ &= ~F_FILLING;
        int res = blz__stream_count(bw->out_.base.result, bw->len_ - bw->sent_);
        if (res <= 0) {
            *err = res < 0 ? res : -EIO;
            return BLZ_READY;
        }
        bw->sent_ += (size_t) res;
    }
    bw->sent_ = bw->len_ = 0;
    *err = 0;
    return BLZ_READY;
}

/* BW_FLUSH and BW_SHUTDOWN: write the buffer out, then flush (or shut down)
 * the inner writer. */
static blz_poll
bw_poll_end(blz_io_future *f, blz_buf_writer *bw, blz_context *cx)
{
    if (!(f->flags_ & F_INNER_FLUSH)) {
        int err = 0;
        if (drain(f, bw, cx, &err) == BLZ_PENDING) {
            return BLZ_PENDING;
        }
        if (err) {
            f->base.result = err;
            return BLZ_READY;
        }
        if (f->op_ == BW_SHUTDOWN) {
            blz_write_shutdown_fut(bw->inner_, &bw->out_);
        } else {
            blz_flush_fut(bw->inner_, &bw->out_);
        }
        f->flags_ |= F_INNER_FLUSH | F_FILLING;
    }
    if (blz_future_poll(&bw->out_.base, cx) == BLZ_PENDING) {
        return BLZ_PENDING;
    }
    f->flags_ = 0;
    f->base.result = bw->out_.base.result;
    return BLZ_READY;
}

static blz_poll
bw_poll(blz_future *base, blz_context *cx)
{
    blz_io_future *f = (blz_io_future *) base;
    blz_buf_writer *bw = f->obj_;
    int err = 0;
    if (f->op_ == BW_FLUSH || f->op_ == BW_SHUTDOWN) {
        return bw_poll_end(f, bw, cx);
    }
    /* BW_WRITE */
    if (!(f->flags_ & F_DIRECT)) {
        if (bw->len_ + f->len_ > bw->cap_ && bw->len_ > 0) {
            if (drain(f, bw, cx, &err) == BLZ_PENDING) {
                return BLZ_PENDING;
            }
            if (err) {
                f->base.result = err;
                return BLZ_READY;
            }
        }
        if (bw->len_ > 0 || f->len_ < bw->cap_) {
            memcpy(bw->buf_ + bw->len_, f->buf_, f->len_);
            bw->len_ += f->len_;
            f->base.result = (int) f->len_;
            return BLZ_READY;
        }
        /* Too big to buffer: straight through, nothing is buffered now. */
        bw->inner_.vt->write_fut(bw->inner_.self, f->buf_, f->len_, &bw->out_);
        f->flags_ = F_DIRECT | F_FILLING;
    }
    if (blz_future_poll(&bw->out_.base, cx) == BLZ_PENDING) {
        return BLZ_PENDING;
    }
    f->flags_ = 0;
    /* Checked as drain checks its writes: the caller steps through its data
     * by this count, so one above what was asked, or 0 (a write returns a
     * count > 0 or -errno), is the inner writer's fault, not a count. */
    int res = blz__stream_count(bw->out_.base.result, f->len_);
    f->base.result = res == 0 ? -EIO : res;
    return BLZ_READY;
}

static void
bw_drop(blz_future *base)
{
    blz_io_future *f = (blz_io_future *) base;
    if (f->flags_ & F_FILLING) {
        blz_buf_writer *bw = f->obj_;
        blz_future_drop(&bw->out_.base);
        f->flags_ = 0;
    }
}

static const blz_future_vtable bw_vt = {bw_poll, bw_drop};

static void
bw_fut(blz_buf_writer *bw, int op, const void *buf, size_t n, blz_io_future *f)
{
    if (!bw || !bw->buf_ || (!buf && n)) {
        blz__io_future_ready(f, -EINVAL);
        return;
    }
    if (op == BW_WRITE && n == 0) {
        blz__io_future_ready(f, 0);
        return;
    }
    memset(f, 0, sizeof *f);
    blz_future_init(&f->base, &bw_vt);
    f->obj_ = bw;
    f->buf_ = (void *) buf;
    f->len_ = n > 0x7fffffff ? 0x7fffffff : n;
    f->op_ = op;
}

static void
bw_write_fut(void *self, const void *buf, size_t n, blz_io_future *f)
{
    bw_fut(self, BW_WRITE, buf, n, f);
}

static void
bw_flush_fut(void *self, blz_io_future *f)
{
    bw_fut(self, BW_FLUSH, NULL, 0, f);
}

/* What it buffers goes out first, then the inner writer ends. */
static void
bw_shutdown_fut(void *self, blz_io_future *f)
{
    bw_fut(self, BW_SHUTDOWN, NULL, 0, f);
}

static const blz_writer_vtable bw_writer_vt = {bw_write_fut, bw_flush_fut, bw_shutdown_fut};

blz_writer
blz_buf_writer_as_writer(blz_buf_writer *bw)
{
    blz_writer w = {bw ? &bw_writer_vt : NULL, bw};
    return w;
}

ssize_t
blz_buf_writer_write(blz_buf_writer *bw, const void *buf, size_t n)
{
    blz_io_future f;
    bw_fut(bw, BW_WRITE, buf, n, &f);
    return blz_await(&f.base);
}

int
blz_buf_writer_write_all(blz_buf_writer *bw, const void *buf, size_t n)
{
    return blz_write_all(blz_buf_writer_as_writer(bw), buf, n);
}

int
blz_buf_writer_flush(blz_buf_writer *bw)
{
    blz_io_future f;
    bw_fut(bw, BW_FLUSH, NULL, 0, &f);
    return blz_await(&f.base);
}
