/*
 * The job and the future the two name lookups share (see lookup.h).
 */
#include "net/lookup.h"

#include "core/atomic.h"
#include "core/future.h"
#include "io/registry.h"
#include "net/sock.h"

#include <string.h>

blz__io_driver *
blz__lookup_begin(blz_resolve_future *f, const char *host, size_t name_max, uint16_t port,
                  blz_addr *out, size_t max)
{
    size_t len = host ? strlen(host) : 0;
    if (!host || len == 0 || len > name_max || !out || max == 0) {
        blz__lookup_fut_ready(f, -EINVAL);
        return NULL;
    }
    blz_addr lit;
    if (blz_addr_from_ip(host, port, &lit) == 0) {
        out[0] = lit;
        blz__lookup_fut_ready(f, 1);
        return NULL;
    }
    blz__io_driver *d = blz__net_driver();
    if (!d) {
        blz__lookup_fut_ready(f, -ESRCH);
    }
    return d;
}

void *
blz__lookup_new(blz__io_driver *d, size_t size, uint16_t port)
{
    blz__lookup *j = blz__io_tracked_alloc(d, size);
    if (!j) {
        return NULL;
    }
    atomic_init(&j->refs, 2u);
    j->driver = d;
    j->port = port;
    j->result = -EIO;
    return j;
}

void
blz__lookup_release(blz__lookup *j)
{
    /* Acq_rel pairs with itself: the last holder sees the other's writes. */
    if (blz__fetch_sub(&j->refs, 1u, ACQ_REL) == 1) {
        blz__io_tracked_free(j->driver, j);
    }
}

blz_poll
blz__lookup_poll(blz_future *base, blz_context *cx)
{
    blz_resolve_future *f = (blz_resolve_future *) base;
    blz__lookup *j = f->job_;
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
    blz__lookup_release(j);
    f->base.result = rc;
    return BLZ_READY;
}

/* The plain drop: detach the task (it runs on and frees its share). */
static void
lookup_drop(blz_future *base)
{
    blz_resolve_future *f = (blz_resolve_future *) base;
    if (f->job_) {
        blz_future_drop(&f->join_.base);
        blz__lookup_release(f->job_);
        f->job_ = NULL;
    }
}

static const blz_future_vtable lookup_vt = {blz__lookup_poll, lookup_drop};

void
blz__lookup_fut_ready(blz_resolve_future *f, int result)
{
    memset(f, 0, sizeof *f);
    blz__future_ready(&f->base, result);
}

void
blz__lookup_fut(blz_resolve_future *f, blz__lookup *j, blz_join *join, blz_addr *out, size_t max,
                const blz_future_vtable *vt)
{
    blz_future_init(&f->base, vt ? vt : &lookup_vt);
    blz_join_wait_fut(join, &f->join_);
    f->job_ = j;
    f->out_ = out;
    f->max_ = max;
}
