/* voicebridge entry point: parses the command line and starts the role asked for: the master
 * (-c FILE), checking a configuration (-t -c FILE), signalling a running master through its pid
 * file (-s reload|stop|quit|reopen -c FILE), the version, or (internal: the master re-executes
 * the binary this way) a worker with its inherited fds. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/version.h"
#include "master/master.h"
#include "master/pidfile.h"
#include "worker/worker.h"

#define WORKER_FD_CHAN 3 /* the order master/master.c passes them in */
#define WORKER_FD_BOARD 4
#define WORKER_FD_AREA 5
#define WORKER_FD_CONFIG 6
#define CONFIG_TEXT_MAX (4u << 20)

static void usage(FILE *f)
{
    fprintf(f, "usage: voicebridge -c FILE\n"
               "       voicebridge -t -c FILE\n"
               "       voicebridge -s reload|stop|quit|reopen -c FILE\n"
               "       voicebridge --version\n"
               "       voicebridge -h\n"
               "\n"
               "  -c FILE     the configuration file (JSON; see docs/configuration.md); without\n"
               "              -t or -s, run the master in the foreground\n"
               "  -t          check the configuration and the environment, then exit:\n"
               "              0 and \"configuration FILE is ok\", or 1 and the reason\n"
               "  -s SIGNAL   send the running master (found through pid_file) a signal:\n"
               "              reload (SIGHUP), stop (SIGTERM, drains calls), quit (SIGQUIT,\n"
               "              at once), reopen (SIGUSR1, reopen log files)\n"
               "  -h, --help  print this help\n"
               "  --version   print the version\n"
               "\n"
               "Operating it: docs/operations.md.\n");
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

/* -s: the master named by the configuration's pid file gets the signal. */
static int send_signal(const char *path, const char *name)
{
    static const struct { const char *name; int sig; } table[] = {
        {"reload", SIGHUP}, {"stop", SIGTERM}, {"quit", SIGQUIT}, {"reopen", SIGUSR1}};
    int sig = 0;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(name, table[i].name) == 0)
            sig = table[i].sig;
    if (!sig) {
        fprintf(stderr, "voicebridge: -s %s: not one of reload, stop, quit, reopen\n", name);
        return 2;
    }
    struct config c;
    char err[1024];
    if (config_load(path, &c, err, sizeof err) < 0) {
        /* The pid file's name is in the file; a reload would refuse this file anyway. */
        fprintf(stderr, "voicebridge: %s\n", err);
        return 1;
    }
    pid_t pid = pidfile_read(c.pid_file);
    if (pid < 0) {
        fprintf(stderr, "voicebridge: pid file %s: %s (is the master running?)\n", c.pid_file,
                pid == -EINVAL ? "does not hold a pid" : strerror(-pid));
        config_free(&c);
        return 1;
    }
    if (kill(pid, sig) == -1) {
        fprintf(stderr, "voicebridge: signalling pid %d from %s: %s\n", (int)pid, c.pid_file,
                strerror(errno));
        config_free(&c);
        return 1;
    }
    printf("sent %s to the master (pid %d)\n", strsignal(sig), (int)pid);
    config_free(&c);
    return 0;
}

/* The worker role: the configuration comes as the bytes the master checked (fd 6). */
static int worker_main(const char *path, const char *spec)
{
    unsigned slot, id, gen;
    char tail;
    if (sscanf(spec, "%u:%u:%u%c", &slot, &id, &gen, &tail) != 3) {
        fprintf(stderr, "voicebridge: --worker %s: not SLOT:ID:GENERATION\n", spec);
        return 2;
    }
    char *text = malloc(CONFIG_TEXT_MAX + 1); /* owned here, freed below */
    size_t len = 0;
    while (text && len < CONFIG_TEXT_MAX) {
        ssize_t r = pread(WORKER_FD_CONFIG, text + len, CONFIG_TEXT_MAX - len, (off_t)len);
        if (r == -1 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == -1)
                len = 0, perror("voicebridge worker: reading the configuration");
            break;
        }
        len += (size_t)r;
    }
    close(WORKER_FD_CONFIG);
    struct config cfg;
    char err[1024];
    if (!text || len == 0 || config_parse(path, text, len, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "voicebridge worker: %s\n", text && len ? err : "no configuration");
        free(text);
        return 1;
    }
    free(text);
    log_max_level = cfg.log_level;
    if (log_open(cfg.log_file) != 0)
        fprintf(stderr, "voicebridge worker: cannot open log file %s\n", cfg.log_file);
    struct worker_opts o = {.slot = slot, .id = id, .generation = gen,
                            .chan_fd = WORKER_FD_CHAN, .board_fd = WORKER_FD_BOARD,
                            .area_fd = WORKER_FD_AREA};
    int rc = worker_run(&cfg, &o);
    config_free(&cfg);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    enum { OPT_VERSION = 256, OPT_WORKER };
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {"worker", required_argument, NULL, OPT_WORKER},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *signal_name = NULL, *worker_spec = NULL;
    int test = 0, opt;

    while ((opt = getopt_long(argc, argv, "c:ts:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 't':
            test = 1;
            break;
        case 's':
            signal_name = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case OPT_VERSION:
            printf("voicebridge %s\n", VOICEBRIDGE_VERSION);
            return 0;
        case OPT_WORKER:
            worker_spec = optarg;
            break;
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
        if (test || signal_name)
            fprintf(stderr, "voicebridge: -%c needs -c FILE\n", test ? 't' : 's');
        usage(stderr);
        return 2;
    }
    if (test && signal_name) {
        fprintf(stderr, "voicebridge: -t and -s do not go together\n");
        return 2;
    }
    if (worker_spec)
        return worker_main(config_path, worker_spec);
    if (test)
        return config_test(config_path);
    if (signal_name)
        return send_signal(config_path, signal_name);
    /* Workers re-execute this very binary: /proc/self/exe survives the file being replaced. */
    return master_run(config_path, "/proc/self/exe");
}
