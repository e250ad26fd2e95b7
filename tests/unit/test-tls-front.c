/* worker/tls_front on one loop in the test thread: a TLS client (common/stream, verifying the
 * test CA and "localhost") completes its handshake with the front and gets /healthz from the HTTP
 * server behind it; after tls_front_reload to a certificate from a second CA, new clients must
 * trust that CA; a failed reload keeps the pair in use; bad files are refused at creation; and
 * closing leaves no fd or handle behind. */
#include "worker/tls_front.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/stream.h"
#include "common/tls.h"
#include "tests/lib/testnet.h"
#include "tests/unit/testing.h"
#include "worker/http_endpoints.h"
#include "worker/http_server.h"

struct client {
    struct stream s;
    int connect_status; /* 1: not yet */
    char got[4096];
    size_t got_len;
    int ended, closed;
};

static void c_connect(struct stream *s, int status)
{
    struct client *c = s->data;
    c->connect_status = status;
    if (status == 0) {
        static const char req[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close"
                                  "\r\n\r\n";
        stream_write(s, req, sizeof req - 1);
    }
}

static void c_read(struct stream *s, const uint8_t *data, size_t len)
{
    struct client *c = s->data;
    if (c->got_len + len < sizeof c->got) {
        memcpy(c->got + c->got_len, data, len);
        c->got_len += len;
    }
}

static void c_end(struct stream *s, int err)
{
    struct client *c = s->data;
    (void)err;
    c->ended = 1;
}

static void c_water(struct stream *s, int above)
{
    (void)s, (void)above;
}

static const struct stream_callbacks client_cb = {c_connect, c_read, c_end, c_water, NULL};

static void c_closed(struct stream *s)
{
    ((struct client *)s->data)->closed = 1;
}

/* Connects to port trusting ca; returns the connect status, and fills c->got on success. */
static int fetch(uv_loop_t *loop, int port, const char *ca, struct client *c)
{
    struct tls_config *cfg;
    CHECK_EQ(tls_config_client_new(&cfg, ca), 0);
    memset(c, 0, sizeof *c);
    c->connect_status = 1;
    c->s.data = c;
    struct stream_options o = {.tls = cfg, .tls_hostname = "localhost"};
    CHECK_EQ(stream_init(&c->s, loop, &client_cb, &o), 0);
    CHECK_EQ(stream_connect(&c->s, "127.0.0.1", (unsigned)port), 0);
    for (int i = 0; i < 2000 && !(c->connect_status < 0 || c->ended); i++)
        uv_run(loop, UV_RUN_ONCE);
    stream_close(&c->s, 0, c_closed);
    while (!c->closed)
        uv_run(loop, UV_RUN_ONCE);
    tls_config_free(cfg);
    return c->connect_status;
}

static bool served(const struct client *c)
{
    return c->got_len > 12 && memcmp(c->got, "HTTP/1.1 200", 12) == 0 &&
           memmem(c->got, c->got_len, "{\"status\":\"ok\"}", 15) != NULL;
}

static void on_server_closed(void *arg)
{
    *(int *)arg = 1;
}

TEST(tls_front_serves_and_reloads)
{
    log_max_level = LOG_ERROR;
    char a[512], b[512], p[4][600];
    snprintf(a, sizeof a, "%s/a", test_tmpdir());
    snprintf(b, sizeof b, "%s/b", test_tmpdir());
    CHECK_EQ(test_ca_make(a), 0);
    CHECK_EQ(test_ca_make(b), 0);
    uv_loop_t loop;
    CHECK_EQ(uv_loop_init(&loop), 0); /* libuv's process-wide fds are made by the first loop */
    CHECK_EQ(uv_loop_close(&loop), 0);
    int fds0 = test_fd_count();
    CHECK_EQ(uv_loop_init(&loop), 0);
    static struct http_router router;
    static struct http_endpoints ep = {.public_url = "https://localhost"};
    http_router_init(&router);
    CHECK_EQ(http_endpoints_register(&router, &ep), 0);
    struct http_server_settings s;
    http_server_settings_default(&s);
    s.router = &router;
    s.linger_ms = 100;
    struct http_server *srv;
    CHECK_EQ(http_server_create(&loop, &s, &srv), 0);

    struct tls_front *f;
    snprintf(p[0], sizeof p[0], "%s/server.crt", a);
    snprintf(p[1], sizeof p[1], "%s/server.key", a);
    snprintf(p[2], sizeof p[2], "%s/server.crt", b);
    snprintf(p[3], sizeof p[3], "%s/server.key", b);
    CHECK_EQ(tls_front_new(&f, &loop, srv, "/nonexistent.crt", p[1]), -ENOENT);
    CHECK_EQ(tls_front_new(&f, &loop, srv, p[0], p[3]), -EINVAL); /* key of another cert */
    CHECK_EQ(tls_front_new(&f, &loop, srv, p[0], p[1]), 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(tls_front_listen(f, (struct sockaddr *)&sin), 0);
    int port = tls_front_port(f);
    CHECK(port > 0);

    char ca_a[600], ca_b[600];
    snprintf(ca_a, sizeof ca_a, "%s/ca.crt", a);
    snprintf(ca_b, sizeof ca_b, "%s/ca.crt", b);
    struct client c;
    CHECK_EQ(fetch(&loop, port, ca_a, &c), 0);
    CHECK_MSG(served(&c), "got %.*s", (int)c.got_len, c.got);
    CHECK_EQ(fetch(&loop, port, ca_b, &c), -EKEYREJECTED); /* B's CA does not know A's cert */

    CHECK_EQ(tls_front_reload(f, p[2], p[1]), -EINVAL); /* mismatched: the old pair stays */
    CHECK_EQ(fetch(&loop, port, ca_a, &c), 0);
    CHECK(served(&c));
    CHECK_EQ(tls_front_reload(f, p[2], p[3]), 0);
    CHECK_EQ(fetch(&loop, port, ca_a, &c), -EKEYREJECTED);
    CHECK_EQ(fetch(&loop, port, ca_b, &c), 0);
    CHECK(served(&c));
    const struct tls_front_stats *st = tls_front_stats(f);
    CHECK_EQ(st->accepted, 5);
    CHECK_EQ(st->handshakes_failed, 2);

    int front_done = 0, server_done = 0;
    tls_front_close(f, true, on_server_closed, &front_done);
    http_server_close(srv, on_server_closed, &server_done);
    while (!front_done || !server_done)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ(uv_loop_close(&loop), 0);
    CHECK_EQ(test_fd_count(), fds0);
}
