/*
 * Internal: the one socket object behind every public net handle (TCP and
 * Unix listeners and streams, UDP and Unix datagram sockets), and the one
 * future that performs every socket operation. tcp.c, udp.c and unix.c are
 * thin, typed wrappers over this.
 */
#ifndef BLZ_NET_SOCK_H
#define BLZ_NET_SOCK_H

#include "blitzio/io.h"
#include "blitzio/net.h"
#include "io/driver.h"
#include "io/registry.h"

enum blz__sock_kind { BLZ__SK_LISTENER = 1, BLZ__SK_STREAM = 2, BLZ__SK_DGRAM = 3 };

/* Operations of blz_io_future.op_. */
enum blz__sock_op {
    BLZ__OP_S_READ = 1,       /* recv */
    BLZ__OP_S_PEEK,           /* recv(MSG_PEEK) */
    BLZ__OP_S_READV,          /* recvmsg with an iovec array (buf_ = iov, len_ = count) */
    BLZ__OP_S_WRITE,          /* send */
    BLZ__OP_S_WRITEV,         /* sendmsg with an iovec array */
    BLZ__OP_S_WRITE_ALL,      /* send until done_ == len_ */
    BLZ__OP_S_ACCEPT,         /* accept4: buf_ = blz__sock ** out, aux_ = blz_addr *peer */
    BLZ__OP_S_CONNECT,        /* finish a connect the future owns: aux_ = blz__sock ** out */
    BLZ__OP_S_FINISH_CONNECT, /* finish the connect of a stream the caller owns */
    BLZ__OP_S_RECV_FROM,      /* recvmsg with a name: aux_ = blz_addr *from (may be NULL) */
    BLZ__OP_S_PEEK_FROM,      /* recvmsg(MSG_PEEK) with a name, as RECV_FROM */
    BLZ__OP_S_RECV_CRED,      /* recvmsg with name and credentials: aux_ = blz_unix_sender * */
    BLZ__OP_S_SEND_TO,        /* sendmsg to aux_ (const blz_addr *; NULL = connected peer) */
    BLZ__OP_S_RECV_MANY,      /* recvmmsg: buf_ = blz_udp_msg array, len_ = count */
    BLZ__OP_S_SEND_MANY,      /* sendmmsg: as RECV_MANY */
    BLZ__OP_S_SEND_SEGMENTS,  /* sendmsg with UDP_SEGMENT: buf_ = const blz_udp_segments * */
    BLZ__OP_S_READY_READ,     /* no syscall: done once the read direction reports ready */
    BLZ__OP_S_READY_WRITE,    /* the same for the write direction */
    BLZ__OP_S_USER_READ,      /* the caller's call: io_ of a blz_async_io_future */
    BLZ__OP_S_USER_WRITE,     /* the same, waiting for the write direction */
};

/*
 * A half of a split stream, TCP or Unix alike: the public half types
 * (blz_tcp_read_half...) are never defined; their pointers point at one of
 * these inside the socket, recovered with blz__sock_half_sock.
 */
typedef struct blz__sock_half {
    uint8_t dir; /* BLZ__DIR_READ or BLZ__DIR_WRITE; fixed when the socket is made */
} blz__sock_half;

typedef struct blz__sock {
    blz__io_source src;       /* first: the registry allocates the whole object */
    _Atomic uint32_t handles; /* owner handles (2 after a split); the last close closes */
    uint8_t kind;             /* enum blz__sock_kind; fixed */
    uint8_t family;           /* BLZ_AF_*; fixed */
    _Atomic uint8_t rd_shut;  /* shut for reading (BLZ_SHUT_RD): stream reads return 0 */
    uint8_t adopted;          /* made elsewhere (blz__sock_adopt): others may share it; fixed */
    blz__sock_half rd_half;   /* handed out by blz__sock_split */
    blz__sock_half wr_half;   /* handed out by blz__sock_split */
} blz__sock;

/* The public handle types are the socket itself. */
struct blz_tcp_listener {
    blz__sock sk;
};
struct blz_tcp_stream {
    blz__sock sk;
};
struct blz_udp_socket {
    blz__sock sk;
};
struct blz_unix_listener {
    blz__sock sk;
};
struct blz_unix_stream {
    blz__sock sk;
};
struct blz_unix_datagram {
    blz__sock sk;
};

/* The driver of the calling thread's runtime, or NULL. */
blz__io_driver *blz__net_driver(void);

/* Registers fd (which it owns from now on, also on failure) as a socket. */
int blz__sock_wrap(blz__io_driver *d, int fd, int kind, int family, unsigned initial,
                   blz__sock **out);

/* Adopts `fd`, a socket made elsewhere, as a socket of `kind` (a listener, a
 * connected stream or a datagram socket; Unix or IP by `unix_family`), made
 * non-blocking and close-on-exec. -EINVAL when fd is another kind of socket,
 * -EBADF, -ENOTSOCK, -ESRCH (no runtime). On error fd stays the caller's.
 * Its reads use readiness (completion receive starts only at accept and
 * connect). */
int blz__sock_adopt(int fd, int kind, bool unix_family, blz__sock **out);

/* The try_io calls: runs fn(fd, arg) if `sk` may be ready for `interest`
 * (EINTR retried), clearing that readiness when fn says -EAGAIN. Returns
 * fn's result, -EAGAIN when not ready, -ECANCELED once closed, -EINVAL, or
 * -EOPNOTSUPP for reading a stream whose data the kernel receives into
 * lent buffers (completion receive). */
long blz__sock_try_io(blz__sock *sk, int interest, blz_io_fn fn, void *arg);

/* The async_io calls (the await and future tiers of try_io): fn(fd, arg) when
 * `sk` may be ready, waited for after each -EAGAIN. Argument errors as try_io's. */
long blz__sock_io(blz__sock *sk, int interest, blz_io_fn fn, void *arg);
void blz__sock_io_fut(blz__sock *sk, int interest, blz_io_fn fn, void *arg, blz_async_io_future *f);

/* A bound socket of `type` (BLZ__SOCK_*), listening when `backlog` >= 0. */
int blz__sock_bind(const blz_addr *a, int type, int backlog, int kind, blz__sock **out);

/* Drops one owner handle; the last one closes (waiters end with -ECANCELED). */
void blz__sock_close(blz__sock *sk);

/* Fills f for operation `op` on `sk`. A NULL sk gives a future ready with -EINVAL. */
void blz__sock_fut(blz__sock *sk, int op, void *buf, size_t len, void *aux, blz_io_future *f);

/* Starts connecting fd (owned, closed on failure) to `a`; fills f to finish it.
 * `nodelay` false turns Nagle back on for a TCP stream (the builder's choice). */
void blz__sock_connect_fut(blz__io_driver *d, int fd, int family, const blz_addr *a, bool nodelay,
                           blz__sock **out, blz_io_future *f);

/* The try tier of connect: a new stream socket connecting to `a`, never
 * waiting. 0 (connected at once) or -EINPROGRESS, both with the stream in
 * *out; otherwise -errno (-EAGAIN for a Unix listener with a full backlog)
 * and *out NULL. Inside a runtime (-ESRCH). */
int blz__sock_try_connect(const blz_addr *a, blz__sock **out);

/* Fills an accept future (the back-off lives in its future tier). */
void blz__sock_accept_fut(blz__sock *l, blz__sock **out, blz_addr *peer, blz_accept_future *f);

/* Split: one more owner handle, and the two halves. -EINVAL unless a stream. */
int blz__sock_split(blz__sock *sk, blz__sock_half **rd, blz__sock_half **wr);

/* The socket of a half; NULL for NULL. */
blz__sock *blz__sock_half_sock(blz__sock_half *h);

/* A public half pointer (blz_tcp_read_half *, blz_unix_write_half *...) as
 * the socket's half, and the socket behind it. */
#define BLZ__HALF(h)    ((blz__sock_half *) (void *) (h))
#define BLZ__HALF_SK(h) blz__sock_half_sock(BLZ__HALF(h))

/* An iovec count as the socket calls take it: a negative one becomes 0,
 * which they refuse (-EINVAL). */
static inline size_t
blz__iov_count(int iovcnt)
{
    return iovcnt < 0 ? 0 : (size_t) iovcnt;
}

/* Closes a half: a write half shuts the write direction first (the peer reads
 * end-of-file while the read half may still read). NULL is ignored. */
void blz__sock_half_close(blz__sock_half *h);

/* The try tier: one attempt, -EAGAIN when not ready. Same arguments as _fut. */
long blz__sock_try(blz__sock *sk, int op, void *buf, size_t len, void *aux);

/* The await tier: tries a ready data operation first where that cannot be
 * told from awaiting, else fills a future on the stack and awaits it. */
long blz__sock_await(blz__sock *sk, int op, void *buf, size_t len, void *aux);

/* accept, await tier: awaits the accept future (with its back-off). */
int blz__sock_accept(blz__sock *l, blz__sock **out, blz_addr *peer);

/* The three tiers of waiting for readiness (blz_tcp_ready and the like):
 * `interest` is one blz_interest; anything else is -EINVAL. */
int blz__sock_ready(blz__sock *sk, int interest);
int blz__sock_try_ready(blz__sock *sk, int interest);
void blz__sock_ready_fut(blz__sock *sk, int interest, blz_io_future *f);

/* connect, await tier, with an optional deadline (UINT64_MAX: none). */
int blz__sock_connect(const blz_addr *a, blz_instant deadline, blz__sock **out);

/* Options and addresses on a live socket; -EINVAL for NULL. */
int blz__sock_setopt(const blz__sock *sk, int opt, int value);
/* The unicast TTL (IPv4) or hop limit (IPv6): set 1..255 (else -EINVAL), read. */
int blz__sock_set_ttl(const blz__sock *sk, int ttl);
int blz__sock_ttl(const blz__sock *sk, int *ttl);
int blz__sock_local_addr(const blz__sock *sk, blz_addr *out);
int blz__sock_peer_addr(const blz__sock *sk, blz_addr *out);
int blz__sock_shutdown(blz__sock *sk, int how);

#endif
