/* HTTP parser adapter: splitting-independence (byte by byte = whole = odd splits), pipelining,
 * every limit and its error, chunked bodies, malformed and unsupported input, response mode with
 * a 101 followed by WebSocket bytes, EOF-terminated bodies, header lookup helpers. */
#include "common/http_parser.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/testing.h"

static char body_buf[65536];

/* Appends a printable summary of the message to out, so parses can be compared as strings. */
static void summarize(const struct http_msg *m, char *out, size_t cap)
{
    size_t n = strlen(out);
#define ADD(...) n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, __VA_ARGS__)
    if (m->kind == HTTP_MSG_REQUEST)
        ADD("[%s %s", http_method_name(m->method), http_msg_path(m));
    else
        ADD("[%d", m->status);
    if (http_msg_query(m))
        ADD(" ?%s", http_msg_query(m));
    ADD(" %u.%u ka=%d up=%d ch=%d", m->version_major, m->version_minor, m->keep_alive, m->upgrade,
        m->chunked);
    for (size_t i = 0; i < m->n_headers; i++) {
        const char *name, *value;
        http_msg_header_at(m, i, &name, &value);
        ADD(" {%s=%s}", name, value);
    }
    ADD(" body=%zu:%.*s]", m->body_len, (int)m->body_len, m->body ? m->body : "");
#undef ADD
}

/* Parses all of in, fed in pieces of `step` bytes (0 = whole), into a summary of every message
 * and the final result; the bytes left after an upgrade are appended as "rest=...". */
static int parse_all(enum http_msg_kind kind, const char *in, size_t len, size_t step,
                     const struct http_limits *lim, char *out, size_t cap)
{
    static struct http_parser p;
    http_parser_init(&p, kind, lim, false);
    http_parser_set_body_buffer(&p, body_buf, sizeof body_buf);
    out[0] = '\0';
    size_t off = 0, avail = 0;
    int r = 0;
    for (;;) {
        size_t end = step == 0 ? len : (avail + step < len ? avail + step : len);
        avail = end;
        size_t used;
        r = http_parser_execute(&p, in + off, avail - off, &used);
        off += used;
        if (r < 0)
            break;
        if (r == HTTP_PARSE_DONE) {
            summarize(&p.msg, out, cap);
            if (p.msg.upgrade) {
                size_t n = strlen(out);
                snprintf(out + n, cap - n, " rest=%.*s", (int)(len - off), in + off);
                return r;
            }
            continue;
        }
        if (off == len)
            break;
    }
    size_t n = strlen(out);
    snprintf(out + n, cap - n, " r=%d", r);
    return r;
}

static void check_split_independent(enum http_msg_kind kind, const char *in, size_t len)
{
    static char whole[16384], piece[16384];
    parse_all(kind, in, len, 0, NULL, whole, sizeof whole);
    static const size_t steps[] = {1, 2, 3, 7, 13, 64};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        parse_all(kind, in, len, steps[i], NULL, piece, sizeof piece);
        CHECK_MSG(strcmp(whole, piece) == 0, "step %zu:\n whole %s\n piece %s", steps[i], whole,
                  piece);
    }
}

TEST(http_parser_request_fields)
{
    static struct http_parser p;
    const char *req = "POST /api/voice-calls/CA1/hangup?x=1&y=%20 HTTP/1.1\r\n"
                      "Host: example.com\r\n"
                      "Content-Type:  application/json \t\r\n"
                      "X-Empty:\r\n"
                      "connection: keep-alive, Upgrade\r\n"
                      "Content-Length: 2\r\n\r\n{}";
    http_parser_init(&p, HTTP_MSG_REQUEST, NULL, false);
    http_parser_set_body_buffer(&p, body_buf, sizeof body_buf);
    size_t used;
    CHECK_EQ(http_parser_execute(&p, req, strlen(req), &used), HTTP_PARSE_DONE);
    CHECK_EQ(used, strlen(req));
    const struct http_msg *m = &p.msg;
    CHECK_EQ(m->method, HTTP_METHOD_POST);
    CHECK(strcmp(http_msg_path(m), "/api/voice-calls/CA1/hangup") == 0);
    CHECK(strcmp(http_msg_query(m), "x=1&y=%20") == 0);
    CHECK_EQ(m->version_major, 1);
    CHECK_EQ(m->version_minor, 1);
    CHECK(m->keep_alive);
    CHECK(!m->upgrade);
    CHECK(m->has_content_length);
    CHECK_EQ(m->content_length, 2);
    CHECK_EQ(m->n_headers, 5);
    CHECK(strcmp(http_msg_header(m, "HOST"), "example.com") == 0);
    CHECK(strcmp(http_msg_header(m, "content-type"), "application/json") == 0);
    CHECK(strcmp(http_msg_header(m, "x-empty"), "") == 0);
    CHECK(http_msg_header(m, "missing") == NULL);
    CHECK(http_msg_header_has_token(m, "Connection", "upgrade"));
    CHECK(http_msg_header_has_token(m, "Connection", "KEEP-ALIVE"));
    CHECK(!http_msg_header_has_token(m, "Connection", "close"));
    CHECK(!http_msg_header_has_token(m, "Connection", "upgr"));
    CHECK_EQ(m->body_len, 2);
    CHECK(memcmp(m->body, "{}", 2) == 0);
    CHECK(m->body == body_buf);

    /* A copy by value stays valid: the message holds offsets, not pointers into itself. */
    static struct http_msg copy;
    copy = p.msg;
    memset(&p, 0, sizeof p);
    CHECK(strcmp(http_msg_header(&copy, "host"), "example.com") == 0);
    CHECK(strcmp(http_msg_path(&copy), "/api/voice-calls/CA1/hangup") == 0);
}

TEST(http_parser_split_independent)
{
    static const char *const requests[] = {
        "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b?c=d HTTP/1.1\r\nContent-Length: 5\r\n\r\n"
        "helloGET /c HTTP/1.0\r\n\r\n",
        "POST /chunk HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nGET /next HTTP/1.1\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n\x81\x05hello",
        "GET /bad HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nBad Header: v\r\n\r\n",
        "\r\n\r\nGET /leading-crlf HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++)
        check_split_independent(HTTP_MSG_REQUEST, requests[i], strlen(requests[i]));
    static const char *const responses[] = {
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02hi",
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 204 No Content\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof responses / sizeof responses[0]; i++)
        check_split_independent(HTTP_MSG_RESPONSE, responses[i], strlen(responses[i]));
}

TEST(http_parser_pipelined_one_at_a_time)
{
    static struct http_parser p;
    const char *in = "GET /one HTTP/1.1\r\n\r\nGET /two HTTP/1.1\r\n\r\nGET /thr";
    size_t len = strlen(in), used;
    http_parser_init(&p, HTTP_MSG_REQUEST, NULL, false);
    CHECK_EQ(http_parser_execute(&p, in, len, &used), HTTP_PARSE_DONE);
    CHECK_EQ(used, strlen("GET /one HTTP/1.1\r\n\r\n"));
    CHECK(strcmp(http_msg_path(&p.msg), "/one") == 0);
    size_t off = used;
    CHECK_EQ(http_parser_execute(&p, in + off, len - off, &used), HTTP_PARSE_DONE);
    CHECK_EQ(used, strlen("GET /two HTTP/1.1\r\n\r\n"));
    CHECK(strcmp(http_msg_path(&p.msg), "/two") == 0);
    off += used;
    CHECK_EQ(http_parser_execute(&p, in + off, len - off, &used), HTTP_PARSE_MORE);
    CHECK_EQ(used, len - off);
    CHECK(http_parser_started(&p));
    const char *rest = "ee HTTP/1.1\r\n\r\n";
    CHECK_EQ(http_parser_execute(&p, rest, strlen(rest), &used), HTTP_PARSE_DONE);
    CHECK(strcmp(http_msg_path(&p.msg), "/three") == 0);
}

TEST(http_parser_head_limit)
{
    static struct http_parser p;
    static char req[4096];
    struct http_limits lim = {.max_head_bytes = 100, .max_headers = 8, .max_body = 10};
    /* Exactly 100 bytes of head passes; 101 fails with -E2BIG, whole or byte by byte. */
    const char *start = "GET / HTTP/1.1\r\nX: ";
    size_t pad = 100 - strlen(start) - 4;
    snprintf(
        req, sizeof req, "%s%.*s\r\n\r\n", start, (int)pad,
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    CHECK_EQ(strlen(req), 100);
    http_parser_init(&p, HTTP_MSG_REQUEST, &lim, false);
    size_t used;
    CHECK_EQ(http_parser_execute(&p, req, 100, &used), HTTP_PARSE_DONE);
    snprintf(
        req, sizeof req, "%s%.*s\r\n\r\n", start, (int)pad + 1,
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    http_parser_init(&p, HTTP_MSG_REQUEST, &lim, false);
    CHECK_EQ(http_parser_execute(&p, req, strlen(req), &used), -E2BIG);
    CHECK(used <= 100);
    http_parser_init(&p, HTTP_MSG_REQUEST, &lim, false);
    int r = 0;
    for (size_t i = 0; i < strlen(req) && r >= 0; i++)
        r = http_parser_execute(&p, req + i, 1, &used);
    CHECK_EQ(r, -E2BIG);
    /* Sticky. */
    CHECK_EQ(http_parser_execute(&p, "x", 1, &used), -E2BIG);
    CHECK_EQ(used, 0);

    /* An endless header line with no CRLF is cut at the limit, not buffered. */
    http_parser_init(&p, HTTP_MSG_REQUEST, &lim, false);
    memset(req, 'a', sizeof req);
    memcpy(req, "GET / HTTP/1.1\r\nX: ", 19);
    CHECK_EQ(http_parser_execute(&p, req, sizeof req, &used), -E2BIG);

    /* Leading whitespace that llhttp skips without a callback still counts. */
    http_parser_init(&p, HTTP_MSG_REQUEST, &lim, false);
    memset(req, ' ', sizeof req);
    memcpy(req, "GET / HTTP/1.1\r\nX:", 18);
    CHECK_EQ(http_parser_execute(&p, req, sizeof req, &used), -E2BIG);

    /* Ceilings clamp the limits. */
    struct http_limits big = {.max_head_bytes = 1 << 20, .max_headers = 1000, .max_body = 1};
    http_parser_init(&p, HTTP_MSG_REQUEST, &big, false);
    CHECK_EQ(p.limits.max_head_bytes, HTTP_HEAD_BYTES_MAX);
    CHECK_EQ(p.limits.max_headers, HTTP_HEADERS_MAX);
}

TEST(http_parser_header_count_limit)
{
    static struct http_parser p;
    static char req[2048];
    struct http_limits lim = {.max_head_bytes = 2048, .max_headers = 3, .max_body = 0};
    size_t used;
    strcpy(req, "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n");
    http_parser_init(&p, HTTP_MSG_REQUEST, &lim, false);
    CHECK_EQ(http_parser_execute(&p, req, strlen(req), &used), HTTP_PARSE_DONE);
    CHECK_EQ(p.msg.n_headers, 3);
    strcpy(req, "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n");
    http_parser_init(&p, HTTP_MSG_REQUEST, &lim, false);
    CHECK_EQ(http_parser_execute(&p, req, strlen(req), &used), -E2BIG);
}

TEST(http_parser_body_limits)
{
    static struct http_parser p;
    static char small[8];
    struct http_limits lim = {.max_head_bytes = 1024, .max_headers = 16, .max_body = 10};
    size_t used;
    /* Content-Length over the limit fails at the headers, before any body byte arrives. */
    const char *big = "POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n";
    http_parser_init(&p, HTTP_MSG_REQUEST, &lim, false);
    http_parser_set_body_buffer(&p, body_buf, sizeof body_buf);
    CHECK_EQ(http_parser_execute(&p, big, strlen(big), &used), -EMSGSIZE);
    const char *fits = "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789";
    http_parser_init(&p, HTTP_MSG_REQUEST, &lim, false);
    http_parser_set_body_buffer(&p, body_buf, sizeof body_buf);
    CHECK_EQ(http_parser_execute(&p, fits, strlen(fits), &used), HTTP_PARSE_DONE);
    CHECK_EQ(p.msg.body_len, 10);

    /* The lent buffer caps the body too. */
    http_parser_init(&p, HTTP_MSG_REQUEST, &lim, false);
    http_parser_set_body_buffer(&p, small, sizeof small);
    CHECK_EQ(http_parser_execute(&p, fits, strlen(fits), &used), -EMSGSIZE);

    /* Chunked bodies are counted as they are decoded. */
    const char *chunked = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "6\r\nabcdef\r\n5\r\nghijk\r\n0\r\n\r\n";
    http_parser_init(&p, HTTP_MSG_REQUEST, &lim, false);
    http_parser_set_body_buffer(&p, body_buf, sizeof body_buf);
    CHECK_EQ(http_parser_execute(&p, chunked, strlen(chunked), &used), -EMSGSIZE);

    /* No buffer: any body is too big, an empty one is fine. */
    http_parser_init(&p, HTTP_MSG_REQUEST, &lim, false);
    CHECK_EQ(http_parser_execute(&p, fits, strlen(fits), &used), -EMSGSIZE);
    const char *empty = "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    http_parser_init(&p, HTTP_MSG_REQUEST, &lim, false);
    CHECK_EQ(http_parser_execute(&p, empty, strlen(empty), &used), HTTP_PARSE_DONE);
    CHECK(p.msg.body == NULL);
    CHECK_EQ(p.msg.body_len, 0);

    /* A Content-Length beyond 64 bits is malformed. */
    const char *huge = "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n";
    http_parser_init(&p, HTTP_MSG_REQUEST, &lim, false);
    CHECK_EQ(http_parser_execute(&p, huge, strlen(huge), &used), -EPROTO);
}

TEST(http_parser_stop_after_headers)
{
    static struct http_parser p;
    static char lazy[16];
    const char *in = "POST /x HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\nbody"
                     "GET /y HTTP/1.1\r\n\r\n";
    size_t len = strlen(in), off = 0, used;
    http_parser_init(&p, HTTP_MSG_REQUEST, NULL, true);
    CHECK_EQ(http_parser_execute(&p, in, len, &used), HTTP_PARSE_HEADERS);
    off += used;
    CHECK_EQ(off, strlen(in) - strlen("bodyGET /y HTTP/1.1\r\n\r\n"));
    CHECK_EQ(p.msg.content_length, 4);
    CHECK(strcmp(http_msg_header(&p.msg, "expect"), "100-continue") == 0);
    http_parser_set_body_buffer(&p, lazy, p.msg.content_length);
    CHECK_EQ(http_parser_execute(&p, in + off, len - off, &used), HTTP_PARSE_DONE);
    off += used;
    CHECK_EQ(p.msg.body_len, 4);
    CHECK(memcmp(p.msg.body, "body", 4) == 0);
    /* A message without a body stops at its headers too, then completes with no bytes. */
    CHECK_EQ(http_parser_execute(&p, in + off, len - off, &used), HTTP_PARSE_HEADERS);
    off += used;
    CHECK_EQ(off, len);
    CHECK_EQ(http_parser_execute(&p, NULL, 0, &used), HTTP_PARSE_DONE);
    CHECK(strcmp(http_msg_path(&p.msg), "/y") == 0);
    /* With stop_after_headers the limit is checked against max_body, not the unlent buffer. */
    struct http_limits lim = {.max_head_bytes = 1024, .max_headers = 16, .max_body = 3};
    http_parser_init(&p, HTTP_MSG_REQUEST, &lim, true);
    CHECK_EQ(http_parser_execute(&p, in, len, &used), -EMSGSIZE);
}

TEST(http_parser_chunked)
{
    static struct http_parser p;
    static char out[4096];
    const char *in = "POST /c HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"
                     "3\r\nfoo\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n";
    parse_all(HTTP_MSG_REQUEST, in, strlen(in), 0, NULL, out, sizeof out);
    CHECK_MSG(strstr(out, "body=13:foo0123456789]") != NULL, "%s", out);
    CHECK(strstr(out, "ch=1") != NULL);
    size_t used;
    /* A bad chunk size is malformed. */
    const char *bad = "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n";
    http_parser_init(&p, HTTP_MSG_REQUEST, NULL, false);
    http_parser_set_body_buffer(&p, body_buf, sizeof body_buf);
    CHECK_EQ(http_parser_execute(&p, bad, strlen(bad), &used), -EPROTO);
}

TEST(http_parser_malformed)
{
    static struct http_parser p;
    static const char *const bad[] = {
        "GARBAGE\r\n\r\n",
        "GET\r\n\r\n",
        "GET / HTTP/1.1\r\nNo colon\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Name: v\r\n\r\n",
        "GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
        "GET / HTTP/1.1\nHost: a\n\n", /* bare LF */
        "GET /a b HTTP/1.1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\n Folded: x\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length : 0\r\n\r\n",
        "GET / HTTP/1.1\r\nX\x7fY: 0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t used;
        http_parser_init(&p, HTTP_MSG_REQUEST, NULL, false);
        http_parser_set_body_buffer(&p, body_buf, sizeof body_buf);
        int r = http_parser_execute(&p, bad[i], strlen(bad[i]), &used);
        CHECK_MSG(r == -EPROTO, "case %zu: r=%d", i, r);
    }
}

TEST(http_parser_unsupported)
{
    static struct http_parser p;
    static const char *const unsupported[] = {
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        size_t used;
        http_parser_init(&p, HTTP_MSG_REQUEST, NULL, false);
        http_parser_set_body_buffer(&p, body_buf, sizeof body_buf);
        int r = http_parser_execute(&p, unsupported[i], strlen(unsupported[i]), &used);
        CHECK_MSG(r == -ENOTSUP, "case %zu: r=%d", i, r);
    }
}

TEST(http_parser_keep_alive_rules)
{
    static struct http_parser p;
    static const struct {
        const char *req;
        bool keep_alive;
    } cases[] = {
        {"GET / HTTP/1.1\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t used;
        http_parser_init(&p, HTTP_MSG_REQUEST, NULL, false);
        CHECK_EQ(http_parser_execute(&p, cases[i].req, strlen(cases[i].req), &used),
                 HTTP_PARSE_DONE);
        CHECK_MSG(p.msg.keep_alive == cases[i].keep_alive, "case %zu", i);
    }
}

TEST(http_parser_response_101_leaves_frames)
{
    static struct http_parser p;
    const char *resp = "HTTP/1.1 101 Switching Protocols\r\n"
                       "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    static char in[512];
    size_t hlen = strlen(resp);
    memcpy(in, resp, hlen);
    memcpy(in + hlen, "\x81\x05hello\x88\x00", 9);
    size_t len = hlen + 9, used;
    http_parser_init(&p, HTTP_MSG_RESPONSE, NULL, false);
    CHECK_EQ(http_parser_execute(&p, in, len, &used), HTTP_PARSE_DONE);
    CHECK_EQ(used, hlen);
    CHECK_EQ(p.msg.status, 101);
    CHECK(p.msg.upgrade);
    CHECK(strcmp(http_msg_path(&p.msg), "") == 0);
    CHECK(strcmp(http_msg_header(&p.msg, "sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") ==
          0);
    /* Byte by byte the boundary is the same. */
    http_parser_init(&p, HTTP_MSG_RESPONSE, NULL, false);
    size_t off = 0;
    int r = HTTP_PARSE_MORE;
    while (off < len && r == HTTP_PARSE_MORE) {
        r = http_parser_execute(&p, in + off, 1, &used);
        off += used;
    }
    CHECK_EQ(r, HTTP_PARSE_DONE);
    CHECK_EQ(off, hlen);
    /* A 101 without the upgrade headers still ends at its blank line. */
    const char *bare = "HTTP/1.1 101 Switching Protocols\r\n\r\nXYZ";
    http_parser_init(&p, HTTP_MSG_RESPONSE, NULL, false);
    CHECK_EQ(http_parser_execute(&p, bare, strlen(bare), &used), HTTP_PARSE_DONE);
    CHECK_EQ(used, strlen(bare) - 3);
    CHECK(!p.msg.upgrade);
}

TEST(http_parser_response_until_eof)
{
    static struct http_parser p;
    size_t used;
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome body";
    http_parser_init(&p, HTTP_MSG_RESPONSE, NULL, false);
    http_parser_set_body_buffer(&p, body_buf, sizeof body_buf);
    CHECK_EQ(http_parser_execute(&p, resp, strlen(resp), &used), HTTP_PARSE_MORE);
    CHECK_EQ(http_parser_finish(&p), HTTP_PARSE_DONE);
    CHECK_EQ(p.msg.body_len, 9);
    CHECK(!p.msg.keep_alive);
    /* EOF inside a Content-Length body cuts the message. */
    const char *cut = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    http_parser_init(&p, HTTP_MSG_RESPONSE, NULL, false);
    http_parser_set_body_buffer(&p, body_buf, sizeof body_buf);
    CHECK_EQ(http_parser_execute(&p, cut, strlen(cut), &used), HTTP_PARSE_MORE);
    CHECK_EQ(http_parser_finish(&p), -EPROTO);
    /* EOF before anything is a clean close; so is EOF right after a complete message. */
    http_parser_init(&p, HTTP_MSG_RESPONSE, NULL, false);
    CHECK_EQ(http_parser_finish(&p), -ENODATA);
    http_parser_init(&p, HTTP_MSG_REQUEST, NULL, false);
    CHECK_EQ(http_parser_execute(&p, "GET / HTTP/1.1\r\n\r\n", 18, &used), HTTP_PARSE_DONE);
    CHECK_EQ(http_parser_finish(&p), -ENODATA);
    /* EOF in the middle of a request's headers. */
    http_parser_init(&p, HTTP_MSG_REQUEST, NULL, false);
    CHECK_EQ(http_parser_execute(&p, "GET / HT", 8, &used), HTTP_PARSE_MORE);
    CHECK_EQ(http_parser_finish(&p), -EPROTO);
}

TEST(http_parser_methods)
{
    static struct http_parser p;
    static const struct {
        const char *req;
        enum http_method m;
    } cases[] = {
        {"HEAD / HTTP/1.1\r\n\r\n", HTTP_METHOD_HEAD},
        {"DELETE / HTTP/1.1\r\n\r\n", HTTP_METHOD_DELETE},
        {"OPTIONS * HTTP/1.1\r\n\r\n", HTTP_METHOD_OPTIONS},
        {"PROPFIND / HTTP/1.1\r\n\r\n", HTTP_METHOD_OTHER},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t used;
        http_parser_init(&p, HTTP_MSG_REQUEST, NULL, false);
        CHECK_EQ(http_parser_execute(&p, cases[i].req, strlen(cases[i].req), &used),
                 HTTP_PARSE_DONE);
        CHECK_EQ(p.msg.method, cases[i].m);
    }
    CHECK(strcmp(http_method_name(HTTP_METHOD_PATCH), "PATCH") == 0);
    CHECK(strcmp(http_method_name((enum http_method)99), "OTHER") == 0);
}

TEST(http_parser_response_without_body)
{
    static struct http_parser p;
    size_t used;
    /* 204 and 304 end at their blank line whatever they announce; the connection stays usable */
    const char *r204 = "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n";
    const char *r304 = "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n";
    const char *next = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    static char in[512];
    snprintf(in, sizeof in, "%s%s%s", r204, r304, next);
    size_t len = strlen(in), off = 0;
    http_parser_init(&p, HTTP_MSG_RESPONSE, NULL, false);
    http_parser_set_body_buffer(&p, body_buf, sizeof body_buf);
    CHECK_EQ(http_parser_execute(&p, in, len, &used), HTTP_PARSE_DONE);
    CHECK_EQ(used, strlen(r204));
    CHECK_EQ(p.msg.status, 204);
    CHECK_EQ(p.msg.body_len, 0);
    CHECK(p.msg.keep_alive);
    off += used;
    CHECK_EQ(http_parser_execute(&p, in + off, len - off, &used), HTTP_PARSE_DONE);
    CHECK_EQ(used, strlen(r304));
    CHECK_EQ(p.msg.status, 304);
    CHECK(p.msg.keep_alive);
    off += used;
    CHECK_EQ(http_parser_execute(&p, in + off, len - off, &used), HTTP_PARSE_DONE);
    CHECK_EQ(p.msg.body_len, 2);
    /* Answers to HEAD: no body, for every message until changed, and no size check */
    const char *head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    struct http_limits lim = {.max_head_bytes = 1024, .max_headers = 16, .max_body = 3};
    http_parser_init(&p, HTTP_MSG_RESPONSE, &lim, true);
    http_parser_set_head_response(&p, true);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(http_parser_execute(&p, head, strlen(head), &used), HTTP_PARSE_HEADERS);
        CHECK_EQ(used, strlen(head));
        CHECK_EQ(http_parser_execute(&p, NULL, 0, &used), HTTP_PARSE_DONE);
        CHECK_EQ(p.msg.body_len, 0);
        CHECK(p.msg.keep_alive);
    }
    http_parser_set_head_response(&p, false);
    CHECK_EQ(http_parser_execute(&p, head, strlen(head), &used), -EMSGSIZE);
    /* interim 1xx responses are messages of their own, without a body */
    const char *cont = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
    http_parser_init(&p, HTTP_MSG_RESPONSE, NULL, false);
    http_parser_set_body_buffer(&p, body_buf, sizeof body_buf);
    CHECK_EQ(http_parser_execute(&p, cont, strlen(cont), &used), HTTP_PARSE_DONE);
    CHECK_EQ(p.msg.status, 100);
    off = used;
    CHECK_EQ(http_parser_execute(&p, cont + off, strlen(cont) - off, &used), HTTP_PARSE_DONE);
    CHECK_EQ(p.msg.status, 200);
    CHECK_EQ(p.msg.body_len, 1);
    /* the same answers byte by byte */
    check_split_independent(HTTP_MSG_RESPONSE, in, len);
}
