/* Form-urlencoded parser: decoding ('+', %XX in both cases), repeated keys in order, empty pairs,
 * strict refusal of bad escapes and %00, field-count and arena bounds, a real Twilio body. */
#include "common/form.h"

#include <errno.h>
#include <string.h>

#include "tests/unit/testing.h"

static struct form_field fields[16];
static char arena[1024];

static int parse(const char *in, size_t *n)
{
    return form_parse(in, strlen(in), fields, 16, arena, sizeof arena, n);
}

TEST(form_decodes_twilio_body)
{
    const char *body = "AccountSid=AC123&ApiVersion=2010-04-01&CallSid=CA42&CallStatus=ringing"
                       "&Called=%2B15551230000&Caller=%2B15557654321&Direction=inbound"
                       "&From=%2B15557654321&To=%2B15551230000&CallerName=Jane+Doe%21";
    size_t n;
    CHECK_EQ(parse(body, &n), 0);
    CHECK_EQ(n, 10);
    CHECK(strcmp(form_get(fields, n, "CallSid"), "CA42") == 0);
    CHECK(strcmp(form_get(fields, n, "From"), "+15557654321") == 0);
    CHECK(strcmp(form_get(fields, n, "CallerName"), "Jane Doe!") == 0);
    CHECK_EQ(fields[9].value_len, 9);
    CHECK(form_get(fields, n, "callsid") == NULL); /* names are case-sensitive */
    CHECK(form_get(fields, n, "Missing") == NULL);
}

TEST(form_repeated_keys_and_empty_pairs)
{
    size_t n;
    CHECK_EQ(parse("a=1&&b=&a=2&c&=v&", &n), 0);
    CHECK_EQ(n, 5);
    CHECK(strcmp(fields[0].name, "a") == 0 && strcmp(fields[0].value, "1") == 0);
    CHECK(strcmp(fields[1].name, "b") == 0 && strcmp(fields[1].value, "") == 0);
    CHECK(strcmp(fields[2].name, "a") == 0 && strcmp(fields[2].value, "2") == 0);
    CHECK(strcmp(fields[3].name, "c") == 0 && fields[3].value_len == 0);
    CHECK(strcmp(fields[4].name, "") == 0 && strcmp(fields[4].value, "v") == 0);
    CHECK(strcmp(form_get(fields, n, "a"), "1") == 0);
    CHECK_EQ(parse("", &n), 0);
    CHECK_EQ(n, 0);
    CHECK_EQ(parse("&&&", &n), 0);
    CHECK_EQ(n, 0);
}

TEST(form_escapes)
{
    size_t n;
    CHECK_EQ(parse("k%3d=v%3D%26x%2b+y%e2%82%AC", &n), 0);
    CHECK_EQ(n, 1);
    CHECK(strcmp(fields[0].name, "k=") == 0);
    CHECK(strcmp(fields[0].value, "v=&x+ y\xe2\x82\xac") == 0);
    /* An '=' after the first belongs to the value. */
    CHECK_EQ(parse("a=b=c", &n), 0);
    CHECK(strcmp(fields[0].value, "b=c") == 0);
    static const char *const bad[] = {"a=%", "a=%4", "a=%4g", "a=%g4", "%zz=1", "a=%00", "a=1&b=%"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        n = 99;
        CHECK_MSG(parse(bad[i], &n) == -EINVAL, "%s", bad[i]);
        CHECK_EQ(n, 0);
    }
}

TEST(form_bounds)
{
    size_t n;
    /* 16 fields fit, 17 do not. */
    char in[256] = "";
    for (int i = 0; i < 16; i++)
        strcat(in, "x=1&");
    CHECK_EQ(parse(in, &n), 0);
    CHECK_EQ(n, 16);
    strcat(in, "y=2");
    CHECK_EQ(parse(in, &n), -E2BIG);
    /* The arena bound: FORM_ARENA_SIZE is always enough, one byte less may not be. */
    const char *worst = "a&b&c&d&e";
    size_t need = FORM_ARENA_SIZE(strlen(worst));
    CHECK(need >= 5 * 3);
    CHECK_EQ(form_parse(worst, strlen(worst), fields, 16, arena, need, &n), 0);
    CHECK_EQ(form_parse(worst, strlen(worst), fields, 16, arena, 14, &n), -ENOSPC);
    CHECK_EQ(form_parse("abc", 3, fields, 16, arena, 0, &n), -ENOSPC);
    /* A raw NUL is refused like %00. */
    CHECK_EQ(form_parse("a=1\0b", 5, fields, 16, arena, sizeof arena, &n), -EINVAL);
    /* Input is taken by length, not up to a NUL. */
    CHECK_EQ(form_parse("a=1&b=2", 3, fields, 16, arena, sizeof arena, &n), 0);
    CHECK_EQ(n, 1);
}
