/* make bench, message part: what a pcm16 call pays per message around the DSP. Parsing a 100 ms
 * OpenAI audio delta and a Twilio media message (JSON scan, fields), building an append and a
 * media message (base64 included), a WebSocket mask from tls_random, and one TLS record each
 * way through common/tls.c with the suite our client and server settle on. Medians of many
 * runs, in nanoseconds per message. */
#include "tests/bench/bench-msg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/base64.h"
#include "common/json_scan.h"
#include "common/tls.h"
#include "tests/bench/bench.h"
#include "tests/lib/testnet.h"
#include "worker/openai_msg.h"
#include "worker/twilio_msg.h"

#define RUNS 31
#define PER_RUN 400

static char delta_msg[8192], media_msg[1024];
static size_t delta_len, media_len;
static uint8_t pcm[4800];
static struct json_tok toks[OPENAI_TOKENS_MAX];
static char out[8192];

typedef void msg_fn(void *ctx);

static double ns_per_op(msg_fn *fn, void *ctx)
{
    double runs[RUNS];
    for (int i = 0; i < 100; i++)
        fn(ctx);
    for (int r = 0; r < RUNS; r++) {
        double t0 = bench_now_ns();
        for (int i = 0; i < PER_RUN; i++)
            fn(ctx);
        runs[r] = (bench_now_ns() - t0) / PER_RUN;
    }
    return bench_median(runs, RUNS);
}

static void make_messages(void)
{
    for (size_t i = 0; i < sizeof pcm; i++)
        pcm[i] = (uint8_t)(i * 7 + i / 13);
    /* the shape OpenAI sends: 100 ms of PCM16 at 24 kHz in one delta */
    int n = snprintf(delta_msg, sizeof delta_msg,
                     "{\"type\":\"response.output_audio.delta\",\"event_id\":\"event_B3sXyZ1\","
                     "\"response_id\":\"resp_C12345\",\"item_id\":\"item_C12345\","
                     "\"output_index\":0,\"content_index\":0,\"delta\":\"");
    n += (int)base64_encode(pcm, sizeof pcm, delta_msg + n);
    n += snprintf(delta_msg + n, sizeof delta_msg - (size_t)n, "\"}");
    delta_len = (size_t)n;
    n = snprintf(media_msg, sizeof media_msg,
                 "{\"event\":\"media\",\"sequenceNumber\":\"123\",\"media\":{\"track\":"
                 "\"inbound\",\"chunk\":\"122\",\"timestamp\":\"2440\",\"payload\":\"");
    n += (int)base64_encode(pcm, 160, media_msg + n);
    n += snprintf(media_msg + n, sizeof media_msg - (size_t)n,
                  "\"},\"streamSid\":\"MZ18ad3ab5a668481ce02b83e7395059f0\"}");
    media_len = (size_t)n;
}

static void delta_parse(void *ctx)
{
    (void)ctx;
    struct openai_event ev;
    bench_sink += (uint64_t)openai_event_parse(delta_msg, delta_len, toks, &ev) + ev.delta_len;
    openai_event_clear(&ev);
}

static void delta_decode(void *ctx)
{
    (void)ctx;
    static uint8_t raw[4800];
    size_t n;
    const char *b64 = strstr(delta_msg, "\"delta\":\"") + 9;
    bench_sink +=
        (uint64_t)base64_decode(b64, base64_encoded_len(sizeof pcm), raw, sizeof raw, &n) + n;
}

static void media_parse(void *ctx)
{
    (void)ctx;
    struct twilio_msg m;
    struct twilio_start st;
    const char *why;
    bench_sink +=
        (uint64_t)twilio_msg_parse(media_msg, media_len, toks, &m, &st, &why) + m.payload_len;
}

static void append_build(void *ctx)
{
    (void)ctx;
    bench_sink += (uint64_t)openai_msg_append(out, sizeof out, pcm, 960);
}

static void media_build(void *ctx)
{
    (void)ctx;
    bench_sink +=
        (uint64_t)twilio_msg_media(out, sizeof out, "MZ18ad3ab5a668481ce02b83e7395059f0", pcm, 160);
}

static void ws_mask(void *ctx)
{
    (void)ctx;
    uint8_t m[4];
    tls_random(m, sizeof m);
    bench_sink += m[0];
}

/* ---- TLS: a client and a server session in memory ----------------------------------------- */

struct tls_pipe {
    uint8_t buf[1 << 17];
    size_t len;
};
static struct tls_pipe c2s, s2c, tmp;
static struct tls_session *cs, *ss;
static size_t record_plain;

static int pipe_out(void *arg, const uint8_t *d, size_t n)
{
    struct tls_pipe *p = arg;
    if (p->len + n > sizeof p->buf)
        return -ENOBUFS;
    memcpy(p->buf + p->len, d, n);
    p->len += n;
    return 0;
}

static int plain_in(void *arg, const uint8_t *d, size_t n)
{
    (void)arg;
    bench_sink += n + d[0];
    return 0;
}

static int tls_pair_open(struct tls_config **cc, struct tls_config **sc)
{
    char dir[] = "/tmp/vb-bench-pki-XXXXXX", ca[64], crt[64], key[64];
    if (mkdtemp(dir) == NULL || test_ca_make(dir) != 0)
        return -1;
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    snprintf(crt, sizeof crt, "%s/server.crt", dir);
    snprintf(key, sizeof key, "%s/server.key", dir);
    int rc = tls_config_client_new(cc, ca) || tls_config_server_new(sc, crt, key) ||
             tls_session_new(&cs, *cc, "localhost", pipe_out, &c2s) ||
             tls_session_new(&ss, *sc, NULL, pipe_out, &s2c);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench: could not remove %s\n", dir);
    if (rc != 0)
        return -1;
    tls_session_handshake(cs);
    for (int round = 0; round < 20 && (c2s.len > 0 || s2c.len > 0); round++) {
        tmp = c2s;
        c2s.len = 0;
        if (tmp.len > 0 && tls_session_input(ss, tmp.buf, tmp.len, plain_in, NULL) != 0)
            return -1;
        tmp = s2c;
        s2c.len = 0;
        if (tmp.len > 0 && tls_session_input(cs, tmp.buf, tmp.len, plain_in, NULL) != 0)
            return -1;
    }
    return tls_session_handshake_done(cs) && tls_session_handshake_done(ss) ? 0 : -1;
}

/* One record of record_plain bytes, encrypted by the client and decrypted by the server. */
static void tls_record(void *ctx)
{
    (void)ctx;
    c2s.len = 0;
    tls_session_write(cs, (const uint8_t *)out, record_plain);
    tls_session_input(ss, c2s.buf, c2s.len, plain_in, NULL);
}

int bench_msg_figures(void)
{
    make_messages();
    char note[96];
    snprintf(note, sizeof note, "%zu-byte message, 100 ms of PCM16 24k", delta_len);
    bench_figure("openai_delta_parse_ns", ns_per_op(delta_parse, NULL), "ns", note);
    snprintf(note, sizeof note, "its %zu characters, kernel %s", base64_encoded_len(sizeof pcm),
             base64_kernel_name());
    bench_figure("openai_delta_base64_ns", ns_per_op(delta_decode, NULL), "ns", note);
    snprintf(note, sizeof note, "%zu-byte media message", media_len);
    bench_figure("twilio_media_parse_ns", ns_per_op(media_parse, NULL), "ns", note);
    bench_figure("openai_append_build_ns", ns_per_op(append_build, NULL), "ns",
                 "20 ms of PCM16 24k, base64 included");
    bench_figure("twilio_media_build_ns", ns_per_op(media_build, NULL), "ns",
                 "20 ms of mu-law, base64 included");
    bench_figure("ws_mask_ns", ns_per_op(ws_mask, NULL), "ns", "4 bytes from tls_random");

    struct tls_config *cc = NULL, *sc = NULL;
    int rc = tls_pair_open(&cc, &sc);
    if (rc == 0) {
        static const size_t sizes[] = {1340, 6600};
        for (size_t i = 0; i < 2; i++) {
            char name[64];
            record_plain = sizes[i];
            snprintf(name, sizeof name, "tls_record_%zu_ns", sizes[i]);
            snprintf(note, sizeof note, "encrypt + decrypt, %s", tls_session_ciphersuite(cs));
            bench_figure(name, ns_per_op(tls_record, NULL), "ns", note);
        }
    } else {
        fprintf(stderr, "bench: TLS pair could not be set up; no tls_record figures\n");
    }
    tls_session_free(cs);
    tls_session_free(ss);
    tls_config_free(cc);
    tls_config_free(sc);
    return rc;
}
