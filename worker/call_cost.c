/* Call cost (see call_cost.h). */
#include "worker/call_cost.h"

static double nonneg(int64_t x)
{
    return x > 0 ? (double)x : 0.0;
}

double call_cost_usd(const struct config_pricing *p, const struct openai_usage *u,
                     uint64_t duration_s, int outbound)
{
    /* input_* counts include the cached tokens, which are billed at the cached price */
    double openai = (nonneg(u->input_text - u->cached_text) * p->openai_text_in +
                     nonneg(u->cached_text) * p->openai_text_cached_in +
                     nonneg(u->input_audio - u->cached_audio) * p->openai_audio_in +
                     nonneg(u->cached_audio) * p->openai_audio_cached_in +
                     nonneg(u->output_text) * p->openai_text_out +
                     nonneg(u->output_audio) * p->openai_audio_out) /
                    1e6;
    uint64_t minutes = (duration_s + 59) / 60; /* Twilio bills every started minute */
    double twilio = (double)minutes * ((outbound ? p->twilio_outbound_per_min
                                                 : p->twilio_inbound_per_min) +
                                       p->twilio_stream_per_min);
    return openai + twilio;
}
