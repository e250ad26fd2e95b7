/* WebSocket connections for the call loops, over a struct stream. Server side takes an fd whose
 * upgrade request the worker's HTTP server already parsed, checks the request and answers 101
 * (or 400/426); client side connects to a ws:// or wss:// URL, sends the upgrade request with
 * extra headers (Authorization) and checks the 101. Then: whole text messages in (framing in
 * common/ws_frame.h), text messages out (framed straight into the stream's bounded output
 * queue, which sends one write per loop iteration), ping/pong handled, close handshake with a
 * deadline. Limits are explicit. */
#ifndef VB_COMMON_WS_H
#define VB_COMMON_WS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/stream.h"
#include "common/ws_frame.h"

struct tls_config;
struct http_msg;
struct http_parser;
struct ws;

/* Close codes (RFC 6455 7.4.1) the bridge uses or reports. */
enum {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL_ERROR = 1002,
    WS_CLOSE_UNSUPPORTED_DATA = 1003,
    WS_CLOSE_NO_STATUS = 1005, /* reported only: the peer's close frame had no code */
    WS_CLOSE_ABNORMAL = 1006,  /* reported only: no close frame (connect/handshake failed, drop) */
    WS_CLOSE_INVALID_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL_ERROR = 1011,
};

/* Callbacks into the owner, on the loop's thread. Any may call ws_send_*, ws_close or
 * ws_abort; only on_close may free the ws. */
struct ws_callbacks {
    /* Client: the server accepted the upgrade. Server: the 101 is queued. */
    void (*on_open)(struct ws *ws);
    /* One complete text message, valid UTF-8 (checked), not NUL-terminated, at most
     * max_message bytes. Valid only during the call (it may point into the read buffer). Not
     * delivered after ws_close. */
    void (*on_text)(struct ws *ws, const char *msg, size_t len);
    /* A complete binary message. NULL: binary is refused with close 1003. */
    void (*on_binary)(struct ws *ws, const uint8_t *msg, size_t len);
    /* The last callback, exactly once after a successful ws_*_start. code: the peer's close
     * code (1005 if its frame had none), else the one we sent (ws_close, or 1002/1003/1007/
     * 1009 on bad input), else 1006 with reason saying what failed (connect, TLS, HTTP status,
     * timeout, connection lost). The owner may free the ws here. */
    void (*on_close)(struct ws *ws, int code, const char *reason, size_t reason_len);
    /* Optional: the send queue passed high water (reading from the peer is paused) or fell
     * back to low water (reading resumed). */
    void (*on_water)(struct ws *ws, int above);
};

struct ws_header {
    const char *name, *value;
};

struct ws_options {
    const struct tls_config *tls; /* client: required for wss:// (a client config) */
    const char *tls_hostname;     /* client: verify this name instead of the URL's host */
    const struct ws_header
        *headers; /* client: extra request headers, copied (e.g. Authorization) */
    size_t n_headers;
    size_t max_message;            /* largest message accepted; 0 = WS_DEFAULT_MAX_MESSAGE */
    size_t max_send_queue;         /* ws_send_* refuses beyond; 0 = WS_DEFAULT_MAX_SEND_QUEUE */
    unsigned handshake_timeout_ms; /* client: resolve + connect + TLS + 101; 0 = 10000 */
    unsigned close_timeout_ms;     /* close handshake, then flushing; 0 = 5000 */
};

#define WS_DEFAULT_MAX_MESSAGE (256u * 1024)
#define WS_DEFAULT_MAX_SEND_QUEUE (1024u * 1024)
#define WS_MAX_HEADER_VALUE 1024 /* longest upgrade header value we look at */

/* The upgrade request headers the server side needs, NUL-terminated, NULL when absent. */
struct ws_upgrade {
    const char *upgrade, *connection, *key, *version;
};

/* Fills u from a parsed request (values point into m). Where a header is repeated, picks the
 * line that carries the needed token ("Connection: keep-alive" + "Connection: Upgrade"). */
void ws_upgrade_from_http(struct ws_upgrade *u, const struct http_msg *m);

/* Checks an upgrade request and writes the whole HTTP answer into out (NUL-terminated, length
 * in *len): a 101 with Sec-WebSocket-Accept when valid; else 400 (bad or missing Upgrade,
 * Connection, Sec-WebSocket-Key, Sec-WebSocket-Version) or 426 with Sec-WebSocket-Version: 13
 * (another version), each with a JSON body {"error": "..."}. Returns 0 (101), -EINVAL (400),
 * -EPROTONOSUPPORT (426) or -ENOSPC (out shorter than 512 bytes; nothing written). */
int ws_handshake_response(const struct ws_upgrade *req, char *out, size_t cap, size_t *len);

/* base64(SHA-1(key + RFC 6455 GUID)) into out (28 characters and a NUL). */
void ws_accept_key(const char *key, size_t key_len, char out[29]);

/* The byte transport under a ws. ws_server_start/ws_client_start use their embedded stream;
 * tests and fuzzers plug in their own with ws_io_start and drive the ws_io_* entry points. */
struct ws_io {
    /* Copy all len bytes (to be sent without further asking, as the stream does at its next
     * flush) or fail: -ENOBUFS (full: the ws keeps them and offers them again at the next
     * ws_io_flush), other negative errno (the connection is dead). */
    int (*write)(struct ws *ws, const void *data, size_t len);
    size_t (*pending)(const struct ws *ws); /* bytes written and not yet taken by the kernel */
    void (*flush_request)(struct ws *ws);   /* call ws_io_flush soon, from the loop */
    void (*read_stop)(struct ws *ws);
    void (*read_start)(struct ws *ws);
    /* Close the transport (graceful: after sending what is queued); call ws_io_closed once it
     * is closed, from the loop, never from inside this call. */
    void (*close)(struct ws *ws, int graceful);
};

struct ws {
    void *data; /* the owner's */

    /* private below */
    struct stream stream;
    uv_timer_t timer;
    uv_loop_t *loop;
    const struct ws_callbacks *cb;
    const struct ws_io *io;
    struct ws_frame_rx rx;      /* once framing */
    struct http_parser *parser; /* client, while waiting for the 101 */
    char *request;              /* client, until connected */
    size_t request_len;
    uint8_t *early; /* server: bytes that came behind the upgrade request */
    size_t early_len;
    uint8_t *backlog; /* bytes the transport refused, in order; malloc'd only then */
    size_t backlog_len, backlog_cap;
    size_t max_message, max_send_queue;
    unsigned handshake_timeout_ms, close_timeout_ms;
    int state;
    int err;
    int http_status;
    uint16_t local_code, peer_code;
    uint8_t local_reason_len, peer_reason_len;
    char local_reason[124], peer_reason[124];
    char fail_reason[200];
    char accept[29];
    unsigned server : 1, framing : 1, reading : 1, close_received : 1, local_close : 1,
        close_queued : 1, close_sent : 1;
};

/* Server: takes the fd (connected TCP, already read up to the end of the upgrade request) and
 * the request's headers; early/early_len are bytes read after the request (copied). If the
 * request is bad, answers 400/426 on the fd, closes it and returns -EINVAL/-EPROTONOSUPPORT
 * (no callback follows). Returns 0 when started: on_open follows, and on_close exactly once.
 * Other negative errno (-ENOMEM): nothing started, fd closed. Plain TCP only: TLS ends before
 * the worker (HAProxy), and a TLS session cannot follow an fd to another thread. */
int ws_server_start(struct ws *ws, uv_loop_t *loop, int fd, const struct ws_upgrade *req,
                    const void *early, size_t early_len, const struct ws_callbacks *cb,
                    const struct ws_options *opt);

/* Client: connects to url ("ws://host[:port]/path?query" or "wss://..."). Returns 0 when
 * started: on_open or on_close (1006, reason says why; ws_error/ws_http_status tell more)
 * follows. -EINVAL (bad URL, header, option, wss without a TLS config) or -ENOMEM: nothing
 * started. Secrets in headers are never logged. */
int ws_client_start(struct ws *ws, uv_loop_t *loop, const char *url, const struct ws_callbacks *cb,
                    const struct ws_options *opt);

/* Sends one message: framed (and masked, client side) into the transport's output queue at once,
 * sent at its next flush. Returns 0, -ENOBUFS (the send queue would pass max_send_queue; nothing
 * queued), -EAGAIN (client not open yet), -EPIPE (closing or closed), -EINVAL (NULL message) or
 * -ENOMEM. */
int ws_send_text(struct ws *ws, const char *msg, size_t len);
int ws_send_binary(struct ws *ws, const void *msg, size_t len);

/* Starts the close handshake with code (1000-1003, 1007-1011, 3000-4999) and reason (at most
 * 123 bytes, may be NULL); messages queued before it go out first, then the close frame; the
 * transport closes when the peer answers or after close_timeout_ms. Before the client is open it just closes. Returns 0, -EINVAL, -EALREADY
 * (a close is already under way) or -EPIPE (closed). */
int ws_close(struct ws *ws, int code, const char *reason);

/* Drops the connection now (no close frame); on_close follows with 1006 "aborted". */
void ws_abort(struct ws *ws);

/* Bytes sent and not yet handed to the kernel (the stream's queue, plus any the transport
 * refused and the ws still holds). */
size_t ws_send_queued(const struct ws *ws);

/* The transport error behind a 1006 (negative errno, e.g. -EKEYREJECTED, -ETIMEDOUT), or 0. */
int ws_error(const struct ws *ws);

/* Client: the HTTP status of the upgrade response (101, 401, ...), 0 before one arrived. */
int ws_http_status(const struct ws *ws);

/* For ws_io users: start a ws over io, already open (no HTTP handshake). server selects the
 * role (a client masks its frames). Returns 0 (on_open follows, on_close exactly once after
 * ws_io_closed), or -EINVAL/-ENOMEM. */
int ws_io_start(struct ws *ws, uv_loop_t *loop, int server, const struct ws_io *io,
                const struct ws_callbacks *cb, const struct ws_options *opt);
/* Bytes from the peer. */
void ws_io_input(struct ws *ws, const uint8_t *data, size_t len);
/* Offer io->write the bytes it refused before (what flush_request asked for). */
void ws_io_flush(struct ws *ws);
/* The peer's side ended: 0 clean, or a negative errno. */
void ws_io_end(struct ws *ws, int err);
/* The transport finished closing (after io->close). */
void ws_io_closed(struct ws *ws);

#endif
