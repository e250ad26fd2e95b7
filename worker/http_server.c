/* The server object: settings, the optional listener and the set of connections. Accepting is
 * our own accept4 loop on a uv_poll (not uv_listen) so that running out of fds or memory can
 * pause accepting for a while instead of spinning on a readable listen socket, and so that the
 * accepted and the adopted (master-passed) fd take the same path into http_conn_open. */
#include "worker/http_server.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "worker/http_conn.h"

#define ACCEPT_BATCH 64 /* accepts per wake-up, so a flood cannot starve other handles */

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct http_server {
    struct http_conn_env env;
    uv_poll_t listen_poll;
    uv_timer_t accept_timer;
    int listen_fd;
    int open_handles;
    bool closing;
    bool accept_paused;
    bool pause_logged;
    void (*close_cb)(void *arg);
    void *close_arg;
};

void http_server_settings_default(struct http_server_settings *s)
{
    *s = (struct http_server_settings){
        .router = NULL,
        .max_head_bytes = 8192,
        .max_headers = 64,
        .max_body_bytes = 64 * 1024,
        .max_response_bytes = 1024 * 1024,
        .request_timeout_ms = 10000,
        .idle_timeout_ms = 60000,
        .write_timeout_ms = 30000,
        .linger_ms = 1000,
        .accept_pause_ms = 500,
        .max_connections = 4096,
        .backlog = 511,
    };
}

static void maybe_finish_close(struct http_server *srv)
{
    if (!srv->closing || srv->open_handles > 0 || srv->env.conns != NULL)
        return;
    if (srv->close_cb != NULL)
        srv->close_cb(srv->close_arg);
    free(srv);
}

static void on_acceptable(uv_poll_t *h, int status, int events);

static void accept_resume(struct http_server *srv)
{
    if (!srv->accept_paused || srv->closing || srv->listen_fd == -1)
        return;
    srv->accept_paused = false;
    uv_poll_start(&srv->listen_poll, UV_READABLE, on_acceptable);
}

static void on_conn_freed(struct http_conn_env *env)
{
    struct http_server *srv = container_of(env, struct http_server, env);
    /* Paused because full (no timer running): a slot just opened. */
    if (srv->accept_paused && !uv_is_active((uv_handle_t *)&srv->accept_timer) &&
        env->stats.active < env->settings.max_connections)
        accept_resume(srv);
    maybe_finish_close(srv);
}

int http_server_create(uv_loop_t *loop, const struct http_server_settings *s,
                       struct http_server **out)
{
    struct http_server_settings def;
    http_server_settings_default(&def);
    *out = NULL;
    if (s->router == NULL || s->max_head_bytes > HTTP_HEAD_BYTES_MAX ||
        s->max_headers > HTTP_HEADERS_MAX)
        return -EINVAL;
    struct http_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return -ENOMEM;
    struct http_server_settings *set = &srv->env.settings;
    *set = *s;
    /* Zero means "the default" for every number. */
#define DEFAULT_IF_ZERO(field)                                                                     \
    do {                                                                                           \
        if (set->field == 0)                                                                       \
            set->field = def.field;                                                                \
    } while (0)
    DEFAULT_IF_ZERO(max_head_bytes);
    DEFAULT_IF_ZERO(max_headers);
    DEFAULT_IF_ZERO(max_body_bytes);
    DEFAULT_IF_ZERO(max_response_bytes);
    DEFAULT_IF_ZERO(request_timeout_ms);
    DEFAULT_IF_ZERO(idle_timeout_ms);
    DEFAULT_IF_ZERO(write_timeout_ms);
    DEFAULT_IF_ZERO(linger_ms);
    DEFAULT_IF_ZERO(accept_pause_ms);
    DEFAULT_IF_ZERO(max_connections);
    DEFAULT_IF_ZERO(backlog);
#undef DEFAULT_IF_ZERO
    srv->env.loop = loop;
    srv->env.limits = (struct http_limits){.max_head_bytes = set->max_head_bytes,
                                           .max_headers = set->max_headers,
                                           .max_body = set->max_body_bytes};
    srv->env.on_conn_freed = on_conn_freed;
    srv->listen_fd = -1;
    uv_timer_init(loop, &srv->accept_timer);
    srv->accept_timer.data = srv;
    srv->open_handles = 1;
    *out = srv;
    return 0;
}

static void on_accept_timer(uv_timer_t *t)
{
    accept_resume(t->data);
}

static void accept_pause(struct http_server *srv, unsigned ms)
{
    uv_poll_stop(&srv->listen_poll);
    srv->accept_paused = true;
    if (ms > 0)
        uv_timer_start(&srv->accept_timer, on_accept_timer, ms, 0);
}

static void on_acceptable(uv_poll_t *h, int status, int events)
{
    struct http_server *srv = h->data;
    struct http_conn_env *env = &srv->env;
    (void)events;
    if (status < 0) {
        log_error("http: listener: %s", uv_strerror(status));
        accept_pause(srv, env->settings.accept_pause_ms);
        return;
    }
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        if (env->stats.active >= env->settings.max_connections) {
            if (!srv->pause_logged)
                log_warn("http: %u connections open, accepting paused", env->stats.active);
            srv->pause_logged = true;
            accept_pause(srv, 0); /* resumed when a connection is freed */
            return;
        }
        env->stats.accept_calls++;
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            int e = errno;
            switch (e) {
            case EAGAIN:
#if EWOULDBLOCK != EAGAIN
            case EWOULDBLOCK:
#endif
                return;
            case EINTR:
            case ECONNABORTED:
            /* Linux reports the new socket's pending network errors here: retry (accept(2)). */
            case EPROTO:
            case ENETDOWN:
            case ENOPROTOOPT:
            case EHOSTDOWN:
            case ENONET:
            case EHOSTUNREACH:
            case EOPNOTSUPP:
            case ENETUNREACH:
                continue;
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
                env->stats.accept_pauses++;
                if (!srv->pause_logged)
                    log_warn("http: accept: %s; pausing accepts for %u ms", strerror(e),
                             env->settings.accept_pause_ms);
                srv->pause_logged = true;
                accept_pause(srv, env->settings.accept_pause_ms);
                return;
            default:
                log_error("http: accept: %s", strerror(e));
                accept_pause(srv, env->settings.accept_pause_ms);
                return;
            }
        }
        srv->pause_logged = false;
        env->stats.accepted++;
        int err = http_conn_open(env, fd);
        if (err != 0)
            log_warn("http: cannot serve a new connection: %s", uv_strerror(err));
    }
}

int http_server_listen(struct http_server *srv, const struct sockaddr *addr)
{
    socklen_t len;
    if (srv->closing || srv->listen_fd != -1)
        return -EBUSY;
    if (addr->sa_family == AF_INET)
        len = sizeof(struct sockaddr_in);
    else if (addr->sa_family == AF_INET6)
        len = sizeof(struct sockaddr_in6);
    else
        return -EAFNOSUPPORT;
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -errno;
    int one = 1, err;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1 ||
        bind(fd, addr, len) == -1 || listen(fd, srv->env.settings.backlog) == -1) {
        err = -errno;
        goto fail_fd;
    }
    err = uv_poll_init_socket(srv->env.loop, &srv->listen_poll, fd);
    if (err != 0)
        goto fail_fd;
    srv->listen_poll.data = srv;
    srv->open_handles++;
    srv->listen_fd = fd;
    err = uv_poll_start(&srv->listen_poll, UV_READABLE, on_acceptable);
    if (err != 0)
        log_error("http: listener: %s", uv_strerror(err)); /* closed with the server */
    return err;
fail_fd:
    close(fd);
    return err;
}

int http_server_port(const struct http_server *srv)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (srv->listen_fd == -1)
        return -ENOTCONN;
    if (getsockname(srv->listen_fd, (struct sockaddr *)&ss, &len) == -1)
        return -errno;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EAFNOSUPPORT;
}

int http_server_adopt_fd(struct http_server *srv, int fd)
{
    if (srv->closing || srv->env.stats.active >= srv->env.settings.max_connections) {
        close(fd);
        return -EBUSY;
    }
    srv->env.stats.adopted++;
    return http_conn_open(&srv->env, fd);
}

void http_server_drain(struct http_server *srv)
{
    srv->env.settings.no_keepalive = true;
    http_conn_close_idle(&srv->env);
}

const struct http_server_stats *http_server_stats(const struct http_server *srv)
{
    return &srv->env.stats;
}

static void on_server_handle_closed(uv_handle_t *h)
{
    struct http_server *srv = h->data;
    if (h == (uv_handle_t *)&srv->listen_poll) {
        close(srv->listen_fd); /* only now: the poll watched it until here */
        srv->listen_fd = -1;
    }
    srv->open_handles--;
    maybe_finish_close(srv);
}

void http_server_close(struct http_server *srv, void (*cb)(void *arg), void *arg)
{
    if (srv->closing)
        return;
    srv->closing = true;
    srv->close_cb = cb;
    srv->close_arg = arg;
    if (srv->listen_fd != -1)
        uv_close((uv_handle_t *)&srv->listen_poll, on_server_handle_closed);
    uv_close((uv_handle_t *)&srv->accept_timer, on_server_handle_closed);
    http_conn_close_all(&srv->env);
}
