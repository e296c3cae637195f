/*
 * One file system operation in flight, and where it runs.
 *
 * An op is a heap object shared by two parties: the future that started it
 * (the "waiter") and whatever runs its system call (the "executor": an
 * io_uring completion, or a job on the blocking pool). Either may finish
 * first; the second one frees the op. That is what makes dropping a pending
 * future safe: the executor keeps the op, its bounce buffer and its copies of
 * the paths alive until the kernel is done with them, then throws the
 * results away (closing a descriptor an abandoned open produced).
 *
 * Invariants:
 * - `state` and `waker` are guarded by `lock`. OP_DONE is set once, by the
 *   executor, after it wrote `call.res` and every result field; the waiter
 *   reads results only after seeing OP_DONE under the lock (the lock's
 *   release/acquire orders the plain fields). OP_DROPPED is set once, by the
 *   waiter, when it abandons the op. Whoever sets the second of the two bits
 *   frees the op, outside the lock.
 * - Until OP_DONE the executor owns `call`, `bounce` and `paths`; the waiter
 *   touches none of them. The ring sees `io`, `bounce` (data, or the statx
 *   buffer of a metadata call) and `paths` (OPEN and STAT name their path
 *   there), which is why a dropped future leaves them all to the executor.
 * - `file` holds one reference on the blz_file from start until the system
 *   call is over (a pool job drops it right after the call; otherwise the op
 *   drops it when freed), so the descriptor number cannot be closed and
 *   reused under the system call.
 * - Data never goes straight between the kernel and caller memory while a
 *   runtime runs: writes are copied into `bounce` at start, reads copied out
 *   of it at finish (at most BLZ_FS_MAX_CHUNK bytes either way). A vectored
 *   call (READV, WRITEV) becomes the plain one over `bounce`: its vectors are
 *   gathered at start or filled at finish (`scatter`), so the ring and the
 *   pool only ever see one buffer, and the ring needs no vectored op.
 * - Where it runs is decided in one place, ring_submit: on the ring when
 *   unix/ring.c has a completion op for the call (read, write, fsync,
 *   fdatasync, open, fstat/stat/lstat, close) and the driver runs that kind
 *   (the io_uring backend probes the kernel); on the blocking pool
 *   otherwise, and when the ring refuses the submission (-EBUSY). The
 *   epoll backend runs no op, so everything goes to the pool there.
 *   A read or write at an offset of a file without offsets (a pipe, a
 *   socket, an eventfd) goes to the pool too: io_uring ignores the offset
 *   there and would read or write as at the position, where pread(2) and
 *   pwrite(2) fail with -ESPIPE, which the pool then reports.
 * - `on_ring` is true while the ring holds the op (under `lock` once the op
 *   is submitted): only then does abandoning it send a cancel.
 * - A CLOSE always runs: it is never cancelled (the descriptor would leak),
 *   a pool job that was abandoned or aborted before it started still runs
 *   it, and a ring CLOSE the kernel dropped (-ECANCELED) runs again on the
 *   pool. Every other kind skips its system call (-ECANCELED) when abandoned
 *   or aborted before it started.
 * - The kernel may end a ring op that nobody asked to stop (-ECANCELED when
 *   the thread that submitted it exited before io-wq ran it, -EINTR): the
 *   call did not happen, so if the waiter still wants it, it runs again on
 *   the pool rather than fail for a reason the caller cannot act on. Not a
 *   CLOSE ended with -EINTR: Linux takes the descriptor out of the table
 *   before the file's flush, the part that can be interrupted (NFS, FUSE),
 *   so it is closed, and a second close could close a file another thread
 *   has opened under the same number since; it reports 0, as
 *   blz__fs_close_fd does for close(2).
 * - Regular files are never registered with the readiness registry (they
 *   are always "ready"), so closing one on the ring leaves no registration
 *   behind to clean up.
 */
#include "core/alloc.h"
#include "core/atomic.h"
#include "core/container.h"
#include "core/spinlock.h"
#include "fs/fs_int.h"
#include "io/backend.h"
#include "io/driver.h"
#include "rt/current.h"

#include <string.h>

#define OP_DONE    0x1u /* the executor finished; results are valid */
#define OP_DROPPED 0x2u /* the waiter abandoned the op */

struct blz__fs_op {
    blz__io_op io;            /* ring submission (first: 8-aligned, as the ring's tags need) */
    blz__fs_call call;        /* arguments and results; the executor's until OP_DONE */
    blz__spinlock lock;       /* guards `state` and `waker` */
    unsigned state;           /* OP_DONE | OP_DROPPED, under `lock` */
    blz_waker waker;          /* the waiter's task, woken at OP_DONE; under `lock` */
    blz_runtime *rt;          /* the runtime the op runs on */
    blz_file *file;           /* a reference on the file operated on, or NULL */
    void *bounce;             /* op-owned data buffer (call.buf points here), the statx
                                 buffer of a metadata call on the ring, or NULL */
    char *paths;              /* op-owned copies of call.path and call.path2, or NULL */
    const blz_iovec *scatter; /* a READV's vectors (caller memory, the waiter's), or NULL */
    int scatter_n;            /* their count */
    bool on_ring;             /* the ring holds the op (cancel goes there); under `lock` */
};

/* Ops alive, and ops that went to the ring: statistics for tests. Relaxed:
 * never used to order anything. */
static _Atomic uint64_t live_ops;
static _Atomic uint64_t ring_ops;

uint64_t
blz__fs_live_ops(void)
{
    return blz__load(&live_ops, RELAXED);
}

uint64_t
blz__fs_ring_ops(void)
{
    return blz__load(&ring_ops, RELAXED);
}

static bool
kind_reads(int kind)
{
    return kind == BLZ__FS_READ || kind == BLZ__FS_PREAD || kind == BLZ__FS_GETDENTS;
}

static bool
kind_writes(int kind)
{
    return kind == BLZ__FS_WRITE || kind == BLZ__FS_PWRITE;
}

/* `may_block`: the caller is a blocking-pool thread, where a descriptor
 * the op must let go of can be closed at once. */
static void
op_destroy(blz__fs_op *op, bool taken, bool may_block)
{
    if (!taken) {
        blz__fs_discard(&op->call, may_block);
    }
    if (op->file) {
        blz__file_release(op->file, may_block);
    }
    blz__free(op->bounce);
    blz__free(op->paths);
    blz__free(op);
    blz__fetch_sub(&live_ops, 1u, RELAXED);
}

/* The executor's end: publish the result, wake the waiter or free the op. */
static void
op_complete(blz__fs_op *op, int64_t res, bool may_block)
{
    op->call.res = res;
    blz__spin_lock(&op->lock);
    /* The unlock (release) pairs with the waiter's lock (acquire) in
     * blz__fs_op_ready / blz__fs_op_abandon: results are visible there. */
    unsigned prev = op->state;
    op->state = prev | OP_DONE;
    blz_waker w = op->waker;
    op->waker = BLZ_WAKER_NONE;
    blz__spin_unlock(&op->lock);
    if (prev & OP_DROPPED) {
        blz_waker_drop(&w);
        op_destroy(op, false, may_block);
    } else {
        blz_waker_wake(&w);
    }
}

/* Runs the op's system call on a pool thread. `aborted`: the job was
 * cancelled before it started; see pool_job_aborted. */
static void
pool_run(blz__fs_op *op, bool aborted)
{
    blz__spin_lock(&op->lock);
    bool dropped = (op->state & OP_DROPPED) != 0;
    blz__spin_unlock(&op->lock);
    int64_t res;
    if ((dropped || aborted) && op->call.kind != BLZ__FS_CLOSE) {
        res = -ECANCELED;
    } else {
        blz__fs_exec(&op->call);
        res = op->call.res;
    }
    /* The descriptor is no longer needed: let go of it here, where closing
     * it (if this was the last reference) may block. Closing on the pool
     * thread itself, rather than in a new job, means no close is left
     * queued when the runtime shuts down. */
    blz_file *file = op->file;
    op->file = NULL;
    if (file) {
        blz__file_release(file, true);
    }
    op_complete(op, res, true);
}

static void *
pool_job(void *arg)
{
    pool_run(arg, false);
    return NULL;
}

/* The job was aborted before it started (blz_runtime_free aborts every
 * queued job): the op still completes, releasing what it holds. */
static void
pool_job_aborted(void *arg)
{
    pool_run(arg, true);
}

static int
pool_submit(blz__fs_op *op)
{
    return blz__spawn_blocking_owned(op->rt, pool_job, pool_job_aborted, op, NULL);
}

/* A ring op ended by the kernel without running (see the invariants): true
 * when it was handed to the pool (or closed here) instead of completing. */
static bool
ring_rerun(blz__fs_op *op, int32_t res)
{
    if (res != -ECANCELED && res != -EINTR) {
        return false;
    }
    blz__spin_lock(&op->lock);
    bool rerun = op->call.kind == BLZ__FS_CLOSE || !(op->state & OP_DROPPED);
    if (rerun) {
        op->on_ring = false;
    }
    blz__spin_unlock(&op->lock);
    if (!rerun) {
        return false;
    }
    if (pool_submit(op) == 0) {
        return true;
    }
    if (op->call.kind != BLZ__FS_CLOSE) {
        return false; /* no pool (the runtime is going away): report res */
    }
    /* The pool is gone, so the runtime is being freed: close here, the
     * descriptor must not outlive it. */
    blz__fs_exec(&op->call);
    op_complete(op, op->call.res, false);
    return true;
}

static void
ring_done(blz__io_op *io, int32_t res)
{
    blz__fs_op *op = blz__container_of(io, blz__fs_op, io);
    if (op->call.kind == BLZ__FS_CLOSE && res == -EINTR) {
        res = 0; /* closed all the same (see the invariants) */
    }
    if (ring_rerun(op, res)) {
        return;
    }
    blz__fs_ring_result(&op->call, res, op->bounce);
    op_complete(op, op->call.res, false); /* the parking worker: nothing may block here */
}

/* Submits the op to the ring when the driver runs its kind; false when the
 * op must go to the blocking pool. */
static bool
ring_submit(blz__fs_op *op)
{
    struct blz__io_driver *d = blz__rt_io(op->rt);
    int kind = blz__fs_ring_kind(&op->call);
    if (!d || kind < 0 || !blz__io_driver_supports(d, kind)) {
        return false;
    }
    if ((op->call.kind == BLZ__FS_PREAD || op->call.kind == BLZ__FS_PWRITE) && op->file &&
        !blz__file_positional(op->file, op->call.kind == BLZ__FS_PWRITE)) {
        return false; /* see the invariants: pread(2) says -ESPIPE */
    }
    if (kind == BLZ__OP_STATX && !op->bounce && !(op->bounce = blz__malloc(BLZ__FS_STATX_SIZE))) {
        return false;
    }
    memset(&op->io, 0, sizeof op->io);
    blz__fs_ring_prep(&op->call, &op->io, op->bounce);
    op->io.done = ring_done;
    /* No lock yet: nobody else sees the op before the submit publishes it. */
    op->on_ring = true;
    /* After a successful submit the op belongs to the ring until ring_done. */
    if (blz__io_driver_submit(d, &op->io) == 0) {
        blz__fetch_add(&ring_ops, 1u, RELAXED);
        return true;
    }
    op->on_ring = false;
    return false;
}

static char *
copy_paths(const char *a, const char *b, const char **a_out, const char **b_out)
{
    size_t la = a ? strlen(a) + 1 : 0;
    size_t lb = b ? strlen(b) + 1 : 0;
    if (la + lb == 0) {
        return NULL;
    }
    char *p = blz__malloc(la + lb);
    if (!p) {
        return NULL;
    }
    if (a) {
        memcpy(p, a, la);
        *a_out = p;
    }
    if (b) {
        memcpy(p + la, b, lb);
        *b_out = p + la;
    }
    return p;
}

/* Turns a READV / WRITEV into the plain read or write of up to
 * BLZ_FS_MAX_CHUNK bytes that the bounce buffer will carry; a read keeps its
 * vectors for blz__fs_op_finish. */
static void
devectorize(blz__fs_op *op, const blz__fs_call *c)
{
    const blz_iovec *iov = c->buf;
    int n = (int) c->len;
    size_t total = 0;
    for (int i = 0; i < n && total < BLZ_FS_MAX_CHUNK; i++) {
        total += iov[i].len < BLZ_FS_MAX_CHUNK - total ? iov[i].len : BLZ_FS_MAX_CHUNK - total;
    }
    bool at_pos = c->off == UINT64_MAX;
    if (c->kind == BLZ__FS_READV) {
        op->call.kind = at_pos ? BLZ__FS_READ : BLZ__FS_PREAD;
        op->scatter = iov;
        op->scatter_n = n;
    } else {
        op->call.kind = at_pos ? BLZ__FS_WRITE : BLZ__FS_PWRITE;
    }
    op->call.buf = NULL;
    op->call.len = total;
}

/* Copies the first `len` bytes the vectors hold into `dst`. */
static void
gather(unsigned char *dst, size_t len, const blz_iovec *iov, int n)
{
    for (int i = 0; i < n && len > 0; i++) {
        size_t k = iov[i].len < len ? iov[i].len : len;
        if (k == 0) {
            continue; /* an empty vector may have no memory at all */
        }
        memcpy(dst, iov[i].base, k);
        dst += k;
        len -= k;
    }
}

/* Spreads `len` bytes of `src` over the vectors, in order. */
static void
scatter(const unsigned char *src, size_t len, const blz_iovec *iov, int n)
{
    for (int i = 0; i < n && len > 0; i++) {
        size_t k = iov[i].len < len ? iov[i].len : len;
        if (k == 0) {
            continue;
        }
        memcpy(iov[i].base, src, k);
        src += k;
        len -= k;
    }
}

int
blz__fs_op_start(blz_runtime *rt, const blz__fs_call *c, blz_file *file, blz__fs_op **out)
{
    blz__fs_op *op = blz__calloc(1, sizeof *op);
    if (!op) {
        return -ENOMEM;
    }
    blz__fetch_add(&live_ops, 1u, RELAXED);
    op->call = *c;
    op->rt = rt;
    atomic_init(&op->lock.locked, 0u);
    op->waker = BLZ_WAKER_NONE;
    if (file) {
        if (!blz__file_acquire(file)) {
            op_destroy(op, true, false);
            return -EBADF;
        }
        op->file = file;
    }
    if ((c->path || c->path2) &&
        !(op->paths = copy_paths(c->path, c->path2, &op->call.path, &op->call.path2))) {
        op_destroy(op, true, false);
        return -ENOMEM;
    }
    if (c->kind == BLZ__FS_READV || c->kind == BLZ__FS_WRITEV) {
        devectorize(op, c);
    }
    if ((kind_reads(op->call.kind) || kind_writes(op->call.kind)) && op->call.len > 0) {
        op->bounce = blz__malloc(op->call.len);
        if (!op->bounce) {
            op_destroy(op, true, false);
            return -ENOMEM;
        }
        if (c->kind == BLZ__FS_WRITEV) {
            gather(op->bounce, op->call.len, c->buf, (int) c->len);
        } else if (kind_writes(c->kind)) {
            memcpy(op->bounce, c->buf, c->len);
        }
        op->call.buf = op->bounce;
    }
    if (!ring_submit(op)) {
        int rc = pool_submit(op);
        if (rc < 0) {
            /* The job was never queued, so the op is still ours alone. */
            op_destroy(op, true, false);
            return rc;
        }
    }
    *out = op;
    return 0;
}

bool
blz__fs_op_ready(blz__fs_op *op, blz_context *cx)
{
    blz__spin_lock(&op->lock);
    bool done = (op->state & OP_DONE) != 0;
    if (!done) {
        blz_waker_set(&op->waker, cx->waker);
    }
    blz__spin_unlock(&op->lock);
    return done;
}

blz__fs_call *
blz__fs_op_finish(blz__fs_op *op, void *dst)
{
    if (op->bounce && kind_reads(op->call.kind) && op->call.res > 0) {
        if (op->scatter) {
            scatter(op->bounce, (size_t) op->call.res, op->scatter, op->scatter_n);
        } else if (dst) {
            memcpy(dst, op->bounce, (size_t) op->call.res);
        }
    }
    return &op->call;
}

void
blz__fs_op_free(blz__fs_op *op, bool taken)
{
    blz_waker_drop(&op->waker);
    op_destroy(op, taken, false);
}

void
blz__fs_op_abandon(blz__fs_op *op)
{
    /* Ask the ring first, while the op is certainly alive (it cannot be freed
     * before OP_DROPPED is set below). A completion racing with the cancel is
     * harmless: the cancel then finds nothing, or its own CQE is ignored. A
     * CLOSE is never cancelled: it must run. */
    blz__spin_lock(&op->lock);
    bool cancel = op->on_ring && !(op->state & OP_DONE) && op->call.kind != BLZ__FS_CLOSE;
    blz__spin_unlock(&op->lock);
    if (cancel) {
        (void) blz__io_driver_cancel(blz__rt_io(op->rt), &op->io);
    }
    blz__spin_lock(&op->lock);
    unsigned prev = op->state;
    op->state = prev | OP_DROPPED;
    blz_waker w = op->waker;
    op->waker = BLZ_WAKER_NONE;
    blz__spin_unlock(&op->lock);
    blz_waker_drop(&w);
    if (prev & OP_DONE) {
        op_destroy(op, false, false);
    }
}
