/* The master's pid file, through which `voicebridge -s SIGNAL` (and init scripts) find it. */
#ifndef VB_MASTER_PIDFILE_H
#define VB_MASTER_PIDFILE_H

#include <stddef.h>
#include <sys/types.h>

/* Writes our pid to path. Refuses (-EEXIST, with the holder's pid in err) when the file names
 * another live process: a second master on the same configuration would fight the first over
 * its addresses and its pid file. A stale file is replaced. Returns 0 or -errno. */
int pidfile_write(const char *path, char *err, size_t err_len);

/* Removes path if it still holds our pid (a newer master may have replaced it). */
void pidfile_remove(const char *path);

/* The pid in path: > 0, or -ENOENT (no file), -EINVAL (not a pid), -errno. */
pid_t pidfile_read(const char *path);

#endif
