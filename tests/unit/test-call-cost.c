/* Call cost: OpenAI usage at the configured token prices (cached input at its own price) plus
 * Twilio per started minute, checked against sums worked by hand. */
#include "worker/call_cost.h"

#include <math.h>
#include <string.h>

#include "tests/unit/testing.h"

static struct config_pricing prices(void)
{
    struct config_pricing p = {.openai_audio_in = 32, .openai_audio_cached_in = 0.4,
                               .openai_audio_out = 64, .openai_text_in = 4,
                               .openai_text_cached_in = 0.4, .openai_text_out = 16,
                               .twilio_inbound_per_min = 0.0085,
                               .twilio_outbound_per_min = 0.014,
                               .twilio_stream_per_min = 0.004};
    return p;
}

TEST(call_cost_openai_tokens_and_twilio_minutes)
{
    struct config_pricing p = prices();
    struct openai_usage u = {.input_text = 1000, .cached_text = 400, .input_audio = 6000,
                             .cached_audio = 1000, .output_text = 200, .output_audio = 1200};
    /* text in: 600*4 + 400*0.4 = 2560; audio in: 5000*32 + 1000*0.4 = 160400;
     * out: 200*16 + 1200*64 = 80000; total 242960 / 1e6 = 0.24296 USD.
     * 61 s outbound: 2 minutes * (0.014 + 0.004) = 0.036. */
    double c = call_cost_usd(&p, &u, 61, 1);
    CHECK_MSG(fabs(c - (0.24296 + 0.036)) < 1e-9, "%.9f", c);
    /* 60 s inbound is one minute: 0.0085 + 0.004 */
    struct openai_usage none = {0};
    c = call_cost_usd(&p, &none, 60, 0);
    CHECK_MSG(fabs(c - 0.0125) < 1e-12, "%.12f", c);
    CHECK(call_cost_usd(&p, &none, 0, 0) == 0.0);
}

TEST(call_cost_ignores_nonsense_counts)
{
    struct config_pricing p = prices();
    /* more cached than input (a confused peer): never a negative cost */
    struct openai_usage u = {.input_text = 10, .cached_text = 50, .output_audio = -5};
    double c = call_cost_usd(&p, &u, 0, 1);
    CHECK_MSG(c >= 0 && fabs(c - 50 * 0.4 / 1e6) < 1e-12, "%.12f", c);
}
