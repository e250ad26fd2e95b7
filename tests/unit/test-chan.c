/* The master <-> worker channel: messages and fds pass intact, and every malformed message is
 * refused with its fds closed (counted in /proc/self/fd). */
#include "common/chan.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/lib/testnet.h"
#include "tests/unit/testing.h"

TEST(chan_passes_a_message_and_its_fd)
{
    int ch[2], p[2];
    CHECK_EQ(chan_pair(ch), 0);
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    CHECK_EQ(chan_send(ch[0], CHAN_CONN, 3, 42, 7, p[1]), 0);
    close(p[1]);
    struct chan_msg m;
    int fd;
    CHECK_EQ(chan_recv(ch[1], &m, &fd), 1);
    CHECK_EQ(m.type, CHAN_CONN);
    CHECK_EQ(m.listener, 3);
    CHECK_EQ(m.seq, 42u);
    CHECK_EQ(m.arg, 7u);
    CHECK(fd >= 0);
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    CHECK_EQ(write(fd, "x", 1), 1); /* the very pipe we sent */
    char c;
    CHECK_EQ(read(p[0], &c, 1), 1);
    CHECK_EQ(c, 'x');
    close(fd);
    CHECK_EQ(chan_recv(ch[1], &m, &fd), -EAGAIN);
    CHECK_EQ(chan_send(ch[1], CHAN_READY, 0, 1, 0, -1), 0);
    CHECK_EQ(chan_recv(ch[0], &m, &fd), 1);
    CHECK_EQ(m.type, CHAN_READY);
    CHECK_EQ(fd, -1);
    close(ch[1]);
    CHECK_EQ(chan_recv(ch[0], &m, &fd), 0); /* end of stream */
    CHECK_EQ(chan_send(ch[0], CHAN_DRAIN, 0, 2, 0, -1), -EPIPE);
    close(ch[0]);
    close(p[0]);
}

/* Sends raw bytes with n_fds copies of fd attached. */
static void send_raw(int sock, const void *buf, size_t len, int fd, int n_fds)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    char ctl[CMSG_SPACE(sizeof(int) * 4)];
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (n_fds > 0) {
        memset(ctl, 0, sizeof ctl);
        mh.msg_control = ctl;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
        for (int i = 0; i < n_fds; i++)
            memcpy(CMSG_DATA(c) + i * sizeof(int), &fd, sizeof fd);
    }
    ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    (void)n;
}

TEST(chan_refuses_malformed_messages_and_closes_their_fds)
{
    int ch[2], p[2];
    CHECK_EQ(chan_pair(ch), 0);
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    int before = test_fd_count();
    struct chan_msg good = {.magic = CHAN_MAGIC, .type = CHAN_CONN};
    struct chan_msg m;
    int fd;

    send_raw(ch[0], &good, sizeof good, p[1], 2); /* two fds for one connection */
    CHECK_EQ(chan_recv(ch[1], &m, &fd), -EPROTO);
    CHECK_EQ(fd, -1);
    send_raw(ch[0], &good, sizeof good, -1, 0); /* a connection without its fd */
    CHECK_EQ(chan_recv(ch[1], &m, &fd), -EPROTO);
    struct chan_msg drain = {.magic = CHAN_MAGIC, .type = CHAN_DRAIN};
    send_raw(ch[0], &drain, sizeof drain, p[1], 1); /* an fd where none belongs */
    CHECK_EQ(chan_recv(ch[1], &m, &fd), -EPROTO);
    struct chan_msg wrong = good;
    wrong.magic = 0x12345678;
    send_raw(ch[0], &wrong, sizeof wrong, p[1], 1);
    CHECK_EQ(chan_recv(ch[1], &m, &fd), -EPROTO);
    struct chan_msg unknown = {.magic = CHAN_MAGIC, .type = 99};
    send_raw(ch[0], &unknown, sizeof unknown, -1, 0);
    CHECK_EQ(chan_recv(ch[1], &m, &fd), -EPROTO);
    send_raw(ch[0], &good, sizeof good - 1, p[1], 1); /* short */
    CHECK_EQ(chan_recv(ch[1], &m, &fd), -EPROTO);
    char big[sizeof good + 8];
    memcpy(big, &good, sizeof good);
    send_raw(ch[0], big, sizeof big, p[1], 1); /* long: truncated on receipt */
    CHECK_EQ(chan_recv(ch[1], &m, &fd), -EPROTO);
    CHECK_EQ(test_fd_count(), before); /* every fd that came was closed */
    /* and the channel still works */
    CHECK_EQ(chan_send(ch[0], CHAN_REOPEN, 0, 9, 0, -1), 0);
    CHECK_EQ(chan_recv(ch[1], &m, &fd), 1);
    CHECK_EQ(m.type, CHAN_REOPEN);
    close(ch[0]);
    close(ch[1]);
    close(p[0]);
    close(p[1]);
}

TEST(chan_send_says_eagain_when_the_peer_is_full)
{
    int ch[2];
    CHECK_EQ(chan_pair(ch), 0);
    int rc = 0;
    for (int i = 0; i < 100000 && rc == 0; i++)
        rc = chan_send(ch[0], CHAN_DRAIN, 0, (uint64_t)i, 0, -1);
    CHECK_EQ(rc, -EAGAIN);
    struct chan_msg m;
    int fd;
    CHECK_EQ(chan_recv(ch[1], &m, &fd), 1);
    CHECK_EQ(m.seq, 0u); /* in order */
    close(ch[0]);
    close(ch[1]);
}
