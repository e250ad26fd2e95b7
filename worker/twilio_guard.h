/* The X-Twilio-Signature guard for every route Twilio calls: the webhooks (form or JSON body)
 * and the media-stream WebSocket upgrade. It rebuilds the URL Twilio signed from public_url
 * (scheme and host as Twilio saw them, behind HAProxy too) plus the request's raw path and
 * query, and refuses with 403 when the signature is missing or wrong. Attach it to a route as
 * {.guard = twilio_guard_check, .guard_arg = &the_guard}. */
#ifndef VB_WORKER_TWILIO_GUARD_H
#define VB_WORKER_TWILIO_GUARD_H

#include <stdbool.h>
#include <stddef.h>

#include "worker/http_router.h"

struct config;

/* Filled by twilio_guard_init, then read-only (any number of routes may share one). Points
 * into the config, which must outlive it. */
struct twilio_guard {
    bool enabled;           /* false: every request passes (twilio.validate_signatures off) */
    const char *public_url; /* "http(s)://host[:port]" */
    const char *token;      /* TWILIO_AUTH_TOKEN */
    size_t token_len;
    size_t max_fields;      /* form fields read from a body */
};

/* From cfg: enabled = twilio.validate_signatures. Returns 0, or -EINVAL when checking is on
 * but TWILIO_AUTH_TOKEN or public_url is missing (the worker refuses to start: a server that
 * would answer every webhook 403 is broken, and one that checks nothing must say so). Logs
 * the reason, and a warning when checking is off. */
int twilio_guard_init(struct twilio_guard *g, const struct config *cfg);

/* http_guard_fn: 0, or 403 with req->refusal set. arg is a struct twilio_guard. Form bodies
 * (application/x-www-form-urlencoded, or an empty body) have their fields appended; JSON bodies
 * must carry bodySHA256 in the query; a WebSocket upgrade is checked against the wss:// (ws://
 * for an http public_url) URL, with and without a trailing slash. */
int twilio_guard_check(struct http_request *req, void *arg);

#endif
