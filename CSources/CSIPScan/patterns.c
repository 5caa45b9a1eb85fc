/* Multi-pattern search (see CSIPScan.h). No globals: the table is the caller's. */
#include <errno.h>
#include <string.h>

#include "scan_internal.h"

static inline uint8_t lower(uint8_t c) {
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

static inline int is_letter(uint8_t c) {
    return (uint8_t)((c | 0x20) - 'a') < 26;
}

static inline int is_word(uint8_t c) {
    return is_letter(c) || (uint8_t)(c - '0') < 10;
}

void csip_patterns_init(struct csip_patterns *p) {
    if (p == NULL) return;
    memset(p, 0, sizeof(*p));
}

int csip_patterns_add(struct csip_patterns *p, const uint8_t *text, size_t length) {
    if (p == NULL || text == NULL || length == 0 || length > 255) return -EINVAL;
    if (p->count >= CSIP_PATTERNS_MAX || p->text_used + length > CSIP_PATTERNS_TEXT_MAX) return -ENOSPC;
    uint8_t first = text[0];
    if (first != lower(first)) return -EINVAL;
    if (p->count > 0 && p->text[p->offset[p->count - 1]] > first) return -EINVAL; /* not in first-byte order */
    if (p->first_count[first] == 0) p->first_start[first] = (uint8_t)p->count;
    p->first_count[first]++;
    p->offset[p->count] = (uint16_t)p->text_used;
    p->length[p->count] = (uint8_t)length;
    for (size_t i = 0; i < length; i++) p->text[p->text_used + i] = lower(text[i]);
    p->text_used += (uint32_t)length;
    p->candidate[first] = 1;
    if (is_letter(first)) p->candidate[first & (uint8_t)~0x20] = 1;
    p->count++;
    return 0;
}

int32_t csip_patterns_find(const struct csip_patterns *p, const uint8_t *buf, size_t from, size_t to,
                           uint64_t enabled) {
    if (p == NULL || buf == NULL) return -1;
    int previous_word = 0;
    for (size_t i = from; i < to; i++) {
        uint8_t c = buf[i];
        int word = is_word(c);
        if (p->candidate[c] && !(previous_word && is_letter(c))) {
            uint8_t first = lower(c);
            uint32_t start = p->first_start[first];
            uint32_t end = start + p->first_count[first];
            for (uint32_t k = start; k < end; k++) {
                if (!((enabled >> k) & 1)) continue;
                size_t length = p->length[k];
                if (i + length > to) continue;
                const uint8_t *pattern = p->text + p->offset[k];
                size_t j = 1;
                while (j < length && lower(buf[i + j]) == pattern[j]) j++;
                if (j == length) return (int32_t)k;
            }
        }
        previous_word = word;
    }
    return -1;
}
