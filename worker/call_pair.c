/* Call pair lifecycle: its own libuv loop, set up and run on a call scheduler thread
 * (worker/call_sched.h), start-up of both legs, events to the worker's main loop, and the end:
 * once both WebSockets have closed, the remaining handles close, the loop runs dry, the scheduler
 * hands it back, the loop is closed and CALL_EV_ENDED posted; the main loop frees the call. */
#include "worker/call_pair.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "worker/call.h"

#define CALL_CONTROL_QUEUE 16          /* commands waiting for one call: an API client's burst */

uint64_t call_now_us(void)
{
    return uv_hrtime() / 1000;
}

const char *call_param(const struct call *c, const char *name)
{
    const char *p = c->params, *end = c->params + c->params_len;
    while (p != NULL && p < end) {
        const char *value = p + strlen(p) + 1;
        if (strcmp(p, name) == 0)
            return value;
        p = value + strlen(value) + 1;
    }
    return NULL;
}

struct json_tok *call_toks(void)
{
    static _Thread_local struct json_tok toks[OPENAI_TOKENS_MAX > TWILIO_TOKENS_MAX
                                                  ? OPENAI_TOKENS_MAX
                                                  : TWILIO_TOKENS_MAX];
    return toks;
}

void call_post(struct call *c, enum call_event_type type, const char *role, const char *text)
{
    struct call_event *ev = calloc(1, sizeof *ev);
    if (ev == NULL) {
        log_error("event lost: out of memory");
        return;
    }
    ev->type = type;
    ev->call = c;
    ev->serial = c->serial;
    ev->slot = c->slot.index;
    snprintf(ev->call_sid, sizeof ev->call_sid, "%s", c->call_sid);
    snprintf(ev->stream_sid, sizeof ev->stream_sid, "%s", c->stream_sid);
    const char *id = call_param(c, "callId");
    snprintf(ev->call_id, sizeof ev->call_id, "%s", id ? id : c->call_sid);
    snprintf(ev->role, sizeof ev->role, "%s", role ? role : "");
    ev->t_ms = (uint32_t)((uv_hrtime() - c->started_ns) / 1000000);
    if (text && (ev->text = strdup(text)) == NULL)
        log_error("event text lost: out of memory");
    if (type == CALL_EV_ENDED) {
        log_use_context(NULL); /* after this post the main loop may free c and its prefix */
        ev->ai_failed = c->ai_failed;
        snprintf(ev->reason, sizeof ev->reason, "%s", c->end_reason);
        ev->stats = c->stats;
        /* The end must arrive or the call is never freed; one per call bounds these, and
         * waiting for room would stall every call on this scheduler thread. */
        if (thread_queue_push_always(c->host->events, &ev->node) != 0) {
            log_error("call end event lost: the worker's queue is closed");
            call_event_free(ev);
        }
        return;
    }
    if (thread_queue_push(c->host->events, &ev->node) != 0)
        call_event_free(ev); /* counted by the queue */
}

void call_post_control(struct call *c, const struct call_control *cmd, const char *outcome)
{
    struct call_event *ev = calloc(1, sizeof *ev);
    if (ev == NULL) {
        log_error("control outcome lost: out of memory");
        return;
    }
    ev->type = CALL_EV_CONTROL;
    ev->call = c;
    ev->serial = c->serial;
    snprintf(ev->call_sid, sizeof ev->call_sid, "%s", c->call_sid);
    snprintf(ev->stream_sid, sizeof ev->stream_sid, "%s", c->stream_sid);
    const char *id = call_param(c, "callId");
    snprintf(ev->call_id, sizeof ev->call_id, "%s", id ? id : c->call_sid);
    snprintf(ev->role, sizeof ev->role, "%s", call_control_op_name(cmd->op));
    snprintf(ev->reason, sizeof ev->reason, "%s", outcome);
    ev->t_ms = (uint32_t)((uv_hrtime() - c->started_ns) / 1000000);
    ev->text = strdup(cmd->command_id);
    if (thread_queue_push(c->host->events, &ev->node) != 0)
        call_event_free(ev);
}

const char *call_control_op_name(enum call_control_op op)
{
    switch (op) {
    case CALL_CTL_HANGUP:
        return "hangup";
    case CALL_CTL_SAY:
        return "say";
    case CALL_CTL_TRANSFER:
        return "transfer";
    }
    return "unknown";
}

void call_control_free(struct call_control *cmd)
{
    if (cmd) {
        free(cmd->text);
        free(cmd);
    }
}

int call_pair_control(struct call *c, struct call_control *cmd)
{
    return thread_queue_push(&c->ctl, &cmd->node);
}

/* say: stop whatever the AI is saying (as a barge-in would) and have it say the text now. */
static const char *apply_say(struct call *c, const char *text)
{
    if (c->oa_state != OA_CONFIGURED || c->tw_state != TW_STREAMING)
        return "not_ready";
    call_audio_interrupt(c, call_now_us());
    static const char pre[] = "Say the following to the caller now, exactly as written, and "
                              "nothing else: ";
    size_t n = strlen(text);
    char *instr = malloc(sizeof pre + n);
    if (instr == NULL)
        return "failed";
    memcpy(instr, pre, sizeof pre - 1);
    memcpy(instr + sizeof pre - 1, text, n + 1);
    openai_leg_send_owned(c, openai_msg_system_item(instr));
    free(instr);
    openai_leg_request_response(c); /* waits for the cancelled response's done if need be */
    return "ok";
}

static void apply_control(struct call *c, struct call_control *cmd)
{
    const char *outcome = "ok";
    int ending = c->end_reason[0] != '\0' || c->ending;
    log_info("control %s (%s)", call_control_op_name(cmd->op), cmd->command_id);
    switch (cmd->op) {
    case CALL_CTL_HANGUP:
        if (c->end_reason[0] != '\0') /* a goodbye still playing (end_call) is cut short */
            outcome = "ending";
        else
            call_end(c, "hung up by the API", 0);
        break;
    case CALL_CTL_TRANSFER:
        /* The target is on the call record already; Twilio asks the stream-ended URL next. */
        if (ending)
            outcome = "ending";
        else
            call_end(c, "transferred", 0);
        break;
    case CALL_CTL_SAY:
        outcome = ending ? "ending" : apply_say(c, cmd->text ? cmd->text : "");
        break;
    }
    call_post_control(c, cmd, outcome);
}

static void on_control(struct thread_queue *q)
{
    struct call *c = (struct call *)((char *)q - offsetof(struct call, ctl));
    struct tq_node *n = thread_queue_take(q);
    while (n) {
        struct call_control *cmd = (struct call_control *)n;
        n = n->next;
        apply_control(c, cmd);
        call_control_free(cmd);
    }
}

void call_event_free(struct call_event *ev)
{
    if (ev) {
        free(ev->text);
        free(ev);
    }
}

/* Ends the call from either side: both legs close; the first reason given is kept. */
void call_end(struct call *c, const char *reason, int ai_failed)
{
    if (c->end_reason[0] == '\0')
        snprintf(c->end_reason, sizeof c->end_reason, "%s", reason);
    if (ai_failed && !c->ai_failed) {
        c->ai_failed = 1;
        call_post(c, CALL_EV_AI_FAILED, NULL, NULL);
    }
    twilio_leg_close(c, WS_CLOSE_NORMAL, reason);
    openai_leg_close(c, WS_CLOSE_NORMAL, reason);
    call_finish_if_done(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct call *c = h->data;
    c->handles_open--;
}

/* When both legs are closed, close the rest so uv_run returns. Idempotent. */
void call_finish_if_done(struct call *c)
{
    if (c->tw_state != TW_CLOSED || (c->oa_state != OA_CLOSED && c->oa_state != OA_IDLE))
        return;
    if (!uv_is_closing((uv_handle_t *)&c->pace_timer)) {
        uv_close((uv_handle_t *)&c->pace_timer, on_handle_closed);
        thread_queue_close(&c->ctl, NULL); /* later commands get -EPIPE */
        http_client_close(&c->http, NULL); /* a webhook still running is cancelled */
    }
}

/* Scheduler thread: the call's loop, its handles and both legs. On failure everything is undone
 * here and CALL_EV_ENDED posted, so the scheduler drops the task. */
static int call_start(struct sched_task *t)
{
    struct call *c = (struct call *)((char *)t - offsetof(struct call, task));
    t->enter(t);
    c->started_ns = uv_hrtime();
    int rc = uv_loop_init(&c->loop);
    if (rc != 0) {
        log_error("call loop: %s", uv_strerror(rc));
        close(c->fd);
        free(c->early);
        call_audio_free(c);
        snprintf(c->end_reason, sizeof c->end_reason, "loop failed");
        call_post(c, CALL_EV_ENDED, NULL, NULL);
        return -EIO;
    }
    uv_timer_init(&c->loop, &c->pace_timer);
    c->pace_timer.data = c;
    if ((rc = http_client_init(&c->http, &c->loop, c->host->webhook_tls, NULL)) != 0) {
        log_error("call http client: %s", strerror(-rc));
        uv_close((uv_handle_t *)&c->pace_timer, NULL);
        goto fail;
    }
    if ((rc = thread_queue_init(&c->ctl, &c->loop, CALL_CONTROL_QUEUE, on_control)) != 0) {
        log_error("call control queue: %s", uv_strerror(rc));
        uv_close((uv_handle_t *)&c->pace_timer, NULL);
        http_client_close(&c->http, NULL);
        goto fail;
    }
    c->handles_open = 1;
    c->tw_state = TW_CLOSED; /* until the leg starts */
    c->oa_state = OA_IDLE;
    if (twilio_leg_start(c) == 0 && openai_leg_start(c) != 0)
        call_end(c, "openai connect failed", 1);
    call_finish_if_done(c);
    return 0;
fail:
    uv_run(&c->loop, UV_RUN_DEFAULT); /* only close callbacks left: returns at once */
    uv_loop_close(&c->loop);
    close(c->fd);
    free(c->early);
    call_audio_free(c);
    snprintf(c->end_reason, sizeof c->end_reason, "set-up failed");
    call_post(c, CALL_EV_ENDED, NULL, NULL);
    return -EIO;
}

/* The log context is per thread: point it at this call's prefix (formatted once, not at each of
 * the thousands of switches a second). */
static void call_enter(struct sched_task *t)
{
    struct call *c = (struct call *)((char *)t - offsetof(struct call, task));
    log_use_context(c->log_ctx);
}

/* Scheduler thread: the loop ran dry. After the ENDED post the main loop may free c at once. */
static void call_done(struct sched_task *t)
{
    struct call *c = (struct call *)((char *)t - offsetof(struct call, task));
    if (uv_loop_close(&c->loop) != 0)
        log_error("call loop closed with handles still open");
    call_audio_publish(c);
    for (struct tq_node *n = thread_queue_take(&c->ctl); n;) {
        struct call_control *cmd = (struct call_control *)n; /* came too late: refused */
        n = n->next;
        call_post_control(c, cmd, "ending");
        call_control_free(cmd);
    }
    call_audio_free(c);
    log_info("call ended: %s; frames in %llu out %llu, barge-ins %llu", c->end_reason,
             (unsigned long long)c->stats.frames_in, (unsigned long long)c->stats.frames_out,
             (unsigned long long)c->stats.barge_ins);
    call_post(c, CALL_EV_ENDED, NULL, NULL);
}

static size_t keep_len(const char *s)
{
    return s != NULL ? strnlen(s, WS_MAX_HEADER_VALUE - 1) + 1 : 0;
}

/* Copies s into the upgrade buffer at *pos; returns the copy or NULL if absent. */
static const char *keep(struct call *c, size_t *pos, const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = keep_len(s) - 1;
    char *dst = c->upgrade_buf + *pos;
    memcpy(dst, s, n);
    dst[n] = '\0';
    *pos += n + 1;
    return dst;
}

int call_pair_start(struct call_pair_host *host, uint64_t serial, const struct call_slot *slot,
                    int fd,
                    const struct ws_upgrade *upgrade, const void *early, size_t early_len)
{
    struct call *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        return -ENOMEM;
    }
    c->host = host;
    c->serial = serial;
    snprintf(c->log_ctx, sizeof c->log_ctx, "call=%llu", (unsigned long long)serial);
    c->slot = *slot;
    c->fd = fd;
    int rc = -ENOMEM;
    size_t pos = 0;
    if ((c->upgrade_buf = malloc(keep_len(upgrade->upgrade) + keep_len(upgrade->connection) +
                                 keep_len(upgrade->key) + keep_len(upgrade->version) + 1)) ==
        NULL)
        goto fail;
    c->upgrade.upgrade = keep(c, &pos, upgrade->upgrade);
    c->upgrade.connection = keep(c, &pos, upgrade->connection);
    c->upgrade.key = keep(c, &pos, upgrade->key);
    c->upgrade.version = keep(c, &pos, upgrade->version);
    if (early_len > 0) {
        if ((c->early = malloc(early_len)) == NULL)
            goto fail;
        memcpy(c->early, early, early_len);
        c->early_len = early_len;
    }
    if ((rc = call_audio_init(c)) != 0)
        goto fail;
    c->task = (struct sched_task){
        .loop = &c->loop, .start = call_start, .enter = call_enter, .done = call_done};
    if ((rc = call_sched_submit(host->sched, &c->task)) != 0)
        goto fail;
    return 0;
fail:
    call_audio_free(c);
    free(c->upgrade_buf);
    free(c->early);
    close(fd);
    free(c);
    return rc;
}

void call_pair_join(struct call *c)
{
    free(c->upgrade_buf);
    free(c->params);
    free(c);
}
