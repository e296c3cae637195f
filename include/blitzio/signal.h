/*
 * blitzio/signal.h — waiting for Unix signals (SIGINT, SIGTERM, SIGHUP, SIGUSR1,
 * SIGCHLD...) as asynchronous streams.
 *
 * Model. A listener is a caller-owned struct bound to one signal number. Every
 * listener of a signal sees every delivery of it: blz_signal_recv() completes
 * once the signal was delivered since the listener last received, and returns
 * how many deliveries that was (at least 1). Deliveries the kernel coalesced
 * while the signal was pending count once, as they do for any handler.
 * Several listeners per signal, in several tasks and several runtimes, are fine.
 *
 * Process-wide. The first listener of a signal installs one process-wide
 * handler (sigaction, SA_RESTART | SA_ONSTACK), so a signal sent to the
 * process is caught whichever thread the kernel delivers it to; nobody needs
 * to block it anywhere. The handler only bumps a counter and writes a byte to
 * a self-pipe (both async-signal-safe); a task of each runtime that has
 * listeners drains the pipe and wakes the waiting receivers. The last listener
 * of a signal to go restores the disposition that was in place before the
 * first one came (SIG_DFL, SIG_IGN or a handler of the program's own). While
 * a signal has listeners blitzio owns its disposition: do not call sigaction
 * or signal() for it meanwhile, and expect no chaining to an earlier handler.
 *
 * Not every signal may be listened to: SIGKILL and SIGSTOP cannot be caught,
 * and SIGSEGV, SIGBUS, SIGFPE and SIGILL are refused because a handler that
 * returns from a real fault would re-execute the faulting instruction forever.
 *
 * Tiers (DESIGN.md section 3): blz_signal_try_recv never waits (-EAGAIN),
 * blz_signal_recv_fut fills a caller-owned future, blz_signal_recv awaits it.
 *
 * Lifetime. A listener is created inside a runtime (a task or blocking job of
 * it) and is used by its owner only (one receive at a time), from any thread.
 * It must be unlistened before its runtime is freed, and a pending receive
 * future must be completed or dropped (blz_future_drop) before unlisten.
 * A listener holds no resource beyond what unlisten releases; it may be
 * copied only while no receive future refers to it.
 */
#ifndef BLZ_SIGNAL_H
#define BLZ_SIGNAL_H

#include "blitzio/common.h"
#include "blitzio/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Signal numbers accepted by blz_signal_listen are 1 .. BLZ_SIGNAL_MAX - 1 (Linux: 64). */
#define BLZ_SIGNAL_MAX 65

/**
 * A subscription to one signal. Caller-owned; every field is private. Fill it
 * with blz_signal_listen() and release it with blz_signal_unlisten().
 */
typedef struct blz_signal_listener {
    int signo_;      /* the signal listened to; 0 when not listening */
    unsigned seen_;  /* the signal's delivery count when this listener last received */
    uint64_t watch_; /* id of the runtime watch this listener keeps alive */
} blz_signal_listener;

/**
 * Starts listening for `signo` (SIGINT, SIGUSR1, SIGCHLD...). Deliveries that
 * happen after this call returns are reported by the receive calls; earlier
 * ones are not. The first listener of a signal in the process installs its
 * handler; the first listener inside a runtime starts that runtime's watcher
 * task. `l` must not be listening already (its previous contents are ignored).
 *
 * @return 0;
 *         -EINVAL: `l` NULL, `signo` out of range, or SIGKILL, SIGSTOP,
 *                  SIGSEGV, SIGBUS, SIGFPE, SIGILL, or a signal the C library
 *                  reserves for itself (sigaction refuses it);
 *         -EBUSY: a runtime's stall watchdog takes backtraces with `signo`
 *                  (its `stall_signal`, SIGURG by default; once installed
 *                  that handler stays for the life of the process);
 *         -ESRCH: not called inside a runtime (a task or blocking job of one);
 *         -ESHUTDOWN: the runtime is being freed and has no watcher left to
 *                  serve a new listener;
 *         -EMFILE, -ENFILE, -ENOMEM: no descriptor or memory for the self-pipe
 *                  or the watcher; nothing was changed.
 * Thread affinity: inside a runtime. Never suspends (takes a process-wide lock
 * for a few microseconds).
 */
BLZ_API int blz_signal_listen(blz_signal_listener *l, int signo);

/**
 * Stops listening. The last listener of the signal restores the disposition
 * it had before the first listener came; the last listener of any signal
 * closes the self-pipe. No receive future of `l` may be pending (drop it
 * first). Afterwards `l` is not listening; receiving on it gives -EINVAL.
 * NULL or a listener that is not listening is ignored. A listener is one
 * subscription: unlisten it through one copy, once; unlistening a second
 * copy of it after the first is undefined (it may end another listener's
 * subscription to the same signal).
 * Thread affinity: any thread, while the listener's runtime is alive. Never suspends.
 */
BLZ_API void blz_signal_unlisten(blz_signal_listener *l);

/** The signal `l` listens to, or 0 (NULL or not listening). Any thread; never waits. */
BLZ_API int blz_signal_listener_signo(const blz_signal_listener *l);

/**
 * Receives without waiting: the number of deliveries since the last receive
 * (>= 1, saturating at INT_MAX), which marks them received.
 * @return that count; -EAGAIN when there was none; -EINVAL when `l` is NULL
 *         or not listening.
 * Thread affinity: the owner, any thread. Never waits.
 */
BLZ_API int blz_signal_try_recv(blz_signal_listener *l);

/**
 * The receive future. Fields ending in `_` are private. Once polled and while
 * pending, its waiter is linked into a process-wide list: it must not move or
 * be freed before it completes or is passed to blz_future_drop().
 */
typedef struct blz_signal_recv_future {
    blz_future base;
    blz_signal_listener *listener_; /* the listener, or NULL (the poll reports -EINVAL) */
    blz_waiter waiter_;             /* linked in the signal's waiter list while pending */
} blz_signal_recv_future;

/**
 * Fills `f` to receive on `l`: it completes with the delivery count (as
 * blz_signal_try_recv) once the signal was delivered since the last receive,
 * or with -EINVAL when `l` is NULL or not listening. Dropping it while
 * pending receives nothing (the deliveries stay for the next receive).
 * NULL `f` is ignored. Thread affinity: the owner; never suspends.
 */
BLZ_API void blz_signal_recv_fut(blz_signal_listener *l, blz_signal_recv_future *f);

/**
 * Waits for the next delivery of the listener's signal (or returns at once if
 * one happened since the last receive).
 * @return the number of deliveries since the last receive (>= 1);
 *         -EINVAL (`l` NULL or not listening); -ECANCELED (the calling task
 *         was aborted; nothing was received); -EDEADLK inside a stackless
 *         poll (use blz_signal_recv_fut there).
 * Thread affinity: the owner. Suspends the calling fiber; parks a thread
 * outside any runtime.
 */
BLZ_API int blz_signal_recv(blz_signal_listener *l);

#ifdef __cplusplus
}
#endif
#endif /* BLZ_SIGNAL_H */
