/*
 * The allocator hook. Every allocation in blitzio goes through blz__malloc and
 * friends, which call the functions installed by blz_set_allocator. The hook
 * is set before runtimes are created; reads are relaxed atomics so that a test
 * installing a counting allocator between runtimes is not a data race. What a
 * thread keeps across runtimes remembers its own free (blz__free_fn).
 */
#include "core/alloc.h"

#include "blitzio/common.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static _Atomic(blz_malloc_fn) hook_malloc = malloc;
static _Atomic(blz_realloc_fn) hook_realloc = realloc;
static _Atomic(blz_free_fn) hook_free = free;

void
blz_set_allocator(blz_malloc_fn malloc_fn, blz_realloc_fn realloc_fn, blz_free_fn free_fn)
{
    bool custom = malloc_fn && realloc_fn && free_fn;
    atomic_store_explicit(&hook_malloc, custom ? malloc_fn : malloc, memory_order_relaxed);
    atomic_store_explicit(&hook_realloc, custom ? realloc_fn : realloc, memory_order_relaxed);
    atomic_store_explicit(&hook_free, custom ? free_fn : free, memory_order_relaxed);
}

void *
blz__malloc(size_t size)
{
    return atomic_load_explicit(&hook_malloc, memory_order_relaxed)(size ? size : 1);
}

void *
blz__calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        return NULL;
    }
    void *p = blz__malloc(n * size);
    if (p) {
        memset(p, 0, n * size);
    }
    return p;
}

void *
blz__realloc(void *p, size_t size)
{
    return atomic_load_explicit(&hook_realloc, memory_order_relaxed)(p, size ? size : 1);
}

blz_free_fn
blz__free_fn(void)
{
    return atomic_load_explicit(&hook_free, memory_order_relaxed);
}

void
blz__free(void *p)
{
    if (p) {
        atomic_load_explicit(&hook_free, memory_order_relaxed)(p);
    }
}
