/*
 * Semaphore: the counting core the RwLock is built on.
 *
 * Fields and who may write them:
 *  - state_ = free permits << 2 | WAITERS | CLOSED. Free permits change by
 *    CAS in the try tier and in release() (no lock), and under the lock.
 *    WAITERS is set iff the queue is not empty, and changes only under the
 *    lock (raised by the waiter that queues first, cleared by whoever empties
 *    the queue). CLOSED is set once.
 *  - While WAITERS is set the free count is 0: the first waiter to queue
 *    takes what is free as a partial grant in the CAS that raises WAITERS,
 *    and nobody adds to the count while waiters are queued (releases hand
 *    their permits to the queue under the lock; what is left when it
 *    empties goes to the count with WAITERS cleared).
 *  - rest_: only a hint, the state_ the semaphore is expected back at
 *    between uses (all permits free, normally). The fast paths' first CAS
 *    expects it, or it less their permits for a release, instead of loading
 *    state_ (sync.h says why); a CAS that guessed wrong stores what it found
 *    (a release before its retry). A stale hint costs one failed CAS.
 *  - queue_, and every linked waiter's state_, assigned_ and waker_: under
 *    lock_.
 *
 * Waking. A release CASes the count up only from a state without WAITERS; a
 * waiter raises WAITERS under the lock with a CAS on the same word. So either
 * the waiter sees the permits (and takes them rather than queueing), or the
 * release's CAS fails on WAITERS and it hands its permits out under the lock.
 * No store-load race, no barrier.
 *
 * Freeing. Whoever takes permits (or sees the semaphore closed) may free it
 * at once, as POSIX lets a sem_wait-er destroy the semaphore while sem_post
 * is still running. So a release with nobody queued is one CAS, its only
 * touch. A hand-out marks served waiters DONE under the lock, where they
 * look, so the unlock is its last touch (the wakes come after, through the
 * wakers moved out); what is left over goes to the count under the lock then,
 * where only a try can take it, and a try cannot free the semaphore while a
 * served future still refers to it. A release that finds the queue already
 * empty (the waiters dropped or served meanwhile) lets go of the lock and
 * CASes its permits in as if it had found no WAITERS. close works the same
 * way: under the lock while waiters are queued, else one CAS.
 *
 * Waiters. Each acquire future embeds its node. Permits are handed over by
 * raising assigned_; a waiter whose assigned_ reaches want_ is unlinked and
 * marked DONE under the lock, its waker moved into a wake batch, and woken
 * after the unlock. The head may be partly assigned: it keeps what it got,
 * and the walk stops there, which is what stops a big request from starving.
 *
 * Conservation. Every permit is in exactly one place: the free count, some
 * waiter's assigned_, a completed future's owner, or a local `avail` of the
 * thread running the hand-out. A dropped waiter's assigned_ (or, if DONE and
 * unobserved, its whole want_) goes back through the hand-out, so it reaches
 * the next waiter or the free count; close() returns queued waiters' partial
 * assignments to the free count.
 */
#include "blitzio/sync.h"
#include "sync/waitq.h"

static inline blz_semaphore_acquire_future *
acq_of(blz_waiter *w)
{
    return blz__container_of(w, blz_semaphore_acquire_future, waiter_);
}

int
blz_semaphore_init(blz_semaphore *s, size_t permits)
{
    if (!s || permits > BLZ_SEMAPHORE_MAX_PERMITS) {
        return -EINVAL;
    }
    atomic_init(&s->state_, permits << BLZ_SEM_SHIFT_);
    atomic_init(&s->rest_, permits << BLZ_SEM_SHIFT_);
    atomic_init(&s->lock_, 0);
    blz__waitlist_init(blz__queue(&s->queue_));
    return 0;
}

/*
 * Under s->lock_: hands `avail` permits to the waiters in FIFO order. The
 * completed ones go into `wb` (a full batch is woken with the lock briefly
 * dropped, while a waiter is still queued) and set *served. When the queue
 * empties, clears WAITERS and returns what is left; else returns 0 (the head
 * may keep a partial grant).
 */
static size_t
hand_out_locked(blz_semaphore *s, size_t avail, blz__wake_batch *wb, bool *served)
{
    blz__waitlist *q = blz__queue(&s->queue_);
    blz_waiter *w;
    while ((w = blz__waitlist_front(q)) != NULL) {
        if (blz__wake_batch_make_room(wb, &s->lock_)) {
            continue; /* changed while unlocked: from the front */
        }
        blz_semaphore_acquire_future *f = acq_of(w);
        size_t need = f->want_ - f->assigned_;
        if (avail < need) {
            f->assigned_ += avail; /* the head keeps a partial grant and blocks the rest */
            return 0;
        }
        avail -= need;
        f->assigned_ = f->want_;
        blz__waitlist_remove(w);
        w->state_ = BLZ__W_DONE;
        *served = true;
        blz__wake_batch_push(wb, w);
    }
    if (blz__load(&s->state_, RELAXED) & BLZ_SEM_WAITERS_) {
        (void) blz__fetch_and(&s->state_, ~BLZ_SEM_WAITERS_, RELAXED);
    }
    return avail;
}

/* Under s->lock_: puts `n` permits in the free count (release pairs with the
 * acquire CAS of the try tier). */
static inline void
add_free_locked(blz_semaphore *s, size_t n)
{
    if (n) {
        (void) blz__fetch_add(&s->state_, n << BLZ_SEM_SHIFT_, RELEASE);
    }
}

void
blz__semaphore_release_slow(blz_semaphore *s, size_t n)
{
    for (;;) {
        blz__wake_batch wb;
        blz__wake_batch_init(&wb);
        blz__spin_lock(&s->lock_);
        bool served = false;
        size_t left = hand_out_locked(s, n, &wb, &served);
        if (served) {
            /* The served waiters keep s alive until they look (after the unlock). */
            add_free_locked(s, left);
            blz__spin_unlock(&s->lock_);
            blz__wake_batch_flush(&wb);
            return;
        }
        blz__spin_unlock(&s->lock_);
        if (!left) {
            return; /* all of it went to the head, which is not served yet */
        }
        /* Nobody was queued (so nobody is woken): what is left goes in as the
         * fast path puts it, the CAS the last touch. */
        if (blz__semaphore_put_free(s, left)) {
            return;
        }
        n = left; /* a waiter queued meanwhile: hand it out under the lock */
    }
}

size_t
blz_semaphore_forget(blz_semaphore *s, size_t n)
{
    if (!s) {
        return 0;
    }
    /* Only free permits, which live in the count (none while waiters are
     * queued: see "Fields"). Relaxed: no data is published. */
    size_t cur = blz__load(&s->state_, RELAXED);
    for (;;) {
        size_t free = cur >> BLZ_SEM_SHIFT_;
        size_t k = n < free ? n : free;
        if (k == 0 || (cur & BLZ_SEM_WAITERS_)) {
            return 0;
        }
        if (blz__cas_weak(&s->state_, &cur, cur - (k << BLZ_SEM_SHIFT_), RELAXED, RELAXED)) {
            return k;
        }
    }
}

void
blz_semaphore_close(blz_semaphore *s)
{
    if (!s) {
        return;
    }
    for (;;) {
        blz__wake_batch wb;
        blz__wake_batch_init(&wb);
        blz__spin_lock(&s->lock_);
        blz__waitlist *q = blz__queue(&s->queue_);
        if (!blz__waitlist_empty(q)) {
            /* Under the lock, so no enqueuer sees it unset and then queues; the
             * queued waiters keep s alive until they look (after the unlock). */
            (void) blz__fetch_or(&s->state_, BLZ_SEM_CLOSED_, RELEASE);
            blz_waiter *w;
            while ((w = blz__waitlist_front(q)) != NULL) {
                if (blz__wake_batch_make_room(&wb, &s->lock_)) {
                    continue; /* changed while unlocked: from the front */
                }
                blz__waitlist_remove(w);
                blz_semaphore_acquire_future *f = acq_of(w);
                add_free_locked(s, f->assigned_);
                f->assigned_ = 0;
                w->state_ = BLZ__W_CLOSED;
                blz__wake_batch_push(&wb, w);
            }
            (void) blz__fetch_and(&s->state_, ~BLZ_SEM_WAITERS_, RELAXED);
            blz__spin_unlock(&s->lock_);
            blz__wake_batch_flush(&wb);
            return;
        }
        blz__spin_unlock(&s->lock_);
        /* Nobody queued: one CAS, the last touch (whoever sees CLOSED may free
         * s). It fails if a waiter queued meanwhile: then close under the lock. */
        size_t cur = blz__load(&s->state_, RELAXED);
        while (!(cur & BLZ_SEM_WAITERS_)) {
            if (cur & BLZ_SEM_CLOSED_) {
                return;
            }
            /* Release pairs with the acquire loads of is_closed and the try tier. */
            if (blz__cas_weak(&s->state_, &cur, cur | BLZ_SEM_CLOSED_, RELEASE, RELAXED)) {
                return;
            }
        }
    }
}

/* First poll after the fast path failed: take what is free and queue, under the lock. */
static blz_poll
acquire_enqueue(blz_semaphore_acquire_future *f, blz_context *cx)
{
    blz_semaphore *s = f->sem_;
    blz_waiter *w = &f->waiter_;
    /* Not linked yet, so nobody else can see the waker: set it outside the lock. */
    w->waker_ = blz_waker_clone(cx->waker);
    blz__spin_lock(&s->lock_);
    f->assigned_ = 0;
    size_t cur = blz__load(&s->state_, ACQUIRE);
    for (;;) {
        if (cur & BLZ_SEM_CLOSED_) {
            blz__spin_unlock(&s->lock_);
            return blz__sync_finish(&f->base, w, -EPIPE);
        }
        if (cur & BLZ_SEM_WAITERS_) {
            break; /* others queued first (nothing is free then): go to the back */
        }
        /* Nobody is queued: what is free is ours, taken in the CAS that raises
         * WAITERS unless it is enough. Acquire pairs with the release of
         * whoever put it there. */
        size_t avail = cur >> BLZ_SEM_SHIFT_;
        bool enough = avail >= f->want_;
        size_t next = enough ? cur - (f->want_ << BLZ_SEM_SHIFT_) : BLZ_SEM_WAITERS_;
        BLZ_PERTURB_POINT();
        if (blz__cas_weak(&s->state_, &cur, next, ACQUIRE, ACQUIRE)) {
            if (enough) {
                blz__spin_unlock(&s->lock_);
                return blz__sync_finish(&f->base, w, 0);
            }
            f->assigned_ = avail; /* first in line: keep what was free as a partial grant */
            break;
        }
    }
    blz__waitlist_push_back(blz__queue(&s->queue_), w);
    w->state_ = BLZ__W_QUEUED;
    f->base.pt_ = BLZ__PHASE_LINKED;
    blz__spin_unlock(&s->lock_);
    return BLZ_PENDING;
}

static blz_poll
acquire_poll(blz_future *base, blz_context *cx)
{
    blz_semaphore_acquire_future *f = (blz_semaphore_acquire_future *) base;
    blz_waiter *w = &f->waiter_;
    if (base->pt_ == BLZ__PHASE_FINISHED) {
        return BLZ_READY;
    }
    if (!f->sem_) {
        return blz__sync_ready(base, -EINVAL);
    }
    if (!blz__coop_proceed(cx)) {
        return BLZ_PENDING;
    }
    if (base->pt_ == BLZ__PHASE_FRESH) {
        int rc = blz_semaphore_try_acquire(f->sem_, f->want_);
        if (rc != -EAGAIN) {
            return blz__sync_ready(base, rc);
        }
        return acquire_enqueue(f, cx);
    }
    blz_semaphore *s = f->sem_;
    blz__spin_lock(&s->lock_);
    uintptr_t st = w->state_;
    if (st == BLZ__W_QUEUED) {
        blz_waker old = blz__waiter_swap_waker(w, cx->waker);
        blz__spin_unlock(&s->lock_);
        blz_waker_drop(&old);
        return BLZ_PENDING;
    }
    blz__spin_unlock(&s->lock_);
    /* DONE: the permits are ours. CLOSED: close() took back the partial grant. */
    f->assigned_ = 0;
    return blz__sync_finish(base, w, st == BLZ__W_DONE ? 0 : -EPIPE);
}

static void
acquire_drop(blz_future *base)
{
    blz_semaphore_acquire_future *f = (blz_semaphore_acquire_future *) base;
    blz_waiter *w = &f->waiter_;
    if (base->pt_ != BLZ__PHASE_LINKED) {
        base->pt_ = BLZ__PHASE_FINISHED;
        return; /* never linked, or already finished: holds nothing */
    }
    blz_semaphore *s = f->sem_;
    blz__wake_batch wb;
    blz__wake_batch_init(&wb);
    blz__spin_lock(&s->lock_);
    uintptr_t st = w->state_;
    size_t give = 0;
    if (st == BLZ__W_QUEUED) {
        blz__waitlist_remove(w);
        give = f->assigned_; /* a partial grant goes on to the next in line */
    } else if (st == BLZ__W_DONE) {
        give = f->want_; /* granted but never observed: pass the permits on */
    }
    f->assigned_ = 0;
    w->state_ = BLZ__W_IDLE;
    blz_waker mine = blz__waiter_take_waker(w);
    if (st == BLZ__W_QUEUED || give) {
        /* Also clears WAITERS if we were the last one queued. What is left
         * goes to the count under the lock: we are still using s. */
        bool served = false;
        add_free_locked(s, hand_out_locked(s, give, &wb, &served));
    }
    blz__spin_unlock(&s->lock_);
    blz__wake_batch_flush(&wb);
    blz_waker_drop(&mine);
    base->pt_ = BLZ__PHASE_FINISHED;
}

static const blz_future_vtable acquire_vtable = {acquire_poll, acquire_drop};

void
blz_semaphore_acquire_fut(blz_semaphore *s, size_t n, blz_semaphore_acquire_future *f)
{
    if (!f) {
        return;
    }
    blz_future_init(&f->base, &acquire_vtable);
    f->sem_ = n > BLZ_SEMAPHORE_MAX_PERMITS ? NULL : s;
    f->want_ = n;
    f->assigned_ = 0;
}

int
blz_semaphore_acquire(blz_semaphore *s, size_t n)
{
    blz_semaphore_acquire_future f;
    blz_semaphore_acquire_fut(s, n, &f);
    return blz_await(&f.base);
}
