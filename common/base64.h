/* RFC 4648 base64 (standard alphabet, '=' padding): an encoder and a strict decoder that
 * rejects bad characters, bad padding and impossible lengths instead of guessing. Neither
 * allocates: callers size the output with the *_len helpers. Used per audio frame. */
#ifndef VB_COMMON_BASE64_H
#define VB_COMMON_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Characters base64_encode writes for n bytes (padding included, no NUL). */
static inline size_t base64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

/* Most bytes base64_decode can produce from n characters. */
static inline size_t base64_decoded_max(size_t n)
{
    return n / 4 * 3;
}

/* Writes base64_encoded_len(n) characters to out (no NUL) and returns that count. */
size_t base64_encode(const uint8_t *in, size_t n, char *out);

/* Decodes n characters of in into out (capacity out_cap) and stores the byte count in *out_len.
 * Returns 0, -EINVAL for malformed input (character outside the alphabet, length not a multiple
 * of 4, '=' anywhere but the last one or two places, non-zero bits under the padding), or
 * -ENOSPC if out_cap is too small. On error *out_len is 0 and out's contents are unspecified. */
int base64_decode(const char *in, size_t n, uint8_t *out, size_t out_cap, size_t *out_len);

/* Which code does the bulk of the work, process-wide (for tests and benchmarks; results are the
 * same either way): "auto" (the default: AVX2 if the CPU has it), "generic" (tables only) or
 * "avx2". Returns 0, -EINVAL for an unknown name, -ENOTSUP if the CPU lacks AVX2. */
int base64_select_kernel(const char *name);
const char *base64_kernel_name(void);

#endif
