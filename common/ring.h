/* Single-producer/single-consumer byte ring in shared memory (memfd), lock-free.
 *
 *   fd/mapping:  [ header: magic version capacity | head (own cache line) | tail (own line) ]
 *                [ data: capacity bytes, capacity a power of two                           ]
 *
 * head and tail are free-running 64-bit byte counts (never wrapped, so full and empty differ);
 * the producer alone writes head (release) and reads tail (acquire), the consumer the reverse.
 * The shared header holds offsets and counts only, never pointers, so each process maps it
 * wherever it likes. The master maps rings read-only to read fill levels. */
#ifndef VB_COMMON_RING_H
#define VB_COMMON_RING_H

#include <stddef.h>
#include <stdint.h>

#define RING_MAGIC 0x56425247u /* "VBRG" */
#define RING_VERSION 1u

struct ring_hdr; /* the shared layout, private to ring.c */

/* A process-local view of a ring: the mapping plus cached constants. Embed it anywhere. */
struct ring {
    struct ring_hdr *hdr;
    uint8_t *data;
    uint64_t mask;
    size_t map_len;
    int fd;       /* the memfd (O_CLOEXEC), owned by this view; -1 once closed */
    int writable; /* 0 for a read-only (observer) mapping */
};

/* A contiguous piece of the ring: at most up to the wrap point. */
struct ring_span {
    uint8_t *ptr;
    size_t len;
};

/* Creates a ring of capacity bytes (a power of two, 64 B to 1 GiB) in a new memfd named for
 * debugging. Returns 0, -EINVAL for a bad capacity, or -errno. */
int ring_create(struct ring *r, size_t capacity, const char *name);

/* Maps an existing ring from fd (which the view then owns; dup it first to keep yours).
 * writable=0 maps read-only. Validates magic, version and capacity against the fd's size:
 * -EPROTO if the header is wrong, -errno on system errors (fd is closed on every error). */
int ring_attach(struct ring *r, int fd, int writable);

/* Unmaps and closes the fd. Safe on a zeroed or already closed view. */
void ring_close(struct ring *r);

size_t ring_capacity(const struct ring *r);
/* Bytes readable now. Any process/thread may call it (observers read it for the scoreboard). */
size_t ring_fill(const struct ring *r);
/* Free-running totals, for observers that check whether a consumer still moves. */
uint64_t ring_head(const struct ring *r);
uint64_t ring_tail(const struct ring *r);

/* Producer side (one thread only). */
size_t ring_writable(const struct ring *r);
/* The first contiguous writable span; fill it, then ring_commit_write. */
struct ring_span ring_write_span(struct ring *r);
void ring_commit_write(struct ring *r, size_t n);
/* Copies up to n bytes in; returns how many fit. */
size_t ring_push(struct ring *r, const void *src, size_t n);

/* Consumer side (one thread only). */
struct ring_span ring_read_span(struct ring *r);
void ring_commit_read(struct ring *r, size_t n);
/* Copies up to n bytes out; returns how many there were. */
size_t ring_pop(struct ring *r, void *dst, size_t n);
/* Drops everything readable (barge-in empties the downlink this way); returns bytes dropped. */
size_t ring_discard(struct ring *r);

#endif
