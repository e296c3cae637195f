/*
 * Internal: the task cell and its state word.
 *
 * A task is one allocation: this header followed by its payload (a stackless
 * future's bytes, or a fiber's entry, or a blocking job). Its lifecycle lives
 * in one 64-bit atomic word changed only by CAS or fetch-op:
 *
 *   bit 0 RUNNING        a thread is polling it (only one at a time)
 *   bit 1 COMPLETE       finished; `output`/`status` are final
 *   bit 2 NOTIFIED       a wake arrived; it is in a queue, or will be re-queued
 *                        by the thread that is polling it
 *   bit 3 CANCELLED      abort was requested
 *   bit 4 JOIN_INTEREST  a join handle still exists
 *   bit 5 JOIN_WAKER     `join_waker` is set and owned by the completing side
 *   bits 6..63           reference count
 *
 * References: the owned list holds one until completion, the join handle one,
 * a queue entry one (NOTIFIED implies that reference), each waker clone one.
 * The cell is freed by whoever drops the count to zero, exactly once.
 *
 * JOIN_WAKER protocol: the joiner writes `join_waker` only while JOIN_WAKER is
 * clear and COMPLETE is clear, then sets JOIN_WAKER by CAS; the completer,
 * seeing JOIN_WAKER at completion, wakes it. The joiner clears JOIN_WAKER by
 * CAS (failing if COMPLETE) before touching the field again.
 */
#ifndef BLZ_RT_TASK_H
#define BLZ_RT_TASK_H

#include "blitzio/future.h"
#include "blitzio/rt.h"
#include "blitzio/task.h"

#include <stdatomic.h>
#include <stdint.h>

#define BLZ_TASK_RUNNING       ((uint64_t) 1 << 0)
#define BLZ_TASK_COMPLETE      ((uint64_t) 1 << 1)
#define BLZ_TASK_NOTIFIED      ((uint64_t) 1 << 2)
#define BLZ_TASK_CANCELLED     ((uint64_t) 1 << 3)
#define BLZ_TASK_JOIN_INTEREST ((uint64_t) 1 << 4)
#define BLZ_TASK_JOIN_WAKER    ((uint64_t) 1 << 5)
#define BLZ_TASK_REF_SHIFT     6
#define BLZ_TASK_REF_ONE       ((uint64_t) 1 << BLZ_TASK_REF_SHIFT)
#define BLZ_TASK_FLAGS_MASK    (BLZ_TASK_REF_ONE - 1)

typedef struct blz__task blz__task;

typedef enum blz__task_kind {
    BLZ_TASK_STACKLESS = 0,
    BLZ_TASK_FIBER = 1,
    BLZ_TASK_BLOCKING = 2,
} blz__task_kind;

struct blz__task {
    _Atomic uint64_t state; /* the word described above */
    blz__task *queue_next;  /* link in the inject or blocking queue; owned by that queue */
    blz__task *owned_prev;  /* links in the runtime's owned list; under the shard lock */
    blz__task *owned_next;
    blz_runtime *rt;      /* the runtime it runs on; fixed at spawn */
    blz_waker join_waker; /* see the JOIN_WAKER protocol */
    uint16_t shard;       /* owned-list shard */
    uint8_t kind;         /* blz__task_kind */
    uint8_t size_class;   /* cell pool class, or 0xff for a plain allocation */
    /* cfg.sched_delay_histogram: when it was last woken, spawned or yielded,
     * in µs modulo 2^32 (written before it is queued, read by the worker
     * that runs it: the queue orders the two). In what was padding. */
    uint32_t queued_us;
    /* payload follows, aligned to 16 */
};
_Static_assert(sizeof(struct blz__task) <= 64, "the task header stays one line");

#define BLZ_TASK_HEADER_SIZE ((sizeof(blz__task) + 15) & ~(size_t) 15)

static inline void *
blz__task_payload(blz__task *t)
{
    return (char *) t + BLZ_TASK_HEADER_SIZE;
}

/*
 * Once a task has finished, its payload (the future or the fiber's entry) is
 * dead, and its first bytes hold the result instead, as Tokio's Stage does:
 * written by the finishing thread before COMPLETE is published, read by the
 * joiner after it acquired COMPLETE. Every payload is at least this big.
 */
typedef struct blz__task_result {
    void *output; /* the task's value */
    int status;   /* 0, -ECANCELED, or the error that kept it from running */
} blz__task_result;

static inline blz__task_result *
blz__task_result_of(blz__task *t)
{
    return (blz__task_result *) blz__task_payload(t);
}

static inline void
blz__task_set_result(blz__task *t, void *output, int status)
{
    blz__task_result *r = blz__task_result_of(t);
    r->output = output;
    r->status = status;
}

/* ---- state transitions (core/task_cell.c) ---- */

/* Allocates a cell with `payload` bytes; state = NOTIFIED|JOIN_INTEREST, refs = 3. */
int blz__task_alloc(blz_runtime *rt, blz__task_kind kind, size_t payload, blz__task **out);
void blz__task_ref_inc(blz__task *t);
void blz__task_ref_dec(blz__task *t);

/* Queue -> running. Returns the state seen after the transition; if COMPLETE it
 * did not transition (drop the queue's ref). */
uint64_t blz__task_transition_to_running(blz__task *t);

/* Running -> idle after a pending poll. Returns true if the task was notified
 * meanwhile and must be scheduled again (the ref for the queue was taken). */
bool blz__task_transition_to_idle(blz__task *t);

/* Running -> complete: publishes output/status, wakes the joiner, removes the
 * task from the owned list and drops the running and owned references. */
void blz__task_complete(blz__task *t);

/* The task's waker vtable; data = the task. */
extern const blz_waker_vtable blz__task_waker_vtable;

static inline blz_waker
blz__task_waker_ref(blz__task *t)
{
    blz_waker w = {&blz__task_waker_vtable, t};
    return w;
}

/* Polls a task once on a worker (rt/worker.c calls this). */
void blz__task_run(blz__task *t);

/* Scheduling (rt/worker.c): hands a queue reference to the runtime. */
void blz__schedule(blz__task *t);

/* The task the calling thread is polling, or NULL. */
blz__task *blz__task_current(void);

/* Fibers (rt/fiber_task.c). */
int blz__fiber_task_await(blz_future *f);
/* The same, but it waits even once the task is cancelled (blz__await_shielded). */
int blz__fiber_task_await_shielded(blz_future *f);
/* `cancel` (or NULL) runs instead of fn(arg) if the task is cancelled before
 * its fiber ever starts, or no stack can be had for it, as for
 * blz__spawn_blocking_owned. */
int blz__fiber_task_spawn(blz_runtime *rt, blz_task_fn fn, void (*cancel)(void *), void *arg,
                          blz__task **out);
blz_poll blz__fiber_task_poll(blz__task *t, blz_context *cx);
/* A task dump holding idle fiber task t (its RUNNING bit taken by the dumper):
 * records its function and resumes its fiber on the calling thread only to
 * unwind its stack into d->frames. */
void blz__fiber_task_trace(blz__task *t, blz_task_dump *d);

/* Stackless (rt/spawn.c). */
blz_poll blz__stackless_task_poll(blz__task *t, blz_context *cx);

/* Blocking pool (rt/blocking_pool.c). `held`: the job takes over the slot
 * its spawner reserved, in the same step that queues it (so it is never
 * counted twice); when the submit fails the slot stays the spawner's. */
int blz__blocking_submit(blz_runtime *rt, blz__task *t, bool held);

#endif
