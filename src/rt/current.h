/*
 * Internal: what modules above the runtime may ask of it. Everything here is
 * about the calling thread's runtime and task; no module reaches into the
 * runtime struct itself.
 */
#ifndef BLZ_RT_CURRENT_H
#define BLZ_RT_CURRENT_H

#include "blitzio/common.h"
#include "blitzio/future.h"
#include "core/atomic.h"
#include "core/coop.h"
#include "rt/task.h"

struct blz__timers;
struct blz__io_driver;
struct blz__blocking_pool;

/* The runtime whose task this thread is running, or NULL (foreign thread). */
blz_runtime *blz__rt_current(void);

/* The runtime's timer state (the wheel and its clock). */
struct blz__timers *blz__rt_timers(blz_runtime *rt);

/* The runtime's I/O driver. */
struct blz__io_driver *blz__rt_io(blz_runtime *rt);

/*
 * A blocking job of the runtime's own (a file op's fallback, a getaddrinfo
 * lookup): never waits for room under blocking_queue_limit, since its caller
 * is a future being filled or polled. If the job is cancelled before it
 * starts (blz_runtime_free aborts every queued job), `cancel(arg)` (if not
 * NULL) runs on the pool thread instead of `fn(arg)`, so that exactly one of
 * the two always runs once the call returned 0. On failure (-ENOMEM,
 * -ESHUTDOWN, -EAGAIN, -EINVAL) neither runs and `arg` is still the caller's.
 * The handle goes to `*out`, or is detached when `out` is NULL. Any thread.
 */
int blz__spawn_blocking_owned(blz_runtime *rt, blz_task_fn fn, void (*cancel)(void *), void *arg,
                              blz_join **out);


/* True while the stall watchdog's backtrace handler is installed for
 * `signo` (rt/watchdog.c): the signal module must not take that signal over.
 * Ask it and install under blz__disposition_lock, which the watchdog holds
 * for its own look-then-install: otherwise both may see the default and
 * one's handler replaces the other's. */
bool blz__stall_handler_installed(int signo);
void blz__disposition_lock(void);
void blz__disposition_unlock(void);

/* Makes the worker parked in the driver (if any) return and recompute its
 * timeout: called when a timer earlier than every other is registered. Any thread. */
void blz__rt_wake_driver(blz_runtime *rt);

/* For blz_await on a foreign thread: a future polled there that can only be
 * woken by time (a sleep) lowers the thread's park deadline with this. */
void blz__thread_park_until(blz_instant deadline);

/* True while the calling thread is inside the poll of a stackless task, where
 * waiting would block a worker. */
bool blz__in_stackless_poll(void);

/* blz_await that waits even when the calling task has been aborted: for
 * clean-up that must see another task finish before memory it touches may
 * go (blz_shutdown_deinit). -EDEADLK inside a stackless poll, where f is
 * left as it was (neither polled nor dropped). */
int blz__await_shielded(blz_future *f);

/* True where blz_await and blz__await_shielded refuse to wait (-EDEADLK):
 * inside a stackless poll, not on a fiber. For callers that must know
 * before they start something only a wait can finish. */
bool blz__await_refused(void);

/* The task the calling thread is polling, or NULL (rt/worker.c). */
extern _Thread_local blz__task *blz__tl_task;

/*
 * May an await tier skip blz_await because its operation completes at once?
 * True on a plain thread, and on a fiber that is not cancelled and still has
 * coop budget (one unit is spent); false inside a stackless poll. These are the
 * checks blz_await makes before its first poll, so trying the operation
 * directly when this says yes changes nothing a caller can observe.
 *
 * Inline, because it runs once per await-tier operation and a call here
 * made the whole fast path save and restore registers. It reads the
 * thread-locals with fs-relative loads (initial-exec), so it is safe on a
 * fiber as long as it is called before the operation suspends, as every
 * caller does: no thread-local address is carried across a switch.
 */
static inline bool
blz__await_fast_ok(void)
{
    blz__task *t = blz__tl_task;
    if (t == NULL) {
        return true; /* a plain thread: blz_await would park it; no budget, no abort */
    }
    if (t->kind != BLZ_TASK_FIBER) {
        return false; /* a stackless poll: blz_await answers -EDEADLK */
    }
    /* Acquire pairs with the CAS that sets CANCELLED (blz_join_abort). */
    if (blz__load(&t->state, ACQUIRE) & BLZ_TASK_CANCELLED) {
        return false;
    }
    return blz__coop_spend();
}

#endif
