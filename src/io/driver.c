/*
 * The I/O driver: picks a backend, owns the readiness registry, and is what
 * a parked worker sleeps in.
 *
 * Invariants:
 * - `ops` and `rings` are fixed from creation to free. With one ring, `park`
 *   runs on one thread at a time (the runtime guarantees it); with a ring per
 *   owner, each owner parks in its own only, all at once. `wake` and every
 *   registry call may run on any thread.
 * - A source stays on the ring it was armed on and an op on the ring it was
 *   submitted to (their `ring`): an owner's own, else the next round the
 *   rings (blz__io_driver_place).
 * - Each park first sweeps the registry (frees retired sources the backend let
 *   go of), then polls the backend, which dispatches readiness to the registry
 *   and completions to their ops before park returns.
 * - Completion ops pass through here on their way to the backend: `op_count`
 *   counts the accepted ones per kind (the only per-kind statistic; the
 *   backend completes each exactly once), and `refused` lets tests make a
 *   kind look unsupported so the fallback runs on io_uring too.
 * - Backend choice: the name passed in, else $BLZ_BACKEND, else epoll under
 *   valgrind, else io_uring when its probe passes, else epoll. A requested io_uring that cannot
 * start falls back to epoll, with the reason kept for blz__io_driver_fallback_reason.
 */
#include "io/driver.h"

#include "core/alloc.h"
#include "io/driver_impl.h"

#include <stdlib.h>
#include <string.h>

#if defined(__has_include)
# if __has_include(<valgrind/valgrind.h>)
#  include <valgrind/valgrind.h>
#  define BLZ_UNDER_VALGRIND() RUNNING_ON_VALGRIND
# endif
#endif
#ifndef BLZ_UNDER_VALGRIND
# define BLZ_UNDER_VALGRIND() 0
#endif

static const blz__backend_ops *const backends[] = {&blz__uring_backend, &blz__epoll_backend};

/* The driver and ring index of the owner thread calling (blz__io_driver_own).
 * Fibers move between workers: these are read only in the functions below,
 * kept out of line, so that no caller carries one thread's value across a
 * switch to another. */
static _Thread_local blz__io_driver *tl_driver;
static _Thread_local unsigned tl_ring;

/* The ring the calling thread parks in: its own, or the only one. */
static BLZ_NOINLINE blz__backend *
own_ring(blz__io_driver *d)
{
    return d->rings[tl_driver == d ? tl_ring : 0];
}

BLZ_NOINLINE blz__backend *
blz__io_driver_place(blz__io_driver *d)
{
    if (d->nrings == 1) {
        return d->rings[0];
    }
    if (tl_driver == d) {
        return d->rings[tl_ring];
    }
    uint32_t i = blz__fetch_add(&d->next_ring, 1u, RELAXED);
    return d->rings[i % d->nrings];
}

/* Owner i's ring: its own, or the only one. */
static blz__backend *
ring_at(const blz__io_driver *d, unsigned i)
{
    return d->rings[d->nrings > 1 ? i : 0];
}

/* Each ring's share of the receive buffers: a power of two, at least 16. */
static unsigned
ring_buffers(unsigned total, unsigned rings)
{
    unsigned per = total;
    while (per > 16 && per * rings > total) {
        per >>= 1;
    }
    return per;
}

/* Makes n backends of `ops` in d->rings (`single`: each parked in by one
 * owner thread), sharing out the receive buffers; all or none. */
static int
rings_make(blz__io_driver *d, const blz__backend_ops *ops, unsigned n, unsigned recv_buffers,
           bool single)
{
    d->rings = blz__calloc(n, sizeof(blz__backend *));
    if (!d->rings) {
        return -ENOMEM;
    }
    int rc = 0;
    unsigned made = 0;
    while (made < n &&
           (rc = ops->init(&d->rings[made], ring_buffers(recv_buffers, n), single)) == 0) {
        made++;
    }
    if (rc < 0) {
        while (made > 0) {
            ops->fini(d->rings[--made]);
        }
        blz__free(d->rings);
        d->rings = NULL;
        return rc;
    }
    d->nrings = n;
    return 0;
}

/* Starts `ops`: one backend for every owner when there are several and the
 * backend can be owned (each a ring that only its owner enters), else one
 * for all. Rings per owner that cannot all be made (memlock, the kernel's
 * limit) fall back to one that all owners share. */
static int
backend_start(blz__io_driver *d, const blz__backend_ops *ops, const blz__io_options *opt)
{
    if (opt->owners > 1 && ops->own &&
        rings_make(d, ops, opt->owners, opt->recv_buffers, true) == 0) {
        return 0;
    }
    return rings_make(d, ops, 1, opt->recv_buffers, opt->owners == 1);
}

static const blz__backend_ops *
backend_by_name(const char *name)
{
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        if (strcmp(backends[i]->name, name) == 0) {
            return backends[i];
        }
    }
    return NULL;
}

int
blz__io_driver_new(const blz__io_options *opt, blz__io_driver **out)
{
    if (!out) {
        return -EINVAL;
    }
    blz__io_options none = {NULL, 0, 0};
    if (!opt) {
        opt = &none;
    }
    const char *backend = opt->backend;
    if (!backend || !*backend) {
        backend = getenv("BLZ_BACKEND"); /* NOLINT(concurrency-mt-unsafe): read once at start */
        if (backend && (!*backend || strcmp(backend, "auto") == 0)) {
            backend = NULL;
        }
    }
    if (!backend && BLZ_UNDER_VALGRIND()) {
        /* Valgrind runs one thread at a time and does not release it around a
         * blocking io_uring_enter, so every other thread would stall: prefer epoll. */
        backend = "epoll";
    }
    const blz__backend_ops *first = NULL;
    if (backend) {
        first = backend_by_name(backend);
        if (!first) {
            return -EINVAL;
        }
    }
    blz__io_driver *d = blz__calloc(1, sizeof *d);
    if (!d) {
        return -ENOMEM;
    }
    blz__registry_init(&d->reg);
    atomic_init(&d->events, 0u);
    for (int k = 0; k < BLZ__OP_KIND_COUNT; k++) {
        atomic_init(&d->op_count[k], 0u);
    }
    atomic_init(&d->refused, 0u);
    atomic_init(&d->next_ring, 0u);

    /* Try the requested backend, then the others in order of preference. */
    int rc = -ENOSYS;
    const blz__backend_ops *order[3] = {NULL, NULL, NULL};
    size_t n = 0;
    if (first) {
        order[n++] = first;
    }
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        if (backends[i] != first) {
            order[n++] = backends[i];
        }
    }
    for (size_t i = 0; i < n; i++) {
        rc = backend_start(d, order[i], opt);
        if (rc == 0) {
            d->ops = order[i];
            break;
        }
        if (i == 0 && first) {
            d->fallback_reason =
                order[i] == &blz__uring_backend
                    ? "io_uring unavailable (setup, probe or multishot poll failed)"
                    : "backend failed to start";
        }
    }
    if (!d->ops) {
        blz__free(d);
        return rc;
    }
    if (d->ops == order[0]) {
        d->fallback_reason = NULL;
    }
    *out = d;
    return 0;
}

void
blz__io_driver_free(blz__io_driver *d)
{
    if (!d) {
        return;
    }
    /* The backend first: after fini the kernel holds no source and no buffer. */
    for (unsigned i = 0; i < d->nrings; i++) {
        d->ops->fini(d->rings[i]);
    }
    blz__free(d->rings);
    blz__registry_fini(&d->reg);
    blz__free(d);
}

void
blz__io_driver_rx_counts(const blz__io_driver *d, unsigned *out, unsigned *armed, unsigned *budget,
                         unsigned *touched)
{
    *out = 0;
    *armed = 0;
    *budget = 0;
    *touched = 0;
    if (!d->ops->rx_counts) {
        return;
    }
    for (unsigned i = 0; i < d->nrings; i++) {
        unsigned o, a, b, t;
        d->ops->rx_counts(d->rings[i], &o, &a, &b, &t);
        *out += o;
        *armed += a;
        *budget = b;
        *touched += t;
    }
}

void
blz__io_driver_own(blz__io_driver *d, unsigned i)
{
    tl_driver = d;
    tl_ring = d->nrings > 1 ? i : 0;
    if (d->ops->own) {
        d->ops->own(ring_at(d, i));
    }
}

void
blz__io_driver_disown(blz__io_driver *d, unsigned i)
{
    if (d->ops->disown) {
        d->ops->disown(ring_at(d, i));
    }
    tl_driver = NULL;
}

unsigned
blz__io_driver_rings(const blz__io_driver *d)
{
    return d->nrings;
}

unsigned
blz__io_driver_ring_of(const blz__io_driver *d, const blz__io_source *s)
{
    unsigned i = 0;
    while (i + 1 < d->nrings && d->rings[i] != s->ring) {
        i++;
    }
    return i;
}

int
blz__io_driver_park(blz__io_driver *d, int64_t timeout_ns)
{
    blz__registry_sweep(&d->reg);
    int n = d->ops->poll(own_ring(d), timeout_ns);
    if (n > 0) {
        blz__fetch_add(&d->events, (uint64_t) n, RELAXED);
    }
    return n;
}

void
blz__io_driver_wake(blz__io_driver *d)
{
    for (unsigned i = 0; i < d->nrings; i++) {
        d->ops->wake(d->rings[i]);
    }
}

void
blz__io_driver_wake_ring(blz__io_driver *d, unsigned i)
{
    d->ops->wake(ring_at(d, i));
}

void
blz__io_driver_flush_deferred(blz__io_driver *d)
{
    if (d->ops->flush_deferred) {
        d->ops->flush_deferred(own_ring(d));
    }
}

const char *
blz__io_driver_name(const blz__io_driver *d)
{
    return d ? d->ops->name : "none";
}

uint64_t
blz__io_driver_events(const blz__io_driver *d)
{
    return blz__load(&d->events, RELAXED);
}

const char *
blz__io_driver_fallback_reason(const blz__io_driver *d)
{
    return d ? d->fallback_reason : NULL;
}

uint64_t
blz__io_driver_waiters(const blz__io_driver *d)
{
    return blz__registry_waiters((blz__registry *) &d->reg);
}

uint64_t
blz__io_driver_sources(const blz__io_driver *d)
{
    return blz__load(&d->reg.nlive, RELAXED);
}

static bool
refused(const blz__io_driver *d, int kind)
{
    return kind >= 0 && kind < BLZ__OP_KIND_COUNT &&
           (blz__load(&d->refused, RELAXED) & (1u << kind)) != 0;
}

int
blz__io_driver_submit(blz__io_driver *d, blz__io_op *op)
{
    int kind = op ? op->kind : -1; /* read now: once accepted, the op may be gone */
    if (refused(d, kind)) {
        return -EOPNOTSUPP;
    }
    blz__backend *ring = blz__io_driver_place(d);
    if (op) {
        op->ring = ring;
    }
    int rc = d->ops->submit(ring, op);
    if (rc == 0 && kind >= 0 && kind < BLZ__OP_KIND_COUNT) {
        blz__fetch_add(&d->op_count[kind], 1u, RELAXED);
    }
    return rc;
}

int
blz__io_driver_cancel(blz__io_driver *d, blz__io_op *op)
{
    return d->ops->cancel(op->ring, op);
}

bool
blz__io_driver_supports(const blz__io_driver *d, int kind)
{
    return !refused(d, kind) && d->ops->supports(d->rings[0], kind) != 0;
}

uint64_t
blz__io_driver_ops(const blz__io_driver *d, int kind)
{
    return kind >= 0 && kind < BLZ__OP_KIND_COUNT ? blz__load(&d->op_count[kind], RELAXED) : 0;
}

void
blz__io_driver_refuse(blz__io_driver *d, int kind)
{
    if (kind >= 0 && kind < BLZ__OP_KIND_COUNT) {
        blz__fetch_or(&d->refused, 1u << kind, RELAXED);
    }
}
