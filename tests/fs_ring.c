/*
 * tests/fs_ring.c — where open, sync, metadata and close run: on io_uring
 * they are completion ops of the ring (the driver's per-kind counters prove
 * it), on epoll, and on io_uring with those kinds refused (as on a kernel
 * without them), they run on the blocking pool. Both paths give the same
 * results and the same errors, and both survive futures dropped and tasks
 * aborted in the middle of an operation without leaking a descriptor or an
 * allocation (the harness checks descriptors; ASan checks that a dropped
 * operation never touches the caller's memory again).
 */
#include "fs_common.h"

#include <fcntl.h>
#include <sys/stat.h>

/* The op kinds this file is about. */
static const int ring_kinds[] = {BLZ__OP_OPENAT, BLZ__OP_FSYNC, BLZ__OP_STATX, BLZ__OP_CLOSE};
#define NKINDS (sizeof ring_kinds / sizeof ring_kinds[0])

typedef struct ring_count {
    uint64_t n[NKINDS];
} ring_count;

static struct blz__io_driver *
cur_driver(void)
{
    return blz__rt_io(blz__rt_current());
}

static ring_count
ring_count_now(void)
{
    ring_count c;
    for (size_t i = 0; i < NKINDS; i++) {
        c.n[i] = blz__io_driver_ops(cur_driver(), ring_kinds[i]);
    }
    return c;
}

/* Ring ops of kind index `i` since `before`. */
static uint64_t
ring_delta(const ring_count *before, size_t i)
{
    return blz__io_driver_ops(cur_driver(), ring_kinds[i]) - before->n[i];
}

/* True when this runtime runs every kind of ring_kinds on the ring. */
static bool
ring_runs_all(void)
{
    for (size_t i = 0; i < NKINDS; i++) {
        if (!blz__io_driver_supports(cur_driver(), ring_kinds[i])) {
            return false;
        }
    }
    return true;
}

/* Makes io_uring behave like a kernel without these ops: the pool path. */
static void
refuse_ring_kinds(void)
{
    for (size_t i = 0; i < NKINDS; i++) {
        blz__io_driver_refuse(cur_driver(), ring_kinds[i]);
    }
}

static bool
on_io_uring(void)
{
    return strcmp(blz_runtime_backend(blz__rt_current()), "io_uring") == 0;
}

/* ---- the ring is used, and agrees with the system calls ------------------------- */

static void
check_md_matches(const blz_metadata *md, const char *path, bool follow)
{
    struct stat st;
    CHECK_OK(follow ? stat(path, &st) : lstat(path, &st));
    CHECK_EQ(md->size, (uint64_t) st.st_size);
    CHECK_EQ(md->ino, (uint64_t) st.st_ino);
    CHECK_EQ(md->mode, st.st_mode & 07777u);
    CHECK_EQ(md->nlink, (uint64_t) st.st_nlink);
    CHECK_EQ(md->mtime_ns, (int64_t) st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec);
}

static void *
ops_body(void *arg)
{
    fs_tmp *t = arg;
    const char *p = fs_path(t, "f");
    const char *link = fs_path(t, "link");
    bool ring = ring_runs_all();
    if (!on_io_uring()) {
        CHECK(!ring); /* epoll runs no completion op */
    }
    ring_count before = ring_count_now();

    blz_file *f = NULL;
    blz_open_options o = {.read = true, .write = true, .create_new = true, .mode = 0640};
    CHECK_OK(blz_file_open(p, &o, &f)); /* OPENAT */
    CHECK_OK(blz_file_write_all(f, "hello ring", 10));
    CHECK_OK(blz_file_sync_all(f));  /* FSYNC */
    CHECK_OK(blz_file_sync_data(f)); /* FSYNC, datasync */
    blz_metadata md;
    CHECK_OK(blz_file_metadata(f, &md)); /* STATX of the descriptor */
    CHECK_EQ(md.kind, BLZ_FILE_REGULAR);
    CHECK_EQ(md.size, 10);
    CHECK_EQ(md.mode, 0640u & ~022u);
    check_md_matches(&md, p, true);
    int fd = blz_file_fd(f);
    CHECK_OK(fd);
    CHECK_OK(blz_file_close(f));      /* CLOSE */
    CHECK_EQ(fcntl(fd, F_GETFD), -1); /* closed by the time close returned */

    CHECK_OK(symlink(p, link));
    CHECK_OK(blz_fs_metadata(link, &md)); /* STATX by path, following */
    CHECK_EQ(md.kind, BLZ_FILE_REGULAR);
    check_md_matches(&md, link, true);
    CHECK_OK(blz_fs_symlink_metadata(link, &md)); /* STATX, AT_SYMLINK_NOFOLLOW */
    CHECK_EQ(md.kind, BLZ_FILE_SYMLINK);
    check_md_matches(&md, link, false);
    CHECK_OK(blz_fs_metadata(t->dir, &md));
    CHECK_EQ(md.kind, BLZ_FILE_DIR);

    /* Read back through a second open: the data was written and synced. */
    blz_open_options ro = {.read = true};
    CHECK_OK(blz_file_open(link, &ro, &f)); /* OPENAT */
    char buf[16] = {0};
    CHECK_EQ(blz_file_read(f, buf, sizeof buf), 10);
    CHECK(memcmp(buf, "hello ring", 10) == 0);
    CHECK_OK(blz_file_close(f)); /* CLOSE */

    /* open 2, fsync 2, statx 4, close 2: all on the ring, or none. */
    static const uint64_t want[NKINDS] = {2, 2, 4, 2};
    for (size_t i = 0; i < NKINDS; i++) {
        CHECK_EQ(ring_delta(&before, i), ring ? want[i] : 0);
    }
    (void) unlink(link);
    (void) unlink(p);
    return NULL;
}

static void *
ops_body_pool(void *arg)
{
    refuse_ring_kinds();
    CHECK(!ring_runs_all());
    return ops_body(arg);
}

BLZ_TEST(ring_path_used)
{
    fs_tmp t;
    fs_tmp_make(&t);
    umask(022);
    blz_runtime *rt = backend_runtime(2);
    bool uring = strcmp(blz_runtime_backend(rt), "io_uring") == 0;
    blz_runtime_free(rt);
    fs_run(2, ops_body, &t);
    if (uring) {
        /* On this kernel every kind must be there (the io_uring backend
         * needs 5.11; these ops came in 5.6). */
        rt = backend_runtime(1);
        struct blz__io_driver *d = blz__rt_io(rt);
        for (size_t i = 0; i < NKINDS; i++) {
            CHECK(blz__io_driver_supports(d, ring_kinds[i]));
        }
        blz_runtime_free(rt);
    }
    fs_tmp_remove(&t);
}

BLZ_TEST(pool_fallback)
{
    fs_tmp t;
    fs_tmp_make(&t);
    umask(022);
    fs_run(2, ops_body_pool, &t);
    fs_tmp_remove(&t);
}

/* ---- errors: the same on both paths ---------------------------------------------- */

static void *
errors_body(void *arg)
{
    fs_tmp *t = arg;
    const char *file = fs_path(t, "file");
    const char *dir = fs_path(t, "dir");
    const char *link = fs_path(t, "link");
    const char *missing = fs_path(t, "missing");
    const char *through = fs_path(t, "file/x");
    CHECK_OK(blz_fs_write_file(file, "x", 1));
    CHECK_OK(blz_fs_create_dir(dir, 0755));
    CHECK_OK(symlink(file, link));
    bool ring = ring_runs_all();
    ring_count before = ring_count_now();

    blz_file *f = NULL;
    blz_metadata md;
    blz_open_options ro = {.read = true};
    blz_open_options rw = {.read = true, .write = true};
    blz_open_options cn = {.write = true, .create_new = true};
    blz_open_options as_dir = {.read = true, .custom_flags = O_DIRECTORY};
    blz_open_options nofollow = {.read = true, .custom_flags = O_NOFOLLOW};

    CHECK_EQ(blz_file_open(missing, &ro, &f), -ENOENT);
    CHECK_EQ(blz_fs_metadata(missing, &md), -ENOENT);
    CHECK_EQ(blz_fs_symlink_metadata(missing, &md), -ENOENT);
    CHECK_EQ(blz_file_open(file, &as_dir, &f), -ENOTDIR); /* O_DIRECTORY on a file */
    CHECK_EQ(blz_file_open(through, &ro, &f), -ENOTDIR);
    CHECK_EQ(blz_fs_metadata(through, &md), -ENOTDIR);
    CHECK_EQ(blz_file_open(dir, &rw, &f), -EISDIR);
    CHECK_EQ(blz_file_open(file, &cn, &f), -EEXIST);
    CHECK_EQ(blz_file_open(dir, &cn, &f), -EEXIST);
    CHECK_EQ(blz_file_open(link, &nofollow, &f), -ELOOP);
    CHECK(f == NULL); /* no failed open wrote the out-parameter */

    /* Operations on a closed file fail before reaching either path. */
    CHECK_OK(blz_file_open(file, &ro, &f));
    blz_file *g = NULL;
    CHECK_OK(blz_file_open(dir, &as_dir, &g));
    CHECK_OK(blz_file_metadata(g, &md)); /* a directory descriptor */
    CHECK_EQ(md.kind, BLZ_FILE_DIR);
    CHECK_OK(blz_file_close(g));
    CHECK_OK(blz_file_close(f));

    /* Every failing open and stat above went to the ring when it runs them. */
    CHECK_EQ(ring_delta(&before, 0), ring ? 9 : 0); /* 7 failed opens + 2 */
    CHECK_EQ(ring_delta(&before, 2), ring ? 4 : 0); /* 3 failed stats + 1 */
    CHECK_EQ(ring_delta(&before, 3), ring ? 2 : 0);
    return NULL;
}

static void *
errors_body_pool(void *arg)
{
    refuse_ring_kinds();
    return errors_body(arg);
}

BLZ_TEST(error_paths)
{
    fs_tmp t;
    fs_tmp_make(&t);
    fs_run(2, errors_body, &t);
    fs_tmp_remove(&t);
    fs_tmp_make(&t);
    fs_run(2, errors_body_pool, &t);
    fs_tmp_remove(&t);
}

static void *
eacces_body(void *arg)
{
    fs_tmp *t = arg;
    const char *file = fs_path(t, "secret");
    const char *dir = fs_path(t, "locked");
    const char *inner = fs_path(t, "locked/x");
    CHECK_OK(blz_fs_write_file(file, "x", 1));
    CHECK_OK(blz_fs_create_dir(dir, 0755));
    CHECK_OK(blz_fs_write_file(inner, "x", 1));
    CHECK_OK(chmod(file, 0));
    CHECK_OK(chmod(dir, 0));
    blz_file *f = NULL;
    blz_metadata md;
    blz_open_options ro = {.read = true};
    CHECK_EQ(blz_file_open(file, &ro, &f), -EACCES);
    CHECK_EQ(blz_fs_metadata(inner, &md), -EACCES);
    CHECK_OK(chmod(dir, 0755));
    return NULL;
}

static void *
eacces_body_pool(void *arg)
{
    refuse_ring_kinds();
    return eacces_body(arg);
}

BLZ_TEST(eacces)
{
    if (geteuid() == 0) {
        SKIP("root bypasses permission bits (the error paths test ENOTDIR/EISDIR instead)");
    }
    fs_tmp t;
    fs_tmp_make(&t);
    fs_run(2, eacces_body, &t);
    fs_tmp_remove(&t);
    fs_tmp_make(&t);
    fs_run(2, eacces_body_pool, &t);
    fs_tmp_remove(&t);
}

/* ---- futures dropped and tasks aborted mid-operation ---------------------------- */

/* A copy of `s` in its own allocation, freed by the caller right after the
 * future is dropped: an op that kept pointing at it would show under ASan. */
static char *
heap_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    CHECK(p != NULL);
    memcpy(p, s, n);
    return p;
}

/* Polls `f` once, drops it, and returns whether it had already finished. */
static bool
poll_once_then_drop(blz_fs_future *f)
{
    blz_context cx = {blz_waker_noop()};
    bool ready = blz_future_poll(&f->base, &cx) == BLZ_READY;
    blz_future_drop(&f->base);
    return ready;
}

static void *
drop_body(void *arg)
{
    fs_tmp *t = arg;
    const char *p = fs_path(t, "d");
    CHECK_OK(blz_fs_write_file(p, "0123456789", 10));
    for (int round = 0; round < 50; round++) {
        blz_fs_future fut;

        /* open: a descriptor made after the drop gets closed. */
        char *path = heap_str(p);
        blz_file *g = NULL;
        blz_file_open_fut(path, NULL, &g, &fut);
        if (poll_once_then_drop(&fut)) {
            CHECK_OK(fut.base.result);
            CHECK_OK(blz_file_close(g));
        }
        free(path);

        /* create_new: dropped or not, the file is created and not leaked. */
        char name[32];
        snprintf(name, sizeof name, "new%d", round);
        path = heap_str(fs_path(t, name));
        blz_open_options cn = {.write = true, .create_new = true};
        g = NULL;
        blz_file_open_fut(path, &cn, &g, &fut);
        if (poll_once_then_drop(&fut)) {
            CHECK_OK(fut.base.result);
            CHECK_OK(blz_file_close(g));
        }
        free(path);

        /* metadata by path: neither the path nor `md` is touched after the drop. */
        path = heap_str(p);
        blz_metadata *md = malloc(sizeof *md);
        CHECK(md != NULL);
        blz_fs_metadata_fut(path, md, &fut);
        (void) poll_once_then_drop(&fut);
        free(md);
        free(path);

        blz_file *f = NULL;
        CHECK_OK(blz_file_open(p, NULL, &f));
        /* fsync, fdatasync and fstat of a file, each dropped in flight. */
        blz_file_sync_all_fut(f, &fut);
        (void) poll_once_then_drop(&fut);
        blz_file_sync_data_fut(f, &fut);
        (void) poll_once_then_drop(&fut);
        md = malloc(sizeof *md);
        CHECK(md != NULL);
        blz_file_metadata_fut(f, md, &fut);
        (void) poll_once_then_drop(&fut);
        free(md);

        /* close dropped in flight: a close is never cancelled, the
         * descriptor is closed all the same (the harness checks). */
        blz_file_close_fut(f, &fut);
        if (poll_once_then_drop(&fut)) {
            CHECK_OK(fut.base.result);
        }
    }
    fs_wait_no_ops();
    /* The file is what it was: nothing dropped wrote to it. */
    blz_metadata md;
    CHECK_OK(blz_fs_metadata(p, &md));
    CHECK_EQ(md.size, 10);
    return NULL;
}

static void *
drop_body_pool(void *arg)
{
    refuse_ring_kinds();
    return drop_body(arg);
}

/* Close futures dropped before their first poll still close: the harness's
 * fd-leak check fails the test otherwise. */
static void *
drop_unpolled_close_body(void *arg)
{
    fs_tmp *t = arg;
    char path[FS_PATH_MAX];
    snprintf(path, sizeof path, "%s/u", t->dir);
    CHECK_OK(blz_fs_write_file(path, "abc", 3));
    for (int i = 0; i < 16; i++) {
        blz_file *f = NULL;
        CHECK_OK(blz_file_open(path, NULL, &f));
        blz_fs_future fut;
        blz_file_close_fut(f, &fut);
        blz_future_drop(&fut.base);
        blz_dir *d = NULL;
        CHECK_OK(blz_dir_open(t->dir, &d));
        blz_dir_close_fut(d, &fut);
        blz_future_drop(&fut.base);
    }
    return NULL;
}

BLZ_TEST(drop_unpolled_close)
{
    fs_tmp t;
    fs_tmp_make(&t);
    blz_test_counting_allocator_install();
    fs_run(2, drop_unpolled_close_body, &t);
    CHECK_EQ(blz_test_alloc_live(), 0);
    fs_tmp_remove(&t);
}

BLZ_TEST(drop_mid_op)
{
    fs_tmp t;
    fs_tmp_make(&t);
    blz_test_counting_allocator_install();
    fs_run(2, drop_body, &t);
    fs_tmp_remove(&t);
    fs_tmp_make(&t);
    fs_run(2, drop_body_pool, &t);
    CHECK_EQ(blz_test_alloc_live(), 0);
    fs_tmp_remove(&t);
}

/* Tasks that have entered busy_file_task's loop. */
static _Atomic int busy_started;

/* Waits (in a fiber) until `n` busy tasks have entered their loop and file
 * operations are in flight. */
static void
wait_busy(int n)
{
    WAIT_UNTIL(atomic_load(&busy_started) >= n && blz__fs_live_ops() > 0, blz_sleep(blz_ms(1)));
}

/* Loops over open, fsync, fstat, stat and close until aborted. */
static void *
busy_file_task(void *arg)
{
    const char *p = arg;
    atomic_fetch_add(&busy_started, 1);
    for (;;) {
        blz_file *f = NULL;
        if (blz_file_open(p, NULL, &f) < 0) {
            break; /* -ECANCELED once aborted */
        }
        blz_metadata md;
        int rc = blz_file_sync_all(f);
        if (rc == 0) {
            rc = blz_file_metadata(f, &md);
        }
        if (rc == 0) {
            rc = blz_fs_metadata(p, &md);
        }
        /* In an aborted fiber blz_await gives up before the first poll; the
         * dropped close future still closes (the fd-leak check proves it). */
        if (blz_file_close(f) < 0 || rc < 0) {
            break;
        }
    }
    return NULL;
}

static void *
abort_body(void *arg)
{
    fs_tmp *t = arg;
    static char path[FS_PATH_MAX];
    snprintf(path, sizeof path, "%s/a", t->dir);
    CHECK_OK(blz_fs_write_file(path, "abc", 3));
    enum { N = 8 };
    blz_join *js[N];
    atomic_store(&busy_started, 0);
    for (int i = 0; i < N; i++) {
        CHECK_OK(blz_spawn(busy_file_task, path, &js[i]));
    }
    /* Every task is in its loop, each waiting on an operation or between two
     * when its abort lands: the checks below hold for both. */
    wait_busy(N);
    for (int i = 0; i < N; i++) {
        blz_join_abort(js[i]);
    }
    for (int i = 0; i < N; i++) {
        (void) blz_join_wait(js[i], NULL);
    }
    fs_wait_no_ops();
    return NULL;
}

static void *
abort_body_pool(void *arg)
{
    refuse_ring_kinds();
    return abort_body(arg);
}

BLZ_TEST(abort_mid_op)
{
    fs_tmp t;
    fs_tmp_make(&t);
    blz_test_counting_allocator_install();
    fs_run(2, abort_body, &t);
    fs_run(2, abort_body_pool, &t);
    CHECK_EQ(blz_test_alloc_live(), 0);
    fs_tmp_remove(&t);
}

/* A runtime freed while tasks wait on ring ops: the ops finish (closes
 * close, opens that completed are closed) before the driver goes away. */
static void *
free_body(void *arg)
{
    fs_tmp *t = arg;
    static char path[FS_PATH_MAX];
    snprintf(path, sizeof path, "%s/q", t->dir);
    CHECK_OK(blz_fs_write_file(path, "abc", 3));
    atomic_store(&busy_started, 0);
    for (int i = 0; i < 16; i++) {
        CHECK_OK(blz_spawn(busy_file_task, path, NULL));
    }
    wait_busy(16);
    return NULL; /* the runtime is freed with the tasks mid-operation */
}

BLZ_TEST(free_mid_op)
{
    fs_tmp t;
    fs_tmp_make(&t);
    blz_test_counting_allocator_install();
    fs_run(2, free_body, &t);
    CHECK_EQ(blz_test_alloc_live(), 0);
    fs_tmp_remove(&t);
}
