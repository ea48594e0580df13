/* fdpass.c - descriptor passing over a connected Unix socket (SCM_RIGHTS), as the Swift library's UnixSocket
 * send(descriptor:message:) / receiveDescriptor(). */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* One message: one iovec (`iov`) and a control buffer of `size` bytes, zeroed. */
static struct msghdr message(struct iovec *iov, void *control, size_t size) {
    memset(control, 0, size);
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = size;
    return m;
}

/* The system calls alone (-1 with errno), for callers with their own error type: the Swift library's
 * UnixSocket uses these, so both languages pass descriptors with the same code. */
int shmh_fd_send_raw(int sock, int fd, const void *msg, size_t len) {
    char one = 0;
    struct iovec iov = {.iov_base = len ? (void *)msg : &one, .iov_len = len ? len : 1};
    union {
        struct cmsghdr header;
        char bytes[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr m = message(&iov, control.bytes, sizeof control.bytes);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    ssize_t n;
    do n = sendmsg(sock, &m, MSG_NOSIGNAL);
    while (n == -1 && errno == EINTR);
    return n == -1 ? -1 : 0;
}

int shmh_fd_recv_raw(int sock, void *msg, size_t cap, size_t *len) {
    char one;
    struct iovec iov = {.iov_base = cap ? msg : &one, .iov_len = cap ? cap : 1};
    union {
        struct cmsghdr header;
        char bytes[CMSG_SPACE(sizeof(int) * 8)];
    } control;
    struct msghdr m = message(&iov, control.bytes, sizeof control.bytes);
    ssize_t n;
    do n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
    while (n == -1 && errno == EINTR);
    if (n == -1) return -1;
    if (n == 0) {
        errno = ECONNRESET;
        return -1;
    }
    int received = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (received == -1) received = fd;
            else close(fd); /* one descriptor per message */
        }
    }
    if (m.msg_flags & MSG_CTRUNC) {
        if (received != -1) close(received);
        errno = EMSGSIZE;
        return -1;
    }
    if (received == -1) {
        errno = EBADMSG;
        return -1;
    }
    if (len) *len = cap ? (size_t)n : 0;
    return received;
}

int shmh_fd_send(int sock, int fd, const void *msg, size_t len) {
    const struct shmh_site site = {"send-fd", NULL, NULL};
    if (shmh_fd_send_raw(sock, fd, msg, len) == 0) return 0;
    int err = errno;
    if (err == EPIPE || err == ECONNRESET || err == ENOTCONN)
        return shmh_fail_refuse(&site, SHMH_NOT_FOUND, err, "sendmsg(SCM_RIGHTS): the peer is gone (%s)", strerror(err));
    return shmh_fail_call(&site, "sendmsg(SCM_RIGHTS)", SHMH_OP_GENERIC, err, "fd %d", fd);
}

int shmh_fd_recv(int sock, void *msg, size_t cap, size_t *len) {
    const struct shmh_site site = {"receive-fd", NULL, NULL};
    int received = shmh_fd_recv_raw(sock, msg, cap, len);
    if (received >= 0) return received;
    switch (errno) {
    case ECONNRESET: return shmh_fail_refuse(&site, SHMH_NOT_FOUND, ECONNRESET, "the peer closed without sending");
    case EMSGSIZE: return shmh_fail_refuse(&site, SHMH_KEY_ERROR, EMSGSIZE, "the control message was cut short");
    case EBADMSG: return shmh_fail_refuse(&site, SHMH_KEY_ERROR, EBADMSG, "the message carried no descriptor");
    default: return shmh_fail_call(&site, "recvmsg(SCM_RIGHTS)", SHMH_OP_GENERIC, errno, "socket %d", sock);
    }
}
