/*
 * How a blz__fs_call runs as a completion op of the I/O driver (io_uring):
 * which calls can, the op's arguments, and the result folded back. op.c
 * decides where a call runs; this file only translates, so that the system
 * call and the ring op of one operation take the same arguments from the
 * same blz__fs_call and leave the same results in it.
 *
 * Invariants:
 * - The op points into the call (path) and into a caller-owned statx buffer:
 *   both must outlive the op's completion (op.c keeps them in the fs op).
 * - Flags and masks are those the pool path uses (sys.c): an OPEN's flags
 *   already carry O_CLOEXEC; metadata asks statx for BLZ__FS_STATX_MASK.
 * - Calls of many steps (READ_FILE, COPY, ...), and calls io_uring has no
 *   op for (SEEK, SET_LEN, GETDENTS, paths), stay on the blocking pool.
 */
#include "fs/fs_int.h"
#include "fs/unix/unix_int.h"
#include "io/backend.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>

int
blz__fs_ring_kind(const blz__fs_call *c)
{
    switch (c->kind) {
    case BLZ__FS_READ:
    case BLZ__FS_PREAD:
        return BLZ__OP_READ_AT;
    case BLZ__FS_WRITE:
    case BLZ__FS_PWRITE:
        return BLZ__OP_WRITE_AT;
    case BLZ__FS_FSYNC:
    case BLZ__FS_FDATASYNC:
        return BLZ__OP_FSYNC;
    case BLZ__FS_OPEN:
        return BLZ__OP_OPENAT;
    case BLZ__FS_CLOSE:
        return BLZ__OP_CLOSE;
#if defined(STATX_BASIC_STATS)
    case BLZ__FS_FSTAT:
    case BLZ__FS_STAT:
    case BLZ__FS_LSTAT:
        return BLZ__OP_STATX;
#endif
    default:
        return -1;
    }
}

void
blz__fs_ring_prep(const blz__fs_call *c, blz__io_op *io, void *statx_buf)
{
    io->kind = blz__fs_ring_kind(c);
    io->fd = c->fd;
    switch (c->kind) {
    case BLZ__FS_READ:
    case BLZ__FS_WRITE:
    case BLZ__FS_PREAD:
    case BLZ__FS_PWRITE:
        io->buf = c->buf;
        io->len = (uint32_t) c->len; /* <= BLZ_FS_MAX_CHUNK */
        /* UINT64_MAX (-1): use and advance the file position, as read(2)
         * does (IORING_FEAT_RW_CUR_POS, 5.6; the backend requires 5.11). */
        io->off = (c->kind == BLZ__FS_PREAD || c->kind == BLZ__FS_PWRITE) ? c->off : UINT64_MAX;
        break;
    case BLZ__FS_FDATASYNC:
        io->flags = BLZ__FSYNC_DATASYNC;
        break;
    case BLZ__FS_OPEN:
        io->fd = AT_FDCWD;
        io->path = c->path;
        io->flags = c->flags;
        io->mode = c->mode;
        break;
#if defined(STATX_BASIC_STATS)
    case BLZ__FS_FSTAT:
        io->path = ""; /* a literal: valid for as long as the kernel may read it */
        io->flags = AT_EMPTY_PATH;
        io->mask = BLZ__FS_STATX_MASK;
        io->buf = statx_buf;
        break;
    case BLZ__FS_STAT:
    case BLZ__FS_LSTAT:
        io->fd = AT_FDCWD;
        io->path = c->path;
        io->flags = c->kind == BLZ__FS_LSTAT ? AT_SYMLINK_NOFOLLOW : 0;
        io->mask = BLZ__FS_STATX_MASK;
        io->buf = statx_buf;
        break;
#endif
    default:
        break; /* FSYNC, CLOSE: the descriptor is all */
    }
}

void
blz__fs_ring_result(blz__fs_call *c, int32_t res, const void *statx_buf)
{
    c->res = res;
#if defined(STATX_BASIC_STATS)
    if (res == 0 &&
        (c->kind == BLZ__FS_FSTAT || c->kind == BLZ__FS_STAT || c->kind == BLZ__FS_LSTAT)) {
        blz__fs_md_from_statx(statx_buf, &c->md);
    }
#else
    (void) statx_buf;
#endif
}
