/* Byte stream over a libuv TCP handle, optionally through a tls_session. Output is copied into
 * fixed-size chunks (a pool per thread keeps them, so steady traffic allocates nothing) and
 * written once per loop iteration: everything queued since the last flush leaves in one
 * uv_write. The flush runs from a uv_check (right after the poll, for what its callbacks wrote)
 * or a uv_idle (before the next poll, for what timers or close callbacks wrote), whichever comes
 * first; an active idle handle also makes uv_backend_timeout 0, so a loop run with UV_RUN_NOWAIT
 * by the call scheduler (worker/call_sched.c) is run again to flush rather than left waiting for
 * its next event. Under TLS, plaintext waits in its own queue and is encrypted at flush time,
 * so many small writes become one record.
 *
 *   INIT -> RESOLVING -> CONNECTING -> [HANDSHAKE] -> OPEN      (stream_connect)
 *   INIT -> [HANDSHAKE] -> OPEN                                 (stream_adopt)
 *   any connect step -> FAILED (on_connect(err), the owner closes)
 *   stream_close: graceful (flush, close_notify, shutdown) or at once; handles closed; close_cb */
#include "common/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/tls.h"

enum {
    ST_INIT,
    ST_RESOLVING,
    ST_CONNECTING,
    ST_HANDSHAKE,
    ST_OPEN,
    ST_FAILED,
};

#define STREAM_CHUNK_BYTES 8192
#define STREAM_WRITE_BUFS 4 /* libuv copies up to 4 uv_buf_t without allocating */

struct stream_chunk {
    struct stream_chunk *next;
    size_t start, end; /* unread bytes are data[start..end) */
    uint8_t data[STREAM_CHUNK_BYTES];
};

/* Reads land here and are handed on before the read callback returns; a loop belongs to one
 * thread, so one buffer per thread serves all its streams. */
static _Thread_local char stream_rbuf[65536];

bool stream_test_skip_try_write;

static void stream_on_write(uv_write_t *req, int status);
static void stream_on_timer(uv_timer_t *t);
static void stream_try_next(struct stream *s);
static void stream_start_write(struct stream *s);

/* ---- chunk queues ------------------------------------------------------------------------- */

/* Chunks that are not queued wait in a pool per thread, not per stream: a loop belongs to one
 * thread, and after each flush almost every stream's queue is empty again, so a few chunks per
 * scheduler thread serve all its calls where a spare or two per stream cost 8-16 KiB per stream.
 * Steady traffic still allocates nothing. The pool is freed when its thread exits. */
#define STREAM_POOL_MAX 64
static _Thread_local struct stream_chunk *stream_pool;
static _Thread_local unsigned stream_pool_len;
static pthread_key_t stream_pool_key;
static pthread_once_t stream_pool_once = PTHREAD_ONCE_INIT;

static void stream_pool_free(void *unused)
{
    (void)unused;
    while (stream_pool != NULL) {
        struct stream_chunk *c = stream_pool;
        stream_pool = c->next;
        free(c);
    }
    stream_pool_len = 0;
}

static void stream_pool_key_init(void)
{
    if (pthread_key_create(&stream_pool_key, stream_pool_free) != 0)
        log_warn("stream: no thread-exit hook; a thread's chunk pool is freed at exit only");
}

static struct stream_chunk *stream_chunk_get(struct stream *s)
{
    (void)s;
    struct stream_chunk *c = stream_pool;
    if (c != NULL) {
        stream_pool = c->next;
        stream_pool_len--;
    } else {
        c = malloc(sizeof *c);
    }
    if (c != NULL) {
        c->next = NULL;
        c->start = c->end = 0;
    }
    return c;
}

static void stream_chunk_put(struct stream *s, struct stream_chunk *c)
{
    (void)s;
    if (stream_pool_len >= STREAM_POOL_MAX) {
        free(c);
        return;
    }
    if (stream_pool_len == 0) {
        /* the key's value only makes the destructor run at this thread's exit */
        pthread_once(&stream_pool_once, stream_pool_key_init);
        pthread_setspecific(stream_pool_key, &stream_pool);
    }
    c->next = stream_pool;
    stream_pool = c;
    stream_pool_len++;
}

/* Appends all n bytes or nothing (-ENOMEM). Bytes already handed to uv_write are never moved:
 * new bytes only go after the tail chunk's end. */
static int stream_queue_append(struct stream *s, struct stream_queue *q, const uint8_t *p, size_t n)
{
    size_t room = q->tail != NULL ? STREAM_CHUNK_BYTES - q->tail->end : 0;
    struct stream_chunk *extra = NULL, **link = &extra;
    if (n > room) {
        size_t need = (n - room + STREAM_CHUNK_BYTES - 1) / STREAM_CHUNK_BYTES;
        for (size_t i = 0; i < need; i++) {
            struct stream_chunk *c = stream_chunk_get(s);
            if (c == NULL) {
                while (extra != NULL) {
                    struct stream_chunk *next = extra->next;
                    stream_chunk_put(s, extra);
                    extra = next;
                }
                return -ENOMEM;
            }
            *link = c;
            link = &c->next;
        }
    }
    q->bytes += n;
    if (room > 0) {
        size_t m = n < room ? n : room;
        memcpy(q->tail->data + q->tail->end, p, m);
        q->tail->end += m;
        p += m;
        n -= m;
    }
    while (extra != NULL) {
        struct stream_chunk *c = extra;
        extra = c->next;
        c->next = NULL;
        size_t m = n < STREAM_CHUNK_BYTES ? n : STREAM_CHUNK_BYTES;
        memcpy(c->data, p, m);
        c->end = m;
        p += m;
        n -= m;
        if (q->tail != NULL)
            q->tail->next = c;
        else
            q->head = c;
        q->tail = c;
    }
    return 0;
}

static void stream_queue_consume(struct stream *s, struct stream_queue *q, size_t n)
{
    while (n > 0 && q->head != NULL) {
        struct stream_chunk *c = q->head;
        size_t m = c->end - c->start;
        if (m > n)
            m = n;
        c->start += m;
        q->bytes -= m;
        n -= m;
        if (c->start == c->end) {
            q->head = c->next;
            if (q->head == NULL)
                q->tail = NULL;
            stream_chunk_put(s, c);
        }
    }
}

static void stream_queue_free(struct stream_queue *q)
{
    while (q->head != NULL) {
        struct stream_chunk *c = q->head;
        q->head = c->next;
        free(c);
    }
    q->tail = NULL;
    q->bytes = 0;
}

/* ---- closing ------------------------------------------------------------------------------ */

static void stream_maybe_finish(struct stream *s)
{
    if (s->handles > 0 || s->gai_pending)
        return;
    stream_queue_free(&s->out);
    stream_queue_free(&s->plain);
    if (s->addrs != NULL)
        uv_freeaddrinfo(s->addrs);
    s->addrs = s->addr_next = NULL;
    tls_session_free(s->tls);
    s->tls = NULL;
    free(s->tls_host);
    s->tls_host = NULL;
    if (s->close_cb != NULL)
        s->close_cb(s); /* may free s */
}

static void stream_on_handle_closed(uv_handle_t *h)
{
    struct stream *s = h->data;
    s->handles--;
    stream_maybe_finish(s);
}

/* Closes every handle now; pending writes complete with UV_ECANCELED first. */
static void stream_close_now(struct stream *s)
{
    if (s->handles_closing)
        return;
    s->handles_closing = 1;
    uv_timer_stop(&s->timer);
    if (!s->reopening)
        uv_close((uv_handle_t *)&s->tcp, stream_on_handle_closed);
    uv_close((uv_handle_t *)&s->timer, stream_on_handle_closed);
    uv_close((uv_handle_t *)&s->flusher, stream_on_handle_closed);
    uv_close((uv_handle_t *)&s->flusher_after, stream_on_handle_closed);
}

static void stream_on_shutdown(uv_shutdown_t *req, int status)
{
    struct stream *s = req->data;
    (void)status; /* whatever happened, the next step is the same */
    stream_close_now(s);
}

/* Graceful close, once our queue is empty: close_notify (TLS), then FIN, then close. */
static void stream_drain_step(struct stream *s)
{
    if (!s->closing || !s->graceful || s->handles_closing || s->shut)
        return;
    if (s->writing || s->out.bytes > 0 || s->plain.bytes > 0)
        return;
    if (s->tls != NULL && !s->notify_sent) {
        s->notify_sent = 1;
        if (tls_session_close_notify(s->tls) == 0 && s->out.bytes > 0) {
            stream_start_write(s); /* back here from stream_on_write */
            return;
        }
    }
    s->shut = 1;
    s->shutdown_req.data = s;
    if (uv_shutdown(&s->shutdown_req, (uv_stream_t *)&s->tcp, stream_on_shutdown) != 0)
        stream_close_now(s);
}

/* ---- writing ------------------------------------------------------------------------------ */

static void stream_check_low_water(struct stream *s)
{
    if (s->above && stream_pending(s) <= s->opt.low_water) {
        s->above = 0;
        if (!s->closing && s->cb->on_water != NULL)
            s->cb->on_water(s, 0);
    }
}

/* A read or write failed, or TLS did: tell the owner once, through on_connect while
 * connecting, on_end afterwards. */
static void stream_connect_done(struct stream *s, int status);

static void stream_fail(struct stream *s, int err)
{
    s->broken = 1;
    if (s->last_err == 0)
        s->last_err = err;
    if (s->closing) {
        stream_close_now(s);
        return;
    }
    if (s->state != ST_OPEN) {
        if (s->state != ST_FAILED)
            stream_connect_done(s, err);
        return;
    }
    if (s->reading) {
        uv_read_stop((uv_stream_t *)&s->tcp);
        s->reading = 0;
    }
    if (!s->ended) {
        s->ended = 1;
        if (s->cb->on_end != NULL)
            s->cb->on_end(s, err);
    }
}

/* After bytes left the output queue: water marks, a refused writer's retry, the rest of the
 * queue, the next step of a graceful close. A flush asked for from inside a flush is kept for
 * its end (stream_flush_request ignores it there). */
static void stream_wrote(struct stream *s)
{
    stream_check_low_water(s);
    if (s->refused && !s->closing) {
        /* a writer was turned away: let it retry from on_flush */
        s->refused = 0;
        s->flush_again = 1;
    }
    if (s->out.bytes > 0 || (s->plain.bytes > 0 && s->state == ST_OPEN))
        s->flush_again = 1;
    if (s->flush_again && !s->in_flush) {
        s->flush_again = 0;
        stream_flush_request(s);
    }
    stream_drain_step(s);
}

static unsigned stream_out_bufs(struct stream *s, uv_buf_t *bufs, size_t *total)
{
    unsigned n = 0;
    *total = 0;
    for (struct stream_chunk *c = s->out.head; c != NULL && n < STREAM_WRITE_BUFS; c = c->next) {
        bufs[n++] = uv_buf_init((char *)c->data + c->start, (unsigned)(c->end - c->start));
        *total += c->end - c->start;
    }
    return n;
}

/* Writes the queue: first at once with uv_try_write (the usual case: the socket has room, and
 * no write request, completion callback, extra loop iteration or epoll_ctl is paid), then
 * whatever the socket did not take through one uv_write of up to STREAM_WRITE_BUFS chunks. */
static void stream_start_write(struct stream *s)
{
    if (s->writing || s->out.bytes == 0 || s->handles_closing || s->broken)
        return;
    if (s->state != ST_OPEN && s->state != ST_HANDSHAKE)
        return; /* not connected yet: stays queued */
    uv_buf_t bufs[STREAM_WRITE_BUFS];
    size_t total;
    unsigned n;
    for (;;) {
        n = stream_out_bufs(s, bufs, &total);
        int rc = stream_test_skip_try_write ? UV_EAGAIN
                                            : uv_try_write((uv_stream_t *)&s->tcp, bufs, n);
        if (rc == UV_EAGAIN || rc == UV_ENOSYS)
            break;
        if (rc < 0) {
            stream_fail(s, rc);
            return;
        }
        s->writes++;
        s->bytes_written += (size_t)rc;
        stream_queue_consume(s, &s->out, (size_t)rc);
        if ((size_t)rc < total)
            break; /* the socket is full: the rest waits for it to drain */
        if (s->out.bytes == 0) {
            stream_wrote(s);
            return;
        }
    }
    n = stream_out_bufs(s, bufs, &total);
    s->write_req.data = s;
    int rc = uv_write(&s->write_req, (uv_stream_t *)&s->tcp, bufs, n, stream_on_write);
    if (rc != 0) {
        stream_fail(s, rc);
        return;
    }
    s->writing = 1;
    s->inflight = total;
    s->writes++;
    s->bytes_written += total;
}

static void stream_on_write(uv_write_t *req, int status)
{
    struct stream *s = req->data;
    s->writing = 0;
    if (status == UV_ECANCELED)
        return; /* closing at once; the handles are on their way out */
    if (status < 0) {
        stream_fail(s, status);
        return;
    }
    stream_queue_consume(s, &s->out, s->inflight);
    s->inflight = 0;
    stream_wrote(s);
}

static void stream_encrypt(struct stream *s)
{
    while (s->plain.head != NULL && !s->broken) {
        struct stream_chunk *c = s->plain.head;
        size_t len = c->end - c->start;
        int rc = tls_session_write(s->tls, c->data + c->start, len);
        if (rc < 0) {
            stream_fail(s, rc);
            return;
        }
        stream_queue_consume(s, &s->plain, len);
    }
}

static void stream_flush_now(struct stream *s)
{
    uv_idle_stop(&s->flusher);
    uv_check_stop(&s->flusher_after);
    s->flush_on = 0;
    if (s->handles_closing)
        return;
    s->in_flush = 1;
    if (s->state == ST_OPEN && !s->closing && s->cb->on_flush != NULL)
        s->cb->on_flush(s); /* may write, or close */
    if (s->tls != NULL && s->state == ST_OPEN)
        stream_encrypt(s);
    stream_start_write(s);
    s->in_flush = 0;
    if (s->flush_again) {
        s->flush_again = 0;
        stream_flush_request(s);
    }
    stream_drain_step(s);
}

static void stream_on_idle(uv_idle_t *h)
{
    stream_flush_now(h->data);
}

static void stream_on_check(uv_check_t *h)
{
    stream_flush_now(h->data);
}

void stream_flush_request(struct stream *s)
{
    if (s->flush_on || s->in_flush || s->handles_closing)
        return;
    s->flush_on = 1;
    uv_idle_start(&s->flusher, stream_on_idle);
    uv_check_start(&s->flusher_after, stream_on_check);
}

size_t stream_pending(const struct stream *s)
{
    return s->out.bytes + s->plain.bytes;
}

size_t stream_unsent(const struct stream *s)
{
    /* out still holds the in-flight write's bytes; of those, libuv's queue size is what the
     * kernel has not taken (0 once uv__write finished, callback run or not). */
    size_t out = s->out.bytes;
    if (s->writing)
        out = out - s->inflight + uv_stream_get_write_queue_size((const uv_stream_t *)&s->tcp);
    return out + s->plain.bytes;
}

int stream_write(struct stream *s, const void *data, size_t len)
{
    if (s->closing || s->broken || s->state == ST_FAILED)
        return -EPIPE;
    if (len == 0)
        return 0;
    if (len > s->opt.max_pending || stream_pending(s) > s->opt.max_pending - len) {
        s->refused = 1;
        return -ENOBUFS;
    }
    struct stream_queue *q = s->tls != NULL ? &s->plain : &s->out;
    int rc = stream_queue_append(s, q, data, len);
    if (rc < 0)
        return rc;
    stream_flush_request(s);
    if (!s->above && stream_pending(s) >= s->opt.high_water) {
        s->above = 1;
        if (s->cb->on_water != NULL)
            s->cb->on_water(s, 1);
    }
    return 0;
}

/* tls_session output: handshake messages, records, alerts. Never refused (the plaintext they
 * carry was already counted against max_pending); only allocation can fail. */
static int stream_tls_output(void *arg, const uint8_t *data, size_t len)
{
    struct stream *s = arg;
    int rc = stream_queue_append(s, &s->out, data, len);
    if (rc == 0)
        stream_flush_request(s);
    return rc;
}

/* ---- reading ------------------------------------------------------------------------------ */

static void stream_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h, (void)hint;
    *buf = uv_buf_init(stream_rbuf, sizeof stream_rbuf);
}

static void stream_end(struct stream *s, int err)
{
    if (s->ended)
        return;
    s->ended = 1;
    if (s->reading) {
        uv_read_stop((uv_stream_t *)&s->tcp);
        s->reading = 0;
    }
    if (s->cb->on_end != NULL)
        s->cb->on_end(s, err);
}

static int stream_on_plain(void *arg, const uint8_t *data, size_t len)
{
    struct stream *s = arg;
    if (s->state == ST_HANDSHAKE)
        stream_connect_done(s, 0); /* data right behind the Finished: connect comes first */
    if (s->closing || s->ended || s->state != ST_OPEN)
        return 1;
    s->cb->on_read(s, data, len);
    return s->closing || s->ended;
}

static void stream_on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf)
{
    struct stream *s = h->data;
    if (n == 0 || s->closing)
        return;
    if (n < 0) {
        int err = n == UV_EOF ? 0 : (int)n;
        if (s->state != ST_OPEN) {
            stream_fail(s, err == 0 ? -ECONNRESET : err);
            return;
        }
        if (err == 0 && s->tls != NULL)
            log_debug("stream: TLS peer closed without close_notify");
        stream_end(s, err);
        return;
    }
    if (s->tls == NULL) {
        s->cb->on_read(s, (const uint8_t *)buf->base, (size_t)n);
        return;
    }
    int rc = tls_session_input(s->tls, (const uint8_t *)buf->base, (size_t)n, stream_on_plain, s);
    if (s->closing)
        return;
    if (rc == -ESHUTDOWN) {
        stream_end(s, 0);
        return;
    }
    if (rc < 0) {
        stream_fail(s, rc);
        return;
    }
    if (s->state == ST_HANDSHAKE && tls_session_handshake_done(s->tls))
        stream_connect_done(s, 0);
}

static int stream_reading_start(struct stream *s)
{
    if (s->reading)
        return 0;
    int rc = uv_read_start((uv_stream_t *)&s->tcp, stream_on_alloc, stream_on_read);
    if (rc == 0)
        s->reading = 1;
    return rc;
}

void stream_read_stop(struct stream *s)
{
    s->want_read = 0;
    if (s->reading && s->state == ST_OPEN) {
        uv_read_stop((uv_stream_t *)&s->tcp);
        s->reading = 0;
    }
}

void stream_read_start(struct stream *s)
{
    s->want_read = 1;
    if (s->state == ST_OPEN && !s->closing && !s->ended && !s->broken) {
        int rc = stream_reading_start(s);
        if (rc < 0)
            stream_fail(s, rc);
    }
}

/* ---- connecting --------------------------------------------------------------------------- */

static void stream_connect_done(struct stream *s, int status)
{
    uv_timer_stop(&s->timer);
    if (status != 0) {
        s->state = ST_FAILED;
        if (s->last_err == 0)
            s->last_err = status;
        if (s->reading) {
            uv_read_stop((uv_stream_t *)&s->tcp);
            s->reading = 0;
        }
        if (s->cb->on_connect != NULL)
            s->cb->on_connect(s, status);
        return;
    }
    s->state = ST_OPEN;
    if (s->tls != NULL)
        log_debug("stream: TLS up, %s%s", tls_session_ciphersuite(s->tls),
                  tls_session_resumed(s->tls) ? ", session resumed" : "");
    if (!s->want_read && s->reading) {
        uv_read_stop((uv_stream_t *)&s->tcp);
        s->reading = 0;
    }
    if (stream_pending(s) > 0)
        stream_flush_request(s);
    if (s->cb->on_connect != NULL && (s->tls != NULL || s->client))
        s->cb->on_connect(s, 0);
}

static void stream_on_timer(uv_timer_t *t)
{
    struct stream *s = t->data;
    if (s->closing) {
        log_debug("stream: close timed out with %zu bytes unsent", stream_pending(s));
        stream_close_now(s);
        return;
    }
    if (s->state == ST_RESOLVING || s->state == ST_CONNECTING || s->state == ST_HANDSHAKE) {
        if (s->gai_pending)
            uv_cancel((uv_req_t *)&s->gai);
        stream_connect_done(s, -ETIMEDOUT);
    }
}

/* Starts the connection proper once TCP is up. */
static void stream_on_tcp_up(struct stream *s)
{
    uv_tcp_nodelay(&s->tcp, 1); /* small frames, latency matters */
    int rc = stream_reading_start(s);
    if (rc < 0) {
        stream_connect_done(s, rc);
        return;
    }
    if (s->tls == NULL) {
        stream_connect_done(s, 0);
        return;
    }
    s->state = ST_HANDSHAKE;
    rc = tls_session_handshake(s->tls); /* the client's hello goes out at the next flush */
    if (rc != -EAGAIN)
        stream_connect_done(s, rc);
}

static void stream_on_reopened(uv_handle_t *h)
{
    struct stream *s = h->data;
    s->reopening = 0;
    if (s->handles_closing) {
        s->handles--;
        stream_maybe_finish(s);
        return;
    }
    uv_tcp_init(s->loop, &s->tcp); /* cannot fail without flags */
    s->tcp.data = s;
    if (s->state == ST_CONNECTING)
        stream_try_next(s);
}

static void stream_on_connected(uv_connect_t *req, int status)
{
    struct stream *s = req->data;
    if (status == UV_ECANCELED || s->closing || s->state != ST_CONNECTING)
        return;
    if (status < 0) {
        s->last_err = status;
        if (s->addr_next != NULL) {
            /* the socket's family may differ for the next address: start over */
            s->reopening = 1;
            uv_close((uv_handle_t *)&s->tcp, stream_on_reopened);
        } else {
            stream_connect_done(s, status);
        }
        return;
    }
    uv_freeaddrinfo(s->addrs);
    s->addrs = s->addr_next = NULL;
    s->last_err = 0;
    stream_on_tcp_up(s);
}

static void stream_try_next(struct stream *s)
{
    struct addrinfo *ai = s->addr_next;
    if (ai == NULL) {
        stream_connect_done(s, s->last_err != 0 ? s->last_err : -ECONNREFUSED);
        return;
    }
    s->addr_next = ai->ai_next;
    s->connect_req.data = s;
    int rc = uv_tcp_connect(&s->connect_req, &s->tcp, ai->ai_addr, stream_on_connected);
    if (rc != 0) {
        s->last_err = rc;
        if (s->addr_next == NULL) {
            stream_connect_done(s, rc);
            return;
        }
        s->reopening = 1;
        uv_close((uv_handle_t *)&s->tcp, stream_on_reopened);
    }
}

static void stream_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct stream *s = req->data;
    s->gai_pending = 0;
    if (s->closing || s->state != ST_RESOLVING) {
        if (res != NULL)
            uv_freeaddrinfo(res);
        stream_maybe_finish(s);
        return;
    }
    if (status < 0) {
        log_debug("stream: resolving failed: %s", uv_strerror(status));
        if (res != NULL)
            uv_freeaddrinfo(res);
        stream_connect_done(s, -EHOSTUNREACH);
        return;
    }
    s->addrs = s->addr_next = res;
    s->state = ST_CONNECTING;
    stream_try_next(s);
}

/* ---- public setup and teardown ------------------------------------------------------------ */

int stream_init(struct stream *s, uv_loop_t *loop, const struct stream_callbacks *cb,
                const struct stream_options *opt)
{
    static const struct stream_options defaults;
    if (opt == NULL)
        opt = &defaults;
    if (cb == NULL || cb->on_read == NULL)
        return -EINVAL;
    void *data = s->data; /* the owner may have set it before init */
    memset(s, 0, sizeof *s);
    s->data = data;
    s->opt = *opt;
    if (s->opt.max_pending == 0)
        s->opt.max_pending = 1u << 20;
    if (s->opt.high_water == 0)
        s->opt.high_water = s->opt.max_pending / 4;
    if (s->opt.low_water == 0)
        s->opt.low_water = s->opt.high_water / 4;
    if (s->opt.connect_timeout_ms == 0)
        s->opt.connect_timeout_ms = 10000;
    if (s->opt.close_timeout_ms == 0)
        s->opt.close_timeout_ms = 5000;
    if (s->opt.high_water > s->opt.max_pending || s->opt.low_water > s->opt.high_water)
        return -EINVAL;
    s->opt.tls_hostname = NULL; /* copied below: the caller's string may go */
    if (opt->tls_hostname != NULL && (s->tls_host = strdup(opt->tls_hostname)) == NULL)
        return -ENOMEM;
    s->loop = loop;
    s->cb = cb;
    s->want_read = 1;
    s->state = ST_INIT;
    int rc = uv_tcp_init(loop, &s->tcp);
    if (rc != 0) {
        free(s->tls_host);
        s->tls_host = NULL;
        return rc;
    }
    uv_timer_init(loop, &s->timer);
    uv_idle_init(loop, &s->flusher);
    uv_check_init(loop, &s->flusher_after);
    s->tcp.data = s->timer.data = s->flusher.data = s->flusher_after.data = s;
    s->gai.data = s;
    s->handles = 4;
    return 0;
}

int stream_connect(struct stream *s, const char *host, unsigned port)
{
    if (s->state != ST_INIT || s->closing || host == NULL || host[0] == '\0' || port == 0 ||
        port > 65535)
        return -EINVAL;
    int rc;
    if (s->opt.tls != NULL) {
        if (s->tls_host == NULL && (s->tls_host = strdup(host)) == NULL)
            return -ENOMEM;
        rc = tls_session_new(&s->tls, s->opt.tls, s->tls_host, stream_tls_output, s);
        if (rc < 0)
            return rc;
    }
    s->client = 1;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    rc = uv_getaddrinfo(s->loop, &s->gai, stream_on_resolved, host, portstr, &hints);
    if (rc != 0)
        return rc;
    s->gai_pending = 1;
    s->state = ST_RESOLVING;
    uv_timer_start(&s->timer, stream_on_timer, s->opt.connect_timeout_ms, 0);
    return 0;
}

int stream_adopt(struct stream *s, int fd)
{
    if (s->state != ST_INIT || s->closing) {
        close(fd);
        return -EINVAL;
    }
    /* the worker accepted it with SOCK_CLOEXEC; make sure, a leaked socket keeps calls up */
    int fl = fcntl(fd, F_GETFD);
    if (fl == -1 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) == -1) {
        int err = -errno;
        close(fd);
        return err;
    }
    int rc = uv_tcp_open(&s->tcp, fd);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    if (s->opt.tls != NULL) {
        rc = tls_session_new(&s->tls, s->opt.tls, NULL, stream_tls_output, s);
        if (rc < 0)
            return rc; /* the fd belongs to the handle now; stream_close closes it */
        uv_timer_start(&s->timer, stream_on_timer, s->opt.connect_timeout_ms, 0);
        s->state = ST_CONNECTING; /* for stream_on_tcp_up's bookkeeping */
    }
    stream_on_tcp_up(s);
    return 0;
}

void stream_close(struct stream *s, int graceful, void (*close_cb)(struct stream *s))
{
    if (s->closing)
        return;
    s->closing = 1;
    s->close_cb = close_cb;
    if (s->gai_pending)
        uv_cancel((uv_req_t *)&s->gai);
    if (s->reading) {
        uv_read_stop((uv_stream_t *)&s->tcp);
        s->reading = 0;
    }
    if (graceful && s->state == ST_OPEN && !s->broken) {
        s->graceful = 1;
        uv_timer_start(&s->timer, stream_on_timer, s->opt.close_timeout_ms, 0);
        stream_flush_request(s);
        return;
    }
    stream_close_now(s);
}

const char *stream_tls_describe(const struct stream *s, char *buf, size_t cap)
{
    if (cap == 0)
        return buf;
    buf[0] = '\0';
    if (s->tls != NULL && s->last_err != 0)
        tls_session_describe(s->tls, buf, cap);
    return buf;
}
