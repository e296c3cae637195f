/*
 * Select: the first ready branch wins, every other branch is dropped.
 *
 * Why nothing is lost: every channel future consumes (or sends) only in the
 * poll that makes it ready, and select stops polling at the first ready
 * branch. The others are pending, so dropping them only unlinks their
 * waiters; a branch that had been woken passes the wake on when dropped.
 * The timeout branch is a sleep future polled after the branches, so a
 * branch that is ready at the deadline still wins.
 *
 * Fairness: with BLZ_SELECT_FAIR each poll starts at a random branch
 * (xorshift, seeded per select from the future's address and a per-thread
 * counter), so a branch that is always ready cannot starve the others.
 */
#include "blitzio/chan.h"
#include "core/coop.h"
#include "core/future.h"

static _Thread_local uint32_t tl_seed;

static uint32_t
seed_for(const void *p)
{
    uint32_t x = (uint32_t) ((uintptr_t) p >> 4) ^ (tl_seed += 0x9E3779B9u);
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x ? x : 1;
}

static uint32_t
rng_next(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

/* Drops every branch except `keep` (SIZE_MAX: all), and the timeout. The
 * select is then ready and finished (blz__future_finished): polled again it
 * keeps its result, where polling the branches would find the losers
 * dropped (ready with -ECANCELED, a new "winner") and let the winner, whose
 * receive delivered, take the next item over the one it delivered. */
static void
settle(blz_chan_select_future *f, size_t keep)
{
    for (size_t i = 0; i < f->n_; i++) {
        if (i != keep) {
            blz_future_drop(f->branches_[i]);
        }
    }
    if (f->deadline_ != UINT64_MAX) {
        blz_future_drop(&f->sleep_.base);
    }
}

static blz_poll
select_poll(blz_future *base, blz_context *cx)
{
    blz_chan_select_future *f = (blz_chan_select_future *) base;
    if (!blz__coop_proceed(cx)) {
        return BLZ_PENDING;
    }
    size_t n = f->n_;
    size_t start = (n > 1 && (f->flags_ & BLZ_SELECT_FAIR)) ? rng_next(&f->rng_) % n : 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = start + i < n ? start + i : start + i - n;
        if (blz_future_poll(f->branches_[k], cx) == BLZ_READY) {
            settle(f, k);
            base->result = (int) k;
            return blz__future_finished(base);
        }
    }
    if (f->deadline_ != UINT64_MAX && blz_future_poll(&f->sleep_.base, cx) == BLZ_READY) {
        settle(f, SIZE_MAX);
        base->result = -ETIMEDOUT;
        return blz__future_finished(base);
    }
    return BLZ_PENDING;
}

static void
select_drop(blz_future *base)
{
    /* Reached only while pending: a ready select is a finished future. */
    settle((blz_chan_select_future *) base, SIZE_MAX);
}

static const blz_future_vtable select_vtable = {select_poll, select_drop};
void
blz_chan_select_fut(blz_future **branches, size_t n, blz_instant deadline, unsigned flags,
                    blz_chan_select_future *f)
{
    if (!f) {
        return;
    }
    bool ok = (n == 0 || branches) && (n > 0 || deadline != UINT64_MAX) && n <= INT32_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        ok = branches[i] != NULL;
    }
    blz__future_init_checked(&f->base, &select_vtable, ok);
    f->branches_ = branches;
    f->n_ = ok ? n : 0;
    f->deadline_ = deadline;
    f->flags_ = flags;
    f->rng_ = seed_for(f);
    if (ok && deadline != UINT64_MAX) {
        blz_sleep_until_fut(&f->sleep_, deadline);
    }
}

int
blz_chan_select(blz_future **branches, size_t n, blz_instant deadline, unsigned flags)
{
    blz_chan_select_future f;
    blz_chan_select_fut(branches, n, deadline, flags, &f);
    return blz_await(&f.base);
}

int
blz_chan_select_recv(blz_chan **chans, void **outs, size_t n, blz_instant deadline)
{
    if (!chans || !outs || n == 0 || n > BLZ_CHAN_SELECT_MAX) {
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!chans[i] || !outs[i]) {
            return -EINVAL;
        }
    }
    blz_chan_recv_future fs[BLZ_CHAN_SELECT_MAX];
    blz_future *bp[BLZ_CHAN_SELECT_MAX];
    size_t idx[BLZ_CHAN_SELECT_MAX];
    bool drained[BLZ_CHAN_SELECT_MAX] = {false};
    for (;;) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (!drained[i]) {
                blz_chan_recv_fut(chans[i], outs[i], &fs[m]);
                bp[m] = &fs[m].base;
                idx[m] = i;
                m++;
            }
        }
        if (m == 0) {
            return -EPIPE;
        }
        int r = blz_chan_select(bp, m, deadline, BLZ_SELECT_FAIR);
        if (r < 0) {
            return r;
        }
        if (fs[r].base.result == 0) {
            return (int) idx[r];
        }
        if (fs[r].base.result != -EPIPE) {
            return fs[r].base.result;
        }
        drained[idx[r]] = true; /* closed and empty: select over the rest */
    }
}
