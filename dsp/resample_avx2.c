/* AVX2+FMA kernels of the resampler (the only file built with -mavx2 -mfma; the dispatcher in
 * resample.c calls it only on a CPU that has both). Vectorised across output samples: each lane
 * sums the taps in order with one FMA per tap, and the scalar tail does the same with fmaf, so
 * a sample's value does not depend on where it falls in a call. */
#include "dsp/resample_kernel.h"

#include <immintrin.h>
#include <math.h>

#include "dsp/resample_taps.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* Enough independent accumulators (each a chain of FMAs) to hide FMA latency: 10 vectors =
 * 80 outputs, so a 20 ms frame (160 samples) is exactly two blocks. */
#define BLOCK 10

static ALWAYS_INLINE __m128i pack8(__m256 v)
{
    __m256i i = _mm256_cvtps_epi32(v); /* round half to even (MXCSR default) */
    return _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
}

/* The same rounding and saturation for one sample. */
static ALWAYS_INLINE int16_t to_s16(float v)
{
    int r = _mm_cvtss_si32(_mm_set_ss(v));
    return (int16_t)(r > 32767 ? 32767 : r < -32768 ? -32768 : r);
}

static void avx2_widen(const int16_t *in, size_t n, float *out)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i s = _mm_loadu_si128((const __m128i *)(in + i));
        _mm256_storeu_ps(out + i, _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(s)));
    }
    for (; i < n; i++)
        out[i] = in[i];
}

/* ---- up: three branch FIRs over the same input, then interleave ------------------------- */

/* y[8v + l] = sum_q c[3q] * x[8v + l - q] for V vectors. */
static ALWAYS_INLINE void up_block(const float *x, const float *c, float *y, const int V)
{
    __m256 acc[BLOCK];
#pragma GCC unroll 16
    for (int v = 0; v < V; v++)
        acc[v] = _mm256_setzero_ps();
    for (int q = 0; q < RESAMPLE_UP_BRANCH; q++) {
        __m256 k = _mm256_broadcast_ss(c + 3 * q);
#pragma GCC unroll 16
        for (int v = 0; v < V; v++)
            acc[v] = _mm256_fmadd_ps(k, _mm256_loadu_ps(x + 8 * v - q), acc[v]);
    }
#pragma GCC unroll 16
    for (int v = 0; v < V; v++)
        _mm256_storeu_ps(y + 8 * v, acc[v]);
}

static void up_branch(const float *x, const float *c, size_t n, float *y)
{
    size_t i = 0;
    for (; i + 8 * BLOCK <= n; i += 8 * BLOCK)
        up_block(x + i, c, y + i, BLOCK);
    for (; i + 8 <= n; i += 8)
        up_block(x + i, c, y + i, 1);
    for (; i < n; i++) {
        float acc = 0.0f;
        for (int q = 0; q < RESAMPLE_UP_BRANCH; q++)
            acc = fmaf(c[3 * q], x[(ptrdiff_t)i - q], acc);
        y[i] = acc;
    }
}

/* Interleave three vectors of 8 int16 (a, b, c) into a0 b0 c0 a1 b1 c1 ... c7 (48 bytes):
 * shuffle each so its elements sit where they belong modulo 3 in the three output vectors,
 * then two blends per output vector pick them. */
static ALWAYS_INLINE void interleave3(__m128i a, __m128i b, __m128i c, int16_t *out)
{
    /* a' = a0 a3 a6 a1 a4 a7 a2 a5, b' = b5 b0 b3 b6 b1 b4 b7 b2, c' = c2 c5 c0 c3 c6 c1 c4 c7 */
    const __m128i sa = _mm_setr_epi8(0, 1, 6, 7, 12, 13, 2, 3, 8, 9, 14, 15, 4, 5, 10, 11);
    const __m128i sb = _mm_setr_epi8(10, 11, 0, 1, 6, 7, 12, 13, 2, 3, 8, 9, 14, 15, 4, 5);
    const __m128i sc = _mm_setr_epi8(4, 5, 10, 11, 0, 1, 6, 7, 12, 13, 2, 3, 8, 9, 14, 15);
    a = _mm_shuffle_epi8(a, sa);
    b = _mm_shuffle_epi8(b, sb);
    c = _mm_shuffle_epi8(c, sc);
    /* o0: a at 0,3,6  b at 1,4,7  c at 2,5
     * o1: c at 0,3,6  a at 1,4,7  b at 2,5
     * o2: b at 0,3,6  c at 1,4,7  a at 2,5 */
    __m128i o0 = _mm_blend_epi16(_mm_blend_epi16(a, b, 0x92), c, 0x24);
    __m128i o1 = _mm_blend_epi16(_mm_blend_epi16(c, a, 0x92), b, 0x24);
    __m128i o2 = _mm_blend_epi16(_mm_blend_epi16(b, c, 0x92), a, 0x24);
    _mm_storeu_si128((__m128i *)out, o0);
    _mm_storeu_si128((__m128i *)(out + 8), o1);
    _mm_storeu_si128((__m128i *)(out + 16), o2);
}

static void avx2_up(const float *x, size_t n, int16_t *out)
{
    float y[3][RESAMPLE_CHUNK];
    for (int p = 0; p < 3; p++)
        up_branch(x, resample_up_taps + p, n, y[p]);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        interleave3(pack8(_mm256_loadu_ps(y[0] + i)), pack8(_mm256_loadu_ps(y[1] + i)),
                    pack8(_mm256_loadu_ps(y[2] + i)), out + 3 * i);
    for (; i < n; i++)
        for (int p = 0; p < 3; p++)
            out[3 * i + p] = to_s16(y[p][i]);
}

/* ---- down: split the input by position in its triple, one 3-stream FIR -------------------- */

static void avx2_split(const int16_t *in, size_t m, float *s0, float *s1, float *s2)
{
    /* Of three consecutive 8-word loads a, b, c (24 samples), each stream's 8 samples sit at
     * distinct word positions: stream 2 (samples 0,3,..,21) is a0 a3 a6, b1 b4 b7, c2 c5;
     * stream 1 is c0 c3 c6, a1 a4 a7, b2 b5; stream 0 is b0 b3 b6, c1 c4 c7, a2 a5. Two blends
     * gather a stream, one shuffle puts it in order. */
    const __m128i o2 = _mm_setr_epi8(0, 1, 6, 7, 12, 13, 2, 3, 8, 9, 14, 15, 4, 5, 10, 11);
    const __m128i o1 = _mm_setr_epi8(2, 3, 8, 9, 14, 15, 4, 5, 10, 11, 0, 1, 6, 7, 12, 13);
    const __m128i o0 = _mm_setr_epi8(4, 5, 10, 11, 0, 1, 6, 7, 12, 13, 2, 3, 8, 9, 14, 15);
    size_t j = 0;
    for (; j + 8 <= m; j += 8) {
        const int16_t *p = in + 3 * j;
        __m128i a = _mm_loadu_si128((const __m128i *)p);
        __m128i b = _mm_loadu_si128((const __m128i *)(p + 8));
        __m128i c = _mm_loadu_si128((const __m128i *)(p + 16));
        __m128i t2 = _mm_blend_epi16(_mm_blend_epi16(a, b, 0x92), c, 0x24);
        __m128i t1 = _mm_blend_epi16(_mm_blend_epi16(a, b, 0x24), c, 0x49);
        __m128i t0 = _mm_blend_epi16(_mm_blend_epi16(a, b, 0x49), c, 0x92);
        t2 = _mm_shuffle_epi8(t2, o2);
        t1 = _mm_shuffle_epi8(t1, o1);
        t0 = _mm_shuffle_epi8(t0, o0);
        _mm256_storeu_ps(s2 + j, _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(t2)));
        _mm256_storeu_ps(s1 + j, _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(t1)));
        _mm256_storeu_ps(s0 + j, _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(t0)));
    }
    for (; j < m; j++) {
        s2[j] = in[3 * j];
        s1[j] = in[3 * j + 1];
        s0[j] = in[3 * j + 2];
    }
}

static ALWAYS_INLINE void down_block(const float *s0, const float *s1, const float *s2,
                                     int16_t *out, const int V)
{
    const float *c = resample_down_taps;
    __m256 acc[BLOCK];
#pragma GCC unroll 16
    for (int v = 0; v < V; v++)
        acc[v] = _mm256_setzero_ps();
    for (int q = 0; q < RESAMPLE_DOWN_BRANCH; q++) {
        __m256 k0 = _mm256_broadcast_ss(c + 3 * q);
#pragma GCC unroll 16
        for (int v = 0; v < V; v++)
            acc[v] = _mm256_fmadd_ps(k0, _mm256_loadu_ps(s0 + 8 * v - q), acc[v]);
        __m256 k1 = _mm256_broadcast_ss(c + 3 * q + 1);
#pragma GCC unroll 16
        for (int v = 0; v < V; v++)
            acc[v] = _mm256_fmadd_ps(k1, _mm256_loadu_ps(s1 + 8 * v - q), acc[v]);
        __m256 k2 = _mm256_broadcast_ss(c + 3 * q + 2);
#pragma GCC unroll 16
        for (int v = 0; v < V; v++)
            acc[v] = _mm256_fmadd_ps(k2, _mm256_loadu_ps(s2 + 8 * v - q), acc[v]);
    }
#pragma GCC unroll 16
    for (int v = 0; v < V; v++)
        _mm_storeu_si128((__m128i *)(out + 8 * v), pack8(acc[v]));
}

static void avx2_down(const float *s0, const float *s1, const float *s2, size_t m, int16_t *out)
{
    const float *c = resample_down_taps;
    size_t j = 0;
    for (; j + 8 * BLOCK <= m; j += 8 * BLOCK)
        down_block(s0 + j, s1 + j, s2 + j, out + j, BLOCK);
    for (; j + 8 <= m; j += 8)
        down_block(s0 + j, s1 + j, s2 + j, out + j, 1);
    for (; j < m; j++) {
        float acc = 0.0f;
        for (int q = 0; q < RESAMPLE_DOWN_BRANCH; q++) {
            ptrdiff_t t = (ptrdiff_t)j - q;
            acc = fmaf(c[3 * q], s0[t], acc);
            acc = fmaf(c[3 * q + 1], s1[t], acc);
            acc = fmaf(c[3 * q + 2], s2[t], acc);
        }
        out[j] = to_s16(acc);
    }
}

const struct resample_kernel resample_kernel_avx2 = {
    .name = "avx2",
    .widen = avx2_widen,
    .up = avx2_up,
    .split = avx2_split,
    .down = avx2_down,
};
