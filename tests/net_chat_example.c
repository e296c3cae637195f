/*
 * examples/chat_server end to end, as a child process on the backend under
 * test (it inherits BLZ_BACKEND): two clients on plain blocking sockets join,
 * talk and leave; SIGUSR1 makes the server write a task dump whose waiting
 * fibers carry their stacks; SIGTERM stops it with exit status 0.
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
#include <time.h>

static int
client_connect(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
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

BLZ_TEST(chat_two_clients_a_task_dump_and_sigterm)
{
    char errpath[] = "/tmp/blz_chat_stderr_XXXXXX";
    int errfd = mkstemp(errpath);
    CHECK_OK(errfd);
    CHECK_OK(unlink(errpath));
    example_child ch;
    char host[64];
    int port = 0;
    example_serve(&ch, "chat_server", "BLZ_CHAT_SERVER_BIN", NULL, errfd, host, sizeof host, &port);

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
     * the room): the dump shows them with their stacks. */
    static char text[1 << 16];
    CHECK_OK(kill(ch.pid, SIGUSR1));
    int waiting = 0;
    for (int tries = 0; tries < EXAMPLE_WATCHDOG_S * 100; tries++) {
        waiting = count_in_file(errfd, " fiber waiting in ", text, sizeof text);
        if (waiting >= 4) {
            break;
        }
        struct timespec ms10 = {0, 10 * 1000 * 1000};
        nanosleep(&ms10, NULL); /* a file gives no readiness to wait on */
    }
    if (waiting < 4) {
        fprintf(stderr, "dump so far:\n%s\n", text);
    }
    CHECK_GE(waiting, 4);
    CHECK_EQ(count_in_file(errfd, "blitzio task dump: ", text, sizeof text), 1);
    CHECK_GE(count_in_file(errfd, "    #0 ", text, sizeof text), 4);

    close(a);
    expect_line(b, "* user1 left");
    CHECK_OK(kill(ch.pid, SIGTERM));
    while (example_read_more(&ch)) {
    }
    int status = example_wait(&ch);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_EQ(count_in_file(errfd, "chat_server: signal 15, stopping", text, sizeof text), 1);
    char end;
    CHECK_EQ(recv(b, &end, 1, 0), 0); /* the server closed b on its way out */
    close(b);
    close(errfd);
}
