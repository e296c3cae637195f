/*
 * tests/harness_selftest.c — checks tests/harness.h itself, on plain C with no runtime:
 * passing checks pass, failing checks report both operands and end the test with status
 * 1, SKIP exits 77, cleanups run when a test ends early, the teardown catches a leaked
 * descriptor, a hung test is reported (with backtraces where gdb can attach) and killed,
 * and the counting allocator counts, aligns, fails on request and stays exact under
 * concurrent use.
 *
 * The failure cases run in a child process (run_capture) so that this file itself passes.
 */
#include "harness.h"

#include <pthread.h>

#if BLZ_TEST_HAVE_FORK
/* Runs fn in a child with stderr captured into out; returns the child's exit status, or
 * 128 + signal. */
static int
run_capture(void (*fn)(void), char *out, size_t outlen)
{
    int fds[2];
    CHECK_OK(pipe(fds));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK_OK(pid);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[1]);
        fn();
        fflush(stdout);
        _Exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fds[0], out + len, outlen - 1 - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        len += (size_t) n;
        if (len == outlen - 1) {
            break;
        }
    }
    out[len] = '\0';
    close(fds[0]);
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
#endif

BLZ_TEST(passing_checks_pass)
{
    int x = 3;
    long long big = 1LL << 40;
    CHECK(x == 3);
    CHECK_EQ(x, 3);
    CHECK_NE(x, 4);
    CHECK_LT(x, 4);
    CHECK_LE(x, 3);
    CHECK_GT(big, x);
    CHECK_GE(big, big);
    CHECK_EQ((size_t) 7, 7);
    CHECK_PTR_EQ(&x, &x);
    CHECK_PTR_NE(&x, NULL);
    CHECK_STR_EQ("abc", "abc");
    CHECK_EQ(CHECK_OK(42), 42);
    CHECK_EQ(CHECK_OK(0), 0);
}

#if BLZ_TEST_HAVE_FORK
static void
fail_eq(void)
{
    int three = 3;
    CHECK_EQ(three, 4);
}

static void
fail_ok(void)
{
    CHECK_OK(-ECANCELED);
}

static void
fail_str(void)
{
    CHECK_STR_EQ("left", NULL);
}

static void
skip_now(void)
{
    SKIP("no io_uring here");
}

static void
say_cleaned(void *what)
{
    printf("cleaned %s\n", (const char *) what);
}

static void
cleanup_then_skip(void)
{
    blz_test_cleanup_push(say_cleaned, "first");
    blz_test_cleanup_push(say_cleaned, "second");
    SKIP("backend missing");
}

static void
cleanup_then_fail(void)
{
    blz_test_cleanup_push(say_cleaned, "first");
    CHECK_EQ(1, 2);
}

static void
cleanup_popped_then_fail(void)
{
    blz_test_cleanup_push(say_cleaned, "kept");
    blz_test_cleanup_push(say_cleaned, "dropped");
    blz_test_cleanup_pop(say_cleaned, "dropped");
    CHECK_EQ(1, 2);
}

static void
fail_from_thread_body(void)
{
    CHECK_LT(10, 5);
}

static void *
fail_thread_main(void *arg)
{
    (void) arg;
    fail_from_thread_body();
    return NULL;
}

static void
fail_from_thread(void)
{
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, fail_thread_main, NULL), 0);
    pthread_join(t, NULL);
}

static void
leak_fd_body(void)
{
    int fds[2];
    CHECK_OK(pipe(fds)); /* never closed */
}

static void
run_leaky_case(void)
{
    struct blz_test_case tc = {"leaky", leak_fd_body, __LINE__};
    /* Quiet: the runner's own FAIL line would read like a failure of this file. */
    exit(blz_test_run_case_(&tc, 1) == BLZ_TEST_FAIL_ ? 0 : 1);
}
#endif

#if BLZ_TEST_HANG_REPORT
static void
hang_body(void)
{
    for (;;) {
        pause();
    }
}

static void
quick_body(void)
{
}

/* A case that never ends, with the run's time about to run out, then one that
 * would pass: it is not started, since the run's time is gone. */
static void
run_hung_case(void)
{
    blz_test_hang_deadline_ms_ = blz_test_now_ms_() + 200;
    struct blz_test_case hung = {"hung", hang_body, __LINE__};
    struct blz_test_case quick = {"quick", quick_body, __LINE__};
    enum blz_test_result_ first = blz_test_run_case_(&hung, 1);
    enum blz_test_result_ second = blz_test_run_case_(&quick, 1);
    exit(first == BLZ_TEST_FAIL_ && second == BLZ_TEST_FAIL_ ? 0 : 1);
}
#endif

BLZ_TEST(hang_is_reported_and_killed)
{
#if BLZ_TEST_HANG_REPORT
    if (getenv("BLZ_TEST_NOFORK")) {
        /* Not SKIP: in-process, a skip would end the whole run. */
        printf("    (in-process: hangs are not watched in this run; nothing to test)\n");
        return;
    }
    static char out[65536];
    CHECK_EQ(run_capture(run_hung_case, out, sizeof out), 0);
    CHECK(strstr(out, "hung still running as its time runs out") != NULL);
    CHECK(strstr(out, "quick not run") != NULL); /* not started, not killed */
    CHECK(strstr(out, "quick still running") == NULL);
    /* With gdb (and leave to attach) the backtraces name the hung function; under an
     * emulator they are the emulator's own threads; without gdb the harness says so. */
    const char *bt = strstr(out, "hang_body");
    printf("    (backtraces %s)\n", bt ? "shown" : "not of the test's own code here");
    CHECK(bt != NULL || strstr(out, "Thread 1 (") != NULL ||
          strstr(out, "harness: (no gdb") != NULL || strstr(out, "ptrace") != NULL);
#else
    SKIP("needs fork, Linux and pidfd_open");
#endif
}

BLZ_TEST(failed_check_reports_operands_and_exits_1)
{
#if BLZ_TEST_HAVE_FORK
    char out[2048];
    CHECK_EQ(run_capture(fail_eq, out, sizeof out), 1);
    CHECK(strstr(out, "harness_selftest.c:") != NULL);
    CHECK(strstr(out, "CHECK_EQ(three, 4)") != NULL);
    CHECK(strstr(out, "three = 3") != NULL);
    CHECK(strstr(out, "4 = 4") != NULL);

    CHECK_EQ(run_capture(fail_ok, out, sizeof out), 1);
    CHECK(strstr(out, "ECANCELED") != NULL);

    CHECK_EQ(run_capture(fail_str, out, sizeof out), 1);
    CHECK(strstr(out, "\"left\"") != NULL);
    CHECK(strstr(out, "NULL") != NULL);

    CHECK_EQ(run_capture(fail_from_thread, out, sizeof out), 1);
    CHECK(strstr(out, "CHECK_LT(10, 5)") != NULL);
#else
    SKIP("needs fork");
#endif
}

BLZ_TEST(skip_exits_77)
{
#if BLZ_TEST_HAVE_FORK
    char out[512];
    CHECK_EQ(run_capture(skip_now, out, sizeof out), 77);
    CHECK(strstr(out, "no io_uring here") != NULL);
#else
    SKIP("needs fork");
#endif
}

BLZ_TEST(cleanups_run_newest_first_when_a_test_ends_early)
{
#if BLZ_TEST_HAVE_FORK
    char out[512];
    CHECK_EQ(run_capture(cleanup_then_skip, out, sizeof out), 77);
    const char *second = strstr(out, "cleaned second");
    const char *first = strstr(out, "cleaned first");
    CHECK(second != NULL && first != NULL && second < first);

    CHECK_EQ(run_capture(cleanup_then_fail, out, sizeof out), 1);
    CHECK(strstr(out, "cleaned first") != NULL);

    CHECK_EQ(run_capture(cleanup_popped_then_fail, out, sizeof out), 1);
    CHECK(strstr(out, "cleaned kept") != NULL);
    CHECK(strstr(out, "cleaned dropped") == NULL);
#else
    SKIP("needs fork");
#endif
}

BLZ_TEST(teardown_catches_leaked_fd)
{
#if BLZ_TEST_HAVE_FORK
    if (getenv("BLZ_TEST_NOFORK") || getenv("BLZ_TEST_NO_FD_CHECK")) {
        /* Not SKIP: in-process, a skip would end the whole run. */
        printf("    (fd check disabled in this run; nothing to test)\n");
        return;
    }
    char out[512];
    CHECK_EQ(run_capture(run_leaky_case, out, sizeof out), 0);
    CHECK(strstr(out, "leaked file descriptor") != NULL);
#else
    SKIP("needs fork");
#endif
}

BLZ_TEST(counting_allocator_counts_and_aligns)
{
    long long live0 = blz_test_alloc_live(), bytes0 = blz_test_alloc_bytes();
    long long count0 = blz_test_alloc_count();

    unsigned char *a = blz_test_counting_malloc(10);
    CHECK_PTR_NE(a, NULL);
    CHECK_EQ((uintptr_t) a % 16, 0);
    memset(a, 0xab, 10);
    CHECK_EQ(blz_test_alloc_live(), live0 + 1);
    CHECK_EQ(blz_test_alloc_bytes(), bytes0 + 10);

    a = blz_test_counting_realloc(a, 1000);
    CHECK_PTR_NE(a, NULL);
    CHECK_EQ(a[9], 0xab);
    CHECK_EQ(blz_test_alloc_live(), live0 + 1);
    CHECK_EQ(blz_test_alloc_bytes(), bytes0 + 1000);

    void *b = blz_test_counting_realloc(NULL, 5); /* realloc(NULL, n) is malloc(n) */
    CHECK_PTR_NE(b, NULL);
    CHECK_EQ(blz_test_alloc_live(), live0 + 2);

    blz_test_counting_free(a);
    CHECK_PTR_EQ(blz_test_counting_realloc(b, 0), NULL); /* realloc(p, 0) frees p */
    blz_test_counting_free(NULL);
    CHECK_EQ(blz_test_alloc_live(), live0);
    CHECK_EQ(blz_test_alloc_bytes(), bytes0);
    CHECK_EQ(blz_test_alloc_count(), count0 + 3);
}

BLZ_TEST(counting_allocator_fails_on_request)
{
    blz_test_alloc_fail_after(0); /* the very next allocation fails */
    CHECK_PTR_EQ(blz_test_counting_malloc(8), NULL);
    void *p = blz_test_counting_malloc(8); /* one-shot: the next succeeds */
    CHECK_PTR_NE(p, NULL);

    blz_test_alloc_fail_after(2); /* two succeed, the third fails */
    void *q = blz_test_counting_malloc(8);
    void *r = blz_test_counting_realloc(p, 64);
    CHECK_PTR_NE(q, NULL);
    CHECK_PTR_NE(r, NULL);
    CHECK_PTR_EQ(blz_test_counting_realloc(r, 128), NULL); /* r is still valid */
    void *t = blz_test_counting_malloc(1);
    CHECK_PTR_NE(t, NULL);
    blz_test_counting_free(t);

    blz_test_alloc_fail_after(0);
    blz_test_alloc_fail_after(-1); /* disarmed */
    void *s = blz_test_counting_malloc(8);
    CHECK_PTR_NE(s, NULL);

    blz_test_counting_free(q);
    blz_test_counting_free(r);
    blz_test_counting_free(s);
    CHECK_PTR_EQ(blz_test_counting_malloc(SIZE_MAX), NULL);
}

enum { THREADS = 4, ROUNDS = 20000 };

static void *
alloc_churn(void *arg)
{
    (void) arg;
    for (int i = 0; i < ROUNDS; i++) {
        void *p = blz_test_counting_malloc((size_t) (i % 64) + 1);
        CHECK_PTR_NE(p, NULL);
        p = blz_test_counting_realloc(p, (size_t) (i % 128) + 1);
        CHECK_PTR_NE(p, NULL);
        blz_test_counting_free(p);
    }
    return NULL;
}

BLZ_TEST(counting_allocator_is_thread_safe)
{
    long long count0 = blz_test_alloc_count(), live0 = blz_test_alloc_live();
    long long bytes0 = blz_test_alloc_bytes();
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        CHECK_EQ(pthread_create(&t[i], NULL, alloc_churn, NULL), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        CHECK_EQ(pthread_join(t[i], NULL), 0);
    }
    CHECK_EQ(blz_test_alloc_live(), live0);
    CHECK_EQ(blz_test_alloc_bytes(), bytes0);
    CHECK_EQ(blz_test_alloc_count(), count0 + 2LL * THREADS * ROUNDS);
}
