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
 *   goes to the blocking pool (close may flush to a network file system),
 *   and runs inline only on threads that may block anyway.
 */
#include "core/alloc.h"
#include "core/atomic.h"
#include "fs/fs_int.h"
#include "rt/current.h"

#include <stdint.h>

#define FILE_CLOSED 1u
#define FILE_REF    2u

void
blz__file_init(blz_file *f, int fd)
{
    atomic_init(&f->word, FILE_REF);
    atomic_init(&f->no_nowait, 0u);
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

/* Close jobs queued and not yet run, for tests. Relaxed: a statistic. */
static _Atomic uint64_t pending_closes;

uint64_t
blz__fs_pending_closes(void)
{
    return blz__load(&pending_closes, RELAXED);
}

static void *
close_job(void *arg)
{
    (void) blz__fs_close_fd((int) (intptr_t) arg); /* the fd travels in the pointer */
    blz__fetch_sub(&pending_closes, 1u, RELAXED);
    return NULL;
}

/* Aborted before it ran (runtime free): the descriptor must be closed anyway. */
static void
close_job_aborted(void *arg)
{
    (void) close_job(arg);
}

void
blz__fs_close_background(int fd)
{
    blz_runtime *rt = blz__rt_current();
    if (rt) {
        blz__fetch_add(&pending_closes, 1u, RELAXED);
        void *arg = (void *) (intptr_t) fd; // NOLINT(performance-no-int-to-ptr): a small int
        if (blz__spawn_blocking_owned(rt, close_job, close_job_aborted, arg) == 0) {
            return;
        }
        blz__fetch_sub(&pending_closes, 1u, RELAXED);
    }
    /* No runtime (a plain thread, or a runtime being freed): blocking is fine. */
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
        return -EBADF;
    }
    uint32_t w = blz__load(&file->word, RELAXED);
    return (w & FILE_CLOSED) ? -EBADF : file->fd;
}
