/* ITU-T G.711 mu-law and A-law: per-sample and block conversion between 16-bit linear PCM and
 * 8-bit codes. Bit-exact with G.711 (16-bit input is reduced to G.711's 13/14-bit linear range
 * the way sox does, and the tests compare with sox over all 65,536 inputs). Pure, no I/O. */
#ifndef VB_DSP_G711_H
#define VB_DSP_G711_H

#include <stddef.h>
#include <stdint.h>

/* mu-law of linear 0: what a silent frame is filled with. */
#define G711_ULAW_SILENCE 0xFF
#define G711_ALAW_SILENCE 0xD5

uint8_t g711_ulaw_encode(int16_t sample);
int16_t g711_ulaw_decode(uint8_t code);
uint8_t g711_alaw_encode(int16_t sample);
int16_t g711_alaw_decode(uint8_t code);

/* Block forms: n samples from in to out; in and out must not overlap. */
void g711_ulaw_decode_block(const uint8_t *in, size_t n, int16_t *out);
void g711_ulaw_encode_block(const int16_t *in, size_t n, uint8_t *out);
void g711_alaw_decode_block(const uint8_t *in, size_t n, int16_t *out);
void g711_alaw_encode_block(const int16_t *in, size_t n, uint8_t *out);

#endif
