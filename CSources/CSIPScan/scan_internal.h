/* Declarations shared by scan.c and scan_simd.c; not part of the public header. */
#ifndef CSIPSCAN_INTERNAL_H
#define CSIPSCAN_INTERNAL_H

#include <string.h>

#include "include/CSIPScan.h"

size_t csip_find_control_scalar(const uint8_t *buf, size_t from, size_t to);
size_t csip_find_control_sse42(const uint8_t *buf, size_t from, size_t to);
size_t csip_find_control_avx2(const uint8_t *buf, size_t from, size_t to);
/** 1 when this CPU can run the given CSIP_SIMD_* level. */
int csip_cpu_supports(uint32_t level);

/* The bounds of one scan, fixed before the first byte is read. */
struct csip_scan_bounds {
    size_t length;      /* bytes the caller has */
    size_t end;         /* bytes we may read: min(length, max_message_size) */
    size_t max_message;
    size_t max_line;
    uint32_t max_headers; /* min(limit, caller's capacity) */
};

/*
 * The start line and header lines from `pos` (the first start-line byte, pos < bounds->length) on: one function per
 * SIMD level, all generated from scan_lines.h, all with identical results. result is zeroed by the caller.
 */
int csip_scan_lines_scalar(const struct csip_scanner *scanner, const uint8_t *buf, size_t pos,
                           const struct csip_scan_bounds *bounds, struct csip_header *headers,
                           struct csip_scan_result *result);
int csip_scan_lines_sse42(const struct csip_scanner *scanner, const uint8_t *buf, size_t pos,
                          const struct csip_scan_bounds *bounds, struct csip_header *headers,
                          struct csip_scan_result *result);
int csip_scan_lines_avx2(const struct csip_scanner *scanner, const uint8_t *buf, size_t pos,
                         const struct csip_scan_bounds *bounds, struct csip_header *headers,
                         struct csip_scan_result *result);

static inline uint64_t csip_load16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline uint64_t csip_load64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/*
 * The header-kind index (scanner->kind_keys and kind_info, built by csip_scanner_init) is keyed by a name's bytes OR 0x20: that
 * lower-cases letters and leaves '-' and digits (all a table name holds, checked at init) alone, and turns no other
 * token character into a letter, so for token names equal keys mean names equal ignoring case.
 */
#define CSIP_CASE_BITS 0x2020202020202020ull
/* Set in the key of a name longer than 8 bytes; no name byte has bit 7. */
#define CSIP_LONG_NAME_KEY (1ull << 63)
/* Puts every name of the table, full and compact, in a slot of its own (a search over odd multipliers); a kind added
 * later still works, it may only share a slot and cost a probe. */
#define CSIP_KIND_HASH_MULTIPLIER 0x61c6c759c2dd555bull

_Static_assert(CSIP_KIND_SLOTS == 256, "csip_kind_hash keeps 8 bits");
_Static_assert(CSIP_MAX_KIND_NAME <= 24, "a long name is compared as at most three words");

/* Slot where probing for a key starts. For a long name, hash its key ^ its last word (names sharing their first 8
 * bytes, as the Content- family, mostly get slots of their own). */
static inline size_t csip_kind_hash(uint64_t x) {
    return (size_t)((x * CSIP_KIND_HASH_MULTIPLIER) >> 56);
}

/* The key bytes of a name of up to 8 bytes. */
static const uint64_t csip_key_bytes[9] = {
    0, 0xff, 0xffff, 0xffffff, 0xffffffffull, 0xffffffffffull, 0xffffffffffffull, 0xffffffffffffffull, ~0ull,
};

/*
 * Kind and flags (CSIP_HEADER_COMPACT for a compact form) of a header name of token characters, len >= 1, as a struct
 * csip_kind_info in a 32-bit word (0 for CSIP_HDR_OTHER): the same kinds as csip_classify_header (tested). With
 * word_readable (8 bytes from name on may be read), a short name is read as one word and the bytes past it masked
 * off; no other byte past name[len) is read. Probing ends at an empty slot: init always leaves one.
 */
__attribute__((always_inline)) static inline uint32_t csip_classify_indexed(const struct csip_scanner *scanner,
                                                                            const uint8_t *name, size_t len,
                                                                            int word_readable) {
    if (len <= 8) {
        uint64_t key = 0;
        if (word_readable) {
            key = (csip_load64(name) | CSIP_CASE_BITS) & csip_key_bytes[len];
        } else {
            for (size_t k = 0; k < len; k++) key |= (uint64_t)(name[k] | 0x20) << (8 * k);
        }
        for (size_t i = csip_kind_hash(key);; i = (i + 1) % CSIP_KIND_SLOTS) {
            /* equal keys: equal names, and lengths, as no name byte is 0 */
            if (scanner->kind_keys[i] == key || scanner->kind_info[i] == 0) return scanner->kind_info[i];
        }
    }
    if (len >= CSIP_MAX_KIND_NAME) return 0;
    uint64_t key = csip_load64(name) | CSIP_CASE_BITS | CSIP_LONG_NAME_KEY;
    uint64_t last = csip_load64(name + len - 8) | CSIP_CASE_BITS;
    for (size_t i = csip_kind_hash(key ^ last);; i = (i + 1) % CSIP_KIND_SLOTS) {
        uint32_t info = scanner->kind_info[i];
        if (info == 0) return 0;
        if (scanner->kind_keys[i] == key) { /* the first 8 bytes match: the last 8 and the length must too */
            struct csip_kind_info fields;
            memcpy(&fields, &info, sizeof(fields));
            const uint8_t *lower = scanner->lower_names[fields.kind];
            uint64_t diff = last ^ csip_load64(lower + len - 8);
            if (len > 16) diff |= (csip_load64(name + 8) | CSIP_CASE_BITS) ^ csip_load64(lower + 8);
            /* no name byte is 0: a table name matching up to len is at least len long, lower[len] == 0 says no longer */
            if (diff == 0 && lower[len] == 0) return info;
        }
    }
}

/* p[0] is CR and p[1] LF, read as one 16-bit word. */
static inline int csip_is_crlf(const uint8_t *p) {
    static const uint8_t crlf[2] = {'\r', '\n'};
    return csip_load16(p) == csip_load16(crlf);
}

static inline int csip_scan_fail(struct csip_scan_result *result, uint32_t error, size_t offset) {
    result->error = error;
    result->error_offset = (uint32_t)offset;
    return CSIP_SCAN_INVALID;
}

/* The bytes ran out before the headers ended: wait for more, unless the size cap already stopped us. */
static inline int csip_scan_need_more(const struct csip_scan_bounds *bounds, struct csip_scan_result *result) {
    if (bounds->length >= bounds->max_message) {
        return csip_scan_fail(result, CSIP_ERR_MESSAGE_TOO_LARGE, bounds->end);
    }
    return CSIP_SCAN_INCOMPLETE;
}

#endif
