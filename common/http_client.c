/* The HTTP/1.1 client: requests, the connection pool, deadlines, retries. A request (call) is
 * serialised once into its own allocation (kept for a retry), waits in FIFO order for a
 * connection of its origin, and is completed exactly once through call_deliver. Connections are
 * owned by the client and freed in their stream's close callback; one timer serves every
 * request deadline and idle expiry.
 *
 *   conn: CONNECTING --on_connect--> BUSY --response--> DELIVERING --on_done returns--> IDLE
 *            ^ (new, bound to a call)   ^                                                 |
 *            |                          +---------- a call takes it from the pool --------+
 *   any state --error, timeout, cancel, idle expiry, Connection: close--> CLOSING --> freed
 *
 * While on_done runs its connection is DELIVERING: not in the pool, so the response head and
 * body it is reading stay intact whatever the owner does from inside the callback. */
#include "common/http_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/base64.h"
#include "common/http_client_reader.h"
#include "common/log.h"
#include "common/stream.h"
#include "common/version.h"

#define HC_DEFAULT_TIMEOUT_MS 10000
#define HC_DEFAULT_RESPONSE_MAX (1u << 20)
#define HC_METHOD_MAX 16
#define HC_CLOSE_TIMEOUT_MS 2000 /* graceful close of an idle connection */

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

enum conn_state { CONN_CONNECTING, CONN_BUSY, CONN_DELIVERING, CONN_IDLE, CONN_CLOSING };

struct http_client_origin {
    bool tls, ipv6;
    unsigned port;
    char host[HTTP_CLIENT_HOST_MAX + 1];
};

struct http_client_conn {
    struct stream s;
    struct http_client_link link; /* cl->conns */
    struct http_client *cl;
    struct http_client_call *call; /* the request using it, while CONNECTING or BUSY */
    struct http_client_origin origin;
    enum conn_state state;
    bool reused;             /* the current request is not the connection's first */
    uint64_t idle_since;     /* uv_now when it went idle */
    uint64_t written_before; /* s.bytes_written when the current request was queued */
    struct http_client_reader reader;
};

struct http_client_call {
    struct http_client_link link; /* cl->calls */
    struct http_client *cl;
    struct http_client_conn *conn; /* NULL while waiting for a connection */
    http_client_done_fn *on_done;
    void *arg;
    struct http_client_origin origin;
    uint64_t deadline; /* uv_now milliseconds */
    unsigned timeout_ms;
    size_t max_response;
    bool head, idempotent, retried;
    char message[HTTP_CLIENT_MESSAGE_MAX];
    size_t wire_len;
    char wire[]; /* request head and body, as sent */
};

static void client_after(struct http_client *cl);
static void conn_close(struct http_client_conn *c, int graceful);

/* ---- lists -------------------------------------------------------------------------------- */

static void link_init(struct http_client_link *l)
{
    l->prev = l->next = l;
}

static void link_add_tail(struct http_client_link *head, struct http_client_link *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

static void link_del(struct http_client_link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    link_init(l);
}

static bool link_empty(const struct http_client_link *head)
{
    return head->next == head;
}

/* ---- errors in words ---------------------------------------------------------------------- */

static const char *hc_errname(int err)
{
    switch (-err) {
    case ETIMEDOUT:
        return "timed out";
    case ECONNREFUSED:
        return "connection refused";
    case EHOSTUNREACH:
        return "host not found or unreachable";
    case ENETUNREACH:
        return "network unreachable";
    case EKEYREJECTED:
        return "certificate rejected";
    case ECONNABORTED:
        return "TLS alert from the server";
    case ECONNRESET:
        return "connection closed or reset";
    case EPIPE:
        return "connection broken";
    case EPROTO:
        return "malformed response";
    case EMSGSIZE:
        return "response too large";
    case ECANCELED:
        return "cancelled";
    case ENOMEM:
        return "out of memory";
    case ENOBUFS:
        return "request too large for the connection";
    default:
        return "error";
    }
}

/* "scheme://host:port: what: errname (detail)"; no path or query, which may carry secrets. */
static void call_describe(struct http_client_call *call, int err, const char *what,
                          const char *detail)
{
    const struct http_client_origin *o = &call->origin;
    int n =
        snprintf(call->message, sizeof call->message, "%s://%s%s%s:%u: %s%s%s (%d)%s%s%s",
                 o->tls ? "https" : "http", o->ipv6 ? "[" : "", o->host, o->ipv6 ? "]" : "",
                 o->port, what, *what ? ": " : "", hc_errname(err), err,
                 detail && *detail ? " (" : "", detail ? detail : "", detail && *detail ? ")" : "");
    (void)n; /* a long host or TLS detail is cut: the message is for logs */
}

/* ---- completing requests ------------------------------------------------------------------ */

static void conn_set_state(struct http_client_conn *c, enum conn_state st)
{
    struct http_client_stats *stats = &c->cl->stats;
    if (c->state == CONN_IDLE)
        stats->idle--;
    if (st == CONN_IDLE)
        stats->idle++;
    if (c->state != CONN_CLOSING && st == CONN_CLOSING)
        stats->conns--;
    c->state = st;
}

/* Unlinks the call, runs its on_done and frees it. The caller has detached any connection. */
static void call_deliver(struct http_client_call *call, const struct http_client_response *res)
{
    struct http_client *cl = call->cl;
    link_del(&call->link);
    cl->n_calls--;
    call->on_done(call->arg, res);
    free(call);
}

/* Ends a call with an error (message already written); closes the connection it was using. */
static void call_fail(struct http_client_call *call, int err)
{
    struct http_client *cl = call->cl;
    struct http_client_conn *c = call->conn;
    if (c != NULL) {
        c->call = NULL;
        call->conn = NULL;
        conn_close(c, 0);
    }
    if (err == -ETIMEDOUT)
        cl->stats.timeouts++;
    else if (err != -ECANCELED)
        cl->stats.failures++;
    log_debug("http client: %s", call->message);
    struct http_client_response res = {.error = err, .message = call->message, .body = ""};
    call_deliver(call, &res);
}

static void call_failf(struct http_client_call *call, int err, const char *what)
{
    call_describe(call, err, what, NULL);
    call_fail(call, err);
}

/* ---- connections -------------------------------------------------------------------------- */

static bool origin_eq(const struct http_client_origin *a, const struct http_client_origin *b)
{
    return a->tls == b->tls && a->port == b->port && strcmp(a->host, b->host) == 0;
}

/* Open (not closing) connections to origin; *idle gets the most recently idle one, if any. */
static unsigned origin_conns(struct http_client *cl, const struct http_client_origin *o,
                             struct http_client_conn **idle, unsigned *n_idle)
{
    unsigned n = 0, ni = 0;
    struct http_client_conn *best = NULL;
    for (struct http_client_link *l = cl->conns.next; l != &cl->conns; l = l->next) {
        struct http_client_conn *c = container_of(l, struct http_client_conn, link);
        if (c->state == CONN_CLOSING || !origin_eq(&c->origin, o))
            continue;
        n++;
        if (c->state == CONN_IDLE) {
            ni++;
            if (best == NULL || c->idle_since >= best->idle_since)
                best = c;
        }
    }
    if (idle != NULL)
        *idle = best;
    if (n_idle != NULL)
        *n_idle = ni;
    return n;
}

static void conn_on_closed(struct stream *s)
{
    struct http_client_conn *c = s->data;
    struct http_client *cl = c->cl;
    link_del(&c->link);
    http_client_reader_free(&c->reader);
    free(c);
    if (cl->closing && cl->timer_closed && link_empty(&cl->conns) && cl->close_cb != NULL)
        cl->close_cb(cl); /* may free cl */
}

/* Closes once; the memory goes in conn_on_closed. Detaches its call (the caller completes it). */
static void conn_close(struct http_client_conn *c, int graceful)
{
    if (c->state == CONN_CLOSING)
        return;
    if (c->call != NULL) {
        c->call->conn = NULL;
        c->call = NULL;
    }
    conn_set_state(c, CONN_CLOSING);
    stream_close(&c->s, graceful, conn_on_closed);
}

/* Queues the bound call's request on the connection. Returns 0 or stream_write's error (the
 * call is then detached again). */
static int conn_send(struct http_client_conn *c)
{
    struct http_client_call *call = c->call;
    conn_set_state(c, CONN_BUSY);
    http_client_reader_start(&c->reader, call->max_response, call->head);
    c->written_before = c->s.bytes_written;
    int rc = stream_write(&c->s, call->wire, call->wire_len);
    if (rc < 0) {
        c->call = NULL;
        call->conn = NULL;
    }
    return rc;
}

/* A complete response on a BUSY connection: hand it over, then pool or close the connection. */
static void conn_deliver(struct http_client_conn *c, bool keep)
{
    struct http_client *cl = c->cl;
    struct http_client_call *call = c->call;
    const struct http_msg *m = &c->reader.parser.msg;
    c->call = NULL;
    call->conn = NULL;
    conn_set_state(c, CONN_DELIVERING);
    cl->delivering++;
    struct http_client_response res = {
        .message = "",
        .status = m->status,
        .msg = m,
        .body = m->body,
        .body_len = m->body_len,
    };
    call_deliver(call, &res);
    if (c->state == CONN_DELIVERING) { /* the owner did not close the client meanwhile */
        http_client_reader_free(&c->reader);
        unsigned n_idle;
        origin_conns(cl, &c->origin, NULL, &n_idle);
        if (keep && !cl->closing && n_idle < cl->opt.max_idle_per_origin) {
            conn_set_state(c, CONN_IDLE);
            c->idle_since = uv_now(cl->loop);
        } else {
            conn_close(c, keep);
        }
    }
    cl->delivering--;
    client_after(cl);
}

static int call_dispatch(struct http_client_call *call, bool fresh);

static void conn_on_connect(struct stream *s, int status)
{
    struct http_client_conn *c = s->data;
    struct http_client *cl = c->cl;
    struct http_client_call *call = c->call;
    if (c->state != CONN_CONNECTING)
        return;
    if (call == NULL) { /* cannot happen: a call that goes away closes its connection */
        conn_close(c, 0);
        return;
    }
    if (status != 0) {
        char why[160];
        stream_tls_describe(s, why, sizeof why);
        call_describe(call, status, c->origin.tls ? "connect/TLS" : "connect", why);
        call_fail(call, status);
        client_after(cl);
        return;
    }
    log_debug("http client: connected to %s:%u", c->origin.host, c->origin.port);
    int rc = conn_send(c);
    if (rc < 0) {
        conn_close(c, 0);
        call_failf(call, rc, "sending the request");
        client_after(cl);
    }
}

static void conn_on_read(struct stream *s, const uint8_t *data, size_t len)
{
    struct http_client_conn *c = s->data;
    struct http_client *cl = c->cl;
    if (c->state == CONN_IDLE) {
        log_debug("http client: %s:%u sent bytes on an idle connection; closing it", c->origin.host,
                  c->origin.port);
        conn_close(c, 0);
        client_after(cl);
        return;
    }
    if (c->state != CONN_BUSY || c->call == NULL)
        return;
    size_t used;
    int rc = http_client_reader_input(&c->reader, (const char *)data, len, &used);
    if (rc == HTTP_PARSE_MORE)
        return;
    if (rc < 0) {
        call_failf(c->call, rc, "reading the response");
        client_after(cl);
        return;
    }
    /* Reusable only if the server said so, sent nothing beyond the response, and took all of
     * our request (it may answer early, e.g. 413, while we are still sending the body). "Took"
     * is what the kernel took: stream_pending would still count a write the kernel finished
     * in this loop iteration (its callback comes in the next), and a fast server's answer
     * read in between would throw a good connection away. */
    bool keep = c->reader.parser.msg.keep_alive && used == len && stream_unsent(s) == 0;
    conn_deliver(c, keep);
}

static void conn_on_end(struct stream *s, int err)
{
    struct http_client_conn *c = s->data;
    struct http_client *cl = c->cl;
    struct http_client_call *call = c->call;
    if (c->state != CONN_BUSY || call == NULL) {
        conn_close(c, 0); /* an idle connection the server closed: leaves the pool */
        client_after(cl);
        return;
    }
    if (err == 0) {
        int rc = http_client_reader_eof(&c->reader);
        if (rc == HTTP_PARSE_DONE) { /* a body that ran to EOF */
            conn_deliver(c, false);
            return;
        }
        if (rc != -ENODATA) {
            call_failf(call, rc, "response cut short");
            client_after(cl);
            return;
        }
        err = -ECONNRESET;
    } else if (http_client_reader_started(&c->reader)) {
        call_failf(call, err, "reading the response");
        client_after(cl);
        return;
    }
    /* Not a byte of the response. On a reused connection the server most likely closed it
     * while idle, just as we sent: repeat once on a new connection if that is safe. */
    bool unsent = c->s.bytes_written == c->written_before;
    if (c->reused && !call->retried && (call->idempotent || unsent)) {
        log_debug("http client: %s:%u closed a reused connection; retrying on a new one",
                  c->origin.host, c->origin.port);
        call->retried = true;
        cl->stats.retries++;
        conn_close(c, 0);
        int rc = call_dispatch(call, true);
        if (rc < 0)
            call_failf(call, rc, "reconnecting");
        client_after(cl);
        return;
    }
    call_failf(call, err, "waiting for the response");
    client_after(cl);
}

static const struct stream_callbacks conn_callbacks = {
    .on_connect = conn_on_connect,
    .on_read = conn_on_read,
    .on_end = conn_on_end,
};

/* A new connection for call (bound to it until it connects). Returns 0 or a negative errno
 * (call left unbound). */
static int conn_open(struct http_client *cl, struct http_client_call *call)
{
    struct http_client_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    uint64_t now = uv_now(cl->loop);
    uint64_t left = call->deadline > now ? call->deadline - now : 1;
    struct stream_options so = {
        .tls = call->origin.tls ? cl->tls : NULL,
        .max_pending = HTTP_CLIENT_HEAD_MAX + HTTP_CLIENT_BODY_MAX,
        .connect_timeout_ms = (unsigned)left,
        .close_timeout_ms = HC_CLOSE_TIMEOUT_MS,
    };
    c->s.data = c;
    int rc = stream_init(&c->s, cl->loop, &conn_callbacks, &so);
    if (rc < 0) {
        free(c);
        return rc;
    }
    c->cl = cl;
    c->origin = call->origin;
    c->state = CONN_CONNECTING;
    link_add_tail(&cl->conns, &c->link);
    cl->stats.conns++;
    cl->stats.connects++;
    c->call = call;
    call->conn = c;
    rc = stream_connect(&c->s, c->origin.host, c->origin.port);
    if (rc < 0) {
        conn_close(c, 0); /* detaches the call */
        return rc;
    }
    return 0;
}

/* Gives a waiting call a connection: an idle one of its origin (unless fresh), else a new one
 * if the origin has room (always when fresh: a retry replaces the connection it lost).
 * Returns 0 (sent or connecting), 1 (must keep waiting), or a negative errno. */
static int call_dispatch(struct http_client_call *call, bool fresh)
{
    struct http_client *cl = call->cl;
    for (;;) {
        struct http_client_conn *idle;
        unsigned n = origin_conns(cl, &call->origin, &idle, NULL);
        if (idle != NULL && !fresh) {
            idle->call = call;
            call->conn = idle;
            idle->reused = true;
            if (conn_send(idle) == 0) {
                cl->stats.reuses++;
                return 0;
            }
            conn_close(idle, 0); /* broken under us: try the next one */
            continue;
        }
        if (n >= cl->opt.max_conns_per_origin && !fresh)
            return 1;
        return conn_open(cl, call);
    }
}

/* ---- the client's timer and queue --------------------------------------------------------- */

static void client_on_timer(uv_timer_t *t);

static void client_timer_update(struct http_client *cl)
{
    if (cl->closing)
        return;
    uint64_t next = UINT64_MAX;
    for (struct http_client_link *l = cl->calls.next; l != &cl->calls; l = l->next) {
        struct http_client_call *call = container_of(l, struct http_client_call, link);
        if (call->deadline < next)
            next = call->deadline;
    }
    for (struct http_client_link *l = cl->conns.next; l != &cl->conns; l = l->next) {
        struct http_client_conn *c = container_of(l, struct http_client_conn, link);
        if (c->state == CONN_IDLE && c->idle_since + cl->opt.idle_timeout_ms < next)
            next = c->idle_since + cl->opt.idle_timeout_ms;
    }
    if (next == UINT64_MAX) {
        uv_timer_stop(&cl->timer);
        return;
    }
    uint64_t now = uv_now(cl->loop);
    uv_timer_start(&cl->timer, client_on_timer, next > now ? next - now : 0, 0);
}

static const char *call_phase(const struct http_client_call *call)
{
    const struct http_client_conn *c = call->conn;
    if (c == NULL)
        return "waiting for a free connection";
    if (c->state == CONN_CONNECTING)
        return c->origin.tls ? "connecting (TCP and TLS)" : "connecting";
    if (http_client_reader_started(&c->reader))
        return "reading the response";
    return "waiting for the response";
}

static void client_on_timer(uv_timer_t *t)
{
    struct http_client *cl = t->data;
    uint64_t now = uv_now(cl->loop);
restart:
    for (struct http_client_link *l = cl->calls.next; l != &cl->calls; l = l->next) {
        struct http_client_call *call = container_of(l, struct http_client_call, link);
        if (call->deadline <= now) {
            char what[96];
            snprintf(what, sizeof what, "after %u ms %s", call->timeout_ms, call_phase(call));
            call_failf(call, -ETIMEDOUT, what); /* on_done may change both lists */
            goto restart;
        }
    }
    for (struct http_client_link *l = cl->conns.next; l != &cl->conns; l = l->next) {
        struct http_client_conn *c = container_of(l, struct http_client_conn, link);
        if (c->state == CONN_IDLE && c->idle_since + cl->opt.idle_timeout_ms <= now)
            conn_close(c, 1); /* stays listed until its close callback */
    }
    client_after(cl);
}

/* After anything that may free a connection slot or add an idle one: hand connections to
 * waiting calls (oldest first), then re-arm the timer. Re-entrant calls (from an on_done run
 * by a failing dispatch) only ask the outer loop to scan again. While a response's on_done
 * runs nothing is dispatched: a follow-up request made from it waits the few instructions
 * until that connection is back in the pool, and reuses it. */
static void client_after(struct http_client *cl)
{
    if (cl->closing)
        return;
    if (cl->pumping || cl->delivering > 0) {
        cl->pump_again = true;
        client_timer_update(cl);
        return;
    }
    cl->pumping = true;
    do {
        cl->pump_again = false;
        for (struct http_client_link *l = cl->calls.next; l != &cl->calls; l = l->next) {
            struct http_client_call *call = container_of(l, struct http_client_call, link);
            if (call->conn != NULL)
                continue;
            int rc = call_dispatch(call, false);
            if (rc < 0) {
                call_failf(call, rc, "opening a connection");
                cl->pump_again = true; /* the list may have changed under us */
                break;
            }
        }
    } while (cl->pump_again && !cl->closing);
    cl->pumping = false;
    client_timer_update(cl);
}

/* ---- public: client ----------------------------------------------------------------------- */

int http_client_init(struct http_client *cl, uv_loop_t *loop, const struct tls_config *tls,
                     const struct http_client_options *opt)
{
    static const struct http_client_options defaults;
    if (opt == NULL)
        opt = &defaults;
    void *data = cl->data;
    memset(cl, 0, sizeof *cl);
    cl->data = data;
    cl->opt = *opt;
    if (cl->opt.max_conns_per_origin == 0)
        cl->opt.max_conns_per_origin = 8;
    if (cl->opt.max_idle_per_origin == 0)
        cl->opt.max_idle_per_origin = 4;
    if (cl->opt.idle_timeout_ms == 0)
        cl->opt.idle_timeout_ms = 30000;
    if (cl->opt.max_requests == 0)
        cl->opt.max_requests = 256;
    if (cl->opt.max_idle_per_origin > cl->opt.max_conns_per_origin)
        cl->opt.max_idle_per_origin = cl->opt.max_conns_per_origin;
    cl->loop = loop;
    cl->tls = tls;
    link_init(&cl->calls);
    link_init(&cl->conns);
    int rc = uv_timer_init(loop, &cl->timer);
    if (rc != 0)
        return rc;
    cl->timer.data = cl;
    return 0;
}

static void client_on_timer_closed(uv_handle_t *h)
{
    struct http_client *cl = h->data;
    cl->timer_closed = true;
    if (link_empty(&cl->conns) && cl->close_cb != NULL)
        cl->close_cb(cl); /* may free cl */
}

void http_client_close(struct http_client *cl, void (*cb)(struct http_client *cl))
{
    if (cl->closing)
        return;
    cl->closing = true;
    cl->close_cb = cb;
    uv_timer_stop(&cl->timer);
    while (!link_empty(&cl->calls)) { /* on_done may cancel others: always take the first */
        struct http_client_call *call = container_of(cl->calls.next, struct http_client_call, link);
        call_failf(call, -ECANCELED, "client closed");
    }
    for (struct http_client_link *l = cl->conns.next; l != &cl->conns; l = l->next) {
        struct http_client_conn *c = container_of(l, struct http_client_conn, link);
        conn_close(c, c->state == CONN_IDLE);
    }
    uv_close((uv_handle_t *)&cl->timer, client_on_timer_closed);
}

/* ---- public: requests --------------------------------------------------------------------- */

const char *http_client_response_header(const struct http_client_response *res, const char *name)
{
    return res->msg != NULL ? http_msg_header(res->msg, name) : NULL;
}

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool header_name_ok(const char *name)
{
    static const char *const reserved[] = {
        "host", "content-length", "transfer-encoding", "connection", "keep-alive",
        "te",   "trailer",        "upgrade",
    };
    size_t n = strnlen(name, HTTP_CLIENT_HEAD_MAX + 1);
    if (n == 0 || n > HTTP_CLIENT_HEAD_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)name[i]))
            return false;
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strcasecmp(name, reserved[i]) == 0)
            return false;
    return true;
}

/* Field values: visible ASCII, space, tab and bytes >= 0x80 (RFC 9110 obs-text); never CR, LF,
 * NUL or another control character, which would split or end the header. */
static bool header_value_ok(const char *value)
{
    size_t n = strnlen(value, HTTP_CLIENT_HEAD_MAX + 1);
    if (n > HTTP_CLIENT_HEAD_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

static bool method_ok(const char *m)
{
    size_t n = strnlen(m, HC_METHOD_MAX + 1);
    if (n == 0 || n > HC_METHOD_MAX || strcmp(m, "CONNECT") == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (m[i] < 'A' || m[i] > 'Z')
            return false;
    return true;
}

static bool method_idempotent(const char *m)
{
    static const char *const idem[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
    for (size_t i = 0; i < sizeof idem / sizeof idem[0]; i++)
        if (strcmp(m, idem[i]) == 0)
            return true;
    return false;
}

/* Writes (out != NULL) or measures (out == NULL) the request head. */
struct hc_builder {
    char *out;
    size_t len;
};

static void put(struct hc_builder *b, const char *s, size_t n)
{
    if (b->out != NULL)
        memcpy(b->out + b->len, s, n);
    b->len += n;
}

static void puts_(struct hc_builder *b, const char *s)
{
    put(b, s, strlen(s));
}

static void build_head(struct hc_builder *b, const char *method, const struct http_client_url *u,
                       const struct http_client_request *req)
{
    char num[32];
    puts_(b, method);
    put(b, " ", 1);
    put(b, u->target, u->target_len);
    puts_(b, " HTTP/1.1\r\nHost: ");
    if (u->ipv6)
        put(b, "[", 1);
    puts_(b, u->host);
    if (u->ipv6)
        put(b, "]", 1);
    if (u->port != (u->tls ? 443u : 80u)) {
        snprintf(num, sizeof num, ":%u", u->port);
        puts_(b, num);
    }
    puts_(b, "\r\n");
    bool has_ua = false;
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, "user-agent") == 0)
            has_ua = true;
    if (!has_ua)
        puts_(b, "User-Agent: voicebridge/" VOICEBRIDGE_VERSION "\r\n");
    for (size_t i = 0; i < req->n_headers; i++) {
        puts_(b, req->headers[i].name);
        put(b, ": ", 2);
        puts_(b, req->headers[i].value);
        put(b, "\r\n", 2);
    }
    if (req->body_len > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
        strcmp(method, "PATCH") == 0) {
        snprintf(num, sizeof num, "Content-Length: %zu\r\n", req->body_len);
        puts_(b, num);
    }
    put(b, "\r\n", 2);
}

int http_client_request(struct http_client *cl, const struct http_client_request *req,
                        http_client_done_fn *on_done, void *arg, struct http_client_call **handle)
{
    if (handle != NULL)
        *handle = NULL;
    if (cl->closing)
        return -ESHUTDOWN;
    if (req == NULL || req->url == NULL || on_done == NULL)
        return -EINVAL;
    if (cl->n_calls >= cl->opt.max_requests)
        return -ENOBUFS;
    struct http_client_url u;
    size_t ulen = strnlen(req->url, HTTP_CLIENT_URL_MAX + 1);
    if (http_client_url_parse(req->url, ulen, &u) < 0)
        return -EINVAL;
    if (u.tls && cl->tls == NULL)
        return -ENOTSUP;
    const char *method = req->method != NULL ? req->method : "GET";
    if (!method_ok(method))
        return -EINVAL;
    if (req->n_headers > HTTP_CLIENT_HEADERS_MAX)
        return -E2BIG;
    if (req->n_headers > 0 && req->headers == NULL)
        return -EINVAL;
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct http_client_header *h = &req->headers[i];
        if (h->name == NULL || h->value == NULL || !header_name_ok(h->name) ||
            !header_value_ok(h->value))
            return -EINVAL;
    }
    if (req->body_len > HTTP_CLIENT_BODY_MAX)
        return -E2BIG;
    if (req->body_len > 0 && req->body == NULL)
        return -EINVAL;
    size_t max_response =
        req->max_response_bytes != 0 ? req->max_response_bytes : HC_DEFAULT_RESPONSE_MAX;
    if (max_response > HTTP_CLIENT_RESPONSE_MAX)
        return -EINVAL;

    struct hc_builder b = {0};
    build_head(&b, method, &u, req);
    if (b.len > HTTP_CLIENT_HEAD_MAX)
        return -E2BIG;
    struct http_client_call *call = malloc(sizeof *call + b.len + req->body_len);
    if (call == NULL)
        return -ENOMEM;
    memset(call, 0, sizeof *call);
    b = (struct hc_builder){.out = call->wire};
    build_head(&b, method, &u, req);
    if (req->body_len > 0)
        memcpy(call->wire + b.len, req->body, req->body_len);
    call->wire_len = b.len + req->body_len;
    call->cl = cl;
    call->on_done = on_done;
    call->arg = arg;
    call->origin.tls = u.tls;
    call->origin.ipv6 = u.ipv6;
    call->origin.port = u.port;
    memcpy(call->origin.host, u.host, sizeof u.host);
    call->timeout_ms = req->timeout_ms != 0 ? req->timeout_ms : HC_DEFAULT_TIMEOUT_MS;
    call->deadline = uv_now(cl->loop) + call->timeout_ms;
    call->max_response = max_response;
    call->head = strcmp(method, "HEAD") == 0;
    call->idempotent = method_idempotent(method);
    link_add_tail(&cl->calls, &call->link);
    cl->n_calls++;

    /* From inside a response's on_done the call waits: see client_after. */
    int rc = cl->delivering > 0 ? 1 : call_dispatch(call, false);
    if (rc < 0) {
        link_del(&call->link);
        cl->n_calls--;
        free(call);
        return rc;
    }
    cl->stats.requests++;
    if (handle != NULL)
        *handle = call;
    client_timer_update(cl);
    return 0;
}

void http_client_cancel(struct http_client_call *call)
{
    if (call == NULL)
        return;
    struct http_client *cl = call->cl;
    call_failf(call, -ECANCELED, "cancelled");
    client_after(cl);
}

/* ---- public: URLs ------------------------------------------------------------------------- */

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 3986 pchar minus pct-encoded, plus '/' and '?' (path and query). */
static bool is_target_char(char c)
{
    return is_alpha(c) || is_digit(c) || (c != 0 && strchr("-._~!$&'()*+,;=:@/?", c) != NULL);
}

/* A DNS name: labels of 1..63 letters, digits, '-' (not first or last) or '_', no empty label.
 * A name whose last label starts with a digit must be a dotted-quad IPv4 address: resolvers
 * read "0x7f.1" or "127.1" as addresses, so only the one canonical form is let through. */
static int parse_reg_host(const char *h, size_t n, struct http_client_url *out)
{
    if (n == 0 || n > HTTP_CLIENT_HOST_MAX)
        return -EINVAL;
    size_t label = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || h[i] == '.') {
            if (label == 0 || label > 63 || h[i - 1] == '-')
                return -EINVAL;
            label = 0;
            continue;
        }
        char c = h[i];
        if (!(is_alpha(c) || is_digit(c) || c == '_' || (c == '-' && label > 0)))
            return -EINVAL;
        label++;
    }
    for (size_t i = 0; i < n; i++)
        out->host[i] = (h[i] >= 'A' && h[i] <= 'Z') ? (char)(h[i] - 'A' + 'a') : h[i];
    out->host[n] = '\0';
    const char *last = strrchr(out->host, '.');
    last = last != NULL ? last + 1 : out->host;
    if (is_digit(*last)) {
        struct in_addr a;
        if (inet_pton(AF_INET, out->host, &a) != 1)
            return -EINVAL;
    }
    return 0;
}

/* "[v6]" (n counts the brackets): hex digits, ':' and '.' only, checked by inet_pton. */
static int parse_ipv6_host(const char *h, size_t n, struct http_client_url *out)
{
    if (n < 4 || n > 47 || h[0] != '[' || h[n - 1] != ']')
        return -EINVAL;
    for (size_t i = 1; i < n - 1; i++)
        if (!is_hex(h[i]) && h[i] != ':' && h[i] != '.')
            return -EINVAL;
    for (size_t i = 1; i < n - 1; i++)
        out->host[i - 1] = (h[i] >= 'A' && h[i] <= 'F') ? (char)(h[i] - 'A' + 'a') : h[i];
    out->host[n - 2] = '\0';
    struct in6_addr a;
    if (inet_pton(AF_INET6, out->host, &a) != 1)
        return -EINVAL;
    out->ipv6 = true;
    return 0;
}

int http_client_url_parse(const char *url, size_t len, struct http_client_url *out)
{
    memset(out, 0, sizeof *out);
    if (url == NULL || len == 0 || len > HTTP_CLIENT_URL_MAX)
        return -EINVAL;
    size_t i;
    if (len >= 7 && strncasecmp(url, "http://", 7) == 0) {
        i = 7;
        out->port = 80;
    } else if (len >= 8 && strncasecmp(url, "https://", 8) == 0) {
        i = 8;
        out->tls = true;
        out->port = 443;
    } else {
        return -EINVAL;
    }
    size_t a = i;
    while (i < len && url[i] != '/' && url[i] != '?' && url[i] != '#')
        i++;
    const char *auth = url + a;
    size_t alen = i - a;
    /* host, then an optional ":port" (after the ']' of an IPv6 literal) */
    size_t hlen = alen;
    if (alen > 0 && auth[0] == '[') {
        const char *close = memchr(auth, ']', alen);
        if (close == NULL)
            return -EINVAL;
        hlen = (size_t)(close - auth) + 1;
        if (parse_ipv6_host(auth, hlen, out) < 0)
            return -EINVAL;
    } else {
        const char *colon = memchr(auth, ':', alen);
        if (colon != NULL)
            hlen = (size_t)(colon - auth);
        if (parse_reg_host(auth, hlen, out) < 0)
            return -EINVAL; /* also refuses '@' (user info) and '%' */
    }
    if (hlen < alen) {
        if (auth[hlen] != ':')
            return -EINVAL;
        size_t p = hlen + 1, nd = alen - p;
        if (nd == 0 || nd > 5)
            return -EINVAL;
        unsigned port = 0;
        for (; p < alen; p++) {
            if (!is_digit(auth[p]))
                return -EINVAL;
            port = port * 10 + (unsigned)(auth[p] - '0');
        }
        if (port == 0 || port > 65535)
            return -EINVAL;
        out->port = port;
    }
    if (i == len) {
        out->target = "/";
        out->target_len = 1;
        return 0;
    }
    if (url[i] != '/')
        return -EINVAL; /* a query without a path, or a fragment */
    for (size_t j = i; j < len; j++) {
        char c = url[j];
        if (c == '%') {
            if (j + 2 >= len || !is_hex(url[j + 1]) || !is_hex(url[j + 2]))
                return -EINVAL;
            j += 2;
        } else if (!is_target_char(c)) {
            return -EINVAL;
        }
    }
    out->target = url + i;
    out->target_len = len - i;
    return 0;
}

/* ---- public: helpers ---------------------------------------------------------------------- */

static bool has_ctl(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

int http_client_basic_auth(const char *user, const char *pass, char *out, size_t cap)
{
    if (cap > 0)
        out[0] = '\0';
    if (user == NULL || pass == NULL || strchr(user, ':') != NULL || has_ctl(user) || has_ctl(pass))
        return -EINVAL;
    size_t ulen = strlen(user), plen = strlen(pass), n = ulen + 1 + plen;
    if (n < ulen || base64_encoded_len(n) > SIZE_MAX - 8 || cap < 6 + base64_encoded_len(n) + 1)
        return -ENOSPC;
    memcpy(out, "Basic ", 6);
    size_t o = 6;
    /* base64 of user ":" pass without assembling that string (it holds the secret) */
    for (size_t k = 0; k < n; k += 3) {
        uint8_t tri[3];
        size_t m = n - k < 3 ? n - k : 3;
        for (size_t j = 0; j < m; j++) {
            size_t at = k + j;
            tri[j] = (uint8_t)(at < ulen ? user[at] : at == ulen ? ':' : pass[at - ulen - 1]);
        }
        o += base64_encode(tri, m, out + o);
    }
    out[o] = '\0';
    return 0;
}

static bool is_unreserved(unsigned char c)
{
    return is_alpha((char)c) || is_digit((char)c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static size_t encoded_len(const char *in, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += is_unreserved((unsigned char)in[i]) ? 1 : 3;
    return len;
}

static size_t encode_into(const char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (is_unreserved(c)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    return o;
}

int http_client_percent_encode(const char *in, size_t n, char *out, size_t cap, size_t *out_len)
{
    *out_len = 0;
    size_t need = encoded_len(in, n);
    if (need >= cap) {
        if (cap > 0)
            out[0] = '\0';
        return -ENOSPC;
    }
    size_t o = encode_into(in, n, out);
    out[o] = '\0';
    *out_len = o;
    return 0;
}

int http_client_form_add(char *buf, size_t cap, size_t *len, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    size_t need = (*len > 0 ? 1 : 0) + encoded_len(name, nl) + 1 + encoded_len(value, vl);
    if (*len >= cap || need >= cap - *len)
        return -ENOSPC;
    size_t o = *len;
    if (o > 0)
        buf[o++] = '&';
    o += encode_into(name, nl, buf + o);
    buf[o++] = '=';
    o += encode_into(value, vl, buf + o);
    buf[o] = '\0';
    *len = o;
    return 0;
}
