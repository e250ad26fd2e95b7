/* The llhttp adapter: llhttp callbacks copy the start line and headers into the message's fixed
 * arena and the body into the caller's buffer, with every limit checked as bytes arrive.
 * Two internal pauses give exact byte positions: on_headers_complete (the head's size, early
 * Content-Length check, optional stop for the caller) and on_message_complete (the message's end,
 * so bytes after it are never parsed as part of it). llhttp runs in its strict defaults. */
#include "common/http_parser.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

_Static_assert(sizeof(llhttp_t) <= sizeof(((struct http_parser *)0)->impl),
               "struct http_parser.impl too small for llhttp_t");
_Static_assert(_Alignof(llhttp_t) <= 8, "struct http_parser.impl misaligned for llhttp_t");
_Static_assert(HTTP_HEAD_BYTES_MAX <= UINT16_MAX, "arena offsets are 16-bit");

enum { PAUSE_NONE, PAUSE_HEADERS, PAUSE_COMPLETE };

static llhttp_t *ll_of(struct http_parser *p)
{
    return (llhttp_t *)(void *)p->impl;
}

static struct http_parser *parser_of(llhttp_t *ll)
{
    return ll->data;
}

/* Records err (first one wins) and returns what llhttp expects from a failing callback. */
static int fail(struct http_parser *p, int err)
{
    if (p->err == 0)
        p->err = err;
    return HPE_USER;
}

static int arena_append(struct http_parser *p, const char *at, size_t len)
{
    struct http_msg *m = &p->msg;
    if (len > sizeof m->arena - m->arena_used)
        return fail(p, -E2BIG);
    memcpy(m->arena + m->arena_used, at, len);
    m->arena_used += (uint16_t)len;
    return 0;
}

static int arena_terminate(struct http_parser *p)
{
    return arena_append(p, "", 1);
}

static int on_message_begin(llhttp_t *ll)
{
    parser_of(ll)->started = true;
    return 0;
}

static int on_url(llhttp_t *ll, const char *at, size_t len)
{
    return arena_append(parser_of(ll), at, len);
}

static int on_url_complete(llhttp_t *ll)
{
    struct http_parser *p = parser_of(ll);
    struct http_msg *m = &p->msg;
    size_t url_len = m->arena_used;
    if (arena_terminate(p) != 0)
        return HPE_USER;
    char *q = memchr(m->arena, '?', url_len);
    m->path_off = 0;
    if (q != NULL) {
        *q = '\0';
        m->query_off = (uint16_t)(q + 1 - m->arena);
    }
    return 0;
}

/* The header being read is kept in p->cur and counted when its name is complete: llhttp calls
 * span callbacks at chunk ends, so checks tied to completions give the same verdict however the
 * bytes were split. */
static int on_header_field(llhttp_t *ll, const char *at, size_t len)
{
    struct http_parser *p = parser_of(ll);
    if (!p->in_field) {
        p->in_field = true;
        p->cur.name_off = p->msg.arena_used;
    }
    return arena_append(p, at, len);
}

/* RFC 9110 token characters. llhttp's loose mode lets a space into a name ("Content-Length :"),
 * which a proxy in front may read differently: that is a smuggling vector, so we refuse it. */
static bool is_token(const char *s, size_t len)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  (c != 0 && strchr(extra, c) != NULL);
        if (!ok)
            return false;
    }
    return true;
}

static int on_header_field_complete(llhttp_t *ll)
{
    struct http_parser *p = parser_of(ll);
    struct http_msg *m = &p->msg;
    if (!p->in_field) /* an empty name never reaches here in llhttp; be safe anyway */
        return fail(p, -EPROTO);
    if (m->n_headers >= p->limits.max_headers)
        return fail(p, -E2BIG);
    p->cur.name_len = (uint16_t)(m->arena_used - p->cur.name_off);
    if (!is_token(m->arena + p->cur.name_off, p->cur.name_len))
        return fail(p, -EPROTO);
    if (arena_terminate(p) != 0)
        return HPE_USER;
    p->in_field = false;
    p->in_value = true;
    p->cur.value_off = m->arena_used;
    return 0;
}

static int on_header_value(llhttp_t *ll, const char *at, size_t len)
{
    struct http_parser *p = parser_of(ll);
    if (!p->in_value)
        return fail(p, -EPROTO);
    return arena_append(p, at, len);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int on_header_value_complete(llhttp_t *ll)
{
    struct http_parser *p = parser_of(ll);
    struct http_msg *m = &p->msg;
    if (!p->in_value)
        return fail(p, -EPROTO);
    struct http_header *h = &p->cur;
    size_t start = h->value_off, end = m->arena_used;
    while (end > start && is_blank(m->arena[end - 1]))
        end--;
    size_t lead = start;
    while (lead < end && is_blank(m->arena[lead]))
        lead++;
    h->value_off = (uint16_t)lead;
    h->value_len = (uint16_t)(end - lead);
    m->arena_used = (uint16_t)end;
    if (arena_terminate(p) != 0)
        return HPE_USER;
    p->in_value = false;
    m->headers[m->n_headers++] = *h;
    /* llhttp dechunks "chunked" but passes any other coding through as body bytes we would
     * misread (gzip, or "gzip, chunked"): refuse instead. */
    if (strcasecmp(m->arena + h->name_off, "transfer-encoding") == 0 &&
        strcasecmp(m->arena + h->value_off, "chunked") != 0)
        return fail(p, -ENOTSUP);
    return 0;
}

static enum http_method method_from_llhttp(uint8_t method)
{
    switch (method) {
    case HTTP_GET:
        return HTTP_METHOD_GET;
    case HTTP_HEAD:
        return HTTP_METHOD_HEAD;
    case HTTP_POST:
        return HTTP_METHOD_POST;
    case HTTP_PUT:
        return HTTP_METHOD_PUT;
    case HTTP_DELETE:
        return HTTP_METHOD_DELETE;
    case HTTP_PATCH:
        return HTTP_METHOD_PATCH;
    case HTTP_OPTIONS:
        return HTTP_METHOD_OPTIONS;
    case HTTP_CONNECT:
        return HTTP_METHOD_CONNECT;
    case HTTP_TRACE:
        return HTTP_METHOD_TRACE;
    default:
        return HTTP_METHOD_OTHER;
    }
}

static int on_headers_complete(llhttp_t *ll)
{
    struct http_parser *p = parser_of(ll);
    struct http_msg *m = &p->msg;
    if (ll->http_major != 1)
        return fail(p, -ENOTSUP);
    m->version_major = ll->http_major;
    m->version_minor = ll->http_minor;
    if (m->kind == HTTP_MSG_REQUEST) {
        m->method = method_from_llhttp(ll->method);
    } else {
        m->status = ll->status_code;
        /* RFC 9112 6.3: these responses end at their blank line whatever they announce (a 304
         * carries the Content-Length of the representation it stands for). llhttp only knows
         * when told, through the flag its own on_headers_complete return value would set; it
         * reads it when we resume. Set before keep_alive, which depends on it. */
        if (p->head_response || m->status / 100 == 1 || m->status == 204 || m->status == 304) {
            ll->flags |= F_SKIPBODY;
            p->no_body = true;
        }
    }
    m->keep_alive = llhttp_should_keep_alive(ll) != 0;
    m->upgrade = ll->upgrade != 0;
    m->chunked = (ll->flags & F_CHUNKED) != 0;
    m->has_content_length = (ll->flags & F_CONTENT_LENGTH) != 0;
    m->content_length = m->has_content_length ? ll->content_length : 0;
    p->head_done = true;
    p->pause = PAUSE_HEADERS;
    return HPE_PAUSED;
}

static size_t body_limit(const struct http_parser *p)
{
    return p->limits.max_body < p->body_cap ? p->limits.max_body : p->body_cap;
}

static int on_body(llhttp_t *ll, const char *at, size_t len)
{
    struct http_parser *p = parser_of(ll);
    struct http_msg *m = &p->msg;
    if (len == 0)
        return 0;
    if (len > body_limit(p) - m->body_len)
        return fail(p, -EMSGSIZE);
    memcpy(p->body_buf + m->body_len, at, len);
    m->body_len += len;
    m->body = p->body_buf;
    return 0;
}

static int on_message_complete(llhttp_t *ll)
{
    struct http_parser *p = parser_of(ll);
    p->done = true;
    p->pause = PAUSE_COMPLETE;
    return HPE_PAUSED;
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void msg_clear(struct http_parser *p)
{
    struct http_msg *m = &p->msg;
    enum http_msg_kind kind = m->kind;
    /* Only the small fields: the arena and header table are overwritten as they fill. */
    memset(m, 0, offsetof(struct http_msg, headers));
    m->kind = kind;
    m->arena[0] = '\0';
    if (kind == HTTP_MSG_RESPONSE)
        m->arena_used = 1; /* responses have no target: path "" at offset 0 */
    p->head_bytes = 0;
    p->pause = PAUSE_NONE;
    p->started = p->head_done = p->done = p->no_body = false;
    p->in_field = p->in_value = false;
}

void http_parser_reset(struct http_parser *p)
{
    llhttp_reset(ll_of(p));
    p->err = 0;
    msg_clear(p);
}

void http_parser_init(struct http_parser *p, enum http_msg_kind kind,
                      const struct http_limits *limits, bool stop_after_headers)
{
    static const struct http_limits defaults = HTTP_LIMITS_DEFAULT;
    memset(p, 0, offsetof(struct http_parser, msg));
    p->limits = limits ? *limits : defaults;
    if (p->limits.max_head_bytes == 0)
        p->limits.max_head_bytes = defaults.max_head_bytes;
    if (p->limits.max_head_bytes > HTTP_HEAD_BYTES_MAX)
        p->limits.max_head_bytes = HTTP_HEAD_BYTES_MAX;
    if (p->limits.max_headers == 0)
        p->limits.max_headers = defaults.max_headers;
    if (p->limits.max_headers > HTTP_HEADERS_MAX)
        p->limits.max_headers = HTTP_HEADERS_MAX;
    p->stop_after_headers = stop_after_headers;
    llhttp_init(ll_of(p), kind == HTTP_MSG_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE,
                &parser_settings);
    ll_of(p)->data = p;
    p->msg.kind = kind;
    msg_clear(p);
}

void http_parser_set_body_buffer(struct http_parser *p, char *buf, size_t cap)
{
    p->body_buf = buf;
    p->body_cap = buf ? cap : 0;
    p->msg.body = NULL;
    p->msg.body_len = 0;
}

void http_parser_set_head_response(struct http_parser *p, bool head)
{
    p->head_response = head;
}

bool http_parser_started(const struct http_parser *p)
{
    return p->started || p->head_bytes > 0;
}

static int map_llhttp_error(struct http_parser *p, llhttp_errno_t e)
{
    if (p->err != 0)
        return p->err; /* ours, raised from a callback */
    switch (e) {
    case HPE_PAUSED_H2_UPGRADE:
    case HPE_INVALID_VERSION:
        return -ENOTSUP;
    case HPE_INVALID_TRANSFER_ENCODING:
        return -ENOTSUP;
    default:
        return -EPROTO;
    }
}

/* After the headers: what the message says about its body, checked before any body byte. */
static int check_head(struct http_parser *p)
{
    const struct http_msg *m = &p->msg;
    /* A caller stopping here lends its buffer after this check, sized from it. */
    size_t limit = p->stop_after_headers ? p->limits.max_body : body_limit(p);
    if (p->no_body)
        return 0;
    if (m->has_content_length && m->content_length > limit)
        return -EMSGSIZE;
    return 0;
}

int http_parser_execute(struct http_parser *p, const char *data, size_t len, size_t *consumed)
{
    llhttp_t *ll = ll_of(p);
    size_t off = 0;
    *consumed = 0;
    if (p->err != 0)
        return p->err;
    if (p->done)
        http_parser_reset(p);
    if (data == NULL) /* llhttp reads a NULL position as "no span in progress" */
        data = "", len = 0;
    for (;;) {
        size_t n = len - off;
        bool capped = false;
        if (!p->head_done) {
            size_t room = p->limits.max_head_bytes - p->head_bytes;
            if (n > room) {
                n = room;
                capped = true;
            }
        }
        bool in_head = !p->head_done;
        llhttp_errno_t e = llhttp_execute(ll, data + off, n);
        size_t used = n;
        if (e != HPE_OK) {
            const char *pos = llhttp_get_error_pos(ll);
            used = pos >= data + off && pos <= data + off + n ? (size_t)(pos - (data + off)) : 0;
        }
        if (in_head) /* the head ends exactly at the headers pause, so this is exact */
            p->head_bytes += used;
        off += used;
        *consumed = off;
        if (e == HPE_OK) {
            if (capped) {
                p->err = -E2BIG;
                return p->err;
            }
            return HTTP_PARSE_MORE;
        }
        if (e == HPE_PAUSED && p->pause == PAUSE_HEADERS) {
            p->pause = PAUSE_NONE;
            llhttp_resume(ll);
            int err = check_head(p);
            if (err != 0) {
                p->err = err;
                return err;
            }
            if (p->stop_after_headers)
                return HTTP_PARSE_HEADERS;
            continue;
        }
        if ((e == HPE_PAUSED && p->pause == PAUSE_COMPLETE) || e == HPE_PAUSED_UPGRADE) {
            p->pause = PAUSE_NONE;
            p->done = true;
            return HTTP_PARSE_DONE;
        }
        p->err = map_llhttp_error(p, e);
        return p->err;
    }
}

int http_parser_finish(struct http_parser *p)
{
    if (p->err != 0)
        return p->err;
    if (p->done || !http_parser_started(p))
        return -ENODATA;
    llhttp_errno_t e = llhttp_finish(ll_of(p));
    if (e == HPE_PAUSED && p->pause == PAUSE_COMPLETE) {
        p->pause = PAUSE_NONE;
        return HTTP_PARSE_DONE;
    }
    if (e == HPE_OK && p->done)
        return HTTP_PARSE_DONE;
    p->err = p->err ? p->err : -EPROTO;
    return p->err;
}

const char *http_method_name(enum http_method m)
{
    static const char *const names[] = {
        [HTTP_METHOD_OTHER] = "OTHER",     [HTTP_METHOD_GET] = "GET",
        [HTTP_METHOD_HEAD] = "HEAD",       [HTTP_METHOD_POST] = "POST",
        [HTTP_METHOD_PUT] = "PUT",         [HTTP_METHOD_DELETE] = "DELETE",
        [HTTP_METHOD_PATCH] = "PATCH",     [HTTP_METHOD_OPTIONS] = "OPTIONS",
        [HTTP_METHOD_CONNECT] = "CONNECT", [HTTP_METHOD_TRACE] = "TRACE",
    };
    if ((unsigned)m >= sizeof names / sizeof names[0])
        return "OTHER";
    return names[m];
}

const char *http_msg_header(const struct http_msg *m, const char *name)
{
    for (size_t i = 0; i < m->n_headers; i++)
        if (strcasecmp(m->arena + m->headers[i].name_off, name) == 0)
            return m->arena + m->headers[i].value_off;
    return NULL;
}

void http_msg_header_at(const struct http_msg *m, size_t i, const char **name, const char **value)
{
    *name = m->arena + m->headers[i].name_off;
    *value = m->arena + m->headers[i].value_off;
}

static bool list_has_token(const char *list, const char *token)
{
    size_t tlen = strlen(token);
    const char *s = list;
    while (*s != '\0') {
        while (*s == ',' || is_blank(*s))
            s++;
        const char *start = s;
        while (*s != '\0' && *s != ',')
            s++;
        const char *end = s;
        while (end > start && is_blank(end[-1]))
            end--;
        if ((size_t)(end - start) == tlen && strncasecmp(start, token, tlen) == 0)
            return true;
    }
    return false;
}

bool http_msg_header_has_token(const struct http_msg *m, const char *name, const char *token)
{
    for (size_t i = 0; i < m->n_headers; i++)
        if (strcasecmp(m->arena + m->headers[i].name_off, name) == 0 &&
            list_has_token(m->arena + m->headers[i].value_off, token))
            return true;
    return false;
}
