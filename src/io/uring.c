/*
 * The io_uring backend, on raw syscalls and <linux/io_uring.h> (no liburing).
 *
 * Readiness: each source gets one multishot POLL_ADD (POLLIN|POLLOUT|
 * POLLRDHUP) whose user_data is the source pointer tagged TAG_POLL; every CQE
 * it posts is dispatched like an epoll edge. Wake-ups: an eventfd with its own
 * multishot poll (user_data TAG_WAKE). Completion ops (read/write at offset,
 * recv, send, accept, connect, fsync, openat, statx, close) carry the op
 * pointer tagged TAG_OP; which of them this kernel has is probed at init
 * (IORING_REGISTER_PROBE), and `supports` says no to the others.
 *
 * Invariants:
 * - SQ: one producer at a time, under `lock`; every SQE is zeroed, filled, and
 *   published by a release store of the SQ tail (pairs with the kernel's
 *   acquire of it). Arm, disarm, submit and cancel flush at once, so changes
 *   made by other threads take effect while the parker sleeps.
 * - CQ: one consumer, the parking thread; the CQ tail is read with acquire
 *   (pairs with the kernel's release), each CQE is copied out before the head
 *   is released back to the kernel (release store).
 * - A source's poll state (be_flags: ARMED, RELEASED) is guarded by `lock`.
 *   ARMED: a poll request naming the source may still post CQEs (be_hold = 1).
 *   A CQE without IORING_CQE_F_MORE ends the request: if the owner released
 *   the source, be_hold drops to 0 (release) and the registry may free it;
 *   otherwise the poll is armed again (multishot polls end on overflow,
 *   cancellation at thread exit, and the like).
 * - An op in flight is on the `inflight` list (under `lock`) and its buffers
 *   (and path) belong to the kernel until its CQE; fini cancels every such op
 *   but CLOSE, and waits for every CQE before the ring is closed. A CLOSE is
 *   never cancelled: cancelled before it ran, it would leave its descriptor
 *   open with nobody to close it.
 * - Feature floor: IORING_FEAT_NODROP, FEAT_EXT_ARG (timed waits) and
 *   FEAT_POLL_32BITS, the NOP/POLL_ADD/ASYNC_CANCEL ops, and
 *   multishot poll, checked by a live self-test at init. Anything less makes
 *   init fail, and the driver falls back to epoll.
 */
#include "core/alloc.h"
#include "core/atomic.h"
#include "io/backend.h"
#include "io/registry.h"

#include <errno.h>
#include <limits.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- the kernel ABI we rely on -------------------------------------------- */

_Static_assert(sizeof(struct io_uring_sqe) == 64, "io_uring_sqe is 64 bytes");
_Static_assert(offsetof(struct io_uring_sqe, opcode) == 0, "sqe.opcode");
_Static_assert(offsetof(struct io_uring_sqe, flags) == 1, "sqe.flags");
_Static_assert(offsetof(struct io_uring_sqe, ioprio) == 2, "sqe.ioprio");
_Static_assert(offsetof(struct io_uring_sqe, fd) == 4, "sqe.fd");
_Static_assert(offsetof(struct io_uring_sqe, off) == 8, "sqe.off");
_Static_assert(offsetof(struct io_uring_sqe, addr) == 16, "sqe.addr");
_Static_assert(offsetof(struct io_uring_sqe, len) == 24, "sqe.len");
_Static_assert(offsetof(struct io_uring_sqe, poll32_events) == 28, "sqe.poll32_events");
_Static_assert(offsetof(struct io_uring_sqe, msg_flags) == 28, "sqe.msg_flags");
_Static_assert(offsetof(struct io_uring_sqe, accept_flags) == 28, "sqe.accept_flags");
_Static_assert(offsetof(struct io_uring_sqe, fsync_flags) == 28, "sqe.fsync_flags");
_Static_assert(offsetof(struct io_uring_sqe, open_flags) == 28, "sqe.open_flags");
_Static_assert(offsetof(struct io_uring_sqe, statx_flags) == 28, "sqe.statx_flags");
_Static_assert(offsetof(struct io_uring_sqe, addr2) == 8, "sqe.addr2 (statx buffer)");
_Static_assert(offsetof(struct io_uring_sqe, user_data) == 32, "sqe.user_data");
_Static_assert(sizeof(struct io_uring_cqe) == 16, "io_uring_cqe is 16 bytes");
_Static_assert(offsetof(struct io_uring_cqe, user_data) == 0, "cqe.user_data");
_Static_assert(offsetof(struct io_uring_cqe, res) == 8, "cqe.res");
_Static_assert(offsetof(struct io_uring_cqe, flags) == 12, "cqe.flags");
_Static_assert(sizeof(struct io_sqring_offsets) == 40, "io_sqring_offsets");
_Static_assert(sizeof(struct io_cqring_offsets) == 40, "io_cqring_offsets");
_Static_assert(sizeof(struct io_uring_params) == 120, "io_uring_params");
_Static_assert(offsetof(struct io_uring_params, sq_off) == 40, "params.sq_off");
_Static_assert(offsetof(struct io_uring_params, cq_off) == 80, "params.cq_off");
_Static_assert(sizeof(struct io_uring_getevents_arg) == 24, "io_uring_getevents_arg");
_Static_assert(sizeof(struct io_uring_probe) == 16, "io_uring_probe");
_Static_assert(sizeof(struct io_uring_probe_op) == 8, "io_uring_probe_op");
_Static_assert(IORING_OFF_SQ_RING == 0ULL && IORING_OFF_CQ_RING == 0x8000000ULL &&
                   IORING_OFF_SQES == 0x10000000ULL,
               "io_uring mmap offsets");
_Static_assert(IORING_CQE_F_MORE == 2u && IORING_POLL_ADD_MULTI == 1u, "multishot flags");
_Static_assert(sizeof(unsigned) == 4, "ring indices are 32-bit");

#define SQ_ENTRIES 256u
#define CQ_ENTRIES 4096u

/* user_data tags (low bits; sources and ops are at least 8-aligned). */
#define TAG_MASK   7ull
#define TAG_IGNORE 0ull /* a remove/cancel request's own completion */
#define TAG_POLL   1ull /* readiness of a source */
#define TAG_WAKE   2ull /* the wake eventfd's poll (user_data is exactly 2) */
#define TAG_OP     3ull /* a completion op */

/* Source be_flags (under the backend lock). */
#define SRC_ARMED    0x1u  /* a poll request for it is live in the kernel */
#define SRC_RELEASED 0x2u  /* the owner let go: do not arm again */
#define SRC_FAILS    0xf0u /* consecutive failed re-arms (bits 4..7) */

#define POLL_MASK (POLLIN | POLLOUT | POLLRDHUP)

struct blz__backend {
    int ring_fd;          /* the io_uring; owned */
    unsigned features;    /* IORING_FEAT_* */
    pthread_mutex_t lock; /* SQ producer side, sources' be_flags, `inflight` */

    /* Submission queue (kernel-shared words are accessed atomically). */
    _Atomic unsigned *sq_khead;  /* advanced by the kernel as it consumes SQEs */
    _Atomic unsigned *sq_ktail;  /* published by us (release) */
    _Atomic unsigned *sq_kflags; /* IORING_SQ_CQ_OVERFLOW and friends */
    unsigned *sq_array;          /* index array, identity-mapped at init */
    unsigned sq_mask, sq_entries;
    unsigned sq_tail; /* our next tail (under lock) */
    struct io_uring_sqe *sqes;

    /* Completion queue. */
    _Atomic unsigned *cq_khead; /* released back by us after copying CQEs out */
    _Atomic unsigned *cq_ktail; /* published by the kernel (acquire) */
    unsigned cq_mask;
    struct io_uring_cqe *cqes;

    void *sq_ring; /* mmap of the SQ ring (and the CQ ring with FEAT_SINGLE_MMAP) */
    size_t sq_ring_sz;
    void *cq_ring; /* mmap of the CQ ring, or == sq_ring */
    size_t cq_ring_sz;
    size_t sqes_sz;

    int wakefd;                    /* eventfd written by wake(); owned */
    _Atomic uint32_t wake_pending; /* 1 while a wake is written and not drained */
    int wake_armed;                /* the wake poll is live (under lock) */

    /* Bumped (release) before anything naming a source or op goes to the
     * kernel; read (acquire) before completions are handled. The syscall
     * orders the real memory; this makes the order visible to the memory
     * model (and to ThreadSanitizer, which cannot see through the kernel). */
    _Atomic uint64_t published;

    bool coop_taskrun;                           /* set up with COOP_TASKRUN | TASKRUN_FLAG */
    unsigned char supported[BLZ__OP_KIND_COUNT]; /* completion ops the probe found */
    blz__io_op inflight;                         /* sentinel of ops in flight (under lock) */
};

/* ---- raw syscalls ---------------------------------------------------------- */

static int
sys_setup(unsigned entries, struct io_uring_params *p)
{
    long r = syscall(__NR_io_uring_setup, entries, p);
    return r < 0 ? -errno : (int) r;
}

static int
sys_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags, void *arg,
          size_t argsz)
{
    long r = syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, arg, argsz);
    return r < 0 ? -errno : (int) r;
}

static int
sys_register(int fd, unsigned opcode, void *arg, unsigned nr_args)
{
    long r = syscall(__NR_io_uring_register, fd, opcode, arg, nr_args);
    return r < 0 ? -errno : (int) r;
}

/* ---- SQ ------------------------------------------------------------------ */

/* Submits every published SQE. Lock held. Returns 0 or -errno. */
static int
sq_flush(blz__backend *b)
{
    /* Pairs with the acquire in cq_reap: a source or op initialised before
     * its SQE is fully visible to whoever handles its CQE. */
    blz__fetch_add(&b->published, 1u, RELEASE);
    /* Release pairs with the kernel's acquire of the tail: SQE contents first. */
    blz__store(b->sq_ktail, b->sq_tail, RELEASE);
    for (int tries = 0; tries < 8; tries++) {
        unsigned pending = b->sq_tail - blz__load(b->sq_khead, ACQUIRE);
        if (pending == 0) {
            return 0;
        }
        int r = sys_enter(b->ring_fd, pending, 0, 0, NULL, 0);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
            return r;
        }
        if (r == -EBUSY || r == -EAGAIN) {
            /* CQ backlog on older kernels: let the kernel flush it, then retry. */
            (void) sys_enter(b->ring_fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0);
        }
    }
    return -EBUSY;
}

/* A zeroed SQE, or NULL when the SQ stays full. Lock held. */
static struct io_uring_sqe *
sq_get(blz__backend *b)
{
    unsigned head = blz__load(b->sq_khead, ACQUIRE);
    if (b->sq_tail - head >= b->sq_entries) {
        (void) sq_flush(b);
        head = blz__load(b->sq_khead, ACQUIRE);
        if (b->sq_tail - head >= b->sq_entries) {
            return NULL;
        }
    }
    struct io_uring_sqe *sqe = &b->sqes[b->sq_tail & b->sq_mask];
    memset(sqe, 0, sizeof *sqe);
    b->sq_tail++;
    return sqe;
}

static void
prep_poll_multi(struct io_uring_sqe *sqe, int fd, uint32_t mask, uint64_t user_data)
{
    sqe->opcode = IORING_OP_POLL_ADD;
    sqe->fd = fd;
    sqe->len = IORING_POLL_ADD_MULTI;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    mask = (mask << 16) | (mask >> 16); /* the kernel reads the two halves swapped */
#endif
    sqe->poll32_events = mask;
    sqe->user_data = user_data;
}

static void
prep_remove(struct io_uring_sqe *sqe, uint8_t opcode, uint64_t target)
{
    sqe->opcode = opcode; /* ASYNC_CANCEL: matches the request whose user_data is sqe->addr */
    sqe->fd = -1;
    sqe->addr = target;
    sqe->user_data = TAG_IGNORE;
}

/* Arms the multishot poll of src. Lock held; flushes when `flush`. */
static int
arm_locked(blz__backend *b, blz__io_source *src, int flush)
{
    struct io_uring_sqe *sqe = sq_get(b);
    if (!sqe) {
        return -EBUSY;
    }
    prep_poll_multi(sqe, src->fd, POLL_MASK, (uint64_t) (uintptr_t) src | TAG_POLL);
    src->be_flags |= SRC_ARMED;
    blz__store(&src->be_hold, 1u,
               RELAXED); /* read by the sweep, on this (parking) or a later park */
    return flush ? sq_flush(b) : 0;
}

static int
arm_wake_locked(blz__backend *b)
{
    struct io_uring_sqe *sqe = sq_get(b);
    if (!sqe) {
        return -EBUSY;
    }
    prep_poll_multi(sqe, b->wakefd, POLLIN, TAG_WAKE);
    b->wake_armed = 1;
    return 0;
}

/* ---- backend operations --------------------------------------------------- */

static int
ur_arm(blz__backend *b, blz__io_source *src)
{
    pthread_mutex_lock(&b->lock);
    src->be_flags = 0;
    int rc = arm_locked(b, src, 1);
    if (rc < 0 && (src->be_flags & SRC_ARMED)) {
        /* The SQE is published but the flush failed: the parker's next flush
         * submits it, so the source is armed after all. */
        rc = 0;
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}

static void
ur_disarm(blz__backend *b, blz__io_source *src)
{
    pthread_mutex_lock(&b->lock);
    src->be_flags |= SRC_RELEASED;
    if (src->be_flags & SRC_ARMED) {
        struct io_uring_sqe *sqe = sq_get(b);
        if (sqe) {
            /* ASYNC_CANCEL, not POLL_REMOVE: POLL_REMOVE gives up with
             * -EALREADY (cancelling nothing) when the poll's task work is in
             * flight at that moment, and the poll would then hold the file
             * (so the socket never closes) for the life of the ring. Cancel
             * marks the poll cancelled and it completes either way. */
            prep_remove(sqe, IORING_OP_ASYNC_CANCEL, (uint64_t) (uintptr_t) src | TAG_POLL);
            (void) sq_flush(b);
        }
        /* be_hold stays 1 until the poll's last CQE (its -ECANCELED). If the
         * SQ was full the poll lives on until the ring closes: a leak of one
         * source, never a use after free. */
    } else {
        blz__store(&src->be_hold, 0u, RELEASE); /* pairs with the sweep's acquire */
    }
    pthread_mutex_unlock(&b->lock);
}

static void
ur_flush_deferred(blz__backend *b)
{
    /* The kernel sets SQ_TASKRUN while completions wait for some thread to
     * enter it; the flag is ring-wide, so the work may be another thread's and
     * this entry a wasted one: at most one per maintenance tick. Any syscall
     * runs the calling thread's pending work on its way out. */
    if (b->coop_taskrun && (blz__load(b->sq_kflags, RELAXED) & IORING_SQ_TASKRUN)) {
        (void) sys_enter(b->ring_fd, 0, 0, 0, NULL, 0);
    }
}

static int
ur_supports(const blz__backend *b, int kind)
{
    return kind >= 0 && kind < BLZ__OP_KIND_COUNT && b->supported[kind];
}

static int
prep_op(struct io_uring_sqe *sqe, blz__io_op *op)
{
    sqe->fd = op->fd;
    sqe->user_data = (uint64_t) (uintptr_t) op | TAG_OP;
    switch (op->kind) {
    case BLZ__OP_NOP:
        sqe->opcode = IORING_OP_NOP;
        sqe->fd = -1;
        return 0;
    case BLZ__OP_READ_AT:
    case BLZ__OP_WRITE_AT:
        sqe->opcode = op->kind == BLZ__OP_READ_AT ? IORING_OP_READ : IORING_OP_WRITE;
        sqe->addr = (uint64_t) (uintptr_t) op->buf;
        sqe->len = op->len;
        sqe->off = op->off;
        return 0;
    case BLZ__OP_RECV:
    case BLZ__OP_SEND:
        sqe->opcode = op->kind == BLZ__OP_RECV ? IORING_OP_RECV : IORING_OP_SEND;
        sqe->addr = (uint64_t) (uintptr_t) op->buf;
        sqe->len = op->len;
        sqe->msg_flags = (uint32_t) op->flags | (op->kind == BLZ__OP_SEND ? MSG_NOSIGNAL : 0);
        return 0;
    case BLZ__OP_ACCEPT:
        sqe->opcode = IORING_OP_ACCEPT;
        sqe->addr = (uint64_t) (uintptr_t) op->buf;
        sqe->addr2 = (uint64_t) (uintptr_t) &op->addrlen;
        sqe->accept_flags = SOCK_CLOEXEC | SOCK_NONBLOCK;
        return 0;
    case BLZ__OP_CONNECT:
        sqe->opcode = IORING_OP_CONNECT;
        sqe->addr = (uint64_t) (uintptr_t) op->buf;
        sqe->off = op->len;
        return 0;
    case BLZ__OP_FSYNC:
        sqe->opcode = IORING_OP_FSYNC; /* off = len = 0: the whole file */
        sqe->fsync_flags = (op->flags & BLZ__FSYNC_DATASYNC) ? IORING_FSYNC_DATASYNC : 0;
        return 0;
    case BLZ__OP_OPENAT:
        sqe->opcode = IORING_OP_OPENAT;
        sqe->addr = (uint64_t) (uintptr_t) op->path;
        sqe->len = op->mode;
        sqe->open_flags = (uint32_t) op->flags;
        return 0;
    case BLZ__OP_STATX:
        sqe->opcode = IORING_OP_STATX;
        sqe->addr = (uint64_t) (uintptr_t) op->path;
        sqe->len = op->mask;
        sqe->addr2 = (uint64_t) (uintptr_t) op->buf;
        sqe->statx_flags = (uint32_t) op->flags;
        return 0;
    case BLZ__OP_CLOSE:
        sqe->opcode = IORING_OP_CLOSE;
        return 0;
    default:
        return -EINVAL;
    }
}

static void
inflight_link(blz__backend *b, blz__io_op *op)
{
    op->be_next = &b->inflight;
    op->be_prev = b->inflight.be_prev;
    b->inflight.be_prev->be_next = op;
    b->inflight.be_prev = op;
}

static void
inflight_unlink(blz__io_op *op)
{
    op->be_prev->be_next = op->be_next;
    op->be_next->be_prev = op->be_prev;
    op->be_next = op->be_prev = NULL;
}

static int
ur_submit(blz__backend *b, blz__io_op *op)
{
    if (!op || !op->done || !ur_supports(b, op->kind)) {
        return op && op->done ? -EOPNOTSUPP : -EINVAL;
    }
    pthread_mutex_lock(&b->lock);
    struct io_uring_sqe *sqe = sq_get(b);
    if (!sqe) {
        pthread_mutex_unlock(&b->lock);
        return -EBUSY;
    }
    (void) prep_op(sqe, op);
    inflight_link(b, op);
    /* Once published the op is the kernel's: a failed flush is retried by the
     * parker, and the done call still comes. */
    (void) sq_flush(b);
    pthread_mutex_unlock(&b->lock);
    return 0;
}

static int
ur_cancel(blz__backend *b, blz__io_op *op)
{
    if (op->kind == BLZ__OP_CLOSE) {
        return -EOPNOTSUPP; /* see blz__io_op: a cancelled close would leak its descriptor */
    }
    int rc = -ENOENT;
    pthread_mutex_lock(&b->lock);
    if (op->be_next) {
        struct io_uring_sqe *sqe = sq_get(b);
        if (sqe) {
            prep_remove(sqe, IORING_OP_ASYNC_CANCEL, (uint64_t) (uintptr_t) op | TAG_OP);
            rc = sq_flush(b);
        } else {
            rc = -EBUSY;
        }
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}

static void
ur_wake(blz__backend *b)
{
    /* Only the first wake since the last drain writes the eventfd. */
    if (blz__exchange(&b->wake_pending, 1u, ACQ_REL) == 0) {
        uint64_t one = 1;
        ssize_t r = write(b->wakefd, &one, sizeof one);
        (void) r; /* EAGAIN: the counter is full, a wake is pending anyway */
    }
}

/* ---- completions ------------------------------------------------------------ */

/* The poll request of `src` ended (a CQE without F_MORE). Lock held. */
static void
poll_ended(blz__backend *b, blz__io_source *src, int32_t res)
{
    src->be_flags &= ~SRC_ARMED;
    if (src->be_flags & SRC_RELEASED) {
        blz__store(&src->be_hold, 0u, RELEASE); /* pairs with the sweep's acquire */
        return;
    }
    unsigned fails = (src->be_flags & SRC_FAILS) >> 4;
    if (res < 0 && res != -ECANCELED) {
        fails++;
    } else {
        fails = 0;
    }
    src->be_flags = (src->be_flags & ~SRC_FAILS) | ((fails & 0xfu) << 4);
    if (fails >= 3) {
        /* The kernel keeps refusing: report an error so that the waiters run
         * their syscalls and see what is wrong, and stop trying. */
        blz__io_source_ready(src, BLZ__RD_ERROR | BLZ__RD_READ | BLZ__RD_WRITE);
        blz__store(&src->be_hold, 0u, RELEASE);
        return;
    }
    (void) arm_locked(b, src, 0); /* flushed at the end of this poll */
}

static void
handle_cqe(blz__backend *b, uint64_t ud, int32_t res, uint32_t flags, int *handled)
{
    uint64_t tag = ud & TAG_MASK;
    if (ud == TAG_WAKE) {
        /* Drain, then clear the flag (the order matters: see drain_wake in
         * epoll.c). Acq_rel pairs with the exchange in ur_wake. */
        uint64_t v;
        ssize_t r = read(b->wakefd, &v, sizeof v);
        (void) r;
        (void) blz__exchange(&b->wake_pending, 0u, ACQ_REL);
        if (!(flags & IORING_CQE_F_MORE)) {
            pthread_mutex_lock(&b->lock);
            b->wake_armed = 0;
            (void) arm_wake_locked(b);
            pthread_mutex_unlock(&b->lock);
        }
        return;
    }
    if (tag == TAG_POLL) {
        /* user_data carries the pointer we put in it. */
        blz__io_source *src =
            (blz__io_source *) (uintptr_t) (ud & ~TAG_MASK); // NOLINT(performance-no-int-to-ptr)
        if (res > 0) {
            blz__io_source_ready(src, blz__rd_from_poll((uint32_t) res));
            (*handled)++;
        }
        if (!(flags & IORING_CQE_F_MORE)) {
            pthread_mutex_lock(&b->lock);
            poll_ended(b, src, res);
            pthread_mutex_unlock(&b->lock);
        }
        return;
    }
    if (tag == TAG_OP) {
        blz__io_op *op =
            (blz__io_op *) (uintptr_t) (ud & ~TAG_MASK); // NOLINT(performance-no-int-to-ptr)
        pthread_mutex_lock(&b->lock);
        inflight_unlink(op);
        pthread_mutex_unlock(&b->lock);
        op->done(op, res); /* may free op */
        (*handled)++;
        return;
    }
    /* TAG_IGNORE: the result of an ASYNC_CANCEL (0, or -ENOENT when the
     * request had already ended: its own last CQE is on its way). */
}

/* Copies out and handles the CQEs present until *seen reaches `max`; adds
 * the number of CQEs to *seen. Returns the events handled. Parking thread
 * only. */
static int
cq_reap(blz__backend *b, unsigned *seen, unsigned max)
{
    int handled = 0;
    while (*seen < max) {
        unsigned head = blz__load(b->cq_khead, RELAXED); /* only we write it */
        /* Acquire pairs with the kernel's release of the tail: CQE contents. */
        unsigned tail = blz__load(b->cq_ktail, ACQUIRE);
        if (head == tail) {
            break;
        }
        /* After seeing the CQEs: pairs with the release in sq_flush, which
         * came before their submission. */
        (void) blz__load(&b->published, ACQUIRE);
        while (head != tail && *seen < max) {
            const struct io_uring_cqe *cqe = &b->cqes[head & b->cq_mask];
            uint64_t ud = cqe->user_data;
            int32_t res = cqe->res;
            uint32_t flags = cqe->flags;
            head++;
            (*seen)++;
            /* Release the slot before handling: handlers may submit, and the
             * CQE is already copied out. Pairs with the kernel's acquire. */
            blz__store(b->cq_khead, head, RELEASE);
            handle_cqe(b, ud, res, flags, &handled);
        }
    }
    return handled;
}

/* ur_poll, reporting at most `max` CQEs. */
static int
poll_upto(blz__backend *b, int64_t timeout_ns, unsigned max)
{
    unsigned seen = 0;
    int n = cq_reap(b, &seen, max);
    /* Publish what reaping queued (re-arms), and learn of a CQ overflow. */
    pthread_mutex_lock(&b->lock);
    (void) sq_flush(b);
    pthread_mutex_unlock(&b->lock);
    unsigned sqf = blz__load(b->sq_kflags, RELAXED);
    /* Any CQE (a wake included) means "return now": wait only on an empty CQ. */
    if (seen == 0 && timeout_ns != 0) {
        struct __kernel_timespec ts = {0};
        struct io_uring_getevents_arg arg = {0};
        arg.sigmask_sz = _NSIG / 8;
        if (timeout_ns > 0) {
            ts.tv_sec = timeout_ns / 1000000000;
            ts.tv_nsec = timeout_ns % 1000000000;
            arg.ts = (uint64_t) (uintptr_t) &ts;
        }
        int r = sys_enter(b->ring_fd, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg,
                          sizeof arg);
        if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
            return r;
        }
    } else if (sqf & IORING_SQ_CQ_OVERFLOW) {
        (void) sys_enter(b->ring_fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0);
    }
    n += cq_reap(b, &seen, max);
    pthread_mutex_lock(&b->lock);
    (void) sq_flush(b);
    pthread_mutex_unlock(&b->lock);
    return n;
}

static int
ur_poll(blz__backend *b, int64_t timeout_ns)
{
    return poll_upto(b, timeout_ns, BLZ__POLL_MAX_EVENTS);
}

/* ---- setup and teardown ----------------------------------------------------- */

static void
unmap_rings(blz__backend *b)
{
    if (b->sqes) {
        munmap(b->sqes, b->sqes_sz);
    }
    if (b->cq_ring && b->cq_ring != b->sq_ring) {
        munmap(b->cq_ring, b->cq_ring_sz);
    }
    if (b->sq_ring) {
        munmap(b->sq_ring, b->sq_ring_sz);
    }
}

static int
map_rings(blz__backend *b, const struct io_uring_params *p)
{
    b->sq_ring_sz = p->sq_off.array + p->sq_entries * sizeof(unsigned);
    b->cq_ring_sz = p->cq_off.cqes + p->cq_entries * sizeof(struct io_uring_cqe);
    if (p->features & IORING_FEAT_SINGLE_MMAP) {
        if (b->cq_ring_sz > b->sq_ring_sz) {
            b->sq_ring_sz = b->cq_ring_sz;
        }
        b->cq_ring_sz = b->sq_ring_sz;
    }
    void *sq = mmap(NULL, b->sq_ring_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                    b->ring_fd, IORING_OFF_SQ_RING);
    if (sq == MAP_FAILED) {
        return -errno;
    }
    b->sq_ring = sq;
    void *cq = sq;
    if (!(p->features & IORING_FEAT_SINGLE_MMAP)) {
        cq = mmap(NULL, b->cq_ring_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                  b->ring_fd, IORING_OFF_CQ_RING);
        if (cq == MAP_FAILED) {
            return -errno;
        }
    }
    b->cq_ring = cq;
    b->sqes_sz = p->sq_entries * sizeof(struct io_uring_sqe);
    void *sqes = mmap(NULL, b->sqes_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                      b->ring_fd, IORING_OFF_SQES);
    if (sqes == MAP_FAILED) {
        return -errno;
    }
    b->sqes = sqes;

    char *s = sq;
    char *c = cq;
    b->sq_khead = (_Atomic unsigned *) (void *) (s + p->sq_off.head);
    b->sq_ktail = (_Atomic unsigned *) (void *) (s + p->sq_off.tail);
    b->sq_kflags = (_Atomic unsigned *) (void *) (s + p->sq_off.flags);
    b->sq_mask = *(unsigned *) (void *) (s + p->sq_off.ring_mask);
    b->sq_entries = *(unsigned *) (void *) (s + p->sq_off.ring_entries);
    b->sq_array = (unsigned *) (void *) (s + p->sq_off.array);
    b->cq_khead = (_Atomic unsigned *) (void *) (c + p->cq_off.head);
    b->cq_ktail = (_Atomic unsigned *) (void *) (c + p->cq_off.tail);
    b->cq_mask = *(unsigned *) (void *) (c + p->cq_off.ring_mask);
    b->cqes = (struct io_uring_cqe *) (void *) (c + p->cq_off.cqes);
    for (unsigned i = 0; i < b->sq_entries; i++) {
        b->sq_array[i] = i; /* SQE i always sits in slot i */
    }
    b->sq_tail = blz__load(b->sq_ktail, RELAXED);
    return 0;
}

/* IORING_REGISTER_PROBE: which ops this kernel has. */
static int
probe_ops(blz__backend *b)
{
    size_t sz = sizeof(struct io_uring_probe) + 256 * sizeof(struct io_uring_probe_op);
    struct io_uring_probe *probe = blz__calloc(1, sz);
    if (!probe) {
        return -ENOMEM;
    }
    int rc = sys_register(b->ring_fd, IORING_REGISTER_PROBE, probe, 256);
    if (rc < 0) {
        blz__free(probe);
        return rc;
    }
#define HAS(op) ((op) <= probe->last_op && (probe->ops[(op)].flags & IO_URING_OP_SUPPORTED))
    if (!HAS(IORING_OP_NOP) || !HAS(IORING_OP_POLL_ADD) || !HAS(IORING_OP_ASYNC_CANCEL)) {
        blz__free(probe);
        return -EOPNOTSUPP;
    }
    b->supported[BLZ__OP_NOP] = 1;
    b->supported[BLZ__OP_READ_AT] = HAS(IORING_OP_READ);
    b->supported[BLZ__OP_WRITE_AT] = HAS(IORING_OP_WRITE);
    b->supported[BLZ__OP_RECV] = HAS(IORING_OP_RECV);
    b->supported[BLZ__OP_SEND] = HAS(IORING_OP_SEND);
    b->supported[BLZ__OP_ACCEPT] = HAS(IORING_OP_ACCEPT);
    b->supported[BLZ__OP_CONNECT] = HAS(IORING_OP_CONNECT);
    b->supported[BLZ__OP_FSYNC] = HAS(IORING_OP_FSYNC);
    b->supported[BLZ__OP_OPENAT] = HAS(IORING_OP_OPENAT);
    b->supported[BLZ__OP_STATX] = HAS(IORING_OP_STATX);
    b->supported[BLZ__OP_CLOSE] = HAS(IORING_OP_CLOSE);
#undef HAS
    blz__free(probe);
    return 0;
}

/* Arms the wake poll and checks that multishot poll really works here: a
 * write must produce a CQE that says more will follow. */
static int
selftest_multishot(blz__backend *b)
{
    pthread_mutex_lock(&b->lock);
    int rc = arm_wake_locked(b);
    if (rc == 0) {
        rc = sq_flush(b);
    }
    pthread_mutex_unlock(&b->lock);
    if (rc < 0) {
        return rc;
    }
    uint64_t one = 1;
    if (write(b->wakefd, &one, sizeof one) != (ssize_t) sizeof one) {
        return -errno;
    }
    struct __kernel_timespec ts = {.tv_sec = 1, .tv_nsec = 0};
    struct io_uring_getevents_arg arg = {0};
    arg.sigmask_sz = _NSIG / 8;
    arg.ts = (uint64_t) (uintptr_t) &ts;
    for (int tries = 0; tries < 4; tries++) {
        unsigned head = blz__load(b->cq_khead, RELAXED);
        unsigned tail = blz__load(b->cq_ktail, ACQUIRE);
        if (head != tail) {
            const struct io_uring_cqe *cqe = &b->cqes[head & b->cq_mask];
            int ok = cqe->user_data == TAG_WAKE && cqe->res > 0 && (cqe->flags & IORING_CQE_F_MORE);
            blz__store(b->cq_khead, head + 1, RELEASE);
            uint64_t v;
            ssize_t r = read(b->wakefd, &v, sizeof v);
            (void) r;
            return ok ? 0 : -EOPNOTSUPP;
        }
        int r = sys_enter(b->ring_fd, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg,
                          sizeof arg);
        if (r < 0 && r != -EINTR && r != -ETIME) {
            return r;
        }
    }
    return -ETIMEDOUT;
}

static void
ur_teardown(blz__backend *b)
{
    unmap_rings(b);
    if (b->ring_fd >= 0) {
        close(b->ring_fd);
    }
    if (b->wakefd >= 0) {
        close(b->wakefd);
    }
    pthread_mutex_destroy(&b->lock);
    blz__free(b);
}

static int
ur_init(blz__backend **out)
{
    blz__backend *b = blz__calloc(1, sizeof *b);
    if (!b) {
        return -ENOMEM;
    }
    b->ring_fd = -1;
    b->wakefd = -1;
    atomic_init(&b->wake_pending, 0u);
    atomic_init(&b->published, 0u);
    b->inflight.be_next = b->inflight.be_prev = &b->inflight;
    if (pthread_mutex_init(&b->lock, NULL) != 0) {
        blz__free(b);
        return -ENOMEM;
    }

    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    /* Cooperative task running: the kernel does not interrupt a running
     * worker to post a completion for a request it submitted, but waits for
     * its next syscall (see flush_deferred in io/backend.h). A readiness edge
     * then costs no inter-processor interrupt and no extra kernel entry: in an
     * echo server pinned to one core this halves the CPU per message. Kernels
     * before 5.19 refuse the flags; the ring then works as before. */
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_COOP_TASKRUN |
              IORING_SETUP_TASKRUN_FLAG;
    p.cq_entries = CQ_ENTRIES;
    int fd = sys_setup(SQ_ENTRIES, &p);
    if (fd == -EINVAL) {
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        p.cq_entries = CQ_ENTRIES;
        fd = sys_setup(SQ_ENTRIES, &p);
    }
    if (fd < 0) {
        ur_teardown(b);
        return fd; /* ENOSYS (no io_uring), EPERM (seccomp, sysctl), ENOMEM (memlock) */
    }
    b->ring_fd = fd;
    b->features = p.features;
    b->coop_taskrun = (p.flags & IORING_SETUP_TASKRUN_FLAG) != 0;
    unsigned need = IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG | IORING_FEAT_POLL_32BITS;
    int rc = (p.features & need) == need ? 0 : -EOPNOTSUPP;
    if (rc == 0) {
        rc = map_rings(b, &p);
    }
    if (rc == 0) {
        rc = probe_ops(b);
    }
    if (rc == 0) {
        b->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        rc = b->wakefd < 0 ? -errno : 0;
    }
    if (rc == 0) {
        rc = selftest_multishot(b);
    }
    if (rc < 0) {
        ur_teardown(b);
        return rc;
    }
    *out = b;
    return 0;
}

static void
ur_fini(blz__backend *b)
{
    if (!b) {
        return;
    }
    /* Ops in flight own kernel-held buffers: cancel them all and wait for
     * their completions (bounded: a stuck op leaks its memory rather than
     * freeing what the kernel may still write). Closes are left to finish. */
    pthread_mutex_lock(&b->lock);
    for (blz__io_op *op = b->inflight.be_next; op != &b->inflight; op = op->be_next) {
        if (op->kind == BLZ__OP_CLOSE) {
            continue;
        }
        struct io_uring_sqe *sqe = sq_get(b);
        if (sqe) {
            prep_remove(sqe, IORING_OP_ASYNC_CANCEL, (uint64_t) (uintptr_t) op | TAG_OP);
        }
    }
    (void) sq_flush(b);
    pthread_mutex_unlock(&b->lock);
    for (int i = 0; i < 100; i++) {
        pthread_mutex_lock(&b->lock);
        int empty = b->inflight.be_next == &b->inflight;
        pthread_mutex_unlock(&b->lock);
        if (empty) {
            break;
        }
        (void) poll_upto(b, 50 * 1000000LL, UINT_MAX); /* no runtime left to overflow */
    }
    ur_teardown(b);
}

const blz__backend_ops blz__uring_backend = {
    .version = BLZ__BACKEND_VERSION,
    .name = "io_uring",
    .init = ur_init,
    .arm = ur_arm,
    .disarm = ur_disarm,
    .submit = ur_submit,
    .cancel = ur_cancel,
    .poll = ur_poll,
    .wake = ur_wake,
    .flush_deferred = ur_flush_deferred,
    .supports = ur_supports,
    .fini = ur_fini,
};
