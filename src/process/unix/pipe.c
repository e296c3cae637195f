/*
 * Pipes: ends to a child process, new pipes, adopted pipes and FIFOs, and
 * the one future behind every pipe operation (read, write, write_all), all
 * tiers.
 *
 * Invariants:
 * - A blz_pipe is a registry source (its first member) plus the directions
 *   it may be used in (one, or both for a FIFO opened read-write).
 *   The owner's close marks the source shut down (waiters end with
 *   -ECANCELED) and drops the owner's reference; the descriptor is closed
 *   when the last future holding a reference lets go.
 * - A kept pipe (blz__pipe_keep: the stdin a wait closes for a child) pins
 *   the source: its memory outlives the close and the descriptor until
 *   blz__pipe_release, so a pointer borrowed from the child stays safe.
 *   Every call through it then ends at once: futures take their reference
 *   with tryref (-ECANCELED once released), the try tier sees SHUTDOWN
 *   (-ECANCELED) before any syscall, blz_pipe_fd says -EBADF.
 * - A pipe future takes a source reference at its first poll and drops it
 *   when it completes or is dropped (blz__io_future_wait / _end), so the
 *   descriptor cannot be closed under a read or write in flight.
 * - One attempt = one syscall loop (EINTR retried, write_all accumulated).
 *   The wait around it is the registry's (blz__io_source_wait, and
 *   blz__io_source_try for the try tier), shared with the sockets: EAGAIN
 *   clears the direction's readiness against the tick it was tried with,
 *   then readiness is polled again, which links the waiter only if no new
 *   event came meanwhile.
 * - Writes never raise SIGPIPE: SIGPIPE is blocked in the calling thread
 *   around the write(2), and a SIGPIPE the write itself generated (EPIPE) is
 *   consumed before the mask is restored. A signal is thread-directed when
 *   a write raises it, so no other thread can see it.
 * - Every poll spends coop budget first (in blz__io_future_wait).
 */
#include "core/future.h"
#include "os/unix/sys.h"
#include "process/process.h"
#include "rt/current.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


enum { OP_READ = 1, OP_WRITE = 2, OP_WRITE_ALL = 3 };

int
blz__pipe_wrap(blz__io_driver *d, int fd, unsigned dirs, blz_pipe **out)
{
    blz__io_source *src;
    int rc = blz__io_source_open(d, fd, sizeof(blz_pipe), BLZ__RD_READ | BLZ__RD_WRITE, &src);
    if (rc < 0) {
        return rc;
    }
    blz_pipe *p = (blz_pipe *) src;
    p->dirs = dirs;
    *out = p;
    return 0;
}

int
blz_pipe_new(blz_pipe **read_end, blz_pipe **write_end)
{
    if (!read_end || !write_end) {
        return -EINVAL;
    }
    *read_end = *write_end = NULL;
    blz_runtime *rt = blz__rt_current();
    if (!rt) {
        return -ESRCH;
    }
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
        return -errno;
    }
    blz__io_driver *d = blz__rt_io(rt);
    int rc = blz__pipe_wrap(d, fds[0], BLZ__PIPE_READS, read_end);
    if (rc < 0) {
        (void) close(fds[0]);
        (void) close(fds[1]);
        return rc;
    }
    rc = blz__pipe_wrap(d, fds[1], BLZ__PIPE_WRITES, write_end);
    if (rc < 0) {
        blz_pipe_close(*read_end);
        *read_end = NULL;
        (void) close(fds[1]);
        return rc;
    }
    return 0;
}

/* The directions a FIFO descriptor was opened for, or -EINVAL when it is
 * not a pipe or FIFO, or -errno. */
static int
fifo_dirs(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        return -errno;
    }
    if (!S_ISFIFO(st.st_mode)) {
        return -EINVAL;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) {
        return -errno;
    }
    switch (fl & O_ACCMODE) {
    case O_RDONLY:
        return (int) BLZ__PIPE_READS;
    case O_WRONLY:
        return (int) BLZ__PIPE_WRITES;
    default:
        return (int) (BLZ__PIPE_READS | BLZ__PIPE_WRITES);
    }
}

int
blz_pipe_from_fd(int fd, blz_pipe **out)
{
    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    if (fd < 0) {
        return -EBADF;
    }
    blz_runtime *rt = blz__rt_current();
    if (!rt) {
        return -ESRCH;
    }
    int dirs = fifo_dirs(fd);
    if (dirs < 0) {
        return dirs;
    }
    blz__fd_flags was;
    int rc = blz__sys_nonblock_cloexec(fd, &was);
    if (rc == 0) {
        rc = blz__pipe_wrap(blz__rt_io(rt), fd, (unsigned) dirs, out);
        if (rc < 0) {
            blz__sys_fd_flags_restore(fd, &was); /* the caller's again, as it was */
        }
    }
    return rc;
}

void
blz_pipe_close(blz_pipe *p)
{
    if (p) {
        blz__io_source_close(&p->src);
    }
}

void
blz__pipe_keep(blz_pipe *p)
{
    blz__io_source_pin(&p->src);
}

void
blz__pipe_release(blz_pipe *p)
{
    if (p) {
        blz__io_source_unpin(&p->src);
    }
}

int
blz_pipe_fd(const blz_pipe *p)
{
    if (!p) {
        return -EINVAL;
    }
    /* Closed but kept (blz__pipe_keep): the descriptor may be gone. */
    if (blz__io_source_readiness((blz__io_source *) &p->src) & BLZ__RD_SHUTDOWN) {
        return -EBADF;
    }
    return p->src.fd;
}

/* ---- system calls ------------------------------------------------------------ */

static long
sys_read(int fd, void *buf, size_t n)
{
    ssize_t r = read(fd, buf, n);
    return r < 0 ? -errno : (long) r;
}

/* write(2) that cannot raise SIGPIPE (see the invariants). */
static long
sys_write(int fd, const void *buf, size_t n)
{
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    (void) pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    bool was_blocked = sigismember(&old, SIGPIPE) == 1;
    bool was_pending = false;
    if (was_blocked) {
        /* Only a blocked SIGPIPE can be pending; one that was pending before
         * this write is someone else's and must stay. */
        sigset_t pend;
        if (sigpending(&pend) == 0) {
            was_pending = sigismember(&pend, SIGPIPE) == 1;
        }
    }
    ssize_t r = write(fd, buf, n);
    long res = r < 0 ? -errno : (long) r;
    if (res == -EPIPE && !was_pending) {
        static const struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    if (!was_blocked) {
        (void) pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    return res;
}

/* ---- the future ---------------------------------------------------------------- */

static int
op_dir(int op)
{
    return op == OP_READ ? BLZ__DIR_READ : BLZ__DIR_WRITE;
}

/* The `full` of blz__io_source_wait: a short read emptied the pipe, a short
 * write filled it. */
static long
pipe_full(int op, size_t len)
{
    return (op == OP_READ || op == OP_WRITE) && len <= LONG_MAX ? (long) len : 0;
}

/* One attempt (a blz__io_attempt_fn): the syscall(s) for the operation of
 * future `arg`; -EAGAIN when the pipe was not ready after all. */
static long
attempt(void *arg)
{
    blz_io_future *f = arg;
    int fd = ((blz_pipe *) f->obj_)->src.fd;
    for (;;) {
        long r;
        switch (f->op_) {
        case OP_READ:
            r = sys_read(fd, f->buf_, f->len_);
            break;
        case OP_WRITE:
            r = sys_write(fd, f->buf_, f->len_);
            break;
        case OP_WRITE_ALL:
            if (f->done_ >= f->len_) {
                return 0;
            }
            r = sys_write(fd, (const char *) f->buf_ + f->done_, f->len_ - f->done_);
            if (r >= 0) {
                f->done_ += (size_t) r;
                continue;
            }
            break;
        default:
            return -EINVAL;
        }
        if (r == -EINTR) {
            continue;
        }
        return r;
    }
}

static blz_poll
pipe_poll(blz_future *base, blz_context *cx)
{
    blz_io_future *f = (blz_io_future *) base;
    blz_pipe *p = f->obj_;
    if (!p) {
        return BLZ_READY; /* finished earlier: result kept */
    }
    long n;
    if (!blz__io_future_wait(&p->src, f, op_dir(f->op_), cx, attempt, pipe_full(f->op_, f->len_),
                             &n)) {
        return BLZ_PENDING;
    }
    blz__io_future_end(&p->src, f, n);
    return BLZ_READY;
}

static const blz_future_vtable pipe_vt = {pipe_poll, blz__io_future_drop_headed};

/* Checks what every tier checks; clamps the length so a count fits the int
 * result. 0, or the error the operation ends with at once. */
static int
check_args(blz_pipe *p, int op, const void *buf, size_t *len)
{
    if (!p || (!buf && *len)) {
        return -EINVAL;
    }
    if (!(p->dirs & (1u << op_dir(op)))) {
        return -EBADF; /* reading a write end, or writing a read end */
    }
    if (op != OP_WRITE_ALL && *len > (size_t) INT_MAX) {
        *len = (size_t) INT_MAX;
    }
    return 0;
}

static void
pipe_fut(blz_pipe *p, int op, void *buf, size_t len, blz_io_future *f)
{
    if (!f) {
        return;
    }
    int rc = check_args(p, op, buf, &len);
    if (rc < 0 || len == 0) {
        blz__io_future_ready(f, rc); /* an error, or nothing to move: done without a syscall */
        return;
    }
    blz__io_future_start(f, &pipe_vt, p, op, buf, len, NULL);
}

static long
pipe_try(blz_pipe *p, int op, void *buf, size_t len)
{
    int rc = check_args(p, op, buf, &len);
    if (rc < 0 || len == 0) {
        return rc;
    }
    blz_io_future f;
    memset(&f, 0, sizeof f);
    f.obj_ = p;
    f.buf_ = buf;
    f.len_ = len;
    f.op_ = op;
    return blz__io_source_try(&p->src, op_dir(op), attempt, &f, pipe_full(op, len));
}

static long
pipe_await(blz_pipe *p, int op, void *buf, size_t len)
{
    blz_io_future f;
    pipe_fut(p, op, buf, len, &f);
    return blz_await(&f.base);
}

/* ---- public wrappers --------------------------------------------------------------- */

ssize_t
blz_pipe_read(blz_pipe *p, void *buf, size_t n)
{
    return pipe_await(p, OP_READ, buf, n);
}

ssize_t
blz_pipe_try_read(blz_pipe *p, void *buf, size_t n)
{
    return pipe_try(p, OP_READ, buf, n);
}

void
blz_pipe_read_fut(blz_pipe *p, void *buf, size_t n, blz_io_future *f)
{
    pipe_fut(p, OP_READ, buf, n, f);
}

ssize_t
blz_pipe_write(blz_pipe *p, const void *buf, size_t n)
{
    return pipe_await(p, OP_WRITE, (void *) buf, n);
}

ssize_t
blz_pipe_try_write(blz_pipe *p, const void *buf, size_t n)
{
    return pipe_try(p, OP_WRITE, (void *) buf, n);
}

void
blz_pipe_write_fut(blz_pipe *p, const void *buf, size_t n, blz_io_future *f)
{
    pipe_fut(p, OP_WRITE, (void *) buf, n, f);
}

int
blz_pipe_write_all(blz_pipe *p, const void *buf, size_t n)
{
    return (int) pipe_await(p, OP_WRITE_ALL, (void *) buf, n);
}

void
blz_pipe_write_all_fut(blz_pipe *p, const void *buf, size_t n, blz_io_future *f)
{
    pipe_fut(p, OP_WRITE_ALL, (void *) buf, n, f);
}

/* ---- the stream interfaces ------------------------------------------------------------ */

static void
reader_read_fut(void *self, void *buf, size_t n, blz_io_future *f)
{
    blz_pipe_read_fut(self, buf, n, f);
}

static void
writer_write_fut(void *self, const void *buf, size_t n, blz_io_future *f)
{
    blz_pipe_write_fut(self, buf, n, f);
}

static const blz_reader_vtable pipe_reader_vt = {reader_read_fut};
static const blz_writer_vtable pipe_writer_vt = {writer_write_fut, NULL, NULL};

blz_reader
blz_pipe_reader(blz_pipe *p)
{
    blz_reader r = {&pipe_reader_vt, p};
    return r;
}

blz_writer
blz_pipe_writer(blz_pipe *p)
{
    blz_writer w = {&pipe_writer_vt, p};
    return w;
}
