/* Playout model: item accounting in a small circular array (oldest first), a model of Twilio's
 * playback buffer (buf_end_us), corrected by mark echoes, the pacing policy (top-ups between
 * the low mark and the lead), and the truncate points for barge-in. No I/O and no clock of its
 * own: every function takes now_us. */
#include "worker/playout.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FRAME_US ((uint64_t)PLAYOUT_FRAME_MS * 1000)

void playout_init(struct playout *p, uint32_t lead_ms, uint32_t low_ms)
{
    memset(p, 0, sizeof *p);
    p->lead_ms = lead_ms < PLAYOUT_FRAME_MS ? PLAYOUT_FRAME_MS : lead_ms;
    p->low_ms = low_ms > p->lead_ms - PLAYOUT_FRAME_MS ? p->lead_ms - PLAYOUT_FRAME_MS : low_ms;
}

static struct playout_item *item_at(struct playout *p, unsigned k)
{
    return &p->items[(p->head + k) % PLAYOUT_MAX_ITEMS];
}

static const struct playout_item *item_at_c(const struct playout *p, unsigned k)
{
    return &p->items[(p->head + k) % PLAYOUT_MAX_ITEMS];
}

uint32_t playout_queued_frames(const struct playout *p)
{
    uint32_t n = 0;
    for (unsigned k = 0; k < p->count; k++)
        n += item_at_c(p, k)->received_frames - item_at_c(p, k)->sent_frames;
    return n;
}

int playout_queue(struct playout *p, const char *item_id, uint32_t frames)
{
    size_t len = strlen(item_id);
    if (len >= PLAYOUT_ID_MAX)
        return -ENOSPC;
    if (p->count > 0) {
        struct playout_item *last = item_at(p, p->count - 1);
        if (strcmp(last->id, item_id) == 0) {
            last->received_frames += frames;
            return 0;
        }
    }
    if (p->count == PLAYOUT_MAX_ITEMS) {
        /* Forget the oldest item, unless it still has audio to send (then the caller is
         * queueing far more items than a conversation produces). */
        struct playout_item *old = item_at(p, 0);
        if (old->sent_frames < old->received_frames)
            return -ENOSPC;
        p->head = (p->head + 1) % PLAYOUT_MAX_ITEMS;
        p->count--;
    }
    struct playout_item *it = item_at(p, p->count++);
    memset(it, 0, sizeof *it);
    memcpy(it->id, item_id, len + 1);
    it->received_frames = frames;
    return 0;
}

static uint64_t backlog_us(const struct playout *p, uint64_t now_us)
{
    return p->buf_end_us > now_us ? p->buf_end_us - now_us : 0;
}

/* Whether the next frame to send is the first of its item (a response starting: its latency
 * counts, so it does not wait for the low mark). */
static int next_starts_item(const struct playout *p)
{
    for (unsigned k = 0; k < p->count; k++) {
        const struct playout_item *it = item_at_c(p, k);
        if (it->sent_frames < it->received_frames)
            return it->sent_frames == 0;
    }
    return 0;
}

/* Whole frames that fit between the backlog and the lead. */
static uint64_t room_frames(const struct playout *p, uint64_t now_us)
{
    uint64_t lead_us = (uint64_t)p->lead_ms * 1000, b = backlog_us(p, now_us);
    return b < lead_us ? (lead_us - b) / FRAME_US : 0;
}

/* Hysteresis: topping up one frame each time one has played costs a write (and a wake-up)
 * per frame; waiting until the backlog nears the low mark sends several in one write. "Nears":
 * under low + one frame, since the next chance to send (Twilio's next media frame, or the
 * timer at the low mark) may be up to a frame away. */
uint32_t playout_frames_due(const struct playout *p, uint64_t now_us)
{
    uint32_t queued = playout_queued_frames(p);
    if (queued == 0)
        return 0;
    uint64_t room = room_frames(p, now_us);
    if (room == 0)
        return 0;
    uint64_t low_us = (uint64_t)p->low_ms * 1000;
    if (backlog_us(p, now_us) >= low_us + FRAME_US && !next_starts_item(p))
        return 0;
    return room < queued ? (uint32_t)room : queued;
}

uint64_t playout_next_due_us(const struct playout *p, uint64_t now_us)
{
    if (playout_queued_frames(p) == 0)
        return UINT64_MAX;
    if (playout_frames_due(p, now_us) > 0)
        return now_us;
    /* The backlog shrinks by a microsecond each microsecond: it reaches the mark at buf_end
     * minus the mark (the lead less a frame for a frame to fit, the low mark otherwise). */
    uint64_t mark_us = next_starts_item(p) ? (uint64_t)p->lead_ms * 1000 - FRAME_US
                                           : (uint64_t)p->low_ms * 1000;
    return p->buf_end_us - mark_us; /* > now_us: the backlog is above the mark */
}

const struct playout_item *playout_frame_sent(struct playout *p, uint64_t now_us)
{
    for (unsigned k = 0; k < p->count; k++) {
        struct playout_item *it = item_at(p, k);
        if (it->sent_frames == it->received_frames)
            continue;
        if (it->sent_frames == 0)
            it->start_pos_ms = p->sent_ms;
        it->sent_frames++;
        p->sent_ms += PLAYOUT_FRAME_MS;
        p->buf_end_us = (p->buf_end_us > now_us ? p->buf_end_us : now_us) + FRAME_US;
        return it;
    }
    return NULL;
}

void playout_mark_name(const struct playout *p, char *out, size_t cap)
{
    snprintf(out, cap, "g%" PRIu32 ".%" PRIu64, p->generation, p->sent_ms);
}

int playout_mark_echo(struct playout *p, const char *name, uint64_t now_us)
{
    char *end;
    if (name[0] != 'g')
        return 0;
    unsigned long gen = strtoul(name + 1, &end, 10);
    if (*end != '.' || gen != p->generation)
        return 0;
    const char *digits = end + 1;
    unsigned long long pos = strtoull(digits, &end, 10);
    if (*end != '\0' || end == digits || pos > p->sent_ms)
        return 0;
    if (pos > p->played_confirmed_ms)
        p->played_confirmed_ms = pos;
    /* Twilio has played everything before pos: what remains cannot end sooner than now. */
    uint64_t end_us = now_us + (p->sent_ms - pos) * 1000;
    if (end_us > p->buf_end_us)
        p->buf_end_us = end_us;
    for (unsigned k = 0; k < p->count; k++) {
        struct playout_item *it = item_at(p, k);
        if (it->sent_frames == 0 || pos <= it->start_pos_ms)
            continue;
        uint64_t heard = pos - it->start_pos_ms, sent = (uint64_t)it->sent_frames * PLAYOUT_FRAME_MS;
        heard = heard < sent ? heard : sent;
        if (heard > it->played_ms)
            it->played_ms = (uint32_t)heard;
    }
    return 1;
}

static int64_t item_played(const struct playout *p, const struct playout_item *it, uint64_t now_us)
{
    if (it->sent_frames == 0)
        return 0;
    uint64_t pending_ms = backlog_us(p, now_us) / 1000; /* whole ms not yet played */
    uint64_t pos = p->sent_ms > pending_ms ? p->sent_ms - pending_ms : 0;
    if (pos < p->played_confirmed_ms)
        pos = p->played_confirmed_ms;
    uint64_t sent = (uint64_t)it->sent_frames * PLAYOUT_FRAME_MS;
    uint64_t heard = pos > it->start_pos_ms ? pos - it->start_pos_ms : 0;
    if (heard > sent)
        heard = sent;
    if (heard < it->played_ms)
        heard = it->played_ms;
    return (int64_t)heard;
}

int64_t playout_item_played_ms(const struct playout *p, const char *item_id, uint64_t now_us)
{
    for (unsigned k = 0; k < p->count; k++)
        if (strcmp(item_at_c(p, k)->id, item_id) == 0)
            return item_played(p, item_at_c(p, k), now_us);
    return -1;
}

uint64_t playout_clear(struct playout *p, uint64_t now_us,
                       void (*fn)(void *ctx, const char *item_id, uint32_t heard_ms), void *ctx)
{
    for (unsigned k = 0; k < p->count; k++) {
        const struct playout_item *it = item_at_c(p, k);
        int64_t heard = item_played(p, it, now_us);
        /* Items the caller heard in full keep their audio; the rest are cut at what was heard
         * (0 for one queued but never sent, so the model forgets it said it). */
        if ((uint64_t)heard < (uint64_t)it->received_frames * PLAYOUT_FRAME_MS)
            fn(ctx, it->id, (uint32_t)heard);
    }
    uint64_t dropped_ms = backlog_us(p, now_us) / 1000;
    p->buf_end_us = now_us;
    p->generation++;
    p->count = 0;
    p->head = 0;
    return dropped_ms;
}

int playout_playing(const struct playout *p, uint64_t now_us)
{
    return p->buf_end_us > now_us;
}
