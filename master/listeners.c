/* Listening sockets and the accept loop (see listeners.h). Like http_server's own loop, an
 * accept4 loop on a uv_poll, so that EMFILE pauses accepting for a moment rather than spinning
 * on a socket that stays readable. */
#include "master/listeners.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"

#define ACCEPT_BATCH 64
#define ACCEPT_PAUSE_MS 100
#define LISTEN_BACKLOG 4096 /* the kernel caps it at net.core.somaxconn */

static void on_readable(uv_poll_t *p, int status, int events);

static void resume(uv_timer_t *t)
{
    struct listener *l = t->data;
    l->paused = 0;
    uv_poll_start(&l->poll, UV_READABLE, on_readable);
}

static void on_readable(uv_poll_t *p, int status, int events)
{
    struct listener *l = p->data;
    (void)events;
    if (status < 0) {
        log_error("listen %s:%u: %s", l->addr.host, l->addr.port, uv_strerror(status));
        return;
    }
    for (int k = 0; k < ACCEPT_BATCH; k++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            /* Out of fds or memory: the socket stays readable, so stop watching it for a
             * moment; the backlog holds the connections meanwhile. */
            if (l->owner->accept_errors++ % 1000 == 0)
                log_error("accept on %s:%u: %s; pausing %d ms", l->addr.host, l->addr.port,
                          strerror(errno), ACCEPT_PAUSE_MS);
            uv_poll_stop(&l->poll);
            l->paused = 1;
            uv_timer_start(&l->pause_timer, resume, ACCEPT_PAUSE_MS, 0);
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* audio frames are small */
        l->owner->on_accept(l->owner->arg, fd, l->index);
    }
}

static int open_socket(const struct config_listen *a, int *out, char *err, size_t err_len)
{
    struct addrinfo hints = {.ai_family = a->family, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_PASSIVE}, *res;
    char port[8];
    snprintf(port, sizeof port, "%u", a->port);
    int rc = getaddrinfo(a->host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, err_len, "listen %s:%u: %s", a->host, a->port, gai_strerror(rc));
        return -EINVAL;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        rc = -errno;
        goto fail;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (res->ai_family == AF_INET6) /* "[::]" means IPv6; list 0.0.0.0 too for IPv4 */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) == -1 || listen(fd, LISTEN_BACKLOG) == -1) {
        rc = -errno;
        close(fd);
        goto fail;
    }
    freeaddrinfo(res);
    *out = fd;
    return 0;
fail:
    snprintf(err, err_len, "listen %s:%u: %s", a->host, a->port, strerror(-rc));
    freeaddrinfo(res);
    return rc;
}

void listeners_init(struct listeners *ls, uv_loop_t *loop, listeners_accept_fn *fn, void *arg)
{
    memset(ls, 0, sizeof *ls);
    ls->loop = loop;
    ls->on_accept = fn;
    ls->arg = arg;
}

static void on_listener_closed(uv_handle_t *h)
{
    struct listener *l = h->data;
    if (--l->polling == 0) {
        close(l->fd); /* only now: the poll watched it until here */
        free(l);
    }
}

static void listener_close(struct listener *l)
{
    log_info("closing listener %s:%u", l->addr.host, l->addr.port);
    l->polling = 2;
    uv_close((uv_handle_t *)&l->poll, on_listener_closed);
    uv_close((uv_handle_t *)&l->pause_timer, on_listener_closed);
}

/* The same socket serves both (a certificate change needs no new socket: the workers of the
 * new generation load it). */
static int same_addr(const struct config_listen *a, const struct config_listen *b)
{
    return a->port == b->port && a->family == b->family && strcmp(a->host, b->host) == 0;
}

int listeners_apply(struct listeners *ls, const struct config *cfg, char *err, size_t err_len)
{
    struct listener *next[CONFIG_LISTEN_MAX] = {0};
    int reused[CONFIG_LISTEN_MAX] = {0};
    int rc = 0;
    for (size_t i = 0; i < cfg->listen_count; i++) {
        for (size_t j = 0; j < ls->n; j++)
            if (ls->l[j] && !reused[j] && same_addr(&ls->l[j]->addr, &cfg->listen[i])) {
                next[i] = ls->l[j];
                reused[j] = 1;
                break;
            }
        if (next[i])
            continue;
        struct listener *l = calloc(1, sizeof *l); /* owned by ls once applied */
        if (!l) {
            snprintf(err, err_len, "out of memory");
            rc = -ENOMEM;
            break;
        }
        l->addr = cfg->listen[i];
        if ((rc = open_socket(&l->addr, &l->fd, err, err_len)) != 0) {
            free(l);
            break;
        }
        l->owner = ls;
        uv_poll_init(ls->loop, &l->poll, l->fd);
        uv_timer_init(ls->loop, &l->pause_timer);
        l->poll.data = l->pause_timer.data = l;
        next[i] = l;
    }
    if (rc != 0) { /* undo: close only what this call opened */
        for (size_t i = 0; i < cfg->listen_count; i++) {
            int was_old = 0;
            for (size_t j = 0; j < ls->n; j++)
                was_old |= next[i] && next[i] == ls->l[j];
            if (next[i] && !was_old)
                listener_close(next[i]);
        }
        return rc;
    }
    for (size_t j = 0; j < ls->n; j++)
        if (ls->l[j] && !reused[j])
            listener_close(ls->l[j]);
    memset(ls->l, 0, sizeof ls->l);
    for (size_t i = 0; i < cfg->listen_count; i++) {
        struct listener *l = next[i];
        l->index = (unsigned)i;
        ls->l[i] = l;
        l->addr = cfg->listen[i]; /* a kept socket takes the new entry's TLS files */
        if (!l->polling) {
            l->polling = 1;
            uv_poll_start(&l->poll, UV_READABLE, on_readable);
            log_info("listening on %s:%u%s", l->addr.host, l->addr.port,
                     l->addr.tls_cert[0] ? " (TLS)" : "");
        }
    }
    ls->n = cfg->listen_count;
    return 0;
}

void listeners_close_all(struct listeners *ls)
{
    for (size_t i = 0; i < ls->n; i++)
        if (ls->l[i])
            listener_close(ls->l[i]);
    memset(ls->l, 0, sizeof ls->l);
    ls->n = 0;
}
