/*
 * Internal: the process-wide signal state shared by the files of src/signal.
 *
 *   handler.c   the signal handler, the self-pipe, installing and restoring
 *               dispositions (the only code that runs in signal context)
 *   watch.c     one watcher task per runtime with listeners: it waits for the
 *               self-pipe through the runtime's readiness registry, drains it
 *               and wakes every receiver whose signal was delivered
 *   listener.c  the public API: listen, unlisten, the three receive tiers
 *
 * Locking. sig_mutex (handler.c's pthread mutex, taken by blz__sig_lock;
 * never held across a suspension) serialises listen and unlisten: it
 * protects every slot's `listeners` and `prev`, the pipe's creation and
 * teardown, and the table of watches. Each slot's spinlock protects its
 * waiter list and the linked waiters' fields; nobody wakes a waker or takes
 * the mutex while holding a slot lock.
 */
#ifndef BLZ_SIGNAL_INT_H
#define BLZ_SIGNAL_INT_H

#include "blitzio/signal.h"
#include "core/atomic.h"
#include "core/list.h"
#include "core/spinlock.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

/* The handler bumps an int-sized counter; it must be a plain lock-free instruction. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the signal handler needs lock-free int atomics");
_Static_assert(BLZ_SIGNAL_MAX <= NSIG, "every slot is a real signal number");

/* Everything blitzio knows about one signal number. */
typedef struct blz__sig_slot {
    /* Deliveries of the signal since the process started. Bumped by the
     * handler (seq_cst, before it writes the pipe byte); read by receivers and
     * by the dispatcher. Wraps; only differences are meaningful. */
    _Atomic unsigned count;
    /* 1 while blitzio's handler is installed for the signal. Written under
     * sig_mutex; read (relaxed) by the dispatcher to skip idle slots. */
    _Atomic uint32_t active;
    /* Protects `waiters` and the state_/waker_ of every waiter linked in it. */
    blz__spinlock lock;
    /* Listeners of the signal, all runtimes (under sig_mutex). */
    unsigned listeners;
    /* Receive futures waiting for a delivery, FIFO. A linked waiter's state_
     * holds the count its listener had seen when it linked. */
    blz__waitlist waiters;
    /* The disposition before the first listener came (under sig_mutex). */
    struct sigaction prev;
} blz__sig_slot;

/* Indexed by signal number; entry 0 is unused. */
extern blz__sig_slot blz__sig_slots[BLZ_SIGNAL_MAX];

void blz__sig_lock(void);
void blz__sig_unlock(void);

/* ---- handler.c (callers hold sig_mutex) ----------------------------------- */

/* Creates the self-pipe when no signal is installed yet. 0 or -errno. */
int blz__sig_pipe_acquire(void);

/* Closes the self-pipe once no handler can still write to it (call when no
 * signal is installed any more). */
void blz__sig_pipe_release(void);

/* The read end of the self-pipe, or -1. */
int blz__sig_pipe_read_fd(void);

/* Installs blitzio's handler for `signo`, saving the old disposition. 0 or -errno. */
int blz__sig_install(int signo);

/* Puts back the disposition saved by blz__sig_install. */
void blz__sig_restore(int signo);

/* ---- watch.c --------------------------------------------------------------- */

/* Under sig_mutex: counts one more listener for the calling thread's
 * runtime `rt`, starting its watcher task if it has none. Stores the watch id
 * in `*id`. 0, or -errno (nothing changed). */
int blz__sig_watch_acquire(blz_runtime *rt, uint64_t *id);

/* Under sig_mutex: counts one listener less on watch `id`; the last one
 * stops the watcher task. Unknown ids are ignored. */
void blz__sig_watch_release(uint64_t id);

/* Wakes every linked receiver whose signal was delivered since it linked.
 * Any thread; takes slot locks only. */
void blz__sig_dispatch(void);

#endif
