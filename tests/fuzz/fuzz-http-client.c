/* Fuzz target for the HTTP client's own input surfaces: URL parsing (strict; an accepted URL
 * must rebuild to one that parses the same), the response reader (any bytes from a server, fed
 * in pieces, with and without EOF, as the answer to GET or HEAD) and the form encoder (which
 * must round-trip through the form decoder). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/form.h"
#include "common/http_client.h"
#include "common/http_client_reader.h"

static void fuzz_url(const char *s, size_t n)
{
    struct http_client_url u, v;
    int rc = http_client_url_parse(s, n, &u);
    if (rc != 0) {
        if (rc != -EINVAL)
            abort();
        return;
    }
    size_t hl = strlen(u.host);
    if (hl == 0 || hl > HTTP_CLIENT_HOST_MAX || u.port == 0 || u.port > 65535)
        abort();
    for (size_t i = 0; i < hl; i++) {
        char c = u.host[i];
        if ((c >= 'A' && c <= 'Z') || c <= ' ' || c == '@' || c == '/' || c == '%' || c == '[')
            abort();
    }
    if (u.target_len == 0 || u.target[0] != '/')
        abort();
    bool own = u.target >= s && u.target + u.target_len == s + n; /* else the default "/" */
    if (!own && (u.target_len != 1 || u.target[0] != '/'))
        abort();
    for (size_t i = 0; i < u.target_len; i++)
        if ((unsigned char)u.target[i] <= ' ' || (unsigned char)u.target[i] >= 0x7f ||
            u.target[i] == '#')
            abort();
    static char again[HTTP_CLIENT_URL_MAX + 600];
    int m =
        snprintf(again, sizeof again, "%s://%s%s%s:%u%.*s", u.tls ? "https" : "http",
                 u.ipv6 ? "[" : "", u.host, u.ipv6 ? "]" : "", u.port, (int)u.target_len, u.target);
    if (m < 0 || (size_t)m >= sizeof again)
        abort();
    rc = http_client_url_parse(again, (size_t)m, &v);
    if ((size_t)m > HTTP_CLIENT_URL_MAX) /* the explicit port may push it over */
        return;
    if (rc != 0 || v.tls != u.tls || v.ipv6 != u.ipv6 || v.port != u.port ||
        strcmp(v.host, u.host) != 0 || v.target_len != u.target_len ||
        memcmp(v.target, u.target, u.target_len) != 0)
        abort();
}

static void fuzz_reader(const uint8_t *data, size_t size)
{
    static struct http_client_reader r;
    if (size < 2)
        return;
    size_t step = 1 + data[0] % 64, max = (size_t)data[1] * 8;
    bool head = data[0] & 0x80, eof = data[1] & 1;
    data += 2, size -= 2;
    http_client_reader_start(&r, max, head);
    size_t off = 0;
    int rc = HTTP_PARSE_MORE;
    while (off < size && rc == HTTP_PARSE_MORE) {
        size_t n = size - off < step ? size - off : step, used;
        rc = http_client_reader_input(&r, (const char *)data + off, n, &used);
        if (used > n || (rc == HTTP_PARSE_MORE && used != n))
            abort();
        off += used;
    }
    if (rc == HTTP_PARSE_MORE && eof)
        rc = http_client_reader_eof(&r);
    if (rc == HTTP_PARSE_DONE) {
        const struct http_msg *m = &r.parser.msg;
        if (m->body == NULL || m->body_len > max || m->body[m->body_len] != '\0')
            abort();
        if (head && m->body_len != 0)
            abort();
        if (m->status < 100 || m->status == 101 || m->status > 999 || (m->status / 100 == 1))
            abort();
        (void)http_msg_header(m, "content-type");
    } else if (rc < 0 && rc != -EMSGSIZE && rc != -EPROTO && rc != -ENODATA && rc != -ENOMEM) {
        abort();
    }
    http_client_reader_free(&r);
}

static void fuzz_form(const char *s, size_t n)
{
    if (n == 0 || memchr(s, '\0', n) != NULL)
        return; /* the decoder refuses NULs by design */
    static char name[4096], value[4096];
    size_t half = n / 2;
    if (half >= sizeof name || n - half >= sizeof value)
        return;
    memcpy(name, s, half);
    name[half] = '\0';
    memcpy(value, s + half, n - half);
    value[n - half] = '\0';
    static char body[3 * 8192 + 8];
    size_t len = 0;
    if (http_client_form_add(body, sizeof body, &len, name, value) != 0)
        abort();
    if (strlen(body) != len)
        abort();
    static struct form_field f[2];
    static char arena[FORM_ARENA_SIZE(sizeof body)];
    size_t nf;
    if (form_parse(body, len, f, 2, arena, sizeof arena, &nf) != 0)
        abort();
    if (nf != 1 || strcmp(f[0].name, name) != 0 || strcmp(f[0].value, value) != 0)
        abort();
    /* a buffer one byte short fails cleanly and leaves nothing behind */
    size_t short_len = 0;
    body[0] = 'Z';
    if (http_client_form_add(body, len, &short_len, name, value) != -ENOSPC || short_len != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_url((const char *)data, size);
    fuzz_reader(data, size);
    fuzz_form((const char *)data, size);
    return 0;
}
