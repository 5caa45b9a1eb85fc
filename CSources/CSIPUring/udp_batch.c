#define _GNU_SOURCE
#include <errno.h>
#include <time.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "include/CSIPUring.h"

struct csip_udp_receiver {
    unsigned count;
    unsigned filled; /* entries the last receive filled: the kernel rewrote their msg_namelen */
    size_t buffer_size;
    struct mmsghdr headers[CSIP_UDP_BATCH_MAX];
    struct iovec vectors[CSIP_UDP_BATCH_MAX];
};

struct csip_udp_receiver *csip_udp_receiver_create(uint8_t *buffers, size_t buffer_size, unsigned count,
                                                   struct sockaddr_storage *sources) {
    if (buffers == NULL || sources == NULL || buffer_size == 0 || count == 0 || count > CSIP_UDP_BATCH_MAX) {
        return NULL;
    }
    struct csip_udp_receiver *receiver = calloc(1, sizeof(*receiver));
    if (receiver == NULL) return NULL;
    receiver->count = count;
    receiver->buffer_size = buffer_size;
    for (unsigned i = 0; i < count; i++) {
        receiver->vectors[i].iov_base = buffers + (size_t)i * buffer_size;
        receiver->vectors[i].iov_len = buffer_size;
        receiver->headers[i].msg_hdr.msg_name = &sources[i];
        receiver->headers[i].msg_hdr.msg_namelen = sizeof(sources[i]);
        receiver->headers[i].msg_hdr.msg_iov = &receiver->vectors[i];
        receiver->headers[i].msg_hdr.msg_iovlen = 1;
    }
    return receiver;
}

void csip_udp_receiver_destroy(struct csip_udp_receiver *receiver) {
    free(receiver);
}

int csip_udp_receive_batch(struct csip_udp_receiver *receiver, int fd, struct csip_datagram_info *info) {
    if (receiver == NULL || info == NULL) return -EINVAL;
    /* recvmmsg writes msg_namelen, msg_flags and msg_len of the entries it fills, and only those; the address
     * length is an input too, so it goes back to the full size. */
    for (unsigned i = 0; i < receiver->filled; i++) {
        receiver->headers[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
    }
    receiver->filled = 0;
    int received;
    do {
        received = recvmmsg(fd, receiver->headers, receiver->count, MSG_DONTWAIT, NULL);
    } while (received < 0 && errno == EINTR);
    if (received < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
    receiver->filled = (unsigned)received;
    size_t buffer_size = receiver->buffer_size;
    for (int i = 0; i < received; i++) {
        const struct mmsghdr *header = &receiver->headers[i];
        int truncated = (header->msg_hdr.msg_flags & MSG_TRUNC) != 0 || header->msg_len > buffer_size;
        info[i].length = truncated ? (uint32_t)buffer_size : header->msg_len;
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
    unsigned refused = 0;
    while (sent < count) {
        int result = sendmmsg(fd, headers + sent, count - sent, MSG_DONTWAIT);
        if (result < 0) {
            if (errno == EINTR) continue;
            /* An earlier datagram's ICMP error (IP_RECVERR), reported on this send: it was not sent; again. */
            if (errno == ECONNREFUSED && refused++ < count + 3) continue;
            if (sent > 0 || errno == EAGAIN || errno == EWOULDBLOCK) return (int)sent;
            return -errno;
        }
        if (result == 0) break;
        sent += (unsigned)result;
    }
    return (int)sent;
}

int csip_udp_enable_errors(int fd, int ipv6) {
    int one = 1;
    int result = ipv6 ? setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof(one))
                      : setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof(one));
    return result == 0 ? 0 : -errno;
}

int csip_udp_take_error(int fd, struct sockaddr_storage *destination) {
    if (destination == NULL) return -EINVAL;
    uint8_t payload[64];
    uint8_t control[512];
    struct iovec vector = {.iov_base = payload, .iov_len = sizeof(payload)};
    struct msghdr message;
    memset(&message, 0, sizeof(message));
    memset(destination, 0, sizeof(*destination));
    message.msg_name = destination;
    message.msg_namelen = sizeof(*destination);
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof(control);
    ssize_t received;
    do {
        received = recvmsg(fd, &message, MSG_ERRQUEUE | MSG_DONTWAIT);
    } while (received < 0 && errno == EINTR);
    if (received < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header != NULL; header = CMSG_NXTHDR(&message, header)) {
        int isError = (header->cmsg_level == IPPROTO_IP && header->cmsg_type == IP_RECVERR)
            || (header->cmsg_level == IPPROTO_IPV6 && header->cmsg_type == IPV6_RECVERR);
        if (!isError) continue;
        struct sock_extended_err error;
        memcpy(&error, CMSG_DATA(header), sizeof(error));
        int fromICMP = error.ee_origin == SO_EE_ORIGIN_ICMP || error.ee_origin == SO_EE_ORIGIN_ICMP6;
        return fromICMP && error.ee_errno == ECONNREFUSED ? 1 : 2;
    }
    return 2;
}
