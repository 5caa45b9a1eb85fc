/*
 * udp-relay: the floor for CPU per SIP message on this machine, a UDP relay that does no SIP work at all.
 *
 *   udp-relay FRONT_PORT BACK_PORT UPSTREAM_PORT SECONDS
 *
 * Datagrams reaching 127.0.0.1:FRONT_PORT go on unchanged to 127.0.0.1:UPSTREAM_PORT from 127.0.0.1:BACK_PORT; those
 * reaching BACK_PORT go back to the client that sent last to FRONT_PORT. One thread, epoll, recvmmsg/sendmmsg in
 * batches of 64, 4 MiB receive buffers like sip-edge's: what the kernel costs to move the datagrams a proxy moves,
 * with nothing of the proxy's own.
 * perf/bench.sh runs it as a contestant beside sip-edge and Kamailio. Exits after SECONDS or on SIGTERM, printing
 * its counts. Loopback only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { BATCH = 64, DATAGRAM = 65536 };

struct batch {
    struct mmsghdr headers[BATCH];
    struct iovec vectors[BATCH];
    struct sockaddr_in sources[BATCH];
    unsigned char *buffers;
};

static volatile sig_atomic_t stopping;

static void on_signal(int signal_number) {
    (void)signal_number;
    stopping = 1;
}

static int bound_socket(int port) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        perror("socket");
        exit(2);
    }
    /* The receive buffer sip-edge asks for too (4 MiB, capped by net.core.rmem_max): at rates where bursts queue,
     * the floor must not lose datagrams the proxy it is compared with keeps. */
    int buffer_bytes = 4 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes) != 0) perror("SO_RCVBUF");
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        perror("bind");
        exit(2);
    }
    return fd;
}

/* Receives a batch on `from` and sends it on through `to`, to `destination` (or, with remember set, records the
 * last source in *client and sends to `destination`). Returns the datagrams moved, or -1 when nothing was there. */
static int relay(struct batch *b, int from, int to, struct sockaddr_in *destination, struct sockaddr_in *client,
                 int remember) {
    for (int i = 0; i < BATCH; i++) {
        b->vectors[i] = (struct iovec){.iov_base = b->buffers + (size_t)i * DATAGRAM, .iov_len = DATAGRAM};
        b->headers[i].msg_hdr = (struct msghdr){.msg_name = &b->sources[i], .msg_namelen = sizeof b->sources[i],
                                                .msg_iov = &b->vectors[i], .msg_iovlen = 1};
    }
    int received = recvmmsg(from, b->headers, BATCH, MSG_DONTWAIT, NULL);
    if (received <= 0) return -1;
    if (remember) *client = b->sources[received - 1];
    if (destination->sin_port == 0) return 0; /* nobody to send to yet */
    for (int i = 0; i < received; i++) {
        b->vectors[i].iov_len = b->headers[i].msg_len;
        b->headers[i].msg_hdr.msg_name = destination;
        b->headers[i].msg_hdr.msg_namelen = sizeof *destination;
    }
    int sent = 0;
    while (sent < received) {
        int n = sendmmsg(to, b->headers + sent, (unsigned)(received - sent), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("sendmmsg");
            break;
        }
        sent += n;
    }
    return sent;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: udp-relay FRONT_PORT BACK_PORT UPSTREAM_PORT SECONDS\n");
        return 2;
    }
    int front = bound_socket(atoi(argv[1])), back = bound_socket(atoi(argv[2]));
    struct sockaddr_in upstream = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
    upstream.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct sockaddr_in client = {0};
    double seconds = atof(argv[4]);
    struct sigaction action = {.sa_handler = on_signal};
    if (sigaction(SIGTERM, &action, NULL) != 0 || sigaction(SIGINT, &action, NULL) != 0) {
        perror("sigaction");
        return 2;
    }
    struct batch *b = calloc(1, sizeof *b);
    if (b == NULL || (b->buffers = malloc((size_t)BATCH * DATAGRAM)) == NULL) {
        perror("malloc");
        return 2;
    }
    int epoll = epoll_create1(0);
    if (epoll < 0) {
        perror("epoll_create1");
        return 2;
    }
    struct epoll_event event = {.events = EPOLLIN, .data.fd = front};
    if (epoll_ctl(epoll, EPOLL_CTL_ADD, front, &event) != 0) return 2;
    event.data.fd = back;
    if (epoll_ctl(epoll, EPOLL_CTL_ADD, back, &event) != 0) return 2;
    struct timespec start, now;
    if (clock_gettime(CLOCK_MONOTONIC, &start) != 0) return 2;
    long toward_upstream = 0, toward_client = 0;
    for (;;) {
        if (stopping) break;
        if (clock_gettime(CLOCK_MONOTONIC, &now) != 0) break;
        if ((double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9 > seconds) break;
        struct epoll_event ready[2];
        int count = epoll_wait(epoll, ready, 2, 200);
        if (count < 0 && errno != EINTR) {
            perror("epoll_wait");
            break;
        }
        for (int i = 0; i < count; i++) {
            int moved;
            if (ready[i].data.fd == front) {
                while ((moved = relay(b, front, back, &upstream, &client, 1)) >= 0) toward_upstream += moved;
            } else {
                while ((moved = relay(b, back, front, &client, &client, 0)) >= 0) toward_client += moved;
            }
        }
    }
    fprintf(stderr, "udp-relay: %ld datagrams toward the upstream, %ld toward the client\n", toward_upstream,
            toward_client);
    free(b->buffers);
    free(b);
    close(epoll);
    close(front);
    close(back);
    return 0;
}
