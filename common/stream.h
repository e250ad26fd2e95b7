/* A byte stream over one libuv TCP handle, plain or TLS (common/tls.h), for the call threads:
 * connect by name with a deadline, or adopt an fd the worker already accepted; plaintext in
 * on_read; writes copied into a bounded output queue and sent with one uv_write per loop
 * iteration (a flush collects everything queued since the last one); high/low water marks
 * so the owner can stop reading its peer; graceful close. libuv style: the owner embeds the
 * struct, and may free it only in the close callback. All calls on the loop's thread. */
#ifndef VB_COMMON_STREAM_H
#define VB_COMMON_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct tls_config;
struct tls_session;
struct stream;
struct stream_chunk;

/* Callbacks into the owner. Any may call stream_close; none may free the stream. */
struct stream_callbacks {
    /* Connect finished (after the TLS handshake under TLS): status 0 or a negative errno
     * (-ETIMEDOUT, -ECONNREFUSED, -EHOSTUNREACH for a name that does not resolve,
     * -EKEYREJECTED for a certificate that fails verification, ...). Called once for
     * stream_connect, and for stream_adopt only under TLS. On failure the owner closes. */
    void (*on_connect)(struct stream *s, int status);
    /* Plaintext from the peer. May still arrive for the rest of one read after the owner
     * called stream_read_stop from inside on_read (at most one read buffer). */
    void (*on_read)(struct stream *s, const uint8_t *data, size_t len);
    /* Input ended: 0 for a clean end (FIN, or TLS close_notify; a TLS peer that closes TCP
     * without close_notify also counts, the protocol above detects truncation), or a negative
     * errno (read/write/TLS failure). At most once, never after on_connect failed; the owner
     * normally closes the stream. */
    void (*on_end)(struct stream *s, int err);
    /* Pending output rose to high_water (above=1) or fell back to low_water (above=0). */
    void (*on_water)(struct stream *s, int above);
    /* A flush is about to write the queue: the owner's last chance to append this iteration
     * (the WebSocket layer serialises its frames here). Optional. */
    void (*on_flush)(struct stream *s);
};

struct stream_options {
    const struct tls_config *tls; /* NULL: plain TCP. Client or server config to match the use */
    const char *tls_hostname;     /* connect: name to verify; NULL means the connect host */
    size_t max_pending;           /* stream_write refuses beyond this; 0 = 1 MiB */
    size_t high_water;            /* 0 = max_pending / 4 */
    size_t low_water;             /* 0 = high_water / 4 */
    unsigned connect_timeout_ms;  /* resolve + connect + TLS handshake; 0 = 10000 */
    unsigned close_timeout_ms;    /* graceful close: time allowed to flush; 0 = 5000 */
};

/* A FIFO of fixed-size chunks; internal, here only because struct stream embeds it. */
struct stream_queue {
    struct stream_chunk *head, *tail;
    size_t bytes;
};

struct stream {
    void *data;             /* the owner's */
    uint64_t writes;        /* read-only counters, for metrics and tests: write attempts */
    uint64_t bytes_written; /* and bytes they carried (ciphertext under TLS) */

    /* private below */
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_idle_t flusher;        /* runs the flush before the loop polls... */
    uv_check_t flusher_after; /* ...or right after it, whichever comes first */
    uv_getaddrinfo_t gai;
    uv_connect_t connect_req;
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
    uv_loop_t *loop;
    const struct stream_callbacks *cb;
    struct stream_options opt;
    struct tls_session *tls;
    char *tls_host;
    struct addrinfo *addrs, *addr_next;
    struct stream_queue out;   /* bytes for the socket (ciphertext under TLS) */
    struct stream_queue plain; /* TLS only: plaintext waiting to be encrypted */
    size_t inflight; /* bytes at the head of out handed to the current uv_write */
    void (*close_cb)(struct stream *s);
    int state;
    int handles; /* initialised handles whose close callback is still to come */
    int last_err;
    unsigned gai_pending : 1, writing : 1, reading : 1, want_read : 1, above : 1, refused : 1,
        ended : 1, broken : 1, closing : 1, graceful : 1, notify_sent : 1, shut : 1, reopening : 1,
        flush_on : 1, in_flush : 1, handles_closing : 1, client : 1,
        flush_again : 1;
};

/* Initialises s on loop with the owner's callbacks (kept by pointer; must outlive s) and
 * options (copied; the tls config must outlive s). s->data is kept. Returns 0 or -EINVAL (bad
 * limits). After success the owner must call stream_close and wait for its callback before freeing
 * s. */
int stream_init(struct stream *s, uv_loop_t *loop, const struct stream_callbacks *cb,
                const struct stream_options *opt);

/* Client: resolves host (uv_getaddrinfo), tries each address in turn, then runs the TLS
 * handshake if configured; on_connect reports the outcome within connect_timeout_ms. Returns 0
 * or a negative errno (nothing started; still close the stream). Once per stream. */
int stream_connect(struct stream *s, const char *host, unsigned port);

/* Server: takes ownership of an accepted, connected TCP socket fd (closed on failure too) and
 * starts reading. Under TLS the handshake runs first and on_connect reports it. Returns 0 or a
 * negative errno. Once per stream, instead of stream_connect. */
int stream_adopt(struct stream *s, int fd);

/* Copies len bytes into the output queue (under TLS: queued before the handshake ends too).
 * Returns 0, -ENOBUFS if the queue would exceed max_pending (nothing is queued), -EPIPE once
 * the stream is closing, ended or failed. Sent at the next flush, never synchronously. */
int stream_write(struct stream *s, const void *data, size_t len);

/* Asks for a flush in this loop iteration even if nothing was written (so on_flush runs). */
void stream_flush_request(struct stream *s);

/* Bytes held in the output queues: accepted by stream_write and not yet released by a write
 * completion (what max_pending and the water marks count). An in-flight uv_write keeps its
 * bytes here until its callback, which libuv runs an iteration later even when the kernel took
 * them at once. */
size_t stream_pending(const struct stream *s);

/* Bytes accepted by stream_write that the kernel has not taken yet (plaintext waiting to be
 * encrypted included). 0 means everything written so far is on its way to the peer, whether or
 * not libuv has run the write callback: what a request/response protocol asks before it
 * reuses the connection. */
size_t stream_unsent(const struct stream *s);

/* Tests only: when true, flushes skip uv_try_write and go through uv_write, whose completion
 * callback is deferred to the next loop iteration. */
extern bool stream_test_skip_try_write;

/* Backpressure on the peer: stop/resume delivering on_read. */
void stream_read_stop(struct stream *s);
void stream_read_start(struct stream *s);

/* Closes once; later calls are ignored. graceful: flush the queue (within close_timeout_ms),
 * send TLS close_notify, shut down the write side, then close; otherwise drop pending output
 * and close now. No owner callback but close_cb runs after this, from the loop, after every
 * handle has closed; close_cb may free the memory holding s. */
void stream_close(struct stream *s, int graceful, void (*close_cb)(struct stream *s));

/* The TLS failure in words for logs ("" without TLS or failure). Returns buf. */
const char *stream_tls_describe(const struct stream *s, char *buf, size_t cap);

#endif
