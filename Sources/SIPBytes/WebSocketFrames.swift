import CSIPScan

/// One WebSocket frame header (RFC 6455 §5.2), as the C reader found it.
public struct WebSocketFrameHeader: Equatable, Sendable {
    public enum Opcode: UInt8, Sendable {
        case continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10
    }

    public var fin: Bool
    public var opcode: Opcode
    public var isMasked: Bool
    public var maskKey: UInt32
    public var payloadLength: UInt64
    /// Bytes before the payload.
    public var headerLength: Int

    /// Why a header was refused; each maps to the close code the RFC asks for.
    public enum Failure: Error, Equatable, Sendable {
        case reservedBits, opcode, lengthEncoding, controlFrame, tooBig

        /// 1009 for a message too big to take, 1002 (protocol error) for the rest.
        public var closeCode: UInt16 { self == .tooBig ? 1009 : 1002 }
    }

    /// Reads the header at `start` of `bytes`: nil when it is not all there yet.
    public static func parse(_ bytes: [UInt8], from start: Int,
                             maxPayload: UInt64) throws(Failure) -> WebSocketFrameHeader? {
        precondition(start >= 0 && start <= bytes.count, "start outside the buffer")
        var frame = csip_ws_frame()
        let result = bytes.withUnsafeBufferPointer { buffer in
            csip_ws_parse_header(buffer.baseAddress.map { $0 + start }, buffer.count - start, maxPayload, &frame)
        }
        switch result {
        case Int32(CSIP_WS_HEADER):
            return WebSocketFrameHeader(fin: frame.fin != 0, opcode: Opcode(rawValue: frame.opcode)!,
                                        isMasked: frame.masked != 0, maskKey: frame.mask_key,
                                        payloadLength: frame.payload_length, headerLength: Int(frame.header_length))
        case Int32(CSIP_WS_NEED_MORE): return nil
        case Int32(CSIP_WS_ERROR_RESERVED_BITS): throw .reservedBits
        case Int32(CSIP_WS_ERROR_OPCODE): throw .opcode
        case Int32(CSIP_WS_ERROR_LENGTH_ENCODING): throw .lengthEncoding
        case Int32(CSIP_WS_ERROR_CONTROL_FRAME): throw .controlFrame
        case Int32(CSIP_WS_ERROR_TOO_BIG): throw .tooBig
        default: preconditionFailure("csip_ws_parse_header: \(result)")
        }
    }

    /// Unmasks `bytes[range]` in place, `offset` bytes into the frame's payload.
    public static func unmask(_ bytes: inout [UInt8], _ range: Range<Int>, key: UInt32, offset: UInt64) {
        precondition(range.lowerBound >= 0 && range.upperBound <= bytes.count, "range outside the buffer")
        bytes.withUnsafeMutableBufferPointer { buffer in
            if let base = buffer.baseAddress { csip_ws_unmask(base + range.lowerBound, range.count, key, offset) }
        }
    }

    /// Appends an unmasked (server-to-client) frame header.
    public static func appendHeader(opcode: Opcode, fin: Bool = true, payloadLength: Int, to out: inout [UInt8]) {
        var header = [UInt8](repeating: 0, count: 10)
        let length = header.withUnsafeMutableBufferPointer { buffer in
            csip_ws_encode_header(buffer.baseAddress, buffer.count, opcode.rawValue, fin ? 1 : 0, UInt64(payloadLength))
        }
        precondition(length > 0, "frame header did not fit")
        out.append(contentsOf: header[0..<length])
    }
}
