/* Fuzz the zero-allocation JSON scanner: no crash or out-of-bounds read on any input; whatever
 * it accepts, jansson accepts too (jansson's extra refusals, \u0000 and number overflow, aside)
 * and vice versa (for inputs without a NUL byte, which jansson takes as the end of input; and for
 * nesting within JSON_SCAN_MAX_DEPTH, where jansson allows far more); every accepted string
 * unescapes. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/json_scan.h"

/* Deepest nesting of a document jansson accepted (so strings are well formed); json_scan refuses
 * more than JSON_SCAN_MAX_DEPTH on purpose, jansson allows far more. */
static int nesting(const char *s, size_t n)
{
    int depth = 0, max = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                max = depth;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return max;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct json_tok toks[512];
    const char *s = (const char *)data;
    int n = json_scan(s, size, toks, 512);
    json_error_t jerr;
    json_t *j = json_loadb(s, size, JSON_DECODE_ANY, &jerr);
    int skip = memchr(data, 0, size) != NULL ||
               j == NULL && (strstr(jerr.text, "overflow") || strstr(jerr.text, "too big") ||
                                   strstr(jerr.text, "NUL"));
    if (j != NULL && n == -EINVAL && nesting(s, size) > JSON_SCAN_MAX_DEPTH)
        skip = 1;
    if (!skip && n != -E2BIG && (n > 0) != (j != NULL))
        abort();
    json_decref(j);
    for (int i = 0; i < n; i++) {
        if (toks[i].type == JTOK_STRING) {
            char out[4096];
            size_t len;
            int rc = json_str(s, toks, i, out, sizeof out, &len);
            if (rc != 0 && rc != -ENOSPC)
                abort();
        }
        if (toks[i].type == JTOK_OBJECT)
            (void)json_get(s, toks, i, "type");
        int64_t v;
        (void)json_int(s, toks, i, &v);
    }
    return 0;
}
