/*
 * The line walk of the message scanner, written once and instantiated per SIMD level by scan_simd.c:
 *
 *   #define SCAN_LINES_NAME   csip_scan_lines_avx2            the function to define
 *   #define SCAN_LINES_TARGET __attribute__((target("avx2")))  its target attribute (may be empty)
 *   #define SCAN_LINES_MASKS  masks64_avx2                     optional, see below
 *   #include "scan_lines.h"
 *
 * With SCAN_LINES_MASKS (a function (const uint8_t *p, uint64_t *ctl, uint64_t *nontoken) that sets bit k of each
 * mask when byte p[k] is a control character other than HTAB, resp. not a token character, for k in 0-63), the two
 * searches the walk needs (next control character, end of a header name) read 64-bit masks of the 64-byte block
 * holding the position, computed once per block (simdjson style): a line costs a shift and a tzcnt, not a loop. A
 * block is at a multiple of 64 from buf; the last one (the block holding `end`) is loaded as the 64 bytes that end at
 * `end`, its masks shifted into place, and a message under 64 bytes is copied to a zeroed stack block: nothing at or
 * past `end` is read. Bits for positions from `end` on are set in both masks, so neither search runs off the end.
 * Without SCAN_LINES_MASKS both searches are byte loops over tables (the scalar level).
 *
 * Every level therefore runs the same rules in the same order; only how the next interesting byte is found differs.
 */
#ifndef CSIP_SCAN_LINES_SHARED
#define CSIP_SCAN_LINES_SHARED

/* Control characters that end or break a line: 0x00-0x1F and 0x7F, HTAB excepted. */
static const uint8_t csip_line_control[256] = {
    [0x00 ... 0x08] = 1, [0x0A ... 0x1F] = 1, [0x7F] = 1,
};

/*
 * The masks of one 64-byte block: bit k is position block_end - 64 + k, that is bit (position & 63), so a shift by the
 * position itself (x86 masks the count) lines a mask up with it. block_end is 0 before the first load.
 * Volatile: kept in memory, where a use costs the same one instruction as in a register (the shift needs a copy
 * anyway, block_end is compared in place), which leaves the registers to the walk's other values (LLVM otherwise
 * spilled those in the fast loop), and LLVM does not take a mask tested right after its load apart bit by bit.
 */
struct csip_block_cursor {
    volatile size_t block_end;
    volatile uint64_t control;
    volatile uint64_t nontoken;
};

struct csip_block_masks {
    uint64_t control;
    uint64_t nontoken;
};

static inline int csip_is_wsp(uint8_t c) {
    return c == ' ' || c == '\t';
}

/* Extends a header's value with one continuation line [from, cr). */
static inline void csip_append_continuation(struct csip_header *header, const uint8_t *buf, size_t from, size_t cr) {
    header->flags |= CSIP_HEADER_CONTINUED;
    size_t first = from;
    while (first < cr && csip_is_wsp(buf[first])) first++;
    if (first == cr) return; /* an all-blank continuation adds nothing */
    size_t last = cr;
    while (last > first && csip_is_wsp(buf[last - 1])) last--;
    if (header->value.len == 0) {
        header->value.off = (uint32_t)first;
    } else {
        header->flags |= CSIP_HEADER_FOLDED;
    }
    header->value.len = (uint32_t)(last - header->value.off);
}

#endif /* CSIP_SCAN_LINES_SHARED */

#define CSIP_PASTE2(a, b) a##_##b
#define CSIP_PASTE(a, b) CSIP_PASTE2(a, b)
#define CSIP_LOCAL(name) CSIP_PASTE(SCAN_LINES_NAME, name)

#ifdef SCAN_LINES_MASKS

/* The masks of a message under 64 bytes: it is copied to a zeroed block, and the zero padding is control and
 * non-token, so bits past end come set. Out of line: the walk needs no 64-byte aligned stack frame. */
SCAN_LINES_TARGET __attribute__((noinline)) static struct csip_block_masks CSIP_LOCAL(short_masks)(
    const uint8_t *buf, size_t end) {
    uint8_t block[64];
    memset(block, 0, sizeof(block));
    memcpy(block, buf, end);
    struct csip_block_masks masks;
    SCAN_LINES_MASKS(block, &masks.control, &masks.nontoken);
    return masks;
}

/* Loads the masks of the block holding `at` (at < end). */
SCAN_LINES_TARGET __attribute__((always_inline)) static inline void CSIP_LOCAL(load)(struct csip_block_cursor *cursor, const uint8_t *buf,
                                                      size_t at, size_t end) {
    size_t base = at & ~(size_t)63;
    cursor->block_end = base + 64;
    if (base + 64 <= end) {
        uint64_t control, nontoken;
        SCAN_LINES_MASKS(buf + base, &control, &nontoken);
        cursor->control = control;
        cursor->nontoken = nontoken;
    } else if (end >= 64) {
        /* The last, partial block: take the 64 bytes ending at `end` and shift them into place. */
        uint64_t control, nontoken;
        SCAN_LINES_MASKS(buf + end - 64, &control, &nontoken);
        unsigned shift = (unsigned)(base + 64 - end); /* 1-63: base < at < end < base + 64 */
        uint64_t past_end = ~0ull << (end - base);     /* end - base is 1-63 */
        cursor->control = (control >> shift) | past_end;
        cursor->nontoken = (nontoken >> shift) | past_end;
    } else { /* under 64 bytes in all (base is 0) */
        struct csip_block_masks masks = CSIP_LOCAL(short_masks)(buf, end);
        cursor->control = masks.control;
        cursor->nontoken = masks.nontoken;
    }
}

/* First byte in [i, limit) marked in the block masks, control characters (not HTAB) when `control`, else bytes
 * that are not token characters; or limit. i < limit <= end. `control` is a constant at every call, so each
 * caller compiles to a loop over one mask. */
SCAN_LINES_TARGET __attribute__((always_inline)) static inline size_t CSIP_LOCAL(find_marked)(struct csip_block_cursor *cursor,
                                                               const uint8_t *buf, size_t i, size_t limit,
                                                               size_t end, int control) {
    for (;;) {
        if (i >= cursor->block_end) CSIP_LOCAL(load)(cursor, buf, i, end);
        uint64_t mask = (control ? cursor->control : cursor->nontoken) >> (i & 63);
        if (mask != 0) {
            size_t found = i + (size_t)__builtin_ctzll(mask);
            return found < limit ? found : limit;
        }
        i = cursor->block_end;
        if (i >= limit) return limit;
    }
}

/* First control character (not HTAB) in [i, limit), or limit. i < limit <= end. */
SCAN_LINES_TARGET __attribute__((always_inline)) static inline size_t CSIP_LOCAL(find_control)(struct csip_block_cursor *cursor,
                                                                const uint8_t *buf, size_t i, size_t limit,
                                                                size_t end) {
    return CSIP_LOCAL(find_marked)(cursor, buf, i, limit, end, 1);
}

/* First byte in [i, end) that is not a token character, or end. i < end. */
SCAN_LINES_TARGET __attribute__((always_inline)) static inline size_t CSIP_LOCAL(find_nontoken)(struct csip_block_cursor *cursor,
                                                                 const uint8_t *buf, size_t i, size_t end) {
    return CSIP_LOCAL(find_marked)(cursor, buf, i, end, end, 0);
}

/*
 * For the fast loop: the end of the name (first non-token byte) and the first control character (not HTAB) of the
 * line at `line`, from one shift of the masks of the line's block, or of the one or two blocks after it when the line
 * runs into them; neither is beyond end. line <= end: at end, a bit past end makes eol end, which the caller turns
 * down. Token characters and ':' are not control characters, so the control character is the line's end exactly when
 * the name ends in a colon. Returns 0 for a line running past the second block after its own (the caller leaves it
 * to general_line): a line it returns is at most CSIP_FAST_LINE_MAX long, so the fast loop needs no length check when
 * max_line is at least that. Two blocks on, not one: a response's Via line with both hops (~125 bytes) is common.
 */
#define CSIP_FAST_LINE_MAX 191
SCAN_LINES_TARGET __attribute__((always_inline)) static inline int CSIP_LOCAL(find_line)(struct csip_block_cursor *cursor,
                                                             const uint8_t *buf, size_t line, size_t end,
                                                             size_t *name_end, size_t *eol) {
    if (line >= cursor->block_end) {
        if (line >= end) return 0;
        CSIP_LOCAL(load)(cursor, buf, line, end);
    }
    uint64_t control = cursor->control >> (line & 63);
    uint64_t nontoken = cursor->nontoken >> (line & 63);
    if (control != 0) { /* every control bit is a non-token bit too: nontoken != 0 */
        *name_end = line + (size_t)__builtin_ctzll(nontoken);
        *eol = line + (size_t)__builtin_ctzll(control);
        return 1;
    }
    /* No control bit from line on: not the last block (its bits past end are set), so next < end unless this block
     * ends exactly at end. The name ends in the first block that has a non-token bit. */
    size_t name_found = nontoken != 0 ? line + (size_t)__builtin_ctzll(nontoken) : SIZE_MAX;
    for (int more = 0; more < 2; more++) {
        size_t next = cursor->block_end;
        if (next >= end) return 0;
        CSIP_LOCAL(load)(cursor, buf, next, end);
        if (name_found == SIZE_MAX && cursor->nontoken != 0) name_found = next + (size_t)__builtin_ctzll(cursor->nontoken);
        if (cursor->control != 0) {
            *name_end = name_found; /* set: a control bit is a non-token bit */
            *eol = next + (size_t)__builtin_ctzll(cursor->control); /* eol - line <= 191: line >= next - 64 * (more + 1) */
            return 1;
        }
    }
    return 0;
}

#else /* byte loops */


SCAN_LINES_TARGET __attribute__((always_inline)) static inline size_t CSIP_LOCAL(find_control)(struct csip_block_cursor *cursor,
                                                                const uint8_t *buf, size_t i, size_t limit,
                                                                size_t end) {
    (void)cursor;
    (void)end;
    while (i + 4 <= limit) {
        if (csip_line_control[buf[i]]) return i;
        if (csip_line_control[buf[i + 1]]) return i + 1;
        if (csip_line_control[buf[i + 2]]) return i + 2;
        if (csip_line_control[buf[i + 3]]) return i + 3;
        i += 4;
    }
    while (i < limit && !csip_line_control[buf[i]]) i++;
    return i;
}

SCAN_LINES_TARGET __attribute__((always_inline)) static inline size_t CSIP_LOCAL(find_nontoken)(struct csip_block_cursor *cursor,
                                                                 const uint8_t *buf, size_t i, size_t end) {
    (void)cursor;
    return csip_end_of_run(buf, i, end, CSIP_CHARS_TOKEN); /* the one token table, csip_chars.h */
}

/* find_line returns lines of any length: the fast loop checks each against max_line. */
#define CSIP_FAST_LINE_MAX 0
SCAN_LINES_TARGET __attribute__((always_inline)) static inline int CSIP_LOCAL(find_line)(struct csip_block_cursor *cursor,
                                                             const uint8_t *buf, size_t line, size_t end,
                                                             size_t *name_end, size_t *eol) {
    *name_end = CSIP_LOCAL(find_nontoken)(cursor, buf, line, end);
    if (*name_end >= end) return 0;
    *eol = CSIP_LOCAL(find_control)(cursor, buf, *name_end, end, end);
    return *eol < end;
}

#endif

/*
 * Finds the CRLF that ends the line containing `from`; the line (or folded header) began at `line_start`, which
 * bounds its length. HTAB is allowed. Other control characters are an error in the start line (flags == NULL);
 * in a header value they are legal only as a quoted-pair inside a quoted string (RFC 3261 §25.1, RFC 4475
 * intmeth), which needs quote tracking, so they are flagged CSIP_HEADER_CONTROL_CHARS for the parser to judge.
 * On COMPLETE, *cr is the CR.
 */
SCAN_LINES_TARGET __attribute__((always_inline)) static inline int CSIP_LOCAL(line_end)(struct csip_block_cursor *cursor, const uint8_t *buf,
                                                         size_t from, size_t line_start,
                                                         const struct csip_scan_bounds *bounds, uint16_t *flags,
                                                         size_t *cr, struct csip_scan_result *result) {
    const size_t end = bounds->end;
    size_t limit = line_start + bounds->max_line + 1;
    if (limit > end) limit = end;
    size_t i = from;
    for (;;) {
        i = (i < limit) ? CSIP_LOCAL(find_control)(cursor, buf, i, limit, end) : limit;
        if (i >= limit) {
            if (limit < end) return csip_scan_fail(result, CSIP_ERR_LINE_TOO_LONG, line_start);
            return csip_scan_need_more(bounds, result);
        }
        uint8_t c = buf[i];
        if (c == '\r') {
            if (i + 1 >= end) return csip_scan_need_more(bounds, result);
            if (buf[i + 1] != '\n') return csip_scan_fail(result, CSIP_ERR_BARE_CR, i);
            *cr = i;
            return CSIP_SCAN_COMPLETE;
        }
        if (c == '\n') return csip_scan_fail(result, CSIP_ERR_BARE_LF, i);
        if (flags == NULL) return csip_scan_fail(result, c == 0 ? CSIP_ERR_NUL : CSIP_ERR_CONTROL_CHAR, i);
        *flags |= CSIP_HEADER_CONTROL_CHARS;
        i++;
    }
}

/* The state the general path shares with the fast loop. */
struct CSIP_LOCAL(state) {
    size_t pos;     /* start of the next line */
    uint32_t count; /* headers stored */
};

/*
 * One line at state->pos, every rule in order: the empty line that ends the headers, folds, header lines with any
 * name, whitespace or value. Returns CSIP_SCAN_COMPLETE (the headers ended), INCOMPLETE or INVALID, or -1 when it
 * stored the line and the walk goes on. Out of line: the fast loop below calls it only for lines it does not take.
 */
SCAN_LINES_TARGET __attribute__((noinline)) static int CSIP_LOCAL(general_line)(
    const struct csip_scanner *scanner, const uint8_t *buf, const struct csip_scan_bounds *bounds,
    struct csip_header *headers, struct csip_scan_result *result, struct CSIP_LOCAL(state) *state) {
    const size_t end = bounds->end;
    struct csip_block_cursor cursor = {.block_end = 0, .control = 0, .nontoken = 0}; /* nothing loaded */
    size_t pos = state->pos;
    uint32_t count = state->count;
    size_t cr = 0;
    int status;

    if (pos >= end) return csip_scan_need_more(bounds, result);
    uint8_t c = buf[pos];

    if (c == '\r') { /* the empty line: headers end here */
        if (pos + 1 >= end) return csip_scan_need_more(bounds, result);
        if (buf[pos + 1] != '\n') return csip_scan_fail(result, CSIP_ERR_BARE_CR, pos);
        result->header_count = count;
        result->body_offset = (uint32_t)(pos + 2);
        return CSIP_SCAN_COMPLETE;
    }
    if (c == '\n') return csip_scan_fail(result, CSIP_ERR_BARE_LF, pos);

    if (csip_is_wsp(c)) { /* a continuation of the previous header (RFC 3261 §7.3.1) */
        if (count == 0) return csip_scan_fail(result, CSIP_ERR_FOLDED_START_LINE, pos);
        struct csip_header *previous = &headers[count - 1];
        /* The fold counts toward its header's length: the header began where its name did. */
        status = CSIP_LOCAL(line_end)(&cursor, buf, pos, previous->name.off, bounds, &previous->flags, &cr, result);
        if (status != CSIP_SCAN_COMPLETE) return status;
        csip_append_continuation(previous, buf, pos, cr);
        result->header_flags |= previous->flags;
        state->pos = cr + 2;
        return -1;
    }

    if (count >= bounds->max_headers) return csip_scan_fail(result, CSIP_ERR_TOO_MANY_HEADERS, pos);
    size_t header_start = pos;
    size_t i = CSIP_LOCAL(find_nontoken)(&cursor, buf, pos, end);
    if (i - header_start > bounds->max_line) return csip_scan_fail(result, CSIP_ERR_LINE_TOO_LONG, header_start);
    if (i >= end) return csip_scan_need_more(bounds, result);
    size_t name_end = i;
    uint16_t flags = 0;
    if (csip_is_wsp(buf[i])) {
        while (i < end && csip_is_wsp(buf[i])) i++;
        if (i >= end) return csip_scan_need_more(bounds, result);
        flags |= CSIP_HEADER_SPACE_BEFORE_COLON;
    }
    if (buf[i] != ':') {
        if (buf[i] == '\r' || buf[i] == '\n' || (flags & CSIP_HEADER_SPACE_BEFORE_COLON)) {
            return csip_scan_fail(result, CSIP_ERR_MISSING_COLON, i);
        }
        return csip_scan_fail(result, CSIP_ERR_INVALID_HEADER_NAME, i);
    }
    if (name_end == header_start) return csip_scan_fail(result, CSIP_ERR_EMPTY_HEADER_NAME, header_start);
    i++; /* past the colon */

    status = CSIP_LOCAL(line_end)(&cursor, buf, i, header_start, bounds, &flags, &cr, result);
    if (status != CSIP_SCAN_COMPLETE) return status;
    size_t value_start = i;
    while (value_start < cr && csip_is_wsp(buf[value_start])) value_start++;
    size_t value_end = cr;
    while (value_end > value_start && csip_is_wsp(buf[value_end - 1])) value_end--;

    size_t name_length = name_end - header_start;
    uint32_t info = csip_classify_indexed(scanner, buf + header_start, name_length, end - header_start >= 8);
    struct csip_kind_info kind;
    memcpy(&kind, &info, sizeof(kind));
    flags |= kind.flags;
    struct csip_header *header = &headers[count];
    header->name.off = (uint32_t)header_start;
    header->name.len = (uint32_t)name_length;
    header->value.off = (uint32_t)value_start;
    header->value.len = (uint32_t)(value_end - value_start);
    header->kind = kind.kind;
    header->flags = flags;
    result->header_flags |= flags;
    result->header_kinds |= 1ull << kind.kind;
    state->count = count + 1;
    state->pos = cr + 2;
    return -1;
}

/* Every header line from `line` on through general_line. */
SCAN_LINES_TARGET __attribute__((noinline)) static int CSIP_LOCAL(general_walk)(
    const struct csip_scanner *scanner, const uint8_t *buf, const struct csip_scan_bounds *bounds,
    struct csip_header *headers, struct csip_scan_result *result, size_t line) {
    struct CSIP_LOCAL(state) state = {.pos = line, .count = 0};
    for (;;) {
        int status = CSIP_LOCAL(general_line)(scanner, buf, bounds, headers, result, &state);
        if (status >= 0) return status;
    }
}

SCAN_LINES_TARGET int SCAN_LINES_NAME(const struct csip_scanner *scanner, const uint8_t *buf, size_t pos,
                                      const struct csip_scan_bounds *bounds, struct csip_header *headers,
                                      struct csip_scan_result *result) {
    const size_t end = bounds->end;
    struct csip_block_cursor cursor = {.block_end = 0, .control = 0, .nontoken = 0}; /* nothing loaded */

    size_t cr = 0;
    int status = CSIP_LOCAL(line_end)(&cursor, buf, pos, pos, bounds, NULL, &cr, result);
    if (status != CSIP_SCAN_COMPLETE) return status;
    result->start_line.off = (uint32_t)pos;
    result->start_line.len = (uint32_t)(cr - pos);

    /*
     * The fast loop takes the common line, "Name:value CRLF" with a token name, no control character in the value
     * and within every limit, and the empty line that ends the headers; it does exactly what general_line would.
     * Anything else (folds, whitespace before the colon, control characters, errors, limits) goes to general_line
     * from the line's first byte, before anything of that line was stored, so the rules have one home and are applied
     * in one order.
     */
    const size_t max_line = bounds->max_line;
    /* A limit below the longest line find_line returns would cost the fast loop a length check per line: such scans
     * (tests, tight policies) take every header line through general_line. */
    if (CSIP_FAST_LINE_MAX != 0 && max_line < CSIP_FAST_LINE_MAX) {
        return CSIP_LOCAL(general_walk)(scanner, buf, bounds, headers, result, cr + 2);
    }
    /* 8 bytes from line may be read when line <= word_end (line > 0): a name of up to 8 bytes is read as one word, so
     * such a name closer to end goes the general way. */
    const size_t word_end = end >= 8 ? end - 8 : 0;
    struct csip_header *header = headers;
    /* headers is NULL only when max_headers is 0: no arithmetic on NULL */
    struct csip_header *const headers_end = bounds->max_headers != 0 ? headers + bounds->max_headers : headers;
    size_t line = cr + 2;
    uint64_t kinds = 0; /* kinds of the lines stored here; general_line adds its own to the result */
    for (;;) { /* line <= end: general_line reports a line at end as need-more */
        size_t name_end, eol;
        /* eol + 1 < end: buf[eol + 1] exists, and buf[name_end] too as name_end <= eol. A colon at name_end puts the
         * line's first control character, eol, in the value. */
        if (CSIP_LOCAL(find_line)(&cursor, buf, line, end, &name_end, &eol) && eol + 1 < end &&
            buf[name_end] == ':' && name_end != line &&
            (CSIP_FAST_LINE_MAX != 0 || eol - line <= max_line) && header != headers_end &&
            csip_is_crlf(buf + eol)) {
            /* Bytes up to 0x20 in [name_end + 1, eol) are SP and HTAB only (no control character comes before eol),
             * and buf[eol] is CR: one comparison tells that a byte is not value whitespace. */
            size_t value_start = name_end + 1;
            if (buf[value_start] == ' ') value_start++;
            if (buf[value_start] <= ' ') {
                while (value_start < eol && csip_is_wsp(buf[value_start])) value_start++;
            }
            size_t value_end = eol; /* buf[eol - 1] is the colon (above ' ') when the value is empty */
            if (buf[eol - 1] <= ' ') {
                while (value_end > value_start && csip_is_wsp(buf[value_end - 1])) value_end--;
            }
            /* The spans are stored first: fewer values live across the classification. general_line stores them
             * again when it takes the line after all. */
            size_t name_length = name_end - line;
            header->name.off = (uint32_t)line;
            header->name.len = (uint32_t)name_length;
            header->value.off = (uint32_t)value_start;
            header->value.len = (uint32_t)(value_end - value_start);
            if (name_length > 8 || line <= word_end) {
                uint32_t info = csip_classify_indexed(scanner, buf + line, name_length, 1);
                memcpy((uint8_t *)header + offsetof(struct csip_header, kind), &info, sizeof(info)); /* kind and flags */
                struct csip_kind_info kind;
                memcpy(&kind, &info, sizeof(kind));
                if (kind.flags != 0) result->header_flags |= kind.flags;
                kinds |= 1ull << kind.kind;
                header++;
                line = eol + 2;
                continue;
            }
        }
        uint32_t count = (uint32_t)(header - headers);
        result->header_kinds |= kinds;
        kinds = 0;
        if (line + 1 < end && buf[line] == '\r' && buf[line + 1] == '\n') { /* the empty line: headers end here */
            result->header_count = count;
            result->body_offset = (uint32_t)(line + 2);
            return CSIP_SCAN_COMPLETE;
        }
        struct CSIP_LOCAL(state) state = {.pos = line, .count = count};
        status = CSIP_LOCAL(general_line)(scanner, buf, bounds, headers, result, &state);
        if (status >= 0) return status;
        line = state.pos;
        header = headers + state.count;
    }
}

#undef CSIP_FAST_LINE_MAX
#undef CSIP_LOCAL
#undef CSIP_PASTE
#undef CSIP_PASTE2
#undef SCAN_LINES_NAME
#undef SCAN_LINES_TARGET
#undef SCAN_LINES_MASKS
