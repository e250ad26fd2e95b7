/* application/x-www-form-urlencoded parser for Twilio webhooks and their signature check:
 * '+' is a space, %XX is decoded, repeated keys are kept in order, and malformed input is refused
 * rather than guessed at (a bad escape, or a NUL byte, raw or escaped). Nothing is allocated:
 * the caller lends the field table and an arena that receives the decoded strings. */
#ifndef VB_COMMON_FORM_H
#define VB_COMMON_FORM_H

#include <stddef.h>

/* Decoded name and value, NUL-terminated, in the caller's arena. */
struct form_field {
    const char *name, *value;
    size_t name_len, value_len;
};

/* Arena bytes that always suffice for an input of len bytes (each field adds two NULs, and a
 * field takes at least one input byte plus its '&'). */
#define FORM_ARENA_SIZE(len) ((len) + (len) / 2 + 2)

/* Parses in[0..len) into fields[0..max_fields) and the arena (strings valid while it is).
 * Empty pairs ("a=1&&b=2", a trailing '&') are skipped; "k" alone is k with an empty value.
 * Returns 0 and sets *n_fields, or: -EINVAL for a '%' not followed by two hex digits, or a NUL
 * byte (raw or %00), so every decoded string is an exact C string; -E2BIG for more than max_fields
 * pairs; -ENOSPC if arena_cap is short (never with FORM_ARENA_SIZE(len)). On error *n_fields is 0.
 */
int form_parse(const char *in, size_t len, struct form_field *fields, size_t max_fields,
               char *arena, size_t arena_cap, size_t *n_fields);

/* Value of the first field named `name` (exact, case-sensitive as Twilio's names are), or NULL. */
const char *form_get(const struct form_field *fields, size_t n, const char *name);

#endif
