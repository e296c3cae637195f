/*
 * Internal: the runtime and worker structs. Only src/rt/ and core/task_cell.c
 * look inside; other modules use rt/current.h.
 */
#ifndef BLZ_RT_RUNTIME_H
#define BLZ_RT_RUNTIME_H

#include "blitzio/rt.h"
#include "core/atomic.h"
#include "core/list.h"
#include "core/spinlock.h"
#include "fiber/fiber.h"
#include "io/driver.h"
#include "rt/local_queue.h"
#include "rt/task.h"
#include "time/timers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#define BLZ_OWNED_SHARDS 16

/* Worker parker states. */
enum {
    BLZ_PARK_EMPTY = 0,    /* running or about to check for work */
    BLZ_PARK_SLEEPING = 1, /* asleep on the futex */
    BLZ_PARK_DRIVER = 2,   /* asleep in the I/O driver */
    BLZ_PARK_NOTIFIED = 3, /* an unpark arrived; consumed by the worker */
    BLZ_PARK_DORMANT = 4,  /* a spare worker out of play (worker.c, spare_dormant) */
};

typedef struct blz__worker {
    blz__local_queue queue; /* run queue; pushes by this worker, steals by others */
    /* The most recently woken task. Only this worker puts tasks here; a rescue
     * (rt/rescue.h) may take one out when the worker is stuck in a poll. */
    _Atomic(blz__task *) lifo;
    struct blz_runtime *rt; /* owning runtime */
    unsigned index;         /* position in rt->workers */
    uint32_t tick;          /* scheduler ticks, for fairness checks */
    uint32_t rng;           /* xorshift state for steal victim choice */
    uint32_t idle_yields;   /* parks since its pre-park yields last paid (worker.c) */
    bool searching;         /* counted in rt->num_searching */
    bool left_idle;         /* parked since its last task (worker.c, rescuer_look) */
    bool unwatched;         /* handed the timers' watch back and has not slept since
                               (worker.c, unwatched_put) */
    bool spare;             /* one of cfg.spare_workers (worker.c, spare_dormant) */
    bool in_driver;         /* dispatching I/O events or timers: its wakes notify nobody
                               one by one; the worker decides once after (driver_done) */
    bool overflowed;        /* its local queue overflowed into the inject queue, which
                               still holds tasks: its own wakes queue there too */
    blz__task *spill_head;  /* tasks bound for the inject queue, in order, linked through */
    blz__task *spill_tail;  /*   queue_next; moved there under one lock (spill_flush) when */
    uint32_t spill_len;     /*   a batch is full and before this worker runs a task or parks */
    /* Tasks that yielded (notified during their own poll), newest first,
     * linked through queue_next; no other worker steals them (see defer_push
     * in worker.c), only a rescue takes them all. */
    _Atomic(blz__task *) defer_top;
    BLZ_ALIGNED_CACHELINE _Atomic uint32_t park_state; /* BLZ_PARK_* */
    pthread_t thread;
    bool thread_started;
    _Atomic bool active; /* inside blz__worker_run (the watchdog looks only then) */
    _Atomic int tid;     /* the thread running it (gettid), for stall reports */
    /* Counters, written by this worker only, read by metrics. */
    _Atomic uint64_t polls;
    _Atomic uint64_t steals;
    _Atomic uint64_t parks;
    _Atomic uint64_t unparks;
    /* Busy time (worker.c, "Load figures"): busy_ns and awake_since under the
     * sequence count busy_seq (odd while the worker writes them). */
    _Atomic uint32_t busy_seq;
    _Atomic uint64_t busy_ns;     /* awake time up to the last sleep */
    _Atomic uint64_t awake_since; /* the instant it woke; 0 while asleep or not running */
    _Atomic uint64_t mean_poll_ns;
    blz_instant batch_start;     /* this worker only: the current batch of runs began */
    uint64_t batch_polls;        /*   and `polls` then */
    bool time_polls;             /* cfg.poll_time_histogram: count runs in poll_hist */
    bool observe_polls;          /* time_polls, rt->time_sched or a poll hook (worker.c) */
    bool poll_hooked;            /* the run being observed gets the poll hooks */
    blz_task_meta poll_meta;     /*   with this meta */
    struct blz__task *poll_held; /* the task of that run, referenced until the after hook */
    _Atomic uint64_t poll_hist[BLZ_POLL_BUCKETS];
    _Atomic uint64_t delay_hist[BLZ_POLL_BUCKETS]; /* runs by scheduling delay */
    /* Rescue of the tasks stranded in lifo and defer_top (rt/rescue.h). */
    BLZ_ALIGNED_CACHELINE _Atomic uint32_t rescue; /* 1 from a rescue until this worker saw it */
    blz__spinlock rescue_lock;                     /* held by a rescue and by the acknowledgement */
    blz__task *rescued_lifo;                       /* what the last rescue took (rescue_lock) */
    blz__task *rescued_defer;
    _Atomic uint64_t rescued;     /* tasks taken from this worker by rescues (metrics) */
    _Atomic uint64_t activations; /* a spare: times it joined in (metrics) */
    /* Written by the other workers at each look for stranded tasks: a line
     * of their own, away from `rescue`, which this worker reads at every
     * LIFO slot operation. */
    BLZ_ALIGNED_CACHELINE _Atomic uint64_t stuck_polls; /* `polls` at the last look (racy) */
    _Atomic uint64_t stuck_since;                       /* when a look first saw that count */
} blz__worker;

typedef struct blz__owned_shard {
    BLZ_ALIGNED_CACHELINE blz__spinlock lock; /* protects everything below */
    blz__task *head;                          /* tasks linked through owned_prev/owned_next */
    uint64_t alive;                           /* tasks in this shard */
    uint64_t spawned;                         /* tasks ever inserted in this shard */
} blz__owned_shard;

/* The absolute CLOCK_MONOTONIC time `d` from now: the deadline of a
 * pthread_cond_timedwait on a condition variable set to that clock. */
static inline struct timespec
blz__monotonic_deadline(blz_duration d)
{
    blz_instant t = blz_instant_add(blz_now(), d);
    return (struct timespec){(time_t) (t / 1000000000u), (long) (t % 1000000000u)};
}

/* The stall watchdog (watchdog.c): a thread that samples each worker's poll
 * count and park state and reports a worker stuck in one poll. */
typedef struct blz__stall_probe blz__stall_probe;
typedef struct blz__watchdog {
    pthread_mutex_t lock; /* over stop, with cond */
    pthread_cond_t cond;  /* stop wakes the thread early (CLOCK_MONOTONIC) */
    bool stop;
    bool started;
    pthread_t thread;
    blz__stall_probe *probes;   /* one per worker, for backtraces; NULL without */
    pthread_mutex_t probe_lock; /* one backtrace at a time (stall reports, dumps) */
} blz__watchdog;

int blz__watchdog_start(struct blz_runtime *rt);
void blz__watchdog_stop(struct blz_runtime *rt);
/* Frees what the workers' signal handlers may still write: after they are joined. */
void blz__watchdog_free(struct blz_runtime *rt);
/* Worker i's call stack into frames[0..max): how many, 0 without the
 * watchdog's probes or when the worker does not answer in time. */
unsigned blz__worker_backtrace(struct blz_runtime *rt, unsigned i, void **frames, unsigned max);

typedef struct blz__blocking_pool {
    pthread_mutex_t lock;   /* protects everything below */
    pthread_cond_t cond;    /* idle threads wait here for jobs or shutdown */
    pthread_cond_t exited;  /* free() waits here for threads to exit */
    blz__task *head, *tail; /* FIFO of jobs, linked by queue_next */
    unsigned queued;        /* jobs in that FIFO */
    unsigned threads;       /* live threads that still take jobs */
    unsigned leaving;       /* threads that took their last job, not yet gone (free waits) */
    unsigned idle;          /* threads waiting on `cond` for a job */
    unsigned spinning;      /* threads looking for a job a while before they wait */
    /* Threads whose job is parked in blz_await, on a paused clock that jumps by
     * itself only (thread_await.c): they wait for the runtime as a task does, so
     * all_idle counts them idle. Signed: a wake may take one off before the
     * parking thread has added it (never more idle than there are). */
    _Atomic int awaiting;
    _Atomic uint32_t jobs; /* `queued`, for spinning threads to read without the lock */
    unsigned max_threads;
    blz_duration idle_timeout;
    bool shutdown;
    /* Backpressure (blocking_queue_limit): a spawn through the public API
     * takes a slot before it queues its job, and waits in `waiters` for one
     * while queued + reserved has reached `limit`. The runtime's own jobs
     * (file fallbacks, getaddrinfo) queue without one but still count. */
    unsigned limit;        /* 0: no limit */
    unsigned reserved;     /* slots granted to spawns that have not queued their job yet */
    bool closed;           /* the runtime is being freed: no slot is granted any more */
    blz__waitlist waiters; /* spawns waiting for a slot (blz_spawn_blocking_future.waiter_) */
    unsigned waiting;      /* how many */
    /* Calls of blz_runtime_spawn_blocking under a limit, which may wait (spawn.c):
     * blz_runtime_free waits for none to be left. */
    _Atomic uint32_t spawn_calls;
} blz__blocking_pool;

struct blz_runtime {
    blz_runtime_config cfg;
    blz_instant started; /* blz_now() at blz_runtime_new, for metrics' uptime */
    unsigned nworkers;
    bool rescue_on;  /* stranded tasks are rescued (rt/rescue.h): several workers, membarrier */
    bool time_sched; /* cfg.sched_delay_histogram: tasks are stamped when queued */
    /* Workers that own the driver (blz__io_driver_own): all of them when
     * there are no spares, else none. */
    unsigned io_owners;
    /* The driver's rings: 1, or one per worker (each parks in its own, and
     * driver_held only says who watches the timers). */
    unsigned io_rings;
    /* The workers taking part (bit i: worker i); a spare's bit is clear while
     * it is dormant. idle_mask counts only these (all_idle, notify_parked). */
    BLZ_ALIGNED_CACHELINE _Atomic uint64_t active_mask;
    blz__worker *workers;

    /* Inject queue: tasks scheduled from outside a worker, or overflow. */
    BLZ_ALIGNED_CACHELINE pthread_mutex_t inject_lock;
    blz__task *inject_head, *inject_tail; /* under inject_lock */
    _Atomic uint64_t inject_len;          /* read without the lock to skip empty checks */
    /* Threads other than this runtime's workers inside blz__schedule for it
     * (worker.c): blz_runtime_free waits for none to be left. */
    _Atomic uint32_t outside_schedules;

    /* Idle workers: bit i set = worker i is parked (or about to be). */
    BLZ_ALIGNED_CACHELINE _Atomic uint64_t idle_mask;
    _Atomic uint32_t num_searching; /* workers looking for work to steal */

    /* The driver: at most one parked worker holds it and sleeps in it, with
     * the next timer as timeout (with rings per worker, each sleeps in its
     * own ring and the holder only watches the timers). 0, or the holder's
     * index + 1. */
    BLZ_ALIGNED_CACHELINE _Atomic uint32_t driver_held;
    /* The timers' watcher sleeps without looking for stranded tasks (every
     * other worker slept when it went to sleep): its index + 1, else 0. A
     * worker that leaves the idle set wakes it (worker.c, rescuer_look). */
    _Atomic uint32_t rescuer_blind;
    blz__io_driver *io;
    blz__timers timers;

    blz__stack_pool *stacks;
    blz__blocking_pool blocking;

    blz__owned_shard owned[BLZ_OWNED_SHARDS];
    _Atomic uint32_t tasks_alive_seq; /* futex word: bumped when a shard empties while closing */
    _Atomic bool closing;             /* blz_runtime_free started: no new spawns */
    _Atomic bool shutdown;            /* workers exit their loops */
    /* Current-thread flavour: one thread at a time drives the worker
     * (runtime.c, take_drive); drive_seq is the futex word the others wait on. */
    _Atomic bool driving;
    _Atomic uint32_t drive_seq;
    _Atomic uint32_t block_ons; /* threads inside its block_on (free waits for them to leave) */

    blz__watchdog watchdog; /* stall reports, when cfg.stall_threshold > 0 */

    _Atomic uint64_t inject_pushes;
};

/* The worker the calling thread is, or NULL. */
blz__worker *blz__worker_current(void);

/* True while w is inside blz__worker_run and not asleep: running a task or
 * about to look for one. Any thread; a snapshot. */
static inline bool
blz__worker_awake(blz__worker *w)
{
    uint32_t park = blz__load(&w->park_state, RELAXED);
    return blz__load(&w->active, RELAXED) && (park == BLZ_PARK_EMPTY || park == BLZ_PARK_NOTIFIED);
}

/* Worker thread body / loop (rt/worker.c). `until` NULL: run until shutdown;
 * else run until that task completes (current-thread block_on). */
void blz__worker_run(blz__worker *w, bool (*done)(void *), void *ctx);
/* The poll_time_histogram bucket of a run of `ns` nanoseconds (see blz_metrics). */
int blz__poll_bucket(uint64_t ns);
/* Worker w's figures as of now, its poll-time histogram added into `hist`. Any thread. */
void blz__worker_metrics(blz__worker *w, blz_worker_metrics *out, uint64_t *poll_hist,
                         uint64_t *delay_hist);
void *blz__worker_thread_main(void *arg);

/* Inject queue (rt/worker.c). */
void blz__inject_push(blz_runtime *rt, blz__task *t);

/* Wakes one parked worker if no worker is searching. Any thread. */
void blz__notify_parked(blz_runtime *rt);
/* Gives back a count of num_searching taken for a worker that was not woken
 * after all, and wakes one for the notifiers it hid, as notify_parked does
 * (worker.c). Any thread. */
void blz__unclaim_searcher(blz_runtime *rt);

/* Owned lists (rt/owned.c). */
int blz__owned_insert(blz_runtime *rt, blz__task *t);
void blz__owned_remove(blz__task *t);
void blz__owned_abort_all(blz_runtime *rt);
/* Totals over the shards (each shard read under its lock). */
uint64_t blz__owned_alive(blz_runtime *rt);
uint64_t blz__owned_spawned(blz_runtime *rt);

/* Blocking pool lifecycle (rt/blocking_pool.c). */
int blz__blocking_init(blz__blocking_pool *p, unsigned max_threads, blz_duration idle,
                       unsigned limit);
void blz__blocking_fini(blz__blocking_pool *p);

/*
 * Slots of a bounded spawn (rt/blocking_pool.c; see blz__blocking_pool).
 * slot_take: 0 with a slot reserved for the caller; -EAGAIN when there is
 * none, with `w` (if not NULL) queued to be woken when one is granted to it;
 * -ESHUTDOWN once closed. `w` starts zeroed and is passed again on every
 * later poll. slot_release: the caller's spawn failed before its job was
 * queued (a queued job takes the slot over, blz__blocking_submit): the
 * reservation ends and the next waiter may get room. slot_cancel: a dropped
 * waiter leaves the queue, and a slot already granted to it goes to the
 * next. close_slots: every waiter ends with -ESHUTDOWN.
 */
int blz__blocking_slot_take(blz__blocking_pool *p, blz_waiter *w, const blz_waker *waker);
void blz__blocking_slot_cancel(blz__blocking_pool *p, blz_waiter *w);
void blz__blocking_slot_release(blz__blocking_pool *p);
void blz__blocking_close_slots(blz__blocking_pool *p);

/* Abort (core/task_cell.c). */
void blz__task_abort(blz__task *t);

/* Per-thread task-cell cache flush (core/task_cell.c). */
void blz__task_cache_flush(void);

/* Runs a thread hook of the config (on_thread_start/stop), if set. */
static inline void
blz__rt_thread_hook(const blz_runtime *rt, blz_thread_fn hook, const blz_thread_info *info)
{
    if (hook) {
        hook(info, rt->cfg.thread_hook_arg);
    }
}

#endif
