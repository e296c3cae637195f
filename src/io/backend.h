/*
 * Internal: the one seam between the I/O driver and its backends (io_uring,
 * epoll; later kqueue and IOCP). A backend is a table of operations in the
 * shape of nginx's ngx_event_actions_t: the driver picks one table at start
 * and calls nothing else. Backends know the registry (io/registry.h), to
 * which they report readiness and completions, and nothing of each other.
 *
 * Threading: `arm`, `disarm`, `submit`, `cancel` and `wake` may be called
 * from any thread at any time; `poll` from one thread at a time (the parking
 * worker); `init` and `fini` with no other call in flight.
 *
 * Readiness contract: after `arm(src)` the backend reports every change of
 * src->fd's readiness, edge-triggered, by calling blz__io_source_ready()
 * from inside `poll`. It reports at least one event for readiness present at
 * arm time. After `disarm(src)` it reports nothing new for src, and clears
 * src->be_hold (release) once the kernel holds no reference to src any more;
 * the registry frees src only after that.
 *
 * Completion contract: after `submit(op)` returned 0, the backend calls
 * op->done exactly once, from inside `poll`, with the result; `cancel(op)`
 * only asks for an early end, and the done call still comes. Until then the
 * op and every buffer it names belong to the kernel.
 */
#ifndef BLZ_IO_BACKEND_H
#define BLZ_IO_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BLZ__BACKEND_VERSION 1

struct blz__io_source;
struct blz__io_op;

/* A backend's private state. */
typedef struct blz__backend blz__backend;

/* Kinds of completion operation (io_uring only for now). */
enum blz__op_kind {
    BLZ__OP_NOP = 0,
    BLZ__OP_READ_AT,  /* pread(fd, buf, len, off) */
    BLZ__OP_WRITE_AT, /* pwrite(fd, buf, len, off) */
    BLZ__OP_RECV,     /* recv(fd, buf, len, flags) */
    BLZ__OP_SEND,     /* send(fd, buf, len, flags | MSG_NOSIGNAL) */
    BLZ__OP_ACCEPT,   /* accept4(fd, addr, &addrlen, SOCK_CLOEXEC | SOCK_NONBLOCK) */
    BLZ__OP_CONNECT,  /* connect(fd, addr, addrlen) */
    BLZ__OP_FSYNC,    /* fsync(fd), or fdatasync(fd) when flags has BLZ__FSYNC_DATASYNC */
    BLZ__OP_OPENAT,   /* openat(fd, path, flags, mode) -> the new descriptor */
    BLZ__OP_STATX,    /* statx(fd, path, flags, mask, buf) */
    BLZ__OP_CLOSE,    /* close(fd); never cancelled, see below */
    BLZ__OP_KIND_COUNT
};

/* The most events (readiness edges, completions, a wake) one poll reports.
 * Each can wake a task onto the polling worker's local queue (256 slots);
 * a batch that does not fit beside what the queue holds overflows to the
 * shared inject queue, one lock per 32 tasks and a cold pointer chase per
 * task to get them back. At 1,000 busy connections a batch of 256 sent 80 %
 * of all wakes that way; 64 sends none (and costs an epoll_wait or CQ look
 * per 64 events). */
#define BLZ__POLL_MAX_EVENTS 64

/* FSYNC flags: sync the data only (fdatasync). */
#define BLZ__FSYNC_DATASYNC 0x1

/*
 * A completion operation. The submitter owns it until `done` runs; the backend
 * owns `be_*`. `done` runs on the polling thread, must not block, and may free
 * the op. `path` and `buf` belong to the kernel until then, like the op.
 *
 * CLOSE: a close the kernel has not run yet could be cancelled, leaving the
 * descriptor open with nobody to close it. So `cancel` refuses CLOSE ops
 * (-EOPNOTSUPP) and `fini` waits for them without cancelling. A CLOSE that
 * still ends with -ECANCELED (the kernel dropped it: its submitting thread
 * exited before it ran) did not close fd, and the submitter must close it
 * another way.
 */
typedef struct blz__io_op {
    int kind;         /* enum blz__op_kind */
    int fd;           /* target descriptor; directory descriptor (or AT_FDCWD) for OPENAT/STATX */
    void *buf;        /* data buffer (READ_AT/WRITE_AT/RECV/SEND), sockaddr (ACCEPT/CONNECT),
                         or the struct statx STATX fills */
    const char *path; /* OPENAT/STATX: the path, NUL-terminated */
    uint32_t len;     /* buffer length, or sockaddr length for CONNECT */
    int32_t flags;    /* MSG_* (RECV/SEND), open(2) flags (OPENAT), AT_* (STATX), BLZ__FSYNC_* */
    uint32_t mode;    /* OPENAT: permission bits of a created file */
    uint32_t mask;    /* STATX: the STATX_* fields wanted */
    uint64_t off;     /* file offset for READ_AT/WRITE_AT (UINT64_MAX: the file position) */
    uint32_t addrlen; /* in/out sockaddr length for ACCEPT (the kernel writes it) */
    void (*done)(struct blz__io_op *op, int32_t res); /* completion: res is >= 0 or -errno */
    struct blz__io_op *be_next, *be_prev;             /* backend: in-flight list (under its lock) */
    struct blz__backend *ring; /* driver: the backend (ring) it was submitted to */
} blz__io_op;

typedef struct blz__backend_ops {
    unsigned version; /* BLZ__BACKEND_VERSION */
    const char *name; /* "io_uring", "epoll" */

    /* Sets the backend up, probing what it needs. Any error makes the driver
     * fall back to the next backend. `recv_buffers`: how many buffers to lend
     * the kernel for completion receive (a power of two; 0: none; a backend
     * may use them only with `single`). `single`: one thread will park (see
     * own). */
    int (*init)(blz__backend **out, unsigned recv_buffers, bool single);

    /* With `single`: the one thread that parks calls own before its first
     * poll and disown after its last (which ends every request still in the
     * kernel: nothing is submitted or completed after it). The backend may
     * then tie the kernel's work to that thread; other threads' arms,
     * submits and cancels still work, carried out at the owner's next poll.
     * NULL when the backend has no use for it. */
    void (*own)(blz__backend *b);
    void (*disown)(blz__backend *b);

    /* Starts reporting readiness of src->fd (read and write, edge-triggered). */
    int (*arm)(blz__backend *b, struct blz__io_source *src);

    /* Stops reporting for src; src->fd is still open. Never fails: a backend
     * that cannot stop at once stops later and clears src->be_hold then. */
    void (*disarm)(blz__backend *b, struct blz__io_source *src);

    /* Starts a completion op; -EOPNOTSUPP when this backend has none of that kind. */
    int (*submit)(blz__backend *b, blz__io_op *op);

    /* Asks the kernel to end `op` early. The done call still follows.
     * -EOPNOTSUPP for a CLOSE (see blz__io_op), -ENOENT when op is not in flight. */
    int (*cancel)(blz__backend *b, blz__io_op *op);

    /* Waits up to timeout_ns (-1 forever, 0 not at all) for events or a wake,
     * reports at most BLZ__POLL_MAX_EVENTS of them (the rest wait in the
     * kernel for the next poll), returns the number reported (>= 0) or -errno. */
    int (*poll)(blz__backend *b, int64_t timeout_ns);

    /* Makes a concurrent or the next poll return promptly. */
    void (*wake)(blz__backend *b);

    /* Lets the kernel finish work it deferred to the calling thread, cheaply
     * when there is none. io_uring runs with cooperative task running: a
     * request's completion (a readiness edge too) is posted by the thread that
     * submitted it, on its next entry into the kernel, instead of through an
     * interrupt of that thread. Workers make syscalls all the time; a worker
     * running a long stretch of tasks that make none calls this now and then
     * (the scheduler's maintenance tick). Any thread; NULL when the backend
     * defers nothing. */
    void (*flush_deferred)(blz__backend *b);

    /* Completion receive for the TCP streams whose source asks for it
     * (rx_want at arm; the backend then sets rx_on): the kernel receives
     * into buffers it lends, and reads copy from them. NULL when the backend
     * has none.
     * rx_take: a read of up to `len` bytes from what was received; returns 1
     * with the result in *res (bytes, 0 at end of stream, -EAGAIN while the
     * kernel's receive is armed and nothing has come, or the receive's error),
     * or 0 when the receive is not armed and nothing is held: the caller then
     * reads the socket itself, and calls rx_arm when that finds it empty or
     * reads short, so that the next data comes as an event. Any thread. */
    int (*rx_take)(blz__backend *b, struct blz__io_source *src, void *buf, size_t len, int peek,
                   long *res);
    void (*rx_arm)(blz__backend *b, struct blz__io_source *src);
    /* Puts a stream that was opened before it was connected (rx_want was
     * clear at arm) in completion-receive mode, now that it is; no reader
     * may be using it yet. NULL when the backend has none. */
    void (*rx_start)(blz__backend *b, struct blz__io_source *src);
    /* Buffers filled by the kernel and not given back yet, receives armed
     * (tests: nothing leaks), the bytes one arming of a receive may take
     * before it ends (0: no limit; tests: a stream's share is bounded), and
     * the buffers whose memory was ever written (tests: the pool's
     * footprint follows its use). */
    void (*rx_counts)(const blz__backend *b, unsigned *out, unsigned *armed, unsigned *budget,
                      unsigned *touched);

    /* True if this backend runs completion ops of `kind`. */
    int (*supports)(const blz__backend *b, int kind);

    /* Completes every op still in flight (with -ECANCELED where it can; a
     * CLOSE runs to its end),
     * releases the kernel objects and frees the backend. */
    void (*fini)(blz__backend *b);
} blz__backend_ops;

extern const blz__backend_ops blz__epoll_backend;
extern const blz__backend_ops blz__uring_backend;

/* Readiness bits, as reported by backends and kept in a source's readiness word. */
#define BLZ__RD_READ     0x01u /* data, a connection or EOF can be read */
#define BLZ__RD_WRITE    0x02u /* there is room to write */
#define BLZ__RD_RCLOSED  0x04u /* the peer shut down its write side (reads return 0) */
#define BLZ__RD_WCLOSED  0x08u /* hang-up: nothing can be written any more */
#define BLZ__RD_ERROR    0x10u /* an error is pending on the socket */
#define BLZ__RD_WSHUT    0x20u /* the owner closed the write direction: writes end with -ECANCELED */
#define BLZ__RD_RSHUT    0x40u /* the owner closed the read direction: reads end with -ECANCELED */
#define BLZ__RD_SHUTDOWN 0x80u /* the owner closed the handle: waits end with -ECANCELED */

/* Turns a poll(2)/epoll event mask into readiness bits. Same values on Linux. */
static inline unsigned
blz__rd_from_poll(uint32_t ev)
{
    unsigned r = 0;
    if (ev & 0x001u) { /* POLLIN / EPOLLIN */
        r |= BLZ__RD_READ;
    }
    if (ev & 0x002u) { /* POLLPRI: out-of-band data makes reads progress too */
        r |= BLZ__RD_READ;
    }
    if (ev & 0x004u) { /* POLLOUT */
        r |= BLZ__RD_WRITE;
    }
    if (ev & 0x2000u) { /* POLLRDHUP */
        r |= BLZ__RD_READ | BLZ__RD_RCLOSED;
    }
    if (ev & 0x010u) { /* POLLHUP: both directions are done */
        r |= BLZ__RD_READ | BLZ__RD_WRITE | BLZ__RD_RCLOSED | BLZ__RD_WCLOSED;
    }
    if (ev & 0x008u) { /* POLLERR */
        r |= BLZ__RD_READ | BLZ__RD_WRITE | BLZ__RD_ERROR;
    }
    return r;
}

#endif
