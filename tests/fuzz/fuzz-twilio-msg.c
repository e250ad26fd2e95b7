/* Fuzz the Twilio Media Streams parser: any bytes as one text message. No crash, no
 * out-of-bounds read; a success always names an event and keeps views inside the input. */
#include <stdlib.h>

#include "worker/twilio_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct json_tok toks[TWILIO_TOKENS_MAX];
    struct twilio_msg msg;
    struct twilio_start st;
    const char *why = NULL;
    const char *text = (const char *)data;
    int rc = twilio_msg_parse(text, size, toks, &msg, &st, &why);
    if (rc != 0 && why == NULL)
        abort();
    if (rc == 0) {
        if (msg.event < TWILIO_CONNECTED || msg.event > TWILIO_UNKNOWN)
            abort();
        if (msg.payload && (msg.payload < text || msg.payload + msg.payload_len > text + size))
            abort();
    }
    return 0;
}
