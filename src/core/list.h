/*
 * Internal: an intrusive doubly-linked FIFO of blz_waiter nodes. The list does
 * no locking; its owner (a primitive) protects it. A node is linked iff its
 * prev_ is not NULL (unlinked nodes have next_ = prev_ = NULL), which lets a
 * drop test "am I still queued?" under the owner's lock in O(1).
 */
#ifndef BLZ_CORE_LIST_H
#define BLZ_CORE_LIST_H

#include "blitzio/future.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct blz__waitlist {
    blz_waiter head; /* sentinel: head.next_ is the oldest, head.prev_ the newest */
} blz__waitlist;

static inline void
blz__waitlist_init(blz__waitlist *l)
{
    l->head.next_ = &l->head;
    l->head.prev_ = &l->head;
}

static inline bool
blz__waitlist_empty(const blz__waitlist *l)
{
    return l->head.next_ == &l->head || l->head.next_ == NULL;
}

static inline bool
blz__waiter_linked(const blz_waiter *w)
{
    return w->prev_ != NULL;
}

static inline void
blz__waitlist_push_back(blz__waitlist *l, blz_waiter *w)
{
    if (l->head.next_ == NULL) { /* zero-initialised list */
        blz__waitlist_init(l);
    }
    w->next_ = &l->head;
    w->prev_ = l->head.prev_;
    l->head.prev_->next_ = w;
    l->head.prev_ = w;
}

static inline void
blz__waitlist_remove(blz_waiter *w)
{
    /* Only linked nodes are removed (their links are non-NULL); the analyzer
     * loses track of the list across a caller's loop and says otherwise. */
    // NOLINTNEXTLINE(clang-analyzer-core.NullDereference)
    w->prev_->next_ = w->next_;
    w->next_->prev_ = w->prev_;
    w->next_ = NULL;
    w->prev_ = NULL;
}

/* The oldest waiter, or NULL. */
static inline blz_waiter *
blz__waitlist_front(blz__waitlist *l)
{
    return blz__waitlist_empty(l) ? NULL : l->head.next_;
}

static inline blz_waiter *
blz__waitlist_pop_front(blz__waitlist *l)
{
    blz_waiter *w = blz__waitlist_front(l);
    if (w) {
        blz__waitlist_remove(w);
    }
    return w;
}

#endif
