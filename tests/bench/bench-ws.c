/* WebSocket cost per message (common/ws): the four kinds of frames a call's two legs carry, each
 * through a ws over an in-memory transport that copies what it is given, as the stream would.
 * Twilio's 20 ms media frames in (masked, ~350 B) and out; OpenAI's 100 ms audio deltas in
 * (unmasked, ~6.6 KB; whole, and split across two reads) and appends out (masked, ~1.3 KB).
 * For comparison, wslay's frame layer alone on the same bytes (decoding the Twilio frames,
 * encoding the appends). Run under callgrind for instruction counts: `bench-dsp OUT ws`. */
#include "tests/bench/bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <wslay/wslay.h>

#include "common/ws.h"

#define BWS_SINK (1u << 18)

struct bws {
    struct ws ws;
    uv_loop_t loop;
    uint8_t *sink;
    size_t sink_len;
    int flush_req, closed;
    uint64_t msgs, bytes;
};

static int bws_write(struct ws *ws, const void *d, size_t n)
{
    struct bws *b = ws->data;
    if (b->sink_len + n > BWS_SINK)
        b->sink_len = 0;
    memcpy(b->sink + b->sink_len, d, n); /* what stream_write does with it */
    b->sink_len += n;
    return 0;
}

static size_t bws_pending(const struct ws *ws)
{
    (void)ws;
    return 0;
}

static void bws_flush_request(struct ws *ws)
{
    ((struct bws *)ws->data)->flush_req = 1;
}

static void bws_nop(struct ws *ws)
{
    (void)ws;
}

static void bws_close(struct ws *ws, int graceful)
{
    (void)graceful;
    ((struct bws *)ws->data)->closed = 1;
}

static const struct ws_io bws_io = {bws_write, bws_pending, bws_flush_request,
                                    bws_nop,   bws_nop,     bws_close};

static void bws_on_text(struct ws *ws, const char *msg, size_t len)
{
    struct bws *b = ws->data;
    b->msgs++;
    b->bytes += len + (uint8_t)msg[len / 2];
}

static void bws_on_close(struct ws *ws, int code, const char *reason, size_t len)
{
    (void)ws, (void)code, (void)reason, (void)len;
}

static const struct ws_callbacks bws_cb = {NULL, bws_on_text, NULL, bws_on_close, NULL};

static struct bws *bws_start(int server)
{
    struct bws *b = calloc(1, sizeof *b);
    if (b == NULL || (b->sink = malloc(BWS_SINK)) == NULL)
        abort();
    uv_loop_init(&b->loop);
    b->ws.data = b;
    struct ws_options opt = {.max_message = 1u << 20};
    if (ws_io_start(&b->ws, &b->loop, server, &bws_io, &bws_cb, &opt) != 0)
        abort();
    uv_run(&b->loop, UV_RUN_NOWAIT);
    return b;
}

static void bws_pump(struct bws *b)
{
    while (b->flush_req) {
        b->flush_req = 0;
        ws_io_flush(&b->ws);
    }
}

static void bws_stop(struct bws *b)
{
    ws_abort(&b->ws);
    ws_io_closed(&b->ws);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    uv_loop_close(&b->loop);
    bench_sink += b->msgs + b->bytes;
    free(b->sink);
    free(b);
}

/* ---- the messages ------------------------------------------------------------------------- */

static char twilio_media[400], openai_delta[6800], openai_append[1400];
static size_t twilio_media_len, openai_delta_len, openai_append_len;

static void b64_fill(char *p, size_t n, unsigned seed)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = a[(seed >> 16) & 63];
    }
}

static void bws_messages(void)
{
    char b64[6401];
    b64_fill(b64, 216, 1);
    b64[216] = '\0';
    twilio_media_len = (size_t)snprintf(
        twilio_media, sizeof twilio_media,
        "{\"event\":\"media\",\"sequenceNumber\":\"1234\",\"media\":{\"track\":\"inbound\","
        "\"chunk\":\"1233\",\"timestamp\":\"24660\",\"payload\":\"%s\"},"
        "\"streamSid\":\"MZ00000000000000000000000000000000\"}",
        b64);
    b64_fill(b64, 6400, 2);
    b64[6400] = '\0';
    openai_delta_len = (size_t)snprintf(
        openai_delta, sizeof openai_delta,
        "{\"type\":\"response.output_audio.delta\",\"event_id\":\"event_0000000000000000000000\","
        "\"response_id\":\"resp_0000000000000000000000\",\"item_id\":\"item_00000000000000000000"
        "00\",\"output_index\":0,\"content_index\":0,\"delta\":\"%s\"}",
        b64);
    b64_fill(b64, 1280, 3);
    b64[1280] = '\0';
    openai_append_len =
        (size_t)snprintf(openai_append, sizeof openai_append,
                         "{\"type\":\"input_audio_buffer.append\",\"audio\":\"%s\"}", b64);
}

/* One frame as a peer sends it: a client masks (with a key that changes per frame). */
static size_t bws_frame(uint8_t *f, const void *payload, size_t len, int masked, unsigned seed)
{
    size_t n = 0;
    f[n++] = 0x81;
    uint8_t mbit = masked ? 0x80 : 0;
    if (len < 126) {
        f[n++] = (uint8_t)(mbit | len);
    } else {
        f[n++] = mbit | 126;
        f[n++] = (uint8_t)(len >> 8);
        f[n++] = (uint8_t)len;
    }
    uint8_t key[4] = {(uint8_t)seed, (uint8_t)(seed >> 8), 0x5a, 0xc3};
    if (masked) {
        memcpy(f + n, key, 4);
        n += 4;
    }
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++)
        f[n + i] = masked ? p[i] ^ key[i % 4] : p[i];
    return n + len;
}

/* ---- the workloads (each a function of its own, for callgrind_annotate --inclusive) -------- */

#define BWS_FRAMES 16

static uint8_t rx_frames[BWS_FRAMES][7000];
static size_t rx_lens[BWS_FRAMES];

static void bws_rx_prepare(const char *msg, size_t len, int masked)
{
    for (unsigned i = 0; i < BWS_FRAMES; i++)
        rx_lens[i] = bws_frame(rx_frames[i], msg, len, masked, i * 7919u + 1);
}

static __attribute__((noinline)) void bench_ws_rx_twilio(struct bws *b, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        ws_io_input(&b->ws, rx_frames[i % BWS_FRAMES], rx_lens[i % BWS_FRAMES]);
    bws_pump(b);
}

static __attribute__((noinline)) void bench_ws_rx_openai(struct bws *b, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        ws_io_input(&b->ws, rx_frames[i % BWS_FRAMES], rx_lens[i % BWS_FRAMES]);
    bws_pump(b);
}

static __attribute__((noinline)) void bench_ws_rx_openai_split(struct bws *b, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *f = rx_frames[i % BWS_FRAMES];
        size_t len = rx_lens[i % BWS_FRAMES], cut = len / 3;
        ws_io_input(&b->ws, f, cut);
        ws_io_input(&b->ws, f + cut, len - cut);
    }
    bws_pump(b);
}

static __attribute__((noinline)) void bench_ws_tx_twilio(struct bws *b, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        ws_send_text(&b->ws, twilio_media, twilio_media_len);
        bws_pump(b); /* the stream flushes once per loop iteration: one message per tick */
    }
}

static __attribute__((noinline)) void bench_ws_tx_openai(struct bws *b, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        ws_send_text(&b->ws, openai_append, openai_append_len);
        bws_pump(b);
    }
}

/* wslay's frame layer on its own: what a message layer over it would pay at the least. */
struct bws_wf {
    const uint8_t *in;
    size_t in_len;
    uint8_t *sink;
    size_t sink_len;
    uint32_t rnd;
};

static ssize_t bws_wf_recv(uint8_t *buf, size_t len, int flags, void *user)
{
    struct bws_wf *w = user;
    (void)flags;
    if (w->in_len == 0)
        return WSLAY_ERR_WANT_READ;
    size_t n = len < w->in_len ? len : w->in_len;
    memcpy(buf, w->in, n);
    w->in += n;
    w->in_len -= n;
    return (ssize_t)n;
}

static ssize_t bws_wf_send(const uint8_t *data, size_t len, int flags, void *user)
{
    struct bws_wf *w = user;
    (void)flags;
    if (w->sink_len + len > BWS_SINK)
        w->sink_len = 0;
    memcpy(w->sink + w->sink_len, data, len);
    w->sink_len += len;
    return (ssize_t)len;
}

static int bws_wf_genmask(uint8_t *buf, size_t len, void *user)
{
    struct bws_wf *w = user;
    for (size_t i = 0; i < len; i++) {
        w->rnd = w->rnd * 1103515245u + 12345u;
        buf[i] = (uint8_t)(w->rnd >> 16);
    }
    return 0;
}

static void bws_wf_rx(wslay_frame_context_ptr ctx, struct bws_wf *w, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        w->in = rx_frames[i % BWS_FRAMES];
        w->in_len = rx_lens[i % BWS_FRAMES];
        struct wslay_frame_iocb iocb;
        ssize_t r;
        do {
            memset(&iocb, 0, sizeof iocb);
            r = wslay_frame_recv(ctx, &iocb);
            if (r > 0)
                bench_sink += iocb.data[0];
        } while (r > 0);
    }
}

static __attribute__((noinline)) void bench_ws_wslay_frame_rx_twilio(wslay_frame_context_ptr ctx,
                                                                     struct bws_wf *w, unsigned n)
{
    bws_wf_rx(ctx, w, n);
}

static __attribute__((noinline)) void bench_ws_wslay_frame_rx_openai(wslay_frame_context_ptr ctx,
                                                                     struct bws_wf *w, unsigned n)
{
    bws_wf_rx(ctx, w, n);
}

static __attribute__((noinline)) void bench_ws_wslay_frame_tx_openai(wslay_frame_context_ptr ctx,
                                                                     unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct wslay_frame_iocb iocb = {.fin = 1,
                                        .opcode = WSLAY_TEXT_FRAME,
                                        .mask = 1,
                                        .payload_length = openai_append_len,
                                        .data = (const uint8_t *)openai_append,
                                        .data_length = openai_append_len};
        while (wslay_frame_send(ctx, &iocb) == 0) /* the header goes first */
            ;
    }
}

/* ---- figures ------------------------------------------------------------------------------ */

static double bws_ns(void (*run)(struct bws *, unsigned), int server, unsigned n)
{
    double t[5];
    for (int r = 0; r < 5; r++) {
        struct bws *b = bws_start(server);
        double t0 = bench_now_ns();
        run(b, n);
        t[r] = (bench_now_ns() - t0) / n;
        bws_stop(b);
    }
    return bench_median(t, 5);
}

void bench_ws_figures(int quick)
{
    unsigned n = quick ? 2000 : 20000;
    bws_messages();
    double v;

    bws_rx_prepare(twilio_media, twilio_media_len, 1);
    v = bws_ns(bench_ws_rx_twilio, 1, n);
    bench_figure("ws_rx_twilio_media_ns", v, "ns", "server: 350 B masked text in");
    struct bws_wf w = {.sink = malloc(BWS_SINK), .rnd = 1};
    const struct wslay_frame_callbacks wcb = {bws_wf_send, bws_wf_recv, bws_wf_genmask};
    wslay_frame_context_ptr fctx;
    if (w.sink == NULL || wslay_frame_context_init(&fctx, &wcb, &w) != 0)
        abort();
    double t0 = bench_now_ns();
    bench_ws_wslay_frame_rx_twilio(fctx, &w, n);
    bench_figure("ws_wslay_frame_rx_twilio_ns", (bench_now_ns() - t0) / n, "ns",
                 "wslay_frame_recv alone, same frames");

    bws_rx_prepare(openai_delta, openai_delta_len, 0);
    v = bws_ns(bench_ws_rx_openai, 0, n);
    bench_figure("ws_rx_openai_delta_ns", v, "ns", "client: 6.6 KB text in, whole");
    t0 = bench_now_ns();
    bench_ws_wslay_frame_rx_openai(fctx, &w, n);
    bench_figure("ws_wslay_frame_rx_openai_ns", (bench_now_ns() - t0) / n, "ns",
                 "wslay_frame_recv alone, same frames");
    v = bws_ns(bench_ws_rx_openai_split, 0, n);
    bench_figure("ws_rx_openai_delta_split_ns", v, "ns", "the same in two reads");

    v = bws_ns(bench_ws_tx_twilio, 1, n);
    bench_figure("ws_tx_twilio_media_ns", v, "ns", "server: 350 B text out");
    v = bws_ns(bench_ws_tx_openai, 0, n);
    bench_figure("ws_tx_openai_append_ns", v, "ns", "client: 1.3 KB masked text out");
    t0 = bench_now_ns();
    bench_ws_wslay_frame_tx_openai(fctx, n);
    bench_figure("ws_wslay_frame_tx_openai_ns", (bench_now_ns() - t0) / n, "ns",
                 "wslay_frame_send alone, same message");
    wslay_frame_context_free(fctx);
    free(w.sink);
}
