/*
 * CSIPUring: the system-call glue Swift cannot reach by itself. Today: batched datagram receive (recvmmsg needs
 * _GNU_SOURCE, which Swift's Glibc module is built without). The io_uring ring lands here next.
 *
 * Rules: no global mutable state, -errno returns, every return value checked, csip_ prefix.
 */
#ifndef CSIPURING_H
#define CSIPURING_H

#include <stdint.h> /* first: see toolchain.md §1 on header order */
#include <stddef.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Most datagrams one csip_udp_receive_batch call takes. */
#define CSIP_UDP_BATCH_MAX 64

/** Per-datagram results of a batch receive. */
struct csip_datagram_info {
    uint32_t length;     /* bytes received (capped at the buffer size) */
    uint32_t truncated;  /* 1 when the datagram was larger than its buffer */
};

/**
 * Receives up to `count` (<= CSIP_UDP_BATCH_MAX) queued datagrams from non-blocking `fd` in one recvmmsg call.
 * Datagram i lands in `buffers + i * buffer_size`, its source in `sources[i]`, its length in `info[i]`.
 * Returns the number received, 0 when none is queued, or -errno. EINTR is retried here.
 */
int csip_udp_receive_batch(int fd, uint8_t *buffers, size_t buffer_size, unsigned count,
                           struct sockaddr_storage *sources, struct csip_datagram_info *info);

#ifdef __cplusplus
}
#endif

#endif
