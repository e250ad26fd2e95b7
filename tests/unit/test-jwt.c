/* common/jwt: HS256 tokens made with Python's hmac/hashlib (tests' key "test-secret"): a good
 * token and its claims, exp/nbf with and without leeway, userId as subject, wrong key, wrong and
 * "none" algorithms, malformed parts, claims of the wrong type, duplicates, strict base64url. */
#include "common/jwt.h"

#include <errno.h>
#include <string.h>

#include "testing.h"

#define KEY "test-secret"
#define GOOD                                                                                   \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTQyIiwiaWF0IjoxNzAwMDAwMDAwLCJuYmYi" \
    "OjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMzYwMH0.xyfNXEhQcjlrCD1y00Xt7c1-hlJbjK81fF7w0V51xeo"
/* {"sub":"user-42","iat":1700000000,"nbf":1700000000,"exp":1700003600} */

static int verify_at(const char *tok, int64_t now, unsigned leeway, struct jwt_claims *c)
{
    struct jwt_options o = {.key = KEY, .key_len = strlen(KEY), .now_s = now, .leeway_s = leeway};
    const char *why;
    int rc = jwt_verify(tok, strlen(tok), &o, c, &why);
    CHECK(why != NULL);
    CHECK((rc == 0) == (why[0] == '\0'));
    return rc;
}

static int verify(const char *tok)
{
    struct jwt_claims c;
    return verify_at(tok, 1700001000, 30, &c);
}

TEST(jwt_good_token_claims)
{
    struct jwt_claims c;
    CHECK_EQ(verify_at(GOOD, 1700001000, 30, &c), 0);
    CHECK(strcmp(c.subject, "user-42") == 0);
    CHECK(c.has_exp && c.has_nbf && c.has_iat);
    CHECK_EQ(c.exp, 1700003600);
    CHECK_EQ(c.nbf, 1700000000);
    CHECK_EQ(c.iat, 1700000000);
}

TEST(jwt_exp_and_nbf_with_leeway)
{
    struct jwt_claims c;
    CHECK_EQ(verify_at(GOOD, 1700003599, 0, &c), 0);
    CHECK_EQ(verify_at(GOOD, 1700003600, 0, &c), -EKEYEXPIRED); /* exp itself is too late */
    CHECK_EQ(c.subject[0], '\0');                               /* nothing leaks on failure */
    CHECK_EQ(verify_at(GOOD, 1700003629, 30, &c), 0);
    CHECK_EQ(verify_at(GOOD, 1700003630, 30, &c), -EKEYEXPIRED);
    CHECK_EQ(verify_at(GOOD, 1700000000, 0, &c), 0);
    CHECK_EQ(verify_at(GOOD, 1699999999, 0, &c), -ETIME);
    CHECK_EQ(verify_at(GOOD, 1699999970, 30, &c), 0);
    CHECK_EQ(verify_at(GOOD, 1699999969, 30, &c), -ETIME);
}

TEST(jwt_user_id_as_subject)
{
    struct jwt_claims c;
    /* {"userId":1234,"exp":1700003600} */
    CHECK_EQ(verify_at("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VySWQiOjEyMzQsImV4cCI6MTcwMD"
                       "AwMzYwMH0.1djeVYaCV36z6x01ismpj2LJE2FxnhTZ7WzjUVPYFew",
                       1700001000, 0, &c),
             0);
    CHECK(strcmp(c.subject, "1234") == 0);
    CHECK(!c.has_nbf);
    /* {"userId":"u-7","exp":1700003600.75}: a fractional NumericDate is floored */
    CHECK_EQ(verify_at("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VySWQiOiJ1LTciLCJleHAiOjE3MD"
                       "AwMDM2MDAuNzV9.vxb1YtIy6j4Ru-6-yuO3ZAd3hkHxmjKaWezfPP7U8VU",
                       1700001000, 0, &c),
             0);
    CHECK(strcmp(c.subject, "u-7") == 0);
    CHECK_EQ(c.exp, 1700003600);
}

TEST(jwt_require_exp)
{
    /* {"sub":"a"} */
    const char *tok = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhIn0.F7GEa7g2SvX3URBz07Msu"
                      "qeMykuMO_0rgKf6MVRyE_o";
    struct jwt_claims c;
    struct jwt_options o = {.key = KEY, .key_len = strlen(KEY), .now_s = 5};
    CHECK_EQ(jwt_verify(tok, strlen(tok), &o, &c, NULL), 0);
    o.require_exp = true;
    CHECK_EQ(jwt_verify(tok, strlen(tok), &o, &c, NULL), -EKEYEXPIRED);
}

TEST(jwt_wrong_signature)
{
    /* signed with "other" */
    CHECK_EQ(verify("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTQyIiwiZXhwIjoxNzAwMD"
                    "AzNjAwfQ.YURqkRzIxBwI2pfZHX2MkXRrjm-JAyTuK5J8iF5gcQI"),
             -EBADMSG);
    /* one flipped bit in every position of the signature is caught */
    char t[sizeof GOOD];
    size_t sig = strrchr(GOOD, '.') - GOOD + 1;
    for (size_t i = sig; i < sizeof GOOD - 2; i++) {
        memcpy(t, GOOD, sizeof GOOD);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        CHECK_MSG(verify(t) == -EBADMSG, "position %zu", i);
    }
    /* a payload changed under the same signature */
    memcpy(t, GOOD, sizeof GOOD);
    t[40] = t[40] == 'a' ? 'b' : 'a';
    CHECK(verify(t) == -EBADMSG || verify(t) == -EINVAL);
    /* an empty key cannot verify a token made with another */
    struct jwt_claims c;
    struct jwt_options o = {.key = "", .key_len = 0, .now_s = 1700001000};
    CHECK_EQ(jwt_verify(GOOD, strlen(GOOD), &o, &c, NULL), -EBADMSG);
}

TEST(jwt_wrong_alg)
{
    /* HS512 header, HS256 MAC with the right key: the header alone decides, and says no. */
    CHECK_EQ(verify("eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4IiwiZXhwIjoxNzAwMDAzNjAwf"
                    "Q.qc943RNaMo-iwLQaO6RKyf3_KdQVyaryQhpPmU5B9eI"),
             -ENOTSUP);
    /* alg none, empty signature */
    CHECK_EQ(verify("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4IiwiZXhwIjoxNzAwMDAzNjAwf"
                    "Q."),
             -EINVAL);
    /* alg none with our signature appended */
    CHECK_EQ(verify("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4IiwiZXhwIjoxNzAwMDAzNjAwf"
                    "Q.xyfNXEhQcjlrCD1y00Xt7c1-hlJbjK81fF7w0V51xeo"),
             -ENOTSUP);
    /* "hs256": names are case-sensitive */
    CHECK_EQ(verify("eyJhbGciOiJoczI1NiJ9.eyJzdWIiOiJ4In0.ZXtoHmdTq3o11V3uJCOuVTbhbyCRuR58CTLJG"
                    "Bifru0"),
             -ENOTSUP);
    /* {"alg":"HS256","alg":"none"} */
    CHECK_EQ(verify("eyJhbGciOiJIUzI1NiIsImFsZyI6Im5vbmUifQ.eyJleHAiOjE3MDAwMDM2MDB9.PmQMEjPAS"
                    "bPEDiDvD5hCBzu2Aj3bwdmS94jprwbPkFY"),
             -EINVAL);
    /* crit extensions we do not understand */
    CHECK_EQ(verify("eyJhbGciOiJIUzI1NiIsImNyaXQiOlsiYjY0Il19.eyJzdWIiOiJ4IiwiZXhwIjoxNzAwMDAzN"
                    "jAwfQ.0S3MkCC_OTct-8i-xLNSJzWeythJNLh4l35QsKrSMDw"),
             -EINVAL);
}

TEST(jwt_claim_types)
{
    /* exp as a string */
    CHECK_EQ(verify("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4IiwiZXhwIjoiMTcwMDAwMzYwM"
                    "CJ9.Ndzuxm_S_F4zEmFMxJGwvNqyyBBcJ6V2y2Y3NtxPA8Y"),
             -EINVAL);
    /* sub as a number */
    CHECK_EQ(verify("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOjUsImV4cCI6MTcwMDAwMzYwMH0.6"
                    "S0TanITvjod6ZbqgsVpd5yo9C1bC5XRTErNOQWONHM"),
             -EINVAL);
    /* sub twice */
    CHECK_EQ(verify("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhIiwic3ViIjoiYiIsImV4cCI6M"
                    "TcwMDAwMzYwMH0.CTCoseKRTyn9-EAkF-apGbsunLUW-pWbA6iff1KSDc0"),
             -EINVAL);
    /* payload [1,2] */
    CHECK_EQ(verify("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.WzEsMl0.ZWLnuHW1Cf1uiZm0-vbg8FqxlvPLaZ"
                    "sxa1avcZNlUOg"),
             -EINVAL);
}

TEST(jwt_malformed)
{
    const char *bad[] = {
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "..",
        GOOD ".",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9..xyfNXEhQcjlrCD1y00Xt7c1-hlJbjK81fF7w0V51xeo",
        /* padding is not base64url */
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhIn0=.F7GEa7g2SvX3URBz07MsuqeMykuMO_0rgKf6"
        "MVRyE_o",
        /* standard alphabet */
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhIn0.F7GEa7g2SvX3URBz07MsuqeMykuMO/0rgKf6M"
        "VRyE/o",
        /* a space */
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9 .eyJzdWIiOiJhIn0.F7GEa7g2SvX3URBz07MsuqeMykuMO_0rgKf6"
        "MVRyE_o",
        /* header {"alg":"HS256" (truncated JSON) */
        "eyJhbGciOiJIUzI1NiI.eyJzdWIiOiJhIn0.F7GEa7g2SvX3URBz07MsuqeMykuMO_0rgKf6MVRyE_o",
        /* signature one character short */
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhIn0.F7GEa7g2SvX3URBz07MsuqeMykuMO_0rgKf6"
        "MVRyE_",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(verify(bad[i]) == -EINVAL, "case %zu gave %d", i, verify(bad[i]));
    /* too long */
    static char big[JWT_MAX_BYTES + 2];
    memset(big, 'A', sizeof big - 1);
    CHECK_EQ(verify(big), -E2BIG);
    /* NUL inside is just a bad character */
    struct jwt_claims c;
    struct jwt_options o = {.key = KEY, .key_len = strlen(KEY), .now_s = 1700001000};
    char withnul[sizeof GOOD];
    memcpy(withnul, GOOD, sizeof GOOD);
    withnul[5] = '\0';
    CHECK_EQ(jwt_verify(withnul, sizeof GOOD - 1, &o, &c, NULL), -EINVAL);
}

TEST(jwt_base64url_strict)
{
    uint8_t out[16];
    size_t n;
    CHECK_EQ(base64url_decode("", 0, out, sizeof out, &n), 0);
    CHECK_EQ(n, 0);
    CHECK_EQ(base64url_decode("-_8", 3, out, sizeof out, &n), 0);
    CHECK_EQ(n, 2);
    CHECK(out[0] == 0xfb && out[1] == 0xff);
    CHECK_EQ(base64url_decode("-_9", 3, out, sizeof out, &n), -EINVAL); /* bits under the end */
    CHECK_EQ(base64url_decode("QQ", 2, out, sizeof out, &n), 0);
    CHECK_EQ(base64url_decode("QR", 2, out, sizeof out, &n), -EINVAL);
    CHECK_EQ(base64url_decode("QQ==", 4, out, sizeof out, &n), -EINVAL);
    CHECK_EQ(base64url_decode("QUJDR", 5, out, sizeof out, &n), -EINVAL); /* 4k+1 */
    CHECK_EQ(base64url_decode("QUJD", 4, out, 2, &n), -ENOSPC);
    char enc[32];
    uint8_t in[] = {0xfb, 0xff, 0x00, 0x41};
    CHECK_EQ(base64url_encode(in, 4, enc), 6);
    CHECK(strcmp(enc, "-_8AQQ") == 0);
    CHECK_EQ(base64url_decode(enc, 6, out, sizeof out, &n), 0);
    CHECK(n == 4 && memcmp(out, in, 4) == 0);
}
