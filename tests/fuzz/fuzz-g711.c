/* G.711 fuzz target: arbitrary bytes as codes and as little-endian samples, through the block and
 * per-sample forms. Checks that decoding then encoding gives the canonical code, that encoding is
 * idempotent after one round, and that block and per-sample forms agree. */
#include "dsp/g711.h"

#include <stdint.h>
#include <stdlib.h>

#define G711_FUZZ_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int16_t pcm[G711_FUZZ_MAX], pcm2[G711_FUZZ_MAX];
    static uint8_t codes[G711_FUZZ_MAX], codes2[G711_FUZZ_MAX];
    size_t n = size < G711_FUZZ_MAX ? size : G711_FUZZ_MAX;

    /* The bytes as codes. */
    g711_ulaw_decode_block(data, n, pcm);
    g711_ulaw_encode_block(pcm, n, codes);
    for (size_t i = 0; i < n; i++) {
        if (pcm[i] != g711_ulaw_decode(data[i]))
            abort();
        /* Canonical: the same code back, except negative zero (0x7F), which becomes +0. */
        if (codes[i] != (data[i] == 0x7F ? 0xFF : data[i]))
            abort();
    }
    g711_alaw_decode_block(data, n, pcm);
    g711_alaw_encode_block(pcm, n, codes);
    for (size_t i = 0; i < n; i++)
        if (pcm[i] != g711_alaw_decode(data[i]) || codes[i] != data[i])
            abort();

    /* The bytes as samples: encode, decode, encode must land on the same code. */
    size_t ns = n / 2;
    for (size_t i = 0; i < ns; i++)
        pcm[i] = (int16_t)(uint16_t)(data[2 * i] | data[2 * i + 1] << 8);
    g711_ulaw_encode_block(pcm, ns, codes);
    g711_ulaw_decode_block(codes, ns, pcm2);
    g711_ulaw_encode_block(pcm2, ns, codes2);
    for (size_t i = 0; i < ns; i++)
        if (codes[i] != g711_ulaw_encode(pcm[i]) || codes2[i] != codes[i])
            abort();
    g711_alaw_encode_block(pcm, ns, codes);
    g711_alaw_decode_block(codes, ns, pcm2);
    g711_alaw_encode_block(pcm2, ns, codes2);
    for (size_t i = 0; i < ns; i++)
        if (codes[i] != g711_alaw_encode(pcm[i]) || codes2[i] != codes[i])
            abort();
    return 0;
}
