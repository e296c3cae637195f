/*
 * What a child inherits and how children end: no descriptor of the runtime
 * leaks into a child (it lists its own /proc/self/fd), children freed without
 * a wait are reaped (no zombie), kill_on_drop, kill until reaped, and the
 * PID-tracking fallback used when pidfd_open fails.
 */
#include "process/process.h"
#include "process_common.h"

#include <dirent.h>
#include <fcntl.h>

#define MAXFD 1024

/* Marks the descriptors of this process that a child would inherit (open
 * without FD_CLOEXEC). Returns how many. */
static int
inheritable_fds(unsigned char *mark)
{
    memset(mark, 0, MAXFD);
    int n = 0;
    for (int fd = 0; fd < MAXFD; fd++) {
        int fl = fcntl(fd, F_GETFD);
        if (fl >= 0 && !(fl & FD_CLOEXEC)) {
            mark[fd] = 1;
            n++;
        }
    }
    return n;
}

/* Parses the names `ls -1 /proc/self/fd` printed into a set. Returns the count. */
static int
parse_fd_list(const char *text, unsigned char *set)
{
    memset(set, 0, MAXFD);
    int n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        long fd = strtol(p, &end, 10);
        CHECK(end != p && (*end == '\n' || *end == '\0'));
        CHECK(fd >= 0 && fd < MAXFD);
        set[fd] = 1;
        n++;
        p = *end ? end + 1 : end;
    }
    return n;
}

static unsigned char before_rt[MAXFD]; /* inheritable before the runtime existed */

/* The child's descriptors: exactly 0, 1, 2, whatever this process left
 * inheritable before blitzio ran (nothing, normally), and the one `ls`
 * opened to read the directory. Several other children, pipes and pidfds
 * are alive meanwhile, and every descriptor the runtime made is CLOEXEC. */
static void *
cloexec_main(void *arg)
{
    (void) arg;
    /* Others alive at the same time: their pipes and pidfds are open here. */
    blz_command *busy = proc_cmd((const char *[]){"/bin/cat", NULL});
    CHECK_OK(blz_command_stdin(busy, BLZ_STDIO_PIPED));
    CHECK_OK(blz_command_stdout(busy, BLZ_STDIO_PIPED));
    CHECK_OK(blz_command_stderr(busy, BLZ_STDIO_PIPED));
    blz_child *others[3];
    for (int i = 0; i < 3; i++) {
        CHECK_OK(blz_command_spawn(busy, &others[i]));
    }

    /* Every descriptor this process gained since the start is close-on-exec. */
    unsigned char now[MAXFD];
    (void) inheritable_fds(now);
    for (int fd = 0; fd < MAXFD; fd++) {
        if (now[fd] && !before_rt[fd]) {
            fprintf(stderr, "fd %d is inheritable\n", fd);
            CHECK(!"a runtime descriptor lacks FD_CLOEXEC");
        }
    }

    blz_command *ls = proc_cmd((const char *[]){"/bin/ls", "-1", "/proc/self/fd", NULL});
    CHECK_OK(blz_command_stdin(ls, BLZ_STDIO_PIPED));
    blz_output o;
    CHECK_EQ(blz_command_output(ls, &o), 0);
    unsigned char child[MAXFD];
    int n = parse_fd_list(o.out, child);
    int extra = 0;
    for (int fd = 0; fd < MAXFD; fd++) {
        if (child[fd] && fd > 2 && !before_rt[fd]) {
            extra++;
        }
    }
    if (!child[0] || !child[1] || !child[2] || extra != 1) {
        fprintf(stderr, "child's descriptors (%d):\n%s", n, o.out);
    }
    CHECK(child[0] && child[1] && child[2]);
    CHECK_EQ(extra, 1); /* ls's own directory handle */
    blz_output_deinit(&o);
    blz_command_free(ls);

    for (int i = 0; i < 3; i++) {
        CHECK_EQ(blz_child_wait(others[i], NULL), 0); /* closes stdin: cat ends */
        blz_child_free(others[i]);
    }
    blz_command_free(busy);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(no_descriptor_leaks_into_child)
{
    (void) inheritable_fds(before_rt);
    proc_run(2, cloexec_main, NULL);
}

/* A descriptor the application leaves inheritable is inherited (that is its
 * choice), unless the command closes the others. */
static void *
user_fd_main(void *arg)
{
    int fd = (int) (intptr_t) arg;
    char name[16];
    snprintf(name, sizeof name, "%d\n", fd);
    blz_command *ls = proc_cmd((const char *[]){"/bin/ls", "-1", "/proc/self/fd", NULL});
    blz_output o;
    CHECK_EQ(blz_command_output(ls, &o), 0);
    CHECK(strstr(o.out, name) != NULL);
    blz_output_deinit(&o);
    int rc = blz_command_close_fds(ls, true);
    if (rc == -ENOTSUP) {
        blz_command_free(ls);
        return (void *) 77;
    }
    CHECK_OK(rc);
    CHECK_EQ(blz_command_output(ls, &o), 0);
    unsigned char child[MAXFD];
    CHECK_EQ(parse_fd_list(o.out, child), 4); /* 0, 1, 2 and ls's own */
    CHECK(!child[fd]);
    blz_output_deinit(&o);
    blz_command_free(ls);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(inheritable_user_fd_and_close_fds)
{
    int fd = open("/dev/null", O_RDONLY); /* deliberately without O_CLOEXEC */
    CHECK_GE(fd, 0);
    int fd2 = fcntl(fd, F_DUPFD, 100); /* somewhere no runtime descriptor lands */
    CHECK_GE(fd2, 100);
    close(fd);
    void *r = proc_run(2, user_fd_main, (void *) (intptr_t) fd2);
    close(fd2);
    if (r == (void *) 77) {
        SKIP("posix_spawn_file_actions_addclosefrom_np is missing");
    }
}

/* ---- reaping ------------------------------------------------------------------------ */

static void *
drop_main(void *arg)
{
    (void) arg;
    /* Freed while running: reaped once it exits. */
    blz_command *cmd = proc_cmd((const char *[]){"/bin/sh", "-c", "sleep 0.1", NULL});
    int pids[20];
    for (int i = 0; i < 20; i++) {
        blz_child *c;
        CHECK_OK(blz_command_spawn(cmd, &c));
        pids[i] = blz_child_pid(c);
        blz_child_free(c);
    }
    blz_command_free(cmd);
    /* Freed after it exited but before a wait (a zombie at the time). */
    cmd = proc_cmd((const char *[]){"/bin/true", NULL});
    blz_child *c;
    CHECK_OK(blz_command_spawn(cmd, &c));
    int zpid = blz_child_pid(c);
    for (int i = 0; i < 1000 && proc_state(zpid) != 'Z'; i++) {
        CHECK_OK(blz_sleep(blz_ms(2)));
    }
    CHECK_EQ(proc_state(zpid), 'Z');
    blz_child_free(c);
    CHECK(!proc_is_our_child(zpid)); /* reaped on the spot */
    blz_command_free(cmd);

    for (int i = 0; i < 20; i++) {
        proc_wait_gone(pids[i], 20);
    }
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(free_without_wait_is_reaped)
{
    proc_run(2, drop_main, NULL);
}

static void *
kill_on_drop_main(void *arg)
{
    (void) arg;
    blz_command *cmd = proc_cmd((const char *[]){"/bin/sleep", "60", NULL});
    CHECK_OK(blz_command_kill_on_drop(cmd, true));
    blz_child *c;
    CHECK_OK(blz_command_spawn(cmd, &c));
    int pid = blz_child_pid(c);
    blz_child_free(c);
    proc_wait_gone(pid, 10);
    blz_command_free(cmd);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(kill_on_drop)
{
    proc_run(2, kill_on_drop_main, NULL);
}

/* A wait in another task goes on after the owner freed the child. */
static void *
late_waiter(void *arg)
{
    blz_exit_status st;
    CHECK_EQ(blz_child_wait(arg, &st), 4);
    return NULL;
}

static void *
free_during_wait_main(void *arg)
{
    (void) arg;
    blz_command *cmd = proc_cmd((const char *[]){"/bin/sh", "-c", "sleep 0.05; exit 4", NULL});
    blz_child *c;
    CHECK_OK(blz_command_spawn(cmd, &c));
    blz_join *j;
    CHECK_OK(blz_spawn(late_waiter, c, &j));
    /* Free only once the waiter has polled and holds its reference on the
     * child (or, on a very slow machine, is already done with it). */
    WAIT_UNTIL(atomic_load(&c->refs) >= 2 || blz_join_is_finished(j),
               CHECK_OK(blz_sleep(blz_ms(1))));
    blz_child_free(c);
    CHECK_OK(blz_join_wait(j, NULL));
    blz_command_free(cmd);
    /* The reaper and the waiter raced to reap; exactly one did. */
    proc_wait_no_children(10);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(free_while_another_task_waits)
{
    proc_run(2, free_during_wait_main, NULL);
}

/* A wait future holds the child from its fill on: the owner may free the
 * child before the first poll (another task's wait, or one spawned), and a
 * future dropped unpolled gives its reference back (the counting
 * allocator's teardown check sees a child left behind). */
static void *
free_before_first_poll_main(void *arg)
{
    (void) arg;
    blz_command *cmd = proc_cmd((const char *[]){"/bin/sh", "-c", "exit 4", NULL});
    blz_child *c;
    CHECK_OK(blz_command_spawn(cmd, &c));
    int pid = blz_child_pid(c);
    blz_child_wait_future w;
    blz_exit_status st;
    blz_child_wait_fut(c, &st, &w);
    CHECK_EQ(atomic_load(&c->refs), 2);
    blz_child_free(c);
    proc_wait_gone(pid,
                   10); /* reaped by the reaper or on the spot: the owner's reference is gone */
    CHECK_EQ(blz_await(&w.base), 4);
    CHECK_EQ(st.code, 4);

    CHECK_OK(blz_command_spawn(cmd, &c));
    blz_child_wait_fut(c, &st, &w);
    blz_future_drop(&w.base);
    CHECK_EQ(atomic_load(&c->refs), 1);
    CHECK_EQ(blz_child_wait(c, NULL), 4);
    blz_child_free(c);
    blz_command_free(cmd);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(free_before_first_poll_of_a_wait)
{
    blz_test_counting_allocator_install();
    proc_run(2, free_before_first_poll_main, NULL);
}

/* Aborting a task blocked in blz_command_status: the child is reaped anyway. */
static void *
status_sleeper(void *arg)
{
    blz_command *cmd = arg;
    return (void *) (intptr_t) blz_command_status(cmd, NULL);
}

static void *
abort_main(void *arg)
{
    (void) arg;
    char gate[64];
    snprintf(gate, sizeof gate, "/tmp/blz-gate-%ld", (long) getpid());
    unlink(gate);
    /* The child runs until the gate file exists (20 s at most), so the status
     * cannot come before the abort, however slow the machine. */
    blz_command *cmd = proc_cmd((const char *[]){
        "/bin/sh", "-c",
        "i=0; while [ ! -e \"$0\" ] && [ $i -lt 2000 ]; do sleep 0.01; i=$((i + 1)); done", gate,
        NULL});
    /* With pidfds the task's wait links a waiter on the driver; without, it
     * sleeps between waitid polls, and that the child exists is all we see. */
    int pfd = blz__proc_sys.pidfd_open((int) getpid(), 0);
    bool pidfds = pfd >= 0;
    if (pidfds) {
        close(pfd);
    }
    blz__io_driver *d = blz__rt_io(blz__rt_current());
    uint64_t before = blz__io_driver_waiters(d);
    blz_join *j;
    CHECK_OK(blz_spawn(status_sleeper, cmd, &j));
    /* Abort once the task waits for its child. */
    WAIT_UNTIL(!proc_no_children(NULL) && (!pidfds || blz__io_driver_waiters(d) != before),
               CHECK_OK(blz_sleep(blz_ms(1))));
    blz_join_abort(j);
    void *r = NULL;
    int jr = blz_join_wait(j, &r);
    CHECK(jr == -ECANCELED || (jr == 0 && (intptr_t) r == -ECANCELED));
    blz_command_free(cmd);
    int fd = open(gate, O_WRONLY | O_CREAT | O_CLOEXEC, 0600); /* the child may end now */
    CHECK_OK(fd);
    close(fd);
    proc_wait_no_children(10);
    unlink(gate);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(abort_during_status)
{
    proc_run(2, abort_main, NULL);
}

/* ---- without pidfds ------------------------------------------------------------------- */

static int
no_pidfd(int pid, unsigned flags)
{
    (void) pid;
    (void) flags;
    return -ENOSYS;
}

static void *
fallback_main(void *arg)
{
    (void) arg;
    blz_command *cmd = proc_cmd((const char *[]){"/bin/sh", "-c", "echo hi; exit 9", NULL});
    blz_output o;
    CHECK_EQ(blz_command_output(cmd, &o), 9);
    CHECK_STR_EQ(o.out, "hi\n");
    blz_output_deinit(&o);
    blz_command_free(cmd);

    cmd = proc_cmd((const char *[]){"/bin/sleep", "30", NULL});
    blz_child *c;
    CHECK_OK(blz_command_spawn(cmd, &c));
    CHECK_EQ(blz_child_try_wait(c, NULL), -EAGAIN);
    CHECK_OK(blz_child_kill(c, SIGKILL));
    blz_exit_status st;
    CHECK_EQ(blz_child_wait(c, &st), 128 + SIGKILL);
    CHECK_EQ(st.signal, SIGKILL);
    CHECK_EQ(blz_child_kill(c, SIGKILL), -ESRCH);
    blz_child_free(c);

    /* Dropped without a wait: the reaper polls by PID. */
    CHECK_OK(blz_command_spawn(cmd, &c));
    int pid = blz_child_pid(c);
    CHECK_OK(blz_child_kill(c, SIGTERM));
    blz_child_free(c);
    proc_wait_gone(pid, 10);
    blz_command_free(cmd);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(without_pidfd)
{
    blz__proc_sys.pidfd_open = no_pidfd;
    proc_run(2, fallback_main, NULL);
}

/* Kill succeeds until the child is reaped, also once it has exited (the
 * signal then does nothing): -ESRCH only after a wait or try_wait reaped it.
 * With a pidfd, and without (kill by PID). */
static void *
kill_exited_main(void *arg)
{
    (void) arg;
    blz_command *cmd = proc_cmd((const char *[]){"/bin/sh", "-c", "exit 3", NULL});
    blz_child *c;
    CHECK_OK(blz_command_spawn(cmd, &c));
    int pid = blz_child_pid(c);
    WAIT_UNTIL(proc_state(pid) == 'Z', CHECK_OK(blz_sleep(blz_ms(1))));
    CHECK_EQ(blz_child_kill(c, SIGKILL), 0);
    blz_exit_status st;
    CHECK_EQ(blz_child_wait(c, &st), 3);
    CHECK_EQ(st.signal, 0);
    CHECK_EQ(blz_child_kill(c, SIGKILL), -ESRCH);
    blz_child_free(c);

    CHECK_OK(blz_command_spawn(cmd, &c));
    WAIT_UNTIL(blz_child_try_wait(c, NULL) != -EAGAIN, CHECK_OK(blz_sleep(blz_ms(1))));
    CHECK_EQ(blz_child_kill(c, SIGTERM), -ESRCH);
    blz_child_free(c);
    blz_command_free(cmd);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(kill_until_reaped)
{
    proc_run(2, kill_exited_main, NULL);
}

BLZ_TEST(kill_until_reaped_without_pidfd)
{
    blz__proc_sys.pidfd_open = no_pidfd;
    proc_run(2, kill_exited_main, NULL);
}

/* Someone else reaps our child: the wait reports ECHILD instead of hanging. */
static void *
stolen_main(void *arg)
{
    (void) arg;
    blz_command *cmd = proc_cmd((const char *[]){"/bin/true", NULL});
    blz_child *c;
    CHECK_OK(blz_command_spawn(cmd, &c));
    int st;
    CHECK_EQ(waitpid(blz_child_pid(c), &st, 0), blz_child_pid(c));
    CHECK_EQ(blz_child_wait(c, NULL), -ECHILD);
    CHECK_EQ(blz_child_try_wait(c, NULL), -ECHILD);
    blz_child_free(c);
    blz_command_free(cmd);
    return NULL;
}

BLZ_TEST(reaped_behind_our_back)
{
    proc_run(2, stolen_main, NULL);
}
