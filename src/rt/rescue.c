/*
 * Rescuing the tasks stranded on a worker stuck in one poll: the rescuer's
 * side and the owner's acknowledgement (the protocol is in rt/rescue.h).
 */
#include "rt/rescue.h"

#include "os/unix/sys.h"

void
blz__rescue_ack_begin(blz__worker *w, blz__task **lifo, blz__task **defer)
{
    blz__spin_lock(&w->rescue_lock);
    *lifo = w->rescued_lifo;
    *defer = w->rescued_defer;
}

void
blz__rescue_ack_end(blz__worker *w)
{
    w->rescued_lifo = w->rescued_defer = NULL;
    blz__store(&w->rescue, 0u, RELAXED);
    blz__spin_unlock(&w->rescue_lock);
}

/* The bookkeeping is racy (any worker looks): a lost update only delays a
 * rescue or a spare. */
bool
blz__worker_stuck(blz__worker *v)
{
    uint64_t polls = blz__load(&v->polls, RELAXED);
    blz_instant now = blz_now();
    if (polls != blz__load(&v->stuck_polls, RELAXED)) {
        blz__store(&v->stuck_polls, polls, RELAXED);
        blz__store(&v->stuck_since, now, RELAXED);
        return false;
    }
    return now - blz__load(&v->stuck_since, RELAXED) >= BLZ_RESCUE_NS;
}

static uint64_t
chain_length(const blz__task *t)
{
    uint64_t n = 0;
    for (; t; t = t->queue_next) {
        n++;
    }
    return n;
}

bool
blz__rescue_take(blz__worker *v, blz__task **lifo, blz__task **defer)
{
    *lifo = *defer = NULL;
    if (!blz__load(&v->lifo, RELAXED) && !blz__load(&v->defer_top, RELAXED)) {
        return false;
    }
    if (!blz__worker_stuck(v) || !blz__spin_trylock(&v->rescue_lock)) {
        return false;
    }
    if (blz__load(&v->rescue, RELAXED)) {
        /* The owner has not seen the last rescue yet: it has not touched
         * either place since, so there is nothing new to take. */
        blz__spin_unlock(&v->rescue_lock);
        return false;
    }
    blz__store(&v->rescue, 1u, RELAXED);
    if (blz__sys_membarrier() != 0) {
        blz__store(&v->rescue, 0u, RELAXED); /* an owner that saw it acks nothing */
        blz__spin_unlock(&v->rescue_lock);
        return false;
    }
    /* Acquire: the tasks' contents and links, published by the owner's
     * release stores into the two places. */
    v->rescued_lifo = blz__exchange(&v->lifo, NULL, ACQ_REL);
    v->rescued_defer = blz__exchange(&v->defer_top, NULL, ACQ_REL);
    *lifo = v->rescued_lifo;
    *defer = v->rescued_defer;
    blz__spin_unlock(&v->rescue_lock);
    /* The next rescue from v waits as long again: a stuck task that keeps
     * waking others pushes each one out of its slot to the stealable queue
     * anyway, and the membarrier interrupts every CPU running this process. */
    blz__store(&v->stuck_since, blz_now(), RELAXED);
    uint64_t n = (*lifo != NULL) + chain_length(*defer);
    (void) blz__fetch_add(&v->rescued, n, RELAXED);
    return n > 0;
}
