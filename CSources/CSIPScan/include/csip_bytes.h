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

/* The first offset in [from, to) holding `byte`, or `to`. to <= readable. */
static inline size_t csip_find_byte(const uint8_t *buf, size_t from, size_t to, size_t readable, uint8_t byte) {
#if defined(__SSE2__)
    const __m128i wanted = _mm_set1_epi8((char)byte);
    while (from < to && readable - from >= 16) {
        __m128i block = _mm_loadu_si128((const __m128i *)(const void *)(buf + from));
        unsigned hits = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(block, wanted));
        if (hits != 0) {
            size_t found = from + (size_t)__builtin_ctz(hits);
            return found < to ? found : to;
        }
        from += 16;
    }
    if (from >= to) return to;
#else
    (void)readable;
#endif
    while (from < to && buf[from] != byte) from++;
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

#endif
