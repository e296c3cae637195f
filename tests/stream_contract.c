/*
 * The stream loops against readers and writers that break their contract:
 * a count larger than was asked for. The loops must not trust it (an
 * over-read of their buffer, or a next request of a wrapped-around size) and
 * must fail with -EIO. Every future here completes at once: no runtime.
 */
#include "blitzio/stream.h"
#include "core/future.h" /* blz__io_future_ready: a future ready with its result */
#include "harness.h"

#include <string.h>

/* A reader that claims `extra` bytes more than it was asked for on its first
 * read (it fills only what it was given), then ends. */
typedef struct liar {
    int calls;
    size_t extra;
    size_t max_asked;
} liar;

static void
liar_read_fut(void *self, void *buf, size_t n, blz_io_future *f)
{
    liar *l = self;
    if (n > l->max_asked) {
        l->max_asked = n;
    }
    if (l->calls++ > 0) {
        blz__io_future_ready(f, 0);
        return;
    }
    memset(buf, 'x', n);
    blz__io_future_ready(f, (int) (n + l->extra));
}

static const blz_reader_vtable liar_reader_vt = {liar_read_fut};

/* A writer that takes what it is given, and records the largest request. */
typedef struct sink {
    size_t max_asked;
    size_t got;
    size_t extra; /* claims this many more than asked */
} sink;

static void
sink_write_fut(void *self, const void *buf, size_t n, blz_io_future *f)
{
    (void) buf;
    sink *s = self;
    if (n > s->max_asked) {
        s->max_asked = n;
    }
    s->got += n;
    blz__io_future_ready(f, (int) (n + s->extra));
}

static const blz_writer_vtable sink_writer_vt = {sink_write_fut, NULL, NULL};

BLZ_TEST(copy_rejects_a_read_longer_than_asked)
{
    liar l = {0, 10, 0};
    sink s = {0, 0, 0};
    blz_reader r = {&liar_reader_vt, &l};
    blz_writer w = {&sink_writer_vt, &s};
    unsigned char buf[64];
    uint64_t copied = 99;
    blz_stream_future f;
    blz_copy_fut(r, w, buf, sizeof buf, &copied, &f);
    CHECK_EQ(blz_await(&f.base), -EIO);
    CHECK_LE(s.max_asked, sizeof buf); /* never a write from past the buffer */
    CHECK_LE(copied, sizeof buf);
}

BLZ_TEST(copy_rejects_a_write_longer_than_asked)
{
    static const char text[] = "0123456789";
    blz_mem_reader m;
    sink s = {0, 0, 5};
    blz_writer w = {&sink_writer_vt, &s};
    unsigned char buf[64];
    uint64_t copied = 0;
    blz_stream_future f;
    blz_copy_fut(blz_mem_reader_init(&m, text, 10), w, buf, sizeof buf, &copied, &f);
    CHECK_EQ(blz_await(&f.base), -EIO);
    CHECK_LE(copied, 10u); /* never more than was read */
}

BLZ_TEST(read_to_end_rejects_a_read_longer_than_asked)
{
    liar l = {0, 10, 0};
    blz_reader r = {&liar_reader_vt, &l};
    unsigned char buf[64];
    size_t len = 0;
    CHECK_EQ(blz_read_to_end(r, buf, sizeof buf, &len), -EIO);
    CHECK_LE(l.max_asked, sizeof buf); /* no request of a wrapped-around size */
    CHECK_LE(len, sizeof buf);
}

BLZ_TEST(read_exact_rejects_a_read_longer_than_asked)
{
    liar l = {0, 10, 0};
    blz_reader r = {&liar_reader_vt, &l};
    unsigned char buf[64];
    CHECK_EQ(blz_read_exact(r, buf, sizeof buf), -EIO);
}

BLZ_TEST(write_all_rejects_a_write_longer_than_asked)
{
    sink s = {0, 0, 5};
    blz_writer w = {&sink_writer_vt, &s};
    CHECK_EQ(blz_write_all(w, "abc", 3), -EIO);
}

BLZ_TEST(buf_reader_rejects_a_fill_longer_than_its_buffer)
{
    liar l = {0, 10, 0};
    blz_buf_reader br;
    CHECK_OK(blz_buf_reader_init(&br, (blz_reader){&liar_reader_vt, &l}, NULL, 16));
    const void *data;
    ssize_t n = blz_buf_reader_fill(&br, &data);
    CHECK_EQ(n, -EIO); /* not 26 bytes of a 16-byte buffer */
    blz_buf_reader_deinit(&br);
}

BLZ_TEST(buf_reader_rejects_a_direct_read_longer_than_asked)
{
    liar l = {0, 10, 0};
    blz_buf_reader br;
    CHECK_OK(blz_buf_reader_init(&br, (blz_reader){&liar_reader_vt, &l}, NULL, 16));
    unsigned char out[32]; /* at least the buffer: read straight through */
    CHECK_EQ(blz_buf_reader_read(&br, out, sizeof out), -EIO);
    blz_buf_reader_deinit(&br);
}

/* A write at least the buffer's size goes straight through: its count must
 * be checked as the buffered ones are (more than asked, or 0 from a writer
 * that must return a count > 0, is -EIO), not passed on to a caller that
 * would step past its data. */
BLZ_TEST(buf_writer_rejects_a_direct_write_longer_than_asked)
{
    sink s = {0, 0, 5};
    blz_buf_writer bw;
    CHECK_OK(blz_buf_writer_init(&bw, (blz_writer){&sink_writer_vt, &s}, NULL, 16));
    unsigned char big[32] = {0};
    CHECK_EQ(blz_buf_writer_write(&bw, big, sizeof big), -EIO); /* not 37 */
    blz_buf_writer_deinit(&bw);
}

/* A writer that takes nothing and says so with 0. */
static void
zero_write_fut(void *self, const void *buf, size_t n, blz_io_future *f)
{
    (void) self;
    (void) buf;
    (void) n;
    blz__io_future_ready(f, 0);
}

static const blz_writer_vtable zero_writer_vt = {zero_write_fut, NULL, NULL};

BLZ_TEST(buf_writer_direct_write_of_nothing_is_an_error)
{
    blz_buf_writer bw;
    CHECK_OK(blz_buf_writer_init(&bw, (blz_writer){&zero_writer_vt, NULL}, NULL, 16));
    unsigned char big[32] = {0};
    CHECK_EQ(blz_buf_writer_write(&bw, big, sizeof big), -EIO); /* "a count > 0 or -errno" */
    /* The buffered path already says so at its flush. */
    CHECK_EQ(blz_buf_writer_write(&bw, big, 4), 4);
    CHECK_EQ(blz_buf_writer_flush(&bw), -EIO);
    blz_buf_writer_deinit(&bw);
}
