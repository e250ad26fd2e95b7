/* One HTTP connection on the worker's loop, as http_server.c drives it: open one on an accepted
 * fd, close them all at shutdown, hear when one is freed. The connection itself (read, parse,
 * dispatch, write, timeouts, detach) is private to http_conn.c. */
#ifndef VB_WORKER_HTTP_CONN_H
#define VB_WORKER_HTTP_CONN_H

#include <uv.h>

#include "common/http_parser.h"
#include "worker/http_server.h"

struct http_conn;

/* What connections share with their server; owned by the server, outlives its connections. */
struct http_conn_env {
    uv_loop_t *loop;
    struct http_server_settings settings;
    struct http_limits limits;
    struct http_server_stats stats;
    struct http_conn *conns; /* open connections, doubly linked */
    uint64_t next_id;
    /* Called after a connection's memory is released (stats.active already decremented). */
    void (*on_conn_freed)(struct http_conn_env *env);
};

/* Starts serving fd. Takes ownership of fd in every case. Returns 0 or -errno. */
int http_conn_open(struct http_conn_env *env, int fd);

/* Closes every open connection; each is freed from its close callbacks (or when its deferred
 * response is finished). */
void http_conn_close_all(struct http_conn_env *env);

/* Closes the connections that wait for a request of which nothing has arrived yet (idle
 * keep-alive); requests in progress go on. */
void http_conn_close_idle(struct http_conn_env *env);

#endif
