/* mbedTLS 2.28 adapter: shared read-only configs, per-connection sessions over memory BIOs, and
 * a per-thread CTR_DRBG. The BIO callbacks read from the ciphertext the owner is feeding right
 * now and write through the owner's output callback, which always takes everything, so
 * mbedTLS never sees WANT_WRITE and never holds a half-sent record. Errors are mapped to
 * negative errno values here and nowhere else. */
#include "common/tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>

#include "common/log.h"

/* Servers change their session-ticket key this often (seconds); a key lives twice as long. */
#define TLS_TICKET_S 3600

/* Client: the session of the last full handshake, offered to the next connection to the same
 * host. A full handshake costs the client two ECDSA verifications and an ECDH (about 54 million
 * instructions, 5 ms); a resumed one skips all three. Every call opens its own OpenAI
 * connection, so after the first one per worker, calls resume. Shared by the config's threads,
 * hence the lock (held for a session copy, never across I/O). */
struct tls_resume {
    pthread_mutex_t lock;
    int valid;
    char host[256];
    mbedtls_ssl_session session;
};

struct tls_config {
    mbedtls_ssl_config conf;
    mbedtls_x509_crt ca;                 /* client: trusted roots */
    mbedtls_x509_crt own;                /* server: our chain, leaf first */
    mbedtls_pk_context key;              /* server: our private key */
    struct tls_resume *resume;           /* client: see above */
    mbedtls_ssl_ticket_context *tickets; /* server: session tickets, so clients can resume */
    int is_server;
};

struct tls_session {
    mbedtls_ssl_context ssl;
    tls_output_fn out;
    void *out_arg;
    const uint8_t *in; /* ciphertext being fed by tls_session_input, consumed by bio_recv */
    size_t in_len;
    int out_err;  /* what the output callback returned, when it failed */
    int last_err; /* last mbedTLS error code, for tls_session_describe */
    int dead;     /* 0, or the negative errno every later call returns */
    uint32_t verify_flags;
    int handshake_done;
    int chain_checked;         /* client: the peer's chain was verified (a full handshake) */
    struct tls_resume *resume; /* client: the config's cache */
};

/* ---- per-thread random generator ---------------------------------------------------------- */

/* CTR_DRBG is not meant to be shared between threads without a lock, and thousands of call
 * threads would contend on one. Each thread seeds its own from mbedtls_entropy on first use;
 * a fork bumps the generation so a child never replays its parent's stream.
 * Every WebSocket frame a client sends needs a 4-byte mask, and each CTR_DRBG request costs a
 * key schedule and three AES blocks whatever its size (~1,400 instructions), so requests of up
 * to TLS_RNG_SMALL bytes are served from a block drawn ahead; bytes handed out are wiped from
 * it. mbedTLS's own requests (handshake randoms, keys) always go to the generator directly. */
#define TLS_RNG_POOL 256
#define TLS_RNG_SMALL 16
struct tls_rng {
    unsigned generation; /* fork generation it was seeded in; 0 = never */
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    size_t pool_left; /* unused bytes at the end of pool */
    unsigned char pool[TLS_RNG_POOL];
};

static _Thread_local struct tls_rng tls_rng;
static atomic_uint tls_fork_generation = 1;
static pthread_once_t tls_atfork_once = PTHREAD_ONCE_INIT;

static void tls_atfork_child(void)
{
    atomic_fetch_add_explicit(&tls_fork_generation, 1, memory_order_relaxed);
}

static void tls_atfork_register(void)
{
    pthread_atfork(NULL, NULL, tls_atfork_child);
}

static void tls_rng_wipe(struct tls_rng *r)
{
    if (r->generation != 0) {
        mbedtls_ctr_drbg_free(&r->drbg);
        mbedtls_entropy_free(&r->entropy);
        r->generation = 0;
    }
    mbedtls_platform_zeroize(r->pool, sizeof r->pool);
    r->pool_left = 0;
}

static struct tls_rng *tls_rng_get(void)
{
    pthread_once(&tls_atfork_once, tls_atfork_register);
    unsigned gen = atomic_load_explicit(&tls_fork_generation, memory_order_relaxed);
    struct tls_rng *r = &tls_rng;
    if (r->generation == gen)
        return r;
    tls_rng_wipe(r);
    mbedtls_entropy_init(&r->entropy);
    mbedtls_ctr_drbg_init(&r->drbg);
    /* Personalisation only separates streams further; the entropy does the real work. */
    struct {
        pid_t pid;
        pthread_t tid;
        void *where;
    } pers = {getpid(), pthread_self(), r};
    int rc = mbedtls_ctr_drbg_seed(&r->drbg, mbedtls_entropy_func, &r->entropy,
                                   (const unsigned char *)&pers, sizeof pers);
    if (rc != 0) {
        mbedtls_ctr_drbg_free(&r->drbg);
        mbedtls_entropy_free(&r->entropy);
        log_error("tls: seeding the random generator failed (-0x%04x)", (unsigned)-rc);
        return NULL;
    }
    r->generation = gen;
    return r;
}

static int tls_rng_draw(struct tls_rng *r, unsigned char *p, size_t len)
{
    while (len > 0) {
        size_t n = len < MBEDTLS_CTR_DRBG_MAX_REQUEST ? len : MBEDTLS_CTR_DRBG_MAX_REQUEST;
        if (mbedtls_ctr_drbg_random(&r->drbg, p, n) != 0)
            return -EIO;
        p += n;
        len -= n;
    }
    return 0;
}

int tls_random(void *buf, size_t len)
{
    struct tls_rng *r = tls_rng_get();
    if (r == NULL)
        return -EIO;
    if (len > TLS_RNG_SMALL)
        return tls_rng_draw(r, buf, len);
    if (r->pool_left < len) {
        if (tls_rng_draw(r, r->pool, sizeof r->pool) != 0) {
            r->pool_left = 0;
            return -EIO;
        }
        r->pool_left = sizeof r->pool;
    }
    unsigned char *p = r->pool + sizeof r->pool - r->pool_left;
    memcpy(buf, p, len);
    mbedtls_platform_zeroize(p, len);
    r->pool_left -= len;
    return 0;
}

void tls_thread_cleanup(void)
{
    tls_rng_wipe(&tls_rng);
}

/* mbedTLS's f_rng: the config is shared across threads, so p_rng is unused and the calling
 * thread's own generator is used, directly (never the pool of small requests). */
static int tls_rng_cb(void *unused, unsigned char *out, size_t len)
{
    (void)unused;
    struct tls_rng *r = tls_rng_get();
    if (r == NULL || tls_rng_draw(r, out, len) != 0)
        return MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED;
    return 0;
}

/* ---- configs ------------------------------------------------------------------------------ */

static struct tls_config *tls_config_alloc(void)
{
    struct tls_config *cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL)
        return NULL;
    mbedtls_ssl_config_init(&cfg->conf);
    mbedtls_x509_crt_init(&cfg->ca);
    mbedtls_x509_crt_init(&cfg->own);
    mbedtls_pk_init(&cfg->key);
    return cfg;
}

void tls_config_free(struct tls_config *cfg)
{
    if (cfg == NULL)
        return;
    mbedtls_ssl_config_free(&cfg->conf);
    mbedtls_x509_crt_free(&cfg->ca);
    mbedtls_x509_crt_free(&cfg->own);
    mbedtls_pk_free(&cfg->key);
    if (cfg->resume != NULL) {
        mbedtls_ssl_session_free(&cfg->resume->session);
        pthread_mutex_destroy(&cfg->resume->lock);
        free(cfg->resume);
    }
    if (cfg->tickets != NULL) {
        mbedtls_ssl_ticket_free(cfg->tickets);
        free(cfg->tickets);
    }
    free(cfg);
}

/* mbedTLS reports a missing file and a corrupt one alike; say which for the operator. */
static int tls_file_check(const char *path)
{
    if (access(path, R_OK) == -1)
        return -errno;
    return 0;
}

/* Record protection is paid per byte of audio, both ways, for a call's whole life; the
 * handshake once. Through this adapter on mbedTLS 2.28 (x86-64 with AES-NI, 1.3-6.6 KB records,
 * encrypt plus decrypt): ChaCha20-Poly1305 2.8-3.0 ns per byte each way, AES-128-GCM 3.6-3.8,
 * AES-256-GCM 3.9-4.0 (2.28's GCM multiplies one block at a time, so AES-NI does not make it
 * the cheaper). The forward-secret AEAD suites come first, cheapest first, then the rest of
 * mbedTLS's default list in its own order. A client offers this order; a server picks by it. */
static const int tls_suites_first[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
};
static int tls_suites[256]; /* 0-terminated; mbedTLS keeps the pointer */
static pthread_once_t tls_prefs_once = PTHREAD_ONCE_INIT; /* builds both lists */

/* The key exchange is paid once per connection, on both sides, and mbedTLS 2.28 offers its
 * curves largest first: two mbedTLS peers settle on secp521r1, 87 million instructions for the
 * client's handshake and 59 million for the server's (callgrind, P-256 certificate). x25519 and
 * secp256r1 first, as browsers offer them: 54 and 26 million (about 5 and 2.5 ms; what is left
 * is mostly the two ECDSA verifications, 18 million each). The rest stay listed after them, so
 * every certificate curve accepted before still is. */
static const mbedtls_ecp_group_id tls_curves_first[] = {
    MBEDTLS_ECP_DP_CURVE25519,
    MBEDTLS_ECP_DP_SECP256R1,
    MBEDTLS_ECP_DP_SECP384R1,
};
static mbedtls_ecp_group_id tls_curves[32]; /* MBEDTLS_ECP_DP_NONE-terminated */

static int tls_suite_listed(const int *list, size_t n, int id)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] == id)
            return 1;
    return 0;
}

static void tls_prefs_build(void)
{
    const int *defaults = mbedtls_ssl_list_ciphersuites();
    size_t n = 0, cap = sizeof tls_suites / sizeof tls_suites[0] - 1;
    size_t n_first = sizeof tls_suites_first / sizeof tls_suites_first[0];
    for (size_t i = 0; i < n_first; i++) {
        int id = tls_suites_first[i];
        size_t d = 0;
        while (defaults[d] != 0 && defaults[d] != id)
            d++;
        if (defaults[d] != 0) /* compiled in and enabled */
            tls_suites[n++] = id;
    }
    for (size_t d = 0; defaults[d] != 0 && n < cap; d++)
        if (!tls_suite_listed(tls_suites_first, n_first, defaults[d]))
            tls_suites[n++] = defaults[d];
    tls_suites[n] = 0;

    const mbedtls_ecp_group_id *all = mbedtls_ecp_grp_id_list();
    n = 0;
    cap = sizeof tls_curves / sizeof tls_curves[0] - 1;
    n_first = sizeof tls_curves_first / sizeof tls_curves_first[0];
    for (size_t i = 0; i < n_first; i++)
        for (size_t d = 0; all[d] != MBEDTLS_ECP_DP_NONE; d++)
            if (all[d] == tls_curves_first[i])
                tls_curves[n++] = all[d];
    for (size_t d = 0; all[d] != MBEDTLS_ECP_DP_NONE && n < cap; d++) {
        size_t i = 0;
        while (i < n_first && tls_curves_first[i] != all[d])
            i++;
        if (i == n_first)
            tls_curves[n++] = all[d];
    }
    tls_curves[n] = MBEDTLS_ECP_DP_NONE;
}

static int tls_config_common(struct tls_config *cfg, int endpoint)
{
    int rc = mbedtls_ssl_config_defaults(&cfg->conf, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
                                         MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0)
        return rc == MBEDTLS_ERR_SSL_ALLOC_FAILED ? -ENOMEM : -EINVAL;
    /* TLS 1.0/1.1 are compiled into Debian's mbedTLS; nobody we talk to needs them. */
    mbedtls_ssl_conf_min_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_rng(&cfg->conf, tls_rng_cb, NULL);
    pthread_once(&tls_prefs_once, tls_prefs_build);
    if (tls_suites[0] != 0)
        mbedtls_ssl_conf_ciphersuites(&cfg->conf, tls_suites);
    if (tls_curves[0] != MBEDTLS_ECP_DP_NONE)
        mbedtls_ssl_conf_curves(&cfg->conf, tls_curves);
    return 0;
}

int tls_config_client_new(struct tls_config **out, const char *ca_file)
{
    const char *path = ca_file != NULL ? ca_file : TLS_DEFAULT_CA_FILE;
    *out = NULL;
    int rc = tls_file_check(path);
    if (rc < 0) {
        log_error("tls: CA file %s: %s", path, strerror(-rc));
        return rc;
    }
    struct tls_config *cfg = tls_config_alloc();
    if (cfg == NULL)
        return -ENOMEM;
    /* A positive result counts certificates mbedTLS could not parse; system bundles may hold
     * a few such roots, which is fine as long as the rest loaded. */
    rc = mbedtls_x509_crt_parse_file(&cfg->ca, path);
    if (rc < 0 || cfg->ca.version == 0) {
        log_error("tls: CA file %s: no usable certificate (-0x%04x)", path, (unsigned)-rc);
        rc = rc == MBEDTLS_ERR_X509_ALLOC_FAILED ? -ENOMEM : -EINVAL;
        goto fail_cfg;
    }
    if (rc > 0)
        log_debug("tls: CA file %s: %d certificates skipped", path, rc);
    rc = tls_config_common(cfg, MBEDTLS_SSL_IS_CLIENT);
    if (rc < 0)
        goto fail_cfg;
    mbedtls_ssl_conf_authmode(&cfg->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&cfg->conf, &cfg->ca, NULL);
    cfg->resume = calloc(1, sizeof *cfg->resume);
    if (cfg->resume == NULL) {
        rc = -ENOMEM;
        goto fail_cfg;
    }
    if (pthread_mutex_init(&cfg->resume->lock, NULL) != 0) {
        free(cfg->resume);
        cfg->resume = NULL;
        rc = -ENOMEM;
        goto fail_cfg;
    }
    mbedtls_ssl_session_init(&cfg->resume->session);
    *out = cfg;
    return 0;

fail_cfg:
    tls_config_free(cfg);
    return rc;
}

int tls_config_server_new(struct tls_config **out, const char *cert_file, const char *key_file)
{
    *out = NULL;
    int rc = tls_file_check(cert_file);
    if (rc == 0)
        rc = tls_file_check(key_file);
    if (rc < 0) {
        log_error("tls: certificate %s / key %s: %s", cert_file, key_file, strerror(-rc));
        return rc;
    }
    struct tls_config *cfg = tls_config_alloc();
    if (cfg == NULL)
        return -ENOMEM;
    cfg->is_server = 1;
    rc = mbedtls_x509_crt_parse_file(&cfg->own, cert_file);
    if (rc != 0) {
        log_error("tls: certificate %s: cannot parse (-0x%04x)", cert_file, (unsigned)-rc);
        rc = -EINVAL;
        goto fail_cfg;
    }
    rc = mbedtls_pk_parse_keyfile(&cfg->key, key_file, NULL);
    if (rc != 0) {
        log_error("tls: key %s: cannot parse (-0x%04x)", key_file, (unsigned)-rc);
        rc = -EINVAL;
        goto fail_cfg;
    }
    if (mbedtls_pk_check_pair(&cfg->own.pk, &cfg->key) != 0) {
        log_error("tls: key %s does not match certificate %s", key_file, cert_file);
        rc = -EINVAL;
        goto fail_cfg;
    }
    rc = tls_config_common(cfg, MBEDTLS_SSL_IS_SERVER);
    if (rc < 0)
        goto fail_cfg;
    mbedtls_ssl_conf_authmode(&cfg->conf, MBEDTLS_SSL_VERIFY_NONE);
    rc = mbedtls_ssl_conf_own_cert(&cfg->conf, &cfg->own, &cfg->key);
    if (rc != 0) {
        rc = -ENOMEM;
        goto fail_cfg;
    }
    /* Tickets let a client resume (see struct tls_resume) without a session cache here: the
     * session travels with the client, sealed under a key that changes every TLS_TICKET_S and
     * is kept twice that at most. The ticket context locks itself (THREADING_C). */
    cfg->tickets = malloc(sizeof *cfg->tickets);
    if (cfg->tickets == NULL) {
        rc = -ENOMEM;
        goto fail_cfg;
    }
    mbedtls_ssl_ticket_init(cfg->tickets);
    rc = mbedtls_ssl_ticket_setup(cfg->tickets, tls_rng_cb, NULL, MBEDTLS_CIPHER_AES_256_GCM,
                                  TLS_TICKET_S);
    if (rc != 0) {
        log_error("tls: session tickets: setup failed (-0x%04x)", (unsigned)-rc);
        rc = -EIO;
        goto fail_cfg;
    }
    mbedtls_ssl_conf_session_tickets_cb(&cfg->conf, mbedtls_ssl_ticket_write,
                                        mbedtls_ssl_ticket_parse, cfg->tickets);
    *out = cfg;
    return 0;

fail_cfg:
    tls_config_free(cfg);
    return rc;
}

/* ---- sessions ----------------------------------------------------------------------------- */

/* Called for each certificate of the peer's chain during a full handshake only: a resumed
 * session skips verification (it was done, for the same host and CA, when it was made). */
static int tls_on_verify(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    (void)crt, (void)depth, (void)flags;
    struct tls_session *s = ctx;
    s->chain_checked = 1;
    return 0;
}

/* Client, before the handshake: offer the config's cached session if it is for this host. */
static void tls_resume_offer(struct tls_session *s, struct tls_resume *r, const char *host)
{
    pthread_mutex_lock(&r->lock);
    if (r->valid && strcmp(r->host, host) == 0 &&
        mbedtls_ssl_set_session(&s->ssl, &r->session) != 0)
        log_debug("tls: could not offer the cached session");
    pthread_mutex_unlock(&r->lock);
}

/* Client, after a full handshake: keep its session (and any ticket the server sent) for the
 * next connection. A resumed handshake leaves the cache as it is. */
static void tls_resume_keep(struct tls_session *s, struct tls_resume *r, const char *host)
{
    size_t hl = strlen(host);
    if (hl >= sizeof r->host)
        return;
    pthread_mutex_lock(&r->lock);
    mbedtls_ssl_session_free(&r->session);
    mbedtls_ssl_session_init(&r->session);
    r->valid = mbedtls_ssl_get_session(&s->ssl, &r->session) == 0;
    memcpy(r->host, host, hl + 1);
    pthread_mutex_unlock(&r->lock);
}

static int tls_bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct tls_session *s = ctx;
    if (s->out_err != 0)
        return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    int rc = s->out(s->out_arg, buf, len);
    if (rc < 0) {
        s->out_err = rc;
        return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    }
    return (int)len; /* len never exceeds one record, well under INT_MAX */
}

static int tls_bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct tls_session *s = ctx;
    if (s->in_len == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    size_t n = len < s->in_len ? len : s->in_len;
    memcpy(buf, s->in, n);
    s->in += n;
    s->in_len -= n;
    return (int)n;
}

int tls_session_new(struct tls_session **out, const struct tls_config *cfg, const char *hostname,
                    tls_output_fn out_fn, void *out_arg)
{
    *out = NULL;
    if (cfg == NULL || out_fn == NULL || (!cfg->is_server && hostname == NULL))
        return -EINVAL;
    struct tls_session *s = calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    mbedtls_ssl_init(&s->ssl);
    s->out = out_fn;
    s->out_arg = out_arg;
    int rc = mbedtls_ssl_setup(&s->ssl, &cfg->conf);
    if (rc != 0) {
        rc = rc == MBEDTLS_ERR_SSL_ALLOC_FAILED ? -ENOMEM : -EINVAL;
        goto fail_session;
    }
    if (!cfg->is_server) {
        /* SNI and the name the certificate must carry. */
        rc = mbedtls_ssl_set_hostname(&s->ssl, hostname);
        if (rc != 0) {
            rc = rc == MBEDTLS_ERR_SSL_ALLOC_FAILED ? -ENOMEM : -EINVAL;
            goto fail_session;
        }
        s->resume = cfg->resume;
        mbedtls_ssl_set_verify(&s->ssl, tls_on_verify, s);
        if (s->resume != NULL)
            tls_resume_offer(s, s->resume, hostname);
    }
    mbedtls_ssl_set_bio(&s->ssl, s, tls_bio_send, tls_bio_recv, NULL);
    *out = s;
    return 0;

fail_session:
    mbedtls_ssl_free(&s->ssl);
    free(s);
    return rc;
}

void tls_session_free(struct tls_session *s)
{
    if (s == NULL)
        return;
    mbedtls_ssl_free(&s->ssl);
    free(s);
}

static int tls_map_error(const struct tls_session *s, int rc)
{
    if (s->out_err != 0)
        return s->out_err;
    switch (rc) {
    case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
    case MBEDTLS_ERR_SSL_PEER_VERIFY_FAILED:
        return -EKEYREJECTED;
    case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE:
        return -ECONNABORTED;
    case MBEDTLS_ERR_SSL_ALLOC_FAILED:
    case MBEDTLS_ERR_X509_ALLOC_FAILED:
        return -ENOMEM;
    case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
        return -ESHUTDOWN;
    case MBEDTLS_ERR_SSL_CONN_EOF:
        return -ECONNRESET;
    default:
        return -EPROTO;
    }
}

/* Records the failure and makes the session dead: every later call returns the same error. */
static int tls_session_fail(struct tls_session *s, int rc)
{
    s->last_err = rc;
    s->verify_flags = mbedtls_ssl_get_verify_result(&s->ssl);
    if (s->verify_flags == (uint32_t)-1)
        s->verify_flags = 0; /* verification did not run */
    s->dead = tls_map_error(s, rc);
    return s->dead;
}

int tls_session_handshake(struct tls_session *s)
{
    if (s->dead)
        return s->dead;
    if (s->handshake_done)
        return 0;
    int rc = mbedtls_ssl_handshake(&s->ssl);
    if (rc == 0) {
        s->handshake_done = 1;
        if (s->resume != NULL && s->chain_checked)
            tls_resume_keep(s, s->resume, s->ssl.hostname);
        return 0;
    }
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
        return -EAGAIN;
    return tls_session_fail(s, rc);
}

int tls_session_handshake_done(const struct tls_session *s)
{
    return s->handshake_done;
}

int tls_session_resumed(const struct tls_session *s)
{
    return s->handshake_done && s->resume != NULL && !s->chain_checked;
}

const char *tls_session_ciphersuite(const struct tls_session *s)
{
    const char *name = s->handshake_done ? mbedtls_ssl_get_ciphersuite(&s->ssl) : NULL;
    return name != NULL ? name : "";
}

/* Plaintext lands here before the owner copies or parses it. One record is at most 16 KiB,
 * and a thread runs one callback at a time, so one buffer per thread serves every session. */
static _Thread_local unsigned char tls_plain_buf[16384];

int tls_session_input(struct tls_session *s, const uint8_t *data, size_t len, tls_plain_fn plain,
                      void *plain_arg)
{
    if (s->dead)
        return s->dead;
    s->in = data;
    s->in_len = len;
    int rc = 0;
    if (!s->handshake_done) {
        rc = tls_session_handshake(s);
        if (rc == -EAGAIN)
            rc = 0; /* waiting for more of the peer's flight; all input went in */
        if (rc < 0 || !s->handshake_done)
            goto out;
    }
    /* The handshake may end mid-buffer with application data behind it: keep reading until
     * mbedTLS has consumed every byte we were given. */
    for (;;) {
        int n = mbedtls_ssl_read(&s->ssl, tls_plain_buf, sizeof tls_plain_buf);
        if (n > 0) {
            if (plain(plain_arg, tls_plain_buf, (size_t)n) != 0)
                break;
            continue;
        }
        if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE)
            break;
        if (n == 0)
            n = MBEDTLS_ERR_SSL_CONN_EOF;
        rc = tls_session_fail(s, n);
        break;
    }
out:
    s->in = NULL;
    s->in_len = 0;
    return rc;
}

int tls_session_write(struct tls_session *s, const uint8_t *data, size_t len)
{
    if (s->dead)
        return s->dead;
    if (!s->handshake_done)
        return -EAGAIN;
    while (len > 0) {
        int n = mbedtls_ssl_write(&s->ssl, data, len);
        if (n <= 0)
            return tls_session_fail(s, n == 0 ? MBEDTLS_ERR_SSL_INTERNAL_ERROR : n);
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int tls_session_close_notify(struct tls_session *s)
{
    if (s->dead)
        return s->dead;
    int rc = mbedtls_ssl_close_notify(&s->ssl);
    if (rc != 0 && rc != MBEDTLS_ERR_SSL_WANT_WRITE)
        return tls_session_fail(s, rc);
    return 0;
}

const char *tls_session_describe(const struct tls_session *s, char *buf, size_t cap)
{
    if (cap == 0)
        return buf;
    buf[0] = '\0';
    if (s->out_err != 0) {
        snprintf(buf, cap, "transport: %s", strerror(-s->out_err));
        return buf;
    }
    if (s->last_err == 0) {
        snprintf(buf, cap, "no error");
        return buf;
    }
    mbedtls_strerror(s->last_err, buf, cap);
    size_t used = strlen(buf);
    if (s->verify_flags != 0 && used + 3 < cap) {
        memcpy(buf + used, ": ", 3);
        used += 2;
        int n = mbedtls_x509_crt_verify_info(buf + used, cap - used, "", s->verify_flags);
        if (n < 0)
            buf[used] = '\0';
        /* verify_info puts one reason per line; a log line wants them on one. */
        for (char *p = buf + used; *p != '\0'; p++)
            if (*p == '\n')
                *p = p[1] == '\0' ? '\0' : ';';
    }
    return buf;
}
