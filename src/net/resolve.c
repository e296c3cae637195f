/*
 * Name resolution on the blocking pool, and connect-by-name.
 *
 * Invariants: a lookup job is shared by the blocking thread that runs it and
 * the future that waits for it, through `refs` (2 at start); whichever lets
 * go last frees it, so a future dropped mid-lookup is safe; the memory is
 * tracked by the driver, which frees it if the runtime is torn down before
 * the job ever ran. The job writes
 * its answer into its own storage; the future copies it out only after the
 * join completed (which orders the job's writes before the copy).
 */
#include "core/alloc.h"
#include "core/atomic.h"
#include "net/sock.h"
#include "os/unix/sys.h"

#include <string.h>

#define RESOLVE_MAX 64

typedef struct resolve_job {
    _Atomic uint32_t refs;  /* the job + the future */
    blz__io_driver *driver; /* owns the memory if neither side ever lets go */
    uint16_t port;
    int result; /* count or -errno, written by the job */
    blz_addr addrs[RESOLVE_MAX];
    char host[]; /* NUL-terminated copy */
} resolve_job;

static void
job_release(resolve_job *j)
{
    /* Acq_rel pairs with itself: the last holder sees the other's writes. */
    if (blz__fetch_sub(&j->refs, 1u, ACQ_REL) == 1) {
        blz__io_tracked_free(j->driver, j);
    }
}

static void *
job_run(void *arg)
{
    resolve_job *j = arg;
    j->result = blz__sys_getaddrinfo(j->host, j->port, j->addrs, RESOLVE_MAX);
    job_release(j);
    return NULL;
}

static blz_poll
resolve_poll(blz_future *base, blz_context *cx)
{
    blz_resolve_future *f = (blz_resolve_future *) base;
    resolve_job *j = f->job_;
    if (!j) {
        return BLZ_READY;
    }
    if (blz_future_poll(&f->join_.base, cx) == BLZ_PENDING) {
        return BLZ_PENDING;
    }
    int rc = f->join_.base.result;
    if (rc == 0) {
        rc = j->result;
        if (rc > 0) {
            size_t n = (size_t) rc < f->max_ ? (size_t) rc : f->max_;
            memcpy(f->out_, j->addrs, n * sizeof(blz_addr));
            rc = (int) n;
        }
    }
    f->job_ = NULL;
    job_release(j);
    f->base.result = rc;
    return BLZ_READY;
}

static void
resolve_drop(blz_future *base)
{
    blz_resolve_future *f = (blz_resolve_future *) base;
    if (f->job_) {
        blz_future_drop(&f->join_.base); /* detaches: the job runs on and frees itself */
        job_release(f->job_);
        f->job_ = NULL;
    }
}

static const blz_future_vtable resolve_vt = {resolve_poll, resolve_drop};

static blz_poll
failed_poll(blz_future *base, blz_context *cx)
{
    (void) base;
    (void) cx;
    return BLZ_READY;
}

static const blz_future_vtable failed_vt = {failed_poll, NULL};

void
blz_resolve_fut(const char *host, uint16_t port, blz_addr *out, size_t max, blz_resolve_future *f)
{
    if (!f) {
        return;
    }
    memset(f, 0, sizeof *f);
    blz_future_init(&f->base, &failed_vt);
    size_t len = host ? strlen(host) : 0;
    if (!host || len == 0 || len > 1024 || !out || max == 0) {
        f->base.result = -EINVAL;
        return;
    }
    /* A literal address needs no lookup and no thread. */
    blz_addr lit;
    if (blz_addr_from_ip(host, port, &lit) == 0) {
        out[0] = lit;
        f->base.result = 1;
        return;
    }
    blz__io_driver *d = blz__net_driver();
    if (!d) {
        f->base.result = -ESRCH;
        return;
    }
    /* Tracked by the driver: if the runtime is freed before the job runs,
     * nobody else would free it. */
    resolve_job *j = blz__io_tracked_alloc(d, sizeof *j + len + 1);
    if (!j) {
        f->base.result = -ENOMEM;
        return;
    }
    atomic_init(&j->refs, 2u);
    j->driver = d;
    j->port = port;
    j->result = -EIO;
    memcpy(j->host, host, len + 1);
    blz_join *join;
    int rc = blz_spawn_blocking(job_run, j, &join);
    if (rc < 0) {
        blz__io_tracked_free(d, j);
        f->base.result = rc;
        return;
    }
    blz_future_init(&f->base, &resolve_vt);
    blz_join_fut(join, &f->join_);
    f->job_ = j;
    f->out_ = out;
    f->max_ = max;
}

int
blz_resolve(const char *host, uint16_t port, blz_addr *out, size_t max)
{
    blz_resolve_future f;
    blz_resolve_fut(host, port, out, max, &f);
    int rc = blz_await(&f.base);
    if (rc == -EDEADLK) {
        blz_future_drop(&f.base);
    }
    return rc;
}

/* ---- connect by name ------------------------------------------------------------ */

/* Resolving (count_ == -1), then one connect future per address in turn. */
static blz_poll
connect_host_poll(blz_future *base, blz_context *cx)
{
    blz_connect_host_future *f = (blz_connect_host_future *) base;
    if (f->count_ < 0) {
        if (blz_future_poll(&f->resolve_.base, cx) == BLZ_PENDING) {
            return BLZ_PENDING;
        }
        int n = f->resolve_.base.result;
        if (n <= 0) {
            f->base.result = n < 0 ? n : -ECONNREFUSED;
            f->count_ = 0; /* finished: nothing left to drop */
            return BLZ_READY;
        }
        f->count_ = n;
        f->next_ = 0;
        blz_tcp_connect_fut(&f->addrs_[0], f->out_, &f->connect_);
    }
    for (;;) {
        if (blz_future_poll(&f->connect_.base, cx) == BLZ_PENDING) {
            return BLZ_PENDING;
        }
        int rc = f->connect_.base.result;
        if (rc == 0 || rc == -ECANCELED || ++f->next_ == f->count_) {
            f->base.result = rc;
            f->count_ = 0; /* finished: nothing left to drop */
            f->next_ = 0;
            return BLZ_READY;
        }
        blz_tcp_connect_fut(&f->addrs_[f->next_], f->out_, &f->connect_);
    }
}

static void
connect_host_drop(blz_future *base)
{
    blz_connect_host_future *f = (blz_connect_host_future *) base;
    if (f->count_ < 0) {
        blz_future_drop(&f->resolve_.base);
    } else if (f->count_ > 0) {
        blz_future_drop(&f->connect_.base); /* closes the half-made socket */
    }
    f->count_ = 0;
}

static const blz_future_vtable connect_host_vt = {connect_host_poll, connect_host_drop};

void
blz_tcp_connect_host_fut(const char *host, uint16_t port, blz_tcp_stream **out,
                         blz_connect_host_future *f)
{
    if (!f) {
        return;
    }
    memset(f, 0, sizeof *f);
    blz_future_init(&f->base, &failed_vt);
    if (!out) {
        f->base.result = -EINVAL;
        return;
    }
    *out = NULL;
    f->out_ = out;
    blz_resolve_fut(host, port, f->addrs_, BLZ_CONNECT_HOST_MAX, &f->resolve_);
    blz_future_init(&f->base, &connect_host_vt);
    f->count_ = -1;
}

int
blz_tcp_connect_host(const char *host, uint16_t port, blz_tcp_stream **out)
{
    blz_connect_host_future f;
    blz_tcp_connect_host_fut(host, port, out, &f);
    int rc = blz_await(&f.base);
    if (rc == -EDEADLK) {
        blz_future_drop(&f.base);
    }
    return rc;
}
