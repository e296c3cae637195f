/*
 * tests/fiber_basic.c — src/fiber: create, resume and suspend; state kept across
 * switches (stack data, callee-saved registers, FP control); nesting; migration
 * between threads; 100,000 live fibers and stack reuse; the pool under threads.
 *
 * blz-test: timeout=180
 */
#include "fiber/fiber.h"
#include "harness.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>

#if UNDER_ASAN
# include <sanitizer/asan_interface.h>
#endif

/* Valgrind keeps the FP control registers right but computes SSE arithmetic
 * in round-to-nearest whatever they say; the rounding checks allow for it. */
#if defined(BLZ_VALGRIND) && BLZ_VALGRIND && defined(__has_include)
# if __has_include(<valgrind/valgrind.h>)
#  include <valgrind/valgrind.h>
#  define ON_VALGRIND() (RUNNING_ON_VALGRIND != 0)
# endif
#endif
#ifndef ON_VALGRIND
# define ON_VALGRIND() 0
#endif

/* Out of line, and opaque to the optimizer (the volatile asm), so each call
 * computes its answer on the thread running at that moment. */
#define OPAQUE __attribute__((noinline))

static blz__stack_pool *
new_pool(void)
{
    blz__stack_pool *pool = NULL;
    CHECK_OK(blz__stack_pool_new(0, &pool));
    CHECK(pool != NULL);
    return pool;
}

/* ---- Basics ---- */

struct once {
    int runs;
    blz__fiber *self;
    blz__fiber *seen;
};

static void
once_entry(void *arg)
{
    struct once *o = arg;
    o->runs++;
    o->seen = blz__fiber_current();
}

BLZ_TEST(run_to_completion)
{
    blz__stack_pool *pool = new_pool();
    struct once o = {0};
    CHECK_PTR_EQ(blz__fiber_current(), NULL);
    CHECK_OK(blz__fiber_new(pool, once_entry, &o, &o.self));
    CHECK_EQ(o.runs, 0); /* nothing runs before the first resume */
    CHECK(blz__fiber_resume(o.self));
    CHECK_EQ(o.runs, 1);
    CHECK_PTR_EQ(o.seen, o.self);
    CHECK_PTR_EQ(blz__fiber_current(), NULL);
    CHECK(blz__fiber_resume(o.self)); /* a finished fiber stays finished */
    CHECK_EQ(o.runs, 1);
    CHECK_EQ(blz__stack_pool_mapped(pool), 1);
    blz__fiber_free(o.self);
    CHECK_EQ(blz__stack_pool_mapped(pool), 1); /* cached, not unmapped */
    blz__stack_pool_free(pool);
}

BLZ_TEST(free_never_resumed)
{
    blz__stack_pool *pool = new_pool();
    struct once o = {0};
    CHECK_OK(blz__fiber_new(pool, once_entry, &o, &o.self));
    blz__fiber_free(o.self);
    CHECK_EQ(o.runs, 0);
    blz__stack_pool_free(pool);
}

BLZ_TEST(bad_input)
{
    blz__stack_pool *pool = NULL;
    blz__fiber *f = NULL;
    CHECK_EQ(blz__stack_pool_new(0, NULL), -EINVAL);
    CHECK_EQ(blz__stack_pool_new((size_t) 4 << 30, &pool), -EINVAL);
    CHECK_PTR_EQ(pool, NULL);
    blz__stack_pool_opts bad = {.guard = (enum blz__stack_guard) 42};
    CHECK_EQ(blz__stack_pool_new_opts(&bad, &pool), -EINVAL);
    CHECK_OK(blz__stack_pool_new_opts(NULL, &pool));
    CHECK_EQ(blz__fiber_new(NULL, once_entry, NULL, &f), -EINVAL);
    CHECK_EQ(blz__fiber_new(pool, NULL, NULL, &f), -EINVAL);
    CHECK_EQ(blz__fiber_new(pool, once_entry, NULL, NULL), -EINVAL);
    CHECK_PTR_EQ(f, NULL);
    CHECK(blz__fiber_resume(NULL));
    blz__fiber_free(NULL);
    CHECK_EQ(blz__stack_pool_mapped(pool), 0);
    CHECK_EQ(blz__stack_pool_mapped(NULL), 0);
    blz__stack_pool_free(pool);
    blz__stack_pool_free(NULL);
}

/* ---- Ping-pong: a counter advanced by both sides, checked by both ---- */

#define PINGPONG_ROUNDS 1000000L

struct pingpong {
    long counter;
    long rounds;
};

static void
pingpong_entry(void *arg)
{
    struct pingpong *p = arg;
    for (long i = 0; i < p->rounds; i++) {
        CHECK_EQ(p->counter, 2 * i + 1);
        p->counter++;
        blz__fiber_suspend();
    }
}

BLZ_TEST(ping_pong_million)
{
    blz__stack_pool *pool = new_pool();
    struct pingpong p = {.counter = 0, .rounds = PINGPONG_ROUNDS};
    blz__fiber *f;
    CHECK_OK(blz__fiber_new(pool, pingpong_entry, &p, &f));
    for (long i = 0; i < p.rounds; i++) {
        p.counter++;
        bool done = blz__fiber_resume(f);
        if (done || p.counter != 2 * i + 2) {
            CHECK(!done);
            CHECK_EQ(p.counter, 2 * i + 2);
        }
    }
    CHECK(blz__fiber_resume(f));
    CHECK_EQ(p.counter, 2 * PINGPONG_ROUNDS);
    blz__fiber_free(f);
    blz__stack_pool_free(pool);
}

/* ---- Data on the fiber's stack survives switches ---- */

struct frame_check {
    const uint32_t *deepest; /* the innermost frame's array, read by the resumer */
    uint32_t expect_sum;
};

static uint32_t
frame_value(int level, int i)
{
    return (uint32_t) (level * 1000003 + i * 7919);
}

/* Each level keeps an array in its frame, suspends, recurses, suspends again,
 * and checks the array every time it is back. */
static void
nested_frames(struct frame_check *fc, int level)
{
    uint32_t data[256];
    for (int i = 0; i < 256; i++) {
        data[i] = frame_value(level, i);
    }
    blz__fiber_suspend();
    if (level < 8) {
        nested_frames(fc, level + 1);
    } else {
        uint32_t sum = 0;
        for (int i = 0; i < 256; i++) {
            sum += data[i];
        }
        fc->deepest = data;
        fc->expect_sum = sum;
        blz__fiber_suspend(); /* the resumer reads data[] while we are switched out */
        fc->deepest = NULL;
    }
    for (int i = 0; i < 256; i++) {
        CHECK_EQ(data[i], frame_value(level, i));
    }
    blz__fiber_suspend();
    for (int i = 0; i < 256; i++) {
        CHECK_EQ(data[i], frame_value(level, i));
    }
}

static void
frames_entry(void *arg)
{
    nested_frames(arg, 0);
}

BLZ_TEST(stack_data_survives_switches)
{
    blz__stack_pool *pool = new_pool();
    struct frame_check fc = {0};
    blz__fiber *f;
    CHECK_OK(blz__fiber_new(pool, frames_entry, &fc, &f));
    int resumes = 0;
    bool saw_deepest = false;
    while (!blz__fiber_resume(f)) {
        resumes++;
        if (fc.deepest) {
            uint32_t sum = 0;
            for (int i = 0; i < 256; i++) {
                sum += fc.deepest[i];
            }
            CHECK_EQ(sum, fc.expect_sum);
            saw_deepest = true;
        }
        /* Scribble over the resumer's own stack between resumes. */
        volatile char scratch[4096];
        for (size_t i = 0; i < sizeof scratch; i++) {
            scratch[i] = (char) i;
        }
    }
    CHECK(saw_deepest);
    CHECK_EQ(resumes, 9 * 2 + 1); /* two suspends per level, one more at the deepest */
    blz__fiber_free(f);
    blz__stack_pool_free(pool);
}

/* ---- longjmp inside a fiber ----
 *
 * longjmp out of deep frames, across a suspend. Under AddressSanitizer this
 * checks the switch annotations: longjmp makes ASan unpoison the frames it
 * discards, which it does only if it knows the bounds of the stack it is on
 * (the fiber's, announced by __sanitizer_finish_switch_fiber). Without them it
 * prints "ASan is ignoring requested __asan_handle_no_return" and leaves the
 * discarded redzones poisoned, which the check below catches.
 */

struct jump {
    jmp_buf back;
    bool really_jump; /* always true; a return path keeps gcc's infinite-recursion check quiet */
    char *deep_buf;   /* a local of the discarded frame */
    int deep_calls;
};

static OPAQUE void
jump_deep(struct jump *j, int depth)
{
    char buf[512];
    memset(buf, depth, sizeof buf);
    __asm__ __volatile__("" : : "r"(buf) : "memory");
    if (depth == 0) {
        j->deep_buf = buf;
        blz__fiber_suspend();
        if (j->really_jump) {
            longjmp(j->back, 1);
        }
        return;
    }
    jump_deep(j, depth - 1);
    j->deep_calls++; /* never reached */
}

static void
jump_entry(void *arg)
{
    struct jump *j = arg;
    if (setjmp(j->back) == 0) {
        jump_deep(j, 8);
    }
    /* Back in this frame with the nine deeper ones discarded. */
#if UNDER_ASAN
    CHECK(j->deep_buf != NULL);
    /* With detect_stack_use_after_return the buffer may live on ASan's fake
     * stack instead, where discarded frames rightly stay poisoned. */
    void *fake = __asan_get_current_fake_stack();
    if (!fake || !__asan_addr_is_in_fake_stack(fake, j->deep_buf, NULL, NULL)) {
        CHECK_PTR_EQ(__asan_region_is_poisoned(j->deep_buf - 256, 1024), NULL);
    }
#endif
    blz__fiber_suspend();
}

BLZ_TEST(longjmp_inside_fiber)
{
    blz__stack_pool *pool = new_pool();
    struct jump j = {.really_jump = true};
    blz__fiber *f;
    CHECK_OK(blz__fiber_new(pool, jump_entry, &j, &f));
    CHECK(!blz__fiber_resume(f)); /* suspended nine frames deep */
    CHECK(!blz__fiber_resume(f)); /* longjmp'd back, suspended again */
    CHECK(blz__fiber_resume(f));
    CHECK_EQ(j.deep_calls, 0);
    blz__fiber_free(f);
    blz__stack_pool_free(pool);
}

/* ---- Callee-saved registers ----
 *
 * Many integer and floating-point values live across each switch, on both
 * sides, with no volatile: at -O2 the compiler keeps them in callee-saved
 * registers (rbx, rbp, r12-r15 on x86-64; x19-x28 and d8-d15 on AArch64),
 * which only a correct switch preserves. The same computation without
 * switches gives the expected result.
 */

struct regs_out {
    uint64_t i[6];
    double d[4];
};

static OPAQUE uint64_t
mix(uint64_t x)
{
    __asm__ __volatile__("");
    return x * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
}

static void
regs_compute(uint64_t seed, bool switching, struct regs_out *out)
{
    uint64_t a = mix(seed), b = mix(a), c = mix(b), d = mix(c), e = mix(d), g = mix(e);
    double x = (double) (a >> 40), y = (double) (b >> 40) * 0.5, z = (double) (c >> 40) + 0.25,
           w = (double) (d >> 40) * 1.5;
    for (int i = 0; i < 1000; i++) {
        if (switching) {
            blz__fiber_suspend();
        }
        a = a * 3 + 1;
        b ^= a;
        c += b;
        d -= c;
        e = e * 5 + d;
        g ^= e >> 3;
        x = x * 0.5 + (double) (i & 7);
        y = y * 0.25 + x;
        z = z * 0.125 + y;
        w = w * 0.0625 + z;
    }
    *out = (struct regs_out){{a, b, c, d, e, g}, {x, y, z, w}};
}

struct regs_arg {
    uint64_t seed;
    struct regs_out out;
};

static void
regs_entry(void *arg)
{
    struct regs_arg *r = arg;
    regs_compute(r->seed, true, &r->out);
}

BLZ_TEST(callee_saved_registers_preserved)
{
    blz__stack_pool *pool = new_pool();
    struct regs_arg r = {.seed = 12345};
    struct regs_out want_fiber, want_main;
    regs_compute(r.seed, false, &want_fiber);
    regs_compute(777, false, &want_main);

    blz__fiber *f;
    CHECK_OK(blz__fiber_new(pool, regs_entry, &r, &f));
    /* The resumer runs the same kind of computation around each resume. */
    uint64_t a = mix(777), b = mix(a), c = mix(b), d = mix(c), e = mix(d), g = mix(e);
    double x = (double) (a >> 40), y = (double) (b >> 40) * 0.5, z = (double) (c >> 40) + 0.25,
           w = (double) (d >> 40) * 1.5;
    int i = 0;
    while (!blz__fiber_resume(f)) {
        a = a * 3 + 1;
        b ^= a;
        c += b;
        d -= c;
        e = e * 5 + d;
        g ^= e >> 3;
        x = x * 0.5 + (double) (i & 7);
        y = y * 0.25 + x;
        z = z * 0.125 + y;
        w = w * 0.0625 + z;
        i++;
    }
    CHECK_EQ(i, 1000);
    struct regs_out got_main = {{a, b, c, d, e, g}, {x, y, z, w}};
    for (int k = 0; k < 6; k++) {
        CHECK_EQ(r.out.i[k], want_fiber.i[k]);
        CHECK_EQ(got_main.i[k], want_main.i[k]);
    }
    for (int k = 0; k < 4; k++) {
        CHECK(r.out.d[k] == want_fiber.d[k]);
        CHECK(got_main.d[k] == want_main.d[k]);
    }
    blz__fiber_free(f);
    blz__stack_pool_free(pool);
}

/* ---- FP control state is per context ----
 *
 * A fiber that changes its rounding mode keeps it across suspends, and the
 * thread that resumes it keeps its own: the switch saves MXCSR and the x87
 * control word (x86-64) or FPCR (AArch64). A new fiber starts with the ABI
 * default (round to nearest), whatever its creator runs with.
 */

#if defined(__x86_64__) || defined(__aarch64__)
# define HAVE_FP_CONTROL 1

enum { ROUND_NEAREST, ROUND_UP };

static OPAQUE int
fp_round_mode(void)
{
# if defined(__x86_64__)
    unsigned mxcsr = __builtin_ia32_stmxcsr();
    unsigned short cw;
    __asm__ __volatile__("fnstcw %0" : "=m"(cw));
    int sse = (mxcsr >> 13) & 3, x87 = (cw >> 10) & 3;
    if (sse != x87) {
        return -1; /* the two units disagree: the switch restored only one */
    }
    return sse == 0 ? ROUND_NEAREST : sse == 2 ? ROUND_UP : -2;
# else
    uint64_t fpcr;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
    int rm = (int) ((fpcr >> 22) & 3);
    return rm == 0 ? ROUND_NEAREST : rm == 1 ? ROUND_UP : -2;
# endif
}

static OPAQUE void
fp_set_round_mode(int mode)
{
# if defined(__x86_64__)
    unsigned mxcsr = __builtin_ia32_stmxcsr() & ~(3u << 13);
    unsigned short cw;
    __asm__ __volatile__("fnstcw %0" : "=m"(cw));
    cw = (unsigned short) (cw & ~(3u << 10));
    if (mode == ROUND_UP) {
        mxcsr |= 2u << 13;
        cw = (unsigned short) (cw | 2u << 10);
    }
    __builtin_ia32_ldmxcsr(mxcsr);
    __asm__ __volatile__("fldcw %0" : : "m"(cw));
# else
    uint64_t fpcr;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
    fpcr &= ~((uint64_t) 3 << 22);
    if (mode == ROUND_UP) {
        fpcr |= (uint64_t) 1 << 22;
    }
    __asm__ __volatile__("msr fpcr, %0" : : "r"(fpcr));
# endif
}

/* Operands the optimizer cannot fold at compile time (in the default mode). */
static volatile double fp_one = 1.0, fp_three = 3.0;

/* 1/3*3: exactly 1 when rounding to nearest, just above 1 when rounding up. */
static OPAQUE double
third_times_three(void)
{
    double t = fp_one / fp_three;
    return t * fp_three;
}

struct fp_arg {
    int start_mode;
    int errors;
};

static void
fp_entry(void *arg)
{
    struct fp_arg *a = arg;
    a->start_mode = fp_round_mode();
    fp_set_round_mode(ROUND_UP);
    for (int i = 0; i < 100; i++) {
        blz__fiber_suspend();
        if (fp_round_mode() != ROUND_UP || !(ON_VALGRIND() || third_times_three() > 1.0)) {
            a->errors++;
        }
    }
}

BLZ_TEST(fp_control_is_per_context)
{
    blz__stack_pool *pool = new_pool();
    CHECK_EQ(fp_round_mode(), ROUND_NEAREST);
    CHECK(third_times_three() == 1.0);

    /* The creator rounds up; the fiber must still start at the default. */
    fp_set_round_mode(ROUND_UP);
    struct fp_arg a = {.start_mode = -9};
    blz__fiber *f;
    CHECK_OK(blz__fiber_new(pool, fp_entry, &a, &f));
    fp_set_round_mode(ROUND_NEAREST);

    int resumes = 0;
    while (!blz__fiber_resume(f)) {
        resumes++;
        /* The fiber rounds up; that must not leak into this thread. */
        CHECK_EQ(fp_round_mode(), ROUND_NEAREST);
        CHECK(third_times_three() == 1.0);
    }
    CHECK_EQ(resumes, 100);
# if !(defined(BLZ_FIBER_UCONTEXT) && BLZ_FIBER_UCONTEXT)
    /* (The ucontext fallback starts a fiber with its creator's FP state.) */
    CHECK_EQ(a.start_mode, ROUND_NEAREST);
# endif
    CHECK_EQ(a.errors, 0);
    CHECK_EQ(fp_round_mode(), ROUND_NEAREST);
    blz__fiber_free(f);

    /* And the other way round: a thread rounding up resumes a default fiber. */
    CHECK_OK(blz__fiber_new(pool, fp_entry, &a, &f));
    a.errors = 0;
    fp_set_round_mode(ROUND_UP);
    CHECK(!blz__fiber_resume(f));
    CHECK_EQ(fp_round_mode(), ROUND_UP);
    fp_set_round_mode(ROUND_NEAREST);
    while (!blz__fiber_resume(f)) {
    }
    CHECK_EQ(a.start_mode, ROUND_NEAREST);
    CHECK_EQ(a.errors, 0);
    blz__fiber_free(f);
    blz__stack_pool_free(pool);
}
#else
# define HAVE_FP_CONTROL 0
#endif

/* ---- Nesting: a fiber creates and resumes another ---- */

struct nest {
    blz__stack_pool *pool;
    blz__fiber *outer;
    blz__fiber *inner;
    int inner_steps;
    int outer_steps;
};

static void
inner_entry(void *arg)
{
    struct nest *n = arg;
    for (int i = 0; i < 3; i++) {
        CHECK_PTR_EQ(blz__fiber_current(), n->inner);
        n->inner_steps++;
        blz__fiber_suspend();
    }
}

static void
outer_entry(void *arg)
{
    struct nest *n = arg;
    CHECK_OK(blz__fiber_new(n->pool, inner_entry, n, &n->inner));
    while (!blz__fiber_resume(n->inner)) {
        CHECK_PTR_EQ(blz__fiber_current(), n->outer);
        n->outer_steps++;
        blz__fiber_suspend(); /* back to the thread, with inner suspended */
        CHECK_PTR_EQ(blz__fiber_current(), n->outer);
    }
    blz__fiber_free(n->inner);
}

BLZ_TEST(nested_fibers)
{
    struct nest n = {.pool = new_pool()};
    CHECK_OK(blz__fiber_new(n.pool, outer_entry, &n, &n.outer));
    int resumes = 0;
    while (!blz__fiber_resume(n.outer)) {
        CHECK_PTR_EQ(blz__fiber_current(), NULL);
        resumes++;
    }
    CHECK_EQ(resumes, 3);
    CHECK_EQ(n.inner_steps, 3);
    CHECK_EQ(n.outer_steps, 3);
    blz__fiber_free(n.outer);
    CHECK_EQ(blz__stack_pool_mapped(n.pool), 2);
    blz__stack_pool_free(n.pool);
}

/* ---- Migration: suspended on one thread, resumed on another ---- */

#define MIGRATIONS 10000

static _Thread_local int thread_tag = -1;

static OPAQUE int
current_thread_tag(void)
{
    __asm__ __volatile__("");
    return thread_tag;
}

/* pthread_self is declared const, so inline calls may be merged across a
 * suspend: the same hazard as a cached thread-local address. */
static OPAQUE pthread_t
current_thread(void)
{
    __asm__ __volatile__("");
    return pthread_self();
}

struct migrate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t threads[2]; /* written by each worker at start, under mu */
    int ready;            /* workers registered, under mu */
    int turn;             /* whose turn to resume the fiber, under mu */
    bool done;            /* the fiber finished, under mu */
    blz__fiber *f;
    long resumes[2]; /* per worker, written by it alone */
};

static void
migrate_entry(void *arg)
{
    struct migrate *m = arg;
#if HAVE_FP_CONTROL
    fp_set_round_mode(ROUND_UP); /* travels with the fiber, not the thread */
#endif
    for (int i = 0; i < MIGRATIONS; i++) {
        int k = i % 2;
        CHECK_PTR_EQ(blz__fiber_current(), m->f);
        CHECK_EQ(current_thread_tag(), k);
        CHECK(pthread_equal(current_thread(), m->threads[k]));
#if HAVE_FP_CONTROL
        CHECK_EQ(fp_round_mode(), ROUND_UP);
#endif
        blz__fiber_suspend();
    }
}

struct worker_arg {
    struct migrate *m;
    int k;
};

static void *
migrate_worker(void *arg)
{
    struct worker_arg *w = arg;
    struct migrate *m = w->m;
    int k = w->k;
    thread_tag = k;
    pthread_mutex_lock(&m->mu);
    m->threads[k] = pthread_self();
    m->ready++;
    pthread_cond_broadcast(&m->cv);
    for (;;) {
        while (!m->done && (m->ready < 2 || m->turn != k)) {
            pthread_cond_wait(&m->cv, &m->mu);
        }
        if (m->done) {
            break;
        }
        pthread_mutex_unlock(&m->mu);

        CHECK_PTR_EQ(blz__fiber_current(), NULL);
        bool finished = blz__fiber_resume(m->f);
        CHECK_PTR_EQ(blz__fiber_current(), NULL);
#if HAVE_FP_CONTROL
        CHECK_EQ(fp_round_mode(), ROUND_NEAREST);
#endif
        m->resumes[k]++;

        pthread_mutex_lock(&m->mu);
        m->done = finished;
        m->turn = 1 - k;
        pthread_cond_broadcast(&m->cv);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

BLZ_TEST(migrate_between_threads)
{
    blz__stack_pool *pool = new_pool();
    struct migrate m = {.turn = 0};
    pthread_mutex_init(&m.mu, NULL);
    pthread_cond_init(&m.cv, NULL);
    CHECK_OK(blz__fiber_new(pool, migrate_entry, &m, &m.f));
    pthread_t t[2];
    struct worker_arg w[2] = {{&m, 0}, {&m, 1}};
    for (int k = 0; k < 2; k++) {
        CHECK_EQ(pthread_create(&t[k], NULL, migrate_worker, &w[k]), 0);
    }
    for (int k = 0; k < 2; k++) {
        CHECK_EQ(pthread_join(t[k], NULL), 0);
    }
    CHECK(m.done);
    CHECK_EQ(m.resumes[0] + m.resumes[1], MIGRATIONS + 1);
    CHECK_EQ(m.resumes[0], MIGRATIONS / 2 + 1);
    blz__fiber_free(m.f);
    pthread_cond_destroy(&m.cv);
    pthread_mutex_destroy(&m.mu);
    blz__stack_pool_free(pool);
}

/* ---- 100,000 live fibers, then stack reuse ---- */

static void
phase_entry(void *arg)
{
    unsigned char *phase = arg;
    *phase = 1;
    blz__fiber_suspend();
    *phase = 2;
}

static long
max_map_count(void)
{
    long v = 65530;
    FILE *fp = fopen("/proc/sys/vm/max_map_count", "r");
    if (fp) {
        if (fscanf(fp, "%ld", &v) != 1) {
            v = 65530;
        }
        fclose(fp);
    }
    return v;
}

BLZ_TEST(hundred_thousand_live_fibers)
{
    /* ThreadSanitizer keeps a thread's worth of state per fiber: fewer there. */
    size_t n = UNDER_TSAN ? 2000 : 100000;
    blz__stack_pool *pool = new_pool();
    if (blz__stack_pool_guard(pool) == BLZ__STACK_GUARD_MPROTECT) {
        /* Two VMAs per stack: stay under vm.max_map_count (the kernel lacks
         * MADV_GUARD_INSTALL). */
        size_t cap = (size_t) (max_map_count() - 4096) / 2;
        if (n > cap) {
            fprintf(stderr, "note: mprotect guards; %zu live fibers instead of %zu\n", cap, n);
            n = cap;
        }
    }
    blz__fiber **fs = calloc(n, sizeof *fs);
    unsigned char *phase = calloc(n, 1);
    CHECK(fs && phase);

    for (size_t i = 0; i < n; i++) {
        int rc = blz__fiber_new(pool, phase_entry, &phase[i], &fs[i]);
        if (rc < 0) {
            fprintf(stderr, "fiber %zu of %zu\n", i, n);
            CHECK_OK(rc);
        }
    }
    CHECK_EQ(blz__stack_pool_mapped(pool), n);
    for (size_t i = 0; i < n; i++) {
        if (blz__fiber_resume(fs[i]) || phase[i] != 1) {
            CHECK_EQ(phase[i], 1);
            CHECK(false);
        }
    }
    /* Every fiber is now suspended mid-function, its stack alive. */
    for (size_t i = 0; i < n; i++) {
        if (!blz__fiber_resume(fs[i]) || phase[i] != 2) {
            CHECK_EQ(phase[i], 2);
            CHECK(false);
        }
    }
    for (size_t i = 0; i < n; i++) {
        blz__fiber_free(fs[i]);
    }
    size_t mapped = blz__stack_pool_mapped(pool);
    CHECK_LE(mapped, 1024); /* the default cache bound; the rest were unmapped */

    /* Reuse: more fibers than the cache holds are served from it, not mmap. */
    for (int round = 0; round < 10; round++) {
        for (size_t i = 0; i < 1000; i++) {
            CHECK_OK(blz__fiber_new(pool, phase_entry, &phase[i], &fs[i]));
        }
        for (size_t i = 0; i < 1000; i++) {
            CHECK(!blz__fiber_resume(fs[i]));
            CHECK(blz__fiber_resume(fs[i]));
            blz__fiber_free(fs[i]);
        }
        CHECK_EQ(blz__stack_pool_mapped(pool), mapped);
    }
    free(phase);
    free(fs);
    blz__stack_pool_free(pool);
}

/* ---- The pool under concurrent create/free ---- */

#define POOL_THREADS    4
#define POOL_ITERATIONS 5000

static void
yield_once_entry(void *arg)
{
    long *count = arg;
    (*count)++;
    blz__fiber_suspend();
    (*count)++;
}

static void *
pool_worker(void *arg)
{
    blz__stack_pool *pool = arg;
    long count = 0;
    blz__fiber *held[4] = {0};
    for (int i = 0; i < POOL_ITERATIONS; i++) {
        /* Keep a few alive at once so takes and gives interleave across threads. */
        int slot = i % 4;
        if (held[slot]) {
            CHECK(blz__fiber_resume(held[slot]));
            blz__fiber_free(held[slot]);
        }
        CHECK_OK(blz__fiber_new(pool, yield_once_entry, &count, &held[slot]));
        CHECK(!blz__fiber_resume(held[slot]));
    }
    for (int slot = 0; slot < 4; slot++) {
        CHECK(blz__fiber_resume(held[slot]));
        blz__fiber_free(held[slot]);
    }
    CHECK_EQ(count, 2L * POOL_ITERATIONS);
    return NULL;
}

BLZ_TEST(pool_is_thread_safe)
{
    /* A small cache, so gives also take the unmap path. */
    blz__stack_pool_opts opts = {.stack_size = 32 * 1024, .max_cached = 8};
    blz__stack_pool *pool;
    CHECK_OK(blz__stack_pool_new_opts(&opts, &pool));
    pthread_t t[POOL_THREADS];
    for (int k = 0; k < POOL_THREADS; k++) {
        CHECK_EQ(pthread_create(&t[k], NULL, pool_worker, pool), 0);
    }
    for (int k = 0; k < POOL_THREADS; k++) {
        CHECK_EQ(pthread_join(t[k], NULL), 0);
    }
    CHECK_LE(blz__stack_pool_mapped(pool), 8);
    blz__stack_pool_free(pool);
}

/* ---- Stacks freed on one thread are reused on another ---- */

struct cross {
    blz__stack_pool *pool;
    blz__fiber *fs[200];
    struct once o[200];
};

static void *
cross_free_all(void *arg)
{
    struct cross *x = arg;
    for (int i = 0; i < 200; i++) {
        blz__fiber_free(x->fs[i]);
    }
    return NULL;
}

BLZ_TEST(stacks_reused_across_threads)
{
    struct cross *x = calloc(1, sizeof *x);
    CHECK(x != NULL);
    x->pool = new_pool();
    for (int round = 0; round < 5; round++) {
        /* Made (and finished) here, freed on another thread, made here again:
         * the second batch must come from the other thread's shard, not mmap. */
        for (int i = 0; i < 200; i++) {
            CHECK_OK(blz__fiber_new(x->pool, once_entry, &x->o[i], &x->fs[i]));
            CHECK(blz__fiber_resume(x->fs[i]));
        }
        CHECK_EQ(blz__stack_pool_mapped(x->pool), 200);
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, cross_free_all, x), 0);
        CHECK_EQ(pthread_join(t, NULL), 0);
        CHECK_EQ(blz__stack_pool_mapped(x->pool), 200);
    }
    blz__stack_pool_free(x->pool);
    free(x);
}

/* ---- Stack sizes ---- */

static void
deep_stack_entry(void *arg)
{
    size_t *used = arg;
    /* Uses most of a 16 KiB stack in one frame. */
    volatile unsigned char big[12 * 1024];
    for (size_t i = 0; i < sizeof big; i += 64) {
        big[i] = (unsigned char) i;
    }
    blz__fiber_suspend();
    size_t sum = 0;
    for (size_t i = 0; i < sizeof big; i += 64) {
        sum += big[i] == (unsigned char) i;
    }
    *used = sum;
}

BLZ_TEST(small_stack_is_usable)
{
    blz__stack_pool *pool;
    CHECK_OK(blz__stack_pool_new(1000, &pool)); /* raised to the 16 KiB minimum */
    size_t used = 0;
    blz__fiber *f;
    CHECK_OK(blz__fiber_new(pool, deep_stack_entry, &used, &f));
    CHECK(!blz__fiber_resume(f));
    CHECK(blz__fiber_resume(f));
    CHECK_EQ(used, 12 * 1024 / 64);
    blz__fiber_free(f);
    blz__stack_pool_free(pool);
}

BLZ_TEST(guard_kinds)
{
    blz__stack_pool_opts opts = {.guard = BLZ__STACK_GUARD_MPROTECT};
    blz__stack_pool *pool;
    CHECK_OK(blz__stack_pool_new_opts(&opts, &pool));
    CHECK_EQ(blz__stack_pool_guard(pool), BLZ__STACK_GUARD_MPROTECT);
    struct once o = {0};
    CHECK_OK(blz__fiber_new(pool, once_entry, &o, &o.self));
    CHECK(blz__fiber_resume(o.self));
    blz__fiber_free(o.self);
    blz__stack_pool_free(pool);

    opts.guard = BLZ__STACK_GUARD_MADVISE;
    int rc = blz__stack_pool_new_opts(&opts, &pool);
    if (rc == -EOPNOTSUPP) {
        return; /* an older kernel: AUTO falls back to mprotect */
    }
    CHECK_OK(rc);
    CHECK_EQ(blz__stack_pool_guard(pool), BLZ__STACK_GUARD_MADVISE);
    o.runs = 0;
    CHECK_OK(blz__fiber_new(pool, once_entry, &o, &o.self));
    CHECK(blz__fiber_resume(o.self));
    CHECK_EQ(o.runs, 1);
    blz__fiber_free(o.self);
    blz__stack_pool_free(pool);
}
