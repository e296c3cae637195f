/*
 * Internal: a worker's local run queue, a 256-slot ring.
 *
 * The owner pushes at `tail` and pops at `head`; thieves take half of the
 * queue from `head`. Both pops and steals claim entries by CAS on `head`, so a
 * thief that copied slots and then lost the CAS just discards its copy. The
 * owner never writes a slot that lies between head and tail, so a copy that
 * wins the CAS is intact. Only the owner writes `tail`.
 */
#ifndef BLZ_RT_LOCAL_QUEUE_H
#define BLZ_RT_LOCAL_QUEUE_H

#include "core/atomic.h"
#include "rt/task.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define BLZ_LOCAL_QUEUE_CAP 256u

typedef struct blz__local_queue {
    BLZ_ALIGNED_CACHELINE _Atomic uint32_t
        head; /* next to pop or steal; CAS by owner and thieves */
    BLZ_ALIGNED_CACHELINE _Atomic uint32_t tail; /* next free slot; written by the owner only */
    _Atomic(blz__task *) slots[BLZ_LOCAL_QUEUE_CAP];
} blz__local_queue;

void blz__local_queue_init(blz__local_queue *q);

/* Owner: pushes `t`; returns false when full (the caller sends the task elsewhere). */
bool blz__local_queue_push(blz__local_queue *q, blz__task *t);

/* Owner: pops the oldest task, or NULL. */
blz__task *blz__local_queue_pop(blz__local_queue *q);

/* Thief: moves about half of `src` into `dst` (which the caller owns) and returns
 * one of the stolen tasks to run at once, or NULL when there was nothing. */
blz__task *blz__local_queue_steal_into(blz__local_queue *src, blz__local_queue *dst,
                                       uint32_t *stolen);

/* Approximate length, any thread. */
uint32_t blz__local_queue_len(const blz__local_queue *q);

#endif
