/* The mbedTLS adapter: the only file that talks to mbedTLS's SSL layer. A tls_config is built
 * once (CA chain or certificate + key), then shared read-only by every connection on every
 * thread. A tls_session is one connection's TLS state driven entirely through memory: the
 * owner feeds it ciphertext and gets plaintext back, gives it plaintext and gets ciphertext
 * through a callback, so it runs on any event loop and never blocks. mbedTLS errors become
 * negative errno values; tls_session_describe() gives the readable reason for logs. */
#ifndef VB_COMMON_TLS_H
#define VB_COMMON_TLS_H

#include <stddef.h>
#include <stdint.h>

/* Opaque: mbedTLS types stay inside tls.c. */
struct tls_config;
struct tls_session;

/* The system CA bundle used when a client config names no CA file. */
#define TLS_DEFAULT_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

/* Client config: TLS 1.2+, peer certificate required and verified against ca_file (NULL means
 * TLS_DEFAULT_CA_FILE), hostname checked per session. The config also keeps the session of the
 * last full handshake (one host) and offers it to the next session for that host, so repeat
 * connections resume instead of paying the key exchange and certificate checks again; that cache
 * is the only part sessions write, under its own lock. Returns 0, -ENOENT/-EACCES (file),
 * -EINVAL (no usable certificate in the file) or -ENOMEM. *out is owned by the caller, freed
 * with tls_config_free after every session using it is freed. Call before threads use it. */
int tls_config_client_new(struct tls_config **out, const char *ca_file);

/* Server config: certificate chain (PEM, leaf first) and its private key (PEM, unencrypted).
 * Issues session tickets (keys rotated hourly) so clients can resume. Returns 0, -ENOENT/-EACCES,
 * -EINVAL (unparsable, or key does not match the certificate), -EIO (no ticket key) or -ENOMEM.
 * An RSA key is safe to share across threads (mbedTLS is built with THREADING_C). */
int tls_config_server_new(struct tls_config **out, const char *cert_file, const char *key_file);

void tls_config_free(struct tls_config *cfg);

/* Receives ciphertext the session wants sent to the peer. Must take all len bytes and return 0,
 * or return a negative errno (the session then fails with that error). */
typedef int (*tls_output_fn)(void *arg, const uint8_t *data, size_t len);
/* Receives decrypted plaintext. Return 0 to continue, non-zero to stop (the rest of the input
 * passed to tls_session_input is then dropped: the owner is closing). */
typedef int (*tls_plain_fn)(void *arg, const uint8_t *data, size_t len);

/* One connection. hostname (client configs only; may be NULL for servers) is sent as SNI and
 * checked against the certificate. Output goes to output(out_arg, ...). Returns 0, -EINVAL or
 * -ENOMEM. *out is owned by the caller (tls_session_free). A session belongs to one thread. */
int tls_session_new(struct tls_session **out, const struct tls_config *cfg, const char *hostname,
                    tls_output_fn output, void *out_arg);
void tls_session_free(struct tls_session *s);

/* Advances the handshake with the input seen so far (a client calls it once to send its
 * hello). Returns 0 once the handshake is complete, -EAGAIN while it waits for the peer, or a
 * negative error: -EKEYREJECTED (certificate verification failed: unknown CA, wrong hostname,
 * expired), -ECONNABORTED (the peer sent a fatal alert), -EPROTO (malformed or unexpected
 * TLS), -ENOMEM, or whatever the output callback returned. */
int tls_session_handshake(struct tls_session *s);
int tls_session_handshake_done(const struct tls_session *s);

/* Client: 1 if the handshake resumed an earlier session (the config keeps the last full
 * handshake's session per host and offers it; servers issue tickets), 0 otherwise. */
int tls_session_resumed(const struct tls_session *s);

/* The cipher suite the handshake settled on, in mbedTLS's spelling
 * ("TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256"); "" before the handshake is done. */
const char *tls_session_ciphersuite(const struct tls_session *s);

/* Feeds len bytes of ciphertext from the peer; all of it is consumed. While the handshake is
 * running it advances it; afterwards each decrypted chunk goes to plain(plain_arg, ...).
 * Returns 0, -ESHUTDOWN once the peer has sent close_notify (a clean end of stream), or a
 * negative error as for tls_session_handshake. After an error the session is dead. */
int tls_session_input(struct tls_session *s, const uint8_t *data, size_t len, tls_plain_fn plain,
                      void *plain_arg);

/* Encrypts len bytes of plaintext into records (up to 16 KiB each) handed to the output
 * callback. Only after the handshake: returns 0, -EAGAIN before it, or a negative error. */
int tls_session_write(struct tls_session *s, const uint8_t *data, size_t len);

/* Queues a close_notify alert through the output callback. Returns 0 or a negative error. */
int tls_session_close_notify(struct tls_session *s);

/* The last mbedTLS failure in words (with the certificate verification details if any), for
 * logs: writes a NUL-terminated string into buf and returns buf. */
const char *tls_session_describe(const struct tls_session *s, char *buf, size_t cap);

/* Cryptographic random bytes from this thread's CTR_DRBG (seeded from mbedtls_entropy on first
 * use in each thread and again after fork). Used for WebSocket keys and masks; requests of up
 * to 16 bytes come from a block the generator produced ahead (wiped as it is used), so a
 * per-frame mask costs a copy. Returns 0 or -EIO. Any thread may call it; each uses its own
 * generator, so no locks are taken. */
int tls_random(void *buf, size_t len);

/* Wipes this thread's generator; call from a thread about to exit that used TLS. */
void tls_thread_cleanup(void);

#endif
