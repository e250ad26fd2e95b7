/* TLS on our own listener (a bare host without HAProxy, so Twilio can reach wss:// directly).
 * Each connection accepted on a TLS listener gets an mbedTLS server stream (common/stream) on
 * the worker's main loop, and its plaintext is relayed through a socketpair to the worker's HTTP
 * server, which serves that end like any plain connection: routes, guards and the WebSocket
 * hand-over work unchanged (the call thread reads the socketpair; the TLS stays on the main
 * loop). Certificates are loaded at creation and can be swapped for new connections with
 * tls_front_reload (connections already open keep the old ones until they close). */
#ifndef VB_WORKER_TLS_FRONT_H
#define VB_WORKER_TLS_FRONT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

struct http_server;
struct tls_front;

/* Loads cert_file (PEM chain, leaf first) and key_file (PEM, unencrypted) and creates a front
 * that feeds srv (which must outlive it). Returns 0 and *out, or tls_config_server_new's errors
 * (-ENOENT, -EACCES, -EINVAL for a bad file or a key that does not match), -ENOMEM. Loop thread. */
int tls_front_new(struct tls_front **out, uv_loop_t *loop, struct http_server *srv,
                  const char *cert_file, const char *key_file);

/* Listens on addr itself (single-process runs and tests; port 0 picks one, see
 * tls_front_port). Returns 0 or -errno. */
int tls_front_listen(struct tls_front *f, const struct sockaddr *addr);
int tls_front_port(const struct tls_front *f);

/* Serves a connection accepted elsewhere (the master, on a TLS listener). Takes ownership of fd
 * in every case. Returns 0 or -errno. */
int tls_front_adopt_fd(struct tls_front *f, int fd);

/* Reloads the certificate and key (on SIGHUP in-place): new connections use the new pair,
 * open ones keep theirs. All or nothing: on error (as tls_front_new) the old pair stays. */
int tls_front_reload(struct tls_front *f, const char *cert_file, const char *key_file);

/* Counters for tests and metrics. */
struct tls_front_stats {
    uint64_t accepted, handshakes_failed;
    unsigned active; /* relays open */
};
const struct tls_front_stats *tls_front_stats(const struct tls_front *f);

/* Stops listening; with force closes every relay now, else lets each end with its connection (a
 * draining worker keeps its TLS calls: they end when the call closes its side). cb(arg) (may be
 * NULL) runs once everything is closed, then f is freed. Close the front before the HTTP server
 * it feeds; a relay's inner side survives the server (a handed-over call holds the other end). */
void tls_front_close(struct tls_front *f, bool force, void (*cb)(void *arg), void *arg);

#endif
