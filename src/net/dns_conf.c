/*
 * resolv.conf parsing and hosts-file lookup for the native resolver.
 *
 * Invariants:
 * - Both functions read only the `len` bytes they are given (the text need
 *   not be NUL-terminated and may contain NUL bytes), allocate nothing and
 *   keep no state. Every token is a span into the text; the only copies are
 *   into fixed local buffers after a length check, so a line of any length
 *   is safe.
 * - A line ends at '\n' (one '\r' before it is dropped, for CRLF files) or at
 *   the end of the text. Whitespace is space and tab, as in glibc.
 * - blz__dns_conf_parse fills `out` completely, starting from
 *   blz__dns_conf_default, and never leaves it half-written: every field is
 *   always within the bounds the header documents (nservers 1..3, nsearch
 *   0..6, each search entry NUL-terminated, ndots <= 15, timeout_ms
 *   1000..30000 or the default, attempts 1..5).
 *
 * Where glibc and this file differ, on purpose:
 * - A malformed number in "options" ("ndots:x", "ndots:-1", "ndots:") is
 *   ignored; glibc's atoi would read it as 0 (or worse).
 * - "timeout:0" and "attempts:0" become 1; glibc would keep 0.
 * - With no "search" or "domain" line the search list is empty; glibc would
 *   derive a domain from gethostname(), which is I/O.
 * - On a keyword line, a word starting with '#' or ';' ends the line.
 * - On a hosts line '#' and ';' start a comment anywhere (glibc: only '#'; a
 *   ';' cannot occur in an address or a host name, so nothing valid is lost).
 */
#include "net/dns_conf.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#define DNS_PORT 53

/* Longest IP literal the address parser can accept: an IPv6 address
 * (INET6_ADDRSTRLEN - 1 = 45), '%', a scope of at most 15 bytes. */
#define IP_TEXT_MAX 64

#define NDOTS_MAX    15u
#define TIMEOUT_MAX  30u /* seconds */
#define ATTEMPTS_MAX 5u

/* A run of bytes inside the caller's text. */
typedef struct span {
    const char *p; /* first byte */
    size_t n;      /* length */
} span;

static bool
is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool
is_comment(char c)
{
    return c == '#' || c == ';';
}

static unsigned char
ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char) (c | 0x20u) : c;
}

/* Takes the next line from [*cur, end) into `line`, without its "\n" or
 * "\r\n". Returns false when no text is left. */
static bool
next_line(const char **cur, const char *end, span *line)
{
    const char *p = *cur;
    if (p >= end) {
        return false;
    }
    const char *nl = memchr(p, '\n', (size_t) (end - p));
    const char *stop = nl ? nl : end;
    *cur = nl ? nl + 1 : end;
    if (stop > p && stop[-1] == '\r') {
        stop--;
    }
    line->p = p;
    line->n = (size_t) (stop - p);
    return true;
}

/* Takes the next blank-separated word of `rest` into `tok` and advances
 * `rest` past it. Returns false when only blanks are left. */
static bool
next_word(span *rest, span *tok)
{
    size_t i = 0;
    while (i < rest->n && is_blank(rest->p[i])) {
        i++;
    }
    if (i == rest->n) {
        rest->p += i;
        rest->n = 0;
        return false;
    }
    size_t start = i;
    while (i < rest->n && !is_blank(rest->p[i])) {
        i++;
    }
    tok->p = rest->p + start;
    tok->n = i - start;
    rest->p += i;
    rest->n -= i;
    return true;
}

/* Like next_word, but a word starting with '#' or ';' ends the line. */
static bool
next_arg(span *rest, span *tok)
{
    if (!next_word(rest, tok)) {
        return false;
    }
    if (is_comment(tok->p[0])) {
        rest->n = 0;
        return false;
    }
    return true;
}

/* Whether `line` starts with `kw` followed by a blank; if so, `rest` is what
 * follows the keyword. As glibc's MATCH: the keyword sits in column 0. */
static bool
match_keyword(span line, const char *kw, span *rest)
{
    size_t k = strlen(kw);
    if (line.n <= k || memcmp(line.p, kw, k) != 0 || !is_blank(line.p[k])) {
        return false;
    }
    rest->p = line.p + k;
    rest->n = line.n - k;
    return true;
}

/* Parses an IP literal ("10.0.0.1", "::1", "fe80::1%eth0") with `port`. */
static int
parse_ip(span tok, uint16_t port, blz_addr *out)
{
    char buf[IP_TEXT_MAX];
    if (tok.n == 0 || tok.n >= sizeof buf || memchr(tok.p, '\0', tok.n)) {
        return -EINVAL;
    }
    memcpy(buf, tok.p, tok.n);
    buf[tok.n] = '\0';
    int rc = blz_addr_from_ip(buf, port, out);
    if (rc < 0) {
        return rc;
    }
    return blz_addr_set_port(out, port);
}

/* Parses a decimal number of one or more digits, saturating at `cap`.
 * Returns false for anything else (sign, empty, trailing bytes). */
static bool
parse_count(span s, unsigned cap, unsigned *out)
{
    if (s.n == 0) {
        return false;
    }
    unsigned v = 0;
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        if (c < '0' || c > '9') {
            return false;
        }
        if (v <= cap) {
            v = v * 10u + (unsigned) (c - '0');
        }
    }
    *out = v > cap ? cap : v;
    return true;
}

/* Whether `tok` is "name:" followed by something; `val` is the something
 * (possibly empty). */
static bool
match_option(span tok, const char *name, span *val)
{
    size_t k = strlen(name);
    if (tok.n < k || memcmp(tok.p, name, k) != 0) {
        return false;
    }
    val->p = tok.p + k;
    val->n = tok.n - k;
    return true;
}

/* Appends a search domain, dropping one trailing dot; skips an empty or a
 * too long one, or one past the sixth. */
static void
search_add(blz__dns_conf *c, span d)
{
    if (d.n > 0 && d.p[d.n - 1] == '.') {
        d.n--;
    }
    if (d.n == 0 || d.n > BLZ__DNS_SEARCH_LEN || c->nsearch >= BLZ__DNS_MAX_SEARCH ||
        memchr(d.p, '\0', d.n)) {
        return;
    }
    memcpy(c->search[c->nsearch], d.p, d.n);
    c->search[c->nsearch][d.n] = '\0';
    c->nsearch++;
}

/* "search d1 d2 ..." or, with `first_only`, "domain d" (later words ignored).
 * A line with no word is ignored, as in glibc; otherwise the list is
 * replaced, even if every word on the line is then skipped. */
static void
parse_search(blz__dns_conf *c, span rest, bool first_only)
{
    span tok;
    if (!next_arg(&rest, &tok)) {
        return;
    }
    c->nsearch = 0;
    memset(c->search, 0, sizeof c->search);
    do {
        search_add(c, tok);
    } while (!first_only && next_arg(&rest, &tok));
}

static void
parse_options(blz__dns_conf *c, span rest)
{
    span tok, val;
    unsigned v;
    while (next_arg(&rest, &tok)) {
        if (match_option(tok, "ndots:", &val)) {
            if (parse_count(val, NDOTS_MAX, &v)) {
                c->ndots = v;
            }
        } else if (match_option(tok, "timeout:", &val)) {
            if (parse_count(val, TIMEOUT_MAX, &v)) {
                c->timeout_ms = (v == 0 ? 1u : v) * 1000u;
            }
        } else if (match_option(tok, "attempts:", &val)) {
            if (parse_count(val, ATTEMPTS_MAX, &v)) {
                c->attempts = v == 0 ? 1u : v;
            }
        } else if (tok.n == 6 && memcmp(tok.p, "rotate", 6) == 0) {
            c->rotate = true;
        }
        /* Other options (edns0, single-request, ...) are not ours to honour. */
    }
}

void
blz__dns_conf_default(blz__dns_conf *out)
{
    if (!out) {
        return;
    }
    memset(out, 0, sizeof *out);
    (void) blz_addr_from_ip("127.0.0.1", DNS_PORT, &out->servers[0]);
    out->nservers = 1;
    out->nsearch = 0;
    out->ndots = 1;
    out->timeout_ms = 5000;
    out->attempts = 2;
    out->rotate = false;
}

int
blz__dns_conf_parse(const char *text, size_t len, blz__dns_conf *out)
{
    if (!text || !out) {
        return -EINVAL;
    }
    blz__dns_conf c;
    blz__dns_conf_default(&c);
    unsigned nservers = 0; /* from the text; the default stands while 0 */
    const char *cur = text, *end = text + len;
    span line, rest, tok;
    while (next_line(&cur, end, &line)) {
        if (line.n == 0 || is_comment(line.p[0])) {
            continue;
        }
        if (match_keyword(line, "nameserver", &rest)) {
            blz_addr a;
            if (nservers < BLZ__DNS_MAX_SERVERS && next_arg(&rest, &tok) &&
                parse_ip(tok, DNS_PORT, &a) == 0) {
                c.servers[nservers++] = a;
            }
        } else if (match_keyword(line, "search", &rest)) {
            parse_search(&c, rest, false);
        } else if (match_keyword(line, "domain", &rest)) {
            parse_search(&c, rest, true);
        } else if (match_keyword(line, "options", &rest)) {
            parse_options(&c, rest);
        }
        /* Anything else (sortlist, lookup, typos) is ignored, as in glibc. */
    }
    if (nservers > 0) {
        for (unsigned i = nservers; i < BLZ__DNS_MAX_SERVERS; i++) {
            memset(&c.servers[i], 0, sizeof c.servers[i]);
        }
        c.nservers = nservers;
    }
    *out = c;
    return 0;
}

/* Whether hosts-file word `w` names `name` (`nlen` bytes, its trailing dot
 * already dropped): ASCII case-insensitive, one trailing dot on `w` ignored. */
static bool
host_name_eq(span w, const char *name, size_t nlen)
{
    if (w.n > 0 && w.p[w.n - 1] == '.') {
        w.n--;
    }
    if (w.n != nlen) {
        return false;
    }
    for (size_t i = 0; i < nlen; i++) {
        if (ascii_lower((unsigned char) w.p[i]) != ascii_lower((unsigned char) name[i])) {
            return false;
        }
    }
    return true;
}

int
blz__dns_hosts_lookup(const char *text, size_t len, const char *name, blz_addr *out, size_t max)
{
    if (!text || !name || !out) {
        return -EINVAL;
    }
    size_t nlen = strlen(name);
    if (nlen > 0 && name[nlen - 1] == '.') {
        nlen--;
    }
    if (nlen == 0) {
        return 0; /* "" and "." name no host */
    }
    size_t cap = max < (size_t) INT_MAX ? max : (size_t) INT_MAX;
    size_t found = 0;
    const char *cur = text, *end = text + len;
    span line, tok;
    while (found < cap && next_line(&cur, end, &line)) {
        /* A comment runs from the first '#' or ';' to the end of the line. */
        for (size_t i = 0; i < line.n; i++) {
            if (is_comment(line.p[i])) {
                line.n = i;
                break;
            }
        }
        span rest = line;
        blz_addr a;
        if (!next_word(&rest, &tok) || parse_ip(tok, 0, &a) < 0) {
            continue;
        }
        while (next_word(&rest, &tok)) {
            if (host_name_eq(tok, name, nlen)) {
                out[found++] = a;
                break; /* one address per line, however often it names us */
            }
        }
    }
    return (int) found;
}
