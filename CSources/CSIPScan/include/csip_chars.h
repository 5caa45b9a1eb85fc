/*
 * ASCII character classes of the SIP grammar as one table: bit k of csip_char_classes[byte] is set when the byte
 * belongs to class k. The Swift parser walks runs of a class with csip_end_of_run (one load and test per byte,
 * inlined into Swift); its CharacterClass masks are the definition, and a test checks this table against them
 * for every byte. Generated from those masks; edit both together.
 */
#ifndef CSIP_CHARS_H
#define CSIP_CHARS_H

#include <stddef.h>
#include <stdint.h>

#include "csip_bytes.h" /* CSIP_SSE2_FIRST */

enum csip_char_class {
    CSIP_CHARS_TOKEN = 1u << 0,
    CSIP_CHARS_WORD = 1u << 1,
    CSIP_CHARS_USER = 1u << 2,
    CSIP_CHARS_PASSWORD = 1u << 3,
    CSIP_CHARS_URI_PARAMETER = 1u << 4,
    CSIP_CHARS_URI_HEADER = 1u << 5,
    CSIP_CHARS_HOSTNAME = 1u << 6,
    CSIP_CHARS_IPV6 = 1u << 7,
    CSIP_CHARS_URIC = 1u << 8,
    CSIP_CHARS_TELEPHONE = 1u << 9,
    CSIP_CHARS_SCHEME = 1u << 10,
    CSIP_CHARS_GENERIC_VALUE = 1u << 11,
    CSIP_CHARS_VIA_ADDRESS = 1u << 12,
    CSIP_CHARS_ELEMENT_PLAIN = 1u << 13,
    CSIP_CHARS_DISPLAY_NAME = 1u << 14,
};

static const uint16_t csip_char_classes[256] = {
    0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000,
    0x2000, 0x6000, 0x6000, 0x2000, 0x2000, 0x6000, 0x2000, 0x2000,
    0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000,
    0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000, 0x2000,
    0x6000, 0x6b3f, 0x0002, 0x2200, 0x233c, 0x6a03, 0x231c, 0x6b3f,
    0x233e, 0x233e, 0x6b3f, 0x6f3f, 0x010c, 0x7f7f, 0x7fff, 0x2336,
    0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff,
    0x7fff, 0x7fff, 0x3bb2, 0x2304, 0x0002, 0x230c, 0x2002, 0x2126,
    0x2100, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7f7f,
    0x7f7f, 0x7f7f, 0x7f7f, 0x7f7f, 0x7f7f, 0x7f7f, 0x7f7f, 0x7f7f,
    0x7f7f, 0x7f7f, 0x7f7f, 0x7f7f, 0x7f7f, 0x7f7f, 0x7f7f, 0x7f7f,
    0x7f7f, 0x7f7f, 0x7f7f, 0x3b32, 0x2002, 0x3b32, 0x2000, 0x6b3f,
    0x6803, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7f7f,
    0x7f7f, 0x7f7f, 0x7f7f, 0x7f7f, 0x7f7f, 0x7f7f, 0x7f7f, 0x7f7f,
    0x7f7f, 0x7f7f, 0x7f7f, 0x7f7f, 0x7f7f, 0x7f7f, 0x7f7f, 0x7f7f,
    0x7f7f, 0x7f7f, 0x7f7f, 0x2002, 0x2000, 0x2002, 0x6b3f, 0x2000,
    0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000,
    0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000,
    0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000,
    0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000,
    0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000,
    0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000,
    0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000,
    0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000,
    0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000,
    0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000,
    0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000,
    0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000,
    0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000,
    0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000,
    0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000,
    0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000, 0x0000,
};

/* The first offset in [from, to) whose byte is in none of `classes`, or `to`. Four bytes a step: one bound check
 * per step instead of per byte. */
static inline __attribute__((always_inline)) size_t csip_end_of_run(const uint8_t *buf, size_t from, size_t to,
                                                                    uint16_t classes) {
    while (from + 4 <= to) {
        if ((csip_char_classes[buf[from]] & classes) == 0) return from;
        if ((csip_char_classes[buf[from + 1]] & classes) == 0) return from + 1;
        if ((csip_char_classes[buf[from + 2]] & classes) == 0) return from + 2;
        if ((csip_char_classes[buf[from + 3]] & classes) == 0) return from + 3;
        from += 4;
    }
    while (from < to && (csip_char_classes[buf[from]] & classes) != 0) from++;
    return from;
}

/*
 * Runs of the two classes whose runs are long in typical messages (hosts; Call-IDs), 16 bytes a step with SSE2 (part
 * of the x86-64 baseline: inlined, no run-time check); elsewhere, and for the last bytes of a buffer, the table loop.
 * Blocks are read only inside [0, readable). Same result as csip_end_of_run with the class's bit (tested).
 */
#if defined(__SSE2__)
#include <emmintrin.h>

/* 0xFF in each lane where lo <= byte <= hi (unsigned). */
static inline __attribute__((always_inline)) __m128i csip_lanes_in_range(__m128i bytes, uint8_t lo, uint8_t hi) {
    __m128i shifted = _mm_sub_epi8(bytes, _mm_set1_epi8((char)lo));
    return _mm_cmpeq_epi8(_mm_min_epu8(shifted, _mm_set1_epi8((char)(hi - lo))), shifted);
}

/* 0xFF in each lane holding `byte`. */
static inline __attribute__((always_inline)) __m128i csip_lanes_equal(__m128i bytes, char byte) {
    return _mm_cmpeq_epi8(bytes, _mm_set1_epi8(byte));
}

/* Hostname characters: alphanumeric, '-', '.'. OR-ing 0x20 folds only 'A'-'Z' onto 'a'-'z'. */
static inline __attribute__((always_inline)) __m128i csip_lanes_hostname(__m128i bytes) {
    __m128i letter = csip_lanes_in_range(_mm_or_si128(bytes, _mm_set1_epi8(0x20)), 'a', 'z');
    __m128i digit = csip_lanes_in_range(bytes, '0', '9');
    return _mm_or_si128(_mm_or_si128(letter, digit),
                        _mm_or_si128(csip_lanes_equal(bytes, '-'), csip_lanes_equal(bytes, '.')));
}

/* Call-ID word characters: printable ASCII but # $ & , ; = @ ^ |. */
static inline __attribute__((always_inline)) __m128i csip_lanes_word(__m128i bytes) {
    __m128i excluded = _mm_or_si128(
        _mm_or_si128(_mm_or_si128(csip_lanes_equal(bytes, '#'), csip_lanes_equal(bytes, '$')),
                     _mm_or_si128(csip_lanes_equal(bytes, '&'), csip_lanes_equal(bytes, ','))),
        _mm_or_si128(_mm_or_si128(csip_lanes_equal(bytes, ';'), csip_lanes_equal(bytes, '=')),
                     _mm_or_si128(_mm_or_si128(csip_lanes_equal(bytes, '@'), csip_lanes_equal(bytes, '^')),
                                  csip_lanes_equal(bytes, '|'))));
    return _mm_andnot_si128(excluded, csip_lanes_in_range(bytes, 0x21, 0x7e));
}

/* Bytes that are not a comma-separated element's delimiters: ASCII but ',' '"' '<' (a byte from 0x80 has its top bit
 * set, as the lanes that are delimiters: the caller takes the movemask of the OR). */
static inline __attribute__((always_inline)) __m128i csip_lanes_element_delimiter(__m128i bytes) {
    return _mm_or_si128(_mm_or_si128(bytes, csip_lanes_equal(bytes, ',')),
                        _mm_or_si128(csip_lanes_equal(bytes, '"'), csip_lanes_equal(bytes, '<')));
}

#endif

/* The first offset in [from, to) that is not a hostname character, or `to`. to <= readable. */
static inline __attribute__((always_inline)) size_t csip_end_of_hostname_run(const uint8_t *buf, size_t from, size_t to,
                                                                           size_t readable) {
    CSIP_SSE2_FIRST(_mm_movemask_epi8(csip_lanes_hostname(block)) ^ 0xFFFFu) /* the first byte outside the class */
    return csip_end_of_run(buf, from, to, CSIP_CHARS_HOSTNAME);
}

/* The first offset in [from, to) that is not a Call-ID word character, or `to`. to <= readable. */
static inline __attribute__((always_inline)) size_t csip_end_of_word_run(const uint8_t *buf, size_t from, size_t to,
                                                                       size_t readable) {
    CSIP_SSE2_FIRST(_mm_movemask_epi8(csip_lanes_word(block)) ^ 0xFFFFu)
    return csip_end_of_run(buf, from, to, CSIP_CHARS_WORD);
}

/* The first offset in [from, to) that is not plain element text (CSIP_CHARS_ELEMENT_PLAIN: ASCII but ',' '"' '<'),
 * or `to`. to <= readable. A Via line of a response is counted for its hops this way, ~60 bytes in 4 steps. */
static inline __attribute__((always_inline)) size_t csip_end_of_element_plain_run(const uint8_t *buf, size_t from,
                                                                                size_t to, size_t readable) {
    CSIP_SSE2_FIRST(_mm_movemask_epi8(csip_lanes_element_delimiter(block)))
    return csip_end_of_run(buf, from, to, CSIP_CHARS_ELEMENT_PLAIN);
}

#endif
