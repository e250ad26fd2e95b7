/* Benchmark plumbing: timing, medians, the figure table and its JSON file. */
#include "tests/bench/bench.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_MAX_FIGURES 256

struct bench_fig {
    char name[96];
    double value;
    char unit[16];
    char note[96];
};

static struct bench_fig figs[BENCH_MAX_FIGURES];
static size_t n_figs;
volatile uint64_t bench_sink;

double bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_figure(const char *name, double value, const char *unit, const char *note)
{
    if (n_figs == BENCH_MAX_FIGURES) {
        fprintf(stderr, "bench: too many figures, %s dropped\n", name);
        return;
    }
    struct bench_fig *f = &figs[n_figs++];
    snprintf(f->name, sizeof f->name, "%s", name);
    f->value = value;
    snprintf(f->unit, sizeof f->unit, "%s", unit ? unit : "");
    snprintf(f->note, sizeof f->note, "%s", note ? note : "");
}

void bench_print_table(void)
{
    printf("%-34s %14s %-8s %s\n", "figure", "value", "unit", "note");
    for (size_t i = 0; i < n_figs; i++)
        printf("%-34s %14.3f %-8s %s\n", figs[i].name, figs[i].value, figs[i].unit, figs[i].note);
}

int bench_write_json(const char *path)
{
    FILE *f = fopen(path, "we");
    if (f == NULL)
        return -errno;
    fputs("{\n", f);
    for (size_t i = 0; i < n_figs; i++) {
        double v = isfinite(figs[i].value) ? figs[i].value : -1; /* JSON has no inf/nan */
        fprintf(f, "  \"%s\": %.6g%s\n", figs[i].name, v, i + 1 < n_figs ? "," : "");
    }
    fputs("}\n", f);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return -EIO;
    return 0;
}
