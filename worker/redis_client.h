/* The worker's Redis client: two connections on the worker's main libuv loop (hiredis async API
 * and its libuv adapter, kept inside redis_client.c): one for commands, one for SUBSCRIBE.
 * Writes go through a bounded FIFO (worker/redis_queue.h) so that a call never waits on Redis:
 * while Redis is away they wait, on reconnect they are replayed in order, past the bound the
 * oldest are dropped and counted. Reads (requests) are not queued: they fail at once when Redis
 * is not connected. Main-loop thread only. */
#ifndef VB_WORKER_REDIS_CLIENT_H
#define VB_WORKER_REDIS_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct config_redis;
struct redis_client;

/* For /metrics and /readyz. Valid as long as the client. */
struct redis_client_stats {
    uint64_t pending;        /* writes held: waiting or sent and not yet answered */
    uint64_t dropped;        /* writes dropped because the queue was full, ever */
    uint64_t reconnects;     /* connections (re)established after the first */
    uint64_t errors;         /* writes Redis answered with an error */
    int connected;           /* the command connection is up (0: Redis degraded) */
    int subscribed;          /* the pub/sub connection is up and subscribed */
};

/* Reply view, read-only, valid only during the reply callback. Types: */
enum redis_reply_type {
    REDIS_R_STRING = 1,
    REDIS_R_ARRAY = 2,
    REDIS_R_INTEGER = 3,
    REDIS_R_NIL = 4,
    REDIS_R_STATUS = 5,
    REDIS_R_ERROR = 6,
};
struct redis_reply;
int redis_reply_type(const struct redis_reply *r);
const char *redis_reply_str(const struct redis_reply *r, size_t *len); /* STRING/STATUS/ERROR */
long long redis_reply_int(const struct redis_reply *r);
size_t redis_reply_count(const struct redis_reply *r);                       /* ARRAY */
const struct redis_reply *redis_reply_elem(const struct redis_reply *r, size_t i);

/* reply NULL: the request failed (connection lost or client closing). */
typedef void redis_reply_fn(void *arg, const struct redis_reply *reply);
/* A message on the subscribed channel; msg valid during the call only. */
typedef void redis_message_fn(void *arg, const char *msg, size_t len);

/* Creates the client and starts connecting (host, port, AUTH, SELECT from cfg; the strings are
 * copied). queue_max bounds the write queue; timeout_ms: a connection that leaves a command or a
 * handshake unanswered this long is dropped and reconnected (backoff 100 ms doubling to 5 s).
 * channel (NULL: none) is SUBSCRIBEd on the second connection, each message going to on_message.
 * Returns 0 and *out (freed by redis_client_close), or -ENOMEM. Never fails because Redis is
 * down. */
int redis_client_new(uv_loop_t *loop, const struct config_redis *cfg, const char *channel,
                     redis_message_fn *on_message, void *arg, struct redis_client **out);

/* Closes both connections (pending requests get NULL replies), drops queued writes (logged with
 * their count) and frees the client once its handles are closed. */
void redis_client_close(struct redis_client *rc);

/* Queues a write; lens NULL: the arguments are strings. The arguments are copied. Returns 0,
 * -EINVAL (argc), -ENOMEM. A write the queue had to drop to make room is counted in stats. */
int redis_client_write(struct redis_client *rc, int argc, const char *const *argv,
                       const size_t *lens);

/* Sends a read (or any command whose answer matters) now. Returns 0 and fn is called exactly once
 * later (with NULL if the connection is lost first), or -EAGAIN when Redis is not connected, or
 * -ENOMEM; fn is not called then. */
int redis_client_request(struct redis_client *rc, redis_reply_fn *fn, void *arg, int argc,
                         const char *const *argv, const size_t *lens);

int redis_client_ready(const struct redis_client *rc);
const struct redis_client_stats *redis_client_stats(const struct redis_client *rc);

#endif
