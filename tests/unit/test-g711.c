/* G.711: byte for byte against sox (an independent implementation) over all 65,536 samples and
 * all 256 codes, against a plain arithmetic reference (ITU-T G.191 with sox's 16-bit reduction),
 * block forms against per-sample ones, and the properties a codec must have. */
#include "dsp/g711.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/testing.h"

extern char **environ;

#define NSAMPLES 65536

static void file_write(const char *path, const uint8_t *buf, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK_MSG(fd != -1, "open %s: %s", path, strerror(errno));
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, buf + done, n - done);
        if (w == -1 && errno == EINTR)
            continue;
        CHECK_MSG(w > 0, "write %s: %s", path, strerror(errno));
        done += (size_t)w;
    }
    close(fd);
}

/* Reads exactly n bytes and checks the file holds no more. */
static void file_read_exact(const char *path, uint8_t *buf, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK_MSG(fd != -1, "open %s: %s", path, strerror(errno));
    size_t done = 0;
    uint8_t extra;
    for (;;) {
        ssize_t r = done < n ? read(fd, buf + done, n - done) : read(fd, &extra, 1);
        if (r == -1 && errno == EINTR)
            continue;
        CHECK_MSG(r >= 0, "read %s: %s", path, strerror(errno));
        if (r == 0)
            break;
        done += (size_t)r;
        CHECK_MSG(done <= n, "%s is longer than %zu bytes", path, n);
    }
    close(fd);
    CHECK_MSG(done == n, "%s has %zu bytes, want %zu", path, done, n);
}

/* Converts raw mono 8 kHz audio with sox: -D so it adds no dither when reducing bit depth,
 * -V1 so its (expected) clipping warnings stay quiet. */
static void sox_convert(const char *in_enc, const char *in_bits, const char *in_path,
                        const char *out_enc, const char *out_bits, const char *out_path)
{
    /* clang-format off */
    char *argv[] = {"sox", "-D", "-V1",
                    "-t", "raw", "-e", (char *)in_enc, "-b", (char *)in_bits, "-c", "1",
                    "-r", "8000", (char *)in_path,
                    "-t", "raw", "-e", (char *)out_enc, "-b", (char *)out_bits, "-c", "1",
                    "-r", "8000", (char *)out_path, NULL};
    /* clang-format on */
    pid_t pid;
    int rc = posix_spawn(&pid, "/usr/bin/sox", NULL, NULL, argv, environ);
    CHECK_MSG(rc == 0, "posix_spawn /usr/bin/sox: %s", strerror(rc));
    int status;
    while (waitpid(pid, &status, 0) == -1)
        CHECK_MSG(errno == EINTR, "waitpid: %s", strerror(errno));
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "sox failed (status 0x%x)", status);
}

static int16_t sample_at(int i)
{
    return (int16_t)(i - 32768);
}

/* sox's encoding of every 16-bit sample, in order from -32768 up. */
static void sox_encode_all(const char *enc, uint8_t *codes)
{
    static uint8_t raw[2 * NSAMPLES];
    char in[512], out[512];
    snprintf(in, sizeof in, "%s/pcm.raw", test_tmpdir());
    snprintf(out, sizeof out, "%s/%s.raw", test_tmpdir(), enc);
    for (int i = 0; i < NSAMPLES; i++) {
        uint16_t u = (uint16_t)sample_at(i);
        raw[2 * i] = (uint8_t)(u & 0xFF);
        raw[2 * i + 1] = (uint8_t)(u >> 8);
    }
    file_write(in, raw, sizeof raw);
    sox_convert("signed-integer", "16", in, enc, "8", out);
    file_read_exact(out, codes, NSAMPLES);
}

/* sox's decoding of every code 0..255. */
static void sox_decode_all(const char *enc, int16_t *pcm)
{
    uint8_t codes[256], raw[512];
    char in[512], out[512];
    snprintf(in, sizeof in, "%s/%s-codes.raw", test_tmpdir(), enc);
    snprintf(out, sizeof out, "%s/%s-pcm.raw", test_tmpdir(), enc);
    for (int c = 0; c < 256; c++)
        codes[c] = (uint8_t)c;
    file_write(in, codes, sizeof codes);
    sox_convert(enc, "8", in, "signed-integer", "16", out);
    file_read_exact(out, raw, sizeof raw);
    for (int c = 0; c < 256; c++)
        pcm[c] = (int16_t)(uint16_t)(raw[2 * c] | raw[2 * c + 1] << 8);
}

TEST(g711_ulaw_encode_matches_sox)
{
    static uint8_t want[NSAMPLES];
    sox_encode_all("u-law", want);
    for (int i = 0; i < NSAMPLES; i++)
        CHECK_MSG(g711_ulaw_encode(sample_at(i)) == want[i], "sample %d: 0x%02x, sox 0x%02x",
                  sample_at(i), g711_ulaw_encode(sample_at(i)), want[i]);
}

TEST(g711_alaw_encode_matches_sox)
{
    static uint8_t want[NSAMPLES];
    sox_encode_all("a-law", want);
    for (int i = 0; i < NSAMPLES; i++)
        CHECK_MSG(g711_alaw_encode(sample_at(i)) == want[i], "sample %d: 0x%02x, sox 0x%02x",
                  sample_at(i), g711_alaw_encode(sample_at(i)), want[i]);
}

TEST(g711_ulaw_decode_matches_sox)
{
    int16_t want[256];
    sox_decode_all("u-law", want);
    for (int c = 0; c < 256; c++)
        CHECK_MSG(g711_ulaw_decode((uint8_t)c) == want[c], "code 0x%02x: %d, sox %d", c,
                  g711_ulaw_decode((uint8_t)c), want[c]);
}

TEST(g711_alaw_decode_matches_sox)
{
    int16_t want[256];
    sox_decode_all("a-law", want);
    for (int c = 0; c < 256; c++)
        CHECK_MSG(g711_alaw_decode((uint8_t)c) == want[c], "code 0x%02x: %d, sox %d", c,
                  g711_alaw_decode((uint8_t)c), want[c]);
}

/* Plain reference: ITU-T G.191's ulaw_compress/alaw_compress on the 14-bit (13-bit) value,
 * written from the recommendation rather than from our tables. */
static uint8_t g191_ulaw_compress14(int v)
{
    int absno = (v < 0 ? ~v : v) + 33;
    if (absno > 0x1FFF)
        absno = 0x1FFF;
    int segno = 1;
    for (int i = absno >> 6; i != 0; i >>= 1)
        segno++;
    int code = ((8 - segno) << 4) | (0xF - ((absno >> segno) & 0xF));
    return (uint8_t)(v >= 0 ? code | 0x80 : code);
}

static uint8_t g191_alaw_compress13(int v)
{
    int ix = (v < 0 ? ~v : v) >> 1;
    if (ix > 15) {
        int iexp = 1;
        while (ix > 16 + 15) {
            ix >>= 1;
            iexp++;
        }
        ix = ix - 16 + (iexp << 4);
    }
    if (v >= 0)
        ix |= 0x80;
    return (uint8_t)(ix ^ 0x55);
}

static int16_t g191_ulaw_expand(uint8_t code)
{
    int m = ~code & 0xFF, exponent = (m >> 4) & 7, step = 4 << (exponent + 1);
    int mag = (0x80 << exponent) + step * (m & 0xF) + step / 2 - 4 * 33;
    return (int16_t)(code & 0x80 ? mag : -mag);
}

static int16_t g191_alaw_expand(uint8_t code)
{
    int ix = (code ^ 0x55) & 0x7F, iexp = ix >> 4, mant = ix & 0xF;
    if (iexp > 0)
        mant += 16;
    mant = (mant << 4) + 8;
    if (iexp > 1)
        mant <<= iexp - 1;
    return (int16_t)(code & 0x80 ? mant : -mant);
}

/* sox reduces 16 bits to 14 (13) by rounding to nearest and clipping at the top; G.191 truncates
 * (x >> 2). And sox's mu-law negates negative values where G.191 takes the one's complement, so
 * sox's code for v < 0 is G.191's for v - 1 (A-law agrees on the 13-bit value). As a result sox
 * (and so g711_*_encode) differs from G.191 run on the 16-bit sample for 510 of the 65,536
 * inputs in mu-law and 1020 in A-law, each at a decision boundary, never by more than one step. */
TEST(g711_encode_matches_g191_with_sox_rounding)
{
    int ulaw_g191_diff = 0, alaw_g191_diff = 0;
    for (int i = 0; i < NSAMPLES; i++) {
        int x = sample_at(i);
        int v14 = (x + 2) >> 2 > 8191 ? 8191 : (x + 2) >> 2;
        int v13 = (x + 4) >> 3 > 4095 ? 4095 : (x + 4) >> 3;
        uint8_t u = g711_ulaw_encode((int16_t)x), a = g711_alaw_encode((int16_t)x);
        CHECK_MSG(u == g191_ulaw_compress14(v14 >= 0 ? v14 : v14 - 1), "mu-law %d", x);
        CHECK_MSG(a == g191_alaw_compress13(v13), "A-law %d", x);
        uint8_t gu = g191_ulaw_compress14(x >> 2), ga = g191_alaw_compress13(x >> 3);
        if (u != gu) {
            ulaw_g191_diff++;
            int d = g711_ulaw_decode(u) - g711_ulaw_decode(gu);
            CHECK_MSG(abs(d) <= 1024, "mu-law %d: steps apart", x);
        }
        if (a != ga) {
            alaw_g191_diff++;
            int d = g711_alaw_decode(a) - g711_alaw_decode(ga);
            CHECK_MSG(abs(d) <= 1024, "A-law %d: steps apart", x);
        }
    }
    CHECK_EQ(ulaw_g191_diff, 510);
    CHECK_EQ(alaw_g191_diff, 1020);
    for (int c = 0; c < 256; c++) {
        CHECK_EQ(g711_ulaw_decode((uint8_t)c), g191_ulaw_expand((uint8_t)c));
        CHECK_EQ(g711_alaw_decode((uint8_t)c), g191_alaw_expand((uint8_t)c));
    }
}

TEST(g711_block_equals_per_sample)
{
    static int16_t pcm[NSAMPLES], got_pcm[256];
    static uint8_t got[NSAMPLES + 1];
    uint8_t codes[256];
    for (int i = 0; i < NSAMPLES; i++)
        pcm[i] = sample_at(i);
    for (int c = 0; c < 256; c++)
        codes[c] = (uint8_t)(c * 37 + 11); /* a permutation, so the order is not the index */

    got[NSAMPLES] = 0xA5;
    g711_ulaw_encode_block(pcm, NSAMPLES, got);
    for (int i = 0; i < NSAMPLES; i++)
        CHECK_EQ(got[i], g711_ulaw_encode(pcm[i]));
    g711_alaw_encode_block(pcm, NSAMPLES, got);
    for (int i = 0; i < NSAMPLES; i++)
        CHECK_EQ(got[i], g711_alaw_encode(pcm[i]));
    CHECK_EQ(got[NSAMPLES], 0xA5);

    g711_ulaw_decode_block(codes, 256, got_pcm);
    for (int c = 0; c < 256; c++)
        CHECK_EQ(got_pcm[c], g711_ulaw_decode(codes[c]));
    g711_alaw_decode_block(codes, 256, got_pcm);
    for (int c = 0; c < 256; c++)
        CHECK_EQ(got_pcm[c], g711_alaw_decode(codes[c]));

    /* n = 0 touches nothing; a frame of 160 stops at 160. */
    got[0] = 0x5A;
    g711_ulaw_encode_block(pcm, 0, got);
    CHECK_EQ(got[0], 0x5A);
    got[160] = 0x5A;
    g711_alaw_encode_block(pcm + 1000, 160, got);
    CHECK_EQ(got[160], 0x5A);
    got_pcm[160] = 0x1234;
    g711_ulaw_decode_block(codes, 160, got_pcm);
    CHECK_EQ(got_pcm[160], 0x1234);
}

TEST(g711_round_trip_and_silence)
{
    for (int c = 0; c < 256; c++) {
        int16_t u = g711_ulaw_decode((uint8_t)c), a = g711_alaw_decode((uint8_t)c);
        CHECK_EQ(g711_ulaw_decode(g711_ulaw_encode(u)), u);
        CHECK_EQ(g711_alaw_decode(g711_alaw_encode(a)), a);
        /* Every code is canonical except mu-law's negative zero, which encodes as +0. */
        CHECK_EQ(g711_ulaw_encode(u), c == 0x7F ? 0xFF : c);
        CHECK_EQ(g711_alaw_encode(a), c);
    }
    CHECK_EQ(g711_ulaw_encode(0), G711_ULAW_SILENCE);
    CHECK_EQ(g711_ulaw_decode(G711_ULAW_SILENCE), 0);
    CHECK_EQ(g711_alaw_encode(0), G711_ALAW_SILENCE);
    CHECK_EQ(g711_alaw_decode(G711_ALAW_SILENCE), 8); /* A-law has no zero level */
}

TEST(g711_monotonic_and_close)
{
    int prev_u = -32768, prev_a = -32768;
    for (int i = 0; i < NSAMPLES; i++) {
        int x = sample_at(i);
        int u = g711_ulaw_decode(g711_ulaw_encode((int16_t)x));
        int a = g711_alaw_decode(g711_alaw_encode((int16_t)x));
        CHECK_MSG(u >= prev_u, "mu-law not monotonic at %d", x);
        CHECK_MSG(a >= prev_a, "A-law not monotonic at %d", x);
        prev_u = u;
        prev_a = a;
        /* Within half a step (steps grow with level, 1/16 of it at most) plus rounding (12 at
         * the bottom of A-law); the largest inputs clip to the top level. */
        int tol = abs(x) / 32 + 12;
        if (abs(x) < 32124 - 512)
            CHECK_MSG(abs(u - x) <= tol, "mu-law %d -> %d", x, u);
        if (abs(x) < 32256 - 512)
            CHECK_MSG(abs(a - x) <= tol, "A-law %d -> %d", x, a);
    }
    CHECK_EQ(g711_ulaw_decode(g711_ulaw_encode(32767)), 32124);
    CHECK_EQ(g711_ulaw_decode(g711_ulaw_encode(-32768)), -32124);
    CHECK_EQ(g711_alaw_decode(g711_alaw_encode(32767)), 32256);
    CHECK_EQ(g711_alaw_decode(g711_alaw_encode(-32768)), -32256);
}
