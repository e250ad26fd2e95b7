/* The per-worker FIFO of Redis write commands: owned copies in argv form, kept from the moment
 * a call event produces them until Redis has answered them. While Redis is away they wait here
 * and are replayed in order on reconnect; beyond the bound the oldest unsent one is dropped and
 * counted. Pure data structure (no I/O), main-loop thread only.
 *
 *   head ... last_sent | unsent ... tail      sent-but-unanswered first, then waiting
 */
#ifndef VB_WORKER_REDIS_QUEUE_H
#define VB_WORKER_REDIS_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#define REDIS_CMD_ARGS_MAX 64

/* One command and its arguments in a single allocation (free with redis_cmd_free). */
struct redis_cmd {
    struct redis_cmd *next;
    int argc;
    const char **argv;    /* argc pointers into the same block, each NUL-terminated */
    const size_t *argvlen;
    size_t bytes;         /* the whole block, for accounting */
};

/* Copies argv (lens NULL: strlen of each). Returns the owned command, or NULL (out of memory,
 * or argc outside 1..REDIS_CMD_ARGS_MAX). */
struct redis_cmd *redis_cmd_new(int argc, const char *const *argv, const size_t *lens);
void redis_cmd_free(struct redis_cmd *c);

struct redis_queue {
    struct redis_cmd *head, *tail;
    struct redis_cmd *last_sent; /* the newest command in flight; NULL: none in flight */
    size_t count;                /* all commands held */
    size_t inflight;             /* of which sent and not yet answered */
    size_t limit;
    uint64_t dropped;            /* commands dropped to stay within limit, ever */
};

void redis_queue_init(struct redis_queue *q, size_t limit);

/* Appends c (the queue owns it). If that takes the queue past its limit, the oldest command not
 * in flight is dropped and counted; returns the number dropped (0 or 1). */
unsigned redis_queue_push(struct redis_queue *q, struct redis_cmd *c);

/* The oldest command not yet sent, now counted as in flight; NULL if none. */
struct redis_cmd *redis_queue_send_next(struct redis_queue *q);

/* Redis answered the oldest command in flight (replies come in order): removes and frees it.
 * Returns 0, or -EINVAL if nothing is in flight. */
int redis_queue_answered(struct redis_queue *q);

/* The connection was lost: everything in flight is unsent again, to be replayed first. */
void redis_queue_unsend_all(struct redis_queue *q);

/* Frees everything held. */
void redis_queue_clear(struct redis_queue *q);

#endif
