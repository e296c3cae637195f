/*
 * A multi-thread runtime for a test: `workers` workers, fibers of
 * `fiber_stack` bytes (0: the default).
 */
#ifndef BLZ_TEST_RT_UTIL_H
#define BLZ_TEST_RT_UTIL_H

#include "blitzio.h"
#include "harness.h"

static inline blz_runtime *
test_runtime(unsigned workers, size_t fiber_stack)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = workers;
    cfg.fiber_stack_size = fiber_stack;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    return rt;
}

#endif
