/* UTF-8 validation (common/utf8) against a plain reference decoder written from RFC 3629:
 * the classic invalid forms (overlongs, surrogates, past U+10FFFF, stray and missing
 * continuation bytes, truncation), every sequence of up to 3 bytes and the 4-byte ones' edges,
 * every split of a text into two pieces (a character cut anywhere), and the word-at-a-time
 * ASCII path finding a bad byte at every position. */
#include "common/utf8.h"

#include <errno.h>
#include <string.h>

#include "tests/lib/utf8_ref.h"
#include "tests/unit/testing.h"

static int ours_valid(const uint8_t *p, size_t n)
{
    return utf8_validate(p, n) == 0;
}

/* Every split into two pieces gives the whole text's answer. */
static int ours_split_agrees(const uint8_t *p, size_t n)
{
    int whole = ours_valid(p, n);
    for (size_t cut = 0; cut <= n; cut++) {
        uint32_t st = 0;
        int ok = utf8_check(&st, p, cut) == 0 && utf8_check(&st, p + cut, n - cut) == 0 &&
                 utf8_check_done(st);
        if (ok != whole)
            return 0;
    }
    return 1;
}

TEST(utf8_known_cases)
{
    static const struct {
        const char *s;
        int valid;
    } cases[] = {
        {"", 1},
        {"plain ascii", 1},
        {"\x7f", 1},
        {"\xc2\x80", 1},         /* U+0080, smallest 2-byte */
        {"\xdf\xbf", 1},         /* U+07FF */
        {"\xe0\xa0\x80", 1},     /* U+0800, smallest 3-byte */
        {"\xed\x9f\xbf", 1},     /* U+D7FF, just below the surrogates */
        {"\xee\x80\x80", 1},     /* U+E000, just above */
        {"\xef\xbf\xbf", 1},     /* U+FFFF */
        {"\xf0\x90\x80\x80", 1}, /* U+10000, smallest 4-byte */
        {"\xf4\x8f\xbf\xbf", 1}, /* U+10FFFF, the last */
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 1},
        {"\x80", 0}, /* a continuation byte alone */
        {"\xbf", 0},
        {"a\x80z", 0},
        {"\xc0\x80", 0},                 /* overlong NUL */
        {"\xc1\xbf", 0},                 /* overlong U+007F */
        {"\xe0\x80\x80", 0},             /* overlong 3-byte */
        {"\xe0\x9f\xbf", 0},             /* overlong U+07FF */
        {"\xf0\x80\x80\x80", 0},         /* overlong 4-byte */
        {"\xf0\x8f\xbf\xbf", 0},         /* overlong U+FFFF */
        {"\xed\xa0\x80", 0},             /* U+D800 */
        {"\xed\xbf\xbf", 0},             /* U+DFFF */
        {"\xed\xa0\x80\xed\xb0\x80", 0}, /* a surrogate pair, CESU-8 style */
        {"\xf4\x90\x80\x80", 0},         /* U+110000 */
        {"\xf5\x80\x80\x80", 0},
        {"\xf7\xbf\xbf\xbf", 0},
        {"\xf8\x88\x80\x80\x80", 0}, /* 5-byte form */
        {"\xfe", 0},
        {"\xff", 0},
        {"\xc3", 0}, /* truncated at the end */
        {"\xe2\x82", 0},
        {"\xf0\x9f\x98", 0},
        {"\xc3(", 0}, /* continuation missing */
        {"\xe2(\xa1", 0},
        {"\xe2\x82(", 0},
        {"\xf0(\x8c\xbc", 0},
        {"\xf0\x90(\xbc", 0},
        {"\xf0\x9f\x98(", 0},
        {"\xc3\xa9\xa9", 0}, /* one continuation too many */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint8_t *p = (const uint8_t *)cases[i].s;
        size_t n = strlen(cases[i].s);
        CHECK_MSG(ours_valid(p, n) == cases[i].valid, "case %zu", i);
        CHECK_MSG(utf8_ref_valid(p, n) == cases[i].valid, "reference, case %zu", i);
        CHECK_MSG(ours_split_agrees(p, n), "split, case %zu", i);
        CHECK_EQ(utf8_validate(p, n), cases[i].valid ? 0 : -EILSEQ);
    }
}

TEST(utf8_every_short_sequence_matches_reference)
{
    uint8_t b[4];
    for (unsigned x = 0; x < 256; x++) {
        b[0] = (uint8_t)x;
        CHECK_MSG(ours_valid(b, 1) == utf8_ref_valid(b, 1), "%02x", x);
        for (unsigned y = 0; y < 256; y++) {
            b[1] = (uint8_t)y;
            CHECK_MSG(ours_valid(b, 2) == utf8_ref_valid(b, 2), "%02x %02x", x, y);
            if (x < 0xc0)
                continue; /* not a lead byte: 3-byte forms fail at byte 1 either way */
            for (unsigned z = 0; z < 256; z++) {
                b[2] = (uint8_t)z;
                if (ours_valid(b, 3) != utf8_ref_valid(b, 3))
                    CHECK_MSG(0, "%02x %02x %02x", x, y, z);
            }
        }
    }
    /* 4 bytes: every lead and second byte, the edges of the rest */
    static const uint8_t edge[] = {0x00, 0x7f, 0x80, 0x81, 0xbe, 0xbf, 0xc0, 0xff};
    for (unsigned x = 0xe0; x < 256; x++)
        for (unsigned y = 0; y < 256; y++)
            for (size_t i = 0; i < sizeof edge; i++)
                for (size_t j = 0; j < sizeof edge; j++) {
                    b[0] = (uint8_t)x, b[1] = (uint8_t)y, b[2] = edge[i], b[3] = edge[j];
                    if (ours_valid(b, 4) != utf8_ref_valid(b, 4))
                        CHECK_MSG(0, "%02x %02x %02x %02x", x, y, edge[i], edge[j]);
                }
}

TEST(utf8_split_anywhere_agrees_with_whole)
{
    const char *texts[] = {
        "{\"type\":\"response.audio_transcript.delta\",\"delta\":\"Gr\xc3\xbc\xc3\x9f"
        " Gott \xe2\x80\x94 \xf0\x9f\x91\x8b\"}",
        "\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c \xf4\x8f\xbf\xbf",
        "ascii ascii ascii ascii ascii ascii ascii ascii ascii \xed\xa0\x80 tail",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\xf0\x9f\x98",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        const uint8_t *p = (const uint8_t *)texts[i];
        size_t n = strlen(texts[i]);
        CHECK_EQ(ours_valid(p, n), utf8_ref_valid(p, n));
        CHECK_MSG(ours_split_agrees(p, n), "text %zu", i);
        /* and a byte at a time */
        uint32_t st = 0;
        int ok = 1;
        for (size_t j = 0; j < n && ok; j++)
            ok = utf8_check(&st, p + j, 1) == 0;
        CHECK_EQ(ok && utf8_check_done(st), utf8_ref_valid(p, n));
    }
}

TEST(utf8_fast_path_finds_every_position)
{
    uint8_t buf[300];
    static const char *const inserts[] = {
        "\x80", "\xff", "\xc3", "\xe0\x80\xaf", "\xc3\xa9", "\xf0\x9f\x98\x80", "\xed\xa0\x80"};
    for (size_t k = 0; k < sizeof inserts / sizeof inserts[0]; k++) {
        size_t il = strlen(inserts[k]);
        for (size_t len = il; len <= sizeof buf; len += 37) {
            for (size_t at = 0; at + il <= len; at++) {
                memset(buf, 'a', len);
                memcpy(buf + at, inserts[k], il);
                if (ours_valid(buf, len) != utf8_ref_valid(buf, len))
                    CHECK_MSG(0, "insert %zu at %zu of %zu", k, at, len);
            }
        }
    }
    /* long ASCII: valid, and a trailing byte past the fast path's blocks */
    memset(buf, 'x', sizeof buf);
    CHECK(ours_valid(buf, sizeof buf));
    buf[sizeof buf - 1] = 0x80;
    CHECK(!ours_valid(buf, sizeof buf));
}
