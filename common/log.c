/* Logging: formats a whole line (time, level, pid, thread context, message) into a stack
 * buffer and writes it with one write(2), so lines from threads and processes never interleave.
 * The target fd is swapped atomically on reopen; the old one is closed after the swap. */
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum log_level log_max_level = LOG_INFO;

static _Atomic int log_fd = STDERR_FILENO;
static char log_path[4096];
static _Thread_local char log_context[64];
static _Thread_local const char *log_context_borrowed; /* log_use_context's, not ours */

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

int log_level_parse(const char *name, enum log_level *out)
{
    for (int i = 0; i <= LOG_DEBUG; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *out = LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

static int log_open_fd(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    return fd == -1 ? -errno : fd;
}

int log_open(const char *path)
{
    int fd = STDERR_FILENO;
    if (path != NULL && strcmp(path, "-") != 0) {
        if (strlen(path) >= sizeof log_path)
            return -ENAMETOOLONG;
        fd = log_open_fd(path);
        if (fd < 0)
            return fd;
        if (path != log_path)
            memmove(log_path, path, strlen(path) + 1);
    } else {
        log_path[0] = '\0';
    }
    int old = atomic_exchange(&log_fd, fd);
    if (old != STDERR_FILENO && old != fd)
        close(old);
    return 0;
}

int log_reopen(void)
{
    if (log_path[0] == '\0')
        return 0;
    return log_open(log_path);
}

void log_set_context(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(log_context, sizeof log_context, fmt, ap);
    va_end(ap);
}

void log_use_context(const char *ctx)
{
    log_context_borrowed = ctx;
}

void log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    const char *ctx = log_context_borrowed != NULL ? log_context_borrowed : log_context;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%d]%s%s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], (int)getpid(),
                     ctx[0] ? " " : "", ctx);
    if (n < 0)
        return;
    if ((size_t)n < sizeof line) {
        int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
        if (m > 0)
            n = (size_t)(n + m) < sizeof line - 1 ? n + m : (int)sizeof line - 2;
    } else {
        n = sizeof line - 2;
    }
    line[n++] = '\n';
    int fd = atomic_load(&log_fd);
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(fd, line + off, n - off);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report it */
        }
        off += w;
    }
}

void log_write(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, fmt, ap);
    va_end(ap);
}
