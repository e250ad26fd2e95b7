/* voicebridge entry point: parses the command line and starts the role asked for.
 * For now the program reports its version and runtime choices; the serving roles arrive with
 * the call bridge and the process model. */
#include <stdio.h>
#include <string.h>

#include "common/version.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: voicebridge --version\n");
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("voicebridge %s\n", VOICEBRIDGE_VERSION);
        return 0;
    }
    if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
