/* Handing listening sockets to a successor process: descriptors over a Unix socket (SCM_RIGHTS), and starting
 * the successor with one end of that socket. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "include/CSIPUring.h"

enum { MAX_DESCRIPTORS = 64 };

int csip_send_descriptors(int fd, const uint8_t *data, size_t length, const int *descriptors, uint32_t count) {
    if (fd < 0 || data == NULL || length == 0 || count > MAX_DESCRIPTORS || (count > 0 && descriptors == NULL)) {
        return -EINVAL;
    }
    struct iovec part = {.iov_base = (void *)data, .iov_len = length};
    union {
        char buffer[CMSG_SPACE(sizeof(int) * MAX_DESCRIPTORS)];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr message = {.msg_iov = &part, .msg_iovlen = 1};
    if (count > 0) {
        message.msg_control = control.buffer;
        message.msg_controllen = CMSG_SPACE(sizeof(int) * count);
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int) * count);
        memcpy(CMSG_DATA(header), descriptors, sizeof(int) * count);
    }
    ssize_t sent;
    do {
        sent = sendmsg(fd, &message, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent < 0) return -errno;
    return (size_t)sent == length ? 0 : -EMSGSIZE;
}

int csip_receive_descriptors(int fd, uint8_t *data, size_t capacity, int *descriptors, uint32_t capacity_count,
                             uint32_t *received) {
    if (fd < 0 || data == NULL || capacity == 0 || descriptors == NULL || received == NULL) return -EINVAL;
    *received = 0;
    struct iovec part = {.iov_base = data, .iov_len = capacity};
    union {
        char buffer[CMSG_SPACE(sizeof(int) * MAX_DESCRIPTORS)];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr message = {.msg_iov = &part, .msg_iovlen = 1, .msg_control = control.buffer,
                             .msg_controllen = sizeof(control.buffer)};
    ssize_t length;
    do {
        length = recvmsg(fd, &message, MSG_CMSG_CLOEXEC);
    } while (length < 0 && errno == EINTR);
    if (length < 0) return -errno;
    uint32_t count = 0;
    int overflow = (message.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header != NULL; header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
        size_t in_header = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < in_header; i++) {
            int descriptor;
            memcpy(&descriptor, CMSG_DATA(header) + i * sizeof(int), sizeof(int));
            if (count < capacity_count) {
                descriptors[count++] = descriptor;
            } else {
                overflow = 1;
                (void)close(descriptor);
            }
        }
    }
    if (overflow) {
        for (uint32_t i = 0; i < count; i++) (void)close(descriptors[i]);
        return -EMSGSIZE;
    }
    *received = count;
    return (int)length;
}

int csip_spawn_with_descriptor(const char *path, char *const argv[], char *const envp[], int inherit_fd,
                               int child_fd, int32_t *pid) {
    if (path == NULL || argv == NULL || envp == NULL || inherit_fd < 0 || child_fd < 0 || pid == NULL) {
        return -EINVAL;
    }
    /* dup2 onto the same number would keep close-on-exec set: move the descriptor first. */
    int source = inherit_fd;
    if (source == child_fd) {
        source = fcntl(inherit_fd, F_DUPFD_CLOEXEC, child_fd + 1);
        if (source < 0) return -errno;
    }
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) goto out_source;
    rc = posix_spawnattr_init(&attributes);
    if (rc != 0) goto out_actions;
    sigset_t empty;
    if (sigemptyset(&empty) != 0) {
        rc = EINVAL;
        goto out_attributes;
    }
    /* Our signal mask blocks the signals the main thread waits for; the successor sets up its own. */
    rc = posix_spawnattr_setsigmask(&attributes, &empty);
    if (rc == 0) rc = posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions, source, child_fd);
    if (rc == 0) {
        pid_t child = 0;
        rc = posix_spawn(&child, path, &actions, &attributes, argv, envp);
        if (rc == 0) *pid = (int32_t)child;
    }
out_attributes:
    (void)posix_spawnattr_destroy(&attributes);
out_actions:
    (void)posix_spawn_file_actions_destroy(&actions);
out_source:
    if (source != inherit_fd) (void)close(source);
    return -rc;
}
