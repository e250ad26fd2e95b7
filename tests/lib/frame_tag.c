/* Frame tags for the load generator: exact byte tags for passthrough, level tags for resampled
 * audio (see frame_tag.h). A level is a mu-law magnitude index 3, 7, ..., 127 with a sign, so
 * neighbouring levels are four mu-law steps apart and a filter's ripple cannot confuse them. */
#include "tests/lib/frame_tag.h"

#include <errno.h>

#include "dsp/g711.h"

#define FTAG_MAGIC 0xA5

void ftag_put(uint8_t *frame, uint32_t id)
{
    frame[0] = FTAG_MAGIC;
    frame[1] = (uint8_t)(id >> 16);
    frame[2] = (uint8_t)(id >> 8);
    frame[3] = (uint8_t)id;
    frame[4] = (uint8_t)(frame[1] ^ frame[2] ^ frame[3] ^ 0x5A);
}

int ftag_get(const uint8_t *frame, uint32_t *id)
{
    if (frame[0] != FTAG_MAGIC || frame[4] != (uint8_t)(frame[1] ^ frame[2] ^ frame[3] ^ 0x5A))
        return -EINVAL;
    *id = (uint32_t)frame[1] << 16 | (uint32_t)frame[2] << 8 | frame[3];
    return 0;
}

/* G.711 stores the complement of sign (0x80 = negative), 3-bit segment and 4-bit step; the
 * low seven bits are a magnitude index that grows with the level. */
uint8_t ftag_level_ulaw(unsigned v)
{
    unsigned mi = 3 + 4 * ((v % FTAG_LEVELS) >> 1);
    unsigned neg = v & 1;
    return (uint8_t)~((neg ? 0x80u : 0) | mi);
}

int16_t ftag_level_linear(unsigned v)
{
    return g711_ulaw_decode(ftag_level_ulaw(v));
}

int ftag_read_ulaw(uint8_t code)
{
    unsigned u = (uint8_t)~code;
    int neg = (u & 0x80) != 0;
    int d = (int)(u & 0x7F) - 3;
    int k = (d + 2) / 4;
    if (d < -1 || d - 4 * k > 1 || d - 4 * k < -1 || k > 31)
        return -1;
    return k * 2 + neg;
}

int ftag_read_linear(int16_t sample)
{
    return ftag_read_ulaw(g711_ulaw_encode(sample));
}

int64_t ftag_resolve(int level, int64_t expected)
{
    int64_t diff = ((int64_t)level - expected % FTAG_LEVELS + FTAG_LEVELS) % FTAG_LEVELS;
    return diff < FTAG_LEVELS / 2 ? expected + diff : expected - (FTAG_LEVELS - diff);
}
