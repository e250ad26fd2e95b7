/* TLS front: an accept loop (accept4 on a uv_poll, paused on EMFILE like http_server's) and one
 * relay per connection:
 *
 *   client ==TLS== outer stream  <-- relay (main loop) -->  inner stream == socketpair == http_conn
 *                                                                              (or, after an upgrade,
 *                                                                               the call thread)
 *
 * Each direction is bounded by the receiving stream's output queue: above its high-water mark the
 * relay stops reading the other side. Either side ending closes both gracefully (pending bytes are
 * flushed, TLS sends close_notify). The certificate config is reference-counted so a reload never
 * frees one that open sessions still use. Everything runs on the loop's thread. */
#include "worker/tls_front.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/stream.h"
#include "common/tls.h"
#include "worker/http_server.h"

#define ACCEPT_BATCH 64
#define ACCEPT_PAUSE_MS 500

struct cfg_ref {
    struct tls_config *cfg;
    unsigned refs;
};

struct relay {
    struct tls_front *f;
    struct cfg_ref *cfg;
    struct stream outer; /* TLS, to the client */
    struct stream inner; /* plaintext, to the HTTP server's end of the socketpair */
    int open_streams;    /* close callbacks still to come */
    bool closing;
    struct relay *prev, *next;
};

struct tls_front {
    uv_loop_t *loop;
    struct http_server *srv;
    struct cfg_ref *cfg; /* for new connections */
    uv_poll_t poll;
    uv_timer_t pause;
    int listen_fd;
    int handles; /* open libuv handles */
    bool polling, closing;
    struct relay *relays;
    struct tls_front_stats stats;
    void (*close_cb)(void *arg);
    void *close_arg;
};

static void cfg_unref(struct cfg_ref *r)
{
    if (r != NULL && --r->refs == 0) {
        tls_config_free(r->cfg);
        free(r);
    }
}

static int cfg_load(struct cfg_ref **out, const char *cert, const char *key)
{
    struct cfg_ref *r = calloc(1, sizeof *r);
    if (r == NULL)
        return -ENOMEM;
    int rc = tls_config_server_new(&r->cfg, cert, key);
    if (rc != 0) {
        free(r);
        return rc;
    }
    r->refs = 1;
    *out = r;
    return 0;
}

static void front_maybe_done(struct tls_front *f)
{
    if (!f->closing || f->handles > 0 || f->relays != NULL)
        return;
    cfg_unref(f->cfg);
    void (*cb)(void *) = f->close_cb;
    void *arg = f->close_arg;
    free(f);
    if (cb != NULL)
        cb(arg);
}

/* ---- relays -------------------------------------------------------------------------------- */

static void relay_on_stream_closed(struct stream *s)
{
    struct relay *r = s->data;
    if (--r->open_streams > 0)
        return;
    struct tls_front *f = r->f;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        f->relays = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    cfg_unref(r->cfg);
    free(r);
    f->stats.active--;
    front_maybe_done(f);
}

static void relay_close(struct relay *r, int graceful)
{
    if (r->closing)
        return;
    r->closing = true;
    stream_close(&r->outer, graceful, relay_on_stream_closed);
    stream_close(&r->inner, graceful, relay_on_stream_closed);
}

static struct stream *other_of(struct relay *r, struct stream *s)
{
    return s == &r->outer ? &r->inner : &r->outer;
}

static void relay_on_connect(struct stream *s, int status)
{
    struct relay *r = s->data;
    if (status == 0)
        return;
    char why[256];
    r->f->stats.handshakes_failed++;
    log_debug("tls: handshake failed: %s %s", strerror(-status),
              stream_tls_describe(s, why, sizeof why));
    relay_close(r, 0);
}

static void relay_on_read(struct stream *s, const uint8_t *data, size_t len)
{
    struct relay *r = s->data;
    if (r->closing)
        return;
    if (stream_write(other_of(r, s), data, len) != 0)
        relay_close(r, 0); /* over max_pending despite the water marks: the peer is stuck */
}

static void relay_on_end(struct stream *s, int err)
{
    struct relay *r = s->data;
    (void)err;
    relay_close(r, 1);
}

static void relay_on_water(struct stream *s, int above)
{
    struct relay *r = s->data;
    if (r->closing)
        return;
    if (above)
        stream_read_stop(other_of(r, s));
    else
        stream_read_start(other_of(r, s));
}

static const struct stream_callbacks relay_cb = {
    .on_connect = relay_on_connect,
    .on_read = relay_on_read,
    .on_end = relay_on_end,
    .on_water = relay_on_water,
};

static int relay_start(struct tls_front *f, int fd)
{
    struct relay *r = calloc(1, sizeof *r);
    if (r == NULL) {
        close(fd);
        return -ENOMEM;
    }
    r->f = f;
    r->cfg = f->cfg;
    r->cfg->refs++;
    struct stream_options tls_opt = {.tls = r->cfg->cfg}, plain_opt = {0};
    r->outer.data = r->inner.data = r;
    int rc = stream_init(&r->outer, f->loop, &relay_cb, &tls_opt);
    if (rc != 0) { /* only for bad limits, which the defaults are not */
        cfg_unref(r->cfg);
        free(r);
        close(fd);
        return rc;
    }
    r->next = f->relays;
    if (f->relays != NULL)
        f->relays->prev = r;
    f->relays = r;
    f->stats.active++;
    rc = stream_init(&r->inner, f->loop, &relay_cb, &plain_opt);
    if (rc != 0) {
        r->open_streams = 1;
        r->closing = true;
        stream_close(&r->outer, 0, relay_on_stream_closed);
        close(fd);
        return rc;
    }
    r->open_streams = 2;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == -1) {
        rc = -errno;
        close(fd);
        relay_close(r, 0);
        return rc;
    }
    rc = stream_adopt(&r->outer, fd); /* owns fd from here, on failure too */
    int rc2 = stream_adopt(&r->inner, sv[0]);
    int rc3 = http_server_adopt_fd(f->srv, sv[1]);
    if (rc != 0 || rc2 != 0 || rc3 != 0) {
        relay_close(r, 0);
        return rc ? rc : rc2 ? rc2 : rc3;
    }
    return 0;
}

/* ---- accepting ----------------------------------------------------------------------------- */

static void on_acceptable(uv_poll_t *h, int status, int events);

static void on_pause_over(uv_timer_t *t)
{
    struct tls_front *f = t->data;
    if (!f->closing && f->listen_fd != -1 && !f->polling) {
        uv_poll_start(&f->poll, UV_READABLE, on_acceptable);
        f->polling = true;
    }
}

static void on_acceptable(uv_poll_t *h, int status, int events)
{
    struct tls_front *f = h->data;
    (void)events;
    if (status < 0 || f->closing)
        return;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(f->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS) {
                log_warn("tls: accept: %s; pausing %d ms", strerror(errno), ACCEPT_PAUSE_MS);
                uv_poll_stop(&f->poll);
                f->polling = false;
                uv_timer_start(&f->pause, on_pause_over, ACCEPT_PAUSE_MS, 0);
            }
            return; /* EAGAIN: all taken */
        }
        f->stats.accepted++;
        int rc = relay_start(f, fd);
        if (rc != 0)
            log_info("tls: connection dropped: %s", strerror(-rc));
    }
}

/* ---- the front ----------------------------------------------------------------------------- */

int tls_front_new(struct tls_front **out, uv_loop_t *loop, struct http_server *srv,
                  const char *cert_file, const char *key_file)
{
    struct tls_front *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -ENOMEM;
    int rc = cfg_load(&f->cfg, cert_file, key_file);
    if (rc != 0) {
        free(f);
        return rc;
    }
    f->loop = loop;
    f->srv = srv;
    f->listen_fd = -1;
    uv_timer_init(loop, &f->pause);
    f->pause.data = f;
    f->handles = 1;
    *out = f;
    return 0;
}

int tls_front_listen(struct tls_front *f, const struct sockaddr *addr)
{
    if (f->listen_fd != -1 || f->closing)
        return -EBUSY;
    socklen_t len = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                : sizeof(struct sockaddr_in);
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -errno;
    int one = 1, rc = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1 ||
        bind(fd, addr, len) == -1 || listen(fd, 511) == -1)
        rc = -errno;
    if (rc == 0)
        rc = uv_poll_init(f->loop, &f->poll, fd);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    f->poll.data = f;
    f->handles++;
    f->listen_fd = fd;
    uv_poll_start(&f->poll, UV_READABLE, on_acceptable);
    f->polling = true;
    return 0;
}

int tls_front_port(const struct tls_front *f)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (f->listen_fd == -1)
        return -ENOTCONN;
    if (getsockname(f->listen_fd, (struct sockaddr *)&ss, &len) == -1)
        return -errno;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int tls_front_adopt_fd(struct tls_front *f, int fd)
{
    if (f->closing) {
        close(fd);
        return -EBUSY;
    }
    return relay_start(f, fd);
}

int tls_front_reload(struct tls_front *f, const char *cert_file, const char *key_file)
{
    struct cfg_ref *fresh;
    int rc = cfg_load(&fresh, cert_file, key_file);
    if (rc != 0)
        return rc;
    cfg_unref(f->cfg);
    f->cfg = fresh;
    return 0;
}

const struct tls_front_stats *tls_front_stats(const struct tls_front *f)
{
    return &f->stats;
}

static void on_handle_closed(uv_handle_t *h)
{
    struct tls_front *f = h->data;
    if (h == (uv_handle_t *)&f->poll && f->listen_fd != -1) {
        close(f->listen_fd); /* after the poll is gone, never under it */
        f->listen_fd = -1;
    }
    f->handles--;
    front_maybe_done(f);
}

void tls_front_close(struct tls_front *f, bool force, void (*cb)(void *arg), void *arg)
{
    if (f->closing)
        return;
    f->closing = true;
    f->close_cb = cb;
    f->close_arg = arg;
    if (f->listen_fd != -1)
        uv_close((uv_handle_t *)&f->poll, on_handle_closed);
    uv_close((uv_handle_t *)&f->pause, on_handle_closed);
    for (struct relay *r = force ? f->relays : NULL, *next; r != NULL; r = next) {
        next = r->next; /* relay_close never frees synchronously: callbacks come later */
        relay_close(r, 0);
    }
}
