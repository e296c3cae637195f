/*
 * bench/servers/libuv_echo.c — the libuv echo server of the echo comparison (issue 7),
 * written the way libuv's documentation teaches: uv_tcp_t handles, uv_read_start, and
 * one uv_write_t request per write.
 *
 *   bench_server_libuv [HOST:PORT]     (default 127.0.0.1:8080; port 0 picks one)
 *
 * On start it prints "libuv_echo: listening on HOST:PORT" as its first line on stdout
 * (the convention of bench/compare/net.sh), then serves until SIGINT or SIGTERM
 * (uv_signal_t), which close every handle so that uv_run returns.
 *
 * Ownership: each read gets a fresh `chunk` (a write request with its 16 KiB buffer
 * behind it) from alloc_cb. A read that returns data hands the chunk to uv_write, and
 * write_cb frees it; any other read frees it at once. So every byte in flight is owned
 * by exactly one write request, and nothing is copied.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define BUF_SIZE (16 * 1024) /* the read size of every server in the comparison */

typedef struct chunk {
    uv_write_t req; /* req.data unused; the chunk is recovered by its first member */
    char data[BUF_SIZE];
} chunk;

static uv_loop_t *loop;
static uv_tcp_t listener;
static uv_signal_t sig_int, sig_term;

static void
alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void) h;
    (void) suggested;
    chunk *c = malloc(sizeof *c);
    *buf = uv_buf_init(c ? c->data : NULL, c ? BUF_SIZE : 0); /* len 0: UV_ENOBUFS */
}

static void
free_handle(uv_handle_t *h)
{
    free(h);
}

static void
write_cb(uv_write_t *req, int status)
{
    uv_handle_t *h = (uv_handle_t *) req->handle;
    free((chunk *) req); /* req is the chunk's first member */
    if (status < 0 && status != UV_ECANCELED && !uv_is_closing(h)) {
        uv_close(h, free_handle);
    }
}

static void
read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    chunk *c = buf->base ? (chunk *) (buf->base - offsetof(chunk, data)) : NULL;
    if (n > 0) {
        uv_buf_t out = uv_buf_init(buf->base, (unsigned) n);
        if (uv_write(&c->req, s, &out, 1, write_cb) == 0) {
            return;
        }
        n = UV_EPIPE; /* could not queue the write: drop the connection */
    }
    free(c);
    if (n < 0 && !uv_is_closing((uv_handle_t *) s)) {
        uv_close((uv_handle_t *) s, free_handle); /* EOF or error; pending writes cancel */
    }
}

static void
on_connection(uv_stream_t *server, int status)
{
    if (status < 0) {
        fprintf(stderr, "libuv_echo: accept: %s\n", uv_strerror(status));
        return;
    }
    uv_tcp_t *client = malloc(sizeof *client);
    if (!client) {
        return;
    }
    if (uv_tcp_init(loop, client) < 0) {
        free(client);
        return;
    }
    if (uv_accept(server, (uv_stream_t *) client) < 0) {
        uv_close((uv_handle_t *) client, free_handle);
        return;
    }
    uv_tcp_nodelay(client, 1);
    if (uv_read_start((uv_stream_t *) client, alloc_cb, read_cb) < 0) {
        uv_close((uv_handle_t *) client, free_handle);
    }
}

/* Closes every handle; the heap-allocated ones (connections) are freed on close. */
static void
close_one(uv_handle_t *h, void *arg)
{
    (void) arg;
    if (uv_is_closing(h)) {
        return;
    }
    bool is_static = h == (uv_handle_t *) &listener || h == (uv_handle_t *) &sig_int ||
                     h == (uv_handle_t *) &sig_term;
    uv_close(h, is_static ? NULL : free_handle);
}

static void
on_signal(uv_signal_t *h, int signum)
{
    (void) h;
    fprintf(stderr, "libuv_echo: signal %d, stopping\n", signum);
    uv_walk(loop, close_one, NULL);
}

static int
print_bound(void)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char host[INET6_ADDRSTRLEN];
    int rc = uv_tcp_getsockname(&listener, (struct sockaddr *) &ss, &len);
    if (rc < 0) {
        return rc;
    }
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *) &ss;
        uv_ip6_name(v6, host, sizeof host);
        printf("libuv_echo: listening on [%s]:%u\n", host, ntohs(v6->sin6_port));
    } else {
        struct sockaddr_in *v4 = (struct sockaddr_in *) &ss;
        uv_ip4_name(v4, host, sizeof host);
        printf("libuv_echo: listening on %s:%u\n", host, ntohs(v4->sin_port));
    }
    fflush(stdout);
    return 0;
}

static int
parse_addr(const char *text, struct sockaddr_storage *ss)
{
    char host[256];
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t) (colon - text) >= sizeof host) {
        return UV_EINVAL;
    }
    memcpy(host, text, (size_t) (colon - text));
    host[colon - text] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || end == colon + 1 || port < 0 || port > 65535) {
        return UV_EINVAL;
    }
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        return uv_ip6_addr(host + 1, (int) port, (struct sockaddr_in6 *) ss);
    }
    return uv_ip4_addr(host, (int) port, (struct sockaddr_in *) ss);
}

int
main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:8080";
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (argc > 2 || parse_addr(addr, &ss) < 0) {
        fprintf(stderr, "usage: %s [HOST:PORT]   (IPv4, or [IPv6]; port 0 picks one)\n", argv[0]);
        return 2;
    }
    loop = uv_default_loop();
    int rc;
    if ((rc = uv_tcp_init(loop, &listener)) < 0 ||
        (rc = uv_tcp_bind(&listener, (const struct sockaddr *) &ss, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *) &listener, 4096, on_connection)) < 0 ||
        (rc = uv_signal_init(loop, &sig_int)) < 0 ||
        (rc = uv_signal_start(&sig_int, on_signal, SIGINT)) < 0 ||
        (rc = uv_signal_init(loop, &sig_term)) < 0 ||
        (rc = uv_signal_start(&sig_term, on_signal, SIGTERM)) < 0 || (rc = print_bound()) < 0) {
        fprintf(stderr, "libuv_echo: %s: %s\n", addr, uv_strerror(rc));
        return 1;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(loop);
    if (rc < 0) {
        fprintf(stderr, "libuv_echo: uv_loop_close: %s\n", uv_strerror(rc));
        return 1;
    }
    return 0;
}
