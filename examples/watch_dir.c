/*
 * examples/watch_dir.c — print what happens in a directory, through inotify
 * and blz_async_fd.
 *
 *   build/examples/watch_dir DIR [COUNT]
 *
 * The inotify descriptor is not a blitzio object: blz_async_fd watches it,
 * and blz_async_fd_io runs the task's own read whenever events wait, which
 * is how any library's descriptor is driven (libcurl's sockets, libpq's
 * connection). Prints "watching DIR", then a line per event: "created
 * NAME", "written NAME" (closed after writing), "deleted NAME", "moved
 * NAME". Stops after COUNT events, or runs until it is killed.
 */
#include "blitzio.h"
#include "blitzio/io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define EVENT_BUF 16384 /* bytes read at once: room for many events */

typedef struct watch {
    const char *dir;
    long count; /* events to print before stopping; 0: no limit */
    int status; /* the exit status */
} watch;

static const char *
verb(uint32_t mask)
{
    if (mask & IN_CREATE) {
        return "created";
    }
    if (mask & IN_CLOSE_WRITE) {
        return "written";
    }
    if (mask & IN_DELETE) {
        return "deleted";
    }
    if (mask & (IN_MOVED_FROM | IN_MOVED_TO)) {
        return "moved";
    }
    return NULL;
}

/* Prints the events in buf[0, n); false once `w->count` are printed. */
static int
print_events(watch *w, const char *buf, ssize_t n, long *seen)
{
    const char *p = buf;
    while (p < buf + n) {
        struct inotify_event ev;
        memcpy(&ev, p, sizeof ev); /* the name follows the header */
        const char *v = verb(ev.mask);
        if (v && ev.len > 0) {
            printf("%s %s\n", v, p + sizeof ev);
            fflush(stdout);
            if (w->count > 0 && ++*seen >= w->count) {
                return 0;
            }
        }
        p += sizeof ev + ev.len;
    }
    return 1;
}

/* The library's own call, as blz_async_fd_io runs it: bytes read, or -errno
 * (-EAGAIN when there is nothing to read yet). */
static long
read_events(int fd, void *buf)
{
    ssize_t n = read(fd, buf, EVENT_BUF);
    return n < 0 ? -errno : (long) n;
}

static void *
watch_task(void *arg)
{
    watch *w = arg;
    w->status = 1;
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        perror("watch_dir: inotify_init1");
        return NULL;
    }
    if (inotify_add_watch(fd, w->dir, IN_CREATE | IN_CLOSE_WRITE | IN_DELETE | IN_MOVE) < 0) {
        fprintf(stderr, "watch_dir: %s: %s\n", w->dir, strerror(errno));
        (void) close(fd);
        return NULL;
    }
    blz_async_fd *a = NULL;
    int rc = blz_async_fd_new(fd, &a);
    if (rc < 0) {
        fprintf(stderr, "watch_dir: %s\n", blz_strerror(rc));
        (void) close(fd);
        return NULL;
    }
    printf("watching %s\n", w->dir);
    fflush(stdout);
    /* Static, so it is not on the fiber's stack. */
    static _Alignas(struct inotify_event) char buf[EVENT_BUF];
    long seen = 0;
    for (;;) {
        /* The read runs when inotify has events; the task sleeps in between. */
        long n = blz_async_fd_io(a, BLZ_READABLE, read_events, buf);
        if (n < 0) {
            fprintf(stderr, "watch_dir: %s\n", blz_strerror((int) n));
            break;
        }
        if (!print_events(w, buf, n, &seen)) {
            w->status = 0;
            break;
        }
    }
    blz_async_fd_free(a);
    (void) close(fd);
    return NULL;
}

int
main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: watch_dir DIR [COUNT]\n");
        return 2;
    }
    watch w = {argv[1], 0, 1};
    if (argc == 3) {
        /* Only a whole number: strtol alone reads "ten" as 0, which would
         * mean no limit, and "5x" as 5. */
        char *end = NULL;
        errno = 0;
        w.count = strtol(argv[2], &end, 10);
        if (end == argv[2] || *end != '\0' || errno != 0 || w.count < 0) {
            fprintf(stderr, "watch_dir: COUNT must be a number, 0 or more\n");
            return 2;
        }
    }
    int rc = blz_run(watch_task, &w);
    if (rc < 0) {
        fprintf(stderr, "watch_dir: %s\n", blz_strerror(rc));
        return 1;
    }
    return w.status;
}
