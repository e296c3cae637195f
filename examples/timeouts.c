/*
 * examples/timeouts.c — timeout patterns, each run and checked:
 *
 *   1. A timeout around a receive that cannot finish in time: blz_timeout()
 *      gives -ETIMEDOUT and drops the receive, which consumes nothing, so a
 *      value sent afterwards is still there for the next receive.
 *   2. Deadline propagation: one absolute deadline (a blz_deadline) handed to
 *      several steps in turn, each bounded by blz_timeout_until(), so together
 *      they cannot overrun the budget; the step that would hits the deadline
 *      and the step after it does not start.
 *   3. Retry with exponential backoff: a client connects to a loopback port
 *      whose listener only appears about 50 ms later, backing off 10, 20,
 *      40 ... ms (capped, a bounded number of attempts, never sleeping past
 *      its own deadline). The port is bound before it is handed over, so a
 *      refused connect means "not listening yet", never "someone else's port".
 *   4. An interval: a stackless task counts ticks of blz_interval through the
 *      future tier and reports the instants they were scheduled for.
 *
 *   build/examples/timeouts        (BLZ_BACKEND=epoll|io_uring to choose)
 *
 * Each section prints what happened, prefixed with its number. The program
 * exits 0 when every section behaved as described, 1 with the reason on
 * stderr when one did not, and 2 (usage) when given arguments. It takes
 * under a second and uses 127.0.0.1 only; tests/time_examples.c drives it.
 */
#include "blitzio.h"
#include "blitzio/chan.h"
#include "blitzio/net.h"
#include "blitzio/task.h"
#include "blitzio/time.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define RECV_LIMIT   blz_ms(50)  /* section 1: the receive that times out */
#define GENEROUS     blz_secs(5) /* a limit that only turns a hang into an error */
#define BUDGET       blz_ms(500) /* section 2: the whole request's budget */
#define LISTEN_DELAY blz_ms(50)  /* section 3: how long the port is bound but not listening */
#define BACKOFF_MIN  blz_ms(10)  /* section 3: the first pause between attempts */
#define BACKOFF_MAX  blz_ms(160) /* section 3: the longest pause */
#define MAX_ATTEMPTS 8           /* section 3: connects before giving up */
#define RETRY_BUDGET blz_secs(3) /* section 3: all attempts and pauses together */
#define TICK_PERIOD  blz_ms(20)  /* section 4 */
#define TICKS        5           /* section 4: ticks to count, the first one immediate */
#define GREETING     "hello\n"
#define NOT_STARTED  1 /* section 2: a step the deadline kept from starting */

static long long
ms_of(blz_duration d)
{
    return (long long) (d / BLZ_NS_PER_MS);
}

/* Reports on stderr what went wrong in section `n`; returns -1 for the caller to pass on. */
static int
fail(int n, const char *what, int got)
{
    if (got < 0) {
        fprintf(stderr, "timeouts: section %d: %s: -%s (%s)\n", n, what, blz_errname(got),
                blz_strerror(got));
    } else {
        fprintf(stderr, "timeouts: section %d: %s (got %d)\n", n, what, got);
    }
    return -1;
}

/* ---- 1. a timeout around a receive --------------------------------------- */

static void *
send_answer(void *arg)
{
    int v = 42;
    return (void *) (intptr_t) blz_chan_send(arg, &v);
}

static int
section_timeout(void)
{
    blz_chan ch;
    int rc = blz_chan_init(&ch, sizeof(int), 4);
    if (rc < 0) {
        return fail(1, "blz_chan_init", rc);
    }
    int result = -1;
    int value = 0;
    blz_join *sender = NULL;

    /* Nobody sends yet: the receive cannot finish within the limit. */
    blz_chan_recv_future recv;
    blz_chan_recv_fut(&ch, &value, &recv);
    rc = blz_timeout(&recv.base, RECV_LIMIT);
    if (rc != -ETIMEDOUT) {
        fail(1, "receive on an empty channel: expected -ETIMEDOUT", rc);
        goto out;
    }
    printf("1. receive on an empty channel, limit %lld ms: -%s\n", ms_of(RECV_LIMIT),
           blz_errname(rc));

    /* The timeout dropped the receive: it took nothing and left no waiter
     * behind, so the channel works on as if it had never been tried. */
    rc = blz_spawn(send_answer, &ch, &sender);
    if (rc < 0) {
        fail(1, "blz_spawn", rc);
        goto out;
    }
    blz_chan_recv_fut(&ch, &value, &recv);
    rc = blz_timeout(&recv.base, GENEROUS); /* inner's result when it finishes in time */
    if (rc < 0) {
        fail(1, "receive after the timeout", rc);
        goto out;
    }
    if (value != 42) {
        fail(1, "receive after the timeout: expected 42", value);
        goto out;
    }
    printf("1. after the timeout, the next receive got %d (nothing lost)\n", value);
    result = 0;
out:
    if (sender) {
        void *sent = NULL;
        rc = blz_join_wait(sender, &sent);
        if (result == 0 && (rc < 0 || sent != NULL)) {
            result = fail(1, "sender", rc < 0 ? rc : (int) (intptr_t) sent);
        }
    }
    blz_chan_deinit(&ch);
    return result;
}

/* ---- 2. one deadline for several steps ----------------------------------- */

/* One step of a request. Its work (a sleep standing in for a query, a call to
 * another service...) is bounded by the request's deadline, not by a budget
 * of its own: whatever earlier steps spent is no longer available. */
static int
request_step(blz_duration work, blz_deadline dl)
{
    blz_sleep_future w;
    blz_sleep_fut(&w, work);
    return blz_timeout_until(&w.base, dl.at); /* -ETIMEDOUT: `w` was dropped */
}

static int
section_deadline(void)
{
    static const long long work_ms[] = {20, 20, 5000, 20};
    static const int expect[] = {0, 0, -ETIMEDOUT, NOT_STARTED};
    blz_deadline dl = blz_deadline_after(BUDGET);
    printf("2. deadline: %lld ms for %zu steps\n", ms_of(BUDGET),
           sizeof work_ms / sizeof work_ms[0]);
    for (size_t i = 0; i < sizeof work_ms / sizeof work_ms[0]; i++) {
        int step = (int) i + 1;
        int rc;
        if (blz_deadline_expired(dl)) {
            rc = NOT_STARTED;
            printf("2. step %d (work %lld ms): not started, the deadline has passed\n", step,
                   work_ms[i]);
        } else {
            long long left = ms_of(blz_deadline_remaining(dl));
            rc = request_step(blz_ms(work_ms[i]), dl);
            if (rc == 0) {
                printf("2. step %d (work %lld ms, %lld ms left): done\n", step, work_ms[i], left);
            } else {
                printf("2. step %d (work %lld ms, %lld ms left): -%s\n", step, work_ms[i], left,
                       blz_errname(rc));
            }
        }
        if (rc != expect[i]) {
            return fail(2, "a step ended otherwise than expected", rc);
        }
        /* A timer never fires before its deadline, so a step cut short
         * leaves the deadline expired for every later step. */
        if (rc == -ETIMEDOUT && !blz_deadline_expired(dl)) {
            return fail(2, "a step timed out before the deadline", rc);
        }
    }
    return 0;
}

/* ---- 3. retry with backoff ------------------------------------------------ */

typedef struct late_listener {
    blz_oneshot *port_tx; /* the bound port goes here before listening starts */
    blz_duration delay;   /* how long the port stays bound but not listening */
} late_listener;

/* Binds 127.0.0.1:0, hands the port over, listens only after `delay`, then
 * answers one connection with GREETING. Returns 0 or -errno (as a pointer). */
static void *
late_listener_main(void *arg)
{
    late_listener *ll = arg;
    blz_tcp_socket *sock = NULL;
    blz_addr addr;
    int rc = blz_addr_parse("127.0.0.1:0", &addr);
    if (rc == 0) {
        rc = blz_tcp_socket_new(BLZ_AF_INET, &sock);
    }
    if (rc == 0) {
        rc = blz_tcp_socket_bind(sock, &addr);
    }
    if (rc == 0) {
        rc = blz_tcp_socket_local_addr(sock, &addr);
    }
    int port = rc == 0 ? blz_addr_port(&addr) : rc;
    if (port < 0 || (rc = blz_oneshot_send(ll->port_tx, &port)) < 0) {
        blz_oneshot_close_tx(ll->port_tx); /* the client sees -EPIPE */
        blz_tcp_socket_close(sock);
        return (void *) (intptr_t) (port < 0 ? port : rc);
    }

    /* Bound, not listening: until the listen, every connect is refused. */
    rc = blz_sleep(ll->delay);
    if (rc < 0) {
        blz_tcp_socket_close(sock);
        return (void *) (intptr_t) rc;
    }
    blz_tcp_listener *l = NULL;
    rc = blz_tcp_socket_listen(sock, 0, &l); /* consumes `sock` */
    if (rc < 0) {
        return (void *) (intptr_t) rc;
    }
    blz_tcp_stream *s = NULL;
    blz_accept_future acc;
    blz_tcp_accept_fut(l, &s, NULL, &acc);
    rc = blz_timeout(&acc.base, GENEROUS);
    if (rc == 0) {
        rc = blz_tcp_write_all(s, GREETING, strlen(GREETING));
        blz_tcp_close(s);
    }
    blz_tcp_listener_close(l);
    return (void *) (intptr_t) rc;
}

/* Connects to `addr`, retrying refused connects with exponential backoff.
 * Every attempt and every pause is bounded by `dl`. */
static int
connect_with_backoff(const blz_addr *addr, blz_deadline dl, blz_tcp_stream **out)
{
    blz_duration backoff = BACKOFF_MIN;
    for (int attempt = 1;; attempt++) {
        int rc = blz_tcp_connect_addr_until(addr, dl.at, out);
        if (rc == 0) {
            printf("3. attempt %d: connected\n", attempt);
            return 0;
        }
        if (rc != -ECONNREFUSED || attempt == MAX_ATTEMPTS) {
            printf("3. attempt %d: -%s, giving up\n", attempt, blz_errname(rc));
            return rc;
        }
        printf("3. attempt %d: -%s, next attempt in %lld ms\n", attempt, blz_errname(rc),
               ms_of(backoff));
        /* Never pause past the deadline: the connect after it would fail anyway. */
        blz_instant next = blz_instant_add(blz_clock_now(), backoff);
        rc = blz_sleep_until(next < dl.at ? next : dl.at);
        if (rc < 0) {
            return rc;
        }
        backoff = backoff >= BACKOFF_MAX / 2 ? BACKOFF_MAX : backoff * 2;
    }
}

/* Reads one line (up to '\n' or the end of the stream) into buf before `dl`.
 * Returns its length, or -errno (-ETIMEDOUT, -EMSGSIZE for a line too long). */
static int
read_line_until(blz_tcp_stream *s, char *buf, size_t cap, blz_instant dl)
{
    size_t have = 0;
    while (have == 0 || buf[have - 1] != '\n') {
        if (have + 1 >= cap) {
            return -EMSGSIZE;
        }
        blz_io_future rd;
        blz_tcp_read_fut(s, buf + have, cap - 1 - have, &rd);
        int n = blz_timeout_until(&rd.base, dl);
        if (n < 0) {
            return n;
        }
        if (n == 0) {
            break; /* end of stream */
        }
        have += (size_t) n;
    }
    buf[have] = '\0';
    return (int) have;
}

static int
section_retry(void)
{
    blz_oneshot port_os;
    int rc = blz_oneshot_init(&port_os, sizeof(int));
    if (rc < 0) {
        return fail(3, "blz_oneshot_init", rc);
    }
    late_listener ll = {&port_os, LISTEN_DELAY};
    blz_join *listener = NULL;
    rc = blz_spawn(late_listener_main, &ll, &listener);
    if (rc < 0) {
        return fail(3, "blz_spawn", rc);
    }
    printf("3. a listener appears in about %lld ms; retrying connects until it does\n",
           ms_of(LISTEN_DELAY));

    int result = -1;
    blz_tcp_stream *s = NULL;
    int port = 0;
    blz_oneshot_recv_future pr;
    blz_oneshot_recv_fut(&port_os, &port, &pr);
    rc = blz_timeout(&pr.base, GENEROUS);
    if (rc < 0) {
        fail(3, "receiving the port", rc);
        goto out;
    }
    blz_addr addr;
    rc = blz_addr_from_ip("127.0.0.1", (uint16_t) port, &addr);
    if (rc < 0) {
        fail(3, "blz_addr_from_ip", rc);
        goto out;
    }
    blz_deadline dl = blz_deadline_after(RETRY_BUDGET);
    rc = connect_with_backoff(&addr, dl, &s);
    if (rc < 0) {
        fail(3, "connect with backoff", rc);
        goto out;
    }
    char line[64];
    rc = read_line_until(s, line, sizeof line, dl.at);
    if (rc < 0 || strcmp(line, GREETING) != 0) {
        fail(3, rc < 0 ? "reading the greeting" : "the greeting is wrong", rc);
        goto out;
    }
    printf("3. the listener said \"%.*s\"\n", (int) strcspn(line, "\n"), line);
    result = 0;
out:
    blz_tcp_close(s); /* NULL is ignored */
    if (result < 0) {
        blz_join_abort(listener); /* it may still wait for a connection: stop it */
    }
    void *lrc = NULL;
    rc = blz_join_wait(listener, &lrc);
    if (result == 0 && (rc < 0 || lrc != NULL)) {
        result = fail(3, "listener", rc < 0 ? rc : (int) (intptr_t) lrc);
    }
    return result;
}

/* ---- 4. an interval, in a stackless task --------------------------------- */

typedef struct tick_report {
    blz_instant at[TICKS]; /* the instant each tick was scheduled for */
} tick_report;

/* Counts `want` ticks; its locals live in the struct, as a stackless task's must. */
typedef struct ticker {
    blz_future base;
    blz_interval iv;               /* the schedule; set up by the first poll */
    blz_interval_tick_future tick; /* the wait for the next tick */
    int want;                      /* ticks to count */
    int seen;                      /* ticks counted so far */
    tick_report *report;           /* the spawner's; outlives the task */
} ticker;

static blz_poll
ticker_poll(blz_future *self, blz_context *cx)
{
    ticker *t = (ticker *) self;
    BLZ_ASYNC_BEGIN(self);
    /* BURST keeps the schedule: tick k is due at first + k * period even
     * when the task runs late, which makes the instants checkable. */
    if (blz_interval_init(&t->iv, TICK_PERIOD, BLZ_MISSED_BURST) < 0) {
        BLZ_ASYNC_RETURN(self, -EINVAL);
    }
    for (t->seen = 0; t->seen < t->want; t->seen++) {
        blz_interval_tick_fut(&t->iv, &t->tick);
        BLZ_AWAIT(self, cx, &t->tick.base);
        if (t->tick.base.result < 0) {
            BLZ_ASYNC_RETURN(self, t->tick.base.result);
        }
        t->report->at[t->seen] = t->tick.tick;
    }
    BLZ_ASYNC_RETURN(self, t->seen);
    BLZ_ASYNC_END(self);
}

/* Runs if the task is aborted while it waits: unlinks the interval's timer. */
static void
ticker_drop(blz_future *self)
{
    blz_future_drop(&((ticker *) self)->tick.base);
}

static const blz_future_vtable ticker_vtable = {ticker_poll, ticker_drop};

static int
section_interval(void)
{
    tick_report report = {{0}};
    ticker t = {.want = TICKS, .report = &report};
    blz_future_init(&t.base, &ticker_vtable);
    blz_join *j = NULL;
    int rc = blz_spawn_future(&t.base, sizeof t, &j); /* copies `t` into the task */
    if (rc < 0) {
        return fail(4, "blz_spawn_future", rc);
    }
    void *out = NULL;
    rc = blz_join_wait(j, &out);
    int counted = rc < 0 ? rc : (int) (intptr_t) out;
    if (counted != TICKS) {
        return fail(4, "ticks counted", counted);
    }
    for (int k = 1; k < TICKS; k++) {
        if (report.at[k] - report.at[k - 1] != (blz_instant) TICK_PERIOD) {
            return fail(4, "ticks not one period apart", k);
        }
    }
    printf("4. interval: %d ticks every %lld ms, the first at once, %lld ms from first to last\n",
           counted, ms_of(TICK_PERIOD),
           ms_of((blz_duration) (report.at[TICKS - 1] - report.at[0])));
    return 0;
}

/* ---- main ------------------------------------------------------------------ */

static void *
run_sections(void *arg)
{
    int *failed = arg;
    printf("timeouts: backend %s\n", blz_runtime_backend(blz_runtime_current()));
    /* Every section runs even after one failed, so one run shows every problem. */
    *failed += section_timeout() < 0;
    *failed += section_deadline() < 0;
    *failed += section_retry() < 0;
    *failed += section_interval() < 0;
    return NULL;
}

int
main(int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr,
                "usage: %s   (no arguments; BLZ_BACKEND=epoll|io_uring picks the backend)\n",
                argv[0]);
        return 2;
    }
    /* Line by line, so a reader on a pipe sees each section as it finishes. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    int failed = 0;
    int rc = blz_run(run_sections, &failed);
    if (rc < 0) {
        fprintf(stderr, "timeouts: runtime: %s\n", blz_strerror(rc));
        return 1;
    }
    if (failed) {
        fprintf(stderr, "timeouts: %d section%s failed\n", failed, failed == 1 ? "" : "s");
        return 1;
    }
    printf("timeouts: every section behaved as described\n");
    return 0;
}
