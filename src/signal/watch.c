/*
 * Watchers: the runtime side of signal delivery.
 *
 * Each runtime that has listeners runs one watcher, a detached stackless task
 * waiting for the self-pipe to become readable through the runtime's
 * readiness registry (so the worker parked in the I/O driver is the one woken,
 * with either backend). When it wakes it drains the pipe and runs the
 * dispatcher, which wakes every receiver, in any runtime or on any thread,
 * whose signal was delivered since it linked. Any one watcher serves every
 * listener; one per runtime exists only so that freeing one runtime never
 * leaves the listeners of another without a watcher.
 *
 * Invariants:
 * - The watch table (`watches`) and every field of a watch are under
 *   sig_mutex. A watch is in the table while its runtime has listeners.
 * - A watcher reads its own duplicate of the pipe's read end, registered as a
 *   registry source. The source has two references: the watch's (the owner:
 *   closed by the last unlisten on that runtime, which wakes the watcher with
 *   SHUTDOWN) and the watcher task's (dropped when it finishes or is dropped).
 * - A watcher is dropped without finishing only when its runtime is freed
 *   with listeners still in place (a misuse the runtime survives). The drop
 *   marks the watch `dead`: nobody closes its owner reference then, the
 *   registry does it as the driver goes, and listen never reuses a dead watch.
 * - Missed wake-ups are impossible: a receiver links under its slot's lock
 *   and re-reads the count there; the dispatcher reads the count under the
 *   same lock after it drained the byte the handler wrote after bumping it.
 * - Wakers are moved out under a slot lock and woken after it is released, so
 *   a woken receiver may drop or free its future at once.
 */
#include "blitzio/task.h"
#include "core/alloc.h"
#include "core/container.h"
#include "core/coop.h"
#include "io/registry.h"
#include "rt/current.h"
#include "signal/signal_int.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#define WAKE_BATCH   32  /* wakers moved out per slot-lock hold */
#define DRAIN_BUF    256 /* bytes read from the pipe per read(2) */
#define DRAIN_ROUNDS 16  /* reads per poll before yielding to other tasks */

/* One runtime's watcher, as the table sees it. */
typedef struct sig_watch {
    struct sig_watch *next; /* table link */
    blz_runtime *rt;        /* the runtime whose driver watches the pipe */
    uint64_t id;            /* listeners name their watch by this; never reused */
    blz__io_source *src;    /* the source; the table holds the owner reference */
    unsigned listeners;     /* listeners created in `rt` and not yet unlistened */
    bool dead;              /* the watcher task was dropped with its runtime */
} sig_watch;

static sig_watch *watches; /* the table, newest first */
static uint64_t next_id = 1;

/* The watcher task's future (copied into its task cell by the spawn). */
typedef struct watcher_future {
    blz_future base;
    blz__io_source *src; /* the task's own reference; NULL once finished */
    uint64_t id;         /* its watch */
    blz_waiter waiter;   /* linked in src's readers while waiting */
} watcher_future;

static sig_watch *
watch_find(uint64_t id)
{
    for (sig_watch *w = watches; w; w = w->next) {
        if (w->id == id) {
            return w;
        }
    }
    return NULL;
}

static void
watch_unlink(sig_watch *dead)
{
    for (sig_watch **pp = &watches; *pp; pp = &(*pp)->next) {
        if (*pp == dead) {
            *pp = dead->next;
            return;
        }
    }
}

/* ---- dispatch -------------------------------------------------------------- */

/* Wakes the receivers linked on `s` whose recorded count is stale. */
static void
wake_slot(blz__sig_slot *s)
{
    for (;;) {
        blz_waker batch[WAKE_BATCH];
        int n = 0;
        blz__spin_lock(&s->lock);
        /* Acquire: see the count the handler raised before the byte we drained. */
        unsigned cur = blz__load(&s->count, ACQUIRE);
        blz__waitlist *q = &s->waiters;
        blz_waiter *w = blz__waitlist_front(q);
        while (w && w != &q->head && n < WAKE_BATCH) {
            blz_waiter *next = w->next_;
            if ((unsigned) w->state_ != cur) {
                blz__waitlist_remove(w);
                batch[n++] = w->waker_;
                w->waker_ = BLZ_WAKER_NONE;
            }
            w = next;
        }
        blz__spin_unlock(&s->lock);
        for (int i = 0; i < n; i++) {
            blz_waker_wake(&batch[i]);
        }
        if (n < WAKE_BATCH) {
            return;
        }
    }
}

void
blz__sig_dispatch(void)
{
    for (int signo = 1; signo < BLZ_SIGNAL_MAX; signo++) {
        blz__sig_slot *s = &blz__sig_slots[signo];
        /* Relaxed: a slot with linked receivers was active before they linked
         * (listen happens before receive), under the lock we take next. */
        if (blz__load(&s->active, RELAXED)) {
            wake_slot(s);
        }
    }
}

/* ---- the watcher task ------------------------------------------------------ */

enum { DRAIN_EMPTY = 0, DRAIN_MORE = 1, DRAIN_GONE = 2 };

/* Reads what the pipe holds: EMPTY (reached EAGAIN), MORE (still data after
 * DRAIN_ROUNDS reads), GONE (end of file or an error: the pipe was closed). */
static int
drain(int fd)
{
    unsigned char buf[DRAIN_BUF];
    for (int i = 0; i < DRAIN_ROUNDS;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            i++;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return DRAIN_EMPTY;
        }
        return DRAIN_GONE;
    }
    return DRAIN_MORE;
}

/* Lets go of the source; `stale` marks the watch dead if it is still listed. */
static void
watcher_release(watcher_future *f, bool stale)
{
    if (!f->src) {
        return;
    }
    if (stale) {
        blz__sig_lock();
        sig_watch *w = watch_find(f->id);
        if (w) {
            w->dead = true;
        }
        blz__sig_unlock();
    }
    blz__io_waiter_cancel(f->src, &f->waiter);
    blz__io_source_unref(f->src);
    f->src = NULL;
}

static blz_poll
watcher_poll(blz_future *base, blz_context *cx)
{
    watcher_future *f = (watcher_future *) base;
    if (!f->src) {
        return BLZ_READY;
    }
    for (;;) {
        uint64_t r = blz__io_source_poll(f->src, &f->waiter, BLZ__DIR_READ, cx);
        if (r == 0) {
            return BLZ_PENDING;
        }
        if (r & BLZ__RD_SHUTDOWN) {
            /* The last listener of this runtime closed the watch. */
            watcher_release(f, false);
            base->result = 0;
            return BLZ_READY;
        }
        int st = drain(f->src->fd);
        if (st == DRAIN_EMPTY) {
            /* Only if no event came since `r`: then the next one re-arms us. */
            blz__io_source_clear(f->src, BLZ__DIR_READ, r);
        }
        blz__sig_dispatch();
        if (st == DRAIN_GONE) {
            /* Cannot happen while the watch is listed (the pipe outlives every
             * watch); if it does, let listen start a fresh watcher. */
            watcher_release(f, true);
            base->result = 0;
            return BLZ_READY;
        }
        if (st == DRAIN_MORE && !blz__coop_proceed(cx)) {
            return BLZ_PENDING; /* a signal flood: yield, we were woken again */
        }
    }
}

static void
watcher_drop(blz_future *base)
{
    /* Only a runtime being freed drops a watcher that has not finished. */
    watcher_release((watcher_future *) base, true);
}

static const blz_future_vtable watcher_vtable = {watcher_poll, watcher_drop};

/* ---- the table ----------------------------------------------------------- */

int
blz__sig_watch_acquire(blz_runtime *rt, uint64_t *id)
{
    for (sig_watch *w = watches; w; w = w->next) {
        if (w->rt == rt && !w->dead) {
            w->listeners++;
            *id = w->id;
            return 0;
        }
    }
    struct blz__io_driver *d = blz__rt_io(rt);
    if (!d) {
        return -EOPNOTSUPP; /* a runtime without an I/O driver cannot watch */
    }
    int fd = fcntl(blz__sig_pipe_read_fd(), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    sig_watch *w = blz__calloc(1, sizeof *w);
    if (!w) {
        (void) close(fd);
        return -ENOMEM;
    }
    blz__io_source *src;
    /* Assume readable: the first poll drains whatever is already there. */
    int rc = blz__io_source_open(d, fd, sizeof *src, BLZ__RD_READ, &src);
    if (rc < 0) {
        (void) close(fd);
        blz__free(w);
        return rc;
    }
    blz__io_source_ref(src); /* the watcher task's reference */
    watcher_future wf;
    blz_future_init(&wf.base, &watcher_vtable);
    wf.src = src;
    wf.id = next_id;
    blz__io_waiter_init(&wf.waiter);
    rc = blz_runtime_spawn_future(rt, &wf.base, sizeof wf, NULL);
    if (rc < 0) {
        /* Never ran: its reference and the owner's are still ours. */
        blz__io_source_unref(src);
        blz__io_source_close(src);
        blz__free(w);
        return rc;
    }
    w->rt = rt;
    w->id = next_id++;
    w->src = src;
    w->listeners = 1;
    w->next = watches;
    watches = w;
    *id = w->id;
    return 0;
}

void
blz__sig_watch_release(uint64_t id)
{
    sig_watch *w = watch_find(id);
    if (!w || w->listeners == 0 || --w->listeners > 0) {
        return;
    }
    watch_unlink(w);
    if (!w->dead) {
        /* Wakes the watcher with SHUTDOWN; it drops its reference and ends. */
        blz__io_source_close(w->src);
    }
    blz__free(w);
}
