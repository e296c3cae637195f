/*
 * Combinators: join_all, try_join_all, race and select, over join handles and
 * over futures.
 *
 * Over join handles, one private future polls the handles through short-lived
 * join futures: a pending poll leaves our waker in the task's join slot and
 * keeps the handle ours; a ready poll consumes the handle, which we mark by
 * clearing its array entry. join_all waits in index order (each wake checks
 * from the first unfinished handle), so n tasks cost O(n) polls in total.
 *
 * Over futures (at most BLZ_COMBINE_MAX), a bitmask records which futures are
 * ready; every wake polls the ones that are not. Futures that lose a race are
 * dropped; futures that lose a select are left as they are.
 */
#include "blitzio/task.h"
#include "core/coop.h"
#include "core/future.h"

enum { MODE_ALL, MODE_TRY, MODE_RACE, MODE_SELECT };

/* ---- over join handles ----------------------------------------------------- */

typedef struct join_set_future {
    blz_future base;
    blz_join **joins; /* entries set to NULL once consumed */
    size_t n;
    void **results;   /* optional per-task values (all/try) or the winner's value */
    size_t next;      /* all: first handle not yet consumed */
    size_t remaining; /* handles not yet consumed */
    int mode;
    int first_err; /* try: the first error; race: the winner's status */
    int winner;    /* race/select: index of the first to finish, or -1 */
} join_set_future;

/* Polls handle i; on completion consumes it and returns true with its status. */
static bool
poll_one(join_set_future *s, size_t i, blz_context *cx, int *status, void **value)
{
    blz_join_future jf;
    blz_join_wait_fut(s->joins[i], &jf);
    if (blz_future_poll(&jf.base, cx) == BLZ_PENDING) {
        return false; /* our waker is registered; the handle is still ours */
    }
    s->joins[i] = NULL;
    s->remaining--;
    *status = jf.base.result;
    *value = jf.output;
    return true;
}

static void
abort_rest(join_set_future *s)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->joins[i]) {
            blz_join_abort(s->joins[i]);
        }
    }
}

static blz_poll
// NOLINTNEXTLINE(readability-function-cognitive-complexity): three modes, one scan
join_set_poll(blz_future *base, blz_context *cx)
{
    join_set_future *s = (join_set_future *) base;
    int status;
    void *value;
    if (s->mode == MODE_ALL) {
        while (s->next < s->n) {
            size_t i = s->next;
            if (!poll_one(s, i, cx, &status, &value)) {
                return BLZ_PENDING;
            }
            if (s->results) {
                s->results[i] = value;
            }
            if (status < 0 && s->first_err == 0) {
                s->first_err = status;
            }
            s->next++;
        }
        base->result = s->first_err;
        return BLZ_READY;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (!s->joins[i] || !poll_one(s, i, cx, &status, &value)) {
            continue;
        }
        if (s->mode == MODE_TRY) {
            if (s->results) {
                s->results[i] = value;
            }
            if (status < 0 && s->first_err == 0) {
                s->first_err = status;
                abort_rest(s);
            }
        } else if (s->winner < 0) {
            s->winner = (int) i;
            s->first_err = status; /* race: an aborted winner fails the race */
            if (s->results) {
                *s->results = value;
            }
            if (s->mode == MODE_SELECT) {
                base->result = (int) i;
                return BLZ_READY;
            }
            abort_rest(s); /* race: the others are cancelled, then joined below */
        }
    }
    if (s->remaining > 0) {
        return BLZ_PENDING;
    }
    base->result = s->mode == MODE_TRY || s->first_err < 0 ? s->first_err : s->winner;
    return BLZ_READY;
}

static void
join_set_drop(blz_future *base)
{
    join_set_future *s = (join_set_future *) base;
    for (size_t i = 0; i < s->n; i++) {
        if (s->joins[i]) {
            if (s->mode == MODE_TRY || s->mode == MODE_RACE) {
                blz_join_abort(s->joins[i]);
            }
            if (s->mode != MODE_SELECT) {
                blz_join_detach(s->joins[i]); /* also takes our waker back */
                s->joins[i] = NULL;
            }
        }
    }
}

static const blz_future_vtable join_set_vtable = {join_set_poll, join_set_drop};

static int
join_set_run(blz_join **joins, size_t n, void **results, int mode)
{
    if (!joins || n == 0 || n > (size_t) INT32_MAX) {
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!joins[i]) {
            return -EINVAL;
        }
    }
    /* NULL first, so that whenever we return (an abort of the caller included,
     * which detaches handles it has not joined) each entry is either the value
     * of a task joined or NULL: the handles are gone by then, and nothing else
     * would tell a value to release from what the array held before. */
    if (results) {
        size_t slots = mode == MODE_ALL || mode == MODE_TRY ? n : 1;
        for (size_t i = 0; i < slots; i++) {
            results[i] = NULL;
        }
    }
    join_set_future s;
    blz_future_init(&s.base, &join_set_vtable);
    s.joins = joins;
    s.n = n;
    s.results = results;
    s.next = 0;
    s.remaining = n;
    s.mode = mode;
    s.first_err = 0;
    s.winner = -1;
    return blz_await(&s.base);
}

int
blz_join_all(blz_join **joins, size_t n, void **results)
{
    return join_set_run(joins, n, results, MODE_ALL);
}

int
blz_try_join_all(blz_join **joins, size_t n, void **results)
{
    return join_set_run(joins, n, results, MODE_TRY);
}

int
blz_race(blz_join **joins, size_t n, void **result)
{
    return join_set_run(joins, n, result, MODE_RACE);
}

int
blz_select(blz_join **joins, size_t n, void **result)
{
    return join_set_run(joins, n, result, MODE_SELECT);
}

/* ---- over futures ------------------------------------------------------ */

static uint64_t
all_mask(const blz_combine_future *c)
{
    return c->n_ == 64 ? ~(uint64_t) 0 : (((uint64_t) 1 << c->n_) - 1);
}

/* Drops every future not yet ready and marks them all done. */
static void
drop_pending(blz_combine_future *c)
{
    for (size_t k = 0; k < c->n_; k++) {
        if (!(c->done_mask_lo_ & ((uint64_t) 1 << k))) {
            blz_future_drop(c->fs_[k]);
        }
    }
    c->done_mask_lo_ = all_mask(c);
}

/* Ready with `result`: from now on a finished future (blz__future_finished),
 * so a poll after that keeps the result and polls no future again. Race's
 * done mask is full by then and would read as "all ready, no error" (0, not
 * the winner); select's losers would be polled again, and one of them could
 * take an item or a permit for a select its caller has already finished
 * with. A drop has nothing left to do either: every future is ready or
 * dropped, or (select) the caller's. */
static blz_poll
finish(blz_future *base, int result)
{
    base->result = result;
    return blz__future_finished(base);
}

static blz_poll
combine_poll(blz_future *base, blz_context *cx)
{
    blz_combine_future *c = (blz_combine_future *) base;
    for (size_t i = 0; i < c->n_; i++) {
        uint64_t bit = (uint64_t) 1 << i;
        if ((c->done_mask_lo_ & bit) || blz_future_poll(c->fs_[i], cx) == BLZ_PENDING) {
            continue;
        }
        c->done_mask_lo_ |= bit;
        if (c->kind_ == MODE_RACE || c->kind_ == MODE_SELECT) {
            if (c->kind_ == MODE_RACE) {
                drop_pending(c);
            }
            return finish(base, (int) i);
        }
        if (c->kind_ == MODE_TRY && c->fs_[i]->result < 0) {
            c->first_err_ = c->fs_[i]->result; /* the first to fail: the rest go */
            drop_pending(c);
        }
    }
    if (c->done_mask_lo_ != all_mask(c)) {
        return BLZ_PENDING;
    }
    if (c->kind_ == MODE_ALL) {
        /* The first error by index, as task.h says (and as join_all over
         * handles, which waits in index order), not the first to happen:
         * every future is ready and keeps its result. */
        for (size_t i = 0; i < c->n_; i++) {
            if (c->fs_[i]->result < 0) {
                c->first_err_ = c->fs_[i]->result;
                break;
            }
        }
    }
    return finish(base, c->first_err_);
}

static void
combine_drop(blz_future *base)
{
    blz_combine_future *c = (blz_combine_future *) base;
    if (c->kind_ == MODE_SELECT) {
        return; /* select leaves the others to the caller */
    }
    drop_pending(c);
    c->done_mask_lo_ = 0;
    c->n_ = 0;
}

static const blz_future_vtable combine_vtable = {combine_poll, combine_drop};

static int
combine_init(blz_future **fs, size_t n, blz_combine_future *f, int kind)
{
    if (!f) {
        return -EINVAL;
    }
    blz_future_init(&f->base, &combine_vtable);
    f->fs_ = fs;
    f->n_ = 0;
    f->done_mask_lo_ = 0;
    f->kind_ = kind;
    f->first_err_ = 0;
    /* Refused: ready with -EINVAL, as every _fut with bad arguments (a
     * dropped future's -ECANCELED would read as an abort). */
    if (!fs || n == 0 || n > BLZ_COMBINE_MAX) {
        blz__future_ready(&f->base, -EINVAL);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!fs[i]) {
            blz__future_ready(&f->base, -EINVAL);
            return -EINVAL;
        }
    }
    f->n_ = n;
    return 0;
}

int
blz_join_all_fut(blz_future **fs, size_t n, blz_combine_future *f)
{
    return combine_init(fs, n, f, MODE_ALL);
}

int
blz_try_join_all_fut(blz_future **fs, size_t n, blz_combine_future *f)
{
    return combine_init(fs, n, f, MODE_TRY);
}

int
blz_race_fut(blz_future **fs, size_t n, blz_combine_future *f)
{
    return combine_init(fs, n, f, MODE_RACE);
}

int
blz_select_fut(blz_future **fs, size_t n, blz_combine_future *f)
{
    return combine_init(fs, n, f, MODE_SELECT);
}

static int
combine_run(blz_future **fs, size_t n, int kind)
{
    blz_combine_future f;
    int rc = combine_init(fs, n, &f, kind);
    return rc < 0 ? rc : blz_await(&f.base);
}

int
blz_join_all_futures(blz_future **fs, size_t n)
{
    return combine_run(fs, n, MODE_ALL);
}

int
blz_try_join_all_futures(blz_future **fs, size_t n)
{
    return combine_run(fs, n, MODE_TRY);
}

int
blz_race_futures(blz_future **fs, size_t n)
{
    return combine_run(fs, n, MODE_RACE);
}

int
blz_select_futures(blz_future **fs, size_t n)
{
    return combine_run(fs, n, MODE_SELECT);
}
