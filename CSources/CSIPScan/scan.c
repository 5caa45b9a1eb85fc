/*
 * The message scanner: start line, header lines (with folding) and the body offset, as spans.
 * See include/CSIPScan.h for the contract. No allocation, no global mutable state.
 */
#include <errno.h>
#include <string.h>

#include "scan_internal.h"

enum {
    DEFAULT_MAX_MESSAGE_SIZE = 65536,
    DEFAULT_MAX_LINE_LENGTH = 8192,
    DEFAULT_MAX_HEADERS = 256,
};

/* token characters of RFC 3261 §25.1: alphanum and - . ! % * _ + ` ' ~ */
static const uint8_t token_chars[256] = {
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
    ['-'] = 1, ['.'] = 1, ['!'] = 1, ['%'] = 1, ['*'] = 1, ['_'] = 1, ['+'] = 1, ['`'] = 1, ['\''] = 1, ['~'] = 1,
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

static inline uint8_t ascii_lower(uint8_t c) {
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

static inline int is_wsp(uint8_t c) {
    return c == ' ' || c == '\t';
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

/*
 * Equality of a header name (token characters only, as the scanner guarantees) with a lower-case table name.
 * OR-ing 0x20 lower-cases letters and leaves '-', digits and the table's other characters alone; no other token
 * character becomes a letter that way, so the comparison is exact. Eight bytes at a time.
 */
static int token_equals_lower(const uint8_t *name, const uint8_t *lower, size_t len) {
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t a, b;
        memcpy(&a, name + i, 8);
        memcpy(&b, lower + i, 8);
        if ((a | 0x2020202020202020ull) != b) return 0;
    }
    for (; i < len; i++) {
        if ((uint8_t)(name[i] | 0x20) != lower[i]) return 0;
    }
    return 1;
}

/* Classification through the scanner's (letter, length) index: same answers as csip_classify_header (tested). */
static uint32_t classify_indexed(const struct csip_scanner *scanner, const uint8_t *name, size_t len) {
    unsigned letter = (unsigned)(uint8_t)(name[0] | 0x20) - 'a';
    if (letter >= 26) return CSIP_HDR_OTHER;
    if (len == 1) return scanner->compact_kinds[letter];
    const uint8_t *candidates = scanner->kinds_by_letter[letter][len & (CSIP_LENGTH_BUCKETS - 1)];
    for (int i = 0; i < CSIP_KINDS_PER_BUCKET && candidates[i] != 0; i++) {
        const struct kind_entry *entry = &kind_table[candidates[i]];
        if (entry->length == len &&
            token_equals_lower(name, scanner->lower_names[candidates[i]], len)) {
            return candidates[i];
        }
    }
    return CSIP_HDR_OTHER;
}

static int build_kind_index(struct csip_scanner *scanner) {
    memset(scanner->kinds_by_letter, 0, sizeof(scanner->kinds_by_letter));
    memset(scanner->compact_kinds, 0, sizeof(scanner->compact_kinds));
    memset(scanner->lower_names, 0, sizeof(scanner->lower_names));
    for (uint32_t k = 1; k < CSIP_HDR_KIND_COUNT; k++) {
        const struct kind_entry *entry = &kind_table[k];
        if (entry->length >= CSIP_MAX_KIND_NAME) return -ENOSPC;
        for (uint8_t i = 0; i < entry->length; i++) scanner->lower_names[k][i] = ascii_lower((uint8_t)entry->name[i]);
        uint8_t letter = (uint8_t)(scanner->lower_names[k][0] - 'a');
        if (letter >= 26) return -EINVAL;
        uint8_t *bucket = scanner->kinds_by_letter[letter][entry->length & (CSIP_LENGTH_BUCKETS - 1)];
        int slot = 0;
        while (slot < CSIP_KINDS_PER_BUCKET && bucket[slot] != 0) slot++;
        if (slot == CSIP_KINDS_PER_BUCKET) return -ENOSPC;
        bucket[slot] = (uint8_t)k;
        if (entry->compact != 0) scanner->compact_kinds[entry->compact - 'a'] = (uint8_t)k;
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

/* The bounds of one scan, fixed before the first byte is read. */
struct scan_bounds {
    size_t length;       /* bytes the caller has */
    size_t end;          /* bytes we may read: min(length, max_message_size) */
    size_t max_message;
    size_t max_line;
};

static int fail(struct csip_scan_result *result, uint32_t error, size_t offset) {
    result->error = error;
    result->error_offset = (uint32_t)offset;
    return CSIP_SCAN_INVALID;
}

/* The bytes ran out before the headers ended: wait for more, unless the size cap already stopped us. */
static int need_more(const struct scan_bounds *bounds, struct csip_scan_result *result) {
    if (bounds->length >= bounds->max_message) return fail(result, CSIP_ERR_MESSAGE_TOO_LARGE, bounds->end);
    return CSIP_SCAN_INCOMPLETE;
}

/*
 * Finds the CRLF that ends the line containing `from`; the line (or folded header) began at `line_start`, which
 * bounds its length. HTAB is allowed. Other control characters are an error in the start line (flags == NULL);
 * in a header value they are legal only as a quoted-pair inside a quoted string (RFC 3261 §25.1, RFC 4475
 * intmeth), which needs quote tracking, so they are flagged CSIP_HEADER_CONTROL_CHARS for the parser to judge.
 * On COMPLETE, *cr is the CR.
 */
static int find_line_end(const struct csip_scanner *scanner, const uint8_t *buf, size_t from, size_t line_start,
                         const struct scan_bounds *bounds, uint16_t *flags, size_t *cr,
                         struct csip_scan_result *result) {
    size_t limit = line_start + bounds->max_line + 1;
    if (limit > bounds->end) limit = bounds->end;
    size_t i = from;
    for (;;) {
        i = (i < limit) ? scanner->find_control(buf, i, limit) : limit;
        if (i >= limit) {
            if (limit < bounds->end) return fail(result, CSIP_ERR_LINE_TOO_LONG, line_start);
            return need_more(bounds, result);
        }
        switch (buf[i]) {
        case '\t':
            i++;
            continue;
        case '\r':
            if (i + 1 >= bounds->end) return need_more(bounds, result);
            if (buf[i + 1] != '\n') return fail(result, CSIP_ERR_BARE_CR, i);
            *cr = i;
            return CSIP_SCAN_COMPLETE;
        case '\n': return fail(result, CSIP_ERR_BARE_LF, i);
        default:
            if (flags == NULL) return fail(result, buf[i] == 0 ? CSIP_ERR_NUL : CSIP_ERR_CONTROL_CHAR, i);
            *flags |= CSIP_HEADER_CONTROL_CHARS;
            i++;
            continue;
        }
    }
}

/* Extends a header's value with one continuation line [from, cr). */
static void append_continuation(struct csip_header *header, const uint8_t *buf, size_t from, size_t cr) {
    header->flags |= CSIP_HEADER_CONTINUED;
    size_t first = from;
    while (first < cr && is_wsp(buf[first])) first++;
    if (first == cr) return; /* an all-blank continuation adds nothing */
    size_t last = cr;
    while (last > first && is_wsp(buf[last - 1])) last--;
    if (header->value.len == 0) {
        header->value.off = (uint32_t)first;
    } else {
        header->flags |= CSIP_HEADER_FOLDED;
    }
    header->value.len = (uint32_t)(last - header->value.off);
}

int csip_scan_message(const struct csip_scanner *scanner, const uint8_t *buf, size_t len,
                      const struct csip_scan_limits *limits, struct csip_header *headers,
                      uint32_t header_capacity, struct csip_scan_result *result) {
    if (scanner == NULL || scanner->find_control == NULL || result == NULL) return -EINVAL;
    if ((buf == NULL && len > 0) || (headers == NULL && header_capacity > 0)) return -EINVAL;
    if (len > UINT32_MAX) return -EINVAL;
    memset(result, 0, sizeof(*result));

    struct scan_bounds bounds;
    bounds.max_message = (limits && limits->max_message_size) ? limits->max_message_size : DEFAULT_MAX_MESSAGE_SIZE;
    bounds.max_line = (limits && limits->max_line_length) ? limits->max_line_length : DEFAULT_MAX_LINE_LENGTH;
    uint32_t max_headers = (limits && limits->max_headers) ? limits->max_headers : DEFAULT_MAX_HEADERS;
    if (max_headers > header_capacity) max_headers = header_capacity;
    bounds.length = len;
    bounds.end = len < bounds.max_message ? len : bounds.max_message;

    /* RFC 3261 §7.5: CRLFs before the start line are ignored (stream keep-alives, RFC 5626). */
    size_t pos = 0;
    while (pos + 1 < bounds.end && buf[pos] == '\r' && buf[pos + 1] == '\n') pos += 2;
    if (pos >= len) return fail(result, CSIP_ERR_EMPTY, pos);

    size_t cr = 0;
    int status = find_line_end(scanner, buf, pos, pos, &bounds, NULL, &cr, result);
    if (status != CSIP_SCAN_COMPLETE) return status;
    result->start_line.off = (uint32_t)pos;
    result->start_line.len = (uint32_t)(cr - pos);
    pos = cr + 2;

    uint32_t count = 0;
    size_t header_start = 0;
    for (;;) {
        if (pos >= bounds.end) return need_more(&bounds, result);
        uint8_t c = buf[pos];

        if (c == '\r') { /* the empty line: headers end here */
            if (pos + 1 >= bounds.end) return need_more(&bounds, result);
            if (buf[pos + 1] != '\n') return fail(result, CSIP_ERR_BARE_CR, pos);
            result->header_count = count;
            result->body_offset = (uint32_t)(pos + 2);
            return CSIP_SCAN_COMPLETE;
        }
        if (c == '\n') return fail(result, CSIP_ERR_BARE_LF, pos);

        if (is_wsp(c)) { /* a continuation of the previous header (RFC 3261 §7.3.1) */
            if (count == 0) return fail(result, CSIP_ERR_FOLDED_START_LINE, pos);
            status = find_line_end(scanner, buf, pos, header_start, &bounds, &headers[count - 1].flags, &cr, result);
            if (status != CSIP_SCAN_COMPLETE) return status;
            append_continuation(&headers[count - 1], buf, pos, cr);
            result->header_flags |= headers[count - 1].flags;
            pos = cr + 2;
            continue;
        }

        if (count >= max_headers) return fail(result, CSIP_ERR_TOO_MANY_HEADERS, pos);
        header_start = pos;
        size_t i = pos;
        while (i < bounds.end && token_chars[buf[i]]) i++;
        if (i - header_start > bounds.max_line) return fail(result, CSIP_ERR_LINE_TOO_LONG, header_start);
        if (i >= bounds.end) return need_more(&bounds, result);
        size_t name_end = i;
        uint16_t flags = 0;
        if (is_wsp(buf[i])) {
            while (i < bounds.end && is_wsp(buf[i])) i++;
            if (i >= bounds.end) return need_more(&bounds, result);
            flags |= CSIP_HEADER_SPACE_BEFORE_COLON;
        }
        if (buf[i] != ':') {
            if (buf[i] == '\r' || buf[i] == '\n' || (flags & CSIP_HEADER_SPACE_BEFORE_COLON)) {
                return fail(result, CSIP_ERR_MISSING_COLON, i);
            }
            return fail(result, CSIP_ERR_INVALID_HEADER_NAME, i);
        }
        if (name_end == header_start) return fail(result, CSIP_ERR_EMPTY_HEADER_NAME, header_start);
        i++; /* past the colon */

        status = find_line_end(scanner, buf, i, header_start, &bounds, &flags, &cr, result);
        if (status != CSIP_SCAN_COMPLETE) return status;
        size_t value_start = i;
        while (value_start < cr && is_wsp(buf[value_start])) value_start++;
        size_t value_end = cr;
        while (value_end > value_start && is_wsp(buf[value_end - 1])) value_end--;

        struct csip_header *header = &headers[count];
        header->name.off = (uint32_t)header_start;
        header->name.len = (uint32_t)(name_end - header_start);
        header->value.off = (uint32_t)value_start;
        header->value.len = (uint32_t)(value_end - value_start);
        header->kind = (uint16_t)classify_indexed(scanner, buf + header_start, name_end - header_start);
        if (name_end - header_start == 1 && header->kind != CSIP_HDR_OTHER) flags |= CSIP_HEADER_COMPACT;
        header->flags = flags;
        result->header_flags |= flags;
        count++;
        pos = cr + 2;
    }
}
