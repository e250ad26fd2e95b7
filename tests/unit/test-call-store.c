/* call_store's pure helpers: the record's time format, the ids we accept into keys, and the
 * JSON of a transcript turn and of the usage figures. */
#include "worker/call_store.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/testing.h"
#include "worker/openai_msg.h"

TEST(call_store_iso8601)
{
    char s[32];
    call_store_iso8601(0, s);
    CHECK(strcmp(s, "1970-01-01T00:00:00.000Z") == 0);
    call_store_iso8601(1738324800123ull, s); /* 2025-01-31T12:00:00.123Z */
    CHECK(strcmp(s, "2025-01-31T12:00:00.123Z") == 0);
    call_store_iso8601(951782400999ull, s); /* leap day 2000 */
    CHECK(strcmp(s, "2000-02-29T00:00:00.999Z") == 0);
}

TEST(call_store_id_ok)
{
    CHECK(call_store_id_ok("CA0123456789abcdef"));
    CHECK(call_store_id_ok("call_1-x"));
    CHECK(!call_store_id_ok(""));
    CHECK(!call_store_id_ok("a:b"));
    CHECK(!call_store_id_ok("a b"));
    CHECK(!call_store_id_ok("a*"));
    char long_id[80];
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    CHECK(!call_store_id_ok(long_id));
    long_id[64] = '\0';
    CHECK(call_store_id_ok(long_id));
}

TEST(call_store_turn_json)
{
    char *s = call_store_turn_json("user", "He said \"hi\"\n", 1234);
    CHECK(s != NULL);
    CHECK(strcmp(s, "{\"role\":\"user\",\"text\":\"He said \\\"hi\\\"\\n\",\"t_ms\":1234}") == 0);
    free(s);
    /* Text that is not UTF-8 keeps the turn (with empty text) rather than losing it. */
    s = call_store_turn_json("assistant", "\xff\xfe", 7);
    CHECK(s != NULL);
    CHECK(strcmp(s, "{\"role\":\"assistant\",\"text\":\"\",\"t_ms\":7}") == 0);
    free(s);
}

TEST(call_store_usage_json)
{
    struct openai_usage u = {.input_text = 1, .input_audio = 2, .cached_text = 3,
                             .cached_audio = 4, .output_text = 5, .output_audio = 6};
    char *s = call_store_usage_json(&u);
    json_t *o = json_loads(s, 0, NULL);
    CHECK(o != NULL);
    CHECK_EQ(json_integer_value(json_object_get(o, "input_text_tokens")), 1);
    CHECK_EQ(json_integer_value(json_object_get(o, "input_audio_tokens")), 2);
    CHECK_EQ(json_integer_value(json_object_get(o, "cached_text_tokens")), 3);
    CHECK_EQ(json_integer_value(json_object_get(o, "cached_audio_tokens")), 4);
    CHECK_EQ(json_integer_value(json_object_get(o, "output_text_tokens")), 5);
    CHECK_EQ(json_integer_value(json_object_get(o, "output_audio_tokens")), 6);
    json_decref(o);
    free(s);
}
