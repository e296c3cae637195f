/*
 * tests/fiber_overflow.c — a fiber that overflows its stack hits the guard page
 * below it and the process dies by SIGSEGV, instead of silently writing over
 * whatever lies below the stack. Each case runs the fiber in a forked child
 * with the default SIGSEGV action and checks how the child ended; a bounded
 * recursion in the same setup is the control that must exit 0.
 */
#include "fiber/fiber.h"
#include "harness.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* Not a constant, so the compiler cannot call the recursion infinite. */
static unsigned long depth_limit;

/* Each frame hands its buffer to the next, so the frame stays live during the
 * call and no tail-call or accumulator rewrite can turn this into a loop. */
static __attribute__((noinline)) unsigned long
recurse(unsigned long n, volatile unsigned char *up)
{
    volatile unsigned char buf[256];
    buf[0] = (unsigned char) (n + (up ? up[0] : 0));
    buf[sizeof buf - 1] = buf[0];
    if (n >= depth_limit) {
        return buf[0];
    }
    unsigned long r = recurse(n + 1, buf);
    return r + buf[sizeof buf - 1];
}

static void
recurse_entry(void *arg)
{
    (void) arg;
    (void) recurse(0, NULL);
}

#define CHILD_SKIP 77

/* Runs recurse_entry on a fiber in a child; returns the child's wait status. */
static int
run_in_child(enum blz__stack_guard guard, unsigned long limit)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK_OK(pid);
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        (void) setrlimit(RLIMIT_CORE, &no_core);
        /* The default action, whatever a sanitizer runtime installed. */
        (void) signal(SIGSEGV, SIG_DFL);
        depth_limit = limit;
        blz__stack_pool_opts opts = {.stack_size = 64 * 1024, .guard = guard};
        blz__stack_pool *pool;
        int rc = blz__stack_pool_new_opts(&opts, &pool);
        if (rc == -EOPNOTSUPP) {
            _exit(CHILD_SKIP);
        }
        blz__fiber *f;
        if (rc < 0 || blz__fiber_new(pool, recurse_entry, NULL, &f) < 0) {
            _exit(2);
        }
        bool done = blz__fiber_resume(f);
        _exit(done ? 0 : 3);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        CHECK_EQ(errno, EINTR);
    }
    return status;
}

static void
expect_sigsegv(enum blz__stack_guard guard)
{
    int status = run_in_child(guard, ~0ul);
    if (WIFEXITED(status) && WEXITSTATUS(status) == CHILD_SKIP) {
        SKIP("this kernel has no MADV_GUARD_INSTALL");
    }
    if (!WIFSIGNALED(status)) {
        CHECK(WIFEXITED(status));
        fprintf(stderr, "child exited with status %d instead of dying\n", WEXITSTATUS(status));
        CHECK(false);
    }
    CHECK_EQ(WTERMSIG(status), SIGSEGV);
}

BLZ_TEST(bounded_recursion_exits_cleanly)
{
    /* 16 frames of ~300 B: well inside 64 KiB, even at -O0 with ASan's redzones
     * (which can pass 600 B a frame). */
    int status = run_in_child(BLZ__STACK_GUARD_AUTO, 16);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
}

BLZ_TEST(overflow_dies_by_sigsegv)
{
    expect_sigsegv(BLZ__STACK_GUARD_AUTO);
}

BLZ_TEST(overflow_dies_by_sigsegv_mprotect_guard)
{
    expect_sigsegv(BLZ__STACK_GUARD_MPROTECT);
}

BLZ_TEST(overflow_dies_by_sigsegv_madvise_guard)
{
    expect_sigsegv(BLZ__STACK_GUARD_MADVISE);
}
