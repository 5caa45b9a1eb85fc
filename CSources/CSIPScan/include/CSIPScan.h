/*
 * CSIPScan: a zero-copy scanner for one SIP message.
 *
 * Given (pointer, length) of one datagram or one framed stream message, it finds the start line and every header
 * line and reports them as spans (offset, length) into the caller's buffer. Nothing is allocated or copied: the
 * caller owns the header array (picohttpparser's pull style). Folded header values (RFC 3261 §7.3.1) are unfolded
 * logically: the value span covers every continuation line and CSIP_HEADER_FOLDED says that CRLF+WSP may occur
 * inside it; readers treat that sequence as one SP.
 *
 * Bytes from the body on are never read. Header bytes are validated as they are found: CR only as part of CRLF, no
 * bare LF, token characters in names, no control character but HTAB in the start line. Control characters in a
 * header value are flagged (CSIP_HEADER_CONTROL_CHARS), not refused: RFC 3261 allows them as quoted-pairs.
 *
 * Rules for this target: no global mutable state (the chosen SIMD routine lives in a caller-owned csip_scanner),
 * every symbol prefixed csip_, -Wall -Wextra -Werror.
 */
#ifndef CSIPSCAN_H
#define CSIPSCAN_H

#include <stddef.h>
#include <stdint.h>

#include "csip_header_kinds.h"
#include "csip_chars.h"
#include "csip_bytes.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A byte range inside the caller's buffer. 32 bits are enough: messages are capped far below 4 GiB. */
struct csip_span {
    uint32_t off;
    uint32_t len;
};

/** Header kinds, generated from csip_header_kinds.h. CSIP_HDR_OTHER is any name not in the table. */
enum {
    CSIP_HDR_OTHER = 0,
#define CSIP_X_ENUM(e, name, compact) CSIP_HDR_##e,
    CSIP_HEADER_KINDS(CSIP_X_ENUM)
#undef CSIP_X_ENUM
    CSIP_HDR_KIND_COUNT
};

/** Flags on one header line. */
enum {
    /** The value continues on folded lines: CRLF followed by SP/HTAB may occur inside the value span. */
    CSIP_HEADER_FOLDED = 1u << 0,
    /** Whitespace stood between the name and the colon. RFC 3261 allows it; edge policy may not. */
    CSIP_HEADER_SPACE_BEFORE_COLON = 1u << 1,
    /** The name was a one-letter compact form (RFC 3261 §7.3.3). */
    CSIP_HEADER_COMPACT = 1u << 2,
    /** The value holds a control character other than HTAB (NUL included). Legal only as a quoted-pair inside a
     * quoted string; the parser checks that, policy may refuse it outright. */
    CSIP_HEADER_CONTROL_CHARS = 1u << 3,
    /** The header had at least one continuation line (even if its value only starts there). */
    CSIP_HEADER_CONTINUED = 1u << 4,
};

/** One header line: name and value spans (value trimmed of surrounding whitespace), kind and flags. */
struct csip_header {
    struct csip_span name;
    struct csip_span value;
    uint16_t kind;
    uint16_t flags;
};

/** Result of a scan. */
enum {
    /** Start line and all headers found; body_offset is where the body begins. */
    CSIP_SCAN_COMPLETE = 0,
    /** The bytes end before the empty line that ends the headers. A stream waits for more; a datagram is invalid. */
    CSIP_SCAN_INCOMPLETE = 1,
    /** The bytes break a rule; error and error_offset say which and where. */
    CSIP_SCAN_INVALID = 2,
};

/** Why a scan was invalid. Swift mirrors these one to one in SIPParseError.Code. */
enum {
    CSIP_ERR_NONE = 0,
    /** Only CRLFs (a keep-alive) or nothing at all. */
    CSIP_ERR_EMPTY,
    /** LF without the CR before it. */
    CSIP_ERR_BARE_LF,
    /** CR not followed by LF. */
    CSIP_ERR_BARE_CR,
    /** A NUL byte in the start line (in header values the parser reports it). */
    CSIP_ERR_NUL,
    /** Another control character (not HTAB) in the start line (in header values the parser reports it). */
    CSIP_ERR_CONTROL_CHAR,
    /** A start line or one (possibly folded) header longer than max_line_length. */
    CSIP_ERR_LINE_TOO_LONG,
    /** More headers than max_headers (or the caller's capacity). */
    CSIP_ERR_TOO_MANY_HEADERS,
    /** The headers did not end within max_message_size bytes. */
    CSIP_ERR_MESSAGE_TOO_LARGE,
    /** A header line starts with ':'. */
    CSIP_ERR_EMPTY_HEADER_NAME,
    /** A header name holds a character that is not a token character. */
    CSIP_ERR_INVALID_HEADER_NAME,
    /** A header line has no colon. */
    CSIP_ERR_MISSING_COLON,
    /** The first header line begins with whitespace, which would fold into the start line. */
    CSIP_ERR_FOLDED_START_LINE,
    CSIP_ERR_COUNT
};

/** Limits, all in bytes or counts. Zero means "use the default" shown. */
struct csip_scan_limits {
    /** Largest message including body. Default 65536. */
    uint32_t max_message_size;
    /** Longest start line or header (with its folded lines). Default 8192. */
    uint32_t max_line_length;
    /** Most header lines. Default 256 (bounded again by the caller's capacity). */
    uint32_t max_headers;
};

struct csip_scan_result {
    /** Offset of the first start-line byte (leading CRLFs are skipped, RFC 3261 §7.5). */
    struct csip_span start_line;
    uint32_t header_count;
    /** Offset of the first body byte (just past the empty line). Valid when COMPLETE. */
    uint32_t body_offset;
    /** CSIP_ERR_* when INVALID. */
    uint32_t error;
    /** Offset of the offending byte when INVALID. */
    uint32_t error_offset;
    /** OR of every header's flags: lets policy skip a per-header walk when nothing unusual was seen. */
    uint32_t header_flags;
    /** Bit k set when a header of kind k was seen (CSIP_HDR_OTHER included): the parser's set of kinds. */
    uint64_t header_kinds;
};

/** Shape of the scanner's header-kind index (checked at init). */
#define CSIP_KIND_SLOTS 256
#define CSIP_MAX_KIND_NAME 24

/** What a slot of the scanner's header-kind index gives (see csip_classify_indexed): a header's kind and flags, laid
 * out as in csip_header so that both are copied at once (the index holds each as a 32-bit word). */
struct csip_kind_info {
    uint16_t kind;  /* 0: empty slot */
    uint16_t flags; /* CSIP_HEADER_COMPACT for the one-letter forms */
};

/** Which delimiter search the scanner uses. */
enum {
    CSIP_SIMD_AUTO = 0,
    CSIP_SIMD_SCALAR = 1,
    CSIP_SIMD_SSE42 = 2,
    CSIP_SIMD_AVX2 = 3,
};

/** Caller-owned scanner context: holds the SIMD routine chosen at run time. Initialise once, use from one thread
 * or many (it is never written after init). */
struct csip_scanner {
    size_t (*find_control)(const uint8_t *buf, size_t from, size_t to);
    uint32_t simd_level;
    /** Every full and compact header name, open addressing with linear probing, built from the table at init:
     * classifying a name is one multiply and, nearly always, one slot. Empty slots have kind 0 and key 0. */
    uint32_t kind_info[CSIP_KIND_SLOTS]; /* each a struct csip_kind_info; 0 for an empty slot */
    /** Each slot's key: a name of up to 8 bytes is its bytes OR 0x20, little-endian, zero above; a longer one its
     * first 8 such bytes with bit 63 set (no name byte has it), so no short name's key equals a long one's. Apart
     * from kind_info so that both are indexed by the slot number alone. */
    uint64_t kind_keys[CSIP_KIND_SLOTS];
    /** Each kind's name in lower case, for word-at-a-time comparison. */
    uint8_t lower_names[CSIP_HDR_KIND_COUNT][CSIP_MAX_KIND_NAME];
};

/**
 * Chooses the delimiter search. CSIP_SIMD_AUTO picks the best the CPU supports; a specific level is for tests and
 * benchmarks. Returns 0, -EINVAL for a null scanner or unknown level, -ENOTSUP when the CPU lacks that level.
 */
int csip_scanner_init(struct csip_scanner *scanner, uint32_t requested_level);

/**
 * Scans one message. Returns CSIP_SCAN_COMPLETE, CSIP_SCAN_INCOMPLETE or CSIP_SCAN_INVALID, or -EINVAL when a
 * pointer is null or len exceeds UINT32_MAX. Reads at most min(len, max_message_size) bytes.
 */
int csip_scan_message(const struct csip_scanner *scanner, const uint8_t *buf, size_t len,
                      const struct csip_scan_limits *limits, struct csip_header *headers,
                      uint32_t header_capacity, struct csip_scan_result *result);

/** Canonical name of a header kind ("Via"), or NULL for CSIP_HDR_OTHER and unknown values. */
const char *csip_header_kind_name(uint32_t kind);

/** Kind of a header name (full or compact form, any case). CSIP_HDR_OTHER if not in the table. Scans the whole
 * table; the scanner itself uses the hashed index in csip_scanner. */
uint32_t csip_classify_header(const uint8_t *name, size_t len);

/** Index of the first byte in [from, to) that is a control character (0x00-0x1F or 0x7F), or `to`. For tests. */
size_t csip_find_control(const struct csip_scanner *scanner, const uint8_t *buf, size_t from, size_t to);

/* ---------------------------------------------------------------------------------------------------------------
 * Multi-pattern search for the edge policy: case-insensitive, a pattern starting with a letter matches only at the
 * start of a word. The table is caller-owned, built once (csip_patterns_add in first-byte order), read-only after.
 * ------------------------------------------------------------------------------------------------------------- */

#define CSIP_PATTERNS_MAX 64
#define CSIP_PATTERNS_TEXT_MAX 1024
#define CSIP_PATTERNS_BUCKETS 8

struct csip_patterns {
    /** 1 when a byte (either case) may start a pattern. */
    uint8_t candidate[256];
    /** Patterns by lower-cased first byte: index of the first, and how many. */
    uint8_t first_start[256];
    uint8_t first_count[256];
    uint16_t offset[CSIP_PATTERNS_MAX];
    uint8_t length[CSIP_PATTERNS_MAX];
    uint8_t text[CSIP_PATTERNS_TEXT_MAX];
    uint32_t count;
    uint32_t text_used;
    /* SIMD prefilter (Teddy, as in Hyperscan): every pattern sits in one of CSIP_PATTERNS_BUCKETS buckets. For byte
     * j (0-2) of a position, bucket b may match there only if bit b is set in both teddy_lo[j][byte & 15] and
     * teddy_hi[j][byte >> 4]; both cases of a letter are entered, and a pattern shorter than j+1 bytes allows any
     * byte. A position whose three bytes leave no bucket cannot start a match; the others are verified exactly.
     * The 16 entries are stored twice so one 32-byte load feeds both AVX2 lanes. */
    uint8_t teddy_lo[3][32];
    uint8_t teddy_hi[3][32];
    /** Exact first-byte filter in front of Teddy (PSHUFB bitmap): a byte c below 0x80 may start a pattern only if
     * bit (c >> 4) of first_lo[c & 15] is set and first_hi[c >> 4] is (1 << (c >> 4)). Bytes from 0x80 pass whenever
     * a pattern starts with such a byte (first_hi[8-15] = 0xff, and bit 0 of that byte's first_lo entry is set:
     * that also lets some control bytes through, never fewer). Stored twice like the Teddy tables. */
    uint8_t first_lo[32];
    uint8_t first_hi[32];
    /** Patterns (bit k = pattern k) in each bucket. */
    uint64_t bucket_patterns[CSIP_PATTERNS_BUCKETS];
    /** Nibble sets per bucket and byte (bit n = nibble n), used to place new patterns. */
    uint16_t bucket_lo[CSIP_PATTERNS_BUCKETS][3];
    uint16_t bucket_hi[CSIP_PATTERNS_BUCKETS][3];
    /** 1: patterns match anywhere (csip_patterns_init_anywhere); 0: the word-start rule applies. */
    uint32_t anywhere;
    /** CSIP_SIMD_* level csip_patterns_find uses: the best this CPU runs, set by init (or csip_patterns_set_level). */
    uint32_t simd_level;
};

void csip_patterns_init(struct csip_patterns *patterns);

/** As csip_patterns_init, for plain substrings: no word-start rule, a pattern matches at any position. */
void csip_patterns_init_anywhere(struct csip_patterns *patterns);

/**
 * Chooses the search csip_patterns_find uses (CSIP_SIMD_AUTO: the best this CPU supports; init already did that).
 * Every level returns the same result; a specific level is for tests and benchmarks. 0, -EINVAL or -ENOTSUP.
 */
int csip_patterns_set_level(struct csip_patterns *patterns, uint32_t requested_level);

/** Adds a lower-case pattern. Patterns must come in ascending order of first byte. 0, -EINVAL or -ENOSPC. */
int csip_patterns_add(struct csip_patterns *patterns, const uint8_t *text, size_t length);

/**
 * Optional, once all patterns are added: moves patterns between prefilter buckets (local search) so that typical SIP
 * header text leaves as few candidate positions as possible, counting the exact first-byte filter and the word-start
 * rule. Only speed changes, never a result. 0, or -EINVAL for a null table. About a millisecond for 64 patterns.
 */
int csip_patterns_optimize(struct csip_patterns *patterns);

/**
 * Index of the first pattern (enabled in `enabled`, bit i for pattern i) occurring in buf[from, to), or -1.
 * A pattern whose first byte is a letter counts only where the byte before is not a letter or digit (unless the
 * table was initialised with csip_patterns_init_anywhere); buf[from - 1] is never read: `from` starts a word.
 */
int32_t csip_patterns_find(const struct csip_patterns *patterns, const uint8_t *buf, size_t from, size_t to,
                           uint64_t enabled);

/**
 * Same result as csip_patterns_find(patterns, buf, from, to, enabled), but buf holds `len` readable bytes and the
 * search may read any of them (whole SIMD steps, no copying near `to`). -1 as well when to > len.
 */
int32_t csip_patterns_find_in(const struct csip_patterns *patterns, const uint8_t *buf, size_t len, size_t from,
                              size_t to, uint64_t enabled);

/**
 * The header-value search of the edge policy in one call: csip_patterns_find_in over `first` (may be NULL: the
 * Request-URI), then over the value of each header whose kind has its bit set in `kinds` (bit k = kind code k; codes
 * are below 64), in that order. Returns the first pattern found, as the separate calls in that order would (the
 * first span holding a match, its first position, table order there), and sets *where to -1 for `first` or to the
 * header's index. -1 (and *where = -1) when nothing matches; -EINVAL for a null pointer or a span that is not
 * inside buf[0, len) (spans are checked as they are reached).
 */
int32_t csip_patterns_find_headers(const struct csip_patterns *patterns, const uint8_t *buf, size_t len,
                                   const struct csip_span *first, const struct csip_header *headers, uint32_t count,
                                   uint64_t kinds, uint64_t enabled, int32_t *where);

/** Index of the first byte >= 0x80 in buf[from, to), or `to`. SSE2 (x86-64 baseline), scalar elsewhere. */
size_t csip_find_non_ascii(const uint8_t *buf, size_t from, size_t to);

/** What csip_via_common_form found besides the spans (struct csip_via_hop.flags). */
enum {
    CSIP_VIA_PORT = 1u << 0,
    CSIP_VIA_BRANCH = 1u << 1,
    CSIP_VIA_RECEIVED = 1u << 2,
    CSIP_VIA_RPORT_REQUESTED = 1u << 3, /* `;rport` without a value */
    CSIP_VIA_RPORT_VALUE = 1u << 4,
    CSIP_VIA_TTL = 1u << 5,
    CSIP_VIA_MADDR = 1u << 6,
    CSIP_VIA_FLOW_TOKEN = 1u << 7,
    CSIP_VIA_HOST_IPV4 = 1u << 8, /* the host is four decimal octets up to 255 */
};

/** One Via hop in its common form: offsets into the caller's buffer; a span is set only with its flag. */
struct csip_via_hop {
    uint32_t end;           /* the hop ends here: the value's end or a comma */
    uint32_t transport_end; /* the transport token is [start + 8, transport_end) */
    uint32_t host_start;
    uint32_t host_end;
    struct csip_span parameters; /* after the first ';'; empty, at `end`, without parameters */
    struct csip_span branch;
    struct csip_span received;
    struct csip_span maddr;
    struct csip_span flow_token; /* the first `ft` with a value */
    uint32_t rport_name_end;     /* with CSIP_VIA_RPORT_REQUESTED: where `=port` goes */
    uint16_t port;
    uint16_t rport;
    uint16_t flags;
    uint8_t ttl;
};

/**
 * Reads the Via hop at [start, end) of `buf` in its common form: `SIP/2.0/TRANSPORT SP host[:port][;param[=value]]...`
 * with a hostname or IPv4 host, no whitespace but the one SP, no quotes, ending at `end` or at a comma, and the
 * branch, received, rport, ttl and maddr parameters well formed. Returns 1 and fills `hop`, or 0 for anything else
 * (then the full grammar decides). Reads only [start, end).
 */
int csip_via_common_form(const uint8_t *buf, size_t start, size_t end, struct csip_via_hop *hop);

#ifdef __cplusplus
}
#endif

/* WebSocket frame headers (RFC 6455 §5.2): ws_frame.c. */
struct csip_ws_frame {
    uint8_t fin;
    uint8_t opcode;   /* 0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong */
    uint8_t masked;
    uint32_t mask_key;
    uint64_t payload_length;
    uint32_t header_length; /* bytes before the payload */
};

enum {
    CSIP_WS_HEADER = 1,              /* a whole header: `frame` is filled */
    CSIP_WS_NEED_MORE = 0,           /* the header is not all there yet */
    CSIP_WS_ERROR_ARGUMENT = -1,
    CSIP_WS_ERROR_RESERVED_BITS = -2, /* RSV1-3 set without an extension: close 1002 */
    CSIP_WS_ERROR_OPCODE = -3,        /* a reserved opcode: close 1002 */
    CSIP_WS_ERROR_LENGTH_ENCODING = -4, /* not the minimal length encoding, or the 64-bit length's top bit set */
    CSIP_WS_ERROR_CONTROL_FRAME = -5, /* a control frame over 125 bytes or fragmented: close 1002 */
    CSIP_WS_ERROR_TOO_BIG = -6,       /* payload over `max_payload`: close 1009 */
};

/* Reads one frame header from the start of `data`. */
int csip_ws_parse_header(const uint8_t *data, size_t length, uint64_t max_payload, struct csip_ws_frame *frame);
/* XORs `length` payload bytes with the mask, `offset` bytes into the frame's payload. */
void csip_ws_unmask(uint8_t *payload, size_t length, uint32_t mask_key, uint64_t offset);
/* Writes an unmasked (server) frame header; returns its length, 0 when `capacity` is too small. */
size_t csip_ws_encode_header(uint8_t *out, size_t capacity, uint8_t opcode, int fin, uint64_t payload_length);

#endif /* CSIPSCAN_H */
