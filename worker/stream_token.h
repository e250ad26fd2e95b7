/* Per-call media-stream tokens: the TwiML we answer carries <Parameter name="streamToken">,
 * an HMAC-SHA256 over the call id and an expiry, and the media stream's "start" message must
 * bring it back in customParameters for the same call id before it is served. So a stream
 * belongs to a call we answered, even if the upgrade's signature were replayed.
 *
 * Token text: "<expiry Unix seconds>.<base64url(HMAC-SHA256(key, "vb-stream-v1\n" call_id
 * "\n" expiry))>". Key: HMAC-SHA256(TWILIO_AUTH_TOKEN, "voicebridge stream token key v1"), so
 * every node and worker sharing the auth token accepts the others' tokens, and no new secret
 * has to be distributed; rotating the auth token invalidates tokens in flight (they live
 * minutes). */
#ifndef VB_WORKER_STREAM_TOKEN_H
#define VB_WORKER_STREAM_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define STREAM_TOKEN_PARAM "streamToken"
#define STREAM_TOKEN_MAX 80 /* text, NUL included */
#define STREAM_TOKEN_CALL_ID_MAX 128

struct stream_token_key {
    uint8_t k[32];
};

/* Derives the key from the auth token. Returns 0 or -EIO. */
int stream_token_key_derive(struct stream_token_key *key, const char *auth_token, size_t len);

/* Writes the token for call_id, valid until expires_s, into out. Returns 0, -EINVAL (empty or
 * too long call id, negative expiry) or -EIO. */
int stream_token_make(const struct stream_token_key *key, const char *call_id, int64_t expires_s,
                      char out[STREAM_TOKEN_MAX]);

/* Checks token (NULL: missing) for call_id at now_s. Returns 0, -ENOENT (missing),
 * -EINVAL (malformed), -EACCES (not made with this key for this call id and expiry) or
 * -EKEYEXPIRED (now_s >= expiry). The MAC is compared in constant time. */
int stream_token_check(const struct stream_token_key *key, const char *call_id, const char *token,
                       int64_t now_s);

/* A static one-line description of a stream_token_check result, for a close reason. */
const char *stream_token_error(int rc);

#endif
