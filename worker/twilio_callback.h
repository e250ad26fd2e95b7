/* Twilio's two callbacks about a call we placed, parsed and validated from their form bodies
 * (protocols.md §3.5 call status, §3.6 recording status) into fixed structs the call store
 * reads: every value is bounded, identifiers are plain [A-Za-z0-9], statuses are one of
 * Twilio's values, numbers are numbers. Nothing is allocated but the form arena; no I/O. */
#ifndef VB_WORKER_TWILIO_CALLBACK_H
#define VB_WORKER_TWILIO_CALLBACK_H

#include <stdbool.h>
#include <stddef.h>

struct form_field;

#define TWILIO_CB_SID_MAX 64     /* CallSid, AccountSid, RecordingSid (Twilio's are 34) */
#define TWILIO_CB_URL_MAX 1024   /* RecordingUrl */
#define TWILIO_CB_FIELDS_MAX 128 /* form fields in one callback (Twilio sends ~30) */

/* protocols.md §3.4; CallStatus of a status callback. */
enum twilio_call_state {
    TWILIO_CALL_QUEUED = 0,
    TWILIO_CALL_INITIATED,
    TWILIO_CALL_RINGING,
    TWILIO_CALL_IN_PROGRESS,
    TWILIO_CALL_COMPLETED,
    TWILIO_CALL_BUSY,
    TWILIO_CALL_FAILED,
    TWILIO_CALL_NO_ANSWER,
    TWILIO_CALL_CANCELED,
};

/* protocols.md §3.6 */
enum twilio_recording_state {
    TWILIO_RECORDING_IN_PROGRESS = 0,
    TWILIO_RECORDING_COMPLETED,
    TWILIO_RECORDING_ABSENT,
};

/* POST /webhook/twilio/call-status. Strings are NUL-terminated, "" when absent; numbers are
 * -1 when absent. */
struct twilio_call_status {
    char call_sid[TWILIO_CB_SID_MAX + 1];    /* required */
    char account_sid[TWILIO_CB_SID_MAX + 1];
    char parent_call_sid[TWILIO_CB_SID_MAX + 1];
    enum twilio_call_state status;           /* required */
    bool terminal;          /* completed, busy, failed, no-answer, canceled: the call is over */
    long call_duration_s;   /* CallDuration, seconds (terminal events) */
    long duration_min;      /* Duration, billed minutes (completed) */
    long sequence_number;   /* SequenceNumber: order callbacks by it, they may come reordered */
    long sip_response_code; /* SipResponseCode */
    char timestamp[64];     /* Timestamp, RFC 2822 as Twilio wrote it */
    char answered_by[24];   /* AnsweredBy (AMD): human, machine_start, ..., unknown */
    char direction[24];     /* outbound-api, inbound, ... */
    char from[72], to[72];  /* numbers, sip: or client: addresses (personal data: mask in logs) */
    char callback_source[32];
    /* With Record=true, on completed: */
    char recording_sid[TWILIO_CB_SID_MAX + 1];
    char recording_url[TWILIO_CB_URL_MAX + 1];
    long recording_duration_s;
};

/* POST /webhook/twilio/recording-status. */
struct twilio_recording_status {
    char call_sid[TWILIO_CB_SID_MAX + 1];      /* required */
    char account_sid[TWILIO_CB_SID_MAX + 1];
    char recording_sid[TWILIO_CB_SID_MAX + 1]; /* required */
    enum twilio_recording_state status;        /* required */
    char recording_url[TWILIO_CB_URL_MAX + 1]; /* http(s) URL, required when completed */
    long channels;                             /* RecordingChannels: 1 or 2, -1 absent */
    long duration_s;                           /* RecordingDuration, -1 absent */
    char start_time[64];                       /* RecordingStartTime */
    char source[32];                           /* RecordingSource: OutboundAPI, ... */
    char track[16];                            /* RecordingTrack: inbound/outbound/both */
    long error_code;                           /* ErrorCode, -1 absent */
};

/* Twilio's spelling of a state ("in-progress", "no-answer"), "?" out of range. */
const char *twilio_call_state_name(enum twilio_call_state s);
const char *twilio_recording_state_name(enum twilio_recording_state s);

/* Fills *out from decoded form fields. Returns 0, or -EINVAL with *bad_field set to the name
 * of the first field that is missing or malformed (a static string, for the 400 answer).
 * Unknown fields are ignored: Twilio adds parameters without notice. */
int twilio_call_status_from_form(const struct form_field *f, size_t n,
                                 struct twilio_call_status *out, const char **bad_field);
int twilio_recording_status_from_form(const struct form_field *f, size_t n,
                                      struct twilio_recording_status *out,
                                      const char **bad_field);

/* The same from a raw application/x-www-form-urlencoded body (up to TWILIO_CB_FIELDS_MAX
 * fields; the arena is allocated and freed here). A body form_parse refuses gives -EINVAL with
 * *bad_field "body"; -ENOMEM. */
int twilio_call_status_parse(const char *body, size_t len, struct twilio_call_status *out,
                             const char **bad_field);
int twilio_recording_status_parse(const char *body, size_t len,
                                  struct twilio_recording_status *out, const char **bad_field);

#endif
