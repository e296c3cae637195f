/*
 * tests/io_examples.c — examples/watch_dir: a file created, written and
 * deleted in a scratch directory shows up as three lines, in order, and the
 * example stops by itself after COUNT events; bad usage exits 2.
 *
 * Run once per backend (the child inherits BLZ_BACKEND).
 */
#include "example_child.h"
#include "harness.h"

#include <sys/stat.h>

BLZ_TEST(create_write_delete_in_order)
{
    char pathbuf[PATH_MAX + 64];
    const char *path = example_require("watch_dir", "BLZ_WATCH_DIR_BIN", pathbuf, sizeof pathbuf);
    char dir[] = "/tmp/blz_watch_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    example_child ch;
    char *argv[] = {(char *) path, dir, "3", NULL};
    example_start(&ch, path, argv, -1);
    while (!strstr(ch.buf, "\n")) {
        CHECK(example_read_more(&ch));
    }
    CHECK(strncmp(ch.buf, "watching ", 9) == 0);

    char file[64];
    snprintf(file, sizeof file, "%s/a", dir);
    int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    CHECK_GE(fd, 0);
    CHECK_EQ(write(fd, "x", 1), 1);
    CHECK_OK(close(fd));
    CHECK_OK(unlink(file));

    while (example_read_more(&ch)) {
    }
    const char *events = strchr(ch.buf, '\n') + 1;
    CHECK_STR_EQ(events, "created a\nwritten a\ndeleted a\n");
    int status = example_wait(&ch);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_OK(rmdir(dir));
}

BLZ_TEST(bad_usage_exits_2)
{
    char pathbuf[PATH_MAX + 64];
    const char *path = example_require("watch_dir", "BLZ_WATCH_DIR_BIN", pathbuf, sizeof pathbuf);
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    CHECK_GE(devnull, 0);
    char *none[] = {(char *) path, NULL};
    char *negative[] = {(char *) path, "/tmp", "-1", NULL};
    /* A COUNT that is not a number is refused too, not read as 0 (no limit).
     * The directory is missing, so a regression ends with 1 instead of
     * watching for ever. */
    char *word[] = {(char *) path, "/nonexistent/blz", "ten", NULL};
    char *trailing[] = {(char *) path, "/nonexistent/blz", "5x", NULL};
    char *empty[] = {(char *) path, "/nonexistent/blz", "", NULL};
    char *const *cases[] = {none, negative, word, trailing, empty};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        example_child ch;
        example_start(&ch, path, cases[i], devnull);
        while (example_read_more(&ch)) {
        }
        int status = example_wait(&ch);
        CHECK(WIFEXITED(status));
        CHECK_EQ(WEXITSTATUS(status), 2);
    }
    /* A directory that does not exist: 1. */
    char *missing[] = {(char *) path, "/nonexistent/blz", NULL};
    example_child ch;
    example_start(&ch, path, missing, devnull);
    while (example_read_more(&ch)) {
    }
    int status = example_wait(&ch);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 1);
    CHECK_OK(close(devnull));
}
