/* Resampler quality from its output: complex test tones (a cos run and a sin run), one DFT bin
 * per line the tone can reach, over a window of whole periods. Shared by the unit tests, which
 * assert the requirements, and the benchmark, which reports the figures. */
#include "tests/lib/dsp_quality.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "dsp/resample.h"

#define TONE_AMP 20000.0
#define GRID_HZ 10u   /* tone spacing, and the DFT bin width of the 100 ms window */
#define SETTLE_DIV 50 /* 20 ms of output skipped before the window */

static unsigned gcd_u(unsigned a, unsigned b)
{
    while (b != 0) {
        unsigned t = a % b;
        a = b;
        b = t;
    }
    return a;
}

struct run {
    const struct dsp_quality_subject *s;
    int16_t *xc, *xs; /* cos and sin input */
    int16_t *yc, *ys; /* their outputs */
    size_t n_in, cap_out, need_out;
    unsigned win; /* DFT window, output samples */
    size_t first; /* first output sample of the window */
    double *cos_tab, *sin_tab;
};

/* Feeds x in 20 ms frames; returns the number of output samples. */
static size_t run_subject(const struct run *r, const int16_t *x, int16_t *y)
{
    const struct dsp_quality_subject *s = r->s;
    size_t frame = s->in_rate / 50, got = 0;
    s->reset(s->ctx);
    for (size_t i = 0; i < r->n_in; i += frame) {
        size_t n = r->n_in - i < frame ? r->n_in - i : frame;
        size_t room = (size_t)n * s->out_rate / s->in_rate + DSP_QUALITY_SLACK;
        if (got + room > r->cap_out)
            break;
        got += s->process(s->ctx, x + i, n, y + got);
    }
    return got;
}

/* Complex amplitude at bin b of z = yc + i ys over the window, time referenced to sample 0. */
static void dft_bin(const struct run *r, unsigned b, double *re, double *im)
{
    double sr = 0.0, si = 0.0;
    for (size_t k = r->first; k < r->first + r->win; k++) {
        size_t idx = (size_t)((uint64_t)b * k % r->win);
        double c = r->cos_tab[idx], sn = r->sin_tab[idx];
        sr += r->yc[k] * c + r->ys[k] * sn;
        si += r->ys[k] * c - r->yc[k] * sn;
    }
    *re = sr / r->win;
    *im = si / r->win;
}

/* Runs one tone; stores the passband gain (complex, relative to the input) in g if the tone is
 * a passband tone, and lowers *worst (rejection, dB) for every other line. */
static int measure_tone(const struct run *r, unsigned f, double *g_re, double *g_im,
                        struct dsp_quality *q)
{
    const struct dsp_quality_subject *s = r->s;
    for (size_t i = 0; i < r->n_in; i++) {
        double ph = 2.0 * M_PI * (double)((uint64_t)f * i % s->in_rate) / s->in_rate;
        r->xc[i] = (int16_t)lrint(TONE_AMP * cos(ph));
        r->xs[i] = (int16_t)lrint(TONE_AMP * sin(ph));
    }
    if (run_subject(r, r->xc, r->yc) < r->need_out || run_subject(r, r->xs, r->ys) < r->need_out)
        return -EIO;

    unsigned lines = s->out_rate / gcd_u(s->in_rate, s->out_rate);
    unsigned signal_bin = f <= DSP_QUALITY_PASS_HZ ? (f % s->out_rate) / GRID_HZ : r->win;
    for (unsigned k = 0; k < lines; k++) {
        unsigned b = (unsigned)(((uint64_t)f + (uint64_t)k * s->in_rate) % s->out_rate) / GRID_HZ;
        double re, im;
        dft_bin(r, b, &re, &im);
        if (b == signal_bin) {
            *g_re = re / TONE_AMP;
            *g_im = im / TONE_AMP;
            continue;
        }
        double rej = -20.0 * log10(hypot(re, im) / TONE_AMP);
        if (rej < q->rejection_db) {
            q->rejection_db = rej;
            q->rejection_tone_hz = f;
            double line = (double)b * GRID_HZ;
            q->rejection_line_hz = line > s->out_rate / 2.0 ? line - s->out_rate : line;
        }
    }
    return 0;
}

int dsp_quality_measure(const struct dsp_quality_subject *s, struct dsp_quality *q)
{
    if (s->in_rate == 0 || s->out_rate == 0 || s->in_rate % 100 || s->out_rate % 100 ||
        (s->in_rate % s->out_rate && s->out_rate % s->in_rate) ||
        s->in_rate / 2 < DSP_QUALITY_PASS_HZ || s->out_rate / 2 < DSP_QUALITY_PASS_HZ)
        return -EINVAL;

    struct run r = {.s = s};
    r.win = s->out_rate / GRID_HZ;
    r.first = s->out_rate / SETTLE_DIV;
    r.need_out = r.first + r.win;
    /* The window's input, plus 20 ms for the subject's delay. */
    r.n_in = r.need_out * s->in_rate / s->out_rate + s->in_rate / SETTLE_DIV;
    r.cap_out =
        r.n_in * s->out_rate / s->in_rate + DSP_QUALITY_SLACK * (r.n_in / (s->in_rate / 50) + 2);
    unsigned n_pass = DSP_QUALITY_PASS_HZ / GRID_HZ + 1;
    int rc = -ENOMEM;

    r.xc = malloc(r.n_in * sizeof *r.xc);
    r.xs = malloc(r.n_in * sizeof *r.xs);
    r.yc = malloc(r.cap_out * sizeof *r.yc);
    r.ys = malloc(r.cap_out * sizeof *r.ys);
    r.cos_tab = malloc(r.win * sizeof *r.cos_tab);
    r.sin_tab = malloc(r.win * sizeof *r.sin_tab);
    double *g_re = calloc(n_pass, sizeof *g_re), *g_im = calloc(n_pass, sizeof *g_im);
    if (!r.xc || !r.xs || !r.yc || !r.ys || !r.cos_tab || !r.sin_tab || !g_re || !g_im)
        goto fail_free;
    for (unsigned k = 0; k < r.win; k++) {
        r.cos_tab[k] = cos(2.0 * M_PI * k / r.win);
        r.sin_tab[k] = sin(2.0 * M_PI * k / r.win);
    }

    *q = (struct dsp_quality){.rejection_db = INFINITY};
    for (unsigned t = 0; t < n_pass; t++) {
        rc = measure_tone(&r, t * GRID_HZ, &g_re[t], &g_im[t], q);
        if (rc != 0)
            goto fail_free;
    }
    if (s->in_rate > s->out_rate) {
        for (unsigned f = DSP_QUALITY_ALIAS_FROM_HZ; f <= s->in_rate / 2; f += GRID_HZ) {
            double dummy_re, dummy_im;
            rc = measure_tone(&r, f, &dummy_re, &dummy_im, q);
            if (rc != 0)
                goto fail_free;
        }
    }

    double gmin = INFINITY, gmax = 0.0, dmin = INFINITY, dmax = -INFINITY;
    for (unsigned t = 0; t < n_pass; t++) {
        double g = hypot(g_re[t], g_im[t]);
        gmin = g < gmin ? g : gmin;
        gmax = g > gmax ? g : gmax;
        if (t + 1 < n_pass) {
            /* Phase step to the next tone: arg(G[t+1] / G[t]), unambiguous below 50 ms. */
            double re = g_re[t + 1] * g_re[t] + g_im[t + 1] * g_im[t];
            double im = g_im[t + 1] * g_re[t] - g_re[t + 1] * g_im[t];
            double d_ms = -atan2(im, re) / (2.0 * M_PI * GRID_HZ) * 1e3;
            dmin = d_ms < dmin ? d_ms : dmin;
            dmax = d_ms > dmax ? d_ms : dmax;
        }
    }
    q->gain_min_db = 20.0 * log10(gmin);
    q->gain_max_db = 20.0 * log10(gmax);
    q->ripple_db = q->gain_max_db - q->gain_min_db;
    q->delay_ms = dmax;
    q->delay_min_ms = dmin;
    rc = 0;

fail_free:
    free(g_im);
    free(g_re);
    free(r.sin_tab);
    free(r.cos_tab);
    free(r.ys);
    free(r.yc);
    free(r.xs);
    free(r.xc);
    return rc;
}

/* ---- our resampler as a subject ---------------------------------------------------------- */

static void up_reset(void *ctx)
{
    resample_up_init(ctx);
}

static size_t up_process(void *ctx, const int16_t *in, size_t n, int16_t *out)
{
    resample_up(ctx, in, n, out);
    return 3 * n;
}

static void down_reset(void *ctx)
{
    resample_down_init(ctx);
}

static size_t down_process(void *ctx, const int16_t *in, size_t n, int16_t *out)
{
    return resample_down(ctx, in, n, out);
}

int dsp_quality_resample_up(struct dsp_quality *out)
{
    struct resample_up st;
    struct dsp_quality_subject s = {8000, 24000, &st, up_reset, up_process};
    return dsp_quality_measure(&s, out);
}

int dsp_quality_resample_down(struct dsp_quality *out)
{
    struct resample_down st;
    struct dsp_quality_subject s = {24000, 8000, &st, down_reset, down_process};
    return dsp_quality_measure(&s, out);
}
