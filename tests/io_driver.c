/*
 * The I/O driver without a runtime: backend choice and fallback, wakes,
 * readiness dispatch through the registry, the tick against stale clears,
 * late freeing of released sources, and io_uring completion ops with cancel.
 */
#include "harness.h"
#include "io/backend.h"
#include "io/driver.h"
#include "io/registry.h"
#include "rt_util.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- a waker that counts -------------------------------------------------------- */

static _Atomic int wakes;

static void
cw_wake(void *d)
{
    (void) d;
    atomic_fetch_add(&wakes, 1);
}

static void *
cw_clone(void *d)
{
    return d;
}

static void
cw_drop(void *d)
{
    (void) d;
}

static const blz_waker_vtable cw_vt = {cw_wake, cw_wake, cw_clone, cw_drop};
static const blz_waker cw = {&cw_vt, NULL};

static blz__io_driver *
driver(void)
{
    blz__io_driver *d = NULL;
    CHECK_OK(blz__io_driver_new(NULL, &d));
    const char *want = getenv("BLZ_BACKEND");
    if (want && strcmp(want, blz__io_driver_name(d)) != 0) {
        char msg[200];
        const char *why = blz__io_driver_fallback_reason(d);
        snprintf(msg, sizeof msg, "%s requested, %s in use: %s", want, blz__io_driver_name(d),
                 why ? why : "?");
        blz__io_driver_free(d);
        SKIP(msg);
    }
    return d;
}

BLZ_TEST(backend_names)
{
    blz__io_driver *d = NULL;
    CHECK_OK(blz__io_driver_new(&(blz__io_options){"epoll", 0, 0}, &d));
    CHECK_STR_EQ(blz__io_driver_name(d), "epoll");
    CHECK(blz__io_driver_fallback_reason(d) == NULL);
    CHECK(!blz__io_driver_supports(d, BLZ__OP_READ_AT));
    blz__io_driver_free(d);
    CHECK_EQ(blz__io_driver_new(&(blz__io_options){"kqueue", 0, 0}, &d), -EINVAL);
    CHECK_EQ(blz__io_driver_new(&(blz__io_options){"", 0, 0}, NULL), -EINVAL);
    /* Auto picks something that works. */
    unsetenv("BLZ_BACKEND");
    CHECK_OK(blz__io_driver_new(NULL, &d));
    CHECK(strcmp(blz__io_driver_name(d), "io_uring") == 0 ||
          strcmp(blz__io_driver_name(d), "epoll") == 0);
    blz__io_driver_free(d);
}

/* io_uring forbidden the way containers forbid it: io_uring_setup fails with
 * EPERM. The driver must fall back to epoll and say why. */
BLZ_TEST(uring_forbidden_falls_back_to_epoll)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {(unsigned short) (sizeof filter / sizeof filter[0]), filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        SKIP("cannot install a seccomp filter here");
    }
    blz__io_driver *d = NULL;
    CHECK_OK(blz__io_driver_new(&(blz__io_options){"io_uring", 0, 0}, &d));
    CHECK_STR_EQ(blz__io_driver_name(d), "epoll");
    CHECK(blz__io_driver_fallback_reason(d) != NULL);
    blz__io_driver_free(d);
    setenv("BLZ_BACKEND", "io_uring", 1);
    CHECK_OK(blz__io_driver_new(NULL, &d));
    CHECK_STR_EQ(blz__io_driver_name(d), "epoll");
    blz__io_driver_free(d);
    unsetenv("BLZ_BACKEND");
    CHECK_OK(blz__io_driver_new(NULL, &d));
    CHECK_STR_EQ(blz__io_driver_name(d), "epoll");
    CHECK(blz__io_driver_fallback_reason(d) == NULL); /* auto: nothing was asked for */
    blz__io_driver_free(d);
}

/* ---- wakes ----------------------------------------------------------------------------- */

static _Atomic int about_to_park;
static _Atomic int parker_tid;

static void *
waker_thread(void *arg)
{
    blz__io_driver *d = arg;
    while (!atomic_load(&about_to_park)) {
        sched_yield();
    }
    /* Wakes only once the test thread sleeps, which from here on it does
     * only in park(-1): the wake must interrupt a park, not be kept for one
     * to come (a fixed 20 ms nap left that to the machine's load). */
    int tid = atomic_load(&parker_tid);
    struct timespec ms = {0, 1000000};
    WAIT_UNTIL(thread_state(tid) == 'S', nanosleep(&ms, NULL));
    for (int i = 0; i < 100; i++) {
        blz__io_driver_wake(d);
    }
    return NULL;
}

BLZ_TEST(wake_interrupts_park)
{
    blz__io_driver *d = driver();
    CHECK_EQ(blz__io_driver_park(d, 0), 0);
    atomic_store(&parker_tid, thread_id());
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, waker_thread, d), 0);
    atomic_store(&about_to_park, 1);
    CHECK_OK(blz__io_driver_park(d, -1)); /* returns only because of the wake */
    pthread_join(t, NULL);
    /* Wakes coalesce; a wake before the park makes it return at once. */
    blz__io_driver_wake(d);
    CHECK_OK(blz__io_driver_park(d, -1));
    for (int i = 0; i < 3; i++) {
        CHECK_OK(blz__io_driver_park(d, 0));
    }
    blz__io_driver_free(d);
}

/* ---- readiness -------------------------------------------------------------------------- */

BLZ_TEST(readiness_dispatch_and_sweep)
{
    blz__io_driver *d = driver();
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    blz__io_source *s = NULL;
    CHECK_OK(blz__io_source_open(d, sv[0], 0, 0, &s));
    CHECK_EQ(blz__io_driver_sources(d), 1);
    /* Arming reports the writability present at arm time. */
    for (int i = 0; i < 100 && !blz__io_ready_for(blz__io_source_readiness(s), BLZ__DIR_WRITE);
         i++) {
        CHECK_OK(blz__io_driver_park(d, 10 * 1000000LL));
    }
    CHECK(blz__io_ready_for(blz__io_source_readiness(s), BLZ__DIR_WRITE));

    blz_waiter w;
    blz__io_waiter_init(&w);
    blz_context cx = {&cw};
    atomic_store(&wakes, 0);
    CHECK_EQ(blz__io_source_poll(s, &w, BLZ__DIR_READ, &cx), 0); /* not readable: linked */
    CHECK_EQ(blz__io_driver_waiters(d), 1);
    CHECK_EQ(write(sv[1], "x", 1), 1);
    for (int i = 0; i < 100 && atomic_load(&wakes) == 0; i++) {
        CHECK_OK(blz__io_driver_park(d, 10 * 1000000LL));
    }
    CHECK_EQ(atomic_load(&wakes), 1);
    CHECK_EQ(blz__io_driver_waiters(d), 0);
    uint64_t r = blz__io_source_poll(s, &w, BLZ__DIR_READ, &cx);
    CHECK(r != 0);

    /* A clear against a stale tick does nothing; against the current one it clears. */
    char c;
    CHECK_EQ(read(sv[0], &c, 1), 1);
    uint64_t stale = r - (1ull << BLZ__TICK_SHIFT);
    blz__io_source_clear(s, BLZ__DIR_READ, stale);
    CHECK(blz__io_ready_for(blz__io_source_readiness(s), BLZ__DIR_READ));
    blz__io_source_clear(s, BLZ__DIR_READ, blz__io_source_readiness(s));
    CHECK(!blz__io_ready_for(blz__io_source_readiness(s), BLZ__DIR_READ));

    /* A waiter cancelled before any event leaves nothing behind. */
    CHECK_EQ(blz__io_source_poll(s, &w, BLZ__DIR_READ, &cx), 0);
    CHECK_EQ(blz__io_driver_waiters(d), 1);
    blz__io_waiter_cancel(s, &w);
    CHECK_EQ(blz__io_driver_waiters(d), 0);

    /* Close: waiters are woken, the fd closes, the memory goes at a later park. */
    CHECK_EQ(blz__io_source_poll(s, &w, BLZ__DIR_READ, &cx), 0);
    atomic_store(&wakes, 0);
    blz__io_source_ref(s); /* the "future" holds a reference */
    blz__io_source_close(s);
    CHECK_EQ(atomic_load(&wakes), 1);
    r = blz__io_source_poll(s, &w, BLZ__DIR_READ, &cx);
    CHECK(r & BLZ__RD_SHUTDOWN);
    blz__io_source_unref(s); /* the last reference: closes sv[0] */
    CHECK_EQ(blz__io_driver_sources(d), 0);
    CHECK_EQ(send(sv[1], "y", 1, MSG_NOSIGNAL), -1); /* the peer is gone */
    for (int i = 0; i < 5; i++) {
        CHECK_OK(blz__io_driver_park(d, 1000000LL)); /* sweeps (ASan checks the free) */
    }
    close(sv[1]);
    blz__io_driver_free(d);
}

/* ---- waiter registration: the slot and the lists ----------------------------------- */

/* A waker that counts into its own counter (data = the counter). */
static void
cc_wake(void *d)
{
    atomic_fetch_add((_Atomic int *) d, 1);
}

static const blz_waker_vtable cc_vt = {cc_wake, cc_wake, cw_clone, cw_drop};

BLZ_TEST(waiters_in_slot_and_lists)
{
    blz__io_driver *d = driver();
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    blz__io_source *s = NULL;
    CHECK_OK(blz__io_source_open(d, sv[0], 0, 0, &s)); /* nothing ready until we say so */
    static _Atomic int n[4];
    blz_waiter w[4];
    blz_waker wk[4];
    blz_context cx[4];
    for (int i = 0; i < 4; i++) {
        blz__io_waiter_init(&w[i]);
        atomic_store(&n[i], 0);
        wk[i] = (blz_waker){&cc_vt, (void *) &n[i]};
        cx[i] = (blz_context){&wk[i]};
    }
    /* Three readers (the first takes the slot, the others queue) and a writer. */
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(blz__io_source_poll(s, &w[i], BLZ__DIR_READ, &cx[i]), 0);
    }
    CHECK_EQ(blz__io_source_poll(s, &w[3], BLZ__DIR_WRITE, &cx[3]), 0);
    CHECK_EQ(blz__io_driver_waiters(d), 4);
    /* Polled again without a wake: still registered once. */
    CHECK_EQ(blz__io_source_poll(s, &w[0], BLZ__DIR_READ, &cx[0]), 0);
    CHECK_EQ(blz__io_source_poll(s, &w[1], BLZ__DIR_READ, &cx[1]), 0);
    CHECK_EQ(blz__io_driver_waiters(d), 4);
    /* Dropped waiters, from the slot and from the list, are never woken. */
    blz__io_waiter_cancel(s, &w[0]);
    blz__io_waiter_cancel(s, &w[1]);
    CHECK_EQ(blz__io_driver_waiters(d), 2);
    blz__io_source_ready(s, BLZ__RD_READ);
    CHECK_EQ(atomic_load(&n[0]), 0);
    CHECK_EQ(atomic_load(&n[1]), 0);
    CHECK_EQ(atomic_load(&n[2]), 1);
    CHECK_EQ(atomic_load(&n[3]), 0); /* read readiness leaves the writer waiting */
    CHECK_EQ(blz__io_driver_waiters(d), 1);
    blz__io_source_ready(s, BLZ__RD_WRITE);
    CHECK_EQ(atomic_load(&n[3]), 1);
    CHECK_EQ(blz__io_driver_waiters(d), 0);

    /* Two readers in the same direction are both woken. */
    blz__io_source_clear(s, BLZ__DIR_READ, blz__io_source_readiness(s));
    CHECK_EQ(blz__io_source_poll(s, &w[2], BLZ__DIR_READ, &cx[2]), 0); /* slot */
    CHECK_EQ(blz__io_source_poll(s, &w[1], BLZ__DIR_READ, &cx[1]), 0); /* list */
    blz__io_source_ready(s, BLZ__RD_READ);
    CHECK_EQ(atomic_load(&n[1]), 1);
    CHECK_EQ(atomic_load(&n[2]), 2);

    /* A woken waiter whose slot another took meanwhile is not in it any more:
     * polled again, it queues, and leaves the new holder's waker alone. */
    blz__io_source_clear(s, BLZ__DIR_READ, blz__io_source_readiness(s));
    CHECK_EQ(blz__io_source_poll(s, &w[0], BLZ__DIR_READ, &cx[0]), 0); /* slot */
    blz__io_source_ready(s, BLZ__RD_READ);
    CHECK_EQ(atomic_load(&n[0]), 1);
    blz__io_source_clear(s, BLZ__DIR_READ, blz__io_source_readiness(s));
    CHECK_EQ(blz__io_source_poll(s, &w[2], BLZ__DIR_READ, &cx[2]), 0); /* takes the slot */
    CHECK_EQ(blz__io_source_poll(s, &w[0], BLZ__DIR_READ, &cx[0]), 0); /* queues */
    CHECK_EQ(blz__io_driver_waiters(d), 2);
    blz__io_source_ready(s, BLZ__RD_READ);
    CHECK_EQ(atomic_load(&n[0]), 2);
    CHECK_EQ(atomic_load(&n[2]), 3);
    /* Ready now: a poll of a woken waiter just reports it. */
    CHECK(blz__io_source_poll(s, &w[0], BLZ__DIR_READ, &cx[0]) != 0);
    CHECK(blz__io_source_poll(s, &w[2], BLZ__DIR_READ, &cx[2]) != 0);
    CHECK_EQ(blz__io_driver_waiters(d), 0);

    blz__io_source_close(s);
    for (int i = 0; i < 5; i++) {
        CHECK_OK(blz__io_driver_park(d, 1000000LL));
    }
    close(sv[1]);
    blz__io_driver_free(d);
}

/* Registration against a dispatch on another thread: in every round the
 * dispatcher wakes once while two waiters poll, and each waiter must then see
 * the readiness or have been woken. Every third round the first waiter is
 * dropped and freed at once, racing the dispatch (ASan sees a late touch). */
typedef struct reg_race {
    blz__io_source *s;
    _Atomic int go, done, stop;
} reg_race;

static void *
reg_race_dispatcher(void *arg)
{
    reg_race *c = arg;
    for (int i = 1;; i++) {
        while (atomic_load(&c->go) < i) {
            if (atomic_load(&c->stop)) {
                return NULL;
            }
            sched_yield();
        }
        blz__io_source_ready(c->s, BLZ__RD_READ);
        atomic_store(&c->done, i);
    }
}

BLZ_TEST(registration_races_dispatch)
{
    blz__io_driver *d = driver();
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    static reg_race c;
    CHECK_OK(blz__io_source_open(d, sv[0], 0, 0, &c.s));
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, reg_race_dispatcher, &c), 0);
    static _Atomic int n[2];
    blz_waker wk[2] = {{&cc_vt, (void *) &n[0]}, {&cc_vt, (void *) &n[1]}};
    blz_context cx[2] = {{&wk[0]}, {&wk[1]}};
    int lost = 0;
    for (int i = 1; i <= 20000 && !lost; i++) {
        blz__io_source_clear(c.s, BLZ__DIR_READ, blz__io_source_readiness(c.s));
        blz_waiter *w[2];
        for (int k = 0; k < 2; k++) {
            w[k] = malloc(sizeof *w[k]);
            CHECK(w[k] != NULL);
            blz__io_waiter_init(w[k]);
            atomic_store(&n[k], 0);
        }
        bool drop_first = i % 3 == 0;
        atomic_store(&c.go, i);
        uint64_t r[2];
        r[0] = blz__io_source_poll(c.s, w[0], BLZ__DIR_READ, &cx[0]);
        if (drop_first) {
            blz__io_waiter_cancel(c.s, w[0]);
            free(w[0]);
            w[0] = NULL;
        }
        r[1] = blz__io_source_poll(c.s, w[1], BLZ__DIR_READ, &cx[1]);
        while (atomic_load(&c.done) < i) {
            sched_yield();
        }
        for (int k = drop_first ? 1 : 0; k < 2; k++) {
            if (r[k] == 0 && atomic_load(&n[k]) == 0) {
                lost = i;
            }
        }
        for (int k = 0; k < 2; k++) {
            if (w[k]) {
                blz__io_waiter_cancel(c.s, w[k]);
                free(w[k]);
            }
        }
    }
    atomic_store(&c.stop, 1);
    pthread_join(t, NULL);
    CHECK_EQ(lost, 0);
    CHECK_EQ(blz__io_driver_waiters(d), 0);
    blz__io_source_close(c.s);
    for (int i = 0; i < 5; i++) {
        CHECK_OK(blz__io_driver_park(d, 1000000LL));
    }
    close(sv[1]);
    blz__io_driver_free(d);
}

/* Many sources registered and released from several threads while one parks. */
typedef struct churn_ctx {
    blz__io_driver *d;
    _Atomic int stop;
} churn_ctx;

static void *
churn_thread(void *arg)
{
    churn_ctx *c = arg;
    for (int i = 0; i < 300; i++) {
        int sv[2];
        CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
        blz__io_source *a = NULL, *b = NULL;
        CHECK_OK(blz__io_source_open(c->d, sv[0], 0, BLZ__RD_READ | BLZ__RD_WRITE, &a));
        CHECK_OK(blz__io_source_open(c->d, sv[1], 0, BLZ__RD_READ | BLZ__RD_WRITE, &b));
        CHECK_EQ(write(sv[0], "z", 1), 1);
        blz__io_source_close(a);
        blz__io_source_close(b);
    }
    return NULL;
}

static void *
parker_thread(void *arg)
{
    churn_ctx *c = arg;
    while (!atomic_load(&c->stop)) {
        CHECK_OK(blz__io_driver_park(c->d, 1000000LL));
    }
    return NULL;
}

BLZ_TEST(register_release_churn)
{
    churn_ctx c = {driver(), 0};
    pthread_t p, t[3];
    CHECK_EQ(pthread_create(&p, NULL, parker_thread, &c), 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(pthread_create(&t[i], NULL, churn_thread, &c), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
    }
    atomic_store(&c.stop, 1);
    blz__io_driver_wake(c.d);
    pthread_join(p, NULL);
    CHECK_EQ(blz__io_driver_sources(c.d), 0);
    blz__io_driver_free(c.d);
}

/* ---- completion ops (io_uring) -------------------------------------------------------------- */

typedef struct test_op {
    blz__io_op op;
    _Atomic int done;
    int32_t res;
    char buf[64];
} test_op;

static void
op_done(blz__io_op *op, int32_t res)
{
    test_op *t = (test_op *) op;
    t->res = res;
    atomic_store(&t->done, 1);
}

static void
op_wait(blz__io_driver *d, test_op *t)
{
    for (int i = 0; i < 500 && !atomic_load(&t->done); i++) {
        CHECK_OK(blz__io_driver_park(d, 10 * 1000000LL));
    }
    CHECK(atomic_load(&t->done));
}

BLZ_TEST(uring_completion_ops)
{
    blz__io_driver *d = driver();
    if (strcmp(blz__io_driver_name(d), "io_uring") != 0) {
        test_op t = {.op = {.kind = BLZ__OP_NOP, .done = op_done}};
        CHECK_EQ(blz__io_driver_submit(d, &t.op), -EOPNOTSUPP);
        blz__io_driver_free(d);
        SKIP("completion ops need io_uring");
    }
    CHECK(blz__io_driver_supports(d, BLZ__OP_READ_AT));

    test_op nop = {.op = {.kind = BLZ__OP_NOP, .done = op_done}};
    CHECK_OK(blz__io_driver_submit(d, &nop.op));
    op_wait(d, &nop);
    CHECK_EQ(nop.res, 0);

    /* Write then read back at an offset. */
    char path[] = "/tmp/blz-io-XXXXXX";
    int fd = mkstemp(path);
    CHECK_OK(fd);
    unlink(path);
    test_op w = {.op = {.kind = BLZ__OP_WRITE_AT, .fd = fd, .len = 5, .off = 100, .done = op_done}};
    memcpy(w.buf, "hello", 5);
    w.op.buf = w.buf;
    CHECK_OK(blz__io_driver_submit(d, &w.op));
    op_wait(d, &w);
    CHECK_EQ(w.res, 5);
    test_op r = {.op = {.kind = BLZ__OP_READ_AT, .fd = fd, .len = 5, .off = 100, .done = op_done}};
    r.op.buf = r.buf;
    CHECK_OK(blz__io_driver_submit(d, &r.op));
    op_wait(d, &r);
    CHECK_EQ(r.res, 5);
    CHECK(memcmp(r.buf, "hello", 5) == 0);
    close(fd);

    /* A recv with nothing to receive, cancelled: the done call still comes. */
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    test_op rv = {.op = {.kind = BLZ__OP_RECV, .fd = sv[0], .len = 8, .done = op_done}};
    rv.op.buf = rv.buf;
    CHECK_OK(blz__io_driver_submit(d, &rv.op));
    CHECK_OK(blz__io_driver_park(d, 1000000LL));
    CHECK(!atomic_load(&rv.done));
    CHECK_OK(blz__io_driver_cancel(d, &rv.op));
    op_wait(d, &rv);
    CHECK_EQ(rv.res, -ECANCELED);

    /* Send and recv pair up. */
    test_op rv2 = {.op = {.kind = BLZ__OP_RECV, .fd = sv[0], .len = 8, .done = op_done}};
    rv2.op.buf = rv2.buf;
    CHECK_OK(blz__io_driver_submit(d, &rv2.op));
    test_op sd = {.op = {.kind = BLZ__OP_SEND, .fd = sv[1], .len = 3, .done = op_done}};
    memcpy(sd.buf, "abc", 3);
    sd.op.buf = sd.buf;
    CHECK_OK(blz__io_driver_submit(d, &sd.op));
    op_wait(d, &sd);
    op_wait(d, &rv2);
    CHECK_EQ(sd.res, 3);
    CHECK_EQ(rv2.res, 3);

    /* An op still in flight at free is cancelled and completed by fini. */
    test_op late = {.op = {.kind = BLZ__OP_RECV, .fd = sv[0], .len = 8, .done = op_done}};
    late.op.buf = late.buf;
    CHECK_OK(blz__io_driver_submit(d, &late.op));
    blz__io_driver_free(d);
    CHECK(atomic_load(&late.done));
    CHECK_EQ(late.res, -ECANCELED);
    close(sv[0]);
    close(sv[1]);
}

/* io_uring cancels a thread's requests when the thread exits: a source armed
 * by a thread that is gone must be re-armed by the driver and keep reporting. */
typedef struct arm_ctx {
    blz__io_driver *d;
    int fd;
    blz__io_source *src;
} arm_ctx;

static void *
arm_and_exit(void *arg)
{
    arm_ctx *c = arg;
    CHECK_OK(blz__io_source_open(c->d, c->fd, 0, 0, &c->src));
    return NULL;
}

BLZ_TEST(source_outlives_the_thread_that_armed_it)
{
    blz__io_driver *d = driver();
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv));
    arm_ctx c = {d, sv[0], NULL};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, arm_and_exit, &c), 0);
    pthread_join(t, NULL);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 20; i++) {
            CHECK_OK(blz__io_driver_park(d, 2 * 1000000LL)); /* reap cancellations, re-arm */
        }
        blz_waiter w;
        blz__io_waiter_init(&w);
        blz_context cx = {&cw};
        atomic_store(&wakes, 0);
        uint64_t r = blz__io_source_readiness(c.src);
        blz__io_source_clear(c.src, BLZ__DIR_READ, r);
        CHECK_EQ(blz__io_source_poll(c.src, &w, BLZ__DIR_READ, &cx), 0);
        CHECK_EQ(write(sv[1], "x", 1), 1);
        for (int i = 0; i < 200 && atomic_load(&wakes) == 0; i++) {
            CHECK_OK(blz__io_driver_park(d, 10 * 1000000LL));
        }
        CHECK_EQ(atomic_load(&wakes), 1);
        char ch;
        CHECK_EQ(read(sv[0], &ch, 1), 1);
    }
    blz__io_source_close(c.src);
    for (int i = 0; i < 5; i++) {
        CHECK_OK(blz__io_driver_park(d, 1000000LL));
    }
    close(sv[1]);
    blz__io_driver_free(d);
}

/* Wakes are never lost: each waker posts a request, wakes the driver and
 * waits for the parker (looping in park(-1)) to see it. A wake swallowed by
 * the coalescing flag would leave a waker waiting for good. */
typedef struct wake_ctx {
    blz__io_driver *d;
    _Atomic uint64_t requests, acked;
    _Atomic int stop, stuck;
} wake_ctx;

static void *
wake_parker(void *arg)
{
    wake_ctx *c = arg;
    while (!atomic_load(&c->stop)) {
        CHECK_OK(blz__io_driver_park(c->d, -1));
        atomic_store(&c->acked, atomic_load(&c->requests));
    }
    return NULL;
}

static void *
wake_poster(void *arg)
{
    wake_ctx *c = arg;
    for (int i = 0; i < 5000 && !atomic_load(&c->stuck); i++) {
        uint64_t mine = atomic_fetch_add(&c->requests, 1) + 1;
        blz__io_driver_wake(c->d);
        blz_instant t0 = blz_now();
        while (atomic_load(&c->acked) < mine) {
            if (blz_now() - t0 > 5 * BLZ_NS_PER_S) {
                atomic_store(&c->stuck, 1);
                return NULL;
            }
            sched_yield();
        }
    }
    return NULL;
}

/* Wakes in a tight loop, so that drains race with writes all the time. */
static void *
wake_noise(void *arg)
{
    wake_ctx *c = arg;
    while (!atomic_load(&c->stop) && !atomic_load(&c->stuck)) {
        blz__io_driver_wake(c->d);
    }
    return NULL;
}

BLZ_TEST(wakes_are_never_lost)
{
    static wake_ctx c;
    c.d = driver();
    pthread_t p, t[2], noise;
    CHECK_EQ(pthread_create(&p, NULL, wake_parker, &c), 0);
    CHECK_EQ(pthread_create(&noise, NULL, wake_noise, &c), 0);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(pthread_create(&t[i], NULL, wake_poster, &c), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
    }
    atomic_store(&c.stop, 1);
    pthread_join(noise, NULL);
    /* Wake the parker until it sees `stop` and ends: never free the driver
     * under it. */
    for (int i = 0; pthread_tryjoin_np(p, NULL) != 0; i++) {
        CHECK(i < 10000); /* 10 s */
        blz__io_driver_wake(c.d);
        usleep(1000);
    }
    CHECK_EQ(atomic_load(&c.stuck), 0);
    blz__io_driver_free(c.d);
}
