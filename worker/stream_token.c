/* Stream tokens: the MAC input names a version and separates its fields with '\n' (which
 * neither a call id nor a decimal number can contain), so no two (call id, expiry) pairs share
 * an input. */
#include "worker/stream_token.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/hmac.h"
#include "common/jwt.h"

static const char key_label[] = "voicebridge stream token key v1";

int stream_token_key_derive(struct stream_token_key *key, const char *auth_token, size_t len)
{
    return hmac_sha256(auth_token, len, key_label, sizeof key_label - 1, key->k);
}

static int mac_of(const struct stream_token_key *key, const char *call_id, int64_t expires_s,
                  uint8_t mac[HMAC_SHA256_LEN])
{
    char msg[STREAM_TOKEN_CALL_ID_MAX + 64];
    int n = snprintf(msg, sizeof msg, "vb-stream-v1\n%s\n%" PRId64, call_id, expires_s);
    if (n < 0 || (size_t)n >= sizeof msg)
        return -EINVAL;
    return hmac_sha256(key->k, sizeof key->k, msg, (size_t)n, mac);
}

static int call_id_ok(const char *call_id)
{
    size_t n = call_id ? strlen(call_id) : 0;
    return n > 0 && n < STREAM_TOKEN_CALL_ID_MAX && strchr(call_id, '\n') == NULL;
}

int stream_token_make(const struct stream_token_key *key, const char *call_id, int64_t expires_s,
                      char out[STREAM_TOKEN_MAX])
{
    uint8_t mac[HMAC_SHA256_LEN];
    if (!call_id_ok(call_id) || expires_s < 0)
        return -EINVAL;
    int rc = mac_of(key, call_id, expires_s, mac);
    if (rc != 0)
        return rc;
    int n = snprintf(out, STREAM_TOKEN_MAX, "%" PRId64 ".", expires_s);
    base64url_encode(mac, sizeof mac, out + n); /* 43 characters: fits STREAM_TOKEN_MAX */
    return 0;
}

int stream_token_check(const struct stream_token_key *key, const char *call_id, const char *token,
                       int64_t now_s)
{
    if (token == NULL || token[0] == '\0')
        return -ENOENT;
    if (!call_id_ok(call_id))
        return -EINVAL;
    /* Canonical decimal: 1..18 digits, no leading zero (so one expiry has one spelling). */
    int64_t exp = 0;
    size_t i = 0;
    for (; token[i] >= '0' && token[i] <= '9'; i++) {
        if (i == 18 || (i == 1 && token[0] == '0'))
            return -EINVAL;
        exp = exp * 10 + (token[i] - '0');
    }
    if (i == 0 || token[i] != '.')
        return -EINVAL;
    const char *b64 = token + i + 1;
    uint8_t got[HMAC_SHA256_LEN + 3], want[HMAC_SHA256_LEN];
    size_t n;
    if (base64url_decode(b64, strlen(b64), got, sizeof got, &n) != 0 || n != HMAC_SHA256_LEN)
        return -EINVAL;
    if (mac_of(key, call_id, exp, want) != 0)
        return -EINVAL;
    if (!hmac_equal(got, want, HMAC_SHA256_LEN))
        return -EACCES;
    return now_s >= exp ? -EKEYEXPIRED : 0;
}

const char *stream_token_error(int rc)
{
    switch (rc) {
    case 0:
        return "ok";
    case -ENOENT:
        return "missing stream token";
    case -EINVAL:
        return "malformed stream token or call id";
    case -EKEYEXPIRED:
        return "stream token expired";
    default:
        return "stream token not valid for this call";
    }
}
