/* mbedTLS md adapter: one-shot and streamed HMACs and SHA-256 for the signature and token
 * checks, mbedTLS errors mapped to -EIO (they only happen for arguments we never pass). */
#include "common/hmac.h"

#include <errno.h>
#include <string.h>

#include <mbedtls/md.h>
#include <mbedtls/sha256.h>

_Static_assert(sizeof(mbedtls_md_context_t) <= sizeof(((struct hmac_stream *)0)->opaque),
               "hmac_stream too small for mbedtls_md_context_t");

static int hmac_any(mbedtls_md_type_t type, const void *key, size_t key_len, const void *msg,
                    size_t len, uint8_t *out)
{
    const mbedtls_md_info_t *info = mbedtls_md_info_from_type(type);
    if (info == NULL)
        return -EIO;
    return mbedtls_md_hmac(info, key, key_len, msg, len, out) == 0 ? 0 : -EIO;
}

int hmac_sha1(const void *key, size_t key_len, const void *msg, size_t len,
              uint8_t out[HMAC_SHA1_LEN])
{
    return hmac_any(MBEDTLS_MD_SHA1, key, key_len, msg, len, out);
}

int hmac_sha256(const void *key, size_t key_len, const void *msg, size_t len,
                uint8_t out[HMAC_SHA256_LEN])
{
    return hmac_any(MBEDTLS_MD_SHA256, key, key_len, msg, len, out);
}

static mbedtls_md_context_t *ctx_of(struct hmac_stream *s)
{
    return (mbedtls_md_context_t *)(void *)s->opaque;
}

int hmac_sha1_stream_init(struct hmac_stream *s, const void *key, size_t key_len)
{
    mbedtls_md_context_t *ctx = ctx_of(s);
    mbedtls_md_init(ctx);
    s->live = true;
    const mbedtls_md_info_t *info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA1);
    if (info == NULL || mbedtls_md_setup(ctx, info, 1) != 0 ||
        mbedtls_md_hmac_starts(ctx, key, key_len) != 0) {
        hmac_stream_free(s);
        return -EIO;
    }
    return 0;
}

void hmac_stream_update(struct hmac_stream *s, const void *data, size_t len)
{
    if (s->live && len > 0)
        mbedtls_md_hmac_update(ctx_of(s), data, len); /* cannot fail once set up */
}

int hmac_stream_finish(struct hmac_stream *s, uint8_t *out)
{
    if (!s->live)
        return -EIO;
    return mbedtls_md_hmac_finish(ctx_of(s), out) == 0 ? 0 : -EIO;
}

void hmac_stream_free(struct hmac_stream *s)
{
    if (s->live)
        mbedtls_md_free(ctx_of(s)); /* wipes the key material it holds */
    s->live = false;
}

int sha256_digest(const void *msg, size_t len, uint8_t out[32])
{
    return mbedtls_sha256_ret(msg, len, out, 0) == 0 ? 0 : -EIO;
}

bool hmac_equal(const void *a, const void *b, size_t n)
{
    const volatile unsigned char *x = a, *y = b;
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= x[i] ^ y[i];
    return d == 0;
}
