/* The OpenAI side of each simulated call: a Realtime (GA) WebSocket server, plain or TLS, that
 * the bridge's openai.url points at. Connections are tied to calls by the instructions of their
 * session.update ("{{callId}}" filled by the bridge). It reads every append's frame tags
 * (uplink latency, loss, order, first frame, session.update first), and runs a script per call:
 * a response (3 s of tagged audio sent as deltas at 5x real time) when the bridge asks; every
 * second response is interrupted 400 ms after its first delta by speech_started, cancelled as
 * the real server does with interrupt_response, and the bridge's truncate is checked against
 * what the Twilio side really played; then the next turn, as server VAD would start it. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/base64.h"
#include "common/http_parser.h"
#include "common/tls.h"
#include "tests/lib/frame_tag.h"
#include "tests/load/loadgen.h"

#define OA_MAX_APPEND (64u << 10) /* decoded audio per append we accept */

struct lg_oa {
    struct lg *lg;
    struct stream s;
    struct ws ws;
    struct http_parser *hp; /* until the upgrade request is complete */
    struct lg_call *call;
    int ws_started;
};

static uv_poll_t listen_poll;
static int listen_fd = -1;
static uint8_t audio_buf[OA_MAX_APPEND];
static char delta_msg[16384];

/* ---- sending ------------------------------------------------------------------------------ */

static void oa_send(struct lg_call *c, const char *msg, int len)
{
    if (c->oa == NULL || len <= 0 || ws_send_text(&c->oa->ws, msg, (size_t)len) != 0)
        if (c->lg->phase < LG_P_STOP) /* once stopping, the bridge closes legs under us */
            c->lg->st.send_refused++;
}

static void send_delta(struct lg_call *c, uint64_t now)
{
    struct lg *lg = c->lg;
    uint32_t n = LG_RESP_FRAMES - c->resp_sent;
    if (n > LG_DELTA_FRAMES)
        n = LG_DELTA_FRAMES;
    uint8_t raw[LG_DELTA_FRAMES * 960];
    size_t bytes;
    if (lg->opt.g711) {
        for (uint32_t i = 0; i < n; i++) {
            uint8_t *f = raw + i * LG_FRAME;
            memset(f, 0xFF, LG_FRAME);
            ftag_put(f, (c->resp_n & 0xFF) << 16 | (c->resp_sent + i));
        }
        bytes = n * LG_FRAME;
    } else {
        for (uint32_t i = 0; i < n; i++)
            memcpy(raw + i * 960, lg->down_level_pcm[(c->resp_sent + i) % FTAG_LEVELS], 960);
        bytes = n * 960;
    }
    struct lg_msg m = {.p = delta_msg, .cap = sizeof delta_msg};
    LG_MSG_LIT(&m, "{\"type\":\"response.output_audio.delta\",\"event_id\":\"ev\","
                   "\"response_id\":\"r");
    lg_msg_uint(&m, c->resp_n);
    LG_MSG_LIT(&m, "\",\"item_id\":\"i");
    lg_msg_uint(&m, c->resp_n);
    LG_MSG_LIT(&m, "\",\"output_index\":0,\"content_index\":0,\"delta\":\"");
    if (m.cap - m.len >= base64_encoded_len(bytes))
        m.len += base64_encode(raw, bytes, delta_msg + m.len);
    else
        m.over = 1;
    LG_MSG_LIT(&m, "\"}");
    if (c->resp_sent == 0)
        c->resp_first_us = now;
    c->resp_sent += n;
    oa_send(c, delta_msg, m.over ? -1 : (int)m.len);
}

static void send_response_end(struct lg_call *c, const char *status)
{
    char msg[512];
    oa_send(c, msg,
            snprintf(msg, sizeof msg,
                     "{\"type\":\"response.output_audio.done\",\"response_id\":\"r%u\","
                     "\"item_id\":\"i%u\",\"output_index\":0,\"content_index\":0}",
                     c->resp_n, c->resp_n));
    oa_send(c, msg,
            snprintf(msg, sizeof msg,
                     "{\"type\":\"response.done\",\"response\":{\"id\":\"r%u\",\"object\":"
                     "\"realtime.response\",\"status\":\"%s\",\"status_details\":%s,"
                     "\"output\":[],\"usage\":{\"total_tokens\":0,\"input_tokens\":0,"
                     "\"output_tokens\":0}}}",
                     c->resp_n, status,
                     strcmp(status, "cancelled") == 0
                         ? "{\"type\":\"cancelled\",\"reason\":\"turn_detected\"}"
                         : "null"));
}

static void start_response(struct lg_call *c, uint64_t now)
{
    char msg[512];
    c->resp_n++;
    c->resp_sent = 0;
    c->resp_first_us = 0;
    c->speech_us = 0;
    c->clear_seen = 0;
    c->truncate_seen = 0;
    c->create_pending = 0;
    c->resp_state = LG_R_SENDING;
    c->lg->st.responses++;
    oa_send(c, msg,
            snprintf(msg, sizeof msg,
                     "{\"type\":\"response.created\",\"response\":{\"id\":\"r%u\",\"object\":"
                     "\"realtime.response\",\"status\":\"in_progress\",\"output\":[]}}",
                     c->resp_n));
    oa_send(c, msg,
            snprintf(msg, sizeof msg,
                     "{\"type\":\"response.output_item.added\",\"response_id\":\"r%u\","
                     "\"output_index\":0,\"item\":{\"id\":\"i%u\",\"object\":\"realtime.item\","
                     "\"type\":\"message\",\"role\":\"assistant\",\"status\":\"in_progress\","
                     "\"content\":[]}}",
                     c->resp_n, c->resp_n));
    send_delta(c, now);
}

static void barge_in(struct lg_call *c, uint64_t now)
{
    char msg[256];
    oa_send(c, msg,
            snprintf(msg, sizeof msg,
                     "{\"type\":\"input_audio_buffer.speech_started\",\"event_id\":\"ev\","
                     "\"audio_start_ms\":%llu,\"item_id\":\"u%u\"}",
                     (unsigned long long)(c->up_pos / (c->lg->opt.g711 ? 8 : 48)), c->resp_n));
    c->speech_us = now;
    c->lg->st.barge_ins++;
    /* interrupt_response: the server cancels the response in progress itself */
    if (c->resp_state == LG_R_SENDING)
        send_response_end(c, "cancelled");
    c->resp_state = LG_R_BARGED;
}

/* Once both the clear (Twilio side) and the truncate (here) arrived, in either order. */
void lg_openai_truncate_check(struct lg_call *c)
{
    struct lg_stats *st = &c->lg->st;
    if (c->truncate_seen != 1 || !c->clear_seen)
        return;
    c->truncate_seen = 2;
    int64_t err = c->truncate_ms - c->clear_played_ms;
    uint64_t abs_err = (uint64_t)(err < 0 ? -err : err);
    st->truncate_checked++;
    st->truncate_err_sum_ms += abs_err;
    st->truncate_err_signed_sum_ms += err;
    if (abs_err > st->truncate_err_abs_max_ms)
        st->truncate_err_abs_max_ms = abs_err;
    /* the API refuses a point past the item's audio; we also refuse one off by over a frame */
    if (c->truncate_ms > (int64_t)c->resp_sent * 20 || abs_err > 20)
        st->truncate_rejected++;
}

void lg_openai_tick(struct lg_call *c, uint64_t now)
{
    struct lg_stats *st = &c->lg->st;
    if (c->oa == NULL || c->session_us == 0)
        return;
    int barge = c->resp_n % 2 == 0;
    switch (c->resp_state) {
    case LG_R_IDLE:
        if (c->create_pending)
            start_response(c, now);
        break;
    case LG_R_SENDING:
    case LG_R_PLAYING:
        if (barge && c->resp_first_us && now >= c->resp_first_us + LG_BARGE_AFTER_US) {
            barge_in(c, now);
            break;
        }
        if (c->resp_state == LG_R_SENDING) {
            send_delta(c, now);
            if (c->resp_sent == LG_RESP_FRAMES) {
                send_response_end(c, "completed");
                c->resp_state = LG_R_PLAYING;
            }
            break;
        }
        if (!barge && now >= c->resp_first_us + LG_RESP_FRAMES * LG_FRAME_US + 400000 &&
            now >= c->play_end_us + 400000) {
            /* played out: every frame of it should have arrived */
            int64_t got = c->dn_resp == c->resp_n ? c->dn_next : 0;
            if (got < LG_RESP_FRAMES)
                st->down_lost += (uint64_t)(LG_RESP_FRAMES - got);
            c->resp_state = LG_R_GAP;
            c->next_us = now + 300000;
        }
        break;
    case LG_R_BARGED:
        if (now >= c->speech_us + 300000) {
            char msg[256];
            if (!c->clear_seen)
                st->bargein_missed++;
            if (c->truncate_seen != 2)
                st->truncate_missing++;
            oa_send(c, msg,
                    snprintf(msg, sizeof msg,
                             "{\"type\":\"input_audio_buffer.speech_stopped\",\"event_id\":"
                             "\"ev\",\"audio_end_ms\":%llu,\"item_id\":\"u%u\"}",
                             (unsigned long long)(c->up_pos / (c->lg->opt.g711 ? 8 : 48)),
                             c->resp_n));
            c->resp_state = LG_R_GAP;
            c->next_us = now + 200000;
        }
        break;
    case LG_R_GAP:
        if (now >= c->next_us)
            start_response(c, now); /* the caller's turn ended: server VAD answers */
        break;
    }
}

/* ---- receiving ---------------------------------------------------------------------------- */

static void up_frame(struct lg_call *c, int64_t k, uint64_t now)
{
    struct lg *lg = c->lg;
    struct lg_stats *st = &lg->st;
    st->up_frames_rx++;
    if (!c->first_seen) {
        c->first_seen = 1;
        if (k != 0)
            st->first_frame_dropped++;
    }
    if (k > c->up_next)
        st->up_lost += (uint64_t)(k - c->up_next);
    else if (k < c->up_next)
        st->up_reordered++;
    if (k >= c->up_next)
        c->up_next = k + 1;
    if (lg->measuring && k >= 0 && k < c->up_sent && c->up_sent - k < LG_SEND_RING) {
        uint64_t sent = c->up_send_us[k % LG_SEND_RING];
        if (sent >= c->session_us) /* frames held for the session are not a latency */
            lg_hist_add(&st->up, now - sent);
    }
}

static void on_append(struct lg_call *c, const uint8_t *a, size_t n, uint64_t now)
{
    struct lg *lg = c->lg;
    uint64_t p = c->up_pos, end = p + (lg->opt.g711 ? n : n / 2);
    if (lg->opt.g711) {
        /* the first FTAG_BYTES of every frame, wherever the appends split them */
        while (p < end) {
            uint64_t o = p % LG_FRAME;
            if (o >= FTAG_BYTES) {
                p += LG_FRAME - o;
                continue;
            }
            c->up_tag[o] = a[p - c->up_pos];
            if (o == FTAG_BYTES - 1) {
                uint32_t id;
                if (ftag_get(c->up_tag, &id) == 0)
                    up_frame(c, id, now);
                else
                    lg->st.up_unreadable++;
            }
            p++;
        }
    } else {
        /* 480 samples per frame at 24 kHz, read at the centre */
        uint64_t first = (p + 480 - 1 - (uint64_t)lg->up_center) / 480;
        for (uint64_t j = first;; j++) {
            uint64_t s = j * 480 + (uint64_t)lg->up_center;
            if (s < p)
                continue;
            if (s >= end)
                break;
            size_t i = (size_t)(s - p) * 2;
            int16_t v = (int16_t)(a[i] | a[i + 1] << 8);
            int level = ftag_read_linear(v);
            if (level < 0)
                lg->st.up_unreadable++;
            else
                up_frame(c, ftag_resolve(level, c->up_next), now);
        }
    }
    c->up_pos = end;
}

static void link_call(struct lg_oa *oa, const char *msg, struct json_tok *t)
{
    struct lg *lg = oa->lg;
    char instr[64];
    size_t len;
    int sess = json_get(msg, t, 0, "session");
    if (json_str(msg, t, json_get(msg, t, sess, "instructions"), instr, sizeof instr, &len) != 0)
        return;
    unsigned id;
    if (sscanf(instr, "lg%u", &id) != 1 || id >= lg->opt.calls)
        return;
    struct lg_call *c = &lg->calls[id];
    if (oa->call == NULL) {
        if (c->oa != NULL)
            return; /* a second session for the same call: not ours to serve */
        oa->call = c;
        c->oa = oa;
        c->session_us = lg_now_us();
        lg->st.sessions++;
    }
    char out[128];
    oa_send(c, out, snprintf(out, sizeof out,
                             "{\"type\":\"session.updated\",\"session\":{\"type\":\"realtime\"}}"));
}

static void oa_on_text(struct ws *ws, const char *msg, size_t len)
{
    struct lg_oa *oa = ws->data;
    struct lg *lg = oa->lg;
    struct lg_call *c = oa->call;
    uint64_t now = lg_now_us();
    struct json_tok *t = lg->toks;
    if (json_scan(msg, len, t, LG_TOKENS) < 1 || t[0].type != JTOK_OBJECT)
        return;
    int type = json_get(msg, t, 0, "type");
    if (json_str_eq(msg, t, type, "input_audio_buffer.append")) {
        const char *p;
        size_t pl, n;
        if (c == NULL) {
            lg->st.append_before_session++;
            return;
        }
        if (json_str_view(msg, t, json_get(msg, t, 0, "audio"), &p, &pl) != 0 ||
            base64_decode(p, pl, audio_buf, sizeof audio_buf, &n) != 0) {
            lg->st.up_unreadable++;
            return;
        }
        on_append(c, audio_buf, n, now);
    } else if (json_str_eq(msg, t, type, "session.update")) {
        link_call(oa, msg, t);
    } else if (c == NULL) {
        return;
    } else if (json_str_eq(msg, t, type, "response.create")) {
        if (c->resp_state == LG_R_SENDING) {
            char out[256];
            oa_send(c, out,
                    snprintf(out, sizeof out,
                             "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
                             "\"code\":\"conversation_already_has_active_response\","
                             "\"message\":\"busy\"}}"));
        } else {
            c->create_pending = 1;
        }
    } else if (json_str_eq(msg, t, type, "response.cancel")) {
        if (c->resp_state == LG_R_SENDING) {
            send_response_end(c, "cancelled");
            c->resp_state = LG_R_PLAYING;
        } else {
            char out[256];
            oa_send(c, out,
                    snprintf(out, sizeof out,
                             "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
                             "\"code\":\"response_cancel_not_active\",\"message\":\"none\"}}"));
        }
    } else if (json_str_eq(msg, t, type, "conversation.item.truncate")) {
        char item[32], want[32], out[256];
        size_t il;
        int64_t ms = -1;
        lg->st.truncates++;
        json_int(msg, t, json_get(msg, t, 0, "audio_end_ms"), &ms);
        if (json_str(msg, t, json_get(msg, t, 0, "item_id"), item, sizeof item, &il) != 0)
            item[0] = '\0';
        snprintf(want, sizeof want, "i%u", c->resp_n);
        if (strcmp(item, want) == 0 && c->resp_state == LG_R_BARGED && c->truncate_seen == 0) {
            c->truncate_seen = 1;
            c->truncate_ms = ms;
            lg_openai_truncate_check(c);
        } else {
            lg->st.truncate_rejected++; /* an item we did not interrupt, or twice */
        }
        oa_send(c, out,
                snprintf(out, sizeof out,
                         "{\"type\":\"conversation.item.truncated\",\"item_id\":\"%s\","
                         "\"content_index\":0,\"audio_end_ms\":%lld}",
                         item, (long long)ms));
    }
}

static void oa_on_open(struct ws *ws)
{
    struct lg_oa *oa = ws->data;
    static const char created[] =
        "{\"type\":\"session.created\",\"event_id\":\"ev\",\"session\":{\"type\":\"realtime\","
        "\"id\":\"sess_loadgen\",\"model\":\"gpt-realtime\"}}";
    ws_send_text(&oa->ws, created, sizeof created - 1);
}

static void oa_on_close(struct ws *ws, int code, const char *reason, size_t reason_len)
{
    struct lg_oa *oa = ws->data;
    (void)code, (void)reason, (void)reason_len;
    if (oa->call != NULL)
        oa->call->oa = NULL;
    oa->lg->open_oa--;
    free(oa);
}

static const struct ws_callbacks oa_ws_callbacks = {
    .on_open = oa_on_open,
    .on_text = oa_on_text,
    .on_close = oa_on_close,
};

/* ---- the ws transport: our own stream (plain or TLS, server side) ------------------------- */

static int io_write(struct ws *ws, const void *data, size_t len)
{
    return stream_write(&((struct lg_oa *)ws->data)->s, data, len);
}
static size_t io_pending(const struct ws *ws)
{
    return stream_pending(&((const struct lg_oa *)ws->data)->s);
}
static void io_flush_request(struct ws *ws)
{
    stream_flush_request(&((struct lg_oa *)ws->data)->s);
}
static void io_read_stop(struct ws *ws)
{
    stream_read_stop(&((struct lg_oa *)ws->data)->s);
}
static void io_read_start(struct ws *ws)
{
    stream_read_start(&((struct lg_oa *)ws->data)->s);
}
static void io_stream_closed(struct stream *s)
{
    ws_io_closed(&((struct lg_oa *)s->data)->ws);
}
static void io_close(struct ws *ws, int graceful)
{
    stream_close(&((struct lg_oa *)ws->data)->s, graceful, io_stream_closed);
}

static const struct ws_io oa_io = {
    .write = io_write,
    .pending = io_pending,
    .flush_request = io_flush_request,
    .read_stop = io_read_stop,
    .read_start = io_read_start,
    .close = io_close,
};

static void oa_freed(struct stream *s)
{
    struct lg_oa *oa = s->data;
    oa->lg->open_oa--;
    free(oa->hp);
    free(oa);
}

static void oa_handshake(struct lg_oa *oa, const uint8_t *data, size_t len)
{
    size_t used = 0;
    int rc = http_parser_execute(oa->hp, (const char *)data, len, &used);
    if (rc == HTTP_PARSE_MORE)
        return;
    if (rc != HTTP_PARSE_DONE) {
        stream_close(&oa->s, 0, oa_freed);
        return;
    }
    struct ws_upgrade up;
    char resp[512];
    size_t rl;
    ws_upgrade_from_http(&up, &oa->hp->msg);
    rc = ws_handshake_response(&up, resp, sizeof resp, &rl);
    free(oa->hp);
    oa->hp = NULL;
    if (rl > 0 && stream_write(&oa->s, resp, rl) != 0)
        rc = -EPIPE;
    if (rc != 0) {
        stream_close(&oa->s, 1, oa_freed);
        return;
    }
    oa->ws.data = oa;
    struct ws_options opt = {.max_message = 1u << 20, .close_timeout_ms = 5000};
    if (ws_io_start(&oa->ws, oa->lg->loop, 1, &oa_io, &oa_ws_callbacks, &opt) != 0) {
        stream_close(&oa->s, 0, oa_freed);
        return;
    }
    oa->ws_started = 1;
    if (used < len)
        ws_io_input(&oa->ws, data + used, len - used);
}

static void st_on_connect(struct stream *s, int status)
{
    if (status != 0)
        stream_close(s, 0, oa_freed); /* TLS handshake failed */
}

static void st_on_read(struct stream *s, const uint8_t *data, size_t len)
{
    struct lg_oa *oa = s->data;
    if (oa->ws_started)
        ws_io_input(&oa->ws, data, len);
    else
        oa_handshake(oa, data, len);
}

static void st_on_end(struct stream *s, int err)
{
    struct lg_oa *oa = s->data;
    if (oa->ws_started)
        ws_io_end(&oa->ws, err);
    else
        stream_close(s, 0, oa_freed);
}

static void st_on_flush(struct stream *s)
{
    struct lg_oa *oa = s->data;
    if (oa->ws_started)
        ws_io_flush(&oa->ws);
}

static const struct stream_callbacks oa_stream_callbacks = {
    .on_connect = st_on_connect,
    .on_read = st_on_read,
    .on_end = st_on_end,
    .on_flush = st_on_flush,
};

static void on_listen(uv_poll_t *p, int status, int events)
{
    struct lg *lg = p->data;
    (void)events;
    if (status < 0)
        return;
    for (int i = 0; i < 256; i++) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno != EAGAIN && errno != EINTR)
                fprintf(stderr, "loadgen: accept: %s\n", strerror(errno));
            return;
        }
        struct lg_oa *oa = calloc(1, sizeof *oa);
        struct stream_options so = {.tls = lg->tls, .max_pending = 4u << 20};
        if (oa == NULL) {
            close(fd);
            continue;
        }
        oa->lg = lg;
        oa->hp = malloc(sizeof *oa->hp);
        if (oa->hp == NULL || stream_init(&oa->s, lg->loop, &oa_stream_callbacks, &so) != 0) {
            free(oa->hp);
            free(oa);
            close(fd);
            continue;
        }
        struct http_limits lim = {.max_head_bytes = 8192, .max_headers = 64, .max_body = 0};
        http_parser_init(oa->hp, HTTP_MSG_REQUEST, &lim, false);
        oa->s.data = oa;
        lg->open_oa++;
        if (stream_adopt(&oa->s, fd) != 0)
            stream_close(&oa->s, 0, oa_freed);
    }
}

int lg_openai_listen(struct lg *lg)
{
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd == -1)
        return -errno;
    int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)lg->opt.oa_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) == -1 || listen(listen_fd, 4096) == -1) {
        int e = -errno;
        close(listen_fd);
        listen_fd = -1;
        return e;
    }
    uv_poll_init(lg->loop, &listen_poll, listen_fd);
    listen_poll.data = lg;
    uv_poll_start(&listen_poll, UV_READABLE, on_listen);
    return 0;
}

static void listen_closed(uv_handle_t *h)
{
    (void)h;
    close(listen_fd);
    listen_fd = -1;
}

void lg_openai_close_all(struct lg *lg)
{
    (void)lg;
    if (listen_fd != -1 && !uv_is_closing((uv_handle_t *)&listen_poll))
        uv_close((uv_handle_t *)&listen_poll, listen_closed);
}
