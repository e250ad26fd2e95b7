/* TwiML for the voice webhooks: <Connect><Stream> to our media-stream WebSocket, with the call's
 * facts as <Parameter>s (they come back in Twilio's "start" message). Everything is XML-escaped
 * and checked against Twilio's per-parameter limit. Plain arguments, no configuration struct;
 * output goes to a caller buffer. */
#ifndef VB_WORKER_TWIML_H
#define VB_WORKER_TWIML_H

#include <stddef.h>

/* Twilio: a Parameter's name + value must be under 500 characters. We count bytes, which is
 * never less than characters, so whatever passes here passes there. */
#define TWIML_PARAM_LIMIT 500

/* The media-stream path every worker serves. */
#define TWIML_MEDIA_STREAM_PATH "/api/voice-calls/media-stream"

struct twiml_param {
    const char *name;
    const char *value; /* NULL = not known: the parameter is left out */
};

/* Derives the stream URL from the public base URL: https://host[:port][/prefix] ->
 * wss://host[:port][/prefix]/api/voice-calls/media-stream (http -> ws; trailing '/' dropped).
 * Returns 0, -EINVAL when base is not an absolute http(s) URL with a host, or has userinfo, a
 * query, a fragment or a character outside RFC 3986, or -ENOSPC when cap is short. */
int twiml_stream_url(const char *public_base_url, char *out, size_t cap);

/* Writes <?xml ...?><Response><Connect action="..."><Stream url="..."><Parameter .../>...
 * </Stream></Connect></Response> to out (NUL-terminated, length in *out_len). action_url (NULL:
 * none) is where Twilio asks what to do once the stream has ended. Returns 0, or: -EINVAL bad base URL
 * or a parameter without a name; -E2BIG a name + value of TWIML_PARAM_LIMIT bytes or more;
 * -EILSEQ a name or value that is not UTF-8 or holds a character XML 1.0 cannot carry (C0
 * controls other than tab/CR/LF, U+FFFE, U+FFFF); -ENOSPC out too small. */
int twiml_connect_stream(const char *public_base_url, const char *action_url,
                         const struct twiml_param *params, size_t n, char *out, size_t cap,
                         size_t *out_len);

/* <Response>[<Say>say</Say>]<Hangup/></Response>: what a call hears after its stream ended.
 * say NULL: just hang up. Returns 0, -EILSEQ (say not XML-safe text) or -ENOSPC. */
int twiml_say_hangup(const char *say, char *out, size_t cap, size_t *out_len);

/* <Response><Dial>number</Dial></Response>: a transferred call's stream has ended. number is
 * "+" and 1-15 digits. Returns 0, -EINVAL (not such a number) or -ENOSPC. */
int twiml_dial(const char *number, char *out, size_t cap, size_t *out_len);

/* Bytes of value that fit beside name under TWIML_PARAM_LIMIT, cut at a UTF-8 character
 * boundary: for optional display fields (contactName, businessName) that may be shortened
 * rather than refused. */
size_t twiml_param_fit(const char *name, const char *value);

#endif
