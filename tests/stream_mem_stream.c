/*
 * tests/stream_mem_stream.c — blz_mem_stream, two connected in-memory byte
 * streams: waits polled by hand (a read waits for bytes, a write for room,
 * each woken by the other side), partial writes at the bound, shutdown and
 * close seen from the other end, 1 MiB each way between two plain threads
 * through a 61-byte bound, an echo between fibers in a runtime, a proxy
 * (copy both ways) between two pairs, a copy that never waits still letting
 * another task run (the coop budget), refusals and no leaks.
 */
#include "blitzio/stream.h"

#include "blitzio.h"
#include "harness.h"
#include "poll_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Runs `body` on a new plain thread and checks that no blitzio allocation is
 * left once it has ended (a thread's first await makes its parker, which
 * goes with the thread). */
static void
on_thread_no_leaks(void *(*body)(void *) )
{
    blz_test_counting_allocator_install();
    pthread_t t;
    CHECK_OK(pthread_create(&t, NULL, body, NULL));
    CHECK_OK(pthread_join(t, NULL));
    CHECK_EQ(blz_test_alloc_live(), 0);
}

static void *
waits_by_hand_body(void *arg)
{
    (void) arg;
    blz_mem_stream *a, *b;
    CHECK_OK(blz_mem_stream_pair(8, &a, &b));
    blz_reader br = blz_mem_stream_reader(b);
    blz_writer aw = blz_mem_stream_writer(a);
    test_waker rt, wt;
    test_waker_init(&rt);
    test_waker_init(&wt);

    /* A read of an empty direction waits; the write wakes it. */
    char got[16] = {0};
    blz_io_future rf, wf;
    blz_read_fut(br, got, sizeof got, &rf);
    CHECK_EQ(poll_with(&rf.base, &rt), BLZ_PENDING);
    CHECK_EQ(poll_with(&rf.base, &rt), BLZ_PENDING); /* polled again: one waker kept */
    CHECK_EQ(blz_write(aw, "hello", 5), 5);
    CHECK_EQ(test_wakes(&rt), 1);
    CHECK_EQ(poll_with(&rf.base, &rt), BLZ_READY);
    CHECK_EQ(rf.base.result, 5);
    CHECK(memcmp(got, "hello", 5) == 0);
    CHECK_NO_WAKER_REFS(&rt);

    /* At the bound a write takes what fits; the next one waits for room. */
    CHECK_EQ(blz_write(aw, "0123456789", 10), 8);
    blz_write_fut(aw, "89", 2, &wf);
    CHECK_EQ(poll_with(&wf.base, &wt), BLZ_PENDING);
    CHECK_EQ(blz_read(br, got, 3), 3);
    CHECK(memcmp(got, "012", 3) == 0);
    CHECK_EQ(test_wakes(&wt), 1);
    CHECK_EQ(poll_with(&wf.base, &wt), BLZ_READY);
    CHECK_EQ(wf.base.result, 2);
    /* The ring wrapped: order is kept across the wrap. */
    CHECK_EQ(blz_read(br, got, sizeof got), 7);
    CHECK(memcmp(got, "3456789", 7) == 0);
    CHECK_NO_WAKER_REFS(&wt);

    /* A dropped wait leaves nothing behind, and the stream goes on. */
    blz_read_fut(br, got, sizeof got, &rf);
    CHECK_EQ(poll_with(&rf.base, &rt), BLZ_PENDING);
    blz_future_drop(&rf.base);
    CHECK_NO_WAKER_REFS(&rt);
    CHECK_EQ(blz_write(aw, "x", 1), 1);
    CHECK_EQ(test_wakes(&rt), 1); /* the dropped wait was not woken */
    CHECK_EQ(blz_read(br, got, 1), 1);

    /* Zero bytes move at once. */
    CHECK_EQ(blz_read(br, got, 0), 0);
    CHECK_EQ(blz_write(aw, got, 0), 0);
    blz_mem_stream_close(a);
    blz_mem_stream_close(b);
    return NULL;
}

BLZ_TEST(waits_by_hand)
{
    on_thread_no_leaks(waits_by_hand_body);
}

static void *
shutdown_and_close_seen_from_the_other_end_body(void *arg)
{
    (void) arg;
    blz_mem_stream *a, *b;
    CHECK_OK(blz_mem_stream_pair(64, &a, &b));
    char got[16];

    /* a ends its direction: b reads the rest, then 0; b's direction still works. */
    CHECK_EQ(blz_write(blz_mem_stream_writer(a), "tail", 4), 4);
    CHECK_OK(blz_write_shutdown(blz_mem_stream_writer(a)));
    CHECK_EQ(blz_write(blz_mem_stream_writer(a), "more", 4), -EPIPE);
    CHECK_EQ(blz_read(blz_mem_stream_reader(b), got, sizeof got), 4);
    CHECK_EQ(blz_read(blz_mem_stream_reader(b), got, sizeof got), 0);
    CHECK_EQ(blz_write(blz_mem_stream_writer(b), "back", 4), 4);
    CHECK_EQ(blz_read(blz_mem_stream_reader(a), got, sizeof got), 4);
    CHECK(memcmp(got, "back", 4) == 0);

    /* b waits to read; a closes: the wait ends with end of stream, and b's
     * writes fail. */
    test_waker t;
    test_waker_init(&t);
    blz_io_future rf;
    blz_mem_stream *c, *d;
    CHECK_OK(blz_mem_stream_pair(64, &c, &d));
    CHECK_EQ(blz_write(blz_mem_stream_writer(c), "last", 4), 4);
    CHECK_EQ(blz_read(blz_mem_stream_reader(d), got, sizeof got), 4);
    blz_read_fut(blz_mem_stream_reader(d), got, sizeof got, &rf);
    CHECK_EQ(poll_with(&rf.base, &t), BLZ_PENDING);
    blz_mem_stream_close(c);
    CHECK_EQ(test_wakes(&t), 1);
    CHECK_EQ(poll_with(&rf.base, &t), BLZ_READY);
    CHECK_EQ(rf.base.result, 0);
    CHECK_NO_WAKER_REFS(&t);
    CHECK_EQ(blz_write(blz_mem_stream_writer(d), "x", 1), -EPIPE);
    blz_mem_stream_close(d);

    /* A writer waiting for room when the reader closes: -EPIPE. */
    CHECK_OK(blz_mem_stream_pair(2, &c, &d));
    CHECK_EQ(blz_write(blz_mem_stream_writer(c), "ab", 2), 2);
    blz_io_future wf;
    blz_write_fut(blz_mem_stream_writer(c), "c", 1, &wf);
    CHECK_EQ(poll_with(&wf.base, &t), BLZ_PENDING);
    blz_mem_stream_close(d);
    CHECK_EQ(test_wakes(&t), 2);
    CHECK_EQ(poll_with(&wf.base, &t), BLZ_READY);
    CHECK_EQ(wf.base.result, -EPIPE);
    CHECK_NO_WAKER_REFS(&t);
    blz_mem_stream_close(c);

    blz_mem_stream_close(a);
    blz_mem_stream_close(b);
    return NULL;
}

BLZ_TEST(shutdown_and_close_seen_from_the_other_end)
{
    on_thread_no_leaks(shutdown_and_close_seen_from_the_other_end_body);
}

/* ---- real threads and tasks ------------------------------------------------------- */

#define BIG (1u << 20)

typedef struct side {
    blz_mem_stream *s;
    unsigned seed; /* the pattern this side writes; the other checks it */
    unsigned peer_seed;
} side;

static unsigned char
pattern(unsigned seed, size_t i)
{
    return (unsigned char) ((i * 131u + seed) ^ (i >> 9));
}

/* Writes BIG bytes of its pattern in odd-sized pieces, then shuts down. */
static void *
writer_side(void *arg)
{
    side *sd = arg;
    unsigned char *buf = malloc(4096);
    CHECK(buf != NULL);
    size_t off = 0, step = 1;
    while (off < BIG) {
        size_t n = step < BIG - off ? step : BIG - off;
        for (size_t i = 0; i < n; i++) {
            buf[i] = pattern(sd->seed, off + i);
        }
        CHECK_OK(blz_write_all(blz_mem_stream_writer(sd->s), buf, n));
        off += n;
        step = step * 7 % 4093 + 1;
    }
    CHECK_OK(blz_write_shutdown(blz_mem_stream_writer(sd->s)));
    free(buf);
    return NULL;
}

/* Reads until end of stream, checking every byte of the peer's pattern. */
static void *
reader_side(void *arg)
{
    side *sd = arg;
    unsigned char *buf = malloc(1000);
    CHECK(buf != NULL);
    size_t off = 0;
    for (;;) {
        ssize_t n = blz_read(blz_mem_stream_reader(sd->s), buf, 1000);
        CHECK_GE(n, 0);
        if (n == 0) {
            break;
        }
        for (ssize_t i = 0; i < n; i++) {
            CHECK_EQ(buf[i], pattern(sd->peer_seed, off + (size_t) i));
        }
        off += (size_t) n;
    }
    CHECK_EQ(off, BIG);
    free(buf);
    return NULL;
}

BLZ_TEST(a_mebibyte_each_way_between_threads)
{
    blz_test_counting_allocator_install();
    blz_mem_stream *a, *b;
    CHECK_OK(blz_mem_stream_pair(61, &a, &b)); /* a small bound: nearly every call waits */
    side sa = {a, 1, 2}, sb = {b, 2, 1};
    pthread_t t[4];
    CHECK_OK(pthread_create(&t[0], NULL, writer_side, &sa));
    CHECK_OK(pthread_create(&t[1], NULL, reader_side, &sa));
    CHECK_OK(pthread_create(&t[2], NULL, writer_side, &sb));
    CHECK_OK(pthread_create(&t[3], NULL, reader_side, &sb));
    for (int i = 0; i < 4; i++) {
        CHECK_OK(pthread_join(t[i], NULL));
    }
    blz_mem_stream_close(a);
    blz_mem_stream_close(b);
    CHECK_EQ(blz_test_alloc_live(), 0); /* the threads took their parkers with them */
}

#define ECHOES 2000

static void *
echo_task(void *arg)
{
    blz_mem_stream *s = arg;
    char buf[32];
    ssize_t n;
    while ((n = blz_read(blz_mem_stream_reader(s), buf, sizeof buf)) > 0) {
        CHECK_OK(blz_write_all(blz_mem_stream_writer(s), buf, (size_t) n));
    }
    CHECK_EQ(n, 0);
    CHECK_OK(blz_write_shutdown(blz_mem_stream_writer(s))); /* and ends its side too */
    return NULL;
}

static void *
echo_main(void *arg)
{
    (void) arg;
    blz_mem_stream *c, *s;
    CHECK_OK(blz_mem_stream_pair(16, &c, &s));
    blz_join *j;
    CHECK_OK(blz_spawn(echo_task, s, &j));
    for (int i = 0; i < ECHOES; i++) {
        char msg[24], back[24];
        int len = snprintf(msg, sizeof msg, "message %d", i);
        CHECK_OK(blz_write_all(blz_mem_stream_writer(c), msg, (size_t) len));
        CHECK_OK(blz_read_exact(blz_mem_stream_reader(c), back, (size_t) len));
        CHECK(memcmp(msg, back, (size_t) len) == 0);
    }
    CHECK_OK(blz_write_shutdown(blz_mem_stream_writer(c)));
    CHECK_OK(blz_join_wait(j, NULL));
    char end;
    CHECK_EQ(blz_read(blz_mem_stream_reader(c), &end, 1), 0);
    blz_mem_stream_close(c);
    blz_mem_stream_close(s);
    return NULL;
}

/* Runs `fn` as the main task of a fresh two-worker runtime. */
static void
in_runtime(blz_task_fn fn)
{
    blz_runtime *rt = test_new_rt(2);
    CHECK_OK(blz_runtime_block_on(rt, fn, NULL, NULL));
    blz_runtime_free(rt);
}

BLZ_TEST(echo_between_fibers)
{
    in_runtime(echo_main);
}

/* ---- a copy that never waits still lets other tasks run ------------------------------ */

static atomic_int other_ran;

static void *
mark_ran(void *arg)
{
    (void) arg;
    atomic_store(&other_ran, 1);
    return NULL;
}

#define COPIED (8u << 20)

static void *
busy_main(void *arg)
{
    (void) arg;
    unsigned char *src = malloc(COPIED);
    CHECK(src != NULL);
    memset(src, 0x5a, COPIED);
    blz_mem_stream *a, *b;
    CHECK_OK(blz_mem_stream_pair(COPIED, &a, &b));
    atomic_store(&other_ran, 0);
    blz_join *j;
    CHECK_OK(blz_spawn(mark_ran, NULL, &j));
    /* One worker, and one await: a copy from memory into a stream with room
     * for all of it never waits, so the other task runs only if the stream's
     * own polls spend the coop budget and the copy gives the worker up. */
    blz_mem_reader m;
    uint64_t copied = 0;
    CHECK_OK(blz_copy(blz_mem_reader_init(&m, src, COPIED), blz_mem_stream_writer(a), &copied));
    CHECK_EQ(copied, COPIED);
    CHECK_EQ(atomic_load(&other_ran), 1);
    CHECK_OK(blz_join_wait(j, NULL));
    blz_mem_stream_close(a);
    blz_mem_stream_close(b);
    free(src);
    return NULL;
}

BLZ_TEST(a_copy_that_never_waits_still_yields)
{
    blz_runtime *rt = test_current_thread_rt();
    CHECK_OK(blz_runtime_block_on(rt, busy_main, NULL, NULL));
    blz_runtime_free(rt);
}

/* ---- a proxy between two pairs ------------------------------------------------------ */

typedef struct proxy {
    blz_mem_stream *left, *right;
    uint64_t l2r, r2l;
    int result;
} proxy;

static void *
proxy_task(void *arg)
{
    proxy *p = arg;
    p->result = blz_copy_bidirectional(blz_mem_stream_duplex(p->left),
                                       blz_mem_stream_duplex(p->right), &p->l2r, &p->r2l);
    return NULL;
}

static void *
proxy_main(void *arg)
{
    (void) arg;
    blz_mem_stream *client, *server;
    proxy p = {0};
    CHECK_OK(blz_mem_stream_pair(32, &client, &p.left));
    CHECK_OK(blz_mem_stream_pair(32, &p.right, &server));
    blz_join *j;
    CHECK_OK(blz_spawn(proxy_task, &p, &j));
    CHECK_OK(blz_write_all(blz_mem_stream_writer(client), "ping", 4));
    char got[8];
    CHECK_OK(blz_read_exact(blz_mem_stream_reader(server), got, 4));
    CHECK(memcmp(got, "ping", 4) == 0);
    CHECK_OK(blz_write_all(blz_mem_stream_writer(server), "pong!", 5));
    CHECK_OK(blz_read_exact(blz_mem_stream_reader(client), got, 5));
    CHECK(memcmp(got, "pong!", 5) == 0);
    /* The client ends; the proxy passes the end on; the server ends too. */
    CHECK_OK(blz_write_shutdown(blz_mem_stream_writer(client)));
    CHECK_EQ(blz_read(blz_mem_stream_reader(server), got, sizeof got), 0);
    CHECK_OK(blz_write_shutdown(blz_mem_stream_writer(server)));
    CHECK_OK(blz_join_wait(j, NULL));
    CHECK_EQ(p.result, 0);
    CHECK_EQ(p.l2r, 4);
    CHECK_EQ(p.r2l, 5);
    CHECK_EQ(blz_read(blz_mem_stream_reader(client), got, sizeof got), 0);
    blz_mem_stream_close(client);
    blz_mem_stream_close(p.left);
    blz_mem_stream_close(p.right);
    blz_mem_stream_close(server);
    return NULL;
}

BLZ_TEST(proxy_copies_both_ways_and_passes_the_end_on)
{
    in_runtime(proxy_main);
}

static void *
refusals_body(void *arg)
{
    (void) arg;
    blz_mem_stream *a = NULL, *b = NULL;
    CHECK_EQ(blz_mem_stream_pair(0, &a, &b), -EINVAL);
    CHECK_EQ(blz_mem_stream_pair(8, NULL, &b), -EINVAL);
    CHECK_EQ(blz_mem_stream_pair(8, &a, NULL), -EINVAL);
    CHECK_EQ(blz_mem_stream_pair(SIZE_MAX, &a, &b), -EINVAL);
    blz_test_alloc_fail_after(0);
    CHECK_EQ(blz_mem_stream_pair(8, &a, &b), -ENOMEM);
    char c = 0;
    CHECK_EQ(blz_read(blz_mem_stream_reader(NULL), &c, 1), -EINVAL);
    CHECK_EQ(blz_write(blz_mem_stream_writer(NULL), &c, 1), -EINVAL);
    CHECK_OK(blz_mem_stream_pair(8, &a, &b));
    CHECK_EQ(blz_read(blz_mem_stream_reader(a), NULL, 1), -EINVAL);
    blz_mem_stream_close(NULL);
    blz_mem_stream_close(a);
    blz_mem_stream_close(b);
    return NULL;
}

BLZ_TEST(refusals)
{
    on_thread_no_leaks(refusals_body);
}

/* The buffered reader's future tiers, polled by hand: a line that arrives
 * in pieces, what is left shown by the try tier without a read, read_until
 * up to the end of the stream, a future dropped while it waits, and
 * refusals. */
static void *
buf_reader_futures_body(void *arg)
{
    (void) arg;
    blz_mem_stream *a, *b;
    CHECK_OK(blz_mem_stream_pair(64, &a, &b));
    blz_buf_reader br;
    CHECK_OK(blz_buf_reader_init(&br, blz_mem_stream_reader(b), NULL, 16));
    test_waker t;
    test_waker_init(&t);
    blz_writer w = blz_mem_stream_writer(a);

    char line[32];
    blz_io_future f;
    blz_buf_reader_read_line_fut(&br, line, sizeof line, &f);
    CHECK_EQ(poll_with(&f.base, &t), BLZ_PENDING);
    CHECK_EQ(blz_write(w, "ab", 2), 2);
    CHECK_EQ(test_wakes(&t), 1);
    CHECK_EQ(poll_with(&f.base, &t), BLZ_PENDING); /* no newline yet: it waits again */
    CHECK_EQ(blz_write(w, "c\nrest", 6), 6);
    CHECK_EQ(test_wakes(&t), 2);
    CHECK_EQ(poll_with(&f.base, &t), BLZ_READY);
    CHECK_EQ(f.base.result, 4);
    CHECK_STR_EQ(line, "abc\n");
    CHECK_NO_WAKER_REFS(&t);

    /* What came after the line is buffered: the try tier shows it. */
    const void *data = NULL;
    CHECK_EQ(blz_buf_reader_buffer(&br, &data), 4u);
    CHECK(data && memcmp(data, "rest", 4) == 0);
    blz_buf_reader_fill_fut(&br, &f);
    CHECK_EQ(poll_with(&f.base, &t), BLZ_READY); /* buffered: no read */
    CHECK_EQ(f.base.result, 4);

    /* read_until to the end of the stream: the rest, then 0. */
    CHECK_OK(blz_write_shutdown(w));
    blz_buf_reader_read_until_fut(&br, ';', line, sizeof line, &f);
    CHECK_EQ(poll_with(&f.base, &t), BLZ_READY);
    CHECK_EQ(f.base.result, 4);
    CHECK(memcmp(line, "rest", 4) == 0);
    blz_buf_reader_read_until_fut(&br, ';', line, sizeof line, &f);
    CHECK_EQ(poll_with(&f.base, &t), BLZ_READY);
    CHECK_EQ(f.base.result, 0);
    CHECK_EQ(blz_buf_reader_buffer(&br, &data), 0u);
    CHECK(data == NULL);
    blz_buf_reader_deinit(&br);

    /* A future dropped while it waits lets its read go (no waker kept), and
     * the reader works on. */
    blz_mem_stream *c, *d;
    CHECK_OK(blz_mem_stream_pair(64, &c, &d));
    CHECK_OK(blz_buf_reader_init(&br, blz_mem_stream_reader(d), NULL, 16));
    blz_buf_reader_read_until_fut(&br, ';', line, sizeof line, &f);
    CHECK_EQ(poll_with(&f.base, &t), BLZ_PENDING);
    blz_future_drop(&f.base);
    CHECK_NO_WAKER_REFS(&t);
    CHECK_EQ(blz_write(blz_mem_stream_writer(c), "x;y", 3), 3);
    blz_buf_reader_read_until_fut(&br, ';', line, sizeof line, &f);
    CHECK_EQ(poll_with(&f.base, &t), BLZ_READY);
    CHECK_EQ(f.base.result, 2);
    CHECK(memcmp(line, "x;", 2) == 0);

    /* Refusals; a NULL future is ignored. */
    blz_buf_reader_read_line_fut(&br, line, 1, &f);
    CHECK_EQ(poll_with(&f.base, &t), BLZ_READY);
    CHECK_EQ(f.base.result, -EINVAL);
    blz_buf_reader_read_until_fut(NULL, ';', line, sizeof line, &f);
    CHECK_EQ(poll_with(&f.base, &t), BLZ_READY);
    CHECK_EQ(f.base.result, -EINVAL);
    blz_buf_reader_read_until_fut(&br, ';', NULL, sizeof line, &f);
    CHECK_EQ(poll_with(&f.base, &t), BLZ_READY);
    CHECK_EQ(f.base.result, -EINVAL);
    blz_buf_reader_read_line_fut(&br, line, sizeof line, NULL);
    blz_buf_reader_fill_fut(&br, NULL);
    blz_buf_reader_read_fut(&br, line, sizeof line, NULL);
    CHECK_EQ(blz_buf_reader_buffer(NULL, &data), 0u);
    blz_buf_reader_deinit(&br);
    blz_mem_stream_close(c);
    blz_mem_stream_close(d);
    blz_mem_stream_close(a);
    blz_mem_stream_close(b);
    return NULL;
}

BLZ_TEST(buf_reader_futures_by_hand)
{
    on_thread_no_leaks(buf_reader_futures_body);
}
