/*
 * CSIPDNS: c-ares behind a small synchronous surface, for the upstream resolver thread: SRV records and A/AAAA
 * addresses, each with its TTL, and an answer status that tells "no such name" and "no data" (answers) apart from
 * "timeout" and other failures (no answer).
 *
 * Rules: no global mutable state of our own, every return value checked, csip_ prefix. c-ares' types stay in the .c
 * file (its header pulls in fd_set, which must not reach Swift's module map; toolchain.md §1, pitfall 1).
 *
 * A handle is used by one thread at a time (c-ares channels are not thread safe). c-ares' library init is not
 * called: outside Windows ares_library_init only sets c-ares' own allocator pointers, through an unlocked global
 * counter, and ares_init_options does not require it there; calling it per handle would race between threads.
 */
#ifndef CSIPDNS_H
#define CSIPDNS_H

#include <stdint.h> /* first: see toolchain.md §1 on header order */
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** What a lookup came to. */
enum csip_dns_status {
    CSIP_DNS_OK = 0,           /* records written (count > 0) */
    CSIP_DNS_NO_SUCH_NAME = 1, /* NXDOMAIN: the name does not exist */
    CSIP_DNS_NO_DATA = 2,      /* the name exists but has no record of this type (NOERROR, empty answer) */
    CSIP_DNS_TIMEOUT = 3,      /* no server answered within the timeout and tries */
    CSIP_DNS_FAILURE = 4,      /* anything else: SERVFAIL, REFUSED, malformed answer, connection refused, ... */
};

/** The longest SRV target kept, in characters, NUL excluded: a host name is at most 253. An answer with a longer
 * one (only possible with escaped bytes, which no host name has) is a failure (ARES_EBADNAME). */
#define CSIP_DNS_NAME_MAX 255

/** One SRV record (RFC 2782). */
struct csip_dns_service {
    uint16_t priority;
    uint16_t weight;
    uint16_t port;
    /** Seconds. The smallest TTL in the answer section: an RRset shares one TTL (RFC 2181 §5.2), and a CNAME
     * on the way to it bounds it too. */
    uint32_t ttl;
    /** NUL-terminated target host name, without the trailing dot; "" for the root ("service not available"). */
    char target[CSIP_DNS_NAME_MAX + 1];
};

/** One A or AAAA address, laid out like SIPBytes' EndpointAddress so Swift copies two integers. */
struct csip_dns_address {
    /** 4 or 6. */
    uint8_t family;
    /** Address bytes in network order read as big-endian integers: IPv4 in the top 32 bits of `high`. */
    uint64_t high;
    uint64_t low;
    /** Seconds. */
    uint32_t ttl;
};

/** How one lookup ended. */
struct csip_dns_outcome {
    /** enum csip_dns_status. */
    int32_t status;
    /** The cause, for messages: a c-ares status code (csip_dns_describe), or -errno when a system call failed. */
    int32_t detail;
    /** Records written. A larger answer is cut at the capacity given. */
    uint32_t count;
};

struct csip_dns;

/**
 * Creates a resolver. `servers`: NULL or "" for the system's (/etc/resolv.conf), otherwise c-ares' CSV form,
 * "127.0.0.1:5353,[::1]:53". `timeout_ms` is the first try's timeout (c-ares doubles it per round over the
 * servers), `tries` the rounds. Returns 0, or a c-ares status code (csip_dns_describe) with *out NULL.
 */
int csip_dns_create(struct csip_dns **out, const char *servers, int timeout_ms, int tries);
void csip_dns_destroy(struct csip_dns *dns);

/**
 * Looks up the SRV records of `name` (as given: no search list), blocking until answered or timed out. Writes up
 * to `capacity` records and fills `outcome`. Returns 0, or -EINVAL for a bad argument (nothing looked up).
 */
int csip_dns_lookup_services(struct csip_dns *dns, const char *name, struct csip_dns_service *records,
                             uint32_t capacity, struct csip_dns_outcome *outcome);

/**
 * Looks up the A and AAAA records of `name` together (both queries in flight at once), blocking until both are
 * answered or timed out. Each family has its own records and outcome. Returns 0, or -EINVAL.
 */
int csip_dns_lookup_addresses(struct csip_dns *dns, const char *name, struct csip_dns_address *ipv4,
                              uint32_t ipv4_capacity, struct csip_dns_outcome *ipv4_outcome,
                              struct csip_dns_address *ipv6, uint32_t ipv6_capacity,
                              struct csip_dns_outcome *ipv6_outcome);

/** A static English text for a c-ares status code (an outcome's positive `detail`). */
const char *csip_dns_describe(int32_t detail);

#ifdef __cplusplus
}
#endif

#endif
