/* Fuzz target for worker/twilio_callback: arbitrary bytes as a call-status and as a
 * recording-status body. Checks memory safety, that a refusal names a field, and that an
 * accepted callback holds only what its checks promise (bounded ids of [A-Za-z0-9], known
 * states, numbers in range). */
#include "worker/twilio_callback.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_sid(const char *s, int required)
{
    size_t n = strnlen(s, TWILIO_CB_SID_MAX + 1);
    if (n > TWILIO_CB_SID_MAX || (required && n == 0))
        abort();
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9')))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct twilio_call_status st;
    const char *field;
    int rc = twilio_call_status_parse((const char *)data, size, &st, &field);
    if (rc == -EINVAL && field == NULL)
        abort();
    if (rc != 0 && rc != -EINVAL && rc != -ENOMEM)
        abort();
    if (rc == 0) {
        check_sid(st.call_sid, 1);
        check_sid(st.account_sid, 0);
        check_sid(st.recording_sid, 0);
        if (strcmp(twilio_call_state_name(st.status), "?") == 0)
            abort();
        if (st.terminal != (st.status >= TWILIO_CALL_COMPLETED))
            abort();
        if (st.call_duration_s < -1 || st.sip_response_code > 699)
            abort();
        if (st.recording_url[0] != '\0' && strncmp(st.recording_url, "http", 4) != 0)
            abort();
    }
    struct twilio_recording_status r;
    rc = twilio_recording_status_parse((const char *)data, size, &r, &field);
    if (rc == -EINVAL && field == NULL)
        abort();
    if (rc == 0) {
        check_sid(r.call_sid, 1);
        check_sid(r.recording_sid, 1);
        if (strcmp(twilio_recording_state_name(r.status), "?") == 0)
            abort();
        if (r.channels != -1 && r.channels != 1 && r.channels != 2)
            abort();
        if (r.status == TWILIO_RECORDING_COMPLETED && r.recording_url[0] == '\0')
            abort();
    }
    return 0;
}
