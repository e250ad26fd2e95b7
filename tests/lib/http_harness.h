/* Test harness for the HTTP server: runs a server's libuv loop in a thread on loopback, and
 * gives the test blocking client sockets that read whole responses with our own parser.
 * Helpers return errors rather than failing the test, so benchmarks can link them too. */
#ifndef VB_TESTS_LIB_HTTP_HARNESS_H
#define VB_TESTS_LIB_HTTP_HARNESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "common/http_parser.h"
#include "worker/http_router.h"
#include "worker/http_server.h"

struct http_harness {
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t thread;
    struct http_server *srv;
    struct http_server_stats stats; /* copied on the loop thread just before closing */
    int port;                       /* when listening */
    bool running;
};

/* Creates the loop and the server (settings->router set by the caller); listens on
 * 127.0.0.1:0 when listen is true. The loop does not run yet: the caller may use the server
 * from this thread (e.g. http_server_adopt_fd) until http_harness_run. Returns 0 or -errno. */
int http_harness_init(struct http_harness *h, const struct http_server_settings *s, bool listen);

/* Starts the loop thread. */
int http_harness_run(struct http_harness *h);

/* Closes the server on its loop, joins the thread and closes the loop. Returns 0, or
 * uv_loop_close's error when a handle was left open. */
int http_harness_stop(struct http_harness *h);

/* A connected blocking client (close-on-exec, 10 s receive timeout), or -errno. */
int http_harness_connect(int port);

/* Sends everything (MSG_NOSIGNAL). Returns 0 or -errno. */
int http_harness_send(int fd, const void *data, size_t len);
int http_harness_send_str(int fd, const char *s);

/* Reads responses from one connection; bytes past a response stay for the next one. */
struct http_harness_reader {
    int fd;
    size_t len;
    char buf[131072];
    char body[131072];
    struct http_parser parser;
};

void http_harness_reader_init(struct http_harness_reader *r, int fd);

/* Reads one whole response into r->parser.msg (body in r->body). Returns HTTP_PARSE_DONE, or
 * -ENODATA on EOF before any byte, -EAGAIN on timeout, -errno. */
int http_harness_read_response(struct http_harness_reader *r);

/* One request on a fresh connection: connects, sends req[0..len), reads one response into r
 * (r->parser.msg), closes. Returns HTTP_PARSE_DONE or what failed (-errno). */
int http_harness_exchange(int port, const char *req, size_t len, struct http_harness_reader *r);

/* Reads up to the end of the next response head (for HEAD responses, which have no body
 * whatever their Content-Length says) and copies it, NUL-terminated, into out. Returns 0. */
int http_harness_read_head(struct http_harness_reader *r, char *out, size_t cap);

/* Waits for the peer to close: 0 on EOF with nothing before it, 1 if bytes came first (they
 * are left in the reader), -ECONNRESET, -EAGAIN on timeout. */
int http_harness_read_eof(struct http_harness_reader *r);

/* Number of open fds of this process (from /proc/self/fd), libuv's lasting ones included. */
int http_harness_count_fds(void);

#endif
