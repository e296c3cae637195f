/*
 * Internal: the native resolver's configuration, read from resolv.conf text,
 * and lookups in hosts-file text. Pure functions over text, no I/O.
 */
#ifndef BLZ_NET_DNS_CONF_H
#define BLZ_NET_DNS_CONF_H

#include "blitzio/net.h"

#include <stdbool.h>
#include <stddef.h>

#define BLZ__DNS_MAX_SERVERS 3 /* resolv.conf's MAXNS */
#define BLZ__DNS_MAX_SEARCH  6
#define BLZ__DNS_SEARCH_LEN  253

typedef struct blz__dns_conf {
    blz_addr servers[BLZ__DNS_MAX_SERVERS]; /* port 53 */
    unsigned nservers;
    char search[BLZ__DNS_MAX_SEARCH][BLZ__DNS_SEARCH_LEN + 1]; /* no trailing dot */
    unsigned nsearch;
    unsigned ndots;      /* default 1, at most 15 */
    unsigned timeout_ms; /* default 5000; "timeout:N" seconds, at most 30 */
    unsigned attempts;   /* default 2; at most 5 */
    bool rotate;         /* "options rotate" */
} blz__dns_conf;

/*
 * Reads resolv.conf text (`len` bytes, not NUL-terminated) into `out`, as
 * glibc does: "nameserver ADDR" (IPv4 or IPv6, with a scope on IPv6; up to
 * three, later ones ignored, bad ones skipped), "search d1 d2 ..." and
 * "domain d" (the last of the two wins; "domain" is a one-entry search
 * list), "options" with ndots:N, timeout:N, attempts:N, rotate (others
 * ignored); '#' and ';' start comments; unknown lines are ignored. No
 * nameserver at all: 127.0.0.1. Returns 0, or -EINVAL for a NULL argument.
 */
int blz__dns_conf_parse(const char *text, size_t len, blz__dns_conf *out);

/* The defaults blz__dns_conf_parse starts from (what an empty file gives). */
void blz__dns_conf_default(blz__dns_conf *out);

/*
 * Looks `name` up in hosts-file text (`len` bytes): every address on a line
 * whose names (canonical name and aliases) include `name`, compared
 * case-insensitively with one trailing dot ignored, in file order, at most
 * `max`, port 0. Returns how many (0: not there), or -EINVAL for NULL
 * arguments.
 */
int blz__dns_hosts_lookup(const char *text, size_t len, const char *name, blz_addr *out,
                          size_t max);

#endif
