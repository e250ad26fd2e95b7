/* Twilio Media Streams messages (protocols.md §1.3-1.4): parsing what Twilio sends into a flat
 * struct without allocating (the media payload stays a view into the message), and building
 * what we send (media, mark, clear) from fixed templates into caller buffers. Twilio's numeric
 * fields arrive as strings; both forms are accepted. */
#ifndef VB_WORKER_TWILIO_MSG_H
#define VB_WORKER_TWILIO_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "common/json_scan.h"

#define TWILIO_SID_MAX 64
#define TWILIO_PARAMS_MAX 16
#define TWILIO_PARAM_NAME_MAX 64
#define TWILIO_PARAM_VALUE_MAX 512
#define TWILIO_MARK_NAME_MAX 128
#define TWILIO_TOKENS_MAX 160

enum twilio_event {
    TWILIO_CONNECTED = 1,
    TWILIO_START,
    TWILIO_MEDIA,
    TWILIO_MARK,
    TWILIO_DTMF,
    TWILIO_STOP,
    TWILIO_UNKNOWN, /* a well-formed message with an event we do not know: ignored */
};

struct twilio_param {
    char name[TWILIO_PARAM_NAME_MAX];
    char value[TWILIO_PARAM_VALUE_MAX];
};

/* The start message's content, copied (it outlives the message). */
struct twilio_start {
    char stream_sid[TWILIO_SID_MAX];
    char call_sid[TWILIO_SID_MAX];
    char account_sid[TWILIO_SID_MAX];
    struct twilio_param params[TWILIO_PARAMS_MAX];
    unsigned n_params;
};

struct twilio_msg {
    enum twilio_event event;
    int64_t sequence;            /* -1 when absent (connected) */
    const char *stream_sid;      /* view into the message, not NUL-terminated; NULL if absent */
    size_t stream_sid_len;
    /* media */
    const char *payload;         /* base64 view into the message */
    size_t payload_len;
    int64_t timestamp_ms;
    const char *track;           /* view; "inbound" or "outbound" */
    size_t track_len;
    /* mark */
    char mark_name[TWILIO_MARK_NAME_MAX];
    /* dtmf */
    char digit;
};

/* Parses one text message. On success fills msg (and start, for a start message) and returns 0;
 * otherwise -EINVAL (not JSON), -EPROTO (JSON but not a valid Twilio message) or -E2BIG, with a
 * short reason in *why (a static string, for the close frame and the log). The views in msg
 * point into text and live as long as it does. toks is scratch space. */
int twilio_msg_parse(const char *text, size_t len, struct json_tok toks[TWILIO_TOKENS_MAX],
                     struct twilio_msg *msg, struct twilio_start *start, const char **why);

/* A streamSid we can put into a JSON template without escaping: 1-63 of [A-Za-z0-9]. */
int twilio_sid_valid(const char *sid, size_t len);

/* Outgoing messages, written into out (capacity cap) without a NUL; each returns the length or
 * -ENOSPC. stream_sid must be valid (twilio_sid_valid); mark names come from us ([A-Za-z0-9.:_-]).
 * For media, payload is raw mu-law, base64-encoded here. */
int twilio_msg_media(char *out, size_t cap, const char *stream_sid, const uint8_t *payload,
                     size_t n);
int twilio_msg_mark(char *out, size_t cap, const char *stream_sid, const char *name);
int twilio_msg_clear(char *out, size_t cap, const char *stream_sid);

/* Bytes twilio_msg_media needs for a payload of n bytes. */
size_t twilio_msg_media_size(size_t stream_sid_len, size_t n);

#endif
