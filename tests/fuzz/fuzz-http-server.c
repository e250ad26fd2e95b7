/* Fuzz target for the worker's HTTP connection: arbitrary bytes arrive on an adopted socket in
 * pieces, while a client on the same loop keeps reading whatever comes back, then half-closes.
 * Exercises the whole connection state machine (pipelining, limits, error answers, lingering,
 * WebSocket detach) under ASan/UBSan; a connection that never finishes is reported as a hang.
 * Input: byte 0 = seed of the piece sizes, the rest = what the client sends. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "common/log.h"
#include "worker/http_endpoints.h"
#include "worker/http_server.h"

static struct http_router router;
static struct http_endpoints endpoints = {.public_url = "https://voice.example.com"};

static int echo(struct http_request *req, struct http_response *res, void *arg)
{
    (void)arg;
    const struct http_msg *m = req->msg;
    return http_response_body(res, "text/plain", m->body ? m->body : "", m->body_len);
}

static void on_upgrade(int fd, const struct http_msg *m, const char *left, size_t n, void *arg)
{
    (void)m, (void)left, (void)n, (void)arg;
    close(fd);
}

struct client {
    uv_poll_t poll;
    uv_timer_t deadline;
    int fd;
    const uint8_t *data;
    size_t len, off;
    uint32_t rng;
    bool shut, done;
    struct http_server *srv;
};

static void on_server_closed(void *arg)
{
    (void)arg;
}

static void client_finish(struct client *c)
{
    if (c->done)
        return;
    c->done = true;
    uv_close((uv_handle_t *)&c->poll, NULL);
    uv_close((uv_handle_t *)&c->deadline, NULL);
    http_server_close(c->srv, on_server_closed, NULL);
}

static void on_client(uv_poll_t *p, int status, int events)
{
    struct client *c = p->data;
    if (status < 0) {
        client_finish(c);
        return;
    }
    if (events & UV_READABLE) {
        char buf[65536];
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            client_finish(c);
            return;
        }
    }
    if ((events & UV_WRITABLE) && !c->shut) {
        if (c->off < c->len) {
            c->rng = c->rng * 1103515245u + 12345u;
            size_t step = 1 + (c->rng >> 16) % 512;
            if (step > c->len - c->off)
                step = c->len - c->off;
            ssize_t n = send(c->fd, c->data + c->off, step, MSG_NOSIGNAL);
            if (n > 0)
                c->off += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EINTR)
                c->off = c->len; /* the server closed: stop sending */
        }
        if (c->off == c->len) {
            shutdown(c->fd, SHUT_WR);
            c->shut = true;
            uv_poll_start(&c->poll, UV_READABLE, on_client);
        }
    }
}

static void on_deadline(uv_timer_t *t)
{
    (void)t;
    abort(); /* a connection that neither finishes nor times out is a bug */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        log_max_level = LOG_ERROR;
        http_router_init(&router);
        if (http_endpoints_register(&router, &endpoints) != 0)
            abort();
        struct http_route routes[] = {
            {.method = HTTP_METHOD_POST, .pattern = "/echo", .handler = echo},
            {.method = HTTP_METHOD_PUT, .pattern = "/echo/{id}", .handler = echo},
            {.pattern = "/api/voice-calls/media-stream", .upgrade = on_upgrade},
        };
        for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
            if (http_router_add(&router, &routes[i]) != 0)
                abort();
        ready = true;
    }
    if (size < 1)
        return 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == -1)
        return 0;
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        abort();
    struct http_server_settings s;
    http_server_settings_default(&s);
    s.router = &router;
    s.max_head_bytes = 1024; /* small limits so that the fuzzer reaches them */
    s.max_headers = 8;
    s.max_body_bytes = 2048;
    s.max_response_bytes = 4096;
    struct client c = {.fd = sv[0], .data = data + 1, .len = size - 1, .rng = data[0] + 1u};
    if (http_server_create(&loop, &s, &c.srv) != 0)
        abort();
    if (http_server_adopt_fd(c.srv, sv[1]) != 0)
        abort();
    uv_poll_init(&loop, &c.poll, c.fd);
    c.poll.data = &c;
    uv_poll_start(&c.poll, UV_READABLE | UV_WRITABLE, on_client);
    uv_timer_init(&loop, &c.deadline);
    uv_timer_start(&c.deadline, on_deadline, 5000, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        abort();
    close(sv[0]);
    return 0;
}
