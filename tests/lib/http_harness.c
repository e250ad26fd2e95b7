/* HTTP test harness: the server loop on its own thread (stopped through a uv_async so that
 * only that thread touches the loop), blocking clients, and a response reader built on
 * common/http_parser in response mode. */
#include "tests/lib/http_harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static void on_closed(void *arg)
{
    (void)arg;
}

static void on_stop(uv_async_t *a)
{
    struct http_harness *h = a->data;
    h->stats = *http_server_stats(h->srv);
    http_server_close(h->srv, on_closed, h);
    h->srv = NULL;
    uv_close((uv_handle_t *)&h->stop, NULL);
}

int http_harness_init(struct http_harness *h, const struct http_server_settings *s, bool listen)
{
    memset(h, 0, sizeof *h);
    int err = uv_loop_init(&h->loop);
    if (err != 0)
        return err;
    err = uv_async_init(&h->loop, &h->stop, on_stop);
    if (err != 0)
        return err;
    h->stop.data = h;
    err = http_server_create(&h->loop, s, &h->srv);
    if (err != 0)
        return err;
    if (listen) {
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        err = http_server_listen(h->srv, (struct sockaddr *)&sin);
        if (err != 0)
            return err;
        h->port = http_server_port(h->srv);
        if (h->port <= 0)
            return h->port < 0 ? h->port : -EINVAL;
    }
    return 0;
}

static void *loop_thread(void *arg)
{
    struct http_harness *h = arg;
    uv_run(&h->loop, UV_RUN_DEFAULT);
    return NULL;
}

int http_harness_run(struct http_harness *h)
{
    int err = pthread_create(&h->thread, NULL, loop_thread, h);
    if (err != 0)
        return -err;
    h->running = true;
    return 0;
}

int http_harness_stop(struct http_harness *h)
{
    if (!h->running) {
        /* Never ran: run the close on this thread. */
        on_stop(&h->stop);
        uv_run(&h->loop, UV_RUN_DEFAULT);
    } else {
        uv_async_send(&h->stop);
        pthread_join(h->thread, NULL);
        h->running = false;
    }
    return uv_loop_close(&h->loop);
}

int http_harness_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -errno;
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    while (connect(fd, (struct sockaddr *)&sin, sizeof sin) == -1) {
        if (errno == EINTR)
            continue;
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

int http_harness_send(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int http_harness_send_str(int fd, const char *s)
{
    return http_harness_send(fd, s, strlen(s));
}

void http_harness_reader_init(struct http_harness_reader *r, int fd)
{
    r->fd = fd;
    r->len = 0;
}

/* Reads more bytes into r->buf. Returns bytes read, 0 on EOF, -errno (-EAGAIN on timeout). */
static ssize_t fill(struct http_harness_reader *r)
{
    if (r->len == sizeof r->buf)
        return -ENOBUFS;
    for (;;) {
        ssize_t n = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len, 0);
        if (n >= 0) {
            r->len += (size_t)n;
            return n;
        }
        if (errno == EINTR)
            continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

static void drop(struct http_harness_reader *r, size_t n)
{
    memmove(r->buf, r->buf + n, r->len - n);
    r->len -= n;
}

int http_harness_read_response(struct http_harness_reader *r)
{
    struct http_limits lim = {.max_head_bytes = HTTP_HEAD_BYTES_MAX,
                              .max_headers = HTTP_HEADERS_MAX,
                              .max_body = sizeof r->body};
    http_parser_init(&r->parser, HTTP_MSG_RESPONSE, &lim, false);
    http_parser_set_body_buffer(&r->parser, r->body, sizeof r->body);
    bool any = r->len > 0;
    for (;;) {
        size_t used;
        int rc = http_parser_execute(&r->parser, r->buf, r->len, &used);
        drop(r, used);
        if (rc == HTTP_PARSE_DONE || rc < 0)
            return rc;
        ssize_t n = fill(r);
        if (n == 0) {
            if (!any)
                return -ENODATA;
            rc = http_parser_finish(&r->parser);
            return rc;
        }
        if (n < 0)
            return (int)n;
        any = true;
    }
}

int http_harness_exchange(int port, const char *req, size_t len, struct http_harness_reader *r)
{
    int fd = http_harness_connect(port);
    if (fd < 0)
        return fd;
    int rc = http_harness_send(fd, req, len);
    if (rc == 0) {
        http_harness_reader_init(r, fd);
        rc = http_harness_read_response(r);
    }
    close(fd);
    return rc;
}

int http_harness_read_head(struct http_harness_reader *r, char *out, size_t cap)
{
    for (;;) {
        char *end = memmem(r->buf, r->len, "\r\n\r\n", 4);
        if (end != NULL) {
            size_t n = (size_t)(end + 4 - r->buf);
            if (n >= cap)
                return -ENOSPC;
            memcpy(out, r->buf, n);
            out[n] = '\0';
            drop(r, n);
            return 0;
        }
        ssize_t got = fill(r);
        if (got == 0)
            return -ENODATA;
        if (got < 0)
            return (int)got;
    }
}

int http_harness_read_eof(struct http_harness_reader *r)
{
    if (r->len > 0)
        return 1;
    ssize_t n = fill(r);
    if (n == 0)
        return 0;
    if (n > 0)
        return 1;
    return (int)n;
}

int http_harness_count_fds(void)
{
    /* libuv opens a process-wide signal pipe with the first loop and keeps it: open it now so
     * that it is in every count. */
    static bool warmed;
    if (!warmed) {
        uv_loop_t l;
        if (uv_loop_init(&l) == 0)
            uv_loop_close(&l);
        warmed = true;
    }
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -errno;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own fd */
}
