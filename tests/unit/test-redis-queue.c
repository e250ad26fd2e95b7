/* The Redis write queue: owned copies, order, replay after a lost connection, and the bound
 * (the oldest command not in flight is dropped and counted). */
#include "worker/redis_queue.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tests/unit/testing.h"

static struct redis_cmd *cmd_n(int n)
{
    char num[16];
    snprintf(num, sizeof num, "%d", n);
    const char *argv[3] = {"RPUSH", "k", num};
    struct redis_cmd *c = redis_cmd_new(3, argv, NULL);
    CHECK(c != NULL);
    return c;
}

static int num_of(const struct redis_cmd *c)
{
    int n = -1;
    sscanf(c->argv[2], "%d", &n);
    return n;
}

TEST(redis_queue_cmd_copies_binary_args)
{
    char buf[8] = {'a', 0, 'b', 'c'};
    const char *argv[2] = {"SET", buf};
    size_t lens[2] = {3, 4};
    struct redis_cmd *c = redis_cmd_new(2, argv, lens);
    CHECK(c != NULL);
    memset(buf, 'x', sizeof buf); /* the command holds its own copy */
    CHECK_EQ(c->argc, 2);
    CHECK_EQ(c->argvlen[0], 3);
    CHECK_EQ(c->argvlen[1], 4);
    CHECK(memcmp(c->argv[1], "a\0bc", 4) == 0);
    CHECK_EQ(c->argv[1][4], '\0');
    CHECK(strcmp(c->argv[0], "SET") == 0);
    redis_cmd_free(c);
    CHECK(redis_cmd_new(0, argv, NULL) == NULL);
    CHECK(redis_cmd_new(REDIS_CMD_ARGS_MAX + 1, argv, NULL) == NULL);
}

TEST(redis_queue_order_and_replay)
{
    struct redis_queue q;
    redis_queue_init(&q, 100);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(redis_queue_push(&q, cmd_n(i)), 0);
    CHECK_EQ(num_of(redis_queue_send_next(&q)), 0);
    CHECK_EQ(num_of(redis_queue_send_next(&q)), 1);
    CHECK_EQ(num_of(redis_queue_send_next(&q)), 2);
    CHECK_EQ(q.inflight, 3);
    CHECK_EQ(redis_queue_answered(&q), 0); /* 0 done */
    CHECK_EQ(q.count, 4);
    /* Connection lost with 1 and 2 in flight: they are sent again, first, in order. */
    redis_queue_unsend_all(&q);
    CHECK_EQ(q.inflight, 0);
    for (int want = 1; want < 5; want++) {
        struct redis_cmd *c = redis_queue_send_next(&q);
        CHECK(c != NULL);
        CHECK_EQ(num_of(c), want);
    }
    CHECK(redis_queue_send_next(&q) == NULL);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(redis_queue_answered(&q), 0);
    CHECK_EQ(redis_queue_answered(&q), -EINVAL);
    CHECK_EQ(q.count, 0);
    CHECK(q.head == NULL && q.tail == NULL);
    redis_queue_push(&q, cmd_n(9)); /* still usable once empty */
    CHECK_EQ(num_of(redis_queue_send_next(&q)), 9);
    redis_queue_clear(&q);
}

TEST(redis_queue_bound_drops_oldest_unsent)
{
    struct redis_queue q;
    redis_queue_init(&q, 4);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(redis_queue_push(&q, cmd_n(i)), 0);
    /* Disconnected: nothing in flight; a fifth push drops 0. */
    CHECK_EQ(redis_queue_push(&q, cmd_n(4)), 1);
    CHECK_EQ(q.count, 4);
    CHECK_EQ(q.dropped, 1);
    /* 1 and 2 go in flight; the next drop takes 3, the oldest not in flight. */
    CHECK_EQ(num_of(redis_queue_send_next(&q)), 1);
    CHECK_EQ(num_of(redis_queue_send_next(&q)), 2);
    CHECK_EQ(redis_queue_push(&q, cmd_n(5)), 1);
    CHECK_EQ(redis_queue_push(&q, cmd_n(6)), 1);
    CHECK_EQ(q.dropped, 3);
    CHECK_EQ(q.count, 4);
    int want[] = {1, 2, 5, 6}, i = 0;
    for (struct redis_cmd *c = q.head; c; c = c->next)
        CHECK_EQ(num_of(c), want[i++]);
    CHECK_EQ(i, 4);
    CHECK_EQ(num_of(q.tail), 6);
    CHECK_EQ(num_of(redis_queue_send_next(&q)), 5);
    redis_queue_clear(&q);
    CHECK_EQ(q.count, 0);
}

/* Every command in flight and the bound reached: the new one is the only one that may go, and
 * the tail stays right. */
TEST(redis_queue_bound_with_all_in_flight)
{
    struct redis_queue q;
    redis_queue_init(&q, 2);
    redis_queue_push(&q, cmd_n(0));
    redis_queue_push(&q, cmd_n(1));
    redis_queue_send_next(&q);
    redis_queue_send_next(&q);
    CHECK_EQ(redis_queue_push(&q, cmd_n(2)), 1);
    CHECK_EQ(q.count, 2);
    CHECK_EQ(num_of(q.tail), 1);
    CHECK(redis_queue_send_next(&q) == NULL);
    CHECK_EQ(redis_queue_push(&q, cmd_n(3)), 1); /* still 2 in flight: 3 goes too */
    CHECK_EQ(redis_queue_answered(&q), 0);
    CHECK_EQ(redis_queue_push(&q, cmd_n(4)), 0);
    CHECK_EQ(num_of(redis_queue_send_next(&q)), 4);
    redis_queue_clear(&q);
}
