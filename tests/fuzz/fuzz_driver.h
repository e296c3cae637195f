/*
 * What the fuzz targets in this folder share when they run as plain
 * programs (not under libFuzzer): a deterministic random source, the byte
 * edits their mutators are made of, and the main that feeds the files named
 * on the command line and then `iters` mutations ($BLZ_FUZZ_ITERS) to the
 * target. Header-only, so a test can include a target whole.
 */
#ifndef BLZ_TEST_FUZZ_DRIVER_H
#define BLZ_TEST_FUZZ_DRIVER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* xorshift64: the same sequence on every run, so a failure replays. */
static inline uint64_t
fuzz_rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

enum { FUZZ_REPLACE, FUZZ_INSERT, FUZZ_DELETE, FUZZ_EDITS };

/* Applies one edit at `pos` (<= *n) of buf (*n bytes used of cap). */
static inline void
fuzz_edit(uint8_t *buf, size_t *n, size_t cap, size_t pos, uint8_t c, int edit)
{
    switch (edit) {
    case FUZZ_REPLACE:
        if (pos < *n) {
            buf[pos] = c;
        }
        break;
    case FUZZ_INSERT:
        if (*n < cap) {
            memmove(buf + pos + 1, buf + pos, *n - pos);
            buf[pos] = c;
            (*n)++;
        }
        break;
    default:
        if (pos < *n) {
            memmove(buf + pos, buf + pos + 1, *n - pos - 1);
            (*n)--;
        }
        break;
    }
}

/* The plain program: every file on the command line (its first 64 KiB),
 * then `mutate` with $BLZ_FUZZ_ITERS (default `iters`). */
static inline int
fuzz_main(int argc, char **argv, const char *name, long iters, void (*mutate)(long))
{
    static uint8_t buf[65536];
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            continue;
        }
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, n);
    }
    const char *env = getenv("BLZ_FUZZ_ITERS");
    if (env) {
        iters = atol(env);
    }
    mutate(iters);
    printf("%s: %ld inputs, no failure\n", name, iters);
    return 0;
}

#endif
