/*
 * Fiber tasks: a task whose poll switches onto a fiber's stack and back.
 *
 * The payload holds the entry function, its argument and the fiber. The fiber
 * is created at the first poll (so spawning does not map a stack) and freed as
 * soon as its function returns. Inside the fiber, blz_await polls the future
 * with the task's waker and, while it is pending, suspends the fiber: the
 * task's poll then returns BLZ_PENDING and the worker moves on. A wake puts
 * the task back in a queue and the next poll resumes the fiber, which polls
 * the future again.
 *
 * Cancellation: once CANCELLED is set, every blz_await on the fiber drops its
 * future and returns -ECANCELED without suspending, so the function unwinds
 * through its own error paths; the task completes with -ECANCELED. One
 * that finishes without waiting again after the abort completes with its
 * value, as if the abort had come too late (nothing it did changed). A fiber
 * cancelled before its first poll never starts; its cancel hook, if it has
 * one (blz_spawn_owned), runs instead, so an argument that owns resources
 * is released either way; so it does when no stack can be had for the fiber.
 */
#include "core/atomic.h"
#include "core/container.h"
#include "core/coop.h"
#include "rt/current.h"
#include "rt/hooks.h"
#include "rt/runtime.h"
#include "rt/task.h"

#include <stdlib.h>
#ifdef __GLIBC__
# include <execinfo.h>
#endif

typedef struct fiber_payload {
    blz_task_fn fn;            /* the task body */
    void (*cancel)(void *arg); /* runs instead of fn when cancelled before start, or NULL */
    void *arg;                 /* their argument */
    void *result;              /* fn's return value, set on the fiber before it finishes */
    blz__fiber *fiber;         /* NULL until the first poll and after it finished */
    blz_task_dump *trace;      /* set only while a task dump holds the task (see suspend) */
    bool saw_cancel;           /* a wait returned -ECANCELED: fn knows it was cut short */
} fiber_payload;

/* A fiber task stays in the smallest cell class. */
_Static_assert(BLZ_TASK_HEADER_SIZE + sizeof(fiber_payload) <= 128, "fiber task cell");

/* Room a backtrace needs below the suspended frames (the unwinder's state). */
#define TRACE_ROOM ((size_t) 8 * 1024)
/* Frames of the trace machinery itself: trace_self (suspend is inlined). */
#define TRACE_SKIP 1

static fiber_payload *
payload_of(blz__task *t)
{
    return blz__task_payload(t);
}

blz_task_fn
blz__fiber_task_fn(blz__task *t)
{
    return payload_of(t)->fn;
}

static void
fiber_entry(void *arg)
{
    blz__task *t = arg;
    fiber_payload *p = payload_of(t);
    p->result = p->fn(p->arg);
}

int
blz__fiber_task_spawn(blz_runtime *rt, blz_task_fn fn, void (*cancel)(void *), void *arg,
                      blz__task **out)
{
    blz__task *t;
    int rc = blz__task_alloc(rt, BLZ_TASK_FIBER, sizeof(fiber_payload), &t);
    if (rc < 0) {
        return rc;
    }
    fiber_payload *p = payload_of(t);
    p->fn = fn;
    p->cancel = cancel;
    p->arg = arg;
    p->result = NULL;
    p->fiber = NULL;
    p->trace = NULL;
    p->saw_cancel = false;
    *out = t;
    return 0;
}

blz_poll
blz__fiber_task_poll(blz__task *t, blz_context *cx)
{
    (void) cx; /* the fiber builds its own context from the task */
    fiber_payload *p = payload_of(t);
    uint64_t state = blz__load(&t->state, ACQUIRE);
    if (!p->fiber) {
        if (state & BLZ_TASK_CANCELLED) {
            if (p->cancel) {
                p->cancel(p->arg); /* fn never runs: its argument is released here */
            }
            blz__task_set_result(t, NULL, -ECANCELED);
            return BLZ_READY;
        }
        int rc = blz__fiber_new(t->rt->stacks, fiber_entry, t, &p->fiber);
        if (rc < 0) {
            /* No stack: the task fails with the error rather than crashing the
             * worker. fn will never run, so an argument that owns resources
             * is released here too (blz_spawn_owned: one of the two runs). */
            p->fiber = NULL;
            if (p->cancel) {
                p->cancel(p->arg);
            }
            blz__task_set_result(t, NULL, rc);
            return BLZ_READY;
        }
    }
    if (!blz__fiber_resume(p->fiber)) {
        return BLZ_PENDING;
    }
    blz__fiber_free(p->fiber);
    /* Cancelled is what fn saw: a wait that said -ECANCELED cut it short,
     * and what it returns then is not a result. An abort that came after
     * its last wait changed nothing it did: its value is the task's (as a
     * future that finishes in the poll an abort races with keeps its
     * output), and dropping it would leak whatever it owns. */
    blz__task_set_result(t, p->saw_cancel ? NULL : p->result, p->saw_cancel ? -ECANCELED : 0);
    return BLZ_READY;
}

static BLZ_NOINLINE void
trace_self(blz_task_dump *d)
{
    d->nframes = 0;
#ifdef __GLIBC__
    void *frames[BLZ_DUMP_FRAMES + TRACE_SKIP];
    if (blz__fiber_stack_room() < TRACE_ROOM) {
        return; /* suspended too deep to unwind safely */
    }
    int n = backtrace(frames, (int) (BLZ_DUMP_FRAMES + TRACE_SKIP));
    for (int i = TRACE_SKIP; i < n; i++) {
        d->frames[d->nframes++] = frames[i];
    }
#endif
}

/*
 * Suspends the fiber of task t until a worker resumes it. A task dump
 * (blz__fiber_task_trace) may resume it in between, on the dumper's thread,
 * only to unwind its stack: it fills the trace and suspends again without
 * running any of the task's code. `trace` is written by the dumper on its own
 * thread before that resume and cleared before it lets the task go, so a
 * worker's resume always finds it NULL.
 *
 * Inlined: blz__fiber_suspend's switch comes back straight into its caller,
 * and an out-of-line suspend adds a `ret` that the return-stack predictor
 * misses after every switch (measured on blz_yield: 43 -> 57 ns). blz_yield
 * and the budget path do without it: they suspend notified, and a dump never
 * holds a notified task.
 */
static BLZ_ALWAYS_INLINE void
suspend(blz__task *t)
{
    blz__fiber_suspend();
    fiber_payload *p = payload_of(t);
    while (p->trace) {
        trace_self(p->trace);
        blz__fiber_suspend();
    }
}

void
blz__fiber_task_trace(blz__task *t, blz_task_dump *d)
{
    fiber_payload *p = payload_of(t);
    d->fiber_fn = p->fn;
    d->nframes = 0;
    if (!p->fiber) {
        return; /* not started: no stack yet */
    }
    p->trace = d;
    bool finished = blz__fiber_resume(p->fiber);
    BLZ_ASSERT(!finished); /* a traced fiber only suspends again */
    (void) finished;
    p->trace = NULL;
}

/* The await loop of a fiber; `heed_cancel` is a constant at each call. */
static BLZ_ALWAYS_INLINE int
fiber_await(blz_future *f, bool heed_cancel)
{
    for (;;) {
        /* Re-read after every switch: we may be on another worker now. */
        blz__task *t = blz__task_current();
        if (heed_cancel && (blz__load(&t->state, ACQUIRE) & BLZ_TASK_CANCELLED)) {
            blz_future_drop(f);
            payload_of(t)->saw_cancel = true;
            return -ECANCELED;
        }
        blz_waker waker = blz__task_waker_ref(t);
        blz_context cx = {&waker};
        if (!blz__coop_take()) {
            /* Budget spent: let the others run before polling again. */
            blz_waker_wake_by_ref(&waker);
            blz__fiber_suspend(); /* notified: no dump holds it (see blz_yield) */
            continue;
        }
        if (blz_future_poll(f, &cx) == BLZ_READY) {
            return f->result;
        }
        suspend(t);
    }
}

int
blz__fiber_task_await(blz_future *f)
{
    return fiber_await(f, true);
}

int
blz__fiber_task_await_shielded(blz_future *f)
{
    /* A cancelled fiber runs on until its function returns, so it can
     * still wait: the future it polls wakes it like any other. */
    return fiber_await(f, false);
}

void
blz_yield(void)
{
    if (blz__fiber_current() == NULL) {
        return; /* a thread outside the runtime has nothing to yield to */
    }
    blz__task *t = blz__task_current();
    blz_waker waker = blz__task_waker_ref(t);
    /* Notified while running: the worker re-queues us at the back after we
     * suspend. NOTIFIED or RUNNING stays set until a worker resumes us, so no
     * task dump holds us meanwhile and the suspend can be a tail call: the
     * switch then comes back straight into our caller. */
    blz_waker_wake_by_ref(&waker);
    blz__fiber_suspend();
}

static blz_poll
yield_poll(blz_future *base, blz_context *cx)
{
    blz_yield_future *f = (blz_yield_future *) base;
    if (f->yielded_) {
        base->result = 0;
        return BLZ_READY;
    }
    f->yielded_ = true;
    blz_waker_wake_by_ref(cx->waker);
    return BLZ_PENDING;
}

static const blz_future_vtable yield_vtable = {yield_poll, NULL};

void
blz_yield_fut(blz_yield_future *f)
{
    if (!f) {
        return;
    }
    blz_future_init(&f->base, &yield_vtable);
    f->yielded_ = false;
}
