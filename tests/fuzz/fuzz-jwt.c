/* Fuzz target for common/jwt: arbitrary bytes as a token, verified with a fixed key. Checks
 * memory safety, that only the documented errors come back, that a failure leaves no claims,
 * and that the base64url codec round-trips whatever it accepts. */
#include "common/jwt.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jwt_options o = {.key = "test-secret", .key_len = 11, .now_s = 1700001000,
                            .leeway_s = 30};
    struct jwt_claims c;
    const char *why = NULL;
    int r = jwt_verify((const char *)data, size, &o, &c, &why);
    if (why == NULL)
        abort();
    if (r != 0 && r != -E2BIG && r != -EINVAL && r != -ENOTSUP && r != -EBADMSG &&
        r != -EKEYEXPIRED && r != -ETIME)
        abort();
    if (r != 0 && c.subject[0] != '\0')
        abort();
    if (r == 0 && strlen(c.subject) >= sizeof c.subject)
        abort();
    static uint8_t out[JWT_MAX_BYTES];
    static char enc[JWT_MAX_BYTES * 2];
    size_t n;
    if (size <= JWT_MAX_BYTES && base64url_decode((const char *)data, size, out, sizeof out, &n) == 0) {
        size_t m = base64url_encode(out, n, enc);
        if (m != size || memcmp(enc, data, size) != 0)
            abort(); /* strict decoding: one encoding per byte string */
    }
    return 0;
}
