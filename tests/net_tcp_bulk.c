/*
 * TCP bulk transfer on loopback: 256 MiB through one stream, checked by a
 * checksum computed on both sides in stream order.
 */
/* blz-test: timeout=120 */
#include "net_common.h"

/* The generator and checksum loops touch only their own task's buffer; they
 * are kept out of ThreadSanitizer's instrumentation so a TSan run measures
 * the runtime, not 64 million instrumented word accesses. */
#if defined(__has_feature)
# if __has_feature(thread_sanitizer)
#  define NO_TSAN __attribute__((no_sanitize("thread")))
# endif
#endif
#if !defined(NO_TSAN) && defined(__SANITIZE_THREAD__)
# define NO_TSAN __attribute__((no_sanitize_thread))
#endif
#ifndef NO_TSAN
# define NO_TSAN
#endif

/* ---- 256 MiB through one stream ----------------------------------------------------- */

#define BIG_TOTAL (256ull << 20)
#define BIG_CHUNK (1u << 20)

/* FNV-1a over 64-bit words, in stream order. */
NO_TSAN static uint64_t
fnv_words(uint64_t h, const uint64_t *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h = (h ^ w[i]) * 0x100000001b3ull;
    }
    return h;
}

/* Fills one chunk with a pattern unique to its offset. */
NO_TSAN static void
gen_chunk(uint64_t *buf, uint64_t off)
{
    uint64_t x = off + 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < BIG_CHUNK / 8; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = x;
    }
}

NO_TSAN static void
shift_rest(uint64_t *buf, size_t from, size_t rest)
{
    memmove(buf, (char *) buf + from, rest);
}

typedef struct big_ctx {
    blz_tcp_listener *l;
    uint64_t sum_sent, sum_recv, bytes_recv;
} big_ctx;

static void *
big_receiver(void *arg)
{
    big_ctx *c = arg;
    blz_tcp_stream *s = NULL;
    CHECK_OK(blz_tcp_accept(c->l, &s, NULL));
    uint64_t *buf = malloc(BIG_CHUNK);
    CHECK(buf != NULL);
    uint64_t h = 0xcbf29ce484222325ull;
    size_t fill = 0;
    for (;;) {
        ssize_t n = CHECK_OK(blz_tcp_read(s, (char *) buf + fill, BIG_CHUNK - fill));
        if (n == 0) {
            break;
        }
        c->bytes_recv += (uint64_t) n;
        fill += (size_t) n;
        size_t words = fill / 8;
        h = fnv_words(h, buf, words);
        size_t rest = fill - words * 8;
        shift_rest(buf, words * 8, rest);
        fill = rest;
    }
    CHECK_EQ(fill, 0);
    c->sum_recv = h;
    free(buf);
    blz_tcp_close(s);
    return NULL;
}

static void *
big_main(void *arg)
{
    big_ctx *c = arg;
    blz_addr a;
    c->l = net_listen_any(&a);
    blz_join *j;
    CHECK_OK(blz_spawn(big_receiver, c, &j));
    blz_tcp_stream *s = NULL;
    CHECK_OK(blz_tcp_connect_addr(&a, &s));
    uint64_t *buf = malloc(BIG_CHUNK);
    CHECK(buf != NULL);
    uint64_t h = 0xcbf29ce484222325ull;
    blz_instant t0 = blz_now();
    for (uint64_t off = 0; off < BIG_TOTAL; off += BIG_CHUNK) {
        /* A fresh pattern per chunk: a misplaced or repeated chunk changes the sum. */
        gen_chunk(buf, off);
        h = fnv_words(h, buf, BIG_CHUNK / 8);
        CHECK_OK(blz_tcp_write_all(s, buf, BIG_CHUNK));
    }
    CHECK_OK(blz_tcp_shutdown(s, BLZ_SHUT_WR));
    c->sum_sent = h;
    CHECK_OK(blz_join_wait(j, NULL));
    double secs = (double) (blz_now() - t0) / 1e9;
    fprintf(stderr, "256 MiB in %.2f s (%.0f MiB/s) on %s\n", secs, 256.0 / secs,
            blz_runtime_backend(blz_runtime_current()));
    free(buf);
    blz_tcp_close(s);
    blz_tcp_listener_close(c->l);
    return NULL;
}

BLZ_TEST(transfer_256mib_checksum)
{
    static big_ctx ctx;
    net_run(2, big_main, &ctx);
    CHECK_EQ(ctx.bytes_recv, BIG_TOTAL);
    CHECK_EQ(ctx.sum_recv, ctx.sum_sent);
}
