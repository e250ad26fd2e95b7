/* Benchmark plumbing shared by the bench programs: a monotonic clock, the median of repeated
 * runs, and a table of named figures printed for people and written as one flat JSON object
 * (build/bench.json) so results can be compared across commits. */
#ifndef VB_TESTS_BENCH_H
#define VB_TESTS_BENCH_H

#include <stddef.h>
#include <stdint.h>

double bench_now_ns(void);
/* Median of n values (reorders them). */
double bench_median(double *v, size_t n);

/* Records a figure; unit and note are for the printed table only. */
void bench_figure(const char *name, double value, const char *unit, const char *note);
void bench_print_table(void);
/* Writes every figure as {"name": value, ...}; returns 0 or -errno. */
int bench_write_json(const char *path);

/* The WebSocket figures (bench-ws.c); quick: fewer messages, for callgrind. */
void bench_ws_figures(int quick);

/* Keeps a value alive so the compiler cannot drop the work that made it. */
extern volatile uint64_t bench_sink;

#endif
