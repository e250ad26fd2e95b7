/* 8 kHz <-> 24 kHz resampler: streaming state, the portable C kernel, and the choice of kernel.
 * Each call copies the state's history into a float work buffer in front of the new samples,
 * lets the kernel filter whole chunks of at most one 20 ms frame, and keeps the tail as the next
 * history, so output never depends on how the stream was cut. No allocation: stack buffers. */
#include "dsp/resample.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "dsp/g711.h"
#include "dsp/resample_kernel.h"
#include "dsp/resample_taps.h"

#define UP_HIST (RESAMPLE_UP_BRANCH - 1)
#define DOWN_HIST (RESAMPLE_DOWN_BRANCH - 1)

_Static_assert(RESAMPLE_UP_TAPS % 3 == 0 && RESAMPLE_DOWN_TAPS % 3 == 0,
               "polyphase branches must be equally long");
_Static_assert(RESAMPLE_UP_TAPS == RESAMPLE_UP_TAPS_DESIGNED &&
                   RESAMPLE_DOWN_TAPS == RESAMPLE_DOWN_TAPS_DESIGNED,
               "resample-t.h and resample_taps.h disagree on tap counts");

/* ---- portable kernel --------------------------------------------------------------------- */

/* Round half to even and saturate. Adding and removing 1.5 * 2^23 leaves the nearest integer
 * in any float below 2^22 (the same rounding as cvtps2dq); the clamp comes first so the
 * largest value still rounds to 32767. */
static inline int16_t generic_to_s16(float v)
{
    if (v > 32767.0f)
        v = 32767.0f;
    if (v < -32768.0f)
        v = -32768.0f;
    v = (v + 0x1.8p23f) - 0x1.8p23f;
    return (int16_t)v;
}

static void generic_widen(const int16_t *in, size_t n, float *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = in[i];
}

/* Plain multiply then add (C11 mode: the compiler does not fuse them), taps in order; blocks of
 * 8 outputs only so the compiler can keep them in vector registers, the tail does the same sums. */
static void generic_up(const float *x, size_t n, int16_t *out)
{
    const float *c = resample_up_taps;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int p = 0; p < 3; p++) {
            float acc[8] = {0};
            for (int q = 0; q < RESAMPLE_UP_BRANCH; q++) {
                float k = c[3 * q + p];
                for (int v = 0; v < 8; v++)
                    acc[v] += k * x[(ptrdiff_t)(i + v) - q];
            }
            for (int v = 0; v < 8; v++)
                out[3 * (i + v) + p] = generic_to_s16(acc[v]);
        }
    }
    for (; i < n; i++) {
        for (int p = 0; p < 3; p++) {
            float acc = 0.0f;
            for (int q = 0; q < RESAMPLE_UP_BRANCH; q++)
                acc += c[3 * q + p] * x[(ptrdiff_t)i - q];
            out[3 * i + p] = generic_to_s16(acc);
        }
    }
}

static void generic_split(const int16_t *in, size_t m, float *s0, float *s1, float *s2)
{
    for (size_t j = 0; j < m; j++) {
        s2[j] = in[3 * j];
        s1[j] = in[3 * j + 1];
        s0[j] = in[3 * j + 2];
    }
}

static void generic_down(const float *s0, const float *s1, const float *s2, size_t m, int16_t *out)
{
    const float *c = resample_down_taps;
    size_t j = 0;
    for (; j + 8 <= m; j += 8) {
        float acc[8] = {0};
        for (int q = 0; q < RESAMPLE_DOWN_BRANCH; q++) {
            float k0 = c[3 * q], k1 = c[3 * q + 1], k2 = c[3 * q + 2];
            for (int v = 0; v < 8; v++) {
                ptrdiff_t t = (ptrdiff_t)(j + v) - q;
                acc[v] += k0 * s0[t];
                acc[v] += k1 * s1[t];
                acc[v] += k2 * s2[t];
            }
        }
        for (int v = 0; v < 8; v++)
            out[j + v] = generic_to_s16(acc[v]);
    }
    for (; j < m; j++) {
        float acc = 0.0f;
        for (int q = 0; q < RESAMPLE_DOWN_BRANCH; q++) {
            ptrdiff_t t = (ptrdiff_t)j - q;
            acc += c[3 * q] * s0[t];
            acc += c[3 * q + 1] * s1[t];
            acc += c[3 * q + 2] * s2[t];
        }
        out[j] = generic_to_s16(acc);
    }
}

static const struct resample_kernel resample_kernel_generic = {
    .name = "generic",
    .widen = generic_widen,
    .up = generic_up,
    .split = generic_split,
    .down = generic_down,
};

/* ---- kernel choice ----------------------------------------------------------------------- */

/* Set once, on first use or by resample_select_kernel; the kernels are immutable constants, so
 * racing first uses only store the same pointer. */
static _Atomic(const struct resample_kernel *) resample_kernel_cur;

static int cpu_has_avx2(void)
{
#ifdef RESAMPLE_HAVE_AVX2
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

static int kernel_lookup(const char *name, const struct resample_kernel **out)
{
    if (strcmp(name, "generic") == 0) {
        *out = &resample_kernel_generic;
        return 0;
    }
    if (strcmp(name, "avx2") == 0) {
#ifdef RESAMPLE_HAVE_AVX2
        if (cpu_has_avx2()) {
            *out = &resample_kernel_avx2;
            return 0;
        }
#endif
        return -ENOTSUP;
    }
    if (strcmp(name, "auto") == 0) {
#ifdef RESAMPLE_HAVE_AVX2
        if (cpu_has_avx2()) {
            *out = &resample_kernel_avx2;
            return 0;
        }
#endif
        *out = &resample_kernel_generic;
        return 0;
    }
    return -EINVAL;
}

/* First use: VB_DSP_KERNEL if it names a kernel this CPU runs, otherwise "auto" (dsp/ does no
 * I/O, so a bad value cannot be reported here; resample_kernel_name shows what was chosen). */
static const struct resample_kernel *kernel_get(void)
{
    const struct resample_kernel *k =
        atomic_load_explicit(&resample_kernel_cur, memory_order_acquire);
    if (k != NULL)
        return k;
    const char *env = getenv("VB_DSP_KERNEL");
    if (env == NULL || kernel_lookup(env, &k) != 0)
        kernel_lookup("auto", &k);
    const struct resample_kernel *expected = NULL;
    if (!atomic_compare_exchange_strong_explicit(&resample_kernel_cur, &expected, k,
                                                 memory_order_acq_rel, memory_order_acquire))
        k = expected;
    return k;
}

int resample_select_kernel(const char *name)
{
    const struct resample_kernel *k;
    if (name == NULL)
        return -EINVAL;
    int rc = kernel_lookup(name, &k);
    if (rc != 0)
        return rc;
    atomic_store_explicit(&resample_kernel_cur, k, memory_order_release);
    return 0;
}

const char *resample_kernel_name(void)
{
    return kernel_get()->name;
}

/* Output sample k of either direction is labelled with time k / rate; an input sample likewise.
 * Up: out[j] leans on in[(j - (TAPS-1)/2) / 3]. Down: out[m] is the filter centred at input
 * 3m + 2 - (TAPS-1)/2, i.e. (TAPS-1)/2 - 2 input samples behind its own time 3m. */
double resample_up_delay_ms(void)
{
    return (RESAMPLE_UP_TAPS - 1) / 2.0 / 24.0;
}

double resample_down_delay_ms(void)
{
    return ((RESAMPLE_DOWN_TAPS - 1) / 2.0 - 2.0) / 24.0;
}

/* ---- streaming --------------------------------------------------------------------------- */

void resample_up_init(struct resample_up *st)
{
    memset(st, 0, sizeof *st);
}

void resample_up(struct resample_up *st, const int16_t *in, size_t n, int16_t *out)
{
    const struct resample_kernel *k = kernel_get();
    float buf[UP_HIST + RESAMPLE_CHUNK];

    if (n == 0)
        return;
    memcpy(buf, st->hist, sizeof st->hist);
    while (n > 0) {
        size_t c = n < RESAMPLE_CHUNK ? n : RESAMPLE_CHUNK;
        k->widen(in, c, buf + UP_HIST);
        k->up(buf + UP_HIST, c, out);
        memmove(buf, buf + c, sizeof st->hist);
        in += c;
        out += 3 * c;
        n -= c;
    }
    memcpy(st->hist, buf, sizeof st->hist);
}

void resample_up_ulaw(struct resample_up *st, const uint8_t *in, size_t n, int16_t *out)
{
    int16_t pcm[RESAMPLE_CHUNK];
    while (n > 0) {
        size_t c = n < RESAMPLE_CHUNK ? n : RESAMPLE_CHUNK;
        g711_ulaw_decode_block(in, c, pcm);
        resample_up(st, pcm, c, out);
        in += c;
        out += 3 * c;
        n -= c;
    }
}

void resample_down_init(struct resample_down *st)
{
    memset(st, 0, sizeof *st);
}

size_t resample_down(struct resample_down *st, const int16_t *in, size_t n, int16_t *out)
{
    const struct resample_kernel *k = kernel_get();
    float s[3][DOWN_HIST + RESAMPLE_CHUNK];
    size_t produced = 0, m = 0;

    if (st->npending + n < 3) {
        for (size_t i = 0; i < n; i++)
            st->pending[st->npending++] = in[i];
        return 0;
    }
    for (int p = 0; p < 3; p++)
        memcpy(s[p], st->hist[p], sizeof st->hist[p]);
    if (st->npending > 0) {
        /* Complete the triple begun by the previous call: it is output 0 of this one. */
        float t[3];
        size_t take = 3 - st->npending;
        for (unsigned i = 0; i < st->npending; i++)
            t[i] = st->pending[i];
        for (size_t i = 0; i < take; i++)
            t[st->npending + i] = in[i];
        s[2][DOWN_HIST] = t[0];
        s[1][DOWN_HIST] = t[1];
        s[0][DOWN_HIST] = t[2];
        st->npending = 0;
        in += take;
        n -= take;
        m = 1;
    }
    for (;;) {
        size_t c = n / 3;
        if (c > RESAMPLE_CHUNK - m)
            c = RESAMPLE_CHUNK - m;
        k->split(in, c, s[0] + DOWN_HIST + m, s[1] + DOWN_HIST + m, s[2] + DOWN_HIST + m);
        in += 3 * c;
        n -= 3 * c;
        m += c;
        k->down(s[0] + DOWN_HIST, s[1] + DOWN_HIST, s[2] + DOWN_HIST, m, out);
        out += m;
        produced += m;
        for (int p = 0; p < 3; p++)
            memmove(s[p], s[p] + m, sizeof st->hist[p]);
        m = 0;
        if (n < 3)
            break;
    }
    for (int p = 0; p < 3; p++)
        memcpy(st->hist[p], s[p], sizeof st->hist[p]);
    for (size_t i = 0; i < n; i++)
        st->pending[st->npending++] = in[i];
    return produced;
}

size_t resample_down_ulaw(struct resample_down *st, const int16_t *in, size_t n, uint8_t *out)
{
    /* Whole chunks of input triples, so the pcm buffer holds every output of one step. */
    int16_t pcm[RESAMPLE_CHUNK + 1];
    size_t produced = 0;
    while (n > 0) {
        size_t c = n < 3 * RESAMPLE_CHUNK ? n : 3 * RESAMPLE_CHUNK;
        size_t got = resample_down(st, in, c, pcm);
        g711_ulaw_encode_block(pcm, got, out + produced);
        produced += got;
        in += c;
        n -= c;
    }
    return produced;
}
