/* voicebridge load generator: N concurrent simulated calls against a running voicebridge, both
 * far ends in this one process and thread (see loadgen.h). One 1 ms timer drives everything:
 * call i is served in slot i % 20, so the calls' frames are spread over the 20 ms period as
 * independent phones' would be. Phases: ramp (calls started at --ramp per second), warm-up,
 * measurement (prints STEADY and END so the runner can sample the server's /proc around it),
 * stop; then one line "RESULT {json}" with the figures and the generator's own CPU. Bounded:
 * every phase has a deadline. Usage: loadgen --help. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "common/base64.h"
#include "common/log.h"
#include "common/tls.h"
#include "dsp/g711.h"
#include "tests/lib/frame_tag.h"
#include "tests/load/loadgen.h"

#define LG_RAMP_GRACE_S 30 /* beyond the ramp's own time, for the last calls to connect */
#define LG_STOP_GRACE_S 10

static struct lg the_lg;
static struct rusage ru_start, ru_end;

uint64_t lg_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void lg_hist_add(struct lg_hist *h, uint64_t us)
{
    uint64_t b = us / LG_HIST_BIN_US;
    h->bins[b < LG_HIST_BINS ? b : LG_HIST_BINS - 1]++;
    h->n++;
    h->sum_us += us;
    if (us > h->max_us)
        h->max_us = us;
}

/* The q-quantile in ms (upper edge of its bin), 0 with no samples. */
static double hist_q_ms(const struct lg_hist *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)h->n), acc = 0;
    if (want >= h->n)
        want = h->n - 1;
    for (size_t i = 0; i < LG_HIST_BINS; i++) {
        acc += h->bins[i];
        if (acc > want)
            return (double)((i + 1) * LG_HIST_BIN_US) / 1000.0;
    }
    return (double)h->max_us / 1000.0;
}

static double ru_ms(const struct rusage *r)
{
    return (double)r->ru_utime.tv_sec * 1e3 + (double)r->ru_utime.tv_usec / 1e3 +
           (double)r->ru_stime.tv_sec * 1e3 + (double)r->ru_stime.tv_usec / 1e3;
}

static void print_hist(FILE *f, const char *name, const struct lg_hist *h)
{
    fprintf(f, "\"%s_n\":%llu,\"%s_p50_ms\":%.3f,\"%s_p99_ms\":%.3f,\"%s_max_ms\":%.3f,", name,
            (unsigned long long)h->n, name, hist_q_ms(h, 0.50), name, hist_q_ms(h, 0.99), name,
            (double)h->max_us / 1000.0);
}

static void print_result(struct lg *lg)
{
    const struct lg_stats *s = &lg->st;
    double window_s = (double)(lg->end_us - lg->steady_us) / 1e6;
    printf("RESULT {");
    printf("\"calls\":%u,\"window_s\":%.3f,\"lg_cpu_ms_per_s\":%.2f,", lg->opt.calls, window_s,
           window_s > 0 ? (ru_ms(&ru_end) - ru_ms(&ru_start)) / window_s : 0);
    print_hist(stdout, "up", &s->up);
    print_hist(stdout, "down", &s->down);
    print_hist(stdout, "bargein", &s->barge);
#define F(x) printf("\"" #x "\":%llu,", (unsigned long long)s->x)
    F(up_frames_sent), F(up_frames_rx), F(up_lost), F(up_reordered), F(up_unreadable);
    F(down_frames_rx), F(down_lost), F(down_reordered), F(down_unreadable);
    F(responses), F(barge_ins), F(bargein_missed), F(clears_unexpected);
    F(truncates), F(truncate_rejected), F(truncate_missing), F(truncate_err_abs_max_ms), F(truncate_checked);
    F(first_frame_dropped), F(append_before_session), F(sessions);
    F(calls_started), F(calls_failed), F(calls_ended_early), F(marks_echoed), F(marks_overflow);
    F(send_refused);
#undef F
    double evaluated = (double)s->truncate_checked;
    printf("\"truncate_err_avg_ms\":%.2f,\"truncate_err_signed_avg_ms\":%.2f}\n",
           evaluated > 0 ? (double)s->truncate_err_sum_ms / evaluated : 0,
           evaluated > 0 ? (double)s->truncate_err_signed_sum_ms / evaluated : 0);
    fflush(stdout);
}

static void stop_all(struct lg *lg)
{
    for (unsigned i = 0; i < lg->opt.calls; i++)
        lg_twilio_stop(&lg->calls[i]);
}

static int all_closed(const struct lg *lg)
{
    for (unsigned i = 0; i < lg->opt.calls; i++) {
        int s = lg->calls[i].tw_state;
        if (s == LG_TW_CONNECTING || s == LG_TW_STREAMING || s == LG_TW_STOPPING)
            return 0;
    }
    return lg->open_oa == 0;
}

static void finish(struct lg *lg)
{
    lg->phase = LG_P_DONE;
    print_result(lg);
    uv_timer_stop(&lg->tick);
    uv_close((uv_handle_t *)&lg->tick, NULL);
    uv_close((uv_handle_t *)&lg->sigint, NULL);
    lg_openai_close_all(lg);
}

static void on_tick(uv_timer_t *t)
{
    struct lg *lg = t->data;
    uint64_t now = lg_now_us();
    /* every slot whose millisecond has come since the last tick (a late tick catches up) */
    static uint64_t next_slot_ms;
    uint64_t now_ms = (now - lg->start_us) / 1000;
    for (unsigned n = 0; next_slot_ms <= now_ms && n < LG_SLOTS; n++, next_slot_ms++) {
        unsigned slot = (unsigned)(next_slot_ms % LG_SLOTS);
        for (unsigned i = slot; i < lg->opt.calls; i += LG_SLOTS) {
            struct lg_call *c = &lg->calls[i];
            lg_twilio_tick(c, now);
            lg_openai_tick(c, now);
        }
    }
    if (next_slot_ms <= now_ms)
        next_slot_ms = now_ms + 1; /* more than a period late: skip, frames catch up anyway */
    lg_twilio_marks_tick(lg, now);

    double since_s = (double)(now - lg->start_us) / 1e6;
    switch (lg->phase) {
    case LG_P_RAMP: {
        unsigned want = (unsigned)(since_s * lg->opt.ramp_per_s) + 1;
        if (want > lg->opt.calls)
            want = lg->opt.calls;
        while (lg->started < want) {
            struct lg_call *c = &lg->calls[lg->started];
            if (lg_twilio_start(c) != 0) {
                lg->st.calls_failed++;
                lg->started++;
            }
        }
        double ramp_s = (double)lg->opt.calls / lg->opt.ramp_per_s;
        int settled = lg->started == lg->opt.calls &&
                      lg->streaming + lg->st.calls_failed + lg->st.calls_ended_early >=
                          lg->opt.calls;
        if (settled || since_s > ramp_s + LG_RAMP_GRACE_S) {
            lg->phase = LG_P_WARM;
            lg->steady_us = now + (uint64_t)lg->opt.warm_s * 1000000u;
            fprintf(stderr, "loadgen: %u calls streaming after %.1f s\n", lg->streaming, since_s);
        }
        break;
    }
    case LG_P_WARM:
        if (now >= lg->steady_us) {
            lg->phase = LG_P_MEASURE;
            lg->measuring = 1;
            lg->end_us = now + (uint64_t)lg->opt.measure_s * 1000000u;
            getrusage(RUSAGE_SELF, &ru_start);
            printf("STEADY %u\n", lg->streaming);
            fflush(stdout);
        }
        break;
    case LG_P_MEASURE:
        if (now >= lg->end_us) {
            getrusage(RUSAGE_SELF, &ru_end);
            lg->measuring = 0;
            lg->end_us = now;
            printf("END %u\n", lg->streaming);
            fflush(stdout);
            lg->phase = LG_P_STOP;
            stop_all(lg);
            lg->next_stop_deadline = now + LG_STOP_GRACE_S * 1000000u;
        }
        break;
    case LG_P_STOP:
        if (all_closed(lg) || now >= lg->next_stop_deadline)
            finish(lg);
        break;
    default:
        break;
    }
}

static void on_sigint(uv_signal_t *s, int sig)
{
    struct lg *lg = s->data;
    (void)sig;
    if (lg->phase < LG_P_STOP) {
        getrusage(RUSAGE_SELF, &ru_end);
        lg->end_us = lg_now_us();
        if (!lg->measuring)
            lg->steady_us = lg->end_us;
        lg->measuring = 0;
        lg->phase = LG_P_STOP;
        lg->next_stop_deadline = lg->end_us + LG_STOP_GRACE_S * 1000000u;
        stop_all(lg);
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen --calls N --vb-port P --oa-port Q [--mode pcm16|g711_ulaw]\n"
            "               [--tls-cert FILE --tls-key FILE] [--ramp CALLS_PER_S] [--warm S]\n"
            "               [--measure S]\n"
            "Plays Twilio (ws://127.0.0.1:P/api/voice-calls/media-stream) and a fake OpenAI\n"
            "Realtime server (127.0.0.1:Q, wss with --tls-*) for N calls; the bridge must run\n"
            "with openai.url at that server, openai.instructions \"{{callId}}\" and the same\n"
            "audio format. Prints STEADY, END, then RESULT {json}.\n");
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            fprintf(stderr, "loadgen: cannot raise RLIMIT_NOFILE: %s\n", strerror(errno));
    }
}

int main(int argc, char **argv)
{
    struct lg *lg = &the_lg;
    struct lg_opts *o = &lg->opt;
    *o = (struct lg_opts){.calls = 10, .ramp_per_s = 200, .warm_s = 2, .measure_s = 10};
    static const struct option longopts[] = {
        {"calls", 1, NULL, 'n'},    {"vb-port", 1, NULL, 'p'}, {"oa-port", 1, NULL, 'q'},
        {"mode", 1, NULL, 'm'},     {"tls-cert", 1, NULL, 'c'}, {"tls-key", 1, NULL, 'k'},
        {"ramp", 1, NULL, 'r'},     {"warm", 1, NULL, 'w'},    {"measure", 1, NULL, 's'},
        {"help", 0, NULL, 'h'},     {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'n': o->calls = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'p': o->vb_port = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'q': o->oa_port = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'm': o->g711 = strcmp(optarg, "g711_ulaw") == 0; break;
        case 'c': o->cert = optarg; break;
        case 'k': o->key = optarg; break;
        case 'r': o->ramp_per_s = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'w': o->warm_s = (unsigned)strtoul(optarg, NULL, 10); break;
        case 's': o->measure_s = (unsigned)strtoul(optarg, NULL, 10); break;
        default: usage(); return 2;
        }
    }
    if (o->calls == 0 || o->calls > 100000 || o->vb_port == 0 || o->vb_port > 65535 ||
        o->oa_port == 0 || o->oa_port > 65535 || o->ramp_per_s == 0 || o->measure_s == 0 ||
        o->measure_s > 3600 || o->warm_s > 600 || (o->cert == NULL) != (o->key == NULL)) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    log_max_level = LOG_WARN;

    lg->loop = uv_default_loop();
    lg->calls = calloc(o->calls, sizeof *lg->calls);
    if (lg->calls == NULL)
        return 1;
    for (unsigned i = 0; i < o->calls; i++) {
        struct lg_call *c = &lg->calls[i];
        c->lg = lg;
        c->id = i;
        snprintf(c->call_id, sizeof c->call_id, "lg%u", i);
        snprintf(c->stream_sid, sizeof c->stream_sid, "MZloadgen%023u", i);
    }
    snprintf(lg->url, sizeof lg->url, "ws://127.0.0.1:%u/api/voice-calls/media-stream",
             o->vb_port);
    for (unsigned v = 0; v < FTAG_LEVELS; v++) {
        uint8_t f[LG_FRAME];
        memset(f, ftag_level_ulaw(v), sizeof f);
        lg->up_level_b64[v][base64_encode(f, sizeof f, lg->up_level_b64[v])] = '\0';
        int16_t x = ftag_level_linear(v);
        for (size_t i = 0; i < 480; i++) {
            lg->down_level_pcm[v][2 * i] = (uint8_t)x;
            lg->down_level_pcm[v][2 * i + 1] = (uint8_t)((uint16_t)x >> 8);
        }
    }
    lg->up_center = 240;
    lg->down_center = 80;
    if (o->cert != NULL) {
        int rc = tls_config_server_new(&lg->tls, o->cert, o->key);
        if (rc != 0) {
            fprintf(stderr, "loadgen: TLS certificate %s / key %s: %s\n", o->cert, o->key,
                    strerror(-rc));
            return 1;
        }
    }
    int rc = lg_openai_listen(lg);
    if (rc != 0) {
        fprintf(stderr, "loadgen: cannot listen on 127.0.0.1:%u: %s\n", o->oa_port, strerror(-rc));
        return 1;
    }
    lg->start_us = lg_now_us();
    uv_timer_init(lg->loop, &lg->tick);
    lg->tick.data = lg;
    uv_timer_start(&lg->tick, on_tick, 1, 1);
    uv_signal_init(lg->loop, &lg->sigint);
    lg->sigint.data = lg;
    uv_signal_start(&lg->sigint, on_sigint, SIGINT);
    printf("READY %u\n", o->oa_port);
    fflush(stdout);
    uv_run(lg->loop, UV_RUN_DEFAULT);
    /* calls still open after the stop deadline are abandoned with the process */
    tls_config_free(lg->tls);
    return 0;
}
