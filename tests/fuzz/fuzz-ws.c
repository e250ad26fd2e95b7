/* Fuzz target for common/ws: arbitrary bytes as WebSocket frames into a ws (server side, or
 * client side) over an in-memory transport, in arbitrary pieces, with echoes and an early local
 * close mixed in; checks memory safety, that no message over the limit is delivered, that the
 * connection ends with exactly one on_close. In the structured form the data describes frames
 * (opcode, FIN, length, payload, a deliberate fault) that are encoded as a real peer would, so
 * fragments, control frames between them, UTF-8 cut by fragment boundaries and every violation
 * are reached at once; a plain model of RFC 6455 (with a reference UTF-8 decoder) then says which
 * messages must arrive and with which code the connection must close. Other modes feed arbitrary
 * header values, or an arbitrary HTTP request, to the server's upgrade check and check the shape
 * of the answer. Input: byte 0 = mode (bits 0-1: 0/1 frames as server/client, 2 header values,
 * 3 request; bit 2 close first; bits 3-5 piece size seed; bit 7 structured frames), byte 1 =
 * max_message selector, rest = data. */
#include "common/ws.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/http_parser.h"
#include "common/ws_frame.h"
#include "tests/lib/utf8_ref.h"

static uv_loop_t loop;
static int loop_ready;

#define FZ_MAX_MSGS 256

/* A message as delivered or expected: opcode, length, FNV-1a of the bytes. */
struct fz_msg {
    unsigned opcode;
    size_t len;
    uint32_t hash;
};

struct fz {
    struct ws ws;
    size_t out_bytes;
    size_t max_message;
    int flush_req, close_req, closes, texts;
    int close_code;
    struct fz_msg got[FZ_MAX_MSGS];
    size_t n_got;
};

static uint32_t fz_hash(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static void fz_record(struct fz *f, unsigned opcode, const uint8_t *msg, size_t len)
{
    if (f->n_got < FZ_MAX_MSGS)
        f->got[f->n_got++] = (struct fz_msg){opcode, len, fz_hash(msg, len)};
}

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
    fz_record(f, 1, (const uint8_t *)msg, len);
    if (f->texts++ % 3 == 0)
        ws_send_text(ws, msg, len); /* exercise the send path; refusals are fine */
}

static void fz_on_binary(struct ws *ws, const uint8_t *msg, size_t len)
{
    struct fz *f = ws->data;
    if (len > f->max_message)
        abort();
    fz_record(f, 2, msg, len);
    ws_send_binary(ws, msg, len);
}

static void fz_on_close(struct ws *ws, int code, const char *reason, size_t len)
{
    struct fz *f = ws->data;
    f->closes++;
    f->close_code = code;
    if (code < 1000 || code > 4999 || len > 200 || (len > 0 && reason == NULL))
        abort();
}

static const struct ws_callbacks fz_cb = {NULL, fz_on_text, fz_on_binary, fz_on_close, NULL};

/* ---- structured frames and the model ------------------------------------------------------ */

/* Could p[0..n) still begin a valid text? Valid, or valid up to a last character that some
 * continuation bytes would complete. */
static int ref_utf8_prefix(const uint8_t *p, size_t n)
{
    if (utf8_ref_valid(p, n))
        return 1;
    size_t j = n;
    while (j > 0 && n - j < 4 && (p[j - 1] & 0xc0) == 0x80)
        j--;
    if (j == 0 || n - j >= 4)
        return 0;
    j--; /* the last lead byte */
    if (!utf8_ref_valid(p, j))
        return 0;
    static const uint8_t cont[] = {0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf};
    uint8_t c[8];
    size_t have = n - j;
    memcpy(c, p + j, have);
    for (size_t add = 1; have + add <= 4; add++)
        for (unsigned combo = 0; combo < 216; combo++) { /* 6^3 choices */
            unsigned x = combo;
            for (size_t i = 0; i < add; i++, x /= 6)
                c[have + i] = cont[x % 6];
            if (utf8_ref_valid(c, have + add))
                return 1;
        }
    return 0;
}

/* The model's verdict: the messages to deliver, then how the connection ends. */
struct fz_model {
    struct fz_msg want[FZ_MAX_MSGS];
    size_t n_want;
    int code; /* 1002/1007/1009 ours, the peer's close code (1005 none), 1006 no close */
};

/* Encodes the description in d into frames as the peer would send them (s: we are the server,
 * so it masks) into out, and works out what common/ws must do with them. Record: ctl byte (bits
 * 0-2 opcode from {cont, text, binary, close, ping, pong, text, binary}, bit 3 FIN, bit 4 length
 * in a longer form than needed, bits 5-6 fault: RSV1, wrong masking, reserved opcode), length
 * byte, then that many payload bytes (fewer if the data ends). */
static size_t fz_build(int server, size_t max_message, const uint8_t *d, size_t n, uint8_t *out,
                       size_t cap, struct fz_model *m)
{
    static const unsigned ops[8] = {0, 1, 2, 8, 9, 10, 1, 2};
    static uint8_t msg[70000];
    size_t msg_len = 0, o = 0;
    unsigned msg_op = 0;
    int done = 0;
    memset(m, 0, sizeof *m);
    m->code = 1006;
    size_t i = 0;
    while (i + 2 <= n && o + 14 + 255 <= cap) {
        unsigned ctl = d[i], len = d[i + 1];
        i += 2;
        if (len > n - i)
            len = (unsigned)(n - i);
        const uint8_t *pl = d + i;
        i += len;
        unsigned op = ops[ctl & 7], fin = (ctl >> 3) & 1, longer = (ctl >> 4) & 1;
        unsigned fault = (ctl >> 5) & 3;
        if (fault == 3)
            op = (op & 8) ? 0xb : 0x3;
        int masked = fault == 2 ? !server : server;
        uint8_t key[4] = {(uint8_t)(i * 7), (uint8_t)(ctl + 3), (uint8_t)len, 0x5c};
        /* the header, by hand: the faults are what a codec would not write */
        out[o++] = (uint8_t)((fin ? 0x80 : 0) | (fault == 1 ? 0x40 : 0) | op);
        uint8_t mbit = masked ? 0x80 : 0;
        unsigned len7;
        if (len < 126 && !longer) {
            len7 = len;
            out[o++] = (uint8_t)(mbit | len);
        } else if (len < 126 || !longer) {
            len7 = 126;
            out[o++] = mbit | 126;
            out[o++] = 0;
            out[o++] = (uint8_t)len;
        } else {
            len7 = 127;
            out[o++] = mbit | 127;
            memset(out + o, 0, 7);
            out[o + 7] = (uint8_t)len;
            o += 8;
        }
        if (masked) {
            memcpy(out + o, key, 4);
            o += 4;
        }
        for (unsigned k = 0; k < len; k++)
            out[o + k] = masked ? pl[k] ^ key[k % 4] : pl[k];
        o += len;
        if (done)
            continue; /* bytes after the end: sent, never looked at */
        /* what common/ws must make of it, in the order RFC 6455 checks come */
        int err = 0; /* 1002, 1007, 1009 */
        int ctrl = (op & 8) != 0;
        if (ctrl && (len7 > 125 || !fin))
            err = 1002;
        else if (longer)
            err = 1002; /* the length not in its shortest form */
        else if (fault == 1 || fault == 2 || fault == 3)
            err = 1002;
        else if (op == 0 && msg_op == 0)
            err = 1002;
        else if ((op == 1 || op == 2) && msg_op != 0)
            err = 1002;
        else if (!ctrl && msg_len + len > max_message)
            err = 1009;
        if (err == 0 && !ctrl) {
            if (op != 0)
                msg_op = op;
            memcpy(msg + msg_len, pl, len);
            msg_len += len;
            if (msg_op == 1 && !(fin ? utf8_ref_valid(msg, msg_len) : ref_utf8_prefix(msg, msg_len)))
                err = 1007;
            else if (fin) {
                if (m->n_want < FZ_MAX_MSGS)
                    m->want[m->n_want++] = (struct fz_msg){msg_op, msg_len, fz_hash(msg, msg_len)};
                msg_op = 0;
                msg_len = 0;
            }
        } else if (err == 0 && op == 8) {
            if (len == 1 || (len >= 2 && !ws_frame_close_code_valid((unsigned)pl[0] << 8 | pl[1])))
                err = 1002;
            else if (len > 2 && !utf8_ref_valid(pl + 2, len - 2))
                err = 1007;
            else {
                m->code = len >= 2 ? pl[0] << 8 | pl[1] : 1005;
                done = 1;
            }
        }
        if (err != 0) {
            m->code = err;
            done = 1;
        }
    }
    return o;
}

static void fuzz_frames(int client, int close_first, unsigned seed, size_t max_message,
                        const uint8_t *data, size_t size, int structured)
{
    static struct fz f;
    static uint8_t built[1 << 18];
    static struct fz_model model;
    if (structured) {
        size = fz_build(!client, max_message, data, size, built, sizeof built, &model);
        data = built;
    }
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
    if (!structured)
        return;
    if (close_first) {
        if (f.n_got != 0)
            abort(); /* nothing is delivered after ws_close */
        return;
    }
    if (f.n_got != model.n_want || f.close_code != model.code)
        abort();
    for (size_t i = 0; i < f.n_got; i++)
        if (f.got[i].opcode != model.want[i].opcode || f.got[i].len != model.want[i].len ||
            f.got[i].hash != model.want[i].hash)
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
        fuzz_frames(mode == 1, close_first, seed, max_message, data, size, data[-2] >> 7);
    else if (mode == 2)
        fuzz_header_values(data, size);
    else
        fuzz_request(data, size);
    return 0;
}
