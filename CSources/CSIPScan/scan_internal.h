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

/* Length of each kind's canonical name (0 for CSIP_HDR_OTHER). */
static const uint8_t csip_kind_length[CSIP_HDR_KIND_COUNT] = {
    [CSIP_HDR_OTHER] = 0,
#define CSIP_X_LENGTH(e, n, c) [CSIP_HDR_##e] = (uint8_t)(sizeof(n) - 1),
    CSIP_HEADER_KINDS(CSIP_X_LENGTH)
#undef CSIP_X_LENGTH
};

static inline uint64_t csip_load16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline uint64_t csip_load32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline uint64_t csip_load64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/*
 * Equality of a header name (token characters only, as the scanner guarantees) with a lower-case table name of the
 * same length (2 to 23 bytes: CSIP_MAX_KIND_NAME is 24, checked at init). OR-ing 0x20 lower-cases letters and leaves '-', digits and the
 * table's other characters alone; no other token character becomes a letter that way, so the comparison is exact.
 * Whole words only, overlapping at the end (a 5-byte name is compared as bytes 0-3 and 1-4): no byte outside
 * name[0, len) is read and no byte-at-a-time tail loop runs.
 */
__attribute__((always_inline)) static inline int csip_token_equals_lower(const uint8_t *name, const uint8_t *lower, size_t len) {
    if (len >= 8) { /* 8-23 bytes: two or three words */
        uint64_t diff = ((csip_load64(name) | 0x2020202020202020ull) ^ csip_load64(lower)) |
                        ((csip_load64(name + len - 8) | 0x2020202020202020ull) ^ csip_load64(lower + len - 8));
        if (len > 16) diff |= (csip_load64(name + 8) | 0x2020202020202020ull) ^ csip_load64(lower + 8);
        return diff == 0;
    }
    if (len >= 4) {
        return (((csip_load32(name) | 0x20202020u) ^ csip_load32(lower)) |
                ((csip_load32(name + len - 4) | 0x20202020u) ^ csip_load32(lower + len - 4))) == 0;
    }
    return (((csip_load16(name) | 0x2020u) ^ csip_load16(lower)) |
            ((csip_load16(name + len - 2) | 0x2020u) ^ csip_load16(lower + len - 2))) == 0;
}

_Static_assert(CSIP_MAX_KIND_NAME <= 24, "csip_token_equals_lower compares at most three words");

/*
 * Classification through the scanner's (letter, length) index: same answers as csip_classify_header (tested).
 * `readable` is how many bytes from name on may be read (at least len): with 8 or more, a name of up to 8 bytes is
 * compared as one word with the bytes past it shifted out.
 */
__attribute__((always_inline)) static inline uint32_t csip_classify_indexed(const struct csip_scanner *scanner,
                                                                            const uint8_t *name, size_t len,
                                                                            size_t readable) {
    unsigned letter = (unsigned)(uint8_t)(name[0] | 0x20) - 'a';
    if (letter >= 26) return CSIP_HDR_OTHER;
    if (len == 1) return scanner->compact_kinds[letter];
    const uint8_t *candidates = scanner->kinds_by_letter[letter][len & (CSIP_LENGTH_BUCKETS - 1)];
    uint32_t kind = candidates[0]; /* most buckets hold one kind: try it before the loop */
    if (kind == 0) return CSIP_HDR_OTHER;
    if (csip_kind_length[kind] == len) {
        if (len <= 8 && readable >= 8) {
            uint64_t diff = (csip_load64(name) | 0x2020202020202020ull) ^ csip_load64(scanner->lower_names[kind]);
            if ((diff << (8 * (8 - len))) == 0) return kind;
        } else if (csip_token_equals_lower(name, scanner->lower_names[kind], len)) {
            return kind;
        }
    }
    for (int i = 1; i < CSIP_KINDS_PER_BUCKET && candidates[i] != 0; i++) {
        kind = candidates[i];
        if (csip_kind_length[kind] == len && csip_token_equals_lower(name, scanner->lower_names[kind], len)) {
            return kind;
        }
    }
    return CSIP_HDR_OTHER;
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
