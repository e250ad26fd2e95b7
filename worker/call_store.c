/* Call events -> Redis writes (all queued through redis_client, so a call never waits and a
 * record made while Redis is away is written when it returns), the periodic refresh of the live
 * sessions, and the control channel's commands -> the owning call's queue. The live calls of
 * this worker are a short list (max_calls_per_worker, and only rare events look them up). */
#include "worker/call_store.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "worker/call_cost.h"
#include "common/log.h"
#include "worker/call_pair.h"
#include "worker/control_msg.h"
#include "worker/redis_client.h"
#include "worker/redis_queue.h"
#include "worker/twilio_callback.h"

#define KEY_MAX 256

/* RPUSH only if the list does not hold this turn yet: a write replayed after a lost connection
 * (Redis may have applied it before the connection dropped) is not appended twice. */
static const char transcript_script[] =
    "if redis.call('LLEN', KEYS[1]) <= tonumber(ARGV[1]) then "
    "redis.call('RPUSH', KEYS[1], ARGV[2]) end "
    "redis.call('EXPIRE', KEYS[1], ARGV[3]) return 1";

struct live {
    struct live *next;
    struct call *call;
    uint64_t serial;
    char id[65];
    char call_sid[64];
    char stream_sid[64];
    uint64_t started_ms; /* wall clock */
    unsigned turns;
    int transfer;        /* a transfer command went to this call */
    int outbound;
};

struct call_store {
    const struct config *cfg;
    struct twilio_rest *twilio; /* borrowed from the call API; NULL: not configured */
    struct redis_client *redis;
    uv_timer_t refresh;
    char prefix[72];
    char node[72];
    unsigned worker_id;
    char worker_str[16];
    char pid_str[16];
    char channel[256];
    char retention[16];
    char session_ttl[16];
    char maxlen[16];
    struct live *live;
    uint64_t event_seq;
};

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void call_store_iso8601(uint64_t epoch_ms, char out[32])
{
    time_t s = (time_t)(epoch_ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    /* The moduli bound every field for the compiler; none changes a real date. */
    snprintf(out, 32, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", (unsigned)(tm.tm_year + 1900) % 10000u,
             (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u,
             (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u,
             (unsigned)(epoch_ms % 1000));
}

int call_store_id_ok(const char *id)
{
    return control_id_ok(id, 64);
}

char *call_store_turn_json(const char *role, const char *text, uint32_t t_ms)
{
    json_t *o = json_pack("{s:s, s:s?, s:I}", "role", role, "text", text, "t_ms", (json_int_t)t_ms);
    if (o == NULL) /* text not UTF-8: keep the turn, say so */
        o = json_pack("{s:s, s:s, s:I}", "role", role, "text", "", "t_ms", (json_int_t)t_ms);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

char *call_store_usage_json(const struct openai_usage *u)
{
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "input_text_tokens",
                          (json_int_t)u->input_text, "input_audio_tokens", (json_int_t)u->input_audio,
                          "cached_text_tokens", (json_int_t)u->cached_text, "cached_audio_tokens",
                          (json_int_t)u->cached_audio, "output_text_tokens",
                          (json_int_t)u->output_text, "output_audio_tokens",
                          (json_int_t)u->output_audio);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static void key(const struct call_store *cs, char out[KEY_MAX], const char *kind, const char *id)
{
    snprintf(out, KEY_MAX, "%s%s:%s", cs->prefix, kind, id);
}

static void write_cmd(struct call_store *cs, int argc, const char *const *argv)
{
    int rc = redis_client_write(cs->redis, argc, argv, NULL);
    if (rc != 0)
        log_error("redis write not queued: %s", strerror(-rc));
}

/* A unique id per event: a write replayed after a lost connection may be appended twice,
 * and consumers drop the second by this field. Scripts that add several events append ".N". */
static void event_id(struct call_store *cs, char out[96])
{
    snprintf(out, 96, "%s.%u.%s.%llu", cs->node, cs->worker_id, cs->pid_str,
             (unsigned long long)++cs->event_seq);
}

void call_store_xadd(struct call_store *cs, const char *type, const char *call_id,
                     const char *const *fields, size_t n)
{
    const char *argv[40];
    char k[KEY_MAX], ts[32], eid[96];
    snprintf(k, sizeof k, "%sevents", cs->prefix);
    call_store_iso8601(wall_ms(), ts);
    event_id(cs, eid);
    int argc = 0;
    argv[argc++] = "XADD";
    argv[argc++] = k;
    argv[argc++] = "MAXLEN";
    argv[argc++] = "~";
    argv[argc++] = cs->maxlen;
    argv[argc++] = "*";
    argv[argc++] = "type";
    argv[argc++] = type;
    argv[argc++] = "call_id";
    argv[argc++] = call_id;
    argv[argc++] = "ts";
    argv[argc++] = ts;
    argv[argc++] = "node";
    argv[argc++] = cs->node;
    argv[argc++] = "eid";
    argv[argc++] = eid;
    for (size_t i = 0; i < 2 * n && argc < 40; i++)
        argv[argc++] = fields[i] ? fields[i] : "";
    write_cmd(cs, argc, argv);
}

static struct live *live_find(struct call_store *cs, uint64_t serial)
{
    for (struct live *l = cs->live; l; l = l->next)
        if (l->serial == serial)
            return l;
    return NULL;
}

static struct live *live_find_id(struct call_store *cs, const char *id)
{
    for (struct live *l = cs->live; l; l = l->next)
        if (strcmp(l->id, id) == 0)
            return l;
    return NULL;
}

static void live_remove(struct call_store *cs, struct live *x)
{
    for (struct live **p = &cs->live; *p; p = &(*p)->next)
        if (*p == x) {
            *p = x->next;
            free(x);
            return;
        }
}

static void session_write(struct call_store *cs, const struct live *l, int full)
{
    char k[KEY_MAX], now[32], started[32];
    key(cs, k, "session", l->id);
    call_store_iso8601(wall_ms(), now);
    if (full) {
        call_store_iso8601(l->started_ms, started);
        const char *hset[] = {"HSET", k, "node", cs->node, "worker", cs->worker_str, "pid",
                              cs->pid_str, "stream_sid", l->stream_sid, "call_sid", l->call_sid,
                              "started_at", started, "last_seen", now};
        write_cmd(cs, (int)(sizeof hset / sizeof hset[0]), hset);
    } else {
        const char *hset[] = {"HSET", k, "last_seen", now};
        write_cmd(cs, 4, hset);
    }
    const char *exp[] = {"EXPIRE", k, cs->session_ttl};
    write_cmd(cs, 3, exp);
}

/* The record fields taken from the stream's customParameters (our TwiML sets them). */
static const struct {
    const char *param, *field;
} param_fields[] = {
    {"from", "from"},
    {"to", "to"},
    {"contactName", "contact_name"},
    {"businessName", "business_name"},
    {"metadata", "metadata"},
};

static void on_started(struct call_store *cs, const struct call_event *ev)
{
    const char *id = call_store_id_ok(ev->call_id) ? ev->call_id : ev->call_sid;
    if (!call_store_id_ok(id)) {
        log_warn("call %llu: no usable call id; not recorded", (unsigned long long)ev->serial);
        return;
    }
    struct live *l = calloc(1, sizeof *l);
    if (l == NULL) {
        log_error("call %s not recorded: out of memory", id);
        return;
    }
    l->call = ev->call;
    l->serial = ev->serial;
    snprintf(l->id, sizeof l->id, "%s", id);
    snprintf(l->call_sid, sizeof l->call_sid, "%s", ev->call_sid);
    snprintf(l->stream_sid, sizeof l->stream_sid, "%s", ev->stream_sid);
    l->started_ms = wall_ms();
    l->next = cs->live;
    cs->live = l;

    char k[KEY_MAX], now[32];
    key(cs, k, "call", id);
    call_store_iso8601(l->started_ms, now);
    const char *direction = strcmp(ev->role, "outbound") == 0 ? "outbound" : "inbound";
    l->outbound = direction[0] == 'o';
    const char *argv[40] = {"HSET", k, "id", id, "direction", direction,
                                                     "twilio_call_sid", ev->call_sid,
                                                     "stream_sid", ev->stream_sid, "status",
                                                     "in-progress"};
    int argc = 12;
    json_t *params = ev->text ? json_loads(ev->text, 0, NULL) : NULL;
    for (size_t i = 0; i < sizeof param_fields / sizeof param_fields[0]; i++) {
        const char *v = json_string_value(json_object_get(params, param_fields[i].param));
        if (v) {
            argv[argc++] = param_fields[i].field;
            argv[argc++] = v;
        }
    }
    write_cmd(cs, argc, argv);
    json_decref(params);
    const char *created[] = {"HSETNX", k, "created_at", now};
    write_cmd(cs, 4, created);
    /* An outbound call's answer time is Twilio's (the in-progress callback) when it came first. */
    const char *answered[] = {"HSETNX", k, "answered_at", now};
    write_cmd(cs, 4, answered);
    const char *exp[] = {"EXPIRE", k, cs->retention};
    write_cmd(cs, 3, exp);
    char sk[KEY_MAX];
    key(cs, sk, "callsid", ev->call_sid);
    const char *set[] = {"SET", sk, id, "EX", cs->retention};
    write_cmd(cs, 5, set);
    session_write(cs, l, 1);
    const char *f[] = {"direction", direction, "twilio_call_sid", ev->call_sid, "stream_sid",
                       ev->stream_sid, "worker", cs->worker_str};
    call_store_xadd(cs, "stream.started", id, f, 4);
}

static void on_turn(struct call_store *cs, struct live *l, const struct call_event *ev)
{
    char k[KEY_MAX], idx[16], t[16];
    key(cs, k, "transcript", l->id);
    snprintf(idx, sizeof idx, "%u", l->turns++);
    snprintf(t, sizeof t, "%u", ev->t_ms);
    char *turn = call_store_turn_json(ev->role, ev->text ? ev->text : "", ev->t_ms);
    if (turn == NULL) {
        log_error("transcript turn of %s lost: out of memory", l->id);
        return;
    }
    const char *argv[] = {"EVAL", transcript_script, "1", k, idx, turn, cs->retention};
    write_cmd(cs, 7, argv);
    const char *f[] = {"role", ev->role, "text", ev->text ? ev->text : "", "t_ms", t, "index", idx};
    call_store_xadd(cs, "turn", l->id, f, 4);
    free(turn);
}

/* The stream's end, in one script so that it and Twilio's status callback (on any node) agree
 * on who emits call.completed. A call placed through the API (source=api) is finished by
 * Twilio's terminal status callback: the stream only writes provisional ended_at/duration_s
 * (unless Twilio's are there), and emits call.completed if Twilio's came first and left
 * completed_pending. Any other call (inbound, or a stream without an API record) ends with its
 * stream, as before. KEYS: call, session, events. ARGV: 1 now, 2 duration_s, 3 reason, 4 usage,
 * 5 transfer 0/1, 6 retention, 7 maxlen, 8 node, 9 eid, 10 ai_failed 0/1, 11 call id. */
static const char ended_script[] =
    "local r = redis.call('HMGET', KEYS[1], 'source', 'finished', 'completed_pending', "
    "'status', 'duration_s') "
    "local function ev(n, t, ...) redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', "
    "'type', t, 'call_id', ARGV[11], 'ts', ARGV[1], 'node', ARGV[8], 'eid', ARGV[9] .. '.' .. n, "
    "...) end "
    "redis.call('HSET', KEYS[1], 'end_reason', ARGV[3], 'usage', ARGV[4]) "
    "local api = r[1] == 'api' "
    "if not api then redis.call('HSET', KEYS[1], 'ended_at', ARGV[1], 'duration_s', ARGV[2], "
    "'status', ARGV[5] == '1' and 'in-progress' or 'completed') "
    "elseif r[2] ~= '1' then redis.call('HSET', KEYS[1], 'ended_at', ARGV[1], 'duration_s', "
    "ARGV[2]) end "
    "redis.call('EXPIRE', KEYS[1], ARGV[6]) "
    "redis.call('DEL', KEYS[2]) "
    "ev(0, 'stream.ended', 'reason', ARGV[3], 'duration_s', ARGV[2], 'ai_failed', ARGV[10]) "
    "if not api then "
    "if ARGV[5] ~= '1' then ev(1, 'call.completed', 'reason', ARGV[3], 'duration_s', ARGV[2]) "
    "end "
    "elseif r[3] == '1' then redis.call('HDEL', KEYS[1], 'completed_pending') "
    "ev(1, 'call.completed', 'status', r[4] or 'completed', 'duration_s', r[5] or ARGV[2], "
    "'reason', ARGV[3]) end "
    "return 1";

static void on_ended(struct call_store *cs, struct live *l, const struct call_event *ev)
{
    char k[KEY_MAX], sk[KEY_MAX], ek[KEY_MAX], now[32], dur[24], eid[96];
    uint64_t end = wall_ms();
    key(cs, k, "call", l->id);
    key(cs, sk, "session", l->id);
    snprintf(ek, sizeof ek, "%sevents", cs->prefix);
    call_store_iso8601(end, now);
    snprintf(dur, sizeof dur, "%llu", (unsigned long long)((end - l->started_ms) / 1000));
    event_id(cs, eid);
    char *usage = call_store_usage_json(&ev->stats.usage);
    /* a transferred call goes on (Twilio dials the target): not over */
    const char *argv[] = {"EVAL", ended_script, "3", k, sk, ek, now, dur, ev->reason,
                          usage ? usage : "{}", l->transfer ? "1" : "0", cs->retention,
                          cs->maxlen, cs->node, eid, ev->ai_failed ? "1" : "0", l->id};
    write_cmd(cs, (int)(sizeof argv / sizeof argv[0]), argv);
    char cost[32];
    snprintf(cost, sizeof cost, "%.6f",
             call_cost_usd(&cs->cfg->pricing, &ev->stats.usage, (end - l->started_ms) / 1000,
                           l->outbound));
    const char *costv[] = {"HSET", k, "cost_usd", cost};
    write_cmd(cs, 4, costv);
    free(usage);
}

void call_store_event(struct call_store *cs, const struct call_event *ev)
{
    if (cs == NULL)
        return;
    if (ev->type == CALL_EV_STARTED) {
        on_started(cs, ev);
        return;
    }
    struct live *l = live_find(cs, ev->serial);
    if (l == NULL)
        return; /* a call that never started its stream (or has no usable id): no record */
    switch (ev->type) {
    case CALL_EV_STARTED:
        break;
    case CALL_EV_TURN:
        on_turn(cs, l, ev);
        break;
    case CALL_EV_TOOL: {
        const char *f[] = {"name", ev->role, "arguments", ev->text ? ev->text : ""};
        call_store_xadd(cs, "tool.called", l->id, f, 2);
        break;
    }
    case CALL_EV_BARGE_IN: {
        char t[16];
        snprintf(t, sizeof t, "%u", ev->t_ms);
        const char *f[] = {"t_ms", t};
        call_store_xadd(cs, "barge_in", l->id, f, 1);
        break;
    }
    case CALL_EV_AI_FAILED: {
        char k[KEY_MAX];
        key(cs, k, "call", l->id);
        const char *argv[] = {"HSET", k, "ai_failed", "1"};
        write_cmd(cs, 4, argv);
        call_store_xadd(cs, "ai.failed", l->id, NULL, 0);
        break;
    }
    case CALL_EV_CONTROL: {
        const char *f[] = {"command_id", ev->text ? ev->text : "", "op", ev->role, "outcome",
                           ev->reason};
        call_store_xadd(cs, "control.applied", l->id, f, 3);
        break;
    }
    case CALL_EV_ENDED:
        on_ended(cs, l, ev);
        live_remove(cs, l);
        break;
    }
}

/* A command from the channel: validated, then handed to the call's own loop. Outcomes that
 * never reach the call are recorded here. */
static void on_control_message(void *arg, const char *msg, size_t len)
{
    struct call_store *cs = arg;
    struct control_msg m;
    if (control_msg_decode(msg, len, &m) != 0) {
        log_warn("control: malformed command on %s ignored", cs->channel);
        return;
    }
    struct live *l = live_find_id(cs, m.call_id);
    const char *outcome = NULL;
    if (l == NULL) {
        outcome = "not_found";
    } else {
        struct call_control *cmd = calloc(1, sizeof *cmd);
        if (cmd == NULL) {
            outcome = "failed";
        } else {
            cmd->op = m.op;
            snprintf(cmd->command_id, sizeof cmd->command_id, "%s", m.id);
            cmd->text = m.text;
            m.text = NULL;
            int rc = call_pair_control(l->call, cmd);
            if (rc != 0) {
                call_control_free(cmd);
                outcome = rc == -EPIPE ? "ending" : "busy";
            } else if (m.op == CALL_CTL_TRANSFER) {
                l->transfer = 1;
            }
        }
    }
    if (outcome) {
        log_info("control %s for %s: %s", call_control_op_name(m.op), m.call_id, outcome);
        const char *f[] = {"command_id", m.id, "op", call_control_op_name(m.op), "outcome",
                           outcome};
        call_store_xadd(cs, "control.applied", m.call_id, f, 3);
    }
    control_msg_clear(&m);
}

static void on_refresh(uv_timer_t *t)
{
    struct call_store *cs = t->data;
    if (!redis_client_ready(cs->redis))
        return; /* the full session write is queued already; nothing to refresh */
    for (struct live *l = cs->live; l; l = l->next)
        session_write(cs, l, 0);
}

int call_store_new(uv_loop_t *loop, const struct config *cfg, unsigned worker_id,
                   struct call_store **out)
{
    struct call_store *cs = calloc(1, sizeof *cs);
    if (cs == NULL)
        return -ENOMEM;
    cs->cfg = cfg;
    cs->worker_id = worker_id;
    snprintf(cs->prefix, sizeof cs->prefix, "%s", cfg->redis.prefix ? cfg->redis.prefix : "vb:");
    if (cfg->node_name) {
        snprintf(cs->node, sizeof cs->node, "%s", cfg->node_name);
    } else {
        char host[256] = "";
        if (gethostname(host, sizeof host - 1) == -1 || host[0] == '\0')
            snprintf(host, sizeof host, "node");
        /* Keys and channel names: keep [A-Za-z0-9._-] of the host name. */
        size_t o = 0;
        for (size_t i = 0; host[i] && o < 64; i++) {
            char c = host[i];
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '_' || c == '-')
                cs->node[o++] = c;
        }
        if (o == 0)
            snprintf(cs->node, sizeof cs->node, "node");
    }
    snprintf(cs->worker_str, sizeof cs->worker_str, "%u", worker_id);
    snprintf(cs->pid_str, sizeof cs->pid_str, "%ld", (long)getpid());
    snprintf(cs->channel, sizeof cs->channel, "%sctl:%s:%u", cs->prefix, cs->node, worker_id);
    snprintf(cs->retention, sizeof cs->retention, "%u", cfg->redis.retention_s);
    snprintf(cs->session_ttl, sizeof cs->session_ttl, "%u", cfg->redis.session_ttl_s);
    snprintf(cs->maxlen, sizeof cs->maxlen, "%u", cfg->redis.events_maxlen);
    int rc = redis_client_new(loop, &cfg->redis, cs->channel, on_control_message, cs, &cs->redis);
    if (rc != 0) {
        free(cs);
        return rc;
    }
    uv_timer_init(loop, &cs->refresh);
    cs->refresh.data = cs;
    uint64_t every = cfg->redis.session_ttl_s * 1000ull / 3;
    uv_timer_start(&cs->refresh, on_refresh, every, every);
    log_info("redis: node %s worker %u, control channel %s", cs->node, worker_id, cs->channel);
    *out = cs;
    return 0;
}

static void on_refresh_closed(uv_handle_t *h)
{
    struct call_store *cs = h->data;
    while (cs->live) {
        struct live *n = cs->live->next;
        free(cs->live);
        cs->live = n;
    }
    free(cs);
}

void call_store_close(struct call_store *cs)
{
    if (cs == NULL)
        return;
    redis_client_close(cs->redis);
    cs->redis = NULL;
    uv_close((uv_handle_t *)&cs->refresh, on_refresh_closed);
}

void call_store_set_twilio(struct call_store *cs, struct twilio_rest *tr)
{
    cs->twilio = tr;
}

struct twilio_rest *call_store_twilio(struct call_store *cs)
{
    return cs->twilio;
}

struct redis_client *call_store_redis(struct call_store *cs)
{
    return cs->redis;
}

const struct redis_client_stats *call_store_redis_stats(const struct call_store *cs)
{
    return redis_client_stats(cs->redis);
}

const char *call_store_prefix(const struct call_store *cs)
{
    return cs->prefix;
}

const struct config *call_store_config(const struct call_store *cs)
{
    return cs->cfg;
}

const char *call_store_node(const struct call_store *cs)
{
    return cs->node;
}

/* ---- calls placed through the API, and Twilio's callbacks about them ---------------------- */

void call_store_create(struct call_store *cs, const struct call_store_new_call *c)
{
    char k[KEY_MAX], created[32];
    key(cs, k, "call", c->id);
    call_store_iso8601(c->created_ms, created);
    const char *argv[40] = {"HSET", k, "id", c->id, "direction", "outbound", "status", "queued",
                            "source", "api", "to", c->to, "from", c->from, "created_at", created};
    int argc = 16;
    const struct {
        const char *field, *value;
    } opt[] = {{"contact_name", c->contact_name}, {"business_name", c->business_name},
               {"user_id", c->user_id},           {"requested_by", c->requested_by},
               {"metadata", c->metadata_json},    {"voice", c->voice},
               {"instructions", c->instructions}};
    for (size_t i = 0; i < sizeof opt / sizeof opt[0]; i++)
        if (opt[i].value && opt[i].value[0]) {
            argv[argc++] = opt[i].field;
            argv[argc++] = opt[i].value;
        }
    write_cmd(cs, argc, argv);
    const char *exp[] = {"EXPIRE", k, cs->retention};
    write_cmd(cs, 3, exp);
    const char *f[] = {"direction", "outbound", "user_id", c->user_id ? c->user_id : "",
                       "requested_by", c->requested_by ? c->requested_by : ""};
    call_store_xadd(cs, "call.created", c->id, f, 3);
}

/* Twilio's status from the create answer, unless a callback has already moved the record on
 * (the initiated callback can overtake the create answer). KEYS: call, callsid. ARGV: sid,
 * status, retention. */
static const char placed_script[] =
    "redis.call('HSET', KEYS[1], 'twilio_call_sid', ARGV[1]) "
    "if redis.call('HGET', KEYS[1], 'status') == 'queued' then "
    "redis.call('HSET', KEYS[1], 'status', ARGV[2]) end "
    "redis.call('EXPIRE', KEYS[1], ARGV[3]) "
    "redis.call('SET', KEYS[2], redis.call('HGET', KEYS[1], 'id') or '', 'EX', ARGV[3]) "
    "return 1";

void call_store_placed(struct call_store *cs, const char *id, const char *call_sid,
                       const char *status)
{
    char k[KEY_MAX], sk[KEY_MAX];
    key(cs, k, "call", id);
    key(cs, sk, "callsid", call_sid);
    /* The index is written here rather than read from the record: an id-less record would be a
     * bug, and SET of id keeps the index right even then. */
    const char *set[] = {"SET", sk, id, "EX", cs->retention};
    write_cmd(cs, 5, set);
    const char *argv[] = {"EVAL", placed_script, "2", k, sk, call_sid,
                          status && status[0] ? status : "queued", cs->retention};
    write_cmd(cs, 8, argv);
}

void call_store_place_failed(struct call_store *cs, const char *id, const char *reason,
                             const char *code, const char *message)
{
    char k[KEY_MAX], now[32];
    key(cs, k, "call", id);
    call_store_iso8601(wall_ms(), now);
    const char *argv[] = {"HSET", k, "status", "failed", "finished", "1", "ended_at", now,
                          "duration_s", "0", "end_reason", reason, "error_code", code,
                          "error_message", message};
    write_cmd(cs, (int)(sizeof argv / sizeof argv[0]), argv);
    const char *exp[] = {"EXPIRE", k, cs->retention};
    write_cmd(cs, 3, exp);
    const char *f[] = {"status", "failed", "reason", reason, "error_code", code};
    call_store_xadd(cs, "call.completed", id, f, 3);
}

/* One status callback, applied atomically wherever it lands: callbacks may come reordered or
 * repeated (ordered by SequenceNumber, a finished record takes none), and call.completed waits
 * for the stream's end when the stream is still live (see ended_script). KEYS: callsid, events.
 * ARGV: 1 prefix, 2 retention, 3 maxlen, 4 node, 5 eid, 6 now, 7 status, 8 terminal 0/1,
 * 9 SequenceNumber (-1 absent), 10 CallDuration, 11 AnsweredBy, 12 SipResponseCode,
 * 13 RecordingUrl, 14 RecordingSid, 15 RecordingDuration, 16 CallSid.
 * Returns 0 (unknown CallSid), 1 applied, 2 record finished, 3 stale. */
static const char status_script[] =
    "local id = redis.call('GET', KEYS[1]) "
    "if not id then return 0 end "
    "local k = ARGV[1] .. 'call:' .. id "
    "local r = redis.call('HMGET', k, 'finished', 'status_seq') "
    "if r[1] == '1' then return 2 end "
    "local seq = tonumber(ARGV[9]) "
    "if seq >= 0 and r[2] and tonumber(r[2]) >= seq then return 3 end "
    "local function ev(n, t, ...) redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', "
    "'type', t, 'call_id', id, 'ts', ARGV[6], 'node', ARGV[4], 'eid', ARGV[5] .. '.' .. n, ...) "
    "end "
    "local f = {'status', ARGV[7], 'twilio_call_sid', ARGV[16]} "
    "local function add(a, b) f[#f + 1] = a f[#f + 1] = b end "
    "if seq >= 0 then add('status_seq', ARGV[9]) end "
    "if ARGV[11] ~= '' then add('answered_by', ARGV[11]) end "
    "if ARGV[7] == 'in-progress' then redis.call('HSETNX', k, 'answered_at', ARGV[6]) "
    "ev(0, 'call.answered', 'twilio_call_sid', ARGV[16], 'answered_by', ARGV[11]) end "
    "if ARGV[8] == '1' then "
    "local dur = ARGV[10] ~= '' and ARGV[10] or '0' "
    "add('finished', '1') add('ended_at', ARGV[6]) add('duration_s', dur) "
    "if ARGV[12] ~= '' then add('sip_response_code', ARGV[12]) end "
    "if ARGV[13] ~= '' then add('recording_url', ARGV[13]) add('recording_sid', ARGV[14]) "
    "if ARGV[15] ~= '' then add('recording_duration_s', ARGV[15]) end end "
    "if redis.call('EXISTS', ARGV[1] .. 'session:' .. id) == 1 then "
    "add('completed_pending', '1') "
    "else ev(1, 'call.completed', 'status', ARGV[7], 'duration_s', dur) end "
    "end "
    "redis.call('HSET', k, unpack(f)) "
    "redis.call('EXPIRE', k, ARGV[2]) "
    "return 1";

/* KEYS: callsid, events. ARGV: 1 prefix, 2 retention, 3 maxlen, 4 node, 5 eid, 6 now,
 * 7 RecordingStatus, 8 RecordingSid, 9 RecordingUrl, 10 channels, 11 duration. A repeated
 * completed callback (same RecordingSid) emits nothing. */
static const char recording_script[] =
    "local id = redis.call('GET', KEYS[1]) "
    "if not id then return 0 end "
    "local k = ARGV[1] .. 'call:' .. id "
    "if ARGV[7] ~= 'completed' then redis.call('HSET', k, 'recording_status', ARGV[7], "
    "'recording_sid', ARGV[8]) return 1 end "
    "if redis.call('HGET', k, 'recording_ready') == ARGV[8] then return 2 end "
    "redis.call('HSET', k, 'recording_status', 'completed', 'recording_sid', ARGV[8], "
    "'recording_url', ARGV[9], 'recording_channels', ARGV[10], 'recording_duration_s', "
    "ARGV[11], 'recording_ready', ARGV[8]) "
    "redis.call('EXPIRE', k, ARGV[2]) "
    "redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'type', 'recording.ready', "
    "'call_id', id, 'ts', ARGV[6], 'node', ARGV[4], 'eid', ARGV[5], 'recording_sid', ARGV[8], "
    "'recording_url', ARGV[9], 'channels', ARGV[10], 'duration_s', ARGV[11]) "
    "return 1";

static void num(char out[24], long v)
{
    if (v < 0)
        out[0] = '\0';
    else
        snprintf(out, 24, "%ld", v);
}

int call_store_on_status(void *arg, const struct twilio_call_status *st)
{
    struct call_store *cs = arg;
    if (cs == NULL)
        return 0;
    char sk[KEY_MAX], ek[KEY_MAX], now[32], eid[96], seq[24], dur[24], sip[24], rdur[24];
    key(cs, sk, "callsid", st->call_sid);
    snprintf(ek, sizeof ek, "%sevents", cs->prefix);
    call_store_iso8601(wall_ms(), now);
    event_id(cs, eid);
    if (st->sequence_number < 0)
        snprintf(seq, sizeof seq, "-1");
    else
        num(seq, st->sequence_number);
    num(dur, st->call_duration_s);
    num(sip, st->sip_response_code);
    num(rdur, st->recording_duration_s);
    const char *argv[] = {"EVAL", status_script, "2", sk, ek, cs->prefix, cs->retention,
                          cs->maxlen, cs->node, eid, now, twilio_call_state_name(st->status),
                          st->terminal ? "1" : "0", seq, dur, st->answered_by, sip,
                          st->recording_url, st->recording_sid, rdur, st->call_sid};
    return redis_client_write(cs->redis, (int)(sizeof argv / sizeof argv[0]), argv, NULL);
}

int call_store_on_recording(void *arg, const struct twilio_recording_status *rec)
{
    struct call_store *cs = arg;
    if (cs == NULL)
        return 0;
    char sk[KEY_MAX], ek[KEY_MAX], now[32], eid[96], ch[24], dur[24];
    key(cs, sk, "callsid", rec->call_sid);
    snprintf(ek, sizeof ek, "%sevents", cs->prefix);
    call_store_iso8601(wall_ms(), now);
    event_id(cs, eid);
    num(ch, rec->channels);
    num(dur, rec->duration_s);
    const char *argv[] = {"EVAL", recording_script, "2", sk, ek, cs->prefix, cs->retention,
                          cs->maxlen, cs->node, eid, now,
                          twilio_recording_state_name(rec->status), rec->recording_sid,
                          rec->recording_url, ch, dur};
    return redis_client_write(cs->redis, (int)(sizeof argv / sizeof argv[0]), argv, NULL);
}
