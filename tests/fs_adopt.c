/*
 * tests/fs_adopt.c — blz_file_from_fd: a descriptor opened with open(2)
 * read and written through blitzio (on the ring or the pool) and closed by
 * blz_file_close; a pipe read through the file calls; flags left alone;
 * what it refuses, leaving the descriptor the caller's.
 *
 * Run once per backend.
 */
#include "fs_common.h"

#include <fcntl.h>

static void *
adopt_body(void *arg)
{
    fs_tmp *t = arg;
    int fd = open(fs_path(t, "a"), O_RDWR | O_CREAT | O_TRUNC, 0600); /* no O_CLOEXEC */
    CHECK_GE(fd, 0);
    blz_file *f = NULL;
    CHECK_OK(blz_file_from_fd(fd, &f));
    CHECK_EQ(blz_file_fd(f), fd);
    CHECK_EQ(blz_file_fd(NULL), -EINVAL);         /* as blz_pipe_fd and blz_async_fd_fd */
    CHECK_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0); /* flags as they were */
    CHECK_EQ(blz_file_write(f, "adopted", 7), 7);
    char buf[16];
    CHECK_EQ(blz_file_pread(f, buf, sizeof buf, 0), 7);
    CHECK(memcmp(buf, "adopted", 7) == 0);
    blz_metadata md;
    CHECK_OK(blz_file_metadata(f, &md));
    CHECK_EQ(md.size, 7);
    CHECK_OK(blz_file_close(f));
    CHECK_EQ(fcntl(fd, F_GETFD), -1); /* the file closed it */
    CHECK_EQ(errno, EBADF);

    /* A pipe's read end, read at "the position" like a file. */
    int fds[2];
    CHECK_OK(pipe(fds));
    CHECK_EQ(write(fds[1], "piped", 5), 5);
    CHECK_OK(close(fds[1]));
    CHECK_OK(blz_file_from_fd(fds[0], &f));
    CHECK_EQ(blz_file_read(f, buf, sizeof buf), 5);
    CHECK(memcmp(buf, "piped", 5) == 0);
    CHECK_EQ(blz_file_read(f, buf, sizeof buf), 0);
    CHECK_OK(blz_file_close(f));

    /* Refused: the descriptor stays the caller's. */
    f = (blz_file *) 1;
    CHECK_EQ(blz_file_from_fd(-1, &f), -EBADF);
    CHECK_PTR_EQ(f, NULL);
    CHECK_OK(pipe(fds));
    CHECK_OK(close(fds[1]));
    CHECK_EQ(blz_file_from_fd(fds[1], &f), -EBADF); /* not open */
    CHECK_EQ(blz_file_from_fd(fds[0], NULL), -EINVAL);
    CHECK_OK(close(fds[0])); /* still ours to close */
    return NULL;
}

BLZ_TEST(adopt_in_runtime)
{
    fs_tmp t;
    fs_tmp_make(&t);
    fs_run(2, adopt_body, &t);
    fs_tmp_remove(&t);
}

BLZ_TEST(adopt_no_runtime)
{
    fs_tmp t;
    fs_tmp_make(&t);
    adopt_body(&t);
    fs_tmp_remove(&t);
}

BLZ_TEST(adopt_no_leaks)
{
    fs_tmp t;
    fs_tmp_make(&t);
    blz_test_counting_allocator_install();
    fs_run(2, adopt_body, &t);
    CHECK_EQ(blz_test_alloc_live(), 0);
    fs_tmp_remove(&t);
}
