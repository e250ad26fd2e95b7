/* Plain references for the resampler's tests and benchmark: the whole signal at once, no state,
 * double precision, the textbook direct-form convolution with the zero-stuffed (up) or full-rate
 * (down) signal. Deliberately no polyphase and no tricks, so it checks the kernels' indexing too.
 */
#include "dsp/resample.h"

#include "dsp/resample_taps.h"

/* out[j] = sum_k taps[k] * u[j - k], u the input zero-stuffed to 24 kHz (u[3i] = in[i]). */
void resample_ref_up(const int16_t *in, size_t n, double *out)
{
    for (size_t j = 0; j < 3 * n; j++) {
        double acc = 0.0;
        for (size_t k = 0; k < RESAMPLE_UP_TAPS_DESIGNED && k <= j; k++) {
            size_t t = j - k;
            if (t % 3 == 0)
                acc += (double)resample_up_taps[k] * in[t / 3];
        }
        out[j] = acc;
    }
}

/* out[m] = sum_k taps[k] * in[3m + 2 - k]: output m exists once input 3m + 2 does. */
size_t resample_ref_down(const int16_t *in, size_t n, double *out)
{
    size_t m_count = n / 3;
    for (size_t m = 0; m < m_count; m++) {
        size_t last = 3 * m + 2;
        double acc = 0.0;
        for (size_t k = 0; k < RESAMPLE_DOWN_TAPS_DESIGNED && k <= last; k++)
            acc += (double)resample_down_taps[k] * in[last - k];
        out[m] = acc;
    }
    return m_count;
}
