/* Helpers for tests that use the network on loopback: finding files of the source tree, counting
 * open fds (leak checks), making a throwaway CA, loopback TCP pairs, and running a peer process
 * (a Python WebSocket server or client) that is always killed and reaped. */
#ifndef VB_TESTS_LIB_TESTNET_H
#define VB_TESTS_LIB_TESTNET_H

#include <stddef.h>
#include <sys/types.h>

/* Absolute path of rel (e.g. "tests/peers/ws_peer.py") in the source tree, found from the
 * working directory or from the test binary's location. Returns buf, or NULL if not found. */
const char *test_source_path(const char *rel, char *buf, size_t cap);

/* Number of open fds of this process (entries of /proc/self/fd). */
int test_fd_count(void);

/* Runs tests/lib/make-test-ca.sh into dir: ca.crt, ca.key, server.crt, server.key (for
 * localhost and 127.0.0.1) and other-ca.crt. Returns 0 or -1. */
int test_ca_make(const char *dir);

/* A connected loopback TCP pair (fds[0] client side, fds[1] accepted side), both CLOEXEC and
 * blocking. Returns 0 or -errno. */
int test_tcp_pair(int fds[2]);

/* A listening TCP socket on 127.0.0.1 with an ephemeral port (stored in *port). Returns the fd
 * or -errno. */
int test_tcp_listen(unsigned *port);

/* Waits up to timeout_ms for a connection on a listening fd; returns the accepted fd
 * (blocking, CLOEXEC) or -errno. */
int test_tcp_accept(int lfd, unsigned timeout_ms);

/* A child process with a pipe on its stdin (closed by us to tell it to go) and one on its
 * stdout (what it reports). Its stderr is ours. */
struct test_peer {
    pid_t pid;
    int in_fd;  /* write end of its stdin, -1 once closed */
    int out_fd; /* read end of its stdout, -1 once closed */
    char out[16384];
    size_t out_len;
};

/* Starts argv[0] (a path) with argv. If ready_port is not NULL, waits up to timeout_ms for the
 * peer to print a line "READY <port>" and stores the port. Returns 0 or -1 (the peer is then
 * already killed). The peer is also killed at exit() if still running. */
int test_peer_start(struct test_peer *p, char *const argv[], unsigned *ready_port,
                    unsigned timeout_ms);

/* Reads the peer's stdout until it contains needle (at most timeout_ms). Returns 0 or -1. */
int test_peer_wait_for(struct test_peer *p, const char *needle, unsigned timeout_ms);

/* Collects the peer's stdout until it exits (at most timeout_ms, then it is killed) into p->out
 * (NUL-terminated) and reaps it. Returns its exit status (0..255), or -1 if it was killed or
 * died by a signal. */
int test_peer_wait(struct test_peer *p, unsigned timeout_ms);

/* Kills (SIGKILL) and reaps the peer if it still runs; closes the pipes. Safe to repeat. */
void test_peer_kill(struct test_peer *p);

#endif
