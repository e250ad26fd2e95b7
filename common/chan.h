/* The master <-> worker channel: fixed-size messages over an AF_UNIX SOCK_SEQPACKET socketpair
 * (message boundaries kept, never merged or split), a connection's fd riding along with its
 * message as SCM_RIGHTS. The receiver checks length, magic, type, control level/type and
 * truncation, and closes every fd it did not expect, so a confused peer cannot leak fds into
 * it or make it serve a connection it was not given. */
#ifndef VB_COMMON_CHAN_H
#define VB_COMMON_CHAN_H

#include <stdint.h>

#define CHAN_MAGIC 0x5642434eu /* "VBCN" */

enum chan_type {
    CHAN_CONN = 1,    /* master -> worker: an accepted connection (carries its fd) */
    CHAN_DRAIN = 2,   /* master -> worker: take no new calls, exit when the last one ends */
    CHAN_REOPEN = 3,  /* master -> worker: reopen the log file */
    CHAN_READY = 16,  /* worker -> master: serving */
};

struct chan_msg {
    uint32_t magic;
    uint16_t type;     /* enum chan_type */
    uint16_t listener; /* CHAN_CONN: which listen entry accepted it */
    uint64_t seq;      /* the sender's count, for logs */
    uint64_t arg;
};

/* A connected pair (both ends SOCK_CLOEXEC and non-blocking). Returns 0 or -errno. */
int chan_pair(int fds[2]);

/* Sends one message, with fd attached when fd >= 0 (the caller keeps its copy). Returns 0,
 * -EAGAIN when the peer's queue is full, -EPIPE when the peer is gone, or -errno. */
int chan_send(int sock, uint16_t type, uint16_t listener, uint64_t seq, uint64_t arg, int fd);

/* Receives one message. Returns 1 with *msg filled and *fd the attached fd (O_CLOEXEC, owned by
 * the caller) or -1 when none came; 0 at end of stream (the peer closed); -EAGAIN when nothing
 * is waiting; -EPROTO for a malformed message (it is consumed and any fds it carried are
 * closed; the caller logs and carries on); or -errno. A CHAN_CONN without exactly one fd, or
 * any other type with an fd, is -EPROTO. */
int chan_recv(int sock, struct chan_msg *msg, int *fd);

#endif
