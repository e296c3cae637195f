/*
 * Internal to the io_uring backend: its state, the kernel ABI it relies on,
 * and what its two files share. uring.c is the ring (submission, completion,
 * readiness polls, completion ops, the single-issuer mode); uring_rx.c is
 * completion receive (buffers lent to the kernel, multishot receives).
 */
#ifndef BLZ_IO_URING_INT_H
#define BLZ_IO_URING_INT_H

#include "core/atomic.h"
#include "core/spinlock.h"
#include "io/backend.h"
#include "io/registry.h"

#include <linux/io_uring.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
_Static_assert(offsetof(struct io_uring_sqe, buf_group) == 40, "sqe.buf_group");
_Static_assert(sizeof(struct io_uring_buf) == 16, "io_uring_buf");
_Static_assert(offsetof(struct io_uring_buf_ring, tail) == 14, "buf_ring.tail");
_Static_assert(sizeof(struct io_uring_buf_reg) == 40, "io_uring_buf_reg");
_Static_assert(IORING_CQE_F_BUFFER == 1u && IORING_CQE_BUFFER_SHIFT == 16,
               "buffer id in cqe.flags");
_Static_assert(offsetof(struct io_uring_sqe, file_index) == 44,
               "sqe.file_index (a receive's byte budget, optlen in newer headers)");

#define SQ_ENTRIES 256u
#define CQ_ENTRIES 4096u

/* user_data tags (low bits; sources and ops are at least 8-aligned). */
#define TAG_MASK   7ull
#define TAG_IGNORE 0ull /* a remove/cancel request's own completion */
#define TAG_POLL   1ull /* readiness of a source */
#define TAG_WAKE   2ull /* the wake eventfd's poll (user_data is exactly 2) */
#define TAG_OP     3ull /* a completion op */
#define TAG_RECV   4ull /* the multishot receive of a completion-receive stream */

/* Completion receive: one group of buffers lent to the kernel through a
 * buffer ring; the multishot receive of every such stream takes them. */
#define RX_BUF_SIZE          16384u /* 16 KiB */
#define RX_BGID              0
#define RX_CAP               4u /* buffers a stream may hold before its receive pauses */
/* Bytes one arming of a receive may take before it ends (where the kernel
 * takes a budget): a bound on what a fast stream's burst takes from the pool
 * (a sixteenth of the default one), large enough that re-arming costs
 * little: 1-2 % of the CPU per message for 16 KiB messages one-CPU (one
 * re-arm every 16); a budget of 4 buffers cost 3-6 %. */
#define RX_BUDGET            (16u * RX_BUF_SIZE)
#define RX_NONE              0xffffu
/* Buffers the ring holds at first: more than one io_uring_enter receives
 * into between two refills (the kernel runs at most 20 deferred
 * completions per enter on 6.18), few enough to stay in the cache (512 KiB). */
#define RX_RING_TARGET_START 32u
#define RX_POLL              POLLOUT /* the poll of such a stream: its receive reports the rest */

/* A source's rx_flags (under its lock). */
#define RX_ARMED      0x1u /* a multishot receive naming it is live, or being armed */
#define RX_CANCELLING 0x2u /* that receive was asked to end: the stream holds RX_CAP buffers */
#define RX_ENDED      0x4u /* end of stream or an error; rx_end says which */
#define RX_CLOSED     0x8u /* the owner let go: received buffers go straight back */

/* Source be_flags (under the backend lock). */
#define SRC_ARMED           0x1u /* its poll is live in the kernel, or owed (SRC_OWE_ARM) */
#define SRC_RELEASED        0x2u /* the owner let go: do not arm again */
/* A request the full SQ had no room for, owed on the backend's `owed` list
 * until a poll finds room (pay_owed_locked in uring.c). */
#define SRC_OWE_POLL_CANCEL 0x4u   /* the cancel of its poll */
#define SRC_OWE_RECV_CANCEL 0x8u   /* the cancel of its receive */
#define SRC_OWE_ARM         0x100u /* its poll's first arm (counted ARMED already) */
#define SRC_OWED            (SRC_OWE_POLL_CANCEL | SRC_OWE_RECV_CANCEL | SRC_OWE_ARM)
#define SRC_FAILS           0xf0u /* consecutive failed re-arms (bits 4..7) */

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

    bool coop_taskrun; /* set up with COOP_TASKRUN | TASKRUN_FLAG */
    /* Single-issuer mode (see ur_own): only `owner` may enter the ring, and
     * the kernel runs completions only inside its io_uring_enter. Other
     * threads write SQEs (under `lock`) and wake the owner to submit them. */
    bool single;
    bool owned;                /* the owner enabled the ring (under lock) */
    _Atomic uint32_t disowned; /* the owner drained it and left: no more I/O */
    bool draining;             /* ending every request: re-arm nothing */
    /* Sources owed a request (SRC_OWED), linked through be_owed, under
     * lock. A thread that may not enter a single-issuer ring cannot make
     * room in its full SQ; a cancel dropped there would leave the poll or
     * receive holding the socket's file (no FIN, the port still bound) for
     * the life of the ring, and an arm would fail, so they wait here for
     * the poller. */
    struct blz__io_source *owed;
    pthread_t owner; /* valid while owned */
    bool rx_on;      /* completion receive works here */

    /* Completion receive's buffers. A buffer belongs to the kernel while its
     * id sits in the ring, then to the stream whose receive CQE named it
     * (linked in its queue through rx_next) until a read consumed it. */
    struct io_uring_buf_ring *rx_ring; /* shared with the kernel */
    size_t rx_ring_sz;
    unsigned rx_bufs;      /* how many (a power of two; 0: no completion receive) */
    char *rx_mem;          /* rx_bufs * RX_BUF_SIZE */
    uint32_t *rx_len;      /* per buffer: the bytes received into it */
    uint16_t *rx_next;     /* per buffer: the next one of its stream */
    blz__spinlock rx_lock; /* the ring's tail: buffers come back from any thread */
    uint16_t rx_tail;
    /* Buffers given back but not yet in the ring (under rx_lock): a stack,
     * so the ring is topped up with the ones used last, still in the cache.
     * The ring holds about rx_ring_target (the kernel takes its oldest entry
     * first, so a buffer comes round again after rx_ring_target receives); the
     * rest wait here. With all of them in the ring, a 16 KiB stream cycled
     * through 4 MiB, and every receive and every read missed the cache. */
    uint16_t *rx_spare;
    unsigned rx_spare_len;
    _Atomic uint32_t rx_lent; /* buffers put in the ring, ever (written under rx_lock) */
    uint32_t rx_filled_base;  /* rx_filled when the first were lent */
    /* How many the ring should hold: RX_RING_TARGET_START, doubled (up to
     * rx_bufs) whenever a receive found it empty. Parking thread writes. */
    _Atomic uint32_t rx_ring_target;
    _Atomic uint32_t rx_armed; /* multishot receives live (fini waits for them) */
    /* Buffers the kernel filled (completions naming one: the parking thread
     * only) and buffers given back (under rx_lock). Each has one writer at a
     * time, so a load and a store count it, no read-modify-write on the
     * message path; the difference is what streams hold (tests). */
    _Atomic uint32_t rx_filled;
    _Atomic uint32_t rx_given;

    unsigned char supported[BLZ__OP_KIND_COUNT]; /* completion ops the probe found */
    blz__io_op inflight;                         /* sentinel of ops in flight (under lock) */
};

/* ---- shared by uring.c and uring_rx.c --------------------------------------- */

/* io_uring_enter / io_uring_register: the result, or -errno. */
int blz__ur_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags, void *arg,
                  size_t argsz);
int blz__ur_register(int fd, unsigned opcode, void *arg, unsigned nr_args);

/* A zeroed SQE, or NULL when the SQ stays full. Lock held. */
struct io_uring_sqe *blz__ur_sq_get(blz__backend *b);

/* Submits every published SQE (or, from a thread that may not enter a
 * single-issuer ring, leaves them to the owner and wakes it). Lock held. */
int blz__ur_sq_flush(blz__backend *b);

/* Queues a cancel of src's poll or receive (`tag`: TAG_POLL or TAG_RECV);
 * when the SQ has no room, owes it (SRC_OWED) to the next poll. Lock held. */
void blz__ur_cancel_src_locked(blz__backend *b, blz__io_source *src, uint64_t tag);

/* src's poll or receive (`tag`) has ended: a cancel still owed for it is
 * moot. Lock held; before the end drops src's hold. */
void blz__ur_owed_end_locked(blz__backend *b, blz__io_source *src, uint64_t tag);

/* A poll mask as an SQE's poll32_events holds it. */
static inline uint32_t
blz__ur_poll32(uint32_t mask)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    mask = (mask << 16) | (mask >> 16); /* the kernel reads the two halves swapped */
#endif
    return mask;
}

/* An ASYNC_CANCEL of the request whose user_data is `target`. */
void blz__ur_prep_cancel(struct io_uring_sqe *sqe, uint64_t target);

/* The next CQE, copied out and released, waiting up to a second for it.
 * Setup only (before the ring is handed out). 0 or -errno. */
int blz__ur_next_cqe_setup(blz__backend *b, struct io_uring_cqe *out);

/* ---- completion receive (uring_rx.c) ----------------------------------------- */

/* Sets completion receive up (b->rx_bufs buffers), self-tested; on failure
 * the backend goes without it. */
void blz__ur_rx_setup(blz__backend *b);

/* Maps the buffers and lends them all to the kernel, with no self-test (a
 * ring like one that passed it). 0 or -errno, nothing left behind. */
int blz__ur_rx_register(blz__backend *b);

/* Unmaps the buffers (rx_mem NULL: leaked on purpose, the kernel may still
 * write there). */
void blz__ur_rx_unmap(blz__backend *b);

/* At arm: puts `src` in completion-receive mode and arms its receive, when
 * it asked and two SQEs fit. Lock held. */
void blz__ur_rx_open_locked(blz__backend *b, blz__io_source *src);

/* At disarm: cancels src's receive and takes the buffers it held, which the
 * caller gives back (blz__ur_rx_give) once it dropped the lock. Lock held. */
uint16_t blz__ur_rx_close_locked(blz__backend *b, blz__io_source *src);

/* Gives back a chain of buffers linked through rx_next (ending at RX_NONE). */
void blz__ur_rx_give(blz__backend *b, uint16_t chain);

/* Tops the ring up to rx_ring_target from the buffers given back, after the
 * kernel took some. Parking thread, after reaping completions. */
void blz__ur_rx_refill(blz__backend *b);

/* A CQE of src's multishot receive. Parking thread; no lock held. */
void blz__ur_rx_cqe(blz__backend *b, blz__io_source *src, int32_t res, uint32_t flags,
                    int *handled);

/* The backend operations rx_take, rx_arm and rx_counts (io/backend.h). */
int blz__ur_rx_take(blz__backend *b, blz__io_source *src, void *buf, size_t len, int peek,
                    long *res);
void blz__ur_rx_arm(blz__backend *b, blz__io_source *src);
void blz__ur_rx_start(blz__backend *b, blz__io_source *src);
void blz__ur_rx_counts(const blz__backend *b, unsigned *out, unsigned *armed, unsigned *budget,
                       unsigned *touched);

#endif
