/*
 * Internal: the pieces of the fs module and how they meet.
 *
 *   fs/future.c   the blz_fs_future state machine every public call goes
 *                 through (what to run, in which steps, where results go)
 *   fs/op.c       one operation in flight: where it runs (io_uring, the
 *                 blocking pool, or inline outside a runtime), its bounce
 *                 buffer, completion and cancellation
 *   fs/file.c     blz_file: the descriptor's reference count and close
 *   fs/api.c      the public fill and await functions
 *   fs/unix/sys.c the system calls themselves (with unix/tree.c and
 *                 unix/ring.c, the only files that include OS headers),
 *                 behind a replaceable table for fault tests
 *   fs/unix/ring.c the same calls as io_uring completion ops: arguments and
 *                 results, never the choice of where to run
 *
 * A blz__fs_call is the system-call half of an operation: plain arguments in,
 * plain results out, no knowledge of futures or threads. blz__fs_exec runs
 * one to completion on the calling thread, which must be allowed to block.
 */
#ifndef BLZ_FS_INT_H
#define BLZ_FS_INT_H

#include "blitzio/fs.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a blz__fs_call does. */
enum blz__fs_kind {
    BLZ__FS_NONE = 0,
    BLZ__FS_OPEN,      /* openat(AT_FDCWD, path, flags, mode) -> fd */
    BLZ__FS_READ,      /* read(fd, buf, len) -> count */
    BLZ__FS_PREAD,     /* pread(fd, buf, len, off) -> count */
    BLZ__FS_WRITE,     /* write(fd, buf, len) -> count */
    BLZ__FS_PWRITE,    /* pwrite(fd, buf, len, off) -> count */
    BLZ__FS_READV,     /* preadv2(fd, iov = buf, cnt = len, off; UINT64_MAX: the position) */
    BLZ__FS_WRITEV,    /* pwritev2, as READV */
    BLZ__FS_SEEK,      /* lseek(fd, (int64_t) off, flags = whence) -> position */
    BLZ__FS_FSYNC,     /* fsync(fd) */
    BLZ__FS_FDATASYNC, /* fdatasync(fd) */
    BLZ__FS_SET_LEN,   /* ftruncate(fd, off) */
    BLZ__FS_FCHMOD,    /* fchmod(fd, mode) */
    BLZ__FS_FSTAT,     /* statx(fd) -> md */
    BLZ__FS_CLOSE,     /* close(fd) */
    BLZ__FS_GETDENTS,  /* getdents64(fd, buf, len) -> bytes of records */
    BLZ__FS_STAT,      /* statx(path), following links -> md */
    BLZ__FS_LSTAT,     /* statx(path, AT_SYMLINK_NOFOLLOW) -> md */
    BLZ__FS_READ_FILE, /* open + read all + close -> out, out_len */
    BLZ__FS_MKDIR,     /* mkdir(path, mode) */
    BLZ__FS_MKDIR_ALL, /* mkdir -p */
    BLZ__FS_RMDIR,     /* rmdir(path) */
    BLZ__FS_RMDIR_ALL, /* rm -r, never following links */
    BLZ__FS_UNLINK,    /* unlink(path) */
    BLZ__FS_RENAME,    /* rename(path, path2) */
    BLZ__FS_COPY,      /* copy path to path2 -> bytes */
    BLZ__FS_LINK,      /* link(path, path2) */
    BLZ__FS_SYMLINK,   /* symlink(path, path2) */
    BLZ__FS_READLINK,  /* readlink(path) -> out (NUL-terminated) */
    BLZ__FS_REALPATH,  /* realpath(path) -> out */
    BLZ__FS_CHMOD,     /* chmod(path, mode) */
    BLZ__FS_KIND_COUNT
};

/* Arguments and results of one system-call step. */
typedef struct blz__fs_call {
    int kind;          /* enum blz__fs_kind */
    int fd;            /* descriptor operated on, or -1 */
    int flags;         /* open(2) flags, or whence for SEEK */
    uint32_t mode;     /* permission bits for OPEN / MKDIR / CHMOD */
    const char *path;  /* first path */
    const char *path2; /* second path (RENAME, COPY, LINK, SYMLINK) */
    void *buf;         /* data buffer */
    size_t len;        /* its length */
    uint64_t off;      /* offset, new length, or seek offset (two's complement) */
    int64_t res;       /* result: >= 0 or -errno */
    blz_metadata md;   /* FSTAT / STAT / LSTAT result */
    void *out;         /* READ_FILE / READLINK / REALPATH result, blz__malloc'd */
    size_t out_len;    /* its length in bytes (without the NUL) */
} blz__fs_call;

/* Runs `c` on the calling thread (which may block) and sets c->res. */
void blz__fs_exec(blz__fs_call *c);

/* Releases what a finished call produced when nobody will take it: the
 * descriptor an OPEN returned (closed inline when `may_block`, else via
 * blz__fs_close_background), the buffer of READ_FILE and friends. */
void blz__fs_discard(blz__fs_call *c, bool may_block);

/* preadv2(fd, iov, cnt, off, RWF_NOWAIT): page cache only, never waits for
 * I/O. `off` == UINT64_MAX reads at the current position. */
int64_t blz__fs_read_nowait(int fd, const blz_iovec *iov, int cnt, uint64_t off);

/* 0 when `fd` is an open descriptor, else -EBADF. */
int blz__fs_fd_check(int fd);

/* False when pread(2) (pwrite(2) when `write`) of `fd` fails with -ESPIPE:
 * the file has no offsets (a pipe, a socket, an eventfd). Never waits. */
bool blz__fs_fd_positional(int fd, bool write);

/* close(2), with EINTR counted as success (Linux closes the descriptor anyway). */
int blz__fs_close_fd(int fd);

/* Decodes the next getdents64 record of buf[*pos, end) into `e`, skipping "."
 * and "..". Returns 1 and advances *pos, or 0 when the buffer is used up. */
int blz__fs_dirent_next(const char *buf, size_t *pos, size_t end, blz_dir_entry *e);

/* The open(2) flags (O_CLOEXEC included) and mode for `o`, or -EINVAL when
 * the options contradict each other (see blz_open_options). */
int blz__fs_open_flags(const blz_open_options *o, int *flags, uint32_t *mode);

/* The open(2) flags of a directory opened for listing. */
int blz__fs_dir_flags(void);

/*
 * The replaceable primitives (SQLite's aSyscall idea): tests swap an entry to
 * inject EINTR, short transfers or errors. Each returns >= 0 or -errno. Only
 * tests write the table, while no file operation runs.
 */
typedef struct blz__fs_sys_table {
    int (*open)(const char *path, int flags, uint32_t mode);
    int64_t (*read)(int fd, void *buf, size_t n);
    int64_t (*pread)(int fd, void *buf, size_t n, uint64_t off);
    int64_t (*write)(int fd, const void *buf, size_t n);
    int64_t (*pwrite)(int fd, const void *buf, size_t n, uint64_t off);
    int (*close)(int fd);
    int (*fsync)(int fd, bool data_only);
} blz__fs_sys_table;

extern blz__fs_sys_table blz__fs_sys;

/* Restores the real system calls in blz__fs_sys. The ring path (io_uring)
 * does not go through this table. */
void blz__fs_sys_reset(void);

/* ---- the ring (unix/ring.c) --------------------------------------------------- */

struct blz__io_op;

/* Bytes of the buffer a metadata call needs on the ring (a struct statx). */
#define BLZ__FS_STATX_SIZE 256

/* The completion-op kind (enum blz__op_kind) that runs `c` on the I/O
 * driver, or -1 for a call that runs only as system calls (blocking pool). */
int blz__fs_ring_kind(const blz__fs_call *c);

/* Fills `io` (zeroed by the caller, `done` left to it) to run `c`, whose
 * ring kind is not -1. `statx_buf` (BLZ__FS_STATX_SIZE bytes) receives the
 * metadata of FSTAT / STAT / LSTAT. `c`'s path and `statx_buf` must stay
 * valid until the op completes. */
void blz__fs_ring_prep(const blz__fs_call *c, struct blz__io_op *io, void *statx_buf);

/* Folds the ring's result `res` into `c`: c->res, and c->md from statx_buf. */
void blz__fs_ring_result(blz__fs_call *c, int32_t res, const void *statx_buf);

/* ---- files (file.c) --------------------------------------------------------- */

struct blz_file {
    /* Reference count in units of 2, plus FILE_CLOSED (bit 0). The owner's
     * reference is dropped by close; each operation in flight holds one.
     * The descriptor is closed when the count reaches zero. */
    _Atomic uint32_t word;
    /* Set once preadv2(RWF_NOWAIT) said it cannot work on this file. */
    _Atomic uint32_t no_nowait;
    /* What blz__file_positional found out so far (bits of file.c). */
    _Atomic uint32_t positional;
    int fd; /* fixed from open to close */
};

struct blz_dir {
    blz_file *file;              /* the directory's descriptor, owned */
    size_t pos;                  /* next record in buf */
    size_t end;                  /* bytes of records in buf */
    bool eof;                    /* getdents64 returned 0 */
    _Alignas(8) char buf[32768]; /* getdents64 records (8-aligned, as the kernel writes them) */
};

/* Initialises a file struct (allocated by the caller) around `fd`. */
void blz__file_init(blz_file *f, int fd);

/* Takes a reference for an operation: false once the file is closed. */
bool blz__file_acquire(blz_file *f);

/* Whether the file takes reads (writes when `write`) at an offset
 * (blz__fs_fd_positional), asked once and remembered. The caller holds a
 * reference. */
bool blz__file_positional(blz_file *f, bool write);

/* Drops a reference; the last one frees the struct and closes the
 * descriptor: inline when `may_block` (a blocking-pool thread), else through
 * blz__fs_close_background. */
void blz__file_release(blz_file *f, bool may_block);

/* Marks the file closed and drops the owner's reference. Returns -EBADF for a
 * second close, 1 when the caller now holds the last reference and must close
 * `*fd` itself (the struct is freed), 0 when operations in flight will. */
int blz__file_close_begin(blz_file *f, int *fd);

/* Closes the owner's handle of `f` with nobody waiting (a dropped future):
 * blz__file_close_begin, then, if the descriptor is now the caller's,
 * blz__fs_close_background. */
void blz__file_close_unobserved(blz_file *f);

/* Closes `fd` where it cannot hold up a worker: as a CLOSE op nobody waits
 * for (on the ring or the blocking pool, counted by blz__fs_live_ops until
 * done) inside a runtime, or inline on any other thread, or when the op
 * cannot start. */
void blz__fs_close_background(int fd);

/* ---- operations (op.c) -------------------------------------------------------- */

typedef struct blz__fs_op blz__fs_op;

/*
 * Starts `c` as an operation on the current runtime `rt`: copies its paths,
 * stages write data in a bounce buffer, takes a reference on `file` (may be
 * NULL), and submits it to the ring (when the driver runs that kind) or the
 * blocking pool. For reads the data
 * lands in a bounce buffer that blz__fs_op_finish copies to `c->buf`.
 * Returns 0 and the op, or -errno (nothing started).
 */
int blz__fs_op_start(blz_runtime *rt, const blz__fs_call *c, blz_file *file, blz__fs_op **out);

/* True once the op finished; otherwise registers cx's waker. */
bool blz__fs_op_ready(blz__fs_op *op, blz_context *cx);

/* After ready: copies read data to `dst` (when not NULL; a READV fills the
 * vectors it started with instead), returns the call (results readable until
 * blz__fs_op_free). */
blz__fs_call *blz__fs_op_finish(blz__fs_op *op, void *dst);

/* Frees a finished op. `taken`: the caller took its results (fd, buffer). */
void blz__fs_op_free(blz__fs_op *op, bool taken);

/* Abandons a pending op: asks for cancellation (never for a CLOSE, which
 * always runs); the op frees itself (and discards its results) when the
 * system call completes. */
void blz__fs_op_abandon(blz__fs_op *op);

/* Operations alive (in flight or unfreed), for leak checks in tests. */
uint64_t blz__fs_live_ops(void);

/* Operations submitted to io_uring so far, all kinds (tests check which path
 * ran; blz__io_driver_ops has the count per op kind). */
uint64_t blz__fs_ring_ops(void);

/* ---- the future (future.c) ----------------------------------------------------- */

/* Operations a blz_fs_future performs (kind_). */
enum blz__fs_fut_kind {
    BLZ__FF_OPEN = 1,
    BLZ__FF_READ,
    BLZ__FF_PREAD,
    BLZ__FF_WRITE,
    BLZ__FF_PWRITE,
    BLZ__FF_READV,  /* buf_ = the vectors, len_ = their count, off_ = UINT64_MAX: the position */
    BLZ__FF_WRITEV, /* as READV */
    BLZ__FF_WRITE_ALL,
    BLZ__FF_SEEK,
    BLZ__FF_FSYNC,
    BLZ__FF_FDATASYNC,
    BLZ__FF_SET_LEN,
    BLZ__FF_FCHMOD,
    BLZ__FF_FSTAT,
    BLZ__FF_CLOSE,
    BLZ__FF_READ_FILE,
    BLZ__FF_WRITE_FILE,
    BLZ__FF_STAT,
    BLZ__FF_LSTAT,
    BLZ__FF_MKDIR,
    BLZ__FF_MKDIR_ALL,
    BLZ__FF_RMDIR,
    BLZ__FF_RMDIR_ALL,
    BLZ__FF_UNLINK,
    BLZ__FF_RENAME,
    BLZ__FF_COPY,
    BLZ__FF_LINK,
    BLZ__FF_SYMLINK,
    BLZ__FF_READLINK,
    BLZ__FF_REALPATH,
    BLZ__FF_CHMOD,
    BLZ__FF_DIR_OPEN,
    BLZ__FF_DIR_NEXT,
    BLZ__FF_DIR_CLOSE,
};

/* Fills `f` for operation `kind` with no arguments yet (callers set fields). */
void blz__fs_fut_init(blz_fs_future *f, int kind);

#endif
