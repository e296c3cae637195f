/*
 * Address parsing and formatting: a table of good and bad inputs, round
 * trips, the accessors, and conversion from/to OS socket addresses.
 */
#include "net_common.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#define BLZ_ADDR_FUZZ_NO_MAIN
#include "fuzz/addr_fuzz.c"

typedef struct addr_case {
    const char *in;  /* input */
    int rc;          /* expected result */
    const char *out; /* formatted form when rc == 0 (NULL: same as input) */
    int family;      /* expected family when rc == 0 */
    int port;        /* expected port for IP addresses */
} addr_case;

static const addr_case cases[] = {
    /* IPv4 */
    {"127.0.0.1:8080", 0, NULL, BLZ_AF_INET, 8080},
    {"0.0.0.0:0", 0, NULL, BLZ_AF_INET, 0},
    {"255.255.255.255:65535", 0, NULL, BLZ_AF_INET, 65535},
    {"1.2.3.4:080", 0, "1.2.3.4:80", BLZ_AF_INET, 80},
    {"1.2.3.4", -EINVAL, NULL, 0, 0},
    {"1.2.3.4:", -EINVAL, NULL, 0, 0},
    {"1.2.3.4:65536", -EINVAL, NULL, 0, 0},
    {"1.2.3.4:-1", -EINVAL, NULL, 0, 0},
    {"1.2.3.4:+1", -EINVAL, NULL, 0, 0},
    {"1.2.3.4:123456", -EINVAL, NULL, 0, 0},
    {"1.2.3:80", -EINVAL, NULL, 0, 0},
    {"1.2.3.4.5:80", -EINVAL, NULL, 0, 0},
    {"256.1.1.1:80", -EINVAL, NULL, 0, 0},
    {"01.2.3.4:80", -EINVAL, NULL, 0, 0},
    {"1..3.4:80", -EINVAL, NULL, 0, 0},
    {".1.2.3:80", -EINVAL, NULL, 0, 0},
    {"1.2.3.4 :80", -EINVAL, NULL, 0, 0},
    {" 1.2.3.4:80", -EINVAL, NULL, 0, 0},
    {"localhost:80", -EINVAL, NULL, 0, 0},
    {":80", -EINVAL, NULL, 0, 0},
    {"", -EINVAL, NULL, 0, 0},
    {":", -EINVAL, NULL, 0, 0},
    /* IPv6 */
    {"[::1]:80", 0, NULL, BLZ_AF_INET6, 80},
    {"[::]:0", 0, NULL, BLZ_AF_INET6, 0},
    {"[2001:db8::1]:443", 0, NULL, BLZ_AF_INET6, 443},
    {"[2001:DB8:0:0:0:0:0:1]:443", 0, "[2001:db8::1]:443", BLZ_AF_INET6, 443},
    {"[::ffff:1.2.3.4]:9", 0, NULL, BLZ_AF_INET6, 9},
    {"[fe80::1%1]:80", 0, NULL, BLZ_AF_INET6, 80},
    {"[fe80::1%lo]:80", 0, "[fe80::1%1]:80", BLZ_AF_INET6, 80},
    {"[fe80::1%]:80", -EINVAL, NULL, 0, 0},
    {"[fe80::1%no-such-if0]:80", -EINVAL, NULL, 0, 0},
    {"[fe80::1%99999999999]:80", -EINVAL, NULL, 0, 0},
    {"::1:80", -EINVAL, NULL, 0, 0},
    {"[::1]", -EINVAL, NULL, 0, 0},
    {"[::1]:", -EINVAL, NULL, 0, 0},
    {"[::1]80", -EINVAL, NULL, 0, 0},
    {"[::1:80", -EINVAL, NULL, 0, 0},
    {"[:::1]:80", -EINVAL, NULL, 0, 0},
    {"[1.2.3.4]:80", -EINVAL, NULL, 0, 0},
    {"[]:80", -EINVAL, NULL, 0, 0},
    {"[g::1]:80", -EINVAL, NULL, 0, 0},
    /* Unix */
    {"/tmp/x.sock", 0, "unix:/tmp/x.sock", BLZ_AF_UNIX, -EINVAL},
    {"unix:/tmp/x.sock", 0, NULL, BLZ_AF_UNIX, -EINVAL},
    {"./rel.sock", 0, "unix:./rel.sock", BLZ_AF_UNIX, -EINVAL},
    {"../up.sock", 0, "unix:../up.sock", BLZ_AF_UNIX, -EINVAL},
    {"unix:rel", 0, NULL, BLZ_AF_UNIX, -EINVAL},
    {"@abstract", 0, "unix:@abstract", BLZ_AF_UNIX, -EINVAL},
    {"unix:@a\\x00b", 0, NULL, BLZ_AF_UNIX, -EINVAL},
    {"unix:@back\\\\slash", 0, NULL, BLZ_AF_UNIX, -EINVAL},
    {"unix:@bad\\q", -EINVAL, NULL, 0, 0},
    {"unix:@bad\\x0", -EINVAL, NULL, 0, 0},
    {"unix:@", -EINVAL, NULL, 0, 0},
    {"@", -EINVAL, NULL, 0, 0},
    {"unix:", -EINVAL, NULL, 0, 0},
};

BLZ_TEST(parse_format_table)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const addr_case *c = &cases[i];
        blz_addr a;
        int rc = blz_addr_parse(c->in, &a);
        if (rc != c->rc) {
            fprintf(stderr, "case %zu \"%s\": got %d want %d\n", i, c->in, rc, c->rc);
        }
        CHECK_EQ(rc, c->rc);
        if (rc < 0) {
            CHECK_EQ(blz_addr_get_family(&a), BLZ_AF_UNSPEC);
            continue;
        }
        CHECK_EQ(blz_addr_get_family(&a), c->family);
        CHECK_EQ(blz_addr_port(&a), c->port);
        char buf[BLZ_ADDR_STRLEN];
        int n = blz_addr_format(&a, buf, sizeof buf);
        CHECK_GT(n, 0);
        CHECK_EQ((size_t) n, strlen(buf));
        CHECK_STR_EQ(buf, c->out ? c->out : c->in);
        /* The formatted form parses back to the same address. */
        blz_addr b;
        CHECK_OK(blz_addr_parse(buf, &b));
        CHECK(blz_addr_equal(&a, &b));
    }
}

BLZ_TEST(long_unix_paths)
{
    char path[200];
    memset(path, 'a', sizeof path);
    path[0] = '/';
    path[107] = '\0'; /* 107 bytes + NUL: the largest that fits sun_path */
    blz_addr a;
    CHECK_OK(blz_addr_parse(path, &a));
    path[107] = 'a';
    path[108] = '\0';
    CHECK_EQ(blz_addr_parse(path, &a), -ENAMETOOLONG);
    char abs[120] = "@";
    memset(abs + 1, 'z', 107);
    abs[108] = '\0';
    CHECK_OK(blz_addr_parse(abs, &a));
    abs[108] = 'z';
    abs[109] = '\0';
    CHECK_EQ(blz_addr_parse(abs, &a), -ENAMETOOLONG);
    /* The longest formatted address: 107 abstract bytes, each escaped (found by the fuzzer). */
    unsigned char raw[107];
    memset(raw, 0xff, sizeof raw);
    CHECK_OK(blz_addr_from_abstract(raw, sizeof raw, &a));
    char buf[BLZ_ADDR_STRLEN];
    CHECK_EQ(blz_addr_format(&a, buf, sizeof buf), 6 + 107 * 4);
    blz_addr b;
    CHECK_OK(blz_addr_parse(buf, &b));
    CHECK(blz_addr_equal(&a, &b));
}

BLZ_TEST(null_and_small_buffers)
{
    blz_addr a;
    CHECK_EQ(blz_addr_parse(NULL, &a), -EINVAL);
    CHECK_EQ(blz_addr_parse("1.2.3.4:5", NULL), -EINVAL);
    CHECK_EQ(blz_addr_parse_n("1.2.3.4:5\0junk", 14, &a), -EINVAL);
    CHECK_OK(blz_addr_parse_n("1.2.3.4:5junk", 9, &a));
    CHECK_EQ(blz_addr_port(&a), 5);
    char buf[8];
    CHECK_EQ(blz_addr_format(&a, buf, sizeof buf), -ENOSPC);
    CHECK_EQ(buf[0], '\0');
    char big[16];
    CHECK_EQ(blz_addr_format(&a, big, sizeof big), 9);
    CHECK_EQ(blz_addr_format(&a, big, 10), 9);
    CHECK_EQ(blz_addr_format(&a, big, 9), -ENOSPC);
    blz_addr empty;
    memset(&empty, 0, sizeof empty);
    CHECK_EQ(blz_addr_format(&empty, big, sizeof big), -EINVAL);
    CHECK_EQ(blz_addr_format(NULL, big, sizeof big), -EINVAL);
    CHECK_EQ(blz_addr_get_family(NULL), BLZ_AF_UNSPEC);
    CHECK_EQ(blz_addr_port(&empty), -EINVAL);
    CHECK_EQ(blz_addr_set_port(&empty, 1), -EINVAL);
    CHECK(!blz_addr_equal(&empty, &empty));
    size_t len = 99;
    CHECK(blz_addr_sockaddr(&empty, &len) == NULL);
    CHECK_EQ(len, 0);
}

BLZ_TEST(ip_helpers_and_sockaddr)
{
    blz_addr a;
    CHECK_OK(blz_addr_from_ip("10.1.2.3", 7, &a));
    CHECK_EQ(blz_addr_port(&a), 7);
    CHECK_OK(blz_addr_set_port(&a, 9000));
    char buf[BLZ_ADDR_STRLEN];
    CHECK_OK(blz_addr_format(&a, buf, sizeof buf));
    CHECK_STR_EQ(buf, "10.1.2.3:9000");
    CHECK_OK(blz_addr_from_ip("fe80::2%3", 1, &a));
    CHECK_EQ(blz_addr_scope_id(&a), 3);
    CHECK_EQ(blz_addr_from_ip("[::1]", 1, &a), -EINVAL);
    CHECK_EQ(blz_addr_from_ip("example.com", 1, &a), -EINVAL);

    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(1234);
    sin.sin_addr.s_addr = htonl(0x7f000001);
    CHECK_OK(blz_addr_from_sockaddr(&sin, sizeof sin, &a));
    CHECK_OK(blz_addr_format(&a, buf, sizeof buf));
    CHECK_STR_EQ(buf, "127.0.0.1:1234");
    size_t len;
    const void *sa = blz_addr_sockaddr(&a, &len);
    CHECK_EQ(len, sizeof sin);
    CHECK(memcmp(sa, &sin, sizeof sin) == 0);
    CHECK_EQ(blz_addr_from_sockaddr(&sin, sizeof sin - 1, &a), -EINVAL);
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, "/x");
    /* The kernel may or may not count the NUL: both give the same address. */
    blz_addr u1, u2;
    CHECK_OK(blz_addr_from_sockaddr(&sun, offsetof(struct sockaddr_un, sun_path) + 2, &u1));
    CHECK_OK(blz_addr_from_sockaddr(&sun, offsetof(struct sockaddr_un, sun_path) + 3, &u2));
    CHECK(blz_addr_equal(&u1, &u2));
    /* An unnamed Unix socket formats as "unix:". */
    CHECK_OK(blz_addr_from_sockaddr(&sun, sizeof(sa_family_t), &u1));
    CHECK_OK(blz_addr_format(&u1, buf, sizeof buf));
    CHECK_STR_EQ(buf, "unix:");
    int bogus = 12345;
    CHECK_EQ(blz_addr_from_sockaddr(&bogus, sizeof bogus, &a), -EINVAL);
    /* Raw abstract names may hold any byte. */
    const char raw[3] = {'a', '\0', '\x7f'};
    CHECK_OK(blz_addr_from_abstract(raw, sizeof raw, &a));
    CHECK_OK(blz_addr_format(&a, buf, sizeof buf));
    CHECK_STR_EQ(buf, "unix:@a\\x00\\x7f");
    CHECK_OK(blz_addr_parse(buf, &u1));
    CHECK(blz_addr_equal(&a, &u1));
}

/* What each address is: loopback, unspecified, multicast (1 = yes). */
typedef struct class_case {
    const char *in;
    int loopback, unspecified, multicast;
} class_case;

BLZ_TEST(ip_bytes_and_classes)
{
    static const class_case classes[] = {
        {"127.0.0.1:1", 1, 0, 0},
        {"127.255.0.9:1", 1, 0, 0},
        {"[::1]:1", 1, 0, 0},
        {"[::ffff:127.0.0.1]:1", 1, 0, 0},
        {"0.0.0.0:0", 0, 1, 0},
        {"[::]:0", 0, 1, 0},
        {"[::ffff:0.0.0.0]:0", 0, 0, 0},
        {"224.0.0.251:5353", 0, 0, 1},
        {"239.255.255.250:1900", 0, 0, 1},
        {"[ff02::fb]:5353", 0, 0, 1},
        {"[::ffff:224.0.0.1]:1", 0, 0, 1},
        {"10.0.0.1:80", 0, 0, 0},
        {"128.0.0.1:80", 0, 0, 0},
        {"[::2]:80", 0, 0, 0},
        {"[fe80::1%2]:80", 0, 0, 0},
        {"223.255.255.255:1", 0, 0, 0},
        {"unix:/tmp/x", 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++) {
        const class_case *c = &classes[i];
        blz_addr a;
        CHECK_OK(blz_addr_parse(c->in, &a));
        if (blz_addr_is_loopback(&a) != (c->loopback != 0) ||
            blz_addr_is_unspecified(&a) != (c->unspecified != 0) ||
            blz_addr_is_multicast(&a) != (c->multicast != 0)) {
            fprintf(stderr, "misclassified: %s\n", c->in);
            CHECK(!"classes");
        }
    }
    CHECK(!blz_addr_is_loopback(NULL) && !blz_addr_is_unspecified(NULL) &&
          !blz_addr_is_multicast(NULL));

    /* Bytes out and back, port kept. */
    blz_addr a, b;
    unsigned char ip[16];
    CHECK_OK(blz_addr_parse("192.0.2.7:8080", &a));
    CHECK_EQ(blz_addr_ip_bytes(&a, ip), 4);
    CHECK(ip[0] == 192 && ip[1] == 0 && ip[2] == 2 && ip[3] == 7);
    CHECK_OK(blz_addr_from_ip_bytes(ip, 4, 8080, &b));
    CHECK(blz_addr_equal(&a, &b));
    CHECK_OK(blz_addr_parse("[2001:db8::5]:53", &a));
    CHECK_EQ(blz_addr_ip_bytes(&a, ip), 16);
    CHECK(ip[0] == 0x20 && ip[1] == 0x01 && ip[2] == 0x0d && ip[3] == 0xb8 && ip[15] == 5);
    CHECK_OK(blz_addr_from_ip_bytes(ip, 16, 53, &b));
    CHECK(blz_addr_equal(&a, &b));
    /* Bad input. */
    CHECK_OK(blz_addr_parse("unix:/tmp/x", &a));
    CHECK_EQ(blz_addr_ip_bytes(&a, ip), -EINVAL);
    CHECK_EQ(blz_addr_ip_bytes(NULL, ip), -EINVAL);
    CHECK_EQ(blz_addr_ip_bytes(&b, NULL), -EINVAL);
    CHECK_EQ(blz_addr_from_ip_bytes(ip, 5, 1, &b), -EINVAL);
    CHECK_EQ(blz_addr_from_ip_bytes(NULL, 4, 1, &b), -EINVAL);
}

BLZ_TEST(fuzz_mutations)
{
    addr_fuzz_mutate(50000); /* the fuzz target's own checks abort on a failure */
}
