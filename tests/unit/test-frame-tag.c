/* Frame tags of the load generator (tests/lib/frame_tag.c): exact tags round-trip and refuse
 * plain audio; every level tag survives the real resamplers in both directions when read at the
 * frame centre, whatever the neighbouring frames hold; resolving a level against the expected
 * frame number finds losses and reordering. */
#include "tests/lib/frame_tag.h"

#include <errno.h>
#include <string.h>

#include "dsp/g711.h"
#include "dsp/resample.h"
#include "tests/unit/testing.h"

TEST(frame_tag_exact_round_trip)
{
    uint8_t f[160];
    memset(f, 0xFF, sizeof f);
    uint32_t id = 0;
    CHECK_EQ(ftag_get(f, &id), -EINVAL); /* silence is not a tag */
    const uint32_t ids[] = {0, 1, 255, 256, 65535, 0x123456, 0xFFFFFF};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        ftag_put(f, ids[i]);
        CHECK_EQ(ftag_get(f, &id), 0);
        CHECK_EQ(id, ids[i]);
        f[2] ^= 1; /* a damaged tag is refused */
        CHECK_EQ(ftag_get(f, &id), -EINVAL);
    }
}

TEST(frame_tag_levels_read_back)
{
    for (unsigned v = 0; v < FTAG_LEVELS; v++) {
        CHECK_EQ(ftag_read_ulaw(ftag_level_ulaw(v)), (int)v);
        CHECK_EQ(ftag_read_linear(ftag_level_linear(v)), (int)v);
        for (unsigned w = 0; w < v; w++)
            CHECK(ftag_level_ulaw(v) != ftag_level_ulaw(w));
    }
    /* a code between two levels is refused, not guessed */
    CHECK_EQ(ftag_read_ulaw((uint8_t)~(3 + 2)), -1);
}

/* A deterministic sequence that visits every pair of levels in time, including the extremes. */
static unsigned level_at(unsigned k)
{
    return (k * 37u + (k >> 3) * 11u) % FTAG_LEVELS;
}

TEST(frame_tag_levels_survive_upsampling)
{
    struct resample_up st;
    resample_up_init(&st);
    uint8_t in[160];
    int16_t out[480];
    for (unsigned k = 0; k < 4096; k++) {
        memset(in, ftag_level_ulaw(level_at(k)), sizeof in);
        resample_up_ulaw(&st, in, 160, out);
        int got = ftag_read_linear(out[240]);
        CHECK_MSG(got == (int)level_at(k), "frame %u: level %u read as %d (sample %d)", k,
                  level_at(k), got, out[240]);
    }
}

TEST(frame_tag_levels_survive_downsampling)
{
    struct resample_down st;
    resample_down_init(&st);
    int16_t in[480];
    uint8_t out[200];
    for (unsigned k = 0; k < 4096; k++) {
        for (size_t i = 0; i < 480; i++)
            in[i] = ftag_level_linear(level_at(k));
        size_t n = resample_down_ulaw(&st, in, 480, out);
        CHECK_EQ(n, 160u);
        int got = ftag_read_ulaw(out[80]);
        CHECK_MSG(got == (int)level_at(k), "frame %u: level %u read as %d", k, level_at(k), got);
    }
}

TEST(frame_tag_resolve)
{
    CHECK_EQ(ftag_resolve(5, 5), 5);
    CHECK_EQ(ftag_resolve(7, 5), 7);              /* two frames lost */
    CHECK_EQ(ftag_resolve(4, 5), 4);              /* one behind: reordered */
    CHECK_EQ(ftag_resolve(1, 127), 129);          /* wraps forward */
    CHECK_EQ(ftag_resolve(63, 128), 127);         /* wraps backward */
    CHECK_EQ(ftag_resolve(36, 4), 4 - 32);        /* half a cycle counts as behind */
    CHECK_EQ(ftag_resolve(35, 4), 35);
}
