/*
 * Streams over real sockets: BufReader lines and delimiters, BufWriter
 * batching and pass-through, copy (as a proxy), read_exact and write_all,
 * read_to_end bounded by the caller's buffer, the limited reader (take),
 * the future tier in a stackless task, and drops leaving nothing behind.
 */
#include "blitzio/stream.h"
#include "net_common.h"

static void
tcp_pair(blz_tcp_listener *l, const blz_addr *a, blz_tcp_stream **c, blz_tcp_stream **s)
{
    CHECK_OK(blz_tcp_connect_addr(a, c));
    CHECK_OK(blz_tcp_accept(l, s, NULL));
}

/* ---- buffered reader ------------------------------------------------------------------ */

static void *
lines_writer(void *arg)
{
    blz_tcp_stream *s = arg;
    const char *parts[] = {"first line\nsec", "ond line\n", "", "a;b;c\n", "no newline at end"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        CHECK_OK(blz_tcp_write_all(s, parts[i], strlen(parts[i])));
        blz_yield();
    }
    CHECK_OK(blz_tcp_shutdown(s, BLZ_SHUT_WR));
    return NULL;
}

static void *
buf_reader_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_tcp_stream *c, *s;
    tcp_pair(l, &a, &c, &s);
    blz_join *j;
    CHECK_OK(blz_spawn(lines_writer, c, &j));

    blz_buf_reader br;
    char small[4];
    CHECK_OK(blz_buf_reader_init(&br, blz_tcp_reader(s), small, sizeof small)); /* tiny buffer */
    char line[64];
    CHECK_EQ(blz_buf_reader_read_line(&br, line, sizeof line), 11);
    CHECK_STR_EQ(line, "first line\n");
    CHECK_EQ(blz_buf_reader_read_line(&br, line, 8), 7); /* longer than cap-1: in pieces */
    CHECK_STR_EQ(line, "second ");
    CHECK_EQ(blz_buf_reader_read_line(&br, line, sizeof line), 5);
    CHECK_STR_EQ(line, "line\n");
    CHECK_EQ(blz_buf_reader_read_until(&br, ';', line, sizeof line), 2);
    CHECK(memcmp(line, "a;", 2) == 0);
    CHECK_EQ(blz_buf_reader_read_until(&br, ';', line, sizeof line), 2);
    CHECK_EQ(blz_buf_reader_read_line(&br, line, sizeof line), 2);
    CHECK_STR_EQ(line, "c\n");
    char tail[5];
    CHECK_OK(blz_buf_reader_read_exact(&br, tail, sizeof tail));
    CHECK(memcmp(tail, "no ne", 5) == 0);
    CHECK_EQ(blz_buf_reader_read_line(&br, line, sizeof line), 12); /* last line, no '\n' */
    CHECK_STR_EQ(line, "wline at end");
    CHECK_EQ(blz_buf_reader_read_line(&br, line, sizeof line), 0); /* end of stream */
    CHECK_EQ(blz_buf_reader_read(&br, line, sizeof line), 0);
    CHECK_EQ(blz_buf_reader_read_line(&br, line, 1), -EINVAL);
    blz_buf_reader_deinit(&br);
    CHECK_OK(blz_join_wait(j, NULL));
    blz_tcp_close(c);
    blz_tcp_close(s);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(buf_reader_lines)
{
    net_run(2, buf_reader_main, NULL);
}

/* ---- buffered writer, read_exact, write_all ------------------------------------------------ */

static void *
buf_writer_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_tcp_stream *c, *s;
    tcp_pair(l, &a, &c, &s);

    blz_buf_writer bw;
    CHECK_OK(blz_buf_writer_init(&bw, blz_tcp_writer(c), NULL, 1024));
    /* 10,000 tiny writes: batched into few syscalls. */
    for (uint64_t i = 0; i < 10000; i++) {
        unsigned char b = net_pattern(11, i);
        CHECK_EQ(blz_buf_writer_write(&bw, &b, 1), 1);
    }
    CHECK_GT(blz_buf_writer_buffered(&bw), 0);
    /* A big write goes straight through after the buffer drains. */
    static unsigned char big[100000];
    net_fill(11, 10000, big, sizeof big);
    CHECK_OK(blz_buf_writer_write_all(&bw, big, sizeof big));
    CHECK_OK(blz_write_all(blz_buf_writer_as_writer(&bw), "END", 3));
    CHECK_OK(blz_flush(blz_buf_writer_as_writer(&bw)));
    CHECK_EQ(blz_buf_writer_buffered(&bw), 0);
    blz_buf_writer_deinit(&bw);
    CHECK_OK(blz_tcp_shutdown(c, BLZ_SHUT_WR));

    static unsigned char in[110000];
    CHECK_OK(blz_read_exact(blz_tcp_reader(s), in, sizeof in));
    CHECK(net_verify(11, 0, in, sizeof in));
    char end[4];
    CHECK_EQ(blz_read_exact(blz_tcp_reader(s), end, sizeof end), -EPIPE); /* only 3 left */
    CHECK(memcmp(end, "END", 3) == 0);

    /* Bad input. */
    blz_reader none = {NULL, NULL};
    CHECK_EQ(blz_read(none, end, 1), -EINVAL);
    CHECK_EQ(blz_buf_reader_init(NULL, blz_tcp_reader(s), NULL, 0), -EINVAL);
    blz_buf_reader br;
    CHECK_EQ(blz_buf_reader_init(&br, none, NULL, 0), -EINVAL);
    CHECK_EQ(blz_buf_reader_init(&br, blz_tcp_reader(s), end, 0), -EINVAL);
    blz_tcp_close(c);
    blz_tcp_close(s);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(buf_writer_and_exact)
{
    net_run(2, buf_writer_main, NULL);
}

/* ---- copy as a proxy ------------------------------------------------------------------------ */

#define PROXY_BYTES (8u << 20)

typedef struct proxy_ctx {
    blz_tcp_stream *from, *to;
    uint64_t copied;
} proxy_ctx;

static void *
proxy_task(void *arg)
{
    proxy_ctx *p = arg;
    CHECK_OK(blz_copy(blz_tcp_reader(p->from), blz_tcp_writer(p->to), &p->copied));
    CHECK_OK(blz_tcp_shutdown(p->to, BLZ_SHUT_WR));
    return NULL;
}

static void *
producer(void *arg)
{
    blz_tcp_stream *s = arg;
    unsigned char *buf = malloc(65536);
    for (uint64_t off = 0; off < PROXY_BYTES; off += 65536) {
        net_fill(21, off, buf, 65536);
        CHECK_OK(blz_tcp_write_all(s, buf, 65536));
    }
    free(buf);
    CHECK_OK(blz_tcp_shutdown(s, BLZ_SHUT_WR));
    return NULL;
}

static void *
copy_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_tcp_stream *c1, *s1, *c2, *s2;
    tcp_pair(l, &a, &c1, &s1); /* producer -> proxy */
    tcp_pair(l, &a, &c2, &s2); /* proxy -> consumer */
    proxy_ctx p = {s1, c2, 0};
    blz_join *jp, *jw;
    CHECK_OK(blz_spawn(proxy_task, &p, &jp));
    CHECK_OK(blz_spawn(producer, c1, &jw));
    unsigned char *buf = malloc(65536);
    uint64_t got = 0;
    for (;;) {
        ssize_t n = CHECK_OK(blz_read(blz_tcp_reader(s2), buf, 65536));
        if (n == 0) {
            break;
        }
        CHECK(net_verify(21, got, buf, (size_t) n));
        got += (uint64_t) n;
    }
    free(buf);
    CHECK_EQ(got, PROXY_BYTES);
    CHECK_OK(blz_join_wait(jw, NULL));
    CHECK_OK(blz_join_wait(jp, NULL));
    CHECK_EQ(p.copied, PROXY_BYTES);
    blz_tcp_close(c1);
    blz_tcp_close(s1);
    blz_tcp_close(c2);
    blz_tcp_close(s2);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(copy_proxies_8mib)
{
    net_run(2, copy_main, NULL);
}

/* ---- the future tier: copy in a stackless task; drops ---------------------------------------- */

typedef struct copy_task {
    blz_future base;
    blz_stream_future copy;
} copy_task;

static blz_poll
copy_task_poll(blz_future *self, blz_context *cx)
{
    copy_task *t = (copy_task *) self;
    if (blz_future_poll(&t->copy.base, cx) == BLZ_PENDING) {
        return BLZ_PENDING;
    }
    self->result = t->copy.base.result;
    return BLZ_READY;
}

static void
copy_task_drop(blz_future *self)
{
    blz_future_drop(&((copy_task *) self)->copy.base);
}

static const blz_future_vtable copy_task_vt = {copy_task_poll, copy_task_drop};

static void *
stackless_copy_main(void *arg)
{
    (void) arg;
    blz_unix_stream *a, *b, *x, *y;
    CHECK_OK(blz_unix_pair(&a, &b)); /* a -> b: copied -> x -> y */
    CHECK_OK(blz_unix_pair(&x, &y));
    static unsigned char cbuf[4096];
    static uint64_t copied;
    copy_task t;
    memset(&t, 0, sizeof t);
    blz_future_init(&t.base, &copy_task_vt);
    blz_copy_fut(blz_unix_reader(b), blz_unix_writer(x), cbuf, sizeof cbuf, &copied, &t.copy);
    blz_join *j;
    CHECK_OK(blz_spawn_future(&t.base, sizeof t, &j));
    static unsigned char data[50000], back[50000];
    net_fill(5, 0, data, sizeof data);
    CHECK_OK(blz_write_all(blz_unix_writer(a), data, sizeof data));
    CHECK_OK(blz_unix_shutdown(a, BLZ_SHUT_WR));
    CHECK_OK(blz_read_exact(blz_unix_reader(y), back, sizeof back));
    CHECK(memcmp(data, back, sizeof data) == 0);
    void *res = (void *) 1;
    CHECK_OK(blz_join_wait(j, &res));
    CHECK_EQ((intptr_t) res, 0);
    CHECK_EQ(copied, sizeof data);

    /* A read_exact future dropped half-way unlinks its waiter. */
    blz_stream_future rf;
    char two[2];
    blz_read_exact_fut(blz_unix_reader(y), two, sizeof two, &rf);
    blz_context cx = {blz_waker_noop()};
    /* The copy's last reads may leave a readiness report in flight (io_uring
     * with a second worker reaping it), which rightly wakes the waiter once;
     * a woken future registers again on its next poll. */
    int polls = 0;
    do {
        CHECK_EQ(blz_future_poll(&rf.base, &cx), BLZ_PENDING);
        blz_yield();
    } while (blz__io_driver_waiters(net_driver()) != 1 && ++polls < 1000);
    CHECK_EQ(blz__io_driver_waiters(net_driver()), 1);
    blz_future_drop(&rf.base);
    CHECK_EQ(blz__io_driver_waiters(net_driver()), 0);
    /* Likewise a BufReader read. */
    blz_buf_reader br;
    CHECK_OK(blz_buf_reader_init(&br, blz_unix_reader(y), NULL, 0));
    blz_io_future bf;
    blz_read_fut(blz_buf_reader_as_reader(&br), two, 1, &bf);
    CHECK_EQ(blz_future_poll(&bf.base, &cx), BLZ_PENDING);
    blz_future_drop(&bf.base);
    CHECK_EQ(blz__io_driver_waiters(net_driver()), 0);
    blz_buf_reader_deinit(&br);
    blz_unix_close(a);
    blz_unix_close(b);
    blz_unix_close(x);
    blz_unix_close(y);
    return NULL;
}

BLZ_TEST(stackless_copy_and_drops)
{
    net_run(2, stackless_copy_main, NULL);
}

/* ---- read to end; the limited reader ------------------------------------------------------- */

/* A Unix pair carrying `n` bytes of pattern `seed`, then the end. */
static void
sent_and_ended(blz_unix_stream **rd, blz_unix_stream **wr, uint64_t seed, size_t n)
{
    CHECK_OK(blz_unix_pair(wr, rd));
    unsigned char *data = malloc(n + 1);
    CHECK(data != NULL);
    net_fill(seed, 0, data, n);
    CHECK_OK(blz_write_all(blz_unix_writer(*wr), data, n));
    free(data);
    CHECK_OK(blz_write_shutdown(blz_unix_writer(*wr)));
}

static void
close_pair(blz_unix_stream *a, blz_unix_stream *b)
{
    blz_unix_close(a);
    blz_unix_close(b);
}

static void *
read_to_end_main(void *arg)
{
    (void) arg;
    static unsigned char buf[20000];
    blz_unix_stream *r, *w;
    size_t len = 99;
    /* Room for more: all of it, then the end. */
    sent_and_ended(&r, &w, 31, 10000);
    CHECK_OK(blz_read_to_end(blz_unix_reader(r), buf, sizeof buf, &len));
    CHECK_EQ(len, 10000u);
    CHECK(net_verify(31, 0, buf, len));
    close_pair(r, w);
    /* Exactly full: the probe finds the end. */
    sent_and_ended(&r, &w, 32, 10000);
    CHECK_OK(blz_read_to_end(blz_unix_reader(r), buf, 10000, &len));
    CHECK_EQ(len, 10000u);
    CHECK(net_verify(32, 0, buf, len));
    close_pair(r, w);
    /* One byte short: -EFBIG with what fits; the byte after it was taken. */
    sent_and_ended(&r, &w, 33, 10000);
    CHECK_EQ(blz_read_to_end(blz_unix_reader(r), buf, 9998, &len), -EFBIG);
    CHECK_EQ(len, 9998u);
    CHECK(net_verify(33, 0, buf, len));
    CHECK_EQ(blz_read(blz_unix_reader(r), buf, sizeof buf), 1);
    CHECK(net_verify(33, 9999, buf, 1));
    close_pair(r, w);
    /* No room at all: an empty stream is fine, any byte is too many. */
    sent_and_ended(&r, &w, 34, 0);
    CHECK_OK(blz_read_to_end(blz_unix_reader(r), NULL, 0, &len));
    CHECK_EQ(len, 0u);
    close_pair(r, w);
    sent_and_ended(&r, &w, 35, 1);
    CHECK_EQ(blz_read_to_end(blz_unix_reader(r), NULL, 0, &len), -EFBIG);
    CHECK_EQ(len, 0u);
    /* Bad input. */
    blz_reader none = {NULL, NULL};
    CHECK_EQ(blz_read_to_end(none, buf, sizeof buf, &len), -EINVAL);
    CHECK_EQ(blz_read_to_end(blz_unix_reader(r), NULL, 1, &len), -EINVAL);
    CHECK_EQ(blz_read_to_end(blz_unix_reader(r), buf, sizeof buf, NULL), -EINVAL);
    close_pair(r, w);
    return NULL;
}

BLZ_TEST(read_to_end_bounded_by_the_callers_buffer)
{
    net_run(2, read_to_end_main, NULL);
}

static void *
take_main(void *arg)
{
    (void) arg;
    static unsigned char buf[200000];
    blz_unix_stream *r, *w;
    size_t len;
    /* Four bytes of ten, then the rest from the inner reader. */
    sent_and_ended(&r, &w, 41, 10);
    blz_take t;
    blz_reader limited = blz_take_init(&t, blz_unix_reader(r), 4);
    CHECK_EQ(blz_take_left(&t), 4u);
    CHECK_OK(blz_read_to_end(limited, buf, sizeof buf, &len));
    CHECK_EQ(len, 4u);
    CHECK(net_verify(41, 0, buf, 4));
    CHECK_EQ(blz_take_left(&t), 0u);
    CHECK_EQ(blz_read(limited, buf, sizeof buf), 0); /* stays ended */
    CHECK_OK(blz_read_to_end(blz_unix_reader(r), buf, sizeof buf, &len));
    CHECK_EQ(len, 6u);
    CHECK(net_verify(41, 4, buf, 6));
    close_pair(r, w);

    /* A body of known length copied on, the stream going on after it. */
    blz_unix_stream *x, *y;
    sent_and_ended(&r, &w, 42, 150000);
    CHECK_OK(blz_unix_pair(&x, &y));
    uint64_t copied = 0;
    limited = blz_take_init(&t, blz_unix_reader(r), 100000);
    static unsigned char cbuf[4096];
    blz_stream_future cf;
    blz_copy_fut(limited, blz_unix_writer(x), cbuf, sizeof cbuf, &copied, &cf);
    CHECK_OK(blz_await(&cf.base));
    CHECK_EQ(copied, 100000u);
    CHECK_OK(blz_write_shutdown(blz_unix_writer(x)));
    CHECK_OK(blz_read_to_end(blz_unix_reader(y), buf, sizeof buf, &len));
    CHECK_EQ(len, 100000u);
    CHECK(net_verify(42, 0, buf, len));
    CHECK_OK(blz_read_to_end(blz_unix_reader(r), buf, sizeof buf, &len));
    CHECK_EQ(len, 50000u);
    CHECK(net_verify(42, 100000, buf, len));
    close_pair(x, y);
    close_pair(r, w);

    /* A pending read through the limit, dropped: no waiter stays. */
    CHECK_OK(blz_unix_pair(&r, &w));
    limited = blz_take_init(&t, blz_unix_reader(r), 5);
    blz_io_future rf;
    blz_read_fut(limited, buf, sizeof buf, &rf);
    blz_context cx = {blz_waker_noop()};
    CHECK_EQ(blz_future_poll(&rf.base, &cx), BLZ_PENDING);
    CHECK_EQ(blz__io_driver_waiters(net_driver()), 1);
    blz_future_drop(&rf.base);
    CHECK_EQ(blz__io_driver_waiters(net_driver()), 0);
    CHECK_EQ(blz_take_left(&t), 5u);
    close_pair(r, w);

    /* Bad input: a reader whose reads fail. */
    blz_reader none = {NULL, NULL};
    CHECK_EQ(blz_read(blz_take_init(&t, none, 5), buf, 1), -EINVAL);
    CHECK_EQ(blz_read(blz_take_init(NULL, none, 5), buf, 1), -EINVAL);
    CHECK_EQ(blz_take_left(NULL), 0u);
    return NULL;
}

BLZ_TEST(take_limits_a_reader)
{
    net_run(2, take_main, NULL);
}
