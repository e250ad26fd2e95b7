/* common/twilio_signature against every vector of protocols.md §2.3 (Twilio's security page and
 * twilio-python's own tests) and a few made with twilio-python's RequestValidator: the port
 * variants, repeated keys, the JSON-body variant, the WebSocket trailing slash, and refusals. */
#include "common/twilio_signature.h"

#include <errno.h>
#include <string.h>

#include "testing.h"

#define TOKEN "12345"
#define TLEN 5
#define F(n, v) {n, v, sizeof n - 1, sizeof v - 1}

static const struct form_field vec_a[] = {
    F("Digits", "1234"), F("To", "+18005551212"), F("From", "+14158675310"),
    F("Caller", "+14158675310"), F("CallSid", "CA1234567890ABCDE"),
};
static const struct form_field vec_b[] = {
    F("CallSid", "CA1234567890ABCDE"), F("Digits", "1234"), F("From", "+14158675309"),
    F("To", "+18005551212"), F("Caller", "+14158675309"),
};
static const struct form_field vec_c[] = {
    F("Sid", "CA123"), F("SidAccount", "AC123"), F("Digits", "5678"), F("Digits", "1234"),
    F("Digits", "1234"),
};
#define N(a) (sizeof a / sizeof a[0])

static int verify(const char *url, const struct form_field *p, size_t n, const char *sig)
{
    return twilio_signature_verify(TOKEN, TLEN, url, p, n, sig, 0);
}

TEST(twilio_signature_vector_a)
{
    char sig[TWILIO_SIGNATURE_LEN + 1];
    const char *url = "https://example.com/myapp.php?foo=1&bar=2";
    CHECK_EQ(twilio_signature_compute(TOKEN, TLEN, url, vec_a, N(vec_a), true, sig), 0);
    CHECK_MSG(strcmp(sig, "L/OH5YylLD5NRKLltdqwSvS0BnU=") == 0, "got %s", sig);
    CHECK_EQ(verify(url, vec_a, N(vec_a), "L/OH5YylLD5NRKLltdqwSvS0BnU="), 0);
    /* one parameter missing, one changed, another token: refused */
    CHECK_EQ(verify(url, vec_a, N(vec_a) - 1, "L/OH5YylLD5NRKLltdqwSvS0BnU="), -EACCES);
    struct form_field changed[N(vec_a)];
    memcpy(changed, vec_a, sizeof changed);
    changed[0].value = "1235";
    CHECK_EQ(verify(url, changed, N(vec_a), "L/OH5YylLD5NRKLltdqwSvS0BnU="), -EACCES);
    CHECK_EQ(twilio_signature_verify("12346", 5, url, vec_a, N(vec_a),
                                     "L/OH5YylLD5NRKLltdqwSvS0BnU=", 0),
             -EACCES);
    /* missing, empty, truncated header */
    CHECK_EQ(verify(url, vec_a, N(vec_a), NULL), -EACCES);
    CHECK_EQ(verify(url, vec_a, N(vec_a), ""), -EACCES);
    CHECK_EQ(verify(url, vec_a, N(vec_a), "L/OH5YylLD5NRKLltdqwSvS0BnU"), -EACCES);
    CHECK_EQ(verify(url, vec_a, N(vec_a), "L/OH5YylLD5NRKLltdqwSvS0BnU=x"), -EACCES);
}

TEST(twilio_signature_vector_b_ports)
{
    static const struct {
        const char *url, *sig;
    } rows[] = {
        {"https://mycompany.com/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8="},
        {"https://mycompany.com:443/myapp.php?foo=1&bar=2", "kvajT1Ptam85bY51eRf/AJRuM3w="},
        {"http://mycompany.com:80/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="},
        {"http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="},
    };
    char sig[TWILIO_SIGNATURE_LEN + 1];
    for (size_t i = 0; i < N(rows); i++) {
        CHECK_EQ(twilio_signature_compute(TOKEN, TLEN, rows[i].url, vec_b, N(vec_b), true, sig),
                 0);
        CHECK_MSG(strcmp(sig, rows[i].sig) == 0, "row %zu: %s", i, sig);
        CHECK_EQ(verify(rows[i].url, vec_b, N(vec_b), rows[i].sig), 0);
    }
    /* Twilio drops the port for voice over https, keeps it elsewhere: either is accepted. */
    CHECK_EQ(verify("https://mycompany.com/myapp.php?foo=1&bar=2", vec_b, N(vec_b),
                    "kvajT1Ptam85bY51eRf/AJRuM3w="),
             0);
    CHECK_EQ(verify("https://mycompany.com:443/myapp.php?foo=1&bar=2", vec_b, N(vec_b),
                    "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
             0);
    CHECK_EQ(verify("http://mycompany.com/myapp.php?foo=1&bar=2", vec_b, N(vec_b),
                    "0ZXoZLH/DfblKGATFgpif+LLRf4="),
             0);
    /* ...but not another port, nor a signature of http for an https URL */
    CHECK_EQ(verify("http://mycompany.com:80/myapp.php?foo=1&bar=2", vec_b, N(vec_b),
                    "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
             -EACCES);
    CHECK_EQ(verify("https://mycompany.com/myapp.php?foo=1&bar=2", vec_b, N(vec_b),
                    "0ZXoZLH/DfblKGATFgpif+LLRf4="),
             -EACCES);
    /* the query is signed: reordered, it no longer matches */
    CHECK_EQ(verify("https://mycompany.com/myapp.php?bar=2&foo=1", vec_b, N(vec_b),
                    "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
             -EACCES);
}

TEST(twilio_signature_vector_c_repeated_keys)
{
    char sig[TWILIO_SIGNATURE_LEN + 1];
    const char *url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    CHECK_EQ(twilio_signature_compute(TOKEN, TLEN, url, vec_c, N(vec_c), true, sig), 0);
    CHECK_MSG(strcmp(sig, "IK+Dwps556ElfBT0I3Rgjkr1wJU=") == 0, "got %s", sig);
    CHECK_EQ(verify(url, vec_c, N(vec_c), "IK+Dwps556ElfBT0I3Rgjkr1wJU="), 0);
    /* values of one name are sorted: the input order does not matter */
    struct form_field rev[N(vec_c)];
    for (size_t i = 0; i < N(vec_c); i++)
        rev[i] = vec_c[N(vec_c) - 1 - i];
    CHECK_EQ(verify(url, rev, N(rev), "IK+Dwps556ElfBT0I3Rgjkr1wJU="), 0);
    /* a signer that kept the duplicate is accepted too */
    char keep[TWILIO_SIGNATURE_LEN + 1];
    CHECK_EQ(twilio_signature_compute(TOKEN, TLEN, url, vec_c, N(vec_c), false, keep), 0);
    CHECK(strcmp(keep, sig) != 0);
    CHECK_EQ(verify(url, vec_c, N(vec_c), keep), 0);
}

TEST(twilio_signature_vector_d_json_body)
{
    static const char body[] = "{\"property\": \"value\", \"boolean\": true}";
    const char *url = "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256="
                      "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    const char *sig = "a9nBmqA0ju/hNViExpshrM61xv4=";
    CHECK_EQ(twilio_signature_verify_json(TOKEN, TLEN, url, body, sizeof body - 1, sig, 0), 0);
    /* body changed: its hash no longer matches */
    CHECK_EQ(twilio_signature_verify_json(TOKEN, TLEN, url, body, sizeof body - 2, sig, 0),
             -EBADMSG);
    /* right hash, wrong signature */
    CHECK_EQ(twilio_signature_verify_json(TOKEN, TLEN, url, body, sizeof body - 1,
                                          "RSOYDt4T1cUTdK1PDd93/VVr8B8=", 0),
             -EACCES);
    /* no bodySHA256 in the URL */
    CHECK_EQ(twilio_signature_verify_json(TOKEN, TLEN, "https://mycompany.com/myapp.php?foo=1",
                                          body, sizeof body - 1, sig, 0),
             -EBADMSG);
    /* the docs' example body hashes as documented (upper-case hex accepted) */
    static const char doc[] = "{\"CallSid\":\"CA1234567890ABCDE\",\"Caller\":\"+12349013030\"}";
    CHECK_EQ(twilio_signature_verify_json(
                 TOKEN, TLEN,
                 "https://x.example/h?bodySHA256="
                 "5CCDE7145DFB8F56479710896586CB9D5911809D83AFBE34627818790DB0AEC9",
                 doc, sizeof doc - 1, sig, 0),
             -EACCES); /* hash accepted, then the signature (of another URL) refused */
}

TEST(twilio_signature_websocket_trailing_slash)
{
    /* made with twilio-python's RequestValidator("12345").compute_signature(url, {}) */
    const char *url = "wss://voice.example.com/api/voice-calls/media-stream";
    const char *plain = "+5QnWDmVGma10+ngzlTMNkLLcQA=", *slash = "Fhmo9lIAs/5hpVX+97OxWP4+Lv0=";
    CHECK_EQ(verify(url, NULL, 0, plain), 0);
    CHECK_EQ(verify(url, NULL, 0, slash), -EACCES);
    CHECK_EQ(twilio_signature_verify(TOKEN, TLEN, url, NULL, 0, slash, TWILIO_SIG_TRAILING_SLASH),
             0);
    CHECK_EQ(twilio_signature_verify(TOKEN, TLEN,
                                     "wss://voice.example.com:443/api/voice-calls/media-stream/",
                                     NULL, 0, plain, TWILIO_SIG_TRAILING_SLASH),
             0);
    /* the https:// spelling of the same URL is another URL */
    CHECK_EQ(twilio_signature_verify(TOKEN, TLEN,
                                     "https://voice.example.com/api/voice-calls/media-stream",
                                     NULL, 0, plain, TWILIO_SIG_TRAILING_SLASH),
             -EACCES);
}

TEST(twilio_signature_values_not_trimmed)
{
    /* RequestValidator("12345") over {"A": "x y", "B": ""}: spaces kept, empty values count */
    const struct form_field p[] = {F("B", ""), F("A", "x y")};
    const char *url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    CHECK_EQ(verify(url, p, 2, "8tGubARLxlIoSUckeqM3NxtMg/U="), 0);
    const struct form_field trimmed[] = {F("B", ""), F("A", "x y ")};
    CHECK_EQ(verify(url, trimmed, 2, "8tGubARLxlIoSUckeqM3NxtMg/U="), -EACCES);
}

TEST(twilio_signature_bad_urls)
{
    CHECK_EQ(verify("example.com/x", NULL, 0, "+5QnWDmVGma10+ngzlTMNkLLcQA="), -EINVAL);
    CHECK_EQ(verify("https://", NULL, 0, "+5QnWDmVGma10+ngzlTMNkLLcQA="), -EINVAL);
    CHECK_EQ(verify("https://u:p@h/x", NULL, 0, "+5QnWDmVGma10+ngzlTMNkLLcQA="), -EINVAL);
    static char big[TWILIO_SIGNATURE_URL_MAX + 32] = "https://h/";
    memset(big + 10, 'a', sizeof big - 11);
    CHECK_EQ(verify(big, NULL, 0, "+5QnWDmVGma10+ngzlTMNkLLcQA="), -EINVAL);
    static struct form_field many[TWILIO_SIGNATURE_PARAMS_MAX + 1];
    for (size_t i = 0; i < N(many); i++)
        many[i] = (struct form_field)F("a", "b");
    CHECK_EQ(verify("https://h/x", many, N(many), "+5QnWDmVGma10+ngzlTMNkLLcQA="), -E2BIG);
    /* "host:" with an empty port is signed as written (found by fuzz-twilio-signature) */
    char sig0[TWILIO_SIGNATURE_LEN + 1];
    CHECK_EQ(twilio_signature_compute(TOKEN, TLEN, "https://h:/x", NULL, 0, true, sig0), 0);
    CHECK_EQ(verify("https://h:/x", NULL, 0, sig0), 0);
    /* IPv6 literal with a port: the port variant is found after the bracket */
    char sig[TWILIO_SIGNATURE_LEN + 1];
    CHECK_EQ(twilio_signature_compute(TOKEN, TLEN, "https://[::1]/x", NULL, 0, true, sig), 0);
    CHECK_EQ(verify("https://[::1]:443/x", NULL, 0, sig), 0);
}
