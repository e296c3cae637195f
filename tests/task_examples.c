/*
 * tests/task_examples.c — examples/combinators as a child process: it exits 0
 * and prints each section's line, exactly and in order (the joined sum, the
 * try_join_all error with the slow shard dropped unfinished, the fastest
 * replica winning the race with no loser answering, the values received
 * after a receive lost a select), then "combinators: OK". Arguments are
 * refused with exit status 2.
 *
 * No sleeps: the test reads the child's output to its end, each read
 * bounded by the watchdog of example_child.h, and then reaps it.
 */
#include "example_child.h"
#include "harness.h"

/* Runs the example with `argv` to its end; its stderr goes to err_fd (-1: ours). */
static int
run_to_end(example_child *ch, const char *path, char *const argv[], int err_fd)
{
    example_start(ch, path, argv, err_fd);
    while (example_read_more(ch)) {
    }
    return example_wait(ch);
}

/* Finds `line` as a whole line of `out` at or after `*from`, and moves `*from`
 * past it, so that successive calls check the order. */
static void
expect_line(const char *out, const char **from, const char *line)
{
    const char *at = *from;
    size_t len = strlen(line);
    while ((at = strstr(at, line)) != NULL) {
        if ((at == out || at[-1] == '\n') && at[len] == '\n') {
            *from = at + len + 1;
            return;
        }
        at++;
    }
    fprintf(stderr, "missing, or out of order: \"%s\"\nthe example printed:\n%s\n", line, out);
    CHECK(!"an expected line is missing or out of order");
}

BLZ_TEST(every_section_behaves_and_prints_in_order)
{
    char pathbuf[PATH_MAX + 64];
    const char *path =
        example_require("combinators", "BLZ_COMBINATORS_BIN", pathbuf, sizeof pathbuf);
    example_child ch;
    char *argv[] = {(char *) path, NULL};
    int status = run_to_end(&ch, path, argv, -1);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "combinators ended with status 0x%x; output:\n%s\n", status, ch.buf);
    }
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);

    CHECK(strncmp(ch.buf, "combinators: ", 13) == 0); /* workers and backend */
    const char *from = ch.buf;
    expect_line(ch.buf, &from,
                "[1] fan-out/fan-in: 8 fibers joined, sum of squares below 1000 = 332833500");
    expect_line(ch.buf, &from,
                "[2] fail fast: try_join_all -> EIO; shard 0 finished with 10 rows; "
                "slow shard 2 finished: no, dropped: yes");
    expect_line(ch.buf, &from,
                "[3] speculative race: replica 1 (5 ms) won with answer 49; "
                "losers that answered: 0 of 2");
    expect_line(ch.buf, &from,
                "[4] select without loss: round 1 won by the timer; the values sent after it "
                "were received next: 42 then 43; channel then empty");
    expect_line(ch.buf, &from, "combinators: OK");
    CHECK_STR_EQ(from, ""); /* nothing after the verdict */
}

BLZ_TEST(arguments_are_refused_with_status_2)
{
    char pathbuf[PATH_MAX + 64];
    const char *path =
        example_require("combinators", "BLZ_COMBINATORS_BIN", pathbuf, sizeof pathbuf);
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    CHECK_GE(devnull, 0);
    example_child ch;
    char *argv[] = {(char *) path, "--fast", NULL};
    int status = run_to_end(&ch, path, argv, devnull);
    CHECK_OK(close(devnull));
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 2);
    CHECK_STR_EQ(ch.buf, ""); /* it ran no section */
}
