/* The master <-> worker channel (see chan.h): sendmsg/recvmsg with SCM_RIGHTS, as nginx and
 * HAProxy pass listeners and connections, but one fixed-size message per datagram on a
 * SEQPACKET socket so there is no framing to get wrong. */
#include "common/chan.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHAN_FDS_MAX 4 /* room to receive (and close) a few fds a confused peer might send */

int chan_pair(int fds[2])
{
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) == -1)
        return -errno;
    return 0;
}

int chan_send(int sock, uint16_t type, uint16_t listener, uint64_t seq, uint64_t arg, int fd)
{
    struct chan_msg m = {.magic = CHAN_MAGIC, .type = type, .listener = listener, .seq = seq,
                         .arg = arg};
    struct iovec iov = {.iov_base = &m, .iov_len = sizeof m};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        memset(&ctl, 0, sizeof ctl);
        mh.msg_control = ctl.buf;
        mh.msg_controllen = sizeof ctl.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    for (;;) {
        ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n == (ssize_t)sizeof m)
            return 0;
        if (n >= 0)
            return -EIO; /* a datagram socket sends all or nothing: not expected */
        if (errno == EINTR)
            continue;
        if (errno == EWOULDBLOCK)
            return -EAGAIN;
        return errno == ECONNRESET ? -EPIPE : -errno;
    }
}

int chan_recv(int sock, struct chan_msg *msg, int *fd)
{
    struct chan_msg m;
    struct iovec iov = {.iov_base = &m, .iov_len = sizeof m};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * CHAN_FDS_MAX)];
    } ctl;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                        .msg_controllen = sizeof ctl.buf};
    ssize_t n;
    *fd = -1;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    while (n == -1 && errno == EINTR);
    if (n == -1)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;

    /* Collect every fd that came, whatever else is wrong, so none leaks. */
    int got[CHAN_FDS_MAX * 2], n_got = 0, bad = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
            bad = 1;
            continue;
        }
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k && n_got < (int)(sizeof got / sizeof got[0]); i++)
            memcpy(&got[n_got++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    if (n == 0 && n_got == 0)
        return 0; /* SEQPACKET: a zero-length read is the peer's end of stream */
    if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
        bad = 1;
    if (n != (ssize_t)sizeof m || m.magic != CHAN_MAGIC)
        bad = 1;
    else if (m.type == CHAN_CONN ? n_got != 1
                                 : (n_got != 0 || (m.type != CHAN_DRAIN && m.type != CHAN_REOPEN &&
                                                   m.type != CHAN_READY)))
        bad = 1;
    if (bad) {
        for (int i = 0; i < n_got; i++)
            close(got[i]);
        return -EPROTO;
    }
    *msg = m;
    *fd = n_got ? got[0] : -1;
    return 1;
}
