/* Keyed hashes and digests for the request and token checks (Twilio signatures, JWT HS256,
 * stream tokens): the project's mbedTLS md adapter, so mbedTLS types stay in hmac.c. Also the
 * constant-time comparison every secret-derived value must be compared with. */
#ifndef VB_COMMON_HMAC_H
#define VB_COMMON_HMAC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HMAC_SHA1_LEN 20
#define HMAC_SHA256_LEN 32

/* out gets the MAC. Return 0, or -EIO if mbedTLS refuses (never for valid arguments). */
int hmac_sha1(const void *key, size_t key_len, const void *msg, size_t len,
              uint8_t out[HMAC_SHA1_LEN]);
int hmac_sha256(const void *key, size_t key_len, const void *msg, size_t len,
                uint8_t out[HMAC_SHA256_LEN]);

/* Incremental HMAC-SHA1 over several pieces (a URL and the form parameters after it) without
 * joining them: init, update any number of times, finish. Free with hmac_sha1_stream_free
 * (also after finish). Opaque storage so callers need no mbedTLS header. */
struct hmac_stream {
    _Alignas(16) unsigned char opaque[512];
    bool live;
};
int hmac_sha1_stream_init(struct hmac_stream *s, const void *key, size_t key_len);
void hmac_stream_update(struct hmac_stream *s, const void *data, size_t len);
int hmac_stream_finish(struct hmac_stream *s, uint8_t *out);
void hmac_stream_free(struct hmac_stream *s);

/* SHA-256 of msg. Returns 0 or -EIO. */
int sha256_digest(const void *msg, size_t len, uint8_t out[32]);

/* True when a and b (n bytes each) are equal; the time taken depends on n only. */
bool hmac_equal(const void *a, const void *b, size_t n);

#endif
