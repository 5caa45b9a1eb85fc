/*
 * stream-load: SIP load over TCP, WebSocket, TLS or UDP for the perf scripts, and the SIP core behind the edge.
 *
 *   stream-load tcp|ws|tls EDGE_PORT CORE_PORT CONNECTIONS EXCHANGES SECONDS
 *   stream-load hold|holdtls PORT 0 CONNECTIONS 0 SECONDS
 *   stream-load core 0 CORE_PORT 1 0 SECONDS
 *   stream-load udp EDGE_PORT CORE_PORT RATE EXCHANGES SECONDS
 *
 * Opens CONNECTIONS to 127.0.0.1:EDGE_PORT (for ws: the HTTP upgrade with the "sip" subprotocol first), then
 * sends OPTIONS over them in turn, at most one in flight per connection and STREAM_LOAD_WINDOW (256) in all, until
 * EXCHANGES answers came back or SECONDS passed. Requests are built
 * once per connection (8 distinct branches and Call-IDs, cycled); WebSocket frames are masked once when built,
 * as a browser's would be masked on the fly, so the client spends no CPU on masking during the run.
 *
 * The same process is the core: a UDP socket on 127.0.0.1:CORE_PORT answers every request the edge forwards
 * with 200 OK (its Via, From, To, Call-ID and CSeq copied), so no third program competes for the two cores.
 * CORE_PORT 0: no core here; `core` runs only the core (for SECONDS), so it outlives the load runs and answers the
 * proxy's health probes between them (a core that vanished between runs would be marked down).
 *
 * hold: opens CONNECTIONS TCP connections that never speak and keeps them SECONDS (memory per idle connection);
 * prints "holding N" once all are open and "held N, M closed by the peer" at the end. holdtls: the same with a
 * completed TLS handshake on each (OpenSSL, no certificate check: the bench's own self-signed one).
 *
 * tls: as tcp, inside TLS (each connection's handshake done while opening, before "ready").
 *
 * udp: open loop, for perf/udp-max-rate.sh: OPTIONS at RATE a second from one UDP socket to 127.0.0.1:EDGE_PORT,
 * EXCHANGES of them, answered by a core in its own process (`stream-load core` on CORE_PORT); prints
 * "answered N of M in S s (R/s), L lost".
 *
 * Connections come from 127.0.0.1 and, past 20,000, from 127.0.0.2... as well (each source address has about
 * 28,000 ephemeral ports toward one destination); STREAM_LOAD_SOURCES=N spreads them over 127.0.0.1 + 0..N-1.
 *
 * Prints "answered N in S s" and exits 0 when every exchange was answered. Bounded in count and in time; loopback
 * only. Not part of the edge: a measuring tool, built with `cc -O2 -Wall -Wextra -Werror`.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

enum { VARIANTS = 8, MAX_MESSAGE = 1024, INPUT = 16384 };

struct connection {
    int fd;
    SSL *ssl;                   /* tls and holdtls: the session over fd */
    int upgraded;               /* ws: the 101 has been read */
    int variant;
    int last_variant;
    double sent_at;             /* when the request in flight left; 0 when none is */
    size_t lengths[VARIANTS];
    unsigned char messages[VARIANTS][MAX_MESSAGE];
    unsigned char input[INPUT];
    size_t have;
};

static double now_seconds(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const char *what) {
    perror(what);
    exit(2);
}

static void build(struct connection *c, int index, int ws, const char *transport, int core_port) {
    /* The client's sent-by: a browser's random .invalid name, or a TCP client's own address (never the edge's). */
    char sent_by[64];
    if (ws) {
        snprintf(sent_by, sizeof sent_by, "h7kd2m%d.invalid", index);
    } else {
        snprintf(sent_by, sizeof sent_by, "127.0.0.2:%d;rport", 20000 + index);
    }
    for (int v = 0; v < VARIANTS; v++) {
        char text[MAX_MESSAGE];
        int n = snprintf(text, sizeof text,
                         "OPTIONS sip:core@127.0.0.1:%d SIP/2.0\r\n"
                         "Via: SIP/2.0/%s %s;branch=z9hG4bK-load-%d-%d\r\n"
                         "Max-Forwards: 70\r\nFrom: <sip:load@sipedge.test>;tag=l%d\r\nTo: <sip:core@127.0.0.1>\r\n"
                         "Call-ID: load-%d-%d@sipedge.test\r\nCSeq: 1 OPTIONS\r\nUser-Agent: stream-load\r\n"
                         "Content-Length: 0\r\n\r\n",
                         core_port, transport, sent_by, index, v, index, index, v);
        if (n <= 0 || n >= (int)sizeof text - 16) die("message too long");
        if (!ws) {
            memcpy(c->messages[v], text, (size_t)n);
            c->lengths[v] = (size_t)n;
            continue;
        }
        unsigned char *out = c->messages[v];
        size_t at = 0;
        out[at++] = 0x81; /* FIN, text */
        if (n < 126) {
            out[at++] = (unsigned char)(0x80 | n);
        } else {
            out[at++] = 0x80 | 126;
            out[at++] = (unsigned char)(n >> 8);
            out[at++] = (unsigned char)(n & 0xFF);
        }
        unsigned char key[4] = {(unsigned char)(index * 7 + v), 0x5A, 0xC3, (unsigned char)(v * 13 + 1)};
        memcpy(out + at, key, 4);
        at += 4;
        for (int i = 0; i < n; i++) out[at + (size_t)i] = (unsigned char)text[i] ^ key[i % 4];
        c->lengths[v] = at + (size_t)n;
    }
}

static int send_all(struct connection *c, const unsigned char *bytes, size_t length) {
    size_t sent = 0;
    while (sent < length) {
        if (c->ssl != NULL) {
            int n = SSL_write(c->ssl, bytes + sent, (int)(length - sent));
            if (n > 0) {
                sent += (size_t)n;
                continue;
            }
            int error = SSL_get_error(c->ssl, n);
            if (error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_WANT_READ) continue; /* small writes: spin */
            return -1;
        }
        ssize_t n = send(c->fd, bytes + sent, length - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        sent += (size_t)n;
    }
    return 0;
}

/* Reads what is there into buffer (for TLS: every record already received, so nothing waits inside OpenSSL
 * while epoll sees an empty socket). >0 bytes, 0 closed, -1 with errno (EAGAIN: nothing yet). */
static ssize_t receive_some(struct connection *c, unsigned char *buffer, size_t capacity) {
    if (c->ssl == NULL) return recv(c->fd, buffer, capacity, MSG_DONTWAIT);
    size_t have = 0;
    while (have < capacity) {
        int n = SSL_read(c->ssl, buffer + have, (int)(capacity - have));
        if (n > 0) {
            have += (size_t)n;
            continue;
        }
        int error = SSL_get_error(c->ssl, n);
        if (have > 0) return (ssize_t)have;
        if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
            errno = EAGAIN;
            return -1;
        }
        if (error == SSL_ERROR_ZERO_RETURN) return 0;
        errno = EIO;
        return -1;
    }
    return (ssize_t)have;
}

static int send_next(struct connection *c) {
    int v = c->variant;
    c->variant = (c->variant + 1) % VARIANTS;
    c->last_variant = v;
    c->sent_at = now_seconds();
    return send_all(c, c->messages[v], c->lengths[v]);
}

/* Only the core's 200 counts: anything else (a local refusal by the edge) means the edge was not measured
 * forwarding, so the run stops. */
static void check_ok(const unsigned char *response, size_t length) {
    if (length < 12 || memcmp(response, "SIP/2.0 200 ", 12) != 0) {
        fprintf(stderr, "not a 200 from the core: %.*s\n", (int)(length < 200 ? length : 200), response);
        exit(1);
    }
}

/* Complete responses at the front of the input: each counted and consumed. */
static int take_responses(struct connection *c, int ws) {
    int answered = 0;
    for (;;) {
        size_t size;
        if (ws) {
            if (c->have < 2) break;
            size_t length = c->input[1] & 0x7F, header = 2;
            if (length == 126) {
                if (c->have < 4) break;
                length = (size_t)c->input[2] << 8 | c->input[3];
                header = 4;
            } else if (length == 127) {
                fprintf(stderr, "unexpected 64-bit frame\n");
                exit(1);
            }
            if (c->have < header + length) break;
            size = header + length;
            if ((c->input[0] & 0x0F) == 0x1 || (c->input[0] & 0x0F) == 0x2) {
                check_ok(c->input + header, length);
                answered++;
            }
        } else {
            unsigned char *end = memmem(c->input, c->have, "\r\n\r\n", 4);
            if (end == NULL) break;
            size = (size_t)(end - c->input) + 4; /* the responses carry Content-Length: 0 */
            check_ok(c->input, size);
            answered++;
        }
        memmove(c->input, c->input + size, c->have - size);
        c->have -= size;
    }
    return answered;
}

/* The core's 200 to one forwarded request (NUL-terminated): its Via, From, To, Call-ID and CSeq lines copied.
 * Returns the length. */
static size_t core_answer(char *request, char *response, size_t capacity) {
    size_t at = (size_t)snprintf(response, capacity, "SIP/2.0 200 OK\r\n");
    char *line = strstr(request, "\r\n");
    while (line != NULL && line[2] != '\r') {
        char *start = line + 2, *next = strstr(start, "\r\n");
        if (next == NULL) break;
        size_t length = (size_t)(next - start) + 2;
        if ((!strncasecmp(start, "Via:", 4) || !strncasecmp(start, "From:", 5) || !strncasecmp(start, "To:", 3)
             || !strncasecmp(start, "Call-ID:", 8) || !strncasecmp(start, "CSeq:", 5))
            && at + length < capacity - 32) {
            memcpy(response + at, start, length);
            at += length;
        }
        line = next;
    }
    at += (size_t)snprintf(response + at, capacity - at, "Content-Length: 0\r\n\r\n");
    return at;
}

/* The core: answers every forwarded request waiting on fd, up to CORE_BATCH a system call each way (recvmmsg,
 * sendmmsg), so that at the UDP load's rates the core costs little next to what it measures. */
enum { CORE_BATCH = 64, CORE_DATAGRAM = 4096 };
struct core_buffers {
    char requests[CORE_BATCH][CORE_DATAGRAM];
    char responses[CORE_BATCH][CORE_DATAGRAM];
    struct sockaddr_in sources[CORE_BATCH];
};

/* Sets up `count` receive headers for recvmmsg, one buffer of CORE_DATAGRAM - 1 bytes each (room left for a NUL),
 * with the sender's address in sources[i] when sources is not NULL. */
static void receive_headers(struct mmsghdr *in, struct iovec *vectors, char (*buffers)[CORE_DATAGRAM],
                            struct sockaddr_in *sources, int count) {
    memset(in, 0, (size_t)count * sizeof *in);
    for (int i = 0; i < count; i++) {
        vectors[i] = (struct iovec){.iov_base = buffers[i], .iov_len = CORE_DATAGRAM - 1};
        in[i].msg_hdr = (struct msghdr){.msg_iov = &vectors[i], .msg_iovlen = 1};
        if (sources != NULL) {
            in[i].msg_hdr.msg_name = &sources[i];
            in[i].msg_hdr.msg_namelen = sizeof sources[i];
        }
    }
}

static void answer_core(int fd, struct core_buffers *b) {
    struct mmsghdr in[CORE_BATCH], out[CORE_BATCH];
    struct iovec in_vectors[CORE_BATCH], out_vectors[CORE_BATCH];
    for (;;) {
        receive_headers(in, in_vectors, b->requests, b->sources, CORE_BATCH);
        int got = recvmmsg(fd, in, CORE_BATCH, MSG_DONTWAIT, NULL);
        if (got <= 0) return;
        memset(out, 0, sizeof out);
        for (int i = 0; i < got; i++) {
            b->requests[i][in[i].msg_len] = 0;
            size_t length = core_answer(b->requests[i], b->responses[i], CORE_DATAGRAM);
            out_vectors[i] = (struct iovec){.iov_base = b->responses[i], .iov_len = length};
            out[i].msg_hdr = (struct msghdr){.msg_name = &b->sources[i], .msg_namelen = in[i].msg_hdr.msg_namelen,
                                             .msg_iov = &out_vectors[i], .msg_iovlen = 1};
        }
        /* The socket is non-blocking: a full send buffer (EAGAIN) waits for room rather than losing answers, which
         * a client over TCP would never retransmit. */
        int done = 0;
        while (done < got) {
            int n = sendmmsg(fd, out + done, (unsigned)(got - done), 0);
            if (n > 0) {
                done += n;
                continue;
            }
            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                perror("sendmmsg");
                break;
            }
            struct pollfd writable = {.fd = fd, .events = POLLOUT};
            if (poll(&writable, 1, 100) < 0 && errno != EINTR) break;
        }
        if (got < CORE_BATCH) return;
    }
}

/* udp: OPTIONS from one UDP socket at `rate` a second (open loop: sent on time whether answered or not, up to
 * UDP_BATCH per sendmmsg every millisecond), until `exchanges` were sent; then at most 1 s more for the last
 * answers. Every answer must be the core's 200. Prints "answered N of M in S s (R/s), L lost"; exits 0 when none
 * was lost. The core (CORE_PORT, named in the Request-URI) runs in its own process: `stream-load core`. */
enum { UDP_BATCH = 64 };
static int run_udp(int edge_port, int core_port, long rate, long exchanges, double seconds) {
    struct connection *c = calloc(1, sizeof *c);
    if (c == NULL) die("calloc");
    build(c, 0, 0, "UDP", core_port);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket");
    int buffer_bytes = 4 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes) != 0) perror("SO_RCVBUF");
    struct sockaddr_in edge = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    edge.sin_port = htons((uint16_t)edge_port);
    if (connect(fd, (struct sockaddr *)&edge, sizeof edge) != 0) die("connect");
    printf("ready\n");
    fflush(stdout);
    usleep(1000000); /* the protocol of the TCP modes: whoever measures starts now */
    struct mmsghdr out[UDP_BATCH], in[UDP_BATCH];
    struct iovec out_vectors[UDP_BATCH], in_vectors[UDP_BATCH];
    char (*answers)[CORE_DATAGRAM] = malloc(UDP_BATCH * sizeof *answers);
    if (answers == NULL) die("malloc");
    long sent = 0, answered = 0;
    double started = now_seconds(), deadline = started + seconds, last_sent = started;
    while (now_seconds() < deadline && (sent < exchanges || (answered < exchanges && now_seconds() - last_sent < 1))) {
        double now = now_seconds();
        long due = (long)((now - started) * (double)rate);
        if (due > exchanges) due = exchanges;
        while (sent < due) {
            int batch = due - sent < UDP_BATCH ? (int)(due - sent) : UDP_BATCH;
            memset(out, 0, sizeof out);
            for (int i = 0; i < batch; i++) {
                int v = (int)((sent + i) % VARIANTS);
                out_vectors[i] = (struct iovec){.iov_base = c->messages[v], .iov_len = c->lengths[v]};
                out[i].msg_hdr = (struct msghdr){.msg_iov = &out_vectors[i], .msg_iovlen = 1};
            }
            int n = sendmmsg(fd, out, (unsigned)batch, 0);
            if (n < 0 && errno != EAGAIN && errno != EINTR) die("sendmmsg");
            if (n <= 0) break; /* the send buffer is full: again after the next wait */
            sent += n;
            last_sent = now;
        }
        for (;;) {
            receive_headers(in, in_vectors, answers, NULL, UDP_BATCH);
            int got = recvmmsg(fd, in, UDP_BATCH, MSG_DONTWAIT, NULL);
            if (got < 0 && errno == ECONNREFUSED) die("the proxy's port refused the load");
            if (got <= 0) break;
            for (int i = 0; i < got; i++) check_ok((const unsigned char *)answers[i], in[i].msg_len);
            answered += got;
            if (got < UDP_BATCH) break;
        }
        struct pollfd ready = {.fd = fd, .events = POLLIN};
        if (poll(&ready, 1, 1) < 0 && errno != EINTR) die("poll");
    }
    double elapsed = last_sent - started;
    if (elapsed <= 0) elapsed = 1e-9;
    printf("answered %ld of %ld in %.3f s (%.0f/s), %ld lost\n", answered, exchanges, elapsed, sent / elapsed,
           exchanges - answered);
    close(fd);
    free(answers);
    free(c);
    return answered == exchanges ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: stream-load tcp|ws|tls|hold|holdtls|core EDGE_PORT CORE_PORT CONNECTIONS EXCHANGES SECONDS\n"
                        "       stream-load udp EDGE_PORT CORE_PORT RATE EXCHANGES SECONDS\n");
        return 2;
    }
    int ws = strcmp(argv[1], "ws") == 0;
    int edge_port = atoi(argv[2]), core_port = atoi(argv[3]), count = atoi(argv[4]);
    long exchanges = atol(argv[5]);
    double seconds = atof(argv[6]);
    int hold = strcmp(argv[1], "hold") == 0 || strcmp(argv[1], "holdtls") == 0, core_only = strcmp(argv[1], "core") == 0;
    int tls = strcmp(argv[1], "tls") == 0 || strcmp(argv[1], "holdtls") == 0;
    SSL_CTX *context = NULL;
    if (tls) {
        context = SSL_CTX_new(TLS_client_method());
        if (context == NULL) die("SSL_CTX_new");
        SSL_CTX_set_verify(context, SSL_VERIFY_NONE, NULL); /* the bench's own self-signed certificate */
    }
    if (strcmp(argv[1], "udp") == 0) {
        /* count is the rate here. */
        if (count < 1 || count > 1000000 || exchanges < 1 || seconds <= 0) return 2;
        return run_udp(edge_port, core_port, count, exchanges, seconds);
    }
    if (count < 1 || count > 100000 || (exchanges < 1 && !hold && !core_only) || seconds <= 0) return 2;

    /* A peer that closes while we write (a proxy refusing a connection) must show as an error, not kill us:
     * SSL_write writes without MSG_NOSIGNAL. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) die("signal");
    int epoll = epoll_create1(0);
    if (epoll < 0) die("epoll_create1");
    int core = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (core < 0) die("socket");
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    address.sin_port = htons((uint16_t)core_port);
    if (core_port != 0 && bind(core, (struct sockaddr *)&address, sizeof address) != 0) die("bind core");
    int buffer_bytes = 4 << 20; /* room for a window's worth of requests at once; the system's maximum if smaller */
    if (setsockopt(core, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes) != 0) perror("SO_RCVBUF");
    struct epoll_event event = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    if (epoll_ctl(epoll, EPOLL_CTL_ADD, core, &event) != 0) die("epoll_ctl");
    struct core_buffers *core_buffers = malloc(sizeof *core_buffers);
    if (core_buffers == NULL) die("malloc");

    if (core_only) {
        double until = now_seconds() + seconds;
        while (now_seconds() < until) {
            struct epoll_event ready;
            if (epoll_wait(epoll, &ready, 1, 200) > 0) answer_core(core, core_buffers);
        }
        return 0;
    }
    int sources = getenv("STREAM_LOAD_SOURCES") ? atoi(getenv("STREAM_LOAD_SOURCES")) : 1;
    if (sources < 1 || sources > 60000) sources = 1;
    struct connection *connections = calloc((size_t)count, sizeof *connections);
    if (connections == NULL) die("calloc");
    address.sin_port = htons((uint16_t)edge_port);
    for (int i = 0; i < count; i++) {
        struct connection *c = &connections[i];
        build(c, i, ws, tls ? "TLS" : ws ? "WS" : "TCP", core_port);
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (c->fd < 0) die("socket");
        /* The source address: 127.0.0.1 + (i % sources) when STREAM_LOAD_SOURCES spreads the clients over that many
         * addresses (the edge steers by source address), else 127.0.0.1 and, past 20,000, the next ones. */
        uint32_t offset = sources > 1 ? (uint32_t)(i % sources) : (uint32_t)(i / 20000);
        struct sockaddr_in source = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK + offset)};
        if (offset > 0 && bind(c->fd, (struct sockaddr *)&source, sizeof source) != 0) die("bind source");
        int one = 1;
        if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) die("TCP_NODELAY");
        if (connect(c->fd, (struct sockaddr *)&address, sizeof address) != 0) die("connect");
        if (ws) {
            const char *upgrade = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                                  "Sec-WebSocket-Protocol: sip\r\n\r\n";
            if (send_all(c, (const unsigned char *)upgrade, strlen(upgrade)) != 0) die("upgrade");
        }
        if (tls) {
            /* Handshake now, blocking, then the socket goes non-blocking for the load. */
            c->ssl = SSL_new(context);
            if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) die("SSL_new");
            if (SSL_connect(c->ssl) != 1) {
                ERR_print_errors_fp(stderr);
                die("SSL_connect");
            }
            int flags = fcntl(c->fd, F_GETFL);
            if (flags < 0 || fcntl(c->fd, F_SETFL, flags | O_NONBLOCK) != 0) die("fcntl");
        }
        event.events = EPOLLIN;
        event.data.u64 = (uint64_t)i;
        if (epoll_ctl(epoll, EPOLL_CTL_ADD, c->fd, &event) != 0) die("epoll_ctl");
    }
    if (hold) {
        printf("holding %d\n", count);
        fflush(stdout);
        int closed = 0;
        double until = now_seconds() + seconds;
        while (now_seconds() < until) {
            struct epoll_event ready[256];
            int n = epoll_wait(epoll, ready, 256, 200);
            for (int e = 0; e < n; e++) {
                struct connection *c = &connections[ready[e].data.u64];
                unsigned char scratch[512];
                ssize_t got = receive_some(c, scratch, sizeof scratch);
                if (got == 0 || (got < 0 && errno != EAGAIN)) {
                    closed++;
                    if (epoll_ctl(epoll, EPOLL_CTL_DEL, c->fd, NULL) != 0) die("epoll_ctl");
                }
            }
        }
        printf("held %d, %d closed by the peer\n", count, closed);
        return closed == 0 ? 0 : 1;
    }
    /* At most WINDOW requests in flight over all connections (STREAM_LOAD_WINDOW, default 256): the connections
     * take turns (a FIFO of idle ones), so every one carries traffic while bursts stay bounded. A TCP client does
     * not retransmit (RFC 3261 §17.1.1.2), so a burst of 10,000 that overflowed a UDP buffer between proxy and core
     * would stall the run instead of measuring it. */
    int window = getenv("STREAM_LOAD_WINDOW") ? atoi(getenv("STREAM_LOAD_WINDOW")) : 256;
    if (window < 1) window = 1;
    int *idle = malloc((size_t)count * sizeof *idle);
    if (idle == NULL) die("malloc");
    int idle_head = 0, idle_count = 0;
    for (int i = 0; i < count; i++) idle[(idle_head + idle_count++) % count] = i;
    long sent = 0, answered = 0, in_flight = 0, upgraded = ws ? 0 : count, retransmitted = 0;
    double started = now_seconds(), deadline = started + seconds, last_check = started;
    struct epoll_event events[256];
    int announced = 0;
    while (answered < exchanges && now_seconds() < deadline) {
        /* Every connection is open (and upgraded): say so and pause, so whoever measures the proxy's CPU can start
         * after the connections' set-up (accept, the WebSocket upgrade), then load. */
        if (upgraded == count && !announced) {
            announced = 1;
            printf("ready\n");
            fflush(stdout);
            usleep(1000000);
            started = now_seconds();
            deadline = started + seconds;
        }
        /* Start requests on idle connections while the window allows (once every WebSocket is upgraded). */
        while (upgraded == count && in_flight < window && sent < exchanges && idle_count > 0) {
            struct connection *c = &connections[idle[idle_head]];
            idle_head = (idle_head + 1) % count;
            idle_count--;
            if (send_next(c) != 0) die("send");
            sent++;
            in_flight++;
        }
        /* A request unanswered for 2 s is sent again, as a UA would: the hop between proxy and core is UDP and
         * may lose one now and then (1 in ~200,000 at 10,000 connections here), and one lost answer must not stall
         * the run. Counted and printed. */
        double now = now_seconds();
        if (now - last_check >= 1) {
            last_check = now;
            for (int i = 0; i < count; i++) {
                struct connection *c = &connections[i];
                if (c->sent_at > 0 && now - c->sent_at >= 2) {
                    c->sent_at = now;
                    if (send_all(c, c->messages[c->last_variant], c->lengths[c->last_variant]) != 0) die("send");
                    retransmitted++;
                }
            }
        }
        int ready = epoll_wait(epoll, events, 256, 100);
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 0) die("epoll_wait");
        for (int e = 0; e < ready; e++) {
            if (events[e].data.u64 == UINT64_MAX) {
                answer_core(core, core_buffers);
                continue;
            }
            int index = (int)events[e].data.u64;
            struct connection *c = &connections[index];
            ssize_t n = receive_some(c, c->input + c->have, sizeof c->input - c->have);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                fprintf(stderr, "connection %d closed by the proxy\n", index);
                return 1;
            }
            if (n < 0) continue;
            c->have += (size_t)n;
            if (ws && !c->upgraded) {
                unsigned char *end = memmem(c->input, c->have, "\r\n\r\n", 4);
                if (end == NULL) continue;
                if (memcmp(c->input, "HTTP/1.1 101", 12) != 0) {
                    fprintf(stderr, "upgrade refused: %.*s\n", (int)(end - c->input), c->input);
                    return 1;
                }
                size_t size = (size_t)(end - c->input) + 4;
                memmove(c->input, c->input + size, c->have - size);
                c->have -= size;
                c->upgraded = 1;
                upgraded++;
            }
            int got = take_responses(c, ws);
            /* One request in flight per connection: a second answer (to a request sent again) counts nothing. */
            got = c->sent_at > 0 && got > 0 ? 1 : 0;
            if (got > 0) c->sent_at = 0;
            answered += got;
            in_flight -= got;
            for (int k = 0; k < got; k++) idle[(idle_head + idle_count++) % count] = index;
        }
    }
    free(idle);
    double elapsed = now_seconds() - started;
    printf("answered %ld of %ld in %.3f s (%.0f/s), %ld sent again\n", answered, exchanges, elapsed, answered / elapsed,
           retransmitted);
    for (int i = 0; i < count; i++) {
        if (connections[i].ssl != NULL) SSL_free(connections[i].ssl);
        close(connections[i].fd);
    }
    if (context != NULL) SSL_CTX_free(context);
    free(connections);
    close(core);
    free(core_buffers);
    close(epoll);
    return answered == exchanges ? 0 : 1;
}
