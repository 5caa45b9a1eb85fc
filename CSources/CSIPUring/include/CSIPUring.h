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
#include <sys/epoll.h> /* for Swift: Glibc's module map does not export it */

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

/**
 * Sends `count` (<= CSIP_UDP_BATCH_MAX) datagrams from non-blocking `fd` with one sendmmsg call: datagram i is
 * `data + offsets[i]`, `lengths[i]` bytes, to `destinations[i]` (`destination_lengths[i]` bytes of address).
 * Returns how many the kernel took (the rest were refused: buffers full), or -errno. EINTR is retried here.
 */
int csip_udp_send_batch(int fd, const uint8_t *data, const uint32_t *offsets, const uint32_t *lengths,
                        const struct sockaddr_storage *destinations, const uint32_t *destination_lengths,
                        unsigned count);

/**
 * Attaches a classic BPF program to a SO_REUSEPORT socket group that picks the socket by the datagram's source
 * address modulo `group_size`, so one client IP always lands on the same worker (whose rate-limit table then sees
 * all of that client's traffic). IPv4 hashes the whole address, IPv6 the low 32 bits of the address. Attach it to
 * one socket of the group (any). Returns 0 or -errno.
 */
int csip_attach_reuseport_steering(int fd, int ipv6, uint32_t group_size);

/**
 * sd_notify(3) without libsystemd: sends `state` ("READY=1", "STOPPING=1", "WATCHDOG=1", ...) as one datagram to
 * $NOTIFY_SOCKET (a path, or an abstract name starting with '@'). Returns 1 when sent, 0 when not run by systemd
 * (no NOTIFY_SOCKET), -errno on failure.
 */
int csip_sd_notify(const char *state);

/* ---------------------------------------------------------------------------------------------------------------
 * io_uring data path: one ring per worker, multishot recvmsg into a provided buffer ring, sendmsg from a slab of
 * send slots, completions decoded here so Swift sees plain events. The ring struct is opaque: liburing's types never
 * reach Swift (toolchain.md §1 pitfalls), and everything it owns is freed by csip_uring_destroy.
 * ------------------------------------------------------------------------------------------------------------- */

struct csip_uring;

/** Sizes of one ring. Zero fields take the defaults shown. */
struct csip_uring_options {
    /** Submission queue entries. Default 256. */
    uint32_t entries;
    /** Receive buffers in the provided ring; a power of two. Default 128. */
    uint32_t receive_buffers;
    /** Bytes per receive buffer, payload only (the recvmsg header is added). Default 65536. */
    uint32_t receive_buffer_size;
    /** Send slots. Default 256. */
    uint32_t send_slots;
    /** Bytes per send slot; larger datagrams are refused with -EMSGSIZE (send them another way). Default 8192. */
    uint32_t send_slot_size;
};

/** What a completion meant. */
enum {
    /** A datagram: payload, length, source. Recycle its buffer when done. */
    CSIP_EVENT_DATAGRAM = 1,
    /** A datagram arrived but failed validation (truncated name, bad header): dropped; recycle the buffer. */
    CSIP_EVENT_DATAGRAM_INVALID = 2,
    /** The provided buffers ran out (-ENOBUFS): datagrams are waiting in the socket; recycle and re-arm. */
    CSIP_EVENT_OUT_OF_BUFFERS = 3,
    /** A receive failed with `result` (-errno). */
    CSIP_EVENT_RECEIVE_ERROR = 4,
    /** A send finished: `result` is bytes sent or -errno. Its slot is free again. */
    CSIP_EVENT_SEND_DONE = 5,
};

struct csip_uring_event {
    uint32_t kind;
    /** The tag given to csip_uring_arm_receive or csip_uring_send (which socket). */
    uint32_t socket_tag;
    int32_t result;
    /** 1 when the receive must be armed again (the multishot request ended). */
    uint8_t needs_rearm;
    /** 1 when buffer_id names a buffer to recycle. */
    uint8_t has_buffer;
    /** 1 when the datagram was larger than the buffer (the payload is cut). */
    uint8_t truncated;
    uint8_t reserved;
    uint16_t buffer_id;
    uint16_t reserved2;
    const uint8_t *payload;
    uint32_t payload_length;
    uint32_t source_length;
    struct sockaddr_storage source;
};

/** Creates a ring. Returns 0, or -errno (-ENOSYS, -EPERM when io_uring is unavailable or refused: fall back). */
int csip_uring_create(struct csip_uring **ring, const struct csip_uring_options *options);
void csip_uring_destroy(struct csip_uring *ring);

/** Queues a multishot recvmsg on `fd`; its datagrams come back tagged `socket_tag`. 0 or -errno. */
int csip_uring_arm_receive(struct csip_uring *ring, int fd, uint32_t socket_tag);

/**
 * Copies `data` into a free send slot and queues a sendmsg to `to`. Sent with the next submit or wait.
 * 0, -EMSGSIZE (bigger than a slot), -EAGAIN (no free slot), -EBUSY (submission queue full even after a submit).
 */
int csip_uring_send(struct csip_uring *ring, int fd, uint32_t socket_tag, const uint8_t *data, size_t length,
                    const struct sockaddr_storage *to, uint32_t to_length);

/** Gives a receive buffer back to the kernel. */
void csip_uring_recycle(struct csip_uring *ring, uint16_t buffer_id);

/**
 * Submits what is queued, waits until `wait_for` completions are ready or `timeout_us` microseconds pass, and
 * decodes up to `capacity` ready completions into `events`. Returns the number of events (0 when nothing
 * completed) or -errno. Waiting for several completions with a short timeout batches wake-ups under load.
 */
int csip_uring_wait(struct csip_uring *ring, struct csip_uring_event *events, uint32_t capacity, uint32_t wait_for,
                    uint32_t timeout_us);

#ifdef __cplusplus
}
#endif

#endif
