/* The call-status and recording-status routes over a real server: 204 and the hook called with
 * the parsed callback, 400 naming the field and no hook, 415 for other media types, 503 when
 * the hook cannot take it, and the guard seam (set after registering) stopping everything. */
#include "worker/twilio_callbacks_api.h"

#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "tests/lib/http_harness.h"
#include "tests/unit/testing.h"

static struct http_router router;
static struct http_harness harness;
static struct http_harness_reader reader;
static struct twilio_callbacks_api api;
static int fds_at_start;

/* Written by the hooks on the server thread before the response is sent. */
static struct twilio_call_status seen_status;
static struct twilio_recording_status seen_rec;
static int n_status, n_rec, hook_rc, guard_calls, guard_answer;

static int on_status(void *arg, const struct twilio_call_status *st)
{
    CHECK(arg == &api);
    seen_status = *st;
    n_status++;
    return hook_rc;
}

static int on_recording(void *arg, const struct twilio_recording_status *rec)
{
    CHECK(arg == &api);
    seen_rec = *rec;
    n_rec++;
    return hook_rc;
}

static int guard(struct http_request *req, void *arg)
{
    CHECK(arg == &guard_calls);
    CHECK(req->msg != NULL);
    guard_calls++;
    return guard_answer;
}

static void start(void)
{
    log_max_level = LOG_ERROR;
    fds_at_start = http_harness_count_fds();
    memset(&api, 0, sizeof api);
    http_router_init(&router);
    CHECK_EQ(twilio_callbacks_api_register(&router, &api), 0);
    /* hooks and guard set after registering, as the lead wires them */
    api.on_status = on_status;
    api.on_recording = on_recording;
    api.arg = &api;
    struct http_server_settings s;
    http_server_settings_default(&s);
    s.router = &router;
    s.linger_ms = 100;
    CHECK_EQ(http_harness_init(&harness, &s, true), 0);
    CHECK_EQ(http_harness_run(&harness), 0);
}

static void stop(void)
{
    CHECK_EQ(http_harness_stop(&harness), 0);
    CHECK_EQ(http_harness_count_fds(), fds_at_start);
}

static const struct http_msg *post(const char *path, const char *ctype, const char *body)
{
    static char req[8192];
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: voice.example.com\r\nContent-Type: %s\r\n"
                     "X-Twilio-Signature: abc=\r\nContent-Length: %zu\r\nConnection: close"
                     "\r\n\r\n%s",
                     path, ctype, strlen(body), body);
    CHECK(n > 0 && (size_t)n < sizeof req);
    CHECK_EQ(http_harness_exchange(harness.port, req, (size_t)n, &reader), HTTP_PARSE_DONE);
    return &reader.parser.msg;
}

static bool body_has(const struct http_msg *m, const char *s)
{
    return m->body != NULL && memmem(m->body, m->body_len, s, strlen(s)) != NULL;
}

#define FORM "application/x-www-form-urlencoded"

TEST(twilio_callbacks_api_status_and_recording)
{
    start();
    const struct http_msg *m =
        post(TWILIO_CALL_STATUS_PATH, FORM,
             "CallSid=CA1&CallStatus=completed&CallDuration=42&SequenceNumber=3&AnsweredBy="
             "machine_start&From=%2B14155550100&To=%2B34612345678");
    CHECK_EQ(m->status, 204);
    CHECK_EQ(m->body_len, 0);
    CHECK_EQ(n_status, 1);
    CHECK(strcmp(seen_status.call_sid, "CA1") == 0);
    CHECK_EQ(seen_status.status, TWILIO_CALL_COMPLETED);
    CHECK(seen_status.terminal);
    CHECK_EQ(seen_status.call_duration_s, 42);
    CHECK_EQ(seen_status.sequence_number, 3);
    CHECK(strcmp(seen_status.answered_by, "machine_start") == 0);

    m = post(TWILIO_RECORDING_STATUS_PATH, "application/x-www-form-urlencoded; charset=utf-8",
             "CallSid=CA1&RecordingSid=RE9&RecordingStatus=completed&RecordingChannels=2"
             "&RecordingDuration=40&RecordingUrl=https%3A%2F%2Fapi.twilio.com%2Fr%2FRE9");
    CHECK_EQ(m->status, 204);
    CHECK_EQ(n_rec, 1);
    CHECK(strcmp(seen_rec.recording_sid, "RE9") == 0);
    CHECK(strcmp(seen_rec.recording_url, "https://api.twilio.com/r/RE9") == 0);
    CHECK_EQ(seen_rec.channels, 2);
    CHECK_EQ(seen_rec.duration_s, 40);
    stop();
    CHECK_EQ(api.statuses, 1);
    CHECK_EQ(api.recordings, 1);
    CHECK_EQ(api.rejected, 0);
}

TEST(twilio_callbacks_api_bad_input)
{
    start();
    const struct http_msg *m =
        post(TWILIO_CALL_STATUS_PATH, FORM, "CallSid=CA1&CallStatus=exploded");
    CHECK_EQ(m->status, 400);
    CHECK(body_has(m, "\"success\":false"));
    CHECK(body_has(m, "CallStatus is missing or malformed"));
    m = post(TWILIO_CALL_STATUS_PATH, FORM, "CallStatus=completed");
    CHECK_EQ(m->status, 400);
    CHECK(body_has(m, "CallSid"));
    m = post(TWILIO_CALL_STATUS_PATH, FORM, "CallSid=CA1&CallStatus=completed&x=%G0");
    CHECK_EQ(m->status, 400);
    CHECK(body_has(m, "malformed form body"));
    m = post(TWILIO_RECORDING_STATUS_PATH, FORM,
             "CallSid=CA1&RecordingSid=RE1&RecordingStatus=completed&RecordingChannels=2");
    CHECK_EQ(m->status, 400);
    CHECK(body_has(m, "RecordingUrl is missing or malformed"));
    m = post(TWILIO_RECORDING_STATUS_PATH, "application/json",
             "{\"CallSid\":\"CA1\",\"RecordingSid\":\"RE1\",\"RecordingStatus\":\"absent\"}");
    CHECK_EQ(m->status, 415);
    m = post(TWILIO_CALL_STATUS_PATH, "application/x-www-form-urlencodedX", "CallSid=CA1");
    CHECK_EQ(m->status, 415);
    CHECK_EQ(n_status, 0);
    CHECK_EQ(n_rec, 0);
    stop();
    CHECK_EQ(api.rejected, 4);
}

TEST(twilio_callbacks_api_hook_failure_is_503)
{
    start();
    hook_rc = -EAGAIN;
    const struct http_msg *m = post(TWILIO_CALL_STATUS_PATH, FORM, "CallSid=CA1&CallStatus=busy");
    CHECK_EQ(m->status, 503);
    CHECK(body_has(m, "\"unavailable\""));
    CHECK_EQ(n_status, 1);
    /* no hooks: accepted and dropped */
    hook_rc = 0;
    api.on_status = NULL;
    m = post(TWILIO_CALL_STATUS_PATH, FORM, "CallSid=CA1&CallStatus=busy");
    CHECK_EQ(m->status, 204);
    CHECK_EQ(n_status, 1);
    stop();
}

TEST(twilio_callbacks_api_guard_refuses_before_the_hook)
{
    start();
    api.guard = guard; /* set after registering: looked up per request */
    api.guard_arg = &guard_calls;
    guard_answer = 403;
    const struct http_msg *m =
        post(TWILIO_CALL_STATUS_PATH, FORM, "CallSid=CA1&CallStatus=completed");
    CHECK_EQ(m->status, 403);
    m = post(TWILIO_RECORDING_STATUS_PATH, FORM,
             "CallSid=CA1&RecordingSid=RE1&RecordingStatus=absent");
    CHECK_EQ(m->status, 403);
    CHECK_EQ(guard_calls, 2);
    CHECK_EQ(n_status + n_rec, 0);
    guard_answer = 0;
    m = post(TWILIO_RECORDING_STATUS_PATH, FORM,
             "CallSid=CA1&RecordingSid=RE1&RecordingStatus=absent");
    CHECK_EQ(m->status, 204);
    CHECK_EQ(guard_calls, 3);
    CHECK_EQ(n_rec, 1);
    stop();
}
