/* Response building and serialisation. The body is one growable buffer with a hard limit (a
 * runaway handler gets -ENOBUFS and the client a 500, never an unbounded output queue); the head
 * is formatted into a fixed buffer at send time. The Date string is cached per second and per
 * thread, since every response carries one. */
#include "worker/http_response.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define BODY_KEEP_BYTES 16384 /* a body buffer this small is kept for the next request */

const char *http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

void http_response_init(struct http_response *res, size_t body_limit)
{
    memset(res, 0, sizeof *res);
    res->status = 200;
    res->body_limit = body_limit;
}

void http_response_reset(struct http_response *res)
{
    if (res->body_cap > BODY_KEEP_BYTES) {
        free(res->body);
        res->body = NULL;
        res->body_cap = 0;
    }
    res->status = 200;
    res->err = 0;
    res->head_only = res->close = false;
    res->content_type[0] = '\0';
    res->extra_len = 0;
    res->body_len = 0;
    res->head_len = 0;
}

void http_response_free(struct http_response *res)
{
    free(res->body);
    res->body = NULL;
    res->body_cap = res->body_len = 0;
}

static int set_err(struct http_response *res, int err)
{
    if (res->err == 0)
        res->err = err;
    return err;
}

int http_response_status(struct http_response *res, int status)
{
    if (status < 100 || status > 599)
        return set_err(res, -EINVAL);
    res->status = status;
    return 0;
}

/* No CR/LF (header injection) or other controls; tab is allowed inside values. */
static bool text_ok(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

int http_response_header(struct http_response *res, const char *name, const char *value)
{
    static const char *const managed[] = {"content-length", "content-type", "date",
                                          "server",         "connection",   "transfer-encoding"};
    if (name[0] == '\0' || strpbrk(name, " \t:") != NULL || !text_ok(name) || !text_ok(value))
        return set_err(res, -EINVAL);
    for (size_t i = 0; i < sizeof managed / sizeof managed[0]; i++)
        if (strcasecmp(name, managed[i]) == 0)
            return set_err(res, -EINVAL);
    size_t room = sizeof res->extra - res->extra_len;
    int n = snprintf(res->extra + res->extra_len, room, "%s: %s\r\n", name, value);
    if (n < 0 || (size_t)n >= room) {
        res->extra[res->extra_len] = '\0';
        return set_err(res, -ENOSPC);
    }
    res->extra_len += (size_t)n;
    return 0;
}

int http_response_append(struct http_response *res, const void *data, size_t len)
{
    if (len > res->body_limit - res->body_len)
        return set_err(res, -ENOBUFS);
    if (len > res->body_cap - res->body_len) {
        size_t cap = res->body_cap ? res->body_cap : 1024;
        while (cap - res->body_len < len)
            cap *= 2;
        if (cap > res->body_limit)
            cap = res->body_limit;
        char *b = realloc(res->body, cap);
        if (b == NULL)
            return set_err(res, -ENOMEM);
        res->body = b;
        res->body_cap = cap;
    }
    if (len > 0)
        memcpy(res->body + res->body_len, data, len);
    res->body_len += len;
    return 0;
}

int http_response_body(struct http_response *res, const char *content_type, const void *data,
                       size_t len)
{
    if (content_type == NULL || strlen(content_type) >= sizeof res->content_type ||
        !text_ok(content_type))
        return set_err(res, -EINVAL);
    strcpy(res->content_type, content_type);
    res->body_len = 0;
    return http_response_append(res, data, len);
}

/* Appends s as the inside of a JSON string. */
static int append_json_string(struct http_response *res, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    int err = 0;
    for (; *s && err == 0; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[7];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            err = http_response_append(res, esc, 2);
        } else if (c < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
            err = http_response_append(res, esc, 6);
        } else {
            err = http_response_append(res, s, 1);
        }
    }
    return err;
}

int http_response_json_error(struct http_response *res, int status, const char *code,
                             const char *message)
{
    int err = http_response_status(res, status);
    if (err == 0)
        err =
            http_response_body(res, "application/json", "{\"success\":false,\"error\":{\"code\":\"",
                               strlen("{\"success\":false,\"error\":{\"code\":\""));
    if (err == 0)
        err = append_json_string(res, code);
    if (err == 0)
        err = http_response_append(res, "\",\"message\":\"", 13);
    if (err == 0)
        err = append_json_string(res, message);
    if (err == 0)
        err = http_response_append(res, "\"}}", 3);
    return err;
}

void http_response_finish(struct http_response *res)
{
    res->on_finish(res);
}

/* "Sun, 06 Nov 1994 08:49:37 GMT", formatted once per second per thread. */
static const char *date_now(void)
{
    static _Thread_local char date[40];
    static _Thread_local time_t date_sec = -1;
    time_t now = time(NULL);
    if (now != date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        date_sec = now;
    }
    return date;
}

int http_response_serialize(struct http_response *res, bool keep_alive_10)
{
    const char *conn = res->close      ? "Connection: close\r\n"
                       : keep_alive_10 ? "Connection: keep-alive\r\n"
                                       : "";
    char ctype[sizeof res->content_type + 20] = "";
    if (res->content_type[0] != '\0')
        snprintf(ctype, sizeof ctype, "Content-Type: %s\r\n", res->content_type);
    /* 1xx, 204 and 304 carry no body and no Content-Length. */
    bool bodiless = res->status < 200 || res->status == 204 || res->status == 304;
    char clen[48] = "";
    if (!bodiless)
        snprintf(clen, sizeof clen, "Content-Length: %zu\r\n", res->body_len);
    int n = snprintf(res->head, sizeof res->head,
                     "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: voicebridge\r\n%s%s%s%.*s\r\n",
                     res->status, http_status_text(res->status), date_now(), ctype, clen, conn,
                     (int)res->extra_len, res->extra);
    if (n < 0 || (size_t)n >= sizeof res->head)
        return -ENOSPC;
    res->head_len = (size_t)n;
    if (bodiless)
        res->body_len = 0;
    return 0;
}
