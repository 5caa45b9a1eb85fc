/*
 * Control-character search: the one loop the scanner spends its time in.
 *
 * A header line ends at CR; any other byte below 0x20 (but HTAB) or 0x7F is an error. So the fast path looks for
 * "any control character" and the caller sorts out which one it found. Three implementations return identical
 * results (tested against each other): scalar, SSE4.2 (PCMPESTRI ranges, as picohttpparser) and AVX2. The choice is
 * made at run time with __builtin_cpu_supports, so the binary runs on any x86-64 and needs no -m flags.
 */
#include "scan_internal.h"

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
