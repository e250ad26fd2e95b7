/* Downlink playout model of one call: which assistant audio has been received, sent to Twilio
 * and played, on a real-time pacing clock. Pure logic over a caller-supplied clock (µs), so it
 * is exact under test. The call pair asks it how many 20 ms frames are due, tells it which item
 * each frame belongs to, names marks, feeds mark echoes back, and on barge-in asks where to
 * truncate each item (never past what was sent, hence never past what the API generated).
 *
 *   Twilio's buffer:  now ......... buf_end      backlog = buf_end - now, never above lead
 *   pacing: once the backlog would fall under low before the next chance to send (the next
 *           20 ms media frame from Twilio), it is topped up to the lead in one go: a few frames
 *           per write, not one. An item's first frame goes as soon as it fits (latency).
 *   items:  [A: recv 3000 ms | sent 2400 | played ~2300] [B: recv 400 | sent 0] ...
 */
#ifndef VB_WORKER_PLAYOUT_H
#define VB_WORKER_PLAYOUT_H

#include <stddef.h>
#include <stdint.h>

#define PLAYOUT_FRAME_MS 20
#define PLAYOUT_MAX_ITEMS 8 /* recent assistant items remembered; older ones are fully played */
#define PLAYOUT_ID_MAX 64

struct playout_item {
    char id[PLAYOUT_ID_MAX];     /* OpenAI item id; "" for a free slot */
    uint32_t received_frames;    /* whole frames of its audio queued for sending */
    uint32_t sent_frames;        /* of those, sent to Twilio */
    uint32_t played_ms;          /* confirmed by mark echoes */
    uint64_t start_pos_ms;       /* stream position (ms sent before it) of its first frame */
};

struct playout {
    uint32_t lead_ms;            /* most audio ahead of playback: what a clear throws away */
    uint32_t low_ms;             /* least audio ahead (unless the loop runs late): jitter room */
    uint32_t generation;         /* bumps on every clear: older mark echoes are ignored */
    uint64_t buf_end_us;         /* when Twilio's playback buffer runs dry, on our clock */
    uint64_t sent_ms;            /* stream position: all audio ms ever sent */
    uint64_t played_confirmed_ms;/* stream position confirmed by the newest mark echo */
    struct playout_item items[PLAYOUT_MAX_ITEMS];
    unsigned head;               /* slot of the oldest remembered item */
    unsigned count;              /* slots in use, oldest first from head */
};

/* lead_ms is raised to one frame; low_ms is lowered to lead_ms - one frame (the top-up must
 * have room for a frame). */
void playout_init(struct playout *p, uint32_t lead_ms, uint32_t low_ms);

/* Records n whole frames of audio for item_id queued for sending (a new id starts a new item).
 * Returns 0, or -ENOSPC if the id does not fit. */
int playout_queue(struct playout *p, const char *item_id, uint32_t frames);

/* Frames to send at now_us (0 if none): when the backlog is under low_ms + one frame, or the
 * next frame starts an item, as many as fit under the lead (whole frames, never above it). The
 * caller asks at least at playout_next_due_us and may ask at any time, typically on each media
 * frame Twilio sends (every 20 ms): that is the "next chance" the low mark looks ahead to. */
uint32_t playout_frames_due(const struct playout *p, uint64_t now_us);

/* Records that one frame was sent at now_us; returns the item it belonged to (or NULL if
 * nothing was queued, which is a caller bug). */
const struct playout_item *playout_frame_sent(struct playout *p, uint64_t now_us);

/* The latest time (µs) to ask playout_frames_due again, or UINT64_MAX if nothing is queued:
 * when the backlog reaches low_ms (or, for an item's first frame, when one frame fits). Frames
 * may well be due earlier: a caller that asks on every media frame finds them first. */
uint64_t playout_next_due_us(const struct playout *p, uint64_t now_us);

/* Writes a unique mark name for the current stream position into out ("g<gen>.<pos_ms>"). */
void playout_mark_name(const struct playout *p, char *out, size_t cap);

/* A mark echo from Twilio: if it belongs to the current generation, the audio before it has
 * been played, which corrects the clock model. Returns 1 if used, 0 if stale or unknown. */
int playout_mark_echo(struct playout *p, const char *name, uint64_t now_us);

/* Milliseconds of the item's audio the caller has heard by now_us: the model's estimate,
 * never below what marks confirmed and never above what was sent. -1 if the item is unknown. */
int64_t playout_item_played_ms(const struct playout *p, const char *item_id, uint64_t now_us);

/* Barge-in: forgets every queued frame, starts a new generation, and for each item with audio
 * sent but not entirely heard, calls fn(ctx, item_id, heard_ms). Returns the ms of sent audio
 * that Twilio will drop (what the caller will not hear). */
uint64_t playout_clear(struct playout *p, uint64_t now_us,
                       void (*fn)(void *ctx, const char *item_id, uint32_t heard_ms), void *ctx);

/* Unsent frames still queued, and whether Twilio is still playing at now_us. */
uint32_t playout_queued_frames(const struct playout *p);
int playout_playing(const struct playout *p, uint64_t now_us);

#endif
