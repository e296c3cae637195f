/*
 * Internal: the POSIX socket and descriptor calls blitzio makes, behind
 * blitzio types, so that src/net and src/io never include an OS header.
 *
 * Every function returns its result or -errno (never sets errno for the
 * caller to read). Every descriptor it creates is O_CLOEXEC | O_NONBLOCK;
 * every send uses MSG_NOSIGNAL, so no call here can raise SIGPIPE.
 *
 * The primitive calls go through the replaceable table blz__sys (SQLite's
 * aSyscall idea): a test may swap an entry to inject EINTR, EAGAIN, EMFILE,
 * ENOMEM or short transfers. Only tests write the table, before any runtime
 * exists or while nothing else runs.
 */
#ifndef BLZ_OS_UNIX_SYS_H
#define BLZ_OS_UNIX_SYS_H

#include "blitzio/io.h"
#include "blitzio/net.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The replaceable primitives; each returns >= 0 or -errno. */
typedef struct blz__sys_table {
    int (*socket)(int domain, int type, int protocol);
    int (*accept)(int fd, void *sa, uint32_t *salen); /* accept4 with CLOEXEC|NONBLOCK */
    int (*connect)(int fd, const void *sa, uint32_t salen);
    long (*recv)(int fd, void *buf, size_t n, int flags);
    long (*send)(int fd, const void *buf, size_t n, int flags); /* MSG_NOSIGNAL added by caller */
    long (*recvmsg)(int fd, void *msg, int flags);
    long (*sendmsg)(int fd, const void *msg, int flags);
    int (*close)(int fd);
} blz__sys_table;

extern blz__sys_table blz__sys;

/* Restores the real system calls in blz__sys. */
void blz__sys_reset(void);

/* Socket types for blz__sys_socket. */
enum { BLZ__SOCK_STREAM = 1, BLZ__SOCK_DGRAM = 2 };

/* Options for blz__sys_setopt / blz__sys_getopt (int-valued). */
enum blz__sockopt {
    BLZ__SO_REUSEADDR,
    BLZ__SO_REUSEPORT,
    BLZ__SO_RCVBUF,
    BLZ__SO_SNDBUF,
    BLZ__SO_KEEPALIVE,
    BLZ__SO_BROADCAST,
    BLZ__SO_ERROR,
    BLZ__SO_TYPE,
    BLZ__TCP_NODELAY,
    BLZ__TCP_KEEPIDLE,  /* seconds */
    BLZ__TCP_KEEPINTVL, /* seconds */
    BLZ__TCP_KEEPCNT,
    BLZ__IP_TTL,            /* IPv4 TTL or IPv6 unicast hops, by the socket's family */
    BLZ__IP_MULTICAST_TTL,  /* IPv4 multicast TTL or IPv6 multicast hops */
    BLZ__IP_MULTICAST_LOOP, /* IPv4 or IPv6, by family */
    BLZ__IPV6_V6ONLY,
    BLZ__SO_PASSCRED, /* Unix: received messages carry the sender's credentials */
    BLZ__UDP_GRO,     /* UDP: datagrams of one sender may arrive coalesced */
};

/* Recv flags. */
enum { BLZ__MSG_PEEK = 1 };

/* A socket of `family` (BLZ_AF_*) and `type` (BLZ__SOCK_*), CLOEXEC|NONBLOCK. */
int blz__sys_socket(int family, int type);
int blz__sys_socketpair(int family, int type, int fds[2]);
/* What socket `fd` is: its family (BLZ_AF_*), type (BLZ__SOCK_*) and whether
 * it listens. -EBADF, -ENOTSOCK, -EAFNOSUPPORT (another family), -EINVAL
 * (another type). */
int blz__sys_sock_kind(int fd, int *family, int *type, bool *listening);
/* A descriptor's flags before blz__sys_nonblock_cloexec changed them. */
typedef struct blz__fd_flags {
    int status; /* F_GETFL */
    int fd;     /* F_GETFD */
} blz__fd_flags;

/* Makes `fd` non-blocking and close-on-exec, as blitzio's own descriptors
 * are, and stores the flags it had in `*was` for blz__sys_fd_flags_restore
 * (when taking the descriptor over fails later). On failure `fd` is left as
 * it was. */
int blz__sys_nonblock_cloexec(int fd, blz__fd_flags *was);
void blz__sys_fd_flags_restore(int fd, const blz__fd_flags *was);
int blz__sys_close(int fd);
/* A close-on-exec duplicate of `fd` for the runtime to watch, once `fd` is
 * known to be pollable: -EPERM for a regular file, a directory or a device
 * the kernel cannot poll (always ready, and epoll refuses them), -EBADF,
 * -EMFILE. */
int blz__sys_dup_pollable(int fd);
/* poll(2) without waiting: 0 when `fd` is ready for `interest` now (or has
 * an error or a hang-up to report), -EAGAIN when it is not. */
long blz__sys_ready_now(int fd, blz_interest interest);
int blz__sys_bind(int fd, const blz_addr *a);
int blz__sys_listen(int fd, int backlog);
/* Accepts one connection; the new fd is CLOEXEC|NONBLOCK. `peer` may be NULL. */
int blz__sys_accept(int fd, blz_addr *peer);
/* Starts a connect: 0 (done), -EINPROGRESS, or -errno. */
int blz__sys_connect(int fd, const blz_addr *a);
/* After writability: 0 connected, -EAGAIN still in progress, or the error
 * (-ENOTCONN once the connection is over and its error was taken before). */
int blz__sys_connect_result(int fd);
long blz__sys_recv(int fd, void *buf, size_t n, int flags);
long blz__sys_send(int fd, const void *buf, size_t n);
long blz__sys_recvv(int fd, const blz_iovec *iov, int n);
long blz__sys_sendv(int fd, const blz_iovec *iov, int n);
/* recvmsg with the sender's name in `from` and, if `cred` is not NULL, its
 * SCM_CREDENTIALS (pid 0, uid and gid -1 when the message carries none).
 * Either may be NULL. */
long blz__sys_recvfrom(int fd, void *buf, size_t n, int flags, blz_addr *from, blz_ucred *cred);
long blz__sys_sendto(int fd, const void *buf, size_t n, const blz_addr *to);
/* recvmmsg / sendmmsg over n (1..BLZ_UDP_MANY_MAX) messages: the count moved,
 * each message's result (and, received, truncated and addr) filled; or -errno. */
long blz__sys_recv_many(int fd, blz_udp_msg *m, size_t n);
long blz__sys_send_many(int fd, blz_udp_msg *m, size_t n);
/* sendmsg of n bytes split by the kernel into datagrams of `segment` bytes
 * (UDP_SEGMENT, 1..65535) to `to` (NULL: the connected peer). */
long blz__sys_send_segments(int fd, const void *buf, size_t n, size_t segment, const blz_addr *to);
/* how: BLZ_SHUT_RD / BLZ_SHUT_WR / BLZ_SHUT_RDWR */
int blz__sys_shutdown(int fd, int how);
int blz__sys_sockname(int fd, blz_addr *out);
int blz__sys_peername(int fd, blz_addr *out);
int blz__sys_setopt(int fd, enum blz__sockopt opt, int value);
int blz__sys_getopt(int fd, enum blz__sockopt opt, int *value);
/* SO_LINGER: on with `secs` seconds, or off. */
int blz__sys_set_linger(int fd, bool on, int secs);
int blz__sys_get_linger(int fd, bool *on, int *secs);
/* Multicast membership of group (IPv4 or IPv6) on interface index ifindex
 * (0: the kernel's choice). */
int blz__sys_mcast(int fd, bool join, const blz_addr *group, unsigned ifindex);
/* The interface multicast sent on fd leaves by (index; 0: the routing table's choice). */
int blz__sys_mcast_if(int fd, unsigned ifindex);
/* The calling thread's id (gettid). */
int blz__sys_gettid(void);
/* Names the calling thread (top, gdb, perf show it); at most 15 bytes are kept. */
void blz__sys_set_thread_name(const char *name);
/* An alternate signal stack for the calling thread (sigaltstack), so that a
 * handler has room whatever stack the thread runs on (a fiber's may be
 * nearly full). push returns the mapping (NULL on failure: nothing changed)
 * and keeps the previous setting in *old; pop restores it and unmaps. */
void *blz__sys_altstack_push(size_t *size, stack_t *old);
void blz__sys_altstack_pop(void *mem, size_t size, const stack_t *old);
/* Queues `sig` for thread `tid` of this process with si_code SI_QUEUE, this
 * process's pid and `value` in si_value (rt_tgsigqueueinfo). 0 or -errno. */
int blz__sys_signal_thread(int tid, int sig, void *value);
/* SO_PEERCRED of a Unix socket. */
int blz__sys_peercred(int fd, int *pid, unsigned *uid, unsigned *gid);
/* True if this host has a route to IP address `a`: a UDP socket can be
 * connected to it (no packet is sent). */
bool blz__sys_routable(const blz_addr *a);
/* The address of an unnamed Unix socket (the family alone). */
void blz__sys_unnamed_unix(blz_addr *out);
/* Blocking getaddrinfo for TCP: up to `max` addresses with `port`. Count or
 * -ENOENT / -EAGAIN / -EINVAL / -ENOMEM / -EIO. Blocking pool only. */
int blz__sys_getaddrinfo(const char *host, uint16_t port, blz_addr *out, size_t max);
/* Yields the CPU to another thread (spin-lock back-off). */
void blz__sys_yield(void);

/* Registers the process for membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED): 0,
 * or -errno where the kernel has none (or refuses it). Once is enough; it
 * survives fork. */
int blz__sys_membarrier_register(void);
/* True once blz__sys_membarrier_register succeeded. Any thread. */
bool blz__sys_membarrier_ready(void);
/* Returns once every running thread of the process has executed a full
 * memory barrier: the dear side of an asymmetric store-load barrier, whose
 * cheap side is a compiler barrier. 0 or -errno. */
int blz__sys_membarrier(void);

#endif
