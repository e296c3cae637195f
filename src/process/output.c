/*
 * blz_command_output: spawn, collect stdout and stderr to end-of-file at the
 * same time, then reap; blz_child_wait_with_output: the same for a child
 * spawned before. Built on the public pipe and wait futures only.
 *
 * Invariants:
 * - Stream i (0 = stdout, 1 = stderr) is DONE once its pipe reported
 *   end-of-file or an error, or when it was not piped; its pipe is closed
 *   then (taken from the child first, so the child never closes it twice).
 * - While stream i is READING, read_[i] is a pipe read future into the free
 *   tail of buffer i. A buffer grows only between reads, never under a
 *   pending read future, which points into it.
 * - Each buffer keeps one spare byte for the NUL written at the end.
 * - The wait future is filled once both streams are DONE (so a child that
 *   exits while a grandchild still writes to the inherited pipe is read to
 *   the end first) and is the last thing polled.
 * - A read error or a failed allocation is remembered in err_ and ends that
 *   stream (closing its pipe, so the child cannot block on it); the child is
 *   still reaped, and the future then fails with err_.
 */
#include "core/alloc.h"
#include "core/future.h"
#include "process/process.h"
#include "rt/current.h"

#include <string.h>

#define F_READING0 0x01 /* read_[0] is armed */
#define F_DONE0    0x04 /* stdout finished */
#define F_WAITING  0x10 /* wait_ is armed */
#define F_FINISHED 0x20 /* the future completed or was dropped */

#define CHUNK_MIN ((size_t) 16 * 1024)

static char **
buf_of(blz_output *o, int i)
{
    return i == 0 ? &o->out : &o->err;
}

static size_t *
len_of(blz_output *o, int i)
{
    return i == 0 ? &o->out_len : &o->err_len;
}

/* Makes room for at least one read of CHUNK_MIN / 4 bytes (plus the NUL). */
static int
grow(blz_output_future *f, int i)
{
    char **buf = buf_of(f->out_, i);
    size_t len = *len_of(f->out_, i);
    if (f->cap_[i] - len > CHUNK_MIN / 4) {
        return 0;
    }
    size_t cap = f->cap_[i] ? f->cap_[i] * 2 : CHUNK_MIN;
    if (cap < f->cap_[i]) {
        return -ENOMEM;
    }
    char *nb = blz__realloc(*buf, cap);
    if (!nb) {
        return -ENOMEM;
    }
    *buf = nb;
    f->cap_[i] = cap;
    return 0;
}

/* Ends stream i: closes its pipe, keeps the first error. */
static void
end_stream(blz_output_future *f, int i, int err)
{
    blz_pipe_close(blz_child_take_pipe(f->child_, i == 0 ? BLZ_STDOUT : BLZ_STDERR));
    f->flags_ |= F_DONE0 << i;
    if (err < 0 && f->err_ == 0) {
        f->err_ = err;
    }
}

/* Reads stream i until it would wait (PENDING) or ends (READY). */
static blz_poll
pump(blz_output_future *f, int i, blz_context *cx)
{
    blz_pipe *p = blz_child_pipe(f->child_, i == 0 ? BLZ_STDOUT : BLZ_STDERR);
    if (!p) {
        f->flags_ |= F_DONE0 << i;
        return BLZ_READY;
    }
    for (;;) {
        if (!(f->flags_ & (F_READING0 << i))) {
            int rc = grow(f, i);
            if (rc < 0) {
                end_stream(f, i, rc);
                return BLZ_READY;
            }
            size_t len = *len_of(f->out_, i);
            blz_pipe_read_fut(p, *buf_of(f->out_, i) + len, f->cap_[i] - len - 1, &f->read_[i]);
            f->flags_ |= F_READING0 << i;
        }
        if (blz_future_poll(&f->read_[i].base, cx) == BLZ_PENDING) {
            return BLZ_PENDING;
        }
        f->flags_ &= ~(F_READING0 << i);
        int n = f->read_[i].base.result;
        if (n <= 0) {
            end_stream(f, i, n);
            return BLZ_READY;
        }
        *len_of(f->out_, i) += (size_t) n;
    }
}

/* Frees the buffers of an output. */
static void
free_buffers(blz_output *o)
{
    blz__free(o->out);
    blz__free(o->err);
    memset(o, 0, sizeof *o);
}

/* Terminates both buffers (allocating empty ones where nothing came). */
static int
terminate(blz_output_future *f)
{
    for (int i = 0; i < 2; i++) {
        char **buf = buf_of(f->out_, i);
        if (!*buf) {
            *buf = blz__malloc(1);
            if (!*buf) {
                return -ENOMEM;
            }
        }
        (*buf)[*len_of(f->out_, i)] = '\0';
    }
    return 0;
}

static blz_poll
output_poll(blz_future *base, blz_context *cx)
{
    blz_output_future *f = (blz_output_future *) base;
    if (f->flags_ & F_FINISHED) {
        return BLZ_READY;
    }
    if (!(f->flags_ & F_WAITING)) {
        bool pending = false;
        for (int i = 0; i < 2; i++) {
            if (!(f->flags_ & (F_DONE0 << i)) && pump(f, i, cx) == BLZ_PENDING) {
                pending = true;
            }
        }
        if (pending) {
            return BLZ_PENDING;
        }
        blz_child_wait_fut(f->child_, &f->out_->status, &f->wait_);
        f->flags_ |= F_WAITING;
    }
    if (blz_future_poll(&f->wait_.base, cx) == BLZ_PENDING) {
        return BLZ_PENDING;
    }
    int r = f->wait_.base.result;
    if (r >= 0 && f->err_ < 0) {
        r = f->err_;
    }
    if (r >= 0) {
        int t = terminate(f);
        r = t < 0 ? t : r;
    }
    if (r < 0) {
        free_buffers(f->out_);
    }
    blz_child_free(f->child_); /* reaped: just frees it */
    f->child_ = NULL;
    f->flags_ = F_FINISHED;
    f->base.result = r;
    return BLZ_READY;
}

static void
output_drop(blz_future *base)
{
    blz_output_future *f = (blz_output_future *) base;
    if (f->flags_ & F_FINISHED) {
        return;
    }
    for (int i = 0; i < 2; i++) {
        if (f->flags_ & (F_READING0 << i)) {
            blz_future_drop(&f->read_[i].base);
        }
    }
    if (f->flags_ & F_WAITING) {
        blz_future_drop(&f->wait_.base);
    }
    blz_child_free(f->child_); /* closes the pipes; the reaper waits for it */
    f->child_ = NULL;
    free_buffers(f->out_);
    f->flags_ = F_FINISHED;
    f->base.result = -ECANCELED;
}

static const blz_future_vtable output_vt = {output_poll, output_drop};

/* Collects from f->child_ into `out`. Nothing is written to a piped stdin
 * here: it is closed, so a child that reads it sees end-of-file instead of
 * waiting forever. */
static void
output_start(blz_output_future *f, blz_output *out)
{
    blz__child_close_stdin(f->child_);
    blz_future_init(&f->base, &output_vt);
    f->out_ = out;
}

/* The await tier of both: in a stackless poll (-EDEADLK) the future is
 * dropped, which frees what it holds and releases the child. */
static int
await_output(blz_output_future *f)
{
    int r = blz_await(&f->base);
    if (r == -EDEADLK) {
        blz_future_drop(&f->base);
    }
    return r;
}

void
blz_command_output_fut(blz_command *cmd, blz_output *out, blz_output_future *f)
{
    if (!f) {
        return;
    }
    memset(f, 0, sizeof *f);
    if (out) {
        memset(out, 0, sizeof *out);
    }
    int rc = -EINVAL;
    if (cmd && out) {
        blz_stdio stdio[3];
        static const blz_stdio defaults[3] = {BLZ_STDIO_NULL, BLZ_STDIO_PIPED, BLZ_STDIO_PIPED};
        for (int i = 0; i < 3; i++) {
            stdio[i] = cmd->stdio[i] == BLZ_STDIO_DEFAULT ? defaults[i] : cmd->stdio[i];
        }
        rc = blz__process_spawn(cmd, stdio, &f->child_);
    }
    if (rc < 0) {
        blz__future_ready(&f->base, rc);
        f->flags_ = F_FINISHED;
        return;
    }
    output_start(f, out);
}

void
blz_child_wait_with_output_fut(blz_child *c, blz_output *out, blz_output_future *f)
{
    if (!f) {
        blz_child_free(c); /* consumed all the same: nothing else would free it */
        return;
    }
    memset(f, 0, sizeof *f);
    if (out) {
        memset(out, 0, sizeof *out);
    }
    if (!c || !out) {
        blz_child_free(c); /* consumed, as promised */
        blz__future_ready(&f->base, -EINVAL);
        f->flags_ = F_FINISHED;
        return;
    }
    f->child_ = c;
    output_start(f, out);
}

int
blz_child_wait_with_output(blz_child *c, blz_output *out)
{
    blz_output_future f;
    blz_child_wait_with_output_fut(c, out, &f);
    return await_output(&f);
}

int
blz_command_output(blz_command *cmd, blz_output *out)
{
    /* Refused before the spawn: a call that fails with -EDEADLK runs nothing. */
    if (cmd && out && blz__await_refused()) {
        memset(out, 0, sizeof *out);
        return -EDEADLK;
    }
    blz_output_future f;
    blz_command_output_fut(cmd, out, &f);
    return await_output(&f);
}

void
blz_output_deinit(blz_output *out)
{
    if (out) {
        free_buffers(out);
    }
}
