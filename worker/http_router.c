/* Route table: patterns are split into segments once at startup; a request path is split the
 * same way and compared segment by segment against every route (a few dozen at most, so a
 * linear scan beats any index). When several routes fit, the one with the most literal
 * segments wins, so /api/voice-calls/media-stream beats /api/voice-calls/{id}. */
#include "worker/http_router.h"

#include "common/text.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

void http_router_init(struct http_router *r)
{
    memset(r, 0, sizeof *r);
}

static enum http_method route_method(const struct http_route *route)
{
    return route->upgrade ? HTTP_METHOD_GET : route->method;
}

int http_router_add(struct http_router *r, const struct http_route *route)
{
    const char *pat = route->pattern;
    if (pat == NULL || pat[0] != '/' || strlen(pat) > UINT16_MAX)
        return -EINVAL;
    if (route->handler == NULL && route->upgrade == NULL)
        return -EINVAL;
    if (route_method(route) == HTTP_METHOD_OTHER || route_method(route) == HTTP_METHOD_HEAD)
        return -EINVAL;
    if (r->n == HTTP_ROUTES_MAX)
        return -ENOSPC;
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->entries[i].route.pattern, pat) == 0 &&
            route_method(&r->entries[i].route) == route_method(route))
            return -EEXIST;
    struct http_router_entry e;
    memset(&e, 0, sizeof e);
    e.route = *route;
    const char *s = pat + 1;
    for (;;) {
        size_t len = strcspn(s, "/");
        if (e.n_segs == HTTP_ROUTE_SEGMENTS_MAX)
            return -EINVAL;
        struct http_router_seg *seg = &e.segs[e.n_segs++];
        seg->param = -1;
        if (memchr(s, '{', len) || memchr(s, '}', len)) {
            /* Only whole-segment parameters: "{name}". */
            if (len < 3 || s[0] != '{' || s[len - 1] != '}' || memchr(s + 1, '{', len - 2) ||
                memchr(s + 1, '}', len - 2) || len - 2 >= HTTP_PARAM_NAME_MAX ||
                e.n_params == HTTP_ROUTE_PARAMS_MAX)
                return -EINVAL;
            memcpy(e.names[e.n_params], s + 1, len - 2);
            seg->param = (int8_t)e.n_params++;
        }
        seg->off = (uint16_t)(s - pat);
        seg->len = (uint16_t)len;
        if (s[len] == '\0')
            break;
        s += len + 1;
    }
    r->entries[r->n++] = e;
    return 0;
}

struct path_seg {
    const char *s;
    size_t len;
};

/* Splits "/a/b" into {"a","b"}; returns the count, or HTTP_ROUTE_SEGMENTS_MAX + 1 for longer. */
static size_t split_path(const char *path, struct path_seg *segs)
{
    size_t n = 0;
    const char *s = path + 1;
    for (;;) {
        size_t len = strcspn(s, "/");
        if (n == HTTP_ROUTE_SEGMENTS_MAX)
            return n + 1;
        segs[n++] = (struct path_seg){s, len};
        if (s[len] == '\0')
            return n;
        s += len + 1;
    }
}

/* Percent-decodes one segment into out (room bytes incl. NUL). Returns length or -EINVAL. */
static long decode_segment(const char *s, size_t len, char *out, size_t room)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = len - i >= 3 ? text_hex_value(s[i + 1]) : -1;
            int lo = len - i >= 3 ? text_hex_value(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi | lo) == 0)
                return -EINVAL;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (o + 1 >= room)
            return -EINVAL;
        out[o++] = c;
    }
    out[o] = '\0';
    return (long)o;
}

static bool entry_matches_path(const struct http_router_entry *e, const struct path_seg *segs,
                               size_t n)
{
    if (e->n_segs != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        const struct http_router_seg *seg = &e->segs[i];
        if (seg->param >= 0) {
            if (segs[i].len == 0)
                return false;
        } else if (seg->len != segs[i].len ||
                   memcmp(e->route.pattern + seg->off, segs[i].s, segs[i].len) != 0) {
            return false;
        }
    }
    return true;
}

static int literal_count(const struct http_router_entry *e)
{
    return e->n_segs - e->n_params;
}

static void build_allow(unsigned methods, char *allow, size_t cap)
{
    static const enum http_method order[] = {
        HTTP_METHOD_GET,    HTTP_METHOD_HEAD,  HTTP_METHOD_POST,   HTTP_METHOD_PUT,
        HTTP_METHOD_DELETE, HTTP_METHOD_PATCH, HTTP_METHOD_OPTIONS};
    size_t len = 0;
    if (cap == 0)
        return;
    allow[0] = '\0';
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        if (!(methods & (1u << order[i])))
            continue;
        int n =
            snprintf(allow + len, cap - len, "%s%s", len ? ", " : "", http_method_name(order[i]));
        if (n < 0 || (size_t)n >= cap - len) {
            allow[len] = '\0'; /* whole methods only */
            return;
        }
        len += (size_t)n;
    }
}

int http_router_match(const struct http_router *r, struct http_request *req,
                      const struct http_route **route, char *allow, size_t allow_cap)
{
    const char *path = http_msg_path(req->msg);
    struct path_seg segs[HTTP_ROUTE_SEGMENTS_MAX + 1];
    *route = NULL;
    req->n_params = 0;
    if (allow_cap > 0)
        allow[0] = '\0';
    if (path[0] != '/')
        return 404; /* "*" or absolute-form: nothing of ours */
    size_t n = split_path(path, segs);
    if (n > HTTP_ROUTE_SEGMENTS_MAX)
        return 404;
    enum http_method want =
        req->msg->method == HTTP_METHOD_HEAD ? HTTP_METHOD_GET : req->msg->method;
    const struct http_router_entry *best = NULL;
    unsigned methods = 0;
    for (size_t i = 0; i < r->n; i++) {
        const struct http_router_entry *e = &r->entries[i];
        if (!entry_matches_path(e, segs, n))
            continue;
        enum http_method m = route_method(&e->route);
        methods |= 1u << m;
        if (m == HTTP_METHOD_GET)
            methods |= 1u << HTTP_METHOD_HEAD;
        if (m == want && (best == NULL || literal_count(e) > literal_count(best)))
            best = e;
    }
    if (best == NULL) {
        if (methods == 0)
            return 404;
        build_allow(methods, allow, allow_cap);
        return 405;
    }
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        const struct http_router_seg *seg = &best->segs[i];
        if (seg->param < 0)
            continue;
        long len = decode_segment(segs[i].s, segs[i].len, req->param_buf + used,
                                  sizeof req->param_buf - used);
        if (len < 0) {
            req->n_params = 0;
            return 400;
        }
        req->param_names[req->n_params] = best->names[seg->param];
        req->param_values[req->n_params] = req->param_buf + used;
        req->n_params++;
        used += (size_t)len + 1;
    }
    *route = &best->route;
    return 0;
}

const char *http_request_param(const struct http_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_params; i++)
        if (strcmp(req->param_names[i], name) == 0)
            return req->param_values[i];
    return NULL;
}
