/* Fuzz target for common/twilio_signature: the input is a URL, a NUL, a form body and a NUL, then
 * a signature. Checks memory safety of the URL variants and the JSON variant's query scan, that
 * only documented errors come back, and that a signature we computed always verifies. */
#include "common/twilio_signature.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 3);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = buf[size + 2] = '\0';
    const char *url = buf;
    const char *body = url + strlen(url) + 1;
    const char *sig = body + strlen(body) + 1;
    if (sig > buf + size + 2)
        sig = buf + size + 2;
    static struct form_field fields[TWILIO_SIGNATURE_PARAMS_MAX + 8];
    size_t blen = strlen(body), n = 0;
    char *arena = malloc(FORM_ARENA_SIZE(blen));
    if (arena != NULL &&
        form_parse(body, blen, fields, sizeof fields / sizeof fields[0], arena,
                   FORM_ARENA_SIZE(blen), &n) == 0) {
        int r = twilio_signature_verify("12345", 5, url, fields, n, sig,
                                        TWILIO_SIG_TRAILING_SLASH);
        if (r != 0 && r != -EACCES && r != -EINVAL && r != -E2BIG)
            abort();
        char mine[TWILIO_SIGNATURE_LEN + 1];
        if (r != -EINVAL && r != -E2BIG &&
            twilio_signature_compute("12345", 5, url, fields, n, true, mine) == 0 &&
            twilio_signature_verify("12345", 5, url, fields, n, mine, 0) != 0)
            abort();
        r = twilio_signature_verify_json("12345", 5, url, body, blen, sig, 0);
        if (r != 0 && r != -EACCES && r != -EINVAL && r != -EBADMSG)
            abort();
    }
    free(arena);
    free(buf);
    return 0;
}
