/*
 * Internal: copying an item whose size is known only at run time. The common
 * sizes get a fixed-size memcpy the compiler turns into a move or two; the
 * rest call memcpy.
 */
#ifndef BLZ_CHAN_COPY_H
#define BLZ_CHAN_COPY_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* Copies an item of 4, 8 or 16 bytes with a move or two; false (nothing
 * copied) for any other size. */
static inline bool
copy_small(void *dst, const void *src, size_t n)
{
    if (n == 8) {
        memcpy(dst, src, 8);
    } else if (n == 4) {
        memcpy(dst, src, 4);
    } else if (n == 16) {
#if defined(__GNUC__)
        /* Inlined across files (link-time optimisation) into a caller whose
         * items are 8 bytes, this branch would make GCC warn of a 16-byte
         * write into that caller's 8-byte variable, on a path the caller never
         * takes. Hiding where `dst` points costs nothing and ends that. */
        __asm__("" : "+r"(dst));
#endif
        memcpy(dst, src, 16);
    } else {
        return false;
    }
    return true;
}

static inline void
copy_item(void *dst, const void *src, size_t n)
{
    if (!copy_small(dst, src, n)) {
        memcpy(dst, src, n);
    }
}

#endif
