/* Twilio Media Streams message codec: json_scan for parsing (no tree, no allocation), string
 * templates for building. Validation follows protocols.md §1.3: event first, then the fields
 * each event requires; unknown events are reported as such, not rejected. */
#include "worker/twilio_msg.h"

#include <errno.h>
#include <string.h>

#include "common/base64.h"

int twilio_sid_valid(const char *sid, size_t len)
{
    if (len == 0 || len >= TWILIO_SID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = sid[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return 0;
    }
    return 1;
}

/* Copies the string member key of obj into out; -EPROTO if missing, not a string or too long. */
static int copy_str(const char *text, const struct json_tok *toks, int obj, const char *key,
                    char *out, size_t cap)
{
    size_t len;
    int v = json_get(text, toks, obj, key);
    if (v < 0 || json_str(text, toks, v, out, cap, &len) != 0)
        return -EPROTO;
    return 0;
}

static int parse_start(const char *text, const struct json_tok *toks, int root,
                       struct twilio_start *st, const char **why)
{
    int s = json_get(text, toks, root, "start");
    if (s < 0 || toks[s].type != JTOK_OBJECT) {
        *why = "start without a start object";
        return -EPROTO;
    }
    memset(st, 0, sizeof *st);
    if (copy_str(text, toks, s, "streamSid", st->stream_sid, sizeof st->stream_sid) != 0 ||
        !twilio_sid_valid(st->stream_sid, strlen(st->stream_sid))) {
        *why = "start.streamSid missing or invalid";
        return -EPROTO;
    }
    if (copy_str(text, toks, s, "callSid", st->call_sid, sizeof st->call_sid) != 0 ||
        !twilio_sid_valid(st->call_sid, strlen(st->call_sid))) {
        *why = "start.callSid missing or invalid";
        return -EPROTO;
    }
    if (copy_str(text, toks, s, "accountSid", st->account_sid, sizeof st->account_sid) != 0)
        st->account_sid[0] = '\0';
    int fmt = json_get(text, toks, s, "mediaFormat");
    if (fmt >= 0) {
        int64_t rate = 0, channels = 0;
        if (!json_str_eq(text, toks, json_get(text, toks, fmt, "encoding"), "audio/x-mulaw") ||
            json_int(text, toks, json_get(text, toks, fmt, "sampleRate"), &rate) != 0 ||
            rate != 8000 ||
            json_int(text, toks, json_get(text, toks, fmt, "channels"), &channels) != 0 ||
            channels != 1) {
            *why = "start.mediaFormat is not mu-law 8000 Hz mono";
            return -EPROTO;
        }
    }
    int cp = json_get(text, toks, s, "customParameters");
    if (cp >= 0) {
        if (toks[cp].type != JTOK_OBJECT) {
            *why = "start.customParameters is not an object";
            return -EPROTO;
        }
        int k = cp + 1;
        for (uint32_t m = 0; m < toks[cp].count; m++) {
            int v = k + 1;
            size_t len;
            if (st->n_params == TWILIO_PARAMS_MAX) {
                *why = "too many customParameters";
                return -EPROTO;
            }
            struct twilio_param *p = &st->params[st->n_params];
            if (json_str(text, toks, k, p->name, sizeof p->name, &len) != 0 ||
                json_str(text, toks, v, p->value, sizeof p->value, &len) != 0) {
                *why = "customParameters entry is not a string or too long";
                return -EPROTO;
            }
            st->n_params++;
            k = v + (int)toks[v].skip;
        }
    }
    return 0;
}

int twilio_msg_parse(const char *text, size_t len, struct json_tok toks[TWILIO_TOKENS_MAX],
                     struct twilio_msg *msg, struct twilio_start *start, const char **why)
{
    memset(msg, 0, sizeof *msg);
    msg->sequence = -1;
    int n = json_scan(text, len, toks, TWILIO_TOKENS_MAX);
    if (n == -E2BIG) {
        *why = "message has too many JSON values";
        return -E2BIG;
    }
    if (n < 0) {
        *why = "message is not valid JSON";
        return -EINVAL;
    }
    if (toks[0].type != JTOK_OBJECT) {
        *why = "message is not a JSON object";
        return -EPROTO;
    }
    int ev = json_get(text, toks, 0, "event");
    if (ev < 0 || toks[ev].type != JTOK_STRING) {
        *why = "message has no event";
        return -EPROTO;
    }
    int seq = json_get(text, toks, 0, "sequenceNumber");
    if (seq >= 0 && json_int(text, toks, seq, &msg->sequence) != 0) {
        *why = "sequenceNumber is not an integer";
        return -EPROTO;
    }
    int sid = json_get(text, toks, 0, "streamSid");
    if (sid >= 0) {
        if (json_str_view(text, toks, sid, &msg->stream_sid, &msg->stream_sid_len) != 0 ||
            !twilio_sid_valid(msg->stream_sid, msg->stream_sid_len)) {
            *why = "streamSid is invalid";
            return -EPROTO;
        }
    }

    if (json_str_eq(text, toks, ev, "media")) {
        msg->event = TWILIO_MEDIA;
        int m = json_get(text, toks, 0, "media");
        int p = json_get(text, toks, m, "payload");
        if (p < 0 || json_str_view(text, toks, p, &msg->payload, &msg->payload_len) != 0) {
            *why = "media.payload missing or not a plain string";
            return -EPROTO;
        }
        int ts = json_get(text, toks, m, "timestamp");
        if (ts >= 0 && json_int(text, toks, ts, &msg->timestamp_ms) != 0) {
            *why = "media.timestamp is not an integer";
            return -EPROTO;
        }
        int tr = json_get(text, toks, m, "track");
        if (tr >= 0 && json_str_view(text, toks, tr, &msg->track, &msg->track_len) != 0) {
            *why = "media.track is invalid";
            return -EPROTO;
        }
        return 0;
    }
    if (json_str_eq(text, toks, ev, "mark")) {
        msg->event = TWILIO_MARK;
        if (copy_str(text, toks, json_get(text, toks, 0, "mark"), "name", msg->mark_name,
                     sizeof msg->mark_name) != 0) {
            *why = "mark.name missing or too long";
            return -EPROTO;
        }
        return 0;
    }
    if (json_str_eq(text, toks, ev, "connected")) {
        msg->event = TWILIO_CONNECTED;
        return 0;
    }
    if (json_str_eq(text, toks, ev, "start")) {
        msg->event = TWILIO_START;
        return parse_start(text, toks, 0, start, why);
    }
    if (json_str_eq(text, toks, ev, "dtmf")) {
        msg->event = TWILIO_DTMF;
        char digit[4];
        if (copy_str(text, toks, json_get(text, toks, 0, "dtmf"), "digit", digit, sizeof digit) != 0 ||
            strlen(digit) != 1 || strchr("0123456789*#ABCDabcd", digit[0]) == NULL) {
            *why = "dtmf.digit missing or invalid";
            return -EPROTO;
        }
        msg->digit = digit[0];
        return 0;
    }
    if (json_str_eq(text, toks, ev, "stop")) {
        msg->event = TWILIO_STOP;
        return 0;
    }
    msg->event = TWILIO_UNKNOWN;
    return 0;
}

/* Appends s to out at *pos if it fits. */
static int put(char *out, size_t cap, size_t *pos, const char *s, size_t n)
{
    if (cap - *pos < n)
        return -ENOSPC;
    memcpy(out + *pos, s, n);
    *pos += n;
    return 0;
}

#define PUT_LIT(lit) put(out, cap, &pos, lit, sizeof(lit) - 1)

static const char media_head[] = "{\"event\":\"media\",\"streamSid\":\"";
static const char media_mid[] = "\",\"media\":{\"payload\":\"";
static const char media_tail[] = "\"}}";

size_t twilio_msg_media_size(size_t stream_sid_len, size_t n)
{
    return sizeof media_head - 1 + stream_sid_len + sizeof media_mid - 1 + base64_encoded_len(n) +
           sizeof media_tail - 1;
}

int twilio_msg_media(char *out, size_t cap, const char *stream_sid, const uint8_t *payload,
                     size_t n)
{
    size_t sl = strlen(stream_sid), pos = 0;
    if (twilio_msg_media_size(sl, n) > cap)
        return -ENOSPC;
    PUT_LIT(media_head);
    put(out, cap, &pos, stream_sid, sl);
    PUT_LIT(media_mid);
    pos += base64_encode(payload, n, out + pos);
    PUT_LIT(media_tail);
    return (int)pos;
}

int twilio_msg_mark(char *out, size_t cap, const char *stream_sid, const char *name)
{
    size_t pos = 0;
    if (PUT_LIT("{\"event\":\"mark\",\"streamSid\":\"") || put(out, cap, &pos, stream_sid, strlen(stream_sid)) ||
        PUT_LIT("\",\"mark\":{\"name\":\"") || put(out, cap, &pos, name, strlen(name)) ||
        PUT_LIT("\"}}"))
        return -ENOSPC;
    return (int)pos;
}

int twilio_msg_clear(char *out, size_t cap, const char *stream_sid)
{
    size_t pos = 0;
    if (PUT_LIT("{\"event\":\"clear\",\"streamSid\":\"") ||
        put(out, cap, &pos, stream_sid, strlen(stream_sid)) || PUT_LIT("\"}"))
        return -ENOSPC;
    return (int)pos;
}
