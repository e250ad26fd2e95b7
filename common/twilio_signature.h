/* X-Twilio-Signature (protocols.md §2): base64(HMAC-SHA1(auth token, URL + the form parameters
 * sorted by name, each as name + value)), the JSON-body variant (bodySHA256 in the URL, the URL
 * alone signed), and the URL variants a check must accept because Twilio and its SDKs disagree on
 * them (port written or not, a trailing slash on WebSocket URLs). Pure computation: the worker's
 * guard rebuilds the URL and collects the parameters. */
#ifndef VB_COMMON_TWILIO_SIGNATURE_H
#define VB_COMMON_TWILIO_SIGNATURE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/form.h"

#define TWILIO_SIGNATURE_LEN 28 /* base64 of 20 bytes */
#define TWILIO_SIGNATURE_URL_MAX 4096
#define TWILIO_SIGNATURE_PARAMS_MAX 128

/* The signature of url with params (n may be 0: a GET, an upgrade, or a JSON body) into out
 * (NUL-terminated). Parameters are sorted by name, then value, in byte order; an exact duplicate
 * (same name and value) is appended once when dedup is true (what twilio-python does), every
 * time when false. Returns 0, -E2BIG (more than TWILIO_SIGNATURE_PARAMS_MAX parameters) or -EIO. */
int twilio_signature_compute(const char *token, size_t token_len, const char *url,
                             const struct form_field *params, size_t n, bool dedup,
                             char out[TWILIO_SIGNATURE_LEN + 1]);

/* Options of twilio_signature_verify. */
#define TWILIO_SIG_TRAILING_SLASH 1u /* also try the path with a '/' added (or removed) */

/* Checks header (the X-Twilio-Signature value; NULL: missing) against url and the form
 * parameters. Every variant is tried and compared in constant time: the URL as given, without its
 * port, with the scheme's default port added (:443 https/wss, :80 http/ws), each with and without
 * dropping duplicate parameters, and with TWILIO_SIG_TRAILING_SLASH each of those with the path's
 * trailing slash toggled. Returns 0 on a match, -EACCES (no match or no header), -EINVAL (url not
 * absolute, or longer than TWILIO_SIGNATURE_URL_MAX), -E2BIG or -EIO. */
int twilio_signature_verify(const char *token, size_t token_len, const char *url,
                            const struct form_field *params, size_t n, const char *header,
                            unsigned flags);

/* The JSON-body variant: url must carry bodySHA256=<64 hex> in its query, equal (case-
 * insensitively) to SHA-256 of body, and header must sign the URL alone (variants as above).
 * Returns 0, -EACCES (no or wrong signature), -EBADMSG (bodySHA256 missing or not the body's
 * hash), -EINVAL or -EIO. */
int twilio_signature_verify_json(const char *token, size_t token_len, const char *url,
                                 const void *body, size_t body_len, const char *header,
                                 unsigned flags);

#endif
