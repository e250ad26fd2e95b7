/* Fuzz target for common/form: arbitrary bytes as a form body. Checks memory safety, that the
 * documented arena size always suffices, and that every decoded string fits its reported length
 * and the arena. */
#include "common/form.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct form_field fields[64];
    size_t cap = FORM_ARENA_SIZE(size);
    char *arena = malloc(cap);
    if (arena == NULL)
        return 0;
    size_t n;
    int r = form_parse((const char *)data, size, fields, 64, arena, cap, &n);
    if (r == -ENOSPC)
        abort(); /* FORM_ARENA_SIZE promised enough */
    if (r != 0 && (r != -EINVAL && r != -E2BIG))
        abort();
    if (r == 0) {
        for (size_t i = 0; i < n; i++) {
            const struct form_field *f = &fields[i];
            if (f->name < arena || f->value + f->value_len >= arena + cap)
                abort();
            if (strlen(f->name) != f->name_len || strlen(f->value) != f->value_len)
                abort(); /* no NUL inside: raw and %00 NULs are refused */
        }
        (void)form_get(fields, n, "CallSid");
    }
    /* A short arena fails cleanly, never overruns. */
    if (size > 0)
        (void)form_parse((const char *)data, size, fields, 64, arena, size / 3, &n);
    free(arena);
    return 0;
}
