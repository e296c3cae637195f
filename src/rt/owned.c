/*
 * Owned lists: every live task of a runtime is linked in one of a few sharded
 * lists, so blz_runtime_free can abort whatever is left. Each shard's spinlock
 * protects its head, its counters and the owned_prev/owned_next links of its
 * tasks. A task is inserted at spawn and removed at completion, exactly once.
 * Spawning threads pick shards round-robin from a thread-local counter, so
 * neighbouring spawns rarely share a lock.
 */
#include "core/atomic.h"
#include "rt/futex.h"
#include "rt/runtime.h"

static _Thread_local uint32_t tl_next_shard;

int
blz__owned_insert(blz_runtime *rt, blz__task *t)
{
    uint32_t s = tl_next_shard++ % BLZ_OWNED_SHARDS;
    blz__owned_shard *sh = &rt->owned[s];
    blz__spin_lock(&sh->lock);
    /* Checked under the lock: abort_all takes every shard lock after setting closing. */
    if (blz__load(&rt->closing, ACQUIRE)) {
        blz__spin_unlock(&sh->lock);
        return -ESHUTDOWN;
    }
    t->shard = (uint16_t) s;
    t->owned_prev = NULL;
    t->owned_next = sh->head;
    if (sh->head) {
        sh->head->owned_prev = t;
    }
    sh->head = t;
    sh->alive++;
    sh->spawned++;
    blz__spin_unlock(&sh->lock);
    return 0;
}

void
blz__owned_remove(blz__task *t)
{
    blz_runtime *rt = t->rt;
    blz__owned_shard *sh = &rt->owned[t->shard];
    blz__spin_lock(&sh->lock);
    if (t->owned_prev) {
        t->owned_prev->owned_next = t->owned_next;
    } else {
        sh->head = t->owned_next;
    }
    if (t->owned_next) {
        t->owned_next->owned_prev = t->owned_prev;
    }
    t->owned_prev = t->owned_next = NULL;
    if (--sh->alive == 0 && blz__load(&rt->closing, ACQUIRE)) {
        /* blz_runtime_free waits for every shard to empty: let it re-count.
         * Still under the lock, which free takes to count: once it sees the
         * shard empty it may release rt, so the unlock must be our last touch
         * (the task may finish on a thread free does not join: a spawner
         * whose blocking job could not start a pool thread). */
        blz__fetch_add(&rt->tasks_alive_seq, 1, RELEASE);
        blz__futex_wake(&rt->tasks_alive_seq, 1 << 30);
        /* A current-thread runtime's free drives the worker loop and may sleep in
         * the driver: a task finishing on a pool thread must wake it there too. */
        blz__io_driver_wake(rt->io);
    }
    blz__spin_unlock(&sh->lock);
}

void
blz__owned_abort_all(blz_runtime *rt)
{
    for (unsigned s = 0; s < BLZ_OWNED_SHARDS; s++) {
        blz__owned_shard *sh = &rt->owned[s];
        blz__spin_lock(&sh->lock);
        for (blz__task *t = sh->head; t; t = t->owned_next) {
            /* Abort only schedules; completion (which unlinks) happens on a worker. */
            blz__task_abort(t);
        }
        blz__spin_unlock(&sh->lock);
    }
}

static uint64_t
owned_sum(blz_runtime *rt, bool spawned)
{
    uint64_t n = 0;
    for (unsigned s = 0; s < BLZ_OWNED_SHARDS; s++) {
        blz__owned_shard *sh = &rt->owned[s];
        blz__spin_lock(&sh->lock);
        n += spawned ? sh->spawned : sh->alive;
        blz__spin_unlock(&sh->lock);
    }
    return n;
}

uint64_t
blz__owned_alive(blz_runtime *rt)
{
    return owned_sum(rt, false);
}

uint64_t
blz__owned_spawned(blz_runtime *rt)
{
    return owned_sum(rt, true);
}
