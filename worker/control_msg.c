/* Control command codec over jansson: the message is small and rare, so a tree is fine here. */
#include "worker/control_msg.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int control_id_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

int control_e164_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 9 || n > 16 || s[0] != '+' || s[1] == '0')
        return 0;
    for (size_t i = 1; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

char *control_msg_encode(const struct control_msg *m)
{
    json_t *o = json_pack("{s:i, s:s, s:s, s:s}", "v", 1, "id", m->id, "call_id", m->call_id,
                          "op", call_control_op_name(m->op));
    if (o == NULL)
        return NULL;
    if (m->op == CALL_CTL_SAY && m->text)
        json_object_set_new(o, "text", json_string(m->text));
    if (m->op == CALL_CTL_TRANSFER)
        json_object_set_new(o, "to", json_string(m->to));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static int copy_field(json_t *o, const char *key, char *out, size_t cap)
{
    const char *v = json_string_value(json_object_get(o, key));
    if (v == NULL || strlen(v) >= cap)
        return -EINVAL;
    memcpy(out, v, strlen(v) + 1);
    return 0;
}

int control_msg_decode(const char *s, size_t len, struct control_msg *m)
{
    memset(m, 0, sizeof *m);
    if (len > CONTROL_MSG_MAX)
        return -EINVAL;
    json_t *o = json_loadb(s, len, JSON_REJECT_DUPLICATES, NULL);
    int rc = -EINVAL;
    char op[16];
    if (o == NULL || !json_is_object(o) || json_integer_value(json_object_get(o, "v")) != 1 ||
        copy_field(o, "id", m->id, sizeof m->id) != 0 || !control_id_ok(m->id, sizeof m->id - 1) ||
        copy_field(o, "call_id", m->call_id, sizeof m->call_id) != 0 ||
        !control_id_ok(m->call_id, 64) || copy_field(o, "op", op, sizeof op) != 0)
        goto out;
    if (strcmp(op, "hangup") == 0) {
        m->op = CALL_CTL_HANGUP;
    } else if (strcmp(op, "transfer") == 0) {
        m->op = CALL_CTL_TRANSFER;
        if (copy_field(o, "to", m->to, sizeof m->to) != 0 || !control_e164_ok(m->to))
            goto out;
    } else if (strcmp(op, "say") == 0) {
        m->op = CALL_CTL_SAY;
        json_t *t = json_object_get(o, "text");
        const char *text = json_string_value(t);
        /* json_string_length counts bytes; an embedded NUL would cut the text short: refused */
        if (text == NULL || json_string_length(t) == 0 || json_string_length(t) > CONTROL_TEXT_MAX ||
            strlen(text) != json_string_length(t))
            goto out;
        if ((m->text = strdup(text)) == NULL) {
            rc = -ENOMEM;
            goto out;
        }
    } else {
        goto out;
    }
    rc = 0;
out:
    json_decref(o);
    if (rc != 0)
        memset(m, 0, sizeof *m);
    return rc;
}

void control_msg_clear(struct control_msg *m)
{
    free(m->text);
    m->text = NULL;
}
