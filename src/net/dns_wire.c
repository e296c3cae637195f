/*
 * The DNS wire format (RFC 1035) for the native resolver: a query out, the
 * addresses of a response in. Pure functions over byte buffers.
 *
 * Invariants:
 * - Nothing reads past `len`: every access is preceded by a bounds check, and
 *   running out of bytes is told apart (SHORT) from other malformations, so a
 *   response with TC set can end in the middle of a record.
 * - Name decompression (4.1.4) terminates: every compression pointer must point
 *   below the start of the run of labels it ends (so the lowest offset read
 *   strictly decreases at each jump), jumps are at most NAME_JUMPS, and a name
 *   longer than 255 wire bytes is rejected.
 * - Names are kept decompressed in wire form (length-prefixed labels and the
 *   final zero) with ASCII letters lowered, so equal names are equal bytes.
 * - No allocation: the CNAME chain is a fixed array of CHAIN_MAX names. The
 *   answer section is walked once to validate it and collect aliases, again
 *   while the previous walk found a new alias (at most CHAIN_MAX - 1 times:
 *   CNAMEs may follow the records they explain), and once more for addresses.
 */
#include "net/dns_wire.h"

#include "core/container.h"
#include "os/unix/sys.h"

#include <string.h>

#define HEADER_LEN 12
#define WIRE_MAX   255 /* a name on the wire, final zero included */
#define LABEL_MAX  63
#define NAME_JUMPS 128 /* more than a 255-byte name can use (127 labels) */
#define CHAIN_MAX  16  /* the query name and up to 15 aliases */
#define CLASS_IN   1

#define FLAG_QR     0x8000u
#define FLAG_OPCODE 0x7800u
#define FLAG_TC     0x0200u
#define FLAG_RD     0x0100u
#define FLAG_RCODE  0x000fu

/* Internal result of the readers: the message ended before the field did.
 * A positive value, so it never mixes with the -errno results. */
#define SHORT 1

typedef struct dns_name {
    uint8_t len;            /* bytes of `wire` in use, final zero included */
    uint8_t wire[WIRE_MAX]; /* length-prefixed labels, lowercase ASCII */
} dns_name;

typedef struct dns_rr {
    dns_name owner;  /* decompressed */
    uint16_t type;   /* TYPE */
    uint16_t rclass; /* CLASS */
    size_t rdata;    /* offset of RDATA in the message */
    size_t rdlen;    /* RDLENGTH, checked to fit in the message */
    size_t next;     /* offset just past the record */
} dns_rr;

typedef struct dns_chain {
    unsigned n;                /* names in use; names[0] is the query name */
    dns_name names[CHAIN_MAX]; /* the owner names whose records answer the query */
} dns_chain;

/* What the walks over the answer section share. */
typedef struct dns_walk {
    const uint8_t *msg; /* the response */
    size_t len;         /* its length */
    size_t answers;     /* offset of the answer section */
    uint16_t qtype;     /* the query type: the addresses wanted */
    bool added;         /* a walk added a name to `chain` */
    dns_chain chain;    /* the query name and its aliases */
} dns_walk;

static uint16_t
get16(const uint8_t *p)
{
    return (uint16_t) ((unsigned) p[0] << 8 | p[1]);
}

static void
put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t) (v >> 8);
    p[1] = (uint8_t) v;
}

static uint8_t
lower(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t) (c - 'A' + 'a') : c;
}

/*
 * Encodes the dotted `name` into wire form, keeping its case (servers echo
 * it, which lets callers randomise case). No escapes: every byte but '.' is a
 * label byte. -EINVAL for NULL, "", ".", an empty label, a label over 63 bytes
 * or a name over BLZ__DNS_NAME_MAX (one trailing dot not counted).
 */
static int
name_encode(const char *name, dns_name *out)
{
    if (!name) {
        return -EINVAL;
    }
    size_t n = strnlen(name, BLZ__DNS_NAME_MAX + 2);
    if (n > 0 && name[n - 1] == '.') {
        n--; /* the root label's dot */
    }
    if (n == 0 || n > BLZ__DNS_NAME_MAX) {
        return -EINVAL;
    }
    size_t w = 0;     /* bytes written to out->wire */
    size_t start = 0; /* first byte of the current label in `name` */
    for (size_t i = 0; i <= n; i++) {
        if (i < n && name[i] != '.') {
            continue;
        }
        size_t lab = i - start;
        if (lab == 0 || lab > LABEL_MAX) {
            return -EINVAL;
        }
        out->wire[w++] = (uint8_t) lab;
        memcpy(out->wire + w, name + start, lab);
        w += lab;
        start = i + 1;
    }
    out->wire[w++] = 0;
    out->len = (uint8_t) w; /* n <= 253, so w = n + 2 <= 255 */
    return 0;
}

/*
 * Reads the possibly compressed name at `off` into `out` (lowercased). Sets
 * `*end` to the offset just past the name's bytes at `off` (after its first
 * pointer, or its final zero). Returns 0, SHORT when the message ends first,
 * or -EBADMSG (a reserved label type, a pointer that does not point below the
 * labels it ends, too many jumps, over 255 bytes).
 */
static int
name_read(const uint8_t *msg, size_t len, size_t off, dns_name *out, size_t *end)
{
    size_t pos = off;
    size_t low = off; /* the lowest offset read so far: pointers must go below it */
    size_t w = 0;
    unsigned jumps = 0;
    bool jumped = false;
    for (;;) {
        if (pos >= len) {
            return SHORT;
        }
        uint8_t c = msg[pos];
        if (c == 0) {
            out->wire[w++] = 0;
            out->len = (uint8_t) w;
            if (!jumped) {
                *end = pos + 1;
            }
            return 0;
        }
        switch (c & 0xc0) {
        case 0xc0: {
            if (pos + 1 >= len) {
                return SHORT;
            }
            size_t target = (size_t) (c & 0x3f) << 8 | msg[pos + 1];
            if (target >= low || ++jumps > NAME_JUMPS) {
                return -EBADMSG;
            }
            if (!jumped) {
                *end = pos + 2;
                jumped = true;
            }
            pos = low = target;
            break;
        }
        case 0x00:
            /* The label, its length byte and the final zero must fit in 255. */
            if (w + 1 + c + 1 > WIRE_MAX) {
                return -EBADMSG;
            }
            if (c > len - pos - 1) {
                return SHORT;
            }
            out->wire[w++] = c;
            for (size_t i = 1; i <= c; i++) {
                out->wire[w++] = lower(msg[pos + i]);
            }
            pos += 1 + (size_t) c;
            break;
        default: /* 01 and 10: extended and obsolete label types (RFC 6891) */
            return -EBADMSG;
        }
    }
}

static bool
name_equal(const dns_name *a, const dns_name *b)
{
    return a->len == b->len && memcmp(a->wire, b->wire, a->len) == 0;
}

static void
name_lower(dns_name *n)
{
    for (size_t i = 0; i < n->len; i++) {
        n->wire[i] = lower(n->wire[i]);
    }
}

static bool
chain_has(const dns_chain *ch, const dns_name *n)
{
    for (unsigned i = 0; i < ch->n; i++) {
        if (name_equal(&ch->names[i], n)) {
            return true;
        }
    }
    return false;
}

/* Reads the resource record at `off`: 0, SHORT or -EBADMSG. */
static int
rr_read(const uint8_t *msg, size_t len, size_t off, dns_rr *rr)
{
    size_t pos;
    int rc = name_read(msg, len, off, &rr->owner, &pos);
    if (rc != 0) {
        return rc;
    }
    if (len - pos < 10) {
        return SHORT;
    }
    rr->type = get16(msg + pos);
    rr->rclass = get16(msg + pos + 2);
    /* TTL (4 bytes) is not used: the caller caches nothing. */
    rr->rdlen = get16(msg + pos + 8);
    rr->rdata = pos + 10;
    if (rr->rdlen > len - rr->rdata) {
        return SHORT;
    }
    rr->next = rr->rdata + rr->rdlen;
    return 0;
}

/* Reads the target of an IN CNAME record, which must fill its RDATA exactly. */
static int
cname_read(const uint8_t *msg, const dns_rr *rr, dns_name *target)
{
    size_t end;
    /* The name may point anywhere before it, but its own bytes stay in RDATA. */
    int rc = name_read(msg, rr->next, rr->rdata, target, &end);
    if (rc == SHORT || (rc == 0 && end != rr->next)) {
        return -EBADMSG;
    }
    return rc;
}

/* Appends the address in the RDATA of an A or AAAA record (length checked). */
static void
answer_add(blz__dns_answer *out, uint16_t type, const uint8_t *d)
{
    int rc =
        blz_addr_from_ip_bytes(d, type == BLZ__DNS_TYPE_A ? 4 : 16, 0, &out->addrs[out->count]);
    BLZ_ASSERT(rc == 0);
    if (rc == 0) {
        out->count++;
    }
}

/*
 * Checks one complete answer record and uses it: the target of an IN CNAME
 * whose owner is in the chain joins it (while there is room, setting
 * `added`); with `out`, an IN record of the query type whose owner is in the
 * chain appends its address. Returns 0 or -EBADMSG.
 */
static int
answer_use(dns_walk *w, const dns_rr *rr, blz__dns_answer *out)
{
    dns_chain *ch = &w->chain;
    if (rr->rclass != CLASS_IN) {
        return 0; /* another class gives the types other meanings */
    }
    if (rr->type == BLZ__DNS_TYPE_CNAME) {
        dns_name target;
        int rc = cname_read(w->msg, rr, &target);
        if (rc == 0 && ch->n < CHAIN_MAX && chain_has(ch, &rr->owner) && !chain_has(ch, &target)) {
            ch->names[ch->n++] = target;
            w->added = true;
        }
        return rc;
    }
    if ((rr->type == BLZ__DNS_TYPE_A && rr->rdlen != 4) ||
        (rr->type == BLZ__DNS_TYPE_AAAA && rr->rdlen != 16)) {
        return -EBADMSG;
    }
    bool address = rr->type == BLZ__DNS_TYPE_A || rr->type == BLZ__DNS_TYPE_AAAA;
    if (out && address && rr->type == w->qtype && out->count < BLZ__DNS_ANSWER_MAX &&
        chain_has(ch, &rr->owner)) {
        answer_add(out, rr->type, w->msg + rr->rdata);
    }
    return 0;
}

/*
 * One walk over the first `count` answer records, through answer_use.
 * Returns the number of complete records (fewer than `count` only when
 * `partial` allows a message cut short), or -EBADMSG.
 */
static int
answer_walk(dns_walk *w, unsigned count, bool partial, blz__dns_answer *out)
{
    dns_rr rr;
    size_t off = w->answers;
    unsigned i;
    for (i = 0; i < count; i++) {
        int rc = rr_read(w->msg, w->len, off, &rr);
        if (rc == SHORT && partial) {
            break;
        }
        if (rc != 0 || answer_use(w, &rr, out) != 0) {
            return -EBADMSG;
        }
        off = rr.next;
    }
    return (int) i;
}

int
blz__dns_query_build(uint8_t *buf, size_t cap, uint16_t id, const char *name, uint16_t qtype)
{
    dns_name qn;
    if (!buf || name_encode(name, &qn) < 0) {
        return -EINVAL;
    }
    size_t total = HEADER_LEN + qn.len + 4;
    if (cap < total) {
        return -ENOSPC;
    }
    memset(buf, 0, HEADER_LEN);
    put16(buf, id);
    put16(buf + 2, FLAG_RD);
    put16(buf + 4, 1); /* QDCOUNT; AN, NS and AR stay 0 */
    memcpy(buf + HEADER_LEN, qn.wire, qn.len);
    put16(buf + HEADER_LEN + qn.len, qtype);
    put16(buf + HEADER_LEN + qn.len + 2, CLASS_IN);
    return (int) total;
}

int
blz__dns_response_parse(const uint8_t *msg, size_t len, uint16_t id, const char *name,
                        uint16_t qtype, blz__dns_answer *out)
{
    if (!out) {
        return -EINVAL;
    }
    out->rcode = 0;
    out->truncated = false;
    out->count = 0;
    dns_walk w;
    dns_name *qname = &w.chain.names[0];
    if ((!msg && len) || name_encode(name, qname) < 0) {
        return -EINVAL;
    }
    name_lower(qname);
    w.chain.n = 1;
    if (len < HEADER_LEN) {
        return -EBADMSG;
    }
    uint16_t flags = get16(msg + 2);
    if (get16(msg) != id || !(flags & FLAG_QR) || (flags & FLAG_OPCODE) != 0 ||
        get16(msg + 4) != 1) {
        return -ENOMSG;
    }
    unsigned ancount = get16(msg + 6);
    bool tc = (flags & FLAG_TC) != 0;

    dns_name qn;
    size_t off;
    int rc = name_read(msg, len, HEADER_LEN, &qn, &off);
    if (rc != 0 || len - off < 4) {
        return -EBADMSG;
    }
    if (!name_equal(&qn, qname) || get16(msg + off) != qtype || get16(msg + off + 2) != CLASS_IN) {
        return -ENOMSG;
    }

    w.msg = msg;
    w.len = len;
    w.answers = off + 4;
    w.qtype = qtype;
    w.added = false;
    /* The first walk validates every record and bounds the next ones to the
     * complete records; more walks find aliases listed before their owner. */
    rc = answer_walk(&w, ancount, tc, NULL);
    if (rc < 0) {
        return rc;
    }
    unsigned complete = (unsigned) rc;
    while (w.added && w.chain.n < CHAIN_MAX) {
        w.added = false;
        rc = answer_walk(&w, complete, false, NULL);
        BLZ_ASSERT(rc == (int) complete);
    }
    rc = answer_walk(&w, complete, false, out);
    BLZ_ASSERT(rc == (int) complete);
    if (rc < 0) {
        out->count = 0;
        return rc;
    }
    out->rcode = (int) (flags & FLAG_RCODE);
    out->truncated = tc;
    return 0;
}
