/* AVX2 base64 kernels (W. Mula and D. Lemire, "Faster Base64 Encoding and Decoding using AVX2
 * Instructions", 2018): 24 bytes <-> 32 characters per step, no table lookups in memory. The
 * encoder spreads each 3-byte group over a 32-bit lane and cuts out the four 6-bit fields with
 * two multiplies; the decoder classifies characters by their two nibbles (one shuffle each),
 * so a bad character is found per block, then packs four 6-bit fields into 3 bytes with two
 * multiply-adds. base64.c calls these only on a CPU with AVX2 and finishes what they leave. */
#include "common/base64_kernel.h"

#include <immintrin.h>

size_t base64_avx2_encode(const uint8_t *in, size_t n, char *out)
{
    /* Group (a, b, c) at byte 3g of a lane becomes the lane's bytes (b, a, c, b): the 16-bit
     * halves then hold a:b and b:c, most significant byte first. */
    const __m256i spread = _mm256_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10, 1, 0,
                                            2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10);
    /* 6-bit value -> offset to its character: 'A' for 0-25, 'a' - 26 for 26-51, '0' - 52 for
     * 52-61, then '+' and '/'. Indexed by a saturating subtract and a compare. */
    const __m256i offsets =
        _mm256_setr_epi8(65, 71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 0, 0, 65, 71, -4,
                         -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 0, 0);
    size_t i = 0;
    for (; n - i >= 28; i += 24, out += 32) {
        __m128i lo = _mm_loadu_si128((const __m128i *)(const void *)(in + i));
        __m128i hi = _mm_loadu_si128((const __m128i *)(const void *)(in + i + 12));
        __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
        v = _mm256_shuffle_epi8(v, spread);
        /* fields 0 and 2 down to bytes 0 and 2 (multiply-high), fields 1 and 3 up to bytes 1
         * and 3 (multiply-low) */
        __m256i f02 = _mm256_mulhi_epu16(_mm256_and_si256(v, _mm256_set1_epi32(0x0fc0fc00)),
                                         _mm256_set1_epi32(0x04000040));
        __m256i f13 = _mm256_mullo_epi16(_mm256_and_si256(v, _mm256_set1_epi32(0x003f03f0)),
                                         _mm256_set1_epi32(0x01000010));
        __m256i idx = _mm256_or_si256(f02, f13);
        __m256i sel = _mm256_subs_epu8(idx, _mm256_set1_epi8(51));
        sel = _mm256_sub_epi8(sel, _mm256_cmpgt_epi8(idx, _mm256_set1_epi8(25)));
        __m256i chars = _mm256_add_epi8(idx, _mm256_shuffle_epi8(offsets, sel));
        _mm256_storeu_si256((__m256i *)(void *)out, chars);
    }
    return i;
}

size_t base64_avx2_decode(const char *in, size_t n, uint8_t *out)
{
    /* A character is in the alphabet iff the bits its low nibble selects from lut_lo and its
     * high nibble selects from lut_hi have nothing in common. */
    const __m256i lut_lo =
        _mm256_setr_epi8(0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1A,
                         0x1B, 0x1B, 0x1B, 0x1A, 0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
                         0x11, 0x11, 0x13, 0x1A, 0x1B, 0x1B, 0x1B, 0x1A);
    const __m256i lut_hi =
        _mm256_setr_epi8(0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10,
                         0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08,
                         0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10);
    /* Character -> value offset by high nibble ('/' alone moved to slot 1). */
    const __m256i lut_roll =
        _mm256_setr_epi8(0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 19, 4,
                         -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m256i mask_2f = _mm256_set1_epi8(0x2f);
    /* the 3 bytes of each 32-bit lane, most significant first, packed to 12 per half... */
    const __m256i pack = _mm256_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1, 2,
                                          1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1);
    /* ...and the two halves' 12 bytes next to each other */
    const __m256i join = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 7, 7);
    size_t i = 0;
    for (; n - i >= 32; i += 32, out += 24) {
        __m256i s = _mm256_loadu_si256((const __m256i *)(const void *)(in + i));
        __m256i hi_nib = _mm256_and_si256(_mm256_srli_epi32(s, 4), mask_2f);
        __m256i lo_nib = _mm256_and_si256(s, mask_2f);
        if (!_mm256_testz_si256(_mm256_shuffle_epi8(lut_lo, lo_nib),
                                _mm256_shuffle_epi8(lut_hi, hi_nib)))
            break;
        __m256i roll =
            _mm256_shuffle_epi8(lut_roll, _mm256_add_epi8(_mm256_cmpeq_epi8(s, mask_2f), hi_nib));
        __m256i v = _mm256_add_epi8(s, roll);
        /* four 6-bit values a b c d per lane -> a:b and c:d (12 bits each) -> a:b:c:d (24) */
        v = _mm256_maddubs_epi16(v, _mm256_set1_epi32(0x01400140));
        v = _mm256_madd_epi16(v, _mm256_set1_epi32(0x00011000));
        v = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, pack), join);
        _mm_storeu_si128((__m128i *)(void *)out, _mm256_castsi256_si128(v));
        _mm_storel_epi64((__m128i *)(void *)(out + 16), _mm256_extracti128_si256(v, 1));
    }
    return i;
}
