/*
 * OnceCell: a pointer-sized value set at most once.
 *
 * State. c->state_ = EMPTY (0) / RUNNING (1) / SET (2) in the low two bits,
 * plus WAITERS (4).
 *  - EMPTY -> RUNNING by one CAS: the winner alone writes value_ (set, or the
 *    initialiser it runs), then publishes with a release exchange to SET, or
 *    gives up with an exchange back to EMPTY when the initialiser fails.
 *  - WAITERS is raised (CAS, under lock_) by a waiter about to queue while the
 *    cell is not SET; the exchange that ends RUNNING clears it and, if it was
 *    set, the winner takes lock_ and wakes every queued waiter. A waiter
 *    re-reads the state under lock_ before queueing, so it cannot queue after
 *    that wake-up has passed. A drop that empties the queue clears it (under
 *    lock_): whoever sees SET may free the cell at once, so the exchange must
 *    be the winner's last touch unless a waiter is still queued (which keeps
 *    the cell alive until it is unlinked).
 *  - value_ is written only by the RUNNING winner and read only after an
 *    acquire load saw SET.
 *
 * Waiters. lock_ protects the queue and each linked waiter's state_ and
 * waker_. Waking is "all": after SET every waiter returns the value; after a
 * failed initialiser every waiter polls again and one of them becomes the next
 * initialiser. A dropped waiter has nothing to pass on (everyone was woken).
 */
#include "blitzio/sync.h"
#include "sync/waitq.h"

enum {
    CELL_EMPTY = 0,
    CELL_RUNNING = 1,
    CELL_SET = 2,
    CELL_MASK = 3,
    CELL_WAITERS = 4,
};

void
blz_oncecell_init(blz_oncecell *c)
{
    if (!c) {
        return;
    }
    atomic_init(&c->state_, CELL_EMPTY);
    atomic_init(&c->lock_, 0);
    c->value_ = NULL;
    blz__waitlist_init(blz__queue(&c->queue_));
}

/* Unlinks every waiter and wakes it (after the lock). */
static void
wake_all(blz_oncecell *c)
{
    blz__wake_batch wb;
    blz__wake_batch_init(&wb);
    blz__waitlist *q = blz__queue(&c->queue_);
    blz__spin_lock(&c->lock_);
    blz_waiter *w;
    while ((w = blz__waitlist_front(q)) != NULL) {
        if (blz__wake_batch_make_room(&wb, &c->lock_)) {
            continue; /* changed while unlocked: from the front */
        }
        blz__waitlist_remove(w);
        w->state_ = BLZ__W_DONE;
        blz__wake_batch_push(&wb, w);
    }
    blz__spin_unlock(&c->lock_);
    blz__wake_batch_flush(&wb);
}

/* Tries EMPTY -> RUNNING (keeping WAITERS). 1: ours; 0: not EMPTY; -EEXIST: SET. */
static int
claim(blz_oncecell *c)
{
    uint32_t cur = blz__load(&c->state_, ACQUIRE);
    for (;;) {
        if ((cur & CELL_MASK) == CELL_SET) {
            return -EEXIST;
        }
        if ((cur & CELL_MASK) != CELL_EMPTY) {
            return 0;
        }
        BLZ_PERTURB_POINT();
        if (blz__cas_weak(&c->state_, &cur, cur | CELL_RUNNING, ACQUIRE, ACQUIRE)) {
            return 1;
        }
    }
}

/* The claim holder ends RUNNING: SET with `value`, or back to EMPTY on failure. */
static void
publish(blz_oncecell *c, bool ok, void *value)
{
    if (ok) {
        c->value_ = value;
    }
    BLZ_PERTURB_POINT();
    /* Release pairs with the acquire load in blz_oncecell_get and the waiters. */
    uint32_t old = blz__exchange(&c->state_, ok ? CELL_SET : CELL_EMPTY, ACQ_REL);
    if (old & CELL_WAITERS) {
        wake_all(c);
    }
}

int
blz_oncecell_set(blz_oncecell *c, void *value)
{
    if (!c) {
        return -EINVAL;
    }
    int rc = claim(c);
    if (rc < 0) {
        return rc;
    }
    if (rc == 0) {
        return -EBUSY;
    }
    publish(c, true, value);
    return 0;
}

/* Queues `f` unless the cell moved on since we looked (then returns false: look again). */
static bool
init_enqueue(blz_oncecell_init_future *f, blz_context *cx)
{
    blz_oncecell *c = f->cell_;
    blz_waiter *w = &f->waiter_;
    w->waker_ = blz_waker_clone(cx->waker); /* not linked yet: nobody else sees it */
    blz__spin_lock(&c->lock_);
    uint32_t cur = blz__load(&c->state_, ACQUIRE);
    for (;;) {
        uint32_t kind = cur & CELL_MASK;
        if (kind == CELL_SET || (kind == CELL_EMPTY && f->fn_)) {
            blz__spin_unlock(&c->lock_);
            blz_waker_drop(&w->waker_);
            return false;
        }
        BLZ_PERTURB_POINT();
        if ((cur & CELL_WAITERS) ||
            blz__cas_weak(&c->state_, &cur, cur | CELL_WAITERS, ACQUIRE, ACQUIRE)) {
            break;
        }
    }
    blz__waitlist_push_back(blz__queue(&c->queue_), w);
    w->state_ = BLZ__W_QUEUED;
    f->base.pt_ = BLZ__PHASE_LINKED;
    blz__spin_unlock(&c->lock_);
    return true;
}

static blz_poll
init_poll(blz_future *base, blz_context *cx)
{
    blz_oncecell_init_future *f = (blz_oncecell_init_future *) base;
    blz_waiter *w = &f->waiter_;
    blz_oncecell *c = f->cell_;
    if (base->pt_ == BLZ__PHASE_FINISHED) {
        return BLZ_READY;
    }
    if (!c) {
        return blz__sync_ready(base, -EINVAL);
    }
    if (!blz__coop_proceed(cx)) {
        return BLZ_PENDING;
    }
    if (base->pt_ == BLZ__PHASE_LINKED) {
        if (blz__waiter_still_queued(&c->lock_, w, cx->waker)) {
            return BLZ_PENDING;
        }
        /* Woken: the cell is SET, or an initialiser failed. Look again. */
        blz_waker_drop(&w->waker_);
        w->state_ = BLZ__W_IDLE;
        base->pt_ = BLZ__PHASE_FRESH;
    }
    for (;;) {
        if (blz_oncecell_get(c, &f->value) == 0) {
            return blz__sync_ready(base, 0);
        }
        if (f->fn_) {
            int rc = claim(c);
            if (rc == -EEXIST) {
                (void) blz_oncecell_get(c, &f->value);
                return blz__sync_ready(base, 0);
            }
            if (rc == 1) {
                /* Ours to initialise; the others wait for publish(). */
                void *v = NULL;
                int err = f->fn_(f->arg_, &v);
                publish(c, err == 0, v);
                if (err != 0) {
                    return blz__sync_ready(base, err < 0 ? err : -err);
                }
                f->value = v;
                return blz__sync_ready(base, 0);
            }
        }
        if (init_enqueue(f, cx)) {
            return BLZ_PENDING;
        }
    }
}

static void
init_drop(blz_future *base)
{
    blz_oncecell_init_future *f = (blz_oncecell_init_future *) base;
    blz_waiter *w = &f->waiter_;
    if (base->pt_ != BLZ__PHASE_LINKED) {
        base->pt_ = BLZ__PHASE_FINISHED;
        return;
    }
    blz_oncecell *c = f->cell_;
    blz__spin_lock(&c->lock_);
    if (w->state_ == BLZ__W_QUEUED) {
        blz__waitlist_remove(w);
        if (blz__waitlist_empty(blz__queue(&c->queue_))) {
            /* Nobody left for the publish to wake (see "State"). */
            (void) blz__fetch_and(&c->state_, ~(uint32_t) CELL_WAITERS, RELAXED);
        }
    }
    w->state_ = BLZ__W_IDLE;
    blz_waker mine = blz__waiter_take_waker(w);
    blz__spin_unlock(&c->lock_);
    blz_waker_drop(&mine);
    base->pt_ = BLZ__PHASE_FINISHED;
}

static const blz_future_vtable init_vtable = {init_poll, init_drop};

void
blz_oncecell_get_or_init_fut(blz_oncecell *c, blz_oncecell_init_fn fn, void *arg,
                             blz_oncecell_init_future *f)
{
    if (!f) {
        return;
    }
    blz_future_init(&f->base, &init_vtable);
    f->value = NULL;
    f->cell_ = c;
    f->fn_ = fn;
    f->arg_ = arg;
}

int
blz_oncecell_get_or_init(blz_oncecell *c, blz_oncecell_init_fn fn, void *arg, void **value)
{
    if (c && blz_oncecell_get(c, value) == 0) {
        return 0; /* the hot path: one acquire load, no future */
    }
    blz_oncecell_init_future f;
    blz_oncecell_get_or_init_fut(c, fn, arg, &f);
    int rc = blz_await(&f.base);
    if (rc == 0 && value) {
        *value = f.value;
    }
    return rc;
}
