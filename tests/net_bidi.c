/*
 * Copy both ways (blz_copy_bidirectional) as a proxy between two real TCP
 * connections: both directions at once with every byte checked, a half-closed
 * connection that keeps working the other way, a reset that ends both ways
 * with its error, an aborted copy that still reports what it wrote, the
 * future tier polled and dropped, bad input; and the end
 * of writing (blz_write_shutdown) through a buffered writer.
 */
#include "blitzio/stream.h"
#include "net_common.h"

/* One end of the proxied connection: sends `send_bytes` of pattern
 * `send_seed` then ends its writing, and reads until end of stream,
 * checking pattern `recv_seed`. */
typedef struct peer {
    blz_tcp_stream *s;
    uint64_t send_seed, send_bytes;
    uint64_t recv_seed, received;
    int send_rc, recv_rc;
} peer;

static void *
peer_send(void *arg)
{
    peer *p = arg;
    unsigned char *buf = malloc(65536);
    CHECK(buf != NULL);
    p->send_rc = 0;
    for (uint64_t off = 0; off < p->send_bytes && p->send_rc == 0;) {
        size_t n = p->send_bytes - off < 65536 ? (size_t) (p->send_bytes - off) : 65536;
        net_fill(p->send_seed, off, buf, n);
        p->send_rc = blz_tcp_write_all(p->s, buf, n);
        off += n;
    }
    free(buf);
    if (p->send_rc == 0) {
        p->send_rc = blz_write_shutdown(blz_tcp_writer(p->s));
    }
    return NULL;
}

/* Reads to the end; the sending side runs in its own task meanwhile. */
static void *
peer_main(void *arg)
{
    peer *p = arg;
    blz_join *j;
    CHECK_OK(blz_spawn(peer_send, p, &j));
    unsigned char *buf = malloc(65536);
    CHECK(buf != NULL);
    p->received = 0;
    for (;;) {
        ssize_t n = blz_tcp_read(p->s, buf, 65536);
        if (n <= 0) {
            p->recv_rc = (int) n;
            break;
        }
        CHECK(net_verify(p->recv_seed, p->received, buf, (size_t) n));
        p->received += (uint64_t) n;
    }
    free(buf);
    CHECK_OK(blz_join_wait(j, NULL));
    return NULL;
}

typedef struct proxy {
    blz_tcp_stream *a, *b; /* the proxy's side of each connection */
    uint64_t a_to_b, b_to_a;
    int rc;
} proxy;

static void *
proxy_main(void *arg)
{
    proxy *x = arg;
    blz_duplex a = {blz_tcp_reader(x->a), blz_tcp_writer(x->a)};
    blz_duplex b = {blz_tcp_reader(x->b), blz_tcp_writer(x->b)};
    x->rc = blz_copy_bidirectional(a, b, &x->a_to_b, &x->b_to_a);
    return NULL;
}

/* Client A and upstream B, each connected to the proxy; the proxy runs. */
typedef struct rig {
    blz_tcp_listener *l;
    blz_tcp_stream *a, *b; /* the ends the test drives */
    proxy x;
    blz_join *proxy_join;
} rig;

static void
rig_open(rig *r)
{
    memset(r, 0, sizeof *r);
    blz_addr addr;
    r->l = net_listen_any(&addr);
    net_pair(r->l, &addr, &r->x.a, &r->a);
    net_pair(r->l, &addr, &r->x.b, &r->b);
    CHECK_OK(blz_spawn(proxy_main, &r->x, &r->proxy_join));
}

/* Closes what the test left open (it sets what it closed itself to NULL). */
static void
rig_close(rig *r)
{
    blz_tcp_stream *all[] = {r->a, r->b, r->x.a, r->x.b};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (all[i]) {
            blz_tcp_close(all[i]);
        }
    }
    blz_tcp_listener_close(r->l);
}

/* ---- both ways at once ------------------------------------------------------------------- */

#define BOTH_BYTES (4u << 20)

static void *
both_ways_main(void *arg)
{
    (void) arg;
    rig r;
    rig_open(&r);
    peer pa = {r.a, 1, BOTH_BYTES, 2, 0, -1, -1};
    peer pb = {r.b, 2, BOTH_BYTES - 12345, 1, 0, -1, -1};
    blz_join *ja, *jb;
    CHECK_OK(blz_spawn(peer_main, &pa, &ja));
    CHECK_OK(blz_spawn(peer_main, &pb, &jb));
    CHECK_OK(blz_join_wait(ja, NULL));
    CHECK_OK(blz_join_wait(jb, NULL));
    CHECK_OK(blz_join_wait(r.proxy_join, NULL));
    CHECK_EQ(pa.send_rc, 0);
    CHECK_EQ(pb.send_rc, 0);
    CHECK_EQ(pa.recv_rc, 0); /* each read to a clean end of stream */
    CHECK_EQ(pb.recv_rc, 0);
    CHECK_EQ(pb.received, (uint64_t) BOTH_BYTES);
    CHECK_EQ(pa.received, (uint64_t) BOTH_BYTES - 12345);
    CHECK_EQ(r.x.rc, 0);
    CHECK_EQ(r.x.a_to_b, (uint64_t) BOTH_BYTES);
    CHECK_EQ(r.x.b_to_a, (uint64_t) BOTH_BYTES - 12345);
    rig_close(&r);
    return NULL;
}

BLZ_TEST(both_ways_at_once_every_byte)
{
    net_run(2, both_ways_main, NULL);
    net_run(1, both_ways_main, NULL);
}

/* ---- a half-closed connection ------------------------------------------------------------ */

static void *
half_close_main(void *arg)
{
    (void) arg;
    rig r;
    rig_open(&r);
    /* A says three bytes and is done talking. */
    CHECK_OK(blz_tcp_write_all(r.a, "abc", 3));
    CHECK_OK(blz_write_shutdown(blz_tcp_writer(r.a)));
    /* B reads them and then the end: the proxy passed the end on, while B has
     * not finished. */
    char three[4];
    CHECK_OK(net_read_exact(r.b, three, 3));
    CHECK(memcmp(three, "abc", 3) == 0);
    CHECK_EQ(blz_tcp_read(r.b, three, sizeof three), 0);
    /* The other way still works: B answers at length, then ends. */
    peer pb = {r.b, 7, 300000, 0, 0, -1, -1};
    peer_send(&pb);
    CHECK_EQ(pb.send_rc, 0);
    unsigned char *buf = malloc(300001);
    CHECK(buf != NULL);
    CHECK_OK(net_read_exact(r.a, buf, 300000));
    CHECK(net_verify(7, 0, buf, 300000));
    CHECK_EQ(blz_tcp_read(r.a, buf, 1), 0);
    free(buf);
    CHECK_OK(blz_join_wait(r.proxy_join, NULL));
    CHECK_EQ(r.x.rc, 0);
    CHECK_EQ(r.x.a_to_b, 3u);
    CHECK_EQ(r.x.b_to_a, 300000u);
    rig_close(&r);
    return NULL;
}

BLZ_TEST(half_closed_connection_keeps_the_other_way)
{
    net_run(2, half_close_main, NULL);
}

/* ---- a reset ------------------------------------------------------------------------------- */

static void *
reset_main(void *arg)
{
    (void) arg;
    rig r;
    rig_open(&r);
    /* A streams at B through the proxy; B takes a little and resets. */
    peer pa = {r.a, 3, 64u << 20, 0, 0, -1, -1};
    blz_join *ja;
    CHECK_OK(blz_spawn(peer_send, &pa, &ja));
    unsigned char buf[4096];
    CHECK_OK(net_read_exact(r.b, buf, sizeof buf));
    CHECK(net_verify(3, 0, buf, sizeof buf));
    CHECK_OK(blz_tcp_set_linger(r.b, true, 0));
    blz_tcp_close(r.b); /* with unread data and linger 0: a reset */
    r.b = NULL;
    CHECK_OK(blz_join_wait(r.proxy_join, NULL));
    /* The proxy's write to B fails (reset or broken pipe), or its read of B
     * sees the reset first: either way the error ends both directions. */
    CHECK(r.x.rc == -ECONNRESET || r.x.rc == -EPIPE);
    CHECK_GE(r.x.a_to_b, (uint64_t) sizeof buf);
    CHECK_LT(r.x.a_to_b, (uint64_t) 64u << 20);
    CHECK_EQ(r.x.b_to_a, 0u);
    /* A's sender stops once the proxy's side goes away. */
    blz_tcp_close(r.x.a);
    r.x.a = NULL;
    CHECK_OK(blz_join_wait(ja, NULL));
    CHECK_LT(pa.send_rc, 0);
    CHECK_EQ(blz__io_driver_waiters(net_driver()), 0); /* the dropped direction left no waiter */
    rig_close(&r);
    return NULL;
}

BLZ_TEST(reset_ends_both_ways_with_its_error)
{
    net_run(2, reset_main, NULL);
}

/* ---- an aborted copy ----------------------------------------------------------------------- */

typedef struct copy_job {
    blz_tcp_stream *from, *to;
    uint64_t copied;
    int rc;
} copy_job;

static void *
copy_main(void *arg)
{
    copy_job *c = arg;
    c->rc = blz_copy(blz_tcp_reader(c->from), blz_tcp_writer(c->to), &c->copied);
    return NULL;
}

/* The proxy task is aborted (as a runtime being freed aborts it) after bytes
 * crossed both ways: blz_copy_bidirectional returns -ECANCELED and still
 * says how many bytes it wrote each way, as it does for any other error. */
static void *
aborted_main(void *arg)
{
    (void) arg;
    rig r;
    rig_open(&r);
    CHECK_OK(blz_tcp_write_all(r.a, "hello", 5));
    char in[8];
    CHECK_OK(net_read_exact(r.b, in, 5));
    CHECK_OK(blz_tcp_write_all(r.b, "hi", 2));
    CHECK_OK(net_read_exact(r.a, in, 2));
    blz_join_abort(r.proxy_join);
    (void) blz_join_wait(r.proxy_join, NULL); /* the fiber ends once its wait returns */
    CHECK_EQ(r.x.rc, -ECANCELED);
    CHECK_EQ(r.x.a_to_b, 5u);
    CHECK_EQ(r.x.b_to_a, 2u);
    /* The same for a copy one way, over the same connections. */
    copy_job job = {r.x.a, r.x.b, 99, 0};
    blz_join *j;
    CHECK_OK(blz_spawn(copy_main, &job, &j));
    CHECK_OK(blz_tcp_write_all(r.a, "again", 5));
    CHECK_OK(net_read_exact(r.b, in, 5));
    blz_join_abort(j);
    (void) blz_join_wait(j, NULL);
    CHECK_EQ(job.rc, -ECANCELED);
    CHECK_EQ(job.copied, 5u);
    rig_close(&r);
    return NULL;
}

BLZ_TEST(aborted_copy_still_reports_what_it_wrote)
{
    net_run(2, aborted_main, NULL);
}

/* ---- the future tier: pending, dropped; bad input ---------------------------------------- */

static void *
future_tier_main(void *arg)
{
    (void) arg;
    blz_unix_stream *a, *pa, *b, *pb; /* a <-> pa (proxy) ... pb (proxy) <-> b */
    CHECK_OK(blz_unix_pair(&a, &pa));
    CHECK_OK(blz_unix_pair(&b, &pb));
    blz_duplex da = {blz_unix_reader(pa), blz_unix_writer(pa)};
    blz_duplex db = {blz_unix_reader(pb), blz_unix_writer(pb)};
    static unsigned char buf[1024];
    uint64_t ab = 99, ba = 99;
    blz_copy_bidi_future f;
    blz_copy_bidirectional_fut(da, db, buf, sizeof buf, &ab, &ba, &f);
    CHECK_EQ(ab, 0u);
    CHECK_EQ(ba, 0u);
    blz_context cx = {blz_waker_noop()};
    /* Nothing to read either way: both directions wait, each on its stream. */
    CHECK_EQ(blz_future_poll(&f.base, &cx), BLZ_PENDING);
    CHECK_EQ(blz__io_driver_waiters(net_driver()), 2);
    /* Bytes from a cross while the future is polled by hand. */
    CHECK_OK(blz_write_all(blz_unix_writer(a), "ping", 4));
    char got[4] = {0};
    blz_io_future rf;
    blz_read_fut(blz_unix_reader(b), got, sizeof got, &rf);
    int polls = 0;
    while (blz_future_poll(&rf.base, &cx) == BLZ_PENDING && ++polls < 100000) {
        CHECK_EQ(blz_future_poll(&f.base, &cx), BLZ_PENDING);
        blz_yield();
    }
    CHECK_EQ(rf.base.result, 4);
    CHECK(memcmp(got, "ping", 4) == 0);
    /* Dropped half-way: no waiter stays behind, nothing is reported. */
    blz_future_drop(&f.base);
    CHECK_EQ(blz__io_driver_waiters(net_driver()), 0);
    CHECK_EQ(ab, 0u); /* totals are stored when the future completes */

    /* Bad input: at once, with the totals zeroed. */
    blz_duplex no_reader = {{NULL, NULL}, da.w};
    blz_duplex no_writer = {da.r, {NULL, NULL}};
    ab = ba = 99;
    blz_copy_bidirectional_fut(no_reader, db, buf, sizeof buf, &ab, &ba, &f);
    CHECK_EQ(blz_future_poll(&f.base, &cx), BLZ_READY);
    CHECK_EQ(f.base.result, -EINVAL);
    CHECK_EQ(ab + ba, 0u);
    blz_copy_bidirectional_fut(da, no_writer, buf, sizeof buf, NULL, NULL, &f);
    CHECK_EQ(blz_await(&f.base), -EINVAL);
    blz_copy_bidirectional_fut(da, db, NULL, sizeof buf, NULL, NULL, &f);
    CHECK_EQ(blz_await(&f.base), -EINVAL);
    blz_copy_bidirectional_fut(da, db, buf, 1, NULL, NULL, &f);
    CHECK_EQ(blz_await(&f.base), -EINVAL);
    CHECK_EQ(blz_copy_bidirectional(no_writer, no_reader, &ab, &ba), -EINVAL);
    blz_copy_bidirectional_fut(da, db, buf, sizeof buf, NULL, NULL, NULL); /* no-op */
    blz_unix_close(a);
    blz_unix_close(pa);
    blz_unix_close(b);
    blz_unix_close(pb);
    return NULL;
}

BLZ_TEST(future_tier_pending_dropped_and_bad_input)
{
    net_run(2, future_tier_main, NULL);
}

/* ---- the end of writing through a buffered writer ------------------------------------------ */

static void *
write_shutdown_main(void *arg)
{
    (void) arg;
    blz_addr addr;
    blz_tcp_listener *l = net_listen_any(&addr);
    blz_tcp_stream *s, *c;
    net_pair(l, &addr, &s, &c);
    blz_buf_writer bw;
    CHECK_OK(blz_buf_writer_init(&bw, blz_tcp_writer(c), NULL, 1024));
    CHECK_EQ(blz_buf_writer_write(&bw, "hello", 5), 5);
    CHECK_EQ(blz_buf_writer_buffered(&bw), 5u); /* still in the buffer */
    CHECK_OK(blz_write_shutdown(blz_buf_writer_as_writer(&bw)));
    CHECK_EQ(blz_buf_writer_buffered(&bw), 0u);
    char in[8];
    CHECK_OK(net_read_exact(s, in, 5));
    CHECK(memcmp(in, "hello", 5) == 0);
    CHECK_EQ(blz_tcp_read(s, in, sizeof in), 0); /* then the end */
    /* Writing after the end fails; the read direction is untouched. */
    CHECK_EQ(blz_tcp_write(c, "x", 1), -EPIPE);
    CHECK_OK(blz_tcp_write_all(s, "back", 4));
    CHECK_OK(net_read_exact(c, in, 4));
    CHECK(memcmp(in, "back", 4) == 0);
    blz_buf_writer_deinit(&bw);
    blz_writer none = {NULL, NULL};
    CHECK_EQ(blz_write_shutdown(none), -EINVAL);
    blz_tcp_close(s);
    blz_tcp_close(c);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(write_shutdown_flushes_a_buffered_writer_first)
{
    net_run(2, write_shutdown_main, NULL);
}
