/* Resampler: the requirements (ripple, image/alias rejection, delay, no lag), streaming
 * bit-exactness across any split, agreement of every kernel with the double-precision reference
 * and with each other, saturation, the mu-law fused forms, kernel selection. Each kernel-specific
 * test runs for "generic" and, if the CPU has it, "avx2". */
#include "dsp/resample.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dsp/g711.h"
#include "tests/lib/dsp_quality.h"
#include "tests/unit/testing.h"

/* Kernel output minus the (saturated) double-precision reference, in LSB: the final rounding
 * (0.5) plus float accumulation error. Measured on make_signal: generic 0.5064, avx2 0.5037;
 * generic and avx2 differ by 1 LSB on 18 of 100,000 samples, otherwise they are equal. */
#define REF_BOUND_LSB 0.55

static _Thread_local uint32_t rng_state; /* per thread: see the concurrent test */

static uint32_t rng_next(void)
{
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return rng_state = x;
}

/* A test signal that visits everything: full-scale noise, loud tones, a full-scale square wave
 * (its overshoot saturates), silence, quiet noise, single impulses. */
static int16_t *make_signal(size_t n, uint32_t seed)
{
    int16_t *x = malloc(n * sizeof *x);
    CHECK(x != NULL);
    rng_state = seed;
    for (size_t i = 0; i < n; i++) {
        switch ((i / 1000) % 6) {
        case 0:
            x[i] = (int16_t)rng_next();
            break;
        case 1:
            x[i] = (int16_t)lrint(30000.0 * sin(0.0003 * (double)i * (double)(i % 1000)));
            break;
        case 2:
            x[i] = (i / 4) % 2 ? 32767 : -32768;
            break;
        case 3:
            x[i] = 0;
            break;
        case 4:
            x[i] = (int16_t)((int)(rng_next() % 65) - 32);
            break;
        default:
            x[i] = i % 97 == 0 ? ((i / 97) % 2 ? 32767 : -32768) : 0;
            break;
        }
    }
    return x;
}

/* Kernels this CPU runs; select_kernel switches to one, returning 0 if absent. */
static const char *const kernels[] = {"generic", "avx2"};

static int select_kernel(const char *name)
{
    int rc = resample_select_kernel(name);
    if (rc == -ENOTSUP)
        return 0;
    CHECK_EQ(rc, 0);
    CHECK(strcmp(resample_kernel_name(), name) == 0);
    return 1;
}

static double clamp_s16(double v)
{
    return v > 32767.0 ? 32767.0 : v < -32768.0 ? -32768.0 : v;
}

/* ---- requirements ----------------------------------------------------------------------- */

static void check_up_quality(const char *kernel)
{
    if (!select_kernel(kernel))
        return;
    struct dsp_quality q;
    CHECK_EQ(dsp_quality_resample_up(&q), 0);
    CHECK_MSG(q.ripple_db <= 0.1, "%s up ripple %.4f dB", kernel, q.ripple_db);
    CHECK_MSG(q.rejection_db >= 60.0, "%s up image rejection %.2f dB (tone %.0f Hz)", kernel,
              q.rejection_db, q.rejection_tone_hz);
    CHECK_MSG(q.delay_ms <= 3.0, "%s up delay %.4f ms", kernel, q.delay_ms);
    CHECK_MSG(fabs(q.delay_ms - resample_up_delay_ms()) < 0.005 &&
                  fabs(q.delay_min_ms - resample_up_delay_ms()) < 0.005,
              "%s up delay %.4f..%.4f ms, declared %.4f", kernel, q.delay_min_ms, q.delay_ms,
              resample_up_delay_ms());
    CHECK_MSG(fabs(q.gain_max_db + q.gain_min_db) < 0.02, "%s up gain %.4f..%.4f dB", kernel,
              q.gain_min_db, q.gain_max_db);
}

static void check_down_quality(const char *kernel)
{
    if (!select_kernel(kernel))
        return;
    struct dsp_quality q;
    CHECK_EQ(dsp_quality_resample_down(&q), 0);
    CHECK_MSG(q.ripple_db <= 0.1, "%s down ripple %.4f dB", kernel, q.ripple_db);
    CHECK_MSG(q.rejection_db >= 60.0, "%s down alias rejection %.2f dB (tone %.0f Hz)", kernel,
              q.rejection_db, q.rejection_tone_hz);
    CHECK_MSG(q.delay_ms <= 3.0, "%s down delay %.4f ms", kernel, q.delay_ms);
    CHECK_MSG(fabs(q.delay_ms - resample_down_delay_ms()) < 0.005 &&
                  fabs(q.delay_min_ms - resample_down_delay_ms()) < 0.005,
              "%s down delay %.4f..%.4f ms, declared %.4f", kernel, q.delay_min_ms, q.delay_ms,
              resample_down_delay_ms());
    CHECK_MSG(fabs(q.gain_max_db + q.gain_min_db) < 0.02, "%s down gain %.4f..%.4f dB", kernel,
              q.gain_min_db, q.gain_max_db);
}

TEST(resample_up_quality_generic)
{
    check_up_quality("generic");
}

TEST(resample_up_quality_avx2)
{
    check_up_quality("avx2");
}

TEST(resample_down_quality_generic)
{
    check_down_quality("generic");
}

TEST(resample_down_quality_avx2)
{
    check_down_quality("avx2");
}

/* The instrument itself: resamplers known to be bad must measure bad, a known extra delay must
 * show up. Without this the quality tests above could pass on a broken measurement. */
struct bad_subject {
    int delay; /* extra output samples of delay in front of our own resampler */
    int naive; /* 1: repeat / drop samples instead of filtering */
    struct resample_up up;
    struct resample_down down;
    int16_t pend[3];
    unsigned npend;
};

static void bad_reset(void *ctx)
{
    struct bad_subject *b = ctx;
    resample_up_init(&b->up);
    resample_down_init(&b->down);
    b->npend = 0;
}

static size_t bad_up(void *ctx, const int16_t *in, size_t n, int16_t *out)
{
    struct bad_subject *b = ctx;
    if (b->naive) {
        for (size_t i = 0; i < 3 * n; i++)
            out[i] = in[i / 3];
        return 3 * n;
    }
    /* Our resampler with `delay` zeros in front (this test feeds one stream per reset). */
    size_t pre = 0;
    if (b->npend == 0) {
        for (int i = 0; i < b->delay; i++)
            out[pre++] = 0;
        b->npend = 1;
    }
    resample_up(&b->up, in, n, out + pre);
    return pre + 3 * n;
}

static size_t bad_down(void *ctx, const int16_t *in, size_t n, int16_t *out)
{
    (void)ctx;
    size_t m = 0;
    for (size_t i = 0; i + 2 < n; i += 3) /* frames are multiples of 3 */
        out[m++] = in[i + 2];
    return m;
}

TEST(resample_quality_measure_detects_bad)
{
    struct bad_subject b = {.naive = 1};
    struct dsp_quality q;
    struct dsp_quality_subject up = {8000, 24000, &b, bad_reset, bad_up};
    CHECK_EQ(dsp_quality_measure(&up, &q), 0);
    /* Sample repetition: a sinc-shaped passband and images only sinc-attenuated. */
    CHECK_MSG(q.ripple_db > 1.0 && q.rejection_db < 20.0, "ripple %.3f rejection %.2f", q.ripple_db,
              q.rejection_db);
    struct dsp_quality_subject down = {24000, 8000, &b, bad_reset, bad_down};
    CHECK_EQ(dsp_quality_measure(&down, &q), 0);
    CHECK_MSG(q.ripple_db < 0.01 && q.rejection_db < 1.0, "ripple %.3f rejection %.2f", q.ripple_db,
              q.rejection_db);
    /* Our resampler behind 24 samples (1 ms) of extra delay. */
    b = (struct bad_subject){.delay = 24};
    CHECK_EQ(dsp_quality_measure(&up, &q), 0);
    CHECK_MSG(fabs(q.delay_ms - (resample_up_delay_ms() + 1.0)) < 0.005, "delay %.4f", q.delay_ms);
    CHECK(q.rejection_db > 60.0);
    struct dsp_quality_subject odd = {8000, 11025, &b, bad_reset, bad_up};
    CHECK_EQ(dsp_quality_measure(&odd, &q), -EINVAL);
}

TEST(resample_up_no_lag)
{
    /* Exactly 3n out per n in, every call, from the first; nothing written beyond. */
    int16_t in[7] = {1000, -2000, 3000, 0, 32767, -32768, 5};
    int16_t out[3 * 7 + 4];
    struct resample_up st;
    resample_up_init(&st);
    for (size_t n = 0; n <= 7; n++) {
        for (size_t i = 0; i < sizeof out / sizeof *out; i++)
            out[i] = 0x5555;
        resample_up(&st, in, n, out);
        for (size_t i = 3 * n; i < sizeof out / sizeof *out; i++)
            CHECK_EQ(out[i], 0x5555);
    }
    /* The first input sample already shows in the first outputs (taps[0] != 0). */
    resample_up_init(&st);
    int16_t imp = 30000;
    resample_up(&st, &imp, 1, out);
    CHECK(out[0] != 0 || out[1] != 0 || out[2] != 0);
}

TEST(resample_down_no_lag)
{
    /* Fed one sample at a time, output m appears with input 3m + 2, never later. */
    int16_t *x = make_signal(3000, 7);
    struct resample_down st;
    resample_down_init(&st);
    int16_t out[4];
    size_t total = 0;
    for (size_t i = 0; i < 3000; i++) {
        out[1] = 0x5555;
        size_t got = resample_down(&st, x + i, 1, out);
        CHECK_EQ(got, (i % 3 == 2) ? 1 : 0);
        CHECK_EQ(out[1], 0x5555);
        total += got;
        CHECK_EQ(total, (i + 1) / 3);
    }
    /* Counts with a carried residue never exceed resample_down_max_out. */
    resample_down_init(&st);
    int16_t big[8];
    total = 0;
    size_t fed = 0;
    for (size_t n = 0; n < 300; n++) {
        size_t len = n % 7;
        size_t got = resample_down(&st, x, len, big);
        CHECK(got <= resample_down_max_out(len));
        fed += len;
        total += got;
        CHECK_EQ(total, fed / 3);
    }
    free(x);
}

/* ---- streaming: the same bits however the input is cut ---------------------------------- */

enum cut { CUT_WHOLE, CUT_FRAMES, CUT_RANDOM, CUT_SINGLE };

static size_t next_len(enum cut cut, size_t frame, size_t left)
{
    size_t len;
    switch (cut) {
    case CUT_WHOLE:
        len = left;
        break;
    case CUT_FRAMES:
        len = frame;
        break;
    case CUT_SINGLE:
        len = 1;
        break;
    default:
        /* Mostly small and odd, sometimes empty, sometimes several frames at once. */
        len = rng_next() % 8 == 0 ? rng_next() % 2000 : rng_next() % 9;
        break;
    }
    return len < left ? len : left;
}

static void run_up(enum cut cut, const int16_t *x, size_t n, int16_t *y)
{
    struct resample_up st;
    resample_up_init(&st);
    rng_state = 99;
    for (size_t i = 0; i < n;) {
        size_t len = next_len(cut, 160, n - i);
        resample_up(&st, x + i, len, y + 3 * i);
        i += len;
    }
}

static size_t run_down(enum cut cut, const int16_t *x, size_t n, int16_t *y)
{
    struct resample_down st;
    resample_down_init(&st);
    rng_state = 99;
    size_t got = 0;
    for (size_t i = 0; i < n;) {
        size_t len = next_len(cut, 480, n - i);
        got += resample_down(&st, x + i, len, y + got);
        i += len;
    }
    return got;
}

static void check_bitexact(const char *kernel)
{
    if (!select_kernel(kernel))
        return;
    size_t n = 48000; /* 2 s at 24 kHz, 6 s at 8 kHz */
    int16_t *x = make_signal(n, 1234);
    int16_t *a = malloc(3 * n * sizeof *a), *b = malloc(3 * n * sizeof *b);
    CHECK(a != NULL && b != NULL);

    run_up(CUT_WHOLE, x, n, a);
    for (enum cut c = CUT_FRAMES; c <= CUT_SINGLE; c++) {
        memset(b, 0x55, 3 * n * sizeof *b);
        run_up(c, x, n, b);
        CHECK_MSG(memcmp(a, b, 3 * n * sizeof *a) == 0, "%s up: cut %d differs", kernel, c);
    }
    size_t m = run_down(CUT_WHOLE, x, n, a);
    CHECK_EQ(m, n / 3);
    for (enum cut c = CUT_FRAMES; c <= CUT_SINGLE; c++) {
        memset(b, 0x55, m * sizeof *b);
        CHECK_EQ(run_down(c, x, n, b), m);
        CHECK_MSG(memcmp(a, b, m * sizeof *a) == 0, "%s down: cut %d differs", kernel, c);
    }
    free(b);
    free(a);
    free(x);
}

TEST(resample_streaming_bitexact_generic)
{
    check_bitexact("generic");
}

TEST(resample_streaming_bitexact_avx2)
{
    check_bitexact("avx2");
}

TEST(resample_huge_call)
{
    /* One call far larger than any internal buffer equals 20 ms frames. */
    size_t n = 8000 * 60;
    int16_t *x = make_signal(n, 77);
    int16_t *a = malloc(3 * n * sizeof *a), *b = malloc(3 * n * sizeof *b);
    CHECK(a != NULL && b != NULL);
    run_up(CUT_WHOLE, x, n, a);
    run_up(CUT_FRAMES, x, n, b);
    CHECK(memcmp(a, b, 3 * n * sizeof *a) == 0);
    CHECK_EQ(run_down(CUT_WHOLE, x, n, a), n / 3);
    CHECK_EQ(run_down(CUT_FRAMES, x, n, b), n / 3);
    CHECK(memcmp(a, b, n / 3 * sizeof *a) == 0);
    free(b);
    free(a);
    free(x);
}

TEST(resample_init_resets)
{
    int16_t *x = make_signal(3000, 5);
    int16_t a[9000], b[9000];
    struct resample_up up;
    resample_up_init(&up);
    resample_up(&up, x, 1000, a);
    resample_up(&up, x + 1000, 1000, a);
    resample_up_init(&up);
    resample_up(&up, x, 1000, b);
    run_up(CUT_WHOLE, x, 1000, a);
    CHECK(memcmp(a, b, 3000 * sizeof *a) == 0);

    struct resample_down down;
    resample_down_init(&down);
    resample_down(&down, x, 1001, a); /* leaves two pending */
    resample_down_init(&down);
    CHECK_EQ(resample_down(&down, x, 3000, b), 1000);
    CHECK_EQ(run_down(CUT_WHOLE, x, 3000, a), 1000);
    CHECK(memcmp(a, b, 1000 * sizeof *a) == 0);
    free(x);
}

TEST(resample_silence_and_empty)
{
    int16_t zero[480] = {0}, out[1440];
    struct resample_up up;
    struct resample_down down;
    resample_up_init(&up);
    resample_down_init(&down);
    resample_up(&up, NULL, 0, NULL);
    CHECK_EQ(resample_down(&down, NULL, 0, NULL), 0);
    memset(out, 0x55, sizeof out);
    resample_up(&up, zero, 480, out);
    for (size_t i = 0; i < 1440; i++)
        CHECK_EQ(out[i], 0);
    memset(out, 0x55, sizeof out);
    CHECK_EQ(resample_down(&down, zero, 480, out), 160);
    for (size_t i = 0; i < 160; i++)
        CHECK_EQ(out[i], 0);
}

/* ---- kernels against the reference and each other ---------------------------------------- */

static void check_reference(const char *kernel)
{
    if (!select_kernel(kernel))
        return;
    size_t n = 30000;
    int16_t *x = make_signal(n, 4321);
    int16_t *y = malloc(3 * n * sizeof *y);
    double *ref = malloc(3 * n * sizeof *ref);
    CHECK(y != NULL && ref != NULL);
    double worst = 0.0;
    size_t saturated = 0;

    run_up(CUT_FRAMES, x, n, y);
    resample_ref_up(x, n, ref);
    for (size_t j = 0; j < 3 * n; j++) {
        double d = fabs(y[j] - clamp_s16(ref[j]));
        worst = d > worst ? d : worst;
        CHECK_MSG(d <= REF_BOUND_LSB, "%s up[%zu] = %d, reference %.4f", kernel, j, y[j], ref[j]);
        saturated += ref[j] > 32767.5 || ref[j] < -32768.5;
    }
    size_t m = run_down(CUT_FRAMES, x, n, y);
    CHECK_EQ(resample_ref_down(x, n, ref), m);
    for (size_t j = 0; j < m; j++) {
        double d = fabs(y[j] - clamp_s16(ref[j]));
        worst = d > worst ? d : worst;
        CHECK_MSG(d <= REF_BOUND_LSB, "%s down[%zu] = %d, reference %.4f", kernel, j, y[j], ref[j]);
        saturated += ref[j] > 32767.5 || ref[j] < -32768.5;
    }
    /* The signal did drive both directions into saturation, and the bound is not slack. */
    CHECK(saturated > 100);
    CHECK(worst > 0.5);
    free(ref);
    free(y);
    free(x);
}

TEST(resample_matches_reference_generic)
{
    check_reference("generic");
}

TEST(resample_matches_reference_avx2)
{
    check_reference("avx2");
}

TEST(resample_kernels_agree)
{
    if (resample_select_kernel("avx2") != 0)
        return; /* one kernel only: nothing to compare */
    size_t n = 30000;
    int16_t *x = make_signal(n, 999);
    int16_t *g = malloc(3 * n * sizeof *g), *v = malloc(3 * n * sizeof *v);
    CHECK(g != NULL && v != NULL);
    size_t differ = 0;

    CHECK(select_kernel("generic"));
    run_up(CUT_RANDOM, x, n, g);
    CHECK(select_kernel("avx2"));
    run_up(CUT_RANDOM, x, n, v);
    for (size_t j = 0; j < 3 * n; j++) {
        CHECK_MSG(abs(g[j] - v[j]) <= 1, "up[%zu]: generic %d avx2 %d", j, g[j], v[j]);
        differ += g[j] != v[j];
    }
    CHECK(select_kernel("generic"));
    size_t m = run_down(CUT_RANDOM, x, n, g);
    CHECK(select_kernel("avx2"));
    CHECK_EQ(run_down(CUT_RANDOM, x, n, v), m);
    for (size_t j = 0; j < m; j++) {
        CHECK_MSG(abs(g[j] - v[j]) <= 1, "down[%zu]: generic %d avx2 %d", j, g[j], v[j]);
        differ += g[j] != v[j];
    }
    CHECK_MSG(differ * 1000 < 3 * n + m, "%zu of %zu samples differ", differ, 3 * n + m);
    free(v);
    free(g);
    free(x);
}

TEST(resample_saturates)
{
    /* A full-scale square wave overshoots (Gibbs): the output clips, it never wraps. */
    int16_t x[2400], y[7200];
    double ref[7200];
    for (size_t i = 0; i < 2400; i++)
        x[i] = (i / 10) % 2 ? 32767 : -32768;
    for (size_t k = 0; k < 2; k++) {
        if (!select_kernel(kernels[k]))
            continue;
        struct resample_up up;
        resample_up_init(&up);
        resample_up(&up, x, 2400, y);
        resample_ref_up(x, 2400, ref);
        size_t hi = 0, lo = 0;
        for (size_t j = 0; j < 7200; j++) {
            if (ref[j] >= 32767.5) {
                CHECK_EQ(y[j], 32767);
                hi++;
            }
            if (ref[j] <= -32768.5) {
                CHECK_EQ(y[j], -32768);
                lo++;
            }
        }
        CHECK(hi > 10 && lo > 10);
        struct resample_down down;
        resample_down_init(&down);
        size_t m = resample_down(&down, x, 2400, y);
        CHECK_EQ(resample_ref_down(x, 2400, ref), m);
        hi = lo = 0;
        for (size_t j = 0; j < m; j++) {
            if (ref[j] >= 32767.5) {
                CHECK_EQ(y[j], 32767);
                hi++;
            }
            if (ref[j] <= -32768.5) {
                CHECK_EQ(y[j], -32768);
                lo++;
            }
        }
        CHECK(hi > 10 && lo > 10);
    }
}

/* ---- mu-law fused forms ---------------------------------------------------------------------- */

TEST(resample_ulaw_matches_pcm)
{
    for (size_t k = 0; k < 2; k++) {
        if (!select_kernel(kernels[k]))
            continue;
        size_t n = 4800;
        uint8_t codes[4800], enc[1601], enc2[1601];
        int16_t pcm[4800], a[14400], b[14400];
        rng_state = 31;
        for (size_t i = 0; i < n; i++)
            codes[i] = (uint8_t)rng_next();
        g711_ulaw_decode_block(codes, n, pcm);

        struct resample_up up;
        resample_up_init(&up);
        for (size_t i = 0; i < n; i += 160) /* Twilio's frames */
            resample_up_ulaw(&up, codes + i, 160, a + 3 * i);
        run_up(CUT_WHOLE, pcm, n, b);
        CHECK(memcmp(a, b, sizeof a) == 0);
        resample_up_init(&up);
        resample_up_ulaw(&up, codes, n, b);
        CHECK(memcmp(a, b, sizeof a) == 0);

        int16_t *x = make_signal(n, 8);
        size_t m = run_down(CUT_WHOLE, x, n, a);
        g711_ulaw_encode_block(a, m, enc);
        struct resample_down down;
        resample_down_init(&down);
        size_t got = 0;
        rng_state = 5;
        for (size_t i = 0; i < n;) {
            size_t len = rng_next() % 700;
            len = len < n - i ? len : n - i;
            size_t r = resample_down_ulaw(&down, x + i, len, enc2 + got);
            CHECK(r <= resample_down_max_out(len));
            got += r;
            i += len;
        }
        CHECK_EQ(got, m);
        CHECK(memcmp(enc, enc2, m) == 0);
        free(x);
    }
}

/* ---- kernel choice ----------------------------------------------------------------------------
 */

TEST(resample_select_kernel)
{
    int has_avx2 = 0;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    CHECK_EQ(resample_select_kernel("sse9"), -EINVAL);
    CHECK_EQ(resample_select_kernel(NULL), -EINVAL);
    CHECK_EQ(resample_select_kernel("generic"), 0);
    CHECK(strcmp(resample_kernel_name(), "generic") == 0);
    CHECK_EQ(resample_select_kernel("avx2"), has_avx2 ? 0 : -ENOTSUP);
    CHECK(strcmp(resample_kernel_name(), has_avx2 ? "avx2" : "generic") == 0);
    CHECK_EQ(resample_select_kernel("generic"), 0);
    CHECK_EQ(resample_select_kernel("auto"), 0);
    CHECK(strcmp(resample_kernel_name(), has_avx2 ? "avx2" : "generic") == 0);
}

TEST(resample_kernel_from_env)
{
    /* A fresh process (each test is one): the variable is read on first use. */
    CHECK_EQ(setenv("VB_DSP_KERNEL", "generic", 1), 0);
    int16_t x[3] = {1, 2, 3}, y[9];
    struct resample_up up;
    resample_up_init(&up);
    resample_up(&up, x, 3, y);
    CHECK(strcmp(resample_kernel_name(), "generic") == 0);
    /* Later changes of the variable do not matter; an explicit choice does. */
    CHECK_EQ(setenv("VB_DSP_KERNEL", "nonsense", 1), 0);
    CHECK(strcmp(resample_kernel_name(), "generic") == 0);
}

TEST(resample_kernel_env_invalid_is_auto)
{
    CHECK_EQ(setenv("VB_DSP_KERNEL", "nonsense", 1), 0);
    const char *name = resample_kernel_name();
    CHECK_EQ(resample_select_kernel("auto"), 0);
    CHECK(strcmp(name, resample_kernel_name()) == 0);
}

/* First use from several threads at once (the lazy kernel choice must not race; TSan runs the
 * tests named *concurrent*), each thread with its own states, all getting the same output. */
struct concurrent_job {
    const int16_t *x;
    int16_t up[3 * 4800];
    int16_t down[1600];
};

static void *concurrent_run(void *arg)
{
    struct concurrent_job *job = arg;
    run_up(CUT_FRAMES, job->x, 4800, job->up);
    run_down(CUT_FRAMES, job->x, 4800, job->down);
    return NULL;
}

TEST(resample_concurrent_first_use)
{
    int16_t *x = make_signal(4800, 3);
    static struct concurrent_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i].x = x;
        CHECK_EQ(pthread_create(&th[i], NULL, concurrent_run, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    for (int i = 1; i < 4; i++) {
        CHECK(memcmp(jobs[0].up, jobs[i].up, sizeof jobs[0].up) == 0);
        CHECK(memcmp(jobs[0].down, jobs[i].down, sizeof jobs[0].down) == 0);
    }
    free(x);
}
