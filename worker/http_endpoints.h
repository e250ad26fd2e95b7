/* The worker's plain HTTP endpoints wired so far: GET /healthz, the two voice webhooks that
 * answer TwiML connecting the call to our media stream: POST /twilio/voice (inbound call) and
 * POST /webhook/realtime/incoming/{callId} (an outbound call we placed was answered), and
 * POST /webhook/realtime/stream-ended/{callId} (the stream is over: apologise or hang up). */
#ifndef VB_WORKER_HTTP_ENDPOINTS_H
#define VB_WORKER_HTTP_ENDPOINTS_H

#include "worker/http_router.h"
#include "worker/stream_token.h"

/* What the call record says about an outbound call, for its TwiML; strings may be NULL. */
struct http_call_info {
    const char *contact_name, *business_name, *voice, *instructions;
};
/* info NULL: nothing known (no record, or Redis unavailable). Called once, on the loop. */
typedef void http_call_info_fn(void *ctx, const struct http_call_info *info);

struct http_endpoints {
    const char *public_url;    /* PUBLIC_BASE_URL, https://host[:port][/prefix] */
    const char *business_name; /* sent to the call as businessName; NULL when not configured */
    /* The X-Twilio-Signature guard (worker/twilio_guard.h), run before every webhook here.
     * NULL: nothing is checked. */
    http_guard_fn *twilio_guard;
    void *twilio_guard_arg;
    /* What a call hears once its media stream has ended (Twilio asks the <Connect action> URL,
     * POST /webhook/realtime/stream-ended/{callId}): text to say before hanging up (the apology
     * when the AI side failed), or NULL to hang up at once. NULL hook: always hang up. */
    const char *(*stream_ended_say)(void *arg, const char *call_id);
    void *stream_ended_arg;
    /* Set: the stream-ended answer is this handler's (it may look the call up in Redis, for a
     * transfer target, and answer later: -EAGAIN as for any handler); say is what
     * stream_ended_say gave, the answer when nothing else applies. NULL: say or hang up. */
    int (*stream_ended_async)(void *arg, const char *call_id, const char *say,
                              struct http_response *res);
    void *stream_ended_async_arg;
    /* Set: POST /webhook/realtime/incoming/{callId} asks it for the call record and answers
     * once done(ctx, info) has run (it may run before the hook returns). Returns 0, or a
     * negative errno when it cannot ask (done is then not called: the TwiML carries what the
     * request says). NULL: the request alone. */
    int (*outbound_lookup)(void *arg, const char *call_id, http_call_info_fn *done, void *ctx);
    void *outbound_lookup_arg;
    /* Stream tokens (worker/stream_token.h): when set, the TwiML carries a streamToken
     * Parameter for the call id, valid stream_token_ttl_s seconds. NULL: none is sent. */
    const struct stream_token_key *stream_key;
    unsigned stream_token_ttl_s;
};

/* Adds the routes to r. ep (and its strings) must outlive the router. Returns 0, -EINVAL for a
 * public_url twiml_stream_url refuses, or http_router_add's errors. */
int http_endpoints_register(struct http_router *r, const struct http_endpoints *ep);

#endif
