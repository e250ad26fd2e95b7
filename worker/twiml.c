/* TwiML writer: a bounded string builder, an XML attribute escaper that also validates UTF-8
 * (Twilio rejects the whole document over one bad byte, and the call then fails with a generic
 * "application error"), and the public-URL-to-wss rewrite. */
#include "worker/twiml.h"

#include "common/text.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

struct out {
    char *buf;
    size_t cap, len;
    int err;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->err != 0)
        return;
    if (n >= o->cap - o->len) { /* keep room for the NUL */
        o->err = -ENOSPC;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (max n bytes) that XML 1.0 can carry, or 0. */
static size_t xml_char_len(const unsigned char *s, size_t n)
{
    if (s[0] < 0x80)
        return (s[0] >= 0x20 || s[0] == '\t' || s[0] == '\n' || s[0] == '\r') ? 1 : 0;
    uint32_t cp;
    size_t len = text_utf8_len(s, n, &cp);
    return cp == 0xfffe || cp == 0xffff ? 0 : len;
}

/* Writes s as the inside of a double-quoted attribute. Tab, CR and LF become character
 * references so that attribute-value normalisation does not turn them into spaces. */
static void put_attr(struct out *o, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t len = xml_char_len(u + i, n - i);
        if (len == 0) {
            if (o->err == 0)
                o->err = -EILSEQ;
            return;
        }
        const char *rep = NULL;
        switch (u[i]) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&apos;";
            break;
        case '\t':
            rep = "&#9;";
            break;
        case '\n':
            rep = "&#10;";
            break;
        case '\r':
            rep = "&#13;";
            break;
        }
        if (rep != NULL)
            puts_(o, rep);
        else
            put(o, s + i, len);
        i += len;
    }
}

static bool url_char_ok(unsigned char c)
{
    /* RFC 3986 unreserved, sub-delims, ':' '@' '/' and '%' (escapes pass through). */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("-._~!$&'()*+,;=:@/%", c) != NULL);
}

static bool host_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == ':' || c == '[' || c == ']';
}

int twiml_stream_url(const char *base, char *out_buf, size_t cap)
{
    struct out o = {out_buf, cap, 0, 0};
    const char *scheme;
    const char *rest;
    if (base == NULL)
        return -EINVAL;
    if (strncasecmp(base, "https://", 8) == 0)
        scheme = "wss://", rest = base + 8;
    else if (strncasecmp(base, "http://", 7) == 0)
        scheme = "ws://", rest = base + 7;
    else
        return -EINVAL;
    size_t host_len = strcspn(rest, "/");
    if (host_len == 0 || rest[0] == ':')
        return -EINVAL;
    for (size_t i = 0; i < host_len; i++)
        if (!host_char_ok((unsigned char)rest[i]))
            return -EINVAL; /* '@' (userinfo), '?', '#', spaces... */
    const char *path = rest + host_len;
    size_t path_len = strlen(path);
    for (size_t i = 0; i < path_len; i++)
        if (!url_char_ok((unsigned char)path[i]))
            return -EINVAL;
    while (path_len > 0 && path[path_len - 1] == '/')
        path_len--;
    if (cap == 0)
        return -ENOSPC;
    out_buf[0] = '\0';
    puts_(&o, scheme);
    put(&o, rest, host_len);
    put(&o, path, path_len);
    puts_(&o, TWIML_MEDIA_STREAM_PATH);
    return o.err;
}

int twiml_connect_stream(const char *base, const char *action_url,
                         const struct twiml_param *params, size_t n, char *out_buf, size_t cap,
                         size_t *out_len)
{
    char url[2048];
    *out_len = 0;
    int err = twiml_stream_url(base, url, sizeof url);
    if (err != 0)
        return err == -ENOSPC ? -EINVAL : err; /* a 2 KiB base URL is not a base URL */
    for (size_t i = 0; i < n; i++) {
        if (params[i].name == NULL || params[i].name[0] == '\0')
            return -EINVAL;
        if (params[i].value != NULL &&
            strlen(params[i].name) + strlen(params[i].value) >= TWIML_PARAM_LIMIT)
            return -E2BIG;
    }
    if (cap == 0)
        return -ENOSPC;
    struct out o = {out_buf, cap, 0, 0};
    out_buf[0] = '\0';
    puts_(&o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Connect");
    if (action_url) {
        puts_(&o, " action=\"");
        put_attr(&o, action_url);
        puts_(&o, "\"");
    }
    puts_(&o, "><Stream url=\"");
    put_attr(&o, url);
    puts_(&o, "\">");
    for (size_t i = 0; i < n; i++) {
        if (params[i].value == NULL)
            continue;
        puts_(&o, "<Parameter name=\"");
        put_attr(&o, params[i].name);
        puts_(&o, "\" value=\"");
        put_attr(&o, params[i].value);
        puts_(&o, "\"/>");
    }
    puts_(&o, "</Stream></Connect></Response>");
    if (o.err != 0) {
        out_buf[0] = '\0';
        return o.err;
    }
    *out_len = o.len;
    return 0;
}

size_t twiml_param_fit(const char *name, const char *value)
{
    size_t name_len = strlen(name), len = strlen(value);
    if (name_len >= TWIML_PARAM_LIMIT - 1)
        return 0;
    size_t room = TWIML_PARAM_LIMIT - 1 - name_len;
    if (len <= room)
        return len;
    /* Back up over continuation bytes so no character is cut in half. */
    size_t cut = room;
    while (cut > 0 && ((unsigned char)value[cut] & 0xc0) == 0x80)
        cut--;
    return cut;
}

int twiml_say_hangup(const char *say, char *out_buf, size_t cap, size_t *out_len)
{
    if (cap == 0)
        return -ENOSPC;
    struct out o = {out_buf, cap, 0, 0};
    puts_(&o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>");
    if (say) {
        puts_(&o, "<Say>");
        put_attr(&o, say); /* escapes & < > " ' : fine for element text too */
        puts_(&o, "</Say>");
    }
    puts_(&o, "<Hangup/></Response>");
    if (o.err != 0) {
        out_buf[0] = '\0';
        return o.err;
    }
    *out_len = o.len;
    return 0;
}

int twiml_dial(const char *number, char *out_buf, size_t cap, size_t *out_len)
{
    size_t n = strlen(number);
    if (n < 2 || n > 16 || number[0] != '+')
        return -EINVAL;
    for (size_t i = 1; i < n; i++)
        if (number[i] < '0' || number[i] > '9')
            return -EINVAL;
    if (cap == 0)
        return -ENOSPC;
    struct out o = {out_buf, cap, 0, 0};
    puts_(&o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Dial>");
    puts_(&o, number); /* '+' and digits: nothing to escape */
    puts_(&o, "</Dial></Response>");
    if (o.err != 0) {
        out_buf[0] = '\0';
        return o.err;
    }
    *out_len = o.len;
    return 0;
}
