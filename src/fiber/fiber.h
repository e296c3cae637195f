/*
 * Internal: stackful coroutines (fibers) for fiber tasks.
 *
 * A fiber runs `entry(arg)` on its own stack. blz__fiber_resume() switches the
 * calling thread onto the fiber until the fiber calls blz__fiber_suspend() or
 * its entry returns; the resumer then continues. A fiber may be resumed on a
 * different thread each time (work stealing moves tasks), so code on a fiber
 * must not cache thread-local addresses across a suspend: read thread-locals
 * through the noinline accessors after every switch.
 *
 * Stacks come from a per-runtime pool of mmap regions, each with a guard page
 * below it, so an overflow faults (SIGSEGV) instead of corrupting memory. The
 * fiber's own bookkeeping lives in the top bytes of its stack: no heap.
 *
 * Handing a fiber between threads: one thread at a time runs a fiber, the one
 * inside blz__fiber_resume(f). A fiber that suspended may be resumed by any
 * thread, but only after blz__fiber_resume has returned on the thread that ran
 * it (until then its stack is still in use), and the handoff must synchronize
 * (a mutex, or a queue with release/acquire). A wake that arrives while the
 * fiber is still switching out must therefore be deferred until the resume
 * returns, as the task state machine does (notified while running: re-queue
 * after the poll).
 *
 * Each fiber has its own FP control state (rounding mode, exception masks,
 * flush-to-zero): the switch saves MXCSR and the x87 control word (x86-64) or
 * FPCR (AArch64), and a new fiber starts with the ABI default.
 */
#ifndef BLZ_FIBER_FIBER_H
#define BLZ_FIBER_FIBER_H

#include <stdbool.h>
#include <stddef.h>

typedef struct blz__fiber blz__fiber;
typedef struct blz__stack_pool blz__stack_pool;

/* A pool of stacks of `stack_size` usable bytes (rounded up to pages). 0 = 64 KiB.
 * Sizes below 16 KiB are raised to 16 KiB; above 1 GiB is -EINVAL. The usable bytes
 * include the fiber's own header (a few hundred bytes at the top of its stack).
 * -EINVAL for a NULL out, -ENOMEM when the pool cannot be allocated. */
int blz__stack_pool_new(size_t stack_size, blz__stack_pool **out);

/* How a pool makes the page below each stack fault. */
enum blz__stack_guard {
    BLZ__STACK_GUARD_AUTO = 0, /* MADVISE where the kernel has it, else MPROTECT */
    BLZ__STACK_GUARD_MPROTECT, /* mprotect(PROT_NONE): splits each stack into 2 VMAs, so
                                  vm.max_map_count (65530 by default) caps live stacks near 32k */
    BLZ__STACK_GUARD_MADVISE,  /* MADV_GUARD_INSTALL (Linux 6.13+): no VMA split, so adjacent
                                  stacks merge into one VMA and 100k+ live fibers are fine */
};

/* Everything blz__stack_pool_new takes, plus knobs for the runtime's config and tests. */
typedef struct blz__stack_pool_opts {
    size_t stack_size;           /* as for blz__stack_pool_new; 0 = 64 KiB */
    size_t max_cached;           /* freed stacks kept mapped for reuse, the rest are unmapped;
                                    0 = 1024 */
    enum blz__stack_guard guard; /* BLZ__STACK_GUARD_MADVISE on a kernel without it: -EOPNOTSUPP */
} blz__stack_pool_opts;

/* blz__stack_pool_new with options; opts may be NULL (all defaults). */
int blz__stack_pool_new_opts(const blz__stack_pool_opts *opts, blz__stack_pool **out);

/* The guard the pool uses: BLZ__STACK_GUARD_MPROTECT or BLZ__STACK_GUARD_MADVISE. */
enum blz__stack_guard blz__stack_pool_guard(const blz__stack_pool *pool);

/* Unmaps every cached stack. All fibers from the pool must be freed first. */
void blz__stack_pool_free(blz__stack_pool *pool);

/* Stacks mapped and not yet unmapped (in use + cached), for tests and metrics. */
size_t blz__stack_pool_mapped(const blz__stack_pool *pool);

/* Creates a fiber that will run entry(arg) when first resumed. -ENOMEM when no
 * stack can be mapped, -EINVAL for a NULL pool, entry or out. entry must return
 * normally (not longjmp out of the fiber); returning finishes the fiber.
 * Any thread, on a fiber or not (the pool has its own lock). */
int blz__fiber_new(blz__stack_pool *pool, void (*entry)(void *), void *arg, blz__fiber **out);

/* Runs `f` on the calling thread until it suspends or finishes.
 * Returns true when entry() has returned (the fiber is finished); true also for
 * a NULL or already finished fiber, without running anything. May be called on
 * a fiber (the inner fiber's suspend comes back to it): fibers nest. Never on
 * a fiber that is running (here or on another thread). */
bool blz__fiber_resume(blz__fiber *f);

/* Called on a fiber: switches back to whoever resumed it (a thread or an outer
 * fiber). Returns when resumed again, possibly on another thread. A no-op off a
 * fiber (and an assertion failure in debug builds). */
void blz__fiber_suspend(void);

/* The fiber running on this thread, or NULL on a thread's own stack. Out of line
 * on purpose: safe to call again after a suspend that moved the caller. */
blz__fiber *blz__fiber_current(void);

/* Bytes of stack left below the caller's frame on the fiber running on this
 * thread; 0 on a thread's own stack. */
size_t blz__fiber_stack_room(void);

/* Returns the stack to its pool. Only for a finished fiber or one never resumed
 * (freeing a suspended one would skip its cleanup and leak sanitizer state).
 * NULL is a no-op. Any thread, but not from the fiber itself. */
void blz__fiber_free(blz__fiber *f);

#endif
