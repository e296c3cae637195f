/*
 * The DNS wire format (src/net/dns_wire.c): exact query bytes, name
 * validation, and responses built by hand: A and AAAA answers, compression,
 * CNAME chains in any order, questions that are not ours, rcode and TC, and
 * malformed messages (past the end, pointer loops, bad lengths). Ends with
 * the deterministic mutations of tests/fuzz/dns_fuzz.c.
 */
#include "net/dns_wire.h"

#include "harness.h"

#include <string.h>

#define BLZ_DNS_FUZZ_NO_MAIN
#include "fuzz/dns_fuzz.c"

/* ---------------------------------------------------------------------------------------
 * A message builder for the cases the seeds do not cover.
 * ------------------------------------------------------------------------------------- */

typedef struct msgbuf {
    uint8_t b[4096];
    size_t n;
} msgbuf;

static void
mb_bytes(msgbuf *m, const void *p, size_t n)
{
    CHECK_LE(m->n + n, sizeof m->b);
    memcpy(m->b + m->n, p, n);
    m->n += n;
}

static void
mb_u8(msgbuf *m, unsigned v)
{
    uint8_t c = (uint8_t) v;
    mb_bytes(m, &c, 1);
}

static void
mb_u16(msgbuf *m, unsigned v)
{
    mb_u8(m, v >> 8);
    mb_u8(m, v & 0xff);
}

static void
mb_header(msgbuf *m, unsigned id, unsigned flags, unsigned qd, unsigned an)
{
    m->n = 0;
    mb_u16(m, id);
    mb_u16(m, flags);
    mb_u16(m, qd);
    mb_u16(m, an);
    mb_u16(m, 0);
    mb_u16(m, 0);
}

/* The labels of a dotted name, without the final zero (follow with mb_u8(m, 0) or
 * mb_ptr). Returns the offset where the name starts. */
static size_t
mb_labels(msgbuf *m, const char *dotted)
{
    size_t at = m->n;
    while (*dotted) {
        size_t l = strcspn(dotted, ".");
        mb_u8(m, (unsigned) l);
        mb_bytes(m, dotted, l);
        dotted += l;
        if (*dotted == '.') {
            dotted++;
        }
    }
    return at;
}

static size_t
mb_name(msgbuf *m, const char *dotted)
{
    size_t at = mb_labels(m, dotted);
    mb_u8(m, 0);
    return at;
}

static void
mb_ptr(msgbuf *m, size_t off)
{
    mb_u16(m, 0xc000u | (unsigned) off);
}

/* Type, class, TTL and RDLENGTH: what follows a record's owner name. */
static void
mb_rr(msgbuf *m, unsigned type, unsigned rclass, unsigned rdlen)
{
    mb_u16(m, type);
    mb_u16(m, rclass);
    mb_u16(m, 0);
    mb_u16(m, 300);
    mb_u16(m, rdlen);
}

/* A response header and question for (0x1234, name, qtype); returns the question name's
 * offset (12). */
static size_t
mb_start(msgbuf *m, unsigned flags, unsigned an, const char *name, unsigned qtype)
{
    mb_header(m, 0x1234, flags, 1, an);
    size_t at = mb_name(m, name);
    mb_u16(m, qtype);
    mb_u16(m, 1);
    return at;
}

static void
mb_a(msgbuf *m, uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    mb_rr(m, BLZ__DNS_TYPE_A, 1, 4);
    const uint8_t ip[4] = {a, b, c, d};
    mb_bytes(m, ip, 4);
}

static int
parse(const void *msg, size_t len, const char *name, uint16_t qtype, blz__dns_answer *ans)
{
    return blz__dns_response_parse(msg, len, 0x1234, name, qtype, ans);
}

static int
parse_mb(const msgbuf *m, const char *name, uint16_t qtype, blz__dns_answer *ans)
{
    return parse(m->b, m->n, name, qtype, ans);
}

static int
parse_seed(const char *seed, size_t len, const char *name, uint16_t qtype, blz__dns_answer *ans)
{
    return parse(seed, len, name, qtype, ans);
}

/* A seed array as the (bytes, length) pair of arguments. */
#define SEED(s) s, sizeof s - 1

/* Checks that `a` is the address `ip` with port 0. */
#define CHECK_ADDR(a, ip)                               \
 do {                                                   \
  blz_addr want_;                                       \
  CHECK_OK(blz_addr_from_ip((ip), 0, &want_));          \
  char got_[BLZ_ADDR_STRLEN];                           \
  CHECK_OK(blz_addr_format((a), got_, sizeof got_));    \
  char exp_[BLZ_ADDR_STRLEN];                           \
  CHECK_OK(blz_addr_format(&want_, exp_, sizeof exp_)); \
  CHECK_STR_EQ(got_, exp_);                             \
  CHECK(blz_addr_equal((a), &want_));                   \
 } while (0)

/* ---------------------------------------------------------------------------------------
 * Queries
 * ------------------------------------------------------------------------------------- */

BLZ_TEST(query_exact_bytes)
{
    static const uint8_t want[] = {
        0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* header */
        7,    'e',  'x',  'a',  'm',  'p',  'l',  'e',  3,    'c',  'o',  'm',
        0,    0x00, 0x01, 0x00, 0x01, /* A, IN */
    };
    uint8_t buf[BLZ__DNS_UDP_MAX];
    memset(buf, 0xee, sizeof buf);
    int n = CHECK_OK(blz__dns_query_build(buf, sizeof buf, 0x1234, "example.com", BLZ__DNS_TYPE_A));
    CHECK_EQ(n, sizeof want);
    CHECK(memcmp(buf, want, sizeof want) == 0);
    CHECK_EQ(buf[n], 0xee); /* nothing written past the query */

    /* One trailing dot is the same name. */
    uint8_t buf2[BLZ__DNS_UDP_MAX];
    CHECK_EQ(blz__dns_query_build(buf2, sizeof buf2, 0x1234, "example.com.", BLZ__DNS_TYPE_A), n);
    CHECK(memcmp(buf2, want, sizeof want) == 0);

    /* AAAA, another id, and the case kept as given. */
    n = CHECK_OK(blz__dns_query_build(buf, sizeof buf, 0xfe01, "A.b", BLZ__DNS_TYPE_AAAA));
    static const uint8_t want6[] = {0xfe, 0x01, 0x01, 0x00, 0,   1, 0, 0,  0,    0, 0,
                                    0,    1,    'A',  1,    'b', 0, 0, 28, 0x00, 1};
    CHECK_EQ(n, sizeof want6);
    CHECK(memcmp(buf, want6, sizeof want6) == 0);
}

BLZ_TEST(query_bad_names)
{
    uint8_t buf[BLZ__DNS_UDP_MAX];
    const char *bad[] = {"", ".", "..", "a..b", ".a", "a.b..", "a.b.."};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ(blz__dns_query_build(buf, sizeof buf, 1, bad[i], BLZ__DNS_TYPE_A), -EINVAL);
    }
    CHECK_EQ(blz__dns_query_build(buf, sizeof buf, 1, NULL, BLZ__DNS_TYPE_A), -EINVAL);
    CHECK_EQ(blz__dns_query_build(NULL, sizeof buf, 1, "a", BLZ__DNS_TYPE_A), -EINVAL);

    /* Labels: 63 bytes is the most. */
    char name[400];
    memset(name, 'x', 63);
    strcpy(name + 63, ".com");
    CHECK_EQ(blz__dns_query_build(buf, sizeof buf, 1, name, BLZ__DNS_TYPE_A), 12 + 1 + 63 + 5 + 4);
    memset(name, 'x', 64);
    strcpy(name + 64, ".com");
    CHECK_EQ(blz__dns_query_build(buf, sizeof buf, 1, name, BLZ__DNS_TYPE_A), -EINVAL);

    /* Names: 253 bytes is the most (255 on the wire), a trailing dot not counted. Four
     * labels of 63 with dots are 255; cut to 253 and 254. */
    for (size_t i = 0; i < 4; i++) {
        memset(name + i * 64, 'y', 63);
        name[i * 64 + 63] = '.';
    }
    name[253] = '\0';
    CHECK_EQ(name[252], 'y');
    CHECK_EQ(blz__dns_query_build(buf, sizeof buf, 1, name, BLZ__DNS_TYPE_A), 12 + 255 + 4);
    name[253] = '.';
    name[254] = '\0';
    CHECK_EQ(blz__dns_query_build(buf, sizeof buf, 1, name, BLZ__DNS_TYPE_A), 12 + 255 + 4);
    name[253] = 'y';
    CHECK_EQ(blz__dns_query_build(buf, sizeof buf, 1, name, BLZ__DNS_TYPE_A), -EINVAL);
    name[254] = '.';
    name[255] = '\0';
    CHECK_EQ(blz__dns_query_build(buf, sizeof buf, 1, name, BLZ__DNS_TYPE_A), -EINVAL);
    /* A very long string is read only as far as needed. */
    memset(name, 'z', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    CHECK_EQ(blz__dns_query_build(buf, sizeof buf, 1, name, BLZ__DNS_TYPE_A), -EINVAL);
}

BLZ_TEST(query_nospc)
{
    uint8_t buf[64];
    int n = CHECK_OK(blz__dns_query_build(buf, sizeof buf, 7, "example.com", BLZ__DNS_TYPE_A));
    CHECK_EQ(blz__dns_query_build(buf, (size_t) n, 7, "example.com", BLZ__DNS_TYPE_A), n);
    CHECK_EQ(blz__dns_query_build(buf, (size_t) n - 1, 7, "example.com", BLZ__DNS_TYPE_A), -ENOSPC);
    CHECK_EQ(blz__dns_query_build(buf, 0, 7, "example.com", BLZ__DNS_TYPE_A), -ENOSPC);
    /* A bad name is -EINVAL whatever the room. */
    CHECK_EQ(blz__dns_query_build(buf, 0, 7, "a..b", BLZ__DNS_TYPE_A), -EINVAL);
}

/* ---------------------------------------------------------------------------------------
 * Answers
 * ------------------------------------------------------------------------------------- */

BLZ_TEST(two_a_records)
{
    blz__dns_answer ans;
    CHECK_EQ(parse_seed(SEED(dns_seed_a2), "example.com", BLZ__DNS_TYPE_A, &ans), 0);
    CHECK_EQ(ans.rcode, BLZ__DNS_RCODE_NOERROR);
    CHECK(!ans.truncated);
    CHECK_EQ(ans.count, 2);
    CHECK_ADDR(&ans.addrs[0], "93.184.216.34");
    CHECK_ADDR(&ans.addrs[1], "10.0.0.1");
    CHECK_EQ(blz_addr_port(&ans.addrs[0]), 0);
}

BLZ_TEST(aaaa_record)
{
    blz__dns_answer ans;
    CHECK_EQ(parse_seed(SEED(dns_seed_aaaa), "example.com", BLZ__DNS_TYPE_AAAA, &ans), 0);
    CHECK_EQ(ans.count, 1);
    CHECK_EQ(blz_addr_get_family(&ans.addrs[0]), BLZ_AF_INET6);
    CHECK_ADDR(&ans.addrs[0], "2606:2800:220:1:248:1893:25c8:1946");
    CHECK_EQ(blz_addr_scope_id(&ans.addrs[0]), 0);
}

BLZ_TEST(only_the_query_type)
{
    /* A and AAAA records for the same name: each query takes its own type. */
    msgbuf m;
    mb_start(&m, 0x8180, 3, "example.com", BLZ__DNS_TYPE_AAAA);
    mb_ptr(&m, 12);
    mb_a(&m, 1, 2, 3, 4);
    mb_ptr(&m, 12);
    mb_rr(&m, BLZ__DNS_TYPE_AAAA, 1, 16);
    static const uint8_t v6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    mb_bytes(&m, v6, 16);
    mb_ptr(&m, 12);
    mb_rr(&m, 16, 1, 3); /* TXT */
    mb_bytes(&m, "\x02hi", 3);
    blz__dns_answer ans;
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_AAAA, &ans), 0);
    CHECK_EQ(ans.count, 1);
    CHECK_ADDR(&ans.addrs[0], "::1");
    /* The question is for AAAA: asking for A is another question. */
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_A, &ans), -ENOMSG);
    m.b[12 + 13 + 1] = BLZ__DNS_TYPE_A;
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_A, &ans), 0);
    CHECK_EQ(ans.count, 1);
    CHECK_ADDR(&ans.addrs[0], "1.2.3.4");
}

BLZ_TEST(compressed_owner_names)
{
    /* First owner: the label "example" and a pointer to "com" in the question. Second: a
     * pointer to the first owner, itself a label and a pointer. Third: in another case. */
    msgbuf m;
    mb_start(&m, 0x8180, 3, "example.com", BLZ__DNS_TYPE_A);
    size_t first = mb_labels(&m, "example");
    mb_ptr(&m, 12 + 8);
    mb_a(&m, 10, 0, 0, 1);
    mb_ptr(&m, first);
    mb_a(&m, 10, 0, 0, 2);
    size_t third = mb_labels(&m, "EXAMPLE");
    mb_ptr(&m, 12 + 8);
    mb_a(&m, 10, 0, 0, 3);
    (void) third;
    blz__dns_answer ans;
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_A, &ans), 0);
    CHECK_EQ(ans.count, 3);
    CHECK_ADDR(&ans.addrs[0], "10.0.0.1");
    CHECK_ADDR(&ans.addrs[1], "10.0.0.2");
    CHECK_ADDR(&ans.addrs[2], "10.0.0.3");
}

BLZ_TEST(cname_chain)
{
    /* www -> a -> b -> 192.0.2.7; the A record of example.com is not in the chain. */
    blz__dns_answer ans;
    CHECK_EQ(parse_seed(SEED(dns_seed_cname), "www.example.com", BLZ__DNS_TYPE_A, &ans), 0);
    CHECK_EQ(ans.count, 1);
    CHECK_ADDR(&ans.addrs[0], "192.0.2.7");
}

BLZ_TEST(cname_chain_listed_backwards)
{
    /* b A 192.0.2.7, then a CNAME b, then www CNAME a: every record before the one that
     * explains it. */
    blz__dns_answer ans;
    CHECK_EQ(parse_seed(SEED(dns_seed_cname_rev), "www.example.com", BLZ__DNS_TYPE_A, &ans), 0);
    CHECK_EQ(ans.count, 1);
    CHECK_ADDR(&ans.addrs[0], "192.0.2.7");
    CHECK_EQ(ans.rcode, 0);
}

BLZ_TEST(cname_loop_and_long_chain)
{
    /* www CNAME a, a CNAME www: a loop ends; both names' A records count. */
    msgbuf m;
    mb_start(&m, 0x8180, 4, "www.x", BLZ__DNS_TYPE_A);
    size_t a = mb_name(&m, "a.x");
    mb_a(&m, 1, 1, 1, 1);
    mb_ptr(&m, a);
    mb_rr(&m, BLZ__DNS_TYPE_CNAME, 1, 2);
    mb_ptr(&m, 12);
    mb_ptr(&m, 12);
    mb_rr(&m, BLZ__DNS_TYPE_CNAME, 1, 2);
    mb_ptr(&m, a);
    mb_ptr(&m, 12);
    mb_a(&m, 2, 2, 2, 2);
    blz__dns_answer ans;
    CHECK_EQ(parse_mb(&m, "www.x", BLZ__DNS_TYPE_A, &ans), 0);
    CHECK_EQ(ans.count, 2);
    CHECK_ADDR(&ans.addrs[0], "1.1.1.1");
    CHECK_ADDR(&ans.addrs[1], "2.2.2.2");

    /* n0 -> n1 -> ... -> n19, listed last to first, with an A record for n10 and one for
     * n19. The chain holds 16 names (n0..n15): n10 counts, n19 does not. */
    mb_start(&m, 0x8180, 21, "n0.x", BLZ__DNS_TYPE_A);
    char owner[16], target[16];
    for (int i = 18; i >= 0; i--) {
        snprintf(owner, sizeof owner, "n%d.x", i);
        snprintf(target, sizeof target, "n%d.x", i + 1);
        mb_name(&m, owner);
        mb_rr(&m, BLZ__DNS_TYPE_CNAME, 1, (unsigned) strlen(target) + 2);
        mb_name(&m, target);
    }
    mb_name(&m, "n10.x");
    mb_a(&m, 10, 10, 10, 10);
    mb_name(&m, "n19.x");
    mb_a(&m, 19, 19, 19, 19);
    CHECK_EQ(parse_mb(&m, "n0.x", BLZ__DNS_TYPE_A, &ans), 0);
    CHECK_EQ(ans.count, 1);
    CHECK_ADDR(&ans.addrs[0], "10.10.10.10");
}

BLZ_TEST(other_owners_ignored)
{
    /* The second A record's owner becomes "com". */
    uint8_t msg[sizeof dns_seed_a2 - 1];
    memcpy(msg, dns_seed_a2, sizeof msg);
    CHECK_EQ(msg[45], 0xc0);
    CHECK_EQ(msg[46], 0x0c);
    msg[46] = 0x14;
    blz__dns_answer ans;
    CHECK_EQ(parse(msg, sizeof msg, "example.com", BLZ__DNS_TYPE_A, &ans), 0);
    CHECK_EQ(ans.count, 1);
    CHECK_ADDR(&ans.addrs[0], "93.184.216.34");

    /* Class CH (3) is not IN: ignored, whatever its length. */
    msgbuf m;
    mb_start(&m, 0x8180, 2, "example.com", BLZ__DNS_TYPE_A);
    mb_ptr(&m, 12);
    mb_rr(&m, BLZ__DNS_TYPE_A, 3, 2);
    mb_u16(&m, 0x0102);
    mb_ptr(&m, 12);
    mb_a(&m, 5, 6, 7, 8);
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_A, &ans), 0);
    CHECK_EQ(ans.count, 1);
    CHECK_ADDR(&ans.addrs[0], "5.6.7.8");

    /* A CNAME whose owner is not in the chain is not followed. */
    mb_start(&m, 0x8180, 2, "example.com", BLZ__DNS_TYPE_A);
    size_t other = mb_name(&m, "other.com");
    mb_rr(&m, BLZ__DNS_TYPE_CNAME, 1, 2);
    mb_ptr(&m, 12);
    mb_ptr(&m, other);
    mb_a(&m, 9, 9, 9, 9);
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_A, &ans), 0);
    CHECK_EQ(ans.count, 0);
}

BLZ_TEST(at_most_answer_max)
{
    msgbuf m;
    mb_start(&m, 0x8180, 40, "example.com", BLZ__DNS_TYPE_A);
    for (unsigned i = 0; i < 40; i++) {
        mb_ptr(&m, 12);
        mb_a(&m, 10, 0, 0, (uint8_t) i);
    }
    blz__dns_answer ans;
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_A, &ans), 0);
    CHECK_EQ(ans.count, BLZ__DNS_ANSWER_MAX);
    CHECK_ADDR(&ans.addrs[0], "10.0.0.0");
    CHECK_ADDR(&ans.addrs[BLZ__DNS_ANSWER_MAX - 1], "10.0.0.31");
}

BLZ_TEST(not_our_answer)
{
    uint8_t msg[sizeof dns_seed_a2 - 1];
    blz__dns_answer ans;
#define RESET() memcpy(msg, dns_seed_a2, sizeof msg)
    RESET();
    CHECK_EQ(blz__dns_response_parse(msg, sizeof msg, 0x1235, "example.com", BLZ__DNS_TYPE_A, &ans),
             -ENOMSG);
    CHECK_EQ(ans.count, 0);
    msg[2] &= 0x7f; /* QR = 0: a query */
    CHECK_EQ(parse(msg, sizeof msg, "example.com", BLZ__DNS_TYPE_A, &ans), -ENOMSG);
    RESET();
    msg[2] |= 0x10; /* opcode 2 (STATUS) */
    CHECK_EQ(parse(msg, sizeof msg, "example.com", BLZ__DNS_TYPE_A, &ans), -ENOMSG);
    RESET();
    msg[5] = 2; /* QDCOUNT 2 */
    CHECK_EQ(parse(msg, sizeof msg, "example.com", BLZ__DNS_TYPE_A, &ans), -ENOMSG);
    RESET();
    msg[5] = 0; /* QDCOUNT 0 */
    CHECK_EQ(parse(msg, sizeof msg, "example.com", BLZ__DNS_TYPE_A, &ans), -ENOMSG);
    RESET();
    CHECK_EQ(parse(msg, sizeof msg, "example.org", BLZ__DNS_TYPE_A, &ans), -ENOMSG);
    CHECK_EQ(parse(msg, sizeof msg, "www.example.com", BLZ__DNS_TYPE_A, &ans), -ENOMSG);
    CHECK_EQ(parse(msg, sizeof msg, "example", BLZ__DNS_TYPE_A, &ans), -ENOMSG);
    CHECK_EQ(parse(msg, sizeof msg, "example.com", BLZ__DNS_TYPE_AAAA, &ans), -ENOMSG);
    msg[28] = 3; /* question class CH */
    CHECK_EQ(parse(msg, sizeof msg, "example.com", BLZ__DNS_TYPE_A, &ans), -ENOMSG);
    RESET();
    /* Still ours after all that. */
    CHECK_EQ(parse(msg, sizeof msg, "example.com.", BLZ__DNS_TYPE_A, &ans), 0);
    CHECK_EQ(ans.count, 2);
    /* A query name the builder rejects, and NULL arguments. */
    CHECK_EQ(parse(msg, sizeof msg, "example..com", BLZ__DNS_TYPE_A, &ans), -EINVAL);
    CHECK_EQ(parse(msg, sizeof msg, NULL, BLZ__DNS_TYPE_A, &ans), -EINVAL);
    CHECK_EQ(parse(NULL, sizeof msg, "example.com", BLZ__DNS_TYPE_A, &ans), -EINVAL);
    CHECK_EQ(parse(msg, sizeof msg, "example.com", BLZ__DNS_TYPE_A, NULL), -EINVAL);
#undef RESET
}

BLZ_TEST(nxdomain)
{
    blz__dns_answer ans;
    CHECK_EQ(parse_seed(SEED(dns_seed_nxdomain), "example.com", BLZ__DNS_TYPE_A, &ans), 0);
    CHECK_EQ(ans.rcode, BLZ__DNS_RCODE_NXDOMAIN);
    CHECK_EQ(ans.count, 0);
    CHECK(!ans.truncated);
    /* SERVFAIL and REFUSED come through the same way. */
    msgbuf m;
    mb_start(&m, 0x8182, 0, "example.com", BLZ__DNS_TYPE_A);
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_A, &ans), 0);
    CHECK_EQ(ans.rcode, BLZ__DNS_RCODE_SERVFAIL);
    m.b[3] = 0x85;
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_A, &ans), 0);
    CHECK_EQ(ans.rcode, BLZ__DNS_RCODE_REFUSED);
}

BLZ_TEST(truncated_flag)
{
    /* TC set: the complete first record is kept, the cut second one ends the section. */
    blz__dns_answer ans;
    CHECK_EQ(parse_seed(SEED(dns_seed_truncated), "example.com", BLZ__DNS_TYPE_A, &ans), 0);
    CHECK(ans.truncated);
    CHECK_EQ(ans.count, 1);
    CHECK_ADDR(&ans.addrs[0], "1.2.3.4");
    /* Without TC the same bytes are malformed. */
    uint8_t msg[sizeof dns_seed_truncated - 1];
    memcpy(msg, dns_seed_truncated, sizeof msg);
    msg[2] &= (uint8_t) ~0x02;
    CHECK_EQ(parse(msg, sizeof msg, "example.com", BLZ__DNS_TYPE_A, &ans), -EBADMSG);
    CHECK_EQ(ans.count, 0);
    /* TC on a complete message: both records, and the flag. */
    uint8_t full[sizeof dns_seed_a2 - 1];
    memcpy(full, dns_seed_a2, sizeof full);
    full[2] |= 0x02;
    CHECK_EQ(parse(full, sizeof full, "example.com", BLZ__DNS_TYPE_A, &ans), 0);
    CHECK(ans.truncated);
    CHECK_EQ(ans.count, 2);
    /* TC with the question cut is still malformed: it cannot be checked. */
    CHECK_EQ(parse(full, 20, "example.com", BLZ__DNS_TYPE_A, &ans), -EBADMSG);
}

BLZ_TEST(malformed)
{
    blz__dns_answer ans;
    const size_t n = sizeof dns_seed_a2 - 1;
    /* Every proper prefix of a good message without TC is malformed. */
    for (size_t len = 0; len < n; len++) {
        uint8_t *cut = malloc(len ? len : 1); /* exact size: ASan sees any overread */
        CHECK(cut != NULL);
        memcpy(cut, dns_seed_a2, len);
        CHECK_EQ(parse(cut, len, "example.com", BLZ__DNS_TYPE_A, &ans), -EBADMSG);
        CHECK_EQ(ans.count, 0);
        free(cut);
    }
    CHECK_EQ(parse("", 0, "example.com", BLZ__DNS_TYPE_A, &ans), -EBADMSG);
    CHECK_EQ(parse(NULL, 0, "example.com", BLZ__DNS_TYPE_A, &ans), -EBADMSG);

    /* An A record with RDLENGTH 5, and an AAAA with 4. */
    msgbuf m;
    mb_start(&m, 0x8180, 1, "example.com", BLZ__DNS_TYPE_A);
    mb_ptr(&m, 12);
    mb_rr(&m, BLZ__DNS_TYPE_A, 1, 5);
    mb_bytes(&m, "\x01\x02\x03\x04\x05", 5);
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_A, &ans), -EBADMSG);
    mb_start(&m, 0x8180, 1, "example.com", BLZ__DNS_TYPE_AAAA);
    mb_ptr(&m, 12);
    mb_rr(&m, BLZ__DNS_TYPE_AAAA, 1, 4);
    mb_bytes(&m, "\x01\x02\x03\x04", 4);
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_AAAA, &ans), -EBADMSG);

    /* A pointer to itself. */
    mb_start(&m, 0x8180, 1, "example.com", BLZ__DNS_TYPE_A);
    mb_ptr(&m, m.n);
    mb_a(&m, 1, 2, 3, 4);
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_A, &ans), -EBADMSG);
    /* A loop: a label, then a pointer back to it. */
    mb_start(&m, 0x8180, 1, "example.com", BLZ__DNS_TYPE_A);
    size_t at = mb_labels(&m, "a");
    mb_ptr(&m, at);
    mb_a(&m, 1, 2, 3, 4);
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_A, &ans), -EBADMSG);
    /* A pointer back into the name's own first label, at a zero byte that would end it:
     * backwards, yet not below the labels it ends. */
    mb_start(&m, 0x8180, 1, "example.com", BLZ__DNS_TYPE_A);
    at = m.n;
    mb_u8(&m, 1);
    mb_u8(&m, 0);
    mb_ptr(&m, at + 1);
    mb_a(&m, 1, 2, 3, 4);
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_A, &ans), -EBADMSG);
    /* A loop of two pointers, one of them forward. */
    mb_start(&m, 0x8180, 1, "example.com", BLZ__DNS_TYPE_A);
    at = m.n;
    mb_ptr(&m, at + 2);
    mb_ptr(&m, at);
    mb_a(&m, 1, 2, 3, 4);
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_A, &ans), -EBADMSG);
    /* A question name that is a pointer forward (into the answer). */
    mb_header(&m, 0x1234, 0x8180, 1, 1);
    mb_ptr(&m, 18);
    mb_u16(&m, 1);
    mb_u16(&m, 1);
    mb_name(&m, "example.com");
    mb_a(&m, 1, 2, 3, 4);
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_A, &ans), -EBADMSG);
    /* A pointer past the end of the message. */
    mb_start(&m, 0x8180, 1, "example.com", BLZ__DNS_TYPE_A);
    mb_ptr(&m, 0x3fff);
    mb_a(&m, 1, 2, 3, 4);
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_A, &ans), -EBADMSG);
    /* The reserved label types 01 and 10. */
    mb_start(&m, 0x8180, 1, "example.com", BLZ__DNS_TYPE_A);
    mb_u8(&m, 0x41);
    mb_u8(&m, 0);
    mb_a(&m, 1, 2, 3, 4);
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_A, &ans), -EBADMSG);
    m.b[29] = 0x81;
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_A, &ans), -EBADMSG);

    /* An owner of 4 x 63-byte labels and "example.com": 269 bytes decompressed. Three
     * labels (205 bytes) are fine. */
    char label[64];
    memset(label, 'q', 63);
    label[63] = '\0';
    for (int labels = 3; labels <= 4; labels++) {
        mb_start(&m, 0x8180, 1, "example.com", BLZ__DNS_TYPE_A);
        for (int i = 0; i < labels; i++) {
            mb_labels(&m, label);
        }
        mb_ptr(&m, 12);
        mb_a(&m, 1, 2, 3, 4);
        CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_A, &ans), labels == 3 ? 0 : -EBADMSG);
        CHECK_EQ(ans.count, 0);
    }

    /* A CNAME whose RDATA holds more than its name, and one whose name runs past it. */
    mb_start(&m, 0x8180, 1, "example.com", BLZ__DNS_TYPE_A);
    mb_ptr(&m, 12);
    mb_rr(&m, BLZ__DNS_TYPE_CNAME, 1, 3);
    mb_ptr(&m, 12);
    mb_u8(&m, 0);
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_A, &ans), -EBADMSG);
    mb_start(&m, 0x8180, 1, "example.com", BLZ__DNS_TYPE_A);
    mb_ptr(&m, 12);
    mb_rr(&m, BLZ__DNS_TYPE_CNAME, 1, 2);
    mb_labels(&m, "a");
    mb_ptr(&m, 12);
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_A, &ans), -EBADMSG);

    /* An RDLENGTH past the end, and ANCOUNT larger than the records there are. */
    mb_start(&m, 0x8180, 1, "example.com", BLZ__DNS_TYPE_A);
    mb_ptr(&m, 12);
    mb_rr(&m, 16, 1, 100);
    mb_bytes(&m, "abc", 3);
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_A, &ans), -EBADMSG);
    uint8_t msg[sizeof dns_seed_a2 - 1];
    memcpy(msg, dns_seed_a2, sizeof msg);
    msg[7] = 3;
    CHECK_EQ(parse(msg, sizeof msg, "example.com", BLZ__DNS_TYPE_A, &ans), -EBADMSG);
    /* A bad record after the good ones spoils the message. */
    mb_start(&m, 0x8180, 2, "example.com", BLZ__DNS_TYPE_A);
    mb_ptr(&m, 12);
    mb_a(&m, 1, 2, 3, 4);
    mb_ptr(&m, m.n);
    mb_a(&m, 1, 2, 3, 5);
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_A, &ans), -EBADMSG);
    CHECK_EQ(ans.count, 0);
}

BLZ_TEST(extra_sections_and_trailing_bytes_ignored)
{
    /* Authority and additional sections are not read, nor bytes after them. */
    msgbuf m;
    mb_start(&m, 0x8180, 1, "example.com", BLZ__DNS_TYPE_A);
    m.b[9] = 1;  /* NSCOUNT */
    m.b[11] = 5; /* ARCOUNT: more than there are */
    mb_ptr(&m, 12);
    mb_a(&m, 4, 3, 2, 1);
    mb_bytes(&m, "\xc0\xff\x41garbage", 10);
    blz__dns_answer ans;
    CHECK_EQ(parse_mb(&m, "example.com", BLZ__DNS_TYPE_A, &ans), 0);
    CHECK_EQ(ans.count, 1);
    CHECK_ADDR(&ans.addrs[0], "4.3.2.1");
}

BLZ_TEST(case_insensitive)
{
    blz__dns_answer ans;
    /* The question written "ExAmPlE.CoM" answers "example.com", and the other way. */
    CHECK_EQ(parse_seed(SEED(dns_seed_mixed), "example.com", BLZ__DNS_TYPE_A, &ans), 0);
    CHECK_EQ(ans.count, 1);
    CHECK_ADDR(&ans.addrs[0], "127.0.0.1");
    CHECK_EQ(parse_seed(SEED(dns_seed_a2), "ExAmPlE.CoM", BLZ__DNS_TYPE_A, &ans), 0);
    CHECK_EQ(ans.count, 2);
    /* Owners in another case than the question, CNAME targets too. */
    msgbuf m;
    mb_start(&m, 0x8180, 2, "www.example.com", BLZ__DNS_TYPE_A);
    mb_name(&m, "WWW.EXAMPLE.COM");
    mb_rr(&m, BLZ__DNS_TYPE_CNAME, 1, 7);
    mb_name(&m, "Cdn.X");
    mb_name(&m, "cDN.x");
    mb_a(&m, 8, 8, 4, 4);
    CHECK_EQ(parse_mb(&m, "www.example.com", BLZ__DNS_TYPE_A, &ans), 0);
    CHECK_EQ(ans.count, 1);
    CHECK_ADDR(&ans.addrs[0], "8.8.4.4");
    /* Only ASCII letters fold: 0xC1 is not 0xE1. */
    mb_start(&m, 0x8180, 0, "\xc1.x", BLZ__DNS_TYPE_A);
    CHECK_EQ(parse_mb(&m, "\xe1.x", BLZ__DNS_TYPE_A, &ans), -ENOMSG);
    CHECK_EQ(parse_mb(&m, "\xc1.X", BLZ__DNS_TYPE_A, &ans), 0);
}

BLZ_TEST(seeds_parse)
{
    /* The fuzz seeds are what they claim to be. */
    static const struct {
        const char *name;
        uint16_t qtype;
        unsigned count;
    } want[] = {
        {"example.com", BLZ__DNS_TYPE_A, 2},     {"example.com", BLZ__DNS_TYPE_AAAA, 1},
        {"www.example.com", BLZ__DNS_TYPE_A, 1}, {"www.example.com", BLZ__DNS_TYPE_A, 1},
        {"example.com", BLZ__DNS_TYPE_A, 0},     {"example.com", BLZ__DNS_TYPE_A, 1},
        {"example.com", BLZ__DNS_TYPE_A, 1},
    };
    CHECK_EQ(sizeof want / sizeof want[0], DNS_NSEEDS);
    for (size_t i = 0; i < DNS_NSEEDS; i++) {
        blz__dns_answer ans;
        CHECK_EQ(parse(dns_seeds[i].bytes, dns_seeds[i].len, want[i].name, want[i].qtype, &ans), 0);
        CHECK_EQ(ans.count, want[i].count);
        LLVMFuzzerTestOneInput((const uint8_t *) dns_seeds[i].bytes, dns_seeds[i].len);
    }
}

BLZ_TEST(fuzz_mutations)
{
    dns_fuzz_mutate(100000); /* the fuzz target's own checks abort on a failure */
}
