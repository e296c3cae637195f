/*
 * tests/process_stdio_fd.c — blz_command_stdio_fd: a child's output into a
 * file (stdout and stderr onto one), two children joined by a pipe the way
 * a shell joins them, one command spawned twice with the same descriptor,
 * and the refusals (no child, nothing leaked).
 *
 * Run once per backend.
 */
#include "process_common.h"

#include <fcntl.h>

static char *
slurp(int fd, char *buf, size_t cap)
{
    ssize_t n = pread(fd, buf, cap - 1, 0);
    CHECK_GE(n, 0);
    buf[n] = '\0';
    return buf;
}

static void
wait_ok(blz_child *c)
{
    blz_exit_status st;
    CHECK_OK(blz_child_wait(c, &st));
    CHECK_EQ(st.code, 0);
    blz_child_free(c);
}

static void *
to_file_main(void *arg)
{
    (void) arg;
    char path[] = "/tmp/blz_stdio_XXXXXX";
    int fd = mkstemp(path);
    CHECK_GE(fd, 0);
    CHECK_OK(unlink(path));
    blz_command *cmd = proc_cmd((const char *[]){"/bin/sh", "-c", "echo out; echo err >&2", NULL});
    CHECK_OK(blz_command_stdio_fd(cmd, BLZ_STDOUT, fd));
    CHECK_OK(blz_command_stdio_fd(cmd, BLZ_STDERR, fd));
    blz_child *c;
    CHECK_OK(blz_command_spawn(cmd, &c));
    CHECK_PTR_EQ(blz_child_pipe(c, BLZ_STDOUT), NULL); /* no pipe: the file */
    wait_ok(c);
    char buf[64];
    CHECK_STR_EQ(slurp(fd, buf, sizeof buf), "out\nerr\n");

    /* The command is a recipe: spawned again, the same descriptor. */
    CHECK_OK(blz_command_spawn(cmd, &c));
    wait_ok(c);
    CHECK_STR_EQ(slurp(fd, buf, sizeof buf), "out\nerr\nout\nerr\n");
    blz_command_free(cmd);
    CHECK_OK(close(fd));
    return NULL;
}

BLZ_TEST(child_output_into_a_file)
{
    proc_run(2, to_file_main, NULL);
}

/* printf 'b\na\nc\n' | sort, joined by a blocking pipe the parent lets go of. */
static void *
pipeline_main(void *arg)
{
    (void) arg;
    int p[2];
    CHECK_OK(pipe2(p, O_CLOEXEC));
    blz_command *producer =
        proc_cmd((const char *[]){"/bin/sh", "-c", "printf 'b\\na\\nc\\n'", NULL});
    blz_command *sorter = proc_cmd((const char *[]){"sort", NULL});
    CHECK_OK(blz_command_stdio_fd(producer, BLZ_STDOUT, p[1]));
    CHECK_OK(blz_command_stdio_fd(sorter, BLZ_STDIN, p[0]));
    CHECK_OK(blz_command_stdout(sorter, BLZ_STDIO_PIPED));
    blz_child *a, *b;
    CHECK_OK(blz_command_spawn(producer, &a));
    CHECK_OK(blz_command_spawn(sorter, &b));
    CHECK_OK(close(p[0])); /* sort sees end of file once the producer exits */
    CHECK_OK(close(p[1]));
    size_t len = 0;
    char *out = proc_read_all(blz_child_pipe(b, BLZ_STDOUT), &len);
    CHECK_STR_EQ(out, "a\nb\nc\n");
    free(out);
    wait_ok(a);
    wait_ok(b);
    blz_command_free(producer);
    blz_command_free(sorter);
    return NULL;
}

BLZ_TEST(two_children_joined_by_a_pipe)
{
    proc_run(2, pipeline_main, NULL);
}

static void *
refusals_main(void *arg)
{
    (void) arg;
    blz_command *cmd = proc_cmd((const char *[]){"/bin/true", NULL});
    CHECK_EQ(blz_command_stdio_fd(cmd, (blz_stdio_stream) 3, 1), -EINVAL);
    CHECK_EQ(blz_command_stdio_fd(NULL, BLZ_STDOUT, 1), -EINVAL);
    CHECK_EQ(blz_command_stdout(cmd, BLZ_STDIO_FD), -EINVAL); /* needs its descriptor */
    blz_child *c = NULL;
    CHECK_EQ(blz_command_spawn(cmd, &c), -EINVAL); /* the first error sticks */
    blz_command_free(cmd);

    cmd = proc_cmd((const char *[]){"/bin/true", NULL});
    CHECK_EQ(blz_command_stdio_fd(cmd, BLZ_STDIN, -1), -EINVAL);
    CHECK_EQ(blz_command_spawn(cmd, &c), -EINVAL);
    blz_command_free(cmd);

    /* A descriptor closed before the spawn: -EBADF, and nothing left behind
     * (the harness checks descriptors; the pipe asked for is given back). */
    int closed = 999; /* high enough that the spawn's own pipe cannot take it */
    CHECK_EQ(fcntl(closed, F_GETFD), -1);
    cmd = proc_cmd((const char *[]){"/bin/true", NULL});
    CHECK_OK(blz_command_stdout(cmd, BLZ_STDIO_PIPED));
    CHECK_OK(blz_command_stdio_fd(cmd, BLZ_STDERR, closed));
    CHECK_EQ(blz_command_spawn(cmd, &c), -EBADF);
    blz_command_free(cmd);
    return NULL;
}

BLZ_TEST(refusals_leave_nothing_behind)
{
    proc_run(1, refusals_main, NULL);
}
