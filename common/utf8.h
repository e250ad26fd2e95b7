/* UTF-8 validation for WebSocket text (RFC 6455 5.6, 8.1: a text message that is not UTF-8 fails
 * the connection), streaming so that a message may arrive in pieces split anywhere, even inside a
 * character. Strict RFC 3629: no overlong forms, no surrogates (U+D800-DFFF), nothing above
 * U+10FFFF. ASCII, which is nearly all of what the bridge carries (JSON with base64 audio), is
 * checked many bytes at a time. */
#ifndef VB_COMMON_UTF8_H
#define VB_COMMON_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Checks the next n bytes of a text. *state is 0 at the start of a text and carries a character
 * cut short by the end of a piece into the next. Returns 0 (valid so far) or -EILSEQ (invalid;
 * *state is then meaningless). */
int utf8_check(uint32_t *state, const uint8_t *p, size_t n);

/* After the last piece: true when no character was left unfinished. */
static inline int utf8_check_done(uint32_t state)
{
    return state == 0;
}

/* A whole text at once: 0 or -EILSEQ. */
int utf8_validate(const uint8_t *p, size_t n);

#endif
