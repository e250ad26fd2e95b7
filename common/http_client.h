/* A small asynchronous HTTP/1.1 client on libuv: one request per connection over common/stream
 * (plain http://, or https:// with certificate and hostname verification), a deadline for the
 * whole exchange, and a bounded response parsed by the project's llhttp adapter. For the call
 * pair's webhook tool (on the call's own loop) and the worker's calls to Twilio. All calls on
 * the loop's thread; the callback never runs from inside http_client_request. */
#ifndef VB_COMMON_HTTP_CLIENT_H
#define VB_COMMON_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct tls_config;
struct http_client_call;

struct http_client_header {
    const char *name, *value;
};

struct http_client_request {
    const char *method;                       /* "GET", "POST", ... */
    const char *url;                          /* http://host[:port]/path?query or https://... */
    const struct http_client_header *headers; /* extra headers (copied); no CR/LF allowed */
    size_t n_headers;
    const void *body; /* copied; sent with Content-Length */
    size_t body_len;
    unsigned timeout_ms;       /* connect + TLS + send + response; 0 = 10000 */
    size_t max_response_bytes; /* body; 0 = 1 MiB; more is -EMSGSIZE */
};

struct http_client_response {
    int error;          /* 0, or -ETIMEDOUT, -ECONNREFUSED, -EKEYREJECTED (certificate),
                           -EMSGSIZE (response too large), -EPROTO (malformed response),
                           -ECANCELED (client closed), or another negative errno */
    const char *reason; /* the error in words, for logs ("" when error is 0) */
    int status;         /* HTTP status when error is 0 */
    const char *body;   /* valid only during the callback; may be NULL when empty */
    size_t body_len;
    const char *content_type; /* NULL if absent */
};

typedef void http_client_done_fn(void *arg, const struct http_client_response *res);

/* Requests in flight on one loop, so they can be cancelled together. Embed it; no allocation. */
struct http_client {
    uv_loop_t *loop;
    const struct tls_config *tls; /* for https://; NULL refuses https URLs */
    struct http_client_call *calls;
    void (*closed)(struct http_client *cl);
    int closing;
};

/* tls: a client config (tls_config_client_new) that outlives the client, or NULL. */
void http_client_init(struct http_client *cl, uv_loop_t *loop, const struct tls_config *tls);

/* Starts a request. Returns 0 (done(arg, ...) follows exactly once, from the loop), or -EINVAL
 * (bad URL, method or header; https without TLS), -ENOMEM, -ESHUTDOWN (closing). */
int http_client_request(struct http_client *cl, const struct http_client_request *req,
                        http_client_done_fn *done, void *arg);

/* Cancels every request (their callbacks run with -ECANCELED) and calls closed(cl) once every
 * connection has closed; cl may be freed then. closed may be NULL. */
void http_client_close(struct http_client *cl, void (*closed)(struct http_client *cl));

/* Splits an http(s) URL strictly: scheme, host (a name, IPv4, or [IPv6] without brackets in
 * host), port (default 80/443), path with query ("/" when empty). No userinfo, no fragment, no
 * whitespace or control characters. Returns 0 or -EINVAL. */
struct http_url {
    int https;
    char host[256];
    unsigned port;
    char path[2048];
};
int http_url_parse(const char *url, struct http_url *out);

#endif
