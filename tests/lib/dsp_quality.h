/* Audio quality of a streaming resampler, measured from its output with test tones: passband
 * ripple, image or alias rejection, group delay. The unit tests assert the resampler's
 * requirements with it and `make bench` reports the same figures (also for other resamplers,
 * through struct dsp_quality_subject). Deterministic; allocates (test and bench code only). */
#ifndef VB_TESTS_DSP_QUALITY_H
#define VB_TESTS_DSP_QUALITY_H

#include <stddef.h>
#include <stdint.h>

/* Telephone band: the passband whose ripple and delay are measured is 0..3400 Hz; a decimator's
 * alias test tones run from 4000 Hz to the input's Nyquist frequency. */
#define DSP_QUALITY_PASS_HZ 3400
#define DSP_QUALITY_ALIAS_FROM_HZ 4000
#define DSP_QUALITY_SLACK 64

struct dsp_quality {
    double ripple_db;   /* passband: 20 log10(max gain / min gain) */
    double gain_min_db; /* passband gain extremes (0 dB = unity) */
    double gain_max_db;
    double rejection_db;      /* worst unwanted line, dB below the input tone (positive) */
    double rejection_tone_hz; /* the input tone that produced it */
    double rejection_line_hz; /* and where it appeared in the output, -fs/2..fs/2 */
    double delay_ms;          /* group delay, the largest over the passband */
    double delay_min_ms;      /* the smallest (equal for a linear-phase filter) */
};

/* A resampler under test, one direction. process converts n input samples (the measurement
 * feeds 20 ms frames) and returns how many it wrote to out, which has room for
 * n * out_rate / in_rate + DSP_QUALITY_SLACK. reset puts it back to a fresh stream before every
 * tone. */
struct dsp_quality_subject {
    unsigned in_rate, out_rate; /* Hz; multiples of 100, integer ratio either way */
    void *ctx;
    void (*reset)(void *ctx);
    size_t (*process)(void *ctx, const int16_t *in, size_t n, int16_t *out);
};

/* Measures a subject. How: for each tone f on a 10 Hz grid (0..3400 Hz; for a decimator also
 * 4000 Hz..in_rate/2) the subject runs twice, on A cos and A sin (A = 20000, int16), and the
 * two outputs form the response to the complex tone A e^(i 2 pi f t). After 20 ms of settling,
 * a 100 ms window (a whole number of periods of every line, so no leakage) gives its complex
 * amplitude at each frequency the tone can reach: f + k * in_rate folded into the output band.
 * The line at f itself (for passband tones) is the signal: its magnitude gives the ripple, the
 * change of its phase between neighbouring tones the group delay (output sample k is taken to
 * be at time k / out_rate, input sample i at i / in_rate). Every other line is an image or
 * alias; rejection_db is the worst of them relative to A. Returns 0, -EINVAL (rates),
 * -ENOMEM, or -EIO if the subject produced too few samples. */
int dsp_quality_measure(const struct dsp_quality_subject *s, struct dsp_quality *out);

/* The same for our resampler (dsp/resample.h, int16 API, whatever kernel is selected). */
int dsp_quality_resample_up(struct dsp_quality *out);
int dsp_quality_resample_down(struct dsp_quality *out);

#endif
