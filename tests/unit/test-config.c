/* Configuration: defaults, a full file, environment overrides, one test per class of error
 * (each must name its key), secrets kept out of messages, all-or-nothing loading, and the
 * example file and docs covering every key of the schema. Tests run from the tree's root. */
#include "common/config.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/unit/testing.h"

static const char *const env_names[] = {
    "OPENAI_API_KEY", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_PHONE_NUMBER",
    "JWT_SECRET",     "REDIS_URL",          "PUBLIC_BASE_URL"};

/* The caller's shell may export any of these: every test starts without them. */
static void env_clear(void)
{
    for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++)
        unsetenv(env_names[i]);
}

static void write_file(const char *path, const char *text, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd != -1);
    CHECK_EQ(write(fd, text, len), (long long)len);
    close(fd);
}

static const char *cfg_path(void)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/c.json", test_tmpdir());
    return path;
}

static int load_text(const char *text, struct config *c, char *err, size_t n)
{
    write_file(cfg_path(), text, strlen(text));
    return config_load(cfg_path(), c, err, n);
}

static struct config load_ok_at(int line, const char *text)
{
    struct config c;
    char err[1024];
    int rc = load_text(text, &c, err, sizeof err);
    if (rc != 0)
        test_fail(__FILE__, line, "config_load: %d: %s", rc, err);
    return c;
}
#define LOAD_OK(text) load_ok_at(__LINE__, text)

/* Loading text must fail with -EINVAL and a message that starts with the file name and
 * contains want. Returns nothing: the message is checked here. */
static void expect_error_at(int line, const char *text, const char *want)
{
    struct config c;
    char err[1024] = "";
    memset(&c, 0x5a, sizeof c);
    int rc = load_text(text, &c, err, sizeof err);
    if (rc != -EINVAL)
        test_fail(__FILE__, line, "rc %d, want -EINVAL (err: %s) for %s", rc, err, text);
    if (strncmp(err, cfg_path(), strlen(cfg_path())) != 0)
        test_fail(__FILE__, line, "message does not start with the file name: %s", err);
    if (strstr(err, want) == NULL)
        test_fail(__FILE__, line, "message \"%s\" lacks \"%s\"", err, want);
    for (size_t i = 0; i < sizeof c; i++)
        if (((unsigned char *)&c)[i] != 0x5a)
            test_fail(__FILE__, line, "a failed load changed *out");
}
#define EXPECT_ERROR(text, want) expect_error_at(__LINE__, text, want)

static int streq(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void check_same_config(const struct config *a, const struct config *b)
{
    CHECK_EQ(a->listen_count, b->listen_count);
    for (size_t i = 0; i < a->listen_count; i++) {
        CHECK(strcmp(a->listen[i].host, b->listen[i].host) == 0);
        CHECK_EQ(a->listen[i].port, b->listen[i].port);
        CHECK_EQ(a->listen[i].family, b->listen[i].family);
    }
    CHECK(streq(a->public_url, b->public_url));
    CHECK_EQ(a->workers, b->workers);
    CHECK_EQ(a->max_calls_per_worker, b->max_calls_per_worker);
    CHECK_EQ(a->call_threads, b->call_threads);
    CHECK_EQ(a->log_level, b->log_level);
    CHECK(streq(a->log_file, b->log_file));
    CHECK(streq(a->pid_file, b->pid_file));
    CHECK_EQ(a->drain_timeout_s, b->drain_timeout_s);
    CHECK_EQ(a->drain_announce_s, b->drain_announce_s);
    CHECK(streq(a->jwt_secret, b->jwt_secret));
    CHECK(streq(a->redis.host, b->redis.host));
    CHECK_EQ(a->redis.port, b->redis.port);
    CHECK_EQ(a->redis.db, b->redis.db);
    CHECK(streq(a->redis.username, b->redis.username));
    CHECK(streq(a->redis.password, b->redis.password));
    CHECK(streq(a->redis.prefix, b->redis.prefix));
    CHECK_EQ(a->redis.retention_s, b->redis.retention_s);
    CHECK_EQ(a->redis.session_ttl_s, b->redis.session_ttl_s);
    CHECK_EQ(a->redis.events_maxlen, b->redis.events_maxlen);
    CHECK_EQ(a->redis.queue_max, b->redis.queue_max);
    CHECK_EQ(a->redis.timeout_ms, b->redis.timeout_ms);
    CHECK(streq(a->node_name, b->node_name));
    CHECK(streq(a->openai.url, b->openai.url));
    CHECK(streq(a->openai.model, b->openai.model));
    CHECK(streq(a->openai.voice, b->openai.voice));
    CHECK_EQ(a->openai.audio_format, b->openai.audio_format);
    CHECK(streq(a->openai.instructions, b->openai.instructions));
    CHECK(streq(a->openai.ca_file, b->openai.ca_file));
    CHECK_EQ(a->openai.greeting_inbound, b->openai.greeting_inbound);
    CHECK(streq(a->openai.transcription_model, b->openai.transcription_model));
    CHECK(streq(a->openai.turn_detection, b->openai.turn_detection));
    CHECK(streq(a->openai.apology, b->openai.apology));
    CHECK(streq(a->openai.api_key, b->openai.api_key));
    CHECK(streq(a->twilio.api_url, b->twilio.api_url));
    CHECK_EQ(a->twilio.validate_signatures, b->twilio.validate_signatures);
    CHECK(streq(a->twilio.account_sid, b->twilio.account_sid));
    CHECK(streq(a->twilio.auth_token, b->twilio.auth_token));
    CHECK(streq(a->twilio.phone_number, b->twilio.phone_number));
    CHECK_EQ(a->twilio.stream_token_ttl_s, b->twilio.stream_token_ttl_s);
    CHECK_EQ(a->auth.jwt_leeway_s, b->auth.jwt_leeway_s);
    CHECK_EQ(a->auth.jwt_require_exp, b->auth.jwt_require_exp);
    CHECK_EQ(a->rate_limit.user_per_minute, b->rate_limit.user_per_minute);
    CHECK_EQ(a->rate_limit.user_burst, b->rate_limit.user_burst);
    CHECK_EQ(a->rate_limit.global_per_minute, b->rate_limit.global_per_minute);
    CHECK_EQ(a->rate_limit.global_burst, b->rate_limit.global_burst);
    CHECK_EQ(a->rate_limit.max_users, b->rate_limit.max_users);
    CHECK_EQ(a->bridge.pacing_lead_ms, b->bridge.pacing_lead_ms);
    CHECK_EQ(a->bridge.pacing_low_ms, b->bridge.pacing_low_ms);
    CHECK_EQ(a->bridge.mark_interval_ms, b->bridge.mark_interval_ms);
    CHECK_EQ(a->bridge.max_ws_message_bytes, b->bridge.max_ws_message_bytes);
    CHECK_EQ(a->http.max_header_bytes, b->http.max_header_bytes);
    CHECK_EQ(a->http.max_body_bytes, b->http.max_body_bytes);
    CHECK_EQ(a->http.request_timeout_ms, b->http.request_timeout_ms);
    CHECK_EQ(a->http.keepalive_timeout_ms, b->http.keepalive_timeout_ms);
    CHECK(streq(a->tools.webhook.url, b->tools.webhook.url));
    CHECK_EQ(a->tools.webhook.timeout_ms, b->tools.webhook.timeout_ms);
    CHECK(streq(a->tools.webhook.name, b->tools.webhook.name));
    CHECK(streq(a->tools.webhook.description, b->tools.webhook.description));
    CHECK(streq(a->tools.webhook.parameters, b->tools.webhook.parameters));
}

TEST(config_defaults)
{
    env_clear();
    struct config c = LOAD_OK("{}");
    CHECK(strcmp(c.path, cfg_path()) == 0);
    CHECK_EQ(c.listen_count, 1);
    CHECK(strcmp(c.listen[0].host, "127.0.0.1") == 0);
    CHECK_EQ(c.listen[0].port, 8080);
    CHECK_EQ(c.listen[0].family, AF_INET);
    CHECK(c.public_url == NULL);
    CHECK_EQ(c.workers, 0);
    CHECK_EQ(c.max_calls_per_worker, 1000);
    CHECK_EQ(c.call_threads, 0);
    CHECK_EQ(c.log_level, LOG_INFO);
    CHECK(c.log_file == NULL);
    CHECK(strcmp(c.pid_file, "voicebridge.pid") == 0);
    CHECK_EQ(c.drain_timeout_s, 300);
    CHECK_EQ(c.drain_announce_s, 2);
    CHECK(c.jwt_secret == NULL);
    CHECK(strcmp(c.redis.host, "127.0.0.1") == 0);
    CHECK_EQ(c.redis.port, 6379);
    CHECK_EQ(c.redis.db, 0);
    CHECK(c.redis.username == NULL && c.redis.password == NULL);
    CHECK(strcmp(c.redis.prefix, "vb:") == 0);
    CHECK_EQ(c.redis.retention_s, 2592000);
    CHECK_EQ(c.redis.session_ttl_s, 60);
    CHECK_EQ(c.redis.events_maxlen, 100000);
    CHECK_EQ(c.redis.queue_max, 100000);
    CHECK_EQ(c.redis.timeout_ms, 3000);
    CHECK(c.node_name == NULL);
    CHECK(strcmp(c.openai.url, "wss://api.openai.com/v1/realtime") == 0);
    CHECK(strcmp(c.openai.model, "gpt-realtime") == 0);
    CHECK(strcmp(c.openai.voice, "alloy") == 0);
    CHECK_EQ(c.openai.audio_format, CONFIG_AUDIO_PCM16);
    CHECK(c.openai.instructions != NULL && c.openai.instructions[0] != '\0');
    CHECK(c.openai.ca_file == NULL);
    CHECK(c.openai.greeting_inbound);
    CHECK(strcmp(c.openai.transcription_model, "gpt-4o-mini-transcribe") == 0);
    CHECK(strcmp(c.openai.turn_detection, "{\"type\":\"server_vad\",\"threshold\":0.5,"
                                          "\"prefix_padding_ms\":300,"
                                          "\"silence_duration_ms\":500}") == 0);
    CHECK(strcmp(c.openai.apology, "Sorry, we are having technical difficulties. Please call "
                                   "again later.") == 0);
    CHECK(c.openai.api_key == NULL);
    CHECK(strcmp(c.twilio.api_url, "https://api.twilio.com") == 0);
    CHECK(c.twilio.validate_signatures);
    CHECK(c.twilio.account_sid == NULL && c.twilio.auth_token == NULL &&
          c.twilio.phone_number == NULL);
    CHECK_EQ(c.bridge.pacing_lead_ms, 120);
    CHECK_EQ(c.bridge.pacing_low_ms, 40);
    CHECK_EQ(c.bridge.mark_interval_ms, 1000);
    CHECK_EQ(c.bridge.max_ws_message_bytes, 262144);
    CHECK_EQ(c.http.max_header_bytes, 16384);
    CHECK_EQ(c.http.max_body_bytes, 65536);
    CHECK_EQ(c.http.request_timeout_ms, 10000);
    CHECK_EQ(c.http.keepalive_timeout_ms, 75000);
    CHECK(c.tools.webhook.url == NULL);
    CHECK_EQ(c.tools.webhook.timeout_ms, 5000);
    CHECK(strcmp(c.tools.webhook.name, "lookup") == 0);
    CHECK(strcmp(c.tools.webhook.parameters, "{\"type\":\"object\",\"properties\":{}}") == 0);
    config_free(&c);
    CHECK(c.path == NULL && c.openai.url == NULL && c.listen_count == 0);
    config_free(&c); /* a zeroed struct may be freed again */
}

TEST(config_example_file_is_the_defaults)
{
    env_clear();
    struct config d = LOAD_OK("{}"), e;
    char err[1024];
    int rc = config_load("deploy/voicebridge.example.json", &e, err, sizeof err);
    CHECK_MSG(rc == 0, "%s", err);
    check_same_config(&d, &e);
    config_free(&d);
    config_free(&e);
}

static char *slurp(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK_MSG(fd != -1, "%s: run the tests from the tree's root", path);
    static char buf[1 << 18];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    CHECK(n > 0 && n < (ssize_t)sizeof buf - 1);
    buf[n] = '\0';
    close(fd);
    return buf;
}

/* Every key of the schema is in the example file (unless its section is null there) and is
 * documented in docs/configuration.md as `path`, and so is every environment variable. */
TEST(config_example_and_docs_cover_every_key)
{
    json_error_t je;
    json_t *ex = json_load_file("deploy/voicebridge.example.json", 0, &je);
    CHECK_MSG(ex != NULL, "example: %d: %s", je.line, je.text);
    char *docs = slurp("docs/configuration.md");
    size_t count = 0;
    for (size_t i = 0; config_key_path(i) != NULL; i++, count++) {
        const char *path = config_key_path(i);
        char tick[300];
        snprintf(tick, sizeof tick, "`%s`", path);
        CHECK_MSG(strstr(docs, tick) != NULL, "docs/configuration.md does not document %s", tick);
        char buf[256];
        snprintf(buf, sizeof buf, "%s", path);
        json_t *v = ex;
        for (char *save, *part = strtok_r(buf, ".", &save); part != NULL && v != NULL;
             part = strtok_r(NULL, ".", &save)) {
            if (json_is_null(v))
                break; /* a section that is null by default: its keys are in the docs */
            v = json_object_get(v, part);
        }
        CHECK_MSG(v != NULL, "deploy/voicebridge.example.json lacks %s", path);
    }
    CHECK(count >= 40); /* the schema as of this writing; it only grows */
    for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++) {
        char tick[64];
        snprintf(tick, sizeof tick, "`%s`", env_names[i]);
        CHECK_MSG(strstr(docs, tick) != NULL, "docs/configuration.md lacks %s", tick);
    }
    json_decref(ex);

    /* The example in the docs is a valid configuration. */
    char *start = strstr(docs, "```json\n"), *end = start ? strstr(start + 8, "```") : NULL;
    CHECK_MSG(start != NULL && end != NULL, "docs/configuration.md has no ```json example");
    struct config c;
    char err[1024];
    env_clear();
    CHECK_MSG(config_parse("docs example", start + 8, (size_t)(end - start - 8), &c, err,
                           sizeof err) == 0,
              "%s", err);
    CHECK(c.tools.webhook.url != NULL);
    config_free(&c);
}

TEST(config_full_file)
{
    env_clear();
    char ca[512], text[4096];
    snprintf(ca, sizeof ca, "%s/ca.pem", test_tmpdir());
    write_file(ca, "x", 1);
    snprintf(
        text, sizeof text,
        "{\n"
        " \"listen\": [\"0.0.0.0:8443\", \"[::1]:9000\", \"localhost:7000\"],\n"
        " \"public_url\": \"https://voice.example.com:8443/\",\n"
        " \"workers\": 4, \"max_calls_per_worker\": 250, \"log_level\": \"debug\",\n"
        " \"call_threads\": 3,\n"
        " \"log_file\": \"/var/log/voicebridge.log\", \"pid_file\": \"/run/vb.pid\",\n"
        " \"redis_url\": \"redis://cache.internal:6380/2\", \"redis_prefix\": \"prod:vb:\",\n"
        " \"drain_timeout_s\": 60,\n"
        " \"openai\": {\"url\": \"ws://127.0.0.1:9999/v1/realtime\",\n"
        "   \"model\": \"gpt-4o-realtime-preview-2024-12-17\", \"voice\": \"marin\",\n"
        "   \"audio_format\": \"g711_ulaw\", \"instructions\": \"Be brief.\",\n"
        "   \"ca_file\": \"%s\", \"greeting_inbound\": false, \"transcription_model\": null,\n"
        "   \"turn_detection\": {\"type\": \"semantic_vad\", \"eagerness\": \"low\"},\n"
        "   \"apology\": null},\n"
        " \"twilio\": {\"api_url\": \"http://127.0.0.1:8090\", \"validate_signatures\": false},\n"
        " \"bridge\": {\"pacing_lead_ms\": 60, \"pacing_low_ms\": 10, \"mark_interval_ms\": 500,\n"
        "   \"max_ws_message_bytes\": 1048576},\n"
        " \"http\": {\"max_header_bytes\": 8192, \"max_body_bytes\": 131072,\n"
        "   \"request_timeout_ms\": 5000, \"keepalive_timeout_ms\": 0},\n"
        " \"tools\": {\"webhook\": {\"url\": \"https://crm.example.com/lookup?src=vb\",\n"
        "   \"timeout_ms\": 2000, \"name\": \"crm_lookup\", \"description\": \"Find the "
        "account.\",\n"
        "   \"parameters\": {\"type\": \"object\", \"properties\": {\"phone\": {\"type\": "
        "\"string\"}},\n"
        "                  \"required\": [\"phone\"]}}}\n"
        "}\n",
        ca);
    struct config c = LOAD_OK(text);
    CHECK_EQ(c.listen_count, 3);
    CHECK(strcmp(c.listen[0].host, "0.0.0.0") == 0 && c.listen[0].port == 8443);
    CHECK(strcmp(c.listen[1].host, "::1") == 0 && c.listen[1].port == 9000);
    CHECK_EQ(c.listen[1].family, AF_INET6);
    CHECK(strcmp(c.listen[2].host, "localhost") == 0 && c.listen[2].port == 7000);
    CHECK_EQ(c.listen[2].family, AF_UNSPEC);
    CHECK(strcmp(c.public_url, "https://voice.example.com:8443") == 0);
    CHECK_EQ(c.workers, 4);
    CHECK_EQ(config_worker_count(&c), 4);
    CHECK_EQ(c.max_calls_per_worker, 250);
    CHECK_EQ(c.call_threads, 3);
    CHECK_EQ(c.log_level, LOG_DEBUG);
    CHECK(strcmp(c.log_file, "/var/log/voicebridge.log") == 0);
    CHECK(strcmp(c.pid_file, "/run/vb.pid") == 0);
    CHECK(strcmp(c.redis.host, "cache.internal") == 0);
    CHECK_EQ(c.redis.port, 6380);
    CHECK_EQ(c.redis.db, 2);
    CHECK(strcmp(c.redis.prefix, "prod:vb:") == 0);
    CHECK_EQ(c.drain_timeout_s, 60);
    CHECK(strcmp(c.openai.url, "ws://127.0.0.1:9999/v1/realtime") == 0);
    CHECK(strcmp(c.openai.model, "gpt-4o-realtime-preview-2024-12-17") == 0);
    CHECK(strcmp(c.openai.voice, "marin") == 0);
    CHECK_EQ(c.openai.audio_format, CONFIG_AUDIO_G711_ULAW);
    CHECK(strcmp(c.openai.instructions, "Be brief.") == 0);
    CHECK(strcmp(c.openai.ca_file, ca) == 0);
    CHECK(!c.openai.greeting_inbound);
    CHECK(c.openai.transcription_model == NULL);
    CHECK(strcmp(c.openai.turn_detection, "{\"type\":\"semantic_vad\",\"eagerness\":\"low\"}") ==
          0);
    CHECK(c.openai.apology == NULL);
    CHECK(strcmp(c.twilio.api_url, "http://127.0.0.1:8090") == 0);
    CHECK(!c.twilio.validate_signatures);
    CHECK_EQ(c.bridge.pacing_lead_ms, 60);
    CHECK_EQ(c.bridge.pacing_low_ms, 10);
    CHECK_EQ(c.bridge.mark_interval_ms, 500);
    CHECK_EQ(c.bridge.max_ws_message_bytes, 1048576);
    CHECK_EQ(c.http.max_header_bytes, 8192);
    CHECK_EQ(c.http.max_body_bytes, 131072);
    CHECK_EQ(c.http.request_timeout_ms, 5000);
    CHECK_EQ(c.http.keepalive_timeout_ms, 0);
    CHECK(strcmp(c.tools.webhook.url, "https://crm.example.com/lookup?src=vb") == 0);
    CHECK_EQ(c.tools.webhook.timeout_ms, 2000);
    CHECK(strcmp(c.tools.webhook.name, "crm_lookup") == 0);
    CHECK(strcmp(c.tools.webhook.description, "Find the account.") == 0);
    CHECK(strcmp(c.tools.webhook.parameters,
                 "{\"type\":\"object\",\"properties\":{\"phone\":{\"type\":\"string\"}},"
                 "\"required\":[\"phone\"]}") == 0);
    config_free(&c);
}

TEST(config_env_overrides)
{
    env_clear();
    setenv("OPENAI_API_KEY", "sk-test-123", 1);
    setenv("TWILIO_ACCOUNT_SID", "ACtesttesttesttesttesttesttesttest", 1);
    setenv("TWILIO_AUTH_TOKEN", "tok_abc", 1);
    setenv("TWILIO_PHONE_NUMBER", "+14155550100", 1);
    setenv("JWT_SECRET", "a jwt secret with spaces", 1);
    setenv("REDIS_URL", "redis://user:p%40ss@10.0.0.5:6390/7", 1);
    setenv("PUBLIC_BASE_URL", "https://env.example.com/", 1);
    struct config c = LOAD_OK("{\"redis_url\": \"redis://file:1/1\", "
                              "\"public_url\": \"https://file.example.com\"}");
    CHECK(strcmp(c.openai.api_key, "sk-test-123") == 0);
    CHECK(strcmp(c.twilio.account_sid, "ACtesttesttesttesttesttesttesttest") == 0);
    CHECK(strcmp(c.twilio.auth_token, "tok_abc") == 0);
    CHECK(strcmp(c.twilio.phone_number, "+14155550100") == 0);
    CHECK(strcmp(c.jwt_secret, "a jwt secret with spaces") == 0);
    CHECK(strcmp(c.redis.host, "10.0.0.5") == 0);
    CHECK_EQ(c.redis.port, 6390);
    CHECK_EQ(c.redis.db, 7);
    CHECK(strcmp(c.redis.username, "user") == 0);
    CHECK(strcmp(c.redis.password, "p@ss") == 0);
    CHECK(strcmp(c.public_url, "https://env.example.com") == 0);
    const char *w[8];
    CHECK_EQ(config_warnings(&c, w, 8), 0);
    config_free(&c);

    /* An empty variable counts as unset: the file's value stands. */
    setenv("REDIS_URL", "", 1);
    setenv("PUBLIC_BASE_URL", "", 1);
    setenv("OPENAI_API_KEY", "", 1);
    c = LOAD_OK("{\"redis_url\": \"redis://file:1/1\", "
                "\"public_url\": \"https://file.example.com\"}");
    CHECK(strcmp(c.redis.host, "file") == 0 && c.redis.port == 1 && c.redis.db == 1);
    CHECK(strcmp(c.public_url, "https://file.example.com") == 0);
    CHECK(c.openai.api_key == NULL);
    config_free(&c);
}

TEST(config_env_errors_name_the_variable)
{
    env_clear();
    setenv("REDIS_URL", "http://x", 1);
    EXPECT_ERROR("{}", "REDIS_URL (environment, overrides redis_url): must start with redis://");
    env_clear();
    setenv("PUBLIC_BASE_URL", "voice.example.com", 1);
    EXPECT_ERROR("{}", "PUBLIC_BASE_URL (environment, overrides public_url): "
                       "\"voice.example.com\" is not an absolute URL");
    env_clear();
    setenv("TWILIO_PHONE_NUMBER", "415 555 0100", 1);
    EXPECT_ERROR("{}", "TWILIO_PHONE_NUMBER (environment): is not an E.164 number");
    env_clear();
    setenv("TWILIO_ACCOUNT_SID", "AC12\r", 1);
    EXPECT_ERROR("{}", "TWILIO_ACCOUNT_SID (environment): contains a space");
    env_clear();
    setenv("PUBLIC_BASE_URL", "https://\xff.example.com", 1);
    EXPECT_ERROR("{}", "PUBLIC_BASE_URL (environment, overrides public_url): is not valid UTF-8");
}

TEST(config_secrets_never_in_errors)
{
    static const char secret[] = "S3CRETvalue";
    char err[1024];
    struct config c;
    struct {
        const char *name, *value;
    } cases[] = {
        {"OPENAI_API_KEY", "sk-S3CRETvalue\n"},
        {"TWILIO_AUTH_TOKEN", "S3CRETvalue with space"},
        {"JWT_SECRET", "S3CRETvalue\x01"},
        {"REDIS_URL", "redis://:S3CRETvalue@host:99999/0"},
        {"REDIS_URL", "redis://:S3CRETvalue@host:6379/notadb"},
        {"REDIS_URL", "redis://u:S3CRETvalue%zz@host/0"},
        {"REDIS_URL", "rediss://:S3CRETvalue@host/0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        env_clear();
        setenv(cases[i].name, cases[i].value, 1);
        err[0] = '\0';
        CHECK_EQ(load_text("{}", &c, err, sizeof err), -EINVAL);
        CHECK_MSG(strstr(err, cases[i].name) != NULL, "case %zu: %s", i, err);
        CHECK_MSG(strstr(err, secret) == NULL, "case %zu leaks: %s", i, err);
    }
    /* A password in the file's redis_url is not echoed either. */
    env_clear();
    EXPECT_ERROR("{\"redis_url\": \"redis://:S3CRETvalue@host:6379/x\"}",
                 "redis_url: has a bad database number");
    CHECK_EQ(
        load_text("{\"redis_url\": \"redis://:S3CRETvalue@host:6379/x\"}", &c, err, sizeof err),
        -EINVAL);
    CHECK_MSG(strstr(err, secret) == NULL, "leaks: %s", err);
    /* A valid secret next to an unrelated error stays out of the message. */
    setenv("OPENAI_API_KEY", "sk-S3CRETvalue", 1);
    CHECK_EQ(load_text("{\"workers\": 0}", &c, err, sizeof err), -EINVAL);
    CHECK_MSG(strstr(err, secret) == NULL, "leaks: %s", err);
}

TEST(config_unknown_keys)
{
    env_clear();
    EXPECT_ERROR("{\"listen\": [\"127.0.0.1:1\"], \"colour\": 1}", "c.json: colour: unknown key");
    EXPECT_ERROR("{\"openai\": {\"voice\": \"alloy\", \"volume\": 11}}",
                 "openai.volume: unknown key");
    EXPECT_ERROR("{\"tools\": {\"webhook\": {\"url\": \"http://h/\", \"retries\": 2}}}",
                 "tools.webhook.retries: unknown key");
    EXPECT_ERROR("{\"openai.voice\": \"alloy\"}",
                 "openai.voice: unknown key (nested keys are written as objects");
    EXPECT_ERROR("{\"openai\": {\"api_key\": \"sk-x\"}}",
                 "openai.api_key: unknown key; this value comes from the environment: set "
                 "OPENAI_API_KEY");
    EXPECT_ERROR("{\"twilio\": {\"auth_token\": \"x\"}}", "set TWILIO_AUTH_TOKEN");
    /* Control characters from the file never reach a terminal. */
    EXPECT_ERROR("{\"a\\u001b[31mb\": 1}", "a?[31mb: unknown key");
}

TEST(config_wrong_types)
{
    env_clear();
    EXPECT_ERROR("{\"max_calls_per_worker\": \"10\"}",
                 "max_calls_per_worker: expected an integer, got string");
    EXPECT_ERROR("{\"openai\": {\"voice\": 3}}", "openai.voice: expected a string, got number");
    EXPECT_ERROR("{\"openai\": []}", "openai: expected an object, got array");
    EXPECT_ERROR("{\"openai\": null}", "openai: expected an object, got null");
    EXPECT_ERROR("{\"twilio\": {\"validate_signatures\": \"no\"}}",
                 "twilio.validate_signatures: expected a boolean (true or false), got string");
    EXPECT_ERROR("{\"listen\": \"127.0.0.1:80\"}",
                 "listen: expected an array of \"host:port\" strings or objects, got string");
    EXPECT_ERROR("{\"listen\": [80]}", "listen[0]: expected a string or an object, got number");
    EXPECT_ERROR("{\"http\": {\"max_body_bytes\": 1.5}}",
                 "http.max_body_bytes: expected an integer, got 1.5");
    EXPECT_ERROR("{\"tools\": {\"webhook\": 3}}",
                 "tools.webhook: expected an object or null, got number");
    EXPECT_ERROR("{\"openai\": {\"turn_detection\": \"server_vad\"}}",
                 "openai.turn_detection: expected an object, got string");
    EXPECT_ERROR("{\"openai\": {\"turn_detection\": null}}",
                 "openai.turn_detection: expected an object, got null");
    EXPECT_ERROR("{\"public_url\": true}", "public_url: expected a string or null, got boolean");
    EXPECT_ERROR("{\"pid_file\": null}", "pid_file: expected a string, got null");
    EXPECT_ERROR("{\"workers\": true}", "workers: expected \"auto\" or an integer, got boolean");
    EXPECT_ERROR("{\"log_level\": 2}", "log_level: expected a string, got number");
    EXPECT_ERROR("{\"redis_url\": {}}", "redis_url: expected a string, got object");
    EXPECT_ERROR("[]", "the top level must be an object");
}

TEST(config_listen)
{
    env_clear();
    EXPECT_ERROR("{\"listen\": []}", "listen: needs at least one address");
    EXPECT_ERROR("{\"listen\": [\"127.0.0.1\"]}", "listen[0]: \"127.0.0.1\" is not host:port");
    EXPECT_ERROR("{\"listen\": [\"127.0.0.1:0\"]}", "listen[0]: \"127.0.0.1:0\" has a bad port");
    EXPECT_ERROR("{\"listen\": [\"127.0.0.1:65536\"]}", "has a bad port (1-65535)");
    EXPECT_ERROR("{\"listen\": [\"127.0.0.1:80x\"]}", "has a bad port");
    EXPECT_ERROR("{\"listen\": [\"127.0.0.1:\"]}", "has a bad port");
    EXPECT_ERROR("{\"listen\": [\":8080\"]}", "listen[0]: \":8080\" has no host");
    EXPECT_ERROR("{\"listen\": [\"::1:8080\"]}", "an IPv6 address needs brackets");
    EXPECT_ERROR("{\"listen\": [\"[::1]8080\"]}", "is not [IPv6]:port");
    EXPECT_ERROR("{\"listen\": [\"[::g]:8080\"]}", "has a bad host");
    EXPECT_ERROR("{\"listen\": [\"[127.0.0.1]:8080\"]}", "has a bad host");
    EXPECT_ERROR("{\"listen\": [\"1.2.3.400:80\"]}", "has a bad host");
    EXPECT_ERROR("{\"listen\": [\"bad host:80\"]}", "has a bad host");
    EXPECT_ERROR("{\"listen\": [\"127.0.0.1:80\", \"127.0.0.1:80\"]}",
                 "listen[1]: repeats listen[0]");
    EXPECT_ERROR("{\"listen\": [\"127.0.0.1:1\",\"127.0.0.1:2\",\"127.0.0.1:3\",\"127.0.0.1:4\","
                 "\"127.0.0.1:5\",\"127.0.0.1:6\",\"127.0.0.1:7\",\"127.0.0.1:8\",\"127.0.0.1:9\","
                 "\"127.0.0.1:10\",\"127.0.0.1:11\",\"127.0.0.1:12\",\"127.0.0.1:13\","
                 "\"127.0.0.1:14\",\"127.0.0.1:15\",\"127.0.0.1:16\",\"127.0.0.1:17\"]}",
                 "listen: has 17 addresses; at most 16");

    struct config c = LOAD_OK("{\"listen\": [\"[::]:443\", \"0.0.0.0:443\", \"127.0.0.1:65535\","
                              "\"[2001:db8::1]:1\"]}");
    CHECK_EQ(c.listen_count, 4);
    CHECK(strcmp(c.listen[0].host, "::") == 0 && c.listen[0].family == AF_INET6);
    CHECK(strcmp(c.listen[1].host, "0.0.0.0") == 0 && c.listen[1].family == AF_INET);
    CHECK_EQ(c.listen[2].port, 65535);
    config_free(&c);
}

TEST(config_urls)
{
    env_clear();
    EXPECT_ERROR("{\"public_url\": \"ftp://voice.example.com\"}",
                 "public_url: \"ftp://voice.example.com\" must start with http:// or https://");
    EXPECT_ERROR("{\"public_url\": \"https://voice.example.com/base\"}", "must not have a path");
    EXPECT_ERROR("{\"public_url\": \"https://voice.example.com?x=1\"}",
                 "must not have a query or fragment");
    EXPECT_ERROR("{\"public_url\": \"https://voice.example.com/#top\"}",
                 "must not have a query or fragment");
    EXPECT_ERROR("{\"public_url\": \"https://\"}", "has no host");
    EXPECT_ERROR("{\"public_url\": \"https://h:0\"}", "has a bad port");
    EXPECT_ERROR("{\"public_url\": \"https://u:p@h\"}", "must not contain user:password@");
    EXPECT_ERROR("{\"public_url\": \"https://h ost\"}", "contains a space");
    EXPECT_ERROR("{\"public_url\": \"voice.example.com\"}", "is not an absolute URL");
    EXPECT_ERROR("{\"openai\": {\"url\": \"https://api.openai.com/v1/realtime\"}}",
                 "openai.url: \"https://api.openai.com/v1/realtime\" must start with ws://");
    EXPECT_ERROR("{\"openai\": {\"url\": \"wss://api.openai.com/v1/realtime?model=x\"}}",
                 "openai.url: \"wss://api.openai.com/v1/realtime?model=x\" must not have a query");
    EXPECT_ERROR("{\"twilio\": {\"api_url\": \"wss://api.twilio.com\"}}",
                 "twilio.api_url: \"wss://api.twilio.com\" must start with http://");
    EXPECT_ERROR("{\"tools\": {\"webhook\": {\"url\": \"ftp://h/x\"}}}",
                 "tools.webhook.url: \"ftp://h/x\" must start with http://");
    EXPECT_ERROR("{\"redis_url\": \"redis://h:6379/0?x=1\"}",
                 "redis_url: must not have a query or fragment");
    EXPECT_ERROR("{\"redis_url\": \"redis://h:6379/65536\"}",
                 "redis_url: has a bad database number");
    EXPECT_ERROR("{\"redis_url\": \"redis:///0\"}", "redis_url: has no host");

    struct config c = LOAD_OK("{\"public_url\": \"HTTPS://[2001:db8::1]:8443/\","
                              "\"twilio\": {\"api_url\": \"http://127.0.0.1:8090/\"},"
                              "\"redis_url\": \"redis://[::1]\"}");
    CHECK(strcmp(c.public_url, "HTTPS://[2001:db8::1]:8443") == 0);
    CHECK(strcmp(c.twilio.api_url, "http://127.0.0.1:8090") == 0);
    CHECK(strcmp(c.redis.host, "::1") == 0);
    CHECK_EQ(c.redis.port, 6379);
    CHECK_EQ(c.redis.db, 0);
    config_free(&c);
    c = LOAD_OK("{\"redis_url\": \"redis://:only-pass@r/\"}");
    CHECK(c.redis.username == NULL);
    CHECK(strcmp(c.redis.password, "only-pass") == 0);
    CHECK_EQ(c.redis.db, 0);
    config_free(&c);
}

TEST(config_ranges_and_values)
{
    env_clear();
    EXPECT_ERROR("{\"max_calls_per_worker\": 0}",
                 "max_calls_per_worker: must be between 1 and 100000, got 0");
    EXPECT_ERROR("{\"max_calls_per_worker\": 100001}", "must be between 1 and 100000, got 100001");
    EXPECT_ERROR("{\"call_threads\": 257}", "call_threads: must be between 0 and 256, got 257");
    EXPECT_ERROR("{\"call_threads\": -1}", "call_threads: must be between 0 and 256, got -1");
    EXPECT_ERROR("{\"workers\": 0}", "workers: must be \"auto\" or between 1 and 1024, got 0");
    EXPECT_ERROR("{\"workers\": 1025}", "workers: must be \"auto\" or between 1 and 1024");
    EXPECT_ERROR("{\"workers\": \"many\"}",
                 "workers: expected \"auto\" or an integer from 1 to 1024, got \"many\"");
    EXPECT_ERROR("{\"drain_timeout_s\": -1}", "drain_timeout_s: must be between 1 and 86400");
    EXPECT_ERROR("{\"drain_announce_s\": 301}", "drain_announce_s: must be between 0 and 300");
    EXPECT_ERROR("{\"http\": {\"max_body_bytes\": 99999999999999}}",
                 "http.max_body_bytes: must be between 1024 and 16777216, got 99999999999999");
    EXPECT_ERROR("{\"bridge\": {\"pacing_lead_ms\": 10}}",
                 "bridge.pacing_lead_ms: must be between 20 and 2000");
    EXPECT_ERROR("{\"bridge\": {\"pacing_low_ms\": 2000}}",
                 "bridge.pacing_low_ms: must be between 0 and 1980");
    EXPECT_ERROR("{\"log_level\": \"loud\"}",
                 "log_level: \"loud\" is not one of error, warn, info, debug");
    EXPECT_ERROR("{\"openai\": {\"audio_format\": \"mp3\"}}",
                 "openai.audio_format: \"mp3\" is not one of pcm16, g711_ulaw");
    EXPECT_ERROR("{\"openai\": {\"voice\": \"\"}}", "openai.voice: \"\" is not a voice name");
    EXPECT_ERROR("{\"openai\": {\"model\": \"gpt realtime\"}}",
                 "openai.model: \"gpt realtime\" is not a model name");
    EXPECT_ERROR("{\"openai\": {\"transcription_model\": \"a&b\"}}",
                 "openai.transcription_model: \"a&b\" is not a model name");
    EXPECT_ERROR("{\"openai\": {\"apology\": \"\"}}", "openai.apology: must not be empty");
    EXPECT_ERROR("{\"twilio\": {\"machine_detection\": \"enable\"}}",
                 "twilio.machine_detection: \"enable\" is not one of Enable, DetectMessageEnd");
    EXPECT_ERROR("{\"pid_file\": \"\"}", "pid_file: must not be empty");
    EXPECT_ERROR("{\"log_file\": \"a\\nb\"}", "log_file: contains a control character");
    EXPECT_ERROR("{\"redis_prefix\": \"vb :\"}", "redis_prefix: may hold only visible ASCII");
    EXPECT_ERROR("{\"openai\": {\"ca_file\": \"/nonexistent/ca.pem\"}}",
                 "openai.ca_file: \"/nonexistent/ca.pem\": No such file or directory");
    EXPECT_ERROR("{\"openai\": {\"ca_file\": \"/\"}}", "openai.ca_file: \"/\" is not a regular");
    EXPECT_ERROR("{\"openai\": {\"turn_detection\": {\"type\": \"push_to_talk\"}}}",
                 "openai.turn_detection: \"type\" must be \"server_vad\" or \"semantic_vad\"");
    EXPECT_ERROR("{\"openai\": {\"turn_detection\": {\"type\": \"server_vad\", \"threshold\": 2}}}",
                 "openai.turn_detection: \"threshold\" must be a number from 0 to 1");
    EXPECT_ERROR("{\"openai\": {\"turn_detection\": {\"type\": \"server_vad\","
                 " \"silence_duration_ms\": \"long\"}}}",
                 "\"silence_duration_ms\" must be an integer");

    struct config c = LOAD_OK("{\"log_level\": \"WARNING\", \"workers\": 1024, "
                              "\"max_calls_per_worker\": 100000, \"drain_timeout_s\": 1}");
    CHECK_EQ(c.log_level, LOG_WARN);
    CHECK_EQ(c.workers, 1024);
    CHECK_EQ(c.max_calls_per_worker, 100000);
    config_free(&c);
    c = LOAD_OK("{\"twilio\": {\"machine_detection\": \"DetectMessageEnd\"}}");
    CHECK(c.twilio.machine_detection != NULL &&
          strcmp(c.twilio.machine_detection, "DetectMessageEnd") == 0);
    config_free(&c);
    c = LOAD_OK("{\"twilio\": {\"machine_detection\": null}}");
    CHECK(c.twilio.machine_detection == NULL);
    config_free(&c);
    c = LOAD_OK("{}");
    CHECK(c.twilio.record); /* recorded unless switched off */
    config_free(&c);
    c = LOAD_OK("{\"twilio\": {\"record\": false}}");
    CHECK(!c.twilio.record);
    config_free(&c);
    EXPECT_ERROR("{\"twilio\": {\"record\": \"yes\"}}", "twilio.record");
}

TEST(config_redis_keys)
{
    env_clear();
    EXPECT_ERROR("{\"redis_retention_s\": 59}", "redis_retention_s: must be between 60 and");
    EXPECT_ERROR("{\"redis_session_ttl_s\": 2}", "redis_session_ttl_s: must be between 3 and");
    EXPECT_ERROR("{\"redis_events_maxlen\": 10}", "redis_events_maxlen: must be between 100");
    EXPECT_ERROR("{\"redis_queue_max\": 0}", "redis_queue_max: must be between 16 and");
    EXPECT_ERROR("{\"redis_timeout_ms\": 50}", "redis_timeout_ms: must be between 100 and");
    EXPECT_ERROR("{\"node_name\": \"a b\"}", "node_name: \"a b\" is not a node name");
    EXPECT_ERROR("{\"node_name\": \"\"}", "node_name: \"\" is not a node name");
    EXPECT_ERROR("{\"node_name\": \"n:1\"}", "node_name: \"n:1\" is not a node name");
    struct config c = LOAD_OK("{\"redis_retention_s\": 3600, \"redis_session_ttl_s\": 9, "
                              "\"redis_events_maxlen\": 500, \"redis_queue_max\": 16, "
                              "\"redis_timeout_ms\": 250, \"node_name\": \"node-a.1_x\"}");
    CHECK_EQ(c.redis.retention_s, 3600);
    CHECK_EQ(c.redis.session_ttl_s, 9);
    CHECK_EQ(c.redis.events_maxlen, 500);
    CHECK_EQ(c.redis.queue_max, 16);
    CHECK_EQ(c.redis.timeout_ms, 250);
    CHECK(strcmp(c.node_name, "node-a.1_x") == 0);
    config_free(&c);
}

TEST(config_webhook_tool)
{
    env_clear();
    EXPECT_ERROR("{\"tools\": {\"webhook\": {}}}",
                 "tools.webhook.url: is required when tools.webhook is given");
    EXPECT_ERROR("{\"tools\": {\"webhook\": {\"timeout_ms\": 100}}}",
                 "tools.webhook.url: is required");
    EXPECT_ERROR("{\"tools\": {\"webhook\": {\"url\": null}}}",
                 "tools.webhook.url: expected a string, got null");
    EXPECT_ERROR("{\"tools\": {\"webhook\": {\"url\": \"http://h\", \"name\": \"look up\"}}}",
                 "tools.webhook.name: \"look up\" is not a function name");
    EXPECT_ERROR("{\"tools\": {\"webhook\": {\"url\": \"http://h\", \"parameters\": []}}}",
                 "tools.webhook.parameters: expected an object, got array");
    EXPECT_ERROR("{\"tools\": {\"webhook\": {\"url\": \"http://h\", \"parameters\": {}}}}",
                 "tools.webhook.parameters: must be a JSON Schema with \"type\": \"object\"");
    EXPECT_ERROR("{\"tools\": {\"webhook\": {\"url\": \"http://h\", \"timeout_ms\": 0}}}",
                 "tools.webhook.timeout_ms: must be between 100 and 60000");

    struct config c = LOAD_OK("{\"tools\": {\"webhook\": null}}");
    CHECK(c.tools.webhook.url == NULL);
    config_free(&c);
    c = LOAD_OK("{\"tools\": {\"webhook\": {\"url\": \"http://127.0.0.1:9/t\"}}}");
    CHECK(strcmp(c.tools.webhook.url, "http://127.0.0.1:9/t") == 0);
    CHECK_EQ(c.tools.webhook.timeout_ms, 5000);
    CHECK(strcmp(c.tools.webhook.name, "lookup") == 0);
    config_free(&c);
}

TEST(config_syntax_errors_have_line_and_column)
{
    env_clear();
    char want[600];
    snprintf(want, sizeof want, "%s:3:16: invalid token near 'auto'", cfg_path());
    EXPECT_ERROR("{\n \"listen\": [\"127.0.0.1:8080\"],\n \"workers\": auto\n}\n", want);
    snprintf(want, sizeof want, "%s:2:", cfg_path());
    EXPECT_ERROR("{\n \"workers\": 2,,\n}", want);
    snprintf(want, sizeof want, "%s:4:", cfg_path());
    EXPECT_ERROR("{\n \"workers\": 2,\n \"log_level\": \"info\",\n \"workers\": 3\n}",
                 "duplicate object key");
    EXPECT_ERROR("{\n \"workers\": 2,\n \"log_level\": \"info\",\n \"workers\": 3\n}", want);
    EXPECT_ERROR("", "c.json:");
    EXPECT_ERROR("{\"workers\": 2", "c.json:1:");
    EXPECT_ERROR("{\"workers\": 2} {}", "end of file expected");
    EXPECT_ERROR("{\"openai\": {\"voice\": \"al\xffoy\"}}", "c.json:1:");
    EXPECT_ERROR("{\"openai\": {\"voice\": \"a\\u0000b\"}}", "c.json:1:");
}

TEST(config_unicode_strings)
{
    env_clear();
    struct config c = LOAD_OK(
        "{\"openai\": {\"instructions\": \"Grüß dich! Réponds en français. 你好 \\ud83d\\udc4b "
        "\\u00e9\\\"q\\\"\\n\","
        " \"apology\": \"Désolé — réessayez plus tard.\"},"
        " \"tools\": {\"webhook\": {\"url\": \"http://h/\", \"description\": \"Suche 🔎\","
        " \"parameters\": {\"type\": \"object\", \"description\": \"ünïcödé\"}}}}");
    CHECK(strcmp(c.openai.instructions,
                 "Grüß dich! Réponds en français. 你好 \xf0\x9f\x91\x8b \xc3\xa9\"q\"\n") == 0);
    CHECK(strcmp(c.openai.apology, "Désolé — réessayez plus tard.") == 0);
    CHECK(strcmp(c.tools.webhook.description, "Suche 🔎") == 0);
    CHECK(strcmp(c.tools.webhook.parameters, "{\"type\":\"object\",\"description\":\"ünïcödé\"}") ==
          0);
    config_free(&c);
    /* A unicode key is named in its message intact. */
    EXPECT_ERROR("{\"openai\": {\"voïce\": \"alloy\"}}", "openai.voïce: unknown key");
}

TEST(config_failed_load_leaves_out_untouched)
{
    env_clear();
    struct config c = LOAD_OK("{\"workers\": 3}"), before;
    char err[1024];
    memcpy(&before, &c, sizeof c);
    CHECK_EQ(load_text("{\"workers\": 3, \"openai\": {\"voice\": 1}}", &c, err, sizeof err),
             -EINVAL);
    CHECK(memcmp(&before, &c, sizeof c) == 0);
    setenv("REDIS_URL", "nope", 1);
    CHECK_EQ(load_text("{\"workers\": 5}", &c, err, sizeof err), -EINVAL);
    CHECK(memcmp(&before, &c, sizeof c) == 0);
    CHECK_EQ(config_load("/nonexistent/vb.json", &c, err, sizeof err), -ENOENT);
    CHECK(memcmp(&before, &c, sizeof c) == 0);
    /* A good reload fills a fresh struct; the old one is freed by its owner afterwards. */
    unsetenv("REDIS_URL");
    struct config next = LOAD_OK("{\"workers\": 5}");
    CHECK_EQ(next.workers, 5);
    CHECK_EQ(c.workers, 3);
    config_free(&c);
    config_free(&next);
}

TEST(config_file_errors)
{
    env_clear();
    struct config c;
    char err[1024], path[512];
    CHECK_EQ(config_load("/nonexistent/vb.json", &c, err, sizeof err), -ENOENT);
    CHECK(strcmp(err, "/nonexistent/vb.json: No such file or directory") == 0);
    CHECK_EQ(config_load(test_tmpdir(), &c, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "not a regular file") != NULL);
    /* A FIFO is refused, not waited on. */
    snprintf(path, sizeof path, "%s/fifo", test_tmpdir());
    CHECK_EQ(mkfifo(path, 0600), 0);
    CHECK_EQ(config_load(path, &c, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "not a regular file") != NULL);
    /* Bigger than the limit: refused before parsing. */
    size_t big = CONFIG_FILE_MAX + 10;
    char *text = malloc(big);
    CHECK(text != NULL);
    memset(text, ' ', big);
    text[0] = '{';
    text[big - 1] = '}';
    snprintf(path, sizeof path, "%s/big.json", test_tmpdir());
    write_file(path, text, big);
    free(text);
    CHECK_EQ(config_load(path, &c, err, sizeof err), -EFBIG);
    CHECK(strstr(err, "larger than 1048576 bytes") != NULL);
    /* No message buffer is fine. */
    CHECK_EQ(config_load("/nonexistent/vb.json", &c, NULL, 0), -ENOENT);
}

TEST(config_deep_nesting_is_an_error)
{
    env_clear();
    static char text[20001];
    memset(text, '[', 10000);
    memset(text + 10000, ']', 10000);
    struct config c;
    char err[1024];
    write_file(cfg_path(), text, 20000);
    CHECK_EQ(config_load(cfg_path(), &c, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "c.json:1:") != NULL);
    EXPECT_ERROR("{\"openai\": {\"turn_detection\": {\"type\": \"server_vad\", \"x\": "
                 "[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}, \"voice\": 7}}",
                 "openai.voice: expected a string, got number");
}

TEST(config_parse_from_memory)
{
    env_clear();
    struct config c;
    char err[256];
    static const char text[] = "{\"workers\": 2}";
    CHECK_EQ(config_parse("inline", text, sizeof text - 1, &c, err, sizeof err), 0);
    CHECK(strcmp(c.path, "inline") == 0);
    CHECK_EQ(c.workers, 2);
    config_free(&c);
    CHECK_EQ(config_parse("inline", "{\"workers\": 0}", 14, &c, err, sizeof err), -EINVAL);
    CHECK(strcmp(err, "inline: workers: must be \"auto\" or between 1 and 1024, got 0") == 0);
    /* A short message buffer truncates, it does not overflow. */
    char tiny[8];
    CHECK_EQ(config_parse("inline", "{\"workers\": 0}", 14, &c, tiny, sizeof tiny), -EINVAL);
    CHECK(strcmp(tiny, "inline:") == 0);
}

TEST(config_workers_and_warnings)
{
    env_clear();
    struct config c = LOAD_OK("{}");
    unsigned n = config_worker_count(&c);
    CHECK(n >= 1 && n <= CONFIG_WORKERS_MAX);
    CHECK_EQ(n, (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
    const char *w[8];
    size_t count = config_warnings(&c, w, 8);
    CHECK(count >= 4);
    CHECK(strstr(w[0], "OPENAI_API_KEY") != NULL);
    CHECK_EQ(config_warnings(&c, w, 1), count); /* counts beyond max, stores max */
    config_free(&c);

    setenv("OPENAI_API_KEY", "k", 1);
    setenv("TWILIO_ACCOUNT_SID", "AC1", 1);
    setenv("TWILIO_AUTH_TOKEN", "t", 1);
    setenv("TWILIO_PHONE_NUMBER", "+15005550006", 1);
    setenv("JWT_SECRET", "j", 1);
    c = LOAD_OK("{\"public_url\": \"https://v.example.com\", "
                "\"twilio\": {\"validate_signatures\": false}}");
    CHECK_EQ(config_warnings(&c, w, 8), 1);
    CHECK(strstr(w[0], "validate_signatures is false") != NULL);
    config_free(&c);
}

TEST(config_security_keys)
{
    env_clear();
    struct config c = LOAD_OK("{}");
    CHECK_EQ(c.twilio.stream_token_ttl_s, 300);
    CHECK_EQ(c.auth.jwt_leeway_s, 30);
    CHECK(c.auth.jwt_require_exp);
    CHECK_EQ(c.rate_limit.user_per_minute, 10);
    CHECK_EQ(c.rate_limit.user_burst, 5);
    CHECK_EQ(c.rate_limit.global_per_minute, 600);
    CHECK_EQ(c.rate_limit.global_burst, 50);
    CHECK_EQ(c.rate_limit.max_users, 10000);
    /* with checking on and neither TWILIO_AUTH_TOKEN nor public_url: both are warned about */
    const char *w[16];
    size_t n = config_warnings(&c, w, 16), token = 0, url = 0;
    for (size_t i = 0; i < n && i < 16; i++) {
        token += strstr(w[i], "TWILIO_AUTH_TOKEN is not set while") != NULL;
        url += strstr(w[i], "public_url is not set while") != NULL;
    }
    CHECK_EQ(token, 1);
    CHECK_EQ(url, 1);
    config_free(&c);
    c = LOAD_OK("{\"twilio\": {\"stream_token_ttl_s\": 60}, \"auth\": {\"jwt_leeway_s\": 0, "
                "\"jwt_require_exp\": false}, \"rate_limit\": {\"user_per_minute\": 2, "
                "\"user_burst\": 1, \"global_per_minute\": 100, \"global_burst\": 3, "
                "\"max_users\": 16}}");
    CHECK_EQ(c.twilio.stream_token_ttl_s, 60);
    CHECK_EQ(c.auth.jwt_leeway_s, 0);
    CHECK(!c.auth.jwt_require_exp);
    CHECK_EQ(c.rate_limit.user_per_minute, 2);
    CHECK_EQ(c.rate_limit.user_burst, 1);
    CHECK_EQ(c.rate_limit.global_per_minute, 100);
    CHECK_EQ(c.rate_limit.global_burst, 3);
    CHECK_EQ(c.rate_limit.max_users, 16);
    config_free(&c);
    EXPECT_ERROR("{\"twilio\": {\"stream_token_ttl_s\": 5}}", "twilio.stream_token_ttl_s");
    EXPECT_ERROR("{\"auth\": {\"jwt_leeway_s\": 601}}", "auth.jwt_leeway_s");
    EXPECT_ERROR("{\"auth\": {\"jwt_require_exp\": 1}}", "auth.jwt_require_exp");
    EXPECT_ERROR("{\"rate_limit\": {\"user_burst\": 0}}", "rate_limit.user_burst");
    EXPECT_ERROR("{\"rate_limit\": {\"max_users\": 15}}", "rate_limit.max_users");
    EXPECT_ERROR("{\"rate_limit\": {\"per_user\": 1}}", "rate_limit.per_user: unknown key");
}

/* A listen entry may be an object carrying a certificate and key (TLS on that listener). */
TEST(config_listen_tls)
{
    env_clear();
    char cert[512], key[512], text[2048];
    snprintf(cert, sizeof cert, "%s/c.pem", test_tmpdir());
    snprintf(key, sizeof key, "%s/k.pem", test_tmpdir());
    FILE *f = fopen(cert, "w");
    CHECK(f != NULL && fputs("x", f) >= 0 && fclose(f) == 0);
    f = fopen(key, "w");
    CHECK(f != NULL && fputs("x", f) >= 0 && fclose(f) == 0);
    snprintf(text, sizeof text,
             "{\"listen\": [\"127.0.0.1:8080\", {\"address\": \"[::1]:8443\", \"tls_cert\": "
             "\"%s\", \"tls_key\": \"%s\"}, {\"address\": \"127.0.0.1:9\"}]}",
             cert, key);
    struct config c = LOAD_OK(text);
    CHECK_EQ(c.listen_count, 3);
    CHECK(c.listen[0].tls_cert[0] == '\0' && c.listen[0].tls_key[0] == '\0');
    CHECK(strcmp(c.listen[1].host, "::1") == 0 && c.listen[1].port == 8443);
    CHECK(strcmp(c.listen[1].tls_cert, cert) == 0 && strcmp(c.listen[1].tls_key, key) == 0);
    CHECK(c.listen[2].tls_cert[0] == '\0' && c.listen[2].port == 9);
    config_free(&c);
    snprintf(text, sizeof text, "{\"listen\": [{\"address\": \"127.0.0.1:1\", \"tls_cert\": \"%s\"}]}",
             cert);
    EXPECT_ERROR(text, "listen[0]: tls_cert and tls_key go together");
    EXPECT_ERROR("{\"listen\": [{\"tls_cert\": \"/x\", \"tls_key\": \"/y\"}]}",
                 "listen[0].address: is required");
    EXPECT_ERROR("{\"listen\": [{\"address\": \"127.0.0.1:1\", \"tls_cert\": \"/nonexistent\", "
                 "\"tls_key\": \"/nonexistent\"}]}",
                 "listen[0].tls_cert: \"/nonexistent\": No such file or directory");
    EXPECT_ERROR("{\"listen\": [{\"address\": \"127.0.0.1:1\", \"cert\": \"/x\"}]}",
                 "listen[0].cert: unknown key");
    EXPECT_ERROR("{\"listen\": [{\"address\": 8080}]}",
                 "listen[0].address: expected a string, got number");
    EXPECT_ERROR("{\"listen\": [{\"address\": \"127.0.0.1:0\"}]}",
                 "listen[0].address: \"127.0.0.1:0\" has a bad port");
}

TEST(config_pricing_defaults_overrides_and_errors)
{
    struct config c;
    char err[256];
    static const char text[] = "{\"pricing\": {\"openai_audio_out\": 20, \"twilio_stream_per_min\": 0}}";
    CHECK_EQ(config_parse("inline", text, sizeof text - 1, &c, err, sizeof err), 0);
    CHECK(c.pricing.openai_audio_out == 20.0);
    CHECK(c.pricing.twilio_stream_per_min == 0.0);
    CHECK(c.pricing.openai_audio_in == 32.0); /* untouched keys keep their defaults */
    CHECK(c.pricing.twilio_inbound_per_min == 0.0085);
    config_free(&c);
    EXPECT_ERROR("{\"pricing\": {\"openai_text_in\": -1}}",
                 "pricing.openai_text_in: must be between 0 and 10000, got -1");
    EXPECT_ERROR("{\"pricing\": {\"openai_text_in\": \"4\"}}",
                 "pricing.openai_text_in: expected a number (USD), got string");
}
