/* Bounded cross-thread queue: a mutex-protected intrusive list plus a uv_async. The lock is held
 * for a pointer swap only; wake-ups coalesce in libuv, so a burst of pushes costs one callback. */
#include "worker/thread_queue.h"

#include <errno.h>
#include <stddef.h>

static void on_async(uv_async_t *a)
{
    struct thread_queue *q = a->data;
    q->on_ready(q);
}

int thread_queue_init(struct thread_queue *q, uv_loop_t *loop, unsigned limit,
                      void (*on_ready)(struct thread_queue *q))
{
    int rc = pthread_mutex_init(&q->lock, NULL);
    if (rc != 0)
        return -rc;
    q->head = q->tail = NULL;
    q->count = 0;
    q->limit = limit;
    q->dropped = 0;
    q->closed = 0;
    q->on_ready = on_ready;
    q->on_closed = NULL;
    rc = uv_async_init(loop, &q->async, on_async);
    if (rc != 0) {
        pthread_mutex_destroy(&q->lock);
        return rc;
    }
    q->async.data = q;
    return 0;
}

static int push(struct thread_queue *q, struct tq_node *n, int bounded)
{
    n->next = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->closed) {
        pthread_mutex_unlock(&q->lock);
        return -EPIPE;
    }
    if (bounded && q->count >= q->limit) {
        q->dropped++;
        pthread_mutex_unlock(&q->lock);
        return -ENOBUFS;
    }
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    q->count++;
    /* Under the lock: close cannot slip in between, so the handle is never woken once closed. */
    uv_async_send(&q->async);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

int thread_queue_push(struct thread_queue *q, struct tq_node *n)
{
    return push(q, n, 1);
}

int thread_queue_push_always(struct thread_queue *q, struct tq_node *n)
{
    return push(q, n, 0);
}

struct tq_node *thread_queue_take(struct thread_queue *q)
{
    pthread_mutex_lock(&q->lock);
    struct tq_node *n = q->head;
    q->head = q->tail = NULL;
    q->count = 0;
    pthread_mutex_unlock(&q->lock);
    return n;
}

static void on_async_closed(uv_handle_t *h)
{
    struct thread_queue *q = h->data;
    /* The mutex stays: a late push still takes it to learn the queue is closed (a Linux mutex
     * holds no resources, so not destroying it leaks nothing). */
    if (q->on_closed)
        q->on_closed(q);
}

void thread_queue_close(struct thread_queue *q, void (*on_closed)(struct thread_queue *q))
{
    q->on_closed = on_closed;
    pthread_mutex_lock(&q->lock);
    q->closed = 1;
    pthread_mutex_unlock(&q->lock);
    uv_close((uv_handle_t *)&q->async, on_async_closed);
}
