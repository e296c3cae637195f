/*
 * Memory as a stream, outside any runtime (every operation completes at
 * once): lines through a BufReader, read-to-end, a full writer's -ENOSPC,
 * copy, the limited reader, formatted writes, and copy both ways between two in-memory
 * connections, whose ends are passed on (the writers have no shutdown, so
 * ending them is a flush).
 */
#include "blitzio/stream.h"
#include "core/future.h" /* blz__io_future_ready: a future ready with its result */
#include "harness.h"

#include <string.h>

BLZ_TEST(buf_reader_lines_from_memory)
{
    static const char text[] = "first\nsecond\nno newline";
    blz_mem_reader m;
    blz_buf_reader br;
    char small[4];
    CHECK_OK(
        blz_buf_reader_init(&br, blz_mem_reader_init(&m, text, strlen(text)), small, sizeof small));
    char line[32];
    /* No room: refused, not 0, which a caller's loop would take for the end. */
    CHECK_EQ(blz_buf_reader_read_until(&br, '\n', line, 0), -EINVAL);
    CHECK_EQ(blz_buf_reader_read_line(&br, line, 1), -EINVAL);
    CHECK_EQ(blz_buf_reader_read_line(&br, line, sizeof line), 6);
    CHECK_STR_EQ(line, "first\n");
    CHECK_EQ(blz_buf_reader_read_line(&br, line, sizeof line), 7);
    CHECK_STR_EQ(line, "second\n");
    CHECK_EQ(blz_buf_reader_read_line(&br, line, sizeof line), 10);
    CHECK_STR_EQ(line, "no newline");
    CHECK_EQ(blz_buf_reader_read_line(&br, line, sizeof line), 0);
    blz_buf_reader_deinit(&br);
}

BLZ_TEST(read_to_end_and_a_full_writer)
{
    unsigned char data[1000];
    for (size_t i = 0; i < sizeof data; i++) {
        data[i] = (unsigned char) (i * 7);
    }
    blz_mem_reader m;
    unsigned char got[2000];
    size_t len = 0;
    CHECK_OK(blz_read_to_end(blz_mem_reader_init(&m, data, sizeof data), got, sizeof got, &len));
    CHECK_EQ(len, sizeof data);
    CHECK(memcmp(got, data, len) == 0);
    CHECK_EQ(blz_read(blz_mem_reader_init(&m, data, 0), got, 1), 0); /* empty: the end at once */

    unsigned char out[8];
    blz_mem_writer w;
    blz_writer wr = blz_mem_writer_init(&w, out, sizeof out);
    CHECK_EQ(blz_write(wr, "abc", 3), 3);
    CHECK_EQ(blz_write(wr, "defghij", 7), 5); /* what fits */
    CHECK_EQ(blz_write(wr, "k", 1), -ENOSPC);
    CHECK_EQ(blz_write_all(wr, "k", 1), -ENOSPC);
    CHECK_EQ(blz_mem_writer_len(&w), 8u);
    CHECK(memcmp(out, "abcdefgh", 8) == 0);
    CHECK_OK(blz_write_shutdown(wr)); /* nothing to end: a flush, which is nothing */
    blz_io_future ff;
    blz_flush_fut(wr, &ff); /* the flush's future tier: ready at once here */
    CHECK_OK(blz_await(&ff.base));
    CHECK_EQ(blz_write(wr, "", 0), 0);

    /* Bad input. */
    CHECK_EQ(blz_read(blz_mem_reader_init(&m, NULL, 5), got, 1), -EINVAL);
    CHECK_EQ(blz_read(blz_mem_reader_init(NULL, data, 5), got, 1), -EINVAL);
    CHECK_EQ(blz_write(blz_mem_writer_init(&w, NULL, 5), "x", 1), -EINVAL);
    CHECK_EQ(blz_mem_writer_len(NULL), 0u);
    blz_writer none = {NULL, NULL};
    blz_flush_fut(none, &ff);
    CHECK_EQ(blz_await(&ff.base), -EINVAL);
}

BLZ_TEST(copy_and_take_in_memory)
{
    static const char text[] = "0123456789abcdef";
    blz_mem_reader m;
    blz_mem_writer w;
    char out[32];
    unsigned char cbuf[3]; /* small: many rounds */
    uint64_t copied = 0;
    blz_stream_future f;
    blz_copy_fut(blz_mem_reader_init(&m, text, 16), blz_mem_writer_init(&w, out, sizeof out), cbuf,
                 sizeof cbuf, &copied, &f);
    CHECK_OK(blz_await(&f.base));
    CHECK_EQ(copied, 16u);
    CHECK(memcmp(out, text, 16) == 0);

    blz_take t;
    size_t len = 0;
    CHECK_OK(blz_read_to_end(blz_take_init(&t, blz_mem_reader_init(&m, text, 16), 10), out,
                             sizeof out, &len));
    CHECK_EQ(len, 10u);
    CHECK(memcmp(out, text, 10) == 0);
    CHECK_EQ(blz_read(blz_mem_reader_init(&m, text, 16), out, 0), 0);
}

BLZ_TEST(copy_both_ways_between_memory_connections)
{
    blz_mem_reader ar, br;
    blz_mem_writer aw, bw;
    char a_got[16] = {0}, b_got[16] = {0};
    blz_duplex a = {blz_mem_reader_init(&ar, "ping", 4), blz_mem_writer_init(&aw, a_got, 16)};
    blz_duplex b = {blz_mem_reader_init(&br, "pong!", 5), blz_mem_writer_init(&bw, b_got, 16)};
    uint64_t ab = 0, ba = 0;
    CHECK_OK(blz_copy_bidirectional(a, b, &ab, &ba));
    CHECK_EQ(ab, 4u);
    CHECK_EQ(ba, 5u);
    CHECK_STR_EQ(b_got, "ping");
    CHECK_STR_EQ(a_got, "pong!");

    /* One side's writer fills up: its error ends both ways, totals kept. */
    static char big[100];
    memset(big, 'x', sizeof big);
    char small[10];
    a.r = blz_mem_reader_init(&ar, big, sizeof big);
    a.w = blz_mem_writer_init(&aw, a_got, sizeof a_got);
    b.r = blz_mem_reader_init(&br, "", 0);
    b.w = blz_mem_writer_init(&bw, small, sizeof small);
    unsigned char buf[8];
    blz_copy_bidi_future f;
    blz_copy_bidirectional_fut(a, b, buf, sizeof buf, &ab, &ba, &f);
    CHECK_EQ(blz_await(&f.base), -ENOSPC);
    CHECK_EQ(ab, sizeof small);
    CHECK_EQ(ba, 0u);
}

BLZ_TEST(formatted_writes)
{
    char out[600];
    blz_mem_writer m;
    blz_writer w = blz_mem_writer_init(&m, out, sizeof out);
    CHECK_EQ(blz_write_fmt(w, "%s=%d;", "answer", 42), 10);
    /* Longer than the stack buffer: formatted on the heap. */
    char big[400];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK_EQ(blz_write_fmt(w, "[%s]", big), 401);
    CHECK_EQ(blz_mem_writer_len(&m), 411u);
    CHECK(memcmp(out, "answer=42;[yyy", 14) == 0);
    CHECK_EQ(out[410], ']');
    /* The writer's error comes back; bad input is refused. */
    CHECK_EQ(blz_write_fmt(w, "%s", big), -ENOSPC);
    blz_writer none = {NULL, NULL};
    CHECK_EQ(blz_write_fmt(none, "x"), -EINVAL);
    CHECK_EQ(blz_write_fmt(w, NULL), -EINVAL);
}

/* ---- a reader that errs once -------------------------------------------------------- */

/* A reader that plays a script, one step a read: a step's bytes, or its error
 * when it has none. After the script it reads the end. An error comes once,
 * as a socket's reset does: the recv after ECONNRESET reads 0. */
typedef struct script {
    const char *bytes[4];
    int err[4];
    int steps, at;
} script;

static void
script_read_fut(void *self, void *buf, size_t n, blz_io_future *f)
{
    script *s = self;
    int res = 0;
    if (s->at < s->steps) {
        const char *b = s->bytes[s->at];
        res = b ? (int) strlen(b) : s->err[s->at];
        if (b) {
            CHECK_LE((size_t) res, n);
            memcpy(buf, b, (size_t) res);
        }
        s->at++;
    }
    blz__io_future_ready(f, res);
}

static const blz_reader_vtable script_reader_vt = {script_read_fut};

/* read_until and read_line return the bytes that came before an error; the
 * header promises the error to the next read. A reader whose error comes
 * once (a reset socket) must not turn it into an end of stream. */
BLZ_TEST(buf_reader_error_after_part_of_a_line_comes_next)
{
    script s = {{"ab", NULL}, {0, -ECONNRESET}, 2, 0};
    blz_buf_reader br;
    char small[8];
    CHECK_OK(blz_buf_reader_init(&br, (blz_reader){&script_reader_vt, &s}, small, sizeof small));
    char line[32];
    CHECK_EQ(blz_buf_reader_read_line(&br, line, sizeof line), 2);
    CHECK_STR_EQ(line, "ab");
    CHECK_EQ(blz_buf_reader_read_line(&br, line, sizeof line), -ECONNRESET); /* not 0 */
    CHECK_EQ(blz_buf_reader_read_line(&br, line, sizeof line), 0);           /* then the end */
    blz_buf_reader_deinit(&br);

    /* Every kind of next read reports it: read_until, read, fill. */
    script t = {{"x;y", "z", NULL, "w;"}, {0, 0, -EIO, 0}, 4, 0};
    CHECK_OK(blz_buf_reader_init(&br, (blz_reader){&script_reader_vt, &t}, small, sizeof small));
    CHECK_EQ(blz_buf_reader_read_until(&br, ';', line, sizeof line), 2);
    CHECK(memcmp(line, "x;", 2) == 0);
    CHECK_EQ(blz_buf_reader_read_until(&br, ';', line, sizeof line), 2); /* "y", "z", error */
    CHECK(memcmp(line, "yz", 2) == 0);
    CHECK_EQ(blz_buf_reader_read(&br, line, sizeof line), -EIO);
    CHECK_EQ(blz_buf_reader_read_until(&br, ';', line, sizeof line), 2); /* the stream goes on */
    CHECK(memcmp(line, "w;", 2) == 0);
    blz_buf_reader_deinit(&br);

    script u = {{"q", NULL}, {0, -ETIMEDOUT}, 2, 0};
    CHECK_OK(blz_buf_reader_init(&br, (blz_reader){&script_reader_vt, &u}, small, sizeof small));
    CHECK_EQ(blz_buf_reader_read_until(&br, ';', line, sizeof line), 1);
    const void *data = NULL;
    CHECK_EQ(blz_buf_reader_fill(&br, &data), -ETIMEDOUT);
    CHECK(data == NULL);
    CHECK_EQ(blz_buf_reader_fill(&br, &data), 0);
    blz_buf_reader_deinit(&br);
}

/* blz_copy stores *copied on every return (stream.h), the -ENOMEM of its
 * buffer included: a caller reads it whatever the result. */
BLZ_TEST(copy_without_memory_still_stores_its_count)
{
    blz_test_counting_allocator_install();
    blz_mem_reader m;
    blz_mem_writer w;
    char out[8];
    uint64_t copied = 99; /* what an uninitialised count might hold */
    blz_test_alloc_fail_after(0);
    CHECK_EQ(blz_copy(blz_mem_reader_init(&m, "abc", 3), blz_mem_writer_init(&w, out, sizeof out),
                      &copied),
             -ENOMEM);
    CHECK_EQ(copied, 0u);
    CHECK_EQ(blz_mem_writer_len(&w), 0u);

    uint64_t ab = 99, ba = 99; /* copy both ways already does */
    blz_test_alloc_fail_after(0);
    CHECK_EQ(blz_copy_bidirectional((blz_duplex){blz_mem_reader_init(&m, "abc", 3),
                                                 blz_mem_writer_init(&w, out, sizeof out)},
                                    (blz_duplex){blz_mem_reader_init(&m, "abc", 3),
                                                 blz_mem_writer_init(&w, out, sizeof out)},
                                    &ab, &ba),
             -ENOMEM);
    CHECK_EQ(ab, 0u);
    CHECK_EQ(ba, 0u);
}

/* read_to_end stores *len when its future completes, also on error
 * (stream.h): a refused reader or buffer included, as copy stores its count. */
BLZ_TEST(read_to_end_refused_still_stores_its_length)
{
    unsigned char buf[8];
    size_t len = 99;
    blz_reader none = {NULL, NULL};
    CHECK_EQ(blz_read_to_end(none, buf, sizeof buf, &len), -EINVAL);
    CHECK_EQ(len, 0u);
    blz_mem_reader m;
    len = 99;
    CHECK_EQ(blz_read_to_end(blz_mem_reader_init(&m, "abc", 3), NULL, 4, &len), -EINVAL);
    CHECK_EQ(len, 0u);
}
