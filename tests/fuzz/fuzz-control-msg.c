/* Fuzz target for worker/control_msg: arbitrary bytes as a message from the Redis control
 * channel (any node, or anyone who can PUBLISH, writes it). Checks memory safety, that an
 * accepted command holds only what the decoder promises, and that encoding it again and
 * decoding the result gives the same command. */
#include "worker/control_msg.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct control_msg m;
    int rc = control_msg_decode((const char *)data, size, &m);
    if (rc != 0) {
        if (rc != -EINVAL && rc != -ENOMEM)
            abort();
        return 0;
    }
    if (!control_id_ok(m.id, sizeof m.id - 1))
        abort();
    if (m.op == CALL_CTL_TRANSFER && !control_e164_ok(m.to))
        abort();
    if (m.op == CALL_CTL_SAY && (m.text == NULL || strlen(m.text) == 0 ||
                                 strlen(m.text) > CONTROL_TEXT_MAX))
        abort();
    char *again = control_msg_encode(&m);
    if (again) {
        struct control_msg m2;
        if (control_msg_decode(again, strlen(again), &m2) != 0 || m2.op != m.op ||
            strcmp(m2.id, m.id) != 0 || strcmp(m2.call_id, m.call_id) != 0 ||
            strcmp(m2.to, m.to) != 0 || (m.text && strcmp(m.text, m2.text) != 0))
            abort();
        control_msg_clear(&m2);
        free(again);
    }
    control_msg_clear(&m);
    return 0;
}
