/*
 * tests/io_async_fd.c — blz_async_fd: readiness of descriptors that the
 * test itself reads and writes (eventfds and socket pairs), as a library
 * would: level-triggered waits, the try tiers, try_io clearing readiness,
 * writable after a full buffer drains, wake-ups from real threads with none
 * lost, freeing while a task waits, the caller closing its descriptor first
 * (its number reused by another watched descriptor), and the refusals;
 * blz_async_fd_io (the caller's call, waited for) in both directions, in
 * lock-step with a writer thread, freed while waiting; a write wait on a
 * socket whose hang-up (unconnected) is over sleeps instead of spinning.
 *
 * Run once per backend. Every wait is bounded (blz_timeout), so a lost
 * wake-up fails instead of hanging.
 */
#include "blitzio.h"
#include "harness.h"
#include "io/registry.h"
#include "rt_util.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* blz_async_fd_ready, bounded at ten seconds. */
static int
ready_within(blz_async_fd *a, blz_interest interest)
{
    blz_io_future f;
    blz_async_fd_ready_fut(a, interest, &f);
    return blz_timeout(&f.base, blz_secs(10));
}

static uint64_t
drain_eventfd(int fd)
{
    uint64_t v = 0;
    ssize_t r = read(fd, &v, sizeof v);
    return r == (ssize_t) sizeof v ? v : 0;
}

static void
bump_eventfd(int fd, uint64_t v)
{
    CHECK_EQ(write(fd, &v, sizeof v), (ssize_t) sizeof v);
}

/* ---- level-triggered waits ---------------------------------------------------- */

static void *
level_main(void *arg)
{
    (void) arg;
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    CHECK_GE(efd, 0);
    blz_async_fd *a = NULL;
    CHECK_OK(blz_async_fd_new(efd, &a));
    CHECK_EQ(blz_async_fd_fd(a), efd);
    CHECK_EQ(blz_async_fd_try_ready(a, BLZ_READABLE), -EAGAIN); /* the counter is 0 */
    CHECK_OK(blz_async_fd_try_ready(a, BLZ_WRITABLE));

    bump_eventfd(efd, 5);
    CHECK_OK(ready_within(a, BLZ_READABLE));
    /* Not read yet: still ready, at once, as often as asked. */
    CHECK_OK(ready_within(a, BLZ_READABLE));
    CHECK_OK(blz_async_fd_try_ready(a, BLZ_READABLE));
    CHECK_EQ(drain_eventfd(efd), 5);
    /* Drained behind the runtime's back: the try tier sees it. */
    CHECK_EQ(blz_async_fd_try_ready(a, BLZ_READABLE), -EAGAIN);

    /* A wait that must sleep, polled by hand: pending until the write. */
    blz_context noop = {blz_waker_noop()};
    blz_io_future f;
    blz_async_fd_ready_fut(a, BLZ_READABLE, &f);
    CHECK_EQ(blz_future_poll(&f.base, &noop), BLZ_PENDING);
    bump_eventfd(efd, 1);
    CHECK_EQ(blz_timeout(&f.base, blz_secs(10)), 0);
    CHECK_EQ(drain_eventfd(efd), 1);

    /* A dropped wait leaves the watch usable. */
    blz_async_fd_ready_fut(a, BLZ_READABLE, &f);
    CHECK_EQ(blz_future_poll(&f.base, &noop), BLZ_PENDING);
    blz_future_drop(&f.base);
    bump_eventfd(efd, 2);
    CHECK_OK(ready_within(a, BLZ_READABLE));
    CHECK_EQ(drain_eventfd(efd), 2);

    blz_async_fd_free(a);
    CHECK_OK(close(efd));
    return NULL;
}

BLZ_TEST(ready_is_level_triggered)
{
    backend_run(2, level_main, NULL);
    backend_run(1, level_main, NULL);
}

/* ---- try_io ----------------------------------------------------------------------- */

typedef struct recv_call {
    int calls;
    char buf[8];
} recv_call;

static long
recv_some(int fd, void *arg)
{
    recv_call *c = arg;
    c->calls++;
    ssize_t r = recv(fd, c->buf, sizeof c->buf, MSG_DONTWAIT);
    return r < 0 ? -errno : (long) r;
}

static long
send_some(int fd, void *arg)
{
    (void) arg;
    static char chunk[65536];
    ssize_t r = send(fd, chunk, sizeof chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
    return r < 0 ? -errno : (long) r;
}

static void *
try_io_main(void *arg)
{
    (void) arg;
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    blz_async_fd *a = NULL;
    CHECK_OK(blz_async_fd_new(sv[0], &a));
    CHECK_EQ(write(sv[1], "hi", 2), 2);
    CHECK_OK(ready_within(a, BLZ_READABLE));
    recv_call c = {0};
    CHECK_EQ(blz_async_fd_try_io(a, BLZ_READABLE, recv_some, &c), 2);
    CHECK(memcmp(c.buf, "hi", 2) == 0);
    /* The next call finds nothing: -EAGAIN clears readiness... */
    CHECK_EQ(blz_async_fd_try_io(a, BLZ_READABLE, recv_some, &c), -EAGAIN);
    CHECK_EQ(c.calls, 2);
    /* ...so a later one does not even call. A report of the data that was
     * still on its way (the driver on the other worker, a completion the
     * ring posts late) may set readiness once more; the registry keeps such
     * a report rather than lose an event, and the next -EAGAIN clears it. */
    bool cleared = false;
    for (int i = 0; i < 100 && !cleared; i++) {
        int calls = c.calls;
        CHECK_EQ(blz_async_fd_try_io(a, BLZ_READABLE, recv_some, &c), -EAGAIN);
        cleared = c.calls == calls;
        if (!cleared) {
            blz_yield();
        }
    }
    CHECK(cleared);

    /* Writable: fill the socket through try_io, drain it, writable again. */
    CHECK_OK(ready_within(a, BLZ_WRITABLE));
    long r;
    size_t sent = 0;
    while ((r = blz_async_fd_try_io(a, BLZ_WRITABLE, send_some, NULL)) > 0) {
        sent += (size_t) r;
    }
    CHECK_EQ(r, -EAGAIN);
    CHECK_GT(sent, 0);
    CHECK_EQ(blz_async_fd_try_ready(a, BLZ_WRITABLE), -EAGAIN);
    char *sink = malloc(65536); /* not on the fiber's stack */
    CHECK(sink != NULL);
    size_t drained = 0;
    while (drained < sent) {
        ssize_t n = read(sv[1], sink, 65536);
        CHECK_GT(n, 0);
        drained += (size_t) n;
    }
    free(sink);
    CHECK_OK(ready_within(a, BLZ_WRITABLE));

    /* Argument errors. */
    CHECK_EQ(blz_async_fd_try_io(a, BLZ_READABLE, NULL, NULL), -EINVAL);
    CHECK_EQ(blz_async_fd_try_io(a, (blz_interest) 3, recv_some, &c), -EINVAL);
    CHECK_EQ(blz_async_fd_try_io(NULL, BLZ_READABLE, recv_some, &c), -EINVAL);
    CHECK_EQ(blz_async_fd_ready(NULL, BLZ_READABLE), -EINVAL);
    CHECK_EQ(blz_async_fd_ready(a, (blz_interest) 0), -EINVAL);
    CHECK_EQ(blz_async_fd_try_ready(a, (blz_interest) 4), -EINVAL);
    CHECK_EQ(blz_async_fd_fd(NULL), -EINVAL);

    blz_async_fd_free(a);
    CHECK_OK(close(sv[0]));
    CHECK_OK(close(sv[1]));
    return NULL;
}

BLZ_TEST(try_io_clears_readiness)
{
    backend_run(2, try_io_main, NULL);
}

/* ---- blz_async_fd_io: the caller's call, waited for ------------------------------- */

/* An eventfd read as a library's call: the counter, or -EAGAIN at 0. */
static long
read_counter(int fd, void *arg)
{
    atomic_fetch_add((_Atomic int *) arg, 1);
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof v);
    return r < 0 ? -errno : (long) v;
}

/* Returns `arg`'s scripted results in turn: -EINTR, then a value past INT_MAX. */
static long
scripted(int fd, void *arg)
{
    (void) fd;
    int *calls = arg;
    return (*calls)++ == 0 ? -EINTR : 3000000000L;
}

static long
fails(int fd, void *arg)
{
    (void) fd;
    (void) arg;
    return -EIO;
}

typedef struct pingpong {
    int efd;
    _Atomic int acked; /* messages the reader has taken */
} pingpong;

#define PINGS 2000

/* Bumps the counter once per message, each after the reader took the one before,
 * so the reader finds the counter at 0 and has to wait nearly every time. */
static void *
pinger(void *arg)
{
    pingpong *pp = arg;
    for (int i = 0; i < PINGS; i++) {
        while (atomic_load(&pp->acked) < i) {
            sched_yield();
        }
        bump_eventfd(pp->efd, 1);
    }
    return NULL;
}

static void *
io_main(void *arg)
{
    (void) arg;
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    CHECK_GE(efd, 0);
    blz_async_fd *a = NULL;
    CHECK_OK(blz_async_fd_new(efd, &a));
    _Atomic int calls = 0;

    /* Polled by hand: the call finds nothing and the future sleeps; polled
     * again with no report in between, it does not call again. A report of
     * the new registration may still be on its way (the driver on the other
     * worker) and is kept, so poll until one poll makes no call. */
    blz_context noop = {blz_waker_noop()};
    blz_async_io_future f;
    blz_async_fd_io_fut(a, BLZ_READABLE, read_counter, &calls, &f);
    CHECK_EQ(blz_future_poll(&f.base, &noop), BLZ_PENDING);
    CHECK_GE(atomic_load(&calls), 1);
    bool quiet = false;
    for (int i = 0; i < 100 && !quiet; i++) {
        int before = atomic_load(&calls);
        CHECK_EQ(blz_future_poll(&f.base, &noop), BLZ_PENDING);
        quiet = atomic_load(&calls) == before;
        if (!quiet) {
            blz_yield();
        }
    }
    CHECK(quiet);
    int before = atomic_load(&calls);
    bump_eventfd(efd, 9);
    CHECK_EQ(blz_timeout(&f.base, blz_secs(10)), 9);
    CHECK_GE(atomic_load(&calls), before + 1);

    /* Ready at once: one call, no wait. */
    bump_eventfd(efd, 4);
    before = atomic_load(&calls);
    CHECK_EQ(blz_async_fd_io(a, BLZ_READABLE, read_counter, &calls), 4);
    CHECK_EQ(atomic_load(&calls), before + 1);

    /* A dropped wait leaves the watch usable. */
    blz_async_fd_io_fut(a, BLZ_READABLE, read_counter, &calls, &f);
    CHECK_EQ(blz_future_poll(&f.base, &noop), BLZ_PENDING);
    blz_future_drop(&f.base);

    /* A writer thread in lock-step: every message arrives, none lost. */
    pingpong pp = {.efd = efd};
    pthread_t t;
    CHECK_OK(pthread_create(&t, NULL, pinger, &pp));
    for (int i = 0; i < PINGS; i++) {
        CHECK_EQ(blz_async_fd_io(a, BLZ_READABLE, read_counter, &calls), 1);
        atomic_store(&pp.acked, i + 1);
    }
    CHECK_OK(pthread_join(t, NULL));
    CHECK_EQ(blz_async_fd_try_io(a, BLZ_READABLE, read_counter, &calls), -EAGAIN);

    /* EINTR is retried; results past INT_MAX come back whole from the await
     * tier (the future's int result holds INT_MAX); errors come back as they
     * are. (Writable: the -EAGAIN above left the readable side waiting for a
     * report, and the calls run only once one came.) */
    int script = 0;
    CHECK_EQ(blz_async_fd_io(a, BLZ_WRITABLE, scripted, &script), 3000000000L);
    CHECK_EQ(script, 2);
    script = 0;
    blz_async_fd_io_fut(a, BLZ_WRITABLE, scripted, &script, &f);
    CHECK_EQ(blz_await(&f.base), INT_MAX);
    CHECK_EQ(blz_async_fd_io(a, BLZ_WRITABLE, fails, NULL), -EIO);

    /* Refusals. */
    CHECK_EQ(blz_async_fd_io(a, BLZ_READABLE, NULL, NULL), -EINVAL);
    CHECK_EQ(blz_async_fd_io(a, (blz_interest) 3, fails, NULL), -EINVAL);
    CHECK_EQ(blz_async_fd_io(NULL, BLZ_READABLE, fails, NULL), -EINVAL);
    blz_async_fd_io_fut(NULL, BLZ_READABLE, fails, NULL, &f);
    CHECK_EQ(blz_await(&f.base), -EINVAL);
    blz_async_fd_io_fut(a, BLZ_READABLE, fails, NULL, NULL); /* ignored */

    blz_async_fd_free(a);
    CHECK_OK(close(efd));
    return NULL;
}

BLZ_TEST(io_waits_until_the_call_gets_through)
{
    backend_run(2, io_main, NULL);
    backend_run(1, io_main, NULL);
}

/* Drains the other end of a full socket pair so the watched end can write again. */
static void *
drainer(void *arg)
{
    int fd = *(int *) arg;
    char *sink = malloc(65536);
    CHECK(sink != NULL);
    ssize_t n;
    while ((n = read(fd, sink, 65536)) > 0) {
    }
    CHECK_EQ(n, 0); /* until the writer closes */
    free(sink);
    return NULL;
}

typedef struct io_wait {
    blz_async_fd *a;
    _Atomic int calls;
    long result;
} io_wait;

static void *
wait_readable(void *arg)
{
    io_wait *w = arg;
    w->result = blz_async_fd_io(w->a, BLZ_READABLE, read_counter, &w->calls);
    return NULL;
}

static void *
io_write_and_cancel_main(void *arg)
{
    (void) arg;
    /* Writable: fill the buffer, then the call waits until a thread drains it. */
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    blz_async_fd *a = NULL;
    CHECK_OK(blz_async_fd_new(sv[0], &a));
    long r;
    while ((r = blz_async_fd_try_io(a, BLZ_WRITABLE, send_some, NULL)) > 0) {
    }
    CHECK_EQ(r, -EAGAIN);
    int fl = fcntl(sv[1], F_GETFL);
    CHECK_OK(fcntl(sv[1], F_SETFL, fl & ~O_NONBLOCK)); /* the drainer blocks */
    pthread_t t;
    CHECK_OK(pthread_create(&t, NULL, drainer, &sv[1]));
    CHECK_GT(blz_async_fd_io(a, BLZ_WRITABLE, send_some, NULL), 0);
    blz_async_fd_free(a);
    CHECK_OK(shutdown(sv[0], SHUT_WR));
    CHECK_OK(pthread_join(t, NULL));
    CHECK_OK(close(sv[0]));
    CHECK_OK(close(sv[1]));

    /* Freed while a task waits in it: that wait ends with -ECANCELED. Once
     * the call ran, the task's future holds the watch, so freeing is safe. */
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    CHECK_GE(efd, 0);
    io_wait w = {.result = 1};
    CHECK_OK(blz_async_fd_new(efd, &w.a));
    blz_join *h;
    CHECK_OK(blz_spawn(wait_readable, &w, &h));
    while (atomic_load(&w.calls) == 0) {
        blz_yield();
    }
    blz_async_fd_free(w.a);
    CHECK_OK(blz_join_wait(h, NULL));
    CHECK_EQ(w.result, -ECANCELED);
    CHECK_OK(close(efd));
    return NULL;
}

BLZ_TEST(io_writable_and_freed_while_waiting)
{
    backend_run(2, io_write_and_cancel_main, NULL);
}

/* ---- a hang-up that went away --------------------------------------------------------- */

/* One byte sent, as a library's call; stops after 100 calls in a row so that a
 * wait that keeps calling without ever sleeping fails instead of spinning. */
static long
send_capped(int fd, void *arg)
{
    int *calls = arg;
    if (++*calls > 100) {
        return -ELOOP;
    }
    ssize_t r = send(fd, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    return r < 0 ? -errno : (long) r;
}

/* Sends until the socket's buffer is full. */
static void
fill_socket(int fd)
{
    static char chunk[65536];
    while (send(fd, chunk, sizeof chunk, MSG_DONTWAIT | MSG_NOSIGNAL) > 0) {
    }
    CHECK_EQ(errno, EAGAIN);
}

/* Reads whatever the socket holds now. */
static void
drain_socket(int fd)
{
    char *sink = malloc(65536); /* not on the fiber's stack */
    CHECK(sink != NULL);
    while (recv(fd, sink, 65536, MSG_DONTWAIT) > 0) {
    }
    free(sink);
}

static void *
hangup_gone_main(void *arg)
{
    (void) arg;
    /* A library's stream socket, watched before it connects (socket2 and
     * AsyncFd do this, a hand-written client too): unconnected, the kernel
     * reports it hung up, which the watch records. */
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int len = snprintf(sa.sun_path + 1, sizeof sa.sun_path - 1, "blz_afd_hup_%d", (int) getpid());
    socklen_t salen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + (size_t) len);
    int lis = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK_GE(lis, 0);
    CHECK_OK(bind(lis, (struct sockaddr *) &sa, salen));
    CHECK_OK(listen(lis, 4));
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK_GE(s, 0);
    blz_async_fd *a = NULL;
    CHECK_OK(blz_async_fd_new(s, &a));
    blz__io_source *src = (blz__io_source *) (void *) a; /* its first member */
    for (int i = 0; i < 10000 && !(blz__io_source_readiness(src) & BLZ__RD_WCLOSED); i++) {
        blz_sleep(blz_ms(1));
    }
    CHECK(blz__io_source_readiness(src) & BLZ__RD_WCLOSED);

    /* Connected, the hang-up is over; with its send buffer full it is not
     * writable, so a write wait must sleep, not call again and again. */
    CHECK_OK(connect(s, (struct sockaddr *) &sa, salen));
    int peer = accept4(lis, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    CHECK_GE(peer, 0);
    fill_socket(s);
    int calls = 0;
    blz_context noop = {blz_waker_noop()};
    blz_async_io_future f;
    blz_async_fd_io_fut(a, BLZ_WRITABLE, send_capped, &calls, &f);
    CHECK_EQ(blz_future_poll(&f.base, &noop), BLZ_PENDING);
    CHECK_LE(calls, 2);
    /* Room again: the report wakes the wait and the call gets through. */
    drain_socket(peer);
    CHECK_EQ(blz_timeout(&f.base, blz_secs(10)), 1);

    /* The readiness wait too: it sleeps while full and wakes once drained. */
    fill_socket(s);
    blz_io_future g;
    blz_async_fd_ready_fut(a, BLZ_WRITABLE, &g);
    CHECK_EQ(blz_future_poll(&g.base, &noop), BLZ_PENDING);
    drain_socket(peer);
    CHECK_EQ(blz_timeout(&g.base, blz_secs(10)), 0);

    blz_async_fd_free(a);
    CHECK_OK(close(s));
    CHECK_OK(close(peer));
    CHECK_OK(close(lis));
    return NULL;
}

BLZ_TEST(a_hangup_that_went_away_lets_a_write_wait_sleep)
{
    backend_run(1, hangup_gone_main, NULL);
    backend_run(2, hangup_gone_main, NULL);
}

/* ---- wake-ups from other threads --------------------------------------------------- */

#define WATCHED 32
#define BUMPS   3000 /* per writer thread */

typedef struct fanin {
    int efd[WATCHED];
    blz_async_fd *a[WATCHED];
    _Atomic uint64_t seen;
    _Atomic int stop;
    unsigned seed;
} fanin;

typedef struct watcher_arg {
    fanin *fi;
    int i;
} watcher_arg;

/* Waits and drains one eventfd until told to stop. */
static void *
watcher(void *arg)
{
    watcher_arg *w = arg;
    fanin *fi = w->fi;
    while (!atomic_load(&fi->stop)) {
        int rc = ready_within(fi->a[w->i], BLZ_READABLE);
        if (rc == -ECANCELED) {
            break;
        }
        CHECK_OK(rc);
        atomic_fetch_add(&fi->seen, drain_eventfd(fi->efd[w->i]));
    }
    return NULL;
}

static void *
bumper(void *arg)
{
    fanin *fi = arg;
    unsigned s = atomic_fetch_add((_Atomic unsigned *) &fi->seed, 7919u);
    for (int k = 0; k < BUMPS; k++) {
        s = s * 1103515245u + 12345u;
        bump_eventfd(fi->efd[(s >> 8) % WATCHED], 1);
    }
    return NULL;
}

static void *
fanin_main(void *arg)
{
    fanin *fi = arg;
    watcher_arg wa[WATCHED];
    blz_join *h[WATCHED];
    for (int i = 0; i < WATCHED; i++) {
        fi->efd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        CHECK_GE(fi->efd[i], 0);
        CHECK_OK(blz_async_fd_new(fi->efd[i], &fi->a[i]));
        wa[i] = (watcher_arg){fi, i};
        CHECK_OK(blz_spawn(watcher, &wa[i], &h[i]));
    }
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        CHECK_OK(pthread_create(&t[i], NULL, bumper, fi));
    }
    for (int i = 0; i < 2; i++) {
        CHECK_OK(pthread_join(t[i], NULL));
    }
    /* Every bump is seen: none lost between a drain and the next wait. */
    for (int i = 0; i < 10000 && atomic_load(&fi->seen) < 2u * BUMPS; i++) {
        blz_sleep(blz_ms(1));
    }
    CHECK_EQ(atomic_load(&fi->seen), 2u * BUMPS);
    /* Freeing ends the waits in progress with -ECANCELED. */
    atomic_store(&fi->stop, 1);
    for (int i = 0; i < WATCHED; i++) {
        blz_async_fd_free(fi->a[i]);
    }
    for (int i = 0; i < WATCHED; i++) {
        CHECK_OK(blz_join_wait(h[i], NULL));
        CHECK_OK(close(fi->efd[i]));
    }
    return NULL;
}

BLZ_TEST(wakeups_from_threads_none_lost)
{
    for (int round = 0; round < 5; round++) {
        fanin fi;
        memset(&fi, 0, sizeof fi);
        fi.seed = (unsigned) round * 31u + 1u;
        backend_run(2, fanin_main, &fi);
    }
}

/* ---- the caller's descriptor ------------------------------------------------------- */

static void *
caller_closes_first_main(void *arg)
{
    (void) arg;
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    blz_async_fd *a = NULL;
    CHECK_OK(blz_async_fd_new(sv[0], &a));
    int old = sv[0];
    CHECK_OK(close(sv[0])); /* the library closed its socket first */

    /* The number comes back for another descriptor, watched on its own. */
    int sv2[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv2));
    blz_async_fd *b = NULL;
    CHECK_OK(blz_async_fd_new(sv2[0], &b));
    CHECK_EQ(blz_async_fd_fd(a), old);
    blz_async_fd_free(a); /* must not touch sv2[0], whatever its number */
    CHECK_EQ(write(sv2[1], "z", 1), 1);
    CHECK_OK(ready_within(b, BLZ_READABLE));
    char ch = 0;
    CHECK_EQ(read(sv2[0], &ch, 1), 1);
    CHECK_EQ(ch, 'z');

    /* With both closed, the peer sees end of file (on io_uring once the ring
     * has let go of the duplicate's poll). */
    ssize_t r = -1;
    for (int i = 0; i < 5000; i++) {
        r = recv(sv[1], &ch, 1, MSG_DONTWAIT);
        if (r == 0) {
            break;
        }
        blz_sleep(blz_ms(1));
    }
    CHECK_EQ(r, 0);
    blz_async_fd_free(b);
    CHECK_OK(close(sv[1]));
    CHECK_OK(close(sv2[0]));
    CHECK_OK(close(sv2[1]));
    return NULL;
}

BLZ_TEST(caller_closes_its_descriptor_first)
{
    backend_run(2, caller_closes_first_main, NULL);
}

static void *
refusals_main(void *arg)
{
    (void) arg;
    blz_async_fd *a = (blz_async_fd *) 1;
    CHECK_EQ(blz_async_fd_new(-1, &a), -EBADF);
    CHECK_PTR_EQ(a, NULL);
    char path[] = "/tmp/blz_afd_XXXXXX";
    int file = mkstemp(path);
    CHECK_GE(file, 0);
    CHECK_OK(unlink(path));
    CHECK_EQ(blz_async_fd_new(file, &a), -EPERM); /* a regular file */
    CHECK_OK(close(file));
    CHECK_EQ(blz_async_fd_new(file, &a), -EBADF); /* closed */
    int dir = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK_GE(dir, 0);
    CHECK_EQ(blz_async_fd_new(dir, &a), -EPERM);
    CHECK_OK(close(dir));
    /* A device the kernel cannot poll is always ready, like a file: refused
     * on every backend (epoll refuses it itself; an io_uring poll on it
     * completed at once each time it was armed, and the driver spun). */
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    CHECK_GE(nul, 0);
    CHECK_EQ(blz_async_fd_new(nul, &a), -EPERM);
    CHECK_PTR_EQ(a, NULL);
    CHECK_OK(close(nul));
    /* A path-only descriptor is no open file to watch, on every backend. */
    int path_only = open("/dev/null", O_PATH | O_CLOEXEC);
    CHECK_GE(path_only, 0);
    CHECK_EQ(blz_async_fd_new(path_only, &a), -EBADF);
    CHECK_OK(close(path_only));
    int sv[2];
    CHECK_OK(pipe2(sv, O_CLOEXEC));
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", sv[0]);
    path_only = open(proc, O_PATH | O_CLOEXEC); /* the pipe itself, by path */
    CHECK_GE(path_only, 0);
    CHECK_EQ(blz_async_fd_new(path_only, &a), -EBADF);
    CHECK_OK(close(path_only));
    CHECK_OK(close(sv[0]));
    CHECK_OK(close(sv[1]));
    int efd = eventfd(0, EFD_CLOEXEC);
    CHECK_GE(efd, 0);
    CHECK_EQ(blz_async_fd_new(efd, NULL), -EINVAL);
    CHECK_OK(close(efd));
    blz_async_fd_free(NULL);
    return NULL;
}

BLZ_TEST(refusals)
{
    backend_run(1, refusals_main, NULL);
    int efd = eventfd(0, EFD_CLOEXEC);
    CHECK_GE(efd, 0);
    blz_async_fd *a = NULL;
    CHECK_EQ(blz_async_fd_new(efd, &a), -ESRCH); /* no runtime */
    CHECK_OK(close(efd));
}

BLZ_TEST(no_leaks)
{
    blz_test_counting_allocator_install();
    backend_run(2, level_main, NULL);
    backend_run(2, try_io_main, NULL);
    backend_run(2, io_main, NULL);
    backend_run(2, io_write_and_cancel_main, NULL);
    CHECK_EQ(blz_test_alloc_live(), 0);
}
