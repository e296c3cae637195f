/*
 * TCP error paths: accept under EMFILE recovers, peer reset mid-write,
 * connect deadline, a finish of a connect whose error was taken ends, an
 * aborted waiter leaves no registration behind, and a runtime freed with
 * sockets still open closes and frees them.
 */
#include "net_common.h"
#include "os/unix/sys.h"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

/* ---- accept under EMFILE ------------------------------------------------------------ */

#define EMFILE_CLIENTS 8

static _Atomic int accept_emfile; /* accept calls that failed with EMFILE */
static int (*real_accept)(int, void *, uint32_t *);

static int
counting_accept(int fd, void *sa, uint32_t *salen)
{
    int r = real_accept(fd, sa, salen);
    if (r == -EMFILE) {
        atomic_fetch_add(&accept_emfile, 1);
    }
    return r;
}

typedef struct emfile_ctx {
    blz_tcp_listener *l;
    blz_tcp_stream *held[EMFILE_CLIENTS];
    _Atomic int accepted;
} emfile_ctx;

static void *
emfile_acceptor(void *arg)
{
    emfile_ctx *c = arg;
    while (atomic_load(&c->accepted) < EMFILE_CLIENTS) {
        blz_tcp_stream *s = NULL;
        CHECK_OK(blz_tcp_accept(c->l, &s, NULL)); /* backs off on EMFILE, never fails */
        c->held[atomic_load(&c->accepted)] = s;
        atomic_fetch_add(&c->accepted, 1);
    }
    return NULL;
}

/* The number the `n`-th next descriptor would get (descriptors take the lowest
 * free number): the limit that lets exactly n more be opened is this + 1. */
static int
nth_free_fd(int n)
{
    int fds[16];
    CHECK_LE(n, 16);
    for (int i = 0; i < n; i++) {
        fds[i] = CHECK_OK(dup(0));
    }
    int last = fds[n - 1];
    for (int i = 0; i < n; i++) {
        close(fds[i]);
    }
    return last;
}

static void *
emfile_main(void *arg)
{
    emfile_ctx *c = arg;
    blz_addr a;
    c->l = net_listen_any(&a);
    /* Connect every client first: the kernel completes the handshakes and
     * queues them in the listener's backlog. */
    blz_tcp_stream *clients[EMFILE_CLIENTS];
    for (int i = 0; i < EMFILE_CLIENTS; i++) {
        CHECK_OK(blz_tcp_connect_addr(&a, &clients[i]));
    }
    /* Leave room for exactly 2 more descriptors. */
    struct rlimit old, rl;
    CHECK_OK(getrlimit(RLIMIT_NOFILE, &old));
    rl = old;
    rl.rlim_cur = (rlim_t) nth_free_fd(2) + 1;
    CHECK_OK(setrlimit(RLIMIT_NOFILE, &rl));

    blz_join *j;
    CHECK_OK(blz_spawn(emfile_acceptor, c, &j));
    /* The acceptor takes two connections, then hits EMFILE and backs off. */
    for (int i = 0; i < 2000 && atomic_load(&accept_emfile) == 0; i++) {
        CHECK_OK(blz_sleep(blz_ms(1)));
    }
    CHECK_GT(atomic_load(&accept_emfile), 0);
    int before = atomic_load(&c->accepted);
    CHECK_LT(before, EMFILE_CLIENTS);
    int emfile0 = atomic_load(&accept_emfile);
    blz_instant t0 = blz_clock_now();
    CHECK_OK(blz_sleep(blz_ms(30)));
    /* Backing off, not spinning: one retry per 10 ms back-off at most, over
     * however long the sleep really took (a loaded machine stretches it). */
    int64_t waited_ms = blz_instant_since(blz_clock_now(), t0) / 1000000;
    CHECK_LE(atomic_load(&accept_emfile) - emfile0, waited_ms / 10 + 3);
    CHECK_EQ(atomic_load(&c->accepted), before);

    /* Free descriptors: the listener keeps serving without any help. */
    CHECK_OK(setrlimit(RLIMIT_NOFILE, &old));
    CHECK_OK(blz_join_wait(j, NULL));
    CHECK_EQ(atomic_load(&c->accepted), EMFILE_CLIENTS);
    /* The connections accepted after the storm work. */
    for (int i = 0; i < EMFILE_CLIENTS; i++) {
        CHECK_OK(blz_tcp_write_all(clients[i], "x", 1));
    }
    for (int i = 0; i < EMFILE_CLIENTS; i++) {
        char x;
        CHECK_EQ(blz_tcp_read(c->held[i], &x, 1), 1);
        blz_tcp_close(c->held[i]);
        blz_tcp_close(clients[i]);
    }
    blz_tcp_listener_close(c->l);
    return NULL;
}

BLZ_TEST(accept_under_emfile_recovers)
{
    real_accept = blz__sys.accept;
    blz__sys.accept = counting_accept;
    static emfile_ctx ctx;
    net_run(2, emfile_main, &ctx);
    blz__sys_reset();
}

/* ---- peer reset mid-write --------------------------------------------------------------- */

static void *
reset_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_tcp_stream *c = NULL, *s = NULL;
    net_pair(l, &a, &s, &c);
    /* Fill the pipe a bit, then have the server abort the connection. */
    static unsigned char data[1 << 16];
    CHECK_OK(blz_tcp_write_all(c, data, sizeof data));
    CHECK_OK(blz_tcp_set_linger(s, true, 0));
    blz_tcp_close(s); /* unread data + linger 0: RST */
    int err = 0;
    for (int i = 0; i < 1000 && err == 0; i++) {
        ssize_t n = blz_tcp_write(c, data, sizeof data);
        if (n < 0) {
            err = (int) n;
        }
    }
    if (err != -ECONNRESET && err != -EPIPE) {
        fprintf(stderr, "write after reset: %d (%s)\n", err, blz_errname(err));
    }
    CHECK(err == -ECONNRESET || err == -EPIPE);
    /* Later calls keep failing with a code, no signal. */
    CHECK_LT(blz_tcp_write(c, data, 1), 0);
    blz_tcp_close(c);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(peer_reset_mid_write)
{
    net_run(2, reset_main, NULL);
}

static void *
reset_read_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_tcp_stream *c = NULL, *s = NULL;
    net_pair(l, &a, &s, &c);
    CHECK_OK(blz_tcp_set_linger(s, true, 0));
    blz_tcp_close(s);
    char buf[16];
    CHECK_EQ(blz_tcp_read(c, buf, sizeof buf), -ECONNRESET);
    blz_tcp_close(c);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(peer_reset_while_reading)
{
    net_run(2, reset_read_main, NULL);
}

/* ---- connect with a deadline ------------------------------------------------------------ */

static void *
deadline_main(void *arg)
{
    (void) arg;
    /* A listener that never accepts, with the smallest backlog: once its accept
     * queue is full, the kernel drops further SYNs and connects hang. */
    blz_addr a;
    CHECK_OK(blz_addr_parse("127.0.0.1:0", &a));
    blz_tcp_listener *l = NULL;
    CHECK_OK(blz_tcp_listen_addr(&a, 1, &l));
    CHECK_OK(blz_tcp_listener_addr(l, &a));
    blz_tcp_stream *held[8] = {0};
    int timed_out = 0, n = 0;
    for (; n < 8 && !timed_out; n++) {
        int rc =
            blz_tcp_connect_addr_until(&a, blz_instant_add(blz_clock_now(), blz_ms(200)), &held[n]);
        if (rc == -ETIMEDOUT) {
            timed_out = 1;
            CHECK(held[n] == NULL);
        } else {
            CHECK_OK(rc);
        }
    }
    CHECK(timed_out);
    for (int i = 0; i < 8; i++) {
        blz_tcp_close(held[i]);
    }
    /* An instant already past times out at once (or connects, if that was immediate). */
    CHECK_EQ(blz_addr_get_family(&a), BLZ_AF_INET);
    blz_tcp_listener_close(l);
    CHECK_EQ(blz__io_driver_waiters(net_driver()), 0);
    return NULL;
}

BLZ_TEST(connect_deadline_times_out)
{
    net_run(2, deadline_main, NULL);
}

/* ---- aborted waiters leave no registration ------------------------------------------------ */

static void *
blocked_reader(void *arg)
{
    char buf[8];
    ssize_t n = blz_tcp_read(arg, buf, sizeof buf); /* never gets data */
    return (void *) (intptr_t) n;
}

static void *
abort_main(void *arg)
{
    (void) arg;
    blz__io_driver *d = net_driver();
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_tcp_stream *c = NULL, *s = NULL;
    net_pair(l, &a, &s, &c);
    CHECK_EQ(blz__io_driver_waiters(d), 0);

    /* A fiber blocked in a read, aborted. */
    blz_join *j;
    CHECK_OK(blz_spawn(blocked_reader, s, &j));
    while (blz__io_driver_waiters(d) != 1) {
        blz_yield();
    }
    blz_join_abort(j);
    void *res = NULL;
    int rc = blz_join_wait(j, &res);
    CHECK(rc == -ECANCELED || (rc == 0 && (intptr_t) res == -ECANCELED));
    CHECK_EQ(blz__io_driver_waiters(d), 0);

    /* A hand-polled future, dropped while pending. */
    char buf[8];
    blz_io_future f;
    blz_tcp_read_fut(s, buf, sizeof buf, &f);
    blz_context cx = {blz_waker_noop()};
    CHECK_EQ(blz_future_poll(&f.base, &cx), BLZ_PENDING);
    CHECK_EQ(blz__io_driver_waiters(d), 1);
    blz_future_drop(&f.base);
    CHECK_EQ(blz__io_driver_waiters(d), 0);

    /* A stackless accept task, aborted. */
    blz_tcp_stream *never = NULL;
    blz_accept_future af;
    blz_tcp_accept_fut(l, &never, NULL, &af);
    blz_join *ja;
    CHECK_OK(blz_spawn_future(&af.base, sizeof af, &ja));
    while (blz__io_driver_waiters(d) != 1) {
        blz_yield();
    }
    blz_join_abort(ja);
    (void) blz_join_wait(ja, NULL);
    CHECK_EQ(blz__io_driver_waiters(d), 0);
    CHECK(never == NULL);

    /* A connect future dropped half-way closes its socket. */
    uint64_t sources = blz__io_driver_sources(d);
    blz_tcp_stream *cs = NULL;
    blz_io_future cf;
    blz_tcp_connect_fut(&a, &cs, &cf);
    CHECK_EQ(blz__io_driver_sources(d), sources + 1);
    blz_future_drop(&cf.base);
    CHECK_EQ(blz__io_driver_sources(d), sources);
    CHECK(cs == NULL);

    /* Closing a stream wakes a task waiting on it, with -ECANCELED. */
    CHECK_OK(blz_spawn(blocked_reader, s, &j));
    while (blz__io_driver_waiters(d) != 1) {
        blz_yield();
    }
    blz_tcp_close(s);
    CHECK_OK(blz_join_wait(j, &res));
    CHECK_EQ((intptr_t) res, -ECANCELED);
    CHECK_EQ(blz__io_driver_waiters(d), 0);

    blz_tcp_close(c);
    blz_tcp_listener_close(l);
    return NULL;
}

BLZ_TEST(aborted_waiter_leaves_no_registration)
{
    net_run(2, abort_main, NULL);
}

/* ---- runtime freed with sockets open ------------------------------------------------------ */

static void *
leave_open_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_tcp_stream *c = NULL, *s = NULL;
    net_pair(l, &a, &s, &c);
    /* A fiber and a stackless task still waiting when the runtime goes. */
    CHECK_OK(blz_spawn(blocked_reader, s, NULL));
    static blz_tcp_stream *never;
    static blz_accept_future af;
    blz_tcp_accept_fut(l, &never, NULL, &af);
    CHECK_OK(blz_spawn_future(&af.base, sizeof af, NULL));
    blz_udp_socket *u = NULL;
    CHECK_OK(blz_udp_bind("127.0.0.1:0", &u));
    CHECK_OK(blz_tcp_write_all(c, "unread", 6));
    return NULL; /* nothing closed */
}

BLZ_TEST(runtime_free_with_open_sockets)
{
    /* The harness fails the test if a descriptor stays open; ASan, if memory leaks. */
    net_run(2, leave_open_main, NULL);
}

/* ---- accept under EMFILE, future tier ------------------------------------------------------ */

static _Atomic int fut_accept_calls; /* accept syscalls made while the fds are exhausted */

static int
counting_accept_all(int fd, void *sa, uint32_t *salen)
{
    atomic_fetch_add(&fut_accept_calls, 1);
    return real_accept(fd, sa, salen);
}

/* Waits (in a fiber) until the accept future spawned last, with
 * fut_accept_calls zeroed, has been polled and has tried to accept: with no
 * descriptor left, it then backs off. (Before its first poll it holds no
 * reference on the listener, which must not be closed under it then.) */
static void
wait_accept_tried(void)
{
    WAIT_UNTIL(atomic_load(&fut_accept_calls) > 0, CHECK_OK(blz_sleep(blz_ms(1))));
}

#define HOG_MAX 64

static void *
emfile_fut_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_tcp_stream *client = NULL;
    CHECK_OK(blz_tcp_connect_addr(&a, &client)); /* waits in the backlog */

    /* Lower the limit (this test runs in its own forked child), then take
     * every descriptor left. */
    struct rlimit old, rl;
    CHECK_OK(getrlimit(RLIMIT_NOFILE, &old));
    rl = old;
    rl.rlim_cur = (rlim_t) nth_free_fd(16) + 1;
    CHECK_OK(setrlimit(RLIMIT_NOFILE, &rl));
    int hog[HOG_MAX];
    int nhog = 0;
    for (;;) {
        CHECK_LT(nhog, HOG_MAX);
        int fd = dup(0);
        if (fd < 0) {
            CHECK_EQ(errno, EMFILE);
            break;
        }
        hog[nhog++] = fd;
    }

    /* The try tier hands the error to the caller, and the connection stays. */
    blz_tcp_stream *s = NULL;
    CHECK_EQ(blz_tcp_try_accept(l, &s, NULL), -EMFILE);
    CHECK(s == NULL);

    /* The future tier, as a stackless task: it backs off instead of failing or spinning. */
    atomic_store(&fut_accept_calls, 0);
    blz_accept_future af;
    blz_tcp_accept_fut(l, &s, NULL, &af);
    blz_join *j;
    blz_instant t0 = blz_now();
    CHECK_OK(blz_spawn_future(&af.base, sizeof af, &j));
    /* Once it has tried (and met EMFILE), watch it back off for 60 ms: the
     * window under test (a longer one, on a loaded machine, is fine). */
    wait_accept_tried();
    CHECK_OK(blz_sleep(blz_ms(60)));
    CHECK(!blz_join_is_finished(j));
    int calls = atomic_load(&fut_accept_calls);
    int64_t elapsed_ms = (int64_t) ((blz_now() - t0) / BLZ_NS_PER_MS);
    CHECK_GT(calls, 0); /* it did try, and met EMFILE */
    /* About one try per 10 ms (bounded by the time that really passed, on a
     * busy machine): backing off, not spinning. */
    CHECK_LE(calls, elapsed_ms / 5 + 2);
    CHECK(s == NULL);

    /* Free the descriptors: the pending connection is accepted without help. */
    for (int i = 0; i < nhog; i++) {
        close(hog[i]);
    }
    void *res = (void *) -1;
    CHECK_OK(blz_join_wait(j, &res));
    CHECK_EQ((intptr_t) res, 0);
    CHECK(s != NULL);
    CHECK_OK(setrlimit(RLIMIT_NOFILE, &old));
    CHECK_OK(blz_tcp_write_all(client, "y", 1));
    char c = 0;
    CHECK_EQ(blz_tcp_read(s, &c, 1), 1);
    CHECK_EQ(c, 'y');
    blz_tcp_close(s);
    blz_tcp_close(client);
    blz_tcp_listener_close(l);
    CHECK_EQ(blz__io_driver_waiters(net_driver()), 0);
    return NULL;
}

BLZ_TEST(accept_future_under_emfile_backs_off)
{
    real_accept = blz__sys.accept;
    blz__sys.accept = counting_accept_all;
    net_run(2, emfile_fut_main, NULL);
    blz__sys_reset();
}

/* A listener closed while an accept future backs off ends it with -ECANCELED. */
static void *
emfile_close_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_tcp_stream *client = NULL;
    CHECK_OK(blz_tcp_connect_addr(&a, &client));
    struct rlimit old, rl;
    CHECK_OK(getrlimit(RLIMIT_NOFILE, &old));
    rl = old;
    rl.rlim_cur = (rlim_t) nth_free_fd(1); /* no descriptor left at all */
    CHECK_OK(setrlimit(RLIMIT_NOFILE, &rl));
    blz_tcp_stream *s = NULL;
    blz_accept_future af;
    blz_tcp_accept_fut(l, &s, NULL, &af);
    blz_join *j;
    atomic_store(&fut_accept_calls, 0);
    CHECK_OK(blz_spawn_future(&af.base, sizeof af, &j));
    wait_accept_tried();
    CHECK(!blz_join_is_finished(j));
    blz_tcp_listener_close(l);
    void *res = NULL;
    CHECK_OK(blz_join_wait(j, &res));
    CHECK_EQ((intptr_t) res, -ECANCELED);
    CHECK(s == NULL);
    CHECK_OK(setrlimit(RLIMIT_NOFILE, &old));
    blz_tcp_close(client);
    /* And an aborted task backing off leaves nothing behind either. */
    l = net_listen_any(&a);
    CHECK_OK(blz_tcp_connect_addr(&a, &client));
    rl.rlim_cur = (rlim_t) nth_free_fd(1);
    CHECK_OK(setrlimit(RLIMIT_NOFILE, &rl));
    blz_tcp_accept_fut(l, &s, NULL, &af);
    atomic_store(&fut_accept_calls, 0);
    CHECK_OK(blz_spawn_future(&af.base, sizeof af, &j));
    wait_accept_tried();
    blz_join_abort(j);
    (void) blz_join_wait(j, NULL);
    CHECK_OK(setrlimit(RLIMIT_NOFILE, &old));
    CHECK(s == NULL);
    blz_tcp_close(client);
    blz_tcp_listener_close(l);
    CHECK_EQ(blz__io_driver_waiters(net_driver()), 0);
    return NULL;
}

BLZ_TEST(accept_future_backing_off_ends_on_close_and_abort)
{
    real_accept = blz__sys.accept;
    blz__sys.accept = counting_accept_all;
    net_run(2, emfile_close_main, NULL);
    blz__sys_reset();
}

/* ---- finishing a connect whose error was taken already ---------------------------- */

/* Runs fn as a fiber of a two-worker runtime on a thread of its own, and
 * fails the test when it has not returned within 5 s: a task that spins
 * inside one poll never lets its worker go, and would hang the test. */
typedef struct bounded_run {
    blz_task_fn fn;
    _Atomic int done;
} bounded_run;

static void *
bounded_thread(void *arg)
{
    bounded_run *b = arg;
    net_run(2, b->fn, NULL);
    atomic_store(&b->done, 1);
    return NULL;
}

static void
run_bounded(blz_task_fn fn)
{
    bounded_run b = {fn, 0};
    pthread_t t;
    CHECK_OK(-pthread_create(&t, NULL, bounded_thread, &b));
    for (int i = 0; i < 5000 && !atomic_load(&b.done); i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    CHECK(atomic_load(&b.done)); /* else a worker spins: _Exit ends it */
    CHECK_OK(-pthread_join(t, NULL));
}

/* A connect refused, its error taken by a first finish (or by a read, which
 * reports it as the kernel does): the stream is useless, and every later
 * finish, of any tier, must say so instead of "in progress". The socket is
 * hung up and reports no event again, so the await tier used to retry its
 * -EAGAIN forever inside one poll, at 100 % of a CPU. */
static void *
finish_taken_main(void *arg)
{
    (void) arg;
    blz_addr a;
    blz_tcp_listener *l = net_listen_any(&a);
    blz_tcp_listener_close(l); /* nothing listens there any more: refused */
    for (int round = 0; round < 2; round++) {
        blz_tcp_stream *c = NULL;
        int rc = blz_tcp_try_connect(&a, &c);
        if (rc == -ECONNREFUSED) {
            continue; /* refused at once: no stream to finish */
        }
        CHECK_EQ(rc, -EINPROGRESS);
        if (round == 0) {
            CHECK_EQ(blz_tcp_finish_connect(c), -ECONNREFUSED);
        } else {
            char buf[4];
            CHECK_EQ(blz_tcp_read(c, buf, sizeof buf), -ECONNREFUSED);
        }
        rc = blz_tcp_finish_connect(c);
        CHECK(rc < 0 && rc != -EAGAIN);
        rc = blz_tcp_try_finish_connect(c);
        CHECK(rc < 0 && rc != -EAGAIN);
        blz_tcp_close(c);
    }
    return NULL;
}

BLZ_TEST(finish_connect_after_its_error_was_taken_ends)
{
    run_bounded(finish_taken_main);
}
