/*
 * tests/fs_common.h — helpers shared by the fs_* tests: a runtime on the
 * backend ctest asked for, a scratch directory under /tmp, a byte pattern
 * checkable at any offset, and the leak checks every fs test ends with.
 */
#ifndef BLZ_TEST_FS_COMMON_H
#define BLZ_TEST_FS_COMMON_H

#include "blitzio.h"
#include "blitzio/fs.h"
#include "fs/fs_int.h"
#include "harness.h"
#include "io/backend.h"
#include "io/driver.h"
#include "rt/current.h"
#include "rt_util.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Runs fn(arg) as a fiber on a fresh runtime, frees it, checks that no fs
 * operation outlived it. Returns fn's value. */
static inline void *
fs_run(unsigned workers, blz_task_fn fn, void *arg)
{
    void *result = backend_run(workers, fn, arg);
    CHECK_EQ(blz__fs_live_ops(), 0);
    return result;
}

/* Runs fn(arg) as a fiber on a fresh runtime, as fs_run, and checks that file
 * calls went to the ring exactly when the backend is io_uring. */
static inline void
fs_run_checking_ring(blz_task_fn fn, void *arg)
{
    blz_runtime *rt = backend_runtime(2);
    bool ring = strcmp(blz_runtime_backend(rt), "io_uring") == 0;
    uint64_t ring_before = blz__fs_ring_ops();
    CHECK_OK(blz_runtime_block_on(rt, fn, arg, NULL));
    blz_runtime_free(rt);
    CHECK_EQ(blz__fs_live_ops(), 0);
    if (ring) {
        CHECK_GT(blz__fs_ring_ops(), ring_before);
    } else {
        CHECK_EQ(blz__fs_ring_ops(), ring_before);
    }
}

/* Waits (in a fiber) until every op, background closes included, finished;
 * bounded at 20 s. */
static inline void
fs_wait_no_ops(void)
{
    for (int i = 0; i < 20000 && blz__fs_live_ops() != 0; i++) {
        blz_sleep(blz_ms(1));
    }
    CHECK_EQ(blz__fs_live_ops(), 0);
}

/* ---- scratch directory ------------------------------------------------------- */

typedef struct fs_tmp {
    char dir[64]; /* /tmp/blz_fs_XXXXXX */
} fs_tmp;

static inline void fs_tmp_remove(fs_tmp *t);

static inline void
fs_tmp_remove_cb(void *t)
{
    fs_tmp_remove(t);
}

/* Makes the scratch directory; it goes however the test ends (a check that fails, a
 * skip because the backend asked for is missing), or with fs_tmp_remove. */
static inline void
fs_tmp_make(fs_tmp *t)
{
    strcpy(t->dir, "/tmp/blz_fs_XXXXXX");
    CHECK(mkdtemp(t->dir) != NULL);
    blz_test_cleanup_push(fs_tmp_remove_cb, t);
}

#define FS_PATH_MAX 512

/* t->dir "/" name, written into `buf` (FS_PATH_MAX bytes). */
static inline const char *
fs_path_(const fs_tmp *t, const char *name, char *buf)
{
    snprintf(buf, FS_PATH_MAX, "%s/%s", t->dir, name);
    return buf;
}

/* t->dir "/" name, in storage that lives as long as the enclosing block. */
#define fs_path(t, name) fs_path_((t), (name), (char[FS_PATH_MAX]){0})

static inline int
fs_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    return remove(path);
}

/* Removes the scratch tree with libc calls only (not the code under test). */
static inline void
fs_tmp_remove(fs_tmp *t)
{
    blz_test_cleanup_pop(fs_tmp_remove_cb, t);
    (void) nftw(t->dir, fs_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static inline bool
fs_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* ---- data pattern ----------------------------------------------------------------- */

/* Byte `i` of the pattern of stream `seed`: any offset can be checked. */
static inline unsigned char
fs_pattern(uint64_t seed, uint64_t i)
{
    uint64_t x = (i >> 3) * 0x9E3779B97F4A7C15ull + seed;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 32;
    return (unsigned char) (x >> ((i & 7) * 8));
}

/* The 8 pattern bytes of word `w` (bytes 8w .. 8w+7) of stream `seed`. */
static inline uint64_t
fs_pattern_word(uint64_t seed, uint64_t w)
{
    uint64_t x = w * 0x9E3779B97F4A7C15ull + seed;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 32;
    return x;
}

static inline void
fs_fill(uint64_t seed, uint64_t off, unsigned char *buf, size_t n)
{
    size_t i = 0;
    for (; i < n && ((off + i) & 7) != 0; i++) {
        buf[i] = fs_pattern(seed, off + i);
    }
    for (; i + 8 <= n; i += 8) {
        uint64_t x = fs_pattern_word(seed, (off + i) >> 3);
        unsigned char b[8];
        for (int k = 0; k < 8; k++) {
            b[k] = (unsigned char) (x >> (k * 8));
        }
        memcpy(buf + i, b, 8);
    }
    for (; i < n; i++) {
        buf[i] = fs_pattern(seed, off + i);
    }
}

/* A streaming 64-bit hash over 8-byte words: the result depends only on the
 * bytes fed, not on how they were split into calls. */
typedef struct fs_hasher {
    uint64_t h;
    unsigned char pend[8];
    unsigned npend;
} fs_hasher;

#define FS_HASHER_INIT          \
 {                              \
  0xcbf29ce484222325ull, {0}, 0 \
 }

static inline void
fs_hash_word(fs_hasher *s, const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    s->h = (s->h ^ w) * 0x100000001b3ull;
    s->h ^= s->h >> 31;
}

static inline void
fs_hash(fs_hasher *s, const unsigned char *p, size_t n)
{
    while (n > 0 && s->npend > 0) {
        s->pend[s->npend++] = *p++;
        n--;
        if (s->npend == 8) {
            fs_hash_word(s, s->pend);
            s->npend = 0;
        }
    }
    for (; n >= 8; n -= 8, p += 8) {
        fs_hash_word(s, p);
    }
    while (n > 0) {
        s->pend[s->npend++] = *p++;
        n--;
    }
}

static inline uint64_t
fs_hash_end(fs_hasher *s)
{
    for (unsigned i = 0; i < s->npend; i++) {
        s->h = (s->h ^ s->pend[i]) * 0x100000001b3ull;
    }
    s->npend = 0;
    return s->h;
}

/* ---- the large-file round trip (fs_large.c, stress/fs_1g.c) --------------------------- */

typedef struct fs_large_args {
    const char *path;
    uint64_t size;   /* bytes to write and read back */
    size_t chunk;    /* bytes per call */
    bool positional; /* pwrite/pread at offsets instead of write/read */
} fs_large_args;

/* Writes `size` pattern bytes, syncs, reads them back through a fresh open,
 * and compares checksums. Runs in a fiber (or on a plain thread). */
static inline void *
fs_large_roundtrip(void *arg)
{
    fs_large_args *a = arg;
    unsigned char *buf = malloc(a->chunk);
    CHECK(buf != NULL);
    blz_file *f = NULL;
    CHECK_OK(blz_file_create(a->path, &f));
    fs_hasher h_out = FS_HASHER_INIT;
    for (uint64_t off = 0; off < a->size;) {
        size_t n = a->size - off < a->chunk ? (size_t) (a->size - off) : a->chunk;
        fs_fill(7, off, buf, n);
        fs_hash(&h_out, buf, n);
        if (a->positional) {
            size_t done = 0;
            while (done < n) {
                ssize_t w = blz_file_pwrite(f, buf + done, n - done, off + done);
                CHECK_GT(w, 0);
                done += (size_t) w;
            }
        } else {
            CHECK_OK(blz_file_write_all(f, buf, n));
        }
        off += n;
    }
    CHECK_OK(blz_file_sync_data(f));
    blz_metadata md;
    CHECK_OK(blz_file_metadata(f, &md));
    CHECK_EQ(md.size, a->size);
    CHECK_OK(blz_file_close(f));

    blz_open_options ro = {.read = true};
    CHECK_OK(blz_file_open(a->path, &ro, &f));
    fs_hasher h_in = FS_HASHER_INIT;
    uint64_t total = 0;
    for (;;) {
        ssize_t r = a->positional ? blz_file_pread(f, buf, a->chunk, total)
                                  : blz_file_read(f, buf, a->chunk);
        CHECK_OK(r);
        if (r == 0) {
            break;
        }
        fs_hash(&h_in, buf, (size_t) r);
        total += (uint64_t) r;
    }
    CHECK_EQ(total, a->size);
    CHECK_EQ(fs_hash_end(&h_in), fs_hash_end(&h_out));
    CHECK_OK(blz_file_close(f));
    free(buf);
    return NULL;
}

/* Size from the environment variable `env` in MiB, else `dflt` bytes. */
static inline uint64_t
fs_size_from_env(const char *env, uint64_t dflt)
{
    const char *s = getenv(env);
    if (s && *s) {
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (*end == '\0' && v > 0) {
            return (uint64_t) v << 20;
        }
    }
    return dflt;
}

#endif
