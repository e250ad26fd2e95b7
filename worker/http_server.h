/* The worker's HTTP server on its main libuv loop: adopts connections the master accepted
 * (http_server_adopt_fd) or accepts its own (http_server_listen, for tests and single-process
 * runs), serves them through a router with explicit limits and timeouts, and hands WebSocket
 * upgrades over as bare fds. Everything here runs on the loop's thread. */
#ifndef VB_WORKER_HTTP_SERVER_H
#define VB_WORKER_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "worker/http_router.h"

struct http_server_settings {
    struct http_router *router;  /* required; read-only while serving, outlives the server */
    size_t max_head_bytes;       /* request line + headers: 431 above (<= HTTP_HEAD_BYTES_MAX) */
    size_t max_headers;          /* header lines: 431 above (<= HTTP_HEADERS_MAX) */
    size_t max_body_bytes;       /* request body: 413 above */
    size_t max_response_bytes;   /* response body: a handler going past it gets 500 */
    unsigned request_timeout_ms; /* first byte to last byte of a request: 408 after */
    unsigned idle_timeout_ms;    /* no request on an open connection: closed quietly */
    bool no_keepalive;           /* close every connection after its response */
    unsigned write_timeout_ms;   /* a response not taken by the client: closed */
    unsigned linger_ms;          /* draining input after our last response before closing */
    unsigned accept_pause_ms;    /* accepting paused this long on EMFILE/ENFILE/ENOMEM */
    unsigned max_connections;    /* beyond: accepting pauses, adopt_fd refuses */
    int backlog;
};

/* Fills s with the defaults (router NULL): 8 KiB head, 64 headers, 64 KiB body, 1 MiB
 * response, 10 s request, 60 s idle, 30 s write, 1 s linger, 500 ms accept pause, 4096
 * connections, backlog 511. */
void http_server_settings_default(struct http_server_settings *s);

/* Counters for /metrics and tests; read on the loop thread. */
struct http_server_stats {
    uint64_t accepted; /* by our own listener */
    uint64_t adopted;  /* handed in by http_server_adopt_fd */
    uint64_t requests; /* complete requests dispatched */
    uint64_t responses_4xx, responses_5xx;
    uint64_t timeouts;      /* 408s sent */
    uint64_t detached;      /* WebSocket upgrades handed over */
    uint64_t accept_pauses; /* times accepting was paused for lack of fds or memory */
    uint64_t accept_calls;  /* accept4 calls, successful or not (shows spinning) */
    unsigned active;        /* open connections */
};

struct http_server;

/* Creates a server on loop (which must outlive it). Settings are copied. Returns 0 and *out,
 * -EINVAL for missing router or limits above the parser's ceilings, -ENOMEM. */
int http_server_create(uv_loop_t *loop, const struct http_server_settings *s,
                       struct http_server **out);

/* Binds and listens on addr (IPv4/IPv6; port 0 picks one, see http_server_port). One listener
 * per server. Returns 0 or -errno (-EBUSY if already listening). */
int http_server_listen(struct http_server *srv, const struct sockaddr *addr);

/* Port the listener is bound to, or -errno. */
int http_server_port(const struct http_server *srv);

/* Serves an accepted, connected stream socket. Takes ownership of fd in every case (closed on
 * error). Returns 0, -EBUSY at max_connections or while closing, or -errno. */
int http_server_adopt_fd(struct http_server *srv, int fd);

const struct http_server_stats *http_server_stats(const struct http_server *srv);

/* Winding down (a worker that drains): from now on every response closes its connection, and
 * idle keep-alive connections are closed at once; requests in progress are answered. Watch
 * http_server_stats()->active fall to 0, then http_server_close. */
void http_server_drain(struct http_server *srv);

/* Stops listening and closes every connection (no drain). cb(arg) runs once every handle is
 * closed and every deferred response has been finished; srv is freed right after cb returns. */
void http_server_close(struct http_server *srv, void (*cb)(void *arg), void *arg);

#endif
