/* Handlers for Twilio's call-status and recording-status callbacks. The body must be a form;
 * it is parsed and validated, logged once (CallSid and status, never the numbers), and given to
 * the owner's hook. Twilio wants a quick 2xx: the hook only hands the data on, it does not wait
 * for Redis. The guard is looked up at request time so the owner can set it after registering. */
#include "worker/twilio_callbacks_api.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"

static int guard(struct http_request *req, void *arg)
{
    const struct twilio_callbacks_api *api = arg;
    return api->guard != NULL ? api->guard(req, api->guard_arg) : 0;
}

/* 0 when the request carries a form (or nothing), else answers 415 and returns 1. */
static int check_form_type(const struct http_request *req, struct http_response *res)
{
    const struct http_msg *m = req->msg;
    const char *ctype = http_msg_header(m, "content-type");
    static const char form_type[] = "application/x-www-form-urlencoded";
    size_t tl = sizeof form_type - 1;
    if (ctype == NULL && m->body_len == 0)
        return 0;
    if (ctype != NULL && strncasecmp(ctype, form_type, tl) == 0 &&
        (ctype[tl] == '\0' || ctype[tl] == ';' || ctype[tl] == ' '))
        return 0;
    http_response_json_error(res, 415, "unsupported_media_type",
                             "expected application/x-www-form-urlencoded");
    return 1;
}

/* Answers a parse failure: 400 naming the field. */
static int bad_input(struct twilio_callbacks_api *api, struct http_response *res, int rc,
                     const char *what, const char *field)
{
    if (rc == -ENOMEM)
        return rc;
    api->rejected++;
    char msg[160];
    if (field == NULL || strcmp(field, "body") == 0)
        snprintf(msg, sizeof msg, "malformed form body");
    else
        snprintf(msg, sizeof msg, "%s is missing or malformed", field);
    /* Logged on the 1st, 2nd, 4th... rejection: a misconfigured sender cannot flood the log. */
    if ((api->rejected & (api->rejected - 1)) == 0)
        log_warn("twilio %s callback refused (%lu so far): %s", what, api->rejected, msg);
    return http_response_json_error(res, 400, "bad_field", msg);
}

static int hook_result(struct http_response *res, int rc)
{
    if (rc != 0)
        return http_response_json_error(res, 503, "unavailable",
                                        "the call store cannot take this callback now");
    return http_response_status(res, 204);
}

static int call_status(struct http_request *req, struct http_response *res, void *arg)
{
    struct twilio_callbacks_api *api = arg;
    if (check_form_type(req, res))
        return 0;
    struct twilio_call_status st;
    const char *field;
    int rc = twilio_call_status_parse(req->msg->body, req->msg->body_len, &st, &field);
    if (rc != 0)
        return bad_input(api, res, rc, "call-status", field);
    api->statuses++;
    log_info("twilio: call %s %s%s%s", st.call_sid, twilio_call_state_name(st.status),
             st.answered_by[0] ? " answered by " : "", st.answered_by);
    return hook_result(res, api->on_status ? api->on_status(api->arg, &st) : 0);
}

static int recording_status(struct http_request *req, struct http_response *res, void *arg)
{
    struct twilio_callbacks_api *api = arg;
    if (check_form_type(req, res))
        return 0;
    struct twilio_recording_status rec;
    const char *field;
    int rc = twilio_recording_status_parse(req->msg->body, req->msg->body_len, &rec, &field);
    if (rc != 0)
        return bad_input(api, res, rc, "recording-status", field);
    api->recordings++;
    log_info("twilio: call %s recording %s %s (%ld s)", rec.call_sid, rec.recording_sid,
             twilio_recording_state_name(rec.status), rec.duration_s);
    return hook_result(res, api->on_recording ? api->on_recording(api->arg, &rec) : 0);
}

int twilio_callbacks_api_register(struct http_router *r, struct twilio_callbacks_api *api)
{
    const struct http_route routes[] = {
        {.method = HTTP_METHOD_POST,
         .pattern = TWILIO_CALL_STATUS_PATH,
         .handler = call_status,
         .guard = guard,
         .arg = api,
         .guard_arg = api},
        {.method = HTTP_METHOD_POST,
         .pattern = TWILIO_RECORDING_STATUS_PATH,
         .handler = recording_status,
         .guard = guard,
         .arg = api,
         .guard_arg = api},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        int err = http_router_add(r, &routes[i]);
        if (err != 0)
            return err;
    }
    return 0;
}
