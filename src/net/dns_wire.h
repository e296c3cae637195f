/*
 * Internal: the DNS wire format (RFC 1035) for the native resolver: building
 * a query and reading the addresses out of a response. Pure functions over
 * byte buffers, no I/O, so they can be fuzzed (tests/fuzz/dns_fuzz.c).
 */
#ifndef BLZ_NET_DNS_WIRE_H
#define BLZ_NET_DNS_WIRE_H

#include "blitzio/net.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BLZ__DNS_TYPE_A     1
#define BLZ__DNS_TYPE_CNAME 5
#define BLZ__DNS_TYPE_AAAA  28

/* Response codes the resolver tells apart. */
#define BLZ__DNS_RCODE_NOERROR  0
#define BLZ__DNS_RCODE_SERVFAIL 2
#define BLZ__DNS_RCODE_NXDOMAIN 3
#define BLZ__DNS_RCODE_REFUSED  5

/* The longest name in dotted form, without a trailing dot (RFC 1035: 255
 * bytes on the wire). */
#define BLZ__DNS_NAME_MAX 253

/* The most addresses one response yields. */
#define BLZ__DNS_ANSWER_MAX 32

/* A UDP message without EDNS is at most 512 bytes (RFC 1035 4.2.1). */
#define BLZ__DNS_UDP_MAX 512

typedef struct blz__dns_answer {
    int rcode;                           /* 0..15 */
    bool truncated;                      /* TC was set: ask again over TCP */
    unsigned count;                      /* addresses in addrs */
    blz_addr addrs[BLZ__DNS_ANSWER_MAX]; /* port 0, in answer-section order */
} blz__dns_answer;

/*
 * Writes a standard query for `name` (dotted; one trailing dot allowed) of
 * type `qtype`, class IN, with RD set and `id`. Returns the bytes written,
 * -EINVAL for a bad name (empty, an empty label, a label over 63 bytes, over
 * BLZ__DNS_NAME_MAX) or -ENOSPC when `cap` is too small.
 *
 * Details: "." alone is -EINVAL (the root is never queried), as are a NULL
 * `buf` or `name`. The name is written with the case it has; there are no
 * escapes (every byte but '.' is a label byte). At most 12 + 255 + 4 bytes.
 */
int blz__dns_query_build(uint8_t *buf, size_t cap, uint16_t id, const char *name, uint16_t qtype);

/*
 * Reads the response `msg` (`len` bytes) to the query (`id`, `name`,
 * `qtype`). Returns 0 and fills `out`; -ENOMSG when it does not answer that
 * query (not a response, another id, another question: the caller ignores it
 * and keeps waiting); -EBADMSG when it is malformed (a field past the end, a
 * compression pointer loop or forward chain, a name over 255 bytes).
 * Addresses: the IN records of type `qtype` in the answer section whose owner
 * is `name` or an alias reached from it through the section's CNAME records
 * (names compare case-insensitively), at most BLZ__DNS_ANSWER_MAX. A
 * truncated response may still carry some: the caller decides.
 *
 * Details: -EINVAL for a NULL `out` or `name`, a NULL `msg` with `len` > 0,
 * or a `name` that blz__dns_query_build rejects. A message under 12 bytes is
 * -EBADMSG; a header with QR clear, another id, an opcode other than QUERY
 * or QDCOUNT other than 1 is -ENOMSG (so are a question with another name,
 * type or a class other than IN). Only the answer section is read; each of
 * its records must fit, an IN A must have 4 bytes of RDATA, an IN AAAA 16
 * and an IN CNAME exactly one name, or the message is -EBADMSG. When TC is
 * set, the answer section may end early: the complete records before the
 * cut are used. At most 16 names (the query name and 15 aliases) are
 * followed; records of further aliases are ignored. On any error
 * `out->count` is 0 (and `rcode`, `truncated` are 0/false); only 0 fills
 * `rcode` and `truncated`.
 */
int blz__dns_response_parse(const uint8_t *msg, size_t len, uint16_t id, const char *name,
                            uint16_t qtype, blz__dns_answer *out);

#endif
