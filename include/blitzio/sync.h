/*
 * blitzio/sync.h — Semaphore, Mutex, RwLock, Notify, Barrier, OnceCell, CancelToken.
 *
 * Every primitive is a plain struct the caller embeds, set up by a static
 * initialiser (BLZ_MUTEX_INIT ...) or an _init function, and never needs a
 * deinit: a primitive with no pending future may simply be forgotten. Every
 * waiting operation comes in the three tiers of DESIGN.md section 3:
 *
 *   try     blz_mutex_try_lock(&m)          never waits; -EAGAIN when it would
 *   future  blz_mutex_lock_fut(&m, &f)      fills a caller-owned future; the
 *                                           waiter node lives inside it
 *   await   blz_mutex_lock(&m)              blz_await() on such a future: suspends
 *                                           a fiber, parks a foreign thread, and
 *                                           fails with -EDEADLK inside a stackless poll
 *
 * Nothing here allocates (but for the parker of a foreign thread, below).
 * Waiters queue in FIFO order.
 *
 * Lifetime rules (the same for every future below):
 *  - A future that returned BLZ_READY holds nothing; it may be reused or freed.
 *  - A future polled at least once and not yet ready is linked into its
 *    primitive: it must not move or be freed before blz_future_drop(). The
 *    drop unlinks it, and whatever was already handed to it (a lock, permits,
 *    a notify_one) is passed on to the next waiter or given back, never lost.
 *  - A primitive must outlive every future that refers to it.
 *  - The await tier returns -ECANCELED when the calling task is aborted while
 *    it waits; by then the future was dropped and the resource passed on.
 *    On a thread outside any runtime, the thread's first wait allocates its
 *    parker (blz_await): -ENOMEM, the future dropped, when that fails.
 *
 * Thread affinity: every function may be called from any thread — a fiber
 * task, a stackless poll (try and future tiers only), or a thread outside any
 * runtime. Unlock / release / notify / cancel never wait.
 */
#ifndef BLZ_SYNC_H
#define BLZ_SYNC_H

#include "blitzio/common.h"
#include "blitzio/future.h"

#include <stdatomic.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Private: the inline fast paths below call the schedule-perturbation hook in
 * a BLZ_PERTURB build, as src/core/atomic.h does for the library's own atomics.
 */
#if defined(BLZ_PERTURB) && BLZ_PERTURB
BLZ_API void blz__perturb(void);
# define BLZ_SYNC_PERTURB_() blz__perturb()
#else
# define BLZ_SYNC_PERTURB_() ((void) 0)
#endif

#if defined(__GNUC__)
# define BLZ_SYNC_UNLIKELY_(x) __builtin_expect(!!(x), 0)
#else
# define BLZ_SYNC_UNLIKELY_(x) (x)
#endif

/* ======================================================================== */
/* Semaphore                                                                */
/* ======================================================================== */

/*
 * A counting semaphore. state_ packs the free permits (above bit 1), a
 * WAITERS bit (acquirers are queued) and a CLOSED bit. While WAITERS is set
 * the try tier refuses, so nobody barges past a queued waiter, and release()
 * hands permits straight to the oldest waiters under the queue lock; a large
 * request at the head holds back later small ones (no starvation). A release
 * with nobody queued is one CAS, its only touch of the semaphore: whoever
 * takes the permits may free it at once (see src/sync/semaphore.c).
 */
typedef struct blz_semaphore {
    _Atomic size_t state_;  /* permits << 2 | WAITERS (2) | CLOSED (1) */
    _Atomic size_t rest_;   /* the state_ it is expected back at between uses (below) */
    _Atomic uint32_t lock_; /* spinlock over queue_, WAITERS and the waiters' fields */
    blz_waiter queue_;      /* sentinel of the FIFO of acquire futures */
} blz_semaphore;

#define BLZ_SEM_CLOSED_  ((size_t) 1)
#define BLZ_SEM_WAITERS_ ((size_t) 2)
#define BLZ_SEM_SHIFT_   2

/** The largest permit count a semaphore holds, and the largest single request. */
#define BLZ_SEMAPHORE_MAX_PERMITS (SIZE_MAX >> 4)

/** Static initialiser: `blz_semaphore s = BLZ_SEMAPHORE_INIT(4);` (permits <= MAX). */
#define BLZ_SEMAPHORE_INIT(permits)                                                             \
 {                                                                                              \
  .state_ = (size_t) (permits) << BLZ_SEM_SHIFT_, .rest_ = (size_t) (permits) << BLZ_SEM_SHIFT_ \
 }

/**
 * Initialises `s` with `permits` free permits.
 * @return 0, or -EINVAL if `s` is NULL or permits > BLZ_SEMAPHORE_MAX_PERMITS.
 * Not thread-safe against other use of `s`.
 */
BLZ_API int blz_semaphore_init(blz_semaphore *s, size_t permits);

/**
 * Takes `n` permits if they are free and nobody is queued. Never waits.
 * @return 0; -EAGAIN if it would wait; -EPIPE once closed; -EINVAL for NULL
 *         or n > BLZ_SEMAPHORE_MAX_PERMITS. n == 0 succeeds at once (unless closed).
 * Any thread.
 */
static inline int
blz_semaphore_try_acquire(blz_semaphore *s, size_t n)
{
    if (!s || n > BLZ_SEMAPHORE_MAX_PERMITS) {
        return -EINVAL;
    }
    /* The first CAS expects the semaphore at rest (rest_: all its permits
     * back, normally) rather than loading state_ first: on x86 a load of a
     * word that a locked instruction has just written waits for that write
     * to land, about as long as the CAS itself, and a load of the word beside
     * it does not. A wrong guess costs one failed CAS, which returns the real
     * state, and moves rest_ to it. A guess never decides a refusal. */
    size_t cur = atomic_load_explicit(&s->rest_, memory_order_relaxed);
    bool guessed = true;
    for (;;) {
        if ((cur & (BLZ_SEM_CLOSED_ | BLZ_SEM_WAITERS_)) || n == 0 || (cur >> BLZ_SEM_SHIFT_) < n) {
            if (guessed) {
                cur = atomic_load_explicit(&s->state_, memory_order_relaxed);
                guessed = false;
                continue;
            }
            if (cur & BLZ_SEM_CLOSED_) {
                return -EPIPE;
            }
            return n == 0 ? 0 : -EAGAIN; /* FIFO: queued waiters go first */
        }
        BLZ_SYNC_PERTURB_();
        /* Acquire pairs with the release in blz_semaphore_release. */
        if (atomic_compare_exchange_weak_explicit(&s->state_, &cur, cur - (n << BLZ_SEM_SHIFT_),
                                                  memory_order_acquire, memory_order_relaxed)) {
            return 0;
        }
        if (guessed) {
            atomic_store_explicit(&s->rest_, cur, memory_order_relaxed);
            guessed = false;
        }
    }
}

/* Private: release() found WAITERS; hands the `n` permits out under the lock. */
BLZ_API void blz__semaphore_release_slow(blz_semaphore *s, size_t n);

/* Private: puts `n` permits in the free count unless waiters are queued (then
 * false, and nothing changed). The first CAS expects the state that rest_
 * less `n` gives (the try tier says why); the CAS is the release's last
 * touch of `s`, so a wrong guess moves rest_ before the retry. */
static inline bool
blz__semaphore_put_free(blz_semaphore *s, size_t n)
{
    size_t add = n << BLZ_SEM_SHIFT_;
    size_t cur = atomic_load_explicit(&s->rest_, memory_order_relaxed) - add;
    bool guessed = true;
    for (;;) {
        if (BLZ_SYNC_UNLIKELY_(cur & BLZ_SEM_WAITERS_)) {
            if (!guessed) {
                return false;
            }
            cur = atomic_load_explicit(&s->state_, memory_order_relaxed);
            guessed = false;
            continue;
        }
        BLZ_SYNC_PERTURB_();
        /* Release pairs with the acquire CAS of the try tier. */
        if (atomic_compare_exchange_weak_explicit(&s->state_, &cur, cur + add, memory_order_release,
                                                  memory_order_relaxed)) {
            return true;
        }
        if (guessed && !(cur & BLZ_SEM_WAITERS_)) {
            atomic_store_explicit(&s->rest_, cur + add, memory_order_relaxed);
        }
        guessed = false;
    }
}

/**
 * Returns `n` permits: to the oldest waiters first (FIFO), the rest to the
 * pool. Never waits; wakes the waiters it completes. Releasing more than was
 * acquired raises the capacity (up to BLZ_SEMAPHORE_MAX_PERMITS, unchecked).
 * NULL or n == 0 does nothing. Any thread.
 */
static inline void
blz_semaphore_release(blz_semaphore *s, size_t n)
{
    if (!s || n == 0) {
        return;
    }
    if (BLZ_SYNC_UNLIKELY_(!blz__semaphore_put_free(s, n))) {
        blz__semaphore_release_slow(s, n);
    }
}

/**
 * Removes up to `n` free permits for good (Tokio's forget_permits): how a
 * limit shrinks at run time. Permits held now are not touched (they come
 * back on release; call again to take them then), and neither are permits
 * handed, or being handed, to a queued acquire (none are free while one is
 * queued). Returns how many were removed, fewer than `n` when fewer were
 * free; 0 for NULL. Any thread; never waits.
 * (blz_semaphore_release grows the limit.)
 */
BLZ_API size_t blz_semaphore_forget(blz_semaphore *s, size_t n);

/** Free permits right now (a snapshot). 0 for NULL. Any thread. */
static inline size_t
blz_semaphore_available(const blz_semaphore *s)
{
    return s ? atomic_load_explicit(&s->state_, memory_order_relaxed) >> BLZ_SEM_SHIFT_ : 0;
}

/**
 * Closes `s`: every queued acquire completes with -EPIPE (permits partly
 * assigned to them return to the pool), and later acquires fail with -EPIPE.
 * Acquisitions that already completed are unaffected and may still release.
 * Idempotent; NULL is ignored. Any thread; never waits.
 */
BLZ_API void blz_semaphore_close(blz_semaphore *s);

/** True once blz_semaphore_close() was called. False for NULL. */
static inline bool
blz_semaphore_is_closed(const blz_semaphore *s)
{
    return s && (atomic_load_explicit(&s->state_, memory_order_acquire) & BLZ_SEM_CLOSED_);
}

/** The acquire future. Fields ending in `_` are private. */
typedef struct blz_semaphore_acquire_future {
    blz_future base;
    blz_semaphore *sem_; /* the semaphore, or NULL (the poll reports -EINVAL) */
    size_t want_;        /* permits requested */
    size_t assigned_;    /* permits handed over so far; under sem_->lock_ while queued */
    blz_waiter waiter_;  /* queue node; state_ under sem_->lock_ */
} blz_semaphore_acquire_future;

/**
 * Fills `f` to acquire `n` permits. Polling it completes with result 0 (the
 * permits are the caller's: release them later), -EPIPE (closed), or -EINVAL
 * (NULL semaphore, n too large). Dropping it while pending gives back any
 * permits already assigned. Never allocates; NULL `f` is ignored.
 */
BLZ_API void blz_semaphore_acquire_fut(blz_semaphore *s, size_t n, blz_semaphore_acquire_future *f);

/**
 * Waits for `n` permits (FIFO). Suspends a fiber / parks a foreign thread.
 * @return 0; -EPIPE if closed before or while waiting; -ECANCELED if the task
 *         was aborted (no permits kept); -EINVAL; -EDEADLK inside a stackless poll.
 */
BLZ_API int blz_semaphore_acquire(blz_semaphore *s, size_t n);

/* ======================================================================== */
/* Mutex                                                                    */
/* ======================================================================== */

/*
 * A FIFO-fair mutex. The uncontended lock is one CAS on state_ and the
 * unlock one CAS back, its only touch of the mutex, so the thread that takes
 * it next may free it at once (as POSIX allows while the unlocker is still in
 * pthread_mutex_unlock). Contended lockers spin briefly, then queue; unlock
 * hands the mutex straight to the oldest waiter (see src/sync/mutex.c).
 */
typedef struct blz_mutex {
    _Atomic uint32_t state_; /* LOCKED (1) | WAITERS (2: the queue is not empty) */
    _Atomic uint32_t lock_;  /* spinlock over queue_ and WAITERS */
    blz_waiter queue_;       /* sentinel of the FIFO of lock futures */
} blz_mutex;

#define BLZ_MUTEX_LOCKED_  1u
#define BLZ_MUTEX_WAITERS_ 2u

/** Static initialiser for an unlocked mutex. */
#define BLZ_MUTEX_INIT \
 {                     \
  .state_ = 0          \
 }

/** Initialises `m` unlocked. NULL is ignored. */
BLZ_API void blz_mutex_init(blz_mutex *m);

/* Private: unlock found waiters; hands the mutex to the oldest. */
BLZ_API void blz__mutex_unlock_slow(blz_mutex *m);

/**
 * Locks `m` if it is free and nobody is queued for it. Never waits.
 * @return 0 (locked: call blz_mutex_unlock later), -EAGAIN, -EINVAL for NULL.
 * Any thread.
 */
static inline int
blz_mutex_try_lock(blz_mutex *m)
{
    if (!m) {
        return -EINVAL;
    }
    BLZ_SYNC_PERTURB_();
    uint32_t expect = 0;
    /* Fails if held, or FIFO: queued waiters go first. No load first: on x86
     * a load of the word a locked instruction has just written waits for
     * that write to land, as long again as the CAS (see the semaphore).
     * Acquire pairs with the release CAS in blz_mutex_unlock. */
    return atomic_compare_exchange_strong_explicit(&m->state_, &expect, BLZ_MUTEX_LOCKED_,
                                                   memory_order_acquire, memory_order_relaxed)
               ? 0
               : -EAGAIN;
}

/**
 * Unlocks `m`, handing it to the oldest waiter if any. Never waits. The mutex
 * has no owner tracking: unlocking a mutex you do not hold is a bug that lets
 * two holders in. NULL is ignored. Any thread (not only the locking one).
 */
static inline void
blz_mutex_unlock(blz_mutex *m)
{
    if (!m) {
        return;
    }
    BLZ_SYNC_PERTURB_();
    uint32_t expect = BLZ_MUTEX_LOCKED_;
    /* Release pairs with the acquire CAS of the next locker. The last touch of
     * `m`; it fails while waiters are queued, whom the slow path hands it to. */
    if (BLZ_SYNC_UNLIKELY_(!atomic_compare_exchange_strong_explicit(
            &m->state_, &expect, 0, memory_order_release, memory_order_relaxed))) {
        blz__mutex_unlock_slow(m);
    }
}

/** True while `m` is locked (a snapshot). False for NULL. */
static inline bool
blz_mutex_is_locked(const blz_mutex *m)
{
    return m && (atomic_load_explicit(&m->state_, memory_order_relaxed) & BLZ_MUTEX_LOCKED_) != 0;
}

/** The lock future. Fields ending in `_` are private. */
typedef struct blz_mutex_lock_future {
    blz_future base;
    blz_mutex *mutex_;  /* the mutex, or NULL (the poll reports -EINVAL) */
    blz_waiter waiter_; /* queue node; state_ under mutex_->lock_ */
} blz_mutex_lock_future;

/**
 * Fills `f` to lock `m`. Polling completes with result 0 (locked) or -EINVAL
 * (NULL mutex). Dropping it after the mutex was handed over unlocks it for the
 * next waiter. Never allocates; NULL `f` is ignored.
 */
BLZ_API void blz_mutex_lock_fut(blz_mutex *m, blz_mutex_lock_future *f);

/**
 * Locks `m`, waiting in FIFO order after a short bounded spin. Suspends a
 * fiber / parks a foreign thread.
 * @return 0 (locked); -ECANCELED if the task was aborted (not locked);
 *         -EINVAL for NULL; -EDEADLK inside a stackless poll.
 */
BLZ_API int blz_mutex_lock(blz_mutex *m);

/* ======================================================================== */
/* RwLock                                                                   */
/* ======================================================================== */

/*
 * A reader-writer lock built on a semaphore of BLZ_RWLOCK_MAX_READERS permits:
 * a read takes one, a write takes all. FIFO order gives the guarantees: a
 * queued writer soaks up permits as readers leave, so later readers queue
 * behind it (no writer starvation), and the readers queued behind a writer are
 * admitted together, as a batch, when it unlocks.
 */
typedef struct blz_rwlock {
    blz_semaphore sem_; /* MAX_READERS permits; never closed */
} blz_rwlock;

/** At most this many concurrent readers. */
#define BLZ_RWLOCK_MAX_READERS BLZ_SEMAPHORE_MAX_PERMITS

/** Static initialiser for an unlocked rwlock. */
#define BLZ_RWLOCK_INIT                              \
 {                                                   \
  .sem_ = BLZ_SEMAPHORE_INIT(BLZ_RWLOCK_MAX_READERS) \
 }

/** Initialises `l` unlocked. NULL is ignored. */
BLZ_API void blz_rwlock_init(blz_rwlock *l);

/** Takes a read lock if no writer holds or waits. @return 0, -EAGAIN, -EINVAL. Any thread. */
static inline int
blz_rwlock_try_read(blz_rwlock *l)
{
    return l ? blz_semaphore_try_acquire(&l->sem_, 1) : -EINVAL;
}

/** Takes the write lock if the lock is free and nobody waits. @return 0, -EAGAIN, -EINVAL. */
static inline int
blz_rwlock_try_write(blz_rwlock *l)
{
    return l ? blz_semaphore_try_acquire(&l->sem_, BLZ_RWLOCK_MAX_READERS) : -EINVAL;
}

/** Releases a read lock. Never waits. NULL is ignored. Any thread. */
static inline void
blz_rwlock_read_unlock(blz_rwlock *l)
{
    if (l) {
        blz_semaphore_release(&l->sem_, 1);
    }
}

/** Releases the write lock; queued readers are admitted as a batch. NULL is ignored. */
static inline void
blz_rwlock_write_unlock(blz_rwlock *l)
{
    if (l) {
        blz_semaphore_release(&l->sem_, BLZ_RWLOCK_MAX_READERS);
    }
}

/** The read and write lock futures (a semaphore acquire underneath). */
typedef blz_semaphore_acquire_future blz_rwlock_lock_future;

/** Fills `f` to take a read lock. Result 0 or -EINVAL. Dropping gives back what it got. */
BLZ_API void blz_rwlock_read_fut(blz_rwlock *l, blz_rwlock_lock_future *f);

/** Fills `f` to take the write lock. Result 0 or -EINVAL. Dropping gives back what it got. */
BLZ_API void blz_rwlock_write_fut(blz_rwlock *l, blz_rwlock_lock_future *f);

/**
 * Takes a read lock, waiting in FIFO order. Suspends a fiber / parks a thread.
 * @return 0; -ECANCELED (aborted, not locked); -EINVAL; -EDEADLK in a stackless poll.
 */
BLZ_API int blz_rwlock_read(blz_rwlock *l);

/** Takes the write lock, waiting in FIFO order. Returns as blz_rwlock_read. */
BLZ_API int blz_rwlock_write(blz_rwlock *l);

/* ======================================================================== */
/* Notify                                                                   */
/* ======================================================================== */

/*
 * A wake-up signal without data. notify_one wakes the oldest waiter or, when
 * nobody waits, stores one permit (permits do not accumulate) that the next
 * wait consumes at once. notify_all wakes every waiter present and stores
 * nothing; a wait future filled before a notify_all counts as present even if
 * it was not polled yet, so "fill, check the condition, await" loses nothing.
 */
typedef struct blz_notify {
    _Atomic uint32_t state_; /* PERMIT (1) | WAITERS (2) | notify_all count << 2 */
    _Atomic uint32_t lock_;  /* spinlock over queue_ */
    blz_waiter queue_;       /* sentinel of the FIFO of wait futures */
} blz_notify;

#define BLZ_NOTIFY_PERMIT_  1u
#define BLZ_NOTIFY_WAITERS_ 2u

/** Static initialiser: no permit, nobody waiting. */
#define BLZ_NOTIFY_INIT \
 {                      \
  .state_ = 0           \
 }

/** Initialises `n`. NULL is ignored. */
BLZ_API void blz_notify_init(blz_notify *n);

/* Private: notify_one found waiters queued. */
BLZ_API void blz__notify_one_slow(blz_notify *n);

/**
 * Wakes the oldest waiter, or stores a permit if nobody waits (at most one is
 * kept). Never waits; NULL is ignored. Any thread.
 */
static inline void
blz_notify_one(blz_notify *n)
{
    if (!n) {
        return;
    }
    uint32_t cur = atomic_load_explicit(&n->state_, memory_order_relaxed);
    for (;;) {
        if (cur & BLZ_NOTIFY_WAITERS_) {
            blz__notify_one_slow(n);
            return;
        }
        BLZ_SYNC_PERTURB_();
        /* Release pairs with the acquire CAS that consumes the permit. */
        if (atomic_compare_exchange_weak_explicit(&n->state_, &cur, cur | BLZ_NOTIFY_PERMIT_,
                                                  memory_order_release, memory_order_relaxed)) {
            return;
        }
    }
}

/** Wakes every waiter present; stores no permit. Never waits; NULL is ignored. Any thread. */
BLZ_API void blz_notify_all(blz_notify *n);

/** Consumes a stored permit. @return 0, -EAGAIN (none stored), -EINVAL. Never waits. */
static inline int
blz_notify_try_wait(blz_notify *n)
{
    if (!n) {
        return -EINVAL;
    }
    uint32_t cur = atomic_load_explicit(&n->state_, memory_order_relaxed);
    while (cur & BLZ_NOTIFY_PERMIT_) {
        BLZ_SYNC_PERTURB_();
        /* Acquire pairs with the release CAS in blz_notify_one. */
        if (atomic_compare_exchange_weak_explicit(&n->state_, &cur, cur & ~BLZ_NOTIFY_PERMIT_,
                                                  memory_order_acquire, memory_order_relaxed)) {
            return 0;
        }
    }
    return -EAGAIN;
}

/** The wait future. Fields ending in `_` are private. */
typedef struct blz_notify_wait_future {
    blz_future base;
    blz_notify *notify_; /* the notify, or NULL (the poll reports -EINVAL) */
    uint32_t gen_;       /* notify_all count when filled */
    blz_waiter waiter_;  /* queue node; state_ under notify_->lock_ */
} blz_notify_wait_future;

/**
 * Fills `f` to wait for a notification; it counts as a waiter for notify_all
 * from this moment. Result 0 or -EINVAL. A notify_one handed to it and not yet
 * observed is passed on when it is dropped. NULL `f` is ignored.
 */
BLZ_API void blz_notify_wait_fut(blz_notify *n, blz_notify_wait_future *f);

/**
 * Waits for a notification (consumes a stored permit at once).
 * @return 0; -ECANCELED (aborted); -EINVAL; -EDEADLK inside a stackless poll.
 */
BLZ_API int blz_notify_wait(blz_notify *n);

/* ======================================================================== */
/* Barrier                                                                  */
/* ======================================================================== */

/*
 * A reusable barrier for `parties` waiters. Each generation completes when the
 * last party arrives; exactly one waiter per generation (the last to arrive)
 * is told it is the leader. A waiter dropped before its generation completes
 * is removed and does not count.
 */
typedef struct blz_barrier {
    _Atomic uint32_t lock_; /* spinlock over everything below */
    uint32_t parties_;      /* waiters per generation; 0 = not initialised */
    uint32_t arrived_;      /* arrivals in the current generation */
    uint32_t generation_;   /* completed generations (wraps) */
    blz_waiter queue_;      /* sentinel of the FIFO of waiting futures */
} blz_barrier;

/** Static initialiser for a barrier of `n` > 0 parties. */
#define BLZ_BARRIER_INIT(n)  \
 {                           \
  .parties_ = (uint32_t) (n) \
 }

/** What a completed barrier wait returns to the generation's leader. */
#define BLZ_BARRIER_LEADER 1

/** Initialises `b` for `parties` waiters. @return 0, -EINVAL (NULL or parties == 0). */
BLZ_API int blz_barrier_init(blz_barrier *b, uint32_t parties);

/**
 * Arrives only if this arrival completes the generation (then this caller is
 * the leader). Never waits.
 * @return BLZ_BARRIER_LEADER; -EAGAIN (others still missing; nothing recorded); -EINVAL.
 */
BLZ_API int blz_barrier_try_wait(blz_barrier *b);

/** The barrier wait future. Fields ending in `_` are private. */
typedef struct blz_barrier_wait_future {
    blz_future base;
    blz_barrier *barrier_; /* the barrier, or NULL (the poll reports -EINVAL) */
    uint32_t gen_;         /* generation this waiter arrived in; under barrier_->lock_ */
    blz_waiter waiter_;    /* queue node; state_ under barrier_->lock_ */
} blz_barrier_wait_future;

/**
 * Fills `f` to arrive at `b` when first polled. Result BLZ_BARRIER_LEADER,
 * 0 (another waiter led) or -EINVAL. NULL `f` is ignored.
 */
BLZ_API void blz_barrier_wait_fut(blz_barrier *b, blz_barrier_wait_future *f);

/**
 * Arrives and waits for the generation to complete.
 * @return BLZ_BARRIER_LEADER (1) for exactly one waiter per generation, 0 for
 *         the others; -ECANCELED (aborted; the arrival is withdrawn); -EINVAL;
 *         -EDEADLK inside a stackless poll.
 */
BLZ_API int blz_barrier_wait(blz_barrier *b);

/* ======================================================================== */
/* OnceCell                                                                 */
/* ======================================================================== */

/*
 * A cell set at most once with a pointer-sized value. get() is one acquire
 * load. get_or_init() runs the initialiser in exactly one caller at a time;
 * the others wait; if it fails, the next caller tries again.
 */
typedef struct blz_oncecell {
    _Atomic uint32_t state_; /* EMPTY 0 / RUNNING 1 / SET 2, | WAITERS 4 */
    _Atomic uint32_t lock_;  /* spinlock over queue_ */
    void *value_;            /* written once, before state_ becomes SET */
    blz_waiter queue_;       /* sentinel of the FIFO of waiting futures */
} blz_oncecell;

#define BLZ_ONCECELL_SET_ 2u

/** Static initialiser for an empty cell. */
#define BLZ_ONCECELL_INIT \
 {                        \
  .state_ = 0             \
 }

/** Initialises `c` empty. NULL is ignored. */
BLZ_API void blz_oncecell_init(blz_oncecell *c);

/**
 * Reads the value. @return 0 and stores it in `*out` (when `out` is not NULL);
 * -EAGAIN while the cell is not set; -EINVAL for NULL `c`. Never waits. Any thread.
 */
static inline int
blz_oncecell_get(const blz_oncecell *c, void **out)
{
    if (!c) {
        return -EINVAL;
    }
    /* Acquire pairs with the release exchange that publishes value_. SET is
     * final and carries no other bit (WAITERS is raised only before it), so
     * one compare of the whole word decides. */
    if (atomic_load_explicit(&c->state_, memory_order_acquire) != BLZ_ONCECELL_SET_) {
        return -EAGAIN;
    }
    if (out) {
        *out = c->value_;
    }
    return 0;
}

/**
 * Sets the value and wakes waiters. Never waits.
 * @return 0; -EEXIST if already set; -EBUSY while an initialiser runs; -EINVAL.
 */
BLZ_API int blz_oncecell_set(blz_oncecell *c, void *value);

/** An initialiser: stores the value in `*value` and returns 0, or returns -errno. */
typedef int (*blz_oncecell_init_fn)(void *arg, void **value);

/** The get_or_init future. `value` holds the cell's value once ready with result 0. */
typedef struct blz_oncecell_init_future {
    blz_future base;
    void *value;              /**< the cell's value, once ready with result 0 */
    blz_oncecell *cell_;      /* the cell, or NULL (the poll reports -EINVAL) */
    blz_oncecell_init_fn fn_; /* initialiser, or NULL to only wait for a set */
    void *arg_;               /* argument of fn_ */
    blz_waiter waiter_;       /* queue node; state_ under cell_->lock_ */
} blz_oncecell_init_future;

/**
 * Fills `f` to get the value, running `fn(arg)` (inside this future's poll, on
 * the polling thread) if the cell is empty and no other initialiser runs. With
 * `fn` NULL the future only waits until someone sets the cell. Result 0 (value
 * in f->value), the initialiser's error (the cell stays empty), or -EINVAL.
 * NULL `f` is ignored.
 */
BLZ_API void blz_oncecell_get_or_init_fut(blz_oncecell *c, blz_oncecell_init_fn fn, void *arg,
                                          blz_oncecell_init_future *f);

/**
 * Gets the value, initialising it with `fn(arg)` if needed (exactly one
 * initialiser runs at a time; concurrent callers wait for it). Suspends a
 * fiber / parks a foreign thread while another caller initialises.
 * @return 0 and the value in `*value` (if not NULL); the initialiser's error;
 *         -ECANCELED (aborted); -EINVAL; -EDEADLK inside a stackless poll.
 */
BLZ_API int blz_oncecell_get_or_init(blz_oncecell *c, blz_oncecell_init_fn fn, void *arg,
                                     void **value);

/* ======================================================================== */
/* CancelToken                                                              */
/* ======================================================================== */

/*
 * A one-way cancellation flag with waiters and children. A child token is
 * cancelled when it or any ancestor is; cancelling a child leaves the parent
 * alone. Children are not linked into their parent (only the child points up),
 * so nothing needs unlinking: a parent must simply outlive its children. The
 * waiters of a whole tree queue at its root token.
 */
typedef struct blz_cancel_token {
    _Atomic uint32_t cancelled_;      /* CANCELLED (set once) | WAITERS (roots; see cancel.c) */
    _Atomic uint32_t lock_;           /* spinlock over queue_ (used on roots only) */
    struct blz_cancel_token *parent_; /* immutable after init; NULL for a root */
    blz_waiter queue_;                /* root: FIFO of the tree's cancelled futures */
} blz_cancel_token;

#define BLZ_CANCEL_CANCELLED_ 1u /* in cancelled_: this token was cancelled */
#define BLZ_CANCEL_WAITERS_   2u /* in a root's cancelled_: its queue_ is not empty */

/** Static initialiser for a root token, not cancelled. */
#define BLZ_CANCEL_TOKEN_INIT \
 {                            \
  .cancelled_ = 0             \
 }

/** Initialises `t` as a root token. NULL is ignored. */
BLZ_API void blz_cancel_token_init(blz_cancel_token *t);

/**
 * Initialises `child` as a child of `parent` (which must outlive it). If the
 * parent is already cancelled the child is born cancelled.
 * @return 0, -EINVAL (NULL, or child == parent).
 */
BLZ_API int blz_cancel_token_child_init(blz_cancel_token *child, blz_cancel_token *parent);

/** Cancels `t` and so all its descendants, waking their waiters. Idempotent; NULL ignored. */
BLZ_API void blz_cancel_token_cancel(blz_cancel_token *t);

/** True once `t` or an ancestor was cancelled. False for NULL. Never waits. Any thread. */
static inline bool
blz_cancel_token_is_cancelled(const blz_cancel_token *t)
{
    for (; t; t = t->parent_) {
        /* Acquire pairs with the release fetch_or in blz_cancel_token_cancel. */
        if (atomic_load_explicit(&t->cancelled_, memory_order_acquire) & BLZ_CANCEL_CANCELLED_) {
            return true;
        }
    }
    return false;
}

/** The cancelled future. Fields ending in `_` are private. */
typedef struct blz_cancel_future {
    blz_future base;
    blz_cancel_token *token_; /* the token, or NULL (the poll reports -EINVAL) */
    blz_waiter waiter_;       /* queue node at the root; state_ under the root's lock_ */
} blz_cancel_future;

/** Fills `f` to complete (result 0) once `t` is cancelled; -EINVAL for NULL. */
BLZ_API void blz_cancel_token_wait_fut(blz_cancel_token *t, blz_cancel_future *f);

/**
 * Waits until `t` is cancelled.
 * @return 0; -ECANCELED (this task was aborted); -EINVAL; -EDEADLK in a stackless poll.
 */
BLZ_API int blz_cancel_token_wait(blz_cancel_token *t);

#ifdef __cplusplus
}
#endif
#endif /* BLZ_SYNC_H */
