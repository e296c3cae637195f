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
    bool stackless;     /* serve with ready_echo futures instead of echo_conn fibers */
    _Atomic int echoed; /* connections the server finished */
    _Atomic int clients_ok;
} load_ctx;

static load_ctx *g_load;

/* ---- the stackless server: wait for readiness, read into the thread's buffer ----- */

enum { SCRATCH = 16384 };
static _Thread_local unsigned char scratch[SCRATCH];
static _Atomic long short_writes; /* writes that left a tail to wait with */

typedef struct ready_echo {
    blz_future base;
    blz_tcp_stream *s;
    blz_io_future io;
    unsigned char *tail;
    bool waiting, writing;
} ready_echo;

static blz_poll
ready_echo_poll(blz_future *base, blz_context *cx)
{
    ready_echo *c = (ready_echo *) base;
    for (;;) {
        if (c->writing) {
            if (blz_future_poll(&c->io.base, cx) == BLZ_PENDING) {
                return BLZ_PENDING;
            }
            c->writing = false;
            free(c->tail);
            c->tail = NULL;
            CHECK_OK(c->io.base.result);
        }
        if (!c->waiting) {
            blz_tcp_ready_fut(c->s, BLZ_READABLE, &c->io);
            c->waiting = true;
        }
        if (blz_future_poll(&c->io.base, cx) == BLZ_PENDING) {
            return BLZ_PENDING;
        }
        c->waiting = false;
        CHECK_OK(c->io.base.result);
        ssize_t n = blz_tcp_try_read(c->s, scratch, SCRATCH);
        if (n == -EAGAIN) {
            continue;
        }
        CHECK_GE(n, 0);
        if (n == 0) {
            break;
        }
        ssize_t w = blz_tcp_try_write(c->s, scratch, (size_t) n);
        if (w == -EAGAIN) {
            w = 0;
        }
        CHECK_GE(w, 0);
        if (w < n) {
            atomic_fetch_add(&short_writes, 1);
            c->tail = malloc((size_t) (n - w));
            CHECK(c->tail != NULL);
            memcpy(c->tail, scratch + w, (size_t) (n - w));
            blz_tcp_write_all_fut(c->s, c->tail, (size_t) (n - w), &c->io);
            c->writing = true;
        }
    }
    blz_tcp_close(c->s);
    atomic_fetch_add(&g_load->echoed, 1);
    base->result = 0;
    return BLZ_READY;
}

static const blz_future_vtable ready_echo_vtable = {ready_echo_poll, NULL};

static void
spawn_ready_echo(blz_tcp_stream *s)
{
    ready_echo c;
    memset(&c, 0, sizeof c);
    blz_future_init(&c.base, &ready_echo_vtable);
    c.s = s;
    CHECK_OK(blz_spawn_future(&c.base, sizeof c, NULL));
}

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
        if (c->stackless) {
            spawn_ready_echo(s);
        } else {
            CHECK_OK(blz_spawn(echo_conn, s, NULL));
        }
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

/* Serves `n` clients running `client_fn` (argument: their number, from 1)
 * until every one has finished and every server task has seen its close. */
static void
serve_clients(load_ctx *c, blz_task_fn client_fn, int n)
{
    c->l = net_listen_any(&c->addr);
    blz_join *acc;
    CHECK_OK(blz_spawn(acceptor, c, &acc));
    blz_join **joins = calloc((size_t) n, sizeof *joins);
    CHECK(joins != NULL);
    for (intptr_t i = 0; i < n; i++) {
        CHECK_OK(blz_spawn(client_fn, (void *) (i + 1), &joins[i]));
    }
    CHECK_OK(blz_join_all(joins, (size_t) n, NULL));
    free(joins);
    CHECK_EQ(atomic_load(&c->clients_ok), n);
    /* Every server task sees its client's close. */
    WAIT_UNTIL(atomic_load(&c->echoed) >= n, CHECK_OK(blz_sleep(blz_ms(1))));
    blz_tcp_listener_close(c->l); /* ends the acceptor with -ECANCELED */
    CHECK_OK(blz_join_wait(acc, NULL));
}

static void *
thousand_main(void *arg)
{
    serve_clients(arg, client, NCONN);
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

/* The same thousand clients against stackless connections that wait with
 * blz_tcp_ready_fut and move the data through one buffer per thread. */
BLZ_TEST(thousand_connections_stackless_ready)
{
    raise_nofile(2 * NCONN + 256);
    static load_ctx ctx;
    ctx.stackless = true;
    g_load = &ctx;
    net_run(2, thousand_main, &ctx);
}

/* ---- short writes in the stackless server ------------------------------------------ */

/* A client that reads slowly through a 4 KiB receive buffer while its other
 * half keeps writing: the server's echo runs into a full send buffer over and
 * over, and each time keeps the unsent tail and waits to write it. Every byte
 * is checked, in order. */
#define TAIL_CONNS 2
#define TAIL_BYTES (8u << 20)
#define TAIL_SEED  5

static void *
tail_writer(void *arg)
{
    blz_tcp_write_half *wr = arg;
    enum { CHUNK = 65536 };
    unsigned char *chunk = malloc(CHUNK);
    CHECK(chunk != NULL);
    for (uint64_t off = 0; off < TAIL_BYTES; off += CHUNK) {
        net_fill(TAIL_SEED, off, chunk, CHUNK);
        CHECK_OK(blz_tcp_half_write_all(wr, chunk, CHUNK));
    }
    free(chunk);
    return NULL;
}

static void *
tail_client(void *arg)
{
    (void) arg;
    blz_tcp_socket *cs = NULL;
    CHECK_OK(blz_tcp_socket_new(BLZ_AF_INET, &cs));
    CHECK_OK(blz_tcp_socket_set_recv_buffer_size(cs, 4096));
    blz_tcp_stream *s = NULL;
    CHECK_OK(blz_tcp_socket_connect(cs, &g_load->addr, &s));
    blz_tcp_read_half *rd;
    blz_tcp_write_half *wr;
    CHECK_OK(blz_tcp_split(s, &rd, &wr));
    blz_join *w;
    CHECK_OK(blz_spawn(tail_writer, wr, &w));
    unsigned char in[4096];
    uint64_t got = 0;
    while (got < TAIL_BYTES) {
        ssize_t n = CHECK_OK(blz_tcp_half_read(rd, in, sizeof in));
        CHECK_GT(n, 0);
        CHECK(net_verify(TAIL_SEED, got, in, (size_t) n));
        got += (uint64_t) n;
        blz_yield(); /* read slowly */
    }
    CHECK_OK(blz_join_wait(w, NULL));
    blz_tcp_write_half_close(wr);
    blz_tcp_read_half_close(rd);
    atomic_fetch_add(&g_load->clients_ok, 1);
    return NULL;
}

static void *
tail_main(void *arg)
{
    serve_clients(arg, tail_client, TAIL_CONNS);
    CHECK_GT(atomic_load(&short_writes), 0); /* the tail path did run */
    return NULL;
}

BLZ_TEST(stackless_ready_echo_keeps_short_write_tails)
{
    static load_ctx ctx;
    ctx.stackless = true;
    g_load = &ctx;
    net_run(2, tail_main, &ctx);
}
