/*
 * The fs system calls (POSIX, with Linux calls where they exist). This file
 * and unix/tree.c (the operations of many calls) are the only files of the
 * fs module that include OS headers.
 *
 * Invariants:
 * - Everything here runs on a thread that may block (a blocking-pool thread
 *   or a thread outside any runtime), except blz__fs_read_nowait,
 *   blz__fs_fd_positional and blz__fs_dirent_next, which never wait.
 * - Every function returns >= 0 or -errno; errno is read right after the
 *   call that set it and never escapes.
 * - Every descriptor opened here is O_CLOEXEC.
 * - Calls interrupted by a signal (EINTR) are restarted, except close.
 * - Buffers handed out (READ_FILE, READLINK, REALPATH) come from blz__malloc
 *   and are freed with blz__free (blz_fs_free_buf).
 * - blz__fs_sys is written only by tests, while no file operation runs.
 */
#include "core/alloc.h"
#include "fs/fs_int.h"
#include "fs/unix/unix_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h> /* rename */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h> /* makedev */
#include <sys/uio.h>
#include <unistd.h>

/* ---- the replaceable primitives ------------------------------------------- */

static int
sys_open(const char *path, int flags, uint32_t mode)
{
    int fd = openat(AT_FDCWD, path, flags, (mode_t) mode);
    return fd < 0 ? -errno : fd;
}

static int64_t
sys_read(int fd, void *buf, size_t n)
{
    ssize_t r = read(fd, buf, n);
    return r < 0 ? -errno : (int64_t) r;
}

static int64_t
sys_pread(int fd, void *buf, size_t n, uint64_t off)
{
    ssize_t r = pread(fd, buf, n, (off_t) off);
    return r < 0 ? -errno : (int64_t) r;
}

static int64_t
sys_write(int fd, const void *buf, size_t n)
{
    ssize_t r = write(fd, buf, n);
    return r < 0 ? -errno : (int64_t) r;
}

static int64_t
sys_pwrite(int fd, const void *buf, size_t n, uint64_t off)
{
    ssize_t r = pwrite(fd, buf, n, (off_t) off);
    return r < 0 ? -errno : (int64_t) r;
}

static int
sys_close(int fd)
{
    return close(fd) < 0 ? -errno : 0;
}

static int
sys_fsync(int fd, bool data_only)
{
    int r = data_only ? fdatasync(fd) : fsync(fd);
    return r < 0 ? -errno : 0;
}

blz__fs_sys_table blz__fs_sys = {sys_open,   sys_read,  sys_pread, sys_write,
                                 sys_pwrite, sys_close, sys_fsync};

void
blz__fs_sys_reset(void)
{
    blz__fs_sys = (blz__fs_sys_table){sys_open,   sys_read,  sys_pread, sys_write,
                                      sys_pwrite, sys_close, sys_fsync};
}

/* ---- small helpers ------------------------------------------------------------ */

int
blz__fs_open_retry(const char *path, int flags, uint32_t mode)
{
    int fd;
    do {
        fd = blz__fs_sys.open(path, flags, mode);
    } while (fd == -EINTR);
    return fd;
}

int
blz__fs_close_fd(int fd)
{
    int r = blz__fs_sys.close(fd);
    return r == -EINTR ? 0 : r;
}

int
blz__fs_open_flags(const blz_open_options *o, int *flags, uint32_t *mode)
{
    bool write = o->write || o->append;
    if (!o->read && !write) {
        return -EINVAL;
    }
    if ((o->truncate || o->create || o->create_new) && !write) {
        return -EINVAL;
    }
    if (o->truncate && o->append && !o->create_new) {
        return -EINVAL;
    }
    int fl = o->read && write ? O_RDWR : write ? O_WRONLY : O_RDONLY;
    if (o->append) {
        fl |= O_APPEND;
    }
    if (o->create_new) {
        fl |= O_CREAT | O_EXCL;
    } else {
        if (o->create) {
            fl |= O_CREAT;
        }
        if (o->truncate) {
            fl |= O_TRUNC;
        }
    }
    int custom = o->custom_flags & ~(O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_APPEND);
    *flags = fl | custom | O_CLOEXEC;
    *mode = o->mode ? (o->mode & 07777u) : 0666u;
    return 0;
}

int
blz__fs_dir_flags(void)
{
    return O_RDONLY | O_DIRECTORY | O_CLOEXEC;
}

static blz_file_kind
kind_from_mode(uint32_t m)
{
    switch (m & S_IFMT) {
    case S_IFREG:
        return BLZ_FILE_REGULAR;
    case S_IFDIR:
        return BLZ_FILE_DIR;
    case S_IFLNK:
        return BLZ_FILE_SYMLINK;
    case S_IFIFO:
        return BLZ_FILE_FIFO;
    case S_IFSOCK:
        return BLZ_FILE_SOCKET;
    case S_IFCHR:
        return BLZ_FILE_CHAR_DEV;
    case S_IFBLK:
        return BLZ_FILE_BLOCK_DEV;
    default:
        return BLZ_FILE_UNKNOWN;
    }
}

static blz_file_kind
kind_from_dtype(unsigned char t)
{
    switch (t) {
    case DT_REG:
        return BLZ_FILE_REGULAR;
    case DT_DIR:
        return BLZ_FILE_DIR;
    case DT_LNK:
        return BLZ_FILE_SYMLINK;
    case DT_FIFO:
        return BLZ_FILE_FIFO;
    case DT_SOCK:
        return BLZ_FILE_SOCKET;
    case DT_CHR:
        return BLZ_FILE_CHAR_DEV;
    case DT_BLK:
        return BLZ_FILE_BLOCK_DEV;
    default:
        return BLZ_FILE_UNKNOWN;
    }
}

/* ---- metadata ------------------------------------------------------------------- */

/* sec:nsec (0 <= nsec < 1e9) in nanoseconds, saturated: int64 nanoseconds
 * end in 2262 and begin in 1677, and file systems store times beyond both
 * (ext4 until 2446; anyone may set them), where the product overflowed. */
static int64_t
ts_ns(int64_t sec, int64_t nsec)
{
    const int64_t ns = 1000000000LL;
    if (sec > (INT64_MAX - nsec) / ns) {
        return INT64_MAX;
    }
    if (sec < INT64_MIN / ns) {
        return INT64_MIN;
    }
    return sec * ns + nsec;
}

#if defined(STATX_BASIC_STATS)
_Static_assert(sizeof(struct statx) <= BLZ__FS_STATX_SIZE, "BLZ__FS_STATX_SIZE holds a statx");

void
blz__fs_md_from_statx(const void *buf, blz_metadata *md)
{
    const struct statx *s = buf;
    memset(md, 0, sizeof *md);
    md->size = s->stx_size;
    md->kind = kind_from_mode(s->stx_mode);
    md->mode = s->stx_mode & 07777u;
    md->uid = s->stx_uid;
    md->gid = s->stx_gid;
    md->nlink = s->stx_nlink;
    md->ino = s->stx_ino;
    /* st_dev's encoding, as the fstatat fallback below reports it and as
     * other tools compare it (a bare major << 32 | minor is neither). */
    md->dev = (uint64_t) makedev(s->stx_dev_major, s->stx_dev_minor);
    md->blocks = s->stx_blocks;
    md->atime_ns = ts_ns(s->stx_atime.tv_sec, s->stx_atime.tv_nsec);
    md->mtime_ns = ts_ns(s->stx_mtime.tv_sec, s->stx_mtime.tv_nsec);
    md->ctime_ns = ts_ns(s->stx_ctime.tv_sec, s->stx_ctime.tv_nsec);
    if (s->stx_mask & STATX_BTIME) {
        md->btime_ns = ts_ns(s->stx_btime.tv_sec, s->stx_btime.tv_nsec);
        md->has_btime = true;
    }
}
#endif

static void
md_from_stat(const struct stat *s, blz_metadata *md)
{
    memset(md, 0, sizeof *md);
    md->size = (uint64_t) s->st_size;
    md->kind = kind_from_mode(s->st_mode);
    md->mode = s->st_mode & 07777u;
    md->uid = s->st_uid;
    md->gid = s->st_gid;
    md->nlink = (uint64_t) s->st_nlink;
    md->ino = (uint64_t) s->st_ino;
    md->dev = (uint64_t) s->st_dev;
    md->blocks = (uint64_t) s->st_blocks;
    md->atime_ns = ts_ns(s->st_atim.tv_sec, s->st_atim.tv_nsec);
    md->mtime_ns = ts_ns(s->st_mtim.tv_sec, s->st_mtim.tv_nsec);
    md->ctime_ns = ts_ns(s->st_ctim.tv_sec, s->st_ctim.tv_nsec);
}

/* stat of (dirfd, path) with AT_* `flags`; statx where the kernel has it. */
static int
do_stat(int dirfd, const char *path, int flags, blz_metadata *md)
{
#if defined(STATX_BASIC_STATS)
    struct statx sx;
    if (statx(dirfd, path, flags, BLZ__FS_STATX_MASK, &sx) == 0) {
        blz__fs_md_from_statx(&sx, md);
        return 0;
    }
    if (errno != ENOSYS && errno != EPERM) { /* EPERM: some seccomp filters */
        return -errno;
    }
#endif
    struct stat st;
    if (fstatat(dirfd, path, &st, flags) < 0) {
        return -errno;
    }
    md_from_stat(&st, md);
    return 0;
}

/* ---- links and paths ----------------------------------------------------------------------------
 */

static int
do_readlink(blz__fs_call *c)
{
    size_t cap = 256;
    for (;;) {
        char *buf = blz__malloc(cap);
        if (!buf) {
            return -ENOMEM;
        }
        ssize_t n = readlink(c->path, buf, cap);
        if (n < 0) {
            int e = errno;
            blz__free(buf);
            return -e;
        }
        if ((size_t) n < cap) {
            buf[n] = '\0';
            c->out = buf;
            c->out_len = (size_t) n;
            return 0;
        }
        blz__free(buf);
        if (cap > (size_t) 1 << 20) {
            return -ENAMETOOLONG;
        }
        cap *= 2;
    }
}

static int
do_realpath(blz__fs_call *c)
{
    char *p = realpath(c->path, NULL);
    if (!p) {
        return -errno;
    }
    size_t n = strlen(p);
    char *out = blz__malloc(n + 1);
    if (!out) {
        free(p);
        return -ENOMEM;
    }
    memcpy(out, p, n + 1);
    free(p); /* realpath's buffer comes from libc malloc, not the hook */
    c->out = out;
    c->out_len = n;
    return 0;
}

/* ---- the entry points
 * ------------------------------------------------------------------------------ */

int
blz__fs_fd_check(int fd)
{
    return fd >= 0 && fcntl(fd, F_GETFD) >= 0 ? 0 : -EBADF;
}

bool
blz__fs_fd_positional(int fd, bool write)
{
    /* No vectors: the kernel says -ESPIPE exactly when pread(2) / pwrite(2)
     * would (before anything else), and otherwise returns without touching
     * the file: no I/O, no lock. lseek is not the same test (an eventfd
     * seeks, yet has no pread). */
    ssize_t r = write ? pwritev(fd, NULL, 0, 0) : preadv(fd, NULL, 0, 0);
    return r >= 0 || errno != ESPIPE;
}

int64_t
blz__fs_read_nowait(int fd, const blz_iovec *iov, int cnt, uint64_t off)
{
#if defined(RWF_NOWAIT)
    ssize_t r = preadv2(fd, (const struct iovec *) (const void *) iov, cnt,
                        off == UINT64_MAX ? (off_t) -1 : (off_t) off, RWF_NOWAIT);
    return r < 0 ? -errno : (int64_t) r;
#else
    (void) fd;
    (void) iov;
    (void) cnt;
    (void) off;
    return -EOPNOTSUPP;
#endif
}

/* READV / WRITEV: one preadv2 / pwritev2 straight on the caller's vectors
 * (only outside a runtime: inside one, op.c turns them into plain reads and
 * writes of its own buffer). Offset -1 means the current position. */
static int64_t
exec_vectored(const blz__fs_call *c)
{
    const struct iovec *iov = (const struct iovec *) c->buf;
    off_t off = c->off == UINT64_MAX ? (off_t) -1 : (off_t) c->off;
    ssize_t r;
    do {
        r = c->kind == BLZ__FS_READV ? preadv2(c->fd, iov, (int) c->len, off, 0)
                                     : pwritev2(c->fd, iov, (int) c->len, off, 0);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : (int64_t) r;
}

static int64_t
exec_data(blz__fs_call *c)
{
    int64_t r;
    do {
        switch (c->kind) {
        case BLZ__FS_READ:
            r = blz__fs_sys.read(c->fd, c->buf, c->len);
            break;
        case BLZ__FS_PREAD:
            r = blz__fs_sys.pread(c->fd, c->buf, c->len, c->off);
            break;
        case BLZ__FS_WRITE:
            r = blz__fs_sys.write(c->fd, c->buf, c->len);
            break;
        case BLZ__FS_READV:
        case BLZ__FS_WRITEV:
            return exec_vectored(c);
        default:
            r = blz__fs_sys.pwrite(c->fd, c->buf, c->len, c->off);
            break;
        }
    } while (r == -EINTR);
    return r;
}

static int64_t
exec_getdents(blz__fs_call *c)
{
    ssize_t r;
    do {
        r = getdents64(c->fd, c->buf, c->len);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : (int64_t) r;
}

static int64_t
exec_file(blz__fs_call *c)
{
    switch (c->kind) {
    case BLZ__FS_SEEK: {
        off_t r = lseek(c->fd, (off_t) (int64_t) c->off, c->flags);
        return r < 0 ? -errno : (int64_t) r;
    }
    case BLZ__FS_FSYNC:
    case BLZ__FS_FDATASYNC: {
        int r;
        do {
            r = blz__fs_sys.fsync(c->fd, c->kind == BLZ__FS_FDATASYNC);
        } while (r == -EINTR);
        return r;
    }
    case BLZ__FS_SET_LEN: {
        int r;
        do {
            r = neg_errno(ftruncate(c->fd, (off_t) c->off));
        } while (r == -EINTR);
        return r;
    }
    case BLZ__FS_FCHMOD:
        return neg_errno(fchmod(c->fd, (mode_t) (c->mode & 07777u)));
    case BLZ__FS_FSTAT:
        return do_stat(c->fd, "", AT_EMPTY_PATH, &c->md);
    case BLZ__FS_CLOSE:
        return blz__fs_close_fd(c->fd);
    case BLZ__FS_GETDENTS:
        return exec_getdents(c);
    default:
        return exec_data(c);
    }
}

void
blz__fs_exec(blz__fs_call *c)
{
    switch (c->kind) {
    case BLZ__FS_OPEN:
        c->res = blz__fs_open_retry(c->path, c->flags, c->mode);
        break;
    case BLZ__FS_STAT:
        c->res = do_stat(AT_FDCWD, c->path, 0, &c->md);
        break;
    case BLZ__FS_LSTAT:
        c->res = do_stat(AT_FDCWD, c->path, AT_SYMLINK_NOFOLLOW, &c->md);
        break;
    case BLZ__FS_READ_FILE:
        c->res = blz__fs_read_file(c);
        break;
    case BLZ__FS_MKDIR:
        c->res = neg_errno(mkdir(c->path, (mode_t) (c->mode ? c->mode : 0777u)));
        break;
    case BLZ__FS_MKDIR_ALL:
        c->res = blz__fs_mkdir_all(c->path, c->mode ? c->mode : 0777u);
        break;
    case BLZ__FS_RMDIR:
        c->res = neg_errno(rmdir(c->path));
        break;
    case BLZ__FS_RMDIR_ALL:
        c->res = blz__fs_rmdir_all(c->path);
        break;
    case BLZ__FS_UNLINK:
        c->res = neg_errno(unlink(c->path));
        break;
    case BLZ__FS_RENAME:
        c->res = neg_errno(rename(c->path, c->path2));
        break;
    case BLZ__FS_COPY:
        c->res = blz__fs_copy(c->path, c->path2);
        break;
    case BLZ__FS_LINK:
        c->res = neg_errno(linkat(AT_FDCWD, c->path, AT_FDCWD, c->path2, 0));
        break;
    case BLZ__FS_SYMLINK:
        c->res = neg_errno(symlink(c->path, c->path2));
        break;
    case BLZ__FS_READLINK:
        c->res = do_readlink(c);
        break;
    case BLZ__FS_REALPATH:
        c->res = do_realpath(c);
        break;
    case BLZ__FS_CHMOD:
        c->res = neg_errno(chmod(c->path, (mode_t) (c->mode & 07777u)));
        break;
    case BLZ__FS_NONE:
        c->res = -EINVAL;
        break;
    default:
        c->res = exec_file(c);
        break;
    }
}

void
blz__fs_discard(blz__fs_call *c, bool may_block)
{
    if (c->res < 0) {
        return;
    }
    switch (c->kind) {
    case BLZ__FS_OPEN:
        /* An abandoned open; on a worker (the dropping task's) the close
         * goes to the pool. */
        if (may_block) {
            (void) blz__fs_close_fd((int) c->res);
        } else {
            blz__fs_close_background((int) c->res);
        }
        break;
    case BLZ__FS_READ_FILE:
    case BLZ__FS_READLINK:
    case BLZ__FS_REALPATH:
        blz__free(c->out);
        c->out = NULL;
        break;
    default:
        break;
    }
}

int
blz__fs_dirent_next(const char *buf, size_t *pos, size_t end, blz_dir_entry *e)
{
    while (*pos < end) {
        const struct dirent64 *d = (const struct dirent64 *) (const void *) (buf + *pos);
        *pos += d->d_reclen;
        const char *n = d->d_name;
        if (is_dot_or_dotdot(n)) {
            continue;
        }
        size_t len = strnlen(n, sizeof e->name - 1);
        memcpy(e->name, n, len);
        e->name[len] = '\0';
        e->kind = kind_from_dtype(d->d_type);
        e->ino = (uint64_t) d->d_ino;
        return 1;
    }
    return 0;
}
