/*
 * Name resolution with getaddrinfo on the blocking pool, and connect-by-name.
 * The job and its future are the ones every lookup shares (lookup.h): a
 * dropped future detaches the job, which runs on and frees its share.
 */
#include "core/alloc.h"
#include "core/atomic.h"
#include "core/future.h"
#include "net/lookup.h"
#include "net/sock.h"
#include "os/unix/sys.h"
#include "rt/current.h"

#include <string.h>

typedef struct resolve_job {
    blz__lookup lk;
    char host[]; /* NUL-terminated copy */
} resolve_job;

static void *
job_run(void *arg)
{
    resolve_job *j = arg;
    j->lk.result = blz__sys_getaddrinfo(j->host, j->lk.port, j->lk.addrs, BLZ__LOOKUP_MAX);
    blz__lookup_release(&j->lk);
    return NULL;
}

void
blz_resolve_fut(const char *host, uint16_t port, blz_addr *out, size_t max, blz_resolve_future *f)
{
    if (!f) {
        return;
    }
    blz__io_driver *d = blz__lookup_begin(f, host, 1024, port, out, max);
    if (!d) {
        return;
    }
    size_t len = strlen(host);
    resolve_job *j = blz__lookup_new(d, sizeof *j + len + 1, port);
    if (!j) {
        blz__lookup_fut_ready(f, -ENOMEM);
        return;
    }
    memcpy(j->host, host, len + 1);
    blz_join *join;
    blz_runtime *rt = blz__rt_current();
    int rc = rt ? blz__spawn_blocking_owned(rt, job_run, NULL, j, &join) : -ESRCH;
    if (rc < 0) {
        blz__io_tracked_free(d, j);
        blz__lookup_fut_ready(f, rc);
        return;
    }
    blz__lookup_fut(f, &j->lk, join, out, max, NULL);
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
    if (!out) {
        blz__future_ready(&f->base, -EINVAL);
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
