/*
 * Runtime lifecycle: configuration, creation, block_on, teardown, metrics.
 *
 * Teardown order (blz_runtime_free): refuse new spawns (closing), abort every
 * owned task, end the waits of spawns for room in the blocking pool (after the
 * aborts, so queued jobs are cancelled before any waiting spawner returns),
 * let the workers run until the last one completed, wait for the wakes from
 * other threads that queued a task to be over (outside_schedules) and for
 * the spawns that waited for room to return (blocking.spawn_calls), then
 * stop and join the workers, the blocking pool, and free the driver, the timers, the
 * stack pool and the runtime. Nothing a task can reach is freed before the
 * task completed.
 */
#include "rt/runtime.h"

#include "blitzio/rt.h"
#include "blitzio/task.h"
#include "core/alloc.h"
#include "core/atomic.h"
#include "os/unix/sys.h"
#include "rt/current.h"
#include "rt/futex.h"

#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void blz__rt_set_thread(blz_runtime *rt, blz__worker *w);
void blz__thread_cleanup(void);

/* $name as a whole decimal number from 1 to max, or 0: unset or not one. */
static long
env_number(const char *name, long max)
{
    const char *s = getenv(name); // NOLINT(concurrency-mt-unsafe): read while configuring
    if (!s || !*s) {
        return 0;
    }
    char *end;
    long v = strtol(s, &end, 10);
    return *end == '\0' && v > 0 && v <= max ? v : 0;
}

static unsigned
env_workers(void)
{
    long v = env_number("BLZ_WORKERS", BLZ_METRICS_MAX_WORKERS);
    if (v) {
        return (unsigned) v;
    }
    /* The CPUs this process may run on (taskset, cgroup cpusets), not the
     * machine's: two workers pinned to one core only take turns. */
    long n = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        n = CPU_COUNT(&set);
    }
    if (n < 1) {
        n = sysconf(_SC_NPROCESSORS_ONLN);
    }
    if (n < 1) {
        n = 1;
    }
    return n > BLZ_METRICS_MAX_WORKERS ? BLZ_METRICS_MAX_WORKERS : (unsigned) n;
}

/* $BLZ_STALL_MS: turns the stall watchdog on with that threshold. */
static blz_duration
env_stall_threshold(void)
{
    return blz_ms(env_number("BLZ_STALL_MS", 3600000 - 1));
}

/* $BLZ_RECV_BUFFERS replaces the default; 0 (or nonsense) turns completion
 * receive off. */
static unsigned
env_recv_buffers(void)
{
    const char *s =
        getenv("BLZ_RECV_BUFFERS"); // NOLINT(concurrency-mt-unsafe): read while configuring
    if (!s || !*s) {
        return BLZ_RECV_BUFFERS_DEFAULT;
    }
    return (unsigned) env_number("BLZ_RECV_BUFFERS", BLZ_RECV_BUFFERS_MAX);
}

void
blz_runtime_config_default(blz_runtime_config *cfg)
{
    if (!cfg) {
        return;
    }
    memset(cfg, 0, sizeof *cfg);
    cfg->flavor = BLZ_MULTI_THREAD;
    cfg->workers = env_workers();
    cfg->fiber_stack_size = (size_t) 64 * 1024;
    cfg->blocking_threads = 512;
    cfg->blocking_idle = blz_secs(10);
    cfg->backend = NULL;
    cfg->paused_clock = false;
    cfg->stall_threshold = env_stall_threshold();
    cfg->stall_signal = SIGURG;
    cfg->recv_buffers = env_recv_buffers();
    cfg->ring_per_worker = env_number("BLZ_RING_PER_WORKER", 1) == 1;
}

/* A signal the CPU raises for the instruction that faulted. The stall
 * handler returns from one it did not queue, and the instruction would
 * fault again at once, for ever: a crash would hang instead. */
static bool
fault_signal(int sig)
{
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGTRAP ||
           sig == SIGSYS;
}

static int
validate(const blz_runtime_config *cfg)
{
    if (cfg->flavor != BLZ_MULTI_THREAD && cfg->flavor != BLZ_CURRENT_THREAD) {
        return -EINVAL;
    }
    if (cfg->flavor == BLZ_MULTI_THREAD &&
        (cfg->workers == 0 || cfg->workers > BLZ_METRICS_MAX_WORKERS ||
         cfg->spare_workers > BLZ_METRICS_MAX_WORKERS - cfg->workers)) {
        return -EINVAL;
    }
    if (cfg->recv_buffers > BLZ_RECV_BUFFERS_MAX ||
        (cfg->recv_buffers & (cfg->recv_buffers - 1)) != 0) {
        return -EINVAL; /* a power of two, or 0 */
    }
    if (cfg->flavor == BLZ_CURRENT_THREAD && cfg->spare_workers) {
        return -EINVAL; /* its one worker is the caller of block_on */
    }
    if (cfg->blocking_threads == 0 || cfg->blocking_idle < 0) {
        return -EINVAL;
    }
    if (cfg->stall_threshold < 0) {
        return -EINVAL; /* would report every worker that ran one task for a tick */
    }
    if (cfg->fiber_stack_size > ((size_t) 1 << 30)) {
        return -EINVAL;
    }
    if (cfg->stall_signal < 0 || cfg->stall_signal >= NSIG || cfg->stall_signal == SIGKILL ||
        cfg->stall_signal == SIGSTOP || fault_signal(cfg->stall_signal)) {
        return -EINVAL;
    }
    return 0;
}

static void runtime_release(blz_runtime *rt);

int
blz_runtime_new(const blz_runtime_config *cfg_in, blz_runtime **out)
{
    if (!out) {
        return -EINVAL;
    }
    blz_runtime_config cfg;
    if (cfg_in) {
        cfg = *cfg_in;
    } else {
        blz_runtime_config_default(&cfg);
    }
    int rc = validate(&cfg);
    if (rc < 0) {
        return rc;
    }
    unsigned n = cfg.flavor == BLZ_CURRENT_THREAD ? 1 : cfg.workers + cfg.spare_workers;
    unsigned regular = n - cfg.spare_workers;
    /* The runtime and workers hold cache-aligned fields: allocate with room to
     * align, and keep the raw pointer just below the aligned one for free. */
    void *raw = blz__calloc(1, sizeof(blz_runtime) + BLZ_CACHELINE + sizeof(void *));
    if (!raw) {
        return -ENOMEM;
    }
    blz_runtime *rt = blz__align_up((char *) raw + sizeof(void *), BLZ_CACHELINE);
    ((void **) rt)[-1] = raw;
    if (cfg.manual_clock) {
        cfg.paused_clock = true;
    }
    rt->cfg = cfg;
    rt->started = blz_now();
    rt->nworkers = n;
    /* The rescue's asymmetric barrier (rt/rescue.h) needs membarrier; a
     * program that never touches the sync module may not have registered. */
    rt->rescue_on = n > 1 && (blz__sys_membarrier_ready() || blz__sys_membarrier_register() == 0);
    rt->time_sched = cfg.sched_delay_histogram;
    pthread_mutex_init(&rt->inject_lock, NULL);
    for (unsigned s = 0; s < BLZ_OWNED_SHARDS; s++) {
        atomic_init(&rt->owned[s].lock.locked, 0);
    }
    blz__blocking_init(&rt->blocking, cfg.blocking_threads, cfg.blocking_idle,
                       cfg.blocking_queue_limit);

    void *wraw = blz__calloc(1, n * sizeof(blz__worker) + BLZ_CACHELINE + sizeof(void *));
    if (!wraw) {
        runtime_release(rt);
        return -ENOMEM;
    }
    rt->workers = blz__align_up((char *) wraw + sizeof(void *), BLZ_CACHELINE);
    ((void **) rt->workers)[-1] = wraw;
    for (unsigned i = 0; i < n; i++) {
        blz__worker *w = &rt->workers[i];
        blz__local_queue_init(&w->queue);
        w->rt = rt;
        w->time_polls = cfg.poll_time_histogram;
        w->observe_polls = cfg.poll_time_histogram || cfg.sched_delay_histogram ||
                           cfg.on_before_task_poll || cfg.on_after_task_poll;
        w->index = i;
        w->rng = 0x9e3779b9u * (i + 1);
        w->spare = i >= regular; /* starts dormant: its bit stays clear */
    }
    /* One worker thread and nothing else ever parks in the driver: it may
     * tie the kernel's I/O work to that thread (io/driver.h); with
     * ring_per_worker, each of n workers to a ring of its own. Not with
     * spares: a spare sleeps dormant for long stretches and could serve no
     * ring. */
    rt->io_owners =
        cfg.flavor == BLZ_MULTI_THREAD && cfg.spare_workers == 0 && (n == 1 || cfg.ring_per_worker)
            ? n
            : 0;
    atomic_init(&rt->active_mask, regular >= 64 ? ~(uint64_t) 0 : (((uint64_t) 1 << regular) - 1));
    if ((rc = blz__timers_init(&rt->timers, cfg.paused_clock)) < 0 ||
        (rc = blz__io_driver_new(&(blz__io_options){cfg.backend, cfg.recv_buffers, rt->io_owners},
                                 &rt->io)) < 0 ||
        (rc = blz__stack_pool_new(cfg.fiber_stack_size, &rt->stacks)) < 0) {
        runtime_release(rt);
        return rc;
    }
    rt->io_rings = blz__io_driver_rings(rt->io);
    if (cfg.flavor == BLZ_MULTI_THREAD) {
        for (unsigned i = 0; i < n; i++) {
            blz__worker *w = &rt->workers[i];
            if ((rc = -pthread_create(&w->thread, NULL, blz__worker_thread_main, w)) < 0) {
                runtime_release(rt);
                return rc;
            }
            w->thread_started = true;
        }
    }
    if ((rc = blz__watchdog_start(rt)) < 0) {
        runtime_release(rt);
        return rc;
    }
    *out = rt;
    return 0;
}

/* Joins a worker told to stop. One asleep in the driver exits on the wake
 * its stop sent; should a backend ever swallow that wake, waking again every
 * 10 ms turns a hang into a short delay. */
static void
join_worker(blz_runtime *rt, blz__worker *w)
{
    for (;;) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10L * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (pthread_timedjoin_np(w->thread, NULL, &ts) == 0) {
            return;
        }
        blz__futex_wake(&w->park_state, 1);
        if (rt->io) {
            blz__io_driver_wake(rt->io);
        }
    }
}

/* Stops the threads and frees everything; tasks must be gone. */
static void
runtime_release(blz_runtime *rt)
{
    blz__watchdog_stop(rt); /* it reads the workers */
    blz__store(&rt->shutdown, true, SEQ_CST);
    if (rt->workers) {
        for (unsigned i = 0; i < rt->nworkers; i++) {
            blz__worker *w = &rt->workers[i];
            if (w->thread_started) {
                (void) blz__exchange(&w->park_state, BLZ_PARK_NOTIFIED, ACQ_REL);
                blz__futex_wake(&w->park_state, 1);
                if (rt->io) {
                    blz__io_driver_wake(rt->io);
                }
            }
        }
        for (unsigned i = 0; i < rt->nworkers; i++) {
            if (rt->workers[i].thread_started) {
                join_worker(rt, &rt->workers[i]);
            }
        }
    }
    blz__watchdog_free(rt);
    blz__blocking_fini(&rt->blocking);
    if (rt->io) {
        blz__io_driver_free(rt->io);
    }
    blz__timers_fini(&rt->timers);
    if (rt->stacks) {
        blz__stack_pool_free(rt->stacks);
    }
    pthread_mutex_destroy(&rt->inject_lock);
    if (rt->workers) {
        blz__free(((void **) rt->workers)[-1]);
    }
    blz__free(((void **) rt)[-1]);
}

typedef struct until_ctx {
    blz__task *task;
    blz_runtime *rt;
} until_ctx;

static bool
task_done(void *arg)
{
    until_ctx *u = arg;
    return (blz__load(&u->task->state, ACQUIRE) & BLZ_TASK_COMPLETE) != 0;
}

static bool
all_done(void *arg)
{
    until_ctx *u = arg;
    return blz__owned_alive(u->rt) == 0;
}

/* Current-thread flavour: this thread becomes the runtime's only worker until
 * done(). The caller holds the drive (take_drive). */
static void
drive_here(blz_runtime *rt, bool (*done)(void *), void *ctx)
{
    blz_runtime *prev_rt = blz__rt_current();
    blz__worker *prev_w = blz__worker_current();
    blz__rt_set_thread(rt, &rt->workers[0]);
    blz__worker_run(&rt->workers[0], done, ctx);
    blz__rt_set_thread(prev_rt, prev_w);
}

/* A current-thread runtime's one worker has one owner at a time: two threads
 * in block_on (or a block_on and a free) would otherwise both run its loop
 * and its queue. Whoever does not get the drive waits on drive_seq, which
 * the driver bumps when it lets go, and which a waiter's own task bumps when
 * it finishes (drive_waker), since the driver may go on with a task of its
 * own for a long time. */
static bool
take_drive(blz_runtime *rt)
{
    return !blz__exchange(&rt->driving, true, ACQ_REL);
}

static void
drive_seq_bump(blz_runtime *rt)
{
    blz__fetch_add(&rt->drive_seq, 1, RELEASE);
    blz__futex_wake(&rt->drive_seq, 1 << 30);
}

static void
release_drive(blz_runtime *rt)
{
    blz__store(&rt->driving, false, RELEASE);
    drive_seq_bump(rt);
}

static void
drive_waker_wake(void *data)
{
    drive_seq_bump(data);
}

static void *
drive_waker_clone(void *data)
{
    return data;
}

static void
drive_waker_drop(void *data)
{
    (void) data;
}

/* The runtime outlives every clone: a block_on waits until its task, which
 * holds the clone, has finished and woken it. */
static const blz_waker_vtable drive_waker_vt = {drive_waker_wake, drive_waker_wake,
                                                drive_waker_clone, drive_waker_drop};

/* Current-thread block_on: drives the runtime until the task of `j` is done,
 * or waits for it while another thread drives. Consumes `j`. */
static int
drive_until_joined(blz_runtime *rt, blz_join *j, void **result)
{
    blz_join_future jf;
    blz_join_wait_fut(j, &jf);
    blz_waker waker = {&drive_waker_vt, rt};
    blz_context cx = {&waker};
    until_ctx u = {(blz__task *) (void *) j, rt};
    for (;;) {
        uint32_t seq = blz__load(&rt->drive_seq, ACQUIRE);
        if (blz_future_poll(&jf.base, &cx) == BLZ_READY) {
            break;
        }
        if (take_drive(rt)) {
            drive_here(rt, task_done, &u);
            release_drive(rt);
            continue; /* ready now, unless the runtime is shutting down */
        }
        blz__futex_wait(&rt->drive_seq, seq, UINT64_MAX);
    }
    if (result) {
        *result = jf.output;
    }
    return jf.base.result;
}

int
blz_runtime_block_on(blz_runtime *rt, blz_task_fn fn, void *arg, void **result)
{
    if (!rt || !fn) {
        return -EINVAL;
    }
    if (blz__worker_current() != NULL) {
        return -EDEADLK; /* a worker must never block */
    }
    bool current = rt->cfg.flavor == BLZ_CURRENT_THREAD;
    if (current) {
        blz__fetch_add(&rt->block_ons, 1, RELAXED);
    }
    blz_join *j;
    int rc = blz_runtime_spawn(rt, fn, arg, &j);
    if (rc < 0) {
        if (current) {
            blz__fetch_sub(&rt->block_ons, 1, RELEASE);
        }
        return rc;
    }
    if (current) {
        rc = drive_until_joined(rt, j, result);
        /* The last touch of rt: a free waits for it (block_ons). */
        blz__fetch_sub(&rt->block_ons, 1, RELEASE);
        return rc;
    }
    return blz_join_wait(j, result);
}

void
blz_runtime_free(blz_runtime *rt)
{
    if (!rt) {
        return;
    }
    blz__store(&rt->closing, true, SEQ_CST);
    blz__owned_abort_all(rt);
    blz__blocking_close_slots(&rt->blocking); /* spawns waiting for room end now */
    if (rt->cfg.flavor == BLZ_CURRENT_THREAD) {
        /* A block_on still driving on another thread ends soon: its task
         * was aborted above. */
        for (;;) {
            uint32_t seq = blz__load(&rt->drive_seq, ACQUIRE);
            if (take_drive(rt)) {
                break;
            }
            blz__futex_wait(&rt->drive_seq, seq, UINT64_MAX);
        }
        until_ctx u = {NULL, rt};
        drive_here(rt, all_done, &u);
        release_drive(rt);
        /* A block_on that waited while another thread drove may still be on
         * its way out, its task done: it reads rt until it counts itself
         * out, which it does next without waiting for anything. */
        while (blz__load(&rt->block_ons, ACQUIRE) != 0) {
            sched_yield();
        }
    } else {
        for (;;) {
            uint32_t seq = blz__load(&rt->tasks_alive_seq, ACQUIRE);
            if (blz__owned_alive(rt) == 0) {
                break;
            }
            blz__futex_wait(&rt->tasks_alive_seq, seq, UINT64_MAX);
        }
    }
    /* A thread outside the runtime that queued the last task (a wake, an
     * abort) may still be inside blz__schedule, which touches rt after the
     * push that let the task finish; and a spawn whose wait for room the
     * slots' closing ended polls the pool once more. Each count's decrement
     * is the call's last touch: nothing can wake us after it, so yield
     * until both are 0. Acquire pairs with those release decrements. */
    while (blz__load(&rt->outside_schedules, ACQUIRE) != 0 ||
           blz__load(&rt->blocking.spawn_calls, ACQUIRE) != 0) {
        sched_yield();
    }
    runtime_release(rt);
    /* The calling thread's parker and cell cache, so allocation counts settle to zero. */
    blz__thread_cleanup();
}

int
blz_run(blz_task_fn fn, void *arg)
{
    blz_runtime *rt;
    int rc = blz_runtime_new(NULL, &rt);
    if (rc < 0) {
        return rc;
    }
    rc = blz_runtime_block_on(rt, fn, arg, NULL);
    blz_runtime_free(rt);
    return rc;
}

const char *
blz_runtime_backend(const blz_runtime *rt)
{
    return rt && rt->io ? blz__io_driver_name(rt->io) : "none";
}

unsigned
blz_runtime_workers(const blz_runtime *rt)
{
    return rt ? rt->nworkers : 0;
}

int
blz_runtime_advance(blz_runtime *rt, blz_duration d)
{
    if (!rt) {
        return -EINVAL;
    }
    int rc = blz__timers_advance(&rt->timers, d);
    if (rc < 0) {
        return rc;
    }
    /* Fire what became due now, so it is queued before this call returns. A driver
     * that meanwhile declined to jump the clock (what this fire woke was not queued
     * yet: blz__timers_quiet) sleeps until woken: wake it to look again. */
    if (blz__timers_fire(&rt->timers)) {
        blz__rt_wake_driver(rt);
    }
    return 0;
}

void
blz_runtime_metrics(const blz_runtime *rt_c, blz_metrics *m)
{
    if (!rt_c || !m) {
        return;
    }
    /* Metrics only read; the locks taken on the way are not const. */
    blz_runtime *rt = (blz_runtime *) (uintptr_t) rt_c; // NOLINT(performance-no-int-to-ptr)
    memset(m, 0, sizeof *m);
    m->tasks_spawned = blz__owned_spawned(rt);
    m->tasks_alive = blz__owned_alive(rt);
    m->inject_pushes = blz__load(&rt->inject_pushes, RELAXED);
    m->inject_queue_depth = blz__load(&rt->inject_len, RELAXED);
    m->workers = rt->nworkers;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        blz_worker_metrics wm;
        blz__worker_metrics(&rt->workers[i], &wm, m->poll_time_histogram, m->sched_delay_histogram);
        m->polls += wm.polls;
        m->steals += wm.steals;
        m->rescued += wm.rescued;
        m->parks += wm.parks;
        m->unparks += wm.unparks;
        if (i < BLZ_METRICS_MAX_WORKERS) {
            m->worker[i] = wm;
        }
    }
    m->io_events = rt->io ? blz__io_driver_events(rt->io) : 0;
    m->timers_fired = blz__load(&rt->timers.fired, RELAXED);
    pthread_mutex_lock(&rt->blocking.lock);
    m->blocking_threads = rt->blocking.threads;
    m->blocking_idle = rt->blocking.idle + rt->blocking.spinning;
    m->blocking_queue_depth = rt->blocking.queued;
    m->blocking_spawns_waiting = rt->blocking.waiting;
    pthread_mutex_unlock(&rt->blocking.lock);
    m->uptime_ns = blz_now() - rt->started; /* after every worker's figures: no busy_ns above it */
    m->backend = blz_runtime_backend(rt);
}
