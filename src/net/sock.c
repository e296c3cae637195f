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
 * - One attempt = one syscall loop (EINTR retried, write_all accumulated);
 *   EAGAIN clears the direction's readiness against the tick it was tried
 *   with, then the future re-polls readiness, which links the waiter only if
 *   no new event came meanwhile. The try tier is that attempt without waiting.
 * - Every poll spends coop budget first (blz__coop_proceed).
 */
#include "net/sock.h"

#include "blitzio/time.h"
#include "core/coop.h"
#include "os/unix/sys.h"
#include "rt/current.h"

#include <limits.h>
#include <string.h>

#define F_HELD      0x1 /* holds a source reference */
#define F_DONE      0x2 /* finished: released everything */
#define F_CONNECTED 0x4 /* connect finished synchronously */

blz__io_driver *
blz__net_driver(void)
{
    blz_runtime *rt = blz__rt_current();
    return rt ? blz__rt_io(rt) : NULL;
}

int
blz__sock_wrap(blz__io_driver *d, int fd, int kind, int family, unsigned initial, blz__sock **out)
{
    blz__io_source *src;
    int rc = blz__io_source_open(d, fd, sizeof(blz__sock), initial, &src);
    if (rc < 0) {
        (void) blz__sys_close(fd);
        return rc;
    }
    blz__sock *sk = (blz__sock *) src;
    atomic_init(&sk->handles, 1u);
    sk->kind = (uint8_t) kind;
    sk->family = (uint8_t) family;
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
blz__sock_bind(const blz_addr *a, int type, int backlog, int kind, blz__sock **out)
{
    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    blz_addr_family fam = blz_addr_get_family(a);
    if (fam == BLZ_AF_UNSPEC) {
        return -EINVAL;
    }
    blz__io_driver *d = blz__net_driver();
    if (!d) {
        return -ESRCH;
    }
    int fd = blz__sys_socket(fam, type);
    if (fd < 0) {
        return fd;
    }
    int rc = 0;
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
        if (sk->kind == BLZ__SK_LISTENER) {
            /* Stop accepting now. The descriptor closes once no operation is
             * in flight, and on io_uring the kernel holds the file until the
             * readiness poll is removed: without this a listener would take
             * (and then reset) connections for a moment after its close. */
            (void) blz__sys_shutdown(sk->src.fd, BLZ_SHUT_RD);
        }
        blz__io_source_unref(&sk->src);
    }
}

/* ---- the future ------------------------------------------------------------- */

static blz_poll
ready_poll(blz_future *base, blz_context *cx)
{
    (void) base;
    (void) cx;
    return BLZ_READY;
}

static const blz_future_vtable ready_vt = {ready_poll, NULL};

void
blz__io_fut_fail(blz_io_future *f, int err)
{
    memset(f, 0, sizeof *f);
    blz_future_init(&f->base, &ready_vt);
    f->base.result = err;
}

static int
op_dir(int op)
{
    switch (op) {
    case BLZ__OP_S_READ:
    case BLZ__OP_S_PEEK:
    case BLZ__OP_S_READV:
    case BLZ__OP_S_ACCEPT:
    case BLZ__OP_S_RECV_FROM:
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
    int rc = blz__sock_wrap(sk->src.driver, (int) r, BLZ__SK_STREAM, sk->family,
                            BLZ__RD_READ | BLZ__RD_WRITE, &ns);
    if (rc < 0) {
        return rc;
    }
    *(blz__sock **) f->buf_ = ns;
    return 0;
}

/* One attempt: the syscall(s) for f's operation. -EAGAIN after clearing
 * readiness against `seen`; otherwise the final result. */
static long
attempt(blz_io_future *f, blz__sock *sk, uint64_t seen)
{
    int fd = sk->src.fd;
    long r;
    for (;;) {
        switch (f->op_) {
        case BLZ__OP_S_READ:
            r = blz__sys_recv(fd, f->buf_, f->len_, 0);
            break;
        case BLZ__OP_S_PEEK:
            r = blz__sys_recv(fd, f->buf_, f->len_, BLZ__MSG_PEEK);
            break;
        case BLZ__OP_S_READV:
            r = blz__sys_recvv(fd, f->buf_, (int) f->len_);
            break;
        case BLZ__OP_S_WRITE:
            r = blz__sys_send(fd, f->buf_, f->len_);
            break;
        case BLZ__OP_S_WRITEV:
            r = blz__sys_sendv(fd, f->buf_, (int) f->len_);
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
        case BLZ__OP_S_ACCEPT:
            r = do_accept(f, sk);
            break;
        case BLZ__OP_S_RECV_FROM:
            r = blz__sys_recvfrom(fd, f->buf_, f->len_, 0, (blz_addr *) f->aux_);
            if (r >= 0 && f->aux_ && sk->family == BLZ_AF_UNIX &&
                blz_addr_get_family(f->aux_) == BLZ_AF_UNSPEC) {
                blz__sys_unnamed_unix(f->aux_); /* the sender has no name */
            }
            break;
        case BLZ__OP_S_SEND_TO:
            r = blz__sys_sendto(fd, f->buf_, f->len_, (const blz_addr *) f->aux_);
            break;
        default:
            return -EINVAL;
        }
        if (r == -EINTR) {
            continue;
        }
        if (r == -EAGAIN) { /* == -EWOULDBLOCK on Linux */
            blz__io_source_clear(&sk->src, op_dir(f->op_), seen);
            return -EAGAIN;
        }
        return r;
    }
}

/* Releases what f holds and records its result. */
static blz_poll
finish(blz_io_future *f, blz__sock *sk, long r)
{
    blz__io_waiter_cancel(&sk->src, &f->waiter_);
    if (f->op_ == BLZ__OP_S_CONNECT) {
        if (r == 0) {
            *(blz__sock **) f->aux_ = sk; /* the caller owns it now */
        } else {
            blz__sock_close(sk);
        }
    } else if (f->flags_ & F_HELD) {
        blz__io_source_unref(&sk->src);
    }
    f->flags_ = F_DONE;
    f->obj_ = NULL;
    f->base.result = r > INT_MAX ? INT_MAX : (int) r;
    return BLZ_READY;
}

static long
connect_step(blz__sock *sk)
{
    int r = blz__sys_connect_result(sk->src.fd);
    return r;
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
    int dir = op_dir(f->op_);
    for (;;) {
        uint64_t r = blz__io_source_poll(&sk->src, &f->waiter_, dir, cx);
        if (r == 0) {
            return BLZ_PENDING;
        }
        if (r & BLZ__RD_SHUTDOWN) {
            return finish(f, sk, -ECANCELED);
        }
        long n;
        if (f->op_ == BLZ__OP_S_CONNECT) {
            n = connect_step(sk);
            if (n == -EAGAIN) {
                blz__io_source_clear(&sk->src, dir, r);
            }
        } else {
            n = attempt(f, sk, r);
        }
        if (n != -EAGAIN) {
            return finish(f, sk, n);
        }
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
 * Datagram operations do not: an empty datagram is a message. */
static int
zero_len_done(int op)
{
    return op == BLZ__OP_S_READ || op == BLZ__OP_S_PEEK || op == BLZ__OP_S_WRITE ||
           op == BLZ__OP_S_WRITE_ALL;
}

/* Checks arguments common to all tiers; 0 or -EINVAL. Clamps lengths so a
 * count always fits the int result. */
static int
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
    if (op == BLZ__OP_S_ACCEPT || op == BLZ__OP_S_CONNECT) {
        return buf || op == BLZ__OP_S_CONNECT ? 0 : -EINVAL;
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
        blz__io_fut_fail(f, rc);
        return;
    }
    if (len == 0 && zero_len_done(op)) {
        blz__io_fut_fail(f, 0); /* nothing to move: done without a syscall */
        return;
    }
    blz_future_init(&f->base, &sock_vt);
    blz__io_waiter_init(&f->waiter_);
    f->obj_ = sk;
    f->buf_ = buf;
    f->len_ = len;
    f->done_ = 0;
    f->aux_ = aux;
    f->op_ = op;
    f->flags_ = 0;
}

long
blz__sock_try(blz__sock *sk, int op, void *buf, size_t len, void *aux)
{
    int rc = check_args(sk, op, buf, &len);
    if (rc < 0) {
        return rc;
    }
    if (len == 0 && zero_len_done(op)) {
        return 0;
    }
    uint64_t r = blz__io_source_readiness(&sk->src);
    if (r & BLZ__RD_SHUTDOWN) {
        return -ECANCELED;
    }
    if (!blz__io_ready_for(r, op_dir(op))) {
        return -EAGAIN;
    }
    blz_io_future f;
    memset(&f, 0, sizeof f);
    f.buf_ = buf;
    f.len_ = len;
    f.aux_ = aux;
    f.op_ = op;
    return attempt(&f, sk, r);
}

long
blz__sock_await(blz__sock *sk, int op, void *buf, size_t len, void *aux)
{
    blz_io_future f;
    blz__sock_fut(sk, op, buf, len, aux, &f);
    return blz_await(&f.base);
}

/* ---- accept and connect, await tier ----------------------------------------- */

int
blz__sock_accept(blz__sock *l, blz__sock **out, blz_addr *peer)
{
    if (!l || !out || l->kind != BLZ__SK_LISTENER) {
        return -EINVAL;
    }
    for (;;) {
        long r = blz__sock_await(l, BLZ__OP_S_ACCEPT, out, 0, peer);
        if (r == -EMFILE || r == -ENFILE || r == -ENOBUFS || r == -ENOMEM) {
            /* Out of descriptors or memory: the pending connection stays in
             * the backlog. Back off instead of spinning on a listener that
             * stays readable, then serve again. */
            int s = blz_sleep(blz_ms(10));
            if (s == -ECANCELED || s == -EDEADLK) {
                return s == -ECANCELED ? -ECANCELED : (int) r;
            }
            continue;
        }
        return (int) r;
    }
}

void
blz__sock_connect_fut(blz__io_driver *d, int fd, int family, const blz_addr *a, blz__sock **out,
                      blz_io_future *f)
{
    int r = blz__sys_connect(fd, a);
    if (r != 0 && r != -EINPROGRESS) {
        (void) blz__sys_close(fd);
        blz__io_fut_fail(f, r);
        return;
    }
    blz__sock *sk;
    /* In progress: only a real event may say the connection is made. */
    int rc = blz__sock_wrap(d, fd, BLZ__SK_STREAM, family,
                            r == 0 ? (BLZ__RD_READ | BLZ__RD_WRITE) : 0, &sk);
    if (rc < 0) {
        blz__io_fut_fail(f, rc);
        return;
    }
    blz__sock_fut(sk, BLZ__OP_S_CONNECT, NULL, 0, out, f);
    if (r == 0) {
        f->flags_ |= F_CONNECTED;
    }
}

int
blz__sock_connect(const blz_addr *a, int type, blz_instant deadline, blz__sock **out)
{
    (void) type;
    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    blz_addr_family fam = blz_addr_get_family(a);
    if (fam == BLZ_AF_UNSPEC) {
        return -EINVAL;
    }
    blz__io_driver *d = blz__net_driver();
    if (!d) {
        return -ESRCH;
    }
    int fd = blz__sys_socket(fam, BLZ__SOCK_STREAM);
    if (fd < 0) {
        return fd;
    }
    blz_io_future f;
    blz__sock_connect_fut(d, fd, fam, a, out, &f);
    int r = deadline == UINT64_MAX ? blz_await(&f.base) : blz_timeout_until(&f.base, deadline);
    if (r == -EDEADLK) {
        blz_future_drop(&f.base); /* never awaited: close the half-made socket */
    }
    return r;
}

/* ---- options and addresses ---------------------------------------------------- */

int
blz__sock_setopt(const blz__sock *sk, int opt, int value)
{
    return sk ? blz__sys_setopt(sk->src.fd, (enum blz__sockopt) opt, value) : -EINVAL;
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
    return sk ? blz__sys_shutdown(sk->src.fd, how) : -EINVAL;
}
