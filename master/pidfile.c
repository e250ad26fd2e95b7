/* Pid file helpers (see pidfile.h). */
#include "master/pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

pid_t pidfile_read(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return -errno;
    char buf[32];
    ssize_t n;
    do
        n = read(fd, buf, sizeof buf - 1);
    while (n == -1 && errno == EINTR);
    int err = errno;
    close(fd);
    if (n < 0)
        return -err;
    buf[n] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    if (end == buf || (*end != '\n' && *end != '\0') || pid <= 0 || pid > 0x3fffffff)
        return -EINVAL;
    return (pid_t)pid;
}

int pidfile_write(const char *path, char *err, size_t err_len)
{
    pid_t old = pidfile_read(path);
    if (old > 0 && old != getpid() && (kill(old, 0) == 0 || errno == EPERM)) {
        snprintf(err, err_len, "%s names pid %d, which is running: is another master using it?",
                 path, (int)old);
        return -EEXIST;
    }
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        snprintf(err, err_len, "pid file path too long");
        return -ENAMETOOLONG;
    }
    /* Written aside and renamed, so a reader never sees a half-written pid. */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == -1) {
        int e = errno;
        snprintf(err, err_len, "pid file %s: %s", tmp, strerror(e));
        return -e;
    }
    char line[24];
    int len = snprintf(line, sizeof line, "%d\n", (int)getpid());
    ssize_t w;
    do
        w = write(fd, line, (size_t)len);
    while (w == -1 && errno == EINTR);
    int e = w == len ? 0 : (w == -1 ? errno : EIO);
    if (close(fd) == -1 && e == 0)
        e = errno;
    if (e == 0 && rename(tmp, path) == -1)
        e = errno;
    if (e != 0) {
        unlink(tmp);
        snprintf(err, err_len, "pid file %s: %s", path, strerror(e));
        return -e;
    }
    return 0;
}

void pidfile_remove(const char *path)
{
    if (pidfile_read(path) == getpid())
        unlink(path);
}
