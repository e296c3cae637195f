/*
 * blitzio/rt.h — runtimes: configuration, creation, block_on, teardown, metrics.
 *
 * A runtime owns its worker threads, its blocking pool, its timer wheel and its
 * I/O driver. Several runtimes may live in one process; nothing here is global.
 */
#ifndef BLZ_RT_H
#define BLZ_RT_H

#include "blitzio/common.h"
#include "blitzio/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Scheduler flavour. */
typedef enum blz_flavor {
    BLZ_MULTI_THREAD = 0,   /**< work-stealing pool of `workers` threads */
    BLZ_CURRENT_THREAD = 1, /**< everything runs on the thread calling block_on */
} blz_flavor;

/**
 * What the stall watchdog reports: a worker that has been inside one task's
 * poll (a fiber's run between two suspensions, or a future's poll) for at
 * least the threshold, so every other task queued on it waits.
 */
typedef struct blz_stall_info {
    unsigned worker;      /**< the worker's index */
    int tid;              /**< its thread id (gettid), for a debugger or a profiler */
    blz_duration stalled; /**< how long that poll has run so far */
    /** The stalled worker's call stack when the stall was seen, innermost
     * first (return addresses; backtrace_symbols() names them), taken with
     * `stall_signal`; valid during the hook call only. nframes is 0 when no
     * backtrace could be taken (see stall_signal). */
    void *const *frames;
    unsigned nframes;
} blz_stall_info;

/** A stall hook: runs on the watchdog's thread, once per stall; must not block long. */
typedef void (*blz_stall_fn)(const blz_stall_info *info, void *arg);

/** The kinds of thread a runtime starts. */
typedef enum blz_thread_kind {
    BLZ_THREAD_WORKER = 0,   /**< runs tasks; named "blz-worker-N" */
    BLZ_THREAD_BLOCKING = 1, /**< runs blocking jobs; named "blz-blocking" */
} blz_thread_kind;

/** What a thread hook is told about the thread it runs on. */
typedef struct blz_thread_info {
    blz_thread_kind kind;
    unsigned index; /**< a worker's index (0 .. workers-1); 0 for blocking threads */
} blz_thread_info;

/** A thread hook: runs on the thread itself (set its affinity, its
 * priority, per-thread state of an allocator or a profiler...). */
typedef void (*blz_thread_fn)(const blz_thread_info *info, void *arg);

/** What a task hook is told (struct below). */
typedef struct blz_task_meta blz_task_meta;
/** A task hook (blz_runtime_config.on_task_*): `m` is valid during the call. */
typedef void (*blz_task_hook)(const blz_task_meta *m, void *arg);

/** Runtime settings. Fill with blz_runtime_config_default() and change what you need. */
typedef struct blz_runtime_config {
    blz_flavor flavor;
    unsigned workers; /**< worker threads; default: CPUs, or $BLZ_WORKERS */
    /** Worker threads held in reserve (multi-thread flavour; default 0). A
     * spare joins in when every worker has stayed in one task's poll for
     * 10 ms (tasks that block or spin), so the other tasks, timers and I/O
     * go on, and leaves again once a worker moves. A spare out of play wakes
     * every 10 ms while a worker is awake (100 ms otherwise) to look.
     * workers + spare_workers at most BLZ_METRICS_MAX_WORKERS. */
    unsigned spare_workers;
    size_t fiber_stack_size;    /**< usable stack per fiber; default 64 KiB */
    unsigned blocking_threads;  /**< blocking-pool limit; default 512 */
    blz_duration blocking_idle; /**< idle blocking threads exit after this; default 10 s */
    /** The most jobs that may wait for a blocking thread (queued, not yet
     * started). Once that many wait, blz_spawn_blocking waits for one to start
     * (oldest spawn first) and blz_try_spawn_blocking refuses with -EAGAIN:
     * backpressure instead of an unbounded queue. The runtime's own jobs
     * (file fallbacks, blz_resolve) are never held back but count. 0 (the
     * default): no limit. */
    unsigned blocking_queue_limit;
    const char *backend; /**< "io_uring", "epoll" or NULL (auto; $BLZ_BACKEND overrides) */
    bool paused_clock;   /**< virtual time: starts paused, jumps to the next timer when idle */
    /** Virtual time that only blz_runtime_advance moves: paused_clock (which
     * it implies) without the jump to the next timer when every task is
     * idle, for tests that check that nothing happens before its time (an
     * idle runtime then waits for the advance). Default false. */
    bool manual_clock;
    /** Report a task that keeps its worker longer than this (real time, also
     * with a paused clock); 0: no watchdog. Default 0, or $BLZ_STALL_MS. */
    blz_duration stall_threshold;
    blz_stall_fn on_stall; /**< NULL: one line on stderr per stall, and the stack */
    void *on_stall_arg;    /**< passed to on_stall */
    /** The signal sent to a stalled worker (once per stall) to take its
     * backtrace in a handler on that thread. Default SIGURG (ignored by
     * default, so a stray one harms nothing; Go's choice for the same job);
     * 0: no backtraces. The handler is installed only while the signal has
     * its default disposition (a program that handles it gets no
     * backtraces) and stays for the life of the process; blz_signal_listen
     * refuses that signal from then on (-EBUSY). A
     * worker interrupted inside a system call sees it restarted (SA_RESTART)
     * or, for calls that never restart (sleeps, waits with a timeout),
     * return EINTR early, as any signal would make them. SIGKILL, SIGSTOP
     * and the signals of a fault (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP,
     * SIGSYS) are -EINVAL. */
    int stall_signal;
    /** Runs first on every worker and blocking-pool thread, before any task
     * or job; NULL: nothing. */
    blz_thread_fn on_thread_start;
    /** Runs last on each of those threads, after its last task or job; all
     * have run when blz_runtime_free returns. NULL: nothing. */
    blz_thread_fn on_thread_stop;
    void *thread_hook_arg; /**< passed to both */
    /** Task hooks, for tracing and per-task instrumentation; NULL: none, at
     * no cost. Each runs on the thread where its event happens, must not
     * block and must not wait for a task. on_task_spawn: a fiber, future or
     * blocking job was created and is about to be queued (it has not run),
     * on the spawning thread. on_task_terminate: a task finished (returned,
     * failed, or was cancelled, also before it ever ran), on the thread that
     * finished it, before its joiner is woken; every spawned task gets one,
     * also one still queued when the runtime is freed (aborted then, it ends
     * as cancelled). on_before_task_poll and
     * on_after_task_poll: around each poll of a fiber or future task (for a
     * fiber, each resume), on the worker polling it; a poll that finishes
     * the task has its on_task_terminate between the two, and its identity
     * (blz_task_meta.task) is not reused by a new task before the after
     * hook has returned. */
    blz_task_hook on_task_spawn;
    blz_task_hook on_task_terminate;
    blz_task_hook on_before_task_poll;
    blz_task_hook on_after_task_poll;
    void *task_hook_arg; /**< passed to the four */
    /** Time every task run and count it in blz_metrics.poll_time_histogram
     * (two clock reads per run: ≈ 50–65 ns a run on the machine of
     * BENCHMARKS.md; off by default). */
    bool poll_time_histogram;
    /** Count every task run in blz_metrics.sched_delay_histogram by how
     * long the task waited to run since it was woken, spawned or yielded
     * (its scheduling delay: what a saturated worker adds to latency). One
     * clock read per wake and per run; off by default. */
    bool sched_delay_histogram;
    /** io_uring, one-worker multi-thread runtimes and ring_per_worker only
     * (a thread-per-core server's shape; with several workers sharing one
     * ring streams use readiness, which measured cheaper there): buffers of 16 KiB lent
     * to the kernel for completion receive on TCP streams (accepted, or
     * connected by blz_tcp_connect and its future). The kernel receives into them as data
     * arrives and a read copies out, with no recv system call; a stream
     * holds at most four before its receive pauses, and a stream that finds
     * none free reads the socket itself. A power of two up to
     * BLZ_RECV_BUFFERS_MAX; 0: readiness and recv(2), as on epoll. Memory:
     * up to recv_buffers x 16 KiB, touched as the kernel cycles through
     * them. Default BLZ_RECV_BUFFERS_DEFAULT, or $BLZ_RECV_BUFFERS. */
    unsigned recv_buffers;
    /** io_uring, multi-thread runtimes of several workers without spares: a
     * ring per worker instead of one shared by all. Each worker's ring is
     * single-issuer with deferred task running, as a one-worker runtime's
     * is: a socket or file op started on a worker is armed on that worker's
     * ring, the kernel posts its completions only when that worker asks,
     * and only that worker dispatches them (tasks still move between
     * workers by stealing). Completion receive (recv_buffers, shared out
     * among the rings) works on these rings. Cheaper per message when the
     * I/O starts on one worker (BENCHMARKS.md), but a task that keeps its
     * worker busy holds up that ring's I/O until it yields: no other worker
     * can take it over, as with a thread-per-core runtime. Default false, or
     * $BLZ_RING_PER_WORKER=1. */
    bool ring_per_worker;
} blz_runtime_config;

/** blz_runtime_config.recv_buffers: the default (4 MiB) and the most. */
#define BLZ_RECV_BUFFERS_DEFAULT 256u
#define BLZ_RECV_BUFFERS_MAX     32768u

/** The defaults, with $BLZ_WORKERS and $BLZ_BACKEND applied. */
BLZ_API void blz_runtime_config_default(blz_runtime_config *cfg);

/**
 * Creates a runtime and starts its workers. `cfg` NULL means defaults.
 * Returns 0, -EINVAL (bad setting), -ENOMEM, or an error from thread creation.
 */
BLZ_API int blz_runtime_new(const blz_runtime_config *cfg, blz_runtime **out);

/**
 * Runs `fn(arg)` as a fiber task on `rt` and waits for it on the calling
 * thread, which must not be a worker of any runtime (-EDEADLK). For the
 * current-thread flavour the calling thread drives the runtime meanwhile;
 * one thread drives at a time: a block_on called while another thread's
 * drives waits for its task, and takes the driving over should that one
 * return first.
 * Stores the task's return value in `*result` when `result` is not NULL.
 */
BLZ_API int blz_runtime_block_on(blz_runtime *rt, blz_task_fn fn, void *arg, void **result);

/**
 * Stops `rt`: aborts every task left (dropping its future, which unlinks its
 * waiters), joins every thread and frees everything. Must not be called from
 * one of `rt`'s own threads. NULL is ignored.
 */
BLZ_API void blz_runtime_free(blz_runtime *rt);

/** Creates a default runtime, block_on(fn, arg), frees it. Returns 0 or -errno. */
BLZ_API int blz_run(blz_task_fn fn, void *arg);

/** The runtime the calling thread is running a task of, or NULL. */
BLZ_API blz_runtime *blz_runtime_current(void);

/** The name of the I/O backend in use ("io_uring", "epoll", or "none"). */
BLZ_API const char *blz_runtime_backend(const blz_runtime *rt);

/** Number of worker threads. */
BLZ_API unsigned blz_runtime_workers(const blz_runtime *rt);

#define BLZ_METRICS_MAX_WORKERS 64
#define BLZ_POLL_BUCKETS        20 /**< see blz_metrics.poll_time_histogram */

/** One worker's figures in blz_metrics. */
typedef struct blz_worker_metrics {
    uint64_t polls;   /**< tasks it ran (one poll or fiber resume each) */
    uint64_t steals;  /**< tasks it took from other workers' queues */
    uint64_t parks;   /**< times it went to sleep for lack of work */
    uint64_t unparks; /**< times another thread woke it */
    /** Time it has spent awake (running tasks, the I/O driver and timers,
     * looking for work) since the runtime started, in nanoseconds; time
     * asleep waiting for work is not counted. busy_ns / uptime_ns is how
     * loaded the worker is. A current-thread runtime's one worker is awake
     * only inside blz_runtime_block_on. */
    uint64_t busy_ns;
    /** A moving average of the time one task run takes, in nanoseconds:
     * each batch of up to 61 runs (between two maintenance ticks, or up to a
     * park) counts a quarter. 0 until the first batch ends. */
    uint64_t mean_poll_ns;
    uint32_t local_queue_depth; /**< tasks in its local run queue */
    /** Tasks other workers took from its LIFO slot and its yielded tasks
     * while it stayed in one poll for 10 ms or more (a task that blocks or
     * spins): without that, a task it had just woken would wait for it. */
    uint64_t rescued;
    /** A spare worker (config spare_workers): how many times it joined in,
     * and whether it is out of play right now. 0 and false for the others. */
    uint64_t spare_activations;
    bool dormant;
} blz_worker_metrics;

/** A snapshot of counters; each is read atomically but the set is not a consistent cut. */
typedef struct blz_metrics {
    uint64_t tasks_spawned;
    uint64_t tasks_alive;
    uint64_t polls;   /**< the workers' sum */
    uint64_t steals;  /**< the workers' sum */
    uint64_t parks;   /**< the workers' sum */
    uint64_t unparks; /**< the workers' sum */
    uint64_t rescued; /**< the workers' sum */
    uint64_t inject_pushes;
    uint64_t io_events;
    uint64_t timers_fired;
    uint64_t blocking_threads;     /**< threads of the blocking pool */
    uint64_t blocking_idle;        /**< of those, waiting for a job */
    uint64_t blocking_queue_depth; /**< jobs queued for the blocking pool, not yet started */
    /** spawns waiting for room under blocking_queue_limit (their jobs not queued yet) */
    uint64_t blocking_spawns_waiting;
    uint64_t inject_queue_depth;
    uint64_t uptime_ns; /**< since blz_runtime_new */
    unsigned workers;
    /** The first min(workers, BLZ_METRICS_MAX_WORKERS) workers, by index
     * (the spare workers last; `workers` counts them). */
    blz_worker_metrics worker[BLZ_METRICS_MAX_WORKERS];
    /** With `poll_time_histogram` in the config: task runs by duration, all
     * workers together. Bucket 0 counts runs under 1 µs, bucket i (1 ..
     * BLZ_POLL_BUCKETS - 2) runs from 2^(i-1) up to 2^i µs, the last bucket
     * everything longer (from about 262 ms). All zero without the option. */
    uint64_t poll_time_histogram[BLZ_POLL_BUCKETS];
    /** With `sched_delay_histogram` in the config: task runs by how long the
     * task had waited since it was woken, spawned or yielded, in the same
     * buckets. All zero without the option. */
    uint64_t sched_delay_histogram[BLZ_POLL_BUCKETS];
    const char *backend;
} blz_metrics;

/** Fills `m` with the current counters of `rt`. Any thread. */
BLZ_API void blz_runtime_metrics(const blz_runtime *rt, blz_metrics *m);

/* ---- task dumps ---------------------------------------------------------- */

/** What kind of task a dump entry is. */
typedef enum blz_dump_kind {
    BLZ_DUMP_FIBER = 0,    /**< spawned with blz_spawn / blz_runtime_spawn */
    BLZ_DUMP_FUTURE = 1,   /**< a stackless future (blz_spawn_future) */
    BLZ_DUMP_BLOCKING = 2, /**< a job of the blocking pool */
} blz_dump_kind;

/** What a task hook is told about the task (blz_runtime_config.on_task_*). */
struct blz_task_meta {
    /** The task's identity while it lives (as blz_task_dump.task); never to
     * be dereferenced. */
    const void *task;
    blz_dump_kind kind;
    /** A fiber's or blocking job's function; NULL for a future, and in
     * on_task_terminate (the task's entry is gone by then). */
    blz_task_fn fn;
    /** A future's poll function (names its type); NULL otherwise, and in
     * on_task_terminate. */
    blz_poll (*future_fn)(blz_future *f, blz_context *cx);
};

/** Where a task was when the dump looked at it. */
typedef enum blz_dump_state {
    BLZ_DUMP_WAITING = 0,   /**< idle until something wakes it: what a stuck task looks like */
    BLZ_DUMP_SCHEDULED = 1, /**< woken, in a run queue */
    BLZ_DUMP_RUNNING = 2,   /**< being polled (or run, for a blocking job) right now */
    BLZ_DUMP_FINISHED = 3,  /**< it finished between being listed and being looked at */
} blz_dump_state;

#define BLZ_DUMP_FRAMES 16

/** One task of a dump. Only waiting tasks are looked into (entry, frames). */
typedef struct blz_task_dump {
    const void *task; /**< the task's identity while it lives */
    blz_dump_kind kind;
    blz_dump_state state;
    bool cancelled;       /**< an abort was requested */
    blz_task_fn fiber_fn; /**< a waiting fiber: its function */
    /** A waiting future: its poll function (names its type). */
    blz_poll (*future_fn)(blz_future *f, blz_context *cx);
    unsigned nframes; /**< a waiting fiber: frames in `frames` */
    /** A waiting fiber's stack, innermost call first: return addresses from
     * where it waits (the await that suspended it) out to its function.
     * For backtrace_symbols(3), dladdr(3) or addr2line. Empty when the fiber
     * waits too close to the end of its stack to unwind it safely, or without
     * glibc. */
    void *frames[BLZ_DUMP_FRAMES];
} blz_task_dump;

/**
 * A dump of the live tasks of `rt`, for finding what a stuck program waits
 * on (the stall watchdog finds what keeps a worker busy). Fills out[0..cap)
 * and returns how many it filled, or -EINVAL (rt NULL, out NULL with cap >
 * 0); *total (may be NULL) gets the number of live tasks, which may exceed
 * cap. Any thread, also a task of rt.
 *
 * A waiting task is held for a moment as a worker holds a task it polls, so a
 * wake that comes meanwhile is kept and acted on right after. A waiting fiber
 * is resumed on the calling thread only to unwind its stack (glibc's
 * backtrace on the fiber's stack; no frame pointers needed): none of its code
 * runs. The tasks are not a consistent snapshot: each is looked at in turn.
 */
BLZ_API int blz_runtime_dump(blz_runtime *rt, blz_task_dump *out, size_t cap, size_t *total);

/** One worker of a dump: whether it is awake, and what it is running. */
typedef struct blz_worker_dump {
    unsigned worker; /**< its index */
    int tid;         /**< its thread id (gettid); 0 before the thread first ran */
    bool awake;      /**< running tasks (or looking for some), not parked */
    /** An awake worker's call stack, innermost first, taken as a stall report
     * takes it: only while the stall watchdog is on (`stall_threshold`, with
     * `stall_signal`), else 0. The running task's code is interrupted for a
     * moment, never changed. */
    unsigned nframes;
    void *frames[BLZ_DUMP_FRAMES];
} blz_worker_dump;

/**
 * The workers of `rt` as they are now: fills out[0..min(cap, workers)) and
 * returns how many it filled, or -EINVAL (rt NULL, out NULL with cap > 0).
 * With the stall watchdog on, an awake worker's stack shows what a task that
 * keeps it is doing, which blz_runtime_dump cannot (it lists a running task
 * without looking into it). Any thread; not from a worker's own task if that
 * worker is to be looked into (its stack would be the dump's own).
 */
BLZ_API int blz_runtime_dump_workers(blz_runtime *rt, blz_worker_dump *out, size_t cap);

/**
 * blz_runtime_dump written as text to descriptor `fd`: a line per task, and
 * a waiting fiber's frames below it, then a line per worker (and an awake
 * worker's frames, with the stall watchdog on), symbolized by
 * backtrace_symbols_fd(3) (link with -rdynamic to see the names of a
 * program's own functions). 0, -EINVAL, -ENOMEM, or the write's error.
 */
BLZ_API int blz_runtime_dump_fd(blz_runtime *rt, int fd);

/**
 * Virtual time (runtimes created with paused_clock): moves the clock forward
 * by `d` and fires what became due. Returns -EINVAL when the clock is real.
 */
BLZ_API int blz_runtime_advance(blz_runtime *rt, blz_duration d);

#ifdef __cplusplus
}
#endif
#endif /* BLZ_RT_H */
