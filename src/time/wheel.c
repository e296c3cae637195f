/*
 * The hierarchical timer wheel (see wheel.h for the layout).
 *
 * Invariants, all under the caller's lock (src/time/timers.c):
 *   - an entry is linked iff pprev_ != NULL; its kind in state_ is WHEEL
 *     (with its level and slot) or PENDING;
 *   - a WHEEL entry at (level, slot) has tick_ > elapsed, and `level` is the
 *     highest base-64 digit in which min(tick_, elapsed + SPAN - 1) differs
 *     from elapsed; `slot` is that digit of it;
 *   - occupied[level] bit `slot` is set iff slots[level][slot] != NULL;
 *   - pending entries have tick_ <= elapsed, oldest first;
 *   - never entries have tick_ == BLZ__WHEEL_NEVER and are in no slot: they
 *     are counted and can be removed, but no advance reaches them.
 * Lists are singly linked with a back pointer to the previous next field
 * (`pprev_`), so unlinking is O(1) and a slot head is one pointer.
 */
#include "time/wheel.h"

#include "core/container.h"

#define SLOT_MASK ((uint64_t) BLZ__WHEEL_SLOTS - 1)


void
blz__wheel_init(blz__wheel *w, uint64_t elapsed)
{
    w->elapsed = elapsed;
    for (unsigned l = 0; l < BLZ__WHEEL_LEVELS; l++) {
        w->occupied[l] = 0;
        for (unsigned s = 0; s < BLZ__WHEEL_SLOTS; s++) {
            w->slots[l][s] = NULL;
        }
    }
    w->pending = NULL;
    w->pending_tail = &w->pending;
    w->never = NULL;
    w->count = 0;
}

blz_timer_entry *
blz__wheel_pop_pending(blz__wheel *w)
{
    blz_timer_entry *e = w->pending;
    if (e) {
        blz__wheel_remove(w, e);
    }
    return e;
}

static inline uint64_t
rotr64(uint64_t x, unsigned n)
{
    n &= 63u;
    return n ? (x >> n) | (x << (64u - n)) : x;
}

bool
blz__wheel_next_expiry(const blz__wheel *w, blz__wheel_expiry *out)
{
    for (unsigned level = 0; level < BLZ__WHEEL_LEVELS; level++) {
        uint64_t occ = w->occupied[level];
        if (!occ) {
            continue;
        }
        unsigned shift = level * BLZ__WHEEL_SLOT_BITS;
        unsigned now_slot = (unsigned) ((w->elapsed >> shift) & SLOT_MASK);
        /* Rotate so that bit 0 is the slot after the one `elapsed` is in; the first set
         * bit from there is the earliest slot. The slot `elapsed` is in comes last: at
         * the top level it holds entries of the next revolution, elsewhere nothing. */
        unsigned first = (now_slot + 1) & (unsigned) SLOT_MASK;
        unsigned ahead = (unsigned) __builtin_ctzll(rotr64(occ, first));
        unsigned slot = (first + ahead) & (unsigned) SLOT_MASK;
        uint64_t slot_span = (uint64_t) 1 << shift;
        uint64_t level_span = slot_span << BLZ__WHEEL_SLOT_BITS;
        uint64_t start = (w->elapsed & ~(level_span - 1)) + (uint64_t) slot * slot_span;
        if (start <= w->elapsed) {
            start += level_span; /* the slot is in the next revolution of this level */
        }
        out->tick = start;
        out->level = level;
        out->slot = slot;
        return true;
    }
    return false;
}

void
blz__wheel_advance(blz__wheel *w, uint64_t now)
{
    blz__wheel_expiry exp;
    while (blz__wheel_next_expiry(w, &exp) && exp.tick <= now) {
        blz_timer_entry *list = w->slots[exp.level][exp.slot];
        w->slots[exp.level][exp.slot] = NULL;
        w->occupied[exp.level] &= ~((uint64_t) 1 << exp.slot);
        /* Nothing lies between the old elapsed and the slot start, so time may jump there. */
        w->elapsed = exp.tick;
        while (list) {
            blz_timer_entry *e = list;
            list = e->next_;
            e->next_ = NULL;
            e->pprev_ = NULL;
            /* Due ones go to pending, the rest to a lower level (or, for one parked
             * beyond the span, back to the top). count is unchanged. */
            (void) blz__wheel_place(w, e);
        }
    }
    if (now > w->elapsed) {
        w->elapsed = now;
    }
}

void
blz__wheel_for_each(blz__wheel *w, void (*fn)(blz_timer_entry *e, void *arg), void *arg)
{
    blz_timer_entry *lists[2] = {w->pending, w->never};
    for (unsigned i = 0; i < 2; i++) {
        for (blz_timer_entry *e = lists[i]; e;) {
            blz_timer_entry *next = e->next_;
            fn(e, arg);
            e = next;
        }
    }
    for (unsigned l = 0; l < BLZ__WHEEL_LEVELS; l++) {
        for (unsigned s = 0; s < BLZ__WHEEL_SLOTS; s++) {
            for (blz_timer_entry *e = w->slots[l][s]; e;) {
                blz_timer_entry *next = e->next_;
                fn(e, arg);
                e = next;
            }
        }
    }
}
