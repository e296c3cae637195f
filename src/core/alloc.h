/* Internal: every allocation goes through the hook set by blz_set_allocator(). */
#ifndef BLZ_CORE_ALLOC_H
#define BLZ_CORE_ALLOC_H

#include "blitzio/common.h"

#include <stddef.h>
#include <stdint.h>

void *blz__malloc(size_t size);
void *blz__calloc(size_t n, size_t size);
void *blz__realloc(void *p, size_t size);
void blz__free(void *p);

/* The free function of the allocator installed now. A block that a thread
 * keeps for itself from one runtime to the next (its parker, its cached task
 * cells) may outlive a blz_set_allocator between them: it records this when
 * it is made and goes back through it, not through blz__free. */
blz_free_fn blz__free_fn(void);

/* `p` moved up to the next multiple of `align` (a power of two) by pointer
 * arithmetic, so the result stays a pointer into p's block. */
static inline void *
blz__align_up(void *p, size_t align)
{
    return (char *) p + ((align - ((uintptr_t) p & (align - 1))) & (align - 1));
}

#endif
