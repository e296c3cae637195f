/*
 * The local run queue (see local_queue.h for the invariants).
 *
 * Orderings: a slot is stored (relaxed) before `tail` is released; pop and
 * steal acquire `tail` before reading slots, so they see the stored pointer.
 * The CAS on `head` is acq_rel so that a claimed slot's contents are read
 * before a later push by the owner may overwrite it (the owner acquires head
 * before checking for room).
 */
#include "rt/local_queue.h"

void
blz__local_queue_init(blz__local_queue *q)
{
    atomic_init(&q->head, 0);
    atomic_init(&q->tail, 0);
    for (uint32_t i = 0; i < BLZ_LOCAL_QUEUE_CAP; i++) {
        atomic_init(&q->slots[i], NULL);
    }
}

bool
blz__local_queue_push(blz__local_queue *q, blz__task *t)
{
    uint32_t tail = blz__load(&q->tail, RELAXED);
    /* Acquire pairs with the CAS in pop/steal: freed slots are really free. */
    uint32_t head = blz__load(&q->head, ACQUIRE);
    if (tail - head >= BLZ_LOCAL_QUEUE_CAP) {
        return false;
    }
    blz__store(&q->slots[tail % BLZ_LOCAL_QUEUE_CAP], t, RELAXED);
    /* Release pairs with the acquire loads of tail in pop and steal. */
    blz__store(&q->tail, tail + 1, RELEASE);
    return true;
}

blz__task *
blz__local_queue_pop(blz__local_queue *q)
{
    uint32_t head = blz__load(&q->head, ACQUIRE);
    for (;;) {
        uint32_t tail = blz__load(&q->tail, RELAXED); /* owner's own writes */
        if (head == tail) {
            return NULL;
        }
        blz__task *t = blz__load(&q->slots[head % BLZ_LOCAL_QUEUE_CAP], RELAXED);
        if (blz__cas_weak(&q->head, &head, head + 1, ACQ_REL, ACQUIRE)) {
            return t;
        }
    }
}

blz__task *
blz__local_queue_steal_into(blz__local_queue *src, blz__local_queue *dst, uint32_t *stolen)
{
    *stolen = 0;
    uint32_t dst_tail = blz__load(&dst->tail, RELAXED); /* dst is ours */
    uint32_t dst_head = blz__load(&dst->head, ACQUIRE);
    uint32_t room = BLZ_LOCAL_QUEUE_CAP - (dst_tail - dst_head);
    uint32_t head = blz__load(&src->head, ACQUIRE);
    uint32_t n;
    for (;;) {
        uint32_t tail = blz__load(&src->tail, ACQUIRE);
        uint32_t avail = tail - head;
        if (avail == 0 || avail > BLZ_LOCAL_QUEUE_CAP) {
            return NULL; /* empty, or a head/tail pair read across a concurrent pop */
        }
        n = avail - avail / 2; /* half, rounded up */
        if (n > room) {
            n = room;
        }
        if (n == 0) {
            return NULL;
        }
        /* Copy into dst's free slots; they become visible only when dst's tail moves. */
        for (uint32_t i = 0; i < n; i++) {
            blz__task *t = blz__load(&src->slots[(head + i) % BLZ_LOCAL_QUEUE_CAP], RELAXED);
            blz__store(&dst->slots[(dst_tail + i) % BLZ_LOCAL_QUEUE_CAP], t, RELAXED);
        }
        if (blz__cas_weak(&src->head, &head, head + n, ACQ_REL, ACQUIRE)) {
            break;
        }
    }
    /* Run the last stolen task now; publish the others in dst. */
    blz__task *run = blz__load(&dst->slots[(dst_tail + n - 1) % BLZ_LOCAL_QUEUE_CAP], RELAXED);
    if (n > 1) {
        /* Release pairs with the acquire of tail by dst's own thieves. */
        blz__store(&dst->tail, dst_tail + n - 1, RELEASE);
    }
    *stolen = n;
    return run;
}

uint32_t
blz__local_queue_len(const blz__local_queue *q)
{
    uint32_t tail = blz__load((_Atomic uint32_t *) &q->tail, RELAXED);
    uint32_t head = blz__load((_Atomic uint32_t *) &q->head, RELAXED);
    uint32_t n = tail - head;
    return n > BLZ_LOCAL_QUEUE_CAP ? 0 : n;
}
