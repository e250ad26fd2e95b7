/* HTTP router: method + path pattern with whole-segment {param}s ("/api/voice-calls/{id}/hangup")
 * to a handler, or to a WebSocket receiver that takes the connection over. Unknown paths are
 * 404, known paths with another method 405 with Allow; GET routes also answer HEAD. A route may
 * carry a guard (the seam for X-Twilio-Signature and JWT checks) run before its handler. */
#ifndef VB_WORKER_HTTP_ROUTER_H
#define VB_WORKER_HTTP_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "common/http_parser.h"
#include "worker/http_response.h"

#define HTTP_ROUTES_MAX 32
#define HTTP_ROUTE_SEGMENTS_MAX 8
#define HTTP_ROUTE_PARAMS_MAX 4
#define HTTP_PARAM_BYTES 512 /* all decoded parameter values of one request */
#define HTTP_USER_MAX 128     /* the authenticated user's id, NUL included */

/* What a handler sees. Valid until its response is finished. */
struct http_request {
    const struct http_msg *msg; /* method, path, headers, body */
    size_t n_params;
    const char *param_names[HTTP_ROUTE_PARAMS_MAX];  /* from the pattern (in the router) */
    const char *param_values[HTTP_ROUTE_PARAMS_MAX]; /* percent-decoded path segments */
    char param_buf[HTTP_PARAM_BYTES];
    /* Set by a guard: why it refused (static text, sent as the error message and logged once
     * by the connection), and who the request is from once it let it through ("" if nobody:
     * an unguarded route or a guard that knows no users). */
    const char *refusal;
    char user[HTTP_USER_MAX];
};

/* Fills res and returns 0; or returns -EAGAIN and calls http_response_finish(res) later (from
 * the loop thread, exactly once; calling it before returning is allowed). Any other negative
 * return is answered 500. */
typedef int http_handler_fn(struct http_request *req, struct http_response *res, void *arg);

/* Receives a detached WebSocket connection: fd (non-blocking, close-on-exec; the receiver owns
 * it and must close it, also on failure), the request (valid only during the call: copy the
 * struct by value to keep it), and bytes the client sent after the request that were already
 * read (valid only during the call). The handshake response is the receiver's job. */
typedef void http_upgrade_fn(int fd, const struct http_msg *req, const char *leftover, size_t n,
                             void *arg);

/* Returns 0 to let the request through (it may fill req->user), or the HTTP status to refuse it
 * with (401, 403), with req->refusal set to a short static reason. A guard does not log a
 * refusal: the connection logs one line with the reason. Runs on the loop thread. */
typedef int http_guard_fn(struct http_request *req, void *arg);

struct http_route {
    enum http_method method; /* GET also serves HEAD; ignored (GET) for upgrade routes */
    const char *pattern;     /* static storage: kept by pointer */
    http_handler_fn *handler;
    http_upgrade_fn *upgrade; /* set: a WebSocket route, handler unused */
    http_guard_fn *guard;     /* NULL: no check */
    void *arg;                /* passed to handler or upgrade */
    void *guard_arg;          /* passed to guard */
};

#define HTTP_PARAM_NAME_MAX 32

struct http_router_seg {
    uint16_t off, len; /* literal text in the pattern */
    int8_t param;      /* index into names for a "{name}" segment, else -1 */
};

struct http_router_entry {
    struct http_route route;
    uint8_t n_segs, n_params;
    struct http_router_seg segs[HTTP_ROUTE_SEGMENTS_MAX];
    char names[HTTP_ROUTE_PARAMS_MAX][HTTP_PARAM_NAME_MAX];
};

/* Caller-owned (static or embedded); no allocation. Built at startup, then read-only. */
struct http_router {
    size_t n;
    struct http_router_entry entries[HTTP_ROUTES_MAX];
};

void http_router_init(struct http_router *r);

/* Copies the route. Returns 0; -EINVAL for a pattern that does not start with '/', has too many
 * segments or parameters, or a malformed {param}, or a route with neither handler nor upgrade;
 * -EEXIST for a duplicate method + pattern; -ENOSPC when full. */
int http_router_add(struct http_router *r, const struct http_route *route);

/* Finds the route for req->msg and fills req's parameters. Returns 0 and *route, or the HTTP
 * status to answer: 404 (no such path), 405 (path known, method not; `allow` gets the methods,
 * e.g. "GET, HEAD, POST"), 400 (a parameter segment with a bad escape or too long). */
int http_router_match(const struct http_router *r, struct http_request *req,
                      const struct http_route **route, char *allow, size_t allow_cap);

/* Value of the path parameter `name`, or NULL. */
const char *http_request_param(const struct http_request *req, const char *name);

#endif
