/* The Twilio leg of a call pair: the Media Streams WebSocket (server side). Enforces the message
 * order Twilio follows (connected, start, then media/mark/dtmf, then stop) and answers anything
 * else with a close code and reason: 1007 for undecodable data (bad JSON, bad base64), 1008 for
 * messages out of order or for another stream or without a valid stream token (the TwiML's
 * streamToken Parameter, worker/stream_token.h), 1009 for oversized messages (the ws layer). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/config.h"
#include "common/log.h"
#include "worker/call.h"
#include "worker/stream_token.h"

/* Logs the first few protocol errors of a call, counts all, and closes the stream. */
static void protocol_error(struct call *c, int code, const char *why)
{
    if (c->stats.protocol_errors++ < 3)
        log_warn("twilio protocol error: %s; closing the media stream (%d)", why, code);
    twilio_leg_close(c, code, why);
    call_end(c, "twilio protocol error", 0);
}

static void tw_on_open(struct ws *ws)
{
    (void)ws;
}

/* The customParameters as a JSON object, for the worker's call record (NULL: out of memory). */
static char *params_json(const struct twilio_start *st)
{
    json_t *o = json_object();
    for (unsigned i = 0; o && i < st->n_params; i++)
        json_object_set_new(o, st->params[i].name, json_string(st->params[i].value));
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static const char *start_param(const struct twilio_start *st, const char *name)
{
    for (unsigned i = 0; i < st->n_params; i++)
        if (strcmp(st->params[i].name, name) == 0)
            return st->params[i].value;
    return NULL;
}

/* With signatures checked, a stream is served only for a call we answered: its start must carry
 * the streamToken our TwiML gave its callId, unexpired. Returns 1 if so; otherwise logs once,
 * closes with 1008 and ends the call, and returns 0. */
static int stream_token_ok(struct call *c, const struct twilio_start *st)
{
    const struct config *cfg = c->host->cfg;
    if (!cfg->twilio.validate_signatures)
        return 1;
    int rc = -EACCES;
    struct stream_token_key key;
    if (cfg->twilio.auth_token != NULL &&
        stream_token_key_derive(&key, cfg->twilio.auth_token, strlen(cfg->twilio.auth_token)) == 0)
        rc = stream_token_check(&key, start_param(st, "callId"),
                                start_param(st, STREAM_TOKEN_PARAM), (int64_t)time(NULL));
    memset(&key, 0, sizeof key);
    if (rc == 0)
        return 1;
    const char *why = stream_token_error(rc);
    log_warn("media stream %llu refused: %s; closing it (1008)", (unsigned long long)c->serial,
             why);
    twilio_leg_close(c, WS_CLOSE_POLICY, why);
    call_end(c, "stream token refused", 0);
    return 0;
}

static void on_start(struct call *c, const struct twilio_start *st)
{
    size_t need = 0;
    for (unsigned i = 0; i < st->n_params; i++)
        need += strlen(st->params[i].name) + strlen(st->params[i].value) + 2;
    if (need > 0 && (c->params = malloc(need)) == NULL) {
        twilio_leg_close(c, WS_CLOSE_INTERNAL_ERROR, "out of memory");
        call_end(c, "out of memory", 0);
        return;
    }
    c->params_len = need;
    char *p = c->params;
    for (unsigned i = 0; i < st->n_params; i++) {
        p = stpcpy(p, st->params[i].name) + 1;
        p = stpcpy(p, st->params[i].value) + 1;
    }
    snprintf(c->stream_sid, sizeof c->stream_sid, "%s", st->stream_sid);
    snprintf(c->call_sid, sizeof c->call_sid, "%s", st->call_sid);
    c->tw_state = TW_STREAMING;
    snprintf(c->log_ctx, sizeof c->log_ctx, "call=%llu %s", (unsigned long long)c->serial,
             c->call_sid);
    const char *dir = "inbound";
    for (unsigned i = 0; i < st->n_params; i++)
        if (strcmp(st->params[i].name, "direction") == 0)
            dir = st->params[i].value;
    log_info("media stream started: stream %s, %s, %u parameters", st->stream_sid, dir,
             st->n_params);
    char *params = params_json(st);
    call_post(c, CALL_EV_STARTED, dir, params);
    free(params);
    if (c->oa_state == OA_OPEN)
        openai_leg_configure(c);
}

static void tw_on_text(struct ws *ws, const char *text, size_t len)
{
    struct call *c = ws->data;
    uint64_t t_in = call_now_us();
    struct twilio_msg m;
    struct twilio_start st;
    const char *why = "";
    int rc = twilio_msg_parse(text, len, call_toks(), &m, &st, &why);
    if (rc != 0) {
        protocol_error(c, rc == -EINVAL ? WS_CLOSE_INVALID_DATA : WS_CLOSE_POLICY, why);
        return;
    }
    if (m.stream_sid && c->tw_state == TW_STREAMING &&
        (m.stream_sid_len != strlen(c->stream_sid) ||
         memcmp(m.stream_sid, c->stream_sid, m.stream_sid_len) != 0)) {
        protocol_error(c, WS_CLOSE_POLICY, "streamSid does not match the stream's start");
        return;
    }
    switch (m.event) {
    case TWILIO_CONNECTED:
        if (c->tw_state != TW_WAIT_CONNECTED)
            return protocol_error(c, WS_CLOSE_POLICY, "connected sent twice");
        c->tw_state = TW_WAIT_START;
        return;
    case TWILIO_START:
        if (c->tw_state != TW_WAIT_START)
            return protocol_error(c, WS_CLOSE_POLICY,
                                  c->tw_state == TW_WAIT_CONNECTED ? "start before connected"
                                                                   : "start sent twice");
        if (stream_token_ok(c, &st))
            on_start(c, &st);
        return;
    case TWILIO_MEDIA:
    case TWILIO_MARK:
    case TWILIO_DTMF:
        if (c->tw_state != TW_STREAMING)
            return protocol_error(c, WS_CLOSE_POLICY, "media, mark or dtmf before start");
        if (m.event == TWILIO_MEDIA) {
            c->stats.frames_in++;
            call_audio_uplink(c, m.payload, m.payload_len, t_in);
            /* Twilio sends a frame every 20 ms all call long: each is a chance to send the
             * downlink in this wake-up, so the pacing timer need not wake the loop. */
            if (c->end_reason[0] == '\0')
                call_audio_pump(c);
        } else if (m.event == TWILIO_MARK) {
            call_audio_mark_echo(c, m.mark_name);
        } else {
            log_debug("dtmf %c", m.digit);
        }
        return;
    case TWILIO_STOP:
        log_info("media stream stopped by Twilio");
        c->tw_state = TW_STOPPED;
        call_end(c, "caller hung up", 0);
        return;
    case TWILIO_UNKNOWN:
        log_debug("ignoring an unknown Twilio event");
        return;
    }
}

static void tw_on_close(struct ws *ws, int code, const char *reason, size_t reason_len)
{
    struct call *c = ws->data;
    log_info("media stream closed: %d %.*s", code, (int)reason_len, reason);
    c->tw_state = TW_CLOSED;
    call_end(c, "media stream closed", 0);
}

static const struct ws_callbacks tw_callbacks = {
    .on_open = tw_on_open,
    .on_text = tw_on_text,
    .on_close = tw_on_close,
};

int twilio_leg_start(struct call *c)
{
    const struct config *cfg = c->host->cfg;
    struct ws_options opt = {.max_message = cfg->bridge.max_ws_message_bytes};
    c->twilio.data = c;
    int rc = ws_server_start(&c->twilio, &c->loop, c->fd, &c->upgrade, c->early, c->early_len,
                             &tw_callbacks, &opt);
    c->fd = -1; /* the ws owns it now, on success and failure alike */
    free(c->upgrade_buf);
    c->upgrade_buf = NULL;
    c->upgrade = (struct ws_upgrade){0};
    free(c->early);
    c->early = NULL;
    if (rc != 0) {
        log_warn("media stream upgrade refused: %s", strerror(-rc));
        snprintf(c->end_reason, sizeof c->end_reason, "bad upgrade request");
        return rc;
    }
    c->tw_state = TW_WAIT_CONNECTED;
    return 0;
}

void twilio_leg_send(struct call *c, const char *msg, size_t len)
{
    if (c->tw_state == TW_CLOSED)
        return;
    int rc = ws_send_text(&c->twilio, msg, len);
    if (rc == -ENOBUFS)
        c->stats.down_dropped_bytes += CALL_FRAME; /* Twilio is not reading: counted, dropped */
}

void twilio_leg_close(struct call *c, int code, const char *reason)
{
    if (c->tw_state != TW_CLOSED)
        ws_close(&c->twilio, code, reason); /* -EALREADY if already closing: fine */
}
