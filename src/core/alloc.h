/* Internal: every allocation goes through the hook set by blz_set_allocator(). */
#ifndef BLZ_CORE_ALLOC_H
#define BLZ_CORE_ALLOC_H

#include <stddef.h>

void *blz__malloc(size_t size);
void *blz__calloc(size_t n, size_t size);
void *blz__realloc(void *p, size_t size);
void blz__free(void *p);

#endif
