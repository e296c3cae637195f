/*
 * UDP on loopback: send_to/recv_from, connected send/recv, all three tiers,
 * options, and errors.
 */
#include "net_common.h"

#include <net/if.h>

/* Two UDP sockets on loopback and their addresses. */
static void
udp_pair(blz_udp_socket **a, blz_udp_socket **b, blz_addr *aa, blz_addr *ba)
{
    CHECK_OK(blz_udp_bind("127.0.0.1:0", a));
    CHECK_OK(blz_udp_bind("127.0.0.1:0", b));
    CHECK_OK(blz_udp_local_addr(*a, aa));
    CHECK_OK(blz_udp_local_addr(*b, ba));
}

static void *
udp_main(void *arg)
{
    (void) arg;
    blz_udp_socket *a = NULL, *b = NULL;
    blz_addr aa, ba, from;
    udp_pair(&a, &b, &aa, &ba);
    CHECK_GT(blz_addr_port(&aa), 0);

    char buf[256];
    CHECK_EQ(blz_udp_try_recv_from(b, buf, sizeof buf, &from), -EAGAIN);
    CHECK_EQ(blz_udp_send_to(a, "ping", 4, &ba), 4);
    CHECK_EQ(blz_udp_recv_from(b, buf, sizeof buf, &from), 4);
    CHECK(memcmp(buf, "ping", 4) == 0);
    CHECK(blz_addr_equal(&from, &aa));

    /* Many datagrams keep their boundaries and order. */
    for (int i = 0; i < 100; i++) {
        char m[32];
        int n = snprintf(m, sizeof m, "msg %d", i);
        CHECK_EQ(blz_udp_send_to(b, m, (size_t) n, &aa), n);
    }
    for (int i = 0; i < 100; i++) {
        char m[32];
        int n = snprintf(m, sizeof m, "msg %d", i);
        CHECK_EQ(blz_udp_recv_from(a, buf, sizeof buf, NULL), n);
        CHECK(memcmp(buf, m, (size_t) n) == 0);
    }

    /* An empty datagram is a message; a short buffer truncates. */
    CHECK_EQ(blz_udp_send_to(a, "", 0, &ba), 0);
    CHECK_EQ(blz_udp_recv_from(b, buf, sizeof buf, NULL), 0);
    CHECK_EQ(blz_udp_send_to(a, "truncated", 9, &ba), 9);
    CHECK_EQ(blz_udp_recv(b, buf, 4), 4);

    /* Connected sockets. */
    CHECK_EQ(blz_udp_send(a, "x", 1), -EDESTADDRREQ);
    CHECK_OK(blz_udp_connect(a, &ba));
    CHECK_OK(blz_udp_connect(b, &aa));
    blz_addr peer;
    CHECK_OK(blz_udp_peer_addr(a, &peer));
    CHECK(blz_addr_equal(&peer, &ba));
    CHECK_EQ(blz_udp_send(a, "conn", 4), 4);
    CHECK_EQ(blz_udp_recv(b, buf, sizeof buf), 4);
    CHECK_EQ(blz_udp_try_send(b, "back", 4), 4);
    ssize_t n;
    while ((n = blz_udp_try_recv(a, buf, sizeof buf)) == -EAGAIN) {
        blz_yield();
    }
    CHECK_EQ(n, 4);

    /* The future tier. */
    blz_io_future f;
    blz_udp_recv_fut(b, buf, sizeof buf, &f);
    blz_context cx = {blz_waker_noop()};
    CHECK_EQ(blz_future_poll(&f.base, &cx), BLZ_PENDING);
    blz_io_future g;
    blz_udp_send_fut(a, "fut", 3, &g);
    CHECK_EQ(blz_await(&g.base), 3);
    CHECK_EQ(blz_await(&f.base), 3);

    /* Options. */
    CHECK_OK(blz_udp_set_broadcast(a, true));
    CHECK_OK(blz_udp_set_ttl(a, 32));
    int ttl = 0;
    CHECK_OK(blz_udp_ttl(a, &ttl));
    CHECK_EQ(ttl, 32);
    CHECK_EQ(blz_udp_set_ttl(a, 0), -EINVAL);
    CHECK_EQ(blz_udp_ttl(a, NULL), -EINVAL);
    CHECK_OK(blz_udp_set_multicast_ttl(a, 1));
    CHECK_OK(blz_udp_set_multicast_loop(a, true));

    /* An ICMP port-unreachable surfaces as -ECONNREFUSED on a connected socket. */
    blz_udp_socket *c = NULL;
    CHECK_OK(blz_udp_bind("127.0.0.1:0", &c));
    blz_addr ca;
    CHECK_OK(blz_udp_local_addr(c, &ca));
    blz_udp_close(c);
    blz_udp_socket *d = NULL;
    CHECK_OK(blz_udp_bind("127.0.0.1:0", &d));
    CHECK_OK(blz_udp_connect(d, &ca));
    CHECK_EQ(blz_udp_send(d, "void", 4), 4);
    CHECK_EQ(blz_udp_recv(d, buf, sizeof buf), -ECONNREFUSED);
    blz_udp_close(d);

    /* Errors. */
    CHECK_EQ(blz_udp_send_to(a, "x", 1, NULL), -EINVAL);
    CHECK_EQ(blz_udp_recv(NULL, buf, 1), -EINVAL);
    blz_udp_socket *bad = NULL;
    CHECK_EQ(blz_udp_bind("nope", &bad), -EINVAL);
    CHECK_EQ(blz_udp_bind("/tmp/x", &bad), -EINVAL);
    blz_udp_close(a);
    blz_udp_close(b);
    blz_udp_close(NULL);
    CHECK_EQ(blz__io_driver_waiters(net_driver()), 0);
    return NULL;
}

BLZ_TEST(udp_loopback)
{
    net_run(2, udp_main, NULL);
}

static void *
udp6_main(void *arg)
{
    (void) arg;
    blz_udp_socket *a = NULL;
    int rc = blz_udp_bind("[::1]:0", &a);
    if (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT) {
        return (void *) 1; /* no IPv6 loopback here */
    }
    CHECK_OK(rc);
    blz_addr aa;
    CHECK_OK(blz_udp_local_addr(a, &aa));
    CHECK_EQ(blz_addr_get_family(&aa), BLZ_AF_INET6);
    CHECK_EQ(blz_udp_send_to(a, "six", 3, &aa), 3);
    char buf[8];
    blz_addr from;
    CHECK_EQ(blz_udp_recv_from(a, buf, sizeof buf, &from), 3);
    CHECK(blz_addr_equal(&from, &aa));
    CHECK_OK(blz_udp_set_ttl(a, 9)); /* the IPv6 hop limit */
    int hops = 0;
    CHECK_OK(blz_udp_ttl(a, &hops));
    CHECK_EQ(hops, 9);
    blz_udp_close(a);
    return NULL;
}

BLZ_TEST(udp_ipv6_loopback)
{
    if (net_run(2, udp6_main, NULL)) {
        SKIP("no IPv6 loopback");
    }
}

/* Two tasks ping-pong 1,000 datagrams, each waiting in recv_from. */
typedef struct pp_ctx {
    blz_udp_socket *s;
    blz_addr peer;
    int rounds;
} pp_ctx;

static void *
ponger(void *arg)
{
    pp_ctx *c = arg;
    char buf[64];
    for (int i = 0; i < c->rounds; i++) {
        blz_addr from;
        ssize_t n = CHECK_OK(blz_udp_recv_from(c->s, buf, sizeof buf, &from));
        CHECK_EQ(blz_udp_send_to(c->s, buf, (size_t) n, &from), n);
    }
    return NULL;
}

static void *
pingpong_main(void *arg)
{
    (void) arg;
    pp_ctx srv = {.rounds = 1000};
    blz_udp_socket *cli = NULL;
    CHECK_OK(blz_udp_bind("127.0.0.1:0", &srv.s));
    CHECK_OK(blz_udp_bind("127.0.0.1:0", &cli));
    CHECK_OK(blz_udp_local_addr(srv.s, &srv.peer));
    blz_join *j;
    CHECK_OK(blz_spawn(ponger, &srv, &j));
    for (int i = 0; i < srv.rounds; i++) {
        uint32_t v = (uint32_t) i, back = 0;
        CHECK_EQ(blz_udp_send_to(cli, &v, sizeof v, &srv.peer), sizeof v);
        CHECK_EQ(blz_udp_recv_from(cli, &back, sizeof back, NULL), sizeof back);
        CHECK_EQ(back, v);
    }
    CHECK_OK(blz_join_wait(j, NULL));
    blz_udp_close(cli);
    blz_udp_close(srv.s);
    return NULL;
}

BLZ_TEST(udp_ping_pong_between_tasks)
{
    net_run(2, pingpong_main, NULL);
}

/* Multicast membership on loopback: joining may be refused where lo has no
 * multicast (a container), but never crashes and always pairs with leave. */
static void *
mcast_main(void *arg)
{
    (void) arg;
    blz_udp_socket *u = NULL;
    CHECK_OK(blz_udp_bind("0.0.0.0:0", &u));
    blz_addr group, bad;
    CHECK_OK(blz_addr_parse("239.255.77.1:0", &group));
    CHECK_OK(blz_addr_parse("/not/ip", &bad));
    CHECK_EQ(blz_udp_join_multicast(u, &bad, 0), -EINVAL);
    int rc = blz_udp_join_multicast(u, &group, 0);
    if (rc == 0) {
        CHECK_OK(blz_udp_leave_multicast(u, &group, 0));
    } else {
        CHECK(rc == -ENODEV || rc == -EADDRNOTAVAIL || rc == -ENOBUFS);
    }
    blz_udp_close(u);
    return NULL;
}

BLZ_TEST(udp_multicast_membership)
{
    net_run(2, mcast_main, NULL);
}

/* The sending interface: multicast sent by way of lo, with loop-back on, reaches
 * a member that joined on lo; an unknown interface index is refused. */
static void *
mcast_if_main(void *arg)
{
    (void) arg;
    unsigned lo = if_nametoindex("lo");
    CHECK_GT(lo, 0u);
    blz_udp_socket *rx = NULL, *tx = NULL;
    CHECK_OK(blz_udp_bind("0.0.0.0:0", &rx));
    CHECK_OK(blz_udp_bind("0.0.0.0:0", &tx));
    CHECK_EQ(blz_udp_set_multicast_if(NULL, lo), -EINVAL);
    CHECK_LT(blz_udp_set_multicast_if(tx, 0x7ffffff0u), 0);
    int set = blz_udp_set_multicast_if(tx, lo);
    if (set == -ENOPROTOOPT && blz_test_emulator()) {
        SKIP("qemu-user does not pass IP_MULTICAST_IF with an interface index through");
    }
    CHECK_OK(set);
    CHECK_OK(blz_udp_set_multicast_loop(tx, true));
    blz_addr group, local;
    CHECK_OK(blz_udp_local_addr(rx, &local));
    char text[64];
    snprintf(text, sizeof text, "239.255.77.2:%u", (unsigned) blz_addr_port(&local));
    CHECK_OK(blz_addr_parse(text, &group));
    int rc = blz_udp_join_multicast(rx, &group, lo);
    if (rc == 0) {
        CHECK_EQ(blz_udp_send_to(tx, "mc", 2, &group), 2);
        char buf[8];
        blz_io_future f;
        blz_udp_recv_fut(rx, buf, sizeof buf, &f);
        CHECK_EQ(blz_timeout(&f.base, blz_secs(10)), 2); /* bounded: never hangs */
        CHECK(memcmp(buf, "mc", 2) == 0);
        CHECK_OK(blz_udp_leave_multicast(rx, &group, lo));
    } else {
        CHECK(rc == -ENODEV || rc == -EADDRNOTAVAIL || rc == -ENOBUFS); /* no multicast here */
    }
    CHECK_OK(blz_udp_set_multicast_if(tx, 0));
    blz_udp_close(rx);
    blz_udp_close(tx);
    return NULL;
}

BLZ_TEST(udp_multicast_interface)
{
    net_run(2, mcast_if_main, NULL);
}

static void *
udp_peek_main(void *arg)
{
    (void) arg;
    blz_udp_socket *a = NULL, *b = NULL;
    blz_addr aa, ba, from;
    udp_pair(&a, &b, &aa, &ba);
    char buf[16];
    CHECK_EQ(blz_udp_try_peek_from(a, buf, sizeof buf, &from), -EAGAIN);
    blz_io_future f;
    blz_udp_peek_from_fut(a, buf, sizeof buf, &from, &f);
    blz_context cx = {blz_waker_noop()};
    CHECK_EQ(blz_future_poll(&f.base, &cx), BLZ_PENDING);
    CHECK_EQ(blz_udp_send_to(b, "first", 5, &aa), 5);
    CHECK_EQ(blz_await(&f.base), 5);
    CHECK(memcmp(buf, "first", 5) == 0);
    CHECK(blz_addr_equal(&from, &ba));
    /* Still queued: peeked again in every tier, then received once. */
    memset(&from, 0, sizeof from);
    CHECK_EQ(blz_udp_peek_from(a, buf, 3, &from), 3);
    CHECK(blz_addr_equal(&from, &ba));
    CHECK_EQ(blz_udp_try_peek_from(a, buf, sizeof buf, NULL), 5);
    CHECK_EQ(blz_udp_recv_from(a, buf, sizeof buf, NULL), 5);
    CHECK_EQ(blz_udp_try_peek_from(a, buf, sizeof buf, NULL), -EAGAIN);
    CHECK_EQ(blz_udp_peek_from(NULL, buf, 1, NULL), -EINVAL);
    blz_udp_close(a);
    blz_udp_close(b);
    return NULL;
}

BLZ_TEST(udp_peek_from)
{
    net_run(2, udp_peek_main, NULL);
}

/* Readiness on a UDP socket: readable once a datagram is queued. */
static void *
udp_ready_main(void *arg)
{
    (void) arg;
    blz_udp_socket *a = NULL, *b = NULL;
    CHECK_OK(blz_udp_bind("127.0.0.1:0", &a));
    CHECK_OK(blz_udp_bind("127.0.0.1:0", &b));
    blz_addr aa;
    CHECK_OK(blz_udp_local_addr(a, &aa));
    char buf[16];
    do { /* a read that finds nothing clears the hint, unless an event raced with it */
        CHECK_EQ(blz_udp_try_recv_from(a, buf, sizeof buf, NULL), -EAGAIN);
    } while (blz_udp_try_ready(a, BLZ_READABLE) == 0);
    CHECK_EQ(blz_udp_ready(a, (blz_interest) 3), -EINVAL);
    CHECK_EQ(blz_udp_ready(NULL, BLZ_READABLE), -EINVAL);
    blz_io_future f;
    blz_udp_ready_fut(a, BLZ_READABLE, &f);
    blz_context cx = {blz_waker_noop()};
    CHECK_EQ(blz_future_poll(&f.base, &cx), BLZ_PENDING);
    CHECK_EQ(blz_udp_send_to(b, "dgram", 5, &aa), 5);
    CHECK_EQ(blz_await(&f.base), 0);
    CHECK_EQ(blz_udp_try_recv_from(a, buf, sizeof buf, NULL), 5);
    CHECK(memcmp(buf, "dgram", 5) == 0);
    CHECK_EQ(blz_udp_ready(b, BLZ_WRITABLE), 0);
    blz_udp_close(a);
    blz_udp_close(b);
    return NULL;
}

BLZ_TEST(udp_ready)
{
    net_run(2, udp_ready_main, NULL);
}

/* Batches: every datagram of a run of send_many calls arrives through
 * recv_many in order, with its length, bytes and sender; a call moves at
 * most BLZ_UDP_MANY_MAX; truncation is reported per datagram. */
#define BATCH_DGRAMS 100

static size_t
batch_len(int i)
{
    return (size_t) (i * 37) % 200;
}

static void
batch_fill(char *p, int i)
{
    for (size_t k = 0; k < batch_len(i); k++) {
        p[k] = (char) (i + (int) k);
    }
}

static void *
udp_batch_main(void *arg)
{
    (void) arg;
    blz_udp_socket *a = NULL, *b = NULL;
    blz_addr aa, ba;
    udp_pair(&a, &b, &aa, &ba);

    static char out[BATCH_DGRAMS][200];
    blz_udp_msg sm[BATCH_DGRAMS];
    for (int i = 0; i < BATCH_DGRAMS; i++) {
        batch_fill(out[i], i);
        sm[i] = (blz_udp_msg){.buf = out[i], .len = batch_len(i), .addr = &ba};
    }
    int sent = 0;
    while (sent < BATCH_DGRAMS) {
        ssize_t r = blz_udp_send_many(a, &sm[sent], (size_t) (BATCH_DGRAMS - sent));
        CHECK_GE(r, 1);
        CHECK_LE(r, BLZ_UDP_MANY_MAX);
        for (ssize_t k = 0; k < r; k++) {
            CHECK_EQ(sm[sent + k].result, sm[sent + k].len);
        }
        sent += (int) r;
    }

    static char in[40][256];
    blz_udp_msg rm[40];
    blz_addr from[40];
    int got = 0;
    while (got < BATCH_DGRAMS) {
        for (int k = 0; k < 40; k++) {
            memset(&from[k], 0, sizeof from[k]);
            rm[k] = (blz_udp_msg){.buf = in[k], .len = sizeof in[k], .addr = &from[k]};
        }
        ssize_t r = blz_udp_recv_many(b, rm, 40);
        CHECK_GE(r, 1);
        CHECK_LE(r, BLZ_UDP_MANY_MAX);
        for (ssize_t k = 0; k < r; k++, got++) {
            CHECK_EQ(rm[k].result, batch_len(got));
            CHECK(!rm[k].truncated);
            CHECK(memcmp(in[k], out[got], batch_len(got)) == 0);
            CHECK(blz_addr_equal(&from[k], &aa));
        }
    }
    CHECK_EQ(got, BATCH_DGRAMS);
    CHECK_EQ(blz_udp_try_recv_many(b, rm, 40), -EAGAIN);

    /* A short buffer truncates that datagram alone. */
    blz_udp_msg two[2] = {{.buf = "truncated", .len = 9, .addr = &ba},
                          {.buf = "whole", .len = 5, .addr = &ba}};
    CHECK_EQ(blz_udp_send_many(a, two, 2), 2);
    char small[4], big[16];
    blz_udp_msg rt[2] = {{.buf = small, .len = sizeof small}, {.buf = big, .len = sizeof big}};
    int n = 0;
    while (n < 2) {
        ssize_t r = blz_udp_recv_many(b, rt + n, (size_t) (2 - n));
        CHECK_GE(r, 1);
        n += (int) r;
    }
    CHECK_EQ(rt[0].result, 4);
    CHECK(rt[0].truncated);
    CHECK(memcmp(small, "trun", 4) == 0);
    CHECK_EQ(rt[1].result, 5);
    CHECK(!rt[1].truncated);
    CHECK(memcmp(big, "whole", 5) == 0);
    blz_udp_close(a);
    blz_udp_close(b);
    CHECK_EQ(blz__io_driver_waiters(net_driver()), 0);
    return NULL;
}

BLZ_TEST(udp_batch_send_and_recv)
{
    net_run(2, udp_batch_main, NULL);
}

/* The future tier waits for the first datagram; a future dropped while
 * waiting takes nothing; connected sockets need no address; bad arguments
 * are refused before any syscall. */
static void *
udp_batch_fut_main(void *arg)
{
    (void) arg;
    blz_udp_socket *a = NULL, *b = NULL;
    blz_addr aa, ba;
    udp_pair(&a, &b, &aa, &ba);
    char in[2][16];
    blz_udp_msg rm[2] = {{.buf = in[0], .len = 16}, {.buf = in[1], .len = 16}};
    blz_context cx = {blz_waker_noop()};

    /* Dropped while pending: the datagram sent afterwards is still there. */
    blz_io_future f;
    blz_udp_recv_many_fut(b, rm, 2, &f);
    CHECK_EQ(blz_future_poll(&f.base, &cx), BLZ_PENDING);
    blz_future_drop(&f.base);
    CHECK_EQ(blz_udp_send_to(a, "kept", 4, &ba), 4);
    ssize_t r;
    while ((r = blz_udp_try_recv_many(b, rm, 2)) == -EAGAIN) {
        blz_yield();
    }
    CHECK_EQ(r, 1);
    CHECK_EQ(rm[0].result, 4);
    CHECK(memcmp(in[0], "kept", 4) == 0);

    /* Pending, then two datagrams from a connected sender (no address). */
    blz_udp_recv_many_fut(b, rm, 2, &f);
    CHECK_EQ(blz_future_poll(&f.base, &cx), BLZ_PENDING);
    CHECK_OK(blz_udp_connect(a, &ba));
    blz_udp_msg sm[2] = {{.buf = "one", .len = 3}, {.buf = "two!", .len = 4}};
    blz_io_future g;
    blz_udp_send_many_fut(a, sm, 2, &g);
    CHECK_EQ(blz_await(&g.base), 2);
    r = blz_await(&f.base);
    CHECK_GE(r, 1);
    if (r == 1) {
        CHECK_EQ(blz_udp_recv_many(b, rm + 1, 1), 1);
    }
    CHECK_EQ(rm[0].result, 3);
    CHECK_EQ(rm[1].result, 4);
    CHECK(memcmp(in[0], "one", 3) == 0 && memcmp(in[1], "two!", 4) == 0);

    /* Errors. */
    blz_udp_msg bad = {.buf = NULL, .len = 1};
    blz_addr empty;
    memset(&empty, 0, sizeof empty);
    blz_udp_msg to_empty = {.buf = "x", .len = 1, .addr = &empty};
    blz_udp_msg no_addr = {.buf = "x", .len = 1};
    CHECK_EQ(blz_udp_recv_many(b, rm, 0), -EINVAL);
    CHECK_EQ(blz_udp_recv_many(b, NULL, 1), -EINVAL);
    CHECK_EQ(blz_udp_try_recv_many(b, &bad, 1), -EINVAL);
    CHECK_EQ(blz_udp_send_many(NULL, sm, 1), -EINVAL);
    CHECK_EQ(blz_udp_send_many(a, &bad, 1), -EINVAL);
    CHECK_EQ(blz_udp_send_many(a, &to_empty, 1), -EINVAL);
    CHECK_EQ(blz_udp_send_many(b, &no_addr, 1), -EDESTADDRREQ);
    blz_udp_send_many_fut(a, NULL, 1, &g);
    CHECK_EQ(blz_await(&g.base), -EINVAL);
    blz_udp_close(a);
    blz_udp_close(b);
    CHECK_EQ(blz__io_driver_waiters(net_driver()), 0);
    return NULL;
}

BLZ_TEST(udp_batch_future_tier_drop_and_errors)
{
    net_run(2, udp_batch_fut_main, NULL);
}

/* Segmentation offload: one call, one buffer, datagrams of `segment` bytes
 * at the receiver (the last one shorter), in order, in every tier. */
static void
recv_segments(blz_udp_socket *b, const char *data, size_t len, size_t segment)
{
    char in[2048];
    for (size_t off = 0; off < len; off += segment) {
        size_t want = len - off < segment ? len - off : segment;
        CHECK_EQ(blz_udp_recv(b, in, sizeof in), (ssize_t) want);
        CHECK(memcmp(in, data + off, want) == 0);
    }
}

static void *
udp_segments_main(void *arg)
{
    (void) arg;
    blz_udp_socket *a = NULL, *b = NULL;
    blz_addr aa, ba;
    udp_pair(&a, &b, &aa, &ba);
    static char data[60000];
    for (size_t i = 0; i < sizeof data; i++) {
        data[i] = (char) (i * 7 + i / 251);
    }
    blz_udp_segments g = {.buf = data, .len = 1050, .segment = 100, .addr = &ba};
    CHECK_EQ(blz_udp_send_segments(a, &g), 1050);
    recv_segments(b, data, 1050, 100);
    g = (blz_udp_segments){.buf = data + 7, .len = 4000, .segment = 1000, .addr = &ba};
    CHECK_EQ(blz_udp_try_send_segments(a, &g), 4000);
    recv_segments(b, data + 7, 4000, 1000);
    /* One datagram's worth: a plain send. */
    g = (blz_udp_segments){.buf = data, .len = 80, .segment = 100, .addr = &ba};
    CHECK_EQ(blz_udp_send_segments(a, &g), 80);
    recv_segments(b, data, 80, 100);

    /* Connected, through the future tier. */
    CHECK_OK(blz_udp_connect(a, &ba));
    g = (blz_udp_segments){.buf = data + 100, .len = 1200, .segment = 512};
    blz_io_future f;
    blz_udp_send_segments_fut(a, &g, &f);
    CHECK_EQ(blz_await(&f.base), 1200);
    recv_segments(b, data + 100, 1200, 512);

    /* Refused: arguments, and what the kernel will not split. */
    blz_addr empty;
    memset(&empty, 0, sizeof empty);
    blz_udp_segments bad[] = {
        {.buf = data, .len = 10, .segment = 0},
        {.buf = data, .len = 10, .segment = 65536},
        {.buf = NULL, .len = 10, .segment = 5},
        {.buf = data, .len = 10, .segment = 5, .addr = &empty},
        {.buf = data, .len = 1000, .segment = 1}, /* more segments than the kernel takes */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ(blz_udp_send_segments(a, &bad[i]), -EINVAL);
    }
    CHECK_EQ(blz_udp_send_segments(a, NULL), -EINVAL);
    CHECK_EQ(blz_udp_send_segments(NULL, &g), -EINVAL);
    g = (blz_udp_segments){.buf = data, .len = sizeof data + 0, .segment = 1400};
    CHECK_EQ(blz_udp_send_segments(a, &g), (ssize_t) sizeof data); /* 43 datagrams */
    recv_segments(b, data, sizeof data, 1400);
    CHECK_EQ(blz_udp_try_recv(b, data, 1), -EAGAIN);
    blz_udp_close(a);
    blz_udp_close(b);
    CHECK_EQ(blz__io_driver_waiters(net_driver()), 0);
    return NULL;
}

BLZ_TEST(udp_send_segments_splits_one_buffer_into_datagrams)
{
    net_run(2, udp_segments_main, NULL);
}

/* GRO: with it on, a segmented send may arrive as one buffer whose
 * datagram size recv_many reports; the bytes are the same either way, and
 * without GRO every datagram reports its own length. */
static void *
udp_gro_main(void *arg)
{
    (void) arg;
    blz_udp_socket *a = NULL, *b = NULL;
    blz_addr aa, ba;
    udp_pair(&a, &b, &aa, &ba);
    static char data[1050], in[4][2048];
    for (size_t i = 0; i < sizeof data; i++) {
        data[i] = (char) (i * 13 + 1);
    }
    blz_udp_segments g = {.buf = data, .len = sizeof data, .segment = 100, .addr = &ba};
    for (int gro = 0; gro <= 1; gro++) {
        CHECK_OK(blz_udp_set_gro(b, gro));
        CHECK_EQ(blz_udp_send_segments(a, &g), (ssize_t) sizeof data);
        size_t got = 0;
        bool coalesced = false;
        while (got < sizeof data) {
            blz_udp_msg rm[4];
            for (int k = 0; k < 4; k++) {
                rm[k] = (blz_udp_msg){.buf = in[k], .len = sizeof in[k]};
            }
            ssize_t n = blz_udp_recv_many(b, rm, 4);
            CHECK_GE(n, 1);
            for (ssize_t k = 0; k < n; k++) {
                CHECK(!rm[k].truncated);
                CHECK(memcmp(in[k], data + got, rm[k].result) == 0);
                if (rm[k].result > rm[k].segment) {
                    coalesced = true;
                    CHECK_EQ(rm[k].segment, 100); /* the sender's size */
                } else {
                    CHECK_EQ(rm[k].segment, rm[k].result);
                }
                got += rm[k].result;
            }
        }
        CHECK_EQ(got, sizeof data);
        /* Loopback hands a segmented send to a GRO socket unsplit. */
        CHECK_EQ(coalesced, (bool) gro);
    }
    CHECK_EQ(blz_udp_set_gro(NULL, true), -EINVAL);
    blz_udp_close(a);
    blz_udp_close(b);
    return NULL;
}

BLZ_TEST(udp_gro_reports_the_datagram_size_of_a_coalesced_receive)
{
    net_run(2, udp_gro_main, NULL);
}
