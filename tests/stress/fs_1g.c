/*
 * tests/stress/fs_1g.c — the 1 GiB round trip of the fs issue: written and
 * read back by checksum, at the position and at offsets, on the backend
 * ctest asked for (io_uring: the ring; epoll: the blocking pool). The size
 * is BLZ_FS_STRESS_MB (default 1024). Needs 1 GiB free under /tmp.
 */
/* blz-test: timeout=600 */
#include "../fs_common.h"

#include <sys/statvfs.h>

static uint64_t
stress_size(void)
{
    uint64_t size = fs_size_from_env("BLZ_FS_STRESS_MB", 1024ull << 20);
    struct statvfs vfs;
    if (statvfs("/tmp", &vfs) == 0 && (uint64_t) vfs.f_bavail * vfs.f_frsize < size + (size >> 3)) {
        SKIP("not enough free space under /tmp for the stress file");
    }
    return size;
}

BLZ_TEST(one_gib_sequential)
{
    uint64_t size = stress_size();
    fs_tmp t;
    fs_tmp_make(&t);
    fs_large_args a = {fs_path(&t, "1g"), size, BLZ_FS_MAX_CHUNK, false};
    fs_run(0, fs_large_roundtrip, &a);
    fs_tmp_remove(&t);
}

BLZ_TEST(one_gib_positional)
{
    uint64_t size = stress_size();
    fs_tmp t;
    fs_tmp_make(&t);
    fs_large_args a = {fs_path(&t, "1g"), size, 1u << 20, true};
    fs_run(0, fs_large_roundtrip, &a);
    fs_tmp_remove(&t);
}
