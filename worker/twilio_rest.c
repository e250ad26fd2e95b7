/* Twilio REST Calls client: builds the form bodies of protocols.md §3.2/§3.3, sends them with
 * Basic auth through the pooled HTTP client, and turns what comes back into one of a few
 * outcomes with Twilio's own code and message kept for the caller. Twilio's JSON is parsed
 * with jansson (these answers are rare, never on the audio path). POSTs are not idempotent:
 * the HTTP client never repeats one that may have reached Twilio, and neither do we. */
#include "worker/twilio_rest.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/http_client.h"
#include "common/log.h"

#define FORM_BODY_MAX 16384 /* three URLs of < 2 KB, or 4000 bytes of TwiML encoded 3x */

enum op { OP_CREATE, OP_HANGUP, OP_REDIRECT };

/* One request in flight; freed in on_done. */
struct pending {
    struct twilio_rest *tr;
    enum op op;
    twilio_rest_done_fn *done;
    void *arg;
};

int twilio_rest_api_status(enum twilio_rest_outcome o)
{
    switch (o) {
    case TWILIO_REST_OK:
        return 201;
    case TWILIO_REST_REFUSED:
    case TWILIO_REST_GONE:
    case TWILIO_REST_INVALID:
        return 502;
    case TWILIO_REST_UNREACHABLE:
    case TWILIO_REST_CANCELED:
        break;
    }
    return 503;
}

const char *twilio_rest_outcome_name(enum twilio_rest_outcome o)
{
    static const char *const names[] = {"ok", "refused", "gone", "invalid", "unreachable",
                                        "canceled"};
    return (unsigned)o < sizeof names / sizeof names[0] ? names[o] : "?";
}

bool twilio_rest_e164_ok(const char *s)
{
    if (s == NULL || s[0] != '+' || s[1] < '1' || s[1] > '9')
        return false;
    size_t n = 1;
    while (s[n] >= '0' && s[n] <= '9')
        n++;
    return s[n] == '\0' && n >= 3 && n <= 16;
}

static bool sid_ok(const char *s)
{
    size_t n = 0;
    if (s == NULL)
        return false;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return false;
    }
    return n >= 1 && n <= TWILIO_REST_SID_MAX;
}

int twilio_rest_init(struct twilio_rest *tr, struct http_client *http,
                     const struct twilio_rest_settings *s)
{
    memset(tr, 0, sizeof *tr);
    if (http == NULL || s->api_url == NULL || !sid_ok(s->account_sid) || s->auth_token == NULL ||
        s->auth_token[0] == '\0')
        return -EINVAL;
    size_t n = strlen(s->api_url);
    while (n > 0 && s->api_url[n - 1] == '/')
        n--;
    struct http_client_url u;
    if (http_client_url_parse(s->api_url, n, &u) != 0 || strcmp(u.target, "/") != 0 ||
        u.target_len != 1)
        return -EINVAL; /* a path or query would be silently dropped or doubled: refuse it */
    int len = snprintf(tr->calls_url, sizeof tr->calls_url, "%.*s/2010-04-01/Accounts/%s/Calls",
                       (int)n, s->api_url, s->account_sid);
    if (len < 0 || (size_t)len >= sizeof tr->calls_url)
        return -ENOSPC;
    int rc = http_client_basic_auth(s->account_sid, s->auth_token, tr->auth, sizeof tr->auth);
    if (rc != 0) {
        memset(tr, 0, sizeof *tr);
        return rc == -ENOSPC ? -EINVAL : rc;
    }
    tr->http = http;
    tr->timeout_ms = s->timeout_ms ? s->timeout_ms : 10000;
    return 0;
}

void twilio_rest_clear(struct twilio_rest *tr)
{
    /* volatile so the wipe of a secret is not optimised away */
    volatile char *p = tr->auth;
    for (size_t i = 0; i < sizeof tr->auth; i++)
        p[i] = 0;
}

/* ---- answers ----------------------------------------------------------------------------- */

/* Copies member `key` of obj into out: strings as they are, numbers printed, null/absent as "". */
static void copy_member(const json_t *obj, const char *key, char *out, size_t cap)
{
    const json_t *v = json_object_get(obj, key);
    out[0] = '\0';
    if (json_is_string(v))
        snprintf(out, cap, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(out, cap, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(out, cap, "%g", json_real_value(v));
}

static void read_call(const json_t *root, struct twilio_call_resource *c)
{
    copy_member(root, "sid", c->sid, sizeof c->sid);
    copy_member(root, "status", c->status, sizeof c->status);
    copy_member(root, "direction", c->direction, sizeof c->direction);
    copy_member(root, "to", c->to, sizeof c->to);
    copy_member(root, "from", c->from, sizeof c->from);
    copy_member(root, "answered_by", c->answered_by, sizeof c->answered_by);
    copy_member(root, "date_created", c->date_created, sizeof c->date_created);
    copy_member(root, "start_time", c->start_time, sizeof c->start_time);
    copy_member(root, "end_time", c->end_time, sizeof c->end_time);
    copy_member(root, "duration", c->duration, sizeof c->duration);
    copy_member(root, "price", c->price, sizeof c->price);
    copy_member(root, "price_unit", c->price_unit, sizeof c->price_unit);
}

/* Fills r from an HTTP answer. msgbuf/infobuf hold Twilio's strings for the callback. */
static void classify(const struct http_client_response *res, struct twilio_rest_result *r,
                     char *msgbuf, size_t msgcap, char *infobuf, size_t infocap)
{
    r->http_status = res->status;
    json_error_t jerr;
    json_t *root = res->body_len > 0 ? json_loadb(res->body, res->body_len, 0, &jerr) : NULL;
    bool ok = res->status >= 200 && res->status <= 299;
    if (!json_is_object(root)) {
        /* A proxy's HTML page, an empty body, a cut answer: not Twilio speaking. */
        r->outcome = ok ? TWILIO_REST_INVALID : TWILIO_REST_REFUSED;
        snprintf(msgbuf, msgcap, ok ? "Twilio answered HTTP %d without a call resource"
                                    : "Twilio answered HTTP %d without an error body",
                 res->status);
        json_decref(root);
        r->message = msgbuf;
        return;
    }
    if (ok) {
        read_call(root, &r->call);
        if (r->call.sid[0] == '\0' || r->call.status[0] == '\0') {
            r->outcome = TWILIO_REST_INVALID;
            snprintf(msgbuf, msgcap, "Twilio's answer has no call sid or status");
        } else {
            r->outcome = TWILIO_REST_OK;
        }
        r->message = msgbuf;
        json_decref(root);
        return;
    }
    /* Error JSON: legacy {code, message, more_info, status} or RFC 9457 {type, title,
     * detail, code, status} (protocols.md §3.7). */
    const json_t *code = json_object_get(root, "code");
    if (json_is_integer(code))
        r->code = (long)json_integer_value(code);
    else if (json_is_string(code))
        r->code = strtol(json_string_value(code), NULL, 10);
    const char *text = json_string_value(json_object_get(root, "message"));
    if (text == NULL)
        text = json_string_value(json_object_get(root, "detail"));
    if (text == NULL)
        text = json_string_value(json_object_get(root, "title"));
    if (text != NULL)
        snprintf(msgbuf, msgcap, "%s", text);
    else
        snprintf(msgbuf, msgcap, "Twilio answered HTTP %d", res->status);
    const char *info = json_string_value(json_object_get(root, "more_info"));
    if (info == NULL)
        info = json_string_value(json_object_get(root, "type"));
    if (info != NULL)
        snprintf(infobuf, infocap, "%s", info);
    r->message = msgbuf;
    r->more_info = infobuf;
    r->outcome = TWILIO_REST_REFUSED;
    if (res->status == 404 && r->code == 20404)
        r->outcome = TWILIO_REST_GONE;
    json_decref(root);
}

/* Twilio's messages quote the numbers they refuse ("Invalid 'To' Phone Number: +3461..."):
 * logs keep the first three digits of any run of six or more and mask the rest. */
static void mask_numbers(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; in[i] != '\0' && o + 1 < cap;) {
        size_t run = 0;
        while (in[i + run] >= '0' && in[i + run] <= '9')
            run++;
        if (run == 0) {
            out[o++] = in[i++];
            continue;
        }
        for (size_t k = 0; k < run && o + 1 < cap; k++)
            out[o++] = run >= 6 && k >= 3 ? 'X' : in[i + k];
        i += run;
    }
    out[o] = '\0';
}

static void on_done(void *arg, const struct http_client_response *res)
{
    struct pending *p = arg;
    struct twilio_rest *tr = p->tr;
    char msgbuf[HTTP_CLIENT_MESSAGE_MAX], infobuf[256];
    struct twilio_rest_result r;
    memset(&r, 0, sizeof r);
    msgbuf[0] = infobuf[0] = '\0';
    r.message = msgbuf;
    r.more_info = infobuf;
    if (res->error == 0) {
        classify(res, &r, msgbuf, sizeof msgbuf, infobuf, sizeof infobuf);
    } else {
        r.error = res->error;
        snprintf(msgbuf, sizeof msgbuf, "%s", res->message);
        if (res->error == -ECANCELED)
            r.outcome = TWILIO_REST_CANCELED;
        else if (res->error == -EPROTO || res->error == -EMSGSIZE)
            r.outcome = TWILIO_REST_INVALID; /* something answered, but not sanely */
        else
            r.outcome = TWILIO_REST_UNREACHABLE;
    }
    if (r.outcome != TWILIO_REST_OK && r.outcome != TWILIO_REST_GONE) {
        tr->failures++;
        if (r.outcome != TWILIO_REST_CANCELED) {
            char masked[HTTP_CLIENT_MESSAGE_MAX];
            mask_numbers(r.message, masked, sizeof masked);
            log_warn("twilio: %s %s: HTTP %d code %ld: %s",
                     p->op == OP_CREATE ? "create call" : p->op == OP_HANGUP ? "hang up" : "redirect",
                     twilio_rest_outcome_name(r.outcome), r.http_status, r.code, masked);
        }
    }
    twilio_rest_done_fn *done = p->done;
    void *done_arg = p->arg;
    free(p);
    done(done_arg, &r);
}

/* ---- requests ---------------------------------------------------------------------------- */

static int send_form(struct twilio_rest *tr, enum op op, const char *url, const char *body,
                     size_t body_len, twilio_rest_done_fn *done, void *arg)
{
    if (tr->http == NULL)
        return -EINVAL;
    struct pending *p = malloc(sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    *p = (struct pending){.tr = tr, .op = op, .done = done, .arg = arg};
    const struct http_client_header hdrs[] = {
        {"Authorization", tr->auth},
        {"Content-Type", "application/x-www-form-urlencoded"},
        {"Accept", "application/json"},
    };
    const struct http_client_request req = {
        .method = "POST",
        .url = url,
        .headers = hdrs,
        .n_headers = sizeof hdrs / sizeof hdrs[0],
        .body = body,
        .body_len = body_len,
        .timeout_ms = tr->timeout_ms,
        .max_response_bytes = TWILIO_REST_RESPONSE_MAX,
    };
    int rc = http_client_request(tr->http, &req, on_done, p, NULL);
    if (rc != 0) {
        free(p);
        return rc;
    }
    tr->requests++;
    return 0;
}

/* Appends name=value; -E2BIG when the body is full. */
static int add(char *buf, size_t *len, const char *name, const char *value)
{
    return http_client_form_add(buf, FORM_BODY_MAX, len, name, value) == 0 ? 0 : -E2BIG;
}

int twilio_rest_call_create(struct twilio_rest *tr, const struct twilio_call_create *c,
                            twilio_rest_done_fn *done, void *arg)
{
    if (!twilio_rest_e164_ok(c->to) || !twilio_rest_e164_ok(c->from) || c->url == NULL ||
        c->url[0] == '\0' || c->ring_timeout_s > 600)
        return -EINVAL;
    if (c->machine_detection != NULL && strcmp(c->machine_detection, "Enable") != 0 &&
        strcmp(c->machine_detection, "DetectMessageEnd") != 0)
        return -EINVAL;
    char *body = malloc(FORM_BODY_MAX);
    if (body == NULL)
        return -ENOMEM;
    size_t len = 0;
    body[0] = '\0';
    int rc = add(body, &len, "To", c->to);
    if (rc == 0)
        rc = add(body, &len, "From", c->from);
    if (rc == 0)
        rc = add(body, &len, "Url", c->url);
    if (rc == 0)
        rc = add(body, &len, "Method", "POST");
    if (rc == 0 && c->status_callback != NULL) {
        static const char *const events[] = {"initiated", "ringing", "answered", "completed"};
        rc = add(body, &len, "StatusCallback", c->status_callback);
        for (size_t i = 0; rc == 0 && i < sizeof events / sizeof events[0]; i++)
            rc = add(body, &len, "StatusCallbackEvent", events[i]); /* repeated key (§3.1) */
        if (rc == 0)
            rc = add(body, &len, "StatusCallbackMethod", "POST");
    }
    if (rc == 0 && c->record) {
        rc = add(body, &len, "Record", "true");
        if (rc == 0)
            rc = add(body, &len, "RecordingChannels", "dual");
        if (rc == 0 && c->recording_status_callback != NULL) {
            rc = add(body, &len, "RecordingStatusCallback", c->recording_status_callback);
            if (rc == 0)
                rc = add(body, &len, "RecordingStatusCallbackMethod", "POST");
        }
    }
    if (rc == 0 && c->machine_detection != NULL)
        rc = add(body, &len, "MachineDetection", c->machine_detection);
    if (rc == 0 && c->ring_timeout_s > 0) {
        char t[12];
        snprintf(t, sizeof t, "%u", c->ring_timeout_s);
        rc = add(body, &len, "Timeout", t);
    }
    if (rc == 0) {
        char url[sizeof tr->calls_url + 8];
        snprintf(url, sizeof url, "%s.json", tr->calls_url);
        rc = send_form(tr, OP_CREATE, url, body, len, done, arg);
    }
    free(body);
    return rc;
}

static int update(struct twilio_rest *tr, enum op op, const char *call_sid, const char *name,
                  const char *value, twilio_rest_done_fn *done, void *arg)
{
    if (!sid_ok(call_sid))
        return -EINVAL;
    char *body = malloc(FORM_BODY_MAX);
    if (body == NULL)
        return -ENOMEM;
    size_t len = 0;
    body[0] = '\0';
    int rc = add(body, &len, name, value);
    if (rc == 0) {
        char url[sizeof tr->calls_url + TWILIO_REST_SID_MAX + 8];
        snprintf(url, sizeof url, "%s/%s.json", tr->calls_url, call_sid);
        rc = send_form(tr, op, url, body, len, done, arg);
    }
    free(body);
    return rc;
}

int twilio_rest_call_hangup(struct twilio_rest *tr, const char *call_sid,
                            twilio_rest_done_fn *done, void *arg)
{
    return update(tr, OP_HANGUP, call_sid, "Status", "completed", done, arg);
}

int twilio_rest_call_cancel(struct twilio_rest *tr, const char *call_sid,
                            twilio_rest_done_fn *done, void *arg)
{
    return update(tr, OP_HANGUP, call_sid, "Status", "canceled", done, arg);
}

int twilio_rest_call_redirect(struct twilio_rest *tr, const char *call_sid, const char *twiml,
                              twilio_rest_done_fn *done, void *arg)
{
    if (twiml == NULL || twiml[0] == '\0')
        return -EINVAL;
    if (strlen(twiml) > TWILIO_REST_TWIML_MAX)
        return -E2BIG;
    return update(tr, OP_REDIRECT, call_sid, "Twiml", twiml, done, arg);
}

/* ---- TwiML for a transfer ---------------------------------------------------------------- */

/* Appends s XML-escaped. Returns 0, -EILSEQ (not UTF-8, or a character XML 1.0 cannot carry),
 * -ENOSPC. */
static int put_escaped(char *out, size_t cap, size_t *len, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        char tmp[8];
        const char *piece = tmp;
        size_t n = 1;
        unsigned c = *p;
        if (c == '&')
            piece = "&amp;", n = 5;
        else if (c == '<')
            piece = "&lt;", n = 4;
        else if (c == '>')
            piece = "&gt;", n = 4;
        else if (c == '"')
            piece = "&quot;", n = 6;
        else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            return -EILSEQ;
        else if (c < 0x80)
            tmp[0] = (char)c;
        else {
            /* A whole UTF-8 sequence, checked: no overlongs, surrogates, U+FFFE/U+FFFF. */
            unsigned need = c >= 0xF0 && c <= 0xF4 ? 3 : c >= 0xE0 && c <= 0xEF ? 2
                            : c >= 0xC2 && c <= 0xDF ? 1 : 0;
            if (need == 0)
                return -EILSEQ;
            uint32_t cp = c & (0x3Fu >> need);
            for (unsigned i = 1; i <= need; i++) {
                if ((p[i] & 0xC0) != 0x80)
                    return -EILSEQ;
                cp = (cp << 6) | (p[i] & 0x3F);
            }
            if ((need == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE ||
                               cp == 0xFFFF)) ||
                (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
                return -EILSEQ;
            memcpy(tmp, p, need + 1);
            n = need + 1;
        }
        if (*len + n >= cap)
            return -ENOSPC;
        memcpy(out + *len, piece, n);
        *len += n;
        p += piece == tmp ? n : 1;
    }
    out[*len] = '\0';
    return 0;
}

static int put(char *out, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);
    if (*len + n >= cap)
        return -ENOSPC;
    memcpy(out + *len, s, n + 1);
    *len += n;
    return 0;
}

/* A number, a SIP address or a Twilio Client identity: printable ASCII without spaces or
 * XML specials but '&' (escaped), which SIP headers may use. */
static bool dial_target_ok(const char *t)
{
    if (t == NULL || t[0] == '\0' || strlen(t) > 512)
        return false;
    if (t[0] == '+')
        return twilio_rest_e164_ok(t);
    if (!(strncmp(t, "sip:", 4) == 0 && t[4] != '\0') &&
        !(strncmp(t, "client:", 7) == 0 && t[7] != '\0'))
        return false;
    for (const char *p = t; *p != '\0'; p++)
        if (*p <= ' ' || *p >= 0x7f || *p == '<' || *p == '>' || *p == '"' || *p == '\'')
            return false;
    return true;
}

int twilio_rest_dial_twiml(const char *target, const char *say, char *out, size_t cap,
                           size_t *out_len)
{
    if (!dial_target_ok(target))
        return -EINVAL;
    if (cap == 0)
        return -ENOSPC;
    size_t len = 0;
    out[0] = '\0';
    int rc = put(out, cap, &len, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>");
    if (rc == 0 && say != NULL) {
        rc = put(out, cap, &len, "<Say>");
        if (rc == 0)
            rc = put_escaped(out, cap, &len, say);
        if (rc == 0)
            rc = put(out, cap, &len, "</Say>");
    }
    if (rc == 0) {
        const char *open = strncmp(target, "sip:", 4) == 0      ? "<Dial><Sip>"
                           : strncmp(target, "client:", 7) == 0 ? "<Dial><Client>"
                                                                : "<Dial><Number>";
        const char *close = strncmp(target, "sip:", 4) == 0      ? "</Sip></Dial>"
                            : strncmp(target, "client:", 7) == 0 ? "</Client></Dial>"
                                                                 : "</Number></Dial>";
        /* <Client> takes the bare identity */
        const char *value = strncmp(target, "client:", 7) == 0 ? target + 7 : target;
        rc = put(out, cap, &len, open);
        if (rc == 0)
            rc = put_escaped(out, cap, &len, value);
        if (rc == 0)
            rc = put(out, cap, &len, close);
    }
    if (rc == 0)
        rc = put(out, cap, &len, "</Response>");
    if (rc != 0) {
        out[0] = '\0';
        return rc;
    }
    if (out_len != NULL)
        *out_len = len;
    return 0;
}
