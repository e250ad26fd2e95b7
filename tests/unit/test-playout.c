/* Playout model: pacing against the lead, item accounting, mark names and echoes, and the
 * barge-in truncate points checked against a simulated Twilio playing the frames it receives. */
#include "worker/playout.h"

#include <string.h>

#include "tests/unit/testing.h"

#define MS 1000ull

TEST(playout_paces_to_the_lead)
{
    struct playout p;
    playout_init(&p, 100);
    CHECK_EQ(playout_frames_due(&p, 0), 0);
    CHECK_EQ(playout_next_due_us(&p, 0), UINT64_MAX);
    CHECK_EQ(playout_queue(&p, "item_A", 50), 0);
    CHECK_EQ(playout_frames_due(&p, 0), 5);
    for (int i = 0; i < 5; i++)
        CHECK(playout_frame_sent(&p, 0) != NULL);
    CHECK_EQ(playout_frames_due(&p, 0), 0);
    /* Exactly the lead is buffered; strictly under it from 1 us on, one frame tops it up. */
    CHECK_EQ(playout_next_due_us(&p, 0), 1);
    CHECK_EQ(playout_frames_due(&p, 19 * MS), 1); /* 81 ms buffered */
    CHECK(playout_frame_sent(&p, 19 * MS) != NULL);
    CHECK_EQ(playout_frames_due(&p, 20 * MS), 0); /* 100 ms buffered again */
    CHECK_EQ(playout_next_due_us(&p, 20 * MS), 20 * MS + 1);
    CHECK(playout_playing(&p, 119 * MS));
    CHECK(!playout_playing(&p, 120 * MS));
    CHECK_EQ(playout_frames_due(&p, 120 * MS), 5);
}

TEST(playout_attributes_frames_to_items)
{
    struct playout p;
    playout_init(&p, 100);
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
    playout_init(&p, 100);
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
    playout_init(&p, 100);
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
    playout_init(&p, 40);
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
 * is never beyond what the caller heard plus the delay, and never more than a frame short. */
TEST(playout_truncate_matches_simulated_twilio)
{
    for (unsigned delay_ms = 0; delay_ms <= 10; delay_ms += 5) {
        for (uint64_t barge = 37; barge < 3000; barge += 97) {
            struct playout p;
            playout_init(&p, 100);
            playout_queue(&p, "A", 200);
            uint64_t play_end_true = 0; /* ms */
            uint64_t first_start = UINT64_MAX;
            char mark[32];
            uint64_t pending_mark_at = 0, pending_pos = 0;
            for (uint64_t t = 0; t < barge; t++) {
                if (pending_mark_at && t >= pending_mark_at) {
                    playout_mark_echo(&p, mark, t * MS);
                    pending_mark_at = 0;
                }
                for (uint32_t n = playout_frames_due(&p, t * MS); n > 0; n--) {
                    playout_frame_sent(&p, t * MS);
                    uint64_t arrive = t + delay_ms;
                    uint64_t start = play_end_true > arrive ? play_end_true : arrive;
                    if (first_start == UINT64_MAX)
                        first_start = start;
                    play_end_true = start + PLAYOUT_FRAME_MS;
                }
                if (!pending_mark_at && p.sent_ms > 0 && t % 200 == 0) {
                    playout_mark_name(&p, mark, sizeof mark);
                    pending_pos = p.sent_ms;
                    pending_mark_at = first_start + pending_pos + delay_ms; /* echo trip */
                }
            }
            /* Truth: audio played continuously from first_start (no underrun here). */
            uint64_t heard_true = barge > first_start ? barge - first_start : 0;
            if (heard_true > p.sent_ms)
                heard_true = p.sent_ms;
            struct cut c = {0};
            playout_clear(&p, barge * MS, record_cut, &c);
            CHECK_EQ(c.n, 1);
            CHECK_MSG(c.ms <= heard_true + delay_ms && c.ms + PLAYOUT_FRAME_MS + delay_ms >= heard_true,
                      "delay %u barge %llu: cut %u, heard %llu", delay_ms,
                      (unsigned long long)barge, c.ms, (unsigned long long)heard_true);
        }
    }
}
