/*
 * TCP on loopback: listen on port 0, accept/connect, echo, error paths.
 */
#include "net_common.h"
#include "os/unix/sys.h"
#include "poll_util.h"

#include <pthread.h>
#include <sys/ioctl.h>

static void *
echo_one(void *arg)
{
    blz_tcp_listener *l = arg;
    blz_tcp_stream *s = NULL;
    blz_addr peer;
    CHECK_OK(blz_tcp_accept(l, &s, &peer));
    CHECK_EQ(blz_addr_get_family(&peer), BLZ_AF_INET);
    char buf[4096];
    for (;;) {
        ssize_t n = blz_tcp_read(s, buf, sizeof buf);
        CHECK_GE(n, 0);
        if (n == 0) {
            break;
        }
        CHECK_OK(blz_tcp_write_all(s, buf, (size_t) n));
    }
    blz_tcp_close(s);
    return NULL;
}

static void *
echo_basic_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_join *j;
    CHECK_OK(blz_spawn(echo_one, l, &j));
    blz_tcp_stream *c = NULL;
    CHECK_OK(blz_tcp_connect_addr(&a, &c));
    bool nd = false;
    CHECK_OK(blz_tcp_nodelay(c, &nd));
    CHECK(nd); /* on by default */
    CHECK_OK(blz_tcp_set_nodelay(c, false));
    CHECK_OK(blz_tcp_nodelay(c, &nd));
    CHECK(!nd);
    const char msg[] = "hello, blitzio";
    CHECK_OK(blz_tcp_write_all(c, msg, sizeof msg));
    char back[sizeof msg];
    CHECK_OK(net_read_exact(c, back, sizeof back));
    CHECK(memcmp(msg, back, sizeof msg) == 0);
    blz_addr local, peer;
    CHECK_OK(blz_tcp_local_addr(c, &local));
    CHECK_OK(blz_tcp_peer_addr(c, &peer));
    CHECK(blz_addr_equal(&peer, &a));
    CHECK_OK(blz_tcp_shutdown(c, BLZ_SHUT_WR));
    char tail[8];
    CHECK_EQ(blz_tcp_read(c, tail, sizeof tail), 0);
    CHECK_OK(blz_join_wait(j, NULL));
    blz_tcp_close(c);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(echo_basic)
{
    net_run(2, echo_basic_main, NULL);
}

static void *
refused_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_tcp_listener_close(l);
    blz_tcp_stream *c = NULL;
    CHECK_EQ(blz_tcp_connect_addr(&a, &c), -ECONNREFUSED);
    CHECK(c == NULL);
    return NULL;
}

BLZ_TEST(connect_to_closed_port_is_refused)
{
    net_run(2, refused_main, NULL);
}

/* ---- half-close ------------------------------------------------------------- */

static void *
count_then_reply(void *arg)
{
    blz_tcp_listener *l = arg;
    blz_tcp_stream *s = NULL;
    CHECK_OK(blz_tcp_accept(l, &s, NULL));
    uint64_t total = 0;
    unsigned char buf[8192];
    for (;;) {
        ssize_t n = CHECK_OK(blz_tcp_read(s, buf, sizeof buf));
        if (n == 0) {
            break; /* the client shut its write side */
        }
        CHECK(net_verify(7, total, buf, (size_t) n));
        total += (uint64_t) n;
    }
    /* Our direction still works after the peer's half-close. */
    CHECK_OK(blz_tcp_write_all(s, &total, sizeof total));
    blz_tcp_close(s);
    return NULL;
}

static void *
half_close_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_join *j;
    CHECK_OK(blz_spawn(count_then_reply, l, &j));
    blz_tcp_stream *c = NULL;
    CHECK_OK(blz_tcp_connect_addr(&a, &c));
    static unsigned char data[300000];
    net_fill(7, 0, data, sizeof data);
    CHECK_OK(blz_tcp_write_all(c, data, sizeof data));
    CHECK_OK(blz_tcp_shutdown(c, BLZ_SHUT_WR));
    CHECK_EQ(blz_tcp_write(c, data, 1), -EPIPE); /* never SIGPIPE */
    uint64_t total = 0;
    CHECK_OK(net_read_exact(c, &total, sizeof total));
    CHECK_EQ(total, sizeof data);
    char x;
    CHECK_EQ(blz_tcp_read(c, &x, 1), 0); /* then end of stream */
    CHECK_OK(blz_join_wait(j, NULL));
    blz_tcp_close(c);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(half_close)
{
    net_run(2, half_close_main, NULL);
}

/* Bytes queued in the socket of `s`, not yet read (by recv or by the kernel's
 * completion receive). */
static int
queued(blz_tcp_stream *s)
{
    int n = 0;
    CHECK_OK(ioctl(s->sk.src.fd, FIONREAD, &n));
    return n;
}

static void *
shut_rd_reader(void *arg)
{
    char buf[8];
    return (void *) (intptr_t) blz_tcp_read(arg, buf, sizeof buf);
}

/* io.h: after BLZ_SHUT_RD, "later reads return 0": also when the peer sends
 * more afterwards, on every backend. Linux keeps taking a TCP peer's data
 * after shutdown(SHUT_RD) and recv returns it, so a stream on recv(2) (epoll,
 * or io_uring with several workers) read the bytes, while one on completion
 * receive (io_uring, one worker) read 0. A read waiting when the shutdown
 * comes ends with 0 too, and the other direction goes on. */
static void *
shut_rd_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_tcp_stream *c = NULL, *s = NULL;
    net_pair(l, &a, &s, &c);
    blz_join *j;
    CHECK_OK(blz_spawn(shut_rd_reader, s, &j));
    WAIT_UNTIL(blz__io_driver_waiters(net_driver()) == 1, (void) blz_sleep(blz_ms(1)));
    CHECK_OK(blz_tcp_shutdown(s, BLZ_SHUT_RD));
    void *res = (void *) 1;
    CHECK_OK(blz_join_wait(j, &res));
    CHECK_EQ((intptr_t) res, 0);
    CHECK_OK(blz_tcp_write_all(c, "later", 5));
    WAIT_UNTIL(queued(s) == 5, (void) blz_sleep(blz_ms(1))); /* arrived, and not read */
    char buf[8];
    CHECK_EQ(blz_tcp_read(s, buf, sizeof buf), 0);
    CHECK_EQ(blz_tcp_try_read(s, buf, sizeof buf), 0);
    CHECK_OK(blz_tcp_write_all(s, "back", 4));
    CHECK_OK(net_read_exact(c, buf, 4));
    CHECK(memcmp(buf, "back", 4) == 0);
    blz_tcp_close(s);
    blz_tcp_close(c);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(shut_rd_makes_later_reads_return_0)
{
    net_run(1, shut_rd_main, NULL); /* io_uring: completion receive */
    net_run(2, shut_rd_main, NULL); /* io_uring: recv(2), as epoll */
}

/* write_all through a send buffer far smaller than the data: the await tier
 * sends what fits at once, then waits with the rest, many times over; the
 * reader checks every byte and the total (a resent or skipped piece fails). */
static void *
small_sndbuf_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_join *j;
    CHECK_OK(blz_spawn(count_then_reply, l, &j));
    blz_tcp_socket *cs = NULL;
    CHECK_OK(blz_tcp_socket_new(BLZ_AF_INET, &cs));
    CHECK_OK(blz_tcp_socket_set_send_buffer_size(cs, 4096));
    blz_tcp_stream *c = NULL;
    CHECK_OK(blz_tcp_socket_connect(cs, &a, &c));
    static unsigned char data[1 << 21];
    net_fill(7, 0, data, sizeof data);
    for (size_t off = 0; off < sizeof data; off += 100000) {
        size_t n = sizeof data - off < 100000 ? sizeof data - off : 100000;
        CHECK_OK(blz_tcp_write_all(c, data + off, n));
    }
    CHECK_OK(blz_tcp_shutdown(c, BLZ_SHUT_WR));
    uint64_t total = 0;
    CHECK_OK(net_read_exact(c, &total, sizeof total));
    CHECK_EQ(total, sizeof data);
    CHECK_OK(blz_join_wait(j, NULL));
    blz_tcp_close(c);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(write_all_through_a_small_send_buffer)
{
    net_run(2, small_sndbuf_main, NULL);
}

/* ---- the try tier, peek, vectors ----------------------------------------------- */

static void *
tiers_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_tcp_stream *s = NULL, *c = NULL;
    CHECK_EQ(blz_tcp_try_accept(l, &s, NULL), -EAGAIN);
    net_pair(l, &a, &s, &c);
    char buf[64];
    CHECK_EQ(blz_tcp_try_read(s, buf, sizeof buf), -EAGAIN);
    CHECK_EQ(blz_tcp_try_peek(s, buf, sizeof buf), -EAGAIN);
    CHECK_EQ(blz_tcp_try_write(c, "abc", 3), 3);
    /* Peek waits for the data and leaves it in place. */
    CHECK_EQ(blz_tcp_peek(s, buf, 2), 2);
    CHECK(memcmp(buf, "ab", 2) == 0);
    char p1[1], p2[8];
    blz_iovec rv[2] = {{p1, sizeof p1}, {p2, sizeof p2}};
    CHECK_EQ(blz_tcp_readv(s, rv, 2), 3);
    CHECK_EQ(p1[0], 'a');
    CHECK(memcmp(p2, "bc", 2) == 0);
    blz_iovec wv[3] = {{(void *) "he", 2}, {(void *) "", 0}, {(void *) "llo", 3}};
    CHECK_EQ(blz_tcp_writev(c, wv, 3), 5);
    CHECK_OK(net_read_exact(s, buf, 5));
    CHECK(memcmp(buf, "hello", 5) == 0);
    CHECK_EQ(blz_tcp_try_writev(c, wv, 0), -EINVAL);
    CHECK_EQ(blz_tcp_readv(s, rv, BLZ_IOV_MAX + 1), -EINVAL);
    CHECK_EQ(blz_tcp_readv(s, NULL, 1), -EINVAL);
    CHECK_EQ(blz_tcp_read(s, buf, 0), 0);
    CHECK_EQ(blz_tcp_read(NULL, buf, 1), -EINVAL);
    CHECK_EQ(blz_tcp_write(s, NULL, 1), -EINVAL);
    /* A try read that finds data. */
    CHECK_OK(blz_tcp_write_all(c, "z", 1));
    ssize_t n;
    while ((n = blz_tcp_try_read(s, buf, sizeof buf)) == -EAGAIN) {
        blz_yield();
    }
    CHECK_EQ(n, 1);
    blz_tcp_close(s);
    blz_tcp_close(c);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(try_tier_peek_and_vectors)
{
    net_run(2, tiers_main, NULL);
}

/* A vector read of no bytes in all is done at once with 0, as a plain read of
 * n == 0 is: recvmsg of nothing on an empty stream says EAGAIN, and a waiter
 * would then sleep until data it does not want arrives (for ever, on a quiet
 * connection). Every tier, on a TCP stream and a Unix stream, both empty. */
static void
check_readv_of_nothing(ssize_t (*try_readv)(void *, const blz_iovec *, int),
                       void (*readv_fut)(void *, const blz_iovec *, int, blz_io_future *),
                       ssize_t (*readv)(void *, const blz_iovec *, int), void *s)
{
    blz_context cx = {blz_waker_noop()};
    char b[1];
    blz_iovec none[2] = {{b, 0}, {NULL, 0}};
    blz_io_future f;
    readv_fut(s, none, 2, &f);
    blz_poll p = blz_future_poll(&f.base, &cx);
    if (p == BLZ_PENDING) {
        blz_future_drop(&f.base);
    }
    CHECK_EQ(p, BLZ_READY);
    CHECK_EQ(f.base.result, 0);
    CHECK_EQ(try_readv(s, none, 2), 0);
    CHECK_EQ(readv(s, none, 2), 0);
}

static ssize_t
tcp_try_readv_v(void *s, const blz_iovec *iov, int n)
{
    return blz_tcp_try_readv(s, iov, n);
}
static void
tcp_readv_fut_v(void *s, const blz_iovec *iov, int n, blz_io_future *f)
{
    blz_tcp_readv_fut(s, iov, n, f);
}
static ssize_t
tcp_readv_v(void *s, const blz_iovec *iov, int n)
{
    return blz_tcp_readv(s, iov, n);
}
static ssize_t
unix_try_readv_v(void *s, const blz_iovec *iov, int n)
{
    return blz_unix_try_readv(s, iov, n);
}
static void
unix_readv_fut_v(void *s, const blz_iovec *iov, int n, blz_io_future *f)
{
    blz_unix_readv_fut(s, iov, n, f);
}
static ssize_t
unix_readv_v(void *s, const blz_iovec *iov, int n)
{
    return blz_unix_readv(s, iov, n);
}

static void *
readv_nothing_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_tcp_stream *s = NULL, *c = NULL;
    net_pair(l, &a, &s, &c);
    check_readv_of_nothing(tcp_try_readv_v, tcp_readv_fut_v, tcp_readv_v, s);
    check_readv_of_nothing(tcp_try_readv_v, tcp_readv_fut_v, tcp_readv_v, c);
    /* With data queued it still takes nothing. */
    CHECK_OK(blz_tcp_write_all(c, "x", 1));
    char b[1];
    CHECK_EQ(blz_tcp_peek(s, b, 1), 1);
    check_readv_of_nothing(tcp_try_readv_v, tcp_readv_fut_v, tcp_readv_v, s);
    CHECK_EQ(blz_tcp_read(s, b, 1), 1);
    CHECK_EQ(b[0], 'x');
    blz_tcp_close(s);
    blz_tcp_close(c);
    blz_tcp_listener_close(l);

    blz_unix_stream *p = NULL, *q = NULL;
    CHECK_OK(blz_unix_pair(&p, &q));
    check_readv_of_nothing(unix_try_readv_v, unix_readv_fut_v, unix_readv_v, q);
    blz_unix_close(p);
    blz_unix_close(q);
    CHECK_EQ(blz__io_driver_waiters(net_driver()), 0);
    return NULL;
}

BLZ_TEST(readv_of_no_bytes_is_done_at_once)
{
    net_run(2, readv_nothing_main, NULL);
}

/* ---- the future tier from a stackless task ---------------------------------------- */

typedef struct echo_once_future {
    blz_future base;
    blz_tcp_listener *l;
    blz_tcp_stream *s;
    blz_accept_future acc;
    blz_io_future io;
    char buf[32];
    int n;
} echo_once_future;

static blz_poll
echo_once_poll(blz_future *self, blz_context *cx)
{
    echo_once_future *m = (echo_once_future *) self;
    BLZ_ASYNC_BEGIN(self);
    blz_tcp_accept_fut(m->l, &m->s, NULL, &m->acc);
    BLZ_AWAIT(self, cx, &m->acc.base);
    if (m->acc.base.result < 0) {
        BLZ_ASYNC_RETURN(self, m->acc.base.result);
    }
    blz_tcp_read_fut(m->s, m->buf, sizeof m->buf, &m->io);
    BLZ_AWAIT(self, cx, &m->io.base);
    m->n = m->io.base.result;
    if (m->n > 0) {
        blz_tcp_write_all_fut(m->s, m->buf, (size_t) m->n, &m->io);
        BLZ_AWAIT(self, cx, &m->io.base);
    }
    blz_tcp_close(m->s);
    BLZ_ASYNC_RETURN(self, m->n);
    BLZ_ASYNC_END(self);
}

static void
echo_once_drop(blz_future *self)
{
    echo_once_future *m = (echo_once_future *) self;
    blz_future_drop(&m->acc.base);
    blz_future_drop(&m->io.base);
}

static const blz_future_vtable echo_once_vt = {echo_once_poll, echo_once_drop};

static void *
stackless_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    echo_once_future f;
    memset(&f, 0, sizeof f);
    blz_future_init(&f.base, &echo_once_vt);
    f.l = l;
    blz_join *j;
    CHECK_OK(blz_spawn_future(&f.base, sizeof f, &j));
    blz_tcp_stream *c = NULL;
    CHECK_OK(blz_tcp_connect_addr(&a, &c));
    CHECK_OK(blz_tcp_write_all(c, "stackless", 9));
    char buf[16];
    CHECK_OK(net_read_exact(c, buf, 9));
    CHECK(memcmp(buf, "stackless", 9) == 0);
    void *res = NULL;
    CHECK_OK(blz_join_wait(j, &res));
    CHECK_EQ((intptr_t) res, 9);
    blz_tcp_close(c);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(future_tier_in_stackless_task)
{
    net_run(2, stackless_main, NULL);
}

/* The builder's connect as a future from a stackless task: the options set
 * on the builder reach the stream (Nagle back on), and the future consumes
 * the builder on every path (the harness fails the test on a leaked fd). */
typedef struct builder_connect_future {
    blz_future base;
    blz_tcp_socket *sock;
    blz_addr to;
    blz_tcp_stream *s;
    blz_io_future io;
} builder_connect_future;

static blz_poll
builder_connect_poll(blz_future *self, blz_context *cx)
{
    builder_connect_future *m = (builder_connect_future *) self;
    BLZ_ASYNC_BEGIN(self);
    blz_tcp_socket_connect_fut(m->sock, &m->to, &m->s, &m->io);
    BLZ_AWAIT(self, cx, &m->io.base);
    if (m->io.base.result < 0) {
        BLZ_ASYNC_RETURN(self, m->io.base.result);
    }
    bool nd = true;
    int rc = blz_tcp_nodelay(m->s, &nd);
    blz_tcp_close(m->s);
    BLZ_ASYNC_RETURN(self, rc < 0 ? rc : nd ? -EPROTO : 0);
    BLZ_ASYNC_END(self);
}

static void
builder_connect_drop(blz_future *self)
{
    builder_connect_future *m = (builder_connect_future *) self;
    blz_future_drop(&m->io.base);
}

static const blz_future_vtable builder_connect_vt = {builder_connect_poll, builder_connect_drop};

static void *
builder_connect_fut_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    builder_connect_future f;
    memset(&f, 0, sizeof f);
    blz_future_init(&f.base, &builder_connect_vt);
    CHECK_OK(blz_tcp_socket_new(BLZ_AF_INET, &f.sock));
    CHECK_OK(blz_tcp_socket_set_nodelay(f.sock, false));
    f.to = a;
    blz_join *j;
    CHECK_OK(blz_spawn_future(&f.base, sizeof f, &j));
    blz_tcp_stream *s = NULL;
    CHECK_OK(blz_tcp_accept(l, &s, NULL));
    void *res = (void *) 1;
    CHECK_OK(blz_join_wait(j, &res));
    CHECK_EQ((intptr_t) res, 0); /* connected, with Nagle on */
    blz_tcp_close(s);

    /* Await tier on the same future type: the stream keeps Nagle on. */
    blz_tcp_socket *sock = NULL;
    CHECK_OK(blz_tcp_socket_new(BLZ_AF_INET, &sock));
    CHECK_OK(blz_tcp_socket_set_nodelay(sock, false));
    blz_io_future io;
    blz_tcp_stream *c = NULL;
    blz_tcp_socket_connect_fut(sock, &a, &c, &io);
    CHECK_EQ(blz_await(&io.base), 0);
    bool nd = true;
    CHECK_OK(blz_tcp_nodelay(c, &nd));
    CHECK(!nd);
    CHECK_OK(blz_tcp_accept(l, &s, NULL));
    blz_tcp_close(s);
    blz_tcp_close(c);

    /* Refusals consume the builder too. */
    CHECK_OK(blz_tcp_socket_new(BLZ_AF_INET, &sock));
    blz_tcp_socket_connect_fut(sock, &a, &c, NULL); /* no future: closed */
    CHECK_OK(blz_tcp_socket_new(BLZ_AF_INET, &sock));
    blz_tcp_socket_connect_fut(sock, &a, NULL, &io);
    CHECK_EQ(blz_await(&io.base), -EINVAL);
    blz_addr v6;
    CHECK_OK(blz_addr_parse("[::1]:1", &v6));
    CHECK_OK(blz_tcp_socket_new(BLZ_AF_INET, &sock));
    blz_tcp_socket_connect_fut(sock, &v6, &c, &io); /* wrong family */
    CHECK_EQ(blz_await(&io.base), -EINVAL);
    /* A connect dropped before its first poll closes the half-made socket. */
    CHECK_OK(blz_tcp_socket_new(BLZ_AF_INET, &sock));
    blz_tcp_socket_connect_fut(sock, &a, &c, &io);
    blz_future_drop(&io.base);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(builder_connect_future_tier)
{
    net_run(2, builder_connect_fut_main, NULL);
}

/* ---- split halves used by two tasks at once ---------------------------------------- */

#define SPLIT_BYTES (4u << 20)

typedef struct half_job {
    blz_tcp_read_half *rd;
    blz_tcp_write_half *wr;
    uint64_t seed_in, seed_out;
} half_job;

static void *
half_reader(void *arg)
{
    half_job *h = arg;
    unsigned char *buf = malloc(65536); /* per fiber: fibers move between threads */
    CHECK(buf != NULL);
    uint64_t got = 0;
    for (;;) {
        ssize_t n = CHECK_OK(blz_tcp_half_read(h->rd, buf, 65536));
        if (n == 0) {
            break;
        }
        CHECK(net_verify(h->seed_in, got, buf, (size_t) n));
        got += (uint64_t) n;
    }
    CHECK_EQ(got, SPLIT_BYTES);
    free(buf);
    blz_tcp_read_half_close(h->rd);
    return NULL;
}

static void *
half_writer(void *arg)
{
    half_job *h = arg;
    unsigned char *buf = malloc(65536);
    CHECK(buf != NULL);
    for (uint64_t off = 0; off < SPLIT_BYTES; off += 65536) {
        net_fill(h->seed_out, off, buf, 65536);
        CHECK_OK(blz_tcp_half_write_all(h->wr, buf, 65536));
    }
    free(buf);
    blz_tcp_write_half_close(h->wr); /* shuts the write side: the peer reads EOF */
    return NULL;
}

static void
run_halves(blz_tcp_stream *s, half_job *h, blz_join **jr, blz_join **jw)
{
    CHECK_OK(blz_tcp_split(s, &h->rd, &h->wr));
    CHECK_PTR_EQ(blz_tcp_read_half_stream(h->rd), s);
    CHECK_PTR_EQ(blz_tcp_write_half_stream(h->wr), s);
    CHECK_OK(blz_spawn(half_reader, h, jr));
    CHECK_OK(blz_spawn(half_writer, h, jw));
}

static void *
split_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_tcp_stream *c = NULL, *s = NULL;
    net_pair(l, &a, &s, &c);
    half_job hc = {.seed_in = 2, .seed_out = 1}, hs = {.seed_in = 1, .seed_out = 2};
    blz_join *j[4];
    run_halves(c, &hc, &j[0], &j[1]);
    run_halves(s, &hs, &j[2], &j[3]);
    CHECK_OK(blz_join_all(j, 4, NULL));
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(split_halves_full_duplex)
{
    net_run(2, split_main, NULL);
}

/* ---- options, builder, errors ---------------------------------------------------------- */

static void *
options_main(void *arg)
{
    (void) arg;
    blz_tcp_socket *sock = NULL;
    CHECK_OK(blz_tcp_socket_new(BLZ_AF_INET, &sock));
    CHECK_OK(blz_tcp_socket_set_reuseaddr(sock, true));
    CHECK_OK(blz_tcp_socket_set_reuseport(sock, true));
    CHECK_OK(blz_tcp_socket_set_send_buffer_size(sock, 1 << 16));
    CHECK_OK(blz_tcp_socket_set_recv_buffer_size(sock, 1 << 16));
    CHECK_EQ(blz_tcp_socket_set_recv_buffer_size(sock, 0), -EINVAL);
    blz_addr any, v6;
    CHECK_OK(blz_addr_parse("127.0.0.1:0", &any));
    CHECK_OK(blz_addr_parse("[::1]:0", &v6));
    CHECK_EQ(blz_tcp_socket_bind(sock, &v6), -EINVAL); /* wrong family */
    CHECK_OK(blz_tcp_socket_bind(sock, &any));
    blz_addr bound;
    CHECK_OK(blz_tcp_socket_local_addr(sock, &bound));
    CHECK_GT(blz_addr_port(&bound), 0);
    blz_tcp_listener *l = NULL;
    CHECK_OK(blz_tcp_socket_listen(sock, 16, &l));

    /* A second listener on the same port is refused... */
    blz_tcp_listener *l2 = NULL;
    CHECK_EQ(blz_tcp_listen_addr(&bound, 0, &l2), -EADDRINUSE);
    CHECK(l2 == NULL);

    /* ...and a builder connects with options applied first. */
    blz_tcp_socket *cs = NULL;
    CHECK_OK(blz_tcp_socket_new(BLZ_AF_INET, &cs));
    CHECK_OK(blz_tcp_socket_set_nodelay(cs, false));
    blz_tcp_stream *c = NULL, *s = NULL;
    CHECK_OK(blz_tcp_socket_connect(cs, &bound, &c));
    bool nd = true;
    CHECK_OK(blz_tcp_nodelay(c, &nd));
    CHECK(!nd); /* the builder's choice wins over the default */
    CHECK_OK(blz_tcp_accept(l, &s, NULL));
    CHECK_OK(blz_tcp_nodelay(s, &nd));
    CHECK(nd); /* accepted streams: on by default */
    bool on = false;
    blz_duration d = 0;
    CHECK_OK(blz_tcp_set_keepalive(s, true, blz_secs(30)));
    CHECK_OK(blz_tcp_keepalive(s, &on, &d));
    CHECK(on);
    CHECK_EQ(d, blz_secs(30));
    CHECK_OK(blz_tcp_set_keepalive(s, true, blz_ms(1500))); /* rounds up to whole seconds */
    CHECK_OK(blz_tcp_keepalive(s, &on, &d));
    CHECK_EQ(d, blz_secs(2));
    CHECK_OK(blz_tcp_set_keepalive(s, false, 0));
    CHECK_OK(blz_tcp_keepalive(s, &on, &d));
    CHECK(!on);
    CHECK_OK(blz_tcp_set_linger(s, true, blz_secs(3)));
    CHECK_OK(blz_tcp_linger(s, &on, &d));
    CHECK(on);
    CHECK_EQ(d, blz_secs(3));
    CHECK_OK(blz_tcp_set_linger(s, false, 0));
    CHECK_OK(blz_tcp_linger(s, &on, &d));
    CHECK(!on);
    int ttl = 0;
    CHECK_OK(blz_tcp_set_ttl(s, 17));
    CHECK_OK(blz_tcp_ttl(s, &ttl));
    CHECK_EQ(ttl, 17);
    CHECK_EQ(blz_tcp_set_ttl(s, 0), -EINVAL);
    CHECK_EQ(blz_tcp_set_ttl(s, 256), -EINVAL);
    CHECK_EQ(blz_tcp_set_ttl(NULL, 5), -EINVAL);
    CHECK_EQ(blz_tcp_ttl(s, NULL), -EINVAL);
    int count = 0;
    CHECK_OK(blz_tcp_set_keepalive_probes(s, blz_secs(7), 4));
    CHECK_OK(blz_tcp_keepalive_probes(s, &d, &count));
    CHECK_EQ(d, blz_secs(7));
    CHECK_EQ(count, 4);
    CHECK_OK(blz_tcp_set_keepalive_probes(s, blz_ms(2500), 1)); /* rounds up to whole seconds */
    CHECK_OK(blz_tcp_keepalive_probes(s, &d, &count));
    CHECK_EQ(d, blz_secs(3));
    CHECK_EQ(count, 1);
    CHECK_EQ(blz_tcp_set_keepalive_probes(s, 0, 4), -EINVAL);
    CHECK_EQ(blz_tcp_set_keepalive_probes(s, blz_secs(1), 0), -EINVAL);
    CHECK_EQ(blz_tcp_set_keepalive_probes(s, blz_secs(1), 128), -EINVAL);
    CHECK_EQ(blz_tcp_set_keepalive_probes(NULL, blz_secs(1), 3), -EINVAL);
    CHECK_EQ(blz_tcp_keepalive_probes(s, NULL, &count), -EINVAL);
    CHECK_EQ(blz_tcp_keepalive(NULL, &on, &d), -EINVAL);
    CHECK_EQ(blz_tcp_keepalive(s, NULL, &d), -EINVAL);
    CHECK_EQ(blz_tcp_linger(s, &on, NULL), -EINVAL);
    blz_tcp_close(s);
    blz_tcp_close(c);
    blz_tcp_listener_close(l);

    /* Bad input gets codes, never a crash. */
    blz_tcp_stream *x = (blz_tcp_stream *) 1;
    CHECK_EQ(blz_tcp_connect("not an address", &x), -EINVAL);
    CHECK(x == NULL);
    CHECK_EQ(blz_tcp_connect("/unix/path", &x), -EINVAL);
    CHECK_EQ(blz_tcp_listen(NULL, &l), -EINVAL);
    CHECK_EQ(blz_tcp_listen("127.0.0.1:0", NULL), -EINVAL);
    CHECK_EQ(blz_tcp_accept(NULL, &s, NULL), -EINVAL);
    CHECK_EQ(blz_tcp_socket_new(BLZ_AF_UNIX, &sock), -EINVAL);
    CHECK_EQ(blz_tcp_set_nodelay(NULL, true), -EINVAL);
    CHECK_EQ(blz_tcp_shutdown(NULL, BLZ_SHUT_WR), -EINVAL);
    CHECK_EQ(blz_tcp_split(NULL, NULL, NULL), -EINVAL);
    blz_tcp_close(NULL);
    blz_tcp_listener_close(NULL);
    blz_tcp_socket_close(NULL);
    return NULL;
}

BLZ_TEST(options_builder_and_errors)
{
    net_run(2, options_main, NULL);
}

/* Durations too long for the kernel's whole seconds are clamped to the
 * longest it takes (32767 s), never wrapped: rounding INT64_MAX ns up to a
 * second overflowed (undefined behaviour), and in practice turned "as long
 * as possible" into one second. */
static void *
huge_durations_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_tcp_stream *s = NULL, *c = NULL;
    net_pair(l, &a, &s, &c);
    bool on = false;
    blz_duration d = 0;
    int count = 0;
    CHECK_OK(blz_tcp_set_keepalive(s, true, INT64_MAX));
    CHECK_OK(blz_tcp_keepalive(s, &on, &d));
    CHECK(on);
    CHECK_EQ(d, blz_secs(32767));
    CHECK_OK(blz_tcp_set_keepalive_probes(s, INT64_MAX, 3));
    CHECK_OK(blz_tcp_keepalive_probes(s, &d, &count));
    CHECK_EQ(d, blz_secs(32767));
    CHECK_OK(blz_tcp_set_linger(s, true, INT64_MAX));
    CHECK_OK(blz_tcp_linger(s, &on, &d));
    CHECK(on);
    CHECK_EQ(d, blz_secs(32767));
    CHECK_OK(blz_tcp_set_linger(s, false, 0));
    blz_tcp_close(s);
    blz_tcp_close(c);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(huge_option_durations_clamp_instead_of_wrapping)
{
    net_run(1, huge_durations_main, NULL);
}

/* A negative linger time is an impossible value: refused (-EINVAL), not
 * taken as 0, which turns the close into a reset that drops unsent data. */
static void *
negative_linger_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_tcp_stream *s = NULL, *c = NULL;
    net_pair(l, &a, &s, &c);
    bool on = true;
    blz_duration d = 0;
    CHECK_EQ(blz_tcp_set_linger(s, true, -blz_secs(5)), -EINVAL);
    CHECK_OK(blz_tcp_linger(s, &on, &d));
    CHECK(!on);
    CHECK_OK(blz_tcp_set_linger(s, false, -1)); /* off: the time is not used */
    blz_tcp_close(s);
    blz_tcp_close(c);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(negative_linger_is_refused)
{
    net_run(1, negative_linger_main, NULL);
}

/* Outside a runtime there is no driver to register with. */
BLZ_TEST(no_runtime_is_esrch)
{
    blz_tcp_listener *l = NULL;
    CHECK_EQ(blz_tcp_listen("127.0.0.1:0", &l), -ESRCH);
    blz_udp_socket *u = NULL;
    CHECK_EQ(blz_udp_bind("127.0.0.1:0", &u), -ESRCH);
}

/* ---- names ------------------------------------------------------------------------------- */

static void *
resolve_main(void *arg)
{
    (void) arg;
    blz_addr addrs[8];
    int n = CHECK_OK(blz_resolve("localhost", 80, addrs, 8));
    CHECK_GE(n, 1);
    int loop = 0;
    for (int i = 0; i < n; i++) {
        CHECK_EQ(blz_addr_port(&addrs[i]), 80);
        char txt[BLZ_ADDR_STRLEN];
        CHECK_OK(blz_addr_format(&addrs[i], txt, sizeof txt));
        loop |= strcmp(txt, "127.0.0.1:80") == 0 || strcmp(txt, "[::1]:80") == 0;
    }
    CHECK(loop);
    CHECK_EQ(blz_resolve("10.9.8.7", 5, addrs, 1), 1); /* literal: no lookup */
    CHECK_EQ(blz_addr_port(&addrs[0]), 5);
    CHECK_EQ(blz_resolve("", 1, addrs, 8), -EINVAL);
    CHECK_EQ(blz_resolve("localhost", 1, NULL, 8), -EINVAL);

    /* connect_host tries the addresses in turn. */
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_tcp_stream *c = NULL, *s = NULL;
    CHECK_OK(blz_tcp_connect_host("127.0.0.1", (uint16_t) blz_addr_port(&a), &c));
    CHECK_OK(blz_tcp_accept(l, &s, NULL));
    blz_tcp_close(c);
    blz_tcp_close(s);
    int rc = blz_tcp_connect_host("localhost", (uint16_t) blz_addr_port(&a), &c);
    if (rc == 0) { /* localhost may resolve to ::1 first, which has no listener: tried in turn */
        CHECK_OK(blz_tcp_accept(l, &s, NULL));
        blz_tcp_close(c);
        blz_tcp_close(s);
    }
    blz_tcp_listener_close(l);
    CHECK_EQ(blz_tcp_connect_host("127.0.0.1", (uint16_t) blz_addr_port(&a), &c), -ECONNREFUSED);

    /* A dropped lookup finishes in the background and frees itself. */
    blz_resolve_future f;
    blz_resolve_fut("localhost", 1, addrs, 8, &f);
    blz_future_drop(&f.base);

    /* The future tier of connect_host: awaited, and dropped while resolving
     * or while connecting (the harness's fd and allocation checks see a leak). */
    l = net_listen_any(&a);
    blz_connect_host_future hf;
    blz_tcp_connect_host_fut("127.0.0.1", (uint16_t) blz_addr_port(&a), &c, &hf);
    CHECK_OK(blz_await(&hf.base));
    CHECK(c != NULL);
    CHECK_OK(blz_tcp_accept(l, &s, NULL));
    blz_tcp_close(c);
    blz_tcp_close(s);
    blz_context cx = {blz_waker_noop()};
    for (int i = 0; i < 8; i++) {
        blz_tcp_connect_host_fut(i % 2 ? "localhost" : "127.0.0.1", (uint16_t) blz_addr_port(&a),
                                 &c, &hf);
        bool done = false;
        for (int polls = 0; polls < i / 2 && !done; polls++) {
            done = blz_future_poll(&hf.base, &cx) == BLZ_READY;
        }
        if (done && hf.base.result == 0) {
            blz_tcp_close(c); /* connected already: the stream is ours */
        } else {
            blz_future_drop(&hf.base);
        }
    }
    blz_tcp_connect_host_fut("localhost", 1, NULL, &hf);
    CHECK_EQ(blz_await(&hf.base), -EINVAL);
    blz_tcp_connect_host_fut("", 1, &c, &hf);
    CHECK_EQ(blz_await(&hf.base), -EINVAL);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(resolve_and_connect_host)
{
    net_run(2, resolve_main, NULL);
}

/* ---- try tier of connect, and finishing it in every tier ---------------------------------- */

/* Finishes the connect of `c` with the try tier, yielding in between (bounded). */
static int
finish_by_trying(blz_tcp_stream *c)
{
    for (int i = 0; i < 5000; i++) {
        int rc = blz_tcp_try_finish_connect(c);
        if (rc != -EAGAIN) {
            return rc;
        }
        if (i < 100) {
            blz_yield();
        } else {
            CHECK_OK(blz_sleep(blz_ms(1)));
        }
    }
    return -ETIMEDOUT;
}

/* Checks that c (connecting or connected to l) carries data both ways once accepted. */
static void
check_link(blz_tcp_listener *l, blz_tcp_stream *c)
{
    blz_tcp_stream *s = NULL;
    CHECK_OK(blz_tcp_accept(l, &s, NULL));
    CHECK_OK(blz_tcp_write_all(c, "ping", 4));
    char buf[4];
    CHECK_OK(net_read_exact(s, buf, 4));
    CHECK(memcmp(buf, "ping", 4) == 0);
    CHECK_OK(blz_tcp_write_all(s, "pong", 4));
    CHECK_OK(net_read_exact(c, buf, 4));
    CHECK(memcmp(buf, "pong", 4) == 0);
    blz_tcp_close(s);
}

/* Reads exactly n bytes from a read half (await tier). 0 or -errno. */
static void *
try_connect_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);

    /* Try tier: the connection starts, and the try tier of finish ends it. */
    blz_tcp_stream *c = NULL;
    int rc = blz_tcp_try_connect(&a, &c);
    CHECK(rc == -EINPROGRESS || rc == 0);
    CHECK(c != NULL);
    CHECK_OK(finish_by_trying(c));
    CHECK_OK(blz_tcp_try_finish_connect(c)); /* finished stays finished */
    blz_addr peer;
    CHECK_OK(blz_tcp_peer_addr(c, &peer));
    CHECK(blz_addr_equal(&peer, &a));
    check_link(l, c);
    blz_tcp_close(c);

    /* Await tier of finish. */
    rc = blz_tcp_try_connect(&a, &c);
    CHECK(rc == -EINPROGRESS || rc == 0);
    CHECK_OK(blz_tcp_finish_connect(c));
    check_link(l, c);
    blz_tcp_close(c);

    /* Future tier of finish, in a stackless task. */
    rc = blz_tcp_try_connect(&a, &c);
    CHECK(rc == -EINPROGRESS || rc == 0);
    blz_io_future ff;
    blz_tcp_finish_connect_fut(c, &ff);
    blz_join *j;
    CHECK_OK(blz_spawn_future(&ff.base, sizeof ff, &j));
    void *res = (void *) 1;
    CHECK_OK(blz_join_wait(j, &res));
    CHECK_EQ((intptr_t) res, 0);
    check_link(l, c);
    /* Dropping a finish future leaves the stream alone. */
    blz_tcp_finish_connect_fut(c, &ff);
    blz_future_drop(&ff.base);
    CHECK_OK(blz_tcp_write_all(c, "z", 1));
    blz_tcp_close(c);
    CHECK_EQ(blz__io_driver_waiters(net_driver()), 0);

    /* A closed port: refused at once, or when finishing. */
    blz_tcp_listener_close(l);
    rc = blz_tcp_try_connect(&a, &c);
    if (rc == -EINPROGRESS) {
        CHECK(c != NULL);
        CHECK_EQ(finish_by_trying(c), -ECONNREFUSED);
        blz_tcp_close(c);
    } else {
        CHECK_EQ(rc, -ECONNREFUSED);
        CHECK(c == NULL);
    }

    /* Bad input. */
    blz_addr u;
    CHECK_OK(blz_addr_parse("unix:/tmp/x.sock", &u));
    CHECK_EQ(blz_tcp_try_connect(&u, &c), -EINVAL);
    CHECK(c == NULL);
    CHECK_EQ(blz_tcp_try_connect(&a, NULL), -EINVAL);
    CHECK_EQ(blz_tcp_try_finish_connect(NULL), -EINVAL);
    CHECK_EQ(blz_tcp_finish_connect(NULL), -EINVAL);
    return NULL;
}

BLZ_TEST(try_connect_and_finish_tiers)
{
    net_run(2, try_connect_main, NULL);
}

BLZ_TEST(try_connect_outside_runtime_is_esrch)
{
    blz_addr a;
    CHECK_OK(blz_addr_parse("127.0.0.1:9", &a));
    blz_tcp_stream *c = (blz_tcp_stream *) &a;
    CHECK_EQ(blz_tcp_try_connect(&a, &c), -ESRCH);
    CHECK(c == NULL);
}

/* ---- try tiers of the halves ------------------------------------------------------------ */

static void *
half_try_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_tcp_stream *c = NULL, *s = NULL;
    net_pair(l, &a, &s, &c);
    blz_tcp_read_half *rd;
    blz_tcp_write_half *wr;
    CHECK_OK(blz_tcp_split(s, &rd, &wr));
    blz_tcp_read_half *rd2;
    blz_tcp_write_half *wr2;
    CHECK_EQ(blz_tcp_split(s, &rd2, &wr2), -EINVAL); /* split once only: no leaked handle */
    char buf[8];
    CHECK_EQ(blz_tcp_half_try_read(rd, buf, sizeof buf), -EAGAIN);
    CHECK_EQ(blz_tcp_half_try_write(wr, "abc", 3), 3);
    CHECK_OK(net_read_exact(c, buf, 3));
    CHECK_OK(blz_tcp_write_all(c, "de", 2));
    /* The read half waits for data through its stream, then takes it with its try tier. */
    CHECK_EQ(blz_tcp_ready(blz_tcp_write_half_stream(wr), BLZ_WRITABLE), 0);
    ssize_t n;
    do {
        CHECK_EQ(blz_tcp_ready(blz_tcp_read_half_stream(rd), BLZ_READABLE), 0);
        n = blz_tcp_half_try_read(rd, buf, sizeof buf);
    } while (n == -EAGAIN); /* a stale hint, cleared by this read */
    CHECK_EQ(n, 2);
    /* Peek through the read half, in all three tiers: the data stays. */
    CHECK_OK(blz_tcp_write_all(c, "pq", 2));
    CHECK_EQ(blz_tcp_half_peek(rd, buf, 1), 1);
    CHECK_EQ(buf[0], 'p');
    CHECK_GE(blz_tcp_half_try_peek(rd, buf, 2), 1);
    blz_io_future pf;
    blz_tcp_half_peek_fut(rd, buf, 2, &pf);
    CHECK_GE(blz_await(&pf.base), 1);
    CHECK_EQ(buf[0], 'p');
    CHECK_OK(blz_read_exact(blz_tcp_read_half_reader(rd), buf, 2));
    CHECK(memcmp(buf, "pq", 2) == 0);
    CHECK_EQ(blz_tcp_half_try_peek(rd, buf, 1), -EAGAIN);
    CHECK_EQ(blz_tcp_half_try_peek(NULL, buf, 1), -EINVAL);
    /* Vectored I/O through the halves, in all three tiers. */
    blz_iovec wv[2] = {{(void *) "ve", 2}, {(void *) "ctor", 4}};
    CHECK_EQ(blz_tcp_half_writev(wr, wv, 2), 6);
    CHECK_EQ(blz_tcp_half_try_writev(wr, wv, 1), 2);
    blz_io_future vf;
    blz_tcp_half_writev_fut(wr, wv + 1, 1, &vf);
    CHECK_EQ(blz_await(&vf.base), 4);
    char got[12];
    CHECK_OK(net_read_exact(c, got, sizeof got));
    CHECK(memcmp(got, "vectorvector", sizeof got) == 0);
    char v1[2], v2[6];
    blz_iovec rv[2] = {{v1, sizeof v1}, {v2, sizeof v2}};
    CHECK_EQ(blz_tcp_half_try_readv(rd, rv, 2), -EAGAIN);
    blz_tcp_half_readv_fut(rd, rv, 2, &vf);
    blz_context cx = {blz_waker_noop()};
    CHECK_EQ(blz_future_poll(&vf.base, &cx), BLZ_PENDING);
    CHECK_OK(blz_tcp_write_all(c, "scatter!", 8));
    CHECK_EQ(blz_await(&vf.base), 8);
    CHECK(memcmp(v1, "sc", 2) == 0 && memcmp(v2, "atter!", 6) == 0);
    CHECK_OK(blz_tcp_write_all(c, "ab", 2));
    CHECK_EQ(blz_tcp_half_readv(rd, rv, 1), 2);
    CHECK(memcmp(v1, "ab", 2) == 0);
    CHECK_EQ(blz_tcp_half_readv(NULL, rv, 2), -EINVAL);
    CHECK_EQ(blz_tcp_half_try_readv(rd, rv, BLZ_IOV_MAX + 1), -EINVAL);
    CHECK_EQ(blz_tcp_half_try_writev(wr, wv, 0), -EINVAL);
    CHECK_EQ(blz_tcp_half_writev(wr, NULL, 1), -EINVAL);
    CHECK_EQ(blz_tcp_half_try_read(NULL, buf, 1), -EINVAL);
    CHECK_EQ(blz_tcp_half_try_write(NULL, buf, 1), -EINVAL);
    CHECK_EQ(blz_tcp_split(c, NULL, &wr), -EINVAL);
    blz_tcp_read_half_close(rd);
    blz_tcp_write_half_close(wr);
    blz_tcp_close(c); /* c was never split: the failed split took no handle */
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(split_halves_try_tiers)
{
    net_run(2, half_try_main, NULL);
}

/* ---- closing a half that another task waits on ------------------------------------------- */

typedef struct half_wait {
    blz_tcp_read_half *rd;
    _Atomic int done;
    ssize_t result;
} half_wait;

static void *
half_waiting_reader(void *arg)
{
    half_wait *h = arg;
    char buf[8];
    h->result = blz_tcp_half_read(h->rd, buf, sizeof buf); /* the peer sends nothing */
    atomic_store(&h->done, 1);
    return NULL;
}

/* Closing a read half ends the read another task waits in on it with
 * -ECANCELED (net.h: a close ends the operations waiting on its handle),
 * while the write half, still open, goes on writing. It used to only drop
 * the half's handle: the read waited on until data came or the write half
 * was closed too. */
static void *
half_close_wait_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_tcp_stream *c = NULL, *s = NULL;
    net_pair(l, &a, &s, &c);
    blz_tcp_read_half *rd;
    blz_tcp_write_half *wr;
    CHECK_OK(blz_tcp_split(s, &rd, &wr));
    half_wait h = {rd, 0, 0};
    blz_join *j;
    CHECK_OK(blz_spawn(half_waiting_reader, &h, &j));
    WAIT_UNTIL(blz__io_driver_waiters(net_driver()) == 1, (void) blz_sleep(blz_ms(1)));
    blz_tcp_read_half_close(rd);
    WAIT_UNTIL(atomic_load(&h.done), (void) blz_sleep(blz_ms(1)));
    CHECK_EQ(h.result, -ECANCELED);
    CHECK_OK(blz_join_wait(j, NULL));
    CHECK_OK(blz_tcp_half_write_all(wr, "still", 5)); /* the other direction lives on */
    char buf[5];
    CHECK_OK(net_read_exact(c, buf, sizeof buf));
    CHECK(memcmp(buf, "still", 5) == 0);
    blz_tcp_write_half_close(wr);
    CHECK_EQ(blz_tcp_read(c, buf, sizeof buf), 0);
    blz_tcp_close(c);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(closing_a_read_half_ends_the_read_waiting_on_it)
{
    net_run(2, half_close_wait_main, NULL);
}

typedef struct half_write_wait {
    blz_tcp_write_half *wr;
    _Atomic int done;
    ssize_t result;
} half_write_wait;

static void *
half_waiting_writer(void *arg)
{
    half_write_wait *h = arg;
    static char big[1 << 16];
    h->result = blz_tcp_half_write(h->wr, big, sizeof big); /* the buffers are full */
    atomic_store(&h->done, 1);
    return NULL;
}

/* Closing a write half ends the write another task waits in on it with
 * -ECANCELED, as closing a read half ends a read (tests/net_unix.c has the
 * same for Unix streams, where the write waited for good). On TCP the
 * shutdown(SHUT_WR) woke it, but it then failed with -EPIPE, an error of the
 * connection for what was the handle's own close. */
static void *
write_half_close_wait_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_tcp_socket *cs = NULL;
    CHECK_OK(blz_tcp_socket_new(BLZ_AF_INET, &cs));
    CHECK_OK(blz_tcp_socket_set_send_buffer_size(cs, 4096));
    blz_tcp_stream *c = NULL, *s = NULL;
    CHECK_OK(blz_tcp_socket_connect(cs, &a, &c));
    CHECK_OK(blz_tcp_accept(l, &s, NULL));
    blz_tcp_read_half *rd;
    blz_tcp_write_half *wr;
    CHECK_OK(blz_tcp_split(c, &rd, &wr));
    static char big[1 << 16];
    /* Fill the send buffer and the peer's receive queue (nobody reads). */
    WAIT_UNTIL(blz_tcp_half_try_write(wr, big, sizeof big) == -EAGAIN &&
                   blz_tcp_try_ready(blz_tcp_write_half_stream(wr), BLZ_WRITABLE) == -EAGAIN,
               (void) blz_sleep(blz_ms(1)));
    half_write_wait h = {wr, 0, 0};
    blz_join *j;
    CHECK_OK(blz_spawn(half_waiting_writer, &h, &j));
    WAIT_UNTIL(blz__io_driver_waiters(net_driver()) == 1, (void) blz_sleep(blz_ms(1)));
    blz_tcp_write_half_close(wr);
    WAIT_UNTIL(atomic_load(&h.done), (void) blz_sleep(blz_ms(1)));
    CHECK_EQ(h.result, -ECANCELED);
    CHECK_OK(blz_join_wait(j, NULL));
    CHECK_OK(blz_tcp_write_all(s, "back", 4)); /* the other direction lives on */
    char buf[4];
    size_t got = 0;
    while (got < sizeof buf) {
        ssize_t n = blz_tcp_half_read(rd, buf + got, sizeof buf - got);
        CHECK_GT(n, 0);
        got += (size_t) n;
    }
    CHECK(memcmp(buf, "back", 4) == 0);
    blz_tcp_read_half_close(rd);
    blz_tcp_close(s);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(closing_a_write_half_ends_the_write_waiting_on_it)
{
    net_run(2, write_half_close_wait_main, NULL);
}

/* ---- a short read means drained ------------------------------------------------ */

static _Atomic int recv_calls;
static long (*real_recv)(int fd, void *buf, size_t n, int flags);

static long
counting_recv(int fd, void *buf, size_t n, int flags)
{
    atomic_fetch_add(&recv_calls, 1);
    return real_recv(fd, buf, n, flags);
}

static void *
short_read_main(void *arg)
{
    (void) arg;
    blz_addr addr;
    blz_tcp_listener *l = net_listen_any(&addr);
    blz_tcp_stream *a = NULL, *b = NULL;
    net_pair(l, &addr, &a, &b);
    char buf[64];
    for (int round = 0; round < 100; round++) {
        CHECK_EQ(blz_tcp_write(b, "abc", 3), 3);
        CHECK_EQ(blz_tcp_read(a, buf, sizeof buf), 3); /* short: the queue is empty now */
        int before = atomic_load(&recv_calls);
        /* No event since: the try tier knows without a syscall. */
        CHECK_EQ(blz_tcp_try_read(a, buf, sizeof buf), -EAGAIN);
        CHECK_EQ(atomic_load(&recv_calls), before);
    }
    /* A full-size read says nothing: the next read asks the kernel (with
     * completion receive, what it received: no syscall either way). */
    CHECK_OK(blz_tcp_write_all(b, "0123456789", 10));
    CHECK_OK(net_read_exact(a, buf, 10));
    int before = atomic_load(&recv_calls);
    CHECK_EQ(blz_tcp_try_read(a, buf, sizeof buf), -EAGAIN);
    CHECK_EQ(atomic_load(&recv_calls), before + (net_rx_on(a) ? 0 : 1));
    /* Data and end-of-file together: the short read must not hide the EOF. */
    CHECK_EQ(blz_tcp_write(b, "x", 1), 1);
    CHECK_OK(blz_tcp_shutdown(b, BLZ_SHUT_WR));
    CHECK_EQ(blz_tcp_read(a, buf, sizeof buf), 1);
    CHECK_EQ(blz_tcp_read(a, buf, sizeof buf), 0);
    blz_tcp_close(a);
    blz_tcp_close(b);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(short_read_means_drained)
{
    real_recv = blz__sys.recv;
    blz__sys.recv = counting_recv;
    net_run(1, short_read_main, NULL);
    blz__sys_reset();
}

/* ---- waiting for readiness, then the try tier ------------------------------------ */

enum { READY_ROUNDS = 1000 };

static void *
ready_writer(void *arg)
{
    blz_tcp_stream *b = arg;
    unsigned char buf[512];
    uint64_t off = 0;
    for (int round = 0; round < READY_ROUNDS; round++) {
        size_t n = 1 + (size_t) round % sizeof buf;
        net_fill(11, off, buf, n);
        CHECK_OK(blz_tcp_write_all(b, buf, n));
        off += n;
    }
    CHECK_OK(blz_tcp_shutdown(b, BLZ_SHUT_WR));
    return (void *) (uintptr_t) off;
}

static void *
ready_main(void *arg)
{
    (void) arg;
    blz_addr addr;
    blz_tcp_listener *l = net_listen_any(&addr);
    blz_tcp_stream *a = NULL, *b = NULL;
    net_pair(l, &addr, &a, &b);

    /* Bad arguments. */
    CHECK_EQ(blz_tcp_try_ready(a, (blz_interest) 0), -EINVAL);
    CHECK_EQ(blz_tcp_try_ready(a, (blz_interest) (BLZ_READABLE | BLZ_WRITABLE)), -EINVAL);
    CHECK_EQ(blz_tcp_ready(a, (blz_interest) 7), -EINVAL);
    CHECK_EQ(blz_tcp_ready(NULL, BLZ_READABLE), -EINVAL);
    CHECK_EQ(blz_tcp_try_ready(NULL, BLZ_WRITABLE), -EINVAL);
    blz_io_future f;
    blz_tcp_ready_fut(a, (blz_interest) 0, &f);
    CHECK_EQ(blz_await(&f.base), -EINVAL);

    /* A new stream may say readable; a read that finds nothing clears it
     * (unless an event raced with it, such as the one that reports the new
     * socket writable: then the next read clears it). */
    char buf[1024];
    bool cleared = false; /* asking again after the loop would race the same way */
    for (int tries = 0; tries < 100 && !cleared; tries++) {
        CHECK_EQ(blz_tcp_try_read(a, buf, sizeof buf), -EAGAIN);
        cleared = blz_tcp_try_ready(a, BLZ_READABLE) == -EAGAIN;
        if (!cleared) {
            blz_yield();
        }
    }
    CHECK(cleared);
    CHECK_EQ(blz_tcp_try_ready(a, BLZ_WRITABLE), 0); /* an empty send buffer */
    CHECK_EQ(blz_tcp_ready(a, BLZ_WRITABLE), 0);

    /* Every byte arrives through ready + try_read, in order, then end-of-file. */
    blz_join *j;
    CHECK_OK(blz_spawn(ready_writer, b, &j));
    uint64_t got = 0;
    for (;;) {
        CHECK_EQ(blz_tcp_ready(a, BLZ_READABLE), 0);
        ssize_t n = blz_tcp_try_read(a, buf, sizeof buf);
        if (n == -EAGAIN) {
            continue; /* a stale hint: allowed, and now cleared */
        }
        CHECK_GE(n, 0);
        if (n == 0) {
            break;
        }
        CHECK(net_verify(11, got, (unsigned char *) buf, (size_t) n));
        got += (uint64_t) n;
    }
    void *sent;
    CHECK_OK(blz_join_wait(j, &sent));
    CHECK_EQ(got, (uint64_t) (uintptr_t) sent);
    CHECK_EQ(blz_tcp_ready(a, BLZ_READABLE), 0); /* end-of-file stays readable */

    /* The future stays pending while nothing is there, and the data wakes it. */
    blz_tcp_stream *c = NULL, *d = NULL;
    net_pair(l, &addr, &c, &d);
    test_waker tw;
    test_waker_init(&tw);
    do { /* as above: until a clearing read had no event racing with it */
        CHECK_EQ(blz_tcp_try_read(c, buf, sizeof buf), -EAGAIN);
        blz_tcp_ready_fut(c, BLZ_READABLE, &f);
    } while (poll_with(&f.base, &tw) == BLZ_READY);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_PENDING);
    int woken = test_wakes(&tw); /* a write-side event may wake it early: a hint too */
    CHECK_EQ(blz_tcp_write(d, "z", 1), 1);
    while (test_wakes(&tw) == woken) {
        blz_yield(); /* the other worker's driver dispatches the event */
    }
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_READY);
    CHECK_EQ(f.base.result, 0);
    CHECK_EQ(blz_tcp_try_read(c, buf, sizeof buf), 1);
    CHECK_EQ(buf[0], 'z');

    /* One dropped while it waits leaves nothing behind (ASan, the registry). */
    CHECK_EQ(blz_tcp_try_read(d, buf, sizeof buf), -EAGAIN);
    blz_tcp_ready_fut(d, BLZ_READABLE, &f);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_PENDING);
    blz_future_drop(&f.base);

    /* A pending ready future sees the stream closed under it. */
    CHECK_EQ(blz_tcp_try_read(c, buf, sizeof buf), -EAGAIN);
    test_waker_init(&tw);
    blz_tcp_ready_fut(c, BLZ_READABLE, &f);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_PENDING);
    blz_tcp_close(c);
    CHECK_GE(test_wakes(&tw), 1);
    CHECK_EQ(poll_with(&f.base, &tw), BLZ_READY);
    CHECK_EQ(f.base.result, -ECANCELED);
    blz_future_drop(&f.base);
    blz_tcp_close(d);

    blz_tcp_close(a);
    blz_tcp_close(b);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(ready_then_try_tier)
{
    net_run(2, ready_main, NULL);
}

/* ---- a lone readiness event wakes only the task it is for ---------------- */

enum { LONE_ROUNDS = 2000 };
static blz_notify lone_done;

/* The far end: a plain thread (its waits park the thread, not a worker). */
static void *
lone_peer(void *arg)
{
    blz_tcp_stream *c = arg;
    for (int i = 0; i < LONE_ROUNDS; i++) {
        unsigned char b = (unsigned char) i;
        CHECK_OK(blz_tcp_write_all(c, &b, 1));
        CHECK_OK(net_read_exact(c, &b, 1));
        CHECK_EQ(b, (unsigned char) (i + 1));
    }
    blz_notify_one(&lone_done);
    return NULL;
}

static uint64_t
unparks_so_far(void)
{
    blz_metrics m;
    blz_runtime_metrics(blz_runtime_current(), &m);
    return m.unparks;
}

static void *
lone_event_main(void *arg)
{
    (void) arg;
    blz_notify_init(&lone_done);
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_tcp_stream *s, *c;
    net_pair(l, &a, &s, &c);
    uint64_t before = unparks_so_far();
    pthread_t peer;
    CHECK_EQ(pthread_create(&peer, NULL, lone_peer, c), 0);
    for (int i = 0; i < LONE_ROUNDS; i++) {
        unsigned char b;
        CHECK_OK(net_read_exact(s, &b, 1)); /* this worker sleeps; the event wakes it */
        CHECK_EQ(b, (unsigned char) i);
        b++;
        CHECK_OK(blz_tcp_write_all(s, &b, 1));
    }
    /* Not pthread_join yet: blocking this worker while the peer still waits
     * for its last byte could leave no worker to poll the driver for it. */
    CHECK_OK(blz_notify_wait(&lone_done));
    CHECK_EQ(pthread_join(peer, NULL), 0); /* it has returned or is returning */
    /* The driver woke one task per event, which the worker that dispatched it
     * runs next: the other worker has nothing to do and must stay asleep. It
     * used to be unparked once per event, to find nothing and park again. */
    CHECK_LT(unparks_so_far() - before, (uint64_t) LONE_ROUNDS / 10);
    blz_tcp_close(s);
    blz_tcp_close(c);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(lone_event_leaves_the_other_worker_asleep)
{
    net_run(2, lone_event_main, NULL);
}
