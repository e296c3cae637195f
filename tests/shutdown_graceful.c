/*
 * examples/graceful_shutdown end to end. The example runs as a child process
 * (build/examples/graceful_shutdown, found next to this test's build folder,
 * or named by $BLZ_GRACEFUL_SHUTDOWN_BIN); plain blocking sockets on threads
 * play the clients, so this test depends on nothing of blitzio but the child.
 *
 *  - several clients send requests ("<id> <work_ms> <payload>"), the later
 *    ones slow (the server holds them for a while before answering);
 *  - one more client connects and stays idle;
 *  - once every busy client has a request taken (ACKed) and not yet answered,
 *    the test sends SIGTERM;
 *  - every taken request must then get its full "OK <id> <payload>" line,
 *    requests sent afterwards may only be refused cleanly (the connection
 *    closes before any byte of an answer), the idle client sees its
 *    connection closed, and the child exits 0 reporting nothing left open.
 *
 * No sleeps: the test waits for conditions; timeouts (poll, SO_RCVTIMEO,
 * pthread_cond_timedwait) only turn a hang into a failure.
 *
 * blz-test: timeout=120
 */
#include "example_child.h"
#include "harness.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BUSY_CLIENTS 6
#define SLOW_WORK_MS 400 /* requests 3 and later: long enough to be caught in flight */
#define WATCHDOG_S   EXAMPLE_WATCHDOG_S

/* ---- clients -------------------------------------------------------------------- */

enum { ST_CONNECTING, ST_IDLE, ST_INFLIGHT, ST_DONE };

typedef struct client {
    int index;
    struct sockaddr_in addr;
    pthread_t th;
    bool idle_only; /* connects and never sends */
    int fd;
    char rbuf[4096]; /* received, not yet consumed */
    size_t rlen;
    /* Under the shared mutex: */
    int state;
    int completed;
    int refused; /* requests sent but not taken (connection closed first) */
    char failure[256];
} client;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static void
set_state(client *c, int st)
{
    pthread_mutex_lock(&mu);
    c->state = st;
    if (st == ST_IDLE) {
        c->completed++;
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Records the first failure of a client: `what` about request `id`, read_line result `r`. */
static void
client_fail(client *c, const char *what, long id, int r)
{
    pthread_mutex_lock(&mu);
    if (!c->failure[0]) {
        snprintf(c->failure, sizeof c->failure, "request %ld: %s (read_line %d)", id, what, r);
    }
    c->state = ST_DONE;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Reads one line (without '\n') into line. Returns 1, 0 for a clean close
 * with nothing pending, -1 for a close or error in the middle of a line. */
static int
read_line(client *c, char *line, size_t cap)
{
    for (;;) {
        char *nl = memchr(c->rbuf, '\n', c->rlen);
        if (nl) {
            size_t n = (size_t) (nl - c->rbuf);
            if (n >= cap) {
                return -1;
            }
            memcpy(line, c->rbuf, n);
            line[n] = '\0';
            memmove(c->rbuf, nl + 1, c->rlen - n - 1);
            c->rlen -= n + 1;
            return 1;
        }
        if (c->rlen == sizeof c->rbuf) {
            return -1;
        }
        ssize_t n = recv(c->fd, c->rbuf + c->rlen, sizeof c->rbuf - c->rlen, 0);
        if (n > 0) {
            c->rlen += (size_t) n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return -2; /* the watchdog */
        }
        /* End of stream or reset: clean only if no partial line is pending. */
        return c->rlen == 0 ? 0 : -1;
    }
}

static void *
client_main(void *arg)
{
    client *c = arg;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK_OK(c->fd);
    struct timeval tv = {WATCHDOG_S, 0};
    CHECK_OK(setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    CHECK_OK(connect(c->fd, (struct sockaddr *) &c->addr, sizeof c->addr));
    if (c->idle_only) {
        set_state(c, ST_INFLIGHT); /* "ready" for the idle one */
        char line[64];
        int r = read_line(c, line, sizeof line);
        if (r != 0) {
            client_fail(c, "idle connection: expected a clean close", -1, r);
        }
        set_state(c, ST_DONE);
        return NULL;
    }
    char line[512], want[512];
    for (long seq = 0;; seq++) {
        long id = c->index * 1000 + seq;
        long work = seq < 2 ? 1 : SLOW_WORK_MS;
        char req[128];
        int n = snprintf(req, sizeof req, "%ld %ld payload-%d-%ld\n", id, work, c->index, seq);
        if (send(c->fd, req, (size_t) n, MSG_NOSIGNAL) != n) {
            break; /* closed by the server: this request was not taken */
        }
        int r = read_line(c, line, sizeof line);
        if (r == 0) {
            pthread_mutex_lock(&mu);
            c->refused++;
            pthread_mutex_unlock(&mu);
            break; /* closed before taking it: allowed (after the shutdown, checked below) */
        }
        snprintf(want, sizeof want, "ACK %ld", id);
        if (r < 0 || strcmp(line, want) != 0) {
            client_fail(c, "bad or missing ACK", id, r);
            break;
        }
        set_state(c, ST_INFLIGHT);
        r = read_line(c, line, sizeof line);
        snprintf(want, sizeof want, "OK %ld payload-%d-%ld", id, c->index, seq);
        if (r != 1 || strcmp(line, want) != 0) {
            client_fail(c, "taken (ACKed) but not answered in full", id, r);
            break;
        }
        set_state(c, ST_IDLE);
    }
    pthread_mutex_lock(&mu);
    c->state = ST_DONE;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* Under mu: every busy client has a request in flight after two complete ones,
 * and the idle client is connected. */
static bool
all_in_flight(client *cs, int n)
{
    for (int i = 0; i < n; i++) {
        if (cs[i].state != ST_INFLIGHT || (!cs[i].idle_only && cs[i].completed < 2)) {
            return false;
        }
    }
    return true;
}

static bool
any_failed(client *cs, int n)
{
    for (int i = 0; i < n; i++) {
        if (cs[i].failure[0]) {
            return true;
        }
    }
    return false;
}

/* The example on a kernel-picked port with a 5 s drain; returns the port. */
static int
serve(example_child *ch, char *host, size_t host_cap)
{
    static const char *const args[] = {"127.0.0.1:0", "5000", NULL};
    int port = 0;
    example_serve(ch, "graceful_shutdown", "BLZ_GRACEFUL_SHUTDOWN_BIN", args, -1, host, host_cap,
                  &port);
    return port;
}

BLZ_TEST(sigterm_mid_traffic_drops_nothing)
{
    example_child ch;
    char host[64];
    int port = serve(&ch, host, sizeof host);

    enum { N = BUSY_CLIENTS + 1 };
    static client cs[N];
    memset(cs, 0, sizeof cs);
    for (int i = 0; i < N; i++) {
        cs[i].index = i;
        cs[i].idle_only = i == BUSY_CLIENTS;
        cs[i].addr.sin_family = AF_INET;
        cs[i].addr.sin_port = htons((uint16_t) port);
        CHECK_EQ(inet_pton(AF_INET, host, &cs[i].addr.sin_addr), 1);
        CHECK_EQ(pthread_create(&cs[i].th, NULL, client_main, &cs[i]), 0);
    }

    /* Mid-traffic: wait for every busy client to have a taken, unanswered request. */
    pthread_mutex_lock(&mu);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WATCHDOG_S;
    while (!all_in_flight(cs, N) && !any_failed(cs, N)) {
        int rc = pthread_cond_timedwait(&cv, &mu, &until);
        if (rc == ETIMEDOUT) {
            break;
        }
    }
    bool ready = all_in_flight(cs, N);
    if (ready) {
        /* Under the lock: no client can even record an answer before the signal. */
        CHECK_OK(kill(ch.pid, SIGTERM));
    }
    pthread_mutex_unlock(&mu);
    if (!ready) {
        kill(ch.pid, SIGKILL);
    }

    for (int i = 0; i < N; i++) {
        CHECK_EQ(pthread_join(cs[i].th, NULL), 0);
        close(cs[i].fd);
    }
    while (example_read_more(&ch)) {
    }
    int status = example_wait(&ch);
    printf("child output after listening:\n%s", ch.buf);
    for (int i = 0; i < N; i++) {
        if (cs[i].failure[0]) {
            fprintf(stderr, "client %d: %s\n", i, cs[i].failure);
        }
    }
    CHECK(ready);
    CHECK(!any_failed(cs, N));
    for (int i = 0; i < BUSY_CLIENTS; i++) {
        /* Two before the signal, and the one in flight when it came. */
        CHECK_GE(cs[i].completed, 3);
        CHECK_LE(cs[i].refused, 1);
    }
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK(strstr(ch.buf, "signal 15:") != NULL);
    CHECK(strstr(ch.buf, ", 0 connection(s) still open at the deadline") != NULL);
}

/* SIGINT works the same way, with nobody connected. */
BLZ_TEST(sigint_idle_server_exits_zero)
{
    example_child ch;
    char host[64];
    CHECK_GT(serve(&ch, host, sizeof host), 0);
    CHECK_OK(kill(ch.pid, SIGINT));
    while (example_read_more(&ch)) {
    }
    int status = example_wait(&ch);
    printf("%s", ch.buf);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK(strstr(ch.buf, "signal 2:") != NULL);
    CHECK(strstr(ch.buf, "0 connection(s) accepted") != NULL);
}
