/* Configuration loader, the project's jansson adapter for its configuration file. One table of
 * keys (path, setter, default, bounds, check) drives defaults, parsing, validation and freeing,
 * so a new key is one row. jansson's errors become ours (file:line:column); environment
 * variables are applied after the file and validated the same way; secrets are never echoed. */
#include "common/config.h"

#include "common/text.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define WHY_MAX 384
#define PATH_MAX_KEY 256
#define ENV_VALUE_MAX 4096

struct config_key;
/* A setter validates one JSON value and stores it; on failure it leaves the field as it was,
 * writes the problem (without the key path) to why and returns -EINVAL or -ENOMEM. */
typedef int key_set_fn(struct config *c, const struct config_key *k, const json_t *v, char *why,
                       size_t n);
/* Extra checks of a string, which may shorten it in place (a trailing slash). */
typedef int str_check_fn(char *s, char *why, size_t n);
typedef int json_check_fn(const json_t *v, char *why, size_t n);

#define KEY_NULLABLE 1u /* null is accepted: a NULL string, or a section left out */
#define KEY_REQUIRED 2u /* must be given whenever its section is */

struct config_key {
    const char *path; /* dotted: "openai.voice" */
    key_set_fn *set;  /* NULL: a section, an object of further keys */
    const char *def;  /* default, as JSON text; NULL: null (a NULL string) */
    size_t off;       /* the field in struct config */
    long long min, max;
    str_check_fn *check_str;
    json_check_fn *check_json;
    unsigned flags;
};

#define FIELD(c, off, type) ((type *)(void *)((char *)(c) + (off)))

/* ---- messages ---------------------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static int fail(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* s in double quotes for a message, at most 60 bytes of it (not splitting a UTF-8 sequence). */
static const char *quoted(char *buf, size_t n, const char *s)
{
    size_t len = strlen(s), max = 60;
    if (len > max) {
        while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
            max--;
        snprintf(buf, n, "\"%.*s...\"", (int)max, s);
    } else {
        snprintf(buf, n, "\"%s\"", s);
    }
    return buf;
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        break;
    }
    return "null";
}

/* Messages go to terminals and logs: no control characters from the file get through. */
static void sanitize(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

__attribute__((format(printf, 3, 4))) static void report(char *err, size_t n, const char *fmt, ...)
{
    if (err == NULL || n == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    sanitize(err);
}

/* ---- small parsers ----------------------------------------------------------------------- */

static int port_parse(const char *p, size_t len, uint16_t *out)
{
    unsigned v = 0;
    if (len == 0 || len > 5)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -EINVAL;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -EINVAL;
    *out = (uint16_t)v;
    return 0;
}

/* A host as written in an address: an IPv6 literal (brackets already removed when bracketed),
 * an IPv4 literal, or a DNS name. Copies it to out and sets *family. */
static int host_parse(const char *h, size_t len, int bracketed, char *out, size_t out_n,
                      int *family)
{
    if (len == 0 || len >= out_n || len > 253)
        return -EINVAL;
    memcpy(out, h, len);
    out[len] = '\0';
    unsigned char addr[16];
    if (bracketed) {
        *family = AF_INET6;
        return inet_pton(AF_INET6, out, addr) == 1 ? 0 : -EINVAL;
    }
    int digits_and_dots = 1;
    for (size_t i = 0; i < len; i++) {
        char ch = out[i];
        int alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && ch != '.' && ch != '-' && ch != '_')
            return -EINVAL;
        if (ch != '.' && (ch < '0' || ch > '9'))
            digits_and_dots = 0;
    }
    if (digits_and_dots) { /* looks like an IPv4 literal, so it must be one */
        *family = AF_INET;
        return inet_pton(AF_INET, out, addr) == 1 ? 0 : -EINVAL;
    }
    if (out[0] == '-' || out[0] == '.')
        return -EINVAL;
    *family = AF_UNSPEC;
    return 0;
}

struct url {
    char scheme[8]; /* lower case */
    const char *userinfo;
    size_t userinfo_len; /* userinfo NULL: none */
    char host[256];      /* brackets removed */
    int family;
    int port; /* -1: none given */
    const char *path;
    size_t path_len; /* "" when none */
    int query, fragment;
};

/* Splits an absolute URL scheme://[userinfo@]host[:port][/path][?query][#fragment]. The
 * problem written to why never quotes the URL: it may hold a password. */
static int url_split(const char *s, struct url *u, char *why, size_t n)
{
    memset(u, 0, sizeof *u);
    u->port = -1;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return fail(why, n, "contains a space, control or non-ASCII character");
    const char *sep = strstr(s, "://");
    if (sep == NULL || sep == s || (size_t)(sep - s) >= sizeof u->scheme)
        return fail(why, n, "is not an absolute URL (scheme://host)");
    for (size_t i = 0; s + i < sep; i++) {
        char ch = s[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        if (ch < 'a' || ch > 'z')
            return fail(why, n, "is not an absolute URL (scheme://host)");
        u->scheme[i] = ch;
    }
    const char *auth = sep + 3;
    size_t alen = strcspn(auth, "/?#");
    const char *rest = auth + alen;
    const char *at = memrchr(auth, '@', alen);
    if (at != NULL) {
        u->userinfo = auth;
        u->userinfo_len = (size_t)(at - auth);
        alen -= (size_t)(at + 1 - auth);
        auth = at + 1;
    }
    const char *host = auth, *port = NULL;
    size_t hlen = alen;
    int bracketed = 0;
    if (alen > 0 && auth[0] == '[') {
        const char *close = memchr(auth, ']', alen);
        if (close == NULL)
            return fail(why, n, "has an unclosed [ in its host");
        host = auth + 1;
        hlen = (size_t)(close - host);
        bracketed = 1;
        if (close + 1 < auth + alen) {
            if (close[1] != ':')
                return fail(why, n, "has junk after its [IPv6] host");
            port = close + 2;
        }
    } else {
        const char *colon = memchr(auth, ':', alen);
        if (colon != NULL) {
            hlen = (size_t)(colon - auth);
            port = colon + 1;
        }
    }
    if (hlen == 0)
        return fail(why, n, "has no host");
    if (host_parse(host, hlen, bracketed, u->host, sizeof u->host, &u->family) < 0)
        return fail(why, n, "has a bad host");
    if (port != NULL) {
        uint16_t p;
        if (port_parse(port, (size_t)(auth + alen - port), &p) < 0)
            return fail(why, n, "has a bad port (1-65535)");
        u->port = p;
    }
    u->path = rest;
    u->path_len = strcspn(rest, "?#");
    u->query = rest[u->path_len] == '?';
    u->fragment = strchr(rest, '#') != NULL;
    return 0;
}

/* Percent-decodes s[0..len) into a new string (caller frees); NULL with *rc set on failure. */
static char *pct_decode(const char *s, size_t len, int *rc)
{
    char *out = malloc(len + 1);
    size_t o = 0;
    if (out == NULL) {
        *rc = -ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        int hi = i + 2 < len ? text_hex_value(s[i + 1]) : -1;
        int lo = hi >= 0 ? text_hex_value(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            *rc = -EINVAL;
            return NULL;
        }
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

static int chars_in(const char *s, const char *extra)
{
    for (; *s; s++) {
        char ch = *s;
        int alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && strchr(extra, ch) == NULL)
            return 0;
    }
    return 1;
}

/* ---- string checks ----------------------------------------------------------------------- */

static int check_path(char *s, char *why, size_t n)
{
    if (s[0] == '\0')
        return fail(why, n, "must not be empty");
    if (strlen(s) >= 4096)
        return fail(why, n, "is longer than 4095 bytes");
    for (char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return fail(why, n, "contains a control character");
    return 0;
}

static int check_readable_file(char *s, char *why, size_t n)
{
    char q[80];
    struct stat st;
    int rc = check_path(s, why, n);
    if (rc < 0)
        return rc;
    if (stat(s, &st) == -1 || access(s, R_OK) == -1)
        return fail(why, n, "%s: %s", quoted(q, sizeof q, s), strerror(errno));
    if (!S_ISREG(st.st_mode))
        return fail(why, n, "%s is not a regular file", quoted(q, sizeof q, s));
    return 0;
}

/* Model names go into the OpenAI URL's query: keep them to URL-safe characters. */
static int check_model_name(char *s, char *why, size_t n)
{
    char q[80];
    if (s[0] == '\0' || strlen(s) > 128 || !chars_in(s, "._:-"))
        return fail(why, n, "%s is not a model name (1-128 letters, digits, '.', '_', ':', '-')",
                    quoted(q, sizeof q, s));
    return 0;
}

/* A name of 1-max letters, digits and '_' / '-': voices and OpenAI function names
 * (^[a-zA-Z0-9_-]{1,64}$). */
static int check_name(char *s, const char *what, char *why, size_t n)
{
    char q[80];
    if (s[0] == '\0' || strlen(s) > 64 || !chars_in(s, "_-"))
        return fail(why, n, "%s is not a %s (1-64 letters, digits, '_', '-')",
                    quoted(q, sizeof q, s), what);
    return 0;
}

static int check_voice(char *s, char *why, size_t n)
{
    return check_name(s, "voice name", why, n);
}

static int check_tool_name(char *s, char *why, size_t n)
{
    return check_name(s, "function name", why, n);
}

/* Twilio's MachineDetection values (protocols.md §3.2), spelled as Twilio spells them. */
static int check_machine_detection(char *s, char *why, size_t n)
{
    char q[80];
    if (strcmp(s, "Enable") != 0 && strcmp(s, "DetectMessageEnd") != 0)
        return fail(why, n, "%s is not one of Enable, DetectMessageEnd (or null)",
                    quoted(q, sizeof q, s));
    return 0;
}

static int check_nonempty(char *s, char *why, size_t n)
{
    return s[0] == '\0' ? fail(why, n, "must not be empty (use null for none)") : 0;
}

static int check_redis_prefix(char *s, char *why, size_t n)
{
    if (strlen(s) > 64)
        return fail(why, n, "is longer than 64 bytes");
    for (char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return fail(why, n, "may hold only visible ASCII characters");
    return 0;
}

/* Node names go into Redis keys and channel names: 1-64 letters, digits, '.', '_', '-'. */
static int check_node_name(char *s, char *why, size_t n)
{
    char q[80];
    if (s[0] == '\0' || strlen(s) > 64 || !chars_in(s, "._-"))
        return fail(why, n, "%s is not a node name (1-64 letters, digits, '.', '_', '-')",
                    quoted(q, sizeof q, s));
    return 0;
}

/* http(s)://host[:port] with nothing after it but an optional slash, which is removed so that
 * "URL + /path" never doubles it. */
static int check_http_base(char *s, char *why, size_t n)
{
    char q[80], prob[160];
    struct url u;
    if (url_split(s, &u, prob, sizeof prob) < 0)
        return fail(why, n, "%s %s", quoted(q, sizeof q, s), prob);
    if (strcmp(u.scheme, "http") != 0 && strcmp(u.scheme, "https") != 0)
        return fail(why, n, "%s must start with http:// or https://", quoted(q, sizeof q, s));
    if (u.userinfo != NULL)
        return fail(why, n, "%s must not contain user:password@", quoted(q, sizeof q, s));
    if (u.query || u.fragment)
        return fail(why, n, "%s must not have a query or fragment", quoted(q, sizeof q, s));
    if (u.path_len > 1)
        return fail(why, n, "%s must not have a path (only http(s)://host[:port])",
                    quoted(q, sizeof q, s));
    if (u.path_len == 1)
        s[strlen(s) - 1] = '\0';
    return 0;
}

static int check_ws_url(char *s, char *why, size_t n)
{
    char q[80], prob[160];
    struct url u;
    if (url_split(s, &u, prob, sizeof prob) < 0)
        return fail(why, n, "%s %s", quoted(q, sizeof q, s), prob);
    if (strcmp(u.scheme, "ws") != 0 && strcmp(u.scheme, "wss") != 0)
        return fail(why, n, "%s must start with ws:// or wss://", quoted(q, sizeof q, s));
    if (u.userinfo != NULL)
        return fail(why, n, "%s must not contain user:password@", quoted(q, sizeof q, s));
    if (u.query || u.fragment)
        return fail(why, n, "%s must not have a query or fragment (the model is openai.model)",
                    quoted(q, sizeof q, s));
    return 0;
}

static int check_webhook_url(char *s, char *why, size_t n)
{
    char q[80], prob[160];
    struct url u;
    if (url_split(s, &u, prob, sizeof prob) < 0)
        return fail(why, n, "%s %s", quoted(q, sizeof q, s), prob);
    if (strcmp(u.scheme, "http") != 0 && strcmp(u.scheme, "https") != 0)
        return fail(why, n, "%s must start with http:// or https://", quoted(q, sizeof q, s));
    if (u.userinfo != NULL)
        return fail(why, n, "%s must not contain user:password@", quoted(q, sizeof q, s));
    if (u.fragment)
        return fail(why, n, "%s must not have a fragment", quoted(q, sizeof q, s));
    return 0;
}

/* Values sent in HTTP headers (API key, account SID, auth token): a stray newline or space
 * would corrupt the request. Never quotes the value. */
static int check_header_token(char *s, char *why, size_t n)
{
    for (char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return fail(why, n,
                        "contains a space, control or non-ASCII character "
                        "(a stray newline or quote?)");
    return 0;
}

/* JWT_SECRET is HMAC key bytes: anything goes but control characters, which are typos. */
static int check_secret_bytes(char *s, char *why, size_t n)
{
    for (char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return fail(why, n, "contains a control character (a stray newline?)");
    return 0;
}

/* Caller ID for outbound calls: E.164. Not quoted: phone numbers are masked in our output. */
static int check_e164(char *s, char *why, size_t n)
{
    size_t len = strlen(s), i = 1;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++;
    if (s[0] != '+' || s[1] == '0' || i != len || len < 3 || len > 16)
        return fail(why, n, "is not an E.164 number (+ and 2-15 digits, as +14155550100)");
    return 0;
}

/* ---- JSON object checks ------------------------------------------------------------------ */

static int check_turn_detection(const json_t *v, char *why, size_t n)
{
    const char *type = json_string_value(json_object_get(v, "type"));
    if (type == NULL || (strcmp(type, "server_vad") != 0 && strcmp(type, "semantic_vad") != 0))
        return fail(why, n, "\"type\" must be \"server_vad\" or \"semantic_vad\"");
    json_t *t = json_object_get(v, "threshold");
    if (t != NULL && (!json_is_number(t) || json_number_value(t) < 0 || json_number_value(t) > 1))
        return fail(why, n, "\"threshold\" must be a number from 0 to 1");
    static const char *const ms[] = {"prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms"};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        t = json_object_get(v, ms[i]);
        if (t != NULL &&
            (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) > 600000))
            return fail(why, n, "\"%s\" must be an integer from 0 to 600000", ms[i]);
    }
    return 0;
}

static int check_tool_parameters(const json_t *v, char *why, size_t n)
{
    const char *type = json_string_value(json_object_get(v, "type"));
    if (type == NULL || strcmp(type, "object") != 0)
        return fail(why, n, "must be a JSON Schema with \"type\": \"object\"");
    return 0;
}

/* ---- setters ----------------------------------------------------------------------------- */

static int set_string(struct config *c, const struct config_key *k, const json_t *v, char *why,
                      size_t n)
{
    char **slot = FIELD(c, k->off, char *);
    int nullable = (k->flags & KEY_NULLABLE) != 0;
    if (json_is_null(v) && nullable) {
        free(*slot);
        *slot = NULL;
        return 0;
    }
    if (!json_is_string(v))
        return fail(why, n, "expected a string%s, got %s", nullable ? " or null" : "",
                    json_kind(v));
    size_t len = json_string_length(v);
    const char *s = json_string_value(v);
    if (memchr(s, '\0', len) != NULL)
        return fail(why, n, "contains a NUL character");
    char *dup = malloc(len + 1);
    if (dup == NULL)
        return -ENOMEM;
    memcpy(dup, s, len + 1);
    if (k->check_str != NULL) {
        int rc = k->check_str(dup, why, n);
        if (rc < 0) {
            free(dup);
            return rc;
        }
    }
    free(*slot);
    *slot = dup;
    return 0;
}

static int set_uint(struct config *c, const struct config_key *k, const json_t *v, char *why,
                    size_t n)
{
    if (json_is_real(v))
        return fail(why, n, "expected an integer, got %g", json_real_value(v));
    if (!json_is_integer(v))
        return fail(why, n, "expected an integer, got %s", json_kind(v));
    long long x = json_integer_value(v);
    if (x < k->min || x > k->max)
        return fail(why, n, "must be between %lld and %lld, got %lld", k->min, k->max, x);
    *FIELD(c, k->off, unsigned) = (unsigned)x;
    return 0;
}

/* A price in USD: a number from 0 to max (integers allowed: 64 means 64.0). */
static int set_price(struct config *c, const struct config_key *k, const json_t *v, char *why,
                     size_t n)
{
    if (!json_is_number(v))
        return fail(why, n, "expected a number (USD), got %s", json_kind(v));
    double x = json_number_value(v);
    if (!(x >= 0 && x <= (double)k->max))
        return fail(why, n, "must be between 0 and %lld, got %g", k->max, x);
    *FIELD(c, k->off, double) = x;
    return 0;
}

static int set_bool(struct config *c, const struct config_key *k, const json_t *v, char *why,
                    size_t n)
{
    if (!json_is_boolean(v))
        return fail(why, n, "expected a boolean (true or false), got %s", json_kind(v));
    *FIELD(c, k->off, bool) = json_is_true(v);
    return 0;
}

/* Objects passed to a peer verbatim are kept as compact JSON text. 15 significant digits print
 * 0.1 as 0.1 (17 would print 0.10000000000000001). json_dumps allocates with malloc: jansson's
 * allocator is never replaced in this program. */
static int set_json_object(struct config *c, const struct config_key *k, const json_t *v, char *why,
                           size_t n)
{
    if (!json_is_object(v))
        return fail(why, n, "expected an object, got %s", json_kind(v));
    if (k->check_json != NULL) {
        int rc = k->check_json(v, why, n);
        if (rc < 0)
            return rc;
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(15));
    if (s == NULL)
        return -ENOMEM;
    char **slot = FIELD(c, k->off, char *);
    free(*slot);
    *slot = s;
    return 0;
}

static int listen_parse(const char *s, struct config_listen *out, char *why, size_t n)
{
    char q[80];
    const char *host, *port;
    size_t hlen;
    int bracketed = 0;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return fail(why, n, "%s is not [IPv6]:port", quoted(q, sizeof q, s));
        host = s + 1;
        hlen = (size_t)(close - host);
        port = close + 2;
        bracketed = 1;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL)
            return fail(why, n, "%s is not host:port", quoted(q, sizeof q, s));
        host = s;
        hlen = (size_t)(colon - s);
        port = colon + 1;
        if (memchr(host, ':', hlen) != NULL)
            return fail(why, n, "%s: an IPv6 address needs brackets, as in [::1]:8080",
                        quoted(q, sizeof q, s));
        if (hlen == 0)
            return fail(why, n, "%s has no host (0.0.0.0 or [::] listen on every address)",
                        quoted(q, sizeof q, s));
    }
    if (host_parse(host, hlen, bracketed, out->host, sizeof out->host, &out->family) < 0)
        return fail(why, n, "%s has a bad host", quoted(q, sizeof q, s));
    if (port_parse(port, strlen(port), &out->port) < 0)
        return fail(why, n, "%s has a bad port (1-65535)", quoted(q, sizeof q, s));
    return 0;
}

/* Messages that start with '[' follow the key path directly: "listen[1]: ...". */
/* {"address": "host:port", "tls_cert": FILE, "tls_key": FILE}: a listener with TLS (both files
 * or neither). On failure why starts with ": " or "." + the member, as a key path goes on. */
static int listen_object(const json_t *e, struct config_listen *l, char *why, size_t n)
{
    char prob[WHY_MAX - 64], path[CONFIG_PATH_MAX];
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)e, key, val)
    {
        if (strcmp(key, "address") != 0 && strcmp(key, "tls_cert") != 0 &&
            strcmp(key, "tls_key") != 0)
            return fail(why, n, ".%.40s: unknown key (address, tls_cert, tls_key)", key);
        if (!json_is_string(val))
            return fail(why, n, ".%s: expected a string, got %s", key, json_kind(val));
    }
    const json_t *addr = json_object_get(e, "address");
    if (addr == NULL)
        return fail(why, n, ".address: is required");
    if (listen_parse(json_string_value(addr), l, prob, sizeof prob) < 0)
        return fail(why, n, ".address: %s", prob);
    static const char *const names[] = {"tls_cert", "tls_key"};
    char *dst[] = {l->tls_cert, l->tls_key};
    for (int i = 0; i < 2; i++) {
        const json_t *f = json_object_get(e, names[i]);
        if (f == NULL)
            continue;
        if (json_string_length(f) >= CONFIG_PATH_MAX)
            return fail(why, n, ".%s: longer than %d bytes", names[i], CONFIG_PATH_MAX - 1);
        snprintf(path, sizeof path, "%s", json_string_value(f));
        int rc = check_readable_file(path, prob, sizeof prob);
        if (rc < 0)
            return fail(why, n, ".%s: %s", names[i], prob);
        snprintf(dst[i], CONFIG_PATH_MAX, "%s", path);
    }
    if ((l->tls_cert[0] == '\0') != (l->tls_key[0] == '\0'))
        return fail(why, n, ": tls_cert and tls_key go together");
    return 0;
}

static int set_listen(struct config *c, const struct config_key *k, const json_t *v, char *why,
                      size_t n)
{
    (void)k;
    struct config_listen tmp[CONFIG_LISTEN_MAX];
    char prob[WHY_MAX - 16];
    if (!json_is_array(v))
        return fail(why, n, "expected an array of \"host:port\" strings or objects, got %s",
                    json_kind(v));
    size_t count = json_array_size(v);
    if (count == 0)
        return fail(why, n, "needs at least one address");
    if (count > CONFIG_LISTEN_MAX)
        return fail(why, n, "has %zu addresses; at most %d are allowed", count, CONFIG_LISTEN_MAX);
    memset(tmp, 0, sizeof tmp);
    for (size_t i = 0; i < count; i++) {
        const json_t *e = json_array_get(v, i);
        if (json_is_object(e)) {
            int rc = listen_object(e, &tmp[i], prob, sizeof prob);
            if (rc < 0) {
                fail(why, n, "[%zu]%s", i, prob);
                return rc;
            }
            goto parsed;
        }
        if (!json_is_string(e))
            return fail(why, n, "[%zu]: expected a string or an object, got %s", i,
                        json_kind(e));
        if (listen_parse(json_string_value(e), &tmp[i], prob, sizeof prob) < 0)
            return fail(why, n, "[%zu]: %s", i, prob);
    parsed:
        for (size_t j = 0; j < i; j++)
            if (tmp[j].port == tmp[i].port && strcmp(tmp[j].host, tmp[i].host) == 0)
                return fail(why, n, "[%zu]: repeats listen[%zu]", i, j);
    }
    memcpy(c->listen, tmp, sizeof tmp);
    c->listen_count = count;
    return 0;
}

static int set_workers(struct config *c, const struct config_key *k, const json_t *v, char *why,
                       size_t n)
{
    (void)k;
    char q[80];
    if (json_is_string(v)) {
        if (strcmp(json_string_value(v), "auto") != 0)
            return fail(why, n, "expected \"auto\" or an integer from 1 to %d, got %s",
                        CONFIG_WORKERS_MAX, quoted(q, sizeof q, json_string_value(v)));
        c->workers = 0;
        return 0;
    }
    if (!json_is_integer(v))
        return fail(why, n, "expected \"auto\" or an integer, got %s", json_kind(v));
    long long x = json_integer_value(v);
    if (x < 1 || x > CONFIG_WORKERS_MAX)
        return fail(why, n, "must be \"auto\" or between 1 and %d, got %lld", CONFIG_WORKERS_MAX,
                    x);
    c->workers = (unsigned)x;
    return 0;
}

static int set_log_level(struct config *c, const struct config_key *k, const json_t *v, char *why,
                         size_t n)
{
    (void)k;
    char q[80];
    if (!json_is_string(v))
        return fail(why, n, "expected a string, got %s", json_kind(v));
    if (log_level_parse(json_string_value(v), &c->log_level) < 0)
        return fail(why, n, "%s is not one of error, warn, info, debug",
                    quoted(q, sizeof q, json_string_value(v)));
    return 0;
}

static int set_audio_format(struct config *c, const struct config_key *k, const json_t *v,
                            char *why, size_t n)
{
    (void)k;
    char q[80];
    if (!json_is_string(v))
        return fail(why, n, "expected a string, got %s", json_kind(v));
    const char *s = json_string_value(v);
    if (strcmp(s, "pcm16") == 0)
        c->openai.audio_format = CONFIG_AUDIO_PCM16;
    else if (strcmp(s, "g711_ulaw") == 0)
        c->openai.audio_format = CONFIG_AUDIO_G711_ULAW;
    else
        return fail(why, n, "%s is not one of pcm16, g711_ulaw", quoted(q, sizeof q, s));
    return 0;
}

static void free_secret(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

/* redis://[[user]:password@]host[:port][/db]. The URL may carry a password, so no message
 * here ever quotes it. */
static int set_redis_url(struct config *c, const struct config_key *k, const json_t *v, char *why,
                         size_t n)
{
    (void)k;
    static const char form[] = "(expected redis://[[user]:password@]host[:port][/db])";
    char prob[160];
    struct url u;
    if (!json_is_string(v))
        return fail(why, n, "expected a string, got %s", json_kind(v));
    if (url_split(json_string_value(v), &u, prob, sizeof prob) < 0)
        return fail(why, n, "%s %s", prob, form);
    if (strcmp(u.scheme, "redis") != 0)
        return fail(why, n, "must start with redis:// (TLS and unix sockets are not supported) %s",
                    form);
    if (u.query || u.fragment)
        return fail(why, n, "must not have a query or fragment %s", form);
    unsigned db = 0;
    if (u.path_len > 1) {
        if (u.path_len > 6)
            return fail(why, n, "has a bad database number (0-65535) %s", form);
        for (size_t i = 1; i < u.path_len; i++) {
            if (u.path[i] < '0' || u.path[i] > '9')
                return fail(why, n, "has a bad database number (0-65535) %s", form);
            db = db * 10 + (unsigned)(u.path[i] - '0');
        }
        if (db > 65535)
            return fail(why, n, "has a bad database number (0-65535) %s", form);
    }
    char *host = strdup(u.host), *user = NULL, *pass = NULL;
    int rc = host == NULL ? -ENOMEM : 0;
    if (rc == 0 && u.userinfo != NULL) {
        const char *colon = memchr(u.userinfo, ':', u.userinfo_len);
        size_t ulen = colon != NULL ? (size_t)(colon - u.userinfo) : u.userinfo_len;
        if (ulen > 0)
            user = pct_decode(u.userinfo, ulen, &rc);
        if (rc == 0 && colon != NULL && (size_t)(colon + 1 - u.userinfo) < u.userinfo_len)
            pass = pct_decode(colon + 1, u.userinfo_len - ulen - 1, &rc);
        if (rc == -EINVAL)
            fail(why, n, "has bad %%-encoding in its user or password");
    }
    if (rc < 0) {
        free(host);
        free(user);
        free_secret(pass);
        return rc;
    }
    free(c->redis.host);
    free(c->redis.username);
    free_secret(c->redis.password);
    c->redis.host = host;
    c->redis.username = user;
    c->redis.password = pass;
    c->redis.port = u.port > 0 ? (uint16_t)u.port : 6379;
    c->redis.db = db;
    return 0;
}

/* ---- the schema -------------------------------------------------------------------------- */

// clang-format off
/* The offset of a field that must have the given type: a row whose setter writes another
 * type than its field has does not compile (_Generic does not evaluate the member access). */
#define F(field, type)                                                                       \
    (offsetof(struct config, field) +                                                        \
     0 * sizeof(struct {                                                                     \
         _Static_assert(_Generic(((struct config *)0)->field, type: 1, default: 0),          \
                        "schema row type does not match its field");                         \
         char c;                                                                             \
     }))
#define SECTION(p, fl) {.path = p, .flags = fl}
#define STRING(p, field, d, chk, fl)                                                         \
    {.path = p, .set = set_string, .def = d, .off = F(field, char *), .check_str = chk,       \
     .flags = fl}
#define INTEGER(p, field, d, lo, hi)                                                         \
    {.path = p, .set = set_uint, .def = d, .off = F(field, unsigned), .min = lo, .max = hi}
#define BOOLEAN(p, field, d) {.path = p, .set = set_bool, .def = d, .off = F(field, bool)}
#define PRICE(p, field, d, hi) {.path = p, .set = set_price, .def = d, .off = F(field, double), .max = hi}
#define OBJECT(p, field, d, chk)                                                             \
    {.path = p, .set = set_json_object, .def = d, .off = F(field, char *), .check_json = chk}
#define CUSTOM(p, setter, d) {.path = p, .set = setter, .def = d}
// clang-format on

/* Defaults are JSON text run through the same setters as the file, so they are validated too
 * (the defaults unit test would catch a bad one). Keep docs/configuration.md and
 * deploy/voicebridge.example.json in step with this table; the unit tests check both. */
static const struct config_key config_keys[] = {
    CUSTOM("listen", set_listen, "[\"127.0.0.1:8080\"]"),
    STRING("public_url", public_url, NULL, check_http_base, KEY_NULLABLE),
    CUSTOM("workers", set_workers, "\"auto\""),
    INTEGER("max_calls_per_worker", max_calls_per_worker, "1000", 1, 100000),
    INTEGER("call_threads", call_threads, "0", 0, 256),
    CUSTOM("log_level", set_log_level, "\"info\""),
    STRING("log_file", log_file, NULL, check_path, KEY_NULLABLE),
    STRING("pid_file", pid_file, "\"voicebridge.pid\"", check_path, 0),
    CUSTOM("redis_url", set_redis_url, "\"redis://127.0.0.1:6379/0\""),
    STRING("redis_prefix", redis.prefix, "\"vb:\"", check_redis_prefix, 0),
    INTEGER("redis_retention_s", redis.retention_s, "2592000", 60, 315360000),
    INTEGER("redis_session_ttl_s", redis.session_ttl_s, "60", 3, 86400),
    INTEGER("redis_events_maxlen", redis.events_maxlen, "100000", 100, 1000000000),
    INTEGER("redis_queue_max", redis.queue_max, "100000", 16, 10000000),
    INTEGER("redis_timeout_ms", redis.timeout_ms, "3000", 100, 600000),
    STRING("node_name", node_name, NULL, check_node_name, KEY_NULLABLE),
    INTEGER("drain_timeout_s", drain_timeout_s, "300", 1, 86400),
    INTEGER("drain_announce_s", drain_announce_s, "2", 0, 300),
    SECTION("openai", 0),
    STRING("openai.url", openai.url, "\"wss://api.openai.com/v1/realtime\"", check_ws_url, 0),
    STRING("openai.model", openai.model, "\"gpt-realtime\"", check_model_name, 0),
    STRING("openai.voice", openai.voice, "\"alloy\"", check_voice, 0),
    CUSTOM("openai.audio_format", set_audio_format, "\"pcm16\""),
    STRING("openai.instructions", openai.instructions,
           "\"You are a helpful assistant on a phone call. Speak naturally and keep your "
           "answers short.\"",
           NULL, 0),
    STRING("openai.ca_file", openai.ca_file, NULL, check_readable_file, KEY_NULLABLE),
    BOOLEAN("openai.greeting_inbound", openai.greeting_inbound, "true"),
    STRING("openai.transcription_model", openai.transcription_model, "\"gpt-4o-mini-transcribe\"",
           check_model_name, KEY_NULLABLE),
    OBJECT("openai.turn_detection", openai.turn_detection,
           "{\"type\":\"server_vad\",\"threshold\":0.5,\"prefix_padding_ms\":300,"
           "\"silence_duration_ms\":500}",
           check_turn_detection),
    STRING("openai.apology", openai.apology,
           "\"Sorry, we are having technical difficulties. Please call again later.\"",
           check_nonempty, KEY_NULLABLE),
    SECTION("twilio", 0),
    STRING("twilio.api_url", twilio.api_url, "\"https://api.twilio.com\"", check_http_base, 0),
    BOOLEAN("twilio.validate_signatures", twilio.validate_signatures, "true"),
    STRING("twilio.machine_detection", twilio.machine_detection, NULL, check_machine_detection,
           KEY_NULLABLE),
    INTEGER("twilio.stream_token_ttl_s", twilio.stream_token_ttl_s, "300", 10, 86400),
    BOOLEAN("twilio.record", twilio.record, "true"),
    SECTION("auth", 0),
    INTEGER("auth.jwt_leeway_s", auth.jwt_leeway_s, "30", 0, 600),
    BOOLEAN("auth.jwt_require_exp", auth.jwt_require_exp, "true"),
    SECTION("pricing", 0),
    PRICE("pricing.openai_audio_in", pricing.openai_audio_in, "32", 10000),
    PRICE("pricing.openai_audio_cached_in", pricing.openai_audio_cached_in, "0.4", 10000),
    PRICE("pricing.openai_audio_out", pricing.openai_audio_out, "64", 10000),
    PRICE("pricing.openai_text_in", pricing.openai_text_in, "4", 10000),
    PRICE("pricing.openai_text_cached_in", pricing.openai_text_cached_in, "0.4", 10000),
    PRICE("pricing.openai_text_out", pricing.openai_text_out, "16", 10000),
    PRICE("pricing.twilio_inbound_per_min", pricing.twilio_inbound_per_min, "0.0085", 100),
    PRICE("pricing.twilio_outbound_per_min", pricing.twilio_outbound_per_min, "0.014", 100),
    PRICE("pricing.twilio_stream_per_min", pricing.twilio_stream_per_min, "0.004", 100),
    SECTION("rate_limit", 0),
    INTEGER("rate_limit.user_per_minute", rate_limit.user_per_minute, "10", 1, 1000000),
    INTEGER("rate_limit.user_burst", rate_limit.user_burst, "5", 1, 1000000),
    INTEGER("rate_limit.global_per_minute", rate_limit.global_per_minute, "600", 1, 10000000),
    INTEGER("rate_limit.global_burst", rate_limit.global_burst, "50", 1, 10000000),
    INTEGER("rate_limit.max_users", rate_limit.max_users, "10000", 16, 1000000),
    SECTION("bridge", 0),
    INTEGER("bridge.pacing_lead_ms", bridge.pacing_lead_ms, "120", 20, 2000),
    INTEGER("bridge.pacing_low_ms", bridge.pacing_low_ms, "40", 0, 1980),
    INTEGER("bridge.mark_interval_ms", bridge.mark_interval_ms, "1000", 20, 10000),
    INTEGER("bridge.max_ws_message_bytes", bridge.max_ws_message_bytes, "262144", 65536, 16777216),
    SECTION("http", 0),
    INTEGER("http.max_header_bytes", http.max_header_bytes, "16384", 1024, 1048576),
    INTEGER("http.max_body_bytes", http.max_body_bytes, "65536", 1024, 16777216),
    INTEGER("http.request_timeout_ms", http.request_timeout_ms, "10000", 100, 600000),
    INTEGER("http.keepalive_timeout_ms", http.keepalive_timeout_ms, "75000", 0, 3600000),
    SECTION("tools", 0),
    SECTION("tools.webhook", KEY_NULLABLE),
    STRING("tools.webhook.url", tools.webhook.url, NULL, check_webhook_url, KEY_REQUIRED),
    INTEGER("tools.webhook.timeout_ms", tools.webhook.timeout_ms, "5000", 100, 60000),
    STRING("tools.webhook.name", tools.webhook.name, "\"lookup\"", check_tool_name, 0),
    STRING("tools.webhook.description", tools.webhook.description,
           "\"Look up information that helps answer the caller.\"", NULL, 0),
    OBJECT("tools.webhook.parameters", tools.webhook.parameters,
           "{\"type\":\"object\",\"properties\":{}}", check_tool_parameters),
};
#define KEY_COUNT (sizeof config_keys / sizeof config_keys[0])

/* Values that come only from the environment, and environment variables that override a key
 * of the file (validated by that key's setter). Empty variables count as unset. */
struct config_env {
    const char *name;
    const char *key; /* overrides this key, or NULL: fills the field at off */
    size_t off;
    str_check_fn *check;
};

static const struct config_env config_envs[] = {
    {"OPENAI_API_KEY", NULL, F(openai.api_key, char *), check_header_token},
    {"TWILIO_ACCOUNT_SID", NULL, F(twilio.account_sid, char *), check_header_token},
    {"TWILIO_AUTH_TOKEN", NULL, F(twilio.auth_token, char *), check_header_token},
    {"TWILIO_PHONE_NUMBER", NULL, F(twilio.phone_number, char *), check_e164},
    {"JWT_SECRET", NULL, F(jwt_secret, char *), check_secret_bytes},
    {"REDIS_URL", "redis_url", 0, NULL},
    {"PUBLIC_BASE_URL", "public_url", 0, NULL},
};
#define ENV_COUNT (sizeof config_envs / sizeof config_envs[0])

/* Keys people put in the file out of habit, and where the value really comes from. */
static const char *unknown_key_hint(const char *path)
{
    static const char *const hints[][2] = {
        {"openai.api_key", "OPENAI_API_KEY"},
        {"twilio.account_sid", "TWILIO_ACCOUNT_SID"},
        {"twilio.auth_token", "TWILIO_AUTH_TOKEN"},
        {"twilio.phone_number", "TWILIO_PHONE_NUMBER"},
        {"jwt_secret", "JWT_SECRET"},
    };
    for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++)
        if (strcmp(path, hints[i][0]) == 0)
            return hints[i][1];
    return NULL;
}

static const struct config_key *key_find(const char *path)
{
    for (size_t i = 0; i < KEY_COUNT; i++)
        if (strcmp(config_keys[i].path, path) == 0)
            return &config_keys[i];
    return NULL;
}

const char *config_key_path(size_t i)
{
    return i < KEY_COUNT ? config_keys[i].path : NULL;
}

/* ---- loading ----------------------------------------------------------------------------- */

static int defaults_apply(struct config *c, char *path, size_t path_n, char *why, size_t n)
{
    for (size_t i = 0; i < KEY_COUNT; i++) {
        const struct config_key *k = &config_keys[i];
        if (k->set == NULL || k->def == NULL)
            continue;
        json_error_t je;
        json_t *v = json_loads(k->def, JSON_DECODE_ANY, &je);
        snprintf(path, path_n, "%s", k->path);
        if (v == NULL) {
            if (json_error_code(&je) == json_error_out_of_memory)
                return -ENOMEM;
            return fail(why, n, "internal error: bad default: %s", je.text);
        }
        int rc = k->set(c, k, v, why, n);
        json_decref(v);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Applies the keys of one JSON object (the top level or a section). On failure path names
 * the offending key and why says what is wrong with it. */
static int section_apply(struct config *c, const json_t *obj, const char *prefix, char *path,
                         size_t path_n, char *why, size_t n)
{
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val)
    {
        int w = prefix[0] ? snprintf(path, path_n, "%s.%s", prefix, key)
                          : snprintf(path, path_n, "%s", key);
        const struct config_key *k = NULL;
        if (w >= 0 && (size_t)w < path_n && strchr(key, '.') == NULL)
            k = key_find(path);
        if (k == NULL) {
            const char *env = unknown_key_hint(path);
            if (env != NULL)
                return fail(why, n, "unknown key; this value comes from the environment: set %s",
                            env);
            if (strchr(key, '.') != NULL)
                return fail(why, n,
                            "unknown key (nested keys are written as objects, "
                            "as in {\"openai\": {\"voice\": ...}})");
            return fail(why, n, "unknown key");
        }
        int rc;
        if (k->set != NULL) {
            rc = k->set(c, k, val, why, n);
            if (rc < 0)
                return rc;
            continue;
        }
        int nullable = (k->flags & KEY_NULLABLE) != 0;
        if (json_is_null(val) && nullable)
            continue;
        if (!json_is_object(val))
            return fail(why, n, "expected an object%s, got %s", nullable ? " or null" : "",
                        json_kind(val));
        char sub[PATH_MAX_KEY];
        snprintf(sub, sizeof sub, "%s", k->path);
        rc = section_apply(c, val, sub, path, path_n, why, n);
        if (rc < 0)
            return rc;
        size_t sub_len = strlen(sub);
        for (size_t i = 0; i < KEY_COUNT; i++) {
            const struct config_key *r = &config_keys[i];
            if (!(r->flags & KEY_REQUIRED) || strncmp(r->path, sub, sub_len) != 0 ||
                r->path[sub_len] != '.' || strchr(r->path + sub_len + 1, '.') != NULL)
                continue;
            if (json_object_get(val, r->path + sub_len + 1) == NULL) {
                snprintf(path, path_n, "%s", r->path);
                return fail(why, n, "is required when %s is given", sub);
            }
        }
    }
    return 0;
}

static int env_apply(struct config *c, char *path, size_t path_n, char *why, size_t n)
{
    for (size_t i = 0; i < ENV_COUNT; i++) {
        const struct config_env *e = &config_envs[i];
        const char *value = getenv(e->name);
        if (value == NULL || value[0] == '\0')
            continue;
        if (e->key != NULL)
            snprintf(path, path_n, "%s (environment, overrides %s)", e->name, e->key);
        else
            snprintf(path, path_n, "%s (environment)", e->name);
        if (strlen(value) > ENV_VALUE_MAX)
            return fail(why, n, "is longer than %d bytes", ENV_VALUE_MAX);
        int rc;
        if (e->key != NULL) {
            const struct config_key *k = key_find(e->key);
            json_t *v = json_string(value);
            if (v == NULL)
                return fail(why, n, "is not valid UTF-8");
            rc = k->set(c, k, v, why, n);
            json_decref(v);
        } else {
            char *dup = strdup(value);
            if (dup == NULL)
                return -ENOMEM;
            rc = e->check(dup, why, n);
            if (rc < 0) {
                free_secret(dup);
                return rc;
            }
            char **slot = FIELD(c, e->off, char *);
            free_secret(*slot);
            *slot = dup;
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

int config_parse(const char *name, const char *text, size_t len, struct config *out, char *err,
                 size_t err_len)
{
    struct config c;
    char path[PATH_MAX_KEY] = "", why[WHY_MAX] = "";
    json_error_t je;
    json_t *root = NULL;
    int rc;

    memset(&c, 0, sizeof c);
    if (name == NULL)
        name = "(configuration)";
    rc = defaults_apply(&c, path, sizeof path, why, sizeof why);
    if (rc < 0)
        goto fail_key;

    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        rc = json_error_code(&je) == json_error_out_of_memory ? -ENOMEM : -EINVAL;
        if (je.line > 0)
            report(err, err_len, "%s:%d:%d: %s", name, je.line, je.column, je.text);
        else
            report(err, err_len, "%s: %s", name, je.text);
        goto fail;
    }
    if (!json_is_object(root)) {
        rc = -EINVAL;
        report(err, err_len, "%s: the top level must be an object ({ ... }), got %s", name,
               json_kind(root));
        goto fail;
    }
    rc = section_apply(&c, root, "", path, sizeof path, why, sizeof why);
    if (rc < 0)
        goto fail_key;
    json_decref(root);
    root = NULL;

    rc = env_apply(&c, path, sizeof path, why, sizeof why);
    if (rc < 0)
        goto fail_key;

    c.path = strdup(name);
    if (c.path == NULL) {
        rc = -ENOMEM;
        goto fail_key;
    }
    *out = c;
    return 0;

fail_key:
    if (rc == -ENOMEM)
        report(err, err_len, "%s: out of memory", name);
    else
        report(err, err_len, "%s: %s%s%s", name, path, why[0] == '[' ? "" : ": ", why);
fail:
    json_decref(root);
    config_free(&c);
    return rc;
}

int config_load(const char *path, struct config *out, char *err, size_t err_len)
{
    struct stat st;
    size_t len = 0;
    char *buf = NULL;
    int rc;
    /* O_NONBLOCK: opening a FIFO must not hang; it is refused below as not a regular file. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd == -1) {
        rc = -errno;
        report(err, err_len, "%s: %s", path, strerror(-rc));
        return rc;
    }
    if (fstat(fd, &st) == -1) {
        rc = -errno;
        report(err, err_len, "%s: %s", path, strerror(-rc));
        goto fail_fd;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        report(err, err_len, "%s: not a regular file", path);
        goto fail_fd;
    }
    /* Read to end of file (it may have changed since fstat), one byte beyond the limit at most. */
    buf = malloc(CONFIG_FILE_MAX + 1);
    if (buf == NULL) {
        rc = -ENOMEM;
        report(err, err_len, "%s: out of memory", path);
        goto fail_fd;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len);
        if (r == -1) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            report(err, err_len, "%s: %s", path, strerror(-rc));
            goto fail_buf;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len > CONFIG_FILE_MAX) {
            rc = -EFBIG;
            report(err, err_len, "%s: larger than %u bytes", path, CONFIG_FILE_MAX);
            goto fail_buf;
        }
    }
    close(fd);
    rc = config_parse(path, buf, len, out, err, err_len);
    free(buf);
    return rc;

fail_buf:
    free(buf);
fail_fd:
    close(fd);
    return rc;
}

void config_free(struct config *c)
{
    for (size_t i = 0; i < KEY_COUNT; i++) {
        const struct config_key *k = &config_keys[i];
        if (k->set == set_string || k->set == set_json_object) {
            char **slot = FIELD(c, k->off, char *);
            free(*slot);
        }
    }
    for (size_t i = 0; i < ENV_COUNT; i++)
        if (config_envs[i].key == NULL)
            free_secret(*FIELD(c, config_envs[i].off, char *));
    free(c->redis.host);
    free(c->redis.username);
    free_secret(c->redis.password);
    free(c->path);
    memset(c, 0, sizeof *c);
}

unsigned config_worker_count(const struct config *c)
{
    if (c->workers != 0)
        return c->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    return n > CONFIG_WORKERS_MAX ? CONFIG_WORKERS_MAX : (unsigned)n;
}

size_t config_warnings(const struct config *c, const char *out[], size_t max)
{
    size_t count = 0;
#define WARN_IF(cond, msg)                                                                         \
    do {                                                                                           \
        if (cond) {                                                                                \
            if (count < max)                                                                       \
                out[count] = (msg);                                                                \
            count++;                                                                               \
        }                                                                                          \
    } while (0)
    WARN_IF(c->openai.api_key == NULL, "OPENAI_API_KEY is not set: calls cannot reach OpenAI");
    WARN_IF(!c->twilio.validate_signatures,
            "twilio.validate_signatures is false: requests are not checked to come from Twilio");
    WARN_IF(c->twilio.validate_signatures && c->twilio.auth_token == NULL,
            "TWILIO_AUTH_TOKEN is not set while twilio.validate_signatures is on: Twilio "
            "signatures cannot be checked, and serving will refuse to start");
    WARN_IF(c->twilio.validate_signatures && c->public_url == NULL,
            "public_url is not set while twilio.validate_signatures is on: the URL Twilio signs "
            "cannot be rebuilt, and serving will refuse to start");
    WARN_IF(c->twilio.account_sid == NULL || c->twilio.auth_token == NULL ||
                c->twilio.phone_number == NULL,
            "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN or TWILIO_PHONE_NUMBER is not set: "
            "outbound calls cannot be placed");
    WARN_IF(c->jwt_secret == NULL, "JWT_SECRET is not set: the call API cannot check tokens");
    WARN_IF(c->public_url == NULL,
            "public_url (or PUBLIC_BASE_URL) is not set: Twilio cannot be given callback URLs");
#undef WARN_IF
    return count;
}
