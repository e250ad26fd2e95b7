/* Loopback test helpers: source paths, fd counting, test CA, TCP pairs, peer processes.
 * Peers are started with posix_spawn and registered so that exit() (a failed CHECK) kills
 * them; they also watch their stdin and leave when it closes, which covers a test child that
 * dies by a signal. */
#include "tests/lib/testnet.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

const char *test_source_path(const char *rel, char *buf, size_t cap)
{
    if (access(rel, R_OK) == 0) {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof cwd) != NULL && (size_t)snprintf(buf, cap, "%s/%s", cwd, rel) < cap)
            return buf;
    }
    char dir[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    if (n <= 0)
        return NULL;
    dir[n] = '\0';
    for (int up = 0; up < 6; up++) {
        char *slash = strrchr(dir, '/');
        if (slash == NULL)
            return NULL;
        *slash = '\0';
        if ((size_t)snprintf(buf, cap, "%s/%s", dir, rel) < cap && access(buf, R_OK) == 0)
            return buf;
    }
    return NULL;
}

int test_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own fd */
}

static int test_spawn_wait(char *const argv[])
{
    pid_t pid;
    if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        return -1;
    int status;
    while (waitpid(pid, &status, 0) == -1)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int test_ca_make(const char *dir)
{
    char script[PATH_MAX];
    if (test_source_path("tests/lib/make-test-ca.sh", script, sizeof script) == NULL)
        return -1;
    char *argv[] = {"/bin/sh", script, (char *)dir, NULL};
    return test_spawn_wait(argv) == 0 ? 0 : -1;
}

int test_tcp_listen(unsigned *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -errno;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == -1 || listen(fd, 16) == -1 ||
        getsockname(fd, (struct sockaddr *)&a, &len) == -1) {
        int err = -errno;
        close(fd);
        return err;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

int test_tcp_accept(int lfd, unsigned timeout_ms)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    int r;
    while ((r = poll(&p, 1, (int)timeout_ms)) == -1 && errno == EINTR)
        ;
    if (r == 0)
        return -ETIMEDOUT;
    if (r == -1)
        return -errno;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    return fd == -1 ? -errno : fd;
}

int test_tcp_pair(int fds[2])
{
    unsigned port;
    int lfd = test_tcp_listen(&port);
    if (lfd < 0)
        return lfd;
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (c == -1 || connect(c, (struct sockaddr *)&a, sizeof a) == -1) {
        int err = -errno;
        if (c != -1)
            close(c);
        close(lfd);
        return err;
    }
    int s = test_tcp_accept(lfd, 5000);
    close(lfd);
    if (s < 0) {
        close(c);
        return s;
    }
    fds[0] = c;
    fds[1] = s;
    return 0;
}

/* ---- peers ------------------------------------------------------------------------------- */

#define TEST_MAX_PEERS 8
static struct test_peer *test_peers[TEST_MAX_PEERS];
static int test_peers_hooked;

static void test_peers_at_exit(void)
{
    for (int i = 0; i < TEST_MAX_PEERS; i++)
        if (test_peers[i] != NULL)
            test_peer_kill(test_peers[i]);
}

static long long test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Reads what is available within the deadline; returns 1 on EOF, 0 on data, -1 on timeout. */
static int test_peer_read(struct test_peer *p, long long deadline)
{
    long long left = deadline - test_now_ms();
    if (left <= 0)
        return -1;
    struct pollfd pfd = {.fd = p->out_fd, .events = POLLIN};
    int r = poll(&pfd, 1, (int)left);
    if (r == 0)
        return -1;
    if (r == -1)
        return errno == EINTR ? 0 : -1;
    char tmp[4096];
    ssize_t n = read(p->out_fd, tmp, sizeof tmp);
    if (n == -1)
        return errno == EINTR ? 0 : 1;
    if (n == 0)
        return 1;
    size_t room = sizeof p->out - 1 - p->out_len;
    size_t m = (size_t)n < room ? (size_t)n : room;
    memcpy(p->out + p->out_len, tmp, m);
    p->out_len += m;
    p->out[p->out_len] = '\0';
    return 0;
}

int test_peer_start(struct test_peer *p, char *const argv[], unsigned *ready_port,
                    unsigned timeout_ms)
{
    memset(p, 0, sizeof *p);
    p->pid = -1;
    p->in_fd = p->out_fd = -1;
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) == -1)
        return -1;
    if (pipe2(out, O_CLOEXEC) == -1) {
        close(in[0]);
        close(in[1]);
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    int rc = posix_spawn(&p->pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    p->in_fd = in[1];
    p->out_fd = out[0];
    if (rc != 0) {
        p->pid = -1;
        test_peer_kill(p);
        return -1;
    }
    if (!test_peers_hooked) {
        atexit(test_peers_at_exit);
        test_peers_hooked = 1;
    }
    for (int i = 0; i < TEST_MAX_PEERS; i++) {
        if (test_peers[i] == NULL) {
            test_peers[i] = p;
            break;
        }
    }
    if (ready_port == NULL)
        return 0;
    long long deadline = test_now_ms() + timeout_ms;
    for (;;) {
        char *line = strstr(p->out, "READY ");
        if (line != NULL && strchr(line, '\n') != NULL) {
            *ready_port = (unsigned)strtoul(line + 6, NULL, 10);
            return 0;
        }
        if (test_peer_read(p, deadline) != 0) {
            fprintf(stderr, "peer %s not ready; said: %s\n", argv[0], p->out);
            test_peer_kill(p);
            return -1;
        }
    }
}

int test_peer_wait_for(struct test_peer *p, const char *needle, unsigned timeout_ms)
{
    long long deadline = test_now_ms() + timeout_ms;
    while (strstr(p->out, needle) == NULL) {
        if (p->out_fd == -1 || test_peer_read(p, deadline) != 0)
            return strstr(p->out, needle) != NULL ? 0 : -1;
    }
    return 0;
}

int test_peer_wait(struct test_peer *p, unsigned timeout_ms)
{
    if (p->pid <= 0)
        return -1;
    long long deadline = test_now_ms() + timeout_ms;
    int r = 0;
    while (p->out_fd != -1 && (r = test_peer_read(p, deadline)) == 0)
        ;
    if (r < 0) {
        test_peer_kill(p);
        return -1;
    }
    int status = -1;
    while (waitpid(p->pid, &status, 0) == -1) {
        if (errno != EINTR) {
            status = -1;
            break;
        }
    }
    p->pid = -1;
    test_peer_kill(p); /* closes the pipes, unregisters */
    return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void test_peer_kill(struct test_peer *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        while (waitpid(p->pid, NULL, 0) == -1 && errno == EINTR)
            ;
        p->pid = -1;
    }
    if (p->in_fd != -1)
        close(p->in_fd);
    if (p->out_fd != -1)
        close(p->out_fd);
    p->in_fd = p->out_fd = -1;
    for (int i = 0; i < TEST_MAX_PEERS; i++)
        if (test_peers[i] == p)
            test_peers[i] = NULL;
}
