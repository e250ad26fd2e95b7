/* Playout model: pacing against the lead, item accounting, mark names and echoes, and the
 * barge-in truncate points checked against a simulated Twilio playing the frames it receives. */
#include "worker/playout.h"

#include <string.h>

#include "tests/unit/testing.h"

#define MS 1000ull

static uint64_t backlog(const struct playout *p, uint64_t t)
{
    return p->buf_end_us > t ? p->buf_end_us - t : 0;
}

TEST(playout_paces_to_the_lead)
{
    struct playout p;
    playout_init(&p, 100, 20);
    CHECK_EQ(playout_frames_due(&p, 0), 0);
    CHECK_EQ(playout_next_due_us(&p, 0), UINT64_MAX);
    CHECK_EQ(playout_queue(&p, "item_A", 50), 0);
    CHECK_EQ(playout_frames_due(&p, 0), 5); /* a first frame goes at once, with all that fits */
    for (int i = 0; i < 5; i++)
        CHECK(playout_frame_sent(&p, 0) != NULL);
    CHECK_EQ(playout_frames_due(&p, 0), 0);
    /* No top-up of a frame each time one has played: the latest time to ask again is when the
     * backlog reaches the low mark. */
    CHECK_EQ(playout_frames_due(&p, 19 * MS), 0);
    CHECK_EQ(playout_next_due_us(&p, 0), 80 * MS);
    CHECK_EQ(playout_frames_due(&p, 60 * MS), 0); /* 40 ms left: a frame from now still 20 */
    CHECK_EQ(playout_next_due_us(&p, 60 * MS), 80 * MS);
    /* Under low + a frame (the next media frame would find it under the mark): up to the lead,
     * whole frames, never above it. */
    CHECK_EQ(playout_frames_due(&p, 61 * MS), 3); /* 39 ms left, room for 61 */
    CHECK_EQ(playout_next_due_us(&p, 61 * MS), 61 * MS);
    for (int i = 0; i < 3; i++)
        playout_frame_sent(&p, 61 * MS);
    CHECK_EQ(backlog(&p, 61 * MS), 99 * MS);
    CHECK_EQ(playout_frames_due(&p, 61 * MS), 0);
    CHECK_EQ(playout_frames_due(&p, 80 * MS), 0);  /* room for one frame, but 80 ms left */
    CHECK_EQ(playout_frames_due(&p, 140 * MS), 4); /* at the low mark: 20 ms left, room for 80 */
    CHECK(playout_playing(&p, 159 * MS));
    CHECK(!playout_playing(&p, 160 * MS));
    CHECK_EQ(playout_frames_due(&p, 160 * MS), 5);
}

TEST(playout_clamps_the_marks)
{
    struct playout p;
    playout_init(&p, 100, 500); /* a low mark must leave room for a frame */
    CHECK_EQ(p.low_ms, 80);
    playout_init(&p, 5, 0);
    CHECK_EQ(p.lead_ms, 20);
    CHECK_EQ(p.low_ms, 0);
    /* low = lead - a frame: one frame per top-up, the backlog kept between 80 and 100 ms */
    playout_init(&p, 100, 80);
    playout_queue(&p, "A", 20);
    for (uint32_t n = playout_frames_due(&p, 0); n > 0; n--)
        playout_frame_sent(&p, 0);
    CHECK_EQ(playout_frames_due(&p, 19 * MS), 0);
    CHECK_EQ(playout_next_due_us(&p, 0), 20 * MS);
    CHECK_EQ(playout_frames_due(&p, 20 * MS), 1);
}

/* Once an item's audio is queued, its first frame goes as soon as one fits under the lead,
 * without waiting for the low mark (a response's latency); the rest of it waits. */
TEST(playout_sends_an_items_first_frame_at_once)
{
    struct playout p;
    playout_init(&p, 100, 20);
    playout_queue(&p, "A", 5);
    for (uint32_t n = playout_frames_due(&p, 0); n > 0; n--)
        playout_frame_sent(&p, 0);
    playout_queue(&p, "B", 10);
    CHECK_EQ(playout_frames_due(&p, 10 * MS), 0); /* 90 ms buffered: no room for a frame */
    CHECK_EQ(playout_next_due_us(&p, 10 * MS), 20 * MS);
    CHECK_EQ(playout_frames_due(&p, 30 * MS), 1); /* 70 ms buffered: room for one */
    CHECK(strcmp(playout_frame_sent(&p, 30 * MS)->id, "B") == 0);
    CHECK_EQ(playout_frames_due(&p, 30 * MS), 0);
    CHECK_EQ(playout_next_due_us(&p, 30 * MS), 100 * MS); /* 90 ms left, low mark at 20 */
}

/* Drives p as the call loop does: on Twilio's media frames, every 20 ms from phase_us on (the
 * first delta arrives at 0), and on the timer when playout_next_due_us comes before the next
 * media frame. Checks that the backlog never goes under the low mark nor over the lead; returns
 * the writes (wake-ups that sent) and counts those the timer made and the smallest batch. */
static unsigned run_media_ticks(struct playout *p, uint64_t phase_us, uint32_t frames,
                                unsigned *timer_wakes, unsigned *min_batch)
{
    unsigned writes = 0;
    *timer_wakes = 0;
    *min_batch = UINT32_MAX;
    uint64_t lead = (uint64_t)p->lead_ms * MS, low = (uint64_t)p->low_ms * MS;
    uint64_t t = 0, media = phase_us;
    playout_queue(p, "A", frames);
    while (playout_queued_frames(p) > 0) {
        uint32_t n = playout_frames_due(p, t);
        if (t > 0)
            CHECK_MSG(backlog(p, t) >= low, "phase %llu t %llu: backlog %llu under the low mark",
                      (unsigned long long)phase_us, (unsigned long long)t,
                      (unsigned long long)backlog(p, t));
        if (n > 0) {
            writes++;
            if (playout_queued_frames(p) > n && n < *min_batch)
                *min_batch = n; /* a batch that empties the queue does not count */
        }
        for (; n > 0; n--)
            CHECK(playout_frame_sent(p, t) != NULL);
        CHECK_MSG(backlog(p, t) <= lead, "phase %llu t %llu: backlog %llu over the lead",
                  (unsigned long long)phase_us, (unsigned long long)t,
                  (unsigned long long)backlog(p, t));
        uint64_t timer = playout_next_due_us(p, t);
        if (t == media)
            media += 20 * MS;
        if (timer < media) {
            CHECK(timer > t); /* nothing left due now */
            t = timer;
            (*timer_wakes)++;
        } else {
            t = media;
        }
    }
    return writes;
}

TEST(playout_tops_up_on_media_frames_without_the_timer)
{
    for (uint64_t phase = 1; phase <= 20 * MS; phase += 500) {
        struct playout p;
        playout_init(&p, 100, 20);
        unsigned timer_wakes, min_batch;
        unsigned writes = run_media_ticks(&p, phase, 500, &timer_wakes, &min_batch);
        CHECK_EQ(p.sent_ms, 500 * 20);
        /* 10 s of audio: a write every 60 ms (3 frames) or better, none through the timer */
        CHECK_MSG(writes <= 10000 / 60 + 2, "phase %llu: %u writes", (unsigned long long)phase,
                  writes);
        CHECK_MSG(min_batch >= 3, "phase %llu: a batch of %u", (unsigned long long)phase,
                  min_batch);
        CHECK_MSG(timer_wakes == 0, "phase %llu: %u timer wake-ups", (unsigned long long)phase,
                  timer_wakes);
    }
    /* The defaults (lead 120, low 40): three frames a write too, the backlog never under 40 ms. */
    for (uint64_t phase = 1; phase <= 20 * MS; phase += 500) {
        struct playout p;
        playout_init(&p, 120, 40);
        unsigned timer_wakes, min_batch;
        unsigned writes = run_media_ticks(&p, phase, 500, &timer_wakes, &min_batch);
        CHECK_MSG(writes <= 10000 / 60 + 2 && min_batch >= 3 && timer_wakes == 0,
                  "phase %llu: %u writes, a batch of %u, %u timer wake-ups",
                  (unsigned long long)phase, writes, min_batch, timer_wakes);
    }
    /* The pacing before the low mark is one setting away: a low mark a frame under the lead,
     * one frame per write, the timer between media frames. */
    struct playout p;
    playout_init(&p, 100, 80);
    unsigned timer_wakes, min_batch;
    CHECK(run_media_ticks(&p, 7 * MS, 500, &timer_wakes, &min_batch) >= 495);
    CHECK_EQ(min_batch, 1);
    CHECK(timer_wakes > 0);
}

/* Without media frames (a stream that stopped sending) the timer alone keeps the low mark:
 * woken at playout_next_due_us, the backlog is exactly the low mark and the top-up fills the
 * room to the lead. */
TEST(playout_timer_alone_keeps_the_low_mark)
{
    struct playout p;
    playout_init(&p, 100, 20);
    playout_queue(&p, "A", 102);
    uint64_t t = 0;
    unsigned wakes = 0;
    while (playout_queued_frames(&p) > 0) {
        uint32_t n = playout_frames_due(&p, t);
        CHECK(n > 0);
        if (t > 0) {
            CHECK_EQ(backlog(&p, t), 20 * MS);
            CHECK_EQ(n, playout_queued_frames(&p) < 4 ? playout_queued_frames(&p) : 4);
        }
        for (; n > 0; n--)
            playout_frame_sent(&p, t);
        CHECK(backlog(&p, t) <= 100 * MS);
        t = playout_next_due_us(&p, t);
        wakes++;
    }
    CHECK_EQ(wakes, 1 + 24 + 1); /* 5 frames, 24 top-ups of 4, the last frame */
    CHECK_EQ(playout_next_due_us(&p, t), UINT64_MAX);
}

TEST(playout_attributes_frames_to_items)
{
    struct playout p;
    playout_init(&p, 100, 20);
    CHECK_EQ(playout_queue(&p, "A", 3), 0);
    CHECK_EQ(playout_queue(&p, "A", 1), 0);
    CHECK_EQ(playout_queue(&p, "B", 2), 0);
    CHECK_EQ(playout_queued_frames(&p), 6);
    const struct playout_item *it;
    for (int i = 0; i < 4; i++) {
        it = playout_frame_sent(&p, 0);
        CHECK(strcmp(it->id, "A") == 0);
    }
    it = playout_frame_sent(&p, 0);
    CHECK(strcmp(it->id, "B") == 0);
    CHECK_EQ(it->start_pos_ms, 80);
    CHECK(playout_frame_sent(&p, 0) != NULL);
    CHECK(playout_frame_sent(&p, 0) == NULL);
    char id[PLAYOUT_ID_MAX + 8];
    memset(id, 'x', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    CHECK(playout_queue(&p, id, 1) < 0);
}

TEST(playout_marks_and_echoes)
{
    struct playout p;
    playout_init(&p, 100, 20);
    playout_queue(&p, "A", 10);
    for (int i = 0; i < 5; i++)
        playout_frame_sent(&p, 0);
    char name[32];
    playout_mark_name(&p, name, sizeof name);
    CHECK(strcmp(name, "g0.100") == 0);
    static const char *bad[] = {"", "g", "g0", "g0.", "gx.10", "g1.100", "g0.101", "g0.1x",
                                "responsePart"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(playout_mark_echo(&p, bad[i], 50 * MS) == 0, "used %s", bad[i]);
    /* The echo of g0.100 at 150 ms says playback runs 50 ms late: the model follows. */
    CHECK_EQ(playout_mark_echo(&p, "g0.100", 150 * MS), 1);
    CHECK_EQ(playout_item_played_ms(&p, "A", 150 * MS), 100);
    CHECK_EQ(playout_frames_due(&p, 150 * MS), 5);
    CHECK_EQ(playout_item_played_ms(&p, "nope", 0), -1);
}

struct cut {
    char id[PLAYOUT_ID_MAX];
    uint32_t ms;
    int n;
};

static void record_cut(void *ctx, const char *id, uint32_t ms)
{
    struct cut *c = ctx;
    snprintf(c->id, sizeof c->id, "%s", id);
    c->ms = ms;
    c->n++;
}

TEST(playout_clear_truncates_at_what_was_heard)
{
    struct playout p;
    playout_init(&p, 100, 20);
    playout_queue(&p, "A", 100);
    uint64_t t = 0;
    for (; t <= 1000 * MS; t += 20 * MS)
        for (uint32_t n = playout_frames_due(&p, t); n > 0; n--)
            playout_frame_sent(&p, t);
    /* At 1010 ms: 1000 ms played... plus 10 of the frame in progress rounds down to 1010. */
    struct cut c = {0};
    uint64_t dropped = playout_clear(&p, 1010 * MS, record_cut, &c);
    CHECK_EQ(c.n, 1);
    CHECK(strcmp(c.id, "A") == 0);
    CHECK_EQ(c.ms, 1010);
    CHECK_EQ(dropped, p.sent_ms - 1010);
    CHECK_EQ(playout_queued_frames(&p), 0);
    CHECK_EQ(p.generation, 1);
    CHECK_EQ(playout_mark_echo(&p, "g0.20", 1020 * MS), 0);
    /* A second clear with nothing new cuts nothing. */
    c.n = 0;
    playout_clear(&p, 1030 * MS, record_cut, &c);
    CHECK_EQ(c.n, 0);
}

TEST(playout_clear_cuts_unsent_item_at_zero_and_spares_heard_ones)
{
    struct playout p;
    playout_init(&p, 40, 20);
    playout_queue(&p, "A", 2);
    playout_frame_sent(&p, 0);
    playout_frame_sent(&p, 0);
    playout_queue(&p, "B", 3);
    struct cut c = {0};
    playout_clear(&p, 500 * MS, record_cut, &c); /* A fully heard long ago, B never sent */
    CHECK_EQ(c.n, 1);
    CHECK(strcmp(c.id, "B") == 0);
    CHECK_EQ(c.ms, 0);
}

/* A simulated Twilio plays each received frame after the previous one, starting no earlier
 * than its arrival (send time + network delay). Barge-ins at many moments: the truncate point
 * is never beyond what the caller heard plus the delay, and never more than a frame short.
 * Driven each millisecond, and as the call loop drives it: on media frames every 20 ms and on
 * the timer (playout_next_due_us); with the default low mark and with one a frame under the
 * lead (a frame per top-up). */
TEST(playout_truncate_matches_simulated_twilio)
{
    static const uint32_t lows[] = {20, 80};
    for (unsigned mode = 0; mode < 4; mode++) {
        for (unsigned delay_ms = 0; delay_ms <= 10; delay_ms += 5) {
            for (uint64_t barge = 37; barge < 3000; barge += 97) {
                struct playout p;
                playout_init(&p, 100, lows[mode % 2]);
                int media_ticks = mode >= 2;
                playout_queue(&p, "A", 200);
                uint64_t play_end_true = 0; /* ms */
                uint64_t first_start = UINT64_MAX;
                char mark[32];
                uint64_t pending_mark_at = 0, pending_pos = 0, next_due = 0;
                for (uint64_t t = 0; t < barge; t++) {
                    if (pending_mark_at && t >= pending_mark_at) {
                        playout_mark_echo(&p, mark, t * MS);
                        pending_mark_at = 0;
                    }
                    if (media_ticks && t % 20 != 7 && t * MS < next_due)
                        continue;
                    for (uint32_t n = playout_frames_due(&p, t * MS); n > 0; n--) {
                        playout_frame_sent(&p, t * MS);
                        uint64_t arrive = t + delay_ms;
                        CHECK_MSG(first_start == UINT64_MAX || play_end_true >= arrive,
                                  "mode %u delay %u: underrun at %llu ms", mode, delay_ms,
                                  (unsigned long long)t);
                        uint64_t start = play_end_true > arrive ? play_end_true : arrive;
                        if (first_start == UINT64_MAX)
                            first_start = start;
                        play_end_true = start + PLAYOUT_FRAME_MS;
                    }
                    next_due = playout_next_due_us(&p, t * MS);
                    if (!pending_mark_at && p.sent_ms > 0 && t % 200 == 0) {
                        playout_mark_name(&p, mark, sizeof mark);
                        pending_pos = p.sent_ms;
                        pending_mark_at = first_start + pending_pos + delay_ms; /* echo trip */
                    }
                }
                /* Truth: audio played continuously from first_start (no underrun, checked). */
                uint64_t heard_true = barge > first_start ? barge - first_start : 0;
                if (heard_true > p.sent_ms)
                    heard_true = p.sent_ms;
                struct cut c = {0};
                playout_clear(&p, barge * MS, record_cut, &c);
                CHECK_EQ(c.n, 1);
                CHECK_MSG(c.ms <= heard_true + delay_ms &&
                              c.ms + PLAYOUT_FRAME_MS + delay_ms >= heard_true,
                          "mode %u delay %u barge %llu: cut %u, heard %llu", mode, delay_ms,
                          (unsigned long long)barge, c.ms, (unsigned long long)heard_true);
            }
        }
    }
}
