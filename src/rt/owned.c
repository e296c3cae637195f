/*
 * Owned lists: every live task of a runtime is linked in one of a few sharded
 * lists, so blz_runtime_free can abort whatever is left. Each shard's mutex
 * protects its head and the owned_prev/owned_next links of its tasks. A task
 * is inserted at spawn and removed at completion (each exactly once).
 */
#include "core/atomic.h"
#include "rt/futex.h"
#include "rt/runtime.h"

int
blz__owned_insert(blz_runtime *rt, blz__task *t)
{
    uint32_t s = blz__fetch_add(&rt->owned_next_shard, 1, RELAXED) % BLZ_OWNED_SHARDS;
    blz__owned_shard *sh = &rt->owned[s];
    pthread_mutex_lock(&sh->lock);
    /* Checked under the lock: abort_all takes every shard lock after setting closing. */
    if (blz__load(&rt->closing, ACQUIRE)) {
        pthread_mutex_unlock(&sh->lock);
        return -ESHUTDOWN;
    }
    t->shard = (uint16_t) s;
    t->owned_prev = NULL;
    t->owned_next = sh->head;
    if (sh->head) {
        sh->head->owned_prev = t;
    }
    sh->head = t;
    blz__fetch_add(&rt->tasks_alive, 1, RELAXED);
    pthread_mutex_unlock(&sh->lock);
    blz__fetch_add(&rt->tasks_spawned, 1, RELAXED);
    return 0;
}

void
blz__owned_remove(blz__task *t)
{
    blz_runtime *rt = t->rt;
    blz__owned_shard *sh = &rt->owned[t->shard];
    pthread_mutex_lock(&sh->lock);
    if (t->owned_prev) {
        t->owned_prev->owned_next = t->owned_next;
    } else {
        sh->head = t->owned_next;
    }
    if (t->owned_next) {
        t->owned_next->owned_prev = t->owned_prev;
    }
    t->owned_prev = t->owned_next = NULL;
    pthread_mutex_unlock(&sh->lock);
    /* acq_rel: blz_runtime_free, seeing zero, sees every task's completion. */
    if (blz__fetch_sub(&rt->tasks_alive, 1, ACQ_REL) == 1 && blz__load(&rt->closing, ACQUIRE)) {
        blz__fetch_add(&rt->tasks_alive_seq, 1, RELEASE);
        blz__futex_wake(&rt->tasks_alive_seq, 1 << 30);
    }
}

void
blz__owned_abort_all(blz_runtime *rt)
{
    for (unsigned s = 0; s < BLZ_OWNED_SHARDS; s++) {
        blz__owned_shard *sh = &rt->owned[s];
        pthread_mutex_lock(&sh->lock);
        for (blz__task *t = sh->head; t; t = t->owned_next) {
            /* Abort only schedules; completion (which unlinks) happens on a worker. */
            blz__task_abort(t);
        }
        pthread_mutex_unlock(&sh->lock);
    }
}
