/* Fuzz target for the configuration loader: any bytes given as a configuration file must give
 * 0 or an error with a message, never a crash, leak or overflow. The environment is cleared so
 * that only the file decides. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int env_cleared;
    if (!env_cleared) {
        static const char *const names[] = {
            "OPENAI_API_KEY", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_PHONE_NUMBER",
            "JWT_SECRET",     "REDIS_URL",          "PUBLIC_BASE_URL"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            unsetenv(names[i]);
        env_cleared = 1;
    }
    struct config c;
    char err[512];
    if (config_parse("fuzz.json", (const char *)data, size, &c, err, sizeof err) == 0)
        config_free(&c);
    else if (strlen(err) == 0)
        abort(); /* every failure explains itself */
    return 0;
}
