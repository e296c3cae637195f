/*
 * Task sets: results come back in the order the tasks finish, every one of
 * them exactly once (thousands of fibers and futures finishing on several
 * workers), aborts and shutdown end every task, and a set freed with tasks
 * still running lets them finish and releases everything (the allocator hook
 * counts).
 */
#include "blitzio.h"
#include "harness.h"
#include "rt_util.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ---- finishing in a chosen order -------------------------------------------------- */

#define ORDERED 6

typedef struct gated {
    blz_notify go[ORDERED];
} gated;

typedef struct gated_arg {
    gated *g;
    intptr_t id;
} gated_arg;

static void *
gated_fn(void *arg)
{
    gated_arg *a = arg;
    int rc = blz_notify_wait(&a->g->go[a->id]);
    return (void *) (rc < 0 ? (intptr_t) rc : a->id * 10);
}

static void *
order_main(void *arg)
{
    (void) arg;
    static gated g;
    static gated_arg args[ORDERED];
    for (int i = 0; i < ORDERED; i++) {
        blz_notify_init(&g.go[i]);
    }
    blz_task_set *s;
    CHECK_OK(blz_task_set_new(&s));
    void *res = (void *) 1;
    CHECK_EQ(blz_task_set_try_join_next(s, &res), -ECHILD);
    for (int i = 0; i < ORDERED; i++) {
        args[i] = (gated_arg){&g, i};
        CHECK_OK(blz_task_set_spawn(s, gated_fn, &args[i]));
    }
    CHECK_EQ(blz_task_set_len(s), ORDERED);
    CHECK_EQ(blz_task_set_try_join_next(s, &res), -EAGAIN);
    static const int order[ORDERED] = {3, 0, 5, 1, 4, 2};
    for (int k = 0; k < ORDERED; k++) {
        blz_notify_one(&g.go[order[k]]);
        res = NULL;
        CHECK_OK(blz_task_set_join_next(s, &res)); /* waits for exactly that one */
        CHECK_EQ((intptr_t) res, order[k] * 10);
        CHECK_EQ(blz_task_set_len(s), (size_t) (ORDERED - k - 1));
    }
    CHECK_EQ(blz_task_set_join_next(s, &res), -ECHILD);
    blz_task_set_free(s);
    return NULL;
}

BLZ_TEST(join_next_returns_tasks_in_the_order_they_finish)
{
    blz_runtime *rt = test_runtime(2, 0);
    CHECK_OK(blz_runtime_block_on(rt, order_main, NULL, NULL));
    blz_runtime_free(rt);
}

/* ---- many tasks, several workers ------------------------------------------------------ */

#define MANY 3000

static void *
small_fn(void *arg)
{
    intptr_t v = (intptr_t) arg;
    if (v % 3 == 0) {
        blz_yield(); /* some finish later than others */
    }
    return (void *) (-v - 1); /* negative: told apart from the futures' values */
}

typedef struct value_future {
    blz_future base;
    int value;
    int polls;
} value_future;

static blz_poll
value_poll(blz_future *self, blz_context *cx)
{
    value_future *f = (value_future *) self;
    if (f->polls++ == 0 && f->value % 2 == 0) {
        blz_waker_wake_by_ref(cx->waker); /* pending once */
        return BLZ_PENDING;
    }
    self->result = f->value;
    return BLZ_READY;
}

static const blz_future_vtable value_vt = {value_poll, NULL};

static void *
many_main(void *arg)
{
    (void) arg;
    blz_task_set *s;
    CHECK_OK(blz_task_set_new(&s));
    static bool seen[2 * MANY];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < MANY; i++) {
        CHECK_OK(blz_task_set_spawn(s, small_fn, (void *) (intptr_t) i));
        value_future f;
        memset(&f, 0, sizeof f);
        blz_future_init(&f.base, &value_vt);
        f.value = MANY + i;
        CHECK_OK(blz_task_set_spawn_future(s, &f.base, sizeof f));
    }
    int joined = 0;
    for (;;) {
        void *res = NULL;
        int rc = blz_task_set_join_next(s, &res);
        if (rc == -ECHILD) {
            break;
        }
        CHECK_OK(rc);
        intptr_t v = (intptr_t) res;
        int key = v < 0 ? (int) (-v - 1) : (int) v; /* fibers: 0..MANY-1, futures: MANY.. */
        CHECK(key >= 0 && key < 2 * MANY);
        CHECK(!seen[key]); /* exactly once */
        seen[key] = true;
        joined++;
    }
    CHECK_EQ(joined, 2 * MANY);
    CHECK_EQ(blz_task_set_len(s), 0);
    blz_task_set_free(s);
    return NULL;
}

BLZ_TEST(thousands_of_tasks_each_joined_once)
{
    blz_runtime *rt = test_runtime(4, 0);
    for (int round = 0; round < 5; round++) {
        CHECK_OK(blz_runtime_block_on(rt, many_main, NULL, NULL));
    }
    blz_runtime_free(rt);
}

/* ---- aborts, shutdown, free -------------------------------------------------------------- */

#define WAITING 50

typedef struct forever {
    blz_notify never;
    _Atomic int started; /* tasks that began to run */
    _Atomic int ended;   /* tasks that returned (cancelled) */
} forever;

static void *
forever_fn(void *arg)
{
    forever *f = arg;
    atomic_fetch_add(&f->started, 1);
    int rc = blz_notify_wait(&f->never);
    atomic_fetch_add(&f->ended, 1);
    return (void *) (intptr_t) rc;
}

static void *
abort_main(void *arg)
{
    forever *f = arg;
    blz_task_set *s;
    CHECK_OK(blz_task_set_new(&s));
    for (int i = 0; i < WAITING; i++) {
        CHECK_OK(blz_task_set_spawn(s, forever_fn, f));
    }
    blz_task_set_abort_all(s);
    int cancelled = 0;
    for (;;) {
        void *res = NULL;
        int rc = blz_task_set_join_next(s, &res);
        if (rc == -ECHILD) {
            break;
        }
        /* Aborted before it started (-ECANCELED status), or its wait saw it. */
        CHECK(rc == -ECANCELED || (rc == 0 && (intptr_t) res == -ECANCELED));
        cancelled++;
    }
    CHECK_EQ(cancelled, WAITING);

    /* shutdown: aborts and waits, so every task that started has ended
     * when it returns, and none starts afterwards. */
    atomic_store(&f->started, 0);
    atomic_store(&f->ended, 0);
    for (int i = 0; i < WAITING; i++) {
        CHECK_OK(blz_task_set_spawn(s, forever_fn, f));
    }
    blz_yield(); /* let some start */
    CHECK_OK(blz_task_set_shutdown(s));
    CHECK_EQ(blz_task_set_len(s), 0);
    CHECK_EQ(blz_task_set_try_join_next(s, NULL), -ECHILD);
    CHECK_EQ(atomic_load(&f->ended), atomic_load(&f->started));
    blz_task_set_free(s);
    return NULL;
}

BLZ_TEST(abort_all_and_shutdown_end_every_task)
{
    blz_runtime *rt = test_runtime(2, 0);
    forever f;
    memset(&f, 0, sizeof f);
    blz_notify_init(&f.never);
    CHECK_OK(blz_runtime_block_on(rt, abort_main, &f, NULL));
    blz_runtime_free(rt);
}

static void *
free_main(void *arg)
{
    forever *f = arg;
    blz_task_set *s;
    CHECK_OK(blz_task_set_new(&s));
    for (int i = 0; i < WAITING; i++) {
        CHECK_OK(blz_task_set_spawn(s, forever_fn, f));
        CHECK_OK(blz_task_set_spawn(s, small_fn, (void *) (intptr_t) i));
    }
    blz_yield();
    blz_task_set_free(s); /* some finished, some waiting, some not started */
    return NULL;
}

BLZ_TEST(free_with_tasks_running_releases_everything)
{
    blz_test_counting_allocator_install();
    blz_runtime *rt = test_runtime(2, 0);
    forever f;
    memset(&f, 0, sizeof f);
    blz_notify_init(&f.never);
    for (int round = 0; round < 20; round++) {
        CHECK_OK(blz_runtime_block_on(rt, free_main, &f, NULL));
    }
    /* The runtime's free waits for every task; the last member of each set
     * frees what is left of it. */
    blz_runtime_free(rt);
    CHECK_EQ(atomic_load(&f.ended), atomic_load(&f.started)); /* every waiter that ran returned */
    CHECK_EQ(blz_test_alloc_live(), 0); /* sets, members and tasks: all freed */
}

/* ---- shutdown from a fiber that is itself aborted ---------------------------------------- */

#define OWNED_KIDS 4

typedef struct aborted_owner {
    forever f;
    _Atomic int waiting;       /* the owner's tasks all started and it waits */
    _Atomic int shutdown_rc;   /* what blz_task_set_shutdown returned */
    _Atomic int ended_by_then; /* tasks that had returned when it did */
} aborted_owner;

static void *
aborted_owner_fn(void *arg)
{
    aborted_owner *o = arg;
    blz_task_set *s;
    CHECK_OK(blz_task_set_new(&s));
    for (int i = 0; i < OWNED_KIDS; i++) {
        CHECK_OK(blz_task_set_spawn(s, forever_fn, &o->f));
    }
    while (atomic_load(&o->f.started) < OWNED_KIDS) {
        blz_yield(); /* one worker: they run while we yield */
    }
    atomic_store(&o->waiting, 1);
    CHECK_EQ(blz_notify_wait(&o->f.never), -ECANCELED); /* until the test aborts us */
    /* Cleanup of an aborted owner: its tasks must be over before it returns. */
    atomic_store(&o->shutdown_rc, blz_task_set_shutdown(s));
    atomic_store(&o->ended_by_then, atomic_load(&o->f.ended));
    blz_task_set_free(s);
    return NULL;
}

BLZ_TEST(shutdown_waits_in_a_fiber_that_was_aborted)
{
    /* One worker: an owner that spun through its waits instead of
     * suspending would keep its own tasks from ever running. */
    blz_runtime *rt = test_runtime(1, 0);
    aborted_owner o;
    memset(&o, 0, sizeof o);
    blz_notify_init(&o.f.never);
    atomic_store(&o.shutdown_rc, 1);
    blz_join *j;
    CHECK_OK(blz_runtime_spawn(rt, aborted_owner_fn, &o, &j));
    struct timespec ms = {0, 1000000};
    WAIT_UNTIL(atomic_load(&o.waiting), nanosleep(&ms, NULL));
    blz_join_abort(j);
    WAIT_UNTIL(blz_join_is_finished(j), nanosleep(&ms, NULL));
    CHECK_EQ(blz_join_wait(j, NULL), -ECANCELED);
    CHECK_EQ(atomic_load(&o.shutdown_rc), 0);
    CHECK_EQ(atomic_load(&o.ended_by_then), OWNED_KIDS);
    blz_runtime_free(rt);
}

/* ---- a join-next future dropped after it completed ---------------------------------- */

static atomic_int counted_wakes;

static void
counted_wake(void *data)
{
    (void) data;
    atomic_fetch_add(&counted_wakes, 1);
}

static void *
counted_clone(void *data)
{
    return data;
}

static void
counted_drop(void *data)
{
    (void) data;
}

static const blz_waker_vtable counted_vt = {counted_wake, counted_wake, counted_clone,
                                            counted_drop};

static void *
drop_ready_main(void *arg)
{
    (void) arg;
    static gated g;
    static gated_arg args[2];
    blz_task_set *s;
    CHECK_OK(blz_task_set_new(&s));
    for (int i = 0; i < 2; i++) {
        blz_notify_init(&g.go[i]);
        args[i] = (gated_arg){&g, i};
        CHECK_OK(blz_task_set_spawn(s, gated_fn, &args[i]));
    }
    void *first = NULL, *second = NULL;
    blz_task_set_join_future f1, f2;
    blz_task_set_join_next_fut(s, &first, &f1);
    blz_notify_one(&g.go[0]);
    CHECK_OK(blz_await(&f1.base));
    CHECK_EQ((intptr_t) first, 0);
    /* The next join waits with its own waker; then the finished future is
     * dropped, which blz_future_drop allows for a ready future. */
    blz_task_set_join_next_fut(s, &second, &f2);
    blz_waker w = {&counted_vt, NULL};
    blz_context cx = {&w};
    CHECK_EQ(blz_future_poll(&f2.base, &cx), BLZ_PENDING);
    blz_future_drop(&f1.base);
    blz_notify_one(&g.go[1]);
    WAIT_UNTIL(atomic_load(&counted_wakes) == 1, CHECK_OK(blz_sleep(blz_ms(1))));
    CHECK_EQ(blz_future_poll(&f2.base, &cx), BLZ_READY);
    CHECK_OK(f2.base.result);
    CHECK_EQ((intptr_t) second, 10);
    blz_future_drop(&f2.base);
    blz_task_set_free(s);
    blz_future_drop(&f1.base); /* after the set is gone: touches nothing */
    return NULL;
}

BLZ_TEST(dropping_a_completed_join_next_future_keeps_the_next_joiner)
{
    blz_runtime *rt = test_runtime(2, 0);
    CHECK_OK(blz_runtime_block_on(rt, drop_ready_main, NULL, NULL));
    blz_runtime_free(rt);
}

BLZ_TEST(bad_arguments)
{
    CHECK_EQ(blz_task_set_new(NULL), -EINVAL);
    CHECK_EQ(blz_task_set_spawn(NULL, small_fn, NULL), -EINVAL);
    CHECK_EQ(blz_task_set_spawn_future(NULL, NULL, 0), -EINVAL);
    CHECK_EQ(blz_task_set_add(NULL, NULL), -EINVAL);
    CHECK_EQ(blz_task_set_try_join_next(NULL, NULL), -EINVAL);
    CHECK_EQ(blz_task_set_join_next(NULL, NULL), -EINVAL);
    CHECK_EQ(blz_task_set_shutdown(NULL), -EINVAL);
    CHECK_EQ(blz_task_set_len(NULL), 0);
    blz_task_set_abort_all(NULL);
    blz_task_set_free(NULL);
    blz_task_set *s;
    CHECK_OK(blz_task_set_new(&s));
    CHECK_EQ(blz_task_set_spawn(s, NULL, NULL), -EINVAL);
    CHECK_EQ(blz_task_set_spawn(s, small_fn, NULL), -ESRCH); /* no runtime here */
    CHECK_EQ(blz_task_set_len(s), 0);
    blz_task_set_join_future jf;
    blz_task_set_join_next_fut(NULL, NULL, &jf);
    blz_context cx = {blz_waker_noop()};
    CHECK_EQ(blz_future_poll(&jf.base, &cx), BLZ_READY);
    CHECK_EQ(jf.base.result, -EINVAL);
    blz_task_set_free(s);
}

/* ---- a shutdown that cannot wait says so ------------------------------------------- */

typedef struct stubborn {
    atomic_int running; /* the fiber has started */
    atomic_int release; /* set: the fiber returns */
} stubborn;

/* Ignores its abort: runs until released, holding its worker without an await
 * (nothing here allocates, so the failing allocator below is not touched). */
static void *
stubborn_fn(void *arg)
{
    stubborn *st = arg;
    atomic_store(&st->running, 1);
    struct timespec ms = {0, 1000000};
    while (!atomic_load(&st->release)) {
        nanosleep(&ms, NULL);
    }
    return NULL;
}

typedef struct shutdown_call {
    blz_task_set *s;
    atomic_int done;
    int rc;
} shutdown_call;

static void *
shutdown_without_memory(void *arg)
{
    shutdown_call *c = arg;
    /* A fresh thread: its first wait must allocate its parker, and fails. */
    blz_test_alloc_fail_after(0);
    c->rc = blz_task_set_shutdown(c->s);
    blz_test_alloc_fail_after(-1);
    atomic_store(&c->done, 1);
    return NULL;
}

/* A foreign thread that cannot allocate what it parks on gets -ENOMEM from
 * shutdown, as from every wait, instead of spinning until the tasks end. */
BLZ_TEST(shutdown_that_cannot_wait_returns_enomem)
{
    blz_test_counting_allocator_install();
    blz_runtime *rt = test_runtime(1, 0);
    stubborn st = {0, 0};
    blz_join *j;
    CHECK_OK(blz_runtime_spawn(rt, stubborn_fn, &st, &j));
    blz_task_set *s;
    CHECK_OK(blz_task_set_new(&s));
    CHECK_OK(blz_task_set_add(s, j));
    struct timespec ms = {0, 1000000};
    WAIT_UNTIL(atomic_load(&st.running), nanosleep(&ms, NULL));
    shutdown_call c = {s, 0, 1};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, shutdown_without_memory, &c), 0);
    /* Bounded: after 10 s the task is let go, which ends a spinning shutdown
     * too, so the test fails instead of hanging. */
    for (int i = 0; i < 10000 && !atomic_load(&c.done); i++) {
        nanosleep(&ms, NULL);
    }
    bool returned_by_itself = atomic_load(&c.done);
    atomic_store(&st.release, 1);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK(returned_by_itself);
    CHECK_EQ(c.rc, -ENOMEM);
    CHECK_OK(blz_task_set_shutdown(s)); /* with memory: waits, and the set empties */
    CHECK_EQ(blz_task_set_len(s), 0);
    blz_task_set_free(s);
    blz_runtime_free(rt);
}
