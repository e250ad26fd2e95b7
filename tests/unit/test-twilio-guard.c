/* worker/twilio_guard: the voice webhooks over a real server with the real guard (signatures made
 * by twilio-python's RequestValidator, token "12345", public URL https://voice.example.com):
 * signed requests answered with TwiML carrying a valid stream token, unsigned and wrongly signed
 * ones refused 403 with a JSON message; and the guard on its own for the upgrade (wss:// URL,
 * trailing slash), the JSON-body variant, the query kept in the URL, the switch, and init. */
#include "worker/twilio_guard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "tests/lib/http_harness.h"
#include "tests/unit/testing.h"
#include "worker/http_endpoints.h"
#include "worker/stream_token.h"
#include "worker/twiml.h"

#define PUBLIC "https://voice.example.com"
#define FORM "application/x-www-form-urlencoded"

static struct twilio_guard guard = {.enabled = true, .public_url = PUBLIC, .token = "12345",
                                    .token_len = 5, .max_fields = 64};

/* ---- over a real server ------------------------------------------------------------------- */

static struct http_router router;
static struct http_harness harness;
static struct http_harness_reader reader;
static struct http_endpoints endpoints;
static struct stream_token_key key;
static volatile int upgrades; /* set on the loop thread, read after a response */

static void on_upgrade(int fd, const struct http_msg *m, const char *left, size_t n, void *arg)
{
    (void)m, (void)left, (void)n, (void)arg;
    upgrades++;
    static const char resp[] = "HTTP/1.1 418 Upgraded Here\r\nContent-Length: 0\r\n\r\n";
    ssize_t w = write(fd, resp, sizeof resp - 1);
    (void)w;
    close(fd);
}

static void start(void)
{
    log_max_level = LOG_ERROR;
    CHECK_EQ(stream_token_key_derive(&key, "12345", 5), 0);
    endpoints = (struct http_endpoints){.public_url = PUBLIC,
                                        .twilio_guard = twilio_guard_check,
                                        .twilio_guard_arg = &guard,
                                        .stream_key = &key,
                                        .stream_token_ttl_s = 300};
    http_router_init(&router);
    CHECK_EQ(http_endpoints_register(&router, &endpoints), 0);
    CHECK_EQ(http_router_add(&router, &(struct http_route){.pattern = TWIML_MEDIA_STREAM_PATH,
                                                           .upgrade = on_upgrade,
                                                           .guard = twilio_guard_check,
                                                           .guard_arg = &guard}),
             0);
    struct http_server_settings s;
    http_server_settings_default(&s);
    s.router = &router;
    s.linger_ms = 200;
    CHECK_EQ(http_harness_init(&harness, &s, true), 0);
    CHECK_EQ(http_harness_run(&harness), 0);
}

static const struct http_msg *post(const char *path, const char *sig, const char *body)
{
    static char req[8192];
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " FORM "\r\n%s%s%s"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     path, sig ? "X-Twilio-Signature: " : "", sig ? sig : "", sig ? "\r\n" : "",
                     strlen(body), body);
    CHECK(n > 0 && (size_t)n < sizeof req);
    CHECK_EQ(http_harness_exchange(harness.port, req, (size_t)n, &reader), HTTP_PARSE_DONE);
    return &reader.parser.msg;
}

static bool body_has(const struct http_msg *m, const char *s)
{
    return m->body != NULL && memmem(m->body, m->body_len, s, strlen(s)) != NULL;
}

/* The streamToken Parameter's value in a TwiML answer, into out. */
static bool token_of(const struct http_msg *m, char *out, size_t cap)
{
    static const char at[] = "<Parameter name=\"streamToken\" value=\"";
    const char *p = memmem(m->body, m->body_len, at, sizeof at - 1);
    if (p == NULL)
        return false;
    p += sizeof at - 1;
    size_t n = strcspn(p, "\"");
    if (n >= cap)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

TEST(twilio_guard_webhooks_over_http)
{
    start();
    static const char body[] = "CallSid=CA123&From=%2B15005550006&To=%2B15005550001";
    const struct http_msg *m = post("/twilio/voice", "qaW4bJ0jxMCWABlNpsfwg+2U/Hg=", body);
    CHECK_EQ(m->status, 200);
    char tok[STREAM_TOKEN_MAX];
    CHECK(token_of(m, tok, sizeof tok));
    CHECK_EQ(stream_token_check(&key, "CA123", tok, (int64_t)time(NULL)), 0);
    CHECK_EQ(stream_token_check(&key, "CA124", tok, (int64_t)time(NULL)), -EACCES);
    CHECK_EQ(stream_token_check(&key, "CA123", tok, (int64_t)time(NULL) + 301), -EKEYEXPIRED);

    m = post("/twilio/voice", NULL, body);
    CHECK_EQ(m->status, 403);
    CHECK(body_has(m, "{\"success\":false,\"error\":{\"code\":\"forbidden\",\"message\":"
                      "\"missing X-Twilio-Signature\"}}"));
    m = post("/twilio/voice", "qaW4bJ0jxMCWABlNpsfwg+2U/Hg=", "CallSid=CA124&From=%2B15005550006"
                                                              "&To=%2B15005550001");
    CHECK_EQ(m->status, 403);
    CHECK(body_has(m, "X-Twilio-Signature does not match"));
    CHECK(!body_has(m, "<Response>"));

    /* the outbound webhook, its query kept in the signed URL */
    m = post("/webhook/realtime/incoming/call-7?x=1", "R6p4fG1zfQe136dg9v2HOHQ6CmU=",
             "CallSid=CA9");
    CHECK_EQ(m->status, 200);
    CHECK(token_of(m, tok, sizeof tok));
    CHECK_EQ(stream_token_check(&key, "call-7", tok, (int64_t)time(NULL)), 0);
    m = post("/webhook/realtime/incoming/call-7", "R6p4fG1zfQe136dg9v2HOHQ6CmU=", "CallSid=CA9");
    CHECK_EQ(m->status, 403);
    /* stream-ended, empty body */
    m = post("/webhook/realtime/stream-ended/call-7", "8Jlh9t8/66i8dQWtpBetFMdcnOM=", "");
    CHECK_EQ(m->status, 200);
    m = post("/webhook/realtime/stream-ended/call-8", "8Jlh9t8/66i8dQWtpBetFMdcnOM=", "");
    CHECK_EQ(m->status, 403);
    /* the upgrade: refused before the receiver sees it, or handed over when signed */
    static const char *const ups[] = {
        "GET " TWIML_MEDIA_STREAM_PATH " HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Twilio-Signature: "
        "RSOYDt4T1cUTdK1PDd93/VVr8B8=\r\n\r\n",
        "GET " TWIML_MEDIA_STREAM_PATH " HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Twilio-Signature: "
        "+5QnWDmVGma10+ngzlTMNkLLcQA=\r\n\r\n",
    };
    for (int i = 0; i < 2; i++) {
        int ufd = http_harness_connect(harness.port);
        CHECK_EQ(http_harness_send_str(ufd, ups[i]), 0);
        http_harness_reader_init(&reader, ufd);
        CHECK_EQ(http_harness_read_response(&reader), HTTP_PARSE_DONE);
        CHECK_EQ(reader.parser.msg.status, i == 0 ? 403 : 418);
        CHECK_EQ(upgrades, i);
        close(ufd);
    }
    /* /healthz has no guard */
    int fd = http_harness_connect(harness.port);
    CHECK_EQ(http_harness_send_str(fd, "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n"), 0);
    http_harness_reader_init(&reader, fd);
    CHECK_EQ(http_harness_read_response(&reader), HTTP_PARSE_DONE);
    CHECK_EQ(reader.parser.msg.status, 200);
    close(fd);
    CHECK_EQ(http_harness_stop(&harness), 0);
}

/* ---- the guard on its own ----------------------------------------------------------------- */

static struct http_parser parser;
static char body_buf[4096];
static struct http_request req;

static struct http_request *parse(const char *raw)
{
    http_parser_init(&parser, HTTP_MSG_REQUEST, NULL, false);
    http_parser_set_body_buffer(&parser, body_buf, sizeof body_buf);
    size_t used;
    CHECK_EQ(http_parser_execute(&parser, raw, strlen(raw), &used), HTTP_PARSE_DONE);
    memset(&req, 0, sizeof req);
    req.msg = &parser.msg;
    return &req;
}

#define UPGRADE(sig)                                                                           \
    "GET /api/voice-calls/media-stream HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"                   \
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"               \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Twilio-Signature: " sig "\r\n\r\n"

TEST(twilio_guard_upgrade)
{
    /* RequestValidator("12345") over wss://voice.example.com/api/voice-calls/media-stream */
    CHECK_EQ(twilio_guard_check(parse(UPGRADE("+5QnWDmVGma10+ngzlTMNkLLcQA=")), &guard), 0);
    /* ...and over the same URL with a trailing slash */
    CHECK_EQ(twilio_guard_check(parse(UPGRADE("Fhmo9lIAs/5hpVX+97OxWP4+Lv0=")), &guard), 0);
    struct http_request *r = parse(UPGRADE("RSOYDt4T1cUTdK1PDd93/VVr8B8="));
    CHECK_EQ(twilio_guard_check(r, &guard), 403);
    CHECK(strcmp(r->refusal, "X-Twilio-Signature does not match") == 0);
    r = parse("GET /api/voice-calls/media-stream HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\n\r\n");
    CHECK_EQ(twilio_guard_check(r, &guard), 403);
    CHECK(strcmp(r->refusal, "missing X-Twilio-Signature") == 0);
    /* a guard built from an http:// public URL checks ws:// */
    struct twilio_guard g = guard;
    g.public_url = "http://voice.example.com";
    CHECK_EQ(twilio_guard_check(parse(UPGRADE("+5QnWDmVGma10+ngzlTMNkLLcQA=")), &g), 403);
}

TEST(twilio_guard_json_body_and_types)
{
    /* RequestValidator("12345") over https://voice.example.com/hook?bodySHA256=<sha of body> */
    static const char json[] =
        "POST /hook?bodySHA256=85264246de8d570722726062407cde49dc5bb2c2569c179765b178e3ffe30825 "
        "HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 17\r\n"
        "X-Twilio-Signature: ZM84HWsa/H7iy58BAiolVxXIRkc=\r\n\r\n{\"CallSid\":\"CA1\"}";
    CHECK_EQ(twilio_guard_check(parse(json), &guard), 0);
    char changed[sizeof json];
    memcpy(changed, json, sizeof json);
    changed[sizeof json - 4] = '2'; /* CA1 -> CA2 */
    struct http_request *r = parse(changed);
    CHECK_EQ(twilio_guard_check(r, &guard), 403);
    CHECK(strstr(r->refusal, "bodySHA256") != NULL);
    r = parse("POST /hook HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\n"
              "Content-Length: 1\r\nX-Twilio-Signature: ZM84HWsa/H7iy58BAiolVxXIRkc=\r\n\r\nx");
    CHECK_EQ(twilio_guard_check(r, &guard), 403);
    r = parse("POST /hook HTTP/1.1\r\nHost: h\r\nContent-Type: " FORM "\r\n"
              "Content-Length: 3\r\nX-Twilio-Signature: ZM84HWsa/H7iy58BAiolVxXIRkc=\r\n\r\na%G");
    CHECK_EQ(twilio_guard_check(r, &guard), 403);
    CHECK(strcmp(r->refusal, "malformed form body") == 0);
}

TEST(twilio_guard_disabled_and_init)
{
    struct twilio_guard off = {.enabled = false};
    CHECK_EQ(twilio_guard_check(parse("POST /twilio/voice HTTP/1.1\r\nHost: h\r\n\r\n"), &off), 0);

    char path[512];
    snprintf(path, sizeof path, "%s/log", test_tmpdir());
    CHECK_EQ(log_open(path), 0); /* the expected errors go here, and are checked */
    struct config c;
    memset(&c, 0, sizeof c);
    c.twilio.validate_signatures = true;
    c.public_url = "https://v.example";
    struct twilio_guard g;
    CHECK_EQ(twilio_guard_init(&g, &c), -EINVAL); /* no token */
    c.twilio.auth_token = "t0k";
    c.public_url = NULL;
    CHECK_EQ(twilio_guard_init(&g, &c), -EINVAL); /* no public URL */
    c.public_url = "https://v.example";
    CHECK_EQ(twilio_guard_init(&g, &c), 0);
    CHECK(g.enabled && g.token_len == 3);
    c.twilio.validate_signatures = false;
    c.twilio.auth_token = NULL;
    CHECK_EQ(twilio_guard_init(&g, &c), 0);
    CHECK(!g.enabled);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    static char text[8192];
    text[fread(text, 1, sizeof text - 1, f)] = '\0';
    fclose(f);
    CHECK(strstr(text, "TWILIO_AUTH_TOKEN is not set") != NULL);
    CHECK(strstr(text, "public_url (or PUBLIC_BASE_URL) is not set") != NULL);
    CHECK(strstr(text, "validate_signatures is false") != NULL);
    CHECK(strstr(text, "t0k") == NULL);
}
