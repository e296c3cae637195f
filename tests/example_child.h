/*
 * Tests that drive an example program (build/examples/NAME) as a child
 * process: find it, start it with its stdout on a pipe, read what it prints
 * (bounded waits, so a hang is a failure), learn the address it listens on,
 * reap it.
 */
#ifndef BLZ_TEST_EXAMPLE_CHILD_H
#define BLZ_TEST_EXAMPLE_CHILD_H

#include "harness.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define EXAMPLE_WATCHDOG_S 30 /* any single wait for the child longer than this fails */

typedef struct example_child {
    pid_t pid;
    int out;        /* read end of the child's stdout */
    char buf[8192]; /* its output so far (the listening line removed) */
    size_t len;
} example_child;

/* build/examples/`name` next to this test's build folder, or the file named by
 * $`env_var` when set; NULL when it is not an executable. */
static inline const char *
example_path(const char *name, const char *env_var, char *buf, size_t cap)
{
    const char *env = getenv(env_var);
    if (env && *env) {
        return access(env, X_OK) == 0 ? env : NULL;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        return NULL;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash) {
        return NULL;
    }
    *slash = '\0';
    snprintf(buf, cap, "%s/../examples/%s", self, name);
    return access(buf, X_OK) == 0 ? buf : NULL;
}

/* example_path, or the test skips, saying so, when the example is not built. */
static inline const char *
example_require(const char *name, const char *env_var, char *buf, size_t cap)
{
    const char *path = example_path(name, env_var, buf, cap);
    if (!path) {
        char why[96];
        snprintf(why, sizeof why, "examples/%s not built", name);
        SKIP(why);
    }
    return path;
}

/* Starts `path` with `argv`; its stderr goes to err_fd, or stays ours when -1. */
static inline void
example_start(example_child *c, const char *path, char *const argv[], int err_fd)
{
    int p[2];
    CHECK_OK(pipe2(p, O_CLOEXEC));
    posix_spawn_file_actions_t fa;
    CHECK_EQ(posix_spawn_file_actions_init(&fa), 0);
    CHECK_EQ(posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO), 0);
    if (err_fd >= 0) {
        CHECK_EQ(posix_spawn_file_actions_adddup2(&fa, err_fd, STDERR_FILENO), 0);
    }
    CHECK_EQ(posix_spawn(&c->pid, path, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    c->out = p[0];
    c->len = 0;
    c->buf[0] = '\0';
}

/* Reads more of the child's stdout; false at end of file. Fails after the watchdog. */
static inline bool
example_read_more(example_child *c)
{
    struct pollfd pfd = {c->out, POLLIN, 0};
    int rc = poll(&pfd, 1, EXAMPLE_WATCHDOG_S * 1000);
    if (rc == 0) {
        fprintf(stderr, "child printed nothing for %d s; output so far:\n%.*s\n",
                EXAMPLE_WATCHDOG_S, (int) c->len, c->buf);
        CHECK(!"child output timed out");
    }
    CHECK_OK(rc);
    CHECK(c->len < sizeof c->buf - 1);
    ssize_t n = read(c->out, c->buf + c->len, sizeof c->buf - 1 - c->len);
    CHECK_OK(n);
    c->len += (size_t) n;
    c->buf[c->len] = '\0';
    return n > 0;
}

/* Waits for the child's exit status. */
static inline int
example_wait(example_child *c)
{
    int status = 0;
    CHECK_EQ(waitpid(c->pid, &status, 0), c->pid);
    close(c->out);
    return status;
}

/* Waits for the child's first line, "... listening on HOST:PORT ...", and
 * takes it out of the buffer. False (child reaped, *status set) when the
 * child ended before printing it. */
static inline bool
example_listening(example_child *c, char *host, size_t host_cap, int *port, int *status)
{
    char *nl;
    while (!(nl = strchr(c->buf, '\n'))) {
        if (!example_read_more(c)) {
            *status = example_wait(c);
            fprintf(stderr, "child exited (status 0x%x) before listening; output: %s\n", *status,
                    c->buf);
            return false;
        }
    }
    *nl = '\0';
    const char *hp = strstr(c->buf, "listening on ");
    CHECK(hp != NULL);
    hp += strlen("listening on ");
    const char *colon = strrchr(hp, ':');
    CHECK(colon && (size_t) (colon - hp) < host_cap);
    memcpy(host, hp, (size_t) (colon - hp));
    host[colon - hp] = '\0';
    *port = atoi(colon + 1);
    CHECK_GT(*port, 0);
    size_t first = (size_t) (nl + 1 - c->buf);
    memmove(c->buf, nl + 1, c->len - first + 1);
    c->len -= first;
    return true;
}

/* Finds build/examples/`name` (or $`env_var`), starts it with `args` (NULL
 * terminated; one of them a listening address such as 127.0.0.1:0) and waits
 * until it listens; the test is skipped when the example is not built or
 * could not start its server. */
static inline void
example_serve(example_child *c, const char *name, const char *env_var, const char *const args[],
              int err_fd, char *host, size_t host_cap, int *port)
{
    char pathbuf[PATH_MAX + 64];
    const char *path = example_path(name, env_var, pathbuf, sizeof pathbuf);
    if (!path) {
        fprintf(stderr, "examples/%s not built (or $%s not executable)\n", name, env_var);
        SKIP("the example is not built: build the examples first");
    }
    char *argv[8] = {(char *) path};
    for (int i = 0; args[i]; i++) {
        CHECK(i + 2 < 8);
        argv[i + 1] = (char *) args[i];
    }
    example_start(c, path, argv, err_fd);
    int status = 0;
    if (!example_listening(c, host, host_cap, port, &status)) {
        SKIP("the example could not start its server (is the net module usable?)");
    }
}

#endif
