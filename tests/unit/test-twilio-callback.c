/* Parsing of Twilio's call-status and recording-status callbacks: full real-shaped bodies,
 * every status value, optional fields absent or empty, and each kind of bad field named. */
#include "worker/twilio_callback.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tests/unit/testing.h"

#define SID "CA0123456789abcdef0123456789abcdef"

static int call_parse(const char *body, struct twilio_call_status *st, const char **field)
{
    return twilio_call_status_parse(body, strlen(body), st, field);
}

static int rec_parse(const char *body, struct twilio_recording_status *r, const char **field)
{
    return twilio_recording_status_parse(body, strlen(body), r, field);
}

/* Expects the body to be refused naming field. */
#define CALL_BAD(body, want)                                                                 \
    do {                                                                                     \
        struct twilio_call_status st_;                                                       \
        const char *f_;                                                                      \
        CHECK_EQ(call_parse(body, &st_, &f_), -EINVAL);                                      \
        CHECK_MSG(f_ != NULL && strcmp(f_, want) == 0, "%s: named %s, not %s", body,        \
                  f_ ? f_ : "(null)", want);                                                 \
    } while (0)

#define REC_BAD(body, want)                                                                  \
    do {                                                                                     \
        struct twilio_recording_status r_;                                                   \
        const char *f_;                                                                      \
        CHECK_EQ(rec_parse(body, &r_, &f_), -EINVAL);                                        \
        CHECK_MSG(f_ != NULL && strcmp(f_, want) == 0, "%s: named %s, not %s", body,        \
                  f_ ? f_ : "(null)", want);                                                 \
    } while (0)

TEST(twilio_callback_call_completed)
{
    const char *body =
        "Called=%2B34612345678&ToState=&CallerCountry=US&Direction=outbound-api"
        "&Timestamp=Fri%2C+18+Oct+2019+17%3A00%3A42+%2B0000&CallbackSource=call-progress-events"
        "&SipResponseCode=200&CallerState=CA&ToZip=&SequenceNumber=3&CallSid=" SID
        "&To=%2B34612345678&CallerZip=&ToCountry=ES&CalledZip=&ApiVersion=2010-04-01"
        "&CalledCity=&CallStatus=completed&Duration=1&From=%2B14155550100&CallDuration=42"
        "&AccountSid=ACtestaccount000000000000000000000&CalledCountry=ES&CallerCity="
        "&ToCity=&FromCountry=US&Caller=%2B14155550100&FromCity=&CalledState=&FromZip="
        "&FromState=CA&AnsweredBy=human&RecordingSid=RE0123&RecordingUrl=https%3A%2F%2F"
        "api.twilio.com%2F2010-04-01%2FAccounts%2FAC1%2FRecordings%2FRE0123"
        "&RecordingDuration=41&NewField=whatever";
    struct twilio_call_status st;
    const char *field = "x";
    CHECK_EQ(call_parse(body, &st, &field), 0);
    CHECK(field == NULL);
    CHECK(strcmp(st.call_sid, SID) == 0);
    CHECK(strcmp(st.account_sid, "ACtestaccount000000000000000000000") == 0);
    CHECK_EQ(st.status, TWILIO_CALL_COMPLETED);
    CHECK(st.terminal);
    CHECK_EQ(st.call_duration_s, 42);
    CHECK_EQ(st.duration_min, 1);
    CHECK_EQ(st.sequence_number, 3);
    CHECK_EQ(st.sip_response_code, 200);
    CHECK(strcmp(st.timestamp, "Fri, 18 Oct 2019 17:00:42 +0000") == 0);
    CHECK(strcmp(st.answered_by, "human") == 0);
    CHECK(strcmp(st.direction, "outbound-api") == 0);
    CHECK(strcmp(st.from, "+14155550100") == 0);
    CHECK(strcmp(st.to, "+34612345678") == 0);
    CHECK(strcmp(st.callback_source, "call-progress-events") == 0);
    CHECK(strcmp(st.recording_sid, "RE0123") == 0);
    CHECK(strncmp(st.recording_url, "https://api.twilio.com/2010-04-01/", 34) == 0);
    CHECK_EQ(st.recording_duration_s, 41);
    CHECK(st.parent_call_sid[0] == '\0');
}

TEST(twilio_callback_call_every_status)
{
    static const char *const names[] = {"queued", "initiated", "ringing", "in-progress",
                                        "completed", "busy", "failed", "no-answer",
                                        "canceled"};
    for (int i = 0; i < 9; i++) {
        char body[256];
        snprintf(body, sizeof body, "CallSid=CA1&CallStatus=%s", names[i]);
        struct twilio_call_status st;
        const char *field;
        CHECK_EQ(call_parse(body, &st, &field), 0);
        CHECK_EQ(st.status, i);
        CHECK(strcmp(twilio_call_state_name(st.status), names[i]) == 0);
        CHECK_EQ(st.terminal, i >= TWILIO_CALL_COMPLETED);
        /* absent numbers are -1, absent strings "" */
        CHECK_EQ(st.call_duration_s, -1);
        CHECK_EQ(st.sequence_number, -1);
        CHECK_EQ(st.sip_response_code, -1);
        CHECK(st.answered_by[0] == '\0' && st.timestamp[0] == '\0');
    }
    CHECK(strcmp(twilio_call_state_name((enum twilio_call_state)99), "?") == 0);
    /* An empty CallDuration (ringing events) is absent, not 0. */
    struct twilio_call_status st;
    const char *field;
    CHECK_EQ(call_parse("CallSid=CA1&CallStatus=ringing&CallDuration=&AnsweredBy=", &st, &field),
             0);
    CHECK_EQ(st.call_duration_s, -1);
    static const char *const amd[] = {"human", "machine_start", "machine_end_beep",
                                      "machine_end_silence", "machine_end_other", "fax",
                                      "unknown"};
    for (int i = 0; i < 7; i++) {
        char body[128];
        snprintf(body, sizeof body, "CallSid=CA1&CallStatus=in-progress&AnsweredBy=%s", amd[i]);
        CHECK_EQ(call_parse(body, &st, &field), 0);
        CHECK(strcmp(st.answered_by, amd[i]) == 0);
    }
}

TEST(twilio_callback_call_bad_fields_are_named)
{
    CALL_BAD("", "CallSid");
    CALL_BAD("CallStatus=completed", "CallSid");
    CALL_BAD("CallSid=&CallStatus=completed", "CallSid");
    CALL_BAD("CallSid=CA%2F..%2Fx&CallStatus=completed", "CallSid");
    CALL_BAD("CallSid=CA1+1&CallStatus=completed", "CallSid");
    CALL_BAD("CallSid=CA12345678901234567890123456789012345678901234567890123456789012345"
             "&CallStatus=completed",
             "CallSid");
    CALL_BAD("CallSid=CA1", "CallStatus");
    CALL_BAD("CallSid=CA1&CallStatus=Completed", "CallStatus");
    CALL_BAD("CallSid=CA1&CallStatus=answered", "CallStatus");
    CALL_BAD("CallSid=CA1&CallStatus=completed&CallDuration=-1", "CallDuration");
    CALL_BAD("CallSid=CA1&CallStatus=completed&CallDuration=4x", "CallDuration");
    CALL_BAD("CallSid=CA1&CallStatus=completed&CallDuration=99999999999999999999999",
             "CallDuration");
    CALL_BAD("CallSid=CA1&CallStatus=completed&SequenceNumber=+1", "SequenceNumber");
    CALL_BAD("CallSid=CA1&CallStatus=completed&SipResponseCode=99", "SipResponseCode");
    CALL_BAD("CallSid=CA1&CallStatus=completed&AnsweredBy=robot", "AnsweredBy");
    CALL_BAD("CallSid=CA1&CallStatus=completed&Timestamp=a%0Ab", "Timestamp");
    CALL_BAD("CallSid=CA1&CallStatus=completed&AccountSid=AC-1", "AccountSid");
    CALL_BAD("CallSid=CA1&CallStatus=completed&RecordingUrl=ftp%3A%2F%2Fx", "RecordingUrl");
    CALL_BAD("CallSid=CA1&CallStatus=completed&RecordingUrl=https%3A%2F%2F", "RecordingUrl");
    CALL_BAD("CallSid=CA1&CallStatus=completed&RecordingUrl=https%3A%2F%2Fa+b", "RecordingUrl");
    CALL_BAD("CallSid=CA1&CallStatus=completed&From=" /* 72+ bytes */
             "1234567890123456789012345678901234567890123456789012345678901234567890123",
             "From");
    CALL_BAD("CallSid=CA1&CallStatus=completed&bad=%zz", "body");
    CALL_BAD("CallSid=CA1&CallStatus=completed&nul=%00", "body");
    /* more fields than the table holds */
    char many[2000] = "CallSid=CA1&CallStatus=completed";
    for (int i = 0; i < TWILIO_CB_FIELDS_MAX; i++)
        strcat(many, "&a=1");
    CALL_BAD(many, "body");
}

TEST(twilio_callback_recording)
{
    const char *body = "RecordingSource=OutboundAPI&RecordingTrack=both&RecordingSid=RE01"
                       "&RecordingUrl=https%3A%2F%2Fapi.twilio.com%2F2010-04-01%2FAccounts%2FAC1"
                       "%2FRecordings%2FRE01&RecordingStatus=completed&RecordingChannels=2"
                       "&ErrorCode=0&CallSid=" SID "&RecordingStartTime=Fri%2C+18+Oct+2019"
                       "+17%3A00%3A01+%2B0000&AccountSid=AC1&RecordingDuration=41";
    struct twilio_recording_status r;
    const char *field;
    CHECK_EQ(rec_parse(body, &r, &field), 0);
    CHECK(strcmp(r.call_sid, SID) == 0);
    CHECK(strcmp(r.recording_sid, "RE01") == 0);
    CHECK_EQ(r.status, TWILIO_RECORDING_COMPLETED);
    CHECK(strcmp(twilio_recording_state_name(r.status), "completed") == 0);
    CHECK(strcmp(r.recording_url,
                 "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE01") == 0);
    CHECK_EQ(r.channels, 2);
    CHECK_EQ(r.duration_s, 41);
    CHECK_EQ(r.error_code, 0);
    CHECK(strcmp(r.start_time, "Fri, 18 Oct 2019 17:00:01 +0000") == 0);
    CHECK(strcmp(r.source, "OutboundAPI") == 0);
    CHECK(strcmp(r.track, "both") == 0);
    CHECK(strcmp(r.account_sid, "AC1") == 0);
    /* absent: no URL needed, numbers -1 */
    CHECK_EQ(rec_parse("CallSid=CA1&RecordingSid=RE1&RecordingStatus=absent", &r, &field), 0);
    CHECK_EQ(r.status, TWILIO_RECORDING_ABSENT);
    CHECK_EQ(r.channels, -1);
    CHECK_EQ(r.duration_s, -1);
    CHECK_EQ(rec_parse("CallSid=CA1&RecordingSid=RE1&RecordingStatus=in-progress", &r, &field),
             0);
    CHECK_EQ(r.status, TWILIO_RECORDING_IN_PROGRESS);
}

TEST(twilio_callback_recording_bad_fields_are_named)
{
    REC_BAD("RecordingSid=RE1&RecordingStatus=absent", "CallSid");
    REC_BAD("CallSid=CA1&RecordingStatus=absent", "RecordingSid");
    REC_BAD("CallSid=CA1&RecordingSid=RE%3B1&RecordingStatus=absent", "RecordingSid");
    REC_BAD("CallSid=CA1&RecordingSid=RE1", "RecordingStatus");
    REC_BAD("CallSid=CA1&RecordingSid=RE1&RecordingStatus=done", "RecordingStatus");
    REC_BAD("CallSid=CA1&RecordingSid=RE1&RecordingStatus=completed", "RecordingUrl");
    REC_BAD("CallSid=CA1&RecordingSid=RE1&RecordingStatus=completed&RecordingUrl=javascript%3A1",
            "RecordingUrl");
    REC_BAD("CallSid=CA1&RecordingSid=RE1&RecordingStatus=absent&RecordingChannels=3",
            "RecordingChannels");
    REC_BAD("CallSid=CA1&RecordingSid=RE1&RecordingStatus=absent&RecordingChannels=0",
            "RecordingChannels");
    REC_BAD("CallSid=CA1&RecordingSid=RE1&RecordingStatus=absent&RecordingDuration=1.5",
            "RecordingDuration");
    REC_BAD("CallSid=CA1&RecordingSid=RE1&RecordingStatus=absent&RecordingTrack=left",
            "RecordingTrack");
    REC_BAD("CallSid=CA1&RecordingSid=RE1&RecordingStatus=absent&x=%", "body");
}
