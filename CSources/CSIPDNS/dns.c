/* Synchronous SRV and A/AAAA lookups over c-ares: queries are started, then poll(2) drives the channel until
 * every callback has run. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>

#include "include/CSIPDNS.h"

/* Wire constants (RFC 1035, RFC 2782, RFC 3596): named here rather than taken from <arpa/nameser.h>. */
enum {
    DNS_CLASS_IN = 1,
    DNS_TYPE_A = 1,
    DNS_TYPE_AAAA = 28,
    DNS_TYPE_SRV = 33,
    DNS_HEADER_BYTES = 12,
};

/* The most records one answer yields; c-ares' address parser wants an array of its own type to fill. */
#define ADDRESSES_PER_ANSWER 64

struct csip_dns {
    ares_channel channel;
};

enum query_kind { QUERY_SERVICES, QUERY_IPV4, QUERY_IPV6 };

/* One query in flight: where its callback writes. Lives on the stack of the lookup that waits for it. */
struct pending_query {
    enum query_kind kind;
    int done;
    void *records;
    uint32_t capacity;
    struct csip_dns_outcome *outcome;
};

static int32_t status_from_ares(int code) {
    switch (code) {
    case ARES_SUCCESS: return CSIP_DNS_OK;
    case ARES_ENOTFOUND: return CSIP_DNS_NO_SUCH_NAME;
    case ARES_ENODATA: return CSIP_DNS_NO_DATA;
    case ARES_ETIMEOUT: return CSIP_DNS_TIMEOUT;
    default: return CSIP_DNS_FAILURE;
    }
}

static void set_outcome(struct csip_dns_outcome *outcome, int ares_code, uint32_t count) {
    outcome->status = status_from_ares(ares_code);
    outcome->detail = ares_code;
    outcome->count = count;
}

static uint16_t read_u16(const unsigned char *at) { return (uint16_t)((at[0] << 8) | at[1]); }

static uint32_t read_u32(const unsigned char *at) {
    return ((uint32_t)at[0] << 24) | ((uint32_t)at[1] << 16) | ((uint32_t)at[2] << 8) | (uint32_t)at[3];
}

/* A TTL with the top bit set is read as 0 (RFC 2181 §8); c-ares hands some TTLs over as int. */
static uint32_t sane_ttl(int64_t ttl) { return ttl < 0 || ttl > INT32_MAX ? 0 : (uint32_t)ttl; }

/* Moves *offset past one encoded name (labels ending in the root label or a compression pointer, which is not
 * followed: only its length matters here). Returns 0, or -1 when the name runs past `length` or is malformed. */
static int skip_name(const unsigned char *message, size_t length, size_t *offset) {
    size_t at = *offset;
    /* A name has at most 127 labels in 255 octets; more means garbage. */
    for (int labels = 0; labels < 128; labels++) {
        if (at >= length) return -1;
        unsigned char octet = message[at];
        if (octet == 0) {
            *offset = at + 1;
            return 0;
        }
        if ((octet & 0xC0) == 0xC0) {
            if (length - at < 2) return -1;
            *offset = at + 2;
            return 0;
        }
        if ((octet & 0xC0) != 0) return -1; /* 0x40 and 0x80: obsolete or reserved label types */
        at += 1 + (size_t)octet;
    }
    return -1;
}

/* The smallest TTL among the answer section's records (ares_parse_srv_reply gives none). Returns 0, or -1 when
 * the message is malformed or has no answer. Every read is bounds-checked against `length`. */
static int smallest_answer_ttl(const unsigned char *message, size_t length, uint32_t *ttl) {
    if (length < DNS_HEADER_BYTES) return -1;
    unsigned questions = read_u16(message + 4);
    unsigned answers = read_u16(message + 6);
    size_t at = DNS_HEADER_BYTES;
    for (unsigned i = 0; i < questions; i++) {
        if (skip_name(message, length, &at) != 0) return -1;
        if (length - at < 4) return -1; /* type, class */
        at += 4;
    }
    if (answers == 0) return -1;
    uint32_t smallest = UINT32_MAX;
    for (unsigned i = 0; i < answers; i++) {
        if (skip_name(message, length, &at) != 0) return -1;
        if (length - at < 10) return -1; /* type, class, TTL, data length */
        uint32_t record_ttl = sane_ttl(read_u32(message + at + 4));
        size_t data_length = read_u16(message + at + 8);
        at += 10;
        if (length - at < data_length) return -1;
        at += data_length;
        if (record_ttl < smallest) smallest = record_ttl;
    }
    *ttl = smallest;
    return 0;
}

static void parse_services(struct pending_query *query, const unsigned char *answer, int length) {
    struct ares_srv_reply *replies = NULL;
    int code = ares_parse_srv_reply(answer, length, &replies);
    if (code != ARES_SUCCESS) {
        set_outcome(query->outcome, code, 0);
        return;
    }
    uint32_t ttl = 0;
    if (smallest_answer_ttl(answer, (size_t)length, &ttl) != 0) {
        ares_free_data(replies);
        set_outcome(query->outcome, ARES_EBADRESP, 0);
        return;
    }
    struct csip_dns_service *records = query->records;
    uint32_t count = 0;
    int result = ARES_SUCCESS;
    for (const struct ares_srv_reply *reply = replies; reply != NULL && count < query->capacity; reply = reply->next) {
        size_t name_length = strlen(reply->host);
        if (name_length > CSIP_DNS_NAME_MAX) {
            result = ARES_EBADNAME;
            count = 0;
            break;
        }
        struct csip_dns_service *record = &records[count++];
        record->priority = reply->priority;
        record->weight = reply->weight;
        record->port = reply->port;
        record->ttl = ttl;
        memcpy(record->target, reply->host, name_length + 1);
    }
    ares_free_data(replies);
    set_outcome(query->outcome, count == 0 && result == ARES_SUCCESS ? ARES_ENODATA : result, count);
}

static uint64_t read_u64(const unsigned char *at) {
    return ((uint64_t)read_u32(at) << 32) | (uint64_t)read_u32(at + 4);
}

static void parse_addresses(struct pending_query *query, const unsigned char *answer, int length) {
    struct csip_dns_address *records = query->records;
    uint32_t count = 0;
    int found = ADDRESSES_PER_ANSWER;
    int code;
    if (query->kind == QUERY_IPV4) {
        struct ares_addrttl parsed[ADDRESSES_PER_ANSWER];
        code = ares_parse_a_reply(answer, length, NULL, parsed, &found);
        for (int i = 0; code == ARES_SUCCESS && i < found && count < query->capacity; i++) {
            const unsigned char *bytes = (const unsigned char *)&parsed[i].ipaddr.s_addr;
            records[count++] = (struct csip_dns_address){
                .family = 4, .high = (uint64_t)read_u32(bytes) << 32, .low = 0, .ttl = sane_ttl(parsed[i].ttl)};
        }
    } else {
        struct ares_addr6ttl parsed[ADDRESSES_PER_ANSWER];
        code = ares_parse_aaaa_reply(answer, length, NULL, parsed, &found);
        for (int i = 0; code == ARES_SUCCESS && i < found && count < query->capacity; i++) {
            const unsigned char *bytes = parsed[i].ip6addr._S6_un._S6_u8;
            records[count++] = (struct csip_dns_address){
                .family = 6, .high = read_u64(bytes), .low = read_u64(bytes + 8), .ttl = sane_ttl(parsed[i].ttl)};
        }
    }
    if (code == ARES_SUCCESS && count == 0) code = ARES_ENODATA;
    set_outcome(query->outcome, code, code == ARES_SUCCESS ? count : 0);
}

/* c-ares calls this once per query: answered, failed, timed out or cancelled. The answer buffer is c-ares' and
 * valid only during the call, so it is parsed here. */
static void on_answer(void *argument, int status, int timeouts, unsigned char *answer, int length) {
    (void)timeouts;
    struct pending_query *query = argument;
    query->done = 1;
    if (status != ARES_SUCCESS) {
        set_outcome(query->outcome, status, 0);
    } else if (answer == NULL || length <= 0) {
        set_outcome(query->outcome, ARES_EBADRESP, 0);
    } else if (query->kind == QUERY_SERVICES) {
        parse_services(query, answer, length);
    } else {
        parse_addresses(query, answer, length);
    }
}

static int all_done(struct pending_query *const *queries, size_t count) {
    for (size_t i = 0; i < count; i++)
        if (!queries[i]->done) return 0;
    return 1;
}

/* Milliseconds in a timeval, rounded up so poll does not wake just before c-ares' deadline. */
static int timeval_milliseconds(const struct timeval *time) {
    long long milliseconds = (long long)time->tv_sec * 1000 + ((long long)time->tv_usec + 999) / 1000;
    if (milliseconds < 0) return 0;
    return milliseconds > INT_MAX ? INT_MAX : (int)milliseconds;
}

/* Cancels what is still in flight (each callback then runs with ARES_ECANCELLED) and records `error` (an errno)
 * as the cause in those outcomes. */
static void cancel_for_error(struct csip_dns *dns, struct pending_query *const *queries, size_t count, int error) {
    ares_cancel(dns->channel);
    for (size_t i = 0; i < count; i++) {
        if (queries[i]->outcome->detail == ARES_ECANCELLED) queries[i]->outcome->detail = -error;
    }
}

/* Waits on c-ares' sockets and timers until every query's callback has run. */
static void drive(struct csip_dns *dns, struct pending_query *const *queries, size_t count) {
    while (!all_done(queries, count)) {
        ares_socket_t sockets[ARES_GETSOCK_MAXNUM];
        int bits = ares_getsock(dns->channel, sockets, ARES_GETSOCK_MAXNUM);
        struct pollfd watched[ARES_GETSOCK_MAXNUM];
        nfds_t watched_count = 0;
        for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
            short events = 0;
            if (ARES_GETSOCK_READABLE(bits, i)) events |= POLLIN;
            if (ARES_GETSOCK_WRITABLE(bits, i)) events |= POLLOUT;
            if (events != 0) watched[watched_count++] = (struct pollfd){.fd = sockets[i], .events = events};
        }
        struct timeval remaining;
        const struct timeval *deadline = ares_timeout(dns->channel, NULL, &remaining);
        if (watched_count == 0 && deadline == NULL) {
            /* Unanswered, yet c-ares waits on nothing: it would never finish. */
            cancel_for_error(dns, queries, count, EPROTO);
            return;
        }
        /* c-ares always has a timer while a query is pending; the 1 s cap only guards against it not having one. */
        int wait_ms = deadline != NULL ? timeval_milliseconds(deadline) : 1000;
        int ready = poll(watched, watched_count, wait_ms);
        if (ready < 0) {
            if (errno == EINTR) continue;
            cancel_for_error(dns, queries, count, errno);
            return;
        }
        if (ready == 0) {
            /* Only timers are due: this call runs c-ares' timeouts and retries. */
            ares_process_fd(dns->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
            continue;
        }
        for (nfds_t i = 0; i < watched_count; i++) {
            short events = watched[i].revents;
            if (events == 0) continue;
            /* An error or hang-up is handed over as readable: c-ares' read then sees it and moves on. */
            int readable = (events & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) != 0;
            int writable = (events & POLLOUT) != 0;
            ares_process_fd(dns->channel, readable ? watched[i].fd : ARES_SOCKET_BAD,
                            writable ? watched[i].fd : ARES_SOCKET_BAD);
        }
    }
}

int csip_dns_create(struct csip_dns **out, const char *servers, int timeout_ms, int tries) {
    if (out == NULL) return -EINVAL;
    *out = NULL;
    if (timeout_ms <= 0 || tries <= 0) return -EINVAL;
    struct csip_dns *dns = calloc(1, sizeof(*dns));
    if (dns == NULL) return -ENOMEM;
    struct ares_options options;
    memset(&options, 0, sizeof(options));
    options.timeout = timeout_ms;
    options.tries = tries;
    int code = ares_init_options(&dns->channel, &options, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (code != ARES_SUCCESS) {
        free(dns);
        return code;
    }
    if (servers != NULL && servers[0] != '\0') {
        code = ares_set_servers_ports_csv(dns->channel, servers);
        if (code != ARES_SUCCESS) {
            ares_destroy(dns->channel);
            free(dns);
            return code;
        }
    }
    *out = dns;
    return 0;
}

void csip_dns_destroy(struct csip_dns *dns) {
    if (dns == NULL) return;
    ares_destroy(dns->channel);
    free(dns);
}

static void start_query(struct csip_dns *dns, const char *name, int type, struct pending_query *query) {
    /* The outcome is set before c-ares may call back (it does so at once for a malformed name). */
    set_outcome(query->outcome, ARES_ECANCELLED, 0);
    ares_query(dns->channel, name, DNS_CLASS_IN, type, on_answer, query);
}

int csip_dns_lookup_services(struct csip_dns *dns, const char *name, struct csip_dns_service *records,
                             uint32_t capacity, struct csip_dns_outcome *outcome) {
    if (dns == NULL || name == NULL || outcome == NULL || (records == NULL && capacity > 0)) return -EINVAL;
    struct pending_query query = {
        .kind = QUERY_SERVICES, .done = 0, .records = records, .capacity = capacity, .outcome = outcome};
    struct pending_query *const queries[] = {&query};
    start_query(dns, name, DNS_TYPE_SRV, &query);
    drive(dns, queries, 1);
    return 0;
}

int csip_dns_lookup_addresses(struct csip_dns *dns, const char *name, struct csip_dns_address *ipv4,
                              uint32_t ipv4_capacity, struct csip_dns_outcome *ipv4_outcome,
                              struct csip_dns_address *ipv6, uint32_t ipv6_capacity,
                              struct csip_dns_outcome *ipv6_outcome) {
    if (dns == NULL || name == NULL || ipv4_outcome == NULL || ipv6_outcome == NULL) return -EINVAL;
    if ((ipv4 == NULL && ipv4_capacity > 0) || (ipv6 == NULL && ipv6_capacity > 0)) return -EINVAL;
    struct pending_query a = {
        .kind = QUERY_IPV4, .done = 0, .records = ipv4, .capacity = ipv4_capacity, .outcome = ipv4_outcome};
    struct pending_query aaaa = {
        .kind = QUERY_IPV6, .done = 0, .records = ipv6, .capacity = ipv6_capacity, .outcome = ipv6_outcome};
    struct pending_query *const queries[] = {&a, &aaaa};
    start_query(dns, name, DNS_TYPE_A, &a);
    start_query(dns, name, DNS_TYPE_AAAA, &aaaa);
    drive(dns, queries, 2);
    return 0;
}

const char *csip_dns_describe(int32_t detail) { return ares_strerror(detail); }
