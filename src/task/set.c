/*
 * Task sets: join tasks in the order they finish.
 *
 * Each task of a set has a member: its join future, registered once with a
 * waker whose data is the member. The task's completion wakes it (the join
 * handle's JOIN_WAKER protocol, rt/task.h), and the wake queues the member on
 * the set's ready list and wakes the set's joiner. Joining pops that list and
 * polls the member's join future, which is then ready at once: O(1) a task.
 *
 * Invariants (under `lock`): `all` links every member not yet joined, `len`
 * counts them; `ready` (FIFO) holds those whose task finished, in the order
 * their wakes came; `joiner` is the waker of a pending join-next future.
 * The owner alone spawns, joins and frees, so a member's join future is only
 * polled by the owner (or, once the set is orphaned, by the wake itself).
 *
 * Free without waiting (`orphaned`): the members of unfinished tasks outlive
 * the set's owner; each finishes itself at its wake, and the last one frees
 * the set. A member is never freed while its waker may still be called: only
 * after its wake (the task completed) or once its join future completed.
 */
#include "blitzio/task.h"
#include "core/alloc.h"
#include "core/future.h"
#include "core/spinlock.h"
#include "rt/current.h"

#include <errno.h>

typedef struct member {
    struct member *next_ready;          /* in the set's ready list */
    struct member *all_prev, *all_next; /* in the set's `all` list */
    blz_task_set *set;
    blz_join_future jf; /* registered with this member's waker until ready */
} member;

struct blz_task_set {
    blz__spinlock lock;
    member *all;                     /* members not yet joined */
    member *ready_head, *ready_tail; /* members whose task finished, FIFO */
    size_t len;                      /* members in `all` */
    blz_waker joiner;                /* the pending join-next future's waker */
    bool orphaned;                   /* freed by its owner: members clean up */
};

static void
all_unlink(blz_task_set *s, member *m)
{
    if (m->all_prev) {
        m->all_prev->all_next = m->all_next;
    } else {
        s->all = m->all_next;
    }
    if (m->all_next) {
        m->all_next->all_prev = m->all_prev;
    }
    m->all_prev = m->all_next = NULL;
    s->len--;
}

/* The member's task has finished: takes its status and value, frees it. */
static int
member_finish(member *m, void **result)
{
    if (m->jf.join_) {
        blz_context cx = {blz_waker_noop()};
        blz_poll p = blz_future_poll(&m->jf.base, &cx);
        (void) p; /* ready: the task completed before its wake */
    }
    int status = m->jf.base.result;
    if (result) {
        *result = status == 0 ? m->jf.output : NULL;
    }
    blz__free(m);
    return status;
}

static void
set_release(blz_task_set *s)
{
    blz_waker_drop(&s->joiner);
    blz__free(s);
}

/* The member's task completed (its join waker). Runs on the completing thread. */
static void
member_wake(void *data)
{
    member *m = data;
    blz_task_set *s = m->set;
    blz__spin_lock(&s->lock);
    if (s->orphaned) {
        all_unlink(s, m);
        bool last = s->len == 0;
        blz__spin_unlock(&s->lock);
        (void) member_finish(m, NULL);
        if (last) {
            set_release(s);
        }
        return;
    }
    m->next_ready = NULL;
    if (s->ready_tail) {
        s->ready_tail->next_ready = m;
    } else {
        s->ready_head = m;
    }
    s->ready_tail = m;
    blz_waker joiner = s->joiner;
    s->joiner = BLZ_WAKER_NONE;
    blz__spin_unlock(&s->lock);
    blz_waker_wake(&joiner);
}

static void *
member_clone(void *data)
{
    return data; /* a member lives until it is joined: no count needed */
}

static void
member_drop(void *data)
{
    (void) data;
}

static const blz_waker_vtable member_waker_vt = {member_wake, member_wake, member_clone,
                                                 member_drop};

int
blz_task_set_new(blz_task_set **out)
{
    if (!out) {
        return -EINVAL;
    }
    blz_task_set *s = blz__malloc(sizeof *s);
    if (!s) {
        *out = NULL;
        return -ENOMEM;
    }
    s->lock = (blz__spinlock) BLZ_SPINLOCK_INIT;
    s->all = NULL;
    s->ready_head = s->ready_tail = NULL;
    s->len = 0;
    s->joiner = BLZ_WAKER_NONE;
    s->orphaned = false;
    *out = s;
    return 0;
}

/* Makes `m` the member for handle j and registers its waker. */
static void
attach(blz_task_set *s, member *m, blz_join *j)
{
    m->set = s;
    m->next_ready = NULL;
    blz_join_wait_fut(j, &m->jf);
    blz__spin_lock(&s->lock);
    m->all_prev = NULL;
    m->all_next = s->all;
    if (s->all) {
        s->all->all_prev = m;
    }
    s->all = m;
    s->len++;
    blz__spin_unlock(&s->lock);
    blz_waker w = {&member_waker_vt, m};
    blz_context cx = {&w};
    if (blz_future_poll(&m->jf.base, &cx) == BLZ_READY) {
        member_wake(m); /* finished already: ready now, as its wake would do */
    }
}

int
blz_task_set_add(blz_task_set *s, blz_join *j)
{
    if (!s || !j) {
        return -EINVAL;
    }
    member *m = blz__malloc(sizeof *m);
    if (!m) {
        return -ENOMEM;
    }
    attach(s, m, j);
    return 0;
}

/* Ends a spawn into `s` whose member `m` was allocated first (so that a
 * spawned task always has one): the task joins the set, or `m` goes back. */
static int
spawned(blz_task_set *s, member *m, int rc, blz_join *j)
{
    if (rc < 0) {
        blz__free(m);
        return rc;
    }
    attach(s, m, j);
    return 0;
}

int
blz_task_set_spawn(blz_task_set *s, blz_task_fn fn, void *arg)
{
    if (!s || !fn) {
        return -EINVAL;
    }
    member *m = blz__malloc(sizeof *m);
    if (!m) {
        return -ENOMEM;
    }
    blz_join *j = NULL;
    int rc = blz_spawn(fn, arg, &j);
    return spawned(s, m, rc, j);
}

int
blz_task_set_spawn_future(blz_task_set *s, const blz_future *f, size_t size)
{
    if (!s || !f) {
        return -EINVAL;
    }
    member *m = blz__malloc(sizeof *m);
    if (!m) {
        return -ENOMEM;
    }
    blz_join *j = NULL;
    int rc = blz_spawn_future(f, size, &j);
    return spawned(s, m, rc, j);
}

size_t
blz_task_set_len(const blz_task_set *s)
{
    if (!s) {
        return 0;
    }
    blz__spin_lock((blz__spinlock *) &s->lock);
    size_t n = s->len;
    blz__spin_unlock((blz__spinlock *) &s->lock);
    return n;
}

/* Pops a finished member and joins it: true, its status in *rc. Otherwise
 * false with *rc = -EAGAIN (none finished; with `cx`, its waker is
 * registered) or -ECHILD (the set is empty). */
static bool
join_next(blz_task_set *s, void **result, blz_context *cx, int *rc)
{
    blz__spin_lock(&s->lock);
    member *m = s->ready_head;
    if (!m) {
        *rc = s->len == 0 ? -ECHILD : -EAGAIN;
        if (*rc == -EAGAIN && cx) {
            blz_waker_set(&s->joiner, cx->waker);
        }
        blz__spin_unlock(&s->lock);
        return false;
    }
    s->ready_head = m->next_ready;
    if (!s->ready_head) {
        s->ready_tail = NULL;
    }
    all_unlink(s, m);
    blz__spin_unlock(&s->lock);
    *rc = member_finish(m, result);
    return true;
}

int
blz_task_set_try_join_next(blz_task_set *s, void **result)
{
    if (!s) {
        return -EINVAL;
    }
    int rc;
    (void) join_next(s, result, NULL, &rc);
    return rc;
}

static blz_poll
join_next_poll(blz_future *base, blz_context *cx)
{
    blz_task_set_join_future *f = (blz_task_set_join_future *) base;
    if (!f->set_) {
        return BLZ_READY; /* completed already: the result stays */
    }
    int rc;
    if (!join_next(f->set_, f->result_, cx, &rc) && rc == -EAGAIN) {
        return BLZ_PENDING;
    }
    base->result = rc;
    /* Done with the set: a later drop must not take the joiner slot, which
     * by then may hold the next join's waker, nor touch a set since freed. */
    f->set_ = NULL;
    return BLZ_READY;
}

static void
join_next_drop(blz_future *base)
{
    blz_task_set *s = ((blz_task_set_join_future *) base)->set_;
    if (!s) {
        return; /* completed: holds nothing */
    }
    blz__spin_lock(&s->lock);
    blz_waker_drop(&s->joiner); /* the one joiner is this future */
    blz__spin_unlock(&s->lock);
}

static const blz_future_vtable join_next_vt = {join_next_poll, join_next_drop};

void
blz_task_set_join_next_fut(blz_task_set *s, void **result, blz_task_set_join_future *f)
{
    if (!f) {
        return;
    }
    f->set_ = s;
    f->result_ = result;
    if (!s) {
        blz__future_ready(&f->base, -EINVAL);
        return;
    }
    blz_future_init(&f->base, &join_next_vt);
}

int
blz_task_set_join_next(blz_task_set *s, void **result)
{
    if (!s) {
        return -EINVAL;
    }
    int rc;
    if (join_next(s, result, NULL, &rc) || rc != -EAGAIN) {
        return rc; /* one had finished already (or none is left): no waiting */
    }
    blz_task_set_join_future f;
    blz_task_set_join_next_fut(s, result, &f);
    rc = blz_await(&f.base);
    if (rc == -EDEADLK) {
        blz_future_drop(&f.base);
    }
    return rc;
}

void
blz_task_set_abort_all(blz_task_set *s)
{
    if (!s) {
        return;
    }
    blz__spin_lock(&s->lock);
    for (member *m = s->all; m; m = m->all_next) {
        if (m->jf.join_) {
            blz_join_abort(m->jf.join_);
        }
    }
    blz__spin_unlock(&s->lock);
}

int
blz_task_set_shutdown(blz_task_set *s)
{
    if (!s) {
        return -EINVAL;
    }
    blz_task_set_abort_all(s);
    for (;;) {
        int rc;
        if (join_next(s, NULL, NULL, &rc)) {
            continue; /* one more joined and discarded */
        }
        if (rc == -ECHILD) {
            return 0;
        }
        /* Shutdown is cleanup: a fiber that was itself aborted (its owner
         * torn down, or the runtime being freed) must still wait here. Its
         * blz_await would return -ECANCELED at once without suspending, and
         * this loop would spin, starving the very tasks it waits for on the
         * fiber's worker (forever on a one-worker runtime). */
        blz_task_set_join_future f;
        blz_task_set_join_next_fut(s, NULL, &f);
        rc = blz__await_shielded(&f.base);
        if (rc == -EDEADLK) {
            blz_future_drop(&f.base);
            return rc;
        }
        if (rc == -ENOMEM) {
            return rc; /* a foreign thread without a parker: no wait can start (f dropped) */
        }
    }
}

void
blz_task_set_free(blz_task_set *s)
{
    if (!s) {
        return;
    }
    blz_task_set_abort_all(s);
    blz__spin_lock(&s->lock);
    s->orphaned = true;
    /* The finished ones are the owner's to release; the others release
     * themselves at their wake, and the last of those frees the set. */
    member *done = s->ready_head;
    s->ready_head = s->ready_tail = NULL;
    for (member *m = done; m; m = m->next_ready) {
        all_unlink(s, m);
    }
    bool empty = s->len == 0;
    blz__spin_unlock(&s->lock);
    while (done) {
        member *next = done->next_ready;
        (void) member_finish(done, NULL);
        done = next;
    }
    if (empty) {
        set_release(s);
    }
}
