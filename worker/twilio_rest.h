/* Twilio's REST Calls API from the worker main loop: create a call, end a live call, redirect
 * a live call to new TwiML (transfer with <Dial>). Built on the pooled common/http_client
 * (keep-alive, TLS verification, one deadline per request); answers are parsed with jansson
 * into a fixed struct and classified, so the call API can answer 201, 502 (Twilio refused, its
 * code and message passed on) or 503 (Twilio unreachable). Never used from a call thread. */
#ifndef VB_WORKER_TWILIO_REST_H
#define VB_WORKER_TWILIO_REST_H

#include <stdbool.h>
#include <stddef.h>

struct http_client;

#define TWILIO_REST_RESPONSE_MAX 65536 /* a call resource is ~2 KB; anything longer is refused */
#define TWILIO_REST_TWIML_MAX 4000     /* Twilio's limit on the Twiml parameter */
#define TWILIO_REST_SID_MAX 64         /* account and call SIDs in URL paths: [A-Za-z0-9]{1,64} */

/* How a request ended. */
enum twilio_rest_outcome {
    TWILIO_REST_OK = 0,       /* 2xx with a call resource (sid and status present) */
    TWILIO_REST_REFUSED,      /* Twilio answered 4xx/5xx: code and message are Twilio's */
    TWILIO_REST_GONE,         /* update of a call that has already ended (404, code 20404) */
    TWILIO_REST_INVALID,      /* an answer that is not Twilio's JSON (or cut, or too big) */
    TWILIO_REST_UNREACHABLE,  /* no answer: refused, reset, DNS, TLS verification, timeout */
    TWILIO_REST_CANCELED,     /* the http_client was closed under the request */
};

/* The part of Twilio's call resource we use; strings NUL-terminated, "" when Twilio sent null
 * or nothing, cut to fit (Twilio's values are far shorter). */
struct twilio_call_resource {
    char sid[TWILIO_REST_SID_MAX + 1];
    char status[16];    /* queued, ringing, in-progress, ... */
    char direction[24]; /* outbound-api, ... */
    char to[64], from[64];
    char answered_by[24];
    char date_created[40]; /* RFC 2822 */
    char start_time[40], end_time[40];
    char duration[16]; /* seconds, as Twilio sends it */
    char price[24], price_unit[8];
};

/* What the callback receives; valid only during the callback. */
struct twilio_rest_result {
    enum twilio_rest_outcome outcome;
    int http_status; /* 0 when no response arrived */
    int error;       /* UNREACHABLE/INVALID/CANCELED: the negative errno from the client */
    long code;       /* Twilio's error code (21211, 20003, ...), 0 if it gave none */
    const char *message;   /* never NULL: Twilio's message, or ours in words ("timed out") */
    const char *more_info; /* never NULL: Twilio's link, or "" */
    struct twilio_call_resource call; /* OK (and, when Twilio sent one, GONE): the resource */
};

typedef void twilio_rest_done_fn(void *arg, const struct twilio_rest_result *res);

/* The HTTP status the call API answers for an outcome: OK 201, REFUSED/GONE/INVALID 502,
 * UNREACHABLE 503, CANCELED 503. */
int twilio_rest_api_status(enum twilio_rest_outcome o);

/* Short name of an outcome for logs ("ok", "refused", ...). */
const char *twilio_rest_outcome_name(enum twilio_rest_outcome o);

struct twilio_rest_settings {
    const char *api_url;     /* config twilio.api_url: "http(s)://host[:port]", no path */
    const char *account_sid; /* TWILIO_ACCOUNT_SID */
    const char *auth_token;  /* TWILIO_AUTH_TOKEN (secret: kept only as the Basic header) */
    unsigned timeout_ms;     /* per request, 0 = 10000 */
};

/* Embedded by its owner; no handles of its own. Main-loop thread only. */
struct twilio_rest {
    struct http_client *http; /* borrowed: the owner closes it (cancelling what is running) */
    unsigned timeout_ms;
    unsigned long requests, failures; /* for metrics: sent, and ended in anything but OK/GONE */
    char calls_url[2200];             /* {api_url}/2010-04-01/Accounts/{sid}/Calls */
    char auth[256];                   /* "Basic ..." (a secret: never logged) */
};

/* Prepares tr. http must be initialised on the main loop (with a TLS config for https) and
 * outlive every request; s's strings are copied. Returns 0, or -EINVAL (no or bad api_url, an
 * account SID that is not [A-Za-z0-9]{1,64}, no auth token, or credentials Basic auth cannot
 * carry), -ENOSPC (api_url too long). */
int twilio_rest_init(struct twilio_rest *tr, struct http_client *http,
                     const struct twilio_rest_settings *s);

/* Wipes the stored credentials. Requests still running keep their callback (they end through
 * the http_client, with CANCELED when it is closed). */
void twilio_rest_clear(struct twilio_rest *tr);

/* What to ask Twilio for when placing a call. */
struct twilio_call_create {
    const char *to;   /* E.164 (checked here, see twilio_rest_e164_ok) */
    const char *from; /* E.164: TWILIO_PHONE_NUMBER */
    const char *url;  /* our TwiML webhook, asked with POST */
    const char *status_callback; /* NULL: none; else asked with POST for initiated, ringing,
                                    answered, completed */
    bool record;                 /* dual-channel recording */
    const char *recording_status_callback; /* with record: NULL = none */
    const char *machine_detection;         /* NULL, "Enable" or "DetectMessageEnd" */
    unsigned ring_timeout_s;               /* Timeout: 0 = Twilio's default, else 1..600 */
};

/* POST {calls_url}.json. On 0, exactly one done(arg, res) follows, from the loop (never inside
 * this call). Returns 0, or (no callback): -EINVAL (a bad field: to/from not E.164, no url, an
 * unknown machine_detection, ring_timeout_s over 600), -E2BIG (fields too long), -ENOMEM, or
 * http_client_request's errors (-ENOBUFS when too many requests are queued, -ESHUTDOWN). */
int twilio_rest_call_create(struct twilio_rest *tr, const struct twilio_call_create *c,
                            twilio_rest_done_fn *done, void *arg);

/* Ends a live call: POST {calls_url}/{call_sid}.json with Status=completed. A call that had
 * already ended answers GONE. Returns and calls back as twilio_rest_call_create; -EINVAL for a
 * call_sid that is not [A-Za-z0-9]{1,64}. */
int twilio_rest_call_hangup(struct twilio_rest *tr, const char *call_sid,
                            twilio_rest_done_fn *done, void *arg);

/* Ends a call still queued or ringing: Status=canceled (Twilio ignores completed there).
 * Returns and calls back as twilio_rest_call_hangup. */
int twilio_rest_call_cancel(struct twilio_rest *tr, const char *call_sid,
                            twilio_rest_done_fn *done, void *arg);

/* Replaces a live call's TwiML with twiml (which ends its <Connect><Stream>): POST
 * {calls_url}/{call_sid}.json with Twiml=... Returns as twilio_rest_call_hangup, and -E2BIG for
 * TwiML over TWILIO_REST_TWIML_MAX bytes. */
int twilio_rest_call_redirect(struct twilio_rest *tr, const char *call_sid, const char *twiml,
                              twilio_rest_done_fn *done, void *arg);

/* Writes <?xml ...?><Response>[<Say>say</Say>]<Dial>target</Dial></Response> (both escaped)
 * for a transfer: target is E.164, "sip:..." or "client:...". Returns 0, -EINVAL (empty
 * target, or one with characters no number, SIP or client address has), -EILSEQ (say is not
 * XML-safe text), -ENOSPC (cap short). */
int twilio_rest_dial_twiml(const char *target, const char *say, char *out, size_t cap,
                           size_t *out_len);

/* '+' then 2..15 digits, the first not 0 (as config's TWILIO_PHONE_NUMBER check). */
bool twilio_rest_e164_ok(const char *s);

#endif
