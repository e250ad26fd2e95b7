/* Logging: one macro family, the level checked before any formatting, every line carrying the
 * process/thread context ("w=2 call=CA…") set with log_set_context. Lines go to stderr or to a
 * file that log_reopen re-opens (SIGUSR1, for logrotate). Thread-safe: one write(2) per line. */
#ifndef VB_COMMON_LOG_H
#define VB_COMMON_LOG_H

#include <stdarg.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern enum log_level log_max_level;

/* Parses "error", "warn", "info", "debug"; returns 0 or -EINVAL. */
int log_level_parse(const char *name, enum log_level *out);
/* path NULL or "-" logs to stderr. Returns 0 or -errno (the old target stays on error). */
int log_open(const char *path);
int log_reopen(void);
/* Context prefix for lines logged from this thread; copied, truncated to 63 bytes. */
void log_set_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Lines from this thread carry ctx instead, until called again (NULL: back to the thread's own
 * context). Not copied: a thread switching between many calls points at each call's prefix
 * without formatting it; the caller resets it before ctx goes away. */
void log_use_context(const char *ctx);

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vwrite(enum log_level level, const char *fmt, va_list ap);

#define log_at(level, ...)                                                                   \
    do {                                                                                     \
        if ((level) <= log_max_level)                                                        \
            log_write((level), __VA_ARGS__);                                                 \
    } while (0)
#define log_error(...) log_at(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_at(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_at(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_DEBUG, __VA_ARGS__)

#endif
