/*
 * bench/udp.c — UDP on loopback, one fiber, 64-byte datagrams, ns per
 * datagram sent and received (32 in flight per round), on the backend
 * $BLZ_BACKEND picks:
 *
 *   udp_dgram_single   blz_udp_send_to / blz_udp_recv_from, one syscall each
 *   udp_dgram_batch    blz_udp_send_many / blz_udp_recv_many, 32 datagrams
 *                      per sendmmsg / recvmmsg
 *   udp_dgram_gso      blz_udp_send_segments (one sendmsg that the kernel
 *                      splits into 32 datagrams) / blz_udp_recv_many
 *
 *     bench_udp [--json] [--runs N] [--warmups N] [row ...]
 */
#include "bench.h"
#include "blitzio/net.h"

#define BURST  32
#define ROUNDS 100
#define SIZE   64

static blz_runtime *rt;

static void
die(const char *what, long rc)
{
    fprintf(stderr, "bench_udp: %s: %s\n", what, blz_strerror((int) rc));
    exit(1);
}

typedef struct udp_pair {
    blz_udp_socket *a, *b;
    blz_addr ba;
} udp_pair;

static void
pair_open(udp_pair *p)
{
    long rc;
    if ((rc = blz_udp_bind("127.0.0.1:0", &p->a)) < 0 ||
        (rc = blz_udp_bind("127.0.0.1:0", &p->b)) < 0 ||
        (rc = blz_udp_local_addr(p->b, &p->ba)) < 0) {
        die("bind", rc);
    }
}

static void
pair_close(udp_pair *p)
{
    blz_udp_close(p->a);
    blz_udp_close(p->b);
}

/* Receives exactly `BURST` datagrams through `rm`, in as many calls as it takes. */
static void
recv_burst(udp_pair *p, blz_udp_msg *rm)
{
    for (int got = 0; got < BURST;) {
        ssize_t n = blz_udp_recv_many(p->b, rm + got, (size_t) (BURST - got));
        if (n < 1) {
            die("recv_many", n < 0 ? n : -EIO);
        }
        got += (int) n;
    }
}

static void *
single_body(void *arg)
{
    bench_run *r = arg;
    udp_pair p;
    pair_open(&p);
    char out[SIZE] = {1}, in[SIZE];
    r->ops = BURST * ROUNDS;
    bench_start(r);
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < BURST; i++) {
            ssize_t n = blz_udp_send_to(p.a, out, SIZE, &p.ba);
            if (n != SIZE) {
                die("send_to", n < 0 ? n : -EIO);
            }
        }
        for (int i = 0; i < BURST; i++) {
            ssize_t n = blz_udp_recv_from(p.b, in, SIZE, NULL);
            if (n != SIZE) {
                die("recv_from", n < 0 ? n : -EIO);
            }
        }
    }
    bench_stop(r);
    pair_close(&p);
    return NULL;
}

static void *
batch_body(void *arg)
{
    bench_run *r = arg;
    udp_pair p;
    pair_open(&p);
    static char out[BURST][SIZE], in[BURST][SIZE];
    blz_udp_msg sm[BURST], rm[BURST];
    for (int i = 0; i < BURST; i++) {
        sm[i] = (blz_udp_msg){.buf = out[i], .len = SIZE, .addr = &p.ba};
        rm[i] = (blz_udp_msg){.buf = in[i], .len = SIZE};
    }
    r->ops = BURST * ROUNDS;
    bench_start(r);
    for (int round = 0; round < ROUNDS; round++) {
        for (int sent = 0; sent < BURST;) {
            ssize_t n = blz_udp_send_many(p.a, sm + sent, (size_t) (BURST - sent));
            if (n < 1) {
                die("send_many", n < 0 ? n : -EIO);
            }
            sent += (int) n;
        }
        recv_burst(&p, rm);
    }
    bench_stop(r);
    pair_close(&p);
    return NULL;
}

/* A row's body, passed through bench_row's object pointer. */
typedef struct body_ref {
    blz_task_fn fn;
} body_ref;

static void *
gso_body(void *arg)
{
    bench_run *r = arg;
    udp_pair p;
    pair_open(&p);
    static char out[BURST * SIZE], in[BURST][SIZE];
    blz_udp_segments g = {.buf = out, .len = sizeof out, .segment = SIZE, .addr = &p.ba};
    blz_udp_msg rm[BURST];
    for (int i = 0; i < BURST; i++) {
        rm[i] = (blz_udp_msg){.buf = in[i], .len = SIZE};
    }
    r->ops = BURST * ROUNDS;
    bench_start(r);
    for (int round = 0; round < ROUNDS; round++) {
        ssize_t n = blz_udp_send_segments(p.a, &g);
        if (n != (ssize_t) sizeof out) {
            die("send_segments", n < 0 ? n : -EIO);
        }
        recv_burst(&p, rm);
    }
    bench_stop(r);
    pair_close(&p);
    return NULL;
}

static void
on_rt(bench_run *r)
{
    const body_ref *b = r->arg;
    if (blz_runtime_block_on(rt, b->fn, r, NULL) < 0) {
        abort();
    }
}

int
main(int argc, char **argv)
{
    bench_init(argc, argv);
    if (!bench_list_) {
        long rc = blz_runtime_new(NULL, &rt);
        if (rc < 0) {
            die("runtime", rc);
        }
        if (!bench_json_) {
            printf("# backend: %s\n", blz_runtime_backend(rt));
        }
    }
    static const body_ref single_ref = {single_body}, batch_ref = {batch_body},
                          gso_ref = {gso_body};
    bench_row("udp_dgram_single", on_rt, (void *) &single_ref);
    bench_row("udp_dgram_batch", on_rt, (void *) &batch_ref);
    bench_row("udp_dgram_gso", on_rt, (void *) &gso_ref);
    if (rt) {
        blz_runtime_free(rt);
    }
    return 0;
}
