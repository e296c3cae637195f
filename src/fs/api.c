/*
 * The public fs functions: each future tier checks its arguments and fills a
 * blz_fs_future (future.c runs it); each await tier is blz_await on one.
 *
 * Invariants:
 * - A fill function never allocates, never makes a system call and never
 *   fails: an argument error is stored in `err_` and reported by the first
 *   poll, so every future, well-formed or not, is completed the same way.
 *   A NULL future has nowhere to hold an error: the fill function ignores
 *   it, as every module's does.
 * - Await tiers keep their future on the caller's stack: blz_await returns
 *   only once it is ready or dropped (aborting a fiber drops it).
 */
#include "core/alloc.h"
#include "fs/fs_int.h"

#include <stdint.h>
#include <string.h>

/* ---- helpers ----------------------------------------------------------------- */

static void
fail(blz_fs_future *f, int err)
{
    if (!f->err_) {
        f->err_ = err;
    }
}

static void
file_fut(blz_fs_future *f, int kind, blz_file *file)
{
    blz__fs_fut_init(f, kind);
    f->obj_ = file;
    if (!file) {
        fail(f, -EINVAL);
    }
}

static void
data_fut(blz_fs_future *f, int kind, blz_file *file, const void *buf, size_t n, uint64_t off)
{
    file_fut(f, kind, file);
    f->buf_ = (void *) buf; /* written only by read kinds */
    f->len_ = n;
    f->off_ = off;
    if (!buf && n > 0) {
        fail(f, -EINVAL);
    }
    if (off > (uint64_t) INT64_MAX) {
        fail(f, -EINVAL);
    }
}

static void
path_fut(blz_fs_future *f, int kind, const char *p1, const char *p2, bool two)
{
    blz__fs_fut_init(f, kind);
    f->path_ = p1;
    f->path2_ = p2;
    if (!p1 || (two && !p2)) {
        fail(f, -EINVAL);
    }
}

static int
await_fs(blz_fs_future *f)
{
    return blz_await(&f->base);
}

/* ---- files -------------------------------------------------------------------- */

void
blz_file_open_fut(const char *path, const blz_open_options *opts, blz_file **out, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    static const blz_open_options read_only = {.read = true};
    path_fut(f, BLZ__FF_OPEN, path, NULL, false);
    f->out_ = out;
    if (!out) {
        fail(f, -EINVAL);
    }
    int flags = 0;
    uint32_t mode = 0;
    int rc = blz__fs_open_flags(opts ? opts : &read_only, &flags, &mode);
    if (rc < 0) {
        fail(f, rc);
    }
    f->flags_ = flags;
    f->mode_ = mode;
}

int
blz_file_open(const char *path, const blz_open_options *opts, blz_file **out)
{
    blz_fs_future f;
    blz_file_open_fut(path, opts, out, &f);
    return await_fs(&f);
}

void
blz_file_create_fut(const char *path, blz_file **out, blz_fs_future *f)
{
    static const blz_open_options create = {.write = true, .create = true, .truncate = true};
    blz_file_open_fut(path, &create, out, f);
}

int
blz_file_create(const char *path, blz_file **out)
{
    blz_fs_future f;
    blz_file_create_fut(path, out, &f);
    return await_fs(&f);
}

void
blz_file_read_fut(blz_file *file, void *buf, size_t n, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    data_fut(f, BLZ__FF_READ, file, buf, n, 0);
}

ssize_t
blz_file_read(blz_file *file, void *buf, size_t n)
{
    blz_fs_future f;
    blz_file_read_fut(file, buf, n, &f);
    return await_fs(&f);
}

/* -EINVAL unless `iov` holds 1..BLZ_IOV_MAX vectors, each with memory behind
 * a non-zero length, adding up to at most PTRDIFF_MAX bytes (SSIZE_MAX on
 * Linux: what readv(2) accepts; the transfer itself is bounded as for the
 * plain calls). */
static int
check_vectors(const blz_iovec *iov, int cnt)
{
    if (!iov || cnt < 1 || cnt > BLZ_IOV_MAX) {
        return -EINVAL;
    }
    size_t total = 0;
    for (int i = 0; i < cnt; i++) {
        if ((!iov[i].base && iov[i].len) || iov[i].len > (size_t) PTRDIFF_MAX - total) {
            return -EINVAL;
        }
        total += iov[i].len;
    }
    return 0;
}

static ssize_t
try_readv_at(blz_file *file, const blz_iovec *iov, int cnt, uint64_t off)
{
    int rc = check_vectors(iov, cnt);
    if (!file || rc < 0) {
        return -EINVAL;
    }
    if (!blz__file_acquire(file)) {
        return -EBADF;
    }
    int64_t r = blz__fs_read_nowait(file->fd, iov, cnt, off);
    blz__file_release(file, false);
    return (ssize_t) r;
}

/* The one-buffer try tier: one vector (so NULL with a length is -EINVAL
 * there too), clamped to BLZ_FS_MAX_CHUNK. */
static ssize_t
try_read_at(blz_file *file, void *buf, size_t n, uint64_t off)
{
    blz_iovec one = {buf, n < BLZ_FS_MAX_CHUNK ? n : BLZ_FS_MAX_CHUNK};
    return try_readv_at(file, &one, 1, off);
}

ssize_t
blz_file_try_read(blz_file *file, void *buf, size_t n)
{
    return try_read_at(file, buf, n, UINT64_MAX);
}

void
blz_file_pread_fut(blz_file *file, void *buf, size_t n, uint64_t offset, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    data_fut(f, BLZ__FF_PREAD, file, buf, n, offset);
}

ssize_t
blz_file_pread(blz_file *file, void *buf, size_t n, uint64_t offset)
{
    blz_fs_future f;
    blz_file_pread_fut(file, buf, n, offset, &f);
    return await_fs(&f);
}

ssize_t
blz_file_try_pread(blz_file *file, void *buf, size_t n, uint64_t offset)
{
    if (offset > (uint64_t) INT64_MAX) {
        return -EINVAL;
    }
    return try_read_at(file, buf, n, offset);
}

void
blz_file_write_fut(blz_file *file, const void *buf, size_t n, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    data_fut(f, BLZ__FF_WRITE, file, buf, n, 0);
}

ssize_t
blz_file_write(blz_file *file, const void *buf, size_t n)
{
    blz_fs_future f;
    blz_file_write_fut(file, buf, n, &f);
    return await_fs(&f);
}

void
blz_file_pwrite_fut(blz_file *file, const void *buf, size_t n, uint64_t offset, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    data_fut(f, BLZ__FF_PWRITE, file, buf, n, offset);
}

ssize_t
blz_file_pwrite(blz_file *file, const void *buf, size_t n, uint64_t offset)
{
    blz_fs_future f;
    blz_file_pwrite_fut(file, buf, n, offset, &f);
    return await_fs(&f);
}

/* ---- vectored reads and writes ------------------------------------------------ */

/* `off` UINT64_MAX: at the current position (an offset the caller gave is
 * checked against INT64_MAX before it gets here). */
static void
vec_fut(blz_fs_future *f, int kind, blz_file *file, const blz_iovec *iov, int cnt, uint64_t off)
{
    file_fut(f, kind, file);
    f->buf_ = (void *) iov; /* the vectors themselves are only read */
    f->len_ = (size_t) (cnt > 0 ? cnt : 0);
    f->off_ = off;
    int rc = check_vectors(iov, cnt);
    if (rc < 0) {
        fail(f, rc);
    }
}

static void
vec_at_fut(blz_fs_future *f, int kind, blz_file *file, const blz_iovec *iov, int cnt,
           uint64_t offset)
{
    vec_fut(f, kind, file, iov, cnt, offset);
    if (offset > (uint64_t) INT64_MAX) {
        fail(f, -EINVAL);
    }
}

void
blz_file_readv_fut(blz_file *file, const blz_iovec *iov, int iovcnt, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    vec_fut(f, BLZ__FF_READV, file, iov, iovcnt, UINT64_MAX);
}

ssize_t
blz_file_readv(blz_file *file, const blz_iovec *iov, int iovcnt)
{
    blz_fs_future f;
    blz_file_readv_fut(file, iov, iovcnt, &f);
    return await_fs(&f);
}

void
blz_file_preadv_fut(blz_file *file, const blz_iovec *iov, int iovcnt, uint64_t offset,
                    blz_fs_future *f)
{
    if (!f) {
        return;
    }
    vec_at_fut(f, BLZ__FF_READV, file, iov, iovcnt, offset);
}

ssize_t
blz_file_preadv(blz_file *file, const blz_iovec *iov, int iovcnt, uint64_t offset)
{
    blz_fs_future f;
    blz_file_preadv_fut(file, iov, iovcnt, offset, &f);
    return await_fs(&f);
}

ssize_t
blz_file_try_readv(blz_file *file, const blz_iovec *iov, int iovcnt)
{
    return try_readv_at(file, iov, iovcnt, UINT64_MAX);
}

ssize_t
blz_file_try_preadv(blz_file *file, const blz_iovec *iov, int iovcnt, uint64_t offset)
{
    if (offset > (uint64_t) INT64_MAX) {
        return -EINVAL;
    }
    return try_readv_at(file, iov, iovcnt, offset);
}

void
blz_file_writev_fut(blz_file *file, const blz_iovec *iov, int iovcnt, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    vec_fut(f, BLZ__FF_WRITEV, file, iov, iovcnt, UINT64_MAX);
}

ssize_t
blz_file_writev(blz_file *file, const blz_iovec *iov, int iovcnt)
{
    blz_fs_future f;
    blz_file_writev_fut(file, iov, iovcnt, &f);
    return await_fs(&f);
}

void
blz_file_pwritev_fut(blz_file *file, const blz_iovec *iov, int iovcnt, uint64_t offset,
                     blz_fs_future *f)
{
    if (!f) {
        return;
    }
    vec_at_fut(f, BLZ__FF_WRITEV, file, iov, iovcnt, offset);
}

ssize_t
blz_file_pwritev(blz_file *file, const blz_iovec *iov, int iovcnt, uint64_t offset)
{
    blz_fs_future f;
    blz_file_pwritev_fut(file, iov, iovcnt, offset, &f);
    return await_fs(&f);
}

void
blz_file_write_all_fut(blz_file *file, const void *buf, size_t n, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    data_fut(f, BLZ__FF_WRITE_ALL, file, buf, n, 0);
}

int
blz_file_write_all(blz_file *file, const void *buf, size_t n)
{
    blz_fs_future f;
    blz_file_write_all_fut(file, buf, n, &f);
    return await_fs(&f);
}

void
blz_file_seek_fut(blz_file *file, int64_t offset, blz_whence whence, uint64_t *pos,
                  blz_fs_future *f)
{
    if (!f) {
        return;
    }
    file_fut(f, BLZ__FF_SEEK, file);
    f->off_ = (uint64_t) offset;
    f->out_ = pos;
    /* blz_whence matches SEEK_SET/CUR/END, which are 0/1/2 on every POSIX system. */
    if (whence != BLZ_SEEK_SET && whence != BLZ_SEEK_CUR && whence != BLZ_SEEK_END) {
        fail(f, -EINVAL);
    }
    f->flags_ = (int) whence;
}

int
blz_file_seek(blz_file *file, int64_t offset, blz_whence whence, uint64_t *pos)
{
    blz_fs_future f;
    blz_file_seek_fut(file, offset, whence, pos, &f);
    return await_fs(&f);
}

void
blz_file_sync_all_fut(blz_file *file, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    file_fut(f, BLZ__FF_FSYNC, file);
}

int
blz_file_sync_all(blz_file *file)
{
    blz_fs_future f;
    blz_file_sync_all_fut(file, &f);
    return await_fs(&f);
}

void
blz_file_sync_data_fut(blz_file *file, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    file_fut(f, BLZ__FF_FDATASYNC, file);
}

int
blz_file_sync_data(blz_file *file)
{
    blz_fs_future f;
    blz_file_sync_data_fut(file, &f);
    return await_fs(&f);
}

void
blz_file_set_len_fut(blz_file *file, uint64_t len, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    file_fut(f, BLZ__FF_SET_LEN, file);
    f->off_ = len;
    if (len > (uint64_t) INT64_MAX) {
        fail(f, -EINVAL);
    }
}

int
blz_file_set_len(blz_file *file, uint64_t len)
{
    blz_fs_future f;
    blz_file_set_len_fut(file, len, &f);
    return await_fs(&f);
}

void
blz_file_set_permissions_fut(blz_file *file, uint32_t mode, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    file_fut(f, BLZ__FF_FCHMOD, file);
    f->mode_ = mode & 07777u;
}

int
blz_file_set_permissions(blz_file *file, uint32_t mode)
{
    blz_fs_future f;
    blz_file_set_permissions_fut(file, mode, &f);
    return await_fs(&f);
}

void
blz_file_metadata_fut(blz_file *file, blz_metadata *md, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    file_fut(f, BLZ__FF_FSTAT, file);
    f->out_ = md;
    if (!md) {
        fail(f, -EINVAL);
    }
}

int
blz_file_metadata(blz_file *file, blz_metadata *md)
{
    blz_fs_future f;
    blz_file_metadata_fut(file, md, &f);
    return await_fs(&f);
}

void
blz_file_close_fut(blz_file *file, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    file_fut(f, BLZ__FF_CLOSE, file);
}

int
blz_file_close(blz_file *file)
{
    blz_fs_future f;
    blz_file_close_fut(file, &f);
    return await_fs(&f);
}

/* ---- whole files and paths ---------------------------------------------------- */

void
blz_fs_read_file_fut(const char *path, void **buf, size_t *len, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    path_fut(f, BLZ__FF_READ_FILE, path, NULL, false);
    f->out_ = buf;
    f->out2_ = len;
    if (!buf) {
        fail(f, -EINVAL);
    }
}

int
blz_fs_read_file(const char *path, void **buf, size_t *len)
{
    blz_fs_future f;
    blz_fs_read_file_fut(path, buf, len, &f);
    return await_fs(&f);
}

void
blz_fs_free_buf(void *buf)
{
    blz__free(buf);
}

void
blz_fs_write_file_fut(const char *path, const void *data, size_t len, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    path_fut(f, BLZ__FF_WRITE_FILE, path, NULL, false);
    f->buf_ = (void *) data; /* never written through */
    f->len_ = len;
    if (!data && len > 0) {
        fail(f, -EINVAL);
    }
    blz_open_options o = {.write = true, .create = true, .truncate = true};
    uint32_t mode = 0;
    (void) blz__fs_open_flags(&o, &f->flags_, &mode);
    f->mode_ = mode;
}

int
blz_fs_write_file(const char *path, const void *data, size_t len)
{
    blz_fs_future f;
    blz_fs_write_file_fut(path, data, len, &f);
    return await_fs(&f);
}

void
blz_fs_metadata_fut(const char *path, blz_metadata *md, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    path_fut(f, BLZ__FF_STAT, path, NULL, false);
    f->out_ = md;
    if (!md) {
        fail(f, -EINVAL);
    }
}

int
blz_fs_metadata(const char *path, blz_metadata *md)
{
    blz_fs_future f;
    blz_fs_metadata_fut(path, md, &f);
    return await_fs(&f);
}

void
blz_fs_symlink_metadata_fut(const char *path, blz_metadata *md, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    blz_fs_metadata_fut(path, md, f);
    f->kind_ = BLZ__FF_LSTAT;
}

int
blz_fs_symlink_metadata(const char *path, blz_metadata *md)
{
    blz_fs_future f;
    blz_fs_symlink_metadata_fut(path, md, &f);
    return await_fs(&f);
}

void
blz_fs_create_dir_fut(const char *path, uint32_t mode, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    path_fut(f, BLZ__FF_MKDIR, path, NULL, false);
    f->mode_ = mode & 07777u;
}

int
blz_fs_create_dir(const char *path, uint32_t mode)
{
    blz_fs_future f;
    blz_fs_create_dir_fut(path, mode, &f);
    return await_fs(&f);
}

void
blz_fs_create_dir_all_fut(const char *path, uint32_t mode, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    path_fut(f, BLZ__FF_MKDIR_ALL, path, NULL, false);
    f->mode_ = mode & 07777u;
}

int
blz_fs_create_dir_all(const char *path, uint32_t mode)
{
    blz_fs_future f;
    blz_fs_create_dir_all_fut(path, mode, &f);
    return await_fs(&f);
}

void
blz_fs_remove_dir_fut(const char *path, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    path_fut(f, BLZ__FF_RMDIR, path, NULL, false);
}

int
blz_fs_remove_dir(const char *path)
{
    blz_fs_future f;
    blz_fs_remove_dir_fut(path, &f);
    return await_fs(&f);
}

void
blz_fs_remove_dir_all_fut(const char *path, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    path_fut(f, BLZ__FF_RMDIR_ALL, path, NULL, false);
}

int
blz_fs_remove_dir_all(const char *path)
{
    blz_fs_future f;
    blz_fs_remove_dir_all_fut(path, &f);
    return await_fs(&f);
}

void
blz_fs_remove_file_fut(const char *path, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    path_fut(f, BLZ__FF_UNLINK, path, NULL, false);
}

int
blz_fs_remove_file(const char *path)
{
    blz_fs_future f;
    blz_fs_remove_file_fut(path, &f);
    return await_fs(&f);
}

void
blz_fs_rename_fut(const char *from, const char *to, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    path_fut(f, BLZ__FF_RENAME, from, to, true);
}

int
blz_fs_rename(const char *from, const char *to)
{
    blz_fs_future f;
    blz_fs_rename_fut(from, to, &f);
    return await_fs(&f);
}

void
blz_fs_copy_fut(const char *from, const char *to, uint64_t *copied, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    path_fut(f, BLZ__FF_COPY, from, to, true);
    f->out_ = copied;
}

int
blz_fs_copy(const char *from, const char *to, uint64_t *copied)
{
    blz_fs_future f;
    blz_fs_copy_fut(from, to, copied, &f);
    return await_fs(&f);
}

void
blz_fs_hard_link_fut(const char *src, const char *dst, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    path_fut(f, BLZ__FF_LINK, src, dst, true);
}

int
blz_fs_hard_link(const char *src, const char *dst)
{
    blz_fs_future f;
    blz_fs_hard_link_fut(src, dst, &f);
    return await_fs(&f);
}

void
blz_fs_symlink_fut(const char *target, const char *link, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    path_fut(f, BLZ__FF_SYMLINK, target, link, true);
}

int
blz_fs_symlink(const char *target, const char *link)
{
    blz_fs_future f;
    blz_fs_symlink_fut(target, link, &f);
    return await_fs(&f);
}

void
blz_fs_read_link_fut(const char *path, char **out, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    path_fut(f, BLZ__FF_READLINK, path, NULL, false);
    f->out_ = out;
    if (!out) {
        fail(f, -EINVAL);
    }
}

int
blz_fs_read_link(const char *path, char **out)
{
    blz_fs_future f;
    blz_fs_read_link_fut(path, out, &f);
    return await_fs(&f);
}

void
blz_fs_canonicalize_fut(const char *path, char **out, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    path_fut(f, BLZ__FF_REALPATH, path, NULL, false);
    f->out_ = out;
    if (!out) {
        fail(f, -EINVAL);
    }
}

int
blz_fs_canonicalize(const char *path, char **out)
{
    blz_fs_future f;
    blz_fs_canonicalize_fut(path, out, &f);
    return await_fs(&f);
}

void
blz_fs_set_permissions_fut(const char *path, uint32_t mode, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    path_fut(f, BLZ__FF_CHMOD, path, NULL, false);
    f->mode_ = mode & 07777u;
}

int
blz_fs_set_permissions(const char *path, uint32_t mode)
{
    blz_fs_future f;
    blz_fs_set_permissions_fut(path, mode, &f);
    return await_fs(&f);
}

/* ---- directories ------------------------------------------------------------------ */

void
blz_dir_open_fut(const char *path, blz_dir **out, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    path_fut(f, BLZ__FF_DIR_OPEN, path, NULL, false);
    f->out_ = out;
    if (!out) {
        fail(f, -EINVAL);
    }
}

int
blz_dir_open(const char *path, blz_dir **out)
{
    blz_fs_future f;
    blz_dir_open_fut(path, out, &f);
    return await_fs(&f);
}

int
blz_dir_try_next(blz_dir *dir, blz_dir_entry *entry)
{
    if (!dir || !entry) {
        return -EINVAL;
    }
    if (blz__fs_dirent_next(dir->buf, &dir->pos, dir->end, entry)) {
        return 1;
    }
    return dir->eof ? 0 : -EAGAIN;
}

void
blz_dir_next_fut(blz_dir *dir, blz_dir_entry *entry, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    blz__fs_fut_init(f, BLZ__FF_DIR_NEXT);
    f->obj_ = dir;
    f->out_ = entry;
    if (!dir || !entry) {
        fail(f, -EINVAL);
    }
}

int
blz_dir_next(blz_dir *dir, blz_dir_entry *entry)
{
    blz_fs_future f;
    blz_dir_next_fut(dir, entry, &f);
    return await_fs(&f);
}

void
blz_dir_close_fut(blz_dir *dir, blz_fs_future *f)
{
    if (!f) {
        return;
    }
    blz__fs_fut_init(f, BLZ__FF_DIR_CLOSE);
    f->obj_ = dir;
    if (!dir) {
        fail(f, -EINVAL);
    }
}

int
blz_dir_close(blz_dir *dir)
{
    blz_fs_future f;
    blz_dir_close_fut(dir, &f);
    return await_fs(&f);
}
