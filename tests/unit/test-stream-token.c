/* worker/stream_token: a token checks for its call id until its expiry and for nothing else;
 * another key, a changed expiry, malformed and missing tokens are refused; the key derivation
 * is pinned to an independent computation (Python hmac). */
#include "worker/stream_token.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "testing.h"

TEST(stream_token_round_trip)
{
    struct stream_token_key k, other;
    CHECK_EQ(stream_token_key_derive(&k, "12345", 5), 0);
    CHECK_EQ(stream_token_key_derive(&other, "12346", 5), 0);
    char t[STREAM_TOKEN_MAX];
    CHECK_EQ(stream_token_make(&k, "call-7", 1700000300, t), 0);
    /* python3: hmac.new(hmac.new(b"12345", b"voicebridge stream token key v1", sha256).digest(),
     *   b"vb-stream-v1\ncall-7\n1700000300", sha256), base64url without padding */
    CHECK_MSG(strcmp(t, "1700000300.iqRVWBN6PtGskxTKhaHKj7XQWgkWRpINP2OkwUPQZ4I") == 0, "%s", t);
    CHECK_EQ(stream_token_check(&k, "call-7", t, 1700000000), 0);
    CHECK_EQ(stream_token_check(&k, "call-7", t, 1700000299), 0);
    CHECK_EQ(stream_token_check(&k, "call-7", t, 1700000300), -EKEYEXPIRED);
    CHECK_EQ(stream_token_check(&k, "call-8", t, 1700000000), -EACCES);
    CHECK_EQ(stream_token_check(&k, "call-", t, 1700000000), -EACCES);
    CHECK_EQ(stream_token_check(&other, "call-7", t, 1700000000), -EACCES);
    /* a later expiry under the same MAC */
    char moved[STREAM_TOKEN_MAX];
    snprintf(moved, sizeof moved, "1800000300%s", strchr(t, '.'));
    CHECK_EQ(stream_token_check(&k, "call-7", moved, 1700000000), -EACCES);
}

TEST(stream_token_malformed)
{
    struct stream_token_key k;
    CHECK_EQ(stream_token_key_derive(&k, "12345", 5), 0);
    CHECK_EQ(stream_token_check(&k, "c", NULL, 0), -ENOENT);
    CHECK_EQ(stream_token_check(&k, "c", "", 0), -ENOENT);
    const char *bad[] = {
        "1700000300",
        ".iqRVWBN6PtGskxTKhaHKj7XQWgkWRpINP2OkwUPQZ4I",
        "01700000300.iqRVWBN6PtGskxTKhaHKj7XQWgkWRpINP2OkwUPQZ4I",
        "-1.iqRVWBN6PtGskxTKhaHKj7XQWgkWRpINP2OkwUPQZ4I",
        "1700000300.iqRVWBN6PtGskxTKhaHKj7XQWgkWRpINP2OkwUPQZ4",
        "1700000300.iqRVWBN6PtGskxTKhaHKj7XQWgkWRpINP2OkwUPQZ4IA",
        "1700000300.iqRVWBN6PtGskxTKhaHKj7XQWgkWRpINP2Okw+PQZ4I",
        "1700000300.iqRVWBN6PtGskxTKhaHKj7XQWgkWRpINP2OkwUPQZ4I=",
        "9999999999999999999.iqRVWBN6PtGskxTKhaHKj7XQWgkWRpINP2OkwUPQZ4I",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(stream_token_check(&k, "call-7", bad[i], 0) == -EINVAL, "case %zu", i);
    /* no call id, or one that could not have been given a token */
    CHECK_EQ(stream_token_check(&k, NULL, "1.AAAA", 0), -EINVAL);
    CHECK_EQ(stream_token_check(&k, "a\nb", "1.AAAA", 0), -EINVAL);
    char t[STREAM_TOKEN_MAX];
    CHECK_EQ(stream_token_make(&k, "", 5, t), -EINVAL);
    CHECK_EQ(stream_token_make(&k, "x", -1, t), -EINVAL);
    CHECK(strcmp(stream_token_error(-EKEYEXPIRED), "stream token expired") == 0);
}
