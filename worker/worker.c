/* Worker main loop: connections from the master's channel, the router (webhooks, health,
 * readiness, metrics, the media-stream upgrade), the event queue from call threads, the
 * scoreboard slot, and the drain: no new calls, live ones run to their end or the deadline. */
#include "worker/worker.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "common/chan.h"
#include "common/config.h"
#include "common/log.h"
#include "common/ring.h"
#include "common/scoreboard.h"
#include "common/tls.h"
#include "common/ws.h"
#include "dsp/resample.h"
#include "worker/api_calls.h"
#include "worker/api_control.h"
#include "worker/call_pair.h"
#include "worker/call_sched.h"
#include "worker/call_store.h"
#include "worker/http_endpoints.h"
#include "worker/http_server.h"
#include "worker/node_status.h"
#include "worker/redis_client.h"
#include "worker/twilio_callbacks_api.h"
#include "worker/security.h"
#include "worker/tls_front.h"

#define WORKER_EVENT_QUEUE 4096
#define WORKER_TICK_MS 1000     /* scoreboard totals refresh */
#define CHAN_BATCH 64           /* channel messages per wake-up */
#define REDIS_FLUSH_MS 5000     /* at exit, how long held Redis writes may take to go out */
#define HTTP_DRAIN_MS 10000     /* ...and requests in progress to be answered */
#define FLUSH_TICK_MS 20

struct worker {
    const struct config *cfg;
    struct worker_opts opts;
    uv_loop_t *loop;
    struct http_router router;
    struct http_endpoints endpoints;
    struct node_status status;
    struct twilio_callbacks_api twilio_callbacks; /* hooks: the call store */
    struct http_server *server;
    struct worker_security sec; /* signature and JWT guards, stream tokens, call rate */
    struct tls_front *fronts[CONFIG_LISTEN_MAX]; /* by listen entry: TLS listeners' fronts */
    struct thread_queue events;
    struct call_pair_host host;
    struct tls_config *openai_tls;
    struct tls_config *webhook_tls;
    struct scoreboard board;
    struct sb_slot *self;
    struct sb_area area;
    unsigned *free_slots; /* call area indices not in use; owned */
    unsigned n_free;
    unsigned calls_hw; /* slots ever used (LIFO reuse keeps this at peak concurrency) */
    int events_open;
    uv_poll_t chan_poll;
    int chan_open;
    uv_signal_t sigint, sigterm, sigquit, sighup, sigusr1;
    uv_timer_t drain_timer, tick, flush_timer;
    unsigned flush_waited_ms;
    uint64_t next_serial;
    unsigned live_calls;
    uint64_t refused; /* media streams turned away (full or draining) */
    struct call_stats retired; /* sums over the calls that ended */
    int draining, finished;
    struct call_store *store; /* Redis: records, sessions, control (worker/call_store.h) */
    struct call_sched *sched; /* the threads that run the call loops (worker/call_sched.h) */
    struct api_calls *calls;  /* POST /api/voice-calls/realtime and its Twilio client */
};

/* Twilio asks what to play once a stream has ended: the apology if that call's AI side failed.
 * The request may reach any worker of the node, so the failures are kept on the scoreboard.
 * (With several nodes this moves to the call record.) */
static const char *stream_ended_say(void *arg, const char *call_id)
{
    struct worker *w = arg;
    return scoreboard_failed_has(w->board.hdr, call_id) ? w->cfg->openai.apology : NULL;
}

static int node_draining(const struct worker *w)
{
    return atomic_load_explicit(&w->board.hdr->node_draining, memory_order_relaxed) != 0;
}

static void refuse_stream(struct worker *w, int fd, const char *why)
{
    /* A status HAProxy and Twilio understand, rather than a queue that never ends. */
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                               "application/json\r\nContent-Length: 44\r\nConnection: close"
                               "\r\n\r\n{\"error\":\"no capacity for another call now\"}";
    ssize_t rc = write(fd, busy, sizeof busy - 1);
    (void)rc; /* best effort: the socket is new and empty, and we close it either way */
    close(fd);
    sb_add(&w->self->calls_refused, 1);
    /* Logged on the 1st, 2nd, 4th, 8th... refusal: an overload does not flood the log. */
    uint64_t n = ++w->refused;
    if ((n & (n - 1)) == 0)
        log_warn("media stream refused (%llu so far): %s", (unsigned long long)n, why);
}

static void on_media_stream(int fd, const struct http_msg *req, const char *leftover, size_t n,
                            void *arg)
{
    struct worker *w = arg;
    struct ws_upgrade up;
    ws_upgrade_from_http(&up, req);
    if (w->draining || node_draining(w))
        return refuse_stream(w, fd, "draining");
    if (w->live_calls >= w->cfg->max_calls_per_worker || w->n_free == 0)
        return refuse_stream(w, fd, "at max_calls_per_worker");
    unsigned i = w->free_slots[--w->n_free];
    if (i >= w->calls_hw) {
        w->calls_hw = i + 1;
        sb_store(&w->self->calls_hw, w->calls_hw);
    }
    struct call_slot slot = {.index = i, .sb = sb_area_call(&w->area, i),
                             .uplink_mem = sb_area_uplink(&w->area, i),
                             .downlink_mem = sb_area_downlink(&w->area, i)};
    memset(slot.sb->call_sid, 0, sizeof slot.sb->call_sid);
    uint64_t serial = ++w->next_serial;
    sb_store(&slot.sb->serial, serial);
    int rc = call_pair_start(&w->host, serial, &slot, fd, &up, leftover, n);
    if (rc != 0) {
        log_error("call %llu not started: %s", (unsigned long long)serial, strerror(-rc));
        sb_store(&slot.sb->serial, 0);
        w->free_slots[w->n_free++] = i;
        sb_add(&w->self->errors, 1);
        return;
    }
    w->live_calls++;
    sb_store(&w->self->active_calls, w->live_calls);
}

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

/* Writes the slot's totals: the ended calls' sums plus every live call's own counters. */
static void publish_totals(struct worker *w)
{
    const struct call_stats *r = &w->retired;
    uint64_t in = r->frames_in, up = r->frames_up, out = r->frames_out, bin = r->bytes_in;
    uint64_t dropped = (r->up_dropped_bytes + r->down_dropped_bytes) / 160;
    for (unsigned i = 0; i < w->calls_hw; i++) {
        const struct sb_call *c = sb_area_call(&w->area, i);
        if (sb_load(&c->serial) == 0)
            continue;
        in += sb_load(&c->frames_in);
        up += sb_load(&c->frames_up);
        out += sb_load(&c->frames_out);
        bin += sb_load(&c->bytes_in);
        dropped += sb_load(&c->frames_dropped);
    }
    struct sb_slot *s = w->self;
    sb_store(&s->frames_in, in);
    sb_store(&s->frames_up, up);
    sb_store(&s->frames_out, out);
    sb_store(&s->frames_dropped, dropped);
    sb_store(&s->bytes_in, bin);
    sb_store(&s->bytes_out, out * 160);
    sb_store(&s->active_calls, w->live_calls);
    if (w->server)
        sb_store(&s->http_requests, http_server_stats(w->server)->requests);
    const struct redis_client_stats *rs = w->store ? call_store_redis_stats(w->store) : NULL;
    if (rs) {
        sb_store(&s->redis_connected, rs->connected != 0);
        sb_store(&s->redis_pending, rs->pending);
        sb_store(&s->redis_dropped, rs->dropped);
        sb_store(&s->redis_reconnects, rs->reconnects);
    }
}

static void on_tick(uv_timer_t *t)
{
    publish_totals(t->data);
}

static void retire(struct worker *w, const struct call_event *ev)
{
    const struct call_stats *s = &ev->stats;
    struct call_stats *r = &w->retired;
    r->frames_in += s->frames_in;
    r->frames_up += s->frames_up;
    r->frames_out += s->frames_out;
    r->bytes_in += s->bytes_in;
    r->up_dropped_bytes += s->up_dropped_bytes;
    r->down_dropped_bytes += s->down_dropped_bytes;
    struct sb_call *c = sb_area_call(&w->area, ev->slot);
    if (c) {
        sb_store(&c->serial, 0);
        w->free_slots[w->n_free++] = ev->slot;
    }
    sb_add(&w->self->calls_served, 1);
    if (ev->ai_failed)
        sb_add(&w->self->errors, 1);
    publish_totals(w);
}

static void worker_finish(struct worker *w);

static void on_events(struct thread_queue *q)
{
    struct worker *w = (struct worker *)((char *)q - offsetof(struct worker, events));
    struct tq_node *n = thread_queue_take(q);
    while (n) {
        struct call_event *ev = (struct call_event *)n;
        n = n->next;
        call_store_event(w->store, ev); /* Redis: before the ENDED join below */
        switch (ev->type) {
        case CALL_EV_STARTED: {
            log_info("call %llu started: %s %s (stream %s)", (unsigned long long)ev->serial,
                     ev->role, ev->call_sid, ev->stream_sid);
            struct sb_call *c = sb_area_call(&w->area, ev->slot);
            if (c) { /* for the master's log, should this worker die with the call live */
                size_t len = strnlen(ev->call_sid, sizeof c->call_sid - 1);
                memcpy(c->call_sid, ev->call_sid, len);
                c->call_sid[len] = '\0';
            }
            break;
        }
        case CALL_EV_TURN:
            log_info("transcript %s +%u ms %s: %s", ev->call_sid, ev->t_ms, ev->role,
                     ev->text ? ev->text : "");
            break;
        case CALL_EV_TOOL:
            log_info("tool %s %s: %s", ev->call_sid, ev->role, ev->text ? ev->text : "");
            break;
        case CALL_EV_BARGE_IN:
        case CALL_EV_CONTROL:
            break;
        case CALL_EV_AI_FAILED:
            scoreboard_failed_add(w->board.hdr, ev->call_id);
            break;
        case CALL_EV_ENDED:
            log_call_end(ev);
            call_pair_join(ev->call);
            w->live_calls--;
            retire(w, ev);
            if (w->draining && w->live_calls == 0)
                worker_finish(w);
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
    if (h->type != UV_UNKNOWN_HANDLE && !uv_is_closing(h))
        uv_close(h, NULL);
}

static void worker_close_all(struct worker *w);

/* What still holds the exit back: Redis writes not yet acknowledged (the last calls' ends) while
 * Redis answers, and HTTP requests being answered (an API call waiting for Twilio, a webhook
 * for Redis). Each gets its own bound, so a drain or reload loses no record and cuts no
 * request, and a stuck peer cannot hold the worker forever. */
static int redis_held(const struct worker *w)
{
    const struct redis_client_stats *rs = w->store ? call_store_redis_stats(w->store) : NULL;
    return rs && rs->pending > 0 && rs->connected && w->flush_waited_ms < REDIS_FLUSH_MS;
}

static int http_held(const struct worker *w)
{
    return w->server && http_server_stats(w->server)->active > 0 &&
           w->flush_waited_ms < HTTP_DRAIN_MS;
}

static void on_flush_tick(uv_timer_t *t)
{
    struct worker *w = t->data;
    w->flush_waited_ms += FLUSH_TICK_MS;
    if (redis_held(w) || http_held(w))
        return;
    const struct redis_client_stats *rs = w->store ? call_store_redis_stats(w->store) : NULL;
    if (rs && rs->pending > 0)
        log_warn("exiting with %llu Redis writes not acknowledged%s",
                 (unsigned long long)rs->pending, rs->connected ? "" : " (Redis is down)");
    if (w->server && http_server_stats(w->server)->active > 0)
        log_warn("exiting with %u HTTP connections still busy",
                 http_server_stats(w->server)->active);
    uv_timer_stop(t);
    worker_close_all(w);
}

/* The last step, once no call is live: everything closes, so uv_run returns. */
static void worker_finish(struct worker *w)
{
    if (w->finished)
        return;
    w->finished = 1;
    if (w->server)
        http_server_drain(w->server);
    if ((redis_held(w) || http_held(w)) && w->flush_timer.type == UV_TIMER) {
        uv_timer_start(&w->flush_timer, on_flush_tick, FLUSH_TICK_MS, FLUSH_TICK_MS);
        return;
    }
    worker_close_all(w);
}

static void worker_close_all(struct worker *w)
{
    for (size_t i = 0; i < CONFIG_LISTEN_MAX; i++) /* before the server they feed */
        if (w->fronts[i])
            tls_front_close(w->fronts[i], false, NULL, NULL);
    memset(w->fronts, 0, sizeof w->fronts);
    if (w->server)
        http_server_close(w->server, on_server_closed, NULL);
    w->server = NULL;
    if (w->events_open)
        thread_queue_close(&w->events, NULL);
    w->events_open = 0;
    api_calls_close(w->calls); /* requests to Twilio still running answer 503 */
    w->calls = NULL;
    call_store_close(w->store); /* Redis connections and timers */
    w->store = NULL;
    if (w->chan_open)
        close_handle((uv_handle_t *)&w->chan_poll);
    close_handle((uv_handle_t *)&w->sigint);
    close_handle((uv_handle_t *)&w->sigterm);
    close_handle((uv_handle_t *)&w->sigquit);
    close_handle((uv_handle_t *)&w->sighup);
    close_handle((uv_handle_t *)&w->sigusr1);
    close_handle((uv_handle_t *)&w->drain_timer);
    close_handle((uv_handle_t *)&w->tick);
    close_handle((uv_handle_t *)&w->flush_timer);
}

static void on_drain_deadline(uv_timer_t *t)
{
    struct worker *w = t->data;
    log_warn("drain deadline passed with %u calls still live; exiting anyway", w->live_calls);
    _exit(0); /* the call loops cannot be stopped from outside; the process ends them */
}

static void worker_drain(struct worker *w, const char *why)
{
    if (w->draining)
        return;
    w->draining = 1;
    atomic_store(&w->self->state, SB_DRAINING);
    /* Keep-alive clients (HAProxy) go back to the master, which has a worker for them. */
    if (w->server)
        http_server_drain(w->server);
    log_info("%s: draining %u live calls (deadline %u s)", why, w->live_calls,
             w->cfg->drain_timeout_s);
    if (w->live_calls == 0) {
        worker_finish(w);
        return;
    }
    uv_timer_start(&w->drain_timer, on_drain_deadline, w->cfg->drain_timeout_s * 1000ull, 0);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct worker *w = s->data;
    switch (signum) {
    case SIGQUIT:
        log_warn("SIGQUIT: exiting now with %u live calls", w->live_calls);
        _exit(0);
    case SIGUSR1:
        log_reopen();
        return;
    case SIGHUP:
        return; /* the master reloads; a terminal's hangup must not stop calls */
    default:
        if (w->draining && w->live_calls > 0) {
            log_warn("second %s: exiting now with %u live calls", strsignal(signum),
                     w->live_calls);
            _exit(0);
        }
        worker_drain(w, strsignal(signum));
    }
}

static void on_chan(uv_poll_t *p, int status, int events)
{
    struct worker *w = p->data;
    (void)events;
    if (status < 0) {
        log_error("master channel: %s", uv_strerror(status));
        goto gone;
    }
    for (int k = 0; k < CHAN_BATCH; k++) {
        struct chan_msg m;
        int fd;
        int rc = chan_recv(w->opts.chan_fd, &m, &fd);
        if (rc == -EAGAIN)
            return;
        if (rc == -EPROTO) {
            log_error("master channel: malformed message ignored");
            continue;
        }
        if (rc <= 0) {
            if (rc < 0)
                log_error("master channel: %s", strerror(-rc));
            goto gone;
        }
        switch (m.type) {
        case CHAN_CONN:
            sb_add(&w->self->received, 1);
            if (w->server == NULL) {
                close(fd);
                break;
            }
            /* Connections from a TLS listener go through its front; adopting takes the fd. */
            rc = m.listener < CONFIG_LISTEN_MAX && w->fronts[m.listener]
                     ? tls_front_adopt_fd(w->fronts[m.listener], fd)
                     : http_server_adopt_fd(w->server, fd);
            if (rc != 0)
                sb_add(&w->self->errors, 1);
            break;
        case CHAN_DRAIN:
            worker_drain(w, "told to drain by the master");
            break;
        case CHAN_REOPEN:
            if (log_reopen() != 0)
                log_error("cannot reopen the log file");
            break;
        default:
            log_error("master channel: unexpected message type %u", (unsigned)m.type);
        }
    }
    return;
gone:
    /* Nobody will pass connections any more: finish the calls we have, then exit. */
    uv_poll_stop(p);
    w->chan_open = 0;
    uv_close((uv_handle_t *)p, NULL);
    worker_drain(w, "master channel closed");
}

static int worker_setup(struct worker *w)
{
    const struct config *cfg = w->cfg;
    int rc;
    if (strncmp(cfg->openai.url, "wss://", 6) == 0 &&
        (rc = tls_config_client_new(&w->openai_tls, cfg->openai.ca_file)) != 0) {
        log_error("TLS for %s: %s", cfg->openai.url, strerror(-rc));
        return rc;
    }
    if (cfg->tools.webhook.url && strncmp(cfg->tools.webhook.url, "https://", 8) == 0 &&
        (rc = tls_config_client_new(&w->webhook_tls, NULL)) != 0) {
        log_error("TLS for the webhook tool: %s", strerror(-rc));
        return rc;
    }
    http_router_init(&w->router);
    if ((rc = worker_security_init(&w->sec, cfg)) != 0)
        return rc;
    w->endpoints.public_url = cfg->public_url ? cfg->public_url : "http://127.0.0.1";
    w->endpoints.stream_ended_say = stream_ended_say;
    w->endpoints.stream_ended_arg = w;
    worker_security_attach(&w->sec, &w->endpoints, cfg);
    w->twilio_callbacks.guard = twilio_guard_check;
    w->twilio_callbacks.guard_arg = &w->sec.twilio;
    w->status.board = w->board.hdr;
    /* Redis names the worker by its scoreboard slot: unique on the node even while two
     * generations (each with a worker 0) overlap during a reload. */
    if ((rc = call_store_new(w->loop, cfg, w->opts.slot, &w->store)) != 0) {
        log_error("redis client: %s", strerror(-rc));
        return rc;
    }
    w->endpoints.stream_ended_async = api_control_stream_ended;
    w->endpoints.stream_ended_async_arg = w->store;
    /* The call API: placing calls, the record in their TwiML, Twilio's callbacks on the record. */
    if ((rc = api_calls_new(w->loop, cfg, w->store, w->sec.calls, &w->calls)) != 0) {
        log_error("call API: %s", strerror(-rc));
        return rc;
    }
    w->endpoints.outbound_lookup = api_calls_lookup;
    w->endpoints.outbound_lookup_arg = w->store;
    w->twilio_callbacks.on_status = call_store_on_status;
    w->twilio_callbacks.on_recording = call_store_on_recording;
    w->twilio_callbacks.arg = w->store;
    if ((rc = api_calls_register(&w->router, w->calls, api_auth_guard, &w->sec.api)) != 0) {
        log_error("routes: %s", strerror(-rc));
        return rc;
    }
    if ((rc = api_control_register(&w->router, w->store, api_auth_guard, &w->sec.api)) != 0 ||
        (rc = http_endpoints_register(&w->router, &w->endpoints)) != 0 ||
        (rc = twilio_callbacks_api_register(&w->router, &w->twilio_callbacks)) != 0 ||
        (rc = node_status_register(&w->router, &w->status)) != 0 ||
        (rc = http_router_add(&w->router, &(struct http_route){
                                              .pattern = "/api/voice-calls/media-stream",
                                              .upgrade = on_media_stream, .arg = w,
                                              .guard = twilio_guard_check,
                                              .guard_arg = &w->sec.twilio})) != 0) {
        log_error("routes: %s", strerror(-rc));
        return rc;
    }
    struct http_server_settings s;
    http_server_settings_default(&s);
    s.router = &w->router;
    s.max_head_bytes = cfg->http.max_header_bytes;
    s.max_body_bytes = cfg->http.max_body_bytes;
    s.request_timeout_ms = cfg->http.request_timeout_ms;
    s.idle_timeout_ms = cfg->http.keepalive_timeout_ms;
    s.no_keepalive = cfg->http.keepalive_timeout_ms == 0; /* 0 means "no keep-alive" */
    if ((rc = http_server_create(w->loop, &s, &w->server)) != 0) {
        log_error("http server: %s", strerror(-rc));
        return rc;
    }
    /* A listen entry with a certificate: the master accepts, we end TLS here. Each worker of
     * a new generation reads the files afresh, so a reload (SIGHUP) picks up new certificates. */
    for (size_t i = 0; i < cfg->listen_count; i++) {
        const struct config_listen *l = &cfg->listen[i];
        if (l->tls_cert[0] == '\0')
            continue;
        if ((rc = tls_front_new(&w->fronts[i], w->loop, w->server, l->tls_cert, l->tls_key)) != 0) {
            log_error("TLS for %s:%u: %s", l->host, l->port, strerror(-rc));
            return rc;
        }
    }
    if ((rc = thread_queue_init(&w->events, w->loop, WORKER_EVENT_QUEUE, on_events)) != 0)
        return rc;
    w->events_open = 1;
    if ((rc = call_sched_create(cfg->call_threads, cfg->max_calls_per_worker, &w->sched)) != 0) {
        log_error("call scheduler: %s", strerror(-rc));
        return rc;
    }
    w->host = (struct call_pair_host){
        .cfg = cfg, .openai_tls = w->openai_tls, .webhook_tls = w->webhook_tls,
        .events = &w->events, .sched = w->sched};
    return 0;
}

static void watch_signal(struct worker *w, uv_signal_t *s, int signum)
{
    uv_signal_init(w->loop, s);
    s->data = w;
    uv_signal_start(s, on_signal, signum);
}

int worker_run(const struct config *cfg, const struct worker_opts *o)
{
    static struct worker w; /* one per process; too big for the stack */
    memset(&w, 0, sizeof w);
    w.cfg = cfg;
    w.opts = *o;
    w.loop = uv_default_loop();
    signal(SIGPIPE, SIG_IGN);
    /* Memory per call: blocks of 16 KiB and more (mbedTLS's two 16.7 KiB record buffers per TLS
     * session, calloc'd whole) get their own zero pages, so only the pages a record really uses
     * count; from the heap, calloc would touch all of them. Messages that large are rare. */
    mallopt(M_MMAP_THRESHOLD, 16 << 10);
    log_set_context("w=%u", o->id);
    int rc = scoreboard_attach(&w.board, o->board_fd);
    if (rc == 0 && o->slot >= SB_SLOTS_MAX)
        rc = -EINVAL;
    if (rc != 0) {
        log_error("scoreboard: %s", strerror(-rc));
        close(o->area_fd);
        close(o->chan_fd);
        return rc;
    }
    w.self = &w.board.hdr->slots[o->slot];
    rc = sb_area_attach(&w.area, o->area_fd, cfg->max_calls_per_worker, CALL_UPLINK_RING,
                        CALL_DOWNLINK_RING, 1);
    if (rc != 0) {
        log_error("call area: %s", strerror(-rc));
        close(o->chan_fd);
        scoreboard_close(&w.board);
        return rc;
    }
    w.free_slots = malloc(sizeof(unsigned) * w.area.n_calls);
    if (!w.free_slots) {
        rc = -ENOMEM;
        goto out;
    }
    for (unsigned i = 0; i < w.area.n_calls; i++)
        w.free_slots[w.n_free++] = w.area.n_calls - 1 - i; /* slot 0 first */

    if ((rc = worker_setup(&w)) != 0)
        goto out_loop;
    watch_signal(&w, &w.sigint, SIGINT);
    watch_signal(&w, &w.sigterm, SIGTERM);
    watch_signal(&w, &w.sigquit, SIGQUIT);
    watch_signal(&w, &w.sighup, SIGHUP);
    watch_signal(&w, &w.sigusr1, SIGUSR1);
    uv_timer_init(w.loop, &w.drain_timer);
    uv_timer_init(w.loop, &w.tick);
    uv_timer_init(w.loop, &w.flush_timer);
    w.drain_timer.data = w.tick.data = w.flush_timer.data = &w;
    uv_timer_start(&w.tick, on_tick, WORKER_TICK_MS, WORKER_TICK_MS);
    if ((rc = uv_poll_init(w.loop, &w.chan_poll, o->chan_fd)) != 0) {
        log_error("master channel: %s", uv_strerror(rc));
        rc = -EIO;
        w.draining = 1;
        worker_finish(&w);
        uv_run(w.loop, UV_RUN_DEFAULT);
        goto out_loop;
    }
    w.chan_open = 1;
    w.chan_poll.data = &w;
    uv_poll_start(&w.chan_poll, UV_READABLE | UV_DISCONNECT, on_chan);

    atomic_store(&w.self->state, SB_READY);
    if ((rc = chan_send(o->chan_fd, CHAN_READY, 0, 0, 0, -1)) != 0)
        log_error("telling the master we are ready: %s", strerror(-rc));
    log_info("worker %u (generation %u) ready: OpenAI at %s (%s), audio %s, dsp kernel %s, up to "
             "%u calls",
             o->id, o->generation, cfg->openai.url, cfg->openai.model,
             cfg->openai.audio_format == CONFIG_AUDIO_G711_ULAW ? "g711_ulaw passthrough"
                                                                : "pcm16 24 kHz",
             resample_kernel_name(), cfg->max_calls_per_worker);
    uv_run(w.loop, UV_RUN_DEFAULT);
    log_info("worker %u exiting: %llu calls served", o->id,
             (unsigned long long)sb_load(&w.self->calls_served));
    rc = 0;
out_loop:
    if (rc != 0 && w.server) {
        w.draining = 1;
        worker_finish(&w);
        uv_run(w.loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(w.loop);
    call_sched_destroy(w.sched); /* no call is live: the threads exit at once */
out:
    close(o->chan_fd);
    worker_security_free(&w.sec);
    tls_config_free(w.openai_tls);
    tls_config_free(w.webhook_tls);
    free(w.free_slots);
    sb_area_close(&w.area);
    scoreboard_close(&w.board);
    return rc;
}
