/* What a call cost, for its record's cost_usd: the OpenAI side from the summed response usage
 * (protocols.md §6.1: cached input at its own price) plus Twilio's per-minute voice and Media
 * Streams charges for every started minute (§6.2). Prices come from the configuration. */
#ifndef VB_WORKER_CALL_COST_H
#define VB_WORKER_CALL_COST_H

#include <stdint.h>

#include "common/config.h"
#include "worker/openai_msg.h"

double call_cost_usd(const struct config_pricing *p, const struct openai_usage *u,
                     uint64_t duration_s, int outbound);

#endif
