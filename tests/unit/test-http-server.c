/* HTTP server and connections over real loopback sockets: keep-alive, pipelining, limits and
 * their answers, HTTP/1.0 and Connection: close, HEAD, Expect: 100-continue, request and idle
 * timeouts, deferred responses, adopted fds, WebSocket detach, EMFILE pause, connection limit,
 * clients that vanish. Every test counts this process's fds before and after (no leak) and
 * checks that the loop closes with no handle left open. */
#include "worker/http_server.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "tests/lib/http_harness.h"
#include "tests/unit/testing.h"
#include "worker/http_endpoints.h"

static struct http_router router;
static struct http_harness harness;
static struct http_harness_reader reader, reader2;
static int fds_at_start;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* --- test routes --- */

static int echo(struct http_request *req, struct http_response *res, void *arg)
{
    (void)arg;
    const struct http_msg *m = req->msg;
    return http_response_body(res, "text/plain", m->body ? m->body : "", m->body_len);
}

static int fail_handler(struct http_request *req, struct http_response *res, void *arg)
{
    (void)req, (void)res, (void)arg;
    return -EIO;
}

static int big_handler(struct http_request *req, struct http_response *res, void *arg)
{
    (void)req, (void)arg;
    static char chunk[4096];
    memset(chunk, 'x', sizeof chunk);
    for (;;) {
        int err = http_response_append(res, chunk, sizeof chunk);
        if (err != 0)
            return err;
    }
}

struct deferred {
    uv_timer_t timer;
    struct http_response *res;
};

static void deferred_free(uv_handle_t *h)
{
    free(h->data);
}

static void deferred_fire(uv_timer_t *t)
{
    struct deferred *d = t->data;
    http_response_body(d->res, "text/plain", "later", 5);
    http_response_finish(d->res);
    uv_close((uv_handle_t *)t, deferred_free);
}

/* Answers after ?ms= milliseconds from a timer: the shape of a handler waiting on Redis. */
static int deferred_handler(struct http_request *req, struct http_response *res, void *arg)
{
    uv_loop_t *loop = arg;
    const char *q = http_msg_query(req->msg);
    unsigned ms = q && strncmp(q, "ms=", 3) == 0 ? (unsigned)atoi(q + 3) : 10;
    struct deferred *d = malloc(sizeof *d);
    if (d == NULL)
        return -ENOMEM;
    d->res = res;
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, deferred_fire, ms, 0);
    return -EAGAIN;
}

/* Starts the server's drain from its own loop thread, as a worker would, while this request
 * is itself in progress (answered later, like one waiting on Redis). */
static int drain_handler(struct http_request *req, struct http_response *res, void *arg)
{
    http_server_drain(harness.srv);
    return deferred_handler(req, res, arg);
}

/* Finishes before returning -EAGAIN: allowed, answered when the handler returns. */
static int early_finish_handler(struct http_request *req, struct http_response *res, void *arg)
{
    (void)req, (void)arg;
    http_response_body(res, "text/plain", "early", 5);
    http_response_finish(res);
    return -EAGAIN;
}

static int deny_guard(struct http_request *req, void *arg)
{
    (void)req, (void)arg;
    return 403;
}

static struct {
    int calls;
    int fd;
    char leftover[256];
    size_t n;
    char path[64];
    char key[64];
} up = {.fd = -1};

static void on_upgrade(int fd, const struct http_msg *m, const char *leftover, size_t n, void *arg)
{
    (void)arg;
    up.calls++;
    up.fd = fd;
    up.n = n < sizeof up.leftover ? n : sizeof up.leftover;
    memcpy(up.leftover, leftover, up.n);
    snprintf(up.path, sizeof up.path, "%s", http_msg_path(m));
    const char *key = http_msg_header(m, "sec-websocket-key");
    snprintf(up.key, sizeof up.key, "%s", key ? key : "");
    /* The receiver speaks first on the fd it now owns. */
    static const char resp[] = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
    if (write(fd, resp, sizeof resp - 1) != (ssize_t)sizeof resp - 1)
        up.calls = -100;
}

static struct http_endpoints endpoints = {.public_url = "https://voice.example.com"};

static void setup_router(uv_loop_t *loop)
{
    http_router_init(&router);
    CHECK_EQ(http_endpoints_register(&router, &endpoints), 0);
    const struct http_route routes[] = {
        {.method = HTTP_METHOD_POST, .pattern = "/echo", .handler = echo},
        {.method = HTTP_METHOD_GET, .pattern = "/fail", .handler = fail_handler},
        {.method = HTTP_METHOD_GET, .pattern = "/big", .handler = big_handler},
        {.method = HTTP_METHOD_GET,
         .pattern = "/deferred",
         .handler = deferred_handler,
         .arg = loop},
        {.method = HTTP_METHOD_GET, .pattern = "/early", .handler = early_finish_handler},
        {.method = HTTP_METHOD_GET, .pattern = "/drain", .handler = drain_handler, .arg = loop},
        {.method = HTTP_METHOD_GET, .pattern = "/guarded", .handler = echo, .guard = deny_guard},
        {.pattern = "/ws", .upgrade = on_upgrade},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        CHECK_EQ(http_router_add(&router, &routes[i]), 0);
}

/* Defaults, with a short linger so that tests waiting for our close do not wait long. */
static void test_settings(struct http_server_settings *s)
{
    http_server_settings_default(s);
    s->router = &router;
    s->linger_ms = 300;
}

/* Starts a server (listening on loopback when listen) with settings s. */
static void start_with(struct http_server_settings *s, bool listen)
{
    log_max_level = LOG_ERROR; /* keep test output readable; errors still show */
    fds_at_start = http_harness_count_fds();
    int err = http_harness_init(&harness, s, listen);
    CHECK_MSG(err == 0, "harness init: %d", err);
    /* The deferred route needs the loop: routes go in once it exists, before it runs. */
    setup_router(&harness.loop);
    CHECK_EQ(http_harness_run(&harness), 0);
}

static void start(void)
{
    struct http_server_settings s;
    test_settings(&s);
    start_with(&s, true);
}

static void stop_and_check_fds(void)
{
    CHECK_EQ(http_harness_stop(&harness), 0);
    int fds = http_harness_count_fds();
    CHECK_MSG(fds == fds_at_start, "fd leak: %d open before, %d after", fds_at_start, fds);
}

static int connect_client(void)
{
    int fd = http_harness_connect(harness.port);
    CHECK_MSG(fd >= 0, "connect: %d", fd);
    return fd;
}

static const char *hdr(const char *name)
{
    const char *v = http_msg_header(&reader.parser.msg, name);
    return v ? v : "";
}

static void expect_response(struct http_harness_reader *r, int status)
{
    int rc = http_harness_read_response(r);
    CHECK_MSG(rc == HTTP_PARSE_DONE, "read response: %d", rc);
    CHECK_MSG(r->parser.msg.status == status, "status %d, expected %d", r->parser.msg.status,
              status);
}

static bool body_has(const struct http_harness_reader *r, const char *s)
{
    const struct http_msg *m = &r->parser.msg;
    return m->body != NULL && memmem(m->body, m->body_len, s, strlen(s)) != NULL;
}

TEST(http_server_healthz)
{
    start();
    int fd = connect_client();
    http_harness_reader_init(&reader, fd);
    CHECK_EQ(http_harness_send_str(fd, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    expect_response(&reader, 200);
    const struct http_msg *m = &reader.parser.msg;
    CHECK_EQ(m->body_len, 15);
    CHECK(memcmp(m->body, "{\"status\":\"ok\"}", 15) == 0);
    CHECK(strcmp(hdr("content-type"), "application/json") == 0);
    CHECK(strcmp(hdr("content-length"), "15") == 0);
    CHECK(strcmp(hdr("server"), "voicebridge") == 0);
    CHECK(strstr(hdr("date"), " GMT") != NULL);
    CHECK(m->keep_alive);
    close(fd);
    stop_and_check_fds();
    CHECK_EQ(harness.stats.requests, 1);
    CHECK_EQ(harness.stats.accepted, 1);
}

TEST(http_server_keep_alive_three_requests)
{
    start();
    int fd = connect_client();
    http_harness_reader_init(&reader, fd);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(http_harness_send_str(fd, "POST /echo HTTP/1.1\r\nHost: t\r\n"
                                           "Content-Length: 5\r\n\r\nhello"),
                 0);
        expect_response(&reader, 200);
        CHECK(body_has(&reader, "hello"));
    }
    close(fd);
    stop_and_check_fds();
    CHECK_EQ(harness.stats.accepted, 1);
    CHECK_EQ(harness.stats.requests, 3);
}

/* A draining server closes idle keep-alive connections at once and answers a request in
 * progress, then closes that connection too (Connection: close). */
TEST(http_server_drain_closes_idle_and_finishes_busy)
{
    start();
    int idle = connect_client(), busy = connect_client();
    http_harness_reader_init(&reader, idle);
    CHECK_EQ(http_harness_send_str(idle, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    expect_response(&reader, 200); /* kept alive, now idle */
    http_harness_reader_init(&reader2, busy);
    /* in progress when the drain starts: the drain comes from its own handler */
    CHECK_EQ(http_harness_send_str(busy, "GET /drain?ms=200 HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    http_harness_reader_init(&reader, idle);
    CHECK_EQ(http_harness_read_eof(&reader), 0); /* the idle connection was closed */
    expect_response(&reader2, 200);              /* the busy one was answered... */
    CHECK(body_has(&reader2, "later"));
    CHECK(!reader2.parser.msg.keep_alive);       /* ...with Connection: close */
    CHECK_EQ(http_harness_read_eof(&reader2), 0);
    close(idle);
    close(busy);
    stop_and_check_fds();
}

TEST(http_server_pipelining_in_order)
{
    start();
    int fd = connect_client();
    http_harness_reader_init(&reader, fd);
    CHECK_EQ(http_harness_send_str(fd, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
                                       "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n"
                                       "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                                       "\r\nabc"),
             0);
    expect_response(&reader, 200);
    CHECK(body_has(&reader, "\"ok\""));
    expect_response(&reader, 404);
    expect_response(&reader, 200);
    CHECK(body_has(&reader, "abc"));
    close(fd);
    stop_and_check_fds();
}

TEST(http_server_headers_too_large_431)
{
    start();
    int fd = connect_client();
    http_harness_reader_init(&reader, fd);
    static char req[12000];
    memset(req, 'a', sizeof req);
    int n = snprintf(req, sizeof req, "GET /healthz HTTP/1.1\r\nX-Big: ");
    req[n] = 'a';
    memcpy(req + sizeof req - 4, "\r\n\r\n", 4);
    CHECK_EQ(http_harness_send(fd, req, sizeof req), 0);
    expect_response(&reader, 431);
    CHECK(strcmp(hdr("content-type"), "application/json") == 0);
    CHECK(body_has(&reader, "{\"success\":false,\"error\":{\"code\":\"headers_too_large\""));
    CHECK(strcmp(hdr("connection"), "close") == 0);
    CHECK_EQ(http_harness_read_eof(&reader), 0);
    close(fd);
    stop_and_check_fds();
    CHECK_EQ(harness.stats.responses_4xx, 1);
}

TEST(http_server_body_too_large_413)
{
    start();
    /* Declared too large: refused at the headers even though the client sends it all. */
    int fd = connect_client();
    http_harness_reader_init(&reader, fd);
    static char body[100000];
    memset(body, 'b', sizeof body);
    CHECK_EQ(http_harness_send_str(fd, "POST /echo HTTP/1.1\r\nHost: t\r\n"
                                       "Content-Length: 100000\r\n\r\n"),
             0);
    http_harness_send(fd, body, sizeof body); /* may fail once the server has closed */
    expect_response(&reader, 413);
    CHECK(body_has(&reader, "\"code\":\"body_too_large\""));
    int eof = http_harness_read_eof(&reader);
    CHECK_MSG(eof == 0 || eof == -ECONNRESET, "after 413: %d", eof);
    close(fd);
    /* Chunked: refused when the decoded body passes the limit. */
    fd = connect_client();
    http_harness_reader_init(&reader, fd);
    CHECK_EQ(http_harness_send_str(fd, "POST /echo HTTP/1.1\r\nHost: t\r\n"
                                       "Transfer-Encoding: chunked\r\n\r\n"),
             0);
    for (int i = 0; i < 20; i++) {
        char chunk[5000 + 16];
        int n = snprintf(chunk, sizeof chunk, "%x\r\n", 5000);
        memset(chunk + n, 'c', 5000);
        memcpy(chunk + n + 5000, "\r\n", 2);
        if (http_harness_send(fd, chunk, (size_t)n + 5002) != 0)
            break;
    }
    expect_response(&reader, 413);
    close(fd);
    stop_and_check_fds();
}

TEST(http_server_malformed_400_and_close)
{
    start();
    int fd = connect_client();
    http_harness_reader_init(&reader, fd);
    CHECK_EQ(http_harness_send_str(fd, "GARBAGE / HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n"),
             0);
    expect_response(&reader, 400);
    CHECK(body_has(&reader, "\"code\":\"bad_request\""));
    CHECK(strcmp(hdr("connection"), "close") == 0);
    CHECK_EQ(http_harness_read_eof(&reader), 0); /* nothing after: the next request is dropped */
    close(fd);
    /* HTTP/2 preface and unknown transfer codings: 501. */
    fd = connect_client();
    http_harness_reader_init(&reader, fd);
    CHECK_EQ(http_harness_send_str(fd, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0);
    expect_response(&reader, 501);
    close(fd);
    fd = connect_client();
    http_harness_reader_init(&reader, fd);
    CHECK_EQ(http_harness_send_str(fd, "POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
             0);
    expect_response(&reader, 501);
    close(fd);
    stop_and_check_fds();
}

TEST(http_server_404_405_json)
{
    start();
    int fd = connect_client();
    http_harness_reader_init(&reader, fd);
    CHECK_EQ(http_harness_send_str(fd, "GET /nowhere HTTP/1.1\r\n\r\n"), 0);
    expect_response(&reader, 404);
    CHECK(strcmp(hdr("content-type"), "application/json") == 0);
    CHECK(body_has(&reader, "{\"success\":false,\"error\":{\"code\":\"not_found\",\"message\":"));
    /* The connection survives a 404 or 405. */
    CHECK_EQ(http_harness_send_str(fd, "GET /twilio/voice HTTP/1.1\r\n\r\n"), 0);
    expect_response(&reader, 405);
    CHECK(strcmp(hdr("allow"), "POST") == 0);
    CHECK(body_has(&reader, "\"code\":\"method_not_allowed\""));
    CHECK_EQ(http_harness_send_str(fd, "DELETE /healthz HTTP/1.1\r\n\r\n"), 0);
    expect_response(&reader, 405);
    CHECK(strcmp(hdr("allow"), "GET, HEAD") == 0);
    CHECK_EQ(http_harness_send_str(fd, "GET /guarded HTTP/1.1\r\n\r\n"), 0);
    expect_response(&reader, 403);
    CHECK(body_has(&reader, "\"code\":\"forbidden\""));
    close(fd);
    stop_and_check_fds();
}

static int count_lines_with(const char *path, const char *needle)
{
    static char buf[65536];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    CHECK(n >= 0);
    buf[n] = '\0';
    int count = 0;
    for (const char *p = buf; (p = strstr(p, needle)) != NULL; p++)
        count++;
    return count;
}

TEST(http_server_handler_errors_500)
{
    char logpath[512];
    snprintf(logpath, sizeof logpath, "%s/server.log", test_tmpdir());
    CHECK_EQ(log_open(logpath), 0);
    start();
    int fd = connect_client();
    http_harness_reader_init(&reader, fd);
    CHECK_EQ(http_harness_send_str(fd, "GET /fail HTTP/1.1\r\n\r\n"), 0);
    expect_response(&reader, 500);
    CHECK(body_has(&reader, "\"code\":\"internal_error\""));
    /* A response past max_response_bytes is a 500, not an unbounded buffer. */
    CHECK_EQ(http_harness_send_str(fd, "GET /big HTTP/1.1\r\n\r\n"), 0);
    expect_response(&reader, 500);
    CHECK(reader.parser.msg.body_len < 200);
    CHECK_EQ(http_harness_send_str(fd, "GET /healthz HTTP/1.1\r\n\r\n"), 0);
    expect_response(&reader, 200);
    close(fd);
    stop_and_check_fds();
    CHECK_EQ(harness.stats.responses_5xx, 2);
    /* Each failure is logged once, as an error. */
    CHECK_EQ(count_lines_with(logpath, "ERROR"), 2);
    CHECK_EQ(count_lines_with(logpath, "GET /fail: handler failed"), 1);
    CHECK_EQ(count_lines_with(logpath, "GET /big: handler failed"), 1);
    CHECK_EQ(log_open(NULL), 0);
}

TEST(http_server_http10_and_connection_close)
{
    start();
    int fd = connect_client();
    http_harness_reader_init(&reader, fd);
    CHECK_EQ(http_harness_send_str(fd, "GET /healthz HTTP/1.0\r\n\r\n"), 0);
    expect_response(&reader, 200);
    CHECK(strcmp(hdr("connection"), "close") == 0);
    CHECK_EQ(http_harness_read_eof(&reader), 0);
    close(fd);
    /* HTTP/1.0 keep-alive is confirmed and kept. */
    fd = connect_client();
    http_harness_reader_init(&reader, fd);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(http_harness_send_str(fd, "GET /healthz HTTP/1.0\r\nConnection: keep-alive"
                                           "\r\n\r\n"),
                 0);
        expect_response(&reader, 200);
        CHECK(strcmp(hdr("connection"), "keep-alive") == 0);
    }
    close(fd);
    fd = connect_client();
    http_harness_reader_init(&reader, fd);
    CHECK_EQ(http_harness_send_str(fd, "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n"), 0);
    expect_response(&reader, 200);
    CHECK(strcmp(hdr("connection"), "close") == 0);
    CHECK_EQ(http_harness_read_eof(&reader), 0);
    close(fd);
    stop_and_check_fds();
}

TEST(http_server_head_has_no_body)
{
    start();
    int fd = connect_client();
    http_harness_reader_init(&reader, fd);
    char head[2048];
    CHECK_EQ(http_harness_send_str(fd, "HEAD /healthz HTTP/1.1\r\n\r\n"), 0);
    CHECK_EQ(http_harness_read_head(&reader, head, sizeof head), 0);
    CHECK(strncmp(head, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(strstr(head, "Content-Length: 15\r\n") != NULL);
    /* The next bytes are the next response, not a body. */
    CHECK_EQ(http_harness_send_str(fd, "GET /nope HTTP/1.1\r\n\r\n"), 0);
    expect_response(&reader, 404);
    close(fd);
    stop_and_check_fds();
}

TEST(http_server_expect_100_continue)
{
    start();
    int fd = connect_client();
    http_harness_reader_init(&reader, fd);
    char head[512];
    CHECK_EQ(http_harness_send_str(fd, "POST /echo HTTP/1.1\r\nContent-Length: 4\r\n"
                                       "Expect: 100-continue\r\n\r\n"),
             0);
    CHECK_EQ(http_harness_read_head(&reader, head, sizeof head), 0);
    CHECK(strcmp(head, "HTTP/1.1 100 Continue\r\n\r\n") == 0);
    CHECK_EQ(http_harness_send_str(fd, "data"), 0);
    expect_response(&reader, 200);
    CHECK(body_has(&reader, "data"));
    close(fd);
    stop_and_check_fds();
}

TEST(http_server_slow_client_408)
{
    struct http_server_settings s;
    test_settings(&s);
    s.request_timeout_ms = 300;
    start_with(&s, true);
    /* A request that stops half-way. */
    int fd = connect_client();
    http_harness_reader_init(&reader, fd);
    double t0 = now_s();
    CHECK_EQ(http_harness_send_str(fd, "GET /healthz HTTP/1.1\r\nHost: t\r\n"), 0);
    expect_response(&reader, 408);
    double dt = now_s() - t0;
    CHECK_MSG(dt >= 0.25 && dt < 5.0, "408 after %.3f s", dt);
    CHECK(body_has(&reader, "\"code\":\"request_timeout\""));
    CHECK_EQ(http_harness_read_eof(&reader), 0);
    close(fd);
    /* Slowloris: a byte every 50 ms does not extend the deadline. */
    fd = connect_client();
    http_harness_reader_init(&reader, fd);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    t0 = now_s();
    for (size_t i = 0; req[i] != '\0'; i++) {
        if (http_harness_send(fd, req + i, 1) != 0)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) > 0)
            break; /* the answer is here */
    }
    expect_response(&reader, 408);
    dt = now_s() - t0;
    CHECK_MSG(dt >= 0.25 && dt < 5.0, "408 after %.3f s", dt);
    close(fd);
    stop_and_check_fds();
    CHECK_EQ(harness.stats.timeouts, 2);
}

TEST(http_server_idle_keep_alive_closes)
{
    struct http_server_settings s;
    test_settings(&s);
    s.idle_timeout_ms = 200;
    start_with(&s, true);
    int fd = connect_client();
    http_harness_reader_init(&reader, fd);
    CHECK_EQ(http_harness_send_str(fd, "GET /healthz HTTP/1.1\r\n\r\n"), 0);
    expect_response(&reader, 200);
    double t0 = now_s();
    CHECK_EQ(http_harness_read_eof(&reader), 0); /* closed quietly: no 408 */
    double dt = now_s() - t0;
    CHECK_MSG(dt >= 0.1 && dt < 5.0, "idle close after %.3f s", dt);
    close(fd);
    /* A connection that never sends anything is idle too. */
    fd = connect_client();
    http_harness_reader_init(&reader, fd);
    CHECK_EQ(http_harness_read_eof(&reader), 0);
    close(fd);
    stop_and_check_fds();
    CHECK_EQ(harness.stats.timeouts, 0);
}

TEST(http_server_deferred_response)
{
    start();
    int fd = connect_client();
    http_harness_reader_init(&reader, fd);
    CHECK_EQ(http_harness_send_str(fd, "GET /deferred?ms=20 HTTP/1.1\r\n\r\n"
                                       "GET /early HTTP/1.1\r\n\r\n"),
             0);
    expect_response(&reader, 200);
    CHECK(body_has(&reader, "later"));
    expect_response(&reader, 200);
    CHECK(body_has(&reader, "early"));
    close(fd);
    /* The client leaves and the server closes while a response is still deferred: the
     * connection waits for http_response_finish, then everything is released. */
    fd = connect_client();
    CHECK_EQ(http_harness_send_str(fd, "GET /deferred?ms=300 HTTP/1.1\r\n\r\n"), 0);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    CHECK_EQ(poll(&pfd, 1, 100), 0);
    close(fd);
    stop_and_check_fds();
    CHECK_EQ(harness.stats.requests, 3);
}

TEST(http_server_adopt_fd)
{
    struct http_server_settings s;
    test_settings(&s);
    log_max_level = LOG_ERROR;
    fds_at_start = http_harness_count_fds();
    CHECK_EQ(http_harness_init(&harness, &s, false), 0);
    setup_router(&harness.loop);
    /* Accept a connection ourselves, as the master would, and pass the fd in. */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sin;
    CHECK(bind(lfd, (struct sockaddr *)&sin, sizeof sin) == 0);
    CHECK(listen(lfd, 4) == 0);
    CHECK(getsockname(lfd, (struct sockaddr *)&sin, &len) == 0);
    int client = http_harness_connect(ntohs(sin.sin_port));
    CHECK(client >= 0);
    int served = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    CHECK(served >= 0);
    close(lfd);
    CHECK_EQ(http_server_adopt_fd(harness.srv, served), 0);
    CHECK_EQ(http_harness_run(&harness), 0);
    http_harness_reader_init(&reader, client);
    CHECK_EQ(http_harness_send_str(client, "GET /healthz HTTP/1.1\r\n\r\n"), 0);
    expect_response(&reader, 200);
    close(client);
    stop_and_check_fds();
    CHECK_EQ(harness.stats.adopted, 1);
    CHECK_EQ(harness.stats.accepted, 0);
}

TEST(http_server_upgrade_detach)
{
    start();
    int fd = connect_client();
    http_harness_reader_init(&reader, fd);
    static const char frames[] = "\x81\x05hello\x81\x05WORLD";
    static char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                     "Connection: keep-alive, Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n");
    memcpy(req + n, frames, sizeof frames - 1);
    CHECK_EQ(http_harness_send(fd, req, (size_t)n + sizeof frames - 1), 0);
    char head[256];
    CHECK_EQ(http_harness_read_head(&reader, head, sizeof head), 0);
    CHECK(strcmp(head, "HTTP/1.1 101 Switching Protocols\r\n\r\n") == 0);
    CHECK_EQ(reader.len, 0);                  /* the HTTP server wrote nothing itself */
    CHECK_EQ(http_harness_stop(&harness), 0); /* the server and its handle are gone... */
    CHECK_EQ(up.calls, 1);
    CHECK(strcmp(up.path, "/ws") == 0);
    CHECK(strcmp(up.key, "dGhlIHNhbXBsZSBub25jZQ==") == 0);
    CHECK(up.fd >= 0);
    CHECK(fcntl(up.fd, F_GETFD) & FD_CLOEXEC);
    /* ...but the fd carries on: what was read ahead plus what is still queued is exactly what
     * the client sent after the request. */
    static char got[256];
    size_t have = up.n;
    memcpy(got, up.leftover, up.n);
    while (have < sizeof frames - 1) {
        struct pollfd pfd = {.fd = up.fd, .events = POLLIN};
        CHECK(poll(&pfd, 1, 5000) == 1);
        ssize_t r = read(up.fd, got + have, sizeof got - have);
        CHECK(r > 0);
        have += (size_t)r;
    }
    CHECK_EQ(have, sizeof frames - 1);
    CHECK(memcmp(got, frames, have) == 0);
    CHECK(write(up.fd, "bye", 3) == 3);
    char bye[4] = "";
    CHECK(recv(fd, bye, 3, MSG_WAITALL) == 3);
    CHECK(memcmp(bye, "bye", 3) == 0);
    close(up.fd);
    CHECK_EQ(http_harness_read_eof(&reader), 0);
    close(fd);
    int fds = http_harness_count_fds();
    CHECK_MSG(fds == fds_at_start, "fd leak: %d open before, %d after", fds_at_start, fds);
    CHECK_EQ(harness.stats.detached, 1);
}

TEST(http_server_upgrade_route_needs_upgrade)
{
    start();
    int fd = connect_client();
    http_harness_reader_init(&reader, fd);
    CHECK_EQ(http_harness_send_str(fd, "GET /ws HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    expect_response(&reader, 426);
    CHECK(strcmp(hdr("upgrade"), "websocket") == 0);
    close(fd);
    fd = connect_client();
    http_harness_reader_init(&reader, fd);
    CHECK_EQ(http_harness_send_str(fd, "POST /ws HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), 0);
    expect_response(&reader, 405);
    close(fd);
    stop_and_check_fds();
    CHECK_EQ(up.calls, 0);
}

TEST(http_server_client_vanishes)
{
    start();
    /* Half a request, then gone. */
    int fd = connect_client();
    CHECK_EQ(http_harness_send_str(fd, "POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\nab"), 0);
    close(fd);
    /* A whole request, then a reset before the answer can be read. */
    fd = connect_client();
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    CHECK_EQ(http_harness_send_str(fd, "GET /deferred?ms=50 HTTP/1.1\r\n\r\n"), 0);
    close(fd);
    /* Connect and leave at once. */
    fd = connect_client();
    close(fd);
    /* The server is still fine. */
    fd = connect_client();
    http_harness_reader_init(&reader, fd);
    CHECK_EQ(http_harness_send_str(fd, "GET /deferred?ms=100 HTTP/1.1\r\n\r\n"), 0);
    expect_response(&reader, 200);
    close(fd);
    stop_and_check_fds();
}

TEST(http_server_max_connections)
{
    struct http_server_settings s;
    test_settings(&s);
    s.max_connections = 1;
    start_with(&s, true);
    int a = connect_client();
    http_harness_reader_init(&reader, a);
    CHECK_EQ(http_harness_send_str(a, "GET /healthz HTTP/1.1\r\n\r\n"), 0);
    expect_response(&reader, 200);
    /* The second connection waits in the backlog while the first stays open. */
    int b = connect_client();
    http_harness_reader_init(&reader2, b);
    CHECK_EQ(http_harness_send_str(b, "GET /healthz HTTP/1.1\r\n\r\n"), 0);
    struct pollfd pfd = {.fd = b, .events = POLLIN};
    CHECK_EQ(poll(&pfd, 1, 200), 0);
    close(a);
    expect_response(&reader2, 200);
    close(b);
    stop_and_check_fds();
    CHECK_EQ(harness.stats.accepted, 2);
}

/* Waits until the log (read through log_fd, opened beforehand: no fd is free meanwhile)
 * holds `needle`; the server thread writes it. */
static bool wait_for_log(int log_fd, const char *needle)
{
    static char buf[65536];
    for (int i = 0; i < 500; i++) {
        ssize_t n = pread(log_fd, buf, sizeof buf - 1, 0);
        if (n > 0) {
            buf[n] = '\0';
            if (strstr(buf, needle) != NULL)
                return true;
        }
        usleep(10000);
    }
    return false;
}

TEST(http_server_emfile_pauses_accepting)
{
    char logpath[512];
    snprintf(logpath, sizeof logpath, "%s/server.log", test_tmpdir());
    struct http_server_settings s;
    test_settings(&s);
    s.accept_pause_ms = 100;
    start_with(&s, true);
    log_max_level = LOG_WARN;
    CHECK_EQ(log_open(logpath), 0);
    int log_fd = open(logpath, O_RDONLY | O_CLOEXEC);
    CHECK(log_fd >= 0);
    /* The client's socket exists before the fd table is filled; connecting needs no new fd. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct rlimit old, low;
    CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0);
    low = old;
    low.rlim_cur = 256;
    CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
    static int hog[256];
    int n_hog = 0;
    for (;;) {
        int h = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (h == -1)
            break;
        hog[n_hog++] = h;
    }
    CHECK_EQ(errno, EMFILE);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)harness.port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
    CHECK_EQ(http_harness_send_str(fd, "GET /healthz HTTP/1.1\r\n\r\n"), 0);
    bool paused = wait_for_log(log_fd, "pausing accepts");
    /* Give the server a few pause periods in which a spinning accept loop would show. */
    usleep(300000);
    for (int i = 0; i < n_hog; i++)
        close(hog[i]);
    CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
    CHECK_MSG(paused, "no 'pausing accepts' in the log");
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    http_harness_reader_init(&reader, fd);
    expect_response(&reader, 200);
    close(fd);
    close(log_fd);
    CHECK_EQ(log_open(NULL), 0);
    stop_and_check_fds();
    CHECK(harness.stats.accept_pauses >= 1);
    /* Paused every 100 ms for about half a second: a handful of tries, not a spin. */
    CHECK_MSG(harness.stats.accept_calls < 100, "accept4 called %llu times",
              (unsigned long long)harness.stats.accept_calls);
}

/* Client threads hammering one server: for ThreadSanitizer, and for the connection set. */
static void *client_thread(void *arg)
{
    (void)arg;
    struct http_harness_reader *r = malloc(sizeof *r);
    int fd = http_harness_connect(harness.port);
    void *rv = (void *)1;
    if (r == NULL || fd < 0)
        goto out;
    http_harness_reader_init(r, fd);
    for (int i = 0; i < 25; i++) {
        if (http_harness_send_str(fd, "POST /echo HTTP/1.1\r\nContent-Length: 4\r\n\r\nping") !=
                0 ||
            http_harness_read_response(r) != HTTP_PARSE_DONE || r->parser.msg.status != 200 ||
            r->parser.msg.body_len != 4)
            goto out;
    }
    rv = NULL;
out:
    if (fd >= 0)
        close(fd);
    free(r);
    return rv;
}

TEST(http_server_concurrent_clients)
{
    start();
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_create(&t[i], NULL, client_thread, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        CHECK(rv == NULL);
    }
    stop_and_check_fds();
    CHECK_EQ(harness.stats.requests, 100);
    CHECK_EQ(harness.stats.accepted, 4);
}

TEST(http_server_no_keepalive_closes_after_each_response)
{
    struct http_server_settings s;
    test_settings(&s);
    s.no_keepalive = true;
    start_with(&s, true);
    int fd = connect_client();
    http_harness_reader_init(&reader, fd);
    CHECK_EQ(http_harness_send_str(fd, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    expect_response(&reader, 200);
    CHECK(hdr("Connection") != NULL && strcmp(hdr("Connection"), "close") == 0);
    CHECK_EQ(http_harness_read_eof(&reader), 0);
    close(fd);
    stop_and_check_fds();
}
