/* Verification of compact JWTs signed with HS256 (RFC 7519/7515), the call API's bearer tokens:
 * strict base64url, header alg exactly "HS256" (so "none" and every other algorithm is refused),
 * signature compared in constant time, exp and nbf honoured with a leeway, and only the claims
 * the API uses returned. Nothing is allocated; input beyond JWT_MAX_BYTES is refused. */
#ifndef VB_COMMON_JWT_H
#define VB_COMMON_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JWT_MAX_BYTES 4096  /* whole compact token */
#define JWT_SUBJECT_MAX 128 /* bytes of sub/userId, NUL included */

struct jwt_options {
    const void *key; /* the HMAC secret (JWT_SECRET) */
    size_t key_len;
    int64_t now_s;     /* the current Unix time */
    unsigned leeway_s; /* clock skew allowed on exp and nbf */
    bool require_exp;  /* a token without exp is refused */
};

struct jwt_claims {
    /* "sub", or when absent "userId" (a string or an integer, as text); "" when neither. */
    char subject[JWT_SUBJECT_MAX];
    int64_t exp, nbf, iat; /* NumericDates, whole seconds; valid when has_* */
    bool has_exp, has_nbf, has_iat;
};

/* Verifies token[0..len) (no "Bearer " prefix). Returns 0 and fills *out, or:
 *   -E2BIG       longer than JWT_MAX_BYTES
 *   -EINVAL      malformed: not three strict base64url parts, not JSON objects, a claim of the
 *                wrong type (exp/nbf/iat not numbers, sub not a string), a duplicated claim,
 *                an unknown "crit" header
 *   -ENOTSUP     the header's alg is not HS256
 *   -EBADMSG     the signature does not match
 *   -EKEYEXPIRED now >= exp + leeway (or exp missing with require_exp)
 *   -ETIME       not valid yet: now + leeway < nbf
 * *why gets a short static reason (for a log line; it never contains token content).
 * The signature is checked before any claim is read. */
int jwt_verify(const char *token, size_t len, const struct jwt_options *opt,
               struct jwt_claims *out, const char **why);

/* Decodes unpadded base64url (RFC 4648 §5) strictly: alphabet A-Z a-z 0-9 - _, no '=', no
 * length of 4k+1, zero bits under the last character. Returns 0 and *out_len, -EINVAL or
 * -ENOSPC. Exposed for the tests and the stream tokens. */
int base64url_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *out_len);

/* Encodes n bytes as unpadded base64url into out (room for (4n+2)/3 chars + NUL). Returns
 * the length written (without the NUL). */
size_t base64url_encode(const uint8_t *in, size_t n, char *out);

#endif
