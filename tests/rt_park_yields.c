/*
 * The yields a worker makes before it parks (rt/worker.c, yield_for_unpark):
 * a worker whose yields come back at once with nothing found stops making
 * them, trying again now and then; a worker whose yields give its core to
 * another thread keeps making them.
 *
 * The test counts the yields by defining sched_yield itself: the library is
 * linked statically, so the worker's calls land here. This "yield" either
 * returns at once, as on a core of one's own, or spins for SLOW_YIELD_NS, as
 * when another thread ran meanwhile, which is what the rule looks at. Only
 * the calls of the thread running the current-thread runtime are counted.
 */
#include "blitzio.h"
#include "harness.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#define SLEEPS        64    /* each one parks the only worker at least once */
#define SLOW_YIELD_NS 20000 /* well past the 5 µs that tell a yield gave the core away */

static pthread_t counted_thread;
static _Atomic bool counting;
static _Atomic unsigned long yields;
static _Atomic long yield_spin_ns;

static long
elapsed_ns(const struct timespec *a, const struct timespec *b)
{
    return (b->tv_sec - a->tv_sec) * 1000000000L + (b->tv_nsec - a->tv_nsec);
}

int
sched_yield(void)
{
    if (!atomic_load(&counting) || !pthread_equal(pthread_self(), counted_thread)) {
        return 0;
    }
    atomic_fetch_add(&yields, 1);
    long spin = atomic_load(&yield_spin_ns);
    if (spin > 0) {
        struct timespec start, now;
        clock_gettime(CLOCK_MONOTONIC, &start);
        do {
            clock_gettime(CLOCK_MONOTONIC, &now);
        } while (elapsed_ns(&start, &now) < spin);
    }
    return 0;
}

static void *
sleep_often(void *arg)
{
    (void) arg;
    for (int i = 0; i < SLEEPS; i++) {
        CHECK_OK(blz_sleep(blz_us(100)));
    }
    return NULL;
}

/* Runs SLEEPS sleeps on a current-thread runtime whose yields each take
 * `spin_ns`; returns the yields its worker made and sets *parks. */
static unsigned long
yields_over_sleeps(long spin_ns, uint64_t *parks)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.flavor = BLZ_CURRENT_THREAD;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    counted_thread = pthread_self(); /* block_on runs the worker on this thread */
    atomic_store(&yield_spin_ns, spin_ns);
    atomic_store(&yields, 0);
    atomic_store(&counting, true);
    CHECK_OK(blz_runtime_block_on(rt, sleep_often, NULL, NULL));
    atomic_store(&counting, false);
    blz_metrics m;
    blz_runtime_metrics(rt, &m);
    *parks = m.parks;
    blz_runtime_free(rt);
    return atomic_load(&yields);
}

BLZ_TEST(yields_that_return_at_once_stop)
{
    uint64_t parks = 0;
    unsigned long n = yields_over_sleeps(0, &parks);
    CHECK_GE(parks, SLEEPS);
    /* Three a park for the first four, then three every sixteenth park: about
     * 0.4 a park over 64. Three a park if every park still yielded. */
    if (n >= parks) {
        fprintf(stderr, "%lu yields over %llu parks\n", n, (unsigned long long) parks);
    }
    CHECK(n < parks);
    CHECK_GE(n, 3); /* the first park still yields */
}

BLZ_TEST(yields_that_give_the_core_away_continue)
{
    uint64_t parks = 0;
    unsigned long n = yields_over_sleeps(SLOW_YIELD_NS, &parks);
    CHECK_GE(parks, SLEEPS);
    if (n < 2 * parks) {
        fprintf(stderr, "%lu yields over %llu parks\n", n, (unsigned long long) parks);
    }
    CHECK_GE(n, 2 * parks); /* three a park: none is skipped */
}
