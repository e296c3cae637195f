/*
 * Task dumps: what every live task of a runtime is doing, and where a waiting
 * fiber waits (its backtrace).
 *
 * Invariants:
 * - Listing: under each owned-list shard's lock every linked task is alive
 *   (the list holds a reference until completion unlinks it). The dump takes
 *   a reference of its own on each task it lists, then looks at them one by
 *   one outside the locks, so no lock is held while a fiber is unwound.
 * - Looking: only a waiting task (not RUNNING, NOTIFIED or COMPLETE) is looked
 *   into, and only after the dump set RUNNING by CAS, as a worker does when it
 *   takes a task from a queue: no worker polls it meanwhile (a wake only sets
 *   NOTIFIED while RUNNING is set), so its payload holds still. The dump's
 *   reference plays the part of the queue's; the way out is the worker's too
 *   (blz__task_transition_to_idle): when a wake or an abort came meanwhile,
 *   the task goes to a queue with that reference; otherwise it is dropped.
 */
#include "core/alloc.h"
#include "core/atomic.h"
#include "rt/hooks.h"
#include "rt/runtime.h"
#include "rt/task.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#ifdef __GLIBC__
# include <execinfo.h>
#endif

static pthread_once_t unwinder_once = PTHREAD_ONCE_INIT;

/* glibc loads the unwinder (libgcc_s) at the first backtrace: do that here,
 * on a thread's own stack, and not on a fiber's. */
static void
load_unwinder(void)
{
#ifdef __GLIBC__
    void *frame;
    (void) backtrace(&frame, 1);
#endif
}

/* Fills d for task t and drops the reference the listing took. */
static void
inspect(blz__task *t, blz_task_dump *d)
{
    const void *id = d->task;
    memset(d, 0, sizeof *d);
    d->task = id;
    d->kind = blz__task_public_kind(t);
    uint64_t cur = blz__load(&t->state, ACQUIRE);
    for (;;) {
        d->cancelled = (cur & BLZ_TASK_CANCELLED) != 0;
        /* A blocking job is never idle: queued (NOTIFIED) until it runs. */
        if ((cur & (BLZ_TASK_COMPLETE | BLZ_TASK_RUNNING | BLZ_TASK_NOTIFIED)) ||
            t->kind == BLZ_TASK_BLOCKING) {
            d->state = (cur & BLZ_TASK_COMPLETE)  ? BLZ_DUMP_FINISHED
                       : (cur & BLZ_TASK_RUNNING) ? BLZ_DUMP_RUNNING
                                                  : BLZ_DUMP_SCHEDULED;
            blz__task_ref_dec(t);
            return;
        }
        /* Acquire pairs with the release of the worker that left it idle:
         * its last poll's writes to the payload are visible. */
        if (blz__cas_weak(&t->state, &cur, cur | BLZ_TASK_RUNNING, ACQ_REL, ACQUIRE)) {
            break;
        }
    }
    d->state = BLZ_DUMP_WAITING;
    if (t->kind == BLZ_TASK_FIBER) {
        blz__fiber_task_trace(t, d);
    } else if (t->kind == BLZ_TASK_STACKLESS) {
        const blz_future *f = blz__task_payload(t);
        d->future_fn = f->vtable ? f->vtable->poll : NULL;
    }
    if (blz__task_transition_to_idle(t)) {
        blz__schedule(t); /* woken or aborted while held: run it now */
    }
}

int
blz_runtime_dump(blz_runtime *rt, blz_task_dump *out, size_t cap, size_t *total)
{
    if (!rt || (cap > 0 && !out)) {
        return -EINVAL;
    }
    (void) pthread_once(&unwinder_once, load_unwinder);
    size_t seen = 0;
    for (unsigned s = 0; s < BLZ_OWNED_SHARDS; s++) {
        blz__owned_shard *sh = &rt->owned[s];
        blz__spin_lock(&sh->lock);
        for (blz__task *t = sh->head; t; t = t->owned_next) {
            if (seen < cap) {
                blz__task_ref_inc(t);
                out[seen].task = t;
            }
            seen++;
        }
        blz__spin_unlock(&sh->lock);
    }
    size_t n = seen < cap ? seen : cap;
    for (size_t i = 0; i < n; i++) {
        blz__task *t = (blz__task *) (uintptr_t) out[i].task; // NOLINT(performance-no-int-to-ptr)
        inspect(t, &out[i]);
    }
    if (total) {
        *total = seen;
    }
    return n > INT32_MAX ? INT32_MAX : (int) n;
}

/* ---- as text ------------------------------------------------------------------ */

static const char *const kind_names[] = {"fiber", "future", "blocking"};
static const char *const state_names[] = {"waiting", "scheduled", "running", "finished"};

static int
write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        s += w;
        n -= (size_t) w;
    }
    return 0;
}

/* The name of the code at `addr`, as backtrace_symbols_fd writes it, on its own line. */
static void
write_symbol(int fd, void *addr)
{
#ifdef __GLIBC__
    backtrace_symbols_fd(&addr, 1, fd);
#else
    char line[32];
    int len = snprintf(line, sizeof line, "%p\n", addr);
    (void) write_all(fd, line, (size_t) len);
#endif
}

static int
write_task(int fd, const blz_task_dump *d)
{
    char line[160];
    int len = snprintf(line, sizeof line, "task %p %s %s%s", d->task, kind_names[d->kind],
                       state_names[d->state], d->cancelled ? " cancelled" : "");
    int rc = write_all(fd, line, (size_t) len);
    void *entry = NULL;
    if (d->fiber_fn) {
        memcpy(&entry, &d->fiber_fn, sizeof entry);
    } else if (d->future_fn) {
        memcpy(&entry, &d->future_fn, sizeof entry);
    }
    if (rc == 0 && entry) {
        rc = write_all(fd, " in ", 4);
        write_symbol(fd, entry);
    } else if (rc == 0) {
        rc = write_all(fd, "\n", 1);
    }
    for (unsigned i = 0; rc == 0 && i < d->nframes; i++) {
        len = snprintf(line, sizeof line, "    #%-2u ", i);
        rc = write_all(fd, line, (size_t) len);
        write_symbol(fd, d->frames[i]);
    }
    return rc;
}

/* Worker i as it is now; its stack when awake and the watchdog's probes exist. */
static void
dump_worker(blz_runtime *rt, unsigned i, blz_worker_dump *d)
{
    blz__worker *w = &rt->workers[i];
    d->worker = i;
    d->tid = blz__load(&w->tid, RELAXED);
    d->awake = blz__worker_awake(w);
    d->nframes = d->awake ? blz__worker_backtrace(rt, i, d->frames, BLZ_DUMP_FRAMES) : 0;
}

int
blz_runtime_dump_workers(blz_runtime *rt, blz_worker_dump *out, size_t cap)
{
    if (!rt || (!out && cap > 0)) {
        return -EINVAL;
    }
    size_t n = cap < rt->nworkers ? cap : rt->nworkers;
    for (size_t i = 0; i < n; i++) {
        dump_worker(rt, (unsigned) i, &out[i]);
    }
    return (int) n;
}

static int
write_worker(int fd, const blz_worker_dump *d)
{
    char line[96];
    int len = snprintf(line, sizeof line, "worker %u (thread %d) %s\n", d->worker, d->tid,
                       d->awake ? "awake" : "parked");
    int rc = write_all(fd, line, (size_t) len);
    for (unsigned i = 0; rc == 0 && i < d->nframes; i++) {
        len = snprintf(line, sizeof line, "    #%-2u ", i);
        rc = write_all(fd, line, (size_t) len);
        write_symbol(fd, d->frames[i]);
    }
    return rc;
}

int
blz_runtime_dump_fd(blz_runtime *rt, int fd)
{
    if (!rt || fd < 0) {
        return -EINVAL;
    }
    /* The tasks may grow between counting and listing: a little headroom,
     * and the header says how many were left out. */
    size_t alive = (size_t) blz__owned_alive(rt);
    size_t cap = alive + alive / 8 + 16;
    blz_task_dump *d = blz__malloc(cap * sizeof *d);
    if (!d) {
        return -ENOMEM;
    }
    size_t total = 0;
    size_t n = (size_t) blz_runtime_dump(rt, d, cap, &total);
    char line[128];
    int len = snprintf(line, sizeof line, "blitzio task dump: %zu tasks", total);
    int rc = write_all(fd, line, (size_t) len);
    if (rc == 0 && total > n) {
        len = snprintf(line, sizeof line, " (%zu not shown)", total - n);
        rc = write_all(fd, line, (size_t) len);
    }
    if (rc == 0) {
        rc = write_all(fd, "\n", 1);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = write_task(fd, &d[i]);
    }
    blz__free(d);
    blz_worker_dump wd;
    for (unsigned i = 0; rc == 0 && i < rt->nworkers; i++) {
        dump_worker(rt, i, &wd); /* one at a time: a worker's dump is not small */
        rc = write_worker(fd, &wd);
    }
    return rc;
}
