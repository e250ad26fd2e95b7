/* The kernel's floor under any bridge: what relaying one call's messages costs when the relay
 * does nothing but read and write. N calls, each two loopback TCP connections (a "Twilio" one and
 * an "OpenAI" one); a generator thread writes one message every 20 ms per call on each (the
 * caller's frame, and an AI frame), and a relay thread, epoll-driven like a good event loop,
 * reads each and writes it to the other connection. The relay thread's CPU (CLOCK_THREAD_CPUTIME_ID)
 * per call-second is the floor the bridge's CPU target is judged against (docs/performance.md).
 * --batch K sends the AI's frames K at a time every K periods (a downlink written ahead in
 * groups). Loopback only; bounded in calls and seconds.
 * Usage: relay-floor --calls N --seconds S [--bytes B] [--batch K]
 * Prints one line: RESULT {json}; "pace" below 1 means the generator fell behind (the figure is
 * then not a floor at that load). */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define FLOOR_PERIOD_MS 20
#define FLOOR_MAX_CALLS 20000
#define FLOOR_BUF 65536

struct floor_pair {
    int gen_fd;   /* the generator's end */
    int relay_fd; /* the relay's end */
};

struct floor_call {
    struct floor_pair tw, oa;
};

static struct floor_call *calls;
static unsigned n_calls, msg_bytes = 330, seconds = 10, batch = 1;
static atomic_int relay_stop;
static atomic_ullong relayed_msgs;
static double relay_cpu_ms, gen_cpu_ms;

static double thread_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "relay-floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* One connected loopback TCP pair through a listener. */
static void pair_open(int lfd, const struct sockaddr_in *addr, struct floor_pair *p)
{
    int one = 1;
    p->gen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->gen_fd == -1 || connect(p->gen_fd, (const struct sockaddr *)addr, sizeof *addr) == -1)
        die("connect");
    p->relay_fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (p->relay_fd == -1)
        die("accept");
    setsockopt(p->gen_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(p->relay_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Writes all of buf to a blocking socket (the generator's ends are blocking: they never fill at
 * this rate, and a short write is finished, not dropped). */
static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1)
            die("write");
        buf += n;
        len -= (size_t)n;
    }
}

/* Writes all of buf to a non-blocking socket, waiting for room when the kernel takes only part:
 * at the floor's rates the send buffers never fill, and this tool must not lose bytes. */
static void relay_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno == EAGAIN) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            if (poll(&p, 1, 1000) == -1 && errno != EINTR)
                die("poll");
            continue;
        }
        if (n == -1)
            die("relay write");
        buf += n;
        len -= (size_t)n;
    }
}

/* The relay: every readable end is read once and what came is written to its partner. */
static void *relay_main(void *arg)
{
    (void)arg;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1)
        die("epoll_create1");
    for (unsigned i = 0; i < n_calls; i++) {
        struct epoll_event ev = {.events = EPOLLIN};
        ev.data.u64 = (uint64_t)i << 1;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, calls[i].tw.relay_fd, &ev) == -1)
            die("epoll_ctl");
        ev.data.u64 = (uint64_t)i << 1 | 1;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, calls[i].oa.relay_fd, &ev) == -1)
            die("epoll_ctl");
    }
    static char buf[FLOOR_BUF];
    struct epoll_event evs[256];
    double cpu0 = thread_cpu_ms();
    unsigned long long msgs = 0;
    while (!atomic_load(&relay_stop)) {
        int n = epoll_wait(ep, evs, 256, 100);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1)
            die("epoll_wait");
        for (int k = 0; k < n; k++) {
            struct floor_call *c = &calls[evs[k].data.u64 >> 1];
            int from = evs[k].data.u64 & 1 ? c->oa.relay_fd : c->tw.relay_fd;
            int to = evs[k].data.u64 & 1 ? c->tw.relay_fd : c->oa.relay_fd;
            ssize_t r = read(from, buf, sizeof buf);
            if (r == 0)
                die("a generator connection closed"); /* never before the end */
            if (r == -1 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r == -1)
                die("relay read");
            msgs += (unsigned long long)r / msg_bytes;
            relay_write_all(to, buf, (size_t)r);
        }
    }
    relay_cpu_ms = thread_cpu_ms() - cpu0;
    atomic_store(&relayed_msgs, msgs);
    close(ep);
    return NULL;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"calls", 1, NULL, 'n'}, {"seconds", 1, NULL, 's'}, {"bytes", 1, NULL, 'b'}, {"batch", 1, NULL, 'k'},
        {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'n': n_calls = (unsigned)strtoul(optarg, NULL, 10); break;
        case 's': seconds = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'b': msg_bytes = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'k': batch = (unsigned)strtoul(optarg, NULL, 10); break;
        default: goto usage;
        }
    }
    if (n_calls == 0 || n_calls > FLOOR_MAX_CALLS || seconds == 0 || seconds > 600 ||
        msg_bytes < 16 || msg_bytes > 16384 || batch == 0 || batch > 16) {
    usage:
        fprintf(stderr, "usage: relay-floor --calls 1-%u --seconds 1-600 [--bytes 16-16384] [--batch 1-16]\n",
                FLOOR_MAX_CALLS);
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof addr;
    if (lfd == -1 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) == -1 ||
        listen(lfd, 4096) == -1 || getsockname(lfd, (struct sockaddr *)&addr, &alen) == -1)
        die("listen");
    calls = calloc(n_calls, sizeof *calls); /* owned by main, for the whole run */
    if (calls == NULL)
        die("calloc");
    for (unsigned i = 0; i < n_calls; i++) {
        pair_open(lfd, &addr, &calls[i].tw);
        pair_open(lfd, &addr, &calls[i].oa);
    }
    close(lfd);

    pthread_t relay;
    if (pthread_create(&relay, NULL, relay_main, NULL) != 0)
        die("pthread_create");

    /* The generator: a 1 ms tick; call i writes in slot i % 20, like independent phones. It also
     * drains what the relay delivers, so no buffer fills. */
    char *msg = malloc((size_t)msg_bytes * batch); /* owned by main */
    static char sink[FLOOR_BUF];
    if (msg == NULL)
        die("malloc");
    memset(msg, 'a', (size_t)msg_bytes * batch);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    struct itimerspec its = {.it_interval = {0, 1000000}, .it_value = {0, 1000000}};
    if (tfd == -1 || timerfd_settime(tfd, 0, &its, NULL) == -1)
        die("timerfd");
    double cpu0 = thread_cpu_ms(), t0 = mono_s(), end = t0 + seconds;
    unsigned long long tick = 0, sent = 0;
    while (mono_s() < end) {
        uint64_t expirations;
        if (read(tfd, &expirations, sizeof expirations) != sizeof expirations)
            die("timerfd read");
        for (; expirations > 0; expirations--, tick++) {
            for (unsigned i = (unsigned)(tick % FLOOR_PERIOD_MS); i < n_calls; i += FLOOR_PERIOD_MS) {
                write_all(calls[i].tw.gen_fd, msg, msg_bytes);
                sent++;
                if ((tick / FLOOR_PERIOD_MS) % batch == 0) {
                    write_all(calls[i].oa.gen_fd, msg, (size_t)msg_bytes * batch);
                    sent += batch;
                }
                /* what the relay delivered for this call since its last turn */
                if (recv(calls[i].tw.gen_fd, sink, sizeof sink, MSG_DONTWAIT) == -1 && errno != EAGAIN)
                    die("recv");
                if (recv(calls[i].oa.gen_fd, sink, sizeof sink, MSG_DONTWAIT) == -1 && errno != EAGAIN)
                    die("recv");
            }
        }
    }
    double wall = mono_s() - t0;
    gen_cpu_ms = thread_cpu_ms() - cpu0;
    atomic_store(&relay_stop, 1);
    pthread_join(relay, NULL);
    double call_s = wall * n_calls;
    printf("RESULT {\"calls\":%u,\"seconds\":%.3f,\"bytes\":%u,\"batch\":%u,\"sent\":%llu,\"relayed\":%llu,\"pace\":%.4f,"
           "\"relay_cpu_ms_per_call_s\":%.4f,\"gen_cpu_ms_per_call_s\":%.4f}\n",
           n_calls, wall, msg_bytes, batch, sent, (unsigned long long)atomic_load(&relayed_msgs),
           (double)sent / (call_s * 2.0 * 1000.0 / FLOOR_PERIOD_MS),
           relay_cpu_ms / call_s, gen_cpu_ms / call_s);
    for (unsigned i = 0; i < n_calls; i++) {
        close(calls[i].tw.gen_fd);
        close(calls[i].tw.relay_fd);
        close(calls[i].oa.gen_fd);
        close(calls[i].oa.relay_fd);
    }
    free(calls);
    free(msg);
    close(tfd);
    return 0;
}
