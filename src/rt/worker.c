/*
 * Workers: the scheduling loop, task dispatch, work stealing and parking.
 *
 * Where a task goes when it is scheduled:
 *   - woken or spawned by the task a worker is polling: that worker's LIFO
 *     slot (the previous occupant moves to the back of the local queue), so a
 *     message passed to a waiting task is handled while it is still in cache
 *     (another worker takes it if the worker then stays in that poll for
 *     10 ms: rt/rescue.h);
 *   - re-queued after a poll that was itself notified (yield, coop budget):
 *     the worker's private defer list, which goes to the back of the local
 *     queue once that is empty (or every BLZ_GLOBAL_INTERVAL ticks), so
 *     others get their turn;
 *   - from any other thread, or when the local queue is full: the inject queue.
 *
 * Stealing: an idle worker takes half of another worker's local queue, unless
 * the queue is short and its owner is draining it (owner_is_draining).
 *
 * Fairness: the LIFO slot is taken at most BLZ_LIFO_LIMIT times in a row, and
 * every BLZ_GLOBAL_INTERVAL ticks the inject queue is checked first and the
 * driver is polled without blocking, so neither starves.
 *
 * Parking protocol (no lost wake-ups): a worker sets its bit in idle_mask
 * (seq_cst), then re-checks the queues (seq_cst loads); a notifier pushes its
 * task (seq_cst) and then reads idle_mask. At least one side sees the other.
 * (A short local queue does not count: its owner is awake and will run it.)
 * A worker's park_state goes EMPTY -> SLEEPING/DRIVER -> (NOTIFIED by an
 * unpark) -> EMPTY, and only the worker itself resets it to EMPTY. Before it
 * sleeps, it yields the CPU a few times in EMPTY: an unpark arriving then
 * costs no futex call on either side.
 * At most one parked worker holds the driver (driver_held) and sleeps in it
 * with the next timer deadline as timeout; the others sleep on a futex.
 * With rings per worker (rt->io_rings > 1) every parked worker sleeps in its
 * own ring, whose events only it dispatches, and driver_held only picks the
 * one that also watches the timers.
 */
#include "core/atomic.h"
#include "core/coop.h"
#include "os/unix/sys.h"
#include "rt/current.h"
#include "rt/futex.h"
#include "rt/hooks.h"
#include "rt/rescue.h"
#include "rt/runtime.h"
#include "rt/task.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#define BLZ_LIFO_LIMIT         3
#define BLZ_GLOBAL_INTERVAL    61
#define BLZ_INJECT_BATCH       32
#define BLZ_PARK_YIELDS        3
/* Pre-park yields that paid nothing this many parks in a row are skipped, but
 * for one park in every BLZ_IDLE_YIELDS_PROBE; they paid when another thread
 * ran meanwhile, which takes them past BLZ_YIELDS_GAVE_WAY_NS (three yields
 * alone on a core take ≈ 1.2 µs here). See yield_for_unpark. */
#define BLZ_IDLE_YIELDS_KEPT   4
#define BLZ_IDLE_YIELDS_PROBE  16
#define BLZ_YIELDS_GAVE_WAY_NS 5000
#define BLZ_STEAL_SHORT        8
#define BLZ_RECHECK_NS         1000000 /* see park */

/* A counter written by one thread and read by others: a relaxed load and store,
 * not a locked read-modify-write. */
static inline void
blz__counter_inc(_Atomic uint64_t *c)
{
    blz__store(c, blz__load(c, RELAXED) + 1, RELAXED);
}

/*
 * Load figures (blz_runtime_metrics). A worker is busy from the moment it
 * wakes (or enters blz__worker_run) until it goes to sleep for lack of work
 * (or leaves): two clock reads per sleep, none per task. busy_ns and
 * awake_since change together under the sequence count busy_seq, odd while
 * the worker writes them, and the worker reads the clock only once the odd
 * count is visible: a reader whose own clock read falls inside an unchanged
 * even count therefore read the clock before the worker did, and its
 * extrapolation (busy_ns + now - awake_since) never passes what the worker
 * then stores. So the figure never goes backwards. The mean task run is
 * measured per batch (the runs between two maintenance ticks, or up to a
 * park; the maintenance itself, the I/O driver's turn, is left out): two
 * clock reads per batch of up to BLZ_GLOBAL_INTERVAL runs.
 */

/* Ends the current batch of task runs at `now`: folds its time per run into
 * the moving average (a quarter for the new batch) and starts the next. */
static void
batch_end(blz__worker *w, blz_instant now)
{
    uint64_t polls = blz__load(&w->polls, RELAXED);
    uint64_t runs = polls - w->batch_polls;
    if (runs > 0 && now > w->batch_start) {
        uint64_t per = (now - w->batch_start) / runs;
        uint64_t mean = blz__load(&w->mean_poll_ns, RELAXED);
        blz__store(&w->mean_poll_ns, mean ? mean - mean / 4 + per / 4 : per, RELAXED);
    }
    w->batch_start = now;
    w->batch_polls = polls;
}

/* Opens a write of the busy figures and reads the clock after it. */
static blz_instant
busy_write_begin(blz__worker *w)
{
    /* A locked increment: the odd count is visible before the clock is read
     * (a plain store could still sit in the store buffer). */
    blz__fetch_add(&w->busy_seq, 1, SEQ_CST);
    return blz_now();
}

static void
busy_write_end(blz__worker *w, uint64_t busy, blz_instant awake_since)
{
    blz__store(&w->busy_ns, busy, RELAXED);
    blz__store(&w->awake_since, awake_since, RELAXED);
    blz__store(&w->busy_seq, blz__load(&w->busy_seq, RELAXED) + 1, RELEASE);
}

/* The worker wakes (or starts running). */
static void
awake_begin(blz__worker *w)
{
    blz_instant now = busy_write_begin(w);
    busy_write_end(w, blz__load(&w->busy_ns, RELAXED), now);
    w->batch_start = now;
    w->batch_polls = blz__load(&w->polls, RELAXED);
}

/* The worker goes to sleep (or stops running): its awake stretch ends at the
 * instant returned. */
static blz_instant
awake_end(blz__worker *w)
{
    blz_instant now = busy_write_begin(w);
    blz_instant since = blz__load(&w->awake_since, RELAXED);
    uint64_t busy = blz__load(&w->busy_ns, RELAXED);
    busy_write_end(w, since && now > since ? busy + (now - since) : busy, 0);
    batch_end(w, now);
    return now;
}

void
blz__worker_metrics(blz__worker *w, blz_worker_metrics *out, uint64_t *poll_hist,
                    uint64_t *delay_hist)
{
    uint64_t busy;
    blz_instant since, now;
    for (;;) {
        uint32_t seq = blz__load(&w->busy_seq, ACQUIRE);
        busy = blz__load(&w->busy_ns, RELAXED);
        since = blz__load(&w->awake_since, RELAXED);
        now = blz_now();
        atomic_thread_fence(memory_order_acquire); /* the fields before the re-check */
        if (!(seq & 1) && blz__load(&w->busy_seq, RELAXED) == seq) {
            break;
        }
        sched_yield(); /* the worker is between two stores */
    }
    out->polls = blz__load(&w->polls, RELAXED);
    out->steals = blz__load(&w->steals, RELAXED);
    out->rescued = blz__load(&w->rescued, RELAXED);
    out->spare_activations = blz__load(&w->activations, RELAXED);
    out->dormant = blz__load(&w->park_state, RELAXED) == BLZ_PARK_DORMANT;
    out->parks = blz__load(&w->parks, RELAXED);
    out->unparks = blz__load(&w->unparks, RELAXED);
    out->busy_ns = since && now > since ? busy + (now - since) : busy;
    out->mean_poll_ns = blz__load(&w->mean_poll_ns, RELAXED);
    out->local_queue_depth = blz__local_queue_len(&w->queue);
    for (int i = 0; i < BLZ_POLL_BUCKETS; i++) {
        poll_hist[i] += blz__load(&w->poll_hist[i], RELAXED);
        delay_hist[i] += blz__load(&w->delay_hist[i], RELAXED);
    }
}

/* blz_now in µs, modulo 2^32 (wraps every 71 minutes; only differences count). */
static inline uint32_t
now_us(void)
{
    return (uint32_t) (blz_now() / 1000);
}

/* With the scheduling-delay histogram: t is queued (woken, spawned or
 * yielded) now. */
static inline void
stamp_queued(blz__task *t)
{
    if (BLZ_UNLIKELY(t->rt->time_sched)) {
        t->queued_us = now_us();
    }
}

int
blz__poll_bucket(uint64_t ns)
{
    uint64_t us = ns / 1000;
    int bucket = us == 0 ? 0 : 64 - __builtin_clzll(us); /* [2^(b-1), 2^b) µs */
    return bucket < BLZ_POLL_BUCKETS - 1 ? bucket : BLZ_POLL_BUCKETS - 1;
}

/* Around a task run when the poll-time or scheduling-delay histogram or a
 * poll hook is on (w->observe_polls): counts the task's wait since it was
 * queued, runs the before hook, then returns the run's start (1 when not
 * timing). The hooks' own time is not the run's. */
static BLZ_NOINLINE blz_instant
observe_before(blz__worker *w, blz__task *t)
{
    const blz_runtime_config *cfg = &w->rt->cfg;
    /* A stale queue entry (the task finished) is no run, and its payload
     * holds the result: neither counted nor hooked. Only this entry can run
     * the task, so it cannot finish meanwhile. */
    bool live = !(blz__load(&t->state, ACQUIRE) & BLZ_TASK_COMPLETE);
    if (w->rt->time_sched && live) {
        uint32_t waited_us = now_us() - t->queued_us; /* modulo 2^32 */
        blz__counter_inc(&w->delay_hist[blz__poll_bucket((uint64_t) waited_us * 1000)]);
    }
    w->poll_hooked = live && (cfg->on_before_task_poll || cfg->on_after_task_poll);
    if (w->poll_hooked) {
        blz__task_meta_of(t, &w->poll_meta);
        /* A run that finishes the task may free it, and a spawn on another
         * thread may take its memory before the after hook runs: the hooks
         * would see one identity for two live tasks. Held until then. */
        blz__task_ref_inc(t);
        w->poll_held = t;
        if (cfg->on_before_task_poll) {
            cfg->on_before_task_poll(&w->poll_meta, cfg->task_hook_arg);
        }
    }
    return w->time_polls ? blz_now() : 1;
}

/* Counts the run that began at `start` in its duration's bucket, then the
 * after hook. */
static BLZ_NOINLINE void
observe_after(blz__worker *w, blz_instant start)
{
    if (w->time_polls) {
        blz__counter_inc(&w->poll_hist[blz__poll_bucket(blz_now() - start)]);
    }
    const blz_runtime_config *cfg = &w->rt->cfg;
    if (w->poll_hooked) {
        if (cfg->on_after_task_poll) {
            cfg->on_after_task_poll(&w->poll_meta, cfg->task_hook_arg);
        }
        blz__task_ref_dec(w->poll_held);
        w->poll_held = NULL;
    }
}

static _Thread_local blz__worker *tl_worker;
static _Thread_local blz_runtime *tl_runtime;
_Thread_local blz__task *blz__tl_task; /* read inline by blz__await_fast_ok */
_Thread_local int blz__coop_budget = BLZ_COOP_UNLIMITED;

/* Thread-locals are read through these out-of-line functions: code running on
 * a fiber may resume on another thread, and a caller must not reuse a
 * thread-local address computed before the switch. */
__attribute__((noinline)) blz__worker *
blz__worker_current(void)
{
    return tl_worker;
}

__attribute__((noinline)) blz__task *
blz__task_current(void)
{
    return blz__tl_task;
}

__attribute__((noinline)) blz_runtime *
blz__rt_current(void)
{
    return tl_runtime;
}

blz_runtime *
blz_runtime_current(void)
{
    return blz__rt_current();
}

/* Out of line for the same reason as the accessors above: fibers call it
 * across switches. */
__attribute__((noinline)) bool
blz__coop_take(void)
{
    return blz__coop_spend();
}

__attribute__((noinline)) bool
blz__in_stackless_poll(void)
{
    return tl_worker != NULL;
}

void blz__rt_set_thread(blz_runtime *rt, blz__worker *w);

void
blz__rt_set_thread(blz_runtime *rt, blz__worker *w)
{
    tl_runtime = rt;
    tl_worker = w;
}

struct blz__timers *
blz__rt_timers(blz_runtime *rt)
{
    return &rt->timers;
}

struct blz__io_driver *
blz__rt_io(blz_runtime *rt)
{
    return rt->io;
}

/* w hands the timers' watch back. An exchange, not a store: it reads every
 * earlier RMW of blz__rt_wake_driver, so the next watcher's acquire CAS
 * sees the deadlines those stored before them (a plain store would end
 * their release sequence). w stays awake (maintenance) or wakes (its
 * sleep in the driver ended): see unwatched_put. */
static void
give_up_timers(blz__worker *w)
{
    (void) blz__exchange(&w->rt->driver_held, 0, SEQ_CST); /* see sleep_until_unparked */
    w->unwatched = w->rt->rescue_on;
}

void
blz__rt_wake_driver(blz_runtime *rt)
{
    if (rt->io_rings == 1) {
        blz__io_driver_wake(rt->io);
        return;
    }
    /* The worker watching the timers, if any. A read-modify-write: one
     * that takes the watch later (its CAS in sleep_until_unparked or
     * maintenance) sees the deadline stored before it, through this RMW or
     * through the watcher's hand-back, an RMW too (give_up_timers). */
    uint32_t holder = blz__fetch_add(&rt->driver_held, 0, ACQ_REL);
    if (holder) {
        blz__io_driver_wake_ring(rt->io, holder - 1);
    }
}

/* ---- inject queue -------------------------------------------------------- */

/* Appends the chain first..last (n tasks, linked through queue_next). */
static void
inject_append(blz_runtime *rt, blz__task *first, blz__task *last, uint32_t n)
{
    last->queue_next = NULL;
    pthread_mutex_lock(&rt->inject_lock);
    if (rt->inject_tail) {
        rt->inject_tail->queue_next = first;
    } else {
        rt->inject_head = first;
    }
    rt->inject_tail = last;
    /* seq_cst: ordered before the idle_mask read in notify_parked (see header). */
    blz__fetch_add(&rt->inject_len, n, SEQ_CST);
    pthread_mutex_unlock(&rt->inject_lock);
    blz__fetch_add(&rt->inject_pushes, n, RELAXED);
}

void
blz__inject_push(blz_runtime *rt, blz__task *t)
{
    inject_append(rt, t, t, 1);
}

/* Pops one task and moves up to a batch more into w's local queue. */
static blz__task *
inject_pop(blz_runtime *rt, blz__worker *w)
{
    if (blz__load(&rt->inject_len, SEQ_CST) == 0) {
        return NULL;
    }
    pthread_mutex_lock(&rt->inject_lock);
    blz__task *first = rt->inject_head;
    if (!first) {
        pthread_mutex_unlock(&rt->inject_lock);
        return NULL;
    }
    blz__task *t = first->queue_next;
    uint64_t taken = 1;
    uint32_t room = BLZ_LOCAL_QUEUE_CAP - blz__local_queue_len(&w->queue);
    uint32_t batch = room / 2 < BLZ_INJECT_BATCH ? room / 2 : BLZ_INJECT_BATCH;
    while (t && taken <= batch) {
        blz__task *next = t->queue_next;
        if (!blz__local_queue_push(&w->queue, t)) {
            break;
        }
        t = next;
        taken++;
    }
    rt->inject_head = t;
    if (!t) {
        rt->inject_tail = NULL;
    }
    blz__fetch_sub(&rt->inject_len, taken, SEQ_CST);
    pthread_mutex_unlock(&rt->inject_lock);
    return first;
}

/* ---- waking parked workers ----------------------------------------------- */

static void
unpark_worker(blz__worker *w)
{
    /* acq_rel pairs with the worker's exchange back to EMPTY. */
    uint32_t prev = blz__exchange(&w->park_state, BLZ_PARK_NOTIFIED, ACQ_REL);
    if (prev == BLZ_PARK_SLEEPING) {
        blz__futex_wake(&w->park_state, 1);
    } else if (prev == BLZ_PARK_DRIVER) {
        blz__io_driver_wake_ring(w->rt->io, w->index);
    }
    blz__fetch_add(&w->unparks, 1, RELAXED); /* any thread unparks: a real RMW */
}

/*
 * A notifier counts the worker it is about to wake as searching before it
 * claims one (it decrements when it stops searching, and the count must not
 * go below 0), so the count can stand for a searcher that never comes: when
 * the worker it meant to claim left the idle set first. Another notifier that
 * saw that count meanwhile woke nobody for its task, trusting a search that
 * will not happen. So whoever gives back such a count, leaving none, looks
 * again on that notifier's behalf. (Found under qemu-user, where a thread is
 * often descheduled between the two steps: a foreign thread's wake stayed in
 * the inject queue with every worker asleep, in sync_runtime's
 * mutex_counter_fibers_stackless_and_threads.) Returns true when the caller
 * must look again.
 */
static bool
give_back_search(blz_runtime *rt)
{
    BLZ_PERTURB_POINT();
    return blz__fetch_sub(&rt->num_searching, 1, SEQ_CST) == 1;
}

void
blz__unclaim_searcher(blz_runtime *rt)
{
    if (give_back_search(rt)) {
        blz__notify_parked(rt);
    }
}

void
blz__notify_parked(blz_runtime *rt)
{
    /* Never this worker: it is awake, even while its idle bit is set around a
     * sleep in the driver whose events it is dispatching. */
    blz__worker *me = tl_worker;
    uint64_t others = me && me->rt == rt ? ~((uint64_t) 1 << me->index) : ~(uint64_t) 0;
    do {
        /* A searching worker will find the work; waking another would only contend. */
        if (blz__load(&rt->num_searching, SEQ_CST) != 0) {
            return;
        }
        uint64_t mask = blz__load(&rt->idle_mask, SEQ_CST);
        if (!(mask & others)) {
            return;
        }
        blz__fetch_add(&rt->num_searching, 1, SEQ_CST); /* see give_back_search */
        BLZ_PERTURB_POINT();
        while (mask & others) {
            unsigned i = (unsigned) __builtin_ctzll(mask & others);
            uint64_t bit = (uint64_t) 1 << i;
            if (blz__cas(&rt->idle_mask, &mask, mask & ~bit, SEQ_CST, SEQ_CST)) {
                /* It learns it is searching from its cleared idle bit (see park). */
                unpark_worker(&rt->workers[i]);
                return;
            }
        }
    } while (give_back_search(rt)); /* nobody was left to wake */
}

/* ---- scheduling ---------------------------------------------------------- */

/*
 * w, awake since it handed the timers' watch back (give_up_timers), has
 * just put a task in its LIFO slot or its list of yielded tasks, where only
 * a rescue takes it should w now stay in this poll (rt/rescue.h). A worker
 * that parked while w held the watch, or before w woke from its own I/O or
 * timer, sleeps without a limit: only the watcher looks. If nobody took
 * the watch since and another worker sleeps, wake one (blz__notify_parked:
 * nobody when every other worker is awake or one is searching, and so
 * about to park and take the free watch): it sleeps again holding the
 * watch and, w being awake, looks every BLZ_RESCUE_NS. Whether every
 * other worker sleeps does not matter: one that is awake may be stuck in a
 * poll of its own, and never park to take the watch (rt_rescue
 * a_task_stranded_unwatched_beside_a_stuck_worker_runs_elsewhere). Once
 * per hand-back: an awake worker looks for stranded tasks whenever it runs
 * out of work, and the first to park after w's look takes the free watch
 * and sees w awake. Not at the hand-back itself: a lone I/O event would
 * then wake another worker for nothing (net_tcp lone_event_leaves_the_
 * other_worker_asleep).
 */
static BLZ_NOINLINE void
unwatched_put(blz__worker *w)
{
    w->unwatched = false;
    blz_runtime *rt = w->rt;
    if (blz__load(&rt->driver_held, SEQ_CST) == 0) {
        blz__notify_parked(rt);
    }
}

/* Appends t to a worker-private list linked through queue_next. */
static void
task_list_append(blz__task **head, blz__task **tail, blz__task *t)
{
    t->queue_next = NULL;
    if (*tail) {
        (*tail)->queue_next = t;
    } else {
        *head = t;
    }
    *tail = t;
}

/* Moves the spilled tasks to the inject queue under one lock, and wakes a
 * parked worker to help with them: the wake blz__schedule skipped. */
static void
spill_flush(blz__worker *w)
{
    if (BLZ_LIKELY(!w->spill_len)) {
        return;
    }
    inject_append(w->rt, w->spill_head, w->spill_tail, w->spill_len);
    w->spill_head = w->spill_tail = NULL;
    w->spill_len = 0;
    if (w->rt->nworkers > 1) {
        blz__notify_parked(w->rt);
    }
}

/* Queues t on the worker's spill list (see push_local_or_inject). A full
 * batch goes out at once, so a task that spawns thousands and keeps running
 * does not hold them back from the other workers. */
static void
spill_push(blz__worker *w, blz__task *t)
{
    task_list_append(&w->spill_head, &w->spill_tail, t);
    if (++w->spill_len >= BLZ_INJECT_BATCH) {
        spill_flush(w);
    }
}

/* Appends t to the run order: the local queue, or the inject queue once the
 * local one overflowed. Until the inject queue has drained, this worker's
 * new tasks queue behind the overflow there too: otherwise tasks woken by
 * every I/O poll would refill the local queue ahead of it, and with more
 * ready tasks than local slots (a thousand connections on one worker) the
 * overflowed ones would wait for a slot for hundreds of milliseconds. A
 * worker that never overflowed keeps its local queue (the inject queue also
 * carries wakes from other threads, and sending its own work there would
 * scatter it over the workers).
 *
 * Those tasks reach the inject queue through the worker's spill list, one
 * lock per batch rather than per task: the driver wakes tens of tasks per
 * poll, and with a thousand busy connections a worker can stay overflowed
 * for good. The spill is flushed when a batch is full and before the
 * worker runs its next task or parks, so its tasks keep their order and
 * wait no longer than before.
 *
 * Returns false when t went to the spill (and so is not visible to others yet).
 */
static bool
push_local_or_inject(blz__worker *w, blz__task *t)
{
    if (w->overflowed) {
        if (w->spill_len || blz__load(&w->rt->inject_len, RELAXED) != 0) {
            spill_push(w, t);
            return false;
        }
        w->overflowed = false;
    }
    if (!blz__local_queue_push(&w->queue, t)) {
        w->overflowed = true;
        spill_push(w, t);
        return false;
    }
    return true;
}

/* Appends a chain of tasks linked newest first to the run order, oldest first. */
static void
push_chain_oldest_first(blz__worker *w, blz__task *newest)
{
    blz__task *oldest = NULL;
    while (newest) {
        blz__task *next = newest->queue_next;
        newest->queue_next = oldest;
        oldest = newest;
        newest = next;
    }
    while (oldest) {
        blz__task *next = oldest->queue_next;
        push_local_or_inject(w, oldest);
        oldest = next;
    }
}

/*
 * A task that yielded (its poll was notified: blz_yield, a spent coop budget,
 * a wake that raced with the poll) waits on its worker's private list
 * (blz__defer_push) until the local queue is empty or the next maintenance
 * tick, then goes to its back (here). Kept off the local queue meanwhile, it
 * cannot be stolen: a task that yields is usually one that is busy talking to
 * its neighbours here (a producer that spent its budget on a channel), and a
 * thief that took it would turn every message between them into a cache line
 * crossing cores. The tasks it yields to are still in the local queue, so
 * idle workers still find work to take; only a worker stuck in one poll has
 * its list taken (rt/rescue.h).
 */
static void
defer_release(blz__worker *w)
{
    push_chain_oldest_first(w, blz__defer_take_all(w));
}

void
blz__schedule(blz__task *t)
{
    blz_runtime *rt = t->rt;
    stamp_queued(t);
    blz__worker *w = tl_worker;
    if (w && w->rt == rt) {
        if (blz__tl_task && blz__tl_task != t) {
            /* Woken by the running task: LIFO slot. */
            blz__task *prev = blz__lifo_put(w, t);
            if (BLZ_UNLIKELY(w->unwatched)) {
                unwatched_put(w);
            }
            if (!prev) {
                return;
            }
            t = prev;
        }
        /* A spilled task is announced by spill_flush, once it is visible; a
         * task woken by the driver, by driver_done. */
        if (push_local_or_inject(w, t) && rt->nworkers > 1 && !w->in_driver) {
            blz__notify_parked(rt);
        }
        return;
    }
    /* From outside the workers, which blz_runtime_free joins before it frees
     * anything: once queued, t may be run, aborted and completed (all that
     * free waits for) before the wake below is over, so free waits for this
     * count to drop as well. Relaxed: the inject lock's release orders it
     * before the push, and so before t's completion. */
    blz__fetch_add(&rt->outside_schedules, 1, RELAXED);
    blz__inject_push(rt, t);
    /* The single worker of a current-thread runtime must hear it too. */
    if (rt->nworkers == 1) {
        blz__worker *only = &rt->workers[0];
        if (blz__load(&rt->idle_mask, SEQ_CST) & 1) {
            unpark_worker(only);
        }
    } else {
        blz__notify_parked(rt);
    }
    /* The last touch of rt. Release pairs with the acquire load in
     * blz_runtime_free. */
    blz__fetch_sub(&rt->outside_schedules, 1, RELEASE);
}

/* ---- running a task ------------------------------------------------------- */

static blz_poll
stackless_poll(blz__task *t, blz_context *cx, uint64_t state)
{
    blz_future *f = blz__task_payload(t);
    if (state & BLZ_TASK_CANCELLED) {
        blz_future_drop(f);
        blz__task_set_result(t, NULL, -ECANCELED);
        return BLZ_READY;
    }
    if (blz_future_poll(f, cx) == BLZ_READY) {
        int value = f->result; /* read before the result overwrites the future */
        // NOLINTNEXTLINE(performance-no-int-to-ptr): a stackless task's value is its result
        blz__task_set_result(t, (void *) (intptr_t) value, 0);
        return BLZ_READY;
    }
    return BLZ_PENDING;
}

void
blz__task_run(blz__task *t)
{
    uint64_t state = blz__task_transition_to_running(t);
    if (state & BLZ_TASK_COMPLETE) {
        blz__task_ref_dec(t); /* stale queue entry */
        return;
    }
    blz_waker waker = blz__task_waker_ref(t);
    blz_context cx = {&waker};
    blz__tl_task = t;
    blz__coop_budget = BLZ_COOP_BUDGET;
    blz_poll r;
    if (t->kind == BLZ_TASK_FIBER) {
        r = blz__fiber_task_poll(t, &cx);
    } else {
        r = stackless_poll(t, &cx, state);
    }
    if (r == BLZ_READY) {
        blz__hook_terminate(t);
        /* Still "running t": the joiner it wakes goes to this worker's LIFO slot. */
        blz__task_complete(t);
        blz__tl_task = NULL;
        blz__coop_budget = BLZ_COOP_UNLIMITED;
        return;
    }
    blz__tl_task = NULL;
    blz__coop_budget = BLZ_COOP_UNLIMITED;
    if (blz__task_transition_to_idle(t)) {
        /* Notified during its own poll (yield, budget, self-wake): after the others. */
        stamp_queued(t);
        blz__worker *w = tl_worker;
        if (w && w->rt == t->rt) {
            blz__defer_push(w, t);
            if (BLZ_UNLIKELY(w->unwatched)) {
                unwatched_put(w);
            }
        } else {
            blz__inject_push(t->rt, t);
        }
    }
}

/* ---- finding work ------------------------------------------------------------ */

static uint32_t
xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

static blz__task *
next_local(blz__worker *w, unsigned *lifo_streak)
{
    blz__task *t = blz__lifo_take(w);
    if (t && *lifo_streak < BLZ_LIFO_LIMIT) {
        (*lifo_streak)++;
        return t;
    }
    *lifo_streak = 0;
    if (t) {
        /* The slot had its turns: demote it behind the queue. */
        push_local_or_inject(w, t);
    }
    t = blz__local_queue_pop(&w->queue);
    if (!t && blz__load(&w->defer_top, RELAXED)) {
        defer_release(w);
        t = blz__local_queue_pop(&w->queue);
    }
    return t;
}

static void
end_searching(blz__worker *w)
{
    if (!w->searching) {
        return;
    }
    w->searching = false;
    /* The last searcher to find work wakes another, so a burst spreads out. */
    if (blz__fetch_sub(&w->rt->num_searching, 1, SEQ_CST) == 1) {
        blz__notify_parked(w->rt);
    }
}

/*
 * True when v's owner popped from its queue while this thread gave the CPU
 * away once (sched_yield: if the owner shares our core, it runs meanwhile).
 *
 * A thief leaves a short queue (at most BLZ_STEAL_SHORT tasks) to an owner
 * that is draining it. Such a queue is usually a few tasks passing messages
 * to each other on that worker (the producers and consumers of a channel,
 * waking each other through the LIFO slot): taking half of them turns every
 * message into cache lines crossing cores, four to six times the cost, and
 * the owner was about to run them anyway. An owner stuck in a long poll does
 * not move its head, so its queue is stolen as before, and a longer queue is
 * always shared. Nothing is lost by skipping: only the owner pushes to its
 * local queue, so a queue with tasks in it has an owner that is awake and
 * will pop them.
 */
static bool
owner_is_draining(blz__worker *v)
{
    uint32_t head = blz__load(&v->queue.head, RELAXED);
    blz__sys_yield();
    return blz__load(&v->queue.head, RELAXED) != head;
}

/* Takes the tasks stranded on a worker stuck in one poll (rt/rescue.h):
 * runs the one from its LIFO slot first, queues the yielded ones. */
static blz__task *
rescue_stranded(blz__worker *w)
{
    blz_runtime *rt = w->rt;
    if (!rt->rescue_on) {
        return NULL;
    }
    for (unsigned i = 0; i < rt->nworkers; i++) {
        blz__worker *v = &rt->workers[i];
        blz__task *lifo, *defer;
        if (v == w || !blz__rescue_take(v, &lifo, &defer)) {
            continue;
        }
        push_chain_oldest_first(w, defer);
        blz__task *t = lifo ? lifo : blz__local_queue_pop(&w->queue);
        if (blz__local_queue_len(&w->queue) > 0) {
            blz__notify_parked(rt); /* more than this worker's next task */
        }
        return t;
    }
    return NULL;
}

/* The inject queue, else a rescue. */
static blz__task *
inject_or_rescue(blz_runtime *rt, blz__worker *w)
{
    blz__task *t = inject_pop(rt, w);
    return t ? t : rescue_stranded(w);
}

static blz__task *
steal_work(blz__worker *w)
{
    blz_runtime *rt = w->rt;
    unsigned n = rt->nworkers;
    if (n > 1) {
        if (!w->searching) {
            /* At most half the workers search at once: no thundering herd. */
            uint32_t s = blz__load(&rt->num_searching, SEQ_CST);
            if (2 * s >= n) {
                return inject_or_rescue(rt, w);
            }
            blz__fetch_add(&rt->num_searching, 1, SEQ_CST);
            w->searching = true;
        }
        unsigned start = xorshift(&w->rng) % n;
        for (unsigned k = 0; k < n; k++) {
            blz__worker *v = &rt->workers[(start + k) % n];
            if (v == w) {
                continue;
            }
            uint32_t len = blz__local_queue_len(&v->queue);
            if (len == 0 || (len <= BLZ_STEAL_SHORT && owner_is_draining(v))) {
                continue;
            }
            uint32_t stolen;
            blz__task *t = blz__local_queue_steal_into(&v->queue, &w->queue, &stolen);
            if (t) {
                blz__store(&w->steals, blz__load(&w->steals, RELAXED) + stolen, RELAXED);
                return t;
            }
        }
    }
    return inject_or_rescue(rt, w);
}

/* What a worker about to park finds in the queues: work it must stay up for
 * (its own, the inject queue, another worker's queue too long to leave to
 * its owner), only short queues left to their owners, or nothing. */
enum { QUEUES_EMPTY, QUEUES_SHORT, QUEUES_WORK };

static int
visible_work(blz__worker *w)
{
    blz_runtime *rt = w->rt;
    if (blz__load(&w->lifo, RELAXED) || blz__local_queue_len(&w->queue) ||
        blz__load(&rt->inject_len, SEQ_CST)) {
        return QUEUES_WORK;
    }
    int found = QUEUES_EMPTY;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        uint32_t len = blz__local_queue_len(&rt->workers[i].queue);
        if (len > BLZ_STEAL_SHORT) {
            return QUEUES_WORK;
        }
        if (len > 0) {
            found = QUEUES_SHORT; /* its owner's to run (see owner_is_draining) */
        }
    }
    return found;
}

/*
 * The driver and the timers wake tasks on this worker with in_driver set, so
 * none of those wakes unparks another worker; afterwards one does, and only
 * if this worker now has more than the one task it will run next. A poll that
 * woke one connection used to unpark the other worker for it, which found
 * nothing to do and went back to sleep: two futex calls and a few yields per
 * message when messages come one at a time (10 x 16 KiB, shared: server CPU
 * per message 1.4x the hand epoll server's). Tokio decides the same way after
 * its driver returns.
 */
static void
driver_begin(blz__worker *w)
{
    w->in_driver = true;
}

static void
driver_done(blz__worker *w)
{
    w->in_driver = false;
    if (w->rt->nworkers > 1 &&
        (blz__load(&w->lifo, RELAXED) != NULL) + blz__local_queue_len(&w->queue) > 1) {
        blz__notify_parked(w->rt);
    }
}

/* Fires due timers and polls the driver without sleeping, if no one else
 * holds it (with rings per worker: polls its own ring, and fires the timers
 * if no one watches them); otherwise lets the kernel post what it deferred
 * to this thread. */
static void
maintenance(blz__worker *w)
{
    blz_runtime *rt = w->rt;
    uint32_t expect = 0;
    bool timers = blz__cas(&rt->driver_held, &expect, w->index + 1, ACQUIRE, RELAXED);
    /* The one driver only with the timers' watch (one thread polls it at a
     * time); with rings per worker, its own ring always. */
    if (timers || rt->io_rings > 1) {
        driver_begin(w);
        (void) blz__io_driver_park(rt->io, 0);
        if (timers) {
            (void) blz__timers_fire(&rt->timers);
        }
        driver_done(w);
    } else {
        blz__io_driver_flush_deferred(rt->io);
    }
    if (timers) {
        give_up_timers(w);
    }
}

static bool
all_idle(blz_runtime *rt)
{
    uint64_t full = blz__load(&rt->active_mask, SEQ_CST); /* a dormant spare is not busy */
    if ((blz__load(&rt->idle_mask, SEQ_CST) & full) != full) {
        return false;
    }
    pthread_mutex_lock(&rt->blocking.lock);
    /* A spinning thread has no job: idle as much as a sleeping one; and one whose
     * job is parked in blz_await waits for the runtime, as an idle task does. */
    long long waiting = (long long) rt->blocking.idle + rt->blocking.spinning +
                        blz__load(&rt->blocking.awaiting, SEQ_CST);
    bool busy = (long long) rt->blocking.threads > waiting || rt->blocking.head;
    pthread_mutex_unlock(&rt->blocking.lock);
    return !busy;
}

/*
 * Before sleeping, yield the CPU a few times while watching for an unpark, as
 * Tokio's parker does. An unpark that lands in this window finds park_state
 * EMPTY and only stores NOTIFIED: neither side makes a futex call, and the
 * worker is back without a wake-up latency. On a core it shares, the yields
 * also let the thread that will give it work (a client on the same core) run
 * before it sleeps. A worker alone on its core gains neither when no unpark
 * comes: each yield is then a system call (≈ 0.4 µs here) that returns at
 * once. So after BLZ_IDLE_YIELDS_KEPT parks in a row where the yields found
 * no unpark and came back faster than another thread could have run
 * (BLZ_YIELDS_GAVE_WAY_NS), it skips them, trying again every
 * BLZ_IDLE_YIELDS_PROBE parks. `since` is when its awake stretch ended.
 * Returns true when notified.
 */
static bool
yield_for_unpark(blz__worker *w, blz_instant since)
{
    uint32_t idle = w->idle_yields;
    if (idle >= BLZ_IDLE_YIELDS_KEPT && idle % BLZ_IDLE_YIELDS_PROBE) {
        w->idle_yields = idle + 1;
        return blz__load(&w->park_state, ACQUIRE) == BLZ_PARK_NOTIFIED;
    }
    for (int i = 0; i < BLZ_PARK_YIELDS; i++) {
        /* Acquire pairs with the acq_rel exchange in unpark_worker. */
        if (blz__load(&w->park_state, ACQUIRE) == BLZ_PARK_NOTIFIED) {
            w->idle_yields = 0;
            return true;
        }
        blz__sys_yield();
    }
    bool notified = blz__load(&w->park_state, ACQUIRE) == BLZ_PARK_NOTIFIED;
    bool gave_way = blz_now() - since > BLZ_YIELDS_GAVE_WAY_NS;
    w->idle_yields = notified || gave_way ? 0 : idle + 1;
    return notified;
}

/* No task waits in any queue. A worker that has just fired timers in the
 * driver still has its idle bit set until it is back from its park, with
 * what it fired in its own queue: idle bits alone would let another worker
 * jump the clock past a deadline whose task has not run yet. */
static bool
nothing_queued(blz_runtime *rt)
{
    if (blz__load(&rt->inject_len, SEQ_CST)) {
        return false;
    }
    for (unsigned i = 0; i < rt->nworkers; i++) {
        blz__worker *v = &rt->workers[i];
        if (blz__local_queue_len(&v->queue) || blz__load(&v->lifo, RELAXED) ||
            blz__load(&v->defer_top, RELAXED)) {
            return false;
        }
    }
    return true;
}

/* A paused clock that jumps to the next timer once every worker is idle and
 * no task waits (not a manual one, which only blz_runtime_advance moves). */
static bool
auto_advance(blz_runtime *rt)
{
    return blz__timers_paused(&rt->timers) && !rt->cfg.manual_clock && all_idle(rt) &&
           nothing_queued(rt);
}

/* How long the driver holder may sleep: until the next timer (never, on a
 * paused clock, where only a wake moves time; at once when every worker is
 * idle, after jumping the clock to that timer), and at most recheck_ns when
 * that is not negative. -1: until woken. */
static int64_t
driver_timeout(blz_runtime *rt, int64_t recheck_ns)
{
    int64_t timeout = -1;
    blz_instant next = blz__timers_next(&rt->timers);
    if (next != UINT64_MAX) {
        /* Before auto_advance looks at the queues: see blz__timers_quiet. */
        uint64_t quiet = blz__timers_quiet(&rt->timers);
        if (auto_advance(rt)) {
            /* Virtual time with nothing else to do: jump to the next timer. Not while
             * a fire from outside (blz_runtime_advance) has woken tasks that may not
             * be queued yet: it wakes the driver once they are. */
            if (blz__timers_advance_to_next_if_quiet(&rt->timers, quiet) >= 0) {
                timeout = 0;
            }
        } else {
            blz_instant now = blz__timers_now(&rt->timers);
            timeout = next > now ? (int64_t) (next - now) : 0;
            if (blz__timers_paused(&rt->timers) && timeout > 0) {
                /* Virtual clock: only a wake moves us. Not when something is due
                 * already (a sleep reset into the past, or registered while an
                 * advance went by): the wake its register made may have found no
                 * one watching the timers (rings per worker), so fire it now. */
                timeout = -1;
            }
        }
    }
    if (recheck_ns >= 0 && (timeout < 0 || timeout > recheck_ns)) {
        timeout = recheck_ns;
    }
    return timeout;
}

/* The workers taking part other than w (idle_mask's bits). */
static uint64_t
other_active(const blz__worker *w)
{
    return blz__load(&w->rt->active_mask, SEQ_CST) & ~((uint64_t) 1 << w->index);
}

/* True when a worker other than w is awake (not parked). */
static bool
others_awake(blz__worker *w)
{
    uint64_t others = other_active(w);
    return (blz__load(&w->rt->idle_mask, SEQ_CST) & others) != others;
}

/* Sleeps in the driver until unparked, or for at most recheck_ns when that
 * is not negative: in its own ring (rings per worker), or in the one driver
 * as its holder. The worker that watches the timers (`timers`) sleeps
 * towards the next deadline and fires what is due; it also wakes every
 * BLZ_RESCUE_NS while another worker is awake, to rescue what a stuck one
 * strands (rt/rescue.h). */
static void
sleep_in_driver(blz__worker *w, bool timers, int64_t recheck_ns)
{
    blz_runtime *rt = w->rt;
    driver_begin(w);
    uint32_t st = BLZ_PARK_EMPTY;
    if (blz__cas(&w->park_state, &st, BLZ_PARK_DRIVER, ACQ_REL, ACQUIRE)) {
        int64_t timeout = recheck_ns;
        if (timers) {
            if (rt->rescue_on && (recheck_ns < 0 || recheck_ns > (int64_t) BLZ_RESCUE_NS)) {
                /* Say so, then look at the idle set: a worker that leaves it
                 * from now on sees this and wakes us (rescuer_look). An
                 * exchange, not a seq_cst store: the same instruction on
                 * x86, and qemu-user lets a store-release pass a later
                 * load-acquire, which would break this pairing. */
                (void) blz__exchange(&rt->rescuer_blind, w->index + 1, SEQ_CST);
                if (others_awake(w)) {
                    /* A worker stuck in a poll may strand tasks: look now and then. */
                    blz__store(&rt->rescuer_blind, 0, RELAXED);
                    recheck_ns = (int64_t) BLZ_RESCUE_NS;
                }
            }
            timeout = driver_timeout(rt, recheck_ns);
        } else if (auto_advance(rt)) {
            blz__rt_wake_driver(rt); /* the last busy worker: see sleep_on_futex */
        }
        (void) blz__io_driver_park(rt->io, timeout);
    }
    if (timers) {
        blz__store(&rt->rescuer_blind, 0, RELAXED);
        (void) blz__timers_fire(&rt->timers);
    }
    driver_done(w);
    if (timers) {
        give_up_timers(w);
    }
}

/* Sleeps on the futex until unparked, or for at most recheck_ns when that
 * is not negative (one driver, held by another worker). */
static void
sleep_on_futex(blz__worker *w, int64_t recheck_ns)
{
    blz_runtime *rt = w->rt;
    uint32_t st = BLZ_PARK_EMPTY;
    if (!blz__cas(&w->park_state, &st, BLZ_PARK_SLEEPING, ACQ_REL, ACQUIRE)) {
        return;
    }
    if (auto_advance(rt)) {
        /* We were the last busy worker: the driver holder, asleep without a
         * timeout on the virtual clock, must now jump it to the next timer. */
        blz__rt_wake_driver(rt);
    }
    blz_instant deadline = recheck_ns >= 0 ? blz_now() + (blz_instant) recheck_ns : UINT64_MAX;
    while (blz__load(&w->park_state, ACQUIRE) == BLZ_PARK_SLEEPING) {
        blz__futex_wait(&w->park_state, BLZ_PARK_SLEEPING, deadline);
        uint32_t sleeping = BLZ_PARK_SLEEPING;
        if (deadline != UINT64_MAX && blz_now() >= deadline &&
            blz__cas(&w->park_state, &sleeping, BLZ_PARK_EMPTY, ACQ_REL, ACQUIRE)) {
            break; /* time to look again; an unpark from now on lands in EMPTY */
        }
    }
}

/* Sleeps until unparked, or for at most recheck_ns when that is not
 * negative: in the driver when it takes the timers' watch (driver_held) or
 * has a ring of its own, on the futex otherwise. */
static void
sleep_until_unparked(blz__worker *w, int64_t recheck_ns)
{
    blz_runtime *rt = w->rt;
    blz__counter_inc(&w->parks);
    /* It takes the watch, to hand it back after (give_up_timers), or
     * another holds it. */
    w->unwatched = false;
    uint32_t expect = 0;
    /* Acquire: a deadline stored before blz__rt_wake_driver's look at
     * driver_held is seen by driver_timeout. seq_cst, success or not: after
     * the idle bit park set, it pairs with unwatched_put's look at
     * driver_held, then at the idle set (the same instruction as acq_rel on
     * x86 and arm64). */
    bool timers = blz__cas(&rt->driver_held, &expect, w->index + 1, SEQ_CST, SEQ_CST);
    if (timers || rt->io_rings > 1) {
        sleep_in_driver(w, timers, recheck_ns);
    } else {
        sleep_on_futex(w, recheck_ns);
    }
}

/* True when every other worker taking part is awake and has stayed in one
 * poll for BLZ_RESCUE_NS: what a spare worker joins in for. */
static bool
others_stuck(blz__worker *w)
{
    blz_runtime *rt = w->rt;
    uint64_t others = other_active(w);
    if (!others) {
        return false;
    }
    for (; others; others &= others - 1) {
        blz__worker *v = &rt->workers[__builtin_ctzll(others)];
        if (!blz__worker_awake(v) || !blz__worker_stuck(v)) {
            return false;
        }
    }
    return true;
}

/*
 * A spare worker out of play: out of active_mask (so not counted by all_idle
 * and never picked by notify_parked: its idle bit stays clear), not awake,
 * its queues empty (it gets here from park). It looks every BLZ_RESCUE_NS
 * while a worker is awake (ten times that otherwise) and joins in once
 * every other worker taking part is stuck, or leaves at shutdown.
 */
static void
spare_dormant(blz__worker *w)
{
    blz_runtime *rt = w->rt;
    uint64_t bit = (uint64_t) 1 << w->index;
    (void) blz__fetch_and(&rt->active_mask, ~bit, SEQ_CST);
    awake_end(w);
    uint32_t st = BLZ_PARK_EMPTY;
    if (blz__cas(&w->park_state, &st, BLZ_PARK_DORMANT, ACQ_REL, ACQUIRE)) {
        while (!blz__load(&rt->shutdown, ACQUIRE)) {
            blz_duration wait = others_awake(w) ? BLZ_RESCUE_NS : 10 * BLZ_RESCUE_NS;
            blz__futex_wait(&w->park_state, BLZ_PARK_DORMANT, blz_now() + wait);
            /* Anything else than DORMANT is the shutdown's unpark. */
            if (blz__load(&w->park_state, ACQUIRE) != BLZ_PARK_DORMANT || others_stuck(w)) {
                break;
            }
        }
    }
    (void) blz__exchange(&w->park_state, BLZ_PARK_EMPTY, ACQ_REL);
    (void) blz__fetch_or(&rt->active_mask, bit, SEQ_CST);
    if (!blz__load(&rt->shutdown, ACQUIRE)) {
        blz__counter_inc(&w->activations);
    }
    awake_begin(w);
}

/* w left the idle set and is about to run its first task since. If the
 * timers' watcher went to sleep without a limit because every other worker
 * slept, it must look again: w may get stuck in that poll with tasks
 * stranded behind it, and only a sleeper that wakes now and then rescues
 * them (sleep_in_driver). w's seq_cst clearing of its idle bit, then this
 * load, pair with the watcher's exchange, then its look at the idle set:
 * one of the two sees the other. The watcher is woken as notify_parked
 * wakes a worker, counted as searching, and before end_searching: the wake
 * that w's search makes when it ends is then this one, not one more; and a
 * worker woken for nothing wakes nobody. */
static void
rescuer_look(blz__worker *w)
{
    blz_runtime *rt = w->rt;
    if (BLZ_LIKELY(blz__load(&rt->rescuer_blind, SEQ_CST) == 0)) {
        return;
    }
    uint32_t watcher = blz__exchange(&rt->rescuer_blind, 0, ACQ_REL);
    if (!watcher) {
        return;
    }
    uint64_t bit = (uint64_t) 1 << (watcher - 1);
    blz__fetch_add(&rt->num_searching, 1, SEQ_CST);
    if (blz__fetch_and(&rt->idle_mask, ~bit, SEQ_CST) & bit) {
        unpark_worker(&rt->workers[watcher - 1]);
    } else {
        /* Already woken, or awake: it looks again before it sleeps. */
        blz__unclaim_searcher(rt);
    }
}

static void
park(blz__worker *w)
{
    blz_runtime *rt = w->rt;
    uint64_t bit = (uint64_t) 1 << w->index;
    bool last_searcher = false;
    if (w->searching) {
        w->searching = false;
        last_searcher = give_back_search(rt);
    }
    if (BLZ_UNLIKELY(w->spare) && !others_stuck(w)) {
        /* A notifier that saw our search count woke nobody for its task,
         * and a dormant spare never looks at the queues (nor is it ever
         * woken for them): with the other workers asleep the task would
         * wait for good. So the last searcher looks again before it goes
         * (see give_back_search); a task pushed before the notifier's look
         * at the count is visible after our decrement. A worker that stays
         * in play looks below, after it set its idle bit. */
        if (!last_searcher || visible_work(w) != QUEUES_WORK) {
            spare_dormant(w); /* nothing left to stand in for */
        }
        return;
    }
    blz__fetch_or(&rt->idle_mask, bit, SEQ_CST);
    int queues = visible_work(w);
    if (queues == QUEUES_WORK || blz__load(&rt->shutdown, SEQ_CST)) {
        uint64_t prev = blz__fetch_and(&rt->idle_mask, ~bit, SEQ_CST);
        if (!(prev & bit)) {
            /* A notifier claimed us meanwhile and counted us as searching: accept it.
             * Its unpark may still land; the next park then just loops once. */
            w->searching = true;
        }
        w->left_idle = true;
        return;
    }
    /* Only short queues left to their owners: each owner is awake, but it may
     * be in a long poll (a task that spins until those very tasks have run
     * elsewhere), and a notifier that saw this worker searching woke nobody
     * for them. So sleep at most BLZ_RECHECK_NS and look again: an owner
     * still in the same poll has not moved its head, and is stolen from. */
    if (!yield_for_unpark(w, awake_end(w))) {
        int64_t recheck = queues == QUEUES_SHORT ? BLZ_RECHECK_NS : -1;
        if (BLZ_UNLIKELY(w->spare) && recheck < 0) {
            recheck = (int64_t) BLZ_RESCUE_NS; /* look again whether it is still needed */
        }
        sleep_until_unparked(w, recheck);
    }
    awake_begin(w);
    (void) blz__exchange(&w->park_state, BLZ_PARK_EMPTY, ACQ_REL);
    /* Leave the idle set. If the bit was already clear, a notifier claimed us and
     * counted us as searching; otherwise I/O or a timer woke us. */
    uint64_t prev = blz__fetch_and(&rt->idle_mask, ~bit, SEQ_CST);
    if (!(prev & bit)) {
        w->searching = true;
    }
    w->left_idle = true;
}

void
blz__worker_run(blz__worker *w, bool (*done)(void *), void *ctx)
{
    blz_runtime *rt = w->rt;
    unsigned lifo_streak = 0;
    blz__store(&w->tid, blz__sys_gettid(), RELAXED);
    /* The stall watchdog takes a stalled worker's backtrace in a signal
     * handler: on a stack of its own, since a fiber's may be nearly full. */
    stack_t old_alt;
    size_t alt_size = 0;
    void *alt = rt->cfg.stall_threshold && rt->cfg.stall_signal
                    ? blz__sys_altstack_push(&alt_size, &old_alt)
                    : NULL;
    blz__store(&w->active, true, RELAXED); /* for the stall watchdog */
    awake_begin(w);
    if (w->spare) {
        spare_dormant(w); /* until every worker is stuck */
    }
    while (!blz__load(&rt->shutdown, ACQUIRE)) {
        if (done && done(ctx)) {
            break;
        }
        w->tick++;
        blz__task *t = NULL;
        if (w->tick % BLZ_GLOBAL_INTERVAL == 0) {
            defer_release(w); /* deferred tasks wait at most one interval */
            batch_end(w, blz_now());
            maintenance(w);
            w->batch_start = blz_now(); /* the driver's turn is not a task run */
            t = inject_pop(rt, w);
        }
        if (!t) {
            t = next_local(w, &lifo_streak);
        }
        if (!t) {
            t = steal_work(w);
        }
        /* What the last task or the driver spilled goes out before this
         * worker runs another task or parks. */
        spill_flush(w);
        if (t) {
            if (BLZ_UNLIKELY(w->left_idle)) {
                w->left_idle = false;
                rescuer_look(w);
            }
            end_searching(w);
            blz__counter_inc(&w->polls);
            /* One call site for the run, so that it stays inlined here
             * (a second one, for timed runs, cost `yield` 10 ns). */
            blz_instant start = BLZ_UNLIKELY(w->observe_polls) ? observe_before(w, t) : 0;
            blz__task_run(t);
            if (BLZ_UNLIKELY(start)) {
                observe_after(w, start);
            }
            continue;
        }
        park(w);
    }
    defer_release(w);
    spill_flush(w); /* whoever drains the queues at shutdown must see them */
    awake_end(w);
    blz__store(&w->active, false, RELAXED);
    blz__sys_altstack_pop(alt, alt_size, &old_alt);
}

void *
blz__worker_thread_main(void *arg)
{
    blz__worker *w = arg;
    char name[16];
    (void) snprintf(name, sizeof name, "blz-worker-%u", w->index);
    blz__sys_set_thread_name(name);
    blz_thread_info info = {BLZ_THREAD_WORKER, w->index};
    blz__rt_thread_hook(w->rt, w->rt->cfg.on_thread_start, &info);
    blz__rt_set_thread(w->rt, w);
    if (w->rt->io_owners) {
        blz__io_driver_own(w->rt->io, w->index);
    }
    blz__worker_run(w, NULL, NULL);
    if (w->rt->io_owners) {
        blz__io_driver_disown(w->rt->io, w->index);
    }
    blz__rt_set_thread(NULL, NULL);
    blz__rt_thread_hook(w->rt, w->rt->cfg.on_thread_stop, &info);
    return NULL;
}
