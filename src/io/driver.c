/*
 * The I/O driver: picks a backend, owns the readiness registry, and is what
 * a parked worker sleeps in.
 *
 * Invariants:
 * - `ops` and `be` are fixed from creation to free. `park` runs on one thread
 *   at a time (the runtime guarantees it); `wake` and every registry call may
 *   run on any thread.
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
    blz__io_options none = {NULL, 0, false};
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
        rc = order[i]->init(&d->be, opt->recv_buffers, opt->single);
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
    d->ops->fini(d->be);
    blz__registry_fini(&d->reg);
    blz__free(d);
}

void
blz__io_driver_rx_counts(const blz__io_driver *d, unsigned *out, unsigned *armed, unsigned *budget)
{
    *out = 0;
    *armed = 0;
    *budget = 0;
    if (d->ops->rx_counts) {
        d->ops->rx_counts(d->be, out, armed, budget);
    }
}

void
blz__io_driver_own(blz__io_driver *d)
{
    if (d->ops->own) {
        d->ops->own(d->be);
    }
}

void
blz__io_driver_disown(blz__io_driver *d)
{
    if (d->ops->disown) {
        d->ops->disown(d->be);
    }
}

int
blz__io_driver_park(blz__io_driver *d, int64_t timeout_ns)
{
    blz__registry_sweep(&d->reg);
    int n = d->ops->poll(d->be, timeout_ns);
    if (n > 0) {
        blz__fetch_add(&d->events, (uint64_t) n, RELAXED);
    }
    return n;
}

void
blz__io_driver_wake(blz__io_driver *d)
{
    d->ops->wake(d->be);
}

void
blz__io_driver_flush_deferred(blz__io_driver *d)
{
    if (d->ops->flush_deferred) {
        d->ops->flush_deferred(d->be);
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
    int rc = d->ops->submit(d->be, op);
    if (rc == 0 && kind >= 0 && kind < BLZ__OP_KIND_COUNT) {
        blz__fetch_add(&d->op_count[kind], 1u, RELAXED);
    }
    return rc;
}

int
blz__io_driver_cancel(blz__io_driver *d, blz__io_op *op)
{
    return d->ops->cancel(d->be, op);
}

bool
blz__io_driver_supports(const blz__io_driver *d, int kind)
{
    return !refused(d, kind) && d->ops->supports(d->be, kind) != 0;
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
