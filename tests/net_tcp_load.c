/*
 * TCP under load on loopback: 1,000 concurrent connections echoing verified
 * data. (256 MiB through one stream: net_tcp_bulk.c.)
 */
/* blz-test: timeout=120 */
#include "net_common.h"

#include <sys/resource.h>

/* ---- 1,000 concurrent connections ------------------------------------------------ */

#define NCONN     1000
#define NMSG      4
#define MSG_BYTES 512

typedef struct load_ctx {
    blz_tcp_listener *l;
    blz_addr addr;
    _Atomic int echoed; /* connections the server finished */
    _Atomic int clients_ok;
} load_ctx;

static load_ctx *g_load;

static void *
echo_conn(void *arg)
{
    blz_tcp_stream *s = arg;
    char buf[2048];
    for (;;) {
        ssize_t n = blz_tcp_read(s, buf, sizeof buf);
        if (n <= 0) {
            break;
        }
        if (blz_tcp_write_all(s, buf, (size_t) n) < 0) {
            break;
        }
    }
    blz_tcp_close(s);
    atomic_fetch_add(&g_load->echoed, 1);
    return NULL;
}

static void *
acceptor(void *arg)
{
    load_ctx *c = arg;
    for (;;) {
        blz_tcp_stream *s;
        int rc = blz_tcp_accept(c->l, &s, NULL);
        if (rc == -ECANCELED) {
            break; /* the listener was closed */
        }
        CHECK_OK(rc);
        CHECK_OK(blz_spawn(echo_conn, s, NULL));
    }
    return NULL;
}

static void *
client(void *arg)
{
    uint64_t id = (uint64_t) (uintptr_t) arg;
    blz_tcp_stream *s = NULL;
    CHECK_OK(blz_tcp_connect_addr(&g_load->addr, &s));
    unsigned char out[MSG_BYTES], in[MSG_BYTES];
    for (int m = 0; m < NMSG; m++) {
        net_fill(id, (uint64_t) m * MSG_BYTES, out, sizeof out);
        CHECK_OK(blz_tcp_write_all(s, out, sizeof out));
        CHECK_OK(net_read_exact(s, in, sizeof in));
        CHECK(memcmp(in, out, sizeof in) == 0);
        blz_yield(); /* interleave the connections more */
    }
    blz_tcp_close(s);
    atomic_fetch_add(&g_load->clients_ok, 1);
    return NULL;
}

static void *
thousand_main(void *arg)
{
    load_ctx *c = arg;
    c->l = net_listen_any(&c->addr);
    blz_join *acc;
    CHECK_OK(blz_spawn(acceptor, c, &acc));
    blz_join **joins = calloc(NCONN, sizeof *joins);
    CHECK(joins != NULL);
    for (uintptr_t i = 0; i < NCONN; i++) {
        CHECK_OK(blz_spawn(client, (void *) (i + 1), &joins[i]));
    }
    CHECK_OK(blz_join_all(joins, NCONN, NULL));
    free(joins);
    CHECK_EQ(atomic_load(&c->clients_ok), NCONN);
    /* Every server task sees its client's close. */
    while (atomic_load(&c->echoed) < NCONN) {
        CHECK_OK(blz_sleep(blz_ms(1)));
    }
    blz_tcp_listener_close(c->l); /* ends the acceptor with -ECANCELED */
    CHECK_OK(blz_join_wait(acc, NULL));
    CHECK_EQ(blz__io_driver_waiters(net_driver()), 0);
    return NULL;
}

static void
raise_nofile(rlim_t want)
{
    struct rlimit rl;
    CHECK_OK(getrlimit(RLIMIT_NOFILE, &rl));
    if (rl.rlim_cur >= want) {
        return;
    }
    if (rl.rlim_max < want) {
        char msg[128];
        snprintf(msg, sizeof msg, "RLIMIT_NOFILE hard limit %llu < %llu",
                 (unsigned long long) rl.rlim_max, (unsigned long long) want);
        SKIP(msg);
    }
    rl.rlim_cur = want;
    CHECK_OK(setrlimit(RLIMIT_NOFILE, &rl));
}

BLZ_TEST(thousand_concurrent_connections)
{
    raise_nofile(2 * NCONN + 256);
    static load_ctx ctx;
    g_load = &ctx;
    net_run(2, thousand_main, &ctx);
}
