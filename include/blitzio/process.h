/*
 * blitzio/process.h — child processes: a command builder, spawning, waiting,
 * signalling, and the child's stdin/stdout/stderr as asynchronous pipes.
 *
 *     blz_command *cmd;
 *     blz_command_new("/bin/echo", &cmd);
 *     blz_command_arg(cmd, "hello");
 *     blz_output out;
 *     int code = blz_command_output(cmd, &out);   // suspends this task only
 *     // code == 0, out.out == "hello\n"
 *     blz_output_deinit(&out);
 *     blz_command_free(cmd);
 *
 * Tiers. Every operation that may wait has three spellings (DESIGN.md §3):
 * blz_X_try_Y never waits (-EAGAIN when it would), blz_X_Y_fut fills a
 * caller-owned future, blz_X_Y awaits it (suspends a fiber task; parks a
 * thread outside the runtime; -EDEADLK inside a stackless poll). A try
 * call answers from the readiness the I/O driver last saw (blitzio/io.h).
 *
 * Objects and lifetime.
 * - A blz_command is allocated by blz_command_new and owned by the caller,
 *   who frees it with blz_command_free. It is a recipe: spawning does not
 *   consume or change it, so one command may be spawned many times. Not
 *   thread-safe: one thread at a time builds and spawns it.
 * - A blz_child is allocated by a spawn and owned by the caller until
 *   blz_child_free. Freeing a child that was not waited for never leaves a
 *   zombie: a small background task of the runtime waits for it (see
 *   blz_child_free). Wait, try_wait and kill may be called from any thread,
 *   also concurrently; free a child once, before its runtime.
 * - A blz_pipe is one end of a pipe, registered with the runtime's I/O
 *   driver: to a child, new (blz_pipe_new), or adopted (blz_pipe_from_fd).
 *   The child owns its pipes until they are taken (blz_child_take_pipe) or
 *   the child is freed; the caller owns the others. A pipe is closed exactly
 *   once, with blz_pipe_close; operations waiting on it in other tasks then
 *   end with -ECANCELED.
 * - Children and pipes still alive when their runtime is freed dangle; free
 *   them first.
 *
 * Guarantees.
 * - Spawning uses posix_spawn (glibc runs it as clone(CLONE_VM|CLONE_VFORK)
 *   + exec: no copy of the parent's address space, whatever its size). The
 *   calling thread is held only for the kernel's clone and exec, as with a
 *   system call; nothing else blocks.
 * - Every descriptor blitzio creates is O_CLOEXEC, so the child receives
 *   exactly its three standard streams plus whatever descriptors the
 *   application itself left inheritable (blz_command_close_fds removes
 *   those too).
 * - The child starts with an empty signal mask and SIGPIPE at its default
 *   action, whatever the spawning thread blocks or the process ignores.
 * - Writes to a pipe never raise SIGPIPE in the parent: a write to a pipe
 *   whose reader is gone returns -EPIPE.
 * - A child is tracked by a pidfd (Linux 5.3+): waiting is readiness of that
 *   descriptor in the I/O driver, and kill cannot hit a recycled PID. Where
 *   pidfds are unavailable (older kernels, or the descriptor limit reached
 *   at spawn time) the child is tracked by its PID instead and waits poll
 *   waitid(WNOHANG) with a back-off from 1 ms to 50 ms.
 * - The application must not reap blitzio's children itself (waitpid(-1),
 *   SIGCHLD set to SIG_IGN or SA_NOCLDWAIT): a wait then fails with -ECHILD.
 *
 * Errors are -errno values: -ENOENT (no such program), -EACCES (not
 * executable), -ENOMEM, -EMFILE, -EINVAL (NULL or malformed input), -ESRCH
 * (no runtime, or signalling a child already reaped), -ECANCELED (the
 * operation was dropped, or its pipe closed meanwhile).
 */
#ifndef BLZ_PROCESS_H
#define BLZ_PROCESS_H

#include "blitzio/common.h"
#include "blitzio/future.h"
#include "blitzio/io.h"
#include "blitzio/stream.h"
#include "blitzio/time.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct blz_command blz_command;
typedef struct blz_child blz_child;
typedef struct blz_pipe blz_pipe;

/** What a child's standard stream is connected to. */
typedef enum blz_stdio {
    /** Not chosen: INHERIT for blz_command_spawn and blz_command_status; for
     *  blz_command_output, NUL for stdin and PIPED for stdout and stderr. */
    BLZ_STDIO_DEFAULT = 0,
    BLZ_STDIO_INHERIT = 1, /**< the parent's own descriptor 0, 1 or 2 */
    BLZ_STDIO_NULL = 2,    /**< /dev/null */
    BLZ_STDIO_PIPED = 3,   /**< a pipe whose other end the parent reads or writes (blz_pipe) */
    BLZ_STDIO_FD = 4,      /**< a descriptor of the parent's: set with blz_command_stdio_fd */
} blz_stdio;

/** Names a child's standard stream. */
typedef enum blz_stdio_stream {
    BLZ_STDIN = 0,
    BLZ_STDOUT = 1,
    BLZ_STDERR = 2,
} blz_stdio_stream;

/** How a child ended. */
typedef struct blz_exit_status {
    int code;         /**< exit code 0..255 when it exited, -1 when a signal ended it */
    int signal;       /**< the signal that ended it, 0 when it exited */
    bool core_dumped; /**< the signal produced a core dump */
} blz_exit_status;

/** The status as a shell's `$?` reads it: the exit code, or 128 + the signal. */
static inline int
blz_exit_status_code(const blz_exit_status *st)
{
    return st->signal ? 128 + st->signal : st->code;
}

/** True when the child exited with code 0. */
static inline bool
blz_exit_status_success(const blz_exit_status *st)
{
    return st->signal == 0 && st->code == 0;
}

/* ======================================================================== */
/* Command builder                                                            */
/* ======================================================================== */

/**
 * Creates a command that runs `program` with no arguments (argv[0] is
 * `program` itself), the parent's environment and working directory, and the
 * three standard streams at BLZ_STDIO_DEFAULT. A `program` without a '/' is
 * looked up in PATH (the PATH set with blz_command_env when there is one,
 * else the parent's), relative entries (an empty one is ".") in the child's
 * working directory, as the child's own execvp would; one with a '/' is used
 * as is, relative to the child's working directory (see blz_command_cwd).
 * The parent's environment is read at each spawn (environ): do not change it
 * (setenv) in another thread meanwhile. Returns 0 and the command in `*out`,
 * -EINVAL (NULL or empty program), -ENOMEM. Any thread; never suspends;
 * copies `program`.
 */
BLZ_API int blz_command_new(const char *program, blz_command **out);

/** Frees a command. Children spawned from it are not affected. NULL is ignored. */
BLZ_API void blz_command_free(blz_command *cmd);

/*
 * The setters below copy their strings and return 0, -EINVAL (NULL or
 * malformed input) or -ENOMEM. A setter that fails also leaves the error in
 * the command, and every later spawn of it returns that error, so a chain of
 * setters may be checked once, at the spawn. Owner only; never suspend.
 */

/** Appends one argument. */
BLZ_API int blz_command_arg(blz_command *cmd, const char *arg);

/** Appends the arguments of the NULL-terminated array `args`. */
BLZ_API int blz_command_args(blz_command *cmd, const char *const *args);

/**
 * Sets `key`=`value` in the child's environment, replacing an earlier set or
 * remove of the same key. -EINVAL when `key` is empty or contains '='.
 */
BLZ_API int blz_command_env(blz_command *cmd, const char *key, const char *value);

/** Removes `key` from the child's environment (the parent's is untouched). */
BLZ_API int blz_command_env_remove(blz_command *cmd, const char *key);

/**
 * Starts the child's environment empty instead of from the parent's. Earlier
 * sets and removes are forgotten; keys set afterwards with blz_command_env
 * are the child's whole environment. (Without a PATH set that way, a program
 * name without '/' is still looked up in the parent's PATH.)
 */
BLZ_API int blz_command_env_clear(blz_command *cmd);

/**
 * Runs the child in directory `dir` (NULL: the parent's). The change happens
 * in the child before exec, so a relative program path with a '/' is
 * resolved against `dir`. A directory that does not exist makes the spawn
 * fail with -ENOENT. -ENOTSUP where the C library cannot do it (glibc < 2.29).
 */
BLZ_API int blz_command_cwd(blz_command *cmd, const char *dir);

/**
 * Connects the child's stream `which` to a duplicate of `fd`, one of the
 * parent's descriptors (Tokio's Stdio::from): a log file, a socket, one end
 * of a pipe between two children. The command only borrows `fd`: keep it
 * open until the spawns that need it have returned, then close it (a
 * command may be spawned many times). The child shares `fd`'s open file,
 * its O_NONBLOCK flag included: blitzio's own pipes and sockets are
 * non-blocking, which most programs do not expect, so connect two children
 * with a pipe from pipe2(O_CLOEXEC) (the first's stdout its write end, the
 * second's stdin its read end; close both in the parent after spawning).
 * Descriptors 0 to 2 name the parent's own streams, whatever the other
 * streams of the child become. 0, -EINVAL (NULL, an unknown stream, fd < 0:
 * then every spawn of the command fails with it). A descriptor closed by
 * the time of a spawn makes that spawn fail with -EBADF.
 */
BLZ_API int blz_command_stdio_fd(blz_command *cmd, blz_stdio_stream which, int fd);

/** Chooses what the child's stdin is connected to. -EINVAL for an unknown value. */
BLZ_API int blz_command_stdin(blz_command *cmd, blz_stdio how);
/** Chooses what the child's stdout is connected to. -EINVAL for an unknown value. */
BLZ_API int blz_command_stdout(blz_command *cmd, blz_stdio how);
/** Chooses what the child's stderr is connected to. -EINVAL for an unknown value. */
BLZ_API int blz_command_stderr(blz_command *cmd, blz_stdio how);

/**
 * When `on`, freeing the child (blz_child_free) before it was reaped sends it
 * SIGKILL first. Default off: a freed child runs on and is reaped when it exits.
 */
BLZ_API int blz_command_kill_on_drop(blz_command *cmd, bool on);

/**
 * When `on`, the child gets no descriptor but its three standard streams,
 * not even ones the application left without O_CLOEXEC (closed in the child
 * with close_range). Default off. -ENOTSUP with glibc < 2.34.
 */
BLZ_API int blz_command_close_fds(blz_command *cmd, bool on);

/**
 * Puts the child in process group `pgid` (Tokio's process_group): 0 makes
 * it the leader of a new group whose id is its PID, so that a shell-like
 * program can signal it with everything it starts (killpg(blz_child_pid(c),
 * sig), while the child is not yet reaped) and a terminal's Ctrl-C does not
 * reach it; a positive id joins that existing group. Default: the parent's
 * group. 0, -EINVAL (NULL, pgid < 0; then every spawn fails with it). A group
 * that does not exist makes the spawn fail with -EPERM.
 */
BLZ_API int blz_command_process_group(blz_command *cmd, int pgid);

/* ======================================================================== */
/* Spawning                                                                   */
/* ======================================================================== */

/**
 * Starts the command. Returns 0 and the child in `*out` (its pipes, for the
 * streams set to BLZ_STDIO_PIPED, via blz_child_pipe); or the error a setter
 * left in the command; -ENOENT / -EACCES / -ENOEXEC / -ENOTDIR (program or
 * directory not found or not runnable, as exec or chdir reported it in the
 * child); -ENOMEM, -EMFILE, -EAGAIN (process limit); -ESRCH outside a
 * runtime. On failure nothing is left behind (no process, no descriptor).
 * Inside a runtime (a task of it, or a blocking job); never suspends; holds
 * the thread for the clone and exec, and, for a program named without a
 * slash when the command sets PATH itself, for the search of that PATH (a
 * stat and an access check per directory; posix_spawnp would search ours).
 */
BLZ_API int blz_command_spawn(blz_command *cmd, blz_child **out);

/**
 * Spawns the command with the standard streams it specifies (default:
 * inherited) and waits for it. Streams set to BLZ_STDIO_PIPED are closed on
 * our side at once, as nobody could read or write them (a child writing to
 * one gets EPIPE instead of blocking on a full pipe), as Tokio's status().
 * Returns blz_exit_status_code (>= 0) and the full status in `*st` when not
 * NULL, or a spawn error, or -ECANCELED when the task was aborted (the child
 * is then released as blz_child_free does: reaped in the background, killed
 * first with blz_command_kill_on_drop). Suspends the calling fiber; -EDEADLK
 * in a stackless poll (nothing spawned).
 */
BLZ_API int blz_command_status(blz_command *cmd, blz_exit_status *st);

/** Everything a child wrote, and how it ended (blz_command_output). */
typedef struct blz_output {
    blz_exit_status status; /**< how the child ended */
    char *out;              /**< its stdout, NUL-terminated (never NULL after success) */
    size_t out_len;         /**< bytes in `out`, without the NUL (`out` may hold NULs) */
    char *err;              /**< its stderr, NUL-terminated (never NULL after success) */
    size_t err_len;         /**< bytes in `err`, without the NUL */
} blz_output;

/** Frees the buffers of an output filled by blz_command_output and zeroes it. NULL is ignored. */
BLZ_API void blz_output_deinit(blz_output *out);

/**
 * Spawns the command and collects its stdout and stderr into growing buffers
 * until both reach end-of-file, reading both at once (a child that fills one
 * pipe while the parent reads the other does not deadlock), then reaps it.
 * Streams left at BLZ_STDIO_DEFAULT: stdin is /dev/null, stdout and stderr
 * are piped; a stream set to something else is not collected (its buffer
 * stays empty). Returns blz_exit_status_code (>= 0) with `*out` filled (free
 * it with blz_output_deinit), or -errno with `*out` zeroed: a spawn error,
 * -ENOMEM (a buffer could not grow; the child is still reaped), -ECANCELED.
 * Suspends the calling fiber; -EDEADLK in a stackless poll (nothing spawned).
 */
BLZ_API int blz_command_output(blz_command *cmd, blz_output *out);

/* ======================================================================== */
/* Children                                                                   */
/* ======================================================================== */

/**
 * A future that waits for the child to exit and reaps it. Caller-owned; fill
 * it with blz_child_wait_fut. `base.result` is blz_exit_status_code (>= 0)
 * or -errno. All fields but `base` are private.
 */
typedef struct blz_child_wait_future {
    blz_future base;         /**< the future; `base.result` holds the outcome */
    blz_waiter waiter_;      /**< linked into the pidfd's reader list while waiting */
    blz_child *child_;       /**< the child waited for; NULL once finished */
    blz_exit_status *out_;   /**< where the status goes, or NULL */
    blz_sleep_future sleep_; /**< without a pidfd: the back-off between polls */
    blz_duration backoff_;   /**< without a pidfd: the next back-off */
    int flags_;              /**< private state bits */
} blz_child_wait_future;

/**
 * The future behind blz_command_output. Caller-owned; fill it with
 * blz_command_output_fut. `base.result` is what blz_command_output returns.
 * Dropping it before completion frees what was collected, zeroes the output
 * and releases the child as blz_child_free does. All fields but `base` are
 * private.
 */
typedef struct blz_output_future {
    blz_future base;             /**< the future; `base.result` holds the outcome */
    blz_child *child_;           /**< the child; NULL once finished */
    blz_output *out_;            /**< the caller's output */
    blz_io_future read_[2];      /**< the read in flight on stdout [0] and stderr [1] */
    blz_child_wait_future wait_; /**< the wait, once both streams ended */
    size_t cap_[2];              /**< allocated size of out_->out and out_->err */
    int err_;                    /**< the first error met while collecting, or 0 */
    int flags_;                  /**< private state bits */
} blz_output_future;

/**
 * Future tier of blz_command_output: spawns the command at once (a spawn
 * error makes a future ready with that error) and collects when polled.
 * `out` must outlive the future. Inside a runtime.
 */
BLZ_API void blz_command_output_fut(blz_command *cmd, blz_output *out, blz_output_future *f);

/**
 * The future behind blz_command_status. Caller-owned; fill it with
 * blz_command_status_fut. `base.result` is what blz_command_status returns.
 * All fields but `base` are private.
 */
typedef struct blz_command_status_future {
    blz_future base;             /**< the future; `base.result` holds the outcome */
    blz_child *child_;           /**< the child; NULL once finished or dropped */
    blz_child_wait_future wait_; /**< its wait */
} blz_command_status_future;

/**
 * Future tier of blz_command_status: spawns the command at once (a spawn
 * error makes a future ready with that error) and waits when polled. `st`
 * (may be NULL) must outlive the future. Dropping it before completion
 * releases the child as blz_child_free does. Inside a runtime.
 */
BLZ_API void blz_command_status_fut(blz_command *cmd, blz_exit_status *st,
                                    blz_command_status_future *f);

/**
 * Collects what a child spawned by blz_command_spawn still writes and reaps
 * it (Tokio's wait_with_output): closes its stdin pipe if it still holds
 * one, reads the stdout and stderr pipes it still holds to end-of-file at
 * the same time, then waits, as blz_command_output does after its spawn
 * (streams not piped, or taken, stay empty). Takes `c` over: it is freed
 * when this returns, also on error (-EINVAL for a NULL `out`). Returns
 * what blz_command_output returns. Suspends the calling fiber.
 */
BLZ_API int blz_child_wait_with_output(blz_child *c, blz_output *out);
/** Future tier of blz_child_wait_with_output; it owns `c` from this call on. Dropping it
 *  releases the child as blz_child_free does. With `f` NULL, `c` is freed at once (as
 *  blz_child_free) and nothing is collected. */
BLZ_API void blz_child_wait_with_output_fut(blz_child *c, blz_output *out, blz_output_future *f);

/** The child's process ID, or -EINVAL for NULL. Any thread. */
BLZ_API int blz_child_pid(const blz_child *c);

/**
 * The pipe to the child's stream `which` (BLZ_STDIN: the write end; stdout,
 * stderr: the read end), or NULL when that stream is not piped or was taken,
 * or (stdin) a wait closed it. Borrowed: valid until it is taken or the
 * child is freed; do not close it (take it first). A stdin pipe borrowed
 * before a wait closed it stays valid but closed: its operations end with
 * -ECANCELED, blz_pipe_fd with -EBADF. Any thread.
 */
BLZ_API blz_pipe *blz_child_pipe(blz_child *c, blz_stdio_stream which);

/**
 * Takes the pipe to stream `which` out of the child: the caller owns it from
 * now on and closes it with blz_pipe_close (closing stdin is how a child
 * reading to end-of-file is told there is no more input). NULL when that
 * stream is not piped or was taken already, or (stdin) a wait closed it. A
 * pipe taken before a wait is the caller's: the wait leaves it open. Owner
 * only.
 */
BLZ_API blz_pipe *blz_child_take_pipe(blz_child *c, blz_stdio_stream which);

/**
 * Waits until the child exits and reaps it. Returns blz_exit_status_code:
 * the exit code (0..255) when the child exited, 128 + the signal number when
 * a signal ended it, with the details in `*st` when not NULL; or -ECHILD
 * (someone else reaped it), -ECANCELED (task aborted), -EINVAL. Before
 * waiting, closes the child's stdin pipe if it still holds one (so a child
 * reading to end-of-file can finish; a pointer borrowed to it stays valid,
 * closed, until the child is freed: see blz_child_pipe). Once reaped, the
 * status is kept: later and concurrent waits return it too. Any thread;
 * suspends the calling fiber, parks a foreign thread, -EDEADLK in a
 * stackless poll (stdin then left open).
 */
BLZ_API int blz_child_wait(blz_child *c, blz_exit_status *st);

/** blz_child_wait that gives up with -ETIMEDOUT at `deadline` (blz_clock_now() time). */
BLZ_API int blz_child_wait_until(blz_child *c, blz_instant deadline, blz_exit_status *st);

/** Try tier of blz_child_wait: the status if the child has exited (reaping it), else -EAGAIN.
 *  Does not close stdin. Any thread; never suspends. */
BLZ_API int blz_child_try_wait(blz_child *c, blz_exit_status *st);

/**
 * Future tier of blz_child_wait (closes the child's stdin pipe at once).
 * `st` (may be NULL) must outlive the future. The future holds a reference
 * on the child from this call until it completes or is dropped, so the
 * owner may free the child at any time after this call (the wait goes on).
 * A filled future must therefore run to completion or be passed to
 * blz_future_drop, also when it was never polled: forgotten, it keeps the
 * child's memory and pidfd.
 */
BLZ_API void blz_child_wait_fut(blz_child *c, blz_exit_status *st, blz_child_wait_future *f);

/**
 * Sends signal `signo` to the child (pidfd_send_signal: never to a recycled
 * PID). Returns 0, -ESRCH once the child has been reaped (by a wait or
 * try_wait), -EINVAL (bad signal, NULL), -EPERM. A child that exited but
 * was not reaped yet still takes the signal, which then does nothing: 0,
 * as Tokio's and Rust's Child::kill. Any thread; never suspends.
 */
BLZ_API int blz_child_kill(blz_child *c, int signo);

/**
 * Releases the child handle and closes the pipes it still holds. The process
 * is not waited for here, and never left a zombie: if it has not been reaped
 * yet, a small stackless task of the runtime waits for it (and, with
 * blz_command_kill_on_drop, it is sent SIGKILL first). That task ends with
 * the runtime: a child still running when its runtime is freed is no longer
 * watched. Waits pending in other tasks go on. Owner only, once; NULL is
 * ignored.
 */
BLZ_API void blz_child_free(blz_child *c);

/* ======================================================================== */
/* Pipes                                                                      */
/* ======================================================================== */

/**
 * Reads up to `n` bytes from a read end (the child's stdout or stderr).
 * Returns the count (> 0), 0 at end-of-file (the child and everything that
 * inherited its end closed it), -EBADF on a write end, -ECANCELED (closed
 * meanwhile, task aborted), -EINVAL. Any thread; suspends the calling fiber.
 */
BLZ_API ssize_t blz_pipe_read(blz_pipe *p, void *buf, size_t n);
/** Try tier of blz_pipe_read: -EAGAIN when no data is waiting. */
BLZ_API ssize_t blz_pipe_try_read(blz_pipe *p, void *buf, size_t n);
/** Future tier of blz_pipe_read; `buf` must outlive the future. */
BLZ_API void blz_pipe_read_fut(blz_pipe *p, void *buf, size_t n, blz_io_future *f);

/**
 * Writes up to `n` bytes to a write end (the child's stdin). Returns the count
 * written (> 0, possibly short), -EPIPE when the child closed its end (no
 * SIGPIPE is raised), -EBADF on a read end, -ECANCELED, -EINVAL. Any thread;
 * suspends the calling fiber until at least one byte fits.
 */
BLZ_API ssize_t blz_pipe_write(blz_pipe *p, const void *buf, size_t n);
/** Try tier of blz_pipe_write: -EAGAIN when the pipe is full. */
BLZ_API ssize_t blz_pipe_try_write(blz_pipe *p, const void *buf, size_t n);
/** Future tier of blz_pipe_write; `buf` must outlive the future. */
BLZ_API void blz_pipe_write_fut(blz_pipe *p, const void *buf, size_t n, blz_io_future *f);

/** Writes all `n` bytes, waiting as often as needed. Returns 0 or -errno as blz_pipe_write. */
BLZ_API int blz_pipe_write_all(blz_pipe *p, const void *buf, size_t n);
/** Future tier of blz_pipe_write_all; result 0 or -errno. */
BLZ_API void blz_pipe_write_all_fut(blz_pipe *p, const void *buf, size_t n, blz_io_future *f);

/**
 * A new pipe between two tasks or threads of this process (Tokio's
 * unix::pipe::pipe): bytes written to `*write_end` are read from
 * `*read_end`, in order, without message boundaries. Both ends are
 * non-blocking and close-on-exec, registered with the current runtime, and
 * the caller's to close (blz_pipe_close). Closing the write end gives the
 * reader end-of-file; writing after the read end closed gives -EPIPE (once
 * the kernel has let go of the read end: see blz_pipe_close).
 * 0, -EINVAL (an out pointer NULL), -EMFILE, -ENFILE, -ESRCH (no runtime).
 * Inside a runtime.
 */
BLZ_API int blz_pipe_new(blz_pipe **read_end, blz_pipe **write_end);

/**
 * Adopts `fd`, one end of a pipe or a FIFO made elsewhere (a shell's `|` on
 * stdin or stdout, mkfifo + open), as a pipe of the current runtime: a read
 * end when it was opened for reading, a write end for writing, both for a
 * FIFO opened read-write. The descriptor is made non-blocking and
 * close-on-exec. Non-blocking is a property of the open file, not of the
 * descriptor: a process that shares this end (a parent that passed its own
 * stdin down) sees it too; the process at the other end does not. On
 * success the pipe owns
 * `fd`; on error it stays the caller's, flags as they were. 0, -EINVAL (not
 * a pipe or FIFO: a terminal, a regular file, a socket; or `out` NULL),
 * -EBADF, -ESRCH (no runtime). Inside a runtime.
 */
BLZ_API int blz_pipe_from_fd(int fd, blz_pipe **out);

/**
 * Closes a pipe the caller owns (taken with blz_child_take_pipe, made with
 * blz_pipe_new or adopted). The child
 * sees end-of-file on its stdin, or -EPIPE/SIGPIPE when writing to a closed
 * stdout. Operations waiting on it in other tasks end with -ECANCELED; the
 * descriptor is closed once the last of them let go. On io_uring the kernel
 * keeps the pipe's end open until the ring has dropped its poll (the
 * driver's next turn), so the other end sees the close a moment later. Any
 * thread; NULL is ignored.
 */
BLZ_API void blz_pipe_close(blz_pipe *p);

/** The pipe's descriptor (O_NONBLOCK, O_CLOEXEC; still owned by the pipe), -EINVAL (NULL), or
 *  -EBADF for a child's stdin pipe borrowed before a wait closed it. */
BLZ_API int blz_pipe_fd(const blz_pipe *p);

/**
 * A read end as a stream reader (blitzio/stream.h), for blz_copy, the
 * buffered reader and line reading. Reads through it behave as
 * blz_pipe_read_fut (a write end gives -EBADF). The reader borrows `p`.
 */
BLZ_API blz_reader blz_pipe_reader(blz_pipe *p);

/**
 * A write end as a stream writer (blitzio/stream.h). Writes behave as
 * blz_pipe_write_fut; flushing has nothing to do. The writer borrows `p`.
 */
BLZ_API blz_writer blz_pipe_writer(blz_pipe *p);

#ifdef __cplusplus
}
#endif
#endif /* BLZ_PROCESS_H */
