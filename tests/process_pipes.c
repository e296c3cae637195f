/*
 * Piped I/O with children: 1 MiB through cat in both directions at once
 * (a writer and a reader fiber), the future tiers driven by hand, a stdin
 * pipe borrowed before a wait closed it, and 200 children spawned at once
 * with piped I/O, all reaped.
 */
/* blz-test: timeout=120 */
#include "process_common.h"

#include <fcntl.h>

#define MIB (1024 * 1024)

static unsigned char
pattern(size_t i)
{
    return (unsigned char) ((i * 2654435761u) >> 13);
}

typedef struct cat_io {
    blz_pipe *in;  /* owned by the writer, which closes it */
    blz_pipe *out; /* borrowed from the child */
    size_t n;
} cat_io;

static void *
writer(void *arg)
{
    cat_io *io = arg;
    unsigned char *buf = malloc(io->n);
    CHECK(buf != NULL);
    for (size_t i = 0; i < io->n; i++) {
        buf[i] = pattern(i);
    }
    /* Uneven pieces: a mix of full and partial pipe buffers. */
    size_t off = 0, step = 1;
    while (off < io->n) {
        size_t len = step < io->n - off ? step : io->n - off;
        CHECK_OK(blz_pipe_write_all(io->in, buf + off, len));
        off += len;
        step = step * 3 + 1;
        if (step > 300000) {
            step = 7;
        }
    }
    blz_pipe_close(io->in); /* end-of-file for cat */
    free(buf);
    return NULL;
}

static void *
reader(void *arg)
{
    cat_io *io = arg;
    unsigned char buf[16384];
    size_t got = 0;
    for (;;) {
        ssize_t n = CHECK_OK(blz_pipe_read(io->out, buf, sizeof buf));
        if (n == 0) {
            break;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != pattern(got + (size_t) i)) {
                CHECK_EQ(buf[i], pattern(got + (size_t) i));
            }
        }
        got += (size_t) n;
    }
    CHECK_EQ(got, io->n);
    return NULL;
}

static void *
cat_mib_main(void *arg)
{
    (void) arg;
    blz_command *cmd = proc_cmd((const char *[]){"/bin/cat", NULL});
    CHECK_OK(blz_command_stdin(cmd, BLZ_STDIO_PIPED));
    CHECK_OK(blz_command_stdout(cmd, BLZ_STDIO_PIPED));
    blz_child *c;
    CHECK_OK(blz_command_spawn(cmd, &c));
    cat_io io = {blz_child_take_pipe(c, BLZ_STDIN), blz_child_pipe(c, BLZ_STDOUT), MIB};
    blz_join *j[2];
    CHECK_OK(blz_spawn(writer, &io, &j[0]));
    CHECK_OK(blz_spawn(reader, &io, &j[1]));
    CHECK_OK(blz_join_all(j, 2, NULL));
    blz_exit_status st;
    CHECK_EQ(blz_child_wait(c, &st), 0);
    CHECK(blz_exit_status_success(&st));
    blz_child_free(c);
    blz_command_free(cmd);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(cat_one_mib_both_directions)
{
    proc_run(2, cat_mib_main, NULL);
}

/* The future tier, polled by hand from a fiber with a no-op waker (then
 * awaited): a read that must wait, a write, the wait future. */
static void *
futures_main(void *arg)
{
    (void) arg;
    blz_command *cmd = proc_cmd((const char *[]){"/bin/cat", NULL});
    CHECK_OK(blz_command_stdin(cmd, BLZ_STDIO_PIPED));
    CHECK_OK(blz_command_stdout(cmd, BLZ_STDIO_PIPED));
    blz_child *c;
    CHECK_OK(blz_command_spawn(cmd, &c));
    blz_context noop = {blz_waker_noop()};

    char buf[16];
    blz_io_future rf;
    blz_pipe_read_fut(blz_child_pipe(c, BLZ_STDOUT), buf, sizeof buf, &rf);
    CHECK_EQ(blz_future_poll(&rf.base, &noop), BLZ_PENDING); /* cat has said nothing yet */
    CHECK_EQ(blz_pipe_try_read(blz_child_pipe(c, BLZ_STDOUT), buf, sizeof buf), -EAGAIN);

    blz_io_future wf;
    blz_pipe_write_fut(blz_child_pipe(c, BLZ_STDIN), "ping", 4, &wf);
    CHECK_EQ(blz_await(&wf.base), 4);
    CHECK_EQ(blz_await(&rf.base), 4);
    CHECK(memcmp(buf, "ping", 4) == 0);

    /* A dropped read leaves the pipe usable. */
    blz_pipe_read_fut(blz_child_pipe(c, BLZ_STDOUT), buf, sizeof buf, &rf);
    CHECK_EQ(blz_future_poll(&rf.base, &noop), BLZ_PENDING);
    blz_future_drop(&rf.base);
    CHECK_EQ(rf.base.result, -ECANCELED);
    CHECK_EQ(blz__io_driver_waiters(blz__rt_io(blz__rt_current())), 0);

    CHECK_EQ(blz_pipe_try_write(blz_child_pipe(c, BLZ_STDIN), "pong", 4), 4);
    blz_io_future waf;
    blz_pipe_write_all_fut(blz_child_pipe(c, BLZ_STDIN), "!", 1, &waf);
    CHECK_EQ(blz_await(&waf.base), 0);
    char back[5] = {0};
    size_t got = 0;
    while (got < 5) {
        got += (size_t) CHECK_OK(blz_pipe_read(blz_child_pipe(c, BLZ_STDOUT), back + got, 5 - got));
    }
    CHECK(memcmp(back, "pong!", 5) == 0);

    /* A wait future polled while cat still runs, dropped, then a real wait. */
    blz_child_wait_future w;
    blz_exit_status st;
    blz_child_wait_fut(c, &st, &w); /* closes stdin: cat ends */
    CHECK(blz_child_pipe(c, BLZ_STDIN) == NULL);
    (void) blz_future_poll(&w.base, &noop);
    blz_future_drop(&w.base);
    blz_child_wait_fut(c, &st, &w);
    CHECK_EQ(blz_await(&w.base), 0);
    CHECK_EQ(st.code, 0);

    blz_child_free(c);
    blz_command_free(cmd);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(future_tiers)
{
    proc_run(2, futures_main, NULL);
}

static void *
blocked_reader(void *arg)
{
    char b[8];
    return (void *) (intptr_t) blz_pipe_read(arg, b, sizeof b);
}

static void *
close_wakes_main(void *arg)
{
    (void) arg;
    blz_command *cmd = proc_cmd((const char *[]){"/bin/sleep", "30", NULL});
    CHECK_OK(blz_command_stdout(cmd, BLZ_STDIO_PIPED));
    CHECK_OK(blz_command_kill_on_drop(cmd, true));
    blz_child *c;
    CHECK_OK(blz_command_spawn(cmd, &c));
    blz_pipe *out = blz_child_take_pipe(c, BLZ_STDOUT);
    blz_join *j;
    /* Close only once the reader waits: a fixed sleep lost the race on a
     * loaded machine (under TSan), and the reader then used a closed pipe. */
    blz__io_driver *d = blz__rt_io(blz__rt_current());
    uint64_t before = blz__io_driver_waiters(d);
    CHECK_OK(blz_spawn(blocked_reader, out, &j));
    for (int i = 0; i < 5000 && blz__io_driver_waiters(d) == before; i++) {
        CHECK_OK(blz_sleep(blz_ms(1)));
    }
    CHECK_GT(blz__io_driver_waiters(d), before);
    blz_pipe_close(out);
    void *r;
    CHECK_OK(blz_join_wait(j, &r));
    CHECK_EQ((intptr_t) r, -ECANCELED);
    int pid = blz_child_pid(c);
    blz_child_free(c); /* kill_on_drop: SIGKILL, then reaped in the background */
    proc_wait_gone(pid, 10);
    proc_check_no_children();
    blz_command_free(cmd);
    return NULL;
}

BLZ_TEST(close_ends_waiting_read)
{
    proc_run(2, close_wakes_main, NULL);
}

static void *
blocked_writer(void *arg)
{
    static char big[256 * 1024]; /* more than a pipe holds: the write waits */
    return (void *) (intptr_t) blz_pipe_write_all(arg, big, sizeof big);
}

/* The gate the child of borrowed_stdin_main waits for before it reads. */
typedef struct stdin_gate {
    blz_join *writer; /* the write the wait's close must end */
    char path[64];    /* created once it has ended */
} stdin_gate;

static void
remove_gate(void *arg)
{
    unlink(((stdin_gate *) arg)->path);
}

static void *
open_gate_once_the_write_ends(void *arg)
{
    stdin_gate *g = arg;
    WAIT_UNTIL(blz_join_is_finished(g->writer), CHECK_OK(blz_sleep(blz_ms(1))));
    int fd = open(g->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    CHECK_OK(fd);
    close(fd);
    return NULL;
}

/* A wait closes the stdin pipe the child holds, but a pointer borrowed
 * before it stays valid until the child is freed: calls through it fail
 * (a write waiting on it ends), and the child reading to end-of-file ends.
 * The child reads nothing until the write has ended (the gate file; 20 s at
 * most): a child that read early (it slept 0.2 s instead, which a loaded
 * machine outlasted) drained the pipe, and the write finished instead. */
static void *
borrowed_stdin_main(void *arg)
{
    (void) arg;
    static stdin_gate g;
    snprintf(g.path, sizeof g.path, "/tmp/blz-stdin-gate-%ld", (long) getpid());
    unlink(g.path);
    blz_test_cleanup_push(remove_gate, &g);
    blz_command *cmd = proc_cmd((const char *[]){
        "/bin/sh", "-c",
        "i=0; while [ ! -e \"$0\" ] && [ $i -lt 2000 ]; do sleep 0.01; i=$((i + 1)); done; "
        "cat >/dev/null",
        g.path, NULL});
    CHECK_OK(blz_command_stdin(cmd, BLZ_STDIO_PIPED));
    blz_child *c;
    CHECK_OK(blz_command_spawn(cmd, &c));
    blz_pipe *in = blz_child_pipe(c, BLZ_STDIN);
    CHECK(in != NULL);
    blz__io_driver *d = blz__rt_io(blz__rt_current());
    uint64_t before = blz__io_driver_waiters(d);
    blz_join *j;
    CHECK_OK(blz_spawn(blocked_writer, in, &j));
    WAIT_UNTIL(blz__io_driver_waiters(d) > before, CHECK_OK(blz_sleep(blz_ms(1))));
    g.writer = j;
    blz_join *opener;
    CHECK_OK(blz_spawn(open_gate_once_the_write_ends, &g, &opener));
    CHECK_EQ(blz_child_wait(c, NULL), 0);
    CHECK_OK(blz_join_wait(opener, NULL));
    void *r;
    CHECK_OK(blz_join_wait(j, &r));
    CHECK_EQ((intptr_t) r, -ECANCELED);
    remove_gate(&g);
    blz_test_cleanup_pop(remove_gate, &g);
    /* A few parks: the registry frees what was released at the start of one. */
    for (int i = 0; i < 5; i++) {
        CHECK_OK(blz_sleep(blz_ms(5)));
    }
    CHECK_EQ(blz_pipe_fd(in), -EBADF);
    CHECK_EQ(blz_pipe_write(in, "x", 1), -ECANCELED);
    CHECK_EQ(blz_pipe_try_write(in, "x", 1), -ECANCELED);
    CHECK_EQ(blz_pipe_write_all(in, "x", 1), -ECANCELED);
    /* Gone from the child: nothing to borrow or take (and close twice). */
    CHECK(blz_child_pipe(c, BLZ_STDIN) == NULL);
    CHECK(blz_child_take_pipe(c, BLZ_STDIN) == NULL);
    blz_child_free(c);
    blz_command_free(cmd);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(borrowed_stdin_after_wait)
{
    proc_run(2, borrowed_stdin_main, NULL);
}

/* ---- 200 children at once ------------------------------------------------------------- */

#define NCHILD 200

static void *
one_child(void *arg)
{
    intptr_t i = (intptr_t) arg;
    blz_command *cmd = proc_cmd((const char *[]){"/bin/cat", NULL});
    CHECK_OK(blz_command_stdin(cmd, BLZ_STDIO_PIPED));
    CHECK_OK(blz_command_stdout(cmd, BLZ_STDIO_PIPED));
    blz_child *c;
    CHECK_OK(blz_command_spawn(cmd, &c));
    char msg[64];
    int len = snprintf(msg, sizeof msg, "child %d says hello\n", (int) i);
    blz_pipe *in = blz_child_take_pipe(c, BLZ_STDIN);
    CHECK_OK(blz_pipe_write_all(in, msg, (size_t) len));
    blz_pipe_close(in);
    size_t got;
    char *back = proc_read_all(blz_child_pipe(c, BLZ_STDOUT), &got);
    CHECK_EQ(got, len);
    CHECK_STR_EQ(back, msg);
    free(back);
    CHECK_EQ(blz_child_wait(c, NULL), 0);
    blz_child_free(c);
    blz_command_free(cmd);
    return NULL;
}

static void *
many_main(void *arg)
{
    (void) arg;
    blz_join **j = calloc(NCHILD, sizeof *j);
    CHECK(j != NULL);
    for (intptr_t i = 0; i < NCHILD; i++) {
        CHECK_OK(blz_spawn(one_child, (void *) i, &j[i]));
    }
    CHECK_OK(blz_join_all(j, NCHILD, NULL));
    free(j);
    CHECK_EQ(blz__io_driver_sources(blz__rt_io(blz__rt_current())), 0);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(two_hundred_children)
{
    proc_run(2, many_main, NULL);
}

/* The same through output(), and half of them freed without a wait. */
static void *
one_output(void *arg)
{
    intptr_t i = (intptr_t) arg;
    char script[64];
    snprintf(script, sizeof script, "echo out%d; echo err%d >&2; exit %d", (int) i, (int) i,
             (int) (i % 7));
    blz_command *cmd = proc_cmd((const char *[]){"/bin/sh", "-c", script, NULL});
    if (i % 2) {
        blz_output o;
        CHECK_EQ(blz_command_output(cmd, &o), i % 7);
        char want[32];
        snprintf(want, sizeof want, "out%d\n", (int) i);
        CHECK_STR_EQ(o.out, want);
        snprintf(want, sizeof want, "err%d\n", (int) i);
        CHECK_STR_EQ(o.err, want);
        blz_output_deinit(&o);
    } else {
        CHECK_OK(blz_command_stdout(cmd, BLZ_STDIO_NULL));
        CHECK_OK(blz_command_stderr(cmd, BLZ_STDIO_NULL));
        blz_child *c;
        CHECK_OK(blz_command_spawn(cmd, &c));
        int pid = blz_child_pid(c);
        blz_child_free(c); /* never waited: the reaper does it */
        proc_wait_gone(pid, 20);
    }
    blz_command_free(cmd);
    return NULL;
}

static void *
many_output_main(void *arg)
{
    (void) arg;
    blz_join **j = calloc(NCHILD, sizeof *j);
    CHECK(j != NULL);
    for (intptr_t i = 0; i < NCHILD; i++) {
        CHECK_OK(blz_spawn(one_output, (void *) i, &j[i]));
    }
    CHECK_OK(blz_join_all(j, NCHILD, NULL));
    free(j);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(two_hundred_outputs_and_drops)
{
    proc_run(2, many_output_main, NULL);
}

/* ---- the stream interfaces ------------------------------------------------------------- */

/* printf | sort, joined in the parent with blz_copy, read back by lines. */
static void *
copier(void *arg)
{
    blz_child **kids = arg;
    blz_pipe *in = blz_child_take_pipe(kids[1], BLZ_STDIN);
    uint64_t copied = 0;
    CHECK_OK(blz_copy(blz_pipe_reader(blz_child_pipe(kids[0], BLZ_STDOUT)), blz_pipe_writer(in),
                      &copied));
    CHECK_EQ(copied, 15);
    blz_pipe_close(in);
    return NULL;
}

static void *
stream_main(void *arg)
{
    (void) arg;
    blz_command *gen =
        proc_cmd((const char *[]){"/bin/sh", "-c", "printf 'pear\\napple\\nfig\\n'", NULL});
    CHECK_OK(blz_command_stdout(gen, BLZ_STDIO_PIPED));
    blz_command *sort = proc_cmd((const char *[]){"sort", NULL});
    CHECK_OK(blz_command_stdin(sort, BLZ_STDIO_PIPED));
    CHECK_OK(blz_command_stdout(sort, BLZ_STDIO_PIPED));
    blz_child *kids[2];
    CHECK_OK(blz_command_spawn(gen, &kids[0]));
    CHECK_OK(blz_command_spawn(sort, &kids[1]));
    blz_join *j;
    CHECK_OK(blz_spawn(copier, kids, &j));

    blz_buf_reader br;
    CHECK_OK(
        blz_buf_reader_init(&br, blz_pipe_reader(blz_child_pipe(kids[1], BLZ_STDOUT)), NULL, 0));
    char line[32];
    const char *want[] = {"apple\n", "fig\n", "pear\n"};
    for (int i = 0; i < 3; i++) {
        CHECK_OK(blz_buf_reader_read_line(&br, line, sizeof line));
        CHECK_STR_EQ(line, want[i]);
    }
    CHECK_EQ(blz_buf_reader_read_line(&br, line, sizeof line), 0);
    blz_buf_reader_deinit(&br);
    CHECK_OK(blz_join_wait(j, NULL));
    /* The wrong direction through the interfaces. */
    char b[4];
    CHECK_EQ(blz_read(blz_pipe_reader(NULL), b, sizeof b), -EINVAL);
    CHECK_EQ(blz_write(blz_pipe_writer(blz_child_pipe(kids[1], BLZ_STDOUT)), "x", 1), -EBADF);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(blz_child_wait(kids[i], NULL), 0);
        blz_child_free(kids[i]);
    }
    blz_command_free(gen);
    blz_command_free(sort);
    proc_check_no_children();
    return NULL;
}

BLZ_TEST(reader_writer_pipeline)
{
    proc_run(2, stream_main, NULL);
}
