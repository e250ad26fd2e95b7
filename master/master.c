/* The master (see master.h). Everything happens on one libuv loop, signals included (uv_signal
 * turns them into loop callbacks), and workers are started with uv_spawn re-executing this
 * binary, never by a bare fork that would share the loop's epoll instance with the child.
 *
 *   worker life:  spawn -> STARTING --READY msg--> READY --DRAIN msg--> DRAINING --exit--> FREE
 *   reload:       parse the file -> spawn generation N+1 -> all READY?
 *                 yes: apply the listen list, drain generation N; no: kill N+1, keep N
 *   stop:         node_draining=1 (/readyz 503) -> drain_announce_s -> close listeners ->
 *                 DRAIN every worker -> exit 0 when the last one has exited
 */
#include "master/master.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uv.h>

#include "common/chan.h"
#include "common/config.h"
#include "common/log.h"
#include "common/ring.h"
#include "common/scoreboard.h"
#include "master/listeners.h"
#include "master/pidfile.h"
#include "worker/call_pair.h"
#include "worker/security.h"

#define CONFIG_TEXT_MAX (4u << 20)
#define READY_TIMEOUT_MS 30000 /* a new worker that is not ready by then failed to start */
#define WATCH_MS 1000          /* scoreboard watch: ring stalls, respawns due */
#define STALL_S 5              /* a ring consumer still for this long is reported */
#define RESPAWN_MAX_S 30
#define QUIT_GRACE_MS 3000     /* SIGQUIT: then SIGKILL */
#define STOP_GRACE_S 10        /* after drain_timeout_s, before SIGKILL */
#define CHILD_FD_CHAN 3        /* the fds a worker inherits, in this order */

struct mworker {
    int in_use;
    unsigned slot, id, generation;
    uv_process_t proc;
    int proc_open;
    int chan_fd;
    uv_poll_t chan_poll;
    int poll_open;
    struct sb_area area; /* read-only view of the worker's call area */
    uint64_t sent;       /* connections passed to it */
    int ready, draining;
    uint64_t started_ms;
    /* ring watch, per call area slot: [0] uplink, [1] downlink */
    uint64_t *watch_serial, *watch_tail[2];
    uint32_t *watch_still[2];
};

struct master {
    const char *path, *exe;
    uv_loop_t *loop;
    struct config cfg;    /* the configuration in force */
    int cfg_fd;           /* its bytes, as a sealed memfd the workers read */
    struct config next;   /* a reload's, until it commits */
    int next_fd;
    int reloading;
    unsigned reload_gen;
    struct scoreboard board;
    struct listeners listeners;
    struct mworker w[SB_SLOTS_MAX];
    unsigned generation;
    unsigned rr; /* turns among equally loaded workers */
    int stopping, quitting, exit_code;
    uint64_t refused;
    /* respawn backoff per worker id of the current generation */
    struct { unsigned fails; uint64_t due_ms; int pending; } respawn[SB_SLOTS_MAX];
    uv_signal_t sig[5];
    uv_timer_t watch, reload_timer, stop_timer, kill_timer;
};

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

/* ---------------------------------------------------------------------------------------------
 * Configuration snapshots */

static int read_all(const char *path, char **out, size_t *len, char *err, size_t err_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap + 1); /* owned by the caller on success */
    for (;;) {
        if (!buf) {
            snprintf(err, err_len, "%s: out of memory", path);
            close(fd);
            return -1;
        }
        if (n == cap) {
            if (cap >= CONFIG_TEXT_MAX) {
                snprintf(err, err_len, "%s: larger than %u bytes", path, CONFIG_TEXT_MAX);
                free(buf);
                close(fd);
                return -1;
            }
            cap *= 2;
            char *b = realloc(buf, cap + 1);
            if (!b)
                free(buf);
            buf = b;
            continue;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r == -1 && errno == EINTR)
            continue;
        if (r == -1) {
            snprintf(err, err_len, "%s: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* Parses the file into *cfg and keeps its bytes in a sealed memfd (*fd) for the workers: they
 * parse the very bytes the master checked, whatever happens to the file meanwhile. */
static int config_snapshot(const char *path, struct config *cfg, int *fd, char *err,
                           size_t err_len)
{
    char *text;
    size_t len;
    if (read_all(path, &text, &len, err, err_len) != 0)
        return -1;
    struct config c;
    if (config_parse(path, text, len, &c, err, err_len) != 0) {
        free(text);
        return -1;
    }
    int m = memfd_create("vb-config", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    size_t off = 0;
    while (m != -1 && off < len) {
        ssize_t w = write(m, text + off, len - off);
        if (w == -1 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(m);
            m = -1;
            break;
        }
        off += (size_t)w;
    }
    if (m != -1 &&
        fcntl(m, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) == -1) {
        close(m);
        m = -1;
    }
    free(text);
    if (m == -1) {
        snprintf(err, err_len, "config snapshot: %s", strerror(errno));
        config_free(&c);
        return -1;
    }
    *cfg = c;
    *fd = m;
    return 0;
}

/* What a worker would refuse to start with (the signature checks without their secret, say),
 * checked before any worker is spawned: the master then fails to start, or refuses the reload,
 * instead of respawning workers that cannot start. Logs the reason. */
static int serving_check(const struct config *cfg)
{
    struct worker_security s;
    int rc = worker_security_init(&s, cfg);
    worker_security_free(&s);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Workers */

static void mworker_free(struct mworker *w);
static void on_watch(uv_timer_t *t);
static void spawn_worker(struct master *m, unsigned id, unsigned generation,
                         const struct config *cfg, int cfg_fd);
static void maybe_exit(struct master *m);
static void reload_abort(struct master *m, const char *why);
static void reload_commit(struct master *m);

static struct master *master_of(const struct mworker *w)
{
    return (struct master *)((char *)(w - w->slot) - offsetof(struct master, w));
}

static unsigned worker_count(const struct config *cfg)
{
    unsigned n = config_worker_count(cfg);
    return n > SB_SLOTS_MAX / 2 ? SB_SLOTS_MAX / 2 : n; /* room for two generations */
}

static void log_lost_calls(struct mworker *w)
{
    unsigned hw = (unsigned)sb_load(&master_of(w)->board.hdr->slots[w->slot].calls_hw);
    unsigned lost = 0;
    for (unsigned i = 0; i < hw && i < w->area.n_calls; i++) {
        const struct sb_call *c = sb_area_call(&w->area, i);
        if (sb_load(&c->serial) == 0)
            continue;
        char sid[SB_CALL_SID_MAX];
        memcpy(sid, c->call_sid, sizeof sid);
        sid[sizeof sid - 1] = '\0';
        log_error("worker %u: call %s (serial %llu) lost with the worker", w->id,
                  sid[0] ? sid : "(before its start message)",
                  (unsigned long long)sb_load(&c->serial));
        lost++;
    }
    if (lost)
        log_error("worker %u: %u live calls lost", w->id, lost);
}

static void on_proc_closed(uv_handle_t *h)
{
    struct mworker *w = h->data;
    w->proc_open = 0;
    if (!w->poll_open)
        mworker_free(w);
}

static void on_poll_closed(uv_handle_t *h)
{
    struct mworker *w = h->data;
    w->poll_open = 0;
    close(w->chan_fd);
    w->chan_fd = -1;
    if (!w->proc_open)
        mworker_free(w);
}

static void mworker_free(struct mworker *w)
{
    struct master *m = master_of(w);
    sb_area_close(&w->area);
    free(w->watch_serial);
    for (int k = 0; k < 2; k++) {
        free(w->watch_tail[k]);
        free(w->watch_still[k]);
    }
    struct sb_slot *s = &m->board.hdr->slots[w->slot];
    atomic_store(&s->state, SB_FREE);
    unsigned slot = w->slot;
    memset(w, 0, sizeof *w);
    w->slot = slot;
    w->chan_fd = -1;
    maybe_exit(m);
}

static void mworker_close_chan(struct mworker *w)
{
    if (w->poll_open && !uv_is_closing((uv_handle_t *)&w->chan_poll))
        uv_close((uv_handle_t *)&w->chan_poll, on_poll_closed);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int term_signal)
{
    struct mworker *w = p->data;
    struct master *m = master_of(w);
    int routine = w->draining || m->stopping || m->quitting;
    char how[64];
    if (term_signal)
        snprintf(how, sizeof how, "killed by signal %d (%s)", term_signal, strsignal(term_signal));
    else
        snprintf(how, sizeof how, "exit status %lld", (long long)status);
    if (routine && status == 0 && !term_signal)
        log_info("worker %u (pid %d, generation %u) exited", w->id, p->pid, w->generation);
    else
        log_error("worker %u (pid %d, generation %u) %s", w->id, p->pid, w->generation, how);
    if (!(routine && status == 0 && !term_signal))
        log_lost_calls(w);

    unsigned id = w->id, gen = w->generation;
    int was_ready = w->ready;
    w->in_use = 0; /* no more connections for it; the slot is free once its handles close */
    mworker_close_chan(w);
    uv_close((uv_handle_t *)p, on_proc_closed);

    if (m->reloading && gen == m->reload_gen && !was_ready) {
        reload_abort(m, "a new worker exited before it was ready");
        return;
    }
    if (!routine && gen == m->generation) {
        /* Replace it at once; if it keeps dying young, after 1, 2, 4... up to 30 s. */
        uint64_t lived = now_ms() - w->started_ms;
        unsigned f = lived < 10000 ? m->respawn[id].fails + 1 : 1;
        m->respawn[id].fails = f;
        uint64_t delay = f <= 1 ? 0 : (f >= 8 ? RESPAWN_MAX_S * 1000ull : 500ull << (f - 1));
        if (delay > RESPAWN_MAX_S * 1000ull)
            delay = RESPAWN_MAX_S * 1000ull;
        m->respawn[id].pending = 1;
        m->respawn[id].due_ms = now_ms() + delay;
        if (delay)
            log_warn("worker %u keeps dying young: respawning in %llu ms", id,
                     (unsigned long long)delay);
        else
            on_watch(&m->watch);
    }
}

static void on_worker_chan(uv_poll_t *p, int status, int events)
{
    struct mworker *w = p->data;
    struct master *m = master_of(w);
    (void)events;
    if (status < 0)
        goto stop;
    for (int k = 0; k < 16; k++) {
        struct chan_msg msg;
        int fd;
        int rc = chan_recv(w->chan_fd, &msg, &fd);
        if (rc == -EAGAIN)
            return;
        if (rc == -EPROTO) {
            log_error("worker %u: malformed channel message ignored", w->id);
            continue;
        }
        if (rc <= 0)
            goto stop; /* it is going away; its exit is reported by the process handle */
        if (msg.type == CHAN_READY && !w->ready) {
            w->ready = 1;
            m->respawn[w->id].fails = w->generation == m->generation ? m->respawn[w->id].fails : 0;
            log_info("worker %u (pid %d, generation %u) ready", w->id, w->proc.pid, w->generation);
            if (m->reloading && w->generation == m->reload_gen) {
                int all = 1;
                for (unsigned i = 0; i < SB_SLOTS_MAX; i++)
                    if (m->w[i].in_use && m->w[i].generation == m->reload_gen && !m->w[i].ready)
                        all = 0;
                if (all)
                    reload_commit(m);
            }
        } else {
            log_error("worker %u: unexpected channel message %u", w->id, (unsigned)msg.type);
        }
    }
    return;
stop:
    uv_poll_stop(p);
}

static int free_slot(struct master *m)
{
    for (unsigned i = 0; i < SB_SLOTS_MAX; i++)
        if (!m->w[i].in_use && !m->w[i].proc_open && !m->w[i].poll_open &&
            atomic_load(&m->board.hdr->slots[i].state) == SB_FREE)
            return (int)i;
    return -1;
}

static void spawn_worker(struct master *m, unsigned id, unsigned generation,
                         const struct config *cfg, int cfg_fd)
{
    int slot = free_slot(m);
    if (slot < 0) {
        log_error("no scoreboard slot for worker %u: too many workers draining", id);
        return;
    }
    struct mworker *w = &m->w[slot];
    int ch[2] = {-1, -1};
    struct sb_area area;
    int rc = chan_pair(ch);
    if (rc != 0) {
        log_error("worker %u: channel: %s", id, strerror(-rc));
        return;
    }
    rc = sb_area_create(&area, cfg->max_calls_per_worker, CALL_UPLINK_RING, CALL_DOWNLINK_RING);
    if (rc != 0) {
        log_error("worker %u: call area: %s", id, strerror(-rc));
        close(ch[0]);
        close(ch[1]);
        return;
    }
    struct sb_slot *s = &m->board.hdr->slots[slot];
    memset((void *)s, 0, sizeof *s); /* a fresh slot: no figures of a previous worker */
    atomic_store(&s->id, id);
    atomic_store(&s->generation, generation);
    atomic_store(&s->state, SB_STARTING);

    char spec[64];
    snprintf(spec, sizeof spec, "%d:%u:%u", slot, id, generation);
    char *args[] = {(char *)"voicebridge", (char *)"--worker", spec, (char *)"-c",
                    (char *)m->path, NULL};
    uv_stdio_container_t stdio[7] = {
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = 1},
        {.flags = UV_INHERIT_FD, .data.fd = 2},
        {.flags = UV_INHERIT_FD, .data.fd = ch[1]},       /* CHILD_FD_CHAN */
        {.flags = UV_INHERIT_FD, .data.fd = m->board.fd}, /* 4: the scoreboard */
        {.flags = UV_INHERIT_FD, .data.fd = area.fd},     /* 5: its call area */
        {.flags = UV_INHERIT_FD, .data.fd = cfg_fd},      /* 6: the configuration bytes */
    };
    uv_process_options_t opt = {.file = m->exe, .args = args, .exit_cb = on_exit_cb,
                                .stdio_count = 7, .stdio = stdio};
    memset(w, 0, sizeof *w);
    w->slot = (unsigned)slot;
    w->proc.data = w;
    rc = uv_spawn(m->loop, &w->proc, &opt);
    close(ch[1]);
    if (rc != 0) {
        log_error("worker %u: spawn %s: %s", id, m->exe, uv_strerror(rc));
        close(ch[0]);
        sb_area_close(&area);
        w->chan_fd = -1;
        w->proc_open = 1; /* the handle must be closed even though the spawn failed */
        uv_close((uv_handle_t *)&w->proc, on_proc_closed);
        return;
    }
    w->in_use = 1;
    w->proc_open = 1;
    w->id = id;
    w->generation = generation;
    w->chan_fd = ch[0];
    w->started_ms = now_ms();
    atomic_store(&s->pid, w->proc.pid);
    /* The master only reads the call area: map it read-only and drop the writable view. */
    rc = sb_area_attach(&w->area, dup(area.fd), area.n_calls, area.up_cap, area.down_cap, 0);
    sb_area_close(&area);
    if (rc != 0)
        log_error("worker %u: mapping its call area: %s (ring watch off)", id, strerror(-rc));
    unsigned n = w->area.n_calls;
    w->watch_serial = calloc(n ? n : 1, sizeof(uint64_t)); /* owned by w, freed in mworker_free */
    for (int k = 0; k < 2; k++) {
        w->watch_tail[k] = calloc(n ? n : 1, sizeof(uint64_t));
        w->watch_still[k] = calloc(n ? n : 1, sizeof(uint32_t));
    }
    uv_poll_init(m->loop, &w->chan_poll, w->chan_fd);
    w->chan_poll.data = w;
    w->poll_open = 1;
    uv_poll_start(&w->chan_poll, UV_READABLE, on_worker_chan);
    log_info("worker %u (generation %u) started: pid %d", id, generation, w->proc.pid);
}

static void drain_worker(struct mworker *w)
{
    struct master *m = master_of(w);
    if (!w->in_use || w->draining)
        return;
    w->draining = 1;
    atomic_store(&m->board.hdr->slots[w->slot].state, SB_DRAINING);
    int rc = chan_send(w->chan_fd, CHAN_DRAIN, 0, 0, 0, -1);
    if (rc != 0) /* its channel is full or gone: a signal says the same */
        uv_process_kill(&w->proc, SIGTERM);
}

/* ---------------------------------------------------------------------------------------------
 * Passing connections */

static int worker_takes(const struct master *m, const struct mworker *w)
{
    return w->in_use && w->ready && !w->draining && w->generation == m->generation;
}

static void answer_503(struct master *m, int fd, const char *why)
{
    static const char busy[] =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        "Content-Length: 39\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
        "{\"error\":\"no worker can take it now\"}\r\n";
    ssize_t rc = write(fd, busy, sizeof busy - 1);
    (void)rc; /* best effort on a fresh socket; it is closed either way */
    uint64_t n = ++m->refused;
    if ((n & (n - 1)) == 0)
        log_warn("connection refused (%llu so far): %s", (unsigned long long)n, why);
}

/* The least loaded ready worker of the current generation: fewest active calls, then fewest
 * connections passed but not yet picked up. One at max_calls is skipped while another has
 * room; when all are full, the connection still goes to one (it serves plain HTTP, and
 * answers a media stream 503 itself). */
static void on_accept(void *arg, int fd, unsigned listener)
{
    struct master *m = arg;
    struct mworker *order[SB_SLOTS_MAX];
    uint64_t key[SB_SLOTS_MAX];
    unsigned n = 0;
    for (unsigned i = 0; i < SB_SLOTS_MAX; i++) {
        struct mworker *w = &m->w[i];
        if (!worker_takes(m, w))
            continue;
        const struct sb_slot *s = &m->board.hdr->slots[i];
        uint64_t active = sb_load(&s->active_calls);
        uint64_t got = sb_load(&s->received);
        uint64_t pending = w->sent > got ? w->sent - got : 0;
        uint64_t full = active >= m->cfg.max_calls_per_worker;
        uint64_t kk = full << 62 | (active > 0xfffff ? 0xfffff : active) << 32 |
                      (pending > 0xffffffff ? 0xffffffff : pending);
        unsigned j = n++;
        while (j > 0 && key[j - 1] > kk) { /* insertion sort */
            key[j] = key[j - 1];
            order[j] = order[j - 1];
            j--;
        }
        key[j] = kk;
        order[j] = w;
    }
    /* Equally loaded workers take turns. */
    unsigned ties = 0;
    while (ties < n && key[ties] == key[0])
        ties++;
    if (ties > 1) {
        unsigned pick = m->rr++ % ties;
        struct mworker *t = order[0];
        order[0] = order[pick];
        order[pick] = t;
    }
    for (unsigned j = 0; j < n; j++) {
        struct mworker *w = order[j];
        int rc = chan_send(w->chan_fd, CHAN_CONN, (uint16_t)listener, w->sent + 1, 0, fd);
        if (rc == 0) {
            w->sent++;
            close(fd);
            return;
        }
        if (rc != -EAGAIN)
            log_error("worker %u: passing a connection: %s", w->id, strerror(-rc));
    }
    answer_503(m, fd, n ? "every worker's channel is full" : "no worker is ready");
    close(fd);
}

/* ---------------------------------------------------------------------------------------------
 * Reload, stop, quit */

static void reload_cleanup(struct master *m)
{
    m->reloading = 0;
    uv_timer_stop(&m->reload_timer);
}

static void reload_abort(struct master *m, const char *why)
{
    if (!m->reloading)
        return;
    log_error("reload failed: %s; generation %u keeps serving, nothing changed", why,
              m->generation);
    for (unsigned i = 0; i < SB_SLOTS_MAX; i++) {
        struct mworker *w = &m->w[i];
        if (w->in_use && w->generation == m->reload_gen && w->proc_open) {
            w->draining = 1; /* its exit is routine now */
            uv_process_kill(&w->proc, SIGKILL);
        }
    }
    /* Listeners the new configuration opened are closed again by re-applying the old list. */
    char err[256];
    if (listeners_apply(&m->listeners, &m->cfg, err, sizeof err) != 0)
        log_error("restoring listeners: %s", err);
    config_free(&m->next);
    close(m->next_fd);
    m->next_fd = -1;
    reload_cleanup(m);
}

static void on_reload_timeout(uv_timer_t *t)
{
    reload_abort(t->data, "new workers were not ready in time");
}

static void reload_commit(struct master *m)
{
    /* The listen list changes only now: a connection names its listen entry by index, and the
     * old workers know the old list. Until here the old sockets kept serving them. */
    char err[256];
    if (listeners_apply(&m->listeners, &m->next, err, sizeof err) != 0) {
        reload_abort(m, err);
        return;
    }
    unsigned old = m->generation;
    m->generation = m->reload_gen;
    unsigned draining = 0;
    uint64_t calls = 0;
    for (unsigned i = 0; i < SB_SLOTS_MAX; i++) {
        struct mworker *w = &m->w[i];
        if (w->in_use && w->generation != m->generation && !w->draining) {
            calls += sb_load(&m->board.hdr->slots[i].active_calls);
            draining++;
            drain_worker(w);
        }
    }
    config_free(&m->cfg);
    close(m->cfg_fd);
    m->cfg = m->next;
    m->cfg_fd = m->next_fd;
    memset(&m->next, 0, sizeof m->next);
    m->next_fd = -1;
    memset(m->respawn, 0, sizeof m->respawn);
    log_max_level = m->cfg.log_level;
    if (log_open(m->cfg.log_file) != 0)
        log_error("cannot open log file %s; logging where it did", m->cfg.log_file);
    reload_cleanup(m);
    log_info("reload done: generation %u serving with %u workers; generation %u draining %u "
             "workers with %llu live calls",
             m->generation, worker_count(&m->cfg), old, draining, (unsigned long long)calls);
}

static void reload(struct master *m)
{
    if (m->stopping || m->quitting)
        return;
    if (m->reloading) {
        log_warn("SIGHUP: a reload is already in progress; ignored");
        return;
    }
    char err[1024];
    log_info("SIGHUP: reloading %s", m->path);
    if (config_snapshot(m->path, &m->next, &m->next_fd, err, sizeof err) != 0) {
        log_error("reload failed: %s; nothing changed", err);
        return;
    }
    if (serving_check(&m->next) != 0) {
        log_error("reload failed: the new configuration cannot serve (above); nothing changed");
        config_free(&m->next);
        close(m->next_fd);
        m->next_fd = -1;
        return;
    }
    const char *warnings[16];
    size_t nw = config_warnings(&m->next, warnings, 16);
    for (size_t i = 0; i < nw && i < 16; i++)
        log_warn("%s", warnings[i]);
    m->reloading = 1;
    m->reload_gen = m->generation + 1;
    unsigned n = worker_count(&m->next);
    for (unsigned id = 0; id < n; id++)
        spawn_worker(m, id, m->reload_gen, &m->next, m->next_fd);
    unsigned started = 0;
    for (unsigned i = 0; i < SB_SLOTS_MAX; i++)
        started += m->w[i].in_use && m->w[i].generation == m->reload_gen;
    if (started < n) {
        reload_abort(m, "could not start the new workers");
        return;
    }
    uv_timer_start(&m->reload_timer, on_reload_timeout, READY_TIMEOUT_MS, 0);
}

static unsigned live_workers(const struct master *m)
{
    unsigned n = 0;
    for (unsigned i = 0; i < SB_SLOTS_MAX; i++)
        n += m->w[i].in_use || m->w[i].proc_open || m->w[i].poll_open;
    return n;
}

static void close_loop_handles(struct master *m)
{
    for (int i = 0; i < 5; i++)
        if (!uv_is_closing((uv_handle_t *)&m->sig[i]))
            uv_close((uv_handle_t *)&m->sig[i], NULL);
    uv_handle_t *timers[] = {(uv_handle_t *)&m->watch, (uv_handle_t *)&m->reload_timer,
                             (uv_handle_t *)&m->stop_timer, (uv_handle_t *)&m->kill_timer};
    for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++)
        if (!uv_is_closing(timers[i]))
            uv_close(timers[i], NULL);
    listeners_close_all(&m->listeners);
}

static void maybe_exit(struct master *m)
{
    if ((m->stopping || m->quitting) && live_workers(m) == 0) {
        log_info("all workers have exited; master exiting");
        close_loop_handles(m);
    }
}

static void on_kill_timer(uv_timer_t *t)
{
    struct master *m = t->data;
    for (unsigned i = 0; i < SB_SLOTS_MAX; i++)
        if (m->w[i].proc_open) {
            log_error("worker %u (pid %d) still running: killing it", m->w[i].id,
                      m->w[i].proc.pid);
            uv_process_kill(&m->w[i].proc, SIGKILL);
        }
}

/* After the announce period: stop accepting, and tell every worker to drain. */
static void on_stop_announced(uv_timer_t *t)
{
    struct master *m = t->data;
    listeners_close_all(&m->listeners);
    uint64_t calls = 0;
    for (unsigned i = 0; i < SB_SLOTS_MAX; i++)
        if (m->w[i].in_use) {
            calls += sb_load(&m->board.hdr->slots[i].active_calls);
            drain_worker(&m->w[i]);
        }
    log_info("listeners closed; waiting for %llu live calls (deadline %u s)",
             (unsigned long long)calls, m->cfg.drain_timeout_s);
    uv_timer_start(&m->kill_timer, on_kill_timer,
                   (m->cfg.drain_timeout_s + STOP_GRACE_S) * 1000ull, 0);
    maybe_exit(m);
}

static void stop(struct master *m, const char *why)
{
    if (m->stopping)
        return;
    m->stopping = 1;
    if (m->reloading)
        reload_abort(m, "stopping");
    atomic_store(&m->board.hdr->node_draining, 1);
    log_info("%s: stopping: /readyz now answers 503; listeners close in %u s", why,
             m->cfg.drain_announce_s);
    uv_timer_start(&m->stop_timer, on_stop_announced, m->cfg.drain_announce_s * 1000ull, 0);
}

static void quit(struct master *m)
{
    if (m->quitting)
        return;
    m->quitting = 1;
    log_warn("SIGQUIT: stopping now; live calls end");
    uv_timer_stop(&m->stop_timer);
    listeners_close_all(&m->listeners);
    for (unsigned i = 0; i < SB_SLOTS_MAX; i++)
        if (m->w[i].proc_open)
            uv_process_kill(&m->w[i].proc, SIGQUIT);
    uv_timer_start(&m->kill_timer, on_kill_timer, QUIT_GRACE_MS, 0);
    maybe_exit(m);
}

static void reopen(struct master *m)
{
    if (log_reopen() != 0)
        log_error("SIGUSR1: cannot reopen the log file");
    else
        log_info("SIGUSR1: log file reopened");
    for (unsigned i = 0; i < SB_SLOTS_MAX; i++)
        if (m->w[i].in_use && chan_send(m->w[i].chan_fd, CHAN_REOPEN, 0, 0, 0, -1) != 0)
            uv_process_kill(&m->w[i].proc, SIGUSR1);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct master *m = s->data;
    switch (signum) {
    case SIGHUP:
        reload(m);
        break;
    case SIGTERM:
    case SIGINT:
        if (m->stopping) {
            log_warn("%s again while stopping: stopping now", strsignal(signum));
            quit(m);
        } else {
            stop(m, strsignal(signum));
        }
        break;
    case SIGQUIT:
        quit(m);
        break;
    case SIGUSR1:
        reopen(m);
        break;
    }
}

/* ---------------------------------------------------------------------------------------------
 * The watch: ring stalls and the respawns that are due */

static void watch_rings(struct master *m, struct mworker *w)
{
    struct sb_slot *s = &m->board.hdr->slots[w->slot];
    if (!w->area.base || !w->watch_serial)
        return;
    uint64_t hw = sb_load(&s->calls_hw);
    uint64_t fill_sum = 0, fill_max = 0, stalled = 0;
    for (unsigned i = 0; i < hw && i < w->area.n_calls; i++) {
        const struct sb_call *c = sb_area_call(&w->area, i);
        uint64_t serial = sb_load(&c->serial);
        if (serial != w->watch_serial[i]) { /* a new call in the slot (or none) */
            w->watch_serial[i] = serial;
            w->watch_still[0][i] = w->watch_still[1][i] = 0;
            w->watch_tail[0][i] = w->watch_tail[1][i] = 0;
        }
        if (serial == 0)
            continue;
        void *mem[2] = {sb_area_uplink(&w->area, i), sb_area_downlink(&w->area, i)};
        size_t cap[2] = {w->area.up_cap, w->area.down_cap};
        for (int k = 0; k < 2; k++) {
            struct ring r;
            if (ring_observe(&r, mem[k], ring_mem_size(cap[k])) != 0)
                continue; /* not formatted yet: the call is starting */
            uint64_t fill = ring_fill(&r), tail = ring_tail(&r);
            fill_sum += fill;
            if (fill > fill_max)
                fill_max = fill;
            if (fill > 0 && tail == w->watch_tail[k][i]) {
                if (++w->watch_still[k][i] == STALL_S) {
                    char sid[SB_CALL_SID_MAX];
                    memcpy(sid, c->call_sid, sizeof sid);
                    sid[sizeof sid - 1] = '\0';
                    log_warn("worker %u (pid %d): call %s: the %s ring's consumer has not moved "
                             "for %d s with %llu bytes waiting",
                             w->id, w->proc.pid, sid[0] ? sid : "(starting)",
                             k ? "downlink" : "uplink", STALL_S, (unsigned long long)fill);
                }
            } else {
                if (w->watch_still[k][i] >= STALL_S)
                    log_info("worker %u: a stalled %s ring moves again", w->id,
                             k ? "downlink" : "uplink");
                w->watch_still[k][i] = 0;
            }
            w->watch_tail[k][i] = tail;
            stalled += w->watch_still[k][i] >= STALL_S;
        }
    }
    sb_store(&s->ring_fill_bytes, fill_sum);
    sb_store(&s->ring_fill_max, fill_max);
    sb_store(&s->stalled_calls, stalled);
}

static void on_watch(uv_timer_t *t)
{
    struct master *m = t->data;
    for (unsigned i = 0; i < SB_SLOTS_MAX; i++)
        if (m->w[i].in_use)
            watch_rings(m, &m->w[i]);
    if (m->stopping || m->quitting)
        return;
    uint64_t now = now_ms();
    unsigned n = worker_count(&m->cfg);
    for (unsigned id = 0; id < n && id < SB_SLOTS_MAX; id++)
        if (m->respawn[id].pending && now >= m->respawn[id].due_ms) {
            m->respawn[id].pending = 0;
            spawn_worker(m, id, m->generation, &m->cfg, m->cfg_fd);
        }
}

/* ---------------------------------------------------------------------------------------------
 * Start */

int master_run(const char *path, const char *exe)
{
    static struct master m; /* one per process */
    memset(&m, 0, sizeof m);
    m.path = path;
    m.exe = exe;
    m.cfg_fd = m.next_fd = -1;
    m.loop = uv_default_loop();
    signal(SIGPIPE, SIG_IGN);
    log_set_context("master");
    char err[1024];
    if (config_snapshot(path, &m.cfg, &m.cfg_fd, err, sizeof err) != 0) {
        fprintf(stderr, "voicebridge: %s\n", err);
        return 1;
    }
    log_max_level = m.cfg.log_level;
    if (log_open(m.cfg.log_file) != 0) {
        fprintf(stderr, "voicebridge: cannot open log file %s\n", m.cfg.log_file);
        goto fail_cfg;
    }
    const char *warnings[16];
    size_t nw = config_warnings(&m.cfg, warnings, 16);
    for (size_t i = 0; i < nw && i < 16; i++)
        log_warn("%s", warnings[i]);
    if (serving_check(&m.cfg) != 0)
        goto fail_cfg;
    int rc = scoreboard_create(&m.board);
    if (rc != 0) {
        log_error("scoreboard: %s", strerror(-rc));
        goto fail_cfg;
    }
    for (unsigned i = 0; i < SB_SLOTS_MAX; i++)
        m.w[i].slot = i, m.w[i].chan_fd = -1;
    listeners_init(&m.listeners, m.loop, on_accept, &m);
    if (listeners_apply(&m.listeners, &m.cfg, err, sizeof err) != 0) {
        log_error("%s", err);
        goto fail_board;
    }
    if (pidfile_write(m.cfg.pid_file, err, sizeof err) != 0) {
        log_error("%s", err);
        listeners_close_all(&m.listeners);
        uv_run(m.loop, UV_RUN_DEFAULT);
        goto fail_board;
    }
    static const int sigs[5] = {SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1};
    for (int i = 0; i < 5; i++) {
        uv_signal_init(m.loop, &m.sig[i]);
        m.sig[i].data = &m;
        uv_signal_start(&m.sig[i], on_signal, sigs[i]);
    }
    uv_timer_init(m.loop, &m.watch);
    uv_timer_init(m.loop, &m.reload_timer);
    uv_timer_init(m.loop, &m.stop_timer);
    uv_timer_init(m.loop, &m.kill_timer);
    m.watch.data = m.reload_timer.data = m.stop_timer.data = m.kill_timer.data = &m;
    uv_timer_start(&m.watch, on_watch, WATCH_MS, WATCH_MS);
    m.generation = 1;
    unsigned n = worker_count(&m.cfg);
    if (config_worker_count(&m.cfg) > n)
        log_warn("workers: %u asked for, %u started (the scoreboard keeps room for a reload)",
                 config_worker_count(&m.cfg), n);
    log_info("voicebridge master (pid %d) starting %u workers, up to %u calls each", getpid(), n,
             m.cfg.max_calls_per_worker);
    for (unsigned id = 0; id < n; id++)
        spawn_worker(&m, id, m.generation, &m.cfg, m.cfg_fd);
    uv_run(m.loop, UV_RUN_DEFAULT);
    uv_loop_close(m.loop);
    pidfile_remove(m.cfg.pid_file);
    log_info("master exiting");
    scoreboard_close(&m.board);
    close(m.cfg_fd);
    config_free(&m.cfg);
    return 0;

fail_board:
    scoreboard_close(&m.board);
fail_cfg:
    close(m.cfg_fd);
    config_free(&m.cfg);
    return 1;
}
