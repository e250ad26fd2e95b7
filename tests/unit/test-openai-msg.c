/* OpenAI Realtime codec: the server events the bridge acts on (GA names and beta aliases),
 * shapes from protocols.md §4.5, malformed input, and the client events it builds checked
 * field by field with jansson. */
#include "worker/openai_msg.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "tests/unit/testing.h"

static struct json_tok toks[OPENAI_TOKENS_MAX];
static struct openai_event ev;

static int parse(const char *s)
{
    openai_event_clear(&ev);
    return openai_event_parse(s, strlen(s), toks, &ev);
}

TEST(openai_msg_parses_hot_events_in_place)
{
    const char *m = "{\"type\":\"response.output_audio.delta\",\"event_id\":\"e1\",\"response_id\":\"resp_1\","
                    "\"item_id\":\"item_9\",\"output_index\":0,\"content_index\":0,\"delta\":\"AAEC\"}";
    CHECK_EQ(parse(m), 0);
    CHECK_EQ(ev.type, OPENAI_AUDIO_DELTA);
    CHECK(ev.delta == strstr(m, "AAEC") && ev.delta_len == 4);
    CHECK(strcmp(ev.item_id, "item_9") == 0 && strcmp(ev.response_id, "resp_1") == 0);
    CHECK_EQ(parse("{\"type\":\"response.audio.delta\",\"item_id\":\"i\",\"delta\":\"\"}"), 0);
    CHECK_EQ(ev.type, OPENAI_AUDIO_DELTA);
    CHECK_EQ(parse("{\"type\":\"input_audio_buffer.speech_started\",\"audio_start_ms\":1234,\"item_id\":\"item_u\"}"), 0);
    CHECK(ev.type == OPENAI_SPEECH_STARTED && ev.audio_ms == 1234);
    CHECK_EQ(parse("{\"type\":\"response.output_audio_transcript.delta\",\"item_id\":\"i\",\"delta\":\"Hi \\\"x\\\"\"}"), 0);
    CHECK(ev.type == OPENAI_AUDIO_TRANSCRIPT_DELTA && ev.delta_escaped);
    CHECK_EQ(parse("{\"type\":\"response.output_audio.delta\",\"delta\":\"AA\\/B\"}"), -EINVAL);
    CHECK_EQ(parse("{\"type\":\"response.output_audio.delta\"}"), -EINVAL);
}

TEST(openai_msg_parses_rare_events)
{
    CHECK_EQ(parse("{\"type\":\"response.done\",\"event_id\":\"event_1\",\"response\":{\"id\":\"resp_1\","
                   "\"object\":\"realtime.response\",\"status\":\"cancelled\",\"status_details\":{\"type\":\"cancelled\","
                   "\"reason\":\"turn_detected\"},\"output\":[],\"usage\":{\"total_tokens\":821,\"input_tokens\":789,"
                   "\"output_tokens\":32,\"input_token_details\":{\"text_tokens\":313,\"audio_tokens\":476,"
                   "\"image_tokens\":0,\"cached_tokens\":640,\"cached_tokens_details\":{\"text_tokens\":256,"
                   "\"audio_tokens\":384,\"image_tokens\":0}},\"output_token_details\":{\"text_tokens\":9,"
                   "\"audio_tokens\":23}}}}"),
             0);
    CHECK_EQ(ev.type, OPENAI_RESPONSE_DONE);
    CHECK(strcmp(ev.status, "cancelled") == 0 && strcmp(ev.reason, "turn_detected") == 0);
    CHECK(ev.usage.input_text == 313 && ev.usage.input_audio == 476 && ev.usage.cached_text == 256);
    CHECK(ev.usage.cached_audio == 384 && ev.usage.output_text == 9 && ev.usage.output_audio == 23);

    CHECK_EQ(parse("{\"type\":\"response.function_call_arguments.done\",\"response_id\":\"r\",\"item_id\":\"it\","
                   "\"output_index\":0,\"call_id\":\"call_1\",\"name\":\"end_call\",\"arguments\":\"{\\\"reason\\\":\\\"done\\\"}\"}"),
             0);
    CHECK(ev.type == OPENAI_FUNCTION_CALL_DONE && strcmp(ev.call_id, "call_1") == 0);
    CHECK(strcmp(ev.name, "end_call") == 0 && strcmp(ev.text, "{\"reason\":\"done\"}") == 0);

    CHECK_EQ(parse("{\"type\":\"conversation.item.input_audio_transcription.completed\",\"item_id\":\"u1\","
                   "\"content_index\":0,\"transcript\":\"Hola, qu\\u00e9 tal\"}"),
             0);
    CHECK(ev.type == OPENAI_INPUT_TRANSCRIPT_DONE && strcmp(ev.text, "Hola, qu\xc3\xa9 tal") == 0);
    CHECK_EQ(parse("{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"code\":"
                   "\"conversation_already_has_active_response\",\"message\":\"busy\",\"param\":null}}"),
             0);
    CHECK(ev.type == OPENAI_ERROR && strcmp(ev.name, "conversation_already_has_active_response") == 0);
    CHECK(strcmp(ev.text, "busy") == 0);
    CHECK_EQ(parse("{\"type\":\"response.output_item.added\",\"response_id\":\"r2\",\"item\":{\"id\":\"item_5\","
                   "\"type\":\"message\",\"role\":\"assistant\"}}"),
             0);
    CHECK(ev.type == OPENAI_OUTPUT_ITEM_ADDED && strcmp(ev.item_id, "item_5") == 0);
    CHECK(strcmp(ev.name, "message") == 0);
    CHECK_EQ(parse("{\"type\":\"rate_limits.updated\",\"rate_limits\":[]}"), 0);
    CHECK_EQ(ev.type, OPENAI_OTHER);
    openai_event_clear(&ev);
}

TEST(openai_msg_rejects_malformed)
{
    static const char *bad[] = {"", "null", "[]", "{}", "{\"type\":1}", "{\"type\":\"error\"", "garbage"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(parse(bad[i]) == -EINVAL, "accepted %s", bad[i]);
    /* A big rare event beyond the scanner's tokens still parses through jansson. */
    char big[16384] = "{\"type\":\"session.updated\",\"session\":{\"tools\":[";
    for (int i = 0; i < 400; i++)
        strcat(big, "{\"a\":1},");
    strcat(big, "{}]}}");
    CHECK_EQ(parse(big), 0);
    CHECK_EQ(ev.type, OPENAI_SESSION_UPDATED);
    /* ... but a delta too big to scan is refused, not parsed with allocations. */
    char bigdelta[16384] = "{\"type\":\"response.output_audio.delta\",\"x\":[";
    for (int i = 0; i < 400; i++)
        strcat(bigdelta, "1,");
    strcat(bigdelta, "1],\"delta\":\"AA==\"}");
    CHECK_EQ(parse(bigdelta), -EINVAL);
}

static json_t *load(char *s)
{
    CHECK(s != NULL);
    json_error_t err;
    json_t *j = json_loads(s, 0, &err);
    CHECK_MSG(j != NULL, "bad JSON built: %s", s);
    free(s);
    return j;
}

TEST(openai_msg_builds_client_events)
{
    struct openai_session_cfg cfg = {
        .model = "gpt-realtime",
        .instructions = "Be \"brief\".\n",
        .voice = "marin",
        .g711 = 0,
        .transcription_model = "gpt-4o-mini-transcribe",
        .turn_detection_json = "{\"type\":\"server_vad\",\"silence_duration_ms\":500}",
        .tools_json = "[{\"type\":\"function\",\"name\":\"end_call\",\"parameters\":{}}]",
    };
    json_t *j = load(openai_msg_session_update(&cfg));
    CHECK(strcmp(json_string_value(json_object_get(j, "type")), "session.update") == 0);
    json_t *s = json_object_get(j, "session");
    CHECK(strcmp(json_string_value(json_object_get(s, "type")), "realtime") == 0);
    CHECK(strcmp(json_string_value(json_object_get(s, "instructions")), "Be \"brief\".\n") == 0);
    json_t *in = json_object_get(json_object_get(s, "audio"), "input");
    json_t *out = json_object_get(json_object_get(s, "audio"), "output");
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(in, "format"), "type")), "audio/pcm") == 0);
    CHECK_EQ(json_integer_value(json_object_get(json_object_get(out, "format"), "rate")), 24000);
    CHECK(strcmp(json_string_value(json_object_get(out, "voice")), "marin") == 0);
    CHECK_EQ(json_integer_value(json_object_get(json_object_get(in, "turn_detection"), "silence_duration_ms")), 500);
    CHECK(json_array_size(json_object_get(s, "tools")) == 1);
    json_decref(j);

    cfg.g711 = 1;
    cfg.tools_json = "not json";
    CHECK(openai_msg_session_update(&cfg) == NULL);
    cfg.tools_json = NULL;
    cfg.turn_detection_json = "null";
    j = load(openai_msg_session_update(&cfg));
    in = json_object_get(json_object_get(json_object_get(j, "session"), "audio"), "input");
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(in, "format"), "type")), "audio/pcmu") == 0);
    CHECK(json_is_null(json_object_get(in, "turn_detection")));
    json_decref(j);

    j = load(openai_msg_truncate("item_1", 1234));
    CHECK_EQ(json_integer_value(json_object_get(j, "audio_end_ms")), 1234);
    CHECK_EQ(json_integer_value(json_object_get(j, "content_index")), 0);
    json_decref(j);
    j = load(openai_msg_function_output("call_1", "{\"ok\":true}"));
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(j, "item"), "output")), "{\"ok\":true}") == 0);
    json_decref(j);
    j = load(openai_msg_response_create("Say \"goodbye\""));
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(j, "response"), "instructions")), "Say \"goodbye\"") == 0);
    json_decref(j);
    json_decref(load(openai_msg_response_create(NULL)));
    json_decref(load(openai_msg_response_cancel("resp_1")));
    json_decref(load(openai_msg_system_item("hello")));
}

TEST(openai_msg_append_template)
{
    uint8_t audio[960];
    for (int i = 0; i < 960; i++)
        audio[i] = (uint8_t)i;
    char out[2048];
    int n = openai_msg_append(out, sizeof out, audio, sizeof audio);
    CHECK(n > 0 && (size_t)n == openai_msg_append_size(960));
    json_error_t err;
    json_t *j = json_loadb(out, (size_t)n, 0, &err);
    CHECK(j != NULL);
    const char *b64 = json_string_value(json_object_get(j, "audio"));
    uint8_t back[960];
    size_t got;
    CHECK_EQ(base64_decode(b64, strlen(b64), back, sizeof back, &got), 0);
    CHECK(got == 960 && memcmp(back, audio, 960) == 0);
    json_decref(j);
    CHECK_EQ(openai_msg_append(out, 100, audio, sizeof audio), -ENOSPC);
}
