/* The call API that reads and steers calls through Redis, from any node:
 *   GET  /api/voice-calls/{id}            the call record and its transcript
 *   POST /api/voice-calls/{id}/hangup     end the call
 *   POST /api/voice-calls/{id}/say        {"text": ...}: the AI says this now
 *   POST /api/voice-calls/{id}/transfer   {"to": "+E164"}: the call is dialled onward
 * Commands are published on the owning worker's channel (vb:session:{id} names it) and answered
 * 202 with a command id; the owner applies them and records the outcome on the event stream.
 * Also the stream-ended answer that carries a transfer out (<Dial>). Main-loop thread only. */
#ifndef VB_WORKER_API_CONTROL_H
#define VB_WORKER_API_CONTROL_H

#include "worker/http_router.h"

struct call_store;

/* Adds the four routes. guard (NULL: none yet) is the JWT seam, run before each handler.
 * cs must outlive the router. Returns 0 or http_router_add's errors. */
int api_control_register(struct http_router *r, struct call_store *cs, http_guard_fn *guard,
                         void *guard_arg);

/* For http_endpoints.stream_ended_async (arg = the call_store): answers <Dial> when the call
 * record holds a transfer target, the apology when the record says the AI side failed, else
 * say (or just hangs up). Without Redis it answers at once from say. */
int api_control_stream_ended(void *arg, const char *call_id, const char *say,
                             struct http_response *res);

#endif
