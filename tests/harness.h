/*
 * tests/harness.h — blitzio's single-header test harness.
 *
 * A test file is one executable (tests/<module>_<topic>.c, registered by blz_add_test in
 * CMakeLists.txt). It includes this header, defines tests, and gets main() for free:
 *
 *     #include "harness.h"
 *
 *     BLZ_TEST(mutex_try_lock_twice)
 *     {
 *         blz_mutex m;
 *         blz_mutex_init(&m);
 *         CHECK_OK(blz_mutex_try_lock(&m));
 *         CHECK_EQ(blz_mutex_try_lock(&m), -EAGAIN);
 *     }
 *
 * Running. Tests run in the order they appear in the file. Each runs in a forked child
 * (where fork exists), so a failed CHECK, a crash or a sanitizer report ends only that
 * test, and no state leaks from one test into the next. The runner prints `ok <name>`,
 * `FAIL <name>` or `skip <name>` per test and closes with `N passed, N failed` (then
 * `, N skipped` when any were). Exit status: 1 if any test failed, 77 if every test that
 * ran skipped, 0 otherwise.
 *
 *     test_foo                 run every test
 *     test_foo lock            run the tests whose name contains "lock"
 *     test_foo --list          print the test names
 *     BLZ_TEST_NOFORK=1        run in-process (for gdb); the first failure or skip then
 *                              ends the whole executable
 *     BLZ_TEST_ABORT=1         abort() on a failed check instead of exiting (core, gdb)
 *     BLZ_TEST_EMULATOR=name   running under an emulator (blz_test_emulator())
 *
 * Checks. CHECK(cond); CHECK_EQ/NE/LT/LE/GT/GE(a, b) compare integers as long long and
 * print both operands; CHECK_PTR_EQ/NE compare object pointers; CHECK_STR_EQ compares
 * C strings; CHECK_OK(expr) wants expr >= 0 and evaluates to its value, so
 * `ssize_t n = CHECK_OK(blz_tcp_read(s, buf, len));` works. A failed check prints
 * file:line, the expression and the operands, and ends the test. Checks may be used from
 * any thread or fiber: failure ends the process the test runs in (_Exit), never unwinds.
 * SKIP("why") ends the test as skipped (exit 77). test_rand(&state) is a small
 * deterministic generator (xorshift32; a zero state starts from a fixed seed), so a
 * failing random test replays. WAIT_UNTIL(cond, nap) waits for
 * something another thread or task does: it runs the statement `nap` (a 1 ms sleep of
 * the caller's kind, e.g. blz_sleep(blz_ms(1)) in a fiber) until cond holds, and fails
 * the test after 10,000 naps (about 10 s on a machine that is not starved).
 *
 * Hangs. ctest passes the test's TIMEOUT as BLZ_TEST_TIMEOUT (seconds). A test still
 * running a few seconds before that runs out is reported with every thread's backtrace
 * (gdb, when installed) and killed, so a rare hang in CI leaves evidence instead of a
 * bare "Timeout" (Linux; forked mode only).
 *
 * Cleanups. blz_test_cleanup_push(fn, arg) registers fn(arg) to run, newest first, when a
 * failed check or a SKIP ends the running test early (from any thread), so that what it
 * made outside its process, such as a scratch directory, does not outlive it; a test that
 * gets to undo that itself first calls blz_test_cleanup_pop(fn, arg). At most
 * BLZ_TEST_MAX_CLEANUPS at once.
 *
 * Teardown. After each test body returns, the harness fails the test if it left a file
 * descriptor open that was not open before it started, or (when the counting allocator
 * is installed) a blitzio allocation unfreed. Set BLZ_TEST_NO_FD_CHECK=1 to silence the
 * fd check for a run.
 *
 * Counting allocator. blz_test_counting_allocator_install() routes blitzio's allocations
 * (blz_set_allocator) through counters readable with blz_test_alloc_live() (blocks not
 * yet freed), blz_test_alloc_bytes() (bytes not yet freed) and blz_test_alloc_count()
 * (successful allocations, realloc included). blz_test_alloc_fail_after(n) lets n more
 * allocations succeed and makes the one after them return NULL, once; -1 disarms it.
 * Counters are atomics: any thread may allocate.
 *
 * The harness depends on nothing from blitzio but the blz_set_allocator symbol, and on
 * that only when the counting allocator is installed.
 */
#ifndef BLZ_TEST_HARNESS_H
#define BLZ_TEST_HARNESS_H

#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE) && \
    !defined(_DEFAULT_SOURCE)
# define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* UNDER_TSAN, UNDER_ASAN: 1 in a ThreadSanitizer or AddressSanitizer build
 * (gcc's and clang's spellings), for tests that must scale down or skip a
 * check the sanitizer makes impossible. */
#if defined(__SANITIZE_THREAD__)
# define UNDER_TSAN 1
#elif defined(__has_feature)
# if __has_feature(thread_sanitizer)
#  define UNDER_TSAN 1
# endif
#endif
#ifndef UNDER_TSAN
# define UNDER_TSAN 0
#endif
#if defined(__SANITIZE_ADDRESS__)
# define UNDER_ASAN 1
#elif defined(__has_feature)
# if __has_feature(address_sanitizer)
#  define UNDER_ASAN 1
# endif
#endif
#ifndef UNDER_ASAN
# define UNDER_ASAN 0
#endif

#if defined(_WIN32)
# define BLZ_TEST_HAVE_FORK 0
#else
# define BLZ_TEST_HAVE_FORK 1
# include <fcntl.h>
# include <signal.h>
# include <sys/types.h>
# include <sys/wait.h>
# include <unistd.h>
# if defined(__linux__)
#  include <poll.h>
#  include <spawn.h>
#  include <sys/prctl.h>
#  include <sys/syscall.h>
#  include <time.h>
# endif
#endif

#ifndef BLZ_COMMON_H
/* Declared here so the harness stands alone; include/blitzio/common.h has the same. */
void blz_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                       void (*free_fn)(void *));
#endif

/* ---------------------------------------------------------------------------------------
 * Registry
 * ------------------------------------------------------------------------------------- */

typedef void (*blz_test_fn)(void);

struct blz_test_case {
    const char *name; /* as written in BLZ_TEST(name) */
    blz_test_fn fn;   /* the test body */
    int line;         /* where it is defined: tests run in file order */
};

#ifndef BLZ_TEST_MAX
# define BLZ_TEST_MAX 512
#endif

static struct blz_test_case blz_test_cases_[BLZ_TEST_MAX];
static size_t blz_test_ncases_;
/* Name of the running test, for messages; NULL outside a test. */
static const char *blz_test_current_;
/* Nonzero when the running test is in a forked child, so failure need not report. */
static int blz_test_in_child_;

static inline void
blz_test_register_(const char *name, blz_test_fn fn, int line)
{
    if (blz_test_ncases_ == BLZ_TEST_MAX) {
        fprintf(stderr, "harness: more than %d tests in one file; define BLZ_TEST_MAX\n",
                BLZ_TEST_MAX);
        exit(1);
    }
    blz_test_cases_[blz_test_ncases_].name = name;
    blz_test_cases_[blz_test_ncases_].fn = fn;
    blz_test_cases_[blz_test_ncases_].line = line;
    blz_test_ncases_++;
}

/* Defines and registers a test. Follow it with the body in braces. */
#define BLZ_TEST(name)                                                   \
 static void blz_test_body_##name(void);                                 \
 __attribute__((constructor)) static void blz_test_register_##name(void) \
 {                                                                       \
  blz_test_register_(#name, blz_test_body_##name, __LINE__);             \
 }                                                                       \
 static void blz_test_body_##name(void)

/* ---------------------------------------------------------------------------------------
 * Failure reporting and checks
 * ------------------------------------------------------------------------------------- */

static size_t blz_test_passed_, blz_test_failed_, blz_test_skipped_;

static inline void
blz_test_summary_(void)
{
    if (blz_test_skipped_) {
        printf("%zu passed, %zu failed, %zu skipped\n", blz_test_passed_, blz_test_failed_,
               blz_test_skipped_);
    } else {
        printf("%zu passed, %zu failed\n", blz_test_passed_, blz_test_failed_);
    }
}

/* ---- cleanups of the running test (see "Cleanups" above) ---- */

#define BLZ_TEST_MAX_CLEANUPS 8

typedef void (*blz_test_cleanup_fn)(void *arg);

static struct {
    blz_test_cleanup_fn fn;
    void *arg;
} blz_test_cleanups_[BLZ_TEST_MAX_CLEANUPS];
static size_t blz_test_ncleanups_;
static atomic_flag blz_test_cleaning_ = ATOMIC_FLAG_INIT;

_Noreturn static inline void blz_test_fail_(void);

static inline void
blz_test_cleanup_push(blz_test_cleanup_fn fn, void *arg)
{
    if (blz_test_ncleanups_ == BLZ_TEST_MAX_CLEANUPS) {
        fprintf(stderr, "harness: more than %d cleanups at once\n", BLZ_TEST_MAX_CLEANUPS);
        blz_test_fail_();
    }
    blz_test_cleanups_[blz_test_ncleanups_].fn = fn;
    blz_test_cleanups_[blz_test_ncleanups_].arg = arg;
    blz_test_ncleanups_++;
}

/* Drops the newest registration of fn(arg), without running it. */
static inline void
blz_test_cleanup_pop(blz_test_cleanup_fn fn, void *arg)
{
    for (size_t i = blz_test_ncleanups_; i-- > 0;) {
        if (blz_test_cleanups_[i].fn == fn && blz_test_cleanups_[i].arg == arg) {
            memmove(&blz_test_cleanups_[i], &blz_test_cleanups_[i + 1],
                    (blz_test_ncleanups_ - i - 1) * sizeof blz_test_cleanups_[0]);
            blz_test_ncleanups_--;
            return;
        }
    }
}

/* Runs the registered cleanups once, newest first (the first thread to end the test). */
static inline void
blz_test_run_cleanups_(void)
{
    if (atomic_flag_test_and_set(&blz_test_cleaning_)) {
        return;
    }
    while (blz_test_ncleanups_ > 0) {
        blz_test_ncleanups_--;
        blz_test_cleanups_[blz_test_ncleanups_].fn(blz_test_cleanups_[blz_test_ncleanups_].arg);
    }
}

/* Ends the running test as failed. In-process (no fork), that ends the executable. */
_Noreturn static inline void
blz_test_fail_(void)
{
    blz_test_run_cleanups_();
    fflush(stdout);
    fflush(stderr);
    if (getenv("BLZ_TEST_ABORT")) {
        abort();
    }
    if (!blz_test_in_child_) {
        blz_test_failed_++;
        printf("FAIL %s\n", blz_test_current_ ? blz_test_current_ : "(no test)");
        blz_test_summary_();
        fflush(stdout);
    }
    _Exit(1);
}

/* The emulator the tests run under (BLZ_TEST_EMULATOR, set by `make check-aarch64`),
 * or NULL on the real machine. A test may skip a case the emulator cannot run; natively
 * the same case must pass. */
static inline const char *
blz_test_emulator(void)
{
    const char *e = getenv("BLZ_TEST_EMULATOR");
    return e && *e ? e : NULL;
}

/* The fields after the name of the /proc stat file at `path` (a process's
 * or a thread's), read into `line`: " S ppid ...", or NULL when it cannot
 * be read. */
static inline const char *
blz_test_stat_fields(const char *path, char *line, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        return NULL;
    }
    size_t n = fread(line, 1, cap - 1, f);
    fclose(f);
    line[n] = '\0';
    const char *rp = strrchr(line, ')'); /* the name may hold spaces */
    return rp && rp[1] == ' ' ? rp + 1 : NULL;
}

/* The state letter ('R', 'S', 'Z'...) of the /proc stat file at `path`, or 0
 * when it cannot be read. */
static inline char
blz_test_stat_state(const char *path)
{
    char line[512];
    const char *fields = blz_test_stat_fields(path, line, sizeof line);
    return fields ? fields[1] : 0;
}

/* Ends the running test as skipped (exit status 77). */
_Noreturn static inline void
blz_test_skip_(const char *why, const char *file, int line)
{
    blz_test_run_cleanups_();
    fflush(stdout);
    fprintf(stderr, "%s:%d: skipped: %s\n", file, line, why);
    fflush(stderr);
    if (!blz_test_in_child_) {
        printf("skip %s\n", blz_test_current_ ? blz_test_current_ : "(no test)");
        fflush(stdout);
    }
    _Exit(77);
}

/* The symbolic name of an errno value, or NULL. */
static inline const char *
blz_test_errname_(long long e)
{
    static const struct {
        int value;
        const char *name;
    } names[] = {
        {EPERM, "EPERM"},
        {ENOENT, "ENOENT"},
        {ESRCH, "ESRCH"},
        {EINTR, "EINTR"},
        {EIO, "EIO"},
        {EBADF, "EBADF"},
        {ECHILD, "ECHILD"},
        {EAGAIN, "EAGAIN"},
        {ENOMEM, "ENOMEM"},
        {EACCES, "EACCES"},
        {EFAULT, "EFAULT"},
        {EBUSY, "EBUSY"},
        {EEXIST, "EEXIST"},
        {ENOTDIR, "ENOTDIR"},
        {EISDIR, "EISDIR"},
        {EINVAL, "EINVAL"},
        {ENFILE, "ENFILE"},
        {EMFILE, "EMFILE"},
        {ENOSPC, "ENOSPC"},
        {ESPIPE, "ESPIPE"},
        {EPIPE, "EPIPE"},
        {ERANGE, "ERANGE"},
        {EDEADLK, "EDEADLK"},
        {ENAMETOOLONG, "ENAMETOOLONG"},
        {ENOSYS, "ENOSYS"},
        {ENOTEMPTY, "ENOTEMPTY"},
        {ELOOP, "ELOOP"},
#ifdef ENOTSUP
        {ENOTSUP, "ENOTSUP"},
#endif
#ifdef EOVERFLOW
        {EOVERFLOW, "EOVERFLOW"},
#endif
#ifdef ECANCELED
        {ECANCELED, "ECANCELED"},
#endif
#ifdef ETIMEDOUT
        {ETIMEDOUT, "ETIMEDOUT"},
#endif
#ifdef ESHUTDOWN
        {ESHUTDOWN, "ESHUTDOWN"},
#endif
#ifdef EINPROGRESS
        {EINPROGRESS, "EINPROGRESS"},
#endif
#ifdef ECONNREFUSED
        {ECONNREFUSED, "ECONNREFUSED"},
#endif
#ifdef ECONNRESET
        {ECONNRESET, "ECONNRESET"},
#endif
#ifdef ECONNABORTED
        {ECONNABORTED, "ECONNABORTED"},
#endif
#ifdef ENOTCONN
        {ENOTCONN, "ENOTCONN"},
#endif
#ifdef EADDRINUSE
        {EADDRINUSE, "EADDRINUSE"},
#endif
#ifdef EADDRNOTAVAIL
        {EADDRNOTAVAIL, "EADDRNOTAVAIL"},
#endif
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (names[i].value == e) {
            return names[i].name;
        }
    }
    return NULL;
}

static inline void
blz_test_check_(int ok, const char *expr, const char *file, int line)
{
    if (!ok) {
        fprintf(stderr, "%s:%d: CHECK(%s) failed\n", file, line, expr);
        blz_test_fail_();
    }
}

enum blz_test_op_ {
    BLZ_TEST_EQ_,
    BLZ_TEST_NE_,
    BLZ_TEST_LT_,
    BLZ_TEST_LE_,
    BLZ_TEST_GT_,
    BLZ_TEST_GE_
};

static inline void
blz_test_cmp_(enum blz_test_op_ op, long long a, long long b, const char *sa, const char *sb,
              const char *file, int line)
{
    static const char *const macro[] = {"CHECK_EQ", "CHECK_NE", "CHECK_LT",
                                        "CHECK_LE", "CHECK_GT", "CHECK_GE"};
    static const char *const rel[] = {"==", "!=", "<", "<=", ">", ">="};
    int ok = 0;
    switch (op) {
    case BLZ_TEST_EQ_:
        ok = a == b;
        break;
    case BLZ_TEST_NE_:
        ok = a != b;
        break;
    case BLZ_TEST_LT_:
        ok = a < b;
        break;
    case BLZ_TEST_LE_:
        ok = a <= b;
        break;
    case BLZ_TEST_GT_:
        ok = a > b;
        break;
    case BLZ_TEST_GE_:
        ok = a >= b;
        break;
    }
    if (ok) {
        return;
    }
    fprintf(stderr, "%s:%d: %s(%s, %s) failed: expected %s %s %s\n", file, line, macro[op], sa, sb,
            sa, rel[op], sb);
    fprintf(stderr, "    %s = %lld (0x%llx)\n", sa, a, (unsigned long long) a);
    fprintf(stderr, "    %s = %lld (0x%llx)\n", sb, b, (unsigned long long) b);
    blz_test_fail_();
}

static inline void
blz_test_ptr_(int want_equal, const void *a, const void *b, const char *sa, const char *sb,
              const char *file, int line)
{
    if ((a == b) == !!want_equal) {
        return;
    }
    fprintf(stderr, "%s:%d: %s(%s, %s) failed\n    %s = %p\n    %s = %p\n", file, line,
            want_equal ? "CHECK_PTR_EQ" : "CHECK_PTR_NE", sa, sb, sa, a, sb, b);
    blz_test_fail_();
}

static inline void
blz_test_str_eq_(const char *a, const char *b, const char *sa, const char *sb, const char *file,
                 int line)
{
    if (a && b && strcmp(a, b) == 0) {
        return;
    }
    fprintf(stderr, "%s:%d: CHECK_STR_EQ(%s, %s) failed\n    %s = %s%s%s\n    %s = %s%s%s\n", file,
            line, sa, sb, sa, a ? "\"" : "", a ? a : "NULL", a ? "\"" : "", sb, b ? "\"" : "",
            b ? b : "NULL", b ? "\"" : "");
    blz_test_fail_();
}

static inline long long
blz_test_ok_(long long rc, const char *expr, const char *file, int line)
{
    if (rc >= 0) {
        return rc;
    }
    const char *name = rc >= -INT_MAX ? blz_test_errname_(-rc) : NULL;
    fprintf(stderr, "%s:%d: CHECK_OK(%s) failed: returned %lld (%s%s%s)\n", file, line, expr, rc,
            name ? name : "", name ? ": " : "",
            rc >= -INT_MAX ? strerror((int) -rc) : "not an errno value");
    blz_test_fail_();
}

#define CHECK(cond) blz_test_check_(!!(cond), #cond, __FILE__, __LINE__)
#define CHECK_EQ(a, b) \
 blz_test_cmp_(BLZ_TEST_EQ_, (long long) (a), (long long) (b), #a, #b, __FILE__, __LINE__)
#define CHECK_NE(a, b) \
 blz_test_cmp_(BLZ_TEST_NE_, (long long) (a), (long long) (b), #a, #b, __FILE__, __LINE__)
#define CHECK_LT(a, b) \
 blz_test_cmp_(BLZ_TEST_LT_, (long long) (a), (long long) (b), #a, #b, __FILE__, __LINE__)
#define CHECK_LE(a, b) \
 blz_test_cmp_(BLZ_TEST_LE_, (long long) (a), (long long) (b), #a, #b, __FILE__, __LINE__)
#define CHECK_GT(a, b) \
 blz_test_cmp_(BLZ_TEST_GT_, (long long) (a), (long long) (b), #a, #b, __FILE__, __LINE__)
#define CHECK_GE(a, b) \
 blz_test_cmp_(BLZ_TEST_GE_, (long long) (a), (long long) (b), #a, #b, __FILE__, __LINE__)
#define CHECK_PTR_EQ(a, b) \
 blz_test_ptr_(1, (const void *) (a), (const void *) (b), #a, #b, __FILE__, __LINE__)
#define CHECK_PTR_NE(a, b) \
 blz_test_ptr_(0, (const void *) (a), (const void *) (b), #a, #b, __FILE__, __LINE__)
#define CHECK_STR_EQ(a, b) blz_test_str_eq_((a), (b), #a, #b, __FILE__, __LINE__)
#define CHECK_OK(expr)     blz_test_ok_((long long) (expr), #expr, __FILE__, __LINE__)
#define SKIP(msg)          blz_test_skip_((msg), __FILE__, __LINE__)
#define WAIT_UNTIL(cond, nap)                                                                \
 do {                                                                                        \
  for (int blz_test_naps_ = 0; !(cond); blz_test_naps_++) {                                  \
   blz_test_check_(blz_test_naps_ < 10000, #cond " within 10,000 naps", __FILE__, __LINE__); \
   nap;                                                                                      \
  }                                                                                          \
 } while (0)

/* ---------------------------------------------------------------------------------------
 * Counting allocator
 * ------------------------------------------------------------------------------------- */

/* Each block carries its size in a prefix as large as the strictest alignment, so the
 * pointer handed out keeps malloc's alignment (16 on the 64-bit ABIs). */
#define BLZ_TEST_ALLOC_PREFIX_ (_Alignof(max_align_t) > 16 ? _Alignof(max_align_t) : 16)
_Static_assert(BLZ_TEST_ALLOC_PREFIX_ >= sizeof(size_t), "prefix holds a size_t");

static atomic_llong blz_test_alloc_live_;           /* blocks handed out, not yet freed */
static atomic_llong blz_test_alloc_bytes_;          /* bytes handed out, not yet freed */
static atomic_llong blz_test_alloc_count_;          /* successful allocations, ever */
static atomic_llong blz_test_alloc_countdown_ = -1; /* -1: off; n: n succeed, then fail */
static atomic_int blz_test_alloc_installed_;        /* teardown checks live blocks when set */

/* Arms the fault injector: n more allocations succeed, the next one fails, once.
 * n == 0 fails the very next allocation; n < 0 disarms it. */
static inline void
blz_test_alloc_fail_after(long long n)
{
    atomic_store(&blz_test_alloc_countdown_, n < 0 ? -1 : n);
}

/* Whether this allocation is the one to fail; consumes a step of the countdown. */
static inline int
blz_test_alloc_should_fail_(void)
{
    long long n = atomic_load(&blz_test_alloc_countdown_);
    while (n >= 0) {
        if (atomic_compare_exchange_weak(&blz_test_alloc_countdown_, &n, n - 1)) {
            return n == 0;
        }
    }
    return 0;
}

static inline void *
blz_test_counting_malloc(size_t size)
{
    if (size > SIZE_MAX - BLZ_TEST_ALLOC_PREFIX_ || blz_test_alloc_should_fail_()) {
        return NULL;
    }
    unsigned char *base = malloc(size + BLZ_TEST_ALLOC_PREFIX_);
    if (!base) {
        return NULL;
    }
    memcpy(base, &size, sizeof size);
    atomic_fetch_add(&blz_test_alloc_live_, 1);
    atomic_fetch_add(&blz_test_alloc_bytes_, (long long) size);
    atomic_fetch_add(&blz_test_alloc_count_, 1);
    return base + BLZ_TEST_ALLOC_PREFIX_;
}

static inline void
blz_test_counting_free(void *p)
{
    if (!p) {
        return;
    }
    unsigned char *base = (unsigned char *) p - BLZ_TEST_ALLOC_PREFIX_;
    size_t size;
    memcpy(&size, base, sizeof size);
    atomic_fetch_sub(&blz_test_alloc_live_, 1);
    atomic_fetch_sub(&blz_test_alloc_bytes_, (long long) size);
    free(base);
}

/* realloc(p, 0) frees p and returns NULL; realloc(NULL, n) is malloc(n). */
static inline void *
blz_test_counting_realloc(void *p, size_t size)
{
    if (!p) {
        return blz_test_counting_malloc(size);
    }
    if (size == 0) {
        blz_test_counting_free(p);
        return NULL;
    }
    if (size > SIZE_MAX - BLZ_TEST_ALLOC_PREFIX_ || blz_test_alloc_should_fail_()) {
        return NULL;
    }
    unsigned char *base = (unsigned char *) p - BLZ_TEST_ALLOC_PREFIX_;
    size_t old;
    memcpy(&old, base, sizeof old);
    unsigned char *nbase = realloc(base, size + BLZ_TEST_ALLOC_PREFIX_);
    if (!nbase) {
        return NULL;
    }
    memcpy(nbase, &size, sizeof size);
    atomic_fetch_add(&blz_test_alloc_bytes_, (long long) size - (long long) old);
    atomic_fetch_add(&blz_test_alloc_count_, 1);
    return nbase + BLZ_TEST_ALLOC_PREFIX_;
}

/* Routes blitzio's allocations through the counters. Call before creating a runtime;
 * the teardown then fails the test if any block is still live when the body returns. */
static inline void
blz_test_counting_allocator_install(void)
{
    blz_set_allocator(blz_test_counting_malloc, blz_test_counting_realloc, blz_test_counting_free);
    atomic_store(&blz_test_alloc_installed_, 1);
}

static inline long long
blz_test_alloc_live(void)
{
    return atomic_load(&blz_test_alloc_live_);
}

static inline long long
blz_test_alloc_bytes(void)
{
    return atomic_load(&blz_test_alloc_bytes_);
}

static inline long long
blz_test_alloc_count(void)
{
    return atomic_load(&blz_test_alloc_count_);
}

/* ---------------------------------------------------------------------------------------
 * Runner
 * ------------------------------------------------------------------------------------- */

enum blz_test_result_ { BLZ_TEST_PASS_, BLZ_TEST_FAIL_, BLZ_TEST_SKIP_ };

#define BLZ_TEST_FD_SCAN_ 1024

#if BLZ_TEST_HAVE_FORK
/* Marks which of the first BLZ_TEST_FD_SCAN_ descriptors are open. */
static inline void
blz_test_fd_snapshot_(unsigned char *open_fds)
{
    for (int fd = 0; fd < BLZ_TEST_FD_SCAN_; fd++) {
        open_fds[fd] = fcntl(fd, F_GETFD) != -1;
    }
}
#endif

/* Runs the body, then the teardown checks. Returns only if the test passed. */
static inline void
blz_test_body_and_teardown_(const struct blz_test_case *tc)
{
#if BLZ_TEST_HAVE_FORK
    static unsigned char before[BLZ_TEST_FD_SCAN_], after[BLZ_TEST_FD_SCAN_];
    int fd_check = !getenv("BLZ_TEST_NO_FD_CHECK");
    if (fd_check) {
        blz_test_fd_snapshot_(before);
    }
#endif
    tc->fn();
    fflush(stdout);
    int leaked = 0;
#if BLZ_TEST_HAVE_FORK
    if (fd_check) {
        blz_test_fd_snapshot_(after);
        for (int fd = 0; fd < BLZ_TEST_FD_SCAN_; fd++) {
            if (after[fd] && !before[fd]) {
                /* What it is open on, so that a leak seen once (a CI run
                 * under an emulator) says whose it was. */
                char link[64], target[256];
                snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
                ssize_t n = readlink(link, target, sizeof target - 1);
                target[n > 0 ? n : 0] = '\0';
                if (strcmp(target, "/proc/sys/vm/overcommit_memory") == 0) {
                    /* glibc's malloc opens and closes this when it makes an
                     * arena; under qemu-user the emulator's own threads share
                     * our descriptor table and were seen holding it at the
                     * moment of the scan. Nothing of ours opens it. */
                    continue;
                }
                fprintf(stderr, "%s: leaked file descriptor %d (%s)\n", tc->name, fd,
                        n > 0 ? target : "?");
                leaked = 1;
            }
        }
    }
#endif
    if (atomic_load(&blz_test_alloc_installed_) && blz_test_alloc_live() != 0) {
        fprintf(stderr, "%s: leaked %lld blitzio allocation(s), %lld byte(s)\n", tc->name,
                blz_test_alloc_live(), blz_test_alloc_bytes());
        leaked = 1;
    }
    if (leaked) {
        blz_test_fail_();
    }
}

/* syscall() is declared only with _GNU_SOURCE or _DEFAULT_SOURCE (the build's tests
 * have _GNU_SOURCE). */
#if BLZ_TEST_HAVE_FORK && defined(__linux__) && defined(SYS_pidfd_open) && \
    (defined(_GNU_SOURCE) || defined(_DEFAULT_SOURCE))
# define BLZ_TEST_HANG_REPORT 1

/* When this run must end (its start plus BLZ_TEST_TIMEOUT, less the time a report
 * takes), in CLOCK_MONOTONIC ms; 0 when no timeout was given. */
static long long blz_test_hang_deadline_ms_;

static inline long long
blz_test_now_ms_(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void
blz_test_hang_deadline_init_(void)
{
    const char *t = getenv("BLZ_TEST_TIMEOUT");
    long long secs = t && !getenv("BLZ_TEST_NOFORK") ? atoll(t) : 0;
    if (secs > 0) {
        long long margin = secs >= 50 ? 8 : secs / 6; /* gdb's attach and backtraces */
        blz_test_hang_deadline_ms_ = blz_test_now_ms_() + (secs - margin) * 1000;
    }
}

/* Prints every thread's backtrace of `pid` to stderr with gdb (bounded by `timeout`). */
static inline void
blz_test_print_backtraces_(pid_t pid)
{
    char pidstr[24];
    snprintf(pidstr, sizeof pidstr, "%d", (int) pid);
    char *argv[] = {
        "timeout", "20", "gdb", "-nx", "-batch", "-p", pidstr, "-ex", "thread apply all bt", NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, 2, 1);
    pid_t g;
    extern char **environ;
    int rc = posix_spawnp(&g, "timeout", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    int status = 0;
    if (rc != 0 || waitpid(g, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) == 127) {
        fprintf(stderr, "harness: (no gdb to show the threads)\n");
    }
}

/* Waits for the test child `pid` until the run's deadline. Returns 1 with its status
 * in *status, 0 when the deadline passed (the child still runs), or -1 when the wait
 * cannot be bounded (no timeout given): then the caller waits as before. */
static inline int
blz_test_wait_bounded_(pid_t pid, int *status)
{
    if (blz_test_hang_deadline_ms_ == 0) {
        return -1;
    }
    int pfd = (int) syscall(SYS_pidfd_open, pid, 0);
    if (pfd < 0) {
        /* No pidfd (an emulator, an old kernel): look every 10 ms instead. */
        while (blz_test_now_ms_() < blz_test_hang_deadline_ms_) {
            pid_t w = waitpid(pid, status, WNOHANG);
            if (w == pid) {
                return 1;
            }
            if (w < 0 && errno != EINTR) {
                return -1;
            }
            struct timespec nap = {0, 10 * 1000 * 1000};
            nanosleep(&nap, NULL);
        }
        return 0;
    }
    int done = 0;
    for (;;) {
        long long left = blz_test_hang_deadline_ms_ - blz_test_now_ms_();
        if (left <= 0) {
            break;
        }
        struct pollfd p = {.fd = pfd, .events = POLLIN};
        int n = poll(&p, 1, left > INT_MAX ? INT_MAX : (int) left);
        if (n > 0) {
            done = 1;
            break;
        }
        if (n < 0 && errno != EINTR) {
            close(pfd);
            return -1;
        }
    }
    close(pfd);
    if (done) {
        while (waitpid(pid, status, 0) < 0 && errno == EINTR) {
        }
    }
    return done;
}
#else
# define BLZ_TEST_HANG_REPORT 0
#endif

/* Runs one test; prints its ok/FAIL/skip line unless quiet. */
static inline enum blz_test_result_
blz_test_run_case_(const struct blz_test_case *tc, int quiet)
{
    blz_test_current_ = tc->name;
    fflush(stdout);
    fflush(stderr);
    enum blz_test_result_ result = BLZ_TEST_PASS_;
    char why[64] = "";
#if BLZ_TEST_HANG_REPORT
    if (blz_test_hang_deadline_ms_ && blz_test_now_ms_() >= blz_test_hang_deadline_ms_) {
        /* An earlier case used the run's time up (and was reported): the rest
         * would be killed at once, so they are not started. */
        result = BLZ_TEST_FAIL_;
        snprintf(why, sizeof why, " (not run: the run's time ran out)");
        fprintf(stderr, "harness: %s not run: the run's time ran out\n", tc->name);
    } else
#endif
#if BLZ_TEST_HAVE_FORK
        if (!getenv("BLZ_TEST_NOFORK")) {
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "harness: fork: %s\n", strerror(errno));
            exit(1);
        }
        if (pid == 0) {
# if defined(__linux__)
            /* If the runner is killed (ctest timeout), take the test down with it. */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) {
                _Exit(1);
            }
# endif
            (void) parent;
            blz_test_in_child_ = 1;
            blz_test_body_and_teardown_(tc);
            fflush(stdout);
            exit(0); /* exit, not _Exit: LeakSanitizer runs at exit */
        }
        int status = 0;
        int waited = -1;
# if BLZ_TEST_HANG_REPORT
        waited = blz_test_wait_bounded_(pid, &status);
        if (waited == 0) {
            fprintf(stderr, "harness: %s still running as its time runs out; its threads:\n",
                    tc->name);
            blz_test_print_backtraces_(pid);
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            result = BLZ_TEST_FAIL_;
            snprintf(why, sizeof why, " (hung: killed by the harness)");
        }
# endif
        while (waited < 0 && waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) {
                fprintf(stderr, "harness: waitpid: %s\n", strerror(errno));
                exit(1);
            }
        }
        if (waited == 0) {
            /* reported above */
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            result = BLZ_TEST_PASS_;
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
            result = BLZ_TEST_SKIP_;
        } else {
            result = BLZ_TEST_FAIL_;
            if (WIFSIGNALED(status)) {
                snprintf(why, sizeof why, " (killed by signal %d)", WTERMSIG(status));
            } else if (WIFEXITED(status) && WEXITSTATUS(status) != 1) {
                snprintf(why, sizeof why, " (exit status %d)", WEXITSTATUS(status));
            }
        }
    } else
#endif
    {
        blz_test_body_and_teardown_(tc); /* failure and skip do not return */
    }
    blz_test_current_ = NULL;
    if (!quiet) {
        printf("%s %s%s\n",
               result == BLZ_TEST_PASS_   ? "ok"
               : result == BLZ_TEST_SKIP_ ? "skip"
                                          : "FAIL",
               tc->name, why);
        fflush(stdout);
    }
    return result;
}

static inline int
blz_test_by_line_(const void *a, const void *b)
{
    const struct blz_test_case *x = a, *y = b;
    return (x->line > y->line) - (x->line < y->line);
}

/* Runs the registered tests whose names contain filter (all when NULL). */
static inline int
blz_test_main_(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
#if BLZ_TEST_HANG_REPORT
    blz_test_hang_deadline_init_();
#endif
    /* Constructors may run in any order; file order is the order that reads well. */
    qsort(blz_test_cases_, blz_test_ncases_, sizeof blz_test_cases_[0], blz_test_by_line_);
    const char *filter = argc > 1 ? argv[1] : NULL;
    if (filter && strcmp(filter, "--list") == 0) {
        for (size_t i = 0; i < blz_test_ncases_; i++) {
            printf("%s\n", blz_test_cases_[i].name);
        }
        return 0;
    }
    size_t matched = 0;
    for (size_t i = 0; i < blz_test_ncases_; i++) {
        if (filter && !strstr(blz_test_cases_[i].name, filter)) {
            continue;
        }
        matched++;
        switch (blz_test_run_case_(&blz_test_cases_[i], 0)) {
        case BLZ_TEST_PASS_:
            blz_test_passed_++;
            break;
        case BLZ_TEST_FAIL_:
            blz_test_failed_++;
            break;
        case BLZ_TEST_SKIP_:
            blz_test_skipped_++;
            break;
        }
    }
    if (matched == 0) {
        fprintf(stderr, "harness: no test %s%s\n", filter ? "matches " : "in this file",
                filter ? filter : "");
        blz_test_summary_();
        return 1;
    }
    blz_test_summary_();
    if (blz_test_failed_) {
        return 1;
    }
    return blz_test_passed_ == 0 ? 77 : 0;
}

/* The next number of the xorshift32 sequence in *s (see the header comment). */
static inline uint32_t
test_rand(uint32_t *s)
{
    uint32_t x = *s ? *s : 0x12345678u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

/* Every test file gets main() unless it defines BLZ_TEST_NO_MAIN before including this
 * header and calls BLZ_TEST_MAIN() or blz_test_main_() itself. */
#define BLZ_TEST_MAIN()              \
 int main(int argc, char **argv)     \
 {                                   \
  return blz_test_main_(argc, argv); \
 }

#ifndef BLZ_TEST_NO_MAIN
BLZ_TEST_MAIN()
#endif

#endif /* BLZ_TEST_HARNESS_H */
