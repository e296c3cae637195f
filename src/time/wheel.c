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
 *   - pending entries have tick_ <= elapsed, oldest first.
 * Lists are singly linked with a back pointer to the previous next field
 * (`pprev_`), so unlinking is O(1) and a slot head is one pointer.
 */
#include "time/wheel.h"

#include "core/container.h"

#define SLOT_MASK ((uint64_t) BLZ__WHEEL_SLOTS - 1)

static inline unsigned
level_for(uint64_t elapsed, uint64_t when)
{
    /* OR in the slot mask so that a difference in digit 0 only still gives level 0. */
    uint64_t masked = (elapsed ^ when) | SLOT_MASK;
    if (masked >= BLZ__WHEEL_SPAN) {
        /* `when` is in the next span (the top level wraps): it lives at the top level. */
        masked = BLZ__WHEEL_SPAN - 1;
    }
    unsigned significant = 63u - (unsigned) __builtin_clzll(masked);
    return significant / BLZ__WHEEL_SLOT_BITS;
}

static inline unsigned
slot_for(uint64_t when, unsigned level)
{
    return (unsigned) ((when >> (level * BLZ__WHEEL_SLOT_BITS)) & SLOT_MASK);
}

static inline void
list_push(blz_timer_entry **head, blz_timer_entry *e)
{
    e->next_ = *head;
    if (e->next_) {
        e->next_->pprev_ = &e->next_;
    }
    *head = e;
    e->pprev_ = head;
}

static inline void
list_unlink(blz_timer_entry *e)
{
    *e->pprev_ = e->next_;
    if (e->next_) {
        e->next_->pprev_ = e->pprev_;
    }
    e->next_ = NULL;
    e->pprev_ = NULL;
}

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
    w->count = 0;
}

void
blz__wheel_push_pending(blz__wheel *w, blz_timer_entry *e)
{
    e->next_ = NULL;
    e->pprev_ = w->pending_tail;
    *w->pending_tail = e;
    w->pending_tail = &e->next_;
    e->state_ = BLZ__TE_PENDING;
}

/* Places `e` by its tick relative to elapsed; does not touch count. */
static bool
place(blz__wheel *w, blz_timer_entry *e)
{
    if (e->tick_ <= w->elapsed) {
        blz__wheel_push_pending(w, e);
        return true;
    }
    uint64_t when = e->tick_;
    if (when - w->elapsed >= BLZ__WHEEL_SPAN) {
        /* Beyond the wheel: park at its far end; advance() re-places it from there. */
        when = w->elapsed + BLZ__WHEEL_SPAN - 1;
    }
    unsigned level = level_for(w->elapsed, when);
    unsigned slot = slot_for(when, level);
    list_push(&w->slots[level][slot], e);
    w->occupied[level] |= (uint64_t) 1 << slot;
    e->state_ = BLZ__TE_WHEEL | (level << 8) | (slot << 16);
    return false;
}

bool
blz__wheel_insert(blz__wheel *w, blz_timer_entry *e)
{
    BLZ_ASSERT(e->pprev_ == NULL);
    w->count++;
    return place(w, e);
}

void
blz__wheel_remove(blz__wheel *w, blz_timer_entry *e)
{
    BLZ_ASSERT(e->pprev_ != NULL);
    uint32_t st = e->state_;
    if (BLZ__TE_KIND(st) == BLZ__TE_PENDING) {
        if (e->next_ == NULL) {
            w->pending_tail = e->pprev_; /* it was the last one */
        }
        list_unlink(e);
    } else {
        BLZ_ASSERT(BLZ__TE_KIND(st) == BLZ__TE_WHEEL);
        unsigned level = BLZ__TE_LEVEL(st), slot = BLZ__TE_SLOT(st);
        list_unlink(e);
        if (w->slots[level][slot] == NULL) {
            w->occupied[level] &= ~((uint64_t) 1 << slot);
        }
    }
    e->state_ = BLZ__TE_IDLE;
    w->count--;
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
        /* Rotate so that bit 0 is the slot `elapsed` is in; the first set bit from
         * there is the earliest slot, wrapping past 63 into the next revolution. */
        unsigned ahead = (unsigned) __builtin_ctzll(rotr64(occ, now_slot));
        unsigned slot = (now_slot + ahead) & (unsigned) SLOT_MASK;
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
            (void) place(w, e);
        }
    }
    if (now > w->elapsed) {
        w->elapsed = now;
    }
}

void
blz__wheel_for_each(blz__wheel *w, void (*fn)(blz_timer_entry *e, void *arg), void *arg)
{
    for (blz_timer_entry *e = w->pending; e;) {
        blz_timer_entry *next = e->next_;
        fn(e, arg);
        e = next;
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
