/* Asynchronous HTTP/1.1 client: each request is a struct http_client_call with its own stream
 * (Connection: close; one exchange per connection), a deadline timer, and a response parser.
 *   request() -> resolve/connect/TLS (stream) -> write request -> parse response -> done()
 * A call is freed once its stream and timer have both closed. */
#include "common/http_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/http_parser.h"
#include "common/log.h"
#include "common/stream.h"
#include "common/version.h"

#define HTTP_CLIENT_DEFAULT_TIMEOUT_MS 10000
#define HTTP_CLIENT_DEFAULT_MAX (1u << 20)

struct http_client_call {
    struct http_client_call *next;
    struct http_client *cl;
    struct stream stream;
    uv_timer_t timer;
    int handles; /* stream and timer still to close */
    int finished;
    http_client_done_fn *done;
    void *arg;
    char *request;
    size_t request_len;
    char *body_buf;
    size_t body_cap;
    struct http_url url;
    struct http_parser parser;
};

static int is_tchar(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_token(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!is_tchar(*s))
            return 0;
    return 1;
}

/* A header value: visible ASCII, UTF-8 bytes and blanks, never CR, LF or other controls. */
static int is_field_value(const char *s)
{
    for (const unsigned char *u = (const unsigned char *)s; *u; u++)
        if ((*u < 0x20 && *u != '\t') || *u == 0x7f)
            return 0;
    return 1;
}

int http_url_parse(const char *url, struct http_url *out)
{
    memset(out, 0, sizeof *out);
    const char *p;
    if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;
        out->port = 80;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        p = url + 8;
        out->https = 1;
        out->port = 443;
    } else {
        return -EINVAL;
    }
    const char *host = p, *host_end;
    if (*p == '[') {
        host = ++p;
        while (*p && *p != ']' && (strchr("0123456789abcdefABCDEF:.", *p) != NULL))
            p++;
        if (*p != ']' || p == host)
            return -EINVAL;
        host_end = p++;
    } else {
        while (*p && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                      (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'))
            p++;
        host_end = p;
        if (host_end == host)
            return -EINVAL;
    }
    if ((size_t)(host_end - host) >= sizeof out->host)
        return -EINVAL;
    memcpy(out->host, host, (size_t)(host_end - host));
    if (*p == ':') {
        unsigned long port = 0;
        const char *digits = ++p;
        while (*p >= '0' && *p <= '9' && p - digits < 6)
            port = port * 10 + (unsigned)(*p++ - '0');
        if (p == digits || port == 0 || port > 65535)
            return -EINVAL;
        out->port = (unsigned)port;
    }
    if (*p != '\0' && *p != '/' && *p != '?')
        return -EINVAL; /* userinfo ('@'), a fragment, or junk after the authority */
    size_t n = strlen(p);
    if (n + 2 > sizeof out->path)
        return -EINVAL;
    for (const unsigned char *u = (const unsigned char *)p; *u; u++)
        if (*u <= 0x20 || *u >= 0x7f || *u == '#')
            return -EINVAL;
    snprintf(out->path, sizeof out->path, "%s%s", *p == '/' ? "" : "/", p);
    return 0;
}

static void call_free_if_closed(struct http_client_call *c)
{
    if (--c->handles > 0)
        return;
    struct http_client *cl = c->cl;
    for (struct http_client_call **pp = &cl->calls; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    free(c->request);
    free(c->body_buf);
    free(c);
    if (cl->closing && cl->calls == NULL && cl->closed) {
        void (*closed)(struct http_client *) = cl->closed;
        cl->closed = NULL;
        closed(cl);
    }
}

static void on_stream_closed(struct stream *s)
{
    call_free_if_closed(s->data);
}

static void on_timer_closed(uv_handle_t *h)
{
    call_free_if_closed(h->data);
}

static void teardown(struct http_client_call *c)
{
    uv_timer_stop(&c->timer);
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    stream_close(&c->stream, 0, on_stream_closed);
}

/* Reports the outcome once, then closes the connection. */
static void finish(struct http_client_call *c, int err)
{
    if (c->finished)
        return;
    c->finished = 1;
    char reason[256] = "";
    struct http_client_response res = {.error = err, .reason = reason};
    if (err == 0) {
        res.status = c->parser.msg.status;
        res.body = c->parser.msg.body;
        res.body_len = c->parser.msg.body_len;
        res.content_type = http_msg_header(&c->parser.msg, "Content-Type");
    } else if (err == -EKEYREJECTED || err == -EPROTO) {
        char tls[200];
        stream_tls_describe(&c->stream, tls, sizeof tls);
        snprintf(reason, sizeof reason, "%s%s%s", strerror(-err), tls[0] ? ": " : "", tls);
    } else if (err == -EMSGSIZE) {
        snprintf(reason, sizeof reason, "response larger than %zu bytes", c->body_cap);
    } else {
        snprintf(reason, sizeof reason, "%s", strerror(-err));
    }
    c->done(c->arg, &res);
    teardown(c);
}

static void on_connect(struct stream *s, int status)
{
    struct http_client_call *c = s->data;
    if (status != 0) {
        finish(c, status);
        return;
    }
    int rc = stream_write(s, c->request, c->request_len);
    if (rc != 0)
        finish(c, rc);
}

static void on_read(struct stream *s, const uint8_t *data, size_t len)
{
    struct http_client_call *c = s->data;
    if (c->finished)
        return;
    size_t used;
    int rc = http_parser_execute(&c->parser, (const char *)data, len, &used);
    if (rc == HTTP_PARSE_DONE)
        finish(c, 0);
    else if (rc < 0)
        finish(c, rc == -EMSGSIZE ? -EMSGSIZE : -EPROTO);
}

static void on_end(struct stream *s, int err)
{
    struct http_client_call *c = s->data;
    if (c->finished)
        return;
    if (err != 0) {
        finish(c, err);
        return;
    }
    int rc = http_parser_finish(&c->parser);
    finish(c, rc == HTTP_PARSE_DONE ? 0 : -EPROTO);
}

static void on_timeout(uv_timer_t *t)
{
    finish(t->data, -ETIMEDOUT);
}

static const struct stream_callbacks call_callbacks = {
    .on_connect = on_connect,
    .on_read = on_read,
    .on_end = on_end,
};

void http_client_init(struct http_client *cl, uv_loop_t *loop, const struct tls_config *tls)
{
    memset(cl, 0, sizeof *cl);
    cl->loop = loop;
    cl->tls = tls;
}

/* Builds the request head and body into one buffer. Returns it (caller frees) or NULL. */
static char *build_request(const struct http_client_request *req, const struct http_url *u,
                           size_t *len)
{
    size_t cap = 256 + strlen(req->method) + strlen(u->path) + strlen(u->host) + req->body_len;
    for (size_t i = 0; i < req->n_headers; i++)
        cap += strlen(req->headers[i].name) + strlen(req->headers[i].value) + 4;
    char *buf = malloc(cap);
    if (buf == NULL)
        return NULL;
    int ipv6 = strchr(u->host, ':') != NULL;
    int default_port = u->port == (u->https ? 443u : 80u);
    char port[8] = "";
    if (!default_port)
        snprintf(port, sizeof port, ":%u", u->port);
    size_t n = (size_t)snprintf(buf, cap,
                                "%s %s HTTP/1.1\r\nHost: %s%s%s%s\r\nUser-Agent: voicebridge/%s\r\n"
                                "Connection: close\r\n",
                                req->method, u->path, ipv6 ? "[" : "", u->host, ipv6 ? "]" : "",
                                port, VOICEBRIDGE_VERSION);
    for (size_t i = 0; i < req->n_headers; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s: %s\r\n", req->headers[i].name,
                              req->headers[i].value);
    n += (size_t)snprintf(buf + n, cap - n, "Content-Length: %zu\r\n\r\n", req->body_len);
    if (req->body_len)
        memcpy(buf + n, req->body, req->body_len);
    *len = n + req->body_len;
    return buf;
}

int http_client_request(struct http_client *cl, const struct http_client_request *req,
                        http_client_done_fn *done, void *arg)
{
    if (cl->closing)
        return -ESHUTDOWN;
    struct http_url u;
    if (http_url_parse(req->url, &u) != 0 || !is_token(req->method) ||
        (u.https && cl->tls == NULL))
        return -EINVAL;
    for (size_t i = 0; i < req->n_headers; i++)
        if (!is_token(req->headers[i].name) || !is_field_value(req->headers[i].value))
            return -EINVAL;
    struct http_client_call *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->cl = cl;
    c->done = done;
    c->arg = arg;
    c->url = u;
    c->body_cap = req->max_response_bytes ? req->max_response_bytes : HTTP_CLIENT_DEFAULT_MAX;
    c->request = build_request(req, &u, &c->request_len);
    c->body_buf = malloc(c->body_cap);
    if (c->request == NULL || c->body_buf == NULL) {
        free(c->request);
        free(c->body_buf);
        free(c);
        return -ENOMEM;
    }
    struct http_limits lim = HTTP_LIMITS_DEFAULT;
    lim.max_body = c->body_cap;
    http_parser_init(&c->parser, HTTP_MSG_RESPONSE, &lim, false);
    http_parser_set_body_buffer(&c->parser, c->body_buf, c->body_cap);
    unsigned timeout = req->timeout_ms ? req->timeout_ms : HTTP_CLIENT_DEFAULT_TIMEOUT_MS;
    struct stream_options opt = {
        .tls = u.https ? cl->tls : NULL,
        .tls_hostname = u.https ? c->url.host : NULL,
        .connect_timeout_ms = timeout,
    };
    int rc = stream_init(&c->stream, cl->loop, &call_callbacks, &opt);
    if (rc != 0) {
        free(c->request);
        free(c->body_buf);
        free(c);
        return rc;
    }
    c->stream.data = c;
    uv_timer_init(cl->loop, &c->timer);
    c->timer.data = c;
    c->handles = 2;
    c->next = cl->calls;
    cl->calls = c;
    rc = stream_connect(&c->stream, c->url.host, u.port);
    if (rc != 0) {
        c->finished = 1; /* no callback: the caller learns it from the return value */
        teardown(c);
        return rc;
    }
    uv_timer_start(&c->timer, on_timeout, timeout, 0);
    return 0;
}

void http_client_close(struct http_client *cl, void (*closed)(struct http_client *cl))
{
    cl->closing = 1;
    cl->closed = closed;
    for (struct http_client_call *c = cl->calls; c; c = c->next)
        finish(c, -ECANCELED);
    if (cl->calls == NULL && closed) {
        cl->closed = NULL;
        closed(cl);
    }
}
