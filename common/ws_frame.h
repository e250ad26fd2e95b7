/* RFC 6455 framing for common/ws, both ways, with no I/O: incoming bytes, in whatever pieces the
 * transport reads them, become whole messages and control frames (fragments joined, masks
 * removed, text checked as UTF-8, limits enforced, every violation named); outgoing frames get
 * their header and, from a client, their mask. Ours rather than wslay's frame layer, which
 * copies all input through a 4 KiB buffer and masks a byte at a time (tests/bench/bench-ws.c
 * measures both). A message that arrives whole in one read is handed up where it lies; only one
 * split across reads or fragments is copied, into a buffer sized from its headers. */
#ifndef VB_COMMON_WS_FRAME_H
#define VB_COMMON_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum {
    WS_OP_CONTINUATION = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xa,
};

#define WS_FRAME_HEAD_MAX 14     /* 2 + 8 bytes of length + 4 of mask */
#define WS_FRAME_CONTROL_MAX 125 /* payload of a control frame */

/* ---- sending ---- */

/* Writes the header of a final (unfragmented) frame of len payload bytes into out; key NULL
 * for an unmasked (server) frame. Returns the header's length, 2 to 14. */
size_t ws_frame_head_write(uint8_t out[WS_FRAME_HEAD_MAX], unsigned opcode, uint64_t len,
                           const uint8_t *key);

/* dst[i] = src[i] ^ key[(off + i) % 4] for i < n, a word at a time (dst may equal src): masks
 * or unmasks payload bytes off.. of a frame. */
void ws_frame_mask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t key[4], uint64_t off);

/* A fresh key for one client frame. RFC 6455 5.3 wants keys the peer cannot predict, not
 * secrets: a per-thread xorshift generator seeded from getrandom, never blocking. */
void ws_frame_mask_key(uint8_t key[4]);

/* True for the close codes a peer may send (RFC 6455 7.4): 1000-1011 but 1004-1006, and
 * 3000-4999. */
int ws_frame_close_code_valid(unsigned code);

/* ---- receiving ---- */

/* One direction's parsing state; embedded in struct ws. Private to ws_frame.c. */
struct ws_frame_rx {
    uint64_t left; /* payload bytes of the current frame still to come */
    uint64_t off;  /* payload bytes of the current frame seen (the mask's phase) */
    uint8_t *buf;  /* the data message being joined (malloc'd, owned); NULL when none */
    size_t buf_len, buf_cap;
    size_t max_message;
    uint32_t utf8; /* utf8_check state of the text being joined */
    uint8_t key[4];
    uint8_t head[WS_FRAME_HEAD_MAX]; /* a header cut by the end of a read */
    uint8_t head_len;
    uint8_t state;
    uint8_t opcode, fin, masked; /* the current frame's */
    uint8_t msg_opcode;          /* text or binary while a message is under way, else 0 */
    uint8_t server;              /* frames must come masked */
    uint8_t ctrl_len;
    uint8_t ctrl[WS_FRAME_CONTROL_MAX]; /* the current control frame's payload */
};

/* server: we are the server (frames must be masked, RFC 6455 5.1); max_message: the largest
 * data message accepted, fragments together. */
void ws_frame_rx_init(struct ws_frame_rx *rx, int server, size_t max_message);

/* Frees the buffer of a message under way; rx may be initialised again after. */
void ws_frame_rx_free(struct ws_frame_rx *rx);

/* Parses data[0..len), calling on_msg(arg, ...) for each whole message: WS_OP_TEXT (valid
 * UTF-8) or WS_OP_BINARY, msg valid only during the call (it may point into data); WS_OP_PING
 * and WS_OP_PONG with their payloads; WS_OP_CLOSE with its payload (empty, or a valid code in
 * network order and a UTF-8 reason), after which the rx reads nothing more. on_msg returns
 * nonzero to stop: the rest of data is dropped unread (the connection is going away).
 * Returns 0, or the violation that ends the connection (after which input is ignored):
 *   -EBADMSG   framing broken: a control frame longer than 125 bytes or fragmented, a length
 *              not in its shortest form, a 64-bit length with the top bit set (close 1002)
 *   -EPROTO    RSV bits set (no extension was agreed), a frame masked or not against the
 *              side it came from, an unknown opcode, a continuation with nothing to continue
 *              or a new message inside a fragmented one, a close with a 1-byte payload or an
 *              invalid code (close 1002)
 *   -EILSEQ    text, or a close reason, that is not UTF-8 (close 1007)
 *   -EMSGSIZE  a data message longer than max_message, refused at its header (close 1009)
 *   -ENOMEM    no memory to join a message (close 1011) */
int ws_frame_rx_input(struct ws_frame_rx *rx, const uint8_t *data, size_t len,
                      int (*on_msg)(void *arg, unsigned opcode, const uint8_t *msg, size_t len),
                      void *arg);

#endif
