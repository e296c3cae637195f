/*
 * Fibers: stackful coroutines on pooled, guard-paged stacks.
 *
 * Layout. A fiber is one stack from its pool and nothing else:
 *
 *     low  [guard page][usable stack ...... initial frame][struct blz__fiber]  high
 *
 * The struct sits in the top bytes of the usable region (no heap allocation);
 * the stack grows down from just below it.
 *
 * States (`state`) and who moves them:
 *
 *     NEW --resume--> RUNNING --suspend--> SUSPENDED --resume--> RUNNING ...
 *                        \--entry returns--> DONE
 *
 *   The resumer writes RUNNING just before it switches in; the fiber writes
 *   SUSPENDED or DONE just before it switches out. The state is the fiber's
 *   own bookkeeping (and the debug checks'); it does not tell other threads
 *   when the stack is free, which is what the ownership rule below is for.
 *
 * Ownership. One thread at a time owns a fiber: the thread inside
 * blz__fiber_resume(f) for the length of that call (the fiber's code runs on
 * it). A SUSPENDED fiber may be handed to another thread; the handoff must
 * order the old owner's accesses before the new owner's (a mutex, or the
 * scheduler's release/acquire queues), and it must not start before
 * blz__fiber_resume has returned on the old owner: until then the fiber's
 * stack is still in use.
 *
 * Switch bookkeeping. `sp` holds the fiber's stack pointer while it is switched
 * out; `resumer_sp` holds the resumer's while the fiber runs. Keeping the
 * resumer's context in the fiber (not in a thread-local) is what lets a fiber
 * resume another fiber (nesting) and lets suspend find its way back without
 * looking at the thread. The one thread-local, `tls_current`, costs a load
 * and a store per direction: blz__fiber_resume exchanges f for the current
 * fiber (kept in f->outer) before it switches in, and the fiber puts f->outer
 * back just before it switches out, on the same thread, so neither side has
 * anything to do after its switch and both end in a tail call to it.
 *
 * Tools. Every switch is announced to AddressSanitizer (fake stacks and stack
 * bounds), ThreadSanitizer (one tsan fiber per fiber) and, with BLZ_VALGRIND,
 * valgrind (stack registration).
 */
#include "fiber/fiber.h"

#include "fiber/stack_pool.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>

/* The context switch: our assembly on x86-64 and AArch64, ucontext elsewhere
 * (slow: swapcontext makes a sigprocmask system call, about 500 ns a switch,
 * and a fresh fiber starts with its creator's FP control state, captured by
 * getcontext, rather than the ABI default). BLZ_FIBER_UCONTEXT=1 (the CMake
 * option of that name; `make check-ucontext`) forces the fallback, to test it
 * on a machine that has the assembly. */
#if defined(BLZ_FIBER_UCONTEXT) && BLZ_FIBER_UCONTEXT
# define FIBER_UCONTEXT 1
#elif !defined(__x86_64__) && !defined(__aarch64__)
# define FIBER_UCONTEXT 1
#else
# define FIBER_UCONTEXT 0
#endif

#if FIBER_UCONTEXT
# include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
# define FIBER_ASAN 1
#elif defined(__has_feature)
# if __has_feature(address_sanitizer)
#  define FIBER_ASAN 1
# endif
#endif
#ifndef FIBER_ASAN
# define FIBER_ASAN 0
#endif

#if defined(__SANITIZE_THREAD__)
# define FIBER_TSAN 1
#elif defined(__has_feature)
# if __has_feature(thread_sanitizer)
#  define FIBER_TSAN 1
# endif
#endif
#ifndef FIBER_TSAN
# define FIBER_TSAN 0
#endif

#if defined(BLZ_VALGRIND) && BLZ_VALGRIND && defined(__has_include)
# if __has_include(<valgrind/valgrind.h>)
#  define FIBER_VALGRIND 1
# endif
#endif
#ifndef FIBER_VALGRIND
# define FIBER_VALGRIND 0
#endif

/* Whether a side has work to do after a switch returns (ASan's
 * finish_switch_fiber). Without, resume and suspend end in a tail call. */
#define FIBER_SWITCH_EPILOGUE FIBER_ASAN

#if FIBER_ASAN
# include <sanitizer/asan_interface.h>
# include <sanitizer/common_interface_defs.h>
#endif
#if FIBER_TSAN
# include <sanitizer/tsan_interface.h>
#endif
#if FIBER_VALGRIND
# include <valgrind/valgrind.h>
#endif

#if defined(__GNUC__)
# define FIBER_NOINLINE  __attribute__((noinline))
# define FIBER_NORETURN  __attribute__((noreturn))
# define FIBER_TLS_MODEL __attribute__((tls_model("initial-exec")))
#else
# define FIBER_NOINLINE
# define FIBER_NORETURN
# define FIBER_TLS_MODEL
#endif

enum fiber_state {
    FIBER_NEW = 0,   /* made, never resumed: the initial frame waits at `sp` */
    FIBER_RUNNING,   /* some thread is inside blz__fiber_resume(f) */
    FIBER_SUSPENDED, /* switched out by blz__fiber_suspend; `sp` is valid */
    FIBER_DONE,      /* entry returned; the stack holds nothing of value */
};

struct blz__fiber {
    void *sp;               /* the fiber's stack pointer while switched out; written by the
                               switch on the fiber's side, read by the resumer */
    void *resumer_sp;       /* the resumer's stack pointer while the fiber runs; written by
                               the switch in blz__fiber_resume, read by the fiber's switch out */
    blz__fiber *outer;      /* the resumer's current fiber (NULL on a thread's own stack)
                               while the fiber runs; restored to tls_current as it leaves */
    enum fiber_state state; /* see the state machine at the top of the file */
    void (*entry)(void *);  /* immutable: what the fiber runs */
    void *arg;              /* immutable: entry's argument */
    blz__stack_pool *pool;  /* immutable: where the stack goes back */
    char *stack_lo;         /* immutable: the lowest usable byte of the stack */
#if FIBER_ASAN
    void *asan_fake_stack;  /* the fiber's ASan fake stack while it is switched out */
    const void *resumer_lo; /* the resumer's stack bounds, as ASan reported them when the */
    size_t resumer_size;    /*   fiber was last switched in; for switching back out */
#endif
#if FIBER_TSAN
    void *tsan_fiber;   /* immutable: the tsan fiber that stands for this fiber */
    void *tsan_resumer; /* the resumer's tsan fiber (or thread) while the fiber runs */
#endif
#if FIBER_VALGRIND
    unsigned valgrind_stack; /* immutable: valgrind's id for the registered stack */
#endif
#if FIBER_UCONTEXT
    ucontext_t uc;         /* the fiber's context while switched out */
    ucontext_t resumer_uc; /* the resumer's context while the fiber runs */
#endif
};

/* The struct's share of the stack top, rounded to a cache line; that also
 * keeps the stack top below it 16-byte aligned, as the ABIs want. */
#define FIBER_HEADER_SIZE ((sizeof(struct blz__fiber) + 63) & ~(size_t) 63)

/* The fiber running on this thread, or NULL on the thread's own stack. */
static _Thread_local blz__fiber *tls_current FIBER_TLS_MODEL;

/*
 * Thread-locals and switches. A fiber may suspend on thread A and be resumed
 * on thread B. The compiler believes a function activation runs on one thread
 * from its first instruction to its last, so it may compute the address of a
 * _Thread_local once and reuse it after a call (gcc does on AArch64, where the
 * address is tpidr_el0 plus an offset, and in shared libraries, where it comes
 * from __tls_get_addr). After the opaque switch, that address would still be
 * thread A's variable.
 *
 * Hence the rule in this file: within one activation, tls_current is touched
 * directly only before the first switch; after a switch, only through an
 * accessor that is never inlined, so that each call computes the address
 * afresh on the thread running at that moment (the empty volatile asm stops
 * the optimizer from deciding the accessor is pure and merging or hoisting
 * calls to it). blz__fiber_resume and blz__fiber_suspend are kept out of line
 * themselves and touch tls_current only before they switch, which keeps the
 * two hottest paths free of extra calls; fiber_main, whose call to entry may
 * have moved it across threads many times, goes through leave_after_switch().
 * Code running on fibers must follow the same rule for its own thread-locals.
 */
FIBER_NOINLINE blz__fiber *
blz__fiber_current(void)
{
    __asm__ __volatile__("");
    return tls_current;
}

FIBER_NOINLINE size_t
blz__fiber_stack_room(void)
{
    blz__fiber *f = blz__fiber_current();
    /* The real frame, not a local's address: under ASan locals may live on a
     * fake stack in the heap. */
    uintptr_t sp = (uintptr_t) __builtin_frame_address(0);
    if (!f || sp < (uintptr_t) f->stack_lo || sp >= (uintptr_t) f) {
        return 0;
    }
    uintptr_t lo = (uintptr_t) f->stack_lo;
    return (size_t) (sp - lo);
}

/* Makes f this thread's current fiber; returns the one it replaces.
 * Direct access: only before a switch (see above). */
static inline blz__fiber *
tls_enter(blz__fiber *f)
{
    blz__fiber *outer = tls_current;
    tls_current = f;
    return outer;
}

/* The fiber running on this thread is about to switch back to its resumer:
 * returns it, and makes the resumer's fiber current again. NULL off a fiber.
 * Direct access: only before a switch (see above). */
static inline blz__fiber *
tls_leave(void)
{
    blz__fiber *f = tls_current;
    if (f) {
        tls_current = f->outer;
    }
    return f;
}

/* tls_leave for an activation that has switched already. */
static FIBER_NOINLINE blz__fiber *
leave_after_switch(void)
{
    __asm__ __volatile__("");
    return tls_leave();
}

static size_t
stack_size_of(const blz__fiber *f)
{
    return (size_t) ((const char *) f - f->stack_lo);
}

/* ---- Tool annotations, one pair per direction of switch ---- */

/* On the resumer, just before it switches into f. */
static inline void
hooks_enter_begin(blz__fiber *f, void **resumer_fake_stack)
{
#if FIBER_ASAN
    __sanitizer_start_switch_fiber(resumer_fake_stack, f->stack_lo, stack_size_of(f));
#else
    (void) resumer_fake_stack;
#endif
#if FIBER_TSAN
    f->tsan_resumer = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(f->tsan_fiber, 0);
#endif
    (void) f;
}

#if FIBER_SWITCH_EPILOGUE
/* On the resumer, just after f switched back to it. */
static inline void
hooks_enter_end(void *resumer_fake_stack)
{
    __sanitizer_finish_switch_fiber(resumer_fake_stack, NULL, NULL);
}
#endif

/* On f, just before it switches back to its resumer. A fiber that is finishing
 * never comes back, so ASan is given no place to save its fake stack: that
 * tells ASan to free it. */
static inline void
hooks_leave_begin(blz__fiber *f, bool finishing)
{
#if FIBER_ASAN
    __sanitizer_start_switch_fiber(finishing ? NULL : &f->asan_fake_stack, f->resumer_lo,
                                   f->resumer_size);
#endif
#if FIBER_TSAN
    __tsan_switch_to_fiber(f->tsan_resumer, 0);
#endif
    (void) f;
    (void) finishing;
}

/* On f, just after a resumer switched into it (possibly on another thread).
 * ASan reports the stack we came from: the resumer's, needed to switch back. */
static inline void
hooks_leave_end(blz__fiber *f, bool first)
{
#if FIBER_ASAN
    __sanitizer_finish_switch_fiber(first ? NULL : f->asan_fake_stack, &f->resumer_lo,
                                    &f->resumer_size);
#endif
    (void) f;
    (void) first;
}

/* ---- The switch itself ---- */

static FIBER_NORETURN void fiber_main(void *arg);

#if FIBER_UCONTEXT

/* makecontext passes only ints: the fiber pointer travels in two halves. */
static void
uc_start(unsigned hi, unsigned lo)
{
    uintptr_t p = ((uintptr_t) hi << 16 << 16) | (uintptr_t) lo;
    fiber_main((void *) p);
}

static int
ctx_prepare(blz__fiber *f)
{
    if (getcontext(&f->uc) != 0) {
        return -ENOMEM;
    }
    f->uc.uc_stack.ss_sp = f->stack_lo;
    f->uc.uc_stack.ss_size = stack_size_of(f) - 64; /* keep clear of the struct */
    f->uc.uc_link = NULL;
    uintptr_t p = (uintptr_t) f;
    makecontext(&f->uc, (void (*)(void)) uc_start, 2, (unsigned) (p >> 16 >> 16),
                (unsigned) (p & 0xffffffffu));
    return 0;
}

/* Switches into f; returns whether it finished. */
static inline bool
ctx_enter(blz__fiber *f)
{
    (void) swapcontext(&f->resumer_uc, &f->uc);
    return f->state == FIBER_DONE;
}

/* Switches f back to its resumer, telling it whether f finished. */
static inline void
ctx_leave(blz__fiber *f, bool done)
{
    (void) done; /* the resumer reads f->state */
    (void) swapcontext(&f->uc, &f->resumer_uc);
}

#else /* our assembly: src/fiber/switch_<arch>_<abi>_elf_gas.S */

/* Saves the callee-saved registers and FP control on the current stack, stores
 * the stack pointer in *save_sp, then loads new_sp and returns into the
 * context that was saved there, whose own blz__ctx_switch call returns value. */
bool blz__ctx_switch(void **save_sp, void *new_sp, bool value);

/* Builds, below stack_top, a frame that the first blz__ctx_switch to the
 * returned stack pointer turns into a call fn(arg). fn must not return. */
void *blz__ctx_init(void *stack_top, void (*fn)(void *), void *arg);

static int
ctx_prepare(blz__fiber *f)
{
    f->sp = blz__ctx_init(f, fiber_main, f);
    return 0;
}

/* Switches into f; returns whether it finished. */
static inline bool
ctx_enter(blz__fiber *f)
{
    return blz__ctx_switch(&f->resumer_sp, f->sp, false);
}

/* Switches f back to its resumer, telling it whether f finished. */
static inline void
ctx_leave(blz__fiber *f, bool done)
{
    (void) blz__ctx_switch(&f->sp, f->resumer_sp, done);
}

#endif

/* The bottom frame of every fiber. It runs entry, then leaves for good. */
static FIBER_NORETURN void
fiber_main(void *arg)
{
    blz__fiber *f = arg;
    hooks_leave_end(f, true);
    f->entry(f->arg);
    /* entry may have suspended and come back on another thread: `f` is a local,
     * not a thread-local, so it is still right. */
    f->state = FIBER_DONE;
    (void) leave_after_switch();
    hooks_leave_begin(f, true);
    ctx_leave(f, true);
    __builtin_trap(); /* a DONE fiber is never switched into again */
}

/* ---- The interface ---- */

int
blz__fiber_new(blz__stack_pool *pool, void (*entry)(void *), void *arg, blz__fiber **out)
{
    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    if (!pool || !entry) {
        return -EINVAL;
    }
    void *lo;
    size_t size;
    int rc = blz__stack_take(pool, &lo, &size);
    if (rc < 0) {
        return rc;
    }
    blz__fiber *f = (void *) ((char *) lo + size - FIBER_HEADER_SIZE);
    *f = (struct blz__fiber){
        .state = FIBER_NEW,
        .entry = entry,
        .arg = arg,
        .pool = pool,
        .stack_lo = lo,
    };
    rc = ctx_prepare(f);
    if (rc < 0) {
        blz__stack_give(pool, lo);
        return rc;
    }
#if FIBER_TSAN
    f->tsan_fiber = __tsan_create_fiber(0);
#endif
#if FIBER_VALGRIND
    f->valgrind_stack = VALGRIND_STACK_REGISTER(f->stack_lo, (char *) f);
#endif
    *out = f;
    return 0;
}

FIBER_NOINLINE bool
blz__fiber_resume(blz__fiber *f)
{
    if (!f || f->state == FIBER_DONE) {
        return true;
    }
    assert(f->state == FIBER_NEW || f->state == FIBER_SUSPENDED);
    if (f->state == FIBER_RUNNING) {
        return false; /* a scheduling bug: it is running already, here or elsewhere */
    }
    f->state = FIBER_RUNNING;
    f->outer = tls_enter(f); /* before the switch: direct access is safe */

    void *fake_stack = NULL;
    hooks_enter_begin(f, &fake_stack);
#if FIBER_SWITCH_EPILOGUE
    bool done = ctx_enter(f);
    hooks_enter_end(fake_stack);
    return done;
#else
    /* A tail call: when the fiber switches back, the switch lands directly in
     * our caller, and no `ret` has to guess where that is. tls_current was
     * restored by the fiber before it switched. */
    return ctx_enter(f);
#endif
}

FIBER_NOINLINE void
blz__fiber_suspend(void)
{
    blz__fiber *f = tls_leave(); /* before the switch: direct access is safe */
    assert(f != NULL && "blz__fiber_suspend called off a fiber");
    if (!f) {
        return;
    }
    f->state = FIBER_SUSPENDED;
    hooks_leave_begin(f, false);
    ctx_leave(f, false); /* a tail call unless there is an epilogue */
    /* Resumed, maybe on another thread: every thread-local must be read anew
     * through the accessors. `f` is a local and stays right. */
#if FIBER_SWITCH_EPILOGUE
    hooks_leave_end(f, false);
#endif
}

void
blz__fiber_free(blz__fiber *f)
{
    if (!f) {
        return;
    }
    assert(f->state == FIBER_NEW || f->state == FIBER_DONE);
    assert(f != blz__fiber_current());
    blz__stack_pool *pool = f->pool;
    char *lo = f->stack_lo;
    size_t size = stack_size_of(f) + FIBER_HEADER_SIZE;
#if FIBER_TSAN
    __tsan_destroy_fiber(f->tsan_fiber);
#endif
#if FIBER_VALGRIND
    VALGRIND_STACK_DEREGISTER(f->valgrind_stack);
#endif
#if FIBER_ASAN
    /* fiber_main's frame never returned, so its redzones are still poisoned;
     * the next fiber on this stack must start clean. */
    ASAN_UNPOISON_MEMORY_REGION(lo, size);
#endif
    (void) size;
    blz__stack_give(pool, lo); /* f lives in the stack: not touched after this */
}
