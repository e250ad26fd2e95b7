/* Zero-allocation JSON scanner for the per-frame messages (Twilio media, OpenAI audio deltas):
 * validates a whole document strictly (RFC 8259) and tokenizes it into a caller-provided array,
 * so the audio path reads fields without building a tree or allocating. Messages that are rare
 * or that must be built go through jansson instead. */
#ifndef VB_COMMON_JSON_SCAN_H
#define VB_COMMON_JSON_SCAN_H

#include <stddef.h>
#include <stdint.h>

enum jtok_type { JTOK_OBJECT = 1, JTOK_ARRAY, JTOK_STRING, JTOK_NUMBER, JTOK_TRUE, JTOK_FALSE,
                 JTOK_NULL };

/* One value. For strings, [start, end) is the content between the quotes (still escaped);
 * for containers it spans the brackets. Object members are stored key token, value token. */
struct json_tok {
    uint8_t type;
    uint8_t escaped;  /* strings: contains a backslash escape */
    uint32_t start;
    uint32_t end;
    uint32_t count;   /* containers: members (objects) or elements (arrays) */
    uint32_t skip;    /* tokens this value occupies, itself included (to step to a sibling) */
};

#define JSON_SCAN_MAX_DEPTH 32

/* Scans n bytes of s. Returns the number of tokens (token 0 is the root), -EINVAL for malformed
 * JSON (including trailing garbage, bad escapes, control characters, invalid UTF-8, nesting
 * deeper than JSON_SCAN_MAX_DEPTH), -E2BIG if it needs more than max tokens, -EOVERFLOW if the
 * document is 4 GiB or more. */
int json_scan(const char *s, size_t n, struct json_tok *toks, size_t max);

/* The value of member key (plain ASCII, compared with the unescaped member name) of the object
 * at index obj, or -1 if obj is not an object or has no such member. */
int json_get(const char *s, const struct json_tok *toks, int obj, const char *key);

/* The string at index i, unescaped into out (capacity cap, NUL-terminated); *len gets its
 * length. Returns 0, -EINVAL if it is not a string, -ENOSPC if it does not fit. Strings
 * without escapes are a plain copy; use json_str_view to avoid even that. */
int json_str(const char *s, const struct json_tok *toks, int i, char *out, size_t cap,
             size_t *len);

/* A view of an unescaped string in place: 0 with *p and *len set, or -EINVAL if i is not a string or
 * -EAGAIN if it contains escapes (then use json_str). */
int json_str_view(const char *s, const struct json_tok *toks, int i, const char **p, size_t *len);

/* True if the string at i equals the plain ASCII text lit. */
int json_str_eq(const char *s, const struct json_tok *toks, int i, const char *lit);

/* Integers: a JSON number, or a string holding one (Twilio sends counters as strings), that is
 * an integer in int64 range. Returns 0 or -EINVAL. */
int json_int(const char *s, const struct json_tok *toks, int i, int64_t *out);

#endif
