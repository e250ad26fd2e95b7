/* The OpenAI leg of a call pair: the Realtime (GA) WebSocket client. Connects as soon as the
 * media stream opens, sends session.update once Twilio's start has told us who is calling, then
 * turns server events into audio, transcripts, barge-ins and tool calls. One response at a time:
 * a response.create asked for while one is active waits for response.done. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "worker/call.h"

void openai_leg_send_owned(struct call *c, char *msg)
{
    if (msg == NULL) {
        log_error("openai message not built: out of memory");
        return;
    }
    if (c->oa_state == OA_OPEN || c->oa_state == OA_CONFIGURED) {
        int rc = ws_send_text(&c->openai, msg, strlen(msg));
        if (rc != 0)
            log_warn("openai send failed: %s", strerror(-rc));
    }
    free(msg);
}

void openai_leg_request_response(struct call *c)
{
    if (c->response_active) {
        c->create_pending = 1;
        return;
    }
    c->create_pending = 0;
    c->response_active = 1; /* until response.done; response.created names it */
    c->response_id[0] = '\0';
    openai_leg_send_owned(c, openai_msg_response_create(NULL));
}

/* Fills {{name}} placeholders of the instructions from the stream's parameters ("" if absent).
 * Returns a heap string (caller frees) or NULL. */
static char *fill_template(const struct call *c, const char *tpl)
{
    /* Every placeholder may become a parameter value of at most TWILIO_PARAM_VALUE_MAX bytes. */
    size_t cap = strlen(tpl) + 1, len = 0;
    for (const char *p = strstr(tpl, "{{"); p; p = strstr(p + 2, "{{"))
        cap += TWILIO_PARAM_VALUE_MAX;
    char *out = malloc(cap);
    if (out == NULL)
        return NULL;
    for (const char *p = tpl; *p;) {
        const char *end;
        if (p[0] == '{' && p[1] == '{' && (end = strstr(p + 2, "}}")) != NULL && end - p < 66) {
            char name[64];
            size_t n = (size_t)(end - p - 2);
            memcpy(name, p + 2, n);
            name[n] = '\0';
            const char *v = call_param(c, name);
            if (v) {
                size_t vl = strlen(v); /* < TWILIO_PARAM_VALUE_MAX: fits, see cap */
                memcpy(out + len, v, vl);
                len += vl;
            }
            p = end + 2;
            continue;
        }
        out[len++] = *p++;
    }
    out[len] = '\0';
    return out;
}

/* The tools the model may call: end_call always, the webhook tool when configured. */
static char *tools_json(const struct config *cfg)
{
    json_t *tools = json_array();
    json_array_append_new(
        tools, json_pack("{s:s, s:s, s:s, s:{s:s, s:{s:{s:s}}}}", "type", "function", "name",
                         "end_call", "description",
                         "Hang up the call after you have said goodbye to the caller.",
                         "parameters", "type", "object", "properties", "reason", "type",
                         "string"));
    const struct config_webhook *wh = &cfg->tools.webhook;
    if (wh->url) {
        json_error_t err;
        json_t *params = json_loads(wh->parameters, 0, &err);
        json_array_append_new(tools, json_pack("{s:s, s:s, s:s, s:o}", "type", "function",
                                               "name", wh->name, "description", wh->description,
                                               "parameters", params ? params : json_object()));
    }
    char *s = json_dumps(tools, JSON_COMPACT);
    json_decref(tools);
    return s;
}

void openai_leg_configure(struct call *c)
{
    const struct config *cfg = c->host->cfg;
    /* A call placed through the API may bring its own instructions (a stream Parameter). */
    const char *tpl = call_param(c, "instructions");
    char *instructions = fill_template(c, tpl && tpl[0] ? tpl : cfg->openai.instructions);
    char *tools = tools_json(cfg);
    struct openai_session_cfg s = {
        .model = cfg->openai.model,
        .instructions = instructions,
        .voice = call_param(c, "voice") ? call_param(c, "voice") : cfg->openai.voice,
        .g711 = c->g711,
        .transcription_model = cfg->openai.transcription_model,
        .turn_detection_json = cfg->openai.turn_detection,
        .tools_json = tools,
    };
    openai_leg_send_owned(c, openai_msg_session_update(&s));
    free(instructions);
    free(tools);
    c->oa_state = OA_CONFIGURED;
    call_audio_flush_uplink(c); /* the caller's audio held until now, in order */
    const char *dir = call_param(c, "direction");
    int outbound = dir && strcmp(dir, "outbound") == 0;
    if (outbound || cfg->openai.greeting_inbound)
        openai_leg_request_response(c); /* speak first: no dead air */
}

static void oa_on_open(struct ws *ws)
{
    struct call *c = ws->data;
    c->oa_state = OA_OPEN;
    log_debug("openai session connected");
    if (c->tw_state == TW_STREAMING)
        openai_leg_configure(c);
}

/* One webhook tool call in flight: owned by the request, freed in its callback. */
struct tool_call {
    struct call *c;
    char call_id[OPENAI_ID_MAX];
    uint64_t started_us;
};

static void on_webhook_done(void *arg, const struct http_client_response *res)
{
    struct tool_call *t = arg;
    struct call *c = t->c;
    const struct config_webhook *wh = &c->host->cfg->tools.webhook;
    char buf[512];
    const char *result = buf;
    uint64_t ms = (call_now_us() - t->started_us) / 1000;
    if (res->error == -ECANCELED || c->oa_state != OA_CONFIGURED) {
        free(t);
        return; /* the call is ending: nobody to tell */
    }
    /* Errors become results the model can speak about; the call goes on. */
    if (res->error == -ETIMEDOUT)
        snprintf(buf, sizeof buf, "{\"error\":\"%s timed out after %u ms\"}", wh->name,
                 wh->timeout_ms);
    else if (res->error != 0)
        snprintf(buf, sizeof buf, "{\"error\":\"%s is unreachable\"}", wh->name);
    else if (res->status < 200 || res->status > 299)
        snprintf(buf, sizeof buf, "{\"error\":\"%s answered HTTP %d\"}", wh->name, res->status);
    else
        result = NULL;
    char *body = NULL;
    if (result == NULL) {
        body = malloc(res->body_len + 3);
        if (body == NULL) {
            snprintf(buf, sizeof buf, "{\"error\":\"out of memory\"}");
            result = buf;
        } else {
            memcpy(body, res->body_len ? res->body : "{}", res->body_len ? res->body_len : 2);
            body[res->body_len ? res->body_len : 2] = '\0';
            result = body;
        }
    }
    if (res->error != 0)
        log_warn("tool %s failed after %llu ms: %s", wh->name, (unsigned long long)ms,
                 res->message);
    else
        log_info("tool %s answered %d in %llu ms", wh->name, res->status,
                 (unsigned long long)ms);
    char *msg = openai_msg_function_output(t->call_id, result);
    if (msg == NULL) /* the body was not text jansson accepts (not UTF-8) */
        msg = openai_msg_function_output(t->call_id, "{\"error\":\"the answer was not text\"}");
    openai_leg_send_owned(c, msg);
    openai_leg_request_response(c);
    free(body);
    free(t);
}

/* POSTs the model's arguments to the configured webhook, on this call's loop: the call keeps
 * streaming while it runs. */
static int call_webhook(struct call *c, const struct openai_event *ev)
{
    const struct config_webhook *wh = &c->host->cfg->tools.webhook;
    struct tool_call *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -ENOMEM;
    t->c = c;
    snprintf(t->call_id, sizeof t->call_id, "%s", ev->call_id);
    t->started_us = call_now_us();
    const char *args = ev->text && ev->text[0] ? ev->text : "{}";
    struct http_client_header hdrs[] = {
        {"Content-Type", "application/json"},
        {"Accept", "application/json"},
        {"X-Voicebridge-Call", c->call_sid},
    };
    struct http_client_request req = {
        .method = "POST",
        .url = wh->url,
        .headers = hdrs,
        .n_headers = sizeof hdrs / sizeof hdrs[0],
        .body = args,
        .body_len = strlen(args),
        .timeout_ms = wh->timeout_ms,
        .max_response_bytes = 64 * 1024,
    };
    int rc = http_client_request(&c->http, &req, on_webhook_done, t, NULL);
    if (rc != 0)
        free(t);
    return rc;
}

static void run_tool(struct call *c, const struct openai_event *ev)
{
    const struct config *cfg = c->host->cfg;
    log_info("tool call: %s %s", ev->name, ev->text ? ev->text : "");
    call_post(c, CALL_EV_TOOL, ev->name, ev->text);
    if (strcmp(ev->name, "end_call") == 0) {
        /* Say nothing more: the goodbye is already in this response. Hang up once it has
         * played (call_audio_pump checks). */
        c->ending = 1;
        openai_leg_send_owned(c, openai_msg_function_output(ev->call_id, "{\"ok\":true}"));
        return;
    }
    const char *result = "{\"error\":\"unknown tool\"}";
    if (cfg->tools.webhook.url && strcmp(ev->name, cfg->tools.webhook.name) == 0) {
        int rc = call_webhook(c, ev);
        if (rc == 0)
            return; /* answered from on_webhook_done */
        log_warn("tool %s not started: %s", ev->name, strerror(-rc));
        result = "{\"error\":\"the tool could not be started\"}";
    }
    openai_leg_send_owned(c, openai_msg_function_output(ev->call_id, result));
    openai_leg_request_response(c);
}

static void on_error_event(struct call *c, const struct openai_event *ev)
{
    if (strcmp(ev->name, "response_cancel_not_active") == 0)
        return; /* our cancel raced the server's own (interrupt_response) */
    c->stats.openai_errors++;
    if (c->stats.openai_errors <= 3)
        log_warn("openai error: %s: %s", ev->name[0] ? ev->name : "(no code)",
                 ev->text ? ev->text : "");
    if (strcmp(ev->name, "conversation_already_has_active_response") == 0)
        c->create_pending = 1;
}

static void oa_on_text(struct ws *ws, const char *text, size_t len)
{
    struct call *c = ws->data;
    uint64_t t_us = call_now_us();
    struct openai_event ev;
    if (openai_event_parse(text, len, call_toks(), &ev) != 0) {
        if (c->stats.protocol_errors++ < 3)
            log_warn("openai sent a malformed event (%zu bytes); ignored", len);
        return;
    }
    switch (ev.type) {
    case OPENAI_AUDIO_DELTA:
        call_audio_delta(c, &ev);
        break;
    case OPENAI_SPEECH_STARTED:
        call_audio_barge_in(c, t_us);
        break;
    case OPENAI_AUDIO_DONE:
        if (strcmp(ev.item_id, c->audio_item) == 0)
            call_audio_item_done(c);
        break;
    case OPENAI_AUDIO_TRANSCRIPT_DONE:
    case OPENAI_INPUT_TRANSCRIPT_DONE: {
        const char *role = ev.type == OPENAI_INPUT_TRANSCRIPT_DONE ? "user" : "assistant";
        log_info("%s: %s", role, ev.text ? ev.text : "");
        call_post(c, CALL_EV_TURN, role, ev.text ? ev.text : "");
        break;
    }
    case OPENAI_RESPONSE_CREATED:
        c->response_active = 1;
        snprintf(c->response_id, sizeof c->response_id, "%s", ev.response_id);
        break;
    case OPENAI_RESPONSE_DONE: {
        struct openai_usage *u = &c->stats.usage;
        u->input_text += ev.usage.input_text, u->input_audio += ev.usage.input_audio;
        u->cached_text += ev.usage.cached_text, u->cached_audio += ev.usage.cached_audio;
        u->output_text += ev.usage.output_text, u->output_audio += ev.usage.output_audio;
        c->response_active = 0;
        call_audio_item_done(c);
        if (c->create_pending && !c->ending)
            openai_leg_request_response(c);
        call_audio_pump(c);
        break;
    }
    case OPENAI_FUNCTION_CALL_DONE:
        run_tool(c, &ev);
        break;
    case OPENAI_ERROR:
        on_error_event(c, &ev);
        break;
    case OPENAI_INPUT_TRANSCRIPT_FAILED:
        log_warn("caller transcription failed: %s", ev.text ? ev.text : "");
        break;
    default:
        break;
    }
    openai_event_clear(&ev);
}

static void oa_on_close(struct ws *ws, int code, const char *reason, size_t reason_len)
{
    struct call *c = ws->data;
    int expected = c->end_reason[0] != '\0';
    c->oa_state = OA_CLOSED;
    if (expected) {
        log_debug("openai session closed: %d %.*s", code, (int)reason_len, reason);
        call_finish_if_done(c);
        return;
    }
    log_warn("openai session lost: %d %.*s (%s)", code, (int)reason_len, reason,
             ws_error(ws) ? strerror(-ws_error(ws)) : "closed by the server");
    call_end(c, "openai session lost", 1);
}

static const struct ws_callbacks oa_callbacks = {
    .on_open = oa_on_open,
    .on_text = oa_on_text,
    .on_close = oa_on_close,
};

int openai_leg_start(struct call *c)
{
    const struct config *cfg = c->host->cfg;
    char url[1024], auth[512];
    snprintf(url, sizeof url, "%s?model=%s", cfg->openai.url, cfg->openai.model);
    struct ws_header hdr = {"Authorization", auth};
    struct ws_options opt = {
        .tls = c->host->openai_tls,
        .max_message = cfg->bridge.max_ws_message_bytes,
    };
    if (cfg->openai.api_key) {
        snprintf(auth, sizeof auth, "Bearer %s", cfg->openai.api_key);
        opt.headers = &hdr;
        opt.n_headers = 1;
    }
    c->openai.data = c;
    int rc = ws_client_start(&c->openai, &c->loop, url, &oa_callbacks, &opt);
    memset(auth, 0, sizeof auth);
    if (rc != 0) {
        log_error("openai connect to %s not started: %s", cfg->openai.url, strerror(-rc));
        return rc;
    }
    c->oa_state = OA_CONNECTING;
    return 0;
}

void openai_leg_close(struct call *c, int code, const char *reason)
{
    if (c->oa_state != OA_CLOSED && c->oa_state != OA_IDLE)
        ws_close(&c->openai, code, reason);
}
