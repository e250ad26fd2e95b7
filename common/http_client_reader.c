/* Reads one response for the HTTP client. The parser stops after each head so that the body
 * buffer can be sized from it: exactly Content-Length (+1 for a NUL) when known, the caller's
 * whole limit when the body is chunked or runs to EOF (malloc hands large blocks out as lazily
 * committed pages, so an unused limit costs address space, not memory). Interim 1xx responses
 * (100 Continue, 103 Early Hints) are read and dropped; a 101 is refused, we never ask for one. */
#include "common/http_client_reader.h"

#include <errno.h>
#include <stdlib.h>

/* More interim responses than any server sends before its answer: a peer looping on them. */
#define READER_INTERIM_MAX 16

void http_client_reader_start(struct http_client_reader *r, size_t max_body, bool head)
{
    free(r->body);
    r->body = NULL;
    struct http_limits lim = {
        .max_head_bytes = HTTP_HEAD_BYTES_MAX,
        .max_headers = HTTP_HEADERS_MAX,
        .max_body = max_body,
    };
    http_parser_init(&r->parser, HTTP_MSG_RESPONSE, &lim, true);
    http_parser_set_head_response(&r->parser, head);
    r->max_body = max_body;
    r->interim = 0;
    r->started = false;
    r->done = false;
    r->err = 0;
}

void http_client_reader_free(struct http_client_reader *r)
{
    free(r->body);
    r->body = NULL;
}

bool http_client_reader_started(const struct http_client_reader *r)
{
    return r->started || http_parser_started(&r->parser);
}

static int reader_fail(struct http_client_reader *r, int err)
{
    if (err != -EMSGSIZE && err != -ENOMEM)
        err = err == -E2BIG ? -EMSGSIZE : -EPROTO;
    r->err = err;
    return err;
}

/* Headers of a final response are in: lend a body buffer sized for what may follow. */
static int reader_size_body(struct http_client_reader *r)
{
    const struct http_msg *m = &r->parser.msg;
    size_t n;
    if (r->parser.no_body)
        return 0;
    if (m->has_content_length && !m->chunked)
        n = (size_t)m->content_length; /* the parser checked it against max_body */
    else
        n = r->max_body;
    if (n == 0)
        return 0;
    r->body = malloc(n + 1);
    if (r->body == NULL)
        return -ENOMEM;
    http_parser_set_body_buffer(&r->parser, r->body, n);
    return 0;
}

/* A final response is complete: NUL-terminate its body, or point it at "". */
static int reader_complete(struct http_client_reader *r)
{
    struct http_msg *m = &r->parser.msg;
    if (m->body != NULL)
        r->body[m->body_len] = '\0'; /* the buffer has one byte more than the parser may use */
    else
        m->body = "";
    r->done = true;
    return HTTP_PARSE_DONE;
}

int http_client_reader_input(struct http_client_reader *r, const char *data, size_t len,
                             size_t *consumed)
{
    size_t off = 0;
    *consumed = 0;
    if (r->err != 0)
        return r->err;
    if (r->done)
        return HTTP_PARSE_DONE;
    for (;;) {
        size_t used;
        int rc = http_parser_execute(&r->parser, data + off, len - off, &used);
        if (used > 0)
            r->started = true;
        off += used;
        *consumed = off;
        if (rc < 0)
            return reader_fail(r, rc);
        if (rc == HTTP_PARSE_MORE)
            return rc;
        int status = r->parser.msg.status;
        if (status == 101 || status < 100 || status > 999) /* llhttp lets "HTTP/1.1 1 x" by */
            return reader_fail(r, -EPROTO);
        if (rc == HTTP_PARSE_HEADERS) {
            if (status / 100 != 1) {
                int err = reader_size_body(r);
                if (err < 0)
                    return reader_fail(r, err);
            }
            continue; /* the next call reads the body, or completes a bodiless message */
        }
        /* HTTP_PARSE_DONE */
        if (status / 100 == 1) {
            if (++r->interim > READER_INTERIM_MAX)
                return reader_fail(r, -EPROTO);
            continue; /* the parser starts the next message on the next call */
        }
        return reader_complete(r);
    }
}

int http_client_reader_eof(struct http_client_reader *r)
{
    if (r->err != 0)
        return r->err;
    if (r->done)
        return HTTP_PARSE_DONE;
    int rc = http_parser_finish(&r->parser);
    if (rc == HTTP_PARSE_DONE && r->parser.msg.status / 100 != 1)
        return reader_complete(r);
    if (rc == -ENODATA && !http_client_reader_started(r))
        return -ENODATA;
    r->err = -EPROTO;
    return r->err;
}
