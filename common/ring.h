/* Single-producer/single-consumer byte ring in shared memory (memfd), lock-free.
 *
 *   fd/mapping:  0     [ magic | version | capacity ]     written once by ring_create
 *                64    [ head  (own cache line)     ]     producer stores, consumer loads
 *                128   [ tail  (own cache line)     ]     consumer stores, producer loads
 *                192   [ data: capacity bytes, capacity a power of two, 64 B .. 1 GiB    ]
 *
 * head and tail are free-running 64-bit byte counts (never wrapped, so full and empty differ;
 * the byte at count c sits at data[c & (capacity - 1)]). The producer alone writes head
 * (release) and reads tail (acquire), the consumer the reverse. The shared header holds offsets
 * and counts only, never pointers, so each process maps it wherever it likes. The memfd is
 * sealed against shrinking and growing, so no peer can truncate the mapping under us (SIGBUS).
 * The master maps rings read-only to read fill levels. A peer that scribbles on head/tail can
 * corrupt the stream but never make us touch memory outside the mapping: counts are clamped. */
#ifndef VB_COMMON_RING_H
#define VB_COMMON_RING_H

#include <stddef.h>
#include <stdint.h>

#define RING_MAGIC 0x56425247u /* "VBRG" */
#define RING_VERSION 1u

struct ring_hdr; /* the shared layout, private to ring.c */

/* A process-local view of a ring: the mapping plus cached constants. Embed it anywhere.
 * One view may be shared by the producer thread and the consumer thread of one process: each
 * side touches only its own cached_* field. A view whose hdr is NULL owns nothing. */
struct ring {
    struct ring_hdr *hdr;
    uint8_t *data;
    uint64_t mask;
    size_t map_len;
    int fd;       /* the memfd (O_CLOEXEC), owned by this view; -1 once closed */
    int writable; /* 0 for a read-only (observer) mapping */
    /* The peer's index as last loaded, so the hot path re-reads the peer's cache line only
     * when the cached value is not enough (it only ever lags: the real free/readable space is
     * at least what the cache says). Written by the producer / by the consumer only. */
    uint64_t cached_tail; /* producer side */
    uint64_t cached_head; /* consumer side */
    uint64_t trimmed;     /* consumer side: ring_trim_read gave back what was read before this */
};

/* A contiguous piece of the ring: at most up to the wrap point. */
struct ring_span {
    uint8_t *ptr;
    size_t len;
};

/* Creates a ring of capacity bytes (a power of two, 64 B to 1 GiB) in a new sealed memfd named
 * for debugging (name may be NULL; truncated to 63 bytes). The view owns the fd and the mapping
 * and is writable (it can be both producer and consumer). Returns 0, -EINVAL for a bad
 * capacity, or -errno; on error nothing is left open and the view owns nothing. */
int ring_create(struct ring *r, size_t capacity, const char *name);

/* Maps an existing ring from fd (which the view then owns; dup it first to keep yours).
 * writable=0 maps read-only (an observer: ring_capacity/ring_fill/ring_head/ring_tail only;
 * producer and consumer calls on it do nothing). Checks, before trusting any field, that fd is
 * a memfd sealed against shrinking and that its size can hold the header; then magic, version
 * and capacity against that size. -EPROTO if any of that is wrong, -errno on system errors
 * (-EACCES: writable=1 on a read-only fd). The fd is closed on every error. */
int ring_attach(struct ring *r, int fd, int writable);

/* Bytes of memory a ring of capacity bytes takes when placed with ring_format: the header's
 * 192 bytes plus the data. */
size_t ring_mem_size(size_t capacity);

/* Formats a ring of capacity bytes (a power of two, 64 B to 1 GiB) in memory the caller owns,
 * which must hold ring_mem_size(capacity) bytes and be 64-byte aligned: a slot of a shared
 * mapping (the scoreboard's call area, which the master maps read-only to watch the rings).
 * The view is writable and owns nothing: ring_close only forgets it. Returns 0 or -EINVAL. */
int ring_format(struct ring *r, void *mem, size_t capacity);

/* A read-only observer view of a ring that ring_format placed at mem, with mem_len bytes
 * readable there. Validates magic, version and capacity against mem_len first (-EPROTO).
 * The view owns nothing. */
int ring_observe(struct ring *r, const void *mem, size_t mem_len);

/* Unmaps and closes the fd. Safe on a zeroed or already closed view. */
void ring_close(struct ring *r);

size_t ring_capacity(const struct ring *r);
/* Bytes readable now. Any process/thread may call it (observers read it for the scoreboard). */
size_t ring_fill(const struct ring *r);
/* Free-running totals, for observers that check whether a consumer still moves. */
uint64_t ring_head(const struct ring *r);
uint64_t ring_tail(const struct ring *r);

/* Producer side (one thread only). No system calls, no allocation. */
/* Bytes writable now (loads tail afresh). */
size_t ring_writable(const struct ring *r);
/* The first contiguous writable span (it stops at the wrap point; len 0 when full); fill it,
 * then ring_commit_write. A second call after the commit gives the piece past the wrap. */
struct ring_span ring_write_span(struct ring *r);
/* Publishes n bytes written into the last write span (n is clamped to that free space). */
void ring_commit_write(struct ring *r, size_t n);
/* Copies up to n bytes in, across the wrap; returns how many fit (0 when full). */
size_t ring_push(struct ring *r, const void *src, size_t n);

/* Consumer side (one thread only). No system calls, no allocation. */
/* The first contiguous readable span (it stops at the wrap point; len 0 when empty). */
struct ring_span ring_read_span(struct ring *r);
/* Releases n bytes of the last read span to the producer (n is clamped to what was readable). */
void ring_commit_read(struct ring *r, size_t n);
/* Copies up to n bytes out, across the wrap; returns how many there were. */
size_t ring_pop(struct ring *r, void *dst, size_t n);
/* Drops everything readable (barge-in empties the downlink this way); returns bytes dropped. */
size_t ring_discard(struct ring *r);

/* Consumer side, and only while nothing writes the ring from another thread (the producer is
 * the consumer's own thread, as in a call pair): gives back to the kernel every whole page of
 * the data area that holds no readable byte (MADV_REMOVE: the memfd's pages are freed, and the
 * producer's next write there faults in a zeroed page). A ring's write position sweeps all its
 * capacity over time, so without this a ring costs its whole capacity in memory however little
 * it holds. A system call: call it after some kilobytes were consumed, not per frame. Returns 0
 * or -errno (a read-only view: -EPERM). */
int ring_trim(struct ring *r);

/* As ring_trim, but only the pages read (or discarded) since the view was set up or since the
 * last ring_trim_read, plus, when nothing is readable, the page the read position is in: what
 * ring_trim would give back when called as often, since the pages further on were given back
 * as they were read. One madvise (two at the wrap) where ring_trim needs two while the readable
 * bytes do not wrap; each costs about the same whatever its length, mostly the TLB shootdown of
 * a process whose threads run on several CPUs. Returns as ring_trim. */
int ring_trim_read(struct ring *r);

#endif
