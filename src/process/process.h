/*
 * Internal: the objects behind include/blitzio/process.h and the seams
 * between the files of src/process/:
 *
 *   command.c           the builder (portable: strings and arrays only)
 *   unix/spawn_linux.c  pipes, posix_spawn, pidfd_open
 *   unix/child_linux.c  reaping (waitid), the wait future, kill, free + reaper task
 *   unix/pipe.c         the pipe object and its read/write future
 *   output.c            blz_command_output, on top of the public pipe and wait API
 */
#ifndef BLZ_PROCESS_PROCESS_H
#define BLZ_PROCESS_PROCESS_H

#include "blitzio/process.h"
#include "core/atomic.h"
#include "core/spinlock.h"
#include "io/driver.h"
#include "io/registry.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- command ---------------------------------------------------------------- */

/* One environment edit: "KEY=VALUE" to set, or "KEY" to remove. */
typedef struct blz__env_edit {
    char *kv;      /* owned; "KEY=VALUE" (set) or "KEY" (remove) */
    size_t keylen; /* length of KEY */
    bool remove;   /* true: remove KEY */
} blz__env_edit;

struct blz_command {
    char *program;      /* owned; as given */
    char **argv;        /* owned strings; argv[0] = program; NULL-terminated */
    size_t argc;        /* entries in argv, without the NULL */
    size_t argv_cap;    /* allocated entries of argv */
    blz__env_edit *env; /* edits, at most one per key, in the order first made */
    size_t nenv;        /* edits in env */
    size_t env_cap;     /* allocated entries of env */
    bool env_clear;     /* start from an empty environment */
    char *cwd;          /* owned, or NULL: the parent's */
    blz_stdio stdio[3]; /* per stream; BLZ_STDIO_DEFAULT when not chosen */
    int stdio_fd[3];    /* per stream with BLZ_STDIO_FD: the parent's descriptor (borrowed) */
    bool kill_on_drop;  /* blz_child_free sends SIGKILL to a running child */
    bool close_fds;     /* close every descriptor >= 3 in the child */
    int pgid;           /* the child's process group (0: a new one), or -1: the parent's */
    int err;            /* the first error a setter met, or 0; spawns return it */
};

/* The value of KEY in the command's edits: 1 and *value (NULL when removed),
 * or 0 when the command does not touch KEY. */
int blz__command_env_lookup(const blz_command *cmd, const char *key, const char **value);

/* Spawns `cmd` with the stream choices `stdio` (already resolved: no DEFAULT). */
int blz__process_spawn(const blz_command *cmd, const blz_stdio stdio[3], blz_child **out);

/* ---- pipes -------------------------------------------------------------------- */

/* The directions a pipe may be used in (blz_pipe.dirs). */
#define BLZ__PIPE_READS  (1u << BLZ__DIR_READ)  /* a read end: a child's stdout or stderr */
#define BLZ__PIPE_WRITES (1u << BLZ__DIR_WRITE) /* a write end: a child's stdin */

struct blz_pipe {
    blz__io_source src; /* first: the registry allocates the whole object */
    unsigned dirs;      /* BLZ__PIPE_READS and/or _WRITES (a FIFO opened for both); fixed */
};

/* Registers `fd` (O_NONBLOCK|O_CLOEXEC) as a pipe used in `dirs`. On
 * success the pipe owns fd; on failure fd is left open for the caller. */
int blz__pipe_wrap(blz__io_driver *d, int fd, unsigned dirs, blz_pipe **out);

/* Keeps the memory of `p` (not its descriptor) until blz__pipe_release,
 * whenever it is closed: pointers borrowed before the close stay safe to
 * call, their operations ending with -ECANCELED and blz_pipe_fd with -EBADF.
 * Call it while `p` is still open. */
void blz__pipe_keep(blz_pipe *p);

/* Lets go of what blz__pipe_keep kept (once closed, `p` is freed at a later
 * park). NULL is ignored. */
void blz__pipe_release(blz_pipe *p);

/* ---- children ------------------------------------------------------------------ */

struct blz_child {
    /* The owner's handle (or the reaper task that inherits it) plus one per
     * wait future from its fill to its completion or drop. The last release
     * closes the pidfd source and frees the child. */
    _Atomic uint32_t refs;
    /* Serialises reaping (waitid + storing the result), kill without a
     * pidfd, and the pipe slots. */
    blz__spinlock lock;
    /* 0 until reaped; then 1, with `result` and `status` final (release
     * store under `lock`, paired with the acquire loads of readers). */
    _Atomic uint32_t reaped;
    int pid;                /* fixed */
    blz__io_source *pidsrc; /* the pidfd registered with the driver; NULL: track by PID */
    int result;             /* once reaped: blz_exit_status_code, or -errno (ECHILD) */
    blz_exit_status status; /* once reaped with result >= 0 */
    blz_pipe *pipes[3];     /* owned until taken (lock) */
    blz_pipe *stdin_kept;   /* stdin closed by a wait, kept for borrowers until freed (lock) */
    blz_runtime *rt;        /* the runtime it was spawned in; the reaper runs there */
    bool kill_on_drop;      /* fixed */
};

/* Allocates a child with one reference (the owner's). */
blz_child *blz__child_alloc(void);

/* Drops a reference; the last one closes the pidfd source and frees the child. */
void blz__child_unref(blz_child *c);

/* One waitid(WNOHANG): 1 when reaped (now or before), 0 while running, -errno. */
int blz__child_try_reap(blz_child *c);

/* Closes the stdin pipe the child still holds (a wait's first step), keeping
 * its memory for pointers borrowed before, until blz_child_free. */
void blz__child_close_stdin(blz_child *c);

/* ---- replaceable system calls (tests inject failures) ---------------------------- */

typedef struct blz__proc_sys_table {
    int (*pidfd_open)(int pid, unsigned flags); /* >= 0 or -errno */
} blz__proc_sys_table;

extern blz__proc_sys_table blz__proc_sys;

#endif
