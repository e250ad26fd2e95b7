/* RFC 6455 framing (common/ws_frame): masking against a byte-at-a-time reference at every
 * length and phase; headers of every length form; fresh mask keys; the receiver fed a mixed
 * stream (fragments with a ping between them, empty, 16- and 64-bit lengths, binary, a UTF-8
 * character cut by a fragment boundary) whole, split at every byte and a byte at a time, with the
 * same messages out; whole messages handed up in place; every violation and its error; nothing
 * read after a close or an error; no buffer held between messages. */
#include "common/ws_frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/testing.h"

TEST(ws_frame_mask_matches_bytewise)
{
    uint8_t src[200], dst[200], ref[200];
    const uint8_t key[4] = {0x12, 0xab, 0x00, 0xff};
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len <= 70; len++) {
        for (uint64_t off = 0; off < 9; off++) {
            for (size_t i = 0; i < len; i++)
                ref[i] = src[i] ^ key[(off + i) % 4];
            memset(dst, 0xee, sizeof dst);
            ws_frame_mask(dst, src, len, key, off);
            CHECK_MSG(memcmp(dst, ref, len) == 0 && dst[len] == 0xee, "len %zu off %llu", len,
                      (unsigned long long)off);
            memcpy(dst, src, len); /* in place */
            ws_frame_mask(dst, dst, len, key, off);
            CHECK(memcmp(dst, ref, len) == 0);
        }
    }
}

TEST(ws_frame_head_write_forms)
{
    uint8_t h[WS_FRAME_HEAD_MAX];
    const uint8_t key[4] = {1, 2, 3, 4};
    CHECK_EQ(ws_frame_head_write(h, WS_OP_TEXT, 0, NULL), 2);
    CHECK(h[0] == 0x81 && h[1] == 0);
    CHECK_EQ(ws_frame_head_write(h, WS_OP_CLOSE, 125, key), 6);
    CHECK(h[0] == 0x88 && h[1] == (0x80 | 125) && memcmp(h + 2, key, 4) == 0);
    CHECK_EQ(ws_frame_head_write(h, WS_OP_BINARY, 126, NULL), 4);
    CHECK(h[0] == 0x82 && h[1] == 126 && h[2] == 0 && h[3] == 126);
    CHECK_EQ(ws_frame_head_write(h, WS_OP_TEXT, 65535, key), 8);
    CHECK(h[1] == (0x80 | 126) && h[2] == 0xff && h[3] == 0xff);
    CHECK_EQ(ws_frame_head_write(h, WS_OP_TEXT, 65536, NULL), 10);
    CHECK(h[1] == 127 && h[2] == 0 && h[7] == 1 && h[8] == 0 && h[9] == 0);
    CHECK_EQ(ws_frame_head_write(h, WS_OP_TEXT, 0x0123456789ull, key), 14);
    CHECK(h[1] == (0xff) && h[5] == 0x01 && h[9] == 0x89 && memcmp(h + 10, key, 4) == 0);
}

TEST(ws_frame_mask_keys_are_fresh)
{
    uint32_t seen[1000];
    int repeats = 0;
    for (int i = 0; i < 1000; i++) {
        uint8_t k[4];
        ws_frame_mask_key(k);
        memcpy(&seen[i], k, 4);
        for (int j = 0; j < i; j++)
            repeats += seen[j] == seen[i];
    }
    CHECK_MSG(repeats <= 1, "%d repeated keys in 1000", repeats); /* birthday odds: ~1e-4 */
}

TEST(ws_frame_close_codes)
{
    CHECK(ws_frame_close_code_valid(1000) && ws_frame_close_code_valid(1011));
    CHECK(ws_frame_close_code_valid(3000) && ws_frame_close_code_valid(4999));
    CHECK(!ws_frame_close_code_valid(999) && !ws_frame_close_code_valid(1004));
    CHECK(!ws_frame_close_code_valid(1005) && !ws_frame_close_code_valid(1006));
    CHECK(!ws_frame_close_code_valid(1012) && !ws_frame_close_code_valid(2999));
    CHECK(!ws_frame_close_code_valid(5000) && !ws_frame_close_code_valid(0));
}

/* ---- the receiver ------------------------------------------------------------------------- */

/* A peer's frame, fin and rsv and length form chosen by the test; masked with a fixed key. */
static size_t mk(uint8_t *f, int fin, unsigned opcode, const void *payload, size_t len, int masked)
{
    uint8_t key[4] = {0xa1, 0x5b, 0x3c, 0x77};
    size_t n = ws_frame_head_write(f, opcode, len, masked ? key : NULL);
    if (!fin)
        f[0] &= 0x7f;
    if (len > 0)
        ws_frame_mask(f + n, payload, len, masked ? key : (const uint8_t *)"\0\0\0\0", 0);
    return n + len;
}

/* What the receiver handed up, one line per message: "op:len:first bytes". */
struct got {
    char log[8192];
    size_t log_len;
    const uint8_t *in_lo, *in_hi; /* the input buffer, to see what came in place */
    int in_place, calls, stop_after;
    struct ws_frame_rx *nested; /* fed from inside the callback */
    const uint8_t *nested_in;
    size_t nested_len;
    struct got *nested_got;
};

static int got_msg(void *arg, unsigned opcode, const uint8_t *msg, size_t len)
{
    struct got *g = arg;
    g->calls++;
    if (g->in_lo != NULL && msg >= g->in_lo && msg < g->in_hi)
        g->in_place++;
    if (g->nested != NULL) { /* before looking at msg: it must survive this */
        CHECK_EQ(ws_frame_rx_input(g->nested, g->nested_in, g->nested_len, got_msg, g->nested_got),
                 0);
        g->nested = NULL;
    }
    char content[40];
    size_t cl = len < 30 ? len : 30;
    for (size_t i = 0; i < cl; i++)
        content[i] = msg[i] >= 0x20 && msg[i] < 0x7f ? (char)msg[i] : '.';
    content[cl] = '\0';
    uint32_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum = sum * 31 + msg[i];
    int n = snprintf(g->log + g->log_len, sizeof g->log - g->log_len, "%u:%zu:%08x:%s\n", opcode,
                     len, sum, content);
    CHECK(n > 0 && (size_t)n < sizeof g->log - g->log_len);
    g->log_len += (size_t)n;
    return g->stop_after != 0 && g->calls >= g->stop_after;
}

/* A stream with a bit of everything; returns its length. */
static size_t mixed_stream(uint8_t *s, int masked)
{
    static uint8_t big[70000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)('a' + i % 26);
    size_t n = 0;
    n += mk(s + n, 1, WS_OP_TEXT, "hello", 5, masked);
    n += mk(s + n, 0, WS_OP_TEXT, "caf\xc3", 4, masked); /* an e-acute cut in two */
    n += mk(s + n, 1, WS_OP_PING, "p1", 2, masked);
    n += mk(s + n, 0, WS_OP_CONTINUATION, "\xa9 ", 2, masked);
    n += mk(s + n, 0, WS_OP_CONTINUATION, "", 0, masked);
    n += mk(s + n, 1, WS_OP_CONTINUATION, "au lait", 7, masked);
    n += mk(s + n, 1, WS_OP_TEXT, "", 0, masked);
    n += mk(s + n, 1, WS_OP_BINARY, "\x00\xff\xc3", 3, masked);
    n += mk(s + n, 1, WS_OP_PONG, "", 0, masked);
    n += mk(s + n, 1, WS_OP_TEXT, big, 300, masked);        /* 16-bit length */
    n += mk(s + n, 1, WS_OP_TEXT, big, sizeof big, masked); /* 64-bit length */
    n += mk(s + n, 0, WS_OP_BINARY, big, 1000, masked);
    n += mk(s + n, 1, WS_OP_CONTINUATION, big + 1000, 9000, masked);
    n += mk(s + n, 1, WS_OP_CLOSE, "\x03\xe8ok", 4, masked);
    n += mk(s + n, 1, WS_OP_TEXT, "after the close", 15, masked);
    return n;
}

static void feed_pieces(struct ws_frame_rx *rx, const uint8_t *s, size_t n, size_t cut1,
                        size_t step, struct got *g)
{
    CHECK_EQ(ws_frame_rx_input(rx, s, cut1, got_msg, g), 0);
    for (size_t off = cut1; off < n; off += step) {
        size_t m = n - off < step ? n - off : step;
        CHECK_EQ(ws_frame_rx_input(rx, s + off, m, got_msg, g), 0);
    }
}

TEST(ws_frame_rx_split_anywhere_same_messages)
{
    static uint8_t s[100000];
    static struct got whole, piece;
    for (int masked = 0; masked < 2; masked++) {
        size_t n = mixed_stream(s, masked);
        struct ws_frame_rx rx;
        memset(&whole, 0, sizeof whole);
        ws_frame_rx_init(&rx, masked, 100000);
        CHECK_EQ(ws_frame_rx_input(&rx, s, n, got_msg, &whole), 0);
        ws_frame_rx_free(&rx);
        CHECK_EQ(whole.calls, 10); /* the text after the close is not read */
        CHECK_MSG(strstr(whole.log, "1:5:") == whole.log, "%s", whole.log);
        CHECK_MSG(strstr(whole.log, "1:13:") != NULL && strstr(whole.log, "caf.. au lait"), "%s",
                  whole.log);
        CHECK(strstr(whole.log, "9:2:") != NULL && strstr(whole.log, "10:0:") != NULL);
        CHECK(strstr(whole.log, "1:70000:") != NULL && strstr(whole.log, "2:10000:") != NULL);
        CHECK(strstr(whole.log, "8:4:") != NULL && strstr(whole.log, "after") == NULL);
        /* two pieces, cut at every byte of the small frames and around every header */
        for (size_t cut = 0; cut <= n; cut += cut < 400 ? 1 : 997) {
            memset(&piece, 0, sizeof piece);
            ws_frame_rx_init(&rx, masked, 100000);
            feed_pieces(&rx, s, n, cut, n, &piece);
            ws_frame_rx_free(&rx);
            CHECK_MSG(strcmp(piece.log, whole.log) == 0, "masked %d cut %zu", masked, cut);
        }
        /* small reads */
        static const size_t steps[] = {1, 2, 3, 7, 13, 1500};
        for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
            memset(&piece, 0, sizeof piece);
            ws_frame_rx_init(&rx, masked, 100000);
            feed_pieces(&rx, s, n, 0, steps[i], &piece);
            ws_frame_rx_free(&rx);
            CHECK_MSG(strcmp(piece.log, whole.log) == 0, "masked %d step %zu", masked, steps[i]);
        }
    }
}

TEST(ws_frame_rx_whole_messages_in_place)
{
    static uint8_t s[20000], payload[9000];
    memset(payload, 'z', sizeof payload);
    /* client side (unmasked): whole frames are handed up where they lie */
    size_t n = mk(s, 1, WS_OP_TEXT, payload, 6600, 0);
    n += mk(s + n, 1, WS_OP_TEXT, "x", 1, 0);
    struct ws_frame_rx rx;
    struct got g = {.in_lo = s, .in_hi = s + n};
    ws_frame_rx_init(&rx, 0, 1 << 20);
    CHECK_EQ(ws_frame_rx_input(&rx, s, n, got_msg, &g), 0);
    CHECK_EQ(g.calls, 2);
    CHECK_EQ(g.in_place, 2);
    CHECK(rx.buf == NULL);
    /* split across reads: joined, and the buffer is gone once delivered */
    memset(&g, 0, sizeof g);
    g.in_lo = s, g.in_hi = s + n;
    CHECK_EQ(ws_frame_rx_input(&rx, s, 3000, got_msg, &g), 0);
    CHECK(rx.buf != NULL);
    CHECK_EQ(ws_frame_rx_input(&rx, s + 3000, n - 3000, got_msg, &g), 0);
    CHECK_EQ(g.calls, 2);
    CHECK_EQ(g.in_place, 1); /* the second, whole in the second read */
    CHECK(rx.buf == NULL);
    /* a header alone in one read, its payload whole in the next: in place too */
    memset(&g, 0, sizeof g);
    g.in_lo = s, g.in_hi = s + n;
    CHECK_EQ(ws_frame_rx_input(&rx, s, 4, got_msg, &g), 0);
    CHECK(rx.buf == NULL);
    CHECK_EQ(ws_frame_rx_input(&rx, s + 4, n - 4, got_msg, &g), 0);
    CHECK_EQ(g.in_place, 2);
    ws_frame_rx_free(&rx);
    /* server side (masked): the same messages, unmasked, not in the input */
    n = mk(s, 1, WS_OP_TEXT, payload, 6600, 1);
    n += mk(s + n, 1, WS_OP_TEXT, payload, 9000, 1); /* larger than the thread's buffer */
    memset(&g, 0, sizeof g);
    g.in_lo = s, g.in_hi = s + n;
    ws_frame_rx_init(&rx, 1, 1 << 20);
    CHECK_EQ(ws_frame_rx_input(&rx, s, n, got_msg, &g), 0);
    CHECK_EQ(g.calls, 2);
    CHECK_EQ(g.in_place, 0);
    CHECK_MSG(strstr(g.log, "1:6600:") != NULL && strstr(g.log, "1:9000:") != NULL &&
                  strstr(g.log, "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"),
              "%s", g.log);
    CHECK(rx.buf == NULL);
    ws_frame_rx_free(&rx);
}

/* A callback that feeds another connection on the same thread: the per-thread unmasking buffer
 * must not be shared between the two messages. */
TEST(ws_frame_rx_nested_input_keeps_messages_apart)
{
    uint8_t a[256], b[256];
    size_t na = mk(a, 1, WS_OP_TEXT, "first connection's message", 26, 1);
    size_t nb = mk(b, 1, WS_OP_TEXT, "the second one, nested", 22, 1);
    struct ws_frame_rx ra, rb;
    ws_frame_rx_init(&ra, 1, 1000);
    ws_frame_rx_init(&rb, 1, 1000);
    static struct got ga, gb;
    memset(&ga, 0, sizeof ga);
    memset(&gb, 0, sizeof gb);
    ga.nested = &rb, ga.nested_in = b, ga.nested_len = nb, ga.nested_got = &gb;
    CHECK_EQ(ws_frame_rx_input(&ra, a, na, got_msg, &ga), 0);
    CHECK_MSG(strstr(ga.log, ":first connection's message") != NULL, "%s", ga.log);
    CHECK_MSG(strstr(gb.log, ":the second one, nested") != NULL, "%s", gb.log);
    ws_frame_rx_free(&ra);
    ws_frame_rx_free(&rb);
}

static int rx_error(int server, size_t max_message, const uint8_t *s, size_t n, int *calls)
{
    struct ws_frame_rx rx;
    struct got g = {0};
    ws_frame_rx_init(&rx, server, max_message);
    int rc = ws_frame_rx_input(&rx, s, n, got_msg, &g);
    /* whatever comes next is ignored */
    uint8_t more[16];
    size_t mn = mk(more, 1, WS_OP_TEXT, "more", 4, server);
    int calls_before = g.calls;
    if (rc != 0)
        CHECK_EQ(ws_frame_rx_input(&rx, more, mn, got_msg, &g), 0);
    CHECK_EQ(g.calls, calls_before);
    ws_frame_rx_free(&rx);
    if (calls != NULL)
        *calls = g.calls;
    return rc;
}

TEST(ws_frame_rx_violations)
{
    uint8_t f[512];
    size_t n;
    /* framing: -EBADMSG, as soon as the bytes show it */
    const uint8_t long_ping[] = {0x89, 0xfe};
    CHECK_EQ(rx_error(1, 1000, long_ping, 2, NULL), -EBADMSG);
    const uint8_t frag_ping[] = {0x09, 0x80};
    CHECK_EQ(rx_error(1, 1000, frag_ping, 2, NULL), -EBADMSG);
    const uint8_t short16[] = {0x81, 0x7e, 0x00, 0x7d};
    CHECK_EQ(rx_error(0, 1000, short16, 4, NULL), -EBADMSG);
    const uint8_t short64[] = {0x81, 0x7f, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    CHECK_EQ(rx_error(0, 1 << 20, short64, 10, NULL), -EBADMSG);
    const uint8_t top64[] = {0x81, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0};
    CHECK_EQ(rx_error(0, 1 << 20, top64, 10, NULL), -EBADMSG);
    /* protocol: -EPROTO */
    n = mk(f, 1, WS_OP_TEXT, "x", 1, 1);
    f[0] |= 0x40; /* RSV1: no extension was agreed */
    CHECK_EQ(rx_error(1, 1000, f, n, NULL), -EPROTO);
    n = mk(f, 1, WS_OP_TEXT, "x", 1, 0);
    CHECK_EQ(rx_error(1, 1000, f, n, NULL), -EPROTO); /* a client must mask */
    n = mk(f, 1, WS_OP_TEXT, "x", 1, 1);
    CHECK_EQ(rx_error(0, 1000, f, n, NULL), -EPROTO); /* a server must not */
    for (unsigned op = 3; op < 16; op++) {
        if (op == WS_OP_CLOSE || op == WS_OP_PING || op == WS_OP_PONG)
            continue;
        n = mk(f, 1, op, "x", 1, 1);
        CHECK_MSG(rx_error(1, 1000, f, n, NULL) == -EPROTO, "opcode %u", op);
    }
    n = mk(f, 1, WS_OP_CONTINUATION, "x", 1, 1);
    CHECK_EQ(rx_error(1, 1000, f, n, NULL), -EPROTO);
    n = mk(f, 0, WS_OP_TEXT, "a", 1, 1);
    n += mk(f + n, 1, WS_OP_BINARY, "b", 1, 1);
    CHECK_EQ(rx_error(1, 1000, f, n, NULL), -EPROTO);
    n = mk(f, 1, WS_OP_CLOSE, "\x03", 1, 1);
    CHECK_EQ(rx_error(1, 1000, f, n, NULL), -EPROTO);
    static const char *const bad_codes[] = {"\x03\xe7", "\x03\xed", "\x03\xee", "\x03\xf4",
                                            "\x0b\xb7", "\x13\x88", "\x00\x00"};
    for (size_t i = 0; i < sizeof bad_codes / sizeof bad_codes[0]; i++) {
        n = mk(f, 1, WS_OP_CLOSE, bad_codes[i], 2, 1);
        CHECK_MSG(rx_error(1, 1000, f, n, NULL) == -EPROTO, "code %zu", i);
    }
    /* UTF-8: -EILSEQ, in a whole text, across fragments, in a close reason */
    n = mk(f, 1, WS_OP_TEXT, "\xc3\x28", 2, 1);
    CHECK_EQ(rx_error(1, 1000, f, n, NULL), -EILSEQ);
    n = mk(f, 1, WS_OP_TEXT, "\xed\xa0\x80", 3, 0);
    CHECK_EQ(rx_error(0, 1000, f, n, NULL), -EILSEQ);
    n = mk(f, 0, WS_OP_TEXT, "ok\xe2\x82", 4, 1);
    n += mk(f + n, 1, WS_OP_CONTINUATION, "", 0, 1); /* the euro sign never finished */
    CHECK_EQ(rx_error(1, 1000, f, n, NULL), -EILSEQ);
    n = mk(f, 0, WS_OP_TEXT, "\xf4", 1, 1);
    n += mk(f + n, 1, WS_OP_CONTINUATION, "\x90\x80\x80", 3, 1); /* > U+10FFFF across frames */
    CHECK_EQ(rx_error(1, 1000, f, n, NULL), -EILSEQ);
    n = mk(f, 1, WS_OP_CLOSE, "\x03\xe8\xff", 3, 1);
    CHECK_EQ(rx_error(1, 1000, f, n, NULL), -EILSEQ);
    n = mk(f, 1, WS_OP_BINARY, "\xff", 1, 1); /* binary is not text */
    int calls;
    CHECK_EQ(rx_error(1, 1000, f, n, &calls), 0);
    CHECK_EQ(calls, 1);
    /* size: -EMSGSIZE at the header, alone or fragments together */
    n = mk(f, 1, WS_OP_TEXT, "0123456789", 10, 1);
    CHECK_EQ(rx_error(1, 10, f, n, &calls), 0);
    CHECK_EQ(rx_error(1, 9, f, 6, NULL), -EMSGSIZE); /* the header alone is enough */
    n = mk(f, 0, WS_OP_TEXT, "01234", 5, 1);
    n += mk(f + n, 1, WS_OP_CONTINUATION, "56789", 5, 1);
    CHECK_EQ(rx_error(1, 10, f, n, NULL), 0);
    CHECK_EQ(rx_error(1, 9, f, n, &calls), -EMSGSIZE);
    CHECK_EQ(calls, 0);
    const uint8_t huge[] = {0x82, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    CHECK_EQ(rx_error(1, 1 << 20, huge, sizeof huge, NULL), -EMSGSIZE);
    /* control frames may come in the middle of a message that is at its limit */
    n = mk(f, 0, WS_OP_TEXT, "01234", 5, 1);
    n += mk(f + n, 1, WS_OP_PING, "ping payload", 12, 1);
    n += mk(f + n, 1, WS_OP_CONTINUATION, "", 0, 1);
    CHECK_EQ(rx_error(1, 5, f, n, &calls), 0);
    CHECK_EQ(calls, 2);
}

TEST(ws_frame_rx_stop_leaves_the_rest)
{
    uint8_t f[256];
    size_t n = mk(f, 1, WS_OP_TEXT, "one", 3, 0);
    n += mk(f + n, 1, WS_OP_TEXT, "two", 3, 0);
    struct ws_frame_rx rx;
    struct got g = {.stop_after = 1};
    ws_frame_rx_init(&rx, 0, 1000);
    CHECK_EQ(ws_frame_rx_input(&rx, f, n, got_msg, &g), 0);
    CHECK_EQ(g.calls, 1);
    ws_frame_rx_free(&rx);
}
