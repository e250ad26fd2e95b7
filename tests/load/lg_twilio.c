/* The Twilio side of each simulated call: a Media Streams client that sends connected, start
 * (with the customParameters the bridge's TwiML would give), then one tagged 20 ms media frame
 * per period on the shared clock; and plays what it gets into a model of Twilio's playback
 * buffer: frames queue behind each other, marks are echoed once the audio before them has
 * played (checked every millisecond: the bridge reads a late echo as late playback), clear drops the buffer and
 * echoes every pending mark. It measures downlink latency, loss and the barge-in time. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/base64.h"
#include "tests/lib/frame_tag.h"
#include "tests/load/loadgen.h"

static void send_text(struct lg_call *c, const char *msg, int len)
{
    if (len <= 0 || ws_send_text(&c->tw, msg, (size_t)len) != 0)
        if (c->lg->phase < LG_P_STOP) /* once stopping, the bridge closes legs under us */
            c->lg->st.send_refused++;
}

static void tw_on_open(struct ws *ws)
{
    struct lg_call *c = ws->data;
    char msg[1024];
    c->tw_state = LG_TW_STREAMING;
    c->lg->streaming++;
    send_text(c, msg,
              snprintf(msg, sizeof msg,
                       "{\"event\":\"connected\",\"protocol\":\"Call\",\"version\":\"1.0.0\"}"));
    /* The parameters worker/http_endpoints.c puts in the TwiML for an inbound call. */
    send_text(c, msg,
              snprintf(msg, sizeof msg,
                       "{\"event\":\"start\",\"sequenceNumber\":\"%u\",\"streamSid\":\"%s\","
                       "\"start\":{\"streamSid\":\"%s\",\"accountSid\":\"ACloadgen00000000000"
                       "000000000000\",\"callSid\":\"CAloadgen%08u\",\"tracks\":[\"inbound\"],"
                       "\"customParameters\":{\"callId\":\"%s\",\"direction\":\"inbound\","
                       "\"from\":\"+15005550006\",\"to\":\"+15005550001\",\"businessName\":"
                       "\"Load Test\"},\"mediaFormat\":{\"encoding\":\"audio/x-mulaw\","
                       "\"sampleRate\":8000,\"channels\":1}}}",
                       ++c->msg_seq, c->stream_sid, c->stream_sid, c->id, c->call_id));
}

static void send_frame(struct lg_call *c, uint64_t now)
{
    struct lg *lg = c->lg;
    uint32_t k = c->up_sent;
    char b64[220];
    const char *payload;
    if (lg->opt.g711) {
        uint8_t f[LG_FRAME];
        memset(f, 0xFF, sizeof f);
        ftag_put(f, k);
        b64[base64_encode(f, sizeof f, b64)] = '\0';
        payload = b64;
    } else {
        payload = lg->up_level_b64[k % FTAG_LEVELS];
    }
    char buf[512];
    struct lg_msg m = {.p = buf, .cap = sizeof buf};
    LG_MSG_LIT(&m, "{\"event\":\"media\",\"sequenceNumber\":\"");
    lg_msg_uint(&m, ++c->msg_seq);
    LG_MSG_LIT(&m, "\",\"streamSid\":\"");
    lg_msg_str(&m, c->stream_sid);
    LG_MSG_LIT(&m, "\",\"media\":{\"track\":\"inbound\",\"chunk\":\"");
    lg_msg_uint(&m, k + 1);
    LG_MSG_LIT(&m, "\",\"timestamp\":\"");
    lg_msg_uint(&m, (uint64_t)k * 20);
    LG_MSG_LIT(&m, "\",\"payload\":\"");
    lg_msg_str(&m, payload);
    LG_MSG_LIT(&m, "\"}}");
    c->up_send_us[k % LG_SEND_RING] = now;
    c->up_sent++;
    lg->st.up_frames_sent++;
    send_text(c, buf, m.over ? -1 : (int)m.len);
}

static void echo_mark(struct lg_call *c, const char *name)
{
    char msg[256];
    c->lg->st.marks_echoed++;
    send_text(c, msg,
              snprintf(msg, sizeof msg,
                       "{\"event\":\"mark\",\"sequenceNumber\":\"%u\",\"streamSid\":\"%s\","
                       "\"mark\":{\"name\":\"%s\"}}",
                       ++c->msg_seq, c->stream_sid, name));
}

static void echo_due_marks(struct lg_call *c, uint64_t now, int all)
{
    while (c->mark_count > 0) {
        struct lg_mark *m = &c->marks[c->mark_head];
        if (!all && m->due_us > now)
            break;
        echo_mark(c, m->name);
        c->mark_head = (c->mark_head + 1) % LG_MARKS;
        c->mark_count--;
    }
}

static void marked_remove(struct lg_call *c)
{
    if (!c->in_marked)
        return;
    if (c->mprev != NULL)
        c->mprev->mnext = c->mnext;
    else
        c->lg->marked = c->mnext;
    if (c->mnext != NULL)
        c->mnext->mprev = c->mprev;
    c->mnext = c->mprev = NULL;
    c->in_marked = 0;
}

void lg_twilio_marks_tick(struct lg *lg, uint64_t now)
{
    for (struct lg_call *c = lg->marked, *next; c != NULL; c = next) {
        next = c->mnext;
        echo_due_marks(c, now, 0);
        if (c->mark_count == 0)
            marked_remove(c);
    }
}

void lg_twilio_tick(struct lg_call *c, uint64_t now)
{
    if (c->tw_state != LG_TW_STREAMING)
        return;
    if (c->t0_us == 0)
        c->t0_us = now;
    /* Every frame that is due, late ones too (a late loop, not the bridge, made them late). */
    uint64_t due = (now - c->t0_us) / LG_FRAME_US + 1;
    for (unsigned n = 0; c->up_sent < due && n < 50; n++)
        send_frame(c, now);
}

int64_t lg_twilio_played_ms(const struct lg_call *c, uint64_t now)
{
    if (c->dn_resp != c->resp_n || c->resp_n == 0)
        return 0;
    uint64_t unplayed = c->play_end_us > now ? c->play_end_us - now : 0;
    return ((int64_t)c->dn_rx * LG_FRAME_US - (int64_t)unplayed) / 1000;
}

static void on_media(struct lg_call *c, const uint8_t *f, size_t n, uint64_t now)
{
    struct lg *lg = c->lg;
    struct lg_stats *st = &lg->st;
    st->down_frames_rx++;
    if (n != LG_FRAME || c->resp_n == 0) {
        st->down_unreadable++;
        return;
    }
    if (c->dn_resp != c->resp_n) { /* the first frame of a new response */
        c->dn_resp = c->resp_n;
        c->dn_next = 0;
        c->dn_rx = 0;
        if (lg->measuring && c->resp_first_us)
            lg_hist_add(&st->down, now - c->resp_first_us);
    }
    int64_t k;
    if (lg->opt.g711) {
        uint32_t id;
        if (ftag_get(f, &id) != 0) {
            st->down_unreadable++;
            return;
        }
        if ((id >> 16) != (c->resp_n & 0xFF)) {
            st->down_reordered++; /* a frame of another response */
            return;
        }
        k = id & 0xFFFF;
    } else {
        int level = ftag_read_ulaw(f[lg->down_center]);
        if (level < 0) {
            st->down_unreadable++;
            return;
        }
        k = ftag_resolve(level, c->dn_next);
    }
    if (k > c->dn_next)
        st->down_lost += (uint64_t)(k - c->dn_next);
    else if (k < c->dn_next)
        st->down_reordered++;
    if (k >= c->dn_next)
        c->dn_next = k + 1;
    c->dn_rx++;
    uint64_t start = c->play_end_us > now ? c->play_end_us : now;
    c->play_end_us = start + LG_FRAME_US;
}

static void on_mark(struct lg_call *c, const char *name, size_t len, uint64_t now)
{
    char buf[LG_MARK_NAME];
    if (len >= sizeof buf)
        len = sizeof buf - 1;
    memcpy(buf, name, len);
    buf[len] = '\0';
    if (c->mark_count == 0 && c->play_end_us <= now) {
        echo_mark(c, buf); /* nothing buffered: echoed at once, as Twilio does */
        return;
    }
    if (c->mark_count == LG_MARKS) {
        c->lg->st.marks_overflow++;
        echo_due_marks(c, now, 1);
    }
    struct lg_mark *m = &c->marks[(c->mark_head + c->mark_count) % LG_MARKS];
    m->due_us = c->play_end_us;
    memcpy(m->name, buf, len + 1);
    c->mark_count++;
    if (!c->in_marked) {
        c->in_marked = 1;
        c->mprev = NULL;
        c->mnext = c->lg->marked;
        if (c->mnext != NULL)
            c->mnext->mprev = c;
        c->lg->marked = c;
    }
}

static void on_clear(struct lg_call *c, uint64_t now)
{
    struct lg *lg = c->lg;
    int64_t played = lg_twilio_played_ms(c, now);
    if (c->speech_us != 0 && c->resp_state == LG_R_BARGED && !c->clear_seen) {
        if (lg->measuring)
            lg_hist_add(&lg->st.barge, now - c->speech_us);
        c->clear_seen = 1;
        c->clear_played_ms = played;
        lg_openai_truncate_check(c);
    } else {
        lg->st.clears_unexpected++;
    }
    if (c->play_end_us > now)
        c->play_end_us = now;
    echo_due_marks(c, now, 1);
}

static void tw_on_text(struct ws *ws, const char *msg, size_t len)
{
    struct lg_call *c = ws->data;
    struct lg *lg = c->lg;
    uint64_t now = lg_now_us();
    struct json_tok *t = lg->toks;
    if (json_scan(msg, len, t, LG_TOKENS) < 1 || t[0].type != JTOK_OBJECT)
        goto bad;
    int ev = json_get(msg, t, 0, "event");
    if (json_str_eq(msg, t, ev, "media")) {
        const char *p;
        size_t pl, n;
        uint8_t f[512];
        int pay = json_get(msg, t, json_get(msg, t, 0, "media"), "payload");
        if (json_str_view(msg, t, pay, &p, &pl) != 0 || base64_decode(p, pl, f, sizeof f, &n) != 0)
            goto bad;
        on_media(c, f, n, now);
    } else if (json_str_eq(msg, t, ev, "mark")) {
        const char *p;
        size_t pl;
        if (json_str_view(msg, t, json_get(msg, t, json_get(msg, t, 0, "mark"), "name"), &p,
                          &pl) != 0)
            goto bad;
        on_mark(c, p, pl, now);
    } else if (json_str_eq(msg, t, ev, "clear")) {
        on_clear(c, now);
    } else {
        goto bad;
    }
    return;
bad:
    lg->st.down_unreadable++;
}

static void tw_on_close(struct ws *ws, int code, const char *reason, size_t reason_len)
{
    struct lg_call *c = ws->data;
    struct lg *lg = c->lg;
    if (c->tw_state == LG_TW_STREAMING)
        lg->streaming--;
    if (c->tw_state == LG_TW_CONNECTING) {
        lg->st.calls_failed++;
        if (lg->st.calls_failed <= 3)
            fprintf(stderr, "loadgen: call %u not connected: %d %.*s\n", c->id, code,
                    (int)reason_len, reason);
    } else if (c->tw_state == LG_TW_STREAMING) {
        lg->st.calls_ended_early++;
        if (lg->st.calls_ended_early <= 3)
            fprintf(stderr, "loadgen: call %u ended by the bridge: %d %.*s\n", c->id, code,
                    (int)reason_len, reason);
    }
    c->tw_state = LG_TW_CLOSED;
    c->mark_count = 0;
    marked_remove(c);
}

static const struct ws_callbacks tw_callbacks = {
    .on_open = tw_on_open,
    .on_text = tw_on_text,
    .on_close = tw_on_close,
};

int lg_twilio_start(struct lg_call *c)
{
    struct ws_options opt = {.handshake_timeout_ms = 30000, .close_timeout_ms = 5000};
    c->tw.data = c;
    int rc = ws_client_start(&c->tw, c->lg->loop, c->lg->url, &tw_callbacks, &opt);
    if (rc != 0)
        return rc;
    c->tw_state = LG_TW_CONNECTING;
    c->lg->started++;
    c->lg->st.calls_started++;
    return 0;
}

void lg_twilio_stop(struct lg_call *c)
{
    if (c->tw_state == LG_TW_STREAMING) {
        char msg[256];
        send_text(c, msg,
                  snprintf(msg, sizeof msg,
                           "{\"event\":\"stop\",\"sequenceNumber\":\"%u\",\"streamSid\":\"%s\","
                           "\"stop\":{\"accountSid\":\"ACloadgen0000000000000000000000\","
                           "\"callSid\":\"CAloadgen%08u\"}}",
                           ++c->msg_seq, c->stream_sid, c->id));
        c->lg->streaming--;
        c->tw_state = LG_TW_STOPPING;
        ws_close(&c->tw, WS_CLOSE_NORMAL, "call over");
    } else if (c->tw_state == LG_TW_CONNECTING) {
        c->tw_state = LG_TW_STOPPING;
        ws_abort(&c->tw);
    }
}
