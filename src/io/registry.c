/*
 * The readiness registry: per-descriptor readiness and waiters.
 *
 * Invariants:
 * - `readiness` holds BLZ__RD_* bits and a tick. The dispatcher ORs bits in
 *   and bumps the tick in one CAS; an operation that hit EAGAIN clears its
 *   direction's bits with a CAS that fails when the tick moved, so an event
 *   that raced with the syscall is never lost. SHUTDOWN is never cleared.
 * - A waiter is registered in one of two places per direction: the source's
 *   slot (the first waiter: slot.owner names it, slot.waker is its waker) or,
 *   while the slot is taken, the direction's list (the waker inside the
 *   waiter). Both, and `listed`, are protected by `lock`. The dispatcher
 *   empties the slot and unlinks list waiters, moving their wakers out under
 *   the lock, then wakes them after unlocking: it never dereferences
 *   slot.owner, and once unlocked it never touches a waiter again, so the
 *   future may be dropped or freed at once. Waking from the slot touches only
 *   the source's first cache line, not the future (on a fiber's stack).
 * - No lost wake-up: the dispatcher publishes bits before taking the lock;
 *   a waiter re-checks the bits under the lock before registering. Whichever
 *   takes the lock second sees the other's work.
 * - A waiter's `state_` belongs to the future's owner: WAIT_SLOT or
 *   WAIT_LINKED means "may be registered there, ask under the lock" (still in
 *   the slot iff slot.owner == w: a live waiter's address names it alone, and
 *   every way out of the slot, wake, ready poll or cancel, clears owner under
 *   the lock). The dispatcher never writes it. Only w's own poll sets owner
 *   to w, so w may also look without the lock: owner != w stays true.
 * - `refs` counts the owner and every future in flight. A registered waiter
 *   implies a reference, so a source reaching zero has no waiters.
 * - Lifetime: last unref -> backend disarm -> close(fd) -> retired list ->
 *   freed by blz__registry_sweep (start of a park) once be_hold and pins
 *   are 0. The backend drops a request's count only after its last event
 *   naming the source is handled, as the last touch of a released source:
 *   the sweep of another ring's park (rings per worker) may run at the same
 *   time. A pinned source outlives its descriptor: its SHUTDOWN bit (set
 *   before the holder released it) turns every later call away, and
 *   futures take their reference with tryref, so a count that reached 0
 *   never rises again.
 * - Tracked blocks are on `tracked` (registry lock) until freed; the driver
 *   frees the rest at its free, after the runtime joined every thread.
 */
#include "io/registry.h"

#include "core/alloc.h"
#include "core/container.h"
#include "core/coop.h"
#include "io/driver_impl.h"
#include "os/unix/sys.h"

#include <limits.h>
#include <stddef.h>

#define WAIT_LINKED 0x2u /* state_: the waiter may be linked in a list */
#define WAIT_SLOT   0x4u /* state_: the waiter may be in the slot */
#define WAIT_DIR    0x1u /* state_: the direction it waits in (BLZ__DIR_*) */
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
    /* Only linked sources are removed (the analyzer loses track of that). */
    // NOLINTNEXTLINE(clang-analyzer-core.NullDereference)
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
    atomic_init(&r->nlive, 0u);
    atomic_init(&r->nretired, 0u);
}

/* Sources are aligned to a cache line, so that the fields a dispatch and an
 * operation touch are one line (see the struct). */
#define SOURCE_ALIGN 64
_Static_assert(offsetof(blz__io_source, slot[1].waker) <= SOURCE_ALIGN,
               "the dispatch and operation fields fit a line");

static blz__io_source *
source_alloc(size_t size)
{
    char *base = blz__calloc(1, size + SOURCE_ALIGN - 1);
    if (!base) {
        return NULL;
    }
    uintptr_t at = ((uintptr_t) base + SOURCE_ALIGN - 1) & ~(uintptr_t) (SOURCE_ALIGN - 1);
    blz__io_source *s = (blz__io_source *) (void *) (base + (at - (uintptr_t) base));
    s->alloc_base = base;
    return s;
}

static void
source_free(blz__io_source *s)
{
    blz__free(s->alloc_base);
}

/* Waiters registered on s, in its slots and lists. Under s->lock, or when no
 * other thread can reach s. */
static unsigned
source_waiters_locked(blz__io_source *s)
{
    unsigned n = 0;
    for (int d = 0; d < 2; d++) {
        n += blz__load(&s->slot[d].owner, RELAXED) != NULL;
        blz__waitlist *l = d == BLZ__DIR_READ ? &s->readers : &s->writers;
        if (!blz__waitlist_empty(l)) {
            for (blz_waiter *w = l->head.next_; w != &l->head; w = w->next_) {
                n++;
            }
        }
    }
    return n;
}

uint64_t
blz__registry_waiters(blz__registry *r)
{
    uint64_t n = 0;
    blz__spin_lock(&r->lock);
    for (blz__io_source *s = r->live.reg_next; s != &r->live; s = s->reg_next) {
        blz__spin_lock(&s->lock); /* order: registry lock, then a source's */
        n += source_waiters_locked(s);
        blz__spin_unlock(&s->lock);
    }
    blz__spin_unlock(&r->lock);
    return n;
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
        /* Acquire pairs with the backend's release store of 0 (its last use
         * of s is done) and with blz__io_source_unpin (the pinned holder's). */
        if (blz__load(&s->be_hold, ACQUIRE) == 0 && blz__load(&s->pins, ACQUIRE) == 0) {
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
        BLZ_ASSERT(source_waiters_locked(dead) == 0);
        source_free(dead);
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
        source_free(s);
    }
    while (r->retired.reg_next != &r->retired) {
        blz__io_source *s = r->retired.reg_next;
        reg_list_remove(s);
        source_free(s);
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

size_t
blz__io_tracked_count(struct blz__io_driver *d)
{
    blz__registry *r = &d->reg;
    size_t n = 0;
    blz__spin_lock(&r->lock);
    for (blz__tracked *t = r->tracked.next; t != &r->tracked; t = t->next) {
        n++;
    }
    blz__spin_unlock(&r->lock);
    return n;
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
    blz__io_source *s = source_alloc(size);
    if (!s) {
        return -ENOMEM;
    }
    atomic_init(&s->readiness, (uint64_t) (initial & BLZ__RD_MASK));
    atomic_init(&s->refs, 1u);
    atomic_init(&s->be_hold, 0u);
    atomic_init(&s->pins, 0u);
    atomic_init(&s->lock.locked, 0u);
    s->fd = fd;
    blz__waitlist_init(&s->readers);
    blz__waitlist_init(&s->writers);
    s->driver = d;
    s->rx_want = (initial & BLZ__OPEN_RX) != 0 && d->ops->rx_take != NULL;

    blz__spin_lock(&d->reg.lock);
    reg_list_push(&d->reg.live, s);
    s->reg_state = REG_LIVE;
    blz__spin_unlock(&d->reg.lock);
    blz__fetch_add(&d->reg.nlive, 1u, RELAXED);

    s->ring = blz__io_driver_place(d);
    int rc = d->ops->arm(s->ring, s);
    if (rc < 0) {
        blz__spin_lock(&d->reg.lock);
        reg_list_remove(s);
        blz__spin_unlock(&d->reg.lock);
        blz__fetch_sub(&d->reg.nlive, 1u, RELAXED);
        if (blz__load(&s->be_hold, ACQUIRE) != 0) {
            /* Cannot happen with our backends: arm fails before the kernel sees s. */
            BLZ_ASSERT(0);
        }
        source_free(s);
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
    BLZ_ASSERT(source_waiters_locked(s) == 0);
    blz__io_driver *d = s->driver;
    d->ops->disarm(s->ring, s);
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

static blz__waitlist *
list_of(blz__io_source *s, int dir)
{
    return dir == BLZ__DIR_READ ? &s->readers : &s->writers;
}

/* Wakes the waiters that readiness word `r` satisfies: the slots, then the
 * lists in batches. */
static void
wake_waiters(blz__io_source *s, uint64_t r)
{
    int dirs[2];
    int nd = 0;
    if (blz__io_ready_for(r, BLZ__DIR_READ)) {
        dirs[nd++] = BLZ__DIR_READ;
    }
    if (blz__io_ready_for(r, BLZ__DIR_WRITE)) {
        dirs[nd++] = BLZ__DIR_WRITE;
    }
    if (nd == 0) {
        return;
    }
    for (;;) {
        blz_waker batch[WAKE_BATCH];
        int n = 0;
        bool more = false;
        blz__spin_lock(&s->lock);
        for (int i = 0; i < nd; i++) {
            blz__io_slot *slot = &s->slot[dirs[i]];
            if (blz__load(&slot->owner, RELAXED)) { /* at most two, into an empty batch */
                batch[n++] = slot->waker;
                slot->waker = BLZ_WAKER_NONE;
                blz__store(&slot->owner, NULL, RELAXED);
            }
        }
        for (int i = 0; i < nd; i++) {
            int d = dirs[i];
            if (!(s->listed & (1u << d))) {
                continue;
            }
            blz__waitlist *l = list_of(s, d);
            while (n < WAKE_BATCH && !blz__waitlist_empty(l)) {
                blz_waiter *w = l->head.next_;
                BLZ_ASSERT(w->prev_ != NULL); /* linked: tells the analyzer, too */
                blz__waitlist_remove(w);
                batch[n++] = w->waker_;
                w->waker_ = BLZ_WAKER_NONE;
            }
            if (blz__waitlist_empty(l)) {
                s->listed &= ~(1u << d);
            } else {
                more = true;
            }
        }
        blz__spin_unlock(&s->lock);
        for (int i = 0; i < n; i++) {
            blz_waker_wake(&batch[i]);
        }
        if (!more) {
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

long
blz__io_rx_read(blz__io_source *s, void *buf, size_t len, int peek)
{
    blz__io_driver *d = s->driver;
    long r;
    if (d->ops->rx_take(s->ring, s, buf, len, peek, &r)) {
        return r;
    }
    /* The kernel's receive is not armed (it ran out of lent buffers, or was
     * paused for a reader that fell behind) and nothing it received is left:
     * the socket holds the rest, in order. */
    do {
        r = blz__sys_recv(s->fd, buf, len, peek ? BLZ__MSG_PEEK : 0);
    } while (r == -EINTR);
    if (r == -EAGAIN || (r > 0 && (size_t) r < len && !peek)) {
        /* Empty now: the next data must come as an event. A short read counts
         * (the caller takes it to mean empty and clears readiness). */
        d->ops->rx_arm(s->ring, s);
    }
    return r;
}

int
blz__io_rx_held(blz__io_source *s)
{
    char c;
    long r;
    return s->driver->ops->rx_take(s->ring, s, &c, 1, 1, &r) && r > 0;
}

void
blz__io_source_rx_start(blz__io_source *s)
{
    blz__io_driver *d = s->driver;
    if (!s->rx_on && d->ops->rx_start) {
        d->ops->rx_start(s->ring, s);
    }
}

void
blz__io_source_shutdown(blz__io_source *s)
{
    uint64_t r = readiness_set(s, BLZ__RD_SHUTDOWN);
    wake_waiters(s, r);
}

void
blz__io_source_shutdown_read(blz__io_source *s)
{
    uint64_t r = readiness_set(s, BLZ__RD_RSHUT);
    wake_waiters(s, r);
}

void
blz__io_source_shutdown_write(blz__io_source *s)
{
    uint64_t r = readiness_set(s, BLZ__RD_WSHUT);
    wake_waiters(s, r);
}

/* Whether readiness word `r` ends a wait in direction `dir` (-ECANCELED). */
static int
shut_for(uint64_t r, int dir)
{
    return (r & BLZ__RD_SHUTDOWN) || (r & (dir == BLZ__DIR_READ ? BLZ__RD_RSHUT : BLZ__RD_WSHUT));
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

/* A read that found nothing clears RCLOSED too: a socket's own end is a
 * read of 0, never EAGAIN, so a RCLOSED still set is stale. It happens on a
 * stream that turned to completion receive after its poll had reported the
 * peer's end: its read side is then the receive's to report, and the
 * stale bit would send every read straight back to an empty receive.
 * A write that found no room clears WCLOSED for the same reason: a hung-up
 * descriptor's write fails (EPIPE), it never says EAGAIN. A hang-up can end:
 * a stream socket reports one until it connects, a pty master while no
 * slave is open. Left set, the bit kept the direction "ready" for good, and
 * a wait ran its attempt again and again without ever sleeping. */
void
blz__io_source_clear(blz__io_source *s, int dir, uint64_t seen)
{
    clear_bits(s,
               dir == BLZ__DIR_READ ? (BLZ__RD_READ | BLZ__RD_RCLOSED | BLZ__RD_ERROR)
                                    : (BLZ__RD_WRITE | BLZ__RD_WCLOSED | BLZ__RD_ERROR),
               seen);
}

/* Updates readiness after an attempt `n` made with readiness `seen`: EAGAIN
 * clears the direction; a stream transfer that came up short (0 < n < full)
 * clears only its READ or WRITE bit, keeping ERROR (a pending error must
 * still reach the next call) and the CLOSED bits. Both against the tick. */
static void
settle_readiness(blz__io_source *s, int dir, uint64_t seen, long n, long full)
{
    if (n == -EAGAIN) { /* == -EWOULDBLOCK on Linux */
        blz__io_source_clear(s, dir, seen);
    } else if (n > 0 && n < full) {
        clear_bits(s, dir == BLZ__DIR_READ ? BLZ__RD_READ : BLZ__RD_WRITE, seen);
    }
}

/* Takes w out of wherever it is registered and returns the waker it held
 * there. Under s->lock. */
static blz_waker
unregister_locked(blz__io_source *s, blz_waiter *w)
{
    int dir = (int) (w->state_ & WAIT_DIR);
    blz_waker old = BLZ_WAKER_NONE;
    if ((w->state_ & WAIT_SLOT) && blz__load(&s->slot[dir].owner, RELAXED) == w) {
        old = s->slot[dir].waker;
        s->slot[dir].waker = BLZ_WAKER_NONE;
        blz__store(&s->slot[dir].owner, NULL, RELAXED);
    } else if ((w->state_ & WAIT_LINKED) && blz__waiter_linked(w)) {
        blz__waitlist_remove(w);
        if (blz__waitlist_empty(list_of(s, dir))) {
            s->listed &= ~(1u << dir);
        }
    }
    /* A list waiter's waker, or a stale one left by a slot waiter (none). */
    blz_waker mine = w->waker_;
    w->waker_ = BLZ_WAKER_NONE;
    if (mine.vtable) {
        BLZ_ASSERT(old.vtable == NULL);
        old = mine;
    }
    return old;
}

uint64_t
blz__io_source_poll(blz__io_source *s, blz_waiter *w, int dir, blz_context *cx)
{
    uint64_t r = blz__load(&s->readiness, ACQUIRE);
    if (blz__io_ready_for(r, dir)) {
        if (!(w->state_ & (WAIT_LINKED | WAIT_SLOT))) {
            return r; /* the fast path: ready, never waited */
        }
        /* Woken from the slot, the usual way back of a stream's reader: the
         * wake cleared owner and took the waker with it, so there is nothing
         * to undo and no lock to take. The answer cannot go stale: owner
         * becomes w only in w's own poll, this one. */
        if ((w->state_ & WAIT_SLOT) &&
            blz__load(&s->slot[w->state_ & WAIT_DIR].owner, RELAXED) != w) {
            w->state_ = 0;
            return r;
        }
    }
    /* A waiter waits in one direction until it is ready or cancelled. */
    BLZ_ASSERT(!(w->state_ & (WAIT_LINKED | WAIT_SLOT)) ||
               (w->state_ & WAIT_DIR) == (unsigned) dir);
    blz_waker old = BLZ_WAKER_NONE;
    blz__spin_lock(&s->lock);
    r = blz__load(&s->readiness, ACQUIRE);
    if (blz__io_ready_for(r, dir)) {
        old = unregister_locked(s, w);
        blz__spin_unlock(&s->lock);
        w->state_ = 0;
        blz_waker_drop(&old);
        return r;
    }
    blz__io_slot *slot = &s->slot[dir];
    if ((w->state_ & WAIT_SLOT) && blz__load(&slot->owner, RELAXED) == w) {
        /* Still registered in the slot (a poll without a wake): refresh the waker. */
        if (!blz_waker_will_wake(&slot->waker, cx->waker)) {
            old = slot->waker;
            slot->waker = blz_waker_clone(cx->waker);
        }
    } else if ((w->state_ & WAIT_LINKED) && blz__waiter_linked(w)) {
        if (!blz_waker_will_wake(&w->waker_, cx->waker)) {
            old = w->waker_;
            w->waker_ = blz_waker_clone(cx->waker);
        }
    } else if (blz__load(&slot->owner, RELAXED) == NULL) {
        /* Not registered (never, or woken since): the slot if it is free. */
        blz__store(&slot->owner, w, RELAXED);
        slot->waker = blz_waker_clone(cx->waker);
        w->state_ = WAIT_SLOT | (unsigned) dir;
    } else {
        blz__waitlist_push_back(list_of(s, dir), w);
        s->listed |= 1u << dir;
        old = w->waker_; /* none: a woken waiter's waker was taken by the wake */
        w->waker_ = blz_waker_clone(cx->waker);
        w->state_ = WAIT_LINKED | (unsigned) dir;
    }
    blz__spin_unlock(&s->lock);
    blz_waker_drop(&old);
    return 0;
}

void
blz__io_waiter_cancel(blz__io_source *s, blz_waiter *w)
{
    blz_waker old = BLZ_WAKER_NONE;
    if (w->state_ & (WAIT_LINKED | WAIT_SLOT)) {
        blz__spin_lock(&s->lock);
        old = unregister_locked(s, w);
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
        if (shut_for(r, dir)) {
            *res = -ECANCELED;
            return 1;
        }
        long n = attempt(arg);
        settle_readiness(s, dir, r, n, full);
        if (n != -EAGAIN) {
            *res = n;
            return 1;
        }
    }
}

long
blz__io_source_try(blz__io_source *s, int dir, blz__io_attempt_fn attempt, void *arg, long full)
{
    uint64_t r = blz__io_source_readiness(s);
    if (shut_for(r, dir)) {
        return -ECANCELED;
    }
    if (!blz__io_ready_for(r, dir)) {
        return -EAGAIN;
    }
    long n = attempt(arg);
    settle_readiness(s, dir, r, n, full);
    return n;
}

/* The caller's system call, as one attempt of the readiness loop. */
typedef struct user_io {
    blz_io_fn fn;
    void *arg;
    int fd;
} user_io;

long
blz__io_call_user(blz_io_fn fn, int fd, void *arg)
{
    long r;
    do {
        r = fn(fd, arg);
    } while (r == -EINTR);
    return r;
}

void
blz__async_io_prepare(blz_async_io_future *f, blz_io_fn fn, void *arg)
{
    f->fn_ = fn;
    f->arg_ = arg;
    f->value_ = -EINVAL;
}

long
blz__async_io_call(blz_async_io_future *f, int fd)
{
    return blz__io_call_user(f->fn_, fd, f->arg_);
}

long
blz__async_io_await(blz_async_io_future *f)
{
    int rc = blz_await(&f->base);
    return rc < 0 ? rc : f->value_;
}

static long
user_attempt(void *arg)
{
    user_io *u = arg;
    return blz__io_call_user(u->fn, u->fd, u->arg);
}

long
blz__io_source_try_io(blz__io_source *s, int dir, blz_io_fn fn, void *arg)
{
    user_io u = {fn, arg, s->fd};
    blz__io_source_ref(s); /* the descriptor stays open during the call */
    long r = blz__io_source_try(s, dir, user_attempt, &u, 0);
    blz__io_source_unref(s);
    return r;
}

int
blz__io_future_wait(blz__io_source *s, blz_io_future *f, int dir, blz_context *cx,
                    blz__io_attempt_fn attempt, long full, long *res)
{
    if (!blz__coop_proceed(cx)) {
        return 0; /* budget spent: the task was woken to run again later */
    }
    if (!(f->flags_ & BLZ__IOF_HELD)) {
        if (!blz__io_source_tryref(s)) {
            *res = -ECANCELED; /* released, kept only by a pin: closed */
            return 1;
        }
        f->flags_ |= BLZ__IOF_HELD;
    }
    return blz__io_source_wait(s, &f->waiter_, dir, cx, attempt, f, full, res);
}

void
blz__io_future_end(blz__io_source *s, blz_io_future *f, long r)
{
    blz__io_waiter_cancel(s, &f->waiter_);
    if (f->flags_ & BLZ__IOF_HELD) {
        blz__io_source_unref(s);
    }
    f->flags_ = 0;
    f->obj_ = NULL;
    f->base.result = r > INT_MAX ? INT_MAX : (int) r;
}

void
blz__io_future_drop_headed(blz_future *base)
{
    blz_io_future *f = (blz_io_future *) (void *) base;
    blz__io_source *s = f->obj_; /* the object's first member */
    if (s) {
        blz__io_future_end(s, f, -ECANCELED);
    }
}
