/*
 * tests/process_pipe_ends.c — pipes that are not a child's: blz_pipe_new
 * (bytes in order between tasks on different workers, end-of-file, -EPIPE,
 * directions) and blz_pipe_from_fd (a pipe made with pipe2, a FIFO opened
 * read-write, and what it refuses, leaving the descriptor as it was).
 *
 * Run once per backend.
 */
#include "process_common.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define STREAM_LEN (1u << 20) /* sixteen times a pipe's default buffer */

static unsigned char
pattern(size_t i, unsigned seed)
{
    return (unsigned char) ((i * 131u + seed * 7u + (i >> 9)) & 0xffu);
}

typedef struct writer_job {
    blz_pipe *w;
    unsigned seed;
} writer_job;

/* Writes STREAM_LEN bytes of the pattern in uneven pieces, then closes. */
static void *
writer_task(void *arg)
{
    writer_job *j = arg;
    unsigned char *buf = malloc(STREAM_LEN);
    CHECK(buf != NULL);
    for (size_t i = 0; i < STREAM_LEN; i++) {
        buf[i] = pattern(i, j->seed);
    }
    size_t off = 0, piece = 1;
    while (off < STREAM_LEN) {
        size_t n = piece < STREAM_LEN - off ? piece : STREAM_LEN - off;
        CHECK_OK(blz_pipe_write_all(j->w, buf + off, n));
        off += n;
        piece = piece * 3 + 1; /* 1, 4, 13, ... past the pipe's buffer */
    }
    blz_pipe_close(j->w);
    free(buf);
    return NULL;
}

/* Reads to end-of-file and checks every byte. */
static void
read_and_check(blz_pipe *r, unsigned seed)
{
    unsigned char buf[5000];
    size_t got = 0;
    for (;;) {
        ssize_t n = blz_pipe_read(r, buf, sizeof buf);
        CHECK_GE(n, 0);
        if (n == 0) {
            break;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != pattern(got + (size_t) i, seed)) {
                CHECK_EQ(buf[i], pattern(got + (size_t) i, seed));
            }
        }
        got += (size_t) n;
    }
    CHECK_EQ(got, STREAM_LEN);
}

static void *
new_pipe_main(void *arg)
{
    int rounds = (int) (intptr_t) arg;
    for (int round = 0; round < rounds; round++) {
        blz_pipe *r = NULL, *w = NULL;
        CHECK_OK(blz_pipe_new(&r, &w));
        CHECK(r != NULL && w != NULL);
        /* Non-blocking and close-on-exec, both ends. */
        for (int i = 0; i < 2; i++) {
            int fd = blz_pipe_fd(i ? w : r);
            CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK);
            CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        }
        /* Each end refuses the other's direction. */
        char c = 'x';
        CHECK_EQ(blz_pipe_read(w, &c, 1), -EBADF);
        CHECK_EQ(blz_pipe_write(r, &c, 1), -EBADF);
        CHECK_EQ(blz_pipe_try_read(r, &c, 1), -EAGAIN); /* nothing written yet */

        writer_job j = {w, (unsigned) round};
        blz_join *h = NULL;
        CHECK_OK(blz_spawn(writer_task, &j, &h));
        read_and_check(r, (unsigned) round);
        CHECK_OK(blz_join_wait(h, NULL));
        CHECK_EQ(blz_pipe_read(r, &c, 1), 0); /* end of file stays */
        blz_pipe_close(r);
    }

    /* Writing after the reader closed: -EPIPE, and no SIGPIPE kills us. */
    blz_pipe *r = NULL, *w = NULL;
    CHECK_OK(blz_pipe_new(&r, &w));
    blz_pipe_close(r);
    /* On io_uring the descriptor closes once the ring has let go of it. */
    ssize_t wr = 1;
    for (int i = 0; i < 5000 && wr == 1; i++) {
        wr = blz_pipe_write(w, "x", 1);
        if (wr == 1) {
            blz_sleep(blz_ms(1));
        }
    }
    CHECK_EQ(wr, -EPIPE);
    CHECK_EQ(blz_pipe_write_all(w, "xy", 2), -EPIPE);
    blz_pipe_close(w);

    CHECK_EQ(blz_pipe_new(NULL, &w), -EINVAL);
    CHECK_EQ(blz_pipe_new(&r, NULL), -EINVAL);
    return NULL;
}

BLZ_TEST(new_pipe_between_tasks)
{
    /* Two workers: the writer and the reader are often on different threads. */
    proc_run(2, new_pipe_main, (void *) (intptr_t) 40);
    proc_run(1, new_pipe_main, (void *) (intptr_t) 5);
}

BLZ_TEST(new_pipe_outside_a_runtime)
{
    blz_pipe *r = (blz_pipe *) 1, *w = (blz_pipe *) 1;
    CHECK_EQ(blz_pipe_new(&r, &w), -ESRCH);
    CHECK_PTR_EQ(r, NULL);
    CHECK_PTR_EQ(w, NULL);
}

/* ---- adopting descriptors ------------------------------------------------------ */

static void *
adopt_pipe2_main(void *arg)
{
    (void) arg;
    int fds[2];
    CHECK_OK(pipe(fds)); /* blocking, inheritable: adoption changes both */
    blz_pipe *r = NULL, *w = NULL;
    CHECK_OK(blz_pipe_from_fd(fds[0], &r));
    CHECK_OK(blz_pipe_from_fd(fds[1], &w));
    CHECK_EQ(blz_pipe_fd(r), fds[0]);
    CHECK(fcntl(fds[0], F_GETFL) & O_NONBLOCK);
    CHECK(fcntl(fds[1], F_GETFD) & FD_CLOEXEC);
    CHECK_EQ(blz_pipe_write(r, "x", 1), -EBADF);
    CHECK_EQ(blz_pipe_read(w, (char[1]){0}, 1), -EBADF);
    writer_job j = {w, 99};
    blz_join *h = NULL;
    CHECK_OK(blz_spawn(writer_task, &j, &h));
    read_and_check(r, 99);
    CHECK_OK(blz_join_wait(h, NULL));
    blz_pipe_close(r);
    return NULL;
}

BLZ_TEST(adopt_pipe_ends)
{
    proc_run(2, adopt_pipe2_main, NULL);
}

typedef struct fifo_dir {
    char dir[64];
    char path[96];
} fifo_dir;

static void *
adopt_fifo_main(void *arg)
{
    fifo_dir *t = arg;
    /* Opened read-write (open does not wait for a peer): both directions. */
    int fd = open(t->path, O_RDWR | O_CLOEXEC);
    CHECK_GE(fd, 0);
    blz_pipe *p = NULL;
    CHECK_OK(blz_pipe_from_fd(fd, &p));
    CHECK_OK(blz_pipe_write_all(p, "through the fifo", 16));
    char buf[32];
    CHECK_EQ(blz_pipe_read(p, buf, sizeof buf), 16);
    CHECK(memcmp(buf, "through the fifo", 16) == 0);
    CHECK_EQ(blz_pipe_try_read(p, buf, sizeof buf), -EAGAIN);
    blz_pipe_close(p);

    /* Opened for reading only, without waiting for a writer: a read end. */
    fd = open(t->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    CHECK_GE(fd, 0);
    CHECK_OK(blz_pipe_from_fd(fd, &p));
    CHECK_EQ(blz_pipe_write(p, "x", 1), -EBADF);
    blz_pipe_close(p);
    return NULL;
}

BLZ_TEST(adopt_fifo)
{
    fifo_dir t;
    snprintf(t.dir, sizeof t.dir, "/tmp/blz_fifo_XXXXXX");
    CHECK(mkdtemp(t.dir) != NULL);
    snprintf(t.path, sizeof t.path, "%s/f", t.dir);
    CHECK_OK(mkfifo(t.path, 0600));
    proc_run(2, adopt_fifo_main, &t);
    CHECK_OK(unlink(t.path));
    CHECK_OK(rmdir(t.dir));
}

/* What is not a pipe is refused, and the descriptor is left as it was. */
static void
check_refused(int fd, int expect)
{
    int fl = fcntl(fd, F_GETFL);
    int fdfl = fcntl(fd, F_GETFD);
    blz_pipe *p = (blz_pipe *) 1;
    CHECK_EQ(blz_pipe_from_fd(fd, &p), expect);
    CHECK_PTR_EQ(p, NULL);
    CHECK_EQ(fcntl(fd, F_GETFL), fl);
    CHECK_EQ(fcntl(fd, F_GETFD), fdfl);
}

static void *
refused_main(void *arg)
{
    (void) arg;
    char path[] = "/tmp/blz_notpipe_XXXXXX";
    int file = mkstemp(path);
    CHECK_GE(file, 0);
    CHECK_OK(unlink(path));
    check_refused(file, -EINVAL);
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    check_refused(sv[0], -EINVAL);
    int devnull = open("/dev/null", O_RDWR);
    CHECK_GE(devnull, 0);
    check_refused(devnull, -EINVAL); /* a character device */
    CHECK_OK(close(file));
    CHECK_OK(close(sv[0]));
    CHECK_OK(close(sv[1]));
    CHECK_OK(close(devnull));

    blz_pipe *p = NULL;
    CHECK_EQ(blz_pipe_from_fd(-1, &p), -EBADF);
    int fds[2];
    CHECK_OK(pipe(fds));
    CHECK_OK(close(fds[1]));
    CHECK_EQ(blz_pipe_from_fd(fds[1], &p), -EBADF); /* closed */
    CHECK_EQ(blz_pipe_from_fd(fds[0], NULL), -EINVAL);
    CHECK_OK(close(fds[0]));
    return NULL;
}

BLZ_TEST(adopt_refuses_what_is_not_a_pipe)
{
    proc_run(1, refused_main, NULL);
    /* Outside a runtime: -ESRCH, the descriptor untouched. */
    int fds[2];
    CHECK_OK(pipe(fds));
    check_refused(fds[0], -ESRCH);
    CHECK_OK(close(fds[0]));
    CHECK_OK(close(fds[1]));
}

BLZ_TEST(pipe_ends_no_leaks)
{
    blz_test_counting_allocator_install();
    proc_run(2, new_pipe_main, (void *) (intptr_t) 3);
    proc_run(2, adopt_pipe2_main, NULL);
    CHECK_EQ(blz_test_alloc_live(), 0);
}
