/*
 * blitzio/stream.h — byte streams: the Reader and Writer interfaces, buffered
 * readers and writers, memory as a stream, two connected in-memory streams, a limited
 * reader, copy (one way and both ways),
 * read-exact, read-to-end, write-all, line reading and the end of writing
 * (shutdown).
 *
 * A blz_reader / blz_writer is a small (vtable, object) pair passed by value.
 * TCP and Unix streams and their split halves, files (blz_file_reader),
 * pipes (blz_pipe_reader) and memory (blz_mem_reader_init,
 * blz_mem_stream_pair) provide them; any user type can by filling a
 * vtable. Every operation is a future first (a blz_io_future for single
 * reads and writes, a blz_stream_future for the loops), with an await
 * spelling on top, so stackless tasks and fibers share one implementation.
 *
 * Ownership: a reader or writer does not own its object; closing the object
 * is the caller's business, after every future on it finished or was dropped.
 * A blz_buf_reader / blz_buf_writer is caller storage, used by one task at a
 * time (it holds the inner future of its one operation in flight).
 */
#ifndef BLZ_STREAM_H
#define BLZ_STREAM_H

#include "blitzio/common.h"
#include "blitzio/future.h"
#include "blitzio/io.h"

#ifdef __cplusplus
extern "C" {
#endif

struct blz_tcp_stream;
struct blz_tcp_read_half;
struct blz_tcp_write_half;
struct blz_unix_stream;
struct blz_unix_read_half;
struct blz_unix_write_half;

/** What a reader implements. */
typedef struct blz_reader_vtable {
    /** Fills `f` with a read of up to `n` bytes (result: count, 0 at end, or -errno). */
    void (*read_fut)(void *self, void *buf, size_t n, blz_io_future *f);
} blz_reader_vtable;

/** What a writer implements. */
typedef struct blz_writer_vtable {
    /** Fills `f` with a write of up to `n` bytes (result: count > 0 or -errno). */
    void (*write_fut)(void *self, const void *buf, size_t n, blz_io_future *f);
    /** Fills `f` with a flush of what the writer buffers (result 0 or -errno); NULL: nothing to
     * flush. */
    void (*flush_fut)(void *self, blz_io_future *f);
    /** Fills `f` with the end of writing: what the writer buffers goes out, then the reader at
     * the other end sees end of stream (TCP and Unix streams: shutdown(SHUT_WR)). Result 0 or
     * -errno. NULL: a flush is all there is (files, pipes). */
    void (*shutdown_fut)(void *self, blz_io_future *f);
} blz_writer_vtable;

/** A reader: an object and how to read it. */
typedef struct blz_reader {
    const blz_reader_vtable *vt; /**< its operations */
    void *self;                  /**< the object */
} blz_reader;

/** A writer: an object and how to write it. */
typedef struct blz_writer {
    const blz_writer_vtable *vt; /**< its operations */
    void *self;                  /**< the object */
} blz_writer;

/** The reader of a TCP stream. */
BLZ_API blz_reader blz_tcp_reader(struct blz_tcp_stream *s);
/** The writer of a TCP stream. */
BLZ_API blz_writer blz_tcp_writer(struct blz_tcp_stream *s);
/** The reader of a TCP read half. */
BLZ_API blz_reader blz_tcp_read_half_reader(struct blz_tcp_read_half *h);
/** The writer of a TCP write half. */
BLZ_API blz_writer blz_tcp_write_half_writer(struct blz_tcp_write_half *h);
/** The reader of a Unix stream. */
BLZ_API blz_reader blz_unix_reader(struct blz_unix_stream *s);
/** The writer of a Unix stream. */
BLZ_API blz_writer blz_unix_writer(struct blz_unix_stream *s);
/** The reader of a Unix read half (blz_unix_split). */
BLZ_API blz_reader blz_unix_read_half_reader(struct blz_unix_read_half *h);
/** The writer of a Unix write half (blz_unix_split). */
BLZ_API blz_writer blz_unix_write_half_writer(struct blz_unix_write_half *h);

/* ---- single operations ------------------------------------------------------- */

/** Fills `f` with one read from `r`; a reader without a vtable gives -EINVAL. */
BLZ_API void blz_read_fut(blz_reader r, void *buf, size_t n, blz_io_future *f);
/** Reads up to `n` bytes: a count, 0 at end of stream, or -errno. Awaits. */
BLZ_API ssize_t blz_read(blz_reader r, void *buf, size_t n);
/** Fills `f` with one write to `w`. */
BLZ_API void blz_write_fut(blz_writer w, const void *buf, size_t n, blz_io_future *f);
/** Writes up to `n` bytes: a count or -errno. Awaits. */
BLZ_API ssize_t blz_write(blz_writer w, const void *buf, size_t n);
/** Fills `f` with a flush of `w`: its vtable's flush_fut, or a future ready with 0 for a writer
 * that buffers nothing (-EINVAL without a vtable). */
BLZ_API void blz_flush_fut(blz_writer w, blz_io_future *f);
/** Flushes what `w` buffers (0 for writers that buffer nothing). Awaits. */
BLZ_API int blz_flush(blz_writer w);
/** Fills `f` to end writing to `w`: its vtable's shutdown_fut, or a flush where it has none. */
BLZ_API void blz_write_shutdown_fut(blz_writer w, blz_io_future *f);
/** Ends writing to `w` (see blz_write_shutdown_fut): the peer of a stream reads end of stream
 * once what was written has been read. 0 or -errno. Awaits. */
BLZ_API int blz_write_shutdown(blz_writer w);

/* ---- loops --------------------------------------------------------------------- */

/**
 * The future of a loop over reads and writes (read-exact, read-to-end,
 * write-all, copy).
 * Caller-owned; all fields but `base` are private.
 */
typedef struct blz_stream_future {
    blz_future base;   /**< result: 0 or -errno */
    blz_io_future io_; /* the read or write in flight */
    blz_reader r_;
    blz_writer w_;
    unsigned char *buf_;  /* data (read_exact, write_all) or the copy buffer */
    size_t len_;          /* bytes wanted, or the copy buffer's size */
    size_t done_;         /* bytes done (read_exact, write_all), or bytes of buf_ written (copy) */
    size_t fill_;         /* copy: bytes in buf_ */
    uint64_t total_;      /* copy: bytes copied so far */
    uint64_t *out_total_; /* copy: where to store the total, or NULL */
    size_t *out_len_;     /* read_to_end: where to store the count */
    int op_;
    int state_;
    unsigned char probe_; /* read_to_end: the byte that tells a full buffer from a longer stream */
} blz_stream_future;

/**
 * Fills `f` to read exactly `n` bytes. Result 0, -EPIPE when the stream ends
 * first (the bytes read so far are in `buf`), or the read's error. Not
 * cancel-safe, as in Tokio: a future dropped before it completes has taken
 * some bytes from the stream into `buf` and says not how many; where a wait
 * may be cut short (a timeout, a select), read with blz_read and count.
 */
BLZ_API void blz_read_exact_fut(blz_reader r, void *buf, size_t n, blz_stream_future *f);
/** Reads exactly `n` bytes (see blz_read_exact_fut). Awaits. */
BLZ_API int blz_read_exact(blz_reader r, void *buf, size_t n);

/**
 * Fills `f` to read `r` until it ends, into `buf` of `cap` bytes. Result 0
 * once the stream ended, with the byte count in `*len`; -EFBIG when the
 * stream holds more than `cap` bytes (`buf` holds the first `cap`, and one
 * byte more was taken from the stream to find out); or the read's error.
 * `*len` (what `buf` holds) is stored when the future completes, also on
 * error. The caller sets the bound: a peer cannot make it allocate.
 */
BLZ_API void blz_read_to_end_fut(blz_reader r, void *buf, size_t cap, size_t *len,
                                 blz_stream_future *f);
/** Reads `r` to its end (see blz_read_to_end_fut). Awaits. */
BLZ_API int blz_read_to_end(blz_reader r, void *buf, size_t cap, size_t *len);

/**
 * Formats as printf does and writes all of it to `w` (the seed's print).
 * Returns the bytes written, -EINVAL (bad writer or format), -ENOMEM (a long
 * text needs a heap buffer), or the write's error. Awaits.
 */
BLZ_API int blz_write_fmt(blz_writer w, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/** Fills `f` to write all `n` bytes. Result 0 or the first error. */
BLZ_API void blz_write_all_fut(blz_writer w, const void *buf, size_t n, blz_stream_future *f);
/** Writes all `n` bytes. Awaits. Returns 0 or -errno (-EPIPE, -ECONNRESET...). */
BLZ_API int blz_write_all(blz_writer w, const void *buf, size_t n);

/**
 * Fills `f` to copy `r` into `w` until `r` ends, then flush `w`, through the
 * caller's buffer `buf` of `cap` bytes (> 0). Stores the bytes copied in
 * `*copied` (may be NULL) when it completes, also on error (what was written).
 */
BLZ_API void blz_copy_fut(blz_reader r, blz_writer w, void *buf, size_t cap, uint64_t *copied,
                          blz_stream_future *f);
/** Copies `r` into `w` until `r` ends (with a 16 KiB heap buffer). 0 or -errno. Stores
 * `*copied` on every return, -ECANCELED (the task was aborted) included. Awaits. */
BLZ_API int blz_copy(blz_reader r, blz_writer w, uint64_t *copied);

/**
 * The future of a copy both ways between two streams, a and b (Tokio's
 * copy_bidirectional). Caller-owned; all fields but `base` are private.
 */
typedef struct blz_copy_bidi_future {
    blz_future base;       /**< result: 0 once both directions ended, or the first error */
    blz_stream_future ab_; /* a's reader into b's writer */
    blz_stream_future ba_; /* b's reader into a's writer */
    uint64_t *out_ab_, *out_ba_;
    unsigned ended_; /* 1: ab_ finished, 2: ba_ finished */
} blz_copy_bidi_future;

/** Both directions of one connection: how to read it and how to write it. */
typedef struct blz_duplex {
    blz_reader r; /**< its reader */
    blz_writer w; /**< its writer */
} blz_duplex;

/**
 * Fills `f` to copy a's reader into b's writer and b's reader into a's
 * writer at the same time, until both readers end: what a proxy does between
 * its client and its upstream. When one reader ends, the writer it fed is
 * shut down (blz_write_shutdown: its peer reads end of stream) and the other
 * direction goes on, so a half-closed connection keeps working. The first
 * error ends both directions (the other one is dropped) and is the result.
 * `buf` of `cap` bytes (at least 2) is split in two halves, one per
 * direction. The bytes written each way are stored in `*a_to_b` and
 * `*b_to_a` (each may be NULL) when the future completes, also on error.
 */
BLZ_API void blz_copy_bidirectional_fut(blz_duplex a, blz_duplex b, void *buf, size_t cap,
                                        uint64_t *a_to_b, uint64_t *b_to_a,
                                        blz_copy_bidi_future *f);
/** Copies both ways (see blz_copy_bidirectional_fut) with a 32 KiB heap buffer. 0 or -errno
 * (-ENOMEM). Stores the two counts on every return, -ECANCELED (the task was
 * aborted) included. Awaits. */
BLZ_API int blz_copy_bidirectional(blz_duplex a, blz_duplex b, uint64_t *a_to_b, uint64_t *b_to_a);

/* ---- memory as a stream ---------------------------------------------------------------- */

/**
 * A reader over bytes in memory (Tokio's &[u8] as AsyncRead): each read
 * copies from where the last one stopped, and returns 0 at the end. For
 * parsing what arrived some other way with the stream functions, and for
 * tests. Caller storage; the bytes must outlive it. Fields private.
 */
typedef struct blz_mem_reader {
    const unsigned char *data_;
    size_t len_, pos_;
} blz_mem_reader;

/** Sets `m` up over `len` bytes at `data` and returns it as a reader (one without a vtable when
 * `m` is NULL, or `data` is NULL and `len` is not 0). Its reads complete at once. */
BLZ_API blz_reader blz_mem_reader_init(blz_mem_reader *m, const void *data, size_t len);

/**
 * A writer into a caller's buffer of fixed size: each write appends what
 * fits and returns the count; a write to a full buffer fails with -ENOSPC.
 * Caller storage. Fields private.
 */
typedef struct blz_mem_writer {
    unsigned char *buf_;
    size_t cap_, len_;
} blz_mem_writer;

/** Sets `m` up over `buf` of `cap` bytes and returns it as a writer (one without a vtable when
 * `m` is NULL, or `buf` is NULL and `cap` is not 0). Its writes complete at once. */
BLZ_API blz_writer blz_mem_writer_init(blz_mem_writer *m, void *buf, size_t cap);
/** Bytes written into the buffer so far. */
BLZ_API size_t blz_mem_writer_len(const blz_mem_writer *m);

/**
 * One end of two connected in-memory byte streams (Tokio's io::duplex):
 * what one end writes, the other reads, up to a bound in flight each way;
 * a writer waits while its direction is full, a reader while it is empty.
 * For testing protocol code without sockets, and for joining two tasks by a
 * stream. Each end is read by one task at a time and written by one task at
 * a time, as any stream; the ends may be used on different threads. Opaque.
 */
typedef struct blz_mem_stream blz_mem_stream;

/**
 * Makes a connected pair with room for `max_buf` bytes in flight in each
 * direction. 0, -EINVAL (NULL, `max_buf` 0), -ENOMEM. Any thread; no runtime
 * needed (a plain thread's reads and writes park it).
 */
BLZ_API int blz_mem_stream_pair(size_t max_buf, blz_mem_stream **a, blz_mem_stream **b);
/** The reader of an end: reads return what the other end wrote, 0 once it
 * shut down or closed and everything was read. */
BLZ_API blz_reader blz_mem_stream_reader(blz_mem_stream *s);
/** The writer of an end: writes return the count that fit (waiting while
 * none does), -EPIPE once the other end closed or this one shut down.
 * blz_write_shutdown ends this direction: the other end reads the rest, then 0. */
BLZ_API blz_writer blz_mem_stream_writer(blz_mem_stream *s);
/** Both of an end, for blz_copy_bidirectional. */
BLZ_API blz_duplex blz_mem_stream_duplex(blz_mem_stream *s);
/**
 * Closes an end: the other end reads what is in flight and then 0, and its
 * writes fail with -EPIPE; waits of the other end wake. No future on this
 * end may be pending. Close each end once: the pair is freed when both are
 * closed, and neither may be used after that. NULL is ignored.
 */
BLZ_API void blz_mem_stream_close(blz_mem_stream *s);

/* ---- a limited reader ---------------------------------------------------------------- */

/**
 * A reader that ends after `limit` bytes of another (Tokio's take): for a
 * body whose length a header gave, copied or read to its end. The bytes past
 * the limit stay in the inner reader. Caller storage, used by one task at a
 * time; fields private.
 */
typedef struct blz_take {
    blz_reader inner_;
    uint64_t left_;
    blz_io_future in_; /* the inner read in flight */
} blz_take;

/** Sets `t` up to read at most `limit` bytes of `inner` and returns it as a reader (one without a
 * vtable, whose reads fail with -EINVAL, when `t` is NULL or `inner` has none). */
BLZ_API blz_reader blz_take_init(blz_take *t, blz_reader inner, uint64_t limit);
/** Bytes `t` may still read before it ends. */
BLZ_API uint64_t blz_take_left(const blz_take *t);

/* ---- buffered reader -------------------------------------------------------------- */

/** A reader with a buffer in front. Caller storage; fields private. */
typedef struct blz_buf_reader {
    blz_reader inner_;
    unsigned char *buf_;
    size_t cap_, pos_, end_; /* buf_[pos_, end_) holds unread data */
    bool owned_;             /* buf_ was allocated by init */
    bool eof_;               /* the inner reader ended */
    int err_;                /* an error read_until met after some bytes: the next read's result */
    blz_io_future fill_;     /* the inner read in flight */
} blz_buf_reader;

/**
 * Initialises `br` over `inner` with the buffer `buf` of `cap` bytes, or, when
 * `buf` is NULL, an allocated one (`cap` 0: 8 KiB; freed by deinit).
 * Returns 0, -EINVAL (cap 0 with a buffer, or no inner vtable), -ENOMEM.
 */
BLZ_API int blz_buf_reader_init(blz_buf_reader *br, blz_reader inner, void *buf, size_t cap);
/** Frees an allocated buffer; `br` must have no operation in flight. */
BLZ_API void blz_buf_reader_deinit(blz_buf_reader *br);
/** `br` as a reader (reads come from the buffer first). */
BLZ_API blz_reader blz_buf_reader_as_reader(blz_buf_reader *br);
/** Future tier of blz_buf_reader_read; result as its return. NULL `f` is ignored. */
BLZ_API void blz_buf_reader_read_fut(blz_buf_reader *br, void *buf, size_t n, blz_io_future *f);
/** Reads up to `n` bytes, from the buffer or one refill. Awaits. */
BLZ_API ssize_t blz_buf_reader_read(blz_buf_reader *br, void *buf, size_t n);
/**
 * The bytes buffered now, with `*data` (when not NULL) pointing at them
 * (NULL when there are none): fill's try tier, it never reads.
 */
BLZ_API size_t blz_buf_reader_buffer(const blz_buf_reader *br, const void **data);
/**
 * Future tier of blz_buf_reader_fill: its result is the count of bytes
 * blz_buf_reader_buffer then shows, 0 at end of stream, or -errno. NULL `f`
 * is ignored.
 */
BLZ_API void blz_buf_reader_fill_fut(blz_buf_reader *br, blz_io_future *f);
/**
 * Makes data available: returns how many bytes `*data` points at (refilling
 * once if the buffer is empty), 0 at end of stream, or -errno. Use
 * blz_buf_reader_consume to mark bytes used. Awaits.
 */
BLZ_API ssize_t blz_buf_reader_fill(blz_buf_reader *br, const void **data);
/** Marks `n` bytes of what fill returned as used (clamped). */
BLZ_API void blz_buf_reader_consume(blz_buf_reader *br, size_t n);
/**
 * Copies bytes into `out` up to and including the first `delim`, or until
 * `cap` bytes were copied, or the stream ends. Returns the count (the last
 * byte is `delim` unless the line was longer than `cap` or the stream ended),
 * 0 at end of stream, -EINVAL for cap 0 (no room: not an end), or -errno
 * (an error after some bytes: the count; the next read reports it). Awaits.
 */
BLZ_API ssize_t blz_buf_reader_read_until(blz_buf_reader *br, int delim, void *out, size_t cap);
/**
 * Future tier of blz_buf_reader_read_until; result as its return. Not
 * cancel-safe: a future dropped before it completes has taken bytes from
 * the buffer into `out` and says not how many (as blz_read_exact_fut).
 * NULL `f` is ignored.
 */
BLZ_API void blz_buf_reader_read_until_fut(blz_buf_reader *br, int delim, void *out, size_t cap,
                                           blz_io_future *f);
/**
 * Reads one line into `line` (NUL-terminated, with its '\n' when it fits):
 * returns its length without the NUL, 0 at end of stream, -EINVAL for
 * cap < 2, or -errno. A line longer than cap-1 bytes comes in pieces. Awaits.
 */
BLZ_API ssize_t blz_buf_reader_read_line(blz_buf_reader *br, char *line, size_t cap);
/** Future tier of blz_buf_reader_read_line (not cancel-safe, as read_until_fut); result as
 *  its return, the NUL stored when it completes. NULL `f` is ignored. */
BLZ_API void blz_buf_reader_read_line_fut(blz_buf_reader *br, char *line, size_t cap,
                                          blz_io_future *f);
/** Reads exactly `n` bytes through the buffer (0, -EPIPE at early end, -errno). Awaits. */
BLZ_API int blz_buf_reader_read_exact(blz_buf_reader *br, void *buf, size_t n);

/* ---- buffered writer --------------------------------------------------------------- */

/** A writer with a buffer in front. Caller storage; fields private. */
typedef struct blz_buf_writer {
    blz_writer inner_;
    unsigned char *buf_;
    size_t cap_, len_; /* buf_[0, len_) waits to be written */
    size_t sent_;      /* bytes of buf_ already written during a flush */
    bool owned_;
    blz_io_future out_; /* the inner write in flight */
} blz_buf_writer;

/** Initialises `bw` over `inner`; buffer as blz_buf_reader_init. 0, -EINVAL, -ENOMEM. */
BLZ_API int blz_buf_writer_init(blz_buf_writer *bw, blz_writer inner, void *buf, size_t cap);
/** Frees an allocated buffer. Does not flush: flush first. */
BLZ_API void blz_buf_writer_deinit(blz_buf_writer *bw);
/** `bw` as a writer (its flush writes the buffer out, then flushes the inner writer). The
 *  future tiers of the calls below are the writer's: blz_write_fut, blz_write_all_fut and
 *  blz_flush_fut on blz_buf_writer_as_writer(bw). */
BLZ_API blz_writer blz_buf_writer_as_writer(blz_buf_writer *bw);
/** Buffers `n` bytes, writing the buffer out when full. Returns a count > 0 or -errno. Awaits. */
BLZ_API ssize_t blz_buf_writer_write(blz_buf_writer *bw, const void *buf, size_t n);
/** Buffers all `n` bytes (writing out as needed). 0 or -errno. Awaits. */
BLZ_API int blz_buf_writer_write_all(blz_buf_writer *bw, const void *buf, size_t n);
/** Writes out everything buffered, then flushes the inner writer. 0 or -errno. Awaits. */
BLZ_API int blz_buf_writer_flush(blz_buf_writer *bw);
/** Bytes buffered and not yet written. */
BLZ_API size_t blz_buf_writer_buffered(const blz_buf_writer *bw);

#ifdef __cplusplus
}
#endif
#endif /* BLZ_STREAM_H */
