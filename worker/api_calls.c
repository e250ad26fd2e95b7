/* The outbound call API. A request is checked in full before anything is written (400 naming
 * the field, 413 for metadata), then rate-limited (429 with Retry-After), recorded (queued
 * Redis writes: the call never waits on Redis), and placed through Twilio's REST API; the
 * deferred response is finished from the REST callback: 201, 502 (Twilio refused: its code
 * and message), 503 (unreachable). Every request ends in exactly one answer, also when the
 * worker shuts down under it (the HTTP client cancels, which answers 503). */
#include "worker/api_calls.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/config.h"
#include "common/http_client.h"
#include "common/log.h"
#include "common/tls.h"
#include "worker/call_store.h"
#include "worker/rate_limit.h"
#include "worker/redis_client.h"
#include "worker/twilio_callbacks_api.h"
#include "worker/twilio_rest.h"

#define CALL_ID_BYTES 12 /* random bytes of an id: "call_" + 24 hex digits */
#define URL_MAX 2300

struct api_calls {
    const struct config *cfg;
    struct call_store *cs;
    struct rate_limit *rl;
    struct tls_config *tls; /* owned; NULL for an http:// api_url */
    struct http_client http;
    struct twilio_rest rest;
    const char *not_configured; /* NULL: Twilio is configured; else why not (static) */
    char base[URL_MAX];         /* public_url without trailing '/' */
    unsigned long placed, refused, unreachable;
};

/* One call being placed; owned by the REST callback, which answers and frees it. */
struct place_op {
    struct api_calls *ac;
    struct http_response *res;
    char id[48];
    char to[20];
    char created[32];
    json_t *metadata; /* owned, or NULL */
};

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int send_json(struct http_response *res, int status, json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (s == NULL)
        return -ENOMEM;
    int rc = http_response_body(res, "application/json", s, strlen(s));
    free(s);
    return rc == 0 ? http_response_status(res, status) : rc;
}

static int bad_field(struct http_response *res, const char *code, const char *field,
                     const char *what)
{
    char msg[200];
    snprintf(msg, sizeof msg, "%s %s", field, what);
    return http_response_json_error(res, 400, code, msg);
}

/* Optional string field: 0 with *out (NULL when absent), or 1 once res holds the 400. Text may
 * carry tab and newline when multiline, never other control characters or NUL. */
static int opt_string(json_t *body, const char *name, size_t max, int multiline,
                      const char **out, struct http_response *res)
{
    json_t *v = json_object_get(body, name);
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    char what[64];
    if (!json_is_string(v))
        return bad_field(res, "invalid_field", name, "must be a string"), 1;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n > max) {
        snprintf(what, sizeof what, "is longer than %zu bytes", max);
        return bad_field(res, "invalid_field", name, what), 1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0x7f || (c < 0x20 && !(multiline && (c == '\n' || c == '\t' || c == '\r'))))
            return bad_field(res, "invalid_field", name, "holds control characters"), 1;
    }
    *out = s;
    return 0;
}

static int voice_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > API_CALLS_VOICE_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              s[i] == '-'))
            return 0;
    return 1;
}

static int new_call_id(char out[48])
{
    unsigned char b[CALL_ID_BYTES];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
        return -EIO;
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "call_", 5);
    for (size_t i = 0; i < sizeof b; i++) {
        out[5 + 2 * i] = hex[b[i] >> 4];
        out[6 + 2 * i] = hex[b[i] & 15];
    }
    out[5 + 2 * sizeof b] = '\0';
    return 0;
}

static void op_free(struct place_op *op)
{
    json_decref(op->metadata);
    free(op);
}

static void on_placed(void *arg, const struct twilio_rest_result *r)
{
    struct place_op *op = arg;
    struct api_calls *ac = op->ac;
    const struct config *cfg = ac->cfg;
    if (r->outcome == TWILIO_REST_OK) {
        ac->placed++;
        const char *status = r->call.status[0] ? r->call.status : "queued";
        call_store_placed(ac->cs, op->id, r->call.sid, status);
        log_info("api: call %s placed: %s %s", op->id, r->call.sid, status);
        json_t *o = json_pack("{s:b, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:s, s:O?}}", "success", 1,
                              "mode", "realtime", "data", "id", op->id, "status", status,
                              "twilioCallSid", r->call.sid, "toNumber", op->to, "fromNumber",
                              cfg->twilio.phone_number, "createdAt", op->created, "metadata",
                              op->metadata);
        if (send_json(op->res, 201, o) != 0)
            http_response_json_error(op->res, 500, "internal", "response not built");
    } else {
        int status = twilio_rest_api_status(r->outcome);
        char code[24];
        snprintf(code, sizeof code, "%ld", r->code);
        const char *reason = status == 502 ? "twilio_refused" : "twilio_unreachable";
        if (status == 502)
            ac->refused++;
        else
            ac->unreachable++;
        call_store_place_failed(ac->cs, op->id, reason, r->code ? code : "", r->message);
        log_warn("api: call %s not placed: Twilio %s (HTTP %d, code %ld): %s", op->id,
                 twilio_rest_outcome_name(r->outcome), r->http_status, r->code, r->message);
        json_t *err = json_pack("{s:s, s:s}", "code",
                                r->outcome == TWILIO_REST_REFUSED || r->outcome == TWILIO_REST_GONE
                                    ? "twilio_refused"
                                : r->outcome == TWILIO_REST_INVALID ? "twilio_bad_response"
                                                                    : "twilio_unreachable",
                                "message", r->message);
        if (err && r->http_status)
            json_object_set_new(err, "twilioStatus", json_integer(r->http_status));
        if (err && r->code)
            json_object_set_new(err, "twilioCode", json_integer(r->code));
        if (err && r->more_info[0])
            json_object_set_new(err, "moreInfo", json_string(r->more_info));
        json_t *o = err ? json_pack("{s:b, s:s, s:o}", "success", 0, "callId", op->id, "error",
                                    err)
                        : NULL;
        if (send_json(op->res, status, o) != 0)
            http_response_json_error(op->res, status, "twilio_error", r->message);
    }
    http_response_finish(op->res);
    op_free(op);
}

static int place_call(struct http_request *req, struct http_response *res, void *arg)
{
    struct api_calls *ac = arg;
    const struct config *cfg = ac->cfg;
    const struct http_msg *m = req->msg;
    json_error_t jerr;
    json_t *body = m->body_len ? json_loadb(m->body, m->body_len, JSON_REJECT_DUPLICATES, &jerr)
                               : NULL;
    int rc = 0;
    if (!json_is_object(body)) {
        rc = http_response_json_error(res, 400, "invalid_json",
                                      "the body must be a JSON object (Content-Type: "
                                      "application/json)");
        goto out;
    }
    json_t *to = json_object_get(body, "toNumber");
    if (to == NULL || json_is_null(to)) {
        rc = bad_field(res, "missing_field", "toNumber", "is required");
        goto out;
    }
    if (!json_is_string(to) || !twilio_rest_e164_ok(json_string_value(to))) {
        rc = bad_field(res, "invalid_field", "toNumber",
                       "must be an E.164 number: '+' and 2-15 digits, e.g. +34612345678");
        goto out;
    }
    const char *contact, *business, *user_id, *voice, *instructions;
    if (opt_string(body, "contactName", API_CALLS_NAME_MAX, 0, &contact, res) ||
        opt_string(body, "businessName", API_CALLS_NAME_MAX, 0, &business, res) ||
        opt_string(body, "userId", API_CALLS_USER_ID_MAX - 1, 0, &user_id, res) ||
        opt_string(body, "voice", API_CALLS_VOICE_MAX, 0, &voice, res) ||
        opt_string(body, "instructions", API_CALLS_INSTRUCTIONS_MAX, 1, &instructions, res))
        goto out;
    if (voice && !voice_ok(voice)) {
        rc = bad_field(res, "invalid_field", "voice", "must be 1-32 of a-z, 0-9, '_' and '-'");
        goto out;
    }
    json_t *meta = json_object_get(body, "metadata");
    char *meta_json = NULL;
    if (meta && !json_is_null(meta)) {
        if (!json_is_object(meta)) {
            rc = bad_field(res, "invalid_field", "metadata", "must be a JSON object");
            goto out;
        }
        if (json_dumpb(meta, NULL, 0, JSON_COMPACT) > API_CALLS_METADATA_MAX) {
            char msg[120];
            snprintf(msg, sizeof msg, "metadata is larger than %u bytes as compact JSON",
                     API_CALLS_METADATA_MAX);
            rc = http_response_json_error(res, 413, "metadata_too_large", msg);
            goto out;
        }
    } else {
        meta = NULL;
    }
    if (ac->not_configured) {
        rc = http_response_json_error(res, 503, "twilio_not_configured", ac->not_configured);
        goto out;
    }
    if (ac->rl) {
        uint64_t now = uv_hrtime() / 1000000;
        int lim = rate_limit_take(ac->rl, req->user, now);
        if (lim == -EDQUOT || lim == -EBUSY) {
            uint64_t wait = rate_limit_wait_ms(ac->rl, req->user, now);
            char after[24];
            uint64_t secs = (wait + 999) / 1000;
            snprintf(after, sizeof after, "%llu", (unsigned long long)(secs ? secs : 1));
            http_response_header(res, "Retry-After", after);
            rc = http_response_json_error(res, 429, "rate_limited",
                                          lim == -EDQUOT
                                              ? "too many calls created by this user; retry later"
                                              : "too many calls created right now; retry later");
            goto out;
        }
        if (lim != 0) {
            rc = lim;
            goto out;
        }
    }

    struct place_op *op = calloc(1, sizeof *op);
    if (op == NULL || (meta && (meta_json = json_dumps(meta, JSON_COMPACT)) == NULL)) {
        free(op);
        rc = -ENOMEM;
        goto out;
    }
    op->ac = ac;
    op->res = res;
    op->metadata = json_incref(meta);
    snprintf(op->to, sizeof op->to, "%s", json_string_value(to));
    if (new_call_id(op->id) != 0) {
        op_free(op);
        free(meta_json);
        rc = http_response_json_error(res, 503, "unavailable", "no call id could be made");
        goto out;
    }
    uint64_t now = wall_ms();
    call_store_iso8601(now, op->created);
    call_store_create(ac->cs, &(struct call_store_new_call){
                                  .id = op->id, .to = op->to, .from = cfg->twilio.phone_number,
                                  .contact_name = contact, .business_name = business,
                                  .user_id = user_id, .requested_by = req->user,
                                  .metadata_json = meta_json, .voice = voice,
                                  .instructions = instructions, .created_ms = now});
    free(meta_json);
    char url[URL_MAX + 96], status_cb[URL_MAX + 64], rec_cb[URL_MAX + 64];
    snprintf(url, sizeof url, "%s/webhook/realtime/incoming/%s", ac->base, op->id);
    snprintf(status_cb, sizeof status_cb, "%s%s", ac->base, TWILIO_CALL_STATUS_PATH);
    snprintf(rec_cb, sizeof rec_cb, "%s%s", ac->base, TWILIO_RECORDING_STATUS_PATH);
    struct twilio_call_create c = {
        .to = op->to, .from = cfg->twilio.phone_number, .url = url,
        .status_callback = status_cb, .record = cfg->twilio.record,
        .recording_status_callback = rec_cb,
        .machine_detection = cfg->twilio.machine_detection};
    log_info("api: placing call %s for %s", op->id, req->user[0] ? req->user : "(no user)");
    int err = twilio_rest_call_create(&ac->rest, &c, on_placed, op);
    if (err != 0) {
        const char *why = err == -ENOBUFS ? "too many requests to Twilio are waiting"
                                          : "the request to Twilio could not be made";
        log_warn("api: call %s not placed: %s (%s)", op->id, why, strerror(-err));
        call_store_place_failed(ac->cs, op->id, "twilio_unreachable", "", why);
        json_t *o = json_pack("{s:b, s:s, s:{s:s, s:s}}", "success", 0, "callId", op->id, "error",
                              "code", "twilio_unreachable", "message", why);
        op_free(op);
        rc = send_json(res, 503, o);
        goto out;
    }
    json_decref(body);
    return -EAGAIN;
out:
    json_decref(body);
    return rc;
}

int api_calls_new(uv_loop_t *loop, const struct config *cfg, struct call_store *cs,
                  struct rate_limit *rl, struct api_calls **out)
{
    struct api_calls *ac = calloc(1, sizeof *ac);
    if (ac == NULL)
        return -ENOMEM;
    ac->cfg = cfg;
    ac->cs = cs;
    ac->rl = rl;
    int rc;
    if (strncmp(cfg->twilio.api_url, "https://", 8) == 0 &&
        (rc = tls_config_client_new(&ac->tls, NULL)) != 0) {
        free(ac);
        return rc;
    }
    if ((rc = http_client_init(&ac->http, loop, ac->tls, NULL)) != 0) {
        tls_config_free(ac->tls);
        free(ac);
        return -EIO;
    }
    ac->http.data = ac;
    const struct config_twilio *tw = &cfg->twilio;
    if (tw->account_sid == NULL || tw->auth_token == NULL)
        ac->not_configured = "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are not set";
    else if (tw->phone_number == NULL)
        ac->not_configured = "TWILIO_PHONE_NUMBER is not set";
    else if (cfg->public_url == NULL)
        ac->not_configured = "public_url (PUBLIC_BASE_URL) is not set";
    if (ac->not_configured == NULL) {
        size_t n = strlen(cfg->public_url);
        while (n > 0 && cfg->public_url[n - 1] == '/')
            n--;
        if (n >= sizeof ac->base) {
            ac->not_configured = "public_url is too long";
        } else {
            memcpy(ac->base, cfg->public_url, n);
            ac->base[n] = '\0';
            struct twilio_rest_settings s = {.api_url = tw->api_url,
                                             .account_sid = tw->account_sid,
                                             .auth_token = tw->auth_token};
            if (twilio_rest_init(&ac->rest, &ac->http, &s) != 0)
                ac->not_configured = "the Twilio credentials or twilio.api_url are not usable";
        }
    }
    if (ac->not_configured)
        log_warn("call API: outbound calls are refused (503): %s", ac->not_configured);
    else /* hang-up and transfer of a call with no live stream go through Twilio too */
        call_store_set_twilio(cs, &ac->rest);
    *out = ac;
    return 0;
}

int api_calls_register(struct http_router *r, struct api_calls *ac, http_guard_fn *guard,
                       void *guard_arg)
{
    return http_router_add(r, &(struct http_route){.method = HTTP_METHOD_POST,
                                                   .pattern = "/api/voice-calls/realtime",
                                                   .handler = place_call,
                                                   .arg = ac,
                                                   .guard = guard,
                                                   .guard_arg = guard_arg});
}

static void on_http_closed(struct http_client *cl)
{
    struct api_calls *ac = cl->data;
    tls_config_free(ac->tls);
    free(ac);
}

void api_calls_close(struct api_calls *ac)
{
    if (ac == NULL)
        return;
    call_store_set_twilio(ac->cs, NULL);
    twilio_rest_clear(&ac->rest);
    http_client_close(&ac->http, on_http_closed); /* running requests end CANCELED: 503 */
}

/* ---- the record for an answered outbound call's TwiML ------------------------------------ */

struct lookup {
    http_call_info_fn *done;
    void *ctx;
};

static void on_lookup(void *arg, const struct redis_reply *r)
{
    struct lookup *lk = arg;
    static const size_t caps[4] = {API_CALLS_NAME_MAX + 1, API_CALLS_NAME_MAX + 1,
                                   API_CALLS_VOICE_MAX + 1, API_CALLS_INSTRUCTIONS_MAX + 1};
    char buf[4][API_CALLS_INSTRUCTIONS_MAX + 1];
    const char *v[4] = {NULL, NULL, NULL, NULL};
    int any = 0;
    if (r && redis_reply_type(r) == REDIS_R_ARRAY && redis_reply_count(r) == 4) {
        for (size_t i = 0; i < 4; i++) {
            size_t len;
            const char *s = redis_reply_str(redis_reply_elem(r, i), &len);
            /* Values the API wrote fit; anything else (edited by hand) is left out. */
            if (s && len < caps[i] && memchr(s, '\0', len) == NULL) {
                memcpy(buf[i], s, len);
                buf[i][len] = '\0';
                v[i] = buf[i];
                any = 1;
            }
        }
    }
    struct http_call_info info = {.contact_name = v[0], .business_name = v[1], .voice = v[2],
                                  .instructions = v[3]};
    lk->done(lk->ctx, any ? &info : NULL);
    free(lk);
}

int api_calls_lookup(void *arg, const char *call_id, http_call_info_fn *done, void *ctx)
{
    struct call_store *cs = arg;
    struct lookup *lk = malloc(sizeof *lk);
    if (lk == NULL)
        return -ENOMEM;
    lk->done = done;
    lk->ctx = ctx;
    char k[256];
    snprintf(k, sizeof k, "%scall:%s", call_store_prefix(cs), call_id);
    const char *argv[] = {"HMGET", k, "contact_name", "business_name", "voice", "instructions"};
    int rc = redis_client_request(call_store_redis(cs), on_lookup, lk, 6, argv, NULL);
    if (rc != 0)
        free(lk);
    return rc;
}
