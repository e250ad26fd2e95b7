/* WebSocket adapter. Frame-level behaviour over an in-memory transport (fragments, ping,
 * limits and the close codes they produce, close handshake and its deadline, send queue bound,
 * client masking); the upgrade answer (RFC 6455 example, 400/426); argument checks; and
 * interoperability with python3-websockets on loopback both ways, plain and TLS, with the
 * batching of many sends into one write, verification failures and an HTTP refusal. */
#include "common/ws.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/http_parser.h"
#include "common/tls.h"
#include "tests/lib/testnet.h"
#include "tests/unit/testing.h"

/* ---- in-memory transport ------------------------------------------------------------------ */

struct mem {
    struct ws ws;
    uv_loop_t loop;
    uint8_t out[1 << 19];
    size_t out_len;
    size_t out_flushed; /* out up to here went to the "kernel" at a flush */
    size_t refuse_over; /* write returns -ENOBUFS when out would pass this (0: never) */
    int flush_req, close_req, graceful, read_stopped;
    int opened, closes, close_code;
    char close_reason[256];
    int texts;
    char text[1 << 17];
    size_t text_len;
    int binaries;
    int close_on_text; /* ws_close(1000) from inside on_text */
};

static int mem_write(struct ws *ws, const void *d, size_t n)
{
    struct mem *m = ws->data;
    if (m->refuse_over != 0 && m->out_len + n > m->refuse_over)
        return -ENOBUFS;
    CHECK(m->out_len + n <= sizeof m->out);
    memcpy(m->out + m->out_len, d, n);
    m->out_len += n;
    m->flush_req = 1; /* like the stream: written bytes wait for its next flush */
    return 0;
}

static size_t mem_pending(const struct ws *ws)
{
    const struct mem *m = ws->data;
    return m->out_len - m->out_flushed;
}

static void mem_flush_request(struct ws *ws)
{
    ((struct mem *)ws->data)->flush_req = 1;
}

static void mem_read_stop(struct ws *ws)
{
    ((struct mem *)ws->data)->read_stopped = 1;
}

static void mem_read_start(struct ws *ws)
{
    ((struct mem *)ws->data)->read_stopped = 0;
}

static void mem_close(struct ws *ws, int graceful)
{
    struct mem *m = ws->data;
    m->close_req++;
    m->graceful = graceful;
}

static const struct ws_io mem_io = {mem_write,     mem_pending,    mem_flush_request,
                                    mem_read_stop, mem_read_start, mem_close};

static void mem_on_open(struct ws *ws)
{
    ((struct mem *)ws->data)->opened++;
}

static void mem_on_text(struct ws *ws, const char *msg, size_t len)
{
    struct mem *m = ws->data;
    m->texts++;
    CHECK(len <= sizeof m->text);
    memcpy(m->text, msg, len);
    m->text_len = len;
    if (m->close_on_text)
        CHECK_EQ(ws_close(ws, 1000, "enough"), 0);
}

static void mem_on_binary(struct ws *ws, const uint8_t *msg, size_t len)
{
    struct mem *m = ws->data;
    m->binaries++;
    memcpy(m->text, msg, len);
    m->text_len = len;
}

static void mem_on_close(struct ws *ws, int code, const char *reason, size_t len)
{
    struct mem *m = ws->data;
    m->closes++;
    m->close_code = code;
    snprintf(m->close_reason, sizeof m->close_reason, "%.*s", (int)len, reason);
}

static const struct ws_callbacks mem_cb = {mem_on_open, mem_on_text, mem_on_binary, mem_on_close,
                                           NULL};
static const struct ws_callbacks mem_cb_text_only = {mem_on_open, mem_on_text, NULL, mem_on_close,
                                                     NULL};

static struct mem *mem_start(int server, const struct ws_callbacks *cb,
                             const struct ws_options *opt)
{
    struct mem *m = calloc(1, sizeof *m);
    CHECK(m != NULL);
    CHECK_EQ(uv_loop_init(&m->loop), 0);
    m->ws.data = m;
    CHECK_EQ(ws_io_start(&m->ws, &m->loop, server, &mem_io, cb, opt), 0);
    uv_run(&m->loop, UV_RUN_NOWAIT); /* the deferred on_open */
    CHECK_EQ(m->opened, 1);
    return m;
}

/* What the stream would do: flush when asked (the ws may still append), then the bytes are
 * gone; a requested close is reported as done by mem_finish. */
static void mem_pump(struct mem *m)
{
    for (int i = 0; i < 10 && m->flush_req && !m->close_req; i++) {
        m->flush_req = 0;
        ws_io_flush(&m->ws);
        m->out_flushed = m->out_len;
    }
}

static void mem_feed(struct mem *m, const uint8_t *d, size_t n)
{
    ws_io_input(&m->ws, d, n);
    mem_pump(m);
}

/* Finishes: the transport closes, the loop runs the close callbacks, everything is freed.
 * What on_close said is kept in last_code/last_reason. */
static int last_code;
static char last_reason[256];
static void mem_finish(struct mem *m)
{
    CHECK_EQ(m->close_req, 1);
    ws_io_closed(&m->ws);
    CHECK_EQ(uv_run(&m->loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ(m->closes, 1);
    last_code = m->close_code;
    memcpy(last_reason, m->close_reason, sizeof last_reason);
    CHECK_EQ(uv_loop_close(&m->loop), 0);
    free(m);
}

/* A frame as a client sends it (masked) or a server (not). */
static size_t frame(uint8_t *f, int fin, int opcode, const void *payload, size_t len, int masked)
{
    size_t n = 0;
    const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
    f[n++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    uint8_t mbit = masked ? 0x80 : 0;
    if (len < 126) {
        f[n++] = (uint8_t)(mbit | len);
    } else if (len < 65536) {
        f[n++] = mbit | 126;
        f[n++] = (uint8_t)(len >> 8);
        f[n++] = (uint8_t)len;
    } else {
        f[n++] = mbit | 127;
        for (int i = 7; i >= 0; i--)
            f[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    if (masked) {
        memcpy(f + n, mask, 4);
        n += 4;
    }
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++)
        f[n + i] = masked ? p[i] ^ mask[i % 4] : p[i];
    return n + len;
}

/* The close frame a server sends: 88, length, code, reason. */
#define check_close_frame(m, at, code, reason) check_close_frame_at(__LINE__, m, at, code, reason)
static void check_close_frame_at(int line, const struct mem *m, size_t at, int code,
                                 const char *reason)
{
    size_t rl = strlen(reason);
    CHECK_MSG(m->out_len >= at + 4 + rl, "line %d: no close frame (out %zu bytes)", line,
              m->out_len);
    CHECK_EQ(m->out[at], 0x88);
    CHECK_EQ(m->out[at + 1], 2 + rl);
    CHECK_EQ((m->out[at + 2] << 8) | m->out[at + 3], code);
    CHECK(memcmp(m->out + at + 4, reason, rl) == 0);
}

TEST(ws_mem_text_fragments_and_ping)
{
    struct mem *m = mem_start(1, &mem_cb, NULL);
    uint8_t f[512];
    size_t n = frame(f, 1, 1, "hello", 5, 1);
    mem_feed(m, f, n);
    CHECK_EQ(m->texts, 1);
    CHECK(m->text_len == 5 && memcmp(m->text, "hello", 5) == 0);

    /* fragments with a ping between them, fed one byte at a time */
    n = frame(f, 0, 1, "fra", 3, 1);
    n += frame(f + n, 1, 9, "p", 1, 1);
    n += frame(f + n, 0, 0, "gm", 2, 1);
    n += frame(f + n, 1, 0, "ent", 3, 1);
    for (size_t i = 0; i < n; i++)
        mem_feed(m, f + i, 1);
    CHECK_EQ(m->texts, 2);
    CHECK(m->text_len == 8 && memcmp(m->text, "fragment", 8) == 0);
    /* the pong went out unmasked with the ping's payload */
    CHECK_EQ(m->out_len, 3);
    CHECK(m->out[0] == 0x8a && m->out[1] == 1 && m->out[2] == 'p');

    /* empty text and a binary message */
    n = frame(f, 1, 1, "", 0, 1);
    n += frame(f + n, 1, 2, "\x00\xff", 2, 1);
    mem_feed(m, f, n);
    CHECK_EQ(m->texts, 3);
    CHECK_EQ(m->text_len, 2); /* the binary one, copied last */
    CHECK_EQ(m->binaries, 1);

    /* the peer closes: we echo its code and close the transport gracefully */
    n = frame(f, 1, 8,
              "\x0f\xa0"
              "bye",
              5, 1);
    mem_feed(m, f, n);
    check_close_frame(m, 3, 4000, "bye");
    CHECK_EQ(m->graceful, 1);
    CHECK_EQ(ws_send_text(&m->ws, "late", 4), -EPIPE);
    mem_finish(m);
}

TEST(ws_mem_message_over_limit_closes_1009)
{
    struct ws_options opt = {.max_message = 100};
    static uint8_t f[1024], payload[200];
    memset(payload, 'a', sizeof payload);
    /* one frame too big, after one exactly at the limit */
    struct mem *m = mem_start(1, &mem_cb, &opt);
    size_t n = frame(f, 1, 1, payload, 100, 1);
    n += frame(f + n, 1, 1, payload, 101, 1);
    mem_feed(m, f, n);
    CHECK_EQ(m->texts, 1);
    check_close_frame(m, 0, 1009, "");
    CHECK_EQ(m->graceful, 1);
    mem_finish(m);
    CHECK_EQ(last_code, 1009);
    CHECK(strcmp(last_reason, "message too big") == 0);

    /* fragments that only together pass the limit */
    m = mem_start(1, &mem_cb, &opt);
    n = frame(f, 0, 1, payload, 60, 1);
    n += frame(f + n, 1, 0, payload, 60, 1);
    mem_feed(m, f, n);
    CHECK_EQ(m->texts, 0);
    check_close_frame(m, 0, 1009, "");
    mem_finish(m);
    CHECK_EQ(last_code, 1009);

    /* a header announcing 2^62 bytes is refused at its header, before anything is allocated
     * for it */
    m = mem_start(1, &mem_cb, &opt);
    const uint8_t huge[] = {0x81, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 'a'};
    mem_feed(m, huge, sizeof huge);
    check_close_frame(m, 0, 1009, "");
    mem_finish(m);
}

TEST(ws_mem_protocol_errors_close_1002)
{
    uint8_t f[512];
    /* a client frame without a mask: 1002, no reason on the wire */
    struct mem *m = mem_start(1, &mem_cb, NULL);
    size_t n = frame(f, 1, 1, "x", 1, 0);
    mem_feed(m, f, n);
    CHECK_EQ(m->texts, 0);
    check_close_frame(m, 0, 1002, "");
    mem_finish(m);
    CHECK_EQ(last_code, 1002);

    /* a control frame longer than 125 bytes: a frame-level error, answered by our own 1002 */
    m = mem_start(1, &mem_cb, NULL);
    const uint8_t bad[] = {0x89, 0xfe, 0x00, 0xc8, 1, 2, 3, 4};
    mem_feed(m, bad, sizeof bad);
    check_close_frame(m, 0, 1002, "protocol error");
    CHECK_EQ(m->graceful, 1);
    mem_finish(m);
    CHECK_EQ(last_code, 1002);
    CHECK(strcmp(last_reason, "protocol error") == 0);

    /* a continuation with nothing to continue, and an unknown opcode */
    m = mem_start(1, &mem_cb, NULL);
    n = frame(f, 1, 0, "x", 1, 1);
    mem_feed(m, f, n);
    check_close_frame(m, 0, 1002, "");
    mem_finish(m);
    m = mem_start(1, &mem_cb, NULL);
    n = frame(f, 1, 3, "x", 1, 1);
    mem_feed(m, f, n);
    check_close_frame(m, 0, 1002, "");
    mem_finish(m);
}

TEST(ws_mem_invalid_utf8_closes_1007)
{
    struct mem *m = mem_start(1, &mem_cb, NULL);
    uint8_t f[64];
    size_t n = frame(f, 1, 1, "\xc3\x28", 2, 1);
    mem_feed(m, f, n);
    CHECK_EQ(m->texts, 0);
    check_close_frame(m, 0, 1007, "");
    mem_finish(m);
    CHECK_EQ(last_code, 1007);
}

/* What a peer's close frame may carry: nothing (we echo nothing, and report 1005), a code and a
 * reason (echoed), or something invalid (1002 for a 1-byte payload or a bad code, 1007 for a
 * reason that is not UTF-8). */
TEST(ws_mem_peer_close_payloads)
{
    uint8_t f[64];
    struct mem *m = mem_start(1, &mem_cb, NULL);
    size_t n = frame(f, 1, 8, "", 0, 1);
    mem_feed(m, f, n);
    CHECK_EQ(m->out_len, 2);
    CHECK(m->out[0] == 0x88 && m->out[1] == 0);
    CHECK_EQ(m->graceful, 1);
    mem_finish(m);
    CHECK_EQ(last_code, 1005);

    const struct {
        const char *payload;
        size_t len;
        int code;
    } bad[] = {{"\x03", 1, 1002}, {"\x03\xed", 2, 1002}, {"\x03\xe8\xc3\x28", 4, 1007}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m = mem_start(1, &mem_cb, NULL);
        n = frame(f, 1, 8, bad[i].payload, bad[i].len, 1);
        mem_feed(m, f, n);
        check_close_frame(m, 0, bad[i].code, "");
        mem_finish(m);
        CHECK_EQ(last_code, bad[i].code);
    }
}

TEST(ws_mem_binary_refused_without_handler_1003)
{
    struct mem *m = mem_start(1, &mem_cb_text_only, NULL);
    uint8_t f[64];
    size_t n = frame(f, 1, 2, "\x01\x02", 2, 1);
    n += frame(f + n, 1, 1, "after", 5, 1); /* not delivered: we are closing */
    mem_feed(m, f, n);
    CHECK_EQ(m->texts, 0);
    check_close_frame(m, 0, 1003, "binary messages are not supported");
    CHECK_EQ(m->close_req, 0); /* waiting for the peer's answer */
    size_t at = m->out_len;
    n = frame(f, 1, 8, "\x03\xeb", 2, 1);
    mem_feed(m, f, n);
    CHECK_EQ(m->out_len, at); /* our close was already sent: no second one */
    CHECK_EQ(m->graceful, 1);
    mem_finish(m);
    CHECK_EQ(last_code, 1003); /* the peer echoed ours */
}

TEST(ws_mem_local_close_then_deadline)
{
    struct ws_options opt = {.close_timeout_ms = 30};
    struct mem *m = mem_start(1, &mem_cb, &opt);
    m->close_on_text = 1;
    uint8_t f[64];
    size_t n = frame(f, 1, 1, "one", 3, 1);
    n += frame(f + n, 1, 1, "two", 3, 1);
    mem_feed(m, f, n);
    CHECK_EQ(m->texts, 1); /* nothing delivered after ws_close */
    check_close_frame(m, 0, 1000, "enough");
    CHECK_EQ(ws_close(&m->ws, 1000, NULL), -EALREADY);
    CHECK_EQ(ws_send_text(&m->ws, "x", 1), -EPIPE);
    /* the peer never answers: the deadline closes the transport at once */
    while (m->close_req == 0)
        uv_run(&m->loop, UV_RUN_ONCE);
    CHECK_EQ(m->graceful, 0);
    mem_finish(m);
    CHECK_EQ(last_code, 1000);
    CHECK(strcmp(last_reason, "enough") == 0);
}

/* A close asked for behind sent messages goes after them, or they are lost (a call's last audio
 * appends, found by tests/integration/test-bridge), also when the transport takes them only
 * bit by bit; nothing is sent after it. */
TEST(ws_mem_close_after_sends_keeps_their_order)
{
    struct mem *m = mem_start(1, &mem_cb, NULL);
    CHECK_EQ(ws_send_text(&m->ws, "one", 3), 0);
    CHECK_EQ(ws_send_text(&m->ws, "two", 3), 0);
    CHECK_EQ(ws_close(&m->ws, 1000, "bye"), 0);
    CHECK_EQ(ws_send_text(&m->ws, "three", 5), -EPIPE); /* nothing after the close */
    mem_pump(m);
    CHECK_EQ(m->out_len, 5 + 5 + 4 + 3);
    CHECK(memcmp(m->out, "\x81\x03one\x81\x03two", 10) == 0);
    check_close_frame(m, 10, 1000, "bye");

    /* the same when the transport takes the messages only bit by bit */
    struct mem *m2 = mem_start(1, &mem_cb, NULL);
    m2->refuse_over = 6;
    CHECK_EQ(ws_send_text(&m2->ws, "one", 3), 0);
    CHECK_EQ(ws_send_text(&m2->ws, "two", 3), 0);
    CHECK_EQ(ws_close(&m2->ws, 4000, "later"), 0);
    mem_pump(m2);
    CHECK_EQ(m2->out_len, 5); /* "one" fitted, "two" waits, and the close behind it */
    m2->refuse_over = 0;
    m2->flush_req = 1;
    mem_pump(m2);
    CHECK(memcmp(m2->out, "\x81\x03one\x81\x03two", 10) == 0);
    check_close_frame(m2, 10, 4000, "later");
    ws_abort(&m->ws);
    ws_abort(&m2->ws);
    mem_finish(m);
    mem_finish(m2);
}

TEST(ws_mem_close_arguments)
{
    struct mem *m = mem_start(1, &mem_cb, NULL);
    char long_reason[200];
    memset(long_reason, 'r', sizeof long_reason - 1);
    long_reason[sizeof long_reason - 1] = '\0';
    CHECK_EQ(ws_close(&m->ws, 1005, NULL), -EINVAL);
    CHECK_EQ(ws_close(&m->ws, 999, NULL), -EINVAL);
    CHECK_EQ(ws_close(&m->ws, 5000, NULL), -EINVAL);
    CHECK_EQ(ws_close(&m->ws, 1000, long_reason), -EINVAL);
    CHECK_EQ(ws_close(&m->ws, 4999, "custom"), 0);
    mem_pump(m);
    check_close_frame(m, 0, 4999, "custom");
    ws_abort(&m->ws);
    CHECK_EQ(m->graceful, 0);
    mem_finish(m);
    CHECK_EQ(last_code, 4999);
}

TEST(ws_mem_send_queue_is_bounded)
{
    struct ws_options opt = {.max_send_queue = 1000};
    struct mem *m = mem_start(1, &mem_cb, &opt);
    static char msg[70000];
    memset(msg, 'q', sizeof msg);
    CHECK_EQ(ws_send_text(&m->ws, msg, 600), 0);
    CHECK_EQ(ws_send_queued(&m->ws), 4 + 600); /* the frame as it goes out, header too */
    CHECK_EQ(ws_send_text(&m->ws, msg, 600), -ENOBUFS);
    CHECK_EQ(ws_send_text(&m->ws, msg, 397), -ENOBUFS);
    CHECK_EQ(ws_send_text(&m->ws, msg, 396), 0); /* exactly up to the bound */
    CHECK_EQ(ws_send_queued(&m->ws), 1000 + 4);
    mem_pump(m);
    CHECK_EQ(ws_send_queued(&m->ws), 0);
    CHECK_EQ(m->out_len, 4 + 600 + 4 + 396); /* 16-bit lengths: 4-byte headers */
    CHECK(m->out[0] == 0x81 && m->out[1] == 126);

    /* a transport that refuses part-way: the rest waits and goes out in order */
    opt.max_send_queue = 1 << 20;
    struct mem *m2 = mem_start(1, &mem_cb, &opt);
    m2->refuse_over = 1000;
    CHECK_EQ(ws_send_text(&m2->ws, msg, sizeof msg), 0);
    mem_pump(m2);
    CHECK_EQ(m2->out_len, 10); /* only the 10-byte header fitted */
    m2->refuse_over = 0;
    mem_pump(m2);
    m2->flush_req = 1;
    mem_pump(m2);
    CHECK_EQ(m2->out_len, 10 + sizeof msg);
    CHECK(m2->out[0] == 0x81 && m2->out[1] == 127);
    ws_abort(&m->ws);
    ws_abort(&m2->ws);
    mem_finish(m);
    mem_finish(m2);
}

TEST(ws_mem_client_masks_every_frame)
{
    struct mem *m = mem_start(0, &mem_cb, NULL);
    CHECK_EQ(ws_send_text(&m->ws, "abc", 3), 0);
    CHECK_EQ(ws_send_text(&m->ws, "abc", 3), 0);
    mem_pump(m);
    CHECK_EQ(m->out_len, 2 * (2 + 4 + 3));
    for (int i = 0; i < 2; i++) {
        const uint8_t *fr = m->out + i * 9;
        CHECK_EQ(fr[0], 0x81);
        CHECK_EQ(fr[1], 0x80 | 3);
        for (int j = 0; j < 3; j++)
            CHECK_EQ(fr[6 + j] ^ fr[2 + j % 4], "abc"[j]);
    }
    CHECK(memcmp(m->out + 2, m->out + 11, 4) != 0); /* a fresh mask per frame */
    /* a server's frame must not be masked: protocol error, our close is masked */
    uint8_t f[64];
    size_t n = frame(f, 1, 1, "x", 1, 1);
    size_t at = m->out_len;
    mem_feed(m, f, n);
    CHECK_EQ(m->texts, 0);
    CHECK_EQ(m->out[at], 0x88);
    CHECK_EQ(m->out[at + 1], 0x80 | 2);
    CHECK_EQ(((m->out[at + 6] ^ m->out[at + 2]) << 8 | (m->out[at + 7] ^ m->out[at + 3])), 1002);
    mem_finish(m);
}

/* ---- the upgrade answer ------------------------------------------------------------------- */

TEST(ws_handshake_response_rfc_example)
{
    char out[600], accept[29];
    size_t len;
    ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, accept);
    CHECK(strcmp(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
    struct ws_upgrade up = {.upgrade = "WebSocket",
                            .connection = "keep-alive, Upgrade",
                            .key = " dGhlIHNhbXBsZSBub25jZQ== ",
                            .version = "13"};
    CHECK_EQ(ws_handshake_response(&up, out, sizeof out, &len), 0);
    CHECK_EQ(len, strlen(out));
    CHECK(strncmp(out, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0);
    CHECK(strstr(out, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != NULL);
    CHECK(strstr(out, "\r\nUpgrade: websocket\r\n") != NULL);
    CHECK(strcmp(out + len - 4, "\r\n\r\n") == 0);
    CHECK_EQ(ws_handshake_response(&up, out, 100, &len), -ENOSPC);
}

TEST(ws_handshake_response_refusals)
{
    char out[600];
    size_t len;
    const struct {
        struct ws_upgrade up;
        int rc;
        const char *status;
    } cases[] = {
        {{"websocket", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ==", "8"}, -EPROTONOSUPPORT, "426"},
        {{"websocket", "Upgrade", NULL, "13"}, -EINVAL, "400"},
        {{"websocket", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ=", "13"}, -EINVAL, "400"},
        {{"websocket", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ!!", "13"}, -EINVAL, "400"},
        {{"websocket", "Upgrade", "", "13"}, -EINVAL, "400"},
        {{"websocket", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ==", NULL}, -EINVAL, "400"},
        {{"websocket", "keep-alive", "dGhlIHNhbXBsZSBub25jZQ==", "13"}, -EINVAL, "400"},
        {{"h2c", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ==", "13"}, -EINVAL, "400"},
        {{NULL, NULL, NULL, NULL}, -EINVAL, "400"},
        {{"websocketx", "upgrades", "dGhlIHNhbXBsZSBub25jZQ==", "13"}, -EINVAL, "400"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = ws_handshake_response(&cases[i].up, out, sizeof out, &len);
        CHECK_MSG(rc == cases[i].rc, "case %zu: rc %d", i, rc);
        CHECK_MSG(strncmp(out + 9, cases[i].status, 3) == 0, "case %zu: %s", i, out);
        CHECK(len == strlen(out));
        const char *body = strstr(out, "\r\n\r\n");
        CHECK(body != NULL && strncmp(body + 4, "{\"error\":\"", 10) == 0);
        char cl[64];
        snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", strlen(body + 4));
        CHECK(strstr(out, cl) != NULL);
        if (rc == -EPROTONOSUPPORT)
            CHECK(strstr(out, "\r\nSec-WebSocket-Version: 13\r\n") != NULL);
    }
}

TEST(ws_upgrade_from_parsed_request)
{
    static struct http_parser p;
    const char *req = "GET /media HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n"
                      "Connection: Upgrade\r\nUpgrade: websocket\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n";
    size_t used;
    http_parser_init(&p, HTTP_MSG_REQUEST, NULL, false);
    CHECK_EQ(http_parser_execute(&p, req, strlen(req), &used), HTTP_PARSE_DONE);
    struct ws_upgrade up;
    ws_upgrade_from_http(&up, &p.msg);
    CHECK(strcmp(up.connection, "Upgrade") == 0);
    char out[600];
    size_t len;
    CHECK_EQ(ws_handshake_response(&up, out, sizeof out, &len), 0);
    /* two keys make the request invalid */
    const char *dup = "GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n";
    http_parser_init(&p, HTTP_MSG_REQUEST, NULL, false);
    CHECK_EQ(http_parser_execute(&p, dup, strlen(dup), &used), HTTP_PARSE_DONE);
    ws_upgrade_from_http(&up, &p.msg);
    CHECK_EQ(ws_handshake_response(&up, out, sizeof out, &len), -EINVAL);
}

static void never_text(struct ws *ws, const char *m, size_t n)
{
    (void)ws, (void)m, (void)n;
    CHECK(0);
}

static void never_close(struct ws *ws, int code, const char *r, size_t n)
{
    (void)ws, (void)code, (void)r, (void)n;
    CHECK(0);
}

TEST(ws_client_start_rejects_bad_arguments)
{
    uv_loop_t loop;
    CHECK_EQ(uv_loop_init(&loop), 0);
    struct ws ws;
    const struct ws_callbacks cb = {.on_text = never_text, .on_close = never_close};
    const char *bad[] = {
        "http://x/",        "ws://",           "ws:///path",          "ws://host:0/",
        "ws://host:65536/", "ws://host:12a/",  "ws://user@host/",     "ws://ho st/",
        "ws://[::1/",       "ws://host/#frag", "ws://host/a\r\nX: y", "wss://host/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(ws_client_start(&ws, &loop, bad[i], &cb, NULL) == -EINVAL, "%s", bad[i]);
    struct ws_header h[] = {{"Authorization", "Bearer x\r\nEvil: 1"}};
    struct ws_options opt = {.headers = h, .n_headers = 1};
    CHECK_EQ(ws_client_start(&ws, &loop, "ws://host/", &cb, &opt), -EINVAL);
    h[0] = (struct ws_header){"Host", "other"};
    CHECK_EQ(ws_client_start(&ws, &loop, "ws://host/", &cb, &opt), -EINVAL);
    h[0] = (struct ws_header){"Bad Name", "v"};
    CHECK_EQ(ws_client_start(&ws, &loop, "ws://host/", &cb, &opt), -EINVAL);
    const struct ws_callbacks no_close = {.on_text = never_text};
    CHECK_EQ(ws_client_start(&ws, &loop, "ws://host/", &no_close, NULL), -EINVAL);
    /* nothing was started: the loop has nothing to close */
    CHECK_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ(uv_loop_close(&loop), 0);
}

/* ---- interoperability with python3-websockets --------------------------------------------- */

struct pyws {
    struct ws ws;
    int opened, closes, code;
    char reason[256];
    int texts;
    int step;
    uint64_t writes_at_open, writes_at_reply;
    const char *expect_host; /* client test: the Host header the server must have seen */
    int binaries;
    uint8_t bin[16];
    size_t bin_len;
};

static void py_on_open(struct ws *ws)
{
    ((struct pyws *)ws->data)->opened++;
}

static void py_on_close(struct ws *ws, int code, const char *reason, size_t len)
{
    struct pyws *w = ws->data;
    w->closes++;
    w->code = code;
    snprintf(w->reason, sizeof w->reason, "%.*s", (int)len, reason);
}

static void py_on_binary(struct ws *ws, const uint8_t *msg, size_t len)
{
    struct pyws *w = ws->data;
    w->binaries++;
    CHECK(len <= sizeof w->bin);
    memcpy(w->bin, msg, len);
    w->bin_len = len;
    if (!ws->server)
        CHECK_EQ(ws_close(ws, 1000, "done"), 0);
    else
        CHECK_EQ(ws_send_binary(ws, msg, len), 0);
}

static const char *peer_script(void)
{
    static char path[1024];
    CHECK(test_source_path("tests/peers/ws_peer.py", path, sizeof path) != NULL);
    return path;
}

static const char *pki_file(const char *name)
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

static int fds_before;
static uv_loop_t py_loop;

static void py_loop_open(void)
{
    uv_loop_t warm; /* libuv's process-wide signal pipe, made by the first loop */
    CHECK_EQ(uv_loop_init(&warm), 0);
    CHECK_EQ(uv_loop_close(&warm), 0);
    fds_before = test_fd_count();
    CHECK_EQ(uv_loop_init(&py_loop), 0);
}

static void py_loop_close(void)
{
    CHECK_EQ(uv_run(&py_loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ(uv_loop_close(&py_loop), 0);
}

/* After the loop is closed and the peer reaped: every fd we opened is closed again. */
static void py_fds_check(void)
{
    CHECK_EQ(test_fd_count(), fds_before);
}

static void py_server_start(struct test_peer *peer, unsigned *port, const char *extra1,
                            const char *extra2, const char *extra3, const char *extra4)
{
    char *argv[] = {"/usr/bin/python3", (char *)peer_script(), "server",       (char *)extra1,
                    (char *)extra2,     (char *)extra3,        (char *)extra4, NULL};
    CHECK_MSG(test_peer_start(peer, argv, port, 20000) == 0, "python peer did not start");
}

/* C client -> Python server: headers, one write for many messages, order, fragments, ping,
 * binary, our close. */
static void cp_on_text(struct ws *ws, const char *msg, size_t len)
{
    struct pyws *w = ws->data;
    char buf[4096];
    snprintf(buf, sizeof buf, "%.*s", (int)(len < 4000 ? len : 4000), msg);
    if (w->step == 0) {
        w->writes_at_reply = ws->stream.writes;
        CHECK_MSG(strstr(buf, "\"authorization\": \"Bearer sk-test-123\"") != NULL, "%s", buf);
        CHECK_MSG(strstr(buf, "\"openai-beta\": \"realtime=v1\"") != NULL, "%s", buf);
        CHECK_MSG(strstr(buf, "\"path\": \"/v1/realtime?model=gpt-realtime\"") != NULL, "%s", buf);
        CHECK_MSG(strstr(buf, w->expect_host) != NULL, "%s", buf);
    } else if (w->step <= 50) {
        char want[16];
        snprintf(want, sizeof want, "m%02d", w->step - 1);
        CHECK_MSG(strcmp(buf, want) == 0, "got %s, want %s", buf, want);
        if (w->step == 50)
            CHECK_EQ(ws_send_text(ws, "frag:5:abcdefghijklmnopqrstuvwxyz", 33), 0);
    } else if (w->step == 51) {
        CHECK(strcmp(buf, "abcdefghijklmnopqrstuvwxyz") == 0);
        CHECK_EQ(ws_send_text(ws, "ping", 4), 0);
    } else if (w->step == 52) {
        CHECK(strcmp(buf, "pong-ok") == 0);
        CHECK_EQ(ws_send_text(ws, "binary", 6), 0);
    } else {
        CHECK_MSG(0, "unexpected message %s", buf);
    }
    w->step++;
}

static void cp_on_open(struct ws *ws)
{
    struct pyws *w = ws->data;
    py_on_open(ws);
    w->writes_at_open = ws->stream.writes;
    CHECK_EQ(ws_send_text(ws, "headers", 7), 0);
    for (int i = 0; i < 50; i++) {
        char m[16];
        snprintf(m, sizeof m, "m%02d", i);
        CHECK_EQ(ws_send_text(ws, m, 3), 0);
    }
}

TEST(ws_client_python_server_plain)
{
    struct test_peer peer;
    unsigned port;
    py_loop_open();
    py_server_start(&peer, &port, NULL, NULL, NULL, NULL);
    static struct pyws w;
    w.ws.data = &w;
    char url[128], host[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/v1/realtime?model=gpt-realtime", port);
    snprintf(host, sizeof host, "\"host\": \"127.0.0.1:%u\"", port);
    w.expect_host = host;
    const struct ws_header h[] = {{"Authorization", "Bearer sk-test-123"},
                                  {"OpenAI-Beta", "realtime=v1"}};
    const struct ws_options opt = {.headers = h, .n_headers = 2};
    const struct ws_callbacks cb = {cp_on_open, cp_on_text, py_on_binary, py_on_close, NULL};
    CHECK_EQ(ws_client_start(&w.ws, &py_loop, url, &cb, &opt), 0);
    py_loop_close();
    CHECK_EQ(w.opened, 1);
    CHECK_EQ(w.step, 53);
    CHECK_EQ(w.binaries, 1);
    CHECK(w.bin_len == 3 && memcmp(w.bin, "\x00\x01\x02", 3) == 0);
    /* 51 messages queued in on_open left in one write */
    CHECK_EQ(w.writes_at_reply - w.writes_at_open, 1);
    CHECK_EQ(w.closes, 1);
    CHECK_MSG(w.code == 1000 && strcmp(w.reason, "done") == 0, "%d %s", w.code, w.reason);
    CHECK_MSG(test_peer_wait_for(&peer, "CLOSED 1000 done", 10000) == 0, "peer: %s", peer.out);
    test_peer_kill(&peer);
    py_fds_check();
}

/* wss: verified with the test CA; the server closes with its own code. */
static void tp_on_open(struct ws *ws)
{
    py_on_open(ws);
    CHECK_EQ(ws_send_text(ws, "hello", 5), 0);
}

static void tp_on_text(struct ws *ws, const char *msg, size_t len)
{
    struct pyws *w = ws->data;
    CHECK(len == 5 && memcmp(msg, "hello", 5) == 0);
    w->texts++;
    CHECK_EQ(ws_send_text(ws, "close:4001:server bye", 21), 0);
}

static const struct ws_callbacks tp_cb = {tp_on_open, tp_on_text, NULL, py_on_close, NULL};

TEST(ws_client_python_server_tls)
{
    struct test_peer peer;
    unsigned port;
    struct tls_config *cfg;
    py_loop_open();
    CHECK_EQ(tls_config_client_new(&cfg, pki_file("ca.crt")), 0);
    py_server_start(&peer, &port, "--cert", pki_file("server.crt"), "--key",
                    pki_file("server.key"));
    static struct pyws w;
    w.ws.data = &w;
    char url[128];
    snprintf(url, sizeof url, "wss://localhost:%u/stream", port);
    const struct ws_options opt = {.tls = cfg};
    CHECK_EQ(ws_client_start(&w.ws, &py_loop, url, &tp_cb, &opt), 0);
    py_loop_close();
    tls_config_free(cfg);
    CHECK_EQ(w.opened, 1);
    CHECK_EQ(w.texts, 1);
    CHECK_MSG(w.code == 4001 && strcmp(w.reason, "server bye") == 0, "%d %s", w.code, w.reason);
    CHECK_MSG(test_peer_wait_for(&peer, "CLOSED 4001 server bye", 10000) == 0, "peer: %s",
              peer.out);
    test_peer_kill(&peer);
    py_fds_check();
}

static void run_tls_failure(const char *ca, const char *hostname)
{
    struct test_peer peer;
    unsigned port;
    struct tls_config *cfg;
    py_loop_open();
    CHECK_EQ(tls_config_client_new(&cfg, pki_file(ca)), 0);
    py_server_start(&peer, &port, "--cert", pki_file("server.crt"), "--key",
                    pki_file("server.key"));
    static struct pyws w;
    w.ws.data = &w;
    char url[128];
    snprintf(url, sizeof url, "wss://localhost:%u/", port);
    const struct ws_options opt = {.tls = cfg, .tls_hostname = hostname};
    CHECK_EQ(ws_client_start(&w.ws, &py_loop, url, &tp_cb, &opt), 0);
    py_loop_close();
    tls_config_free(cfg);
    test_peer_kill(&peer);
    py_fds_check();
    CHECK_EQ(w.opened, 0);
    CHECK_EQ(w.closes, 1);
    CHECK_EQ(w.code, 1006);
    CHECK_EQ(ws_error(&w.ws), -EKEYREJECTED);
    CHECK_MSG(strncmp(w.reason, "TLS: ", 5) == 0, "reason: %s", w.reason);
}

TEST(ws_client_python_tls_wrong_hostname_fails)
{
    run_tls_failure("ca.crt", "wrong.example");
}

TEST(ws_client_python_tls_unknown_ca_fails)
{
    run_tls_failure("other-ca.crt", NULL);
}

/* A message over our limit from the server: we close with 1009. */
static void big_on_open(struct ws *ws)
{
    py_on_open(ws);
    CHECK_EQ(ws_send_text(ws, "big:100000", 10), 0);
}

TEST(ws_client_python_message_too_big)
{
    struct test_peer peer;
    unsigned port;
    py_loop_open();
    py_server_start(&peer, &port, NULL, NULL, NULL, NULL);
    static struct pyws w;
    w.ws.data = &w;
    char url[128];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/", port);
    const struct ws_options opt = {.max_message = 65536};
    const struct ws_callbacks cb = {big_on_open, never_text, NULL, py_on_close, NULL};
    CHECK_EQ(ws_client_start(&w.ws, &py_loop, url, &cb, &opt), 0);
    py_loop_close();
    CHECK_EQ(w.code, 1009);
    CHECK_MSG(test_peer_wait_for(&peer, "CLOSED 1009", 10000) == 0, "peer: %s", peer.out);
    test_peer_kill(&peer);
    py_fds_check();
}

TEST(ws_client_http_refusal)
{
    struct test_peer peer;
    unsigned port;
    py_loop_open();
    py_server_start(&peer, &port, "--reject", "401", NULL, NULL);
    static struct pyws w;
    w.ws.data = &w;
    char url[128];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/", port);
    const struct ws_callbacks cb = {tp_on_open, never_text, NULL, py_on_close, NULL};
    CHECK_EQ(ws_client_start(&w.ws, &py_loop, url, &cb, NULL), 0);
    py_loop_close();
    test_peer_kill(&peer);
    py_fds_check();
    CHECK_EQ(w.opened, 0);
    CHECK_EQ(w.code, 1006);
    CHECK_MSG(ws_http_status(&w.ws) == 401, "status %d, reason %s", ws_http_status(&w.ws),
              w.reason);
    CHECK_EQ(ws_error(&w.ws), -EACCES);
    CHECK_MSG(strstr(w.reason, "HTTP 401") != NULL, "reason: %s", w.reason);
}

/* Python client -> our server: the worker's path, an fd plus the parsed request. */
static void sv_on_text(struct ws *ws, const char *msg, size_t len)
{
    struct pyws *w = ws->data;
    w->texts++;
    if (len == 12 && memcmp(msg, "please-close", 12) == 0)
        CHECK_EQ(ws_close(ws, 4001, "server bye"), 0);
    else
        CHECK_EQ(ws_send_text(ws, msg, len), 0);
}

static const struct ws_callbacks sv_cb = {py_on_open, sv_on_text, py_on_binary, py_on_close, NULL};

/* Reads the upgrade request from fd like the worker's HTTP server would, then starts. */
static void serve_one(struct pyws *w, int fd, const struct ws_options *opt)
{
    static struct http_parser p;
    static char buf[8192];
    size_t have = 0, used = 0;
    http_parser_init(&p, HTTP_MSG_REQUEST, NULL, false);
    for (;;) {
        ssize_t n = recv(fd, buf + have, sizeof buf - have, 0);
        CHECK(n > 0);
        int rc = http_parser_execute(&p, buf + have, (size_t)n, &used);
        used += have;
        have += (size_t)n;
        if (rc == HTTP_PARSE_DONE)
            break;
        CHECK_EQ(rc, HTTP_PARSE_MORE);
    }
    CHECK(p.msg.upgrade);
    CHECK(strcmp(http_msg_path(&p.msg), "/media") == 0);
    struct ws_upgrade up;
    ws_upgrade_from_http(&up, &p.msg);
    w->ws.data = w;
    CHECK_EQ(ws_server_start(&w->ws, &py_loop, fd, &up, buf + used, have - used, &sv_cb, opt), 0);
}

static void run_python_client(const char *scenario, const char *a1, const char *a2,
                              const struct ws_options *opt, int want_code, const char *want_reason,
                              const char *want_peer)
{
    py_loop_open();
    unsigned port;
    int lfd = test_tcp_listen(&port);
    CHECK(lfd >= 0);
    char url[128];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/media", port);
    char *argv[] = {"/usr/bin/python3", (char *)peer_script(),
                    "client",           url,
                    (char *)scenario,   (char *)a1,
                    (char *)a2,         NULL};
    struct test_peer peer;
    CHECK(test_peer_start(&peer, argv, NULL, 0) == 0);
    int fd = test_tcp_accept(lfd, 20000);
    close(lfd);
    CHECK_MSG(fd >= 0, "python client did not connect");
    static struct pyws w;
    memset(&w, 0, sizeof w);
    serve_one(&w, fd, opt);
    py_loop_close();
    int rc = test_peer_wait(&peer, 20000);
    CHECK_MSG(rc == 0, "python client exit %d: %s", rc, peer.out);
    py_fds_check();
    CHECK_MSG(strstr(peer.out, want_peer) != NULL, "python client said: %s", peer.out);
    CHECK_EQ(w.opened, 1);
    CHECK_EQ(w.closes, 1);
    CHECK_MSG(w.code == want_code && strcmp(w.reason, want_reason) == 0, "closed %d '%s'", w.code,
              w.reason);
}

TEST(ws_server_python_client_echo)
{
    run_python_client("echo", NULL, NULL, NULL, 1000, "bye", "CLOSE 1000 bye");
}

TEST(ws_server_python_client_fragments)
{
    run_python_client("fragments", NULL, NULL, NULL, 1000, "", "OK fragmented message joined");
}

TEST(ws_server_python_client_large_message)
{
    run_python_client("large", "200000", NULL, NULL, 1000, "", "OK large echo of 200000");
}

TEST(ws_server_python_client_too_large_1009)
{
    const struct ws_options opt = {.max_message = 65536};
    run_python_client("toolarge", "70000", NULL, &opt, 1009, "message too big", "CLOSE 1009");
}

TEST(ws_server_python_client_close_code_and_reason)
{
    run_python_client("close", "4000", "client bye", NULL, 4000, "client bye",
                      "CLOSE 4000 client bye");
}

TEST(ws_server_python_client_ping)
{
    run_python_client("ping", NULL, NULL, NULL, 1000, "", "OK pong received");
}

TEST(ws_server_closes_python_client)
{
    run_python_client("serverclose", NULL, NULL, NULL, 4001, "server bye", "CLOSE 4001 server bye");
}

TEST(ws_server_refuses_bad_upgrade)
{
    py_loop_open();
    static struct pyws w;
    const struct {
        struct ws_upgrade up;
        int rc;
        const char *status;
    } cases[] = {
        {{"websocket", "Upgrade", "dGhlIHNhbXBsZSBub25jZQ==", "8"},
         -EPROTONOSUPPORT,
         "HTTP/1.1 426 "},
        {{"websocket", "Upgrade", NULL, "13"}, -EINVAL, "HTTP/1.1 400 "},
    };
    for (size_t i = 0; i < 2; i++) {
        int fds[2];
        CHECK_EQ(test_tcp_pair(fds), 0);
        CHECK_EQ(ws_server_start(&w.ws, &py_loop, fds[1], &cases[i].up, NULL, 0, &sv_cb, NULL),
                 cases[i].rc);
        char resp[1024];
        size_t got = 0;
        ssize_t n;
        while ((n = recv(fds[0], resp + got, sizeof resp - 1 - got, 0)) > 0)
            got += (size_t)n; /* until EOF: the server side was closed */
        resp[got] = '\0';
        CHECK_MSG(strncmp(resp, cases[i].status, strlen(cases[i].status)) == 0, "%s", resp);
        close(fds[0]);
    }
    CHECK_EQ(w.closes, 0); /* nothing started, no callback */
    py_loop_close();
    py_fds_check();
}
