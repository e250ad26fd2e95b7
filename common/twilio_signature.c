/* Twilio request signatures. The parameters are sorted through an index (the caller's table is
 * left alone) and fed to a streamed HMAC after the URL, so nothing is joined or allocated. URL
 * variants are built in a stack buffer: split once into scheme, host, port and the rest, then
 * reassembled per variant. */
#include "common/twilio_signature.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/base64.h"
#include "common/hmac.h"

static int param_cmp(const void *a, const void *b)
{
    const struct form_field *x = *(const struct form_field *const *)a;
    const struct form_field *y = *(const struct form_field *const *)b;
    int c = strcmp(x->name, y->name);
    return c != 0 ? c : strcmp(x->value, y->value);
}

static bool same_param(const struct form_field *x, const struct form_field *y)
{
    return strcmp(x->name, y->name) == 0 && strcmp(x->value, y->value) == 0;
}

/* Sorts pointers to params into order[]; returns whether two are exact duplicates. */
static bool sort_params(const struct form_field *params, size_t n,
                        const struct form_field **order)
{
    for (size_t i = 0; i < n; i++)
        order[i] = &params[i];
    qsort(order, n, sizeof *order, param_cmp);
    for (size_t i = 1; i < n; i++)
        if (same_param(order[i - 1], order[i]))
            return true;
    return false;
}

static int sign_sorted(const char *token, size_t token_len, const char *url, size_t url_len,
                       const struct form_field *const *order, size_t n, bool dedup,
                       char out[TWILIO_SIGNATURE_LEN + 1])
{
    struct hmac_stream h;
    uint8_t mac[HMAC_SHA1_LEN];
    if (hmac_sha1_stream_init(&h, token, token_len) != 0)
        return -EIO;
    hmac_stream_update(&h, url, url_len);
    for (size_t i = 0; i < n; i++) {
        if (dedup && i > 0 && same_param(order[i - 1], order[i]))
            continue;
        hmac_stream_update(&h, order[i]->name, order[i]->name_len);
        hmac_stream_update(&h, order[i]->value, order[i]->value_len);
    }
    int rc = hmac_stream_finish(&h, mac);
    hmac_stream_free(&h);
    if (rc != 0)
        return rc;
    out[base64_encode(mac, sizeof mac, out)] = '\0';
    return 0;
}

int twilio_signature_compute(const char *token, size_t token_len, const char *url,
                             const struct form_field *params, size_t n, bool dedup,
                             char out[TWILIO_SIGNATURE_LEN + 1])
{
    const struct form_field *order[TWILIO_SIGNATURE_PARAMS_MAX];
    if (n > TWILIO_SIGNATURE_PARAMS_MAX)
        return -E2BIG;
    sort_params(params, n, order);
    return sign_sorted(token, token_len, url, strlen(url), order, n, dedup, out);
}

/* An absolute URL cut where the variants differ: scheme "://" host [":" port] rest. */
struct url_parts {
    const char *scheme, *host, *port, *path, *query; /* query: from '?' (or "") */
    size_t scheme_len, host_len, port_len, path_len;
    bool colon; /* a ':' after the host, even with no digits: kept as written */
};

static int url_cut(const char *url, struct url_parts *u)
{
    const char *sep = strstr(url, "://");
    if (sep == NULL || sep == url)
        return -EINVAL;
    u->scheme = url;
    u->scheme_len = (size_t)(sep - url);
    const char *a = sep + 3;
    size_t alen = strcspn(a, "/?#");
    if (alen == 0 || memchr(a, '@', alen) != NULL)
        return -EINVAL;
    const char *close = a[0] == '[' ? memchr(a, ']', alen) : NULL;
    const char *colon = NULL;
    for (const char *p = close ? close : a; p < a + alen; p++)
        if (*p == ':')
            colon = p;
    u->host = a;
    u->host_len = colon ? (size_t)(colon - a) : alen;
    u->port = colon ? colon + 1 : "";
    u->port_len = colon ? (size_t)(a + alen - colon - 1) : 0;
    u->colon = colon != NULL;
    u->path = a + alen;
    u->path_len = strcspn(u->path, "?#");
    u->query = u->path + u->path_len;
    return 0;
}

static const char *default_port(const struct url_parts *u)
{
    if ((u->scheme_len == 5 && strncasecmp(u->scheme, "https", 5) == 0) ||
        (u->scheme_len == 3 && strncasecmp(u->scheme, "wss", 3) == 0))
        return "443";
    if ((u->scheme_len == 4 && strncasecmp(u->scheme, "http", 4) == 0) ||
        (u->scheme_len == 2 && strncasecmp(u->scheme, "ws", 2) == 0))
        return "80";
    return NULL;
}

/* Writes one variant: port_mode 0 as given, 1 without port, 2 with the default port;
 * toggle_slash adds or removes the path's trailing '/'. Returns the length, or -1 if this
 * variant does not exist (no port to remove, an unknown scheme) or does not fit. */
static long url_variant(const struct url_parts *u, int port_mode, bool toggle_slash, char *out,
                        size_t cap)
{
    const char *port = u->port;
    size_t port_len = u->port_len;
    bool colon = u->colon;
    if (port_mode == 1) {
        if (!colon)
            return -1;
        port_len = 0, colon = false;
    } else if (port_mode == 2) {
        if (colon || (port = default_port(u)) == NULL)
            return -1;
        port_len = strlen(port), colon = true;
    }
    size_t path_len = u->path_len;
    bool add_slash = false;
    if (toggle_slash) {
        if (path_len > 1 && u->path[path_len - 1] == '/')
            path_len--;
        else if (path_len == 0 || u->path[path_len - 1] != '/')
            add_slash = true;
        else
            return -1; /* path "/": nothing to toggle */
    }
    size_t qlen = strlen(u->query);
    size_t need = u->scheme_len + 3 + u->host_len + colon + port_len + path_len + add_slash + qlen;
    if (need >= cap)
        return -1;
    char *o = out;
    memcpy(o, u->scheme, u->scheme_len), o += u->scheme_len;
    memcpy(o, "://", 3), o += 3;
    memcpy(o, u->host, u->host_len), o += u->host_len;
    if (colon) {
        *o++ = ':';
        memcpy(o, port, port_len), o += port_len;
    }
    memcpy(o, u->path, path_len), o += path_len;
    if (add_slash)
        *o++ = '/';
    memcpy(o, u->query, qlen), o += qlen;
    *o = '\0';
    return (long)(o - out);
}

int twilio_signature_verify(const char *token, size_t token_len, const char *url,
                            const struct form_field *params, size_t n, const char *header,
                            unsigned flags)
{
    struct url_parts u;
    if (strlen(url) > TWILIO_SIGNATURE_URL_MAX || url_cut(url, &u) != 0)
        return -EINVAL;
    if (n > TWILIO_SIGNATURE_PARAMS_MAX)
        return -E2BIG;
    const struct form_field *order[TWILIO_SIGNATURE_PARAMS_MAX];
    bool dups = sort_params(params, n, order);
    if (header == NULL || strlen(header) != TWILIO_SIGNATURE_LEN)
        return -EACCES;
    char buf[TWILIO_SIGNATURE_URL_MAX + 16], sig[TWILIO_SIGNATURE_LEN + 1];
    bool match = false;
    for (int slash = 0; slash <= ((flags & TWILIO_SIG_TRAILING_SLASH) ? 1 : 0); slash++) {
        for (int port_mode = 0; port_mode < 3; port_mode++) {
            long len = url_variant(&u, port_mode, slash, buf, sizeof buf);
            if (len < 0)
                continue;
            for (int dedup = 1; dedup >= (dups ? 0 : 1); dedup--) {
                int rc = sign_sorted(token, token_len, buf, (size_t)len, order, n, dedup, sig);
                if (rc != 0)
                    return rc;
                match |= hmac_equal(sig, header, TWILIO_SIGNATURE_LEN);
            }
        }
    }
    return match ? 0 : -EACCES;
}

/* The value of bodySHA256 in url's query (64 hex digits), or NULL. */
static const char *body_sha_param(const char *url)
{
    const char *q = strchr(url, '?');
    if (q == NULL)
        return NULL;
    static const char key[] = "bodySHA256=";
    for (const char *p = q + 1; *p && *p != '#';) {
        size_t len = strcspn(p, "&#");
        if (len == 64 + sizeof key - 1 && strncmp(p, key, sizeof key - 1) == 0)
            return p + sizeof key - 1;
        p += len;
        if (*p == '&')
            p++;
    }
    return NULL;
}

int twilio_signature_verify_json(const char *token, size_t token_len, const char *url,
                                 const void *body, size_t body_len, const char *header,
                                 unsigned flags)
{
    const char *want = body_sha_param(url);
    if (want == NULL)
        return -EBADMSG;
    uint8_t digest[32];
    if (sha256_digest(body, body_len, digest) != 0)
        return -EIO;
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < 64; i++) {
        unsigned v = (digest[i / 2] >> (i % 2 ? 0 : 4)) & 15;
        char c = want[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (c != hex[v])
            return -EBADMSG;
    }
    return twilio_signature_verify(token, token_len, url, NULL, 0, header, flags);
}
