/*
 * An object alone on a page, and two ways to take the page away at an exact
 * moment, so that any later touch of the object faults (SIGSEGV) instead of
 * reading or writing memory its owner may already have freed.
 *
 *  - From a waker hook (poll_util.h's hook_waker): the waiter that is woken
 *    last frees the object at once, as a woken waiter may.
 *  - After a write (page_vanish_when): the page goes the moment a write to it
 *    makes a condition true, the condition an observer that needs no wake
 *    looks at (the try tier, a lock-free check): "unlocked", "cancelled",
 *    "closed". Such an observer may free the object as soon as it sees that,
 *    so the operation that published it must not touch the object again.
 *    The page is kept read-only; each write faults, is let through alone
 *    (one single-stepped instruction) and then checked. x86-64 Linux only.
 *
 * A test that calls these runs in its own forked process (harness.h), so
 * the signal handlers and the state below are its alone.
 */
#ifndef BLZ_TEST_PAGE_UTIL_H
#define BLZ_TEST_PAGE_UTIL_H

#include "harness.h"
#include "poll_util.h"

#include <execinfo.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

typedef struct page_obj {
    void *page;
    size_t size;
    atomic_int wakes_left; /* the hook that takes it to 0 takes the page away */
} page_obj;

static void *
page_new(page_obj *p)
{
    p->size = 4096;
    p->page = mmap(NULL, p->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p->page != MAP_FAILED);
    return p->page;
}

/* The page back (so futures can finish, or the test can look). */
static void
page_restore(page_obj *p)
{
    CHECK_EQ(mprotect(p->page, p->size, PROT_READ | PROT_WRITE), 0);
}

static void
page_free(page_obj *p)
{
    CHECK_EQ(munmap(p->page, p->size), 0);
}

/* ---- from a waker hook ---------------------------------------------------- */

/* The hook of every waiter's waker: the one that takes wakes_left to 0 (the
 * last woken) takes the page away. */
static inline void
take_page_on_last_wake(void *arg)
{
    page_obj *p = arg;
    if (atomic_fetch_sub(&p->wakes_left, 1) == 1) {
        CHECK_EQ(mprotect(p->page, p->size, PROT_NONE), 0);
    }
}

/* Hook wakers for n waiters, all counting down on p. */
static inline void
hooks_init(hook_waker *h, int n, page_obj *p)
{
    atomic_init(&p->wakes_left, n);
    for (int i = 0; i < n; i++) {
        hook_waker_init(&h[i], take_page_on_last_wake, NULL, p);
    }
}

/* Every waiter was woken; the page back, so the futures can finish. */
static inline void
page_back(page_obj *p)
{
    CHECK_EQ(atomic_load(&p->wakes_left), 0);
    page_restore(p);
}

/* ---- after a write ----------------------------------------------------- */

#if defined(__x86_64__) && defined(__linux__) && !UNDER_ASAN && !UNDER_TSAN
# define PAGE_VANISH_WORKS 1
#else
# define PAGE_VANISH_WORKS 0 /* no single step here, or a sanitizer owns SIGSEGV */
#endif

#if PAGE_VANISH_WORKS

# define PV_TRAP_FLAG 0x100 /* x86 EFLAGS.TF: trap after the next instruction */

static struct {
    char *page;
    size_t size;
    bool (*cond)(void *arg);
    void *arg;
    volatile sig_atomic_t armed;    /* writes are being watched */
    volatile sig_atomic_t stepping; /* one write let through, not yet checked */
    volatile sig_atomic_t writes;   /* writes seen */
    volatile sig_atomic_t gone;     /* the page was taken away */
    struct sigaction old_segv, old_trap;
} pv_;

static void
pv_say_(const char *s)
{
    ssize_t r = write(2, s, strlen(s));
    (void) r;
}

static void
pv_segv_(int sig, siginfo_t *si, void *ucv)
{
    char *a = si->si_addr;
    bool ours = a >= pv_.page && a < pv_.page + pv_.size;
    if (ours && pv_.armed && !pv_.stepping) {
        (void) mprotect(pv_.page, pv_.size, PROT_READ | PROT_WRITE);
        ((ucontext_t *) ucv)->uc_mcontext.gregs[REG_EFL] |= PV_TRAP_FLAG;
        pv_.stepping = 1;
        return;
    }
    if (ours && pv_.gone) {
        pv_say_("page_util: the object was touched after the write that published it, in:\n");
        void *frames[12];
        backtrace_symbols_fd(frames, backtrace(frames, 12), 2);
    }
    /* Die of it: the default action on the instruction's retry. */
    (void) sig;
    (void) signal(SIGSEGV, SIG_DFL);
}

static void
pv_trap_(int sig, siginfo_t *si, void *ucv)
{
    (void) sig;
    (void) si;
    ((ucontext_t *) ucv)->uc_mcontext.gregs[REG_EFL] &= ~(long long) PV_TRAP_FLAG;
    if (!pv_.stepping) {
        return;
    }
    pv_.stepping = 0;
    pv_.writes++;
    if (pv_.cond(pv_.arg)) {
        pv_.armed = 0;
        pv_.gone = 1;
        (void) mprotect(pv_.page, pv_.size, PROT_NONE);
    } else {
        (void) mprotect(pv_.page, pv_.size, PROT_READ);
    }
}

static void
pv_arm_(page_obj *p, bool (*cond)(void *arg), void *arg)
{
    memset(&pv_, 0, sizeof pv_);
    pv_.page = p->page;
    pv_.size = p->size;
    pv_.cond = cond;
    pv_.arg = arg;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sa.sa_sigaction = pv_segv_;
    CHECK_EQ(sigaction(SIGSEGV, &sa, &pv_.old_segv), 0);
    sa.sa_sigaction = pv_trap_;
    CHECK_EQ(sigaction(SIGTRAP, &sa, &pv_.old_trap), 0);
    pv_.armed = 1;
    CHECK_EQ(mprotect(p->page, p->size, PROT_READ), 0);
}

static bool
pv_disarm_(page_obj *p)
{
    pv_.armed = 0;
    page_restore(p);
    CHECK_EQ(sigaction(SIGSEGV, &pv_.old_segv, NULL), 0);
    CHECK_EQ(sigaction(SIGTRAP, &pv_.old_trap, NULL), 0);
    return pv_.gone != 0;
}

static bool
pv_probe_cond_(void *arg)
{
    return *(volatile int *) arg == 1;
}

/* Whether a write can be single-stepped here (an emulator may ignore the trap flag). */
static bool
pv_works_(void)
{
    static int known = -1;
    if (known < 0) {
        page_obj q;
        int *x = page_new(&q);
        pv_arm_(&q, pv_probe_cond_, x);
        *(volatile int *) x = 1;
        known = pv_.gone && !pv_.stepping;
        (void) pv_disarm_(&q);
        page_free(&q);
    }
    return known != 0;
}

/*
 * From now on, the first write to `p`'s page after which cond(arg) holds
 * takes the page away. Skips the test where that cannot be arranged.
 */
static void
page_vanish_when(page_obj *p, bool (*cond)(void *arg), void *arg)
{
    if (blz_test_emulator() != NULL || !pv_works_()) {
        SKIP("page_vanish_when: needs single-stepping (x86-64 Linux, no sanitizer)");
    }
    pv_arm_(p, cond, arg);
}

/*
 * Stops watching and gives the page back. Returns true when the condition
 * came true (the page had gone); then nothing touched it afterwards, or the
 * test would have died.
 */
static bool
page_vanish_end(page_obj *p)
{
    return pv_disarm_(p);
}

#else /* no single step here: every test that needs it skips */

static void
page_vanish_when(page_obj *p, bool (*cond)(void *arg), void *arg)
{
    (void) p;
    (void) cond;
    (void) arg;
    SKIP("page_vanish_when: needs single-stepping (x86-64 Linux, no sanitizer)");
}

static bool
page_vanish_end(page_obj *p)
{
    page_restore(p);
    return false;
}

#endif

#endif
