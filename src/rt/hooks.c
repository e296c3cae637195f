/*
 * The task hooks (rt/hooks.h).
 */
#include "rt/hooks.h"

#include "rt/runtime.h"

#include <string.h>

blz_dump_kind
blz__task_public_kind(const blz__task *t)
{
    switch (t->kind) {
    case BLZ_TASK_FIBER:
        return BLZ_DUMP_FIBER;
    case BLZ_TASK_BLOCKING:
        return BLZ_DUMP_BLOCKING;
    default:
        return BLZ_DUMP_FUTURE;
    }
}

void
blz__task_meta_of(blz__task *t, blz_task_meta *m)
{
    memset(m, 0, sizeof *m);
    m->task = t;
    m->kind = blz__task_public_kind(t);
    if (t->kind == BLZ_TASK_FIBER) {
        m->fn = blz__fiber_task_fn(t);
    } else if (t->kind == BLZ_TASK_BLOCKING) {
        m->fn = blz__blocking_task_fn(t);
    } else {
        const blz_future *f = blz__task_payload(t);
        m->future_fn = f->vtable ? f->vtable->poll : NULL;
    }
}

void
blz__hook_call_spawn(blz__task *t)
{
    const blz_runtime_config *cfg = &t->rt->cfg;
    blz_task_meta m;
    blz__task_meta_of(t, &m);
    cfg->on_task_spawn(&m, cfg->task_hook_arg);
}

void
blz__hook_call_terminate(blz__task *t)
{
    const blz_runtime_config *cfg = &t->rt->cfg;
    blz_task_meta m = {t, blz__task_public_kind(t), NULL, NULL};
    cfg->on_task_terminate(&m, cfg->task_hook_arg);
}
