/* Endpoints over a real server: /healthz, the inbound and outbound voice webhooks (exact TwiML,
 * hostile form values escaped, field checks, media types), the signature seam (a guard that
 * refuses stops the handler; one that reads the form lets it through). */
#include "worker/http_endpoints.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "tests/lib/http_harness.h"
#include "tests/unit/testing.h"

static struct http_router router;
static struct http_harness harness;
static struct http_harness_reader reader;
static struct http_endpoints endpoints;
static int fds_at_start;
static int guard_calls;

static void start(const struct http_endpoints *ep)
{
    log_max_level = LOG_ERROR;
    fds_at_start = http_harness_count_fds();
    endpoints = *ep;
    http_router_init(&router);
    CHECK_EQ(http_endpoints_register(&router, &endpoints), 0);
    struct http_server_settings s;
    http_server_settings_default(&s);
    s.router = &router;
    s.linger_ms = 200;
    CHECK_EQ(http_harness_init(&harness, &s, true), 0);
    CHECK_EQ(http_harness_run(&harness), 0);
}

static void stop(void)
{
    CHECK_EQ(http_harness_stop(&harness), 0);
    CHECK_EQ(http_harness_count_fds(), fds_at_start);
}

/* Sends a request with a form body on a fresh connection and reads the answer. */
static const struct http_msg *post(const char *path, const char *ctype, const char *body)
{
    static char req[8192];
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: voice.example.com\r\n%s%s%s"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     path, ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "",
                     strlen(body), body);
    CHECK(n > 0 && (size_t)n < sizeof req);
    CHECK_EQ(http_harness_exchange(harness.port, req, (size_t)n, &reader), HTTP_PARSE_DONE);
    return &reader.parser.msg;
}

static bool body_is(const struct http_msg *m, const char *want)
{
    return m->body_len == strlen(want) && memcmp(m->body, want, m->body_len) == 0;
}

static bool body_has(const struct http_msg *m, const char *s)
{
    return m->body != NULL && memmem(m->body, m->body_len, s, strlen(s)) != NULL;
}

#define FORM "application/x-www-form-urlencoded"

TEST(http_endpoints_healthz)
{
    start(&(struct http_endpoints){.public_url = "https://voice.example.com"});
    int fd = http_harness_connect(harness.port);
    CHECK(fd >= 0);
    http_harness_reader_init(&reader, fd);
    CHECK_EQ(http_harness_send_str(fd, "GET /healthz HTTP/1.1\r\n\r\n"), 0);
    CHECK_EQ(http_harness_read_response(&reader), HTTP_PARSE_DONE);
    CHECK_EQ(reader.parser.msg.status, 200);
    CHECK(body_is(&reader.parser.msg, "{\"status\":\"ok\"}"));
    close(fd);
    stop();
}

TEST(http_endpoints_inbound_twiml)
{
    start(&(struct http_endpoints){.public_url = "https://voice.example.com/vb/",
                                   .business_name = "Acme & Sons"});
    const struct http_msg *m =
        post("/twilio/voice", FORM "; charset=utf-8",
             "AccountSid=AC1&CallSid=CA0123456789abcdef&From=%22%3E%3Cscript%3Ealert(1)%3C%2F"
             "script%3E&To=%2B15551230000&CallerName=O%27Brien+%3Cx%3E&Direction=inbound");
    CHECK_EQ(m->status, 200);
    CHECK(strcmp(http_msg_header(m, "content-type"), "text/xml") == 0);
    const char *want =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Connect action=\"https://voice.example.com/vb/webhook/realtime/stream-ended/CA0123456789abcdef\">"
        "<Stream url=\"wss://voice.example.com/vb/api/voice-calls/media-stream\">"
        "<Parameter name=\"callId\" value=\"CA0123456789abcdef\"/>"
        "<Parameter name=\"direction\" value=\"inbound\"/>"
        "<Parameter name=\"from\" value=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\"/>"
        "<Parameter name=\"to\" value=\"+15551230000\"/>"
        "<Parameter name=\"contactName\" value=\"O&apos;Brien &lt;x&gt;\"/>"
        "<Parameter name=\"businessName\" value=\"Acme &amp; Sons\"/>"
        "</Stream></Connect></Response>";
    CHECK_MSG(body_is(m, want), "got %.*s", (int)m->body_len, m->body);
    stop();
}

TEST(http_endpoints_outbound_twiml)
{
    start(&(struct http_endpoints){.public_url = "http://127.0.0.1:8080"});
    const struct http_msg *m = post("/webhook/realtime/incoming/call-42_x", FORM,
                                    "CallSid=CAfff&From=%2B15550001111&To=%2B15552223333");
    CHECK_EQ(m->status, 200);
    const char *want = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Connect action=\"http://127.0.0.1:8080/webhook/realtime/stream-ended/call-42_x\">"
                       "<Stream url=\"ws://127.0.0.1:8080/api/voice-calls/media-stream\">"
                       "<Parameter name=\"callId\" value=\"call-42_x\"/>"
                       "<Parameter name=\"direction\" value=\"outbound\"/>"
                       "<Parameter name=\"from\" value=\"+15550001111\"/>"
                       "<Parameter name=\"to\" value=\"+15552223333\"/>"
                       "</Stream></Connect></Response>";
    CHECK_MSG(body_is(m, want), "got %.*s", (int)m->body_len, m->body);
    /* No body at all is an empty form. */
    m = post("/webhook/realtime/incoming/CA2", NULL, "");
    CHECK_EQ(m->status, 200);
    CHECK(body_has(m, "value=\"CA2\""));
    CHECK(!body_has(m, "name=\"from\""));
    /* A call id that decodes to something outside [A-Za-z0-9_-] is refused. */
    m = post("/webhook/realtime/incoming/a%2Fb", FORM, "");
    CHECK_EQ(m->status, 400);
    CHECK(body_has(m, "\"code\":\"bad_field\""));
    m = post("/webhook/realtime/incoming/a%22b", FORM, "");
    CHECK_EQ(m->status, 400);
    stop();
}

/* The record look-up of an answered outbound call: answered at once here (the hook may call
 * done before it returns), refused (the request alone), or knowing nothing. */
static int lookups;
static int lookup_mode; /* 0: answers with a record, 1: cannot ask, 2: no record */
static int fake_lookup(void *arg, const char *call_id, http_call_info_fn *done, void *ctx)
{
    (void)arg;
    lookups++;
    if (lookup_mode == 1)
        return -EAGAIN;
    const struct http_call_info info = {.contact_name = "Ana <G>", .business_name = "Acme",
                                        .voice = "verse", .instructions = "Call {{contactName}}."};
    CHECK(strcmp(call_id, "call_abc") == 0);
    done(ctx, lookup_mode == 0 ? &info : NULL);
    return 0;
}

TEST(http_endpoints_outbound_record_lookup)
{
    start(&(struct http_endpoints){.public_url = "http://127.0.0.1:8080",
                                   .business_name = "Configured Inc",
                                   .outbound_lookup = fake_lookup});
    const char *form = "CallSid=CAfff&From=%2B15550001111&To=%2B15552223333";
    const struct http_msg *m = post("/webhook/realtime/incoming/call_abc", FORM, form);
    CHECK_EQ(m->status, 200);
    CHECK_EQ(lookups, 1);
    CHECK_MSG(body_has(m, "<Parameter name=\"contactName\" value=\"Ana &lt;G&gt;\"/>") &&
                  body_has(m, "<Parameter name=\"businessName\" value=\"Acme\"/>") &&
                  body_has(m, "<Parameter name=\"voice\" value=\"verse\"/>") &&
                  body_has(m, "<Parameter name=\"instructions\" value=\"Call {{contactName}}.\"/>") &&
                  body_has(m, "<Parameter name=\"from\" value=\"+15550001111\"/>"),
              "got %.*s", (int)m->body_len, m->body);
    lookup_mode = 1;
    m = post("/webhook/realtime/incoming/call_abc", FORM, form);
    CHECK_EQ(m->status, 200);
    CHECK(body_has(m, "value=\"Configured Inc\"") && !body_has(m, "name=\"voice\"") &&
          body_has(m, "value=\"+15552223333\""));
    lookup_mode = 2;
    m = post("/webhook/realtime/incoming/call_abc", FORM, form);
    CHECK_EQ(m->status, 200);
    CHECK(body_has(m, "value=\"Configured Inc\"") && !body_has(m, "name=\"contactName\""));
    CHECK_EQ(lookups, 3);
    stop();
}

TEST(http_endpoints_webhook_input_checks)
{
    start(&(struct http_endpoints){.public_url = "https://voice.example.com"});
    const struct http_msg *m = post("/twilio/voice", FORM, "From=%2B1555");
    CHECK_EQ(m->status, 400);
    CHECK(body_has(m, "\"code\":\"missing_field\""));
    m = post("/twilio/voice", FORM, "CallSid=CA%3Cx%3E");
    CHECK_EQ(m->status, 400);
    CHECK(body_has(m, "\"code\":\"bad_field\""));
    m = post("/twilio/voice", FORM, "CallSid=CA1&From=%zz");
    CHECK_EQ(m->status, 400);
    CHECK(body_has(m, "\"code\":\"bad_form\""));
    m = post("/twilio/voice", "application/json", "{\"CallSid\":\"CA1\"}");
    CHECK_EQ(m->status, 415);
    m = post("/twilio/voice", "application/x-www-form-urlencodedX", "CallSid=CA1");
    CHECK_EQ(m->status, 415);
    /* A number too long for a Parameter is refused; bad UTF-8 too. */
    static char body[2048];
    strcpy(body, "CallSid=CA1&From=");
    memset(body + strlen(body), '1', 600);
    m = post("/twilio/voice", FORM, body);
    CHECK_EQ(m->status, 400);
    m = post("/twilio/voice", FORM, "CallSid=CA1&From=%C3");
    CHECK_EQ(m->status, 400);
    /* A display name that is too long is shortened instead. */
    strcpy(body, "CallSid=CA1&CallerName=");
    memset(body + strlen(body), 'n', 600);
    m = post("/twilio/voice", FORM, body);
    CHECK_EQ(m->status, 200);
    CHECK(body_has(m, "name=\"contactName\" value=\"nnnn"));
    const char *v = memmem(m->body, m->body_len, "name=\"contactName\" value=\"", 26);
    CHECK(v != NULL);
    v += 26;
    CHECK_EQ(strcspn(v, "\""), 499 - strlen("contactName"));
    stop();
}

static int refuse(struct http_request *req, void *arg)
{
    (void)req;
    guard_calls++;
    CHECK(arg == &guard_calls);
    return 403;
}

/* Stands in for the signature check: it sees the method, path, headers and form body. */
static int check_header(struct http_request *req, void *arg)
{
    (void)arg;
    const struct http_msg *m = req->msg;
    if (m->body == NULL || memmem(m->body, m->body_len, "CallSid=", 8) == NULL)
        return 401;
    const char *sig = http_msg_header(m, "x-twilio-signature");
    return sig != NULL && strcmp(sig, "good") == 0 ? 0 : 401;
}

TEST(http_endpoints_guard_seam)
{
    start(&(struct http_endpoints){.public_url = "https://voice.example.com",
                                   .twilio_guard = refuse,
                                   .twilio_guard_arg = &guard_calls});
    const struct http_msg *m = post("/twilio/voice", FORM, "CallSid=CA1");
    CHECK_EQ(m->status, 403);
    CHECK(body_has(m, "\"code\":\"forbidden\""));
    m = post("/webhook/realtime/incoming/CA1", FORM, "CallSid=CA1");
    CHECK_EQ(m->status, 403);
    /* /healthz has no guard. */
    int fd = http_harness_connect(harness.port);
    http_harness_reader_init(&reader, fd);
    CHECK_EQ(http_harness_send_str(fd, "GET /healthz HTTP/1.1\r\n\r\n"), 0);
    CHECK_EQ(http_harness_read_response(&reader), HTTP_PARSE_DONE);
    CHECK_EQ(reader.parser.msg.status, 200);
    close(fd);
    stop();
    CHECK_EQ(guard_calls, 2);

    start(&(struct http_endpoints){.public_url = "https://voice.example.com",
                                   .twilio_guard = check_header});
    fd = http_harness_connect(harness.port);
    http_harness_reader_init(&reader, fd);
    CHECK_EQ(http_harness_send_str(fd, "POST /twilio/voice HTTP/1.1\r\n"
                                       "Content-Type: " FORM "\r\nX-Twilio-Signature: good\r\n"
                                       "Content-Length: 11\r\n\r\nCallSid=CA7"
                                       "POST /twilio/voice HTTP/1.1\r\n"
                                       "Content-Type: " FORM "\r\nX-Twilio-Signature: bad\r\n"
                                       "Content-Length: 11\r\n\r\nCallSid=CA7"),
             0);
    CHECK_EQ(http_harness_read_response(&reader), HTTP_PARSE_DONE);
    CHECK_EQ(reader.parser.msg.status, 200);
    CHECK_EQ(http_harness_read_response(&reader), HTTP_PARSE_DONE);
    CHECK_EQ(reader.parser.msg.status, 401);
    CHECK(body_has(&reader.parser.msg, "\"code\":\"unauthorized\""));
    close(fd);
    stop();
}

TEST(http_endpoints_register_checks_url)
{
    struct http_endpoints ep = {.public_url = "voice.example.com"};
    http_router_init(&router);
    CHECK_EQ(http_endpoints_register(&router, &ep), -EINVAL);
    ep.public_url = NULL;
    CHECK_EQ(http_endpoints_register(&router, &ep), -EINVAL);
    CHECK_EQ(router.n, 0);
    ep.public_url = "https://ok.example";
    CHECK_EQ(http_endpoints_register(&router, &ep), 0);
    CHECK_EQ(http_endpoints_register(&router, &ep), -EEXIST);
}

static const char *say_for(void *arg, const char *call_id)
{
    (void)arg;
    return strcmp(call_id, "failed-1") == 0 ? "Sorry & goodbye." : NULL;
}

TEST(http_endpoints_stream_ended_apologises_only_for_failed_calls)
{
    start(&(struct http_endpoints){.public_url = "https://v.example", .stream_ended_say = say_for});
    const struct http_msg *m = post("/webhook/realtime/stream-ended/failed-1", FORM, "CallSid=CA1");
    CHECK_EQ(m->status, 200);
    CHECK(body_has(m, "<Response><Say>Sorry &amp; goodbye.</Say><Hangup/></Response>"));
    m = post("/webhook/realtime/stream-ended/fine-2", FORM, "CallSid=CA2");
    CHECK_EQ(m->status, 200);
    CHECK(body_has(m, "<Response><Hangup/></Response>"));
    m = post("/webhook/realtime/stream-ended/bad%20id", FORM, "");
    CHECK_EQ(m->status, 400);
    stop();
}
