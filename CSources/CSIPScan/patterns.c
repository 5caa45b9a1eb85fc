/*
 * Multi-pattern search (see CSIPScan.h). No globals: the table is the caller's.
 *
 * Two searches return identical results (tested against each other, and fuzzed):
 *   - scalar (the reference): byte by byte, every byte that may start a pattern is verified;
 *   - SIMD (SSE4.2 16 bytes, AVX2 32 bytes per step): a Teddy prefilter as in Hyperscan. Each pattern sits in one
 *     of 8 buckets; PSHUFB looks up, for the low and the high nibble of bytes i, i+1 and i+2, which buckets allow
 *     that nibble there, and the AND of the six lookups says which buckets may start a match at i. Those positions
 *     (few: three bytes must agree) get the same exact check as the scalar search, in position order and, at one
 *     position, in table order, so the first match is the same one.
 *     Two more PSHUFBs check byte i exactly against the set of first bytes (a bitmap by nibble), so punctuation
 *     such as ", " that only passes Teddy through merged nibble sets is not verified.
 * The prefilter cannot lose a match: a pattern that occurs at i has, in every byte j < 3 it covers, a byte whose two
 * nibbles were both entered for its bucket (both cases of a letter are entered; bytes past a short pattern allow
 * anything), and its first byte is in the first-byte set. The SIMD searches read whole steps inside the buffer
 * (see csip_patterns_find_in); the exact check rejects anything that does not fit before `to`.
 *
 * Which bucket holds which pattern changes only speed. Each false candidate costs a mispredicted branch at the end
 * of the SIMD chain, so csip_patterns_optimize re-places the patterns of a finished table (local search) to leave as
 * few candidates as possible on typical header text. csip_patterns_find_headers runs the search over many header
 * values in one call (the per-call set-up and table loads once).
 */
#include <errno.h>
#include <string.h>

#include "scan_internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CSIP_HAVE_X86 1
#else
#define CSIP_HAVE_X86 0
#endif

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
    for (unsigned n = 0; n < 8; n++) p->first_hi[n] = p->first_hi[n + 16] = (uint8_t)(1u << n);
    p->simd_level = csip_cpu_supports(CSIP_SIMD_AVX2)    ? CSIP_SIMD_AVX2
                    : csip_cpu_supports(CSIP_SIMD_SSE42) ? CSIP_SIMD_SSE42
                                                         : CSIP_SIMD_SCALAR;
}

void csip_patterns_init_anywhere(struct csip_patterns *p) {
    if (p == NULL) return;
    csip_patterns_init(p);
    p->anywhere = 1;
}

int csip_patterns_set_level(struct csip_patterns *p, uint32_t level) {
    if (p == NULL || level > CSIP_SIMD_AVX2) return -EINVAL;
    if (level == CSIP_SIMD_AUTO) {
        level = csip_cpu_supports(CSIP_SIMD_AVX2)    ? CSIP_SIMD_AVX2
                : csip_cpu_supports(CSIP_SIMD_SSE42) ? CSIP_SIMD_SSE42
                                                     : CSIP_SIMD_SCALAR;
    }
    if (!csip_cpu_supports(level)) return -ENOTSUP;
    p->simd_level = level;
    return 0;
}

/* ---- bucket placement ------------------------------------------------------------------------------------------ */

/* Placement cost, part 1: how often a bucket passes the prefilter where no pattern occurs, counted on typical header
 * values (the prefilter's word-start rule applied). Only speed depends on this, never the result. */
static const char training_text[] =
    "sip:bob@biloxi.com\0Bob <sip:bob@biloxi.com>;tag=a6c85cf\0"
    "\"Alice Liddell\" <sip:alice@atlanta.com>;tag=1928301774\0"
    "<sip:alice@192.0.2.101:5060;transport=udp>;expires=3600;+sip.instance=\"<urn:uuid:0a1b2c3d-0000-1000-8000-"
    "AABBCCDDEEFF>\"\0INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE, REFER, NOTIFY, INFO, SUBSCRIBE, MESSAGE\0"
    "replaces, timer, 100rel, path, gruu, outbound\0ExamplePhone/4.2.1 (Linux)\0Asterisk PBX 18.20.0\0"
    "Linphone/5.2.0 (belle-sip/5.2.0)\0Digest username=\"alice\", realm=\"atlanta.com\", "
    "nonce=\"84a4cc6f3082121f32b42a2187831a9e\", uri=\"sip:bob@biloxi.com\", "
    "response=\"7587245234b3434cc3412213e5f113a5\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"0a4f113b\"\0"
    "<sip:proxy.atlanta.com;lr>\0application/sdp, application/dtmf-relay\0en, fr;q=0.8\0"
    "Tue, 15 Nov 1994 08:12:31 GMT\0session=1800;refresher=uac\0presence, dialog, message-summary\0"
    "<sip:+15551234567@gw.example.net;user=phone>\0sip:+15551234567@example.com;user=phone\0"
    "Bob <sips:bob@biloxi.example.com:5061;transport=tls>\0<sip:edge-1.example.org;lr;ftag=8f3a2b>\0";

/* Part 2, the tie-break: a rough weight of how often each byte turns up in header text, multiplied over bytes 0-2. */
static uint64_t byte_weight(unsigned x) {
    if (x >= 'a' && x <= 'z') return 8;
    if ((x >= 'A' && x <= 'Z') || (x >= '0' && x <= '9')) return 4;
    if (x >= 0x20 && x < 0x7f) return 2;
    return 1;
}

/* Cost of each bucket given its nibble sets, all 8 at once (an empty bucket costs 0): training hits above, the
 * weight product (at most 579^3 < 2^28) below. */
static void bucket_costs(const uint16_t lo[CSIP_PATTERNS_BUCKETS][3], const uint16_t hi[CSIP_PATTERNS_BUCKETS][3],
                         uint64_t cost[CSIP_PATTERNS_BUCKETS]) {
    uint8_t pass[3][256]; /* per byte j and byte value: the buckets that let it through */
    uint64_t weight[CSIP_PATTERNS_BUCKETS];
    for (uint32_t b = 0; b < CSIP_PATTERNS_BUCKETS; b++) weight[b] = 1;
    for (int j = 0; j < 3; j++) {
        uint8_t lo_table[16] = {0}, hi_table[16] = {0};
        for (uint32_t b = 0; b < CSIP_PATTERNS_BUCKETS; b++) {
            for (unsigned n = 0; n < 16; n++) {
                if ((lo[b][j] >> n) & 1) lo_table[n] |= (uint8_t)(1u << b);
                if ((hi[b][j] >> n) & 1) hi_table[n] |= (uint8_t)(1u << b);
            }
        }
        uint64_t sum[CSIP_PATTERNS_BUCKETS] = {0};
        for (unsigned c = 0; c < 256; c++) {
            uint8_t bits = (uint8_t)(lo_table[c & 15] & hi_table[c >> 4]);
            pass[j][c] = bits;
            for (uint32_t rest = bits; rest != 0; rest &= rest - 1) sum[__builtin_ctz(rest)] += byte_weight(c);
        }
        for (uint32_t b = 0; b < CSIP_PATTERNS_BUCKETS; b++) weight[b] *= sum[b];
    }
    uint64_t hits[CSIP_PATTERNS_BUCKETS] = {0};
    const uint8_t *t = (const uint8_t *)training_text;
    size_t n = sizeof(training_text) - 1;
    for (size_t i = 0; i < n; i++) {
        if (t[i] == 0) continue;
        if (is_letter(t[i]) && i > 0 && is_word(t[i - 1])) continue; /* the prefilter's word-start rule */
        uint32_t bits = pass[0][t[i]];
        if (bits == 0) continue;
        bits &= pass[1][i + 1 < n ? t[i + 1] : 0];
        bits &= pass[2][i + 2 < n ? t[i + 2] : 0];
        for (; bits != 0; bits &= bits - 1) hits[__builtin_ctz(bits)]++;
    }
    for (uint32_t b = 0; b < CSIP_PATTERNS_BUCKETS; b++) cost[b] = (hits[b] << 32) + weight[b];
}

/* Nibble sets of one pattern's first three bytes (both cases of a letter; any byte past its end). */
static void pattern_nibbles(const uint8_t *text, size_t length, uint16_t lo[3], uint16_t hi[3]) {
    for (size_t j = 0; j < 3; j++) {
        if (j >= length) {
            lo[j] = 0xffff;
            hi[j] = 0xffff;
            continue;
        }
        uint8_t c = text[j];
        lo[j] = (uint16_t)(1u << (c & 15));
        hi[j] = (uint16_t)(1u << (c >> 4));
        if (is_letter(c)) hi[j] |= (uint16_t)(1u << ((c ^ 0x20) >> 4));
    }
}

/* Puts pattern k in the bucket where it adds the least cost, and enters it in the lookup tables. */
static void place_pattern(struct csip_patterns *p, uint32_t k) {
    uint16_t lo[3], hi[3];
    pattern_nibbles(p->text + p->offset[k], p->length[k], lo, hi);
    uint16_t merged_lo[CSIP_PATTERNS_BUCKETS][3], merged_hi[CSIP_PATTERNS_BUCKETS][3];
    for (uint32_t b = 0; b < CSIP_PATTERNS_BUCKETS; b++) {
        for (int j = 0; j < 3; j++) {
            merged_lo[b][j] = (uint16_t)(p->bucket_lo[b][j] | lo[j]);
            merged_hi[b][j] = (uint16_t)(p->bucket_hi[b][j] | hi[j]);
        }
    }
    uint64_t before[CSIP_PATTERNS_BUCKETS], after[CSIP_PATTERNS_BUCKETS];
    bucket_costs((const uint16_t(*)[3])p->bucket_lo, (const uint16_t(*)[3])p->bucket_hi, before);
    bucket_costs((const uint16_t(*)[3])merged_lo, (const uint16_t(*)[3])merged_hi, after);
    uint32_t best = 0;
    uint64_t best_delta = UINT64_MAX;
    for (uint32_t b = 0; b < CSIP_PATTERNS_BUCKETS; b++) {
        uint64_t delta = after[b] - before[b];
        if (delta < best_delta) {
            best_delta = delta;
            best = b;
        }
    }
    p->bucket_patterns[best] |= 1ull << k;
    uint8_t bit = (uint8_t)(1u << best);
    for (int j = 0; j < 3; j++) {
        p->bucket_lo[best][j] |= lo[j];
        p->bucket_hi[best][j] |= hi[j];
        for (unsigned n = 0; n < 16; n++) {
            if ((p->bucket_lo[best][j] >> n) & 1) p->teddy_lo[j][n] = p->teddy_lo[j][n + 16] = (uint8_t)(p->teddy_lo[j][n] | bit);
            if ((p->bucket_hi[best][j] >> n) & 1) p->teddy_hi[j][n] = p->teddy_hi[j][n + 16] = (uint8_t)(p->teddy_hi[j][n] | bit);
        }
    }
}

/* Lets byte c through the exact first-byte filter (see first_lo in CSIPScan.h). */
static void enter_first_byte(struct csip_patterns *p, uint8_t c) {
    unsigned lo = c & 15u, hi = c >> 4;
    if (hi < 8) {
        p->first_lo[lo] = p->first_lo[lo + 16] = (uint8_t)(p->first_lo[lo] | (1u << hi));
        return;
    }
    p->first_lo[lo] = p->first_lo[lo + 16] = (uint8_t)(p->first_lo[lo] | 1u);
    for (unsigned n = 8; n < 16; n++) p->first_hi[n] = p->first_hi[n + 16] = 0xff;
}

/* ---- refinement ------------------------------------------------------------------------------------------------ */

/* The training positions the refinement counts, as bit sets: lo[j][l] holds the positions whose byte j has low nibble
 * l, hi[j][h] those whose byte j has high nibble h. weight_rows[h][w]: the low nibbles l whose byte (h << 4 | l) has
 * byte_weight 1 << w. */
#define CSIP_REFINE_WORDS ((sizeof(training_text) + 63) / 64)
struct refine_sets {
    uint64_t lo[3][16][CSIP_REFINE_WORDS];
    uint64_t hi[3][16][CSIP_REFINE_WORDS];
    uint16_t weight_rows[16][4];
    size_t words; /* words in use: (positions + 63) / 64 */
};

/* Cost of one bucket with the given nibble sets over the training positions: hits above, the weight product below,
 * as bucket_costs. An empty bucket costs 0. */
static uint64_t refine_cost(const uint16_t lo[3], const uint16_t hi[3], const struct refine_sets *sets) {
    if (lo[0] == 0) return 0;
    uint64_t pass[CSIP_REFINE_WORDS];
    for (size_t w = 0; w < sets->words; w++) pass[w] = ~0ull;
    for (int j = 0; j < 3; j++) {
        uint64_t lo_any[CSIP_REFINE_WORDS] = {0}, hi_any[CSIP_REFINE_WORDS] = {0};
        for (uint32_t l = lo[j]; l != 0; l &= l - 1) {
            const uint64_t *bits = sets->lo[j][__builtin_ctz(l)];
            for (size_t w = 0; w < sets->words; w++) lo_any[w] |= bits[w];
        }
        for (uint32_t h = hi[j]; h != 0; h &= h - 1) {
            const uint64_t *bits = sets->hi[j][__builtin_ctz(h)];
            for (size_t w = 0; w < sets->words; w++) hi_any[w] |= bits[w];
        }
        for (size_t w = 0; w < sets->words; w++) pass[w] &= lo_any[w] & hi_any[w];
    }
    uint64_t hits = 0;
    for (size_t w = 0; w < sets->words; w++) hits += (uint64_t)__builtin_popcountll(pass[w]);
    uint64_t weight = 1;
    for (int j = 0; j < 3; j++) {
        uint64_t sum = 0;
        for (uint32_t h = hi[j]; h != 0; h &= h - 1) {
            const uint16_t *row = sets->weight_rows[__builtin_ctz(h)];
            for (int w = 0; w < 4; w++) sum += (uint64_t)__builtin_popcount((uint32_t)(lo[j] & row[w])) << w;
        }
        weight *= sum;
    }
    return (hits << 32) + weight;
}

int csip_patterns_optimize(struct csip_patterns *p) {
    if (p == NULL) return -EINVAL;
    if (p->count == 0) return 0;
    /* The training positions the search would verify without a prefilter: a byte that starts some pattern (the
     * first-byte filter passes nothing else) and, with the word-start rule, not a letter inside a word. */
    static const size_t text_length = sizeof(training_text) - 1;
    struct refine_sets sets;
    memset(&sets, 0, sizeof(sets));
    const uint8_t *t = (const uint8_t *)training_text;
    size_t n = 0;
    for (size_t i = 0; i < text_length; i++) {
        if (t[i] == 0 || !p->candidate[t[i]]) continue;
        if (!p->anywhere && is_letter(t[i]) && i > 0 && is_word(t[i - 1])) continue;
        for (size_t j = 0; j < 3; j++) {
            uint8_t c = i + j < text_length ? t[i + j] : 0;
            sets.lo[j][c & 15][n >> 6] |= 1ull << (n & 63);
            sets.hi[j][c >> 4][n >> 6] |= 1ull << (n & 63);
        }
        n++;
    }
    sets.words = (n + 63) / 64;
    for (unsigned c = 0; c < 256; c++) {
        sets.weight_rows[c >> 4][__builtin_ctzll(byte_weight(c))] |= (uint16_t)(1u << (c & 15));
    }
    uint8_t assign[CSIP_PATTERNS_MAX];
    uint16_t plo[CSIP_PATTERNS_MAX][3], phi[CSIP_PATTERNS_MAX][3];
    uint16_t blo[CSIP_PATTERNS_BUCKETS][3] = {{0}}, bhi[CSIP_PATTERNS_BUCKETS][3] = {{0}};
    uint64_t cost[CSIP_PATTERNS_BUCKETS];
    for (uint32_t k = 0; k < p->count; k++) {
        assign[k] = 0;
        for (uint32_t b = 0; b < CSIP_PATTERNS_BUCKETS; b++) {
            if ((p->bucket_patterns[b] >> k) & 1) assign[k] = (uint8_t)b;
        }
        pattern_nibbles(p->text + p->offset[k], p->length[k], plo[k], phi[k]);
        for (int j = 0; j < 3; j++) {
            blo[assign[k]][j] |= plo[k][j];
            bhi[assign[k]][j] |= phi[k][j];
        }
    }
    for (uint32_t b = 0; b < CSIP_PATTERNS_BUCKETS; b++) cost[b] = refine_cost(blo[b], bhi[b], &sets);
    /* Local search: move one pattern at a time to the bucket that lowers the total cost most, until no move helps. */
    for (int sweep = 0; sweep < 6; sweep++) {
        int moved = 0;
        for (uint32_t k = 0; k < p->count; k++) {
            uint32_t from = assign[k];
            uint16_t rest_lo[3] = {0, 0, 0}, rest_hi[3] = {0, 0, 0};
            for (uint32_t q = 0; q < p->count; q++) {
                if (q == k || assign[q] != from) continue;
                for (int j = 0; j < 3; j++) {
                    rest_lo[j] |= plo[q][j];
                    rest_hi[j] |= phi[q][j];
                }
            }
            uint64_t rest_cost = refine_cost(rest_lo, rest_hi, &sets);
            uint32_t best = from;
            uint64_t best_gain = 0, best_cost = 0;
            for (uint32_t b = 0; b < CSIP_PATTERNS_BUCKETS; b++) {
                if (b == from) continue;
                uint16_t lo[3], hi[3];
                for (int j = 0; j < 3; j++) {
                    lo[j] = (uint16_t)(blo[b][j] | plo[k][j]);
                    hi[j] = (uint16_t)(bhi[b][j] | phi[k][j]);
                }
                uint64_t moved_cost = refine_cost(lo, hi, &sets);
                /* The two buckets involved, before (from, b) and after (from without k, b with k). */
                uint64_t before = cost[from] + cost[b], after = rest_cost + moved_cost;
                if (after < before && before - after > best_gain) {
                    best = b;
                    best_gain = before - after;
                    best_cost = moved_cost;
                }
            }
            if (best == from) continue;
            assign[k] = (uint8_t)best;
            for (int j = 0; j < 3; j++) {
                blo[from][j] = rest_lo[j];
                bhi[from][j] = rest_hi[j];
                blo[best][j] |= plo[k][j];
                bhi[best][j] |= phi[k][j];
            }
            cost[from] = rest_cost;
            cost[best] = best_cost;
            moved = 1;
        }
        if (!moved) break;
    }
    /* Rebuild the prefilter tables from the new placement. */
    memset(p->teddy_lo, 0, sizeof(p->teddy_lo));
    memset(p->teddy_hi, 0, sizeof(p->teddy_hi));
    memset(p->bucket_patterns, 0, sizeof(p->bucket_patterns));
    for (uint32_t k = 0; k < p->count; k++) p->bucket_patterns[assign[k]] |= 1ull << k;
    for (uint32_t b = 0; b < CSIP_PATTERNS_BUCKETS; b++) {
        uint8_t bit = (uint8_t)(1u << b);
        for (int j = 0; j < 3; j++) {
            p->bucket_lo[b][j] = blo[b][j];
            p->bucket_hi[b][j] = bhi[b][j];
            for (unsigned nibble = 0; nibble < 16; nibble++) {
                if ((blo[b][j] >> nibble) & 1) {
                    p->teddy_lo[j][nibble] = p->teddy_lo[j][nibble + 16] = (uint8_t)(p->teddy_lo[j][nibble] | bit);
                }
                if ((bhi[b][j] >> nibble) & 1) {
                    p->teddy_hi[j][nibble] = p->teddy_hi[j][nibble + 16] = (uint8_t)(p->teddy_hi[j][nibble] | bit);
                }
            }
        }
    }
    return 0;
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
    enter_first_byte(p, first);
    if (is_letter(first)) {
        p->candidate[first & (uint8_t)~0x20] = 1;
        enter_first_byte(p, first & (uint8_t)~0x20);
    }
    place_pattern(p, p->count);
    p->count++;
    return 0;
}

/* ---- scalar (reference) ---------------------------------------------------------------------------------------- */

static int32_t find_scalar(const struct csip_patterns *p, const uint8_t *buf, size_t from, size_t to,
                           uint64_t enabled) {
    int word_start = !p->anywhere;
    int previous_word = 0;
    for (size_t i = from; i < to; i++) {
        uint8_t c = buf[i];
        int word = is_word(c);
        if (p->candidate[c] && !(word_start && previous_word && is_letter(c))) {
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

/* ---- SIMD prefilter -------------------------------------------------------------------------------------------- */

/* The exact check at a prefilter hit: the first enabled pattern of the hit's buckets (table order) that occurs at i,
 * with the scalar search's word-start rule. */
static inline int32_t verify(const struct csip_patterns *p, const uint8_t *buf, size_t from, size_t to, size_t i,
                             uint32_t buckets, uint64_t enabled) {
    uint8_t c = buf[i];
    /* Only patterns starting with this byte (the table is in first-byte order: one run of indexes). */
    uint8_t first = lower(c);
    uint32_t run = p->first_count[first];
    if (run == 0) return -1;
    /* A letter inside a word starts nothing (only patterns starting with that letter could match here). */
    if (!p->anywhere && is_letter(c) && i > from && is_word(buf[i - 1])) return -1;
    uint64_t candidates = 0;
    while (buckets != 0) {
        candidates |= p->bucket_patterns[__builtin_ctz(buckets)];
        buckets &= buckets - 1;
    }
    uint64_t same_first = (run >= 64 ? ~0ull : ((1ull << run) - 1)) << p->first_start[first];
    candidates &= enabled & same_first;
    while (candidates != 0) {
        uint32_t k = (uint32_t)__builtin_ctzll(candidates);
        candidates &= candidates - 1;
        size_t length = p->length[k];
        if (length > to - i) continue;
        const uint8_t *pattern = p->text + p->offset[k];
        size_t j = 0;
        while (j < length && lower(buf[i + j]) == pattern[j]) j++;
        if (j == length) return (int32_t)k;
    }
    return -1;
}

/* Buckets holding at least one enabled pattern. */
static inline uint8_t active_buckets(const struct csip_patterns *p, uint64_t enabled) {
    uint8_t active = 0;
    for (uint32_t b = 0; b < CSIP_PATTERNS_BUCKETS; b++) {
        if (p->bucket_patterns[b] & enabled) active |= (uint8_t)(1u << b);
    }
    return active;
}

/* The spans csip_patterns_find_headers visits, checked against len. */
enum { PADDED_SIZE = 64 };

/* A SIMD step reads `step` bytes at once; a buffer shorter than that is searched in a zero-padded copy (`small`,
 * PADDED_SIZE bytes), so no read leaves the caller's buffer and the padding matches no pattern. */
static inline const uint8_t *padded(const uint8_t *buf, size_t *len, size_t step, uint8_t *small) {
    if (*len >= step) return buf;
    memset(small, 0, PADDED_SIZE);
    memcpy(small, buf, *len);
    *len = PADDED_SIZE;
    return small;
}

static inline int span_fits(struct csip_span s, size_t len) {
    return (size_t)s.off + (size_t)s.len <= len;
}

static inline int header_selected(const struct csip_header *h, uint64_t kinds) {
    return h->kind < 64 && ((kinds >> h->kind) & 1) != 0 && h->value.len != 0;
}

_Static_assert(CSIP_HDR_KIND_COUNT <= 64, "csip_patterns_find_headers selects kinds with a 64-bit mask");

#if CSIP_HAVE_X86

/* The SIMD searches read anywhere in buf[0, len) (the whole message, not just the span: no copy, so no
 * store-forwarding stall on short header values). A step of W positions reads W + 2 bytes; where those would pass
 * `len` the step's window is moved back to end at len and its hits shifted, and the last two positions of the buffer
 * (which the window cannot cover) get the exact check directly. A buffer shorter than one step is copied to a
 * zeroed stack buffer first (zeros cannot complete a pattern: the exact check stops at `to`).
 *
 * A step: Teddy (bytes 0-2 of each position, per bucket) AND the exact first-byte filter AND the word-start rule.
 * The tables are loaded once per call (struct teddy_*) and the span loop is inlined into the single-span and the
 * header searches, so a search over many short header values pays the set-up once. */

/* The exact check for the positions [start, to) a window did not cover (at most two). */
static inline int32_t verify_rest(const struct csip_patterns *p, const uint8_t *buf, size_t from, size_t start,
                                  size_t to, uint64_t enabled) {
    for (size_t i = start; i < to; i++) {
        int32_t k = verify(p, buf, from, to, i, 0xff, enabled);
        if (k >= 0) return k;
    }
    return -1;
}

struct teddy_sse {
    __m128i lo[3], hi[3], first_lo, first_hi, keep;
};

__attribute__((target("sse4.2")))
static inline void teddy_sse_load(const struct csip_patterns *p, uint8_t active, struct teddy_sse *t) {
    for (int j = 0; j < 3; j++) {
        t->lo[j] = _mm_loadu_si128((const __m128i *)(const void *)p->teddy_lo[j]);
        t->hi[j] = _mm_loadu_si128((const __m128i *)(const void *)p->teddy_hi[j]);
    }
    t->first_lo = _mm_loadu_si128((const __m128i *)(const void *)p->first_lo);
    t->first_hi = _mm_loadu_si128((const __m128i *)(const void *)p->first_hi);
    t->keep = _mm_set1_epi8((char)active);
}

__attribute__((target("sse4.2"), always_inline))
static inline int32_t span_sse42(const struct csip_patterns *p, const struct teddy_sse *t, const uint8_t *buf,
                                 size_t len, size_t from, size_t to, uint64_t enabled) {
    const __m128i nibble = _mm_set1_epi8(0x0f);
    const __m128i zero = _mm_setzero_si128();
    const __m128i case_bit = _mm_set1_epi8(0x20);
    const __m128i a = _mm_set1_epi8('a'), z_span = _mm_set1_epi8(25);
    const __m128i zero_char = _mm_set1_epi8('0'), nine_span = _mm_set1_epi8(9);
    uint8_t hits[16];
    uint32_t previous_word = 0; /* bit 0: the byte before this step is a letter or digit */
    size_t end = to < len - 2 ? to : len - 2; /* positions the windows cover */
    for (size_t i = from; i < end; i += 16) {
        size_t window = i + 18 <= len ? i : len - 18;
        uint32_t shift = (uint32_t)(i - window); /* < 16: i < len - 2 */
        const uint8_t *s = buf + window;
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);
        __m128i lo0 = _mm_and_si128(v, nibble), hi0 = _mm_and_si128(_mm_srli_epi16(v, 4), nibble);
        __m128i r = _mm_and_si128(_mm_shuffle_epi8(t->lo[0], lo0), _mm_shuffle_epi8(t->hi[0], hi0));
        for (int j = 1; j < 3; j++) {
            __m128i w = _mm_loadu_si128((const __m128i *)(const void *)(s + j));
            __m128i lo = _mm_shuffle_epi8(t->lo[j], _mm_and_si128(w, nibble));
            __m128i hi = _mm_shuffle_epi8(t->hi[j], _mm_and_si128(_mm_srli_epi16(w, 4), nibble));
            r = _mm_and_si128(r, _mm_and_si128(lo, hi));
        }
        __m128i first = _mm_and_si128(_mm_shuffle_epi8(t->first_lo, lo0), _mm_shuffle_epi8(t->first_hi, hi0));
        r = _mm_andnot_si128(_mm_cmpeq_epi8(first, zero), _mm_and_si128(r, t->keep));
        uint32_t mask = ((uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(r, zero)) ^ 0xffffu) >> shift;
        /* The word-start rule: a letter right after a letter or digit starts nothing. */
        __m128i letter_index = _mm_sub_epi8(_mm_or_si128(v, case_bit), a);
        __m128i digit_index = _mm_sub_epi8(v, zero_char);
        __m128i letter = _mm_cmpeq_epi8(_mm_min_epu8(letter_index, z_span), letter_index);
        __m128i digit = _mm_cmpeq_epi8(_mm_min_epu8(digit_index, nine_span), digit_index);
        uint32_t letters = (uint32_t)_mm_movemask_epi8(letter) >> shift;
        uint32_t words = (uint32_t)_mm_movemask_epi8(_mm_or_si128(letter, digit)) >> shift;
        if (!p->anywhere) mask &= ~(letters & ((words << 1) | previous_word));
        previous_word = (words >> 15) & 1;
        size_t left = end - i;
        if (left < 16) mask &= (1u << left) - 1;
        if (mask == 0) continue;
        _mm_storeu_si128((__m128i *)(void *)hits, r);
        do {
            uint32_t at = (uint32_t)__builtin_ctz(mask);
            mask &= mask - 1;
            int32_t k = verify(p, buf, from, to, i + at, hits[at + shift], enabled);
            if (k >= 0) return k;
        } while (mask != 0);
    }
    return verify_rest(p, buf, from, end > from ? end : from, to, enabled);
}

__attribute__((target("sse4.2")))
static int32_t find_sse42(const struct csip_patterns *p, const uint8_t *buf, size_t len, size_t from, size_t to,
                          uint64_t enabled) {
    uint8_t active = active_buckets(p, enabled);
    if (active == 0 || from >= to) return -1;
    uint8_t small[PADDED_SIZE];
    buf = padded(buf, &len, 18, small);
    struct teddy_sse t;
    teddy_sse_load(p, active, &t);
    return span_sse42(p, &t, buf, len, from, to, enabled);
}

__attribute__((target("sse4.2")))
static int32_t headers_sse42(const struct csip_patterns *p, const uint8_t *buf, size_t len,
                             const struct csip_span *first, const struct csip_header *headers, uint32_t count,
                             uint64_t kinds, uint64_t enabled, int32_t *where) {
    uint8_t active = active_buckets(p, enabled);
    if (active == 0) return -1;
    uint8_t small[PADDED_SIZE];
    size_t size = len;
    const uint8_t *data = padded(buf, &size, 18, small);
    struct teddy_sse t;
    teddy_sse_load(p, active, &t);
    if (first != NULL && first->len != 0) {
        if (!span_fits(*first, len)) return -EINVAL;
        int32_t k = span_sse42(p, &t, data, size, first->off, (size_t)first->off + first->len, enabled);
        if (k >= 0) return k;
    }
    for (uint32_t h = 0; h < count; h++) {
        if (!header_selected(&headers[h], kinds)) continue;
        struct csip_span v = headers[h].value;
        if (!span_fits(v, len)) return -EINVAL;
        int32_t k = span_sse42(p, &t, data, size, v.off, (size_t)v.off + v.len, enabled);
        if (k >= 0) {
            *where = (int32_t)h;
            return k;
        }
    }
    return -1;
}

struct teddy_avx2 {
    __m256i lo[3], hi[3], first_lo, first_hi, keep;
};

__attribute__((target("avx2,bmi")))
static inline void teddy_avx2_load(const struct csip_patterns *p, uint8_t active, struct teddy_avx2 *t) {
    for (int j = 0; j < 3; j++) {
        t->lo[j] = _mm256_loadu_si256((const __m256i *)(const void *)p->teddy_lo[j]);
        t->hi[j] = _mm256_loadu_si256((const __m256i *)(const void *)p->teddy_hi[j]);
    }
    t->first_lo = _mm256_loadu_si256((const __m256i *)(const void *)p->first_lo);
    t->first_hi = _mm256_loadu_si256((const __m256i *)(const void *)p->first_hi);
    t->keep = _mm256_set1_epi8((char)active);
}

__attribute__((target("avx2,bmi"), always_inline))
static inline int32_t span_avx2(const struct csip_patterns *p, const struct teddy_avx2 *t, const uint8_t *buf,
                                size_t len, size_t from, size_t to, uint64_t enabled) {
    const __m256i nibble = _mm256_set1_epi8(0x0f);
    const __m256i zero = _mm256_setzero_si256();
    uint8_t hits[32];
    size_t end = to < len - 2 ? to : len - 2; /* positions the windows cover */
    for (size_t i = from; i < end; i += 32) {
        size_t window = i + 34 <= len ? i : len - 34;
        uint32_t shift = (uint32_t)(i - window); /* < 32: i < len - 2 */
        const uint8_t *s = buf + window;
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)s);
        __m256i lo0 = _mm256_and_si256(v, nibble), hi0 = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
        __m256i r = _mm256_and_si256(_mm256_shuffle_epi8(t->lo[0], lo0), _mm256_shuffle_epi8(t->hi[0], hi0));
        for (int j = 1; j < 3; j++) {
            __m256i w = _mm256_loadu_si256((const __m256i *)(const void *)(s + j));
            __m256i lo = _mm256_shuffle_epi8(t->lo[j], _mm256_and_si256(w, nibble));
            __m256i hi = _mm256_shuffle_epi8(t->hi[j], _mm256_and_si256(_mm256_srli_epi16(w, 4), nibble));
            r = _mm256_and_si256(r, _mm256_and_si256(lo, hi));
        }
        __m256i first = _mm256_and_si256(_mm256_shuffle_epi8(t->first_lo, lo0), _mm256_shuffle_epi8(t->first_hi, hi0));
        r = _mm256_andnot_si256(_mm256_cmpeq_epi8(first, zero), _mm256_and_si256(r, t->keep));
        uint32_t mask = ~(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(r, zero)) >> shift;
        size_t left = end - i;
        if (left < 32) mask &= (1u << left) - 1;
        if (mask == 0) continue;
        if (!p->anywhere) {
            /* The word-start rule (only where the prefilter left candidates): a letter right after a letter or digit
             * starts nothing. The byte before `from` does not count. */
            const __m256i case_bit = _mm256_set1_epi8(0x20);
            const __m256i a = _mm256_set1_epi8('a'), z_span = _mm256_set1_epi8(25);
            const __m256i zero_char = _mm256_set1_epi8('0'), nine_span = _mm256_set1_epi8(9);
            __m256i letter_index = _mm256_sub_epi8(_mm256_or_si256(v, case_bit), a);
            __m256i digit_index = _mm256_sub_epi8(v, zero_char);
            __m256i letter = _mm256_cmpeq_epi8(_mm256_min_epu8(letter_index, z_span), letter_index);
            __m256i digit = _mm256_cmpeq_epi8(_mm256_min_epu8(digit_index, nine_span), digit_index);
            uint32_t letters = (uint32_t)_mm256_movemask_epi8(letter) >> shift;
            uint32_t words = (uint32_t)_mm256_movemask_epi8(_mm256_or_si256(letter, digit)) >> shift;
            uint32_t before = (uint32_t)(i > from && is_word(buf[i - 1]));
            mask &= ~(letters & ((words << 1) | before));
            if (mask == 0) continue;
        }
        _mm256_storeu_si256((__m256i *)(void *)hits, r);
        do {
            uint32_t at = (uint32_t)_tzcnt_u32(mask);
            mask &= mask - 1;
            int32_t k = verify(p, buf, from, to, i + at, hits[at + shift], enabled);
            if (k >= 0) return k;
        } while (mask != 0);
    }
    if (end >= to) return -1;
    return verify_rest(p, buf, from, end > from ? end : from, to, enabled);
}

__attribute__((target("avx2,bmi")))
static int32_t find_avx2(const struct csip_patterns *p, const uint8_t *buf, size_t len, size_t from, size_t to,
                         uint64_t enabled) {
    uint8_t active = active_buckets(p, enabled);
    if (active == 0 || from >= to) return -1;
    uint8_t small[PADDED_SIZE];
    buf = padded(buf, &len, 34, small);
    struct teddy_avx2 t;
    teddy_avx2_load(p, active, &t);
    return span_avx2(p, &t, buf, len, from, to, enabled);
}

__attribute__((target("avx2,bmi")))
static int32_t headers_avx2(const struct csip_patterns *p, const uint8_t *buf, size_t len,
                            const struct csip_span *first, const struct csip_header *headers, uint32_t count,
                            uint64_t kinds, uint64_t enabled, int32_t *where) {
    uint8_t active = active_buckets(p, enabled);
    if (active == 0) return -1;
    uint8_t small[PADDED_SIZE];
    size_t size = len;
    const uint8_t *data = padded(buf, &size, 34, small);
    struct teddy_avx2 t;
    teddy_avx2_load(p, active, &t);
    if (first != NULL && first->len != 0) {
        if (!span_fits(*first, len)) return -EINVAL;
        int32_t k = span_avx2(p, &t, data, size, first->off, (size_t)first->off + first->len, enabled);
        if (k >= 0) return k;
    }
    for (uint32_t h = 0; h < count; h++) {
        if (!header_selected(&headers[h], kinds)) continue;
        struct csip_span v = headers[h].value;
        if (!span_fits(v, len)) return -EINVAL;
        int32_t k = span_avx2(p, &t, data, size, v.off, (size_t)v.off + v.len, enabled);
        if (k >= 0) {
            *where = (int32_t)h;
            return k;
        }
    }
    return -1;
}

#endif

static int32_t headers_scalar(const struct csip_patterns *p, const uint8_t *buf, size_t len,
                              const struct csip_span *first, const struct csip_header *headers, uint32_t count,
                              uint64_t kinds, uint64_t enabled, int32_t *where) {
    if (first != NULL && first->len != 0) {
        if (!span_fits(*first, len)) return -EINVAL;
        int32_t k = find_scalar(p, buf, first->off, (size_t)first->off + first->len, enabled);
        if (k >= 0) return k;
    }
    for (uint32_t h = 0; h < count; h++) {
        if (!header_selected(&headers[h], kinds)) continue;
        struct csip_span v = headers[h].value;
        if (!span_fits(v, len)) return -EINVAL;
        int32_t k = find_scalar(p, buf, v.off, (size_t)v.off + v.len, enabled);
        if (k >= 0) {
            *where = (int32_t)h;
            return k;
        }
    }
    return -1;
}

int32_t csip_patterns_find_in(const struct csip_patterns *p, const uint8_t *buf, size_t len, size_t from, size_t to,
                              uint64_t enabled) {
    if (p == NULL || buf == NULL || to > len) return -1;
#if CSIP_HAVE_X86
    switch (p->simd_level) {
    case CSIP_SIMD_AVX2: return find_avx2(p, buf, len, from, to, enabled);
    case CSIP_SIMD_SSE42: return find_sse42(p, buf, len, from, to, enabled);
    default: break;
    }
#endif
    return find_scalar(p, buf, from, to, enabled);
}

int32_t csip_patterns_find(const struct csip_patterns *p, const uint8_t *buf, size_t from, size_t to,
                           uint64_t enabled) {
    if (p == NULL || buf == NULL || from >= to) return -1;
    /* Only [from, to) may be read: that is the whole buffer. The word-start rule depends on `from` alone. */
    return csip_patterns_find_in(p, buf + from, to - from, 0, to - from, enabled);
}

int32_t csip_patterns_find_headers(const struct csip_patterns *p, const uint8_t *buf, size_t len,
                                   const struct csip_span *first, const struct csip_header *headers, uint32_t count,
                                   uint64_t kinds, uint64_t enabled, int32_t *where) {
    if (p == NULL || buf == NULL || where == NULL || (headers == NULL && count != 0)) return -EINVAL;
    *where = -1;
#if CSIP_HAVE_X86
    switch (p->simd_level) {
    case CSIP_SIMD_AVX2: return headers_avx2(p, buf, len, first, headers, count, kinds, enabled, where);
    case CSIP_SIMD_SSE42: return headers_sse42(p, buf, len, first, headers, count, kinds, enabled, where);
    default: break;
    }
#endif
    return headers_scalar(p, buf, len, first, headers, count, kinds, enabled, where);
}

/* ---- non-ASCII search ------------------------------------------------------------------------------------------ */

size_t csip_find_non_ascii(const uint8_t *buf, size_t from, size_t to) {
    if (buf == NULL) return to;
    size_t i = from;
#if CSIP_HAVE_X86 && defined(__SSE2__)
    /* 64 bytes per step (four loads OR-ed: one test), then 16, then bytes. */
    while (i + 64 <= to) {
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(buf + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(buf + i + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(buf + i + 32));
        __m128i d = _mm_loadu_si128((const __m128i *)(const void *)(buf + i + 48));
        if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d))) != 0) break;
        i += 64;
    }
    while (i + 16 <= to) {
        uint32_t mask = (uint32_t)_mm_movemask_epi8(_mm_loadu_si128((const __m128i *)(const void *)(buf + i)));
        if (mask != 0) return i + (size_t)__builtin_ctz(mask);
        i += 16;
    }
#endif
    for (; i < to; i++) {
        if (buf[i] >= 0x80) return i;
    }
    return to;
}
