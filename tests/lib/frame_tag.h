/* Frame identity for the load generator (tests/load/): marks each 20 ms frame's audio so the far
 * end can tell which frame arrived. Passthrough (mu-law carried unchanged) gets an exact 5-byte
 * tag with a 24-bit number; resampled audio cannot carry bytes, so a frame is instead held at one
 * of 64 levels and read back at its centre, where the resampler's filters have settled (their
 * delay is under a quarter frame). Shared with a unit test that runs it through the real DSP. */
#ifndef VB_TESTS_FRAME_TAG_H
#define VB_TESTS_FRAME_TAG_H

#include <stddef.h>
#include <stdint.h>

#define FTAG_BYTES 5   /* exact tag at the start of a mu-law frame */
#define FTAG_LEVELS 64 /* level tags: a frame's number modulo this */

/* Writes id (24 bits used) into frame[0..FTAG_BYTES). */
void ftag_put(uint8_t *frame, uint32_t id);
/* Reads an exact tag: 0 with *id, or -EINVAL if frame[0..FTAG_BYTES) holds none. */
int ftag_get(const uint8_t *frame, uint32_t *id);

/* The mu-law code of level v (0..FTAG_LEVELS-1), and its linear value. */
uint8_t ftag_level_ulaw(unsigned v);
int16_t ftag_level_linear(unsigned v);
/* The level a mu-law code or a linear sample is closest to, or -1 if it sits between levels
 * (one mu-law step of error is tolerated). */
int ftag_read_ulaw(uint8_t code);
int ftag_read_linear(int16_t sample);

/* Resolves a level tag against the frame number expected next: the frame number it names (at
 * most FTAG_LEVELS/2 - 1 ahead, or up to FTAG_LEVELS/2 behind). */
int64_t ftag_resolve(int level, int64_t expected);

#endif
