/*
 * POSIX socket and descriptor calls behind blitzio types (see sys.h).
 *
 * Invariants:
 * - Every call returns >= 0 or -errno; errno is read right after the call
 *   that set it and never escapes.
 * - Every descriptor made here is created CLOEXEC|NONBLOCK atomically
 *   (SOCK_CLOEXEC, accept4), never fixed up afterwards with fcntl.
 * - Every send is sendmsg/send with MSG_NOSIGNAL: no SIGPIPE from here.
 * - blz__sys is written only by tests, while no runtime runs.
 */
#include "os/unix/sys.h"

#include "core/atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/membarrier.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

_Static_assert(sizeof(blz_iovec) == sizeof(struct iovec), "blz_iovec matches struct iovec");
_Static_assert(offsetof(blz_iovec, base) == offsetof(struct iovec, iov_base), "iovec.base");
_Static_assert(offsetof(blz_iovec, len) == offsetof(struct iovec, iov_len), "iovec.len");
_Static_assert((int) BLZ_SHUT_RD == (int) SHUT_RD && (int) BLZ_SHUT_WR == (int) SHUT_WR &&
                   (int) BLZ_SHUT_RDWR == (int) SHUT_RDWR,
               "shutdown modes");

/* ---- the replaceable primitives -------------------------------------------- */

static int
real_socket(int domain, int type, int protocol)
{
    int fd = socket(domain, type | SOCK_CLOEXEC | SOCK_NONBLOCK, protocol);
    return fd < 0 ? -errno : fd;
}

static int
real_accept(int fd, void *sa, uint32_t *salen)
{
    socklen_t len = salen ? (socklen_t) *salen : 0;
    int r = accept4(fd, (struct sockaddr *) sa, sa ? &len : NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (r < 0) {
        return -errno;
    }
    if (salen) {
        *salen = (uint32_t) len;
    }
    return r;
}

static int
real_connect(int fd, const void *sa, uint32_t salen)
{
    return connect(fd, (const struct sockaddr *) sa, (socklen_t) salen) < 0 ? -errno : 0;
}

/*
 * The data calls run once per message. libc's wrappers are pthread
 * cancellation points, which costs two extra calls around every syscall
 * (about 30 instructions each way); runtime threads are never cancelled, so
 * on Linux we make the same syscalls through syscall(2), which is not one.
 */
#if defined(__linux__) && defined(SYS_recvfrom) && defined(SYS_sendto) && defined(SYS_recvmsg) && \
    defined(SYS_sendmsg)
# define OS_RECV(fd, buf, n, flags) \
  syscall(SYS_recvfrom, (long) (fd), (buf), (long) (n), (long) (flags), NULL, NULL)
# define OS_SEND(fd, buf, n, flags) \
  syscall(SYS_sendto, (long) (fd), (buf), (long) (n), (long) (flags), NULL, 0L)
# define OS_RECVMSG(fd, msg, flags) syscall(SYS_recvmsg, (long) (fd), (msg), (long) (flags))
# define OS_SENDMSG(fd, msg, flags) syscall(SYS_sendmsg, (long) (fd), (msg), (long) (flags))
#else
# define OS_RECV(fd, buf, n, flags) recv((fd), (buf), (n), (flags))
# define OS_SEND(fd, buf, n, flags) send((fd), (buf), (n), (flags))
# define OS_RECVMSG(fd, msg, flags) recvmsg((fd), (struct msghdr *) (msg), (flags))
# define OS_SENDMSG(fd, msg, flags) sendmsg((fd), (const struct msghdr *) (msg), (flags))
#endif

static long
real_recv(int fd, void *buf, size_t n, int flags)
{
    long r = (long) OS_RECV(fd, buf, n, flags);
    return r < 0 ? -errno : r;
}

static long
real_send(int fd, const void *buf, size_t n, int flags)
{
    long r = (long) OS_SEND(fd, buf, n, flags);
    return r < 0 ? -errno : r;
}

static long
real_recvmsg(int fd, void *msg, int flags)
{
    long r = (long) OS_RECVMSG(fd, msg, flags);
    return r < 0 ? -errno : r;
}

static long
real_sendmsg(int fd, const void *msg, int flags)
{
    long r = (long) OS_SENDMSG(fd, msg, flags);
    return r < 0 ? -errno : r;
}

static int
real_close(int fd)
{
    /* Linux closes the descriptor even when close reports EINTR: never retry. */
    return close(fd) < 0 ? -errno : 0;
}

blz__sys_table blz__sys = {real_socket, real_accept,  real_connect, real_recv,
                           real_send,   real_recvmsg, real_sendmsg, real_close};

void
blz__sys_reset(void)
{
    blz__sys_table t = {real_socket, real_accept,  real_connect, real_recv,
                        real_send,   real_recvmsg, real_sendmsg, real_close};
    blz__sys = t;
}

/* ---- helpers ---------------------------------------------------------------- */

static int
os_domain(int family)
{
    switch (family) {
    case BLZ_AF_INET:
        return AF_INET;
    case BLZ_AF_INET6:
        return AF_INET6;
    case BLZ_AF_UNIX:
        return AF_UNIX;
    default:
        return -1;
    }
}

static int
os_type(int type)
{
    return type == BLZ__SOCK_DGRAM ? SOCK_DGRAM : SOCK_STREAM;
}

static int
sock_domain(int fd)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0) {
        return -errno;
    }
    return ss.ss_family;
}

/* ---- calls -------------------------------------------------------------------- */

int
blz__sys_socket(int family, int type)
{
    int d = os_domain(family);
    if (d < 0) {
        return -EAFNOSUPPORT;
    }
    return blz__sys.socket(d, os_type(type), 0);
}

int
blz__sys_socketpair(int family, int type, int fds[2])
{
    int d = os_domain(family);
    if (d < 0) {
        return -EAFNOSUPPORT;
    }
    if (socketpair(d, os_type(type) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) < 0) {
        return -errno;
    }
    return 0;
}

static int
int_sockopt(int fd, int name, int *v)
{
    socklen_t len = sizeof *v;
    return getsockopt(fd, SOL_SOCKET, name, v, &len) < 0 ? -errno : 0;
}

int
blz__sys_sock_kind(int fd, int *family, int *type, bool *listening)
{
    int dom = 0, ty = 0, acc = 0;
    int rc = int_sockopt(fd, SO_DOMAIN, &dom);
    if (rc == 0) {
        rc = int_sockopt(fd, SO_TYPE, &ty);
    }
    if (rc == 0) {
        rc = int_sockopt(fd, SO_ACCEPTCONN, &acc);
    }
    if (rc < 0) {
        return rc;
    }
    switch (dom) {
    case AF_INET:
        *family = BLZ_AF_INET;
        break;
    case AF_INET6:
        *family = BLZ_AF_INET6;
        break;
    case AF_UNIX:
        *family = BLZ_AF_UNIX;
        break;
    default:
        return -EAFNOSUPPORT;
    }
    if (ty != SOCK_STREAM && ty != SOCK_DGRAM) {
        return -EINVAL;
    }
    *type = ty == SOCK_DGRAM ? BLZ__SOCK_DGRAM : BLZ__SOCK_STREAM;
    *listening = acc != 0;
    return 0;
}

int
blz__sys_nonblock_cloexec(int fd, blz__fd_flags *was)
{
    was->status = fcntl(fd, F_GETFL);
    was->fd = fcntl(fd, F_GETFD);
    if (was->status < 0 || was->fd < 0) {
        return -errno;
    }
    if (fcntl(fd, F_SETFL, was->status | O_NONBLOCK) < 0) {
        return -errno;
    }
    if (fcntl(fd, F_SETFD, was->fd | FD_CLOEXEC) < 0) {
        int err = -errno;
        blz__sys_fd_flags_restore(fd, was);
        return err;
    }
    return 0;
}

void
blz__sys_fd_flags_restore(int fd, const blz__fd_flags *was)
{
    (void) fcntl(fd, F_SETFL, was->status);
    (void) fcntl(fd, F_SETFD, was->fd);
}

/* Whether the kernel can report the readiness of `fd` at all. A device
 * without a poll method (/dev/null, /dev/zero, a block device) is always
 * ready, as a regular file is; epoll refuses it (EPERM), but an io_uring
 * poll on it completes at once every time it is armed, so the ring would
 * re-arm and complete it in a loop. A throwaway epoll set asks the kernel
 * the same question whatever the backend, and also sees an O_PATH
 * descriptor, which has no file operations (EBADF; io_uring accepted it
 * too, its poll then failing in the kernel). Only those two refusals count:
 * any other failure (no memory, the watch limit) is left for the backend. */
static int
probe_pollable(int fd)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        return 0;
    }
    struct epoll_event ev = {.events = EPOLLIN};
    int rc = 0;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0 && (errno == EPERM || errno == EBADF)) {
        rc = -errno;
    }
    (void) close(ep);
    return rc;
}

int
blz__sys_dup_pollable(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        return -errno;
    }
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
        return -EPERM;
    }
    int rc = probe_pollable(fd);
    if (rc < 0) {
        return rc;
    }
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    return d < 0 ? -errno : d;
}

long
blz__sys_ready_now(int fd, blz_interest interest)
{
    struct pollfd p = {.fd = fd, .events = interest == BLZ_READABLE ? POLLIN : POLLOUT};
    int r;
    do {
        r = poll(&p, 1, 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        return -errno;
    }
    return (p.revents & (p.events | POLLERR | POLLHUP | POLLNVAL)) ? 0 : -EAGAIN;
}

int
blz__sys_close(int fd)
{
    return fd < 0 ? -EBADF : blz__sys.close(fd);
}

int
blz__sys_bind(int fd, const blz_addr *a)
{
    size_t len;
    const void *sa = blz_addr_sockaddr(a, &len);
    if (!sa) {
        return -EINVAL;
    }
    return bind(fd, (const struct sockaddr *) sa, (socklen_t) len) < 0 ? -errno : 0;
}

int
blz__sys_listen(int fd, int backlog)
{
    return listen(fd, backlog) < 0 ? -errno : 0;
}

int
blz__sys_accept(int fd, blz_addr *peer)
{
    struct sockaddr_storage ss;
    uint32_t len = sizeof ss;
    int r = blz__sys.accept(fd, &ss, &len);
    if (r >= 0 && peer) {
        if (blz_addr_from_sockaddr(&ss, len, peer) < 0) {
            memset(peer, 0, sizeof *peer);
        }
    }
    return r;
}

int
blz__sys_connect(int fd, const blz_addr *a)
{
    size_t len;
    const void *sa = blz_addr_sockaddr(a, &len);
    if (!sa) {
        return -EINVAL;
    }
    int r;
    do {
        r = blz__sys.connect(fd, sa, (uint32_t) len);
    } while (r == -EINTR);
    /* EAGAIN from a Unix connect means the listener's backlog is full. */
    return r;
}

int
blz__sys_connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
        return -errno;
    }
    if (err) {
        return -err;
    }
    struct sockaddr_storage ss;
    len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *) &ss, &len) == 0) {
        return 0;
    }
    if (errno != ENOTCONN) {
        return -errno;
    }
    /* Not connected: still connecting, or over (refused, reset) with its
     * error taken already, by an earlier call or a read. A socket that is
     * over reports a hang-up, and no event ever again: calling that "in
     * progress" would leave a waiter retrying or asleep for good. */
    struct pollfd p = {fd, POLLOUT, 0};
    if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR))) {
        len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err) {
            return -err; /* arrived meanwhile */
        }
        return -ENOTCONN;
    }
    return -EAGAIN;
}

long
blz__sys_recv(int fd, void *buf, size_t n, int flags)
{
    return blz__sys.recv(fd, buf, n, (flags & BLZ__MSG_PEEK) ? MSG_PEEK : 0);
}

long
blz__sys_send(int fd, const void *buf, size_t n)
{
    return blz__sys.send(fd, buf, n, MSG_NOSIGNAL);
}

long
blz__sys_recvv(int fd, const blz_iovec *iov, int n)
{
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = (struct iovec *) (void *) iov;
    msg.msg_iovlen = (size_t) n;
    return blz__sys.recvmsg(fd, &msg, 0);
}

long
blz__sys_sendv(int fd, const blz_iovec *iov, int n)
{
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = (struct iovec *) (void *) iov;
    msg.msg_iovlen = (size_t) n;
    return blz__sys.sendmsg(fd, &msg, MSG_NOSIGNAL);
}

/* Closes the descriptors of a received message's SCM_RIGHTS. With room for
 * credentials in the control buffer but pass_cred off (or on a peek) the
 * kernel installs a sender's descriptors in that room; nobody asked for
 * them, so they would stay open in this process for good. */
static void
close_passed_fds(struct msghdr *msg)
{
    for (struct cmsghdr *h = CMSG_FIRSTHDR(msg); h; h = CMSG_NXTHDR(msg, h)) {
        if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS ||
            h->cmsg_len < CMSG_LEN(0)) {
            continue;
        }
        size_t n = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(h) + i * sizeof fd, sizeof fd);
            (void) close(fd);
        }
    }
}

/* The sender's credentials from a received message's SCM_CREDENTIALS, or
 * "none" (pid 0, uid and gid -1) when the kernel attached none. */
static void
take_cred(struct msghdr *msg, blz_ucred *cred)
{
    cred->pid = 0;
    cred->uid = (unsigned) -1;
    cred->gid = (unsigned) -1;
    for (struct cmsghdr *h = CMSG_FIRSTHDR(msg); h; h = CMSG_NXTHDR(msg, h)) {
        if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_CREDENTIALS &&
            h->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
            struct ucred c;
            memcpy(&c, CMSG_DATA(h), sizeof c);
            if (c.pid == 0) {
                break; /* recorded none: the kernel fills in the overflow uid and gid */
            }
            cred->pid = c.pid;
            cred->uid = c.uid;
            cred->gid = c.gid;
        }
    }
}

long
blz__sys_recvfrom(int fd, void *buf, size_t n, int flags, blz_addr *from, blz_ucred *cred)
{
    struct sockaddr_storage ss;
    struct iovec iov = {buf, n};
    struct msghdr msg;
    /* Room for the credentials. When the kernel attaches them, descriptors
     * a sender passed do not fit and it closes them (MSG_CTRUNC); when it
     * attaches none (pass_cred off), up to four land in this room, and
     * close_passed_fds closes them. */
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(sizeof(struct ucred))];
    } control;
    memset(&msg, 0, sizeof msg);
    memset(&ss, 0, sizeof ss);
    msg.msg_name = &ss;
    msg.msg_namelen = sizeof ss;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (cred) {
        msg.msg_control = control.bytes;
        msg.msg_controllen = sizeof control.bytes;
    }
    /* CLOEXEC: descriptors a sender passed are closed below, and must not
     * reach a child that another thread starts meanwhile. */
    long r = blz__sys.recvmsg(
        fd, &msg, ((flags & BLZ__MSG_PEEK) ? MSG_PEEK : 0) | (cred ? MSG_CMSG_CLOEXEC : 0));
    if (r >= 0 && from) {
        if (msg.msg_namelen == 0 || blz_addr_from_sockaddr(&ss, msg.msg_namelen, from) < 0) {
            memset(from, 0, sizeof *from); /* no name (an unnamed Unix sender) */
        }
    }
    if (r >= 0 && cred) {
        take_cred(&msg, cred);
        close_passed_fds(&msg);
    }
    return r;
}

/* Addresses `msg` to `to`, or leaves it unaddressed (the connected peer) for
 * NULL. -EINVAL for an empty address. */
static int
msg_address(struct msghdr *msg, const blz_addr *to)
{
    if (!to) {
        return 0;
    }
    size_t len;
    const void *sa = blz_addr_sockaddr(to, &len);
    if (!sa) {
        return -EINVAL;
    }
    msg->msg_name = (void *) sa;
    msg->msg_namelen = (socklen_t) len;
    return 0;
}

long
blz__sys_sendto(int fd, const void *buf, size_t n, const blz_addr *to)
{
    struct iovec iov = {(void *) buf, n};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    if (msg_address(&msg, to) < 0) {
        return -EINVAL;
    }
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    return blz__sys.sendmsg(fd, &msg, MSG_NOSIGNAL);
}

/* Batches: one mmsghdr and iovec per message on the stack (BLZ_UDP_MANY_MAX
 * of them, 2.5 KiB). Fills what both directions share, one buffer each, and
 * returns how many messages the call takes. */
static size_t
many_headers(struct mmsghdr *h, struct iovec *iov, const blz_udp_msg *m, size_t n)
{
    n = n > BLZ_UDP_MANY_MAX ? BLZ_UDP_MANY_MAX : n;
    memset(h, 0, n * sizeof h[0]);
    for (size_t i = 0; i < n; i++) {
        iov[i] = (struct iovec){m[i].buf, m[i].len};
        h[i].msg_hdr.msg_iov = &iov[i];
        h[i].msg_hdr.msg_iovlen = 1;
    }
    return n;
}

/* The size of the datagrams coalesced into a received buffer of `len` bytes
 * (the kernel's UDP_GRO message), or `len` when it holds one datagram. */
static size_t
gro_segment(struct msghdr *msg, size_t len)
{
#ifdef UDP_GRO
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO) {
            int size;
            memcpy(&size, CMSG_DATA(c), sizeof size);
            return size > 0 && (size_t) size < len ? (size_t) size : len;
        }
    }
#else
    (void) msg;
#endif
    return len;
}

/* A receive writes each sender's name straight into the caller's blz_addr
 * and then normalises it in place through a copy. */
long
blz__sys_recv_many(int fd, blz_udp_msg *m, size_t n)
{
    struct mmsghdr h[BLZ_UDP_MANY_MAX];
    struct iovec iov[BLZ_UDP_MANY_MAX];
    /* Room for a GRO segment size per message (UDP_GRO on); CMSG_SPACE keeps
     * every row aligned for a cmsghdr. */
    _Alignas(struct cmsghdr) char control[BLZ_UDP_MANY_MAX][CMSG_SPACE(sizeof(int))];
    n = many_headers(h, iov, m, n);
    for (size_t i = 0; i < n; i++) {
        if (m[i].addr) {
            h[i].msg_hdr.msg_name = m[i].addr->sa_.bytes_;
            h[i].msg_hdr.msg_namelen = sizeof m[i].addr->sa_.bytes_;
        }
        h[i].msg_hdr.msg_control = control[i];
        h[i].msg_hdr.msg_controllen = sizeof control[i];
    }
    int r = recvmmsg(fd, h, (unsigned) n, 0, NULL);
    if (r < 0) {
        return -errno;
    }
    for (int i = 0; i < r; i++) {
        m[i].result = h[i].msg_len;
        m[i].truncated = (h[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
        m[i].segment = gro_segment(&h[i].msg_hdr, h[i].msg_len);
        if (m[i].addr) {
            struct sockaddr_storage ss;
            socklen_t len = h[i].msg_hdr.msg_namelen;
            memcpy(&ss, m[i].addr->sa_.bytes_, len < sizeof ss ? len : sizeof ss);
            if (len == 0 || blz_addr_from_sockaddr(&ss, len, m[i].addr) < 0) {
                memset(m[i].addr, 0, sizeof *m[i].addr); /* no name */
            }
        }
    }
    return r;
}

long
blz__sys_send_many(int fd, blz_udp_msg *m, size_t n)
{
    struct mmsghdr h[BLZ_UDP_MANY_MAX];
    struct iovec iov[BLZ_UDP_MANY_MAX];
    n = many_headers(h, iov, m, n);
    for (size_t i = 0; i < n; i++) {
        if (msg_address(&h[i].msg_hdr, m[i].addr) < 0) {
            return -EINVAL;
        }
    }
    int r = sendmmsg(fd, h, (unsigned) n, MSG_NOSIGNAL);
    if (r < 0) {
        return -errno;
    }
    for (int i = 0; i < r; i++) {
        m[i].result = h[i].msg_len;
    }
    return r;
}

long
blz__sys_send_segments(int fd, const void *buf, size_t n, size_t segment, const blz_addr *to)
{
#ifdef UDP_SEGMENT
    struct iovec iov = {(void *) buf, n};
    struct msghdr msg;
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(sizeof(uint16_t))];
    } control;
    memset(&msg, 0, sizeof msg);
    memset(&control, 0, sizeof control);
    if (msg_address(&msg, to) < 0) {
        return -EINVAL;
    }
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.bytes;
    msg.msg_controllen = sizeof control.bytes;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t size = (uint16_t) segment;
    memcpy(CMSG_DATA(c), &size, sizeof size);
    return blz__sys.sendmsg(fd, &msg, MSG_NOSIGNAL);
#else
    (void) fd, (void) buf, (void) n, (void) segment, (void) to;
    return -EOPNOTSUPP;
#endif
}

int
blz__sys_shutdown(int fd, int how)
{
    if (how < BLZ_SHUT_RD || how > BLZ_SHUT_RDWR) {
        return -EINVAL;
    }
    return shutdown(fd, how) < 0 ? -errno : 0;
}

int
blz__sys_sockname(int fd, blz_addr *out)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *) &ss, &len) < 0) {
        return -errno;
    }
    return blz_addr_from_sockaddr(&ss, len, out);
}

int
blz__sys_peername(int fd, blz_addr *out)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *) &ss, &len) < 0) {
        return -errno;
    }
    return blz_addr_from_sockaddr(&ss, len, out);
}

/* Level and name for `opt` on a socket of domain `dom`. */
static int
opt_map(enum blz__sockopt opt, int dom, int *level, int *name)
{
    int v6 = dom == AF_INET6;
    switch (opt) {
    case BLZ__SO_REUSEADDR:
        *level = SOL_SOCKET, *name = SO_REUSEADDR;
        return 0;
    case BLZ__SO_REUSEPORT:
        *level = SOL_SOCKET, *name = SO_REUSEPORT;
        return 0;
    case BLZ__SO_RCVBUF:
        *level = SOL_SOCKET, *name = SO_RCVBUF;
        return 0;
    case BLZ__SO_SNDBUF:
        *level = SOL_SOCKET, *name = SO_SNDBUF;
        return 0;
    case BLZ__SO_KEEPALIVE:
        *level = SOL_SOCKET, *name = SO_KEEPALIVE;
        return 0;
    case BLZ__SO_BROADCAST:
        *level = SOL_SOCKET, *name = SO_BROADCAST;
        return 0;
    case BLZ__SO_PASSCRED:
        *level = SOL_SOCKET, *name = SO_PASSCRED;
        return 0;
    case BLZ__SO_ERROR:
        *level = SOL_SOCKET, *name = SO_ERROR;
        return 0;
    case BLZ__SO_TYPE:
        *level = SOL_SOCKET, *name = SO_TYPE;
        return 0;
    case BLZ__TCP_NODELAY:
        *level = IPPROTO_TCP, *name = TCP_NODELAY;
        return 0;
    case BLZ__TCP_KEEPIDLE:
        *level = IPPROTO_TCP, *name = TCP_KEEPIDLE;
        return 0;
    case BLZ__TCP_KEEPINTVL:
        *level = IPPROTO_TCP, *name = TCP_KEEPINTVL;
        return 0;
    case BLZ__TCP_KEEPCNT:
        *level = IPPROTO_TCP, *name = TCP_KEEPCNT;
        return 0;
    case BLZ__IP_TTL:
        *level = v6 ? IPPROTO_IPV6 : IPPROTO_IP, *name = v6 ? IPV6_UNICAST_HOPS : IP_TTL;
        return 0;
    case BLZ__IP_MULTICAST_TTL:
        *level = v6 ? IPPROTO_IPV6 : IPPROTO_IP,
        *name = v6 ? IPV6_MULTICAST_HOPS : IP_MULTICAST_TTL;
        return 0;
    case BLZ__IP_MULTICAST_LOOP:
        *level = v6 ? IPPROTO_IPV6 : IPPROTO_IP;
        *name = v6 ? IPV6_MULTICAST_LOOP : IP_MULTICAST_LOOP;
        return 0;
    case BLZ__IPV6_V6ONLY:
        *level = IPPROTO_IPV6, *name = IPV6_V6ONLY;
        return 0;
    case BLZ__UDP_GRO:
#ifdef UDP_GRO
        *level = IPPROTO_UDP, *name = UDP_GRO;
        return 0;
#else
        return -EOPNOTSUPP;
#endif
    }
    return -EINVAL;
}

int
blz__sys_setopt(int fd, enum blz__sockopt opt, int value)
{
    int dom = 0;
    if (opt == BLZ__IP_TTL || opt == BLZ__IP_MULTICAST_TTL || opt == BLZ__IP_MULTICAST_LOOP) {
        dom = sock_domain(fd);
        if (dom < 0) {
            return dom;
        }
    }
    int level, name;
    if (opt_map(opt, dom, &level, &name) < 0) {
        return -EINVAL;
    }
    if (dom == AF_INET && opt == BLZ__IP_MULTICAST_LOOP) {
        unsigned char c = (unsigned char) (value != 0);
        return setsockopt(fd, level, name, &c, sizeof c) < 0 ? -errno : 0;
    }
    return setsockopt(fd, level, name, &value, sizeof value) < 0 ? -errno : 0;
}

int
blz__sys_getopt(int fd, enum blz__sockopt opt, int *value)
{
    int dom = 0;
    if (opt == BLZ__IP_TTL || opt == BLZ__IP_MULTICAST_TTL || opt == BLZ__IP_MULTICAST_LOOP) {
        dom = sock_domain(fd);
        if (dom < 0) {
            return dom;
        }
    }
    int level, name;
    if (opt_map(opt, dom, &level, &name) < 0) {
        return -EINVAL;
    }
    int v = 0;
    socklen_t len = sizeof v;
    if (getsockopt(fd, level, name, &v, &len) < 0) {
        return -errno;
    }
    *value = len == 1 ? (int) *(unsigned char *) &v : v;
    return 0;
}

int
blz__sys_set_linger(int fd, bool on, int secs)
{
    struct linger l = {on ? 1 : 0, secs < 0 ? 0 : secs};
    return setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) < 0 ? -errno : 0;
}

int
blz__sys_get_linger(int fd, bool *on, int *secs)
{
    struct linger l;
    socklen_t len = sizeof l;
    if (getsockopt(fd, SOL_SOCKET, SO_LINGER, &l, &len) < 0) {
        return -errno;
    }
    *on = l.l_onoff != 0;
    *secs = l.l_linger;
    return 0;
}

int
blz__sys_mcast(int fd, bool join, const blz_addr *group, unsigned ifindex)
{
    size_t len;
    const void *sa = blz_addr_sockaddr(group, &len);
    if (!sa) {
        return -EINVAL;
    }
    if (blz_addr_get_family(group) == BLZ_AF_INET) {
        struct ip_mreqn m;
        memset(&m, 0, sizeof m);
        m.imr_multiaddr = ((const struct sockaddr_in *) sa)->sin_addr;
        m.imr_ifindex = (int) ifindex;
        int name = join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP;
        return setsockopt(fd, IPPROTO_IP, name, &m, sizeof m) < 0 ? -errno : 0;
    }
    if (blz_addr_get_family(group) == BLZ_AF_INET6) {
        struct ipv6_mreq m;
        memset(&m, 0, sizeof m);
        m.ipv6mr_multiaddr = ((const struct sockaddr_in6 *) sa)->sin6_addr;
        m.ipv6mr_interface = ifindex;
        int name = join ? IPV6_ADD_MEMBERSHIP : IPV6_DROP_MEMBERSHIP;
        return setsockopt(fd, IPPROTO_IPV6, name, &m, sizeof m) < 0 ? -errno : 0;
    }
    return -EINVAL;
}

int
blz__sys_mcast_if(int fd, unsigned ifindex)
{
    int dom = sock_domain(fd);
    if (dom < 0) {
        return dom;
    }
    if (ifindex > INT_MAX) {
        return -EINVAL;
    }
    if (dom == AF_INET) {
        /* By index (ip_mreqn), so one call works for IPv4 and IPv6 alike. */
        struct ip_mreqn m;
        memset(&m, 0, sizeof m);
        m.imr_ifindex = (int) ifindex;
        return setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof m) < 0 ? -errno : 0;
    }
    if (dom == AF_INET6) {
        int v = (int) ifindex;
        return setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &v, sizeof v) < 0 ? -errno : 0;
    }
    return -EINVAL;
}

int
blz__sys_gettid(void)
{
    return (int) syscall(SYS_gettid);
}

void
blz__sys_set_thread_name(const char *name)
{
    char shortened[16]; /* the kernel's limit, NUL included */
    (void) snprintf(shortened, sizeof shortened, "%s", name);
    (void) pthread_setname_np(pthread_self(), shortened);
}

void *
blz__sys_altstack_push(size_t *size, stack_t *old)
{
    long min = sysconf(_SC_MINSIGSTKSZ);
    size_t want = (size_t) 64 * 1024;
    if (min > 0 && (size_t) min * 4 > want) {
        want = (size_t) min * 4;
    }
    void *mem =
        mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (mem == MAP_FAILED) {
        return NULL;
    }
    stack_t st = {.ss_sp = mem, .ss_size = want, .ss_flags = 0};
    if (sigaltstack(&st, old) != 0) {
        munmap(mem, want);
        return NULL;
    }
    *size = want;
    return mem;
}

void
blz__sys_altstack_pop(void *mem, size_t size, const stack_t *old)
{
    if (!mem) {
        return;
    }
    (void) sigaltstack(old, NULL);
    munmap(mem, size);
}

int
blz__sys_signal_thread(int tid, int sig, void *value)
{
    siginfo_t info;
    memset(&info, 0, sizeof info);
    info.si_signo = sig;
    info.si_code = SI_QUEUE;
    info.si_pid = getpid();
    info.si_uid = getuid();
    info.si_value.sival_ptr = value;
    long rc = syscall(SYS_rt_tgsigqueueinfo, (long) getpid(), (long) tid, (long) sig, &info);
    return rc < 0 ? -errno : 0;
}

int
blz__sys_peercred(int fd, int *pid, unsigned *uid, unsigned *gid)
{
    struct ucred c;
    socklen_t len = sizeof c;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &len) < 0) {
        return -errno;
    }
    *pid = c.pid;
    *uid = c.uid;
    *gid = c.gid;
    return 0;
}

bool
blz__sys_routable(const blz_addr *a)
{
    size_t len;
    const struct sockaddr *sa = blz_addr_sockaddr(a, &len);
    if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)) {
        return false;
    }
    int fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    /* A port is needed, any will do: a UDP connect only looks up the route. */
    struct sockaddr_storage ss;
    memcpy(&ss, sa, len);
    if (ss.ss_family == AF_INET) {
        ((struct sockaddr_in *) &ss)->sin_port = htons(53);
    } else {
        ((struct sockaddr_in6 *) &ss)->sin6_port = htons(53);
    }
    bool ok = connect(fd, (struct sockaddr *) &ss, (socklen_t) len) == 0;
    close(fd);
    return ok;
}

int
blz__sys_getaddrinfo(const char *host, uint16_t port, blz_addr *out, size_t max)
{
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM; /* one entry per address, not one per socket type */
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        switch (rc) {
        case EAI_NONAME:
#ifdef EAI_NODATA
        case EAI_NODATA:
#endif
            return -ENOENT;
        case EAI_AGAIN:
            return -EAGAIN;
        case EAI_MEMORY:
            return -ENOMEM;
        case EAI_SYSTEM:
            return errno ? -errno : -EIO;
        case EAI_FAMILY:
        case EAI_SERVICE:
        case EAI_BADFLAGS:
            return -EINVAL;
        default:
            return -EIO;
        }
    }
    size_t n = 0;
    for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
        if (blz_addr_from_sockaddr(ai->ai_addr, ai->ai_addrlen, &out[n]) == 0 &&
            blz_addr_set_port(&out[n], port) == 0) {
            n++;
        }
    }
    freeaddrinfo(res);
    return n ? (int) n : -ENOENT;
}

void
blz__sys_unnamed_unix(blz_addr *out)
{
    sa_family_t fam = AF_UNIX;
    (void) blz_addr_from_sockaddr(&fam, sizeof fam, out);
}

void
blz__sys_yield(void)
{
    (void) sched_yield();
}

static _Atomic bool membarrier_registered;

int
blz__sys_membarrier_register(void)
{
    long supported = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0u, 0);
    if (supported < 0) {
        return -errno;
    }
    if (!(supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED)) {
        return -EOPNOTSUPP;
    }
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0u, 0) != 0) {
        return -errno;
    }
    blz__store(&membarrier_registered, true, RELEASE);
    return 0;
}

bool
blz__sys_membarrier_ready(void)
{
    return blz__load(&membarrier_registered, ACQUIRE);
}

int
blz__sys_membarrier(void)
{
    return syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0u, 0) == 0 ? 0 : -errno;
}
