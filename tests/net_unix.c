/*
 * Unix-domain sockets: stream listener/connect on a path and on an abstract
 * name, socketpair, peer credentials, datagrams, and errors.
 */
#include "net_common.h"

#include <sys/stat.h>
#include <unistd.h>

static void
temp_path(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "/tmp/blz-%s-%ld.sock", tag, (long) getpid());
    unlink(buf);
}

typedef struct unix_ctx {
    blz_unix_listener *l;
} unix_ctx;

static void *
unix_echo(void *arg)
{
    unix_ctx *c = arg;
    blz_unix_stream *s = NULL;
    CHECK_OK(blz_unix_accept(c->l, &s, NULL));
    blz_ucred cred;
    CHECK_OK(blz_unix_peer_cred(s, &cred));
    CHECK_EQ(cred.pid, getpid());
    CHECK_EQ(cred.uid, getuid());
    char buf[1024];
    for (;;) {
        ssize_t n = CHECK_OK(blz_unix_read(s, buf, sizeof buf));
        if (n == 0) {
            break;
        }
        CHECK_OK(blz_unix_write_all(s, buf, (size_t) n));
    }
    blz_unix_close(s);
    return NULL;
}

static void
echo_over(const char *where)
{
    unix_ctx c;
    CHECK_OK(blz_unix_listen(where, &c.l));
    blz_addr la;
    CHECK_OK(blz_unix_listener_addr(c.l, &la));
    CHECK_EQ(blz_addr_get_family(&la), BLZ_AF_UNIX);
    blz_join *j;
    CHECK_OK(blz_spawn(unix_echo, &c, &j));
    blz_unix_stream *s = NULL;
    CHECK_OK(blz_unix_connect(where, &s));
    blz_addr peer;
    CHECK_OK(blz_unix_peer_addr(s, &peer));
    CHECK(blz_addr_equal(&peer, &la));
    static unsigned char out[200000], in[200000];
    net_fill(3, 0, out, sizeof out);
    CHECK_OK(blz_unix_write_all(s, out, sizeof out));
    size_t got = 0;
    while (got < sizeof in) {
        ssize_t n = CHECK_OK(blz_unix_read(s, in + got, sizeof in - got));
        CHECK_GT(n, 0);
        got += (size_t) n;
    }
    CHECK(memcmp(in, out, sizeof in) == 0);
    blz_iovec v[2] = {{(void *) "ab", 2}, {(void *) "cd", 2}};
    CHECK_EQ(blz_unix_writev(s, v, 2), 4);
    char r1[2], r2[2];
    blz_iovec rv[2] = {{r1, 2}, {r2, 2}};
    ssize_t n = 0;
    while (n < 4) {
        ssize_t k = CHECK_OK(blz_unix_readv(s, rv, 2));
        n += k;
        if (n < 4) { /* rare partial read: take the rest plainly */
            CHECK_OK(blz_unix_read(s, n < 2 ? r1 + n : r2 + (n - 2), (size_t) (4 - n)));
            n = 4;
        }
    }
    CHECK_OK(blz_unix_shutdown(s, BLZ_SHUT_WR));
    char x;
    CHECK_EQ(blz_unix_read(s, &x, 1), 0);
    CHECK_OK(blz_join_wait(j, NULL));
    blz_unix_close(s);
    blz_unix_listener_close(c.l);
}

static void *
unix_stream_main(void *arg)
{
    (void) arg;
    char path[108];
    temp_path(path, sizeof path, "stream");
    echo_over(path);
    struct stat st;
    CHECK_OK(stat(path, &st)); /* the listener leaves its path behind */
    CHECK(S_ISSOCK(st.st_mode));
    unlink(path);
    /* Connecting to a path nobody listens on. */
    blz_unix_stream *s = NULL;
    CHECK_EQ(blz_unix_connect(path, &s), -ENOENT);
    /* Listening where a file exists. */
    blz_unix_listener *l = NULL, *l2 = NULL;
    CHECK_OK(blz_unix_listen(path, &l));
    CHECK_EQ(blz_unix_listen(path, &l2), -EADDRINUSE);
    blz_unix_listener_close(l);
    CHECK_EQ(blz_unix_connect(path, &s), -ECONNREFUSED);
    unlink(path);
    return NULL;
}

BLZ_TEST(unix_stream_path)
{
    net_run(2, unix_stream_main, NULL);
}

static void *
unix_abstract_main(void *arg)
{
    (void) arg;
    char name[64];
    snprintf(name, sizeof name, "@blz-test-%ld", (long) getpid());
    echo_over(name);
    char unixname[80];
    snprintf(unixname, sizeof unixname, "unix:%s", name);
    blz_unix_stream *s = NULL;
    CHECK_EQ(blz_unix_connect(unixname, &s), -ECONNREFUSED); /* gone with its listener */
    CHECK_EQ(blz_unix_connect("@", &s), -EINVAL);
    /* Anything else is a relative path, like any file name. */
    CHECK_EQ(blz_unix_connect("127.0.0.1:80", &s), -ENOENT);
    return NULL;
}

BLZ_TEST(unix_stream_abstract)
{
    net_run(2, unix_abstract_main, NULL);
}

static void *
unix_pair_main(void *arg)
{
    (void) arg;
    blz_unix_stream *a = NULL, *b = NULL;
    CHECK_OK(blz_unix_pair(&a, &b));
    CHECK_EQ(blz_unix_try_read(b, (char[4]){0}, 4), -EAGAIN);
    CHECK_EQ(blz_unix_write(a, "pair", 4), 4);
    char buf[8];
    CHECK_EQ(blz_unix_read(b, buf, sizeof buf), 4);
    blz_ucred cred;
    CHECK_OK(blz_unix_peer_cred(a, &cred));
    CHECK_EQ(cred.pid, getpid());
    blz_addr la;
    CHECK_OK(blz_unix_local_addr(a, &la));
    char txt[BLZ_ADDR_STRLEN];
    CHECK_OK(blz_addr_format(&la, txt, sizeof txt));
    CHECK_STR_EQ(txt, "unix:");
    /* The peer's close shows as end of stream; writing then says EPIPE. */
    blz_unix_close(b);
    CHECK_EQ(blz_unix_read(a, buf, sizeof buf), 0);
    CHECK_EQ(blz_unix_write(a, "x", 1), -EPIPE);
    blz_unix_close(a);
    return NULL;
}

BLZ_TEST(unix_socketpair_and_creds)
{
    net_run(2, unix_pair_main, NULL);
}

static void *
unix_dgram_main(void *arg)
{
    (void) arg;
    char pa[108], pb[108];
    temp_path(pa, sizeof pa, "dga");
    temp_path(pb, sizeof pb, "dgb");
    blz_unix_datagram *a = NULL, *b = NULL;
    CHECK_OK(blz_unix_datagram_bind(pa, &a));
    CHECK_OK(blz_unix_datagram_bind(pb, &b));
    blz_addr ab, bb, from;
    CHECK_OK(blz_unix_datagram_local_addr(a, &ab));
    CHECK_OK(blz_unix_datagram_local_addr(b, &bb));
    char buf[64];
    CHECK_EQ(blz_unix_datagram_try_recv_from(b, buf, sizeof buf, &from), -EAGAIN);
    CHECK_EQ(blz_unix_datagram_send_to(a, "one", 3, &bb), 3);
    CHECK_EQ(blz_unix_datagram_recv_from(b, buf, sizeof buf, &from), 3);
    CHECK(blz_addr_equal(&from, &ab));
    CHECK_OK(blz_unix_datagram_connect(b, pa));
    CHECK_EQ(blz_unix_datagram_send(b, "two", 3), 3);
    CHECK_EQ(blz_unix_datagram_recv(a, buf, sizeof buf), 3);
    blz_unix_datagram_close(a);
    blz_unix_datagram_close(b);
    unlink(pa);
    unlink(pb);

    /* Abstract datagram names and pairs. */
    char name[64];
    snprintf(name, sizeof name, "@blz-dg-%ld", (long) getpid());
    CHECK_OK(blz_unix_datagram_bind(name, &a));
    CHECK_OK(blz_unix_datagram_unbound(&b));
    blz_addr target;
    CHECK_OK(blz_addr_from_unix(name, &target));
    CHECK_EQ(blz_unix_datagram_send_to(b, "abs", 3, &target), 3);
    CHECK_EQ(blz_unix_datagram_recv_from(a, buf, sizeof buf, &from), 3);
    CHECK_EQ(blz_addr_get_family(&from), BLZ_AF_UNIX); /* an unnamed sender */
    blz_unix_datagram_close(a);
    blz_unix_datagram_close(b);

    blz_unix_datagram *p = NULL, *q = NULL;
    CHECK_OK(blz_unix_datagram_pair(&p, &q));
    for (int i = 0; i < 50; i++) {
        CHECK_EQ(blz_unix_datagram_send(p, &i, sizeof i), sizeof i);
    }
    for (int i = 0; i < 50; i++) {
        int v = -1;
        CHECK_EQ(blz_unix_datagram_recv(q, &v, sizeof v), sizeof v);
        CHECK_EQ(v, i);
    }
    blz_unix_datagram_close(p);
    blz_unix_datagram_close(q);
    CHECK_EQ(blz__io_driver_waiters(net_driver()), 0);
    return NULL;
}

BLZ_TEST(unix_datagram_path_abstract_pair)
{
    net_run(2, unix_dgram_main, NULL);
}
