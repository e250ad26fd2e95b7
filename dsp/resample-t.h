/* State of the 8 kHz <-> 24 kHz resampler, embedded by its owner (one per direction per call):
 * fixed-size float history, no pointers, no allocation. Initialise with resample_up_init /
 * resample_down_init (dsp/resample.h); copying a state copies the stream position. */
#ifndef VB_DSP_RESAMPLE_T_H
#define VB_DSP_RESAMPLE_T_H

/* Filter lengths at 24 kHz, multiples of 3 (dsp/resample_taps.h holds the coefficients). */
#define RESAMPLE_UP_TAPS 69
#define RESAMPLE_DOWN_TAPS 123
/* Each polyphase branch sees every third tap: it needs BRANCH - 1 past samples. */
#define RESAMPLE_UP_BRANCH (RESAMPLE_UP_TAPS / 3)
#define RESAMPLE_DOWN_BRANCH (RESAMPLE_DOWN_TAPS / 3)

/* The last RESAMPLE_UP_BRANCH - 1 input samples, oldest first (zeros after init). */
struct resample_up {
    float hist[RESAMPLE_UP_BRANCH - 1];
};

/* The 24 kHz input split by position in its triple: stream p holds the samples 3j + 2 - p, so
 * output m is sum over p, q of taps[3q + p] * stream p at j = m - q. hist keeps each stream's
 * last RESAMPLE_DOWN_BRANCH - 1 samples, oldest first; pending the 0..2 samples of the
 * triple not yet complete (an output appears as soon as the third arrives). */
struct resample_down {
    float hist[3][RESAMPLE_DOWN_BRANCH - 1];
    float pending[2];
    unsigned npending;
};

#endif
