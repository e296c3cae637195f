/*
 * The native resolver against real name servers on loopback: a small DNS
 * server in this file (UDP and TCP on one port, its own query parser and
 * answer builder, independent of src/net/dns_wire.c) answers per name, and
 * the lookups run through every tier: addresses of both types, CNAME chains
 * in either order, NXDOMAIN and no-data, a truncated answer fetched again
 * over TCP, a spoofed reply with the wrong id ignored, SERVFAIL and a silent
 * server passed over for the next, the search list, the hosts file, literal
 * addresses, bad input, and a lookup dropped while it waits.
 */
#include "io/registry.h"
#include "net_common.h"
#include "os/unix/sys.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- the test server ------------------------------------------------------ */

typedef struct srv {
    blz_udp_socket *udp;
    blz_tcp_listener *tcp;
    blz_addr addr; /* where both listen */
    /* Switched by the test while the server's fibers run on other workers
     * (a late query of the previous lookup may still be being served). */
    _Atomic bool servfail; /* answer every query with SERVFAIL */
    _Atomic bool silent;   /* answer nothing */
    _Atomic int queries;   /* UDP queries seen */
    _Atomic int tcp_queries;
    blz_join *udp_task, *tcp_task;
} srv;

typedef struct msg {
    uint8_t b[4096];
    size_t n;
} msg;

static void
put8(msg *m, unsigned v)
{
    CHECK_LT(m->n, sizeof m->b);
    m->b[m->n++] = (uint8_t) v;
}

static void
put16(msg *m, unsigned v)
{
    put8(m, v >> 8);
    put8(m, v & 0xff);
}

static void
put_name(msg *m, const char *name)
{
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t len = dot ? (size_t) (dot - name) : strlen(name);
        put8(m, (unsigned) len);
        for (size_t i = 0; i < len; i++) {
            put8(m, (unsigned char) name[i]);
        }
        name += len + (dot ? 1 : 0);
    }
    put8(m, 0);
}

/* One record: owner, type, class IN, TTL 60, and rdata. */
static void
put_rr(msg *m, const char *owner, unsigned type, const void *rdata, size_t rdlen)
{
    put_name(m, owner);
    put16(m, type);
    put16(m, 1);
    put16(m, 0);
    put16(m, 60);
    put16(m, (unsigned) rdlen);
    for (size_t i = 0; i < rdlen; i++) {
        put8(m, ((const uint8_t *) rdata)[i]);
    }
}

static void
put_a(msg *m, const char *owner, uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    uint8_t ip[4] = {a, b, c, d};
    put_rr(m, owner, 1, ip, 4);
}

static void
put_cname(msg *m, const char *owner, const char *target)
{
    msg t = {.n = 0};
    put_name(&t, target);
    put_rr(m, owner, 5, t.b, t.n);
}

/* The query's id, name (dotted, lower-cased) and type; false if unreadable. */
static bool
read_query(const uint8_t *q, size_t n, unsigned *id, char *name, size_t cap, unsigned *type,
           size_t *qend)
{
    if (n < 17) {
        return false;
    }
    *id = (unsigned) q[0] << 8 | q[1];
    size_t p = 12, o = 0;
    while (p < n && q[p] != 0) {
        size_t len = q[p++];
        if (p + len > n || o + len + 1 >= cap) {
            return false;
        }
        if (o) {
            name[o++] = '.';
        }
        for (size_t i = 0; i < len; i++) {
            name[o + i] = (char) tolower(q[p + i]); /* names compare case-insensitively */
        }
        o += len;
        p += len;
    }
    name[o] = '\0';
    if (p + 5 > n) {
        return false;
    }
    *type = (unsigned) q[p + 1] << 8 | q[p + 2];
    *qend = p + 5;
    return true;
}

/* Starts an answer to query q: header (QR, RD, RA, rcode, TC) and the question. */
static void
begin(msg *m, const uint8_t *q, size_t qend, unsigned id, unsigned rcode, bool tc, unsigned ancount)
{
    m->n = 0;
    put16(m, id);
    put16(m, 0x8180u | (tc ? 0x0200u : 0) | rcode);
    put16(m, 1);
    put16(m, ancount);
    put16(m, 0);
    put16(m, 0);
    for (size_t i = 12; i < qend; i++) {
        put8(m, q[i]);
    }
}

/* The answer the server gives to (name, type); over_tcp for big.test's full answer. */
static void
answer(const srv *s, const uint8_t *q, size_t qend, unsigned id, const char *name, unsigned type,
       bool over_tcp, msg *m)
{
    bool a = type == 1, aaaa = type == 28;
    if (s->servfail || strstr(name, ".servfail.")) {
        begin(m, q, qend, id, 2, false, 0);
    } else if (!strcmp(name, "a.test") || !strcmp(name, "short.test")) {
        if (a) {
            begin(m, q, qend, id, 0, false, 2);
            put_a(m, name, 10, 0, 0, 1);
            put_a(m, name, 10, 0, 0, 2);
        } else if (aaaa) {
            uint8_t ip6[16] = {0xfd, 0, [15] = 1};
            begin(m, q, qend, id, 0, false, 1);
            put_rr(m, name, 28, ip6, 16);
        }
    } else if (!strcmp(name, "v4.test")) {
        begin(m, q, qend, id, 0, false, a ? 1 : 0);
        if (a) {
            put_a(m, name, 10, 0, 0, 3);
        }
    } else if (!strcmp(name, "cname.test")) {
        begin(m, q, qend, id, 0, false, a ? 2 : 1);
        put_cname(m, name, "target.test");
        if (a) {
            put_a(m, "target.test", 10, 0, 0, 4);
        }
    } else if (!strcmp(name, "cname-after.test")) {
        begin(m, q, qend, id, 0, false, a ? 3 : 1);
        if (a) {
            put_a(m, "other.test", 6, 6, 6, 6); /* owned by nobody in the chain */
            put_a(m, "t2.test", 10, 0, 0, 8);
        }
        put_cname(m, name, "t2.test");
    } else if (!strcmp(name, "big.test")) {
        if (a && over_tcp) {
            begin(m, q, qend, id, 0, false, 20);
            for (int i = 1; i <= 20; i++) {
                put_a(m, name, 10, 1, 0, (uint8_t) i);
            }
        } else {
            begin(m, q, qend, id, 0, a, 0); /* A over UDP: truncated, nothing in it */
        }
    } else {
        begin(m, q, qend, id, 3, false, 0); /* NXDOMAIN */
    }
}

static void *
udp_server(void *arg)
{
    srv *s = arg;
    uint8_t q[512];
    for (;;) {
        blz_addr from;
        ssize_t n = blz_udp_recv_from(s->udp, q, sizeof q, &from);
        if (n < 0) {
            return NULL;
        }
        if (n == 4 && !memcmp(q, "STOP", 4)) {
            return NULL;
        }
        unsigned id, type;
        char name[256];
        size_t qend;
        if (!read_query(q, (size_t) n, &id, name, sizeof name, &type, &qend)) {
            continue;
        }
        atomic_fetch_add(&s->queries, 1);
        if (s->silent || strstr(name, ".silent.")) {
            continue;
        }
        msg m;
        if (!strcmp(name, "spoof.test") && type == 1) {
            /* First a forgery with the wrong id, then the real answer. */
            begin(&m, q, qend, id ^ 0x5a5a, 0, false, 1);
            put_a(&m, name, 6, 6, 6, 6);
            CHECK_OK(blz_udp_send_to(s->udp, m.b, m.n, &from));
            begin(&m, q, qend, id, 0, false, 1);
            put_a(&m, name, 10, 0, 0, 5);
        } else {
            answer(s, q, qend, id, name, type, false, &m);
        }
        CHECK_EQ(blz_udp_send_to(s->udp, m.b, m.n, &from), (ssize_t) m.n);
    }
}

/* Serves queries over TCP until the listener is closed. */
static void *
tcp_server(void *arg)
{
    srv *s = arg;
    for (;;) {
        blz_tcp_stream *c;
        if (blz_tcp_accept(s->tcp, &c, NULL) < 0) {
            return NULL;
        }
        uint8_t q[514];
        size_t got = 0;
        while (got < 2) {
            ssize_t n = blz_tcp_read(c, q + got, 2 - got);
            CHECK_GT(n, 0);
            got += (size_t) n;
        }
        size_t len = (size_t) q[0] << 8 | q[1];
        CHECK_LE(len, sizeof q - 2);
        while (got < len + 2) {
            ssize_t n = blz_tcp_read(c, q + got, len + 2 - got);
            CHECK_GT(n, 0);
            got += (size_t) n;
        }
        unsigned id, type;
        char name[256];
        size_t qend;
        CHECK(read_query(q + 2, len, &id, name, sizeof name, &type, &qend));
        atomic_fetch_add(&s->tcp_queries, 1);
        msg m;
        answer(s, q + 2, qend, id, name, type, true, &m);
        uint8_t hdr[2] = {(uint8_t) (m.n >> 8), (uint8_t) m.n};
        CHECK_OK(blz_tcp_write_all(c, hdr, 2));
        CHECK_OK(blz_tcp_write_all(c, m.b, m.n));
        blz_tcp_close(c);
    }
}

/* A server on 127.0.0.1: UDP and TCP on one kernel-picked port. */
static void
srv_start(srv *s)
{
    memset(s, 0, sizeof *s);
    for (int tries = 0;; tries++) {
        CHECK_OK(blz_udp_bind("127.0.0.1:0", &s->udp));
        CHECK_OK(blz_udp_local_addr(s->udp, &s->addr));
        if (blz_tcp_listen_addr(&s->addr, 16, &s->tcp) == 0) {
            break;
        }
        blz_udp_close(s->udp); /* the TCP port was taken: another pair */
        CHECK_LT(tries, 20);
    }
    CHECK_OK(blz_spawn(udp_server, s, &s->udp_task));
    CHECK_OK(blz_spawn(tcp_server, s, &s->tcp_task));
}

static void
srv_stop(srv *s)
{
    blz_udp_socket *u;
    CHECK_OK(blz_udp_bind("127.0.0.1:0", &u));
    CHECK_EQ(blz_udp_send_to(u, "STOP", 4, &s->addr), 4);
    blz_udp_close(u);
    CHECK_OK(blz_join_wait(s->udp_task, NULL));
    blz_join_abort(s->tcp_task);
    int rc = blz_join_wait(s->tcp_task, NULL);
    CHECK(rc == 0 || rc == -ECANCELED);
    blz_tcp_listener_close(s->tcp);
    blz_udp_close(s->udp);
}

/* Options naming only the given servers, no hosts file, and short tries. */
static blz_dns_options
opts_for(const blz_addr *servers, size_t n)
{
    return (blz_dns_options){
        .hosts = "",
        .resolv_conf = "/nonexistent/resolv.conf",
        .servers = servers,
        .nservers = n,
        .timeout_ms = 300,
        .attempts = 1,
    };
}

static bool
has_ip(const blz_addr *a, int n, const char *ip)
{
    for (int i = 0; i < n; i++) {
        char buf[BLZ_ADDR_STRLEN];
        CHECK_GT(blz_addr_format(&a[i], buf, sizeof buf), 0);
        char want[BLZ_ADDR_STRLEN];
        snprintf(want, sizeof want, strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip,
                 blz_addr_port(&a[i]));
        if (!strcmp(buf, want)) {
            return true;
        }
    }
    return false;
}

/* ---- lookups -------------------------------------------------------------- */

static void *
dns_answers_main(void *arg)
{
    (void) arg;
    srv s;
    srv_start(&s);
    blz_dns_options o = opts_for(&s.addr, 1);
    /* On the heap: this also runs on the smallest fiber stacks. */
    blz_addr *out = calloc(64, sizeof *out);
    CHECK(out != NULL);

    int n = blz_dns_resolve("a.test", 80, &o, out, 64);
    CHECK_EQ(n, 3);
    CHECK(has_ip(out, n, "10.0.0.1") && has_ip(out, n, "10.0.0.2") && has_ip(out, n, "fd00::1"));
    for (int i = 0; i < n; i++) {
        CHECK_EQ(blz_addr_port(&out[i]), 80);
    }
    CHECK_EQ(blz_dns_resolve("a.test", 80, &o, out, 1), 1); /* max respected */

    n = blz_dns_resolve("v4.test", 1, &o, out, 64);
    CHECK_EQ(n, 1);
    CHECK(has_ip(out, n, "10.0.0.3"));

    n = blz_dns_resolve("cname.test", 1, &o, out, 64);
    CHECK_EQ(n, 1);
    CHECK(has_ip(out, n, "10.0.0.4"));

    n = blz_dns_resolve("CNAME-After.Test.", 1, &o, out, 64); /* case, trailing dot */
    CHECK_EQ(n, 1);
    CHECK(has_ip(out, n, "10.0.0.8"));

    CHECK_EQ(blz_dns_resolve("nx.test", 1, &o, out, 64), -ENOENT);

    int before = atomic_load(&s.tcp_queries);
    n = blz_dns_resolve("big.test", 1, &o, out, 64);
    CHECK_EQ(n, 20);
    CHECK(has_ip(out, n, "10.1.0.20"));
    CHECK_EQ(atomic_load(&s.tcp_queries), before + 1);

    n = blz_dns_resolve("spoof.test", 1, &o, out, 64);
    CHECK_EQ(n, 1);
    CHECK(has_ip(out, n, "10.0.0.5"));
    CHECK(!has_ip(out, n, "6.6.6.6"));

    /* The future tier: pending until the server answers. */
    blz_dns_future f;
    blz_dns_resolve_fut("v4.test", 7, &o, out, 64, &f);
    CHECK_EQ(blz_await(&f.base), 1);
    CHECK_EQ(blz_addr_port(&out[0]), 7);

    free(out);
    srv_stop(&s);
    return NULL;
}

BLZ_TEST(dns_answers)
{
    net_run(2, dns_answers_main, NULL);
}

/* The same on the smallest fiber stacks a runtime allows: a lookup's
 * buffers must not live on its task's stack. */
BLZ_TEST(dns_answers_on_small_stacks)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 2;
    cfg.fiber_stack_size = 16 * 1024;
    blz_runtime *rt = backend_runtime_cfg(&cfg);
    CHECK_OK(blz_runtime_block_on(rt, dns_answers_main, NULL, NULL));
    blz_runtime_free(rt);
}

static void *
dns_failover_main(void *arg)
{
    (void) arg;
    srv bad, good;
    srv_start(&bad);
    srv_start(&good);
    blz_addr out[8];

    /* SERVFAIL from the first server: the second answers. */
    bad.servfail = true;
    blz_addr both[2] = {bad.addr, good.addr};
    blz_dns_options o = opts_for(both, 2);
    CHECK_EQ(blz_dns_resolve("v4.test", 1, &o, out, 8), 1);
    CHECK(has_ip(out, 1, "10.0.0.3"));
    /* Only the failing one: a temporary failure, not "no such name". */
    blz_dns_options only_bad = opts_for(&bad.addr, 1);
    CHECK_EQ(blz_dns_resolve("v4.test", 1, &only_bad, out, 8), -EAGAIN);

    /* A silent first server: its try times out, the second answers. */
    bad.servfail = false;
    bad.silent = true;
    int seen = atomic_load(&bad.queries);
    CHECK_EQ(blz_dns_resolve("a.test", 1, &o, out, 8), 3);
    CHECK_GT(atomic_load(&bad.queries), seen);
    /* Nobody answers, two rounds: -ETIMEDOUT after asking twice. */
    only_bad.attempts = 2;
    seen = atomic_load(&bad.queries);
    CHECK_EQ(blz_dns_resolve("a.test", 1, &only_bad, out, 8), -ETIMEDOUT);
    CHECK_EQ(atomic_load(&bad.queries), seen + 4); /* A and AAAA, twice */

    srv_stop(&bad);
    srv_stop(&good);
    return NULL;
}

BLZ_TEST(dns_failover)
{
    net_run(2, dns_failover_main, NULL);
}

static void
write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    CHECK(fp != NULL);
    CHECK_EQ(fputs(text, fp) >= 0, 1);
    CHECK_EQ(fclose(fp), 0);
}

/* A server that cannot be asked at all is passed over like one that does
 * not answer: a link-local IPv6 address without a scope, which resolv.conf
 * accepts ("nameserver fe80::1") and connect(2) refuses with EINVAL. */
static void *
dns_unaskable_server_main(void *arg)
{
    (void) arg;
    srv s;
    srv_start(&s);
    blz_addr two[2];
    CHECK_OK(blz_addr_parse("[fe80::1]:53", &two[0]));
    two[1] = s.addr;
    blz_dns_options o = opts_for(two, 2);
    blz_addr out[4];
    CHECK_EQ(blz_dns_resolve("v4.test", 1, &o, out, 4), 1);
    CHECK(has_ip(out, 1, "10.0.0.3"));
    /* A bad name is still refused before any server is asked. */
    int seen = atomic_load(&s.queries);
    CHECK_EQ(blz_dns_resolve("a..b", 1, &o, out, 4), -EINVAL);
    CHECK_EQ(atomic_load(&s.queries), seen);
    srv_stop(&s);
    return NULL;
}

BLZ_TEST(dns_unaskable_server_is_passed_over)
{
    net_run(2, dns_unaskable_server_main, NULL);
}

/* A lookup that fails after some server answered (with SERVFAIL) is a
 * temporary failure, -EAGAIN, whatever the servers or names asked after it
 * did: -ETIMEDOUT says that no server answered (net.h). */
static void *
dns_some_server_answered_main(void *arg)
{
    (void) arg;
    srv bad, silent;
    srv_start(&bad);
    srv_start(&silent);
    bad.servfail = true;
    silent.silent = true;
    blz_addr out[8];

    /* The first server answers SERVFAIL, the second (the last) is silent. */
    blz_addr both[2] = {bad.addr, silent.addr};
    blz_dns_options o = opts_for(both, 2);
    CHECK_EQ(blz_dns_resolve("v4.test", 1, &o, out, 8), -EAGAIN);
    /* Silent first, SERVFAIL last: -EAGAIN as well. */
    blz_addr two[2] = {silent.addr, bad.addr};
    o = opts_for(two, 2);
    CHECK_EQ(blz_dns_resolve("v4.test", 1, &o, out, 8), -EAGAIN);

    /* Across the search list: "x.silent.test" times out, "x.servfail.test"
     * gets SERVFAIL, "x" is NXDOMAIN. */
    bad.servfail = false;
    char conf[64];
    snprintf(conf, sizeof conf, "/tmp/blz-dns-conf-answered-%ld", (long) getpid());
    write_file(conf, "search silent.test servfail.test\noptions ndots:1\n");
    o = opts_for(&bad.addr, 1);
    o.resolv_conf = conf;
    CHECK_EQ(blz_dns_resolve("x", 1, &o, out, 8), -EAGAIN);
    unlink(conf);

    srv_stop(&bad);
    srv_stop(&silent);
    return NULL;
}

BLZ_TEST(dns_failure_after_an_answer_is_eagain)
{
    net_run(2, dns_some_server_answered_main, NULL);
}

static void *
dns_files_main(void *arg)
{
    (void) arg;
    srv s;
    srv_start(&s);
    char conf[64], hosts[64];
    snprintf(conf, sizeof conf, "/tmp/blz-dns-conf-%ld", (long) getpid());
    snprintf(hosts, sizeof hosts, "/tmp/blz-dns-hosts-%ld", (long) getpid());
    write_file(conf, "# test\nsearch nowhere.invalid test\noptions ndots:1 timeout:1\n");
    write_file(hosts, "10.9.8.7 myhost.example alias1 # comment\n::1 myhost.example\n");
    blz_addr out[8];

    /* The search list: "short" has fewer dots than ndots, so the suffixes
     * come first; "short.nowhere.invalid" is NXDOMAIN, "short.test" answers. */
    blz_dns_options o = opts_for(&s.addr, 1);
    o.resolv_conf = conf;
    CHECK_EQ(blz_dns_resolve("short", 1, &o, out, 8), 3);
    CHECK(has_ip(out, 3, "10.0.0.1"));
    /* An absolute name is asked as it is, and only so. */
    CHECK_EQ(blz_dns_resolve("short.", 1, &o, out, 8), -ENOENT);

    /* The hosts file answers before any server is asked. */
    o.hosts = hosts;
    int seen = atomic_load(&s.queries);
    int n = blz_dns_resolve("ALIAS1", 9, &o, out, 8);
    CHECK_EQ(n, 1);
    CHECK(has_ip(out, n, "10.9.8.7"));
    n = blz_dns_resolve("myhost.example", 9, &o, out, 8);
    CHECK_EQ(n, 2);
    CHECK(has_ip(out, n, "::1"));
    CHECK_EQ(atomic_load(&s.queries), seen);

    /* The IPv6-first check: loopback has a route, a Unix address is not IP. */
    CHECK(blz__sys_routable(&s.addr));
    blz_addr ux;
    CHECK_OK(blz_addr_from_unix("/tmp/x", &ux));
    CHECK(!blz__sys_routable(&ux));

    /* Literal addresses need nobody. */
    CHECK_EQ(blz_dns_resolve("192.0.2.1", 5, &o, out, 8), 1);
    CHECK(has_ip(out, 1, "192.0.2.1"));
    CHECK_EQ(blz_dns_resolve("::1", 5, &o, out, 8), 1);

    /* Bad input. */
    CHECK_EQ(blz_dns_resolve(NULL, 1, &o, out, 8), -EINVAL);
    CHECK_EQ(blz_dns_resolve("", 1, &o, out, 8), -EINVAL);
    CHECK_EQ(blz_dns_resolve("a..b", 1, &o, out, 8), -EINVAL);
    CHECK_EQ(blz_dns_resolve(".", 1, &o, out, 8), -EINVAL);
    CHECK_EQ(blz_dns_resolve("a.test", 1, &o, NULL, 8), -EINVAL);
    CHECK_EQ(blz_dns_resolve("a.test", 1, &o, out, 0), -EINVAL);
    blz_dns_options no_list = o;
    no_list.servers = NULL;
    CHECK_EQ(blz_dns_resolve("a.test", 1, &no_list, out, 8), -EINVAL);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK_EQ(blz_dns_resolve(longname, 1, &o, out, 8), -EINVAL);

    /* A full search list (six domains) is walked to its end also when the
     * name is asked as it is first (ndots:0): "a" and its first five
     * suffixes are NXDOMAIN, "a.test", the sixth, answers. */
    write_file(conf, "search s1.invalid s2.invalid s3.invalid s4.invalid s5.invalid test\n"
                     "options ndots:0 timeout:1\n");
    o.hosts = "";
    seen = atomic_load(&s.queries);
    n = blz_dns_resolve("a", 1, &o, out, 8);
    CHECK_EQ(n, 3);
    CHECK(has_ip(out, n, "10.0.0.1"));
    CHECK_EQ(atomic_load(&s.queries), seen + 2 * 7); /* A and AAAA for each of seven names */

    /* "options rotate": successive lookups start at successive servers, so
     * both see queries (without it the first would answer them all). */
    srv s2;
    srv_start(&s2);
    write_file(conf, "options rotate\n");
    blz_addr two[2] = {s.addr, s2.addr};
    blz_dns_options r = opts_for(two, 2);
    r.resolv_conf = conf;
    int q1 = atomic_load(&s.queries), q2 = atomic_load(&s2.queries);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(blz_dns_resolve("v4.test", 1, &r, out, 8), 1);
    }
    CHECK_GT(atomic_load(&s.queries), q1);
    CHECK_GT(atomic_load(&s2.queries), q2);
    srv_stop(&s2);

    unlink(conf);
    unlink(hosts);
    srv_stop(&s);
    return NULL;
}

BLZ_TEST(dns_search_hosts_literals_and_bad_input)
{
    net_run(2, dns_files_main, NULL);
}

static void *
dns_drop_main(void *arg)
{
    (void) arg;
    srv s;
    srv_start(&s);
    s.silent = true;
    blz_dns_options o = opts_for(&s.addr, 1);
    o.timeout_ms = 60000; /* would wait a minute: only the drop ends it */
    blz_addr out[4];
    blz_context cx = {blz_waker_noop()};
    for (int round = 0; round < 20; round++) {
        blz_dns_future f;
        blz_dns_resolve_fut("a.test", 1, &o, out, 4, &f);
        CHECK_EQ(blz_future_poll(&f.base, &cx), BLZ_PENDING);
        if (round % 2) {
            /* Let the lookup reach the server first; the other rounds drop it
             * before its task has run at all. */
            int seen = atomic_load(&s.queries);
            while (atomic_load(&s.queries) == seen) {
                blz_yield();
            }
        }
        blz_future_drop(&f.base);
    }
    /* Every dropped lookup's task lets go of its job: none is left once
     * they have all unwound. */
    WAIT_UNTIL(blz__io_tracked_count(net_driver()) == 0, blz_yield());
    srv_stop(&s);
    return NULL;
}

/* Dropped lookups stop and free everything: the runtime's teardown and the
 * sanitizer builds' leak check would see a task or a socket left behind. */
BLZ_TEST(dns_dropped_lookups_stop)
{
    net_run(2, dns_drop_main, NULL);
}
