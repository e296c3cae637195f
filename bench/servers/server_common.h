/*
 * bench/servers/server_common.h — what the hand-written reference servers
 * share: parse HOST:PORT (IPv4, or [IPv6]), open the listener and a signalfd
 * for SIGINT and SIGTERM, and print the bound address as "NAME: listening on
 * HOST:PORT", the first line bench/compare/net.sh reads.
 */
#ifndef BENCH_SERVER_COMMON_H
#define BENCH_SERVER_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

static int
server_parse_addr(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[256];
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t) (colon - text) >= sizeof host) {
        return -1;
    }
    memcpy(host, text, (size_t) (colon - text));
    host[colon - text] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || end == colon + 1 || port < 0 || port > 65535) {
        return -1;
    }
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *) ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *) ss;
    size_t hl = strlen(host);
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t) port);
        *len = sizeof *v4;
        return 0;
    }
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &v6->sin6_addr) == 1) {
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons((uint16_t) port);
            *len = sizeof *v6;
            return 0;
        }
    }
    return -1;
}

static void
server_print_bound(int fd, const char *name)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (getsockname(fd, (struct sockaddr *) &ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *v4 = (struct sockaddr_in *) &ss;
            inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
            port = ntohs(v4->sin_port);
        } else {
            struct sockaddr_in6 *v6 = (struct sockaddr_in6 *) &ss;
            inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
            port = ntohs(v6->sin6_port);
        }
    }
    printf(ss.ss_family == AF_INET6 ? "%s: listening on [%s]:%u\n" : "%s: listening on %s:%u\n",
           name, host, port);
    fflush(stdout);
}

/*
 * Parses the command line ([HOST:PORT], default 127.0.0.1:8080), blocks SIGINT
 * and SIGTERM into a signalfd (*sfd) and opens a listening socket (*lfd), with
 * `sock_flags` and `sfd_flags` added (SOCK_NONBLOCK, SFD_NONBLOCK, or none).
 * Returns 0, or the exit status after saying why on stderr.
 */
static int
server_start(int argc, char **argv, const char *name, int sock_flags, int sfd_flags, int *lfd,
             int *sfd)
{
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:8080";
    struct sockaddr_storage ss;
    socklen_t len;
    if (argc > 2 || server_parse_addr(addr, &ss, &len) < 0) {
        fprintf(stderr, "usage: %s [HOST:PORT]   (IPv4, or [IPv6]; port 0 picks one)\n", argv[0]);
        return 2;
    }
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    int one = 1;
    *sfd = *lfd = -1;
    if (sigprocmask(SIG_BLOCK, &stop, NULL) < 0 ||
        (*sfd = signalfd(-1, &stop, SFD_CLOEXEC | sfd_flags)) < 0 ||
        (*lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | sock_flags, 0)) < 0 ||
        setsockopt(*lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(*lfd, (struct sockaddr *) &ss, len) < 0 || listen(*lfd, 4096) < 0) {
        fprintf(stderr, "%s: %s: %s\n", name, addr, strerror(errno));
        return 1;
    }
    return 0;
}

#endif
