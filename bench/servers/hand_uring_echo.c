/*
 * bench/servers/hand_uring_echo.c — the "how cheap can io_uring make an echo"
 * reference for the echo comparison (issue 7): a minimal single-threaded echo
 * server on io_uring in completion mode, with no library between it and the
 * kernel. Multishot accept; one multishot receive per connection into a ring of
 * provided buffers; each received buffer sent straight back and then returned to
 * the ring; the ring set up SINGLE_ISSUER | DEFER_TASKRUN, so completions are run
 * only inside the one io_uring_enter per loop turn that also submits.
 *
 *   bench_server_hand_uring [HOST:PORT]     (default 127.0.0.1:8080; port 0 picks one)
 *
 * HAND_URING_TASKRUN=coop sets the ring up with COOP_TASKRUN | TASKRUN_FLAG
 * instead (what blitzio's shared ring uses), to tell what DEFER_TASKRUN is
 * worth on its own (BENCHMARKS.md).
 *
 * On start it prints "hand_uring_echo: listening on HOST:PORT" as its first line
 * on stdout (the convention of bench/compare/net.sh), then serves until SIGINT or
 * SIGTERM, read from a signalfd through the ring.
 *
 * Invariants:
 * - One thread created the ring and is its only issuer; no locks.
 * - Buffer `bid` belongs to the kernel while it sits in the buffer ring, and to a
 *   connection from the receive completion that names it until its bytes are all
 *   sent back; then it returns to the ring.
 * - A connection has at most one send in flight. Received buffers wait in its
 *   FIFO (linked through next_buf[], so the FIFO needs no memory of its own) and
 *   go out in order: two sends on one socket in flight at once may complete out
 *   of order.
 * - A receive completion without IORING_CQE_F_MORE ends that multishot receive.
 *   It is armed again after data or -ENOBUFS (the buffer ring ran dry); end of
 *   stream or an error ends the connection's reading for good.
 * - A connection is freed when its receive has ended and no send is in flight.
 *   A failed send shuts the socket down, which ends the receive.
 */
#include "server_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BUF_SIZE   (16 * 1024) /* the read size of every server in the comparison */
#define NBUFS      2048u       /* provided buffers (a power of two) */
#define BGID       1           /* their buffer group */
#define SQ_ENTRIES 1024u
#define CQ_ENTRIES 16384u

/* user_data: a connection pointer (16-aligned) or 0, plus one of these tags. */
#define TAG_MASK   15ull
#define TAG_ACCEPT 1ull
#define TAG_RECV   2ull
#define TAG_SEND   3ull
#define TAG_SIGNAL 4ull

#define NO_BUF 0xffffu

typedef struct conn {
    int fd;
    bool recv_live;      /* a multishot receive is armed */
    bool sending;        /* the FIFO's head is being sent */
    bool dead;           /* a send failed: drop what arrives */
    uint16_t head, tail; /* FIFO of received buffers (NO_BUF: empty) */
    uint32_t off;        /* bytes of the head buffer already sent */
} __attribute__((aligned(16))) conn;

static struct {
    int fd;
    unsigned *sq_tail, *sq_head, sq_mask, sq_local_tail, sq_submitted;
    struct io_uring_sqe *sqes;
    unsigned *cq_head, *cq_tail, cq_mask;
    struct io_uring_cqe *cqes;
} ring;

static struct io_uring_buf_ring *bring; /* the provided-buffer ring */
static uint16_t bring_tail;             /* our copy of its tail */
static char *bufs;                      /* NBUFS x BUF_SIZE */
static uint32_t buf_len[NBUFS];         /* bytes received into each buffer */
static uint16_t next_buf[NBUFS];        /* FIFO links */
static struct signalfd_siginfo siginfo;

/* ---- the ring ------------------------------------------------------------ */

static int
enter(unsigned to_submit, unsigned min_complete, unsigned flags)
{
    return (int) syscall(__NR_io_uring_enter, ring.fd, to_submit, min_complete, flags, NULL, 0);
}

/* Submits what is queued, and runs and waits for completions when `wait`. */
static int
submit(bool wait)
{
    unsigned n = ring.sq_local_tail - ring.sq_submitted;
    /* Release: the SQEs' contents before the tail the kernel reads. */
    __atomic_store_n(ring.sq_tail, ring.sq_local_tail, __ATOMIC_RELEASE);
    int r = enter(n, wait ? 1 : 0, IORING_ENTER_GETEVENTS);
    if (r < 0) {
        return errno == EINTR || errno == EAGAIN || errno == EBUSY ? 0 : -errno;
    }
    ring.sq_submitted += (unsigned) r;
    return 0;
}

/* A zeroed SQE; submits first when the SQ is full. */
static struct io_uring_sqe *
sqe_get(void)
{
    while (ring.sq_local_tail - __atomic_load_n(ring.sq_head, __ATOMIC_ACQUIRE) >= SQ_ENTRIES) {
        if (submit(false) < 0) {
            perror("hand_uring_echo: io_uring_enter");
            exit(1);
        }
    }
    struct io_uring_sqe *sqe = &ring.sqes[ring.sq_local_tail & ring.sq_mask];
    ring.sq_local_tail++;
    memset(sqe, 0, sizeof *sqe);
    return sqe;
}

static int
ring_init(void)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    const char *mode = getenv("HAND_URING_TASKRUN");
    if (mode && strcmp(mode, "coop") == 0) {
        p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
    }
    p.cq_entries = CQ_ENTRIES;
    ring.fd = (int) syscall(__NR_io_uring_setup, SQ_ENTRIES, &p);
    if (ring.fd < 0) {
        return -errno;
    }
    if (!(p.features & IORING_FEAT_SINGLE_MMAP)) {
        return -EOPNOTSUPP;
    }
    size_t sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    size_t sz = sq_sz > cq_sz ? sq_sz : cq_sz;
    char *rp = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring.fd,
                    IORING_OFF_SQ_RING);
    ring.sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_POPULATE, ring.fd, IORING_OFF_SQES);
    if (rp == MAP_FAILED || ring.sqes == MAP_FAILED) {
        return -errno;
    }
    ring.sq_head = (unsigned *) (rp + p.sq_off.head);
    ring.sq_tail = (unsigned *) (rp + p.sq_off.tail);
    ring.sq_mask = *(unsigned *) (rp + p.sq_off.ring_mask);
    unsigned *array = (unsigned *) (rp + p.sq_off.array);
    for (unsigned i = 0; i < p.sq_entries; i++) {
        array[i] = i; /* SQE i in slot i, always */
    }
    ring.cq_head = (unsigned *) (rp + p.cq_off.head);
    ring.cq_tail = (unsigned *) (rp + p.cq_off.tail);
    ring.cq_mask = *(unsigned *) (rp + p.cq_off.ring_mask);
    ring.cqes = (struct io_uring_cqe *) (rp + p.cq_off.cqes);

    /* The provided buffers, and the ring that lends them to the kernel. */
    bufs = mmap(NULL, (size_t) NBUFS * BUF_SIZE, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bring = mmap(NULL, NBUFS * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (bufs == MAP_FAILED || bring == MAP_FAILED) {
        return -errno;
    }
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t) (uintptr_t) bring;
    reg.ring_entries = NBUFS;
    reg.bgid = BGID;
    if (syscall(__NR_io_uring_register, ring.fd, IORING_REGISTER_PBUF_RING, &reg, 1) < 0) {
        return -errno;
    }
    return 0;
}

/* Lends buffer `bid` to the kernel again. */
static void
buf_return(uint16_t bid)
{
    struct io_uring_buf *b = &bring->bufs[bring_tail & (NBUFS - 1)];
    b->addr = (uint64_t) (uintptr_t) (bufs + (size_t) bid * BUF_SIZE);
    b->len = BUF_SIZE;
    b->bid = bid;
    bring_tail++;
    /* Release: the entry before the tail that publishes it. */
    __atomic_store_n(&bring->tail, bring_tail, __ATOMIC_RELEASE);
}

/* ---- requests -------------------------------------------------------------- */

static void
arm_accept(int lfd)
{
    struct io_uring_sqe *sqe = sqe_get();
    sqe->opcode = IORING_OP_ACCEPT;
    sqe->fd = lfd;
    sqe->accept_flags = SOCK_CLOEXEC;
    sqe->ioprio = IORING_ACCEPT_MULTISHOT;
    sqe->user_data = TAG_ACCEPT;
}

static void
arm_recv(conn *c)
{
    struct io_uring_sqe *sqe = sqe_get();
    sqe->opcode = IORING_OP_RECV;
    sqe->fd = c->fd;
    sqe->flags = IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    sqe->ioprio = IORING_RECV_MULTISHOT;
    sqe->user_data = (uint64_t) (uintptr_t) c | TAG_RECV;
    c->recv_live = true;
}

static void
arm_signal(int sfd)
{
    struct io_uring_sqe *sqe = sqe_get();
    sqe->opcode = IORING_OP_READ;
    sqe->fd = sfd;
    sqe->addr = (uint64_t) (uintptr_t) &siginfo;
    sqe->len = sizeof siginfo;
    sqe->user_data = TAG_SIGNAL;
}

/* Sends what is left of the FIFO's head buffer. */
static void
send_head(conn *c)
{
    uint16_t bid = c->head;
    struct io_uring_sqe *sqe = sqe_get();
    sqe->opcode = IORING_OP_SEND;
    sqe->fd = c->fd;
    sqe->addr = (uint64_t) (uintptr_t) (bufs + (size_t) bid * BUF_SIZE + c->off);
    sqe->len = buf_len[bid] - c->off;
    sqe->msg_flags = MSG_NOSIGNAL;
    sqe->user_data = (uint64_t) (uintptr_t) c | TAG_SEND;
    c->sending = true;
}

/* Takes the head buffer off the FIFO and lends it back. */
static void
fifo_pop(conn *c)
{
    uint16_t bid = c->head;
    c->head = next_buf[bid];
    if (c->head == NO_BUF) {
        c->tail = NO_BUF;
    }
    c->off = 0;
    buf_return(bid);
}

static void
maybe_free(conn *c)
{
    if (!c->recv_live && !c->sending) {
        while (c->head != NO_BUF) {
            fifo_pop(c);
        }
        close(c->fd);
        free(c);
    }
}

/* ---- completions ----------------------------------------------------------- */

static void
on_accept(int lfd, int32_t res, uint32_t flags)
{
    if (!(flags & IORING_CQE_F_MORE)) {
        arm_accept(lfd);
    }
    if (res < 0) {
        /* EMFILE and friends: the connection stays queued for a later accept. */
        fprintf(stderr, "hand_uring_echo: accept: %s\n", strerror(-res));
        return;
    }
    conn *c = aligned_alloc(16, sizeof *c);
    if (!c) {
        close(res);
        return;
    }
    memset(c, 0, sizeof *c);
    c->fd = res;
    c->head = c->tail = NO_BUF;
    int one = 1;
    (void) setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    arm_recv(c);
}

static void
on_recv(conn *c, int32_t res, uint32_t flags)
{
    if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
        uint16_t bid = (uint16_t) (flags >> IORING_CQE_BUFFER_SHIFT);
        if (c->dead) {
            buf_return(bid);
        } else {
            buf_len[bid] = (uint32_t) res;
            next_buf[bid] = NO_BUF;
            if (c->tail == NO_BUF) {
                c->head = bid;
            } else {
                next_buf[c->tail] = bid;
            }
            c->tail = bid;
            if (!c->sending) {
                send_head(c);
            }
        }
    }
    if (!(flags & IORING_CQE_F_MORE)) {
        c->recv_live = false;
        if ((res > 0 || res == -ENOBUFS) && !c->dead) {
            arm_recv(c); /* ended early (the buffer ring ran dry, or the kernel chose to) */
        } else {
            maybe_free(c); /* end of stream, or an error */
        }
    }
}

static void
on_send(conn *c, int32_t res)
{
    c->sending = false;
    if (res < 0) {
        c->dead = true;
        while (c->head != NO_BUF) {
            fifo_pop(c);
        }
        (void) shutdown(c->fd, SHUT_RDWR); /* ends the receive, which frees c */
        maybe_free(c);
        return;
    }
    c->off += (uint32_t) res;
    if (c->off >= buf_len[c->head]) {
        fifo_pop(c);
    }
    if (c->head != NO_BUF) {
        send_head(c);
    } else {
        maybe_free(c);
    }
}

int
main(int argc, char **argv)
{
    int sfd, lfd;
    int rc = server_start(argc, argv, "hand_uring_echo", 0, 0, &lfd, &sfd);
    if (rc != 0) {
        return rc;
    }
    rc = ring_init();
    if (rc < 0) {
        fprintf(stderr, "hand_uring_echo: io_uring with provided buffers: %s\n", strerror(-rc));
        return 1;
    }
    for (uint16_t bid = 0; bid < NBUFS; bid++) {
        buf_return(bid);
    }
    arm_accept(lfd);
    arm_signal(sfd);
    server_print_bound(lfd, "hand_uring_echo");

    for (;;) {
        if ((rc = submit(true)) < 0) {
            fprintf(stderr, "hand_uring_echo: io_uring_enter: %s\n", strerror(-rc));
            return 1;
        }
        unsigned head = *ring.cq_head;
        /* Acquire: the CQEs' contents after the tail the kernel published. */
        unsigned tail = __atomic_load_n(ring.cq_tail, __ATOMIC_ACQUIRE);
        for (; head != tail; head++) {
            const struct io_uring_cqe *cqe = &ring.cqes[head & ring.cq_mask];
            uint64_t ud = cqe->user_data;
            conn *c = (conn *) (uintptr_t) (ud & ~TAG_MASK);
            switch (ud & TAG_MASK) {
            case TAG_ACCEPT:
                on_accept(lfd, cqe->res, cqe->flags);
                break;
            case TAG_RECV:
                on_recv(c, cqe->res, cqe->flags);
                break;
            case TAG_SEND:
                on_send(c, cqe->res);
                break;
            case TAG_SIGNAL:
                if (cqe->res == (int32_t) sizeof siginfo) {
                    fprintf(stderr, "hand_uring_echo: signal %u, stopping\n", siginfo.ssi_signo);
                    /* Open connections go with the process, as in the other servers. */
                    return 0;
                }
                arm_signal(sfd);
                break;
            default:
                break;
            }
        }
        /* Release: the CQEs are consumed before the kernel may reuse their slots. */
        __atomic_store_n(ring.cq_head, head, __ATOMIC_RELEASE);
    }
}
