/* HS256 JWT verification. Order matters: split and size-check, decode and check the header (alg
 * must be HS256 before any key is used), verify the MAC over the raw "header.payload" bytes in
 * constant time, and only then parse the claims (the payload is base64url-decoded before the
 * MAC check, but not parsed). Claims are read from a strict JSON scan (common/json_scan) into
 * fixed buffers; a claim given twice is refused, so two parsers never disagree on which counts. */
#include "common/jwt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hmac.h"
#include "common/json_scan.h"

#define JWT_PART_MAX (JWT_MAX_BYTES / 4 * 3 + 3) /* a decoded part is never longer */
#define JWT_TOKENS 256

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int base64url_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
    *out_len = 0;
    if (n % 4 == 1)
        return -EINVAL;
    size_t need = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    if (need > cap)
        return -ENOSPC;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            return -EINVAL;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* the unused low bits of the last character must be zero */
        return -EINVAL;
    *out_len = o;
    return 0;
}

size_t base64url_encode(const uint8_t *in, size_t n, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = acc << 8 | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = alphabet[(acc >> bits) & 63];
        }
        acc &= (1u << bits) - 1;
    }
    if (bits > 0)
        out[o++] = alphabet[(acc << (6 - bits)) & 63];
    out[o] = '\0';
    return o;
}

/* The member `key` of object 0, or -1; -2 when it appears more than once. */
static int member(const char *s, const struct json_tok *t, const char *key)
{
    int found = -1, k = 1;
    for (uint32_t m = 0; m < t[0].count; m++) {
        int v = k + 1;
        if (json_str_eq(s, t, k, key)) {
            if (found >= 0)
                return -2;
            found = v;
        }
        k = v + (int)t[v].skip;
    }
    return found;
}

/* A NumericDate: a JSON number (fractions allowed by RFC 7519, floored), within +-2^53. */
static int numeric_date(const char *s, const struct json_tok *t, int i, int64_t *out)
{
    if (t[i].type != JTOK_NUMBER)
        return -EINVAL;
    char buf[40];
    size_t n = t[i].end - t[i].start;
    if (n >= sizeof buf)
        return -EINVAL;
    memcpy(buf, s + t[i].start, n);
    buf[n] = '\0';
    char *end;
    double d = strtod(buf, &end);
    if (*end != '\0' || !isfinite(d) || fabs(d) > 9007199254740992.0)
        return -EINVAL;
    *out = (int64_t)floor(d);
    return 0;
}

static int fail(const char **why, const char *reason, int err)
{
    *why = reason;
    return err;
}

static int check_header(const char *h, size_t n, const char **why)
{
    struct json_tok t[32];
    if (json_scan(h, n, t, 32) < 1 || t[0].type != JTOK_OBJECT)
        return fail(why, "token header is not a JSON object", -EINVAL);
    int alg = member(h, t, "alg");
    if (alg == -2)
        return fail(why, "token header names alg twice", -EINVAL);
    if (alg < 0 || !json_str_eq(h, t, alg, "HS256"))
        return fail(why, "token algorithm is not HS256", -ENOTSUP);
    int crit = member(h, t, "crit");
    if (crit != -1)
        return fail(why, "token header has crit extensions", -EINVAL);
    int typ = member(h, t, "typ");
    if (typ == -2 || (typ >= 0 && t[typ].type != JTOK_STRING))
        return fail(why, "token header typ is malformed", -EINVAL);
    return 0;
}

static int read_date(const char *p, const struct json_tok *t, const char *name, int64_t *v,
                     bool *has, const char **why)
{
    int i = member(p, t, name);
    *has = false;
    if (i == -1)
        return 0;
    if (i == -2 || numeric_date(p, t, i, v) != 0)
        return fail(why, "a token time claim is duplicated or not a number", -EINVAL);
    *has = true;
    return 0;
}

static int read_claims(const char *p, size_t n, struct jwt_claims *c, const char **why)
{
    struct json_tok t[JWT_TOKENS];
    int r = json_scan(p, n, t, JWT_TOKENS);
    if (r < 1 || t[0].type != JTOK_OBJECT)
        return fail(why, r == -E2BIG ? "token has too many claims" : "token payload is not a JSON object",
                    -EINVAL);
    if (read_date(p, t, "exp", &c->exp, &c->has_exp, why) != 0 ||
        read_date(p, t, "nbf", &c->nbf, &c->has_nbf, why) != 0 ||
        read_date(p, t, "iat", &c->iat, &c->has_iat, why) != 0)
        return -EINVAL;
    int sub = member(p, t, "sub"), uid = member(p, t, "userId");
    if (sub == -2 || uid == -2)
        return fail(why, "sub or userId is duplicated", -EINVAL);
    size_t len;
    if (sub >= 0) {
        if (t[sub].type != JTOK_STRING ||
            json_str(p, t, sub, c->subject, sizeof c->subject, &len) != 0 ||
            strlen(c->subject) != len)
            return fail(why, "sub is not a short string", -EINVAL);
    } else if (uid >= 0) {
        int64_t id;
        if (t[uid].type == JTOK_NUMBER && json_int(p, t, uid, &id) == 0)
            snprintf(c->subject, sizeof c->subject, "%lld", (long long)id);
        else if (t[uid].type != JTOK_STRING ||
                 json_str(p, t, uid, c->subject, sizeof c->subject, &len) != 0 ||
                 strlen(c->subject) != len)
            return fail(why, "userId is not a short string or an integer", -EINVAL);
    }
    return 0;
}

int jwt_verify(const char *token, size_t len, const struct jwt_options *opt,
               struct jwt_claims *out, const char **why)
{
    static const char *unused;
    if (why == NULL)
        why = &unused;
    *why = "";
    memset(out, 0, sizeof *out);
    if (len > JWT_MAX_BYTES)
        return fail(why, "token too long", -E2BIG);
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
        return fail(why, "token is not three dot-separated parts", -EINVAL);
    size_t hlen = (size_t)(dot1 - token), plen = (size_t)(dot2 - dot1 - 1);
    size_t slen = len - (size_t)(dot2 + 1 - token);
    if (hlen == 0 || plen == 0 || slen == 0)
        return fail(why, "token has an empty part", -EINVAL);

    char part[JWT_PART_MAX];
    size_t n;
    if (base64url_decode(token, hlen, (uint8_t *)part, sizeof part, &n) != 0)
        return fail(why, "token header is not base64url", -EINVAL);
    int rc = check_header(part, n, why);
    if (rc != 0)
        return rc;

    char payload[JWT_PART_MAX];
    size_t pn;
    if (base64url_decode(dot1 + 1, plen, (uint8_t *)payload, sizeof payload, &pn) != 0)
        return fail(why, "token payload is not base64url", -EINVAL);

    uint8_t sig[HMAC_SHA256_LEN + 3], mac[HMAC_SHA256_LEN];
    if (base64url_decode(dot2 + 1, slen, sig, sizeof sig, &n) != 0 || n != HMAC_SHA256_LEN)
        return fail(why, "token signature is not 32 bytes of base64url", -EINVAL);
    if (hmac_sha256(opt->key, opt->key_len, token, (size_t)(dot2 - token), mac) != 0)
        return fail(why, "HMAC failed", -EIO);
    if (!hmac_equal(sig, mac, HMAC_SHA256_LEN))
        return fail(why, "token signature does not match", -EBADMSG);

    rc = read_claims(payload, pn, out, why);
    if (rc != 0) {
        memset(out, 0, sizeof *out);
        return rc;
    }
    int64_t leeway = opt->leeway_s;
    if (out->has_exp ? opt->now_s >= out->exp + leeway : opt->require_exp)
        rc = fail(why, out->has_exp ? "token has expired" : "token has no exp", -EKEYEXPIRED);
    else if (out->has_nbf && opt->now_s + leeway < out->nbf)
        rc = fail(why, "token is not valid yet", -ETIME);
    if (rc != 0)
        memset(out, 0, sizeof *out);
    return rc;
}
