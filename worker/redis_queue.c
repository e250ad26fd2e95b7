/* Bounded FIFO of owned Redis commands. A singly linked list: commands in flight are a prefix
 * (Redis answers in order), so "answered" pops the head and "lost" just forgets the split. */
#include "worker/redis_queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct redis_cmd *redis_cmd_new(int argc, const char *const *argv, const size_t *lens)
{
    if (argc < 1 || argc > REDIS_CMD_ARGS_MAX)
        return NULL;
    size_t len[REDIS_CMD_ARGS_MAX], data = 0;
    for (int i = 0; i < argc; i++) {
        len[i] = lens ? lens[i] : strlen(argv[i]);
        data += len[i] + 1;
    }
    size_t head = sizeof(struct redis_cmd) + (size_t)argc * (sizeof(char *) + sizeof(size_t));
    struct redis_cmd *c = malloc(head + data);
    if (c == NULL)
        return NULL;
    const char **av = (const char **)(void *)(c + 1);
    size_t *al = (size_t *)(void *)(av + argc);
    char *p = (char *)(al + argc);
    for (int i = 0; i < argc; i++) {
        memcpy(p, argv[i], len[i]);
        p[len[i]] = '\0';
        av[i] = p;
        al[i] = len[i];
        p += len[i] + 1;
    }
    c->next = NULL;
    c->argc = argc;
    c->argv = av;
    c->argvlen = al;
    c->bytes = head + data;
    return c;
}

void redis_cmd_free(struct redis_cmd *c)
{
    free(c);
}

void redis_queue_init(struct redis_queue *q, size_t limit)
{
    memset(q, 0, sizeof *q);
    q->limit = limit;
}

static struct redis_cmd *first_unsent(const struct redis_queue *q)
{
    return q->last_sent ? q->last_sent->next : q->head;
}

unsigned redis_queue_push(struct redis_queue *q, struct redis_cmd *c)
{
    c->next = NULL;
    if (q->tail)
        q->tail->next = c;
    else
        q->head = c;
    q->tail = c;
    q->count++;
    if (q->count <= q->limit)
        return 0;
    /* Over the bound: drop the oldest command that is not in flight (one in flight belongs to
     * the connection until it is answered or lost). c itself qualifies if nothing else does. */
    struct redis_cmd *victim = first_unsent(q);
    if (victim == NULL)
        return 0; /* cannot happen: c is unsent */
    if (q->last_sent)
        q->last_sent->next = victim->next;
    else
        q->head = victim->next;
    if (q->tail == victim)
        q->tail = q->last_sent;
    redis_cmd_free(victim);
    q->count--;
    q->dropped++;
    return 1;
}

struct redis_cmd *redis_queue_send_next(struct redis_queue *q)
{
    struct redis_cmd *c = first_unsent(q);
    if (c == NULL)
        return NULL;
    q->last_sent = c;
    q->inflight++;
    return c;
}

int redis_queue_answered(struct redis_queue *q)
{
    if (q->inflight == 0)
        return -EINVAL;
    struct redis_cmd *c = q->head;
    q->head = c->next;
    if (q->tail == c)
        q->tail = NULL;
    if (q->last_sent == c)
        q->last_sent = NULL;
    q->inflight--;
    q->count--;
    redis_cmd_free(c);
    return 0;
}

void redis_queue_unsend_all(struct redis_queue *q)
{
    q->last_sent = NULL;
    q->inflight = 0;
}

void redis_queue_clear(struct redis_queue *q)
{
    struct redis_cmd *c = q->head;
    while (c) {
        struct redis_cmd *n = c->next;
        redis_cmd_free(c);
        c = n;
    }
    q->head = q->tail = q->last_sent = NULL;
    q->count = q->inflight = 0;
}
