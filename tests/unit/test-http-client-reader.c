/* The HTTP client's response reader, without sockets: body sizing from Content-Length,
 * chunked and EOF bodies against the limit, interim 1xx responses, HEAD/204/304 without a
 * body, bytes past the response, truncation, and the same verdicts however input is split. */
#include "common/http_client_reader.h"

#include <errno.h>
#include <string.h>

#include "tests/unit/testing.h"

static struct http_client_reader rd;

/* Feeds in in pieces of step bytes (0 = whole); returns the final result, *rest the bytes left
 * after the response. eof: then report the end of input. */
static int feed(const char *in, size_t step, size_t max, int head, int eof, size_t *rest)
{
    size_t len = strlen(in), off = 0;
    http_client_reader_start(&rd, max, head);
    int rc = HTTP_PARSE_MORE;
    while (off < len) {
        size_t n = step == 0 || len - off < step ? len - off : step, used;
        rc = http_client_reader_input(&rd, in + off, n, &used);
        off += used;
        if (rc != HTTP_PARSE_MORE)
            break;
        CHECK_EQ(used, n);
    }
    if (rest != NULL)
        *rest = len - off;
    if (rc == HTTP_PARSE_MORE && eof)
        rc = http_client_reader_eof(&rd);
    return rc;
}

static void check_body(const char *want)
{
    const struct http_msg *m = &rd.parser.msg;
    CHECK(m->body != NULL);
    CHECK_EQ(m->body_len, strlen(want));
    CHECK(memcmp(m->body, want, m->body_len) == 0);
    CHECK_EQ(m->body[m->body_len], '\0');
}

TEST(http_client_reader_bodies_any_split)
{
    static const struct {
        const char *in;
        int head, eof;
        int status;
        const char *body;
        size_t rest;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 0, 0, 200, "hello", 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, 0, 200, "", 0},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n", 0,
         0, 200, "abcd", 0},
        {"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the end", 0, 1, 200, "to the end", 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 1, 0, 200, "", 0},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 1, 0, 200, "", 0},
        {"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\nNXT", 0, 0, 204, "", 3},
        {"HTTP/1.1 304 Not Modified\r\nContent-Length: 9999999\r\n\r\n", 0, 0, 304, "", 0},
        {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
         "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nokXY",
         0, 0, 201, "ok", 2},
        {"HTTP/1.0 200 OK\r\n\r\nold", 0, 1, 200, "old", 0},
    };
    static const size_t steps[] = {0, 1, 2, 5, 17};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
            size_t rest;
            int rc = feed(cases[i].in, steps[s], 1000, cases[i].head, cases[i].eof, &rest);
            CHECK_MSG(rc == HTTP_PARSE_DONE, "case %zu step %zu: %d", i, steps[s], rc);
            CHECK_EQ(rd.parser.msg.status, cases[i].status);
            check_body(cases[i].body);
            CHECK_MSG(rest == cases[i].rest, "case %zu step %zu: rest %zu", i, steps[s], rest);
            /* done is sticky: more input is not part of it */
            size_t used;
            CHECK_EQ(http_client_reader_input(&rd, "x", 1, &used), HTTP_PARSE_DONE);
            CHECK_EQ(used, 0);
            CHECK_EQ(http_client_reader_eof(&rd), HTTP_PARSE_DONE);
        }
    }
    http_client_reader_free(&rd);
}

TEST(http_client_reader_limits)
{
    /* Content-Length over the limit is refused before any body byte */
    CHECK_EQ(feed("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", 0, 10, 0, 0, NULL), -EMSGSIZE);
    CHECK(rd.body == NULL);
    CHECK_EQ(feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", 0, 10, 0, 0, NULL),
             HTTP_PARSE_DONE);
    check_body("0123456789");
    /* chunked and EOF bodies as they grow past it */
    CHECK_EQ(feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n5\r\nghijk"
                  "\r\n0\r\n\r\n",
                  3, 10, 0, 0, NULL),
             -EMSGSIZE);
    CHECK_EQ(feed("HTTP/1.1 200 OK\r\n\r\n0123456789A", 1, 10, 0, 1, NULL), -EMSGSIZE);
    CHECK_EQ(feed("HTTP/1.1 200 OK\r\n\r\n0123456789", 1, 10, 0, 1, NULL), HTTP_PARSE_DONE);
    check_body("0123456789");
    /* max 0: any body byte is too many, no body is fine */
    CHECK_EQ(feed("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", 0, 0, 0, 0, NULL), -EMSGSIZE);
    CHECK_EQ(feed("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, 0, 0, 0, NULL),
             HTTP_PARSE_DONE);
    /* a head over HTTP_HEAD_BYTES_MAX */
    static char big[HTTP_HEAD_BYTES_MAX + 100];
    strcpy(big, "HTTP/1.1 200 OK\r\nX-Big: ");
    size_t n = strlen(big);
    memset(big + n, 'b', HTTP_HEAD_BYTES_MAX);
    strcpy(big + n + HTTP_HEAD_BYTES_MAX, "\r\n\r\n");
    CHECK_EQ(feed(big, 4096, 10, 0, 0, NULL), -EMSGSIZE);
    /* errors are sticky */
    size_t used;
    CHECK_EQ(http_client_reader_input(&rd, "HTTP/1.1 200 OK\r\n\r\n", 19, &used), -EMSGSIZE);
    CHECK_EQ(http_client_reader_eof(&rd), -EMSGSIZE);
    /* endless interim responses */
    static char loop[2000];
    loop[0] = '\0';
    for (int i = 0; i < 20; i++)
        strcat(loop, "HTTP/1.1 100 Continue\r\n\r\n");
    CHECK_EQ(feed(loop, 0, 10, 0, 0, NULL), -EPROTO);
    http_client_reader_free(&rd);
}

TEST(http_client_reader_malformed_and_cut)
{
    static const char *const bad[] = {
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/2 200\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\n\r\n",
        "HTTP/1.1 1 One\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 99 Low\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(feed(bad[i], 0, 100, 0, 1, NULL) == -EPROTO, "case %zu", i);
    /* the server closing: before anything, within the head, within the body, after a 100 */
    CHECK_EQ(feed("", 0, 100, 0, 1, NULL), -ENODATA);
    CHECK(!http_client_reader_started(&rd));
    CHECK_EQ(feed("HTTP/1.1 200 OK\r\nContent-Le", 0, 100, 0, 1, NULL), -EPROTO);
    CHECK(http_client_reader_started(&rd));
    CHECK_EQ(feed("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab", 0, 100, 0, 1, NULL), -EPROTO);
    CHECK_EQ(
        feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab", 0, 100, 0, 1, NULL),
        -EPROTO);
    CHECK_EQ(feed("HTTP/1.1 100 Continue\r\n\r\n", 0, 100, 0, 1, NULL), -EPROTO);
    CHECK(http_client_reader_started(&rd));
    http_client_reader_free(&rd);
}
