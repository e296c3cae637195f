/*
 * Fiber stack pool: guard-paged mmap stacks, cached for reuse.
 *
 * Invariants:
 * - Every stack is one private anonymous mapping of `guard + size` bytes
 *   (MAP_NORESERVE | MAP_STACK: untouched pages cost neither RAM nor commit
 *   charge). Its lowest `guard` bytes fault on any access; the `size` bytes
 *   above are the usable stack. `guard` is one page and `size` a page multiple,
 *   both fixed when the pool is made.
 * - A stack is either out (owned by exactly one fiber; the pool never touches
 *   it) or cached on `free_list` (owned by the pool, linked through a node in
 *   the top bytes of its own usable region, so caching needs no memory).
 * - `lock` protects `free_list` and `nfree`, and nfree <= max_cached. The
 *   mutex also orders a stack's last use by one thread before its reuse by
 *   another (the give's unlock happens before the take's lock).
 * - `mapped` counts stacks mapped and not yet unmapped, out or cached. It is a
 *   relaxed atomic: a statistic that publishes nothing.
 * - Every other field is immutable after blz__stack_pool_new_opts returns.
 *
 * Guards: MADV_GUARD_INSTALL (Linux 6.13+) marks the guard page in the page
 * tables without splitting the VMA, so adjacent stacks merge into one VMA and
 * the number of live fibers is not bounded by vm.max_map_count (65530 by
 * default). Where the kernel lacks it, mprotect(PROT_NONE) does the same job
 * at the price of two VMAs per stack, which caps a process near 32k stacks.
 * AUTO probes once per process and picks the first.
 */
#ifndef _DEFAULT_SOURCE
# define _DEFAULT_SOURCE 1 /* MAP_ANONYMOUS, MAP_NORESERVE, MAP_STACK, madvise under -std=c11 */
#endif

#include "fiber/stack_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/atomic.h"

#ifndef MADV_GUARD_INSTALL
# define MADV_GUARD_INSTALL 102 /* <linux/mman.h> of Linux 6.13; older libc headers lack it */
#endif

#define DEFAULT_STACK_SIZE ((size_t) 64 * 1024)
#define MIN_STACK_SIZE     ((size_t) 16 * 1024)
#define MAX_STACK_SIZE     ((size_t) 1 << 30)
#define DEFAULT_MAX_CACHED ((size_t) 1024)

/* The link of a cached stack, in the top bytes of its usable region. */
struct cached_stack {
    struct cached_stack *next; /* the next cached stack, or NULL */
};

struct blz__stack_pool {
    pthread_mutex_t lock;          /* protects free_list and nfree */
    struct cached_stack *free_list; /* cached stacks, most recently given first (warm pages) */
    size_t nfree;                  /* length of free_list, <= max_cached */
    size_t max_cached;             /* immutable: the cache bound */
    size_t size;                   /* immutable: usable bytes per stack, a page multiple */
    size_t guard;                  /* immutable: guard bytes below each stack (one page) */
    enum blz__stack_guard guard_kind; /* immutable: MPROTECT or MADVISE, never AUTO */
    _Atomic size_t mapped;         /* stacks mapped, out or cached (relaxed statistic) */
};

/* 0 = not probed yet, 1 = MADV_GUARD_INSTALL works, 2 = it does not. */
static _Atomic int madvise_guard_probe;

static size_t
page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t) p : 4096;
}

static bool
madvise_guard_works(size_t page)
{
    int known = blz__load(&madvise_guard_probe, RELAXED);
    if (known != 0) {
        return known == 1;
    }
    bool works = false;
    void *p = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) {
        works = madvise(p, page, MADV_GUARD_INSTALL) == 0;
        (void) munmap(p, 2 * page);
    }
    /* Racing probes compute the same answer; relaxed is enough. */
    blz__store(&madvise_guard_probe, works ? 1 : 2, RELAXED);
    return works;
}

int
blz__stack_pool_new_opts(const blz__stack_pool_opts *opts, blz__stack_pool **out)
{
    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    blz__stack_pool_opts o = {0};
    if (opts) {
        o = *opts;
    }

    size_t page = page_size();
    size_t want = o.stack_size ? o.stack_size : DEFAULT_STACK_SIZE;
    if (want > MAX_STACK_SIZE) {
        return -EINVAL;
    }
    if (want < MIN_STACK_SIZE) {
        want = MIN_STACK_SIZE;
    }

    enum blz__stack_guard kind;
    switch (o.guard) {
    case BLZ__STACK_GUARD_AUTO:
        kind = madvise_guard_works(page) ? BLZ__STACK_GUARD_MADVISE : BLZ__STACK_GUARD_MPROTECT;
        break;
    case BLZ__STACK_GUARD_MADVISE:
        if (!madvise_guard_works(page)) {
            return -EOPNOTSUPP;
        }
        kind = BLZ__STACK_GUARD_MADVISE;
        break;
    case BLZ__STACK_GUARD_MPROTECT:
        kind = BLZ__STACK_GUARD_MPROTECT;
        break;
    default:
        return -EINVAL;
    }

    blz__stack_pool *pool = blz__malloc(sizeof *pool);
    if (!pool) {
        return -ENOMEM;
    }
    if (pthread_mutex_init(&pool->lock, NULL) != 0) {
        blz__free(pool);
        return -ENOMEM;
    }
    pool->free_list = NULL;
    pool->nfree = 0;
    pool->max_cached = o.max_cached ? o.max_cached : DEFAULT_MAX_CACHED;
    pool->size = (want + page - 1) & ~(page - 1);
    pool->guard = page;
    pool->guard_kind = kind;
    atomic_init(&pool->mapped, 0);
    *out = pool;
    return 0;
}

int
blz__stack_pool_new(size_t stack_size, blz__stack_pool **out)
{
    blz__stack_pool_opts o = {.stack_size = stack_size};
    return blz__stack_pool_new_opts(&o, out);
}

static void
unmap_stack(blz__stack_pool *pool, void *lo)
{
    (void) munmap((char *) lo - pool->guard, pool->guard + pool->size);
    blz__fetch_sub(&pool->mapped, 1, RELAXED);
}

void
blz__stack_pool_free(blz__stack_pool *pool)
{
    if (!pool) {
        return;
    }
    /* No lock: the caller promises no fiber of this pool is left, so no other
     * thread can reach it. */
    struct cached_stack *c = pool->free_list;
    while (c) {
        struct cached_stack *next = c->next;
        unmap_stack(pool, (char *) (c + 1) - pool->size);
        c = next;
    }
    (void) pthread_mutex_destroy(&pool->lock);
    blz__free(pool);
}

size_t
blz__stack_pool_mapped(const blz__stack_pool *pool)
{
    if (!pool) {
        return 0;
    }
    return blz__load(&pool->mapped, RELAXED);
}

enum blz__stack_guard
blz__stack_pool_guard(const blz__stack_pool *pool)
{
    return pool ? pool->guard_kind : BLZ__STACK_GUARD_AUTO;
}

/* Maps a fresh stack and arms its guard. */
static int
map_stack(blz__stack_pool *pool, void **lo)
{
    size_t len = pool->guard + pool->size;
    char *base = mmap(NULL, len, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED) {
        return -ENOMEM;
    }
    int rc;
    if (pool->guard_kind == BLZ__STACK_GUARD_MADVISE) {
        rc = madvise(base, pool->guard, MADV_GUARD_INSTALL);
    } else {
        /* Fails with ENOMEM once the VMA count reaches vm.max_map_count. */
        rc = mprotect(base, pool->guard, PROT_NONE);
    }
    if (rc != 0) {
        (void) munmap(base, len);
        return -ENOMEM;
    }
    blz__fetch_add(&pool->mapped, 1, RELAXED);
    *lo = base + pool->guard;
    return 0;
}

int
blz__stack_take(blz__stack_pool *pool, void **lo, size_t *size)
{
    struct cached_stack *c;
    (void) pthread_mutex_lock(&pool->lock);
    c = pool->free_list;
    if (c) {
        pool->free_list = c->next;
        pool->nfree--;
    }
    (void) pthread_mutex_unlock(&pool->lock);

    *size = pool->size;
    if (c) {
        *lo = (char *) (c + 1) - pool->size;
        return 0;
    }
    return map_stack(pool, lo);
}

void
blz__stack_give(blz__stack_pool *pool, void *lo)
{
    struct cached_stack *c = (void *) ((char *) lo + pool->size - sizeof *c);
    bool cached = false;
    (void) pthread_mutex_lock(&pool->lock);
    if (pool->nfree < pool->max_cached) {
        c->next = pool->free_list;
        pool->free_list = c;
        pool->nfree++;
        cached = true;
    }
    (void) pthread_mutex_unlock(&pool->lock);
    if (!cached) {
        unmap_stack(pool, lo);
    }
}
