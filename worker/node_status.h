/* The node's status endpoints, answered by whichever worker gets the request: GET /readyz (may
 * this node take new calls: 503 while it drains or has no ready worker, for HAProxy's health
 * check) and GET /metrics (every worker's figures from the shared scoreboard, in Prometheus
 * text exposition format). /healthz, plain liveness, stays in http_endpoints. */
#ifndef VB_WORKER_NODE_STATUS_H
#define VB_WORKER_NODE_STATUS_H

#include "common/scoreboard.h"
#include "worker/http_router.h"

struct node_status {
    const struct sb_header *board; /* the node's scoreboard, mapped by the worker */
};

/* Adds GET /readyz and GET /metrics. ns must outlive the router. */
int node_status_register(struct http_router *r, const struct node_status *ns);

/* The /metrics text into res (exposed for tests). */
int node_status_metrics(const struct node_status *ns, struct http_response *res);

#endif
