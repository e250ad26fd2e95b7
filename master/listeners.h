/* The master's listening sockets: opened from the configuration's listen list, kept open
 * across reloads (an address in both the old and the new list keeps its socket, so no
 * connection is refused), and accepted from on the master's loop, each connection handed to a
 * callback that passes it on. Accepting pauses briefly when fds run out instead of spinning. */
#ifndef VB_MASTER_LISTENERS_H
#define VB_MASTER_LISTENERS_H

#include <stddef.h>
#include <uv.h>

#include "common/config.h"

/* Takes the accepted fd (non-blocking, close-on-exec) and must close it. */
typedef void listeners_accept_fn(void *arg, int fd, unsigned listener);

struct listener {
    struct config_listen addr;
    int fd;
    int polling, paused;
    uv_poll_t poll;
    uv_timer_t pause_timer;
    struct listeners *owner;
    unsigned index;
};

struct listeners {
    uv_loop_t *loop;
    listeners_accept_fn *on_accept;
    void *arg;
    struct listener *l[CONFIG_LISTEN_MAX]; /* owned; NULL: unused */
    size_t n;
    unsigned long long accept_errors;
};

void listeners_init(struct listeners *ls, uv_loop_t *loop, listeners_accept_fn *fn, void *arg);

/* Makes the open set match cfg's listen list: opens what is new (reusing sockets for addresses
 * already open) and closes what is gone. All or nothing: if any address fails to open, the
 * ones opened by this call are closed again, the old set is untouched, and the error (with the
 * address) is written to err. */
int listeners_apply(struct listeners *ls, const struct config *cfg, char *err, size_t err_len);

/* Stops accepting and closes every socket (the stop and quit paths). */
void listeners_close_all(struct listeners *ls);

#endif
