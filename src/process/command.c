/*
 * The command builder: a recipe of program, arguments, environment edits,
 * working directory and stream choices, spawned any number of times.
 *
 * Invariants:
 * - Every string is a private copy, allocated with blz__malloc.
 * - argv always holds argc + 1 entries, argv[0] = a copy of the program and
 *   argv[argc] = NULL, so a spawn passes it as is.
 * - env holds at most one edit per key; setting or removing a key edits the
 *   existing entry in place, so the order of first mention is kept.
 * - `err` is the first failure of any setter (sticky); spawns return it.
 *   A failed setter leaves the command as it was.
 * - Owner only: no locking; the spawn reads the command on the caller's thread.
 */
#include "core/alloc.h"
#include "core/future.h"
#include "process/process.h"
#include "rt/current.h"

#include <string.h>

static char *
dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = blz__malloc(n);
    if (d) {
        memcpy(d, s, n);
    }
    return d;
}

/* Records the first error and returns `err`. */
static int
fail(blz_command *cmd, int err)
{
    if (cmd && cmd->err == 0) {
        cmd->err = err;
    }
    return err;
}

int
blz_command_new(const char *program, blz_command **out)
{
    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    if (!program || !*program) {
        return -EINVAL;
    }
    blz_command *cmd = blz__calloc(1, sizeof *cmd);
    if (!cmd) {
        return -ENOMEM;
    }
    cmd->program = dup_str(program);
    cmd->argv_cap = 4;
    cmd->argv = blz__calloc(cmd->argv_cap, sizeof *cmd->argv);
    if (cmd->program && cmd->argv) {
        cmd->argv[0] = dup_str(program);
    }
    if (!cmd->program || !cmd->argv || !cmd->argv[0]) {
        blz_command_free(cmd);
        return -ENOMEM;
    }
    cmd->argc = 1;
    cmd->pgid = -1;
    *out = cmd;
    return 0;
}

void
blz_command_free(blz_command *cmd)
{
    if (!cmd) {
        return;
    }
    if (cmd->argv) {
        for (size_t i = 0; i < cmd->argc; i++) {
            blz__free(cmd->argv[i]);
        }
        blz__free(cmd->argv);
    }
    for (size_t i = 0; i < cmd->nenv; i++) {
        blz__free(cmd->env[i].kv);
    }
    blz__free(cmd->env);
    blz__free(cmd->program);
    blz__free(cmd->cwd);
    blz__free(cmd);
}

int
blz_command_arg(blz_command *cmd, const char *arg)
{
    if (!cmd) {
        return -EINVAL;
    }
    if (!arg) {
        return fail(cmd, -EINVAL);
    }
    if (cmd->argc + 1 >= cmd->argv_cap) {
        size_t cap = cmd->argv_cap * 2;
        char **nv = blz__realloc(cmd->argv, cap * sizeof *nv);
        if (!nv) {
            return fail(cmd, -ENOMEM);
        }
        cmd->argv = nv;
        cmd->argv_cap = cap;
    }
    char *copy = dup_str(arg);
    if (!copy) {
        return fail(cmd, -ENOMEM);
    }
    cmd->argv[cmd->argc++] = copy;
    cmd->argv[cmd->argc] = NULL;
    return 0;
}

int
blz_command_args(blz_command *cmd, const char *const *args)
{
    if (!cmd) {
        return -EINVAL;
    }
    if (!args) {
        return fail(cmd, -EINVAL);
    }
    size_t before = cmd->argc;
    for (size_t i = 0; args[i]; i++) {
        int rc = blz_command_arg(cmd, args[i]);
        if (rc < 0) {
            /* All or nothing: drop the arguments this call added. */
            while (cmd->argc > before) {
                blz__free(cmd->argv[--cmd->argc]);
            }
            cmd->argv[cmd->argc] = NULL;
            return rc;
        }
    }
    return 0;
}

static bool
valid_key(const char *key)
{
    return key && *key && !strchr(key, '=');
}

/* The edit of `key` (length n), or NULL. */
static blz__env_edit *
find_edit(const blz_command *cmd, const char *key, size_t n)
{
    for (size_t i = 0; i < cmd->nenv; i++) {
        blz__env_edit *e = &cmd->env[i];
        if (e->keylen == n && memcmp(e->kv, key, n) == 0) {
            return e;
        }
    }
    return NULL;
}

/* Sets (value != NULL) or removes (value == NULL) `key`. */
static int
env_edit(blz_command *cmd, const char *key, const char *value)
{
    size_t kn = strlen(key);
    size_t vn = value ? strlen(value) : 0;
    size_t total = kn + (value ? 1 + vn : 0) + 1;
    char *kv = blz__malloc(total);
    if (!kv) {
        return fail(cmd, -ENOMEM);
    }
    memcpy(kv, key, kn);
    if (value) {
        kv[kn] = '=';
        memcpy(kv + kn + 1, value, vn);
    }
    kv[total - 1] = '\0';

    blz__env_edit *e = find_edit(cmd, key, kn);
    if (!e) {
        if (cmd->nenv == cmd->env_cap) {
            size_t cap = cmd->env_cap ? cmd->env_cap * 2 : 4;
            blz__env_edit *ne = blz__realloc(cmd->env, cap * sizeof *ne);
            if (!ne) {
                blz__free(kv);
                return fail(cmd, -ENOMEM);
            }
            cmd->env = ne;
            cmd->env_cap = cap;
        }
        e = &cmd->env[cmd->nenv++];
    } else {
        blz__free(e->kv);
    }
    e->kv = kv;
    e->keylen = kn;
    e->remove = value == NULL;
    return 0;
}

int
blz_command_env(blz_command *cmd, const char *key, const char *value)
{
    if (!cmd) {
        return -EINVAL;
    }
    if (!valid_key(key) || !value) {
        return fail(cmd, -EINVAL);
    }
    return env_edit(cmd, key, value);
}

int
blz_command_env_remove(blz_command *cmd, const char *key)
{
    if (!cmd) {
        return -EINVAL;
    }
    if (!valid_key(key)) {
        return fail(cmd, -EINVAL);
    }
    return env_edit(cmd, key, NULL);
}

int
blz_command_env_clear(blz_command *cmd)
{
    if (!cmd) {
        return -EINVAL;
    }
    for (size_t i = 0; i < cmd->nenv; i++) {
        blz__free(cmd->env[i].kv);
    }
    cmd->nenv = 0;
    cmd->env_clear = true;
    return 0;
}

int
blz__command_env_lookup(const blz_command *cmd, const char *key, const char **value)
{
    blz__env_edit *e = find_edit(cmd, key, strlen(key));
    if (!e) {
        return 0;
    }
    *value = e->remove ? NULL : e->kv + e->keylen + 1;
    return 1;
}

int
blz_command_cwd(blz_command *cmd, const char *dir)
{
    if (!cmd) {
        return -EINVAL;
    }
#if !(defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29)))
    if (dir) {
        return fail(cmd, -ENOTSUP); /* no posix_spawn_file_actions_addchdir_np */
    }
#endif
    if (dir && !*dir) {
        return fail(cmd, -EINVAL);
    }
    char *copy = NULL;
    if (dir && !(copy = dup_str(dir))) {
        return fail(cmd, -ENOMEM);
    }
    blz__free(cmd->cwd);
    cmd->cwd = copy;
    return 0;
}

static int
set_stdio(blz_command *cmd, int which, blz_stdio how)
{
    if (!cmd) {
        return -EINVAL;
    }
    if (how != BLZ_STDIO_DEFAULT && how != BLZ_STDIO_INHERIT && how != BLZ_STDIO_NULL &&
        how != BLZ_STDIO_PIPED) {
        return fail(cmd, -EINVAL); /* BLZ_STDIO_FD comes with its descriptor */
    }
    cmd->stdio[which] = how;
    return 0;
}

int
blz_command_stdio_fd(blz_command *cmd, blz_stdio_stream which, int fd)
{
    if (!cmd || (int) which < BLZ_STDIN || (int) which > BLZ_STDERR || fd < 0) {
        return fail(cmd, -EINVAL);
    }
    cmd->stdio[which] = BLZ_STDIO_FD;
    cmd->stdio_fd[which] = fd;
    return 0;
}

int
blz_command_stdin(blz_command *cmd, blz_stdio how)
{
    return set_stdio(cmd, BLZ_STDIN, how);
}

int
blz_command_stdout(blz_command *cmd, blz_stdio how)
{
    return set_stdio(cmd, BLZ_STDOUT, how);
}

int
blz_command_stderr(blz_command *cmd, blz_stdio how)
{
    return set_stdio(cmd, BLZ_STDERR, how);
}

int
blz_command_kill_on_drop(blz_command *cmd, bool on)
{
    if (!cmd) {
        return -EINVAL;
    }
    cmd->kill_on_drop = on;
    return 0;
}

int
blz_command_process_group(blz_command *cmd, int pgid)
{
    if (!cmd || pgid < 0) {
        return fail(cmd, -EINVAL);
    }
    cmd->pgid = pgid;
    return 0;
}

int
blz_command_close_fds(blz_command *cmd, bool on)
{
    if (!cmd) {
        return -EINVAL;
    }
#if !(defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34)))
    if (on) {
        return fail(cmd, -ENOTSUP); /* no posix_spawn_file_actions_addclosefrom_np */
    }
#endif
    cmd->close_fds = on;
    return 0;
}

/* ---- spawning with the command's own stream choices ---------------------------- */

int
blz_command_spawn(blz_command *cmd, blz_child **out)
{
    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    if (!cmd) {
        return -EINVAL;
    }
    blz_stdio stdio[3];
    for (int i = 0; i < 3; i++) {
        stdio[i] = cmd->stdio[i] == BLZ_STDIO_DEFAULT ? BLZ_STDIO_INHERIT : cmd->stdio[i];
    }
    return blz__process_spawn(cmd, stdio, out);
}

/* ---- status: spawn, then wait ---------------------------------------------- */

static blz_poll
status_poll(blz_future *base, blz_context *cx)
{
    blz_command_status_future *f = (blz_command_status_future *) base;
    if (!f->child_) {
        return BLZ_READY; /* finished or dropped: the result is kept */
    }
    if (blz_future_poll(&f->wait_.base, cx) == BLZ_PENDING) {
        return BLZ_PENDING;
    }
    blz_child_free(f->child_); /* reaped: just frees it */
    f->child_ = NULL;
    f->base.result = f->wait_.base.result;
    return BLZ_READY;
}

static void
status_drop(blz_future *base)
{
    blz_command_status_future *f = (blz_command_status_future *) base;
    if (!f->child_) {
        return;
    }
    blz_future_drop(&f->wait_.base);
    blz_child_free(f->child_); /* the reaper waits for it (killed first on kill_on_drop) */
    f->child_ = NULL;
    f->base.result = -ECANCELED;
}

static const blz_future_vtable status_vt = {status_poll, status_drop};

void
blz_command_status_fut(blz_command *cmd, blz_exit_status *st, blz_command_status_future *f)
{
    if (!f) {
        return;
    }
    memset(f, 0, sizeof *f);
    int rc = blz_command_spawn(cmd, &f->child_);
    if (rc < 0) {
        blz__future_ready(&f->base, rc);
        return;
    }
    /* Nobody holds the piped ends of a status run: closed now, so a child
     * writing to one gets EPIPE rather than filling the pipe and waiting for
     * ever. The wait closes stdin. */
    blz_pipe_close(blz_child_take_pipe(f->child_, BLZ_STDOUT));
    blz_pipe_close(blz_child_take_pipe(f->child_, BLZ_STDERR));
    blz_child_wait_fut(f->child_, st, &f->wait_);
    blz_future_init(&f->base, &status_vt);
}

int
blz_command_status(blz_command *cmd, blz_exit_status *st)
{
    /* Refused before the spawn: a call that fails with -EDEADLK runs nothing. */
    if (cmd && blz__await_refused()) {
        return -EDEADLK;
    }
    blz_command_status_future f;
    blz_command_status_fut(cmd, st, &f); /* a NULL cmd's future holds nothing */
    return blz_await(&f.base);
}
