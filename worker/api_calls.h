/* POST /api/voice-calls/realtime: places an outbound call. Checks the JSON body, takes a token
 * from the call-creation rate limiter, writes the call record (worker/call_store.h), asks
 * Twilio's REST API to place the call (worker/twilio_rest.h) with our TwiML, status and
 * recording callback URLs, and answers 201 with the record, or the API's JSON error. Also the
 * record look-up that fills an answered outbound call's TwiML. Main-loop thread only. */
#ifndef VB_WORKER_API_CALLS_H
#define VB_WORKER_API_CALLS_H

#include <uv.h>

#include "worker/http_endpoints.h"
#include "worker/http_router.h"

struct api_calls;
struct call_store;
struct config;
struct rate_limit;

#define API_CALLS_METADATA_MAX 4096   /* metadata as compact JSON; more: 413 */
#define API_CALLS_NAME_MAX 256        /* contactName, businessName (bytes) */
#define API_CALLS_USER_ID_MAX 128     /* userId (bytes) */
#define API_CALLS_VOICE_MAX 32        /* voice: [a-z0-9_-] */
/* instructions travel to the call as a stream <Parameter>, which Twilio bounds at 500 bytes
 * with its name (worker/twiml.h). */
#define API_CALLS_INSTRUCTIONS_MAX 480

/* Creates the handler's state: an HTTP client (TLS for an https twilio.api_url) and the Twilio
 * REST client when TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_PHONE_NUMBER and public_url
 * are set (without them every request is answered 503 twilio_not_configured, and the worker
 * logs why once). cfg, cs and rl (the worker's call limiter; NULL: none) must outlive it.
 * Returns 0 and *out (freed by api_calls_close), -ENOMEM, or a TLS/libuv setup error. */
int api_calls_new(uv_loop_t *loop, const struct config *cfg, struct call_store *cs,
                  struct rate_limit *rl, struct api_calls **out);

/* Adds POST /api/voice-calls/realtime with guard (the JWT guard) before it. */
int api_calls_register(struct http_router *r, struct api_calls *ac, http_guard_fn *guard,
                       void *guard_arg);

/* Cancels requests to Twilio still running (their API callers get 503), closes the client and
 * frees ac once its handles are closed. NULL is allowed. */
void api_calls_close(struct api_calls *ac);

/* For http_endpoints.outbound_lookup (arg = the call_store): reads the record's names, voice
 * and instructions for the TwiML of an answered outbound call. */
int api_calls_lookup(void *arg, const char *call_id, http_call_info_fn *done, void *ctx);

#endif
