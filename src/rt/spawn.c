/*
 * Spawning: the public spawn functions. Each allocates a task cell, links it
 * in the runtime's owned list and hands its first queue reference to the
 * scheduler (or the blocking pool). The join handle is the cell itself,
 * carrying the handle's reference; a NULL `out` releases it at once.
 */
#include "blitzio/task.h"
#include "core/atomic.h"
#include "rt/current.h"
#include "rt/hooks.h"
#include "rt/runtime.h"
#include "rt/task.h"

#include <string.h>

/* Undo a spawn that failed after allocation: the cell never ran. */
static void
spawn_abandon(blz__task *t)
{
    /* Drop all three initial references; the last frees the cell. */
    blz__fetch_sub(&t->state, 2 * BLZ_TASK_REF_ONE, RELAXED);
    blz__task_ref_dec(t);
}

/* `held` (blocking jobs): the job takes the place of a slot its spawner
 * reserved, when it is queued (see blz__blocking_submit). */
static int
spawn_finish(blz_runtime *rt, blz__task *t, bool held, blz_join **out)
{
    int rc = blz__owned_insert(rt, t);
    if (rc < 0) {
        spawn_abandon(t);
        return rc;
    }
    blz__hook_spawn(t);
    if (t->kind == BLZ_TASK_BLOCKING) {
        rc = blz__blocking_submit(rt, t, held);
        if (rc < 0) {
            /* Not run: complete it as cancelled so the owned list and refs settle. */
            blz__task_transition_to_running(t);
            blz__task_set_result(t, NULL, rc);
            blz__hook_terminate(t);
            blz__task_complete(t);
            blz_join_detach((blz_join *) t);
            return rc;
        }
    } else {
        blz__schedule(t);
    }
    if (out) {
        *out = (blz_join *) t;
    } else {
        blz_join_detach((blz_join *) t);
    }
    return 0;
}

int
blz_runtime_spawn_owned(blz_runtime *rt, blz_task_fn fn, void (*release)(void *), void *arg,
                        blz_join **out)
{
    if (!rt || !fn) {
        return -EINVAL;
    }
    blz__task *t;
    int rc = blz__fiber_task_spawn(rt, fn, release, arg, &t);
    if (rc < 0) {
        return rc;
    }
    return spawn_finish(rt, t, false, out);
}

int
blz_runtime_spawn(blz_runtime *rt, blz_task_fn fn, void *arg, blz_join **out)
{
    return blz_runtime_spawn_owned(rt, fn, NULL, arg, out);
}

int
blz_runtime_spawn_future(blz_runtime *rt, const blz_future *f, size_t size, blz_join **out)
{
    if (!rt || !f || !f->vtable || size < sizeof(blz_future)) {
        return -EINVAL;
    }
    blz__task *t;
    int rc = blz__task_alloc(rt, BLZ_TASK_STACKLESS, size, &t);
    if (rc < 0) {
        return rc;
    }
    memcpy(blz__task_payload(t), f, size);
    return spawn_finish(rt, t, false, out);
}

typedef struct blocking_payload {
    blz_task_fn fn;
    void (*cancel)(void *arg); /* runs instead of fn when cancelled before start, or NULL */
    void *arg;
} blocking_payload;

blz_task_fn
blz__blocking_task_fn(blz__task *t)
{
    return ((blocking_payload *) blz__task_payload(t))->fn;
}

/* `held`: the caller reserved a slot of the pool's limit
 * (blz__blocking_slot_take). A queued job takes the slot over; a spawn that
 * fails anywhere before that releases it here. */
static int
spawn_blocking(blz_runtime *rt, blz_task_fn fn, void (*cancel)(void *), void *arg, bool held,
               blz_join **out)
{
    blz__task *t;
    int rc = blz__task_alloc(rt, BLZ_TASK_BLOCKING, sizeof(blocking_payload), &t);
    if (rc == 0) {
        blocking_payload *p = blz__task_payload(t);
        p->fn = fn;
        p->cancel = cancel;
        p->arg = arg;
        rc = spawn_finish(rt, t, held, out);
    }
    if (held && rc < 0) {
        blz__blocking_slot_release(&rt->blocking);
    }
    return rc;
}

/* The future tier: waits for a slot (rt/blocking_pool.c), then spawns with
 * it. pt_ is 1 once it completed, so a second poll reports the same result
 * instead of spawning again. */
static blz_poll
spawn_blocking_poll(blz_future *base, blz_context *cx)
{
    blz_spawn_blocking_future *f = (blz_spawn_blocking_future *) base;
    if (base->pt_ == 1) {
        return BLZ_READY;
    }
    int rc = -EINVAL;
    if (f->fn_) {
        rc = blz__blocking_slot_take(&f->rt_->blocking, &f->waiter_, cx->waker);
        if (rc == -EAGAIN) {
            return BLZ_PENDING;
        }
        if (rc == 0) {
            rc = spawn_blocking(f->rt_, f->fn_, NULL, f->arg_, true, &f->join);
        }
    }
    base->result = rc;
    base->pt_ = 1;
    return BLZ_READY;
}

static void
spawn_blocking_drop(blz_future *base)
{
    blz_spawn_blocking_future *f = (blz_spawn_blocking_future *) base;
    if (f->rt_ && base->pt_ == 0) {
        blz__blocking_slot_cancel(&f->rt_->blocking, &f->waiter_);
    }
}

static const blz_future_vtable spawn_blocking_vtable = {spawn_blocking_poll, spawn_blocking_drop};

/* Fills `f`; a NULL `rt` completes with `no_rt` (the caller says which). */
static void
spawn_blocking_fill(blz_runtime *rt, int no_rt, blz_task_fn fn, void *arg,
                    blz_spawn_blocking_future *f)
{
    if (!f) {
        return;
    }
    memset(f, 0, sizeof *f);
    blz_future_init(&f->base, &spawn_blocking_vtable);
    f->rt_ = rt;
    f->fn_ = fn;
    f->arg_ = arg;
    if (!rt) {
        f->base.result = no_rt;
        f->base.pt_ = 1; /* completed: the poll reports it, the drop has nothing to give back */
    }
}

void
blz_runtime_spawn_blocking_fut(blz_runtime *rt, blz_task_fn fn, void *arg,
                               blz_spawn_blocking_future *f)
{
    spawn_blocking_fill(rt, -EINVAL, fn, arg, f); /* a NULL runtime is bad input */
}

void
blz_spawn_blocking_fut(blz_task_fn fn, void *arg, blz_spawn_blocking_future *f)
{
    spawn_blocking_fill(blz__rt_current(), -ESRCH, fn, arg, f); /* not a runtime thread */
}

int
blz_runtime_try_spawn_blocking(blz_runtime *rt, blz_task_fn fn, void *arg, blz_join **out)
{
    if (!rt || !fn) {
        return -EINVAL;
    }
    bool held = rt->blocking.limit != 0; /* fixed at creation: read without the lock */
    if (held) {
        int rc = blz__blocking_slot_take(&rt->blocking, NULL, NULL);
        if (rc < 0) {
            return rc;
        }
    }
    return spawn_blocking(rt, fn, NULL, arg, held, out);
}

static int
spawn_blocking_or_wait(blz_runtime *rt, blz_task_fn fn, void *arg, blz_join **out)
{
    int rc = blz_runtime_try_spawn_blocking(rt, fn, arg, out);
    if (rc != -EAGAIN) {
        return rc;
    }
    if (blz__rt_current() == rt && blz__worker_current() == NULL) {
        /* A job of this pool waiting for room in it: were every thread's job
         * to do so, none would ever start another. */
        return -EDEADLK;
    }
    blz_spawn_blocking_future f;
    blz_runtime_spawn_blocking_fut(rt, fn, arg, &f);
    rc = blz_await(&f.base);
    if (rc == -EDEADLK) {
        blz_future_drop(&f.base);
    } else if (rc == 0) {
        if (out) {
            *out = f.join;
        } else {
            blz_join_detach(f.join);
        }
    }
    return rc;
}

int
blz_runtime_spawn_blocking(blz_runtime *rt, blz_task_fn fn, void *arg, blz_join **out)
{
    if (!rt || rt->blocking.limit == 0) {
        return blz_runtime_try_spawn_blocking(rt, fn, arg, out); /* it never waits */
    }
    /* A wait for room lasts until a job starts or blz_runtime_free ends it,
     * and the waiter polls the pool once more after that: count the call in,
     * so that free does not release rt under it (the decrement is its last
     * touch). Relaxed: the pool lock that the try takes next orders it before
     * the slots are closed, after which free looks at the count. */
    blz__fetch_add(&rt->blocking.spawn_calls, 1, RELAXED);
    int rc = spawn_blocking_or_wait(rt, fn, arg, out);
    /* Release pairs with the acquire load in blz_runtime_free. */
    blz__fetch_sub(&rt->blocking.spawn_calls, 1, RELEASE);
    return rc;
}

int
blz__spawn_blocking_owned(blz_runtime *rt, blz_task_fn fn, void (*cancel)(void *), void *arg,
                          blz_join **out)
{
    if (!rt || !fn) {
        return -EINVAL;
    }
    return spawn_blocking(rt, fn, cancel, arg, false, out);
}

void blz__blocking_run(blz__task *t);

/* Runs a blocking job on the calling pool thread and completes its task. */
void
blz__blocking_run(blz__task *t)
{
    uint64_t state = blz__task_transition_to_running(t);
    if (state & BLZ_TASK_COMPLETE) {
        blz__task_ref_dec(t);
        return;
    }
    blocking_payload *p = blz__task_payload(t);
    if (state & BLZ_TASK_CANCELLED) {
        /* Aborted before it started (blz_join_abort, or blz_runtime_free
         * aborting everything): fn never runs, but a job whose argument owns
         * resources gets to release them. */
        if (p->cancel) {
            p->cancel(p->arg);
        }
        blz__task_set_result(t, NULL, -ECANCELED);
    } else {
        void *value = p->fn(p->arg);
        blz__task_set_result(t, value, 0);
    }
    blz__hook_terminate(t);
    blz__task_complete(t);
}

int
blz_spawn_owned(blz_task_fn fn, void (*release)(void *), void *arg, blz_join **out)
{
    blz_runtime *rt = blz__rt_current();
    return rt ? blz_runtime_spawn_owned(rt, fn, release, arg, out) : -ESRCH;
}

int
blz_spawn(blz_task_fn fn, void *arg, blz_join **out)
{
    blz_runtime *rt = blz__rt_current();
    return rt ? blz_runtime_spawn(rt, fn, arg, out) : -ESRCH;
}

int
blz_spawn_future(const blz_future *f, size_t size, blz_join **out)
{
    blz_runtime *rt = blz__rt_current();
    return rt ? blz_runtime_spawn_future(rt, f, size, out) : -ESRCH;
}

int
blz_spawn_blocking(blz_task_fn fn, void *arg, blz_join **out)
{
    blz_runtime *rt = blz__rt_current();
    return rt ? blz_runtime_spawn_blocking(rt, fn, arg, out) : -ESRCH;
}

int
blz_try_spawn_blocking(blz_task_fn fn, void *arg, blz_join **out)
{
    blz_runtime *rt = blz__rt_current();
    return rt ? blz_runtime_try_spawn_blocking(rt, fn, arg, out) : -ESRCH;
}
