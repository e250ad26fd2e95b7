/* TLS adapter: configs (good and bad files), a client and a server session handshaking
 * through memory, data both ways, close_notify, verification failures (wrong hostname, unknown
 * CA), garbage input, and the per-thread random generator (fresh after fork). */
#include "common/tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/lib/testnet.h"
#include "tests/unit/testing.h"

struct tls_box {
    uint8_t data[1 << 18];
    size_t len;
};

static int box_out(void *arg, const uint8_t *d, size_t n)
{
    struct tls_box *b = arg;
    CHECK(b->len + n <= sizeof b->data);
    memcpy(b->data + b->len, d, n);
    b->len += n;
    return 0;
}

static struct tls_box plain_in;
static int box_plain(void *arg, const uint8_t *d, size_t n)
{
    (void)arg;
    return box_out(&plain_in, d, n);
}

static const char *tls_dir(void)
{
    static char dir[512];
    if (dir[0] == '\0') {
        snprintf(dir, sizeof dir, "%s/pki", test_tmpdir());
        CHECK_MSG(test_ca_make(dir) == 0, "make-test-ca.sh failed");
    }
    return dir;
}

static const char *tls_file(const char *name)
{
    static char paths[4][600];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, 600, "%s/%s", tls_dir(), name);
    return p;
}

struct tls_pair {
    struct tls_config *ccfg, *scfg;
    struct tls_session *c, *s;
    struct tls_box c_out, s_out; /* what each side sent, not yet delivered */
    int c_rc, s_rc;
};

/* Moves bytes both ways until neither side has anything to say; keeps the last results. */
static void tls_pump(struct tls_pair *p)
{
    static struct tls_box tmp;
    for (int round = 0; round < 20 && (p->c_out.len > 0 || p->s_out.len > 0); round++) {
        if (p->c_out.len > 0) {
            tmp = p->c_out;
            p->c_out.len = 0;
            p->s_rc = tls_session_input(p->s, tmp.data, tmp.len, box_plain, NULL);
        }
        if (p->s_out.len > 0) {
            tmp = p->s_out;
            p->s_out.len = 0;
            p->c_rc = tls_session_input(p->c, tmp.data, tmp.len, box_plain, NULL);
        }
    }
}

static void tls_pair_open(struct tls_pair *p, const char *ca, const char *host)
{
    memset(p, 0, sizeof *p);
    CHECK_EQ(tls_config_client_new(&p->ccfg, tls_file(ca)), 0);
    CHECK_EQ(tls_config_server_new(&p->scfg, tls_file("server.crt"), tls_file("server.key")), 0);
    CHECK_EQ(tls_session_new(&p->c, p->ccfg, host, box_out, &p->c_out), 0);
    CHECK_EQ(tls_session_new(&p->s, p->scfg, NULL, box_out, &p->s_out), 0);
    CHECK_EQ(tls_session_handshake(p->c), -EAGAIN);
    CHECK(p->c_out.len > 0); /* ClientHello */
    tls_pump(p);
}

static void tls_pair_close(struct tls_pair *p)
{
    tls_session_free(p->c);
    tls_session_free(p->s);
    tls_config_free(p->ccfg);
    tls_config_free(p->scfg);
}

TEST(tls_handshake_data_and_close_notify)
{
    struct tls_pair p;
    tls_pair_open(&p, "ca.crt", "localhost");
    CHECK_EQ(p.c_rc, 0);
    CHECK_EQ(p.s_rc, 0);
    CHECK(tls_session_handshake_done(p.c));
    CHECK(tls_session_handshake_done(p.s));
    /* the cheapest AEAD suite per byte of audio (common/tls.c has the figures), both sides */
    CHECK_MSG(
        strcmp(tls_session_ciphersuite(p.c), "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256") == 0,
        "negotiated %s", tls_session_ciphersuite(p.c));
    CHECK(strcmp(tls_session_ciphersuite(p.s), tls_session_ciphersuite(p.c)) == 0);

    /* client -> server, bigger than one record */
    static uint8_t big[40000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    CHECK_EQ(tls_session_write(p.c, big, sizeof big), 0);
    CHECK(p.c_out.len > sizeof big); /* ciphertext carries overhead */
    plain_in.len = 0;
    tls_pump(&p);
    CHECK_EQ(plain_in.len, sizeof big);
    CHECK(memcmp(plain_in.data, big, sizeof big) == 0);

    /* server -> client */
    plain_in.len = 0;
    CHECK_EQ(tls_session_write(p.s, (const uint8_t *)"pong", 4), 0);
    tls_pump(&p);
    CHECK_EQ(plain_in.len, 4);
    CHECK(memcmp(plain_in.data, "pong", 4) == 0);

    /* close_notify ends the other side's stream cleanly */
    CHECK_EQ(tls_session_close_notify(p.c), 0);
    tls_pump(&p);
    CHECK_EQ(p.s_rc, -ESHUTDOWN);
    tls_pair_close(&p);
}

/* A second connection from the same client config to the same host resumes the first one's
 * session (the server issued a ticket): no certificate, no key exchange, and data still flows
 * both ways. Another host name, or another config, does not get the session. */
TEST(tls_second_connection_resumes)
{
    struct tls_pair p;
    tls_pair_open(&p, "ca.crt", "localhost");
    CHECK(tls_session_handshake_done(p.c));
    CHECK_EQ(tls_session_resumed(p.c), 0);
    tls_session_free(p.c);
    tls_session_free(p.s);

    for (int round = 0; round < 2; round++) {
        struct tls_box hello = {.len = 0};
        CHECK_EQ(tls_session_new(&p.c, p.ccfg, "localhost", box_out, &p.c_out), 0);
        CHECK_EQ(tls_session_new(&p.s, p.scfg, NULL, box_out, &p.s_out), 0);
        CHECK_EQ(tls_session_handshake(p.c), -EAGAIN);
        hello = p.c_out;
        p.c_out.len = 0;
        CHECK_EQ(tls_session_input(p.s, hello.data, hello.len, box_plain, NULL), 0);
        /* ServerHello, ChangeCipherSpec, Finished: no Certificate, no ServerKeyExchange */
        CHECK_MSG(p.s_out.len < 300, "server's first flight is %zu bytes", p.s_out.len);
        tls_pump(&p);
        CHECK(tls_session_handshake_done(p.c) && tls_session_handshake_done(p.s));
        CHECK_EQ(tls_session_resumed(p.c), 1);
        plain_in.len = 0;
        CHECK_EQ(tls_session_write(p.c, (const uint8_t *)"ping", 4), 0);
        tls_pump(&p);
        CHECK(plain_in.len == 4 && memcmp(plain_in.data, "ping", 4) == 0);
        plain_in.len = 0;
        CHECK_EQ(tls_session_write(p.s, (const uint8_t *)"pong", 4), 0);
        tls_pump(&p);
        CHECK(plain_in.len == 4 && memcmp(plain_in.data, "pong", 4) == 0);
        tls_session_free(p.c);
        tls_session_free(p.s);
    }

    /* a session is only offered to its own host: another name gets a full handshake, and so
     * fails verification here (mbedTLS 2.28 does not match the certificate's IP address),
     * where a resumed session would have skipped the check */
    p.c_out.len = p.s_out.len = 0;
    CHECK_EQ(tls_session_new(&p.c, p.ccfg, "127.0.0.1", box_out, &p.c_out), 0);
    CHECK_EQ(tls_session_new(&p.s, p.scfg, NULL, box_out, &p.s_out), 0);
    CHECK_EQ(tls_session_handshake(p.c), -EAGAIN);
    tls_pump(&p);
    CHECK_EQ(p.c_rc, -EKEYREJECTED);
    tls_session_free(p.c);
    tls_session_free(p.s);

    /* a server that cannot open the ticket (another config: another ticket key) makes the
     * client fall back to a full handshake, whose session is then kept instead */
    struct tls_config *scfg2;
    CHECK_EQ(tls_config_server_new(&scfg2, tls_file("server.crt"), tls_file("server.key")), 0);
    for (int round = 0; round < 2; round++) {
        p.c_out.len = p.s_out.len = 0;
        CHECK_EQ(tls_session_new(&p.c, p.ccfg, "localhost", box_out, &p.c_out), 0);
        CHECK_EQ(tls_session_new(&p.s, scfg2, NULL, box_out, &p.s_out), 0);
        CHECK_EQ(tls_session_handshake(p.c), -EAGAIN);
        tls_pump(&p);
        CHECK(tls_session_handshake_done(p.c) && tls_session_handshake_done(p.s));
        CHECK_EQ(tls_session_resumed(p.c), round);
        tls_session_free(p.c);
        tls_session_free(p.s);
    }
    tls_config_free(scfg2);

    /* a fresh config knows no session */
    struct tls_config *other;
    CHECK_EQ(tls_config_client_new(&other, tls_file("ca.crt")), 0);
    p.c_out.len = p.s_out.len = 0;
    CHECK_EQ(tls_session_new(&p.c, other, "localhost", box_out, &p.c_out), 0);
    CHECK_EQ(tls_session_new(&p.s, p.scfg, NULL, box_out, &p.s_out), 0);
    CHECK_EQ(tls_session_handshake(p.c), -EAGAIN);
    tls_pump(&p);
    CHECK(tls_session_handshake_done(p.c));
    CHECK_EQ(tls_session_resumed(p.c), 0);
    tls_session_free(p.c);
    tls_session_free(p.s);
    p.c = p.s = NULL;
    tls_config_free(other);
    tls_pair_close(&p);
}

/* A client whose verification failed caches nothing: the next connection with the right
 * trust still verifies the chain (and with the wrong one still fails). */
TEST(tls_failed_handshake_is_not_cached)
{
    struct tls_pair p;
    tls_pair_open(&p, "other-ca.crt", "localhost");
    CHECK_EQ(p.c_rc, -EKEYREJECTED);
    tls_session_free(p.c);
    tls_session_free(p.s);
    p.c_out.len = p.s_out.len = 0;
    CHECK_EQ(tls_session_new(&p.c, p.ccfg, "localhost", box_out, &p.c_out), 0);
    CHECK_EQ(tls_session_new(&p.s, p.scfg, NULL, box_out, &p.s_out), 0);
    CHECK_EQ(tls_session_handshake(p.c), -EAGAIN);
    tls_pump(&p);
    CHECK_EQ(p.c_rc, -EKEYREJECTED);
    CHECK(!tls_session_handshake_done(p.c));
    tls_pair_close(&p);
}

TEST(tls_wrong_hostname_fails_verification)
{
    struct tls_pair p;
    tls_pair_open(&p, "ca.crt", "wrong.example");
    CHECK_EQ(p.c_rc, -EKEYREJECTED);
    char why[256];
    tls_session_describe(p.c, why, sizeof why);
    CHECK_MSG(strstr(why, "CN") != NULL || strstr(why, "name") != NULL, "describe: %s", why);
    /* dead: every later call reports the same error */
    CHECK_EQ(tls_session_write(p.c, (const uint8_t *)"x", 1), -EKEYREJECTED);
    CHECK_EQ(tls_session_handshake(p.c), -EKEYREJECTED);
    tls_pair_close(&p);
}

TEST(tls_unknown_ca_fails_verification)
{
    struct tls_pair p;
    tls_pair_open(&p, "other-ca.crt", "localhost");
    CHECK_EQ(p.c_rc, -EKEYREJECTED);
    char why[256];
    tls_session_describe(p.c, why, sizeof why);
    CHECK_MSG(strstr(why, "not correctly signed") != NULL || strstr(why, "trusted") != NULL,
              "describe: %s", why);
    tls_pair_close(&p);
}

TEST(tls_config_errors)
{
    struct tls_config *cfg = (struct tls_config *)1;
    char path[600];
    CHECK_EQ(tls_config_client_new(&cfg, "/nonexistent/ca.pem"), -ENOENT);
    CHECK(cfg == NULL);
    snprintf(path, sizeof path, "%s/garbage.pem", test_tmpdir());
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    CHECK_EQ(tls_config_client_new(&cfg, path), -EINVAL);
    CHECK_EQ(tls_config_server_new(&cfg, path, tls_file("server.key")), -EINVAL);
    /* a key that does not belong to the certificate */
    CHECK_EQ(tls_config_server_new(&cfg, tls_file("server.crt"), tls_file("ca.key")), -EINVAL);
    CHECK_EQ(tls_config_server_new(&cfg, tls_file("server.crt"), "/nonexistent/key"), -ENOENT);
    /* a client session needs a hostname to verify */
    CHECK_EQ(tls_config_client_new(&cfg, tls_file("ca.crt")), 0);
    struct tls_session *s = NULL;
    struct tls_box out;
    CHECK_EQ(tls_session_new(&s, cfg, NULL, box_out, &out), -EINVAL);
    tls_config_free(cfg);
}

TEST(tls_default_ca_bundle_loads)
{
    if (access(TLS_DEFAULT_CA_FILE, R_OK) != 0)
        return; /* no system bundle on this machine: nothing to check */
    struct tls_config *cfg;
    CHECK_EQ(tls_config_client_new(&cfg, NULL), 0);
    tls_config_free(cfg);
}

TEST(tls_garbage_input_is_an_error)
{
    struct tls_config *scfg;
    CHECK_EQ(tls_config_server_new(&scfg, tls_file("server.crt"), tls_file("server.key")), 0);
    struct tls_session *s;
    struct tls_box out = {.len = 0};
    CHECK_EQ(tls_session_new(&s, scfg, NULL, box_out, &out), 0);
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    int rc = tls_session_input(s, (const uint8_t *)http, strlen(http), box_plain, NULL);
    CHECK_MSG(rc == -EPROTO, "rc=%d", rc);
    tls_session_free(s);
    tls_config_free(scfg);
}

TEST(tls_random_differs_and_reseeds_after_fork)
{
    uint8_t a[32], b[32], zero[32] = {0};
    CHECK_EQ(tls_random(a, sizeof a), 0);
    CHECK_EQ(tls_random(b, sizeof b), 0);
    CHECK(memcmp(a, b, sizeof a) != 0);
    CHECK(memcmp(a, zero, sizeof a) != 0);
    static uint8_t large[5000]; /* more than one DRBG request */
    CHECK_EQ(tls_random(large, sizeof large), 0);

    /* small requests (WebSocket masks) come from a block drawn ahead: they differ too, and
     * a block's bytes are never handed out twice */
    uint8_t masks[200][4];
    for (int i = 0; i < 200; i++)
        CHECK_EQ(tls_random(masks[i], 4), 0);
    int same = 0;
    for (int i = 1; i < 200; i++)
        same += memcmp(masks[i], masks[i - 1], 4) == 0;
    CHECK_EQ(same, 0);

    /* a child must not replay the parent's generator, nor the small-request block the
     * parent drew before the fork (the parent's next mask comes from it) */
    uint8_t mask[4];
    CHECK_EQ(tls_random(mask, sizeof mask), 0);
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    CHECK(pid != -1);
    if (pid == 0) {
        uint8_t c[36];
        _exit(tls_random(c, 4) == 0 && tls_random(c + 4, 32) == 0 &&
                      write(fds[1], c, sizeof c) == sizeof c
                  ? 0
                  : 1);
    }
    uint8_t parent[36], child[36];
    CHECK_EQ(tls_random(parent, 4), 0);
    CHECK_EQ(tls_random(parent + 4, 32), 0);
    CHECK_EQ(read(fds[0], child, sizeof child), (ssize_t)sizeof child);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(memcmp(parent, child, 4) != 0);
    CHECK(memcmp(parent + 4, child + 4, 32) != 0);
    close(fds[0]);
    close(fds[1]);
    tls_thread_cleanup();
}

/* Shared configs, one session pair and one generator per thread: the way call threads use
 * them. Under ThreadSanitizer this checks that nothing shared is written after setup. */
struct tls_thread_arg {
    struct tls_config *ccfg, *scfg;
    int ok;
};

struct tls_thread_state {
    struct tls_box c_out, s_out, tmp, plain;
};

static int box_plain_local(void *arg, const uint8_t *d, size_t n)
{
    return box_out(arg, d, n);
}

static void *tls_thread_main(void *argp)
{
    struct tls_thread_arg *a = argp;
    struct tls_thread_state *st = calloc(1, sizeof *st);
    struct tls_session *c = NULL, *s = NULL;
    if (st == NULL || tls_session_new(&c, a->ccfg, "localhost", box_out, &st->c_out) != 0 ||
        tls_session_new(&s, a->scfg, NULL, box_out, &st->s_out) != 0)
        goto out;
    for (int round = 0; round < 3; round++) {
        if (round == 0 && tls_session_handshake(c) != -EAGAIN)
            goto out;
        for (int i = 0; i < 20 && (st->c_out.len || st->s_out.len); i++) {
            if (st->c_out.len) {
                st->tmp = st->c_out;
                st->c_out.len = 0;
                if (tls_session_input(s, st->tmp.data, st->tmp.len, box_plain_local, &st->plain) !=
                    0)
                    goto out;
            }
            if (st->s_out.len) {
                st->tmp = st->s_out;
                st->s_out.len = 0;
                if (tls_session_input(c, st->tmp.data, st->tmp.len, box_plain_local, &st->plain) !=
                    0)
                    goto out;
            }
        }
        uint8_t msg[64];
        if (tls_random(msg, sizeof msg) != 0 || tls_session_write(c, msg, sizeof msg) != 0)
            goto out;
    }
    a->ok = tls_session_handshake_done(c) && tls_session_handshake_done(s) &&
            st->plain.len == 2 * 64; /* the third write is still in c_out */
out:
    tls_session_free(c);
    tls_session_free(s);
    free(st);
    tls_thread_cleanup();
    return NULL;
}

TEST(tls_shared_config_concurrent)
{
    struct tls_config *ccfg, *scfg;
    CHECK_EQ(tls_config_client_new(&ccfg, tls_file("ca.crt")), 0);
    CHECK_EQ(tls_config_server_new(&scfg, tls_file("server.crt"), tls_file("server.key")), 0);
    pthread_t t[4];
    struct tls_thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct tls_thread_arg){ccfg, scfg, 0};
        CHECK_EQ(pthread_create(&t[i], NULL, tls_thread_main, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(pthread_join(t[i], NULL), 0);
        CHECK_MSG(args[i].ok, "thread %d failed", i);
    }
    tls_config_free(ccfg);
    tls_config_free(scfg);
}
