/*
 * blz_runtime_config.ring_per_worker: on io_uring each worker of a
 * multi-thread runtime owns a ring, parks in it, and alone dispatches its
 * completions. These tests run on both backends; on epoll (one backend for
 * all) they check that the setting changes nothing.
 *
 * - the rings follow the setting (several workers, no spares, io_uring);
 * - streams on both rings echo every byte while tasks move between the
 *   workers (streams opened on blocking-pool threads, which own no ring,
 *   go round the rings; each echo task runs wherever it is woken);
 * - a new, earlier timer wakes the worker that watches the timers, asleep
 *   in its ring towards a far deadline;
 * - a stream closed from a thread that does not own its ring reaches the
 *   peer as an end of stream (the close wakes the owner to finish it);
 * - workers that never park (tasks that only yield) still dispatch their
 *   rings' events, at their periodic maintenance.
 */
#include "net_common.h"
#include "rt/runtime.h"

#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

static bool
on_uring(blz_runtime *rt)
{
    return strcmp(blz_runtime_backend(rt), "io_uring") == 0;
}

/* A runtime of `workers` workers and `spares` spares with ring_per_worker
 * set to `on`, on the backend ctest asked for. */
static blz_runtime *
rpw_runtime(unsigned workers, unsigned spares, bool on)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = workers;
    cfg.spare_workers = spares;
    cfg.ring_per_worker = on;
    return backend_runtime_cfg(&cfg);
}

static unsigned
rings_of(unsigned workers, unsigned spares, bool on, bool *uring)
{
    blz_runtime *rt = rpw_runtime(workers, spares, on);
    *uring = on_uring(rt);
    unsigned n = blz__io_driver_rings(blz__rt_io(rt));
    blz_runtime_free(rt);
    return n;
}

BLZ_TEST(the_rings_follow_the_setting)
{
    bool uring = false;
    unsigned two = rings_of(2, 0, true, &uring);
    CHECK_EQ(two, uring ? 2u : 1u);
    CHECK_EQ(rings_of(3, 0, true, &uring), uring ? 3u : 1u);
    CHECK_EQ(rings_of(1, 0, true, &uring), 1u);
    CHECK_EQ(rings_of(2, 1, true, &uring), 1u); /* spares: one ring for all */
    CHECK_EQ(rings_of(2, 0, false, &uring), 1u);
}

/* ---- echo on both rings ----------------------------------------------------- */

#define STREAMS 16
#define ROUNDS  200

typedef struct echo_ctx {
    blz_tcp_listener *l;
    blz_addr addr;
    blz_tcp_stream *clients[STREAMS];
    unsigned ring[STREAMS]; /* the ring each client is armed on */
} echo_ctx;

/* Blocking-pool job: connects every client (a pool thread owns no ring,
 * so the streams go round the rings). */
static void *
connect_job(void *arg)
{
    echo_ctx *c = arg;
    for (int i = 0; i < STREAMS; i++) {
        CHECK_OK(blz_tcp_connect_addr(&c->addr, &c->clients[i]));
        c->ring[i] = blz__io_driver_ring_of(net_driver(), &c->clients[i]->sk.src);
    }
    return NULL;
}

/* Echoes one accepted stream until its end. */
static void *
echo_task(void *arg)
{
    blz_tcp_stream *s = arg;
    char buf[4096];
    for (;;) {
        ssize_t n = blz_tcp_read(s, buf, sizeof buf);
        CHECK(n >= 0);
        if (n == 0) {
            break;
        }
        CHECK_OK(blz_tcp_write_all(s, buf, (size_t) n));
    }
    blz_tcp_close(s);
    return NULL;
}

typedef struct client_arg {
    blz_tcp_stream *s;
    uint64_t seed;
} client_arg;

/* Sends ROUNDS messages of varying size and checks each echo. */
static void *
client_task(void *arg)
{
    client_arg *a = arg;
    unsigned char out[2048];
    unsigned char in[2048];
    uint64_t off = 0;
    for (int r = 0; r < ROUNDS; r++) {
        size_t n = 1 + (size_t) ((a->seed * 31u + (uint64_t) r * 97u) % sizeof out);
        net_fill(a->seed, off, out, n);
        CHECK_OK(blz_tcp_write_all(a->s, out, n));
        CHECK_OK(net_read_exact(a->s, in, n));
        CHECK(net_verify(a->seed, off, in, n));
        off += n;
    }
    blz_tcp_close(a->s);
    return NULL;
}

static void *
echo_main(void *arg)
{
    (void) arg;
    echo_ctx c;
    memset(&c, 0, sizeof c);
    c.l = net_listen_any(&c.addr);
    blz_join *cj = NULL;
    CHECK_OK(blz_spawn_blocking(connect_job, &c, &cj));
    blz_join *servers[STREAMS];
    for (int i = 0; i < STREAMS; i++) {
        blz_tcp_stream *s = NULL;
        CHECK_OK(blz_tcp_accept(c.l, &s, NULL));
        CHECK_OK(blz_spawn(echo_task, s, &servers[i]));
    }
    CHECK_OK(blz_join_wait(cj, NULL));
    unsigned rings = blz__io_driver_rings(net_driver());
    unsigned used = 0;
    for (int i = 0; i < STREAMS; i++) {
        used |= 1u << c.ring[i];
    }
    CHECK_EQ(used, (1u << rings) - 1); /* every ring carries clients */
    client_arg args[STREAMS];
    blz_join *clients[STREAMS];
    for (int i = 0; i < STREAMS; i++) {
        args[i] = (client_arg){c.clients[i], (uint64_t) i + 1};
        CHECK_OK(blz_spawn(client_task, &args[i], &clients[i]));
    }
    for (int i = 0; i < STREAMS; i++) {
        CHECK_OK(blz_join_wait(clients[i], NULL));
        CHECK_OK(blz_join_wait(servers[i], NULL));
    }
    blz_tcp_listener_close(c.l);
    CHECK_EQ(blz__io_driver_waiters(net_driver()), 0);
    return NULL;
}

BLZ_TEST(streams_on_every_ring_echo_every_byte)
{
    for (unsigned workers = 2; workers <= 3; workers++) {
        blz_runtime *rt = rpw_runtime(workers, 0, true);
        CHECK_OK(blz_runtime_block_on(rt, echo_main, NULL, NULL));
        blz_runtime_free(rt);
    }
}

/* ---- a new, earlier timer wakes the worker that watches the timers ---------- */

static void *
long_sleep(void *arg)
{
    (void) arg;
    (void) blz_sleep(blz_secs(10)); /* aborted long before */
    return NULL;
}

/* The worker watching the timers (index + 1), once both workers sleep in
 * their rings and the watcher has not come back for 50 ms (longer than
 * its rescue look, BLZ_RESCUE_NS: it sleeps towards its timer); 0 if that
 * is not seen within 5 s. Its park count at that time in *parks. */
static uint32_t
watcher_asleep(blz_runtime *rt, uint64_t *parks)
{
    blz_instant give_up = blz_now() + blz_secs(5);
    while (blz_now() < give_up) {
        uint32_t h = blz__load(&rt->driver_held, ACQUIRE);
        if (h && blz__load(&rt->workers[0].park_state, ACQUIRE) == BLZ_PARK_DRIVER &&
            blz__load(&rt->workers[1].park_state, ACQUIRE) == BLZ_PARK_DRIVER) {
            uint64_t p = blz__load(&rt->workers[h - 1].parks, ACQUIRE);
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
            if (blz__load(&rt->driver_held, ACQUIRE) == h &&
                blz__load(&rt->workers[h - 1].parks, ACQUIRE) == p &&
                blz__load(&rt->workers[h - 1].park_state, ACQUIRE) == BLZ_PARK_DRIVER) {
                *parks = p;
                return h;
            }
        }
        sched_yield();
    }
    return 0;
}

BLZ_TEST(a_new_earlier_timer_wakes_the_worker_watching_the_timers)
{
    /* A sleep registered on the worker that does not watch the timers
     * (it parks with no timeout of its own) calls blz__rt_wake_driver,
     * which must wake the watcher in its ring to take the new deadline in:
     * without it the watcher sleeps on towards its 10 s. Called here from
     * this thread, with both workers asleep. */
    blz_runtime *rt = rpw_runtime(2, 0, true);
    if (blz__io_driver_rings(blz__rt_io(rt)) == 1) {
        blz_runtime_free(rt);
        SKIP("one ring for all workers (epoll)");
    }
    for (int round = 0; round < 5; round++) {
        blz_join *lj = NULL;
        CHECK_OK(blz_runtime_spawn(rt, long_sleep, NULL, &lj));
        uint64_t parks = 0;
        uint32_t h = watcher_asleep(rt, &parks);
        CHECK_GT(h, 0u);
        blz__rt_wake_driver(rt);
        blz_instant give_up = blz_now() + blz_secs(5);
        while (blz__load(&rt->workers[h - 1].parks, ACQUIRE) == parks) {
            CHECK_LT(blz_now(), give_up); /* the watcher was not woken */
            sched_yield();
        }
        blz_join_abort(lj);
        (void) blz_join_wait(lj, NULL);
    }
    blz_runtime_free(rt);
}

/* ---- busy workers still serve their rings ------------------------------------ */

static _Atomic int stop_spinning;

/* Keeps a worker busy without ever letting it park: it yields at once. */
static void *
spinner(void *arg)
{
    (void) arg;
    blz_instant give_up = blz_now() + blz_secs(10);
    while (!blz__load(&stop_spinning, ACQUIRE) && blz_now() < give_up) {
        blz_yield();
    }
    return NULL;
}

static void *
busy_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    for (int round = 0; round < 20; round++) {
        blz_tcp_stream *s = NULL;
        int peer = net_plain_peer(l, &a, &s); /* s: on this worker's ring */
        blz__store(&stop_spinning, 0, RELEASE);
        blz_join *spin[2];
        CHECK_OK(blz_spawn(spinner, NULL, &spin[0]));
        CHECK_OK(blz_spawn(spinner, NULL, &spin[1]));
        CHECK_EQ(write(peer, "busy", 4), 4);
        /* Neither worker parks while the spinners run: the data reaches this
         * read only through a worker's periodic look at its own ring. */
        char buf[4];
        blz_instant t0 = blz_now();
        CHECK_OK(net_read_exact(s, buf, 4));
        CHECK_LT(blz_now() - t0, (blz_instant) blz_secs(5)); /* not the spinners' end */
        CHECK(memcmp(buf, "busy", 4) == 0);
        blz__store(&stop_spinning, 1, RELEASE);
        CHECK_OK(blz_join_wait(spin[0], NULL));
        CHECK_OK(blz_join_wait(spin[1], NULL));
        blz_tcp_close(s);
        close(peer);
    }
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(workers_kept_busy_still_serve_their_rings)
{
    blz_runtime *rt = rpw_runtime(2, 0, true);
    CHECK_OK(blz_runtime_block_on(rt, busy_main, NULL, NULL));
    blz_runtime_free(rt);
}

/* ---- a close from a thread that owns no ring --------------------------------- */

typedef struct close_ctx {
    blz_tcp_stream *s;
    int peer;
} close_ctx;

/* Blocking-pool job: closes the stream (armed on a worker's ring), then
 * reads the plain peer socket, which must see the end within its 5 s. */
static void *
close_job(void *arg)
{
    close_ctx *c = arg;
    blz_tcp_close(c->s);
    char buf[8];
    CHECK_EQ(read(c->peer, buf, sizeof buf), 0); /* -1 (EAGAIN) after 5 s: no FIN */
    return NULL;
}

static void *
close_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    for (int i = 0; i < 20; i++) {
        close_ctx c;
        c.peer = net_plain_peer(l, &a, &c.s);
        CHECK_EQ(write(c.peer, "ping", 4), 4);
        char buf[4];
        CHECK_OK(net_read_exact(c.s, buf, 4));
        blz_join *j = NULL;
        CHECK_OK(blz_spawn_blocking(close_job, &c, &j));
        CHECK_OK(blz_join_wait(j, NULL));
        close(c.peer);
    }
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(a_stream_closed_by_a_thread_without_a_ring_reaches_its_peer)
{
    blz_runtime *rt = rpw_runtime(2, 0, true);
    CHECK_OK(blz_runtime_block_on(rt, close_main, NULL, NULL));
    blz_runtime_free(rt);
}
