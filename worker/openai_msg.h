/* OpenAI Realtime (GA dialect, protocols.md §4) messages: building client events and parsing
 * server events. The per-frame ones (input_audio_buffer.append out; audio and transcript deltas
 * in) use fixed templates and the zero-allocation scanner; rare events go through jansson.
 * Beta event names are recognised too, so recorded beta traffic still parses. */
#ifndef VB_WORKER_OPENAI_MSG_H
#define VB_WORKER_OPENAI_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "common/json_scan.h"

#define OPENAI_ID_MAX 96
#define OPENAI_TOKENS_MAX 256

enum openai_event_type {
    OPENAI_OTHER = 0, /* valid, not needed by the bridge */
    OPENAI_SESSION_CREATED,
    OPENAI_SESSION_UPDATED,
    OPENAI_ERROR,
    OPENAI_SPEECH_STARTED,
    OPENAI_SPEECH_STOPPED,
    OPENAI_AUDIO_DELTA,
    OPENAI_AUDIO_DONE,
    OPENAI_AUDIO_TRANSCRIPT_DELTA,
    OPENAI_AUDIO_TRANSCRIPT_DONE,
    OPENAI_INPUT_TRANSCRIPT_DONE,
    OPENAI_INPUT_TRANSCRIPT_FAILED,
    OPENAI_RESPONSE_CREATED,
    OPENAI_RESPONSE_DONE,
    OPENAI_OUTPUT_ITEM_ADDED,
    OPENAI_FUNCTION_CALL_DONE,
    OPENAI_ITEM_TRUNCATED,
};

struct openai_usage {
    int64_t input_text, input_audio, cached_text, cached_audio, output_text, output_audio;
};

/* One server event. Views point into the message text; text is heap-owned by the event
 * (openai_event_clear frees it) and only set for rare events (transcripts, errors, tool args). */
struct openai_event {
    enum openai_event_type type;
    const char *delta; /* AUDIO_DELTA: base64 view; *_TRANSCRIPT_DELTA: escaped text view */
    size_t delta_len;
    int delta_escaped; /* transcript delta contains JSON escapes (use openai_event_delta_text) */
    char item_id[OPENAI_ID_MAX];
    char response_id[OPENAI_ID_MAX];
    char call_id[OPENAI_ID_MAX];
    char name[OPENAI_ID_MAX];   /* function name; error code; item type for OUTPUT_ITEM_ADDED */
    char status[32];            /* RESPONSE_DONE: completed/cancelled/failed/incomplete */
    char reason[48];            /* RESPONSE_DONE: status_details.reason */
    int64_t audio_ms;           /* SPEECH_*: audio_start_ms / audio_end_ms */
    struct openai_usage usage;  /* RESPONSE_DONE */
    char *text;                 /* transcript, error message, or function arguments (owned) */
};

/* Parses one server message. 0 on success (type may be OPENAI_OTHER), -EINVAL if it is not a
 * JSON object with a string "type", -ENOMEM. toks is scratch space; clear the event after. */
int openai_event_parse(const char *msg, size_t len, struct json_tok toks[OPENAI_TOKENS_MAX],
                       struct openai_event *ev);
void openai_event_clear(struct openai_event *ev);

/* Session configuration for session.update, all borrowed strings. */
struct openai_session_cfg {
    const char *model;
    const char *instructions;
    const char *voice;
    int g711;                        /* 1: audio/pcmu both ways; 0: audio/pcm 24 kHz */
    const char *transcription_model; /* NULL: off */
    const char *turn_detection_json; /* NULL: server default; "null": manual turns */
    const char *tools_json;          /* JSON array of tools, or NULL */
};

/* Client events that are built rarely: heap strings (caller frees with free()), NULL on
 * failure. Strings are escaped by jansson. */
char *openai_msg_session_update(const struct openai_session_cfg *cfg);
char *openai_msg_response_create(const char *instructions /* NULL: no override */);
char *openai_msg_response_cancel(const char *response_id /* NULL: current */);
char *openai_msg_truncate(const char *item_id, uint32_t audio_end_ms);
char *openai_msg_function_output(const char *call_id, const char *output);
/* A system message added to the conversation (for "say this now" and the like). */
char *openai_msg_system_item(const char *text);

/* input_audio_buffer.append with audio base64-encoded from raw bytes, into out (no NUL);
 * returns the length or -ENOSPC. The per-frame path: no allocation. */
int openai_msg_append(char *out, size_t cap, const uint8_t *audio, size_t n);
size_t openai_msg_append_size(size_t n);

#endif
