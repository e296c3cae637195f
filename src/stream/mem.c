/*
 * Memory as a stream: a reader over bytes and a writer into a fixed buffer.
 * Both complete every operation at once (a ready future), so they never
 * wait and need no runtime.
 */
#include "blitzio/stream.h"
#include "core/future.h"

#include <string.h>

/* An io future's result is an int: one operation moves at most INT_MAX bytes. */
#define MAX_STEP ((size_t) 0x7fffffff)

static void
mem_read_fut(void *self, void *buf, size_t n, blz_io_future *f)
{
    blz_mem_reader *m = self;
    if (!buf && n) {
        blz__io_future_ready(f, -EINVAL);
        return;
    }
    size_t left = m->len_ - m->pos_;
    size_t k = n < left ? n : left;
    k = k < MAX_STEP ? k : MAX_STEP;
    if (k) {
        memcpy(buf, m->data_ + m->pos_, k);
        m->pos_ += k;
    }
    blz__io_future_ready(f, (int) k);
}

static void
mem_write_fut(void *self, const void *buf, size_t n, blz_io_future *f)
{
    blz_mem_writer *m = self;
    if (!buf && n) {
        blz__io_future_ready(f, -EINVAL);
        return;
    }
    if (n == 0) {
        blz__io_future_ready(f, 0);
        return;
    }
    size_t room = m->cap_ - m->len_;
    if (room == 0) {
        blz__io_future_ready(f, -ENOSPC);
        return;
    }
    size_t k = n < room ? n : room;
    k = k < MAX_STEP ? k : MAX_STEP;
    memcpy(m->buf_ + m->len_, buf, k);
    m->len_ += k;
    blz__io_future_ready(f, (int) k);
}

static const blz_reader_vtable mem_reader_vt = {mem_read_fut};
static const blz_writer_vtable mem_writer_vt = {mem_write_fut, NULL, NULL};

blz_reader
blz_mem_reader_init(blz_mem_reader *m, const void *data, size_t len)
{
    blz_reader r = {NULL, m};
    if (!m || (!data && len)) {
        return r;
    }
    m->data_ = data;
    m->len_ = len;
    m->pos_ = 0;
    r.vt = &mem_reader_vt;
    return r;
}

blz_writer
blz_mem_writer_init(blz_mem_writer *m, void *buf, size_t cap)
{
    blz_writer w = {NULL, m};
    if (!m || (!buf && cap)) {
        return w;
    }
    m->buf_ = buf;
    m->cap_ = cap;
    m->len_ = 0;
    w.vt = &mem_writer_vt;
    return w;
}

size_t
blz_mem_writer_len(const blz_mem_writer *m)
{
    return m ? m->len_ : 0;
}
