/* The interface between the resampler's streaming layer (dsp/resample.c) and its kernels (the
 * portable one in resample.c, AVX2+FMA in resample_avx2.c). Kernels see float work buffers that
 * already hold the filter history in front of the new samples, so they never look at state. */
#ifndef VB_DSP_RESAMPLE_KERNEL_H
#define VB_DSP_RESAMPLE_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#include "dsp/resample-t.h"

/* Most 8 kHz samples one kernel call handles (inputs up, outputs down): one 20 ms frame. The
 * streaming layer's stack buffers are sized by it. */
#define RESAMPLE_CHUNK 160

/* Every kernel computes each output with one fixed sequence of operations (the taps in order,
 * from the same float inputs), whatever its position in a call: vector lanes and scalar tails
 * agree bit for bit. That is what makes the output independent of how a stream is split. */
struct resample_kernel {
    const char *name;
    /* in[0..n) -> out[0..n) as floats. */
    void (*widen)(const int16_t *in, size_t n, float *out);
    /* x[0..n) are new 8 kHz samples with RESAMPLE_UP_BRANCH - 1 older ones before x[0];
     * writes out[3i + p] = sum_q resample_up_taps[3q + p] * x[i - q], rounded, saturated. */
    void (*up)(const float *x, size_t n, int16_t *out);
    /* Splits m whole input triples: s0[j] = in[3j + 2], s1[j] = in[3j + 1], s2[j] = in[3j]. */
    void (*split)(const int16_t *in, size_t m, float *s0, float *s1, float *s2);
    /* s0, s1, s2 hold m new samples of each stream with RESAMPLE_DOWN_BRANCH - 1 older ones in
     * front; writes out[j] = sum over q, p of resample_down_taps[3q + p] * sp[j - q] (q outer,
     * p inner), rounded, saturated. */
    void (*down)(const float *s0, const float *s1, const float *s2, size_t m, int16_t *out);
};

#if defined(__x86_64__) || defined(__i386__)
#define RESAMPLE_HAVE_AVX2 1
extern const struct resample_kernel resample_kernel_avx2;
#endif

#endif
