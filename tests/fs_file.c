/*
 * tests/fs_file.c — blz_file: open options and their errors, reads and
 * writes at the position and at offsets, short reads and end of file, seek,
 * sync, set_len, metadata, close (also with operations in flight), the try
 * tier, the future tier from a stackless task, calls from outside any
 * runtime and from the blocking pool, and fault injection through the
 * syscall table (cancellation: fs_cancel.c).
 *
 * Run once per backend (BLZ_BACKEND=epoll: blocking pool; io_uring: reads,
 * writes, open, sync, metadata and close on the ring; fs_ring.c checks which).
 */
#include "fs_common.h"

#include <fcntl.h>
#include <sys/types.h>

/* ---- open options --------------------------------------------------------------- */

BLZ_TEST(open_options_rejected)
{
    /* No runtime: the calls run inline on this thread. */
    fs_tmp t;
    fs_tmp_make(&t);
    const char *p = fs_path(&t, "f");
    blz_file *f = NULL;
    blz_open_options none = {0};
    CHECK_EQ(blz_file_open(p, &none, &f), -EINVAL);
    blz_open_options trunc_ro = {.read = true, .truncate = true};
    CHECK_EQ(blz_file_open(p, &trunc_ro, &f), -EINVAL);
    blz_open_options create_ro = {.read = true, .create = true};
    CHECK_EQ(blz_file_open(p, &create_ro, &f), -EINVAL);
    blz_open_options new_ro = {.read = true, .create_new = true};
    CHECK_EQ(blz_file_open(p, &new_ro, &f), -EINVAL);
    blz_open_options app_trunc = {.append = true, .truncate = true};
    CHECK_EQ(blz_file_open(p, &app_trunc, &f), -EINVAL);
    CHECK_EQ(blz_file_open(NULL, NULL, &f), -EINVAL);
    CHECK_EQ(blz_file_open(p, NULL, NULL), -EINVAL);
    CHECK_PTR_EQ(f, NULL);
    CHECK(!fs_exists(p)); /* nothing was created */
    fs_tmp_remove(&t);
}

static void *
open_errors_body(void *arg)
{
    fs_tmp *t = arg;
    blz_file *f = NULL;
    /* ENOENT: missing file, read only or without create. */
    CHECK_EQ(blz_file_open(fs_path(t, "missing"), NULL, &f), -ENOENT);
    blz_open_options w = {.write = true};
    CHECK_EQ(blz_file_open(fs_path(t, "missing"), &w, &f), -ENOENT);
    CHECK_EQ(blz_file_open(fs_path(t, "nodir/x"), NULL, &f), -ENOENT);

    /* EEXIST: create_new on an existing file, and on a dangling symlink. */
    blz_open_options cn = {.write = true, .create_new = true};
    CHECK_OK(blz_file_open(fs_path(t, "a"), &cn, &f));
    CHECK_OK(blz_file_close(f));
    CHECK_EQ(blz_file_open(fs_path(t, "a"), &cn, &f), -EEXIST);
    CHECK_OK(blz_fs_symlink(fs_path(t, "nowhere"), fs_path(t, "dangling")));
    CHECK_EQ(blz_file_open(fs_path(t, "dangling"), &cn, &f), -EEXIST);

    /* ENOTDIR: a path that goes through a regular file. */
    CHECK_EQ(blz_file_open(fs_path(t, "a/b"), NULL, &f), -ENOTDIR);
    blz_open_options wc = {.write = true, .create = true};
    CHECK_EQ(blz_file_open(fs_path(t, "a/b"), &wc, &f), -ENOTDIR);

    /* EISDIR: writing to a directory; reading one opens but read fails. */
    CHECK_OK(blz_fs_create_dir(fs_path(t, "d"), 0));
    CHECK_EQ(blz_file_open(fs_path(t, "d"), &w, &f), -EISDIR);
    CHECK_OK(blz_file_open(fs_path(t, "d"), NULL, &f));
    char b[8];
    CHECK_EQ(blz_file_read(f, b, sizeof b), -EISDIR);
    CHECK_EQ(blz_file_pread(f, b, sizeof b, 0), -EISDIR);
    CHECK_OK(blz_file_close(f));

    /* custom_flags: O_NOFOLLOW refuses a symlink (ELOOP). */
    CHECK_OK(blz_fs_symlink(fs_path(t, "a"), fs_path(t, "link_a")));
    blz_open_options nf = {.read = true, .custom_flags = O_NOFOLLOW};
    CHECK_EQ(blz_file_open(fs_path(t, "link_a"), &nf, &f), -ELOOP);
    CHECK_OK(blz_file_open(fs_path(t, "a"), &nf, &f));
    CHECK_OK(blz_file_close(f));

    /* Every descriptor is close-on-exec. */
    CHECK_OK(blz_file_open(fs_path(t, "a"), NULL, &f));
    int fl = fcntl(blz_file_fd(f), F_GETFD);
    CHECK(fl >= 0 && (fl & FD_CLOEXEC));
    CHECK_OK(blz_file_close(f));
    return NULL;
}

BLZ_TEST(open_errors)
{
    fs_tmp t;
    fs_tmp_make(&t);
    fs_run(2, open_errors_body, &t);
    fs_tmp_remove(&t);
}

/* EACCES needs an unprivileged user: root passes permission checks. The test
 * runs in its own forked child, so as root it drops to nobody for good. */
BLZ_TEST(open_eacces)
{
    if (geteuid() == 0 &&
        (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0)) {
        SKIP("running as root and cannot drop privileges to test EACCES");
    }
    fs_tmp t;
    fs_tmp_make(&t); /* owned by the (possibly new) user */
    const char *p = fs_path(&t, "locked");
    CHECK_OK(blz_fs_write_file(p, "x", 1));
    CHECK_OK(blz_fs_set_permissions(p, 0));
    blz_file *f = NULL;
    CHECK_EQ(blz_file_open(p, NULL, &f), -EACCES);
    void *buf = NULL;
    CHECK_EQ(blz_fs_read_file(p, &buf, NULL), -EACCES);
    CHECK_OK(blz_fs_set_permissions(t.dir, 0500)); /* no write: can't create inside */
    CHECK_EQ(blz_fs_write_file(fs_path(&t, "new"), "x", 1), -EACCES);
    CHECK_EQ(blz_fs_create_dir(fs_path(&t, "sub"), 0), -EACCES);
    CHECK_OK(blz_fs_set_permissions(t.dir, 0700));
    fs_tmp_remove(&t);
}

/* ---- data ------------------------------------------------------------------------- */

static void *
read_write_body(void *arg)
{
    fs_tmp *t = arg;
    const char *p = fs_path(t, "rw");
    blz_open_options rw = {
        .read = true, .write = true, .create = true, .truncate = true, .mode = 0640};
    blz_file *f = NULL;
    CHECK_OK(blz_file_open(p, &rw, &f));
    CHECK_GE(blz_file_fd(f), 0);

    /* Write, then read back from the start. */
    CHECK_EQ(blz_file_write(f, "hello, world", 12), 12);
    uint64_t pos = 99;
    CHECK_OK(blz_file_seek(f, 0, BLZ_SEEK_CUR, &pos));
    CHECK_EQ(pos, 12);
    CHECK_OK(blz_file_seek(f, 0, BLZ_SEEK_SET, &pos));
    CHECK_EQ(pos, 0);
    char buf[64];
    memset(buf, 0, sizeof buf);
    /* Short read: asks 64, the file has 12. Then end of file: 0, again 0. */
    CHECK_EQ(blz_file_read(f, buf, sizeof buf), 12);
    CHECK(memcmp(buf, "hello, world", 12) == 0);
    CHECK_EQ(blz_file_read(f, buf, sizeof buf), 0);
    CHECK_EQ(blz_file_read(f, buf, sizeof buf), 0);

    /* Positional I/O does not move the position. */
    CHECK_EQ(blz_file_pwrite(f, "HELLO", 5, 0), 5);
    CHECK_EQ(blz_file_pread(f, buf, 5, 7), 5);
    CHECK(memcmp(buf, "world", 5) == 0);
    CHECK_EQ(blz_file_pread(f, buf, 64, 0), 12);
    CHECK(memcmp(buf, "HELLO, world", 12) == 0);
    CHECK_EQ(blz_file_pread(f, buf, 8, 12), 0);   /* at the end */
    CHECK_EQ(blz_file_pread(f, buf, 8, 1000), 0); /* past the end */
    CHECK_OK(blz_file_seek(f, 0, BLZ_SEEK_CUR, &pos));
    CHECK_EQ(pos, 12);

    /* A hole: pwrite past the end reads back as zeros. */
    CHECK_EQ(blz_file_pwrite(f, "!", 1, 20), 1);
    CHECK_EQ(blz_file_pread(f, buf, 64, 12), 9);
    for (int i = 0; i < 8; i++) {
        CHECK_EQ(buf[i], 0);
    }
    CHECK_EQ(buf[8], '!');

    /* Seek from the end, and the errors. */
    CHECK_OK(blz_file_seek(f, -3, BLZ_SEEK_END, &pos));
    CHECK_EQ(pos, 18);
    CHECK_EQ(blz_file_seek(f, -100, BLZ_SEEK_SET, NULL), -EINVAL);
    CHECK_EQ(blz_file_seek(f, 0, (blz_whence) 7, NULL), -EINVAL);
    CHECK_OK(blz_file_seek(f, 2, BLZ_SEEK_CUR, NULL));
    CHECK_EQ(blz_file_read(f, buf, 64), 1);
    CHECK_EQ(buf[0], '!');

    /* Zero-length transfers. */
    CHECK_EQ(blz_file_read(f, buf, 0), 0);
    CHECK_EQ(blz_file_write(f, buf, 0), 0);
    CHECK_OK(blz_file_write_all(f, buf, 0));

    /* set_len: shrink then grow (zeros); the position does not move. */
    CHECK_OK(blz_file_set_len(f, 5));
    blz_metadata md;
    CHECK_OK(blz_file_metadata(f, &md));
    CHECK_EQ(md.size, 5);
    CHECK_EQ(md.kind, BLZ_FILE_REGULAR);
    CHECK_EQ(md.mode & 0777, 0640);
    CHECK_EQ(md.nlink, 1);
    CHECK_GT(md.mtime_ns, 1500000000LL * 1000000000LL); /* after 2017 */
    CHECK_OK(blz_file_set_len(f, 4096));
    CHECK_OK(blz_file_metadata(f, &md));
    CHECK_EQ(md.size, 4096);
    CHECK_EQ(blz_file_pread(f, buf, 8, 5), 8);
    for (int i = 0; i < 8; i++) {
        CHECK_EQ(buf[i], 0);
    }
    CHECK_OK(blz_file_seek(f, 0, BLZ_SEEK_CUR, &pos));
    CHECK_EQ(pos, 21);
    CHECK_OK(blz_file_sync_all(f));
    CHECK_OK(blz_file_sync_data(f));

    /* Permissions through the handle (the high bits of `mode` are ignored). */
    CHECK_OK(blz_file_set_permissions(f, 0600));
    CHECK_OK(blz_file_metadata(f, &md));
    CHECK_EQ(md.mode & 07777, 0600);
    CHECK_OK(blz_file_set_permissions(f, 0100644));
    CHECK_OK(blz_file_metadata(f, &md));
    CHECK_EQ(md.mode & 07777, 0644);
    CHECK_EQ(blz_file_set_permissions(NULL, 0600), -EINVAL);

    /* Argument errors. */
    CHECK_EQ(blz_file_read(NULL, buf, 1), -EINVAL);
    CHECK_EQ(blz_file_read(f, NULL, 1), -EINVAL);
    CHECK_EQ(blz_file_write(f, NULL, 1), -EINVAL);
    CHECK_EQ(blz_file_pread(f, buf, 1, (uint64_t) INT64_MAX + 1), -EINVAL);
    CHECK_EQ(blz_file_set_len(f, UINT64_MAX), -EINVAL);
    CHECK_EQ(blz_file_metadata(f, NULL), -EINVAL);
    CHECK_EQ(blz_file_close(NULL), -EINVAL);
    CHECK_OK(blz_file_close(f));

    /* Direction errors: read from write-only, write to read-only. */
    blz_open_options wo = {.write = true};
    CHECK_OK(blz_file_open(p, &wo, &f));
    CHECK_EQ(blz_file_read(f, buf, 4), -EBADF);
    CHECK_EQ(blz_file_pread(f, buf, 4, 0), -EBADF);
    CHECK_EQ(blz_file_set_len(f, 1), 0);
    CHECK_OK(blz_file_close(f));
    CHECK_OK(blz_file_open(p, NULL, &f));
    CHECK_EQ(blz_file_write(f, "x", 1), -EBADF);
    CHECK_EQ(blz_file_pwrite(f, "x", 1, 0), -EBADF);
    CHECK_EQ(blz_file_write_all(f, "x", 1), -EBADF);
    CHECK_EQ(blz_file_set_len(f, 0), -EINVAL);
    CHECK_OK(blz_file_close(f));
    return NULL;
}

BLZ_TEST(read_write_seek_len)
{
    fs_tmp t;
    fs_tmp_make(&t);
    umask(022);
    fs_run_checking_ring(read_write_body, &t);
    fs_tmp_remove(&t);
}

static void *
append_truncate_body(void *arg)
{
    fs_tmp *t = arg;
    const char *p = fs_path(t, "log");
    CHECK_OK(blz_fs_write_file(p, "abc", 3));
    blz_open_options ap = {.append = true};
    blz_file *f = NULL;
    CHECK_OK(blz_file_open(p, &ap, &f));
    CHECK_EQ(blz_file_write(f, "def", 3), 3);
    CHECK_OK(blz_file_write_all(f, "gh", 2));
    CHECK_OK(blz_file_close(f));
    void *buf = NULL;
    size_t len = 0;
    CHECK_OK(blz_fs_read_file(p, &buf, &len));
    CHECK_EQ(len, 8);
    CHECK(memcmp(buf, "abcdefgh", 8) == 0);
    blz_fs_free_buf(buf);

    /* Truncate on open empties it; create on an existing file keeps it. */
    blz_open_options keep = {.write = true, .create = true};
    CHECK_OK(blz_file_open(p, &keep, &f));
    blz_metadata md;
    CHECK_OK(blz_file_metadata(f, &md));
    CHECK_EQ(md.size, 8);
    CHECK_OK(blz_file_close(f));
    blz_open_options tr = {.write = true, .truncate = true};
    CHECK_OK(blz_file_open(p, &tr, &f));
    CHECK_OK(blz_file_metadata(f, &md));
    CHECK_EQ(md.size, 0);
    CHECK_OK(blz_file_close(f));
    return NULL;
}

BLZ_TEST(append_and_truncate)
{
    fs_tmp t;
    fs_tmp_make(&t);
    fs_run(2, append_truncate_body, &t);
    fs_tmp_remove(&t);
}

/* The try tier reads the page cache only: data just written is there on
 * every local file system; some cannot tell (EOPNOTSUPP). */
static void *
try_read_body(void *arg)
{
    fs_tmp *t = arg;
    const char *p = fs_path(t, "cached");
    CHECK_OK(blz_fs_write_file(p, "cached data", 11));
    blz_file *f = NULL;
    CHECK_OK(blz_file_open(p, NULL, &f));
    char buf[32];
    ssize_t r = blz_file_try_pread(f, buf, sizeof buf, 7);
    if (r == -EOPNOTSUPP || r == -EAGAIN) {
        CHECK_OK(blz_file_close(f));
        return (void *) 1;
    }
    CHECK_EQ(r, 4);
    CHECK(memcmp(buf, "data", 4) == 0);
    CHECK_EQ(blz_file_try_read(f, buf, 6), 6);
    CHECK(memcmp(buf, "cached", 6) == 0);
    CHECK_EQ(blz_file_try_read(f, buf, sizeof buf), 5);
    CHECK_EQ(blz_file_try_read(f, buf, sizeof buf), 0); /* end of file */
    CHECK_EQ(blz_file_try_read(NULL, buf, 1), -EINVAL);
    CHECK_OK(blz_file_close(f));
    return NULL;
}

BLZ_TEST(try_read_page_cache)
{
    fs_tmp t;
    fs_tmp_make(&t);
    void *skipped = fs_run(2, try_read_body, &t);
    fs_tmp_remove(&t);
    if (skipped) {
        SKIP("this file system cannot read without waiting (RWF_NOWAIT)");
    }
}

/* ---- where calls run ---------------------------------------------------------------- */

/* Outside any runtime every call runs inline: the same body, on this thread. */
BLZ_TEST(no_runtime_inline)
{
    fs_tmp t;
    fs_tmp_make(&t);
    CHECK_PTR_EQ(blz_runtime_current(), NULL);
    read_write_body(&t);
    append_truncate_body(&t);
    open_errors_body(&t);
    CHECK_EQ(blz__fs_live_ops(), 0); /* nothing went through an op */
    fs_tmp_remove(&t);
}

/* From a blocking-pool thread: inside the runtime but not a worker. */
static void *
pool_job_body(void *arg)
{
    CHECK(blz_runtime_current() != NULL);
    return read_write_body(arg);
}

static void *
from_pool_body(void *arg)
{
    blz_join *j = NULL;
    CHECK_OK(blz_spawn_blocking(pool_job_body, arg, &j));
    CHECK_OK(blz_join_wait(j, NULL));
    return NULL;
}

BLZ_TEST(from_blocking_pool)
{
    fs_tmp t;
    fs_tmp_make(&t);
    fs_run(2, from_pool_body, &t);
    fs_tmp_remove(&t);
}

BLZ_TEST(current_thread_runtime)
{
    fs_tmp t;
    fs_tmp_make(&t);
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.flavor = BLZ_CURRENT_THREAD;
    blz_runtime *rt = NULL;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    CHECK_OK(blz_runtime_block_on(rt, read_write_body, &t, NULL));
    blz_runtime_free(rt);
    CHECK_EQ(blz__fs_live_ops(), 0);
    fs_tmp_remove(&t);
}

/* ---- the future tier from a stackless task ------------------------------------------ */

typedef struct stackless_io {
    blz_future base;
    blz_fs_future op;
    const char *path;
    blz_file *file;
    char buf[16];
    int deadlk; /* what blz_await said inside the poll */
} stackless_io;

static blz_poll
stackless_poll(blz_future *self, blz_context *cx)
{
    stackless_io *s = (stackless_io *) self;
    BLZ_ASYNC_BEGIN(self);
    /* The await tier must refuse here: waiting would block a worker. */
    s->deadlk = blz_fs_remove_file(s->path);
    if (s->deadlk != -EDEADLK) {
        BLZ_ASYNC_RETURN(self, -EPROTO);
    }
    blz_open_options o = {.read = true, .write = true, .create = true, .truncate = true};
    blz_file_open_fut(s->path, &o, &s->file, &s->op);
    BLZ_AWAIT(self, cx, &s->op.base);
    if (s->op.base.result < 0) {
        BLZ_ASYNC_RETURN(self, s->op.base.result);
    }
    blz_file_write_all_fut(s->file, "stackless", 9, &s->op);
    BLZ_AWAIT(self, cx, &s->op.base);
    if (s->op.base.result < 0) {
        BLZ_ASYNC_RETURN(self, s->op.base.result);
    }
    blz_file_pread_fut(s->file, s->buf, sizeof s->buf, 5, &s->op);
    BLZ_AWAIT(self, cx, &s->op.base);
    if (s->op.base.result != 4 || memcmp(s->buf, "less", 4) != 0) {
        BLZ_ASYNC_RETURN(self, -EIO);
    }
    blz_file_close_fut(s->file, &s->op);
    BLZ_AWAIT(self, cx, &s->op.base);
    BLZ_ASYNC_RETURN(self, s->op.base.result);
    BLZ_ASYNC_END(self);
}

static void
stackless_drop(blz_future *self)
{
    stackless_io *s = (stackless_io *) self;
    blz_future_drop(&s->op.base);
}

static const blz_future_vtable stackless_vt = {stackless_poll, stackless_drop};

static void *
stackless_body(void *arg)
{
    fs_tmp *t = arg;
    stackless_io s;
    memset(&s, 0, sizeof s);
    blz_future_init(&s.base, &stackless_vt);
    s.path = fs_path(t, "stackless");
    blz_join *j = NULL;
    CHECK_OK(blz_spawn_future(&s.base, sizeof s, &j));
    void *res = NULL;
    CHECK_OK(blz_join_wait(j, &res));
    CHECK_EQ((int) (intptr_t) res, 0);
    void *buf = NULL;
    size_t len = 0;
    CHECK_OK(blz_fs_read_file(s.path, &buf, &len));
    CHECK_EQ(len, 9);
    CHECK(memcmp(buf, "stackless", 9) == 0);
    blz_fs_free_buf(buf);
    return NULL;
}

BLZ_TEST(future_tier_stackless)
{
    fs_tmp t;
    fs_tmp_make(&t);
    fs_run(2, stackless_body, &t);
    fs_tmp_remove(&t);
}

/* blz_file_create's future tier truncates an existing file and opens it for
 * writing, as the await tier does. */
static void *
create_fut_body(void *arg)
{
    fs_tmp *t = arg;
    const char *p = fs_path(t, "created");
    CHECK_OK(blz_fs_write_file(p, "old contents", 12));
    blz_fs_future f;
    blz_file *file = NULL;
    blz_file_create_fut(p, &file, &f);
    CHECK_EQ(blz_await(&f.base), 0);
    CHECK(file != NULL);
    CHECK_EQ(blz_file_write(file, "new", 3), 3);
    CHECK_OK(blz_file_close(file));
    void *buf = NULL;
    size_t len = 0;
    CHECK_OK(blz_fs_read_file(p, &buf, &len));
    CHECK_EQ(len, 3);
    CHECK(memcmp(buf, "new", 3) == 0);
    blz_fs_free_buf(buf);
    blz_file_create_fut(p, NULL, &f);
    CHECK_EQ(blz_await(&f.base), -EINVAL);
    blz_file_create_fut(NULL, &file, &f);
    CHECK_EQ(blz_await(&f.base), -EINVAL);
    return NULL;
}

BLZ_TEST(create_future_tier)
{
    fs_tmp t;
    fs_tmp_make(&t);
    fs_run(2, create_fut_body, &t);
    fs_tmp_remove(&t);
}

/* A future that is never polled holds nothing: dropping it is a no-op. */
BLZ_TEST(unpolled_future_drop)
{
    blz_fs_future f;
    blz_file *out = NULL;
    blz_file_open_fut("/nonexistent", NULL, &out, &f);
    blz_future_drop(&f.base);
    CHECK_EQ(blz_future_poll(&f.base, &(blz_context){blz_waker_noop()}), BLZ_READY);
    CHECK_EQ(f.base.result, -ECANCELED);
    CHECK_EQ(blz__fs_live_ops(), 0);
}

/* A NULL future is ignored by every fill function, as in the other modules
 * (net, sync, signal...): nothing to report the error into, nothing to crash. */
BLZ_TEST(null_future_is_ignored)
{
    char buf[4] = {0};
    blz_iovec iov = {buf, sizeof buf};
    blz_file *file = NULL;
    blz_dir *dir = NULL;
    blz_dir_entry e;
    blz_metadata md;
    uint64_t pos = 0;
    void *data = NULL;
    size_t len = 0;
    char *text = NULL;
    blz_file_open_fut("/nonexistent", NULL, &file, NULL);
    blz_file_create_fut("/nonexistent", &file, NULL);
    blz_file_read_fut(NULL, buf, sizeof buf, NULL);
    blz_file_pread_fut(NULL, buf, sizeof buf, 0, NULL);
    blz_file_write_fut(NULL, buf, sizeof buf, NULL);
    blz_file_pwrite_fut(NULL, buf, sizeof buf, 0, NULL);
    blz_file_readv_fut(NULL, &iov, 1, NULL);
    blz_file_preadv_fut(NULL, &iov, 1, 0, NULL);
    blz_file_writev_fut(NULL, &iov, 1, NULL);
    blz_file_pwritev_fut(NULL, &iov, 1, 0, NULL);
    blz_file_write_all_fut(NULL, buf, sizeof buf, NULL);
    blz_file_seek_fut(NULL, 0, BLZ_SEEK_SET, &pos, NULL);
    blz_file_sync_all_fut(NULL, NULL);
    blz_file_sync_data_fut(NULL, NULL);
    blz_file_set_len_fut(NULL, 0, NULL);
    blz_file_set_permissions_fut(NULL, 0644, NULL);
    blz_file_metadata_fut(NULL, &md, NULL);
    blz_file_close_fut(NULL, NULL);
    blz_fs_read_file_fut("/nonexistent", &data, &len, NULL);
    blz_fs_write_file_fut("/nonexistent/x", buf, sizeof buf, NULL);
    blz_fs_metadata_fut("/nonexistent", &md, NULL);
    blz_fs_symlink_metadata_fut("/nonexistent", &md, NULL);
    blz_fs_create_dir_fut("/nonexistent/x", 0755, NULL);
    blz_fs_create_dir_all_fut("/nonexistent/x", 0755, NULL);
    blz_fs_remove_dir_fut("/nonexistent", NULL);
    blz_fs_remove_dir_all_fut("/nonexistent", NULL);
    blz_fs_remove_file_fut("/nonexistent", NULL);
    blz_fs_rename_fut("/nonexistent", "/nonexistent2", NULL);
    blz_fs_copy_fut("/nonexistent", "/nonexistent2", NULL, NULL);
    blz_fs_hard_link_fut("/nonexistent", "/nonexistent2", NULL);
    blz_fs_symlink_fut("/nonexistent", "/nonexistent/x", NULL);
    blz_fs_read_link_fut("/nonexistent", &text, NULL);
    blz_fs_canonicalize_fut("/nonexistent", &text, NULL);
    blz_fs_set_permissions_fut("/nonexistent", 0644, NULL);
    blz_dir_open_fut("/nonexistent", &dir, NULL);
    blz_dir_next_fut(NULL, &e, NULL);
    blz_dir_close_fut(NULL, NULL);
    CHECK_PTR_EQ(file, NULL);
    CHECK_PTR_EQ(dir, NULL);
    CHECK_PTR_EQ(data, NULL);
    CHECK_PTR_EQ(text, NULL);
    CHECK_EQ(blz__fs_live_ops(), 0);
}

/* ---- fault injection (the pool path and the inline path use the table) ------------- */

static _Atomic int fault_calls;

static int64_t
short_eintr_write(int fd, const void *buf, size_t n)
{
    if (atomic_fetch_add(&fault_calls, 1) % 3 == 0) {
        return -EINTR;
    }
    ssize_t r = write(fd, buf, n < 7 ? n : 7);
    return r < 0 ? -errno : r;
}

static int64_t
short_eintr_read(int fd, void *buf, size_t n)
{
    if (atomic_fetch_add(&fault_calls, 1) % 3 == 0) {
        return -EINTR;
    }
    ssize_t r = read(fd, buf, n < 5 ? n : 5);
    return r < 0 ? -errno : r;
}

static int64_t
failing_write(int fd, const void *buf, size_t n)
{
    (void) fd;
    (void) buf;
    (void) n;
    return -ENOSPC;
}

static int64_t
zero_write(int fd, const void *buf, size_t n)
{
    (void) fd;
    (void) buf;
    (void) n;
    return 0;
}

static void *
fault_body(void *arg)
{
    fs_tmp *t = arg;
    const char *p = fs_path(t, "faults");
    unsigned char data[1000];
    fs_fill(9, 0, data, sizeof data);
    blz__fs_sys.write = short_eintr_write;
    blz__fs_sys.read = short_eintr_read;
    /* write_all loops over short writes and EINTR; read_file over short reads. */
    CHECK_OK(blz_fs_write_file(p, data, sizeof data));
    blz_file *f = NULL;
    blz_open_options rw = {.read = true, .write = true};
    CHECK_OK(blz_file_open(p, &rw, &f));
    CHECK_OK(blz_file_write_all(f, data, 100));
    CHECK_EQ(blz_file_write(f, data, 100), 7); /* a short write is reported as such */
    CHECK_EQ(blz_file_read(f, data, 100), 5);  /* so is a short read */
    void *back = NULL;
    size_t len = 0;
    CHECK_OK(blz_fs_read_file(p, &back, &len));
    CHECK_EQ(len, sizeof data);
    fs_fill(9, 0, data, sizeof data);
    CHECK(memcmp(back, data, 100) == 0);
    blz_fs_free_buf(back);

    blz__fs_sys.write = failing_write;
    CHECK_EQ(blz_file_write_all(f, data, 10), -ENOSPC);
    CHECK_EQ(blz_fs_write_file(p, data, 10), -ENOSPC);
    blz__fs_sys.write = zero_write;
    CHECK_EQ(blz_file_write_all(f, data, 10), -EIO);
    blz__fs_sys_reset();
    CHECK_OK(blz_file_close(f));
    return NULL;
}

BLZ_TEST(fault_injection)
{
    fs_tmp t;
    fs_tmp_make(&t);
    /* Inline, outside any runtime. */
    fault_body(&t);
    /* On the blocking pool: only where reads and writes do not go to the ring. */
    blz_runtime *rt = backend_runtime(2);
    bool ring = strcmp(blz_runtime_backend(rt), "io_uring") == 0;
    blz_runtime_free(rt);
    if (!ring) {
        fs_run(2, fault_body, &t);
    }
    fs_tmp_remove(&t);
}

static _Atomic int close_calls;

static int
counting_close(int fd)
{
    atomic_fetch_add(&close_calls, 1);
    return close(fd) < 0 ? -errno : 0;
}

static void *
counting_close_body(void *arg)
{
    fs_tmp *t = arg;
    struct blz__io_driver *d = blz__rt_io(blz__rt_current());
    bool ring = blz__io_driver_supports(d, BLZ__OP_CLOSE);
    uint64_t ring_before = blz__io_driver_ops(d, BLZ__OP_CLOSE);
    atomic_store(&close_calls, 0);
    blz__fs_sys.close = counting_close;
    blz_file *f = NULL;
    CHECK_OK(blz_file_create(fs_path(t, "x"), &f));
    CHECK_OK(blz_file_close(f));
    /* One close: the system call on the pool, or the ring's op (which does
     * not go through the syscall table). */
    CHECK_EQ(atomic_load(&close_calls), ring ? 0 : 1);
    CHECK_EQ(blz__io_driver_ops(d, BLZ__OP_CLOSE) - ring_before, ring ? 1 : 0);
    blz__fs_sys_reset();
    return NULL;
}

static void *
pool_close_body(void *arg)
{
    blz__io_driver_refuse(blz__rt_io(blz__rt_current()), BLZ__OP_CLOSE);
    return counting_close_body(arg);
}

BLZ_TEST(close_runs_once)
{
    fs_tmp t;
    fs_tmp_make(&t);
    fs_run(2, counting_close_body, &t);
    fs_run(2, pool_close_body, &t); /* the pool's close on io_uring too */
    fs_tmp_remove(&t);
}

/* ---- leaks: allocations balance across a runtime's life --------------------------- */

BLZ_TEST(no_leaks)
{
    fs_tmp t;
    fs_tmp_make(&t);
    blz_test_counting_allocator_install();
    fs_run(2, read_write_body, &t);
    fs_run(2, append_truncate_body, &t);
    CHECK_EQ(blz_test_alloc_live(), 0);
    fs_tmp_remove(&t);
}
