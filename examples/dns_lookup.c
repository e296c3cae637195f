/*
 * examples/dns_lookup.c — look names up with the native resolver, all at once.
 *
 *   build/examples/dns_lookup [--server ADDR:PORT] NAME...
 *
 * One fiber per name, each calling blz_dns_resolve: the lookups wait on
 * their sockets side by side, no thread blocks. Without --server the names
 * go through /etc/hosts and the servers of /etc/resolv.conf (its search
 * list, ndots, timeout and attempts); with it, straight to that server.
 * Exits 0 if every name resolved, 1 otherwise.
 */
#include "blitzio.h"
#include "blitzio/net.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define MAX_NAMES 64

typedef struct lookup {
    const char *name;
    const blz_dns_options *opts;
    int count; /* addresses found, or -errno */
    blz_addr addrs[16];
} lookup;

static void *
resolve_one(void *arg)
{
    lookup *l = arg;
    l->count = blz_dns_resolve(l->name, 0, l->opts, l->addrs, 16);
    return NULL;
}

typedef struct job {
    lookup *lookups;
    int n;
} job;

static void *
resolve_all(void *arg)
{
    job *jb = arg;
    blz_join *joins[MAX_NAMES];
    int started = 0;
    for (int i = 0; i < jb->n; i++) {
        if (blz_spawn(resolve_one, &jb->lookups[i], &joins[started]) == 0) {
            started++;
        } else {
            jb->lookups[i].count = -ENOMEM;
        }
    }
    for (int i = 0; i < started; i++) {
        (void) blz_join_wait(joins[i], NULL);
    }
    return NULL;
}

int
main(int argc, char **argv)
{
    blz_dns_options opts = {0};
    blz_addr server;
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "--server") == 0) {
        if (blz_addr_parse(argv[2], &server) < 0) {
            fprintf(stderr, "dns_lookup: bad server address '%s'\n", argv[2]);
            return 2;
        }
        opts.servers = &server;
        opts.nservers = 1;
        opts.hosts = ""; /* ask the server, not the hosts file */
        first = 3;
    }
    int n = argc - first;
    if (n < 1 || n > MAX_NAMES) {
        fprintf(stderr, "usage: dns_lookup [--server ADDR:PORT] NAME... (1 to %d names)\n",
                MAX_NAMES);
        return 2;
    }
    static lookup lookups[MAX_NAMES];
    for (int i = 0; i < n; i++) {
        lookups[i] = (lookup){.name = argv[first + i], .opts = &opts};
    }
    job jb = {lookups, n};
    int rc = blz_run(resolve_all, &jb);
    if (rc < 0) {
        fprintf(stderr, "dns_lookup: %s\n", blz_strerror(rc));
        return 1;
    }
    int failed = 0;
    for (int i = 0; i < n; i++) {
        const lookup *l = &lookups[i];
        if (l->count < 0) {
            printf("%s: %s\n", l->name,
                   l->count == -ENOENT ? "no such name" : blz_strerror(l->count));
            failed = 1;
            continue;
        }
        printf("%s:", l->name);
        for (int k = 0; k < l->count; k++) {
            char text[BLZ_ADDR_STRLEN];
            if (blz_addr_format(&l->addrs[k], text, sizeof text) > 0) {
                /* The port is 0: print the address alone. */
                char *colon = strrchr(text, ':');
                if (colon) {
                    *colon = '\0';
                }
                printf(" %s", text);
            }
        }
        printf("\n");
    }
    return failed;
}
