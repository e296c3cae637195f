/*
 * Files as streams: the blz_reader / blz_writer adapters of blz_file, so that
 * BufReader, BufWriter, copy, read-exact and read-lines work on files.
 *
 * The stream interface speaks blz_io_future, so a file read or write is run
 * here in that struct, with the same machinery as blz_fs_future (op.c): the
 * fields are used as
 *   obj_   the blz_file
 *   buf_   the caller's buffer,  len_ its length
 *   aux_   the blz__fs_op in flight, or NULL
 *   op_    BLZ__FS_READ or BLZ__FS_WRITE
 *   flags_ IO_FINISHED once ready (base.result is final)
 * waiter_ and done_ are unused.
 *
 * Invariants: as for blz_fs_future — `aux_` is non-NULL exactly while an op
 * is in flight, and the drop abandons it (the op finishes in the background
 * with its own bounce buffer, never touching `buf_`). Files buffer nothing in
 * user space, so the writer has no flush.
 */
#include "core/coop.h"
#include "fs/fs_int.h"
#include "rt/current.h"

#include <string.h>

#define IO_FINISHED 0x1

static blz_poll
io_ready(blz_io_future *f, int64_t res)
{
    f->base.result = (int) res; /* <= BLZ_FS_MAX_CHUNK, or -errno */
    f->flags_ |= IO_FINISHED;
    return BLZ_READY;
}

static blz_poll
file_io_poll(blz_future *base, blz_context *cx)
{
    blz_io_future *f = (blz_io_future *) (void *) base;
    if (f->flags_ & IO_FINISHED) {
        return BLZ_READY;
    }
    blz__fs_op *op = f->aux_;
    if (!op) {
        blz_file *file = f->obj_;
        if (!file || (!f->buf_ && f->len_ > 0)) {
            return io_ready(f, -EINVAL);
        }
        if (!blz__coop_proceed(cx)) {
            return BLZ_PENDING;
        }
        blz_runtime *rt = blz__rt_current();
        size_t max = rt ? BLZ_FS_MAX_CHUNK : 0x7ffff000u;
        blz__fs_call c;
        memset(&c, 0, sizeof c);
        c.kind = f->op_;
        c.fd = file->fd;
        c.buf = f->buf_;
        c.len = f->len_ < max ? f->len_ : max;
        if (!rt) {
            /* Outside any runtime: the system call runs here. */
            if (!blz__file_acquire(file)) {
                return io_ready(f, -EBADF);
            }
            blz__fs_exec(&c);
            blz__file_release(file, false);
            return io_ready(f, c.res);
        }
        int rc = blz__fs_op_start(rt, &c, file, &op);
        if (rc < 0) {
            return io_ready(f, rc);
        }
        f->aux_ = op;
    }
    if (!blz__fs_op_ready(op, cx)) {
        return BLZ_PENDING;
    }
    f->aux_ = NULL;
    int64_t res = blz__fs_op_finish(op, f->op_ == BLZ__FS_READ ? f->buf_ : NULL)->res;
    blz__fs_op_free(op, false);
    return io_ready(f, res);
}

static void
file_io_drop(blz_future *base)
{
    blz_io_future *f = (blz_io_future *) (void *) base;
    if (f->aux_) {
        blz__fs_op_abandon(f->aux_);
        f->aux_ = NULL;
    }
    f->flags_ |= IO_FINISHED;
}

static const blz_future_vtable file_io_vt = {file_io_poll, file_io_drop};

static void
file_io_fut(blz_file *file, void *buf, size_t n, int kind, blz_io_future *f)
{
    memset(f, 0, sizeof *f);
    blz_future_init(&f->base, &file_io_vt);
    f->obj_ = file;
    f->buf_ = buf;
    f->len_ = n;
    f->op_ = kind;
}

static void
file_read_fut(void *self, void *buf, size_t n, blz_io_future *f)
{
    file_io_fut(self, buf, n, BLZ__FS_READ, f);
}

static void
file_write_fut(void *self, const void *buf, size_t n, blz_io_future *f)
{
    file_io_fut(self, (void *) buf, n, BLZ__FS_WRITE, f); /* never written through */
}

static const blz_reader_vtable file_reader_vt = {file_read_fut};
static const blz_writer_vtable file_writer_vt = {file_write_fut, NULL, NULL};

blz_reader
blz_file_reader(blz_file *file)
{
    blz_reader r = {file ? &file_reader_vt : NULL, file};
    return r;
}

blz_writer
blz_file_writer(blz_file *file)
{
    blz_writer w = {file ? &file_writer_vt : NULL, file};
    return w;
}
