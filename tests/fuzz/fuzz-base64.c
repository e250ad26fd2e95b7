/* base64 fuzz target: arbitrary input to the strict decoder (with exactly sized buffers, so any
 * write past them is caught), which must re-encode to the same text whenever it accepts, an
 * encode -> decode round trip of the same bytes, and (on a CPU with AVX2) the vector kernels
 * against the tables: same text, same bytes, same verdict, for the input as it is and mapped
 * onto the alphabet (so long valid texts with a few bad characters are common). */
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

static int decode_with(const char *kernel, const char *in, size_t n, uint8_t *out, size_t cap,
                       size_t *len)
{
    if (base64_select_kernel(kernel) != 0)
        abort();
    return base64_decode(in, n, out, cap, len);
}

static void kernels_agree(const char *text, size_t size)
{
    size_t cap = base64_decoded_max(size), lg = 1, lv = 2;
    uint8_t *g = alloc_exact(cap), *v = alloc_exact(cap);
    int rg = decode_with("generic", text, size, g, cap, &lg);
    int rv = decode_with("avx2", text, size, v, cap, &lv);
    if (rg != rv || lg != lv || (rg == 0 && memcmp(g, v, lg) != 0))
        abort();
    char *eg = alloc_exact(base64_encoded_len(size)), *ev = alloc_exact(base64_encoded_len(size));
    base64_select_kernel("generic");
    size_t ng = base64_encode((const uint8_t *)text, size, eg);
    base64_select_kernel("avx2");
    size_t nv = base64_encode((const uint8_t *)text, size, ev);
    if (ng != nv || memcmp(eg, ev, ng) != 0)
        abort();
    free(eg);
    free(ev);
    free(g);
    free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (base64_select_kernel("avx2") == 0) {
        static const char alphabet[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        kernels_agree((const char *)data, size);
        char *mapped = alloc_exact(size);
        for (size_t i = 0; i < size; i++) /* bytes 0xF0 and up stay as they are: bad ones */
            mapped[i] = data[i] >= 0xF0 ? (char)data[i] : alphabet[data[i] % 64];
        kernels_agree(mapped, size);
        free(mapped);
        base64_select_kernel("auto");
    }

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
