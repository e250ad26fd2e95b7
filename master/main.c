/* voicebridge entry point: parses the command line and starts the role asked for: checking a
 * configuration (-t -c FILE), reporting the version, or serving (-c FILE). Until the
 * master/worker process model lands, serving runs one worker that listens itself. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "common/version.h"
#include "worker/worker.h"

/* Runs in the foreground until SIGINT/SIGTERM. */
static int serve(const char *path)
{
    struct config cfg;
    char err[512];
    if (config_load(path, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "voicebridge: %s\n", err);
        return 1;
    }
    log_max_level = cfg.log_level;
    if (log_open(cfg.log_file) != 0) {
        fprintf(stderr, "voicebridge: cannot open log file %s\n", cfg.log_file);
        config_free(&cfg);
        return 1;
    }
    const char *warnings[16];
    size_t n = config_warnings(&cfg, warnings, 16);
    for (size_t i = 0; i < n && i < 16; i++)
        log_warn("%s", warnings[i]);
    int rc = worker_run(&cfg);
    config_free(&cfg);
    return rc == 0 ? 0 : 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: voicebridge -c FILE\n"
               "       voicebridge -t -c FILE\n"
               "       voicebridge --version\n"
               "       voicebridge -h\n"
               "\n"
               "  -c FILE     the configuration file (JSON; see docs/configuration.md)\n"
               "  -t          check the configuration and the environment, then exit:\n"
               "              0 and \"configuration FILE is ok\", or 1 and the reason\n"
               "  -h, --help  print this help\n"
               "  --version   print the version\n"
               "\n"
               "Serving calls (-c FILE without -t) is not available in this build yet.\n");
}

/* -t: 0 when FILE and the environment make a valid configuration; warnings do not fail it. */
static int config_test(const char *path)
{
    struct config c;
    char err[1024];
    const char *warnings[16];
    if (config_load(path, &c, err, sizeof err) < 0) {
        fprintf(stderr, "voicebridge: %s\n", err);
        fprintf(stderr, "voicebridge: configuration %s test failed\n", path);
        return 1;
    }
    size_t n = config_warnings(&c, warnings, sizeof warnings / sizeof warnings[0]);
    for (size_t i = 0; i < n && i < sizeof warnings / sizeof warnings[0]; i++)
        fprintf(stderr, "voicebridge: warning: %s\n", warnings[i]);
    config_free(&c);
    printf("configuration %s is ok\n", path);
    return 0;
}

int main(int argc, char **argv)
{
    enum { OPT_VERSION = 256 };
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    int test = 0, opt;

    while ((opt = getopt_long(argc, argv, "c:th", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 't':
            test = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case OPT_VERSION:
            printf("voicebridge %s\n", VOICEBRIDGE_VERSION);
            return 0;
        default: /* getopt_long has said what was wrong */
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "voicebridge: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (config_path == NULL) {
        if (test)
            fprintf(stderr, "voicebridge: -t needs -c FILE\n");
        usage(stderr);
        return 2;
    }
    if (test)
        return config_test(config_path);
    return serve(config_path);
}
