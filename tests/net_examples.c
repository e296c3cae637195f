/*
 * The network examples end to end, each as a child process on the backend
 * under test (it inherits BLZ_BACKEND), driven by plain blocking sockets:
 *  - echo_server, with fiber and with stackless connections: several clients
 *    get every byte back, SIGTERM stops it with exit status 0;
 *  - tcp_proxy in front of echo_server: the echo clients through it, and the
 *    end of a client's sending passed on both ways;
 *  - udp_echo: datagrams come back to their sender;
 *  - chat_server: two clients join, talk and leave; SIGUSR1 makes the server
 *    write a task dump whose waiting fibers carry their stacks; a line with
 *    a NUL byte in it reaches the others whole;
 *  - dns_lookup: localhost resolves (the hosts file), bad usage exits 2.
 *
 * No sleeps but the dump's: the test waits for conditions, and receive
 * timeouts (SO_RCVTIMEO) only turn a hang into a failure.
 */
#include "example_child.h"
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

/* A blocking socket of `type` connected to host:port, its receives bounded. */
static int
client_connect_type(const char *host, int port, int type)
{
    int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    CHECK_OK(fd);
    struct timeval tv = {EXAMPLE_WATCHDOG_S, 0};
    CHECK_OK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t) port);
    CHECK_EQ(inet_pton(AF_INET, host, &a.sin_addr), 1);
    CHECK_OK(connect(fd, (struct sockaddr *) &a, sizeof a));
    return fd;
}

static int
client_connect(const char *host, int port)
{
    return client_connect_type(host, port, SOCK_STREAM);
}

/* SIGTERM, then the child must end by itself with status 0. When it does
 * not, what it wrote to the file at err_fd (if >= 0) is shown. */
static void
example_stop(example_child *ch, int err_fd)
{
    CHECK_OK(kill(ch->pid, SIGTERM));
    while (example_read_more(ch)) {
    }
    int status = example_wait(ch);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "child status 0x%x; its stdout:\n%s\n", status, ch->buf);
        static char text[1 << 16];
        ssize_t n = err_fd >= 0 ? pread(err_fd, text, sizeof text - 1, 0) : -1;
        fprintf(stderr, "its stderr:\n%.*s\n", n > 0 ? (int) n : 0, text);
    }
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
}

/* ---- echo_server ------------------------------------------------------------------ */

#define ECHO_CLIENTS 8
#define ECHO_ROUNDS  50

static void
echo_clients(const char *host, int port)
{
    int fds[ECHO_CLIENTS];
    for (int i = 0; i < ECHO_CLIENTS; i++) {
        fds[i] = client_connect(host, port);
    }
    /* Rounds of one message per client in flight; sizes up to beyond one
     * read of the server (16 KiB), every byte checked. */
    static unsigned char out[40000], in[40000];
    for (int r = 0; r < ECHO_ROUNDS; r++) {
        size_t len = 1 + (size_t) r * 797 % sizeof out;
        for (int i = 0; i < ECHO_CLIENTS; i++) {
            for (size_t k = 0; k < len; k++) {
                out[k] = (unsigned char) (k * 31 + (size_t) i * 7 + (size_t) r);
            }
            CHECK_EQ(send(fds[i], out, len, MSG_NOSIGNAL), (ssize_t) len);
            size_t got = 0;
            while (got < len) {
                ssize_t n = recv(fds[i], in + got, len - got, 0);
                CHECK_GT(n, 0);
                got += (size_t) n;
            }
            CHECK(memcmp(in, out, len) == 0);
        }
    }
    for (int i = 0; i < ECHO_CLIENTS; i++) {
        close(fds[i]);
    }
}

static void
echo_server_run(const char *const args[])
{
    example_child ch;
    char host[64];
    int port = 0;
    example_serve(&ch, "echo_server", "BLZ_ECHO_SERVER_BIN", args, -1, host, sizeof host, &port);
    echo_clients(host, port);
    example_stop(&ch, -1);
}

BLZ_TEST(echo_server_fibers)
{
    static const char *const args[] = {"127.0.0.1:0", NULL};
    echo_server_run(args);
}

BLZ_TEST(echo_server_stackless)
{
    static const char *const args[] = {"--stackless", "127.0.0.1:0", NULL};
    echo_server_run(args);
}

/* ---- tcp_proxy ------------------------------------------------------------------------- */

/* The proxy in front of echo_server: the echo clients through it, then a
 * client that stops sending (SHUT_WR) gets all of its echo back and then the
 * end, which has gone through the proxy both ways. */
BLZ_TEST(tcp_proxy_in_front_of_echo_server)
{
    example_child echo, px;
    char host[64], phost[64];
    int port = 0, pport = 0;
    static const char *const echo_args[] = {"127.0.0.1:0", NULL};
    example_serve(&echo, "echo_server", "BLZ_ECHO_SERVER_BIN", echo_args, -1, host, sizeof host,
                  &port);
    char upstream[96];
    snprintf(upstream, sizeof upstream, "%s:%d", host, port);
    const char *const px_args[] = {"127.0.0.1:0", upstream, NULL};
    example_serve(&px, "tcp_proxy", "BLZ_TCP_PROXY_BIN", px_args, -1, phost, sizeof phost, &pport);
    echo_clients(phost, pport);

    int fd = client_connect(phost, pport);
    static unsigned char out[100000], in[100001];
    for (size_t k = 0; k < sizeof out; k++) {
        out[k] = (unsigned char) (k * 13 + 5);
    }
    CHECK_EQ(send(fd, out, sizeof out, MSG_NOSIGNAL), (ssize_t) sizeof out);
    CHECK_OK(shutdown(fd, SHUT_WR));
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, in + got, sizeof in - got, 0);
        CHECK_GE(n, 0); /* a receive timeout (-1) means the end never came */
        if (n == 0) {
            break;
        }
        got += (size_t) n;
    }
    CHECK_EQ(got, sizeof out);
    CHECK(memcmp(in, out, sizeof out) == 0);
    close(fd);
    example_stop(&px, -1);
    example_stop(&echo, -1);
}

/* ---- udp_echo -------------------------------------------------------------------------- */

BLZ_TEST(udp_echo_returns_datagrams)
{
    example_child ch;
    char host[64];
    int port = 0;
    static const char *const args[] = {"127.0.0.1:0", NULL};
    example_serve(&ch, "udp_echo", "BLZ_UDP_ECHO_BIN", args, -1, host, sizeof host, &port);
    int fd = client_connect_type(host, port, SOCK_DGRAM);
    for (int i = 0; i < 100; i++) {
        char out[64], in[128];
        int len = snprintf(out, sizeof out, "datagram %d", i);
        CHECK_EQ(send(fd, out, (size_t) len, 0), len);
        /* One datagram in flight on loopback: nothing to lose it. */
        ssize_t n = recv(fd, in, sizeof in, 0);
        CHECK_EQ(n, len);
        CHECK(memcmp(in, out, (size_t) len) == 0);
    }
    /* Bursts from two sockets at once: the server takes them in batches,
     * and each datagram still goes back to its own sender, in order. */
    int fd2 = client_connect_type(host, port, SOCK_DGRAM);
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 16; i++) {
            char out[64];
            int len = snprintf(out, sizeof out, "burst %d %d", round, i);
            CHECK_EQ(send(i % 2 ? fd2 : fd, out, (size_t) len, 0), len);
        }
        for (int i = 0; i < 16; i++) {
            char want[64], in[128];
            int len = snprintf(want, sizeof want, "burst %d %d", round, i);
            ssize_t n = recv(i % 2 ? fd2 : fd, in, sizeof in, 0);
            CHECK_EQ(n, len);
            CHECK(memcmp(in, want, (size_t) len) == 0);
        }
    }
    close(fd2);
    close(fd);
    example_stop(&ch, -1);
}

/* ---- every server: a stop as soon as it announces ------------------------------------ */

/* Each server takes SIGTERM as its own before it prints its address, so a
 * stop sent the moment the address is read ends it cleanly (status 0), not
 * by the signal's default action. */
BLZ_TEST(servers_stop_cleanly_when_told_as_they_announce)
{
    static const struct {
        const char *name, *env_var;
        const char *args[3];
    } servers[] = {
        {"echo_server", "BLZ_ECHO_SERVER_BIN", {"127.0.0.1:0", NULL}},
        {"tcp_proxy", "BLZ_TCP_PROXY_BIN", {"127.0.0.1:0", "127.0.0.1:9", NULL}},
        {"udp_echo", "BLZ_UDP_ECHO_BIN", {"127.0.0.1:0", NULL}},
        {"chat_server", "BLZ_CHAT_SERVER_BIN", {"127.0.0.1:0", NULL}},
    };
    for (size_t i = 0; i < sizeof servers / sizeof servers[0]; i++) {
        for (int round = 0; round < 5; round++) {
            example_child ch;
            char host[64];
            int port = 0;
            example_serve(&ch, servers[i].name, servers[i].env_var, servers[i].args, -1, host,
                          sizeof host, &port);
            example_stop(&ch, -1);
        }
    }
}

/* ---- dns_lookup ---------------------------------------------------------------------- */

/* Runs dns_lookup with `args`; its output in ch->buf, its exit status returned. */
static int
dns_lookup_run(example_child *ch, const char *const args[])
{
    char pathbuf[PATH_MAX + 64];
    const char *path = example_require("dns_lookup", "BLZ_DNS_LOOKUP_BIN", pathbuf, sizeof pathbuf);
    char *argv[8] = {(char *) path};
    for (int i = 0; args[i]; i++) {
        argv[i + 1] = (char *) args[i];
    }
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    CHECK_OK(devnull);
    example_start(ch, path, argv, devnull);
    close(devnull);
    while (example_read_more(ch)) {
    }
    int status = example_wait(ch);
    CHECK(WIFEXITED(status));
    return WEXITSTATUS(status);
}

BLZ_TEST(dns_lookup_resolves_localhost_and_refuses_bad_usage)
{
    example_child ch;
    static const char *const local[] = {"localhost", NULL};
    CHECK_EQ(dns_lookup_run(&ch, local), 0);
    CHECK(strstr(ch.buf, "localhost:") != NULL);
    CHECK(strstr(ch.buf, "127.0.0.1") != NULL || strstr(ch.buf, "::1") != NULL);
    static const char *const none[] = {NULL};
    CHECK_EQ(dns_lookup_run(&ch, none), 2);
    static const char *const bad_server[] = {"--server", "not-an-address", "localhost", NULL};
    CHECK_EQ(dns_lookup_run(&ch, bad_server), 2);
}

/* ---- chat_server ------------------------------------------------------------------------ */

/* The next line the server sent on fd (without its newline); fails on a
 * timeout or an early end. */
static void
expect_line(int fd, const char *want)
{
    char line[256];
    size_t n = 0;
    for (;;) {
        char ch;
        ssize_t r = recv(fd, &ch, 1, 0);
        if (r <= 0) {
            fprintf(stderr, "waiting for \"%s\": recv %zd after \"%.*s\"\n", want, r, (int) n,
                    line);
            CHECK(!"connection ended or timed out");
        }
        if (ch == '\n') {
            break;
        }
        CHECK(n < sizeof line - 1);
        line[n++] = ch;
    }
    line[n] = '\0';
    if (strcmp(line, want) != 0) {
        fprintf(stderr, "got \"%s\", want \"%s\"\n", line, want);
    }
    CHECK(strcmp(line, want) == 0);
}

static void
send_text(int fd, const char *s)
{
    CHECK_EQ(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t) strlen(s));
}

/* Lines of the file at fd that contain `needle`. */
static int
count_in_file(int fd, const char *needle, char *text, size_t cap)
{
    ssize_t n = pread(fd, text, cap - 1, 0);
    CHECK_OK(n);
    text[n] = '\0';
    int count = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle)) {
        count++;
    }
    return count;
}

/* Polls the server's stderr (a file gives no readiness to wait on) until it
 * holds `dumps` task dumps and the last of them at least `fibers` waiting
 * fibers. On a timeout, or when the server ends first, it shows the file and
 * how the server ended, then fails. */
static void
await_dump(const example_child *ch, int errfd, int dumps, int fibers, char *text, size_t cap)
{
    static const char header[] = "blitzio task dump: ";
    int found = 0;
    int waiting = 0;
    for (int tries = 0; tries < EXAMPLE_WATCHDOG_S * 100; tries++) {
        found = count_in_file(errfd, header, text, cap);
        if (found >= dumps) {
            const char *last = text;
            for (int i = 0; i < dumps; i++) {
                last = strstr(last, header) + strlen(header);
            }
            waiting = 0;
            for (const char *p = last; (p = strstr(p, " fiber waiting in ")) != NULL; p++) {
                waiting++;
            }
            if (waiting >= fibers) {
                return;
            }
        }
        siginfo_t end = {0};
        if (waitid(P_PID, (id_t) ch->pid, &end, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            end.si_pid == ch->pid) {
            break; /* ended: no dump is coming */
        }
        struct timespec ms10 = {0, 10 * 1000 * 1000};
        nanosleep(&ms10, NULL);
    }
    fprintf(stderr, "waiting for dump %d (%d waiting fibers), the server's stderr:\n%s\n", dumps,
            fibers, text);
    int st = 0;
    pid_t r = waitpid(ch->pid, &st, WNOHANG);
    if (r == 0) {
        fprintf(stderr, "the server still runs\n");
    } else if (r > 0 && WIFSIGNALED(st)) {
        fprintf(stderr, "the server was killed by signal %d\n", WTERMSIG(st));
    } else {
        fprintf(stderr, "the server ended (waitpid %d, status %#x)\n", (int) r, (unsigned) st);
    }
    CHECK_EQ(found, dumps);
    CHECK_GE(waiting, fibers);
}

BLZ_TEST(chat_two_clients_a_task_dump_and_sigterm)
{
    char errpath[] = "/tmp/blz_chat_stderr_XXXXXX";
    int errfd = mkstemp(errpath);
    CHECK_OK(errfd);
    CHECK_OK(unlink(errpath));
    example_child ch;
    char host[64];
    int port = 0;
    static const char *const args[] = {"127.0.0.1:0", NULL};
    example_serve(&ch, "chat_server", "BLZ_CHAT_SERVER_BIN", args, errfd, host, sizeof host, &port);
    static char text[1 << 16];

    /* A SIGUSR1 at once: the server listens for it before it announces its
     * address, so this dumps rather than ending the process. */
    CHECK_OK(kill(ch.pid, SIGUSR1));
    await_dump(&ch, errfd, 1, 0, text, sizeof text);

    int a = client_connect(host, port);
    expect_line(a, "* welcome to the chat"); /* accepted first: user1 */
    int b = client_connect(host, port);
    expect_line(b, "* welcome to the chat");
    expect_line(a, "* user2 joined");
    send_text(a, "hello from a\n");
    expect_line(b, "user1: hello from a");
    send_text(b, "and from b, in two ");
    send_text(b, "pieces\n");
    expect_line(a, "user2: and from b, in two pieces");

    /* Both connections' reader and writer fibers wait now (on a socket or
     * the room), as do the accept loop and the stop watcher: the second
     * dump shows them with their stacks. */
    CHECK_OK(kill(ch.pid, SIGUSR1));
    await_dump(&ch, errfd, 2, 4, text, sizeof text);
    CHECK_GE(count_in_file(errfd, "    #0 ", text, sizeof text), 4);

    close(a);
    expect_line(b, "* user1 left");
    example_stop(&ch, errfd);
    CHECK_EQ(count_in_file(errfd, "chat_server: signal 15, stopping", text, sizeof text), 1);
    char end;
    CHECK_EQ(recv(b, &end, 1, 0), 0); /* the server closed b on its way out */
    close(b);
    close(errfd);
}

/* The next `len` bytes the server sent on fd are exactly `want`; fails on a
 * timeout or an early end. */
static void
expect_bytes(int fd, const void *want, size_t len)
{
    char got[256];
    CHECK(len <= sizeof got);
    size_t n = 0;
    while (n < len) {
        ssize_t r = recv(fd, got + n, len - n, 0);
        if (r <= 0) {
            fprintf(stderr, "recv %zd after %zu of %zu bytes\n", r, n, len);
            CHECK(!"connection ended or timed out");
        }
        n += (size_t) r;
    }
    if (memcmp(got, want, len) != 0) {
        fprintf(stderr, "got \"%.*s\"\n", (int) len, got);
    }
    CHECK(memcmp(got, want, len) == 0);
}

/* A line holding a NUL byte is still one line: it reaches the others whole,
 * with its newline, and the next message starts a line of its own. */
BLZ_TEST(chat_line_with_a_nul_byte_stays_one_line)
{
    example_child ch;
    char host[64];
    int port = 0;
    static const char *const args[] = {"127.0.0.1:0", NULL};
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    CHECK_OK(devnull);
    example_serve(&ch, "chat_server", "BLZ_CHAT_SERVER_BIN", args, devnull, host, sizeof host,
                  &port);
    close(devnull);
    int a = client_connect(host, port);
    expect_line(a, "* welcome to the chat");
    int b = client_connect(host, port);
    expect_line(b, "* welcome to the chat");
    expect_line(a, "* user2 joined");
    static const char nul_line[] = "one\0two\n";
    CHECK_EQ(send(b, nul_line, sizeof nul_line - 1, MSG_NOSIGNAL), (ssize_t) sizeof nul_line - 1);
    send_text(b, "three\n");
    static const char want[] = "user2: one\0two\n";
    expect_bytes(a, want, sizeof want - 1);
    expect_line(a, "user2: three");
    close(b);
    expect_line(a, "* user2 left");
    close(a);
    example_stop(&ch, -1);
}
