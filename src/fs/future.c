/*
 * blz_fs_future: the one state machine behind every public fs call.
 *
 * A poll runs steps. Each step prepares a blz__fs_call from the future's
 * fields (step_prepare), runs it, and folds its result back into the future
 * (step_finish), which either ends the future or asks for another step
 * (write_all's next chunk, write_file's open / write / close, a directory
 * batch that was all "." and ".."). A call runs:
 *   - inside a runtime: as a blz__fs_op (op.c) on the ring or the blocking
 *     pool; the poll returns BLZ_PENDING until the op completes;
 *   - outside any runtime: inline, on the polling thread, straight into the
 *     caller's buffers, so the whole future finishes in one poll.
 *
 * Invariants:
 * - `op_` is non-NULL exactly while an op is in flight; only the poll and
 *   the drop touch it, on the thread that owns the future.
 * - `obj_` is the caller's blz_file / blz_dir, except for OPEN, DIR_OPEN and
 *   WRITE_FILE, where it is memory the future owns: a struct allocated
 *   before the open (so that a successful open cannot fail afterwards) and,
 *   for WRITE_FILE from stage 1, the open file itself. Drop releases it.
 * - `stage_` < 0 means finished: `base.result` holds the outcome and every
 *   resource has been released or handed to the caller.
 */
#include "core/alloc.h"
#include "core/atomic.h"
#include "core/coop.h"
#include "fs/fs_int.h"
#include "rt/current.h"

#include <string.h>

#define FINISHED (-1)

/* Linux transfers at most this much per read/write call anyway. */
#define INLINE_MAX_IO 0x7ffff000u

enum { STEP_READY, STEP_AGAIN };
enum { PREP_CALL, PREP_READY };

static size_t
clamp_len(size_t n, bool async)
{
    size_t max = async ? BLZ_FS_MAX_CHUNK : INLINE_MAX_IO;
    return n < max ? n : max;
}

static int
prep_ready(blz_fs_future *f, int result)
{
    f->base.result = result;
    return PREP_READY;
}

static void
prep_file_call(blz__fs_call *c, int kind, blz_file *file, blz_file **ref)
{
    c->kind = kind;
    c->fd = file->fd;
    *ref = file;
}

/* The page-cache fast path of pread and of preadv at an offset: no hop at
 * all when the data is cached, straight into the caller's memory (the call
 * never waits, so nothing can outlive the future). Returns PREP_READY with
 * the result, or PREP_CALL to take the slow path. */
static int
pread_nowait(blz_fs_future *f, blz_file *file)
{
    if (blz__load(&file->no_nowait, RELAXED) || f->len_ == 0) {
        return PREP_CALL;
    }
    bool vec = f->kind_ == BLZ__FF_READV;
    if (vec) {
        /* The vectors go to the kernel as they are: when they add up to more
         * than one chunk, the slow path (which bounds the transfer) reads. */
        const blz_iovec *iov = f->buf_;
        size_t total = 0;
        for (size_t i = 0; i < f->len_; i++) {
            total += iov[i].len; /* check_vectors: no overflow */
        }
        if (total > BLZ_FS_MAX_CHUNK) {
            return PREP_CALL;
        }
    }
    if (!blz__file_acquire(file)) {
        return prep_ready(f, -EBADF);
    }
    blz_iovec one = {f->buf_, clamp_len(f->len_, true)};
    int64_t r =
        blz__fs_read_nowait(file->fd, vec ? f->buf_ : &one, vec ? (int) f->len_ : 1, f->off_);
    blz__file_release(file, false);
    if (r >= 0) {
        return prep_ready(f, (int) r);
    }
    if (r == -EOPNOTSUPP || r == -EINVAL || r == -ENOSYS) {
        blz__store(&file->no_nowait, 1u, RELAXED); /* a hint: races are harmless */
    }
    return PREP_CALL;
}

static int
prepare_write_file(blz_fs_future *f, blz__fs_call *c, blz_file **ref, bool async)
{
    for (;;) {
        switch (f->stage_) {
        case 0:
            if (!f->obj_ && !(f->obj_ = blz__malloc(sizeof(blz_file)))) {
                return prep_ready(f, -ENOMEM);
            }
            c->kind = BLZ__FS_OPEN;
            c->path = f->path_;
            c->flags = f->flags_;
            c->mode = f->mode_;
            return PREP_CALL;
        case 1:
            if (f->done_ == f->len_) {
                f->stage_ = 2;
                continue;
            }
            prep_file_call(c, BLZ__FS_WRITE, f->obj_, ref);
            c->buf = (char *) f->buf_ + f->done_;
            c->len = clamp_len(f->len_ - (size_t) f->done_, async);
            return PREP_CALL;
        default: {
            blz_file *file = f->obj_;
            f->obj_ = NULL;
            int fd = -1;
            int saved = (int) (int64_t) f->off_;
            if (blz__file_close_begin(file, &fd) == 1) {
                c->kind = BLZ__FS_CLOSE;
                c->fd = fd;
                return PREP_CALL;
            }
            return prep_ready(f, saved);
        }
        }
    }
}

static int
prepare_dir_open(blz_fs_future *f, blz__fs_call *c)
{
    if (!f->obj_) {
        blz_dir *d = blz__malloc(sizeof *d);
        if (!d) {
            return prep_ready(f, -ENOMEM);
        }
        d->file = blz__malloc(sizeof(blz_file));
        if (!d->file) {
            blz__free(d);
            return prep_ready(f, -ENOMEM);
        }
        f->obj_ = d;
    }
    c->kind = BLZ__FS_OPEN;
    c->path = f->path_;
    c->flags = blz__fs_dir_flags();
    return PREP_CALL;
}

static int
prepare_close(blz_fs_future *f, blz__fs_call *c)
{
    blz_file *file = f->obj_;
    f->obj_ = NULL;
    int fd = -1;
    int r = blz__file_close_begin(file, &fd);
    if (r != 1) {
        return prep_ready(f, r); /* -EBADF, or 0: ops in flight close it */
    }
    c->kind = BLZ__FS_CLOSE;
    c->fd = fd;
    return PREP_CALL;
}

static const int path_kinds[] = {
    [BLZ__FF_READ_FILE] = BLZ__FS_READ_FILE, [BLZ__FF_STAT] = BLZ__FS_STAT,
    [BLZ__FF_LSTAT] = BLZ__FS_LSTAT,         [BLZ__FF_MKDIR] = BLZ__FS_MKDIR,
    [BLZ__FF_MKDIR_ALL] = BLZ__FS_MKDIR_ALL, [BLZ__FF_RMDIR] = BLZ__FS_RMDIR,
    [BLZ__FF_RMDIR_ALL] = BLZ__FS_RMDIR_ALL, [BLZ__FF_UNLINK] = BLZ__FS_UNLINK,
    [BLZ__FF_RENAME] = BLZ__FS_RENAME,       [BLZ__FF_COPY] = BLZ__FS_COPY,
    [BLZ__FF_LINK] = BLZ__FS_LINK,           [BLZ__FF_SYMLINK] = BLZ__FS_SYMLINK,
    [BLZ__FF_READLINK] = BLZ__FS_READLINK,   [BLZ__FF_REALPATH] = BLZ__FS_REALPATH,
    [BLZ__FF_CHMOD] = BLZ__FS_CHMOD,
};

static const int file_kinds[] = {
    [BLZ__FF_READ] = BLZ__FS_READ,       [BLZ__FF_PREAD] = BLZ__FS_PREAD,
    [BLZ__FF_WRITE] = BLZ__FS_WRITE,     [BLZ__FF_PWRITE] = BLZ__FS_PWRITE,
    [BLZ__FF_READV] = BLZ__FS_READV,     [BLZ__FF_WRITEV] = BLZ__FS_WRITEV,
    [BLZ__FF_WRITE_ALL] = BLZ__FS_WRITE, [BLZ__FF_SEEK] = BLZ__FS_SEEK,
    [BLZ__FF_FSYNC] = BLZ__FS_FSYNC,     [BLZ__FF_FDATASYNC] = BLZ__FS_FDATASYNC,
    [BLZ__FF_SET_LEN] = BLZ__FS_SET_LEN, [BLZ__FF_FSTAT] = BLZ__FS_FSTAT,
    [BLZ__FF_FCHMOD] = BLZ__FS_FCHMOD,
};

/* Fills `c` for the next step, or ends the future (PREP_READY). `*ref` is
 * the file the call needs a reference on. */
static int
step_prepare(blz_fs_future *f, blz__fs_call *c, blz_file **ref, bool async)
{
    switch (f->kind_) {
    case BLZ__FF_OPEN:
        if (!f->obj_ && !(f->obj_ = blz__malloc(sizeof(blz_file)))) {
            return prep_ready(f, -ENOMEM);
        }
        c->kind = BLZ__FS_OPEN;
        c->path = f->path_;
        c->flags = f->flags_;
        c->mode = f->mode_;
        return PREP_CALL;
    case BLZ__FF_PREAD:
        if (async && pread_nowait(f, f->obj_) == PREP_READY) {
            return PREP_READY;
        }
        BLZ_FALLTHROUGH;
    case BLZ__FF_READ:
    case BLZ__FF_WRITE:
    case BLZ__FF_PWRITE:
        prep_file_call(c, file_kinds[f->kind_], f->obj_, ref);
        c->buf = f->buf_;
        c->len = clamp_len(f->len_, async);
        c->off = f->off_;
        return PREP_CALL;
    case BLZ__FF_READV:
        if (async && f->off_ != UINT64_MAX && pread_nowait(f, f->obj_) == PREP_READY) {
            return PREP_READY;
        }
        BLZ_FALLTHROUGH;
    case BLZ__FF_WRITEV:
        /* The kernel (inline) or op.c (in a runtime) bounds the transfer. */
        prep_file_call(c, file_kinds[f->kind_], f->obj_, ref);
        c->buf = f->buf_;
        c->len = f->len_;
        c->off = f->off_;
        return PREP_CALL;
    case BLZ__FF_WRITE_ALL:
        if (f->done_ == f->len_) {
            return prep_ready(f, 0);
        }
        prep_file_call(c, BLZ__FS_WRITE, f->obj_, ref);
        c->buf = (char *) f->buf_ + f->done_;
        c->len = clamp_len(f->len_ - (size_t) f->done_, async);
        return PREP_CALL;
    case BLZ__FF_SEEK:
    case BLZ__FF_FSYNC:
    case BLZ__FF_FDATASYNC:
    case BLZ__FF_SET_LEN:
    case BLZ__FF_FCHMOD:
    case BLZ__FF_FSTAT:
        prep_file_call(c, file_kinds[f->kind_], f->obj_, ref);
        c->off = f->off_;
        c->flags = f->flags_;
        c->mode = f->mode_;
        return PREP_CALL;
    case BLZ__FF_DIR_CLOSE: {
        blz_dir *d = f->obj_;
        f->obj_ = d->file;
        f->kind_ = BLZ__FF_CLOSE;
        blz__free(d);
        return prepare_close(f, c);
    }
    case BLZ__FF_CLOSE:
        return prepare_close(f, c);
    case BLZ__FF_WRITE_FILE:
        return prepare_write_file(f, c, ref, async);
    case BLZ__FF_DIR_OPEN:
        return prepare_dir_open(f, c);
    case BLZ__FF_DIR_NEXT: {
        blz_dir *d = f->obj_;
        if (blz__fs_dirent_next(d->buf, &d->pos, d->end, f->out_)) {
            return prep_ready(f, 1);
        }
        if (d->eof) {
            return prep_ready(f, 0);
        }
        prep_file_call(c, BLZ__FS_GETDENTS, d->file, ref);
        c->buf = d->buf;
        c->len = sizeof d->buf;
        return PREP_CALL;
    }
    default:
        if (f->kind_ > 0 && (size_t) f->kind_ < sizeof path_kinds / sizeof path_kinds[0] &&
            path_kinds[f->kind_] != 0) {
            c->kind = path_kinds[f->kind_];
            c->path = f->path_;
            c->path2 = f->path2_;
            c->mode = f->mode_;
            return PREP_CALL;
        }
        return prep_ready(f, -EINVAL);
    }
}

static int
finish_write_file(blz_fs_future *f, blz__fs_call *c, bool *taken)
{
    switch (f->stage_) {
    case 0:
        if (c->res < 0) {
            blz__free(f->obj_);
            f->obj_ = NULL;
            f->base.result = (int) c->res;
            return STEP_READY;
        }
        blz__file_init(f->obj_, (int) c->res);
        *taken = true;
        f->stage_ = 1;
        return STEP_AGAIN;
    case 1:
        if (c->res <= 0) {
            /* Remember the error in off_ (unused here) and close the file. */
            f->off_ = (uint64_t) (c->res < 0 ? c->res : -EIO);
            f->stage_ = 2;
        } else {
            f->done_ += (uint64_t) c->res;
        }
        return STEP_AGAIN;
    default:
        f->base.result = f->off_ ? (int) (int64_t) f->off_ : (int) c->res;
        return STEP_READY;
    }
}

/* Folds a finished call into the future. `*taken` says whether the future
 * took the call's results (a descriptor, a buffer). */
static int
step_finish(blz_fs_future *f, blz__fs_call *c, bool *taken)
{
    int64_t res = c->res;
    f->base.result = res < 0 ? (int) res : 0;
    switch (f->kind_) {
    case BLZ__FF_OPEN:
        if (res < 0) {
            blz__free(f->obj_);
        } else {
            blz__file_init(f->obj_, (int) res);
            *(blz_file **) f->out_ = f->obj_;
            *taken = true;
        }
        f->obj_ = NULL;
        return STEP_READY;
    case BLZ__FF_DIR_OPEN: {
        blz_dir *d = f->obj_;
        f->obj_ = NULL;
        if (res < 0) {
            blz__free(d->file);
            blz__free(d);
        } else {
            blz__file_init(d->file, (int) res);
            d->pos = d->end = 0;
            d->eof = false;
            *(blz_dir **) f->out_ = d;
            *taken = true;
        }
        return STEP_READY;
    }
    case BLZ__FF_WRITE_ALL:
        if (res <= 0) {
            f->base.result = res < 0 ? (int) res : -EIO;
            return STEP_READY;
        }
        f->done_ += (uint64_t) res;
        return STEP_AGAIN;
    case BLZ__FF_WRITE_FILE:
        return finish_write_file(f, c, taken);
    case BLZ__FF_DIR_NEXT: {
        blz_dir *d = f->obj_;
        if (res <= 0) {
            d->eof = res == 0;
            return STEP_READY;
        }
        d->pos = 0;
        d->end = (size_t) res;
        return STEP_AGAIN;
    }
    case BLZ__FF_SEEK:
    case BLZ__FF_COPY:
        if (res >= 0 && f->out_) {
            *(uint64_t *) f->out_ = (uint64_t) res;
        }
        return STEP_READY;
    case BLZ__FF_FSTAT:
    case BLZ__FF_STAT:
    case BLZ__FF_LSTAT:
        if (res == 0) {
            *(blz_metadata *) f->out_ = c->md;
        }
        return STEP_READY;
    case BLZ__FF_READ_FILE:
        if (res == 0) {
            *(void **) f->out_ = c->out;
            if (f->out2_) {
                *(size_t *) f->out2_ = c->out_len;
            }
            *taken = true;
        }
        return STEP_READY;
    case BLZ__FF_READLINK:
    case BLZ__FF_REALPATH:
        if (res == 0) {
            *(char **) f->out_ = c->out;
            *taken = true;
        }
        return STEP_READY;
    case BLZ__FF_READ:
    case BLZ__FF_PREAD:
    case BLZ__FF_WRITE:
    case BLZ__FF_PWRITE:
    case BLZ__FF_READV:
    case BLZ__FF_WRITEV:
        /* A count <= BLZ_FS_MAX_CHUNK (in a runtime) or <= 0x7ffff000 (the
         * kernel's bound on one transfer), or -errno. */
        f->base.result = (int) res;
        return STEP_READY;
    default:
        return STEP_READY;
    }
}

/* Runs one prepared call on this thread (no runtime) and folds it in. */
static int
step_inline(blz_fs_future *f, blz__fs_call *c, blz_file *ref)
{
    bool held = ref && blz__file_acquire(ref);
    if (ref && !held) {
        c->res = -EBADF;
    } else {
        blz__fs_exec(c);
    }
    bool taken = false;
    int step = step_finish(f, c, &taken);
    if (!taken && c->res >= 0) {
        blz__fs_discard(c, false);
    }
    if (held) {
        blz__file_release(ref, false);
    }
    return step;
}

/* Starting an op failed (-ENOMEM, -ESHUTDOWN): finish the step with that error. */
static int
step_start_failed(blz_fs_future *f, blz__fs_call *c, int rc)
{
    if (c->kind == BLZ__FS_CLOSE) {
        /* The descriptor is already ours alone: it must be closed regardless. */
        blz__fs_close_background(c->fd);
        rc = 0;
    }
    c->res = rc;
    bool taken = false;
    return step_finish(f, c, &taken);
}

static void *
read_dst(blz_fs_future *f)
{
    if (f->kind_ == BLZ__FF_DIR_NEXT) {
        return ((blz_dir *) f->obj_)->buf;
    }
    return f->kind_ == BLZ__FF_READV ? NULL : f->buf_; /* the op fills a READV's vectors */
}

static blz_poll
fs_poll(blz_future *base, blz_context *cx)
{
    blz_fs_future *f = (blz_fs_future *) (void *) base;
    if (f->stage_ == FINISHED) {
        return BLZ_READY;
    }
    if (f->err_) {
        f->base.result = f->err_;
        f->stage_ = FINISHED;
        return BLZ_READY;
    }
    if (!f->op_ && !blz__coop_proceed(cx)) {
        return BLZ_PENDING;
    }
    for (;;) {
        int step;
        blz__fs_op *op = f->op_;
        if (op) {
            if (!blz__fs_op_ready(op, cx)) {
                return BLZ_PENDING;
            }
            f->op_ = NULL;
            blz__fs_call *c = blz__fs_op_finish(op, read_dst(f));
            bool taken = false;
            step = step_finish(f, c, &taken);
            blz__fs_op_free(op, taken);
        } else {
            blz__fs_call c;
            memset(&c, 0, sizeof c);
            c.fd = -1;
            blz_file *ref = NULL;
            blz_runtime *rt = blz__rt_current();
            if (step_prepare(f, &c, &ref, rt != NULL) == PREP_READY) {
                f->stage_ = FINISHED;
                return BLZ_READY;
            }
            if (!rt) {
                step = step_inline(f, &c, ref);
            } else {
                int rc = blz__fs_op_start(rt, &c, ref, &op);
                if (rc == 0) {
                    f->op_ = op;
                    continue;
                }
                step = step_start_failed(f, &c, rc);
            }
        }
        if (step == STEP_READY) {
            f->stage_ = FINISHED;
            return BLZ_READY;
        }
    }
}

static void
fs_drop(blz_future *base)
{
    blz_fs_future *f = (blz_fs_future *) (void *) base;
    if (f->op_) {
        blz__fs_op_abandon(f->op_);
        f->op_ = NULL;
    }
    if (f->stage_ != FINISHED && f->obj_) {
        switch (f->kind_) {
        case BLZ__FF_OPEN:
            blz__free(f->obj_); /* never initialised: an abandoned open closes its own fd */
            break;
        case BLZ__FF_DIR_OPEN: {
            blz_dir *d = f->obj_;
            blz__free(d->file);
            blz__free(d);
            break;
        }
        case BLZ__FF_WRITE_FILE:
            if (f->stage_ == 0) {
                blz__free(f->obj_);
            } else {
                blz__file_close_unobserved(f->obj_);
            }
            break;
        case BLZ__FF_DIR_CLOSE:
        case BLZ__FF_CLOSE: {
            /* Never polled (a task aborted before its first poll, a losing
             * select branch): a close is a promise, so it still happens. */
            blz_file *file = f->obj_;
            if (f->kind_ == BLZ__FF_DIR_CLOSE) {
                blz_dir *d = f->obj_;
                file = d->file;
                blz__free(d);
            }
            blz__file_close_unobserved(file);
            break;
        }
        default:
            break; /* the caller's file or directory */
        }
        f->obj_ = NULL;
    }
    f->stage_ = FINISHED;
}

static const blz_future_vtable fs_vtable = {fs_poll, fs_drop};

void
blz__fs_fut_init(blz_fs_future *f, int kind)
{
    memset(f, 0, sizeof *f);
    blz_future_init(&f->base, &fs_vtable);
    f->kind_ = kind;
}
