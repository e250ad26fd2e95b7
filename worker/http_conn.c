/* One HTTP/1.1 connection: a bounded read buffer feeds the parser, one request is handled at a
 * time (reading stops until its response is written, which bounds the output queue to one
 * response), and one timer serves whichever deadline the state has:
 *
 *   READING --request--> HANDLING --response--> WRITING --keep-alive--> READING
 *      | idle: close        | -EAGAIN: waits for        | close: LINGERING (shut down the write
 *      | partial: 408       |  http_response_finish     |  side, drain input until EOF/timer)
 *      | bad input: 4xx ----+---------------------------+
 *      +-- WebSocket route: dup the fd, hand it over, close our handle
 *
 * Memory: one allocation per connection, freed in the last close callback (or, if a deferred
 * response is still out, when it is finished); request bodies get a buffer sized per request. */
#include "worker/http_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/log.h"
#include "worker/http_response.h"
#include "worker/http_router.h"

#define READ_BYTES 8192
#define LINGER_MAX_BYTES (1u << 20) /* a client still pushing this much after our close: cut */
#define BODY_KEEP_BYTES 16384       /* a request body buffer this small is kept for the next */

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

enum conn_state {
    CONN_READING,   /* waiting for, or reading, a request */
    CONN_HANDLING,  /* a handler has the request, perhaps deferred */
    CONN_WRITING,   /* the response is being written */
    CONN_LINGERING, /* last response written, write side shut, draining input */
};

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t write_req;
    uv_write_t continue_req;
    uv_shutdown_t shutdown_req;
    struct http_conn_env *env;
    struct http_conn *prev, *next;
    unsigned long long id;
    enum conn_state state;
    int open_handles;
    bool closing;
    bool reading;
    bool deferred; /* handler returned -EAGAIN, response not finished yet */
    bool in_handler;
    bool finished_early; /* http_response_finish called before the handler returned */
    bool keep_alive_10;  /* HTTP/1.0 keep-alive request: confirm it in the response */
    bool req_started;    /* bytes of the next request arrived: the request timer runs */
    size_t lingered;
    char *body; /* request body buffer, owned */
    size_t body_cap;
    size_t in_start, in_end; /* unparsed bytes are in[in_start..in_end) */
    struct http_request req;
    struct http_response res;
    struct http_parser parser;
    char in[READ_BYTES];
};

static void conn_process(struct http_conn *c);
static void conn_send(struct http_conn *c);

static void conn_free(struct http_conn *c)
{
    struct http_conn_env *env = c->env;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        env->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    http_response_free(&c->res);
    free(c->body);
    env->stats.active--;
    free(c);
    env->on_conn_freed(env);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    if (--c->open_handles == 0 && !c->deferred)
        conn_free(c);
}

static void conn_close(struct http_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    c->reading = false;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void on_timer(uv_timer_t *t);

static void timer_start(struct http_conn *c, unsigned ms)
{
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct http_conn *c = h->data;
    (void)hint;
    if (c->state == CONN_LINGERING || c->in_start == c->in_end) {
        c->in_start = c->in_end = 0;
    } else if (c->in_start > 0) {
        memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
        c->in_end -= c->in_start;
        c->in_start = 0;
    }
    /* Never full: every byte read is parsed before the next read (reading stops while a
     * request is handled); an empty buffer would come back as UV_ENOBUFS and close. */
    *buf = uv_buf_init(c->in + c->in_end, (unsigned)(sizeof c->in - c->in_end));
}

static bool is_disconnect(ssize_t err)
{
    return err == UV_EOF || err == UV_ECONNRESET || err == UV_EPIPE || err == UV_ETIMEDOUT ||
           err == UV_ENOTCONN || err == UV_ECONNABORTED;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct http_conn *c = s->data;
    (void)buf;
    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        if (c->state == CONN_LINGERING)
            ; /* the client saw our last response and left: the expected end */
        else if (is_disconnect(nread))
            log_debug("http: conn %llu: %s%s", c->id, uv_strerror((int)nread),
                      c->req_started ? " in the middle of a request" : "");
        else
            log_info("http: conn %llu: read: %s", c->id, uv_strerror((int)nread));
        conn_close(c);
        return;
    }
    if (c->state == CONN_LINGERING) {
        c->lingered += (size_t)nread;
        if (c->lingered > LINGER_MAX_BYTES)
            conn_close(c);
        return;
    }
    c->in_end += (size_t)nread;
    conn_process(c);
}

static void conn_read_start(struct http_conn *c)
{
    if (c->reading || c->closing)
        return;
    int err = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (err != 0) {
        log_debug("http: conn %llu: read start: %s", c->id, uv_strerror(err));
        conn_close(c);
        return;
    }
    c->reading = true;
}

static void conn_read_stop(struct http_conn *c)
{
    if (!c->reading)
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
}

/* Answers a request we could not accept (or a timeout) and closes after the answer. */
static void conn_fail_request(struct http_conn *c, int err)
{
    int status;
    const char *code, *message;
    switch (err) {
    case -E2BIG:
        status = 431, code = "headers_too_large";
        message = "request line and headers exceed the limit";
        break;
    case -EMSGSIZE:
        status = 413, code = "body_too_large", message = "request body exceeds the limit";
        break;
    case -ENOTSUP:
        status = 501, code = "not_implemented";
        message = "unsupported protocol feature (HTTP version or transfer coding)";
        break;
    case -ETIMEDOUT:
        status = 408, code = "request_timeout", message = "request not received in time";
        break;
    case -ENOMEM:
        status = 503, code = "unavailable", message = "out of memory";
        break;
    default:
        status = 400, code = "bad_request", message = "malformed HTTP request";
        break;
    }
    log_info("http: conn %llu: %s, answering %d and closing", c->id,
             err == -ETIMEDOUT ? "request timed out" : strerror(-err), status);
    conn_read_stop(c);
    uv_timer_stop(&c->timer);
    http_response_reset(&c->res);
    http_response_json_error(&c->res, status, code, message);
    c->res.close = true;
    c->keep_alive_10 = false;
    c->state = CONN_HANDLING;
    conn_send(c);
}

static void on_continue_written(uv_write_t *req, int status)
{
    struct http_conn *c = req->data;
    if (status < 0 && !c->closing)
        conn_close(c);
}

/* Headers are in: lend a body buffer sized for this request, answer Expect: 100-continue. */
static int conn_on_headers(struct http_conn *c)
{
    const struct http_msg *m = &c->parser.msg;
    size_t need = 0;
    if (m->has_content_length)
        need = (size_t)m->content_length; /* the parser checked it against max_body */
    else if (m->chunked)
        need = c->env->settings.max_body_bytes;
    if (need > c->body_cap) {
        free(c->body);
        c->body_cap = 0;
        c->body = malloc(need);
        if (c->body == NULL) {
            http_parser_set_body_buffer(&c->parser, NULL, 0);
            conn_fail_request(c, -ENOMEM);
            return -ENOMEM;
        }
        c->body_cap = need;
    }
    http_parser_set_body_buffer(&c->parser, need ? c->body : NULL, need);
    const char *expect = http_msg_header(m, "expect");
    if (need > 0 && !m->upgrade && m->version_minor >= 1 && expect != NULL &&
        strcasecmp(expect, "100-continue") == 0) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t b = uv_buf_init((char *)cont, sizeof cont - 1);
        int err = uv_write(&c->continue_req, (uv_stream_t *)&c->tcp, &b, 1, on_continue_written);
        if (err != 0) {
            conn_close(c);
            return err;
        }
    }
    return 0;
}

/* Hands a WebSocket upgrade over: the receiver gets a duplicate of the fd and the bytes we
 * already read past the request; our handle (and the original fd) closes without a byte sent. */
static void conn_upgrade(struct http_conn *c, const struct http_route *route)
{
    const struct http_msg *m = &c->parser.msg;
    bool ok = m->method == HTTP_METHOD_GET && m->upgrade && m->version_minor >= 1 &&
              http_msg_header_has_token(m, "upgrade", "websocket") &&
              http_msg_header_has_token(m, "connection", "upgrade");
    if (!ok) {
        http_response_json_error(&c->res, 426, "upgrade_required",
                                 "this endpoint takes a WebSocket upgrade");
        http_response_header(&c->res, "Upgrade", "websocket");
        c->res.close = true;
        conn_send(c);
        return;
    }
    uv_os_fd_t fd;
    int dup = -1;
    if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) == 0)
        dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup == -1) {
        log_warn("http: conn %llu: cannot hand the WebSocket over: %s", c->id, strerror(errno));
        http_response_json_error(&c->res, 503, "unavailable", "cannot take the connection");
        c->res.close = true;
        conn_send(c);
        return;
    }
    conn_read_stop(c);
    c->env->stats.detached++;
    size_t n = c->in_end - c->in_start;
    log_debug("http: conn %llu: %s handed over as fd %d with %zu bytes read ahead", c->id,
              http_msg_path(m), dup, n);
    route->upgrade(dup, m, c->in + c->in_start, n, route->arg);
    c->in_start = c->in_end = 0;
    conn_close(c);
}

static void conn_dispatch(struct http_conn *c)
{
    struct http_conn_env *env = c->env;
    const struct http_msg *m = &c->parser.msg;
    env->stats.requests++;
    c->state = CONN_HANDLING;
    uv_timer_stop(&c->timer);
    conn_read_stop(c);
    http_response_reset(&c->res);
    c->res.head_only = m->method == HTTP_METHOD_HEAD;
    c->res.close = !m->keep_alive || c->env->settings.no_keepalive;
    c->keep_alive_10 = m->keep_alive && m->version_minor == 0;
    c->req.msg = m;
    const struct http_route *route;
    char allow[80];
    int status = http_router_match(env->settings.router, &c->req, &route, allow, sizeof allow);
    if (status != 0) {
        log_debug("http: conn %llu: %s %s: %d", c->id, http_method_name(m->method),
                  http_msg_path(m), status);
        if (status == 404) {
            http_response_json_error(&c->res, 404, "not_found", "no such endpoint");
        } else if (status == 405) {
            http_response_json_error(&c->res, 405, "method_not_allowed",
                                     "method not allowed on this endpoint");
            http_response_header(&c->res, "Allow", allow);
        } else {
            http_response_json_error(&c->res, 400, "bad_request", "malformed path parameter");
        }
        conn_send(c);
        return;
    }
    c->req.refusal = NULL;
    c->req.user[0] = '\0';
    if (route->guard != NULL) {
        status = route->guard(&c->req, route->guard_arg);
        if (status != 0) {
            const char *why = c->req.refusal ? c->req.refusal : "request refused";
            log_info("http: conn %llu: %s %s refused: %d %s", c->id, http_method_name(m->method),
                     http_msg_path(m), status, why);
            http_response_json_error(&c->res, status, status == 401 ? "unauthorized" : "forbidden",
                                     why);
            if (status == 401) /* RFC 9110: a 401 names the scheme it wants */
                http_response_header(&c->res, "WWW-Authenticate", "Bearer");
            conn_send(c);
            return;
        }
    }
    if (route->upgrade != NULL) {
        conn_upgrade(c, route);
        return;
    }
    c->in_handler = true;
    c->finished_early = false;
    int r = route->handler(&c->req, &c->res, route->arg);
    c->in_handler = false;
    if (r == -EAGAIN) {
        if (c->finished_early)
            conn_send(c);
        else
            c->deferred = true;
        return;
    }
    if (r < 0) {
        log_error("http: conn %llu: %s %s: handler failed: %s", c->id, http_method_name(m->method),
                  http_msg_path(m), strerror(-r));
        bool head_only = c->res.head_only, close = c->res.close;
        http_response_reset(&c->res);
        c->res.head_only = head_only;
        c->res.close = close;
        http_response_json_error(&c->res, 500, "internal_error", "internal error");
    }
    conn_send(c);
}

static void on_response_finish(struct http_response *res)
{
    struct http_conn *c = container_of(res, struct http_conn, res);
    if (c->in_handler) {
        c->finished_early = true;
        return;
    }
    if (!c->deferred) {
        log_error("http: conn %llu: response finished twice or never deferred", c->id);
        return;
    }
    c->deferred = false;
    if (c->closing) {
        if (c->open_handles == 0)
            conn_free(c);
        return;
    }
    conn_send(c);
}

static void conn_linger(struct http_conn *c);

static void on_written(uv_write_t *req, int status)
{
    struct http_conn *c = req->data;
    if (c->closing)
        return;
    if (status < 0) {
        log_debug("http: conn %llu: write: %s", c->id, uv_strerror(status));
        conn_close(c);
        return;
    }
    uv_timer_stop(&c->timer);
    if (c->res.close) {
        conn_linger(c);
        return;
    }
    http_response_reset(&c->res);
    if (c->body_cap > BODY_KEEP_BYTES) {
        http_parser_set_body_buffer(&c->parser, NULL, 0);
        free(c->body);
        c->body = NULL;
        c->body_cap = 0;
    }
    c->state = CONN_READING;
    c->req_started = false;
    if (c->in_start < c->in_end)
        conn_process(c); /* a pipelined request is already here */
    else
        timer_start(c, c->env->settings.idle_timeout_ms);
    if (c->state == CONN_READING)
        conn_read_start(c);
}

static void conn_send(struct http_conn *c)
{
    struct http_response *res = &c->res;
    struct http_conn_env *env = c->env;
    if (c->closing)
        return;
    if (res->err != 0) {
        log_error("http: conn %llu: response could not be built: %s", c->id, strerror(-res->err));
        bool head_only = res->head_only, close = res->close;
        http_response_reset(res);
        res->head_only = head_only;
        res->close = close;
        http_response_json_error(res, 500, "internal_error", "internal error");
    }
    if (env->settings.no_keepalive) /* the server started draining while this was handled */
        res->close = true;
    if (res->status >= 500)
        env->stats.responses_5xx++;
    else if (res->status >= 400)
        env->stats.responses_4xx++;
    if (http_response_serialize(res, c->keep_alive_10 && !res->close) != 0) {
        log_error("http: conn %llu: response head too large", c->id);
        conn_close(c);
        return;
    }
    uv_buf_t bufs[2] = {uv_buf_init(res->head, (unsigned)res->head_len),
                        uv_buf_init(res->body, (unsigned)res->body_len)};
    unsigned nbufs = res->head_only || res->body_len == 0 ? 1 : 2;
    c->state = CONN_WRITING;
    int err = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, bufs, nbufs, on_written);
    if (err != 0) {
        log_debug("http: conn %llu: write: %s", c->id, uv_strerror(err));
        conn_close(c);
        return;
    }
    timer_start(c, env->settings.write_timeout_ms);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct http_conn *c = req->data;
    if (status < 0 && !c->closing)
        conn_close(c);
}

/* Closing right after the last response would reset the connection if the client's later
 * bytes are still unread, and a reset can destroy the response before the client reads it.
 * So: send FIN, read and drop input until the client closes, bounded in time and bytes. */
static void conn_linger(struct http_conn *c)
{
    c->state = CONN_LINGERING;
    c->in_start = c->in_end = 0;
    int err = uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown);
    if (err != 0) {
        conn_close(c);
        return;
    }
    timer_start(c, c->env->settings.linger_ms);
    conn_read_start(c);
}

static void on_timer(uv_timer_t *t)
{
    struct http_conn *c = t->data;
    if (c->closing)
        return;
    switch (c->state) {
    case CONN_READING:
        if (c->req_started) {
            c->env->stats.timeouts++;
            conn_fail_request(c, -ETIMEDOUT);
        } else {
            log_debug("http: conn %llu: idle, closing", c->id);
            conn_close(c);
        }
        break;
    case CONN_WRITING:
        log_info("http: conn %llu: client took no response for %u ms, closing", c->id,
                 c->env->settings.write_timeout_ms);
        conn_close(c);
        break;
    case CONN_LINGERING:
        conn_close(c);
        break;
    case CONN_HANDLING:
        break;
    }
}

static void conn_process(struct http_conn *c)
{
    while (c->state == CONN_READING && !c->closing) {
        size_t avail = c->in_end - c->in_start;
        if (avail > 0 && !c->req_started) {
            c->req_started = true; /* the deadline covers the whole request from here */
            timer_start(c, c->env->settings.request_timeout_ms);
        }
        size_t used;
        int r = http_parser_execute(&c->parser, c->in + c->in_start, avail, &used);
        c->in_start += used;
        if (r == HTTP_PARSE_MORE)
            return;
        if (r == HTTP_PARSE_HEADERS) {
            if (conn_on_headers(c) != 0)
                return;
            continue;
        }
        if (r == HTTP_PARSE_DONE) {
            conn_dispatch(c);
            continue;
        }
        conn_fail_request(c, r);
        return;
    }
}

int http_conn_open(struct http_conn_env *env, int fd)
{
    struct http_conn *c = malloc(sizeof *c);
    if (c == NULL) {
        close(fd);
        return -ENOMEM;
    }
    memset(c, 0, offsetof(struct http_conn, req));
    c->env = env;
    c->id = ++env->next_id;
    c->next = env->conns;
    if (env->conns != NULL)
        env->conns->prev = c;
    env->conns = c;
    env->stats.active++;
    uv_tcp_init(env->loop, &c->tcp);
    uv_timer_init(env->loop, &c->timer);
    c->open_handles = 2;
    c->tcp.data = c->timer.data = c;
    c->write_req.data = c->continue_req.data = c->shutdown_req.data = c;
    http_parser_init(&c->parser, HTTP_MSG_REQUEST, &env->limits, true);
    http_response_init(&c->res, env->settings.max_response_bytes);
    c->res.on_finish = on_response_finish;
    c->req.msg = &c->parser.msg;
    c->req.n_params = 0;
    c->state = CONN_READING;
    int err = uv_tcp_open(&c->tcp, fd);
    if (err != 0) {
        log_warn("http: conn %llu: cannot serve fd %d: %s", c->id, fd, uv_strerror(err));
        close(fd);
        conn_close(c);
        return err;
    }
    uv_tcp_nodelay(&c->tcp, 1); /* fails harmlessly on a non-TCP stream */
    timer_start(c, env->settings.idle_timeout_ms);
    conn_read_start(c);
    return 0;
}

void http_conn_close_idle(struct http_conn_env *env)
{
    for (struct http_conn *c = env->conns; c != NULL; c = c->next)
        if (c->state == CONN_READING && !c->req_started && c->in_start == c->in_end)
            conn_close(c);
}

void http_conn_close_all(struct http_conn_env *env)
{
    for (struct http_conn *c = env->conns; c != NULL; c = c->next)
        conn_close(c);
}
