/*
 * examples/combinators.c — waiting for several things at once, and checking
 * that each combinator did what its header promises.
 *
 *   1. fan-out / fan-in: eight fibers each sum the squares of a slice of
 *      0..999, blz_join_all collects the parts;
 *   2. fail fast: three stackless "shard" futures under
 *      blz_try_join_all_futures; one fails with -EIO, the error comes back and
 *      the slow shard still waiting is dropped without finishing;
 *   3. speculative execution: the same request goes to three replica fibers
 *      answering after 10 s, 5 ms and 20 s; blz_race returns the fast one and
 *      aborts (then joins) the other two before they answer;
 *   4. select without losing values: a channel receive raced against a timer
 *      with blz_select_futures. The timer wins; values sent while the losing
 *      receive is still pending are not handed to it, and after it is dropped
 *      the next receive gets them, in order.
 *
 * Each section prints one line to stdout, "[N] ...", and checks its own
 * results; the program prints "combinators: OK" and exits 0 when all four
 * behaved as documented, or names what went wrong on stderr and exits 1.
 * No section depends on timing for its outcome but the race, whose fast
 * replica is ten seconds ahead of the next one. It runs in a few tens of ms.
 *
 *   build/examples/combinators        (no arguments; BLZ_BACKEND=epoll|io_uring to choose)
 *
 * Why section 2 uses futures: a task's join status says only whether it ran
 * to completion (0) or was cancelled (-ECANCELED); what a task returns,
 * error code or not, is its value. So blz_try_join_all over join handles
 * stops early when a task is aborted, while errors the work itself produces
 * are future results, and blz_try_join_all_futures is the fail-fast over them.
 */
#include "blitzio.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Prints why a section failed; the section then returns -1. */
#define FAIL(...)                               \
 do {                                           \
  fprintf(stderr, "combinators: " __VA_ARGS__); \
  fputc('\n', stderr);                          \
  return -1;                                    \
 } while (0)

/* ---- 1. fan-out / fan-in ------------------------------------------------------ */

enum { PARTS = 8, SLICE = 125 }; /* every part, and the total, fits a 32-bit intptr_t */

/* One part of the sum: k*k for k in [part*SLICE, (part+1)*SLICE). Straight-line
 * C that lets its neighbours run half way through. */
static void *
sum_squares(void *arg)
{
    int64_t part = (int64_t) (intptr_t) arg, sum = 0;
    for (int64_t k = part * SLICE; k < (part + 1) * SLICE; k++) {
        sum += k * k;
        if (k == part * SLICE + SLICE / 2) {
            blz_yield();
        }
    }
    return (void *) (intptr_t) sum;
}

static int
fan_out_fan_in(void)
{
    blz_join *joins[PARTS];
    void *parts[PARTS];
    for (int i = 0; i < PARTS; i++) {
        int rc = blz_spawn(sum_squares, (void *) (intptr_t) i, &joins[i]);
        if (rc < 0) {
            if (i > 0) {
                blz_join_all(joins, (size_t) i, NULL); /* they finish quickly: wait for them */
            }
            FAIL("fan-out: spawn: %s", blz_strerror(rc));
        }
    }
    int rc = blz_join_all(joins, PARTS, parts); /* consumes every handle */
    if (rc < 0) {
        FAIL("fan-out: join_all: %s", blz_strerror(rc));
    }
    int64_t total = 0;
    for (int i = 0; i < PARTS; i++) {
        total += (int64_t) (intptr_t) parts[i];
    }
    const int64_t n = (int64_t) PARTS * SLICE;
    const int64_t expected = (n - 1) * n * (2 * n - 1) / 6; /* sum of k*k for k < n */
    printf("[1] fan-out/fan-in: %d fibers joined, sum of squares below %lld = %lld\n", PARTS,
           (long long) n, (long long) total);
    if (total != expected) {
        FAIL("fan-out: sum %lld, expected %lld", (long long) total, (long long) expected);
    }
    return 0;
}

/* ---- 2. fail fast ----------------------------------------------------------------- */

/* A stackless fetch of one shard: takes `ms`, then completes with `outcome` (a
 * count of rows, or -errno). Its locals live in the struct, as stackless code's must. */
typedef struct shard_future {
    blz_future base;
    blz_sleep_future work; /* stands in for the I/O */
    int ms;
    int outcome;
    bool finished; /* set when the fetch completes */
    bool dropped;  /* set when it is abandoned while pending */
} shard_future;

static blz_poll
shard_poll(blz_future *self, blz_context *cx)
{
    shard_future *s = (shard_future *) self;
    BLZ_ASYNC_BEGIN(self);
    blz_sleep_fut(&s->work, blz_ms(s->ms));
    BLZ_AWAIT(self, cx, &s->work.base);
    s->finished = true;
    BLZ_ASYNC_RETURN(self, s->outcome);
    BLZ_ASYNC_END(self);
}

static void
shard_drop(blz_future *self)
{
    shard_future *s = (shard_future *) self;
    blz_future_drop(&s->work.base); /* unlinks its timer */
    s->dropped = true;
}

static const blz_future_vtable shard_vtable = {shard_poll, shard_drop};

static void
shard_init(shard_future *s, int ms, int outcome)
{
    blz_future_init(&s->base, &shard_vtable);
    s->ms = ms;
    s->outcome = outcome;
    s->finished = false;
    s->dropped = false;
}

static int
fail_fast(void)
{
    /* Index order decides ties: shard 0 is done before shard 1 fails even if both
     * timers fire in one tick, and shard 2 is dropped then even if its own timer
     * were due, since the combinator stops at the first error. */
    shard_future shards[3];
    shard_init(&shards[0], 2, 10);   /* quick, succeeds with 10 rows */
    shard_init(&shards[1], 5, -EIO); /* fails */
    shard_init(&shards[2], 500, 30); /* slow: would succeed, much later */
    blz_future *fs[3] = {&shards[0].base, &shards[1].base, &shards[2].base};
    int rc = blz_try_join_all_futures(fs, 3); /* awaits; stackless code would use _fut */
    printf("[2] fail fast: try_join_all -> %s; shard 0 finished with %d rows; slow shard 2 "
           "finished: %s, dropped: %s\n",
           blz_errname(rc), shards[0].base.result, shards[2].finished ? "yes" : "no",
           shards[2].dropped ? "yes" : "no");
    if (rc != -EIO) {
        FAIL("fail fast: try_join_all returned %d (%s), expected -EIO", rc, blz_errname(rc));
    }
    if (!shards[0].finished || shards[0].base.result != 10) {
        FAIL("fail fast: shard 0 should have finished with 10 rows");
    }
    if (shards[2].finished || !shards[2].dropped) {
        FAIL("fail fast: the slow shard should have been dropped before finishing");
    }
    return 0;
}

/* ---- 3. speculative execution --------------------------------------------------- */

enum { REPLICAS = 3, FAST = 1, REQUEST = 7 };

typedef struct replica {
    int id;
    int delay_ms;  /* how long this replica takes to answer */
    bool answered; /* written by the replica; read after it was joined */
} replica;

/* Serves REQUEST after the replica's delay. Aborted while it sleeps, blz_sleep
 * returns -ECANCELED and the replica gives up without answering. */
static void *
serve_request(void *arg)
{
    replica *r = arg;
    if (blz_sleep(blz_ms(r->delay_ms)) < 0) {
        return NULL;
    }
    r->answered = true;
    return (void *) (intptr_t) (REQUEST * REQUEST);
}

static int
speculative_race(void)
{
    /* The fast replica is not the first, so index order cannot fake the result;
     * the slow ones are far behind, so only a stall of ten seconds could. */
    replica reps[REPLICAS] = {{0, 10000, false}, {1, 5, false}, {2, 20000, false}};
    blz_join *joins[REPLICAS];
    for (int i = 0; i < REPLICAS; i++) {
        int rc = blz_spawn(serve_request, &reps[i], &joins[i]);
        if (rc < 0) {
            for (int k = 0; k < i; k++) {
                blz_join_abort(joins[k]);
            }
            if (i > 0) {
                blz_join_all(joins, (size_t) i, NULL);
            }
            FAIL("race: spawn: %s", blz_strerror(rc));
        }
    }
    void *answer = NULL;
    int winner = blz_race(joins, REPLICAS, &answer); /* aborts and joins the losers */
    if (winner < 0) {
        FAIL("race: %s", blz_strerror(winner));
    }
    int losers_answered = 0;
    for (int i = 0; i < REPLICAS; i++) {
        losers_answered += i != winner && reps[i].answered;
    }
    printf("[3] speculative race: replica %d (%d ms) won with answer %ld; losers that answered: "
           "%d of %d\n",
           winner, reps[winner].delay_ms, (long) (intptr_t) answer, losers_answered, REPLICAS - 1);
    if (winner != FAST) {
        FAIL("race: replica %d won, expected the fastest, replica %d", winner, FAST);
    }
    if ((intptr_t) answer != REQUEST * REQUEST || !reps[FAST].answered) {
        FAIL("race: wrong answer %ld", (long) (intptr_t) answer);
    }
    if (losers_answered != 0) {
        FAIL("race: %d losing replicas ran to completion instead of being aborted",
             losers_answered);
    }
    return 0;
}

/* ---- 4. select without losing values -------------------------------------------- */

typedef struct producer_args {
    blz_chan *ch;
    int first; /* sends first, then first + 1 */
} producer_args;

static void *
produce(void *arg)
{
    producer_args *p = arg;
    for (int v = p->first; v <= p->first + 1; v++) {
        int rc = blz_chan_send(p->ch, &v);
        if (rc < 0) {
            return (void *) (intptr_t) rc;
        }
    }
    return NULL;
}

/* Steps of the section, once the channel exists; `ch` is freed by the caller. */
static int
select_rounds(blz_chan *ch)
{
    int got = -1;
    blz_chan_recv_future recv;
    blz_sleep_future tick;
    blz_future *fs[2] = {&recv.base, &tick.base};

    /* Round 1: nothing has been sent, so the 10 ms timer wins. Select leaves
     * the losing receive pending: its waiter is still in the channel's queue. */
    blz_chan_recv_fut(ch, &got, &recv);
    blz_sleep_fut(&tick, blz_ms(10));
    int first = blz_select_futures(fs, 2);
    if (first != 1) {
        blz_future_drop(&recv.base);
        blz_future_drop(&tick.base);
        FAIL("select: round 1 returned %d, expected the timer (1)", first);
    }

    /* Another task sends 42 and 43 while that receive is still linked. A
     * runtime that handed the item to the waiter would lose it on the drop. */
    producer_args p = {ch, 42};
    blz_join *producer;
    int rc = blz_spawn(produce, &p, &producer);
    void *sent = NULL;
    if (rc == 0) {
        rc = blz_join_wait(producer, &sent);
    }
    blz_future_drop(&recv.base); /* abandon the loser: it consumes nothing */
    if (rc < 0 || sent != NULL) {
        FAIL("select: producer: %s", blz_strerror(rc < 0 ? rc : (int) (intptr_t) sent));
    }
    if (got != -1) {
        FAIL("select: the dropped receive wrote %d", got);
    }

    /* Round 2: the next receive gets 42 (index order: it is polled first). */
    blz_chan_recv_fut(ch, &got, &recv);
    blz_sleep_fut(&tick, blz_secs(1));
    int second = blz_select_futures(fs, 2);
    if (second != 0) {
        blz_future_drop(&recv.base);
    }
    blz_future_drop(&tick.base); /* the timer lost: unlink it */
    int next = -1;
    int rest = second == 0 ? blz_chan_try_recv(ch, &next) : -EAGAIN;
    int extra;
    int after = blz_chan_try_recv(ch, &extra);
    printf("[4] select without loss: round 1 won by the %s; the values sent after it were "
           "received next: %d then %d; channel then %s\n",
           first == 1 ? "timer" : "receive", got, next, after == -EAGAIN ? "empty" : "not empty");
    if (second != 0 || recv.base.result != 0 || got != 42) {
        FAIL("select: round 2 returned %d with %d, expected the receive (0) with 42", second, got);
    }
    if (rest != 0 || next != 43 || after != -EAGAIN) {
        FAIL("select: then received %d (%s), expected 43 and nothing more", next,
             blz_errname(rest));
    }
    return 0;
}

static int
select_without_loss(void)
{
    blz_chan ch;
    int rc = blz_chan_init(&ch, sizeof(int), 4);
    if (rc < 0) {
        FAIL("select: channel: %s", blz_strerror(rc));
    }
    rc = select_rounds(&ch); /* leaves no future pending on ch */
    blz_chan_deinit(&ch);
    return rc;
}

/* ---- main ------------------------------------------------------------------------- */

static void *
run_sections(void *arg)
{
    (void) arg;
    int (*const sections[])(void) = {fan_out_fan_in, fail_fast, speculative_race,
                                     select_without_loss};
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
        if (sections[i]() < 0) {
            return (void *) 0;
        }
        fflush(stdout);
    }
    return (void *) 1;
}

int
main(int argc, char **argv)
{
    (void) argv;
    if (argc != 1) {
        fprintf(stderr, "usage: combinators   (takes no arguments)\n");
        return 2;
    }
    blz_runtime *rt;
    int rc = blz_runtime_new(NULL, &rt);
    if (rc < 0) {
        fprintf(stderr, "combinators: runtime: %s\n", blz_strerror(rc));
        return 1;
    }
    printf("combinators: %u workers, backend %s\n", blz_runtime_workers(rt),
           blz_runtime_backend(rt));
    fflush(stdout);
    void *ok = NULL;
    rc = blz_runtime_block_on(rt, run_sections, NULL, &ok);
    blz_runtime_free(rt);
    if (rc < 0 || !ok) {
        fprintf(stderr, "combinators: FAILED%s%s\n", rc < 0 ? ": " : "",
                rc < 0 ? blz_strerror(rc) : "");
        return 1;
    }
    printf("combinators: OK\n");
    return 0;
}
