/* worker/api_auth: the Bearer guard with an injected clock: a good token lets the request through
 * with its subject in req->user; no header, another scheme, an empty token, a wrong key, an
 * expired or not-yet-valid token and a server without JWT_SECRET are 401 with a reason; and over
 * a real server the 401 carries the JSON error body and WWW-Authenticate. */
#include "worker/api_auth.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "tests/lib/http_harness.h"
#include "tests/unit/testing.h"

/* {"sub":"user-42","iat":1700000000,"nbf":1700000000,"exp":1700003600}, key "test-secret" */
#define GOOD                                                                                   \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTQyIiwiaWF0IjoxNzAwMDAwMDAwLCJuYmYi" \
    "OjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMzYwMH0.xyfNXEhQcjlrCD1y00Xt7c1-hlJbjK81fF7w0V51xeo"

static int64_t clock_s = 1700001000;
static int64_t now(void)
{
    return clock_s;
}

static struct api_auth auth = {.secret = "test-secret", .secret_len = 11, .leeway_s = 30,
                               .require_exp = true, .now = now};

static struct http_parser parser;
static struct http_request req;

static int check(const char *authorization, const struct api_auth *a)
{
    static char raw[8192];
    snprintf(raw, sizeof raw, "POST /api/voice-calls/realtime HTTP/1.1\r\nHost: h\r\n%s%s%s\r\n",
             authorization ? "Authorization: " : "", authorization ? authorization : "",
             authorization ? "\r\n" : "");
    http_parser_init(&parser, HTTP_MSG_REQUEST, NULL, false);
    size_t used;
    CHECK_EQ(http_parser_execute(&parser, raw, strlen(raw), &used), HTTP_PARSE_DONE);
    memset(&req, 0, sizeof req);
    req.msg = &parser.msg;
    int st = api_auth_guard(&req, (void *)a);
    CHECK((st == 0) == (req.refusal == NULL));
    return st;
}

TEST(api_auth_good_token)
{
    CHECK_EQ(check("Bearer " GOOD, &auth), 0);
    CHECK(strcmp(req.user, "user-42") == 0);
    CHECK_EQ(check("bearer   " GOOD "  ", &auth), 0); /* scheme case-insensitive, spaces */
}

TEST(api_auth_refusals)
{
    CHECK_EQ(check(NULL, &auth), 401);
    CHECK(strstr(req.refusal, "missing") != NULL);
    CHECK_EQ(check("Basic dXNlcjpwYXNz", &auth), 401);
    CHECK(strstr(req.refusal, "Bearer") != NULL);
    CHECK_EQ(check("Bearer", &auth), 401);
    CHECK_EQ(check("Bearer    ", &auth), 401);
    CHECK_EQ(check("Bearer abc.def.ghi", &auth), 401);
    CHECK_EQ(req.user[0], '\0');
    struct api_auth other = auth;
    other.secret = "other-secret";
    other.secret_len = 12;
    CHECK_EQ(check("Bearer " GOOD, &other), 401);
    CHECK(strcmp(req.refusal, "token signature does not match") == 0);
    clock_s = 1700003630;
    CHECK_EQ(check("Bearer " GOOD, &auth), 401);
    CHECK(strcmp(req.refusal, "token has expired") == 0);
    clock_s = 1699999969;
    CHECK_EQ(check("Bearer " GOOD, &auth), 401);
    CHECK(strcmp(req.refusal, "token is not valid yet") == 0);
    clock_s = 1700001000;
    struct api_auth none = auth;
    none.secret = NULL;
    CHECK_EQ(check("Bearer " GOOD, &none), 401);
    CHECK(strstr(req.refusal, "JWT_SECRET") != NULL);
    /* {"sub":"a"}: no exp */
    CHECK_EQ(check("Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhIn0.F7GEa7g2SvX3URBz"
                   "07MsuqeMykuMO_0rgKf6MVRyE_o",
                   &auth),
             401);
    CHECK(strcmp(req.refusal, "token has no exp") == 0);
}

static int ok_handler(struct http_request *r, struct http_response *res, void *arg)
{
    (void)arg;
    char body[256];
    int n = snprintf(body, sizeof body, "{\"user\":\"%s\"}", r->user);
    return http_response_body(res, "application/json", body, (size_t)n);
}

TEST(api_auth_over_http)
{
    log_max_level = LOG_ERROR;
    static struct http_router router;
    static struct http_harness h;
    static struct http_harness_reader rd;
    http_router_init(&router);
    CHECK_EQ(http_router_add(&router, &(struct http_route){.method = HTTP_METHOD_GET,
                                                           .pattern = "/api/me",
                                                           .handler = ok_handler,
                                                           .guard = api_auth_guard,
                                                           .guard_arg = &auth}),
             0);
    struct http_server_settings s;
    http_server_settings_default(&s);
    s.router = &router;
    s.linger_ms = 200;
    CHECK_EQ(http_harness_init(&h, &s, true), 0);
    CHECK_EQ(http_harness_run(&h), 0);
    int fd = http_harness_connect(h.port);
    CHECK_EQ(http_harness_send_str(fd, "GET /api/me HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
    http_harness_reader_init(&rd, fd);
    CHECK_EQ(http_harness_read_response(&rd), HTTP_PARSE_DONE);
    const struct http_msg *m = &rd.parser.msg;
    CHECK_EQ(m->status, 401);
    static const char want[] = "{\"success\":false,\"error\":{\"code\":\"unauthorized\","
                               "\"message\":\"missing Authorization: Bearer token\"}}";
    CHECK(m->body_len == sizeof want - 1 && memcmp(m->body, want, m->body_len) == 0);
    const char *www = http_msg_header(m, "www-authenticate");
    CHECK(www != NULL && strcmp(www, "Bearer") == 0);
    /* the same connection, now with a token */
    CHECK_EQ(http_harness_send_str(fd, "GET /api/me HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer "
                                       GOOD "\r\nConnection: close\r\n\r\n"),
             0);
    CHECK_EQ(http_harness_read_response(&rd), HTTP_PARSE_DONE);
    CHECK_EQ(m->status, 200);
    CHECK(m->body_len == 18 && memcmp(m->body, "{\"user\":\"user-42\"}", 18) == 0);
    close(fd);
    CHECK_EQ(http_harness_stop(&h), 0);
}
