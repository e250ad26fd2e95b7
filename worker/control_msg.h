/* The control command a node publishes on the owning worker's channel ({prefix}ctl:{node}:
 * {worker}) for a live call: {"v":1,"id":..,"call_id":..,"op":"hangup"|"say"|"transfer",
 * "text":..,"to":..}. Encoding for the API side, strict decoding for the owner (the channel is
 * input from outside: anything malformed is refused, never trusted). Pure, no I/O. */
#ifndef VB_WORKER_CONTROL_MSG_H
#define VB_WORKER_CONTROL_MSG_H

#include <stddef.h>

#include "worker/call_pair.h"

#define CONTROL_TEXT_MAX 4096 /* bytes of text a say command may carry */
#define CONTROL_MSG_MAX 32768 /* a published message, escaped text included */

struct control_msg {
    char id[40];      /* command id: 1-39 of [A-Za-z0-9_-] */
    char call_id[65]; /* call_store_id_ok */
    enum call_control_op op;
    char to[17];      /* transfer: E.164 */
    char *text;       /* say: owned, 1..CONTROL_TEXT_MAX bytes of UTF-8; else NULL */
};

/* Compact JSON (owned, free()), or NULL (out of memory). */
char *control_msg_encode(const struct control_msg *m);

/* Parses and validates; on success fills m (m->text owned: control_msg_clear) and returns 0;
 * -EINVAL for anything malformed (m holds nothing to free then). */
int control_msg_decode(const char *s, size_t len, struct control_msg *m);
void control_msg_clear(struct control_msg *m);

/* "+" and 8-15 digits, the first not 0. */
int control_e164_ok(const char *s);
/* 1-39 of [A-Za-z0-9_-]. */
int control_id_ok(const char *s, size_t max);

#endif
