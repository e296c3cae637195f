/*
 * Scale: a million stackless tasks spawned and joined, and 100,000 fibers
 * alive (suspended) at once on one runtime (2,000 under ThreadSanitizer).
 * blz-test: timeout=600
 */
#include <stdatomic.h>

/* Under ThreadSanitizer rt_wake.c's own, smaller count applies: TSan keeps a
 * thread context per fiber and aborts past 8,128 of them. */
#if !defined(__SANITIZE_THREAD__)
# if defined(__has_feature)
#  if !__has_feature(thread_sanitizer)
#   define GATE_MAX 100000
#  endif
# else
#  define GATE_MAX 100000
# endif
#endif
#include "../rt_wake.c"

static blz_poll
value_poll(blz_future *f, blz_context *cx)
{
    (void) cx;
    f->result = 1;
    return BLZ_READY;
}

static const blz_future_vtable value_vt = {value_poll, NULL};

static void *
million(void *arg)
{
    (void) arg;
    enum { N = 1000000, BATCH = 10000 };
    static blz_join *j[BATCH];
    long sum = 0;
    for (int done = 0; done < N; done += BATCH) {
        for (int i = 0; i < BATCH; i++) {
            blz_future f;
            blz_future_init(&f, &value_vt);
            CHECK_OK(blz_spawn_future(&f, sizeof f, &j[i]));
        }
        for (int i = 0; i < BATCH; i++) {
            void *v;
            CHECK_OK(blz_join_wait(j[i], &v));
            sum += (intptr_t) v;
        }
    }
    CHECK_EQ(sum, N);
    return NULL;
}

BLZ_TEST(million_stackless_tasks)
{
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(NULL, &rt));
    CHECK_OK(blz_runtime_block_on(rt, million, NULL, NULL));
    blz_metrics m;
    blz_runtime_metrics(rt, &m);
    CHECK_GE(m.tasks_spawned, 1000001);
    blz_runtime_free(rt);
}
