/*
 * Internal: copying an item whose size is known only at run time. The common
 * sizes get a fixed-size memcpy the compiler turns into a move or two; the
 * rest call memcpy.
 */
#ifndef BLZ_CHAN_COPY_H
#define BLZ_CHAN_COPY_H

#include <stddef.h>
#include <string.h>

static inline void
copy_item(void *dst, const void *src, size_t n)
{
    if (n == 8) {
        memcpy(dst, src, 8);
    } else if (n == 4) {
        memcpy(dst, src, 4);
    } else if (n == 16) {
        memcpy(dst, src, 16);
    } else {
        memcpy(dst, src, n);
    }
}

#endif
