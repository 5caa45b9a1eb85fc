/*
 * Control-character search and the per-level line walks of the scanner.
 *
 * A header line ends at CR; any other byte below 0x20 (but HTAB) or 0x7F is an error. So the fast path looks for
 * "any control character" and the caller sorts out which one it found. Three implementations return identical
 * results (tested against each other): scalar, SSE4.2 and AVX2. The choice is made at run time with
 * __builtin_cpu_supports, so the binary runs on any x86-64 and needs no -m flags.
 *
 * csip_find_control_* search one range (the public csip_find_control). The scanner itself walks lines with
 * scan_lines.h, instantiated below once per level: the SIMD levels hand it 64-bit masks of control and non-token
 * bytes per 64-byte block (masks64_*), the scalar level byte loops.
 */
#include "scan_internal.h"

#define SCAN_LINES_NAME csip_scan_lines_scalar
#define SCAN_LINES_TARGET
#include "scan_lines.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CSIP_HAVE_X86 1
#else
#define CSIP_HAVE_X86 0
#endif

static inline int is_control(uint8_t byte) {
    return byte < 0x20 || byte == 0x7f;
}

size_t csip_find_control_scalar(const uint8_t *buf, size_t from, size_t to) {
    size_t i = from;
    /* Unrolled by 4: most header lines are 20-80 bytes. */
    while (i + 4 <= to) {
        if (is_control(buf[i])) return i;
        if (is_control(buf[i + 1])) return i + 1;
        if (is_control(buf[i + 2])) return i + 2;
        if (is_control(buf[i + 3])) return i + 3;
        i += 4;
    }
    while (i < to) {
        if (is_control(buf[i])) return i;
        i++;
    }
    return to;
}

#if CSIP_HAVE_X86

__attribute__((target("sse4.2")))
size_t csip_find_control_sse42(const uint8_t *buf, size_t from, size_t to) {
    /* Pairs of inclusive ranges for PCMPESTRI: 0x00-0x1F and 0x7F-0x7F. */
    const __m128i ranges = _mm_setr_epi8(0x00, 0x1f, 0x7f, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    size_t i = from;
    while (i + 16 <= to) {
        __m128i chunk = _mm_loadu_si128((const __m128i *)(const void *)(buf + i));
        int index = _mm_cmpestri(ranges, 4, chunk, 16,
                                 _SIDD_UBYTE_OPS | _SIDD_CMP_RANGES | _SIDD_LEAST_SIGNIFICANT);
        if (index != 16) return i + (size_t)index;
        i += 16;
    }
    return csip_find_control_scalar(buf, i, to);
}

__attribute__((target("avx2,bmi")))
size_t csip_find_control_avx2(const uint8_t *buf, size_t from, size_t to) {
    const __m256i max_control = _mm256_set1_epi8(0x1f);
    const __m256i delete_char = _mm256_set1_epi8(0x7f);
    size_t i = from;
    while (i + 32 <= to) {
        __m256i chunk = _mm256_loadu_si256((const __m256i *)(const void *)(buf + i));
        /* byte <= 0x1F (unsigned) exactly when min(byte, 0x1F) == byte. */
        __m256i low = _mm256_cmpeq_epi8(_mm256_min_epu8(chunk, max_control), chunk);
        __m256i del = _mm256_cmpeq_epi8(chunk, delete_char);
        uint32_t mask = (uint32_t)_mm256_movemask_epi8(_mm256_or_si256(low, del));
        if (mask != 0) return i + (size_t)_tzcnt_u32(mask);
        i += 32;
    }
    /* The tail (under 32 bytes) still gains from 16-byte steps; every AVX2 CPU has SSE4.2. */
    return csip_find_control_sse42(buf, i, to);
}

/*
 * Masks of one 64-byte block from one nibble lookup (as Hyperscan's shufti): CLASS_LO[byte & 15] & CLASS_HI[byte >> 4]
 * is a class byte c whose bits 0-5 are set only for RFC 3261 token characters (high nibble h in 2-7 maps to bit h-2,
 * CLASS_LO holds the token high nibbles for each low nibble) and bits 6-7 only for 0x00-0x1F but HTAB (high nibble 0
 * maps to bit 6, 1 to bit 7; low nibble 9 has bit 7 but not bit 6). So nontoken is (c & 0x3F) == 0, and c + 0x40
 * has its top bit set exactly for those control characters (bits 6 and 7 are never both set, so nothing wraps; a
 * saturating add would do the same, but compilers turn that into a max and a compare); DEL (0x7F) is compared on its
 * own. Bytes from
 * 0x80 have high nibble 8-F and class 0. Checked against the scalar tables by tests and the fuzzer.
 */
#define CLASS_LO 0xfa, 0xff, 0xfe, 0xfe, 0xfe, 0xff, 0xfe, 0xff, 0xfe, 0xbe, 0xfd, 0xd5, 0xd4, 0xd5, 0xf5, 0xdc
#define CLASS_HI 0x40, 0x80, 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00

__attribute__((target("sse4.2")))
static inline void masks64_sse42(const uint8_t *p, uint64_t *control, uint64_t *nontoken) {
    const __m128i class_lo = _mm_setr_epi8(CLASS_LO), class_hi = _mm_setr_epi8(CLASS_HI);
    const __m128i nibble = _mm_set1_epi8(0x0f), token_bits = _mm_set1_epi8(0x3f), control_bits = _mm_set1_epi8(0x40);
    const __m128i delete_char = _mm_set1_epi8(0x7f), zero = _mm_setzero_si128();
    uint64_t c = 0, n = 0;
    for (int k = 0; k < 4; k++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * k));
        __m128i cls = _mm_and_si128(_mm_shuffle_epi8(class_lo, _mm_and_si128(v, nibble)),
                                    _mm_shuffle_epi8(class_hi, _mm_and_si128(_mm_srli_epi16(v, 4), nibble)));
        __m128i ctl = _mm_or_si128(_mm_add_epi8(cls, control_bits), _mm_cmpeq_epi8(v, delete_char));
        __m128i non = _mm_cmpeq_epi8(_mm_and_si128(cls, token_bits), zero);
        c |= (uint64_t)(uint32_t)_mm_movemask_epi8(ctl) << (16 * k);
        n |= (uint64_t)(uint32_t)_mm_movemask_epi8(non) << (16 * k);
    }
    *control = c;
    *nontoken = n;
}

__attribute__((target("avx2,bmi")))
static inline void masks64_avx2(const uint8_t *p, uint64_t *control, uint64_t *nontoken) {
    const __m256i class_lo = _mm256_setr_epi8(CLASS_LO, CLASS_LO), class_hi = _mm256_setr_epi8(CLASS_HI, CLASS_HI);
    const __m256i nibble = _mm256_set1_epi8(0x0f), token_bits = _mm256_set1_epi8(0x3f);
    const __m256i control_bits = _mm256_set1_epi8(0x40), delete_char = _mm256_set1_epi8(0x7f);
    const __m256i zero = _mm256_setzero_si256();
    __m256i v0 = _mm256_loadu_si256((const __m256i *)(const void *)p);
    __m256i v1 = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32));
    __m256i cls0 = _mm256_and_si256(_mm256_shuffle_epi8(class_lo, _mm256_and_si256(v0, nibble)),
                                    _mm256_shuffle_epi8(class_hi, _mm256_and_si256(_mm256_srli_epi16(v0, 4), nibble)));
    __m256i cls1 = _mm256_and_si256(_mm256_shuffle_epi8(class_lo, _mm256_and_si256(v1, nibble)),
                                    _mm256_shuffle_epi8(class_hi, _mm256_and_si256(_mm256_srli_epi16(v1, 4), nibble)));
    __m256i ctl0 = _mm256_or_si256(_mm256_add_epi8(cls0, control_bits), _mm256_cmpeq_epi8(v0, delete_char));
    __m256i ctl1 = _mm256_or_si256(_mm256_add_epi8(cls1, control_bits), _mm256_cmpeq_epi8(v1, delete_char));
    __m256i non0 = _mm256_cmpeq_epi8(_mm256_and_si256(cls0, token_bits), zero);
    __m256i non1 = _mm256_cmpeq_epi8(_mm256_and_si256(cls1, token_bits), zero);
    *control = (uint64_t)(uint32_t)_mm256_movemask_epi8(ctl0) | (uint64_t)(uint32_t)_mm256_movemask_epi8(ctl1) << 32;
    *nontoken = (uint64_t)(uint32_t)_mm256_movemask_epi8(non0) | (uint64_t)(uint32_t)_mm256_movemask_epi8(non1) << 32;
}

#define SCAN_LINES_NAME csip_scan_lines_sse42
#define SCAN_LINES_TARGET __attribute__((target("sse4.2")))
#define SCAN_LINES_MASKS masks64_sse42
#include "scan_lines.h"

#define SCAN_LINES_NAME csip_scan_lines_avx2
#define SCAN_LINES_TARGET __attribute__((target("avx2,bmi")))
#define SCAN_LINES_MASKS masks64_avx2
#include "scan_lines.h"

int csip_cpu_supports(uint32_t level) {
    __builtin_cpu_init();
    switch (level) {
    case CSIP_SIMD_SCALAR: return 1;
    case CSIP_SIMD_SSE42: return __builtin_cpu_supports("sse4.2") ? 1 : 0;
    case CSIP_SIMD_AVX2: return (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi")) ? 1 : 0;
    default: return 0;
    }
}

#else /* not x86 */

int csip_scan_lines_sse42(const struct csip_scanner *scanner, const uint8_t *buf, size_t pos,
                          const struct csip_scan_bounds *bounds, struct csip_header *headers,
                          struct csip_scan_result *result) {
    return csip_scan_lines_scalar(scanner, buf, pos, bounds, headers, result);
}
int csip_scan_lines_avx2(const struct csip_scanner *scanner, const uint8_t *buf, size_t pos,
                         const struct csip_scan_bounds *bounds, struct csip_header *headers,
                         struct csip_scan_result *result) {
    return csip_scan_lines_scalar(scanner, buf, pos, bounds, headers, result);
}

size_t csip_find_control_sse42(const uint8_t *buf, size_t from, size_t to) {
    return csip_find_control_scalar(buf, from, to);
}
size_t csip_find_control_avx2(const uint8_t *buf, size_t from, size_t to) {
    return csip_find_control_scalar(buf, from, to);
}
int csip_cpu_supports(uint32_t level) {
    return level == CSIP_SIMD_SCALAR ? 1 : 0;
}

#endif
