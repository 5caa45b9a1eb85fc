public import SIPBytes

/// The receiving half of a WebSocket connection's framing on the server side (RFC 6455 §5, RFC 7118 §5): bytes
/// as they arrive in, whole messages (one SIP message per text or binary message, reassembled from fragments),
/// pings, pongs and the close out. No I/O: the connection feeds it and acts on what it returns.
///
/// Bounded: a message larger than `maxMessage` (the parser's message limit) ends the connection with 1009 before
/// its bytes are kept; unmasked client frames, reserved bits or opcodes, bad length encodings, oversized or
/// fragmented control frames, and continuation frames out of place end it with 1002.
public struct WebSocketAssembler {
    public enum Event: Equatable, Sendable {
        case message([UInt8], isText: Bool)
        case ping([UInt8])
        case pong([UInt8])
        /// The peer's close frame: its status code (1005 when it gave none) and reason.
        case close(code: UInt16, reason: [UInt8])
        /// The peer broke the protocol: close with this code and stop reading.
        case failed(code: UInt16)
    }

    public let maxMessage: Int
    /// Bytes received and not yet consumed (at most one frame header and payload).
    private var pending: [UInt8] = []
    /// The fragmented message being reassembled, and whether it is text.
    private var fragments: [UInt8] = []
    private var fragmentedIsText: Bool?
    private var failed = false

    public init(maxMessage: Int) {
        self.maxMessage = maxMessage
    }

    /// Takes `bytes` and returns every event they complete, in order. After `.failed` or `.close`, nothing more.
    public mutating func feed(_ bytes: ArraySlice<UInt8>) -> [Event] {
        guard !failed else { return [] }
        pending.append(contentsOf: bytes)
        return takeFrames()
    }

    /// What one frame read in place gave.
    public enum Frame: Equatable, Sendable {
        /// A whole message in one frame: its payload, unmasked in place, is `buffer[range]` (no copy).
        case message(Range<Int>, isText: Bool)
        /// A message reassembled from fragments, a control frame, or the end (close, failure).
        case event(Event)
        /// A fragment taken into the reassembly: nothing to act on yet.
        case fragment
    }

    /// Reads the frame at `start` of `buffer` (a connection's received bytes), unmasking its payload in place.
    /// Nil when the frame is not all there yet (nothing consumed); otherwise the frame and the index just past it.
    /// After a failure or a close, always nil. No copy of an unfragmented message is made.
    public mutating func nextFrame(in buffer: inout [UInt8], from start: Int) -> (frame: Frame, end: Int)? {
        guard !failed else { return nil }
        let header: WebSocketFrameHeader
        do throws(WebSocketFrameHeader.Failure) {
            guard let parsed = try WebSocketFrameHeader.parse(buffer, from: start, maxPayload: UInt64(maxMessage))
            else { return nil }
            header = parsed
        } catch {
            return (.event(fail(error.closeCode)), buffer.count)
        }
        // Client frames must be masked (§5.1): a server closes on an unmasked one.
        guard header.isMasked else { return (.event(fail(1002)), buffer.count) }
        let payloadStart = start + header.headerLength
        let payloadEnd = payloadStart + Int(header.payloadLength)
        guard payloadEnd <= buffer.count else { return nil }
        WebSocketFrameHeader.unmask(&buffer, payloadStart..<payloadEnd, key: header.maskKey, offset: 0)
        if header.fin, header.opcode == .text || header.opcode == .binary, fragmentedIsText == nil {
            return (.message(payloadStart..<payloadEnd, isText: header.opcode == .text), payloadEnd)
        }
        guard let event = take(header, buffer[payloadStart..<payloadEnd]) else { return (.fragment, payloadEnd) }
        if case .close = event { failed = true }
        return (.event(event), payloadEnd)
    }

    /// The same, from a connection's received bytes (borrowed).
    public mutating func feed(_ bytes: PacketBytes) -> [Event] {
        guard !failed else { return [] }
        bytes.append(bytes.all, to: &pending)
        return takeFrames()
    }

    private mutating func takeFrames() -> [Event] {
        var events: [Event] = []
        var consumed = 0
        var buffer: [UInt8] = []
        swap(&buffer, &pending)
        while let (frame, end) = nextFrame(in: &buffer, from: consumed) {
            switch frame {
            case .message(let range, let isText): events.append(.message(Array(buffer[range]), isText: isText))
            case .event(let event): events.append(event)
            case .fragment: break
            }
            consumed = end
        }
        if !failed {
            buffer.removeFirst(min(consumed, buffer.count))
            pending = buffer
        }
        return events
    }

    private mutating func take(_ header: WebSocketFrameHeader, _ payload: ArraySlice<UInt8>) -> Event? {
        switch header.opcode {
        case .ping: return .ping(Array(payload))
        case .pong: return .pong(Array(payload))
        case .close:
            // A close payload is empty or a 2-byte code and a reason (§5.5.1); one byte is malformed.
            if payload.isEmpty { return .close(code: 1005, reason: []) }
            guard payload.count >= 2 else { return fail(1002) }
            let code = UInt16(payload[payload.startIndex]) << 8 | UInt16(payload[payload.startIndex + 1])
            return .close(code: code, reason: Array(payload.dropFirst(2)))
        case .text, .binary:
            // (A whole message in one frame never comes here: nextFrame hands it over in place.)
            guard fragmentedIsText == nil else { return fail(1002) }  // a new message before the last ended
            fragmentedIsText = header.opcode == .text
            fragments = Array(payload)
            return nil
        case .continuation:
            guard let isText = fragmentedIsText else { return fail(1002) }  // nothing to continue
            guard fragments.count + payload.count <= maxMessage else { return fail(1009) }
            fragments.append(contentsOf: payload)
            guard header.fin else { return nil }
            defer {
                fragments = []
                fragmentedIsText = nil
            }
            return .message(fragments, isText: isText)
        }
    }

    private mutating func fail(_ code: UInt16) -> Event {
        failed = true
        pending = []
        fragments = []
        return .failed(code: code)
    }

    /// A server frame carrying `payload` (never masked, §5.1).
    public static func frame(_ opcode: WebSocketFrameHeader.Opcode, _ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(payload.count + 10)
        WebSocketFrameHeader.appendHeader(opcode: opcode, payloadLength: payload.count, to: &out)
        out.append(contentsOf: payload)
        return out
    }

    /// A close frame with `code` and a short reason.
    public static func closeFrame(code: UInt16, reason: String = "") -> [UInt8] {
        frame(.close, [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8.prefix(123)))
    }
}
