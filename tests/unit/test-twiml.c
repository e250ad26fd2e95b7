/* TwiML writer: the wss URL derived from the public base URL, the exact document, XML escaping
 * checked both by exact text and by a round trip through Python's XML parser, Twilio's
 * 500-character parameter rule, refusal of text XML cannot carry, buffer bounds. */
#include "worker/twiml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/testing.h"

static char out[32768];

TEST(twiml_stream_url_from_base)
{
    static const struct {
        const char *base, *url;
    } ok[] = {
        {"https://voice.example.com", "wss://voice.example.com/api/voice-calls/media-stream"},
        {"https://voice.example.com/", "wss://voice.example.com/api/voice-calls/media-stream"},
        {"HTTPS://h.example:8443/pre/fix//",
         "wss://h.example:8443/pre/fix/api/voice-calls/media-stream"},
        {"http://127.0.0.1:8080", "ws://127.0.0.1:8080/api/voice-calls/media-stream"},
        {"https://[::1]:443/x", "wss://[::1]:443/x/api/voice-calls/media-stream"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        CHECK_MSG(twiml_stream_url(ok[i].base, out, sizeof out) == 0, "%s", ok[i].base);
        CHECK_MSG(strcmp(out, ok[i].url) == 0, "%s -> %s", ok[i].base, out);
    }
    static const char *const bad[] = {
        "voice.example.com", "ftp://h",       "https://",    "https:///path", "https://u:p@h",
        "https://h?x=1",     "https://h/p?x", "https://h#f", "https://h o",   "https://h/a b",
        "https://h/\"x",     "https://:443",  "wss://h",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(twiml_stream_url(bad[i], out, sizeof out) == -EINVAL, "%s", bad[i]);
    CHECK_EQ(twiml_stream_url(NULL, out, sizeof out), -EINVAL);
    CHECK_EQ(twiml_stream_url("https://h", out, 10), -ENOSPC);
}

TEST(twiml_document_exact)
{
    const struct twiml_param params[] = {
        {"callId", "CA123"}, {"direction", "inbound"}, {"contactName", NULL}, {"to", "+1555"}};
    size_t len;
    CHECK_EQ(twiml_connect_stream("https://v.example.com/b", NULL, params, 4, out, sizeof out, &len), 0);
    const char *want = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Connect>"
                       "<Stream url=\"wss://v.example.com/b/api/voice-calls/media-stream\">"
                       "<Parameter name=\"callId\" value=\"CA123\"/>"
                       "<Parameter name=\"direction\" value=\"inbound\"/>"
                       "<Parameter name=\"to\" value=\"+1555\"/>"
                       "</Stream></Connect></Response>";
    CHECK_MSG(strcmp(out, want) == 0, "%s", out);
    CHECK_EQ(len, strlen(want));
}

TEST(twiml_escapes_hostile_values)
{
    const struct twiml_param params[] = {
        {"from", "\"><script>alert('x')</script>&amp;"},
        {"n\"a<m>e", "tab\there\nnl\rcr"},
    };
    size_t len;
    CHECK_EQ(twiml_connect_stream("https://h/a&b'c", NULL, params, 2, out, sizeof out, &len), 0);
    CHECK(strstr(out, "url=\"wss://h/a&amp;b&apos;c/api/voice-calls/media-stream\"") != NULL);
    CHECK(strstr(out, "<Parameter name=\"from\" value=\"&quot;&gt;&lt;script&gt;alert("
                      "&apos;x&apos;)&lt;/script&gt;&amp;amp;\"/>") != NULL);
    CHECK(strstr(out, "name=\"n&quot;a&lt;m&gt;e\" value=\"tab&#9;here&#10;nl&#13;cr\"") != NULL);
    CHECK(strstr(out, "<script") == NULL);
}

/* Parses the document with Python's XML parser and prints each parameter as name=value in
 * hex, so that what Twilio would read back can be compared with what we meant. */
static void xml_round_trip(const char *xml, char *result, size_t cap)
{
    char path[512], cmd[1024];
    snprintf(path, sizeof path, "%s/twiml.xml", test_tmpdir());
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs(xml, f);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import sys, xml.etree.ElementTree as E\n"
             "r = E.parse(sys.argv[1]).getroot()\n"
             "s = r.find(\"Connect/Stream\")\n"
             "print(s.get(\"url\").encode().hex())\n"
             "for p in s.findall(\"Parameter\"): "
             "print(p.get(\"name\").encode().hex() + \"=\" + p.get(\"value\").encode().hex())' %s",
             path);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    size_t n = fread(result, 1, cap - 1, p);
    result[n] = '\0';
    CHECK_EQ(pclose(p), 0);
}

static void hex(const char *s, char *out_hex)
{
    for (; *s; s++, out_hex += 2)
        sprintf(out_hex, "%02x", (unsigned char)*s);
    *out_hex = '\0';
}

TEST(twiml_xml_round_trip)
{
    const char *values[] = {
        "\"><script>alert(1)</script>",
        "a&b<c>d'e\"f",
        "tab\tnl\ncr\r.",
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
    };
    struct twiml_param params[4];
    for (int i = 0; i < 4; i++)
        params[i] = (struct twiml_param){"p\"<&>", values[i]};
    size_t len;
    CHECK_EQ(twiml_connect_stream("https://h.example/x", NULL, params, 4, out, sizeof out, &len), 0);
    static char result[8192], want[8192], hname[64], hvalue[256];
    xml_round_trip(out, result, sizeof result);
    hex("wss://h.example/x/api/voice-calls/media-stream", want);
    strcat(want, "\n");
    hex("p\"<&>", hname);
    for (int i = 0; i < 4; i++) {
        hex(values[i], hvalue);
        strcat(want, hname);
        strcat(want, "=");
        strcat(want, hvalue);
        strcat(want, "\n");
    }
    CHECK_MSG(strcmp(result, want) == 0, "python read:\n%s\nwanted:\n%s", result, want);
}

TEST(twiml_parameter_limit)
{
    static char value[600];
    size_t len;
    /* "from" + 495 = 499 < 500 passes; 496 makes 500 and fails. */
    memset(value, '1', 495);
    value[495] = '\0';
    struct twiml_param p = {"from", value};
    CHECK_EQ(twiml_connect_stream("https://h", NULL, &p, 1, out, sizeof out, &len), 0);
    value[495] = '1';
    value[496] = '\0';
    CHECK_EQ(twiml_connect_stream("https://h", NULL, &p, 1, out, sizeof out, &len), -E2BIG);
    CHECK_EQ(len, 0);
    /* Fitting display names: cut at a character boundary. */
    CHECK_EQ(twiml_param_fit("from", "short"), 5);
    CHECK_EQ(twiml_param_fit("from", value), 495);
    memset(value, 0, sizeof value);
    for (int i = 0; i < 250; i++)
        memcpy(value + 2 * i, "\xc3\xa9", 2);           /* 500 bytes of 'é' */
    size_t fit = twiml_param_fit("contactName", value); /* room: 499 - 11 = 488 bytes */
    CHECK_EQ(fit, 488);
    value[fit] = '\0';
    p = (struct twiml_param){"contactName", value};
    CHECK_EQ(twiml_connect_stream("https://h", NULL, &p, 1, out, sizeof out, &len), 0);
    /* Shifted by one byte, the cut must back up off a continuation byte. */
    memset(value, 0, sizeof value);
    value[0] = 'x';
    for (int i = 0; i < 250; i++)
        memcpy(value + 1 + 2 * i, "\xc3\xa9", 2);
    CHECK_EQ(twiml_param_fit("contactName", value), 487);
}

TEST(twiml_refuses_what_xml_cannot_carry)
{
    static const char *const bad[] = {
        "a\x01z",       "nul\x1f",      "\x80",         "\xc0\x80",         "\xc3",
        "\xed\xa0\x80", "\xef\xbf\xbe", "\xef\xbf\xbf", "\xf4\x90\x80\x80", "\xe2\x82",
        "ok\xff",
    };
    size_t len;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct twiml_param p = {"x", bad[i]};
        CHECK_MSG(twiml_connect_stream("https://h", NULL, &p, 1, out, sizeof out, &len) == -EILSEQ,
                  "case %zu", i);
        struct twiml_param q = {bad[i], "v"};
        CHECK_EQ(twiml_connect_stream("https://h", NULL, &q, 1, out, sizeof out, &len), -EILSEQ);
    }
    struct twiml_param noname = {"", "v"};
    CHECK_EQ(twiml_connect_stream("https://h", NULL, &noname, 1, out, sizeof out, &len), -EINVAL);
    struct twiml_param fine = {"x", "\x7f \xc2\x80 \xef\xbf\xbd \xf4\x8f\xbf\xbf"};
    CHECK_EQ(twiml_connect_stream("https://h", NULL, &fine, 1, out, sizeof out, &len), 0);
    CHECK_EQ(twiml_connect_stream("ftp://h", NULL, &fine, 1, out, sizeof out, &len), -EINVAL);
}

TEST(twiml_buffer_bounds)
{
    struct twiml_param p = {"callId", "CA1"};
    size_t len, full;
    CHECK_EQ(twiml_connect_stream("https://h", NULL, &p, 1, out, sizeof out, &full), 0);
    for (size_t cap = 0; cap <= full; cap++) {
        memset(out, 'Z', sizeof out);
        CHECK_MSG(twiml_connect_stream("https://h", NULL, &p, 1, out, cap, &len) == -ENOSPC, "cap %zu",
                  cap);
        CHECK(out[cap] == 'Z'); /* nothing written past cap */
    }
    CHECK_EQ(twiml_connect_stream("https://h", NULL, &p, 1, out, full + 1, &len), 0);
    CHECK_EQ(len, full);
}

TEST(twiml_connect_action_and_say_hangup)
{
    struct twiml_param p = {"callId", "c1"};
    char out[1024];
    size_t len;
    CHECK_EQ(twiml_connect_stream("https://h", "https://h/webhook/realtime/stream-ended/c1?a=1&b=2",
                                  &p, 1, out, sizeof out, &len),
             0);
    CHECK(strstr(out, "<Connect action=\"https://h/webhook/realtime/stream-ended/c1?a=1&amp;b=2\">"
                      "<Stream url=\"wss://h/api/voice-calls/media-stream\">") != NULL);
    CHECK_EQ(twiml_say_hangup("Sorry <all> & \"sundry\"", out, sizeof out, &len), 0);
    CHECK(strcmp(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>Sorry &lt;all&gt; "
                      "&amp; &quot;sundry&quot;</Say><Hangup/></Response>") == 0);
    CHECK_EQ(len, strlen(out));
    CHECK_EQ(twiml_say_hangup(NULL, out, sizeof out, &len), 0);
    CHECK(strstr(out, "<Response><Hangup/></Response>") != NULL);
    CHECK_EQ(twiml_say_hangup("bad \x01", out, sizeof out, &len), -EILSEQ);
    CHECK_EQ(twiml_say_hangup("x", out, 20, &len), -ENOSPC);
}

TEST(twiml_dial)
{
    char out[256];
    size_t len;
    CHECK_EQ(twiml_dial("+15551234567", out, sizeof out, &len), 0);
    CHECK(strcmp(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Dial>+15551234567"
                      "</Dial></Response>") == 0);
    CHECK_EQ(len, strlen(out));
    CHECK_EQ(twiml_dial("15551234567", out, sizeof out, &len), -EINVAL);
    CHECK_EQ(twiml_dial("+1555<Hangup/>", out, sizeof out, &len), -EINVAL);
    CHECK_EQ(twiml_dial("+12345678901234567", out, sizeof out, &len), -EINVAL);
    CHECK_EQ(twiml_dial("+15551234567", out, 20, &len), -ENOSPC);
}
