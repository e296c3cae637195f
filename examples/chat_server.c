/*
 * examples/chat_server.c — a line-based chat room over TCP.
 *
 *   build/examples/chat_server [address]      (default 127.0.0.1:8080)
 *   then: nc 127.0.0.1 8080   (in several terminals)
 *
 * Every line a client sends goes to every other client, prefixed with its
 * name. One connection = two fiber tasks on the two halves of a split
 * stream: a reader (BufReader lines -> broadcast channel) and a writer
 * (broadcast channel -> socket). A client that falls more than 256 messages
 * behind is told how many it missed. Runs until SIGINT/SIGTERM.
 *
 * `kill -USR1 <pid>` prints a task dump on stderr: every task, and for each
 * connection's fibers the stack they wait on (blz_runtime_dump_fd;
 * `addr2line -f -e build/examples/chat_server <offset>` names the frames).
 */
#include "blitzio.h"
#include "blitzio/chan.h"
#include "blitzio/net.h"
#include "blitzio/stream.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_ 512

typedef struct chat_msg {
    unsigned from; /* the sender's connection number */
    unsigned len;  /* bytes of text */
    char text[LINE_MAX_ + 32];
} chat_msg;

/* A connection: the reader task owns the read half, the writer task the
 * write half, and both the rest; the last one out frees it. (The reader
 * cannot wait for the writer on every path: once its runtime shuts down,
 * an aborted task's waits return -ECANCELED at once.) */
typedef struct conn {
    unsigned id;
    atomic_int refs;
    blz_tcp_read_half *rd;
    blz_tcp_write_half *wr;
    blz_broadcast_rx rx;
} conn;

static blz_broadcast room;
static blz_shutdown stop; /* triggered by SIGINT or SIGTERM */

static void
conn_release(conn *c)
{
    if (atomic_fetch_sub(&c->refs, 1) == 1) {
        free(c);
    }
}

/* The writer's part of the end of a connection: also what runs instead of
 * the writer when it is aborted before it starts (blz_spawn_owned). */
static void
writer_done(void *arg)
{
    conn *c = arg;
    blz_tcp_write_half_close(c->wr);
    conn_release(c);
}

/* broadcast channel -> socket */
static void *
writer(void *arg)
{
    conn *c = arg;
    static const char hello[] = "* welcome to the chat\n";
    blz_writer w = blz_tcp_write_half_writer(c->wr);
    if (blz_write_all(w, hello, sizeof hello - 1) < 0) {
        writer_done(c);
        return NULL;
    }
    for (;;) {
        chat_msg m;
        int rc = blz_broadcast_recv(&c->rx, &m);
        if (rc == -EOVERFLOW) {
            char note[64];
            int n = snprintf(note, sizeof note, "* you missed %llu messages\n",
                             (unsigned long long) blz_broadcast_rx_missed(&c->rx));
            rc = blz_write_all(w, note, (size_t) n);
        } else if (rc == 0 && m.from != c->id) {
            rc = blz_write_all(w, m.text, m.len);
        }
        if (rc < 0 && rc != -EOVERFLOW) {
            writer_done(c); /* unsubscribed (-EPIPE), closed, or the peer is gone */
            return NULL;
        }
    }
}

static void
announce(unsigned from, const char *what)
{
    chat_msg m = {from, 0, {0}};
    m.len = (unsigned) snprintf(m.text, sizeof m.text, "* user%u %s\n", from, what);
    (void) blz_broadcast_send(&room, &m);
}

/* What runs instead of the reader when it is aborted before it starts. */
static void
reader_never_ran(void *arg)
{
    conn *c = arg;
    blz_tcp_read_half_close(c->rd);
    blz_tcp_write_half_close(c->wr);
    free(c);
}

/* socket -> broadcast channel */
static void *
reader(void *arg)
{
    conn *c = arg;
    atomic_init(&c->refs, 2); /* this task and the writer */
    if (blz_broadcast_subscribe(&room, &c->rx) < 0 ||
        blz_spawn_owned(writer, writer_done, c, NULL) < 0) {
        writer_done(c); /* no writer: its part ends here */
        goto done;
    }
    announce(c->id, "joined");
    blz_buf_reader br;
    if (blz_buf_reader_init(&br, blz_tcp_read_half_reader(c->rd), NULL, 0) == 0) {
        char line[LINE_MAX_];
        ssize_t n;
        while ((n = blz_buf_reader_read_line(&br, line, sizeof line)) > 0) {
            /* The line is copied as bytes, not formatted with %s: a NUL byte
             * in it would cut it short there, newline included, and glue the
             * next message onto it. */
            chat_msg m = {c->id, 0, {0}};
            m.len = (unsigned) snprintf(m.text, sizeof m.text, "user%u: ", c->id);
            memcpy(m.text + m.len, line, (size_t) n);
            m.len += (unsigned) n;
            if (line[n - 1] != '\n') {
                m.text[m.len++] = '\n'; /* a piece of a long line, or the last without one */
            }
            (void) blz_broadcast_send(&room, &m);
        }
        blz_buf_reader_deinit(&br);
    }
    announce(c->id, "left");
done:
    blz_broadcast_unsubscribe(&c->rx); /* ends the writer's wait with -EPIPE */
    blz_tcp_read_half_close(c->rd);
    conn_release(c);
    return NULL;
}

static void *
wait_for_stop(void *arg)
{
    int sig = blz_shutdown_wait(&stop);
    fprintf(stderr, "chat_server: signal %d, stopping\n", sig);
    blz_tcp_listener_close(arg);
    return NULL;
}

/* SIGUSR1 -> a task dump on stderr, until the runtime ends (the task is
 * aborted then, and the receive returns -ECANCELED). serve listens before it
 * announces its address, so a SIGUSR1 sent from then on is never the
 * default action that would end the process. */
static blz_signal_listener usr1;

static void *
dump_on_usr1(void *arg)
{
    (void) arg;
    while (blz_signal_recv(&usr1) > 0) {
        (void) blz_runtime_dump_fd(blz_runtime_current(), 2);
    }
    blz_signal_unlisten(&usr1);
    return NULL;
}

static void *
serve(void *arg)
{
    blz_tcp_listener *l;
    int rc = blz_tcp_listen(arg, &l);
    if (rc < 0) {
        fprintf(stderr, "chat_server: listen %s: %s\n", (const char *) arg, blz_strerror(rc));
        return (void *) 1;
    }
    /* The address is read before the stopper exists: once it runs, it
     * may close the socket at any moment. */
    blz_addr bound;
    bool bound_ok = blz_tcp_listener_addr(l, &bound) == 0;
    blz_join *stopper = NULL;
    (void) blz_shutdown_init(&stop);
    if (blz_signal_listen(&usr1, SIGUSR1) == 0 && blz_spawn(dump_on_usr1, NULL, NULL) < 0) {
        blz_signal_unlisten(&usr1);
    }
    if (blz_shutdown_on_signals(&stop, NULL, 0) < 0 || blz_spawn(wait_for_stop, l, &stopper) < 0) {
        (void) blz_shutdown_deinit(&stop);
        blz_tcp_listener_close(l);
        return (void *) 1;
    }
    /* Announced only once the signals are ours: a SIGUSR1 or SIGTERM sent as
     * soon as the address is printed must reach the server's tasks. */
    char text[BLZ_ADDR_STRLEN];
    if (bound_ok && blz_addr_format(&bound, text, sizeof text) > 0) {
        printf("chat_server: listening on %s\n", text); /* the port the kernel picked for :0 */
        fflush(stdout);
    }
    for (unsigned next_id = 1;;) {
        blz_tcp_stream *s;
        rc = blz_tcp_accept(l, &s, NULL);
        if (rc == -ECANCELED) {
            break;
        }
        if (rc < 0) {
            continue;
        }
        conn *c = calloc(1, sizeof *c);
        if (!c) {
            blz_tcp_close(s);
            continue;
        }
        c->id = next_id++;
        blz_tcp_split(s, &c->rd, &c->wr);
        if (blz_spawn_owned(reader, reader_never_ran, c, NULL) < 0) {
            reader_never_ran(c);
        }
    }
    blz_join_wait(stopper, NULL);
    (void) blz_shutdown_deinit(&stop);
    blz_broadcast_close(&room); /* writers still waiting see -EPIPE */
    return NULL;
}

int
main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:8080";
    if (blz_broadcast_init(&room, sizeof(chat_msg), 256) < 0) {
        return 1;
    }
    blz_runtime *rt;
    if (blz_runtime_new(NULL, &rt) < 0) {
        return 1;
    }
    void *failed = NULL;
    int rc = blz_runtime_block_on(rt, serve, (void *) addr, &failed);
    blz_runtime_free(rt);
    blz_broadcast_deinit(&room);
    return rc < 0 || failed ? 1 : 0;
}
