/* UTF-8 by its definition (RFC 3629), slow and plain: decode each character and check its value.
 * The reference common/utf8 is held to by its unit tests and fuzz targets. Header-only because
 * fuzz targets link no test library. */
#ifndef VB_TESTS_LIB_UTF8_REF_H
#define VB_TESTS_LIB_UTF8_REF_H

#include <stddef.h>
#include <stdint.h>

/* 1 if p[0..n) is valid UTF-8, else 0. */
static inline int utf8_ref_valid(const uint8_t *p, size_t n)
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

#endif
