/* Byte streams on a real loop over loopback: plain and TLS echo (one uv_write for many
 * stream_writes), verification failures, refused and timed-out connects, a name with several
 * addresses, backpressure (hard limit, water marks), read stop/start, close while resolving.
 * Every test checks that the loop closes cleanly and no fd is left open. */
#include "common/stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/tls.h"
#include "tests/lib/testnet.h"
#include "tests/unit/testing.h"

struct side {
    struct stream s;
    int inited;
    int connects, connect_status;
    int ends, end_err;
    int closed;
    int water_up, water_down;
    int echo;
    char why[256]; /* TLS failure description captured in on_connect */
    uint64_t writes_at_close;
    size_t close_after; /* close gracefully once this much has arrived (0: never) */
    size_t rx_len;
    uint8_t rx[1 << 17];
};

struct harness {
    uv_loop_t loop;
    int fds_before;
    int lfd;
    unsigned port;
    uv_poll_t poll;
    int polling;
    struct side client, server;
    struct stream_options server_opt;
    struct tls_config *ccfg, *scfg;
};

static void side_closed(struct stream *s)
{
    struct side *d = s->data;
    d->closed++;
}

static void side_on_connect(struct stream *s, int status)
{
    struct side *d = s->data;
    d->connects++;
    d->connect_status = status;
    if (status != 0) {
        stream_tls_describe(s, d->why, sizeof d->why);
        stream_close(s, 0, side_closed);
    }
}

static void side_on_read(struct stream *s, const uint8_t *data, size_t len)
{
    struct side *d = s->data;
    CHECK(d->rx_len + len <= sizeof d->rx);
    memcpy(d->rx + d->rx_len, data, len);
    d->rx_len += len;
    if (d->echo)
        CHECK_EQ(stream_write(s, data, len), 0);
    if (d->close_after != 0 && d->rx_len >= d->close_after) {
        d->writes_at_close = s->writes;
        stream_close(s, 1, side_closed);
    }
}

static void side_on_end(struct stream *s, int err)
{
    struct side *d = s->data;
    d->ends++;
    d->end_err = err;
    stream_close(s, 1, side_closed);
}

static void side_on_water(struct stream *s, int above)
{
    struct side *d = s->data;
    if (above)
        d->water_up++;
    else
        d->water_down++;
}

static const struct stream_callbacks side_cb = {
    .on_connect = side_on_connect,
    .on_read = side_on_read,
    .on_end = side_on_end,
    .on_water = side_on_water,
};

static void harness_on_accept(uv_poll_t *p, int status, int events)
{
    struct harness *h = p->data;
    (void)events;
    CHECK_EQ(status, 0);
    int fd = test_tcp_accept(h->lfd, 1000);
    CHECK(fd >= 0);
    uv_poll_stop(p);
    CHECK_EQ(stream_init(&h->server.s, &h->loop, &side_cb, &h->server_opt), 0);
    h->server.s.data = &h->server;
    h->server.inited = 1;
    CHECK_EQ(stream_adopt(&h->server.s, fd), 0);
}

static const char *pki(const char *name)
{
    static char dir[512], paths[4][700];
    static int next;
    if (dir[0] == '\0') {
        snprintf(dir, sizeof dir, "%s/pki", test_tmpdir());
        CHECK_MSG(test_ca_make(dir) == 0, "make-test-ca.sh failed");
    }
    char *p = paths[next++ % 4];
    snprintf(p, 700, "%s/%s", dir, name);
    return p;
}

static void harness_open(struct harness *h, int listen)
{
    memset(h, 0, sizeof *h);
    /* libuv keeps a process-wide signal pipe made by the first loop: make it before counting */
    uv_loop_t warm;
    CHECK_EQ(uv_loop_init(&warm), 0);
    CHECK_EQ(uv_loop_close(&warm), 0);
    h->fds_before = test_fd_count();
    CHECK_EQ(uv_loop_init(&h->loop), 0);
    h->client.s.data = &h->client;
    h->lfd = -1;
    if (listen) {
        h->lfd = test_tcp_listen(&h->port);
        CHECK(h->lfd >= 0);
        CHECK_EQ(uv_poll_init(&h->loop, &h->poll, h->lfd), 0);
        h->poll.data = h;
        h->polling = 1;
        CHECK_EQ(uv_poll_start(&h->poll, UV_READABLE, harness_on_accept), 0);
    }
}

static void harness_tls(struct harness *h, const char *ca)
{
    CHECK_EQ(tls_config_client_new(&h->ccfg, pki(ca)), 0);
    CHECK_EQ(tls_config_server_new(&h->scfg, pki("server.crt"), pki("server.key")), 0);
    h->server_opt.tls = h->scfg;
}

static void harness_client(struct harness *h, const struct stream_options *opt)
{
    CHECK_EQ(stream_init(&h->client.s, &h->loop, &side_cb, opt), 0);
    h->client.s.data = &h->client;
    h->client.inited = 1;
}

/* Everything must have closed by itself; then the loop and fds are checked. */
static void harness_close(struct harness *h)
{
    CHECK_EQ(uv_run(&h->loop, UV_RUN_DEFAULT), 0);
    if (h->client.inited)
        CHECK_EQ(h->client.closed, 1);
    if (h->server.inited)
        CHECK_EQ(h->server.closed, 1);
    if (h->polling)
        uv_close((uv_handle_t *)&h->poll, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    if (h->lfd >= 0)
        close(h->lfd);
    CHECK_EQ(uv_loop_close(&h->loop), 0);
    tls_config_free(h->ccfg);
    tls_config_free(h->scfg);
    int fds = test_fd_count();
    if (fds != h->fds_before)
        system("ls -l /proc/$PPID/fd >&2");
    CHECK_EQ(fds, h->fds_before);
}

/* Client side of the echo tests: 100 small writes in one callback. */
static uint64_t writes_at_connect;
static void echo_client_on_connect(struct stream *s, int status)
{
    struct side *d = s->data;
    side_on_connect(s, status);
    if (status != 0)
        return;
    writes_at_connect = s->writes;
    char msg[100];
    for (int i = 0; i < 100; i++) {
        memset(msg, 'a' + i % 26, sizeof msg);
        CHECK_EQ(stream_write(s, msg, sizeof msg), 0);
    }
    CHECK_EQ(stream_pending(s), 10000);
    CHECK_EQ(s->writes, writes_at_connect); /* nothing leaves before the flush */
    d->close_after = 10000;
}

static const struct stream_callbacks echo_client_cb = {
    .on_connect = echo_client_on_connect,
    .on_read = side_on_read,
    .on_end = side_on_end,
    .on_water = side_on_water,
};

static void run_echo(struct harness *h, const struct stream_options *copt, const char *host)
{
    CHECK_EQ(stream_init(&h->client.s, &h->loop, &echo_client_cb, copt), 0);
    h->client.s.data = &h->client;
    h->client.inited = 1;
    h->server.echo = 1;
    CHECK_EQ(stream_connect(&h->client.s, host, h->port), 0);
    harness_close(h);
    CHECK_EQ(h->client.connects, 1);
    CHECK_EQ(h->client.connect_status, 0);
    CHECK_EQ(h->client.rx_len, 10000);
    for (int i = 0; i < 100; i++)
        CHECK_EQ(h->client.rx[i * 100 + 99], 'a' + i % 26);
    /* the hundred writes left in a single uv_write */
    CHECK_EQ(h->client.writes_at_close - writes_at_connect, 1);
    /* the client closed first: the server saw a clean end of stream */
    CHECK_EQ(h->server.ends, 1);
    CHECK_EQ(h->server.end_err, 0);
    CHECK_EQ(h->server.rx_len, 10000);
}

TEST(stream_plain_echo_batches_writes)
{
    struct harness h;
    harness_open(&h, 1);
    run_echo(&h, NULL, "127.0.0.1");
    CHECK_EQ(h.server.connects, 0); /* plain adopt has no connect step */
}

TEST(stream_tls_echo_and_close_notify)
{
    struct harness h;
    harness_open(&h, 1);
    harness_tls(&h, "ca.crt");
    struct stream_options copt = {.tls = h.ccfg, .tls_hostname = "localhost"};
    run_echo(&h, &copt, "127.0.0.1");
    CHECK_EQ(h.server.connects, 1);
    CHECK_EQ(h.server.connect_status, 0);
}

TEST(stream_localhost_tries_each_address)
{
    /* "localhost" may resolve to ::1 first; the listener is on 127.0.0.1 only */
    struct harness h;
    harness_open(&h, 1);
    run_echo(&h, NULL, "localhost");
}

static void run_verify_failure(const char *ca, const char *hostname)
{
    struct harness h;
    harness_open(&h, 1);
    harness_tls(&h, ca);
    struct stream_options copt = {.tls = h.ccfg, .tls_hostname = hostname};
    harness_client(&h, &copt);
    CHECK_EQ(stream_connect(&h.client.s, "127.0.0.1", h.port), 0);
    harness_close(&h);
    CHECK_EQ(h.client.connect_status, -EKEYREJECTED);
    CHECK_MSG(strstr(h.client.why, "verif") != NULL, "TLS failure description: %s", h.client.why);
    /* the server saw the handshake fail too (alert or EOF) */
    CHECK(h.server.connects == 1 && h.server.connect_status < 0);
}

TEST(stream_tls_wrong_hostname_fails)
{
    run_verify_failure("ca.crt", "wrong.example");
}

TEST(stream_tls_unknown_ca_fails)
{
    run_verify_failure("other-ca.crt", "localhost");
}

TEST(stream_connect_refused)
{
    struct harness h;
    harness_open(&h, 0);
    unsigned port;
    int fd = test_tcp_listen(&port);
    CHECK(fd >= 0);
    close(fd); /* nothing listens there now */
    harness_client(&h, NULL);
    CHECK_EQ(stream_connect(&h.client.s, "127.0.0.1", port), 0);
    harness_close(&h);
    CHECK_EQ(h.client.connects, 1);
    CHECK_EQ(h.client.connect_status, -ECONNREFUSED);
}

TEST(stream_tls_handshake_timeout)
{
    /* the kernel completes the TCP handshake, but nobody ever answers the ClientHello */
    struct harness h;
    harness_open(&h, 0);
    unsigned port;
    int lfd = test_tcp_listen(&port);
    CHECK(lfd >= 0);
    CHECK_EQ(tls_config_client_new(&h.ccfg, pki("ca.crt")), 0);
    struct stream_options copt = {.tls = h.ccfg, .connect_timeout_ms = 200};
    harness_client(&h, &copt);
    CHECK_EQ(stream_connect(&h.client.s, "127.0.0.1", port), 0);
    while (h.client.closed == 0)
        uv_run(&h.loop, UV_RUN_ONCE);
    close(lfd);
    harness_close(&h);
    CHECK_EQ(h.client.connects, 1);
    CHECK_EQ(h.client.connect_status, -ETIMEDOUT);
}

TEST(stream_bad_arguments)
{
    struct harness h;
    harness_open(&h, 0);
    struct stream s;
    struct stream_options bad = {.max_pending = 100, .high_water = 200};
    CHECK_EQ(stream_init(&s, &h.loop, &side_cb, &bad), -EINVAL);
    harness_client(&h, NULL);
    CHECK_EQ(stream_connect(&h.client.s, "127.0.0.1", 0), -EINVAL);
    CHECK_EQ(stream_connect(&h.client.s, "", 80), -EINVAL);
    stream_close(&h.client.s, 1, side_closed);
    stream_close(&h.client.s, 1, side_closed); /* ignored */
    CHECK_EQ(stream_write(&h.client.s, "x", 1), -EPIPE);
    harness_close(&h);
}

TEST(stream_close_while_resolving)
{
    struct harness h;
    harness_open(&h, 0);
    harness_client(&h, NULL);
    CHECK_EQ(stream_connect(&h.client.s, "localhost", 9), 0);
    stream_close(&h.client.s, 1, side_closed);
    harness_close(&h);
    CHECK_EQ(h.client.connects, 0);
}

/* Backpressure: the hard limit refuses synchronously; water marks go up, then down after the
 * queue drains. */
static void bp_on_connect(struct stream *s, int status)
{
    struct side *d = s->data;
    side_on_connect(s, status);
    static uint8_t block[40000];
    CHECK_EQ(stream_write(s, block, sizeof block), 0);
    CHECK_EQ(d->water_up, 1);
    CHECK_EQ(stream_write(s, block, sizeof block), -ENOBUFS);
    CHECK_EQ(stream_pending(s), sizeof block);
    CHECK_EQ(stream_write(s, block, 20000), 0); /* still fits */
    CHECK_EQ(stream_write(s, block, 6000), -ENOBUFS);
    CHECK_EQ(d->water_up, 1);
    CHECK_EQ(d->water_down, 0);
}

static void bp_on_water(struct stream *s, int above)
{
    side_on_water(s, above);
    if (!above)
        stream_close(s, 1, side_closed);
}

static const struct stream_callbacks bp_cb = {
    .on_connect = bp_on_connect,
    .on_read = side_on_read,
    .on_end = side_on_end,
    .on_water = bp_on_water,
};

TEST(stream_backpressure_limits_and_water_marks)
{
    struct harness h;
    harness_open(&h, 1);
    struct stream_options copt = {.max_pending = 65536, .high_water = 16384, .low_water = 4096};
    CHECK_EQ(stream_init(&h.client.s, &h.loop, &bp_cb, &copt), 0);
    h.client.s.data = &h.client;
    h.client.inited = 1;
    CHECK_EQ(stream_connect(&h.client.s, "127.0.0.1", h.port), 0);
    harness_close(&h);
    CHECK_EQ(h.client.water_up, 1);
    CHECK_EQ(h.client.water_down, 1);
    CHECK_EQ(h.server.rx_len, 60000); /* graceful close flushed everything */
    CHECK_EQ(h.server.ends, 1);
}

/* Read stop/start: nothing is delivered while stopped, everything after. */
static uv_timer_t rs_timer;
static struct harness *rs_h;
static void rs_on_connect(struct stream *s, int status)
{
    side_on_connect(s, status);
    CHECK_EQ(stream_write(s, "0123456789", 10), 0);
}

static void rs_on_timer(uv_timer_t *t)
{
    CHECK_EQ(rs_h->server.rx_len, 0);
    CHECK_EQ(stream_pending(&rs_h->client.s), 0); /* it did leave the client */
    rs_h->server.close_after = 10;
    stream_read_start(&rs_h->server.s);
    uv_close((uv_handle_t *)t, NULL);
}

static const struct stream_callbacks rs_cb = {
    .on_connect = rs_on_connect,
    .on_read = side_on_read,
    .on_end = side_on_end,
};

static void rs_on_accept(uv_poll_t *p, int status, int events)
{
    harness_on_accept(p, status, events);
    stream_read_stop(&rs_h->server.s);
    uv_timer_start(&rs_timer, rs_on_timer, 100, 0);
}

TEST(stream_read_stop_and_start)
{
    struct harness h;
    rs_h = &h;
    harness_open(&h, 1);
    uv_poll_stop(&h.poll);
    CHECK_EQ(uv_poll_start(&h.poll, UV_READABLE, rs_on_accept), 0);
    uv_timer_init(&h.loop, &rs_timer);
    CHECK_EQ(stream_init(&h.client.s, &h.loop, &rs_cb, NULL), 0);
    h.client.s.data = &h.client;
    h.client.inited = 1;
    CHECK_EQ(stream_connect(&h.client.s, "127.0.0.1", h.port), 0);
    harness_close(&h);
    CHECK_EQ(h.server.rx_len, 10);
    CHECK(memcmp(h.server.rx, "0123456789", 10) == 0);
    CHECK_EQ(h.client.ends, 1); /* the server closed: the client saw EOF */
    CHECK_EQ(h.client.end_err, 0);
}
