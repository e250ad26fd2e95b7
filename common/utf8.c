/* Streaming UTF-8 validation: a word-at-a-time ASCII fast path, and for anything else the table
 * of well-formed byte sequences of Unicode 15, 3.9 (Table 3-7): the lead byte fixes how many
 * continuation bytes follow and the range of the first of them (which is what rules out overlong
 * forms, surrogates and code points past U+10FFFF); the others are 80..BF. A character cut by
 * the end of a piece leaves its remaining count and the next byte's range in *state:
 *   bits 0-1 continuation bytes still due, bits 8-15 lowest and 16-23 highest allowed next byte */
#include "common/utf8.h"

#include <errno.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define UTF8_HIGH_BITS 0x8080808080808080ull

static uint32_t utf8_state(unsigned need, unsigned lo, unsigned hi)
{
    return need | lo << 8 | hi << 16;
}

/* Bytes from p that are ASCII, looking at whole words first (64 bytes a step with SSE2, which
 * every x86-64 has; 32 with plain 64-bit words elsewhere). */
static size_t utf8_ascii_run(const uint8_t *p, size_t n)
{
    size_t i = 0;
#ifdef __SSE2__
    while (n - i >= 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(p + i + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(p + i + 32));
        __m128i d = _mm_loadu_si128((const __m128i *)(const void *)(p + i + 48));
        if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d))) != 0)
            break;
        i += 64;
    }
#endif
    while (n - i >= 32) {
        uint64_t a, b, c, d;
        memcpy(&a, p + i, 8);
        memcpy(&b, p + i + 8, 8);
        memcpy(&c, p + i + 16, 8);
        memcpy(&d, p + i + 24, 8);
        if (((a | b | c | d) & UTF8_HIGH_BITS) != 0)
            break;
        i += 32;
    }
    while (n - i >= 8) {
        uint64_t a;
        memcpy(&a, p + i, 8);
        if ((a & UTF8_HIGH_BITS) != 0)
            break;
        i += 8;
    }
    while (i < n && p[i] < 0x80)
        i++;
    return i;
}

int utf8_check(uint32_t *state, const uint8_t *p, size_t n)
{
    const uint8_t *end = p + n;
    unsigned need = *state & 3, lo = (*state >> 8) & 0xff, hi = (*state >> 16) & 0xff;
    for (;;) {
        /* the continuation bytes of the character under way */
        while (need > 0) {
            if (p == end) {
                *state = utf8_state(need, lo, hi);
                return 0;
            }
            if (*p < lo || *p > hi)
                return -EILSEQ;
            p++;
            need--;
            lo = 0x80, hi = 0xbf;
        }
        p += utf8_ascii_run(p, (size_t)(end - p));
        if (p == end) {
            *state = 0;
            return 0;
        }
        unsigned c = *p++;
        lo = 0x80, hi = 0xbf;
        if (c < 0xc2) {
            return -EILSEQ; /* a continuation byte with no lead, or an overlong 2-byte form */
        } else if (c < 0xe0) {
            need = 1;
        } else if (c < 0xf0) {
            need = 2;
            if (c == 0xe0)
                lo = 0xa0; /* below: overlong */
            else if (c == 0xed)
                hi = 0x9f; /* above: surrogates */
        } else if (c < 0xf5) {
            need = 3;
            if (c == 0xf0)
                lo = 0x90; /* below: overlong */
            else if (c == 0xf4)
                hi = 0x8f; /* above: past U+10FFFF */
        } else {
            return -EILSEQ; /* F5..FF start nothing */
        }
    }
}

int utf8_validate(const uint8_t *p, size_t n)
{
    uint32_t st = 0;
    if (utf8_check(&st, p, n) != 0 || !utf8_check_done(st))
        return -EILSEQ;
    return 0;
}
