/*
 * io_uring glue: ring + provided buffer ring + send slots, one context per worker (no globals).
 * Shape follows liburing's examples/io_uring-udp.c: multishot recvmsg with IOSQE_BUFFER_SELECT, validation with
 * io_uring_recvmsg_validate before any byte is touched, -ENOBUFS treated as back-pressure, batched completions.
 *
 * Streams (TCP): multishot accept, multishot recv from the same buffer group (plain recv: the payload starts at
 * the buffer start), send with short sends continued here, connect, cancel by fd. Their 64-bit keys do not fit in
 * user_data, so each stream request has a record in a table owned by the ring; user_data names the record.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>

#include <linux/io_uring.h>
#include <liburing.h>

#include "include/CSIPUring.h"

enum {
    KIND_RECEIVE = 1,
    KIND_SEND = 2,
    KIND_ACCEPT = 3,
    KIND_STREAM = 4, /* slot bits = stream record index */
    KIND_CANCEL = 5,
    BUFFER_GROUP = 7,
    RECORDS_PER_CHUNK = 256,
    /* recvmsg output in each buffer: struct io_uring_recvmsg_out, then the source address, then the payload. */
    RECEIVE_HEADROOM = (int)(sizeof(struct io_uring_recvmsg_out) + sizeof(struct sockaddr_storage)),
};

struct send_slot {
    struct msghdr message;
    struct iovec vector;
    struct sockaddr_storage destination;
    int32_t next_free;
    int fd;
    /* Sends retried after ECONNREFUSED (see csip_uring_wait). */
    uint8_t refused_retries;
};

/* A UDP socket with IP_RECVERR fails its next send with ECONNREFUSED after any peer answered ICMP port
   unreachable, whatever that send's destination: the error belongs to an earlier datagram. Such a send is
   submitted again, a few times at most. */
#define CSIP_REFUSED_RETRIES 3

enum stream_op {
    OP_RECEIVE_MULTISHOT = 1,
    OP_RECEIVE_SINGLE = 2,
    OP_SEND = 3,
    OP_CONNECT = 4,
};

/* One stream request in flight. Records live in chunks that never move (the kernel may read `address` and `data`
 * until the request is submitted or completes), linked into a free list when idle. */
struct stream_record {
    uint64_t key;
    int32_t fd;
    int32_t next_free;
    uint8_t op;         /* enum stream_op; 0 when free */
    uint8_t cancelled;  /* csip_uring_cancel_stream ran for fd: never resubmit */
    uint16_t reserved;
    int32_t send_slot;  /* OP_SEND: slot holding the bytes, or -1 when they are on the heap */
    uint8_t *data;      /* OP_SEND: the bytes (slot memory or heap) */
    uint32_t length;    /* OP_SEND: total bytes */
    uint32_t done;      /* OP_SEND: bytes the kernel took so far */
    uint32_t address_length;
    struct sockaddr_storage address; /* OP_CONNECT */
};

struct csip_uring {
    struct io_uring ring;
    struct io_uring_buf_ring *buffer_ring;
    size_t buffer_ring_bytes; /* one mapping: ring entries, then the buffers */
    uint8_t *buffers;
    uint32_t buffer_size; /* headroom + payload */
    uint32_t buffer_count;
    struct msghdr receive_template;
    struct send_slot *slots;
    uint8_t *slot_data;
    uint32_t slot_count;
    uint32_t slot_size;
    int32_t free_slot;
    uint32_t sends_in_flight; /* datagram sends queued whose completion has not been reaped */
    struct stream_record **record_chunks;
    uint32_t record_chunk_count;
    uint32_t record_count; /* allocated records: record_chunk_count * RECORDS_PER_CHUNK */
    uint32_t max_records;
    int32_t free_record;
    uint32_t single_shot_receive; /* multishot recv refused (or not wanted): arm single-shot */
};

/* user_data: kind in bits 56-63, socket tag in 32-55, slot in 0-31 (NIO's URingUserData packing). */
static inline uint64_t pack_user_data(uint32_t kind, uint32_t tag, uint32_t slot) {
    return ((uint64_t)kind << 56) | ((uint64_t)(tag & 0xFFFFFFu) << 32) | slot;
}

static uint32_t or_default(uint32_t value, uint32_t fallback) {
    return value ? value : fallback;
}

static struct stream_record *record_at(struct csip_uring *u, uint32_t index) {
    if (index >= u->record_count) return NULL;
    return &u->record_chunks[index / RECORDS_PER_CHUNK][index % RECORDS_PER_CHUNK];
}

void csip_uring_destroy(struct csip_uring *u) {
    if (u == NULL) return;
    if (u->ring.ring_fd > 0) io_uring_queue_exit(&u->ring);
    if (u->buffer_ring != NULL && u->buffer_ring != MAP_FAILED) munmap(u->buffer_ring, u->buffer_ring_bytes);
    for (uint32_t i = 0; i < u->record_count; i++) {
        struct stream_record *r = record_at(u, i);
        if (r->op == OP_SEND && r->send_slot < 0) free(r->data);
    }
    for (uint32_t c = 0; c < u->record_chunk_count; c++) free(u->record_chunks[c]);
    free(u->record_chunks);
    free(u->slots);
    free(u->slot_data);
    free(u);
}

int csip_uring_create(struct csip_uring **out, const struct csip_uring_options *options) {
    if (out == NULL) return -EINVAL;
    *out = NULL;
    struct csip_uring_options defaults = {0};
    if (options == NULL) options = &defaults;
    uint32_t entries = or_default(options->entries, 256);
    uint32_t buffer_count = or_default(options->receive_buffers, 128);
    uint32_t payload_size = or_default(options->receive_buffer_size, 65536);
    if ((buffer_count & (buffer_count - 1)) != 0 || buffer_count > 32768) return -EINVAL;

    struct csip_uring *u = calloc(1, sizeof(*u));
    if (u == NULL) return -ENOMEM;
    u->ring.ring_fd = -1;
    /* The ring is created and used by one worker thread only: SINGLE_ISSUER + DEFER_TASKRUN (kernel 6.1) run
     * completion work when the worker asks for events instead of interrupting it per packet. Older kernels
     * refuse those flags with -EINVAL: fall back to COOP_TASKRUN (5.19), then to none. */
    const unsigned flag_sets[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]) && rc == -EINVAL; i++) {
        rc = io_uring_queue_init(entries, &u->ring, flag_sets[i]);
    }
    if (rc < 0) {
        u->ring.ring_fd = -1;
        csip_uring_destroy(u);
        return rc;
    }

    u->buffer_count = buffer_count;
    u->buffer_size = payload_size + RECEIVE_HEADROOM;
    size_t ring_bytes = (size_t)buffer_count * sizeof(struct io_uring_buf);
    size_t page = 4096;
    ring_bytes = (ring_bytes + page - 1) & ~(page - 1);
    u->buffer_ring_bytes = ring_bytes + (size_t)buffer_count * u->buffer_size;
    void *mapping = mmap(NULL, u->buffer_ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mapping == MAP_FAILED) {
        rc = -errno;
        u->buffer_ring = NULL;
        csip_uring_destroy(u);
        return rc;
    }
    u->buffer_ring = mapping;
    u->buffers = (uint8_t *)mapping + ring_bytes;
    struct io_uring_buf_reg registration;
    memset(&registration, 0, sizeof(registration));
    registration.ring_addr = (unsigned long)u->buffer_ring;
    registration.ring_entries = buffer_count;
    registration.bgid = BUFFER_GROUP;
    rc = io_uring_register_buf_ring(&u->ring, &registration, 0);
    if (rc < 0) { /* needs kernel >= 5.19 */
        csip_uring_destroy(u);
        return rc;
    }
    io_uring_buf_ring_init(u->buffer_ring);
    int mask = io_uring_buf_ring_mask(buffer_count);
    for (uint32_t i = 0; i < buffer_count; i++) {
        io_uring_buf_ring_add(u->buffer_ring, u->buffers + (size_t)i * u->buffer_size, u->buffer_size,
                              (unsigned short)i, mask, (int)i);
    }
    io_uring_buf_ring_advance(u->buffer_ring, (int)buffer_count);

    u->receive_template.msg_namelen = sizeof(struct sockaddr_storage);
    u->receive_template.msg_controllen = 0;

    u->slot_count = or_default(options->send_slots, 256);
    u->slot_size = or_default(options->send_slot_size, 8192);
    u->slots = calloc(u->slot_count, sizeof(struct send_slot));
    u->slot_data = malloc((size_t)u->slot_count * u->slot_size);
    if (u->slots == NULL || u->slot_data == NULL) {
        csip_uring_destroy(u);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < u->slot_count; i++) {
        u->slots[i].next_free = (i + 1 < u->slot_count) ? (int32_t)(i + 1) : -1;
    }
    u->free_slot = 0;
    u->max_records = or_default(options->max_stream_requests, 65536);
    u->free_record = -1;
    u->single_shot_receive = (options->flags & CSIP_URING_SINGLE_SHOT_STREAM_RECEIVE) ? 1 : 0;
    *out = u;
    return 0;
}

/* A free stream record (adding a chunk when none is left), or -EAGAIN / -ENOMEM. */
static int32_t take_record(struct csip_uring *u) {
    if (u->free_record < 0) {
        if (u->record_count >= u->max_records) return -EAGAIN; /* rounded up to whole chunks */
        struct stream_record **chunks =
            realloc(u->record_chunks, (size_t)(u->record_chunk_count + 1) * sizeof(*chunks));
        if (chunks == NULL) return -ENOMEM;
        u->record_chunks = chunks;
        struct stream_record *chunk = calloc(RECORDS_PER_CHUNK, sizeof(*chunk));
        if (chunk == NULL) return -ENOMEM;
        u->record_chunks[u->record_chunk_count++] = chunk;
        uint32_t first = u->record_count;
        u->record_count += RECORDS_PER_CHUNK;
        for (uint32_t i = RECORDS_PER_CHUNK; i-- > 0;) {
            chunk[i].next_free = u->free_record;
            u->free_record = (int32_t)(first + i);
        }
    }
    int32_t index = u->free_record;
    struct stream_record *r = record_at(u, (uint32_t)index);
    u->free_record = r->next_free;
    r->next_free = -1;
    r->cancelled = 0;
    r->send_slot = -1;
    r->data = NULL;
    r->length = 0;
    r->done = 0;
    return index;
}

static void release_record(struct csip_uring *u, uint32_t index) {
    struct stream_record *r = record_at(u, index);
    if (r == NULL || r->op == 0) return;
    if (r->op == OP_SEND) {
        if (r->send_slot >= 0) {
            u->slots[r->send_slot].next_free = u->free_slot;
            u->free_slot = r->send_slot;
        } else {
            free(r->data);
        }
    }
    r->op = 0;
    r->data = NULL;
    r->send_slot = -1;
    r->next_free = u->free_record;
    u->free_record = (int32_t)index;
}

/* An SQE, submitting once to make room if the queue is full. */
/* Copies a socket address of `length` bytes. The two lengths every datagram has are copied at a constant size, which
 * the compiler inlines as a few moves: a call into libc's memcpy per datagram otherwise. */
static inline void copy_address(void *destination, const void *source, size_t length) {
    if (length == sizeof(struct sockaddr_in)) {
        memcpy(destination, source, sizeof(struct sockaddr_in));
    } else if (length == sizeof(struct sockaddr_in6)) {
        memcpy(destination, source, sizeof(struct sockaddr_in6));
    } else {
        memcpy(destination, source, length);
    }
}

static struct io_uring_sqe *next_sqe(struct csip_uring *u) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (sqe == NULL) {
        if (io_uring_submit(&u->ring) < 0) return NULL;
        sqe = io_uring_get_sqe(&u->ring);
    }
    return sqe;
}

int csip_uring_arm_receive(struct csip_uring *u, int fd, uint32_t socket_tag) {
    if (u == NULL || fd < 0) return -EINVAL;
    struct io_uring_sqe *sqe = next_sqe(u);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_recvmsg_multishot(sqe, fd, &u->receive_template, MSG_TRUNC);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUFFER_GROUP;
    io_uring_sqe_set_data64(sqe, pack_user_data(KIND_RECEIVE, socket_tag, 0));
    return 0;
}

int csip_uring_send(struct csip_uring *u, int fd, uint32_t socket_tag, const uint8_t *data, size_t length,
                    const struct sockaddr_storage *to, uint32_t to_length) {
    if (u == NULL || fd < 0 || data == NULL || to == NULL || to_length > sizeof(struct sockaddr_storage)) {
        return -EINVAL;
    }
    if (length > u->slot_size) return -EMSGSIZE;
    if (u->free_slot < 0) return -EAGAIN;
    struct io_uring_sqe *sqe = next_sqe(u);
    if (sqe == NULL) return -EBUSY;
    uint32_t index = (uint32_t)u->free_slot;
    struct send_slot *slot = &u->slots[index];
    u->free_slot = slot->next_free;
    uint8_t *payload = u->slot_data + (size_t)index * u->slot_size;
    memcpy(payload, data, length);
    copy_address(&slot->destination, to, to_length);
    slot->fd = fd;
    slot->refused_retries = 0;
    slot->vector.iov_base = payload;
    slot->vector.iov_len = length;
    memset(&slot->message, 0, sizeof(slot->message));
    slot->message.msg_name = &slot->destination;
    slot->message.msg_namelen = to_length;
    slot->message.msg_iov = &slot->vector;
    slot->message.msg_iovlen = 1;
    io_uring_prep_sendmsg(sqe, fd, &slot->message, 0);
    io_uring_sqe_set_data64(sqe, pack_user_data(KIND_SEND, socket_tag, index));
    u->sends_in_flight++;
    return 0;
}

uint32_t csip_uring_sends_in_flight(const struct csip_uring *u) {
    return u == NULL ? 0 : u->sends_in_flight;
}

/* Fills an SQE for record `index` (a first submission or a continuation). */
static int queue_record(struct csip_uring *u, uint32_t index) {
    struct stream_record *r = record_at(u, index);
    struct io_uring_sqe *sqe = next_sqe(u);
    if (sqe == NULL) return -EBUSY;
    switch (r->op) {
    case OP_RECEIVE_MULTISHOT:
        io_uring_prep_recv_multishot(sqe, r->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = BUFFER_GROUP;
        break;
    case OP_RECEIVE_SINGLE:
        io_uring_prep_recv(sqe, r->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = BUFFER_GROUP;
        break;
    case OP_SEND:
        io_uring_prep_send(sqe, r->fd, r->data + r->done, r->length - r->done, MSG_NOSIGNAL);
        break;
    default: /* OP_CONNECT */
        io_uring_prep_connect(sqe, r->fd, (const struct sockaddr *)&r->address, r->address_length);
        break;
    }
    io_uring_sqe_set_data64(sqe, pack_user_data(KIND_STREAM, 0, index));
    return 0;
}

/* Takes a record for `op` on `fd`; the caller fills the op's fields, then calls start_record. */
static int32_t new_record(struct csip_uring *u, int fd, uint64_t key, uint8_t op) {
    int32_t index = take_record(u);
    if (index < 0) return index;
    struct stream_record *r = record_at(u, (uint32_t)index);
    r->fd = fd;
    r->key = key;
    r->op = op;
    return index;
}

static int start_record(struct csip_uring *u, int32_t index) {
    int rc = queue_record(u, (uint32_t)index);
    if (rc < 0) release_record(u, (uint32_t)index);
    return rc;
}

int csip_uring_arm_accept(struct csip_uring *u, int listen_fd, uint32_t socket_tag) {
    if (u == NULL || listen_fd < 0) return -EINVAL;
    struct io_uring_sqe *sqe = next_sqe(u);
    if (sqe == NULL) return -EBUSY;
    /* No address buffer: one request yields many connections, so the peer is read with getpeername. */
    io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, pack_user_data(KIND_ACCEPT, socket_tag, 0));
    return 0;
}

int csip_uring_arm_stream_receive(struct csip_uring *u, int fd, uint64_t stream_key) {
    if (u == NULL || fd < 0) return -EINVAL;
    int32_t index = new_record(u, fd, stream_key, u->single_shot_receive ? OP_RECEIVE_SINGLE : OP_RECEIVE_MULTISHOT);
    if (index < 0) return index;
    return start_record(u, index);
}

int csip_uring_stream_send(struct csip_uring *u, int fd, uint64_t stream_key, const uint8_t *data,
                           size_t length) {
    if (u == NULL || fd < 0 || (data == NULL && length > 0)) return -EINVAL;
    if (length > CSIP_STREAM_SEND_MAX) return -EMSGSIZE;
    int32_t index = new_record(u, fd, stream_key, OP_SEND);
    if (index < 0) return index;
    struct stream_record *r = record_at(u, (uint32_t)index);
    if (length <= u->slot_size && u->free_slot >= 0) {
        r->send_slot = u->free_slot;
        u->free_slot = u->slots[r->send_slot].next_free;
        r->data = u->slot_data + (size_t)r->send_slot * u->slot_size;
    } else {
        r->data = malloc(length > 0 ? length : 1);
        if (r->data == NULL) {
            release_record(u, (uint32_t)index);
            return -ENOMEM;
        }
    }
    if (length > 0) memcpy(r->data, data, length);
    r->length = (uint32_t)length;
    return start_record(u, index);
}

int csip_uring_connect(struct csip_uring *u, int fd, uint64_t stream_key, const struct sockaddr_storage *to,
                       uint32_t to_length) {
    if (u == NULL || fd < 0 || to == NULL || to_length == 0 || to_length > sizeof(struct sockaddr_storage)) {
        return -EINVAL;
    }
    int32_t index = new_record(u, fd, stream_key, OP_CONNECT);
    if (index < 0) return index;
    struct stream_record *r = record_at(u, (uint32_t)index);
    memcpy(&r->address, to, to_length);
    r->address_length = to_length;
    return start_record(u, index);
}

int csip_uring_cancel_stream(struct csip_uring *u, int fd) {
    if (u == NULL || fd < 0) return -EINVAL;
    /* Requests of fd that complete before the cancel lands must not be continued: fd may be reused by then. */
    for (uint32_t i = 0; i < u->record_count; i++) {
        struct stream_record *r = record_at(u, i);
        if (r->op != 0 && r->fd == fd) r->cancelled = 1;
    }
    int rc = -EBUSY;
    struct io_uring_sqe *sqe = next_sqe(u);
    if (sqe != NULL) {
        io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, pack_user_data(KIND_CANCEL, 0, 0));
        /* Submit now: the kernel looks fd up when it runs the cancel, and the caller closes fd next. */
        do {
            rc = io_uring_submit(&u->ring);
        } while (rc == -EINTR);
        if (rc >= 0) return 0;
    }
    /* No cancel: shutting the socket down ends its requests (EOF, EPIPE) so they release it after close. */
    if (shutdown(fd, SHUT_RDWR) != 0) return -errno;
    return rc;
}

int csip_uring_cancel_armed(struct csip_uring *u, int accept, uint32_t socket_tag) {
    if (u == NULL) return -EINVAL;
    struct io_uring_sqe *sqe = next_sqe(u);
    if (sqe == NULL) return -EBUSY;
    /* By user_data, not by fd: the socket's sends in flight stay, and another process holding the same socket
       (a handover) keeps its own requests. */
    io_uring_prep_cancel64(sqe, pack_user_data(accept ? KIND_ACCEPT : KIND_RECEIVE, socket_tag, 0), 0);
    io_uring_sqe_set_data64(sqe, pack_user_data(KIND_CANCEL, 0, 0));
    int rc;
    do {
        rc = io_uring_submit(&u->ring);
    } while (rc == -EINTR);
    return rc >= 0 ? 0 : rc;
}

void csip_uring_recycle(struct csip_uring *u, uint16_t buffer_id) {
    if (u == NULL || buffer_id >= u->buffer_count) return;
    io_uring_buf_ring_add(u->buffer_ring, u->buffers + (size_t)buffer_id * u->buffer_size, u->buffer_size,
                          buffer_id, io_uring_buf_ring_mask(u->buffer_count), 0);
    io_uring_buf_ring_advance(u->buffer_ring, 1);
}

static void decode_receive(struct csip_uring *u, const struct io_uring_cqe *cqe, struct csip_uring_event *event) {
    event->needs_rearm = (cqe->flags & IORING_CQE_F_MORE) ? 0 : 1;
    if (cqe->res < 0) {
        event->kind = (cqe->res == -ENOBUFS) ? CSIP_EVENT_OUT_OF_BUFFERS : CSIP_EVENT_RECEIVE_ERROR;
        return;
    }
    if (!(cqe->flags & IORING_CQE_F_BUFFER)) {
        event->kind = CSIP_EVENT_RECEIVE_ERROR;
        event->result = -EIO;
        return;
    }
    uint16_t buffer_id = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    event->has_buffer = 1;
    event->buffer_id = buffer_id;
    if (buffer_id >= u->buffer_count) {
        event->has_buffer = 0;
        event->kind = CSIP_EVENT_DATAGRAM_INVALID;
        return;
    }
    uint8_t *buffer = u->buffers + (size_t)buffer_id * u->buffer_size;
    struct io_uring_recvmsg_out *header = io_uring_recvmsg_validate(buffer, cqe->res, &u->receive_template);
    if (header == NULL || header->namelen > sizeof(struct sockaddr_storage)) {
        event->kind = CSIP_EVENT_DATAGRAM_INVALID;
        return;
    }
    event->kind = CSIP_EVENT_DATAGRAM;
    event->source_length = header->namelen;
    copy_address(&event->source, io_uring_recvmsg_name(header), header->namelen);
    event->payload = io_uring_recvmsg_payload(header, &u->receive_template);
    event->payload_length = io_uring_recvmsg_payload_length(header, cqe->res, &u->receive_template);
    event->truncated = (header->flags & MSG_TRUNC) ? 1 : 0;
}

static void decode_accept(const struct io_uring_cqe *cqe, struct csip_uring_event *event) {
    event->kind = CSIP_EVENT_ACCEPTED;
    event->needs_rearm = (cqe->flags & IORING_CQE_F_MORE) ? 0 : 1;
    if (cqe->res < 0) return;
    socklen_t length = sizeof(event->source);
    if (getpeername(cqe->res, (struct sockaddr *)&event->source, &length) == 0 && length <= sizeof(event->source)) {
        event->source_length = length;
    } /* else the peer already left (ENOTCONN): no source; its receive will report the end */
}

/* Decodes a stream record's completion. Returns 0 when it was handled inside (no event for the caller). */
static int decode_stream(struct csip_uring *u, const struct io_uring_cqe *cqe, uint32_t index,
                         struct csip_uring_event *event) {
    struct stream_record *r = record_at(u, index);
    if (r == NULL || r->op == 0) return 0; /* cannot happen: records outlive their requests */
    event->stream_key = r->key;
    int more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    switch (r->op) {
    case OP_RECEIVE_MULTISHOT:
    case OP_RECEIVE_SINGLE: {
        int has_buffer = (cqe->flags & IORING_CQE_F_BUFFER) != 0;
        uint16_t buffer_id = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        if (cqe->res == -EINVAL && r->op == OP_RECEIVE_MULTISHOT && !has_buffer && !more && !r->cancelled) {
            /* Multishot recv refused (kernel < 6.0): from now on, and for this request, single-shot. (A bad fd
             * also gives -EINVAL; then the single-shot retry reports it, and the ring merely stays single-shot.) */
            u->single_shot_receive = 1;
            r->op = OP_RECEIVE_SINGLE;
            if (queue_record(u, index) == 0) return 0;
            event->result = -EBUSY; /* reported; the caller re-arms, single-shot this time */
        }
        event->kind = CSIP_EVENT_STREAM_DATA;
        event->needs_rearm = (r->op == OP_RECEIVE_SINGLE || !more) ? 1 : 0;
        if (has_buffer && buffer_id < u->buffer_count) {
            event->has_buffer = 1;
            event->buffer_id = buffer_id;
            if (cqe->res > 0) {
                event->payload = u->buffers + (size_t)buffer_id * u->buffer_size;
                event->payload_length = (uint32_t)cqe->res;
            }
        } else if (cqe->res > 0) {
            event->result = -EIO; /* bytes without a buffer: cannot happen with BUFFER_SELECT */
        }
        if (!more) release_record(u, index);
        return 1;
    }
    case OP_SEND:
        if (cqe->res > 0) {
            r->done += (uint32_t)cqe->res;
            if (r->done < r->length) {
                if (!r->cancelled && queue_record(u, index) == 0) return 0; /* short send: continue */
                event->result = r->cancelled ? -ECANCELED : -EBUSY;
            } else {
                event->result = (int32_t)r->length;
            }
        } else if (cqe->res == 0 && r->done < r->length) {
            event->result = -EIO; /* the kernel took nothing of a non-empty send */
        }
        event->kind = CSIP_EVENT_STREAM_SENT;
        release_record(u, index);
        return 1;
    default: /* OP_CONNECT */
        event->kind = CSIP_EVENT_CONNECTED;
        release_record(u, index);
        return 1;
    }
}

int csip_uring_wait(struct csip_uring *u, struct csip_uring_event *events, uint32_t capacity, uint32_t wait_for,
                    uint32_t timeout_us) {
    if (u == NULL || events == NULL || capacity == 0) return -EINVAL;
    if (wait_for == 0) wait_for = 1;
    struct __kernel_timespec timeout = {
        .tv_sec = timeout_us / 1000000u,
        .tv_nsec = (long long)(timeout_us % 1000000u) * 1000LL,
    };
    struct io_uring_cqe *first = NULL;
    int rc;
    do {
        rc = io_uring_submit_and_wait_timeout(&u->ring, &first, wait_for, &timeout, NULL);
    } while (rc == -EINTR);
    /* A timeout is not an error: whatever completed meanwhile is still reaped below. */
    if (rc < 0 && rc != -ETIME) return rc;

    struct io_uring_cqe *cqes[256];
    uint32_t limit = capacity < 256 ? capacity : 256;
    unsigned count = io_uring_peek_batch_cqe(&u->ring, cqes, limit);
    uint32_t produced = 0;
    for (unsigned i = 0; i < count; i++) {
        const struct io_uring_cqe *cqe = cqes[i];
        struct csip_uring_event *event = &events[produced];
        memset(event, 0, offsetof(struct csip_uring_event, source));
        uint64_t data = io_uring_cqe_get_data64(cqe);
        uint32_t kind = (uint32_t)(data >> 56);
        event->socket_tag = (uint32_t)((data >> 32) & 0xFFFFFFu);
        event->result = cqe->res;
        if (kind == KIND_SEND) {
            uint32_t index = (uint32_t)(data & 0xFFFFFFFFu);
            event->kind = CSIP_EVENT_SEND_FAILED;
            if (cqe->res == -ECONNREFUSED && index < u->slot_count &&
                u->slots[index].refused_retries < CSIP_REFUSED_RETRIES) {
                struct send_slot *slot = &u->slots[index];
                struct io_uring_sqe *retry = next_sqe(u);
                if (retry != NULL) {
                    slot->refused_retries++;
                    io_uring_prep_sendmsg(retry, slot->fd, &slot->message, 0);
                    io_uring_sqe_set_data64(retry, data);
                    continue; /* no event: the retry reports */
                }
            }
            if (index < u->slot_count) {
                u->slots[index].next_free = u->free_slot;
                u->free_slot = (int32_t)index;
                u->sends_in_flight--;
            }
            /* A datagram that left needs nobody's attention: only failures become events (half the events of a
             * proxied message otherwise). */
            if (cqe->res >= 0) continue;
        } else if (kind == KIND_RECEIVE) {
            decode_receive(u, cqe, event);
        } else if (kind == KIND_ACCEPT) {
            decode_accept(cqe, event);
        } else if (kind == KIND_STREAM) {
            if (!decode_stream(u, cqe, (uint32_t)(data & 0xFFFFFFFFu), event)) continue;
        } else {
            continue; /* KIND_CANCEL: its count matters to nobody; the cancelled requests report themselves */
        }
        produced++;
    }
    io_uring_cq_advance(&u->ring, count);
    return (int)produced;
}
