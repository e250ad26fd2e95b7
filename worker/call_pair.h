/* A call pair: one phone call's media stream bridged to one OpenAI Realtime session, on its own
 * libuv loop, which one of the worker's call scheduler threads runs (worker/call_sched.h) among
 * many others. The worker's main loop starts it with the upgraded fd and hears back through events (transcript turns, tool
 * calls, barge-ins, the end with the call's figures); it never touches the call's state. */
#ifndef VB_WORKER_CALL_PAIR_H
#define VB_WORKER_CALL_PAIR_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/ws.h"
#include "worker/openai_msg.h"
#include "worker/thread_queue.h"

struct config;
struct tls_config;
struct call;
struct call_sched;

/* Figures of one call, reported with CALL_EV_ENDED. */
struct call_stats {
    uint64_t frames_in;          /* Twilio media messages received */
    uint64_t frames_up;          /* 20 ms frames appended to OpenAI */
    uint64_t frames_out;         /* 20 ms frames sent to Twilio */
    uint64_t bytes_in;           /* caller audio received (mu-law bytes) */
    uint64_t up_dropped_bytes;   /* caller audio dropped: uplink ring full */
    uint64_t down_dropped_bytes; /* AI audio dropped: downlink ring full, or malformed */
    uint64_t barge_ins;
    uint64_t bargein_max_us;     /* speech_started received -> clear queued, worst */
    uint64_t bargein_last_us;
    uint64_t truncates;
    uint64_t up_us_max, up_us_sum, up_count;       /* media in -> append queued to OpenAI */
    uint64_t down_us_max, down_us_sum, down_count; /* a response's first delta in -> its first
                                                       frame queued to Twilio */
    uint64_t protocol_errors;    /* malformed messages from either side */
    uint64_t openai_errors;      /* error events from OpenAI */
    struct openai_usage usage;   /* summed over responses */
};

enum call_event_type {
    CALL_EV_STARTED = 1, /* the media stream's start arrived: SIDs and parameters are known */
    CALL_EV_TURN,        /* a completed transcript turn: role "user" or "assistant" */
    CALL_EV_TOOL,        /* the model called a tool: role = tool name, text = arguments */
    CALL_EV_BARGE_IN,    /* the caller interrupted the AI */
    CALL_EV_AI_FAILED,   /* the OpenAI side failed; sent before the media stream is closed, so
                            the worker knows before Twilio asks what to play next */
    CALL_EV_ENDED,       /* the call pair is finished; stats filled; call_pair_join next */
    CALL_EV_CONTROL,     /* a control command was applied: role = op, text = command id,
                            reason = outcome ("ok", "not_ready", "ending") */
};

/* One event from a call to the main loop. Owned by whoever holds it: the call's scheduler thread
 * allocates it, the main loop frees it with call_event_free. */
struct call_event {
    struct tq_node node;
    enum call_event_type type;
    struct call *call;
    uint64_t serial;
    unsigned slot;       /* the call_slot index lent at start */
    char call_sid[64];
    char stream_sid[64];
    char call_id[64];    /* our id from the stream's customParameters (callId), or the CallSid */
    char role[64];
    uint32_t t_ms;       /* since the media stream started */
    char *text;          /* NUL-terminated, owned; may be NULL */
    int ai_failed;       /* ENDED: the AI side failed (an apology is due) */
    /* STARTED: text is the stream's customParameters as a JSON object of strings. */
    char reason[64];     /* ENDED: why it ended */
    struct call_stats stats;
};

/* Where a call's rings and live figures sit: one slot of the worker's call area in shared
 * memory (common/scoreboard.h), lent by the worker for the call's life, where the master reads
 * them. */
struct call_slot {
    unsigned index;
    struct sb_call *sb;
    void *uplink_mem, *downlink_mem; /* ring_mem_size(CALL_UPLINK_RING / _DOWNLINK_RING) */
};

/* What the worker lends every call pair; it must outlive them all. */
struct call_pair_host {
    const struct config *cfg;
    const struct tls_config *openai_tls; /* client config for wss://, NULL for ws:// only */
    const struct tls_config *webhook_tls; /* system CAs, for an https:// webhook tool */
    struct thread_queue *events;         /* the main loop's queue for call_event nodes */
    struct call_sched *sched;            /* the threads that run the calls' loops */
};

/* Starts a call pair on a scheduler thread for an upgraded media-stream connection. Takes fd (it
 * is closed on failure); the request's headers and early bytes are copied; the slot is the
 * call's until CALL_EV_ENDED (the caller frees it after call_pair_join). Returns 0 (events
 * follow, ending with CALL_EV_ENDED) or a negative errno. Main loop only. */
int call_pair_start(struct call_pair_host *host, uint64_t serial, const struct call_slot *slot,
                    int fd,
                    const struct ws_upgrade *upgrade, const void *early, size_t early_len);

/* Ring capacities: what a call area's slots must hold (common/scoreboard.h). */
#define CALL_UPLINK_RING (32u << 10)    /* 4 s of caller audio held before the session is up */
#define CALL_DOWNLINK_RING (128u << 10) /* 16 s of AI audio received ahead of playback */
/* A control command from the main loop to a call (the API's hangup, say, transfer), applied on
 * the call's own loop; the outcome comes back as CALL_EV_CONTROL. Owned by whoever holds it. */
enum call_control_op { CALL_CTL_HANGUP = 1, CALL_CTL_SAY, CALL_CTL_TRANSFER };
struct call_control {
    struct tq_node node;
    enum call_control_op op;
    char command_id[40];
    char *text; /* SAY: what to say (owned); else NULL */
};

/* Main loop, between CALL_EV_STARTED and the handling of CALL_EV_ENDED (the call is not yet
 * joined): hands cmd to the call. Returns 0 (the call owns cmd now), -EPIPE (the call is ending
 * and takes no more commands) or -ENOBUFS (too many waiting); cmd stays the caller's then. */
int call_pair_control(struct call *c, struct call_control *cmd);
void call_control_free(struct call_control *cmd);
const char *call_control_op_name(enum call_control_op op);

/* After CALL_EV_ENDED: frees the call (its loop is closed and its scheduler is done with it). */
void call_pair_join(struct call *c);

void call_event_free(struct call_event *ev);

#endif
