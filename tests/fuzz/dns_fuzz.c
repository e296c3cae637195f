/*
 * Fuzz target for the DNS wire format (src/net/dns_wire.c).
 *
 * As a libFuzzer target it checks every input:
 *     clang -fsanitize=fuzzer,address,undefined -DBLZ_LIBFUZZER -Iinclude -Isrc \
 *         tests/fuzz/dns_fuzz.c src/net/dns_wire.c src/os/unix/addr.c
 * as a plain program (the same line without -DBLZ_LIBFUZZER and `fuzzer,`) it
 * runs the same check over built-in seeds, the files named on the command
 * line, and a few hundred thousand deterministic mutations of the seeds
 * ($BLZ_FUZZ_ITERS). tests/dns_wire.c includes this file with
 * BLZ_DNS_FUZZ_NO_MAIN to run the mutations under ctest on every build; it
 * also uses the seeds as its hand-built responses.
 *
 * Properties: parsing never crashes or reads past its input (an exact-size
 * heap copy lets ASan see it); it returns 0, -ENOMSG or -EBADMSG for a valid
 * query; on success count <= BLZ__DNS_ANSWER_MAX, rcode is 0..15, and every
 * address has the family of the query type, port 0, and formats. A query
 * name taken from the input is -EINVAL for the parser exactly when the
 * builder rejects it; when it is accepted, the built query with QR set
 * parses as an empty answer to itself.
 */
#include "blitzio/net.h"
#include "fuzz_driver.h"
#include "net/dns_wire.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The query every seed answers, unless the seed says otherwise. */
#define DNS_FUZZ_ID 0x1234

_Noreturn static void
dns_fuzz_fail(const char *what, int rc)
{
    fprintf(stderr, "dns_fuzz: %s (%d)\n", what, rc);
    abort();
}

/* Parses `msg` as the answer to (id, name, qtype) and checks the result. */
static void
dns_fuzz_check(const uint8_t *msg, size_t len, uint16_t id, const char *name, uint16_t qtype)
{
    blz__dns_answer ans;
    int rc = blz__dns_response_parse(msg, len, id, name, qtype, &ans);
    if (rc == -ENOMSG || rc == -EBADMSG) {
        if (ans.count != 0) {
            dns_fuzz_fail("addresses left after an error", (int) ans.count);
        }
        return;
    }
    if (rc != 0) {
        dns_fuzz_fail("unexpected result", rc);
    }
    if (ans.count > BLZ__DNS_ANSWER_MAX || ans.rcode < 0 || ans.rcode > 15) {
        dns_fuzz_fail("count or rcode out of range", (int) ans.count);
    }
    blz_addr_family want = qtype == BLZ__DNS_TYPE_A ? BLZ_AF_INET : BLZ_AF_INET6;
    for (unsigned i = 0; i < ans.count; i++) {
        char buf[BLZ_ADDR_STRLEN];
        if (blz_addr_get_family(&ans.addrs[i]) != want || blz_addr_port(&ans.addrs[i]) != 0) {
            dns_fuzz_fail("address of the wrong family or port", (int) i);
        }
        int n = blz_addr_format(&ans.addrs[i], buf, sizeof buf);
        if (n <= 0) {
            dns_fuzz_fail("address does not format", n);
        }
    }
}

/* A name from the input's bytes after the header's 12 and the question's first
 * length byte (so a seed's question name in dotted form: control bytes become
 * dots, a zero ends it), checked against the builder; the builder's query
 * read back as a response. */
static void
dns_fuzz_name(const uint8_t *data, size_t size)
{
    char name[300];
    size_t n = 0;
    for (size_t i = 13; i < size && n < sizeof name - 1 && data[i] != 0; i++) {
        name[n++] = data[i] < 0x20 ? '.' : (char) data[i];
    }
    name[n] = '\0';
    uint8_t q[BLZ__DNS_UDP_MAX];
    memset(q, 0, sizeof q);
    int built = blz__dns_query_build(q, sizeof q, 0xbeef, name, BLZ__DNS_TYPE_AAAA);
    blz__dns_answer ans;
    int rc = blz__dns_response_parse(q, 12, 0xbeef, name, BLZ__DNS_TYPE_AAAA, &ans);
    if ((built == -EINVAL) != (rc == -EINVAL)) {
        dns_fuzz_fail("builder and parser disagree on a name", rc);
    }
    if (built == -EINVAL) {
        return;
    }
    if (built < 12 + 2 + 4 || built > 12 + 255 + 4) {
        dns_fuzz_fail("query of an impossible length", built);
    }
    q[2] |= 0x80; /* QR: now an empty answer to itself */
    rc = blz__dns_response_parse(q, (size_t) built, 0xbeef, name, BLZ__DNS_TYPE_AAAA, &ans);
    if (rc != 0 || ans.count != 0 || ans.rcode != 0 || ans.truncated) {
        dns_fuzz_fail("a built query does not read back", rc);
    }
    if (blz__dns_query_build(q, (size_t) built - 1, 0xbeef, name, BLZ__DNS_TYPE_AAAA) != -ENOSPC) {
        dns_fuzz_fail("one byte short is not -ENOSPC", built);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size heap copy, so ASan catches any read past the input. */
    uint8_t *msg = malloc(size ? size : 1);
    if (!msg) {
        return 0;
    }
    memcpy(msg, data, size);
    dns_fuzz_check(msg, size, DNS_FUZZ_ID, "example.com", BLZ__DNS_TYPE_A);
    /* With the message's own id, mutations of the id bytes still go deep. */
    uint16_t id = size >= 2 ? (uint16_t) (msg[0] << 8 | msg[1]) : 0;
    static const char *const names[] = {"example.com", "www.example.com", "EXAMPLE.com."};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        dns_fuzz_check(msg, size, id, names[i], BLZ__DNS_TYPE_A);
        dns_fuzz_check(msg, size, id, names[i], BLZ__DNS_TYPE_AAAA);
    }
    free(msg);
    dns_fuzz_name(data, size);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Seeds: responses built by hand, byte by byte. Offsets in the comments are where a
 * compression pointer (0xc0 0xNN) lands.
 * ------------------------------------------------------------------------------------- */

#define DNS_TTL "\x00\x00\x0e\x10"
/* "example.com" at offset 12: "example.com" is 0x0c, "com" is 0x14. */
#define DNS_Q_EXAMPLE \
 "\x07"               \
 "example"            \
 "\x03"               \
 "com"                \
 "\x00"
/* "www.example.com" at offset 12: "example.com" is 0x10. */
#define DNS_Q_WWW \
 "\x03"           \
 "www"            \
 "\x07"           \
 "example"        \
 "\x03"           \
 "com"            \
 "\x00"

typedef struct dns_seed {
    const char *name; /* what the seed shows */
    const char *bytes;
    size_t len;
} dns_seed;

#define DNS_SEED(n, s) \
 {                     \
  n, s, sizeof s - 1   \
 }

/* Two A records for example.com, owners compressed: 93.184.216.34 and 10.0.0.1. */
static const char dns_seed_a2[] =
    "\x12\x34\x81\x80\x00\x01\x00\x02\x00\x00\x00\x00" DNS_Q_EXAMPLE "\x00\x01\x00\x01"
    "\xc0\x0c\x00\x01\x00\x01" DNS_TTL "\x00\x04\x5d\xb8\xd8\x22"
    "\xc0\x0c\x00\x01\x00\x01" DNS_TTL "\x00\x04\x0a\x00\x00\x01";

/* One AAAA record for example.com: 2606:2800:220:1:248:1893:25c8:1946. */
static const char dns_seed_aaaa[] =
    "\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" DNS_Q_EXAMPLE "\x00\x1c\x00\x01"
    "\xc0\x0c\x00\x1c\x00\x01" DNS_TTL "\x00\x10"
    "\x26\x06\x28\x00\x02\x20\x00\x01\x02\x48\x18\x93\x25\xc8\x19\x46";

/* www.example.com CNAME a.example.com (at 0x2d) CNAME b.example.com (at 0x3d) A
 * 192.0.2.7, then an A record of example.com itself, which is not in the chain. */
static const char dns_seed_cname[] =
    "\x12\x34\x81\x80\x00\x01\x00\x04\x00\x00\x00\x00" DNS_Q_WWW "\x00\x01\x00\x01"
    "\xc0\x0c\x00\x05\x00\x01" DNS_TTL "\x00\x04\x01"
    "a"
    "\xc0\x10"
    "\xc0\x2d\x00\x05\x00\x01" DNS_TTL "\x00\x04\x01"
    "b"
    "\xc0\x10"
    "\xc0\x3d\x00\x01\x00\x01" DNS_TTL "\x00\x04\xc0\x00\x02\x07"
    "\xc0\x10\x00\x01\x00\x01" DNS_TTL "\x00\x04\xc6\x33\x64\x01";

/* The same chain listed backwards: b.example.com (at 0x21) A 192.0.2.7, then
 * a.example.com (at 0x33) CNAME b, then www CNAME a. */
static const char dns_seed_cname_rev[] =
    "\x12\x34\x81\x80\x00\x01\x00\x03\x00\x00\x00\x00" DNS_Q_WWW "\x00\x01\x00\x01"
    "\x01"
    "b"
    "\xc0\x10\x00\x01\x00\x01" DNS_TTL "\x00\x04\xc0\x00\x02\x07"
    "\x01"
    "a"
    "\xc0\x10\x00\x05\x00\x01" DNS_TTL "\x00\x02\xc0\x21"
    "\xc0\x0c\x00\x05\x00\x01" DNS_TTL "\x00\x02\xc0\x33";

/* NXDOMAIN for example.com: no answers, an SOA in the authority section. */
static const char dns_seed_nxdomain[] =
    "\x12\x34\x81\x83\x00\x01\x00\x00\x00\x01\x00\x00" DNS_Q_EXAMPLE "\x00\x01\x00\x01"
    "\xc0\x14\x00\x06\x00\x01" DNS_TTL "\x00\x1c"
    "\x01"
    "a"
    "\xc0\x14\x01"
    "b"
    "\xc0\x14\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04"
    "\x00\x00\x00\x05";

/* TC set: two A records announced, the second cut off after its owner and type. */
static const char dns_seed_truncated[] =
    "\x12\x34\x83\x80\x00\x01\x00\x02\x00\x00\x00\x00" DNS_Q_EXAMPLE "\x00\x01\x00\x01"
    "\xc0\x0c\x00\x01\x00\x01" DNS_TTL "\x00\x04\x01\x02\x03\x04"
    "\xc0\x0c\x00\x01";

/* A question written in mixed case (servers echo what they were sent). */
static const char dns_seed_mixed[] = "\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"
                                     "\x07"
                                     "ExAmPlE"
                                     "\x03"
                                     "CoM"
                                     "\x00\x00\x01\x00\x01"
                                     "\xc0\x0c\x00\x01\x00\x01" DNS_TTL "\x00\x04\x7f\x00\x00\x01";

static const dns_seed dns_seeds[] = {
    DNS_SEED("a2", dns_seed_a2),
    DNS_SEED("aaaa", dns_seed_aaaa),
    DNS_SEED("cname", dns_seed_cname),
    DNS_SEED("cname_rev", dns_seed_cname_rev),
    DNS_SEED("nxdomain", dns_seed_nxdomain),
    DNS_SEED("truncated", dns_seed_truncated),
    DNS_SEED("mixed", dns_seed_mixed),
};

#define DNS_NSEEDS (sizeof dns_seeds / sizeof dns_seeds[0])

#ifndef BLZ_LIBFUZZER
/* Runs `iters` deterministic mutations of the seeds through the target
 * (after the seeds themselves). */
static void
dns_fuzz_mutate(long iters)
{
    /* Bytes that mean something in a message: lengths, pointer and type bytes. */
    static const uint8_t interesting[] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x0c, 0x10,
                                          0x1c, 0x3f, 0x40, 0x80, 0xc0, 0xff, 'a',  'A'};
    for (size_t i = 0; i < DNS_NSEEDS; i++) {
        LLVMFuzzerTestOneInput((const uint8_t *) dns_seeds[i].bytes, dns_seeds[i].len);
    }
    uint64_t st = 0x9E3779B97F4A7C15ull;
    for (long it = 0; it < iters; it++) {
        const dns_seed *seed = &dns_seeds[fuzz_rnd(&st) % DNS_NSEEDS];
        uint8_t buf[BLZ__DNS_UDP_MAX];
        size_t n = seed->len;
        memcpy(buf, seed->bytes, n);
        int muts = 1 + (int) (fuzz_rnd(&st) % 4);
        for (int m = 0; m < muts; m++) {
            size_t pos = n ? fuzz_rnd(&st) % (n + 1) : 0;
            uint64_t r = fuzz_rnd(&st);
            uint8_t c = (r & 1) ? (uint8_t) (r >> 8) : interesting[(r >> 8) % sizeof interesting];
            int kind = (int) ((r >> 16) % 6);
            if (kind < FUZZ_EDITS) {
                fuzz_edit(buf, &n, sizeof buf, pos, c, kind);
            } else if (kind == 3) { /* cut */
                n = pos;
            } else if (kind == 4) { /* a compression pointer anywhere */
                if (pos + 1 < n) {
                    buf[pos] = (uint8_t) (0xc0 | ((r >> 24) & 0x01));
                    buf[pos + 1] = (uint8_t) (r >> 32);
                }
            } else if (n >= 12) { /* flip a header bit (QR, TC, counts...) */
                buf[(r >> 24) % 12] ^= (uint8_t) (1u << ((r >> 32) % 8));
            }
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
}

# ifndef BLZ_DNS_FUZZ_NO_MAIN
int
main(int argc, char **argv)
{
    return fuzz_main(argc, argv, "dns_fuzz", 300000, dns_fuzz_mutate);
}
# endif
#endif
