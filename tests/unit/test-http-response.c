/* Response builder: the wire head (status line, Date, Server, Content-Type, Content-Length,
 * Connection), header validation against injection, the body limit, JSON error escaping. */
#include "worker/http_response.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/testing.h"

static struct http_response res;

static const char *head(bool keep_alive_10)
{
    CHECK_EQ(http_response_serialize(&res, keep_alive_10), 0);
    CHECK_EQ(strlen(res.head), res.head_len);
    return res.head;
}

TEST(http_response_head)
{
    http_response_init(&res, 1024);
    CHECK_EQ(http_response_body(&res, "application/json", "{}", 2), 0);
    CHECK_EQ(http_response_header(&res, "X-Request-Id", "abc"), 0);
    const char *h = head(false);
    CHECK(strncmp(h, "HTTP/1.1 200 OK\r\nDate: ", 23) == 0);
    CHECK(strstr(h, " GMT\r\nServer: voicebridge\r\nContent-Type: application/json\r\n"
                    "Content-Length: 2\r\nX-Request-Id: abc\r\n\r\n") != NULL);
    CHECK(strstr(h, "Connection") == NULL);
    res.close = true;
    CHECK(strstr(head(false), "Content-Length: 2\r\nConnection: close\r\n") != NULL);
    res.close = false;
    CHECK(strstr(head(true), "Connection: keep-alive\r\n") != NULL);
    /* 204 has neither body nor Content-Length. */
    CHECK_EQ(http_response_status(&res, 204), 0);
    CHECK(strstr(head(false), "Content-Length") == NULL);
    CHECK_EQ(res.body_len, 0);
    CHECK_EQ(http_response_status(&res, 99), -EINVAL);
    CHECK_EQ(http_response_status(&res, 600), -EINVAL);
    CHECK_EQ(res.err, -EINVAL);
    http_response_reset(&res);
    CHECK_EQ(res.err, 0);
    CHECK_EQ(res.status, 200);
    CHECK(strstr(head(false), "Content-Length: 0\r\n") != NULL);
    CHECK(strstr(res.head, "Content-Type") == NULL);
    http_response_free(&res);
}

TEST(http_response_header_validation)
{
    http_response_init(&res, 1024);
    CHECK_EQ(http_response_header(&res, "X-Evil", "a\r\nSet-Cookie: x"), -EINVAL);
    CHECK_EQ(http_response_header(&res, "X-Evil", "a\nb"), -EINVAL);
    CHECK_EQ(http_response_header(&res, "X Evil", "v"), -EINVAL);
    CHECK_EQ(http_response_header(&res, "X:Evil", "v"), -EINVAL);
    CHECK_EQ(http_response_header(&res, "", "v"), -EINVAL);
    CHECK_EQ(http_response_header(&res, "Content-Length", "5"), -EINVAL);
    CHECK_EQ(http_response_header(&res, "connection", "close"), -EINVAL);
    CHECK_EQ(http_response_body(&res, "text/plain\r\nX: y", "", 0), -EINVAL);
    CHECK_EQ(res.extra_len, 0);
    static char value[HTTP_RESPONSE_EXTRA_MAX];
    memset(value, 'v', 600);
    CHECK_EQ(http_response_header(&res, "X-A", value), 0);
    CHECK_EQ(http_response_header(&res, "X-B", value), -ENOSPC);
    CHECK_EQ(strlen(res.extra), res.extra_len);
    CHECK(strstr(head(false), "X-A: vvv") != NULL);
    CHECK(strstr(res.head, "X-B") == NULL);
    http_response_free(&res);
}

TEST(http_response_body_limit)
{
    http_response_init(&res, 5000);
    static char data[3000];
    memset(data, 'd', sizeof data);
    CHECK_EQ(http_response_append(&res, data, 3000), 0);
    CHECK_EQ(http_response_append(&res, data, 2000), 0);
    CHECK_EQ(http_response_append(&res, data, 1), -ENOBUFS);
    CHECK_EQ(res.err, -ENOBUFS);
    CHECK_EQ(res.body_len, 5000);
    CHECK(res.body_cap <= 5000);
    http_response_free(&res);
    /* Reset keeps a small buffer and frees a big one. */
    http_response_init(&res, 1 << 20);
    CHECK_EQ(http_response_append(&res, data, 100), 0);
    char *kept = res.body;
    http_response_reset(&res);
    CHECK(res.body == kept);
    static char big[40000];
    CHECK_EQ(http_response_append(&res, big, sizeof big), 0);
    http_response_reset(&res);
    CHECK(res.body == NULL);
    http_response_free(&res);
}

TEST(http_response_json_error_escapes)
{
    http_response_init(&res, 4096);
    CHECK_EQ(http_response_json_error(&res, 400, "bad_field", "say \"hi\"\\\n\x01"), 0);
    CHECK_EQ(res.status, 400);
    CHECK(strcmp(res.content_type, "application/json") == 0);
    const char *want = "{\"success\":false,\"error\":{\"code\":\"bad_field\","
                       "\"message\":\"say \\\"hi\\\"\\\\\\u000a\\u0001\"}}";
    CHECK_EQ(res.body_len, strlen(want));
    CHECK(memcmp(res.body, want, res.body_len) == 0);
    CHECK(strcmp(http_status_text(431), "Request Header Fields Too Large") == 0);
    CHECK(strcmp(http_status_text(299), "Unknown") == 0);
    http_response_free(&res);
}
