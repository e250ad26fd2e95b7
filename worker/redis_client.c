/* hiredis adapter: the worker's two Redis connections on its main libuv loop, each a small state
 * machine (down -> handshake (AUTH, SELECT, PING or SUBSCRIBE) -> ready) driven by hiredis's
 * callbacks and one 50 ms tick that reconnects with backoff and notices a Redis that stopped
 * answering (a SIGSTOPped or wedged server keeps the TCP connection up). hiredis's types stay in
 * this file; replies are handed out through the small redis_reply view. */
#include "worker/redis_client.h"

#include <errno.h>
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "worker/redis_queue.h"

#define TICK_MS 50
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define WINDOW 512 /* writes in flight on the connection: bounds hiredis's own output buffer */

enum link_state { LINK_DOWN, LINK_HANDSHAKE, LINK_READY };

struct link {
    struct redis_client *rc;
    const char *name;      /* "command" or "pub/sub", for logs */
    int is_sub;
    redisAsyncContext *ac; /* NULL while down */
    enum link_state state;
    uint64_t since_ms;     /* when the state was entered */
    unsigned outstanding;  /* our commands not yet answered on this connection */
    uint64_t progress_ms;  /* last answer, or the send that made outstanding 1 */
    unsigned handshake_left;
    unsigned backoff_ms;
    uint64_t retry_at_ms;
    uint64_t down_since_ms;
    int ever_ready;
    int lost_logged;       /* this outage has been logged */
};

struct redis_client {
    uv_loop_t *loop;
    uv_timer_t tick;
    char *host, *username, *password, *channel;
    uint16_t port;
    unsigned db;
    unsigned timeout_ms;
    redis_message_fn *on_message;
    void *arg;
    struct link cmd, sub;
    struct redis_queue q;
    struct redis_client_stats stats;
    uint64_t dropped_at_outage; /* stats.dropped when the outage began */
    int drop_logged;
    int closing;
};

/* A request's callback and its argument: one small allocation per read. */
struct request {
    struct link *l;
    redis_reply_fn *fn;
    void *arg;
};

static uint64_t now_ms(const struct redis_client *rc)
{
    return uv_now(rc->loop);
}

/* ---- reply view -------------------------------------------------------------------------- */

int redis_reply_type(const struct redis_reply *r)
{
    return ((const redisReply *)(const void *)r)->type;
}

const char *redis_reply_str(const struct redis_reply *r, size_t *len)
{
    const redisReply *x = (const void *)r;
    if (x->type != REDIS_REPLY_STRING && x->type != REDIS_REPLY_STATUS &&
        x->type != REDIS_REPLY_ERROR) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = x->len;
    return x->str;
}

long long redis_reply_int(const struct redis_reply *r)
{
    const redisReply *x = (const void *)r;
    return x->type == REDIS_REPLY_INTEGER ? x->integer : 0;
}

size_t redis_reply_count(const struct redis_reply *r)
{
    const redisReply *x = (const void *)r;
    return x->type == REDIS_REPLY_ARRAY ? x->elements : 0;
}

const struct redis_reply *redis_reply_elem(const struct redis_reply *r, size_t i)
{
    const redisReply *x = (const void *)r;
    if (x->type != REDIS_REPLY_ARRAY || i >= x->elements)
        return NULL;
    return (const struct redis_reply *)(const void *)x->element[i];
}

/* ---- connection state -------------------------------------------------------------------- */

static void pump(struct redis_client *rc);

/* The connection is gone (or given up): forget it, schedule a retry with backoff, and log the
 * outage once. free_ctx: we end it (hiredis has not already). */
static void link_down(struct link *l, const char *why, int free_ctx)
{
    struct redis_client *rc = l->rc;
    redisAsyncContext *ac = l->ac;
    uint64_t now = now_ms(rc);
    int was_ready = l->state == LINK_READY;
    l->ac = NULL;
    l->state = LINK_DOWN;
    l->outstanding = 0;
    l->handshake_left = 0;
    if (l->is_sub) {
        rc->stats.subscribed = 0;
    } else {
        rc->stats.connected = 0;
        redis_queue_unsend_all(&rc->q); /* replayed, in order, on the next connection */
    }
    if (was_ready || !l->ever_ready) {
        l->down_since_ms = now;
        if (!l->is_sub && was_ready)
            rc->dropped_at_outage = rc->stats.dropped;
    }
    /* One line per outage: the pub/sub connection speaks only when the command one is up. */
    int quiet = l->is_sub && rc->cmd.state != LINK_READY;
    if (!l->lost_logged && !rc->closing && !quiet) {
        l->lost_logged = 1;
        if (was_ready)
            log_warn("redis: %s connection to %s:%u lost (%s); %llu writes held, reconnecting",
                     l->name, rc->host, rc->port, why, (unsigned long long)rc->q.count);
        else
            log_warn("redis: cannot connect to %s:%u (%s); calls go on, writes are held "
                     "(up to %zu), retrying",
                     rc->host, rc->port, why, rc->q.limit);
    } else {
        log_debug("redis: %s connection: %s", l->name, why);
    }
    l->retry_at_ms = now + l->backoff_ms;
    l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->backoff_ms * 2;
    if (free_ctx && ac) {
        ac->data = NULL; /* its disconnect callback, if any, is ours no longer */
        redisAsyncFree(ac); /* pending callbacks run now with NULL replies */
    }
}

static void link_ready(struct link *l)
{
    struct redis_client *rc = l->rc;
    uint64_t now = now_ms(rc);
    l->state = LINK_READY;
    l->since_ms = l->progress_ms = now;
    l->backoff_ms = BACKOFF_MIN_MS;
    if (l->ever_ready)
        rc->stats.reconnects += !l->is_sub;
    if (l->is_sub) {
        rc->stats.subscribed = 1;
        if (l->lost_logged)
            log_info("redis: subscribed to %s again", rc->channel);
        else
            log_debug("redis: subscribed to %s", rc->channel);
    } else {
        rc->stats.connected = 1;
        if (l->lost_logged)
            log_info("redis: connected to %s:%u after %llu ms; replaying %zu writes, %llu dropped "
                     "meanwhile",
                     rc->host, rc->port, (unsigned long long)(now - l->down_since_ms),
                     rc->q.count,
                     (unsigned long long)(rc->stats.dropped - rc->dropped_at_outage));
        else
            log_info("redis: connected to %s:%u", rc->host, rc->port);
        rc->drop_logged = 0;
    }
    l->ever_ready = 1;
    l->lost_logged = 0;
    if (!l->is_sub)
        pump(rc);
}

static struct link *link_of(const redisAsyncContext *ac, void *privdata)
{
    struct link *l = privdata;
    return (ac->data == l && l->ac == ac) ? l : NULL;
}

static void note_sent(struct link *l)
{
    if (l->outstanding++ == 0)
        l->progress_ms = now_ms(l->rc);
}

static void note_answer(struct link *l)
{
    if (l->outstanding > 0)
        l->outstanding--;
    l->progress_ms = now_ms(l->rc);
}

static void on_write_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;
    struct link *l = link_of(ac, privdata);
    if (reply == NULL || l == NULL)
        return; /* connection lost: the command stays queued and is replayed */
    struct redis_client *rc = l->rc;
    note_answer(l);
    if (reply->type == REDIS_REPLY_ERROR && rc->stats.errors++ < 5)
        log_warn("redis: a write was refused: %.*s", (int)(reply->len > 200 ? 200 : reply->len),
                 reply->str);
    redis_queue_answered(&rc->q);
    rc->stats.pending = rc->q.count;
    pump(rc);
}

/* Sends queued writes while the connection is ready and the window has room. */
static void pump(struct redis_client *rc)
{
    struct link *l = &rc->cmd;
    while (l->state == LINK_READY && rc->q.inflight < WINDOW) {
        struct redis_cmd *c = redis_queue_send_next(&rc->q);
        if (c == NULL)
            break;
        if (redisAsyncCommandArgv(l->ac, on_write_reply, l, c->argc, c->argv, c->argvlen) !=
            REDIS_OK) {
            link_down(l, "send failed", 1);
            return;
        }
        note_sent(l);
    }
}

static void on_ping_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct link *l = link_of(ac, privdata);
    if (r && l)
        note_answer(l);
}

static void on_sub_message(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;
    struct link *l = link_of(ac, privdata);
    if (reply == NULL || l == NULL)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        link_down(l, "SUBSCRIBE refused", 1);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = reply->element[0]->str;
    if (strcmp(kind, "subscribe") == 0 && l->state == LINK_HANDSHAKE) {
        link_ready(l);
    } else if (strcmp(kind, "message") == 0 && reply->element[2]->type == REDIS_REPLY_STRING &&
               l->rc->on_message) {
        l->rc->on_message(l->rc->arg, reply->element[2]->str, reply->element[2]->len);
    }
}

static void on_handshake_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;
    struct link *l = link_of(ac, privdata);
    if (reply == NULL || l == NULL)
        return;
    note_answer(l);
    if (reply->type == REDIS_REPLY_ERROR) {
        /* AUTH or SELECT refused: the reply names the problem, never the password. */
        char why[160];
        snprintf(why, sizeof why, "%.*s", (int)(reply->len > 120 ? 120 : reply->len), reply->str);
        link_down(l, why, 1);
        return;
    }
    if (--l->handshake_left == 0 && !l->is_sub)
        link_ready(l);
}

static void on_connected(const redisAsyncContext *ac, int status)
{
    struct link *l = ac->data;
    if (l == NULL || l->ac != ac || status == REDIS_OK)
        return;
    char why[128];
    snprintf(why, sizeof why, "%s", ac->errstr[0] ? ac->errstr : "connect failed");
    link_down(l, why, 0); /* hiredis frees the context after this callback */
}

static void on_disconnected(const redisAsyncContext *ac, int status)
{
    struct link *l = ac->data;
    (void)status;
    if (l == NULL || l->ac != ac)
        return;
    char why[128];
    snprintf(why, sizeof why, "%s", ac->errstr[0] ? ac->errstr : "closed by the server");
    link_down(l, why, 0);
}

static int send_cmd(struct link *l, redisCallbackFn *fn, void *priv, int argc, const char **argv)
{
    if (redisAsyncCommandArgv(l->ac, fn, priv, argc, argv, NULL) != REDIS_OK)
        return -EIO;
    note_sent(l);
    return 0;
}

static void link_connect(struct link *l)
{
    struct redis_client *rc = l->rc;
    redisAsyncContext *ac = redisAsyncConnect(rc->host, rc->port);
    if (ac == NULL) {
        link_down(l, "out of memory", 0);
        return;
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof why, "%s", ac->errstr);
        redisAsyncFree(ac);
        link_down(l, why, 0);
        return;
    }
    if (redisLibuvAttach(ac, rc->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        link_down(l, "event loop attach failed", 0);
        return;
    }
    ac->data = l;
    l->ac = ac;
    l->state = LINK_HANDSHAKE;
    l->since_ms = now_ms(rc);
    l->outstanding = 0;
    l->handshake_left = 0;
    redisAsyncSetConnectCallback(ac, on_connected);
    redisAsyncSetDisconnectCallback(ac, on_disconnected);
    redisEnableKeepAlive(&ac->c); /* a peer that vanished without a FIN is noticed */
    /* Commands are buffered until the connection completes. */
    int rc_ = 0;
    if (rc->password) {
        const char *auth[3] = {"AUTH", rc->username ? rc->username : rc->password, rc->password};
        rc_ |= send_cmd(l, on_handshake_reply, l, rc->username ? 3 : 2, auth);
        l->handshake_left++;
    }
    if (l->is_sub) {
        const char *sub[2] = {"SUBSCRIBE", rc->channel};
        rc_ |= send_cmd(l, on_sub_message, l, 2, sub);
    } else {
        char db[16];
        snprintf(db, sizeof db, "%u", rc->db);
        const char *sel[2] = {"SELECT", db};
        const char *ping[1] = {"PING"};
        if (rc->db != 0) {
            rc_ |= send_cmd(l, on_handshake_reply, l, 2, sel);
            l->handshake_left++;
        }
        rc_ |= send_cmd(l, on_handshake_reply, l, 1, ping);
        l->handshake_left++;
    }
    if (rc_ != 0)
        link_down(l, "handshake not sent", 1);
}

static void link_tick(struct link *l, uint64_t now)
{
    unsigned timeout = l->rc->timeout_ms;
    switch (l->state) {
    case LINK_DOWN:
        if (now >= l->retry_at_ms)
            link_connect(l);
        break;
    case LINK_HANDSHAKE:
        if (now - l->since_ms > timeout)
            link_down(l, "no answer to the handshake", 1);
        break;
    case LINK_READY:
        if (l->is_sub)
            break; /* nothing to answer while subscribed; TCP keepalive watches it */
        if (l->outstanding > 0 && now - l->progress_ms > timeout) {
            char why[64];
            snprintf(why, sizeof why, "no answer for %u ms", timeout);
            link_down(l, why, 1);
        } else if (l->outstanding == 0 && now - l->progress_ms > timeout / 2) {
            const char *ping[1] = {"PING"};
            if (send_cmd(l, on_ping_reply, l, 1, ping) != 0)
                link_down(l, "send failed", 1);
        }
        break;
    }
}

static void on_tick(uv_timer_t *t)
{
    struct redis_client *rc = t->data;
    uint64_t now = now_ms(rc);
    link_tick(&rc->cmd, now);
    if (rc->channel)
        link_tick(&rc->sub, now);
}

/* ---- public ------------------------------------------------------------------------------ */

int redis_client_new(uv_loop_t *loop, const struct config_redis *cfg, const char *channel,
                     redis_message_fn *on_message, void *arg, struct redis_client **out)
{
    struct redis_client *rc = calloc(1, sizeof *rc);
    if (rc == NULL)
        return -ENOMEM;
    rc->loop = loop;
    rc->host = strdup(cfg->host ? cfg->host : "127.0.0.1");
    rc->username = cfg->username ? strdup(cfg->username) : NULL;
    rc->password = cfg->password ? strdup(cfg->password) : NULL;
    rc->channel = channel ? strdup(channel) : NULL;
    if (rc->host == NULL || (cfg->username && !rc->username) || (cfg->password && !rc->password) ||
        (channel && !rc->channel)) {
        free(rc->host);
        free(rc->username);
        free(rc->password);
        free(rc->channel);
        free(rc);
        return -ENOMEM;
    }
    rc->port = cfg->port;
    rc->db = cfg->db;
    rc->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 3000;
    rc->on_message = on_message;
    rc->arg = arg;
    redis_queue_init(&rc->q, cfg->queue_max ? cfg->queue_max : 100000);
    rc->cmd = (struct link){.rc = rc, .name = "command", .backoff_ms = BACKOFF_MIN_MS};
    rc->sub = (struct link){.rc = rc, .name = "pub/sub", .is_sub = 1, .backoff_ms = BACKOFF_MIN_MS};
    uv_timer_init(loop, &rc->tick);
    rc->tick.data = rc;
    uv_timer_start(&rc->tick, on_tick, TICK_MS, TICK_MS);
    link_connect(&rc->cmd);
    if (rc->channel)
        link_connect(&rc->sub);
    *out = rc;
    return 0;
}

static void on_tick_closed(uv_handle_t *h)
{
    struct redis_client *rc = h->data;
    free(rc->host);
    free(rc->username);
    if (rc->password) {
        memset(rc->password, 0, strlen(rc->password));
        free(rc->password);
    }
    free(rc->channel);
    free(rc);
}

void redis_client_close(struct redis_client *rc)
{
    if (rc == NULL || rc->closing)
        return;
    rc->closing = 1;
    if (rc->cmd.ac)
        link_down(&rc->cmd, "closing", 1);
    if (rc->sub.ac)
        link_down(&rc->sub, "closing", 1);
    if (rc->q.count > 0)
        log_warn("redis: closing with %zu writes not written", rc->q.count);
    redis_queue_clear(&rc->q);
    uv_close((uv_handle_t *)&rc->tick, on_tick_closed);
}

int redis_client_write(struct redis_client *rc, int argc, const char *const *argv,
                       const size_t *lens)
{
    if (argc < 1 || argc > REDIS_CMD_ARGS_MAX)
        return -EINVAL;
    if (rc->closing)
        return -EPIPE;
    struct redis_cmd *c = redis_cmd_new(argc, argv, lens);
    if (c == NULL)
        return -ENOMEM;
    if (redis_queue_push(&rc->q, c) > 0) {
        rc->stats.dropped++;
        if (!rc->drop_logged) {
            rc->drop_logged = 1;
            log_warn("redis: write queue full (%zu): dropping the oldest writes until Redis is "
                     "back",
                     rc->q.limit);
        }
    }
    rc->stats.pending = rc->q.count;
    pump(rc);
    return 0;
}

static void on_request_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct request *req = privdata;
    struct link *l = link_of(ac, req->l);
    if (r && l)
        note_answer(l);
    req->fn(req->arg, (const struct redis_reply *)r);
    free(req);
}

int redis_client_request(struct redis_client *rc, redis_reply_fn *fn, void *arg, int argc,
                         const char *const *argv, const size_t *lens)
{
    struct link *l = &rc->cmd;
    if (l->state != LINK_READY)
        return -EAGAIN;
    if (argc < 1)
        return -EINVAL;
    struct request *req = malloc(sizeof *req);
    if (req == NULL)
        return -ENOMEM;
    *req = (struct request){.l = l, .fn = fn, .arg = arg};
    if (redisAsyncCommandArgv(l->ac, on_request_reply, req, argc, (const char **)argv, lens) !=
        REDIS_OK) {
        free(req);
        return -EAGAIN;
    }
    note_sent(l);
    return 0;
}

int redis_client_ready(const struct redis_client *rc)
{
    return rc->cmd.state == LINK_READY;
}

const struct redis_client_stats *redis_client_stats(const struct redis_client *rc)
{
    return &rc->stats;
}
