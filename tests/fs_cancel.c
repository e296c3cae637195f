/*
 * tests/fs_cancel.c — operations abandoned or raced while in flight: futures
 * dropped after one poll (their buffers freed at once: the op must never
 * touch them), opens dropped in flight (their descriptor gets closed),
 * write_file dropped in each of its steps, close while reads are in flight,
 * fibers aborted while they wait on a file, and the allocation balance of
 * all that.
 *
 * Run once per backend (epoll: the blocking pool; io_uring: the ring, where
 * dropping also sends an async cancel).
 */
#include "fs_common.h"

/* ---- cancellation and close with operations in flight ------------------------------- */

static void *
drop_in_flight_body(void *arg)
{
    fs_tmp *t = arg;
    const char *p = fs_path(t, "big");
    size_t n = 4u << 20;
    unsigned char *data = malloc(n);
    CHECK(data != NULL);
    fs_fill(3, 0, data, n);
    CHECK_OK(blz_fs_write_file(p, data, n));
    blz_context cx = {blz_waker_noop()};

    for (int round = 0; round < 20; round++) {
        blz_file *f = NULL;
        CHECK_OK(blz_file_open(p, NULL, &f));
        /* A read at the position, dropped after one poll: its buffer is freed
         * at once, and must never be written (ASan would see it). */
        unsigned char *buf = malloc(BLZ_FS_MAX_CHUNK);
        CHECK(buf != NULL);
        blz_fs_future rf;
        blz_file_read_fut(f, buf, BLZ_FS_MAX_CHUNK, &rf);
        blz_poll st = blz_future_poll(&rf.base, &cx);
        blz_future_drop(&rf.base);
        if (st == BLZ_READY) {
            CHECK_OK(rf.base.result);
        }
        free(buf);

        /* An open dropped in flight: the descriptor it made gets closed
         * (the harness fails the test on a leaked fd). */
        blz_file *g = NULL;
        blz_fs_future of;
        blz_file_open_fut(p, NULL, &g, &of);
        st = blz_future_poll(&of.base, &cx);
        blz_future_drop(&of.base);
        if (st == BLZ_READY) {
            CHECK_OK(of.base.result);
            CHECK_OK(blz_file_close(g));
        }

        /* write_file dropped in any of its steps. */
        blz_fs_future wf;
        blz_fs_write_file_fut(fs_path(t, "partial"), data, n, &wf);
        for (int i = 0; i < round % 4 && blz_future_poll(&wf.base, &cx) == BLZ_PENDING; i++) {
            blz_sleep(blz_us(200)); /* lets it move on a step; any step it is in will do */
        }
        blz_future_drop(&wf.base);

        /* read_file dropped in flight: its buffer is discarded. */
        void *whole = NULL;
        blz_fs_future ff;
        blz_fs_read_file_fut(p, &whole, NULL, &ff);
        if (blz_future_poll(&ff.base, &cx) == BLZ_READY) {
            blz_fs_free_buf(whole);
        }
        blz_future_drop(&ff.base);

        CHECK_OK(blz_file_close(f));
    }
    fs_wait_no_ops();
    /* The file is intact: nothing dropped wrote to it. */
    void *back = NULL;
    size_t len = 0;
    CHECK_OK(blz_fs_read_file(p, &back, &len));
    CHECK_EQ(len, n);
    CHECK(memcmp(back, data, n) == 0);
    blz_fs_free_buf(back);
    free(data);
    return NULL;
}

BLZ_TEST(drop_in_flight)
{
    fs_tmp t;
    fs_tmp_make(&t);
    fs_run(2, drop_in_flight_body, &t);
    fs_tmp_remove(&t);
}

static void *
close_in_flight_body(void *arg)
{
    fs_tmp *t = arg;
    const char *p = fs_path(t, "c");
    size_t n = 1u << 20;
    unsigned char *data = malloc(n);
    CHECK(data != NULL);
    fs_fill(5, 0, data, n);
    CHECK_OK(blz_fs_write_file(p, data, n));
    blz_context cx = {blz_waker_noop()};
    for (int round = 0; round < 20; round++) {
        blz_file *f = NULL;
        CHECK_OK(blz_file_open(p, NULL, &f));
        unsigned char *buf = malloc(n);
        blz_fs_future rf;
        blz_file_read_fut(f, buf, n, &rf);
        blz_poll st = blz_future_poll(&rf.base, &cx);
        /* Close while the read may be in flight: it still completes, and the
         * descriptor is closed after it. */
        CHECK_OK(blz_file_close(f));
        if (st == BLZ_PENDING) {
            CHECK_EQ(blz_await(&rf.base), (int) n);
        }
        CHECK_EQ(rf.base.result, (int) n);
        CHECK(memcmp(buf, data, n) == 0);
        free(buf);
    }
    free(data);
    fs_wait_no_ops();
    return NULL;
}

BLZ_TEST(close_in_flight)
{
    fs_tmp t;
    fs_tmp_make(&t);
    fs_run(2, close_in_flight_body, &t);
    fs_tmp_remove(&t);
}

/* A fiber aborted while it waits on a file operation: the op finishes in the
 * background and frees itself. */
static _Atomic int readers_reading; /* readers that have started their first read */

static void *
aborted_reader(void *arg)
{
    blz_file *f = arg;
    char *buf = malloc(BLZ_FS_MAX_CHUNK);
    atomic_fetch_add(&readers_reading, 1);
    for (;;) {
        ssize_t r = blz_file_pread(f, buf, BLZ_FS_MAX_CHUNK, 0);
        if (r < 0) {
            break; /* -ECANCELED once aborted */
        }
    }
    free(buf);
    return NULL;
}

static void *
abort_body(void *arg)
{
    fs_tmp *t = arg;
    const char *p = fs_path(t, "a");
    size_t n = 2u << 20;
    unsigned char *data = calloc(1, n);
    CHECK_OK(blz_fs_write_file(p, data, n));
    free(data);
    blz_file *f = NULL;
    CHECK_OK(blz_file_open(p, NULL, &f));
    blz_join *js[8];
    atomic_store(&readers_reading, 0);
    for (int i = 0; i < 8; i++) {
        CHECK_OK(blz_spawn(aborted_reader, f, &js[i]));
    }
    /* Abort only once every reader is in its read loop. Its abort may land
     * while it waits on a read op, or while it reads the page cache inline
     * (no op: RWF_NOWAIT) or is between two reads; it then ends at its next
     * wait. The checks below hold for all of these. */
    WAIT_UNTIL(atomic_load(&readers_reading) >= 8, blz_sleep(blz_ms(1)));
    for (int i = 0; i < 8; i++) {
        blz_join_abort(js[i]);
    }
    for (int i = 0; i < 8; i++) {
        (void) blz_join_wait(js[i], NULL);
    }
    CHECK_OK(blz_file_close(f));
    fs_wait_no_ops();
    return NULL;
}

BLZ_TEST(abort_waiting_task)
{
    fs_tmp t;
    fs_tmp_make(&t);
    fs_run(2, abort_body, &t);
    fs_tmp_remove(&t);
}

BLZ_TEST(no_leaks_after_drops)
{
    fs_tmp t;
    fs_tmp_make(&t);
    blz_test_counting_allocator_install();
    fs_run(2, drop_in_flight_body, &t);
    fs_run(2, close_in_flight_body, &t);
    CHECK_EQ(blz_test_alloc_live(), 0);
    fs_tmp_remove(&t);
}

/* ---- blocking jobs still queued when the runtime is freed ---------------------------- */

#define QUEUED_FILES 8

typedef struct queued_ctx {
    fs_tmp *t;
    blz_file *shared;            /* set_len'd by many fibers, closed by its owner early */
    blz_file *own[QUEUED_FILES]; /* each closed by its own fiber */
} queued_ctx;

/* Fibers that have called their file operation, and those whose call returned. */
static _Atomic int queued_entered, queued_returned;

/* Keeps the pool's only thread busy while the fs jobs queue up behind it. */
static void *
hold_pool(void *arg)
{
    (void) arg;
    usleep(200 * 1000);
    return NULL;
}

static void *
set_len_waiter(void *arg)
{
    atomic_fetch_add(&queued_entered, 1);
    (void) blz_file_set_len(arg, 0); /* a pool job on every backend */
    atomic_fetch_add(&queued_returned, 1);
    return NULL;
}

static void *
close_waiter(void *arg)
{
    atomic_fetch_add(&queued_entered, 1);
    (void) blz_file_close(arg);
    atomic_fetch_add(&queued_returned, 1);
    return NULL;
}

static void *
open_waiter(void *arg)
{
    atomic_fetch_add(&queued_entered, 1);
    blz_file *g = NULL;
    if (blz_file_open(arg, NULL, &g) == 0) {
        (void) blz_file_close(g);
    }
    atomic_fetch_add(&queued_returned, 1);
    return NULL;
}

/* True once every waiter fiber has called its operation and each one either
 * returned or owns a live op (queued behind hold_pool, or in flight on the
 * ring). A fiber between its call and its op's creation, or between its
 * op's release and its return, keeps the count short. */
static bool
every_waiter_waits(void)
{
    int entered = atomic_load(&queued_entered);
    int returned = atomic_load(&queued_returned);
    return entered == 3 * QUEUED_FILES &&
           blz__fs_live_ops() + (uint64_t) returned >= (uint64_t) entered;
}

static void *
queued_body(void *arg)
{
    queued_ctx *q = arg;
    const char *p = fs_path(q->t, "q");
    static char path[FS_PATH_MAX];
    snprintf(path, sizeof path, "%s", p);
    CHECK_OK(blz_fs_write_file(path, "data", 4));
    CHECK_OK(blz_file_open(path, NULL, &q->shared));
    for (int i = 0; i < QUEUED_FILES; i++) {
        CHECK_OK(blz_file_open(path, NULL, &q->own[i]));
    }
    CHECK_OK(blz_spawn_blocking(hold_pool, NULL, NULL));
    for (int i = 0; i < QUEUED_FILES; i++) {
        CHECK_OK(blz_spawn(set_len_waiter, q->shared, NULL));
        CHECK_OK(blz_spawn(close_waiter, q->own[i], NULL));
        CHECK_OK(blz_spawn(open_waiter, path, NULL));
    }
    WAIT_UNTIL(every_waiter_waits(), blz_sleep(blz_ms(1)));
    /* The set_len ops hold the last references: closing only drops the owner's. */
    CHECK_OK(blz_file_close(q->shared));
    return NULL; /* the runtime is freed with every job still queued */
}

/* Freeing the runtime aborts the jobs that never started: the operations
 * must still let go of what they own (descriptors, file references, the op
 * itself), and a close must still close. The harness fails the test on a
 * leaked descriptor; the counting allocator on a leaked op. */
BLZ_TEST(free_with_queued_jobs)
{
    fs_tmp t;
    fs_tmp_make(&t);
    blz_test_counting_allocator_install();
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 2;
    cfg.blocking_threads = 1;
    blz_runtime *rt = NULL;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    const char *want = getenv("BLZ_BACKEND");
    if (want && *want && strcmp(want, blz_runtime_backend(rt)) != 0) {
        blz_runtime_free(rt);
        SKIP("requested backend unavailable");
    }
    atomic_store(&queued_entered, 0);
    atomic_store(&queued_returned, 0);
    queued_ctx q = {.t = &t};
    CHECK_OK(blz_runtime_block_on(rt, queued_body, &q, NULL));
    blz_runtime_free(rt);
    CHECK_EQ(blz__fs_live_ops(), 0);
    CHECK_EQ(blz_test_alloc_live(), 0);
    fs_tmp_remove(&t);
}
