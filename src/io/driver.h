/*
 * Internal: the I/O driver as the runtime sees it. A runtime owns one driver.
 * At most one worker at a time parks in it (blz__io_driver_park), with the
 * timer wheel's next deadline as its timeout; any thread can make that worker
 * return at once with blz__io_driver_wake. Readiness events found while parked
 * wake the tasks waiting on them before park returns.
 *
 * The driver hides the backend (io_uring or epoll) behind io/backend.h; the
 * runtime knows nothing of either.
 */
#ifndef BLZ_IO_DRIVER_H
#define BLZ_IO_DRIVER_H

#include "blitzio/common.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct blz__io_driver blz__io_driver;

/* What a driver is created with. */
typedef struct blz__io_options {
    /* "io_uring", "epoll" or NULL for auto ($BLZ_BACKEND, then io_uring if
     * the probe passes, else epoll). */
    const char *backend;
    unsigned recv_buffers; /* blz_runtime_config.recv_buffers */
    /* 0: any thread may park, one at a time. n >= 1: exactly n threads will
     * park, thread i calling blz__io_driver_own(d, i) before its first park
     * and blz__io_driver_disown after its last; the backend may then give
     * each a ring of its own (blz__io_driver_rings says whether it did). */
    unsigned owners;
} blz__io_options;

/* Creates the driver. `opt` NULL: auto backend, no completion receive. */
int blz__io_driver_new(const blz__io_options *opt, blz__io_driver **out);

/* Completion receive (tests): buffers the kernel filled that streams still
 * hold, the kernel's receives armed, the bytes one arming may receive (0:
 * no limit), and the buffers whose memory was ever written (resident). All
 * 0 without it. */
void blz__io_driver_rx_counts(const blz__io_driver *d, unsigned *out, unsigned *armed,
                              unsigned *budget, unsigned *touched);

/* Owner thread `i` arrives and leaves (blz__io_options.owners). */
void blz__io_driver_own(blz__io_driver *d, unsigned i);
void blz__io_driver_disown(blz__io_driver *d, unsigned i);

/* How many rings the owners park in: 1 (every parker shares the one
 * backend, one at a time), or `owners` (each owner parks in its own, all at
 * once; events of a ring are dispatched only by its owner's park). */
unsigned blz__io_driver_rings(const blz__io_driver *d);

struct blz__io_source;

/* The index of the ring `s` is armed on (tests). */
unsigned blz__io_driver_ring_of(const blz__io_driver *d, const struct blz__io_source *s);

/* Closes the backend and frees the driver. No task may still be registered. */
void blz__io_driver_free(blz__io_driver *d);

/* Waits up to `timeout_ns` (-1 = forever, 0 = just poll) for I/O or a wake,
 * dispatches what arrived and returns the number of events handled. With
 * rings per owner, an owner parks in its own ring; otherwise only one
 * thread at a time (the runtime guarantees it). */
int blz__io_driver_park(blz__io_driver *d, int64_t timeout_ns);

/* Makes a concurrent or the next blz__io_driver_park return promptly (every
 * ring's). Any thread. */
void blz__io_driver_wake(blz__io_driver *d);

/* The same for the park of owner `i` only (its ring); the one backend's
 * when there are no rings per owner. Any thread. */
void blz__io_driver_wake_ring(blz__io_driver *d, unsigned i);

/* Lets the backend finish work the kernel deferred to the calling thread
 * (io/backend.h, flush_deferred). Any thread; cheap when there is none. */
void blz__io_driver_flush_deferred(blz__io_driver *d);

/* "io_uring" or "epoll". */
const char *blz__io_driver_name(const blz__io_driver *d);

/* Events dispatched so far (for metrics). */
uint64_t blz__io_driver_events(const blz__io_driver *d);

/* ---- additions for the I/O modules and tests (src/io owns these) --------- */

struct blz__io_op;

/* Why the backend asked for (by name or $BLZ_BACKEND) is not the one in use,
 * or NULL when it is. Tests print it when they skip. */
const char *blz__io_driver_fallback_reason(const blz__io_driver *d);

/* Waiters linked in the registry right now, all descriptors (leak checks). */
uint64_t blz__io_driver_waiters(const blz__io_driver *d);

/* Descriptors registered and not yet released. */
uint64_t blz__io_driver_sources(const blz__io_driver *d);

/* Completion operations (io/backend.h): -EOPNOTSUPP where the backend has none. */
int blz__io_driver_submit(blz__io_driver *d, struct blz__io_op *op);
int blz__io_driver_cancel(blz__io_driver *d, struct blz__io_op *op);
bool blz__io_driver_supports(const blz__io_driver *d, int kind);

/* Completion ops of `kind` (enum blz__op_kind) the backend accepted so far.
 * Each one completes exactly once (the backend contract), so this also counts
 * the completions that are, or will be, reported. Tests use it to tell which
 * path an operation took; 0 for an unknown kind. Any thread. */
uint64_t blz__io_driver_ops(const blz__io_driver *d, int kind);

/* Tests: from now on, supports(kind) says false and submit refuses `kind`
 * (-EOPNOTSUPP), as on a kernel without that op, so the fallback path runs
 * on io_uring too. Call before any op of that kind is submitted. */
void blz__io_driver_refuse(blz__io_driver *d, int kind);

#endif
