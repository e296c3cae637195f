/*
 * Combinators over join handles (join_all, try_join_all, race, select) and
 * over futures (the same four), including the cancellation of losers and
 * the error paths.
 */
#include "blitzio.h"
#include "harness.h"

#include <stdatomic.h>

static blz_runtime *
new_rt(void)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 2;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    return rt;
}

/* A future that becomes ready after `polls_left` more polls, waking itself each time. */
typedef struct countdown {
    blz_future base;
    int polls_left;
    int value;
    atomic_int *dropped;
} countdown;

static blz_poll
countdown_poll(blz_future *self, blz_context *cx)
{
    countdown *c = (countdown *) self;
    if (c->polls_left-- > 0) {
        blz_waker_wake_by_ref(cx->waker);
        return BLZ_PENDING;
    }
    self->result = c->value;
    return BLZ_READY;
}

static void
countdown_drop(blz_future *self)
{
    countdown *c = (countdown *) self;
    if (c->dropped) {
        atomic_fetch_add(c->dropped, 1);
    }
}

static const blz_future_vtable countdown_vt = {countdown_poll, countdown_drop};

static countdown
make_countdown(int polls, int value, atomic_int *dropped)
{
    countdown c = {{&countdown_vt, 0, 0}, polls, value, dropped};
    return c;
}

static blz_poll
never_poll(blz_future *self, blz_context *cx)
{
    (void) self;
    (void) cx;
    return BLZ_PENDING;
}

static void *
yield_n(void *arg)
{
    intptr_t n = (intptr_t) arg;
    for (intptr_t i = 0; i < n; i++) {
        blz_yield();
    }
    return (void *) (n + 1000);
}

static void *
join_all_body(void *arg)
{
    (void) arg;
    blz_join *j[16];
    void *res[16];
    for (int i = 0; i < 16; i++) {
        CHECK_OK(blz_spawn(yield_n, (void *) (intptr_t) (16 - i), &j[i]));
    }
    CHECK_OK(blz_join_all(j, 16, res));
    for (int i = 0; i < 16; i++) {
        CHECK_EQ((intptr_t) res[i], 16 - i + 1000);
        CHECK_PTR_EQ(j[i], NULL); /* consumed */
    }
    return NULL;
}

BLZ_TEST(join_all_collects_every_result)
{
    blz_runtime *rt = new_rt();
    CHECK_OK(blz_runtime_block_on(rt, join_all_body, NULL, NULL));
    blz_runtime_free(rt);
}

static const blz_future_vtable never_vt = {never_poll, NULL};

static void *
try_join_all_body(void *arg)
{
    (void) arg;
    blz_join *j[4];
    blz_future never;
    for (int i = 0; i < 3; i++) {
        blz_future_init(&never, &never_vt);
        CHECK_OK(blz_spawn_future(&never, sizeof never, &j[i]));
    }
    CHECK_OK(blz_spawn(yield_n, (void *) 3, &j[3]));
    blz_join_abort(j[1]); /* one fails: the others must be aborted too */
    CHECK_EQ(blz_try_join_all(j, 4, NULL), -ECANCELED);
    return NULL;
}

BLZ_TEST(try_join_all_first_error_aborts_rest)
{
    blz_runtime *rt = new_rt();
    CHECK_OK(blz_runtime_block_on(rt, try_join_all_body, NULL, NULL));
    blz_runtime_free(rt);
}

static void *
race_body(void *arg)
{
    (void) arg;
    blz_join *j[3];
    blz_future never;
    blz_future_init(&never, &never_vt);
    CHECK_OK(blz_spawn_future(&never, sizeof never, &j[0]));
    CHECK_OK(blz_spawn(yield_n, (void *) 5, &j[1]));
    CHECK_OK(blz_spawn_future(&never, sizeof never, &j[2]));
    void *v = NULL;
    CHECK_EQ(blz_race(j, 3, &v), 1);
    CHECK_EQ((intptr_t) v, 1005);
    /* The losers were aborted and joined: nothing is left alive but this task. */
    blz_metrics m;
    blz_runtime_metrics(blz_runtime_current(), &m);
    CHECK_EQ(m.tasks_alive, 1);
    return NULL;
}

BLZ_TEST(race_aborts_losers)
{
    blz_runtime *rt = new_rt();
    CHECK_OK(blz_runtime_block_on(rt, race_body, NULL, NULL));
    blz_runtime_free(rt);
}

/* The first task to finish had been aborted: the race reports that, not an
 * index whose value (NULL) looks like a real result. */
static void *
race_aborted_first_body(void *arg)
{
    (void) arg;
    blz_join *j[2];
    blz_future never;
    blz_future_init(&never, &never_vt);
    CHECK_OK(blz_spawn_future(&never, sizeof never, &j[0]));
    CHECK_OK(blz_spawn_future(&never, sizeof never, &j[1]));
    blz_join_abort(j[0]);
    void *v = (void *) 1;
    CHECK_EQ(blz_race(j, 2, &v), -ECANCELED);
    CHECK_PTR_EQ(v, NULL);
    blz_metrics m;
    blz_runtime_metrics(blz_runtime_current(), &m);
    CHECK_EQ(m.tasks_alive, 1); /* the other was aborted and joined */
    return NULL;
}

BLZ_TEST(race_reports_an_aborted_winner)
{
    blz_runtime *rt = new_rt();
    CHECK_OK(blz_runtime_block_on(rt, race_aborted_first_body, NULL, NULL));
    blz_runtime_free(rt);
}

static void *
select_body(void *arg)
{
    (void) arg;
    blz_join *j[2];
    blz_future never;
    blz_future_init(&never, &never_vt);
    CHECK_OK(blz_spawn_future(&never, sizeof never, &j[0]));
    CHECK_OK(blz_spawn(yield_n, (void *) 1, &j[1]));
    void *v = NULL;
    CHECK_EQ(blz_select(j, 2, &v), 1);
    CHECK_EQ((intptr_t) v, 1001);
    CHECK_PTR_EQ(j[1], NULL);
    CHECK(j[0] != NULL); /* the loser keeps running and its handle stays ours */
    CHECK(!blz_join_is_finished(j[0]));
    blz_join_abort(j[0]);
    CHECK_EQ(blz_join_wait(j[0], &v), -ECANCELED);
    return NULL;
}

BLZ_TEST(select_leaves_others_running)
{
    blz_runtime *rt = new_rt();
    CHECK_OK(blz_runtime_block_on(rt, select_body, NULL, NULL));
    blz_runtime_free(rt);
}

static void *
futures_body(void *arg)
{
    (void) arg;
    atomic_int dropped = 0;
    countdown a = make_countdown(3, 1, &dropped), b = make_countdown(1, 2, &dropped),
              c = make_countdown(5, 3, &dropped);
    blz_future *fs[3] = {&a.base, &b.base, &c.base};
    CHECK_OK(blz_join_all_futures(fs, 3));
    CHECK_EQ(a.base.result + b.base.result + c.base.result, 6);
    CHECK_EQ(atomic_load(&dropped), 0);

    a = make_countdown(3, 1, &dropped);
    b = make_countdown(1, -EIO, &dropped);
    c = make_countdown(50, 3, &dropped);
    CHECK_EQ(blz_try_join_all_futures(fs, 3), -EIO);
    CHECK_EQ(atomic_load(&dropped), 2); /* a and c dropped on the first error */

    atomic_store(&dropped, 0);
    a = make_countdown(30, 1, &dropped);
    b = make_countdown(2, 2, &dropped);
    c = make_countdown(40, 3, &dropped);
    CHECK_EQ(blz_race_futures(fs, 3), 1);
    CHECK_EQ(b.base.result, 2);
    CHECK_EQ(atomic_load(&dropped), 2);

    atomic_store(&dropped, 0);
    a = make_countdown(30, 1, &dropped);
    b = make_countdown(30, 2, &dropped);
    c = make_countdown(0, 3, &dropped);
    CHECK_EQ(blz_select_futures(fs, 3), 2);
    CHECK_EQ(atomic_load(&dropped), 0); /* select drops nothing */
    CHECK_OK(blz_await(&a.base));       /* the others are still usable */
    CHECK_EQ(a.base.result, 1);
    blz_future_drop(&b.base);
    CHECK_EQ(atomic_load(&dropped), 1);

    CHECK_EQ(blz_join_all_futures(NULL, 3), -EINVAL);
    CHECK_EQ(blz_join_all_futures(fs, 0), -EINVAL);
    CHECK_EQ(blz_race_futures(fs, BLZ_COMBINE_MAX + 1), -EINVAL);
    return NULL;
}

BLZ_TEST(future_combinators)
{
    blz_runtime *rt = new_rt();
    CHECK_OK(blz_runtime_block_on(rt, futures_body, NULL, NULL));
    blz_runtime_free(rt);
}

BLZ_TEST(future_combinators_on_a_foreign_thread)
{
    /* blz_await parks this plain thread between polls. */
    CHECK(futures_body(NULL) == NULL);
}

BLZ_TEST(join_combinator_error_paths)
{
    blz_join *none[1] = {NULL};
    CHECK_EQ(blz_join_all(NULL, 1, NULL), -EINVAL);
    CHECK_EQ(blz_join_all(none, 1, NULL), -EINVAL);
    CHECK_EQ(blz_race(none, 0, NULL), -EINVAL);
    CHECK_EQ(blz_select(none, 1, NULL), -EINVAL);
}

BLZ_TEST(join_all_futures_returns_the_first_error_by_index)
{
    /* task.h: "the first negative result by index order", whichever failed
     * first in time (as blz_join_all over handles, which waits in order). */
    countdown a = make_countdown(3, -EIO, NULL), b = make_countdown(0, -ENOENT, NULL),
              c = make_countdown(1, 0, NULL);
    blz_future *fs[3] = {&a.base, &b.base, &c.base};
    CHECK_EQ(blz_join_all_futures(fs, 3), -EIO);
    CHECK_EQ(a.base.result, -EIO);
    CHECK_EQ(b.base.result, -ENOENT);

    /* The future tier, polled by hand: the same answer. */
    a = make_countdown(2, -EIO, NULL);
    b = make_countdown(0, -ENOENT, NULL);
    c = make_countdown(0, 0, NULL);
    blz_combine_future f;
    CHECK_OK(blz_join_all_fut(fs, 3, &f));
    blz_context cx = {blz_waker_noop()};
    int polls = 0;
    while (blz_future_poll(&f.base, &cx) == BLZ_PENDING) {
        CHECK(++polls < 10);
    }
    CHECK_EQ(f.base.result, -EIO);
}

/* The caller of join_all / race is aborted while a task it waits for never
 * finishes. Its results must then say which tasks were joined: a value for
 * each, NULL for the tasks detached, never what the array held before (the
 * handles are all gone, so nothing else tells, and a caller that releases
 * the values it got would release garbage). */
#define UNTOUCHED ((void *) (intptr_t) 0x5ca1ab1e)

typedef struct aborted_caller {
    int mode; /* 0: join_all, 1: try_join_all, 2: race */
    void *results[2];
    atomic_int entered;
} aborted_caller;

static void *
aborted_caller_body(void *arg)
{
    aborted_caller *c = arg;
    blz_join *j[2];
    blz_future never;
    blz_future_init(&never, &never_vt);
    CHECK_OK(blz_spawn(yield_n, (void *) 1, &j[0]));
    CHECK_OK(blz_spawn_future(&never, sizeof never, &j[1]));
    c->results[0] = c->results[1] = UNTOUCHED;
    atomic_store(&c->entered, 1);
    int rc = c->mode == 0   ? blz_join_all(j, 2, c->results)
             : c->mode == 1 ? blz_try_join_all(j, 2, c->results)
                            : blz_race(j, 2, c->results);
    if (c->mode == 2 && rc == 0) {
        return NULL; /* j[0] won before the abort: a plain race */
    }
    CHECK_EQ(rc, -ECANCELED);
    return NULL;
}

static void *
aborted_caller_main(void *arg)
{
    (void) arg;
    for (int mode = 0; mode < 3; mode++) {
        for (int round = 0; round < 50; round++) {
            aborted_caller c = {.mode = mode};
            atomic_init(&c.entered, 0);
            blz_join *caller;
            CHECK_OK(blz_spawn(aborted_caller_body, &c, &caller));
            while (!atomic_load(&c.entered)) {
                blz_yield();
            }
            for (int i = 0; i < round % 5; i++) {
                blz_yield(); /* abort before or after the first task was joined */
            }
            blz_join_abort(caller);
            (void) blz_join_wait(caller, NULL);
            int n = mode == 2 ? 1 : 2;
            for (int i = 0; i < n; i++) {
                CHECK(c.results[i] != UNTOUCHED);
            }
            CHECK(c.results[0] == NULL || (intptr_t) c.results[0] == 1001);
            if (n == 2) {
                CHECK_PTR_EQ(c.results[1], NULL); /* never finished: detached */
            }
        }
    }
    return NULL;
}

BLZ_TEST(aborted_caller_results_say_what_was_joined)
{
    blz_runtime *rt = new_rt();
    CHECK_OK(blz_runtime_block_on(rt, aborted_caller_main, NULL, NULL));
    blz_runtime_free(rt);
}

/* A race or select that is ready stays so: polled again, it keeps its
 * winner and polls none of its futures (a loser polled again could take an
 * item or a permit that the caller, done with the select, never sees). */
BLZ_TEST(ready_race_and_select_stay_ready)
{
    blz_context cx = {blz_waker_noop()};
    blz_semaphore s0, s1;
    CHECK_OK(blz_semaphore_init(&s0, 0));
    CHECK_OK(blz_semaphore_init(&s1, 1));
    blz_semaphore_acquire_future a, b;
    blz_future *fs[2] = {&a.base, &b.base};
    blz_combine_future f;

    blz_semaphore_acquire_fut(&s0, 1, &a);
    blz_semaphore_acquire_fut(&s1, 1, &b);
    CHECK_OK(blz_race_fut(fs, 2, &f));
    CHECK_EQ(blz_future_poll(&f.base, &cx), BLZ_READY);
    CHECK_EQ(f.base.result, 1);
    CHECK_EQ(blz_future_poll(&f.base, &cx), BLZ_READY);
    CHECK_EQ(f.base.result, 1); /* was 0: the done mask, read as "all ready, no error" */
    blz_future_drop(&f.base);
    blz_semaphore_release(&s1, 1);

    blz_chan ch;
    CHECK_OK(blz_chan_init(&ch, sizeof(int), 2));
    int item = 7, got = -1;
    blz_chan_recv_future r;
    blz_chan_recv_fut(&ch, &got, &r);
    blz_semaphore_acquire_fut(&s1, 1, &b);
    blz_future *sel[2] = {&r.base, &b.base};
    CHECK_OK(blz_select_fut(sel, 2, &f));
    CHECK_EQ(blz_future_poll(&f.base, &cx), BLZ_READY);
    CHECK_EQ(f.base.result, 1);
    CHECK_OK(blz_chan_try_send(&ch, &item)); /* the loser could take it now */
    CHECK_EQ(blz_future_poll(&f.base, &cx), BLZ_READY);
    CHECK_EQ(f.base.result, 1);
    CHECK_EQ(got, -1); /* the loser was not polled again */
    CHECK_EQ(blz_chan_len(&ch), 1);
    blz_future_drop(&f.base);
    blz_future_drop(&r.base); /* select leaves it to us */
    CHECK_OK(blz_chan_try_recv(&ch, &got));
    CHECK_EQ(got, 7);
    blz_chan_deinit(&ch);
    blz_semaphore_release(&s1, 1);
    CHECK_EQ(blz_semaphore_available(&s1), 1);
}

/* The future tiers refuse bad arguments as every other _fut does: the future
 * polls ready with -EINVAL, the await tier's answer (it said -ECANCELED, the
 * code of a dropped or aborted wait, so a combinator nested in another one,
 * or awaited without looking at the return, reported an abort). */
BLZ_TEST(combine_fut_refusals_poll_as_einval)
{
    int (*fill[4])(blz_future **, size_t, blz_combine_future *) = {
        blz_join_all_fut, blz_try_join_all_fut, blz_race_fut, blz_select_fut};
    countdown a = make_countdown(0, 1, NULL);
    blz_future *fs[2] = {&a.base, NULL};
    blz_context cx = {blz_waker_noop()};
    for (int k = 0; k < 4; k++) {
        blz_combine_future f;
        CHECK_EQ(fill[k](NULL, 1, &f), -EINVAL);
        CHECK_EQ(blz_future_poll(&f.base, &cx), BLZ_READY);
        CHECK_EQ(f.base.result, -EINVAL);
        CHECK_EQ(fill[k](fs, 0, &f), -EINVAL);
        CHECK_EQ(blz_await(&f.base), -EINVAL);
        CHECK_EQ(fill[k](fs, 2, &f), -EINVAL); /* a NULL future */
        CHECK_EQ(blz_future_poll(&f.base, &cx), BLZ_READY);
        CHECK_EQ(f.base.result, -EINVAL);
        blz_future_drop(&f.base);
        CHECK_EQ(fill[k](fs, BLZ_COMBINE_MAX + 1, &f), -EINVAL);
        CHECK_EQ(blz_await(&f.base), -EINVAL);
        CHECK_EQ(fill[k](fs, 1, NULL), -EINVAL);
    }
}
