/* base64 fuzz target: arbitrary input to the strict decoder (with exactly sized buffers, so any
 * write past them is caught), which must re-encode to the same text whenever it accepts, and an
 * encode -> decode round trip of the same bytes. */
#include "common/base64.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void *alloc_exact(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        abort();
    return p;
}

/* Decodes with capacity cap; returns the decoder's result after checking its contract. */
static int decode_checked(const char *in, size_t n, size_t cap)
{
    uint8_t *out = alloc_exact(cap);
    size_t len = 99;
    int rc = base64_decode(in, n, out, cap, &len);
    if (rc != 0 && rc != -EINVAL && rc != -ENOSPC)
        abort();
    if (rc != 0 && len != 0)
        abort();
    if (rc == 0) {
        /* Strict means canonical: the only text that decodes to these bytes is the input. */
        if (len > cap || base64_encoded_len(len) != n)
            abort();
        char *again = alloc_exact(n);
        if (base64_encode(out, len, again) != n || memcmp(again, in, n) != 0)
            abort();
        free(again);
    }
    free(out);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t max = base64_decoded_max(size);

    /* Enough room: never -ENOSPC. A smaller room taken from the input: never a write past it. */
    int rc = decode_checked(text, size, max);
    if (rc == -ENOSPC)
        abort();
    if (size > 0) {
        int small = decode_checked(text, size, data[0] % (max + 1));
        if (rc == -EINVAL && small == 0)
            abort();
    }

    char *enc = alloc_exact(base64_encoded_len(size));
    uint8_t *back = alloc_exact(size);
    size_t elen = base64_encode(data, size, enc), len;
    if (elen != base64_encoded_len(size))
        abort();
    if (base64_decode(enc, elen, back, size, &len) != 0 || len != size ||
        memcmp(back, data, size) != 0)
        abort();
    free(back);
    free(enc);
    return 0;
}
