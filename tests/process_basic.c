/*
 * Child processes: spawning, reading a child's stdout, exit codes and
 * signals, environment, working directory, /dev/null streams, output(),
 * error paths. Every test ends with no child of ours left.
 */
#include "process_common.h"

#include <dirent.h>
#include <sys/stat.h>

/* ---- stdout and exit codes ----------------------------------------------------------- */

static void *
echo_main(void *arg)
{
    (void) arg;
    blz_command *cmd = proc_cmd((const char *[]){"/bin/echo", "hello", "blitzio", NULL});
    CHECK_OK(blz_command_stdout(cmd, BLZ_STDIO_PIPED));
    blz_child *c = NULL;
    CHECK_OK(blz_command_spawn(cmd, &c));
    CHECK_GT(blz_child_pid(c), 0);
    CHECK(blz_child_pipe(c, BLZ_STDIN) == NULL);
    CHECK(blz_child_pipe(c, BLZ_STDERR) == NULL);
    blz_pipe *out = blz_child_pipe(c, BLZ_STDOUT);
    CHECK(out != NULL);
    size_t len;
    char *text = proc_read_all(out, &len);
    CHECK_STR_EQ(text, "hello blitzio\n");
    CHECK_EQ(len, 14);
    free(text);
    blz_exit_status st;
    CHECK_EQ(blz_child_wait(c, &st), 0);
    CHECK_EQ(st.code, 0);
    CHECK_EQ(st.signal, 0);
    CHECK(blz_exit_status_success(&st));
    /* A second wait returns the kept status. */
    CHECK_EQ(blz_child_wait(c, NULL), 0);
    CHECK_EQ(blz_child_try_wait(c, NULL), 0);
    blz_child_free(c);
    blz_command_free(cmd);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(echo_stdout)
{
    proc_run(2, echo_main, NULL);
}

static void *
exit_code_main(void *arg)
{
    (void) arg;
    blz_command *cmd = proc_cmd((const char *[]){"/bin/sh", "-c", "exit 3", NULL});
    blz_exit_status st;
    CHECK_EQ(blz_command_status(cmd, &st), 3);
    CHECK_EQ(st.code, 3);
    CHECK_EQ(st.signal, 0);
    CHECK(!blz_exit_status_success(&st));
    /* The command is a recipe: spawn it again. */
    blz_child *c;
    CHECK_OK(blz_command_spawn(cmd, &c));
    CHECK_EQ(blz_child_wait(c, NULL), 3);
    blz_child_free(c);
    blz_command_free(cmd);

    cmd = proc_cmd((const char *[]){"/bin/sh", "-c", "exit 255", NULL});
    CHECK_EQ(blz_command_status(cmd, NULL), 255);
    blz_command_free(cmd);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(exit_codes)
{
    proc_run(2, exit_code_main, NULL);
}

static void *
killed_main(void *arg)
{
    (void) arg;
    blz_command *cmd = proc_cmd((const char *[]){"/bin/sleep", "30", NULL});
    blz_child *c;
    CHECK_OK(blz_command_spawn(cmd, &c));
    CHECK_EQ(blz_child_try_wait(c, NULL), -EAGAIN);
    /* A wait with a deadline gives up and leaves the child running. */
    CHECK_EQ(blz_child_wait_until(c, blz_instant_add(blz_clock_now(), blz_ms(30)), NULL),
             -ETIMEDOUT);
    CHECK_EQ(blz_child_try_wait(c, NULL), -EAGAIN);
    CHECK_OK(blz_child_kill(c, SIGKILL));
    blz_exit_status st;
    CHECK_EQ(blz_child_wait(c, &st), 128 + SIGKILL);
    CHECK_EQ(st.signal, SIGKILL);
    CHECK_EQ(st.code, -1);
    CHECK(!st.core_dumped);
    CHECK_EQ(blz_exit_status_code(&st), 128 + SIGKILL);
    /* Reaped: nothing left to signal. */
    CHECK_EQ(blz_child_kill(c, SIGTERM), -ESRCH);
    CHECK_EQ(blz_child_kill(c, -1), -EINVAL);
    blz_child_free(c);

    /* SIGTERM, and a wait that is already waiting when the signal lands. */
    CHECK_OK(blz_command_spawn(cmd, &c));
    blz_child_wait_future wf;
    blz_child_wait_fut(c, &st, &wf);
    CHECK_EQ(blz_future_poll(&wf.base, &(blz_context){blz_waker_noop()}), BLZ_PENDING);
    CHECK_OK(blz_child_kill(c, SIGTERM));
    CHECK_EQ(blz_await(&wf.base), 128 + SIGTERM);
    CHECK_EQ(st.signal, SIGTERM);
    blz_child_free(c);
    blz_command_free(cmd);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(killed_by_signal)
{
    proc_run(2, killed_main, NULL);
}

/* Two tasks wait for the same child: both get the status, one reaps. */
static void *
waiter_task(void *arg)
{
    blz_exit_status st;
    int r = blz_child_wait(arg, &st);
    CHECK_EQ(r, 7);
    CHECK_EQ(st.code, 7);
    return NULL;
}

static void *
concurrent_waits_main(void *arg)
{
    (void) arg;
    blz_command *cmd = proc_cmd((const char *[]){"/bin/sh", "-c", "sleep 0.05; exit 7", NULL});
    blz_child *c;
    CHECK_OK(blz_command_spawn(cmd, &c));
    blz_join *j[4];
    for (int i = 0; i < 4; i++) {
        CHECK_OK(blz_spawn(waiter_task, c, &j[i]));
    }
    CHECK_OK(blz_join_all(j, 4, NULL));
    blz_child_free(c);
    blz_command_free(cmd);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(concurrent_waits)
{
    proc_run(2, concurrent_waits_main, NULL);
}

/* ---- environment, directory, streams ----------------------------------------------- */

/* Runs cmd with output() and returns its stdout (malloc'ed); checks exit 0. */
static char *
stdout_of(blz_command *cmd)
{
    blz_output o;
    int r = blz_command_output(cmd, &o);
    if (r != 0) {
        fprintf(stderr, "exit %d, stderr: %s\n", r, r >= 0 ? o.err : "(none)");
    }
    CHECK_EQ(r, 0);
    char *s = strdup(o.out);
    blz_output_deinit(&o);
    CHECK(o.out == NULL && o.err == NULL);
    return s;
}

static void *
env_main(void *arg)
{
    (void) arg;
    /* Inherited by default. */
    blz_command *cmd =
        proc_cmd((const char *[]){"/bin/sh", "-c", "echo \"${BLZ_PT_A-unset}\"", NULL});
    char *s = stdout_of(cmd);
    CHECK_STR_EQ(s, "from-parent\n");
    free(s);
    /* Set overrides, remove removes (the parent keeps its own). */
    CHECK_OK(blz_command_env(cmd, "BLZ_PT_A", "from-command"));
    s = stdout_of(cmd);
    CHECK_STR_EQ(s, "from-command\n");
    free(s);
    CHECK_OK(blz_command_env_remove(cmd, "BLZ_PT_A"));
    s = stdout_of(cmd);
    CHECK_STR_EQ(s, "unset\n");
    free(s);
    CHECK_STR_EQ(getenv("BLZ_PT_A"), "from-parent");
    blz_command_free(cmd);

    /* Clear: only what the command sets. */
    cmd = proc_cmd((const char *[]){"/usr/bin/env", NULL});
    CHECK_OK(blz_command_env(cmd, "BEFORE", "1")); /* forgotten by the clear */
    CHECK_OK(blz_command_env_clear(cmd));
    CHECK_OK(blz_command_env(cmd, "FOO", "bar"));
    CHECK_OK(blz_command_env(cmd, "EMPTY", ""));
    CHECK_OK(blz_command_env(cmd, "FOO", "baz=qux")); /* replaces, keeps its place */
    s = stdout_of(cmd);
    CHECK_STR_EQ(s, "FOO=baz=qux\nEMPTY=\n");
    free(s);
    blz_command_free(cmd);

    /* Bad keys: an error now and at the spawn. */
    cmd = proc_cmd((const char *[]){"/bin/true", NULL});
    CHECK_EQ(blz_command_env(cmd, "A=B", "x"), -EINVAL);
    CHECK_EQ(blz_command_env(cmd, "", "x"), -EINVAL);
    CHECK_EQ(blz_command_env_remove(cmd, NULL), -EINVAL);
    blz_child *c = (blz_child *) 1;
    CHECK_EQ(blz_command_spawn(cmd, &c), -EINVAL);
    CHECK(c == NULL);
    blz_command_free(cmd);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(env_clear_set_remove)
{
    CHECK_EQ(setenv("BLZ_PT_A", "from-parent", 1), 0);
    proc_run(2, env_main, NULL);
}

static void *
path_main(void *arg)
{
    (void) arg;
    /* No '/': looked up in the parent's PATH... */
    blz_command *cmd = proc_cmd((const char *[]){"echo", "found", NULL});
    char *s = stdout_of(cmd);
    CHECK_STR_EQ(s, "found\n");
    free(s);
    /* ...or in the PATH the command sets. */
    CHECK_OK(blz_command_env(cmd, "PATH", "/nonexistent-blz:/bin"));
    s = stdout_of(cmd);
    CHECK_STR_EQ(s, "found\n");
    free(s);
    CHECK_OK(blz_command_env(cmd, "PATH", "/nonexistent-blz"));
    blz_output o;
    CHECK_EQ(blz_command_output(cmd, &o), -ENOENT);
    CHECK(o.out == NULL);
    blz_command_free(cmd);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(path_lookup)
{
    proc_run(2, path_main, NULL);
}

/* A relative PATH entry is the child's: with a directory set, it is looked
 * up there (where the child will run it), not in the parent's directory. */
static char path_dirs[3][32]; /* the child's directory, the parent's, an absolute entry */

/* Writes an executable `dir`/`name` that exits with `code`. */
static void
write_script(const char *dir, const char *name, int code)
{
    char path[96];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "we");
    CHECK(f != NULL);
    fprintf(f, "#!/bin/sh\nexit %d\n", code);
    CHECK_EQ(fclose(f), 0);
    CHECK_EQ(chmod(path, 0755), 0);
}

/* The exit code of `prog` run with PATH `path` in the child's directory. */
static int
code_with_path(const char *prog, const char *path)
{
    blz_command *cmd = proc_cmd((const char *[]){prog, NULL});
    CHECK_OK(blz_command_cwd(cmd, path_dirs[0]));
    CHECK_OK(blz_command_env(cmd, "PATH", path));
    int code = blz_command_status(cmd, NULL);
    blz_command_free(cmd);
    return code;
}

static int path_codes[3]; /* what the three lookups gave, checked once the files are gone */

static void *
path_cwd_main(void *arg)
{
    (void) arg;
    char entries[64];
    /* Only in the child's bin/. */
    path_codes[0] = code_with_path("blz-only-child", "bin");
    /* Only in the parent's bin/: skipped, the absolute entry after it wins. */
    snprintf(entries, sizeof entries, "bin:%s", path_dirs[2]);
    path_codes[1] = code_with_path("blz-in-parent", entries);
    /* An empty entry is the child's directory too. */
    snprintf(entries, sizeof entries, ":%s", path_dirs[2]);
    path_codes[2] = code_with_path("blz-dot", entries);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(path_relative_to_cwd)
{
    blz_command *probe;
    CHECK_OK(blz_command_new("x", &probe));
    int rc = blz_command_cwd(probe, "/");
    blz_command_free(probe);
    if (rc == -ENOTSUP) {
        SKIP("posix_spawn_file_actions_addchdir_np is missing");
    }
    char bin[3][48];
    for (int i = 0; i < 3; i++) {
        snprintf(path_dirs[i], sizeof path_dirs[i], "/tmp/blz-path-XXXXXX");
        CHECK(mkdtemp(path_dirs[i]) != NULL);
        snprintf(bin[i], sizeof bin[i], "%.31s/bin", path_dirs[i]); /* 31: path_dirs[i] */
        CHECK_EQ(mkdir(bin[i], 0755), 0);
    }
    static const struct {
        int dir;
        bool in_bin;
        const char *name;
        int code;
    } files[] = {
        {0, true, "blz-only-child", 7}, {1, true, "blz-in-parent", 3},
        {2, false, "blz-in-parent", 5}, {0, false, "blz-dot", 8},
        {2, false, "blz-dot", 6},
    };
    enum { NFILES = sizeof files / sizeof files[0] };
    for (int i = 0; i < NFILES; i++) {
        write_script(files[i].in_bin ? bin[files[i].dir] : path_dirs[files[i].dir], files[i].name,
                     files[i].code);
    }
    CHECK_EQ(chdir(path_dirs[1]), 0); /* the test runs in a process of its own */
    proc_run(2, path_cwd_main, NULL);
    /* Removed before the checks, so that a failure leaves nothing behind. */
    for (int i = 0; i < NFILES; i++) {
        char path[160];
        snprintf(path, sizeof path, "%s/%s",
                 files[i].in_bin ? bin[files[i].dir] : path_dirs[files[i].dir], files[i].name);
        CHECK_EQ(unlink(path), 0);
    }
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(rmdir(bin[i]), 0);
        CHECK_EQ(rmdir(path_dirs[i]), 0);
    }
    CHECK_EQ(path_codes[0], 7);
    CHECK_EQ(path_codes[1], 5);
    CHECK_EQ(path_codes[2], 8);
}

static void *
cwd_main(void *arg)
{
    (void) arg;
    blz_command *cmd = proc_cmd((const char *[]){"/bin/pwd", NULL});
    int rc = blz_command_cwd(cmd, "/");
    if (rc == -ENOTSUP) {
        blz_command_free(cmd);
        return (void *) 77;
    }
    CHECK_OK(rc);
    char *s = stdout_of(cmd);
    CHECK_STR_EQ(s, "/\n");
    free(s);
    CHECK_OK(blz_command_cwd(cmd, "/proc"));
    s = stdout_of(cmd);
    CHECK_STR_EQ(s, "/proc\n");
    free(s);
    /* A relative program path with a '/' is resolved in the new directory. */
    blz_command *rel = proc_cmd((const char *[]){"./echo", "rel", NULL});
    CHECK_OK(blz_command_cwd(rel, "/bin"));
    s = stdout_of(rel);
    CHECK_STR_EQ(s, "rel\n");
    free(s);
    blz_command_free(rel);
    /* A missing directory fails the spawn, leaving nothing behind. */
    CHECK_OK(blz_command_cwd(cmd, "/nonexistent-blz-dir"));
    CHECK_OK(blz_command_stdout(cmd, BLZ_STDIO_PIPED));
    blz_child *c;
    CHECK_EQ(blz_command_spawn(cmd, &c), -ENOENT);
    CHECK(c == NULL);
    blz_command_free(cmd);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(cwd)
{
    if (proc_run(2, cwd_main, NULL) == (void *) 77) {
        SKIP("posix_spawn_file_actions_addchdir_np is missing");
    }
}

static void *
stdin_null_main(void *arg)
{
    (void) arg;
    /* cat with stdin /dev/null ends at once with nothing. */
    blz_command *cmd = proc_cmd((const char *[]){"/bin/cat", NULL});
    CHECK_OK(blz_command_stdin(cmd, BLZ_STDIO_NULL));
    CHECK_OK(blz_command_stdout(cmd, BLZ_STDIO_PIPED));
    blz_child *c;
    CHECK_OK(blz_command_spawn(cmd, &c));
    size_t len = 99;
    char *s = proc_read_all(blz_child_pipe(c, BLZ_STDOUT), &len);
    CHECK_EQ(len, 0);
    free(s);
    CHECK_EQ(blz_child_wait(c, NULL), 0);
    blz_child_free(c);
    blz_command_free(cmd);

    /* Output and stderr to /dev/null: the child writes into the void. */
    cmd = proc_cmd((const char *[]){"/bin/sh", "-c", "echo out; echo err >&2; exit 0", NULL});
    CHECK_OK(blz_command_stdout(cmd, BLZ_STDIO_NULL));
    CHECK_OK(blz_command_stderr(cmd, BLZ_STDIO_NULL));
    blz_output o;
    CHECK_EQ(blz_command_output(cmd, &o), 0);
    CHECK_EQ(o.out_len, 0);
    CHECK_EQ(o.err_len, 0);
    CHECK_STR_EQ(o.out, "");
    blz_output_deinit(&o);
    blz_command_free(cmd);

    /* output()'s default stdin is /dev/null, even for a reader like cat. */
    cmd = proc_cmd((const char *[]){"/bin/cat", NULL});
    CHECK_EQ(blz_command_output(cmd, &o), 0);
    CHECK_EQ(o.out_len, 0);
    blz_output_deinit(&o);
    /* A piped stdin there is closed at once. */
    CHECK_OK(blz_command_stdin(cmd, BLZ_STDIO_PIPED));
    CHECK_EQ(blz_command_output(cmd, &o), 0);
    blz_output_deinit(&o);
    blz_command_free(cmd);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(stdin_null)
{
    proc_run(2, stdin_null_main, NULL);
}

static void *
output_main(void *arg)
{
    (void) arg;
    /* 200 KB to stderr before a byte of stdout: reading only stdout first
     * would deadlock on the full stderr pipe. */
    blz_command *cmd = proc_cmd((const char *[]){
        "/bin/sh", "-c",
        "head -c 200000 /dev/zero | tr '\\0' e >&2; head -c 300000 /dev/zero | tr '\\0' o; "
        "exit 5",
        NULL});
    blz_output o;
    CHECK_EQ(blz_command_output(cmd, &o), 5);
    CHECK_EQ(o.status.code, 5);
    CHECK_EQ(o.out_len, 300000);
    CHECK_EQ(o.err_len, 200000);
    CHECK_EQ(o.out[o.out_len], '\0');
    CHECK_EQ(o.err[o.err_len], '\0');
    for (size_t i = 0; i < o.out_len; i++) {
        if (o.out[i] != 'o') {
            CHECK_EQ(o.out[i], 'o');
        }
    }
    for (size_t i = 0; i < o.err_len; i++) {
        if (o.err[i] != 'e') {
            CHECK_EQ(o.err[i], 'e');
        }
    }
    blz_output_deinit(&o);
    blz_output_deinit(NULL);
    blz_command_free(cmd);

    /* A signal-ended child through output(). */
    cmd = proc_cmd((const char *[]){"/bin/sh", "-c", "echo partial; kill -9 $$", NULL});
    CHECK_EQ(blz_command_output(cmd, &o), 128 + SIGKILL);
    CHECK_EQ(o.status.signal, SIGKILL);
    CHECK_STR_EQ(o.out, "partial\n");
    blz_output_deinit(&o);
    blz_command_free(cmd);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(output_collects_both_streams)
{
    proc_run(2, output_main, NULL);
}

/* ---- output of a child spawned before ------------------------------------------------------- */

static blz_child *
spawn_piped(const char *script, bool with_stdin)
{
    blz_command *cmd = proc_cmd((const char *[]){"/bin/sh", "-c", script, NULL});
    if (with_stdin) {
        CHECK_OK(blz_command_stdin(cmd, BLZ_STDIO_PIPED));
    }
    CHECK_OK(blz_command_stdout(cmd, BLZ_STDIO_PIPED));
    CHECK_OK(blz_command_stderr(cmd, BLZ_STDIO_PIPED));
    blz_child *c;
    CHECK_OK(blz_command_spawn(cmd, &c));
    blz_command_free(cmd);
    return c;
}

static void *
wait_output_main(void *arg)
{
    (void) arg;
    /* Talked to first, then collected: its answer, its complaint, its code. */
    blz_child *c = spawn_piped("read line; echo \"got:$line\"; echo oops >&2; exit 3", true);
    CHECK_OK(blz_pipe_write_all(blz_child_pipe(c, BLZ_STDIN), "hello\n", 6));
    blz_output o;
    CHECK_EQ(blz_child_wait_with_output(c, &o), 3);
    CHECK_STR_EQ(o.out, "got:hello\n");
    CHECK_STR_EQ(o.err, "oops\n");
    CHECK_EQ(o.status.code, 3);
    blz_output_deinit(&o);

    /* Its stdin still open: closed for it, so a child reading to the end ends. */
    c = spawn_piped("cat", true);
    CHECK_OK(blz_pipe_write_all(blz_child_pipe(c, BLZ_STDIN), "abc", 3));
    CHECK_EQ(blz_child_wait_with_output(c, &o), 0);
    CHECK_STR_EQ(o.out, "abc");
    CHECK_EQ(o.out_len, 3u);
    blz_output_deinit(&o);

    /* A stream the caller took is the caller's: it stays empty here. */
    c = spawn_piped("echo out; echo err >&2", false);
    blz_pipe *taken = blz_child_take_pipe(c, BLZ_STDOUT);
    CHECK(taken != NULL);
    CHECK_EQ(blz_child_wait_with_output(c, &o), 0);
    CHECK_EQ(o.out_len, 0u);
    CHECK_STR_EQ(o.err, "err\n");
    blz_output_deinit(&o);
    char *mine = proc_read_all(taken, NULL);
    CHECK_STR_EQ(mine, "out\n");
    free(mine);
    blz_pipe_close(taken);

    /* Bad input: the child is still taken over (and reaped by the runtime). */
    c = spawn_piped("exit 0", false);
    CHECK_EQ(blz_child_wait_with_output(c, NULL), -EINVAL);
    CHECK_EQ(blz_child_wait_with_output(NULL, &o), -EINVAL);
    CHECK(o.out == NULL && o.err == NULL);
    proc_wait_no_children(10);
    return NULL;
}

BLZ_TEST(wait_with_output_of_a_spawned_child)
{
    proc_run(2, wait_output_main, NULL);
}

/* Open descriptors of this process. */
static int
count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    int n = 0;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    CHECK_EQ(closedir(d), 0);
    return n - 1; /* not the directory's own */
}

/* The future tier given no future still takes the child over: freed at
 * once, so its pipes close (cat, reading stdin, ends) and it is reaped. */
static void *
wait_output_no_future_main(void *arg)
{
    (void) arg;
    int base = count_fds();
    blz_child *c = spawn_piped("cat", true);
    int pid = blz_child_pid(c);
    CHECK_GT(count_fds(), base);
    blz_output o;
    blz_child_wait_with_output_fut(c, &o, NULL);
    proc_wait_gone(pid, 10);
    WAIT_UNTIL(count_fds() == base, CHECK_OK(blz_sleep(blz_ms(1))));
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(wait_with_output_without_future)
{
    proc_run(2, wait_output_no_future_main, NULL);
}

/* ---- errors ---------------------------------------------------------------------------- */

static void *
enoent_main(void *arg)
{
    (void) arg;
    const char *progs[] = {"/nonexistent/blz-no-such-program", "blz-no-such-program-in-path"};
    for (int i = 0; i < 2; i++) {
        blz_command *cmd = proc_cmd((const char *[]){progs[i], "x", NULL});
        CHECK_OK(blz_command_stdin(cmd, BLZ_STDIO_PIPED));
        CHECK_OK(blz_command_stdout(cmd, BLZ_STDIO_PIPED));
        CHECK_OK(blz_command_stderr(cmd, BLZ_STDIO_PIPED));
        blz_child *c = (blz_child *) 1;
        CHECK_EQ(blz_command_spawn(cmd, &c), -ENOENT);
        CHECK(c == NULL);
        CHECK_EQ(blz_command_status(cmd, NULL), -ENOENT);
        blz_output o;
        CHECK_EQ(blz_command_output(cmd, &o), -ENOENT);
        blz_command_free(cmd);
    }
    /* Not executable. */
    blz_command *cmd = proc_cmd((const char *[]){"/etc/passwd", NULL});
    CHECK_EQ(blz_command_status(cmd, NULL), -EACCES);
    blz_command_free(cmd);
    /* Nothing spawned, no descriptor left: checked by the harness teardown. */
    CHECK_EQ(blz__io_driver_sources(blz__rt_io(blz__rt_current())), 0);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(nonexistent_program)
{
    proc_run(2, enoent_main, NULL);
}

static void *
bad_args_main(void *arg)
{
    (void) arg;
    blz_command *cmd;
    CHECK_EQ(blz_command_new(NULL, &cmd), -EINVAL);
    CHECK_EQ(blz_command_new("", &cmd), -EINVAL);
    CHECK_EQ(blz_command_new("/bin/true", NULL), -EINVAL);
    CHECK_EQ(blz_command_arg(NULL, "x"), -EINVAL);
    CHECK_OK(blz_command_new("/bin/true", &cmd));
    CHECK_EQ(blz_command_stdout(cmd, (blz_stdio) 42), -EINVAL);
    CHECK_EQ(blz_command_spawn(cmd, NULL), -EINVAL);
    blz_child *c;
    CHECK_EQ(blz_command_spawn(cmd, &c), -EINVAL); /* the sticky error */
    blz_command_free(cmd);
    blz_command_free(NULL);

    CHECK_EQ(blz_child_wait(NULL, NULL), -EINVAL);
    CHECK_EQ(blz_child_try_wait(NULL, NULL), -EINVAL);
    CHECK_EQ(blz_child_kill(NULL, SIGTERM), -EINVAL);
    CHECK_EQ(blz_child_pid(NULL), -EINVAL);
    CHECK(blz_child_pipe(NULL, BLZ_STDOUT) == NULL);
    blz_child_free(NULL);
    char b[4];
    CHECK_EQ(blz_pipe_read(NULL, b, sizeof b), -EINVAL);
    CHECK_EQ(blz_pipe_write(NULL, b, sizeof b), -EINVAL);
    CHECK_EQ(blz_pipe_write_all(NULL, b, sizeof b), -EINVAL);
    CHECK_EQ(blz_pipe_fd(NULL), -EINVAL);
    blz_pipe_close(NULL);

    /* Reading the stdin end or writing a stdout end. */
    CHECK_OK(blz_command_new("/bin/cat", &cmd));
    CHECK_OK(blz_command_stdin(cmd, BLZ_STDIO_PIPED));
    CHECK_OK(blz_command_stdout(cmd, BLZ_STDIO_PIPED));
    CHECK_OK(blz_command_spawn(cmd, &c));
    CHECK_EQ(blz_pipe_read(blz_child_pipe(c, BLZ_STDIN), b, sizeof b), -EBADF);
    CHECK_EQ(blz_pipe_write(blz_child_pipe(c, BLZ_STDOUT), "x", 1), -EBADF);
    CHECK_EQ(blz_pipe_try_read(blz_child_pipe(c, BLZ_STDOUT), b, sizeof b), -EAGAIN);
    CHECK_EQ(blz_pipe_read(blz_child_pipe(c, BLZ_STDOUT), b, 0), 0);
    CHECK_GE(blz_pipe_fd(blz_child_pipe(c, BLZ_STDOUT)), 3);
    CHECK_EQ(blz_child_wait(c, NULL), 0); /* closes stdin: cat ends */
    CHECK(blz_child_pipe(c, BLZ_STDIN) == NULL);
    CHECK_EQ(blz_pipe_read(blz_child_pipe(c, BLZ_STDOUT), b, sizeof b), 0);
    blz_child_free(c);
    blz_command_free(cmd);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(bad_arguments)
{
    proc_run(2, bad_args_main, NULL);
}

/* The await tier inside a stackless poll refuses with -EDEADLK, and having
 * refused it has done nothing: no program ran, the child's stdin is open. */
typedef struct refused_future {
    blz_future base;
    blz_command *cmd; /* touches a file when it runs, or NULL */
    blz_child *child; /* cat with its stdin piped, or NULL */
    int *rc;          /* the four results, in the spawning fiber */
} refused_future;

static blz_poll
refused_poll(blz_future *base, blz_context *cx)
{
    (void) cx;
    refused_future *f = (refused_future *) base;
    if (f->cmd) {
        blz_output o;
        f->rc[0] = blz_command_status(f->cmd, NULL);
        f->rc[1] = blz_command_output(f->cmd, &o);
    }
    if (f->child) {
        f->rc[2] = blz_child_wait(f->child, NULL);
        f->rc[3] = blz_child_wait_until(f->child, blz_instant_add(blz_now(), blz_secs(1)), NULL);
    }
    return BLZ_READY;
}

static const blz_future_vtable refused_vt = {refused_poll, NULL};

static void
run_refused(blz_command *cmd, blz_child *child, int *rc)
{
    refused_future f;
    blz_future_init(&f.base, &refused_vt);
    f.cmd = cmd;
    f.child = child;
    f.rc = rc;
    blz_join *j;
    CHECK_OK(blz_spawn_future(&f.base, sizeof f, &j));
    CHECK_OK(blz_join_wait(j, NULL));
}

static void *
refused_main(void *arg)
{
    (void) arg;
    char path[64];
    snprintf(path, sizeof path, "/tmp/blz-refused-%ld", (long) getpid());
    unlink(path);
    int rc[4] = {0, 0, 0, 0};
    blz_command *touch = proc_cmd((const char *[]){"/usr/bin/touch", path, NULL});
    run_refused(touch, NULL, rc);
    CHECK_EQ(rc[0], -EDEADLK);
    CHECK_EQ(rc[1], -EDEADLK);
    /* A child started anyway would be reaped by the runtime once it ended. */
    proc_wait_no_children(10);
    if (access(path, F_OK) == 0) {
        unlink(path);
        CHECK(!"a refused blz_command_status or blz_command_output ran the program");
    }
    blz_command_free(touch);

    blz_command *cat = proc_cmd((const char *[]){"/bin/cat", NULL});
    CHECK_OK(blz_command_stdin(cat, BLZ_STDIO_PIPED));
    CHECK_OK(blz_command_stdout(cat, BLZ_STDIO_NULL));
    blz_child *c;
    CHECK_OK(blz_command_spawn(cat, &c));
    run_refused(NULL, c, rc);
    CHECK_EQ(rc[2], -EDEADLK);
    CHECK_EQ(rc[3], -EDEADLK);
    CHECK(blz_child_pipe(c, BLZ_STDIN) != NULL); /* a refused wait closed nothing */
    CHECK_OK(blz_pipe_write_all(blz_child_pipe(c, BLZ_STDIN), "x", 1));
    CHECK_EQ(blz_child_wait(c, NULL), 0);
    blz_child_free(c);
    blz_command_free(cat);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(refused_in_stackless_poll_does_nothing)
{
    proc_run(2, refused_main, NULL);
}

static void *
epipe_main(void *arg)
{
    (void) arg;
    /* The child exits without reading: writes to its stdin fail with EPIPE
     * and raise no SIGPIPE (which would kill this test). */
    blz_command *cmd = proc_cmd((const char *[]){"/bin/true", NULL});
    CHECK_OK(blz_command_stdin(cmd, BLZ_STDIO_PIPED));
    blz_child *c;
    CHECK_OK(blz_command_spawn(cmd, &c));
    blz_pipe *in = blz_child_take_pipe(c, BLZ_STDIN);
    CHECK(in != NULL);
    CHECK(blz_child_take_pipe(c, BLZ_STDIN) == NULL);
    CHECK_EQ(blz_child_wait(c, NULL), 0);
    CHECK_EQ(blz_pipe_write(in, "x", 1), -EPIPE);
    static char big[200000];
    CHECK_EQ(blz_pipe_write_all(in, big, sizeof big), -EPIPE);
    /* With SIGPIPE already blocked by the thread, too. */
    sigset_t s, old;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, &s, &old), 0);
    CHECK_EQ(blz_pipe_try_write(in, "x", 1), -EPIPE);
    sigset_t pend;
    CHECK_EQ(sigpending(&pend), 0);
    CHECK(!sigismember(&pend, SIGPIPE));
    CHECK_EQ(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
    blz_pipe_close(in);
    blz_child_free(c);
    blz_command_free(cmd);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(write_to_exited_child_is_epipe)
{
    proc_run(2, epipe_main, NULL);
}

/* ---- blz_command_status's future tier --------------------------------------------- */

typedef struct status_task {
    blz_future base;
    blz_command *cmd;
    blz_command_status_future st;
    blz_exit_status status;
} status_task;

static blz_poll
status_task_poll(blz_future *self, blz_context *cx)
{
    status_task *t = (status_task *) self;
    BLZ_ASYNC_BEGIN(self);
    blz_command_status_fut(t->cmd, &t->status, &t->st);
    BLZ_AWAIT(self, cx, &t->st.base);
    /* The code, checked against the status the future wrote. */
    BLZ_ASYNC_RETURN(self, t->st.base.result == t->status.code ? t->st.base.result : -EPROTO);
    BLZ_ASYNC_END(self);
}

static void
status_task_drop(blz_future *self)
{
    blz_future_drop(&((status_task *) self)->st.base);
}

static const blz_future_vtable status_task_vt = {status_task_poll, status_task_drop};

static void *
status_fut_main(void *arg)
{
    (void) arg;
    /* From a stackless task. */
    status_task t;
    memset(&t, 0, sizeof t);
    blz_future_init(&t.base, &status_task_vt);
    t.cmd = proc_cmd((const char *[]){"/bin/sh", "-c", "exit 7", NULL});
    blz_join *j = NULL;
    CHECK_OK(blz_spawn_future(&t.base, sizeof t, &j));
    void *res = NULL;
    CHECK_OK(blz_join_wait(j, &res));
    CHECK_EQ((int) (intptr_t) res, 7);
    blz_command_free(t.cmd);

    /* Piped streams nobody reads: closed on our side, so a child writing
     * more than a pipe holds ends (EPIPE) instead of waiting for ever. */
    blz_command *cmd = proc_cmd((const char *[]){
        "/bin/sh", "-c", "head -c 1000000 /dev/zero; head -c 1000000 /dev/zero >&2; exit 5", NULL});
    CHECK_OK(blz_command_stdout(cmd, BLZ_STDIO_PIPED));
    CHECK_OK(blz_command_stderr(cmd, BLZ_STDIO_PIPED));
    CHECK_EQ(blz_command_status(cmd, NULL), 5);
    blz_command_free(cmd);

    /* Dropped before its first poll: the child is reaped all the same. */
    cmd = proc_cmd((const char *[]){"/bin/sh", "-c", "exit 0", NULL});
    blz_command_status_future f;
    blz_command_status_fut(cmd, NULL, &f);
    blz_future_drop(&f.base);
    CHECK_EQ(f.base.result, -ECANCELED);
    blz_future_drop(&f.base); /* twice: nothing more */
    blz_command_free(cmd);
    proc_wait_no_children(10);

    /* Refusals. */
    blz_command_status_fut(NULL, NULL, &f);
    CHECK_EQ(blz_await(&f.base), -EINVAL);
    blz_command_status_fut(NULL, NULL, NULL); /* ignored */
    cmd = proc_cmd((const char *[]){"/nonexistent/program", NULL});
    blz_command_status_fut(cmd, NULL, &f);
    CHECK_EQ(blz_await(&f.base), -ENOENT);
    blz_command_free(cmd);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(status_future_tier)
{
    proc_run(2, status_fut_main, NULL);
}

BLZ_TEST(spawn_outside_runtime)
{
    blz_command *cmd;
    CHECK_OK(blz_command_new("/bin/true", &cmd));
    blz_child *c;
    CHECK_EQ(blz_command_spawn(cmd, &c), -ESRCH);
    blz_command_free(cmd);
}

/* A foreign thread (no runtime) awaits a child's output spawned inside one. */
static void *
spawn_for_foreign(void *arg)
{
    blz_command *cmd = proc_cmd((const char *[]){"/bin/echo", "foreign", NULL});
    CHECK_OK(blz_command_stdout(cmd, BLZ_STDIO_PIPED));
    CHECK_OK(blz_command_spawn(cmd, (blz_child **) arg));
    blz_command_free(cmd);
    return NULL;
}

BLZ_TEST(wait_from_foreign_thread)
{
    blz_runtime *rt = backend_runtime(2);
    blz_child *c = NULL;
    CHECK_OK(blz_runtime_block_on(rt, spawn_for_foreign, &c, NULL));
    char *s = proc_read_all(blz_child_pipe(c, BLZ_STDOUT), NULL);
    CHECK_STR_EQ(s, "foreign\n");
    free(s);
    CHECK_EQ(blz_child_wait(c, NULL), 0);
    blz_child_free(c);
    blz_runtime_free(rt);
    proc_check_no_children();
}
