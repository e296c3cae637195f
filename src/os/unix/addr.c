/*
 * Socket addresses: parsing, formatting and conversion (POSIX sockaddr).
 *
 * Invariants:
 * - A blz_addr holds a sockaddr_in, sockaddr_in6 or sockaddr_un in `sa_`,
 *   zero-filled past `len_`, so that equal addresses compare equal bytewise
 *   where the comparison is bytewise (IPv4, Unix).
 * - A Unix path address always counts its terminating NUL in `len_`, but
 *   for a path that fills sun_path, which only the kernel gives us (a peer
 *   bound so): no NUL fits, and the byte after it in `sa_` is zero; an
 *   abstract one counts exactly its name (Linux semantics); an unnamed one is
 *   just the family.
 * - The parser reads only the `n` bytes it is given, rejects what it does not
 *   understand with -EINVAL, and has no state: safe on hostile input (see
 *   tests/fuzz/addr_fuzz.c). Formatting is the parser's inverse.
 */
#include "blitzio/net.h"
#include "os/unix/sys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

_Static_assert(sizeof(struct sockaddr_storage) <= sizeof(((blz_addr *) 0)->sa_.bytes_),
               "blz_addr holds any sockaddr");
_Static_assert(_Alignof(struct sockaddr_storage) <= _Alignof(blz_addr), "blz_addr alignment");

#define SUN_PATH_OFF offsetof(struct sockaddr_un, sun_path)
#define SUN_PATH_MAX sizeof(((struct sockaddr_un *) 0)->sun_path)

static void
addr_clear(blz_addr *a)
{
    memset(a, 0, sizeof *a);
}

static int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Decimal port, 1..5 digits, <= 65535. */
static int
parse_port(const char *s, size_t n, uint16_t *out)
{
    if (n == 0 || n > 5) {
        return -EINVAL;
    }
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i])) {
            return -EINVAL;
        }
        v = v * 10 + (uint32_t) (s[i] - '0');
    }
    if (v > 65535) {
        return -EINVAL;
    }
    *out = (uint16_t) v;
    return 0;
}

/* Dotted quad, exactly four parts of 0..255 without leading zeros. */
static int
parse_ipv4(const char *s, size_t n, struct in_addr *out)
{
    uint32_t parts[4];
    size_t i = 0;
    for (int p = 0; p < 4; p++) {
        if (p > 0) {
            if (i >= n || s[i] != '.') {
                return -EINVAL;
            }
            i++;
        }
        size_t start = i;
        uint32_t v = 0;
        while (i < n && is_digit(s[i]) && i - start < 3) {
            v = v * 10 + (uint32_t) (s[i] - '0');
            i++;
        }
        size_t len = i - start;
        if (len == 0 || v > 255 || (len > 1 && s[start] == '0')) {
            return -EINVAL;
        }
        parts[p] = v;
    }
    if (i != n) {
        return -EINVAL;
    }
    out->s_addr = htonl((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]);
    return 0;
}

/* An IPv6 scope: a decimal index or an interface name. */
static int
parse_scope(const char *s, size_t n, uint32_t *out)
{
    if (n == 0 || n >= IF_NAMESIZE) {
        return -EINVAL;
    }
    int digits = 1;
    for (size_t i = 0; i < n; i++) {
        digits &= is_digit(s[i]);
    }
    if (digits) {
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++) {
            v = v * 10 + (uint64_t) (s[i] - '0');
        }
        if (v > UINT32_MAX) {
            return -EINVAL;
        }
        *out = (uint32_t) v;
        return 0;
    }
    char name[IF_NAMESIZE];
    memcpy(name, s, n);
    name[n] = '\0';
    unsigned idx = if_nametoindex(name);
    if (idx == 0) {
        return -EINVAL;
    }
    *out = idx;
    return 0;
}

/* "addr" or "addr%scope", no brackets. */
static int
parse_ipv6(const char *s, size_t n, struct in6_addr *out, uint32_t *scope)
{
    const char *pct = memchr(s, '%', n);
    size_t alen = pct ? (size_t) (pct - s) : n;
    char buf[INET6_ADDRSTRLEN];
    if (alen == 0 || alen >= sizeof buf) {
        return -EINVAL;
    }
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    if (inet_pton(AF_INET6, buf, out) != 1) {
        return -EINVAL;
    }
    *scope = 0;
    if (pct) {
        return parse_scope(pct + 1, n - alen - 1, scope);
    }
    return 0;
}

static void
set_in4(blz_addr *a, struct in_addr ip, uint16_t port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *) (void *) a->sa_.bytes_;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    sin->sin_addr = ip;
    a->len_ = sizeof *sin;
}

static void
set_in6(blz_addr *a, const struct in6_addr *ip, uint16_t port, uint32_t scope)
{
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) (void *) a->sa_.bytes_;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    sin6->sin6_addr = *ip;
    sin6->sin6_scope_id = scope;
    a->len_ = sizeof *sin6;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* An abstract name with \xNN and \\ escapes. */
static int
parse_abstract(const char *s, size_t n, blz_addr *out)
{
    unsigned char name[SUN_PATH_MAX];
    size_t len = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char) s[i];
        if (c == '\\') {
            if (i + 1 < n && s[i + 1] == '\\') {
                c = '\\';
                i += 2;
            } else if (i + 3 < n && s[i + 1] == 'x' && hexval(s[i + 2]) >= 0 &&
                       hexval(s[i + 3]) >= 0) {
                c = (unsigned char) (hexval(s[i + 2]) * 16 + hexval(s[i + 3]));
                i += 4;
            } else {
                return -EINVAL;
            }
        } else {
            i++;
        }
        if (len >= SUN_PATH_MAX - 1) {
            return -ENAMETOOLONG;
        }
        name[len++] = c;
    }
    return blz_addr_from_abstract(name, len, out);
}

static int
parse_unix_n(const char *s, size_t n, blz_addr *out)
{
    if (n == 0) {
        return -EINVAL;
    }
    if (s[0] == '@') {
        return parse_abstract(s + 1, n - 1, out);
    }
    if (n >= SUN_PATH_MAX) {
        return -ENAMETOOLONG;
    }
    addr_clear(out);
    struct sockaddr_un *sun = (struct sockaddr_un *) (void *) out->sa_.bytes_;
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, s, n);
    out->len_ = (uint32_t) (SUN_PATH_OFF + n + 1);
    return 0;
}

int
blz_addr_parse_n(const char *s, size_t n, blz_addr *out)
{
    if (!s || !out) {
        return -EINVAL;
    }
    addr_clear(out);
    if (n == 0 || memchr(s, '\0', n)) {
        return -EINVAL;
    }
    if (n >= 5 && memcmp(s, "unix:", 5) == 0) {
        return parse_unix_n(s + 5, n - 5, out);
    }
    if (s[0] == '/' || s[0] == '@' || (n >= 2 && s[0] == '.' && s[1] == '/') ||
        (n >= 3 && s[0] == '.' && s[1] == '.' && s[2] == '/')) {
        return parse_unix_n(s, n, out);
    }
    uint16_t port;
    int rc;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close || (size_t) (close - s) + 1 >= n || close[1] != ':') {
            return -EINVAL;
        }
        size_t hlen = (size_t) (close - s) - 1;
        const char *ps = close + 2;
        size_t plen = n - (size_t) (ps - s);
        struct in6_addr ip6;
        uint32_t scope;
        if ((rc = parse_port(ps, plen, &port)) < 0 ||
            (rc = parse_ipv6(s + 1, hlen, &ip6, &scope)) < 0) {
            addr_clear(out);
            return rc;
        }
        set_in6(out, &ip6, port, scope);
        return 0;
    }
    const char *colon = memchr(s, ':', n);
    if (!colon || memchr(colon + 1, ':', n - (size_t) (colon - s) - 1)) {
        return -EINVAL; /* no port, or an IPv6 address without brackets */
    }
    struct in_addr ip4;
    size_t hlen = (size_t) (colon - s);
    if ((rc = parse_port(colon + 1, n - hlen - 1, &port)) < 0 ||
        (rc = parse_ipv4(s, hlen, &ip4)) < 0) {
        return rc;
    }
    set_in4(out, ip4, port);
    return 0;
}

int
blz_addr_parse(const char *s, blz_addr *out)
{
    if (!s || !out) {
        if (out) {
            addr_clear(out);
        }
        return -EINVAL;
    }
    return blz_addr_parse_n(s, strlen(s), out);
}

int
blz_addr_from_ip(const char *ip, uint16_t port, blz_addr *out)
{
    if (!ip || !out) {
        return -EINVAL;
    }
    addr_clear(out);
    size_t n = strlen(ip);
    struct in_addr ip4;
    if (parse_ipv4(ip, n, &ip4) == 0) {
        set_in4(out, ip4, port);
        return 0;
    }
    struct in6_addr ip6;
    uint32_t scope;
    int rc = parse_ipv6(ip, n, &ip6, &scope);
    if (rc < 0) {
        return rc;
    }
    set_in6(out, &ip6, port, scope);
    return 0;
}

int
blz_addr_from_ip_bytes(const void *ip, size_t len, uint16_t port, blz_addr *out)
{
    if (!ip || !out || (len != 4 && len != 16)) {
        return -EINVAL;
    }
    addr_clear(out);
    if (len == 4) {
        struct in_addr ip4;
        memcpy(&ip4, ip, 4);
        set_in4(out, ip4, port);
    } else {
        struct in6_addr ip6;
        memcpy(&ip6, ip, 16);
        set_in6(out, &ip6, port, 0);
    }
    return 0;
}

int
blz_addr_ip_bytes(const blz_addr *a, unsigned char out[16])
{
    if (!out) {
        return -EINVAL;
    }
    switch (blz_addr_get_family(a)) {
    case BLZ_AF_INET:
        memcpy(out, &((const struct sockaddr_in *) (const void *) a->sa_.bytes_)->sin_addr, 4);
        return 4;
    case BLZ_AF_INET6:
        memcpy(out, &((const struct sockaddr_in6 *) (const void *) a->sa_.bytes_)->sin6_addr, 16);
        return 16;
    default:
        return -EINVAL;
    }
}

/* The IP of `a` in 16 bytes, an IPv4 one as its IPv4-mapped IPv6 form
 * (::ffff:a.b.c.d), so one set of tests below serves both. False when `a`
 * is no IP address. */
static bool
ip16(const blz_addr *a, unsigned char ip[16])
{
    unsigned char raw[16];
    int n = blz_addr_ip_bytes(a, raw);
    if (n == 4) {
        memset(ip, 0, 10);
        ip[10] = ip[11] = 0xff;
        memcpy(ip + 12, raw, 4);
        return true;
    }
    if (n == 16) {
        memcpy(ip, raw, 16);
        return true;
    }
    return false;
}

static bool
v4_mapped(const unsigned char ip[16])
{
    static const unsigned char prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(ip, prefix, 12) == 0;
}

bool
blz_addr_is_loopback(const blz_addr *a)
{
    unsigned char ip[16];
    if (!ip16(a, ip)) {
        return false;
    }
    if (v4_mapped(ip)) {
        return ip[12] == 127; /* 127.0.0.0/8 */
    }
    static const unsigned char one[16] = {[15] = 1};
    return memcmp(ip, one, 16) == 0; /* ::1 */
}

bool
blz_addr_is_unspecified(const blz_addr *a)
{
    unsigned char ip[16];
    if (!ip16(a, ip)) {
        return false;
    }
    static const unsigned char zero[16] = {0};
    /* 0.0.0.0 (as an IPv4 address, not the mapped ::ffff:0.0.0.0) or :: */
    if (blz_addr_get_family(a) == BLZ_AF_INET) {
        return memcmp(ip + 12, zero, 4) == 0;
    }
    return memcmp(ip, zero, 16) == 0;
}

bool
blz_addr_is_multicast(const blz_addr *a)
{
    unsigned char ip[16];
    if (!ip16(a, ip)) {
        return false;
    }
    if (v4_mapped(ip)) {
        return (ip[12] & 0xf0) == 224; /* 224.0.0.0/4 */
    }
    return ip[0] == 0xff; /* ff00::/8 */
}

int
blz_addr_from_unix(const char *path, blz_addr *out)
{
    if (!path || !out) {
        return -EINVAL;
    }
    addr_clear(out);
    size_t n = strlen(path);
    if (n > 0 && path[0] == '@') {
        return blz_addr_from_abstract(path + 1, n - 1, out);
    }
    return parse_unix_n(path, n, out);
}

int
blz_addr_from_abstract(const void *name, size_t len, blz_addr *out)
{
    if (!out) {
        return -EINVAL;
    }
    addr_clear(out);
    if (!name || len == 0) {
        return -EINVAL;
    }
    if (len > SUN_PATH_MAX - 1) {
        return -ENAMETOOLONG;
    }
    struct sockaddr_un *sun = (struct sockaddr_un *) (void *) out->sa_.bytes_;
    sun->sun_family = AF_UNIX;
    sun->sun_path[0] = '\0';
    memcpy(sun->sun_path + 1, name, len);
    out->len_ = (uint32_t) (SUN_PATH_OFF + 1 + len);
    return 0;
}

/* Appends to buf, tracking the length that would have been written. */
typedef struct fmt_buf {
    char *buf;
    size_t cap;
    size_t len;
} fmt_buf;

static void
fmt_put(fmt_buf *f, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (f->len + 1 < f->cap) {
            f->buf[f->len] = s[i];
        }
        f->len++;
    }
}

static void
fmt_str(fmt_buf *f, const char *s)
{
    fmt_put(f, s, strlen(s));
}

static int
fmt_end(fmt_buf *f)
{
    if (f->len + 1 > f->cap) {
        if (f->cap) {
            f->buf[0] = '\0';
        }
        return -ENOSPC;
    }
    f->buf[f->len] = '\0';
    return (int) f->len;
}

/* `buf` is written through a fmt_buf, which the const check cannot see. */
// NOLINTBEGIN(readability-non-const-parameter)
int
blz_addr_format(const blz_addr *a, char *buf, size_t cap)
// NOLINTEND(readability-non-const-parameter)
{
    if (!a || !buf) {
        return -EINVAL;
    }
    fmt_buf f = {buf, cap, 0};
    char tmp[INET6_ADDRSTRLEN + 32];
    switch (blz_addr_get_family(a)) {
    case BLZ_AF_INET: {
        const struct sockaddr_in *sin = (const struct sockaddr_in *) (const void *) a->sa_.bytes_;
        if (!inet_ntop(AF_INET, &sin->sin_addr, tmp, sizeof tmp)) {
            return -EINVAL;
        }
        fmt_str(&f, tmp);
        (void) snprintf(tmp, sizeof tmp, ":%u", (unsigned) ntohs(sin->sin_port));
        fmt_str(&f, tmp);
        return fmt_end(&f);
    }
    case BLZ_AF_INET6: {
        const struct sockaddr_in6 *sin6 =
            (const struct sockaddr_in6 *) (const void *) a->sa_.bytes_;
        if (!inet_ntop(AF_INET6, &sin6->sin6_addr, tmp, sizeof tmp)) {
            return -EINVAL;
        }
        fmt_str(&f, "[");
        fmt_str(&f, tmp);
        if (sin6->sin6_scope_id) {
            (void) snprintf(tmp, sizeof tmp, "%%%u", (unsigned) sin6->sin6_scope_id);
            fmt_str(&f, tmp);
        }
        (void) snprintf(tmp, sizeof tmp, "]:%u", (unsigned) ntohs(sin6->sin6_port));
        fmt_str(&f, tmp);
        return fmt_end(&f);
    }
    case BLZ_AF_UNIX: {
        const struct sockaddr_un *sun = (const struct sockaddr_un *) (const void *) a->sa_.bytes_;
        size_t plen = a->len_ > SUN_PATH_OFF ? a->len_ - SUN_PATH_OFF : 0;
        fmt_str(&f, "unix:");
        if (plen == 0) {
            return fmt_end(&f);
        }
        if (sun->sun_path[0] != '\0') {
            fmt_put(&f, sun->sun_path, strnlen(sun->sun_path, plen));
            return fmt_end(&f);
        }
        fmt_str(&f, "@");
        for (size_t i = 1; i < plen; i++) {
            unsigned char c = (unsigned char) sun->sun_path[i];
            if (c == '\\') {
                fmt_str(&f, "\\\\");
            } else if (c < 0x20 || c >= 0x7f) {
                (void) snprintf(tmp, sizeof tmp, "\\x%02x", (unsigned) c);
                fmt_str(&f, tmp);
            } else {
                fmt_put(&f, (const char *) &c, 1);
            }
        }
        return fmt_end(&f);
    }
    default:
        return -EINVAL;
    }
}

blz_addr_family
blz_addr_get_family(const blz_addr *a)
{
    if (!a || a->len_ < sizeof(sa_family_t)) {
        return BLZ_AF_UNSPEC;
    }
    const struct sockaddr *sa = (const struct sockaddr *) (const void *) a->sa_.bytes_;
    switch (sa->sa_family) {
    case AF_INET:
        return BLZ_AF_INET;
    case AF_INET6:
        return BLZ_AF_INET6;
    case AF_UNIX:
        return BLZ_AF_UNIX;
    default:
        return BLZ_AF_UNSPEC;
    }
}

int
blz_addr_port(const blz_addr *a)
{
    switch (blz_addr_get_family(a)) {
    case BLZ_AF_INET:
        return ntohs(((const struct sockaddr_in *) (const void *) a->sa_.bytes_)->sin_port);
    case BLZ_AF_INET6:
        return ntohs(((const struct sockaddr_in6 *) (const void *) a->sa_.bytes_)->sin6_port);
    default:
        return -EINVAL;
    }
}

int
blz_addr_set_port(blz_addr *a, uint16_t port)
{
    switch (blz_addr_get_family(a)) {
    case BLZ_AF_INET:
        ((struct sockaddr_in *) (void *) a->sa_.bytes_)->sin_port = htons(port);
        return 0;
    case BLZ_AF_INET6:
        ((struct sockaddr_in6 *) (void *) a->sa_.bytes_)->sin6_port = htons(port);
        return 0;
    default:
        return -EINVAL;
    }
}

uint32_t
blz_addr_scope_id(const blz_addr *a)
{
    if (blz_addr_get_family(a) != BLZ_AF_INET6) {
        return 0;
    }
    return ((const struct sockaddr_in6 *) (const void *) a->sa_.bytes_)->sin6_scope_id;
}

bool
blz_addr_equal(const blz_addr *a, const blz_addr *b)
{
    blz_addr_family fa = blz_addr_get_family(a);
    if (fa != blz_addr_get_family(b) || fa == BLZ_AF_UNSPEC) {
        return false;
    }
    if (fa == BLZ_AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *) (const void *) a->sa_.bytes_;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *) (const void *) b->sa_.bytes_;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    if (fa == BLZ_AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *) (const void *) a->sa_.bytes_;
        const struct sockaddr_in *y = (const struct sockaddr_in *) (const void *) b->sa_.bytes_;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    return a->len_ == b->len_ && memcmp(a->sa_.bytes_, b->sa_.bytes_, a->len_) == 0;
}

const void *
blz_addr_sockaddr(const blz_addr *a, size_t *len)
{
    if (!a || a->len_ == 0) {
        if (len) {
            *len = 0;
        }
        return NULL;
    }
    if (len) {
        *len = a->len_;
    }
    return a->sa_.bytes_;
}

int
blz_addr_from_sockaddr(const void *sa, size_t len, blz_addr *out)
{
    if (!out) {
        return -EINVAL;
    }
    addr_clear(out);
    if (!sa || len < sizeof(sa_family_t) || len > sizeof out->sa_.bytes_) {
        return -EINVAL;
    }
    sa_family_t fam;
    memcpy(&fam, sa, sizeof fam);
    switch (fam) {
    case AF_INET:
        if (len < sizeof(struct sockaddr_in)) {
            return -EINVAL;
        }
        memcpy(out->sa_.bytes_, sa, sizeof(struct sockaddr_in));
        out->len_ = sizeof(struct sockaddr_in);
        memset(((struct sockaddr_in *) (void *) out->sa_.bytes_)->sin_zero, 0, 8);
        return 0;
    case AF_INET6:
        if (len < sizeof(struct sockaddr_in6)) {
            return -EINVAL;
        }
        memcpy(out->sa_.bytes_, sa, sizeof(struct sockaddr_in6));
        out->len_ = sizeof(struct sockaddr_in6);
        return 0;
    case AF_UNIX: {
        if (len > sizeof(struct sockaddr_un)) {
            len = sizeof(struct sockaddr_un);
        }
        memcpy(out->sa_.bytes_, sa, len);
        const struct sockaddr_un *sun = (const struct sockaddr_un *) (const void *) out->sa_.bytes_;
        if (len > SUN_PATH_OFF && sun->sun_path[0] != '\0') {
            /* A path: normalise to "counts its NUL" whatever the kernel said.
             * A path of all of sun_path's bytes (Linux binds one) is kept
             * whole, without a NUL: cutting it would name another file. */
            size_t plen = strnlen(sun->sun_path, len - SUN_PATH_OFF);
            memset(out->sa_.bytes_ + SUN_PATH_OFF + plen, 0,
                   sizeof out->sa_.bytes_ - SUN_PATH_OFF - plen);
            len = SUN_PATH_OFF + plen + (plen < SUN_PATH_MAX ? 1 : 0);
        }
        out->len_ = (uint32_t) len;
        return 0;
    }
    default:
        return -EINVAL;
    }
}
