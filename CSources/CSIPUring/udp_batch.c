#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "include/CSIPUring.h"

int csip_udp_receive_batch(int fd, uint8_t *buffers, size_t buffer_size, unsigned count,
                           struct sockaddr_storage *sources, struct csip_datagram_info *info) {
    if (buffers == NULL || sources == NULL || info == NULL || count == 0 || count > CSIP_UDP_BATCH_MAX) {
        return -EINVAL;
    }
    struct mmsghdr headers[CSIP_UDP_BATCH_MAX];
    struct iovec vectors[CSIP_UDP_BATCH_MAX];
    memset(headers, 0, sizeof(headers[0]) * count);
    for (unsigned i = 0; i < count; i++) {
        vectors[i].iov_base = buffers + (size_t)i * buffer_size;
        vectors[i].iov_len = buffer_size;
        headers[i].msg_hdr.msg_name = &sources[i];
        headers[i].msg_hdr.msg_namelen = sizeof(sources[i]);
        headers[i].msg_hdr.msg_iov = &vectors[i];
        headers[i].msg_hdr.msg_iovlen = 1;
    }
    int received;
    do {
        received = recvmmsg(fd, headers, count, MSG_DONTWAIT, NULL);
    } while (received < 0 && errno == EINTR);
    if (received < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
    for (int i = 0; i < received; i++) {
        int truncated = (headers[i].msg_hdr.msg_flags & MSG_TRUNC) != 0 || headers[i].msg_len > buffer_size;
        info[i].length = truncated ? (uint32_t)buffer_size : headers[i].msg_len;
        info[i].truncated = truncated ? 1u : 0u;
    }
    return received;
}
