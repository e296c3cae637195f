/*
 * The readiness registry: per-descriptor readiness and waiters.
 *
 * Invariants:
 * - `readiness` holds BLZ__RD_* bits and a tick. The dispatcher ORs bits in
 *   and bumps the tick in one CAS; an operation that hit EAGAIN clears its
 *   direction's bits with a CAS that fails when the tick moved, so an event
 *   that raced with the syscall is never lost. SHUTDOWN is never cleared.
 * - The waiter lists, and the waker inside a linked waiter, are protected by
 *   `lock`. The dispatcher unlinks a waiter and moves its waker out under the
 *   lock, then wakes it after unlocking: once unlocked it never touches the
 *   waiter again, so the future may be dropped or freed at once.
 * - No lost wake-up: the dispatcher publishes bits before taking the lock;
 *   a waiter re-checks the bits under the lock before linking. Whichever
 *   takes the lock second sees the other's work.
 * - A waiter's `state_` belongs to the future's owner: WAIT_LINKED means
 *   "may be linked, ask under the lock". The dispatcher never writes it.
 * - `refs` counts the owner and every future in flight. A linked waiter
 *   implies a reference, so a source reaching zero has no waiters.
 * - Lifetime: last unref -> backend disarm -> close(fd) -> retired list ->
 *   freed by blz__registry_sweep (start of a park) once be_hold is 0. An event
 *   fetched from the kernel is dispatched inside the park that fetched it,
 *   before the next sweep, so it never meets freed memory.
 * - Tracked blocks are on `tracked` (registry lock) until freed; the driver
 *   frees the rest at its free, after the runtime joined every thread.
 */
#include "io/registry.h"

#include "core/alloc.h"
#include "core/container.h"
#include "io/driver_impl.h"
#include "os/unix/sys.h"

#define WAIT_LINKED 0x2u /* state_: the waiter may be linked */
#define WAIT_DIR    0x1u /* state_: the list it is in (BLZ__DIR_*) */
#define WAKE_BATCH  32   /* wakers taken per lock hold */

enum { REG_NONE = 0, REG_LIVE = 1, REG_RETIRED = 2 };

/* ---- the two registry lists --------------------------------------------- */

static void
reg_list_init(blz__io_source *head)
{
    head->reg_next = head;
    head->reg_prev = head;
}

static void
reg_list_push(blz__io_source *head, blz__io_source *s)
{
    s->reg_next = head;
    s->reg_prev = head->reg_prev;
    head->reg_prev->reg_next = s;
    head->reg_prev = s;
}

static void
reg_list_remove(blz__io_source *s)
{
    s->reg_prev->reg_next = s->reg_next;
    s->reg_next->reg_prev = s->reg_prev;
    s->reg_next = s->reg_prev = NULL;
}

void
blz__registry_init(blz__registry *r)
{
    atomic_init(&r->lock.locked, 0u);
    reg_list_init(&r->live);
    reg_list_init(&r->retired);
    r->tracked.next = r->tracked.prev = &r->tracked;
    atomic_init(&r->waiters, 0u);
    atomic_init(&r->nlive, 0u);
    atomic_init(&r->nretired, 0u);
}

void
blz__registry_sweep(blz__registry *r)
{
    if (blz__load(&r->nretired, RELAXED) == 0) {
        return;
    }
    blz__io_source *dead = NULL;
    blz__spin_lock(&r->lock);
    blz__io_source *s = r->retired.reg_next;
    while (s != &r->retired) {
        blz__io_source *next = s->reg_next;
        /* Acquire pairs with the backend's release store of 0: its last use of s is done. */
        if (blz__load(&s->be_hold, ACQUIRE) == 0) {
            reg_list_remove(s);
            s->reg_state = REG_NONE;
            s->reg_next = dead; /* reuse the link for the local free list */
            dead = s;
            blz__fetch_sub(&r->nretired, 1u, RELAXED);
        }
        s = next;
    }
    blz__spin_unlock(&r->lock);
    while (dead) {
        blz__io_source *next = dead->reg_next;
        BLZ_ASSERT(blz__waitlist_empty(&dead->readers) && blz__waitlist_empty(&dead->writers));
        blz__free(dead);
        dead = next;
    }
}

void
blz__registry_fini(blz__registry *r)
{
    /* The backend is gone: nothing holds a source any more. Sources the user
     * never closed are closed here (their handles die with the runtime). */
    while (r->live.reg_next != &r->live) {
        blz__io_source *s = r->live.reg_next;
        reg_list_remove(s);
        (void) blz__sys_close(s->fd);
        blz__free(s);
    }
    while (r->retired.reg_next != &r->retired) {
        blz__io_source *s = r->retired.reg_next;
        reg_list_remove(s);
        blz__free(s);
    }
    blz__store(&r->nlive, 0u, RELAXED);
    blz__store(&r->nretired, 0u, RELAXED);
    while (r->tracked.next != &r->tracked) {
        blz__tracked *t = r->tracked.next;
        t->next->prev = t->prev;
        t->prev->next = t->next;
        blz__free(t);
    }
}

void *
blz__io_tracked_alloc(struct blz__io_driver *d, size_t size)
{
    _Static_assert(sizeof(blz__tracked) <= BLZ__TRACKED_HDR, "tracked header fits");
    blz__tracked *t = blz__malloc(BLZ__TRACKED_HDR + size);
    if (!t) {
        return NULL;
    }
    blz__registry *r = &d->reg;
    blz__spin_lock(&r->lock);
    t->next = &r->tracked;
    t->prev = r->tracked.prev;
    r->tracked.prev->next = t;
    r->tracked.prev = t;
    blz__spin_unlock(&r->lock);
    return (char *) t + BLZ__TRACKED_HDR;
}

void
blz__io_tracked_free(struct blz__io_driver *d, void *p)
{
    if (!p) {
        return;
    }
    blz__tracked *t = (blz__tracked *) (void *) ((char *) p - BLZ__TRACKED_HDR);
    blz__registry *r = &d->reg;
    blz__spin_lock(&r->lock);
    t->next->prev = t->prev;
    t->prev->next = t->next;
    blz__spin_unlock(&r->lock);
    blz__free(t);
}

/* ---- sources -------------------------------------------------------------- */

int
blz__io_source_open(struct blz__io_driver *d, int fd, size_t size, unsigned initial,
                    blz__io_source **out)
{
    if (!d || fd < 0 || !out) {
        return -EINVAL;
    }
    if (size < sizeof(blz__io_source)) {
        size = sizeof(blz__io_source);
    }
    blz__io_source *s = blz__calloc(1, size);
    if (!s) {
        return -ENOMEM;
    }
    atomic_init(&s->readiness, (uint64_t) (initial & BLZ__RD_MASK));
    atomic_init(&s->refs, 1u);
    atomic_init(&s->be_hold, 0u);
    atomic_init(&s->lock.locked, 0u);
    s->fd = fd;
    blz__waitlist_init(&s->readers);
    blz__waitlist_init(&s->writers);
    s->driver = d;

    blz__spin_lock(&d->reg.lock);
    reg_list_push(&d->reg.live, s);
    s->reg_state = REG_LIVE;
    blz__spin_unlock(&d->reg.lock);
    blz__fetch_add(&d->reg.nlive, 1u, RELAXED);

    int rc = d->ops->arm(d->be, s);
    if (rc < 0) {
        blz__spin_lock(&d->reg.lock);
        reg_list_remove(s);
        blz__spin_unlock(&d->reg.lock);
        blz__fetch_sub(&d->reg.nlive, 1u, RELAXED);
        if (blz__load(&s->be_hold, ACQUIRE) != 0) {
            /* Cannot happen with our backends: arm fails before the kernel sees s. */
            BLZ_ASSERT(0);
        }
        blz__free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void
blz__io_source_unref(blz__io_source *s)
{
    /* Acq_rel pairs with itself: every use by every holder happens before
     * the close below. */
    if (blz__fetch_sub(&s->refs, 1u, ACQ_REL) != 1) {
        return;
    }
    BLZ_ASSERT(blz__waitlist_empty(&s->readers) && blz__waitlist_empty(&s->writers));
    blz__io_driver *d = s->driver;
    d->ops->disarm(d->be, s);
    (void) blz__sys_close(s->fd);
    s->fd = -1;
    blz__spin_lock(&d->reg.lock);
    if (s->reg_state == REG_LIVE) {
        reg_list_remove(s);
        reg_list_push(&d->reg.retired, s);
        s->reg_state = REG_RETIRED;
    }
    blz__spin_unlock(&d->reg.lock);
    blz__fetch_sub(&d->reg.nlive, 1u, RELAXED);
    blz__fetch_add(&d->reg.nretired, 1u, RELAXED);
}

/* Sets `bits` and bumps the tick; returns the new word. */
static uint64_t
readiness_set(blz__io_source *s, unsigned bits)
{
    uint64_t cur = blz__load(&s->readiness, RELAXED);
    uint64_t next;
    do {
        next = (((cur >> BLZ__TICK_SHIFT) + 1) << BLZ__TICK_SHIFT) | (cur & BLZ__RD_MASK) | bits;
        /* Release pairs with the acquire loads in poll/readiness: a waiter that
         * sees the bits also sees everything done before the dispatch. */
    } while (!blz__cas_weak(&s->readiness, &cur, next, ACQ_REL, RELAXED));
    return next;
}

/* Wakes the waiters that readiness word `r` satisfies, in batches. */
static void
wake_waiters(blz__io_source *s, uint64_t r)
{
    blz__registry *reg = &s->driver->reg;
    blz__waitlist *lists[2];
    int nl = 0;
    if (blz__io_ready_for(r, BLZ__DIR_READ)) {
        lists[nl++] = &s->readers;
    }
    if (blz__io_ready_for(r, BLZ__DIR_WRITE)) {
        lists[nl++] = &s->writers;
    }
    if (nl == 0) {
        return;
    }
    for (;;) {
        blz_waker batch[WAKE_BATCH];
        int n = 0;
        blz__spin_lock(&s->lock);
        for (int i = 0; i < nl && n < WAKE_BATCH; i++) {
            while (n < WAKE_BATCH && !blz__waitlist_empty(lists[i])) {
                blz_waiter *w = lists[i]->head.next_;
                BLZ_ASSERT(w->prev_ != NULL); /* linked: tells the analyzer, too */
                blz__waitlist_remove(w);
                batch[n++] = w->waker_;
                w->waker_ = BLZ_WAKER_NONE;
            }
        }
        blz__spin_unlock(&s->lock);
        if (n) {
            blz__fetch_sub(&reg->waiters, (uint64_t) n, RELAXED);
        }
        for (int i = 0; i < n; i++) {
            blz_waker_wake(&batch[i]);
        }
        if (n < WAKE_BATCH) {
            return;
        }
    }
}

void
blz__io_source_ready(blz__io_source *s, unsigned bits)
{
    uint64_t r = readiness_set(s, bits & BLZ__RD_MASK);
    wake_waiters(s, r);
}

void
blz__io_source_shutdown(blz__io_source *s)
{
    uint64_t r = readiness_set(s, BLZ__RD_SHUTDOWN);
    wake_waiters(s, r);
}

void
blz__io_source_close(blz__io_source *s)
{
    blz__io_source_shutdown(s);
    blz__io_source_unref(s);
}

/* Clears `bits` unless an event arrived since `seen` (the tick moved). */
static void
clear_bits(blz__io_source *s, uint64_t bits, uint64_t seen)
{
    uint64_t cur = blz__load(&s->readiness, RELAXED);
    while ((cur >> BLZ__TICK_SHIFT) == (seen >> BLZ__TICK_SHIFT)) {
        if (blz__cas_weak(&s->readiness, &cur, cur & ~bits, RELAXED, RELAXED)) {
            return;
        }
    }
}

void
blz__io_source_clear(blz__io_source *s, int dir, uint64_t seen)
{
    clear_bits(
        s, dir == BLZ__DIR_READ ? (BLZ__RD_READ | BLZ__RD_ERROR) : (BLZ__RD_WRITE | BLZ__RD_ERROR),
        seen);
}

/* A stream transfer came up short: clears only the direction's READ or WRITE
 * bit against `seen`, keeping ERROR (a pending error must still reach the
 * next call) and the CLOSED bits. */
static void
source_drained(blz__io_source *s, int dir, uint64_t seen)
{
    clear_bits(s, dir == BLZ__DIR_READ ? BLZ__RD_READ : BLZ__RD_WRITE, seen);
}

uint64_t
blz__io_source_poll(blz__io_source *s, blz_waiter *w, int dir, blz_context *cx)
{
    uint64_t r = blz__load(&s->readiness, ACQUIRE);
    if (blz__io_ready_for(r, dir) && !(w->state_ & WAIT_LINKED)) {
        return r; /* the fast path: ready, never waited */
    }
    blz_waker old = BLZ_WAKER_NONE;
    blz__spin_lock(&s->lock);
    r = blz__load(&s->readiness, ACQUIRE);
    if (blz__io_ready_for(r, dir)) {
        if (blz__waiter_linked(w)) {
            blz__waitlist_remove(w);
            blz__fetch_sub(&s->driver->reg.waiters, 1u, RELAXED);
        }
        old = w->waker_;
        w->waker_ = BLZ_WAKER_NONE;
        blz__spin_unlock(&s->lock);
        w->state_ = 0;
        blz_waker_drop(&old);
        return r;
    }
    if (!blz__waiter_linked(w)) {
        blz__waitlist_push_back(dir == BLZ__DIR_READ ? &s->readers : &s->writers, w);
        blz__fetch_add(&s->driver->reg.waiters, 1u, RELAXED);
    }
    if (!blz_waker_will_wake(&w->waker_, cx->waker)) {
        old = w->waker_;
        w->waker_ = blz_waker_clone(cx->waker);
    }
    blz__spin_unlock(&s->lock);
    w->state_ = WAIT_LINKED | (unsigned) dir;
    blz_waker_drop(&old);
    return 0;
}

void
blz__io_waiter_cancel(blz__io_source *s, blz_waiter *w)
{
    blz_waker old = BLZ_WAKER_NONE;
    if (w->state_ & WAIT_LINKED) {
        blz__spin_lock(&s->lock);
        if (blz__waiter_linked(w)) {
            blz__waitlist_remove(w);
            blz__fetch_sub(&s->driver->reg.waiters, 1u, RELAXED);
        }
        old = w->waker_;
        w->waker_ = BLZ_WAKER_NONE;
        blz__spin_unlock(&s->lock);
        w->state_ = 0;
    } else {
        old = w->waker_;
        w->waker_ = BLZ_WAKER_NONE;
    }
    blz_waker_drop(&old);
}

/* ---- the wait loop shared by every operation ------------------------------- */

int
blz__io_source_wait(blz__io_source *s, blz_waiter *w, int dir, blz_context *cx,
                    blz__io_attempt_fn attempt, void *arg, long full, long *res)
{
    for (;;) {
        uint64_t r = blz__io_source_poll(s, w, dir, cx);
        if (r == 0) {
            return 0;
        }
        if (r & BLZ__RD_SHUTDOWN) {
            *res = -ECANCELED;
            return 1;
        }
        long n = attempt(arg);
        if (n != -EAGAIN) { /* == -EWOULDBLOCK on Linux */
            if (n > 0 && n < full) {
                source_drained(s, dir, r);
            }
            *res = n;
            return 1;
        }
        blz__io_source_clear(s, dir, r);
    }
}

long
blz__io_source_try(blz__io_source *s, int dir, blz__io_attempt_fn attempt, void *arg, long full)
{
    uint64_t r = blz__io_source_readiness(s);
    if (r & BLZ__RD_SHUTDOWN) {
        return -ECANCELED;
    }
    if (!blz__io_ready_for(r, dir)) {
        return -EAGAIN;
    }
    long n = attempt(arg);
    if (n == -EAGAIN) {
        blz__io_source_clear(s, dir, r);
    } else if (n > 0 && n < full) {
        source_drained(s, dir, r);
    }
    return n;
}
