/* The audio path of a call pair, both directions, allocation-free after set-up.
 *   uplink:   Twilio payload -> base64 decode -> [uplink ring (mu-law), while the session is not
 *             ready] -> [up-sample] -> append
 *   downlink: OpenAI delta -> base64 decode -> [down-sample] -> downlink ring (mu-law 8 kHz)
 *             -> whole 20 ms frames to Twilio on the pacing clock, with marks
 * The downlink ring holds audio already converted to mu-law: a response arrives faster than
 * real time, and at 8 bytes/ms instead of 48 a burst costs a sixth of the memory. */
#include <string.h>

#include "common/base64.h"
#include "common/config.h"
#include "common/log.h"
#include "common/scoreboard.h"
#include "dsp/g711.h"
#include "worker/call.h"

#define UP_CHUNK (5 * CALL_FRAME)   /* appends carry at most 100 ms when draining a backlog */
#define DELTA_CHUNK_CHARS 3840      /* base64 decoded per step: 2,880 bytes, 1,440 samples */
#define MARK_MIN_GAP_MS 100
#define RING_TRIM_BYTES 4096        /* consumed between two ring_trim: a page, half a second */

int call_audio_init(struct call *c)
{
    const struct config *cfg = c->host->cfg;
    int rc = ring_format(&c->uplink, c->slot.uplink_mem, CALL_UPLINK_RING);
    if (rc != 0)
        return rc;
    if ((rc = ring_format(&c->downlink, c->slot.downlink_mem, CALL_DOWNLINK_RING)) != 0)
        return rc;
    sb_store(&c->slot.sb->started_ms, uv_hrtime() / 1000000);
    resample_up_init(&c->up);
    resample_down_init(&c->down);
    playout_init(&c->playout, cfg->bridge.pacing_lead_ms, cfg->bridge.pacing_low_ms);
    c->pace_at_us = UINT64_MAX;
    c->g711 = cfg->openai.audio_format == CONFIG_AUDIO_G711_ULAW;
    return 0;
}

/* A ring's write position sweeps its whole capacity (the downlink's is 16 s) in a long call, and
 * every page it touched would stay in memory: the pages behind the read position are given back
 * once a page has been read past them, those read since the last time (ring_trim_read: one
 * madvise, where a trim of the whole free area takes two while audio is buffered), or at the end
 * the whole ring (force). Producer and consumer are this thread. */
static void trim_if_due(struct ring *r, uint64_t *trimmed_at, int force)
{
    uint64_t tail = ring_tail(r);
    if (!force && tail - *trimmed_at < RING_TRIM_BYTES)
        return;
    *trimmed_at = tail;
    int rc = force ? ring_trim(r) : ring_trim_read(r);
    if (rc != 0)
        log_warn("ring trim: %s", strerror(-rc));
}

void call_audio_free(struct call *c)
{
    if (c->uplink.hdr != NULL) { /* the slot's pages go back while it waits for a call */
        ring_discard(&c->uplink);
        trim_if_due(&c->uplink, &c->up_trimmed, 1);
    }
    if (c->downlink.hdr != NULL) {
        ring_discard(&c->downlink);
        trim_if_due(&c->downlink, &c->down_trimmed, 1);
    }
    ring_close(&c->uplink);
    ring_close(&c->downlink);
}

/* Copies the call's figures to its scoreboard slot, where /metrics and the master read them:
 * relaxed stores to memory only this thread writes, once per media frame received. */
void call_audio_publish(struct call *c)
{
    struct sb_call *sb = c->slot.sb;
    sb_store(&sb->frames_in, c->stats.frames_in);
    sb_store(&sb->frames_up, c->stats.frames_up);
    sb_store(&sb->frames_out, c->stats.frames_out);
    sb_store(&sb->frames_dropped,
             (c->stats.up_dropped_bytes + c->stats.down_dropped_bytes + CALL_FRAME - 1) /
                 CALL_FRAME);
    sb_store(&sb->bytes_in, c->stats.bytes_in);
    sb_store(&sb->bytes_out, c->stats.frames_out * CALL_FRAME);
}

/* One append of n <= UP_CHUNK mu-law bytes (resampled unless passthrough); counted as sent or
 * dropped. */
static void append_up(struct call *c, const uint8_t *ulaw, size_t n)
{
    int16_t pcm[3 * UP_CHUNK];
    char msg[128 + (6 * UP_CHUNK + 2) / 3 * 4];
    const uint8_t *audio = ulaw;
    size_t bytes = n;
    if (!c->g711) {
        resample_up_ulaw(&c->up, ulaw, n, pcm);
        audio = (const uint8_t *)pcm;
        bytes = 3 * n * sizeof(int16_t);
    }
    int len = openai_msg_append(msg, sizeof msg, audio, bytes);
    if (len > 0 && ws_send_text(&c->openai, msg, (size_t)len) == 0)
        c->stats.frames_up += (n + CALL_FRAME - 1) / CALL_FRAME;
    else
        c->stats.up_dropped_bytes += n;
}

/* Sends what the uplink ring holds to OpenAI, in appends of at most UP_CHUNK mu-law bytes. */
void call_audio_flush_uplink(struct call *c)
{
    if (c->oa_state != OA_CONFIGURED)
        return;
    uint8_t ulaw[UP_CHUNK];
    size_t n;
    while ((n = ring_pop(&c->uplink, ulaw, sizeof ulaw)) > 0)
        append_up(c, ulaw, n);
    trim_if_due(&c->uplink, &c->up_trimmed, 0);
}

void call_audio_uplink(struct call *c, const char *b64, size_t len, uint64_t t_in_us)
{
    uint8_t ulaw[4096];
    size_t n;
    if (base64_decoded_max(len) > sizeof ulaw) {
        c->stats.protocol_errors++;
        twilio_leg_close(c, WS_CLOSE_TOO_BIG, "media payload over 4096 bytes");
        call_end(c, "twilio protocol error", 0);
        return;
    }
    if (base64_decode(b64, len, ulaw, sizeof ulaw, &n) != 0) {
        if (c->stats.protocol_errors++ < 3)
            log_warn("twilio media payload is not valid base64; closing (1007)");
        twilio_leg_close(c, WS_CLOSE_INVALID_DATA, "media payload is not valid base64");
        call_end(c, "twilio protocol error", 0);
        return;
    }
    c->stats.bytes_in += n;
    if (c->oa_state == OA_CONFIGURED && ring_fill(&c->uplink) == 0) {
        /* The usual case, nothing held: straight out. The ring is for audio that must wait
         * (before the session is configured); a write position that stays put costs no page
         * faults and no ring_trim. */
        for (size_t off = 0; off < n; off += UP_CHUNK)
            append_up(c, ulaw + off, n - off < UP_CHUNK ? n - off : UP_CHUNK);
    } else {
        size_t pushed = ring_push(&c->uplink, ulaw, n);
        if (pushed < n && c->stats.up_dropped_bytes == 0)
            log_warn("caller audio dropped: the OpenAI session is not keeping up");
        c->stats.up_dropped_bytes += n - pushed;
    }
    call_audio_publish(c);
    if (c->oa_state != OA_CONFIGURED)
        return; /* held until the session is configured; not a per-frame latency */
    call_audio_flush_uplink(c);
    uint64_t took = call_now_us() - t_in_us;
    c->stats.up_us_sum += took;
    c->stats.up_count++;
    if (took > c->stats.up_us_max)
        c->stats.up_us_max = took;
}

static int cancelled(const struct call *c, const char *response_id)
{
    if (response_id[0] == '\0')
        return 0;
    for (unsigned i = 0; i < CALL_CANCELLED_MAX; i++)
        if (strcmp(c->cancelled[i], response_id) == 0)
            return 1;
    return 0;
}

/* Hands the whole frames of the current item to the playout model. */
static void queue_frames(struct call *c)
{
    uint32_t frames = (uint32_t)(c->audio_item_bytes / CALL_FRAME);
    if (frames == 0)
        return;
    if (playout_queue(&c->playout, c->audio_item, frames) != 0)
        log_warn("playout cannot track item %s", c->audio_item);
    c->audio_item_bytes -= (size_t)frames * CALL_FRAME;
}

/* The current item's audio is complete: pad its last frame with silence so frames never mix
 * two items (the truncate point of each stays exact). */
void call_audio_item_done(struct call *c)
{
    size_t rest = c->audio_item_bytes % CALL_FRAME;
    if (rest) {
        static const uint8_t silence[CALL_FRAME] = {[0 ... CALL_FRAME - 1] = G711_ULAW_SILENCE};
        size_t pad = CALL_FRAME - rest;
        if (ring_push(&c->downlink, silence, pad) == pad)
            c->audio_item_bytes += pad;
    }
    queue_frames(c);
    c->audio_item_bytes = 0;
    c->audio_item[0] = '\0';
    call_audio_pump(c);
}

static void push_down(struct call *c, const uint8_t *ulaw, size_t n)
{
    size_t pushed = ring_push(&c->downlink, ulaw, n);
    if (pushed < n && c->stats.down_dropped_bytes == 0)
        log_warn("AI audio dropped: more than %u s buffered ahead of playback",
                 CALL_DOWNLINK_RING / 8000);
    c->stats.down_dropped_bytes += n - pushed;
    c->audio_item_bytes += pushed;
}

void call_audio_delta(struct call *c, const struct openai_event *ev)
{
    if (cancelled(c, ev->response_id) || c->ending == 2)
        return; /* the tail of a response the caller interrupted */
    if (strcmp(ev->item_id, c->audio_item) != 0) {
        if (c->audio_item[0])
            call_audio_item_done(c);
        snprintf(c->audio_item, sizeof c->audio_item, "%s", ev->item_id);
        c->first_delta_us = call_now_us();
    }
    uint8_t raw[DELTA_CHUNK_CHARS / 4 * 3];
    uint8_t ulaw[DELTA_CHUNK_CHARS / 4 * 3];
    for (size_t off = 0; off < ev->delta_len;) {
        size_t chunk = ev->delta_len - off < DELTA_CHUNK_CHARS ? ev->delta_len - off
                                                               : DELTA_CHUNK_CHARS;
        size_t n;
        if (base64_decode(ev->delta + off, chunk, raw, sizeof raw, &n) != 0) {
            if (c->stats.protocol_errors++ < 3)
                log_warn("openai audio delta is not valid base64; dropped");
            return;
        }
        off += chunk;
        if (c->g711) {
            push_down(c, raw, n);
        } else {
            size_t out = resample_down_ulaw(&c->down, (const int16_t *)raw, n / 2, ulaw);
            push_down(c, ulaw, out);
        }
    }
    queue_frames(c);
    call_audio_pump(c);
}

static void on_pace_timer(uv_timer_t *t)
{
    struct call *c = t->data;
    c->pace_at_us = UINT64_MAX; /* a one-shot: no longer armed */
    call_audio_pump(c);
}

/* Arms the pacing timer for next (µs, UINT64_MAX: stopped) unless it is armed for it already:
 * the pump runs on every media frame from Twilio, and the deadline moves only when frames are
 * sent or a mark echo corrects the model. */
static void pace_timer_arm(struct call *c, uint64_t next, uint64_t now)
{
    if (next == c->pace_at_us)
        return;
    c->pace_at_us = next;
    if (next == UINT64_MAX) {
        uv_timer_stop(&c->pace_timer);
        return;
    }
    uint64_t ms = next > now ? (next - now + 999) / 1000 : 0;
    uv_timer_start(&c->pace_timer, on_pace_timer, ms, 0);
}

/* Nothing left to say or play. */
int call_audio_idle(struct call *c)
{
    return !c->response_active && playout_queued_frames(&c->playout) == 0 &&
           !playout_playing(&c->playout, call_now_us());
}

/* Sends every frame that is due (playout.h: a top-up to the lead once the backlog nears the low
 * mark, several media messages that leave in one write), a mark when due, and re-arms the
 * pacing timer. Runs on each media frame from Twilio as well as on the timer, so while the
 * caller's audio flows the timer is pushed out ahead of it and seldom fires. */
void call_audio_pump(struct call *c)
{
    if (c->tw_state != TW_STREAMING)
        return;
    uint64_t now = call_now_us();
    char msg[512];
    uint8_t frame[CALL_FRAME];
    for (uint32_t due = playout_frames_due(&c->playout, now); due > 0; due--) {
        if (ring_pop(&c->downlink, frame, CALL_FRAME) != CALL_FRAME)
            break; /* cannot happen: the model only counts frames the ring holds */
        playout_frame_sent(&c->playout, now);
        int len = twilio_msg_media(msg, sizeof msg, c->stream_sid, frame, CALL_FRAME);
        twilio_leg_send(c, msg, (size_t)len);
        c->stats.frames_out++;
        if (c->first_delta_us) {
            uint64_t took = call_now_us() - c->first_delta_us;
            c->first_delta_us = 0;
            c->stats.down_us_sum += took;
            c->stats.down_count++;
            if (took > c->stats.down_us_max)
                c->stats.down_us_max = took;
        }
    }
    trim_if_due(&c->downlink, &c->down_trimmed, 0);
    uint64_t since_mark = c->playout.sent_ms - c->last_mark_ms;
    const struct config *cfg = c->host->cfg;
    if (since_mark >= cfg->bridge.mark_interval_ms ||
        (since_mark >= MARK_MIN_GAP_MS && playout_queued_frames(&c->playout) == 0)) {
        char name[48];
        playout_mark_name(&c->playout, name, sizeof name);
        int len = twilio_msg_mark(msg, sizeof msg, c->stream_sid, name);
        twilio_leg_send(c, msg, (size_t)len);
        c->last_mark_ms = c->playout.sent_ms;
    }
    uint64_t next = playout_next_due_us(&c->playout, now);
    if (c->ending == 1) {
        if (call_audio_idle(c)) {
            c->ending = 2;
            call_end(c, "assistant ended the call", 0);
            return;
        }
        if (next == UINT64_MAX) /* wake when the goodbye has finished playing */
            next = c->playout.buf_end_us > now ? c->playout.buf_end_us : now + 20000;
    }
    pace_timer_arm(c, next, now);
}

static void truncate_item(void *ctx, const char *item_id, uint32_t heard_ms)
{
    struct call *c = ctx;
    c->stats.truncates++;
    openai_leg_send_owned(c, openai_msg_truncate(item_id, heard_ms));
}

static void interrupt(struct call *c, uint64_t event_us, int by_caller);

void call_audio_barge_in(struct call *c, uint64_t event_us)
{
    interrupt(c, event_us, 1);
}

void call_audio_interrupt(struct call *c, uint64_t event_us)
{
    interrupt(c, event_us, 0);
}

static void interrupt(struct call *c, uint64_t event_us, int by_caller)
{
    uint64_t now = call_now_us();
    int had_audio = ring_fill(&c->downlink) > 0 || playout_playing(&c->playout, now) ||
                    playout_queued_frames(&c->playout) > 0 || c->audio_item[0];
    if (!had_audio && !c->response_active)
        return; /* the caller speaks into silence: an ordinary turn */
    ring_discard(&c->downlink); /* its pages are trimmed by the next pump, not on this path */
    resample_down_init(&c->down);
    c->audio_item_bytes = 0;
    c->first_delta_us = 0;
    c->audio_item[0] = '\0';
    if (had_audio) {
        char msg[128];
        int len = twilio_msg_clear(msg, sizeof msg, c->stream_sid);
        twilio_leg_send(c, msg, (size_t)len);
    }
    uint64_t took = call_now_us() - event_us;
    if (c->response_active) {
        /* With interrupt_response the server cancels too; ours makes it certain, and any
         * delta still in flight for this response is dropped. */
        if (c->response_id[0]) {
            snprintf(c->cancelled[c->cancelled_next], OPENAI_ID_MAX, "%s", c->response_id);
            c->cancelled_next = (c->cancelled_next + 1) % CALL_CANCELLED_MAX;
        }
        openai_leg_send_owned(c, openai_msg_response_cancel(c->response_id));
    }
    uint64_t dropped_ms = playout_clear(&c->playout, now, truncate_item, c);
    c->last_mark_ms = c->playout.sent_ms;
    pace_timer_arm(c, UINT64_MAX, now);
    if (!by_caller) {
        log_info("interrupted for a control command: cleared %llu ms of unplayed audio",
                 (unsigned long long)dropped_ms);
        return;
    }
    c->stats.barge_ins++;
    c->stats.bargein_last_us = took;
    if (took > c->stats.bargein_max_us)
        c->stats.bargein_max_us = took;
    log_info("barge-in: cleared %llu ms of unplayed audio in %llu us",
             (unsigned long long)dropped_ms, (unsigned long long)took);
    call_post(c, CALL_EV_BARGE_IN, NULL, NULL);
}

void call_audio_mark_echo(struct call *c, const char *name)
{
    playout_mark_echo(&c->playout, name, call_now_us());
}
