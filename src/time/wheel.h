/*
 * Internal: the hierarchical timer wheel, as a plain data structure. It knows
 * ticks only (no clock, no lock, no wakers): src/time/timers.c adds those.
 *
 * Six levels of 64 slots. A slot of level k spans 64^k ticks, so level 0 holds
 * the next 64 ticks one per slot and the wheel as a whole spans 64^6 = 2^36
 * ticks (about 2.2 years of 1 ms ticks). An entry sits at the level of the
 * highest base-64 digit in which its tick differs from `elapsed`, in the slot
 * named by that digit. Consequences the code relies on:
 *   - every entry at level k is due before every entry at level k+1, so the
 *     earliest entry is in the first occupied slot of the lowest occupied level;
 *   - that slot is found with one rotate and one count-trailing-zeros;
 *   - a level-0 slot holds exactly one tick; a higher slot is a range, which
 *     advance() redistributes ("cascades") to lower levels when time reaches
 *     its start, so each entry moves at most five times in its life.
 * An entry further than the wheel's span is parked at the span's end and
 * re-placed when it gets there.
 *
 * Entries whose tick is not after `elapsed` go to the pending list instead (a
 * FIFO), and so do entries advance() finds due: pending entries are due now.
 */
#ifndef BLZ_TIME_WHEEL_H
#define BLZ_TIME_WHEEL_H

#include "blitzio/time.h"
#include "core/atomic.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BLZ__WHEEL_LEVELS    6
#define BLZ__WHEEL_SLOT_BITS 6
#define BLZ__WHEEL_SLOTS     64
/* Ticks from `elapsed` that the slots can hold. */
#define BLZ__WHEEL_SPAN      ((uint64_t) 1 << (BLZ__WHEEL_LEVELS * BLZ__WHEEL_SLOT_BITS))

/* blz_timer_entry.state_: the kind in the low byte, then level and slot while in the wheel. */
enum {
    BLZ__TE_IDLE = 0,      /* not linked (never registered, deregistered, or popped) */
    BLZ__TE_WHEEL = 1,     /* in slots[level][slot] */
    BLZ__TE_PENDING = 2,   /* in the pending list: due */
    BLZ__TE_FIRED = 3,     /* set by timers.c: unlinked by fire, waker taken */
    BLZ__TE_CANCELLED = 4, /* set by timers.c: unlinked by blz__timers_fini */
    BLZ__TE_NEVER = 5,     /* in the never list: a deadline no tick reaches */
};

/* The tick of a deadline that never comes (its tick instant is not representable). */
#define BLZ__WHEEL_NEVER UINT64_MAX
#define BLZ__TE_KIND(s)  ((s) &0xffu)
#define BLZ__TE_LEVEL(s) (((s) >> 8) & 0xffu)
#define BLZ__TE_SLOT(s)  (((s) >> 16) & 0xffu)

typedef struct blz__wheel {
    uint64_t elapsed;                     /* last tick processed; slot entries are later */
    uint64_t occupied[BLZ__WHEEL_LEVELS]; /* bit s set iff slots[level][s] is non-empty */
    blz_timer_entry *pending;             /* due entries, oldest first */
    blz_timer_entry *never;         /* entries with tick_ BLZ__WHEEL_NEVER: linked, never due */
    blz_timer_entry **pending_tail; /* &last pending->next_, or &pending when empty */
    size_t count;                   /* entries linked, slots and pending together */
    blz_timer_entry *slots[BLZ__WHEEL_LEVELS][BLZ__WHEEL_SLOTS]; /* unordered lists */
} blz__wheel;

/* Where the earliest occupied slot starts: a lower bound on every tick in the wheel. */
typedef struct blz__wheel_expiry {
    uint64_t tick; /* first tick the slot covers (> elapsed) */
    unsigned level;
    unsigned slot;
} blz__wheel_expiry;

/* An empty wheel whose time is `elapsed`. */
void blz__wheel_init(blz__wheel *w, uint64_t elapsed);

/*
 * Insert and remove are the per-sleep fast path (a register and a cancel per
 * sleep), so they are inline here; the rest lives in wheel.c. Invariants the
 * inline code keeps are listed at the top of wheel.c.
 */

/* The level for `when` (> elapsed): the highest base-64 digit in which they differ. */
static inline unsigned
blz__wheel_level_for(uint64_t elapsed, uint64_t when)
{
    /* OR in the slot mask so that a difference in digit 0 only still gives level 0. */
    uint64_t masked = (elapsed ^ when) | (BLZ__WHEEL_SLOTS - 1);
    if (masked >= BLZ__WHEEL_SPAN) {
        /* `when` is in the next span (the top level wraps): it lives at the top level. */
        masked = BLZ__WHEEL_SPAN - 1;
    }
    /* Highest set bit (5..35) to level: a table load is shorter than a divide by 6. */
    static const unsigned char level_of_bit[64] = {0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2,
                                                   2, 2, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 5, 5,
                                                   5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
                                                   5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5};
    return level_of_bit[63 - __builtin_clzll(masked)];
}

/* Re-appends an entry popped from pending (IDLE) to the end of pending. Keeps count. */
static inline void
blz__wheel_push_pending(blz__wheel *w, blz_timer_entry *e)
{
    e->next_ = NULL;
    e->pprev_ = w->pending_tail;
    *w->pending_tail = e;
    w->pending_tail = &e->next_;
    e->state_ = BLZ__TE_PENDING;
}

/* Places `e` by its tick relative to elapsed, into a slot or pending. Keeps count.
 * Returns true when it went to pending. */
static inline bool
blz__wheel_place(blz__wheel *w, blz_timer_entry *e)
{
    uint64_t elapsed = w->elapsed;
    uint64_t when = e->tick_;
    if (when <= elapsed) {
        blz__wheel_push_pending(w, e);
        return true;
    }
    if (BLZ_UNLIKELY(when == BLZ__WHEEL_NEVER)) {
        e->next_ = w->never;
        e->pprev_ = &w->never;
        if (w->never) {
            w->never->pprev_ = &e->next_;
        }
        w->never = e;
        e->state_ = BLZ__TE_NEVER;
        return false;
    }
    if (when - elapsed >= BLZ__WHEEL_SPAN) {
        /* Beyond the wheel: park at its far end; advance() re-places it from there. */
        when = elapsed + BLZ__WHEEL_SPAN - 1;
    }
    unsigned level = blz__wheel_level_for(elapsed, when);
    unsigned slot = (unsigned) (when >> (level * BLZ__WHEEL_SLOT_BITS)) & (BLZ__WHEEL_SLOTS - 1);
    blz_timer_entry **head = &w->slots[level][slot];
    blz_timer_entry *first = *head;
    e->next_ = first;
    e->pprev_ = head;
    if (first) {
        first->pprev_ = &e->next_;
    }
    *head = e;
    w->occupied[level] |= (uint64_t) 1 << slot;
    e->state_ = BLZ__TE_WHEEL | (level << 8) | (slot << 16);
    return false;
}

/* Links `e` (IDLE, e->tick_ set) into its slot, or into pending when e->tick_ <= elapsed.
 * Returns true when it went to pending. */
static inline bool
blz__wheel_insert(blz__wheel *w, blz_timer_entry *e)
{
    w->count++;
    return blz__wheel_place(w, e);
}

/* Unlinks `e`, which must be linked in `w` (WHEEL, PENDING or NEVER). It becomes IDLE. */
static inline void
blz__wheel_remove(blz__wheel *w, blz_timer_entry *e)
{
    uint32_t st = e->state_;
    blz_timer_entry *next = e->next_;
    *e->pprev_ = next;
    if (next) {
        next->pprev_ = e->pprev_;
    }
    if (BLZ__TE_KIND(st) == BLZ__TE_PENDING) {
        if (next == NULL) {
            w->pending_tail = e->pprev_; /* it was the last one */
        }
    } else if (BLZ__TE_KIND(st) == BLZ__TE_WHEEL) {
        unsigned level = BLZ__TE_LEVEL(st), slot = BLZ__TE_SLOT(st);
        /* The slot is now empty iff `e` was its first and only entry. Comparing
         * addresses avoids re-loading the head just stored through pprev_. */
        if (next == NULL && e->pprev_ == &w->slots[level][slot]) {
            w->occupied[level] &= ~((uint64_t) 1 << slot);
        }
    }
    e->next_ = NULL;
    e->pprev_ = NULL;
    e->state_ = BLZ__TE_IDLE;
    w->count--;
}

/* Finds the earliest occupied slot. False when the slots are empty (pending aside). */
bool blz__wheel_next_expiry(const blz__wheel *w, blz__wheel_expiry *out);

/* Processes every slot that starts at or before `now`: due entries (tick <= the slot
 * start) move to pending in tick order, the others cascade to lower levels. Then
 * elapsed = max(elapsed, now). Never moves time backwards. */
void blz__wheel_advance(blz__wheel *w, uint64_t now);

/* Removes and returns the oldest pending entry (IDLE afterwards), or NULL. */
blz_timer_entry *blz__wheel_pop_pending(blz__wheel *w);

static inline bool
blz__wheel_has_pending(const blz__wheel *w)
{
    return w->pending != NULL;
}

/* Visits every linked entry (slots, pending, never). `fn` must not touch the wheel. */
void blz__wheel_for_each(blz__wheel *w, void (*fn)(blz_timer_entry *e, void *arg), void *arg);

#endif
