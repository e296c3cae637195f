/*
 * bench/rt.c — the runtime rows: spawn+join, yield, spawn_blocking, and memory per idle
 * stackless task, on a multi-thread runtime with the default worker count, as
 * Tokio's side does (bench/tokio/src/rows_rt.rs).
 *
 * spawn_join is the like-for-like row: a stackless parent (as Tokio's async
 * task is) spawns a stackless child and awaits its join future. The
 * *_from_fiber and fiber rows measure the same from straight-line fiber code.
 *
 *     bench_rt [--json] [--runs N] [--warmups N] [row ...]
 */
#include "bench.h"

#define ASYNC_OPS 10000

static blz_runtime *rt;

typedef struct ready_future {
    blz_future base;
} ready_future;

static blz_poll
ready_poll(blz_future *f, blz_context *cx)
{
    (void) cx;
    f->result = 1;
    return BLZ_READY;
}

static const blz_future_vtable ready_vt = {ready_poll, NULL};

static void *
spawn_join_body(void *arg)
{
    bench_run *r = arg;
    r->ops = ASYNC_OPS;
    bench_start(r);
    for (int i = 0; i < ASYNC_OPS; i++) {
        ready_future f = {{&ready_vt, 0, 0}};
        blz_join *j;
        if (blz_spawn_future(&f.base, sizeof f, &j) < 0 || blz_join_wait(j, NULL) < 0) {
            abort();
        }
    }
    bench_stop(r);
    return NULL;
}

static void
run_in_rt(bench_run *r, blz_task_fn body)
{
    if (blz_runtime_block_on(rt, body, r, NULL) < 0) {
        abort();
    }
}

static void
row_spawn_join_from_fiber(bench_run *r)
{
    run_in_rt(r, spawn_join_body);
}

/* The stackless parent: spawn, await the join future, ASYNC_OPS times. */
typedef struct parent_future {
    blz_future base;
    blz_join_future join;
    bench_run *r;
    int i;
} parent_future;

static blz_poll
parent_poll(blz_future *self, blz_context *cx)
{
    parent_future *p = (parent_future *) self;
    BLZ_ASYNC_BEGIN(self);
    bench_start(p->r);
    for (p->i = 0; p->i < ASYNC_OPS; p->i++) {
        {
            ready_future f = {{&ready_vt, 0, 0}};
            blz_join *j;
            if (blz_spawn_future(&f.base, sizeof f, &j) < 0) {
                abort();
            }
            blz_join_wait_fut(j, &p->join);
        }
        BLZ_AWAIT(self, cx, &p->join.base);
    }
    bench_stop(p->r);
    BLZ_ASYNC_RETURN(self, 0);
    BLZ_ASYNC_END(self);
}

static const blz_future_vtable parent_vt = {parent_poll, NULL};

static void *
spawn_join_stackless_body(void *arg)
{
    bench_run *r = arg;
    r->ops = ASYNC_OPS;
    parent_future p = {.r = r};
    blz_future_init(&p.base, &parent_vt);
    blz_join *j;
    if (blz_spawn_future(&p.base, sizeof p, &j) < 0 || blz_join_wait(j, NULL) < 0) {
        abort();
    }
    return NULL;
}

static void
row_spawn_join(bench_run *r)
{
    run_in_rt(r, spawn_join_stackless_body);
}

static void *
noop_fiber(void *arg)
{
    return arg;
}

static void *
spawn_join_fiber_body(void *arg)
{
    bench_run *r = arg;
    r->ops = ASYNC_OPS;
    bench_start(r);
    for (int i = 0; i < ASYNC_OPS; i++) {
        blz_join *j;
        if (blz_spawn(noop_fiber, NULL, &j) < 0 || blz_join_wait(j, NULL) < 0) {
            abort();
        }
    }
    bench_stop(r);
    return NULL;
}

static void
row_spawn_join_fiber(bench_run *r)
{
    run_in_rt(r, spawn_join_fiber_body);
}

static void *
yield_body(void *arg)
{
    bench_run *r = arg;
    r->ops = ASYNC_OPS;
    bench_start(r);
    for (int i = 0; i < ASYNC_OPS; i++) {
        blz_yield();
    }
    bench_stop(r);
    return NULL;
}

static void
row_yield(bench_run *r)
{
    run_in_rt(r, yield_body);
}

/* spawn_blocking: a closure to the blocking pool and back, awaited from a
 * task, one at a time (Tokio's spawn_blocking(..).await). Each op is a
 * hand-off to a pool thread and a wake back: two thread switches. */
static void *
blocking_job(void *arg)
{
    return arg;
}

static void *
spawn_blocking_body(void *arg)
{
    bench_run *r = arg;
    r->ops = ASYNC_OPS;
    bench_start(r);
    for (int i = 0; i < ASYNC_OPS; i++) {
        blz_join *j;
        void *res = NULL;
        if (blz_spawn_blocking(blocking_job, (void *) (intptr_t) (i + 1), &j) < 0 ||
            blz_join_wait(j, &res) < 0 || res != (void *) (intptr_t) (i + 1)) {
            abort();
        }
    }
    bench_stop(r);
    return NULL;
}

static void
row_spawn_blocking(bench_run *r)
{
    run_in_rt(r, spawn_blocking_body);
}

/* An idle task: pending forever, holding a waiter node with its waker, as a
 * task waiting on a Notify or a channel does. */
typedef struct idle_future {
    blz_future base;
    blz_waiter waiter;
} idle_future;

static blz_poll
idle_poll(blz_future *f, blz_context *cx)
{
    idle_future *i = (idle_future *) f;
    blz_waker_set(&i->waiter.waker_, cx->waker);
    return BLZ_PENDING;
}

static void
idle_drop(blz_future *f)
{
    blz_waker_drop(&((idle_future *) f)->waiter.waker_);
}

static const blz_future_vtable idle_vt = {idle_poll, idle_drop};

static void *
idle_memory_body(void *arg)
{
    bench_run *r = arg;
    static blz_join *joins[ASYNC_OPS];
    r->ops = ASYNC_OPS;
    bench_start(r);
    for (int i = 0; i < ASYNC_OPS; i++) {
        idle_future f = {{&idle_vt, 0, 0}, {0}};
        if (blz_spawn_future(&f.base, sizeof f, &joins[i]) < 0) {
            abort();
        }
    }
    /* Let every task run once so each is really parked with its waker stored. */
    for (int i = 0; i < 8; i++) {
        blz_yield();
    }
    bench_stop(r);
    r->extra = (double) (r->bytes1 - r->bytes0) / ASYNC_OPS;
    for (int i = 0; i < ASYNC_OPS; i++) {
        blz_join_abort(joins[i]);
    }
    for (int i = 0; i < ASYNC_OPS; i++) {
        (void) blz_join_wait(joins[i], NULL);
    }
    return NULL;
}

static void
row_idle_task_memory(bench_run *r)
{
    run_in_rt(r, idle_memory_body);
}

int
main(int argc, char **argv)
{
    bench_init(argc, argv);
    if (blz_runtime_new(NULL, &rt) < 0) {
        fprintf(stderr, "bench_rt: cannot create a runtime\n");
        return 1;
    }
    bench_row("spawn_join", row_spawn_join, NULL);
    bench_row("spawn_join_from_fiber", row_spawn_join_from_fiber, NULL);
    bench_row("spawn_join_fiber", row_spawn_join_fiber, NULL);
    bench_row("yield", row_yield, NULL);
    bench_row("spawn_blocking", row_spawn_blocking, NULL);
    bench_row("idle_task_memory", row_idle_task_memory, NULL);
    blz_runtime_free(rt);
    return 0;
}
