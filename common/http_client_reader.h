/* The response side of common/http_client, apart from any socket so that it can be fuzzed: reads
 * one HTTP/1.1 response through the parser adapter, skips interim 1xx responses, knows that a
 * HEAD answer has no body, and sizes the body buffer from Content-Length (or the caller's limit
 * when the length is unknown). One reader per connection, reused for each request. */
#ifndef VB_COMMON_HTTP_CLIENT_READER_H
#define VB_COMMON_HTTP_CLIENT_READER_H

#include <stdbool.h>
#include <stddef.h>

#include "common/http_parser.h"

struct http_client_reader {
    struct http_parser parser; /* parser.msg is the response once complete */
    char *body;                /* owned: malloc'd for the response, freed by reset/free */
    size_t max_body;
    unsigned interim; /* 1xx responses skipped */
    int err;          /* sticky, 0 or negative */
    bool started;     /* a byte of some response (interim included) arrived */
    bool done;
};

/* Prepares r for the response to one request (max_body: body bytes allowed; head: the request
 * was HEAD). Frees the previous response's body. r must be zeroed or previously initialised. */
void http_client_reader_start(struct http_client_reader *r, size_t max_body, bool head);

/* Feeds len bytes. *consumed gets how many belong to the response (the rest, after
 * HTTP_PARSE_DONE, is bytes the server sent beyond it). Returns HTTP_PARSE_MORE,
 * HTTP_PARSE_DONE (the response is in r->parser.msg; its body, NUL-terminated, at
 * r->parser.msg.body or "" when empty), or: -EMSGSIZE (head over HTTP_HEAD_BYTES_MAX or more
 * than HTTP_HEADERS_MAX headers, or body over max_body), -EPROTO (malformed, an HTTP version
 * other than 1.x, a transfer coding other than chunked, a 101 we never asked for), -ENOMEM.
 * Errors are sticky until the next start. */
int http_client_reader_input(struct http_client_reader *r, const char *data, size_t len,
                             size_t *consumed);

/* The server closed its side. Returns HTTP_PARSE_DONE (a response whose body runs to EOF is
 * complete, or one was already), -ENODATA when no byte of a response had arrived, -EPROTO when
 * the close cut a response short. */
int http_client_reader_eof(struct http_client_reader *r);

/* True once any byte of the response (interim ones included) has arrived. */
bool http_client_reader_started(const struct http_client_reader *r);

/* Frees the body buffer. The reader may be started again afterwards. */
void http_client_reader_free(struct http_client_reader *r);

#endif
