/* Twilio Media Streams codec: every message shape from protocols.md §1.3, strings where Twilio
 * sends strings (numbers accepted too), malformed messages with their reasons, and the messages
 * we build parsed back. */
#include "worker/twilio_msg.h"

#include <errno.h>
#include <string.h>

#include "common/base64.h"
#include "tests/unit/testing.h"

static struct json_tok toks[TWILIO_TOKENS_MAX];
static struct twilio_msg msg;
static struct twilio_start st;
static const char *why;

static int parse(const char *s)
{
    why = NULL;
    return twilio_msg_parse(s, strlen(s), toks, &msg, &st, &why);
}

TEST(twilio_msg_parses_the_documented_messages)
{
    CHECK_EQ(parse("{\"event\":\"connected\",\"protocol\":\"Call\",\"version\":\"1.0.0\"}"), 0);
    CHECK_EQ(msg.event, TWILIO_CONNECTED);
    CHECK_EQ(msg.sequence, -1);

    CHECK_EQ(parse("{\"event\":\"start\",\"sequenceNumber\":\"1\",\"streamSid\":\"MZ0123456789abcdef0123456789abcdef\","
                   "\"start\":{\"streamSid\":\"MZ0123456789abcdef0123456789abcdef\",\"accountSid\":\"AC1\","
                   "\"callSid\":\"CA99\",\"tracks\":[\"inbound\"],"
                   "\"customParameters\":{\"tenant\":\"acme\",\"call_ref\":\"r-123 \\u00e9\"},"
                   "\"mediaFormat\":{\"encoding\":\"audio/x-mulaw\",\"sampleRate\":8000,\"channels\":1}}}"),
             0);
    CHECK_EQ(msg.event, TWILIO_START);
    CHECK_EQ(msg.sequence, 1);
    CHECK(strcmp(st.stream_sid, "MZ0123456789abcdef0123456789abcdef") == 0);
    CHECK(strcmp(st.call_sid, "CA99") == 0);
    CHECK_EQ(st.n_params, 2);
    CHECK(strcmp(st.params[1].name, "call_ref") == 0);
    CHECK(strcmp(st.params[1].value, "r-123 \xc3\xa9") == 0);

    CHECK_EQ(parse("{\"event\":\"media\",\"sequenceNumber\":\"4\",\"streamSid\":\"MZ1\","
                   "\"media\":{\"track\":\"inbound\",\"chunk\":\"2\",\"timestamp\":\"5\",\"payload\":\"//8=\"}}"),
             0);
    CHECK_EQ(msg.event, TWILIO_MEDIA);
    CHECK_EQ(msg.sequence, 4);
    CHECK_EQ(msg.timestamp_ms, 5);
    CHECK(msg.payload_len == 4 && memcmp(msg.payload, "//8=", 4) == 0);
    CHECK(msg.stream_sid_len == 3 && memcmp(msg.stream_sid, "MZ1", 3) == 0);

    CHECK_EQ(parse("{\"event\":\"dtmf\",\"streamSid\":\"MZ1\",\"sequenceNumber\":\"5\","
                   "\"dtmf\":{\"track\":\"inbound_track\",\"digit\":\"#\"}}"),
             0);
    CHECK(msg.event == TWILIO_DTMF && msg.digit == '#');
    CHECK_EQ(parse("{\"event\":\"mark\",\"sequenceNumber\":\"4\",\"streamSid\":\"MZ1\",\"mark\":{\"name\":\"g0.100\"}}"), 0);
    CHECK(msg.event == TWILIO_MARK && strcmp(msg.mark_name, "g0.100") == 0);
    CHECK_EQ(parse("{\"event\":\"stop\",\"sequenceNumber\":\"5\",\"streamSid\":\"MZ1\","
                   "\"stop\":{\"accountSid\":\"AC1\",\"callSid\":\"CA1\"}}"),
             0);
    CHECK_EQ(msg.event, TWILIO_STOP);
    CHECK_EQ(parse("{\"event\":\"something-new\",\"x\":1}"), 0);
    CHECK_EQ(msg.event, TWILIO_UNKNOWN);
    /* Numbers where Twilio sends strings are accepted too. */
    CHECK_EQ(parse("{\"event\":\"media\",\"sequenceNumber\":7,\"media\":{\"timestamp\":40,\"payload\":\"\"}}"), 0);
    CHECK(msg.sequence == 7 && msg.timestamp_ms == 40);
}

TEST(twilio_msg_rejects_malformed_with_reasons)
{
    static const struct {
        const char *text;
        int rc;
    } cases[] = {
        {"not json", -EINVAL},
        {"{\"event\":\"media\"", -EINVAL},
        {"[1,2]", -EPROTO},
        {"{\"sequenceNumber\":\"1\"}", -EPROTO},
        {"{\"event\":5}", -EPROTO},
        {"{\"event\":\"media\",\"media\":{}}", -EPROTO},
        {"{\"event\":\"media\",\"media\":{\"payload\":7}}", -EPROTO},
        {"{\"event\":\"media\",\"media\":{\"payload\":\"AA==\",\"timestamp\":\"soon\"}}", -EPROTO},
        {"{\"event\":\"media\",\"sequenceNumber\":\"1.5\",\"media\":{\"payload\":\"\"}}", -EPROTO},
        {"{\"event\":\"media\",\"streamSid\":\"MZ\\\"x\",\"media\":{\"payload\":\"\"}}", -EPROTO},
        {"{\"event\":\"start\"}", -EPROTO},
        {"{\"event\":\"start\",\"start\":{\"callSid\":\"CA1\"}}", -EPROTO},
        {"{\"event\":\"start\",\"start\":{\"streamSid\":\"MZ1\",\"callSid\":\"CA1\","
         "\"mediaFormat\":{\"encoding\":\"audio/x-mulaw\",\"sampleRate\":16000,\"channels\":1}}}",
         -EPROTO},
        {"{\"event\":\"start\",\"start\":{\"streamSid\":\"MZ1\",\"callSid\":\"CA1\",\"customParameters\":[]}}",
         -EPROTO},
        {"{\"event\":\"mark\",\"mark\":{}}", -EPROTO},
        {"{\"event\":\"dtmf\",\"dtmf\":{\"digit\":\"12\"}}", -EPROTO},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = parse(cases[i].text);
        CHECK_MSG(rc == cases[i].rc, "case %zu: rc %d, want %d", i, rc, cases[i].rc);
        CHECK_MSG(why != NULL && why[0] != '\0', "case %zu: no reason", i);
    }
    char many[2048] = "{\"event\":\"x\",\"a\":[";
    for (int i = 0; i < 300; i++)
        strcat(many, "1,");
    strcat(many, "1]}");
    CHECK_EQ(parse(many), -E2BIG);
}

TEST(twilio_msg_builds_what_twilio_expects)
{
    uint8_t frame[160];
    for (int i = 0; i < 160; i++)
        frame[i] = (uint8_t)(i * 7);
    char out[512];
    int n = twilio_msg_media(out, sizeof out, "MZabc", frame, sizeof frame);
    CHECK(n > 0 && (size_t)n == twilio_msg_media_size(5, 160));
    out[n] = '\0';
    CHECK_EQ(parse(out), 0);
    CHECK(msg.event == TWILIO_MEDIA && msg.payload_len == 216);
    uint8_t back[160];
    size_t got;
    CHECK_EQ(base64_decode(msg.payload, msg.payload_len, back, sizeof back, &got), 0);
    CHECK(got == 160 && memcmp(back, frame, 160) == 0);
    CHECK_EQ(twilio_msg_media(out, (size_t)n - 1, "MZabc", frame, sizeof frame), -ENOSPC);

    n = twilio_msg_mark(out, sizeof out, "MZabc", "g1.200");
    out[n] = '\0';
    CHECK(strcmp(out, "{\"event\":\"mark\",\"streamSid\":\"MZabc\",\"mark\":{\"name\":\"g1.200\"}}") == 0);
    n = twilio_msg_clear(out, sizeof out, "MZabc");
    out[n] = '\0';
    CHECK(strcmp(out, "{\"event\":\"clear\",\"streamSid\":\"MZabc\"}") == 0);
    CHECK_EQ(twilio_msg_clear(out, 10, "MZabc"), -ENOSPC);
}
