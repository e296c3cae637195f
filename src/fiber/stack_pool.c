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
 *   it) or cached on one shard's `free_list` (owned by the pool, linked through
 *   a node in the top bytes of its own usable region: caching needs no memory).
 * - The cache is split in POOL_SHARDS shards so that workers creating and
 *   freeing fibers at once do not all queue on one lock or one counter. A
 *   thread gives to and takes from its own shard (assigned round-robin at its
 *   first use of any pool); a take finding its shard empty tries the others
 *   before it maps a new stack, and a give finding its shard full tries the
 *   others before it unmaps, so stacks freed on one worker are reused by
 *   another.
 * - Each shard's `lock` protects its `free_list` and `nfree`; nfree <= cap,
 *   and the caps add up to max_cached, so at most max_cached stacks are ever
 *   cached. The mutex also orders a stack's last use by one thread before its
 *   reuse by another (the give's unlock happens before the take's lock).
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
 *
 * MAP_ANONYMOUS, MAP_NORESERVE, MAP_STACK and madvise need _GNU_SOURCE (or
 * _DEFAULT_SOURCE) under -std=c11; the build defines it for every library file.
 */
#include "fiber/stack_pool.h"

#include "core/alloc.h"
#include "core/atomic.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_GUARD_INSTALL
# define MADV_GUARD_INSTALL 102 /* <linux/mman.h> of Linux 6.13; older libc headers lack it */
#endif

#define DEFAULT_STACK_SIZE ((size_t) 64 * 1024)
#define MIN_STACK_SIZE     ((size_t) 16 * 1024)
#define MAX_STACK_SIZE     ((size_t) 1 << 30)
#define DEFAULT_MAX_CACHED ((size_t) 1024)
#define POOL_SHARDS        8 /* a power of two */

/* The link of a cached stack, in the top bytes of its usable region. */
struct cached_stack {
    struct cached_stack *next; /* the next cached stack, or NULL */
};

/* One lock and free list; a cache line each, so shards do not false-share. */
struct pool_shard {
    BLZ_ALIGNED_CACHELINE pthread_mutex_t lock; /* protects free_list and nfree */
    struct cached_stack *free_list; /* cached stacks, most recently given first (warm pages) */
    size_t nfree;                   /* length of free_list, <= cap */
    size_t cap;                     /* immutable: this shard's share of max_cached */
};

struct blz__stack_pool {
    struct pool_shard shards[POOL_SHARDS];
    _Atomic size_t mapped;            /* stacks mapped, out or cached (relaxed statistic) */
    size_t max_cached;                /* immutable: the cache bound */
    size_t size;                      /* immutable: usable bytes per stack, a page multiple */
    size_t guard;                     /* immutable: guard bytes below each stack (one page) */
    enum blz__stack_guard guard_kind; /* immutable: MPROTECT or MADVISE, never AUTO */
};

/* Shards are handed to threads round-robin, once per thread. */
static _Atomic unsigned next_shard;
/* 0 until the thread's first pool call. initial-exec: a plain %fs/tpidr load,
 * no __tls_get_addr call, in the shared library too. */
static _Thread_local unsigned tl_shard_plus_one __attribute__((tls_model("initial-exec")));

/* The calling thread's shard index. Out of line: it reads a thread-local, and
 * callers may run on fibers (see the thread-local rule in fiber.c). */
static __attribute__((noinline)) unsigned
my_shard(void)
{
    unsigned s = tl_shard_plus_one;
    if (s == 0) {
        s = (blz__fetch_add(&next_shard, 1, RELAXED) % POOL_SHARDS) + 1;
        tl_shard_plus_one = s;
    }
    return s - 1;
}

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

    /* The shards want cache-line alignment, more than malloc promises. */
    void *raw = blz__malloc(sizeof(blz__stack_pool) + BLZ_CACHELINE);
    if (!raw) {
        return -ENOMEM;
    }
    size_t skew = (uintptr_t) raw & (BLZ_CACHELINE - 1);
    blz__stack_pool *pool = (void *) ((char *) raw + (BLZ_CACHELINE - skew));
    /* malloc aligns raw to 8 at least, so the pool starts 8 to 64 bytes in:
     * the word just below it is ours, and keeps what blz__free needs. */
    ((void **) pool)[-1] = raw;
    for (int i = 0; i < POOL_SHARDS; i++) {
        if (pthread_mutex_init(&pool->shards[i].lock, NULL) != 0) {
            while (i-- > 0) {
                (void) pthread_mutex_destroy(&pool->shards[i].lock);
            }
            blz__free(raw);
            return -ENOMEM;
        }
        pool->shards[i].free_list = NULL;
        pool->shards[i].nfree = 0;
    }
    pool->max_cached = o.max_cached ? o.max_cached : DEFAULT_MAX_CACHED;
    for (size_t i = 0; i < POOL_SHARDS; i++) {
        pool->shards[i].cap =
            pool->max_cached / POOL_SHARDS + (i < pool->max_cached % POOL_SHARDS ? 1 : 0);
    }
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
    for (int i = 0; i < POOL_SHARDS; i++) {
        struct cached_stack *c = pool->shards[i].free_list;
        while (c) {
            struct cached_stack *next = c->next;
            unmap_stack(pool, (char *) (c + 1) - pool->size);
            c = next;
        }
        (void) pthread_mutex_destroy(&pool->shards[i].lock);
    }
    blz__free(((void **) pool)[-1]);
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

/* Locks a shard: always when `wait`, else only if it is free (a busy shard is
 * most likely in use by its own thread, and another one will do). */
static bool
shard_lock(struct pool_shard *sh, bool wait)
{
    if (wait) {
        (void) pthread_mutex_lock(&sh->lock);
        return true;
    }
    return pthread_mutex_trylock(&sh->lock) == 0;
}

/* Pops a cached stack from a shard, or NULL. */
static struct cached_stack *
shard_pop(struct pool_shard *sh, bool wait)
{
    if (!shard_lock(sh, wait)) {
        return NULL;
    }
    struct cached_stack *c = sh->free_list;
    if (c) {
        sh->free_list = c->next;
        sh->nfree--;
    }
    (void) pthread_mutex_unlock(&sh->lock);
    return c;
}

/* Pushes c onto a shard if it has room; returns whether it did. */
static bool
shard_push(struct pool_shard *sh, struct cached_stack *c, bool wait)
{
    if (!shard_lock(sh, wait)) {
        return false;
    }
    bool room = sh->nfree < sh->cap;
    if (room) {
        c->next = sh->free_list;
        sh->free_list = c;
        sh->nfree++;
    }
    (void) pthread_mutex_unlock(&sh->lock);
    return room;
}

int
blz__stack_take(blz__stack_pool *pool, void **lo, size_t *size)
{
    *size = pool->size;
    unsigned mine = my_shard();
    struct cached_stack *c = shard_pop(&pool->shards[mine], true);
    /* Then the other shards: stacks freed on other threads end up there. */
    for (unsigned i = 1; !c && i < POOL_SHARDS; i++) {
        c = shard_pop(&pool->shards[(mine + i) % POOL_SHARDS], false);
    }
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
    unsigned mine = my_shard();
    if (shard_push(&pool->shards[mine], c, true)) {
        return;
    }
    for (unsigned i = 1; i < POOL_SHARDS; i++) {
        if (shard_push(&pool->shards[(mine + i) % POOL_SHARDS], c, false)) {
            return;
        }
    }
    unmap_stack(pool, lo); /* the cache is full (or every other shard was busy) */
}
