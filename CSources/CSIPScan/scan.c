/*
 * The message scanner: start line, header lines (with folding) and the body offset, as spans.
 * See include/CSIPScan.h for the contract. No allocation, no global mutable state.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "scan_internal.h"

enum {
    DEFAULT_MAX_MESSAGE_SIZE = 65536,
    DEFAULT_MAX_LINE_LENGTH = 8192,
    DEFAULT_MAX_HEADERS = 256,
};

struct kind_entry {
    const char *name;
    uint8_t length;
    uint8_t compact;
};

static const struct kind_entry kind_table[CSIP_HDR_KIND_COUNT] = {
    [CSIP_HDR_OTHER] = {NULL, 0, 0},
#define CSIP_X_ENTRY(e, n, c) [CSIP_HDR_##e] = {n, (uint8_t)(sizeof(n) - 1), (uint8_t)(c)},
    CSIP_HEADER_KINDS(CSIP_X_ENTRY)
#undef CSIP_X_ENTRY
};

_Static_assert(CSIP_HDR_KIND_COUNT <= 64, "HeaderSet in Swift is a 64-bit mask");
_Static_assert(sizeof(struct csip_span) == 8, "Swift reads csip_span as two UInt32");
_Static_assert(sizeof(struct csip_header) == 20, "csip_header layout is mirrored by Swift callers");
_Static_assert(offsetof(struct csip_header, flags) == offsetof(struct csip_header, kind) + 2 &&
                   sizeof(struct csip_kind_info) == sizeof(uint32_t),
               "the scanner copies a csip_kind_info over a header's kind and flags");

static inline uint8_t ascii_lower(uint8_t c) {
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

static int equal_ignoring_case(const uint8_t *a, const char *b, size_t len) {
    for (size_t i = 0; i < len; i++) {
        if (ascii_lower(a[i]) != ascii_lower((uint8_t)b[i])) return 0;
    }
    return 1;
}

uint32_t csip_classify_header(const uint8_t *name, size_t len) {
    if (name == NULL || len == 0 || len > 255) return CSIP_HDR_OTHER;
    uint8_t first = ascii_lower(name[0]);
    if (len == 1) {
        for (uint32_t k = 1; k < CSIP_HDR_KIND_COUNT; k++) {
            if (kind_table[k].compact == first) return k;
        }
        return CSIP_HDR_OTHER;
    }
    for (uint32_t k = 1; k < CSIP_HDR_KIND_COUNT; k++) {
        const struct kind_entry *entry = &kind_table[k];
        if (entry->length == len && ascii_lower((uint8_t)entry->name[0]) == first &&
            equal_ignoring_case(name, entry->name, len)) {
            return k;
        }
    }
    return CSIP_HDR_OTHER;
}

/* Inserts a name into the first free slot from its hash on; one slot always stays free to end failed lookups. */
static int insert_kind(struct csip_scanner *scanner, uint32_t *used, uint64_t key, uint64_t hash_input, uint32_t kind,
                       uint16_t flags) {
    if (*used + 1 >= CSIP_KIND_SLOTS) return -ENOSPC;
    size_t i = csip_kind_hash(hash_input);
    while (scanner->kind_info[i] != 0) i = (i + 1) % CSIP_KIND_SLOTS;
    scanner->kind_keys[i] = key;
    struct csip_kind_info info = {.kind = (uint16_t)kind, .flags = flags};
    memcpy(&scanner->kind_info[i], &info, sizeof(info));
    *used += 1;
    return 0;
}

static int build_kind_index(struct csip_scanner *scanner) {
    memset(scanner->kind_info, 0, sizeof(scanner->kind_info));
    memset(scanner->kind_keys, 0, sizeof(scanner->kind_keys));
    memset(scanner->lower_names, 0, sizeof(scanner->lower_names));
    uint32_t used = 0;
    /* Full names in table order (the common ones first, so they are the ones that never probe), then compact forms. */
    for (uint32_t k = 1; k < CSIP_HDR_KIND_COUNT; k++) {
        const struct kind_entry *entry = &kind_table[k];
        if (entry->length < 2 || entry->length >= CSIP_MAX_KIND_NAME) return -ENOSPC;
        uint8_t *lower = scanner->lower_names[k];
        for (uint8_t i = 0; i < entry->length; i++) {
            uint8_t c = (uint8_t)entry->name[i];
            lower[i] = ascii_lower(c);
            if ((uint8_t)(c | 0x20) != lower[i]) return -EINVAL; /* the keys fold case by OR-ing 0x20 */
        }
        uint64_t key = csip_load64(lower); /* zero-padded past the name */
        int status;
        if (entry->length <= 8) {
            status = insert_kind(scanner, &used, key, key, k, 0);
        } else {
            key |= CSIP_LONG_NAME_KEY;
            status = insert_kind(scanner, &used, key, key ^ csip_load64(lower + entry->length - 8), k, 0);
        }
        if (status != 0) return status;
    }
    for (uint32_t k = 1; k < CSIP_HDR_KIND_COUNT; k++) {
        uint8_t compact = kind_table[k].compact;
        if (compact == 0) continue;
        if (compact < 'a' || compact > 'z') return -EINVAL;
        int status = insert_kind(scanner, &used, compact, compact, k, CSIP_HEADER_COMPACT);
        if (status != 0) return status;
    }
    return 0;
}

const char *csip_header_kind_name(uint32_t kind) {
    if (kind == CSIP_HDR_OTHER || kind >= CSIP_HDR_KIND_COUNT) return NULL;
    return kind_table[kind].name;
}

int csip_scanner_init(struct csip_scanner *scanner, uint32_t requested_level) {
    if (scanner == NULL) return -EINVAL;
    uint32_t level = requested_level;
    if (level == CSIP_SIMD_AUTO) {
        level = csip_cpu_supports(CSIP_SIMD_AVX2)    ? CSIP_SIMD_AVX2
                : csip_cpu_supports(CSIP_SIMD_SSE42) ? CSIP_SIMD_SSE42
                                                     : CSIP_SIMD_SCALAR;
    }
    switch (level) {
    case CSIP_SIMD_SCALAR: scanner->find_control = csip_find_control_scalar; break;
    case CSIP_SIMD_SSE42: scanner->find_control = csip_find_control_sse42; break;
    case CSIP_SIMD_AVX2: scanner->find_control = csip_find_control_avx2; break;
    default: return -EINVAL;
    }
    if (!csip_cpu_supports(level)) {
        scanner->find_control = NULL;
        return -ENOTSUP;
    }
    scanner->simd_level = level;
    return build_kind_index(scanner);
}

size_t csip_find_control(const struct csip_scanner *scanner, const uint8_t *buf, size_t from, size_t to) {
    if (scanner == NULL || scanner->find_control == NULL || buf == NULL || from >= to) return to;
    return scanner->find_control(buf, from, to);
}

int csip_scan_message(const struct csip_scanner *scanner, const uint8_t *buf, size_t len,
                      const struct csip_scan_limits *limits, struct csip_header *headers,
                      uint32_t header_capacity, struct csip_scan_result *result) {
    if (scanner == NULL || scanner->find_control == NULL || result == NULL) return -EINVAL;
    if ((buf == NULL && len > 0) || (headers == NULL && header_capacity > 0)) return -EINVAL;
    if (len > UINT32_MAX) return -EINVAL;
    memset(result, 0, sizeof(*result));

    struct csip_scan_bounds bounds;
    bounds.max_message = (limits && limits->max_message_size) ? limits->max_message_size : DEFAULT_MAX_MESSAGE_SIZE;
    bounds.max_line = (limits && limits->max_line_length) ? limits->max_line_length : DEFAULT_MAX_LINE_LENGTH;
    bounds.max_headers = (limits && limits->max_headers) ? limits->max_headers : DEFAULT_MAX_HEADERS;
    if (bounds.max_headers > header_capacity) bounds.max_headers = header_capacity;
    bounds.length = len;
    bounds.end = len < bounds.max_message ? len : bounds.max_message;

    /* RFC 3261 §7.5: CRLFs before the start line are ignored (stream keep-alives, RFC 5626). */
    size_t pos = 0;
    while (pos + 1 < bounds.end && buf[pos] == '\r' && buf[pos + 1] == '\n') pos += 2;
    if (pos >= len) return csip_scan_fail(result, CSIP_ERR_EMPTY, pos);

    /* One direct call per message into the level's line walk (scan_lines.h), not one indirect call per line. */
    switch (scanner->simd_level) {
    case CSIP_SIMD_AVX2: return csip_scan_lines_avx2(scanner, buf, pos, &bounds, headers, result);
    case CSIP_SIMD_SSE42: return csip_scan_lines_sse42(scanner, buf, pos, &bounds, headers, result);
    default: return csip_scan_lines_scalar(scanner, buf, pos, &bounds, headers, result);
    }
}
