/* The control command codec: round trips, and strict refusal of anything malformed that could
 * arrive on a Redis channel. */
#include "worker/control_msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/testing.h"

static int decode_str(const char *s, struct control_msg *m)
{
    return control_msg_decode(s, strlen(s), m);
}

TEST(control_msg_round_trip)
{
    struct control_msg m = {.op = CALL_CTL_SAY, .text = "Say \"hi\" \xc3\xa9\n"};
    strcpy(m.id, "cmd_0123abcd");
    strcpy(m.call_id, "call-42_x");
    char *s = control_msg_encode(&m);
    CHECK(s != NULL);
    struct control_msg d;
    CHECK_EQ(decode_str(s, &d), 0);
    CHECK(strcmp(d.id, "cmd_0123abcd") == 0);
    CHECK(strcmp(d.call_id, "call-42_x") == 0);
    CHECK_EQ(d.op, CALL_CTL_SAY);
    CHECK(strcmp(d.text, "Say \"hi\" \xc3\xa9\n") == 0);
    control_msg_clear(&d);
    free(s);

    struct control_msg t = {.op = CALL_CTL_TRANSFER};
    strcpy(t.id, "c1");
    strcpy(t.call_id, "CA123");
    strcpy(t.to, "+15551234567");
    s = control_msg_encode(&t);
    CHECK_EQ(decode_str(s, &d), 0);
    CHECK_EQ(d.op, CALL_CTL_TRANSFER);
    CHECK(strcmp(d.to, "+15551234567") == 0);
    CHECK(d.text == NULL);
    free(s);

    CHECK_EQ(decode_str("{\"v\":1,\"id\":\"a\",\"call_id\":\"b\",\"op\":\"hangup\"}", &d), 0);
    CHECK_EQ(d.op, CALL_CTL_HANGUP);
}

TEST(control_msg_refuses_malformed)
{
    struct control_msg d;
    const char *bad[] = {
        "",
        "not json",
        "[]",
        "{\"v\":2,\"id\":\"a\",\"call_id\":\"b\",\"op\":\"hangup\"}",
        "{\"id\":\"a\",\"call_id\":\"b\",\"op\":\"hangup\"}",
        "{\"v\":1,\"id\":\"a b\",\"call_id\":\"b\",\"op\":\"hangup\"}",
        "{\"v\":1,\"id\":\"a\",\"call_id\":\"b:c\",\"op\":\"hangup\"}",
        "{\"v\":1,\"id\":\"a\",\"call_id\":\"\",\"op\":\"hangup\"}",
        "{\"v\":1,\"id\":\"a\",\"call_id\":\"b\",\"op\":\"dance\"}",
        "{\"v\":1,\"id\":\"a\",\"call_id\":\"b\",\"op\":\"say\"}",
        "{\"v\":1,\"id\":\"a\",\"call_id\":\"b\",\"op\":\"say\",\"text\":\"\"}",
        "{\"v\":1,\"id\":\"a\",\"call_id\":\"b\",\"op\":\"say\",\"text\":\"a\\u0000b\"}",
        "{\"v\":1,\"id\":\"a\",\"call_id\":\"b\",\"op\":\"say\",\"text\":7}",
        "{\"v\":1,\"id\":\"a\",\"call_id\":\"b\",\"op\":\"transfer\"}",
        "{\"v\":1,\"id\":\"a\",\"call_id\":\"b\",\"op\":\"transfer\",\"to\":\"5551234567\"}",
        "{\"v\":1,\"id\":\"a\",\"call_id\":\"b\",\"op\":\"transfer\",\"to\":\"+1555<x>\"}",
        "{\"v\":1,\"id\":\"a\",\"id\":\"b\",\"call_id\":\"b\",\"op\":\"hangup\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_MSG(decode_str(bad[i], &d) == -EINVAL, "accepted: %s", bad[i]);
        CHECK(d.text == NULL);
    }
    /* Text at the limit passes, one byte more does not. */
    char *big = malloc(CONTROL_TEXT_MAX + 200);
    for (int extra = 0; extra <= 1; extra++) {
        int n = sprintf(big, "{\"v\":1,\"id\":\"a\",\"call_id\":\"b\",\"op\":\"say\",\"text\":\"");
        memset(big + n, 'x', CONTROL_TEXT_MAX + extra);
        strcpy(big + n + CONTROL_TEXT_MAX + extra, "\"}");
        CHECK_EQ(decode_str(big, &d), extra ? -EINVAL : 0);
        control_msg_clear(&d);
    }
    free(big);
}

TEST(control_msg_e164)
{
    CHECK(control_e164_ok("+15551234567"));
    CHECK(control_e164_ok("+441234567"));
    CHECK(!control_e164_ok("15551234567"));
    CHECK(!control_e164_ok("+0551234567"));
    CHECK(!control_e164_ok("+1555"));
    CHECK(!control_e164_ok("+1234567890123456"));
    CHECK(!control_e164_ok("+1555123456a"));
}
