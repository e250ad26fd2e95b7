/* Fuzz target for common/ws: arbitrary bytes as WebSocket frames into a ws (server side, or
 * client side) over an in-memory transport, in arbitrary pieces, with echoes and an early local
 * close mixed in; checks memory safety, that no message over the limit is delivered, that the
 * connection ends with exactly one on_close. Other modes feed arbitrary header values, or an
 * arbitrary HTTP request, to the server's upgrade check and check the shape of the answer.
 * Input: byte 0 = mode (bits 0-1: 0/1 frames as server/client, 2 header values, 3 request;
 * bit 2 close first; bits 3-5 piece size seed), byte 1 = max_message selector, rest = data. */
#include "common/ws.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/http_parser.h"

static uv_loop_t loop;
static int loop_ready;

struct fz {
    struct ws ws;
    size_t out_bytes;
    size_t max_message;
    int flush_req, close_req, closes, texts;
};

static int fz_write(struct ws *ws, const void *d, size_t n)
{
    (void)d;
    ((struct fz *)ws->data)->out_bytes += n;
    return 0;
}

static size_t fz_pending(const struct ws *ws)
{
    (void)ws;
    return 0;
}

static void fz_flush_request(struct ws *ws)
{
    ((struct fz *)ws->data)->flush_req = 1;
}

static void fz_nop(struct ws *ws)
{
    (void)ws;
}

static void fz_close(struct ws *ws, int graceful)
{
    (void)graceful;
    ((struct fz *)ws->data)->close_req++;
}

static const struct ws_io fz_io = {fz_write, fz_pending, fz_flush_request,
                                   fz_nop,   fz_nop,     fz_close};

static void fz_on_text(struct ws *ws, const char *msg, size_t len)
{
    struct fz *f = ws->data;
    if (len > f->max_message)
        abort(); /* the limit must hold */
    if (f->texts++ % 3 == 0)
        ws_send_text(ws, msg, len); /* exercise the send path; refusals are fine */
}

static void fz_on_binary(struct ws *ws, const uint8_t *msg, size_t len)
{
    struct fz *f = ws->data;
    if (len > f->max_message)
        abort();
    ws_send_binary(ws, msg, len);
}

static void fz_on_close(struct ws *ws, int code, const char *reason, size_t len)
{
    struct fz *f = ws->data;
    f->closes++;
    if (code < 1000 || code > 4999 || len > 200 || (len > 0 && reason == NULL))
        abort();
}

static const struct ws_callbacks fz_cb = {NULL, fz_on_text, fz_on_binary, fz_on_close, NULL};

static void fuzz_frames(int client, int close_first, unsigned seed, size_t max_message,
                        const uint8_t *data, size_t size)
{
    static struct fz f;
    memset(&f, 0, sizeof f);
    f.max_message = max_message;
    f.ws.data = &f;
    struct ws_options opt = {
        .max_message = max_message, .max_send_queue = 4096, .close_timeout_ms = 1000};
    if (ws_io_start(&f.ws, &loop, !client, &fz_io, &fz_cb, &opt) != 0)
        abort();
    uv_run(&loop, UV_RUN_NOWAIT);
    if (close_first)
        ws_close(&f.ws, 1000, "fuzz");
    size_t off = 0;
    while (off < size && f.close_req == 0) {
        size_t piece = 1 + (seed = seed * 1103515245u + 12345u) % 97;
        if (seed & 0x10000)
            piece = size - off; /* sometimes all the rest at once */
        if (piece > size - off)
            piece = size - off;
        ws_io_input(&f.ws, data + off, piece);
        off += piece;
        for (int i = 0; i < 4 && f.flush_req && f.close_req == 0; i++) {
            f.flush_req = 0;
            ws_io_flush(&f.ws);
        }
    }
    if (f.close_req == 0)
        ws_io_end(&f.ws, 0);
    if (f.close_req != 1)
        abort();
    ws_io_closed(&f.ws);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (f.closes != 1)
        abort();
}

static void check_answer(int rc, const char *out, size_t len)
{
    const char *want = rc == 0                  ? "HTTP/1.1 101 "
                       : rc == -EINVAL          ? "HTTP/1.1 400 "
                       : rc == -EPROTONOSUPPORT ? "HTTP/1.1 426 "
                                                : NULL;
    if (want == NULL || len != strlen(out) || strncmp(out, want, strlen(want)) != 0)
        abort();
    if (len < 4 || memcmp(out + len - 4, "\r\n\r\n", 4) != 0) {
        if (rc == 0 || strstr(out, "\r\n\r\n{\"error\":") == NULL)
            abort();
    }
}

/* Up to four values separated by '\n' (an empty part is an absent header). */
static void fuzz_header_values(const uint8_t *data, size_t size)
{
    static char buf[8192];
    if (size >= sizeof buf)
        size = sizeof buf - 1;
    memcpy(buf, data, size);
    buf[size] = '\0';
    const char *v[4] = {NULL, NULL, NULL, NULL};
    char *p = buf;
    for (int i = 0; i < 4 && p != NULL; i++) {
        char *nl = strchr(p, '\n');
        if (nl != NULL)
            *nl = '\0';
        v[i] = *p != '\0' ? p : NULL;
        p = nl != NULL ? nl + 1 : NULL;
    }
    struct ws_upgrade up = {v[0], v[1], v[2], v[3]};
    char out[600];
    size_t len;
    check_answer(ws_handshake_response(&up, out, sizeof out, &len), out, len);
}

static void fuzz_request(const uint8_t *data, size_t size)
{
    static struct http_parser p;
    size_t used;
    http_parser_init(&p, HTTP_MSG_REQUEST, NULL, false);
    if (http_parser_execute(&p, (const char *)data, size, &used) != HTTP_PARSE_DONE)
        return;
    struct ws_upgrade up;
    ws_upgrade_from_http(&up, &p.msg);
    char out[600];
    size_t len;
    check_answer(ws_handshake_response(&up, out, sizeof out, &len), out, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    if (!loop_ready) {
        uv_loop_init(&loop);
        loop_ready = 1;
    }
    unsigned mode = data[0] & 3;
    int close_first = (data[0] >> 2) & 1;
    unsigned seed = (data[0] >> 3) | (unsigned)data[1] << 8;
    static const size_t limits[4] = {0, 1, 125, 1000};
    size_t max_message = limits[data[1] & 3];
    if (max_message == 0)
        max_message = 65536;
    data += 2;
    size -= 2;
    if (mode <= 1)
        fuzz_frames(mode == 1, close_first, seed, max_message, data, size);
    else if (mode == 2)
        fuzz_header_values(data, size);
    else
        fuzz_request(data, size);
    return 0;
}
