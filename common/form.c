/* Form-urlencoded parsing: one pass over the input, splitting on '&' and the first '=' of each
 * pair, decoding into the arena as it goes. Strict on escapes because the same decoded values
 * feed the X-Twilio-Signature check, where a lenient guess would sign something Twilio did not. */
#include "common/form.h"

#include "common/text.h"

#include <errno.h>
#include <string.h>

/* Decodes in[0..len) to out (room checked by the caller: decoded <= len) and NUL-terminates.
 * Returns the decoded length or -EINVAL. */
static long decode(const char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '\0')
            return -EINVAL; /* decoded strings are exact C strings */
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (len - i < 3)
                return -EINVAL;
            int hi = text_hex_value(in[i + 1]), lo = text_hex_value(in[i + 2]);
            if (hi < 0 || lo < 0 || (hi | lo) == 0)
                return -EINVAL;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
}

int form_parse(const char *in, size_t len, struct form_field *fields, size_t max_fields,
               char *arena, size_t arena_cap, size_t *n_fields)
{
    size_t n = 0, used = 0, pos = 0;
    int err = 0;
    *n_fields = 0;
    while (pos < len) {
        const char *pair = in + pos;
        const char *amp = memchr(pair, '&', len - pos);
        size_t pair_len = amp ? (size_t)(amp - pair) : len - pos;
        pos += pair_len + (amp ? 1 : 0);
        if (pair_len == 0)
            continue;
        if (n == max_fields) {
            err = -E2BIG;
            goto fail;
        }
        const char *eq = memchr(pair, '=', pair_len);
        size_t name_len = eq ? (size_t)(eq - pair) : pair_len;
        const char *value = eq ? eq + 1 : pair + pair_len;
        size_t value_len = pair_len - name_len - (eq ? 1 : 0);
        /* Decoded text is never longer than its input; +2 for the NULs. */
        if (name_len + value_len + 2 > arena_cap - used) {
            err = -ENOSPC;
            goto fail;
        }
        char *name_out = arena + used;
        long nl = decode(pair, name_len, name_out);
        if (nl < 0) {
            err = (int)nl;
            goto fail;
        }
        used += (size_t)nl + 1;
        char *value_out = arena + used;
        long vl = decode(value, value_len, value_out);
        if (vl < 0) {
            err = (int)vl;
            goto fail;
        }
        used += (size_t)vl + 1;
        fields[n++] = (struct form_field){name_out, value_out, (size_t)nl, (size_t)vl};
    }
    *n_fields = n;
    return 0;
fail:
    return err;
}

const char *form_get(const struct form_field *fields, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(fields[i].name, name) == 0)
            return fields[i].value;
    return NULL;
}
