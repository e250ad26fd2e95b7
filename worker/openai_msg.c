/* OpenAI Realtime message codec. Server events: the scanner classifies every message by its
 * "type" and reads the per-frame ones in place; the rest (a few per turn) are parsed by jansson,
 * which is simpler and allocates only off the audio path. Client events: the per-frame append
 * from a template, the rest built by jansson so every string is escaped. */
#include "worker/openai_msg.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"

static const struct {
    const char *name;
    enum openai_event_type type;
} event_names[] = {
    {"response.output_audio.delta", OPENAI_AUDIO_DELTA},
    {"response.audio.delta", OPENAI_AUDIO_DELTA},
    {"response.output_audio_transcript.delta", OPENAI_AUDIO_TRANSCRIPT_DELTA},
    {"response.audio_transcript.delta", OPENAI_AUDIO_TRANSCRIPT_DELTA},
    {"input_audio_buffer.speech_started", OPENAI_SPEECH_STARTED},
    {"input_audio_buffer.speech_stopped", OPENAI_SPEECH_STOPPED},
    {"response.output_audio.done", OPENAI_AUDIO_DONE},
    {"response.audio.done", OPENAI_AUDIO_DONE},
    {"response.output_audio_transcript.done", OPENAI_AUDIO_TRANSCRIPT_DONE},
    {"response.audio_transcript.done", OPENAI_AUDIO_TRANSCRIPT_DONE},
    {"conversation.item.input_audio_transcription.completed", OPENAI_INPUT_TRANSCRIPT_DONE},
    {"conversation.item.input_audio_transcription.failed", OPENAI_INPUT_TRANSCRIPT_FAILED},
    {"response.created", OPENAI_RESPONSE_CREATED},
    {"response.done", OPENAI_RESPONSE_DONE},
    {"response.output_item.added", OPENAI_OUTPUT_ITEM_ADDED},
    {"response.function_call_arguments.done", OPENAI_FUNCTION_CALL_DONE},
    {"conversation.item.truncated", OPENAI_ITEM_TRUNCATED},
    {"session.created", OPENAI_SESSION_CREATED},
    {"session.updated", OPENAI_SESSION_UPDATED},
    {"error", OPENAI_ERROR},
};

static enum openai_event_type classify(const char *msg, const struct json_tok *toks, int t)
{
    for (size_t i = 0; i < sizeof event_names / sizeof event_names[0]; i++)
        if (json_str_eq(msg, toks, t, event_names[i].name))
            return event_names[i].type;
    return OPENAI_OTHER;
}

static void scan_copy(const char *msg, const struct json_tok *toks, int obj, const char *key,
                      char *out, size_t cap)
{
    size_t len;
    if (json_str(msg, toks, json_get(msg, toks, obj, key), out, cap, &len) != 0)
        out[0] = '\0';
}

static void jcopy(json_t *obj, const char *key, char *out, size_t cap)
{
    const char *s = json_string_value(json_object_get(obj, key));
    size_t len = s ? strlen(s) : 0;
    if (len >= cap)
        len = 0; /* an id longer than any real one: treat as absent */
    memcpy(out, s ? s : "", len);
    out[len] = '\0';
}

static int jtext(json_t *obj, const char *key, struct openai_event *ev)
{
    const char *s = json_string_value(json_object_get(obj, key));
    if (s == NULL)
        return 0;
    ev->text = strdup(s);
    return ev->text ? 0 : -ENOMEM;
}

static int64_t jint(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

static void parse_usage(json_t *u, struct openai_usage *us)
{
    json_t *in = json_object_get(u, "input_token_details");
    json_t *cached = json_object_get(in, "cached_tokens_details");
    json_t *out = json_object_get(u, "output_token_details");
    us->input_text = jint(in, "text_tokens");
    us->input_audio = jint(in, "audio_tokens");
    us->cached_text = jint(cached, "text_tokens");
    us->cached_audio = jint(cached, "audio_tokens");
    us->output_text = jint(out, "text_tokens");
    us->output_audio = jint(out, "audio_tokens");
}

/* The rare events, through jansson. */
static int parse_rare(const char *msg, size_t len, struct openai_event *ev)
{
    json_error_t jerr;
    json_t *root = json_loadb(msg, len, 0, &jerr);
    if (root == NULL)
        return -EINVAL;
    int rc = 0;
    json_t *resp = json_object_get(root, "response");
    switch (ev->type) {
    case OPENAI_ERROR: {
        json_t *e = json_object_get(root, "error");
        jcopy(e, "code", ev->name, sizeof ev->name);
        rc = jtext(e, "message", ev);
        break;
    }
    case OPENAI_AUDIO_TRANSCRIPT_DONE:
    case OPENAI_INPUT_TRANSCRIPT_DONE:
        jcopy(root, "item_id", ev->item_id, sizeof ev->item_id);
        jcopy(root, "response_id", ev->response_id, sizeof ev->response_id);
        rc = jtext(root, "transcript", ev);
        break;
    case OPENAI_INPUT_TRANSCRIPT_FAILED:
        jcopy(root, "item_id", ev->item_id, sizeof ev->item_id);
        rc = jtext(json_object_get(root, "error"), "message", ev);
        break;
    case OPENAI_RESPONSE_CREATED:
        jcopy(resp, "id", ev->response_id, sizeof ev->response_id);
        break;
    case OPENAI_RESPONSE_DONE: {
        jcopy(resp, "id", ev->response_id, sizeof ev->response_id);
        jcopy(resp, "status", ev->status, sizeof ev->status);
        json_t *details = json_object_get(resp, "status_details");
        jcopy(details, "reason", ev->reason, sizeof ev->reason);
        parse_usage(json_object_get(resp, "usage"), &ev->usage);
        break;
    }
    case OPENAI_OUTPUT_ITEM_ADDED: {
        json_t *item = json_object_get(root, "item");
        jcopy(root, "response_id", ev->response_id, sizeof ev->response_id);
        jcopy(item, "id", ev->item_id, sizeof ev->item_id);
        jcopy(item, "type", ev->name, sizeof ev->name);
        break;
    }
    case OPENAI_FUNCTION_CALL_DONE:
        jcopy(root, "item_id", ev->item_id, sizeof ev->item_id);
        jcopy(root, "response_id", ev->response_id, sizeof ev->response_id);
        jcopy(root, "call_id", ev->call_id, sizeof ev->call_id);
        jcopy(root, "name", ev->name, sizeof ev->name);
        rc = jtext(root, "arguments", ev);
        break;
    case OPENAI_ITEM_TRUNCATED:
        jcopy(root, "item_id", ev->item_id, sizeof ev->item_id);
        ev->audio_ms = jint(root, "audio_end_ms");
        break;
    default:
        break;
    }
    json_decref(root);
    return rc;
}

int openai_event_parse(const char *msg, size_t len, struct json_tok toks[OPENAI_TOKENS_MAX],
                       struct openai_event *ev)
{
    memset(ev, 0, sizeof *ev);
    int n = json_scan(msg, len, toks, OPENAI_TOKENS_MAX);
    if (n == -E2BIG) {
        /* Too big to scan in place (a session with many tools, say): never a per-frame event. */
        json_error_t jerr;
        json_t *root = json_loadb(msg, len, 0, &jerr);
        const char *type = json_string_value(json_object_get(root, "type"));
        for (size_t i = 0; type && i < sizeof event_names / sizeof event_names[0]; i++)
            if (strcmp(type, event_names[i].name) == 0)
                ev->type = event_names[i].type;
        json_decref(root);
        if (type == NULL)
            return -EINVAL;
        if (ev->type == OPENAI_AUDIO_DELTA || ev->type == OPENAI_AUDIO_TRANSCRIPT_DELTA ||
            ev->type == OPENAI_SPEECH_STARTED || ev->type == OPENAI_SPEECH_STOPPED ||
            ev->type == OPENAI_AUDIO_DONE)
            return -EINVAL;
        return parse_rare(msg, len, ev);
    }
    if (n < 0 || toks[0].type != JTOK_OBJECT)
        return -EINVAL;
    int t = json_get(msg, toks, 0, "type");
    if (t < 0 || toks[t].type != JTOK_STRING)
        return -EINVAL;
    ev->type = classify(msg, toks, t);
    switch (ev->type) {
    case OPENAI_AUDIO_DELTA:
    case OPENAI_AUDIO_TRANSCRIPT_DELTA: {
        int d = json_get(msg, toks, 0, "delta");
        if (d < 0 || toks[d].type != JTOK_STRING)
            return -EINVAL;
        ev->delta = msg + toks[d].start;
        ev->delta_len = toks[d].end - toks[d].start;
        ev->delta_escaped = toks[d].escaped;
        if (ev->type == OPENAI_AUDIO_DELTA && ev->delta_escaped)
            return -EINVAL; /* base64 needs no escapes; a '\/' is not worth a copy per frame */
        scan_copy(msg, toks, 0, "item_id", ev->item_id, sizeof ev->item_id);
        scan_copy(msg, toks, 0, "response_id", ev->response_id, sizeof ev->response_id);
        return 0;
    }
    case OPENAI_SPEECH_STARTED:
    case OPENAI_SPEECH_STOPPED:
        scan_copy(msg, toks, 0, "item_id", ev->item_id, sizeof ev->item_id);
        json_int(msg, toks,
                 json_get(msg, toks, 0,
                          ev->type == OPENAI_SPEECH_STARTED ? "audio_start_ms" : "audio_end_ms"),
                 &ev->audio_ms);
        return 0;
    case OPENAI_AUDIO_DONE:
        scan_copy(msg, toks, 0, "item_id", ev->item_id, sizeof ev->item_id);
        scan_copy(msg, toks, 0, "response_id", ev->response_id, sizeof ev->response_id);
        return 0;
    case OPENAI_OTHER:
    case OPENAI_SESSION_CREATED:
    case OPENAI_SESSION_UPDATED:
        return 0;
    default:
        return parse_rare(msg, len, ev);
    }
}

void openai_event_clear(struct openai_event *ev)
{
    free(ev->text);
    ev->text = NULL;
}

/* Serialises and frees obj; NULL if obj is NULL or on failure. */
static char *dump(json_t *obj)
{
    if (obj == NULL)
        return NULL;
    char *s = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    return s;
}

static json_t *format_obj(int g711)
{
    return g711 ? json_pack("{s:s}", "type", "audio/pcmu")
                : json_pack("{s:s, s:i}", "type", "audio/pcm", "rate", 24000);
}

char *openai_msg_session_update(const struct openai_session_cfg *cfg)
{
    json_error_t jerr;
    json_t *input = json_pack("{s:o}", "format", format_obj(cfg->g711));
    json_t *output = json_pack("{s:o, s:s}", "format", format_obj(cfg->g711), "voice",
                               cfg->voice ? cfg->voice : "alloy");
    if (input == NULL || output == NULL)
        goto fail_audio;
    if (cfg->transcription_model)
        json_object_set_new(input, "transcription",
                            json_pack("{s:s}", "model", cfg->transcription_model));
    if (cfg->turn_detection_json) {
        json_t *td = json_loads(cfg->turn_detection_json, JSON_DECODE_ANY, &jerr);
        if (td == NULL)
            goto fail_audio;
        json_object_set_new(input, "turn_detection", td);
    }
    json_t *session = json_pack("{s:s, s:s, s:[s], s:{s:o, s:o}}", "type", "realtime", "model",
                                cfg->model ? cfg->model : "gpt-realtime", "output_modalities",
                                "audio", "audio", "input", input, "output", output);
    input = output = NULL; /* now owned by session (json_pack's "o" steals, even on failure) */
    if (session == NULL)
        return NULL;
    if (cfg->instructions)
        json_object_set_new(session, "instructions", json_string(cfg->instructions));
    if (cfg->tools_json) {
        json_t *tools = json_loads(cfg->tools_json, 0, &jerr);
        if (!json_is_array(tools)) {
            json_decref(tools);
            json_decref(session);
            return NULL;
        }
        json_object_set_new(session, "tools", tools);
        json_object_set_new(session, "tool_choice", json_string("auto"));
    }
    return dump(json_pack("{s:s, s:o}", "type", "session.update", "session", session));
fail_audio:
    json_decref(input);
    json_decref(output);
    return NULL;
}

char *openai_msg_response_create(const char *instructions)
{
    if (instructions == NULL)
        return strdup("{\"type\":\"response.create\"}");
    return dump(json_pack("{s:s, s:{s:s}}", "type", "response.create", "response",
                          "instructions", instructions));
}

char *openai_msg_response_cancel(const char *response_id)
{
    if (response_id == NULL || response_id[0] == '\0')
        return strdup("{\"type\":\"response.cancel\"}");
    return dump(json_pack("{s:s, s:s}", "type", "response.cancel", "response_id", response_id));
}

char *openai_msg_truncate(const char *item_id, uint32_t audio_end_ms)
{
    return dump(json_pack("{s:s, s:s, s:i, s:I}", "type", "conversation.item.truncate", "item_id",
                          item_id, "content_index", 0, "audio_end_ms", (json_int_t)audio_end_ms));
}

char *openai_msg_function_output(const char *call_id, const char *output)
{
    return dump(json_pack("{s:s, s:{s:s, s:s, s:s}}", "type", "conversation.item.create", "item",
                          "type", "function_call_output", "call_id", call_id, "output", output));
}

char *openai_msg_system_item(const char *text)
{
    return dump(json_pack("{s:s, s:{s:s, s:s, s:[{s:s, s:s}]}}", "type",
                          "conversation.item.create", "item", "type", "message", "role", "system",
                          "content", "type", "input_text", "text", text));
}

static const char append_head[] = "{\"type\":\"input_audio_buffer.append\",\"audio\":\"";
static const char append_tail[] = "\"}";

size_t openai_msg_append_size(size_t n)
{
    return sizeof append_head - 1 + base64_encoded_len(n) + sizeof append_tail - 1;
}

int openai_msg_append(char *out, size_t cap, const uint8_t *audio, size_t n)
{
    if (openai_msg_append_size(n) > cap)
        return -ENOSPC;
    size_t pos = sizeof append_head - 1;
    memcpy(out, append_head, pos);
    pos += base64_encode(audio, n, out + pos);
    memcpy(out + pos, append_tail, sizeof append_tail - 1);
    return (int)(pos + sizeof append_tail - 1);
}
