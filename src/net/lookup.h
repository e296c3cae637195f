/*
 * Internal: what the two name lookups share (resolve.c, getaddrinfo on the
 * blocking pool; dns.c, the native resolver on a task). A lookup job is
 * shared by the task that runs it and the future that waits for it, through
 * `refs` (2 at start): whichever lets go last frees it, so a future dropped
 * mid-lookup is safe. The memory is tracked by the driver, which frees it if
 * the runtime is torn down before the task ever ran. The task writes its
 * answer into the job; the future copies it out only after the join
 * completed, which orders the task's writes before the copy.
 */
#ifndef BLZ_NET_LOOKUP_H
#define BLZ_NET_LOOKUP_H

#include "blitzio/net.h"
#include "io/driver.h"

#include <stdatomic.h>

/* The most addresses one lookup keeps. */
#define BLZ__LOOKUP_MAX 64

typedef struct blz__lookup {
    _Atomic uint32_t refs;  /* the task + the future */
    blz__io_driver *driver; /* owns the memory if neither side ever lets go */
    uint16_t port;          /* given to every address found */
    int result;             /* count or -errno, written by the task */
    blz_addr addrs[BLZ__LOOKUP_MAX];
} blz__lookup;

/*
 * What every lookup future starts with: the arguments (a name of 1 to
 * `name_max` bytes, `out`, `max`), a literal address (answered at once, no
 * lookup), the runtime. Returns the driver to go on with, or NULL with `f`
 * already finished (the answer or the error in its result).
 */
blz__io_driver *blz__lookup_begin(blz_resolve_future *f, const char *host, size_t name_max,
                                  uint16_t port, blz_addr *out, size_t max);

/* A job of `size` bytes (a struct that starts with blz__lookup, and what
 * follows it), tracked by `d`: refs 2, result -EIO. NULL when out of memory. */
void *blz__lookup_new(blz__io_driver *d, size_t size, uint16_t port);

/* Lets go of one share; the last frees the job. Any thread. */
void blz__lookup_release(blz__lookup *j);

/* The poll of every lookup future: waits for the task, then copies up to
 * max_ addresses out and lets go of the job. */
blz_poll blz__lookup_poll(blz_future *base, blz_context *cx);

/* Starts `f` waiting for the task `join` that runs job `j`, to copy up to
 * `max` of its addresses into `out`. `vt` pairs blz__lookup_poll with the
 * future's drop (each lookup stops its task its own way); NULL: a drop that
 * only detaches the task and lets go of the job. */
void blz__lookup_fut(blz_resolve_future *f, blz__lookup *j, blz_join *join, blz_addr *out,
                     size_t max, const blz_future_vtable *vt);

/* Makes `f` a future already finished with `result`. */
void blz__lookup_fut_ready(blz_resolve_future *f, int result);

#endif
