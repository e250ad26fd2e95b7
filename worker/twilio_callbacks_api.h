/* The HTTP routes Twilio calls back on about the calls we placed: POST
 * /webhook/twilio/call-status and POST /webhook/twilio/recording-status. They check the request
 * (the guard: X-Twilio-Signature), parse and validate the form (worker/twilio_callback.h), and
 * hand the result to hooks the owner connects to the call store; 204 on success, 400 with JSON
 * naming the field on bad input. Main-loop thread only. */
#ifndef VB_WORKER_TWILIO_CALLBACKS_API_H
#define VB_WORKER_TWILIO_CALLBACKS_API_H

#include "worker/http_router.h"
#include "worker/twilio_callback.h"

struct twilio_callbacks_api {
    /* The X-Twilio-Signature seam, run before both handlers; NULL: nothing is checked. Returns
     * 0 or the status to refuse with (403). */
    http_guard_fn *guard;
    void *guard_arg;
    /* Called on the loop thread with a validated callback (valid only during the call: copy
     * what is kept). Return 0 (answered 204), or a negative errno when the store cannot take
     * it now (answered 503 so that Twilio's debugger shows it). NULL: accepted and dropped. */
    int (*on_status)(void *arg, const struct twilio_call_status *st);
    int (*on_recording)(void *arg, const struct twilio_recording_status *rec);
    void *arg;
    /* Counters for /metrics (written on the loop thread). */
    unsigned long statuses, recordings, rejected;
};

#define TWILIO_CALL_STATUS_PATH "/webhook/twilio/call-status"
#define TWILIO_RECORDING_STATUS_PATH "/webhook/twilio/recording-status"

/* Adds both routes to r. api must outlive the router (it is passed to the handlers by pointer,
 * so its hooks and guard may be set or changed until the server starts). Returns 0 or
 * http_router_add's errors. */
int twilio_callbacks_api_register(struct http_router *r, struct twilio_callbacks_api *api);

#endif
