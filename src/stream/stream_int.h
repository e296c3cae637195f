/*
 * Internal to src/stream: what the stream helpers (stream.c) and the
 * buffered reader and writer (buffered.c) share.
 */
#ifndef BLZ_STREAM_INT_H
#define BLZ_STREAM_INT_H

#include <errno.h>
#include <stddef.h>

/* The count `res` of a read or write of `asked` bytes, or -EIO when it
 * claims to have moved more: a broken reader or writer, whose count must
 * not move a loop past its buffer. */
static inline int
blz__stream_count(int res, size_t asked)
{
    return res > 0 && (size_t) res > asked ? -EIO : res;
}

#endif
