/*
 * Spawning a child: the pipes, posix_spawn, and the pidfd that tracks it.
 *
 * Invariants:
 * - Everything that can fail for want of memory or descriptors happens
 *   before posix_spawn: the child object, both ends of every pipe, the
 *   registration of the parent's ends, argv and envp, the file actions. After
 *   a successful posix_spawn nothing can fail any more except pidfd_open,
 *   whose failure only changes how the child is tracked (by PID). So a spawn
 *   either returns a child or leaves no process and no descriptor behind.
 * - Every descriptor made here is O_CLOEXEC from birth (pipe2, pidfd_open),
 *   so a concurrent spawn in another thread never inherits it. The child's
 *   ends are dup2'ed onto 0/1/2 by the file actions, which clears CLOEXEC on
 *   the copy only; they are closed in the parent right after the spawn.
 * - The child's ends are moved to descriptors >= 3 first, so that one dup2
 *   onto 0, 1 or 2 can never overwrite another end still to be dup2'ed. A
 *   stream given a descriptor of the parent's (BLZ_STDIO_FD) gets such a
 *   copy too (F_DUPFD_CLOEXEC above 2), closed with the pipes' ends.
 * - The parent's ends are O_NONBLOCK (set on the parent's end only: O_NONBLOCK
 *   belongs to the open file description, and the child's end must block).
 * - PID tracking without a pidfd is still safe from PID reuse: a PID cannot
 *   be recycled before its zombie is reaped, and only blitzio reaps it
 *   (child_linux.c, under the child's lock).
 */
#include "core/alloc.h"
#include "process/process.h"
#include "rt/current.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
# define SYS_pidfd_open 434
#endif

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))
# define HAVE_ADDCHDIR 1
#else
# define HAVE_ADDCHDIR 0
#endif
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
# define HAVE_ADDCLOSEFROM 1
#else
# define HAVE_ADDCLOSEFROM 0
#endif

extern char **environ;

static int
real_pidfd_open(int pid, unsigned flags)
{
    long r = syscall(SYS_pidfd_open, pid, flags);
    return r < 0 ? -errno : (int) r;
}

blz__proc_sys_table blz__proc_sys = {real_pidfd_open};

/* ---- argv, envp, PATH ------------------------------------------------------------ */

/* The child's environment: the parent's (unless cleared) without the keys the
 * command edits, then the command's sets. The strings are borrowed (from
 * environ and the command); only the array is allocated. The caller must not
 * change environ meanwhile, as with any reader of it. */
static char **
build_envp(const blz_command *cmd)
{
    size_t n = 0;
    if (!cmd->env_clear && environ) {
        while (environ[n]) {
            n++;
        }
    }
    char **envp = blz__malloc((n + cmd->nenv + 1) * sizeof *envp);
    if (!envp) {
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *kv = environ[i];
        const char *eq = strchr(kv, '=');
        size_t kl = eq ? (size_t) (eq - kv) : strlen(kv);
        bool edited = false;
        for (size_t j = 0; j < cmd->nenv && !edited; j++) {
            edited = cmd->env[j].keylen == kl && memcmp(cmd->env[j].kv, kv, kl) == 0;
        }
        if (!edited) {
            envp[k++] = environ[i];
        }
    }
    for (size_t j = 0; j < cmd->nenv; j++) {
        if (!cmd->env[j].remove) {
            envp[k++] = cmd->env[j].kv;
        }
    }
    envp[k] = NULL;
    return envp;
}

/* Whether `cand` is a regular file we may execute, relative to directory
 * `dirfd` when not absolute: 1 yes, 0 no, -EACCES when it is a regular
 * file without execute permission. */
static int
runnable(int dirfd, const char *cand)
{
    struct stat st;
    if (fstatat(dirfd, cand, &st, 0) < 0 || !S_ISREG(st.st_mode)) {
        return 0;
    }
    return faccessat(dirfd, cand, X_OK, 0) == 0 ? 1 : -EACCES;
}

/* The candidate `dir`/`prog` for a PATH entry `dir` of `dl` bytes (an empty
 * entry means the current directory): 0 and an allocated string in *out,
 * 1 when it would be too long for a path (skipped, as execvp does), or
 * -ENOMEM. */
static int
candidate(const char *dir, size_t dl, const char *prog, char **out)
{
    if (dl == 0) {
        dir = ".";
        dl = 1;
    }
    size_t total = dl + 1 + strlen(prog) + 1;
    if (total > PATH_MAX) {
        return 1;
    }
    *out = blz__malloc(total);
    if (!*out) {
        return -ENOMEM;
    }
    (void) snprintf(*out, total, "%.*s/%s", (int) dl, dir, prog);
    return 0;
}

/* Looks `prog` (no '/') up in `path` as execvp in the child would: the
 * first regular, executable file wins. A relative entry (an empty one is
 * ".") names a directory under the child's working directory, `cwd` when
 * not NULL, so it is checked there: the child runs it from there. Returns
 * an allocated path, as exec in the child must be given it, or NULL with
 * *err set (-ENOENT, -EACCES when only non-executable candidates were
 * found, -ENOMEM, or why `cwd` cannot be opened). */
static char *
search_path(const char *prog, const char *path, const char *cwd, int *err)
{
    int dirfd = AT_FDCWD;
    if (cwd) {
        dirfd = open(cwd, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0) {
            *err = -errno;
            return NULL;
        }
    }
    char *found = NULL;
    *err = -ENOENT;
    const char *p = path;
    for (;;) {
        const char *end = strchr(p, ':');
        size_t dl = end ? (size_t) (end - p) : strlen(p);
        char *cand = NULL;
        int rc = candidate(p, dl, prog, &cand);
        if (rc < 0) {
            *err = rc;
            break;
        }
        if (rc == 0) {
            int r = runnable(dirfd, cand);
            if (r > 0) {
                found = cand;
                break;
            }
            if (r < 0) {
                *err = r;
            }
            blz__free(cand);
        }
        if (!end) {
            break;
        }
        p = end + 1;
    }
    if (dirfd >= 0) {
        (void) close(dirfd);
    }
    return found;
}

/* ---- pipes ------------------------------------------------------------------------ */

/* Moves `fd` to a descriptor >= 3 (closing the old one). Returns it or -errno. */
static int
above_stdio(int fd)
{
    if (fd >= 3) {
        return fd;
    }
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int err = errno;
    (void) close(fd);
    return nfd < 0 ? -err : nfd;
}

/* A pipe for stream `which`: the child's end in *child_fd (blocking), the
 * parent's end registered as a blz_pipe in *out. */
static int
make_pipe(blz__io_driver *d, int which, int *child_fd, blz_pipe **out)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        return -errno;
    }
    int parent = which == BLZ_STDIN ? fds[1] : fds[0];
    int child = which == BLZ_STDIN ? fds[0] : fds[1];
    child = above_stdio(child);
    if (child < 0) {
        (void) close(parent);
        return child;
    }
    int fl = fcntl(parent, F_GETFL);
    if (fl < 0 || fcntl(parent, F_SETFL, fl | O_NONBLOCK) < 0) {
        int err = -errno;
        (void) close(parent);
        (void) close(child);
        return err;
    }
    int rc =
        blz__pipe_wrap(d, parent, which == BLZ_STDIN ? BLZ__PIPE_WRITES : BLZ__PIPE_READS, out);
    if (rc < 0) {
        (void) close(parent);
        (void) close(child);
        return rc;
    }
    *child_fd = child;
    return 0;
}

/* ---- the spawn ----------------------------------------------------------------------- */

/* Fills the file actions: the three streams, the directory, closing the rest. */
static int
file_actions(posix_spawn_file_actions_t *fa, const blz_command *cmd, const blz_stdio stdio[3],
             const int child_fd[3])
{
    static const int null_flags[3] = {O_RDONLY, O_WRONLY, O_WRONLY};
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        if (stdio[i] == BLZ_STDIO_PIPED || stdio[i] == BLZ_STDIO_FD) {
            rc = posix_spawn_file_actions_adddup2(fa, child_fd[i], i);
        } else if (stdio[i] == BLZ_STDIO_NULL) {
            rc = posix_spawn_file_actions_addopen(fa, i, "/dev/null", null_flags[i], 0);
        }
    }
#if HAVE_ADDCHDIR
    if (rc == 0 && cmd->cwd) {
        rc = posix_spawn_file_actions_addchdir_np(fa, cmd->cwd);
    }
#endif
#if HAVE_ADDCLOSEFROM
    if (rc == 0 && cmd->close_fds) {
        rc = posix_spawn_file_actions_addclosefrom_np(fa, 3);
    }
#endif
    return -rc;
}

/* The attributes: an empty signal mask and SIGPIPE at its default action, so
 * the child does not inherit the blocked set of the spawning worker nor an
 * ignored SIGPIPE; and the process group the command asks for. */
static int
spawn_attrs(posix_spawnattr_t *attr, const blz_command *cmd)
{
    sigset_t none, def;
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    int rc = posix_spawnattr_setsigmask(attr, &none);
    if (rc == 0) {
        rc = posix_spawnattr_setsigdefault(attr, &def);
    }
    if (rc == 0 && cmd->pgid >= 0) {
        rc = posix_spawnattr_setpgroup(attr, (pid_t) cmd->pgid);
        flags |= POSIX_SPAWN_SETPGROUP;
    }
    if (rc == 0) {
        rc = posix_spawnattr_setflags(attr, flags);
    }
    return -rc;
}

/* Runs posix_spawn(p) with everything prepared. Returns 0 and the PID, or -errno. */
static int
do_spawn(const blz_command *cmd, const blz_stdio stdio[3], const int child_fd[3], int *pid_out)
{
    char **envp = NULL;
    char *resolved = NULL;
    const char *path_value = NULL;
    int rc = 0;
    bool use_path = strchr(cmd->program, '/') == NULL;
    if (cmd->env_clear || cmd->nenv) {
        envp = build_envp(cmd);
        if (!envp) {
            return -ENOMEM;
        }
    }
    /* A PATH the command sets is the one to search (posix_spawnp would use
     * the parent's). */
    if (use_path && blz__command_env_lookup(cmd, "PATH", &path_value) && path_value) {
        resolved = search_path(cmd->program, path_value, cmd->cwd, &rc);
        if (!resolved) {
            blz__free(envp);
            return rc;
        }
        use_path = false;
    }

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int frc = posix_spawn_file_actions_init(&fa);
    if (frc != 0) {
        blz__free(resolved);
        blz__free(envp);
        return -frc;
    }
    frc = posix_spawnattr_init(&attr);
    if (frc != 0) {
        (void) posix_spawn_file_actions_destroy(&fa);
        blz__free(resolved);
        blz__free(envp);
        return -frc;
    }
    rc = file_actions(&fa, cmd, stdio, child_fd);
    if (rc == 0) {
        rc = spawn_attrs(&attr, cmd);
    }
    if (rc == 0) {
        pid_t pid;
        char *const *argv = cmd->argv;
        char *const *ev = envp ? envp : environ;
        /* glibc reports exec and file-action failures of the child here. */
        int e = use_path
                    ? posix_spawnp(&pid, cmd->program, &fa, &attr, argv, ev)
                    : posix_spawn(&pid, resolved ? resolved : cmd->program, &fa, &attr, argv, ev);
        if (e == 0) {
            *pid_out = (int) pid;
        }
        rc = -e;
    }
    (void) posix_spawnattr_destroy(&attr);
    (void) posix_spawn_file_actions_destroy(&fa);
    blz__free(resolved);
    blz__free(envp);
    return rc;
}

int
blz__process_spawn(const blz_command *cmd, const blz_stdio stdio[3], blz_child **out)
{
    if (cmd->err) {
        return cmd->err;
    }
    blz_runtime *rt = blz__rt_current();
    if (!rt) {
        return -ESRCH;
    }
    blz__io_driver *d = blz__rt_io(rt);
    blz_child *c = blz__child_alloc();
    if (!c) {
        return -ENOMEM;
    }
    c->rt = rt;
    c->kill_on_drop = cmd->kill_on_drop;

    int child_fd[3] = {-1, -1, -1};
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++) {
        if (stdio[i] == BLZ_STDIO_PIPED) {
            rc = make_pipe(d, i, &child_fd[i], &c->pipes[i]);
        } else if (stdio[i] == BLZ_STDIO_FD) {
            /* A copy above 2, so that no other stream's file action can
             * replace it in the child before it is duplicated. */
            child_fd[i] = fcntl(cmd->stdio_fd[i], F_DUPFD_CLOEXEC, 3);
            rc = child_fd[i] < 0 ? -errno : 0;
        }
    }
    int pid = -1;
    if (rc == 0) {
        rc = do_spawn(cmd, stdio, child_fd, &pid);
    }
    for (int i = 0; i < 3; i++) {
        if (child_fd[i] >= 0) {
            (void) close(child_fd[i]);
        }
    }
    if (rc < 0) {
        /* No process: give back the parent's ends and the child object. */
        for (int i = 0; i < 3; i++) {
            blz_pipe_close(c->pipes[i]);
            c->pipes[i] = NULL;
        }
        blz__store(&c->reaped, 1u, RELAXED);
        blz__child_unref(c);
        return rc;
    }
    c->pid = pid;

    /* Track it by pidfd when the kernel gives one (it is O_CLOEXEC by
     * definition); by PID otherwise. */
    int pidfd = blz__proc_sys.pidfd_open(pid, 0);
    if (pidfd >= 0) {
        blz__io_source *src;
        if (blz__io_source_open(d, pidfd, sizeof(blz__io_source), 0, &src) == 0) {
            c->pidsrc = src;
        } else {
            (void) close(pidfd);
        }
    }
    *out = c;
    return 0;
}
