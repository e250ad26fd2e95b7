/* The worker's checks of who is calling it, built once from the configuration and then
 * read-only (the rate limiter excepted, which the main loop updates): the X-Twilio-Signature
 * guard, the call API's JWT guard, the stream-token key, and the call-creation rate limiter.
 * Routes attach the guards: {.guard = twilio_guard_check, .guard_arg = &sec->twilio} for
 * everything Twilio calls, {.guard = api_auth_guard, .guard_arg = &sec->api} for /api/. */
#ifndef VB_WORKER_SECURITY_H
#define VB_WORKER_SECURITY_H

#include <stdbool.h>

#include "worker/api_auth.h"
#include "worker/rate_limit.h"
#include "worker/stream_token.h"
#include "worker/twilio_guard.h"

struct config;
struct http_endpoints;

struct worker_security {
    struct twilio_guard twilio;
    struct api_auth api;
    struct stream_token_key stream_key;
    bool stream_tokens;       /* stream_key is set (TWILIO_AUTH_TOKEN is known) */
    struct rate_limit *calls; /* call creation, owned; rate_limit_take(sec->calls, user, ms) */
};

/* Builds everything from cfg (which must outlive it). Returns 0, -EINVAL when signature checking
 * is on without TWILIO_AUTH_TOKEN or public_url (logged: the worker must not start), or -ENOMEM.
 * Logs a warning when checking is off or JWT_SECRET is missing. */
int worker_security_init(struct worker_security *s, const struct config *cfg);

/* Points the voice webhooks at the Twilio guard and the stream-token key. */
void worker_security_attach(struct worker_security *s, struct http_endpoints *ep,
                            const struct config *cfg);

/* Frees the rate limiter and wipes the key. A zeroed struct may be freed. */
void worker_security_free(struct worker_security *s);

#endif
