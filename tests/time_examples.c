/*
 * tests/time_examples.c — examples/timeouts as a child process, on each
 * backend (BLZ_BACKEND set for the child): it exits 0 and prints every
 * section's key line, in order — the receive that timed out with -ETIMEDOUT,
 * the value received after it, the deadline's steps (two done, the third cut
 * off with -ETIMEDOUT, the fourth not started), the connect that succeeded
 * after backing off and the listener's greeting, the interval's tick count,
 * and the closing line. Arguments exit 2.
 *
 * No sleeps: the test reads the child's output to its end, each read bounded
 * by the EXAMPLE_WATCHDOG_S watchdog, so a hang is a failure.
 */
#include "example_child.h"
#include "harness.h"

/* The first line at or after `from` that contains every one of `needles`
 * (NULL-terminated); NULL when there is none. */
static const char *
find_line(const char *from, const char *const needles[])
{
    for (const char *line = from; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t) (end - line) : strlen(line);
        bool all = true;
        for (int i = 0; needles[i] && all; i++) {
            const char *hit = strstr(line, needles[i]);
            all = hit && hit + strlen(needles[i]) <= line + len;
        }
        if (all) {
            return line;
        }
        line = end ? end + 1 : line + len;
    }
    return NULL;
}

/* Runs the example with BLZ_BACKEND=`backend` and checks its output. */
static void
run_and_check(const char *backend)
{
    char pathbuf[PATH_MAX + 64];
    const char *path = example_require("timeouts", "BLZ_TIMEOUTS_BIN", pathbuf, sizeof pathbuf);
    CHECK_OK(setenv("BLZ_BACKEND", backend, 1)); /* only this test's forked process */
    example_child ch;
    char *argv[] = {(char *) path, NULL};
    example_start(&ch, path, argv, -1);
    while (example_read_more(&ch)) {
    }
    int status = example_wait(&ch);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "timeouts exited with status 0x%x; its output:\n%s\n", status, ch.buf);
    }
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);

    /* Each key line, after the one before it. */
    static const char *const backend_line[] = {"timeouts: backend ", NULL};
    static const char *const timed_out[] = {"1. ", "receive", "-ETIMEDOUT", NULL};
    static const char *const received[] = {"1. ", "next receive got 42", NULL};
    static const char *const step1[] = {"2. step 1", "done", NULL};
    static const char *const step2[] = {"2. step 2", "done", NULL};
    static const char *const step3[] = {"2. step 3", "-ETIMEDOUT", NULL};
    static const char *const step4[] = {"2. step 4", "not started", NULL};
    static const char *const retry_intro[] = {"3. a listener appears", NULL};
    static const char *const connected[] = {"3. attempt ", ": connected", NULL};
    static const char *const greeting[] = {"3. the listener said \"hello\"", NULL};
    static const char *const ticks[] = {"4. interval: 5 ticks every 20 ms", NULL};
    static const char *const all_ok[] = {"timeouts: every section behaved as described", NULL};
    static const char *const *const order[] = {
        backend_line, timed_out,   received,  step1,    step2, step3,
        step4,        retry_intro, connected, greeting, ticks, all_ok,
    };
    const char *at = ch.buf;
    const char *connected_line = NULL;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const char *line = find_line(at, order[i]);
        if (order[i] == connected) {
            connected_line = line;
        }
        if (!line) {
            fprintf(stderr, "after offset %zu, no line with", (size_t) (at - ch.buf));
            for (int k = 0; order[i][k]; k++) {
                fprintf(stderr, " \"%s\"", order[i][k]);
            }
            fprintf(stderr, "; the output:\n%s\n", ch.buf);
        }
        CHECK(line != NULL);
        at = strchr(line, '\n');
        CHECK(at != NULL);
        at++;
    }
    /* The connect succeeded on the attempt its line names, and every attempt
     * before it was refused (none of them failed for another reason). */
    int n = atoi(connected_line + strlen("3. attempt "));
    CHECK_GE(n, 1);
    for (int k = 1; k < n; k++) {
        char want[64];
        snprintf(want, sizeof want, "3. attempt %d: -ECONNREFUSED, next attempt in ", k);
        CHECK(strstr(ch.buf, want) != NULL);
    }
    char want_backend[64];
    snprintf(want_backend, sizeof want_backend, "timeouts: backend %s\n", backend);
    if (!strstr(ch.buf, want_backend)) {
        fprintf(stderr, "note: %s unavailable here; the example ran on the fallback\n", backend);
    }
}

BLZ_TEST(sections_in_order_epoll)
{
    run_and_check("epoll");
}

BLZ_TEST(sections_in_order_io_uring)
{
    run_and_check("io_uring");
}

BLZ_TEST(arguments_exit_2)
{
    char pathbuf[PATH_MAX + 64];
    const char *path = example_require("timeouts", "BLZ_TIMEOUTS_BIN", pathbuf, sizeof pathbuf);
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    CHECK_GE(devnull, 0);
    example_child ch;
    char *argv[] = {(char *) path, "extra", NULL};
    example_start(&ch, path, argv, devnull);
    while (example_read_more(&ch)) {
    }
    int status = example_wait(&ch);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 2);
    CHECK_EQ(ch.len, 0);
    CHECK_OK(close(devnull));
}
