/*
 * tests/fs_adopt.c — blz_file_from_fd: a descriptor opened with open(2)
 * read and written through blitzio (on the ring or the pool) and closed by
 * blz_file_close; a pipe read through the file calls (and refusing offsets:
 * -ESPIPE on every backend); flags left alone;
 * what it refuses, leaving the descriptor the caller's.
 *
 * Run once per backend.
 */
#include "fs_common.h"

#include <fcntl.h>
#include <sys/eventfd.h>

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

/* A pipe has no offsets: pread and pwrite fail with -ESPIPE, as lseek does,
 * on every backend, and move nothing through the pipe (io_uring ignores the
 * offset of such a file: it would read or write as at the position). */
static void *
adopt_pipe_offsets_body(void *arg)
{
    (void) arg;
    int fds[2];
    CHECK_OK(pipe(fds));
    CHECK_EQ(write(fds[1], "piped", 5), 5);
    blz_file *r = NULL, *w = NULL;
    CHECK_OK(blz_file_from_fd(fds[0], &r));
    CHECK_OK(blz_file_from_fd(fds[1], &w));
    char buf[16];
    blz_iovec iov = {buf, sizeof buf};
    CHECK_EQ(blz_file_pread(r, buf, sizeof buf, 0), -ESPIPE);
    CHECK_EQ(blz_file_preadv(r, &iov, 1, 0), -ESPIPE);
    CHECK_EQ(blz_file_pread(r, buf, 0, 0), -ESPIPE);
    CHECK_EQ(blz_file_pwrite(w, "x", 1, 0), -ESPIPE);
    blz_iovec one = {(void *) "y", 1};
    CHECK_EQ(blz_file_pwritev(w, &one, 1, 0), -ESPIPE);
    CHECK_EQ(blz_file_seek(r, 0, BLZ_SEEK_CUR, NULL), -ESPIPE);
    CHECK_OK(blz_file_close(w));
    /* The pipe holds exactly what was written before. */
    CHECK_EQ(blz_file_read(r, buf, sizeof buf), 5);
    CHECK(memcmp(buf, "piped", 5) == 0);
    CHECK_EQ(blz_file_read(r, buf, sizeof buf), 0);
    CHECK_OK(blz_file_close(r));

    /* An eventfd seeks (lseek says 0) but has no offsets either. */
    int efd = eventfd(5, 0);
    CHECK_GE(efd, 0);
    CHECK_OK(blz_file_from_fd(efd, &r));
    uint64_t v = 0;
    CHECK_EQ(blz_file_pread(r, &v, sizeof v, 0), -ESPIPE);
    CHECK_EQ(blz_file_read(r, &v, sizeof v), 8);
    CHECK_EQ(v, 5); /* the counter was still there */
    CHECK_OK(blz_file_close(r));
    return NULL;
}

BLZ_TEST(adopt_pipe_no_offsets)
{
    fs_run(2, adopt_pipe_offsets_body, NULL);
    adopt_pipe_offsets_body(NULL);
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
