/*
 * Internal to src/io: the driver struct, shared by driver.c and registry.c.
 * Nothing outside src/io includes this.
 */
#ifndef BLZ_IO_DRIVER_IMPL_H
#define BLZ_IO_DRIVER_IMPL_H

#include "io/backend.h"
#include "io/driver.h"
#include "io/registry.h"

struct blz__io_driver {
    const blz__backend_ops *ops; /* the backend picked at creation; never changes */
    /* Its state, owned: one backend, or one per owner thread (rings per
     * worker: blz__io_options.owners), each parked in by its owner only. */
    blz__backend **rings;
    unsigned nrings;
    _Atomic uint32_t next_ring;  /* round-robin placement over the rings (relaxed) */
    blz__registry reg;           /* every source of this driver */
    _Atomic uint64_t events;     /* events dispatched, for metrics (relaxed) */
    const char *fallback_reason; /* why the requested backend was not used, or NULL */
    /* Completion ops the backend accepted, per kind (relaxed: statistics). */
    _Atomic uint64_t op_count[BLZ__OP_KIND_COUNT];
    /* Kinds refused whatever the backend offers (bit = kind; tests only, relaxed). */
    _Atomic uint32_t refused;
};

/* The ring a new source is armed on, or an op submitted: the calling
 * owner's own (the task that opens a connection or starts an op is likely
 * to wait for it on that worker), from any other thread the next one round
 * the rings; the only one when there is one. */
blz__backend *blz__io_driver_place(blz__io_driver *d);

#endif
