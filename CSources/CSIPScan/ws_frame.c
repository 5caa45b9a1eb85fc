/*
 * WebSocket frame headers (RFC 6455 §5.2), read from a byte buffer that may hold only part of a frame: no I/O, no
 * allocation, no state between calls (the caller keeps the bytes until a whole header is there). Payload
 * unmasking in place, and server frame headers (never masked) for the edge's own sends.
 */
#include <string.h>

#include "include/CSIPScan.h"

int csip_ws_parse_header(const uint8_t *data, size_t length, uint64_t max_payload, struct csip_ws_frame *frame) {
    if (data == NULL || frame == NULL) return CSIP_WS_ERROR_ARGUMENT;
    if (length < 2) return CSIP_WS_NEED_MORE;
    const uint8_t first = data[0];
    const uint8_t second = data[1];
    memset(frame, 0, sizeof(*frame));
    frame->fin = (first & 0x80) != 0;
    frame->opcode = first & 0x0F;
    frame->masked = (second & 0x80) != 0;
    /* No extension was negotiated, so the reserved bits must be clear (§5.2). */
    if ((first & 0x70) != 0) return CSIP_WS_ERROR_RESERVED_BITS;
    const int is_control = (frame->opcode & 0x08) != 0;
    switch (frame->opcode) {
    case 0x0: case 0x1: case 0x2: case 0x8: case 0x9: case 0xA: break;
    default: return CSIP_WS_ERROR_OPCODE;
    }
    uint64_t payload = second & 0x7F;
    size_t header = 2;
    if (payload == 126) {
        if (length < 4) return CSIP_WS_NEED_MORE;
        payload = ((uint64_t)data[2] << 8) | data[3];
        header = 4;
        /* The minimal encoding is required (§5.2): 126 announces 126..65535 only. */
        if (payload < 126) return CSIP_WS_ERROR_LENGTH_ENCODING;
    } else if (payload == 127) {
        if (length < 10) return CSIP_WS_NEED_MORE;
        payload = 0;
        for (int i = 0; i < 8; i++) payload = (payload << 8) | data[2 + i];
        header = 10;
        if ((payload >> 63) != 0) return CSIP_WS_ERROR_LENGTH_ENCODING; /* the most significant bit must be 0 */
        if (payload <= 0xFFFF) return CSIP_WS_ERROR_LENGTH_ENCODING;
    }
    /* Control frames: at most 125 bytes, never fragmented (§5.5). */
    if (is_control && (payload > 125 || !frame->fin)) return CSIP_WS_ERROR_CONTROL_FRAME;
    if (payload > max_payload) return CSIP_WS_ERROR_TOO_BIG;
    if (frame->masked) {
        if (length < header + 4) return CSIP_WS_NEED_MORE;
        frame->mask_key = ((uint32_t)data[header] << 24) | ((uint32_t)data[header + 1] << 16) |
                          ((uint32_t)data[header + 2] << 8) | data[header + 3];
        header += 4;
    }
    frame->payload_length = payload;
    frame->header_length = (uint32_t)header;
    return CSIP_WS_HEADER;
}

void csip_ws_unmask(uint8_t *payload, size_t length, uint32_t mask_key, uint64_t offset) {
    if (payload == NULL) return;
    const uint8_t key[4] = {(uint8_t)(mask_key >> 24), (uint8_t)(mask_key >> 16), (uint8_t)(mask_key >> 8),
                            (uint8_t)mask_key};
    for (size_t i = 0; i < length; i++) payload[i] ^= key[(offset + i) & 3];
}

size_t csip_ws_encode_header(uint8_t *out, size_t capacity, uint8_t opcode, int fin, uint64_t payload_length) {
    if (out == NULL || (payload_length >> 63) != 0) return 0;
    const size_t needed = payload_length < 126 ? 2 : payload_length <= 0xFFFF ? 4 : 10;
    if (capacity < needed) return 0;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
    if (payload_length < 126) {
        out[1] = (uint8_t)payload_length;
    } else if (payload_length <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(payload_length >> 8);
        out[3] = (uint8_t)payload_length;
    } else {
        out[1] = 127;
        for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(payload_length >> (56 - 8 * i));
    }
    return needed;
}
