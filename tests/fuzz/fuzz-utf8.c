/* Fuzz target for common/utf8: the validator against a plain decoder written from RFC 3629, on
 * the whole input and on the input cut in two, three or many pieces (characters cut anywhere),
 * so the streaming state and the word-at-a-time ASCII path must agree with the definition.
 * Input: byte 0 = cut seed, rest = the text. */
#include "common/utf8.h"

#include <stdint.h>
#include <stdlib.h>

static int ref_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t c = p[i];
        size_t k;
        uint32_t min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1, c &= 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, c &= 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, c &= 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i - 1 < k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return 0;
            c = c << 6 | (p[i + j] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned seed = data[0];
    data++, size--;
    int want = ref_valid(data, size);
    if ((utf8_validate(data, size) == 0) != want)
        abort();
    /* pieces of pseudo-random sizes from the seed */
    uint32_t st = 0;
    int ok = 1;
    size_t off = 0;
    while (off < size) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 16) % (seed & 0x100 ? 5 : 80);
        if (piece > size - off)
            piece = size - off;
        if (utf8_check(&st, data + off, piece) != 0) {
            ok = 0;
            break;
        }
        off += piece;
    }
    if ((ok && utf8_check_done(st)) != want)
        abort();
    return 0;
}
