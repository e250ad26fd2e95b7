/* Response builder handed to HTTP handlers: status, extra headers, a bounded body, JSON errors
 * in the API's one error shape, and the wire form (status line, Date, Server, Content-Length,
 * Connection) written by the connection. One response per connection, reused per request;
 * main-loop thread only. */
#ifndef VB_WORKER_HTTP_RESPONSE_H
#define VB_WORKER_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_RESPONSE_EXTRA_MAX 1024 /* handler-added header lines */
#define HTTP_RESPONSE_HEAD_MAX (HTTP_RESPONSE_EXTRA_MAX + 512)

/* Fields are private to http_response.c and the connection that owns the response. */
struct http_response {
    int status;
    int err;        /* first builder error: the connection answers 500 instead */
    bool head_only; /* HEAD: Content-Length of the body, but no body on the wire */
    bool close;     /* close the connection after this response */
    char content_type[96];
    char extra[HTTP_RESPONSE_EXTRA_MAX];
    size_t extra_len;
    char *body; /* owned, grown by doubling up to body_limit */
    size_t body_len, body_cap, body_limit;
    char head[HTTP_RESPONSE_HEAD_MAX];
    size_t head_len;
    /* Set by the owner: what http_response_finish does for a deferred response. */
    void (*on_finish)(struct http_response *res);
};

/* Sets the status (100..599). Returns 0 or -EINVAL. */
int http_response_status(struct http_response *res, int status);

/* Adds "name: value". Names the connection manages (Content-Length, Content-Type, Date, Server,
 * Connection, Transfer-Encoding) and values with control characters are refused (-EINVAL);
 * -ENOSPC past HTTP_RESPONSE_EXTRA_MAX. */
int http_response_header(struct http_response *res, const char *name, const char *value);

/* Replaces the body with a copy of data and sets its Content-Type. -ENOBUFS above the server's
 * max_response_bytes, -EINVAL for a content type with control characters or too long. */
int http_response_body(struct http_response *res, const char *content_type, const void *data,
                       size_t len);

/* Appends to the body (for builders that write in pieces). -ENOBUFS above the limit. */
int http_response_append(struct http_response *res, const void *data, size_t len);

/* Status plus {"success":false,"error":{"code":CODE,"message":MESSAGE}} as application/json
 * (code and message JSON-escaped). Replaces any body. */
int http_response_json_error(struct http_response *res, int status, const char *code,
                             const char *message);

/* Completes a response whose handler returned -EAGAIN; call exactly once, on the loop thread.
 * If the client is gone by then the response is dropped (and the connection freed). */
void http_response_finish(struct http_response *res);

/* Reason phrase for a status ("Not Found"), "Unknown" for codes we never send. */
const char *http_status_text(int status);

/* --- for the owning connection --- */

void http_response_init(struct http_response *res, size_t body_limit);
/* Clears for the next request; keeps a small body buffer, frees a big one. */
void http_response_reset(struct http_response *res);
void http_response_free(struct http_response *res);
/* Writes the head for the current status/body into res->head. keep_alive_10: the request was
 * HTTP/1.0 with keep-alive, which must be confirmed. Returns 0 or -ENOSPC. */
int http_response_serialize(struct http_response *res, bool keep_alive_10);

#endif
