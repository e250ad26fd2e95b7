/* Worker main loop: listeners, router, the media-stream upgrade route, the event queue from
 * call threads, and graceful shutdown on SIGINT/SIGTERM (stop accepting, drain calls, exit). */
#include "worker/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "common/config.h"
#include "common/log.h"
#include "common/tls.h"
#include "common/ws.h"
#include "dsp/resample.h"
#include "worker/call_pair.h"
#include "worker/http_endpoints.h"
#include "worker/http_server.h"
#include "worker/security.h"
#include "worker/tls_front.h"

#define WORKER_EVENT_QUEUE 4096
#define WORKER_FAILED_CALLS 256 /* recent calls whose AI side failed, for the apology */

struct worker {
    const struct config *cfg;
    uv_loop_t *loop;
    struct http_router router;
    struct http_endpoints endpoints;
    struct worker_security sec; /* signature and JWT guards, stream tokens, call rate */
    struct http_server *servers[CONFIG_LISTEN_MAX];
    size_t n_servers;
    struct tls_front *fronts[CONFIG_LISTEN_MAX]; /* TLS listeners, each feeding its server */
    size_t n_fronts;
    struct thread_queue events;
    struct call_pair_host host;
    struct tls_config *openai_tls;
    struct tls_config *webhook_tls;
    uv_signal_t sigint, sigterm;
    uv_timer_t drain_timer;
    uint64_t next_serial;
    unsigned live_calls;
    uint64_t refused;           /* media streams turned away (full or draining) */
    int draining;
    char failed[WORKER_FAILED_CALLS][64]; /* call ids, newest at failed_next - 1 */
    unsigned failed_next;
};

/* Twilio asks what to play once a stream has ended: the apology if that call's AI side failed.
 * (One node remembers its own calls; with several nodes this moves to the call record.) */
static const char *stream_ended_say(void *arg, const char *call_id)
{
    struct worker *w = arg;
    for (unsigned i = 0; i < WORKER_FAILED_CALLS; i++)
        if (strcmp(w->failed[i], call_id) == 0)
            return w->cfg->openai.apology;
    return NULL;
}

static void on_media_stream(int fd, const struct http_msg *req, const char *leftover, size_t n,
                            void *arg)
{
    struct worker *w = arg;
    struct ws_upgrade up;
    ws_upgrade_from_http(&up, req);
    if (w->draining || w->live_calls >= w->cfg->max_calls_per_worker) {
        /* Refuse with a status HAProxy and Twilio understand, rather than queue forever. */
        static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                                   "application/json\r\nContent-Length: 44\r\nConnection: close"
                                   "\r\n\r\n{\"error\":\"no capacity for another call now\"}";
        ssize_t rc = write(fd, busy, sizeof busy - 1);
        (void)rc; /* best effort: the socket is new and empty, and we close it either way */
        close(fd);
        /* Logged on the 1st, 2nd, 4th, 8th... refusal: an overload does not flood the log. */
        uint64_t n = ++w->refused;
        if ((n & (n - 1)) == 0)
            log_warn("media stream refused (%llu so far): %s", (unsigned long long)w->refused,
                     w->draining ? "draining" : "at max_calls_per_worker");
        return;
    }
    uint64_t serial = ++w->next_serial;
    int rc = call_pair_start(&w->host, serial, fd, &up, leftover, n);
    if (rc != 0) {
        log_error("call %llu not started: %s", (unsigned long long)serial, strerror(-rc));
        return;
    }
    w->live_calls++;
}

static void worker_stop_listening(struct worker *w);

static unsigned long long avg(uint64_t sum, uint64_t n)
{
    return n ? (unsigned long long)(sum / n) : 0;
}

static void log_call_end(const struct call_event *ev)
{
    const struct call_stats *s = &ev->stats;
    log_info("call %llu ended (%s): %llu frames in, %llu up, %llu out; added latency up avg %llu "
             "max %llu us, down avg %llu max %llu us; barge-ins %llu (worst %llu us), truncates "
             "%llu; dropped %llu/%llu bytes",
             (unsigned long long)ev->serial, ev->reason, (unsigned long long)s->frames_in,
             (unsigned long long)s->frames_up, (unsigned long long)s->frames_out,
             avg(s->up_us_sum, s->up_count), (unsigned long long)s->up_us_max,
             avg(s->down_us_sum, s->down_count), (unsigned long long)s->down_us_max,
             (unsigned long long)s->barge_ins, (unsigned long long)s->bargein_max_us,
             (unsigned long long)s->truncates, (unsigned long long)s->up_dropped_bytes,
             (unsigned long long)s->down_dropped_bytes);
}

static void on_events(struct thread_queue *q)
{
    struct worker *w = (struct worker *)((char *)q - offsetof(struct worker, events));
    struct tq_node *n = thread_queue_take(q);
    while (n) {
        struct call_event *ev = (struct call_event *)n;
        n = n->next;
        switch (ev->type) {
        case CALL_EV_STARTED:
            log_info("call %llu started: %s %s (stream %s)", (unsigned long long)ev->serial,
                     ev->role, ev->call_sid, ev->stream_sid);
            break;
        case CALL_EV_TURN:
            log_info("transcript %s +%u ms %s: %s", ev->call_sid, ev->t_ms, ev->role,
                     ev->text ? ev->text : "");
            break;
        case CALL_EV_TOOL:
            log_info("tool %s %s: %s", ev->call_sid, ev->role, ev->text ? ev->text : "");
            break;
        case CALL_EV_BARGE_IN:
            break;
        case CALL_EV_AI_FAILED:
            snprintf(w->failed[w->failed_next], sizeof w->failed[0], "%s", ev->call_id);
            w->failed_next = (w->failed_next + 1) % WORKER_FAILED_CALLS;
            break;
        case CALL_EV_ENDED:
            log_call_end(ev);
            call_pair_join(ev->call);
            w->live_calls--;
            if (w->draining && w->live_calls == 0)
                worker_stop_listening(w);
            break;
        }
        call_event_free(ev);
    }
}

static void on_server_closed(void *arg)
{
    (void)arg;
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* The last step: everything closed, so uv_run returns. */
static void worker_stop_listening(struct worker *w)
{
    for (size_t i = 0; i < w->n_fronts; i++) /* before the servers they feed */
        tls_front_close(w->fronts[i], false, NULL, NULL); /* calls drain */
    w->n_fronts = 0;
    for (size_t i = 0; i < w->n_servers; i++)
        if (w->servers[i])
            http_server_close(w->servers[i], on_server_closed, NULL);
    w->n_servers = 0;
    if (w->live_calls > 0)
        return; /* the last CALL_EV_ENDED finishes the job */
    thread_queue_close(&w->events, NULL);
    close_handle((uv_handle_t *)&w->sigint);
    close_handle((uv_handle_t *)&w->sigterm);
    close_handle((uv_handle_t *)&w->drain_timer);
}

static void on_drain_deadline(uv_timer_t *t)
{
    struct worker *w = t->data;
    log_warn("drain deadline passed with %u calls still live; exiting anyway", w->live_calls);
    exit(0); /* the call threads cannot be stopped from outside; the process ends them */
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct worker *w = s->data;
    if (w->draining) {
        log_warn("second %s: exiting now", strsignal(signum));
        exit(0);
    }
    w->draining = 1;
    log_info("%s: draining %u live calls (deadline %u s)", strsignal(signum), w->live_calls,
             w->cfg->drain_timeout_s);
    uv_timer_start(&w->drain_timer, on_drain_deadline, w->cfg->drain_timeout_s * 1000ull, 0);
    uv_unref((uv_handle_t *)&w->drain_timer);
    worker_stop_listening(w);
}

static int listen_all(struct worker *w)
{
    struct http_server_settings s;
    http_server_settings_default(&s);
    s.router = &w->router;
    s.max_head_bytes = w->cfg->http.max_header_bytes;
    s.max_body_bytes = w->cfg->http.max_body_bytes;
    s.request_timeout_ms = w->cfg->http.request_timeout_ms;
    s.idle_timeout_ms = w->cfg->http.keepalive_timeout_ms;
    s.no_keepalive = w->cfg->http.keepalive_timeout_ms == 0; /* 0 means "no keep-alive" */
    for (size_t i = 0; i < w->cfg->listen_count; i++) {
        const struct config_listen *l = &w->cfg->listen[i];
        struct addrinfo hints = {.ai_family = l->family, .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_NUMERICSERV}, *res;
        char port[8];
        snprintf(port, sizeof port, "%u", l->port);
        int rc = getaddrinfo(l->host, port, &hints, &res);
        if (rc != 0) {
            log_error("listen %s:%u: %s", l->host, l->port, gai_strerror(rc));
            return -EINVAL;
        }
        rc = http_server_create(w->loop, &s, &w->servers[w->n_servers]);
        if (rc == 0) {
            struct http_server *srv = w->servers[w->n_servers++];
            if (l->tls_cert[0] == '\0') {
                rc = http_server_listen(srv, res->ai_addr);
            } else if ((rc = tls_front_new(&w->fronts[w->n_fronts], w->loop, srv, l->tls_cert,
                                           l->tls_key)) == 0) {
                rc = tls_front_listen(w->fronts[w->n_fronts++], res->ai_addr);
            }
        }
        freeaddrinfo(res);
        if (rc != 0) {
            log_error("listen %s:%u: %s", l->host, l->port, strerror(-rc));
            return rc;
        }
        log_info("listening on %s:%u%s", l->host, l->port, l->tls_cert[0] ? " (TLS)" : "");
    }
    return 0;
}

int worker_run(const struct config *cfg)
{
    static struct worker w; /* one per process; too big for the stack */
    memset(&w, 0, sizeof w);
    w.cfg = cfg;
    w.loop = uv_default_loop();
    signal(SIGPIPE, SIG_IGN);
    int rc;
    if (strncmp(cfg->openai.url, "wss://", 6) == 0 &&
        (rc = tls_config_client_new(&w.openai_tls, cfg->openai.ca_file)) != 0) {
        log_error("TLS for %s: %s", cfg->openai.url, strerror(-rc));
        return rc;
    }
    if (cfg->tools.webhook.url && strncmp(cfg->tools.webhook.url, "https://", 8) == 0 &&
        (rc = tls_config_client_new(&w.webhook_tls, NULL)) != 0) {
        log_error("TLS for the webhook tool: %s", strerror(-rc));
        tls_config_free(w.openai_tls);
        return rc;
    }
    if (!cfg->openai.api_key)
        log_warn("OPENAI_API_KEY is not set: only a local Realtime server will accept calls");
    http_router_init(&w.router);
    if ((rc = worker_security_init(&w.sec, cfg)) != 0)
        goto fail;
    w.endpoints.public_url = cfg->public_url ? cfg->public_url : "http://127.0.0.1";
    w.endpoints.stream_ended_say = stream_ended_say;
    w.endpoints.stream_ended_arg = &w;
    worker_security_attach(&w.sec, &w.endpoints, cfg);
    if (!cfg->public_url)
        log_warn("public_url is not set: TwiML will point Twilio at %s", w.endpoints.public_url);
    if ((rc = http_endpoints_register(&w.router, &w.endpoints)) != 0 ||
        (rc = http_router_add(&w.router, &(struct http_route){
                                             .pattern = "/api/voice-calls/media-stream",
                                             .upgrade = on_media_stream, .arg = &w,
                                             .guard = twilio_guard_check,
                                             .guard_arg = &w.sec.twilio})) != 0) {
        log_error("routes: %s", strerror(-rc));
        goto fail;
    }
    if ((rc = thread_queue_init(&w.events, w.loop, WORKER_EVENT_QUEUE, on_events)) != 0)
        goto fail;
    w.host = (struct call_pair_host){
        .cfg = cfg, .openai_tls = w.openai_tls, .webhook_tls = w.webhook_tls, .events = &w.events};
    uv_signal_init(w.loop, &w.sigint);
    uv_signal_init(w.loop, &w.sigterm);
    uv_timer_init(w.loop, &w.drain_timer);
    w.sigint.data = w.sigterm.data = w.drain_timer.data = &w;
    uv_signal_start(&w.sigint, on_signal, SIGINT);
    uv_signal_start(&w.sigterm, on_signal, SIGTERM);
    if ((rc = listen_all(&w)) != 0) {
        w.draining = 1;
        worker_stop_listening(&w);
        uv_run(w.loop, UV_RUN_DEFAULT);
        goto fail;
    }
    log_info("voicebridge serving: OpenAI at %s (%s), audio %s, dsp kernel %s", cfg->openai.url,
             cfg->openai.model,
             cfg->openai.audio_format == CONFIG_AUDIO_G711_ULAW ? "g711_ulaw passthrough"
                                                                : "pcm16 24 kHz",
             resample_kernel_name());
    uv_run(w.loop, UV_RUN_DEFAULT);
    rc = 0;
fail:
    uv_loop_close(w.loop);
    worker_security_free(&w.sec);
    tls_config_free(w.openai_tls);
    tls_config_free(w.webhook_tls);
    return rc;
}
