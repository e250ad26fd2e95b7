/* Call-status and recording-status callbacks: form fields to structs. Each field is checked
 * for what it must be (an id, a number in range, one of Twilio's words, a URL, bounded
 * printable text) so that what reaches Redis and the logs is exactly that; the first field
 * that is not is named back to the caller for its 400 answer. */
#include "worker/twilio_callback.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/form.h"

static const char *const call_states[] = {
    [TWILIO_CALL_QUEUED] = "queued",         [TWILIO_CALL_INITIATED] = "initiated",
    [TWILIO_CALL_RINGING] = "ringing",       [TWILIO_CALL_IN_PROGRESS] = "in-progress",
    [TWILIO_CALL_COMPLETED] = "completed",   [TWILIO_CALL_BUSY] = "busy",
    [TWILIO_CALL_FAILED] = "failed",         [TWILIO_CALL_NO_ANSWER] = "no-answer",
    [TWILIO_CALL_CANCELED] = "canceled",
};

static const char *const recording_states[] = {
    [TWILIO_RECORDING_IN_PROGRESS] = "in-progress",
    [TWILIO_RECORDING_COMPLETED] = "completed",
    [TWILIO_RECORDING_ABSENT] = "absent",
};

/* AnsweredBy (protocols.md §3.2) */
static const char *const answered_by_values[] = {
    "human", "machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other",
    "fax", "unknown",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const char *twilio_call_state_name(enum twilio_call_state s)
{
    return (unsigned)s < COUNT(call_states) ? call_states[s] : "?";
}

const char *twilio_recording_state_name(enum twilio_recording_state s)
{
    return (unsigned)s < COUNT(recording_states) ? recording_states[s] : "?";
}

/* Each getter returns true when the field is acceptable (absent and optional counts), false
 * when it is missing and required or malformed. */

static bool get_sid(const struct form_field *f, size_t n, const char *name, bool required,
                    char *out)
{
    const char *v = form_get(f, n, name);
    out[0] = '\0';
    if (v == NULL || v[0] == '\0')
        return !required;
    size_t len = strlen(v);
    if (len > TWILIO_CB_SID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return false;
    }
    memcpy(out, v, len + 1);
    return true;
}

/* A decimal integer lo..hi; an empty value counts as absent (Twilio sends CallDuration="" on
 * some events). */
static bool get_long(const struct form_field *f, size_t n, const char *name, long lo, long hi,
                     long *out)
{
    const char *v = form_get(f, n, name);
    *out = -1;
    if (v == NULL || v[0] == '\0')
        return true;
    long x = 0;
    size_t i = 0;
    for (; v[i] >= '0' && v[i] <= '9'; i++) {
        x = x * 10 + (v[i] - '0');
        if (x > hi)
            return false;
    }
    if (v[i] != '\0' || x < lo)
        return false;
    *out = x;
    return true;
}

/* Printable text (UTF-8 allowed, no control characters) that fits cap with its NUL. */
static bool get_text(const struct form_field *f, size_t n, const char *name, char *out,
                     size_t cap)
{
    const char *v = form_get(f, n, name);
    out[0] = '\0';
    if (v == NULL)
        return true;
    size_t len = strlen(v);
    if (len >= cap)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
            return false;
    memcpy(out, v, len + 1);
    return true;
}

/* Index of the value in table, -1 absent, -2 not one of them. */
static int get_enum(const struct form_field *f, size_t n, const char *name,
                    const char *const *table, size_t count)
{
    const char *v = form_get(f, n, name);
    if (v == NULL || v[0] == '\0')
        return -1;
    for (size_t i = 0; i < count; i++)
        if (strcmp(v, table[i]) == 0)
            return (int)i;
    return -2;
}

/* An absolute http(s) URL of visible ASCII. */
static bool get_url(const struct form_field *f, size_t n, const char *name, char *out)
{
    const char *v = form_get(f, n, name);
    out[0] = '\0';
    if (v == NULL || v[0] == '\0')
        return true;
    size_t len = strlen(v);
    if (len > TWILIO_CB_URL_MAX ||
        !(strncmp(v, "https://", 8) == 0 || strncmp(v, "http://", 7) == 0))
        return false;
    for (size_t i = 0; i < len; i++)
        if (v[i] <= ' ' || v[i] >= 0x7f)
            return false;
    size_t host = v[4] == 's' ? 8 : 7;
    if (len == host || v[host] == '/')
        return false; /* no host */
    memcpy(out, v, len + 1);
    return true;
}

#define FIELD_OR_FAIL(ok, name)                                                              \
    do {                                                                                     \
        if (!(ok)) {                                                                         \
            *bad_field = (name);                                                             \
            return -EINVAL;                                                                  \
        }                                                                                    \
    } while (0)

int twilio_call_status_from_form(const struct form_field *f, size_t n,
                                 struct twilio_call_status *out, const char **bad_field)
{
    memset(out, 0, sizeof *out);
    *bad_field = NULL;
    FIELD_OR_FAIL(get_sid(f, n, "CallSid", true, out->call_sid), "CallSid");
    int st = get_enum(f, n, "CallStatus", call_states, COUNT(call_states));
    FIELD_OR_FAIL(st >= 0, "CallStatus");
    out->status = (enum twilio_call_state)st;
    out->terminal = st >= TWILIO_CALL_COMPLETED;
    FIELD_OR_FAIL(get_sid(f, n, "AccountSid", false, out->account_sid), "AccountSid");
    FIELD_OR_FAIL(get_sid(f, n, "ParentCallSid", false, out->parent_call_sid), "ParentCallSid");
    /* Bounds: a call lasts at most a few days; SIP codes are 100..699. */
    FIELD_OR_FAIL(get_long(f, n, "CallDuration", 0, 10000000, &out->call_duration_s),
                  "CallDuration");
    FIELD_OR_FAIL(get_long(f, n, "Duration", 0, 1000000, &out->duration_min), "Duration");
    FIELD_OR_FAIL(get_long(f, n, "SequenceNumber", 0, 1000000, &out->sequence_number),
                  "SequenceNumber");
    FIELD_OR_FAIL(get_long(f, n, "SipResponseCode", 100, 699, &out->sip_response_code),
                  "SipResponseCode");
    FIELD_OR_FAIL(get_text(f, n, "Timestamp", out->timestamp, sizeof out->timestamp),
                  "Timestamp");
    int ab = get_enum(f, n, "AnsweredBy", answered_by_values, COUNT(answered_by_values));
    FIELD_OR_FAIL(ab != -2, "AnsweredBy");
    if (ab >= 0)
        strcpy(out->answered_by, answered_by_values[ab]);
    FIELD_OR_FAIL(get_text(f, n, "Direction", out->direction, sizeof out->direction),
                  "Direction");
    FIELD_OR_FAIL(get_text(f, n, "From", out->from, sizeof out->from), "From");
    FIELD_OR_FAIL(get_text(f, n, "To", out->to, sizeof out->to), "To");
    FIELD_OR_FAIL(get_text(f, n, "CallbackSource", out->callback_source,
                           sizeof out->callback_source),
                  "CallbackSource");
    FIELD_OR_FAIL(get_sid(f, n, "RecordingSid", false, out->recording_sid), "RecordingSid");
    FIELD_OR_FAIL(get_url(f, n, "RecordingUrl", out->recording_url), "RecordingUrl");
    FIELD_OR_FAIL(get_long(f, n, "RecordingDuration", 0, 10000000, &out->recording_duration_s),
                  "RecordingDuration");
    return 0;
}

int twilio_recording_status_from_form(const struct form_field *f, size_t n,
                                      struct twilio_recording_status *out,
                                      const char **bad_field)
{
    memset(out, 0, sizeof *out);
    *bad_field = NULL;
    FIELD_OR_FAIL(get_sid(f, n, "CallSid", true, out->call_sid), "CallSid");
    FIELD_OR_FAIL(get_sid(f, n, "RecordingSid", true, out->recording_sid), "RecordingSid");
    int st = get_enum(f, n, "RecordingStatus", recording_states, COUNT(recording_states));
    FIELD_OR_FAIL(st >= 0, "RecordingStatus");
    out->status = (enum twilio_recording_state)st;
    FIELD_OR_FAIL(get_sid(f, n, "AccountSid", false, out->account_sid), "AccountSid");
    FIELD_OR_FAIL(get_url(f, n, "RecordingUrl", out->recording_url), "RecordingUrl");
    FIELD_OR_FAIL(st != TWILIO_RECORDING_COMPLETED || out->recording_url[0] != '\0',
                  "RecordingUrl");
    FIELD_OR_FAIL(get_long(f, n, "RecordingChannels", 1, 2, &out->channels),
                  "RecordingChannels");
    FIELD_OR_FAIL(get_long(f, n, "RecordingDuration", 0, 10000000, &out->duration_s),
                  "RecordingDuration");
    FIELD_OR_FAIL(get_text(f, n, "RecordingStartTime", out->start_time, sizeof out->start_time),
                  "RecordingStartTime");
    FIELD_OR_FAIL(get_text(f, n, "RecordingSource", out->source, sizeof out->source),
                  "RecordingSource");
    static const char *const tracks[] = {"inbound", "outbound", "both"};
    int tr = get_enum(f, n, "RecordingTrack", tracks, COUNT(tracks));
    FIELD_OR_FAIL(tr != -2, "RecordingTrack");
    if (tr >= 0)
        strcpy(out->track, tracks[tr]);
    FIELD_OR_FAIL(get_long(f, n, "ErrorCode", 0, 99999999, &out->error_code), "ErrorCode");
    return 0;
}

/* form_parse into a table and an arena of our own, then fn. */
static int parse_with(const char *body, size_t len, const char **bad_field,
                      int (*fn)(const struct form_field *, size_t, void *, const char **),
                      void *out)
{
    static const size_t fields_bytes = TWILIO_CB_FIELDS_MAX * sizeof(struct form_field);
    *bad_field = NULL;
    char *mem = malloc(fields_bytes + FORM_ARENA_SIZE(len));
    if (mem == NULL)
        return -ENOMEM;
    struct form_field *fields = (struct form_field *)(void *)mem;
    size_t n;
    int rc = form_parse(body != NULL ? body : "", len, fields, TWILIO_CB_FIELDS_MAX,
                        mem + fields_bytes, FORM_ARENA_SIZE(len), &n);
    if (rc != 0) {
        *bad_field = "body";
        rc = -EINVAL;
    } else {
        rc = fn(fields, n, out, bad_field);
    }
    free(mem);
    return rc;
}

static int call_status_fn(const struct form_field *f, size_t n, void *out, const char **bad)
{
    return twilio_call_status_from_form(f, n, out, bad);
}

static int recording_status_fn(const struct form_field *f, size_t n, void *out, const char **bad)
{
    return twilio_recording_status_from_form(f, n, out, bad);
}

int twilio_call_status_parse(const char *body, size_t len, struct twilio_call_status *out,
                             const char **bad_field)
{
    return parse_with(body, len, bad_field, call_status_fn, out);
}

int twilio_recording_status_parse(const char *body, size_t len,
                                  struct twilio_recording_status *out, const char **bad_field)
{
    return parse_with(body, len, bad_field, recording_status_fn, out);
}
