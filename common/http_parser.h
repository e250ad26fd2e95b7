/* HTTP/1.x message parser: the one adapter over llhttp (nothing else includes llhttp.h).
 * Parses a request or a response incrementally into a bounded struct http_msg, stops after each
 * complete message so that pipelined requests, or WebSocket frames after an Upgrade/101, stay
 * with the caller, and maps llhttp's errors to ours. Limits are explicit; nothing is allocated:
 * the message holds a fixed arena for the start line and headers, the body goes into a buffer
 * the caller lends. One parser per connection, used by one thread. */
#ifndef VB_COMMON_HTTP_PARSER_H
#define VB_COMMON_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Hard ceilings of the fixed storage; struct http_limits may only lower them. */
#define HTTP_HEAD_BYTES_MAX 16384 /* request/status line + headers, as on the wire */
#define HTTP_HEADERS_MAX 64

enum http_method {
    HTTP_METHOD_OTHER = 0, /* any method llhttp knows that we do not serve */
    HTTP_METHOD_GET,
    HTTP_METHOD_HEAD,
    HTTP_METHOD_POST,
    HTTP_METHOD_PUT,
    HTTP_METHOD_DELETE,
    HTTP_METHOD_PATCH,
    HTTP_METHOD_OPTIONS,
    HTTP_METHOD_CONNECT,
    HTTP_METHOD_TRACE,
};

enum http_msg_kind { HTTP_MSG_REQUEST, HTTP_MSG_RESPONSE };

struct http_limits {
    size_t max_head_bytes; /* start line + headers on the wire, <= HTTP_HEAD_BYTES_MAX: -E2BIG */
    size_t max_headers;    /* header lines, <= HTTP_HEADERS_MAX: -E2BIG */
    size_t max_body;       /* decoded body bytes (also capped by the body buffer): -EMSGSIZE */
};

#define HTTP_LIMITS_DEFAULT                                                                        \
    {                                                                                              \
        .max_head_bytes = 8192, .max_headers = 64, .max_body = 65536                               \
    }

/* Offsets into http_msg.arena, so that a message can be copied by value. */
struct http_header {
    uint16_t name_off, name_len, value_off, value_len;
};

/* One parsed message. Strings in the arena are NUL-terminated; read them with the accessors.
 * The body points into the caller's body buffer (not NUL-terminated). */
struct http_msg {
    enum http_msg_kind kind;
    enum http_method method; /* requests */
    int status;              /* responses */
    uint8_t version_major, version_minor;
    bool keep_alive; /* llhttp's verdict from version and Connection */
    bool upgrade;    /* Upgrade + Connection: upgrade (request), or a 101 with them, or CONNECT */
    bool chunked;    /* Transfer-Encoding: chunked */
    bool has_content_length;
    uint64_t content_length; /* when has_content_length */
    const char *body;        /* NULL when empty; lives in the caller's body buffer */
    size_t body_len;
    uint16_t path_off, query_off; /* query_off 0 = no '?' in the target (offset 0 is the path) */
    uint16_t n_headers;
    uint16_t arena_used;
    struct http_header headers[HTTP_HEADERS_MAX];
    char arena[HTTP_HEAD_BYTES_MAX];
};

/* Caller-owned, usually embedded in a connection. llhttp's state lives in `impl` so that this
 * header needs no llhttp.h; its size is checked at compile time in http_parser.c. */
struct http_parser {
    _Alignas(8) unsigned char impl[128];
    struct http_limits limits;
    char *body_buf; /* lent by the caller, see http_parser_set_body_buffer */
    size_t body_cap;
    size_t head_bytes;
    int err;   /* sticky error, 0 or negative */
    int pause; /* why llhttp paused: internal */
    bool stop_after_headers;
    bool head_response; /* responses: answers a HEAD request (http_parser_set_head_response) */
    bool no_body;       /* this message has no body whatever its headers say */
    bool started, head_done, done;
    bool in_field, in_value;
    struct http_header cur; /* the header being read */
    struct http_msg msg;
};

/* Progress reported by http_parser_execute (errors are negative). */
enum http_parse_progress {
    HTTP_PARSE_MORE = 0,    /* every byte used, the message is not complete yet */
    HTTP_PARSE_HEADERS = 1, /* only with stop_after_headers: headers done, body may follow */
    HTTP_PARSE_DONE = 2,    /* a whole message is in p->msg */
};

/* Initialises p for requests or responses. limits NULL means HTTP_LIMITS_DEFAULT; values above
 * the ceilings are clamped to them, zero max_head_bytes/max_headers mean the default. With
 * stop_after_headers, execute returns HTTP_PARSE_HEADERS once per message with a body or not,
 * so the caller can size the body buffer, answer Expect: 100-continue or refuse early. */
void http_parser_init(struct http_parser *p, enum http_msg_kind kind,
                      const struct http_limits *limits, bool stop_after_headers);

/* Lends a body buffer (the caller keeps ownership; it must outlive the message). May be called
 * before or on HTTP_PARSE_HEADERS, and resets the current body. The effective body limit is
 * min(limits.max_body, cap); with no buffer, any body byte fails with -EMSGSIZE. */
void http_parser_set_body_buffer(struct http_parser *p, char *buf, size_t cap);

/* Feeds len bytes. *consumed gets how many were used: after HTTP_PARSE_DONE the rest belongs to
 * the next message or, after an upgrade, to the other protocol. The call after HTTP_PARSE_DONE
 * starts a new message (p->msg is cleared): keep the message until then.
 * Errors (sticky until http_parser_init/reset):
 *   -E2BIG    start line + headers over max_head_bytes, or more than max_headers (answer 431);
 *   -EMSGSIZE body over the limit, checked against Content-Length before any body byte (413);
 *   -EPROTO   malformed message (400);
 *   -ENOTSUP  HTTP/2 preface, a version other than 1.x, a Transfer-Encoding other than
 *             exactly "chunked" (501). */
int http_parser_execute(struct http_parser *p, const char *data, size_t len, size_t *consumed);

/* The peer closed its side. Returns HTTP_PARSE_DONE when that completed a response whose body
 * runs to EOF, -ENODATA when no message had begun (a clean close), -EPROTO when it cut one. */
int http_parser_finish(struct http_parser *p);

/* Responses only: the messages that follow answer a HEAD request, so they have no body whatever
 * their Content-Length or Transfer-Encoding say. Kept across messages and resets until changed;
 * http_parser_init clears it. (1xx, 204 and 304 responses never have a body in any case.) */
void http_parser_set_head_response(struct http_parser *p, bool head);

/* Starts over with an empty message, same kind, limits and body buffer. */
void http_parser_reset(struct http_parser *p);

/* True once any byte of the current message arrived (for request timeouts). */
bool http_parser_started(const struct http_parser *p);

/* "GET", "POST"...; "OTHER" for HTTP_METHOD_OTHER. */
const char *http_method_name(enum http_method m);

/* Request target up to '?', e.g. "/api/voice-calls/CA1/hangup" (raw, not percent-decoded). */
static inline const char *http_msg_path(const struct http_msg *m)
{
    return m->arena + m->path_off;
}

/* Query string after '?', or NULL when the target had none. */
static inline const char *http_msg_query(const struct http_msg *m)
{
    return m->query_off ? m->arena + m->query_off : NULL;
}

/* Value of the first header named `name` (case-insensitive), or NULL. Values have leading and
 * trailing blanks trimmed. */
const char *http_msg_header(const struct http_msg *m, const char *name);

/* Header i in arrival order (i < m->n_headers). */
void http_msg_header_at(const struct http_msg *m, size_t i, const char **name, const char **value);

/* True when any header named `name` holds `token` in its comma-separated list,
 * case-insensitively: ("Connection", "upgrade"), ("Upgrade", "websocket"). */
bool http_msg_header_has_token(const struct http_msg *m, const char *name, const char *token);

#endif
