/* The worker role: one main libuv loop serving HTTP (health, TwiML webhooks) and handing each
 * media-stream upgrade to a call pair on its own thread; it collects the calls' events (logs the
 * transcript turns) and joins their threads. Until the master/worker split lands, `voicebridge
 * -c FILE` runs one worker that listens on the configured addresses itself. */
#ifndef VB_WORKER_WORKER_H
#define VB_WORKER_WORKER_H

struct config;

/* Serves until SIGINT/SIGTERM, then stops accepting, lets live calls finish (up to
 * drain_timeout_s) and returns 0; or returns a negative errno if it cannot start. */
int worker_run(const struct config *cfg);

#endif
