/*
 * Source-address steering for SO_REUSEPORT groups (classic BPF, SO_ATTACH_REUSEPORT_CBPF).
 * The program returns the index of the socket in the group; the kernel falls back to its own hash when the index
 * is out of range. SKF_NET_OFF addresses the IP header even though the program runs at the UDP payload.
 */
#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "include/CSIPUring.h"

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif

int csip_attach_reuseport_steering(int fd, int ipv6, uint32_t group_size) {
    if (fd < 0 || group_size == 0) return -EINVAL;
    /* IPv4 source address: bytes 12-15 of the IP header. IPv6: bytes 8-23; the low word is 20-23. */
    uint32_t source_word = ipv6 ? 20u : 12u;
    struct sock_filter program[] = {
        /* A = 32-bit word of the source address */
        {BPF_LD | BPF_W | BPF_ABS, 0, 0, (uint32_t)SKF_NET_OFF + source_word},
        /* A = A % group_size */
        {BPF_ALU | BPF_MOD | BPF_K, 0, 0, group_size},
        /* return A */
        {BPF_RET | BPF_A, 0, 0, 0},
    };
    struct sock_fprog filter = {
        .len = (unsigned short)(sizeof(program) / sizeof(program[0])),
        .filter = program,
    };
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &filter, sizeof(filter)) != 0) return -errno;
    return 0;
}
