/* A small asynchronous HTTP/1.1 client on one libuv loop, over common/stream (http://, and
 * https:// with certificate and hostname verification): the call pair's webhook tool and the
 * Twilio REST API. One request per connection at a time (no pipelining), a few idle keep-alive
 * connections kept per origin, one deadline for the whole request, bounded requests and
 * responses, strict URL parsing, no header injection. All calls on the loop's thread. */
#ifndef VB_COMMON_HTTP_CLIENT_H
#define VB_COMMON_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/http_parser.h"

struct tls_config;
struct http_client_call;
struct http_client_conn;

#define HTTP_CLIENT_URL_MAX 4096             /* whole URL, bytes */
#define HTTP_CLIENT_HOST_MAX 253             /* a DNS name; IPv6 literals are shorter */
#define HTTP_CLIENT_HEADERS_MAX 32           /* caller's headers per request */
#define HTTP_CLIENT_HEAD_MAX 16384           /* request line + every header, as sent */
#define HTTP_CLIENT_BODY_MAX (1u << 20)      /* request body */
#define HTTP_CLIENT_RESPONSE_MAX (16u << 20) /* ceiling of max_response_bytes */
#define HTTP_CLIENT_MESSAGE_MAX 512          /* res->message, NUL included */

/* ---- URLs -------------------------------------------------------------------------------- */

/* A parsed absolute URL. */
struct http_client_url {
    bool tls;      /* https */
    bool ipv6;     /* host was a bracketed IPv6 literal (stored without the brackets) */
    unsigned port; /* explicit, or 80/443 */
    char host[HTTP_CLIENT_HOST_MAX + 1]; /* lower-cased */
    const char *target;                  /* path and query, into the parsed string; "/" if none */
    size_t target_len;
};

/* Parses url[0..len) strictly: scheme http or https (any case) and "://"; a host that is a DNS
 * name (letters, digits, '-', '.', '_'; labels of 1..63, at most 253 bytes; a last label that
 * starts with a digit must make a dotted-quad IPv4 address, so "127.1" or "0x7f.0.0.1" never
 * reach the resolver) or a bracketed IPv6 literal without zone; an optional port 1..65535; then
 * nothing, or a path starting with '/' and an optional '?query' made of RFC 3986 characters
 * (unreserved, sub-delims, ':', '@', '/', '?', and '%' followed by two hex digits). Refused with
 * -EINVAL: user info ("user:pass@"), a fragment ('#'), spaces, control or non-ASCII bytes, NULs,
 * anything longer than HTTP_CLIENT_URL_MAX. Returns 0 and fills *out, or -EINVAL. */
int http_client_url_parse(const char *url, size_t len, struct http_client_url *out);

/* ---- the client -------------------------------------------------------------------------- */

struct http_client_options {
    unsigned max_conns_per_origin; /* open connections per (scheme, host, port); more requests
                                      wait for one; 0 = 8 */
    unsigned max_idle_per_origin;  /* idle keep-alive connections kept; 0 = 4; at most
                                      max_conns_per_origin */
    unsigned idle_timeout_ms;      /* an idle connection is closed after this; 0 = 30000 */
    unsigned max_requests;         /* requests in flight or waiting; 0 = 256 */
};

/* Counters for metrics and tests; read on the loop thread. */
struct http_client_stats {
    uint64_t requests; /* accepted by http_client_request */
    uint64_t connects; /* connections opened (attempted) */
    uint64_t reuses;   /* requests sent on an idle keep-alive connection */
    uint64_t retries;  /* requests sent again after a reused connection closed under them */
    uint64_t timeouts; /* requests that ended with -ETIMEDOUT */
    uint64_t failures; /* requests that ended with any other error but -ECANCELED */
    unsigned conns;    /* open connections (not closing) */
    unsigned idle;     /* of which idle in the pool */
};

/* Link of the client's intrusive lists; internal. */
struct http_client_link {
    struct http_client_link *prev, *next;
};

/* Embedded by its owner, libuv style: freed only after http_client_close's callback. */
struct http_client {
    void *data; /* the owner's */
    struct http_client_stats stats;

    /* private below */
    uv_loop_t *loop;
    const struct tls_config *tls;
    struct http_client_options opt;
    uv_timer_t timer;              /* the earliest request deadline or idle expiry */
    struct http_client_link calls; /* every request not yet completed, oldest first */
    struct http_client_link conns; /* every connection until its stream has closed */
    unsigned n_calls;
    unsigned delivering; /* on_done calls running for a response (connection not pooled yet) */
    void (*close_cb)(struct http_client *cl);
    bool closing, timer_closed, pumping, pump_again;
};

/* Initialises cl on loop. tls: client config for https:// (shared, read-only; must outlive
 * cl), or NULL to refuse https URLs. The certificate is checked against the URL's host, which
 * must be a name: mbedTLS 2.28 matches DNS names only, so https to an IP literal is rejected. opt
 * may be NULL (defaults); it is copied. cl->data is kept. Returns 0 or a libuv error. Afterwards
 * the owner must call http_client_close and wait for its callback before freeing cl or closing the
 * loop. */
int http_client_init(struct http_client *cl, uv_loop_t *loop, const struct tls_config *tls,
                     const struct http_client_options *opt);

/* Cancels every request (each on_done gets -ECANCELED before this returns), closes every
 * connection (idle ones gracefully), and calls cb(cl) from the loop once every handle has
 * closed; cb may free cl. Requests made after this fail with -ESHUTDOWN. Once. */
void http_client_close(struct http_client *cl, void (*cb)(struct http_client *cl));

/* ---- requests ---------------------------------------------------------------------------- */

struct http_client_header {
    const char *name, *value;
};

struct http_client_request {
    const char *method; /* upper-case token: "GET", "POST", ...; NULL means GET; no CONNECT */
    const char *url;    /* http:// or https:// (see http_client_url_parse) */
    /* Extra headers (Authorization, Content-Type, Accept, ...), sent in order. Names are
     * tokens, values printable (no CR, LF, NUL or other controls but tab). The client writes
     * Host, Content-Length and User-Agent (unless given) itself; Host, Content-Length,
     * Transfer-Encoding, Connection, Keep-Alive, TE, Trailer and Upgrade are refused. */
    const struct http_client_header *headers;
    size_t n_headers;    /* <= HTTP_CLIENT_HEADERS_MAX */
    const void *body;    /* sent with Content-Length (0 is sent for POST/PUT/PATCH without one) */
    size_t body_len;     /* <= HTTP_CLIENT_BODY_MAX */
    unsigned timeout_ms; /* whole request: queueing, resolve, connect, TLS, send, response;
                            0 = 10000 */
    size_t max_response_bytes; /* response body; 0 = 1 MiB; <= HTTP_CLIENT_RESPONSE_MAX */
};

/* What on_done receives. Everything in it is valid only during the callback. */
struct http_client_response {
    /* 0 (a response arrived, whatever its status), or: -ETIMEDOUT, -ECONNREFUSED,
     * -EHOSTUNREACH (name did not resolve), -EKEYREJECTED (certificate or hostname verification
     * failed), -ECONNRESET (the connection closed before any byte of the response, or was
     * reset), -EPROTO (malformed or unsupported response, or one cut short by a close),
     * -EMSGSIZE (response head or body over the limits), -ECANCELED (http_client_cancel or
     * http_client_close), -ENOMEM, or another negative errno from the socket or TLS. */
    int error;
    const char *message;        /* the error in words for logs, "" when error is 0 */
    int status;                 /* HTTP status when error is 0 */
    const struct http_msg *msg; /* the response head when error is 0, else NULL */
    const char *body;           /* never NULL; a NUL follows the body_len bytes */
    size_t body_len;
};

/* Value of the first response header `name` (case-insensitive), or NULL. */
const char *http_client_response_header(const struct http_client_response *res, const char *name);

typedef void http_client_done_fn(void *arg, const struct http_client_response *res);

/* Starts a request; everything in req is copied. On 0, exactly one on_done(arg, res) follows:
 * from the loop, never from inside this call; or from inside http_client_cancel or
 * http_client_close. *handle (if handle is not NULL) identifies the request for
 * http_client_cancel until on_done starts. Returns 0, or (nothing started, no on_done):
 * -EINVAL (bad URL, method, header name or value, reserved header), -E2BIG (body, header
 * count or request head over the limits), -ENOTSUP (https:// without a TLS config), -ENOBUFS
 * (max_requests reached), -ESHUTDOWN (the client is closing), -ENOMEM, or a libuv error.
 *
 * Connection reuse and retries: an idle connection to the same origin is used when there is
 * one. If a reused connection ends (EOF or reset) before any byte of the response, the server
 * closed it while we were sending: the request is sent again, once, on a new connection, if
 * its method is idempotent (GET, HEAD, PUT, DELETE, OPTIONS, TRACE) or if no byte of it had
 * been handed to the kernel. A POST that may have reached the server is never repeated: it
 * fails with -ECONNRESET. Fresh connections are never retried. */
int http_client_request(struct http_client *cl, const struct http_client_request *req,
                        http_client_done_fn *on_done, void *arg, struct http_client_call **handle);

/* Cancels a request whose on_done has not started: on_done(arg, res) with -ECANCELED runs
 * before this returns, and the connection it was using (if any) is closed. */
void http_client_cancel(struct http_client_call *call);

/* ---- helpers for request bodies and headers ---------------------------------------------- */

/* Writes "Basic " + base64(user ":" pass) (RFC 7617), NUL-terminated, into out. Returns 0,
 * -EINVAL (user contains ':', or either holds a control character), -ENOSPC (out too small:
 * 7 + base64 of their lengths + 1 is needed). For Twilio: AccountSid and auth token. */
int http_client_basic_auth(const char *user, const char *pass, char *out, size_t cap);

/* Percent-encodes in[0..n) into out for application/x-www-form-urlencoded bodies (and query or
 * path parts): RFC 3986 unreserved bytes (A-Z a-z 0-9 - . _ ~) are kept, every other byte is
 * %XX in upper-case hex; a space becomes "%20", never '+' (form decoders, Twilio's among them,
 * accept both). Writes a NUL-terminated string and its length to *out_len. Returns 0 or
 * -ENOSPC (out then holds ""). At most 3 * n + 1 bytes are needed. */
int http_client_percent_encode(const char *in, size_t n, char *out, size_t cap, size_t *out_len);

/* Appends "name=value" (both percent-encoded as above), preceded by '&' when *len > 0, to the
 * form body in buf[0..*len) and updates *len; buf stays NUL-terminated. Returns 0, or -ENOSPC
 * with buf and *len as they were. */
int http_client_form_add(char *buf, size_t cap, size_t *len, const char *name, const char *value);

#endif
