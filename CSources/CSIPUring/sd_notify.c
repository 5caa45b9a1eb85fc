/* The systemd notification protocol: one datagram of "KEY=VALUE" lines to the socket named in NOTIFY_SOCKET. */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "include/CSIPUring.h"

int csip_sd_notify(const char *state) {
    if (state == NULL) return -EINVAL;
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || path[0] == '\0') return 0;
    size_t path_length = strlen(path);
    struct sockaddr_un address;
    memset(&address, 0, sizeof(address));
    address.sun_family = AF_UNIX;
    if (path[0] != '/' && path[0] != '@') return -EAFNOSUPPORT;
    if (path_length >= sizeof(address.sun_path)) return -ENAMETOOLONG;
    memcpy(address.sun_path, path, path_length);
    if (path[0] == '@') address.sun_path[0] = '\0'; /* abstract namespace */
    socklen_t length = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_length);

    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    ssize_t sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&address, length);
    int error = errno;
    if (close(fd) != 0 && sent >= 0) return -errno;
    if (sent < 0) return -error;
    return 1;
}
