/* WebSocket connections over a libuv loop: the upgrade handshake both ways, then messages in
 * through common/ws_frame (bytes from the transport parsed at once, whole messages handed up where
 * they lie) and out straight into the transport's buffer (the stream sends everything written in
 * one loop iteration in one write; no copy or allocation per message here). What a transport
 * refuses waits, in order, in a backlog allocated only then. Limits are explicit: message size,
 * send queue, no extensions. The transport is a struct ws_io: the embedded stream, or a test's.
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

#include "common/base64.h"
#include "common/http_parser.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/ws_frame.h"

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
#define WS_MAX_REQUEST 16384   /* the client's upgrade request, extra headers included */
#define WS_STREAM_SLACK 65536  /* stream room beyond max_send_queue: frame headers, pongs */
#define WS_MAX_REASON 123      /* a close payload is at most 125 bytes, 2 of them the code */
#define WS_OUT_PIECE 2048      /* a frame up to this goes to the transport in one write */
#define WS_BACKLOG_PIECE 16384 /* refused bytes are offered again in pieces of this */

static void ws_transport_close(struct ws *ws, int graceful);
static void ws_feed(struct ws *ws, const uint8_t *data, size_t len);
static void ws_on_timer(uv_timer_t *t);
static int ws_close_start(struct ws *ws, int code, const char *reason);

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

/* ---- frames out ---------------------------------------------------------------------------- */

/* Keeps bytes the transport refused, behind any kept before; the transport asks for them again
 * (ws_io_flush) once it drains. Allocated only then: the stream refuses nothing within the send
 * queue's bound, so in practice only a test's transport gets here. */
static int ws_backlog_add(struct ws *ws, const uint8_t *data, size_t len)
{
    if (len > ws->backlog_cap - ws->backlog_len) {
        size_t cap = ws->backlog_cap > 0 ? ws->backlog_cap : 4096;
        while (cap - ws->backlog_len < len)
            cap *= 2;
        uint8_t *b = realloc(ws->backlog, cap);
        if (b == NULL)
            return -ENOMEM;
        ws->backlog = b;
        ws->backlog_cap = cap;
    }
    memcpy(ws->backlog + ws->backlog_len, data, len);
    ws->backlog_len += len;
    ws->io->flush_request(ws);
    return 0;
}

/* Offers the backlog to the transport again, in pieces, so that a little room takes a little.
 * Returns 0 (some may remain) or the transport's error. */
static int ws_backlog_flush(struct ws *ws)
{
    size_t done = 0;
    while (done < ws->backlog_len) {
        size_t n = ws->backlog_len - done;
        if (n > WS_BACKLOG_PIECE)
            n = WS_BACKLOG_PIECE;
        int rc = ws->io->write(ws, ws->backlog + done, n);
        if (rc == -ENOBUFS)
            break;
        if (rc < 0)
            return rc;
        done += n;
    }
    ws->backlog_len -= done;
    if (ws->backlog_len > 0) {
        memmove(ws->backlog, ws->backlog + done, ws->backlog_len);
        ws->io->flush_request(ws);
        return 0;
    }
    free(ws->backlog);
    ws->backlog = NULL;
    ws->backlog_cap = 0;
    if (ws->close_queued)
        ws->close_sent = 1;
    return 0;
}

/* Bytes for the peer, in order: into the transport, or behind what it refused. Returns 0 or a
 * negative errno (the connection is unusable: part of a frame may be out). */
static int ws_out(struct ws *ws, const uint8_t *data, size_t len)
{
    if (ws->backlog_len == 0) {
        int rc = ws->io->write(ws, data, len);
        if (rc != -ENOBUFS)
            return rc;
    }
    return ws_backlog_add(ws, data, len);
}

/* One whole frame out. A client masks it with a key of its own (RFC 6455 5.3), in pieces through
 * a buffer on the stack; a server's small frame is joined to its header in that buffer, a large
 * one follows its header in a second write rather than being copied twice. */
static int ws_frame_out(struct ws *ws, unsigned opcode, const uint8_t *payload, size_t len)
{
    uint8_t buf[WS_OUT_PIECE];
    uint8_t key[4];
    const uint8_t *k = NULL;
    if (!ws->server) {
        ws_frame_mask_key(key);
        k = key;
    }
    size_t fill = ws_frame_head_write(buf, opcode, len, k);
    if (k == NULL && len > sizeof buf - fill) {
        int rc = ws_out(ws, buf, fill);
        return rc < 0 ? rc : ws_out(ws, payload, len);
    }
    size_t off = 0;
    for (;;) {
        size_t m = len - off;
        if (m > sizeof buf - fill)
            m = sizeof buf - fill;
        if (m > 0 && k != NULL)
            ws_frame_mask(buf + fill, payload + off, m, k, off);
        else if (m > 0)
            memcpy(buf + fill, payload + off, m);
        fill += m;
        off += m;
        int rc = ws_out(ws, buf, fill);
        if (rc < 0 || off == len)
            return rc;
        fill = 0;
    }
}

/* Our close frame: code 0 sends none (the echo of a peer's close that had none). Nothing is
 * sent after it. */
static int ws_close_out(struct ws *ws, unsigned code, const char *reason, size_t rl)
{
    uint8_t p[2 + WS_MAX_REASON];
    size_t n = 0;
    if (code != 0) {
        p[0] = (uint8_t)(code >> 8);
        p[1] = (uint8_t)code;
        memcpy(p + 2, reason, rl);
        n = 2 + rl;
    }
    ws->close_queued = 1;
    int rc = ws_frame_out(ws, WS_OP_CLOSE, p, n);
    if (rc == 0 && ws->backlog_len == 0)
        ws->close_sent = 1;
    return rc;
}

/* The transport failed a write: the connection is lost. */
static void ws_out_failed(struct ws *ws, int rc)
{
    if (ws->err == 0)
        ws->err = rc == -ENOMEM ? -ENOMEM : -EPIPE;
    ws_set_fail(ws, "sending failed");
    ws_transport_close(ws, 0);
}

/* ---- frames in ----------------------------------------------------------------------------- */

/* A whole message or control frame from the peer (ws_frame_rx_input's callback). Returns
 * nonzero when nothing more is to be read. */
static int ws_on_frame(void *arg, unsigned opcode, const uint8_t *msg, size_t len)
{
    struct ws *ws = arg;
    if (ws->state >= WS_CLOSED)
        return 1;
    int deliver = ws->state == WS_OPEN && !ws->local_close;
    int rc = 0;
    switch (opcode) {
    case WS_OP_TEXT:
        if (deliver)
            ws->cb->on_text(ws, (const char *)msg, len);
        break;
    case WS_OP_BINARY:
        if (ws->cb->on_binary == NULL)
            ws_close_start(ws, WS_CLOSE_UNSUPPORTED_DATA, "binary messages are not supported");
        else if (deliver)
            ws->cb->on_binary(ws, msg, len);
        break;
    case WS_OP_PING:
        /* a peer that pings while it does not read our output gets no more pongs */
        if (!ws->close_queued && ws->backlog_len <= ws->max_send_queue)
            rc = ws_frame_out(ws, WS_OP_PONG, msg, len);
        break;
    case WS_OP_CLOSE: {
        /* ws_frame checked it: empty, or a valid code and a UTF-8 reason of at most 123 bytes */
        unsigned code = len >= 2 ? (unsigned)msg[0] << 8 | msg[1] : 0;
        size_t rl = len > 2 ? len - 2 : 0;
        ws->close_received = 1;
        ws->reading = 0;
        ws->peer_code = (uint16_t)(code != 0 ? code : WS_CLOSE_NO_STATUS);
        memcpy(ws->peer_reason, msg + (len > 2 ? 2 : 0), rl);
        ws->peer_reason_len = (uint8_t)rl;
        if (!ws->close_queued) /* the echo: the peer's code and reason back (RFC 6455 5.5.1) */
            rc = ws_close_out(ws, code, ws->peer_reason, rl);
        break;
    }
    default:
        break; /* a pong needs nothing */
    }
    if (rc < 0)
        ws_out_failed(ws, rc);
    return ws->state >= WS_CLOSED || !ws->reading;
}

/* ---- the connection's life ---------------------------------------------------------------- */

/* Frames may flow: after the 101 (client), at once (server). Allocates nothing. */
static void ws_framing_start(struct ws *ws)
{
    ws_frame_rx_init(&ws->rx, ws->server, ws->max_message);
    ws->framing = 1;
    ws->reading = 1;
}

static void ws_start_closing(struct ws *ws)
{
    if (ws->state >= WS_CLOSING)
        return;
    ws->state = WS_CLOSING;
    uv_timer_start(&ws->timer, ws_on_timer, ws->close_timeout_ms, 0);
}

/* After input or output: finish the close handshake once our close frame is out and the peer's
 * is in (or reading stopped on a violation), start the deadline once either side began it, and
 * ask for a flush while the transport holds back bytes it refused. */
static void ws_progress(struct ws *ws)
{
    if (!ws->framing || ws->state >= WS_CLOSED)
        return;
    if (ws->close_sent && (ws->close_received || !ws->reading)) {
        ws_transport_close(ws, 1);
        return;
    }
    if (ws->close_queued || ws->close_received || !ws->reading || ws->local_close)
        ws_start_closing(ws);
    if (ws->backlog_len > 0)
        ws->io->flush_request(ws);
}

/* The peer broke the protocol (ws_frame_rx_input's error): close with the matching code. The
 * reason goes on the wire only for broken framing, where the code alone says little. */
static void ws_recv_failed(struct ws *ws, int rc)
{
    int code = WS_CLOSE_PROTOCOL_ERROR;
    const char *wire = "";
    switch (rc) {
    case -EMSGSIZE:
        code = WS_CLOSE_TOO_BIG;
        break;
    case -EILSEQ:
        code = WS_CLOSE_INVALID_DATA;
        break;
    case -ENOMEM:
        code = WS_CLOSE_INTERNAL_ERROR;
        wire = ws_code_text(code);
        ws->err = -ENOMEM;
        break;
    case -EBADMSG:
        wire = ws_code_text(code);
        ws->err = -EPROTO;
        break;
    default: /* -EPROTO */
        break;
    }
    ws->reading = 0;
    if (!ws->local_close) {
        ws->local_code = (uint16_t)code;
        snprintf(ws->local_reason, sizeof ws->local_reason, "%s", ws_code_text(code));
        ws->local_reason_len = (uint8_t)strlen(ws->local_reason);
    }
    if (!ws->close_queued) {
        int wrc = ws_close_out(ws, (unsigned)code, wire, strlen(wire));
        if (wrc < 0) {
            ws_out_failed(ws, wrc);
            return;
        }
    }
    ws_progress(ws);
}

static void ws_feed(struct ws *ws, const uint8_t *data, size_t len)
{
    if (!ws->framing || !ws->reading || ws->state >= WS_CLOSED || len == 0)
        return;
    int rc = ws_frame_rx_input(&ws->rx, data, len, ws_on_frame, ws);
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
    /* bytes the transport refused (a close echo, say) get one more offer before it drains */
    if (graceful && ws->backlog_len > 0)
        (void)ws_backlog_flush(ws);
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
    } else {
        code = WS_CLOSE_ABNORMAL;
        if (ws->fail_reason[0] == '\0')
            ws_set_fail(ws, "connection closed");
        reason = ws->fail_reason;
        reason_len = strlen(reason);
    }
    ws_frame_rx_free(&ws->rx);
    ws->framing = 0;
    free(ws->backlog);
    ws->backlog = NULL;
    ws->backlog_len = ws->backlog_cap = 0;
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
    ws_framing_start(ws);
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

void ws_io_flush(struct ws *ws)
{
    if (!ws->framing || ws->state >= WS_CLOSED)
        return;
    if (ws->backlog_len > 0) {
        int rc = ws_backlog_flush(ws);
        if (rc < 0) {
            ws_out_failed(ws, rc);
            return;
        }
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
        rc = ws_stream_setup(ws, NULL, NULL);
    if (rc < 0) {
        free(ws->early);
        ws->early = NULL;
        close(fd);
        return rc;
    }
    /* from here on handles exist: failures are reported through on_close */
    ws_framing_start(ws);
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
    ws_framing_start(ws);
    ws_timer_setup(ws);
    ws->state = WS_STARTING;
    uv_timer_start(&ws->timer, ws_on_timer, 0, 0);
    return 0;
}

/* ---- sending and closing ------------------------------------------------------------------ */

size_t ws_send_queued(const struct ws *ws)
{
    return ws->backlog_len + (ws->io != NULL && ws->state < WS_DONE ? ws->io->pending(ws) : 0);
}

/* A message goes straight into the transport's buffer: nothing is copied or allocated for it
 * here, and everything sent in one loop iteration leaves in one write. */
static int ws_send(struct ws *ws, unsigned opcode, const void *msg, size_t len)
{
    if (ws->state >= WS_CLOSING || ws->local_close || ws->close_received || ws->close_queued)
        return -EPIPE;
    if (!ws->framing)
        return -EAGAIN;
    if (msg == NULL && len > 0)
        return -EINVAL;
    if (len > ws->max_send_queue || ws_send_queued(ws) > ws->max_send_queue - len)
        return -ENOBUFS;
    int rc = ws_frame_out(ws, opcode, msg, len);
    if (rc < 0) {
        ws_out_failed(ws, rc);
        return rc == -ENOMEM ? -ENOMEM : -EPIPE;
    }
    return 0;
}

int ws_send_text(struct ws *ws, const char *msg, size_t len)
{
    return ws_send(ws, WS_OP_TEXT, msg, len);
}

int ws_send_binary(struct ws *ws, const void *msg, size_t len)
{
    return ws_send(ws, WS_OP_BINARY, msg, len);
}

static int ws_close_start(struct ws *ws, int code, const char *reason)
{
    if (ws->state >= WS_CLOSED)
        return -EPIPE;
    size_t rl = reason != NULL ? strlen(reason) : 0;
    if (code < 0 || !ws_frame_close_code_valid((unsigned)code) || rl > WS_MAX_REASON)
        return -EINVAL;
    if (ws->local_close || ws->close_received || ws->close_queued)
        return -EALREADY;
    ws->local_close = 1;
    ws->local_code = (uint16_t)code;
    if (rl > 0)
        memcpy(ws->local_reason, reason, rl);
    ws->local_reason_len = (uint8_t)rl;
    if (!ws->framing) { /* client still connecting: nothing to say goodbye to */
        ws_set_fail(ws, "closed before open");
        ws_transport_close(ws, 0);
        return 0;
    }
    ws_start_closing(ws);
    /* behind every message sent before it, and nothing is sent after it */
    int rc = ws_close_out(ws, (unsigned)code, ws->local_reason, rl);
    if (rc < 0)
        ws_out_failed(ws, rc);
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
