/*
 * Byte searches inside one buffer, inlined into the Swift parser. On x86-64 they step 16 bytes at a time with SSE2
 * (part of the x86-64 baseline, so no run-time check and no call): a SIP header value is tens of bytes, where a
 * call into libc's memchr costs more than the search. Blocks are read only inside [0, readable); near the end of
 * the buffer the search falls back to a byte loop. Elsewhere the byte loop is all there is.
 */
#ifndef CSIP_BYTES_H
#define CSIP_BYTES_H

#include <stddef.h>
#include <stdint.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/*
 * The block walk the searches here and the runs of csip_chars.h share: 16 bytes a step from `from` while a whole block
 * lies inside [0, readable), returning the first offset whose bit is set in `hits` (a 16-bit mask made from `block`),
 * capped at `to`, or `to` once the blocks pass it. Near the end of the buffer it falls through to the caller's byte
 * loop. Without SSE2 it only marks `readable` used.
 */
#if defined(__SSE2__)
#define CSIP_SSE2_FIRST(hits)                                                                                      \
    while (from < to && readable - from >= 16) {                                                                   \
        __m128i block = _mm_loadu_si128((const __m128i *)(const void *)(buf + from));                              \
        unsigned marked = (unsigned)(hits);                                                                        \
        if (marked != 0) {                                                                                         \
            size_t found = from + (size_t)__builtin_ctz(marked);                                                   \
            return found < to ? found : to;                                                                        \
        }                                                                                                          \
        from += 16;                                                                                                \
    }                                                                                                              \
    if (from >= to) return to;
#else
#define CSIP_SSE2_FIRST(hits) (void)readable;
#endif

/* The first offset in [from, to) holding `byte`, or `to`. to <= readable. */
static inline size_t csip_find_byte(const uint8_t *buf, size_t from, size_t to, size_t readable, uint8_t byte) {
    CSIP_SSE2_FIRST(_mm_movemask_epi8(_mm_cmpeq_epi8(block, _mm_set1_epi8((char)byte))))
    while (from < to && buf[from] != byte) from++;
    return from;
}

/*
 * The angle brackets of a name-addr in its common form: exactly one '<' and one '>' after it in [from, to), and no
 * '"' anywhere there. Returns 1 with *open and *close at the two, else 0. One pass where three memchr calls and a
 * check for a second pair took five. to <= readable.
 */
static inline int csip_angle_brackets(const uint8_t *buf, size_t from, size_t to, size_t readable, size_t *open,
                                      size_t *close) {
    size_t opens = 0, closes = 0, first_open = to, first_close = to;
    size_t i = from;
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), less = _mm_set1_epi8('<'), greater = _mm_set1_epi8('>');
    while (i < to && readable - i >= 16) {
        __m128i block = _mm_loadu_si128((const __m128i *)(const void *)(buf + i));
        unsigned inside = to - i >= 16 ? 0xFFFFu : (1u << (to - i)) - 1u;
        if (((unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(block, quote)) & inside) != 0) return 0;
        unsigned lt = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(block, less)) & inside;
        unsigned gt = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(block, greater)) & inside;
        if (lt != 0) {
            if (opens == 0) first_open = i + (size_t)__builtin_ctz(lt);
            opens += (lt & (lt - 1u)) != 0 ? 2 : 1; /* two or more: no common form either way */
        }
        if (gt != 0) {
            if (closes == 0) first_close = i + (size_t)__builtin_ctz(gt);
            closes += (gt & (gt - 1u)) != 0 ? 2 : 1;
        }
        i += 16;
    }
#else
    (void)readable;
#endif
    for (; i < to; i++) {
        uint8_t c = buf[i];
        if (c == '"') return 0;
        if (c == '<' && opens++ == 0) first_open = i;
        if (c == '>' && closes++ == 0) first_close = i;
    }
    if (opens != 1 || closes != 1 || first_close < first_open) return 0;
    *open = first_open;
    *close = first_close;
    return 1;
}

/*
 * Where an addr-spec (a Contact, Route, From or To URI without angle brackets) stops: the first offset in [from, to)
 * holding ';', linear whitespace (SP, HTAB, CR, LF) or one of ',' '"' '<' '>' (which an addr-spec may not contain),
 * or `to`. to <= readable.
 */
#if defined(__SSE2__)
/* 0xFF in each lane holding a byte that ends an addr-spec. */
static inline __m128i csip_lanes_addr_spec_stops(__m128i block) {
    __m128i spacing = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(block, _mm_set1_epi8(' ')), _mm_cmpeq_epi8(block, _mm_set1_epi8('\t'))),
                                   _mm_or_si128(_mm_cmpeq_epi8(block, _mm_set1_epi8('\r')), _mm_cmpeq_epi8(block, _mm_set1_epi8('\n'))));
    __m128i separators = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(block, _mm_set1_epi8(';')), _mm_cmpeq_epi8(block, _mm_set1_epi8(','))),
                                      _mm_cmpeq_epi8(block, _mm_set1_epi8('"')));
    __m128i brackets = _mm_or_si128(_mm_cmpeq_epi8(block, _mm_set1_epi8('<')), _mm_cmpeq_epi8(block, _mm_set1_epi8('>')));
    return _mm_or_si128(_mm_or_si128(spacing, separators), brackets);
}
#endif

static inline size_t csip_end_of_addr_spec(const uint8_t *buf, size_t from, size_t to, size_t readable) {
    CSIP_SSE2_FIRST(_mm_movemask_epi8(csip_lanes_addr_spec_stops(block)))
    for (; from < to; from++) {
        uint8_t c = buf[from];
        if (c == ';' || c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',' || c == '"' || c == '<' || c == '>') {
            break;
        }
    }
    return from;
}

/* The last offset in [from, to) holding `byte`, or `to` when there is none. from <= to. */
static inline size_t csip_find_last_byte(const uint8_t *buf, size_t from, size_t to, uint8_t byte) {
    size_t end = to;
#if defined(__SSE2__)
    const __m128i wanted = _mm_set1_epi8((char)byte);
    while (end - from >= 16) {
        __m128i block = _mm_loadu_si128((const __m128i *)(const void *)(buf + end - 16));
        unsigned hits = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(block, wanted));
        if (hits != 0) return end - 16 + (size_t)(31 - __builtin_clz(hits));
        end -= 16;
    }
#endif
    while (end > from) {
        end--;
        if (buf[end] == byte) return end;
    }
    return to;
}

/* A number read by csip_decimal_run and the offset after its last digit. */
struct csip_decimal {
    uint64_t value;
    size_t end;
};

/*
 * Up to max_digits (at most 19, so the value fits) decimal digits from `from`, stopping at `to` or the first other
 * byte: the number (0 when there is no digit) and the offset after the last digit read. Returned by value, so the
 * caller takes no address of a local.
 */
static inline struct csip_decimal csip_decimal_run(const uint8_t *buf, size_t from, size_t to, size_t max_digits) {
    size_t limit = to - from > max_digits ? from + max_digits : to;
    uint64_t number = 0;
    while (from < limit) {
        unsigned digit = (unsigned)buf[from] - '0';
        if (digit > 9) break;
        number = number * 10 + digit;
        from++;
    }
    struct csip_decimal result = {number, from};
    return result;
}

/* The usual IPv4 host of SIP's grammar: four octets of 1-3 digits up to 255 joined by dots, filling [from, to) (leading
 * zeros allowed, unlike csip_parse_dotted_quad). 0 means "not this form", not "invalid": the full grammar decides. */
static inline __attribute__((always_inline)) int csip_is_common_ipv4(const uint8_t *buf, size_t from, size_t to) {
    size_t i = from;
    for (int octet = 0; octet < 4; octet++) {
        if (octet > 0) {
            if (i >= to || buf[i] != '.') return 0;
            i++;
        }
        struct csip_decimal run = csip_decimal_run(buf, i, to, 3);
        if (run.end == i || run.value > 255) return 0;
        i = run.end;
    }
    return i == to;
}

/* Dotted-quad IPv4 in [from, to), by inet_pton's rules: four decimal parts of at most 255, no leading zero.
 * 1: an address (in *address, host order); 0: only digits and dots, but no address (nor could it be IPv6);
 * -1: some other byte, for inet_pton to decide. Every message has one or more (Via hosts, received). */
static inline int csip_parse_dotted_quad(const uint8_t *buf, size_t from, size_t to, uint32_t *address) {
    uint32_t value = 0, part = 0;
    unsigned digits = 0, dots = 0;
    int valid = 1;
    for (size_t i = from; i < to; i++) {
        unsigned digit = (unsigned)buf[i] - '0';
        if (digit < 10) {
            if (digits > 0 && part == 0) valid = 0;
            part = part * 10 + digit;
            if (part > 255) { valid = 0; part = 0; }
            digits++;
        } else if (buf[i] == '.') {
            if (digits == 0) valid = 0;
            value = value << 8 | part;
            part = 0;
            digits = 0;
            dots++;
        } else {
            return -1;
        }
    }
    if (digits == 0 || dots != 3) valid = 0;
    *address = value << 8 | part;
    return valid;
}

/* RFC 4648 §5 base64url of raw[0, length), without padding, into out (room for (length * 4 + 2) / 3 bytes).
 * Returns the characters written. Flow tokens: a few dozen bytes per forwarded request. */
static inline size_t csip_base64url_encode(const uint8_t *raw, size_t length, uint8_t *out) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t written = 0, index = 0;
    for (; index + 3 <= length; index += 3) {
        uint32_t word = (uint32_t)raw[index] << 16 | (uint32_t)raw[index + 1] << 8 | raw[index + 2];
        out[written++] = (uint8_t)alphabet[word >> 18 & 63];
        out[written++] = (uint8_t)alphabet[word >> 12 & 63];
        out[written++] = (uint8_t)alphabet[word >> 6 & 63];
        out[written++] = (uint8_t)alphabet[word & 63];
    }
    if (index < length) {
        uint32_t word = (uint32_t)raw[index] << 16 | (index + 1 < length ? (uint32_t)raw[index + 1] << 8 : 0);
        out[written++] = (uint8_t)alphabet[word >> 18 & 63];
        out[written++] = (uint8_t)alphabet[word >> 12 & 63];
        if (index + 1 < length) out[written++] = (uint8_t)alphabet[word >> 6 & 63];
    }
    return written;
}

#endif
