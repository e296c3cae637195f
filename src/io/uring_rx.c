/*
 * Completion receive on io_uring: the accepted TCP streams of a backend with
 * b->rx_on read from buffers the kernel filled. One group of rx_bufs buffers
 * of RX_BUF_SIZE is lent to the kernel through a buffer ring; each stream
 * has one multishot RECV (user_data: the source tagged TAG_RECV) that takes
 * a buffer per completion, and its poll asks only for POLLOUT. A read copies
 * out of the stream's buffers (no system call) and gives the ones it emptied
 * back.
 *
 * Invariants:
 * - A buffer belongs to the kernel while its id sits in the ring, then to
 *   the stream whose completion named it (queued in order through rx_next,
 *   under the source's lock) until a read emptied it or the stream closed;
 *   then it goes back (rx_lock: any thread) to the spare stack, from which
 *   the ring is kept at rx_ring_target buffers, the last used first (they
 *   are still in the cache). rx_filled - rx_given counts those out.
 * - rx_flags (source lock): ARMED while a receive is live or being armed;
 *   only a completion without IORING_CQE_F_MORE clears it, so a read that
 *   finds it clear (and nothing queued) may read the socket itself without
 *   racing the kernel, which is how a stream goes on when the pool ran dry
 *   (-ENOBUFS ends its receive) or its receive was paused. Only readers arm
 *   a receive again (blz__io_rx_read: when the socket is empty, or a read
 *   emptied the queue), never the completion handler, so one reader's data
 *   is never split between the kernel's receive and its own recv.
 * - A stream that holds RX_CAP buffers has its receive cancelled: one that
 *   does not read must not take the pool (a burst of completions the kernel
 *   already posted still lands; the socket holds the rest). Where the kernel
 *   takes a byte budget per receive (recent kernels; the self-test finds
 *   out), each arming may receive RX_BUDGET bytes and then ends by itself,
 *   which bounds the burst of a fast stream: a cancel lands late, after the
 *   runs of completions the kernel already started (a stream held 66
 *   buffers in the burst test, 253 once), a budget within them. The reader
 *   that empties the queue arms the next one, so a stream that is read goes
 *   on as before.
 * - be_hold counts the receive while ARMED (+1 at arm, -1 at its last CQE,
 *   the handler's last touch of the source).
 * - End of stream and errors end the receive for good (ENDED, rx_end) and
 *   are read after the data: an error once, then end of stream.
 */
#include "core/alloc.h"
#include "io/uring_int.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

/* Puts buffer `bid` back in the ring (not yet visible). rx_lock held. */
static void
rx_put_locked(blz__backend *b, uint16_t bid)
{
    struct io_uring_buf *e = &b->rx_ring->bufs[b->rx_tail & (b->rx_bufs - 1)];
    e->addr = (uint64_t) (uintptr_t) (b->rx_mem + (size_t) bid * RX_BUF_SIZE);
    e->len = RX_BUF_SIZE;
    e->bid = bid;
    b->rx_tail++;
}

/* A completion named a buffer. Parking thread (one at a time). */
static void
rx_count_filled(blz__backend *b)
{
    blz__store(&b->rx_filled, blz__load(&b->rx_filled, RELAXED) + 1, RELAXED);
}

/* How many buffers the ring lacks of rx_ring_target. Its count is lent
 * minus completions seen: the kernel may have taken more than the
 * completions seen so far, so the count is never below the truth, and the
 * ring never overfills (it has room for every buffer). */
static uint32_t
rx_ring_lacks(const blz__backend *b)
{
    uint32_t seen = blz__load(&b->rx_filled, RELAXED) - b->rx_filled_base;
    uint32_t held = blz__load(&b->rx_lent, RELAXED) - seen;
    uint32_t want = blz__load(&b->rx_ring_target, RELAXED);
    return held < want ? want - held : 0;
}

/* Moves what the ring lacks from the spare stack to it, the buffers given
 * back last first, and publishes them. rx_lock held. */
static void
rx_top_up_locked(blz__backend *b)
{
    uint32_t n = 0;
    for (uint32_t lacks = rx_ring_lacks(b); n < lacks && b->rx_spare_len > 0; n++) {
        rx_put_locked(b, b->rx_spare[--b->rx_spare_len]);
    }
    if (n > 0) {
        blz__store(&b->rx_lent, blz__load(&b->rx_lent, RELAXED) + n, RELAXED);
        /* Release pairs with the kernel's acquire of the tail: the entries
         * first (and a reader's last look at the buffer's old bytes). */
        blz__store((_Atomic uint16_t *) (void *) &b->rx_ring->tail, b->rx_tail, RELEASE);
    }
}

/* Gives back a chain of buffers linked through rx_next (ending at RX_NONE). */
void
blz__ur_rx_give(blz__backend *b, uint16_t chain)
{
    if (chain == RX_NONE) {
        return;
    }
    uint32_t n = 0;
    blz__spin_lock(&b->rx_lock);
    while (chain != RX_NONE) {
        b->rx_spare[b->rx_spare_len++] = chain;
        chain = b->rx_next[chain];
        n++;
    }
    /* Release: whoever sees this give also sees the fill before it. */
    blz__store(&b->rx_given, blz__load(&b->rx_given, RELAXED) + n, RELEASE);
    rx_top_up_locked(b);
    blz__spin_unlock(&b->rx_lock);
}

void
blz__ur_rx_refill(blz__backend *b)
{
    if (rx_ring_lacks(b) == 0) {
        return; /* full enough; no lock */
    }
    blz__spin_lock(&b->rx_lock);
    rx_top_up_locked(b);
    blz__spin_unlock(&b->rx_lock);
}

/* Whether the kernel honours a multishot receive's byte budget: 0 not known
 * yet, 1 yes, -1 no (older kernels refuse the field with -EINVAL). Learnt
 * once per process by the self-test. */
static _Atomic int rx_limit = 0;

/* A multishot receive into the lent buffers; `budget` bytes at most, then it
 * ends (0: no budget). */
static void
prep_recv_multi(struct io_uring_sqe *sqe, int fd, uint64_t user_data, uint32_t budget)
{
    sqe->opcode = IORING_OP_RECV;
    sqe->fd = fd;
    sqe->ioprio = IORING_RECV_MULTISHOT;
    sqe->flags = IOSQE_BUFFER_SELECT;
    sqe->buf_group = RX_BGID; /* len 0: a whole buffer per completion */
    sqe->file_index = budget; /* the kernel reads it as the receive's optlen */
    sqe->user_data = user_data;
}

/* Arms the multishot receive of src (its RX_ARMED already set). Lock held. */
static int
rx_arm_locked(blz__backend *b, blz__io_source *src)
{
    if ((src->be_flags & SRC_RELEASED) || blz__load(&b->disowned, RELAXED)) {
        return -ECANCELED;
    }
    struct io_uring_sqe *sqe = blz__ur_sq_get(b);
    if (!sqe) {
        return -EBUSY;
    }
    prep_recv_multi(sqe, src->fd, (uint64_t) (uintptr_t) src | TAG_RECV,
                    blz__load(&rx_limit, RELAXED) > 0 ? RX_BUDGET : 0);
    blz__fetch_add(&src->be_hold, 1u, RELAXED);
    blz__fetch_add(&b->rx_armed, 1u, RELAXED);
    return 0;
}

void
blz__ur_rx_open_locked(blz__backend *b, blz__io_source *src)
{
    if (!src->rx_want || !b->rx_on ||
        b->sq_entries - (b->sq_tail - blz__load(b->sq_khead, ACQUIRE)) < 2) {
        return;
    }
    /* Both SQEs (this receive and the caller's poll) fit, checked under the
     * lock, so neither arm can fail. */
    src->rx_on = 1;
    src->rx_head = src->rx_tail = RX_NONE;
    src->rx_flags = RX_ARMED;
    (void) rx_arm_locked(b, src);
}

void
blz__ur_rx_start(blz__backend *b, blz__io_source *src)
{
    if (!b->rx_on) {
        return; /* a shared ring (or no buffers): the stream keeps readiness */
    }
    pthread_mutex_lock(&b->lock);
    if (!(src->be_flags & SRC_RELEASED) && !blz__load(&b->disowned, RELAXED)) {
        src->rx_want = 1;
        blz__ur_rx_open_locked(b, src);
    }
    /* The poll asks for data too: narrow it to POLLOUT, keeping it
     * multishot and its user_data. If the update misses (the poll just
     * ended, or its task work is running), the wider poll costs only
     * spare CQEs, whose read bits the dispatch drops for such a stream,
     * until it is armed again, narrow. The SQE was counted by open. */
    struct io_uring_sqe *sqe = src->rx_on && (src->be_flags & SRC_ARMED) ? blz__ur_sq_get(b) : NULL;
    if (sqe) {
        sqe->opcode = IORING_OP_POLL_REMOVE;
        sqe->fd = -1;
        sqe->addr = (uint64_t) (uintptr_t) src | TAG_POLL;
        sqe->len = IORING_POLL_UPDATE_EVENTS | IORING_POLL_ADD_MULTI;
        sqe->poll32_events = blz__ur_poll32(RX_POLL);
        sqe->user_data = TAG_IGNORE;
    }
    (void) blz__ur_sq_flush(b);
    pthread_mutex_unlock(&b->lock);
}

uint16_t
blz__ur_rx_close_locked(blz__backend *b, blz__io_source *src)
{
    if (!src->rx_on) {
        return RX_NONE;
    }
    /* Lock order: the backend's, then the source's. */
    blz__spin_lock(&src->lock);
    src->rx_flags |= RX_CLOSED; /* from now on, buffers go straight back */
    int armed = (src->rx_flags & RX_ARMED) != 0;
    uint16_t held = src->rx_head;
    src->rx_head = src->rx_tail = RX_NONE;
    src->rx_count = 0;
    blz__spin_unlock(&src->lock);
    if (armed) {
        blz__ur_cancel_src_locked(b, src, TAG_RECV);
    }
    return held;
}

/* ---- backend operations --------------------------------------------------- */

void
blz__ur_rx_arm(blz__backend *b, blz__io_source *src)
{
    blz__spin_lock(&src->lock);
    int go = !(src->rx_flags & (RX_ARMED | RX_ENDED | RX_CLOSED));
    if (go) {
        src->rx_flags |= RX_ARMED;
    }
    blz__spin_unlock(&src->lock);
    if (!go) {
        return;
    }
    pthread_mutex_lock(&b->lock);
    int rc = rx_arm_locked(b, src);
    (void) blz__ur_sq_flush(b); /* once published, armed: the parker's flush retries */
    pthread_mutex_unlock(&b->lock);
    if (rc < 0) {
        blz__spin_lock(&src->lock);
        src->rx_flags &= ~RX_ARMED;
        blz__spin_unlock(&src->lock);
        blz__io_source_ready(src, BLZ__RD_READ); /* the reader reads the socket meanwhile */
    }
}

int
blz__ur_rx_take(blz__backend *b, blz__io_source *src, void *buf, size_t len, int peek, long *res)
{
    size_t got = 0;
    uint16_t used = RX_NONE; /* buffers read to the end, to give back */
    blz__spin_lock(&src->lock);
    uint16_t bid = src->rx_head;
    uint32_t off = src->rx_off;
    while (got < len && bid != RX_NONE) {
        size_t n = b->rx_len[bid] - off;
        if (n > len - got) {
            n = len - got;
        }
        memcpy((char *) buf + got, b->rx_mem + (size_t) bid * RX_BUF_SIZE + off, n);
        got += n;
        off += (uint32_t) n;
        if (off < b->rx_len[bid]) {
            break; /* buf is full */
        }
        uint16_t next = b->rx_next[bid];
        if (!peek) {
            src->rx_head = next;
            src->rx_count--;
            b->rx_next[bid] = used;
            used = bid;
        }
        bid = next;
        off = 0;
    }
    int taken = 1;
    int rearm = 0;
    if (!peek) {
        src->rx_off = off;
        if (src->rx_head == RX_NONE) {
            src->rx_tail = RX_NONE;
        }
    }
    if (got > 0) {
        *res = (long) got;
        /* Emptied while the receive is off (paused, or out of buffers): arm
         * it, or nothing would report the next data. */
        rearm = !peek && src->rx_head == RX_NONE &&
                !(src->rx_flags & (RX_ARMED | RX_ENDED | RX_CLOSED));
    } else if (src->rx_flags & RX_ENDED) {
        *res = src->rx_end;
        if (!peek) {
            src->rx_end = 0; /* an error is reported once; then end of stream */
        }
    } else if (src->rx_flags & RX_ARMED) {
        *res = -EAGAIN;
    } else {
        taken = 0;
    }
    blz__spin_unlock(&src->lock);
    blz__ur_rx_give(b, used);
    if (rearm) {
        blz__ur_rx_arm(b, src);
    }
    return taken;
}

void
blz__ur_rx_counts(const blz__backend *b, unsigned *out, unsigned *armed, unsigned *budget,
                  unsigned *touched)
{
    *budget = b->rx_on && blz__load(&rx_limit, RELAXED) > 0 ? RX_BUDGET : 0;
    uint32_t given = blz__load(&b->rx_given, ACQUIRE); /* first: never more than filled */
    *out = blz__load(&b->rx_filled, RELAXED) - given;
    *armed = blz__load(&b->rx_armed, RELAXED);
    *touched = 0;
    if (!b->rx_on) {
        return;
    }
    /* The first page of a buffer is resident once anything was received
     * into it (the pool is mapped without reserve, and never read first). */
    size_t page = (size_t) sysconf(_SC_PAGESIZE);
    size_t pages = RX_BUF_SIZE / page ? RX_BUF_SIZE / page : 1;
    unsigned char *vec = blz__calloc((size_t) b->rx_bufs * pages, 1);
    if (vec && mincore(b->rx_mem, (size_t) b->rx_bufs * RX_BUF_SIZE, vec) == 0) {
        for (unsigned i = 0; i < b->rx_bufs; i++) {
            *touched += vec[(size_t) i * pages] & 1u;
        }
    }
    blz__free(vec);
}

/* Queues buffer `bid`, which the kernel filled with `res` bytes, on src
 * (or gives it back: nothing to read, or the stream is closed). Returns the
 * readiness to report; sets *cancel when the stream now holds enough.
 * Source lock held. */
static unsigned
rx_queue_locked(blz__backend *b, blz__io_source *src, uint16_t bid, int32_t res, int more,
                int *cancel, uint16_t *back)
{
    b->rx_next[bid] = RX_NONE;
    rx_count_filled(b);
    if (res <= 0 || (src->rx_flags & RX_CLOSED)) {
        *back = bid;
        return 0;
    }
    b->rx_len[bid] = (uint32_t) res;
    if (src->rx_tail == RX_NONE) {
        src->rx_head = bid;
    } else {
        b->rx_next[src->rx_tail] = bid;
    }
    src->rx_tail = bid;
    src->rx_count++;
    if (more && src->rx_count >= RX_CAP && !(src->rx_flags & RX_CANCELLING)) {
        /* A reader that falls behind must not take every buffer: the
         * socket keeps the rest until it catches up. */
        src->rx_flags |= RX_CANCELLING;
        *cancel = 1;
    }
    return BLZ__RD_READ;
}

/* src's receive ended with `res` (a CQE without IORING_CQE_F_MORE).
 * Returns the readiness to report. Source lock held. */
static unsigned
rx_ended_locked(blz__io_source *src, int32_t res)
{
    src->rx_flags &= ~(RX_ARMED | RX_CANCELLING);
    if (src->rx_flags & RX_CLOSED) {
        return 0;
    }
    if (res == 0 || (res < 0 && res != -ENOBUFS && res != -ECANCELED)) {
        src->rx_flags |= RX_ENDED;
        src->rx_end = res;
        /* RCLOSED either way: reads end here (an error is reported once,
         * then end of stream). */
        return BLZ__RD_READ | BLZ__RD_RCLOSED | (res == 0 ? 0 : BLZ__RD_ERROR);
    }
    /* Out of buffers, paused, or ended for the kernel's own reasons: the
     * reader takes what is held, then reads the socket itself or arms
     * again (blz__io_rx_read). */
    return BLZ__RD_READ;
}

/* A CQE of the multishot receive of `src`. Parking thread; no lock held. */
void
blz__ur_rx_cqe(blz__backend *b, blz__io_source *src, int32_t res, uint32_t flags, int *handled)
{
    int more = (flags & IORING_CQE_F_MORE) != 0;
    unsigned bits = 0;
    int cancel = 0;
    bool closed = false;
    uint16_t back = RX_NONE;
    bool grow = false;
    blz__spin_lock(&src->lock);
    if (flags & IORING_CQE_F_BUFFER) {
        bits = rx_queue_locked(b, src, (uint16_t) (flags >> IORING_CQE_BUFFER_SHIFT), res, more,
                               &cancel, &back);
    }
    if (!more) {
        bits |= rx_ended_locked(src, res);
        if (res == -ENOBUFS) {
            grow = true;
        }
        /* A close owes a cancel only while the receive is armed, and sets
         * RX_CLOSED in the same critical section as it looks. */
        closed = (src->rx_flags & RX_CLOSED) != 0;
    }
    blz__spin_unlock(&src->lock);
    if (grow) {
        /* The ring ran dry: more receives come between two refills than it
         * held (many streams, or a kernel that runs every deferred
         * completion in one enter). Hold twice as many from now on; the
         * refill after this reap puts them in. */
        uint32_t target = blz__load(&b->rx_ring_target, RELAXED);
        if (target < b->rx_bufs) {
            blz__store(&b->rx_ring_target, target * 2 < b->rx_bufs ? target * 2 : b->rx_bufs,
                       RELAXED);
        }
    }
    blz__ur_rx_give(b, back);
    if (bits) {
        blz__io_source_ready(src, bits);
        (*handled)++;
    }
    if (cancel) {
        pthread_mutex_lock(&b->lock);
        struct io_uring_sqe *sqe = blz__ur_sq_get(b);
        if (sqe) { /* flushed at the end of this poll */
            blz__ur_prep_cancel(sqe, (uint64_t) (uintptr_t) src | TAG_RECV);
        }
        pthread_mutex_unlock(&b->lock);
        if (!sqe) {
            blz__spin_lock(&src->lock);
            src->rx_flags &= ~RX_CANCELLING; /* the next completion asks again */
            blz__spin_unlock(&src->lock);
        }
    }
    if (!more) {
        blz__fetch_sub(&b->rx_armed, 1u, RELAXED);
        if (closed) {
            /* The close may owe this receive's cancel: it does so under the
             * backend lock it held while it looked, so taking that lock here
             * finds the debt if there is one. */
            pthread_mutex_lock(&b->lock);
            blz__ur_owed_end_locked(b, src, TAG_RECV);
            pthread_mutex_unlock(&b->lock);
        }
        /* Last: a released source may be freed from here on. Release pairs
         * with the sweep's acquire. */
        blz__fetch_sub(&src->be_hold, 1u, RELEASE);
    }
}

/* Arms a multishot receive with `budget` on a socket pair, sends it one
 * byte, and copies its first completion to *first (*byte_ok: the byte landed
 * in the buffer named); then ends the receive (the peer's close) and waits
 * for its last completion. 0, or -errno when the test could not run. */
static int
rx_probe(blz__backend *b, uint32_t budget, struct io_uring_cqe *first, int *byte_ok)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
        return -errno;
    }
    const uint64_t ud = 8u; /* set-up only: nothing else is in flight */
    pthread_mutex_lock(&b->lock);
    struct io_uring_sqe *sqe = blz__ur_sq_get(b);
    int rc = sqe ? 0 : -EBUSY;
    if (sqe) {
        prep_recv_multi(sqe, sv[0], ud, budget);
        rc = blz__ur_sq_flush(b);
    }
    pthread_mutex_unlock(&b->lock);
    int live = sqe != NULL;
    if (rc == 0 && write(sv[1], "x", 1) != 1) {
        rc = -errno;
    }
    struct io_uring_cqe cqe;
    if (rc == 0) {
        rc = blz__ur_next_cqe_setup(b, &cqe);
    }
    if (rc == 0) {
        *first = cqe;
        *byte_ok = 0;
        if (cqe.flags & IORING_CQE_F_BUFFER) {
            uint16_t bid = (uint16_t) (cqe.flags >> IORING_CQE_BUFFER_SHIFT);
            *byte_ok = b->rx_mem[(size_t) bid * RX_BUF_SIZE] == 'x';
            b->rx_next[bid] = RX_NONE;
            rx_count_filled(b);
            blz__ur_rx_give(b, bid);
        }
        live = cqe.user_data != ud || (cqe.flags & IORING_CQE_F_MORE);
        if (cqe.user_data != ud) {
            rc = -EOPNOTSUPP; /* nothing else should be in flight */
        }
    }
    close(sv[1]); /* end of stream ends the receive */
    while (live) {
        if (blz__ur_next_cqe_setup(b, &cqe) < 0) {
            close(sv[0]);
            return -ETIMEDOUT; /* a receive may still hold a buffer: no rx */
        }
        live = cqe.user_data != ud || (cqe.flags & IORING_CQE_F_MORE);
    }
    close(sv[0]);
    return rc;
}

/* Checks that a multishot receive into the lent buffers works here (one
 * byte arrives in a buffer with more to follow, and the peer's close ends
 * it), then whether a byte budget ends one (rx_limit). */
static int
rx_selftest(blz__backend *b)
{
    struct io_uring_cqe c;
    memset(&c, 0, sizeof c);
    int ok = 0;
    int rc = rx_probe(b, 0, &c, &ok);
    if (rc < 0) {
        return rc;
    }
    if (!(c.res == 1 && (c.flags & IORING_CQE_F_MORE) && ok)) {
        return -EOPNOTSUPP;
    }
    rc = rx_probe(b, 1, &c, &ok);
    if (rc == -ETIMEDOUT) {
        return rc;
    }
    /* A budget of one byte: that byte, and the end. Older kernels fail the
     * receive with -EINVAL instead. */
    int limit = rc == 0 && c.res == 1 && ok && !(c.flags & IORING_CQE_F_MORE);
    blz__store(&rx_limit, limit ? 1 : -1, RELAXED);
    return 0;
}

void
blz__ur_rx_unmap(blz__backend *b)
{
    if (b->rx_ring) {
        munmap(b->rx_ring, b->rx_ring_sz);
        b->rx_ring = NULL;
    }
    if (b->rx_mem) {
        munmap(b->rx_mem, (size_t) b->rx_bufs * RX_BUF_SIZE);
        b->rx_mem = NULL;
    }
    blz__free(b->rx_len);
    blz__free(b->rx_next);
    blz__free(b->rx_spare);
    b->rx_len = NULL;
    b->rx_next = NULL;
    b->rx_spare = NULL;
}

/* Maps the buffers and lends them all to the kernel. 0 or -errno (nothing
 * left behind). */
int
blz__ur_rx_register(blz__backend *b)
{
    b->rx_ring_sz = b->rx_bufs * sizeof(struct io_uring_buf);
    void *ring =
        mmap(NULL, b->rx_ring_sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *mem = mmap(NULL, (size_t) b->rx_bufs * RX_BUF_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    b->rx_ring = ring == MAP_FAILED ? NULL : ring;
    b->rx_mem = mem == MAP_FAILED ? NULL : mem;
    b->rx_len = blz__calloc(b->rx_bufs, sizeof *b->rx_len);
    b->rx_next = blz__calloc(b->rx_bufs, sizeof *b->rx_next);
    b->rx_spare = blz__calloc(b->rx_bufs, sizeof *b->rx_spare);
    if (!b->rx_ring || !b->rx_mem || !b->rx_len || !b->rx_next || !b->rx_spare) {
        blz__ur_rx_unmap(b);
        return -ENOMEM;
    }
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t) (uintptr_t) b->rx_ring;
    reg.ring_entries = b->rx_bufs;
    reg.bgid = RX_BGID;
    int rc = blz__ur_register(b->ring_fd, IORING_REGISTER_PBUF_RING, &reg, 1);
    if (rc < 0) {
        blz__ur_rx_unmap(b);
        return rc;
    }
    b->rx_tail = 0;
    /* The first fill gives them all: count them as filled before. */
    blz__store(&b->rx_filled, blz__load(&b->rx_given, RELAXED) + b->rx_bufs, RELAXED);
    b->rx_filled_base = blz__load(&b->rx_filled, RELAXED);
    b->rx_spare_len = 0;
    blz__store(&b->rx_lent, 0u, RELAXED);
    blz__store(&b->rx_ring_target,
               RX_RING_TARGET_START < b->rx_bufs ? RX_RING_TARGET_START : b->rx_bufs, RELAXED);
    /* Linked last to first: the stack then lends 0, 1, 2... first. */
    for (unsigned bid = 0; bid < b->rx_bufs; bid++) {
        b->rx_next[bid] = bid > 0 ? (uint16_t) (bid - 1) : RX_NONE;
    }
    blz__ur_rx_give(b, (uint16_t) (b->rx_bufs - 1));
    return 0;
}

/* Sets up completion receive; on any failure the backend goes without it
 * (TCP streams use readiness, as on epoll). */
void
blz__ur_rx_setup(blz__backend *b)
{
    /* The kernel does not change under a process: one self-test each (it
     * costs about as much as the rest of a runtime's creation). 0: not yet
     * run, 1: passed, -1: failed. Two runtimes made at once may both run it. */
    static _Atomic int tested = 0;
    int known = blz__load(&tested, RELAXED);
    if (b->rx_bufs == 0 || !b->supported[BLZ__OP_RECV] || known < 0 || blz__ur_rx_register(b) < 0) {
        return;
    }
    int rc = known > 0 ? 0 : rx_selftest(b);
    blz__store(&tested, rc == 0 ? 1 : -1, RELAXED);
    if (rc == -ETIMEDOUT) {
        b->rx_mem = NULL; /* the kernel may still write there: keep it mapped (leaked) */
    }
    if (rc < 0) {
        struct io_uring_buf_reg un;
        memset(&un, 0, sizeof un);
        un.bgid = RX_BGID;
        (void) blz__ur_register(b->ring_fd, IORING_UNREGISTER_PBUF_RING, &un, 1);
        blz__ur_rx_unmap(b);
        return;
    }
    b->rx_on = true;
}
