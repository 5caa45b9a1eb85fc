/*
 * CSIPUring: the system-call glue Swift cannot reach by itself: batched datagram receive (recvmmsg needs
 * _GNU_SOURCE, which Swift's Glibc module is built without), reuseport steering, sd_notify, and the per-worker
 * io_uring ring (UDP datagrams and TCP streams).
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

/** Most datagrams one csip_udp_receive_batch or csip_udp_send_batch call takes. */
#define CSIP_UDP_BATCH_MAX 64

/** Per-datagram results of a batch receive. */
struct csip_datagram_info {
    uint32_t length;     /* bytes received (capped at the buffer size) */
    uint32_t truncated;  /* 1 when the datagram was larger than its buffer */
};

/** The recvmmsg headers of one batch of receive buffers, built once (csip_udp_receiver_create). */
struct csip_udp_receiver;

/**
 * Headers for `count` (1-CSIP_UDP_BATCH_MAX) datagrams: datagram i lands in `buffers + i * buffer_size`, its source
 * in `sources[i]`; both must outlive the receiver. Built once, so a receive resets only what the previous one
 * changed (a drain ends with a receive that finds nothing, which then costs nothing but the system call).
 * Returns NULL for bad arguments or no memory. Free with csip_udp_receiver_destroy.
 */
struct csip_udp_receiver *csip_udp_receiver_create(uint8_t *buffers, size_t buffer_size, unsigned count,
                                                   struct sockaddr_storage *sources);
void csip_udp_receiver_destroy(struct csip_udp_receiver *receiver);

/**
 * Receives up to the receiver's count of queued datagrams from non-blocking `fd` in one recvmmsg call, datagram
 * i's length in `info[i]`. Returns the number received, 0 when none is queued, or -errno. EINTR is retried here.
 */
int csip_udp_receive_batch(struct csip_udp_receiver *receiver, int fd, struct csip_datagram_info *info);

/**
 * Sends `count` (<= CSIP_UDP_BATCH_MAX) datagrams from non-blocking `fd` with one sendmmsg call: datagram i is
 * `data + offsets[i]`, `lengths[i]` bytes, to `destinations[i]` (`destination_lengths[i]` bytes of address).
 * Returns how many the kernel took (the rest were refused: buffers full), or -errno. EINTR is retried here.
 */
/** Asks for ICMP errors on an unconnected UDP socket (IP_RECVERR / IPV6_RECVERR): they queue on the socket's
    error queue, whose entries name the destination that caused them. 0 or -errno. */
int csip_udp_enable_errors(int fd, int ipv6);

/** Takes one entry off the socket's error queue: the original destination of the datagram that failed goes into
    *destination. Returns 1 for ICMP port unreachable (the peer has no socket there), 2 for any other error entry,
    0 when the queue is empty, -errno on failure. */
int csip_udp_take_error(int fd, struct sockaddr_storage *destination);

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

/**
 * The allocator's live bytes (`allocated`: what the program holds) and resident bytes (`resident`: pages the
 * allocator has touched, including caches), from jemalloc's mallctl found at run time. 0, or -ENOSYS when the
 * process allocator is not jemalloc, -EIO when it does not answer.
 */
int csip_heap_stats(uint64_t *allocated, uint64_t *resident);

/* Names the calling thread (at most 15 bytes kept). 0, or a negative errno. */
int csip_set_thread_name(const char *name);

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
    /**
     * Most stream requests in flight at once (armed receives, sends, connects; an accept needs none). Their
     * records are allocated 256 at a time as needed and kept until the ring is destroyed. Default 65536.
     */
    uint32_t max_stream_requests;
    /** CSIP_URING_* flags. Default 0. */
    uint32_t flags;
};

/**
 * Arm stream receives as single-shot recv even when the kernel supports multishot (what the ring falls back to by
 * itself when a multishot recv is refused with -EINVAL, kernels before 6.0). For tests and odd kernels.
 */
#define CSIP_URING_SINGLE_SHOT_STREAM_RECEIVE 1u

/** Largest csip_uring_stream_send payload. */
#define CSIP_STREAM_SEND_MAX (1u << 20)

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
    /**
     * A datagram send failed: `result` is -errno. Its slot is free again. A send that succeeds reports nothing (its
     * slot is freed as its completion is reaped): csip_uring_sends_in_flight counts those not yet completed.
     */
    CSIP_EVENT_SEND_FAILED = 5,
    /**
     * A connection arrived on a listener armed with csip_uring_arm_accept: `result` is the new connected fd
     * (non-blocking, close-on-exec; the caller owns it) or -errno; `source` is the peer (source_length 0 when the
     * peer was already gone); `socket_tag` is the listener's tag. needs_rearm: the multishot accept ended.
     */
    CSIP_EVENT_ACCEPTED = 6,
    /**
     * Bytes arrived on a connection armed with csip_uring_arm_stream_receive, in order: `payload`,
     * `payload_length` (== result) in a receive buffer to recycle. result 0: the peer closed (EOF). result < 0:
     * -errno; -ENOBUFS means the receive buffers ran out (the bytes wait in the socket: recycle, then re-arm);
     * -ECANCELED after csip_uring_cancel_stream. has_buffer may be set whatever the result: always recycle it.
     * needs_rearm: the receive ended; re-arm it only when the connection is still wanted (result > 0 or -ENOBUFS).
     */
    CSIP_EVENT_STREAM_DATA = 7,
    /** A csip_uring_stream_send finished: `result` is the full length sent, or -errno (part may have left). */
    CSIP_EVENT_STREAM_SENT = 8,
    /** A csip_uring_connect finished: `result` 0 (connected) or -errno (-ECONNREFUSED, -ETIMEDOUT, ...). */
    CSIP_EVENT_CONNECTED = 9,
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
    /** Stream events (STREAM_DATA, STREAM_SENT, CONNECTED): the caller's key, exactly as given (all 64 bits). */
    uint64_t stream_key;
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

/** Datagram sends queued by csip_uring_send whose completion has not been reaped yet. */
uint32_t csip_uring_sends_in_flight(const struct csip_uring *ring);

/** Gives a receive buffer back to the kernel. */
void csip_uring_recycle(struct csip_uring *ring, uint16_t buffer_id);

/*
 * Streams (TCP). The caller names each connection with a 64-bit `stream_key` (e.g. slot index + generation) that
 * comes back exactly in every event of that connection; the ring keeps it in a per-request record, not in
 * user_data. The ring never closes a descriptor: the caller owns every fd, including accepted ones.
 *
 * Closing a connection: csip_uring_cancel_stream(fd), then close(fd). Events for that key may still arrive
 * afterwards (completed before the cancel, or cancelled with -ECANCELED); check the key's generation, and recycle
 * every event that has_buffer, whatever its result.
 */

/**
 * Queues a multishot accept (SOCK_NONBLOCK | SOCK_CLOEXEC) on listening `listen_fd`; each connection comes back
 * as CSIP_EVENT_ACCEPTED tagged `socket_tag` (low 24 bits kept). Stop it with csip_uring_cancel_stream(listen_fd).
 * 0 or -errno.
 */
int csip_uring_arm_accept(struct csip_uring *ring, int listen_fd, uint32_t socket_tag);

/**
 * Queues a receive on connected `fd` into the shared receive buffers (the same group as datagrams): multishot
 * when the kernel has it (6.0), else single-shot (every event then needs_rearm). Arm once per connection and again
 * after an event with needs_rearm. 0, -EAGAIN (max_stream_requests in flight), -EBUSY (submission queue full).
 */
int csip_uring_arm_stream_receive(struct csip_uring *ring, int fd, uint64_t stream_key);

/**
 * Copies `length` (<= CSIP_STREAM_SEND_MAX) bytes of `data` (into a free send slot when they fit, else onto the
 * heap until the send completes) and queues a send with MSG_NOSIGNAL. A short send is continued here from the
 * remaining bytes, so the caller sees ONE CSIP_EVENT_STREAM_SENT per call: the full length, or -errno.
 *
 * Contract: at most ONE stream send in flight per fd. Queue further bytes yourself and send them after the
 * STREAM_SENT event; two sends in flight on one socket could interleave their bytes.
 *
 * 0, -EMSGSIZE (too long), -ENOMEM, -EAGAIN (max_stream_requests in flight), -EBUSY (submission queue full).
 */
int csip_uring_stream_send(struct csip_uring *ring, int fd, uint64_t stream_key, const uint8_t *data,
                           size_t length);

/**
 * Queues a connect of the caller's non-blocking socket `fd` to `to`; CSIP_EVENT_CONNECTED reports the outcome.
 * 0, -EINVAL, -EAGAIN (max_stream_requests in flight), -EBUSY (submission queue full).
 */
int csip_uring_connect(struct csip_uring *ring, int fd, uint64_t stream_key, const struct sockaddr_storage *to,
                       uint32_t to_length);

/**
 * Cancels every request on `fd` (receives, sends, connects, accepts) and submits at once: the kernel resolves
 * the fd while the call runs, so the caller may close(fd) as soon as it returns. A short send of `fd` still
 * being continued stops with -ECANCELED. Events for the fd may still arrive later (see above). When the cancel
 * cannot be submitted the socket is shut down instead (its requests then end by themselves) and -errno returned;
 * closing is still safe. Costs a scan of the stream records. 0 or -errno.
 */
int csip_uring_cancel_stream(struct csip_uring *ring, int fd);

/**
 * Cancels the multishot datagram receive (accept = 0) or accept (accept = 1) armed with `socket_tag`, and
 * nothing else: sends in flight on the same socket continue. The receive then ends with -ECANCELED (without
 * IORING_CQE_F_MORE); completions already queued still arrive first. 0 or -errno.
 */
int csip_uring_cancel_armed(struct csip_uring *ring, int accept, uint32_t socket_tag);

/**
 * Sends `length` bytes (at least 1) and `count` descriptors (SCM_RIGHTS, at most 64) as one message on the
 * connected SOCK_SEQPACKET socket `fd`. The descriptors stay open here: the peer gets its own. 0 or -errno.
 */
int csip_send_descriptors(int fd, const uint8_t *data, size_t length, const int *descriptors, uint32_t count);

/**
 * Receives one message from the SOCK_SEQPACKET socket `fd` into `data` (`capacity` bytes) and the descriptors
 * that came with it (close-on-exec) into `descriptors`, their number in *received. Returns the message length,
 * 0 when the peer closed, or -errno; -EMSGSIZE when the message or its descriptors did not fit (any received
 * descriptors are closed then).
 */
int csip_receive_descriptors(int fd, uint8_t *data, size_t capacity, int *descriptors, uint32_t capacity_count,
                             uint32_t *received);

/**
 * Starts `path` with `argv` and `envp` (NULL-terminated), its signal mask emptied and `inherit_fd` as its
 * descriptor `child_fd` (every other descriptor of ours is close-on-exec). The child's pid goes to *pid.
 * 0 or -errno.
 */
int csip_spawn_with_descriptor(const char *path, char *const argv[], char *const envp[], int inherit_fd,
                               int child_fd, int32_t *pid);

/**
 * Submits what is queued, waits until `wait_for` completions are ready or `timeout_us` microseconds pass, and
 * decodes up to `capacity` ready completions into `events`. Returns the number of events (0 when nothing the
 * caller needs completed: some completions are handled inside, e.g. a short send being continued) or -errno.
 * Waiting for several completions with a short timeout batches wake-ups under load.
 */
int csip_uring_wait(struct csip_uring *ring, struct csip_uring_event *events, uint32_t capacity, uint32_t wait_for,
                    uint32_t timeout_us);

#ifdef __cplusplus
}
#endif

#endif
