/*
 * Internal: the task hooks of the runtime config (on_task_spawn,
 * on_task_terminate, on_before_task_poll, on_after_task_poll). Spawn and
 * terminate test the hook pointer inline, so a runtime without hooks pays
 * one predictable branch per spawn and per finish; the poll hooks live in
 * the worker loop's observed-run path (worker.c), behind the one flag per
 * run it tested already for the poll-time histogram.
 */
#ifndef BLZ_RT_HOOKS_H
#define BLZ_RT_HOOKS_H

#include "blitzio/rt.h"
#include "rt/runtime.h"
#include "rt/task.h"

/* The kind of t as the public API names it (hooks, dumps). */
blz_dump_kind blz__task_public_kind(const blz__task *t);

/* Fills m for t: identity, kind and entry function (t not finished). */
void blz__task_meta_of(blz__task *t, blz_task_meta *m);

void blz__hook_call_spawn(blz__task *t);
void blz__hook_call_terminate(blz__task *t);

/* on_task_spawn for t, if the runtime has it. */
static inline void
blz__hook_spawn(blz__task *t)
{
    if (BLZ_UNLIKELY(t->rt->cfg.on_task_spawn)) {
        blz__hook_call_spawn(t);
    }
}

/* on_task_terminate for t, if the runtime has it; before its result is
 * published (the entry function is gone by then: meta without it). */
static inline void
blz__hook_terminate(blz__task *t)
{
    if (BLZ_UNLIKELY(t->rt->cfg.on_task_terminate)) {
        blz__hook_call_terminate(t);
    }
}

/* The entry functions the meta names, from the modules that own the payloads. */
blz_task_fn blz__fiber_task_fn(blz__task *t);
blz_task_fn blz__blocking_task_fn(blz__task *t);

#endif
