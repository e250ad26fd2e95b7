/* Configuration: one JSON file (read through jansson, which stays inside config.c) plus the
 * environment variables users already set, validated into a plain struct the rest of the
 * program reads. A load that fails leaves the caller's struct untouched, so a reload is all or
 * nothing. Keys, defaults and validation: docs/configuration.md. */
#ifndef VB_COMMON_CONFIG_H
#define VB_COMMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"

#define CONFIG_LISTEN_MAX 16       /* entries in "listen" */
#define CONFIG_FILE_MAX (1u << 20) /* bytes in a configuration file */
#define CONFIG_WORKERS_MAX 1024

enum config_audio_format { CONFIG_AUDIO_PCM16 = 0, CONFIG_AUDIO_G711_ULAW = 1 };

#define CONFIG_PATH_MAX 512

struct config_listen {
    char host[256]; /* "127.0.0.1", "::1" (brackets removed) or a host name to resolve */
    uint16_t port;
    int family; /* AF_INET, AF_INET6, or AF_UNSPEC for a host name */
    /* TLS on this listener: PEM certificate chain and key files; both "" for plain TCP. */
    char tls_cert[CONFIG_PATH_MAX];
    char tls_key[CONFIG_PATH_MAX];
};

/* Every char * below is owned by the struct (freed by config_free) and is NULL only where the
 * comment says so. Secrets (marked) come from the environment only: never log them. */
struct config {
    char *path; /* the file this was loaded from */
    struct config_listen listen[CONFIG_LISTEN_MAX];
    size_t listen_count; /* 1..CONFIG_LISTEN_MAX */
    char *public_url;    /* "http(s)://host[:port]", no trailing slash; NULL: not set */
    unsigned workers;    /* 1..1024, or 0 for "auto" (see config_worker_count) */
    unsigned max_calls_per_worker;
    unsigned call_threads; /* scheduler threads per worker running the calls; 0: one per CPU */
    enum log_level log_level;
    char *log_file; /* NULL: stderr */
    char *pid_file;
    unsigned drain_timeout_s;
    unsigned drain_announce_s; /* stop: /readyz 503 this long before the listeners close */
    char *jwt_secret; /* JWT_SECRET, secret; NULL: not set */

    struct config_redis {
        char *host;     /* from redis_url / REDIS_URL */
        uint16_t port;  /* 6379 when the URL names none */
        unsigned db;    /* 0 when the URL names none */
        char *username; /* NULL: none */
        char *password; /* secret; NULL: none */
        char *prefix;   /* redis_prefix, put before every key */
        unsigned retention_s;   /* redis_retention_s: TTL of call records and transcripts */
        unsigned session_ttl_s; /* redis_session_ttl_s: a live-session key outlives its node */
        unsigned events_maxlen; /* redis_events_maxlen: XADD MAXLEN ~ of the event stream */
        unsigned queue_max;     /* redis_queue_max: writes a worker holds while Redis is away */
        unsigned timeout_ms;    /* redis_timeout_ms: an unanswered connection is dropped */
    } redis;
    char *node_name; /* this node in Redis (session owner, control channel); NULL: host name */

    struct config_openai {
        char *url; /* ws:// or wss://, no query: the bridge appends ?model= */
        char *model;
        char *voice;
        enum config_audio_format audio_format;
        char *instructions;
        char *ca_file;             /* NULL: the system CA bundle */
        bool greeting_inbound;     /* the AI speaks first on inbound calls (always on outbound) */
        char *transcription_model; /* NULL: no transcription of the caller */
        char *turn_detection;      /* compact JSON object, sent to OpenAI verbatim */
        char *apology;             /* spoken when the AI side fails; NULL: hang up silently */
        char *api_key;             /* OPENAI_API_KEY, secret; NULL: not set */
    } openai;

    struct config_twilio {
        char *api_url; /* "http(s)://host[:port]", no trailing slash */
        bool validate_signatures;
        char *machine_detection; /* "Enable" or "DetectMessageEnd"; NULL: no answering-machine
                                    detection on outbound calls */
        char *account_sid;  /* TWILIO_ACCOUNT_SID; NULL: not set */
        char *auth_token;   /* TWILIO_AUTH_TOKEN, secret; NULL: not set */
        char *phone_number; /* TWILIO_PHONE_NUMBER, E.164; NULL: not set */
        unsigned stream_token_ttl_s; /* how long the TwiML's stream token stays valid */
        bool record; /* outbound calls are recorded (dual channel) with a recording callback */
    } twilio;

    struct config_auth {
        unsigned jwt_leeway_s; /* clock skew allowed on exp and nbf */
        bool jwt_require_exp;  /* refuse tokens without exp */
    } auth;

    /* For each call's cost_usd: OpenAI prices per 1M tokens (defaults: gpt-realtime), Twilio's
     * per started minute (defaults: US numbers). */
    struct config_pricing {
        double openai_audio_in, openai_audio_cached_in, openai_audio_out;
        double openai_text_in, openai_text_cached_in, openai_text_out;
        double twilio_inbound_per_min, twilio_outbound_per_min, twilio_stream_per_min;
    } pricing;

    struct config_rate_limit {
        unsigned user_per_minute; /* calls one user may create per minute (sustained) */
        unsigned user_burst;      /* ...and at once */
        unsigned global_per_minute;
        unsigned global_burst;
        unsigned max_users; /* users tracked; the least recently seen is forgotten first */
    } rate_limit;

    struct config_bridge {
        unsigned pacing_lead_ms; /* most audio sent ahead of playback */
        unsigned pacing_low_ms;  /* topped up to the lead before it falls under this */
        unsigned mark_interval_ms;
        unsigned max_ws_message_bytes;
    } bridge;

    struct config_http {
        unsigned max_header_bytes;
        unsigned max_body_bytes;
        unsigned request_timeout_ms;
        unsigned keepalive_timeout_ms; /* 0: close after each response */
    } http;

    struct config_tools {
        struct config_webhook {
            char *url; /* NULL: no webhook tool ("tools.webhook": null) */
            unsigned timeout_ms;
            char *name;
            char *description;
            char *parameters; /* compact JSON Schema object, sent to OpenAI verbatim */
        } webhook;
    } tools;
};

/* Reads the JSON file at path, then the environment, and validates everything. On success
 * returns 0 and overwrites *out (without freeing what it held: load into a fresh struct and
 * config_free the old one once nothing reads it). On failure returns -EINVAL (bad content),
 * -ENOMEM, -EFBIG or another -errno from reading the file, writes a one-line message to err
 * (file name, key path, and line:column for JSON syntax errors; never a secret) and leaves
 * *out untouched. err may be NULL. */
int config_load(const char *path, struct config *out, char *err, size_t err_len);

/* config_load on text already in memory; name is used in messages and kept as out->path. */
int config_parse(const char *name, const char *text, size_t len, struct config *out, char *err,
                 size_t err_len);

/* Frees what config_load allocated (secrets are wiped first) and zeroes *c. A zeroed struct
 * may be freed. */
void config_free(struct config *c);

/* The number of workers to run: c->workers, or for "auto" one per online CPU (1..1024). */
unsigned config_worker_count(const struct config *c);

/* Valid but probably incomplete settings (a missing secret, signatures off): stores up to max
 * static one-line messages in out and returns how many there are in all. */
size_t config_warnings(const struct config *c, const char *out[], size_t max);

/* The i-th key path of the schema ("openai.voice"), NULL past the last: lets tests prove that
 * the docs and the example file cover every key. */
const char *config_key_path(size_t i);

#endif
