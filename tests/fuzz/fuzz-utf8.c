/* Fuzz target for common/utf8: the validator against a plain decoder written from RFC 3629, on
 * the whole input and on the input cut in two, three or many pieces (characters cut anywhere),
 * so the streaming state and the word-at-a-time ASCII path must agree with the definition.
 * Input: byte 0 = cut seed, rest = the text. */
#include "common/utf8.h"

#include <stdint.h>
#include <stdlib.h>

#include "tests/lib/utf8_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned seed = data[0];
    data++, size--;
    int want = utf8_ref_valid(data, size);
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
