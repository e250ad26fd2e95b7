/* Cross-thread queue: order, the bound, and several producer threads against a consumer loop
 * (run under ThreadSanitizer by `make test`, hence "concurrent" in its name). */
#include "worker/thread_queue.h"

#include <errno.h>
#include <stdlib.h>

#include "tests/unit/testing.h"

struct item {
    struct tq_node node;
    int producer;
    int seq;
};

#define PRODUCERS 4
#define PER_PRODUCER 20000

static int next_seq[PRODUCERS];
static int received;
static int order_errors;

static void consume(struct thread_queue *q)
{
    struct tq_node *n = thread_queue_take(q);
    while (n) {
        struct item *it = (struct item *)n;
        n = n->next;
        if (it->seq != next_seq[it->producer])
            order_errors++;
        next_seq[it->producer] = it->seq + 1;
        received++;
        free(it);
    }
    if (received == PRODUCERS * PER_PRODUCER)
        uv_stop(q->async.loop);
}

struct producer_arg {
    struct thread_queue *q;
    int id;
};

static void *produce(void *p)
{
    struct producer_arg *a = p;
    for (int i = 0; i < PER_PRODUCER; i++) {
        struct item *it = malloc(sizeof *it);
        it->producer = a->id;
        it->seq = i;
        while (thread_queue_push(a->q, &it->node) == -ENOBUFS)
            sched_yield(); /* the consumer will catch up */
    }
    return NULL;
}

TEST(thread_queue_concurrent_producers_keep_order)
{
    uv_loop_t loop;
    CHECK_EQ(uv_loop_init(&loop), 0);
    struct thread_queue q;
    CHECK_EQ(thread_queue_init(&q, &loop, 256, consume), 0);
    pthread_t th[PRODUCERS];
    struct producer_arg args[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        args[i] = (struct producer_arg){&q, i};
        CHECK_EQ(pthread_create(&th[i], NULL, produce, &args[i]), 0);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ(received, PRODUCERS * PER_PRODUCER);
    thread_queue_close(&q, NULL); /* only once no producer can push any more */
    CHECK_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ(order_errors, 0);
    CHECK_EQ(uv_loop_close(&loop), 0);
}

static void never(struct thread_queue *q)
{
    (void)q;
}

TEST(thread_queue_bounds_and_counts_drops)
{
    uv_loop_t loop;
    CHECK_EQ(uv_loop_init(&loop), 0);
    struct thread_queue q;
    CHECK_EQ(thread_queue_init(&q, &loop, 2, never), 0);
    struct item a, b, c;
    CHECK_EQ(thread_queue_push(&q, &a.node), 0);
    CHECK_EQ(thread_queue_push(&q, &b.node), 0);
    CHECK_EQ(thread_queue_push(&q, &c.node), -ENOBUFS);
    CHECK_EQ(q.dropped, 1);
    struct item must;
    CHECK_EQ(thread_queue_push_always(&q, &must.node), 0); /* past the limit, in order */
    struct tq_node *n = thread_queue_take(&q);
    CHECK(n == &a.node && n->next == &b.node && b.node.next == &must.node &&
          must.node.next == NULL);
    CHECK(thread_queue_take(&q) == NULL);
    CHECK_EQ(thread_queue_push(&q, &c.node), 0);
    thread_queue_take(&q);
    thread_queue_close(&q, NULL);
    CHECK_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ(uv_loop_close(&loop), 0);
}

/* A push after close is refused without touching the closed handle (the main loop may still
 * hold a call that is ending): even after the loop itself is gone. */
TEST(thread_queue_push_after_close_is_refused)
{
    uv_loop_t loop;
    CHECK_EQ(uv_loop_init(&loop), 0);
    struct thread_queue q;
    CHECK_EQ(thread_queue_init(&q, &loop, 4, never), 0);
    struct item a, b;
    CHECK_EQ(thread_queue_push(&q, &a.node), 0);
    thread_queue_close(&q, NULL);
    CHECK_EQ(thread_queue_push(&q, &b.node), -EPIPE);
    CHECK_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ(uv_loop_close(&loop), 0);
    CHECK_EQ(thread_queue_push(&q, &b.node), -EPIPE);
    CHECK(thread_queue_take(&q) == &a.node); /* what was queued before close is still there */
    CHECK_EQ(q.dropped, 0);
}
