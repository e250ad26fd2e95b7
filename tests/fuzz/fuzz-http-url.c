/* Fuzz the HTTP client's URL parser: any bytes as a URL. No crash or overrun; an accepted URL
 * has a host, a port in range and a path starting with '/' free of spaces and controls. */
#include <stdlib.h>
#include <string.h>

#include "common/http_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char url[4096];
    if (size >= sizeof url)
        return 0;
    memcpy(url, data, size);
    url[size] = '\0';
    struct http_url u;
    if (http_url_parse(url, &u) == 0) {
        if (u.host[0] == '\0' || u.port == 0 || u.port > 65535 || u.path[0] != '/')
            abort();
        for (const char *p = u.path; *p; p++)
            if ((unsigned char)*p <= 0x20 || *p == '#')
                abort();
    }
    return 0;
}
