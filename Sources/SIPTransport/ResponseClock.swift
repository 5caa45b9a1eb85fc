import SIPBytes
import SIPParsing

/// When each request still waiting for its first response from the core was handled, keyed by Call-ID and CSeq,
/// for `sip_upstream_response_seconds`. A fixed table: a newer request may take an older one's slot (that one
/// then goes unmeasured), so memory stays constant whatever the load.
struct ResponseClock {
    /// Key and start time side by side, so a request and its response each touch one cache line of the table.
    private struct Entry {
        var key: UInt64
        var started: UInt64
    }

    private var entries: [Entry]
    private let mask: Int

    /// `slots` is rounded up to a power of two.
    init(slots: Int = 4_096) {
        var size = 1
        while size < slots { size <<= 1 }
        entries = Array(repeating: Entry(key: 0, started: 0), count: size)
        mask = size - 1
    }

    mutating func started(_ message: SIPMessage, at nanoseconds: UInt64) {
        let key = Self.key(message)
        entries[Int(truncatingIfNeeded: key) & mask] = Entry(key: key, started: nanoseconds)
    }

    /// The time since the request this response answers was handled, once (later responses get nil).
    mutating func answered(_ message: SIPMessage, at nanoseconds: UInt64) -> UInt64? {
        let key = Self.key(message)
        let slot = Int(truncatingIfNeeded: key) & mask
        guard entries[slot].key == key else { return nil }
        entries[slot].key = 0
        return nanoseconds &- entries[slot].started
    }

    /// Call-ID (its length and up to its first and last 8 bytes), CSeq number and method, mixed; never 0.
    static func key(_ message: SIPMessage) -> UInt64 {
        let bytes = message.bytes
        let callID = message.callID
        let length = callID.count
        var hash = UInt64(length) &* 0x9E37_79B9_7F4A_7C15
        hash ^= bytes.word(at: callID.start, length: min(length, 8))
        hash = (hash ^ (hash >> 29)) &* 0xBF58_476D_1CE4_E5B9
        if length > 8 { hash ^= bytes.word(at: callID.end - 8, length: 8) }
        hash = (hash ^ (hash >> 32)) &* 0x94D0_49BB_1331_11EB
        hash ^= UInt64(message.cseq.number) << 8 | UInt64(message.cseq.method.known.rawValue)
        hash = (hash ^ (hash >> 31)) &* 0x9E37_79B9_7F4A_7C15
        return hash | 1
    }
}
