/* A bounded multi-producer queue into one libuv loop: producers on any thread push nodes, the
 * consumer's loop is woken by a uv_async (which coalesces wake-ups) and takes everything queued
 * at once, in order. Call threads post events (transcripts, lifecycle) to the worker's main loop
 * this way, and the main loop posts control commands to a call's loop. Not for audio frames. */
#ifndef VB_WORKER_THREAD_QUEUE_H
#define VB_WORKER_THREAD_QUEUE_H

#include <pthread.h>
#include <stdint.h>
#include <uv.h>

/* Embed as the first member of whatever is queued; the queue never allocates or frees. */
struct tq_node {
    struct tq_node *next;
};

struct thread_queue {
    uv_async_t async; /* on the consumer's loop; data = the queue */
    pthread_mutex_t lock;
    struct tq_node *head;
    struct tq_node *tail;
    unsigned count;
    unsigned limit;
    uint64_t dropped; /* pushes refused because the queue was full */
    int closed;       /* thread_queue_close has run: pushes are refused */
    void (*on_ready)(struct thread_queue *q);
    void (*on_closed)(struct thread_queue *q);
};

/* Sets up q on the consumer's loop (call from that loop's thread). on_ready runs there after
 * pushes; it should call thread_queue_take. Returns 0 or a negative libuv/errno code. */
int thread_queue_init(struct thread_queue *q, uv_loop_t *loop, unsigned limit,
                      void (*on_ready)(struct thread_queue *q));

/* Any thread: appends n. Returns 0, or -ENOBUFS if the queue is full (n stays the caller's,
 * and the refusal is counted in q->dropped), or -EPIPE once the consumer has closed the queue
 * (n stays the caller's; the async handle is not touched, so this is safe until q's memory is
 * freed). */
int thread_queue_push(struct thread_queue *q, struct tq_node *n);

/* As thread_queue_push, but past the limit: for messages that must arrive and are bounded by
 * other means (a call's one end event: at most one per live call). Returns 0 or -EPIPE. */
int thread_queue_push_always(struct thread_queue *q, struct tq_node *n);

/* Consumer's loop: detaches and returns everything queued, oldest first (NULL if empty).
 * The nodes now belong to the caller. */
struct tq_node *thread_queue_take(struct thread_queue *q);

/* Consumer's loop: closes the async handle; on_closed (may be NULL) runs from the close
 * callback. Pushes from then on get -EPIPE. q's memory may be freed once no producer can call
 * push any more. Nodes still queued are the caller's to take (after close too). */
void thread_queue_close(struct thread_queue *q, void (*on_closed)(struct thread_queue *q));

#endif
