/* make bench, message part: the per-frame cost of what surrounds the DSP on the pcm16 path. */
#ifndef VB_TESTS_BENCH_MSG_H
#define VB_TESTS_BENCH_MSG_H

/* Records the figures (bench_figure); returns 0, or -1 if the TLS part could not be set up
 * (its figures are then missing). */
int bench_msg_figures(void);

#endif
