/*
 * tests/fs_vectored.c — scatter/gather file I/O (blz_file_readv, _preadv,
 * _writev, _pwritev and the try tiers): data lands in order across the
 * vectors (zero-length ones included), positions move or stay, short reads
 * at the end of the file fill only a prefix, transfers larger than
 * BLZ_FS_MAX_CHUNK split inside a vector, argument errors, and the same
 * body on the ring, on the blocking pool and with no runtime at all; a
 * vectored read dropped in flight never writes to the freed vectors.
 *
 * Run once per backend (epoll: the blocking pool; io_uring: the ring).
 */
#include "fs_common.h"

/* Fills `n` bytes at `p` with `c`. */
static void
fill(char *p, size_t n, char c)
{
    memset(p, c, n);
}

static void *
vectored_body(void *arg)
{
    fs_tmp *t = arg;
    blz_open_options rw = {.read = true, .write = true, .create = true, .truncate = true};
    blz_file *f = NULL;
    CHECK_OK(blz_file_open(fs_path(t, "v"), &rw, &f));

    /* Gather: three pieces and an empty one, in order, as one write. */
    blz_iovec out[4] = {{"hello", 5}, {NULL, 0}, {", ", 2}, {"world", 5}};
    CHECK_EQ(blz_file_writev(f, out, 4), 12);
    uint64_t pos = 0;
    CHECK_OK(blz_file_seek(f, 0, BLZ_SEEK_CUR, &pos));
    CHECK_EQ(pos, 12);

    /* Scatter at the position, split differently from the write. */
    CHECK_OK(blz_file_seek(f, 0, BLZ_SEEK_SET, NULL));
    char a[3], b[1], c[20];
    fill(c, sizeof c, '#');
    blz_iovec in[4] = {{a, sizeof a}, {NULL, 0}, {b, sizeof b}, {c, sizeof c}};
    CHECK_EQ(blz_file_readv(f, in, 4), 12); /* short: the file ends */
    CHECK(memcmp(a, "hel", 3) == 0);
    CHECK_EQ(b[0], 'l');
    CHECK(memcmp(c, "o, world", 8) == 0);
    CHECK_EQ(c[8], '#'); /* nothing past the count */
    CHECK_OK(blz_file_seek(f, 0, BLZ_SEEK_CUR, &pos));
    CHECK_EQ(pos, 12);
    CHECK_EQ(blz_file_readv(f, in, 4), 0); /* end of file */

    /* At an offset: the position does not move. */
    blz_iovec patch[2] = {{"W", 1}, {"ORLD", 4}};
    CHECK_EQ(blz_file_pwritev(f, patch, 2, 7), 5);
    char x[4], y[4];
    blz_iovec two[2] = {{x, sizeof x}, {y, sizeof y}};
    CHECK_EQ(blz_file_preadv(f, two, 2, 5), 7);
    CHECK(memcmp(x, ", WO", 4) == 0);
    CHECK(memcmp(y, "RLD", 3) == 0);
    CHECK_EQ(blz_file_preadv(f, two, 2, 12), 0);   /* at the end */
    CHECK_EQ(blz_file_preadv(f, two, 2, 1000), 0); /* past it */
    CHECK_OK(blz_file_seek(f, 0, BLZ_SEEK_CUR, &pos));
    CHECK_EQ(pos, 12);

    /* Vectors that are all empty move nothing. */
    blz_iovec empty[2] = {{NULL, 0}, {x, 0}};
    CHECK_EQ(blz_file_writev(f, empty, 2), 0);
    CHECK_EQ(blz_file_preadv(f, empty, 2, 0), 0);

    /* Argument errors, before anything runs. */
    blz_iovec null_base[1] = {{NULL, 1}};
    blz_iovec huge[2] = {{x, (size_t) PTRDIFF_MAX}, {y, 2}};
    CHECK_EQ(blz_file_readv(NULL, in, 1), -EINVAL);
    CHECK_EQ(blz_file_readv(f, NULL, 1), -EINVAL);
    CHECK_EQ(blz_file_readv(f, in, 0), -EINVAL);
    CHECK_EQ(blz_file_readv(f, in, -1), -EINVAL);
    CHECK_EQ(blz_file_readv(f, in, BLZ_IOV_MAX + 1), -EINVAL);
    CHECK_EQ(blz_file_writev(f, null_base, 1), -EINVAL);
    CHECK_EQ(blz_file_writev(f, huge, 2), -EINVAL);
    CHECK_EQ(blz_file_preadv(f, two, 2, (uint64_t) INT64_MAX + 1), -EINVAL);
    CHECK_EQ(blz_file_pwritev(f, patch, 2, (uint64_t) INT64_MAX + 1), -EINVAL);
    CHECK_EQ(blz_file_try_preadv(f, two, 2, (uint64_t) INT64_MAX + 1), -EINVAL);
    CHECK_EQ(blz_file_try_readv(f, NULL, 1), -EINVAL);
    CHECK_OK(blz_file_seek(f, 0, BLZ_SEEK_CUR, &pos));
    CHECK_EQ(pos, 12); /* none of them moved it */
    CHECK_OK(blz_file_close(f));

    /* Direction errors: vectors read from write-only, written to read-only. */
    blz_open_options wo = {.write = true};
    CHECK_OK(blz_file_open(fs_path(t, "v"), &wo, &f));
    CHECK_EQ(blz_file_readv(f, two, 2), -EBADF);
    CHECK_EQ(blz_file_preadv(f, two, 2, 0), -EBADF);
    CHECK_OK(blz_file_close(f));
    CHECK_OK(blz_file_open(fs_path(t, "v"), NULL, &f));
    CHECK_EQ(blz_file_writev(f, patch, 2), -EBADF);
    CHECK_EQ(blz_file_pwritev(f, patch, 2, 0), -EBADF);
    CHECK_OK(blz_file_close(f));
    return NULL;
}

/* Vectors of awkward sizes adding up to more than one chunk: the transfer
 * splits inside a vector (a runtime moves at most BLZ_FS_MAX_CHUNK per call),
 * and calls that go on from where the last one stopped rebuild the file
 * exactly. */
#define BIG_PARTS 5

static const size_t big_sizes[BIG_PARTS] = {1, 1048573, 0, 1500007, 999983};

/* Drops the first `done` bytes from the vectors: `v` starts at the first
 * vector with bytes left. Returns how many vectors are left. */
static int
advance(blz_iovec *v, int n, size_t done, blz_iovec **first)
{
    int i = 0;
    while (i < n && done >= v[i].len) {
        done -= v[i].len;
        i++;
    }
    if (i < n) {
        v[i].base = (char *) v[i].base + done;
        v[i].len -= done;
    }
    *first = v + i;
    return n - i;
}

static void
big_vectors(unsigned char *mem, blz_iovec *v)
{
    size_t off = 0;
    for (int i = 0; i < BIG_PARTS; i++) {
        v[i].base = mem + off;
        v[i].len = big_sizes[i];
        off += big_sizes[i];
    }
}

static void *
big_body(void *arg)
{
    fs_tmp *t = arg;
    size_t total = 0;
    for (int i = 0; i < BIG_PARTS; i++) {
        total += big_sizes[i];
    }
    unsigned char *src = malloc(total);
    unsigned char *dst = malloc(total);
    CHECK(src != NULL && dst != NULL);
    fs_fill(11, 0, src, total);
    memset(dst, 0, total);
    bool in_rt = blz_runtime_current() != NULL;

    blz_file *f = NULL;
    blz_open_options rw = {.read = true, .write = true, .create = true, .truncate = true};
    CHECK_OK(blz_file_open(fs_path(t, "big"), &rw, &f));
    /* Write at the position, each call going on from where the last stopped. */
    size_t done = 0;
    int calls = 0;
    while (done < total) {
        blz_iovec v[BIG_PARTS];
        big_vectors(src, v);
        blz_iovec *first;
        int n = advance(v, BIG_PARTS, done, &first);
        ssize_t r = blz_file_writev(f, first, n);
        CHECK_GT(r, 0);
        if (in_rt) {
            CHECK_LE((size_t) r, BLZ_FS_MAX_CHUNK);
        }
        done += (size_t) r;
        CHECK_LT(++calls, 100);
    }
    if (in_rt) {
        CHECK_GE(calls, 2); /* the chunk bound split it */
    }

    /* Read it back at offsets, again in pieces. */
    done = 0;
    calls = 0;
    while (done < total) {
        blz_iovec v[BIG_PARTS];
        big_vectors(dst, v);
        blz_iovec *first;
        int n = advance(v, BIG_PARTS, done, &first);
        ssize_t r = blz_file_preadv(f, first, n, done);
        CHECK_GT(r, 0);
        done += (size_t) r;
        CHECK_LT(++calls, 100);
    }
    CHECK(memcmp(src, dst, total) == 0);
    CHECK_OK(blz_file_close(f));
    free(src);
    free(dst);
    return NULL;
}

BLZ_TEST(vectored_in_runtime)
{
    fs_tmp t;
    fs_tmp_make(&t);
    /* Vectored calls are plain reads and writes on the ring there. */
    fs_run_checking_ring(vectored_body, &t);
    fs_run_checking_ring(big_body, &t);
    fs_tmp_remove(&t);
}

/* The ring refuses reads and writes: they run on the blocking pool. */
static void *
pool_body(void *arg)
{
    struct blz__io_driver *d = blz__rt_io(blz__rt_current());
    blz__io_driver_refuse(d, BLZ__OP_READ_AT);
    blz__io_driver_refuse(d, BLZ__OP_WRITE_AT);
    vectored_body(arg);
    return big_body(arg);
}

BLZ_TEST(vectored_on_the_pool)
{
    fs_tmp t;
    fs_tmp_make(&t);
    fs_run(2, pool_body, &t);
    fs_tmp_remove(&t);
}

BLZ_TEST(vectored_no_runtime)
{
    fs_tmp t;
    fs_tmp_make(&t);
    CHECK_PTR_EQ(blz_runtime_current(), NULL);
    vectored_body(&t);
    big_body(&t);
    CHECK_EQ(blz__fs_live_ops(), 0); /* nothing went through an op */
    fs_tmp_remove(&t);
}

/* The try tier reads the page cache only, straight into the vectors. */
static void *
try_body(void *arg)
{
    fs_tmp *t = arg;
    const char *p = fs_path(t, "cached");
    CHECK_OK(blz_fs_write_file(p, "cached data", 11));
    blz_file *f = NULL;
    CHECK_OK(blz_file_open(p, NULL, &f));
    char a[2], b[8];
    blz_iovec v[2] = {{a, sizeof a}, {b, sizeof b}};
    ssize_t r = blz_file_try_preadv(f, v, 2, 7);
    if (r == -EOPNOTSUPP || r == -EAGAIN) {
        CHECK_OK(blz_file_close(f));
        return (void *) 1;
    }
    CHECK_EQ(r, 4);
    CHECK(memcmp(a, "da", 2) == 0 && memcmp(b, "ta", 2) == 0);
    CHECK_EQ(blz_file_try_readv(f, v, 2), 10);
    CHECK(memcmp(a, "ca", 2) == 0 && memcmp(b, "ched dat", 8) == 0);
    CHECK_EQ(blz_file_try_readv(f, v, 2), 1);
    CHECK_EQ(a[0], 'a');
    CHECK_EQ(blz_file_try_readv(f, v, 2), 0); /* end of file */
    CHECK_EQ(blz_file_try_readv(NULL, v, 2), -EINVAL);
    CHECK_OK(blz_file_close(f));
    return NULL;
}

BLZ_TEST(vectored_try_page_cache)
{
    fs_tmp t;
    fs_tmp_make(&t);
    void *skipped = fs_run(2, try_body, &t);
    fs_tmp_remove(&t);
    if (skipped) {
        SKIP("this file system cannot read without waiting (RWF_NOWAIT)");
    }
}

/* A vectored read dropped after one poll: the vectors and their buffers are
 * freed at once, and the op must never write to either (ASan would see it). */
static void *
drop_body(void *arg)
{
    fs_tmp *t = arg;
    const char *p = fs_path(t, "drop");
    size_t n = 4u << 20;
    unsigned char *data = malloc(n);
    CHECK(data != NULL);
    fs_fill(5, 0, data, n);
    CHECK_OK(blz_fs_write_file(p, data, n));
    free(data);
    blz_context cx = {blz_waker_noop()};
    for (int round = 0; round < 20; round++) {
        blz_file *f = NULL;
        CHECK_OK(blz_file_open(p, NULL, &f));
        blz_iovec *v = malloc(2 * sizeof *v);
        unsigned char *buf = malloc(BLZ_FS_MAX_CHUNK);
        CHECK(v != NULL && buf != NULL);
        v[0] = (blz_iovec){buf, BLZ_FS_MAX_CHUNK / 2};
        v[1] = (blz_iovec){buf + BLZ_FS_MAX_CHUNK / 2, BLZ_FS_MAX_CHUNK / 2};
        blz_fs_future rf;
        if (round % 2) {
            blz_file_readv_fut(f, v, 2, &rf);
        } else {
            blz_file_preadv_fut(f, v, 2, (uint64_t) round * 4096, &rf);
        }
        blz_poll st = blz_future_poll(&rf.base, &cx);
        blz_future_drop(&rf.base);
        if (st == BLZ_READY) {
            CHECK_GT(rf.base.result, 0); /* finished at once (a cached preadv) */
        }
        free(buf);
        free(v);
        CHECK_OK(blz_file_close(f));
    }
    fs_wait_no_ops();
    return NULL;
}

BLZ_TEST(vectored_read_dropped_in_flight)
{
    fs_tmp t;
    fs_tmp_make(&t);
    fs_run(2, drop_body, &t);
    fs_tmp_remove(&t);
}

/* A preadv inside a runtime moves at most BLZ_FS_MAX_CHUNK bytes in all, as
 * fs.h promises, even when the page cache holds everything asked for (the
 * RWF_NOWAIT fast path reads straight into the vectors). */
static void *
cached_bound_body(void *arg)
{
    fs_tmp *t = arg;
    const char *p = fs_path(t, "cached_big");
    size_t n = 3u << 20;
    unsigned char *data = malloc(n);
    unsigned char *got = malloc(2 * BLZ_FS_MAX_CHUNK);
    CHECK(data != NULL && got != NULL);
    fs_fill(9, 0, data, n);
    CHECK_OK(blz_fs_write_file(p, data, n)); /* now in the page cache */
    blz_file *f = NULL;
    CHECK_OK(blz_file_open(p, NULL, &f));
    blz_iovec v[2] = {{got, BLZ_FS_MAX_CHUNK}, {got + BLZ_FS_MAX_CHUNK, BLZ_FS_MAX_CHUNK}};
    for (int i = 0; i < 3; i++) {
        ssize_t r = blz_file_preadv(f, v, 2, 0);
        CHECK_GT(r, 0);
        CHECK_LE(r, (ssize_t) BLZ_FS_MAX_CHUNK);
        CHECK(memcmp(got, data, (size_t) r) == 0);
    }
    CHECK_OK(blz_file_close(f));
    free(got);
    free(data);
    return NULL;
}

BLZ_TEST(vectored_cached_preadv_bounded)
{
    fs_tmp t;
    fs_tmp_make(&t);
    fs_run(2, cached_bound_body, &t);
    fs_tmp_remove(&t);
}

BLZ_TEST(vectored_no_leaks)
{
    fs_tmp t;
    fs_tmp_make(&t);
    blz_test_counting_allocator_install();
    fs_run(2, vectored_body, &t);
    fs_run(2, big_body, &t);
    CHECK_EQ(blz_test_alloc_live(), 0);
    fs_tmp_remove(&t);
}
