/* GET /readyz and GET /metrics from the shared scoreboard (see node_status.h). Every figure is
 * read with relaxed loads from memory other processes are writing: a scrape is a snapshot that
 * may be a second stale, never a torn number. */
#include "worker/node_status.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int readyz(struct http_request *req, struct http_response *res, void *arg)
{
    (void)req;
    const struct node_status *ns = arg;
    unsigned ready = 0, redis_down = 0;
    for (unsigned i = 0; i < SB_SLOTS_MAX; i++)
        if (atomic_load_explicit(&ns->board->slots[i].state, memory_order_relaxed) == SB_READY) {
            ready++;
            redis_down += sb_load(&ns->board->slots[i].redis_connected) == 0;
        }
    const char *why = NULL;
    if (atomic_load_explicit(&ns->board->node_draining, memory_order_relaxed))
        why = "draining";
    else if (ready == 0)
        why = "no worker ready";
    char body[160];
    int n;
    if (why) {
        http_response_status(res, 503);
        n = snprintf(body, sizeof body, "{\"status\":\"unavailable\",\"reason\":\"%s\"}", why);
    } else {
        /* Calls run without Redis (writes are held), so the node stays in rotation; the body
         * says Redis is degraded for whoever watches. */
        n = snprintf(body, sizeof body, "{\"status\":\"ready\",\"workers_ready\":%u,\"redis\":\"%s\"}",
                     ready, redis_down ? "degraded" : "ok");
    }
    /* A draining worker of an old generation still answers, but says the node is fine only
     * if a ready worker exists: new connections go to that one. */
    return http_response_body(res, "application/json", body, (size_t)n);
}

struct metric {
    const char *name, *type, *help;
    size_t off; /* of the _Atomic uint64_t in struct sb_slot */
};

#define SLOT_U64(field) offsetof(struct sb_slot, field)

static const struct metric metrics[] = {
    {"voicebridge_calls_active", "gauge", "Media streams being bridged now.",
     SLOT_U64(active_calls)},
    {"voicebridge_calls_served_total", "counter", "Media streams that have ended.",
     SLOT_U64(calls_served)},
    {"voicebridge_calls_refused_total", "counter",
     "Media streams turned away: worker full or draining.", SLOT_U64(calls_refused)},
    {"voicebridge_connections_total", "counter", "Connections the master passed to the worker.",
     SLOT_U64(received)},
    {"voicebridge_http_requests_total", "counter", "HTTP requests the worker answered.",
     SLOT_U64(http_requests)},
    {"voicebridge_errors_total", "counter", "Calls that failed or bad input that was refused.",
     SLOT_U64(errors)},
    {"voicebridge_frames_in_total", "counter", "20 ms caller audio frames received from Twilio.",
     SLOT_U64(frames_in)},
    {"voicebridge_frames_up_total", "counter", "20 ms caller audio frames sent to OpenAI.",
     SLOT_U64(frames_up)},
    {"voicebridge_frames_out_total", "counter", "20 ms AI audio frames sent to Twilio.",
     SLOT_U64(frames_out)},
    {"voicebridge_frames_dropped_total", "counter",
     "20 ms frames dropped (ring full or malformed), both directions.", SLOT_U64(frames_dropped)},
    {"voicebridge_audio_bytes_in_total", "counter", "Caller audio bytes received (mu-law).",
     SLOT_U64(bytes_in)},
    {"voicebridge_audio_bytes_out_total", "counter", "AI audio bytes sent to the caller (mu-law).",
     SLOT_U64(bytes_out)},
    {"voicebridge_ring_fill_bytes", "gauge", "Bytes waiting in the live calls' audio rings.",
     SLOT_U64(ring_fill_bytes)},
    {"voicebridge_ring_fill_max_bytes", "gauge", "Bytes waiting in the fullest single ring.",
     SLOT_U64(ring_fill_max)},
    {"voicebridge_redis_connected", "gauge",
     "1 while the worker's Redis connection is up; 0: degraded, writes held.",
     SLOT_U64(redis_connected)},
    {"voicebridge_redis_pending_writes", "gauge",
     "Redis writes held or not yet answered (flushed in order on reconnect).",
     SLOT_U64(redis_pending)},
    {"voicebridge_redis_dropped_writes_total", "counter",
     "Redis writes dropped because the bounded queue was full.", SLOT_U64(redis_dropped)},
    {"voicebridge_redis_reconnects_total", "counter", "Redis connections re-established.",
     SLOT_U64(redis_reconnects)},
    {"voicebridge_calls_stalled", "gauge",
     "Live calls whose ring consumer has stopped moving (see the master's log).",
     SLOT_U64(stalled_calls)},
};

static int appendf(struct http_response *res, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line)
        return -ENOSPC;
    return http_response_append(res, line, (size_t)n);
}

int node_status_metrics(const struct node_status *ns, struct http_response *res)
{
    const struct sb_header *b = ns->board;
    int rc = http_response_body(res, "text/plain; version=0.0.4; charset=utf-8", "", 0);
    rc = rc ? rc
            : appendf(res,
                      "# HELP voicebridge_node_draining 1 while the node is stopping.\n"
                      "# TYPE voicebridge_node_draining gauge\n"
                      "voicebridge_node_draining %u\n"
                      "# HELP voicebridge_worker_info One series per worker process, by state.\n"
                      "# TYPE voicebridge_worker_info gauge\n",
                      (unsigned)atomic_load_explicit(&b->node_draining, memory_order_relaxed));
    for (unsigned i = 0; i < SB_SLOTS_MAX && rc == 0; i++) {
        const struct sb_slot *s = &b->slots[i];
        uint32_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
        if (st == SB_FREE)
            continue;
        rc = appendf(res, "voicebridge_worker_info{worker=\"%u\",generation=\"%u\",pid=\"%d\","
                          "state=\"%s\"} 1\n",
                     (unsigned)atomic_load(&s->id), (unsigned)atomic_load(&s->generation),
                     (int)atomic_load(&s->pid), sb_state_name(st));
    }
    for (size_t m = 0; m < sizeof metrics / sizeof metrics[0] && rc == 0; m++) {
        rc = appendf(res, "# HELP %s %s\n# TYPE %s %s\n", metrics[m].name, metrics[m].help,
                     metrics[m].name, metrics[m].type);
        for (unsigned i = 0; i < SB_SLOTS_MAX && rc == 0; i++) {
            const struct sb_slot *s = &b->slots[i];
            if (atomic_load_explicit(&s->state, memory_order_relaxed) == SB_FREE)
                continue;
            const _Atomic uint64_t *v =
                (const _Atomic uint64_t *)(const void *)((const char *)s + metrics[m].off);
            rc = appendf(res, "%s{worker=\"%u\",generation=\"%u\"} %llu\n", metrics[m].name,
                         (unsigned)atomic_load(&s->id), (unsigned)atomic_load(&s->generation),
                         (unsigned long long)sb_load(v));
        }
    }
    return rc;
}

static int metrics_handler(struct http_request *req, struct http_response *res, void *arg)
{
    (void)req;
    return node_status_metrics(arg, res);
}

int node_status_register(struct http_router *r, const struct node_status *ns)
{
    int rc = http_router_add(r, &(struct http_route){.method = HTTP_METHOD_GET,
                                                     .pattern = "/readyz",
                                                     .handler = readyz,
                                                     .arg = (void *)ns});
    if (rc == 0)
        rc = http_router_add(r, &(struct http_route){.method = HTTP_METHOD_GET,
                                                     .pattern = "/metrics",
                                                     .handler = metrics_handler,
                                                     .arg = (void *)ns});
    return rc;
}
