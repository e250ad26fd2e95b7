/* Zero-allocation strict JSON scanner: recursive descent over the bytes (depth bounded), tokens
 * written in document order into the caller's array. Strings are validated (escapes, UTF-8) but
 * left in place; json_str unescapes on demand into a caller buffer. Nearly every byte of a
 * per-frame message is base64 inside one string, so runs of plain string bytes are skipped 16
 * at a time (SSE2, part of x86-64) and only the bytes that end a run are looked at one by one. */
#include "common/json_scan.h"

#include "common/text.h"

#include <errno.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

struct scan {
    const char *s;
    size_t n;
    size_t pos;
    struct json_tok *toks;
    size_t max;
    size_t ntok;
};

static void skip_ws(struct scan *sc)
{
    while (sc->pos < sc->n) {
        unsigned char c = (unsigned char)sc->s[sc->pos];
        if (c > ' ' || (c != ' ' && c != '\t' && c != '\n' && c != '\r'))
            break; /* the first test alone settles almost every call */
        sc->pos++;
    }
}

static int new_tok(struct scan *sc, enum jtok_type type, size_t start)
{
    if (sc->ntok == sc->max)
        return -E2BIG;
    struct json_tok *t = &sc->toks[sc->ntok];
    t->type = (uint8_t)type;
    t->escaped = 0;
    t->start = (uint32_t)start;
    t->end = (uint32_t)start;
    t->count = 0;
    t->skip = 1;
    return (int)sc->ntok++;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int d = text_hex_value(p[i]);
        if (d < 0)
            return -EINVAL;
        v = v << 4 | (unsigned)d;
    }
    *out = v;
    return 0;
}

/* A byte that needs a closer look inside a string: the closing quote, an escape, a control
 * character (invalid) or the start of a multi-byte UTF-8 sequence. */
static inline int string_special(unsigned char c)
{
    return c == '"' || c == '\\' || c < 0x20 || c >= 0x80;
}

#if defined(__SSE2__)
/* 0xFF in each lane of the 16 bytes at p that is special. Signed bytes: one "less than 0x20"
 * catches the controls and every byte >= 0x80. */
static inline __m128i special16(const char *p)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i m =
        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
    return _mm_or_si128(m, _mm_cmpgt_epi8(_mm_set1_epi8(0x20), v));
}
#endif

/* The position of the first special byte at or after pos, or n. */
static inline size_t plain_run_end(const char *s, size_t pos, size_t n)
{
#if defined(__SSE2__)
    /* Most strings are short names and values, ended within 16 bytes; a long one (audio) is
     * tested 64 bytes at a time, and the block holding its end searched by 16. */
    if (n - pos >= 16) {
        unsigned bits = (unsigned)_mm_movemask_epi8(special16(s + pos));
        if (bits != 0)
            return pos + (unsigned)__builtin_ctz(bits);
        pos += 16;
    }
    for (; n - pos >= 64; pos += 64) {
        __m128i m = _mm_or_si128(_mm_or_si128(special16(s + pos), special16(s + pos + 16)),
                                 _mm_or_si128(special16(s + pos + 32), special16(s + pos + 48)));
        if (_mm_movemask_epi8(m) != 0)
            break;
    }
    for (; n - pos >= 16; pos += 16) {
        unsigned bits = (unsigned)_mm_movemask_epi8(special16(s + pos));
        if (bits != 0)
            return pos + (unsigned)__builtin_ctz(bits);
    }
#endif
    while (pos < n && !string_special((unsigned char)s[pos]))
        pos++;
    return pos;
}

/* Validates the string whose opening quote is at sc->pos; leaves pos after the closing quote. */
static int scan_string(struct scan *sc, int *tok_out)
{
    size_t start = ++sc->pos;
    int escaped = 0;
    while ((sc->pos = plain_run_end(sc->s, sc->pos, sc->n)) < sc->n) {
        unsigned char c = (unsigned char)sc->s[sc->pos];
        if (c == '"') {
            int t = new_tok(sc, JTOK_STRING, start);
            if (t < 0)
                return t;
            sc->toks[t].end = (uint32_t)sc->pos;
            sc->toks[t].escaped = (uint8_t)escaped;
            sc->pos++;
            *tok_out = t;
            return 0;
        }
        if (c < 0x20)
            return -EINVAL;
        if (c == '\\') {
            escaped = 1;
            if (sc->pos + 1 >= sc->n)
                return -EINVAL;
            char e = sc->s[sc->pos + 1];
            if (e == 'u') {
                unsigned u;
                if (sc->pos + 6 > sc->n || hex4(sc->s + sc->pos + 2, &u) != 0)
                    return -EINVAL;
                sc->pos += 6;
                if (u >= 0xDC00 && u <= 0xDFFF)
                    return -EINVAL; /* a low surrogate alone */
                if (u >= 0xD800 && u <= 0xDBFF) {
                    unsigned lo;
                    if (sc->pos + 6 > sc->n || sc->s[sc->pos] != '\\' ||
                        sc->s[sc->pos + 1] != 'u' || hex4(sc->s + sc->pos + 2, &lo) != 0 ||
                        lo < 0xDC00 || lo > 0xDFFF)
                        return -EINVAL;
                    sc->pos += 6;
                }
                continue;
            }
            if (strchr("\"\\/bfnrt", e) == NULL || e == '\0')
                return -EINVAL;
            sc->pos += 2;
            continue;
        }
        if (c >= 0x80) {
            size_t l = text_utf8_len((const unsigned char *)sc->s + sc->pos, sc->n - sc->pos, NULL);
            if (l == 0)
                return -EINVAL;
            sc->pos += l;
            continue;
        }
    }
    return -EINVAL;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int scan_number(struct scan *sc, int *tok_out)
{
    size_t p = sc->pos, start = p;
    if (p < sc->n && sc->s[p] == '-')
        p++;
    if (p >= sc->n || !is_digit(sc->s[p]))
        return -EINVAL;
    if (sc->s[p] == '0')
        p++;
    else
        while (p < sc->n && is_digit(sc->s[p]))
            p++;
    if (p < sc->n && sc->s[p] == '.') {
        p++;
        if (p >= sc->n || !is_digit(sc->s[p]))
            return -EINVAL;
        while (p < sc->n && is_digit(sc->s[p]))
            p++;
    }
    if (p < sc->n && (sc->s[p] == 'e' || sc->s[p] == 'E')) {
        p++;
        if (p < sc->n && (sc->s[p] == '+' || sc->s[p] == '-'))
            p++;
        if (p >= sc->n || !is_digit(sc->s[p]))
            return -EINVAL;
        while (p < sc->n && is_digit(sc->s[p]))
            p++;
    }
    int t = new_tok(sc, JTOK_NUMBER, start);
    if (t < 0)
        return t;
    sc->toks[t].end = (uint32_t)p;
    sc->pos = p;
    *tok_out = t;
    return 0;
}

static int scan_literal(struct scan *sc, const char *lit, enum jtok_type type, int *tok_out)
{
    size_t l = strlen(lit);
    if (sc->n - sc->pos < l || memcmp(sc->s + sc->pos, lit, l) != 0)
        return -EINVAL;
    int t = new_tok(sc, type, sc->pos);
    if (t < 0)
        return t;
    sc->pos += l;
    sc->toks[t].end = (uint32_t)sc->pos;
    *tok_out = t;
    return 0;
}

static int scan_value(struct scan *sc, int depth, int *tok_out);

static int scan_container(struct scan *sc, int depth, int *tok_out)
{
    int object = sc->s[sc->pos] == '{';
    char close = object ? '}' : ']';
    if (depth >= JSON_SCAN_MAX_DEPTH)
        return -EINVAL;
    int t = new_tok(sc, object ? JTOK_OBJECT : JTOK_ARRAY, sc->pos);
    if (t < 0)
        return t;
    sc->pos++;
    skip_ws(sc);
    uint32_t count = 0;
    if (sc->pos < sc->n && sc->s[sc->pos] == close) {
        sc->pos++;
    } else {
        for (;;) {
            int child, rc;
            if (object) {
                if (sc->pos >= sc->n || sc->s[sc->pos] != '"')
                    return -EINVAL;
                if ((rc = scan_string(sc, &child)) != 0)
                    return rc;
                skip_ws(sc);
                if (sc->pos >= sc->n || sc->s[sc->pos] != ':')
                    return -EINVAL;
                sc->pos++;
                skip_ws(sc);
            }
            if ((rc = scan_value(sc, depth + 1, &child)) != 0)
                return rc;
            count++;
            skip_ws(sc);
            if (sc->pos >= sc->n)
                return -EINVAL;
            char c = sc->s[sc->pos++];
            if (c == close)
                break;
            if (c != ',')
                return -EINVAL;
            skip_ws(sc);
        }
    }
    sc->toks[t].end = (uint32_t)sc->pos;
    sc->toks[t].count = count;
    sc->toks[t].skip = (uint32_t)(sc->ntok - (size_t)t);
    *tok_out = t;
    return 0;
}

static int scan_value(struct scan *sc, int depth, int *tok_out)
{
    if (sc->pos >= sc->n)
        return -EINVAL;
    switch (sc->s[sc->pos]) {
    case '{':
    case '[':
        return scan_container(sc, depth, tok_out);
    case '"':
        return scan_string(sc, tok_out);
    case 't':
        return scan_literal(sc, "true", JTOK_TRUE, tok_out);
    case 'f':
        return scan_literal(sc, "false", JTOK_FALSE, tok_out);
    case 'n':
        return scan_literal(sc, "null", JTOK_NULL, tok_out);
    default:
        return scan_number(sc, tok_out);
    }
}

int json_scan(const char *s, size_t n, struct json_tok *toks, size_t max)
{
    if (n >= UINT32_MAX)
        return -EOVERFLOW;
    struct scan sc = {.s = s, .n = n, .toks = toks, .max = max};
    int root, rc;
    skip_ws(&sc);
    if ((rc = scan_value(&sc, 0, &root)) != 0)
        return rc;
    skip_ws(&sc);
    if (sc.pos != n)
        return -EINVAL;
    return (int)sc.ntok;
}

/* Unescapes the string token into out; the token was validated by json_scan. */
static int unescape(const char *s, const struct json_tok *t, char *out, size_t cap, size_t *len)
{
    size_t o = 0;
    for (uint32_t p = t->start; p < t->end;) {
        char c = s[p];
        char buf[4];
        size_t k = 1;
        if (c != '\\') {
            buf[0] = c;
            p++;
        } else {
            char e = s[p + 1];
            p += 2;
            switch (e) {
            case 'b': buf[0] = '\b'; break;
            case 'f': buf[0] = '\f'; break;
            case 'n': buf[0] = '\n'; break;
            case 'r': buf[0] = '\r'; break;
            case 't': buf[0] = '\t'; break;
            case 'u': {
                unsigned u = 0, lo = 0xDC00; /* json_scan validated both escapes */
                hex4(s + p, &u);
                p += 4;
                if (u >= 0xD800 && u <= 0xDBFF) {
                    hex4(s + p + 2, &lo);
                    p += 6;
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                }
                if (u < 0x80) {
                    buf[0] = (char)u;
                } else if (u < 0x800) {
                    buf[0] = (char)(0xC0 | u >> 6), buf[1] = (char)(0x80 | (u & 0x3F)), k = 2;
                } else if (u < 0x10000) {
                    buf[0] = (char)(0xE0 | u >> 12), buf[1] = (char)(0x80 | (u >> 6 & 0x3F));
                    buf[2] = (char)(0x80 | (u & 0x3F)), k = 3;
                } else {
                    buf[0] = (char)(0xF0 | u >> 18), buf[1] = (char)(0x80 | (u >> 12 & 0x3F));
                    buf[2] = (char)(0x80 | (u >> 6 & 0x3F)), buf[3] = (char)(0x80 | (u & 0x3F));
                    k = 4;
                }
                break;
            }
            default: buf[0] = e; break; /* " \ / */
            }
        }
        if (o + k >= cap)
            return -ENOSPC;
        memcpy(out + o, buf, k);
        o += k;
    }
    out[o] = '\0';
    *len = o;
    return 0;
}

int json_str(const char *s, const struct json_tok *toks, int i, char *out, size_t cap,
             size_t *len)
{
    if (i < 0 || toks[i].type != JTOK_STRING)
        return -EINVAL;
    if (cap == 0)
        return -ENOSPC;
    return unescape(s, &toks[i], out, cap, len);
}

int json_str_view(const char *s, const struct json_tok *toks, int i, const char **p, size_t *len)
{
    if (i < 0 || toks[i].type != JTOK_STRING)
        return -EINVAL;
    if (toks[i].escaped)
        return -EAGAIN;
    *p = s + toks[i].start;
    *len = toks[i].end - toks[i].start;
    return 0;
}

/* The string token t equals lit (l bytes): lengths first, so most mismatches cost no memcmp. */
static int str_eq(const char *s, const struct json_tok *t, const char *lit, size_t l)
{
    if (!t->escaped)
        return t->end - t->start == l && memcmp(s + t->start, lit, l) == 0;
    char buf[128];
    size_t n;
    if (l >= sizeof buf || unescape(s, t, buf, sizeof buf, &n) != 0)
        return 0;
    return n == l && memcmp(buf, lit, l) == 0;
}

int json_str_eq(const char *s, const struct json_tok *toks, int i, const char *lit)
{
    if (i < 0 || toks[i].type != JTOK_STRING)
        return 0;
    return str_eq(s, &toks[i], lit, strlen(lit));
}

int json_get(const char *s, const struct json_tok *toks, int obj, const char *key)
{
    if (obj < 0 || toks[obj].type != JTOK_OBJECT)
        return -1;
    size_t l = strlen(key);
    int k = obj + 1;
    for (uint32_t m = 0; m < toks[obj].count; m++) {
        int v = k + 1; /* member names are always string tokens */
        if (str_eq(s, &toks[k], key, l))
            return v;
        k = v + (int)toks[v].skip;
    }
    return -1;
}

int json_int(const char *s, const struct json_tok *toks, int i, int64_t *out)
{
    if (i < 0 || (toks[i].type != JTOK_NUMBER && toks[i].type != JTOK_STRING) ||
        toks[i].escaped)
        return -EINVAL;
    const char *p = s + toks[i].start, *end = s + toks[i].end;
    int neg = 0;
    if (p < end && *p == '-')
        neg = 1, p++;
    if (p == end)
        return -EINVAL;
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; p < end; p++) {
        if (!is_digit(*p))
            return -EINVAL;
        unsigned d = (unsigned)(*p - '0');
        if (v > (limit - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}
