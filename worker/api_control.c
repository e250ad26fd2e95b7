/* Handlers of the call API over Redis. Each request is a short chain of Redis requests (never
 * queued: an API caller gets 503 at once rather than wait for Redis) whose last callback
 * finishes the deferred HTTP response. A request whose connection is lost mid-way gets a NULL
 * reply and is answered 503, so every response is finished exactly once. */
#include "worker/api_control.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/config.h"
#include "common/log.h"
#include "worker/call_store.h"
#include "worker/control_msg.h"
#include "worker/redis_client.h"
#include "worker/twilio_rest.h"
#include "worker/twiml.h"

#define KEY_MAX 256

/* One API request in progress; owned by its Redis callback chain, freed when it answers. */
struct api_op {
    struct call_store *cs;
    struct http_response *res;
    struct control_msg msg;
    json_t *call;          /* GET: the record read so far */
    const char *say;       /* stream-ended: the fallback answer (static or configuration) */
};

static void op_free(struct api_op *op)
{
    control_msg_clear(&op->msg);
    json_decref(op->call);
    free(op);
}

static void finish_error(struct api_op *op, int status, const char *code, const char *message)
{
    http_response_json_error(op->res, status, code, message);
    http_response_finish(op->res);
    op_free(op);
}

static int unavailable(struct http_response *res)
{
    return http_response_json_error(res, 503, "redis_unavailable",
                                    "call state is unavailable right now; try again");
}

static void key(const struct call_store *cs, char out[KEY_MAX], const char *kind, const char *id)
{
    snprintf(out, KEY_MAX, "%s%s:%s", call_store_prefix(cs), kind, id);
}

static int body_json(struct http_response *res, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s == NULL)
        return -ENOMEM;
    int rc = http_response_body(res, "application/json", s, strlen(s));
    free(s);
    return rc;
}

/* ---- GET /api/voice-calls/{id} ----------------------------------------------------------- */

/* A hash field that holds JSON (metadata, usage) is returned as JSON, the rest as strings. */
static json_t *field_value(const char *name, const char *v, size_t len)
{
    if (strcmp(name, "metadata") == 0 || strcmp(name, "usage") == 0) {
        json_t *j = json_loadb(v, len, JSON_DECODE_ANY, NULL);
        if (j)
            return j;
    }
    return json_stringn(v, len);
}

static void on_transcript(void *arg, const struct redis_reply *r)
{
    struct api_op *op = arg;
    if (r == NULL || redis_reply_type(r) != REDIS_R_ARRAY)
        return finish_error(op, 503, "redis_unavailable", "call state is unavailable right now");
    size_t n = redis_reply_count(r);
    if (n == 0 && json_object_size(op->call) == 0)
        return finish_error(op, 404, "call_not_found", "no such call");
    json_t *turns = json_array();
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *s = redis_reply_str(redis_reply_elem(r, i), &len);
        json_t *t = s ? json_loadb(s, len, 0, NULL) : NULL;
        if (t)
            json_array_append_new(turns, t);
    }
    json_t *o = json_pack("{s:b, s:{s:O, s:o}}", "success", 1, "data", "call", op->call,
                          "transcript", turns);
    int rc = o ? body_json(op->res, o) : -ENOMEM;
    if (rc != 0)
        http_response_json_error(op->res, 500, "internal", "response not built");
    http_response_finish(op->res);
    op_free(op);
}

static void on_record(void *arg, const struct redis_reply *r)
{
    struct api_op *op = arg;
    if (r == NULL || redis_reply_type(r) != REDIS_R_ARRAY)
        return finish_error(op, 503, "redis_unavailable", "call state is unavailable right now");
    op->call = json_object();
    for (size_t i = 0; i + 1 < redis_reply_count(r); i += 2) {
        size_t nl, vl;
        const char *name = redis_reply_str(redis_reply_elem(r, i), &nl);
        const char *v = redis_reply_str(redis_reply_elem(r, i + 1), &vl);
        if (name && v) {
            char nbuf[128];
            snprintf(nbuf, sizeof nbuf, "%.*s", (int)(nl < 127 ? nl : 127), name);
            json_t *jv = field_value(nbuf, v, vl);
            if (jv)
                json_object_set_new(op->call, nbuf, jv);
        }
    }
    char k[KEY_MAX];
    key(op->cs, k, "transcript", op->msg.call_id);
    const char *argv[] = {"LRANGE", k, "0", "-1"};
    if (redis_client_request(call_store_redis(op->cs), on_transcript, op, 4, argv, NULL) != 0)
        finish_error(op, 503, "redis_unavailable", "call state is unavailable right now");
}

/* A request on /api/voice-calls/{id}/...: the id checked, the op that will answer it made.
 * Returns NULL with *rc the handler's return (the 400 already written, or -ENOMEM). */
static struct api_op *op_for_call(struct http_request *req, struct http_response *res,
                                  struct call_store *cs, int *rc)
{
    const char *id = http_request_param(req, "id");
    if (id == NULL || !call_store_id_ok(id)) {
        *rc = http_response_json_error(res, 400, "bad_call_id", "the call id is malformed");
        return NULL;
    }
    struct api_op *op = calloc(1, sizeof *op); /* owned by the callback chain that answers */
    if (op == NULL) {
        *rc = -ENOMEM;
        return NULL;
    }
    op->cs = cs;
    op->res = res;
    snprintf(op->msg.call_id, sizeof op->msg.call_id, "%s", id);
    return op;
}

static int get_call(struct http_request *req, struct http_response *res, void *arg)
{
    struct call_store *cs = arg;
    int rc;
    struct api_op *op = op_for_call(req, res, cs, &rc);
    if (op == NULL)
        return rc;
    const char *id = op->msg.call_id;
    char k[KEY_MAX];
    key(cs, k, "call", id);
    const char *argv[] = {"HGETALL", k};
    if (redis_client_request(call_store_redis(cs), on_record, op, 2, argv, NULL) != 0) {
        op_free(op);
        return unavailable(res);
    }
    return -EAGAIN;
}

/* ---- POST /api/voice-calls/{id}/{hangup,say,transfer} ------------------------------------ */

static void answer_accepted(struct api_op *op, const char *via);

static void on_published(void *arg, const struct redis_reply *r)
{
    struct api_op *op = arg;
    if (r == NULL || redis_reply_type(r) != REDIS_R_INTEGER)
        return finish_error(op, 503, "redis_unavailable", "the command was not delivered");
    if (redis_reply_int(r) == 0)
        return finish_error(op, 503, "owner_unreachable",
                            "the worker that owns the call is not listening; try again");
    log_info("control %s for %s published (%s)", call_control_op_name(op->msg.op),
             op->msg.call_id, op->msg.id);
    answer_accepted(op, "stream");
}

static void ignore_reply(void *arg, const struct redis_reply *r)
{
    (void)arg, (void)r;
}

static void answer_accepted(struct api_op *op, const char *via)
{
    json_t *o = json_pack("{s:b, s:{s:s, s:s}}", "success", 1, "data", "commandId", op->msg.id,
                          "via", via);
    int rc = o ? body_json(op->res, o) : -ENOMEM;
    if (rc == 0)
        http_response_status(op->res, 202);
    else
        http_response_json_error(op->res, 500, "internal", "response not built");
    http_response_finish(op->res);
    op_free(op);
}

static void on_twilio_done(void *arg, const struct twilio_rest_result *r)
{
    struct api_op *op = arg;
    if (r->outcome == TWILIO_REST_OK) {
        log_info("control %s for %s sent to Twilio (%s)", call_control_op_name(op->msg.op),
                 op->msg.call_id, op->msg.id);
        return answer_accepted(op, "twilio");
    }
    if (r->outcome == TWILIO_REST_GONE)
        return finish_error(op, 404, "call_not_live", "Twilio says the call has already ended");
    char msg[300];
    snprintf(msg, sizeof msg, "Twilio refused: %ld %s", (long)r->code, r->message);
    int status = twilio_rest_api_status(r->outcome);
    finish_error(op, status, status == 503 ? "twilio_unreachable" : "twilio_refused",
                 status == 503 ? "Twilio could not be reached; try again" : msg);
}

/* No live media stream (the call is still ringing, or its stream lives on a node that is gone):
 * a hang-up or transfer goes to Twilio's REST API for the call's CallSid instead. */
static void on_record_for_twilio(void *arg, const struct redis_reply *r)
{
    struct api_op *op = arg;
    if (r == NULL || redis_reply_type(r) != REDIS_R_ARRAY || redis_reply_count(r) != 2)
        return finish_error(op, 503, "redis_unavailable", "call state is unavailable right now");
    size_t sl, tl;
    const char *sid = redis_reply_str(redis_reply_elem(r, 0), &sl);
    const char *st = redis_reply_str(redis_reply_elem(r, 1), &tl);
    struct twilio_rest *tr = call_store_twilio(op->cs);
    char call_sid[72], status[32];
    snprintf(call_sid, sizeof call_sid, "%.*s", sid ? (int)(sl < 64 ? sl : 64) : 0, sid ? sid : "");
    snprintf(status, sizeof status, "%.*s", st ? (int)(tl < 24 ? tl : 24) : 0, st ? st : "");
    int early = strcmp(status, "queued") == 0 || strcmp(status, "initiated") == 0 ||
                strcmp(status, "ringing") == 0;
    if (call_sid[0] == '\0' || tr == NULL || !(early || strcmp(status, "in-progress") == 0))
        return finish_error(op, 404, "call_not_live", "the call has no live media stream");
    int rc;
    if (op->msg.op == CALL_CTL_HANGUP) {
        rc = early ? twilio_rest_call_cancel(tr, call_sid, on_twilio_done, op)
                   : twilio_rest_call_hangup(tr, call_sid, on_twilio_done, op);
    } else {
        char twiml[512];
        size_t len;
        rc = twilio_rest_dial_twiml(op->msg.to, NULL, twiml, sizeof twiml, &len);
        if (rc == 0)
            rc = twilio_rest_call_redirect(tr, call_sid, twiml, on_twilio_done, op);
    }
    if (rc != 0)
        finish_error(op, 503, "twilio_unreachable", "the request to Twilio was not sent");
}

static void on_session(void *arg, const struct redis_reply *r)
{
    struct api_op *op = arg;
    if (r == NULL || redis_reply_type(r) != REDIS_R_ARRAY || redis_reply_count(r) != 2)
        return finish_error(op, 503, "redis_unavailable", "call state is unavailable right now");
    size_t nl, wl;
    const char *node = redis_reply_str(redis_reply_elem(r, 0), &nl);
    const char *worker = redis_reply_str(redis_reply_elem(r, 1), &wl);
    if (node == NULL || worker == NULL) {
        if (op->msg.op == CALL_CTL_SAY)
            return finish_error(op, 404, "call_not_live", "the call has no live media stream");
        char k[KEY_MAX];
        key(op->cs, k, "call", op->msg.call_id);
        const char *argv[] = {"HMGET", k, "twilio_call_sid", "status"};
        if (redis_client_request(call_store_redis(op->cs), on_record_for_twilio, op, 4, argv,
                                 NULL) != 0)
            finish_error(op, 503, "redis_unavailable", "call state is unavailable right now");
        return;
    }
    char channel[KEY_MAX];
    snprintf(channel, sizeof channel, "%sctl:%.*s:%.*s", call_store_prefix(op->cs),
             (int)(nl < 80 ? nl : 80), node, (int)(wl < 16 ? wl : 16), worker);
    struct redis_client *rc = call_store_redis(op->cs);
    if (op->msg.op == CALL_CTL_TRANSFER) {
        /* The target goes on the record before the command: the stream-ended webhook (on
         * whichever node) reads it there. Same connection, so Redis has it first. */
        char k[KEY_MAX];
        key(op->cs, k, "call", op->msg.call_id);
        const char *hset[] = {"HSET", k, "transfer_to", op->msg.to};
        if (redis_client_request(rc, ignore_reply, NULL, 4, hset, NULL) != 0)
            return finish_error(op, 503, "redis_unavailable", "the command was not delivered");
    }
    char *msg = control_msg_encode(&op->msg);
    if (msg == NULL)
        return finish_error(op, 500, "internal", "command not built");
    const char *pub[] = {"PUBLISH", channel, msg};
    int err = redis_client_request(rc, on_published, op, 3, pub, NULL);
    free(msg);
    if (err != 0)
        finish_error(op, 503, "redis_unavailable", "the command was not delivered");
}

static void command_id(char out[40])
{
    unsigned char b[12];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        static unsigned long long fallback; /* uniqueness only, not secrecy */
        unsigned long long v = ++fallback ^ (unsigned long long)uv_hrtime();
        memcpy(b, &v, sizeof v);
        memset(b + sizeof v, 0, sizeof b - sizeof v);
    }
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "cmd_", 4);
    for (size_t i = 0; i < sizeof b; i++) {
        out[4 + 2 * i] = hex[b[i] >> 4];
        out[5 + 2 * i] = hex[b[i] & 15];
    }
    out[4 + 2 * sizeof b] = '\0';
}

static int post_command(struct http_request *req, struct http_response *res,
                        struct call_store *cs, enum call_control_op opcode)
{
    int rc;
    struct api_op *op = op_for_call(req, res, cs, &rc);
    if (op == NULL)
        return rc;
    const char *id = op->msg.call_id;
    op->msg.op = opcode;
    command_id(op->msg.id);
    if (opcode != CALL_CTL_HANGUP) {
        const struct http_msg *m = req->msg;
        json_t *body = m->body_len ? json_loadb(m->body, m->body_len, 0, NULL) : NULL;
        const char *field = opcode == CALL_CTL_SAY ? "text" : "to";
        json_t *v = json_object_get(body, field);
        const char *s = json_string_value(v);
        int bad;
        if (opcode == CALL_CTL_SAY)
            bad = s == NULL || json_string_length(v) == 0 ||
                  json_string_length(v) > CONTROL_TEXT_MAX || strlen(s) != json_string_length(v);
        else
            bad = s == NULL || !control_e164_ok(s);
        if (!bad) {
            if (opcode == CALL_CTL_SAY)
                op->msg.text = strdup(s);
            else
                snprintf(op->msg.to, sizeof op->msg.to, "%s", s);
        }
        json_decref(body);
        if (bad) {
            op_free(op);
            return http_response_json_error(
                res, 400, "bad_request",
                opcode == CALL_CTL_SAY
                    ? "expected a JSON body {\"text\": \"...\"} with 1-4096 bytes of text"
                    : "expected a JSON body {\"to\": \"+E164\"} with an E.164 number");
        }
        if (opcode == CALL_CTL_SAY && op->msg.text == NULL) {
            op_free(op);
            return -ENOMEM;
        }
    }
    char k[KEY_MAX];
    key(cs, k, "session", id);
    const char *argv[] = {"HMGET", k, "node", "worker"};
    if (redis_client_request(call_store_redis(cs), on_session, op, 4, argv, NULL) != 0) {
        op_free(op);
        return unavailable(res);
    }
    return -EAGAIN;
}

static int post_hangup(struct http_request *req, struct http_response *res, void *arg)
{
    return post_command(req, res, arg, CALL_CTL_HANGUP);
}

static int post_say(struct http_request *req, struct http_response *res, void *arg)
{
    return post_command(req, res, arg, CALL_CTL_SAY);
}

static int post_transfer(struct http_request *req, struct http_response *res, void *arg)
{
    return post_command(req, res, arg, CALL_CTL_TRANSFER);
}

int api_control_register(struct http_router *r, struct call_store *cs, http_guard_fn *guard,
                         void *guard_arg)
{
    const struct http_route routes[] = {
        {.method = HTTP_METHOD_GET, .pattern = "/api/voice-calls/{id}", .handler = get_call},
        {.method = HTTP_METHOD_POST, .pattern = "/api/voice-calls/{id}/hangup",
         .handler = post_hangup},
        {.method = HTTP_METHOD_POST, .pattern = "/api/voice-calls/{id}/say", .handler = post_say},
        {.method = HTTP_METHOD_POST, .pattern = "/api/voice-calls/{id}/transfer",
         .handler = post_transfer},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        struct http_route route = routes[i];
        route.arg = cs;
        route.guard = guard;
        route.guard_arg = guard_arg;
        int err = http_router_add(r, &route);
        if (err != 0)
            return err;
    }
    return 0;
}

/* ---- the stream-ended answer ------------------------------------------------------------- */

static int answer_say(struct http_response *res, const char *say)
{
    char xml[2048];
    size_t len;
    if (say == NULL || twiml_say_hangup(say, xml, sizeof xml, &len) != 0)
        twiml_say_hangup(NULL, xml, sizeof xml, &len);
    return http_response_body(res, "text/xml", xml, len);
}

static void on_ended_record(void *arg, const struct redis_reply *r)
{
    struct api_op *op = arg;
    const char *say = op->say;
    char to[17] = "";
    if (r && redis_reply_type(r) == REDIS_R_ARRAY && redis_reply_count(r) == 2) {
        size_t tl, fl;
        const char *t = redis_reply_str(redis_reply_elem(r, 0), &tl);
        const char *failed = redis_reply_str(redis_reply_elem(r, 1), &fl);
        if (t && tl < sizeof to) {
            memcpy(to, t, tl);
            to[tl] = '\0';
        }
        /* The AI side of this call failed on another node: the apology is due here too. */
        if (say == NULL && failed && fl == 1 && failed[0] == '1')
            say = call_store_config(op->cs)->openai.apology;
    }
    char xml[512];
    size_t len;
    if (to[0] && control_e164_ok(to) && twiml_dial(to, xml, sizeof xml, &len) == 0) {
        log_info("http: stream of call %s ended: transferring", op->msg.call_id);
        const char *f[] = {"to", to};
        call_store_xadd(op->cs, "call.transferred", op->msg.call_id, f, 1);
        http_response_body(op->res, "text/xml", xml, len);
    } else {
        log_info("http: stream of call %s ended: %s", op->msg.call_id,
                 say ? "apologising" : "hanging up");
        answer_say(op->res, say);
    }
    http_response_finish(op->res);
    op_free(op);
}

int api_control_stream_ended(void *arg, const char *call_id, const char *say,
                             struct http_response *res)
{
    struct call_store *cs = arg;
    struct api_op *op = calloc(1, sizeof *op);
    if (op == NULL)
        return answer_say(res, say);
    op->cs = cs;
    op->res = res;
    op->say = say;
    snprintf(op->msg.call_id, sizeof op->msg.call_id, "%s", call_id);
    char k[KEY_MAX];
    key(cs, k, "call", call_id);
    const char *argv[] = {"HMGET", k, "transfer_to", "ai_failed"};
    if (redis_client_request(call_store_redis(cs), on_ended_record, op, 4, argv, NULL) != 0) {
        op_free(op);
        log_info("http: stream of call %s ended: %s (Redis unavailable)", call_id,
                 say ? "apologising" : "hanging up");
        return answer_say(res, say);
    }
    return -EAGAIN;
}
