/* RFC 6455 framing: headers parsed from the input where they lie (copied only when a read cuts
 * one), payloads unmasked 8 bytes at a time, text validated as it arrives (common/utf8), control
 * frames collected in a fixed 125-byte buffer. A whole masked message is unmasked into a buffer
 * per thread (a loop belongs to one thread, and the message is valid only during the callback);
 * a message split across reads or fragments is joined in a malloc'd buffer sized from its
 * headers, bounded by max_message and freed once delivered, so an idle connection holds none.
 *
 *   HEAD --(header parsed and checked)--> PAYLOAD --(frame's payload all seen)--> HEAD
 *   any --(close frame delivered, or a violation)--> DONE (input ignored)                     */
#include "common/ws_frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/utf8.h"

enum {
    RX_HEAD,
    RX_PAYLOAD,
    RX_DONE,
};

/* Unmasking a whole message needs somewhere to write: masked messages up to this size use the
 * thread's buffer. Twilio's media frames are ~350 bytes; OpenAI's are unmasked (we are its
 * client) and used in place. */
#define WS_FRAME_SCRATCH 8192
static _Thread_local uint8_t ws_frame_scratch[WS_FRAME_SCRATCH];
static _Thread_local int ws_frame_scratch_busy; /* a callback fed another ws on this thread */

static _Thread_local uint64_t ws_frame_rng;

/* ---- sending ------------------------------------------------------------------------------ */

size_t ws_frame_head_write(uint8_t out[WS_FRAME_HEAD_MAX], unsigned opcode, uint64_t len,
                           const uint8_t *key)
{
    size_t n = 0;
    uint8_t mbit = key != NULL ? 0x80 : 0;
    out[n++] = (uint8_t)(0x80 | (opcode & 0xf));
    if (len < 126) {
        out[n++] = (uint8_t)(mbit | len);
    } else if (len < 65536) {
        out[n++] = mbit | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = mbit | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (uint8_t)(len >> (8 * i));
    }
    if (key != NULL) {
        memcpy(out + n, key, 4);
        n += 4;
    }
    return n;
}

void ws_frame_mask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4], uint64_t off)
{
    uint8_t k[8];
    for (int i = 0; i < 8; i++)
        k[i] = key[(off + (uint64_t)i) & 3];
    uint64_t k64;
    memcpy(&k64, k, 8); /* the key repeated, in memory order: right for either endianness */
    size_t i = 0;
    for (; n - i >= 16; i += 16) {
        uint64_t a, b;
        memcpy(&a, src + i, 8);
        memcpy(&b, src + i + 8, 8);
        a ^= k64;
        b ^= k64;
        memcpy(dst + i, &a, 8);
        memcpy(dst + i + 8, &b, 8);
    }
    if (n - i >= 8) {
        uint64_t a;
        memcpy(&a, src + i, 8);
        a ^= k64;
        memcpy(dst + i, &a, 8);
        i += 8;
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ k[i & 3];
}

static uint64_t ws_frame_rng_seed(void)
{
    uint64_t x = 0;
    ssize_t r;
    do
        r = getrandom(&x, sizeof x, GRND_NONBLOCK);
    while (r == -1 && errno == EINTR);
    if (r != (ssize_t)sizeof x || x == 0) {
        /* no entropy yet (early boot): unpredictable enough for masking, which guards
         * intermediaries against crafted bytes, not secrets */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        x ^= (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_sec ^
             (uint64_t)(uintptr_t)&x ^ (uint64_t)getpid() << 32;
        if (x == 0)
            x = 0x853c49e6748fea9bull;
    }
    return x;
}

void ws_frame_mask_key(uint8_t key[4])
{
    uint64_t x = ws_frame_rng;
    if (x == 0)
        x = ws_frame_rng_seed();
    /* xorshift64* (Vigna): a full-period generator, the high half of the product is output */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    ws_frame_rng = x;
    uint32_t k = (uint32_t)((x * 0x2545f4914f6cdd1dull) >> 32);
    memcpy(key, &k, 4);
}

int ws_frame_close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1011 && code != 1004 && code != 1005 && code != 1006) ||
           (code >= 3000 && code <= 4999);
}

/* ---- receiving ---------------------------------------------------------------------------- */

struct ws_frame_head {
    uint64_t len;
    uint8_t fin, rsv, opcode, masked;
    uint8_t key[4];
};

/* Parses a header from h[0..n): its length (2-14), 0 when more bytes are needed, or -EBADMSG.
 * What two bytes can refute is refuted at two bytes. */
static int ws_frame_head_parse(const uint8_t *h, size_t n, struct ws_frame_head *fh)
{
    if (n < 2)
        return 0;
    fh->fin = h[0] >> 7;
    fh->rsv = (h[0] >> 4) & 7;
    fh->opcode = h[0] & 0xf;
    fh->masked = h[1] >> 7;
    unsigned len7 = h[1] & 0x7f;
    if ((fh->opcode & 8) != 0 && (len7 > WS_FRAME_CONTROL_MAX || !fh->fin))
        return -EBADMSG;
    size_t hl = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (fh->masked ? 4 : 0);
    if (n < hl)
        return 0;
    const uint8_t *q = h + 2;
    uint64_t len = len7;
    if (len7 == 126) {
        len = (uint64_t)q[0] << 8 | q[1];
        q += 2;
        if (len < 126)
            return -EBADMSG;
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | q[i];
        q += 8;
        if (len >> 63 != 0 || len < 65536)
            return -EBADMSG;
    }
    fh->len = len;
    if (fh->masked)
        memcpy(fh->key, q, 4);
    return (int)hl;
}

void ws_frame_rx_init(struct ws_frame_rx *rx, int server, size_t max_message)
{
    memset(rx, 0, sizeof *rx);
    rx->server = server ? 1 : 0;
    rx->max_message = max_message;
    rx->state = RX_HEAD;
}

static void ws_frame_rx_msg_reset(struct ws_frame_rx *rx)
{
    free(rx->buf);
    rx->buf = NULL;
    rx->buf_len = rx->buf_cap = 0;
    rx->msg_opcode = 0;
    rx->utf8 = 0;
}

void ws_frame_rx_free(struct ws_frame_rx *rx)
{
    ws_frame_rx_msg_reset(rx);
    rx->state = RX_DONE;
}

static int ws_frame_rx_fail(struct ws_frame_rx *rx, int err)
{
    rx->state = RX_DONE;
    return err;
}

/* A header is complete: is the frame allowed here? */
static int ws_frame_rx_begin(struct ws_frame_rx *rx, const struct ws_frame_head *fh)
{
    if (fh->rsv != 0 || fh->masked != rx->server)
        return -EPROTO;
    switch (fh->opcode) {
    case WS_OP_CONTINUATION:
        if (rx->msg_opcode == 0)
            return -EPROTO;
        break;
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (rx->msg_opcode != 0)
            return -EPROTO;
        break;
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        break;
    default:
        return -EPROTO;
    }
    if ((fh->opcode & 8) == 0) {
        /* rx->buf_len <= max_message always holds: no overflow */
        if (fh->len > rx->max_message - rx->buf_len)
            return -EMSGSIZE;
        if (fh->opcode != WS_OP_CONTINUATION) {
            rx->msg_opcode = fh->opcode;
            rx->utf8 = 0;
        }
    }
    rx->opcode = fh->opcode;
    rx->fin = fh->fin;
    rx->masked = fh->masked;
    memcpy(rx->key, fh->key, 4);
    rx->left = fh->len;
    rx->off = 0;
    rx->ctrl_len = 0;
    rx->state = RX_PAYLOAD;
    return 0;
}

/* The control frame's payload is all in ctrl: check a close, hand it up. Returns 1 to stop. */
static int ws_frame_rx_control(struct ws_frame_rx *rx,
                               int (*on_msg)(void *, unsigned, const uint8_t *, size_t), void *arg)
{
    if (rx->opcode == WS_OP_CLOSE) {
        if (rx->ctrl_len == 1)
            return ws_frame_rx_fail(rx, -EPROTO);
        if (rx->ctrl_len >= 2) {
            if (!ws_frame_close_code_valid((unsigned)rx->ctrl[0] << 8 | rx->ctrl[1]))
                return ws_frame_rx_fail(rx, -EPROTO);
            if (utf8_validate(rx->ctrl + 2, rx->ctrl_len - 2u) != 0)
                return ws_frame_rx_fail(rx, -EILSEQ);
        }
        rx->state = RX_DONE; /* nothing is read after a close (RFC 6455 5.5.1) */
        on_msg(arg, WS_OP_CLOSE, rx->ctrl, rx->ctrl_len);
        return 1;
    }
    rx->state = RX_HEAD;
    return on_msg(arg, rx->opcode, rx->ctrl, rx->ctrl_len) != 0;
}

/* The whole frame, the whole message, is in p[0..left): hand it up without joining. Returns 1
 * when done (and sets *stop), 0 when it needs the joining path after all (masked and larger
 * than the thread's buffer, or the buffer in use), or a negative errno. */
static int ws_frame_rx_whole(struct ws_frame_rx *rx, const uint8_t *p,
                             int (*on_msg)(void *, unsigned, const uint8_t *, size_t), void *arg,
                             int *stop)
{
    size_t len = (size_t)rx->left;
    const uint8_t *msg = len > 0 ? p : (const uint8_t *)"";
    int scratch = 0;
    if (rx->masked && len > 0) {
        if (len > WS_FRAME_SCRATCH || ws_frame_scratch_busy)
            return 0;
        ws_frame_mask(ws_frame_scratch, p, len, rx->key, 0);
        msg = ws_frame_scratch;
        scratch = ws_frame_scratch_busy = 1;
    }
    int rc = 0;
    if (rx->opcode == WS_OP_TEXT && utf8_validate(msg, len) != 0) {
        rc = ws_frame_rx_fail(rx, -EILSEQ);
    } else {
        rx->left = 0;
        rx->msg_opcode = 0;
        rx->state = RX_HEAD;
        *stop = on_msg(arg, rx->opcode, msg, len) != 0;
        rc = 1;
    }
    if (scratch)
        ws_frame_scratch_busy = 0;
    return rc;
}

/* Appends the next n payload bytes of a data frame to the message being joined. */
static int ws_frame_rx_join(struct ws_frame_rx *rx, const uint8_t *p, size_t n)
{
    if (rx->off == 0 && rx->left > rx->buf_cap - rx->buf_len) {
        /* room for the whole frame at its first bytes; fragments grow the buffer by half again
         * at least, so a message in many small fragments is not copied over and over */
        size_t need = rx->buf_len + (size_t)rx->left, cap = need;
        if (!rx->fin && cap < rx->buf_cap + rx->buf_cap / 2)
            cap = rx->buf_cap + rx->buf_cap / 2;
        if (cap > rx->max_message && need <= rx->max_message)
            cap = rx->max_message;
        uint8_t *b = realloc(rx->buf, cap);
        if (b == NULL)
            return -ENOMEM;
        rx->buf = b;
        rx->buf_cap = cap;
    }
    if (n == 0)
        return 0;
    uint8_t *dst = rx->buf + rx->buf_len;
    if (rx->masked)
        ws_frame_mask(dst, p, n, rx->key, rx->off);
    else
        memcpy(dst, p, n);
    if (rx->msg_opcode == WS_OP_TEXT && utf8_check(&rx->utf8, dst, n) != 0)
        return -EILSEQ;
    rx->buf_len += n;
    return 0;
}

int ws_frame_rx_input(struct ws_frame_rx *rx, const uint8_t *data, size_t len,
                      int (*on_msg)(void *arg, unsigned opcode, const uint8_t *msg, size_t len),
                      void *arg)
{
    const uint8_t *p = data, *end = data + len;
    for (;;) {
        if (rx->state == RX_DONE)
            return 0;
        if (rx->state == RX_HEAD) {
            if (p == end)
                return 0;
            struct ws_frame_head fh;
            int hl;
            if (rx->head_len == 0) {
                hl = ws_frame_head_parse(p, (size_t)(end - p), &fh);
                if (hl == 0) { /* fewer than 14 bytes left: keep them for the next read */
                    rx->head_len = (uint8_t)(end - p);
                    memcpy(rx->head, p, rx->head_len);
                    return 0;
                }
                if (hl > 0)
                    p += hl;
            } else {
                size_t take = WS_FRAME_HEAD_MAX - rx->head_len;
                if (take > (size_t)(end - p))
                    take = (size_t)(end - p);
                memcpy(rx->head + rx->head_len, p, take);
                hl = ws_frame_head_parse(rx->head, rx->head_len + take, &fh);
                if (hl == 0) {
                    rx->head_len = (uint8_t)(rx->head_len + take);
                    return 0;
                }
                if (hl > 0) {
                    p += (size_t)hl - rx->head_len;
                    rx->head_len = 0;
                }
            }
            int rc = hl < 0 ? hl : ws_frame_rx_begin(rx, &fh);
            if (rc < 0)
                return ws_frame_rx_fail(rx, rc);
            continue;
        }

        /* RX_PAYLOAD; a frame whose payload is all seen is finished even with no input left */
        size_t avail = (size_t)(end - p);
        if (avail > rx->left)
            avail = (size_t)rx->left;
        if (avail == 0 && rx->left > 0)
            return 0; /* the header ended the read: the payload may yet come whole */
        if ((rx->opcode & 8) != 0) {
            if (rx->masked)
                ws_frame_mask(rx->ctrl + rx->ctrl_len, p, avail, rx->key, rx->off);
            else
                memcpy(rx->ctrl + rx->ctrl_len, p, avail);
            rx->ctrl_len = (uint8_t)(rx->ctrl_len + avail);
            rx->off += avail;
            rx->left -= avail;
            p += avail;
            if (rx->left > 0)
                return 0;
            int rc = ws_frame_rx_control(rx, on_msg, arg);
            if (rc != 0)
                return rc < 0 ? rc : 0;
            continue;
        }
        if (rx->opcode != WS_OP_CONTINUATION && rx->fin && rx->off == 0 && avail == rx->left) {
            int stop = 0;
            int rc = ws_frame_rx_whole(rx, p, on_msg, arg, &stop);
            if (rc < 0)
                return rc;
            if (rc > 0) {
                p += avail;
                if (stop)
                    return 0;
                continue;
            }
        }
        int rc = ws_frame_rx_join(rx, p, avail);
        if (rc < 0)
            return ws_frame_rx_fail(rx, rc);
        rx->off += avail;
        rx->left -= avail;
        p += avail;
        if (rx->left > 0)
            return 0;
        rx->state = RX_HEAD;
        if (!rx->fin)
            continue;
        if (rx->msg_opcode == WS_OP_TEXT && !utf8_check_done(rx->utf8))
            return ws_frame_rx_fail(rx, -EILSEQ);
        /* the callback may not keep msg: the buffer goes as soon as it returns */
        uint8_t *buf = rx->buf;
        size_t buf_len = rx->buf_len;
        unsigned opcode = rx->msg_opcode;
        rx->buf = NULL;
        ws_frame_rx_msg_reset(rx);
        int stop = on_msg(arg, opcode, buf != NULL ? buf : (const uint8_t *)"", buf_len);
        free(buf);
        if (stop)
            return 0;
    }
}
