/* Small text helpers shared by the parsers of outside input (JSON, forms, URLs, TwiML): hex
 * digits for percent-decoding, and strict UTF-8 (no overlong forms, no surrogates, nothing
 * above U+10FFFF). One copy, so every parser agrees on what valid text is. */
#ifndef VB_COMMON_TEXT_H
#define VB_COMMON_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* The value of a hex digit (either case), or -1. */
int text_hex_value(char c);

/* Length (1-4) of the valid UTF-8 sequence at s, reading at most avail bytes, or 0 if it is not
 * valid; *cp (may be NULL) gets the code point. avail must be at least 1. */
size_t text_utf8_len(const unsigned char *s, size_t avail, uint32_t *cp);

#endif
