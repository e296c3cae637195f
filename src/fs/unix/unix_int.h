/*
 * Internal: what src/fs/unix/sys.c (single calls) and src/fs/unix/tree.c
 * (operations of many calls) share. Every function returns >= 0 or -errno.
 */
#ifndef BLZ_FS_UNIX_INT_H
#define BLZ_FS_UNIX_INT_H

#include "fs/fs_int.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

/* 0, or -errno for a call that returned < 0. */
static inline int
neg_errno(int r)
{
    return r < 0 ? -errno : 0;
}

/* True for "." and "..". */
static inline bool
is_dot_or_dotdot(const char *n)
{
    return n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'));
}

/* The statx fields every metadata call asks for (pool and ring alike). */
#define BLZ__FS_STATX_MASK (STATX_BASIC_STATS | STATX_BTIME)

/* Fills `md` from the struct statx at `buf` (only where <sys/stat.h> has statx). */
void blz__fs_md_from_statx(const void *buf, blz_metadata *md);

/* open(2) through the syscall table, restarted on EINTR. */
int blz__fs_open_retry(const char *path, int flags, uint32_t mode);

/* read(2) through the syscall table, restarted on EINTR. */
int64_t blz__fs_read_retry(int fd, void *buf, size_t n);

/* open + read everything + close: c->out (NUL-terminated) and c->out_len. */
int blz__fs_read_file(blz__fs_call *c);

/* mkdir -p: 0 when `path` is a directory at the end. */
int blz__fs_mkdir_all(const char *path, uint32_t mode);

/* rm -r without following links; a symlink `path` is itself unlinked. */
int blz__fs_rmdir_all(const char *path);

/* Copies contents and permission bits; the byte count. */
int64_t blz__fs_copy(const char *from, const char *to);

#endif
