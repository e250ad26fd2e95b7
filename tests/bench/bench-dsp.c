/* make bench, DSP part: per-frame cost of the audio path's pure computations (G.711, the
 * 8k<->24k resampler with mu-law, base64, the SPSC ring), the same frames through libsoxr HQ and
 * speexdsp q3 for comparison, and the resampler's measured quality. Each time is the median of
 * many runs of many frames; then the WebSocket layer's cost per message (bench-ws.c).
 * Usage: bench-dsp [OUT.json [ws]] (ws: only the WebSocket figures, few messages, for callgrind) */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <soxr.h>
#include <speex/speex_resampler.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/ring.h"
#include "dsp/g711.h"
#include "dsp/resample.h"
#include "tests/bench/bench-msg.h"
#include "tests/bench/bench.h"
#include "tests/lib/dsp_quality.h"

#define FRAME_8K 160  /* 20 ms at 8 kHz */
#define FRAME_24K 480 /* 20 ms at 24 kHz */
#define SIGNAL_FRAMES 50
#define FRAMES_PER_RUN 2000
#define RUNS 31

/* One second of a speech-like test signal (a few partials with slow vibrato plus noise), at
 * both rates, and its mu-law form: the frames every timing below works on. */
static int16_t pcm8k[SIGNAL_FRAMES * FRAME_8K];
static int16_t pcm24k[SIGNAL_FRAMES * FRAME_24K];
static uint8_t ulaw8k[SIGNAL_FRAMES * FRAME_8K];

static void make_signal(void)
{
    uint32_t rng = 12345;
    for (int rate = 0; rate < 2; rate++) {
        int fs = rate ? 24000 : 8000;
        int n = SIGNAL_FRAMES * (rate ? FRAME_24K : FRAME_8K);
        int16_t *dst = rate ? pcm24k : pcm8k;
        for (int i = 0; i < n; i++) {
            double t = (double)i / fs, f0 = 140 + 20 * sin(2 * M_PI * 3 * t), v = 0;
            for (int h = 1; h <= 12; h++)
                v += sin(2 * M_PI * f0 * h * t) / h;
            rng = rng * 1664525u + 1013904223u;
            v = 5000 * v + ((int32_t)(rng >> 16) - 32768) / 64.0;
            dst[i] = (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v);
        }
    }
    g711_ulaw_encode_block(pcm8k, SIGNAL_FRAMES * FRAME_8K, ulaw8k);
}

/* The work of one frame; i counts frames from 0. */
typedef void frame_fn(void *ctx, size_t i);

static double ns_per_frame(frame_fn *fn, void *ctx)
{
    double runs[RUNS];
    for (size_t i = 0; i < 200; i++) /* warm caches and branch predictors */
        fn(ctx, i);
    for (int r = 0; r < RUNS; r++) {
        double t0 = bench_now_ns();
        for (size_t i = 0; i < FRAMES_PER_RUN; i++)
            fn(ctx, i);
        runs[r] = (bench_now_ns() - t0) / FRAMES_PER_RUN;
    }
    return bench_median(runs, RUNS);
}

static int16_t out16[4 * FRAME_24K];
static uint8_t out8[4 * FRAME_24K];

static void ulaw_decode_frame(void *ctx, size_t i)
{
    (void)ctx;
    g711_ulaw_decode_block(ulaw8k + i % SIGNAL_FRAMES * FRAME_8K, FRAME_8K, out16);
    bench_sink += (uint16_t)out16[i % FRAME_8K];
}

static void ulaw_encode_frame(void *ctx, size_t i)
{
    (void)ctx;
    g711_ulaw_encode_block(pcm8k + i % SIGNAL_FRAMES * FRAME_8K, FRAME_8K, out8);
    bench_sink += out8[i % FRAME_8K];
}

static void up_frame(void *ctx, size_t i)
{
    resample_up_ulaw(ctx, ulaw8k + i % SIGNAL_FRAMES * FRAME_8K, FRAME_8K, out16);
    bench_sink += (uint16_t)out16[i % FRAME_24K];
}

static void down_frame(void *ctx, size_t i)
{
    size_t n = resample_down_ulaw(ctx, pcm24k + i % SIGNAL_FRAMES * FRAME_24K, FRAME_24K, out8);
    bench_sink += n + out8[0];
}

static void soxr_up_frame(void *ctx, size_t i)
{
    size_t idone, odone;
    soxr_process(ctx, pcm8k + i % SIGNAL_FRAMES * FRAME_8K, FRAME_8K, &idone, out16,
                 sizeof out16 / sizeof out16[0], &odone);
    bench_sink += odone;
}

static void soxr_down_frame(void *ctx, size_t i)
{
    size_t idone, odone;
    soxr_process(ctx, pcm24k + i % SIGNAL_FRAMES * FRAME_24K, FRAME_24K, &idone, out16,
                 sizeof out16 / sizeof out16[0], &odone);
    bench_sink += odone;
}

static void speex_up_frame(void *ctx, size_t i)
{
    spx_uint32_t in_len = FRAME_8K, out_len = sizeof out16 / sizeof out16[0];
    speex_resampler_process_int(ctx, 0, pcm8k + i % SIGNAL_FRAMES * FRAME_8K, &in_len, out16,
                                &out_len);
    bench_sink += out_len;
}

static void speex_down_frame(void *ctx, size_t i)
{
    spx_uint32_t in_len = FRAME_24K, out_len = sizeof out16 / sizeof out16[0];
    speex_resampler_process_int(ctx, 0, pcm24k + i % SIGNAL_FRAMES * FRAME_24K, &in_len, out16,
                                &out_len);
    bench_sink += out_len;
}

/* base64 over the uplink's real message size: one 20 ms PCM16 24 kHz frame (960 bytes). */
static char b64_text[(2 * FRAME_24K + 2) / 3 * 4];
static uint8_t b64_bytes[2 * FRAME_24K];

static void b64_encode_frame(void *ctx, size_t i)
{
    (void)ctx;
    const uint8_t *src = (const uint8_t *)(pcm24k + i % SIGNAL_FRAMES * FRAME_24K);
    bench_sink += base64_encode(src, sizeof b64_bytes, b64_text);
}

static void b64_decode_frame(void *ctx, size_t i)
{
    (void)ctx, (void)i;
    size_t n;
    if (base64_decode(b64_text, sizeof b64_text, b64_bytes, sizeof b64_bytes, &n) != 0)
        abort();
    bench_sink += n;
}

/* Ring throughput: a producer thread and this thread moving frame-sized pieces (960 B) through
 * a 64 KiB shared-memory ring, as the call pair's audio does. */
#define RING_BYTES (256u << 20)
#define RING_CHUNK 960

static void *ring_producer(void *arg)
{
    struct ring *r = arg;
    uint8_t chunk[RING_CHUNK];
    memset(chunk, 0x5a, sizeof chunk);
    for (size_t sent = 0; sent < RING_BYTES;) {
        size_t want = RING_BYTES - sent < RING_CHUNK ? RING_BYTES - sent : RING_CHUNK;
        size_t n = ring_push(r, chunk, want);
        sent += n;
    }
    return NULL;
}

static double ring_mb_per_s(void)
{
    double runs[5];
    for (int k = 0; k < 5; k++) {
        struct ring r;
        if (ring_create(&r, 64 << 10, "bench") != 0) {
            fprintf(stderr, "bench: ring_create failed\n");
            return -1;
        }
        pthread_t th;
        uint8_t chunk[RING_CHUNK];
        double t0 = bench_now_ns();
        pthread_create(&th, NULL, ring_producer, &r);
        for (size_t got = 0; got < RING_BYTES;)
            got += ring_pop(&r, chunk, sizeof chunk);
        pthread_join(th, NULL);
        runs[k] = RING_BYTES / 1e6 / ((bench_now_ns() - t0) / 1e9);
        bench_sink += chunk[0];
        ring_close(&r);
    }
    return bench_median(runs, 5);
}

static void fig(const char *name, double v, const char *unit, const char *note)
{
    bench_figure(name, v, unit, note);
}

/* speexdsp as a dsp_quality subject, so its quality and delay are measured exactly as ours are.
 * (soxr is timed only: it holds back ~44 ms of output, which this measurement, taking output
 * sample k to be at time k / rate, reports as a stream short of samples.) */
struct speex_subject {
    unsigned in_rate, out_rate;
    SpeexResamplerState *st;
};

static void speex_reset(void *ctx)
{
    struct speex_subject *r = ctx;
    /* No speex_resampler_skip_zeros: dropping the leading output would hide the delay a
     * real-time stream still has. */
    speex_resampler_reset_mem(r->st);
}

static size_t speex_process(void *ctx, const int16_t *in, size_t n, int16_t *out)
{
    struct speex_subject *r = ctx;
    spx_uint32_t in_len = (spx_uint32_t)n;
    spx_uint32_t out_len = (spx_uint32_t)(n * r->out_rate / r->in_rate + DSP_QUALITY_SLACK);
    speex_resampler_process_int(r->st, 0, in, &in_len, out, &out_len);
    return out_len;
}

/* Measures one subject and records its figures under prefix (ripple, rejection, delay). */
static void quality_figures(const char *prefix, int up, int rc, const struct dsp_quality *q)
{
    char name[96];
    if (rc != 0) {
        fprintf(stderr, "bench: quality of %s: error %d\n", prefix, rc);
        return;
    }
    snprintf(name, sizeof name, "%s_ripple_db", prefix);
    fig(name, q->ripple_db, "dB", "0-3.4 kHz, max/min gain");
    snprintf(name, sizeof name, up ? "%s_image_rejection_db" : "%s_alias_rejection_db", prefix);
    fig(name, q->rejection_db, "dB", up ? "worst image, tones <= 3.4 kHz"
                                         : "worst alias, tones 4-12 kHz");
    snprintf(name, sizeof name, "%s_delay_ms", prefix);
    fig(name, q->delay_ms, "ms", "group delay, max over passband");
}

static void quality_all(void)
{
    struct dsp_quality q;
    resample_select_kernel("auto");
    quality_figures("up", 1, dsp_quality_resample_up(&q), &q);
    quality_figures("down", 0, dsp_quality_resample_down(&q), &q);
    for (int up = 1; up >= 0; up--) {
        int err;
        struct speex_subject r = {up ? 8000 : 24000, up ? 24000 : 8000, NULL};
        r.st = speex_resampler_init(1, r.in_rate, r.out_rate, 3, &err);
        if (r.st == NULL)
            continue;
        struct dsp_quality_subject subj = {r.in_rate, r.out_rate, &r, speex_reset, speex_process};
        quality_figures(up ? "speex_q3_up" : "speex_q3_down", up, dsp_quality_measure(&subj, &q),
                        &q);
        speex_resampler_destroy(r.st);
    }
}

int main(int argc, char **argv)
{
    const char *out = argc > 1 ? argv[1] : "build/bench.json";
    char note[96];
    if (argc > 2 && strcmp(argv[2], "ws") == 0) {
        bench_ws_figures(1);
        bench_print_table();
        return 0;
    }
    make_signal();

    fig("ulaw_decode_ns_per_frame", ns_per_frame(ulaw_decode_frame, NULL), "ns",
        "160 codes -> PCM16");
    fig("ulaw_encode_ns_per_frame", ns_per_frame(ulaw_encode_frame, NULL), "ns",
        "160 PCM16 -> codes");

    const char *kernels[] = {"generic", "avx2", "auto"};
    double our_up = 0, our_down = 0;
    for (int k = 0; k < 3; k++) {
        if (resample_select_kernel(kernels[k]) != 0)
            continue;
        struct resample_up up;
        struct resample_down down;
        resample_up_init(&up);
        resample_down_init(&down);
        double tu = ns_per_frame(up_frame, &up), td = ns_per_frame(down_frame, &down);
        our_up = tu, our_down = td; /* "auto" runs last */
        char name[64];
        snprintf(note, sizeof note, "mu-law 8k -> PCM16 24k, kernel %s", resample_kernel_name());
        snprintf(name, sizeof name, k == 2 ? "up_ns_per_frame" : "up_%s_ns_per_frame",
                 kernels[k]);
        fig(name, tu, "ns", note);
        snprintf(note, sizeof note, "PCM16 24k -> mu-law 8k, kernel %s", resample_kernel_name());
        snprintf(name, sizeof name, k == 2 ? "down_ns_per_frame" : "down_%s_ns_per_frame",
                 kernels[k]);
        fig(name, td, "ns", note);
    }

    soxr_error_t err;
    soxr_io_spec_t io = soxr_io_spec(SOXR_INT16_I, SOXR_INT16_I);
    soxr_quality_spec_t hq = soxr_quality_spec(SOXR_HQ, 0);
    soxr_t sup = soxr_create(8000, 24000, 1, &err, &io, &hq, NULL);
    soxr_t sdown = soxr_create(24000, 8000, 1, &err, &io, &hq, NULL);
    if (sup == NULL || sdown == NULL) {
        fprintf(stderr, "bench: soxr_create: %s\n", err);
        return 1;
    }
    fig("soxr_hq_up_ns_per_frame", ns_per_frame(soxr_up_frame, sup), "ns", "PCM16 only");
    fig("soxr_hq_down_ns_per_frame", ns_per_frame(soxr_down_frame, sdown), "ns", "PCM16 only");
    soxr_delete(sup);
    soxr_delete(sdown);

    int serr;
    SpeexResamplerState *xup = speex_resampler_init(1, 8000, 24000, 3, &serr);
    SpeexResamplerState *xdown = speex_resampler_init(1, 24000, 8000, 3, &serr);
    if (xup == NULL || xdown == NULL) {
        fprintf(stderr, "bench: speex_resampler_init failed\n");
        return 1;
    }
    double sp_up = ns_per_frame(speex_up_frame, xup), sp_down = ns_per_frame(speex_down_frame, xdown);
    fig("speex_q3_up_ns_per_frame", sp_up, "ns", "PCM16 only");
    fig("speex_q3_down_ns_per_frame", sp_down, "ns", "PCM16 only");
    fig("speex_q3_up_speedup", sp_up / our_up, "x", "speexdsp q3 time / ours (ours with mu-law)");
    fig("speex_q3_down_speedup", sp_down / our_down, "x", "speexdsp q3 time / ours (ours with mu-law)");
    speex_resampler_destroy(xup);
    speex_resampler_destroy(xdown);

    b64_encode_frame(NULL, 0);
    double enc = ns_per_frame(b64_encode_frame, NULL), dec = ns_per_frame(b64_decode_frame, NULL);
    fig("base64_encode_mb_s", sizeof b64_bytes / enc * 1e3, "MB/s", "960-byte frames");
    fig("base64_decode_mb_s", sizeof b64_bytes / dec * 1e3, "MB/s", "1280-char frames");
    fig("ring_mb_s", ring_mb_per_s(), "MB/s", "2 threads, 64 KiB ring, 960 B pieces");
    bench_msg_figures();

    quality_all();
    bench_ws_figures(0);

    bench_print_table();
    int rc = bench_write_json(out);
    if (rc != 0) {
        fprintf(stderr, "bench: cannot write %s: %s\n", out, strerror(-rc));
        return 1;
    }
    printf("wrote %s\n", out);
    return 0;
}
