/*
 * Internal: the readiness registry. Every descriptor the runtime waits on has
 * one blz__io_source: its readiness bits with a tick, and the reader and
 * writer waiters of futures (the first of each direction in the source's
 * slot, more in its lists). The try tier, the future tier and the
 * await tier of every socket operation go through blz__io_source_poll, so
 * there is one mechanism for all of them.
 *
 * A source is allocated by the registry as the head of a larger object (a TCP
 * stream, a listener...) and freed by it, late: after the last reference is
 * gone, after the backend let go of it, and only at the start of a later park,
 * so that an event already fetched from the kernel never meets freed memory.
 * Sources still open when the driver is freed are closed and freed with it.
 */
#ifndef BLZ_IO_REGISTRY_H
#define BLZ_IO_REGISTRY_H

#include "blitzio/future.h"
#include "blitzio/io.h"
#include "core/atomic.h"
#include "core/future.h"
#include "core/list.h"
#include "core/spinlock.h"
#include "io/backend.h"

#include <stdint.h>

struct blz__io_driver;

/* Direction of a wait. */
enum { BLZ__DIR_READ = 0, BLZ__DIR_WRITE = 1 };

#define BLZ__TICK_SHIFT 16
#define BLZ__RD_MASK    0xffffu

/* One waiter's registration held in the source itself (see `slot`). */
typedef struct blz__io_slot {
    /* The waiter registered here, or NULL; a tag, never dereferenced. Written
     * under the source's lock; atomic because a woken waiter reads it without
     * the lock (blz__io_source_poll). */
    _Atomic(blz_waiter *) owner;
    blz_waker waker; /* its waker */
} blz__io_slot;

typedef struct blz__io_source {
    /* The first cache line holds what a dispatch touches (readiness, lock,
     * listed, the read slot, the write slot's owner) and what every operation
     * of the owner touches (also refs and fd). */
    /* Readiness bits (BLZ__RD_*) in the low 16 bits, a tick counting
     * dispatches above them. Written by the dispatcher (CAS), cleared by
     * operations that saw EAGAIN (CAS against the tick they observed). */
    _Atomic uint64_t readiness;
    blz__spinlock lock; /* protects slot, listed, readers, writers and waiters' wakers */
    uint32_t listed;    /* bit d: the list of direction d is not empty (lock) */
    /* The owner's reference plus one per future in flight. The last release
     * disarms the backend, closes fd and retires the source. */
    _Atomic uint32_t refs;
    int fd; /* the descriptor; owned; closed on the last release */
    /* Per direction, the first waiter: the common single reader and single
     * writer of a stream are woken from here without touching their future.
     * Further waiters queue in readers/writers. */
    blz__io_slot slot[2];
    /* 1 while the backend may still deliver an event naming this source;
     * set by arm, cleared (release) by the backend. Read by the sweep. */
    _Atomic uint32_t be_hold;
    uint32_t be_flags;              /* backend-private, under the backend's own lock */
    struct blz__io_source *be_owed; /* backend-private link, under the backend's own lock */
    struct blz__io_driver *driver;  /* the driver this source belongs to */
    struct blz__backend *ring;      /* the driver's backend (ring) it is armed on; fixed */
    /* Links in the registry's live or retired list, under the registry lock. */
    struct blz__io_source *reg_next, *reg_prev;
    uint32_t reg_state;    /* which list: 0 none, 1 live, 2 retired (registry lock) */
    void *alloc_base;      /* what blz__malloc returned (the source is aligned up to a line) */
    blz__waitlist readers; /* further futures waiting to read (or accept), FIFO */
    blz__waitlist writers; /* further futures waiting to write (or connect), FIFO */
    /* Completion receive (backends with `rx_take`; see blz__io_rx_read). The
     * opener sets rx_want; arm sets rx_on when the backend gives it, before
     * the source is handed out, and it never changes after. The rest belongs
     * to the backend, under `lock`: the filled buffers oldest first, how much
     * of the first was read, the state of the kernel's receive. */
    uint8_t rx_want;
    uint8_t rx_on;
    uint16_t rx_flags;
    uint16_t rx_head, rx_tail, rx_count;
    uint32_t rx_off;
    int32_t rx_end; /* once the receive ended for good: 0 (end of stream) or -errno */
    /* Holders of the memory only (blz__io_source_pin): the source may be
     * released (descriptor closed, retired), but the sweep frees it only once
     * this is 0 again. */
    _Atomic uint32_t pins;
} blz__io_source;

/* The header of a block whose owner may never get to free it (a job that
 * never ran); the payload follows at BLZ__TRACKED_HDR bytes. */
typedef struct blz__tracked {
    struct blz__tracked *next, *prev; /* in the registry's tracked list (registry lock) */
} blz__tracked;

#define BLZ__TRACKED_HDR 16 /* sizeof(blz__tracked), rounded up to malloc alignment */

/* The registry part of a driver. */
typedef struct blz__registry {
    blz__spinlock lock;        /* protects the lists */
    blz__tracked tracked;      /* sentinel of the tracked blocks */
    blz__io_source live;       /* sentinel of the list of open sources */
    blz__io_source retired;    /* sentinel of the list of released sources */
    _Atomic uint64_t nlive;    /* sources open */
    _Atomic uint64_t nretired; /* sources released but not yet freed */
} blz__registry;

void blz__registry_init(blz__registry *r);

/* Frees every retired source the backend has let go of. Parking thread only. */
void blz__registry_sweep(blz__registry *r);

/* Waiters currently registered on all open sources (tests, leak checks).
 * Walks the sources under their locks: not for a hot path. */
uint64_t blz__registry_waiters(blz__registry *r);

/* At driver teardown (backend already finished): closes and frees everything. */
void blz__registry_fini(blz__registry *r);

/*
 * Registers `fd` with driver `d`: allocates `size` bytes (>= sizeof source,
 * zeroed) whose head is the source, arms the backend. `initial` is the
 * readiness assumed until the first event: BLZ__RD_READ | BLZ__RD_WRITE for a
 * socket that is usable (the first syscall tells), 0 for a connect in progress
 * (only a real event may say it finished). On success the caller holds one
 * reference and fd belongs to the source. On failure fd is left open for the
 * caller. -EINVAL, -ENOMEM, or the backend's error.
 */
/* In `initial` of blz__io_source_open: a TCP stream that may take completion
 * receive if the backend has it (its reads then go through blz__io_rx_read). */
#define BLZ__OPEN_RX 0x10000u

int blz__io_source_open(struct blz__io_driver *d, int fd, size_t size, unsigned initial,
                        blz__io_source **out);

/* Allocates `size` bytes that the driver frees at its own free if nobody
 * freed them first (blocking-pool jobs that a runtime teardown cancels before
 * they run). Any thread. NULL on failure. */
void *blz__io_tracked_alloc(struct blz__io_driver *d, size_t size);

/* Frees a block from blz__io_tracked_alloc. Any thread. */
void blz__io_tracked_free(struct blz__io_driver *d, void *p);

/* Blocks from blz__io_tracked_alloc not yet freed (tests: nothing leaks). */
size_t blz__io_tracked_count(struct blz__io_driver *d);

/* Takes another reference (a future in flight). */
static inline void
blz__io_source_ref(blz__io_source *s)
{
    blz__fetch_add(&s->refs, 1u, RELAXED);
}

/* Takes a reference unless the source was released already (the count is
 * 0: its descriptor is closed). 1 when taken, 0 when not. For sources whose
 * memory a pin may keep after their release (blz__io_source_pin). */
static inline int
blz__io_source_tryref(blz__io_source *s)
{
    uint32_t n = blz__load(&s->refs, RELAXED);
    while (n != 0) {
        /* Acquire pairs with the acq_rel of an owner's unref: a closer's
         * SHUTDOWN, set before it, is seen by the poll that follows. */
        if (blz__cas_weak(&s->refs, &n, n + 1u, ACQUIRE, RELAXED)) {
            return 1;
        }
    }
    return 0;
}

/* Drops a reference; the last one disarms, closes the fd and retires the source. */
void blz__io_source_unref(blz__io_source *s);

/* Keeps the source's memory (not its descriptor) until blz__io_source_unpin:
 * after the last unref it is retired as usual, but not freed. For a handle
 * that is closed early yet must stay safe to call (its calls then see
 * SHUTDOWN). The caller must hold a reference while it pins. Any thread. */
static inline void
blz__io_source_pin(blz__io_source *s)
{
    blz__fetch_add(&s->pins, 1u, RELAXED);
}

/* Lets go of a pin; the sweep of a later park frees a released source. Any
 * thread; `s` must not be touched afterwards. */
static inline void
blz__io_source_unpin(blz__io_source *s)
{
    /* Release pairs with the sweep's acquire load: every use made through
     * the pin happens before the free. */
    blz__fetch_sub(&s->pins, 1u, RELEASE);
}

/* Marks the source shut down and wakes every waiter (their futures finish
 * with -ECANCELED). Idempotent. */
void blz__io_source_shutdown(blz__io_source *s);

/* The same for the read direction alone (a split stream's read half closed
 * while its write half is open): read waiters end with -ECANCELED, writes
 * go on. Idempotent. */
void blz__io_source_shutdown_read(blz__io_source *s);

/* The same for the write direction alone (a split stream's write half closed
 * while its read half is open): write waiters end with -ECANCELED, reads go
 * on. Idempotent. */
void blz__io_source_shutdown_write(blz__io_source *s);

/* The owner is done: blz__io_source_shutdown, then drops the owner's reference. */
void blz__io_source_close(blz__io_source *s);

/*
 * The heart of every wait. If `s` is ready for `dir`, unlinks `w` if it was
 * linked and returns the readiness word (never 0). Otherwise links `w` (or
 * refreshes its waker) so that the next matching event wakes cx's waker, and
 * returns 0. `w` must have been cleared with blz__io_waiter_init.
 */
uint64_t blz__io_source_poll(blz__io_source *s, blz_waiter *w, int dir, blz_context *cx);

/* The readiness word without waiting (for the try tier). */
static inline uint64_t
blz__io_source_readiness(blz__io_source *s)
{
    /* Acquire pairs with the dispatcher's release CAS: data the kernel had
     * when it reported the event is what the syscall will see. */
    return blz__load(&s->readiness, ACQUIRE);
}

/* True when readiness word `r` lets an operation in direction `dir` proceed. */
static inline int
blz__io_ready_for(uint64_t r, int dir)
{
    unsigned need = dir == BLZ__DIR_READ
                        ? (BLZ__RD_READ | BLZ__RD_RCLOSED | BLZ__RD_ERROR | BLZ__RD_RSHUT)
                        : (BLZ__RD_WRITE | BLZ__RD_WCLOSED | BLZ__RD_ERROR | BLZ__RD_WSHUT);
    return (r & (need | BLZ__RD_SHUTDOWN)) != 0;
}

/* An operation that got EAGAIN clears the direction's bits, unless a new event
 * arrived since it read `seen` (the tick moved), which would be lost. */
void blz__io_source_clear(blz__io_source *s, int dir, uint64_t seen);

/*
 * One attempt of an operation on a source: its system call(s), with EINTR
 * retried. Returns the operation's result, or -EAGAIN when the descriptor was
 * not ready after all. `arg` is the operation (normally its future).
 */
typedef long (*blz__io_attempt_fn)(void *arg);

/*
 * The readiness wait loop of every future tier: while `s` is ready for `dir`,
 * runs `attempt`; when it says -EAGAIN, clears the direction's readiness
 * against the word it was tried with (blz__io_source_clear) and polls again,
 * which links `w` only if no event came meanwhile. Returns 0 (pending: `w` is
 * linked and cx's waker will be woken), or 1 with the result in `*res`:
 * attempt's, or -ECANCELED once the source is shut down. On 1, `w` is not
 * linked. Spends no coop budget and takes no reference: the caller does.
 * Owner of the future only.
 *
 * `full`: for a byte-stream read or write of `full` bytes whose short count
 * is known to mean "empty" or "full" (the caller decides: see stream_full in
 * net/sock.c), else 0. Such a transfer that moved fewer bytes (0 < n < full)
 * emptied the receive queue or filled the send buffer, so the direction's
 * readiness is cleared as for -EAGAIN (READ or WRITE only: ERROR and the CLOSED
 * bits stay for the next call): the next call
 * waits for an event instead of paying a syscall to learn EAGAIN. Datagrams,
 * peeks and accepts pass 0: a short result says nothing of what is left.
 */
int blz__io_source_wait(blz__io_source *s, blz_waiter *w, int dir, blz_context *cx,
                        blz__io_attempt_fn attempt, void *arg, long full, long *res);

/*
 * The try tier of the same loop: one attempt if `s` is ready for `dir`.
 * Returns attempt's result; -EAGAIN when not ready (or when attempt said so,
 * after clearing readiness as above); -ECANCELED once shut down. Never waits.
 * `full` as for blz__io_source_wait.
 */
long blz__io_source_try(blz__io_source *s, int dir, blz__io_attempt_fn attempt, void *arg,
                        long full);

/* The caller's own system call fn(fd, arg), with EINTR retried. */
long blz__io_call_user(blz_io_fn fn, int fd, void *arg);

/* The async_io futures (blz_async_io_future: async_fd's and the sockets'):
 * prepare records the call before the *_fut fills io_; call runs it on `fd`
 * (an attempt); await runs the future and returns fn's result unclamped. */
void blz__async_io_prepare(blz_async_io_future *f, blz_io_fn fn, void *arg);
long blz__async_io_call(blz_async_io_future *f, int fd);
long blz__async_io_await(blz_async_io_future *f);

/* The try tier of the caller's own system call (the try_io calls): fn(fd,
 * arg) with EINTR retried, if `s` is ready for `dir`, holding a reference so
 * that the descriptor stays open during the call. As blz__io_source_try. */
long blz__io_source_try_io(blz__io_source *s, int dir, blz_io_fn fn, void *arg);

/* Set in a blz_io_future's flags_ while it holds a reference on its source
 * (from its first poll until blz__io_future_end). */
#define BLZ__IOF_HELD 0x1

/*
 * One poll of a blz_io_future `f` that waits on `s` in direction `dir` (a
 * pipe's read or write, a watched descriptor's readiness): spends coop budget
 * first, takes the source reference at the first poll (a source already
 * released, kept only by a pin, gives -ECANCELED at once), then runs
 * blz__io_source_wait with `attempt(f)` and `full`. Returns 0 (pending) or 1
 * with the result in *res, after which the caller ends `f` with
 * blz__io_future_end. Owner of the future only.
 */
int blz__io_future_wait(blz__io_source *s, blz_io_future *f, int dir, blz_context *cx,
                        blz__io_attempt_fn attempt, long full, long *res);

/* Ends such a future, done or dropped: unlinks its waiter, drops the
 * reference it held, stores `r` (at most INT_MAX) as its result and forgets
 * the source (f->obj_ = NULL), so that a later poll reports the result kept. */
void blz__io_future_end(blz__io_source *s, blz_io_future *f, long r);

/* The drop of such a future whose obj_ is an object that starts with its
 * source (a pipe, a watched descriptor): blz__io_future_end with -ECANCELED,
 * nothing once it has ended. */
void blz__io_future_drop_headed(blz_future *base);

/* Unlinks `w` if linked and drops its waker. For a future's drop. */
void blz__io_waiter_cancel(blz__io_source *s, blz_waiter *w);


/*
 * A stream read on a source in completion-receive mode (s->rx_on): copies
 * what the kernel already received into `buf` (MSG_PEEK semantics when
 * `peek`), or, while the kernel's receive is not armed and nothing is held,
 * reads the socket itself. Returns the bytes (0: end of stream), -EAGAIN
 * (an event will come), or -errno: the contract of recv(2) on a non-blocking
 * socket, so it is an attempt like the syscall it replaces.
 */
long blz__io_rx_read(blz__io_source *s, void *buf, size_t len, int peek);

/* Whether a read on a source in completion-receive mode would copy data
 * the kernel received: no system call, and nothing taken (an end or an
 * error stays for the read that reports it). */
int blz__io_rx_held(blz__io_source *s);

/* A TCP stream whose connect just finished, not yet handed to its owner:
 * takes completion receive if the backend has it. */
void blz__io_source_rx_start(blz__io_source *s);

/* Backends: readiness `bits` arrived for `s`; wakes the waiters it satisfies.
 * Called from inside poll on the parking thread. */
void blz__io_source_ready(blz__io_source *s, unsigned bits);

#endif
