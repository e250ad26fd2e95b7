/* Router: pattern validation, literal and {param} matching with percent-decoding, 404 vs 405
 * with the Allow list, HEAD served by GET routes, the most literal route winning. */
#include "worker/http_router.h"

#include <errno.h>
#include <string.h>

#include "tests/unit/testing.h"

static struct http_router router;
static struct http_parser parser;
static struct http_request req;

static int h_a(struct http_request *q, struct http_response *r, void *arg)
{
    (void)q, (void)r, (void)arg;
    return 0;
}

static int h_b(struct http_request *q, struct http_response *r, void *arg)
{
    (void)q, (void)r, (void)arg;
    return 0;
}

static void on_up(int fd, const struct http_msg *m, const char *l, size_t n, void *arg)
{
    (void)fd, (void)m, (void)l, (void)n, (void)arg;
}

static int add(enum http_method m, const char *pattern, http_handler_fn *h)
{
    struct http_route r = {.method = m, .pattern = pattern, .handler = h};
    return http_router_add(&router, &r);
}

/* Parses "METHOD target" into req and matches it. */
static int match(const char *method, const char *target, const struct http_route **route,
                 char *allow, size_t cap)
{
    char line[2048];
    snprintf(line, sizeof line, "%s %s HTTP/1.1\r\n\r\n", method, target);
    http_parser_init(&parser, HTTP_MSG_REQUEST, NULL, false);
    size_t used;
    CHECK_EQ(http_parser_execute(&parser, line, strlen(line), &used), HTTP_PARSE_DONE);
    memset(&req, 0, sizeof req);
    req.msg = &parser.msg;
    return http_router_match(&router, &req, route, allow, cap);
}

TEST(http_router_add_validates)
{
    http_router_init(&router);
    CHECK_EQ(add(HTTP_METHOD_GET, "/healthz", h_a), 0);
    CHECK_EQ(add(HTTP_METHOD_GET, "/healthz", h_b), -EEXIST);
    CHECK_EQ(add(HTTP_METHOD_POST, "/healthz", h_b), 0);
    static const char *const bad[] = {"healthz",
                                      "",
                                      "/{}",
                                      "/{a",
                                      "/a}",
                                      "/x{a}",
                                      "/{a}b",
                                      "/{a{b}}",
                                      "/1/2/3/4/5/6/7/8/9",
                                      "/{a}/{b}/{c}/{d}/{e}",
                                      "/{aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(add(HTTP_METHOD_GET, bad[i], h_a) == -EINVAL, "%s", bad[i]);
    CHECK_EQ(add(HTTP_METHOD_GET, NULL, h_a), -EINVAL);
    CHECK_EQ(add(HTTP_METHOD_GET, "/nohandler", NULL), -EINVAL);
    CHECK_EQ(add(HTTP_METHOD_HEAD, "/head", h_a), -EINVAL); /* GET routes serve HEAD */
    CHECK_EQ(add(HTTP_METHOD_OTHER, "/other", h_a), -EINVAL);
    CHECK_EQ(add(HTTP_METHOD_GET, "/1/2/3/4/5/6/7/8", h_a), 0);
    static char patterns[HTTP_ROUTES_MAX][16];
    int added = 0;
    for (int i = 0; i < HTTP_ROUTES_MAX; i++) {
        snprintf(patterns[i], sizeof patterns[i], "/r%d", i);
        if (add(HTTP_METHOD_GET, patterns[i], h_a) != 0)
            break;
        added++;
    }
    CHECK_EQ(added, HTTP_ROUTES_MAX - 3);
    CHECK_EQ(add(HTTP_METHOD_GET, "/full", h_a), -ENOSPC);
}

TEST(http_router_matches_params)
{
    http_router_init(&router);
    CHECK_EQ(add(HTTP_METHOD_POST, "/api/voice-calls/{id}/hangup", h_a), 0);
    CHECK_EQ(add(HTTP_METHOD_GET, "/a/{x}/b/{y}", h_b), 0);
    CHECK_EQ(add(HTTP_METHOD_GET, "/", h_b), 0);
    const struct http_route *route;
    char allow[64];
    CHECK_EQ(match("POST", "/api/voice-calls/CA123/hangup?force=1", &route, allow, sizeof allow),
             0);
    CHECK(route->handler == h_a);
    CHECK_EQ(req.n_params, 1);
    CHECK(strcmp(http_request_param(&req, "id"), "CA123") == 0);
    CHECK(http_request_param(&req, "nope") == NULL);
    CHECK_EQ(match("GET", "/a/one%20two/b/%41%2f%e2%82%ac", &route, allow, sizeof allow), 0);
    CHECK(route->handler == h_b);
    CHECK(strcmp(http_request_param(&req, "x"), "one two") == 0);
    CHECK(strcmp(http_request_param(&req, "y"), "A/\xe2\x82\xac") == 0);
    CHECK_EQ(match("GET", "/", &route, allow, sizeof allow), 0);
    /* An empty segment is not a parameter; a trailing slash is another path. */
    CHECK_EQ(match("POST", "/api/voice-calls//hangup", &route, allow, sizeof allow), 404);
    CHECK_EQ(match("POST", "/api/voice-calls/CA1/hangup/", &route, allow, sizeof allow), 404);
    CHECK_EQ(match("POST", "/api/voice-calls/CA1", &route, allow, sizeof allow), 404);
    CHECK_EQ(match("GET", "/1/2/3/4/5/6/7/8/9/10", &route, allow, sizeof allow), 404);
    CHECK_EQ(match("OPTIONS", "*", &route, allow, sizeof allow), 404);
    CHECK_EQ(match("GET", "http://h/a/x/b/y", &route, allow, sizeof allow), 404);
    /* Bad escapes, NUL and oversized values in a parameter are the client's error. */
    CHECK_EQ(match("GET", "/a/%zz/b/y", &route, allow, sizeof allow), 400);
    CHECK_EQ(match("GET", "/a/%00/b/y", &route, allow, sizeof allow), 400);
    CHECK_EQ(match("GET", "/a/x%2/b/y", &route, allow, sizeof allow), 400);
    static char longpath[1200];
    strcpy(longpath, "/a/");
    memset(longpath + 3, 'q', 600);
    strcpy(longpath + 603, "/b/y");
    CHECK_EQ(match("GET", longpath, &route, allow, sizeof allow), 400);
    CHECK(route == NULL);
}

TEST(http_router_405_allow_and_head)
{
    http_router_init(&router);
    CHECK_EQ(add(HTTP_METHOD_GET, "/calls/{id}", h_a), 0);
    CHECK_EQ(add(HTTP_METHOD_DELETE, "/calls/{id}", h_b), 0);
    CHECK_EQ(add(HTTP_METHOD_POST, "/calls/realtime", h_b), 0);
    const struct http_route *route;
    char allow[64];
    CHECK_EQ(match("PUT", "/calls/CA1", &route, allow, sizeof allow), 405);
    CHECK(strcmp(allow, "GET, HEAD, DELETE") == 0);
    CHECK_EQ(match("HEAD", "/calls/CA1", &route, allow, sizeof allow), 0);
    CHECK(route->handler == h_a);
    /* /calls/realtime: POST is the literal route, GET falls to {id}. */
    CHECK_EQ(match("POST", "/calls/realtime", &route, allow, sizeof allow), 0);
    CHECK(route->handler == h_b);
    CHECK_EQ(match("GET", "/calls/realtime", &route, allow, sizeof allow), 0);
    CHECK(route->handler == h_a);
    CHECK_EQ(match("PATCH", "/calls/realtime", &route, allow, sizeof allow), 405);
    CHECK(strcmp(allow, "GET, HEAD, POST, DELETE") == 0);
    /* A short Allow buffer is cut at a whole method, never overrun. */
    char small[12];
    CHECK_EQ(match("PATCH", "/calls/realtime", &route, small, sizeof small), 405);
    CHECK(strcmp(small, "GET, HEAD") == 0);
}

TEST(http_router_most_literal_wins)
{
    http_router_init(&router);
    CHECK_EQ(add(HTTP_METHOD_GET, "/api/voice-calls/{id}", h_a), 0);
    struct http_route ws = {.pattern = "/api/voice-calls/media-stream", .upgrade = on_up};
    CHECK_EQ(http_router_add(&router, &ws), 0);
    const struct http_route *route;
    char allow[64];
    CHECK_EQ(match("GET", "/api/voice-calls/media-stream", &route, allow, sizeof allow), 0);
    CHECK(route->upgrade == on_up);
    CHECK_EQ(req.n_params, 0);
    CHECK_EQ(match("GET", "/api/voice-calls/CA9", &route, allow, sizeof allow), 0);
    CHECK(route->handler == h_a);
    /* Upgrade routes are GET routes. */
    CHECK_EQ(match("POST", "/api/voice-calls/media-stream", &route, allow, sizeof allow), 405);
    CHECK(strcmp(allow, "GET, HEAD") == 0);
}
