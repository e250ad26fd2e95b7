/* base64: RFC 4648 vectors, every class of malformed input rejected (exhaustively over the last
 * group), exact output bounds, random round trips, and agreement with mbedTLS's implementation. */
#include "common/base64.h"

#include <errno.h>
#include <mbedtls/base64.h>
#include <string.h>

#include "tests/unit/testing.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Index of c in the alphabet, or -1: written independently of the decoder's tables. */
static int alpha_index(int c)
{
    const char *p = c == 0 ? NULL : strchr(alphabet, c);
    return p ? (int)(p - alphabet) : -1;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint8_t rng_byte(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint8_t)(rng_state >> 32);
}

static int decode_str(const char *s, uint8_t *out, size_t cap, size_t *len)
{
    *len = 12345; /* must be overwritten, with 0 on error */
    return base64_decode(s, strlen(s), out, cap, len);
}

TEST(base64_rfc4648_vectors)
{
    static const char *const vec[][2] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        const char *plain = vec[i][0], *enc = vec[i][1];
        char out[16];
        uint8_t back[16];
        size_t n = strlen(plain), len;
        memset(out, '#', sizeof out);
        CHECK_EQ(base64_encoded_len(n), strlen(enc));
        CHECK_EQ(base64_encode((const uint8_t *)plain, n, out), strlen(enc));
        CHECK(memcmp(out, enc, strlen(enc)) == 0);
        CHECK_EQ(out[strlen(enc)], '#'); /* no NUL, nothing past the end */
        CHECK_EQ(decode_str(enc, back, sizeof back, &len), 0);
        CHECK_EQ(len, n);
        CHECK(memcmp(back, plain, n) == 0);
    }
}

TEST(base64_frame_sizes)
{
    CHECK_EQ(base64_encoded_len(160), 216);  /* 20 ms of 8 kHz mu-law */
    CHECK_EQ(base64_encoded_len(960), 1280); /* 20 ms of 24 kHz PCM16 */
    CHECK_EQ(base64_decoded_max(216), 162);
    CHECK_EQ(base64_decoded_max(1280), 960);
    CHECK_EQ(base64_encoded_len(0), 0);
    CHECK_EQ(base64_decoded_max(3), 0);
}

TEST(base64_rejects_bad_length)
{
    static const char *const bad[] = {
        "A", "AA", "AAA", "AAAAA", "AA=", "Zg=", "Zm9vY", "=", "Zm9vYmFy=", "Zm9vYmF"};
    uint8_t out[16];
    size_t len;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_MSG(decode_str(bad[i], out, sizeof out, &len) == -EINVAL, "accepted \"%s\"", bad[i]);
        CHECK_EQ(len, 0);
    }
}

TEST(base64_rejects_misplaced_padding)
{
    static const char *const bad[] = {"====",     "A===",     "=AAA",     "A=AA",     "AA=A",
                                      "=A==",     "==AA",     "Zg==Zg==", "Zm8=Zm9v", "Zg==AAAA",
                                      "Zm9v=AAA", "Zm9vA=AA", "Zm9vAA=A", "Zm9vA===", "Zm9v===="};
    uint8_t out[16];
    size_t len;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_MSG(decode_str(bad[i], out, sizeof out, &len) == -EINVAL, "accepted \"%s\"", bad[i]);
        CHECK_EQ(len, 0);
    }
}

/* Every byte value in every place of a group: only the alphabet decodes ('=' apart, below). */
TEST(base64_rejects_bad_characters)
{
    char s[9] = "Zm9vYmFy";
    uint8_t out[8];
    size_t len;
    for (int pos = 0; pos < 8; pos++) {
        for (int c = 0; c < 256; c++) {
            if (c == '=')
                continue;
            memcpy(s, "Zm9vYmFy", 8);
            s[pos] = (char)c;
            int rc = base64_decode(s, 8, out, sizeof out, &len);
            CHECK_MSG(rc == (alpha_index(c) >= 0 ? 0 : -EINVAL), "byte 0x%02x at %d: %d", c, pos,
                      rc);
            if (rc != 0)
                CHECK_EQ(len, 0);
        }
    }
    /* One bad byte anywhere in a long frame is found, however early it comes. */
    static char frame[1280];
    static uint8_t pcm[960];
    for (int i = 0; i < 960; i++)
        pcm[i] = rng_byte();
    CHECK_EQ(base64_encode(pcm, 960, frame), 1280);
    for (int pos = 0; pos < 1280; pos++) {
        char keep = frame[pos];
        frame[pos] = pos % 2 ? '-' : '=';
        CHECK_MSG(base64_decode(frame, 1280, pcm, sizeof pcm, &len) == -EINVAL, "pos %d", pos);
        frame[pos] = keep;
    }
    CHECK_EQ(base64_decode(frame, 1280, pcm, sizeof pcm, &len), 0);
}

/* All 65,536 endings "c0 c1 = =" and "Q Q c2 c3": accepted exactly when the characters are in
 * the alphabet and the bits under the padding are zero, and then the input is canonical. */
TEST(base64_last_group_exhaustive)
{
    for (int a = 0; a < 256; a++) {
        for (int b = 0; b < 256; b++) {
            char s[4] = {(char)a, (char)b, '=', '='}, again[4];
            uint8_t out[3];
            size_t len;
            int ia = alpha_index(a), ib = alpha_index(b);
            int valid = ia >= 0 && ib >= 0 && ib % 16 == 0;
            int rc = base64_decode(s, 4, out, sizeof out, &len);
            CHECK_MSG(rc == (valid ? 0 : -EINVAL), "\"%c%c==\" (0x%02x 0x%02x): %d", a, b, a, b,
                      rc);
            if (valid) {
                CHECK_EQ(len, 1);
                CHECK_EQ(out[0], ia << 2 | ib >> 4);
                CHECK_EQ(base64_encode(out, len, again), 4);
                CHECK(memcmp(again, s, 4) == 0);
            } else {
                CHECK_EQ(len, 0);
            }

            char t[4] = {'Q', 'Q', (char)a, (char)b};
            valid = (ia >= 0 && ib >= 0) || (ia >= 0 && b == '=' && ia % 4 == 0) ||
                    (a == '=' && b == '=');
            rc = base64_decode(t, 4, out, sizeof out, &len);
            CHECK_MSG(rc == (valid ? 0 : -EINVAL), "\"QQ%c%c\" (0x%02x 0x%02x): %d", a, b, a, b,
                      rc);
            if (valid) {
                CHECK_EQ(len, b != '=' ? 3 : a != '=' ? 2 : 1);
                CHECK_EQ(out[0], 0x41); /* "QQ" is 0x41 and a zero nibble */
                CHECK_EQ(base64_encode(out, len, again), 4);
                CHECK(memcmp(again, t, 4) == 0);
            } else {
                CHECK_EQ(len, 0);
            }
        }
    }
}

TEST(base64_enospc_when_output_too_small)
{
    uint8_t buf[40];
    size_t len;
    static const char *const enc[] = {"Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < sizeof enc / sizeof enc[0]; i++) {
        size_t want = i + 1; /* "f", "fo", ..., "foobar" */
        memset(buf, 0xEE, sizeof buf);
        CHECK_EQ(decode_str(enc[i], buf, want - 1, &len), -ENOSPC);
        CHECK_EQ(len, 0);
        CHECK_EQ(decode_str(enc[i], buf, want, &len), 0);
        CHECK_EQ(len, want);
        CHECK(memcmp(buf, "foobar", want) == 0);
        for (size_t j = want; j < sizeof buf; j++)
            CHECK_MSG(buf[j] == 0xEE, "\"%s\" wrote byte %zu", enc[i], j);
    }
    CHECK_EQ(decode_str("", buf, 0, &len), 0);
    CHECK_EQ(len, 0);
}

TEST(base64_random_round_trips)
{
    static uint8_t in[1000], back[1000 + 16];
    static char txt[1336 + 16];
    for (size_t n = 0; n <= 1000; n++) {
        for (size_t i = 0; i < n; i++)
            in[i] = rng_byte();
        size_t elen = base64_encoded_len(n), len;
        memset(txt, '#', sizeof txt);
        memset(back, 0xEE, sizeof back);
        CHECK_EQ(base64_encode(in, n, txt), elen);
        CHECK_EQ(txt[elen], '#');
        for (size_t i = 0; i < elen; i++)
            CHECK(txt[i] == '=' ? i >= elen - 2 : alpha_index((unsigned char)txt[i]) >= 0);
        CHECK(base64_decoded_max(elen) >= n);
        CHECK_EQ(base64_decode(txt, elen, back, n, &len), 0);
        CHECK_EQ(len, n);
        CHECK(memcmp(back, in, n) == 0);
        CHECK_EQ(back[n], 0xEE);
    }
}

/* mbedTLS is an independent implementation: same text for the same bytes, and each decodes the
 * other's output. */
TEST(base64_matches_mbedtls)
{
    static uint8_t in[2000], back[2000];
    static char ours[2700];
    static unsigned char theirs[2700];
    for (int round = 0; round < 600; round++) {
        size_t n = round < 300 ? (size_t)round : (size_t)rng_byte() * 7 + (rng_byte() & 7), olen;
        for (size_t i = 0; i < n; i++)
            in[i] = rng_byte();
        size_t elen = base64_encode(in, n, ours);
        CHECK_EQ(mbedtls_base64_encode(theirs, sizeof theirs, &olen, in, n), 0);
        CHECK_EQ(olen, elen);
        CHECK(memcmp(ours, theirs, elen) == 0);
        CHECK_EQ(base64_decode((const char *)theirs, olen, back, sizeof back, &olen), 0);
        CHECK_EQ(olen, n);
        CHECK(memcmp(back, in, n) == 0);
        CHECK_EQ(mbedtls_base64_decode(back, sizeof back, &olen, (const unsigned char *)ours, elen),
                 0);
        CHECK_EQ(olen, n);
        CHECK(memcmp(back, in, n) == 0);
    }
}

/* The AVX2 kernels do the bulk of long buffers on CPUs that have AVX2 (the tests above then run
 * through them); the tables do the rest. Both must give the same text, the same bytes and the
 * same verdict on every character at every position of a block, and neither may write past
 * what it reports. */
TEST(base64_kernels_agree)
{
    if (base64_select_kernel("avx2") == -ENOTSUP)
        return; /* nothing to compare on this CPU */
    CHECK_EQ(base64_select_kernel("bogus"), -EINVAL);
    static uint8_t in[700], out_g[700 + 8], out_v[700 + 8];
    static char txt_g[940 + 8], txt_v[940 + 8];
    for (size_t n = 0; n <= 700; n++) {
        for (size_t i = 0; i < n; i++)
            in[i] = rng_byte();
        memset(txt_g, '#', sizeof txt_g);
        memset(txt_v, '#', sizeof txt_v);
        CHECK_EQ(base64_select_kernel("generic"), 0);
        CHECK(strcmp(base64_kernel_name(), "generic") == 0);
        size_t eg = base64_encode(in, n, txt_g);
        CHECK_EQ(base64_select_kernel("avx2"), 0);
        CHECK(strcmp(base64_kernel_name(), "avx2") == 0);
        size_t ev = base64_encode(in, n, txt_v);
        CHECK_EQ(eg, ev);
        CHECK_MSG(memcmp(txt_g, txt_v, sizeof txt_g) == 0, "encodings of %zu bytes differ", n);
        size_t lg, lv;
        memset(out_g, 0xEE, sizeof out_g);
        memset(out_v, 0xEE, sizeof out_v);
        CHECK_EQ(base64_decode(txt_v, ev, out_v, n, &lv), 0);
        CHECK_EQ(base64_select_kernel("generic"), 0);
        CHECK_EQ(base64_decode(txt_v, ev, out_g, n, &lg), 0);
        CHECK_EQ(lg, lv);
        CHECK(memcmp(out_g, out_v, sizeof out_g) == 0);
        CHECK(memcmp(out_v, in, n) == 0);
    }

    /* Every byte value at every position of 160 characters (five vector blocks and the last
     * group), with and without padding at the end. */
    static const char *tails[] = {"QUJD", "QUI=", "QQ=="};
    char txt[161];
    for (int t = 0; t < 3; t++) {
        for (int i = 0; i < 156; i++)
            txt[i] = alphabet[(i * 7 + t) % 64];
        memcpy(txt + 156, tails[t], 4);
        for (int pos = 0; pos < 160; pos++) {
            char keep = txt[pos];
            for (int c = 0; c < 256; c++) {
                txt[pos] = (char)c;
                int rg, rv;
                size_t lg = 1, lv = 2;
                memset(out_g, 0xEE, sizeof out_g);
                memset(out_v, 0xEE, sizeof out_v);
                CHECK_EQ(base64_select_kernel("generic"), 0);
                rg = base64_decode(txt, 160, out_g, 120, &lg);
                CHECK_EQ(base64_select_kernel("avx2"), 0);
                rv = base64_decode(txt, 160, out_v, 120, &lv);
                CHECK_MSG(rg == rv, "byte %d at %d (tail %d): generic %d, avx2 %d", c, pos, t, rg,
                          rv);
                CHECK_EQ(lg, lv);
                if (rg == 0)
                    CHECK(memcmp(out_g, out_v, lg) == 0);
                /* before the last group: any character of the alphabet decodes, all else fails
                 * (the last group's rules are checked exhaustively above) */
                if (pos < 156)
                    CHECK_EQ(rg == 0, alpha_index(c) >= 0);
            }
            txt[pos] = keep;
        }
    }
}
