/* JSON scanner: the Twilio/OpenAI message shapes, escapes and UTF-8, strictness against a
 * corpus of malformed documents, and agreement with jansson over mutated documents. */
#include "common/json_scan.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/testing.h"

static struct json_tok toks[256];

static int scan(const char *s)
{
    return json_scan(s, strlen(s), toks, sizeof toks / sizeof toks[0]);
}

TEST(json_scan_twilio_media)
{
    const char *m = "{\"event\":\"media\",\"sequenceNumber\":\"4\",\"streamSid\":\"MZ1\","
                    "\"media\":{\"track\":\"inbound\",\"chunk\":\"2\",\"timestamp\":\"5\","
                    "\"payload\":\"/w==\"}}";
    CHECK(scan(m) > 0);
    CHECK(json_str_eq(m, toks, json_get(m, toks, 0, "event"), "media"));
    int media = json_get(m, toks, 0, "media");
    CHECK_EQ(toks[media].type, JTOK_OBJECT);
    int64_t ts, seq;
    CHECK_EQ(json_int(m, toks, json_get(m, toks, media, "timestamp"), &ts), 0);
    CHECK_EQ(ts, 5);
    CHECK_EQ(json_int(m, toks, json_get(m, toks, 0, "sequenceNumber"), &seq), 0);
    CHECK_EQ(seq, 4);
    const char *p;
    size_t len;
    CHECK_EQ(json_str_view(m, toks, json_get(m, toks, media, "payload"), &p, &len), 0);
    CHECK(len == 4 && memcmp(p, "/w==", 4) == 0);
    CHECK_EQ(json_get(m, toks, 0, "missing"), -1);
    CHECK_EQ(json_get(m, toks, media + 1, "x"), -1); /* not an object */
}

TEST(json_scan_siblings_after_nested_values)
{
    const char *m = "{\"a\":[1,[2,3],{\"x\":{\"y\":[]}}],\"b\":{\"c\":null},\"d\":true}";
    CHECK(scan(m) > 0);
    CHECK_EQ(toks[json_get(m, toks, 0, "d")].type, JTOK_TRUE);
    CHECK_EQ(toks[json_get(m, toks, json_get(m, toks, 0, "b"), "c")].type, JTOK_NULL);
    CHECK_EQ(toks[json_get(m, toks, 0, "a")].count, 3);
    CHECK_EQ(toks[0].skip, (uint32_t)scan(m));
}

TEST(json_scan_escapes_and_utf8)
{
    const char *m = "{\"k\\u0065y\":\"caf\\u00e9 \\ud83d\\ude00 \\/ \\\"q\\\" \\n\",\"u\":\"é😀\"}";
    CHECK(scan(m) > 0);
    int v = json_get(m, toks, 0, "key");
    CHECK(v > 0);
    char out[64];
    size_t len;
    CHECK_EQ(json_str(m, toks, v, out, sizeof out, &len), 0);
    CHECK(strcmp(out, "caf\xc3\xa9 \xf0\x9f\x98\x80 / \"q\" \n") == 0);
    CHECK_EQ(len, strlen(out));
    const char *p;
    CHECK_EQ(json_str_view(m, toks, v, &p, &len), -EAGAIN);
    CHECK_EQ(json_str(m, toks, v, out, 5, &len), -ENOSPC);
    CHECK_EQ(json_str_view(m, toks, json_get(m, toks, 0, "u"), &p, &len), 0);
    CHECK_EQ(len, 6);
}

/* Long strings are skipped many bytes at a time: a byte that ends a plain run (quote, escape,
 * control, UTF-8 lead or a stray continuation byte) must be found at every position, for
 * every alignment of the string in the document, with no look past the end of the input. */
TEST(json_scan_special_bytes_at_every_position)
{
    static const struct {
        const char *ins; /* replaces one 'A' of the string */
        int valid;
        int escaped;
    } cases[] = {
        {"", 1, 0},                 /* plain: one 'A' fewer */
        {"\\n", 1, 1},              /* escape */
        {"\\u00e9", 1, 1},          /* unicode escape */
        {"\xc3\xa9", 1, 0},         /* two-byte UTF-8 */
        {"\xf0\x9f\x98\x80", 1, 0}, /* four-byte UTF-8 */
        {"\x7f", 1, 0},             /* DEL is allowed */
        {"\x01", 0, 0},             /* controls are not */
        {"\x1f", 0, 0},
        {"\x80", 0, 0}, /* a continuation byte alone */
        {"\xc3", 0, 0}, /* a lead byte without its continuation */
        {"\\x", 0, 0},  /* a bad escape */
        {"\"", 0, 0},   /* the string ends early: what follows is garbage */
    };
    char doc[300];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t il = strlen(cases[c].ins);
        for (size_t pad = 0; pad < 3; pad++) {
            for (size_t len = 1; len < 200; len++) {
                for (size_t at = 0; at < len; at++) {
                    size_t n = 0;
                    memcpy(doc, "{\"k\":  ", 5 + pad);
                    n = 5 + pad;
                    doc[n++] = '"';
                    size_t str = n;
                    memset(doc + n, 'A', at);
                    n += at;
                    memcpy(doc + n, cases[c].ins, il);
                    n += il;
                    memset(doc + n, 'A', len - at - 1);
                    n += len - at - 1;
                    size_t str_end = n;
                    memcpy(doc + n, "\"}", 2);
                    n += 2;
                    /* scanned from a copy the size of the document: ASan sees any over-read */
                    char *heap = malloc(n);
                    memcpy(heap, doc, n);
                    int rc = json_scan(heap, n, toks, 8);
                    free(heap);
                    if (!cases[c].valid) {
                        CHECK_MSG(rc == -EINVAL, "case %zu len %zu at %zu accepted", c, len, at);
                        continue;
                    }
                    CHECK_MSG(rc == 3, "case %zu len %zu at %zu: %d", c, len, at, rc);
                    CHECK_EQ(toks[2].start, (uint32_t)str);
                    CHECK_EQ(toks[2].end, (uint32_t)str_end);
                    CHECK_EQ(toks[2].escaped, cases[c].escaped);
                }
            }
        }
    }
}

TEST(json_scan_rejects_malformed)
{
    static const char *bad[] = {
        "", " ", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "[01]", "[1.]", "[.5]",
        "[-]", "[1e]", "[+1]", "\"abc", "\"a\x01\"", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"",
        "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\xc0\x80\"", "\"\xed\xa0\x80\"", "\"\xf5\x80\x80\x80\"",
        "\"\xe2\x82\"", "tru", "nul", "[true false]", "{} {}", "[1] x", "{\"a\":1}}", "'a'",
        "[NaN]", "[Infinity]", "{\"a\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(scan(bad[i]) == -EINVAL, "accepted bad document #%zu: %s", i, bad[i]);
    char deep[80];
    memset(deep, '[', 33);
    memset(deep + 33, ']', 33);
    deep[66] = '\0';
    CHECK_EQ(scan(deep), -EINVAL);
    deep[32] = ']';
    deep[33 + 32] = '\0';
    memset(deep, '[', 32);
    memset(deep + 32, ']', 32);
    deep[64] = '\0';
    CHECK(scan(deep) > 0);
}

TEST(json_scan_accepts_valid)
{
    static const char *good[] = {
        "0", "-0", "-0.5e+10", "1E-2", "true", "false", "null", "\"\"", "[]", "{}",
        " \t\r\n{ \"a\" : [ 1 , 2 ] } \n", "[\"\\u0000\"]", "{\"a\":{\"a\":{\"a\":1}}}",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK_MSG(scan(good[i]) > 0, "rejected good document #%zu: %s", i, good[i]);
}

TEST(json_scan_token_limit)
{
    const char *m = "[1,2,3,4,5]";
    CHECK_EQ(json_scan(m, strlen(m), toks, 5), -E2BIG);
    CHECK_EQ(json_scan(m, strlen(m), toks, 6), 6);
}

TEST(json_scan_int)
{
    const char *m = "[\"123\",-7,\"-5\",\"1.5\",\"\",1.5,\"9223372036854775807\","
                    "\"9223372036854775808\",\"-9223372036854775808\",\"1a\",true]";
    CHECK(scan(m) > 0);
    int64_t v;
    int expect_ok[] = {1, 1, 1, 0, 0, 0, 1, 0, 1, 0, 0};
    int64_t expect[] = {123, -7, -5, 0, 0, 0, INT64_MAX, 0, INT64_MIN};
    for (int i = 0; i < 11; i++) {
        int rc = json_int(m, toks, i + 1, &v);
        CHECK_MSG((rc == 0) == expect_ok[i], "element %d: rc %d", i, rc);
        if (rc == 0)
            CHECK_EQ(v, expect[i]);
    }
}

/* Mutates sample documents byte by byte and checks json_scan agrees with jansson on validity.
 * jansson is stricter in two ways we allow on purpose (\u0000 inside strings, numbers beyond
 * double range), which the samples avoid producing. */
TEST(json_scan_agrees_with_jansson)
{
    static const char *samples[] = {
        "{\"event\":\"media\",\"media\":{\"payload\":\"AAEC\",\"chunk\":\"2\"},\"n\":[1,2.5,-3e2]}",
        "{\"type\":\"response.output_audio.delta\",\"delta\":\"q80=\",\"ok\":true,\"x\":null}",
        "[\"caf\\u00e9\",{\"k\":\"\\ud83d\\ude00\"},[[]],{}]",
    };
    static const char alphabet[] = "{}[]\":,\\u0123456789.eE+-tfnrlasx \xc3\xa9\x80";
    uint32_t rng = 1;
    char buf[256];
    int valid = 0;
    for (int iter = 0; iter < 30000; iter++) {
        const char *src = samples[iter % 3];
        size_t n = strlen(src);
        memcpy(buf, src, n);
        int edits = 1 + iter % 3;
        for (int e = 0; e < edits; e++) {
            rng = rng * 1103515245u + 12345u;
            size_t pos = (rng >> 8) % n;
            rng = rng * 1103515245u + 12345u;
            buf[pos] = alphabet[(rng >> 8) % (sizeof alphabet - 1)];
        }
        buf[n] = '\0';
        json_error_t jerr;
        json_t *j = json_loadb(buf, n, JSON_DECODE_ANY, &jerr);
        if (j == NULL && (strstr(jerr.text, "overflow") || strstr(jerr.text, "too big") ||
                          strstr(jerr.text, "NUL")))
            continue;
        int ours = json_scan(buf, n, toks, 256) > 0;
        valid += ours;
        CHECK_MSG(ours == (j != NULL), "disagree (ours %d, jansson %d) on: %s", ours, j != NULL,
                  buf);
        json_decref(j);
    }
    /* The mutations must exercise both answers, or the comparison proves nothing. */
    CHECK_MSG(valid > 1000 && valid < 29000, "only %d of 30000 mutants valid", valid);
}
