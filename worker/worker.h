/* The worker role: a process the master spawns. Its main libuv loop receives connections from
 * the master over the channel, serves HTTP (health, readiness, metrics, TwiML webhooks) and
 * hands each media-stream upgrade to a call pair on its own thread; it collects the calls'
 * events, joins their threads and keeps its scoreboard slot current. */
#ifndef VB_WORKER_WORKER_H
#define VB_WORKER_WORKER_H

struct config;

/* What the master gives a worker: its place on the scoreboard and its inherited fds. */
struct worker_opts {
    unsigned slot;       /* index into the scoreboard's slots */
    unsigned id;         /* worker number within its generation, for logs and labels */
    unsigned generation;
    int chan_fd;         /* SOCK_SEQPACKET channel to the master */
    int board_fd;        /* the node's scoreboard memfd */
    int area_fd;         /* this worker's call area memfd (max_calls_per_worker slots) */
};

/* Serves until told to drain (CHAN_DRAIN, SIGTERM/SIGINT, or the master's channel closing),
 * then takes no new calls, lets live ones finish (up to drain_timeout_s) and returns 0; or
 * returns a negative errno if it cannot start. Takes the fds in o. */
int worker_run(const struct config *cfg, const struct worker_opts *o);

#endif
