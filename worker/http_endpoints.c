/* Handlers for health and the voice webhooks. The webhooks read Twilio's form body, check the
 * few values that become our identifiers, and answer <Connect><Stream> TwiML whose Parameters
 * tell the media-stream side who the call is. Display names are shortened to Twilio's limit;
 * identifiers and numbers that do not fit are refused (400), never cut. */
#include "worker/http_endpoints.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/form.h"
#include "common/log.h"
#include "worker/twiml.h"

#define FORM_FIELDS_MAX 64 /* Twilio sends about 20 */
#define TWIML_BYTES 32768  /* six parameters of < 500 bytes, each escaped at worst 6x */
#define CALL_ID_MAX 64

static int healthz(struct http_request *req, struct http_response *res, void *arg)
{
    (void)req, (void)arg;
    static const char body[] = "{\"status\":\"ok\"}";
    return http_response_body(res, "application/json", body, sizeof body - 1);
}

/* Our call ids and Twilio's CallSids: letters, digits, '-' and '_', 1..64 of them. They end up
 * in Redis keys and log lines, so nothing else gets through. */
static bool call_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CALL_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

struct form {
    struct form_field fields[FORM_FIELDS_MAX];
    size_t n;
    char *arena; /* owned */
};

/* Parses the request body as a form. An empty body without a Content-Type is an empty form;
 * anything else must say application/x-www-form-urlencoded. Answers errors itself: returns 0,
 * or 1 when res holds the error response. */
static int form_read(const struct http_request *req, struct http_response *res, struct form *f)
{
    const struct http_msg *m = req->msg;
    const char *ctype = http_msg_header(m, "content-type");
    f->n = 0;
    f->arena = NULL;
    if (ctype == NULL && m->body_len == 0)
        return 0;
    static const char form_type[] = "application/x-www-form-urlencoded";
    size_t tl = sizeof form_type - 1;
    if (ctype == NULL || strncasecmp(ctype, form_type, tl) != 0 ||
        (ctype[tl] != '\0' && ctype[tl] != ';' && ctype[tl] != ' ')) {
        http_response_json_error(res, 415, "unsupported_media_type",
                                 "expected application/x-www-form-urlencoded");
        return 1;
    }
    f->arena = malloc(FORM_ARENA_SIZE(m->body_len));
    if (f->arena == NULL)
        return -ENOMEM;
    int err = form_parse(m->body ? m->body : "", m->body_len, f->fields, FORM_FIELDS_MAX, f->arena,
                         FORM_ARENA_SIZE(m->body_len), &f->n);
    if (err != 0) {
        http_response_json_error(res, 400, "bad_form",
                                 err == -E2BIG ? "too many form fields" : "malformed form body");
        return 1;
    }
    return 0;
}

/* A display name cut to fit beside its parameter name, at a UTF-8 boundary. */
static const char *fit(const char *name, const char *value, char *buf, size_t cap)
{
    if (value == NULL)
        return NULL;
    size_t n = twiml_param_fit(name, value);
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, value, n);
    buf[n] = '\0';
    return buf;
}

/* Writes the TwiML answer for a call. Returns 0 or a negative errno (500). */
static int answer_stream(struct http_response *res, const struct http_endpoints *ep,
                         const char *call_id, const char *direction, const char *from,
                         const char *to, const char *contact_name,
                         const struct http_call_info *info)
{
    char contact[TWIML_PARAM_LIMIT], business[TWIML_PARAM_LIMIT], token[STREAM_TOKEN_MAX];
    const char *business_name = ep->business_name, *voice = NULL, *instructions = NULL;
    if (info) {
        if (info->contact_name && info->contact_name[0])
            contact_name = info->contact_name;
        if (info->business_name && info->business_name[0])
            business_name = info->business_name;
        voice = info->voice && info->voice[0] ? info->voice : NULL;
        instructions = info->instructions && info->instructions[0] ? info->instructions : NULL;
    }
    const char *token_value = NULL;
    if (ep->stream_key != NULL) {
        int64_t expires = (int64_t)time(NULL) + ep->stream_token_ttl_s;
        int err = stream_token_make(ep->stream_key, call_id, expires, token);
        if (err != 0)
            return err;
        token_value = token;
    }
    struct twiml_param params[] = {
        {"callId", call_id},
        {"direction", direction},
        {"from", from},
        {"to", to},
        {"contactName", fit("contactName", contact_name, contact, sizeof contact)},
        {"businessName", fit("businessName", business_name, business, sizeof business)},
        {"voice", voice},               /* checked by the call API: [a-z0-9_-], short */
        {"instructions", instructions}, /* bounded by the call API to fit */
        {STREAM_TOKEN_PARAM, token_value},
    };
    char *xml = malloc(TWIML_BYTES);
    if (xml == NULL)
        return -ENOMEM;
    size_t len;
    char action[2300];
    size_t base = strlen(ep->public_url);
    while (base > 0 && ep->public_url[base - 1] == '/')
        base--;
    snprintf(action, sizeof action, "%.*s/webhook/realtime/stream-ended/%s", (int)base,
             ep->public_url, call_id); /* call_id is [A-Za-z0-9_-]: nothing to encode */
    int err = twiml_connect_stream(ep->public_url, action, params,
                                   sizeof params / sizeof params[0], xml, TWIML_BYTES, &len);
    if (err == -E2BIG || err == -EILSEQ) {
        /* From or To too long or not text: what Twilio sent cannot be a phone number. */
        http_response_json_error(res, 400, "bad_field",
                                 err == -E2BIG ? "a call parameter is too long"
                                               : "a call parameter is not valid text");
        err = 0;
    } else if (err == 0) {
        err = http_response_body(res, "text/xml", xml, len);
    }
    free(xml);
    return err;
}

static int twilio_voice(struct http_request *req, struct http_response *res, void *arg)
{
    const struct http_endpoints *ep = arg;
    struct form f;
    int err = form_read(req, res, &f);
    if (err != 0) {
        free(f.arena);
        return err < 0 ? err : 0;
    }
    const char *sid = form_get(f.fields, f.n, "CallSid");
    if (sid == NULL || !call_id_ok(sid)) {
        http_response_json_error(res, 400, sid ? "bad_field" : "missing_field",
                                 sid ? "CallSid is malformed" : "CallSid is required");
    } else {
        log_info("http: inbound call %s", sid);
        err = answer_stream(res, ep, sid, "inbound", form_get(f.fields, f.n, "From"),
                            form_get(f.fields, f.n, "To"), form_get(f.fields, f.n, "CallerName"),
                            NULL);
    }
    free(f.arena);
    return err;
}

/* An answered outbound call waiting for its record: what the request said, copied. */
struct incoming_wait {
    struct http_response *res;
    const struct http_endpoints *ep;
    char call_id[CALL_ID_MAX + 1];
    char *from, *to; /* owned; NULL when absent */
};

static void incoming_answer(void *ctx, const struct http_call_info *info)
{
    struct incoming_wait *iw = ctx;
    int err = answer_stream(iw->res, iw->ep, iw->call_id, "outbound", iw->from, iw->to, NULL,
                            info);
    if (err != 0)
        http_response_json_error(iw->res, 500, "internal", "TwiML not built");
    http_response_finish(iw->res);
    free(iw->from);
    free(iw->to);
    free(iw);
}

static int realtime_incoming(struct http_request *req, struct http_response *res, void *arg)
{
    const struct http_endpoints *ep = arg;
    const char *call_id = http_request_param(req, "callId");
    if (call_id == NULL || !call_id_ok(call_id))
        return http_response_json_error(res, 400, "bad_field", "callId is malformed");
    struct form f;
    int err = form_read(req, res, &f);
    if (err != 0) {
        free(f.arena);
        return err < 0 ? err : 0;
    }
    log_info("http: outbound call %s answered", call_id);
    const char *from = form_get(f.fields, f.n, "From"), *to = form_get(f.fields, f.n, "To");
    struct incoming_wait *iw = ep->outbound_lookup ? calloc(1, sizeof *iw) : NULL;
    if (iw) {
        iw->res = res;
        iw->ep = ep;
        snprintf(iw->call_id, sizeof iw->call_id, "%s", call_id);
        iw->from = from ? strdup(from) : NULL;
        iw->to = to ? strdup(to) : NULL;
        if ((from && !iw->from) || (to && !iw->to) ||
            ep->outbound_lookup(ep->outbound_lookup_arg, call_id, incoming_answer, iw) != 0) {
            free(iw->from);
            free(iw->to);
            free(iw);
            iw = NULL;
        } else {
            free(f.arena);
            return -EAGAIN;
        }
    }
    /* No record to read (Redis away, or no hook): the request's own facts. */
    err = answer_stream(res, ep, call_id, "outbound", from, to, NULL, NULL);
    free(f.arena);
    return err;
}

static int stream_ended(struct http_request *req, struct http_response *res, void *arg)
{
    const struct http_endpoints *ep = arg;
    const char *call_id = http_request_param(req, "callId");
    if (call_id == NULL || !call_id_ok(call_id))
        return http_response_json_error(res, 400, "bad_field", "callId is malformed");
    const char *say = ep->stream_ended_say ? ep->stream_ended_say(ep->stream_ended_arg, call_id)
                                           : NULL;
    if (ep->stream_ended_async)
        return ep->stream_ended_async(ep->stream_ended_async_arg, call_id, say, res);
    char xml[2048];
    size_t len;
    if (say == NULL || twiml_say_hangup(say, xml, sizeof xml, &len) != 0)
        twiml_say_hangup(NULL, xml, sizeof xml, &len);
    log_info("http: stream of call %s ended: %s", call_id, say ? "apologising" : "hanging up");
    return http_response_body(res, "text/xml", xml, len);
}

int http_endpoints_register(struct http_router *r, const struct http_endpoints *ep)
{
    char url[2048];
    if (twiml_stream_url(ep->public_url, url, sizeof url) != 0)
        return -EINVAL;
    const struct http_route routes[] = {
        {.method = HTTP_METHOD_GET, .pattern = "/healthz", .handler = healthz},
        {.method = HTTP_METHOD_POST,
         .pattern = "/twilio/voice",
         .handler = twilio_voice,
         .guard = ep->twilio_guard,
         .guard_arg = ep->twilio_guard_arg,
         .arg = (void *)ep},
        {.method = HTTP_METHOD_POST,
         .pattern = "/webhook/realtime/incoming/{callId}",
         .handler = realtime_incoming,
         .guard = ep->twilio_guard,
         .guard_arg = ep->twilio_guard_arg,
         .arg = (void *)ep},
        {.method = HTTP_METHOD_POST,
         .pattern = "/webhook/realtime/stream-ended/{callId}",
         .handler = stream_ended,
         .guard = ep->twilio_guard,
         .guard_arg = ep->twilio_guard_arg,
         .arg = (void *)ep},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        int err = http_router_add(r, &routes[i]);
        if (err != 0)
            return err;
    }
    return 0;
}
