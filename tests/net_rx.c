/*
 * Completion receive (io_uring: TCP streams read from buffers the kernel
 * filled; blz_runtime_config.recv_buffers): a reader that falls behind does
 * not take the whole pool, a pool run dry falls back to reading the socket,
 * the end of a stream and an error come after the data (also for readv), a
 * connected stream takes it as an accepted one does, and a one-worker
 * runtime (whose ring only its worker may enter) still does the I/O other
 * threads ask for.
 * Completion receive runs on one-worker runtimes; on several workers and on
 * epoll the same programs run on recv(2): the byte-level checks hold there
 * too, and the buffer counts stay 0.
 */
/* blz-test: timeout=120 */
#include "net_common.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>


static blz_runtime *
rx_runtime(unsigned workers, unsigned recv_buffers)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = workers;
    cfg.recv_buffers = recv_buffers;
    return backend_runtime_cfg(&cfg);
}

/* ---- a slow reader --------------------------------------------------------------- */

#define SLOW_TOTAL ((size_t) 8 << 20) /* 512 buffers' worth: twice the pool */

typedef struct writer_arg {
    blz_tcp_stream *s;
    uint64_t seed;
    size_t total;
    size_t chunk; /* bytes per write, at most 16 KiB; 0: 8 KiB */
} writer_arg;

/* Writes `total` bytes of the pattern of `seed`, then shuts the stream down. */
static void *
pattern_writer(void *arg)
{
    writer_arg *w = arg;
    unsigned char buf[16384];
    size_t chunk = w->chunk ? w->chunk : 8192;
    for (size_t off = 0; off < w->total;) {
        size_t n = w->total - off < chunk ? w->total - off : chunk;
        net_fill(w->seed, off, buf, n);
        CHECK_OK(blz_tcp_write_all(w->s, buf, n));
        off += n;
    }
    CHECK_OK(blz_tcp_shutdown(w->s, BLZ_SHUT_WR));
    return NULL;
}

/* Reads the pattern of `seed` to the end of the stream, `step` bytes at a
 * time, yielding after each read when `slow`; returns the bytes read. */
static size_t
pattern_reader(blz_tcp_stream *s, uint64_t seed, size_t step, bool slow)
{
    unsigned char buf[16384];
    size_t off = 0;
    for (;;) {
        ssize_t n = blz_tcp_read(s, buf, step);
        CHECK_GE(n, 0);
        if (n == 0) {
            return off;
        }
        CHECK(net_verify(seed, off, buf, (size_t) n));
        off += (size_t) n;
        if (slow) {
            blz_yield();
        }
    }
}

/* A listener on loopback and one connected pair on it. */
static blz_tcp_listener *
rx_open_pair(blz_tcp_stream **srv, blz_tcp_stream **cli)
{
    blz_addr addr;
    blz_tcp_listener *l = net_listen_any(&addr);
    net_pair(l, &addr, srv, cli);
    return l;
}

/* Closes a test's listener, its streams closed already; then no buffer may
 * stay held. */
static void
rx_close_listener(blz_tcp_listener *l)
{
    blz_tcp_listener_close(l);
    net_wait_rx_idle(blz__rt_current());
}

/* Closes what rx_open_pair opened. */
static void
rx_close_pair(blz_tcp_listener *l, blz_tcp_stream *srv, blz_tcp_stream *cli)
{
    blz_tcp_close(srv);
    blz_tcp_close(cli);
    rx_close_listener(l);
}

static void *
slow_reader_main(void *arg)
{
    (void) arg;
    blz_tcp_stream *srv = NULL, *cli = NULL;
    blz_tcp_listener *l = rx_open_pair(&srv, &cli);
    writer_arg w = {cli, 7, SLOW_TOTAL, 0};
    blz_join *j;
    CHECK_OK(blz_spawn(pattern_writer, &w, &j));
    /* The writer outruns the reader by far: the receive pauses and resumes
     * (a burst can still take many buffers: the kernel posts up to 32
     * completions of one receive per run of its work) and every byte comes
     * in order. */
    CHECK_EQ(pattern_reader(srv, 7, 1000, true), SLOW_TOTAL);
    CHECK_OK(blz_join_wait(j, NULL));
    rx_close_pair(l, srv, cli);
    return NULL;
}

/* Runs fn on a one-worker runtime (the single-issuer ring: completion
 * receive), then on one with `workers` workers (the shared ring, where
 * streams use readiness), each with `recv_buffers`. */
static void
run_rx(unsigned workers, unsigned recv_buffers, blz_task_fn fn)
{
    unsigned counts[2] = {1, workers};
    for (int i = 0; i < 2; i++) {
        blz_runtime *rt = rx_runtime(counts[i], recv_buffers);
        CHECK_OK(blz_runtime_block_on(rt, fn, NULL, NULL));
        blz_runtime_free(rt);
    }
}

BLZ_TEST(slow_reader_pauses_its_receive_and_loses_nothing)
{
    run_rx(2, 256, slow_reader_main);
}

/* ---- a reader that does not read ---------------------------------------------------- */

#define TRICKLE_MSGS 100

static void *
trickle_main(void *arg)
{
    (void) arg;
    blz_runtime *rt = blz__rt_current();
    blz_tcp_stream *srv = NULL, *cli = NULL;
    blz_tcp_listener *l = rx_open_pair(&srv, &cli);
    unsigned char buf[1024];
    unsigned out = 0, armed = 0;
    for (int i = 0; i < TRICKLE_MSGS; i++) {
        net_fill(9, (uint64_t) i * sizeof buf, buf, sizeof buf);
        unsigned before;
        net_rx_counts(rt, &before, &armed);
        CHECK_OK(blz_tcp_write_all(cli, buf, sizeof buf));
        /* Let it land in a buffer of its own while the receive is armed
         * (bounded: a paused receive takes nothing). */
        for (int t = 0; t < 100; t++) {
            net_rx_counts(rt, &out, &armed);
            if (out > before || armed == 0) {
                break;
            }
            (void) blz_sleep(blz_ms(1));
        }
    }
    /* Nobody read: the stream holds its four buffers (one more may have
     * been in flight when its receive was told to stop), not one per
     * message; the rest waits in the socket. */
    net_rx_counts(rt, &out, &armed);
    CHECK_LE(out, 8u);
    CHECK_OK(blz_tcp_shutdown(cli, BLZ_SHUT_WR));
    CHECK_EQ(pattern_reader(srv, 9, sizeof buf, false), (size_t) TRICKLE_MSGS * sizeof buf);
    rx_close_pair(l, srv, cli);
    return NULL;
}

BLZ_TEST(reader_that_does_not_read_holds_four_buffers)
{
    run_rx(2, 256, trickle_main);
}

/* ---- request and response: a few buffers, used again ------------------------------ */

#define PINGPONG_MSGS 400

/* Reads exactly n bytes from s. */
static void
read_n(blz_tcp_stream *s, unsigned char *buf, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = blz_tcp_read(s, buf + got, n - got);
        CHECK_GT(r, 0);
        got += (size_t) r;
    }
}

static void *
pingpong_main(void *arg)
{
    (void) arg;
    blz_runtime *rt = blz__rt_current();
    blz_tcp_stream *srv = NULL, *cli = NULL;
    blz_tcp_listener *l = rx_open_pair(&srv, &cli);
    unsigned before = net_rx_touched(rt);
    unsigned char msg[64], got[64];
    for (int i = 0; i < PINGPONG_MSGS; i++) {
        net_fill(13, (uint64_t) i * sizeof msg, msg, sizeof msg);
        CHECK_OK(blz_tcp_write_all(cli, msg, sizeof msg));
        read_n(srv, got, sizeof got);
        CHECK(memcmp(got, msg, sizeof msg) == 0);
        CHECK_OK(blz_tcp_write_all(srv, got, sizeof got));
        read_n(cli, got, sizeof got);
        CHECK(memcmp(got, msg, sizeof msg) == 0);
    }
    /* 800 receives (both ends read by completion on one worker): with the
     * whole pool in the ring they walked through every buffer (256 touched,
     * 4 MiB of memory for two small streams, all of it out of the cache);
     * the ring holds a few (32 at first), topped up with the ones just
     * given back. */
    unsigned touched = net_rx_touched(rt);
    if (net_rx_on(srv)) {
        CHECK_LE(touched, before + 64);
        CHECK_GE(touched, 1u);
    } else {
        CHECK_EQ(touched, 0u);
    }
    rx_close_pair(l, srv, cli);
    return NULL;
}

BLZ_TEST(request_and_response_use_a_few_buffers_again)
{
    run_rx(2, 256, pingpong_main);
}

/* ---- a fast writer and a reader that does not read -------------------------------- */

#define BURST_TOTAL ((size_t) 4 << 20)

static void *
burst_main(void *arg)
{
    (void) arg;
    blz_runtime *rt = blz__rt_current();
    blz_tcp_stream *srv = NULL, *cli = NULL;
    blz_tcp_listener *l = rx_open_pair(&srv, &cli);
    writer_arg w = {cli, 11, BURST_TOTAL, 16384};
    blz_join *j;
    CHECK_OK(blz_spawn(pattern_writer, &w, &j));
    /* Full buffers as fast as the kernel can fill them, and no reader: the
     * receive ends (its byte budget spent, or cancelled) with the stream
     * holding a handful of buffers; the socket keeps the rest, and the
     * writer blocks on it. Without a budget the cancel lands only after the
     * kernel's run of completions: 66 buffers here. */
    unsigned others = net_rx_on(cli) ? 1u : 0u; /* the writer's own receive */
    unsigned out = 0, armed = others + 1;
    for (int t = 0; t < 5000 && armed > others; t++) {
        (void) blz_sleep(blz_ms(1));
        net_rx_counts(rt, &out, &armed);
    }
    CHECK_EQ(armed, others);
    unsigned budget = net_rx_budget(rt);
    if (budget) {
        /* About budget / 16 KiB buffers; twice that leaves room for writes
         * the socket split. And some: the receive did take the data. */
        CHECK_LE(out, 2 * budget / 16384);
        CHECK_GE(out, 1u);
    } else if (net_rx_on(srv)) {
        fprintf(stderr, "  (this kernel has no receive budget: %u buffers held)\n", out);
    }
    CHECK_EQ(pattern_reader(srv, 11, 16384, false), BURST_TOTAL);
    CHECK_OK(blz_join_wait(j, NULL));
    rx_close_pair(l, srv, cli);
    return NULL;
}

BLZ_TEST(fast_writer_to_a_reader_that_does_not_read_takes_few_buffers)
{
    run_rx(2, 256, burst_main);
}

/* ---- a pool run dry ---------------------------------------------------------------- */

#define DRY_STREAMS 8
#define DRY_TOTAL   ((size_t) 200 * 1024)

static void *
dry_pool_main(void *arg)
{
    (void) arg;
    blz_addr addr;
    blz_tcp_listener *l = net_listen_any(&addr);
    blz_tcp_stream *srv[DRY_STREAMS], *cli[DRY_STREAMS];
    writer_arg w[DRY_STREAMS];
    blz_join *j[DRY_STREAMS];
    for (int i = 0; i < DRY_STREAMS; i++) {
        net_pair(l, &addr, &srv[i], &cli[i]);
        w[i] = (writer_arg){cli[i], 100u + (uint64_t) i, DRY_TOTAL, 0};
        CHECK_OK(blz_spawn(pattern_writer, &w[i], &j[i]));
    }
    /* One stream at a time, to its end: meanwhile the others' data fills
     * the four buffers, their receives end for want of one, and each is
     * later read from the socket itself, in order. */
    for (int i = 0; i < DRY_STREAMS; i++) {
        CHECK_EQ(pattern_reader(srv[i], 100u + (uint64_t) i, 16384, false), DRY_TOTAL);
        char c;
        CHECK_EQ(blz_tcp_read(srv[i], &c, 1), 0); /* and stays at its end */
    }
    for (int i = 0; i < DRY_STREAMS; i++) {
        CHECK_OK(blz_join_wait(j[i], NULL));
        blz_tcp_close(srv[i]);
        blz_tcp_close(cli[i]);
    }
    rx_close_listener(l);
    return NULL;
}

BLZ_TEST(dry_pool_falls_back_to_the_socket_in_order)
{
    run_rx(3, 4, dry_pool_main);
}

/* ---- the connecting side ----------------------------------------------------------- */

static void *
client_side_main(void *arg)
{
    (void) arg;
    blz_addr addr;
    blz_tcp_listener *l = net_listen_any(&addr);
    for (int round = 0; round < 10; round++) {
        blz_tcp_stream *srv = NULL, *cli = NULL;
        net_pair(l, &addr, &srv, &cli);
        /* A stream that connected takes completion receive once connected,
         * as an accepted one does from the start. */
        CHECK_EQ(net_rx_on(cli), net_rx_on(srv));
        writer_arg w = {srv, 50u + (uint64_t) round, (size_t) 1 << 20, 0};
        blz_join *j;
        CHECK_OK(blz_spawn(pattern_writer, &w, &j));
        CHECK_EQ(pattern_reader(cli, 50u + (uint64_t) round, 3000, round % 2 == 1),
                 (size_t) 1 << 20);
        CHECK_OK(blz_join_wait(j, NULL));
        blz_tcp_close(srv);
        blz_tcp_close(cli);
    }
    rx_close_listener(l);
    return NULL;
}

BLZ_TEST(connected_stream_reads_by_completion_too)
{
    run_rx(2, 256, client_side_main);
}

/* ---- end of stream and errors ------------------------------------------------------ */

static void *
reset_main(void *arg)
{
    (void) arg;
    blz_addr addr;
    blz_tcp_listener *l = net_listen_any(&addr);
    for (int round = 0; round < 20; round++) {
        blz_tcp_stream *srv = NULL, *cli = NULL;
        net_pair(l, &addr, &srv, &cli);
        CHECK_OK(blz_tcp_write_all(cli, "abc", 3));
        if (round % 2 == 0) {
            /* A FIN after the data: the data, then end of stream, for good. */
            CHECK_OK(blz_tcp_shutdown(cli, BLZ_SHUT_WR));
            char buf[8];
            CHECK_OK(net_read_exact(srv, buf, 3));
            CHECK(memcmp(buf, "abc", 3) == 0);
            CHECK_EQ(blz_tcp_read(srv, buf, sizeof buf), 0);
            CHECK_EQ(blz_tcp_read(srv, buf, sizeof buf), 0);
            blz_tcp_close(cli);
        } else {
            /* A reset after the data: whatever of the data is still there,
             * then the error once, then end of stream. */
            CHECK_OK(blz_tcp_set_linger(cli, true, 0));
            blz_tcp_close(cli);
            char buf[8];
            size_t got = 0;
            ssize_t n;
            while ((n = blz_tcp_read(srv, buf + got, sizeof buf - got)) > 0) {
                got += (size_t) n;
                CHECK_LE(got, 3u);
            }
            CHECK(memcmp(buf, "abc", got) == 0);
            CHECK_EQ(n, -ECONNRESET);
            CHECK_EQ(blz_tcp_read(srv, buf, sizeof buf), 0);
        }
        blz_tcp_close(srv);
    }
    rx_close_listener(l);
    return NULL;
}

BLZ_TEST(end_and_error_come_after_the_data)
{
    run_rx(2, 256, reset_main);
}

/* A reset right after data that fills a readv's buffers exactly: the data,
 * then the error once, then end of stream, as with read. A readv on a
 * completion-receive stream fills its buffers one by one, and the one after
 * the data must leave the error for the next call instead of taking it. */
static void *
readv_reset_main(void *arg)
{
    (void) arg;
    blz_addr addr;
    blz_tcp_listener *l = net_listen_any(&addr);
    for (int round = 0; round < 4; round++) {
        blz_tcp_stream *srv = NULL, *cli = NULL;
        net_pair(l, &addr, &srv, &cli);
        CHECK_OK(blz_tcp_write_all(cli, "abcdefgh", 8));
        CHECK_OK(blz_tcp_set_linger(cli, true, 0));
        blz_tcp_close(cli);
        /* The reset has reached the stream (after its data). */
        WAIT_UNTIL(blz__io_source_readiness(&srv->sk.src) & BLZ__RD_ERROR,
                   (void) blz_sleep(blz_ms(1)));
        /* Buffers of 2 + 6, 4 + 4, 6 + 2, then 8 alone, and room after them:
         * the data fills the first ones exactly. */
        char buf[16];
        size_t first = (size_t) (round + 1) * 2;
        blz_iovec iov[3] = {{buf, first}, {buf + first, 8 - first}, {buf + 8, 8}};
        if (first == 8) {
            iov[1] = iov[2];
        }
        int cnt = first == 8 ? 2 : 3;
        size_t got = 0;
        ssize_t n;
        while ((n = blz_tcp_readv(srv, iov, cnt)) > 0) {
            CHECK_LE(got + (size_t) n, 8u);
            CHECK(memcmp(buf, "abcdefgh" + got, (size_t) n) == 0);
            got += (size_t) n;
        }
        CHECK_EQ(n, -ECONNRESET);
        CHECK_EQ(blz_tcp_readv(srv, iov, cnt), 0);
        blz_tcp_close(srv);
    }
    rx_close_listener(l);
    return NULL;
}

BLZ_TEST(readv_keeps_an_error_after_the_data_for_the_next_call)
{
    run_rx(2, 256, readv_reset_main);
}

/* ---- a one-worker runtime and other threads -------------------------------------- */

/* A blocking-pool thread does a whole conversation with the await tier: its
 * arms and cancels reach the ring through the worker. */
static void *
blocking_echo(void *arg)
{
    (void) arg;
    blz_addr addr;
    blz_tcp_listener *l = net_listen_any(&addr);
    blz_tcp_stream *srv = NULL, *cli = NULL;
    net_pair(l, &addr, &srv, &cli);
    for (int i = 0; i < 100; i++) {
        unsigned char out[64], in[64];
        net_fill((uint64_t) i, 0, out, sizeof out);
        CHECK_OK(blz_tcp_write_all(cli, out, sizeof out));
        CHECK_OK(net_read_exact(srv, in, sizeof in));
        CHECK(memcmp(in, out, sizeof in) == 0);
    }
    blz_tcp_close(srv);
    blz_tcp_close(cli);
    blz_tcp_listener_close(l);
    return NULL;
}

static void *
other_threads_main(void *arg)
{
    blz_tcp_stream **keep = arg;
    blz_join *j;
    CHECK_OK(blz_spawn_blocking(blocking_echo, NULL, &j));
    CHECK_OK(blz_join_wait(j, NULL));
    /* A pair left open for the main thread to close after block_on. */
    blz_addr addr;
    blz_tcp_listener *l = net_listen_any(&addr);
    net_pair(l, &addr, &keep[0], &keep[1]);
    CHECK_OK(blz_tcp_write_all(keep[1], "x", 1));
    char c;
    CHECK_OK(net_read_exact(keep[0], &c, 1));
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(one_worker_runs_the_io_of_other_threads)
{
    for (int round = 0; round < 5; round++) {
        blz_runtime *rt = rx_runtime(1, 256);
        blz_tcp_stream *keep[2] = {NULL, NULL};
        CHECK_OK(blz_runtime_block_on(rt, other_threads_main, keep, NULL));
        unsigned out, armed;
        net_rx_counts(rt, &out, &armed);
        if (net_rx_on(keep[0])) {
            CHECK_GE(armed, 1u); /* the kept stream's receive, at least */
        }
        /* Closed from a thread that may not enter the ring: the worker,
         * parked, must be woken to submit the cancellation. */
        blz_tcp_close(keep[0]);
        blz_tcp_close(keep[1]);
        net_wait_rx_idle(rt);
        blz_runtime_free(rt);
    }
}

BLZ_TEST(recv_buffers_must_be_a_power_of_two)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    blz_runtime *rt = NULL;
    cfg.recv_buffers = 3;
    CHECK_EQ(blz_runtime_new(&cfg, &rt), -EINVAL);
    cfg.recv_buffers = BLZ_RECV_BUFFERS_MAX * 2;
    CHECK_EQ(blz_runtime_new(&cfg, &rt), -EINVAL);
    cfg.recv_buffers = 0; /* off: readiness and recv(2) */
    cfg.workers = 1;
    rt = backend_runtime_cfg(&cfg);
    blz_runtime_free(rt);
}

/* ---- a peer that has already gone when the stream connects ------------------------- */

typedef struct gone_peer {
    int listen_fd;
    _Atomic bool done; /* accepted, wrote "hi", closed */
} gone_peer;

static void *
gone_peer_main(void *arg)
{
    gone_peer *g = arg;
    int fd = accept(g->listen_fd, NULL, NULL);
    CHECK(fd >= 0);
    CHECK_EQ(write(fd, "hi", 2), 2);
    close(fd);
    atomic_store(&g->done, true);
    return NULL;
}

/* The connecting socket's poll reports the peer's data and end (read
 * readiness, RCLOSED) before the stream turns to completion receive. Those
 * bits then come from the receive; a stale RCLOSED kept every read that
 * found the receive empty retrying at once, so the worker spun and never
 * entered its ring to let the receive deliver. */
static void *
stale_end_main(void *arg)
{
    (void) arg;
    gone_peer g = {.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    CHECK(g.listen_fd >= 0);
    blz_addr addr;
    CHECK_OK(blz_addr_parse("127.0.0.1:0", &addr));
    size_t salen = 0;
    const struct sockaddr *sa = blz_addr_sockaddr(&addr, &salen);
    CHECK_OK(bind(g.listen_fd, sa, (socklen_t) salen));
    CHECK_OK(listen(g.listen_fd, 1));
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    CHECK_OK(getsockname(g.listen_fd, (struct sockaddr *) &bound, &blen));
    CHECK_OK(blz_addr_from_sockaddr(&bound, blen, &addr));
    pthread_t peer;
    CHECK_OK(pthread_create(&peer, NULL, gone_peer_main, &g));
    blz_tcp_stream *s = NULL;
    blz_io_future conn;
    blz_tcp_connect_fut(&addr, &s, &conn);
    while (!atomic_load(&g.done)) {
        /* No poll of the ring yet: its events wait for the sleep below. */
    }
    CHECK_OK(blz_sleep(blz_ms(1))); /* the worker parks: one dispatch of the poll */
    CHECK_OK(blz_await(&conn.base));
    char buf[4];
    CHECK_OK(net_read_exact(s, buf, 2));
    CHECK(memcmp(buf, "hi", 2) == 0);
    CHECK_EQ(blz_tcp_read(s, buf, sizeof buf), 0);
    blz_tcp_close(s);
    CHECK_OK(pthread_join(peer, NULL));
    close(g.listen_fd);
    return NULL;
}

BLZ_TEST(a_stale_end_from_before_completion_receive_does_not_spin)
{
    blz_runtime *rt = rx_runtime(1, 256);
    CHECK_OK(blz_runtime_block_on(rt, stale_end_main, NULL, NULL));
    blz_runtime_free(rt);
}
