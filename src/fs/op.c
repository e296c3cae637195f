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
 *   touches none of them. The ring sees `io` and `bounce` only.
 * - `file` holds one reference on the blz_file from start until the system
 *   call is over (a pool job drops it right after the call; otherwise the op
 *   drops it when freed), so the descriptor number cannot be closed and
 *   reused under the system call.
 * - Data never goes straight between the kernel and caller memory while a
 *   runtime runs: writes are copied into `bounce` at start, reads copied out
 *   of it at finish (at most BLZ_FS_MAX_CHUNK bytes either way).
 * - Ring path: READ/PREAD/WRITE/PWRITE when the driver offers READ_AT and
 *   WRITE_AT completion ops. Offset UINT64_MAX (-1) makes io_uring use and
 *   advance the file position (IORING_FEAT_RW_CUR_POS, kernel 5.6; the
 *   io_uring backend requires 5.11 features, so it is always there). Every
 *   other kind, a ring that refuses the submission (-EBUSY) and the epoll
 *   backend use the blocking pool.
 * - A pool job whose op was abandoned, or whose job was aborted (runtime
 *   free), before the job started skips its system call (-ECANCELED), except
 *   CLOSE, which must always run; either way the op completes and releases
 *   what it holds.
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
    blz__io_op io;      /* ring submission (first: 8-aligned, as the ring's tags need) */
    blz__fs_call call;  /* arguments and results; the executor's until OP_DONE */
    blz__spinlock lock; /* guards `state` and `waker` */
    unsigned state;     /* OP_DONE | OP_DROPPED, under `lock` */
    blz_waker waker;    /* the waiter's task, woken at OP_DONE; under `lock` */
    blz_runtime *rt;    /* the runtime the op runs on */
    blz_file *file;     /* a reference on the file operated on, or NULL */
    void *bounce;       /* op-owned data buffer (call.buf points here), or NULL */
    char *paths;        /* op-owned copies of call.path and call.path2, or NULL */
    bool on_ring;       /* submitted to io_uring (cancel goes there) */
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

static void
ring_done(blz__io_op *io, int32_t res)
{
    blz__fs_op *op = blz__container_of(io, blz__fs_op, io);
    op_complete(op, res, false); /* the parking worker: nothing may block here */
}

/* Runs the op's system call on a pool thread. `aborted`: the job was
 * cancelled before it started (blz_runtime_free aborts every queued job); the
 * op still completes, so that it releases what it holds. */
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

static void
pool_job_aborted(void *arg)
{
    pool_run(arg, true);
}

static int
pool_submit(blz__fs_op *op)
{
    return blz__spawn_blocking_owned(op->rt, pool_job, pool_job_aborted, op);
}

/* Submits a data op to the ring; false when the ring cannot take it. */
static bool
ring_submit(blz__fs_op *op)
{
    struct blz__io_driver *d = blz__rt_io(op->rt);
    int k = op->call.kind;
    int io_kind = kind_writes(k) ? BLZ__OP_WRITE_AT : BLZ__OP_READ_AT;
    if (!d || (k != BLZ__FS_READ && k != BLZ__FS_PREAD && !kind_writes(k)) ||
        !blz__io_driver_supports(d, io_kind)) {
        return false;
    }
    memset(&op->io, 0, sizeof op->io);
    op->io.kind = io_kind;
    op->io.fd = op->call.fd;
    op->io.buf = op->call.buf;
    op->io.len = (uint32_t) op->call.len; /* <= BLZ_FS_MAX_CHUNK */
    op->io.off = (k == BLZ__FS_PREAD || k == BLZ__FS_PWRITE) ? op->call.off : UINT64_MAX;
    op->io.done = ring_done;
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
    if ((kind_reads(c->kind) || kind_writes(c->kind)) && c->len > 0) {
        op->bounce = blz__malloc(c->len);
        if (!op->bounce) {
            op_destroy(op, true, false);
            return -ENOMEM;
        }
        if (kind_writes(c->kind)) {
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
    if (dst && op->bounce && kind_reads(op->call.kind) && op->call.res > 0) {
        memcpy(dst, op->bounce, (size_t) op->call.res);
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
     * harmless: the cancel then finds nothing, or its own CQE is ignored. */
    if (op->on_ring) {
        blz__spin_lock(&op->lock);
        bool done = (op->state & OP_DONE) != 0;
        blz__spin_unlock(&op->lock);
        if (!done) {
            (void) blz__io_driver_cancel(blz__rt_io(op->rt), &op->io);
        }
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
