/*
 * tests/fs_stream.c — files as stream readers and writers: buffered line
 * reading, buffered writing, copy between files, read-exact to end of file,
 * dropping a stream read in flight, and the same outside any runtime.
 */
#include "fs_common.h"

static void
lines_body(fs_tmp *t)
{
    const char *p = fs_path(t, "lines");
    /* Write 1000 numbered lines through a small buffered writer. */
    blz_file *f = NULL;
    CHECK_OK(blz_file_create(p, &f));
    blz_buf_writer bw;
    CHECK_OK(blz_buf_writer_init(&bw, blz_file_writer(f), NULL, 100));
    for (int i = 0; i < 1000; i++) {
        char line[64];
        int n = snprintf(line, sizeof line, "line %d of the file\n", i);
        CHECK_OK(blz_buf_writer_write_all(&bw, line, (size_t) n));
    }
    CHECK_OK(blz_buf_writer_flush(&bw));
    CHECK_EQ(blz_buf_writer_buffered(&bw), 0);
    blz_buf_writer_deinit(&bw);
    CHECK_OK(blz_file_close(f));

    /* Read them back line by line through a buffered reader. */
    CHECK_OK(blz_file_open(p, NULL, &f));
    blz_buf_reader br;
    CHECK_OK(blz_buf_reader_init(&br, blz_file_reader(f), NULL, 0));
    for (int i = 0; i < 1000; i++) {
        char want[64], got[64];
        snprintf(want, sizeof want, "line %d of the file\n", i);
        ssize_t n = blz_buf_reader_read_line(&br, got, sizeof got);
        CHECK_EQ(n, (ssize_t) strlen(want));
        CHECK_STR_EQ(got, want);
    }
    char tail[8];
    CHECK_EQ(blz_buf_reader_read_line(&br, tail, sizeof tail), 0); /* end of file */
    blz_buf_reader_deinit(&br);

    /* read_exact past the end: -EPIPE. */
    CHECK_OK(blz_file_seek(f, -10, BLZ_SEEK_END, NULL));
    char buf[32];
    CHECK_EQ(blz_read_exact(blz_file_reader(f), buf, 20), -EPIPE);
    CHECK_OK(blz_file_seek(f, 0, BLZ_SEEK_SET, NULL));
    CHECK_OK(blz_read_exact(blz_file_reader(f), buf, 20));
    CHECK(memcmp(buf, "line 0 of the file\nl", 20) == 0);
    CHECK_OK(blz_file_close(f));
}

static void *
lines_fiber(void *arg)
{
    lines_body(arg);
    return NULL;
}

BLZ_TEST(buffered_lines)
{
    fs_tmp t;
    fs_tmp_make(&t);
    fs_run(2, lines_fiber, &t);
    fs_tmp_remove(&t);
    fs_tmp_make(&t);
    lines_body(&t); /* no runtime */
    fs_tmp_remove(&t);
}

static void
copy_body(fs_tmp *t)
{
    size_t n = 5u * 1024 * 1024 + 333;
    unsigned char *data = malloc(n);
    CHECK(data != NULL);
    fs_fill(21, 0, data, n);
    CHECK_OK(blz_fs_write_file(fs_path(t, "from"), data, n));
    blz_file *in = NULL, *out = NULL;
    CHECK_OK(blz_file_open(fs_path(t, "from"), NULL, &in));
    CHECK_OK(blz_file_create(fs_path(t, "to"), &out));
    uint64_t copied = 0;
    CHECK_OK(blz_copy(blz_file_reader(in), blz_file_writer(out), &copied));
    CHECK_EQ(copied, n);
    CHECK_OK(blz_file_close(in));
    CHECK_OK(blz_file_close(out));
    void *back = NULL;
    size_t len = 0;
    CHECK_OK(blz_fs_read_file(fs_path(t, "to"), &back, &len));
    CHECK_EQ(len, n);
    CHECK(memcmp(back, data, n) == 0);
    blz_fs_free_buf(back);

    /* write_all through the plain writer, read through the plain reader. */
    CHECK_OK(blz_file_create(fs_path(t, "plain"), &out));
    CHECK_OK(blz_write_all(blz_file_writer(out), data, n));
    CHECK_OK(blz_file_close(out));
    CHECK_OK(blz_file_open(fs_path(t, "plain"), NULL, &in));
    size_t got = 0;
    unsigned char *buf = malloc(n);
    for (;;) {
        ssize_t r = blz_read(blz_file_reader(in), buf + got, n - got);
        CHECK_OK(r);
        if (r == 0) {
            break;
        }
        got += (size_t) r;
    }
    CHECK_EQ(got, n);
    CHECK(memcmp(buf, data, n) == 0);
    CHECK_OK(blz_file_close(in));
    /* A NULL file: the adapter has no vtable. */
    CHECK_EQ(blz_read(blz_file_reader(NULL), buf, 1), -EINVAL);
    free(buf);
    free(data);
}

static void *
copy_fiber(void *arg)
{
    copy_body(arg);
    return NULL;
}

BLZ_TEST(copy_between_files)
{
    fs_tmp t;
    fs_tmp_make(&t);
    fs_run(2, copy_fiber, &t);
    fs_tmp_remove(&t);
    fs_tmp_make(&t);
    copy_body(&t);
    fs_tmp_remove(&t);
}

static void *
drop_stream_read_body(void *arg)
{
    fs_tmp *t = arg;
    size_t n = 1u << 20;
    unsigned char *data = calloc(1, n);
    CHECK_OK(blz_fs_write_file(fs_path(t, "d"), data, n));
    free(data);
    blz_file *f = NULL;
    CHECK_OK(blz_file_open(fs_path(t, "d"), NULL, &f));
    blz_context cx = {blz_waker_noop()};
    for (int i = 0; i < 20; i++) {
        unsigned char *buf = malloc(n);
        blz_io_future io;
        blz_read_fut(blz_file_reader(f), buf, n, &io);
        blz_poll st = blz_future_poll(&io.base, &cx);
        blz_future_drop(&io.base);
        if (st == BLZ_READY) {
            CHECK_OK(io.base.result);
        }
        free(buf); /* the op must never write here (ASan) */
    }
    CHECK_OK(blz_file_close(f));
    for (int i = 0; i < 20000 && blz__fs_live_ops(); i++) {
        blz_sleep(blz_ms(1));
    }
    CHECK_EQ(blz__fs_live_ops(), 0);
    return NULL;
}

BLZ_TEST(drop_stream_read)
{
    fs_tmp t;
    fs_tmp_make(&t);
    fs_run(2, drop_stream_read_body, &t);
    fs_tmp_remove(&t);
}
