/* RFC 4648 base64 for the per-frame path (every Twilio and OpenAI audio frame is base64 in JSON).
 * Both directions are table lookups over whole 3-byte / 4-character groups: the encoder writes
 * two characters per lookup of 12 bits; the decoder ORs four pre-shifted 24-bit values whose
 * bit 24 and up flag a character outside the alphabet, and checks the flags once at the end.
 * The tables are built by the preprocessor, so they are static const with nothing to set up.
 * On a CPU with AVX2 the bulk of each buffer goes through base64_avx2.c (8-10x fewer
 * instructions); the tables do the edges, the padding and anything the vector code refused. */
#include "common/base64.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "common/base64_kernel.h"

/* ---- kernel choice ----------------------------------------------------------------------- */

enum { B64_KERNEL_UNSET, B64_KERNEL_GENERIC, B64_KERNEL_AVX2 };
static atomic_int base64_kernel; /* set on first use; racing first uses store the same value */

static int base64_cpu_has_avx2(void)
{
#ifdef BASE64_HAVE_AVX2
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

static int base64_kernel_get(void)
{
    int k = atomic_load_explicit(&base64_kernel, memory_order_relaxed);
    if (k == B64_KERNEL_UNSET) {
        k = base64_cpu_has_avx2() ? B64_KERNEL_AVX2 : B64_KERNEL_GENERIC;
        atomic_store_explicit(&base64_kernel, k, memory_order_relaxed);
    }
    return k;
}

int base64_select_kernel(const char *name)
{
    int k;
    if (name == NULL)
        return -EINVAL;
    if (strcmp(name, "generic") == 0)
        k = B64_KERNEL_GENERIC;
    else if (strcmp(name, "avx2") == 0 || strcmp(name, "auto") == 0)
        k = base64_cpu_has_avx2() ? B64_KERNEL_AVX2 : B64_KERNEL_GENERIC;
    else
        return -EINVAL;
    if (strcmp(name, "avx2") == 0 && k != B64_KERNEL_AVX2)
        return -ENOTSUP;
    atomic_store_explicit(&base64_kernel, k, memory_order_relaxed);
    return 0;
}

const char *base64_kernel_name(void)
{
    return base64_kernel_get() == B64_KERNEL_AVX2 ? "avx2" : "generic";
}

/* Value of alphabet index v (0..63), and index of character c (-1 if not in the alphabet).
 * Written as integer constant expressions so the tables below are constant initialisers. */
#define B64_CHAR(v)                                                                                \
    ((v) < 26    ? 'A' + (v)                                                                       \
     : (v) < 52  ? 'a' + (v)-26                                                                    \
     : (v) < 62  ? '0' + (v)-52                                                                    \
     : (v) == 62 ? '+'                                                                             \
                 : '/')
#define B64_INDEX(c)                                                                               \
    ((c) >= 'A' && (c) <= 'Z'   ? (c) - 'A'                                                        \
     : (c) >= 'a' && (c) <= 'z' ? (c) - 'a' + 26                                                   \
     : (c) >= '0' && (c) <= '9' ? (c) - '0' + 52                                                   \
     : (c) == '+'               ? 62                                                               \
     : (c) == '/'               ? 63                                                               \
                                : -1)

#define B64_R4(m, i) m(i), m((i) + 1), m((i) + 2), m((i) + 3)
#define B64_R16(m, i) B64_R4(m, i), B64_R4(m, (i) + 4), B64_R4(m, (i) + 8), B64_R4(m, (i) + 12)
#define B64_R64(m, i)                                                                              \
    B64_R16(m, i), B64_R16(m, (i) + 16), B64_R16(m, (i) + 32), B64_R16(m, (i) + 48)
#define B64_R256(m, i)                                                                             \
    B64_R64(m, i), B64_R64(m, (i) + 64), B64_R64(m, (i) + 128), B64_R64(m, (i) + 192)
#define B64_R4096(m)                                                                               \
    B64_R256(m, 0), B64_R256(m, 256), B64_R256(m, 512), B64_R256(m, 768), B64_R256(m, 1024),       \
        B64_R256(m, 1280), B64_R256(m, 1536), B64_R256(m, 1792), B64_R256(m, 2048),                \
        B64_R256(m, 2304), B64_R256(m, 2560), B64_R256(m, 2816), B64_R256(m, 3072),                \
        B64_R256(m, 3328), B64_R256(m, 3584), B64_R256(m, 3840)

/* 12 bits -> the two characters for them, in output order. */
#define B64_PAIR(i)                                                                                \
    {                                                                                              \
        B64_CHAR((i) >> 6), B64_CHAR((i)&63)                                                       \
    }
static const char base64_pair[4096][2] = {B64_R4096(B64_PAIR)};

/* Character -> its 6 bits shifted to their place in a 24-bit group; B64_BAD for the rest. */
#define B64_BAD 0x01000000u
#define B64_DEC(c, shift) (B64_INDEX(c) < 0 ? B64_BAD : (uint32_t)B64_INDEX(c) << (shift))
#define B64_DEC0(c) B64_DEC(c, 18)
#define B64_DEC1(c) B64_DEC(c, 12)
#define B64_DEC2(c) B64_DEC(c, 6)
#define B64_DEC3(c) B64_DEC(c, 0)
static const uint32_t base64_dec0[256] = {B64_R256(B64_DEC0, 0)};
static const uint32_t base64_dec1[256] = {B64_R256(B64_DEC1, 0)};
static const uint32_t base64_dec2[256] = {B64_R256(B64_DEC2, 0)};
static const uint32_t base64_dec3[256] = {B64_R256(B64_DEC3, 0)};

size_t base64_encode(const uint8_t *in, size_t n, char *out)
{
    char *o = out;
    size_t i = 0;
#ifdef BASE64_HAVE_AVX2
    if (n >= 28 && base64_kernel_get() == B64_KERNEL_AVX2) {
        i = base64_avx2_encode(in, n, out);
        o += i / 3 * 4;
    }
#endif
    for (; n - i >= 3; i += 3, o += 4) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        memcpy(o, base64_pair[v >> 12], 2);
        memcpy(o + 2, base64_pair[v & 0xFFF], 2);
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 4; /* 8 bits in 12, low 4 zero */
        memcpy(o, base64_pair[v], 2);
        o[2] = '=';
        o[3] = '=';
        o += 4;
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 10 | (uint32_t)in[i + 1] << 2; /* 16 bits in 18 */
        memcpy(o, base64_pair[v >> 6], 2);
        o[2] = (char)B64_CHAR(v & 63);
        o[3] = '=';
        o += 4;
    }
    return (size_t)(o - out);
}

static inline uint32_t base64_quad(const unsigned char *s)
{
    return base64_dec0[s[0]] | base64_dec1[s[1]] | base64_dec2[s[2]] | base64_dec3[s[3]];
}

int base64_decode(const char *in, size_t n, uint8_t *out, size_t out_cap, size_t *out_len)
{
    const unsigned char *s = (const unsigned char *)in;
    *out_len = 0;
    if (n % 4 != 0)
        return -EINVAL;
    if (n == 0)
        return 0;

    /* Padding can only be the last one or two characters; a '=' anywhere else is not in the
     * tables and fails like any other bad character. */
    size_t pad = s[n - 1] != '=' ? 0 : s[n - 2] != '=' ? 1 : 2;
    size_t len = n / 4 * 3 - pad;
    /* Room is checked before the characters are, so text that is also malformed may get
     * -ENOSPC; either way nothing is decoded. */
    if (len > out_cap)
        return -ENOSPC;

    /* Full groups, all but the last; bad characters are collected and judged once. */
    uint32_t bad = 0;
    size_t groups = n / 4 - 1, g = 0;
    uint8_t *o = out;
#ifdef BASE64_HAVE_AVX2
    if (groups >= 8 && base64_kernel_get() == B64_KERNEL_AVX2) {
        /* whole blocks before the last group; a block with a bad character is left to the
         * loop below, which flags it */
        size_t done = base64_avx2_decode(in, groups * 4, out);
        g = done / 4;
        s += done;
        o += done / 4 * 3;
    }
#endif
    for (; g < groups; g++, s += 4, o += 3) {
        uint32_t v = base64_quad(s);
        bad |= v;
        o[0] = (uint8_t)(v >> 16);
        o[1] = (uint8_t)(v >> 8);
        o[2] = (uint8_t)v;
    }

    /* The last group, where padding stands for 'A' (zero bits) and the bits it covers in the
     * character before it must be zero, so every input has one encoding only. */
    uint32_t v, under_pad = 0;
    if (pad == 0) {
        v = base64_quad(s);
        o[2] = (uint8_t)v;
    } else if (pad == 1) {
        v = base64_dec0[s[0]] | base64_dec1[s[1]] | base64_dec2[s[2]];
        under_pad = v & 0xFF;
    } else {
        v = base64_dec0[s[0]] | base64_dec1[s[1]];
        under_pad = v & 0xFFFF;
    }
    if (((bad | v) & ~0xFFFFFFu) != 0 || under_pad != 0)
        return -EINVAL;
    o[0] = (uint8_t)(v >> 16);
    if (pad < 2)
        o[1] = (uint8_t)(v >> 8);
    *out_len = len;
    return 0;
}
