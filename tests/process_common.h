/*
 * tests/process_common.h — helpers shared by the process_* tests: a runtime
 * on the backend ctest asked for (skip with the reason when it is not
 * available), reading a pipe to end-of-file, command construction in one
 * call, and zombie checks through /proc.
 */
#ifndef BLZ_TEST_PROCESS_COMMON_H
#define BLZ_TEST_PROCESS_COMMON_H

#include "blitzio.h"
#include "blitzio/process.h"
#include "blitzio/task.h"
#include "blitzio/time.h"
#include "harness.h"
#include "io/driver.h"
#include "rt/current.h"
#include "rt_util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs fn(arg) as a fiber on a fresh runtime and frees it; returns fn's value. */
static inline void *
proc_run(unsigned workers, blz_task_fn fn, void *arg)
{
    return backend_run(workers, fn, arg);
}

/* A command for the NULL-terminated argument list (argv[0] is the program). */
static inline blz_command *
proc_cmd(const char *const *argv)
{
    blz_command *cmd = NULL;
    CHECK_OK(blz_command_new(argv[0], &cmd));
    CHECK_OK(blz_command_args(cmd, argv + 1));
    return cmd;
}

/* Reads `p` to end-of-file into a malloc'ed, NUL-terminated buffer. */
static inline char *
proc_read_all(blz_pipe *p, size_t *len_out)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    CHECK(buf != NULL);
    for (;;) {
        if (cap - len < 2048) {
            cap *= 2;
            buf = realloc(buf, cap);
            CHECK(buf != NULL);
        }
        ssize_t n = CHECK_OK(blz_pipe_read(p, buf + len, cap - len - 1));
        if (n == 0) {
            break;
        }
        len += (size_t) n;
    }
    buf[len] = '\0';
    if (len_out) {
        *len_out = len;
    }
    return buf;
}

/* The state letter of /proc/<pid>/stat ('R', 'S', 'Z'...), or 0 when gone. */
static inline char
proc_state(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    return blz_test_stat_state(path);
}

/* True when /proc/<pid> names a process whose parent is this process: a
 * recycled PID of someone else's process does not count. */
static inline int
proc_is_our_child(int pid)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    const char *fields = blz_test_stat_fields(path, line, sizeof line);
    int ppid = 0;
    char st = 0;
    if (!fields || sscanf(fields, " %c %d", &st, &ppid) != 2) {
        return 0;
    }
    return ppid == (int) getpid();
}

/* Waits (sleeping in the task) until `pid` is no longer a child of ours,
 * i.e. it was reaped; fails the test after `secs` seconds. */
static inline void
proc_wait_gone(int pid, int secs)
{
    blz_instant deadline = blz_instant_add(blz_now(), blz_secs(secs));
    while (proc_is_our_child(pid)) {
        if (blz_now() > deadline) {
            fprintf(stderr, "pid %d still a child of ours (state %c) after %d s\n", pid,
                    proc_state(pid), secs);
            CHECK(!"child not reaped");
        }
        CHECK_OK(blz_sleep(blz_ms(5)));
    }
}

/*
 * Whether this process has no child left, not even a zombie: waitid(P_ALL)
 * fails with ECHILD. WNOWAIT: the check never reaps anything itself, so it
 * cannot hide a child blitzio failed to reap. (errno is only read here,
 * never written: a fiber moves between threads, and ThreadSanitizer would
 * see a fiber's write to a thread's errno as a race with that thread.)
 * `*pid_out` gets the PID of a zombie left, or 0 when only running children.
 * Never inlined: errno's address (__errno_location, a const function) may
 * otherwise be computed once in the caller and reused after the fiber moved
 * to another thread, reading that other thread's errno.
 */
static __attribute__((noinline)) int
proc_no_children(int *pid_out)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int r = waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT);
    if (pid_out) {
        *pid_out = r == 0 ? (int) si.si_pid : -1;
    }
    return r == -1 && errno == ECHILD;
}

/* No child of this process is left, not even a zombie. */
static inline void
proc_check_no_children(void)
{
    int pid;
    if (!proc_no_children(&pid)) {
        fprintf(stderr, "a child is left (zombie pid %d, or 0 when still running)\n", pid);
        CHECK(!"a child (or zombie) is left");
    }
}

/* Waits (sleeping in the task) until no child is left; fails after `secs`. */
static inline void
proc_wait_no_children(int secs)
{
    blz_instant deadline = blz_instant_add(blz_now(), blz_secs(secs));
    while (!proc_no_children(NULL)) {
        CHECK(blz_now() <= deadline);
        CHECK_OK(blz_sleep(blz_ms(5)));
    }
}

#endif
