/*
 * Whoever sees the coordinator triggered, or its last guard released, may
 * free it at once: the owner's usual end is wait, wait_for_pending, deinit,
 * and the trigger or the last release may come from another task that is
 * still inside the call. So the write that publishes must be the call's last
 * touch of the coordinator. Each coordinator here lives alone on a page that
 * goes away right after that write (page_util.h, page_vanish_when).
 */
#include "blitzio/shutdown.h"
#include "page_util.h"
#include "poll_util.h"

#include <pthread.h>

static bool
sd_triggered(void *sd)
{
    return blz_shutdown_is_triggered(sd);
}

/* Also with a wait future queued, which the trigger must still wake. */
BLZ_TEST(trigger_leaves_the_coordinator_alone_once_it_reads_triggered)
{
    for (int waiting = 0; waiting < 2; waiting++) {
        page_obj p;
        blz_shutdown *sd = page_new(&p);
        CHECK_OK(blz_shutdown_init(sd));
        test_waker w;
        test_waker_init(&w);
        blz_shutdown_wait_future f;
        if (waiting) {
            blz_shutdown_wait_fut(sd, &f);
            CHECK_EQ(poll_with(&f.base, &w), BLZ_PENDING);
        }
        page_vanish_when(&p, sd_triggered, sd);
        blz_shutdown_trigger(sd);
        CHECK(page_vanish_end(&p));
        CHECK_EQ(blz_shutdown_guard_acquire(sd), -ESHUTDOWN);
        if (waiting) {
            CHECK_EQ(test_wakes(&w), 1);
            CHECK_EQ(poll_with(&f.base, &w), BLZ_READY);
            CHECK_EQ(f.base.result, 0);
        }
        CHECK_NO_WAKER_REFS(&w);
        page_free(&p);
    }
}

static bool
sd_drained(void *sd)
{
    return blz_shutdown_pending(sd) == 0;
}

/* Also with wait_for_pending queued, which the release must still wake. */
BLZ_TEST(last_guard_release_leaves_the_coordinator_alone_once_none_is_pending)
{
    for (int waiting = 0; waiting < 2; waiting++) {
        page_obj p;
        blz_shutdown *sd = page_new(&p);
        CHECK_OK(blz_shutdown_init(sd));
        CHECK_OK(blz_shutdown_guard_acquire(sd));
        CHECK_OK(blz_shutdown_guard_acquire(sd));
        blz_shutdown_trigger(sd);
        test_waker w;
        test_waker_init(&w);
        blz_shutdown_pending_future f;
        if (waiting) {
            blz_shutdown_wait_for_pending_fut(sd, UINT64_MAX, &f);
            CHECK_EQ(poll_with(&f.base, &w), BLZ_PENDING);
        }
        blz_shutdown_guard_release(sd); /* not the last: nothing to publish */
        page_vanish_when(&p, sd_drained, sd);
        blz_shutdown_guard_release(sd);
        CHECK(page_vanish_end(&p));
        CHECK_EQ(blz_shutdown_pending(sd), 0);
        if (waiting) {
            CHECK_GE(test_wakes(&w), 1);
            CHECK_EQ(poll_with(&f.base, &w), BLZ_READY);
            CHECK_EQ(f.base.result, 0);
        }
        CHECK_NO_WAKER_REFS(&w);
        page_free(&p);
    }
}

/* ---- the owner's usual end, against real threads -------------------------- */

static void *
trigger_then_release(void *sd)
{
    blz_shutdown_trigger(sd);
    blz_shutdown_guard_release(sd);
    return NULL;
}

static void *
release_one(void *sd)
{
    blz_shutdown_guard_release(sd);
    return NULL;
}

/* The owner waits for the trigger and the drain, then unmaps the coordinator
 * at once, while the threads that triggered and released may still be in
 * those calls: any touch after their publishing write faults. */
BLZ_TEST(owner_unmaps_the_coordinator_right_after_its_waits)
{
    int rounds = BLZ_TEST_SANITIZED ? 200 : 2000;
    for (int i = 0; i < rounds; i++) {
        page_obj p;
        blz_shutdown *sd = page_new(&p);
        CHECK_OK(blz_shutdown_init(sd));
        CHECK_OK(blz_shutdown_guard_acquire(sd));
        CHECK_OK(blz_shutdown_guard_acquire(sd));
        pthread_t a, b;
        CHECK_EQ(pthread_create(&a, NULL, trigger_then_release, sd), 0);
        CHECK_EQ(pthread_create(&b, NULL, release_one, sd), 0);
        CHECK_EQ(blz_shutdown_wait(sd), 0);
        CHECK_EQ(blz_shutdown_wait_for_pending(sd, UINT64_MAX), 0);
        page_free(&p);
        CHECK_EQ(pthread_join(a, NULL), 0);
        CHECK_EQ(pthread_join(b, NULL), 0);
    }
}
