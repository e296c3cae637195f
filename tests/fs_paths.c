/*
 * tests/fs_paths.c — whole-file helpers, metadata by path, directories
 * (create, recursive create, remove, recursive remove, listing), remove,
 * rename, copy, hard and symbolic links, canonicalize, permissions, and the
 * error of each (ENOENT, EEXIST, ENOTDIR, EISDIR, ENOTEMPTY, EINVAL).
 *
 * Every body runs in a fiber on the backend ctest asked for, and once more
 * on a plain thread outside any runtime (the inline path).
 */
#include "fs_common.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

/* BOTH(name) { body using `t` }: a test that runs the body in a fiber on a
 * runtime, then inline on this thread, each in a fresh scratch directory. */
#define BOTH(name)                    \
 static void name##_body(fs_tmp *t);  \
 static void *name##_fiber(void *arg) \
 {                                    \
  name##_body(arg);                   \
  return NULL;                        \
 }                                    \
 BLZ_TEST(name)                       \
 {                                    \
  fs_tmp t;                           \
  fs_tmp_make(&t);                    \
  fs_run(2, name##_fiber, &t);        \
  fs_tmp_remove(&t);                  \
  fs_tmp_make(&t);                    \
  name##_body(&t);                    \
  fs_tmp_remove(&t);                  \
 }                                    \
 static void name##_body(fs_tmp *t)

/* ---- whole files ---------------------------------------------------------------- */

BOTH(read_write_file)
{
    const char *p = fs_path(t, "whole");
    void *buf = NULL;
    size_t len = 99;

    /* Empty file: a valid, NUL-terminated, zero-length buffer. */
    CHECK_OK(blz_fs_write_file(p, "", 0));
    CHECK_OK(blz_fs_read_file(p, &buf, &len));
    CHECK_EQ(len, 0);
    CHECK(buf != NULL);
    CHECK_EQ(((char *) buf)[0], '\0');
    blz_fs_free_buf(buf);

    /* Text: NUL after the data. */
    CHECK_OK(blz_fs_write_file(p, "line one\nline two\n", 18));
    CHECK_OK(blz_fs_read_file(p, &buf, &len));
    CHECK_EQ(len, 18);
    CHECK_STR_EQ((char *) buf, "line one\nline two\n");
    blz_fs_free_buf(buf);

    /* Overwrite with something shorter: truncated, not merged. */
    CHECK_OK(blz_fs_write_file(p, "abc", 3));
    CHECK_OK(blz_fs_read_file(p, &buf, NULL)); /* len may be NULL */
    CHECK_STR_EQ((char *) buf, "abc");
    blz_fs_free_buf(buf);

    /* Larger than one chunk, not a multiple of it. */
    size_t n = BLZ_FS_MAX_CHUNK * 2 + 12345;
    unsigned char *data = malloc(n);
    CHECK(data != NULL);
    fs_fill(11, 0, data, n);
    CHECK_OK(blz_fs_write_file(p, data, n));
    CHECK_OK(blz_fs_read_file(p, &buf, &len));
    CHECK_EQ(len, n);
    CHECK(memcmp(buf, data, n) == 0);
    blz_fs_free_buf(buf);
    free(data);

    /* A file whose size stat does not know (procfs says 0). */
    CHECK_OK(blz_fs_read_file("/proc/self/status", &buf, &len));
    CHECK_GT(len, 0);
    CHECK(strstr(buf, "Name:") != NULL);
    blz_fs_free_buf(buf);
    blz_fs_free_buf(NULL); /* harmless */

    /* Errors. */
    CHECK_EQ(blz_fs_read_file(fs_path(t, "missing"), &buf, &len), -ENOENT);
    CHECK_EQ(blz_fs_read_file(t->dir, &buf, &len), -EISDIR);
    CHECK_EQ(blz_fs_read_file(fs_path(t, "whole/x"), &buf, &len), -ENOTDIR);
    CHECK_EQ(blz_fs_read_file(NULL, &buf, &len), -EINVAL);
    CHECK_EQ(blz_fs_read_file(p, NULL, &len), -EINVAL);
    CHECK_EQ(blz_fs_write_file(fs_path(t, "whole/x"), "x", 1), -ENOTDIR);
    CHECK_EQ(blz_fs_write_file(fs_path(t, "no/such/dir"), "x", 1), -ENOENT);
    CHECK_EQ(blz_fs_write_file(t->dir, "x", 1), -EISDIR);
    CHECK_EQ(blz_fs_write_file(p, NULL, 1), -EINVAL);
}

/* ---- metadata --------------------------------------------------------------------- */

BOTH(metadata_by_path)
{
    const char *f = fs_path(t, "f");
    const char *l = fs_path(t, "l");
    CHECK_OK(blz_fs_write_file(f, "12345", 5));
    CHECK_OK(blz_fs_symlink(f, l));
    blz_metadata md, lmd;
    CHECK_OK(blz_fs_metadata(f, &md));
    CHECK_EQ(md.kind, BLZ_FILE_REGULAR);
    CHECK_EQ(md.size, 5);
    CHECK_EQ(md.uid, geteuid());
    CHECK_GT(md.ino, 0);
    CHECK_GE(md.ctime_ns, md.mtime_ns - 1000000000LL);
    /* What stat(2) says, field for field, whichever call filled it. */
    struct stat st;
    CHECK_OK(stat(f, &st));
    CHECK_EQ(md.dev, (uint64_t) st.st_dev);
    CHECK_EQ(md.ino, (uint64_t) st.st_ino);
    CHECK_EQ(md.nlink, (uint64_t) st.st_nlink);
    CHECK_EQ(md.blocks, (uint64_t) st.st_blocks);
    CHECK_EQ(md.gid, st.st_gid);
    CHECK_EQ(md.mode, st.st_mode & 07777u);
    CHECK_EQ(md.mtime_ns, (int64_t) st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec);
    blz_file *fh = NULL;
    CHECK_OK(blz_file_open(f, NULL, &fh));
    blz_metadata fmd;
    CHECK_OK(blz_file_metadata(fh, &fmd));
    CHECK_OK(blz_file_close(fh));
    CHECK_EQ(fmd.dev, (uint64_t) st.st_dev);
    CHECK_EQ(fmd.ino, (uint64_t) st.st_ino);

    /* metadata follows the link, symlink_metadata does not. */
    CHECK_OK(blz_fs_metadata(l, &lmd));
    CHECK_EQ(lmd.ino, md.ino);
    CHECK_EQ(lmd.kind, BLZ_FILE_REGULAR);
    CHECK_OK(blz_fs_symlink_metadata(l, &lmd));
    CHECK_EQ(lmd.kind, BLZ_FILE_SYMLINK);
    CHECK_NE(lmd.ino, md.ino);
    CHECK_EQ(lmd.size, strlen(f));

    CHECK_OK(blz_fs_metadata(t->dir, &md));
    CHECK_EQ(md.kind, BLZ_FILE_DIR);
    CHECK_OK(blz_fs_metadata("/dev/null", &md));
    CHECK_EQ(md.kind, BLZ_FILE_CHAR_DEV);

    /* Errors: missing, through a file, a dangling link (only lstat works). */
    CHECK_EQ(blz_fs_metadata(fs_path(t, "missing"), &md), -ENOENT);
    CHECK_EQ(blz_fs_metadata(fs_path(t, "f/x"), &md), -ENOTDIR);
    CHECK_OK(blz_fs_symlink(fs_path(t, "missing"), fs_path(t, "dangling")));
    CHECK_EQ(blz_fs_metadata(fs_path(t, "dangling"), &md), -ENOENT);
    CHECK_OK(blz_fs_symlink_metadata(fs_path(t, "dangling"), &md));
    CHECK_EQ(md.kind, BLZ_FILE_SYMLINK);
    CHECK_EQ(blz_fs_metadata(f, NULL), -EINVAL);
    CHECK_EQ(blz_fs_metadata(NULL, &md), -EINVAL);

    /* Permissions. */
    CHECK_OK(blz_fs_set_permissions(f, 0604));
    CHECK_OK(blz_fs_metadata(f, &md));
    CHECK_EQ(md.mode, 0604);
    CHECK_EQ(blz_fs_set_permissions(fs_path(t, "missing"), 0600), -ENOENT);
}

/* Times past what int64 nanoseconds hold (after 2262-04-11; a touch -d
 * away) saturate instead of overflowing (a time in 2400 read as 1815). */
BOTH(metadata_far_times)
{
    const char *f = fs_path(t, "far");
    CHECK_OK(blz_fs_write_file(f, "x", 1));
    struct timespec ts[2] = {{13569465600LL, 5}, {13569465600LL, 7}}; /* 2400-01-01 */
    CHECK_OK(utimensat(AT_FDCWD, f, ts, 0));
    struct stat st;
    CHECK_OK(stat(f, &st));
    if (st.st_mtim.tv_sec <= INT64_MAX / 1000000000LL) {
        SKIP("this file system cannot store a time after 2262");
    }
    blz_metadata md;
    CHECK_OK(blz_fs_metadata(f, &md));
    CHECK_EQ(md.mtime_ns, INT64_MAX);
    CHECK_EQ(md.atime_ns, INT64_MAX);
    blz_file *fh = NULL;
    CHECK_OK(blz_file_open(f, NULL, &fh));
    CHECK_OK(blz_file_metadata(fh, &md));
    CHECK_OK(blz_file_close(fh));
    CHECK_EQ(md.mtime_ns, INT64_MAX);
}

/* ---- directories ---------------------------------------------------------------------- */

BOTH(create_and_remove_dirs)
{
    blz_metadata md;
    CHECK_OK(blz_fs_create_dir(fs_path(t, "d"), 0));
    CHECK_OK(blz_fs_metadata(fs_path(t, "d"), &md));
    CHECK_EQ(md.kind, BLZ_FILE_DIR);
    CHECK_EQ(blz_fs_create_dir(fs_path(t, "d"), 0), -EEXIST);
    CHECK_EQ(blz_fs_create_dir(fs_path(t, "x/y"), 0), -ENOENT);
    CHECK_OK(blz_fs_write_file(fs_path(t, "file"), "x", 1));
    CHECK_EQ(blz_fs_create_dir(fs_path(t, "file"), 0), -EEXIST);
    CHECK_EQ(blz_fs_create_dir(fs_path(t, "file/sub"), 0), -ENOTDIR);
    CHECK_OK(blz_fs_create_dir(fs_path(t, "m"), 0700));
    CHECK_OK(blz_fs_metadata(fs_path(t, "m"), &md));
    CHECK_EQ(md.mode, 0700);

    /* Recursive create: nested, trailing and doubled slashes, already there. */
    CHECK_OK(blz_fs_create_dir_all(fs_path(t, "a/b/c/d"), 0));
    CHECK_OK(blz_fs_metadata(fs_path(t, "a/b/c/d"), &md));
    CHECK_EQ(md.kind, BLZ_FILE_DIR);
    CHECK_OK(blz_fs_create_dir_all(fs_path(t, "a/b/c/d"), 0));
    CHECK_OK(blz_fs_create_dir_all(fs_path(t, "a//b2///c2/"), 0));
    CHECK(fs_exists(fs_path(t, "a/b2/c2")));
    CHECK_OK(blz_fs_create_dir_all(t->dir, 0));
    CHECK_EQ(blz_fs_create_dir_all(fs_path(t, "file"), 0), -EEXIST);
    CHECK_EQ(blz_fs_create_dir_all(fs_path(t, "file/a/b"), 0), -ENOTDIR);
    CHECK_EQ(blz_fs_create_dir_all("", 0), -ENOENT);
    /* Through a symlink to a directory: fine. */
    CHECK_OK(blz_fs_symlink(fs_path(t, "a"), fs_path(t, "to_a")));
    CHECK_OK(blz_fs_create_dir_all(fs_path(t, "to_a/b/new"), 0));
    CHECK(fs_exists(fs_path(t, "a/b/new")));

    /* Remove: empty only, directories only. */
    CHECK_EQ(blz_fs_remove_dir(fs_path(t, "a")), -ENOTEMPTY);
    CHECK_EQ(blz_fs_remove_dir(fs_path(t, "file")), -ENOTDIR);
    CHECK_EQ(blz_fs_remove_dir(fs_path(t, "missing")), -ENOENT);
    CHECK_OK(blz_fs_remove_dir(fs_path(t, "d")));
    CHECK(!fs_exists(fs_path(t, "d")));

    /* Recursive remove: files, nested dirs, links (targets survive). */
    CHECK_OK(blz_fs_write_file(fs_path(t, "a/f1"), "1", 1));
    CHECK_OK(blz_fs_write_file(fs_path(t, "a/b/c/f2"), "2", 1));
    CHECK_OK(blz_fs_write_file(fs_path(t, "outside"), "keep", 4));
    CHECK_OK(blz_fs_create_dir(fs_path(t, "outdir"), 0));
    CHECK_OK(blz_fs_write_file(fs_path(t, "outdir/kept"), "k", 1));
    CHECK_OK(blz_fs_symlink(fs_path(t, "outside"), fs_path(t, "a/b/link_file")));
    CHECK_OK(blz_fs_symlink(fs_path(t, "outdir"), fs_path(t, "a/b/link_dir")));
    CHECK_OK(blz_fs_symlink(fs_path(t, "nowhere"), fs_path(t, "a/dangling")));
    CHECK_OK(blz_fs_remove_dir_all(fs_path(t, "a")));
    CHECK(!fs_exists(fs_path(t, "a")));
    CHECK(fs_exists(fs_path(t, "outside")));
    CHECK(fs_exists(fs_path(t, "outdir/kept")));
    CHECK(fs_exists(fs_path(t, "to_a"))); /* the link that pointed in survives */

    /* On a symlink: removes the link, not the directory it names. */
    CHECK_OK(blz_fs_symlink(fs_path(t, "outdir"), fs_path(t, "dirlink")));
    CHECK_OK(blz_fs_remove_dir_all(fs_path(t, "dirlink")));
    CHECK(!fs_exists(fs_path(t, "dirlink")));
    CHECK(fs_exists(fs_path(t, "outdir/kept")));

    CHECK_EQ(blz_fs_remove_dir_all(fs_path(t, "file")), -ENOTDIR);
    CHECK_EQ(blz_fs_remove_dir_all(fs_path(t, "missing")), -ENOENT);
    CHECK_EQ(blz_fs_remove_dir_all(fs_path(t, "file/x")), -ENOTDIR);
    CHECK_EQ(blz_fs_remove_dir_all(NULL), -EINVAL);

    /* A wide and deep tree. */
    char rel[200];
    strcpy(rel, "deep");
    for (int i = 0; i < 20; i++) {
        CHECK_OK(blz_fs_create_dir_all(fs_path(t, rel), 0));
        for (int j = 0; j < 10; j++) {
            char name[256];
            snprintf(name, sizeof name, "%s/f%d", rel, j);
            CHECK_OK(blz_fs_write_file(fs_path(t, name), name, strlen(name)));
        }
        strcat(rel, "/d");
    }
    CHECK_OK(blz_fs_remove_dir_all(fs_path(t, "deep")));
    CHECK(!fs_exists(fs_path(t, "deep")));
}

static int
name_index(const char *name)
{
    if (strncmp(name, "entry_", 6) != 0) {
        return -1;
    }
    return atoi(name + 6);
}

BOTH(list_dir)
{
    enum { N = 700 }; /* long names: several getdents64 batches */
    const char *d = fs_path(t, "list");
    CHECK_OK(blz_fs_create_dir(d, 0));
    for (int i = 0; i < N; i++) {
        char name[256];
        snprintf(name, sizeof name, "list/entry_%04d_%s", i,
                 "padding-padding-padding-padding-padding-padding-padding");
        CHECK_OK(blz_fs_write_file(fs_path(t, name), "", 0));
    }
    CHECK_OK(blz_fs_create_dir(fs_path(t, "list/sub"), 0));
    CHECK_OK(blz_fs_symlink("entry_0000", fs_path(t, "list/link")));

    blz_dir *dir = NULL;
    CHECK_OK(blz_dir_open(d, &dir));
    blz_dir_entry e;
    CHECK_EQ(blz_dir_try_next(dir, &e), -EAGAIN); /* nothing read yet */
    static unsigned char seen[N];
    memset(seen, 0, sizeof seen);
    int files = 0, dirs = 0, links = 0, from_try = 0;
    for (;;) {
        int r = blz_dir_try_next(dir, &e);
        if (r == -EAGAIN) {
            r = blz_dir_next(dir, &e);
        } else {
            from_try++;
        }
        CHECK_OK(r);
        if (r == 0) {
            break;
        }
        CHECK(strcmp(e.name, ".") != 0 && strcmp(e.name, "..") != 0);
        int i = name_index(e.name);
        if (i >= 0) {
            CHECK_LT(i, N);
            CHECK_EQ(seen[i], 0);
            seen[i] = 1;
            CHECK(e.kind == BLZ_FILE_REGULAR || e.kind == BLZ_FILE_UNKNOWN);
            files++;
        } else if (strcmp(e.name, "sub") == 0) {
            CHECK(e.kind == BLZ_FILE_DIR || e.kind == BLZ_FILE_UNKNOWN);
            dirs++;
        } else {
            CHECK_STR_EQ(e.name, "link");
            CHECK(e.kind == BLZ_FILE_SYMLINK || e.kind == BLZ_FILE_UNKNOWN);
            links++;
        }
        CHECK_GT(e.ino, 0);
    }
    CHECK_EQ(files, N);
    CHECK_EQ(dirs, 1);
    CHECK_EQ(links, 1);
    CHECK_GT(from_try, 0); /* batches: most entries came without a wait */
    /* The end stays the end. */
    CHECK_EQ(blz_dir_next(dir, &e), 0);
    CHECK_EQ(blz_dir_try_next(dir, &e), 0);
    CHECK_OK(blz_dir_close(dir));

    /* An empty directory lists nothing. */
    CHECK_OK(blz_dir_open(fs_path(t, "list/sub"), &dir));
    CHECK_EQ(blz_dir_next(dir, &e), 0);
    CHECK_OK(blz_dir_close(dir));

    /* Errors. */
    CHECK_EQ(blz_dir_open(fs_path(t, "missing"), &dir), -ENOENT);
    CHECK_EQ(blz_dir_open(fs_path(t, "list/entry_0000_x"), &dir), -ENOENT);
    char fname[256];
    snprintf(fname, sizeof fname, "list/entry_0001_%s",
             "padding-padding-padding-padding-padding-padding-padding");
    CHECK_EQ(blz_dir_open(fs_path(t, fname), &dir), -ENOTDIR);
    CHECK_EQ(blz_dir_open(NULL, &dir), -EINVAL);
    CHECK_EQ(blz_dir_open(d, NULL), -EINVAL);
    CHECK_EQ(blz_dir_next(NULL, &e), -EINVAL);
    CHECK_EQ(blz_dir_try_next(NULL, &e), -EINVAL);
    CHECK_EQ(blz_dir_close(NULL), -EINVAL);
}

/* ---- remove, rename ---------------------------------------------------------------------- */

/* A symlink to a directory named with a trailing slash ("link/") is still a
 * symlink to remove_dir_all: the link goes, the directory it points to (outside
 * the tree) is not entered, let alone emptied. */
BOTH(remove_dir_all_link_trailing_slash)
{
    CHECK_OK(blz_fs_create_dir(fs_path(t, "outdir"), 0));
    CHECK_OK(blz_fs_write_file(fs_path(t, "outdir/kept"), "k", 1));
    CHECK_OK(blz_fs_symlink(fs_path(t, "outdir"), fs_path(t, "dirlink")));
    CHECK_OK(blz_fs_remove_dir_all(fs_path(t, "dirlink/")));
    CHECK(fs_exists(fs_path(t, "outdir/kept")));
    CHECK(!fs_exists(fs_path(t, "dirlink")));
    CHECK_OK(blz_fs_symlink(fs_path(t, "outdir"), fs_path(t, "dirlink")));
    CHECK_OK(blz_fs_remove_dir_all(fs_path(t, "dirlink//")));
    CHECK(fs_exists(fs_path(t, "outdir/kept")));
    CHECK(!fs_exists(fs_path(t, "dirlink")));
    /* A real directory with a trailing slash is removed as before. */
    CHECK_OK(blz_fs_create_dir(fs_path(t, "outdir/sub"), 0));
    CHECK_OK(blz_fs_write_file(fs_path(t, "outdir/sub/f"), "f", 1));
    CHECK_OK(blz_fs_remove_dir_all(fs_path(t, "outdir/")));
    CHECK(!fs_exists(fs_path(t, "outdir")));
}

BOTH(remove_and_rename)
{
    const char *a = fs_path(t, "a");
    const char *b = fs_path(t, "b");
    CHECK_OK(blz_fs_write_file(a, "AAA", 3));
    CHECK_OK(blz_fs_rename(a, b));
    CHECK(!fs_exists(a));
    void *buf = NULL;
    CHECK_OK(blz_fs_read_file(b, &buf, NULL));
    CHECK_STR_EQ((char *) buf, "AAA");
    blz_fs_free_buf(buf);

    /* Replaces an existing file. */
    CHECK_OK(blz_fs_write_file(a, "new", 3));
    CHECK_OK(blz_fs_rename(a, b));
    CHECK_OK(blz_fs_read_file(b, &buf, NULL));
    CHECK_STR_EQ((char *) buf, "new");
    blz_fs_free_buf(buf);

    /* Directories: onto an empty one works, a non-empty one does not. */
    CHECK_OK(blz_fs_create_dir(fs_path(t, "d1"), 0));
    CHECK_OK(blz_fs_create_dir(fs_path(t, "d2"), 0));
    CHECK_OK(blz_fs_rename(fs_path(t, "d1"), fs_path(t, "d2")));
    CHECK_OK(blz_fs_create_dir(fs_path(t, "d3"), 0));
    CHECK_OK(blz_fs_write_file(fs_path(t, "d2/x"), "x", 1));
    CHECK_EQ(blz_fs_rename(fs_path(t, "d3"), fs_path(t, "d2")), -ENOTEMPTY);
    CHECK_EQ(blz_fs_rename(fs_path(t, "d3"), b), -ENOTDIR);
    CHECK_EQ(blz_fs_rename(b, fs_path(t, "d3")), -EISDIR);
    CHECK_EQ(blz_fs_rename(fs_path(t, "missing"), a), -ENOENT);
    CHECK_EQ(blz_fs_rename(b, fs_path(t, "missing/x")), -ENOENT);
    CHECK_EQ(blz_fs_rename(NULL, a), -EINVAL);
    CHECK_EQ(blz_fs_rename(a, NULL), -EINVAL);

    /* remove_file. */
    CHECK_OK(blz_fs_remove_file(b));
    CHECK(!fs_exists(b));
    CHECK_EQ(blz_fs_remove_file(b), -ENOENT);
    CHECK_EQ(blz_fs_remove_file(fs_path(t, "d2")), -EISDIR);
    CHECK_EQ(blz_fs_remove_file(fs_path(t, "d2/x/y")), -ENOTDIR);
    CHECK_OK(blz_fs_symlink(fs_path(t, "d2"), fs_path(t, "ln")));
    CHECK_OK(blz_fs_remove_file(fs_path(t, "ln"))); /* the link, not the dir */
    CHECK(fs_exists(fs_path(t, "d2/x")));
}

/* ---- copy ---------------------------------------------------------------------------------- */

BOTH(copy_files)
{
    const char *src = fs_path(t, "src");
    const char *dst = fs_path(t, "dst");
    size_t n = 3u * 1024 * 1024 + 17;
    unsigned char *data = malloc(n);
    CHECK(data != NULL);
    fs_fill(13, 0, data, n);
    CHECK_OK(blz_fs_write_file(src, data, n));
    CHECK_OK(blz_fs_set_permissions(src, 0751));
    uint64_t copied = 0;
    CHECK_OK(blz_fs_copy(src, dst, &copied));
    CHECK_EQ(copied, n);
    void *buf = NULL;
    size_t len = 0;
    CHECK_OK(blz_fs_read_file(dst, &buf, &len));
    CHECK_EQ(len, n);
    CHECK(memcmp(buf, data, n) == 0);
    blz_fs_free_buf(buf);
    blz_metadata md;
    CHECK_OK(blz_fs_metadata(dst, &md));
    CHECK_EQ(md.mode, 0751);

    /* Onto an existing, longer file: truncated, permissions replaced. */
    CHECK_OK(blz_fs_write_file(src, "short", 5));
    CHECK_OK(blz_fs_set_permissions(src, 0640));
    CHECK_OK(blz_fs_copy(src, dst, NULL));
    CHECK_OK(blz_fs_read_file(dst, &buf, &len));
    CHECK_EQ(len, 5);
    CHECK_STR_EQ((char *) buf, "short");
    blz_fs_free_buf(buf);
    CHECK_OK(blz_fs_metadata(dst, &md));
    CHECK_EQ(md.mode, 0640);

    /* Empty file. */
    CHECK_OK(blz_fs_write_file(src, "", 0));
    CHECK_OK(blz_fs_copy(src, dst, &copied));
    CHECK_EQ(copied, 0);

    /* Errors. */
    CHECK_EQ(blz_fs_copy(fs_path(t, "missing"), dst, NULL), -ENOENT);
    CHECK_EQ(blz_fs_copy(t->dir, dst, NULL), -EISDIR);
    CHECK_EQ(blz_fs_copy("/dev/null", dst, NULL), -EINVAL);
    CHECK_EQ(blz_fs_copy(src, fs_path(t, "missing/x"), NULL), -ENOENT);
    CHECK_EQ(blz_fs_copy(src, fs_path(t, "src/x"), NULL), -ENOTDIR);
    CHECK_EQ(blz_fs_copy(src, t->dir, NULL), -EISDIR);
    CHECK_EQ(blz_fs_copy(NULL, dst, NULL), -EINVAL);
    free(data);
}

/* A FIFO is not a regular file: copy refuses it (-EINVAL) at once. Opened
 * for reading as a plain file, it would wait for a writer for good (on a
 * pool thread, or the caller's); after 10 s this test plays that writer,
 * only to end such a wait and fail rather than hang. */
typedef struct fifo_copy {
    const char *from;
    const char *to;
    bool in_runtime;
    int rc;
    atomic_bool done;
} fifo_copy;

static void *
fifo_copy_fiber(void *arg)
{
    fifo_copy *c = arg;
    c->rc = blz_fs_copy(c->from, c->to, NULL);
    return NULL;
}

static void *
fifo_copy_thread(void *arg)
{
    fifo_copy *c = arg;
    if (c->in_runtime) {
        fs_run(2, fifo_copy_fiber, c);
    } else {
        fifo_copy_fiber(c);
    }
    atomic_store(&c->done, true);
    return NULL;
}

BLZ_TEST(copy_refuses_a_fifo)
{
    fs_tmp t;
    fs_tmp_make(&t);
    const char *fifo = fs_path(&t, "fifo");
    const char *dst = fs_path(&t, "dst");
    CHECK_OK(mkfifo(fifo, 0600));
    for (int in_rt = 0; in_rt < 2; in_rt++) {
        fifo_copy c = {fifo, dst, in_rt == 1, 1, false};
        pthread_t th;
        CHECK_OK(pthread_create(&th, NULL, fifo_copy_thread, &c));
        for (int i = 0; i < 10000 && !atomic_load(&c.done); i++) {
            nanosleep(&(struct timespec){0, 1000000}, NULL);
        }
        bool waited_for_a_writer = !atomic_load(&c.done);
        while (!atomic_load(&c.done)) {
            /* Succeeds only once a reader waits in its open: that lets it go. */
            int w = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
            if (w >= 0) {
                CHECK_OK(close(w));
            } else {
                nanosleep(&(struct timespec){0, 1000000}, NULL);
            }
        }
        CHECK_OK(pthread_join(th, NULL));
        CHECK(!waited_for_a_writer);
        CHECK_EQ(c.rc, -EINVAL);
        CHECK(!fs_exists(dst)); /* refused before `to` was created */
    }
    fs_tmp_remove(&t);
}

/* Copying a file onto itself (by the same path, a hard link or a symlink)
 * must fail and leave the data alone: opening `to` with O_TRUNC first would
 * empty `from` and "copy" nothing. */
BOTH(copy_onto_itself)
{
    const char *p = fs_path(t, "self");
    CHECK_OK(blz_fs_write_file(p, "hello", 5));
    CHECK_OK(blz_fs_hard_link(p, fs_path(t, "hard")));
    CHECK_OK(blz_fs_symlink(p, fs_path(t, "soft")));
    uint64_t copied = 99;
    CHECK_EQ(blz_fs_copy(p, p, &copied), -EINVAL);
    CHECK_EQ(copied, 99);
    CHECK_EQ(blz_fs_copy(p, fs_path(t, "hard"), NULL), -EINVAL);
    CHECK_EQ(blz_fs_copy(fs_path(t, "soft"), p, NULL), -EINVAL);
    void *buf = NULL;
    size_t len = 0;
    CHECK_OK(blz_fs_read_file(p, &buf, &len));
    CHECK_EQ(len, 5);
    CHECK_STR_EQ((char *) buf, "hello");
    blz_fs_free_buf(buf);
    /* A copy onto another file still works. */
    CHECK_OK(blz_fs_copy(p, fs_path(t, "other"), &copied));
    CHECK_EQ(copied, 5);
}

/* ---- links and canonical paths --------------------------------------------------------------- */

BOTH(links)
{
    const char *f = fs_path(t, "f");
    CHECK_OK(blz_fs_write_file(f, "data", 4));

    /* Hard link: same inode, two links; survives removal of the first name. */
    CHECK_OK(blz_fs_hard_link(f, fs_path(t, "h")));
    blz_metadata a, b;
    CHECK_OK(blz_fs_metadata(f, &a));
    CHECK_OK(blz_fs_metadata(fs_path(t, "h"), &b));
    CHECK_EQ(a.ino, b.ino);
    CHECK_EQ(b.nlink, 2);
    CHECK_EQ(blz_fs_hard_link(f, fs_path(t, "h")), -EEXIST);
    CHECK_EQ(blz_fs_hard_link(fs_path(t, "missing"), fs_path(t, "h2")), -ENOENT);
    CHECK_EQ(blz_fs_hard_link(t->dir, fs_path(t, "h3")), -EPERM);
    CHECK_EQ(blz_fs_hard_link(f, fs_path(t, "f/x")), -ENOTDIR);
    CHECK_OK(blz_fs_remove_file(f));
    void *buf = NULL;
    CHECK_OK(blz_fs_read_file(fs_path(t, "h"), &buf, NULL));
    CHECK_STR_EQ((char *) buf, "data");
    blz_fs_free_buf(buf);

    /* Symlink: relative target, read back verbatim; dangling allowed. */
    CHECK_OK(blz_fs_symlink("h", fs_path(t, "s")));
    char *target = NULL;
    CHECK_OK(blz_fs_read_link(fs_path(t, "s"), &target));
    CHECK_STR_EQ(target, "h");
    blz_fs_free_buf(target);
    CHECK_OK(blz_fs_read_file(fs_path(t, "s"), &buf, NULL));
    CHECK_STR_EQ((char *) buf, "data");
    blz_fs_free_buf(buf);
    CHECK_EQ(blz_fs_symlink("h", fs_path(t, "s")), -EEXIST);
    CHECK_EQ(blz_fs_symlink("h", fs_path(t, "missing/s")), -ENOENT);
    CHECK_OK(blz_fs_symlink("no/such/target", fs_path(t, "dangling")));

    /* A long target (more than the first guess of the buffer). */
    char longt[1500];
    memset(longt, 'x', sizeof longt - 1);
    longt[sizeof longt - 1] = '\0';
    for (size_t i = 100; i < sizeof longt - 1; i += 100) {
        longt[i] = '/';
    }
    CHECK_OK(blz_fs_symlink(longt, fs_path(t, "long")));
    CHECK_OK(blz_fs_read_link(fs_path(t, "long"), &target));
    CHECK_STR_EQ(target, longt);
    blz_fs_free_buf(target);

    CHECK_EQ(blz_fs_read_link(fs_path(t, "h"), &target), -EINVAL); /* not a link */
    CHECK_EQ(blz_fs_read_link(fs_path(t, "missing"), &target), -ENOENT);
    CHECK_EQ(blz_fs_read_link(fs_path(t, "s"), NULL), -EINVAL);
}

BOTH(canonicalize)
{
    char *real_dir = realpath(t->dir, NULL); /* /tmp may itself be a link */
    CHECK(real_dir != NULL);
    CHECK_OK(blz_fs_create_dir_all(fs_path(t, "a/b"), 0));
    CHECK_OK(blz_fs_write_file(fs_path(t, "a/b/f"), "", 0));
    CHECK_OK(blz_fs_symlink("a/b", fs_path(t, "lnk")));
    char want[PATH_MAX];
    snprintf(want, sizeof want, "%s/a/b/f", real_dir);

    char *out = NULL;
    CHECK_OK(blz_fs_canonicalize(fs_path(t, "a/./b/../b/f"), &out));
    CHECK_STR_EQ(out, want);
    blz_fs_free_buf(out);
    CHECK_OK(blz_fs_canonicalize(fs_path(t, "lnk/f"), &out));
    CHECK_STR_EQ(out, want);
    blz_fs_free_buf(out);
    CHECK_OK(blz_fs_canonicalize(fs_path(t, "a//b/"), &out));
    snprintf(want, sizeof want, "%s/a/b", real_dir);
    CHECK_STR_EQ(out, want);
    blz_fs_free_buf(out);
    CHECK_OK(blz_fs_canonicalize("/", &out));
    CHECK_STR_EQ(out, "/");
    blz_fs_free_buf(out);

    CHECK_EQ(blz_fs_canonicalize(fs_path(t, "a/missing"), &out), -ENOENT);
    CHECK_EQ(blz_fs_canonicalize(fs_path(t, "a/b/f/x"), &out), -ENOTDIR);
    CHECK_OK(blz_fs_symlink("loop2", fs_path(t, "loop1")));
    CHECK_OK(blz_fs_symlink("loop1", fs_path(t, "loop2")));
    CHECK_EQ(blz_fs_canonicalize(fs_path(t, "loop1"), &out), -ELOOP);
    CHECK_EQ(blz_fs_canonicalize(NULL, &out), -EINVAL);
    CHECK_EQ(blz_fs_canonicalize(t->dir, NULL), -EINVAL);
    free(real_dir);
}

/* Every path operation through its future tier, from many stackless polls
 * at once (the future tier never needs a fiber). */
typedef struct mk_fut {
    blz_future base;
    blz_fs_future op;
    char path[256];
} mk_fut;

static blz_poll
mk_poll(blz_future *self, blz_context *cx)
{
    mk_fut *m = (mk_fut *) self;
    BLZ_ASYNC_BEGIN(self);
    blz_fs_create_dir_all_fut(m->path, 0, &m->op);
    BLZ_AWAIT(self, cx, &m->op.base);
    if (m->op.base.result < 0) {
        BLZ_ASYNC_RETURN(self, m->op.base.result);
    }
    blz_fs_remove_dir_all_fut(m->path, &m->op);
    BLZ_AWAIT(self, cx, &m->op.base);
    BLZ_ASYNC_RETURN(self, m->op.base.result);
    BLZ_ASYNC_END(self);
}

static void
mk_drop(blz_future *self)
{
    blz_future_drop(&((mk_fut *) self)->op.base);
}

static const blz_future_vtable mk_vt = {mk_poll, mk_drop};

static void *
stackless_many_body(void *arg)
{
    fs_tmp *t = arg;
    enum { N = 64 };
    blz_join *js[N];
    for (int i = 0; i < N; i++) {
        mk_fut m;
        memset(&m, 0, sizeof m);
        blz_future_init(&m.base, &mk_vt);
        snprintf(m.path, sizeof m.path, "%s/s%d/x/y", t->dir, i);
        CHECK_OK(blz_spawn_future(&m.base, sizeof m, &js[i]));
    }
    for (int i = 0; i < N; i++) {
        void *r = NULL;
        CHECK_OK(blz_join_wait(js[i], &r));
        CHECK_EQ((int) (intptr_t) r, 0);
        char p[256];
        snprintf(p, sizeof p, "%s/s%d/x", t->dir, i);
        CHECK(fs_exists(p));
        snprintf(p, sizeof p, "%s/s%d/x/y", t->dir, i);
        CHECK(!fs_exists(p));
    }
    return NULL;
}

BLZ_TEST(stackless_many)
{
    fs_tmp t;
    fs_tmp_make(&t);
    fs_run(2, stackless_many_body, &t);
    fs_tmp_remove(&t);
}
