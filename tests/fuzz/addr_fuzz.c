/*
 * Fuzz target for the address parser and formatter.
 *
 * As a libFuzzer target (clang -fsanitize=fuzzer,address -DBLZ_LIBFUZZER ...)
 * it checks every input; as a plain program (the default build) it runs the
 * same check over built-in seeds, the files named on the command line, and a
 * few hundred thousand deterministic mutations of the seeds
 * ($BLZ_FUZZ_ITERS). tests/net_addr.c includes this file with
 * BLZ_ADDR_FUZZ_NO_MAIN to run the mutations under ctest on every build.
 *
 * Properties: parsing never crashes or reads past its input; a parse that
 * succeeds formats without error, and the formatted text parses back to an
 * equal address which formats to the same text.
 */
#include "blitzio/net.h"
#include "fuzz_driver.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size heap copy, so ASan catches any read past the input. */
    char *s = malloc(size ? size : 1);
    if (!s) {
        return 0;
    }
    memcpy(s, data, size);
    blz_addr a;
    int rc = blz_addr_parse_n(s, size, &a);
    if (rc == 0) {
        char buf[BLZ_ADDR_STRLEN], buf2[BLZ_ADDR_STRLEN];
        int n = blz_addr_format(&a, buf, sizeof buf);
        if (n <= 0) {
            fprintf(stderr, "addr_fuzz: parsed but format failed (%d)\n", n);
            abort();
        }
        blz_addr b;
        if (blz_addr_parse(buf, &b) != 0 || !blz_addr_equal(&a, &b)) {
            fprintf(stderr, "addr_fuzz: \"%s\" does not parse back\n", buf);
            abort();
        }
        if (blz_addr_format(&b, buf2, sizeof buf2) != n || strcmp(buf, buf2) != 0) {
            fprintf(stderr, "addr_fuzz: \"%s\" formats back as \"%s\"\n", buf, buf2);
            abort();
        }
    } else if (rc != -EINVAL && rc != -ENAMETOOLONG) {
        fprintf(stderr, "addr_fuzz: unexpected error %d\n", rc);
        abort();
    }
    free(s);
    return 0;
}

#ifndef BLZ_LIBFUZZER
static const char *const seeds[] = {
    "127.0.0.1:8080",     "[::1]:80", "[fe80::1%1]:443", "[::ffff:10.0.0.1]:1",
    "unix:/tmp/s",        "@abs",     "unix:@a\\x00b",   "0.0.0.0:0",
    "[2001:db8::]:65535", "/p",       "1.2.3.4:",        "[",
};

/* Runs `iters` deterministic mutations of the seeds through the target. */
static void
addr_fuzz_mutate(long iters)
{
    const char alphabet[] = "0123456789abcdef:.[]%@/\\xunix-+ \0\xff";
    uint64_t st = 0x9E3779B97F4A7C15ull;
    for (long it = 0; it < iters; it++) {
        const char *seed = seeds[fuzz_rnd(&st) % (sizeof seeds / sizeof seeds[0])];
        uint8_t buf[160];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        int muts = 1 + (int) (fuzz_rnd(&st) % 4);
        for (int m = 0; m < muts; m++) {
            size_t pos = n ? fuzz_rnd(&st) % (n + 1) : 0;
            uint8_t c = (uint8_t) alphabet[fuzz_rnd(&st) % (sizeof alphabet - 1)];
            fuzz_edit(buf, &n, sizeof buf, pos, c, (int) (fuzz_rnd(&st) % FUZZ_EDITS));
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
}

# ifndef BLZ_ADDR_FUZZ_NO_MAIN
int
main(int argc, char **argv)
{
    return fuzz_main(argc, argv, "addr_fuzz", 200000, addr_fuzz_mutate);
}
# endif
#endif
