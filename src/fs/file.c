/*
 * blz_file: a descriptor shared by its owner and the operations in flight.
 *
 * Invariants:
 * - `word` = 2 * references + FILE_CLOSED. The owner holds one reference
 *   from open until close; every op holds one from start to free. No
 *   reference is taken once FILE_CLOSED is set, so after close the count
 *   only falls, and whoever drops it to zero closes `fd` and frees the struct.
 * - `fd` is written once, before the struct is published to anyone.
 * - The final close(2) never runs on a worker thread inside a runtime: it
 *   becomes a CLOSE op on the ring or the blocking pool (close may flush to
 *   a network file system), and runs inline only on threads that may block
 *   anyway.
 */
#include "core/alloc.h"
#include "core/atomic.h"
#include "fs/fs_int.h"
#include "rt/current.h"

#include <stdint.h>
#include <string.h>

#define FILE_CLOSED 1u
#define FILE_REF    2u

/* Bits of `positional`: whether each direction was asked, and the answer. */
#define POS_READ_KNOWN  1u
#define POS_READ        2u
#define POS_WRITE_KNOWN 4u
#define POS_WRITE       8u

void
blz__file_init(blz_file *f, int fd)
{
    atomic_init(&f->word, FILE_REF);
    atomic_init(&f->no_nowait, 0u);
    atomic_init(&f->positional, 0u);
    f->fd = fd;
}

bool
blz__file_acquire(blz_file *f)
{
    uint32_t w = blz__load(&f->word, RELAXED);
    do {
        if (w & FILE_CLOSED) {
            return false;
        }
        /* Relaxed: the caller already holds the owner's reference (it is
         * using the handle), so the struct and fd are visible to it. */
    } while (!blz__cas_weak(&f->word, &w, w + FILE_REF, RELAXED, RELAXED));
    return true;
}

bool
blz__file_positional(blz_file *f, bool write)
{
    uint32_t known = write ? POS_WRITE_KNOWN : POS_READ_KNOWN;
    uint32_t yes = write ? POS_WRITE : POS_READ;
    uint32_t s = blz__load(&f->positional, RELAXED);
    if (!(s & known)) {
        s = known | (blz__fs_fd_positional(f->fd, write) ? yes : 0u);
        /* A cache: threads that race to fill it find the same answer. */
        blz__fetch_or(&f->positional, s, RELAXED);
    }
    return (s & yes) != 0;
}

void
blz__fs_close_background(int fd)
{
    blz_runtime *rt = blz__rt_current();
    if (rt) {
        /* The one close there is: op.c puts it on the ring or the pool, and
         * runs it even if the runtime is freed before it started. */
        blz__fs_call c;
        memset(&c, 0, sizeof c);
        c.kind = BLZ__FS_CLOSE;
        c.fd = fd;
        blz__fs_op *op;
        if (blz__fs_op_start(rt, &c, NULL, &op) == 0) {
            blz__fs_op_abandon(op); /* nobody waits: the op frees itself once closed */
            return;
        }
    }
    /* No runtime (a plain thread, a runtime being freed), or no memory for
     * the op: blocking is the lesser evil. */
    (void) blz__fs_close_fd(fd);
}

void
blz__file_release(blz_file *f, bool may_block)
{
    /* Acq_rel pairs with the other releases: the last one sees every use. */
    uint32_t prev = blz__fetch_sub(&f->word, FILE_REF, ACQ_REL);
    if (prev == (FILE_REF | FILE_CLOSED)) {
        int fd = f->fd;
        blz__free(f);
        if (may_block) {
            (void) blz__fs_close_fd(fd);
        } else {
            blz__fs_close_background(fd);
        }
    }
}

void
blz__file_close_unobserved(blz_file *f)
{
    int fd = -1;
    if (blz__file_close_begin(f, &fd) == 1) {
        blz__fs_close_background(fd);
    }
}

int
blz__file_close_begin(blz_file *f, int *fd)
{
    uint32_t w = blz__load(&f->word, RELAXED);
    do {
        if (w & FILE_CLOSED) {
            return -EBADF;
        }
    } while (!blz__cas_weak(&f->word, &w, w | FILE_CLOSED, RELAXED, RELAXED));
    /* The owner's reference; acq_rel as in blz__file_release. */
    uint32_t prev = blz__fetch_sub(&f->word, FILE_REF, ACQ_REL);
    if (prev == (FILE_REF | FILE_CLOSED)) {
        *fd = f->fd;
        blz__free(f);
        return 1;
    }
    return 0;
}

int
blz_file_fd(const blz_file *file)
{
    if (!file) {
        return -EINVAL;
    }
    uint32_t w = blz__load(&file->word, RELAXED);
    return (w & FILE_CLOSED) ? -EBADF : file->fd;
}

int
blz_file_from_fd(int fd, blz_file **out)
{
    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    int rc = blz__fs_fd_check(fd);
    if (rc < 0) {
        return rc;
    }
    blz_file *f = blz__malloc(sizeof *f);
    if (!f) {
        return -ENOMEM;
    }
    blz__file_init(f, fd);
    *out = f;
    return 0;
}
