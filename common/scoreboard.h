/* The node's scoreboard: what the master and every worker can see of each other, in shared
 * memory (sealed memfds the master creates and the workers inherit). Two kinds of mapping:
 *
 *   board (one per node, every process maps it read-write; each writes only its own fields)
 *     [ header: magic version n_slots | node_draining ]
 *     [ slot 0: state pid id generation | counters ... | master's ring summary ] ...
 *
 *   call area (one per worker, that worker read-write, the master read-only)
 *     [ call 0: serial call_sid started | live counters | uplink ring | downlink ring ] ...
 *
 * Counters are single-writer: a slot's by its worker's main loop, a call's by its call thread,
 * the ring summary by the master; readers load them relaxed and tolerate a torn snapshot across
 * fields (each field itself is atomic). A call's rings live in its call area so that the master
 * reads their real head and tail, not a copy a stuck thread would stop updating. */
#ifndef VB_COMMON_SCOREBOARD_H
#define VB_COMMON_SCOREBOARD_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SB_MAGIC 0x56425342u /* "VBSB" */
#define SB_VERSION 1u
#define SB_SLOTS_MAX 64 /* workers of all generations alive at once */
#define SB_CALL_SID_MAX 40
#define SB_FAILED_CALLS 256 /* recent calls whose AI side failed, node-wide */
#define SB_CALL_ID_MAX 64

enum sb_state {
    SB_FREE = 0,  /* no worker */
    SB_STARTING,  /* spawned, not ready yet */
    SB_READY,     /* takes new connections */
    SB_DRAINING,  /* finishing its calls, takes no new ones */
};

/* One worker. The worker writes everything above `fill_bytes`; the master writes state
 * transitions it decides (FREE, STARTING, DRAINING) before/after the worker runs, and the
 * ring summary. */
struct sb_slot {
    alignas(64) _Atomic uint32_t state;
    _Atomic int32_t pid;
    _Atomic uint32_t id;         /* worker number within its generation, for labels */
    _Atomic uint32_t generation;
    _Atomic uint64_t received;   /* connections received from the master */
    _Atomic uint64_t active_calls;
    _Atomic uint64_t calls_hw;   /* call area slots ever used: readers scan only these */
    _Atomic uint64_t calls_served;  /* media streams that ended */
    _Atomic uint64_t calls_refused; /* media streams turned away (full or draining) */
    _Atomic uint64_t http_requests;
    _Atomic uint64_t errors;        /* bad input answered with an error, failed calls */
    /* totals of the calls that ended; live calls add their own from the call area */
    _Atomic uint64_t frames_in, frames_up, frames_out, frames_dropped, bytes_in, bytes_out;
    /* Redis, from the worker's client */
    _Atomic uint64_t redis_connected; /* 1 while the command connection is up */
    _Atomic uint64_t redis_pending, redis_dropped, redis_reconnects;
    /* the master's, from its watch over the call area once a second */
    _Atomic uint64_t ring_fill_bytes; /* sum over the live calls' rings */
    _Atomic uint64_t ring_fill_max;   /* fullest single ring, bytes */
    _Atomic uint64_t stalled_calls;   /* calls whose ring consumer has stopped moving */
};

struct sb_header {
    uint32_t magic, version, n_slots, reserved;
    _Atomic uint32_t node_draining; /* the master is stopping: /readyz says 503 */
    struct sb_slot slots[SB_SLOTS_MAX];
    /* Calls whose AI side failed, so that whichever worker Twilio's next webhook for the call
     * reaches speaks the apology. Any worker appends (claiming an entry with the counter);
     * a reader racing a writer may miss an entry, never overrun one. */
    _Atomic uint32_t failed_next;
    char failed[SB_FAILED_CALLS][SB_CALL_ID_MAX];
};

/* Remembers call_id as failed / tells whether it is among the recent failures. */
void scoreboard_failed_add(struct sb_header *h, const char *call_id);
int scoreboard_failed_has(const struct sb_header *h, const char *call_id);

/* A live call, written by its call thread (serial, sid and counters) and its worker (serial 0
 * frees it). The rings follow the struct in the same slot. */
struct sb_call {
    alignas(64) _Atomic uint64_t serial; /* 0: free */
    _Atomic uint64_t started_ms;
    char call_sid[SB_CALL_SID_MAX];
    _Atomic uint64_t frames_in, frames_up, frames_out, frames_dropped, bytes_in, bytes_out;
};

/* A mapped board: the header lives in shared memory, the view in the process. */
struct scoreboard {
    struct sb_header *hdr;
    int fd; /* owned; -1 once closed */
};

/* A mapped call area. */
struct sb_area {
    uint8_t *base;
    size_t len;
    size_t stride;       /* bytes per call slot */
    size_t up_cap, down_cap; /* ring capacities */
    unsigned n_calls;
    int fd;              /* owned; -1 once closed */
    int writable;
};

/* Creates the board in a new sealed memfd (O_CLOEXEC), zeroed, all slots free. */
int scoreboard_create(struct scoreboard *sb);
/* Maps an inherited board fd (which the view then owns), checking size, magic and version. */
int scoreboard_attach(struct scoreboard *sb, int fd);
void scoreboard_close(struct scoreboard *sb);

/* Creates a call area for n_calls calls with rings of the given capacities. */
int sb_area_create(struct sb_area *a, unsigned n_calls, size_t up_cap, size_t down_cap);
/* Maps an inherited area fd (owned by the view from here on); writable=0 for the master. The
 * geometry is not trusted from the memory: the caller passes what it created. */
int sb_area_attach(struct sb_area *a, int fd, unsigned n_calls, size_t up_cap, size_t down_cap,
                   int writable);
void sb_area_close(struct sb_area *a);

struct sb_call *sb_area_call(const struct sb_area *a, unsigned i);
void *sb_area_uplink(const struct sb_area *a, unsigned i);   /* ring memory of call i */
void *sb_area_downlink(const struct sb_area *a, unsigned i);
size_t sb_area_size(unsigned n_calls, size_t up_cap, size_t down_cap);

static inline uint64_t sb_load(const _Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}
static inline void sb_store(_Atomic uint64_t *v, uint64_t x)
{
    atomic_store_explicit(v, x, memory_order_relaxed);
}
/* Single-writer increment: a load and a store, no locked instruction. */
static inline void sb_add(_Atomic uint64_t *v, uint64_t d)
{
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

const char *sb_state_name(uint32_t state);

#endif
