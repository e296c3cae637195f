/*
 * The native resolver: /etc/hosts, then DNS over UDP (over TCP for an
 * answer that did not fit), asked from a fiber task on the runtime.
 *
 * One lookup is one task. It reads the hosts file and resolv.conf through
 * the fs module (ring ops or the blocking pool: no worker blocks), walks the
 * candidate names the search list gives, and for each asks the servers in
 * turn, `attempts` rounds, each try bounded by `timeout_ms`. A try sends
 * the AAAA and the A query together on one connected UDP socket (a fresh
 * one per try, so its port is random) and waits for both answers; replies
 * that do not match a query's id and question are ignored (the usual
 * defence against spoofed answers), a truncated one is asked again over TCP.
 *
 * What ends a name: addresses of either type (a server that answered only
 * one of the two queries before the deadline still counts); NXDOMAIN, or no
 * data of either type (the name is settled: the next candidate); SERVFAIL,
 * REFUSED, a timeout or a refused socket move on to the next server and, when
 * every candidate failed so, decide the error: -EAGAIN if some server
 * answered, else -ETIMEDOUT.
 *
 * Lifetime: the job and the future are the ones every lookup shares
 * (lookup.h). Dropping the future aborts the task: its waits return
 * -ECANCELED and it unwinds, closing its sockets; a task not started yet
 * runs its release hook instead (blz_runtime_spawn_owned), which lets go of the job.
 */
#include "blitzio/fs.h"
#include "blitzio/task.h"
#include "blitzio/time.h"
#include "core/alloc.h"
#include "core/atomic.h"
#include "net/dns_conf.h"
#include "net/dns_wire.h"
#include "net/lookup.h"
#include "net/sock.h"
#include "os/unix/sys.h"
#include "rt/current.h"

#include <string.h>
#include <sys/random.h>

#define DNS_REPLY_MAX 1500  /* a UDP answer; without EDNS a server sends at most 512 */
#define DNS_TCP_MAX   65535 /* a TCP answer: its 2-byte length says how long */

/* One query type's outcome at one server. */
typedef struct dns_reply {
    bool answered;
    int rcode;
    unsigned count;
    blz_addr addrs[BLZ__DNS_ANSWER_MAX];
} dns_reply;

/* A lookup's working memory: ≈ 16 KB, kept in the job rather than on its
 * task's stack, which may be as small as 16 KiB. */
typedef struct dns_scratch {
    blz__dns_conf conf;
    char names[BLZ__DNS_MAX_SEARCH + 1][BLZ__DNS_NAME_MAX + 1]; /* candidates */
    dns_reply rep[2];    /* AAAA, A at the server being asked */
    blz__dns_answer ans; /* the response being read */
    uint8_t buf[DNS_REPLY_MAX];
} dns_scratch;

typedef struct dns_job {
    blz__lookup lk;    /* the answer, and the shares of task and future */
    dns_scratch work;  /* the task's; untouched by the future */
    bool no_hosts;     /* opts->hosts was "" */
    unsigned nservers; /* from opts; 0: resolv.conf's */
    blz_addr servers[BLZ__DNS_MAX_SERVERS];
    unsigned timeout_ms; /* from opts; 0: resolv.conf's */
    unsigned attempts;   /* from opts; 0: resolv.conf's */
    const char *host;    /* into text[] */
    const char *resolv;  /* into text[] */
    const char *hosts;   /* into text[] */
    char text[];
} dns_job;

static uint16_t
query_id(void)
{
    uint16_t id;
    if (getrandom(&id, sizeof id, GRND_NONBLOCK) == (ssize_t) sizeof id) {
        return id;
    }
    /* No entropy yet (early boot): the clock's low bits, which an off-path
     * spoofer cannot read either. */
    static _Atomic uint32_t mix;
    uint32_t m = blz__fetch_add(&mix, 0x9e3779b9u, RELAXED);
    return (uint16_t) ((uint64_t) blz_clock_now() ^ m ^ (m >> 16));
}

/* ---- configuration ------------------------------------------------------- */

/* Reads a whole small file; NULL text when it cannot be read (then it is as
 * if empty, as glibc treats a missing resolv.conf or hosts file). */
static char *
read_text(const char *path, size_t *len)
{
    void *buf = NULL;
    if (blz_fs_read_file(path, &buf, len) < 0) {
        return NULL;
    }
    return buf;
}

static void
load_conf(const dns_job *j, blz__dns_conf *conf)
{
    size_t len = 0;
    char *text = read_text(j->resolv, &len);
    if (text) {
        (void) blz__dns_conf_parse(text, len, conf);
        blz_fs_free_buf(text);
    } else {
        blz__dns_conf_default(conf);
    }
    if (j->nservers) {
        memcpy(conf->servers, j->servers, j->nservers * sizeof(blz_addr));
        conf->nservers = j->nservers;
    }
    if (j->timeout_ms) {
        conf->timeout_ms = j->timeout_ms;
    }
    if (j->attempts) {
        conf->attempts = j->attempts;
    }
}

/* The hosts file's addresses for the name: how many, 0 when it has none. */
static int
from_hosts(const dns_job *j, blz_addr *out, size_t max)
{
    if (j->no_hosts) {
        return 0;
    }
    size_t len = 0;
    char *text = read_text(j->hosts, &len);
    if (!text) {
        return 0;
    }
    int n = blz__dns_hosts_lookup(text, len, j->host, out, max);
    blz_fs_free_buf(text);
    return n > 0 ? n : 0;
}

/* ---- one server ---------------------------------------------------------- */

static blz_instant
deadline_after(unsigned ms)
{
    return blz_clock_now() + (blz_instant) ms * 1000000;
}

/* Reads exactly n bytes from s before `deadline`: 0 or -errno (-EPIPE: the
 * server closed early). */
static int
read_exact_until(blz_tcp_stream *s, uint8_t *buf, size_t n, blz_instant deadline)
{
    size_t got = 0;
    while (got < n) {
        blz_io_future f;
        blz_tcp_read_fut(s, buf + got, n - got, &f);
        int r = blz_timeout_until(&f.base, deadline);
        if (r < 0) {
            return r;
        }
        if (r == 0) {
            return -EPIPE;
        }
        got += (size_t) r;
    }
    return 0;
}

/* Asks one query again over TCP (RFC 1035 4.2.2: a 2-byte length first). */
static int
ask_tcp(const blz_addr *server, const char *name, uint16_t qtype, blz_instant deadline,
        blz__dns_answer *ans)
{
    blz_tcp_stream *s;
    int rc = blz_tcp_connect_addr_until(server, deadline, &s);
    if (rc < 0) {
        return rc;
    }
    uint8_t *buf = blz__malloc(DNS_TCP_MAX);
    if (!buf) {
        blz_tcp_close(s);
        return -ENOMEM;
    }
    uint16_t id = query_id();
    int qlen = blz__dns_query_build(buf + 2, DNS_TCP_MAX - 2, id, name, qtype);
    rc = qlen;
    if (qlen > 0) {
        buf[0] = (uint8_t) (qlen >> 8);
        buf[1] = (uint8_t) qlen;
        blz_io_future f;
        blz_tcp_write_all_fut(s, buf, (size_t) qlen + 2, &f);
        rc = blz_timeout_until(&f.base, deadline);
    }
    if (rc >= 0) {
        rc = read_exact_until(s, buf, 2, deadline);
    }
    if (rc == 0) {
        size_t len = (size_t) buf[0] << 8 | buf[1];
        rc = read_exact_until(s, buf, len, deadline);
        if (rc == 0) {
            rc = blz__dns_response_parse(buf, len, id, name, qtype, ans);
        }
    }
    blz__free(buf);
    blz_tcp_close(s);
    return rc;
}

static void
reply_take(dns_reply *r, const blz__dns_answer *a)
{
    r->answered = true;
    r->rcode = a->rcode;
    r->count = a->count;
    memcpy(r->addrs, a->addrs, a->count * sizeof(blz_addr));
}

/*
 * One try at one server: both queries, until both are answered or the
 * deadline. Returns 0 when both were answered, else the error that stopped
 * it (-ETIMEDOUT, -ECONNREFUSED ...) with whatever was answered in `rep`.
 */
static int
ask_server(const blz_addr *server, const char *name, unsigned timeout_ms, dns_scratch *w)
{
    static const uint16_t types[2] = {BLZ__DNS_TYPE_AAAA, BLZ__DNS_TYPE_A};
    blz_instant deadline = deadline_after(timeout_ms);
    dns_reply *rep = w->rep;
    blz__dns_answer *ans = &w->ans;
    uint8_t *buf = w->buf;
    memset(rep, 0, 2 * sizeof *rep);
    blz_udp_socket *u;
    int rc = blz_udp_bind(blz_addr_get_family(server) == BLZ_AF_INET6 ? "[::]:0" : "0.0.0.0:0", &u);
    if (rc < 0) {
        return rc;
    }
    rc = blz_udp_connect(u, server);
    uint16_t ids[2];
    for (int t = 0; t < 2 && rc == 0; t++) {
        ids[t] = query_id();
        int qlen = blz__dns_query_build(buf, DNS_REPLY_MAX, ids[t], name, types[t]);
        if (qlen < 0) {
            rc = qlen;
            break;
        }
        ssize_t sent = blz_udp_send(u, buf, (size_t) qlen);
        rc = sent < 0 ? (int) sent : 0;
    }
    while (rc == 0 && !(rep[0].answered && rep[1].answered)) {
        blz_io_future f;
        blz_udp_recv_fut(u, buf, DNS_REPLY_MAX, &f);
        int n = blz_timeout_until(&f.base, deadline);
        if (n < 0) {
            rc = n;
            break;
        }
        for (int t = 0; t < 2; t++) {
            if (rep[t].answered ||
                blz__dns_response_parse(buf, (size_t) n, ids[t], name, types[t], ans) != 0) {
                continue; /* not an answer to this query: keep waiting */
            }
            if (ans->truncated && ask_tcp(server, name, types[t], deadline, ans) < 0) {
                ans->rcode = BLZ__DNS_RCODE_SERVFAIL; /* could not get the whole answer */
                ans->count = 0;
            }
            reply_take(&rep[t], ans);
            break;
        }
    }
    blz_udp_close(u);
    return rc;
}

/* ---- one name, every server ---------------------------------------------- */

/* Appends the replies' addresses with `port`: AAAA first if IPv6 is usable. */
static int
collect(const dns_reply rep[2], uint16_t port, blz_addr *out, size_t max)
{
    const dns_reply *v6 = &rep[0], *v4 = &rep[1];
    bool v6_first = v6->count && blz__sys_routable(&v6->addrs[0]);
    const dns_reply *order[2] = {v6_first ? v6 : v4, v6_first ? v4 : v6};
    size_t n = 0;
    for (int k = 0; k < 2; k++) {
        for (unsigned i = 0; i < order[k]->count && n < max; i++) {
            out[n] = order[k]->addrs[i];
            (void) blz_addr_set_port(&out[n], port);
            n++;
        }
    }
    return (int) n;
}

/*
 * Asks the servers for `name`. Returns the address count, -ENOENT (the name
 * is settled: no such name or no addresses), -EAGAIN (some server answered
 * with an error), or else the failure of the last server: -ETIMEDOUT and
 * the like.
 */
static int
// NOLINTNEXTLINE(readability-function-cognitive-complexity): the RFC 1035 loop, in order
ask_name(const char *name, dns_job *j, blz_addr *out, size_t max)
{
    const blz__dns_conf *conf = &j->work.conf;
    const dns_reply *rep = j->work.rep;
    /* A bad name is the caller's -EINVAL, found before any server is asked;
     * an -EINVAL after this is one server's (connect(2) refuses a link-local
     * IPv6 address without a scope) and only moves on to the next. */
    int qlen = blz__dns_query_build(j->work.buf, sizeof j->work.buf, 0, name, BLZ__DNS_TYPE_A);
    if (qlen < 0) {
        return qlen;
    }
    int err = -ETIMEDOUT;
    /* "options rotate": each name starts at the next server, spreading the load. */
    static _Atomic unsigned rotation;
    unsigned first = conf->rotate ? blz__fetch_add(&rotation, 1u, RELAXED) % conf->nservers : 0;
    for (unsigned round = 0; round < conf->attempts; round++) {
        for (unsigned k = 0; k < conf->nservers; k++) {
            const blz_addr *server = &conf->servers[(first + k) % conf->nservers];
            int rc = ask_server(server, name, conf->timeout_ms, &j->work);
            if (rc == -ECANCELED || rc == -ENOMEM) {
                return rc;
            }
            if ((rep[0].answered && rep[0].count) || (rep[1].answered && rep[1].count)) {
                return collect(rep, j->lk.port, out, max);
            }
            bool settled = false, failed = false;
            for (int t = 0; t < 2; t++) {
                if (!rep[t].answered) {
                    continue;
                }
                if (rep[t].rcode == BLZ__DNS_RCODE_NXDOMAIN) {
                    settled = true; /* the name does not exist: no other server will say more */
                } else if (rep[t].rcode != BLZ__DNS_RCODE_NOERROR) {
                    failed = true;
                }
            }
            if (settled || (rc == 0 && !failed)) {
                return -ENOENT; /* NXDOMAIN, or no data of either type */
            }
            /* Once a server answered, the outcome is -EAGAIN whatever the
             * later ones do: -ETIMEDOUT and -ECONNREFUSED say that none did. */
            err = failed || err == -EAGAIN ? -EAGAIN : rc;
        }
    }
    return err;
}

/* The names to ask for, in order, as glibc's res_search picks them. */
static int
candidates(const blz__dns_conf *conf, const char *host, char (*names)[BLZ__DNS_NAME_MAX + 1],
           int max)
{
    size_t len = strlen(host);
    int n = 0;
    if (host[len - 1] == '.') { /* absolute: that name only */
        memcpy(names[n], host, len - 1);
        names[n++][len - 1] = '\0';
        return n;
    }
    unsigned dots = 0;
    for (size_t i = 0; i < len; i++) {
        dots += host[i] == '.';
    }
    bool as_is_first = dots >= conf->ndots;
    if (as_is_first && len <= BLZ__DNS_NAME_MAX) {
        memcpy(names[n++], host, len + 1);
    }
    /* Room is kept for the name as it is only when it still comes last. */
    int room = as_is_first ? max : max - 1;
    for (unsigned s = 0; s < conf->nsearch && n < room; s++) {
        size_t sl = strlen(conf->search[s]);
        if (len + 1 + sl <= BLZ__DNS_NAME_MAX) {
            memcpy(names[n], host, len);
            names[n][len] = '.';
            memcpy(names[n] + len + 1, conf->search[s], sl + 1);
            n++;
        }
    }
    if (!as_is_first && len <= BLZ__DNS_NAME_MAX) {
        memcpy(names[n++], host, len + 1);
    }
    return n;
}

static int
lookup(dns_job *j)
{
    int n = from_hosts(j, j->lk.addrs, BLZ__LOOKUP_MAX);
    if (n > 0) {
        for (int i = 0; i < n; i++) {
            (void) blz_addr_set_port(&j->lk.addrs[i], j->lk.port);
        }
        return n;
    }
    dns_scratch *w = &j->work;
    load_conf(j, &w->conf);
    int count = candidates(&w->conf, j->host, w->names, BLZ__DNS_MAX_SEARCH + 1);
    int err = count ? -ENOENT : -EINVAL;
    bool temporary = false;
    for (int c = 0; c < count; c++) {
        int rc = ask_name(w->names[c], j, j->lk.addrs, BLZ__LOOKUP_MAX);
        if (rc > 0 || rc == -ECANCELED || rc == -EINVAL || rc == -ENOMEM) {
            return rc;
        }
        /* Remembered: the name may exist where we could not ask. The first
         * such failure stands, unless a later name's server answered. */
        if (rc != -ENOENT && (!temporary || rc == -EAGAIN)) {
            err = rc;
            temporary = true;
        }
    }
    return err;
}

static void *
dns_task(void *arg)
{
    dns_job *j = arg;
    j->lk.result = lookup(j);
    blz__lookup_release(&j->lk);
    return NULL;
}

/* The task was aborted before it started: only its share to let go of. */
static void
dns_task_cancelled(void *arg)
{
    dns_job *j = arg;
    blz__lookup_release(&j->lk);
}

/* ---- the future ---------------------------------------------------------- */

static void
dns_drop(blz_future *base)
{
    blz_resolve_future *f = (blz_resolve_future *) base;
    if (f->job_) {
        /* A started task's waits end with -ECANCELED and it unwinds; one that
         * never started runs dns_task_cancelled instead. Either frees its share. */
        blz_join_abort(f->join_.join_);
        blz_future_drop(&f->join_.base); /* detaches */
        blz__lookup_release(f->job_);
        f->job_ = NULL;
    }
}

static const blz_future_vtable dns_vt = {blz__lookup_poll, dns_drop};

/* Bytes of a path to copy: the default's when NULL. */
static const char *
path_or(const char *path, const char *dflt)
{
    return path && *path ? path : dflt;
}

void
blz_dns_resolve_fut(const char *host, uint16_t port, const blz_dns_options *opts, blz_addr *out,
                    size_t max, blz_dns_future *f)
{
    if (!f) {
        return;
    }
    if (opts && opts->nservers && !opts->servers) {
        blz__lookup_fut_ready(f, -EINVAL);
        return;
    }
    /* One trailing dot beyond the longest name. */
    blz__io_driver *d = blz__lookup_begin(f, host, BLZ__DNS_NAME_MAX + 1, port, out, max);
    if (!d) {
        return;
    }
    size_t len = strlen(host);
    const char *resolv = path_or(opts ? opts->resolv_conf : NULL, "/etc/resolv.conf");
    const char *hosts = path_or(opts ? opts->hosts : NULL, "/etc/hosts");
    size_t rl = strlen(resolv), hl = strlen(hosts);
    dns_job *j = blz__lookup_new(d, sizeof *j + len + rl + hl + 3, port);
    if (!j) {
        blz__lookup_fut_ready(f, -ENOMEM);
        return;
    }
    j->no_hosts = opts && opts->hosts && !*opts->hosts;
    j->nservers = 0;
    if (opts && opts->nservers) {
        j->nservers = opts->nservers < BLZ__DNS_MAX_SERVERS ? (unsigned) opts->nservers
                                                            : BLZ__DNS_MAX_SERVERS;
        memcpy(j->servers, opts->servers, j->nservers * sizeof(blz_addr));
    }
    j->timeout_ms = opts ? opts->timeout_ms : 0;
    j->attempts = opts ? opts->attempts : 0;
    char *p = j->text;
    j->host = memcpy(p, host, len + 1);
    p += len + 1;
    j->resolv = memcpy(p, resolv, rl + 1);
    p += rl + 1;
    j->hosts = memcpy(p, hosts, hl + 1);
    blz_join *join;
    int rc = blz_runtime_spawn_owned(blz__rt_current(), dns_task, dns_task_cancelled, j, &join);
    if (rc < 0) {
        blz__io_tracked_free(d, j);
        blz__lookup_fut_ready(f, rc);
        return;
    }
    blz__lookup_fut(f, &j->lk, join, out, max, &dns_vt);
}

int
blz_dns_resolve(const char *host, uint16_t port, const blz_dns_options *opts, blz_addr *out,
                size_t max)
{
    blz_dns_future f;
    blz_dns_resolve_fut(host, port, opts, out, max, &f);
    int rc = blz_await(&f.base);
    if (rc == -EDEADLK) {
        blz_future_drop(&f.base);
    }
    return rc;
}
