/*
 * The blocking pool: OS threads for jobs that block (blz_spawn_blocking).
 *
 * Threads are created on demand, one per job that finds no idle thread, up to
 * max_threads; a thread idle for idle_timeout exits. Jobs wait in a FIFO when
 * every thread is busy and the limit is reached. Everything is under `lock`.
 * Pool threads belong to the runtime (blz__rt_current() answers it there) but
 * are not workers, so blz_await on them parks the thread as on any foreign
 * thread and never holds up a worker.
 *
 * A thread that finished a job looks for the next one for BLZ_POOL_SPIN_NS
 * before it sleeps on `cond` (counted in `spinning`, yielding the core while
 * it looks): a task that hands the pool one job after another (file calls
 * on epoll, a loop of spawn_blocking awaits) then costs no futex wake and
 * no sleep per job. A submit signals `cond` only for the jobs the spinning
 * threads will not take; a spinner that gives up re-checks the queue under
 * the lock before it waits, so no job is left behind.
 *
 * Backpressure (the runtime's blocking_queue_limit): a public spawn takes a
 * slot first, and a slot exists while fewer than `limit` jobs are queued or
 * reserved. Without one the try tier refuses and the others wait in
 * `waiters`, oldest first: each job a thread takes off the queue, and each
 * reservation released by a spawn that failed, grants the freed slot to the
 * oldest waiter (counted in `reserved` until its job is queued, which takes
 * the slot over in the same step) and wakes it. While anyone waits, a try
 * refuses, so nobody overtakes the queue.
 */
#include "core/atomic.h"
#include "core/list.h"
#include "os/unix/sys.h"
#include "rt/current.h"
#include "rt/runtime.h"

#include <pthread.h>
#include <time.h>

void blz__blocking_run(blz__task *t);
void blz__rt_set_thread(blz_runtime *rt, blz__worker *w);
void blz__thread_cleanup(void);

/* How long a thread that finished a job looks for the next one before it
 * sleeps: about two thread wake-ups on this class of machine. */
#define BLZ_POOL_SPIN_NS ((blz_duration) 50000)

/* blz_waiter.state_ of a spawn waiting for a slot, under the pool's lock. */
enum { SLOT_IDLE, SLOT_QUEUED, SLOT_GRANTED, SLOT_CLOSED };

int
blz__blocking_init(blz__blocking_pool *p, unsigned max_threads, blz_duration idle, unsigned limit)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, &ca);
    pthread_cond_init(&p->exited, NULL);
    pthread_condattr_destroy(&ca);
    p->head = p->tail = NULL;
    p->queued = 0;
    p->threads = 0;
    p->leaving = 0;
    p->idle = 0;
    p->spinning = 0;
    atomic_init(&p->jobs, 0u);
    atomic_init(&p->awaiting, 0);
    atomic_init(&p->spawn_calls, 0u);
    p->max_threads = max_threads;
    p->idle_timeout = idle;
    p->shutdown = false;
    p->limit = limit;
    p->reserved = 0;
    p->closed = false;
    blz__waitlist_init(&p->waiters);
    p->waiting = 0;
    return 0;
}

/* Under p->lock: may one more job wait for a thread? */
static bool
has_room(const blz__blocking_pool *p)
{
    return p->limit == 0 || p->queued + p->reserved < p->limit;
}

/* Under p->lock: a slot came free; the oldest waiter gets it. Its waker is
 * moved to *wake, for the caller to wake once the lock is dropped. */
static void
grant_freed_slot(blz__blocking_pool *p, blz_waker *wake)
{
    if (!has_room(p)) {
        return;
    }
    blz_waiter *w = blz__waitlist_pop_front(&p->waiters);
    if (w) {
        p->waiting--;
        w->state_ = SLOT_GRANTED;
        p->reserved++;
        *wake = w->waker_;
        w->waker_ = BLZ_WAKER_NONE;
    }
}

int
blz__blocking_slot_take(blz__blocking_pool *p, blz_waiter *w, const blz_waker *waker)
{
    int rc = -EAGAIN;
    pthread_mutex_lock(&p->lock);
    if (w && w->state_ == SLOT_GRANTED) {
        w->state_ = SLOT_IDLE; /* the reservation is the caller's now */
        rc = 0;
    } else if ((w && w->state_ == SLOT_CLOSED) || p->closed) {
        rc = -ESHUTDOWN;
    } else if (w && w->state_ == SLOT_QUEUED) {
        blz_waker_set(&w->waker_, waker);
    } else if (blz__waitlist_empty(&p->waiters) && has_room(p)) {
        p->reserved++;
        rc = 0;
    } else if (w) {
        w->waker_ = blz_waker_clone(waker);
        w->state_ = SLOT_QUEUED;
        blz__waitlist_push_back(&p->waiters, w);
        p->waiting++;
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void
blz__blocking_slot_cancel(blz__blocking_pool *p, blz_waiter *w)
{
    blz_waker wake = BLZ_WAKER_NONE;
    pthread_mutex_lock(&p->lock);
    if (w->state_ == SLOT_QUEUED) {
        blz__waitlist_remove(w);
        p->waiting--;
    } else if (w->state_ == SLOT_GRANTED) {
        p->reserved--; /* granted but never used: the next waiter's turn */
        grant_freed_slot(p, &wake);
    }
    w->state_ = SLOT_IDLE;
    blz_waker old = w->waker_;
    w->waker_ = BLZ_WAKER_NONE;
    pthread_mutex_unlock(&p->lock);
    blz_waker_drop(&old);
    blz_waker_wake(&wake);
}

void
blz__blocking_slot_release(blz__blocking_pool *p)
{
    blz_waker wake = BLZ_WAKER_NONE;
    pthread_mutex_lock(&p->lock);
    p->reserved--;
    grant_freed_slot(p, &wake);
    pthread_mutex_unlock(&p->lock);
    blz_waker_wake(&wake);
}

void
blz__blocking_close_slots(blz__blocking_pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->closed = true;
    blz_waiter *w;
    while ((w = blz__waitlist_pop_front(&p->waiters)) != NULL) {
        p->waiting--;
        w->state_ = SLOT_CLOSED;
        blz_waker wake = w->waker_;
        w->waker_ = BLZ_WAKER_NONE;
        /* Woken unlocked; the waiter's memory is not touched after the unlock. */
        pthread_mutex_unlock(&p->lock);
        blz_waker_wake(&wake);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
}

static blz_runtime *
pool_runtime(blz__blocking_pool *p)
{
    return (blz_runtime *) (void *) ((char *) p - offsetof(blz_runtime, blocking));
}

/* Under p->lock: the queue's length changed; spinning threads read `jobs`. */
static void
set_queued(blz__blocking_pool *p, unsigned n)
{
    p->queued = n;
    blz__store(&p->jobs, n, RELEASE);
}

/* Called and returns with p->lock held: looks for a job for up to
 * BLZ_POOL_SPIN_NS without the lock, as a spinning thread. */
static void
spin_for_job(blz__blocking_pool *p)
{
    p->spinning++;
    pthread_mutex_unlock(&p->lock);
    /* The job just ended, and a spinner counts as idle: on a clock that
     * jumps when everything is idle (worker.c, auto_advance), the timers'
     * watcher may be asleep without a timeout because this job was running.
     * Wake it to look again, as the last worker to go idle does
     * (sleep_on_futex). After the count, which it reads under the lock. */
    blz_runtime *rt = pool_runtime(p);
    if (blz__timers_paused(&rt->timers) && !rt->cfg.manual_clock) {
        blz__rt_wake_driver(rt);
    }
    blz_instant until = blz_now() + (blz_instant) BLZ_POOL_SPIN_NS;
    while (!blz__load(&p->jobs, ACQUIRE) && blz_now() < until) {
        blz__sys_yield(); /* a worker that wants this core gets it */
    }
    pthread_mutex_lock(&p->lock);
    p->spinning--;
}

static void *
pool_thread(void *arg)
{
    blz__blocking_pool *p = arg;
    blz_runtime *rt = pool_runtime(p);
    blz__sys_set_thread_name("blz-blocking");
    blz_thread_info info = {BLZ_THREAD_BLOCKING, 0};
    blz__rt_thread_hook(rt, rt->cfg.on_thread_start, &info);
    blz__rt_set_thread(rt, NULL);
    pthread_mutex_lock(&p->lock);
    bool after_job = false;
    for (;;) {
        if (after_job && !p->head && !p->shutdown) {
            spin_for_job(p);
        }
        while (!p->head && !p->shutdown) {
            struct timespec ts = blz__monotonic_deadline(p->idle_timeout);
            p->idle++;
            int rc = pthread_cond_timedwait(&p->cond, &p->lock, &ts);
            p->idle--;
            if (rc != 0 && !p->head) {
                goto out; /* idle too long */
            }
        }
        if (!p->head) {
            goto out; /* shutdown with nothing queued */
        }
        blz__task *t = p->head;
        p->head = t->queue_next;
        if (!p->head) {
            p->tail = NULL;
        }
        set_queued(p, p->queued - 1);
        blz_waker wake = BLZ_WAKER_NONE;
        grant_freed_slot(p, &wake);
        pthread_mutex_unlock(&p->lock);
        blz_waker_wake(&wake);
        blz__blocking_run(t);
        pthread_mutex_lock(&p->lock);
        after_job = true;
    }
out:
    /* From here on this thread takes no job: a submit that comes while it
     * runs its stop hook must not count on it, or a job queued then would
     * wait for a thread that never looks again (with the pool at its
     * limit, none would start). Only free() still waits for it. */
    p->threads--;
    p->leaving++;
    pthread_mutex_unlock(&p->lock);
    /* Give back per-thread caches now: free() may count allocations right after. */
    blz__rt_set_thread(NULL, NULL);
    blz__rt_thread_hook(rt, rt->cfg.on_thread_stop, &info);
    blz__thread_cleanup();
    pthread_mutex_lock(&p->lock);
    p->leaving--;
    pthread_cond_broadcast(&p->exited);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int
blz__blocking_submit(blz_runtime *rt, blz__task *t, bool held)
{
    blz__blocking_pool *p = &rt->blocking;
    t->queue_next = NULL;
    int rc = 0;
    blz_waker wake = BLZ_WAKER_NONE;
    pthread_mutex_lock(&p->lock);
    if (p->shutdown) {
        rc = -ESHUTDOWN;
        goto out;
    }
    if (p->tail) {
        p->tail->queue_next = t;
    } else {
        p->head = t;
    }
    p->tail = t;
    set_queued(p, p->queued + 1);
    if (held) {
        p->reserved--; /* the slot is this queue place now */
    }
    /* Queued jobs against waiting threads: the spinning ones take theirs by
     * themselves, a sleeping one is signalled, and a new thread starts per
     * job nobody will take. */
    if (p->queued <= p->spinning) {
        /* a spinning thread sees `jobs` */
    } else if (p->queued > p->idle + p->spinning && p->threads < p->max_threads) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &attr, pool_thread, p) == 0) {
            p->threads++;
        }
        pthread_attr_destroy(&attr);
        if (p->threads == 0) {
            /* Could not start any thread: the job would never run. */
            p->head = p->tail = NULL;
            set_queued(p, 0);
            if (held) {
                p->reserved++; /* back to the spawner, which releases it */
            }
            grant_freed_slot(p, &wake); /* the queue's places came free */
            rc = -EAGAIN;
        }
    } else {
        pthread_cond_signal(&p->cond);
    }
out:
    pthread_mutex_unlock(&p->lock);
    blz_waker_wake(&wake);
    return rc;
}

void
blz__blocking_fini(blz__blocking_pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->shutdown = true;
    pthread_cond_broadcast(&p->cond);
    while (p->threads > 0 || p->leaving > 0) {
        pthread_cond_wait(&p->exited, &p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    pthread_cond_destroy(&p->cond);
    pthread_cond_destroy(&p->exited);
    pthread_mutex_destroy(&p->lock);
}
