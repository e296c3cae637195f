/*
 * bench/fs.c — file rows, on the backend $BLZ_BACKEND picks (io_uring: reads
 * and writes on the ring; epoll: the blocking pool). Run it once per backend
 * to compare the two paths. Files live in a scratch directory under /tmp.
 *
 *   fs_pread_4k_cached    4 KiB pread at random offsets of a cached 64 MiB
 *                         file, from a fiber (the page-cache fast path:
 *                         preadv2 RWF_NOWAIT, no hop)
 *   fs_read_4k_cached     4 KiB reads at the position of the same file (one
 *                         hop each: the ring or the pool)
 *   fs_write_1m           1 MiB appended per op, no sync (ns per MiB)
 *   fs_open_close         open and close an existing file
 *   fs_metadata           stat a path
 *
 *     bench_fs [--json] [--runs N] [--warmups N] [row ...]
 */
#include "blitzio/fs.h"

#include "bench.h"

#include <unistd.h>

#define BIG      (64u << 20)
#define SMALL_IO 4096u
#define OPS_IO   2000
#define OPS_META 2000
#define OPS_W    64

static blz_runtime *rt;
static char dir[64];
static char big_path[128];
static char out_path[128];

static void
die(const char *what, int rc)
{
    fprintf(stderr, "bench_fs: %s: %s\n", what, blz_strerror(rc));
    exit(1);
}

static void *
pread_body(void *arg)
{
    bench_run *r = arg;
    blz_file *f = NULL;
    int rc = blz_file_open(big_path, NULL, &f);
    if (rc < 0) {
        die("open", rc);
    }
    char buf[SMALL_IO];
    uint64_t x = 88172645463325252ull;
    r->ops = OPS_IO;
    bench_start(r);
    for (int i = 0; i < OPS_IO; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t off = (x % (BIG / SMALL_IO)) * SMALL_IO;
        if (blz_file_pread(f, buf, sizeof buf, off) != (ssize_t) sizeof buf) {
            die("pread", -EIO);
        }
    }
    bench_stop(r);
    blz_file_close(f);
    return NULL;
}

static void *
read_body(void *arg)
{
    bench_run *r = arg;
    blz_file *f = NULL;
    int rc = blz_file_open(big_path, NULL, &f);
    if (rc < 0) {
        die("open", rc);
    }
    char buf[SMALL_IO];
    r->ops = OPS_IO;
    bench_start(r);
    for (int i = 0; i < OPS_IO; i++) {
        if (blz_file_read(f, buf, sizeof buf) != (ssize_t) sizeof buf) {
            die("read", -EIO);
        }
    }
    bench_stop(r);
    blz_file_close(f);
    return NULL;
}

static void *
write_body(void *arg)
{
    bench_run *r = arg;
    static unsigned char chunk[1u << 20];
    memset(chunk, 'w', sizeof chunk);
    blz_file *f = NULL;
    int rc = blz_file_create(out_path, &f);
    if (rc < 0) {
        die("create", rc);
    }
    r->ops = OPS_W;
    bench_start(r);
    for (int i = 0; i < OPS_W; i++) {
        rc = blz_file_write_all(f, chunk, sizeof chunk);
        if (rc < 0) {
            die("write", rc);
        }
    }
    bench_stop(r);
    blz_file_close(f);
    return NULL;
}

static void *
open_close_body(void *arg)
{
    bench_run *r = arg;
    r->ops = OPS_META;
    bench_start(r);
    for (int i = 0; i < OPS_META; i++) {
        blz_file *f = NULL;
        int rc = blz_file_open(big_path, NULL, &f);
        if (rc < 0) {
            die("open", rc);
        }
        blz_file_close(f);
    }
    bench_stop(r);
    return NULL;
}

static void *
metadata_body(void *arg)
{
    bench_run *r = arg;
    blz_metadata md;
    r->ops = OPS_META;
    bench_start(r);
    for (int i = 0; i < OPS_META; i++) {
        int rc = blz_fs_metadata(big_path, &md);
        if (rc < 0) {
            die("metadata", rc);
        }
    }
    bench_stop(r);
    return NULL;
}

/* A row's body, passed through bench_row's object pointer. */
typedef struct body_ref {
    blz_task_fn fn;
} body_ref;

static void
on_rt(bench_run *r)
{
    const body_ref *b = r->arg;
    if (blz_runtime_block_on(rt, b->fn, r, NULL) < 0) {
        abort();
    }
}

static void *
setup_body(void *arg)
{
    (void) arg;
    unsigned char *data = malloc(BIG);
    if (!data) {
        die("malloc", -ENOMEM);
    }
    for (size_t i = 0; i < BIG; i++) {
        data[i] = (unsigned char) (i * 131u);
    }
    int rc = blz_fs_write_file(big_path, data, BIG);
    if (rc < 0) {
        die("write_file", rc);
    }
    free(data);
    /* Pull it into the page cache. */
    void *all = NULL;
    rc = blz_fs_read_file(big_path, &all, NULL);
    if (rc < 0) {
        die("read_file", rc);
    }
    blz_fs_free_buf(all);
    return NULL;
}

static void
run_rows(void)
{
    static const body_ref pread_ref = {pread_body}, read_ref = {read_body},
                          write_ref = {write_body}, open_ref = {open_close_body},
                          meta_ref = {metadata_body};
    bench_row("fs_pread_4k_cached", on_rt, (void *) &pread_ref);
    bench_row("fs_read_4k_cached", on_rt, (void *) &read_ref);
    bench_row("fs_write_1m", on_rt, (void *) &write_ref);
    bench_row("fs_open_close", on_rt, (void *) &open_ref);
    bench_row("fs_metadata", on_rt, (void *) &meta_ref);
}

int
main(int argc, char **argv)
{
    bench_init(argc, argv);
    if (bench_list_) {
        run_rows(); /* prints the names; no files, no runtime */
        return 0;
    }
    strcpy(dir, "/tmp/blz_bench_fs_XXXXXX");
    if (!mkdtemp(dir)) {
        die("mkdtemp", -errno);
    }
    snprintf(big_path, sizeof big_path, "%s/big", dir);
    snprintf(out_path, sizeof out_path, "%s/out", dir);
    int rc = blz_runtime_new(NULL, &rt);
    if (rc < 0) {
        die("runtime", rc);
    }
    if (!bench_json_) {
        printf("# backend: %s\n", blz_runtime_backend(rt));
    }
    if (blz_runtime_block_on(rt, setup_body, NULL, NULL) < 0) {
        abort();
    }
    run_rows();
    blz_runtime_free(rt);
    (void) blz_fs_remove_dir_all(dir); /* outside the runtime: runs inline */
    return 0;
}
