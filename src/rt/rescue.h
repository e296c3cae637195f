/*
 * Internal: rescuing the tasks stranded on a worker stuck in one poll.
 *
 * A worker's LIFO slot and its list of yielded tasks are its own: no thief
 * takes from them, so that two tasks handing messages to each other stay on
 * one worker and in its cache (worker.c). But when the task running there
 * then keeps the worker for long (a loop without a yield, a blocking call),
 * the task it woke last and the tasks that yielded before it wait for it,
 * however idle the other workers are. Tokio's LIFO slot has the same flaw
 * (tokio#4941). Here an idle worker that sees another's `polls` stand still
 * for BLZ_RESCUE_NS with tasks in those two places takes them all and runs
 * them (blz__rescue_take). The worker watching the timers is the one sure
 * to look: it sleeps at most BLZ_RESCUE_NS while another worker is awake;
 * one that went to sleep with every other worker asleep, and so without
 * that limit, is woken by the first worker to wake (worker.c,
 * rescuer_look).
 *
 * The owner pays no read-modify-write for this. Each of its operations on
 * `lifo` or `defer_top` is a load and a store, then a look at `rescue`
 * behind a compiler barrier (blz__rescue_raised). A rescuer, under
 * rescue_lock, sets `rescue`, issues membarrier (it returns once every
 * running thread of the process has executed a full barrier), exchanges
 * both places with NULL and records what it took. For each owner operation,
 * either its look at `rescue` comes after that barrier and sees the flag,
 * or the whole operation came before it and the exchange sees its result.
 * An owner that sees the flag takes rescue_lock, so the rescue is over,
 * learns what was taken and clears the flag (blz__rescue_ack_begin and
 * _end); if that is what its own operation had just read, the rescuer has
 * it and the owner lets it go.
 *
 * Without membarrier (an old kernel, a seccomp filter) and in a runtime
 * with one worker there is no rescue (rt->rescue_on).
 */
#ifndef BLZ_RT_RESCUE_H
#define BLZ_RT_RESCUE_H

#include "blitzio/sync.h" /* BLZ_SYNC_PERTURB_: the perturbation build's yields */
#include "rt/runtime.h"

#include <stdatomic.h>
#include <stdbool.h>

/* How long a worker must stay in one poll before its stranded tasks are
 * taken, and how often a parked worker looks while another one is awake. */
#define BLZ_RESCUE_NS ((blz_duration) 10000000) /* 10 ms */

/* The owner, after an operation on its lifo or defer_top: true when a
 * rescue may have taken what the operation read (blz__rescue_ack_begin). */
static inline bool
blz__rescue_raised(blz__worker *w)
{
    /* The operation's stores and loads stay before this load; the rescuer's
     * membarrier orders them for the other CPU. */
    atomic_signal_fence(memory_order_seq_cst);
    return BLZ_UNLIKELY(blz__load(&w->rescue, RELAXED) != 0);
}

/* The owner, after blz__rescue_raised: waits for the rescue to end and sets
 * *lifo and *defer to what it took from the two places (NULL: nothing).
 * Until blz__rescue_ack_end no new rescue starts, so the owner can repair
 * what it just wrote. */
void blz__rescue_ack_begin(blz__worker *w, blz__task **lifo, blz__task **defer);
void blz__rescue_ack_end(blz__worker *w);

/* ---- the owner's operations (its worker's thread only) -------------------------- */

enum { BLZ__RESCUE_LIFO, BLZ__RESCUE_DEFER };

/* After an operation that read `read` from place `which`: `read`, or NULL
 * when a rescue took it from there meanwhile. */
static inline blz__task *
blz__rescue_settle(blz__worker *w, blz__task *read, int which)
{
    if (blz__rescue_raised(w)) {
        blz__task *lifo, *defer;
        blz__rescue_ack_begin(w, &lifo, &defer);
        blz__rescue_ack_end(w);
        if (read == (which == BLZ__RESCUE_LIFO ? lifo : defer)) {
            return NULL;
        }
    }
    return read;
}

/* Puts t in the LIFO slot; returns the task it held (NULL: none, or a
 * rescue took it). Release: t's state for a rescue that takes it. */
static inline blz__task *
blz__lifo_put(blz__worker *w, blz__task *t)
{
    blz__task *prev = blz__load(&w->lifo, RELAXED);
    BLZ_SYNC_PERTURB_();
    blz__store(&w->lifo, t, RELEASE);
    return blz__rescue_settle(w, prev, BLZ__RESCUE_LIFO);
}

/* Empties the LIFO slot; returns its task (NULL: none, or a rescue took it). */
static inline blz__task *
blz__lifo_take(blz__worker *w)
{
    blz__task *t = blz__load(&w->lifo, RELAXED);
    if (!t) {
        return NULL;
    }
    BLZ_SYNC_PERTURB_();
    blz__store(&w->lifo, NULL, RELAXED);
    return blz__rescue_settle(w, t, BLZ__RESCUE_LIFO);
}

/* Pushes t on the list of yielded tasks (newest first, through queue_next). */
static inline void
blz__defer_push(blz__worker *w, blz__task *t)
{
    blz__task *top = blz__load(&w->defer_top, RELAXED);
    t->queue_next = top;
    BLZ_SYNC_PERTURB_();
    blz__store(&w->defer_top, t, RELEASE); /* t's link and state for a rescue */
    if (blz__rescue_raised(w)) {
        blz__task *lifo, *taken;
        blz__rescue_ack_begin(w, &lifo, &taken);
        if (top && top == taken) {
            /* The rest went with the rescue; cut the link before the next
             * rescue could follow it. */
            t->queue_next = NULL;
        }
        blz__rescue_ack_end(w);
    }
}

/* Takes every yielded task, newest first (NULL: none, or a rescue took them). */
static inline blz__task *
blz__defer_take_all(blz__worker *w)
{
    blz__task *top = blz__load(&w->defer_top, RELAXED);
    if (!top) {
        return NULL;
    }
    BLZ_SYNC_PERTURB_();
    blz__store(&w->defer_top, NULL, RELAXED);
    return blz__rescue_settle(w, top, BLZ__RESCUE_DEFER);
}

/* Whether v's poll count has stood still for BLZ_RESCUE_NS, by this and
 * earlier looks of other workers (which this look updates). Reads the clock. */
bool blz__worker_stuck(blz__worker *v);

/* Another worker of the same runtime, looking for work: if v has been in
 * one poll for BLZ_RESCUE_NS (as far as this and earlier looks saw) with
 * tasks in its lifo or defer_top, takes them: *lifo the slot's task, *defer
 * the yielded ones, newest first, linked through queue_next. Returns whether
 * it took any. Cheap when v has nothing stranded. */
bool blz__rescue_take(blz__worker *v, blz__task **lifo, blz__task **defer);

#endif
