/* The load generator behind `make bench`: one process, one thread, one libuv loop that plays
 * both far ends of N calls through a running voicebridge, the Twilio side (Media Streams client)
 * and the OpenAI side (a Realtime server the bridge's openai.url points at), so both ends read
 * one clock. Shared state of tests/load/: loadgen.c (main, the tick, figures), lg_twilio.c,
 * lg_openai.c. Every frame carries its identity (tests/lib/frame_tag.h). */
#ifndef VB_TESTS_LOADGEN_H
#define VB_TESTS_LOADGEN_H

#include <stdint.h>
#include <string.h>
#include <uv.h>

#include "common/stream.h"
#include "common/ws.h"
#include "common/json_scan.h"

#define LG_FRAME 160          /* 20 ms of mu-law */
#define LG_FRAME_US 20000
#define LG_SLOTS 20           /* calls are spread over the 20 ms period, one slot per ms */
#define LG_SEND_RING 512      /* send times of the last 10 s of uplink frames, per call */
#define LG_MARKS 32           /* marks waiting for their audio to play, per call */
#define LG_MARK_NAME 64
#define LG_RESP_FRAMES 150    /* a response: 3 s of audio */
#define LG_DELTA_FRAMES 5     /* frames per audio delta: 100 ms, one delta per 20 ms = 5x real time */
#define LG_BARGE_AFTER_US 400000 /* barge-in this long after a response's first delta */
#define LG_TOKENS 256
#define LG_HIST_BIN_US 10
#define LG_HIST_BINS 50000    /* 10 us bins up to 500 ms; beyond counts in the last bin */

struct lg_hist {
    uint64_t n, sum_us, max_us;
    uint32_t bins[LG_HIST_BINS];
};

/* Per-run counters; latencies only inside the measurement window, correctness always. */
struct lg_stats {
    struct lg_hist up, down, barge;
    uint64_t up_frames_sent, up_frames_rx, up_lost, up_reordered, up_unreadable;
    uint64_t down_frames_rx, down_lost, down_reordered, down_unreadable;
    uint64_t responses, barge_ins, bargein_missed, clears_unexpected;
    uint64_t truncates, truncate_rejected, truncate_missing, truncate_err_abs_max_ms, truncate_err_sum_ms;
    int64_t truncate_err_signed_sum_ms;
    uint64_t truncate_checked;
    uint64_t first_frame_dropped, append_before_session, sessions;
    uint64_t calls_started, calls_failed, calls_ended_early, marks_echoed, marks_overflow;
    uint64_t send_refused;
};

struct lg;
struct lg_oa;

struct lg_mark {
    uint64_t due_us;
    char name[LG_MARK_NAME];
};

struct lg_call {
    struct lg *lg;
    unsigned id;
    char call_id[24];
    char stream_sid[40];

    /* Twilio side */
    struct ws tw;
    int tw_state;                 /* LG_TW_* */
    uint64_t t0_us;               /* first frame's send time: frame k is due at t0 + 20k ms */
    uint32_t up_sent;             /* media frames sent */
    uint32_t msg_seq;             /* sequenceNumber of the last message sent */
    uint64_t up_send_us[LG_SEND_RING];
    uint64_t play_end_us;         /* Twilio's playback buffer runs dry at this time */
    struct lg_mark marks[LG_MARKS];
    unsigned mark_head, mark_count;
    struct lg_call *mnext, *mprev; /* in lg->marked while marks wait */
    int in_marked;
    uint32_t dn_resp;             /* the response whose frames are arriving */
    int64_t dn_next;              /* its frame expected next */
    uint32_t dn_rx;               /* its frames received */
    int clear_seen;               /* a clear arrived for the barged response */
    int64_t clear_played_ms;      /* what had played of it then */

    /* OpenAI side (the fake) */
    struct lg_oa *oa;
    uint64_t session_us;          /* session.update arrived */
    int64_t up_next;              /* uplink frame expected next */
    uint64_t up_pos;              /* bytes (g711) or samples (pcm16) appended so far */
    uint8_t up_tag[8];            /* g711: the start of a frame split over two appends */
    int first_seen;
    uint32_t resp_n;              /* responses started */
    int resp_state;               /* LG_R_* */
    uint32_t resp_sent;           /* frames of the response sent as deltas */
    uint64_t resp_first_us;       /* its first delta */
    uint64_t next_us;             /* the script's next step */
    uint64_t speech_us;           /* speech_started sent (barge-in), 0 when none pending */
    int truncate_seen;
    int64_t truncate_ms;
    int create_pending;           /* the bridge asked for a response */
};

enum { LG_TW_IDLE, LG_TW_CONNECTING, LG_TW_STREAMING, LG_TW_STOPPING, LG_TW_CLOSED };
enum { LG_R_IDLE, LG_R_SENDING, LG_R_PLAYING, LG_R_BARGED, LG_R_GAP };

struct lg_opts {
    unsigned calls;
    unsigned vb_port, oa_port;
    int g711;                     /* passthrough mode: the bridge's openai.audio_format */
    const char *cert, *key;       /* TLS for the fake OpenAI side; NULL: plain ws */
    unsigned ramp_per_s;          /* calls started per second */
    unsigned warm_s, measure_s;
};

struct lg {
    uv_loop_t *loop;
    struct lg_opts opt;
    struct lg_call *calls;
    struct tls_config *tls;
    uv_timer_t tick;
    uv_signal_t sigint;
    uint64_t start_us, steady_us, end_us, next_stop_deadline;
    unsigned started, streaming, open_oa;
    struct lg_call *marked;       /* calls with marks waiting: checked every millisecond */
    int phase;                    /* LG_P_* */
    int measuring;
    char url[128];
    struct json_tok toks[LG_TOKENS];
    struct lg_stats st;
    /* precomputed payloads (pcm16 mode): base64 of a level-tagged uplink frame, per level */
    char up_level_b64[64][220];
    uint8_t down_level_pcm[64][960];
    int up_center, down_center;   /* where a frame's tag is read */
};

enum { LG_P_RAMP, LG_P_WARM, LG_P_MEASURE, LG_P_STOP, LG_P_DONE };

uint64_t lg_now_us(void);
void lg_hist_add(struct lg_hist *h, uint64_t us);

/* A message built piece by piece: the per-frame ones are built with these rather than with
 * snprintf, which parses its format for every frame (the generator shares the machine with the
 * server it measures). A piece that does not fit sets over and is dropped. */
struct lg_msg {
    char *p;
    size_t len, cap;
    int over;
};

static inline void lg_msg_put(struct lg_msg *m, const char *s, size_t n)
{
    if (m->cap - m->len < n) {
        m->over = 1;
        return;
    }
    memcpy(m->p + m->len, s, n);
    m->len += n;
}

#define LG_MSG_LIT(m, lit) lg_msg_put((m), (lit), sizeof(lit) - 1)

static inline void lg_msg_str(struct lg_msg *m, const char *s)
{
    lg_msg_put(m, s, strlen(s));
}

static inline void lg_msg_uint(struct lg_msg *m, uint64_t v)
{
    char d[20];
    size_t n = 0;
    do
        d[sizeof d - ++n] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    lg_msg_put(m, d + sizeof d - n, n);
}

/* lg_twilio.c */
int lg_twilio_start(struct lg_call *c);
void lg_twilio_tick(struct lg_call *c, uint64_t now);
void lg_twilio_stop(struct lg_call *c);
void lg_twilio_marks_tick(struct lg *lg, uint64_t now);
int64_t lg_twilio_played_ms(const struct lg_call *c, uint64_t now);

/* lg_openai.c */
int lg_openai_listen(struct lg *lg);
void lg_openai_tick(struct lg_call *c, uint64_t now);
void lg_openai_truncate_check(struct lg_call *c);
void lg_openai_close_all(struct lg *lg);

#endif
