/* The Twilio signature guard: URL reconstruction, body classification, and the call into
 * common/twilio_signature. The form body is parsed here a second time (the handler parses it
 * again): webhook bodies are a few hundred bytes, and the guard must not depend on a handler. */
#include "worker/twilio_guard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/config.h"
#include "common/form.h"
#include "common/log.h"
#include "common/twilio_signature.h"

int twilio_guard_init(struct twilio_guard *g, const struct config *cfg)
{
    memset(g, 0, sizeof *g);
    g->max_fields = TWILIO_SIGNATURE_PARAMS_MAX;
    g->public_url = cfg->public_url;
    if (!cfg->twilio.validate_signatures) {
        log_warn("twilio.validate_signatures is false: webhooks and media streams are NOT "
                 "checked to come from Twilio; anyone who can reach this server can drive calls");
        return 0;
    }
    if (cfg->twilio.auth_token == NULL) {
        log_error("TWILIO_AUTH_TOKEN is not set, and twilio.validate_signatures is on: "
                  "Twilio's requests cannot be checked. Set it (or, for a closed test setup "
                  "only, set twilio.validate_signatures to false)");
        return -EINVAL;
    }
    if (cfg->public_url == NULL) {
        log_error("public_url (or PUBLIC_BASE_URL) is not set, and twilio.validate_signatures is "
                  "on: the URL Twilio signs cannot be rebuilt");
        return -EINVAL;
    }
    g->enabled = true;
    g->token = cfg->twilio.auth_token;
    g->token_len = strlen(g->token);
    return 0;
}

static int refuse(struct http_request *req, const char *why)
{
    req->refusal = why;
    return 403;
}

static bool has_type(const char *ctype, const char *type)
{
    size_t n = strlen(type);
    return ctype != NULL && strncasecmp(ctype, type, n) == 0 &&
           (ctype[n] == '\0' || ctype[n] == ';' || ctype[n] == ' ');
}

/* public_url + path [+ ? query], with the scheme turned into ws(s) for an upgrade. */
static int rebuild_url(const struct twilio_guard *g, const struct http_msg *m, char *out,
                       size_t cap)
{
    const char *base = g->public_url;
    const char *scheme = "", *rest = base;
    if (m->upgrade) {
        if (strncmp(base, "https://", 8) == 0)
            scheme = "wss://", rest = base + 8;
        else if (strncmp(base, "http://", 7) == 0)
            scheme = "ws://", rest = base + 7;
    }
    const char *q = http_msg_query(m);
    int n = snprintf(out, cap, "%s%s%s%s%s", scheme, rest, http_msg_path(m), q ? "?" : "",
                     q ? q : "");
    return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}

int twilio_guard_check(struct http_request *req, void *arg)
{
    const struct twilio_guard *g = arg;
    if (!g->enabled)
        return 0;
    const struct http_msg *m = req->msg;
    const char *sig = http_msg_header(m, "x-twilio-signature");
    if (sig == NULL || sig[0] == '\0')
        return refuse(req, "missing X-Twilio-Signature");
    char url[TWILIO_SIGNATURE_URL_MAX + 1];
    if (rebuild_url(g, m, url, sizeof url) != 0)
        return refuse(req, "request URL too long to check its signature");
    const char *ctype = http_msg_header(m, "content-type");
    int rc;
    if (m->upgrade) {
        rc = twilio_signature_verify(g->token, g->token_len, url, NULL, 0, sig,
                                     TWILIO_SIG_TRAILING_SLASH);
    } else if (has_type(ctype, "application/json")) {
        rc = twilio_signature_verify_json(g->token, g->token_len, url, m->body ? m->body : "",
                                          m->body_len, sig, 0);
        if (rc == -EBADMSG)
            return refuse(req, "bodySHA256 missing or not the hash of the body");
    } else if (m->body_len == 0 || has_type(ctype, "application/x-www-form-urlencoded")) {
        size_t cap = FORM_ARENA_SIZE(m->body_len), n = 0;
        struct form_field *fields = malloc(g->max_fields * sizeof *fields);
        char *arena = malloc(cap);
        if (fields == NULL || arena == NULL) {
            free(fields);
            free(arena);
            return refuse(req, "out of memory checking the signature");
        }
        rc = form_parse(m->body ? m->body : "", m->body_len, fields, g->max_fields, arena, cap,
                        &n);
        if (rc == 0)
            rc = twilio_signature_verify(g->token, g->token_len, url, fields, n, sig, 0);
        else
            rc = -EBADMSG;
        free(fields);
        free(arena);
        if (rc == -EBADMSG)
            return refuse(req, "malformed form body");
    } else {
        return refuse(req, "unsupported body type for a signed request");
    }
    if (rc == -E2BIG)
        return refuse(req, "too many form fields");
    return rc == 0 ? 0 : refuse(req, "X-Twilio-Signature does not match");
}
