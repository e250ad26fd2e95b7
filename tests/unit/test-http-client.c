/* HTTP client: URL parsing, request validation, and real exchanges with a canned-response server
 * on loopback: statuses and bodies (Content-Length, chunked, to EOF), the deadline, refused
 * connections, oversized and malformed responses, cancellation; no fd left open. */
#include "common/http_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/lib/testnet.h"
#include "tests/unit/testing.h"

/* A one-connection server: accepts, reads the request head (and saves it), waits delay_ms,
 * writes reply (if any) and closes. */
struct canned {
    int lfd;
    int port;
    const char *reply;
    size_t reply_len;
    unsigned delay_ms;
    char request[4096];
    pthread_t th;
};

static void *canned_serve(void *arg)
{
    struct canned *s = arg;
    int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t n = 0;
    while (n < sizeof s->request - 1 && !strstr(s->request, "\r\n\r\n")) {
        ssize_t r = read(fd, s->request + n, sizeof s->request - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        s->request[n] = '\0';
    }
    if (s->delay_ms)
        usleep(s->delay_ms * 1000);
    if (s->reply) {
        ssize_t w = write(fd, s->reply, s->reply_len);
        (void)w;
    }
    close(fd);
    return NULL;
}

static void canned_start(struct canned *s, const char *reply, unsigned delay_ms)
{
    memset(s, 0, sizeof *s);
    s->reply = reply;
    s->reply_len = reply ? strlen(reply) : 0;
    s->delay_ms = delay_ms;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(s->lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(s->lfd, 4) == 0);
    socklen_t len = sizeof a;
    getsockname(s->lfd, (struct sockaddr *)&a, &len);
    s->port = ntohs(a.sin_port);
    pthread_create(&s->th, NULL, canned_serve, s);
}

static void canned_stop(struct canned *s)
{
    shutdown(s->lfd, SHUT_RDWR);
    pthread_join(s->th, NULL);
    close(s->lfd);
}

struct outcome {
    int calls, error, status;
    char body[256];
};

static void record(void *arg, const struct http_client_response *res)
{
    struct outcome *o = arg;
    o->calls++;
    o->error = res->error;
    o->status = res->status;
    snprintf(o->body, sizeof o->body, "%.*s", (int)res->body_len, res->body ? res->body : "");
}

/* Runs one request to completion on a fresh loop. */
static struct outcome exchange(const char *url, const char *method, const char *body,
                               unsigned timeout_ms, size_t max)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct http_client cl;
    http_client_init(&cl, &loop, NULL);
    struct outcome o = {0};
    struct http_client_header h = {"Content-Type", "application/json"};
    struct http_client_request req = {method, url, &h, 1, body, body ? strlen(body) : 0,
                                      timeout_ms, max};
    CHECK_EQ(http_client_request(&cl, &req, record, &o), 0);
    CHECK_EQ(o.calls, 0); /* never from inside the request call */
    uv_run(&loop, UV_RUN_DEFAULT);
    http_client_close(&cl, NULL);
    CHECK_EQ(uv_loop_close(&loop), 0);
    CHECK_EQ(o.calls, 1);
    return o;
}

TEST(http_client_url_parsing)
{
    struct http_url u;
    CHECK_EQ(http_url_parse("http://example.com", &u), 0);
    CHECK(!u.https && strcmp(u.host, "example.com") == 0 && u.port == 80 && strcmp(u.path, "/") == 0);
    CHECK_EQ(http_url_parse("HTTPS://h.example:8443/a/b?x=1&y=2", &u), 0);
    CHECK(u.https && u.port == 8443 && strcmp(u.path, "/a/b?x=1&y=2") == 0);
    CHECK_EQ(http_url_parse("http://[::1]:81?q", &u), 0);
    CHECK(strcmp(u.host, "::1") == 0 && u.port == 81 && strcmp(u.path, "/?q") == 0);
    static const char *bad[] = {"", "ftp://h/", "http://", "http://:80/", "http://h:0/",
                                "http://h:65536/", "http://h:12a/", "http://u:p@h/",
                                "http://h/a b", "http://h/#frag", "http://h/\r\nX: y",
                                "http://[::1/", "http://h_/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(http_url_parse(bad[i], &u) == -EINVAL, "accepted %s", bad[i]);
}

TEST(http_client_refuses_bad_requests)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct http_client cl;
    http_client_init(&cl, &loop, NULL);
    struct outcome o = {0};
    struct http_client_header inj = {"X-A", "1\r\nX-Injected: 2"};
    struct http_client_header badname = {"X A", "1"};
    struct http_client_request req = {"POST", "http://127.0.0.1:9/", &inj, 1, NULL, 0, 0, 0};
    CHECK_EQ(http_client_request(&cl, &req, record, &o), -EINVAL);
    req.headers = &badname;
    CHECK_EQ(http_client_request(&cl, &req, record, &o), -EINVAL);
    req.n_headers = 0;
    req.method = "GE T";
    CHECK_EQ(http_client_request(&cl, &req, record, &o), -EINVAL);
    req.method = "GET";
    req.url = "https://127.0.0.1:9/"; /* no TLS configuration given */
    CHECK_EQ(http_client_request(&cl, &req, record, &o), -EINVAL);
    http_client_close(&cl, NULL);
    CHECK_EQ(o.calls, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ(uv_loop_close(&loop), 0);
}

TEST(http_client_exchanges)
{
    /* libuv opens process-wide fds (its signal pipe) with the first loop: count after that. */
    uv_loop_t first;
    uv_loop_init(&first);
    uv_loop_close(&first);
    int fds = test_fd_count();
    struct canned s;
    char url[128];

    canned_start(&s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
                     "{\"ok\":true}", 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hook?x=1", s.port);
    struct outcome o = exchange(url, "POST", "{\"q\":\"time\"}", 5000, 0);
    canned_stop(&s);
    CHECK(o.error == 0 && o.status == 200 && strcmp(o.body, "{\"ok\":true}") == 0);
    CHECK(strncmp(s.request, "POST /hook?x=1 HTTP/1.1\r\n", 25) == 0);
    CHECK(strstr(s.request, "\r\nContent-Length: 12\r\n") && strstr(s.request, "Content-Type: application/json"));
    CHECK(strstr(s.request, "\r\nHost: 127.0.0.1:") != NULL);

    canned_start(&s, "HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbusy\r\n0\r\n\r\n", 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s.port);
    o = exchange(url, "GET", NULL, 5000, 0);
    canned_stop(&s);
    CHECK(o.error == 0 && o.status == 503 && strcmp(o.body, "busy") == 0);

    canned_start(&s, "HTTP/1.0 200 OK\r\n\r\nuntil the end", 0); /* body runs to EOF */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s.port);
    o = exchange(url, "GET", NULL, 5000, 0);
    canned_stop(&s);
    CHECK(o.error == 0 && strcmp(o.body, "until the end") == 0);

    canned_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s.port);
    o = exchange(url, "GET", NULL, 5000, 10);
    canned_stop(&s);
    CHECK_EQ(o.error, -EMSGSIZE);

    canned_start(&s, "SMTP ready\r\n\r\n", 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s.port);
    o = exchange(url, "GET", NULL, 5000, 0);
    canned_stop(&s);
    CHECK_EQ(o.error, -EPROTO);

    canned_start(&s, NULL, 0); /* closes without a word */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s.port);
    o = exchange(url, "GET", NULL, 5000, 0);
    canned_stop(&s);
    CHECK_EQ(o.error, -EPROTO);

    /* The deadline: the answer would come after 1.5 s, the request allows 200 ms. */
    canned_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1500);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s.port);
    o = exchange(url, "GET", NULL, 200, 0);
    canned_stop(&s);
    CHECK_EQ(o.error, -ETIMEDOUT);

    /* Nobody listening. */
    canned_start(&s, NULL, 0);
    int port = s.port;
    canned_stop(&s);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    o = exchange(url, "GET", NULL, 5000, 0);
    CHECK_EQ(o.error, -ECONNREFUSED);
    CHECK_EQ(test_fd_count(), fds);
}

static int closed_calls;
static void on_closed(struct http_client *cl)
{
    (void)cl;
    closed_calls++;
}

TEST(http_client_close_cancels)
{
    struct canned s;
    canned_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 800);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s.port);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct http_client cl;
    http_client_init(&cl, &loop, NULL);
    struct outcome o = {0};
    struct http_client_request req = {"GET", url, NULL, 0, NULL, 0, 5000, 0};
    CHECK_EQ(http_client_request(&cl, &req, record, &o), 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    http_client_close(&cl, on_closed);
    CHECK(o.calls == 1 && o.error == -ECANCELED);
    CHECK_EQ(http_client_request(&cl, &req, record, &o), -ESHUTDOWN);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ(closed_calls, 1);
    CHECK_EQ(uv_loop_close(&loop), 0);
    canned_stop(&s);
}
