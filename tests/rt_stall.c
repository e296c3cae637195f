/*
 * The stall watchdog: a task that keeps its worker past the threshold is
 * reported once, with the worker's index and thread and the stack it is
 * stuck in (taken by a signal on the stalled thread, on an alternate stack
 * even when the fiber's own is nearly full); parked workers, an idle
 * current-thread runtime between block_on calls, and a runtime without a
 * threshold report nothing.
 */
#ifndef _GNU_SOURCE
# define _GNU_SOURCE
#endif
#include "blitzio.h"
#include "harness.h"
#include "rt_util.h"

#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Long enough that a loaded machine keeping a busy worker off its CPU (which
 * the watchdog rightly reports) is unlikely to look like one in these tests. */
#define THRESHOLD_MS 200

typedef struct stall_log {
    _Atomic int reports;     /* every report */
    _Atomic int hog_tid;     /* the thread the hog runs on, once it runs */
    _Atomic int hog_reports; /* reports of that thread */
    _Atomic unsigned worker; /* of the last report of the hog's thread */
    _Atomic int64_t stalled;
} stall_log;

static void
record(const blz_stall_info *info, void *arg)
{
    stall_log *log = arg;
    if (info->tid == atomic_load(&log->hog_tid)) {
        atomic_store(&log->worker, info->worker);
        atomic_store(&log->stalled, info->stalled);
        atomic_fetch_add(&log->hog_reports, 1); /* last: the fields are set when it moves */
    }
    atomic_fetch_add(&log->reports, 1);
}

static blz_runtime *
watched_rt(blz_flavor flavor, stall_log *log, int64_t threshold_ms)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.flavor = flavor;
    cfg.workers = 2;
    cfg.stall_threshold = blz_ms(threshold_ms);
    cfg.on_stall = record;
    cfg.on_stall_arg = log;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    return rt;
}

/* Keeps its worker without ever yielding: until the watchdog has reported
 * it (at most 20 s), then four thresholds more, to see it is reported once. */
static void *
hog_task(void *arg)
{
    stall_log *log = arg;
    atomic_store(&log->hog_tid, (int) syscall(SYS_gettid));
    int64_t start = wall_ms();
    while (atomic_load(&log->hog_reports) == 0 && wall_ms() - start < 20000) {
    }
    int64_t reported = wall_ms();
    while (wall_ms() - reported < 4 * THRESHOLD_MS) {
    }
    return NULL;
}

static void *
hog_main(void *arg)
{
    blz_join *j;
    CHECK_OK(blz_spawn(hog_task, arg, &j));
    CHECK_OK(blz_join_wait(j, NULL));
    return NULL;
}

BLZ_TEST(stall_reported_once_with_worker_and_thread)
{
    stall_log log = {0};
    atomic_store(&log.hog_tid, -1);
    blz_runtime *rt = watched_rt(BLZ_MULTI_THREAD, &log, THRESHOLD_MS);
    CHECK_OK(blz_runtime_block_on(rt, hog_main, &log, NULL));
    blz_runtime_free(rt);
    CHECK_EQ(atomic_load(&log.hog_reports), 1); /* its thread, once */
    CHECK_LT(atomic_load(&log.worker), 2u);
    CHECK_GE(atomic_load(&log.stalled), blz_ms(THRESHOLD_MS));
}

static void *
quick_task(void *arg)
{
    return arg;
}

BLZ_TEST(stall_reported_on_the_current_thread_flavour)
{
    stall_log log = {0};
    atomic_store(&log.hog_tid, -1);
    blz_runtime *rt = watched_rt(BLZ_CURRENT_THREAD, &log, THRESHOLD_MS);
    CHECK_OK(blz_runtime_block_on(rt, hog_task, &log, NULL));
    CHECK_EQ(atomic_load(&log.hog_tid), (int) syscall(SYS_gettid)); /* this thread ran it */
    CHECK_EQ(atomic_load(&log.hog_reports), 1);
    CHECK_EQ(atomic_load(&log.worker), 0u);
    /* Between block_on calls nobody runs the worker: that is not a stall.
     * (A short task first, so that the idle time follows a fresh poll.) */
    CHECK_OK(blz_runtime_block_on(rt, quick_task, NULL, NULL));
    struct timespec idle = {0, 3 * THRESHOLD_MS * 1000000L};
    nanosleep(&idle, NULL);
    blz_runtime_free(rt);
    CHECK_EQ(atomic_load(&log.hog_reports), 1); /* this thread: the hog only */
}

static void *
sleeper(void *arg)
{
    (void) arg;
    CHECK_OK(blz_sleep(blz_ms(3 * THRESHOLD_MS))); /* every worker parks meanwhile */
    for (int i = 0; i < 10000; i++) {
        blz_yield(); /* busy, but back at the scheduler every poll */
    }
    return NULL;
}

BLZ_TEST(no_stall_for_parked_or_yielding_workers)
{
    stall_log log = {0};
    blz_runtime *rt = watched_rt(BLZ_MULTI_THREAD, &log, THRESHOLD_MS);
    CHECK_OK(blz_runtime_block_on(rt, sleeper, NULL, NULL));
    blz_runtime_free(rt);
    CHECK_EQ(atomic_load(&log.reports), 0);
}

BLZ_TEST(no_watchdog_without_a_threshold)
{
    stall_log log = {0};
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 2;
    cfg.stall_threshold = 0;
    cfg.on_stall = record;
    cfg.on_stall_arg = &log;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    /* The hook never runs, so the hog is let go by hand. */
    blz_join *j;
    atomic_store(&log.hog_reports, -1); /* ends the hog's wait at once */
    CHECK_OK(blz_runtime_spawn(rt, hog_task, &log, &j));
    CHECK_OK(blz_join_wait(j, NULL));
    blz_runtime_free(rt);
    CHECK_EQ(atomic_load(&log.reports), 0); /* the hook never ran */
}

/* ---- backtraces ------------------------------------------------------------ */

enum { MAX_SEEN = 64 };

typedef struct stack_log {
    _Atomic int reports;
    _Atomic int nframes;
    void *frames[MAX_SEEN];
    void *_Atomic site; /* where spin_here returns to */
    _Atomic bool stop;
    _Atomic unsigned deep_filled;
} stack_log;

static void
record_stack(const blz_stall_info *info, void *arg)
{
    stack_log *log = arg;
    unsigned n = info->nframes < MAX_SEEN ? info->nframes : MAX_SEEN;
    for (unsigned i = 0; i < n; i++) {
        log->frames[i] = info->frames[i];
    }
    atomic_store(&log->nframes, (int) n);
    atomic_fetch_add(&log->reports, 1); /* last: the frames are in when it moves */
}

/* A runtime whose stall reports land in `log` (cleared here); `threshold`
 * 0 leaves the watchdog off, `stack` 0 keeps the default fiber stack. */
static blz_runtime *
stack_watched_rt(stack_log *log, unsigned workers, size_t stack, blz_duration threshold, int signo)
{
    memset(log, 0, sizeof *log);
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = workers;
    if (stack) {
        cfg.fiber_stack_size = stack;
    }
    cfg.stall_threshold = threshold;
    cfg.stall_signal = signo;
    cfg.on_stall = record_stack;
    cfg.on_stall_arg = log;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    return rt;
}

/* Runs fn(arg) as a fiber of rt to its end, then frees rt. */
static void
run_and_free(blz_runtime *rt, blz_task_fn fn, void *arg)
{
    blz_join *j;
    CHECK_OK(blz_runtime_spawn(rt, fn, arg, &j));
    CHECK_OK(blz_join_wait(j, NULL));
    blz_runtime_free(rt);
}

/* Not inlined: its return address is the frame the backtrace must reach. */
static __attribute__((noinline)) void
spin_here(stack_log *log)
{
    atomic_store(&log->site, __builtin_return_address(0));
    int64_t start = wall_ms();
    while (atomic_load(&log->reports) == 0 && !atomic_load(&log->stop) &&
           wall_ms() - start < 20000) {
    }
    __asm__ __volatile__(""); /* no tail call: spin_here stays on the stack */
}

static void *
spinning_fiber(void *arg)
{
    spin_here(arg);
    return NULL;
}

/* Spins with its fiber's 16 KiB stack nearly used up: the signal's frame and
 * the unwinder would not fit below it, so they must go to the alternate stack. */
static void *
deep_spinning_fiber(void *arg)
{
    stack_log *log = arg;
    volatile unsigned char fill[12 * 1024];
    for (size_t i = 0; i < sizeof fill; i += 512) {
        fill[i] = (unsigned char) i;
    }
    spin_here(log);
    unsigned sum = 0;
    for (size_t i = 0; i < sizeof fill; i += 512) {
        sum += fill[i];
    }
    atomic_store(&log->deep_filled, sum);
    return NULL;
}

static void
check_stack_reported(blz_task_fn fiber, size_t stack)
{
    static stack_log log;
    blz_runtime *rt = stack_watched_rt(&log, 2, stack, blz_ms(THRESHOLD_MS), SIGURG);
    run_and_free(rt, fiber, &log);
    CHECK_GE(atomic_load(&log.reports), 1);
    int n = atomic_load(&log.nframes);
    if (UNDER_TSAN || blz_test_emulator()) {
        /* ThreadSanitizer holds a signal until the thread makes a call it
         * intercepts (the spin makes none); under qemu-user the unwinder
         * may not step through the emulator's signal frame. Either way the
         * report must still come, with or without frames. */
        return;
    }
    void *site = atomic_load(&log.site);
    bool found = false;
    for (int i = 0; i < n; i++) {
        found = found || log.frames[i] == site;
    }
    CHECK_GT(n, 1);
    CHECK(found); /* the stack reaches spin_here's caller */
}

BLZ_TEST(stall_report_has_the_stalled_stack)
{
    check_stack_reported(spinning_fiber, 64 * 1024);
}

BLZ_TEST(stall_backtrace_of_a_nearly_full_fiber_stack)
{
    check_stack_reported(deep_spinning_fiber, 16 * 1024);
}

/* A dump of the workers while one of them spins: with the watchdog on (its
 * threshold far away, so no stall report interferes), the spinning worker's
 * stack reaches spin_here's caller; without it, no stacks, same flags. */
static void
check_worker_dump(bool watchdog)
{
    static stack_log log;
    blz_runtime *rt = stack_watched_rt(&log, 2, 0, watchdog ? blz_secs(60) : 0, SIGURG);
    blz_join *j;
    CHECK_OK(blz_runtime_spawn(rt, spinning_fiber, &log, &j));
    WAIT_UNTIL(atomic_load(&log.site) != NULL, nanosleep(&(struct timespec){0, 1000000}, NULL));
    blz_worker_dump d[4];
    int n = blz_runtime_dump_workers(rt, d, 4);
    CHECK_EQ(n, 2);
    int awake = 0, found = 0;
    for (int w = 0; w < n; w++) {
        CHECK_EQ(d[w].worker, (unsigned) w);
        if (d[w].awake) {
            CHECK_GT(d[w].tid, 0); /* 0 only before its thread first ran */
        }
        awake += d[w].awake;
        for (unsigned f = 0; f < d[w].nframes; f++) {
            found += d[w].frames[f] == atomic_load(&log.site);
        }
        if (!watchdog) {
            CHECK_EQ(d[w].nframes, 0);
        }
    }
    CHECK_GE(awake, 1); /* the spinning one at least */
    if (watchdog && !UNDER_TSAN && !blz_test_emulator()) {
        CHECK_EQ(found, 1);
    }
    CHECK_EQ(blz_runtime_dump_workers(rt, d, 1), 1); /* cap respected */
    CHECK_EQ(blz_runtime_dump_workers(NULL, d, 1), -EINVAL);
    CHECK_EQ(blz_runtime_dump_workers(rt, NULL, 1), -EINVAL);
    atomic_store(&log.stop, true);
    CHECK_OK(blz_join_wait(j, NULL));
    blz_runtime_free(rt);
}

BLZ_TEST(worker_dump_shows_what_a_busy_worker_runs)
{
    check_worker_dump(true);
}

BLZ_TEST(worker_dump_without_the_watchdog_has_no_stacks)
{
    check_worker_dump(false);
}

static void *
stopping_hog(void *arg)
{
    stack_log *log = arg;
    int64_t start = wall_ms();
    while (!atomic_load(&log->stop) && wall_ms() - start < 3 * THRESHOLD_MS) {
    }
    return NULL;
}

BLZ_TEST(no_backtrace_when_the_program_handles_the_signal)
{
    /* The program owns SIGUSR2: the runtime must leave its handler alone and
     * report stalls without frames. */
    struct sigaction mine, old;
    memset(&mine, 0, sizeof mine);
    mine.sa_handler = SIG_IGN;
    CHECK_EQ(sigaction(SIGUSR2, &mine, &old), 0);
    static stack_log log;
    run_and_free(stack_watched_rt(&log, 1, 0, blz_ms(THRESHOLD_MS), SIGUSR2), stopping_hog, &log);
    CHECK_EQ(atomic_load(&log.reports), 1);
    CHECK_EQ(atomic_load(&log.nframes), 0);
    struct sigaction now;
    CHECK_EQ(sigaction(SIGUSR2, NULL, &now), 0);
    CHECK(now.sa_handler == SIG_IGN && !(now.sa_flags & SA_SIGINFO)); /* untouched */
    CHECK_EQ(sigaction(SIGUSR2, &old, NULL), 0);
}

/* Listening for the stall signal through the signal module would hand the
 * watchdog's probes to listeners: refused once the watchdog's handler is in. */
static void *
listen_to(void *arg)
{
    blz_signal_listener l;
    int rc = blz_signal_listen(&l, (int) (intptr_t) arg);
    if (rc == 0) {
        blz_signal_unlisten(&l);
    }
    return (void *) (intptr_t) rc;
}

BLZ_TEST(signal_module_refuses_the_stall_signal)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 1;
    cfg.stall_threshold = blz_ms(THRESHOLD_MS);
    cfg.stall_signal = SIGUSR1;
    blz_runtime *rt;
    /* Before any watchdog took it, SIGUSR1 is the program's to listen to. */
    void *rc;
    CHECK_OK(blz_runtime_new(NULL, &rt));
    CHECK_OK(blz_runtime_block_on(rt, listen_to, (void *) (intptr_t) SIGUSR1, &rc));
    CHECK_EQ((int) (intptr_t) rc, 0);
    blz_runtime_free(rt);
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    CHECK_OK(blz_runtime_block_on(rt, listen_to, (void *) (intptr_t) SIGUSR1, &rc));
    CHECK_EQ((int) (intptr_t) rc, -EBUSY);
    CHECK_OK(blz_runtime_block_on(rt, listen_to, (void *) (intptr_t) SIGUSR2, &rc));
    CHECK_EQ((int) (intptr_t) rc, 0); /* other signals are unaffected */
    blz_runtime_free(rt);
}

/* A watchdog's install and a listen of the same signal, started together:
 * exactly one of them may take it. Before both looked and installed under
 * one lock, both could see the default and the watchdog's handler replace
 * the listener's, whose deliveries were then lost. The handler stays for
 * the life of a process, so each round runs in a child of its own. */
static atomic_int race_go;

static void *
race_watchdog(void *arg)
{
    (void) arg;
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 1;
    cfg.stall_threshold = blz_ms(60 * 1000);
    cfg.stall_signal = SIGUSR2;
    while (!atomic_load(&race_go)) {
    }
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    return rt;
}

static void *
race_listen(void *arg)
{
    while (!atomic_load(&race_go)) {
    }
    return (void *) (intptr_t) blz_signal_listen(arg, SIGUSR2);
}

/* One round in this (child) process: 0 when exactly one side took SIGUSR2. */
static int
race_round(void)
{
    blz_runtime *rt = test_runtime(1, 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, race_watchdog, NULL), 0);
    blz_signal_listener l;
    blz_join *j;
    CHECK_OK(blz_runtime_spawn(rt, race_listen, &l, &j));
    atomic_store(&race_go, 1);
    void *out = NULL;
    CHECK_OK(blz_join_wait(j, &out));
    CHECK_EQ(pthread_join(th, NULL), 0);
    struct sigaction now;
    CHECK_OK(sigaction(SIGUSR2, NULL, &now));
    bool watchdog_has_it = (now.sa_flags & SA_SIGINFO) != 0;
    int listened = (int) (intptr_t) out;
    if (listened == 0) {
        return watchdog_has_it ? 1 : 0; /* 1: the listener's handler was replaced */
    }
    return listened == -EBUSY && watchdog_has_it ? 0 : 2;
}

BLZ_TEST(stall_install_and_listen_race_for_one_signal)
{
    blz_instant until = blz_now() + blz_ms(3000); /* rounds, not time, are the point */
    for (int round = 0; round < 300 && blz_now() < until; round++) {
        pid_t pid = fork();
        CHECK_OK(pid);
        if (pid == 0) {
            _exit(race_round());
        }
        int status = 0;
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "round %d: child status %#x\n", round, (unsigned) status);
        }
        CHECK(WIFEXITED(status));
        CHECK_EQ(WEXITSTATUS(status), 0);
    }
}

BLZ_TEST(stall_signal_out_of_range_is_einval)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    blz_runtime *rt = NULL;
    cfg.stall_signal = -1;
    CHECK_EQ(blz_runtime_new(&cfg, &rt), -EINVAL);
    cfg.stall_signal = SIGKILL;
    CHECK_EQ(blz_runtime_new(&cfg, &rt), -EINVAL);
    cfg.stall_signal = 4096;
    CHECK_EQ(blz_runtime_new(&cfg, &rt), -EINVAL);
    /* The signals of a fault: the handler, finding no probe, returns, and
     * the faulting instruction runs again, and faults again, for ever: a
     * crash would become a hang. */
    int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS};
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        cfg.stall_signal = faults[i];
        CHECK_EQ(blz_runtime_new(&cfg, &rt), -EINVAL);
    }
    CHECK_PTR_EQ(rt, NULL);
}
