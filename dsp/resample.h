/* Fixed-ratio 8 kHz <-> 24 kHz polyphase FIR resampler, streaming: the state carries across
 * calls, any input size works, and output is the same whether a signal arrives in one block or
 * in 20 ms frames. Linear phase; coefficients come from dsp/resample_taps.h (see the script
 * named there). The fastest kernel the CPU offers is chosen at run time. No allocation, no I/O. */
#ifndef VB_DSP_RESAMPLE_H
#define VB_DSP_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "dsp/resample-t.h"

/* A state belongs to one stream and is used by one thread at a time; in and out must not
 * overlap. Output is rounded half to even and saturated to int16; passband gain 1. Any n,
 * including 0 (then in and out may be NULL). */

/* 8 kHz -> 24 kHz. */
void resample_up_init(struct resample_up *st);
/* Converts n samples at 8 kHz into exactly 3*n samples at 24 kHz in out. */
void resample_up(struct resample_up *st, const int16_t *in, size_t n, int16_t *out);
/* The same from mu-law bytes (uplink: Twilio's payload straight in). */
void resample_up_ulaw(struct resample_up *st, const uint8_t *in, size_t n, int16_t *out);

/* 24 kHz -> 8 kHz. Inputs not yet making a whole output sample are kept for the next call:
 * output m appears in the call that delivers input 3m + 2. */
void resample_down_init(struct resample_down *st);
/* Converts n samples at 24 kHz; writes and returns the number of 8 kHz samples produced,
 * at most resample_down_max_out(n). */
size_t resample_down(struct resample_down *st, const int16_t *in, size_t n, int16_t *out);
/* The same, encoding the output to mu-law (downlink: straight into Twilio's frames). */
size_t resample_down_ulaw(struct resample_down *st, const int16_t *in, size_t n, uint8_t *out);
static inline size_t resample_down_max_out(size_t n)
{
    return n / 3 + 1;
}

/* Kernel selection, process-wide; call before any resampling thread starts.
 * "auto" (the default) picks the fastest the CPU supports, "generic" the portable C one,
 * "avx2" the AVX2+FMA one. Returns 0, -EINVAL for an unknown name, -ENOTSUP if the CPU lacks
 * it. The VB_DSP_KERNEL environment variable, if set, is applied on first use. */
int resample_select_kernel(const char *name);
const char *resample_kernel_name(void);

/* Group delay of each direction, in milliseconds of signal time (linear phase: constant). */
double resample_up_delay_ms(void);
double resample_down_delay_ms(void);

/* Plain references for the tests and the benchmark: whole signal, no state, double precision,
 * direct-form convolution with the same coefficients and the same alignment (so output sample
 * k of the streaming resampler corresponds to out[k] here). */
void resample_ref_up(const int16_t *in, size_t n, double *out /* 3*n */);
size_t resample_ref_down(const int16_t *in, size_t n, double *out /* n/3+1 */);

#endif
