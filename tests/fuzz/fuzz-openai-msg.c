/* Fuzz the OpenAI Realtime server-event parser: any bytes as one text message. No crash, no
 * leak (every event is cleared), delta views stay inside the input. */
#include <stdlib.h>

#include "worker/openai_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct json_tok toks[OPENAI_TOKENS_MAX];
    struct openai_event ev;
    const char *msg = (const char *)data;
    if (openai_event_parse(msg, size, toks, &ev) == 0 && ev.delta &&
        (ev.delta < msg || ev.delta + ev.delta_len > msg + size))
        abort();
    openai_event_clear(&ev);
    return 0;
}
