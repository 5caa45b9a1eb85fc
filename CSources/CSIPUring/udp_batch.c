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

int csip_udp_send_batch(int fd, const uint8_t *data, const uint32_t *offsets, const uint32_t *lengths,
                        const struct sockaddr_storage *destinations, const uint32_t *destination_lengths,
                        unsigned count) {
    if (data == NULL || offsets == NULL || lengths == NULL || destinations == NULL || destination_lengths == NULL ||
        count > CSIP_UDP_BATCH_MAX) {
        return -EINVAL;
    }
    if (count == 0) return 0;
    struct mmsghdr headers[CSIP_UDP_BATCH_MAX];
    struct iovec vectors[CSIP_UDP_BATCH_MAX];
    memset(headers, 0, sizeof(headers[0]) * count);
    for (unsigned i = 0; i < count; i++) {
        vectors[i].iov_base = (void *)(uintptr_t)(data + offsets[i]);
        vectors[i].iov_len = lengths[i];
        headers[i].msg_hdr.msg_name = (void *)(uintptr_t)&destinations[i];
        headers[i].msg_hdr.msg_namelen = destination_lengths[i];
        headers[i].msg_hdr.msg_iov = &vectors[i];
        headers[i].msg_hdr.msg_iovlen = 1;
    }
    unsigned sent = 0;
    while (sent < count) {
        int result = sendmmsg(fd, headers + sent, count - sent, MSG_DONTWAIT);
        if (result < 0) {
            if (errno == EINTR) continue;
            if (sent > 0 || errno == EAGAIN || errno == EWOULDBLOCK) return (int)sent;
            return -errno;
        }
        if (result == 0) break;
        sent += (unsigned)result;
    }
    return (int)sent;
}
