/*
 * The io_uring backend, on raw syscalls and <linux/io_uring.h> (no liburing).
 *
 * Readiness: each source gets one multishot POLL_ADD (POLLIN|POLLOUT|
 * POLLRDHUP; POLLOUT alone for a stream in completion receive, see
 * uring_rx.c) whose user_data is the source pointer tagged TAG_POLL; every
 * CQE it posts is dispatched like an epoll edge. Wake-ups: an eventfd with
 * its own multishot poll (user_data TAG_WAKE). Completion ops (read/write at
 * offset, recv, send, accept, connect, fsync, openat, statx, close) carry the
 * op pointer tagged TAG_OP; which of them this kernel has is probed at init
 * (IORING_REGISTER_PROBE), and `supports` says no to the others.
 *
 * Two kinds of ring. The usual one is shared by every worker, set up with
 * cooperative task running. A runtime with one worker gets a single-issuer
 * ring instead (single_init, ur_own): SINGLE_ISSUER | DEFER_TASKRUN, which
 * only that worker may enter, and whose completions the kernel runs in
 * batches inside its io_uring_enter; with ring_per_worker, each worker
 * gets one (the driver makes one backend per worker).
 *
 * Invariants:
 * - SQ: one producer at a time, under `lock`; every SQE is zeroed, filled, and
 *   published by a release store of the SQ tail (pairs with the kernel's
 *   acquire of it). Arm, disarm, submit and cancel flush at once, so changes
 *   made by other threads take effect while the parker sleeps; on a
 *   single-issuer ring another thread only publishes and wakes the owner,
 *   whose next poll submits.
 * - CQ: one consumer, the parking thread; the CQ tail is read with acquire
 *   (pairs with the kernel's release), each CQE is copied out before the head
 *   is released back to the kernel (release store).
 * - A source's first arm and the cancels of its poll or receive are never
 *   dropped: when the SQ has no room (and a thread that may not enter a
 *   single-issuer ring cannot make any), the source goes on `owed` and the
 *   next poll queues them. The poll's or receive's hold keeps the source
 *   allocated meanwhile; its end, or a disarm before an owed arm went out,
 *   takes the source off the list before dropping the hold.
 * - The wake eventfd's poll is never left unarmed: when its end finds the SQ
 *   full, wake_armed stays 0 and the next poll arms it.
 * - A source's poll state (be_flags: ARMED, RELEASED) is guarded by `lock`.
 *   be_hold counts the requests that may still post a CQE naming the
 *   source: its poll while ARMED, and its receive (uring_rx.c). A CQE
 *   without IORING_CQE_F_MORE ends the request and drops its count
 *   (release); a released source with no count left may be freed by the
 *   registry. Otherwise the poll is armed again (multishot polls end on
 *   overflow, cancellation at thread exit, and the like).
 * - An op in flight is on the `inflight` list (under `lock`) and its buffers
 *   (and path) belong to the kernel until its CQE; fini (or the owner's
 *   disown) cancels every such op but CLOSE, and waits for every CQE before
 *   the ring is closed. A CLOSE is never cancelled: cancelled before it ran,
 *   it would leave its descriptor open with nobody to close it.
 * - Feature floor: IORING_FEAT_NODROP, FEAT_EXT_ARG (timed waits) and
 *   FEAT_POLL_32BITS, the NOP/POLL_ADD/ASYNC_CANCEL ops, and
 *   multishot poll, checked by a live self-test at init. Anything less makes
 *   init fail, and the driver falls back to epoll. Completion receive and the
 *   single-issuer ring are extras: without them the backend works as before.
 */
#include "core/alloc.h"
#include "io/uring_int.h"

#include <errno.h>
#include <limits.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* ---- raw syscalls ---------------------------------------------------------- */

static int
sys_setup(unsigned entries, struct io_uring_params *p)
{
    long r = syscall(__NR_io_uring_setup, entries, p);
    return r < 0 ? -errno : (int) r;
}

int
blz__ur_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags, void *arg,
              size_t argsz)
{
    long r = syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, arg, argsz);
    return r < 0 ? -errno : (int) r;
}

int
blz__ur_register(int fd, unsigned opcode, void *arg, unsigned nr_args)
{
    long r = syscall(__NR_io_uring_register, fd, opcode, arg, nr_args);
    return r < 0 ? -errno : (int) r;
}

/* ---- SQ ------------------------------------------------------------------ */

static void ur_wake(blz__backend *b);

/* Submits every published SQE, entering with `enter_flags`. Lock held.
 * Returns 0 or -errno. */
static int
sq_submit(blz__backend *b, unsigned enter_flags)
{
    /* Pairs with the acquire in cq_reap: a source or op initialised before
     * its SQE is fully visible to whoever handles its CQE. */
    blz__fetch_add(&b->published, 1u, RELEASE);
    /* Release pairs with the kernel's acquire of the tail: SQE contents first. */
    blz__store(b->sq_ktail, b->sq_tail, RELEASE);
    if (b->single && !(b->owned && pthread_equal(b->owner, pthread_self()))) {
        /* Only the owner may enter: it submits at its next poll, which the
         * wake brings forward. */
        if (!blz__load(&b->disowned, RELAXED) && b->sq_tail != blz__load(b->sq_khead, ACQUIRE)) {
            ur_wake(b);
        }
        return 0;
    }
    for (int tries = 0; tries < 8; tries++) {
        unsigned pending = b->sq_tail - blz__load(b->sq_khead, ACQUIRE);
        if (pending == 0) {
            return 0;
        }
        int r = blz__ur_enter(b->ring_fd, pending, 0, enter_flags, NULL, 0);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
            return r;
        }
        if (r == -EBUSY || r == -EAGAIN) {
            /* CQ backlog on older kernels: let the kernel flush it, then retry. */
            (void) blz__ur_enter(b->ring_fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0);
        }
    }
    return -EBUSY;
}

int
blz__ur_sq_flush(blz__backend *b)
{
    return sq_submit(b, 0);
}

/* A zeroed SQE, or NULL when the SQ stays full. Lock held. */
struct io_uring_sqe *
blz__ur_sq_get(blz__backend *b)
{
    unsigned head = blz__load(b->sq_khead, ACQUIRE);
    if (b->sq_tail - head >= b->sq_entries) {
        (void) blz__ur_sq_flush(b);
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
    sqe->poll32_events = blz__ur_poll32(mask);
    sqe->user_data = user_data;
}

void
blz__ur_prep_cancel(struct io_uring_sqe *sqe, uint64_t target)
{
    sqe->opcode = IORING_OP_ASYNC_CANCEL; /* matches the request whose user_data is sqe->addr */
    sqe->fd = -1;
    sqe->addr = target;
    sqe->user_data = TAG_IGNORE;
}

/* src's multishot poll, its mask by whether its receive reports the read side. */
static void
prep_poll_src(struct io_uring_sqe *sqe, const blz__io_source *src)
{
    prep_poll_multi(sqe, src->fd, src->rx_on ? RX_POLL : POLL_MASK,
                    (uint64_t) (uintptr_t) src | TAG_POLL);
}

static uint32_t
owe_flag(uint64_t tag)
{
    return tag == TAG_POLL ? SRC_OWE_POLL_CANCEL : SRC_OWE_RECV_CANCEL;
}

/* Puts src on the owed list for `flag` (SRC_OWE_*) and wakes the poller
 * to pay it. Lock held. */
static void
owe_locked(blz__backend *b, blz__io_source *src, uint32_t flag)
{
    if (!(src->be_flags & SRC_OWED)) {
        src->be_owed = b->owed;
        b->owed = src;
    }
    src->be_flags |= flag;
    ur_wake(b); /* a single-issuer ring's flush has woken it already; a shared one's has not */
}

/* Clears the debt `flag` of src; takes src off the list when it owes
 * nothing more. Lock held. */
static void
owed_clear_locked(blz__backend *b, blz__io_source *src, uint32_t flag)
{
    if (!(src->be_flags & flag)) {
        return;
    }
    src->be_flags &= ~flag;
    if (src->be_flags & SRC_OWED) {
        return;
    }
    for (blz__io_source **p = &b->owed; *p; p = &(*p)->be_owed) {
        if (*p == src) {
            *p = src->be_owed;
            return;
        }
    }
}

void
blz__ur_cancel_src_locked(blz__backend *b, blz__io_source *src, uint64_t tag)
{
    struct io_uring_sqe *sqe = blz__ur_sq_get(b);
    if (sqe) {
        blz__ur_prep_cancel(sqe, (uint64_t) (uintptr_t) src | tag);
        return;
    }
    /* The poll or receive holds be_hold until its last CQE, which only the
     * cancel brings: src stays allocated while it is on the list. */
    owe_locked(b, src, owe_flag(tag));
}

void
blz__ur_owed_end_locked(blz__backend *b, blz__io_source *src, uint64_t tag)
{
    owed_clear_locked(b, src, owe_flag(tag)); /* off the list before its hold goes */
}

/* Queues the requests owed, as far as the SQ has room. Lock held; the
 * caller flushes. On the poller's thread, which may enter the ring: each
 * time the SQ fills, blz__ur_sq_get submits it and makes room. */
static void
pay_owed_locked(blz__backend *b)
{
    while (b->owed) {
        blz__io_source *src = b->owed;
        struct io_uring_sqe *sqe = blz__ur_sq_get(b);
        if (!sqe) {
            return; /* the kernel takes nothing now: the next poll tries again */
        }
        uint32_t flag;
        if (src->be_flags & SRC_OWE_ARM) {
            flag = SRC_OWE_ARM;
            prep_poll_src(sqe, src);
        } else {
            uint64_t tag = (src->be_flags & SRC_OWE_POLL_CANCEL) ? TAG_POLL : TAG_RECV;
            flag = owe_flag(tag);
            blz__ur_prep_cancel(sqe, (uint64_t) (uintptr_t) src | tag);
        }
        owed_clear_locked(b, src, flag); /* src is the head: no search */
    }
}

/* Arms the multishot poll of src, which has none: queues its SQE, or when
 * the SQ has no room (on a single-issuer ring only its owner can make any)
 * owes it to the next poll. Armed either way from now on, hold included.
 * Lock held; the caller flushes. */
static void
arm_locked(blz__backend *b, blz__io_source *src)
{
    src->be_flags |= SRC_ARMED;
    blz__fetch_add(&src->be_hold, 1u, RELAXED); /* read by the sweep, at a later park */
    struct io_uring_sqe *sqe = blz__ur_sq_get(b);
    if (sqe) {
        prep_poll_src(sqe, src);
    } else {
        owe_locked(b, src, SRC_OWE_ARM);
    }
}

static int
arm_wake_locked(blz__backend *b)
{
    struct io_uring_sqe *sqe = blz__ur_sq_get(b);
    if (!sqe) {
        return -EBUSY;
    }
    prep_poll_multi(sqe, b->wakefd, POLLIN, TAG_WAKE);
    b->wake_armed = 1;
    return 0;
}

static int
ur_arm(blz__backend *b, blz__io_source *src)
{
    pthread_mutex_lock(&b->lock);
    if (blz__load(&b->disowned, RELAXED)) {
        pthread_mutex_unlock(&b->lock);
        return -ESHUTDOWN; /* its thread has left: nothing runs its I/O any more */
    }
    src->be_flags = 0;
    blz__ur_rx_open_locked(b, src); /* before the poll: its mask depends on it */
    arm_locked(b, src);
    /* A flush that fails leaves the SQE published: the parker's next flush
     * submits it, so the source is armed either way. */
    (void) blz__ur_sq_flush(b);
    pthread_mutex_unlock(&b->lock);
    return 0;
}

static void
ur_disarm(blz__backend *b, blz__io_source *src)
{
    pthread_mutex_lock(&b->lock);
    src->be_flags |= SRC_RELEASED;
    if (src->be_flags & SRC_OWE_ARM) {
        /* Its poll never reached the kernel: no cancel, and no CQE to drop
         * the hold. The source is not retired yet, so no sweep frees it
         * while this runs. */
        owed_clear_locked(b, src, SRC_OWE_ARM);
        src->be_flags &= ~SRC_ARMED;
        blz__fetch_sub(&src->be_hold, 1u, RELEASE);
    }
    if (src->be_flags & SRC_ARMED) {
        /* ASYNC_CANCEL, not POLL_REMOVE: POLL_REMOVE gives up with
         * -EALREADY (cancelling nothing) when the poll's task work is in
         * flight at that moment, and the poll would then hold the file (so
         * the socket never closes) for the life of the ring. Cancel marks
         * the poll cancelled and it completes either way. be_hold counts
         * the poll until its last CQE (its -ECANCELED). */
        blz__ur_cancel_src_locked(b, src, TAG_POLL);
    }
    uint16_t held = blz__ur_rx_close_locked(b, src);
    /* The poll and the receive hold the socket's file until their cancels
     * finish, and the caller closes the descriptor next: until then the
     * port stays bound and a TCP peer sees no end of stream. A
     * single-issuer ring finishes that work only when its owner asks
     * (GETEVENTS runs it), so the owner asks now rather than at its next
     * park, which may be far off; a close from another thread waits for
     * that park, which the flush's wake brings forward. */
    (void) sq_submit(b, b->single ? IORING_ENTER_GETEVENTS : 0);
    pthread_mutex_unlock(&b->lock);
    blz__ur_rx_give(b, held);
}

static void
ur_flush_deferred(blz__backend *b)
{
    /* The kernel sets SQ_TASKRUN while completions wait for some thread to
     * enter it; the flag is ring-wide, so the work may be another thread's and
     * this entry a wasted one: at most one per maintenance tick. Any syscall
     * runs the calling thread's pending work on its way out. */
    if (b->coop_taskrun && !b->single && (blz__load(b->sq_kflags, RELAXED) & IORING_SQ_TASKRUN)) {
        (void) blz__ur_enter(b->ring_fd, 0, 0, 0, NULL, 0);
    }
}

static int
ur_supports(const blz__backend *b, int kind)
{
    return kind >= 0 && kind < BLZ__OP_KIND_COUNT && b->supported[kind] &&
           !blz__load(&b->disowned, RELAXED);
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
    struct io_uring_sqe *sqe = blz__ur_sq_get(b);
    if (!sqe) {
        pthread_mutex_unlock(&b->lock);
        return -EBUSY;
    }
    (void) prep_op(sqe, op);
    inflight_link(b, op);
    /* Once published the op is the kernel's: a failed flush is retried by the
     * parker, and the done call still comes. */
    (void) blz__ur_sq_flush(b);
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
        struct io_uring_sqe *sqe = blz__ur_sq_get(b);
        if (sqe) {
            blz__ur_prep_cancel(sqe, (uint64_t) (uintptr_t) op | TAG_OP);
            rc = blz__ur_sq_flush(b);
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
    blz__ur_owed_end_locked(b, src, TAG_POLL);
    bool ended = (src->be_flags & SRC_RELEASED) || b->draining;
    /* A released source may be freed from here on, by the sweep of any
     * ring's park, so its flags were read first; one not released (that
     * takes our lock) is not freed meanwhile. Release pairs with the
     * sweep's acquire. */
    blz__fetch_sub(&src->be_hold, 1u, RELEASE);
    if (ended) {
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
        return;
    }
    arm_locked(b, src); /* flushed at the end of this poll */
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
            if (!b->draining) {
                (void) arm_wake_locked(b);
            }
            pthread_mutex_unlock(&b->lock);
        }
        return;
    }
    if (tag == TAG_POLL) {
        /* user_data carries the pointer we put in it. */
        blz__io_source *src =
            (blz__io_source *) (uintptr_t) (ud & ~TAG_MASK); // NOLINT(performance-no-int-to-ptr)
        unsigned bits = res > 0 ? blz__rd_from_poll((uint32_t) res) : 0;
        if (src->rx_on) {
            bits &= BLZ__RD_WRITE | BLZ__RD_WCLOSED; /* its receive reports the read side */
        }
        if (bits) {
            blz__io_source_ready(src, bits);
            (*handled)++;
        }
        if (!(flags & IORING_CQE_F_MORE)) {
            pthread_mutex_lock(&b->lock);
            poll_ended(b, src, res);
            pthread_mutex_unlock(&b->lock);
        }
        return;
    }
    if (tag == TAG_RECV) {
        blz__ur_rx_cqe(
            b,
            (blz__io_source *) (uintptr_t) (ud & ~TAG_MASK), // NOLINT(performance-no-int-to-ptr)
            res, flags, handled);
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
         * came before their submission, and with the release of the buffer
         * ring's tail in rx_give, which came before the kernel filled a
         * buffer it gave back (the kernel orders both for real; these make
         * the order visible to the memory model and ThreadSanitizer). */
        (void) blz__load(&b->published, ACQUIRE);
        if (b->rx_on) {
            (void) blz__load((_Atomic uint16_t *) (void *) &b->rx_ring->tail, ACQUIRE);
        }
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
    if (b->rx_on) {
        blz__ur_rx_refill(b); /* the receives just seen took buffers */
    }
    return handled;
}

/* ur_poll, reporting at most `max` CQEs. */
static int
poll_upto(blz__backend *b, int64_t timeout_ns, unsigned max)
{
    unsigned seen = 0;
    /* A single-issuer ring posts completions only inside the owner's
     * io_uring_enter, and Linux runs at most a batch of them (20 on 6.18)
     * per enter: enter while it says more wait, up to `max`. */
    if (b->single && (blz__load(b->sq_kflags, RELAXED) & IORING_SQ_TASKRUN)) {
        (void) blz__ur_enter(b->ring_fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0);
    }
    int n = cq_reap(b, &seen, max);
    for (int i = 0;
         b->single && i < 4 && seen < max && (blz__load(b->sq_kflags, RELAXED) & IORING_SQ_TASKRUN);
         i++) {
        (void) blz__ur_enter(b->ring_fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0);
        n += cq_reap(b, &seen, max);
    }
    /* Publish what reaping queued (re-arms), then the cancels other threads
     * owe for want of room, and learn of a CQ overflow. */
    pthread_mutex_lock(&b->lock);
    (void) blz__ur_sq_flush(b);
    if (b->owed) {
        pay_owed_locked(b);
        (void) blz__ur_sq_flush(b);
    }
    if (!b->wake_armed && !b->draining && arm_wake_locked(b) == 0) {
        /* Its multishot poll ended when the SQ had no room to arm it again
         * (handle_cqe): until it is back, a wake would write the eventfd
         * with nobody looking, and wake_pending would then skip every later
         * write. Armed again here, it sees a write made meanwhile at once. */
        (void) blz__ur_sq_flush(b);
    }
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
        int r = blz__ur_enter(b->ring_fd, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg,
                              sizeof arg);
        if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
            return r;
        }
    } else if (sqf & IORING_SQ_CQ_OVERFLOW) {
        (void) blz__ur_enter(b->ring_fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0);
    }
    n += cq_reap(b, &seen, max);
    pthread_mutex_lock(&b->lock);
    (void) blz__ur_sq_flush(b);
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
    int rc = blz__ur_register(b->ring_fd, IORING_REGISTER_PROBE, probe, 256);
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

int
blz__ur_next_cqe_setup(blz__backend *b, struct io_uring_cqe *out)
{
    struct __kernel_timespec ts = {.tv_sec = 1, .tv_nsec = 0};
    struct io_uring_getevents_arg arg = {0};
    arg.sigmask_sz = _NSIG / 8;
    arg.ts = (uint64_t) (uintptr_t) &ts;
    for (int tries = 0; tries < 4; tries++) {
        unsigned head = blz__load(b->cq_khead, RELAXED);
        unsigned tail = blz__load(b->cq_ktail, ACQUIRE);
        if (head != tail) {
            *out = b->cqes[head & b->cq_mask];
            blz__store(b->cq_khead, head + 1, RELEASE);
            return 0;
        }
        int r = blz__ur_enter(b->ring_fd, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg,
                              sizeof arg);
        if (r < 0 && r != -EINTR && r != -ETIME) {
            return r;
        }
    }
    return -ETIMEDOUT;
}

/* Arms the wake poll and checks that multishot poll really works here: a
 * write must produce a CQE that says more will follow. */
static int
selftest_multishot(blz__backend *b)
{
    pthread_mutex_lock(&b->lock);
    int rc = arm_wake_locked(b);
    if (rc == 0) {
        rc = blz__ur_sq_flush(b);
    }
    pthread_mutex_unlock(&b->lock);
    if (rc < 0) {
        return rc;
    }
    uint64_t one = 1;
    if (write(b->wakefd, &one, sizeof one) != (ssize_t) sizeof one) {
        return -errno;
    }
    struct io_uring_cqe cqe;
    rc = blz__ur_next_cqe_setup(b, &cqe);
    if (rc < 0) {
        return rc;
    }
    uint64_t v;
    ssize_t r = read(b->wakefd, &v, sizeof v);
    (void) r;
    return cqe.user_data == TAG_WAKE && cqe.res > 0 && (cqe.flags & IORING_CQE_F_MORE)
               ? 0
               : -EOPNOTSUPP;
}


static void
ur_teardown(blz__backend *b)
{
    unmap_rings(b);
    if (b->ring_fd >= 0) {
        close(b->ring_fd); /* the kernel lets go of the lent buffers with the ring */
    }
    blz__ur_rx_unmap(b);
    if (b->wakefd >= 0) {
        close(b->wakefd);
    }
    pthread_mutex_destroy(&b->lock);
    blz__free(b);
}

static blz__backend *
backend_alloc(void)
{
    blz__backend *b = blz__calloc(1, sizeof *b);
    if (!b) {
        return NULL;
    }
    b->ring_fd = -1;
    b->wakefd = -1;
    atomic_init(&b->wake_pending, 0u);
    atomic_init(&b->published, 0u);
    atomic_init(&b->rx_armed, 0u);
    atomic_init(&b->rx_filled, 0u);
    atomic_init(&b->rx_given, 0u);
    atomic_init(&b->disowned, 0u);
    b->inflight.be_next = b->inflight.be_prev = &b->inflight;
    if (pthread_mutex_init(&b->lock, NULL) != 0) {
        blz__free(b);
        return NULL;
    }
    return b;
}

/* Sets the ring up (CQSIZE | CLAMP | `flags`; the kernel's answer in *p),
 * maps it and makes the wake eventfd. 0 or -errno; on failure the caller
 * tears b down (ring_fd stays -1 when the setup itself failed). */
static int
ring_open(blz__backend *b, unsigned flags, struct io_uring_params *p)
{
    memset(p, 0, sizeof *p);
    p->flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | flags;
    p->cq_entries = CQ_ENTRIES;
    int fd = sys_setup(SQ_ENTRIES, p);
    if (fd < 0) {
        return fd;
    }
    b->ring_fd = fd;
    b->features = p->features;
    int rc = map_rings(b, p);
    if (rc == 0) {
        b->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        rc = b->wakefd < 0 ? -errno : 0;
    }
    return rc;
}

/*
 * The ring of a runtime with one thread that parks (io/backend.h, own):
 * SINGLE_ISSUER | DEFER_TASKRUN, created disabled and enabled by the owner.
 * The kernel then runs completions (and a multishot receive's copying) in a
 * batch inside the owner's io_uring_enter instead of on its way back from
 * every system call (cooperative task running), which cuts the server CPU
 * per message of a pinned echo server (BENCHMARKS.md). It takes over what a
 * ring of the usual kind, probed and self-tested, found: the ops in
 * `supported`, and whether completion receive works (`rx_bufs` buffers, or
 * 0).
 */
static int
single_init(const unsigned char *supported, unsigned rx_bufs, blz__backend **out)
{
    blz__backend *b = backend_alloc();
    if (!b) {
        return -ENOMEM;
    }
    struct io_uring_params p;
    /* Before 6.1 the setup refuses DEFER_TASKRUN. */
    int rc = ring_open(b,
                       IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                           IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_R_DISABLED,
                       &p);
    b->single = true;
    memcpy(b->supported, supported, sizeof b->supported);
    if (rc == 0) {
        pthread_mutex_lock(&b->lock);
        rc = arm_wake_locked(b); /* submitted by the owner's first flush */
        pthread_mutex_unlock(&b->lock);
    }
    if (rc == 0 && rx_bufs) {
        b->rx_bufs = rx_bufs;
        b->rx_on = blz__ur_rx_register(b) == 0;
    }
    if (rc < 0) {
        ur_teardown(b);
        return rc;
    }
    *out = b;
    return 0;
}

static void ur_fini(blz__backend *b);

/* What made the process's first single-issuer ring: later ones skip the
 * ordinary ring's probe and self-tests (the kernel does not change under a
 * process), halving a one-worker runtime's creation. Only successes are
 * kept. Under single_lock. */
static pthread_mutex_t single_lock = PTHREAD_MUTEX_INITIALIZER;
static bool single_known;                                  /* a single ring was made */
static unsigned char single_supported[BLZ__OP_KIND_COUNT]; /* its ops */
static bool single_rx;                                     /* completion receive worked */

/* A single-issuer ring from what an earlier one was made from; -EAGAIN when
 * nothing is known yet (or not about completion receive, which is wanted). */
static int
single_from_cache(unsigned recv_buffers, blz__backend **out)
{
    unsigned char supported[BLZ__OP_KIND_COUNT];
    pthread_mutex_lock(&single_lock);
    bool usable = single_known && (recv_buffers == 0 || single_rx);
    memcpy(supported, single_supported, sizeof supported);
    pthread_mutex_unlock(&single_lock);
    return usable ? single_init(supported, recv_buffers, out) : -EAGAIN;
}

static int
ur_init(blz__backend **out, unsigned recv_buffers, bool single)
{
    if (single && single_from_cache(recv_buffers, out) == 0) {
        return 0;
    }
    blz__backend *b = backend_alloc();
    if (!b) {
        return -ENOMEM;
    }

    struct io_uring_params p;
    /* Cooperative task running: the kernel does not interrupt a running
     * worker to post a completion for a request it submitted, but waits for
     * its next syscall (see flush_deferred in io/backend.h). A readiness edge
     * then costs no inter-processor interrupt and no extra kernel entry: in an
     * echo server pinned to one core this halves the CPU per message. Kernels
     * before 5.19 refuse the flags; the ring then works as before. ENOSYS (no
     * io_uring), EPERM (seccomp, sysctl), ENOMEM (memlock): no ring at all. */
    int rc = ring_open(b, IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, &p);
    if (rc == -EINVAL && b->ring_fd < 0) {
        rc = ring_open(b, 0, &p);
    }
    b->coop_taskrun = (p.flags & IORING_SETUP_TASKRUN_FLAG) != 0;
    unsigned need = IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG | IORING_FEAT_POLL_32BITS;
    if (rc == 0 && (p.features & need) != need) {
        rc = -EOPNOTSUPP;
    }
    if (rc == 0) {
        rc = probe_ops(b);
    }
    if (rc == 0) {
        rc = selftest_multishot(b);
    }
    if (rc < 0) {
        ur_teardown(b);
        return rc;
    }
    /* Completion receive only for a single-issuer ring (set up and
     * self-tested here, on the ordinary ring, then made again below). On a
     * shared ring a stream's receive runs as task work of whichever worker
     * armed it while another may read it: the data crosses cores twice, and
     * two workers measured 7 % dearer at 16 KiB and 2 % at 64 B per message
     * than readiness on the same ring, with a worse p99 (BENCHMARKS.md). */
    b->rx_bufs = single ? recv_buffers : 0;
    blz__ur_rx_setup(b);
    blz__backend *s1;
    if (single && single_init(b->supported, b->rx_on ? b->rx_bufs : 0, &s1) == 0) {
        pthread_mutex_lock(&single_lock);
        single_known = true;
        memcpy(single_supported, b->supported, sizeof single_supported);
        single_rx = single_rx || b->rx_on;
        pthread_mutex_unlock(&single_lock);
        ur_fini(b);
        b = s1;
    }
    *out = b;
    return 0;
}

/* Ends every request and waits for the ends, re-arming nothing: the ring
 * is about to close. Parking thread (the owner, for a single-issuer ring). */
static void
drain(blz__backend *b)
{
    /* Ops in flight own kernel-held buffers: cancel them all and wait for
     * their completions (bounded: a stuck op leaks its memory rather than
     * freeing what the kernel may still write). Closes are left to finish. */
    pthread_mutex_lock(&b->lock);
    b->draining = true;
    for (blz__io_op *op = b->inflight.be_next; op != &b->inflight; op = op->be_next) {
        if (op->kind == BLZ__OP_CLOSE) {
            continue;
        }
        struct io_uring_sqe *sqe = blz__ur_sq_get(b);
        if (sqe) {
            blz__ur_prep_cancel(sqe, (uint64_t) (uintptr_t) op | TAG_OP);
        }
    }
    (void) blz__ur_sq_flush(b);
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
    /* Receives still armed (streams never closed, or closed but not yet
     * ended) write into the lent buffers: end them all before the buffers
     * go. Ops are all done by now, so cancelling every request is safe. */
    for (int i = 0; i < 100 && blz__load(&b->rx_armed, RELAXED) > 0; i++) {
        if (i % 20 == 0) {
            pthread_mutex_lock(&b->lock);
            struct io_uring_sqe *sqe = blz__ur_sq_get(b);
            if (sqe) {
                blz__ur_prep_cancel(sqe, 0);
                sqe->cancel_flags = IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL;
                (void) blz__ur_sq_flush(b);
            }
            pthread_mutex_unlock(&b->lock);
        }
        (void) poll_upto(b, 50 * 1000000LL, UINT_MAX);
    }
    if (blz__load(&b->rx_armed, RELAXED) > 0) {
        b->rx_mem = NULL; /* a receive would not end: leak its buffers rather than reuse them */
    }
}

static void
ur_own(blz__backend *b)
{
    if (!b->single) {
        return;
    }
    pthread_mutex_lock(&b->lock);
    if (blz__ur_register(b->ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) == 0) {
        b->owner = pthread_self();
        b->owned = true;
    }
    (void) blz__ur_sq_flush(b); /* what others prepared meanwhile, the wake's poll first */
    pthread_mutex_unlock(&b->lock);
}

static void
ur_disown(blz__backend *b)
{
    if (!b->single || !b->owned) {
        return;
    }
    drain(b);
    pthread_mutex_lock(&b->lock);
    b->owned = false;
    blz__store(&b->disowned, 1u, RELAXED);
    pthread_mutex_unlock(&b->lock);
}

static void
ur_fini(blz__backend *b)
{
    if (!b) {
        return;
    }
    if (!b->single) {
        drain(b);
    } else if (b->owned) {
        /* Only the owner may wait for completions, and it did not drain:
         * receives may still write into the lent buffers. */
        b->rx_mem = NULL;
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
    .rx_take = blz__ur_rx_take,
    .rx_arm = blz__ur_rx_arm,
    .rx_start = blz__ur_rx_start,
    .rx_counts = blz__ur_rx_counts,
    .own = ur_own,
    .disown = ur_disown,
    .supports = ur_supports,
    .fini = ur_fini,
};
