/*
 * Shutdown by signal: the task behind blz_shutdown_on_signals.
 *
 * One stackless task per coordinator owns up to BLZ_SHUTDOWN_MAX_SIGNALS
 * listeners (inside its own future, so they live as long as the task) and
 * waits for whichever comes first: a delivery of one of the signals, or the
 * coordinator's trigger (a call). Then it stops listening and ends.
 *
 * Invariants:
 * - The listeners are created by on_signals on its stack and copied into the
 *   task cell by the spawn; the receive futures, which point at them, are
 *   filled only at the first poll, once the listeners are at their final
 *   address.
 * - The task's last access to the coordinator is the trigger (signal case)
 *   or the poll that saw it triggered (call case); its cancel future is
 *   unlinked from sd->token_ before it triggers. Even so, a waiter woken by
 *   the trigger could free `sd` while the trigger is still running, which is
 *   why blz_shutdown_deinit joins the task before `sd` may go, even when the
 *   caller's own task was aborted (a shielded wait).
 * - sd->signals_ (the join handle) is written by on_signals and consumed by
 *   deinit, both by the coordinator's owner.
 */
#include "blitzio/shutdown.h"
#include "blitzio/signal.h"
#include "blitzio/task.h"
#include "rt/current.h"

#include <signal.h>

void blz__shutdown_trigger_signal(blz_shutdown *sd, int signo);

typedef struct sig_task {
    blz_future base;
    blz_shutdown *sd;                                      /* the coordinator */
    size_t n;                                              /* listeners in use */
    int started;                                           /* futures filled */
    blz_signal_listener lis[BLZ_SHUTDOWN_MAX_SIGNALS];     /* listening from on_signals on */
    blz_signal_recv_future recv[BLZ_SHUTDOWN_MAX_SIGNALS]; /* one receive per listener */
    blz_cancel_future triggered;                           /* sd->token_ cancelled */
} sig_task;

static void
sig_task_stop(sig_task *t)
{
    if (t->started) {
        for (size_t i = 0; i < t->n; i++) {
            blz_future_drop(&t->recv[i].base);
        }
        blz_future_drop(&t->triggered.base);
        t->started = 0;
    }
    for (size_t i = 0; i < t->n; i++) {
        blz_signal_unlisten(&t->lis[i]);
    }
    t->n = 0;
}

static blz_poll
sig_task_poll(blz_future *base, blz_context *cx)
{
    sig_task *t = (sig_task *) base;
    if (t->n == 0) {
        return BLZ_READY;
    }
    if (!t->started) {
        for (size_t i = 0; i < t->n; i++) {
            blz_signal_recv_fut(&t->lis[i], &t->recv[i]);
        }
        blz_cancel_token_wait_fut(&t->sd->token_, &t->triggered);
        t->started = 1;
    }
    for (size_t i = 0; i < t->n; i++) {
        if (blz_future_poll(&t->recv[i].base, cx) == BLZ_READY && t->recv[i].base.result > 0) {
            int signo = blz_signal_listener_signo(&t->lis[i]);
            blz_shutdown *sd = t->sd;
            /* Unlink from sd first: the trigger is our last touch of sd. Keep
             * listening until it is done, so a second signal cannot slip in
             * under the default disposition before the shutdown started. */
            blz_future_drop(&t->triggered.base);
            blz__shutdown_trigger_signal(sd, signo);
            sig_task_stop(t);
            base->result = signo;
            return BLZ_READY;
        }
    }
    if (blz_future_poll(&t->triggered.base, cx) == BLZ_READY) {
        sig_task_stop(t); /* triggered by a call */
        base->result = 0;
        return BLZ_READY;
    }
    return BLZ_PENDING;
}

static void
sig_task_drop(blz_future *base)
{
    sig_task_stop((sig_task *) base);
}

static const blz_future_vtable sig_task_vtable = {sig_task_poll, sig_task_drop};

int
blz_shutdown_on_signals(blz_shutdown *sd, const int *signals, size_t n)
{
    static const int defaults[] = {SIGINT, SIGTERM};
    if (!sd || n > BLZ_SHUTDOWN_MAX_SIGNALS || (n > 0 && !signals)) {
        return -EINVAL;
    }
    if (n == 0) {
        signals = defaults;
        n = sizeof defaults / sizeof defaults[0];
    }
    if (sd->signals_) {
        return -EBUSY;
    }
    sig_task t;
    blz_future_init(&t.base, &sig_task_vtable);
    t.sd = sd;
    t.n = 0;
    t.started = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = blz_signal_listen(&t.lis[i], signals[i]);
        if (rc < 0) {
            sig_task_stop(&t);
            return rc;
        }
        t.n = i + 1;
    }
    int rc = blz_spawn_future(&t.base, sizeof t, &sd->signals_);
    if (rc < 0) {
        sd->signals_ = NULL;
        sig_task_stop(&t); /* the task never ran: the listeners are still ours */
        return rc;
    }
    return 0;
}

int
blz_shutdown_deinit(blz_shutdown *sd)
{
    if (!sd) {
        return -EINVAL;
    }
    blz_join *j = sd->signals_;
    if (!j) {
        return 0;
    }
    if (blz__await_refused()) {
        return -EDEADLK; /* before the abort: nothing done, the task still listens */
    }
    blz_join_abort(j); /* no-op if it already ended */
    /* Wait even when the caller was aborted itself (the usual way to reach
     * this): the task touches sd until it has ended, and sd may go as soon
     * as we return. Its result (our own abort's -ECANCELED) says nothing. */
    blz_join_future f;
    blz_join_wait_fut(j, &f);
    (void) blz__await_shielded(&f.base);
    sd->signals_ = NULL;
    return 0;
}
