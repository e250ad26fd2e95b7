/* wslay driven from a libuv loop, after h2o's lib/websocket.c: bytes from the transport go
 * through wslay_event_recv at once; frames queued by the owner are serialised by
 * wslay_event_send only when the stream flushes (once per loop iteration), so everything
 * queued in one loop iteration leaves in one write. wslay's limits are set here: message size (its default
 * is 2 GiB), no extensions. The transport is a struct ws_io: the embedded stream, or a test's.
 *
 *   client: CONNECTING -> HANDSHAKE (request sent, reading the 101) -> OPEN
 *   server: STARTING (101 queued, on_open deferred to the loop) -> OPEN
 *   OPEN -> CLOSING (a close frame sent or received, deadline running) -> CLOSED (transport
 *   closing) -> DONE (on_close called)                                                       */
#include "common/ws.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mbedtls/sha1.h>
#include <wslay/wslay.h>

#include "common/base64.h"
#include "common/http_parser.h"
#include "common/log.h"
#include "common/tls.h"

enum {
    WS_INIT,
    WS_CONNECTING,
    WS_HANDSHAKE,
    WS_STARTING,
    WS_OPEN,
    WS_CLOSING,
    WS_CLOSED,
    WS_DONE,
};

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_MAX_REQUEST 16384  /* the client's upgrade request, extra headers included */
#define WS_STREAM_SLACK 65536 /* stream room beyond max_send_queue: frame headers, pongs */
#define WS_MAX_REASON 123     /* a close payload is at most 125 bytes, 2 of them the code */

static void ws_transport_close(struct ws *ws, int graceful);
static void ws_feed(struct ws *ws, const uint8_t *data, size_t len);
static void ws_on_timer(uv_timer_t *t);
static void ws_queue_close(struct ws *ws);

/* ---- small helpers ------------------------------------------------------------------------ */

static int ws_is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Trims blanks off s[0..*len) and returns the start. */
static const char *ws_trim(const char *s, size_t *len)
{
    size_t n = *len;
    while (n > 0 && ws_is_ows(*s))
        s++, n--;
    while (n > 0 && ws_is_ows(s[n - 1]))
        n--;
    *len = n;
    return s;
}

/* True when the comma-separated list holds token (case-insensitive). Over-long lists count as
 * not holding it: they are not from a real client. */
static int ws_has_token(const char *list, const char *token)
{
    if (list == NULL)
        return 0;
    size_t n = strnlen(list, WS_MAX_HEADER_VALUE + 1);
    if (n > WS_MAX_HEADER_VALUE)
        return 0;
    size_t tl = strlen(token);
    const char *p = list, *end = list + n;
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma != NULL ? comma : end;
        size_t len = (size_t)(e - p);
        const char *t = ws_trim(p, &len);
        if (len == tl && strncasecmp(t, token, tl) == 0)
            return 1;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return 0;
}

static void ws_set_fail(struct ws *ws, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ws_set_fail(struct ws *ws, const char *fmt, ...)
{
    if (ws->fail_reason[0] != '\0')
        return; /* the first cause is the interesting one */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ws->fail_reason, sizeof ws->fail_reason, fmt, ap);
    va_end(ap);
}

static int ws_code_valid(int code)
{
    return (code >= 1000 && code <= 1011 && code != 1004 && code != 1005 && code != 1006) ||
           (code >= 3000 && code <= 4999);
}

static const char *ws_code_text(int code)
{
    switch (code) {
    case WS_CLOSE_PROTOCOL_ERROR:
        return "protocol error";
    case WS_CLOSE_UNSUPPORTED_DATA:
        return "unsupported data";
    case WS_CLOSE_INVALID_DATA:
        return "invalid UTF-8";
    case WS_CLOSE_TOO_BIG:
        return "message too big";
    case WS_CLOSE_INTERNAL_ERROR:
        return "internal error";
    default:
        return "";
    }
}

/* ---- handshake pieces --------------------------------------------------------------------- */

void ws_accept_key(const char *key, size_t key_len, char out[29])
{
    unsigned char digest[20];
    mbedtls_sha1_context sha;
    mbedtls_sha1_init(&sha);
    mbedtls_sha1_starts_ret(&sha);
    mbedtls_sha1_update_ret(&sha, (const unsigned char *)key, key_len);
    mbedtls_sha1_update_ret(&sha, (const unsigned char *)WS_GUID, sizeof WS_GUID - 1);
    mbedtls_sha1_finish_ret(&sha, digest);
    mbedtls_sha1_free(&sha);
    base64_encode(digest, sizeof digest, out);
    out[28] = '\0';
}

static int ws_refuse(char *out, size_t cap, size_t *len, int status, const char *msg)
{
    char body[160];
    int bl = snprintf(body, sizeof body, "{\"error\":\"%s\"}", msg);
    int n = snprintf(out, cap,
                     "HTTP/1.1 %d %s\r\n%sContent-Type: application/json\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                     status, status == 426 ? "Upgrade Required" : "Bad Request",
                     status == 426 ? "Sec-WebSocket-Version: 13\r\n" : "", bl, body);
    *len = n > 0 && (size_t)n < cap ? (size_t)n : 0;
    return status == 426 ? -EPROTONOSUPPORT : -EINVAL;
}

int ws_handshake_response(const struct ws_upgrade *req, char *out, size_t cap, size_t *len)
{
    *len = 0;
    if (cap < 512)
        return -ENOSPC;
    out[0] = '\0';
    if (!ws_has_token(req->upgrade, "websocket"))
        return ws_refuse(out, cap, len, 400, "Upgrade header must be websocket");
    if (!ws_has_token(req->connection, "upgrade"))
        return ws_refuse(out, cap, len, 400, "Connection header must include Upgrade");
    if (req->version == NULL)
        return ws_refuse(out, cap, len, 400, "missing Sec-WebSocket-Version");
    size_t vl = strnlen(req->version, WS_MAX_HEADER_VALUE + 1);
    const char *v = ws_trim(req->version, &vl);
    if (vl != 2 || memcmp(v, "13", 2) != 0)
        return ws_refuse(out, cap, len, 426, "unsupported Sec-WebSocket-Version, use 13");
    if (req->key == NULL)
        return ws_refuse(out, cap, len, 400, "missing Sec-WebSocket-Key");
    size_t kl = strnlen(req->key, WS_MAX_HEADER_VALUE + 1);
    const char *k = ws_trim(req->key, &kl);
    uint8_t raw[18];
    size_t raw_len = 0;
    /* the key must be base64 of 16 bytes: exactly 24 characters */
    if (kl != 24 || base64_decode(k, kl, raw, sizeof raw, &raw_len) != 0 || raw_len != 16)
        return ws_refuse(out, cap, len, 400, "bad Sec-WebSocket-Key");
    char accept[29];
    ws_accept_key(k, kl, accept);
    int n = snprintf(out, cap,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    *len = (size_t)n;
    return 0;
}

void ws_upgrade_from_http(struct ws_upgrade *u, const struct http_msg *m)
{
    memset(u, 0, sizeof *u);
    for (size_t i = 0; i < m->n_headers; i++) {
        const char *name, *value;
        http_msg_header_at(m, i, &name, &value);
        if (strcasecmp(name, "Upgrade") == 0) {
            if (u->upgrade == NULL || !ws_has_token(u->upgrade, "websocket"))
                u->upgrade = value;
        } else if (strcasecmp(name, "Connection") == 0) {
            if (u->connection == NULL || !ws_has_token(u->connection, "upgrade"))
                u->connection = value;
        } else if (strcasecmp(name, "Sec-WebSocket-Key") == 0) {
            u->key = u->key == NULL ? value : ""; /* two keys: invalid */
        } else if (strcasecmp(name, "Sec-WebSocket-Version") == 0) {
            if (u->version == NULL)
                u->version = value;
        }
    }
}

/* ---- wslay callbacks ---------------------------------------------------------------------- */

static ssize_t ws_wslay_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                             void *user)
{
    struct ws *ws = user;
    (void)flags;
    if (ws->in_len == 0 || ws->state >= WS_CLOSED) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < ws->in_len ? len : ws->in_len;
    memcpy(buf, ws->in, n);
    ws->in += n;
    ws->in_len -= n;
    return (ssize_t)n;
}

static ssize_t ws_wslay_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                             int flags, void *user)
{
    struct ws *ws = user;
    (void)flags;
    int rc = ws->io->write(ws, data, len);
    if (rc == -ENOBUFS) {
        /* wslay keeps its place in the frame; the stream calls us again once it drains */
        ws->send_blocked = 1;
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (rc < 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static int ws_wslay_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
    (void)ctx, (void)user;
    return tls_random(buf, len) == 0 ? 0 : -1;
}

static int ws_close_start(struct ws *ws, int code, const char *reason);

static void ws_wslay_on_msg(wslay_event_context_ptr ctx,
                            const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
    struct ws *ws = user;
    (void)ctx;
    if (ws->state >= WS_CLOSED)
        return;
    int deliver = ws->state == WS_OPEN && !ws->local_close;
    const uint8_t *msg = arg->msg != NULL ? arg->msg : (const uint8_t *)"";
    switch (arg->opcode) {
    case WSLAY_TEXT_FRAME:
        if (deliver)
            ws->cb->on_text(ws, (const char *)msg, arg->msg_length);
        break;
    case WSLAY_BINARY_FRAME:
        if (ws->cb->on_binary == NULL)
            ws_close_start(ws, WS_CLOSE_UNSUPPORTED_DATA, "binary messages are not supported");
        else if (deliver)
            ws->cb->on_binary(ws, msg, arg->msg_length);
        break;
    case WSLAY_CONNECTION_CLOSE:
        /* wslay has queued the echo (unless we sent ours first) and stopped reading */
        ws->close_received = 1;
        ws->peer_code = arg->status_code != 0 ? arg->status_code : WS_CLOSE_NO_STATUS;
        if (arg->msg_length > 2) {
            size_t n = arg->msg_length - 2;
            if (n > WS_MAX_REASON)
                n = WS_MAX_REASON;
            memcpy(ws->peer_reason, msg + 2, n);
            ws->peer_reason_len = (uint8_t)n;
        }
        break;
    default:
        break; /* ping answered by wslay, pong needs nothing */
    }
}

static int ws_wslay_new(struct ws *ws)
{
    struct wslay_event_callbacks cbs = {
        .recv_callback = ws_wslay_recv,
        .send_callback = ws_wslay_send,
        .genmask_callback = ws_wslay_genmask,
        .on_msg_recv_callback = ws_wslay_on_msg,
    };
    int rc = ws->server ? wslay_event_context_server_init(&ws->ctx, &cbs, ws)
                        : wslay_event_context_client_init(&ws->ctx, &cbs, ws);
    if (rc != 0) {
        ws->ctx = NULL;
        return -ENOMEM;
    }
    wslay_event_config_set_no_buffering(ws->ctx, 0); /* whole messages, fragments joined */
    wslay_event_config_set_max_recv_msg_length(ws->ctx, ws->max_message);
    wslay_event_config_set_allowed_rsv_bits(ws->ctx, WSLAY_RSV_NONE); /* no extensions */
    return 0;
}

/* ---- the connection's life ---------------------------------------------------------------- */

static void ws_start_closing(struct ws *ws)
{
    if (ws->state >= WS_CLOSING)
        return;
    ws->state = WS_CLOSING;
    uv_timer_start(&ws->timer, ws_on_timer, ws->close_timeout_ms, 0);
}

/* After input or output: ask for a flush if wslay has frames, and finish the close handshake
 * once our close frame is out and the peer's is in (or reading stopped on an error). */
static void ws_progress(struct ws *ws)
{
    if (ws->ctx == NULL || ws->state >= WS_CLOSED)
        return;
    int sent = ws->manual_close || wslay_event_get_close_sent(ws->ctx);
    int reading = wslay_event_get_read_enabled(ws->ctx);
    if (sent && (ws->close_received || !reading)) {
        ws_transport_close(ws, 1);
        return;
    }
    if (sent || ws->close_received || !reading || ws->local_close)
        ws_start_closing(ws);
    if (wslay_event_want_write(ws->ctx))
        ws->io->flush_request(ws);
}

/* A close frame written by hand: wslay answers frame-level errors (bad lengths, fragmented
 * control frames) with an empty close; the peer deserves 1002. Only when wslay is not in the
 * middle of a frame, which it never is unless our transport refused it part-way. */
static void ws_write_close_frame(struct ws *ws, uint16_t code, const char *reason)
{
    uint8_t f[2 + 4 + 125];
    size_t rl = strlen(reason), n = 0;
    size_t pl = 2 + rl;
    uint8_t mask[4] = {0, 0, 0, 0};
    f[n++] = 0x88; /* FIN + close */
    if (ws->server) {
        f[n++] = (uint8_t)pl;
    } else {
        f[n++] = (uint8_t)(0x80 | pl);
        if (tls_random(mask, sizeof mask) != 0)
            memset(mask, 0x5a, sizeof mask);
        memcpy(f + n, mask, 4);
        n += 4;
    }
    size_t start = n;
    f[n++] = (uint8_t)(code >> 8);
    f[n++] = (uint8_t)code;
    memcpy(f + n, reason, rl);
    n += rl;
    for (size_t i = 0; i < pl; i++)
        f[start + i] ^= mask[i % 4];
    if (ws->io->write(ws, f, n) == 0)
        ws->manual_close = 1;
}

static void ws_recv_failed(struct ws *ws, int rc)
{
    ws->err = rc == WSLAY_ERR_NOMEM ? -ENOMEM : -EPROTO;
    int code = rc == WSLAY_ERR_NOMEM ? WS_CLOSE_INTERNAL_ERROR : WS_CLOSE_PROTOCOL_ERROR;
    if (!ws->local_close) {
        ws->local_code = (uint16_t)code;
        snprintf(ws->local_reason, sizeof ws->local_reason, "%s", ws_code_text(code));
        ws->local_reason_len = (uint8_t)strlen(ws->local_reason);
    }
    if (!ws->send_blocked && wslay_event_get_write_enabled(ws->ctx) &&
        !wslay_event_get_close_sent(ws->ctx)) {
        wslay_event_shutdown_write(ws->ctx);
        ws_write_close_frame(ws, (uint16_t)code, ws_code_text(code));
    }
    if (!ws->manual_close && !wslay_event_want_write(ws->ctx)) {
        ws_transport_close(ws, 0);
        return;
    }
    ws_progress(ws);
}

static void ws_feed(struct ws *ws, const uint8_t *data, size_t len)
{
    if (ws->ctx == NULL || ws->state >= WS_CLOSED || len == 0)
        return;
    ws->in = data;
    ws->in_len = len;
    ws->in_recv = 1;
    int rc = wslay_event_recv(ws->ctx);
    ws->in_recv = 0;
    ws->in = NULL;
    ws->in_len = 0;
    if (ws->state >= WS_CLOSED)
        return;
    if (rc < 0) {
        ws_recv_failed(ws, rc);
        return;
    }
    ws_progress(ws);
}

static void ws_open_now(struct ws *ws)
{
    if (ws->state != WS_STARTING)
        return;
    ws->state = WS_OPEN;
    uv_timer_stop(&ws->timer);
    if (ws->cb->on_open != NULL)
        ws->cb->on_open(ws);
    uint8_t *early = ws->early;
    size_t early_len = ws->early_len;
    ws->early = NULL;
    ws->early_len = 0;
    if (early != NULL) {
        ws_feed(ws, early, early_len);
        free(early);
    }
}

static void ws_transport_close(struct ws *ws, int graceful)
{
    if (ws->state >= WS_CLOSED)
        return;
    /* frames wslay still holds (a close echo) go into the transport before it drains */
    if (graceful && ws->ctx != NULL && !ws->send_blocked && !ws->in_recv &&
        wslay_event_want_write(ws->ctx))
        wslay_event_send(ws->ctx);
    ws->state = WS_CLOSED;
    uv_timer_stop(&ws->timer);
    ws->io->close(ws, graceful);
}

static void ws_finish(uv_handle_t *h)
{
    struct ws *ws = h->data;
    int code;
    const char *reason;
    size_t reason_len;
    if (ws->close_received) {
        code = ws->peer_code;
        reason = ws->peer_reason;
        reason_len = ws->peer_reason_len;
    } else if (ws->local_code != 0) {
        code = ws->local_code;
        reason = ws->local_reason;
        reason_len = ws->local_reason_len;
    } else if (ws->ctx != NULL && wslay_event_get_close_sent(ws->ctx)) {
        code = wslay_event_get_status_code_sent(ws->ctx); /* 1009, 1007, 1002 from wslay */
        reason = ws_code_text(code);
        reason_len = strlen(reason);
    } else {
        code = WS_CLOSE_ABNORMAL;
        if (ws->fail_reason[0] == '\0')
            ws_set_fail(ws, "connection closed");
        reason = ws->fail_reason;
        reason_len = strlen(reason);
    }
    wslay_event_context_free(ws->ctx);
    ws->ctx = NULL;
    free(ws->parser);
    ws->parser = NULL;
    if (ws->request != NULL) {
        explicit_bzero(ws->request, ws->request_len); /* it carries the API key */
        free(ws->request);
        ws->request = NULL;
    }
    free(ws->early);
    ws->early = NULL;
    ws->state = WS_DONE;
    ws->cb->on_close(ws, code, reason, reason_len); /* may free ws */
}

void ws_io_closed(struct ws *ws)
{
    uv_close((uv_handle_t *)&ws->timer, ws_finish);
}

static void ws_on_timer(uv_timer_t *t)
{
    struct ws *ws = t->data;
    switch (ws->state) {
    case WS_STARTING:
        ws_open_now(ws);
        break;
    case WS_CONNECTING:
    case WS_HANDSHAKE:
        ws->err = -ETIMEDOUT;
        ws_set_fail(ws, "handshake timed out");
        ws_transport_close(ws, 0);
        break;
    case WS_CLOSING:
        ws_set_fail(ws, "close handshake timed out");
        ws_transport_close(ws, 0);
        break;
    default:
        break;
    }
}

/* ---- client handshake --------------------------------------------------------------------- */

static void ws_client_fail(struct ws *ws, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ws_client_fail(struct ws *ws, int err, const char *fmt, ...)
{
    if (ws->err == 0)
        ws->err = err;
    if (ws->fail_reason[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ws->fail_reason, sizeof ws->fail_reason, fmt, ap);
        va_end(ap);
    }
    ws_transport_close(ws, 0);
}

static void ws_client_handshake_input(struct ws *ws, const uint8_t *data, size_t len)
{
    size_t used = 0;
    int rc = http_parser_execute(ws->parser, (const char *)data, len, &used);
    if (rc == HTTP_PARSE_MORE)
        return;
    /* no body buffer is lent: a refusal with a body ends in -EMSGSIZE, its head complete */
    if (rc == -EMSGSIZE && ws->parser->msg.status != 0 && ws->parser->msg.status != 101)
        rc = HTTP_PARSE_HEADERS;
    if (rc < 0) {
        ws_client_fail(ws, -EPROTO, "handshake: %s HTTP response",
                       rc == -E2BIG ? "oversized" : "malformed");
        return;
    }
    const struct http_msg *m = &ws->parser->msg;
    ws->http_status = m->status;
    if (m->status != 101) {
        ws_client_fail(ws, m->status == 401 || m->status == 403 ? -EACCES : -ECONNREFUSED,
                       "handshake: HTTP %d instead of 101", m->status);
        return;
    }
    if (!http_msg_header_has_token(m, "Upgrade", "websocket") ||
        !http_msg_header_has_token(m, "Connection", "upgrade")) {
        ws_client_fail(ws, -EPROTO, "handshake: 101 without Upgrade: websocket");
        return;
    }
    const char *acc = http_msg_header(m, "Sec-WebSocket-Accept");
    if (acc == NULL || strcmp(acc, ws->accept) != 0) {
        ws_client_fail(ws, -EPROTO, "handshake: wrong Sec-WebSocket-Accept");
        return;
    }
    if (http_msg_header(m, "Sec-WebSocket-Extensions") != NULL ||
        http_msg_header(m, "Sec-WebSocket-Protocol") != NULL) {
        ws_client_fail(ws, -EPROTO, "handshake: server chose an extension we did not offer");
        return;
    }
    free(ws->parser);
    ws->parser = NULL;
    if (ws_wslay_new(ws) < 0) {
        ws_client_fail(ws, -ENOMEM, "out of memory");
        return;
    }
    ws->state = WS_STARTING;
    ws_open_now(ws);
    /* frames the server sent right behind its 101 */
    if (used < len)
        ws_feed(ws, data + used, len - used);
}

/* ---- the transport entry points ----------------------------------------------------------- */

void ws_io_input(struct ws *ws, const uint8_t *data, size_t len)
{
    if (ws->state == WS_STARTING)
        ws_open_now(ws); /* input never overtakes on_open */
    if (ws->state == WS_HANDSHAKE)
        ws_client_handshake_input(ws, data, len);
    else if (ws->state == WS_OPEN || ws->state == WS_CLOSING)
        ws_feed(ws, data, len);
}

static int ws_send_now(struct ws *ws)
{
    if (wslay_event_want_write(ws->ctx)) {
        ws->send_blocked = 0;
        if (wslay_event_send(ws->ctx) < 0) {
            ws->err = -EPIPE;
            ws_set_fail(ws, "sending failed");
            ws_transport_close(ws, 0);
            return -EPIPE;
        }
    }
    return 0;
}

void ws_io_flush(struct ws *ws)
{
    if (ws->ctx == NULL || ws->state >= WS_CLOSED)
        return;
    if (ws_send_now(ws) != 0)
        return;
    if (ws->close_deferred && wslay_event_get_queued_msg_count(ws->ctx) == 0) {
        ws_queue_close(ws); /* the messages before it are out: now the close frame */
        if (ws->state >= WS_CLOSED || ws_send_now(ws) != 0)
            return;
    }
    ws_progress(ws);
}

void ws_io_end(struct ws *ws, int err)
{
    if (ws->state >= WS_CLOSED)
        return;
    if (err != 0 && ws->err == 0)
        ws->err = err;
    if (ws->state < WS_STARTING)
        ws_set_fail(ws, "handshake: connection %s", err != 0 ? strerror(-err) : "closed by peer");
    else if (!ws->close_received)
        ws_set_fail(ws, "connection %s without a close frame",
                    err != 0 ? "lost" : "closed by peer");
    ws_transport_close(ws, err == 0);
}

static void ws_water(struct ws *ws, int above)
{
    if (ws->state >= WS_CLOSED)
        return;
    /* our peer is not reading what we send: stop reading what it sends */
    if (above)
        ws->io->read_stop(ws);
    else
        ws->io->read_start(ws);
    if (ws->cb->on_water != NULL)
        ws->cb->on_water(ws, above);
}

/* ---- the stream as transport -------------------------------------------------------------- */

static int ws_stream_write(struct ws *ws, const void *data, size_t len)
{
    return stream_write(&ws->stream, data, len);
}

static size_t ws_stream_pending(const struct ws *ws)
{
    return stream_pending(&ws->stream);
}

static void ws_stream_flush_request(struct ws *ws)
{
    stream_flush_request(&ws->stream);
}

static void ws_stream_read_stop(struct ws *ws)
{
    stream_read_stop(&ws->stream);
}

static void ws_stream_read_start(struct ws *ws)
{
    stream_read_start(&ws->stream);
}

static void ws_stream_closed(struct stream *s)
{
    ws_io_closed(s->data);
}

static void ws_stream_close(struct ws *ws, int graceful)
{
    stream_close(&ws->stream, graceful, ws_stream_closed);
}

static const struct ws_io ws_stream_io = {
    .write = ws_stream_write,
    .pending = ws_stream_pending,
    .flush_request = ws_stream_flush_request,
    .read_stop = ws_stream_read_stop,
    .read_start = ws_stream_read_start,
    .close = ws_stream_close,
};

static void ws_on_stream_connect(struct stream *s, int status)
{
    struct ws *ws = s->data;
    if (ws->state >= WS_CLOSED || ws->server)
        return;
    if (status != 0) {
        char why[160];
        stream_tls_describe(s, why, sizeof why);
        if (why[0] != '\0')
            ws_client_fail(ws, status, "TLS: %s", why);
        else
            ws_client_fail(ws, status, "connect: %s", strerror(-status));
        return;
    }
    int rc = stream_write(s, ws->request, ws->request_len);
    explicit_bzero(ws->request, ws->request_len);
    free(ws->request);
    ws->request = NULL;
    ws->parser = malloc(sizeof *ws->parser);
    if (rc < 0 || ws->parser == NULL) {
        ws_client_fail(ws, rc < 0 ? rc : -ENOMEM, "handshake: cannot send the request");
        return;
    }
    /* the head only: a refusal's body is not read */
    struct http_limits lim = {.max_head_bytes = 8192, .max_headers = 64, .max_body = 0};
    http_parser_init(ws->parser, HTTP_MSG_RESPONSE, &lim, true);
    ws->state = WS_HANDSHAKE;
}

static void ws_on_stream_read(struct stream *s, const uint8_t *data, size_t len)
{
    ws_io_input(s->data, data, len);
}

static void ws_on_stream_end(struct stream *s, int err)
{
    ws_io_end(s->data, err);
}

static void ws_on_stream_water(struct stream *s, int above)
{
    ws_water(s->data, above);
}

static void ws_on_stream_flush(struct stream *s)
{
    ws_io_flush(s->data);
}

static const struct stream_callbacks ws_stream_cb = {
    .on_connect = ws_on_stream_connect,
    .on_read = ws_on_stream_read,
    .on_end = ws_on_stream_end,
    .on_water = ws_on_stream_water,
    .on_flush = ws_on_stream_flush,
};

/* ---- starting ----------------------------------------------------------------------------- */

static int ws_setup(struct ws *ws, uv_loop_t *loop, int server, const struct ws_callbacks *cb,
                    const struct ws_options *opt)
{
    static const struct ws_options defaults;
    if (opt == NULL)
        opt = &defaults;
    if (cb == NULL || cb->on_text == NULL || cb->on_close == NULL)
        return -EINVAL;
    void *data = ws->data; /* set by the owner before start, kept */
    memset(ws, 0, sizeof *ws);
    ws->data = data;
    ws->loop = loop;
    ws->cb = cb;
    ws->server = server ? 1 : 0;
    ws->max_message = opt->max_message ? opt->max_message : WS_DEFAULT_MAX_MESSAGE;
    ws->max_send_queue = opt->max_send_queue ? opt->max_send_queue : WS_DEFAULT_MAX_SEND_QUEUE;
    ws->handshake_timeout_ms = opt->handshake_timeout_ms ? opt->handshake_timeout_ms : 10000;
    ws->close_timeout_ms = opt->close_timeout_ms ? opt->close_timeout_ms : 5000;
    ws->state = WS_INIT;
    return 0;
}

static void ws_timer_setup(struct ws *ws)
{
    uv_timer_init(ws->loop, &ws->timer);
    ws->timer.data = ws;
}

static int ws_stream_setup(struct ws *ws, const struct tls_config *tls, const char *tls_hostname)
{
    struct stream_options so = {
        .tls = tls,
        .tls_hostname = tls_hostname,
        .max_pending = ws->max_send_queue + WS_STREAM_SLACK,
        .connect_timeout_ms = ws->handshake_timeout_ms,
        .close_timeout_ms = ws->close_timeout_ms,
    };
    int rc = stream_init(&ws->stream, ws->loop, &ws_stream_cb, &so);
    if (rc < 0)
        return rc;
    ws->stream.data = ws;
    ws->io = &ws_stream_io;
    return 0;
}

int ws_server_start(struct ws *ws, uv_loop_t *loop, int fd, const struct ws_upgrade *req,
                    const void *early, size_t early_len, const struct ws_callbacks *cb,
                    const struct ws_options *opt)
{
    char resp[512];
    size_t resp_len;
    int rc = ws_handshake_response(req, resp, sizeof resp, &resp_len);
    if (rc < 0) {
        /* a few hundred bytes into an idle socket's buffer: sent now or never */
        if (resp_len > 0 && send(fd, resp, resp_len, MSG_NOSIGNAL | MSG_DONTWAIT) == -1)
            log_debug("ws: could not send the refusal: %s", strerror(errno));
        log_warn("ws: upgrade refused (%s)", rc == -EPROTONOSUPPORT ? "426" : "400");
        close(fd);
        return rc;
    }
    rc = ws_setup(ws, loop, 1, cb, opt);
    if (rc == 0 && early_len > 0) {
        ws->early = malloc(early_len);
        if (ws->early == NULL)
            rc = -ENOMEM;
        else
            memcpy(ws->early, early, early_len);
        ws->early_len = early_len;
    }
    if (rc == 0)
        rc = ws_wslay_new(ws);
    if (rc == 0)
        rc = ws_stream_setup(ws, NULL, NULL);
    if (rc < 0) {
        wslay_event_context_free(ws->ctx);
        ws->ctx = NULL;
        free(ws->early);
        ws->early = NULL;
        close(fd);
        return rc;
    }
    /* from here on handles exist: failures are reported through on_close */
    ws_timer_setup(ws);
    ws->state = WS_STARTING;
    rc = stream_adopt(&ws->stream, fd);
    if (rc == 0)
        rc = stream_write(&ws->stream, resp, resp_len);
    if (rc < 0) {
        ws->err = rc;
        ws_set_fail(ws, "cannot use the connection: %s", strerror(-rc));
        ws_transport_close(ws, 0);
        return 0;
    }
    uv_timer_start(&ws->timer, ws_on_timer, 0, 0); /* on_open from the loop, not from here */
    return 0;
}

/* ws[s]://host[:port][/path][?query] -> parts. host may be an IPv6 literal in brackets. */
struct ws_url {
    int tls;
    unsigned port;
    char host[256];     /* for connecting and verifying, brackets removed */
    char host_hdr[272]; /* for the Host header */
    const char *target; /* points into the URL; "" means "/" */
};

static int ws_url_parse(const char *url, struct ws_url *u)
{
    memset(u, 0, sizeof *u);
    size_t n = strnlen(url, 4097);
    if (n > 4096)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
            return -EINVAL; /* no spaces or control characters, so no header injection */
    const char *p;
    if (strncasecmp(url, "ws://", 5) == 0) {
        p = url + 5;
        u->port = 80;
    } else if (strncasecmp(url, "wss://", 6) == 0) {
        p = url + 6;
        u->port = 443;
        u->tls = 1;
    } else {
        return -EINVAL;
    }
    size_t alen = strcspn(p, "/?#");
    const char *auth = p, *aend = p + alen;
    if (memchr(auth, '@', alen) != NULL)
        return -EINVAL; /* no credentials in URLs */
    const char *h = auth, *hend;
    const char *colon;
    if (alen > 0 && *auth == '[') {
        const char *close = memchr(auth, ']', alen);
        if (close == NULL)
            return -EINVAL;
        h = auth + 1;
        hend = close;
        colon = close + 1 < aend ? close + 1 : NULL;
        if (colon != NULL && *colon != ':')
            return -EINVAL;
    } else {
        colon = memchr(auth, ':', alen);
        hend = colon != NULL ? colon : aend;
    }
    size_t hl = (size_t)(hend - h);
    if (hl == 0 || hl >= sizeof u->host)
        return -EINVAL;
    memcpy(u->host, h, hl);
    unsigned default_port = u->port;
    if (colon != NULL) {
        const char *d = colon + 1;
        unsigned port = 0;
        if (d == aend || aend - d > 5)
            return -EINVAL;
        for (; d < aend; d++) {
            if (*d < '0' || *d > '9')
                return -EINVAL;
            port = port * 10 + (unsigned)(*d - '0');
        }
        if (port == 0 || port > 65535)
            return -EINVAL;
        u->port = port;
    }
    size_t hdr_host_len = (size_t)((colon != NULL ? colon : aend) - auth);
    if (u->port != default_port)
        snprintf(u->host_hdr, sizeof u->host_hdr, "%.*s:%u", (int)hdr_host_len, auth, u->port);
    else
        snprintf(u->host_hdr, sizeof u->host_hdr, "%.*s", (int)hdr_host_len, auth);
    if (*aend == '#')
        return -EINVAL;
    u->target = aend;
    if (strchr(u->target, '#') != NULL)
        return -EINVAL; /* fragments are not sent */
    return 0;
}

static int ws_header_name_ok(const char *name)
{
    static const char *const ours[] = {"host",
                                       "upgrade",
                                       "connection",
                                       "sec-websocket-key",
                                       "sec-websocket-version",
                                       "sec-websocket-extensions",
                                       "content-length",
                                       "transfer-encoding"};
    if (name == NULL || name[0] == '\0' || strlen(name) > 128)
        return 0;
    for (const char *c = name; *c; c++)
        if (!(('a' <= *c && *c <= 'z') || ('A' <= *c && *c <= 'Z') || ('0' <= *c && *c <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *c) != NULL))
            return 0;
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++)
        if (strcasecmp(name, ours[i]) == 0)
            return 0;
    return 1;
}

static int ws_header_value_ok(const char *value)
{
    if (value == NULL)
        return 0;
    for (const unsigned char *c = (const unsigned char *)value; *c; c++)
        if ((*c < 0x20 && *c != '\t') || *c == 0x7f)
            return 0;
    return 1;
}

/* The upgrade request, built once at start so the caller's strings need not live on. */
static int ws_request_build(struct ws *ws, const struct ws_url *u, const struct ws_options *opt)
{
    uint8_t nonce[16];
    char key[25];
    if (tls_random(nonce, sizeof nonce) < 0)
        return -EIO;
    base64_encode(nonce, sizeof nonce, key);
    key[24] = '\0';
    ws_accept_key(key, 24, ws->accept);
    const char *target = u->target[0] == '\0' ? "/" : u->target;
    size_t need = 200 + strlen(target) + strlen(u->host_hdr);
    for (size_t i = 0; i < opt->n_headers; i++) {
        if (!ws_header_name_ok(opt->headers[i].name) || !ws_header_value_ok(opt->headers[i].value))
            return -EINVAL;
        need += strlen(opt->headers[i].name) + strlen(opt->headers[i].value) + 4;
    }
    if (need > WS_MAX_REQUEST)
        return -EINVAL;
    char *r = malloc(need);
    if (r == NULL)
        return -ENOMEM;
    /* a target of "?q" is sent as "/?q" */
    size_t n = (size_t)snprintf(r, need,
                                "GET %s%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                                "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                                "Sec-WebSocket-Version: 13\r\n",
                                target[0] == '?' ? "/" : "", target, u->host_hdr, key);
    for (size_t i = 0; i < opt->n_headers; i++)
        n += (size_t)snprintf(r + n, need - n, "%s: %s\r\n", opt->headers[i].name,
                              opt->headers[i].value);
    n += (size_t)snprintf(r + n, need - n, "\r\n");
    ws->request = r;
    ws->request_len = n;
    return 0;
}

int ws_client_start(struct ws *ws, uv_loop_t *loop, const char *url, const struct ws_callbacks *cb,
                    const struct ws_options *opt)
{
    static const struct ws_options defaults;
    if (opt == NULL)
        opt = &defaults;
    struct ws_url u;
    if (url == NULL || ws_url_parse(url, &u) < 0)
        return -EINVAL;
    if (u.tls && opt->tls == NULL)
        return -EINVAL;
    if (opt->n_headers > 0 && opt->headers == NULL)
        return -EINVAL;
    int rc = ws_setup(ws, loop, 0, cb, opt);
    if (rc < 0)
        return rc;
    rc = ws_request_build(ws, &u, opt);
    if (rc < 0)
        return rc;
    rc = ws_stream_setup(ws, u.tls ? opt->tls : NULL, opt->tls_hostname);
    if (rc < 0) {
        free(ws->request);
        ws->request = NULL;
        return rc;
    }
    ws_timer_setup(ws);
    ws->state = WS_CONNECTING;
    uv_timer_start(&ws->timer, ws_on_timer, ws->handshake_timeout_ms, 0);
    rc = stream_connect(&ws->stream, u.host, u.port);
    if (rc < 0)
        ws_client_fail(ws, rc, "connect: %s", strerror(-rc));
    return 0;
}

int ws_io_start(struct ws *ws, uv_loop_t *loop, int server, const struct ws_io *io,
                const struct ws_callbacks *cb, const struct ws_options *opt)
{
    if (io == NULL)
        return -EINVAL;
    int rc = ws_setup(ws, loop, server, cb, opt);
    if (rc < 0)
        return rc;
    ws->io = io;
    rc = ws_wslay_new(ws);
    if (rc < 0)
        return rc;
    ws_timer_setup(ws);
    ws->state = WS_STARTING;
    uv_timer_start(&ws->timer, ws_on_timer, 0, 0);
    return 0;
}

/* ---- sending and closing ------------------------------------------------------------------ */

size_t ws_send_queued(const struct ws *ws)
{
    size_t q = ws->ctx != NULL ? wslay_event_get_queued_msg_length(ws->ctx) : 0;
    return q + (ws->io != NULL && ws->state < WS_DONE ? ws->io->pending(ws) : 0);
}

static int ws_send(struct ws *ws, uint8_t opcode, const void *msg, size_t len)
{
    if (ws->state >= WS_CLOSING || ws->local_close || ws->close_received)
        return -EPIPE;
    if (ws->ctx == NULL)
        return -EAGAIN;
    if (len > ws->max_send_queue || ws_send_queued(ws) > ws->max_send_queue - len)
        return -ENOBUFS;
    struct wslay_event_msg m = {.opcode = opcode, .msg = msg, .msg_length = len};
    int rc = wslay_event_queue_msg(ws->ctx, &m);
    if (rc != 0)
        return rc == WSLAY_ERR_NO_MORE_MSG ? -EPIPE : rc == WSLAY_ERR_NOMEM ? -ENOMEM : -EINVAL;
    ws->io->flush_request(ws);
    return 0;
}

int ws_send_text(struct ws *ws, const char *msg, size_t len)
{
    return ws_send(ws, WSLAY_TEXT_FRAME, msg, len);
}

int ws_send_binary(struct ws *ws, const void *msg, size_t len)
{
    return ws_send(ws, WSLAY_BINARY_FRAME, msg, len);
}

/* Queues our close frame (ws_close_start saved its code and reason), unless a close already
 * went out (wslay's own, or one written by hand after a receive error). */
static void ws_queue_close(struct ws *ws)
{
    ws->close_deferred = 0;
    if (ws->manual_close || wslay_event_get_close_sent(ws->ctx))
        return;
    if (wslay_event_queue_close(ws->ctx, ws->local_code, (const uint8_t *)ws->local_reason,
                                ws->local_reason_len) != 0)
        ws_transport_close(ws, 0); /* wslay stopped writing (a failed send): nothing more to say */
}

static int ws_close_start(struct ws *ws, int code, const char *reason)
{
    if (ws->state >= WS_CLOSED)
        return -EPIPE;
    size_t rl = reason != NULL ? strlen(reason) : 0;
    if (!ws_code_valid(code) || rl > WS_MAX_REASON)
        return -EINVAL;
    if (ws->local_close || ws->close_received ||
        (ws->ctx != NULL && wslay_event_get_close_sent(ws->ctx)))
        return -EALREADY;
    ws->local_close = 1;
    ws->local_code = (uint16_t)code;
    if (rl > 0)
        memcpy(ws->local_reason, reason, rl);
    ws->local_reason_len = (uint8_t)rl;
    if (ws->ctx == NULL) { /* client still connecting: nothing to say goodbye to */
        ws_set_fail(ws, "closed before open");
        ws_transport_close(ws, 0);
        return 0;
    }
    ws_start_closing(ws);
    /* wslay sends control frames ahead of queued messages and nothing after its close frame:
     * behind queued messages the close waits for them (ws_io_flush queues it), or they are lost */
    if (wslay_event_get_queued_msg_count(ws->ctx) > 0)
        ws->close_deferred = 1;
    else
        ws_queue_close(ws);
    if (ws->state < WS_CLOSED)
        ws->io->flush_request(ws);
    return 0;
}

int ws_close(struct ws *ws, int code, const char *reason)
{
    return ws_close_start(ws, code, reason);
}

void ws_abort(struct ws *ws)
{
    if (ws->state >= WS_CLOSED)
        return;
    ws_set_fail(ws, "aborted");
    ws_transport_close(ws, 0);
}

int ws_error(const struct ws *ws)
{
    return ws->err;
}

int ws_http_status(const struct ws *ws)
{
    return ws->http_status;
}
