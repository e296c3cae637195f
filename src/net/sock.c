/*
 * The socket object and the socket future: every net operation, all tiers.
 *
 * Invariants:
 * - A blz__sock is a registry source (its first member) plus fixed fields.
 *   `handles` counts owner handles; the last close marks the source shut
 *   down (waiters end with -ECANCELED) and drops the owner's reference.
 * - A socket future takes a source reference at its first poll (flag HELD)
 *   and drops it when it completes or is dropped, so the descriptor cannot be
 *   closed under a syscall of an operation in flight. A connect future owns
 *   its socket outright until it hands it to the caller (flag DONE).
 * - One attempt = one syscall loop (EINTR retried, write_all accumulated).
 *   The wait around it is the registry's (blz__io_source_wait; the try tier
 *   is blz__io_source_try), shared with the pipes of src/process.
 * - Accept futures are blz_accept_future (flag ACCEPT): when accept fails
 *   for want of descriptors or memory, the future keeps its reference and
 *   its listener's readiness, sleeps BACKOFF_NS in its own sleep future (flag
 *   BACKOFF), then tries again. The await tier awaits that future; the try
 *   tier, which never waits, returns the error.
 * - Every poll spends coop budget first (blz__coop_proceed).
 */
#include "net/sock.h"

#include "blitzio/time.h"
#include "core/container.h"
#include "core/coop.h"
#include "core/future.h"
#include "os/unix/sys.h"
#include "rt/current.h"

#include <limits.h>
#include <string.h>

#define F_HELD      0x1  /* holds a source reference */
#define F_DONE      0x2  /* finished: released everything */
#define F_CONNECTED 0x4  /* connect finished synchronously */
#define F_ACCEPT    0x8  /* the future is the io_ of a blz_accept_future */
#define F_BACKOFF   0x10 /* backing off: its backoff_ sleep is filled (maybe linked) */

/* The pause of an accept that ran out of descriptors before it tries again. */
#define BACKOFF_NS (10 * BLZ_NS_PER_MS)

/* An attempt's result (no errno: those stop at 4095) for a Unix datagram
 * that the receiver's full queue refused while the sender's own socket has
 * room. No event will say the receiver has room again, so the operation
 * ends (-EAGAIN, see no_event_as_eagain) instead of waiting for one. */
#define R_RECEIVER_FULL (-4096L)

blz__io_driver *
blz__net_driver(void)
{
    blz_runtime *rt = blz__rt_current();
    return rt ? blz__rt_io(rt) : NULL;
}

/* blz__sock_wrap, but on failure fd stays open (it is the caller's). */
static int
sock_wrap_keep(blz__io_driver *d, int fd, int kind, int family, unsigned initial, blz__sock **out)
{
    blz__io_source *src;
    int rc = blz__io_source_open(d, fd, sizeof(blz__sock), initial, &src);
    if (rc < 0) {
        return rc;
    }
    blz__sock *sk = (blz__sock *) src;
    atomic_init(&sk->handles, 1u);
    atomic_init(&sk->rd_shut, 0u);
    sk->adopted = 0;
    sk->kind = (uint8_t) kind;
    sk->family = (uint8_t) family;
    sk->rd_half.dir = BLZ__DIR_READ;
    sk->wr_half.dir = BLZ__DIR_WRITE;
    if (kind == BLZ__SK_STREAM && family != BLZ_AF_UNIX) {
        /* TCP_NODELAY by default (as Go does): request/response traffic
         * otherwise meets Nagle + delayed ACK and stalls ~40 ms per reply.
         * blz_tcp_set_nodelay(s, false) brings Nagle back. */
        (void) blz__sys_setopt(fd, BLZ__TCP_NODELAY, 1);
    }
    *out = sk;
    return 0;
}

int
blz__sock_wrap(blz__io_driver *d, int fd, int kind, int family, unsigned initial, blz__sock **out)
{
    int rc = sock_wrap_keep(d, fd, kind, family, initial, out);
    if (rc < 0) {
        (void) blz__sys_close(fd);
    }
    return rc;
}

int
blz__sock_adopt(int fd, int kind, bool unix_family, blz__sock **out)
{
    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    if (fd < 0) {
        return -EBADF;
    }
    blz__io_driver *d = blz__net_driver();
    if (!d) {
        return -ESRCH;
    }
    int family, type;
    bool listening;
    int rc = blz__sys_sock_kind(fd, &family, &type, &listening);
    if (rc < 0) {
        return rc;
    }
    bool dgram = kind == BLZ__SK_DGRAM;
    if ((family == BLZ_AF_UNIX) != unix_family || (type == BLZ__SOCK_DGRAM) != dgram ||
        (!dgram && listening != (kind == BLZ__SK_LISTENER))) {
        return -EINVAL;
    }
    blz__fd_flags was;
    rc = blz__sys_nonblock_cloexec(fd, &was);
    if (rc == 0) {
        rc = sock_wrap_keep(d, fd, kind, family, BLZ__RD_READ | BLZ__RD_WRITE, out);
        if (rc < 0) {
            blz__sys_fd_flags_restore(fd, &was); /* the caller's again, as it was */
        } else {
            (*out)->adopted = 1;
        }
    }
    return rc;
}

/* The checks every call that makes a socket starts with: `out` cleared, an
 * address of a known family, a runtime with a driver. 0 or -errno. */
static int
new_socket_args(const blz_addr *a, blz__sock **out, blz_addr_family *fam, blz__io_driver **d)
{
    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    *fam = blz_addr_get_family(a);
    if (*fam == BLZ_AF_UNSPEC) {
        return -EINVAL;
    }
    *d = blz__net_driver();
    return *d ? 0 : -ESRCH;
}

int
blz__sock_bind(const blz_addr *a, int type, int backlog, int kind, blz__sock **out)
{
    blz_addr_family fam;
    blz__io_driver *d;
    int rc = new_socket_args(a, out, &fam, &d);
    if (rc < 0) {
        return rc;
    }
    int fd = blz__sys_socket(fam, type);
    if (fd < 0) {
        return fd;
    }
    rc = 0;
    if (fam != BLZ_AF_UNIX && type == BLZ__SOCK_STREAM) {
        rc = blz__sys_setopt(fd, BLZ__SO_REUSEADDR, 1);
    }
    if (rc == 0) {
        rc = blz__sys_bind(fd, a);
    }
    if (rc == 0 && backlog >= 0) {
        rc = blz__sys_listen(fd, backlog > 0 ? backlog : BLZ_LISTEN_BACKLOG);
    }
    if (rc < 0) {
        (void) blz__sys_close(fd);
        return rc;
    }
    return blz__sock_wrap(d, fd, kind, fam, BLZ__RD_READ | BLZ__RD_WRITE, out);
}

void
blz__sock_close(blz__sock *sk)
{
    if (!sk) {
        return;
    }
    /* Acq_rel: the last owner sees every other owner's use before closing. */
    if (blz__fetch_sub(&sk->handles, 1u, ACQ_REL) == 1) {
        /* Waiters first, so that they see SHUTDOWN rather than what the
         * shutdown below does to the socket. */
        blz__io_source_shutdown(&sk->src);
        if (sk->kind == BLZ__SK_LISTENER && !sk->adopted) {
            /* Stop accepting now. The descriptor closes once no operation is
             * in flight, and on io_uring the kernel holds the file until the
             * readiness poll is removed: without this a listener would take
             * (and then reset) connections for a moment after its close.
             * Not for an adopted listener: shutdown acts on the socket, not
             * on our descriptor, and whoever passed it may hold it too
             * (systemd keeps its copy, a pre-fork parent shares it), who
             * must go on listening. */
            (void) blz__sys_shutdown(sk->src.fd, BLZ_SHUT_RD);
        }
        blz__io_source_unref(&sk->src);
    }
}

/* ---- the future ------------------------------------------------------------- */

static int
op_dir(int op)
{
    switch (op) {
    case BLZ__OP_S_READ:
    case BLZ__OP_S_PEEK:
    case BLZ__OP_S_READV:
    case BLZ__OP_S_ACCEPT:
    case BLZ__OP_S_RECV_FROM:
    case BLZ__OP_S_PEEK_FROM:
    case BLZ__OP_S_RECV_CRED:
    case BLZ__OP_S_RECV_MANY:
    case BLZ__OP_S_READY_READ:
    case BLZ__OP_S_USER_READ:
        return BLZ__DIR_READ;
    default:
        return BLZ__DIR_WRITE;
    }
}

/* Errors of accept that concern only the connection that was being accepted. */
static int
accept_skippable(long r)
{
    return r == -ECONNABORTED || r == -EPROTO || r == -EPERM || r == -ENETDOWN ||
           r == -ENOPROTOOPT || r == -EHOSTDOWN || r == -ENONET || r == -EHOSTUNREACH ||
           r == -EOPNOTSUPP || r == -ENETUNREACH || r == -EINTR;
}

static long
do_accept(blz_io_future *f, blz__sock *sk)
{
    long r;
    do {
        r = blz__sys_accept(sk->src.fd, (blz_addr *) f->aux_);
    } while (accept_skippable(r));
    if (r == -EINVAL && (blz__io_source_readiness(&sk->src) & BLZ__RD_SHUTDOWN)) {
        return -ECANCELED; /* the listener was closed (shut down) under us */
    }
    if (r < 0) {
        return r;
    }
    blz__sock *ns;
    /* An accepted TCP stream takes completion receive where the backend has
     * it (io_uring): its first data then arrives as an event, not a guess. */
    unsigned initial =
        sk->family == BLZ_AF_UNIX ? BLZ__RD_READ | BLZ__RD_WRITE : BLZ__RD_WRITE | BLZ__OPEN_RX;
    int rc = blz__sock_wrap(sk->src.driver, (int) r, BLZ__SK_STREAM, sk->family, initial, &ns);
    if (rc < 0) {
        return rc;
    }
    *(blz__sock **) f->buf_ = ns;
    return 0;
}

/*
 * The `full` of blz__io_source_wait: a stream's plain read or write may learn
 * from a short count that the kernel's queue is empty (or its send buffer
 * full). Writes: TCP and Unix streams. Reads: TCP only. A Unix stream read
 * also stops early at a message that carries descriptors or other
 * credentials, with more data queued behind it, and no new event would come
 * for that data. TCP has one such case too, urgent (MSG_OOB) data, which
 * stops a read at its mark; Tokio makes the same trade, and a peer that
 * sends urgent data to a blitzio reader should expect its reads to stall
 * until more data arrives.
 */
static long
stream_full(const blz__sock *sk, int op, size_t len)
{
    if (sk->kind != BLZ__SK_STREAM || len > LONG_MAX) {
        return 0;
    }
    if (op == BLZ__OP_S_WRITE || (op == BLZ__OP_S_READ && sk->family != BLZ_AF_UNIX)) {
        return (long) len;
    }
    return 0;
}

/* readv on a completion-receive stream: the buffers filled in turn, up to
 * the first that comes back short. Once some data is in, a buffer is read
 * only while received data is held: an end or an error behind the data
 * (which a read reports once) is left for the next call, as recvmsg does. */
static long
rx_readv(blz__sock *sk, const blz_iovec *iov, int n)
{
    long total = 0;
    for (int i = 0; i < n; i++) {
        if (iov[i].len == 0) {
            continue;
        }
        if (total > 0 && !blz__io_rx_held(&sk->src)) {
            break;
        }
        long r = blz__io_rx_read(&sk->src, iov[i].base, iov[i].len, 0);
        if (r <= 0) {
            return total > 0 ? total : r;
        }
        total += r;
        if ((size_t) r < iov[i].len) {
            break;
        }
    }
    return total;
}

/* The syscall of every operation but the plain stream transfers (one try;
 * -EINTR is retried by attempt). Out of line: the datagram and accept cases
 * need message headers and addresses on the stack, and inlined into attempt
 * they made its frame 330 bytes, a run of cold stack lines written on every
 * read of a fiber that waited (callgrind, 1,000 connections: two last-level
 * write misses per echoed message, 4.0 -> 2.0, went with them). */
static BLZ_NOINLINE long
attempt_other(blz_io_future *f, blz__sock *sk, int fd)
{
    switch (f->op_) {
    case BLZ__OP_S_PEEK:
        if (sk->src.rx_on) {
            return blz__io_rx_read(&sk->src, f->buf_, f->len_, 1);
        }
        return blz__sys_recv(fd, f->buf_, f->len_, BLZ__MSG_PEEK);
    case BLZ__OP_S_READV:
        if (sk->src.rx_on) {
            return rx_readv(sk, f->buf_, (int) f->len_);
        }
        return blz__sys_recvv(fd, f->buf_, (int) f->len_);
    case BLZ__OP_S_WRITEV:
        return blz__sys_sendv(fd, f->buf_, (int) f->len_);
    case BLZ__OP_S_ACCEPT:
        return do_accept(f, sk);
    case BLZ__OP_S_CONNECT:
    case BLZ__OP_S_FINISH_CONNECT:
        return blz__sys_connect_result(fd); /* -EAGAIN: still in progress */
    case BLZ__OP_S_RECV_FROM:
    case BLZ__OP_S_PEEK_FROM:
    case BLZ__OP_S_RECV_CRED: {
        blz_addr *from = f->aux_;
        blz_ucred *cred = NULL;
        if (f->op_ == BLZ__OP_S_RECV_CRED && f->aux_) {
            blz_unix_sender *sender = f->aux_;
            from = &sender->addr;
            cred = &sender->cred;
        }
        long r = blz__sys_recvfrom(fd, f->buf_, f->len_,
                                   f->op_ == BLZ__OP_S_PEEK_FROM ? BLZ__MSG_PEEK : 0, from, cred);
        if (r >= 0 && from && sk->family == BLZ_AF_UNIX &&
            blz_addr_get_family(from) == BLZ_AF_UNSPEC) {
            blz__sys_unnamed_unix(from); /* the sender has no name */
        }
        return r;
    }
    case BLZ__OP_S_SEND_TO: {
        long r = blz__sys_sendto(fd, f->buf_, f->len_, (const blz_addr *) f->aux_);
        if (r == -EAGAIN && sk->family == BLZ_AF_UNIX &&
            blz__sys_ready_now(fd, BLZ_WRITABLE) == 0) {
            /* Refused by the receiver, not for want of room here: the kernel
             * wakes a sender only through its own datagrams (or a connected
             * peer's), and the write space each refusal frees would make a
             * waiter try again at once, for ever. */
            return R_RECEIVER_FULL;
        }
        return r;
    }
    case BLZ__OP_S_RECV_MANY:
        return blz__sys_recv_many(fd, f->buf_, f->len_);
    case BLZ__OP_S_SEND_MANY:
        return blz__sys_send_many(fd, f->buf_, f->len_);
    case BLZ__OP_S_SEND_SEGMENTS: {
        const blz_udp_segments *g = f->buf_;
        return blz__sys_send_segments(fd, g->buf, g->len, g->segment, g->addr);
    }
    case BLZ__OP_S_READY_READ:
    case BLZ__OP_S_READY_WRITE:
        return 0; /* attempted only once the direction reports ready */
    case BLZ__OP_S_USER_READ:
    case BLZ__OP_S_USER_WRITE: {
        return blz__async_io_call(blz__container_of(f, blz_async_io_future, io_), fd);
    }
    default:
        return -EINVAL;
    }
}

/* One attempt (a blz__io_attempt_fn): the syscall(s) for the operation of
 * future `arg`; -EAGAIN when the socket was not ready after all. */
static long
attempt(void *arg)
{
    blz_io_future *f = arg;
    blz__sock *sk = f->obj_;
    int fd = sk->src.fd;
    long r;
    if (blz__load(&sk->rd_shut, RELAXED) &&
        (f->op_ == BLZ__OP_S_READ || f->op_ == BLZ__OP_S_PEEK || f->op_ == BLZ__OP_S_READV)) {
        /* Shut for reading: what the peer sends later is not for us (the
         * kernel would still hand a TCP peer's bytes to recv). */
        return 0;
    }
    for (;;) {
        switch (f->op_) {
        case BLZ__OP_S_READ:
            r = sk->src.rx_on ? blz__io_rx_read(&sk->src, f->buf_, f->len_, 0)
                              : blz__sys_recv(fd, f->buf_, f->len_, 0);
            break;
        case BLZ__OP_S_WRITE:
            r = blz__sys_send(fd, f->buf_, f->len_);
            break;
        case BLZ__OP_S_WRITE_ALL:
            if (f->done_ >= f->len_) {
                return 0;
            }
            r = blz__sys_send(fd, (const char *) f->buf_ + f->done_, f->len_ - f->done_);
            if (r >= 0) {
                f->done_ += (size_t) r;
                continue;
            }
            break;
        default:
            r = attempt_other(f, sk, fd);
            break;
        }
        if (r == -EINTR) {
            continue;
        }
        return r;
    }
}

/* The accept future that `f` is the io_ of (flag ACCEPT only). */
static blz_accept_future *
accept_of(blz_io_future *f)
{
    return blz__container_of(f, blz_accept_future, io_);
}

/* Errors of accept that mean "no descriptor or memory for it now": the
 * connection stays in the backlog and the listener stays readable. */
static int
accept_exhausted(long r)
{
    return r == -EMFILE || r == -ENFILE || r == -ENOBUFS || r == -ENOMEM;
}

/* An attempt's result as the caller sees it: a receiver's full queue is
 * -EAGAIN, the caller's to retry (blz__sock_await pauses between tries). */
static long
no_event_as_eagain(long r)
{
    return r == R_RECEIVER_FULL ? -EAGAIN : r;
}

/* Releases what f holds and records its result. */
static blz_poll
finish(blz_io_future *f, blz__sock *sk, long r)
{
    r = no_event_as_eagain(r);
    blz__io_waiter_cancel(&sk->src, &f->waiter_);
    if (f->flags_ & F_BACKOFF) {
        blz_future_drop(&accept_of(f)->backoff_.base);
    }
    if (f->op_ == BLZ__OP_S_CONNECT) {
        if (r == 0) {
            *(blz__sock **) f->aux_ = sk; /* the caller owns it now */
        } else {
            blz__sock_close(sk);
        }
    } else if (f->flags_ & F_HELD) {
        blz__io_source_unref(&sk->src);
    }
    if (f->op_ == BLZ__OP_S_CONNECT && r == 0 && sk->family != BLZ_AF_UNIX) {
        blz__io_source_rx_start(&sk->src); /* connected, and nobody has it yet */
    }
    if (f->op_ == BLZ__OP_S_USER_READ || f->op_ == BLZ__OP_S_USER_WRITE) {
        blz__container_of(f, blz_async_io_future, io_)->value_ = r; /* unclamped */
    }
    f->flags_ = F_DONE;
    f->obj_ = NULL;
    f->base.result = r > INT_MAX ? INT_MAX : (int) r;
    return BLZ_READY;
}

/* An accept future out of descriptors: polls its back-off sleep. READY when
 * it is over (flag cleared) or failed (*res set: the future finishes). */
static blz_poll
backoff_poll(blz_io_future *f, blz_context *cx, long *res)
{
    blz_accept_future *af = accept_of(f);
    if (blz_future_poll(&af->backoff_.base, cx) == BLZ_PENDING) {
        return BLZ_PENDING;
    }
    int rc = af->backoff_.base.result; /* 0, or -ECANCELED: the runtime's timers are gone */
    f->flags_ &= ~F_BACKOFF;
    *res = rc < 0 ? rc : 0;
    return BLZ_READY;
}

static blz_poll
sock_poll(blz_future *base, blz_context *cx)
{
    blz_io_future *f = (blz_io_future *) base;
    blz__sock *sk = f->obj_;
    if (!sk) {
        return BLZ_READY; /* finished earlier: result kept */
    }
    if (!blz__coop_proceed(cx)) {
        return BLZ_PENDING; /* budget spent: the task was woken to run again later */
    }
    if (f->op_ == BLZ__OP_S_CONNECT && (f->flags_ & F_CONNECTED)) {
        return finish(f, sk, 0);
    }
    if (f->op_ != BLZ__OP_S_CONNECT && !(f->flags_ & F_HELD)) {
        blz__io_source_ref(&sk->src);
        f->flags_ |= F_HELD;
    }
    for (;;) {
        long n = 0;
        if (f->flags_ & F_BACKOFF) {
            if (backoff_poll(f, cx, &n) == BLZ_PENDING) {
                return BLZ_PENDING;
            }
            if (n < 0) {
                return finish(f, sk, n);
            }
        }
        if (!blz__io_source_wait(&sk->src, &f->waiter_, op_dir(f->op_), cx, attempt, f,
                                 stream_full(sk, f->op_, f->len_), &n)) {
            return BLZ_PENDING;
        }
        if (!(f->flags_ & F_ACCEPT) || !accept_exhausted(n)) {
            return finish(f, sk, n);
        }
        /* Out of descriptors: spinning on a listener that stays readable
         * would burn a CPU. Pause, keeping the reference and the readiness,
         * then try again. */
        blz_sleep_fut(&accept_of(f)->backoff_, BACKOFF_NS);
        f->flags_ |= F_BACKOFF;
    }
}

static void
sock_drop(blz_future *base)
{
    blz_io_future *f = (blz_io_future *) base;
    blz__sock *sk = f->obj_;
    if (!sk) {
        return;
    }
    blz__io_waiter_cancel(&sk->src, &f->waiter_);
    if (f->flags_ & F_BACKOFF) {
        blz_future_drop(&accept_of(f)->backoff_.base);
    }
    if (f->op_ == BLZ__OP_S_CONNECT) {
        blz__sock_close(sk); /* never handed out: close the half-made socket */
    } else if (f->flags_ & F_HELD) {
        blz__io_source_unref(&sk->src);
    }
    f->flags_ = F_DONE;
    f->obj_ = NULL;
    f->base.result = -ECANCELED;
}

static const blz_future_vtable sock_vt = {sock_poll, sock_drop};

/* Stream operations with nothing to move finish at once (a zero-length recv
 * on an empty socket would say EAGAIN and wait for data it does not want).
 * Vectors count by their total, so a readv of empty buffers behaves as a
 * read of n == 0. Datagram operations do not: an empty datagram is a
 * message. For arguments that passed check_args. */
static bool
nothing_to_move(int op, const void *buf, size_t len)
{
    if (op == BLZ__OP_S_READV || op == BLZ__OP_S_WRITEV) {
        const blz_iovec *iov = buf;
        for (size_t i = 0; i < len; i++) {
            if (iov[i].len) {
                return false;
            }
        }
        return true;
    }
    return len == 0 && (op == BLZ__OP_S_READ || op == BLZ__OP_S_PEEK || op == BLZ__OP_S_WRITE ||
                        op == BLZ__OP_S_WRITE_ALL);
}

/* Checks arguments common to all tiers; 0 or -EINVAL. Clamps lengths so a
 * count always fits the int result. */
static int
// NOLINTNEXTLINE(readability-function-cognitive-complexity): a flat list of checks
check_args(blz__sock *sk, int op, const void *buf, size_t *len)
{
    if (!sk) {
        return -EINVAL;
    }
    if (op == BLZ__OP_S_READV || op == BLZ__OP_S_WRITEV) {
        const blz_iovec *iov = buf;
        if (!iov || *len < 1 || *len > BLZ_IOV_MAX) {
            return -EINVAL;
        }
        size_t total = 0;
        for (size_t i = 0; i < *len; i++) {
            if (iov[i].len > (size_t) INT_MAX - total || (!iov[i].base && iov[i].len)) {
                return -EINVAL;
            }
            total += iov[i].len;
        }
        return 0;
    }
    if (op == BLZ__OP_S_RECV_MANY || op == BLZ__OP_S_SEND_MANY) {
        const blz_udp_msg *m = buf;
        if (!m || *len < 1) {
            return -EINVAL;
        }
        if (*len > BLZ_UDP_MANY_MAX) {
            *len = BLZ_UDP_MANY_MAX;
        }
        for (size_t i = 0; i < *len; i++) {
            if (!m[i].buf && m[i].len) {
                return -EINVAL;
            }
        }
        return 0;
    }
    if (op == BLZ__OP_S_SEND_SEGMENTS) {
        const blz_udp_segments *g = buf;
        return g && (g->buf || !g->len) && g->segment >= 1 && g->segment <= 65535 ? 0 : -EINVAL;
    }
    if (op == BLZ__OP_S_ACCEPT) {
        return buf && sk->kind == BLZ__SK_LISTENER ? 0 : -EINVAL;
    }
    if (op == BLZ__OP_S_CONNECT || op == BLZ__OP_S_FINISH_CONNECT) {
        return sk->kind == BLZ__SK_STREAM ? 0 : -EINVAL;
    }
    if (!buf && *len) {
        return -EINVAL;
    }
    if (op != BLZ__OP_S_WRITE_ALL && *len > (size_t) INT_MAX) {
        *len = (size_t) INT_MAX;
    }
    return 0;
}

void
blz__sock_fut(blz__sock *sk, int op, void *buf, size_t len, void *aux, blz_io_future *f)
{
    if (!f) {
        return;
    }
    int rc = check_args(sk, op, buf, &len);
    if (rc < 0) {
        blz__io_future_ready(f, rc);
        return;
    }
    if (nothing_to_move(op, buf, len)) {
        blz__io_future_ready(f, 0); /* done without a syscall */
        return;
    }
    blz__io_future_start(f, &sock_vt, sk, op, buf, len, aux);
}

long
blz__sock_try(blz__sock *sk, int op, void *buf, size_t len, void *aux)
{
    int rc = check_args(sk, op, buf, &len);
    if (rc < 0) {
        return rc;
    }
    if (nothing_to_move(op, buf, len)) {
        return 0;
    }
    blz_io_future f; /* only what attempt() reads: no future, no waiter */
    f.obj_ = sk;
    f.buf_ = buf;
    f.len_ = len;
    f.done_ = 0;
    f.aux_ = aux;
    f.op_ = op;
    f.flags_ = 0;
    return no_event_as_eagain(
        blz__io_source_try(&sk->src, op_dir(op), attempt, &f, stream_full(sk, op, len)));
}

/* Whether the await tier tries `op` before building a future: a data
 * operation whose direction reports ready (one load; a socket drained by its
 * last read does not, and goes straight to the future). */
static bool
tries_first(blz__sock *sk, int op)
{
    if (!sk || op == BLZ__OP_S_ACCEPT || op == BLZ__OP_S_CONNECT ||
        op == BLZ__OP_S_FINISH_CONNECT) {
        return false;
    }
    return blz__io_ready_for(blz__io_source_readiness(&sk->src), op_dir(op));
}

/*
 * The wait of an operation the kernel has no event for (a Unix listener's
 * full backlog, a Unix datagram receiver's full queue): sleeps `*pause_ms`
 * (1, 2, 4 ... 64 ms), cut to what is left before `deadline` (UINT64_MAX:
 * none), and doubles it for the next round. 0 to try again; -ETIMEDOUT once
 * the deadline has passed; the sleep's error when the task is cancelled.
 */
static int
pause_for_room(int64_t *pause_ms, blz_instant deadline)
{
    blz_duration pause = blz_ms(*pause_ms);
    if (deadline != UINT64_MAX) {
        blz_instant now = blz_clock_now();
        if (now >= deadline) {
            return -ETIMEDOUT;
        }
        if ((uint64_t) pause > deadline - now) {
            pause = (blz_duration) (deadline - now);
        }
    }
    *pause_ms = *pause_ms < 64 ? *pause_ms * 2 : 64;
    return blz_sleep(pause);
}

/* One round of the await tier (see blz__sock_await). */
static long
await_once(blz__sock *sk, int op, void *buf, size_t len, void *aux)
{
    if (tries_first(sk, op) && blz__await_fast_ok()) {
        int once = op == BLZ__OP_S_WRITE_ALL ? BLZ__OP_S_WRITE : op;
        blz__io_source_ref(&sk->src);
        long r = blz__sock_try(sk, once, buf, len, aux);
        blz__io_source_unref(&sk->src);
        if (op != BLZ__OP_S_WRITE_ALL || r < 0) {
            if (r != -EAGAIN) {
                return r;
            }
        } else if ((size_t) r == len) {
            return 0;
        } else {
            buf = (char *) buf + r; /* write_all: the rest through the future */
            len -= (size_t) r;
        }
    }
    blz_io_future f;
    blz__sock_fut(sk, op, buf, len, aux, &f);
    return blz_await(&f.base);
}

/*
 * The await tier. Where trying first cannot be told from awaiting (a fiber
 * with budget left and not aborted, or a plain thread: blz__await_fast_ok), a
 * data operation on a socket that is ready runs its syscall from here, as the
 * try tier does: no future, no poll, and none of their frames on the fiber's
 * stack (a stream's writes are the common case). Not ready, or short for
 * write_all, it waits through the future as before. The reference keeps the
 * descriptor open during the syscall, as a future's first poll does.
 *
 * A Unix datagram send that the future ends with -EAGAIN met a receiver's
 * full queue, which no event reports the end of: it pauses (1, 2, 4 ... 64
 * ms) and tries again, as a Unix connect does at a full backlog, holding a
 * reference throughout, as a future does, so that a close meanwhile ends it
 * (-ECANCELED) rather than releasing the socket under it. The await tier
 * never reports -EAGAIN.
 */
long
blz__sock_await(blz__sock *sk, int op, void *buf, size_t len, void *aux)
{
    if (op != BLZ__OP_S_SEND_TO || !sk || sk->family != BLZ_AF_UNIX) {
        return await_once(sk, op, buf, len, aux);
    }
    blz__io_source_ref(&sk->src);
    long r = await_once(sk, op, buf, len, aux);
    for (int64_t pause_ms = 1; r == -EAGAIN;) {
        int rc = pause_for_room(&pause_ms, UINT64_MAX);
        if (rc < 0) {
            r = rc; /* cancelled */
            break;
        }
        r = await_once(sk, op, buf, len, aux);
    }
    blz__io_source_unref(&sk->src);
    return r;
}

/* ---- readiness ----------------------------------------------------------------
 * An operation without a syscall: its attempt succeeds as soon as the
 * registry reports the direction ready, and it leaves that readiness as it
 * is (clearing it is the business of the read or write that finds EAGAIN).
 */

static int
ready_op(int interest)
{
    switch (interest) {
    case BLZ_READABLE:
        return BLZ__OP_S_READY_READ;
    case BLZ_WRITABLE:
        return BLZ__OP_S_READY_WRITE;
    default:
        return -EINVAL;
    }
}

/* The refusals of the try_io and async_io calls: 0, -EINVAL or -EOPNOTSUPP. */
static int
user_io_check(const blz__sock *sk, int interest, blz_io_fn fn)
{
    if (!sk || !fn || (interest != BLZ_READABLE && interest != BLZ_WRITABLE)) {
        return -EINVAL;
    }
    if (interest == BLZ_READABLE && sk->src.rx_on) {
        return -EOPNOTSUPP; /* its bytes are in the kernel's lent buffers, not the socket */
    }
    return 0;
}

long
blz__sock_try_io(blz__sock *sk, int interest, blz_io_fn fn, void *arg)
{
    int rc = user_io_check(sk, interest, fn);
    if (rc < 0) {
        return rc;
    }
    int dir = interest == BLZ_READABLE ? BLZ__DIR_READ : BLZ__DIR_WRITE;
    return blz__io_source_try_io(&sk->src, dir, fn, arg);
}

void
blz__sock_io_fut(blz__sock *sk, int interest, blz_io_fn fn, void *arg, blz_async_io_future *f)
{
    if (!f) {
        return;
    }
    blz__async_io_prepare(f, fn, arg);
    int rc = user_io_check(sk, interest, fn);
    if (rc < 0) {
        blz__io_future_ready(&f->io_, rc);
        return;
    }
    int op = interest == BLZ_READABLE ? BLZ__OP_S_USER_READ : BLZ__OP_S_USER_WRITE;
    blz__sock_fut(sk, op, NULL, 0, NULL, &f->io_);
}

long
blz__sock_io(blz__sock *sk, int interest, blz_io_fn fn, void *arg)
{
    blz_async_io_future f;
    blz__sock_io_fut(sk, interest, fn, arg, &f);
    return blz__async_io_await(&f);
}

int
blz__sock_ready(blz__sock *sk, int interest)
{
    int op = ready_op(interest);
    return op < 0 ? op : (int) blz__sock_await(sk, op, NULL, 0, NULL);
}

int
blz__sock_try_ready(blz__sock *sk, int interest)
{
    int op = ready_op(interest);
    return op < 0 ? op : (int) blz__sock_try(sk, op, NULL, 0, NULL);
}

void
blz__sock_ready_fut(blz__sock *sk, int interest, blz_io_future *f)
{
    int op = ready_op(interest);
    if (op < 0) {
        if (f) {
            blz__io_future_ready(f, op);
        }
        return;
    }
    blz__sock_fut(sk, op, NULL, 0, NULL, f);
}

/* ---- accept and connect, await tier ----------------------------------------- */

static const blz_future_vtable accept_vt = {sock_poll, sock_drop};

void
blz__sock_accept_fut(blz__sock *l, blz__sock **out, blz_addr *peer, blz_accept_future *f)
{
    if (!f) {
        return;
    }
    blz__sock_fut(l, BLZ__OP_S_ACCEPT, out, 0, peer, &f->io_);
    if (f->io_.obj_) { /* filled for real, not failed at once */
        f->io_.base.vtable = &accept_vt;
        f->io_.flags_ = F_ACCEPT;
    }
}

int
blz__sock_accept(blz__sock *l, blz__sock **out, blz_addr *peer)
{
    blz_accept_future f;
    blz__sock_accept_fut(l, out, peer, &f);
    return blz_await(&f.base);
}

/* Starts connecting fd (owned; closed on failure) and registers it. */
static int
connect_start(blz__io_driver *d, int fd, int family, const blz_addr *a, bool nodelay,
              blz__sock **out)
{
    *out = NULL;
    int r = blz__sys_connect(fd, a);
    if (r != 0 && r != -EINPROGRESS) {
        (void) blz__sys_close(fd);
        return r;
    }
    /* In progress: only a real event may say the connection is made. */
    int rc = blz__sock_wrap(d, fd, BLZ__SK_STREAM, family,
                            r == 0 ? (BLZ__RD_READ | BLZ__RD_WRITE) : 0, out);
    if (rc == 0 && !nodelay) {
        (void) blz__sys_setopt(fd, BLZ__TCP_NODELAY, 0); /* over the wrap's default */
    }
    return rc < 0 ? rc : r;
}

void
blz__sock_connect_fut(blz__io_driver *d, int fd, int family, const blz_addr *a, bool nodelay,
                      blz__sock **out, blz_io_future *f)
{
    blz__sock *sk;
    int r = connect_start(d, fd, family, a, nodelay, &sk);
    if (!sk) {
        blz__io_future_ready(f, r);
        return;
    }
    blz__sock_fut(sk, BLZ__OP_S_CONNECT, NULL, 0, out, f);
    if (r == 0) {
        f->flags_ |= F_CONNECTED;
    }
}

int
blz__sock_try_connect(const blz_addr *a, blz__sock **out)
{
    blz_addr_family fam;
    blz__io_driver *d;
    int rc = new_socket_args(a, out, &fam, &d);
    if (rc < 0) {
        return rc;
    }
    int fd = blz__sys_socket(fam, BLZ__SOCK_STREAM);
    if (fd < 0) {
        return fd;
    }
    return connect_start(d, fd, fam, a, true, out);
}

int
blz__sock_connect(const blz_addr *a, blz_instant deadline, blz__sock **out)
{
    blz_addr_family fam;
    blz__io_driver *d;
    int rc = new_socket_args(a, out, &fam, &d);
    if (rc < 0) {
        return rc;
    }
    for (int64_t pause_ms = 1;;) {
        int fd = blz__sys_socket(fam, BLZ__SOCK_STREAM);
        if (fd < 0) {
            return fd;
        }
        blz_io_future f;
        blz__sock_connect_fut(d, fd, fam, a, true, out, &f);
        int r = deadline == UINT64_MAX ? blz_await(&f.base) : blz_timeout_until(&f.base, deadline);
        if (r == -EDEADLK) {
            blz_future_drop(&f.base); /* never awaited: close the half-made socket */
        }
        if (r != -EAGAIN || fam != BLZ_AF_UNIX) {
            return r;
        }
        /* A Unix listener's backlog is full, and the kernel has no event for
         * "room again": pause and try anew, as accept does under EMFILE. The
         * await tier never reports -EAGAIN. */
        r = pause_for_room(&pause_ms, deadline);
        if (r < 0) {
            return r; /* past the deadline, or cancelled */
        }
    }
}

/* ---- options and addresses ---------------------------------------------------- */

int
blz__sock_setopt(const blz__sock *sk, int opt, int value)
{
    return sk ? blz__sys_setopt(sk->src.fd, (enum blz__sockopt) opt, value) : -EINVAL;
}

int
blz__sock_set_ttl(const blz__sock *sk, int ttl)
{
    if (ttl < 1 || ttl > 255) {
        return -EINVAL;
    }
    return blz__sock_setopt(sk, BLZ__IP_TTL, ttl);
}

int
blz__sock_ttl(const blz__sock *sk, int *ttl)
{
    return sk && ttl ? blz__sys_getopt(sk->src.fd, BLZ__IP_TTL, ttl) : -EINVAL;
}

int
blz__sock_local_addr(const blz__sock *sk, blz_addr *out)
{
    return sk && out ? blz__sys_sockname(sk->src.fd, out) : -EINVAL;
}

int
blz__sock_peer_addr(const blz__sock *sk, blz_addr *out)
{
    return sk && out ? blz__sys_peername(sk->src.fd, out) : -EINVAL;
}

int
blz__sock_shutdown(blz__sock *sk, int how)
{
    if (!sk) {
        return -EINVAL;
    }
    int rc = blz__sys_shutdown(sk->src.fd, how);
    if (rc == 0 && (how == BLZ_SHUT_RD || how == BLZ_SHUT_RDWR)) {
        /* Later reads return 0 (io.h), and a read waiting now wakes to say
         * so: the flag is published by the readiness update's release. */
        blz__store(&sk->rd_shut, 1u, RELAXED);
        blz__io_source_ready(&sk->src, BLZ__RD_READ);
    }
    return rc;
}

/* ---- split halves --------------------------------------------------------------- */

int
blz__sock_split(blz__sock *sk, blz__sock_half **rd, blz__sock_half **wr)
{
    if (!sk || !rd || !wr || sk->kind != BLZ__SK_STREAM) {
        return -EINVAL;
    }
    /* The stream's one handle becomes the two halves' (1 -> 2). A stream
     * split before has two already: a second split would leak one. */
    uint32_t one = 1;
    if (!blz__cas(&sk->handles, &one, 2u, RELAXED, RELAXED)) {
        return -EINVAL;
    }
    *rd = &sk->rd_half;
    *wr = &sk->wr_half;
    return 0;
}

blz__sock *
blz__sock_half_sock(blz__sock_half *h)
{
    if (!h) {
        return NULL;
    }
    return h->dir == BLZ__DIR_READ ? blz__container_of(h, blz__sock, rd_half)
                                   : blz__container_of(h, blz__sock, wr_half);
}

void
blz__sock_half_close(blz__sock_half *h)
{
    blz__sock *sk = blz__sock_half_sock(h);
    if (sk && h->dir == BLZ__DIR_WRITE) {
        /* Writes waiting on the half end now (-ECANCELED), marked before the
         * shutdown so that they do not wake to its EPIPE (TCP), nor wait on
         * for room that a Unix socket, shut or not, reports only once the
         * peer reads. */
        blz__io_source_shutdown_write(&sk->src);
        (void) blz__sys_shutdown(sk->src.fd, BLZ_SHUT_WR); /* the peer sees end-of-file */
    } else if (sk) {
        /* Reads waiting on the half end now (-ECANCELED), not when the
         * write half closes too. */
        blz__io_source_shutdown_read(&sk->src);
    }
    blz__sock_close(sk);
}
