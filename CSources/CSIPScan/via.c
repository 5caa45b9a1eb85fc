/*
 * The common shape of one Via hop (RFC 3261 §20.42), read in one pass: `SIP/2.0/TRANSPORT SP host[:port][;params]`,
 * no whitespace but the one SP, no quotes, no IPv6 reference, ending at the end of the value or at a comma. The
 * Swift ViaHop.parseCommonForm builds the hop from what this finds, and anything this declines goes to the full
 * grammar there, so every error (code and offset) has one home. Here, not in Swift: every response reads two hops
 * and every request one, and this is the same walk without a bounds or overflow check per byte.
 */
#include <string.h>

#include "include/CSIPScan.h"

/* The `length` (1-8) bytes at `from` (all before `end`) as a little-endian word, OR-ed with 0x20 in each: for a token,
 * that lower-cases its letters and turns no other byte into a letter ('_' becomes DEL), so the word equals a
 * lower-case name's exactly when the token is that name in any case. */
static inline __attribute__((always_inline)) uint64_t csip_lower_token_word(const uint8_t *buf, size_t from,
                                                                            size_t length, size_t end) {
    uint64_t word = 0;
    if (from + 8 <= end) {
        memcpy(&word, buf + from, 8);
        if (length < 8) word &= (1ull << (8 * length)) - 1;
    } else {
        for (size_t k = 0; k < length; k++) word |= (uint64_t)buf[from + k] << (8 * k);
    }
    return word | (0x2020202020202020ull >> (64 - 8 * length));
}

/* A lower-case name of up to 8 bytes as the word csip_lower_token_word gives. */
#define CSIP_NAME_WORD(c0, c1, c2, c3, c4, c5, c6, c7)                                                              \
    ((uint64_t)(c0) | (uint64_t)(c1) << 8 | (uint64_t)(c2) << 16 | (uint64_t)(c3) << 24 | (uint64_t)(c4) << 32 |      \
     (uint64_t)(c5) << 40 | (uint64_t)(c6) << 48 | (uint64_t)(c7) << 56)

/* 1*DIGIT filling [from, to), at most `limit` (leading zeros allowed, as the full grammar's number reading). */
static inline __attribute__((always_inline)) int csip_whole_number(const uint8_t *buf, size_t from, size_t to, uint32_t limit, uint32_t *value) {
    if (from >= to) return 0;
    uint32_t number = 0;
    for (size_t i = from; i < to; i++) {
        unsigned digit = (unsigned)buf[i] - '0';
        if (digit > 9) return 0;
        number = number * 10 + digit;
        if (number > limit) return 0;
    }
    *value = number;
    return 1;
}

static inline __attribute__((always_inline)) int csip_all_of(const uint8_t *buf, size_t from, size_t to, uint16_t classes) {
    return csip_end_of_run(buf, from, to, classes) == to;
}

/* received= and maddr=: present, not empty, address characters only (a hostname, IPv4 or an IPv6 reference). */
static inline __attribute__((always_inline)) int csip_address_value(const uint8_t *buf, int has_value, size_t from,
                                                                    size_t to, struct csip_span *value) {
    if (!has_value || from == to || !csip_all_of(buf, from, to, CSIP_CHARS_VIA_ADDRESS)) return 0;
    value->off = (uint32_t)from;
    value->len = (uint32_t)(to - from);
    return 1;
}

int csip_via_common_form(const uint8_t *buf, size_t start, size_t end, struct csip_via_hop *hop) {
    if (end < start || end - start < 12 || end > UINT32_MAX) return 0;
    /* "SIP/2.0/" in any case: the three letters lower-cased by OR-ing 0x20, which maps no other byte onto them. */
    uint64_t version;
    memcpy(&version, buf + start, 8);
    if ((version | 0x202020ull) != CSIP_NAME_WORD('s', 'i', 'p', '/', '2', '.', '0', '/')) return 0;
    size_t transport_end = csip_end_of_run(buf, start + 8, end, CSIP_CHARS_TOKEN);
    if (transport_end == start + 8 || transport_end + 1 >= end || buf[transport_end] != ' ') return 0;
    size_t host_start = transport_end + 1;
    size_t host_end = csip_end_of_run(buf, host_start, end, CSIP_CHARS_HOSTNAME);
    if (host_end == host_start) return 0;

    memset(hop, 0, sizeof(*hop));
    hop->transport_end = (uint32_t)transport_end;
    hop->host_start = (uint32_t)host_start;
    hop->host_end = (uint32_t)host_end;
    if (csip_is_common_ipv4(buf, host_start, host_end)) hop->flags |= CSIP_VIA_HOST_IPV4;

    size_t i = host_end;
    if (i < end && buf[i] == ':') {
        struct csip_decimal run = csip_decimal_run(buf, i + 1, end, 5);
        if (run.end == i + 1 || run.value > 65535 || (run.end < end && (unsigned)buf[run.end] - '0' <= 9)) return 0;
        hop->port = (uint16_t)run.value;
        hop->flags |= CSIP_VIA_PORT;
        i = run.end;
    }
    size_t parameters_start = i;
    if (i < end && buf[i] == ';') {
        parameters_start = i + 1;
        do {
            size_t name_start = i + 1;
            size_t name_end = csip_end_of_run(buf, name_start, end, CSIP_CHARS_TOKEN);
            if (name_end == name_start) return 0;
            size_t name_length = name_end - name_start;
            int has_value = 0, value_is_token = 1;
            size_t value_start = name_end, value_end = name_end;
            i = name_end;
            if (i < end && buf[i] == '=') {
                /* Most values are tokens (branch, received); one that is not goes on as gen-value. */
                has_value = 1;
                value_start = i + 1;
                value_end = csip_end_of_run(buf, value_start, end, CSIP_CHARS_TOKEN);
                if (value_end < end && buf[value_end] != ';' && buf[value_end] != ',') {
                    value_is_token = 0;
                    value_end = csip_end_of_run(buf, value_end, end, CSIP_CHARS_GENERIC_VALUE);
                }
                i = value_end;
            }
            if (i != end && buf[i] != ';' && buf[i] != ',') return 0;
            /* The parameters the hop keeps are checked and recorded; a repeat replaces the earlier one (ft: the
             * first with a value is kept). Any other is a token, or token = gen-value, already. */
            uint64_t name = name_length <= 8 ? csip_lower_token_word(buf, name_start, name_length, end) : 0;
            if (name == CSIP_NAME_WORD('b', 'r', 'a', 'n', 'c', 'h', 0, 0)) {
                if (!has_value || value_end == value_start ||
                    (!value_is_token && !csip_all_of(buf, value_start, value_end, CSIP_CHARS_TOKEN)))
                    return 0;
                hop->branch.off = (uint32_t)value_start;
                hop->branch.len = (uint32_t)(value_end - value_start);
                hop->flags |= CSIP_VIA_BRANCH;
            } else if (name == CSIP_NAME_WORD('r', 'e', 'c', 'e', 'i', 'v', 'e', 'd')) {
                if (!csip_address_value(buf, has_value, value_start, value_end, &hop->received)) return 0;
                hop->flags |= CSIP_VIA_RECEIVED;
            } else if (name == CSIP_NAME_WORD('r', 'p', 'o', 'r', 't', 0, 0, 0)) {
                if (has_value) {
                    uint32_t port = 0;
                    if (!csip_whole_number(buf, value_start, value_end, 65535, &port)) return 0;
                    hop->rport = (uint16_t)port;
                    hop->flags = (uint16_t)((hop->flags & ~CSIP_VIA_RPORT_REQUESTED) | CSIP_VIA_RPORT_VALUE);
                } else {
                    hop->rport_name_end = (uint32_t)name_end;
                    hop->flags = (uint16_t)((hop->flags & ~CSIP_VIA_RPORT_VALUE) | CSIP_VIA_RPORT_REQUESTED);
                }
            } else if (name == CSIP_NAME_WORD('t', 't', 'l', 0, 0, 0, 0, 0)) {
                uint32_t ttl = 0;
                if (!has_value || !csip_whole_number(buf, value_start, value_end, 255, &ttl)) return 0;
                hop->ttl = (uint8_t)ttl;
                hop->flags |= CSIP_VIA_TTL;
            } else if (name == CSIP_NAME_WORD('m', 'a', 'd', 'd', 'r', 0, 0, 0)) {
                if (!csip_address_value(buf, has_value, value_start, value_end, &hop->maddr)) return 0;
                hop->flags |= CSIP_VIA_MADDR;
            } else if (name == CSIP_NAME_WORD('f', 't', 0, 0, 0, 0, 0, 0) && has_value &&
                       !(hop->flags & CSIP_VIA_FLOW_TOKEN)) {
                hop->flow_token.off = (uint32_t)value_start;
                hop->flow_token.len = (uint32_t)(value_end - value_start);
                hop->flags |= CSIP_VIA_FLOW_TOKEN;
            }
        } while (i < end && buf[i] == ';');
    }
    if (i != end && buf[i] != ',') return 0;
    hop->end = (uint32_t)i;
    /* Without parameters the (empty) parameter span sits where the hop ends. */
    hop->parameters.off = (uint32_t)(i > parameters_start ? parameters_start : i);
    hop->parameters.len = (uint32_t)(i > parameters_start ? i - parameters_start : 0);
    return 1;
}
