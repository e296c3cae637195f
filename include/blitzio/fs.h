/*
 * blitzio/fs.h — files, directories and path operations.
 *
 * Tiers. Every operation that may wait has an await spelling (blz_file_read)
 * and a future spelling (blz_file_read_fut) that fills a caller-owned
 * blz_fs_future. Reads from the page cache have a try spelling too
 * (blz_file_try_read: never waits, -EAGAIN when the data is not cached);
 * most file system calls have no non-blocking form, so they have no try tier.
 * The await tier suspends a fiber task, parks a thread outside any runtime,
 * and fails with -EDEADLK inside a stackless poll (use the future there).
 *
 * Where the work runs. Inside a runtime, on the io_uring backend, reads and
 * writes (at the current position or at an offset), open, sync_all and
 * sync_data, metadata (of a file or a path) and close are submitted to the
 * ring, each where the kernel has the op; everything else, and everything on
 * the epoll backend, runs on the runtime's blocking pool. A worker thread
 * never makes a blocking call. On a thread outside any runtime the system
 * call runs directly in that thread.
 *
 * Buffers and cancellation. Inside a runtime, data moves through a buffer
 * that the operation owns (at most BLZ_FS_MAX_CHUNK bytes per call), so a
 * future dropped while its system call is in flight never leaves the kernel
 * or a pool thread writing into caller memory: the call runs to completion in
 * the background and its result is discarded. A dropped read may have
 * advanced the file position; a dropped write may or may not have happened; a
 * dropped open closes the file it opened. Caller buffers and paths must stay
 * valid until the future is ready or dropped.
 *
 * Objects. blz_file and blz_dir are opaque, allocated by blitzio and usable
 * from any thread, inside or outside a runtime. Several tasks may use one file
 * at once: operations at an offset are independent; operations at the
 * current position interleave unpredictably, as with read(2) from threads.
 * Closing while other operations are in flight is safe: they finish, and the
 * descriptor is closed when the last of them lets go.
 *
 * Errors are -errno values: -ENOENT, -EEXIST, -ENOTDIR, -EISDIR, -EACCES,
 * -EBADF (a closed file, or one not opened for that direction), -EINVAL
 * (bad arguments), -ENOMEM, -ECANCELED (dropped or aborted), -ESHUTDOWN (the
 * runtime is stopping).
 *
 * Every descriptor is O_CLOEXEC. Files are deliberately not O_NONBLOCK: the
 * flag means nothing for regular files, and io_uring would take it as "never
 * wait for the disk" and fail reads with -EAGAIN.
 */
#ifndef BLZ_FS_H
#define BLZ_FS_H

#include "blitzio/common.h"
#include "blitzio/future.h"
#include "blitzio/io.h"
#include "blitzio/stream.h" /* blz_reader, blz_writer; io.h brings ssize_t */

#ifdef __cplusplus
extern "C" {
#endif

/** The most bytes one read or write call moves inside a runtime (2 MiB). */
#define BLZ_FS_MAX_CHUNK ((size_t) 2 << 20)

/** An open file. Opaque; closed (and freed) by blz_file_close. */
typedef struct blz_file blz_file;

/** An open directory stream. Opaque; closed (and freed) by blz_dir_close. */
typedef struct blz_dir blz_dir;

/**
 * How blz_file_open opens a file, as Rust's OpenOptions. Zero-initialise and
 * set what you need: `blz_open_options o = {.write = true, .create = true};`.
 * - At least one of read, write, append.
 * - append implies write; every write then goes to the end of the file.
 * - truncate needs write and excludes append.
 * - create and create_new need write or append; create_new fails with -EEXIST
 *   when the path exists (dangling symlinks included) and ignores create and
 *   truncate.
 * Violations fail with -EINVAL before any system call.
 */
typedef struct blz_open_options {
    bool read;        /**< open for reading */
    bool write;       /**< open for writing */
    bool append;      /**< writes append (implies write) */
    bool truncate;    /**< truncate an existing file to length 0 */
    bool create;      /**< create the file when it does not exist */
    bool create_new;  /**< create the file; fail with -EEXIST when it exists */
    uint32_t mode;    /**< permission bits of a created file, before umask; 0 means 0666 */
    int custom_flags; /**< extra open(2) flags (O_NOFOLLOW, O_DIRECT, ...); the access
                           mode, O_CREAT, O_EXCL, O_TRUNC and O_APPEND bits are ignored */
} blz_open_options;

/** What a path names. */
typedef enum blz_file_kind {
    BLZ_FILE_UNKNOWN = 0,   /**< the file system did not say */
    BLZ_FILE_REGULAR = 1,   /**< a regular file */
    BLZ_FILE_DIR = 2,       /**< a directory */
    BLZ_FILE_SYMLINK = 3,   /**< a symbolic link (only from symlink_metadata and listings) */
    BLZ_FILE_FIFO = 4,      /**< a named pipe */
    BLZ_FILE_SOCKET = 5,    /**< a Unix socket */
    BLZ_FILE_CHAR_DEV = 6,  /**< a character device */
    BLZ_FILE_BLOCK_DEV = 7, /**< a block device */
} blz_file_kind;

/**
 * What stat(2) says about a file. Times are wall-clock nanoseconds since the
 * Unix epoch (not blz_instant, which is monotonic); a time past what they
 * hold (after 2262-04-11, before 1677-09-21) reads as INT64_MAX or INT64_MIN.
 */
typedef struct blz_metadata {
    uint64_t size;      /**< length in bytes (for a symlink: of its target path) */
    blz_file_kind kind; /**< regular file, directory, ... */
    uint32_t mode;      /**< permission bits, 07777 */
    uint32_t uid;       /**< owner */
    uint32_t gid;       /**< group */
    uint64_t nlink;     /**< hard links */
    uint64_t ino;       /**< inode number */
    uint64_t dev;       /**< device holding the file, encoded as stat(2)'s st_dev */
    uint64_t blocks;    /**< 512-byte blocks allocated */
    int64_t atime_ns;   /**< last access */
    int64_t mtime_ns;   /**< last modification of the data */
    int64_t ctime_ns;   /**< last status change */
    int64_t btime_ns;   /**< creation, when has_btime */
    bool has_btime;     /**< the file system reports a creation time */
} blz_metadata;

/** Origin of blz_file_seek. */
typedef enum blz_whence {
    BLZ_SEEK_SET = 0, /**< from the start of the file */
    BLZ_SEEK_CUR = 1, /**< from the current position */
    BLZ_SEEK_END = 2, /**< from the end of the file */
} blz_whence;

/** One directory entry, as blz_dir_next returns it ("." and ".." are skipped). */
typedef struct blz_dir_entry {
    char name[256];     /**< the entry's name, NUL-terminated (not a path) */
    blz_file_kind kind; /**< from the directory itself; BLZ_FILE_UNKNOWN when it does not say */
    uint64_t ino;       /**< inode number */
} blz_dir_entry;

/**
 * The future behind every file system operation. Caller-owned; fill it with a
 * *_fut function, then poll, await or spawn it. `base.result` is the outcome:
 * a byte count, 0, 1 (blz_dir_next_fut found an entry) or -errno. While
 * pending it refers to an operation in flight: it must not be moved, and an
 * abandoned one must be passed to blz_future_drop. All fields but `base` are
 * private. Every *_fut function ignores a NULL future.
 */
typedef struct blz_fs_future {
    blz_future base;    /**< the future; `base.result` holds the outcome */
    void *op_;          /**< the operation in flight (shared with the runtime), or NULL */
    void *obj_;         /**< the blz_file or blz_dir operated on, or a file this future owns */
    const char *path_;  /**< first path argument (caller's) */
    const char *path2_; /**< second path argument (caller's) */
    void *buf_;         /**< caller's data buffer */
    size_t len_;        /**< its length */
    uint64_t off_;      /**< file offset, new length, or seek offset */
    uint64_t done_;     /**< bytes moved so far (write_all, write_file) */
    void *out_;         /**< where the result goes (blz_file **, blz_metadata *, ...) */
    void *out2_;        /**< a second output (a length) */
    uint32_t mode_;     /**< permission bits */
    int flags_;         /**< open(2) flags or whence */
    int kind_;          /**< which operation */
    int stage_;         /**< step of a multi-step operation */
    int err_;           /**< an argument error found when the future was filled */
} blz_fs_future;

/* ======================================================================== */
/* Files                                                                      */
/* ======================================================================== */

/**
 * Opens `path` as `opts` says (NULL: read only). Returns 0 and the file in
 * `*out`, or -EINVAL (bad options, NULL), -ENOENT, -EEXIST (create_new),
 * -EISDIR (write access to a directory), -ENOTDIR, -EACCES, -ELOOP, -EMFILE,
 * -ENOMEM. The caller owns the file and closes it with blz_file_close.
 * Any thread; suspends a fiber.
 */
BLZ_API int blz_file_open(const char *path, const blz_open_options *opts, blz_file **out);
/** Future tier of blz_file_open. `*out` is set only when the result is 0. */
BLZ_API void blz_file_open_fut(const char *path, const blz_open_options *opts, blz_file **out,
                               blz_fs_future *f);

/** Opens `path` for writing, creating it (mode 0666 before umask) or truncating it. */
BLZ_API int blz_file_create(const char *path, blz_file **out);
/** Future tier of blz_file_create. `*out` is set only when the result is 0. */
BLZ_API void blz_file_create_fut(const char *path, blz_file **out, blz_fs_future *f);

/**
 * Reads up to `n` bytes at the current position and advances it. Returns the
 * count (0 at end of file; fewer than `n` is normal: end of file, or at most
 * BLZ_FS_MAX_CHUNK inside a runtime), or -EBADF (closed, or not open for
 * reading), -EISDIR, -EINVAL, -EIO. Any thread; suspends a fiber.
 */
BLZ_API ssize_t blz_file_read(blz_file *file, void *buf, size_t n);
/**
 * Try tier: reads only what is in the page cache (preadv2 RWF_NOWAIT) and
 * never waits. -EAGAIN when nothing is cached; -EOPNOTSUPP where the kernel or
 * file system cannot tell. Any thread.
 */
BLZ_API ssize_t blz_file_try_read(blz_file *file, void *buf, size_t n);
/** Future tier of blz_file_read. */
BLZ_API void blz_file_read_fut(blz_file *file, void *buf, size_t n, blz_fs_future *f);

/** Reads up to `n` bytes at `offset`; the position does not move. As blz_file_read, and
 *  -ESPIPE for a file without offsets (a pipe, a socket), on every backend. */
BLZ_API ssize_t blz_file_pread(blz_file *file, void *buf, size_t n, uint64_t offset);
/** Try tier of blz_file_pread (page cache only; -EAGAIN otherwise). */
BLZ_API ssize_t blz_file_try_pread(blz_file *file, void *buf, size_t n, uint64_t offset);
/** Future tier of blz_file_pread. */
BLZ_API void blz_file_pread_fut(blz_file *file, void *buf, size_t n, uint64_t offset,
                                blz_fs_future *f);

/**
 * Writes up to `n` bytes at the current position (at the end of the file when
 * opened with append) and advances it. Returns the count written (fewer than
 * `n` is possible: at most BLZ_FS_MAX_CHUNK inside a runtime, or a full
 * disk), or -EBADF (closed, or not open for writing), -ENOSPC, -EFBIG, -EIO.
 * Any thread; suspends a fiber.
 */
BLZ_API ssize_t blz_file_write(blz_file *file, const void *buf, size_t n);
/** Future tier of blz_file_write. */
BLZ_API void blz_file_write_fut(blz_file *file, const void *buf, size_t n, blz_fs_future *f);

/**
 * Writes `n` bytes at `offset`; the position does not move. On Linux a file
 * opened with append ignores `offset` and appends. As blz_file_write, and
 * -ESPIPE for a file without offsets (a pipe, a socket), on every backend.
 */
BLZ_API ssize_t blz_file_pwrite(blz_file *file, const void *buf, size_t n, uint64_t offset);
/** Future tier of blz_file_pwrite. */
BLZ_API void blz_file_pwrite_fut(blz_file *file, const void *buf, size_t n, uint64_t offset,
                                 blz_fs_future *f);

/**
 * Scatter read at the current position (readv): fills the `iovcnt` buffers of
 * `iov` in order and advances the position. Returns the count, as
 * blz_file_read (at most BLZ_FS_MAX_CHUNK in all inside a runtime), or
 * -EINVAL (no vectors, more than BLZ_IOV_MAX, a NULL buffer with a length,
 * lengths adding up past SSIZE_MAX). `iov` and its buffers must stay valid
 * until the call returns (the future: until it is ready or dropped). Any
 * thread; suspends a fiber.
 */
BLZ_API ssize_t blz_file_readv(blz_file *file, const blz_iovec *iov, int iovcnt);
/** Try tier of blz_file_readv (page cache only; -EAGAIN otherwise). */
BLZ_API ssize_t blz_file_try_readv(blz_file *file, const blz_iovec *iov, int iovcnt);
/** Future tier of blz_file_readv. */
BLZ_API void blz_file_readv_fut(blz_file *file, const blz_iovec *iov, int iovcnt, blz_fs_future *f);

/** Scatter read at `offset` (preadv); the position does not move. As blz_file_readv. */
BLZ_API ssize_t blz_file_preadv(blz_file *file, const blz_iovec *iov, int iovcnt, uint64_t offset);
/** Try tier of blz_file_preadv (page cache only; -EAGAIN otherwise). */
BLZ_API ssize_t blz_file_try_preadv(blz_file *file, const blz_iovec *iov, int iovcnt,
                                    uint64_t offset);
/** Future tier of blz_file_preadv. */
BLZ_API void blz_file_preadv_fut(blz_file *file, const blz_iovec *iov, int iovcnt, uint64_t offset,
                                 blz_fs_future *f);

/**
 * Gather write at the current position (writev): the buffers of `iov` in
 * order, as one write. Returns the count written, as blz_file_write (at most
 * BLZ_FS_MAX_CHUNK in all inside a runtime), or -EINVAL as blz_file_readv.
 * Any thread; suspends a fiber.
 */
BLZ_API ssize_t blz_file_writev(blz_file *file, const blz_iovec *iov, int iovcnt);
/** Future tier of blz_file_writev. */
BLZ_API void blz_file_writev_fut(blz_file *file, const blz_iovec *iov, int iovcnt,
                                 blz_fs_future *f);

/** Gather write at `offset` (pwritev); the position does not move. As blz_file_writev. */
BLZ_API ssize_t blz_file_pwritev(blz_file *file, const blz_iovec *iov, int iovcnt, uint64_t offset);
/** Future tier of blz_file_pwritev. */
BLZ_API void blz_file_pwritev_fut(blz_file *file, const blz_iovec *iov, int iovcnt, uint64_t offset,
                                  blz_fs_future *f);

/**
 * Writes all `n` bytes at the current position, in as many calls as it takes.
 * Returns 0, or the first error (-EIO when the kernel keeps writing nothing);
 * on error an unknown prefix may have been written. Any thread; suspends.
 */
BLZ_API int blz_file_write_all(blz_file *file, const void *buf, size_t n);
/** Future tier of blz_file_write_all. */
BLZ_API void blz_file_write_all_fut(blz_file *file, const void *buf, size_t n, blz_fs_future *f);

/**
 * Moves the position to `offset` from `whence` and stores the new position
 * in `*pos` (may be NULL). Returns 0, -EINVAL (negative result, bad whence),
 * -ESPIPE (a pipe), -EBADF. Any thread; suspends.
 */
BLZ_API int blz_file_seek(blz_file *file, int64_t offset, blz_whence whence, uint64_t *pos);
/** Future tier of blz_file_seek. */
BLZ_API void blz_file_seek_fut(blz_file *file, int64_t offset, blz_whence whence, uint64_t *pos,
                               blz_fs_future *f);

/** Flushes data and metadata to the device (fsync). 0, -EIO, -EBADF, -EINVAL. Suspends. */
BLZ_API int blz_file_sync_all(blz_file *file);
/** Future tier of blz_file_sync_all. */
BLZ_API void blz_file_sync_all_fut(blz_file *file, blz_fs_future *f);

/** Flushes data, and metadata only as needed to read it back (fdatasync). As sync_all. */
BLZ_API int blz_file_sync_data(blz_file *file);
/** Future tier of blz_file_sync_data. */
BLZ_API void blz_file_sync_data_fut(blz_file *file, blz_fs_future *f);

/**
 * Truncates or extends (with zeros) the file to `len` bytes; the position
 * does not move. 0, -EINVAL (not open for writing, or too large), -EFBIG,
 * -EBADF. Suspends.
 */
BLZ_API int blz_file_set_len(blz_file *file, uint64_t len);
/** Future tier of blz_file_set_len. */
BLZ_API void blz_file_set_len_fut(blz_file *file, uint64_t len, blz_fs_future *f);

/** Sets the permission bits of the open file (fchmod; `mode` & 07777), as
 * blz_fs_set_permissions does by path. 0, -EBADF, -EPERM. Suspends. */
BLZ_API int blz_file_set_permissions(blz_file *file, uint32_t mode);
/** Future tier of blz_file_set_permissions. */
BLZ_API void blz_file_set_permissions_fut(blz_file *file, uint32_t mode, blz_fs_future *f);

/** Fills `*md` for the open file (fstat). 0, -EBADF, -EINVAL. Suspends. */
BLZ_API int blz_file_metadata(blz_file *file, blz_metadata *md);
/** Future tier of blz_file_metadata. */
BLZ_API void blz_file_metadata_fut(blz_file *file, blz_metadata *md, blz_fs_future *f);

/**
 * Closes the file; `file` is invalid afterwards, whatever the result: its
 * memory is freed once no operation holds it, so the caller must not use it
 * again. When no other operation is in flight the descriptor is closed now
 * and close(2)'s result returned (-EIO: written data may be lost);
 * otherwise it is closed when the last of them finishes, and 0 is returned.
 * Only while such operations are still in flight (other tasks' reads or
 * writes on the same file) does a call made on it in the meantime, a second
 * close included, fail cleanly with -EBADF. Suspends.
 */
BLZ_API int blz_file_close(blz_file *file);
/**
 * Future tier of blz_file_close. The file is marked closed at the first poll;
 * a future dropped before its first poll still closes the file (in the
 * background), so an aborted task's close is never lost.
 */
BLZ_API void blz_file_close_fut(blz_file *file, blz_fs_future *f);

/**
 * Takes over `fd`, a descriptor opened elsewhere (inherited, stdin redirected
 * from a file, made by another library), as a blz_file (Tokio's
 * File::from_std). Its flags stay as they are: unlike the sockets'
 * `*_from_fd`, close-on-exec is not set, so a child still inherits what it
 * inherited before. On success the file owns `fd` (blz_file_close closes
 * it); on error it stays the caller's. 0, -EBADF (not an open descriptor),
 * -EINVAL (`out` NULL), -ENOMEM. Any thread.
 *
 * Its calls run as every file call does, on the ring or the blocking pool.
 * On the pool (the epoll backend), a read that waits for a terminal or a
 * pipe holds a pool thread until data comes, and blz_runtime_free waits for
 * that thread: for pipes and FIFOs, blz_pipe_from_fd (blitzio/process.h)
 * waits without holding a thread.
 */
BLZ_API int blz_file_from_fd(int fd, blz_file **out);

/** The file's descriptor, for interoperation (do not close it), -EBADF once closed (while
 *  operations still hold it; see blz_file_close), or -EINVAL (NULL). */
BLZ_API int blz_file_fd(const blz_file *file);

/**
 * The file as a stream reader (blitzio/stream.h): each read is a
 * blz_file_read at the current position, so blz_buf_reader, blz_copy,
 * blz_read_exact and line reading work on files. The reader does not own the
 * file; close it after every future on it finished or was dropped.
 */
BLZ_API blz_reader blz_file_reader(blz_file *file);

/** The file as a stream writer: each write is a blz_file_write; flush does nothing. */
BLZ_API blz_writer blz_file_writer(blz_file *file);

/* ======================================================================== */
/* Whole files and paths                                                      */
/* ======================================================================== */

/**
 * Reads the whole file at `path` into a new buffer: 0, `*buf` and `*len` (the
 * byte count; the buffer also holds a NUL after the data, for text), or
 * -ENOENT, -EISDIR, -EACCES, -ENOMEM, -EFBIG (larger than memory can hold).
 * The caller frees `*buf` with blz_fs_free_buf. Suspends.
 */
BLZ_API int blz_fs_read_file(const char *path, void **buf, size_t *len);
/** Future tier of blz_fs_read_file; `*buf` and `*len` are set only on success. */
BLZ_API void blz_fs_read_file_fut(const char *path, void **buf, size_t *len, blz_fs_future *f);

/** Frees a buffer returned by blz_fs_read_file, blz_fs_read_link or blz_fs_canonicalize. */
BLZ_API void blz_fs_free_buf(void *buf);

/**
 * Creates or truncates the file at `path` (mode 0666 before umask) and writes
 * `len` bytes of `data`. 0 or -errno (the file may then hold a prefix).
 * Suspends.
 */
BLZ_API int blz_fs_write_file(const char *path, const void *data, size_t len);
/** Future tier of blz_fs_write_file. */
BLZ_API void blz_fs_write_file_fut(const char *path, const void *data, size_t len,
                                   blz_fs_future *f);

/** Fills `*md` for `path`, following symbolic links (stat). 0, -ENOENT, -ENOTDIR, -ELOOP. */
BLZ_API int blz_fs_metadata(const char *path, blz_metadata *md);
/** Future tier of blz_fs_metadata. */
BLZ_API void blz_fs_metadata_fut(const char *path, blz_metadata *md, blz_fs_future *f);

/** As blz_fs_metadata, but describes a symbolic link itself (lstat). */
BLZ_API int blz_fs_symlink_metadata(const char *path, blz_metadata *md);
/** Future tier of blz_fs_symlink_metadata. */
BLZ_API void blz_fs_symlink_metadata_fut(const char *path, blz_metadata *md, blz_fs_future *f);

/**
 * Creates the directory `path` with `mode` (0 means 0777; before umask). 0,
 * -EEXIST, -ENOENT (a parent is missing), -ENOTDIR. Suspends.
 */
BLZ_API int blz_fs_create_dir(const char *path, uint32_t mode);
/** Future tier of blz_fs_create_dir. */
BLZ_API void blz_fs_create_dir_fut(const char *path, uint32_t mode, blz_fs_future *f);

/**
 * Creates `path` and every missing parent (as mkdir -p). 0 when the
 * directory exists at the end, even if created concurrently; -EEXIST when
 * something else than a directory is in the way; -ENOTDIR. Suspends.
 */
BLZ_API int blz_fs_create_dir_all(const char *path, uint32_t mode);
/** Future tier of blz_fs_create_dir_all. */
BLZ_API void blz_fs_create_dir_all_fut(const char *path, uint32_t mode, blz_fs_future *f);

/** Removes the empty directory `path`. 0, -ENOENT, -ENOTDIR, -ENOTEMPTY, -EBUSY. */
BLZ_API int blz_fs_remove_dir(const char *path);
/** Future tier of blz_fs_remove_dir. */
BLZ_API void blz_fs_remove_dir_fut(const char *path, blz_fs_future *f);

/**
 * Removes the directory `path` and everything in it, never following
 * symbolic links (a link inside is removed, not its target; a `path` that is
 * a symlink is itself removed). 0, -ENOENT, -ENOTDIR (`path` is a file),
 * or the first error met. Suspends.
 */
BLZ_API int blz_fs_remove_dir_all(const char *path);
/** Future tier of blz_fs_remove_dir_all. */
BLZ_API void blz_fs_remove_dir_all_fut(const char *path, blz_fs_future *f);

/** Removes the file (or symlink) `path`. 0, -ENOENT, -EISDIR, -ENOTDIR, -EACCES. */
BLZ_API int blz_fs_remove_file(const char *path);
/** Future tier of blz_fs_remove_file. */
BLZ_API void blz_fs_remove_file_fut(const char *path, blz_fs_future *f);

/**
 * Renames `from` to `to`, replacing `to` if it exists (rename(2) rules:
 * -EISDIR, -ENOTDIR, -ENOTEMPTY, -EXDEV across file systems). Suspends.
 */
BLZ_API int blz_fs_rename(const char *from, const char *to);
/** Future tier of blz_fs_rename. */
BLZ_API void blz_fs_rename_fut(const char *from, const char *to, blz_fs_future *f);

/**
 * Copies the contents and permission bits of the file `from` to `to`,
 * creating or truncating `to`. Stores the byte count in `*copied` (may be
 * NULL). 0, -ENOENT, -EISDIR, -EINVAL (`from` is not a regular file, or
 * `to` is the same file), or an I/O error. Uses copy_file_range where it
 * can. Suspends.
 */
BLZ_API int blz_fs_copy(const char *from, const char *to, uint64_t *copied);
/** Future tier of blz_fs_copy. */
BLZ_API void blz_fs_copy_fut(const char *from, const char *to, uint64_t *copied, blz_fs_future *f);

/** Makes `dst` a new hard link to the file `src`. 0, -EEXIST, -ENOENT, -EPERM (a dir), -EXDEV. */
BLZ_API int blz_fs_hard_link(const char *src, const char *dst);
/** Future tier of blz_fs_hard_link. */
BLZ_API void blz_fs_hard_link_fut(const char *src, const char *dst, blz_fs_future *f);

/** Makes `link` a symbolic link holding `target` (which need not exist). 0, -EEXIST, -ENOENT. */
BLZ_API int blz_fs_symlink(const char *target, const char *link);
/** Future tier of blz_fs_symlink. */
BLZ_API void blz_fs_symlink_fut(const char *target, const char *link, blz_fs_future *f);

/**
 * Reads the target of the symbolic link `path` into a new NUL-terminated
 * string in `*out` (free with blz_fs_free_buf). 0, -EINVAL (not a link),
 * -ENOENT. Suspends.
 */
BLZ_API int blz_fs_read_link(const char *path, char **out);
/** Future tier of blz_fs_read_link. */
BLZ_API void blz_fs_read_link_fut(const char *path, char **out, blz_fs_future *f);

/**
 * The absolute path of `path` with every symlink, "." and ".." resolved, in
 * a new string in `*out` (free with blz_fs_free_buf). 0, -ENOENT, -ENOTDIR,
 * -ELOOP, -ENAMETOOLONG. Suspends.
 */
BLZ_API int blz_fs_canonicalize(const char *path, char **out);
/** Future tier of blz_fs_canonicalize. */
BLZ_API void blz_fs_canonicalize_fut(const char *path, char **out, blz_fs_future *f);

/** Sets the permission bits (07777) of `path` (chmod). 0, -ENOENT, -EPERM. Suspends. */
BLZ_API int blz_fs_set_permissions(const char *path, uint32_t mode);
/** Future tier of blz_fs_set_permissions. */
BLZ_API void blz_fs_set_permissions_fut(const char *path, uint32_t mode, blz_fs_future *f);

/* ======================================================================== */
/* Directory listing                                                          */
/* ======================================================================== */

/**
 * Opens the directory `path` for listing. 0 and `*out`, -ENOENT, -ENOTDIR,
 * -EACCES, -EMFILE, -ENOMEM. Close with blz_dir_close. Suspends.
 */
BLZ_API int blz_dir_open(const char *path, blz_dir **out);
/** Future tier of blz_dir_open. */
BLZ_API void blz_dir_open_fut(const char *path, blz_dir **out, blz_fs_future *f);

/**
 * The next entry, in directory order: 1 and `*entry` filled, 0 at the end
 * (again at every later call), or -errno. Entries are read from the kernel
 * in batches; a dropped blz_dir_next_fut may lose the batch it was reading.
 * One task at a time per directory. Suspends.
 */
BLZ_API int blz_dir_next(blz_dir *dir, blz_dir_entry *entry);
/** Try tier: an entry already read from the kernel (1), 0 at the end, or -EAGAIN. */
BLZ_API int blz_dir_try_next(blz_dir *dir, blz_dir_entry *entry);
/** Future tier of blz_dir_next. */
BLZ_API void blz_dir_next_fut(blz_dir *dir, blz_dir_entry *entry, blz_fs_future *f);

/**
 * Closes the directory and frees `dir` (no blz_dir_next may be pending).
 * 0 or close(2)'s error. Suspends.
 */
BLZ_API int blz_dir_close(blz_dir *dir);
/** Future tier of blz_dir_close; `dir` is freed and closed at the first poll, or when the future is
 * dropped unpolled. */
BLZ_API void blz_dir_close_fut(blz_dir *dir, blz_fs_future *f);

#ifdef __cplusplus
}
#endif
#endif /* BLZ_FS_H */
