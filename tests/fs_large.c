/*
 * tests/fs_large.c — volume and concurrency: a large file written and read
 * back by checksum (64 MiB by default; BLZ_FS_LARGE_MB=<n> changes it; the
 * 1 GiB run is tests/stress/fs_1g.c), at the position and at offsets; 100
 * concurrent fiber tasks each writing and reading back their own file; many
 * tasks writing disjoint ranges of one shared file.
 */
/* blz-test: timeout=120 */
#include "fs_common.h"

#define DEFAULT_LARGE (64ull << 20)

static void
large(bool positional, uint64_t size)
{
    fs_tmp t;
    fs_tmp_make(&t);
    fs_large_args a = {fs_path(&t, "large"), size, BLZ_FS_MAX_CHUNK, positional};
    fs_run(0, fs_large_roundtrip, &a);
    fs_tmp_remove(&t);
}

BLZ_TEST(large_file_sequential)
{
    large(false, fs_size_from_env("BLZ_FS_LARGE_MB", DEFAULT_LARGE));
}

BLZ_TEST(large_file_positional)
{
    /* Odd chunk sizes: every call crosses page and chunk boundaries. */
    fs_tmp t;
    fs_tmp_make(&t);
    fs_large_args a = {fs_path(&t, "large"),
                       fs_size_from_env("BLZ_FS_LARGE_MB", DEFAULT_LARGE) / 4 + 4099, 1000003,
                       true};
    fs_run(0, fs_large_roundtrip, &a);
    fs_tmp_remove(&t);
}

/* The same round trip outside any runtime (the inline path). */
BLZ_TEST(large_file_no_runtime)
{
    fs_tmp t;
    fs_tmp_make(&t);
    fs_large_args a = {fs_path(&t, "large"), 16ull << 20, 1u << 20, false};
    fs_large_roundtrip(&a);
    fs_tmp_remove(&t);
}

/* ---- 100 concurrent file tasks ------------------------------------------------------ */

enum { TASKS = 100 };

typedef struct task_arg {
    fs_tmp *t;
    int id;
} task_arg;

static void *
file_task(void *arg)
{
    task_arg *a = arg;
    char name[32];
    snprintf(name, sizeof name, "task_%03d", a->id);
    const char *p = fs_path(a->t, name);
    /* Sizes differ per task, from a few bytes to a few chunks' worth of calls. */
    size_t n = 1000 + (size_t) a->id * 2621;
    unsigned char *data = malloc(n);
    unsigned char *back = malloc(n);
    CHECK(data && back);
    fs_fill((uint64_t) a->id, 0, data, n);

    blz_open_options o = {.read = true, .write = true, .create_new = true};
    blz_file *f = NULL;
    CHECK_OK(blz_file_open(p, &o, &f));
    /* Write in pieces that yield in between, then read back in other pieces. */
    size_t piece = 1 + (size_t) a->id * 37;
    for (size_t off = 0; off < n; off += piece) {
        size_t k = n - off < piece ? n - off : piece;
        CHECK_OK(blz_file_write_all(f, data + off, k));
    }
    CHECK_OK(blz_file_sync_data(f));
    CHECK_OK(blz_file_seek(f, 0, BLZ_SEEK_SET, NULL));
    size_t got = 0;
    while (got < n) {
        ssize_t r = blz_file_read(f, back + got, n - got < 4096 ? n - got : 4096);
        CHECK_GT(r, 0);
        got += (size_t) r;
    }
    char extra;
    CHECK_EQ(blz_file_read(f, &extra, 1), 0);
    CHECK(memcmp(data, back, n) == 0);
    blz_metadata md;
    CHECK_OK(blz_file_metadata(f, &md));
    CHECK_EQ(md.size, n);
    CHECK_OK(blz_file_close(f));

    /* And through the whole-file helpers. */
    void *whole = NULL;
    size_t len = 0;
    CHECK_OK(blz_fs_read_file(p, &whole, &len));
    CHECK_EQ(len, n);
    CHECK(memcmp(whole, data, n) == 0);
    blz_fs_free_buf(whole);
    CHECK_OK(blz_fs_remove_file(p));
    free(data);
    free(back);
    return NULL;
}

static void *
many_tasks_body(void *arg)
{
    fs_tmp *t = arg;
    static task_arg args[TASKS];
    blz_join *js[TASKS];
    for (int i = 0; i < TASKS; i++) {
        args[i] = (task_arg){t, i};
        CHECK_OK(blz_spawn(file_task, &args[i], &js[i]));
    }
    CHECK_OK(blz_join_all(js, TASKS, NULL));
    return NULL;
}

BLZ_TEST(hundred_concurrent_tasks)
{
    fs_tmp t;
    fs_tmp_make(&t);
    fs_run(4, many_tasks_body, &t);
    fs_tmp_remove(&t);
}

/* ---- one file, many writers at disjoint offsets --------------------------------------- */

enum { WRITERS = 32, SLICE = 64 * 1024 };

typedef struct slice_arg {
    blz_file *f;
    int id;
} slice_arg;

static void *
slice_writer(void *arg)
{
    slice_arg *a = arg;
    unsigned char *buf = malloc(SLICE);
    uint64_t base = (uint64_t) a->id * SLICE;
    fs_fill(99, base, buf, SLICE);
    for (size_t off = 0; off < SLICE;) {
        ssize_t w = blz_file_pwrite(a->f, buf + off, SLICE - off, base + off);
        CHECK_GT(w, 0);
        off += (size_t) w;
    }
    /* Read another writer's slice while it may still be in flight: any byte
     * read is either zero (not yet written) or the right one. */
    uint64_t other = (uint64_t) ((a->id + 1) % WRITERS) * SLICE;
    ssize_t r = blz_file_pread(a->f, buf, SLICE, other);
    CHECK_OK(r);
    for (ssize_t i = 0; i < r; i++) {
        CHECK(buf[i] == 0 || buf[i] == fs_pattern(99, other + (uint64_t) i));
    }
    free(buf);
    return NULL;
}

static void *
shared_file_body(void *arg)
{
    fs_tmp *t = arg;
    blz_file *f = NULL;
    blz_open_options o = {.read = true, .write = true, .create = true, .truncate = true};
    CHECK_OK(blz_file_open(fs_path(t, "shared"), &o, &f));
    CHECK_OK(blz_file_set_len(f, (uint64_t) WRITERS * SLICE));
    static slice_arg args[WRITERS];
    blz_join *js[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        args[i] = (slice_arg){f, i};
        CHECK_OK(blz_spawn(slice_writer, &args[i], &js[i]));
    }
    CHECK_OK(blz_join_all(js, WRITERS, NULL));
    CHECK_OK(blz_file_close(f));
    void *buf = NULL;
    size_t len = 0;
    CHECK_OK(blz_fs_read_file(fs_path(t, "shared"), &buf, &len));
    CHECK_EQ(len, (size_t) WRITERS * SLICE);
    const unsigned char *b = buf;
    for (size_t i = 0; i < len; i++) {
        if (b[i] != fs_pattern(99, i)) {
            CHECK_EQ(i, (size_t) -1); /* report the first bad offset */
        }
    }
    blz_fs_free_buf(buf);
    return NULL;
}

BLZ_TEST(shared_file_disjoint_writers)
{
    fs_tmp t;
    fs_tmp_make(&t);
    fs_run(4, shared_file_body, &t);
    fs_tmp_remove(&t);
}
