/*
 * The fs operations made of many system calls: read_file, create_dir_all,
 * remove_dir_all and copy. Each runs to completion on the calling thread,
 * which may block (a blocking-pool thread, or a thread outside a runtime).
 *
 * Invariants:
 * - Every descriptor opened here is O_CLOEXEC and closed before the function
 *   returns, on every path; so is every directory stream.
 * - Nothing recurses: remove_dir_all walks the tree with an explicit stack,
 *   so a deep tree costs heap, not C stack (pool threads have small stacks).
 * - remove_dir_all never follows a symbolic link: subdirectories are opened
 *   with O_NOFOLLOW relative to their parent's descriptor, so a link swapped
 *   in during the walk is unlinked, not entered.
 * - Returned buffers come from blz__malloc (read_file); everything else
 *   allocated here is freed before returning.
 */
#include "core/alloc.h"
#include "fs/fs_int.h"
#include "fs/unix/unix_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- read_file -------------------------------------------------------------------- */

int64_t
blz__fs_read_retry(int fd, void *buf, size_t n)
{
    int64_t r;
    do {
        r = blz__fs_sys.read(fd, buf, n);
    } while (r == -EINTR);
    return r;
}

static int
read_all(int fd, size_t hint, blz__fs_call *c)
{
    if (hint >= SIZE_MAX / 2) {
        return -EFBIG;
    }
    size_t cap = hint + 1; /* the data, then a NUL */
    size_t len = 0;
    char *buf = blz__malloc(cap);
    if (!buf) {
        return -ENOMEM;
    }
    for (;;) {
        if (len == cap - 1) {
            /* Full. Probe before growing: most files end exactly at their size. */
            char probe[512];
            int64_t r = blz__fs_read_retry(fd, probe, sizeof probe);
            if (r <= 0) {
                if (r < 0) {
                    blz__free(buf);
                    return (int) r;
                }
                break;
            }
            size_t ncap = cap < 4096 ? 4096 : cap * 2;
            if (ncap < cap || ncap - 1 < len + (size_t) r) {
                blz__free(buf);
                return -EFBIG;
            }
            char *nb = blz__realloc(buf, ncap);
            if (!nb) {
                blz__free(buf);
                return -ENOMEM;
            }
            buf = nb;
            cap = ncap;
            memcpy(buf + len, probe, (size_t) r);
            len += (size_t) r;
            continue;
        }
        size_t want = cap - 1 - len;
        int64_t r = blz__fs_read_retry(fd, buf + len, want < INT_MAX ? want : INT_MAX);
        if (r < 0) {
            blz__free(buf);
            return (int) r;
        }
        if (r == 0) {
            break;
        }
        len += (size_t) r;
    }
    buf[len] = '\0';
    c->out = buf;
    c->out_len = len;
    return 0;
}

int
blz__fs_read_file(blz__fs_call *c)
{
    int fd = blz__fs_open_retry(c->path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
        return fd;
    }
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? -errno : 0;
    if (rc == 0 && S_ISDIR(st.st_mode)) {
        rc = -EISDIR;
    }
    if (rc == 0) {
        /* The size is only a hint: /proc files say 0, files grow under us. */
        size_t hint = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t) st.st_size : 0;
        rc = read_all(fd, hint, c);
    }
    (void) blz__fs_close_fd(fd);
    return rc;
}

/* ---- create_dir_all ------------------------------------------------------------------- */

static bool
is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* mkdir that treats "already a directory" as success. */
static int
mkdir_exist_ok(const char *path, uint32_t mode)
{
    if (mkdir(path, (mode_t) mode) == 0) {
        return 0;
    }
    int e = errno;
    if (e == EEXIST) {
        return is_dir(path) ? 0 : -EEXIST;
    }
    return -e;
}

int
blz__fs_mkdir_all(const char *path, uint32_t mode)
{
    if (!*path) {
        return -ENOENT;
    }
    int rc = mkdir_exist_ok(path, mode);
    if (rc != -ENOENT) {
        return rc;
    }
    /* A parent is missing: create each prefix in turn, from the root down. */
    size_t n = strlen(path);
    char *p = blz__malloc(n + 1);
    if (!p) {
        return -ENOMEM;
    }
    memcpy(p, path, n + 1);
    rc = 0;
    for (size_t i = 1; i <= n && rc == 0; i++) {
        if (p[i] != '/' && p[i] != '\0') {
            continue;
        }
        if (p[i - 1] == '/') {
            continue; /* "//" or a trailing slash: nothing new to create */
        }
        char saved = p[i];
        p[i] = '\0';
        rc = mkdir_exist_ok(p, mode);
        p[i] = saved;
    }
    blz__free(p);
    return rc;
}

/* ---- remove_dir_all ---------------------------------------------------------------------- */

typedef struct rm_level {
    DIR *dir;    /* the directory being emptied */
    char *name;  /* its name in the parent (NULL for the top) */
    int rewinds; /* times it was re-listed because rmdir found it not empty */
} rm_level;

/* Opens `name` under `dirfd` as a directory stream, never following a link. */
static DIR *
open_subdir(int dirfd, const char *name, int *err)
{
    int fd;
    do {
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        *err = -errno;
        return NULL;
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        *err = -errno;
        close(fd);
    }
    return d;
}

/* Removes one non-directory entry, or reports (1) that it is a directory. */
static int
rm_entry(int dirfd, const struct dirent *e)
{
    unsigned char t = e->d_type;
    if (t == DT_UNKNOWN) {
        struct stat st;
        if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            return errno == ENOENT ? 0 : -errno;
        }
        t = S_ISDIR(st.st_mode) ? DT_DIR : DT_REG;
    }
    if (t == DT_DIR) {
        return 1;
    }
    if (unlinkat(dirfd, e->d_name, 0) < 0 && errno != ENOENT) {
        return -errno;
    }
    return 0;
}

/* The directories being emptied, outermost first. */
typedef struct rm_stack {
    rm_level *lv;
    size_t depth;
    size_t cap;
} rm_stack;

/* Enters the subdirectory `name` of the innermost level. */
static int
rm_descend(rm_stack *s, int dfd, const char *name)
{
    if (s->depth == s->cap) {
        rm_level *n = blz__realloc(s->lv, 2 * s->cap * sizeof *n);
        if (!n) {
            return -ENOMEM;
        }
        s->lv = n;
        s->cap *= 2;
    }
    int err = 0;
    DIR *sub = open_subdir(dfd, name, &err);
    if (!sub) {
        /* Gone meanwhile (fine), or replaced by a link: unlink that. */
        if (err == -ENOTDIR || err == -ELOOP) {
            return neg_errno(unlinkat(dfd, name, 0));
        }
        return err == -ENOENT ? 0 : err;
    }
    char *copy = strdup(name);
    if (!copy) {
        closedir(sub);
        return -ENOMEM;
    }
    s->lv[s->depth++] = (rm_level){sub, copy, 0};
    return 0;
}

/* The innermost level is listed to the end: remove it from its parent and
 * pop it. Returns 1 when it was not empty after all and is listed again. */
static int
rm_leave(rm_stack *s, int *rc)
{
    rm_level *lv = &s->lv[s->depth - 1];
    if (s->depth > 1 && *rc == 0) {
        int pfd = dirfd(s->lv[s->depth - 2].dir);
        if (unlinkat(pfd, lv->name, AT_REMOVEDIR) < 0) {
            if (errno == ENOTEMPTY && lv->rewinds < 3) {
                /* Something appeared (or the listing missed an entry): again. */
                lv->rewinds++;
                rewinddir(lv->dir);
                return 1;
            }
            if (errno != ENOENT) {
                *rc = -errno;
            }
        }
    }
    closedir(lv->dir);
    free(lv->name);
    s->depth--;
    return 0;
}

/*
 * Empties the tree under `top` (already opened; closed here) without
 * recursion: an explicit stack of open directory streams, one per level
 * being emptied. A level is removed (rmdir from its parent) once its listing
 * ends; after a child's removal the parent's listing simply continues. After
 * the first error nothing more is removed, and every level is closed.
 */
static int
rm_tree(DIR *top)
{
    rm_stack s = {blz__malloc(16 * sizeof(rm_level)), 1, 16};
    if (!s.lv) {
        closedir(top);
        return -ENOMEM;
    }
    s.lv[0] = (rm_level){top, NULL, 0};
    int rc = 0;
    while (s.depth > 0) {
        rm_level *lv = &s.lv[s.depth - 1];
        int dfd = dirfd(lv->dir);
        errno = 0;
        /* NOLINTNEXTLINE(concurrency-mt-unsafe): this DIR is used by this thread only */
        struct dirent *e = rc == 0 ? readdir(lv->dir) : NULL;
        if (!e) {
            if (rc == 0 && errno != 0) {
                rc = -errno;
            }
            (void) rm_leave(&s, &rc);
            continue;
        }
        if (is_dot_or_dotdot(e->d_name)) {
            continue;
        }
        int r = rm_entry(dfd, e);
        rc = r == 1 ? rm_descend(&s, dfd, e->d_name) : r;
    }
    blz__free(s.lv);
    return rc;
}

static int
rmdir_all_path(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        return -errno;
    }
    if (S_ISLNK(st.st_mode)) {
        return neg_errno(unlink(path));
    }
    if (!S_ISDIR(st.st_mode)) {
        return -ENOTDIR;
    }
    int err = 0;
    DIR *top = open_subdir(AT_FDCWD, path, &err);
    if (!top) {
        return err;
    }
    int rc = rm_tree(top);
    if (rc == 0) {
        for (int tries = 0; tries < 3; tries++) {
            rc = neg_errno(rmdir(path));
            if (rc != -ENOTEMPTY) {
                break;
            }
            /* Created concurrently: empty it again. */
            top = open_subdir(AT_FDCWD, path, &err);
            if (!top) {
                return err;
            }
            rc = rm_tree(top);
            if (rc < 0) {
                break;
            }
        }
    }
    return rc;
}

int
blz__fs_rmdir_all(const char *path)
{
    /* Trailing slashes make lstat and O_NOFOLLOW resolve a final symlink
     * ("link/" names the directory it points to): drop them, so that a link
     * is removed, never entered. */
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') {
        n--;
    }
    if (path[n] == '\0') {
        return rmdir_all_path(path);
    }
    char *p = blz__malloc(n + 1);
    if (!p) {
        return -ENOMEM;
    }
    memcpy(p, path, n);
    p[n] = '\0';
    int rc = rmdir_all_path(p);
    blz__free(p);
    return rc;
}

/* ---- copy ------------------------------------------------------------------------------------ */

static int64_t
write_all_fd(int fd, const char *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        int64_t w = blz__fs_sys.write(fd, buf + done, n - done);
        if (w == -EINTR) {
            continue;
        }
        if (w < 0) {
            return w;
        }
        if (w == 0) {
            return -EIO;
        }
        done += (size_t) w;
    }
    return 0;
}

static int64_t
copy_rw(int in, int out, int64_t total)
{
    size_t cap = (size_t) 256 * 1024;
    char *buf = blz__malloc(cap);
    if (!buf) {
        return -ENOMEM;
    }
    for (;;) {
        int64_t r = blz__fs_read_retry(in, buf, cap);
        if (r <= 0) {
            blz__free(buf);
            return r < 0 ? r : total;
        }
        int64_t w = write_all_fd(out, buf, (size_t) r);
        if (w < 0) {
            blz__free(buf);
            return w;
        }
        total += r;
    }
}

static int64_t
copy_fds(int in, int out)
{
    int64_t total = 0;
#if defined(__linux__)
    for (;;) {
        ssize_t r = copy_file_range(in, NULL, out, NULL, (size_t) 1 << 30, 0);
        if (r > 0) {
            total += r;
            continue;
        }
        if (r == 0) {
            /* End of file, or a file system (procfs) that claims 0: if nothing
             * moved yet, let read/write check. */
            if (total > 0) {
                return total;
            }
            break;
        }
        int e = errno;
        if (e == EINTR) {
            continue;
        }
        if (total == 0 && (e == EXDEV || e == ENOSYS || e == EINVAL || e == EOPNOTSUPP ||
                           e == EPERM || e == EBADF)) {
            break; /* not supported between these two: fall back */
        }
        return -e;
    }
#endif
    return copy_rw(in, out, total);
}

int64_t
blz__fs_copy(const char *from, const char *to)
{
    /* O_NONBLOCK: opening a FIFO (or some devices) for reading waits for a
     * writer, maybe for good, before the check below could refuse it. The
     * flag is cleared once `from` is known to be a regular file. */
    int in = blz__fs_open_retry(from, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);
    if (in < 0) {
        return in;
    }
    struct stat st;
    int64_t rc = fstat(in, &st) < 0 ? -errno : 0;
    if (rc == 0 && !S_ISREG(st.st_mode)) {
        rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
    }
    if (rc == 0) {
        int fl = fcntl(in, F_GETFL);
        rc = fl < 0 || fcntl(in, F_SETFL, fl & ~O_NONBLOCK) < 0 ? -errno : 0;
    }
    if (rc < 0) {
        (void) blz__fs_close_fd(in);
        return rc;
    }
    /* Onto itself (same path, a hard link, a symlink): O_TRUNC below would
     * empty `from` before a byte is read. */
    struct stat tst;
    if (stat(to, &tst) == 0 && tst.st_dev == st.st_dev && tst.st_ino == st.st_ino) {
        (void) blz__fs_close_fd(in);
        return -EINVAL;
    }
    uint32_t perm = st.st_mode & 07777u;
    int out = blz__fs_open_retry(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, perm);
    if (out < 0) {
        (void) blz__fs_close_fd(in);
        return out;
    }
    /* An existing `to` keeps its mode through O_CREAT: set it explicitly. */
    rc = fchmod(out, (mode_t) perm) < 0 ? -errno : 0;
    if (rc == 0) {
        rc = copy_fds(in, out);
    }
    (void) blz__fs_close_fd(in);
    int crc = blz__fs_close_fd(out);
    return rc >= 0 && crc < 0 ? crc : rc;
}
