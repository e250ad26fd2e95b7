/* The call pair's state, shared by the files that make it up (call_pair.c: lifecycle on a
 * scheduler thread; twilio_leg.c: the media stream from Twilio; openai_leg.c: the Realtime
 * session; call_audio.c: the audio path between them). Private to those files; the rest of the worker
 * sees only worker/call_pair.h. Everything here is touched only by the scheduler thread that
 * runs the call's loop (worker/call_sched.h), except the queues' internals.
 *
 *   Twilio ws --media--> uplink ring (mu-law) --DSP--> append --> OpenAI ws
 *   Twilio ws <--frames, marks, clear-- pacing <-- downlink ring (mu-law) <--DSP-- deltas
 */
#ifndef VB_WORKER_CALL_H
#define VB_WORKER_CALL_H

#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include "common/http_client.h"
#include "common/json_scan.h"
#include "common/ring.h"
#include "common/ws.h"
#include "dsp/resample.h"
#include "worker/call_pair.h"
#include "worker/call_sched.h"
#include "worker/openai_msg.h"
#include "worker/playout.h"
#include "worker/thread_queue.h"
#include "worker/twilio_msg.h"

#define CALL_FRAME 160                  /* 20 ms of mu-law */
#define CALL_CANCELLED_MAX 4

enum twilio_state { TW_WAIT_CONNECTED, TW_WAIT_START, TW_STREAMING, TW_STOPPED, TW_CLOSED };
enum openai_state { OA_IDLE, OA_CONNECTING, OA_OPEN, OA_CONFIGURED, OA_CLOSED };

struct call {
    struct call_pair_host *host; /* the worker's, outlives the call */
    uint64_t serial;             /* the worker's number for this call, for logs */
    char log_ctx[96];            /* "call=SERIAL CallSid": this call's log prefix */
    struct call_slot slot;       /* the worker's, lent for the call's life */
    struct sched_task task;      /* the call's loop on its scheduler thread */
    uv_loop_t loop;
    uv_timer_t pace_timer;
    struct http_client http;     /* the webhook tool's requests */
    struct thread_queue ctl;     /* control commands from the main loop (call_control) */
    int handles_open;            /* loop handles whose close callback is still to come */

    /* Twilio leg */
    struct ws twilio;
    enum twilio_state tw_state;
    char stream_sid[TWILIO_SID_MAX], call_sid[TWILIO_SID_MAX]; /* from the start message */
    char *params;                /* owned: the start's customParameters, "name\0value\0"... in
                                    params_len bytes, sized to fit (a twilio_start is 9 KiB) */
    size_t params_len;
    int64_t last_sequence;
    struct ws_upgrade upgrade;   /* the request's headers, pointing into upgrade_buf */
    char *upgrade_buf;           /* owned, sized to fit; freed once ws_server_start has read it */
    int fd;                      /* until ws_server_start takes it */
    uint8_t *early;              /* bytes after the upgrade request; freed at start */
    size_t early_len;

    /* OpenAI leg */
    struct ws openai;
    enum openai_state oa_state;
    int response_active;
    int create_pending;          /* a response.create waits for the active one to finish */
    char response_id[OPENAI_ID_MAX];
    char cancelled[CALL_CANCELLED_MAX][OPENAI_ID_MAX];
    unsigned cancelled_next;
    char audio_item[OPENAI_ID_MAX]; /* the assistant item whose audio is arriving */
    size_t audio_item_bytes;        /* its bytes in the downlink ring not yet whole frames */
    uint64_t first_delta_us;        /* arrival of the current item's first delta; 0 once sent */

    /* audio */
    struct ring uplink, downlink;
    struct resample_up up;
    struct resample_down down;
    struct playout playout;
    uint64_t last_mark_ms;
    uint64_t pace_at_us;         /* what pace_timer is armed for (call_now_us), UINT64_MAX: not */
    uint64_t up_trimmed, down_trimmed; /* ring tails at the last ring_trim */
    int g711;                    /* passthrough: no conversion */

    /* how it ends */
    int ending;                  /* end_call: close once the goodbye has played */
    int ai_failed;               /* the OpenAI side failed: the worker may speak an apology */
    char end_reason[64];
    uint64_t started_ns;

    struct call_stats stats;
};

/* call_pair.c */
void call_post_control(struct call *c, const struct call_control *cmd, const char *outcome);
uint64_t call_now_us(void);
void call_post(struct call *c, enum call_event_type type, const char *role, const char *text);
void call_finish_if_done(struct call *c);
void call_end(struct call *c, const char *reason, int ai_failed);
/* The value of the stream's customParameter name, or NULL. */
const char *call_param(const struct call *c, const char *name);
/* Scratch tokens for the per-message parsers: one array per thread, not per call (a call runs on
 * one thread at a time, and a parse is used up before the next message is parsed). */
struct json_tok *call_toks(void);

/* twilio_leg.c */
int twilio_leg_start(struct call *c);
void twilio_leg_send(struct call *c, const char *msg, size_t len);
void twilio_leg_close(struct call *c, int code, const char *reason);

/* openai_leg.c */
int openai_leg_start(struct call *c);
void openai_leg_configure(struct call *c);
void openai_leg_send_owned(struct call *c, char *msg); /* frees msg */
void openai_leg_request_response(struct call *c);
void openai_leg_close(struct call *c, int code, const char *reason);

/* call_audio.c */
int call_audio_init(struct call *c);
void call_audio_free(struct call *c);
void call_audio_publish(struct call *c);
void call_audio_uplink(struct call *c, const char *b64, size_t len, uint64_t t_in_us);
void call_audio_flush_uplink(struct call *c);
void call_audio_delta(struct call *c, const struct openai_event *ev);
void call_audio_item_done(struct call *c);
void call_audio_pump(struct call *c);
void call_audio_barge_in(struct call *c, uint64_t event_us);
/* Stops the AI mid-sentence as a barge-in does (clear, cancel, truncate), for a control command:
 * not counted as a barge-in. */
void call_audio_interrupt(struct call *c, uint64_t event_us);
void call_audio_mark_echo(struct call *c, const char *name);
int call_audio_idle(struct call *c);

#endif
