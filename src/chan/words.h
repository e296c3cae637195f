/*
 * Internal: copying an item into or out of storage that a sequence lock
 * guards. Readers may overlap a writer, so every access is a relaxed atomic
 * on an 8-byte word (never a plain memcpy, which would be a data race); the
 * sequence stamps around the copy tell a reader whether what it got is whole.
 */
#ifndef BLZ_CHAN_WORDS_H
#define BLZ_CHAN_WORDS_H

#include "core/atomic.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef _Atomic(uint64_t) blz__word;

/* Words needed for n bytes. */
static inline size_t
words_for(size_t n)
{
    return (n + 7) / 8;
}

static inline void
words_store(blz__word *dst, const void *src, size_t n)
{
    if (n == 8) {
        /* The common one-word item: no loop, no tail. */
        uint64_t v;
        memcpy(&v, src, 8);
        blz__store(&dst[0], v, RELAXED);
        return;
    }
    const unsigned char *p = src;
    size_t full = n / 8;
    for (size_t i = 0; i < full; i++) {
        uint64_t v;
        memcpy(&v, p + 8 * i, 8);
        blz__store(&dst[i], v, RELAXED);
    }
    size_t rem = n % 8;
    if (rem) {
        uint64_t v = 0;
        memcpy(&v, p + 8 * full, rem);
        blz__store(&dst[full], v, RELAXED);
    }
}

static inline void
words_load(void *dst, blz__word *src, size_t n)
{
    if (n == 8) {
        uint64_t v = blz__load(&src[0], RELAXED);
        memcpy(dst, &v, 8);
        return;
    }
    unsigned char *p = dst;
    size_t full = n / 8;
    for (size_t i = 0; i < full; i++) {
        uint64_t v = blz__load(&src[i], RELAXED);
        memcpy(p + 8 * i, &v, 8);
    }
    size_t rem = n % 8;
    if (rem) {
        uint64_t v = blz__load(&src[full], RELAXED);
        memcpy(p + 8 * full, &v, rem);
    }
}

#endif
