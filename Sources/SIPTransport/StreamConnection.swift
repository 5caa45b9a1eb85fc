import SIPBytes
import SIPProxyCore
import SIPUring

/// One TCP or TLS connection of a worker, a client's or one of the upstream pool's: where it is in its life, its
/// unframed input and its ordered, bounded output.
final class StreamConnection {
    /// Where a connection is in its life. Every change goes through the methods below, so the order is enforced
    /// in one place: connecting -> open -> closing -> closed, with closed reachable from anywhere.
    enum Lifecycle: Equatable {
        /// Outbound (upstream pool): the connect, and for TLS the handshake, has not completed. Not usable yet.
        case connecting
        /// Messages flow both ways.
        case open
        /// No more input is taken (a final 400 was sent, or the peer ended the stream); closed once what is
        /// queued toward the peer has been sent.
        case closing
        /// Gone: cancelled on the ring, descriptor closed, slot released. Late completions are ignored.
        case closed
    }

    /// Slot in the worker's table (low 16 bits) and that slot's generation (high 16): the connection part of a
    /// flow token, and the io_uring key. A reused slot has a new generation, so stale tokens and late completions
    /// never reach the new connection.
    let key: UInt32
    let descriptor: Int32
    let transport: TransportKind
    let peer: EndpointAddress
    let tls: TLSSession?
    /// For a ws/wss connection: its upgrade, frames and pings. Nil for TCP and TLS.
    let webSocket: WebSocketSession?
    /// For a connection of the upstream pool: its slot there. Nil for a client's connection.
    let poolSlot: Int?
    private(set) var lifecycle: Lifecycle
    /// Received bytes not yet framed (plaintext for TLS).
    var input = StreamInput()
    /// Bytes on their way to the peer (ciphertext for TLS), in order.
    var output = SendQueue()
    /// Milliseconds (monotonic) of the last bytes received, or of the dial for a connection still connecting.
    var lastActivity: UInt64
    /// When the connection was accepted or dialled (the TLS handshake deadline counts from here).
    let openedAt: UInt64
    /// Since when the input has held the start of a message that is not complete yet (0: none): the message
    /// deadline counts from here, and only a completed message moves it.
    var partialSince: UInt64 = 0

    init(key: UInt32, descriptor: Int32, transport: TransportKind, peer: EndpointAddress, now: UInt64,
         tls: TLSSession?, webSocket: WebSocketSession? = nil, poolSlot: Int? = nil) {
        self.key = key
        self.descriptor = descriptor
        self.transport = transport
        self.peer = peer
        self.lastActivity = now
        openedAt = now
        self.tls = tls
        self.webSocket = webSocket
        self.poolSlot = poolSlot
        lifecycle = poolSlot == nil ? .open : .connecting
    }

    var isClosed: Bool { lifecycle == .closed }
    var isConnecting: Bool { lifecycle == .connecting }
    /// Input is taken and framed only while open (a connecting TLS link takes handshake records, not messages).
    var isReading: Bool { lifecycle == .open || lifecycle == .connecting }
    /// Can carry a message now: open (connected, handshake done).
    var isUsable: Bool { lifecycle == .open }

    /// An outbound connection finished connecting (and its TLS handshake). False when it was not connecting.
    @discardableResult
    func becameReady() -> Bool {
        guard lifecycle == .connecting else { return false }
        lifecycle = .open
        return true
    }

    /// Stop taking input; the connection is to be closed once its queued bytes are sent. True when nothing is in
    /// flight any more, so the caller closes it now.
    func beginClosing() -> Bool {
        if lifecycle != .closed { lifecycle = .closing }
        return lifecycle == .closing && !output.isSending
    }

    /// Marks the connection closed; false when it already was (close is idempotent for callers).
    func markClosed() -> Bool {
        guard lifecycle != .closed else { return false }
        lifecycle = .closed
        return true
    }
}

/// Received bytes of one connection not yet framed. Appended at the end, consumed from the front by moving a
/// reader index (no shift of the remaining bytes per framed message); the consumed prefix is dropped when it is
/// all of the buffer (the usual case: segments carry whole messages) or before an append when it is at least half,
/// so each byte is moved at most about once and the buffer stays within one message plus one segment.
struct StreamInput {
    private(set) var storage: [UInt8] = []
    private(set) var readIndex = 0

    /// Bytes received and not consumed yet.
    var unreadCount: Int { storage.count - readIndex }

    /// Appends a received segment.
    mutating func append(_ payload: PacketBytes) {
        compactIfWorthwhile()
        payload.append(payload.all, to: &storage)
    }

    /// Appends through `body` (TLS decrypts straight into the buffer).
    mutating func appending<Result>(_ body: (inout [UInt8]) -> Result) -> Result {
        compactIfWorthwhile()
        return body(&storage)
    }

    /// Drops `count` bytes off the front (a framed message, a ping, padding).
    mutating func consume(_ count: Int) {
        precondition(count >= 0 && count <= unreadCount, "consumed more than was received")
        readIndex += count
        if readIndex == storage.count {
            storage.removeAll(keepingCapacity: true)
            readIndex = 0
        }
    }

    /// Runs `body` over the whole buffer, writable (a WebSocket payload is unmasked in place), with the index of
    /// the first unread byte. Indexes `body` returns stay valid until the next append or consume.
    mutating func withStorage<Result>(_ body: (inout [UInt8], _ firstUnread: Int) -> Result) -> Result {
        body(&storage, readIndex)
    }

    /// Runs `body` over `range` of the buffer (indexes as ``withStorage(_:)`` gave them), borrowed.
    func withBytes<Result>(in range: Range<Int>, _ body: (PacketBytes) -> Result) -> Result {
        precondition(range.lowerBound >= readIndex && range.upperBound <= storage.count, "range outside the unread bytes")
        return storage.withPacketBytes(from: range.lowerBound) { body($0.prefix(range.count)) }
    }

    /// Consumes everything up to `index` of the buffer (as ``withStorage(_:)`` counts).
    mutating func consume(through index: Int) { consume(index - readIndex) }

    /// Runs `body` over the unread bytes, borrowed (offsets in `body` count from the first unread byte).
    func withUnread<Result>(_ body: (PacketBytes) -> Result) -> Result {
        storage.withPacketBytes(from: readIndex, body)
    }

    private mutating func compactIfWorthwhile() {
        guard readIndex > 0, readIndex * 2 >= storage.count else { return }
        storage.removeSubrange(0..<readIndex)
        readIndex = 0
    }
}

/// The ordered output of one connection: at most one send in flight on the ring (so two sends can never
/// interleave), the rest queued behind it up to a bound.
struct SendQueue {
    /// A send of this connection is in flight on the ring.
    private(set) var isSending = false
    /// Bytes waiting for it to complete.
    private(set) var pending: [UInt8] = []

    /// What to do with bytes offered to the connection.
    enum Decision: Equatable {
        /// Nothing in flight: send these bytes now (then call ``sendStarted()``).
        case sendNow
        /// Queued behind the send in flight.
        case queued
        /// Queuing them would pass `limit`: the peer does not read; cut it.
        case overflow
    }

    mutating func offer(_ bytes: ArraySlice<UInt8>, limit: Int) -> Decision {
        guard isSending else { return .sendNow }
        guard pending.count + bytes.count <= limit else { return .overflow }
        pending.append(contentsOf: bytes)
        return .queued
    }

    mutating func sendStarted() { isSending = true }

    /// The send in flight completed: the bytes queued meanwhile, to send next as one (empty when none).
    mutating func sendCompleted() -> [UInt8] {
        isSending = false
        var next: [UInt8] = []
        swap(&next, &pending)
        return next
    }
}
