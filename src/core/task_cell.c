/*
 * Task cells: allocation from per-thread pools, reference counting, the state
 * transitions, the task waker and the join-handle operations.
 *
 * The state word and its reference rules are described in rt/task.h. Every
 * transition is a CAS loop (or one fetch-op) on that word; the only plain
 * fields written after spawn are `output`/`status` (by the running thread,
 * before COMPLETE is published with release) and `join_waker` (by whichever
 * side the JOIN_WAKER protocol names as its owner).
 *
 * Cell pool: freed cells of the common sizes go to a small per-thread cache
 * and are reused by the next spawn on that thread. Threads drain their cache
 * when they exit; blz_runtime_free drains the calling thread's. Another
 * thread's cache outlives the runtime, so it may meet an allocator installed
 * since (between runtimes, as common.h allows): its cells go back through the
 * free of the allocator that made them, and none is reused under the new one.
 */
#include "core/alloc.h"
#include "core/atomic.h"
#include "core/container.h"
#include "rt/runtime.h"
#include "rt/task.h"

#include <pthread.h>
#include <stdlib.h>

/* ---- cell pool ----------------------------------------------------------- */

#define CELL_CLASSES   3
#define CELL_CACHE_MAX 512
static const size_t cell_class_size[CELL_CLASSES] = {128, 256, 512};

typedef struct cell_cache {
    void *free[CELL_CLASSES]; /* singly linked through the first word */
    unsigned count[CELL_CLASSES];
    blz_free_fn free_fn; /* the free of the allocator the cached cells came from */
    bool registered;
} cell_cache;

static _Thread_local cell_cache tl_cells;
static pthread_key_t cell_key;
static pthread_once_t cell_key_once = PTHREAD_ONCE_INIT;

static void
cell_cache_drain(cell_cache *c)
{
    for (int k = 0; k < CELL_CLASSES; k++) {
        void *p = c->free[k];
        while (p) {
            void *next = *(void **) p;
            c->free_fn(p);
            p = next;
        }
        c->free[k] = NULL;
        c->count[k] = 0;
    }
}

static void
cell_key_destroy(void *unused)
{
    (void) unused;
    cell_cache_drain(&tl_cells);
}

static void
cell_key_create(void)
{
    (void) pthread_key_create(&cell_key, cell_key_destroy);
}

void
blz__task_cache_flush(void)
{
    cell_cache_drain(&tl_cells);
}

static void *
cell_alloc(size_t size, uint8_t *cls)
{
    for (int k = 0; k < CELL_CLASSES; k++) {
        if (size <= cell_class_size[k]) {
            *cls = (uint8_t) k;
            void *p = tl_cells.free[k];
            if (p && BLZ_UNLIKELY(tl_cells.free_fn != blz__free_fn())) {
                cell_cache_drain(&tl_cells); /* another allocator's cells */
                p = NULL;
            }
            if (p) {
                tl_cells.free[k] = *(void **) p;
                tl_cells.count[k]--;
                return p;
            }
            return blz__malloc(cell_class_size[k]);
        }
    }
    *cls = 0xff;
    return blz__malloc(size);
}

static void
cell_free(void *p, uint8_t cls)
{
    if (cls < CELL_CLASSES && tl_cells.count[cls] < CELL_CACHE_MAX) {
        if (!tl_cells.registered) {
            /* The destructor only runs for threads with a non-NULL key value. */
            (void) pthread_once(&cell_key_once, cell_key_create);
            (void) pthread_setspecific(cell_key, &tl_cells);
            tl_cells.registered = true;
        }
        blz_free_fn now = blz__free_fn();
        if (BLZ_UNLIKELY(tl_cells.free_fn != now)) {
            cell_cache_drain(&tl_cells); /* another allocator's cells (or none yet) */
            tl_cells.free_fn = now;
        }
        *(void **) p = tl_cells.free[cls];
        tl_cells.free[cls] = p;
        tl_cells.count[cls]++;
        return;
    }
    blz__free(p);
}

/* ---- lifecycle ------------------------------------------------------------ */

int
blz__task_alloc(blz_runtime *rt, blz__task_kind kind, size_t payload, blz__task **out)
{
    if (payload > SIZE_MAX - BLZ_TASK_HEADER_SIZE) {
        return -EINVAL;
    }
    if (payload < sizeof(blz__task_result)) {
        payload = sizeof(blz__task_result); /* room for the result once finished */
    }
    uint8_t cls;
    blz__task *t = cell_alloc(BLZ_TASK_HEADER_SIZE + payload, &cls);
    if (!t) {
        return -ENOMEM;
    }
    /* Three references: the owned list, the join handle, the first queue entry. */
    atomic_init(&t->state, BLZ_TASK_NOTIFIED | BLZ_TASK_JOIN_INTEREST | 3 * BLZ_TASK_REF_ONE);
    t->queue_next = NULL;
    t->owned_prev = NULL;
    t->owned_next = NULL;
    t->rt = rt;
    t->join_waker = BLZ_WAKER_NONE;
    t->shard = 0;
    t->kind = (uint8_t) kind;
    t->size_class = cls;
    *out = t;
    return 0;
}

/* Every path to completion has already released the payload (future dropped,
 * fiber stack returned), so a cell is plain memory by the time it is freed. */
static void
task_dealloc(blz__task *t)
{
    cell_free(t, t->size_class);
}

void
blz__task_ref_inc(blz__task *t)
{
    blz__fetch_add(&t->state, BLZ_TASK_REF_ONE, RELAXED);
}

void
blz__task_ref_dec(blz__task *t)
{
    /* acq_rel: the last reference sees every other holder's writes before freeing. */
    uint64_t prev = blz__fetch_sub(&t->state, BLZ_TASK_REF_ONE, ACQ_REL);
    if ((prev >> BLZ_TASK_REF_SHIFT) == 1) {
        task_dealloc(t);
    }
}

uint64_t
blz__task_transition_to_running(blz__task *t)
{
    uint64_t cur = blz__load(&t->state, ACQUIRE);
    for (;;) {
        BLZ_ASSERT(cur & BLZ_TASK_NOTIFIED);
        if (cur & (BLZ_TASK_RUNNING | BLZ_TASK_COMPLETE)) {
            return cur;
        }
        uint64_t next = (cur & ~BLZ_TASK_NOTIFIED) | BLZ_TASK_RUNNING;
        if (blz__cas_weak(&t->state, &cur, next, ACQ_REL, ACQUIRE)) {
            return next;
        }
    }
}

bool
blz__task_transition_to_idle(blz__task *t)
{
    uint64_t cur = blz__load(&t->state, ACQUIRE);
    for (;;) {
        uint64_t next = cur & ~BLZ_TASK_RUNNING;
        bool again = (cur & BLZ_TASK_NOTIFIED) != 0;
        if (!again) {
            next -= BLZ_TASK_REF_ONE; /* the running reference; the owned list still holds one */
        }
        /* Release pairs with the acquire in transition_to_running on another worker. */
        if (blz__cas_weak(&t->state, &cur, next, ACQ_REL, ACQUIRE)) {
            return again;
        }
    }
}

void
blz__task_complete(blz__task *t)
{
    /* Leave the owned list first: whoever sees COMPLETE also sees the task counted out. */
    blz__owned_remove(t);
    /* Running -> complete. Release publishes the result to whoever acquires COMPLETE. */
    uint64_t prev = blz__fetch_xor(&t->state, BLZ_TASK_RUNNING | BLZ_TASK_COMPLETE, ACQ_REL);
    BLZ_ASSERT(prev & BLZ_TASK_RUNNING);
    if ((prev & BLZ_TASK_JOIN_INTEREST) && (prev & BLZ_TASK_JOIN_WAKER)) {
        /* The joiner left its waker and may not touch it while JOIN_WAKER is set. */
        blz_waker_wake_by_ref(&t->join_waker);
        uint64_t cur = blz__load(&t->state, ACQUIRE);
        for (;;) {
            uint64_t next = cur & ~BLZ_TASK_JOIN_WAKER;
            if (blz__cas_weak(&t->state, &cur, next, ACQ_REL, ACQUIRE)) {
                break;
            }
        }
        if (!(cur & BLZ_TASK_JOIN_INTEREST)) {
            /* The handle was dropped after completion while we held the waker: ours to drop. */
            blz_waker_drop(&t->join_waker);
        }
    }
    /* Two references go: the owned list's and the running one. */
    uint64_t before = blz__fetch_sub(&t->state, 2 * BLZ_TASK_REF_ONE, ACQ_REL);
    if ((before >> BLZ_TASK_REF_SHIFT) == 2) {
        task_dealloc(t);
    }
}

/* ---- waking -------------------------------------------------------------- */

/* Sets NOTIFIED on an idle task and schedules it, or just records the wake. If
 * `consume` the caller's reference is used up in every case. */
static void
task_wake(blz__task *t, bool consume)
{
    uint64_t cur = blz__load(&t->state, ACQUIRE);
    for (;;) {
        uint64_t next;
        bool schedule = false;
        if (cur & (BLZ_TASK_COMPLETE | BLZ_TASK_NOTIFIED)) {
            if (consume) {
                blz__task_ref_dec(t);
            }
            return;
        }
        if (cur & BLZ_TASK_RUNNING) {
            /* The poller re-queues it when it goes idle. */
            next = cur | BLZ_TASK_NOTIFIED;
            if (consume) {
                next -= BLZ_TASK_REF_ONE;
            }
        } else {
            /* Idle: the queue needs a reference; a consumed waker hands over its own. */
            next = cur | BLZ_TASK_NOTIFIED;
            if (!consume) {
                next += BLZ_TASK_REF_ONE;
            }
            schedule = true;
        }
        if (blz__cas_weak(&t->state, &cur, next, ACQ_REL, ACQUIRE)) {
            if (schedule) {
                blz__schedule(t);
            }
            return;
        }
    }
}

static void
tw_wake(void *data)
{
    task_wake(data, true);
}

static void
tw_wake_by_ref(void *data)
{
    task_wake(data, false);
}

static void *
tw_clone(void *data)
{
    blz__task_ref_inc(data);
    return data;
}

static void
tw_drop(void *data)
{
    blz__task_ref_dec(data);
}

const blz_waker_vtable blz__task_waker_vtable = {tw_wake, tw_wake_by_ref, tw_clone, tw_drop};

void
blz__task_abort(blz__task *t)
{
    uint64_t cur = blz__load(&t->state, ACQUIRE);
    for (;;) {
        if (cur & (BLZ_TASK_COMPLETE | BLZ_TASK_CANCELLED)) {
            return;
        }
        uint64_t next = cur | BLZ_TASK_CANCELLED;
        bool schedule = false;
        if (!(cur & (BLZ_TASK_RUNNING | BLZ_TASK_NOTIFIED))) {
            /* Idle: queue it so a worker runs the cancellation. */
            next |= BLZ_TASK_NOTIFIED;
            next += BLZ_TASK_REF_ONE;
            schedule = true;
        } else if (cur & BLZ_TASK_RUNNING) {
            next |= BLZ_TASK_NOTIFIED; /* re-run after this poll to act on it */
        }
        if (blz__cas_weak(&t->state, &cur, next, ACQ_REL, ACQUIRE)) {
            if (schedule) {
                blz__schedule(t);
            }
            return;
        }
    }
}

/* ---- join handles ------------------------------------------------------- */

static blz__task *
join_task(const blz_join *j)
{
    return (blz__task *) (uintptr_t) j; // NOLINT(performance-no-int-to-ptr): a handle is its task
}

/* The handle goes away: clear JOIN_INTEREST (and take back the waker field if
 * the task has not completed), then drop the handle's reference. */
static void
join_release(blz__task *t)
{
    uint64_t cur = blz__load(&t->state, ACQUIRE);
    for (;;) {
        uint64_t next = cur & ~BLZ_TASK_JOIN_INTEREST;
        if (!(cur & BLZ_TASK_COMPLETE)) {
            next &= ~BLZ_TASK_JOIN_WAKER;
        }
        if (blz__cas_weak(&t->state, &cur, next, ACQ_REL, ACQUIRE)) {
            break;
        }
    }
    if (!(cur & BLZ_TASK_COMPLETE) || !(cur & BLZ_TASK_JOIN_WAKER)) {
        /* The field is ours (never handed over, taken back, or already returned). */
        blz_waker_drop(&t->join_waker);
    }
    blz__task_ref_dec(t);
}

static int
join_result(blz__task *t, void **result)
{
    const blz__task_result *r = blz__task_result_of(t);
    if (result) {
        *result = r->status == 0 ? r->output : NULL;
    }
    return r->status;
}

void
blz_join_abort(blz_join *j)
{
    if (j) {
        blz__task_abort(join_task(j));
    }
}

bool
blz_join_is_finished(const blz_join *j)
{
    if (!j) {
        return false;
    }
    return (blz__load(&join_task(j)->state, ACQUIRE) & BLZ_TASK_COMPLETE) != 0;
}

void
blz_join_detach(blz_join *j)
{
    if (j) {
        join_release(join_task(j));
    }
}

static blz_poll
join_poll(blz_future *base, blz_context *cx)
{
    blz_join_future *f = (blz_join_future *) base;
    blz__task *t = join_task(f->join_);
    if (!t) {
        base->result = -EINVAL;
        return BLZ_READY;
    }
    uint64_t cur = blz__load(&t->state, ACQUIRE);
    if (!(cur & BLZ_TASK_COMPLETE)) {
        if (cur & BLZ_TASK_JOIN_WAKER) {
            if (blz_waker_will_wake(&t->join_waker, cx->waker)) {
                return BLZ_PENDING;
            }
            /* Take the field back to change it; fails only if the task completed. */
            for (;;) {
                if (cur & BLZ_TASK_COMPLETE) {
                    goto done;
                }
                if (blz__cas_weak(&t->state, &cur, cur & ~BLZ_TASK_JOIN_WAKER, ACQ_REL, ACQUIRE)) {
                    break;
                }
            }
        }
        blz_waker_set(&t->join_waker, cx->waker);
        cur = blz__load(&t->state, ACQUIRE);
        for (;;) {
            if (cur & BLZ_TASK_COMPLETE) {
                goto done;
            }
            /* Release hands the waker field to the completing side. */
            if (blz__cas_weak(&t->state, &cur, cur | BLZ_TASK_JOIN_WAKER, ACQ_REL, ACQUIRE)) {
                return BLZ_PENDING;
            }
        }
    }
done:
    base->result = join_result(t, &f->output);
    f->join_ = NULL;
    join_release(t);
    return BLZ_READY;
}

static void
join_drop(blz_future *base)
{
    blz_join_future *f = (blz_join_future *) base;
    if (f->join_) {
        join_release(join_task(f->join_));
        f->join_ = NULL;
    }
}

static const blz_future_vtable join_vtable = {join_poll, join_drop};

void
blz_join_wait_fut(blz_join *j, blz_join_future *f)
{
    if (!f) {
        return;
    }
    blz_future_init(&f->base, &join_vtable);
    f->join_ = j;
    f->output = NULL;
}

int
blz_join_wait(blz_join *j, void **result)
{
    if (!j) {
        return -EINVAL;
    }
    blz_join_future f;
    blz_join_wait_fut(j, &f);
    int rc = blz_await(&f.base);
    if (rc == -EDEADLK && f.join_) {
        return rc; /* not consumed: the caller may still use a join future */
    }
    if (result) {
        *result = f.output;
    }
    return rc;
}
